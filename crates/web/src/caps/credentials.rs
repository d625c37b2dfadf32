//! A public page where anyone (a lender, a buyer, an employer) pastes a credential the
//! marketplace issued and sees whether it is genuine: its proof, its dates, and that one of the
//! marketplace's published keys signed it. The same check as `tianguis credential verify`.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::html;
use crate::ctx::Ctx;
use crate::error::AppError;
use crate::forms::CsrfForm;
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use std::collections::HashMap;
use tianguis_app::credentials::Invalid;

type R = Result<Response, AppError>;

/// A credential pasted here is at most this long (a certificate is 2-3 KB).
const MAX_LEN: usize = 32 * 1024;

pub fn routes() -> Table {
    Table::new("credentials").get_post("/credentials/check", check_page, check)
}

#[derive(Template)]
#[template(path = "credential_check.html")]
struct CheckPage<'a> {
    c: &'a Ctx,
    title: String,
    text: String,
    /// None before a check; Some(Ok(what it says)) or Some(Err(why not)).
    outcome: Option<Result<Vec<(String, String)>, String>>,
}

async fn check_page(Extension(c): Extension<Ctx>) -> R {
    html(CheckPage {
        title: c.t.t("credential-check-title"),
        c: &c,
        text: String::new(),
        outcome: None,
    })
}

/// Why not, in words a reader of this page understands.
fn reason(e: &Invalid) -> &'static str {
    match e {
        Invalid::Signature => "credential-changed",
        Invalid::UnknownKey(_) => "credential-unknown-key",
        Invalid::Revoked(..) => "credential-revoked-key",
        Invalid::Expired(_) => "credential-expired",
        Invalid::NotYetValid(_) => "credential-not-yet",
        _ => "credential-not-one",
    }
}

/// A few plain facts from the credential, for the reader to compare with the paper in hand.
fn facts(c: &Ctx, v: &serde_json::Value) -> Vec<(String, String)> {
    let text = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_string);
    let mut out = Vec::new();
    let name = text("/name").or_else(|| text("/credentialSubject/achievement/name"));
    for (key, value) in [
        ("credential-what", name),
        ("credential-to", text("/credentialSubject/name")),
        (
            "credential-issuer",
            text("/issuer").or_else(|| text("/issuer/id")),
        ),
        ("credential-from", text("/validFrom")),
        ("credential-until", text("/validUntil")),
    ] {
        if let Some(value) = value {
            out.push((c.t.t(key), value));
        }
    }
    out
}

async fn check(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let text = f.get("credential").cloned().unwrap_or_default();
    let outcome = if text.len() > MAX_LEN {
        Err(c.t.t("credential-too-long"))
    } else {
        match tianguis_app::credentials::parse(&text) {
            Err(_) => Err(c.t.t("credential-not-json")),
            Ok(v) => {
                let doc =
                    tianguis_app::credentials::did_document(&s.db, &s.config.public_url).await?;
                match tianguis_app::credentials::check(&v, &doc, s.db.now_ms()) {
                    Ok(()) => Ok(facts(&c, &v)),
                    Err(e) => Err(c.t.t(reason(&e))),
                }
            }
        }
    };
    html(CheckPage {
        title: c.t.t("credential-check-title"),
        c: &c,
        text,
        outcome: Some(outcome),
    })
}
