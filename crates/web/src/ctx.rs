//! Per-request context for pages: the session (kept in the database so any server process can
//! serve it), the signed-in user, the CSRF token and the language. Sessions are HttpOnly,
//! SameSite=Lax cookies; the id is replaced at login and logout. Sessions are made only when
//! something must be kept; until then the CSRF token is a double-submit cookie.

use crate::AppState;
use crate::error::AppError;
use crate::i18n::{LANGS, Tr};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use tianguis_store::Db;
use tianguis_store::users::User;

pub const COOKIE: &str = "tg_sid";
/// The CSRF token of a visitor without a session (double-submit: the same value is in the
/// cookie and in each form). No database row is made for it.
pub const CSRF_COOKIE: &str = "tg_csrf";

#[derive(Clone, Debug)]
pub struct Ctx {
    /// The stored session, when this visitor has one. Anonymous visitors get one only when
    /// something must be kept (a cart, a language choice, a login): see [`Ctx::session`].
    pub session_id: Option<String>,
    pub csrf: String,
    pub user: Option<User>,
    pub t: Tr,
    pub cart_count: i64,
    pub langs: &'static [(&'static str, &'static str)],
    /// A session made by a handler during this request; the response carries its cookie.
    made: Arc<Mutex<Option<String>>>,
}

impl Ctx {
    pub fn check_csrf(&self, token: &str) -> Result<(), AppError> {
        use subtle::ConstantTimeEq;
        if !token.is_empty() && bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes())) {
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
    /// This visitor's session id, made now (with the CSRF token the page already carries) when
    /// there is none yet.
    pub async fn session(&self, db: &Db) -> Result<String, AppError> {
        if let Some(id) = &self.session_id {
            return Ok(id.clone());
        }
        if let Some(id) = self.made.lock().ok().and_then(|m| m.clone()) {
            return Ok(id);
        }
        let id = db.create_session_with(None, None, &self.csrf).await?;
        if let Ok(mut m) = self.made.lock() {
            *m = Some(id.clone());
        }
        Ok(id)
    }
    /// The visitor's cart (empty without a session).
    pub async fn cart(&self, db: &Db) -> Result<Vec<tianguis_store::catalog::CartLine>, AppError> {
        match self.session_id.clone().or_else(|| self.made_session()) {
            Some(id) => Ok(db.cart(&id).await?),
            None => Ok(Vec::new()),
        }
    }
    fn made_session(&self) -> Option<String> {
        self.made.lock().ok().and_then(|m| m.clone())
    }
}

fn cookie_value(req: &Request, name: &str) -> Option<String> {
    cookie_in(req.headers(), name)
}

fn cookie_in(h: &axum::http::HeaderMap, name: &str) -> Option<String> {
    let raw = h.get_all(header::COOKIE);
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

/// The signed-in, active user of a request's session cookie, outside the pages' layer.
pub async fn session_user(s: &AppState, h: &axum::http::HeaderMap) -> Option<User> {
    let id = cookie_in(h, COOKIE).filter(|v| plausible_token(v))?;
    let (user, _, _) = s.db.session(&id).await.ok().flatten()?;
    s.db.user(user?).await.ok().filter(|u| u.active)
}

/// The session cookie: HttpOnly, SameSite=Lax, and Secure when the site is served over HTTPS.
pub fn set_cookie(resp: &mut Response, id: &str, secure: bool) {
    set_named_cookie(resp, COOKIE, id, 2_592_000, secure);
}

/// Forget the session cookie (logout).
pub fn clear_cookie(resp: &mut Response, secure: bool) {
    set_named_cookie(resp, COOKIE, "", 0, secure);
}

fn set_named_cookie(resp: &mut Response, name: &str, value: &str, max_age: i64, secure: bool) {
    let c = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A token we made (hex), not anything a client sent us.
fn plausible_token(t: &str) -> bool {
    (16..=128).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Loads the session when there is one, runs the handler, and renders errors as translated
/// pages. A visitor without a session costs no database write: their CSRF token lives in a
/// cookie until something must be kept.
pub async fn layer(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let existing = match cookie_value(&req, COOKIE).filter(|v| plausible_token(v)) {
        Some(id) => match s.db.session(&id).await {
            Ok(found) => found.map(|(u, csrf, lang)| (id, u, csrf, lang)),
            Err(e) => {
                return crate::caps::views::error_page(
                    &Ctx::anonymous(Tr::from_accept_language(&accept)),
                    e.into(),
                );
            }
        },
        None => None,
    };
    let csrf_cookie = cookie_value(&req, CSRF_COOKIE).filter(|v| plausible_token(v));
    let (session_id, user_id, csrf, lang, fresh_csrf) = match existing {
        Some((id, u, csrf, lang)) => (Some(id), u, csrf, lang, false),
        None => match csrf_cookie {
            Some(t) => (None, None, t, None, false),
            None => (None, None, tianguis_store::random_token(16), None, true),
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
    let cart_count = match &session_id {
        Some(id) => s.db.cart_count(id).await.unwrap_or(0),
        None => 0,
    };
    let ctx = Ctx {
        session_id,
        csrf: csrf.clone(),
        user,
        t,
        cart_count,
        langs: LANGS,
        made: Arc::default(),
    };
    req.extensions_mut().insert(ctx.clone());
    let mut resp = next.run(req).await;
    if let Some(err) = resp.extensions_mut().remove::<PageErr>() {
        resp = crate::caps::views::error_page(&ctx, (*err.0).clone());
    } else if let Some(()) = plain_text_rejection(resp.status(), resp.headers()) {
        // An extractor refused the request (bad path or form): say so on a page.
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 4096)
            .await
            .unwrap_or_default();
        resp = crate::caps::views::error_page(
            &ctx,
            AppError::Raw(status, String::from_utf8_lossy(&body).into_owned()),
        );
    }
    let secure = s.config.public_url.starts_with("https://");
    if let Some(id) = ctx.made_session()
        && !resp.headers().contains_key(header::SET_COOKIE)
    {
        set_cookie(&mut resp, &id, secure);
    } else if fresh_csrf && ctx.session_id.is_none() && is_html(resp.headers()) {
        // A page that may carry a form: its token must come back with the post.
        set_named_cookie(&mut resp, CSRF_COOKIE, &csrf, 2_592_000, secure);
    }
    resp
}

fn is_html(h: &axum::http::HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
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
            session_id: None,
            csrf: String::new(),
            user: None,
            t,
            cart_count: 0,
            langs: LANGS,
            made: Arc::default(),
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
