//! The cart and checkout: adding to the cart, paying, the payment page.

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
use tianguis_domain::money::Money;
use tianguis_store::Msg;
use tianguis_store::catalog::CartLine;
use tianguis_store::orders::{CheckoutRequest, Order, Payment};
use tianguis_store::users::Role;

pub fn routes() -> Table {
    Table::new("checkout")
        .get("/cart", cart)
        .post("/cart/add", cart_add)
        .post("/cart/update", cart_update)
        .get_post("/checkout", checkout_form, checkout)
        .get("/payments/{id}", payment_page)
}

// ---------- cart and checkout ----------

#[derive(Deserialize)]
struct CartForm {
    #[serde(default)]
    product_id: String,
    #[serde(default)]
    quantity: String,
}

/// A cart line as the form sends it, made a value (a product and a whole quantity) or refused
/// with a message.
struct CartChange {
    product: tianguis_domain::ids::ProductId,
    quantity: i64,
}

impl TryFrom<CartForm> for CartChange {
    type Error = AppError;
    fn try_from(f: CartForm) -> Result<Self, AppError> {
        Ok(CartChange {
            product: parse_id(&f.product_id, "product")?.into(),
            quantity: parse_id(&f.quantity, "quantity")?,
        })
    }
}

async fn cart_add(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<CartForm>,
) -> R {
    let line = CartChange::try_from(f)?;
    s.db.cart_add(&c.session(&s.db).await?, line.product.0, line.quantity)
        .await?;
    Ok(Redirect::to("/cart").into_response())
}

async fn cart_update(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<CartForm>,
) -> R {
    let line = CartChange::try_from(f)?;
    s.db.cart_set(&c.session(&s.db).await?, line.product.0, line.quantity)
        .await?;
    Ok(Redirect::to("/cart").into_response())
}

fn cart_total(lines: &[CartLine]) -> Option<Money> {
    let mut it = lines.iter();
    let first = it.next()?;
    let mut t = first.product.price.checked_mul(first.quantity).ok()?;
    for l in it {
        t = t
            .checked_add(l.product.price.checked_mul(l.quantity).ok()?)
            .ok()?;
    }
    Some(t)
}

#[derive(Template)]
#[template(path = "cart.html")]
struct CartPage<'a> {
    c: &'a Ctx,
    title: String,
    lines: Vec<CartLine>,
    total: String,
}

async fn cart(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    let lines = c.cart(&s.db).await?;
    let total = cart_total(&lines)
        .map(|m| c.t.money(&m))
        .unwrap_or_default();
    html(CartPage {
        title: c.t.t("cart-title"),
        c: &c,
        lines,
        total,
    })
}

#[derive(Template)]
#[template(path = "checkout.html")]
struct CheckoutPage<'a> {
    c: &'a Ctx,
    title: String,
    error: Option<String>,
    /// Each line as it is charged: (name, shop, quantity, unit price, line total).
    rows: Vec<(String, String, i64, String, String)>,
    sellers: usize,
    delivery: String,
    delivery_each: String,
    total: String,
    key: String,
    address: String,
    phone: String,
    registered: Vec<tianguis_store::registry::Property>,
    /// Pickup points with room, nearest first: (id, label).
    pickup: Vec<(i64, String)>,
}

async fn checkout_page(
    s: &AppState,
    c: &Ctx,
    error: Option<String>,
    address: String,
    phone: String,
) -> R {
    let user = c.require_user()?;
    let lines = c.cart(&s.db).await?;
    if lines.is_empty() {
        return Ok(Redirect::to("/cart").into_response());
    }
    let mut sellers: Vec<i64> = lines.iter().map(|l| l.product.seller_id).collect();
    sellers.sort();
    sellers.dedup();
    let fees = s.db.fees().await?;
    let cur = lines[0].product.price.currency;
    let delivery = Money::new(fees.delivery_per_order * sellers.len() as i64, cur);
    let total = cart_total(&lines)
        .and_then(|t| t.checked_add(delivery).ok())
        .map(|m| c.t.money(&m))
        .unwrap_or_default();
    let phone = if phone.is_empty() {
        user.phone.clone()
    } else {
        phone
    };
    html(CheckoutPage {
        title: c.t.t("checkout-title"),
        c,
        error,
        sellers: sellers.len(),
        delivery: c.t.money(&delivery),
        delivery_each: c.t.money(&Money::new(fees.delivery_per_order, cur)),
        total,
        rows: lines
            .iter()
            .map(|l| {
                let line = l
                    .product
                    .price
                    .minor
                    .checked_mul(l.quantity)
                    .map(|m| c.t.money(&Money::new(m, l.product.price.currency)))
                    .unwrap_or_default();
                (
                    l.product.name(c.t.lang).to_string(),
                    l.product.shop_name.clone(),
                    l.quantity,
                    c.t.money(&l.product.price),
                    line,
                )
            })
            .collect(),
        key: tianguis_store::random_token(16),
        address,
        pickup: s
            .db
            .pickup_points_for(user.id)
            .await?
            .iter()
            .map(|p| (p.id, pickup_label(c, p, cur)))
            .collect(),
        registered: s.db.registered_addresses(&user.phone).await?,
        phone,
    })
}

/// "Tienda Don Pepe — store, 1.2 km, Mon-Sat 8-20, $15.00"
fn pickup_label(
    c: &Ctx,
    p: &tianguis_store::pickup::PickupPoint,
    currency: tianguis_domain::money::Currency,
) -> String {
    let km = p
        .distance_m
        .map(|m| format!(", {:.1} km", m / 1000.0))
        .unwrap_or_default();
    format!(
        "{} — {}{}, {}, {}",
        p.name,
        c.t.t(&format!("pickup-kind-{}", p.kind)),
        km,
        p.hours,
        c.t.t1(
            "checkout-pickup-fee",
            "fee",
            c.t.money(&Money::new(p.fee_minor, currency))
        )
    )
}

async fn checkout_form(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    if c.user.is_none() {
        return Ok(Redirect::to("/login?next=/checkout").into_response());
    }
    checkout_page(&s, &c, None, String::new(), String::new()).await
}

#[derive(Deserialize)]
struct CheckoutForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    method: String,
    /// A property from the address registry, instead of a typed address.
    #[serde(default)]
    registered: String,
    /// A pickup point, instead of an address.
    #[serde(default)]
    pickup: String,
}

async fn checkout(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    ip: crate::abuse::ClientIp,
    CsrfForm(f): CsrfForm<CheckoutForm>,
) -> R {
    let user = c.require_user()?.clone();
    let lines: Vec<(i64, i64)> = c
        .cart(&s.db)
        .await?
        .iter()
        .map(|l| (l.product.id, l.quantity))
        .collect();
    let mut f = f;
    if let Ok(id) = f.registered.trim().parse::<i64>() {
        // Only the buyer's own registered properties can be chosen.
        match s
            .db
            .registered_addresses(&user.phone)
            .await?
            .into_iter()
            .find(|p| p.id == id)
        {
            Some(p) => f.address = format!("{} {}", p.plus_code, p.name),
            None => {
                return Err(AppError::user(
                    StatusCode::NOT_FOUND,
                    "err-registry-not-yours",
                ));
            }
        }
    }
    let req = CheckoutRequest {
        buyer_id: user.id,
        lines,
        session_id: c.session_id.clone(),
        idempotency_key: f.idempotency_key.clone(),
        method: tianguis_store::orders::parse_method(&f.method)?,
        address: f.address.clone(),
        phone: f.phone.clone(),
        pickup_point_id: f.pickup.trim().parse::<i64>().ok(),
        on_behalf: None,
        limits: crate::abuse::checkouts(&s, ip, user.id),
    };
    let result = match tianguis_app::orders::checkout(&s.db, &req).await {
        Ok((r, _)) => r,
        Err(e) => {
            let (_, msg) = AppError::from(e).for_form(&c.t)?;
            let resp = checkout_page(&s, &c, Some(msg), f.address, f.phone).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, resp).into_response());
        }
    };
    // Mobile money is asked of the provider by a job written in the checkout's transaction.
    Ok(Redirect::to(&format!("/payments/{}", result.payment_id)).into_response())
}

#[derive(Template)]
#[template(path = "paid.html")]
struct PaidPage<'a> {
    c: &'a Ctx,
    title: String,
    status: String,
    message: String,
    payment_id: i64,
    orders: Vec<OrderRow>,
    /// An order of the checkout whose failed payment may be chosen again.
    pay_again: Option<i64>,
}

async fn payment_page(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
) -> R {
    let user = c.require_user()?;
    let p: Payment = s.db.payment(id).await?;
    let orders: Vec<Order> =
        s.db.checkout_orders(p.checkout_id)
            .await?
            .into_iter()
            .filter(|o| o.buyer_id == user.id)
            .collect();
    if orders.is_empty() && !user.is(Role::Admin) {
        return Err(AppError::User(
            StatusCode::NOT_FOUND,
            Msg::new("err-not-found").arg("what", "payment"),
        ));
    }
    let message = payment_message(&c, &p);
    html(PaidPage {
        pay_again: orders.iter().find_map(|o| pay_again_for(user, o)),
        title: c.t.t("checkout-done"),
        c: &c,
        status: p.status.as_str().to_string(),
        message,
        payment_id: p.id,
        orders: orders.iter().map(OrderRow::from).collect(),
    })
}
