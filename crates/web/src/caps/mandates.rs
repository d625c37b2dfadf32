//! Seller onboarding by agents under a mandate: the onboarding form (consent by a code texted
//! to the seller and read back, or a signed paper form's reference), the agent's mandated
//! sellers with listings made at the centre, the seller's view of mandates with their audit
//! trail and a revoke button.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::{
    CsrfOnly, ProductFields, html, parse_id, product_form_page, read_product_form, save_product,
    seller_of,
};
use crate::ctx::Ctx;
use crate::error::AppError;
use crate::forms::CsrfForm;
use crate::forms::read_multipart;
use askama::Template;
use axum::Extension;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tianguis_domain::mandate::{Consent, Scope};
use tianguis_store::catalog::Place;
use tianguis_store::mandates::{Mandate, MandateEvent, Onboarding};
use tianguis_store::users::User;

type R = Result<Response, AppError>;

pub fn routes() -> Table {
    Table::new("mandates")
        .get_post("/agent/sellers", sellers_page, onboard)
        .post("/agent/sellers/code", send_code)
        .get_post(
            "/agent/sellers/{sid}/products/new",
            listing_form,
            listing_save,
        )
        .get("/shop/mandates", shop_mandates)
        .get("/mandates/{id}/consent-form", consent_form)
        .post("/shop/mandates/{id}/revoke", revoke)
}

fn agent(c: &Ctx) -> Result<&User, AppError> {
    let u = c.require_user()?;
    tianguis_domain::policy::may(&u.person(), tianguis_domain::policy::Duty::ServeAtCentre)
        .map_err(crate::who::refusal)?;
    Ok(u)
}

#[derive(Template)]
#[template(path = "agent_sellers.html")]
struct SellersPage<'a> {
    c: &'a Ctx,
    title: String,
    mandates: Vec<Mandate>,
    places: Vec<Place>,
    notice: Option<String>,
    error: Option<String>,
    form: HashMap<String, String>,
}

async fn render_sellers(
    s: &AppState,
    c: &Ctx,
    notice: Option<String>,
    error: Option<String>,
    form: HashMap<String, String>,
) -> R {
    let a = agent(c)?;
    html(SellersPage {
        title: c.t.t("mandates-title"),
        mandates: s.db.mandates_of_agent(a.id).await?,
        places: s.db.places().await?,
        c,
        notice,
        error,
        form,
    })
}

async fn sellers_page(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    let notice = q.contains_key("sent").then(|| c.t.t("mandates-code-sent"));
    render_sellers(&s, &c, notice, None, q).await
}

/// Text the seller a consent code; the form comes back with what was typed.
async fn send_code(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    ip: crate::abuse::ClientIp,
    mp: Multipart,
) -> R {
    let f = read_multipart(&c, mp, &["paper_photo"]).await?;
    let a = agent(&c)?;
    let phone = f.get("phone");
    // Texts cost money and codes can be guessed: a few per minute per client and per phone.
    crate::abuse::take(&s, &crate::abuse::texted_codes(&s, ip, Some(&phone)).await?).await?;
    let lang = s.db.settings().await?.text("default_lang", "es");
    if let Err(e) =
        tianguis_app::notify::send_phone_code(&s.db, "consent", &phone, Some(a.id), &lang).await
    {
        let (status, msg) = AppError::from(e).for_form(&c.t)?;
        let mut r = render_sellers(&s, &c, None, Some(msg), f.fields).await?;
        *r.status_mut() = status;
        return Ok(r);
    }
    let notice = Some(c.t.t("mandates-code-sent"));
    render_sellers(&s, &c, notice, None, f.fields).await
}

async fn onboard(State(s): State<AppState>, Extension(c): Extension<Ctx>, mp: Multipart) -> R {
    let f = read_multipart(&c, mp, &["paper_photo"]).await?;
    let a = agent(&c)?;
    let paper = f.get("consent") == "paper";
    let consent = if paper {
        Consent::Paper(f.get("paper_ref"))
    } else {
        Consent::Code(f.get("code"))
    };
    // The signed form's photo, prepared on a blocking thread before the database is touched.
    let paper_form = match f.files.get("paper_photo").filter(|_| paper).cloned() {
        Some(bytes) => Some(
            tokio::task::spawn_blocking(move || tianguis_app::images::prepare_document(&bytes))
                .await
                .map_err(|e| AppError::Internal(e.to_string()))??,
        ),
        None => None,
    };
    let o = Onboarding {
        name: f.get("name"),
        phone: f.get("phone"),
        shop_name: f.get("shop_name"),
        place_id: parse_id(&f.get("place_id"), "place")?,
        women_led: f.has("women_led"),
        scope: Scope {
            listings: f.has("scope_listings"),
            orders: f.has("scope_orders"),
        },
        consent,
        paper_form,
    };
    match s.db.onboard_seller(a, &o).await {
        Ok((sid, _)) => {
            Ok(Redirect::to(&format!("/agent/sellers/{sid}/products/new")).into_response())
        }
        Err(e) => {
            let (status, msg) = AppError::from(e).for_form(&c.t)?;
            let mut r = render_sellers(&s, &c, None, Some(msg), f.fields).await?;
            *r.status_mut() = status;
            Ok(r)
        }
    }
}

/// The photographed consent form of a mandate (agent, seller, officials).
async fn consent_form(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
) -> R {
    let user = c.require_user()?;
    let (bytes, content_type) = s.db.consent_form(user, id).await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (
                axum::http::header::CACHE_CONTROL,
                "private, no-store".into(),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn listing_form(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(sid): Path<i64>,
) -> R {
    let a = agent(&c)?;
    s.db.mandate_for(a, sid, |m| m.listings)
        .await?
        .ok_or_else(|| AppError::user(StatusCode::FORBIDDEN, "err-no-mandate"))?;
    let f = ProductFields {
        stock: "1".into(),
        idempotency_key: tianguis_store::random_token(16),
        ..Default::default()
    };
    product_form_page(
        &s,
        &c,
        format!("/agent/sellers/{sid}/products/new"),
        f,
        None,
    )
    .await
}

/// A listing made at the centre for a mandated seller, logged on the mandate.
async fn listing_save(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(sid): Path<i64>,
    mp: Multipart,
) -> R {
    let a = agent(&c)?;
    let m =
        s.db.mandate_for(a, sid, |m| m.listings)
            .await?
            .ok_or_else(|| AppError::user(StatusCode::FORBIDDEN, "err-no-mandate"))?;
    let f = read_product_form(&c, mp).await?;
    match save_product(&s, &c, sid, None, &f).await {
        Ok(pid) => {
            s.db.log_mandate(
                m.id,
                a.id,
                "listing",
                &format!("product {pid}: {}", f.name_en),
            )
            .await?;
            Ok(Redirect::to(&format!("/products/{pid}")).into_response())
        }
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let msg = e.message(&c.t);
            let r = product_form_page(
                &s,
                &c,
                format!("/agent/sellers/{sid}/products/new"),
                f,
                Some(msg),
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, r).into_response())
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "shop_mandates.html")]
struct ShopMandatesPage<'a> {
    c: &'a Ctx,
    title: String,
    mandates: Vec<(Mandate, Vec<MandateEvent>)>,
}

async fn shop_mandates(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    let (_, sid) = seller_of(&c)?;
    let mut mandates = Vec::new();
    for m in s.db.mandates_of_seller(sid).await? {
        let ev = s.db.mandate_events(m.id).await?;
        mandates.push((m, ev));
    }
    html(ShopMandatesPage {
        title: c.t.t("mandates-shop-title"),
        c: &c,
        mandates,
    })
}

async fn revoke(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(_f): CsrfForm<CsrfOnly>,
) -> R {
    let user = c.require_user()?;
    s.db.revoke_mandate(user, id).await?;
    Ok(Redirect::to("/shop/mandates").into_response())
}
