//! The officials' administration: settings, places and categories, cash at the counter, people and their roles, the delivery promise, the address registry, pickup points, background jobs, the SMS simulator's inbox.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::*;
use crate::ctx::Ctx;
use crate::error::AppError;
use crate::forms::CsrfForm;
use askama::Template;
use axum::Extension;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use std::collections::HashMap;
use tianguis_domain::money::Money;
use tianguis_domain::policy::Duty;
use tianguis_domain::process::{OrderState, Timing};
use tianguis_store::Msg;
use tianguis_store::catalog::{Category, Place};
use tianguis_store::orders::{Order, Payment};
use tianguis_store::users::User;

pub fn routes() -> Table {
    Table::new("admin")
        .get("/admin", admin)
        .post("/admin/settings", admin_settings)
        .post("/admin/places", admin_place)
        .post("/admin/categories", admin_category)
        .post("/admin/payments/{id}/cash", admin_cash)
        .get_post("/admin/users/{id}", admin_person, admin_user)
        .post("/admin/users/{id}/grants", admin_grant)
        .post("/admin/grants/{id}/revoke", admin_revoke)
        .get("/admin/jobs", admin_jobs)
        .post("/admin/jobs/{id}/retry", admin_job_retry)
        .post("/admin/places/{id}/promise", admin_place_promise)
        .post("/admin/registry", admin_registry)
        .post("/admin/pickup-points", admin_pickup_point)
        .get("/sim/sms/messages", sim_sms_messages)
}

// ---------- admin ----------

/// What the local SMS simulator was sent (it exists only with the simulators on), for admins.
async fn sim_sms_messages(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    admin_of(&c)?;
    let Some(sim) = &s.sms_sim else {
        return Err(AppError::User(
            StatusCode::NOT_FOUND,
            Msg::new("err-not-found").arg("what", "page"),
        ));
    };
    Ok(axum::Json(sim.messages()).into_response())
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage<'a> {
    c: &'a Ctx,
    title: String,
    notice: Option<String>,
    ledger_ok: bool,
    late: Vec<Order>,
    at_risk: Vec<Order>,
    pickup_points: Vec<tianguis_store::pickup::PickupPoint>,
    pickup_kinds: &'static [&'static str],
    default_days: i64,
    disputes: Vec<Order>,
    cash: Vec<Payment>,
    fee_bps: u32,
    delivery_fee: i64,
    policy: Timing,
    places: Vec<Place>,
    categories: Vec<Category>,
    country: String,
    phone_reports: i64,
    /// Provider answers refused (about another payment), as sentences with their time.
    mismatches: Vec<(String, String)>,
    /// Money that arrived after its order ended and went back: (order, amount, when).
    late_refunds: Vec<(i64, String, String)>,
}

async fn admin(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    admin_of(&c)?;
    let fees = s.db.fees().await?;
    let mut cash = Vec::new();
    for o in s.db.all_orders(Some(OrderState::Placed), 100).await? {
        if o.payment_status == Some(tianguis_store::orders::PaymentStatus::AwaitingCash)
            && o.payment_id.is_some()
            && !cash.iter().any(|p: &Payment| Some(p.id) == o.payment_id)
        {
            cash.push(s.db.payment(o.payment_id.unwrap_or_default()).await?);
        }
    }
    let watch = s.db.promise_watch().await?;
    html(AdminPage {
        title: c.t.t("admin-title"),
        notice: q.get("saved").map(|_| c.t.t("product-saved")),
        ledger_ok: s.db.ledger_totals(s.db.currency().await?).await?.holds(),
        pickup_points: s.db.pickup_points().await?,
        pickup_kinds: tianguis_store::pickup::KINDS,
        late: watch.0,
        at_risk: watch.1,
        default_days: s.db.settings().await?.delivery_days(),
        disputes: s.db.all_orders(Some(OrderState::Disputed), 100).await?,
        cash,
        fee_bps: fees.platform_bps,
        delivery_fee: fees.delivery_per_order,
        policy: s.db.timing().await?,
        places: s.db.places().await?,
        categories: s.db.categories().await?,
        country: s.db.setting("country").await?.unwrap_or_default(),
        phone_reports: s.db.phone_reports().await?.len() as i64,
        late_refunds: s
            .db
            .late_refunds(20)
            .await?
            .into_iter()
            .map(|(o, m, at)| (o, c.t.money(&m), utc_minute(at)))
            .collect(),
        mismatches: s
            .db
            .provider_mismatches(20)
            .await?
            .into_iter()
            .map(|(payment, source, m, provider_ref, at)| {
                let args = vec![
                    (
                        "payment".to_string(),
                        payment.map(|p| p.to_string()).unwrap_or_default(),
                    ),
                    (
                        "source".to_string(),
                        c.t.t(&format!("provider-source-{source}")),
                    ),
                    (
                        "field".to_string(),
                        c.t.t(&format!("provider-field-{}", m.field)),
                    ),
                    ("ours".to_string(), m.ours),
                    ("theirs".to_string(), m.theirs),
                    ("provider_ref".to_string(), provider_ref.unwrap_or_default()),
                ];
                (utc_minute(at), c.t.render("provider-mismatch", &args))
            })
            .collect(),
        c: &c,
    })
}

async fn admin_settings(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    admin_of(&c)?;
    for (key, max) in [
        ("platform_fee_bps", 5000),
        ("delivery_fee_minor", 100_000_000),
        ("unpaid_cancel_minutes", 100_000),
        ("ship_within_days", 365),
        ("dispute_window_days", 365),
    ] {
        if let Some(v) = f.get(key) {
            let n: i64 = v.trim().parse().map_err(|_| {
                AppError::bad(
                    Msg::new("err-not-a-number")
                        .arg("value", v)
                        .arg("what", key),
                )
            })?;
            if !(0..=max).contains(&n) {
                return Err(AppError::bad(
                    Msg::new("err-setting-range")
                        .arg("what", key)
                        .arg("max", max),
                ));
            }
            s.db.set_setting(key, &n.to_string()).await?;
        }
    }
    // The country national phone numbers are read in; stored numbers follow at once.
    if let Some(code) = f.get("country").filter(|v| !v.trim().is_empty())
        && s.db.setting("country").await?.as_deref() != Some(code.trim())
    {
        s.db.set_country(code).await?;
    }
    Ok(Redirect::to("/admin?saved=1").into_response())
}

async fn admin_place(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    admin_of(&c)?;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    s.db.create_place(&get("name"), &get("kind"), None).await?;
    Ok(Redirect::to("/admin?saved=1").into_response())
}

async fn admin_category(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    admin_of(&c)?;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    s.db.create_category(&get("slug"), &get("name_en"), &get("name_es"), None)
        .await?;
    Ok(Redirect::to("/admin?saved=1").into_response())
}

async fn admin_cash(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(_f): CsrfForm<CsrfOnly>,
) -> R {
    let admin = admin_of(&c)?;
    tianguis_app::assisted::collect_cash(&s.db, &admin, id).await?;
    Ok(Redirect::to("/admin?saved=1").into_response())
}

async fn admin_place_promise(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    admin_of(&c)?;
    let v = f.get("days").map(|v| v.trim()).unwrap_or("");
    let days = if v.is_empty() {
        None
    } else {
        Some(parse_id(v, "days")?)
    };
    s.db.set_place_delivery_days(id, days).await?;
    Ok(Redirect::to("/admin?saved=1").into_response())
}

#[derive(Template)]
#[template(path = "registry_report.html")]
struct RegistryReport<'a> {
    c: &'a Ctx,
    title: String,
    summary: String,
    rejected: Vec<(u64, String)>,
}

/// Officials upload a registry CSV; the page reports what was imported and which lines not.
async fn admin_registry(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    mp: Multipart,
) -> R {
    let f = crate::forms::read_multipart(&c, mp, &["file"]).await?;
    crate::who::may(&c, Duty::ManageDirectory)?;
    let text =
        String::from_utf8_lossy(f.files.get("file").map(Vec::as_slice).unwrap_or(&[])).into_owned();
    let report = s.db.import_registry(&text, |_| {}).await?;
    html(RegistryReport {
        title: c.t.t("admin-registry"),
        summary: c.t.msg(
            &Msg::new("admin-registry-report")
                .arg("imported", report.imported)
                .arg("duplicates", report.duplicates)
                .arg("rejected", report.rejected.len()),
        ),
        rejected: report
            .rejected
            .iter()
            .map(|(l, m)| (*l, c.t.msg(m)))
            .collect(),
        c: &c,
    })
}

async fn admin_pickup_point(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    admin_of(&c)?;
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let num = |k: &str| parse_id(&get(k), k);
    let code = tianguis_geo::PlusCode::parse(&get("plus_code"))
        .map_err(|_| AppError::bad(Msg::new("err-plus-code")))?;
    let area = code
        .decode()
        .map_err(|_| AppError::bad(Msg::new("err-plus-code-place")))?;
    let currency = s.db.currency().await?;
    let fee = Money::parse_decimal(&get("fee"), currency).map_err(|e| AppError::bad(e.msg()))?;
    s.db.create_pickup_point(&tianguis_store::pickup::NewPickupPoint {
        name: get("name"),
        kind: get("kind"),
        place_id: num("place_id")?,
        location: area.center(),
        slots: num("slots")?,
        hours: get("hours"),
        hold_days: num("hold_days")?,
        fee_minor: fee.minor,
        operator_phone: Some(get("operator_phone")),
        contact: get("contact"),
    })
    .await?;
    Ok(Redirect::to("/admin?saved=1").into_response())
}

async fn admin_user(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let admin = crate::who::may(&c, Duty::ManagePeople)?;
    let active = f.get("active").is_some_and(|v| v == "1");
    let person = s.db.user(id).await?;
    // Suspending ends the person's sessions and shuts them out: asked first, on a second page.
    if person.active && !active && !confirmed(&f) {
        return html(ConfirmPage {
            c: &c,
            title: c.t.t("confirm-title"),
            question: c.t.t1("confirm-suspend", "name", &person.name),
            details: vec![person.phone.clone(), c.t.t("confirm-suspend-effects")],
            action: format!("/admin/users/{id}"),
            hidden: vec![],
            yes: c.t.t("confirm-suspend-yes"),
            back: format!("/admin/users/{id}"),
        });
    }
    s.db.set_user_active(admin.id, id, active).await?;
    Ok(Redirect::to("/admin?saved=1").into_response())
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct PersonPage<'a> {
    c: &'a Ctx,
    title: String,
    error: Option<String>,
    person: User,
    /// (grant, role, where, granted when and by, revoked when and by)
    grants: Vec<(
        tianguis_store::users::GrantRecord,
        String,
        String,
        String,
        Option<String>,
    )>,
    roles: Vec<(&'static str, String)>,
    scopes: Vec<(String, String)>,
}

/// Where a grant applies, in words.
fn scope_label(
    c: &Ctx,
    scope: tianguis_store::users::GrantScope,
    places: &[Place],
    points: &[tianguis_store::pickup::PickupPoint],
) -> String {
    use tianguis_store::users::GrantScope as G;
    match scope {
        G::Everywhere => c.t.t("people-everywhere"),
        G::Place(id) => places
            .iter()
            .find(|p| p.id == id.0)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| format!("#{id}")),
        G::Point(id) => points
            .iter()
            .find(|p| p.id == id.0)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| format!("#{id}")),
        G::Programme(id) => format!("{} #{id}", c.t.t("people-programme")),
    }
}

async fn person_page(s: &AppState, c: &Ctx, id: i64, error: Option<String>) -> R {
    let person = s.db.user(id).await?;
    let places = s.db.places().await?;
    let points = s.db.pickup_points().await?;
    let names = |u: Option<i64>| u.map(|id| format!(" · #{id}")).unwrap_or_default();
    let grants =
        s.db.grant_records(id)
            .await?
            .into_iter()
            .map(|g| {
                let role = c.t.t(&format!("role-{}", g.grant.role.as_str()));
                let scope = scope_label(c, g.grant.scope, &places, &points);
                let granted = format!("{}{}", utc_minute(g.granted_at), names(g.granted_by));
                let revoked = g.revoked_at.map(|t| {
                    format!(
                        "{} {}{}",
                        c.t.t("people-revoked"),
                        utc_minute(t),
                        names(g.revoked_by)
                    )
                });
                (g, role, scope, granted, revoked)
            })
            .collect();
    let roles = granted_roles(c);
    let mut scopes = vec![("everywhere".to_string(), c.t.t("people-everywhere"))];
    scopes.extend(
        places
            .iter()
            .map(|p| (format!("place:{}", p.id), p.name.clone())),
    );
    scopes.extend(
        points
            .iter()
            .map(|p| (format!("point:{}", p.id), p.name.clone())),
    );
    html(PersonPage {
        title: c.t.t("people-title"),
        c,
        error,
        person,
        grants,
        roles,
        scopes,
    })
}

/// One person's access: active or suspended, their grants (with who gave and took back each).
async fn admin_person(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
) -> R {
    crate::who::may(&c, Duty::ManagePeople)?;
    person_page(&s, &c, id, None).await
}

/// Give a person a role where it applies (`scope`: `everywhere`, `place:ID`, `point:ID`).
async fn admin_grant(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    crate::forms::CsrfForm(f): crate::forms::CsrfForm<HashMap<String, String>>,
) -> R {
    use tianguis_store::users::{Grant, GrantScope, parse_role};
    let admin = crate::who::may(&c, Duty::ManagePeople)?;
    let made = async {
        let role = parse_role(f.get("role").map(String::as_str).unwrap_or(""))?;
        let scope_text = f.get("scope").map(String::as_str).unwrap_or("everywhere");
        let (kind, sid) = match scope_text.split_once(':') {
            Some((k, v)) => (k, v.trim().parse::<i64>().ok()),
            None => (scope_text, None),
        };
        let scope = GrantScope::from_parts(kind.trim(), sid)
            .ok_or_else(|| tianguis_store::StoreError::invalid("err-grant-scope"))?;
        let g = Grant::new(role, scope).map_err(tianguis_store::denied)?;
        s.db.grant_role(admin.id, id, g).await
    }
    .await;
    match made {
        Ok(_) => Ok(Redirect::to(&format!("/admin/users/{id}")).into_response()),
        Err(e) => {
            let (status, msg) = AppError::from(e).for_form(&c.t)?;
            let r = person_page(&s, &c, id, Some(msg)).await?;
            Ok((status, r).into_response())
        }
    }
}

async fn admin_revoke(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    crate::forms::CsrfForm(_): crate::forms::CsrfForm<HashMap<String, String>>,
) -> R {
    let admin = crate::who::may(&c, Duty::ManagePeople)?;
    let user = s.db.grant_owner(id).await?;
    s.db.revoke_grant(admin.id, id).await?;
    Ok(Redirect::to(&format!("/admin/users/{user}")).into_response())
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage<'a> {
    c: &'a Ctx,
    title: String,
    counts: Vec<(String, String, String, i64)>,
    dead: Vec<tianguis_store::queue::JobRecord>,
}

/// The job queue for officials: what waits, what was done, and what was given up (dead), with
/// a way to send a dead job round again once its cause is fixed.
async fn admin_jobs(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    crate::who::may(&c, Duty::ReadOperations)?;
    html(JobsPage {
        title: c.t.t("jobs-title"),
        counts: s.db.job_counts().await?,
        dead: s.db.jobs_in("dead", 100).await?,
        c: &c,
    })
}

async fn admin_job_retry(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    crate::forms::CsrfForm(_): crate::forms::CsrfForm<HashMap<String, String>>,
) -> R {
    crate::who::may(&c, Duty::ReadOperations)?;
    s.db.requeue(id).await?;
    Ok(Redirect::to("/admin/jobs").into_response())
}
