//! Accounts: signing up, in and out, the language, and setting a password with a texted code.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::*;
use crate::ctx::{self, Ctx};
use crate::error::AppError;
use crate::forms::CsrfForm;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::HashMap;
use tianguis_app::people::NewUser;
use tianguis_store::catalog::Place;
use tianguis_store::users::Role;

pub fn routes() -> Table {
    Table::new("account")
        .get_post("/login", login_form, login)
        .post("/login/code", login_code)
        .get_post("/signup", signup_form, signup)
        .post("/logout", logout)
        .get("/lang/{code}", set_lang)
        .get_post("/claim", claim_page, claim)
        .get_post("/password/forgot", reset_page, reset)
}

// ---------- accounts ----------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    c: &'a Ctx,
    title: String,
    error: Option<String>,
    action: &'static str,
    signup: bool,
    phone: String,
    places: Vec<Place>,
    /// Where to go once signed in (a path on this site).
    next: String,
}

/// A `next` worth following after sign-in: a path on this site, never another site.
fn safe_next(next: &str) -> Option<&str> {
    (next.starts_with('/') && !next.starts_with("//") && !next.contains('\\')).then_some(next)
}

async fn login_form(
    Extension(c): Extension<Ctx>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> R {
    html(LoginPage {
        title: c.t.t("login-title"),
        c: &c,
        error: None,
        action: "/login",
        signup: false,
        phone: String::new(),
        places: vec![],
        next: q
            .get("next")
            .and_then(|n| safe_next(n))
            .unwrap_or_default()
            .to_string(),
    })
}

#[derive(Template)]
#[template(path = "login_code.html")]
struct LoginCodePage<'a> {
    c: &'a Ctx,
    title: String,
    error: Option<String>,
    phone: String,
    next: String,
}

/// Sign in with a code by text. Step one (phone): a code is texted if the phone has an account
/// (the answer is the same either way). Step two (phone, code): signed in. Asking is limited
/// like every texted code; trying, like passwords (five wrong codes and the code is spent).
async fn login_code(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    ip: crate::abuse::ClientIp,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let (phone, code) = (get("phone"), get("code"));
    let next = safe_next(&get("next")).unwrap_or_default().to_string();
    let page = |error: Option<String>| LoginCodePage {
        title: c.t.t("login-code-title"),
        c: &c,
        error,
        phone: phone.clone(),
        next: next.clone(),
    };
    if code.is_empty() {
        crate::abuse::take(&s, &crate::abuse::texted_codes(&s, ip, Some(&phone)).await?).await?;
        if s.db.code_purpose_fits("login", &phone).await? {
            let lang = c.t.lang.to_string();
            tianguis_app::notify::send_phone_code(&s.db, "login", &phone, None, &lang).await?;
        }
        return html(page(None));
    }
    let failures = crate::abuse::login_failures(&s, ip, &phone).await?;
    let taken_at = crate::abuse::attempt(&s, &failures).await?;
    match tianguis_app::people::sign_in_with_code(&s.db, &phone, &code).await {
        Ok(u) => {
            s.db.rate_give_back(&failures, taken_at).await?;
            let (id, _) =
                s.db.rotate_session(c.session_id.as_deref(), Some(u.id), Some(c.t.lang))
                    .await?;
            let to = if !next.is_empty() {
                next.as_str()
            } else if c.cart_count > 0 {
                "/cart"
            } else {
                "/"
            };
            Ok(signed_in(&s, &id, to))
        }
        Err(e) => {
            let (status, msg) = AppError::from(e).for_form(&c.t)?;
            let mut r = html(page(Some(msg)))?;
            *r.status_mut() = status;
            Ok(r)
        }
    }
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

fn signed_in(s: &AppState, id: &str, to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    ctx::set_cookie(&mut r, id, s.config.public_url.starts_with("https://"));
    r
}

async fn login(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    ip: crate::abuse::ClientIp,
    CsrfForm(f): CsrfForm<LoginForm>,
) -> R {
    // Only failures count, per phone and (more generously) per address: a wrong-password
    // streak on one account does not lock out the others behind a centre's one address. The
    // attempt is counted before the password is checked, so guesses sent all at once are
    // counted all the same; one that signs in is given back.
    let failures = crate::abuse::login_failures(&s, ip, &f.phone).await?;
    let taken_at = crate::abuse::attempt(&s, &failures).await?;
    match tianguis_app::people::authenticate(&s.db, &f.phone, &f.password).await? {
        Some(u) => {
            s.db.rate_give_back(&failures, taken_at).await?;
            let (id, _) =
                s.db.rotate_session(c.session_id.as_deref(), Some(u.id), Some(c.t.lang))
                    .await?;
            let to = match safe_next(&f.next) {
                Some(n) => n,
                None if c.cart_count > 0 => "/cart",
                None => "/",
            };
            Ok(signed_in(&s, &id, to))
        }
        None => {
            let page = LoginPage {
                title: c.t.t("login-title"),
                c: &c,
                error: Some(c.t.t("login-failed")),
                action: "/login",
                signup: false,
                next: safe_next(&f.next).unwrap_or_default().to_string(),
                phone: f.phone,
                places: vec![],
            };
            Ok((StatusCode::UNAUTHORIZED, html(page)?).into_response())
        }
    }
}

async fn signup_form(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    html(LoginPage {
        title: c.t.t("signup-title"),
        c: &c,
        error: None,
        action: "/signup",
        signup: true,
        phone: String::new(),
        places: s.db.places().await?,
        next: String::new(),
    })
}

#[derive(Deserialize)]
struct SignupForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    seller: String,
    #[serde(default)]
    shop_name: String,
    #[serde(default)]
    place_id: String,
}

async fn signup(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    ip: crate::abuse::ClientIp,
    CsrfForm(f): CsrfForm<SignupForm>,
) -> R {
    crate::abuse::take(&s, &crate::abuse::signups(&s, ip)).await?;
    let place = f.place_id.trim().parse::<i64>().ok();
    let made = async {
        let u = tianguis_app::people::create_user(
            &s.db,
            NewUser {
                phone: &f.phone,
                email: Some(&f.email),
                name: &f.name,
                password: &f.password,
                role: Role::Buyer,
                place_id: place,
            },
        )
        .await?;
        if f.seller == "1" {
            let shop = if f.shop_name.trim().is_empty() {
                f.name.clone()
            } else {
                f.shop_name.clone()
            };
            let place =
                place.ok_or_else(|| tianguis_store::StoreError::invalid("err-shop-place"))?;
            s.db.create_seller(u.id, &shop, place, 0, false).await?;
        }
        Ok::<_, tianguis_store::StoreError>(u)
    }
    .await;
    match made {
        Ok(u) => {
            let (id, _) =
                s.db.rotate_session(c.session_id.as_deref(), Some(u.id), Some(c.t.lang))
                    .await?;
            Ok(signed_in(
                &s,
                &id,
                if f.seller == "1" { "/shop" } else { "/" },
            ))
        }
        Err(e) => {
            let (_, msg) = AppError::from(e).for_form(&c.t)?;
            let page = LoginPage {
                title: c.t.t("signup-title"),
                c: &c,
                error: Some(msg),
                action: "/signup",
                signup: true,
                phone: f.phone,
                places: s.db.places().await?,
                next: String::new(),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, html(page)?).into_response())
        }
    }
}

async fn logout(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(_f): CsrfForm<CsrfOnly>,
) -> R {
    if let Some(id) = &c.session_id {
        s.db.delete_session(id).await?;
    }
    // Nothing is kept for the visitor now: the next page gives them a fresh CSRF cookie.
    let mut r = Redirect::to("/").into_response();
    ctx::clear_cookie(&mut r, s.config.public_url.starts_with("https://"));
    Ok(r)
}

async fn set_lang(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(code): Path<String>,
) -> R {
    if crate::i18n::LANGS.iter().any(|(l, _)| *l == code) {
        s.db.set_session_lang(&c.session(&s.db).await?, &code)
            .await?;
    }
    Ok(Redirect::to("/").into_response())
}

#[derive(Template)]
#[template(path = "claim.html")]
struct ClaimPage<'a> {
    c: &'a Ctx,
    title: String,
    intro: String,
    action: &'static str,
    phone: String,
    sent: bool,
    error: Option<String>,
}

/// The two ways to set a password with a code texted to the account's phone: claiming an
/// account made at a centre (it has no password yet), and "forgot password" (it has one).
/// Neither works for the other kind of account.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CodeFlow {
    Claim,
    Reset,
}

impl CodeFlow {
    fn purpose(self) -> &'static str {
        match self {
            CodeFlow::Claim => "claim",
            CodeFlow::Reset => "reset",
        }
    }
    fn action(self) -> &'static str {
        match self {
            CodeFlow::Claim => "/claim",
            CodeFlow::Reset => "/password/forgot",
        }
    }
    fn page<'a>(
        self,
        c: &'a Ctx,
        phone: String,
        sent: bool,
        error: Option<String>,
    ) -> ClaimPage<'a> {
        let (title, intro) = match self {
            CodeFlow::Claim => ("claim-title", "claim-intro"),
            CodeFlow::Reset => ("reset-title", "reset-intro"),
        };
        ClaimPage {
            title: c.t.t(title),
            intro: c.t.t(intro),
            action: self.action(),
            c,
            phone,
            sent,
            error,
        }
    }
}

async fn claim_page(Extension(c): Extension<Ctx>) -> R {
    html(CodeFlow::Claim.page(&c, String::new(), false, None))
}

async fn reset_page(Extension(c): Extension<Ctx>) -> R {
    html(CodeFlow::Reset.page(&c, String::new(), false, None))
}

async fn claim(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    ip: crate::abuse::ClientIp,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    code_flow(s, c, ip, f, CodeFlow::Claim).await
}

async fn reset(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    ip: crate::abuse::ClientIp,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    code_flow(s, c, ip, f, CodeFlow::Reset).await
}

/// Step one (phone): a code is texted if the number has an account of the flow's kind (the
/// answer is the same either way). Step two (phone, code, password): the password is set and
/// every session of the account ends.
async fn code_flow(
    s: AppState,
    c: Ctx,
    ip: crate::abuse::ClientIp,
    f: HashMap<String, String>,
    flow: CodeFlow,
) -> R {
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let phone = get("phone");
    if get("code").is_empty() {
        // Texts cost money and codes can be guessed: a few per minute per client, a few per
        // hour per phone whoever asks.
        crate::abuse::take(&s, &crate::abuse::texted_codes(&s, ip, Some(&phone)).await?).await?;
        if s.db.code_purpose_fits(flow.purpose(), &phone).await? {
            let lang = c.t.lang.to_string();
            tianguis_app::notify::send_phone_code(&s.db, flow.purpose(), &phone, None, &lang)
                .await?;
        }
        return html(flow.page(&c, phone, true, None));
    }
    // Typing codes is limited like asking for them.
    crate::abuse::take(&s, &crate::abuse::texted_codes(&s, ip, None).await?).await?;
    let password = f.get("password").map(String::as_str).unwrap_or("");
    let done = match flow {
        CodeFlow::Claim => {
            tianguis_app::people::claim_account(&s.db, &phone, &get("code"), password).await
        }
        CodeFlow::Reset => {
            tianguis_app::people::reset_password(&s.db, &phone, &get("code"), password).await
        }
    };
    match done {
        Ok(_) => Ok(Redirect::to(match flow {
            CodeFlow::Claim => "/login?claimed=1",
            CodeFlow::Reset => "/login?reset=1",
        })
        .into_response()),
        Err(e) => {
            let (status, msg) = AppError::from(e).for_form(&c.t)?;
            let mut r = html(flow.page(&c, phone.clone(), true, Some(msg)))?;
            *r.status_mut() = status;
            Ok(r)
        }
    }
}
