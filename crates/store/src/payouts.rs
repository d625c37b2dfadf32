//! Payout batches and lines (persistence). The rules (who is due, four eyes, a line's moves)
//! are in `tianguis_domain::payout` and `policy`; the use cases that post the ledger and queue
//! the transfers are in `tianguis_app::payouts`. Every change of status is a guarded update on
//! the status it was read in, so a late or repeated answer changes nothing.

use crate::{Db, Result, StoreError, row_i64, row_opt_i64, row_opt_str, row_str};
use sqlx::{Any, Transaction as DbTx};
use tianguis_domain::kinds::{BatchStatus, LineStatus, PayoutChannel};
use tianguis_domain::money::{Currency, Money};
use tianguis_domain::payout::Payee;

#[derive(Debug, Clone)]
pub struct Batch {
    pub id: i64,
    pub currency: Currency,
    pub status: BatchStatus,
    /// `scheduled`, `threshold` or `manual`.
    pub reason: String,
    pub prepared_by: Option<i64>,
    pub approved_by: Option<i64>,
    pub total: Money,
    pub line_count: i64,
    pub created_at: i64,
    pub approved_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub id: i64,
    pub batch_id: i64,
    pub payee: Payee,
    /// The person who receives it (a shop's owner for a seller).
    pub user_id: i64,
    pub payee_name: String,
    pub amount: Money,
    pub channel: PayoutChannel,
    /// A wallet's phone (E.164), or the centre's name for cash.
    pub destination: String,
    pub status: LineStatus,
    /// Ours, sent to the provider as its idempotency key (a UUID for MTN's X-Reference-Id).
    pub reference: String,
    pub provider_ref: Option<String>,
    pub failure: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn cur(s: &str) -> Result<Currency> {
    Currency::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn batch_from(r: &sqlx::any::AnyRow) -> Result<Batch> {
    let currency = cur(&row_str(r, "currency")?)?;
    let status = row_str(r, "status")?;
    Ok(Batch {
        id: row_i64(r, "id")?,
        currency,
        status: BatchStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("batch status {status}")))?,
        reason: row_str(r, "reason")?,
        prepared_by: row_opt_i64(r, "prepared_by")?,
        approved_by: row_opt_i64(r, "approved_by")?,
        total: Money::new(row_i64(r, "total_minor")?, currency),
        line_count: row_i64(r, "line_count")?,
        created_at: row_i64(r, "created_at")?,
        approved_at: row_opt_i64(r, "approved_at")?,
        finished_at: row_opt_i64(r, "finished_at")?,
    })
}

/// A line with who it is for as people know them: a shop by its name, a person by theirs.
const LINE_SELECT: &str = "SELECT l.*, CASE WHEN l.payee LIKE 'seller:%' \
    THEN COALESCE((SELECT s.shop_name FROM sellers s WHERE s.user_id = l.user_id ORDER BY s.id LIMIT 1), u.name) \
    ELSE u.name END AS payee_name FROM payout_lines l JOIN users u ON u.id = l.user_id";

fn line_from(r: &sqlx::any::AnyRow) -> Result<Line> {
    let payee = row_str(r, "payee")?;
    let channel = row_str(r, "channel")?;
    let status = row_str(r, "status")?;
    Ok(Line {
        id: row_i64(r, "id")?,
        batch_id: row_i64(r, "batch_id")?,
        payee: Payee::parse(&payee).ok_or_else(|| StoreError::Corrupt(format!("payee {payee}")))?,
        user_id: row_i64(r, "user_id")?,
        payee_name: row_str(r, "payee_name")?,
        amount: Money::new(row_i64(r, "amount_minor")?, cur(&row_str(r, "currency")?)?),
        channel: PayoutChannel::parse(&channel)
            .ok_or_else(|| StoreError::Corrupt(format!("payout channel {channel}")))?,
        destination: row_str(r, "destination")?,
        status: LineStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("line status {status}")))?,
        reference: row_str(r, "reference")?,
        provider_ref: row_opt_str(r, "provider_ref")?,
        failure: row_opt_str(r, "failure")?,
        created_at: row_i64(r, "created_at")?,
        updated_at: row_i64(r, "updated_at")?,
    })
}

/// What each payee is owed in `currency` (positive balances of the accounts that hold what
/// people are owed), read inside the transaction that sets it aside.
pub async fn owed_in(tx: &mut DbTx<'static, Any>, currency: Currency) -> Result<Vec<(Payee, i64)>> {
    let rows = sqlx::query(
        "SELECT account, balance_minor FROM accounts WHERE currency = $1 AND balance_minor > 0 \
         AND (account LIKE 'seller:%:payable' OR account LIKE 'courier:%:payable' \
              OR account LIKE 'agent:%:commission' OR account LIKE 'champion:%:payable') \
         ORDER BY account",
    )
    .bind(currency.as_str().to_string())
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        if let Some(p) = Payee::of_account(&row_str(r, "account")?) {
            out.push((p, row_i64(r, "balance_minor")?));
        }
    }
    Ok(out)
}

/// Who receives a payee's money and their phone: a shop's owner, or the person.
pub async fn payee_person_in(tx: &mut DbTx<'static, Any>, payee: Payee) -> Result<(i64, String)> {
    let r = match payee {
        Payee::Seller(s) => sqlx::query(
            "SELECT u.id, u.phone FROM sellers s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
        )
        .bind(s)
        .fetch_optional(&mut **tx)
        .await?,
        Payee::Courier(u) | Payee::Agent(u) | Payee::Champion(u) => {
            sqlx::query("SELECT id, phone FROM users WHERE id = $1")
                .bind(u)
                .fetch_optional(&mut **tx)
                .await?
        }
    }
    .ok_or(StoreError::NotFound("payee"))?;
    Ok((row_i64(&r, "id")?, row_str(&r, "phone")?))
}

/// The payee's chosen channel and destination, if they set one.
pub async fn method_in(
    tx: &mut DbTx<'static, Any>,
    payee: Payee,
) -> Result<Option<(PayoutChannel, String)>> {
    let r = sqlx::query("SELECT channel, destination FROM payout_methods WHERE payee = $1")
        .bind(payee.code())
        .fetch_optional(&mut **tx)
        .await?;
    match r {
        None => Ok(None),
        Some(r) => {
            let c = row_str(&r, "channel")?;
            Ok(Some((
                PayoutChannel::parse(&c)
                    .ok_or_else(|| StoreError::Corrupt(format!("payout channel {c}")))?,
                row_str(&r, "destination")?,
            )))
        }
    }
}

pub async fn set_method_in(
    tx: &mut DbTx<'static, Any>,
    payee: Payee,
    channel: PayoutChannel,
    destination: &str,
    by: i64,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO payout_methods (payee, channel, destination, updated_by, updated_at) VALUES ($1,$2,$3,$4,$5) \
        ON CONFLICT (payee) DO UPDATE SET channel = excluded.channel, destination = excluded.destination, updated_by = excluded.updated_by, updated_at = excluded.updated_at")
        .bind(payee.code())
        .bind(channel.as_str())
        .bind(destination.to_string())
        .bind(by)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A new batch, prepared. Its run key is unique: false-y `None` when another server already
/// prepared the batch of this run (the caller rolls back).
pub async fn insert_batch_in(
    tx: &mut DbTx<'static, Any>,
    currency: Currency,
    reason: &str,
    run_key: Option<&str>,
    prepared_by: Option<i64>,
    now: i64,
) -> Result<Option<i64>> {
    if let Some(k) = run_key {
        let taken = sqlx::query("SELECT id FROM payout_batches WHERE run_key = $1")
            .bind(k.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        if taken.is_some() {
            return Ok(None);
        }
    }
    let r = sqlx::query("INSERT INTO payout_batches (currency, status, reason, run_key, prepared_by, total_minor, line_count, created_at) VALUES ($1,'prepared',$2,$3,$4,0,0,$5) RETURNING id")
        .bind(currency.as_str().to_string())
        .bind(reason.to_string())
        .bind(run_key.map(str::to_string))
        .bind(prepared_by)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Some(row_i64(&r, "id")?))
}

/// What a new line carries.
#[derive(Debug, Clone)]
pub struct NewLine {
    pub payee: Payee,
    pub user_id: i64,
    pub amount: Money,
    pub channel: PayoutChannel,
    pub destination: String,
    pub reference: String,
}

pub async fn insert_line_in(
    tx: &mut DbTx<'static, Any>,
    batch_id: i64,
    l: &NewLine,
    now: i64,
) -> Result<i64> {
    let r = sqlx::query("INSERT INTO payout_lines (batch_id, payee, user_id, amount_minor, currency, channel, destination, status, reference, created_at, updated_at) \
        VALUES ($1,$2,$3,$4,$5,$6,$7,'proposed',$8,$9,$10) RETURNING id")
        .bind(batch_id)
        .bind(l.payee.code())
        .bind(l.user_id)
        .bind(l.amount.minor)
        .bind(l.amount.currency.as_str().to_string())
        .bind(l.channel.as_str())
        .bind(l.destination.clone())
        .bind(l.reference.clone())
        .bind(now)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
    sqlx::query("UPDATE payout_batches SET total_minor = total_minor + $1, line_count = line_count + 1 WHERE id = $2")
        .bind(l.amount.minor)
        .bind(batch_id)
        .execute(&mut **tx)
        .await?;
    row_i64(&r, "id")
}

pub async fn batch_in(tx: &mut DbTx<'static, Any>, id: i64) -> Result<Batch> {
    let r = sqlx::query("SELECT * FROM payout_batches WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("payout_batch"))?;
    batch_from(&r)
}

pub async fn line_in(tx: &mut DbTx<'static, Any>, id: i64) -> Result<Line> {
    let r = sqlx::query(crate::sql(format!("{LINE_SELECT} WHERE l.id = $1")))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("payout_line"))?;
    line_from(&r)
}

pub async fn lines_of_in(tx: &mut DbTx<'static, Any>, batch_id: i64) -> Result<Vec<Line>> {
    sqlx::query(crate::sql(format!(
        "{LINE_SELECT} WHERE l.batch_id = $1 ORDER BY l.id"
    )))
    .bind(batch_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(line_from)
    .collect()
}

/// Move a batch from the status it was read in: false when it had moved on.
pub async fn set_batch_status_in(
    tx: &mut DbTx<'static, Any>,
    id: i64,
    from: BatchStatus,
    to: BatchStatus,
    by: Option<i64>,
    now: i64,
) -> Result<bool> {
    let q = match to {
        BatchStatus::Approved => sqlx::query(
            "UPDATE payout_batches SET status = $1, approved_by = $2, approved_at = $3 WHERE id = $4 AND status = $5",
        )
        .bind(to.as_str())
        .bind(by)
        .bind(now),
        _ => sqlx::query(
            "UPDATE payout_batches SET status = $1, finished_at = $2 WHERE id = $3 AND status = $4",
        )
        .bind(to.as_str())
        .bind(now),
    };
    let n = q
        .bind(id)
        .bind(from.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Move a line from the status it was read in, with the provider's reference or the reason it
/// failed: false when it had moved on (a repeated or late answer).
pub async fn set_line_status_in(
    tx: &mut DbTx<'static, Any>,
    id: i64,
    from: LineStatus,
    to: LineStatus,
    provider_ref: Option<&str>,
    failure: Option<&str>,
    now: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE payout_lines SET status = $1, provider_ref = COALESCE($2, provider_ref), \
         failure = COALESCE($3, failure), updated_at = $4 WHERE id = $5 AND status = $6",
    )
    .bind(to.as_str())
    .bind(provider_ref.map(str::to_string))
    .bind(failure.map(|f| f.chars().take(300).collect::<String>()))
    .bind(now)
    .bind(id)
    .bind(from.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Lines of a batch still waiting for an answer.
pub async fn open_lines_in(tx: &mut DbTx<'static, Any>, batch_id: i64) -> Result<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM payout_lines WHERE batch_id = $1 AND status IN ('proposed', 'sending')",
    )
    .bind(batch_id)
    .fetch_one(&mut **tx)
    .await?;
    row_i64(&r, "n")
}

/// What a payee was paid, failed and has on its way, in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayeeTotals {
    pub paid: i64,
    pub failed: i64,
    pub on_the_way: i64,
}

impl Db {
    pub async fn payout_batches(&self, limit: i64) -> Result<Vec<Batch>> {
        sqlx::query("SELECT * FROM payout_batches ORDER BY id DESC LIMIT $1")
            .bind(limit.clamp(1, 500))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(batch_from)
            .collect()
    }

    // Pages read through the same queries the use cases run inside their transactions.
    pub async fn payout_batch(&self, id: i64) -> Result<Batch> {
        let mut tx = self.pool.begin().await?;
        let b = batch_in(&mut tx, id).await;
        tx.rollback().await?;
        b
    }

    pub async fn payout_lines(&self, batch_id: i64) -> Result<Vec<Line>> {
        let mut tx = self.pool.begin().await?;
        let v = lines_of_in(&mut tx, batch_id).await;
        tx.rollback().await?;
        v
    }

    pub async fn payout_line(&self, id: i64) -> Result<Line> {
        let mut tx = self.pool.begin().await?;
        let l = line_in(&mut tx, id).await;
        tx.rollback().await?;
        l
    }

    /// A payee's lines, newest first (their statement).
    pub async fn payee_lines(&self, payee: Payee, limit: i64) -> Result<Vec<Line>> {
        sqlx::query(crate::sql(format!(
            "{LINE_SELECT} WHERE l.payee = $1 ORDER BY l.id DESC LIMIT $2"
        )))
        .bind(payee.code())
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(line_from)
        .collect()
    }

    /// What a payee can be paid now (the balance of the account that holds what they are owed).
    pub async fn payee_owed(&self, payee: Payee, currency: Currency) -> Result<Money> {
        let mut tx = self.pool.begin().await?;
        let m = crate::ledger::balance_in(&mut tx, &payee.account(), currency).await?;
        tx.rollback().await?;
        Ok(m)
    }

    /// Where a payee chose to be paid, if they did.
    pub async fn payout_method(&self, payee: Payee) -> Result<Option<(PayoutChannel, String)>> {
        let mut tx = self.pool.begin().await?;
        let m = method_in(&mut tx, payee).await?;
        tx.rollback().await?;
        Ok(m)
    }

    pub async fn payee_totals(&self, payee: Payee) -> Result<PayeeTotals> {
        let r = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'paid' THEN amount_minor ELSE 0 END), 0) AS BIGINT) AS paid, \
                    CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN amount_minor ELSE 0 END), 0) AS BIGINT) AS failed, \
                    CAST(COALESCE(SUM(CASE WHEN status IN ('proposed', 'sending') THEN amount_minor ELSE 0 END), 0) AS BIGINT) AS on_the_way \
             FROM payout_lines WHERE payee = $1",
        )
        .bind(payee.code())
        .fetch_one(&self.pool)
        .await?;
        Ok(PayeeTotals {
            paid: row_i64(&r, "paid")?,
            failed: row_i64(&r, "failed")?,
            on_the_way: row_i64(&r, "on_the_way")?,
        })
    }
}
