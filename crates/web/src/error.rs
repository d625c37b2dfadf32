//! One error type for the HTTP edge. Pages get a page with the message in the reader's language;
//! the API gets `application/problem+json` (RFC 9457) in English. Internal causes are logged,
//! never shown.

use crate::i18n::Tr;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tianguis_store::{Msg, StoreError};

#[derive(Debug, Clone)]
pub enum AppError {
    /// A message the person can act on, with its status.
    User(StatusCode, Msg),
    /// A refusal whose text is not ours (an extractor's rejection of a malformed request).
    Raw(StatusCode, String),
    Internal(String),
}

impl AppError {
    pub fn user(status: StatusCode, key: &'static str) -> Self {
        AppError::User(status, Msg::new(key))
    }
    pub fn bad(msg: Msg) -> Self {
        AppError::User(StatusCode::UNPROCESSABLE_ENTITY, msg)
    }
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::User(s, _) | AppError::Raw(s, _) => *s,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    /// For a form that comes back filled in with the reason: the status and the message in the
    /// reader's language, or the internal error itself (which becomes an error page).
    pub fn for_form(self, t: &Tr) -> Result<(StatusCode, String), AppError> {
        match self {
            AppError::Internal(_) => Err(self),
            e => Ok((e.status(), e.message(t))),
        }
    }
    /// The message in the reader's language.
    pub fn message(&self, t: &Tr) -> String {
        match self {
            AppError::User(_, m) => t.msg(m),
            AppError::Raw(..) => t.t("err-bad-request"),
            AppError::Internal(_) => t.t("error-internal"),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Forbidden(_) => StatusCode::FORBIDDEN,
            StoreError::Limited => StatusCode::TOO_MANY_REQUESTS,
            StoreError::Conflict(_)
            | StoreError::Process(_)
            | StoreError::Checkout(_)
            | StoreError::Ledger(_) => StatusCode::CONFLICT,
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable");
                return AppError::user(StatusCode::SERVICE_UNAVAILABLE, "err-unavailable");
            }
            e if e.is_transient() => {
                return AppError::user(StatusCode::SERVICE_UNAVAILABLE, "err-busy");
            }
            e => {
                tracing::error!(error = %e, "internal error");
                return AppError::Internal(e.to_string());
            }
        };
        match e.msg() {
            Some(m) => AppError::User(status, m),
            None => AppError::Internal(e.to_string()),
        }
    }
}

/// API errors as problem+json.
pub struct Problem(pub AppError);

impl<E: Into<AppError>> From<E> for Problem {
    fn from(e: E) -> Self {
        Problem(e.into())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let detail = match &self.0 {
            AppError::Raw(_, text) => text.clone(),
            e => e.message(&Tr::new("en")),
        };
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        let mut r = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
        retry_later(&mut r);
        r
    }
}

/// A 503 says when to come back (a few seconds: the database restarts, a lock clears).
pub fn retry_later(r: &mut Response) {
    if r.status() == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        );
    }
}

pub fn problem(status: StatusCode, key: &'static str) -> Response {
    Problem(AppError::user(status, key)).into_response()
}
