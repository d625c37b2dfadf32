//! A seller's shop: the statement, open orders, listings made and edited.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::*;
use crate::ctx::Ctx;
use crate::error::AppError;
use askama::Template;
use axum::Extension;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use tianguis_domain::money::Money;
use tianguis_domain::process::OrderState;
use tianguis_store::Msg;
use tianguis_store::catalog::{Product, SearchQuery};
use tianguis_store::orders::Order;

pub fn routes() -> Table {
    Table::new("shop")
        .get("/shop", shop)
        .get_post("/shop/products/new", new_product_form, new_product)
        .get_post("/shop/products/{id}/edit", edit_product_form, edit_product)
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
    on_the_way: String,
    failed: String,
    owed: String,
    fees: String,
    refunded: String,
    orders: Vec<OrderRow>,
    products: Vec<Product>,
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
    let products =
        s.db.search(&SearchQuery {
            seller_id: Some(sid),
            limit: 100,
            ..Default::default()
        })
        .await?
        .products;
    html(ShopPage {
        title: c.t.t("shop-title"),
        shop_name: seller.shop_name,
        held: m(st.held),
        earned: m(st.earned),
        paid_out: m(st.paid_out),
        on_the_way: m(st.on_the_way),
        failed: m(st.failed),
        owed: m(st.owed),
        fees: m(st.fees),
        refunded: m(st.refunded),
        orders: open.iter().map(OrderRow::from).collect(),
        products,
        c: &c,
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
        name_sw: p.name_sw.clone().unwrap_or_default(),
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
