//! Per-request context for pages: the session (kept in the database so any server process can
//! serve it), the signed-in user, the CSRF token and the language. Sessions are HttpOnly,
//! SameSite=Lax cookies; the id is replaced at login and logout.

use crate::error::AppError;
use crate::i18n::{LANGS, Tr};
use crate::{AppState, pages};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tianguis_store::users::User;

pub const COOKIE: &str = "tg_sid";

#[derive(Clone, Debug)]
pub struct Ctx {
    pub session_id: String,
    pub csrf: String,
    pub user: Option<User>,
    pub t: Tr,
    pub cart_count: i64,
    pub langs: &'static [(&'static str, &'static str)],
}

impl Ctx {
    pub fn check_csrf(&self, token: &str) -> Result<(), AppError> {
        use subtle_eq::eq;
        if !token.is_empty() && eq(token.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(AppError::user(StatusCode::FORBIDDEN, "error-csrf"))
        }
    }
    pub fn require_user(&self) -> Result<&User, AppError> {
        self.user
            .as_ref()
            .ok_or_else(|| AppError::user(StatusCode::UNAUTHORIZED, "error-login-needed"))
    }
}

mod subtle_eq {
    /// Length-revealing but otherwise constant-time comparison of tokens.
    pub fn eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn cookie_value(req: &Request, name: &str) -> Option<String> {
    let raw = req.headers().get_all(header::COOKIE);
    for v in raw {
        if let Ok(s) = v.to_str() {
            for c in cookie::Cookie::split_parse(s).flatten() {
                if c.name() == name {
                    return Some(c.value().to_string());
                }
            }
        }
    }
    None
}

/// The session cookie: HttpOnly, SameSite=Lax, and Secure when the site is served over HTTPS.
pub fn set_cookie(resp: &mut Response, id: &str, secure: bool) {
    let c = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Loads or creates the session, runs the handler, and renders errors as translated pages.
pub async fn layer(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let existing = match cookie_value(&req, COOKIE) {
        Some(id) => {
            s.db.session(&id)
                .await
                .ok()
                .flatten()
                .map(|(u, csrf, lang)| (id, u, csrf, lang))
        }
        None => None,
    };
    let (session_id, user_id, csrf, lang, fresh) = match existing {
        Some((id, u, csrf, lang)) => (id, u, csrf, lang, false),
        None => match s.db.create_session(None, None).await {
            Ok((id, csrf)) => (id, None, csrf, None, true),
            Err(e) => {
                return pages::error_page(
                    &Ctx::anonymous(Tr::from_accept_language(&accept)),
                    e.into(),
                );
            }
        },
    };
    let t = match lang {
        Some(l) if LANGS.iter().any(|(c, _)| *c == l) => Tr::new(&l),
        _ => Tr::from_accept_language(&accept),
    };
    let user = match user_id {
        Some(id) => s.db.user(id).await.ok().filter(|u| u.active),
        None => None,
    };
    let cart_count = s.db.cart_count(&session_id).await.unwrap_or(0);
    let ctx = Ctx {
        session_id: session_id.clone(),
        csrf,
        user,
        t,
        cart_count,
        langs: LANGS,
    };
    req.extensions_mut().insert(ctx.clone());
    let mut resp = next.run(req).await;
    if let Some(err) = resp.extensions_mut().remove::<PageErr>() {
        resp = pages::error_page(&ctx, (*err.0).clone());
    } else if let Some(()) = plain_text_rejection(resp.status(), resp.headers()) {
        // An extractor refused the request (bad path or form): say so on a page.
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 4096)
            .await
            .unwrap_or_default();
        resp = pages::error_page(
            &ctx,
            AppError::Raw(status, String::from_utf8_lossy(&body).into_owned()),
        );
    }
    if fresh && !resp.headers().contains_key(header::SET_COOKIE) {
        set_cookie(
            &mut resp,
            &session_id,
            s.config.public_url.starts_with("https://"),
        );
    }
    resp
}

/// Axum's extractor rejections are plain-text 4xx responses.
pub fn plain_text_rejection(status: StatusCode, h: &axum::http::HeaderMap) -> Option<()> {
    let plain = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    (status.is_client_error() && plain).then_some(())
}

impl Ctx {
    pub fn anonymous(t: Tr) -> Ctx {
        Ctx {
            session_id: String::new(),
            csrf: String::new(),
            user: None,
            t,
            cart_count: 0,
            langs: LANGS,
        }
    }
}

/// An error travelling from a page handler to [`layer`], which renders it translated.
#[derive(Clone)]
pub struct PageErr(pub std::sync::Arc<AppError>);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut r = self.status().into_response();
        r.extensions_mut()
            .insert(PageErr(std::sync::Arc::new(self)));
        r
    }
}
