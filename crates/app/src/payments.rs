//! What the mobile-money provider tells us, as use cases. The provider's adapter (HTTP) lives
//! at the edge and runs as queue jobs: `momo_request` asks the provider to collect a payment
//! until it has the request, `momo_status` asks what became of it until it is settled.

use tianguis_store::queue::{self, Kind};
use tianguis_store::{Db, Result, orders};

/// How long after the provider took a request we first ask it for the status, if no callback
/// came.
pub const FIRST_STATUS_CHECK_MS: i64 = 60_000;

/// The provider took the request: its reference is kept, and a status check is queued in the
/// same transaction (a lost callback is then asked about, with backoff, while it matters).
pub async fn provider_accepted(db: &Db, payment_id: i64, provider_ref: &str) -> Result<()> {
    let now = db.now_ms();
    let mut tx = db.begin_write().await?;
    orders::set_provider_ref_in(&mut tx, payment_id, provider_ref, now).await?;
    queue::enqueue_in(
        &mut tx,
        Kind::MomoStatus,
        serde_json::json!({"payment_id": payment_id}),
        now + FIRST_STATUS_CHECK_MS,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What the provider said, applied: `succeeded` pays the orders (once), `failed` marks the
/// payment failed; anything else changes nothing. True when the payment is settled now.
pub async fn apply_status(db: &Db, payment_id: i64, status: &str) -> Result<bool> {
    match status {
        "succeeded" => {
            crate::orders::payment_succeeded(db, payment_id, None).await?;
            Ok(true)
        }
        "failed" => {
            db.payment_failed(payment_id).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The buyer (or the agent at the centre where the order was placed, or an admin) chooses
/// again how to pay a checkout whose payment failed: mobile money again, cash at a centre, or
/// cash on delivery. Nothing is lost: the orders, their stock and the cart's choices stay; the
/// failed payment gives way to a new one (one open payment per checkout, always), the unpaid
/// deadline starts again, and a cash-on-delivery order goes to the seller to send. Mobile
/// money may be asked of another wallet. Returns the new payment.
pub async fn pay_again(
    db: &Db,
    who: &tianguis_store::users::User,
    order_id: i64,
    method: tianguis_store::orders::PaymentMethod,
    wallet: Option<&str>,
) -> Result<i64> {
    use tianguis_domain::process::{Timer, Transition};
    use tianguis_store::orders::PaymentMethod;
    let timing = db.timing().await?;
    // Another wallet to ask (the first one declined, or had no money), read like every phone.
    let wallet = match wallet.map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) if method == PaymentMethod::MobileMoney => Some(db.phone(w).await?),
        _ => None,
    };
    crate::retrying(|| async {
        let now = db.now_ms();
        let mut tx = db.begin_write().await?;
        let person = tianguis_store::users::person_in(&mut tx, who.id).await?;
        let facts = orders::facts_in(&mut tx, order_id).await?;
        tianguis_domain::policy::pay_again(&person, &facts).map_err(tianguis_store::denied)?;
        let latest = orders::latest_payment_in(&mut tx, order_id).await?;
        let siblings = orders::checkout_orders_in(&mut tx, latest.checkout_id).await?;
        let states: Vec<_> = siblings.iter().map(|o| o.1).collect();
        tianguis_domain::checkout::may_pay_again(latest.status, &states)
            .map_err(|e| tianguis_store::StoreError::Invalid(e.msg()))?;
        if !orders::replace_failed_payment_in(&mut tx, latest.id, now).await? {
            return Err(tianguis_store::StoreError::Conflict(
                tianguis_domain::checkout::PayAgainError::NotFailed.msg(),
            ));
        }
        orders::set_checkout_method_in(&mut tx, latest.checkout_id, method).await?;
        let payment_id = orders::insert_payment_in(
            &mut tx,
            latest.checkout_id,
            method,
            latest.amount,
            wallet
                .as_ref()
                .map(|w| w.as_str())
                .or(latest.payer_phone.as_deref())
                .unwrap_or(""),
            now,
        )
        .await?;
        for (oid, _, _) in &siblings {
            if method == PaymentMethod::CashOnDelivery {
                // Fulfilled unpaid from now: the seller has until the ship deadline.
                crate::engine::timer_in(
                    &mut tx,
                    *oid,
                    Transition::AutoCancelUnshipped,
                    now + timing.delay_ms(Timer::Unshipped),
                    now,
                )
                .await?;
                crate::notify::new_cod_order_in(&mut tx, *oid, now).await?;
            } else {
                crate::engine::retime_in(
                    &mut tx,
                    *oid,
                    Transition::ExpireUnpaid,
                    now + timing.delay_ms(Timer::Unpaid),
                    now,
                )
                .await?;
            }
        }
        if method == PaymentMethod::MobileMoney {
            queue::enqueue_in(
                &mut tx,
                Kind::MomoRequest,
                serde_json::json!({"payment_id": payment_id}),
                now,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(payment_id)
    })
    .await
}
