//! Orders: a person's orders, one order with its history and the moves open to them, the buyer's code at the door.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::*;
use crate::ctx::Ctx;
use crate::error::AppError;
use crate::forms::CsrfForm;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use tianguis_domain::process::{OrderState, Transition};
use tianguis_store::Msg;
use tianguis_store::orders::{Order, OrderEvent, may_view};

pub fn routes() -> Table {
    Table::new("orders")
        .get("/orders", orders)
        .post("/texts", texts_setting)
        .get("/orders/{id}", order)
        .post("/orders/{id}/deliver", order_deliver)
        .post("/orders/{id}/pay-again", order_pay_again)
        .post("/orders/{id}/{transition}", order_act)
}

// ---------- orders ----------

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage<'a> {
    c: &'a Ctx,
    title: String,
    orders: Vec<OrderRow>,
    /// They asked for only the texts they need.
    texts_stopped: bool,
}

async fn orders(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    let user = c.require_user()?;
    let list = s.db.orders_for(user, false, None, 100).await?;
    html(OrdersPage {
        title: c.t.t("orders-title"),
        texts_stopped: user.texts_stopped,
        c: &c,
        orders: list.iter().map(OrderRow::from).collect(),
    })
}

/// A person chooses on the page what STOP and START do by text.
async fn texts_setting(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    crate::forms::CsrfForm(f): crate::forms::CsrfForm<std::collections::HashMap<String, String>>,
) -> R {
    let user = c.require_user()?;
    let stop = f.get("stop").map(String::as_str) == Some("1");
    tianguis_app::notify::set_texts_stopped(&s.db, &user.phone, stop).await?;
    Ok(axum::response::Redirect::to("/orders").into_response())
}

struct ActionView {
    name: &'static str,
    label: String,
    needs_refund: bool,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage<'a> {
    c: &'a Ctx,
    title: String,
    o: Order,
    state_key: String,
    actions: Vec<ActionView>,
    history: Vec<HistoryLine>,
    /// The buyer sees the code to give whoever delivers.
    delivery_code: Option<String>,
    /// "Expected by ..." while the promise is open.
    expected: Option<String>,
    /// The delivery plus code and its centre, for map links.
    map: Option<(String, f64, f64)>,
    /// The seller or courier may record the delivery with the buyer's code.
    deliver_label: Option<String>,
    /// The texts about this order sent to this person (officials and agents see them all),
    /// as they read: (when, text). A delivery code is never shown here.
    texts: Vec<(String, String)>,
    /// What the payment's state means, in words.
    payment_message: String,
    payment_failed: bool,
    /// The page refreshes itself while the provider has not answered.
    payment_pending: bool,
    /// The order whose failed payment this person may choose again.
    pay_again: Option<i64>,
}

/// The code-proven delivery this user may record on this order, if any.
struct HistoryLine {
    when: String,
    what: String,
    who: String,
    reason: String,
}

/// "2026-11-22 16:34" (UTC) from epoch milliseconds.
fn history_line(c: &Ctx, e: &OrderEvent) -> HistoryLine {
    HistoryLine {
        when: utc_minute(e.at),
        what: if e.transition == tianguis_app::orders::LATE_REFUND {
            c.t.t("history-late-refund")
        } else {
            c.t.t(&format!("state-{}", e.to_state))
        },
        who: c.t.t(&format!("actor-{}", e.actor)),
        reason: e.reason.clone(),
    }
}

/// The transitions this user may take on this order, in the process table's order.
async fn order(State(s): State<AppState>, Extension(c): Extension<Ctx>, Path(id): Path<i64>) -> R {
    let user = c.require_user()?;
    let o = s.db.order(id).await?;
    if !may_view(user, &o) {
        return Err(AppError::User(
            StatusCode::NOT_FOUND,
            Msg::new("err-not-found").arg("what", "order"),
        ));
    }
    let actions = actions_for(user, &o)
        .into_iter()
        .map(|t| ActionView {
            name: t.as_str(),
            label: c.t.t(&format!("action-{}", t.as_str())),
            needs_refund: t == Transition::Resolve,
        })
        .collect();
    let see_all =
        user.is(tianguis_store::users::Role::Admin) || user.is(tianguis_store::users::Role::Agent);
    // The due day as the text said it: the marketplace's local day.
    let offset = s.db.settings().await?.utc_offset_minutes();
    let texts = s
        .db
        .order_texts(id)
        .await?
        .into_iter()
        // The buyer's texts went to the phone given at checkout (maybe not the account's).
        .filter(|m| {
            see_all || m.to_phone == user.phone || (o.buyer_id == user.id && m.to_phone == o.phone)
        })
        .map(|m| {
            let tr = crate::i18n::Tr::new(&m.lang);
            let mut args = tr.text_args(&m.args);
            args.push(("delivery_code".into(), "······".into()));
            let due = m
                .args
                .iter()
                .find(|(k, _)| k == "due")
                .and_then(|(_, v)| v.parse::<i64>().ok())
                .map(|d| tianguis_domain::calendar::local_day(d, offset).0)
                .unwrap_or_default();
            args.push(("due_day".into(), due));
            args.push(("site".into(), s.config.public_url.clone()));
            (utc_minute(m.created_at), tr.render(&m.template, &args))
        })
        .collect();
    let payment = match o.payment_id {
        Some(p) => Some(s.db.payment(p).await?),
        None => None,
    };
    use tianguis_domain::kinds::PaymentStatus;
    html(OrderPage {
        texts,
        payment_message: payment
            .as_ref()
            .map(|p| payment_message(&c, p))
            .unwrap_or_default(),
        payment_failed: o.payment_status == Some(PaymentStatus::Failed),
        payment_pending: o.payment_status == Some(PaymentStatus::Pending)
            && o.state == OrderState::Placed,
        pay_again: pay_again_for(user, &o),
        title: c.t.t1("order-title", "id", o.id),
        state_key: state_key(&o),
        history: s
            .db
            .order_events(id)
            .await?
            .iter()
            .map(|e| history_line(&c, e))
            .collect(),
        delivery_code: o
            .delivery_code
            .clone()
            .filter(|_| o.buyer_id == user.id && o.state == OrderState::Shipped),
        deliver_label: code_delivery_for(user, &o)
            .map(|t| c.t.t(&format!("action-{}", t.as_str()))),
        expected: o
            .due_at
            .filter(|_| o.delivered_at.is_none() && !o.state.is_final())
            .map(|d| c.t.t1("order-expected", "date", &utc_minute(d)[..10])),
        map: o
            .plus_code
            .as_deref()
            .and_then(|p| tianguis_geo::PlusCode::parse(p).ok())
            .and_then(|p| {
                p.decode()
                    .ok()
                    .map(|a| (p.to_string(), a.center().0, a.center().1))
            }),
        c: &c,
        o,
        actions,
    })
}

#[derive(Deserialize)]
struct PayAgainForm {
    #[serde(default)]
    method: String,
    /// Another mobile-money wallet to ask (empty: the same one).
    #[serde(default)]
    phone: String,
}

/// A failed payment chosen again: mobile money once more, cash at a centre, or on delivery.
async fn order_pay_again(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<PayAgainForm>,
) -> R {
    let user = c.require_user()?;
    let method =
        tianguis_store::orders::PaymentMethod::parse(f.method.trim()).ok_or_else(|| {
            AppError::bad(Msg::new("err-payment-method").arg("method", f.method.trim()))
        })?;
    let payment =
        tianguis_app::payments::pay_again(&s.db, user, id, method, Some(&f.phone)).await?;
    Ok(Redirect::to(&format!("/payments/{payment}")).into_response())
}

#[derive(Deserialize)]
struct ActForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    refund_minor: String,
    /// "1" once the person confirmed a cancellation on the second page.
    #[serde(default)]
    confirm: String,
}

#[derive(Deserialize)]
struct DeliverForm {
    #[serde(default)]
    code: String,
}

async fn order_deliver(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<DeliverForm>,
) -> R {
    let user = c.require_user()?;
    tianguis_app::orders::deliver_with_code(&s.db, user, id, &f.code).await?;
    Ok(Redirect::to(&format!("/orders/{id}")).into_response())
}

/// A move as the form sends it: the reason, and the refund when an official resolves a
/// dispute, made values or refused with a message.
struct MoveForm {
    reason: String,
    refund_minor: Option<i64>,
}

impl TryFrom<ActForm> for MoveForm {
    type Error = AppError;
    fn try_from(f: ActForm) -> Result<Self, AppError> {
        let refund_minor = match f.refund_minor.trim() {
            "" => None,
            v => Some(parse_id(v, "amount")?),
        };
        Ok(MoveForm {
            reason: f.reason,
            refund_minor,
        })
    }
}

async fn order_act(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path((id, name)): Path<(i64, String)>,
    CsrfForm(f): CsrfForm<ActForm>,
) -> R {
    let user = c.require_user()?;
    let t = Transition::parse(&name).ok_or_else(|| {
        AppError::User(
            StatusCode::NOT_FOUND,
            Msg::new("err-unknown-action").arg("name", &name),
        )
    })?;
    // Cancelling cannot be undone: whoever may cancel is asked first, on a second page.
    if t == Transition::Cancel && f.confirm != "1" {
        let o = s.db.order(id).await?;
        if crate::caps::views::actions_for(user, &o).contains(&t) {
            return html(crate::caps::views::ConfirmPage {
                c: &c,
                title: c.t.t("confirm-title"),
                question: c.t.t1("confirm-cancel-order", "id", o.id),
                details: vec![
                    format!("{} · {}", o.shop_name, c.t.money(&o.total)),
                    c.t.t("confirm-cancel-order-effects"),
                ],
                action: format!("/orders/{id}/cancel"),
                hidden: vec![("reason", f.reason.clone())],
                yes: c.t.t("confirm-cancel-order-yes"),
                back: format!("/orders/{id}"),
            });
        }
    }
    let m = MoveForm::try_from(f)?;
    tianguis_app::orders::act(&s.db, user, id, t, &m.reason, m.refund_minor).await?;
    Ok(Redirect::to(&format!("/orders/{id}")).into_response())
}
