//! Fresh, throw-away databases (a dev-dependency only: production never links this) for tests and benchmarks: a new SQLite file in a temporary
//! directory, or a new PostgreSQL database created on the server named by `TIANGUIS_TEST_PG`
//! (default: the local server) and dropped afterwards. Where PostgreSQL is unreachable the
//! PostgreSQL half is skipped with a printed reason, except under `CI=true`, where it panics.

use std::time::Duration;
use tianguis_store::db::sibling_url;
use tianguis_store::{Db, random_token};

pub struct TestDb {
    pub db: Db,
    pub url: String,
    dir: Option<std::path::PathBuf>,
    pg_name: Option<String>,
}

impl TestDb {
    pub fn is_postgres(&self) -> bool {
        self.pg_name.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(name) = self.pg_name.take() {
            // Drop is not async: use a short-lived runtime on another thread.
            let admin = pg_admin_url();
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(db) = Db::connect(&admin).await {
                        let _ = db
                            .raw_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn pg_admin_url() -> String {
    std::env::var("TIANGUIS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

pub async fn sqlite() -> TestDb {
    let dir = std::env::temp_dir().join(format!("tianguis-test-{}", random_token(8)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite:{}", dir.join("t.db").display());
    let db = Db::connect(&url).await.expect("open sqlite");
    db.migrate().await.expect("migrate sqlite");
    TestDb {
        db,
        url,
        dir: Some(dir),
        pg_name: None,
    }
}

/// A fresh PostgreSQL database, or None (with the reason printed) off CI.
pub async fn postgres() -> Option<TestDb> {
    let admin_url = pg_admin_url();
    let admin = match tokio::time::timeout(Duration::from_secs(5), Db::connect(&admin_url)).await {
        Ok(Ok(db)) => db,
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            if on_ci() {
                panic!("PostgreSQL is required on CI but {admin_url} is unreachable: {why}");
            }
            eprintln!(
                "SKIP PostgreSQL half: {admin_url} unreachable ({why}); set TIANGUIS_TEST_PG to run it"
            );
            return None;
        }
    };
    let name = format!("tianguis_t_{}", random_token(6));
    admin
        .raw_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.pool.close().await;
    let url = sibling_url(&admin_url, &name);
    let db = Db::connect(&url).await.expect("connect test database");
    db.migrate().await.expect("migrate postgres");
    Some(TestDb {
        db,
        url,
        dir: None,
        pg_name: Some(name),
    })
}

/// Every backend this run can use: SQLite always, PostgreSQL where reachable (required on CI).
pub async fn all() -> Vec<TestDb> {
    let mut v = vec![sqlite().await];
    if let Some(pg) = postgres().await {
        v.push(pg);
    }
    v
}
