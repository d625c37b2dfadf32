//! The JSON API under `/api/v1`: the same operations as the pages, for machine clients with
//! `Authorization: Bearer <token>`. Errors are `application/problem+json`. Also the mobile-money
//! callback and the helpers that talk to the provider.

use crate::AppState;
use crate::error::{AppError, Problem, problem};
use crate::payments::Callback;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;
use tianguis_domain::process::Transition;
use tianguis_store::Msg;
use tianguis_store::catalog::SearchQuery;
use tianguis_store::orders::{CheckoutRequest, PaymentMethod, may_view};
use tianguis_store::users::User;

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

async fn products(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> A {
    let n = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let (items, total) =
        s.db.search(&SearchQuery {
            text: q.get("q").cloned().unwrap_or_default(),
            place_id: n("place"),
            category_id: n("category"),
            seller_id: n("seller"),
            limit: n("limit").unwrap_or(24),
            offset: n("offset").unwrap_or(0),
        })
        .await?;
    Ok(Json(serde_json::json!({ "total": total, "items": items })).into_response())
}

async fn product(State(s): State<AppState>, Path(id): Path<i64>) -> A {
    Ok(Json(s.db.product(id).await?).into_response())
}

#[derive(Deserialize)]
struct CheckoutBody {
    lines: Vec<LineBody>,
    method: String,
    address: String,
    phone: String,
}
#[derive(Deserialize)]
struct LineBody {
    product_id: i64,
    quantity: i64,
}

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
    let b: CheckoutBody = json_body(&body)?;
    let req = CheckoutRequest {
        buyer_id: user.id,
        lines: b.lines.iter().map(|l| (l.product_id, l.quantity)).collect(),
        session_id: None,
        idempotency_key: key.to_string(),
        method: PaymentMethod::parse(&b.method)?,
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
    Ok((status, Json(result)).into_response())
}

async fn orders(
    State(s): State<AppState>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> A {
    let user = bearer(&s, &h).await?;
    let as_seller = q.get("as").map(String::as_str) == Some("seller");
    Ok(Json(s.db.orders_for(&user, as_seller, None, 200).await?).into_response())
}

async fn order(State(s): State<AppState>, h: HeaderMap, Path(id): Path<i64>) -> A {
    let user = bearer(&s, &h).await?;
    let o = s.db.order(id).await?;
    if !may_view(&user, &o) {
        return Err(Problem(AppError::User(
            StatusCode::NOT_FOUND,
            Msg::new("err-not-found").arg("what", "order"),
        )));
    }
    let events = s.db.order_events(id).await?;
    let actions: Vec<&str> = crate::caps::views::actions_for(&user, &o)
        .iter()
        .map(|t| t.as_str())
        .collect();
    Ok(
        Json(serde_json::json!({ "order": o, "events": events, "actions": actions }))
            .into_response(),
    )
}

#[derive(Deserialize, Default)]
struct TransitionBody {
    #[serde(default)]
    reason: String,
    refund_minor: Option<i64>,
}

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
    let b: TransitionBody = if body.is_empty() {
        TransitionBody::default()
    } else {
        json_body(&body)?
    };
    let state = tianguis_app::orders::act(&s.db, &user, id, t, &b.reason, b.refund_minor).await?;
    Ok(Json(serde_json::json!({ "id": id, "state": state })).into_response())
}

#[derive(Deserialize)]
struct DeliverBody {
    code: String,
}

/// Whoever delivers records it with the buyer's one-time code.
async fn deliver(State(s): State<AppState>, h: HeaderMap, Path(id): Path<i64>, body: Bytes) -> A {
    let user = bearer(&s, &h).await?;
    let b: DeliverBody = json_body(&body)?;
    let state = tianguis_app::orders::deliver_with_code(&s.db, &user, id, &b.code).await?;
    Ok(Json(serde_json::json!({ "id": id, "state": state })).into_response())
}

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
    if cb.amount_minor != p.amount.minor || cb.currency != p.amount.currency.as_str() {
        tracing::error!(provider_ref = %cb.provider_ref, "callback amount does not match the payment");
        return Err(Problem(AppError::bad(Msg::new("err-callback-amount"))));
    }
    tianguis_app::payments::apply_status(&s.db, p.id, &cb.status).await?;
    Ok(Json(serde_json::json!({ "ok": true })).into_response())
}

/// Where the provider calls back: this server's own callback endpoint.
pub fn callback_url(public_url: &str) -> String {
    format!(
        "{}/api/v1/payments/mobile-money/callback",
        public_url.trim_end_matches('/')
    )
}

async fn openapi() -> Response {
    let err = serde_json::json!({"description": "problem+json", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let doc = serde_json::json!({
        "openapi": "3.1.0",
        "info": {"title": "tianguis API", "version": "1", "description": "Marketplace API: catalogue, checkout with escrow, order process."},
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {"type": "object", "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"}}}}
        },
        "paths": {
            "/api/v1/products": {"get": {"summary": "Search and browse products", "parameters": [
                {"name": "q", "in": "query", "schema": {"type": "string"}}, {"name": "place", "in": "query", "schema": {"type": "integer"}},
                {"name": "category", "in": "query", "schema": {"type": "integer"}}, {"name": "seller", "in": "query", "schema": {"type": "integer"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer"}}, {"name": "offset", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "products"}, "default": err}}},
            "/api/v1/products/{id}": {"get": {"summary": "One product", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}], "responses": {"200": {"description": "product"}, "404": err}}},
            "/api/v1/checkout": {"post": {"summary": "Buy a cart: one payment, one order per seller", "security": [{"token": []}],
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["lines", "method", "address", "phone"], "properties": {
                    "lines": {"type": "array", "items": {"type": "object", "properties": {"product_id": {"type": "integer"}, "quantity": {"type": "integer"}}}},
                    "method": {"type": "string", "enum": ["mobile_money", "cash"]}, "address": {"type": "string"}, "phone": {"type": "string"}}}}}},
                "responses": {"201": {"description": "created"}, "200": {"description": "replay of an earlier checkout with the same key"}, "default": err}}},
            "/api/v1/orders": {"get": {"summary": "My orders (as=seller for my shop's)", "security": [{"token": []}], "responses": {"200": {"description": "orders"}, "default": err}}},
            "/api/v1/orders/{id}": {"get": {"summary": "An order, its history and the actions open to me", "security": [{"token": []}], "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}], "responses": {"200": {"description": "order"}, "default": err}}},
            "/api/v1/orders/{id}/transitions/{name}": {"post": {"summary": "Take a transition (accept, pack, ship, confirm_delivery, confirm_receipt, request_return, mark_returned, dispute, resolve, cancel)", "security": [{"token": []}],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}, {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string"}, "refund_minor": {"type": "integer"}}}}}},
                "responses": {"200": {"description": "new state"}, "default": err}}},
            "/api/v1/orders/{id}/deliver": {"post": {"summary": "Record a delivery with the buyer's one-time code (proof of delivery; for cash on delivery also the cash collection)", "security": [{"token": []}],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["code"], "properties": {"code": {"type": "string"}}}}}},
                "responses": {"200": {"description": "delivered"}, "default": err}}},
            "/api/v1/payments/mobile-money/callback": {"post": {"summary": "Provider callback, HMAC-SHA256 of the body in X-Signature", "responses": {"200": {"description": "applied"}, "401": err}}}
        }
    });
    Json(doc).into_response()
}
