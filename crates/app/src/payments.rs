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
