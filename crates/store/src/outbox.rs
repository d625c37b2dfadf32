//! The notification outbox: each text message a person is sent, written in the same
//! transaction as what it tells (so it goes out if and only if that committed), with its
//! delivery status. Sending is a `sms` job in the queue; this table is the record officials
//! read.

use crate::{Db, Result, StoreError, row_i64, row_opt_i64, row_opt_str, row_str};
use sqlx::{Any, Transaction as DbTx};

/// A text to put in the outbox.
#[derive(Debug, Clone)]
pub struct NewText<'a> {
    pub phone: &'a str,
    pub template: &'a str,
    pub args: Vec<(&'a str, String)>,
    pub lang: &'a str,
    /// The order it is about (it shows on the order's page).
    pub order_id: Option<i64>,
    /// Sent even to someone who replied STOP (the delivery code, money in or out).
    pub essential: bool,
}

/// Put a text message in the outbox, in the caller's transaction (it is sent if and only if
/// what it tells about committed).
pub async fn enqueue_in(tx: &mut DbTx<'static, Any>, t: &NewText<'_>, now: i64) -> Result<i64> {
    let args: serde_json::Map<String, serde_json::Value> = t
        .args
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
        .collect();
    let r = sqlx::query("INSERT INTO outbox (channel, to_phone, template, args, lang, status, attempts, run_at, created_at, order_id, essential) VALUES ('sms', $1, $2, $3, $4, 'pending', 0, $5, $5, $6, $7) RETURNING id")
        .bind(t.phone.to_string())
        .bind(t.template.to_string())
        .bind(serde_json::Value::Object(args).to_string())
        .bind(t.lang.to_string())
        .bind(now)
        .bind(t.order_id)
        .bind(i64::from(t.essential))
        .fetch_one(&mut **tx)
        .await?;
    row_i64(&r, "id")
}

/// A person replied STOP (or START again), or chose it on their page: non-essential texts
/// stop (or resume). The person's id; None when no account has this phone.
pub async fn set_stop_in(
    tx: &mut DbTx<'static, Any>,
    phone: &str,
    stop: bool,
) -> Result<Option<i64>> {
    let r = sqlx::query("UPDATE users SET sms_stop = $1 WHERE phone = $2 RETURNING id")
        .bind(i64::from(stop))
        .bind(phone.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    r.map(|r| row_i64(&r, "id")).transpose()
}

/// Whether the person with this phone replied STOP (only essential texts reach them).
pub async fn stopped_in(tx: &mut DbTx<'static, Any>, phone: &str) -> Result<bool> {
    let r = sqlx::query("SELECT sms_stop FROM users WHERE phone = $1")
        .bind(phone.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match r {
        Some(r) => row_i64(&r, "sms_stop")? != 0,
        None => false,
    })
}

/// A text carrying a one-time code: the outbox keeps a reference to the code's row, and the
/// sender makes the code as it sends ([`Db::issue_phone_code`]).
pub async fn enqueue_code_in(
    tx: &mut DbTx<'static, Any>,
    phone: &str,
    template: &str,
    code_id: i64,
    lang: &str,
    now: i64,
) -> Result<i64> {
    let r = sqlx::query("INSERT INTO outbox (channel, to_phone, template, args, lang, status, attempts, run_at, created_at, code_id) VALUES ('sms', $1, $2, '{}', $3, 'pending', 0, $4, $4, $5) RETURNING id")
        .bind(phone.to_string())
        .bind(template.to_string())
        .bind(lang.to_string())
        .bind(now)
        .bind(code_id)
        .fetch_one(&mut **tx)
        .await?;
    row_i64(&r, "id")
}

#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: i64,
    pub channel: String,
    pub to_phone: String,
    pub template: String,
    pub args: Vec<(String, String)>,
    pub lang: String,
    pub status: String,
    pub attempts: i64,
    pub provider_ref: Option<String>,
    pub created_at: i64,
    /// The one-time code this text carries, made when it is sent.
    pub code_id: Option<i64>,
    pub order_id: Option<i64>,
    pub essential: bool,
    /// Once sent: the parts it took and what the gateway charged.
    pub parts: Option<i64>,
    pub cost: Option<String>,
}

fn outbox_from(r: &sqlx::any::AnyRow) -> Result<OutboxMessage> {
    let args: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&row_str(r, "args")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(OutboxMessage {
        id: row_i64(r, "id")?,
        channel: row_str(r, "channel")?,
        to_phone: row_str(r, "to_phone")?,
        template: row_str(r, "template")?,
        args: args
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect(),
        lang: row_str(r, "lang")?,
        status: row_str(r, "status")?,
        attempts: row_i64(r, "attempts")?,
        provider_ref: row_opt_str(r, "provider_ref")?,
        created_at: row_i64(r, "created_at")?,
        code_id: row_opt_i64(r, "code_id")?,
        order_id: row_opt_i64(r, "order_id")?,
        essential: row_i64(r, "essential")? != 0,
        parts: row_opt_i64(r, "parts")?,
        cost: row_opt_str(r, "cost")?,
    })
}

impl Db {
    /// One message of the outbox.
    pub async fn outbox_message(&self, id: i64) -> Result<OutboxMessage> {
        let r = sqlx::query("SELECT * FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("message"))?;
        outbox_from(&r)
    }

    /// Sent: the gateway's id, the parts it took and what it cost (as the gateway says it).
    pub async fn outbox_sent(
        &self,
        id: i64,
        provider_ref: &str,
        parts: u32,
        cost: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE outbox SET status = 'sent', provider_ref = $1, sent_at = $2, locked_until = NULL, attempts = attempts + 1, parts = $3, cost = $4 WHERE id = $5 AND status <> 'sent'")
            .bind(provider_ref.to_string())
            .bind(self.now_ms())
            .bind(i64::from(parts))
            .bind(cost.chars().take(40).collect::<String>())
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// A send failed; `final` when no attempt is left (the message is marked failed for
    /// officials). The queue decides when to try again.
    pub async fn outbox_failed(&self, id: i64, error: &str, last: bool) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, \
             status = CASE WHEN $2 = 1 THEN 'failed' ELSE 'pending' END WHERE id = $3 AND status <> 'sent'",
        )
        .bind(error.chars().take(300).collect::<String>())
        .bind(i64::from(last))
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// A message no longer worth sending (its code was used or expired): given up at once.
    pub async fn outbox_dropped(&self, id: i64, why: &str) -> Result<()> {
        sqlx::query("UPDATE outbox SET status = 'failed', last_error = $1, locked_until = NULL WHERE id = $2 AND status = 'pending'")
            .bind(why.chars().take(300).collect::<String>())
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// The texts about an order, oldest first (its page shows them).
    pub async fn order_texts(&self, order_id: i64) -> Result<Vec<OutboxMessage>> {
        sqlx::query("SELECT * FROM outbox WHERE order_id = $1 ORDER BY id")
            .bind(order_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(outbox_from)
            .collect()
    }

    /// The latest messages (officials' view, tests).
    pub async fn outbox(&self, limit: i64) -> Result<Vec<OutboxMessage>> {
        sqlx::query("SELECT * FROM outbox ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(outbox_from)
            .collect()
    }
}
