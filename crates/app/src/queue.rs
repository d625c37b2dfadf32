//! Running the one job queue. Each lane has its own loop (timers, calls to providers, the route
//! planner), so a slow SMS gateway cannot delay an escrow release. A handler per kind does the
//! work; the runner finishes, retries with exponential backoff or gives the job up (dead, for
//! an official to see and send round again). The app registers the order timer; the web edge
//! registers the handlers that call outside providers (they need its HTTP adapters).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tianguis_store::Db;
use tianguis_store::queue::{Kind, Lane, QueuedJob};

/// What became of a job's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its work is done (the handler may already have finished it inside its transaction).
    Done,
    /// Nothing to do any more (the order moved on, the message is no longer worth sending).
    Skipped,
    /// It failed in a way that may pass: try again after the backoff.
    Retry(String),
    /// It can never succeed: give it up now.
    GiveUp(String),
}

impl Outcome {
    /// A job's failure by what went wrong: the database or a lock (it may pass) is tried again,
    /// and so is an order that changed under it; a refusal (not found, not allowed, invalid)
    /// will not change by waiting and is given up.
    pub fn from_error(e: &tianguis_store::StoreError) -> Outcome {
        if e.is_transient()
            || e.msg().is_none()
            || matches!(e, tianguis_store::StoreError::Conflict(_))
        {
            Outcome::Retry(e.to_string())
        } else {
            Outcome::GiveUp(e.to_string())
        }
    }
}

/// The row a job is about: its id from the payload (a job without one can never run: given
/// up), then the row read with `read` (a failure as [`Outcome::from_error`] says). Every
/// handler starts here.
pub async fn row_of<T, F, Fut>(job: &QueuedJob, field: &str, read: F) -> Result<T, Outcome>
where
    F: FnOnce(i64) -> Fut,
    Fut: Future<Output = tianguis_store::Result<T>>,
{
    let id = job
        .id_in(field)
        .map_err(|e| Outcome::GiveUp(e.to_string()))?;
    read(id).await.map_err(|e| Outcome::from_error(&e))
}

pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// Does the work of one kind of job.
pub trait JobHandler: Send + Sync {
    fn run<'a>(&'a self, db: &'a Db, job: &'a QueuedJob) -> JobFuture<'a>;
}

/// How a lane's round went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LaneRun {
    pub done: u32,
    pub skipped: u32,
    pub retried: u32,
    pub dead: u32,
}

impl LaneRun {
    /// Jobs run, whatever became of them.
    pub fn total(&self) -> u32 {
        self.done + self.skipped + self.retried + self.dead
    }
}

#[derive(Clone)]
pub struct Runner {
    handlers: HashMap<Kind, Arc<dyn JobHandler>>,
    /// This process's name in leases.
    worker: String,
}

/// Leases by lane: long enough for the slowest honest run (a route plan solves for seconds).
fn lease_ms(lane: Lane) -> i64 {
    match lane {
        // Database work only, and guarded (an order moves once whoever runs its timer): a
        // short lease lets another server take over soon from one that died holding it.
        Lane::Timers => 20_000,
        // Each call has its own timeout (10 s; a payout's token, transfer and status at most
        // 15 s each): a lease past that only delays a job whose server died holding it.
        Lane::Providers => 60_000,
        Lane::Texts => 30_000,
        Lane::Planner => 10 * 60_000,
    }
}

/// How many jobs one claim takes. Timers are quick database work and go in batches; a
/// provider's call or a route plan may take long, so each is claimed just before it runs and
/// the jobs behind it are not leased while they wait.
fn batch(lane: Lane) -> i64 {
    match lane {
        Lane::Timers => 20,
        Lane::Providers | Lane::Texts | Lane::Planner => 1,
    }
}

impl Runner {
    /// A runner with the order timer's handler; add the others with [`Runner::handle`].
    pub fn new(worker: &str) -> Runner {
        let mut r = Runner {
            handlers: HashMap::new(),
            worker: worker.to_string(),
        };
        r.handlers.insert(Kind::OrderTimer, Arc::new(OrderTimer));
        r
    }

    pub fn handle(mut self, kind: Kind, h: impl JobHandler + 'static) -> Runner {
        self.handlers.insert(kind, Arc::new(h));
        self
    }

    pub fn handles(&self, kind: Kind) -> bool {
        self.handlers.contains_key(&kind)
    }

    /// Claim and run up to `max` due jobs of a lane. Jobs of a kind nobody here handles stay
    /// queued for a process that does (their lease runs out).
    pub async fn run_lane(&self, db: &Db, lane: Lane, max: i64) -> tianguis_store::Result<LaneRun> {
        let mut run = LaneRun::default();
        let mut left = max;
        // In small batches, so a job that schedules another due now (a return that refunds at
        // once) is run in the same round.
        while left > 0 {
            let jobs = db
                .claim_jobs(lane, &self.worker, left.min(batch(lane)), lease_ms(lane))
                .await?;
            if jobs.is_empty() {
                break;
            }
            left -= jobs.len() as i64;
            self.run_jobs(db, jobs, &mut run).await?;
        }
        Ok(run)
    }

    async fn run_jobs(
        &self,
        db: &Db,
        jobs: Vec<QueuedJob>,
        run: &mut LaneRun,
    ) -> tianguis_store::Result<()> {
        for job in jobs {
            let Some(h) = self.handlers.get(&job.kind) else {
                continue;
            };
            match h.run(db, &job).await {
                Outcome::Done => {
                    db.finish_job(&job, "done").await?;
                    run.done += 1;
                }
                Outcome::Skipped => {
                    db.finish_job(&job, "skipped").await?;
                    run.skipped += 1;
                }
                Outcome::Retry(why) => {
                    tracing::warn!(job = job.id, kind = job.kind.as_str(), attempt = job.attempts, error = %why, "job failed; it will be retried");
                    if db.retry_job(&job, &why).await? {
                        run.dead += 1;
                    } else {
                        run.retried += 1;
                    }
                }
                Outcome::GiveUp(why) => {
                    tracing::warn!(job = job.id, kind = job.kind.as_str(), error = %why, "job given up");
                    db.give_up(&job, &why).await?;
                    run.dead += 1;
                }
            }
        }
        Ok(())
    }

    /// Run a lane until nothing is due (tests and the demo's seeding), at most `rounds` rounds.
    pub async fn drain(&self, db: &Db, lane: Lane, rounds: u32) -> tianguis_store::Result<LaneRun> {
        let mut total = LaneRun::default();
        for _ in 0..rounds {
            let r = self.run_lane(db, lane, 200).await?;
            total.done += r.done;
            total.skipped += r.skipped;
            total.retried += r.retried;
            total.dead += r.dead;
            if r == LaneRun::default() {
                break;
            }
        }
        Ok(total)
    }
}

/// A timed order transition, taken as `System` if the order still allows it; the job is
/// finished in the same transaction as its effect.
struct OrderTimer;

impl JobHandler for OrderTimer {
    fn run<'a>(&'a self, db: &'a Db, job: &'a QueuedJob) -> JobFuture<'a> {
        Box::pin(async move {
            match crate::orders::run_timer(db, job).await {
                // Finished in its own transaction (done or skipped), or by another worker.
                Ok(true) => Outcome::Done,
                Ok(false) => Outcome::Skipped,
                // Still changing under it after a few looks: later, not never.
                Err(e) => Outcome::from_error(&e),
            }
        })
    }
}
