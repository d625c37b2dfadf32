//! What the capabilities' pages share: rendering a template, the error page, reading ids and
//! amounts from forms, the order row, the product form (a seller's and an agent's listing),
//! and who-is-asking shortcuts. Nothing here is one capability's.

use crate::AppState;
use crate::ctx::Ctx;
use crate::error::AppError;
use askama::Template;
use axum::extract::Multipart;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use tianguis_domain::money::Money;
use tianguis_domain::policy::Duty;
use tianguis_domain::process::{self, Actor, OrderState, Transition};
use tianguis_store::Msg;
use tianguis_store::catalog::{Category, ProductInput};
use tianguis_store::orders::{Order, PaymentMethod, actor_for};
use tianguis_store::users::User;

pub type R = Result<Response, AppError>;

pub async fn not_found() -> AppError {
    AppError::User(
        StatusCode::NOT_FOUND,
        Msg::new("err-not-found").arg("what", "page"),
    )
}

pub fn html(t: impl Template) -> R {
    let body = t.render().map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Html(body).into_response())
}

pub fn error_page(c: &Ctx, e: AppError) -> Response {
    let status = e.status();
    let message = match status {
        StatusCode::NOT_FOUND => e.message(&c.t),
        StatusCode::TOO_MANY_REQUESTS => c.t.t("error-rate"),
        StatusCode::INTERNAL_SERVER_ERROR => c.t.t("error-internal"),
        _ => e.message(&c.t),
    };
    let page = ErrorPage {
        c,
        title: c.t.t("error-title"),
        message,
    };
    let body = page.render().unwrap_or_else(|_| "error".into());
    let mut r = (status, Html(body)).into_response();
    crate::error::retry_later(&mut r);
    r
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    c: &'a Ctx,
    title: String,
    message: String,
}

/// The second page a destructive action asks first: what will happen, a button that does it
/// (the same form again with `confirm=1`), and a way back that does nothing.
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage<'a> {
    pub c: &'a Ctx,
    pub title: String,
    pub question: String,
    pub details: Vec<String>,
    pub action: String,
    pub hidden: Vec<(&'static str, String)>,
    pub yes: String,
    pub back: String,
}

/// What a payment's state means to the buyer, in words (the cash one says how much and the
/// number to show at the centre).
pub fn payment_message(c: &Ctx, p: &tianguis_store::orders::Payment) -> String {
    use tianguis_domain::kinds::PaymentStatus;
    match p.status {
        PaymentStatus::AwaitingCash => c.t.t2(
            "payment-awaiting_cash",
            &("amount", c.t.money(&p.amount)),
            &("code", p.checkout_id.to_string()),
        ),
        s => c.t.t(&format!("payment-{}", s.as_str())),
    }
}

/// The order whose failed payment this person may choose again (the form on the order and
/// payment pages), if any: the same rules the use case applies.
pub fn pay_again_for(user: &User, o: &Order) -> Option<i64> {
    let may = tianguis_domain::policy::pay_again(&user.person(), &o.facts()).is_ok();
    let open = o.payment_status.is_some_and(|st| {
        tianguis_domain::checkout::may_pay_again(st, std::slice::from_ref(&o.state)).is_ok()
    });
    (may && open).then_some(o.id)
}

/// The roles an admin gives on a person's page (and filters the people list by), with their
/// names in the reader's language.
pub fn granted_roles(c: &Ctx) -> Vec<(&'static str, String)> {
    use tianguis_store::users::Role;
    [
        Role::Admin,
        Role::Official,
        Role::Agent,
        Role::Operator,
        Role::Courier,
        Role::Champion,
    ]
    .iter()
    .map(|r| (r.as_str(), c.t.t(&format!("role-{}", r.as_str()))))
    .collect()
}

/// Whether a form carries the second page's confirmation.
pub fn confirmed(f: &std::collections::HashMap<String, String>) -> bool {
    f.get("confirm").is_some_and(|v| v == "1")
}

pub fn state_key(o: &Order) -> String {
    if o.state == OrderState::Placed && o.method == PaymentMethod::CashOnDelivery.as_str() {
        return "state-placed-on-delivery".into();
    }
    format!("state-{}", o.state.as_str())
}

pub fn parse_id(v: &str, what: &str) -> Result<i64, AppError> {
    v.trim().parse().map_err(|_| {
        AppError::bad(
            Msg::new("err-not-a-number")
                .arg("value", v)
                .arg("what", what),
        )
    })
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub struct OrderRow {
    pub id: i64,
    pub shop_name: String,
    pub buyer_name: String,
    pub total: Money,
    pub state_key: String,
}

impl From<&Order> for OrderRow {
    fn from(o: &Order) -> Self {
        OrderRow {
            id: o.id,
            shop_name: o.shop_name.clone(),
            buyer_name: o.buyer_name.clone(),
            total: o.total,
            state_key: state_key(o),
        }
    }
}

pub fn utc_minute(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => String::new(),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {}

pub fn seller_of(c: &Ctx) -> Result<(User, i64), AppError> {
    let u = c.require_user()?.clone();
    let sid = u
        .seller_id
        .ok_or_else(|| AppError::user(StatusCode::FORBIDDEN, "error-forbidden"))?;
    Ok((u, sid))
}

pub fn admin_of(c: &Ctx) -> Result<User, AppError> {
    crate::who::may(c, Duty::ManageSettings)
}

#[derive(Default)]
pub struct ProductFields {
    pub name_en: String,
    pub name_es: String,
    pub name_bn: String,
    pub name_sw: String,
    pub category_id: String,
    pub price: String,
    pub stock: String,
    /// The stock the edit form showed (the save applies only if it is still that).
    pub stock_seen: String,
    pub description: String,
    pub csrf: String,
    pub photo: Option<Vec<u8>>,
    /// Makes a listing sent twice (a retry after a dropped connection) one listing.
    pub idempotency_key: String,
}

#[derive(Template)]
#[template(path = "product_form.html")]
struct ProductFormPage<'a> {
    c: &'a Ctx,
    title: String,
    error: Option<String>,
    action: String,
    f: ProductFields,
    categories: Vec<Category>,
}

/// The product form, its CSRF token checked (see [`crate::forms::read_multipart`]).
pub async fn read_product_form(c: &Ctx, mp: Multipart) -> Result<ProductFields, AppError> {
    let mut f = crate::forms::read_multipart(c, mp, &["photo"]).await?;
    let mut take = |k: &str| f.fields.remove(k).unwrap_or_default();
    Ok(ProductFields {
        name_en: take("name_en"),
        name_es: take("name_es"),
        name_bn: take("name_bn"),
        name_sw: take("name_sw"),
        category_id: take("category_id"),
        price: take("price"),
        stock: take("stock"),
        stock_seen: take("stock_seen"),
        description: take("description"),
        csrf: take("csrf"),
        idempotency_key: take("idempotency_key"),
        photo: f.files.remove("photo"),
    })
}

pub async fn to_input(s: &AppState, f: &ProductFields) -> Result<ProductInput, AppError> {
    let currency = s.db.currency().await?;
    let price = Money::parse_decimal(&f.price, currency).map_err(|e| AppError::bad(e.msg()))?;
    Ok(ProductInput {
        category_id: parse_id(&f.category_id, "category")?,
        name_en: f.name_en.clone(),
        name_es: Some(f.name_es.clone()),
        name_bn: Some(f.name_bn.clone()),
        name_sw: Some(f.name_sw.clone()),
        description: f.description.clone(),
        price_minor: price.minor,
        stock: parse_id(&f.stock, "stock")?,
    })
}

pub async fn save_product(
    s: &AppState,
    c: &Ctx,
    sid: i64,
    id: Option<i64>,
    f: &ProductFields,
) -> Result<i64, AppError> {
    // The form's CSRF token was checked when it was read (`read_product_form`).
    let _ = c;
    let input = to_input(s, f).await?;
    let stock_seen = match f.stock_seen.trim() {
        "" => None,
        v => Some(parse_id(v, "stock")?),
    };
    // Prepare the photo before touching the database, on a blocking thread.
    let photo = match f.photo.clone() {
        Some(b) => Some(
            tokio::task::spawn_blocking(move || tianguis_app::images::prepare_photo(&b))
                .await
                .map_err(|e| AppError::Internal(e.to_string()))??,
        ),
        None => None,
    };
    let pid = match id {
        Some(pid) => {
            s.db.update_product(sid, pid, &input, stock_seen).await?;
            pid
        }
        None if !f.idempotency_key.trim().is_empty() => {
            s.db.create_product_once(sid, &input, f.idempotency_key.trim())
                .await?
        }
        None => s.db.create_product(sid, &input).await?,
    };
    if let Some(p) = photo {
        s.db.set_product_photo(sid, pid, &p).await?;
    }
    Ok(pid)
}

pub async fn product_form_page(
    s: &AppState,
    c: &Ctx,
    action: String,
    f: ProductFields,
    error: Option<String>,
) -> R {
    html(ProductFormPage {
        title: c.t.t("shop-new-product"),
        c,
        error,
        action,
        f,
        categories: s.db.categories().await?,
    })
}

/// The code-proven delivery open to this person for this order, if any.
pub fn code_delivery_for(user: &User, o: &Order) -> Option<Transition> {
    let t = if o.method == PaymentMethod::CashOnDelivery.as_str() {
        Transition::CollectOnDelivery
    } else {
        Transition::DeliverWithCode
    };
    (t.def().from.contains(&o.state) && actor_for(user, o, t).is_some()).then_some(t)
}

/// The moves open to this person on this order from the pages and the API (paying and the
/// code-proven delivery go their own ways; couriers move orders through their jobs).
pub fn actions_for(user: &User, o: &Order) -> Vec<Transition> {
    let on_delivery = o.method == PaymentMethod::CashOnDelivery.as_str();
    process::TRANSITIONS
        .iter()
        .filter(|d| {
            d.from.contains(&o.state)
                && d.name != Transition::Pay
                && d.payment.admits(on_delivery)
                && !d.needs_code
        })
        .filter(|d| {
            // Couriers move orders through their delivery jobs (/courier), not here.
            actor_for(user, o, d.name).is_some_and(|a| !matches!(a, Actor::System | Actor::Courier))
        })
        .map(|d| d.name)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_minutes() {
        assert_eq!(super::utc_minute(0), "1970-01-01 00:00");
        assert_eq!(super::utc_minute(1_795_365_240_000), "2026-11-22 16:34");
        assert_eq!(super::utc_minute(951_782_400_000), "2000-02-29 00:00");
    }
}
