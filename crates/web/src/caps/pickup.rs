//! A pickup point's counter: parcels on their way and waiting, checking one in.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::*;
use crate::ctx::Ctx;
use crate::forms::CsrfForm;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use tianguis_domain::policy::Duty;
use tianguis_store::orders::Order;

pub fn routes() -> Table {
    Table::new("pickup")
        .get("/pickup", pickup_page)
        .post("/pickup/orders/{id}/check-in", pickup_check_in)
}

#[derive(Template)]
#[template(path = "pickup.html")]
struct PickupPage<'a> {
    c: &'a Ctx,
    title: String,
    expected: Vec<Order>,
    held: Vec<Order>,
}

/// A pickup-point operator's counter: parcels on their way, and parcels waiting for buyers.
async fn pickup_page(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    let user = &crate::who::may(&c, Duty::ServeCounter)?;
    let (expected, held) = s.db.pickup_parcels(user).await?;
    html(PickupPage {
        title: c.t.t("pickup-title"),
        c: &c,
        expected,
        held,
    })
}

async fn pickup_check_in(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(_f): CsrfForm<CsrfOnly>,
) -> R {
    let user = c.require_user()?;
    tianguis_app::logistics::check_in(&s.db, user, id).await?;
    Ok(Redirect::to("/pickup").into_response())
}
