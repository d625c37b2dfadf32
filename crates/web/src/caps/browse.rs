//! Browsing: the home page and search, a product, its photo.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::*;
use crate::ctx::Ctx;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use std::collections::HashMap;
use tianguis_store::catalog::{Category, Place, Product, SearchQuery};

pub fn routes() -> Table {
    Table::new("browse")
        .get("/", home)
        .get("/search", home)
        .get("/products/{id}", product)
        .get("/photos/{id}", photo)
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
