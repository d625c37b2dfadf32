//! Contract tests of the storage layer itself (the use cases over it are tested in the app's
//! tests), each on a fresh SQLite file and a fresh PostgreSQL database.

use std::time::Duration;
use tianguis_store::queue::{Kind, Lane, backoff};
use tianguis_testkit::all;

/// The one job queue: a job is claimed by one worker at a time; a worker that dies loses its
/// lease and the job is claimed again; failures back off exponentially and end dead after the
/// kind's attempts; an official sends a dead job round again; lanes never mix.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_leases_retries_with_backoff_and_gives_up_on_the_record() {
    for t in all().await {
        let db = &t.db;
        let now = db.now_ms();
        let sms = db
            .enqueue(Kind::Sms, serde_json::json!({"outbox_id": 1}), now)
            .await
            .unwrap();
        db.enqueue(
            Kind::MomoStatus,
            serde_json::json!({"payment_id": 1}),
            now + 60_000,
        )
        .await
        .unwrap();
        // Lanes never mix: the timers' loop sees none of the providers' jobs.
        assert!(
            db.claim_jobs(Lane::Timers, "a", 10, 1000)
                .await
                .unwrap()
                .is_empty()
        );
        let got = db.claim_jobs(Lane::Texts, "a", 10, 1000).await.unwrap();
        assert_eq!(got.len(), 1, "the status check is in the providers' lane");
        assert_eq!((got[0].id, got[0].attempts), (sms, 1));
        assert!(
            db.claim_jobs(Lane::Texts, "b", 10, 1000)
                .await
                .unwrap()
                .is_empty(),
            "leased to a"
        );
        // a dies: after the lease, b claims it (its second attempt).
        db.clock.advance(Duration::from_millis(1500));
        let again = db.claim_jobs(Lane::Texts, "b", 10, 1000).await.unwrap();
        assert_eq!((again[0].id, again[0].attempts), (sms, 2));
        // A failure waits out the backoff, doubling each time.
        assert!(!db.retry_job(&again[0], "gateway down").await.unwrap());
        assert!(
            db.claim_jobs(Lane::Texts, "c", 10, 1000)
                .await
                .unwrap()
                .is_empty()
        );
        db.clock.advance(Duration::from_millis(
            backoff(Kind::Sms.backoff_ms(), 2) as u64 + 1,
        ));
        let mut job = db
            .claim_jobs(Lane::Texts, "c", 10, 1000)
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.id == sms)
            .unwrap();
        assert_eq!(job.attempts, 3);
        // Until its attempts are used: then it is dead, with the reason, for officials.
        while !db.retry_job(&job, "gateway down").await.unwrap() {
            db.clock.advance(Duration::from_secs(3600));
            job = db
                .claim_jobs(Lane::Texts, "c", 10, 1000)
                .await
                .unwrap()
                .into_iter()
                .find(|j| j.id == sms)
                .unwrap();
        }
        assert_eq!(job.attempts, Kind::Sms.max_attempts());
        let dead = db.jobs_in("dead", 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].last_error.as_deref(), Some("gateway down"));
        // An official sends it round again, with fresh attempts.
        db.requeue(sms).await.unwrap();
        assert!(db.requeue(sms).await.is_err(), "only dead jobs");
        let back = db
            .claim_jobs(Lane::Texts, "d", 10, 1000)
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.id == sms)
            .unwrap();
        assert_eq!(back.attempts, 1);
        db.finish_job(&back, "done").await.unwrap();
        assert_eq!(db.jobs_in("done", 10).await.unwrap().len(), 1);
        // Finishing is guarded: a second finish changes nothing.
        assert!(!db.finish_job(&back, "skipped").await.unwrap());
        assert_eq!(db.jobs_in("done", 10).await.unwrap()[0].status, "done");

        // A worker whose lease ran out while it worked is fenced off: the job was claimed
        // again, and the stale claim's finish, retry and give-up change nothing.
        let slow = db
            .enqueue(
                Kind::RoutePlan,
                serde_json::json!({"plan_id": 2}),
                db.now_ms(),
            )
            .await
            .unwrap();
        let stale = db.claim_jobs(Lane::Planner, "e", 1, 1000).await.unwrap();
        assert_eq!(stale[0].id, slow);
        db.clock.advance(Duration::from_millis(1500));
        let fresh = db.claim_jobs(Lane::Planner, "f", 1, 60_000).await.unwrap();
        assert_eq!((fresh[0].id, fresh[0].attempts), (slow, 2));
        assert!(!db.finish_job(&stale[0], "done").await.unwrap());
        assert!(!db.retry_job(&stale[0], "late").await.unwrap());
        db.give_up(&stale[0], "late").await.unwrap();
        assert!(
            db.claim_jobs(Lane::Planner, "g", 1, 1000)
                .await
                .unwrap()
                .is_empty(),
            "still leased to f"
        );
        assert_eq!(db.jobs_in("dead", 10).await.unwrap().len(), 0);
        assert!(db.finish_job(&fresh[0], "done").await.unwrap());
        assert_eq!(db.jobs_in("done", 10).await.unwrap().len(), 2);

        // A job whose payload cannot be read is given up on the record, and the rest still run.
        let bad = db
            .enqueue(
                Kind::RoutePlan,
                serde_json::json!({"plan_id": 3}),
                db.now_ms(),
            )
            .await
            .unwrap();
        let good = db
            .enqueue(
                Kind::RoutePlan,
                serde_json::json!({"plan_id": 4}),
                db.now_ms(),
            )
            .await
            .unwrap();
        db.raw_execute(
            "UPDATE queue SET payload = 'not json' WHERE id = (SELECT MAX(id) - 1 FROM queue)",
        )
        .await
        .unwrap();
        let got = db.claim_jobs(Lane::Planner, "h", 5, 1000).await.unwrap();
        assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![good]);
        let dead = db.jobs_in("dead", 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].id, bad);
        assert!(dead[0].last_error.as_deref().unwrap().contains("payload"));
    }
}

/// Write units that share a transaction (SQLite's group commit) are each all or nothing: a
/// unit that fails leaves none of its rows and takes no other unit with it, and a caller
/// hears "done" only when its rows are committed (another connection sees them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_units_sharing_a_commit_stand_or_fall_alone() {
    for t in all().await {
        let db = t.db.clone();
        db.raw_execute(
            "CREATE TABLE group_probe (id BIGINT PRIMARY KEY, v BIGINT NOT NULL UNIQUE)",
        )
        .await
        .unwrap();
        let before = db.group_stats();
        let mut tasks = Vec::new();
        for i in 0..200i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let r = db
                    .write(move |tx| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO group_probe (id, v) VALUES ($1, $2)")
                                .bind(i)
                                .bind(i)
                                .execute(&mut **tx)
                                .await?;
                            if i % 10 == 0 {
                                // Breaks the unique v: this unit fails after its first row.
                                sqlx::query("INSERT INTO group_probe (id, v) VALUES ($1, $2)")
                                    .bind(1000 + i)
                                    .bind(i)
                                    .execute(&mut **tx)
                                    .await?;
                            }
                            Ok(i)
                        })
                    })
                    .await;
                if r.is_ok() {
                    let seen: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM group_probe WHERE id = $1")
                            .bind(i)
                            .fetch_one(&db.pool)
                            .await
                            .unwrap();
                    assert_eq!(seen, 1, "unit {i} answered before its row was committed");
                }
                (i, r.is_ok())
            }));
        }
        for task in tasks {
            let (i, ok) = task.await.unwrap();
            assert_eq!(ok, i % 10 != 0, "unit {i}");
        }
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM group_probe ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
        let want: Vec<i64> = (0..200).filter(|i| i % 10 != 0).collect();
        assert_eq!(
            ids, want,
            "failed units left nothing, the rest all committed"
        );
        if !t.is_postgres() {
            let (commits, units) = db.group_stats();
            let (commits, units) = (commits - before.0, units - before.1);
            assert_eq!(units, 200, "every unit reached a committed transaction");
            assert!(
                commits < units,
                "200 units at once share transactions: {commits} commits"
            );
        }
    }
}
