//! Stored phone numbers brought to E.164 in the marketplace's country, once per country: run
//! after the migrations and whenever an official sets the country. Two accounts that turn out
//! to hold one number are reported (`phone_reports`), never merged.

use crate::{Db, Result, row_i64, row_opt_i64, row_opt_str, row_str};
use tianguis_domain::phone::{Finding, PhoneNumber, normalise_plan};

/// One reported account, for the officials' page.
#[derive(Debug, Clone)]
pub struct PhoneReport {
    pub id: i64,
    pub user_id: i64,
    pub user_name: String,
    pub other_user_id: Option<i64>,
    pub stored: String,
    pub e164: Option<String>,
    pub reason: String,
    pub found_at: i64,
}

const MARKER: &str = "phones_normalised_for";

impl Db {
    /// Normalise every stored phone for the current `country` unless that was done already.
    /// Returns how many accounts were reported. Several servers starting at once do it once:
    /// the marker row is locked first and read after the lock.
    pub async fn normalise_phones(&self) -> Result<usize> {
        let region = self.phone_region().await?;
        let target = region.map(|r| r.code().to_string()).unwrap_or("-".into());
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        if crate::db::lock_marker_in(&mut tx, MARKER).await? == target {
            tx.rollback().await?;
            return Ok(0);
        }
        let rows = sqlx::query("SELECT id, phone FROM users ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        let rows = rows
            .iter()
            .map(|r| Ok((row_i64(r, "id")?, row_str(r, "phone")?)))
            .collect::<Result<Vec<_>>>()?;
        let stored: std::collections::HashMap<i64, &str> =
            rows.iter().map(|(i, p)| (*i, p.as_str())).collect();
        let mut reported = 0;
        let plan = normalise_plan(&rows, region);
        // Rewrites in two steps so two accounts swapping forms never meet on the unique index.
        for f in &plan {
            if let Finding::Rewrite { user, .. } = f {
                sqlx::query("UPDATE users SET phone = $1 WHERE id = $2")
                    .bind(format!("~{user}"))
                    .bind(*user)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for f in &plan {
            let (user, other, e164, reason) = match f {
                Finding::Rewrite { user, e164 } => {
                    sqlx::query("UPDATE users SET phone = $1 WHERE id = $2")
                        .bind(e164.clone())
                        .bind(*user)
                        .execute(&mut *tx)
                        .await?;
                    continue;
                }
                Finding::Duplicate {
                    user,
                    kept_by,
                    e164,
                } => (*user, Some(*kept_by), Some(e164.clone()), "duplicate"),
                Finding::Unreadable { user } => (*user, None, None, "unreadable"),
            };
            reported += 1;
            sqlx::query("INSERT INTO phone_reports (user_id, other_user_id, stored, e164, reason, found_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(user)
                .bind(other)
                .bind(stored.get(&user).copied().unwrap_or("").to_string())
                .bind(e164)
                .bind(reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        // Checkout phones and the address registry follow (no uniqueness to keep but the
        // registry's one property per phone and code).
        for (table, col) in [("checkouts", "phone"), ("address_registry", "owner_phone")] {
            let q = format!("SELECT DISTINCT {col} AS p FROM {table}");
            let values = sqlx::query(crate::sql(q)).fetch_all(&mut *tx).await?;
            for v in &values {
                let old = row_str(v, "p")?;
                let Ok(new) = PhoneNumber::parse(&old, region) else {
                    continue;
                };
                if new.as_str() == old {
                    continue;
                }
                let q = if table == "address_registry" {
                    "UPDATE address_registry SET owner_phone = $1 WHERE owner_phone = $2 AND NOT EXISTS (SELECT 1 FROM address_registry b WHERE b.owner_phone = $1 AND b.plus_code = address_registry.plus_code)".to_string()
                } else {
                    format!("UPDATE {table} SET {col} = $1 WHERE {col} = $2")
                };
                sqlx::query(crate::sql(q))
                    .bind(new.as_str().to_string())
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("UPDATE settings SET value = $1 WHERE key = $2")
            .bind(target)
            .bind(MARKER)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if reported > 0 {
            tracing::warn!(
                reported,
                "phones normalised: some accounts share a number or cannot be read; see /admin/users"
            );
        }
        Ok(reported)
    }

    /// Set the marketplace's country (ISO 3166 alpha-2) and bring stored phones to it.
    pub async fn set_country(&self, code: &str) -> Result<usize> {
        let r = tianguis_domain::phone::Region::parse(code)
            .map_err(|e| crate::StoreError::Invalid(e.msg()))?;
        self.set_setting("country", r.code()).await?;
        self.normalise_phones().await
    }

    /// Reports not yet settled, oldest first.
    pub async fn phone_reports(&self) -> Result<Vec<PhoneReport>> {
        let rows = sqlx::query("SELECT r.id, r.user_id, u.name, r.other_user_id, r.stored, r.e164, r.reason, r.found_at FROM phone_reports r JOIN users u ON u.id = r.user_id WHERE r.settled_at IS NULL ORDER BY r.id LIMIT 200")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PhoneReport {
                    id: row_i64(r, "id")?,
                    user_id: row_i64(r, "user_id")?,
                    user_name: row_str(r, "name")?,
                    other_user_id: row_opt_i64(r, "other_user_id")?,
                    stored: row_str(r, "stored")?,
                    e164: row_opt_str(r, "e164")?,
                    reason: row_str(r, "reason")?,
                    found_at: row_i64(r, "found_at")?,
                })
            })
            .collect()
    }

    /// An official settled a report (after suspending the account or giving it its own number).
    pub async fn settle_phone_report(&self, by: i64, id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE phone_reports SET settled_by = $1, settled_at = $2 WHERE id = $3 AND settled_at IS NULL",
        )
        .bind(by)
        .bind(self.now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(crate::StoreError::NotFound("phone report"));
        }
        tx.commit().await?;
        Ok(())
    }
}
