//! The JSON API under `/api/v1`: the same operations as the pages, for machine clients with
//! `Authorization: Bearer <token>`. Errors are `application/problem+json`. Also the mobile-money
//! callback. The API has its own types (`dto`): what it sends and takes is fixed here, not by
//! the domain's or the store's types, and the OpenAPI document is generated from these handlers
//! and types (utoipa), so it cannot drift from them.

use crate::AppState;
use crate::error::{AppError, Problem, problem};
use crate::payments::Callback;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tianguis_domain::process::Transition;
use tianguis_domain::search::{Cursor, Sort};
use tianguis_store::Msg;
use tianguis_store::catalog::SearchQuery;
use tianguis_store::orders::{CheckoutRequest, PaymentMethod, may_view};
use tianguis_store::users::User;
use utoipa::{OpenApi, ToSchema};

type A = Result<Response, Problem>;

/// The API's routes (under `/api/v1`).
pub fn routes() -> crate::caps::Table {
    crate::caps::Table::new("api")
        .get("/openapi.json", openapi)
        .get("/products", products)
        .get("/products/{id}", product)
        .post("/checkout", checkout)
        .get("/orders", orders)
        .get("/orders/{id}", order)
        .post("/orders/{id}/deliver", deliver)
        .post("/orders/{id}/transitions/{name}", transition)
        .post("/payments/mobile-money/callback", callback)
        .post("/sms/inbound/{token}", sms_inbound)
}

/// The API's router: problem+json for every refusal, control characters refused, a small
/// body limit.
pub fn router() -> axum::Router<AppState> {
    routes()
        .into_parts()
        .0
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "err-api-endpoint") })
        .layer(axum::middleware::from_fn(crate::forms::api_guard))
        .layer(axum::middleware::from_fn(problem_for_rejections))
        // A checkout of the most lines allowed is a few kilobytes.
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
}

/// Axum's extractor rejections (bad path, query or JSON) become problem+json too.
async fn problem_for_rejections(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    if crate::ctx::plain_text_rejection(resp.status(), resp.headers()).is_some() {
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 4096)
            .await
            .unwrap_or_default();
        return Problem(AppError::Raw(
            status,
            String::from_utf8_lossy(&body).into_owned(),
        ))
        .into_response();
    }
    resp
}

async fn bearer(s: &AppState, h: &HeaderMap) -> Result<User, Problem> {
    let token = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Problem(AppError::user(
                StatusCode::UNAUTHORIZED,
                "err-api-token-missing",
            ))
        })?;
    s.db.user_by_token(token.trim()).await?.ok_or_else(|| {
        Problem(AppError::user(
            StatusCode::UNAUTHORIZED,
            "err-api-token-invalid",
        ))
    })
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Problem> {
    let bad = |e: serde_json::Error| {
        Problem(AppError::Raw(
            StatusCode::BAD_REQUEST,
            format!("the JSON body is not valid: {e}"),
        ))
    };
    let v: serde_json::Value = serde_json::from_slice(body).map_err(bad)?;
    if let Some(field) = crate::forms::json_bad_field(&v) {
        return Err(Problem(AppError::bad(
            tianguis_domain::text::control_char_error(&field),
        )));
    }
    serde_json::from_value(v).map_err(bad)
}

/// What the API takes and gives.
pub mod dto {
    use super::*;
    use tianguis_domain::money::Money;

    /// An amount in minor units (cents, centavos, paisa) of a currency.
    #[derive(Serialize, ToSchema)]
    pub struct Amount {
        pub minor: i64,
        /// ISO 4217, e.g. MXN.
        pub currency: String,
    }

    impl From<Money> for Amount {
        fn from(m: Money) -> Self {
            Amount {
                minor: m.minor,
                currency: m.currency.as_str().to_string(),
            }
        }
    }

    #[derive(Serialize, ToSchema)]
    pub struct Product {
        pub id: i64,
        pub seller_id: i64,
        pub shop_name: String,
        pub place_id: i64,
        pub place_name: String,
        pub category_id: i64,
        pub name_en: String,
        pub name_es: Option<String>,
        pub name_bn: Option<String>,
        pub name_sw: Option<String>,
        pub description: String,
        pub price: Amount,
        pub stock: i64,
        pub photo_id: Option<i64>,
        pub active: bool,
    }

    impl From<tianguis_store::catalog::Product> for Product {
        fn from(p: tianguis_store::catalog::Product) -> Self {
            Product {
                id: p.id,
                seller_id: p.seller_id,
                shop_name: p.shop_name,
                place_id: p.place_id,
                place_name: p.place_name,
                category_id: p.category_id,
                name_en: p.name_en,
                name_es: p.name_es,
                name_bn: p.name_bn,
                name_sw: p.name_sw,
                description: p.description,
                price: p.price.into(),
                stock: p.stock,
                photo_id: p.photo_id,
                active: p.active,
            }
        }
    }

    #[derive(Serialize, ToSchema)]
    pub struct Products {
        /// How many match (all pages), counted up to 1000.
        pub total: i64,
        /// More match than `total` says (the count stops at 1000).
        pub total_capped: bool,
        /// Pass as `after` for the next page; absent on the last page.
        pub next: Option<String>,
        /// The words searched when a mistyped word was corrected (send `exact=true` to search
        /// them as typed).
        pub corrected: Option<String>,
        pub items: Vec<Product>,
    }

    /// How the buyer pays.
    #[derive(Deserialize, ToSchema, Clone, Copy)]
    #[serde(rename_all = "snake_case")]
    pub enum Method {
        /// From the payer's phone; the provider confirms.
        MobileMoney,
        /// At a digital centre, before the order is fulfilled.
        Cash,
        /// To whoever delivers, with the buyer's code.
        CashOnDelivery,
    }

    impl From<Method> for PaymentMethod {
        fn from(m: Method) -> Self {
            match m {
                Method::MobileMoney => PaymentMethod::MobileMoney,
                Method::Cash => PaymentMethod::Cash,
                Method::CashOnDelivery => PaymentMethod::CashOnDelivery,
            }
        }
    }

    #[derive(Deserialize, ToSchema)]
    pub struct Line {
        #[schema(minimum = 1)]
        #[serde(deserialize_with = "integral")]
        pub product_id: i64,
        /// Units of the product (lines naming the same product add up).
        #[schema(minimum = 1, maximum = 999)]
        #[serde(deserialize_with = "integral")]
        pub quantity: i64,
    }

    /// A whole number as JSON Schema counts one: `2` and `2.0` alike; a fraction is refused.
    fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
        match n.as_f64() {
            // Exactly representable whole numbers only (2^53).
            Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => Ok(f as i64),
            _ => Err(serde::de::Error::custom(format!(
                "{n} is not a whole number"
            ))),
        }
    }

    fn integral_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(deserialize_with = "integral")] i64);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }

    /// Buy: one payment, one order per seller.
    #[derive(Deserialize, ToSchema)]
    pub struct Checkout {
        /// At most `max_checkout_lines` different products (100 unless the marketplace says
        /// otherwise).
        #[schema(min_items = 1, max_items = 1000)]
        pub lines: Vec<Line>,
        pub method: Method,
        /// Where to deliver (a plus code first is best).
        #[schema(max_length = 500)]
        pub address: String,
        /// The payer's phone, in international form.
        pub phone: String,
    }

    #[derive(Serialize, ToSchema)]
    pub struct CheckoutResult {
        pub checkout_id: i64,
        pub order_ids: Vec<i64>,
        pub total_minor: i64,
        pub currency: String,
        pub payment_id: i64,
        /// For following the order without an account (`/track/CODE`).
        pub tracking_code: String,
    }

    impl From<tianguis_store::orders::CheckoutResult> for CheckoutResult {
        fn from(r: tianguis_store::orders::CheckoutResult) -> Self {
            CheckoutResult {
                checkout_id: r.checkout_id,
                order_ids: r.order_ids,
                total_minor: r.total_minor,
                currency: r.currency,
                payment_id: r.payment_id,
                tracking_code: r.tracking_code,
            }
        }
    }

    #[derive(Serialize, ToSchema)]
    pub struct OrderLine {
        pub product_id: i64,
        pub name_en: String,
        pub name_es: Option<String>,
        pub quantity: i64,
        pub unit_price: Amount,
    }

    /// An order (the buyer's one-time code is never here: the buyer sees it on their page).
    #[derive(Serialize, ToSchema)]
    pub struct Order {
        pub id: i64,
        pub checkout_id: i64,
        pub buyer_id: i64,
        pub buyer_name: String,
        pub seller_id: i64,
        pub shop_name: String,
        /// placed, paid, accepted, packed, shipped, delivered, completed, cancelled, ...
        pub state: String,
        pub subtotal: Amount,
        pub delivery: Amount,
        pub total: Amount,
        pub fee_bps: i64,
        pub address: String,
        pub phone: String,
        pub method: String,
        pub payment_status: Option<String>,
        pub payment_id: Option<i64>,
        pub plus_code: Option<String>,
        pub pickup_point_id: Option<i64>,
        pub checked_in_at: Option<i64>,
        pub agent_id: Option<i64>,
        pub centre_id: Option<i64>,
        pub tracking_code: Option<String>,
        pub due_at: Option<i64>,
        pub delivered_at: Option<i64>,
        pub created_at: i64,
        pub updated_at: i64,
        pub lines: Vec<OrderLine>,
    }

    impl From<tianguis_store::orders::Order> for Order {
        fn from(o: tianguis_store::orders::Order) -> Self {
            Order {
                id: o.id,
                checkout_id: o.checkout_id,
                buyer_id: o.buyer_id,
                buyer_name: o.buyer_name,
                seller_id: o.seller_id,
                shop_name: o.shop_name,
                state: o.state.as_str().to_string(),
                subtotal: o.subtotal.into(),
                delivery: o.delivery.into(),
                total: o.total.into(),
                fee_bps: o.fee_bps,
                address: o.address,
                phone: o.phone,
                method: o.method.as_str().to_string(),
                payment_status: o.payment_status.map(|s| s.as_str().to_string()),
                payment_id: o.payment_id,
                plus_code: o.plus_code,
                pickup_point_id: o.pickup_point_id,
                checked_in_at: o.checked_in_at,
                agent_id: o.agent_id,
                centre_id: o.centre_id,
                tracking_code: o.tracking_code,
                due_at: o.due_at,
                delivered_at: o.delivered_at,
                created_at: o.created_at,
                updated_at: o.updated_at,
                lines: o
                    .lines
                    .into_iter()
                    .map(|l| OrderLine {
                        product_id: l.product_id,
                        name_en: l.name_en,
                        name_es: l.name_es,
                        quantity: l.quantity,
                        unit_price: l.unit_price.into(),
                    })
                    .collect(),
            }
        }
    }

    #[derive(Serialize, ToSchema)]
    pub struct OrderEvent {
        pub transition: String,
        pub from_state: String,
        pub to_state: String,
        pub actor: String,
        pub actor_user_id: Option<i64>,
        pub reason: String,
        pub at: i64,
    }

    #[derive(Serialize, ToSchema)]
    pub struct OrderDetail {
        pub order: Order,
        pub events: Vec<OrderEvent>,
        /// Transitions open to the caller now (names for `/orders/{id}/transitions/{name}`).
        pub actions: Vec<String>,
    }

    #[derive(Deserialize, Default, ToSchema)]
    pub struct Move {
        #[serde(default)]
        pub reason: String,
        /// Resolving a dispute: how much goes back to the buyer.
        #[serde(default, deserialize_with = "integral_opt")]
        pub refund_minor: Option<i64>,
    }

    #[derive(Deserialize, ToSchema)]
    pub struct Delivery {
        /// The buyer's six-digit code.
        pub code: String,
    }

    #[derive(Serialize, ToSchema)]
    pub struct Moved {
        pub id: i64,
        pub state: String,
    }

    /// RFC 9457 problem details.
    #[derive(Serialize, ToSchema)]
    pub struct ProblemDoc {
        #[serde(rename = "type")]
        pub kind: String,
        pub title: String,
        pub status: u16,
        pub detail: String,
    }

    /// Acknowledged.
    #[derive(Serialize, ToSchema)]
    pub struct Ack {
        pub ok: bool,
    }
}

/// Search parameters of `/products`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Words to find (accents and case do not matter; prefixes match).
    q: Option<String>,
    place: Option<i64>,
    category: Option<i64>,
    seller: Option<i64>,
    /// Lowest and highest price, in minor units, both included.
    #[param(minimum = 0)]
    min_price: Option<i64>,
    #[param(minimum = 0)]
    max_price: Option<i64>,
    /// Only listings with stock.
    in_stock: Option<bool>,
    /// `relevance` (the default), `newest`, `price` (lowest first) or `price-desc`.
    #[param(pattern = "^(relevance|newest|price|price-desc)$")]
    sort: Option<String>,
    /// The `next` of the page before, with the same `sort` (a marker made for another order
    /// is refused).
    #[param(pattern = "^(t[1-4]\\.[0-9]{1,18}|n[0-9]{1,18}|p[0-9]{1,18}\\.[0-9]{1,18})$")]
    after: Option<String>,
    /// Search the words as typed, without correcting them.
    exact: Option<bool>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// Search and browse products.
#[utoipa::path(get, path = "/products", params(ProductQuery),
    responses((status = 200, body = dto::Products), (status = "default", body = dto::ProblemDoc, content_type = "application/problem+json")))]
async fn products(State(s): State<AppState>, Query(q): Query<ProductQuery>) -> A {
    // What the document promises is what is accepted: a page out of range, an unknown order
    // or a cursor that is not one is refused, not quietly changed.
    let bad = |key: &'static str| Problem(AppError::User(StatusCode::BAD_REQUEST, Msg::new(key)));
    if q.limit.is_some_and(|l| !(1..=100).contains(&l)) {
        return Err(bad("err-page-range"));
    }
    if q.min_price.is_some_and(|p| p < 0) || q.max_price.is_some_and(|p| p < 0) {
        return Err(bad("err-price"));
    }
    let sort = match q.sort.as_deref() {
        None => Sort::Relevance,
        Some(s) => Sort::parse(s).ok_or_else(|| bad("err-sort"))?,
    };
    let text = q.q.unwrap_or_default();
    let after = match q.after.as_deref() {
        None => None,
        Some(a) => Some(
            Cursor::parse(a, sort, !tianguis_domain::search::terms(&text).is_empty())
                .ok_or_else(|| bad("err-cursor"))?,
        ),
    };
    let page =
        s.db.search(&SearchQuery {
            text,
            place_id: q.place,
            category_id: q.category,
            seller_id: q.seller,
            min_price: q.min_price,
            max_price: q.max_price,
            in_stock: q.in_stock.unwrap_or(false),
            sort,
            after,
            exact: q.exact.unwrap_or(false),
            limit: q.limit.unwrap_or(24),
        })
        .await?;
    Ok(Json(dto::Products {
        total: page.total,
        total_capped: page.capped,
        next: page.next.map(|c| c.token()),
        corrected: page.corrected,
        items: page.products.into_iter().map(Into::into).collect(),
    })
    .into_response())
}

/// One product.
#[utoipa::path(get, path = "/products/{id}", params(("id" = i64, Path, description = "the product")),
    responses((status = 200, body = dto::Product), (status = 400, body = dto::ProblemDoc, content_type = "application/problem+json", description = "not a number"), (status = 404, body = dto::ProblemDoc, content_type = "application/problem+json")))]
async fn product(State(s): State<AppState>, Path(id): Path<i64>) -> A {
    Ok(Json(dto::Product::from(s.db.product(id).await?)).into_response())
}

/// Buy: one payment, one order per seller, stock taken, all or nothing. The same
/// `Idempotency-Key` with the same request answers with the first result (200); with another
/// request it is refused (422).
#[utoipa::path(post, path = "/checkout", request_body = dto::Checkout, security(("token" = [])),
    params(("Idempotency-Key" = String, Header, description = "one key per purchase; sent again, the same purchase")),
    responses((status = 201, body = dto::CheckoutResult, description = "bought"),
        (status = 200, body = dto::CheckoutResult, description = "the same request sent again"),
        (status = 401, body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, body = dto::ProblemDoc, content_type = "application/problem+json", description = "out of stock, bad quantities, too many lines"),
        (status = 422, body = dto::ProblemDoc, content_type = "application/problem+json", description = "bad address or phone, key used for another request"),
        (status = 429, body = dto::ProblemDoc, content_type = "application/problem+json")))]
async fn checkout(
    State(s): State<AppState>,
    ip: crate::abuse::ClientIp,
    h: HeaderMap,
    body: Bytes,
) -> A {
    let user = bearer(&s, &h).await?;
    let key = h
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Problem(AppError::bad(Msg::new("err-idempotency-header"))))?;
    // Refused before the body is read, as the document says (KEY_PATTERN).
    if tianguis_domain::checkout::idempotency_key(key).is_none() {
        return Err(Problem(AppError::bad(Msg::new("err-idempotency-key"))));
    }
    let b: dto::Checkout = json_body(&body)?;
    let req = CheckoutRequest {
        buyer_id: user.id,
        lines: b.lines.iter().map(|l| (l.product_id, l.quantity)).collect(),
        session_id: None,
        idempotency_key: key.to_string(),
        method: b.method.into(),
        address: b.address,
        phone: b.phone,
        pickup_point_id: None,
        on_behalf: None,
        limits: crate::abuse::checkouts(&s, ip, user.id),
    };
    let (result, replayed) = tianguis_app::orders::checkout(&s.db, &req).await?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(dto::CheckoutResult::from(result))).into_response())
}

/// My orders (`as=seller`: my shop's).
#[utoipa::path(get, path = "/orders", security(("token" = [])),
    params(("as" = Option<String>, Query, description = "`seller` for the orders of my shop")),
    responses((status = 200, body = Vec<dto::Order>), (status = 401, body = dto::ProblemDoc, content_type = "application/problem+json")))]
async fn orders(
    State(s): State<AppState>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> A {
    let user = bearer(&s, &h).await?;
    let as_seller = q.get("as").map(String::as_str) == Some("seller");
    let list: Vec<dto::Order> =
        s.db.orders_for(&user, as_seller, None, 200)
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
    Ok(Json(list).into_response())
}

/// An order, its history and the moves open to me.
#[utoipa::path(get, path = "/orders/{id}", security(("token" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = dto::OrderDetail), (status = 404, body = dto::ProblemDoc, content_type = "application/problem+json")))]
async fn order(State(s): State<AppState>, h: HeaderMap, Path(id): Path<i64>) -> A {
    let user = bearer(&s, &h).await?;
    let o = s.db.order(id).await?;
    if !may_view(&user, &o) {
        return Err(Problem(AppError::User(
            StatusCode::NOT_FOUND,
            Msg::new("err-not-found").arg("what", "order"),
        )));
    }
    let events =
        s.db.order_events(id)
            .await?
            .into_iter()
            .map(|e| dto::OrderEvent {
                transition: e.transition,
                from_state: e.from_state,
                to_state: e.to_state,
                actor: e.actor,
                actor_user_id: e.actor_user_id,
                reason: e.reason,
                at: e.at,
            })
            .collect();
    let actions = crate::caps::views::actions_for(&user, &o)
        .iter()
        .map(|t| t.as_str().to_string())
        .collect();
    Ok(Json(dto::OrderDetail {
        order: o.into(),
        events,
        actions,
    })
    .into_response())
}

/// Take a transition: accept, pack, ship, confirm_delivery, confirm_receipt, request_return,
/// mark_returned, dispute, resolve, cancel (who may is decided by the order and the caller).
#[utoipa::path(post, path = "/orders/{id}/transitions/{name}", security(("token" = [])),
    params(("id" = i64, Path), ("name" = String, Path, description = "the transition")),
    request_body(content = Option<dto::Move>, description = "a reason; a refund when resolving"),
    responses((status = 200, body = dto::Moved), (status = 403, body = dto::ProblemDoc, content_type = "application/problem+json"), (status = 404, body = dto::ProblemDoc, content_type = "application/problem+json"), (status = 409, body = dto::ProblemDoc, content_type = "application/problem+json")))]
async fn transition(
    State(s): State<AppState>,
    h: HeaderMap,
    Path((id, name)): Path<(i64, String)>,
    body: Bytes,
) -> A {
    let user = bearer(&s, &h).await?;
    let t = Transition::parse(&name).ok_or_else(|| {
        Problem(AppError::User(
            StatusCode::NOT_FOUND,
            Msg::new("err-unknown-action").arg("name", &name),
        ))
    })?;
    let b: dto::Move = if body.is_empty() {
        dto::Move::default()
    } else {
        json_body(&body)?
    };
    let state = tianguis_app::orders::act(&s.db, &user, id, t, &b.reason, b.refund_minor).await?;
    Ok(Json(dto::Moved {
        id,
        state: state.as_str().to_string(),
    })
    .into_response())
}

/// Record a delivery with the buyer's one-time code (proof of delivery; for cash on delivery
/// also the cash collection).
#[utoipa::path(post, path = "/orders/{id}/deliver", security(("token" = [])), params(("id" = i64, Path)),
    request_body = dto::Delivery,
    responses((status = 200, body = dto::Moved), (status = 422, body = dto::ProblemDoc, content_type = "application/problem+json", description = "a wrong code")))]
async fn deliver(State(s): State<AppState>, h: HeaderMap, Path(id): Path<i64>, body: Bytes) -> A {
    let user = bearer(&s, &h).await?;
    let b: dto::Delivery = json_body(&body)?;
    let state = tianguis_app::orders::deliver_with_code(&s.db, &user, id, &b.code).await?;
    Ok(Json(dto::Moved {
        id,
        state: state.as_str().to_string(),
    })
    .into_response())
}

/// The mobile-money provider's callback, signed with HMAC-SHA256 of the body in `X-Signature`.
#[utoipa::path(post, path = "/payments/mobile-money/callback", request_body = crate::payments::Callback,
    params(("X-Signature" = String, Header, description = "hex HMAC-SHA256 of the body")),
    responses((status = 200, body = dto::Ack), (status = 401, body = dto::ProblemDoc, content_type = "application/problem+json")))]
async fn callback(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> A {
    let sig = h
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !s.momo.verify_callback(&body, sig) {
        return Err(Problem(AppError::user(
            StatusCode::UNAUTHORIZED,
            "err-bad-signature",
        )));
    }
    let cb: Callback = json_body(&body)?;
    let p = s.db.payment_by_ref(&cb.provider_ref).await?;
    let answer = tianguis_domain::reconcile::Answer {
        reference: Some(&cb.reference),
        amount_minor: Some(cb.amount_minor),
        currency: Some(&cb.currency),
    };
    if crate::payments::refused(&s.db, &p, "callback", answer, Some(&cb.provider_ref))
        .await?
        .is_some()
    {
        return Err(Problem(AppError::bad(Msg::new("err-callback-amount"))));
    }
    tianguis_app::payments::apply_status(&s.db, p.id, &cb.status).await?;
    Ok(Json(dto::Ack { ok: true }).into_response())
}

/// A reply to our texts as the SMS gateway forwards it (Africa's Talking "incoming messages":
/// an urlencoded form with `from`, `to`, `text`, `date`, `id`, `linkId`). STOP stops the texts
/// one can do without, START resumes them. The gateway does not sign its posts: the path
/// carries a token that only the gateway's settings know.
#[utoipa::path(post, path = "/sms/inbound/{token}",
    params(("token" = String, Path, description = "the inbound token configured at the gateway")),
    responses((status = 200, body = dto::Ack), (status = 404, body = dto::ProblemDoc, content_type = "application/problem+json")))]
async fn sms_inbound(State(s): State<AppState>, Path(token): Path<String>, body: Bytes) -> A {
    use subtle::ConstantTimeEq;
    let want = s.config.sms_inbound_token.as_bytes();
    if want.is_empty() || !bool::from(token.as_bytes().ct_eq(want)) {
        return Err(Problem(AppError::User(
            StatusCode::NOT_FOUND,
            Msg::new("err-not-found").arg("what", "page"),
        )));
    }
    let form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let from = form.get("from").map(String::as_str).unwrap_or("");
    let text = form.get("text").map(String::as_str).unwrap_or("");
    if let Some(stop) = tianguis_app::notify::reply_command(text) {
        // An unknown or unreadable number changes nothing; the gateway gets its 200 either way.
        match tianguis_app::notify::set_texts_stopped(&s.db, from, stop).await {
            Ok(_) | Err(tianguis_store::StoreError::Invalid(_)) => {}
            Err(e) => return Err(Problem(e.into())),
        }
    }
    Ok(Json(dto::Ack { ok: true }).into_response())
}

/// Where the provider calls back: this server's own callback endpoint.
pub fn callback_url(public_url: &str) -> String {
    format!(
        "{}/api/v1/payments/mobile-money/callback",
        public_url.trim_end_matches('/')
    )
}

#[derive(OpenApi)]
#[openapi(
    info(title = "tianguis API", version = "1", description = "Marketplace API: catalogue, checkout with escrow, the order process."),
    servers((url = "/api/v1")),
    paths(openapi, products, product, checkout, orders, order, transition, deliver, callback, sms_inbound),
    modifiers(&BearerToken)
)]
pub struct ApiDoc;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answers every operation can give besides its own, all `application/problem+json`: a
/// malformed request (400), no or a bad token (401), not allowed (403), no such thing (404),
/// refused input (422), too many requests (429), the database out of reach (503).
const EVERY_OPERATION_MAY: [(&str, &str); 7] = [
    ("400", "the request is malformed"),
    ("401", "no token, or not a valid one"),
    ("403", "not allowed for this account"),
    ("404", "no such resource"),
    ("422", "the input was refused; the detail says why"),
    ("429", "too many requests; try again later"),
    (
        "503",
        "the service cannot reach its data for a moment; see Retry-After",
    ),
];

/// The API's OpenAPI document, with its paths as served (under `/api/v1`), and the common
/// error answers on every operation (so a client, or a fuzzer, knows every status it can get).
pub fn openapi_doc() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let mut doc = ApiDoc::openapi();
    let paths = std::mem::take(&mut doc.paths.paths);
    for (p, mut item) in paths {
        for op in [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            let body = op
                .request_body
                .is_some()
                .then_some(("413", "the body is too large"));
            for (code, why) in EVERY_OPERATION_MAY.into_iter().chain(body) {
                if !op.responses.responses.contains_key(code) {
                    let r = ResponseBuilder::new()
                        .description(why)
                        .content(
                            "application/problem+json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ProblemDoc")))
                                .build(),
                        )
                        .build();
                    op.responses.responses.insert(code.to_string(), r.into());
                }
            }
        }
        doc.paths.paths.insert(format!("/api/v1{p}"), item);
    }
    doc.servers = None;
    doc
}

/// What no text the API takes may hold (`tianguis_domain::text`): control characters (line
/// breaks and tab aside, which a reason or a search may carry) and bidirectional overrides.
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069]*$";
/// A path segment: no control character at all.
pub const SEGMENT_PATTERN: &str =
    "^[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069]*$";
/// An idempotency key (`tianguis_domain::checkout::idempotency_key`): 1 to 100 printable
/// ASCII characters, not all spaces.
pub const KEY_PATTERN: &str = "^[ -~]*[!-~][ -~]*$";

/// The document as served: [`openapi_doc`] with the rules every text obeys written into each
/// string's schema (so a client, or a fuzzer, knows what is refused before sending it).
pub fn openapi_json() -> serde_json::Value {
    use serde_json::Value;
    fn is_string(v: &Value) -> bool {
        v["type"] == "string"
            || v["type"]
                .as_array()
                .is_some_and(|t| t.contains(&"string".into()))
    }
    fn constrain(v: &mut Value, pattern: &str) {
        if let Some(o) = v.as_object_mut()
            && !o.contains_key("pattern")
            && !o.contains_key("enum")
            && !o.contains_key("format")
        {
            o.insert("pattern".into(), pattern.into());
        }
    }
    fn walk(v: &mut Value) {
        if is_string(v) {
            constrain(v, TEXT_PATTERN);
        }
        match v {
            Value::Object(o) => {
                // A parameter: its schema by where it is.
                let place = o.get("in").and_then(Value::as_str).map(str::to_string);
                let name = o.get("name").and_then(Value::as_str).map(str::to_string);
                if let (Some(place), Some(name)) = (place, name)
                    && let Some(schema) = o.get_mut("schema")
                    && is_string(schema)
                {
                    if name == "Idempotency-Key" {
                        schema["minLength"] = 1.into();
                        schema["maxLength"] = 100.into();
                        constrain(schema, KEY_PATTERN);
                    } else if place == "path" {
                        constrain(schema, SEGMENT_PATTERN);
                    }
                }
                o.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut doc = serde_json::to_value(openapi_doc()).unwrap_or_default();
    walk(&mut doc);
    doc
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "this document")))]
async fn openapi() -> Response {
    Json(openapi_json()).into_response()
}

#[cfg(test)]
mod tests {
    /// The document is generated from the handlers: every API route the router serves is in
    /// it, with the methods it answers, and what it promises matches the code (all three ways
    /// to pay; the lines' fields required).
    #[test]
    fn the_openapi_document_covers_every_route_and_says_what_the_code_does() {
        let doc = super::openapi_json();
        for r in crate::caps::route_list()
            .into_iter()
            .filter(|r| r.capability == "api")
        {
            assert!(
                doc["paths"][&r.path][r.method.to_ascii_lowercase()].is_object(),
                "{} {} is not documented",
                r.method,
                r.path
            );
        }
        let schemas = &doc["components"]["schemas"];
        let methods: Vec<&str> = schemas["Method"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(methods, ["mobile_money", "cash", "cash_on_delivery"]);
        let required: Vec<&str> = schemas["Line"]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, ["product_id", "quantity"]);
        let checkout = &doc["paths"]["/api/v1/checkout"]["post"]["responses"];
        for status in ["200", "201", "409", "422", "429"] {
            assert!(checkout[status].is_object(), "checkout {status}");
        }
        assert!(
            doc["paths"]["/api/v1/products/{id}"]["get"]["responses"]["400"].is_object(),
            "a non-number id is documented"
        );
    }
}
