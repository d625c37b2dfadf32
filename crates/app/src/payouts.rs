//! Payouts as use cases: money the platform owes sellers, couriers, agents and champions leaves
//! in batches. Preparing a batch sets each line's money aside from the payee's balance in the
//! same transaction (nobody is paid more than they hold, no balance is in two batches); another
//! official approves it (four eyes, unless the marketplace relaxed it); mobile-money lines are
//! then transfers the queue asks of the disbursement provider (its adapter lives at the edge),
//! cash lines are counted out at a centre and confirmed by an official. A confirmed line leaves
//! the platform; a failed or cancelled one goes back to the payee's balance with the reason.

use crate::notify;
use tianguis_domain::kinds::{BatchStatus, LineStatus, PayoutChannel};
use tianguis_domain::ledger::Transaction;
use tianguis_domain::payout::{LineMove, Payee, Run, Schedule, line_step};
use tianguis_domain::policy::{self, Duty};
use tianguis_store::payouts::{self as store, NewLine};
use tianguis_store::queue::{self, Kind};
use tianguis_store::users::{self, User};
use tianguis_store::{Db, Msg, Result, StoreError, ledger};

use tianguis_store::group::Tx;

/// The marketplace's payout settings (validated when saved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayoutSettings {
    pub schedule: Schedule,
    /// A different official than the one who prepared a batch must approve it.
    pub four_eyes: bool,
}

pub async fn settings(db: &Db) -> Result<PayoutSettings> {
    let s = db.settings().await?;
    Ok(PayoutSettings {
        schedule: s.payout_schedule(),
        four_eyes: s.payout_four_eyes(),
    })
}

/// An official changes when the marketplace pays out: the schedule is checked before it is
/// saved (a period of 1 to 92 days, a minimum of at least one unit, a threshold not below it).
pub async fn save_settings(db: &Db, who: &User, new: PayoutSettings) -> Result<()> {
    {
        let mut tx = db.begin_write().await?;
        let p = users::person_in(&mut tx, who.id).await?;
        policy::may(&p, Duty::ManageSettings).map_err(tianguis_store::denied)?;
        tx.rollback().await?;
    }
    new.schedule.validate().map_err(StoreError::Invalid)?;
    db.set_settings(&[
        ("payout_every_days", new.schedule.every_days.to_string()),
        (
            "payout_threshold_minor",
            new.schedule.threshold_minor.to_string(),
        ),
        (
            "payout_minimum_minor",
            new.schedule.minimum_minor.to_string(),
        ),
        ("payout_four_eyes", i64::from(new.four_eyes).to_string()),
    ])
    .await
}

/// Prepare a batch of everyone owed at least the minimum (an official asked), or the
/// schedule's run (`who` None: the server's timer). None when nobody is owed enough, or when
/// another server already prepared this run's batch.
pub async fn prepare(db: &Db, who: Option<&User>, run: Run) -> Result<Option<i64>> {
    let cfg = settings(db).await?;
    let currency = db.currency().await?;
    let now = db.now_ms();
    let mut tx = db.begin_write().await?;
    let prepared_by = match who {
        Some(u) => {
            let p = users::person_in(&mut tx, u.id).await?;
            policy::may(&p, Duty::ManageMoney).map_err(tianguis_store::denied)?;
            Some(u.id)
        }
        None => None,
    };
    let owed = store::owed_in(&mut tx, currency).await?;
    let lines = cfg.schedule.propose(&owed, run);
    if lines.is_empty() {
        tx.rollback().await?;
        return Ok(None);
    }
    let key = cfg.schedule.run_key(run, now);
    let Some(batch) = store::insert_batch_in(
        &mut tx,
        currency,
        run.as_str(),
        key.as_deref(),
        prepared_by,
        now,
    )
    .await?
    else {
        tx.rollback().await?;
        return Ok(None);
    };
    for (payee, minor) in lines {
        let amount = tianguis_domain::money::Money::new(minor, currency);
        let (user_id, phone) = store::payee_person_in(&mut tx, payee).await?;
        let (channel, destination) = store::method_in(&mut tx, payee)
            .await?
            .unwrap_or((PayoutChannel::MobileMoney, phone));
        ledger::post(
            &mut tx,
            &Transaction::payout_set_aside(payee.account(), amount)?,
            now,
        )
        .await?;
        store::insert_line_in(
            &mut tx,
            batch,
            &NewLine {
                payee,
                user_id,
                amount,
                channel,
                destination,
                // MTN's X-Reference-Id is a UUID v4; it is also our idempotency key.
                reference: uuid::Uuid::new_v4().to_string(),
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(batch, run = run.as_str(), "payout batch prepared");
    Ok(Some(batch))
}

/// The schedule's own runs, called by the server's timer: the period's batch when it comes
/// round, and an early one (at most daily) for balances past the threshold.
pub async fn tick(db: &Db) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for run in [Run::Scheduled, Run::Threshold] {
        if let Some(b) = prepare(db, None, run).await? {
            out.push(b);
        }
    }
    Ok(out)
}

/// Approve a prepared batch: its lines go out (transfers queued for mobile money; cash lines
/// wait at their centre). Four eyes: not by the official who prepared it.
pub async fn approve(db: &Db, who: &User, batch_id: i64) -> Result<()> {
    let cfg = settings(db).await?;
    let now = db.now_ms();
    let mut tx = db.begin_write().await?;
    let p = users::person_in(&mut tx, who.id).await?;
    let b = store::batch_in(&mut tx, batch_id).await?;
    match b.prepared_by {
        Some(by) => policy::approve_payouts(&p, tianguis_domain::ids::UserId(by), cfg.four_eyes),
        None => policy::may(&p, Duty::ManageMoney),
    }
    .map_err(tianguis_store::denied)?;
    if !store::set_batch_status_in(
        &mut tx,
        batch_id,
        BatchStatus::Prepared,
        BatchStatus::Approved,
        Some(who.id),
        now,
    )
    .await?
    {
        return Err(StoreError::Conflict(Msg::new("err-payout-batch-moved")));
    }
    for l in store::lines_of_in(&mut tx, batch_id).await? {
        let to = line_step(l.status, LineMove::Send)
            .ok_or_else(|| StoreError::Conflict(Msg::new("err-payout-batch-moved")))?;
        store::set_line_status_in(&mut tx, l.id, l.status, to, None, None, now).await?;
        if l.channel == PayoutChannel::MobileMoney {
            queue::enqueue_in(
                &mut tx,
                Kind::Payout,
                serde_json::json!({"line_id": l.id}),
                now,
                now,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Throw a prepared batch away: every line's money goes back to its payee.
pub async fn cancel(db: &Db, who: &User, batch_id: i64) -> Result<()> {
    let now = db.now_ms();
    let mut tx = db.begin_write().await?;
    let p = users::person_in(&mut tx, who.id).await?;
    policy::may(&p, Duty::ManageMoney).map_err(tianguis_store::denied)?;
    if !store::set_batch_status_in(
        &mut tx,
        batch_id,
        BatchStatus::Prepared,
        BatchStatus::Cancelled,
        Some(who.id),
        now,
    )
    .await?
    {
        return Err(StoreError::Conflict(Msg::new("err-payout-batch-moved")));
    }
    for l in store::lines_of_in(&mut tx, batch_id).await? {
        if store::set_line_status_in(
            &mut tx,
            l.id,
            LineStatus::Proposed,
            LineStatus::Cancelled,
            None,
            None,
            now,
        )
        .await?
        {
            ledger::post(
                &mut tx,
                &Transaction::payout_returned(l.payee.account(), l.amount)?,
                now,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The provider (or, for cash, an official) confirmed a line: the money left the platform and
/// the payee is told. Idempotent: false when the line was already settled.
pub async fn line_paid(db: &Db, line_id: i64, provider_ref: &str) -> Result<bool> {
    let now = db.now_ms();
    let mut tx = db.begin_write().await?;
    let l = store::line_in(&mut tx, line_id).await?;
    if !store::set_line_status_in(
        &mut tx,
        line_id,
        LineStatus::Sending,
        LineStatus::Paid,
        Some(provider_ref),
        None,
        now,
    )
    .await?
    {
        tx.rollback().await?;
        return Ok(false);
    }
    ledger::post(&mut tx, &Transaction::payout_confirmed(l.amount)?, now).await?;
    tell_payee(&mut tx, &l, "sms-payout-paid", now).await?;
    finish_batch_if_done(&mut tx, l.batch_id, now).await?;
    tx.commit().await?;
    Ok(true)
}

/// A line's transfer failed: its money goes back to the payee's balance, with the reason, and
/// a later batch pays it. Idempotent: false when the line was already settled.
pub async fn line_failed(db: &Db, line_id: i64, reason: &str) -> Result<bool> {
    let now = db.now_ms();
    let mut tx = db.begin_write().await?;
    let l = store::line_in(&mut tx, line_id).await?;
    if !store::set_line_status_in(
        &mut tx,
        line_id,
        LineStatus::Sending,
        LineStatus::Failed,
        None,
        Some(reason),
        now,
    )
    .await?
    {
        tx.rollback().await?;
        return Ok(false);
    }
    ledger::post(
        &mut tx,
        &Transaction::payout_returned(l.payee.account(), l.amount)?,
        now,
    )
    .await?;
    tell_payee(&mut tx, &l, "sms-payout-failed", now).await?;
    finish_batch_if_done(&mut tx, l.batch_id, now).await?;
    tx.commit().await?;
    Ok(true)
}

/// An official records a line paid by hand: cash counted out at the centre (with the receipt's
/// number) or a bank transfer made in the bank's system (with its reference), or one that
/// could not be paid.
pub async fn settle_by_hand(
    db: &Db,
    who: &User,
    line_id: i64,
    paid: bool,
    note: &str,
) -> Result<bool> {
    let note = note.trim();
    if note.is_empty() || note.chars().count() > 80 {
        return Err(StoreError::Invalid(Msg::new("err-payout-note")));
    }
    let channel = {
        let mut tx = db.begin_write().await?;
        let p = users::person_in(&mut tx, who.id).await?;
        policy::may(&p, Duty::ManageMoney).map_err(tianguis_store::denied)?;
        let l = store::line_in(&mut tx, line_id).await?;
        tx.rollback().await?;
        if !l.channel.by_hand() {
            // A transfer is settled by its provider's answer, never by someone saying so.
            return Err(StoreError::Invalid(Msg::new("err-payout-not-cash")));
        }
        l.channel
    };
    let reference = format!("{}:{note} (by {})", channel.as_str(), who.id);
    if paid {
        line_paid(db, line_id, &reference).await
    } else {
        line_failed(db, line_id, &reference).await
    }
}

/// A payee chooses where they are paid (or an official sets it for them).
pub async fn set_method(
    db: &Db,
    who: &User,
    payee: Payee,
    channel: PayoutChannel,
    destination: &str,
) -> Result<()> {
    let now = db.now_ms();
    let destination = match channel {
        PayoutChannel::MobileMoney => db.phone(destination).await?.as_str().to_string(),
        PayoutChannel::Cash => {
            let d = destination.trim();
            if d.is_empty() || d.chars().count() > 80 {
                return Err(StoreError::Invalid(Msg::new("err-payout-note")));
            }
            d.to_string()
        }
        PayoutChannel::Bank => {
            tianguis_domain::kinds::bank_account(destination).ok_or_else(|| {
                StoreError::Invalid(Msg::new("err-bank-account").arg("input", destination.trim()))
            })?
        }
    };
    let mut tx = db.begin_write().await?;
    let p = users::person_in(&mut tx, who.id).await?;
    let (owner, _) = store::payee_person_in(&mut tx, payee).await?;
    if owner != who.id {
        policy::may(&p, Duty::ManageMoney).map_err(tianguis_store::denied)?;
    }
    store::set_method_in(&mut tx, payee, channel, &destination, who.id, now).await?;
    tx.commit().await?;
    Ok(())
}

async fn tell_payee(tx: &mut Tx, l: &store::Line, template: &str, now: i64) -> Result<()> {
    let phone = users::phone_of_in(tx, l.user_id).await?;
    let lang = users::lang_of_in(tx, l.user_id).await?;
    notify::text_in(
        tx,
        &notify::NewText {
            phone: &phone,
            template,
            args: vec![
                ("total", l.amount.minor.to_string()),
                ("currency", l.amount.currency.as_str().to_string()),
                ("to", l.destination.clone()),
            ],
            lang: &lang,
            order_id: None,
            essential: true,
        },
        now,
    )
    .await?;
    Ok(())
}

async fn finish_batch_if_done(tx: &mut Tx, batch_id: i64, now: i64) -> Result<()> {
    if store::open_lines_in(tx, batch_id).await? == 0 {
        store::set_batch_status_in(
            tx,
            batch_id,
            BatchStatus::Approved,
            BatchStatus::Done,
            None,
            now,
        )
        .await?;
    }
    Ok(())
}
