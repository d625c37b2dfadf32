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
    let t = sqlite_empty().await;
    t.db.migrate().await.expect("migrate sqlite");
    t
}

/// A new SQLite database with no schema at all (upgrade tests migrate it step by step).
pub async fn sqlite_empty() -> TestDb {
    let dir = std::env::temp_dir().join(format!("tianguis-test-{}", random_token(8)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite:{}", dir.join("t.db").display());
    let db = Db::connect(&url).await.expect("open sqlite");
    TestDb {
        db,
        url,
        dir: Some(dir),
        pg_name: None,
    }
}

/// A fresh PostgreSQL database, or None (with the reason printed) off CI.
pub async fn postgres() -> Option<TestDb> {
    let t = postgres_empty().await?;
    t.db.migrate().await.expect("migrate postgres");
    Some(t)
}

/// A new PostgreSQL database with no schema at all (upgrade tests migrate it step by step).
pub async fn postgres_empty() -> Option<TestDb> {
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
    Some(TestDb {
        db,
        url,
        dir: None,
        pg_name: Some(name),
    })
}

/// Every backend this run can use, with no schema (see `all`).
pub async fn all_empty() -> Vec<TestDb> {
    let mut v = vec![sqlite_empty().await];
    if let Some(pg) = postgres_empty().await {
        v.push(pg);
    }
    v
}

/// Every backend this run can use: SQLite always, PostgreSQL where reachable (required on CI).
pub async fn all() -> Vec<TestDb> {
    let mut v = vec![sqlite().await];
    if let Some(pg) = postgres().await {
        v.push(pg);
    }
    v
}

#[cfg(test)]
mod layers {
    //! The layering, checked: each crate depends only on the layers below it, and each
    //! aggregate of the storage layer calls only the shared services (the books, people,
    //! the queue, rate limits) and the aggregates it is part of. A change that crosses a line
    //! fails here, with the line it crossed.

    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    fn crates_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The `[dependencies]` of a crate (not dev-dependencies), by name.
    fn deps(krate: &str) -> BTreeSet<String> {
        let text = std::fs::read_to_string(crates_dir().join(krate).join("Cargo.toml")).unwrap();
        let mut in_deps = false;
        let mut out = BTreeSet::new();
        for line in text.lines() {
            let l = line.trim();
            if l.starts_with('[') {
                in_deps = l == "[dependencies]";
                continue;
            }
            if in_deps && let Some((name, _)) = l.split_once(['=', '.']) {
                let name = name.trim();
                if !name.is_empty() && !name.starts_with('#') {
                    out.insert(name.to_string());
                }
            }
        }
        out
    }

    fn sources(krate: &str) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let mut stack = vec![crates_dir().join(krate).join("src")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        out
    }

    #[test]
    fn each_crate_depends_only_on_the_layers_below() {
        // crate -> what it must never depend on.
        let forbidden: &[(&str, &[&str])] = &[
            (
                "domain",
                &[
                    "sqlx",
                    "tokio",
                    "axum",
                    "reqwest",
                    "tianguis-store",
                    "tianguis-app",
                    "tianguis-web",
                ],
            ),
            ("geo", &["sqlx", "tokio", "axum", "tianguis-domain"]),
            (
                "credential",
                &[
                    "sqlx",
                    "tokio",
                    "axum",
                    "reqwest",
                    "rand",
                    "tianguis-domain",
                ],
            ),
            (
                "routing",
                &[
                    "sqlx",
                    "axum",
                    "tianguis-store",
                    "tianguis-app",
                    "tianguis-web",
                ],
            ),
            (
                "store",
                &[
                    "tianguis-app",
                    "tianguis-web",
                    "tianguis-demo",
                    "axum",
                    "askama",
                    "reqwest",
                    "image",
                    "argon2",
                ],
            ),
            (
                "app",
                &[
                    "tianguis-web",
                    "tianguis-demo",
                    "axum",
                    "askama",
                    "reqwest",
                    "fluent-templates",
                ],
            ),
            ("web", &["tianguis-demo", "tianguis-testkit"]),
        ];
        let mut wrong = Vec::new();
        for (krate, never) in forbidden {
            let d = deps(krate);
            for n in *never {
                if d.contains(*n) {
                    wrong.push(format!("{krate} depends on {n}"));
                }
            }
        }
        // Test databases never reach production.
        for krate in [
            "domain", "geo", "routing", "store", "app", "web", "demo", "cli",
        ] {
            if deps(krate).contains("tianguis-testkit") {
                wrong.push(format!("{krate} links tianguis-testkit outside its tests"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn sources_do_not_reach_past_their_layer() {
        let rules: &[(&str, &[&str])] = &[
            (
                "domain",
                &[
                    "sqlx::",
                    "tokio::",
                    "axum::",
                    "tianguis_store",
                    "std::fs",
                    "std::net",
                ],
            ),
            (
                "store",
                &[
                    "tianguis_app",
                    "tianguis_web",
                    "axum::",
                    "askama",
                    "reqwest",
                ],
            ),
            ("app", &["tianguis_web", "axum::", "askama", "reqwest"]),
        ];
        let mut wrong = Vec::new();
        for (krate, never) in rules {
            for (path, text) in sources(krate) {
                for (i, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    for n in *never {
                        if code.contains(n) {
                            wrong.push(format!("{}:{}: {n}", path.display(), i + 1));
                        }
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// Dynamic SQL is vouched for in one place (`tianguis_store::sql`), never ad hoc.
    #[test]
    fn dynamic_sql_is_vouched_for_in_one_place() {
        let mut wrong = Vec::new();
        for krate in ["store", "app", "web", "demo", "cli"] {
            for (path, text) in sources(krate) {
                let uses = text.matches("AssertSqlSafe").count();
                let allowed = usize::from(path.ends_with("store/src/lib.rs")) * 3;
                if uses > allowed {
                    wrong.push(format!("{}: {uses}", path.display()));
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// Persistence per aggregate: a store module uses its own aggregate's modules and the
    /// shared services only. Workflows that span aggregates live in the app's use cases.
    #[test]
    fn storage_aggregates_do_not_call_each_other() {
        let shared = ["db", "ledger", "users", "queue", "limits", "images", "text"];
        let aggregate: &[(&str, &[&str])] = &[
            ("orders", &[]),
            // The search index is the catalogue's own: written with each listing.
            ("catalog", &["search"]),
            ("search", &["catalog"]),
            ("registry", &["catalog"]),
            ("delivery", &["pickup", "orders"]),
            ("pickup", &["delivery", "orders"]),
            ("agents", &["mandates", "champions", "orders"]),
            ("mandates", &["agents", "champions"]),
            ("champions", &["agents", "mandates"]),
            ("outbox", &[]),
            ("queue", &[]),
            ("ledger", &[]),
            ("limits", &[]),
            ("users", &[]),
        ];
        let names: Vec<&str> = aggregate.iter().map(|(n, _)| *n).collect();
        let mut wrong = Vec::new();
        for (path, text) in sources("store") {
            let module = path.file_stem().unwrap().to_string_lossy().to_string();
            let Some((_, allowed)) = aggregate.iter().find(|(n, _)| *n == module) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for other in &names {
                    if *other == module || shared.contains(other) || allowed.contains(other) {
                        continue;
                    }
                    if code.contains(&format!("crate::{other}::")) {
                        wrong.push(format!("{}:{}: uses {other}", path.display(), i + 1));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
