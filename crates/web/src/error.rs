//! One error type for the HTTP edge. Pages get a translated page with a message; the API gets
//! `application/problem+json` (RFC 9457). Internal causes are logged, never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tianguis_store::StoreError;

#[derive(Debug)]
pub enum AppError {
    /// A message the person can act on, with its status.
    User(StatusCode, String),
    Internal(String),
}

impl AppError {
    pub fn bad(msg: impl Into<String>) -> Self {
        AppError::User(StatusCode::UNPROCESSABLE_ENTITY, msg.into())
    }
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::User(s, _) => *s,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    pub fn message(&self) -> String {
        match self {
            AppError::User(_, m) => m.clone(),
            AppError::Internal(_) => {
                "Something went wrong on our side. Your data is safe; try again.".into()
            }
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => AppError::User(StatusCode::UNPROCESSABLE_ENTITY, m),
            StoreError::NotFound(w) => {
                AppError::User(StatusCode::NOT_FOUND, format!("{w} not found"))
            }
            StoreError::Conflict(m) => AppError::User(StatusCode::CONFLICT, m),
            StoreError::Forbidden(m) => AppError::User(StatusCode::FORBIDDEN, m),
            StoreError::Process(p) => AppError::User(StatusCode::CONFLICT, p.to_string()),
            StoreError::Checkout(c) => AppError::User(StatusCode::CONFLICT, c.to_string()),
            StoreError::Ledger(l) => AppError::User(StatusCode::CONFLICT, l.to_string()),
            e if e.is_transient() => AppError::User(
                StatusCode::SERVICE_UNAVAILABLE,
                "The system is busy; try again in a moment.".into(),
            ),
            e => {
                tracing::error!(error = %e, "internal error");
                AppError::Internal(e.to_string())
            }
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
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.0.message(),
        });
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

pub fn problem(status: StatusCode, detail: &str) -> Response {
    Problem(AppError::User(status, detail.to_string())).into_response()
}
