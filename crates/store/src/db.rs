//! Connection, backend choice from the URL, migrations, write transactions and the clock.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, Transaction};
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Msg, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Invalid(
                Msg::new("err-database-url").arg("url", url),
            ))
        }
    }
}

/// Wall-clock time in epoch milliseconds, with an offset tests can move forward.
#[derive(Clone, Default, Debug)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        sys.as_millis() as i64 + self.offset_ms.load(Ordering::SeqCst)
    }
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

/// How many rows one multi-row statement should carry, at `params` parameters a row. sqlx's
/// SQLite driver looks each parameter's name up, a walk along the statement's list of names,
/// so binding costs the square of a statement's parameters (at 2,600 it took 40% of an
/// import's time): SQLite statements stay near 250 parameters; PostgreSQL binds by position
/// and takes `pg_rows`.
pub(crate) fn rows_per_statement(
    conn: &sqlx::AnyConnection,
    params: usize,
    pg_rows: usize,
) -> usize {
    if conn.backend_name() == "SQLite" {
        (250 / params.max(1)).max(1)
    } else {
        pg_rows.max(1)
    }
}

/// The database handle every part of tianguis uses. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    /// Where write transactions run. SQLite: one connection, so writers queue fairly in the
    /// pool instead of sleeping in SQLite's busy handler; PostgreSQL: the same pool.
    pub(crate) write: AnyPool,
    pub backend: Backend,
    pub clock: Clock,
    /// Write units waiting to share a transaction (SQLite; see [`crate::group`]).
    pub(crate) group: Arc<crate::group::Group>,
}

#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send + 's>,
    > {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(*d),
                        MigrationType::Simple,
                        sqlx::SqlSafeStr::into_sql_str(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Embedded migrations of one backend folder: version and file stem (which is also the
/// description). Both folders carry the same versions.
macro_rules! migrations {
    ($dir:literal: $($v:literal $stem:literal),* $(,)?) => {
        &[$(($v, $stem, include_str!(concat!("../migrations/", $dir, "/", $stem, ".sql")))),*]
    };
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = migrations!("sqlite":
    1 "0001_core",
    2 "0002_delivery_code",
    3 "0003_delivery_promise",
    4 "0004_plus_code_addresses",
    5 "0005_address_registry",
    6 "0006_pickup_points",
    7 "0007_courier_pool",
    8 "0008_assisted_commerce",
    9 "0009_mandates",
    10 "0010_champions",
    11 "0011_trust",
    12 "0012_grants",
    13 "0013_queue",
    14 "0014_rate_windows",
    15 "0015_momo_in_flight",
    16 "0016_payouts",
    17 "0017_texts",
    18 "0018_phone_reports",
    19 "0019_payment_references",
    20 "0020_texts_lane",
    21 "0021_search",
    22 "0022_search_counts",
    23 "0023_signing_keys",
    24 "0024_diagnostics",
);
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = migrations!("postgres":
    1 "0001_core",
    2 "0002_delivery_code",
    3 "0003_delivery_promise",
    4 "0004_plus_code_addresses",
    5 "0005_address_registry",
    6 "0006_pickup_points",
    7 "0007_courier_pool",
    8 "0008_assisted_commerce",
    9 "0009_mandates",
    10 "0010_champions",
    11 "0011_trust",
    12 "0012_grants",
    13 "0013_queue",
    14 "0014_rate_windows",
    15 "0015_momo_in_flight",
    16 "0016_payouts",
    17 "0017_texts",
    18 "0018_phone_reports",
    19 "0019_payment_references",
    20 "0020_texts_lane",
    21 "0021_search",
    22 "0022_search_counts",
    23 "0023_signing_keys",
    24 "0024_diagnostics",
);

/// A settings row used as a once-only marker by work several servers may start together:
/// created if missing and locked (PostgreSQL: the upsert takes the row lock; SQLite: the write
/// transaction holds the database), then read after the lock. Its value.
pub(crate) async fn lock_marker_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    key: &str,
) -> Result<String, StoreError> {
    sqlx::query("INSERT INTO settings (key, value) VALUES ($1, '') ON CONFLICT (key) DO UPDATE SET value = settings.value")
        .bind(key.to_string())
        .execute(&mut **tx)
        .await?;
    let r = sqlx::query("SELECT value FROM settings WHERE key = $1")
        .bind(key.to_string())
        .fetch_one(&mut **tx)
        .await?;
    crate::row_str(&r, "value")
}

impl Db {
    /// Connect to `sqlite:path` (the file is created) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let (pool, write) = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                let opts = AnyConnectOptions::from_str(&url)?;
                let sqlite_pool = |n: u32, cache: &'static str| {
                    AnyPoolOptions::new()
                        .max_connections(n)
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                // FULL: a payment we acknowledged survives a power cut.
                                conn.execute(
                                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                                     PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
                                )
                                .await?;
                                conn.execute(cache).await?;
                                Ok(())
                            })
                        })
                };
                // Readers keep SQLite's default page cache (2 MiB each); the one writer may
                // hold 32 MiB, where an import's index pages stay between batches.
                let pool = sqlite_pool(8, "PRAGMA cache_size=-2000")
                    .connect_with(opts.clone())
                    .await?;
                let write = sqlite_pool(1, "PRAGMA cache_size=-32768")
                    .connect_with(opts)
                    .await?;
                (pool, write)
            }
            Backend::Postgres => {
                let opts = AnyConnectOptions::from_str(url)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await?;
                (pool.clone(), pool)
            }
        };
        Ok(Db {
            pool,
            write,
            backend,
            clock: Clock::default(),
            group: Arc::default(),
        })
    }

    /// Connect to a database that must already exist (backups): a missing SQLite file is an
    /// error instead of a new empty database.
    pub async fn connect_existing(url: &str) -> Result<Db, StoreError> {
        if Backend::from_url(url)? == Backend::Sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
                .split('?')
                .next()
                .unwrap_or("");
            if path.is_empty() || !std::path::Path::new(path).is_file() {
                return Err(StoreError::Invalid(
                    Msg::new("err-database-missing").arg("path", path),
                ));
            }
            let base = url.split('?').next().unwrap_or(url);
            return Db::connect(&format!("{base}?mode=rw")).await;
        }
        Db::connect(url).await
    }

    /// Apply this backend's migrations (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let src = match self.backend {
            Backend::Sqlite => Embedded(SQLITE_MIGRATIONS),
            Backend::Postgres => Embedded(POSTGRES_MIGRATIONS),
        };
        let migrator = Migrator::new(src).await?;
        migrator.run(&self.pool).await?;
        self.normalise_phones().await?;
        self.index_catalogue().await?;
        self.recount_vocabulary().await?;
        Ok(())
    }

    /// The migrations up to `version` only: a database as an earlier release left it (upgrade
    /// tests; an operator rehearsing an upgrade step by step). `migrate()` finishes the job.
    pub async fn migrate_up_to(&self, version: i64) -> Result<(), StoreError> {
        let all = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let n = all.iter().take_while(|m| m.0 <= version).count();
        Migrator::new(Embedded(&all[..n]))
            .await?
            .run(&self.pool)
            .await?;
        Ok(())
    }

    /// The newest migration version this build carries.
    pub fn latest_migration() -> i64 {
        SQLITE_MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`) so a read-then-write cannot fail half-way with SQLITE_BUSY; on
    /// PostgreSQL it is READ COMMITTED and writers rely on guarded updates and row locks taken
    /// in a fixed order.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        })
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Online backup to a file. SQLite: `VACUUM INTO`, consistent while the server runs.
    pub async fn backup(&self, path: &str) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                if std::path::Path::new(path).exists() {
                    return Err(StoreError::Invalid(
                        Msg::new("err-backup-exists").arg("path", path),
                    ));
                }
                sqlx::query("VACUUM INTO $1")
                    .bind(path.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            Backend::Postgres => Err(StoreError::invalid("err-backup-postgres")),
        }
    }

    /// Close every connection (before the database is replaced or dropped).
    pub async fn close(&self) {
        self.write.close().await;
        self.pool.close().await;
    }

    /// Run one statement outside any feature (benchmarks, admin tasks).
    pub async fn raw_execute(&self, sql: &str) -> Result<(), StoreError> {
        // Only the operator's own statements (migrations aside): benchmarks, tests, admin tasks.
        sqlx::raw_sql(crate::sql(sql.to_string()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The URL of database `name` on the same server as `url` (a fresh database for a benchmark or
/// a test next to the one given).
pub fn sibling_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
    format!("{base}/{name}{query}")
}
