//! Text messages. [`SmsGateway`] speaks Africa's Talking's published SMS API (`POST
//! {base}/version1/messaging`, form fields `username`, `to`, `message`, optional `from`, header
//! `apiKey`; the answer lists each recipient with a `statusCode`, 101 sent and 102 queued, and a
//! `messageId`). [`simulator`] is a *local SMS gateway simulator* speaking the same protocol for
//! the demo and the tests (numbers ending in 000 are refused as invalid); it keeps what it was
//! sent, readable by admins at `GET /sim/sms/messages`. [`send_outbox`] is the worker that drains the outbox.

use crate::AppState;
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
    pub async fn send(&self, to: &str, message: &str) -> Result<String, SmsError> {
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
            101 | 102 => Ok(rcpt.message_id),
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
    let ok = !f.to.ends_with("000") && f.to.starts_with('+');
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

/// Send what is due in the outbox, each message in its recipient's language. Returns how many
/// were sent.
pub async fn send_outbox(s: &AppState) -> usize {
    let Ok(due) = s.db.claim_outbox(20, 60_000).await else {
        return 0;
    };
    let mut sent = 0;
    for m in due {
        let tr = crate::i18n::Tr::new(&m.lang);
        let mut args = m.args.clone();
        let currency = args
            .iter()
            .find(|(k, _)| k == "currency")
            .map(|(_, v)| v.clone());
        for (k, v) in &mut args {
            if k == "total"
                && let (Some(c), Ok(minor)) = (currency.as_deref(), v.parse::<i64>())
                && let Ok(cur) = tianguis_domain::money::Currency::parse(c)
            {
                *v = tr.money(&tianguis_domain::money::Money::new(minor, cur));
            }
        }
        args.push(("site".into(), s.config.public_url.clone()));
        if let Some(code_id) = m.code_id {
            // The code is made now; only its hash is kept.
            match s.db.issue_phone_code(code_id).await {
                Ok(Some(code)) => args.push(("code".into(), code)),
                Ok(None) => {
                    // Used, replaced or expired while waiting: nothing worth sending.
                    if let Err(e) = s.db.outbox_dropped(m.id, "code no longer valid").await {
                        tracing::warn!(error = %e, "outbox update failed");
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, id = m.id, "could not make the code");
                    continue;
                }
            }
        }
        let text = tr.render(&m.template, &args);
        let r = match s.sms.send(&m.to_phone, &text).await {
            Ok(id) => s.db.outbox_sent(m.id, &id).await.map(|_| sent += 1),
            Err(e) => {
                tracing::warn!(error = %e, id = m.id, "text message not sent");
                s.db.outbox_failed(m.id, &e.to_string()).await
            }
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "outbox update failed");
        }
    }
    sent
}
