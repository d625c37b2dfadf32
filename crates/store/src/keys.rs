//! The marketplace's signing keys for the credentials it issues, as Multikey strings (made and
//! read by `tianguis_credential`). One key is in use; a rotation retires it in the same
//! transaction that adds the next, so there is never none and never two. Retired keys stay
//! published (what they signed before they were retired still verifies) without their
//! secret half; a revoked key's signatures no longer count. The secret half of the key in use
//! is read only to sign.

use crate::{Db, Result, StoreError, row_i64, row_str};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub id: i64,
    pub public_multibase: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

fn key_from(r: &sqlx::any::AnyRow) -> Result<SigningKey> {
    Ok(SigningKey {
        id: row_i64(r, "id")?,
        public_multibase: row_str(r, "public_multibase")?,
        created_at: row_i64(r, "created_at")?,
        retired_at: crate::row_opt_i64(r, "retired_at")?,
        revoked_at: crate::row_opt_i64(r, "revoked_at")?,
    })
}

impl Db {
    /// Every key, oldest first (public halves only).
    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        let rows = sqlx::query(
            "SELECT id, public_multibase, created_at, retired_at, revoked_at FROM signing_keys ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from).collect()
    }

    /// The key in use with its secret half (`privateKeyMultibase`), if there is one.
    pub async fn current_signing_key(&self) -> Result<Option<(SigningKey, String)>> {
        let r = sqlx::query(
            "SELECT id, public_multibase, private_multibase, created_at, retired_at, revoked_at \
             FROM signing_keys WHERE retired_at IS NULL ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| Ok((key_from(&r)?, row_str(&r, "private_multibase")?)))
            .transpose()
    }

    /// Put a new key in use, retiring the one before (`first`: only if there is none yet).
    pub async fn add_signing_key(
        &self,
        public_multibase: &str,
        private_multibase: &str,
        first: bool,
    ) -> Result<SigningKey> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        // One rotation at a time: the marker row is the lock.
        crate::db::lock_marker_in(&mut tx, "signing_key_rotation").await?;
        // A retired key signs nothing more: its secret half is not kept.
        let retired =
            sqlx::query("UPDATE signing_keys SET retired_at = $1, private_multibase = '' WHERE retired_at IS NULL")
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if first && retired > 0 {
            return Err(StoreError::Conflict(crate::Msg::new(
                "err-signing-key-exists",
            )));
        }
        let r = sqlx::query(
            "INSERT INTO signing_keys (public_multibase, private_multibase, created_at) VALUES ($1, $2, $3) \
             RETURNING id, public_multibase, created_at, retired_at, revoked_at",
        )
        .bind(public_multibase.to_string())
        .bind(private_multibase.to_string())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let key = key_from(&r)?;
        tx.commit().await?;
        Ok(key)
    }

    /// Mark a key compromised: what it signed no longer counts. The key in use cannot be
    /// revoked (rotate first).
    pub async fn revoke_signing_key(&self, public_multibase: &str) -> Result<()> {
        let n = sqlx::query(
            "UPDATE signing_keys SET revoked_at = $1 WHERE public_multibase = $2 AND retired_at IS NOT NULL AND revoked_at IS NULL",
        )
        .bind(self.now_ms())
        .bind(public_multibase.to_string())
        .execute(&self.write)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("retired signing key"));
        }
        Ok(())
    }
}
