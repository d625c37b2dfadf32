//! Rate limits kept in the database, so every server process behind a load balancer counts the
//! same events: one `rate_counts` row per key (a phone, an account, a client address) and fixed
//! window, incremented in place. Writes go through the write path.

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

impl Limit {
    /// The start of the window `now` falls in.
    fn window(&self, now: i64) -> i64 {
        let w = self.window_ms.max(1);
        now - now.rem_euclid(w)
    }
}

/// Count one event under each limit's key; the counts after it.
async fn bump_in(
    tx: &mut Transaction<'static, Any>,
    limits: &[Limit],
    now: i64,
) -> Result<Vec<i64>> {
    let mut out = Vec::with_capacity(limits.len());
    for l in limits {
        let r = sqlx::query(
            "INSERT INTO rate_counts (key, window_start, n) VALUES ($1, $2, 1) \
             ON CONFLICT (key, window_start) DO UPDATE SET n = rate_counts.n + 1 RETURNING n",
        )
        .bind(l.key.clone())
        .bind(l.window(now))
        .fetch_one(&mut **tx)
        .await?;
        out.push(row_i64(&r, "n")?);
    }
    Ok(out)
}

/// Take one event from every limit inside the caller's transaction: false when any limit is
/// passed, and then the caller rolls back (the counts go back with everything else). One
/// statement per limit, whatever the traffic.
pub async fn take_in(
    tx: &mut Transaction<'static, Any>,
    limits: &[Limit],
    now: i64,
) -> Result<bool> {
    let counts = bump_in(tx, limits, now).await?;
    Ok(counts
        .iter()
        .zip(limits)
        .all(|(n, l)| *n <= i64::from(l.max)))
}

impl Db {
    /// Take one event from every limit: false (and nothing counted) when any is reached.
    pub async fn rate_take(&self, limits: &[Limit]) -> Result<bool> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        if take_in(&mut tx, limits, now).await? {
            tx.commit().await?;
            Ok(true)
        } else {
            tx.rollback().await?;
            Ok(false)
        }
    }

    /// Take one event from every limit, as [`Db::rate_take`], and say when it was counted, so
    /// an attempt that turns out well can be given back ([`Db::rate_give_back`]). None when a
    /// limit is reached (nothing counted).
    pub async fn rate_attempt(&self, limits: &[Limit]) -> Result<Option<i64>> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        if take_in(&mut tx, limits, now).await? {
            tx.commit().await?;
            Ok(Some(now))
        } else {
            tx.rollback().await?;
            Ok(None)
        }
    }

    /// Uncount an event taken at `taken_at` (in the window it was counted in).
    pub async fn rate_give_back(&self, limits: &[Limit], taken_at: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for l in limits {
            sqlx::query(
                "UPDATE rate_counts SET n = n - 1 WHERE key = $1 AND window_start = $2 AND n > 0",
            )
            .bind(l.key.clone())
            .bind(l.window(taken_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forget windows older than a day; returns how many.
    pub async fn sweep_rate_events(&self) -> Result<u64> {
        let cutoff = self.now_ms() - 86_400_000;
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM rate_counts WHERE window_start < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::Limit;

    #[test]
    fn windows_are_fixed_and_aligned() {
        let l = Limit::per_minute("k", 3);
        assert_eq!(l.window(0), 0);
        assert_eq!(l.window(59_999), 0);
        assert_eq!(l.window(60_000), 60_000);
        assert_eq!(Limit::per_hour("k", 1).window(3_600_001), 3_600_000);
    }
}
