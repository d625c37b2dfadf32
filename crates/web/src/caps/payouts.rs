//! Payouts: officials prepare, approve (a second official) or cancel batches and record cash
//! counted out at a centre; the schedule's settings; each payee sees what they were paid and
//! chooses where. The rules and the money are in `tianguis_app::payouts`.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::{R, html, parse_id};
use crate::ctx::Ctx;
use crate::error::AppError;
use crate::forms::CsrfForm;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use std::collections::HashMap;
use tianguis_domain::kinds::{BatchStatus, LineStatus, PayoutChannel};
use tianguis_domain::money::Money;
use tianguis_domain::payout::{Payee, Run, Schedule};
use tianguis_domain::policy::Duty;
use tianguis_store::payouts::{Batch, Line};

pub fn routes() -> Table {
    Table::new("payouts")
        .get_post("/admin/payouts", admin_payouts, admin_prepare)
        .post("/admin/payouts/settings", admin_payout_settings)
        .get("/admin/payouts/{id}", admin_batch)
        .post("/admin/payouts/{id}/approve", admin_approve)
        .post("/admin/payouts/{id}/cancel", admin_cancel)
        .post("/admin/payouts/lines/{id}/settle", admin_settle)
        .get_post("/payouts", my_payouts, my_method)
}

pub struct BatchRow {
    pub id: i64,
    pub status: String,
    pub reason: String,
    pub total: String,
    pub lines: i64,
    pub prepared: bool,
}

fn batch_row(c: &Ctx, b: &Batch) -> BatchRow {
    BatchRow {
        id: b.id,
        status: c.t.t(&format!("payout-batch-{}", b.status.as_str())),
        reason: c.t.t(&format!("payout-run-{}", b.reason)),
        total: c.t.money(&b.total),
        lines: b.line_count,
        prepared: b.status == BatchStatus::Prepared,
    }
}

pub struct LineRow {
    pub id: i64,
    pub payee: String,
    pub amount: String,
    pub channel: String,
    pub destination: String,
    pub status: String,
    pub failure: String,
    /// A cash line waiting to be counted out: an official records it.
    pub by_hand: bool,
}

fn line_row(c: &Ctx, l: &Line) -> LineRow {
    LineRow {
        id: l.id,
        payee: format!("{} · {}", c.t.t(l.payee.kind_key()), l.payee_name),
        amount: c.t.money(&l.amount),
        channel: c.t.t(&format!("payout-channel-{}", l.channel.as_str())),
        destination: l.destination.clone(),
        status: c.t.t(&format!("payout-line-{}", l.status.as_str())),
        failure: l.failure.clone().unwrap_or_default(),
        by_hand: l.channel.by_hand() && l.status == LineStatus::Sending,
    }
}

#[derive(Template)]
#[template(path = "payouts.html")]
struct PayoutsPage<'a> {
    c: &'a Ctx,
    title: String,
    batches: Vec<BatchRow>,
    every_days: i64,
    threshold: String,
    minimum: String,
    four_eyes: bool,
    notice: String,
}

/// The officials' payouts page, with a notice when a request changed nothing.
async fn payouts_page(s: &AppState, c: &Ctx, notice: String) -> R {
    let cfg = tianguis_app::payouts::settings(&s.db).await?;
    let cur = s.db.currency().await?;
    html(PayoutsPage {
        title: c.t.t("payouts-title"),
        batches: s
            .db
            .payout_batches(100)
            .await?
            .iter()
            .map(|b| batch_row(c, b))
            .collect(),
        every_days: cfg.schedule.every_days,
        threshold: Money::new(cfg.schedule.threshold_minor, cur).to_decimal(),
        minimum: Money::new(cfg.schedule.minimum_minor, cur).to_decimal(),
        four_eyes: cfg.four_eyes,
        notice,
        c,
    })
}

async fn admin_payouts(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    crate::who::may(&c, Duty::ManageMoney)?;
    payouts_page(&s, &c, String::new()).await
}

async fn admin_prepare(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(_): CsrfForm<HashMap<String, String>>,
) -> R {
    let who = crate::who::may(&c, Duty::ManageMoney)?;
    match tianguis_app::payouts::prepare(&s.db, Some(&who), Run::Manual).await? {
        Some(id) => Ok(Redirect::to(&format!("/admin/payouts/{id}")).into_response()),
        None => payouts_page(&s, &c, c.t.t("payouts-nobody-owed")).await,
    }
}

async fn admin_payout_settings(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let who = crate::who::may(&c, Duty::ManageSettings)?;
    let cur = s.db.currency().await?;
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let amount = |k: &str| {
        Money::parse_decimal(&get(k), cur)
            .map(|m| m.minor)
            .map_err(|e| AppError::bad(e.msg()))
    };
    let every_days = get("every_days");
    let schedule = Schedule {
        every_days: parse_id(&every_days, "every_days")?,
        threshold_minor: amount("threshold")?,
        minimum_minor: amount("minimum")?,
    };
    tianguis_app::payouts::save_settings(
        &s.db,
        &who,
        tianguis_app::payouts::PayoutSettings {
            schedule,
            four_eyes: f.contains_key("four_eyes"),
        },
    )
    .await?;
    Ok(Redirect::to("/admin/payouts").into_response())
}

#[derive(Template)]
#[template(path = "payout_batch.html")]
struct BatchPage<'a> {
    c: &'a Ctx,
    title: String,
    b: BatchRow,
    lines: Vec<LineRow>,
}

async fn admin_batch(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
) -> R {
    crate::who::may(&c, Duty::ManageMoney)?;
    let b = s.db.payout_batch(id).await?;
    let lines = s.db.payout_lines(id).await?;
    html(BatchPage {
        title: c.t.t1("payouts-batch-title", "id", id),
        b: batch_row(&c, &b),
        lines: lines.iter().map(|l| line_row(&c, l)).collect(),
        c: &c,
    })
}

async fn admin_approve(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<HashMap<String, String>>,
) -> R {
    let who = crate::who::may(&c, Duty::ManageMoney)?;
    tianguis_app::payouts::approve(&s.db, &who, id).await?;
    Ok(Redirect::to(&format!("/admin/payouts/{id}")).into_response())
}

async fn admin_cancel(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<HashMap<String, String>>,
) -> R {
    let who = crate::who::may(&c, Duty::ManageMoney)?;
    tianguis_app::payouts::cancel(&s.db, &who, id).await?;
    Ok(Redirect::to(&format!("/admin/payouts/{id}")).into_response())
}

async fn admin_settle(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let who = crate::who::may(&c, Duty::ManageMoney)?;
    let paid = f.get("outcome").map(String::as_str) == Some("paid");
    let note = f.get("note").cloned().unwrap_or_default();
    tianguis_app::payouts::settle_by_hand(&s.db, &who, id, paid, &note).await?;
    let batch = s.db.payout_line(id).await?.batch_id;
    Ok(Redirect::to(&format!("/admin/payouts/{batch}")).into_response())
}

pub struct PayeeBox {
    pub code: String,
    pub kind: String,
    pub owed: String,
    /// How they are paid now (`mobile_money`, `cash`, `bank`).
    pub channel: &'static str,
    pub destination: String,
    pub lines: Vec<LineRow>,
}

#[derive(Template)]
#[template(path = "my_payouts.html")]
struct MyPayoutsPage<'a> {
    c: &'a Ctx,
    title: String,
    payees: Vec<PayeeBox>,
}

/// The payees a person is: their shop, and their own work as courier, agent or champion.
fn payees_of(u: &tianguis_store::users::User) -> Vec<Payee> {
    use tianguis_store::users::Role;
    let mut v = Vec::new();
    if let Some(s) = u.seller_id {
        v.push(Payee::Seller(s));
    }
    for (role, p) in [
        (Role::Courier, Payee::Courier(u.id)),
        (Role::Agent, Payee::Agent(u.id)),
        (Role::Champion, Payee::Champion(u.id)),
    ] {
        if u.is(role) {
            v.push(p);
        }
    }
    v
}

async fn my_payouts(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    let u = c.require_user()?.clone();
    let cur = s.db.currency().await?;
    let mut payees = Vec::new();
    for p in payees_of(&u) {
        let owed = s.db.payee_owed(p, cur).await?;
        let (channel, destination) =
            s.db.payout_method(p)
                .await?
                .unwrap_or((PayoutChannel::MobileMoney, u.phone.clone()));
        payees.push(PayeeBox {
            code: p.code(),
            kind: c.t.t(p.kind_key()),
            owed: c.t.money(&owed),
            channel: channel.as_str(),
            destination,
            lines: s
                .db
                .payee_lines(p, 20)
                .await?
                .iter()
                .map(|l| line_row(&c, l))
                .collect(),
        });
    }
    html(MyPayoutsPage {
        title: c.t.t("my-payouts-title"),
        payees,
        c: &c,
    })
}

async fn my_method(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let u = c.require_user()?.clone();
    let payee = f
        .get("payee")
        .and_then(|p| Payee::parse(p))
        .filter(|p| payees_of(&u).contains(p))
        .ok_or_else(|| {
            AppError::bad(tianguis_store::Msg::new("err-not-found").arg("what", "payee"))
        })?;
    let channel = f
        .get("channel")
        .and_then(|c| PayoutChannel::parse(c))
        .unwrap_or(PayoutChannel::MobileMoney);
    let destination = f.get("destination").cloned().unwrap_or_default();
    tianguis_app::payouts::set_method(&s.db, &u, payee, channel, &destination).await?;
    Ok(Redirect::to("/payouts").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys built from a status or a kind exist in every language.
    #[test]
    fn every_status_and_kind_has_words() {
        let mut keys: Vec<String> = Vec::new();
        keys.extend(
            BatchStatus::ALL
                .iter()
                .map(|s| format!("payout-batch-{}", s.as_str())),
        );
        keys.extend(
            LineStatus::ALL
                .iter()
                .map(|s| format!("payout-line-{}", s.as_str())),
        );
        keys.extend(
            PayoutChannel::ALL
                .iter()
                .map(|s| format!("payout-channel-{}", s.as_str())),
        );
        keys.extend(
            [Run::Scheduled, Run::Threshold, Run::Manual]
                .iter()
                .map(|r| format!("payout-run-{}", r.as_str())),
        );
        keys.extend(
            [
                Payee::Seller(1),
                Payee::Courier(1),
                Payee::Agent(1),
                Payee::Champion(1),
            ]
            .iter()
            .map(|p| p.kind_key().to_string()),
        );
        // The refused provider answers on /admin: where each came from, which field.
        keys.extend(
            ["callback", "status", "request"]
                .iter()
                .map(|s| format!("provider-source-{s}")),
        );
        keys.extend(
            ["reference", "amount", "currency"]
                .iter()
                .map(|f| format!("provider-field-{f}")),
        );
        for (lang, file) in [
            ("en", include_str!("../../locales/en/main.ftl")),
            ("es", include_str!("../../locales/es/main.ftl")),
            ("bn", include_str!("../../locales/bn/main.ftl")),
        ] {
            for k in &keys {
                assert!(
                    file.lines().any(|l| l.starts_with(&format!("{k} ="))),
                    "{lang}: {k}"
                );
            }
        }
    }
}
