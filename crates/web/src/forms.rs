//! What arrives in a request, checked before any handler sees it: control characters anywhere
//! in the path, the query or a form are refused with a message naming the field (the same on
//! both databases; PostgreSQL cannot store NUL, SQLite would keep it), a CSRF-checked form
//! extractor so a handler cannot forget the token, and the one multipart reader.

use crate::ctx::Ctx;
use crate::error::AppError;
use crate::{AppState, error::Problem};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use tianguis_domain::text;

/// Largest urlencoded form the edge reads (bigger ones are not forms people type).
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// The first field (name) of `pairs` holding a forbidden character.
fn bad_field<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Option<String> {
    for (k, v) in pairs {
        if k.chars().any(|c| text::is_forbidden(c, false))
            || v.chars().any(|c| text::is_forbidden(c, true))
        {
            return Some(k.chars().filter(|c| !c.is_control()).take(40).collect());
        }
    }
    None
}

fn refused(field: &str) -> AppError {
    AppError::bad(text::control_char_error(field))
}

/// Checks the path, the query and an urlencoded body; gives the request back (its body
/// re-assembled) or the refusal.
async fn check(req: Request) -> Result<Request, AppError> {
    let path = req.uri().path();
    let decoded: Vec<u8> = percent_decode(path.as_bytes());
    if String::from_utf8_lossy(&decoded)
        .chars()
        .any(|c| text::is_forbidden(c, false))
    {
        return Err(refused("path"));
    }
    if let Some(q) = req.uri().query() {
        let pairs: Vec<(String, String)> = form_urlencoded(q.as_bytes());
        if let Some(f) = bad_field(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return Err(refused(&f));
        }
    }
    if !is_urlencoded(req.headers()) {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            AppError::Raw(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the form is too large".into(),
            )
        })?;
    let pairs = form_urlencoded(&bytes);
    if let Some(f) = bad_field(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Err(refused(&f));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Whether the body is an urlencoded form (the media type is case-insensitive).
fn is_urlencoded(h: &axum::http::HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && i + 2 < s.len()
            && let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn form_urlencoded(b: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(b).unwrap_or_default()
}

/// Middleware for pages: a refusal becomes a page in the reader's language (rendered by the
/// context layer around it).
pub async fn pages_guard(req: Request, next: Next) -> Response {
    match check(req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Middleware for the API: a refusal becomes problem+json.
pub async fn api_guard(req: Request, next: Next) -> Response {
    match check(req).await {
        Ok(req) => next.run(req).await,
        Err(e) => Problem(e).into_response(),
    }
}

/// Strings anywhere in a JSON document: the first that holds a forbidden character, by its
/// field name.
pub fn json_bad_field(v: &serde_json::Value) -> Option<String> {
    fn walk(v: &serde_json::Value, name: &str) -> Option<String> {
        match v {
            serde_json::Value::String(s) => s
                .chars()
                .any(|c| text::is_forbidden(c, true))
                .then(|| name.to_string()),
            serde_json::Value::Array(a) => a.iter().find_map(|x| walk(x, name)),
            serde_json::Value::Object(o) => o.iter().find_map(|(k, x)| {
                if k.chars().any(|c| text::is_forbidden(c, false)) {
                    Some("key".to_string())
                } else {
                    walk(x, k)
                }
            }),
            _ => None,
        }
    }
    walk(v, "body")
}

/// A form whose CSRF token was checked against the visitor's session before the handler runs:
/// a state-changing page handler takes `CsrfForm<T>` and cannot forget the check.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, s: &AppState) -> Result<Self, AppError> {
        let ctx = req
            .extensions()
            .get::<Ctx>()
            .cloned()
            .ok_or_else(|| AppError::Internal("no page context".into()))?;
        // The form is read here whatever the guard in front did: only an urlencoded body, and
        // every field held to the rule on characters.
        if !is_urlencoded(req.headers()) {
            return Err(AppError::Raw(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a form (application/x-www-form-urlencoded)".into(),
            ));
        }
        let bytes = Bytes::from_request(req, s)
            .await
            .map_err(|e| AppError::Raw(e.status(), e.body_text()))?;
        let pairs = form_urlencoded(&bytes);
        if let Some(f) = bad_field(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return Err(refused(&f));
        }
        let token = pairs
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        ctx.check_csrf(token)?;
        let value = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
            AppError::Raw(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the form could not be read: {e}"),
            )
        })?;
        Ok(CsrfForm(value))
    }
}

/// A multipart form read whole: text fields and uploaded files, its CSRF token checked and its
/// text fields held to the same rule as every other form.
#[derive(Debug, Default)]
pub struct MultipartForm {
    pub fields: HashMap<String, String>,
    pub files: HashMap<String, Vec<u8>>,
}

impl MultipartForm {
    pub fn get(&self, k: &str) -> String {
        self.fields
            .get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    }
    pub fn has(&self, k: &str) -> bool {
        self.fields.contains_key(k)
    }
}

/// Read a multipart form whose file fields are `file_fields` (empty uploads are left out).
pub async fn read_multipart(
    c: &Ctx,
    mut mp: Multipart,
    file_fields: &[&str],
) -> Result<MultipartForm, AppError> {
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        AppError::Raw(
            StatusCode::BAD_REQUEST,
            format!("the form could not be read: {e}"),
        )
    };
    let mut f = MultipartForm::default();
    while let Some(field) = mp.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or("").to_string();
        if file_fields.contains(&name.as_str()) {
            let bytes = field.bytes().await.map_err(unreadable)?;
            if !bytes.is_empty() {
                f.files.insert(name, bytes.to_vec());
            }
            continue;
        }
        let v = field.text().await.map_err(unreadable)?;
        if let Some(bad) = bad_field(std::iter::once((name.as_str(), v.as_str()))) {
            return Err(refused(&bad));
        }
        f.fields.insert(name, v);
    }
    c.check_csrf(f.fields.get("csrf").map(String::as_str).unwrap_or(""))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_characters_are_found_in_forms_paths_and_json() {
        let pairs = form_urlencoded(b"name=Ana&address=a%00b");
        assert_eq!(
            bad_field(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            Some("address".into())
        );
        let pairs = form_urlencoded(b"description=two%0Alines");
        assert_eq!(
            bad_field(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            None
        );
        assert_eq!(percent_decode(b"/track/AB%00C"), b"/track/AB\0C".to_vec());
        assert_eq!(percent_decode(b"/x%4"), b"/x%4".to_vec());
        let j: serde_json::Value =
            serde_json::from_str(r#"{"lines":[{"note":"ok"}],"address":"x\u0000y"}"#).unwrap();
        assert_eq!(json_bad_field(&j), Some("address".into()));
        let j: serde_json::Value = serde_json::from_str(r#"{"address":"fine"}"#).unwrap();
        assert_eq!(json_bad_field(&j), None);
    }
}
