//! Group commit for SQLite: several short write units share one transaction and one fsync.
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit waits for the disk; a
//! checkout's own statements take about as long as that wait. Units given to [`Db::write`]
//! queue here; one task takes every unit waiting (up to [`MAX_UNITS`]), runs each inside its
//! own savepoint in one `BEGIN IMMEDIATE` transaction, commits once, and only then answers
//! each caller. A unit that fails is rolled back to its savepoint alone; the others commit. No
//! caller hears "done" before its write is on disk, and a lost group (the commit failed, the
//! task stopped) answers every unit in it with a transient error, so `retrying` runs it again:
//! nothing was written. At low load a group is one unit and this is an ordinary transaction.
//!
//! PostgreSQL groups commits itself across connections: there a unit is its own transaction.
//! Units must only touch the database through the transaction they are given (no waits on the
//! network, no other connection, never `Db::write` or `begin_write` again: that waits for
//! itself): every other unit in the group waits for them. They must also be safe to run twice:
//! if the task stops while its commit is in flight (its runtime shutting down), the commit may
//! still land although the callers hear "lost" and run their units again. The checkout is, by
//! its idempotency key. A unit must not panic: a panic ends the task and loses its group.

use crate::db::{Backend, Db};
use crate::{Result, StoreError};
use sqlx::{Any, AnyPool, Transaction};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// A write transaction, as every `*_in` primitive and write unit takes it.
pub type Tx = Transaction<'static, Any>;
/// What a write unit returns: a future borrowing the transaction.
pub type UnitFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 't>>;

/// Most units in one transaction: a bound on how long the first of them waits.
pub const MAX_UNITS: usize = 64;

/// Called once the group's fate is known: `Ok` when it committed.
type Finish = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;
/// A unit with its result type erased. Its future answers with its finisher and whether the
/// transaction is still usable after it.
type Erased = Box<
    dyn for<'t> FnOnce(&'t mut Tx) -> Pin<Box<dyn Future<Output = (Finish, bool)> + Send + 't>>
        + Send,
>;

/// The queue of one database handle and its counters (shared by every clone of the handle).
#[derive(Default)]
pub(crate) struct Group {
    queue: Mutex<Option<mpsc::UnboundedSender<Erased>>>,
    /// Shared with the task, which holds nothing else of the handle: when the last handle is
    /// dropped, the queue's sender goes with it and the task ends.
    pub(crate) stats: std::sync::Arc<GroupStats>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("stats", &self.stats).finish()
    }
}

/// How many transactions committed units, and how many units they carried.
#[derive(Debug, Default)]
pub struct GroupStats {
    pub commits: AtomicU64,
    pub units: AtomicU64,
}

impl GroupStats {
    pub fn read(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.units.load(Ordering::Relaxed),
        )
    }
}

fn lost(why: &str) -> StoreError {
    // Transient and nothing written: the caller's `retrying` runs the unit again.
    StoreError::Db(sqlx::Error::Protocol(format!("group commit: {why}")))
}

impl Db {
    /// Run a short write unit in a transaction and commit it durably. On SQLite the unit may
    /// share its transaction (and its fsync) with others waiting at the same moment, each in
    /// its own savepoint; see the module notes for what a unit may do.
    pub async fn write<T, F>(&self, unit: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> UnitFuture<'t, T> + Send + 'static,
    {
        if self.backend == Backend::Postgres {
            let mut tx = self.begin_write().await?;
            let t = unit(&mut tx).await?;
            tx.commit().await?;
            return Ok(t);
        }
        let (answer, answered) = oneshot::channel::<Result<T>>();
        let erased: Erased = Box::new(move |tx: &mut Tx| {
            Box::pin(async move {
                if let Err(e) = sqlx::query("SAVEPOINT unit").execute(&mut **tx).await {
                    let f: Finish = Box::new(move |_| {
                        let _ = answer.send(Err(e.into()));
                    });
                    return (f, false);
                }
                match unit(&mut *tx).await {
                    Ok(t) => {
                        let released = sqlx::query("RELEASE unit").execute(&mut **tx).await;
                        let usable = released.is_ok();
                        let f: Finish = Box::new(move |outcome| {
                            let _ = answer.send(match (released, outcome) {
                                // The group rolled back with it: nothing written, try again.
                                (Err(e), _) => Err(lost(&e.to_string())),
                                (Ok(_), Ok(())) => Ok(t),
                                (Ok(_), Err(why)) => Err(lost(&why)),
                            });
                        });
                        (f, usable)
                    }
                    Err(e) => {
                        let usable = sqlx::query("ROLLBACK TO unit")
                            .execute(&mut **tx)
                            .await
                            .is_ok()
                            && sqlx::query("RELEASE unit").execute(&mut **tx).await.is_ok();
                        let f: Finish = Box::new(move |_| {
                            let _ = answer.send(Err(e));
                        });
                        (f, usable)
                    }
                }
            })
        });
        self.group_submit(erased)?;
        answered
            .await
            .unwrap_or_else(|_| Err(lost("the writer stopped before committing")))
    }

    /// Counters of the group commit: (transactions committed, units they carried).
    pub fn group_stats(&self) -> (u64, u64) {
        self.group.stats.read()
    }

    fn group_submit(&self, unit: Erased) -> Result<()> {
        let mut queue = self
            .group
            .queue
            .lock()
            .map_err(|_| lost("the queue lock was poisoned"))?;
        // The task lives on the runtime that first needed it; a new one starts if that
        // runtime has gone (tests run one runtime each).
        let unit = match queue.as_ref() {
            Some(q) => match q.send(unit) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(u)) => u,
            },
            None => unit,
        };
        let (send, recv) = mpsc::unbounded_channel();
        let _ = send.send(unit);
        tokio::spawn(run(self.write.clone(), self.group.stats.clone(), recv));
        *queue = Some(send);
        Ok(())
    }
}

async fn run(
    write: AnyPool,
    stats: std::sync::Arc<GroupStats>,
    mut queue: mpsc::UnboundedReceiver<Erased>,
) {
    let mut carried: VecDeque<Erased> = VecDeque::new();
    loop {
        if carried.is_empty() {
            match queue.recv().await {
                Some(u) => carried.push_back(u),
                None => return,
            }
        }
        while carried.len() < MAX_UNITS {
            match queue.try_recv() {
                Ok(u) => carried.push_back(u),
                Err(_) => break,
            }
        }
        let mut tx = match write.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(_) => {
                // Dropping the units answers them "lost": their callers try again.
                carried.clear();
                continue;
            }
        };
        let mut finished = Vec::with_capacity(carried.len());
        let mut broken = false;
        while let Some(unit) = carried.pop_front() {
            let (finish, usable) = unit(&mut tx).await;
            finished.push(finish);
            if !usable {
                broken = true;
                break;
            }
        }
        let outcome = if broken {
            let _ = tx.rollback().await;
            Err("a unit's failure ended the transaction".to_string())
        } else {
            tx.commit().await.map_err(|e| e.to_string())
        };
        if outcome.is_ok() {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats
                .units
                .fetch_add(finished.len() as u64, Ordering::Relaxed);
        }
        for finish in finished {
            finish(outcome.clone());
        }
        // Units not reached when the transaction broke run in the next one.
    }
}
