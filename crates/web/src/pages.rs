//! Server-rendered pages. Each handler turns a form into domain values or a message, calls the
//! store, and renders one askama template. No page needs JavaScript.

use crate::AppState;
use crate::ctx::{self, Ctx};
use crate::error::AppError;
use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use std::collections::HashMap;
use tianguis_app::people::NewUser;
use tianguis_domain::money::Money;
use tianguis_domain::policy::Duty;
use tianguis_domain::process::{self, Actor, OrderState, Timing, Transition};
use tianguis_store::Msg;
use tianguis_store::catalog::{CartLine, Category, Place, Product, ProductInput, SearchQuery};
use tianguis_store::orders::{
    CheckoutRequest, Order, OrderEvent, Payment, PaymentMethod, actor_for, may_view,
};
use tianguis_store::users::{Role, User};

type R = Result<Response, AppError>;

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/search", get(home))
        .route("/products/{id}", get(product))
        .route("/photos/{id}", get(photo))
        .route("/cart", get(cart))
        .route("/cart/add", post(cart_add))
        .route("/cart/update", post(cart_update))
        .route("/checkout", get(checkout_form).post(checkout))
        .route("/payments/{id}", get(payment_page))
        .route("/orders", get(orders))
        .route("/orders/{id}", get(order))
        .route("/orders/{id}/deliver", post(order_deliver))
        .route("/orders/{id}/{transition}", post(order_act))
        .route("/login", get(login_form).post(login))
        .route("/signup", get(signup_form).post(signup))
        .route("/logout", post(logout))
        .route("/lang/{code}", get(set_lang))
        .route("/shop", get(shop))
        .route(
            "/shop/products/new",
            get(new_product_form).post(new_product),
        )
        .route(
            "/shop/products/{id}/edit",
            get(edit_product_form).post(edit_product),
        )
        .route("/admin", get(admin))
        .route("/admin/settings", post(admin_settings))
        .route("/admin/places", post(admin_place))
        .route("/admin/categories", post(admin_category))
        .route("/admin/payments/{id}/cash", post(admin_cash))
        .route("/admin/users/{id}", get(admin_person).post(admin_user))
        .route("/admin/users/{id}/grants", post(admin_grant))
        .route("/admin/grants/{id}/revoke", post(admin_revoke))
        .route("/admin/jobs", get(admin_jobs))
        .route("/admin/jobs/{id}/retry", post(admin_job_retry))
        .route("/admin/places/{id}/promise", post(admin_place_promise))
        .route("/admin/registry", post(admin_registry))
        .route("/admin/pickup-points", post(admin_pickup_point))
        .route("/sim/sms/messages", get(sim_sms_messages))
        .route("/pickup", get(pickup_page))
        .route("/pickup/orders/{id}/check-in", post(pickup_check_in))
        .merge(crate::courier::routes())
        .merge(crate::agent::routes())
        .merge(crate::mandates::routes())
        .fallback(not_found)
        // Inside the context layer: a refused request still gets a page in the reader's
        // language.
        .layer(axum::middleware::from_fn(crate::forms::pages_guard))
        .layer(axum::middleware::from_fn_with_state(state, ctx::layer))
}

async fn not_found() -> AppError {
    AppError::User(
        StatusCode::NOT_FOUND,
        Msg::new("err-not-found").arg("what", "page"),
    )
}

pub(crate) fn html(t: impl Template) -> R {
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
    (status, Html(body)).into_response()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    c: &'a Ctx,
    title: String,
    message: String,
}

fn state_key(o: &Order) -> String {
    if o.state == OrderState::Placed && o.method == PaymentMethod::CashOnDelivery.as_str() {
        return "state-placed-on-delivery".into();
    }
    format!("state-{}", o.state.as_str())
}

// ---------- browse ----------

#[derive(Template)]
#[template(path = "home.html")]
struct Home<'a> {
    c: &'a Ctx,
    title: String,
    q: String,
    place: Option<i64>,
    category: Option<i64>,
    places: Vec<Place>,
    categories: Vec<Category>,
    products: Vec<Product>,
    total: i64,
    offset: i64,
    prev_url: String,
    next_url: String,
}

impl Home<'_> {
    fn sel_place(&self, id: &i64) -> bool {
        self.place == Some(*id)
    }
    fn sel_category(&self, id: &i64) -> bool {
        self.category == Some(*id)
    }
}

fn num(q: &HashMap<String, String>, k: &str) -> Option<i64> {
    q.get(k).and_then(|v| v.trim().parse().ok())
}

async fn home(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    let text: String = q
        .get("q")
        .cloned()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let place = num(&q, "place");
    let category = num(&q, "category");
    let offset = num(&q, "offset").unwrap_or(0).clamp(0, 100_000);
    let (products, total) =
        s.db.search(&SearchQuery {
            text: text.clone(),
            place_id: place,
            category_id: category,
            seller_id: None,
            limit: 24,
            offset,
        })
        .await?;
    let base = format!(
        "/search?q={}&place={}&category={}",
        urlencode(&text),
        place.map(|p| p.to_string()).unwrap_or_default(),
        category.map(|p| p.to_string()).unwrap_or_default()
    );
    html(Home {
        title: c.t.t("nav-home"),
        c: &c,
        q: text,
        place,
        category,
        places: s.db.places().await?,
        categories: s.db.categories().await?,
        products,
        total,
        offset,
        prev_url: format!("{base}&offset={}", (offset - 24).max(0)),
        next_url: format!("{base}&offset={}", offset + 24),
    })
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPage<'a> {
    c: &'a Ctx,
    title: String,
    p: Product,
}

async fn product(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
) -> R {
    let p = s.db.product(id).await?;
    html(ProductPage {
        title: p.name(c.t.lang).to_string(),
        c: &c,
        p,
    })
}

async fn photo(State(s): State<AppState>, Path(id): Path<i64>) -> R {
    let (bytes, ct) = s.db.photo(id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, ct),
            (
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable".into(),
            ),
        ],
        bytes,
    )
        .into_response())
}

// ---------- cart and checkout ----------

#[derive(Deserialize)]
struct CartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    product_id: String,
    #[serde(default)]
    quantity: String,
}

pub(crate) fn parse_id(v: &str, what: &str) -> Result<i64, AppError> {
    v.trim().parse().map_err(|_| {
        AppError::bad(
            Msg::new("err-not-a-number")
                .arg("value", v)
                .arg("what", what),
        )
    })
}

async fn cart_add(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Form(f): Form<CartForm>,
) -> R {
    c.check_csrf(&f.csrf)?;
    s.db.cart_add(
        &c.session(&s.db).await?,
        parse_id(&f.product_id, "product")?,
        parse_id(&f.quantity, "quantity")?,
    )
    .await?;
    Ok(Redirect::to("/cart").into_response())
}

async fn cart_update(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Form(f): Form<CartForm>,
) -> R {
    c.check_csrf(&f.csrf)?;
    s.db.cart_set(
        &c.session(&s.db).await?,
        parse_id(&f.product_id, "product")?,
        parse_id(&f.quantity, "quantity")?,
    )
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
    lines: Vec<CartLine>,
    sellers: usize,
    delivery: String,
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
        total,
        lines,
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
        c.t.money(&Money::new(p.fee_minor, currency))
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
    csrf: String,
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
    Form(f): Form<CheckoutForm>,
) -> R {
    c.check_csrf(&f.csrf)?;
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
        method: PaymentMethod::parse(&f.method)?,
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

struct OrderRow {
    id: i64,
    shop_name: String,
    buyer_name: String,
    total: Money,
    state_key: String,
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

#[derive(Template)]
#[template(path = "paid.html")]
struct PaidPage<'a> {
    c: &'a Ctx,
    title: String,
    status: String,
    message: String,
    payment_id: i64,
    orders: Vec<OrderRow>,
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
    let message = match p.status.as_str() {
        "awaiting_cash" => c.t.t2(
            "payment-awaiting_cash",
            &("amount", c.t.money(&p.amount)),
            &("code", format!("{}", p.checkout_id)),
        ),
        other => c.t.t(&format!("payment-{other}")),
    };
    html(PaidPage {
        title: c.t.t("checkout-done"),
        c: &c,
        status: p.status.clone(),
        message,
        payment_id: p.id,
        orders: orders.iter().map(OrderRow::from).collect(),
    })
}

// ---------- orders ----------

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage<'a> {
    c: &'a Ctx,
    title: String,
    orders: Vec<OrderRow>,
}

async fn orders(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    let user = c.require_user()?;
    let list = s.db.orders_for(user, false, None, 100).await?;
    html(OrdersPage {
        title: c.t.t("orders-title"),
        c: &c,
        orders: list.iter().map(OrderRow::from).collect(),
    })
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
}

/// The code-proven delivery this user may record on this order, if any.
pub fn code_delivery_for(user: &User, o: &Order) -> Option<Transition> {
    let t = if o.method == PaymentMethod::CashOnDelivery.as_str() {
        Transition::CollectOnDelivery
    } else {
        Transition::DeliverWithCode
    };
    (t.def().from.contains(&o.state) && actor_for(user, o, t).is_some()).then_some(t)
}

struct HistoryLine {
    when: String,
    what: String,
    who: String,
    reason: String,
}

/// "2026-11-22 16:34" (UTC) from epoch milliseconds.
fn utc_minute(ms: i64) -> String {
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

fn history_line(c: &Ctx, e: &OrderEvent) -> HistoryLine {
    HistoryLine {
        when: utc_minute(e.at),
        what: c.t.t(&format!("state-{}", e.to_state)),
        who: c.t.t(&format!("actor-{}", e.actor)),
        reason: e.reason.clone(),
    }
}

/// The transitions this user may take on this order, in the process table's order.
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
    html(OrderPage {
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
struct ActForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    refund_minor: String,
}

#[derive(Deserialize)]
struct DeliverForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

async fn order_deliver(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    Form(f): Form<DeliverForm>,
) -> R {
    c.check_csrf(&f.csrf)?;
    let user = c.require_user()?;
    tianguis_app::orders::deliver_with_code(&s.db, user, id, &f.code).await?;
    Ok(Redirect::to(&format!("/orders/{id}")).into_response())
}

async fn order_act(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path((id, name)): Path<(i64, String)>,
    Form(f): Form<ActForm>,
) -> R {
    c.check_csrf(&f.csrf)?;
    let user = c.require_user()?;
    let t = Transition::parse(&name).ok_or_else(|| {
        AppError::User(
            StatusCode::NOT_FOUND,
            Msg::new("err-unknown-action").arg("name", &name),
        )
    })?;
    let refund = if f.refund_minor.trim().is_empty() {
        None
    } else {
        Some(parse_id(&f.refund_minor, "amount")?)
    };
    tianguis_app::orders::act(&s.db, user, id, t, &f.reason, refund).await?;
    Ok(Redirect::to(&format!("/orders/{id}")).into_response())
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
}

async fn login_form(Extension(c): Extension<Ctx>) -> R {
    html(LoginPage {
        title: c.t.t("login-title"),
        c: &c,
        error: None,
        action: "/login",
        signup: false,
        phone: String::new(),
        places: vec![],
    })
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    password: String,
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
    Form(f): Form<LoginForm>,
) -> R {
    c.check_csrf(&f.csrf)?;
    // Only failures count, per phone and (more generously) per address: a wrong-password
    // streak on one account does not lock out the others behind a centre's one address.
    let failures = crate::abuse::login_failures(&s, ip, &f.phone);
    crate::abuse::not_reached(&s, &failures).await?;
    match tianguis_app::people::authenticate(&s.db, &f.phone, &f.password).await? {
        Some(u) => {
            let (id, _) =
                s.db.rotate_session(c.session_id.as_deref(), Some(u.id), Some(c.t.lang))
                    .await?;
            Ok(signed_in(
                &s,
                &id,
                if c.cart_count > 0 { "/cart" } else { "/" },
            ))
        }
        None => {
            s.db.rate_record(&failures).await?;
            let page = LoginPage {
                title: c.t.t("login-title"),
                c: &c,
                error: Some(c.t.t("login-failed")),
                action: "/login",
                signup: false,
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
    })
}

#[derive(Deserialize)]
struct SignupForm {
    #[serde(default)]
    csrf: String,
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
    Form(f): Form<SignupForm>,
) -> R {
    c.check_csrf(&f.csrf)?;
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
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, html(page)?).into_response())
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    pub(crate) csrf: String,
}

async fn logout(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Form(f): Form<CsrfOnly>,
) -> R {
    c.check_csrf(&f.csrf)?;
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

// ---------- seller ----------

#[derive(Template)]
#[template(path = "shop.html")]
struct ShopPage<'a> {
    c: &'a Ctx,
    title: String,
    shop_name: String,
    held: String,
    earned: String,
    paid_out: String,
    owed: String,
    fees: String,
    refunded: String,
    orders: Vec<OrderRow>,
    products: Vec<Product>,
}

pub(crate) fn seller_of(c: &Ctx) -> Result<(User, i64), AppError> {
    let u = c.require_user()?.clone();
    let sid = u
        .seller_id
        .ok_or_else(|| AppError::user(StatusCode::FORBIDDEN, "error-forbidden"))?;
    Ok((u, sid))
}

async fn shop(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    let (u, sid) = seller_of(&c)?;
    let seller = s.db.seller(sid).await?;
    let st = s.db.seller_statement(sid).await?;
    let m = |v: i64| c.t.money(&Money::new(v, st.currency));
    let open: Vec<Order> =
        s.db.orders_for(&u, true, None, 200)
            .await?
            .into_iter()
            .filter(|o| {
                matches!(
                    o.state,
                    OrderState::Paid
                        | OrderState::Accepted
                        | OrderState::Packed
                        | OrderState::ReturnRequested
                        | OrderState::Disputed
                )
            })
            .collect();
    let (products, _) =
        s.db.search(&SearchQuery {
            seller_id: Some(sid),
            limit: 100,
            ..Default::default()
        })
        .await?;
    html(ShopPage {
        title: c.t.t("shop-title"),
        shop_name: seller.shop_name,
        held: m(st.held),
        earned: m(st.earned),
        paid_out: m(st.paid_out),
        owed: m(st.owed),
        fees: m(st.fees),
        refunded: m(st.refunded),
        orders: open.iter().map(OrderRow::from).collect(),
        products,
        c: &c,
    })
}

#[derive(Default)]
pub(crate) struct ProductFields {
    pub(crate) name_en: String,
    pub(crate) name_es: String,
    pub(crate) name_bn: String,
    pub(crate) category_id: String,
    pub(crate) price: String,
    pub(crate) stock: String,
    /// The stock the edit form showed (the save applies only if it is still that).
    pub(crate) stock_seen: String,
    pub(crate) description: String,
    pub(crate) csrf: String,
    pub(crate) photo: Option<Vec<u8>>,
    /// Makes a listing sent twice (a retry after a dropped connection) one listing.
    pub(crate) idempotency_key: String,
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
pub(crate) async fn read_product_form(c: &Ctx, mp: Multipart) -> Result<ProductFields, AppError> {
    let mut f = crate::forms::read_multipart(c, mp, &["photo"]).await?;
    let mut take = |k: &str| f.fields.remove(k).unwrap_or_default();
    Ok(ProductFields {
        name_en: take("name_en"),
        name_es: take("name_es"),
        name_bn: take("name_bn"),
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

async fn to_input(s: &AppState, f: &ProductFields) -> Result<ProductInput, AppError> {
    let currency = s.db.currency().await?;
    let price = Money::parse_decimal(&f.price, currency).map_err(|e| AppError::bad(e.msg()))?;
    Ok(ProductInput {
        category_id: parse_id(&f.category_id, "category")?,
        name_en: f.name_en.clone(),
        name_es: Some(f.name_es.clone()),
        name_bn: Some(f.name_bn.clone()),
        description: f.description.clone(),
        price_minor: price.minor,
        stock: parse_id(&f.stock, "stock")?,
    })
}

pub(crate) async fn save_product(
    s: &AppState,
    c: &Ctx,
    sid: i64,
    id: Option<i64>,
    f: &ProductFields,
) -> Result<i64, AppError> {
    c.check_csrf(&f.csrf)?;
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

pub(crate) async fn product_form_page(
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

async fn new_product_form(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    seller_of(&c)?;
    let f = ProductFields {
        stock: "1".into(),
        idempotency_key: tianguis_store::random_token(16),
        ..Default::default()
    };
    product_form_page(&s, &c, "/shop/products/new".into(), f, None).await
}

async fn new_product(State(s): State<AppState>, Extension(c): Extension<Ctx>, mp: Multipart) -> R {
    let (_, sid) = seller_of(&c)?;
    let f = read_product_form(&c, mp).await?;
    match save_product(&s, &c, sid, None, &f).await {
        Ok(pid) => Ok(Redirect::to(&format!("/products/{pid}")).into_response()),
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let r = product_form_page(
                &s,
                &c,
                "/shop/products/new".into(),
                f,
                Some(e.message(&c.t)),
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, r).into_response())
        }
        Err(e) => Err(e),
    }
}

async fn edit_product_form(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
) -> R {
    let (_, sid) = seller_of(&c)?;
    let p = s.db.product(id).await?;
    if p.seller_id != sid {
        return Err(AppError::User(
            StatusCode::NOT_FOUND,
            Msg::new("err-not-found").arg("what", "product"),
        ));
    }
    let f = ProductFields {
        name_en: p.name_en.clone(),
        name_es: p.name_es.clone().unwrap_or_default(),
        name_bn: p.name_bn.clone().unwrap_or_default(),
        category_id: p.category_id.to_string(),
        price: p.price.to_decimal(),
        stock: p.stock.to_string(),
        stock_seen: p.stock.to_string(),
        description: p.description.clone(),
        ..Default::default()
    };
    product_form_page(&s, &c, format!("/shop/products/{id}/edit"), f, None).await
}

async fn edit_product(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    mp: Multipart,
) -> R {
    let (_, sid) = seller_of(&c)?;
    let mut f = read_product_form(&c, mp).await?;
    match save_product(&s, &c, sid, Some(id), &f).await {
        Ok(pid) => Ok(Redirect::to(&format!("/products/{pid}")).into_response()),
        Err(e)
            if matches!(
                e.status(),
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT
            ) =>
        {
            if e.status() == StatusCode::CONFLICT {
                // Stock moved while the form was open (units sold): show what it is now, so
                // the seller decides again instead of overwriting the sale.
                let now = s.db.product(id).await?.stock.to_string();
                f.stock = now.clone();
                f.stock_seen = now;
            }
            let status = e.status();
            let r = product_form_page(
                &s,
                &c,
                format!("/shop/products/{id}/edit"),
                f,
                Some(e.message(&c.t)),
            )
            .await?;
            Ok((status, r).into_response())
        }
        Err(e) => Err(e),
    }
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
    users: Vec<User>,
}

pub(crate) fn admin_of(c: &Ctx) -> Result<User, AppError> {
    crate::who::may(c, Duty::ManageSettings)
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
        if o.payment_status.as_deref() == Some("awaiting_cash")
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
        users: s.db.list_users(200).await?,
        c: &c,
    })
}

async fn admin_settings(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    c.check_csrf(f.get("csrf").map(String::as_str).unwrap_or(""))?;
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
    Ok(Redirect::to("/admin?saved=1").into_response())
}

async fn admin_place(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    c.check_csrf(f.get("csrf").map(String::as_str).unwrap_or(""))?;
    admin_of(&c)?;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    s.db.create_place(&get("name"), &get("kind"), None).await?;
    Ok(Redirect::to("/admin?saved=1").into_response())
}

async fn admin_category(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    c.check_csrf(f.get("csrf").map(String::as_str).unwrap_or(""))?;
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
    Form(f): Form<CsrfOnly>,
) -> R {
    c.check_csrf(&f.csrf)?;
    let admin = admin_of(&c)?;
    let p = s.db.payment(id).await?;
    if p.method != PaymentMethod::Cash.as_str() {
        return Err(AppError::bad(Msg::new("err-cash-only")));
    }
    tianguis_app::orders::payment_succeeded(&s.db, id, Some(admin.id)).await?;
    Ok(Redirect::to("/admin?saved=1").into_response())
}

async fn admin_place_promise(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    c.check_csrf(f.get("csrf").map(String::as_str).unwrap_or(""))?;
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
    mut mp: Multipart,
) -> R {
    let mut csrf = String::new();
    let mut text = String::new();
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| AppError::Raw(StatusCode::BAD_REQUEST, e.to_string()))?
    {
        match field.name().unwrap_or("") {
            "csrf" => {
                csrf = field
                    .text()
                    .await
                    .map_err(|e| AppError::Raw(StatusCode::BAD_REQUEST, e.to_string()))?
            }
            "file" => {
                text = String::from_utf8_lossy(
                    &field
                        .bytes()
                        .await
                        .map_err(|e| AppError::Raw(StatusCode::BAD_REQUEST, e.to_string()))?,
                )
                .into_owned()
            }
            _ => {}
        }
    }
    c.check_csrf(&csrf)?;
    admin_of(&c)?;
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
    Form(f): Form<CsrfOnly>,
) -> R {
    c.check_csrf(&f.csrf)?;
    let user = c.require_user()?;
    tianguis_app::logistics::check_in(&s.db, user, id).await?;
    Ok(Redirect::to("/pickup").into_response())
}

async fn admin_pickup_point(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    c.check_csrf(f.get("csrf").map(String::as_str).unwrap_or(""))?;
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
    Form(f): Form<HashMap<String, String>>,
) -> R {
    c.check_csrf(f.get("csrf").map(String::as_str).unwrap_or(""))?;
    let admin = crate::who::may(&c, Duty::ManagePeople)?;
    let active = f.get("active").is_some_and(|v| v == "1");
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
            .find(|p| p.id == id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| format!("#{id}")),
        G::Point(id) => points
            .iter()
            .find(|p| p.id == id)
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
    use tianguis_store::users::Role as R_;
    let roles = [
        R_::Admin,
        R_::Official,
        R_::Agent,
        R_::Operator,
        R_::Courier,
        R_::Champion,
    ]
    .iter()
    .map(|r| (r.as_str(), c.t.t(&format!("role-{}", r.as_str()))))
    .collect();
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

#[cfg(test)]
mod tests {
    #[test]
    fn utc_minutes() {
        assert_eq!(super::utc_minute(0), "1970-01-01 00:00");
        assert_eq!(super::utc_minute(1_795_365_240_000), "2026-11-22 16:34");
        assert_eq!(super::utc_minute(951_782_400_000), "2000-02-29 00:00");
    }
}
