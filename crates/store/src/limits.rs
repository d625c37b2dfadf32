//! Rate limits kept in the database, so every server process behind a load balancer counts the
//! same events: one `rate_events` row per counted event under a key (a phone, an account, a
//! client address), counted over a sliding window. Writes go through the write path.

use crate::{Db, Result, row_i64};
use sqlx::{Any, Transaction};

/// At most `max` events under `key` in the last `window_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub key: String,
    pub max: u32,
    pub window_ms: i64,
}

impl Limit {
    pub fn per_minute(key: impl Into<String>, max: u32) -> Limit {
        Limit {
            key: key.into(),
            max,
            window_ms: 60_000,
        }
    }
    pub fn per_hour(key: impl Into<String>, max: u32) -> Limit {
        Limit {
            key: key.into(),
            max,
            window_ms: 3_600_000,
        }
    }
}

/// Whether any limit is reached, read inside the caller's transaction.
pub async fn reached_in(
    tx: &mut Transaction<'static, Any>,
    limits: &[Limit],
    now: i64,
) -> Result<bool> {
    for l in limits {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM rate_events WHERE key = $1 AND at > $2")
            .bind(l.key.clone())
            .bind(now - l.window_ms)
            .fetch_one(&mut **tx)
            .await?;
        if row_i64(&r, "n")? >= i64::from(l.max) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Count one event under each key, inside the caller's transaction.
pub async fn record_in(
    tx: &mut Transaction<'static, Any>,
    limits: &[Limit],
    now: i64,
) -> Result<()> {
    for l in limits {
        sqlx::query("INSERT INTO rate_events (key, at) VALUES ($1, $2)")
            .bind(l.key.clone())
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Take one event from every limit inside the caller's transaction: false (and nothing counted)
/// when any limit is already reached.
pub async fn take_in(
    tx: &mut Transaction<'static, Any>,
    limits: &[Limit],
    now: i64,
) -> Result<bool> {
    if reached_in(tx, limits, now).await? {
        return Ok(false);
    }
    record_in(tx, limits, now).await?;
    Ok(true)
}

impl Db {
    /// Take one event from every limit: false (and nothing counted) when any is reached.
    pub async fn rate_take(&self, limits: &[Limit]) -> Result<bool> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let ok = take_in(&mut tx, limits, now).await?;
        tx.commit().await?;
        Ok(ok)
    }

    /// Whether any limit is reached, without counting (for limits on failures only).
    pub async fn rate_reached(&self, limits: &[Limit]) -> Result<bool> {
        let now = self.now_ms();
        for l in limits {
            let r = sqlx::query("SELECT COUNT(*) AS n FROM rate_events WHERE key = $1 AND at > $2")
                .bind(l.key.clone())
                .bind(now - l.window_ms)
                .fetch_one(&self.pool)
                .await?;
            if row_i64(&r, "n")? >= i64::from(l.max) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Count one event under each limit's key (a failed login, say).
    pub async fn rate_record(&self, limits: &[Limit]) -> Result<()> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        record_in(&mut tx, limits, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forget events older than a day; returns how many.
    pub async fn sweep_rate_events(&self) -> Result<u64> {
        let cutoff = self.now_ms() - 86_400_000;
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM rate_events WHERE at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
