//! The one job queue (persistence). A job is written in the same transaction as the change that
//! calls for it, claimed by one worker at a time with a lease, and finished, retried with
//! exponential backoff, or given up (`dead`) after its attempts. Any number of server processes
//! may claim from the same database: a claim is a guarded update.

use crate::{Db, Result, StoreError, row_i64, row_opt_i64, row_opt_str, row_str};
use sqlx::{Any, Transaction};

/// The worker loops. Order timers never share a loop with calls to outside providers, so a
/// slow gateway cannot delay an escrow release; money (mobile-money requests and status
/// checks, payouts) never waits behind a burst of texts; the route planner's CPU work has its
/// own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Timers,
    /// Calls to the money providers.
    Providers,
    /// Texts to the SMS gateway.
    Texts,
    Planner,
}

impl Lane {
    pub const ALL: [Lane; 4] = [Lane::Timers, Lane::Providers, Lane::Texts, Lane::Planner];
    pub fn as_str(&self) -> &'static str {
        match self {
            Lane::Timers => "timers",
            Lane::Providers => "providers",
            Lane::Texts => "texts",
            Lane::Planner => "planner",
        }
    }
}

/// What kind of job, its lane and how it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A timed order transition (payload: order_id, transition).
    OrderTimer,
    /// Send a text from the outbox (payload: outbox_id).
    Sms,
    /// Ask the mobile-money provider to collect a payment (payload: payment_id).
    MomoRequest,
    /// Ask the provider what became of a payment whose callback did not come (payload:
    /// payment_id).
    MomoStatus,
    /// Solve a carrier's route plan (payload: plan_id).
    RoutePlan,
    /// Transfer a payout line through the disbursement provider and follow it to its answer
    /// (payload: line_id): asked about first, requested only if the provider never had it.
    Payout,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::OrderTimer,
        Kind::Sms,
        Kind::MomoRequest,
        Kind::MomoStatus,
        Kind::RoutePlan,
        Kind::Payout,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::OrderTimer => "order_timer",
            Kind::Sms => "sms",
            Kind::MomoRequest => "momo_request",
            Kind::MomoStatus => "momo_status",
            Kind::RoutePlan => "route_plan",
            Kind::Payout => "payout",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    pub fn lane(&self) -> Lane {
        match self {
            Kind::OrderTimer => Lane::Timers,
            Kind::MomoRequest | Kind::MomoStatus | Kind::Payout => Lane::Providers,
            Kind::Sms => Lane::Texts,
            Kind::RoutePlan => Lane::Planner,
        }
    }
    /// Attempts before the job is given up.
    pub fn max_attempts(&self) -> i64 {
        match self {
            Kind::OrderTimer => 10,
            Kind::Sms => 6,
            // Asked again while the order waits for its payment (the unpaid window).
            Kind::MomoRequest => 12,
            Kind::MomoStatus => 12,
            Kind::RoutePlan => 3,
            // Money owed stays owed: asked for a day before an official looks.
            Kind::Payout => 16,
        }
    }
    /// The first retry's delay; each next one doubles, up to `backoff_cap_ms`.
    pub fn backoff_ms(&self) -> i64 {
        match self {
            Kind::OrderTimer => 5_000,
            Kind::Sms => 30_000,
            Kind::MomoRequest => 2_000,
            Kind::MomoStatus => 30_000,
            Kind::RoutePlan => 10_000,
            Kind::Payout => 10_000,
        }
    }
}

/// The longest wait between two attempts.
pub const BACKOFF_CAP_MS: i64 = 15 * 60_000;

/// The delay before retry number `attempts` (1 = the first retry): `base * 2^(attempts-1)`,
/// capped. Pure, so the schedule is tested directly.
pub fn backoff(base_ms: i64, attempts: i64) -> i64 {
    let n = attempts.clamp(1, 30) - 1;
    base_ms.saturating_mul(1i64 << n).min(BACKOFF_CAP_MS)
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct QueuedJob {
    pub id: i64,
    pub kind: Kind,
    pub payload: serde_json::Value,
    /// Attempts including this one.
    pub attempts: i64,
    pub max_attempts: i64,
    /// The worker holding the lease. With `attempts`, the fence: once the lease ran out and
    /// another worker claimed the job, this claim's finish, retry or give-up changes nothing.
    pub worker: String,
}

impl QueuedJob {
    pub fn id_in(&self, field: &str) -> Result<i64> {
        self.payload[field]
            .as_i64()
            .ok_or_else(|| StoreError::Corrupt(format!("job {} has no {field}", self.id)))
    }
}

/// A job as officials see it.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub lane: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// Write a job inside the caller's transaction, to run at `run_at`.
pub async fn enqueue_in(
    tx: &mut Transaction<'static, Any>,
    kind: Kind,
    payload: serde_json::Value,
    run_at: i64,
    now: i64,
) -> Result<i64> {
    let r = sqlx::query("INSERT INTO queue (kind, lane, payload, run_at, status, attempts, max_attempts, created_at) VALUES ($1,$2,$3,$4,'pending',0,$5,$6) RETURNING id")
        .bind(kind.as_str())
        .bind(kind.lane().as_str())
        .bind(payload.to_string())
        .bind(run_at)
        .bind(kind.max_attempts())
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
    row_i64(&r, "id")
}

/// Move a job not yet claimed to another time (an order's unpaid deadline after the buyer
/// chose again how to pay). The payload is matched as written. Returns how many moved.
pub async fn reschedule_in(
    tx: &mut Transaction<'static, Any>,
    kind: Kind,
    payload: &serde_json::Value,
    run_at: i64,
    now: i64,
) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE queue SET run_at = $1 WHERE kind = $2 AND payload = $3 AND status = 'pending' \
         AND (locked_until IS NULL OR locked_until < $4)",
    )
    .bind(run_at)
    .bind(kind.as_str())
    .bind(payload.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// Finish a claimed job inside the transaction of its effect (`done` or `skipped`), fenced on
/// the claim: false when another worker got there first, and the caller rolls back. This is
/// what makes a job's effect happen exactly once.
pub async fn finish_in(
    tx: &mut Transaction<'static, Any>,
    job: &QueuedJob,
    status: &str,
    now: i64,
) -> Result<bool> {
    // The fence every change to a claimed job carries: still pending, and still this claim's
    // (the same worker, the same attempt). A worker whose lease ran out while it worked finds
    // the job claimed again and changes nothing.
    let n = sqlx::query("UPDATE queue SET status = $1, locked_until = NULL, locked_by = NULL, last_error = NULL, finished_at = $2 WHERE id = $3 AND status = 'pending' AND locked_by = $4 AND attempts = $5")
        .bind(status.to_string())
        .bind(now)
        .bind(job.id)
        .bind(job.worker.clone())
        .bind(job.attempts)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(n == 1)
}

impl Db {
    /// Write a job in its own transaction.
    pub async fn enqueue(
        &self,
        kind: Kind,
        payload: serde_json::Value,
        run_at: i64,
    ) -> Result<i64> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let id = enqueue_in(&mut tx, kind, payload, run_at, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Claim up to `max` due jobs of a lane for `worker`, each with a lease. A job whose lease
    /// ran out (its worker died) is claimed again; one out of attempts is given up instead.
    pub async fn claim_jobs(
        &self,
        lane: Lane,
        worker: &str,
        max: i64,
        lease_ms: i64,
    ) -> Result<Vec<QueuedJob>> {
        let now = self.now_ms();
        let rows = sqlx::query("SELECT id, kind, payload, attempts, max_attempts FROM queue WHERE lane = $1 AND status = 'pending' AND run_at <= $2 AND (locked_until IS NULL OR locked_until < $3) ORDER BY run_at, id LIMIT $4")
            .bind(lane.as_str())
            .bind(now)
            .bind(now)
            .bind(max)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let id = row_i64(r, "id")?;
            let attempts = row_i64(r, "attempts")?;
            let max_attempts = row_i64(r, "max_attempts")?;
            if attempts >= max_attempts {
                // Its last attempt never reported back (the worker died, or it hangs).
                self.give_up_unclaimed(
                    id,
                    attempts,
                    now,
                    "attempts used up (the last one never finished)",
                )
                .await?;
                continue;
            }
            let claimed = sqlx::query("UPDATE queue SET locked_until = $1, locked_by = $2, attempts = attempts + 1 WHERE id = $3 AND status = 'pending' AND (locked_until IS NULL OR locked_until < $4)")
                .bind(now + lease_ms)
                .bind(worker.to_string())
                .bind(id)
                .bind(now)
                .execute(&self.write)
                .await?
                .rows_affected();
            if claimed == 0 {
                continue; // another worker took it
            }
            let mut job = QueuedJob {
                id,
                kind: Kind::OrderTimer,
                payload: serde_json::Value::Null,
                attempts: attempts + 1,
                max_attempts,
                worker: worker.to_string(),
            };
            // A job that cannot be read is given up on the record; the others still run.
            let kind = row_str(r, "kind")?;
            let Some(kind) = Kind::parse(&kind) else {
                self.give_up(&job, &format!("unknown kind {kind}")).await?;
                continue;
            };
            job.kind = kind;
            match serde_json::from_str(&row_str(r, "payload")?) {
                Ok(payload) => job.payload = payload,
                Err(e) => {
                    self.give_up(&job, &format!("unreadable payload: {e}"))
                        .await?;
                    continue;
                }
            }
            out.push(job);
        }
        Ok(out)
    }

    /// Finish a job outside any effect (its work was a call to the outside world). False when
    /// the claim was no longer this worker's.
    pub async fn finish_job(&self, job: &QueuedJob, status: &str) -> Result<bool> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let done = finish_in(&mut tx, job, status, now).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// A job failed in a way that may pass: try again after its backoff, or give it up when its
    /// attempts are used. Returns true when it was given up.
    pub async fn retry_job(&self, job: &QueuedJob, error: &str) -> Result<bool> {
        if job.attempts >= job.max_attempts {
            self.give_up(job, error).await?;
            return Ok(true);
        }
        let delay = backoff(job.kind.backoff_ms(), job.attempts);
        sqlx::query("UPDATE queue SET locked_until = NULL, locked_by = NULL, last_error = $1, run_at = $2 WHERE id = $3 AND status = 'pending' AND locked_by = $4 AND attempts = $5")
            .bind(error.chars().take(500).collect::<String>())
            .bind(self.now_ms() + delay)
            .bind(job.id)
            .bind(job.worker.clone())
            .bind(job.attempts)
            .execute(&self.write)
            .await?;
        Ok(false)
    }

    /// Give a claimed job up: dead, with the reason, for an official to see (fenced on the
    /// claim, like finishing it).
    pub async fn give_up(&self, job: &QueuedJob, error: &str) -> Result<()> {
        sqlx::query("UPDATE queue SET status = 'dead', locked_until = NULL, locked_by = NULL, last_error = $1, finished_at = $2 WHERE id = $3 AND status = 'pending' AND locked_by = $4 AND attempts = $5")
            .bind(error.chars().take(500).collect::<String>())
            .bind(self.now_ms())
            .bind(job.id)
            .bind(job.worker.clone())
            .bind(job.attempts)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Give up a job nobody holds (its last lease ran out): guarded on the attempts seen and
    /// the lease still being out, so a claim made meanwhile is left alone.
    async fn give_up_unclaimed(&self, id: i64, attempts: i64, now: i64, error: &str) -> Result<()> {
        sqlx::query("UPDATE queue SET status = 'dead', locked_until = NULL, locked_by = NULL, last_error = $1, finished_at = $2 WHERE id = $3 AND status = 'pending' AND attempts = $4 AND (locked_until IS NULL OR locked_until < $5)")
            .bind(error.to_string())
            .bind(now)
            .bind(id)
            .bind(attempts)
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// An official sends a dead job round again, with its attempts renewed.
    pub async fn requeue(&self, id: i64) -> Result<()> {
        let n = sqlx::query("UPDATE queue SET status = 'pending', attempts = 0, run_at = $1, locked_until = NULL, locked_by = NULL, finished_at = NULL WHERE id = $2 AND status = 'dead'")
            .bind(self.now_ms())
            .bind(id)
            .execute(&self.write)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("job"));
        }
        Ok(())
    }

    /// Jobs by lane, kind and status, for officials and metrics.
    pub async fn job_counts(&self) -> Result<Vec<(String, String, String, i64)>> {
        sqlx::query("SELECT lane, kind, status, COUNT(*) AS n FROM queue GROUP BY lane, kind, status ORDER BY lane, kind, status")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    row_str(r, "lane")?,
                    row_str(r, "kind")?,
                    row_str(r, "status")?,
                    row_i64(r, "n")?,
                ))
            })
            .collect()
    }

    /// Pending jobs of one lane.
    pub async fn jobs_pending_in(&self, lane: Lane) -> Result<i64> {
        let r =
            sqlx::query("SELECT COUNT(*) AS n FROM queue WHERE status = 'pending' AND lane = $1")
                .bind(lane.as_str())
                .fetch_one(&self.pool)
                .await?;
        row_i64(&r, "n")
    }

    pub async fn jobs_pending(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM queue WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        row_i64(&r, "n")
    }

    /// Jobs in a status (`dead`, `pending`, ...), newest first.
    pub async fn jobs_in(&self, status: &str, limit: i64) -> Result<Vec<JobRecord>> {
        sqlx::query("SELECT * FROM queue WHERE status = $1 ORDER BY id DESC LIMIT $2")
            .bind(status.to_string())
            .bind(limit.clamp(1, 500))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(JobRecord {
                    id: row_i64(r, "id")?,
                    kind: row_str(r, "kind")?,
                    lane: row_str(r, "lane")?,
                    payload: row_str(r, "payload")?,
                    status: row_str(r, "status")?,
                    attempts: row_i64(r, "attempts")?,
                    max_attempts: row_i64(r, "max_attempts")?,
                    run_at: row_i64(r, "run_at")?,
                    last_error: row_opt_str(r, "last_error")?,
                    created_at: row_i64(r, "created_at")?,
                    finished_at: row_opt_i64(r, "finished_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1000, 1), 1000);
        assert_eq!(backoff(1000, 2), 2000);
        assert_eq!(backoff(1000, 5), 16_000);
        assert_eq!(backoff(1000, 40), BACKOFF_CAP_MS);
        assert_eq!(backoff(30_000, 0), 30_000);
    }

    #[test]
    fn kinds_round_trip_and_never_mix_timers_with_providers() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert!(k.max_attempts() >= 1);
        }
        assert_eq!(Kind::OrderTimer.lane(), Lane::Timers);
        for k in [Kind::MomoRequest, Kind::MomoStatus, Kind::Payout] {
            assert_eq!(k.lane(), Lane::Providers);
        }
        assert_eq!(Kind::Sms.lane(), Lane::Texts);
    }
}
