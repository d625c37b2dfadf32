//! Payouts to mobile-money wallets. [`Disbursement`] speaks the MTN MoMo Open API, product
//! "Disbursement" (<https://momodeveloper.mtn.com/api-documentation>):
//!
//! - `POST /disbursement/token/`, Basic auth with the API user and key, header
//!   `Ocp-Apim-Subscription-Key`: an access token (`access_token`, `expires_in` seconds);
//! - `POST /disbursement/v1_0/transfer`, headers `Authorization: Bearer`, `X-Reference-Id` (a
//!   UUID v4 we choose: the idempotency key; the same id again is refused with 409 and pays
//!   once), `X-Target-Environment`, `Ocp-Apim-Subscription-Key`; body `{amount, currency,
//!   externalId, payee: {partyIdType: "MSISDN", partyId}, payerMessage, payeeNote}`; answers 202;
//! - `GET /disbursement/v1_0/transfer/{referenceId}`: `{status: PENDING | SUCCESSFUL | FAILED,
//!   reason, financialTransactionId, ...}`, 404 when the provider never received the request.
//!
//! MTN's callbacks are not signed, so none is acted on: the status query is the answer we trust.
//! [`simulator`] is a *local simulator* of that API for the demo and the tests (no provider is
//! reachable from here), with failures a tester can trigger by the payee's number.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tianguis_domain::kinds::{LineStatus, PayoutChannel};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    pub party_id_type: String,
    pub party_id: String,
}

/// The body of a transfer request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// In the currency's major units, as text ("1500", "12.50").
    pub amount: String,
    pub currency: String,
    pub external_id: String,
    pub payee: Party,
    pub payer_message: String,
    pub payee_note: String,
}

/// What the provider says of a transfer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TransferStatus {
    pub amount: String,
    pub currency: String,
    #[serde(default)]
    pub financial_transaction_id: Option<String>,
    pub external_id: String,
    pub payee: Party,
    /// PENDING | SUCCESSFUL | FAILED
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Token {
    access_token: String,
    expires_in: u64,
}

#[derive(Clone)]
pub struct Disbursement {
    base_url: String,
    api_user: String,
    api_key: String,
    subscription_key: String,
    target_environment: String,
    http: reqwest::Client,
    token: Arc<Mutex<Option<(String, Instant)>>>,
}

impl Disbursement {
    pub fn new(
        base_url: &str,
        api_user: &str,
        api_key: &str,
        subscription_key: &str,
        target_environment: &str,
    ) -> Self {
        Disbursement {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_user: api_user.to_string(),
            api_key: api_key.to_string(),
            subscription_key: subscription_key.to_string(),
            target_environment: target_environment.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
            token: Arc::default(),
        }
    }

    async fn bearer(&self) -> Result<String, String> {
        if let Ok(t) = self.token.lock()
            && let Some((tok, until)) = t.as_ref()
            && Instant::now() < *until
        {
            return Ok(tok.clone());
        }
        let r = self
            .http
            .post(format!("{}/disbursement/token/", self.base_url))
            .basic_auth(&self.api_user, Some(&self.api_key))
            .header("Ocp-Apim-Subscription-Key", &self.subscription_key)
            .send()
            .await
            .map_err(|e| format!("disbursement provider unreachable: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("disbursement token refused ({})", r.status()));
        }
        let t: Token = r
            .json()
            .await
            .map_err(|e| format!("disbursement token unreadable: {e}"))?;
        // Renewed a minute early, so a request never carries a token about to lapse.
        let until = Instant::now() + Duration::from_secs(t.expires_in.saturating_sub(60).max(1));
        if let Ok(mut slot) = self.token.lock() {
            *slot = Some((t.access_token.clone(), until));
        }
        Ok(t.access_token)
    }

    /// Ask for a transfer under our reference. Ok also when the provider already had this
    /// reference (409): it pays once.
    pub async fn transfer(&self, reference: &str, t: &Transfer) -> Result<(), String> {
        let token = self.bearer().await?;
        let r = self
            .http
            .post(format!("{}/disbursement/v1_0/transfer", self.base_url))
            .bearer_auth(token)
            .header("X-Reference-Id", reference)
            .header("X-Target-Environment", &self.target_environment)
            .header("Ocp-Apim-Subscription-Key", &self.subscription_key)
            .json(t)
            .send()
            .await
            .map_err(|e| format!("disbursement provider unreachable: {e}"))?;
        match r.status() {
            s if s.is_success() => Ok(()),
            StatusCode::CONFLICT => Ok(()),
            s => Err(format!("transfer refused ({s})")),
        }
    }

    /// What became of our reference: None when the provider never received it.
    pub async fn status(&self, reference: &str) -> Result<Option<TransferStatus>, String> {
        let token = self.bearer().await?;
        let r = self
            .http
            .get(format!(
                "{}/disbursement/v1_0/transfer/{reference}",
                self.base_url
            ))
            .bearer_auth(token)
            .header("X-Target-Environment", &self.target_environment)
            .header("Ocp-Apim-Subscription-Key", &self.subscription_key)
            .send()
            .await
            .map_err(|e| format!("disbursement provider unreachable: {e}"))?;
        match r.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => r
                .json()
                .await
                .map(Some)
                .map_err(|e| format!("transfer status unreadable: {e}")),
            s => Err(format!("transfer status failed ({s})")),
        }
    }
}

/// The queue's `payout` job: a mobile-money line still on its way is asked about by its
/// reference; one the provider never had is requested (the same reference, so a request whose
/// answer was lost is never paid twice); a final answer settles the line (paid, or failed and
/// back in the payee's balance). Pending: asked again after the backoff.
pub struct PayoutJob {
    pub api: Disbursement,
}

impl tianguis_app::queue::JobHandler for PayoutJob {
    fn run<'a>(
        &'a self,
        db: &'a tianguis_store::Db,
        job: &'a tianguis_store::queue::QueuedJob,
    ) -> tianguis_app::queue::JobFuture<'a> {
        use tianguis_app::queue::Outcome;
        Box::pin(async move {
            let l = match tianguis_app::queue::row_of(job, "line_id", |id| db.payout_line(id)).await
            {
                Ok(x) => x,
                Err(o) => return o,
            };
            if l.status != LineStatus::Sending || l.channel != PayoutChannel::MobileMoney {
                return Outcome::Skipped;
            }
            let settled = match self.api.status(&l.reference).await {
                Err(e) => return Outcome::Retry(e),
                Ok(None) => {
                    let t = Transfer {
                        amount: l.amount.to_decimal(),
                        currency: l.amount.currency.as_str().to_string(),
                        external_id: format!("tianguis-payout-{}", l.id),
                        payee: Party {
                            party_id_type: "MSISDN".into(),
                            party_id: l.destination.trim_start_matches('+').to_string(),
                        },
                        payer_message: "tianguis".into(),
                        payee_note: format!("tianguis payout {}", l.batch_id),
                    };
                    return match self.api.transfer(&l.reference, &t).await {
                        Ok(()) => {
                            Outcome::Retry("transfer requested; waiting for its status".into())
                        }
                        Err(e) => Outcome::Retry(e),
                    };
                }
                Ok(Some(st)) => match st.status.as_str() {
                    "SUCCESSFUL" => {
                        let by = st
                            .financial_transaction_id
                            .unwrap_or_else(|| l.reference.clone());
                        tianguis_app::payouts::line_paid(db, l.id, &by).await
                    }
                    "FAILED" => {
                        let why = st.reason.unwrap_or_else(|| "FAILED".into());
                        tianguis_app::payouts::line_failed(db, l.id, &why).await
                    }
                    other => return Outcome::Retry(format!("transfer {other}")),
                },
            };
            match settled {
                Ok(_) => Outcome::Done,
                Err(e) => Outcome::from_error(&e),
            }
        })
    }
}

/// One transfer the simulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTransfer {
    pub reference: String,
    pub body: Transfer,
    pub status: String,
    pub reason: Option<String>,
    /// Status queries so far.
    pub polls: u32,
}

/// What the local disbursement simulator was asked for (read by tests and admins).
#[derive(Clone, Default)]
pub struct SimLedger(Arc<Mutex<Vec<SimTransfer>>>);

impl SimLedger {
    pub fn transfers(&self) -> Vec<SimTransfer> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[derive(Clone)]
struct Sim {
    ledger: SimLedger,
    api_user: String,
    api_key: String,
    subscription_key: String,
    tokens: Arc<Mutex<Vec<String>>>,
    /// References whose first answer was "lost" already.
    lost_once: Arc<Mutex<Vec<String>>>,
}

/// The local disbursement simulator, mounted under `/sim/disburse`; it speaks the API above.
/// Failures by the payee's number: ending `0000`, the transfer fails (`PAYEE_NOT_FOUND`);
/// `0001`, the transfer is made but the answer to the first request is lost (a 502, as a cut
/// network would give); `0002`, it stays PENDING for two status queries. Others succeed.
pub fn simulator(
    api_user: &str,
    api_key: &str,
    subscription_key: &str,
    ledger: SimLedger,
) -> axum::Router {
    let sim = Sim {
        ledger,
        api_user: api_user.to_string(),
        api_key: api_key.to_string(),
        subscription_key: subscription_key.to_string(),
        tokens: Arc::default(),
        lost_once: Arc::default(),
    };
    axum::Router::new()
        .route("/disbursement/token/", post(sim_token))
        .route("/disbursement/v1_0/transfer", post(sim_transfer))
        .route("/disbursement/v1_0/transfer/{r}", get(sim_status))
        .with_state(sim)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn subscribed(sim: &Sim, h: &HeaderMap) -> bool {
    header(h, "ocp-apim-subscription-key") == sim.subscription_key
}

fn bearer_ok(sim: &Sim, h: &HeaderMap) -> bool {
    let Some(t) = header(h, "authorization").strip_prefix("Bearer ") else {
        return false;
    };
    subscribed(sim, h)
        && sim
            .tokens
            .lock()
            .map(|v| v.iter().any(|x| x == t))
            .unwrap_or(false)
}

async fn sim_token(State(sim): State<Sim>, h: HeaderMap) -> Response {
    use base64::Engine;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", sim.api_user, sim.api_key))
    );
    if !subscribed(&sim, &h) || header(&h, "authorization") != want {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    let t = tianguis_store::random_token(16);
    if let Ok(mut v) = sim.tokens.lock() {
        v.push(t.clone());
    }
    Json(serde_json::json!({"access_token": t, "token_type": "access_token", "expires_in": 3600}))
        .into_response()
}

async fn sim_transfer(
    State(sim): State<Sim>,
    h: HeaderMap,
    body: Option<Json<Transfer>>,
) -> Response {
    if !bearer_ok(&sim, &h) {
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    let reference = header(&h, "x-reference-id").to_string();
    if uuid::Uuid::parse_str(&reference).is_err() {
        return (StatusCode::BAD_REQUEST, "X-Reference-Id must be a UUID").into_response();
    }
    let Some(Json(t)) = body else {
        return (StatusCode::BAD_REQUEST, "bad body").into_response();
    };
    let positive = t
        .amount
        .parse::<f64>()
        .map(|a| a > 0.0 && a.is_finite())
        .unwrap_or(false);
    if !positive || t.payee.party_id_type != "MSISDN" {
        return (StatusCode::BAD_REQUEST, "bad amount or payee").into_response();
    }
    let Ok(mut ledger) = sim.ledger.0.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if ledger.iter().any(|x| x.reference == reference) {
        return (StatusCode::CONFLICT, "RESOURCE_ALREADY_EXIST").into_response();
    }
    let fails = t.payee.party_id.ends_with("0000");
    let lose = t.payee.party_id.ends_with("0001");
    ledger.push(SimTransfer {
        reference: reference.clone(),
        status: if fails { "FAILED" } else { "SUCCESSFUL" }.into(),
        reason: fails.then(|| "PAYEE_NOT_FOUND".to_string()),
        body: t,
        polls: 0,
    });
    drop(ledger);
    if lose
        && let Ok(mut l) = sim.lost_once.lock()
        && !l.contains(&reference)
    {
        l.push(reference);
        return (StatusCode::BAD_GATEWAY, "the answer was lost on the way").into_response();
    }
    StatusCode::ACCEPTED.into_response()
}

async fn sim_status(State(sim): State<Sim>, h: HeaderMap, Path(r): Path<String>) -> Response {
    if !bearer_ok(&sim, &h) {
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    let Ok(mut ledger) = sim.ledger.0.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(x) = ledger.iter_mut().find(|x| x.reference == r) else {
        return (StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").into_response();
    };
    x.polls += 1;
    let status = if x.body.payee.party_id.ends_with("0002") && x.polls <= 2 {
        "PENDING".to_string()
    } else {
        x.status.clone()
    };
    Json(TransferStatus {
        amount: x.body.amount.clone(),
        currency: x.body.currency.clone(),
        financial_transaction_id: (status == "SUCCESSFUL").then(|| format!("SIMTX-{}", &r[..8])),
        external_id: x.body.external_id.clone(),
        payee: x.body.payee.clone(),
        status,
        reason: x.reason.clone(),
    })
    .into_response()
}
