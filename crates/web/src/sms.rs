//! Text messages. [`SmsGateway`] speaks Africa's Talking's published SMS API (`POST
//! {base}/version1/messaging`, form fields `username`, `to`, `message`, optional `from`, header
//! `apiKey`; the answer lists each recipient with a `statusCode`, 101 sent and 102 queued, and a
//! `messageId`). [`simulator`] is a *local SMS gateway simulator* speaking the same protocol for
//! the demo and the tests (numbers ending in 0000 are refused as invalid); it keeps what it was
//! sent, readable by admins at `GET /sim/sms/messages`. [`SmsJob`] is the queue's handler that sends each message.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct SmsGateway {
    pub base_url: String,
    pub username: String,
    pub api_key: String,
    pub from: Option<String>,
    http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("gateway unreachable: {0}")]
    Transport(String),
    #[error("gateway answered {0}")]
    Http(u16),
    #[error("recipient refused: {status} ({code})")]
    Refused { code: i64, status: String },
    #[error("unreadable answer: {0}")]
    Answer(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub status_code: i64,
    pub number: String,
    pub status: String,
    pub cost: String,
    pub message_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageData {
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Recipients")]
    pub recipients: Vec<Recipient>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendAnswer {
    #[serde(rename = "SMSMessageData")]
    pub data: MessageData,
}

impl SmsGateway {
    pub fn new(base_url: &str, username: &str, api_key: &str, from: Option<String>) -> Self {
        SmsGateway {
            base_url: base_url.trim_end_matches('/').to_string(),
            username: username.to_string(),
            api_key: api_key.to_string(),
            from,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Send one message; the gateway's message id when it took it.
    /// Send one message: the gateway's id for it and what it charged (e.g. "USD 0.0100").
    pub async fn send(&self, to: &str, message: &str) -> Result<(String, String), SmsError> {
        let mut form = vec![
            ("username", self.username.clone()),
            ("to", to.to_string()),
            ("message", message.to_string()),
        ];
        if let Some(f) = &self.from {
            form.push(("from", f.clone()));
        }
        let r = self
            .http
            .post(format!("{}/version1/messaging", self.base_url))
            .header("apiKey", &self.api_key)
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| SmsError::Transport(e.to_string()))?;
        if !r.status().is_success() {
            return Err(SmsError::Http(r.status().as_u16()));
        }
        let answer: SendAnswer = r
            .json()
            .await
            .map_err(|e| SmsError::Answer(e.to_string()))?;
        let rcpt = answer
            .data
            .recipients
            .into_iter()
            .next()
            .ok_or_else(|| SmsError::Answer("no recipient".into()))?;
        match rcpt.status_code {
            101 | 102 => Ok((rcpt.message_id, rcpt.cost)),
            code => Err(SmsError::Refused {
                code,
                status: rcpt.status,
            }),
        }
    }
}

/// What the simulator was sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimSms {
    pub to: String,
    pub message: String,
    pub message_id: String,
}

/// What the simulator was sent, shared with the admin-only page that shows it
/// (`GET /sim/sms/messages`).
#[derive(Clone, Default)]
pub struct SimOutbox(Arc<Mutex<Vec<SimSms>>>);

impl SimOutbox {
    pub fn messages(&self) -> Vec<SimSms> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[derive(Clone)]
struct Sim {
    username: String,
    api_key: String,
    sent: SimOutbox,
}

/// The gateway side of the simulator (`POST /version1/messaging`, as Africa's Talking). What it
/// was sent is readable by admins only, through [`SimOutbox`].
pub fn simulator(username: &str, api_key: &str, sent: SimOutbox) -> axum::Router {
    let sim = Sim {
        username: username.to_string(),
        api_key: api_key.to_string(),
        sent,
    };
    axum::Router::new()
        .route("/version1/messaging", post(sim_send))
        .with_state(sim)
}

#[derive(Deserialize)]
struct SendForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    message: String,
}

async fn sim_send(
    State(sim): State<Sim>,
    h: HeaderMap,
    form: Result<Form<SendForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if h.get("apiKey").and_then(|v| v.to_str().ok()) != Some(sim.api_key.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            "The supplied authentication is invalid",
        )
            .into_response();
    }
    let Ok(Form(f)) = form else {
        return (StatusCode::BAD_REQUEST, "bad form").into_response();
    };
    if f.username != sim.username || f.message.is_empty() {
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    }
    let id = format!("ATXid_sim{}", uuid::Uuid::new_v4().simple());
    let ok = !f.to.ends_with("0000") && f.to.starts_with('+');
    if ok && let Ok(mut v) = sim.sent.0.lock() {
        v.push(SimSms {
            to: f.to.clone(),
            message: f.message.clone(),
            message_id: id.clone(),
        });
    }
    let rcpt = Recipient {
        status_code: if ok { 101 } else { 403 },
        number: f.to,
        status: if ok { "Success" } else { "InvalidPhoneNumber" }.into(),
        cost: if ok { "USD 0.0100" } else { "0" }.into(),
        message_id: if ok { id } else { "None".into() },
    };
    let answer = SendAnswer {
        data: MessageData {
            message: format!("Sent to {}/1 Total Cost: {}", i32::from(ok), rcpt.cost),
            recipients: vec![rcpt],
        },
    };
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// The queue's `sms` job: send one message of the outbox in its recipient's language. A code's
/// text gets its code made now (only the hash is kept). A gateway that refuses or cannot be
/// reached is tried again after the backoff; the outbox row records each failure and is marked
/// failed when the attempts run out.
pub struct SmsJob {
    pub gateway: SmsGateway,
    pub public_url: String,
}

impl tianguis_app::queue::JobHandler for SmsJob {
    fn run<'a>(
        &'a self,
        db: &'a tianguis_store::Db,
        job: &'a tianguis_store::queue::QueuedJob,
    ) -> tianguis_app::queue::JobFuture<'a> {
        use tianguis_app::queue::Outcome;
        Box::pin(async move {
            let m = match tianguis_app::queue::row_of(job, "outbox_id", |id| db.outbox_message(id))
                .await
            {
                Ok(x) => x,
                Err(o) => return o,
            };
            // A failed message an official sends round again is tried again; a sent one never.
            if m.status == "sent" {
                return Outcome::Skipped;
            }
            let tr = crate::i18n::Tr::new(&m.lang);
            let mut args = tr.text_args(&m.args);
            args.push(("site".into(), self.public_url.clone()));
            // The delivery code is read from the order as the text goes out (the outbox keeps
            // none), and a due date is said as a day.
            let mut extra = Vec::new();
            for (k, v) in &args {
                if k == "code_of_order"
                    && let Ok(id) = v.parse::<i64>()
                {
                    match db.order(id).await {
                        Ok(o) => extra.push((
                            "delivery_code".to_string(),
                            o.delivery_code.unwrap_or_default(),
                        )),
                        Err(e) => return Outcome::from_error(&e),
                    }
                }
                if k == "due"
                    && let Ok(ms) = v.parse::<i64>()
                {
                    let offset = match db.settings().await {
                        Ok(s) => s.utc_offset_minutes(),
                        Err(e) => return Outcome::from_error(&e),
                    };
                    extra.push((
                        "due_day".to_string(),
                        tianguis_domain::calendar::local_day(ms, offset).0,
                    ));
                }
            }
            args.extend(extra);
            if let Some(code_id) = m.code_id {
                match db.issue_phone_code(code_id).await {
                    Ok(Some(code)) => args.push(("code".into(), code)),
                    Ok(None) => {
                        // Used, replaced or expired while waiting: nothing worth sending.
                        let _ = db.outbox_dropped(m.id, "code no longer valid").await;
                        return Outcome::Skipped;
                    }
                    Err(e) => return Outcome::Retry(e.to_string()),
                }
            }
            // In the SMS alphabet when it can be (accents folded), counted in parts.
            let text = tianguis_domain::sms::prepare(&tr.render(&m.template, &args));
            match self.gateway.send(&m.to_phone, &text.text).await {
                Ok((id, cost)) => match db.outbox_sent(m.id, &id, text.parts, &cost).await {
                    Ok(()) => Outcome::Done,
                    Err(e) => {
                        // The gateway took it: sending again would text the person twice.
                        // The row stays unsent on the record; the job is done.
                        tracing::warn!(outbox = m.id, gateway_id = %id, error = %e, "text sent but not recorded as sent");
                        Outcome::Done
                    }
                },
                Err(e) => {
                    // A number the gateway calls invalid will not become valid.
                    let refused = matches!(e, SmsError::Refused { .. });
                    let last = refused || job.attempts >= job.max_attempts;
                    if let Err(e2) = db.outbox_failed(m.id, &e.to_string(), last).await {
                        tracing::warn!(error = %e2, "outbox update failed");
                    }
                    if refused {
                        Outcome::GiveUp(e.to_string())
                    } else {
                        Outcome::Retry(e.to_string())
                    }
                }
            }
        })
    }
}
