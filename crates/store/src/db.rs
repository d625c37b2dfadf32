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

/// The database handle every part of tianguis uses. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    /// Where write transactions run. SQLite: one connection, so writers queue fairly in the
    /// pool instead of sleeping in SQLite's busy handler; PostgreSQL: the same pool.
    pub(crate) write: AnyPool,
    pub backend: Backend,
    pub clock: Clock,
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
                        Cow::Borrowed(*sql),
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
);

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
                let sqlite_pool = |n: u32| {
                    AnyPoolOptions::new()
                        .max_connections(n)
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // FULL: a payment we acknowledged survives a power cut.
                                conn.execute(
                                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                                     PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
                                )
                                .await?;
                                Ok(())
                            })
                        })
                };
                let pool = sqlite_pool(8).connect_with(opts.clone()).await?;
                let write = sqlite_pool(1).connect_with(opts).await?;
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
        Ok(())
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

    /// Run one statement outside any feature (benchmarks, admin tasks).
    pub async fn raw_execute(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(sql).execute(&self.pool).await?;
        Ok(())
    }

    /// Best effort: flush dirty pages and refresh statistics so a checkpoint does not land in
    /// the middle of a measurement (PostgreSQL; needs a superuser, else it is skipped).
    pub async fn settle(&self) {
        if self.backend == Backend::Postgres {
            let _ = self.raw_execute("ANALYZE").await;
            let _ = self.raw_execute("CHECKPOINT").await;
        } else {
            let _ = self.raw_execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
        }
    }

    pub fn ceiling_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "SQLite durable single-row insert transactions, same file and mode",
            Backend::Postgres => "pgbench-like TPC-B transactions, same client count",
        }
    }

    /// The raw write rate of this database with `clients` concurrent writers, in transactions/s.
    pub async fn raw_write_ceiling(
        &self,
        clients: usize,
        for_: Duration,
    ) -> Result<f64, StoreError> {
        match self.backend {
            Backend::Sqlite => {
                self.raw_execute("CREATE TABLE IF NOT EXISTS bench_ceiling (id INTEGER PRIMARY KEY, v BIGINT NOT NULL)").await?;
            }
            Backend::Postgres => {
                self.raw_execute(
                    "CREATE TABLE IF NOT EXISTS pgb_branches (bid BIGINT PRIMARY KEY, bbalance BIGINT NOT NULL); \
                     CREATE TABLE IF NOT EXISTS pgb_tellers (tid BIGINT PRIMARY KEY, bid BIGINT NOT NULL, tbalance BIGINT NOT NULL); \
                     CREATE TABLE IF NOT EXISTS pgb_accounts (aid BIGINT PRIMARY KEY, bid BIGINT NOT NULL, abalance BIGINT NOT NULL); \
                     CREATE TABLE IF NOT EXISTS pgb_history (tid BIGINT, bid BIGINT, aid BIGINT, delta BIGINT, mtime BIGINT); \
                     INSERT INTO pgb_branches SELECT 1, 0 ON CONFLICT DO NOTHING; \
                     INSERT INTO pgb_tellers SELECT g, 1, 0 FROM generate_series(1, 10) g ON CONFLICT DO NOTHING; \
                     INSERT INTO pgb_accounts SELECT g, 1, 0 FROM generate_series(1, 100000) g ON CONFLICT DO NOTHING;",
                )
                .await?;
            }
        }
        // Same starting point for both measurements: a warm-up, then a settled database.
        self.settle().await;
        let deadline = std::time::Instant::now() + for_;
        let mut tasks = Vec::new();
        for c in 0..clients {
            let db = self.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                let mut x = 0x2545_F491_4F6C_DD1Du64 ^ c as u64;
                while std::time::Instant::now() < deadline {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let ok = match db.backend {
                        Backend::Sqlite => {
                            async {
                                let mut tx = db.begin_write().await?;
                                sqlx::query("INSERT INTO bench_ceiling (v) VALUES ($1)").bind(x as i64 & 0xffff).execute(&mut *tx).await?;
                                tx.commit().await?;
                                Ok::<_, StoreError>(())
                            }
                            .await
                        }
                        Backend::Postgres => {
                            async {
                                let (aid, tid, delta) = ((x % 100_000 + 1) as i64, (x % 10 + 1) as i64, (x % 10_000) as i64 - 5000);
                                let mut tx = db.pool.begin().await?;
                                sqlx::query("UPDATE pgb_accounts SET abalance = abalance + $1 WHERE aid = $2").bind(delta).bind(aid).execute(&mut *tx).await?;
                                sqlx::query("SELECT abalance FROM pgb_accounts WHERE aid = $1").bind(aid).fetch_one(&mut *tx).await?;
                                sqlx::query("UPDATE pgb_tellers SET tbalance = tbalance + $1 WHERE tid = $2").bind(delta).bind(tid).execute(&mut *tx).await?;
                                sqlx::query("UPDATE pgb_branches SET bbalance = bbalance + $1 WHERE bid = 1").bind(delta).execute(&mut *tx).await?;
                                sqlx::query("INSERT INTO pgb_history (tid, bid, aid, delta, mtime) VALUES ($1, 1, $2, $3, $4)")
                                    .bind(tid)
                                    .bind(aid)
                                    .bind(delta)
                                    .bind(0i64)
                                    .execute(&mut *tx)
                                    .await?;
                                tx.commit().await?;
                                Ok::<_, StoreError>(())
                            }
                            .await
                        }
                    };
                    if ok.is_ok() {
                        n += 1;
                    }
                }
                n
            }));
        }
        let mut total = 0u64;
        for t in tasks {
            total += t.await.unwrap_or(0);
        }
        Ok(total as f64 / for_.as_secs_f64())
    }
}
