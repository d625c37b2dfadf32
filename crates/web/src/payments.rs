//! Mobile money. [`MobileMoney`] is the adapter a real provider plugs into: request a payment
//! (the buyer approves on their phone), receive a callback signed with HMAC-SHA256 over the raw
//! body (header `X-Signature: <hex>`), and query status for reconciliation when a callback is
//! lost. [`simulator`] is a *local simulator* of such a provider speaking the same HTTP
//! protocol, for the demo and the tests; no real provider is reachable from here.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time check of a hex signature (`Mac::verify_slice` compares with the `subtle`
/// crate).
pub fn verify(secret: &[u8], body: &[u8], signature_hex: &str) -> bool {
    let Ok(sig) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentRequest {
    pub reference: String,
    pub amount_minor: i64,
    pub currency: String,
    pub payer_phone: String,
    pub callback_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaymentStatus {
    pub provider_ref: String,
    /// pending | succeeded | failed
    pub status: String,
    /// What the payment is, as the provider holds it: checked against ours before any status
    /// is believed (`tianguis_domain::reconcile`).
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub amount_minor: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
}

impl PaymentStatus {
    fn answer(&self) -> tianguis_domain::reconcile::Answer<'_> {
        tianguis_domain::reconcile::Answer {
            reference: self.reference.as_deref(),
            amount_minor: self.amount_minor,
            currency: self.currency.as_deref(),
        }
    }
}

/// A provider's answer is believed only about this payment: a refused one (what differed)
/// is recorded for officials (`/admin`), for every path an answer comes by (callback, status
/// check, the request's reply).
pub(crate) async fn refused(
    db: &tianguis_store::Db,
    p: &tianguis_store::orders::Payment,
    source: &str,
    answer: tianguis_domain::reconcile::Answer<'_>,
    provider_ref: Option<&str>,
) -> tianguis_store::Result<Option<tianguis_domain::reconcile::Mismatch>> {
    let asked = tianguis_domain::reconcile::Asked {
        reference: &p.reference,
        amount: p.amount,
    };
    let Err(m) = tianguis_domain::reconcile::check(&asked, &answer) else {
        return Ok(None);
    };
    tracing::error!(payment = p.id, source, %m, "provider answer refused");
    db.record_provider_mismatch(Some(p.id), source, &m, provider_ref)
        .await?;
    Ok(Some(m))
}

/// The same for a queue job: a refused answer gives the job up with the reason.
async fn believed(
    db: &tianguis_store::Db,
    p: &tianguis_store::orders::Payment,
    source: &str,
    answer: tianguis_domain::reconcile::Answer<'_>,
    provider_ref: Option<&str>,
) -> Result<(), tianguis_app::queue::Outcome> {
    use tianguis_app::queue::Outcome;
    match refused(db, p, source, answer, provider_ref).await {
        Ok(None) => Ok(()),
        Ok(Some(m)) => Err(Outcome::GiveUp(m.to_string())),
        Err(e) => Err(Outcome::from_error(&e)),
    }
}

/// The provider's callback body.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Callback {
    pub provider_ref: String,
    pub reference: String,
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Clone)]
pub struct MobileMoney {
    pub base_url: String,
    pub api_key: String,
    pub secret: Vec<u8>,
    http: reqwest::Client,
}

impl MobileMoney {
    pub fn new(base_url: &str, api_key: &str, secret: &[u8]) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        MobileMoney {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.into(),
            secret: secret.to_vec(),
            http,
        }
    }

    pub async fn request(&self, req: &PaymentRequest) -> Result<PaymentStatus, String> {
        let r = self
            .http
            .post(format!("{}/v1/payments", self.base_url))
            .bearer_auth(&self.api_key)
            .json(req)
            .send()
            .await
            .map_err(|e| format!("mobile-money provider unreachable: {e}"))?;
        if !r.status().is_success() {
            return Err(format!(
                "mobile-money provider refused the request ({})",
                r.status()
            ));
        }
        r.json()
            .await
            .map_err(|e| format!("mobile-money provider answered strangely: {e}"))
    }

    pub async fn status(&self, provider_ref: &str) -> Result<PaymentStatus, String> {
        let r = self
            .http
            .get(format!("{}/v1/payments/{provider_ref}", self.base_url))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| format!("mobile-money provider unreachable: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("status query failed ({})", r.status()));
        }
        r.json().await.map_err(|e| e.to_string())
    }

    pub fn verify_callback(&self, body: &[u8], signature: &str) -> bool {
        verify(&self.secret, body, signature)
    }
}

/// The queue's `momo_request` job: ask the provider to collect a payment. The merchant
/// reference is stable per payment, so asking again is safe (providers treat it as an
/// idempotency key); a provider out of reach is asked again after the backoff, while the
/// orders wait for their payment.
pub struct RequestJob {
    pub momo: MobileMoney,
    pub callback_url: String,
}

impl tianguis_app::queue::JobHandler for RequestJob {
    fn run<'a>(
        &'a self,
        db: &'a tianguis_store::Db,
        job: &'a tianguis_store::queue::QueuedJob,
    ) -> tianguis_app::queue::JobFuture<'a> {
        use tianguis_app::queue::Outcome;
        Box::pin(async move {
            let p = match tianguis_app::queue::row_of(job, "payment_id", |id| db.payment(id)).await
            {
                Ok(x) => x,
                Err(o) => return o,
            };
            if p.status != "pending" || p.provider_ref.is_some() {
                return Outcome::Skipped;
            }
            // Orders that expired (or were cancelled) while the provider was out of reach are
            // not charged for.
            match db.checkout_orders(p.checkout_id).await {
                Ok(os)
                    if !os
                        .iter()
                        .any(|o| o.state == tianguis_domain::process::OrderState::Placed) =>
                {
                    return Outcome::Skipped;
                }
                Ok(_) => {}
                Err(e) => return Outcome::from_error(&e),
            }
            let req = PaymentRequest {
                reference: p.reference.clone(),
                amount_minor: p.amount.minor,
                currency: p.amount.currency.as_str().to_string(),
                payer_phone: p.payer_phone.clone().unwrap_or_default(),
                callback_url: self.callback_url.clone(),
            };
            match self.momo.request(&req).await {
                Ok(st) => {
                    if let Err(o) =
                        believed(db, &p, "request", st.answer(), Some(&st.provider_ref)).await
                    {
                        return o;
                    }
                    match tianguis_app::payments::provider_accepted(db, p.id, &st.provider_ref)
                        .await
                    {
                        Ok(()) => Outcome::Done,
                        Err(e) => Outcome::Retry(e.to_string()),
                    }
                }
                Err(e) => Outcome::Retry(e),
            }
        })
    }
}

/// The queue's `momo_status` job: a payment the provider took but whose callback never came
/// is asked about, again after the backoff while it stays pending.
pub struct StatusJob {
    pub momo: MobileMoney,
}

impl tianguis_app::queue::JobHandler for StatusJob {
    fn run<'a>(
        &'a self,
        db: &'a tianguis_store::Db,
        job: &'a tianguis_store::queue::QueuedJob,
    ) -> tianguis_app::queue::JobFuture<'a> {
        use tianguis_app::queue::Outcome;
        Box::pin(async move {
            let p = match tianguis_app::queue::row_of(job, "payment_id", |id| db.payment(id)).await
            {
                Ok(x) => x,
                Err(o) => return o,
            };
            if p.status != "pending" {
                return Outcome::Skipped;
            }
            let Some(r) = &p.provider_ref else {
                return Outcome::Skipped;
            };
            match self.momo.status(r).await {
                Ok(st) => match believed(db, &p, "status", st.answer(), Some(r)).await {
                    Err(o) => o,
                    Ok(()) => {
                        match tianguis_app::payments::apply_status(db, p.id, &st.status).await {
                            Ok(true) => Outcome::Done,
                            Ok(false) => Outcome::Retry(format!("still {}", st.status)),
                            Err(e) => Outcome::Retry(e.to_string()),
                        }
                    }
                },
                Err(e) => Outcome::Retry(e),
            }
        })
    }
}

#[derive(Clone)]
struct Sim {
    payments: Arc<Mutex<HashMap<String, (PaymentRequest, String)>>>,
    secret: Vec<u8>,
    api_key: String,
    approve_after: Option<Duration>,
    /// The only address the simulator calls back: this server's own callback. It never
    /// makes requests anywhere a caller names.
    callback_url: String,
    http: reqwest::Client,
}

/// The local mobile-money simulator, mounted under `/sim/momo`. Payers whose phone ends in
/// `999` are declined; others are approved after `approve_after` (None: the payment stays
/// pending until queried). Requests naming any callback but `callback_url` are refused.
pub fn simulator(
    secret: &[u8],
    api_key: &str,
    approve_after: Option<Duration>,
    callback_url: &str,
) -> axum::Router {
    let sim = Sim {
        payments: Arc::default(),
        secret: secret.to_vec(),
        api_key: api_key.to_string(),
        approve_after,
        callback_url: callback_url.to_string(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default(),
    };
    axum::Router::new()
        .route("/v1/payments", post(sim_request).get(sim_list))
        .route("/v1/payments/{r}", get(sim_status))
        .with_state(sim)
}

fn authorised(sim: &Sim, h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {}", sim.api_key))
}

async fn sim_request(
    State(sim): State<Sim>,
    h: HeaderMap,
    body: Option<Json<PaymentRequest>>,
) -> Response {
    if !authorised(&sim, &h) {
        return (StatusCode::UNAUTHORIZED, "bad api key").into_response();
    }
    let Some(Json(req)) = body else {
        return (StatusCode::BAD_REQUEST, "bad body").into_response();
    };
    if req.amount_minor <= 0 {
        return (StatusCode::BAD_REQUEST, "amount must be positive").into_response();
    }
    if req.callback_url != sim.callback_url {
        return (
            StatusCode::BAD_REQUEST,
            "callback_url must be this server's own callback",
        )
            .into_response();
    }
    // The merchant's reference is an idempotency key: asking again (after a lost answer) gets
    // the same payment, never a second charge.
    let known = sim.payments.lock().ok().and_then(|m| {
        m.iter()
            .find(|(_, (r, _))| r.reference == req.reference)
            .map(|(k, (_, st))| (k.clone(), st.clone()))
    });
    if let Some((provider_ref, status)) = known {
        return (
            StatusCode::OK,
            Json(sim_answer(&provider_ref, &req, &status)),
        )
            .into_response();
    }
    let provider_ref = format!("SIM-{}", uuid::Uuid::new_v4().simple());
    sim.payments
        .lock()
        .map(|mut m| m.insert(provider_ref.clone(), (req.clone(), "pending".into())))
        .ok();
    let decline = req.payer_phone.ends_with("999");
    let answer = sim_answer(&provider_ref, &req, "pending");
    if let Some(delay) = sim.approve_after {
        let sim2 = sim.clone();
        let pr = provider_ref.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let status = if decline { "failed" } else { "succeeded" };
            if let Ok(mut m) = sim2.payments.lock()
                && let Some(p) = m.get_mut(&pr)
            {
                p.1 = status.into();
            }
            let cb = Callback {
                provider_ref: pr.clone(),
                reference: req.reference.clone(),
                status: status.into(),
                amount_minor: req.amount_minor,
                currency: req.currency.clone(),
            };
            let body = serde_json::to_vec(&cb).unwrap_or_default();
            let sig = sign(&sim2.secret, &body);
            // One delivery attempt; a lost callback is what the status query is for.
            let _ = sim2
                .http
                .post(&sim2.callback_url)
                .header("content-type", "application/json")
                .header("x-signature", sig)
                .body(body)
                .send()
                .await;
        });
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// The simulator's answer about one of its payments, saying what it is (as real providers do:
/// MTN's request-to-pay status carries `externalId`, `amount` and `currency`).
fn sim_answer(provider_ref: &str, req: &PaymentRequest, status: &str) -> PaymentStatus {
    PaymentStatus {
        provider_ref: provider_ref.to_string(),
        status: status.to_string(),
        reference: Some(req.reference.clone()),
        amount_minor: Some(req.amount_minor),
        currency: Some(req.currency.clone()),
    }
}

async fn sim_status(State(sim): State<Sim>, h: HeaderMap, Path(r): Path<String>) -> Response {
    if !authorised(&sim, &h) {
        return (StatusCode::UNAUTHORIZED, "bad api key").into_response();
    }
    let found = sim.payments.lock().ok().and_then(|m| m.get(&r).cloned());
    match found {
        Some((req, status)) => Json(sim_answer(&r, &req, &status)).into_response(),
        None => (StatusCode::NOT_FOUND, "unknown payment").into_response(),
    }
}

/// Every payment the simulator holds, as a provider's statement of account would list them
/// (the fault tests compare it with the marketplace's own payments). Needs the API key.
async fn sim_list(State(sim): State<Sim>, h: HeaderMap) -> Response {
    if !authorised(&sim, &h) {
        return (StatusCode::UNAUTHORIZED, "bad api key").into_response();
    }
    let mut all: Vec<PaymentStatus> = sim
        .payments
        .lock()
        .map(|m| {
            m.iter()
                .map(|(r, (req, status))| sim_answer(r, req, status))
                .collect()
        })
        .unwrap_or_default();
    all.sort_by(|a, b| a.provider_ref.cmp(&b.provider_ref));
    Json(all).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn signatures() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"k", b"body", &sign(b"k", b"body")));
        assert!(!verify(b"k", b"body2", &sign(b"k", b"body")));
        assert!(!verify(b"k", b"body", "zz"));
    }
}
