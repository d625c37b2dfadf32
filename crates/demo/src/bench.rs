//! Benchmark support: the raw write ceiling of a database (what a checkout rate is compared
//! with) and settling it between measurements. Used by `tianguis bench`; not part of serving.

use std::time::Duration;
use tianguis_store::{Backend, Db, Result, StoreError};

/// Best effort: flush dirty pages and refresh statistics so a checkpoint does not land in
/// the middle of a measurement (PostgreSQL; needs a superuser, else it is skipped).
pub async fn settle(db: &Db) {
    if db.backend == Backend::Postgres {
        let _ = db.raw_execute("ANALYZE").await;
        let _ = db.raw_execute("CHECKPOINT").await;
    } else {
        let _ = db.raw_execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
    }
}

pub fn ceiling_name(db: &Db) -> &'static str {
    match db.backend {
        Backend::Sqlite => "SQLite durable single-row insert transactions, same file and mode",
        Backend::Postgres => "pgbench-like TPC-B transactions, same client count",
    }
}

/// The raw write rate of this database with `clients` concurrent writers, in transactions/s.
pub async fn raw_write_ceiling(db: &Db, clients: usize, for_: Duration) -> Result<f64> {
    match db.backend {
        Backend::Sqlite => {
            db.raw_execute("CREATE TABLE IF NOT EXISTS bench_ceiling (id INTEGER PRIMARY KEY, v BIGINT NOT NULL)").await?;
        }
        Backend::Postgres => {
            db.raw_execute(
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
    settle(db).await;
    let deadline = std::time::Instant::now() + for_;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let db = db.clone();
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

/// What the database has written so far, read before and after a measurement to say where a
/// checkout's time goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteCounters {
    /// Rows inserted, updated or deleted.
    pub rows: i64,
    /// Durable commits (SQLite: the group commit's transactions; PostgreSQL: committed
    /// transactions of this database, reads included).
    pub commits: i64,
    /// Write-ahead log syncs (PostgreSQL's `pg_stat_wal.wal_sync`; SQLite syncs once per
    /// commit in WAL mode with `synchronous=FULL`, plus at each checkpoint).
    pub wal_syncs: Option<i64>,
}

pub async fn write_counters(db: &Db) -> Result<WriteCounters> {
    match db.backend {
        Backend::Sqlite => {
            // total_changes() counts what the one write connection changed since it opened.
            let rows = db
                .write(|tx| {
                    Box::pin(async move {
                        Ok(sqlx::query_scalar::<_, i64>("SELECT total_changes()")
                            .fetch_one(&mut **tx)
                            .await?)
                    })
                })
                .await?;
            Ok(WriteCounters {
                rows,
                commits: db.group_stats().0 as i64,
                wal_syncs: None,
            })
        }
        Backend::Postgres => {
            // Backends publish their counts at most once a second.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let _ = db.raw_execute("SELECT pg_stat_clear_snapshot()").await;
            let rows: i64 = sqlx::query_scalar(
                "SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0)::BIGINT FROM pg_stat_user_tables",
            )
            .fetch_one(&db.pool)
            .await?;
            let commits: i64 = sqlx::query_scalar(
                "SELECT xact_commit::BIGINT FROM pg_stat_database WHERE datname = current_database()",
            )
            .fetch_one(&db.pool)
            .await?;
            let wal_syncs: Option<i64> =
                sqlx::query_scalar("SELECT wal_sync::BIGINT FROM pg_stat_wal")
                    .fetch_optional(&db.pool)
                    .await?;
            Ok(WriteCounters {
                rows,
                commits,
                wal_syncs,
            })
        }
    }
}

/// CPU seconds this process has used (user and system), from /proc; 0 where there is none.
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) end with ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line; 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}
