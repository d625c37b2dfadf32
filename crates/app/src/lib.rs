//! Use cases of tianguis. Each public function is one thing a person or a timer does (check
//! out, act on an order, onboard a seller, pay out), composed from the persistence of several
//! aggregates (`tianguis_store`) inside one database transaction, with the authorization
//! policy (`tianguis_domain::policy`) decided inside that same transaction on rows read fresh.
//! Knows nothing of HTTP, HTML or JSON wire formats.

pub mod assisted;
pub mod credentials;
pub mod diagnostic;
pub mod engine;
pub mod images;
pub mod import;
pub mod logistics;
pub mod notify;
pub mod orders;
pub mod payments;
pub mod payouts;
pub mod queue;

pub use tianguis_store::{Result, StoreError as Error};
pub mod people;

/// Run a write again when the database says it may pass on a second try (a deadlock, a
/// serialization failure, a busy lock), a few times with a short pause.
pub async fn retrying<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Err(e) if e.is_transient() && attempt < 8 => {
                tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await;
            }
            other => return other,
        }
    }
}
