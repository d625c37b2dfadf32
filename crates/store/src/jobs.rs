//! The durable jobs table: timed order transitions written in the same transaction as the change
//! that scheduled them. Any number of server processes may run [`Db::run_due_jobs`]: a job is
//! claimed with a lease by a guarded update, and its effect commits together with its
//! `done` mark (guarded on `pending`), so each job takes effect exactly once.

use crate::orders::apply;
use crate::{Db, Result, StoreError, row_i64, row_str};
use tianguis_domain::process::{Actor, ProcessError, Transition};

const LEASE_MS: i64 = 60_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JobRun {
    pub done: u32,
    pub skipped: u32,
    pub failed: u32,
}

impl Db {
    pub async fn jobs_pending(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        row_i64(&r, "n")
    }

    /// Run every job due now; returns what happened. `worker` names this process in leases.
    pub async fn run_due_jobs(&self, worker: &str, max: u32) -> Result<JobRun> {
        let mut run = JobRun::default();
        let timing = self.timing().await?;
        for _ in 0..max {
            let now = self.now_ms();
            let cand = sqlx::query("SELECT id FROM jobs WHERE status = 'pending' AND run_at <= $1 AND (locked_until IS NULL OR locked_until < $2) ORDER BY run_at, id LIMIT 1")
                .bind(now)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
            let Some(cand) = cand else { break };
            let id = row_i64(&cand, "id")?;
            let claimed = sqlx::query(
                "UPDATE jobs SET locked_until = $1, attempts = attempts + 1, last_error = $2 \
                 WHERE id = $3 AND status = 'pending' AND (locked_until IS NULL OR locked_until < $4)",
            )
            .bind(now + LEASE_MS)
            .bind(format!("claimed by {worker}"))
            .bind(id)
            .bind(now)
            .execute(&self.write)
            .await?
            .rows_affected();
            if claimed == 0 {
                continue; // another worker took it
            }
            match self.execute_job(id, now, &timing).await {
                Ok(true) => run.done += 1,
                Ok(false) => run.skipped += 1,
                Err(e) => {
                    tracing::warn!(job = id, error = %e, "job failed; it will be retried after its lease");
                    run.failed += 1;
                    sqlx::query("UPDATE jobs SET last_error = $1 WHERE id = $2")
                        .bind(e.to_string())
                        .bind(id)
                        .execute(&self.write)
                        .await?;
                }
            }
        }
        Ok(run)
    }

    /// Returns Ok(true) when the transition was taken, Ok(false) when the order had moved on.
    async fn execute_job(
        &self,
        id: i64,
        now: i64,
        policy: &tianguis_domain::process::Timing,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("SELECT order_id, transition FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let order_id = row_i64(&r, "order_id")?;
        let name = row_str(&r, "transition")?;
        let t = Transition::parse(&name)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown job {name}")))?;
        let outcome = match apply(
            &mut tx,
            now,
            policy,
            order_id,
            t,
            Actor::System,
            None,
            "timer",
            None,
            "",
        )
        .await
        {
            Ok(_) => "done",
            Err(StoreError::Process(
                ProcessError::NotAllowedFrom { .. } | ProcessError::WrongPayment { .. },
            )) => "skipped",
            Err(e) => return Err(e),
        };
        let n = sqlx::query("UPDATE jobs SET status = $1, locked_until = NULL, last_error = NULL WHERE id = $2 AND status = 'pending'")
            .bind(outcome)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(outcome == "done")
    }
}
