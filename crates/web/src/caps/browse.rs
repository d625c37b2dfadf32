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
use tianguis_domain::money::Money;
use tianguis_domain::search::{self, Cursor, Sort};
use tianguis_store::catalog::{Category, Place, Product, SearchPage, SearchQuery};

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
    min: String,
    max: String,
    in_stock: bool,
    sort: Sort,
    sorts: [Sort; 4],
    places: Vec<Place>,
    categories: Vec<Category>,
    page: SearchPage,
    /// A price bound that could not be read, said instead of silently dropped.
    problem: Option<String>,
    first_url: Option<String>,
    next_url: Option<String>,
    exact_url: Option<String>,
}

impl Home<'_> {
    fn sel_place(&self, id: &i64) -> bool {
        self.place == Some(*id)
    }
    fn sel_category(&self, id: &i64) -> bool {
        self.category == Some(*id)
    }
    fn sel_sort(&self, s: &Sort) -> bool {
        self.sort == *s
    }
    fn sort_label(&self, s: &Sort) -> String {
        self.c.t.t(match s {
            Sort::Relevance => "sort-relevance",
            Sort::Newest => "sort-newest",
            Sort::PriceLow => "sort-price",
            Sort::PriceHigh => "sort-price-desc",
        })
    }
}

fn num(q: &HashMap<String, String>, k: &str) -> Option<i64> {
    q.get(k).and_then(|v| v.trim().parse().ok())
}

/// Home, search and category browse: one page of listings, read from the search index.
async fn home(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    let get = |k: &str| -> String {
        q.get(k)
            .map(|v| v.chars().take(200).collect())
            .unwrap_or_default()
    };
    let text = get("q");
    let place = num(&q, "place");
    let category = num(&q, "category");
    let (min, max) = (get("min"), get("max"));
    let in_stock = q.get("stock").is_some_and(|v| v == "1");
    let exact = q.get("exact").is_some_and(|v| v == "1");
    let sort = Sort::parse(&get("sort")).unwrap_or_default();
    let currency = s.db.currency().await?;
    let mut problem = None;
    let mut price = |raw: &str| {
        if raw.trim().is_empty() {
            return None;
        }
        match Money::parse_decimal(raw, currency) {
            Ok(m) => Some(m.minor),
            Err(e) => {
                problem = Some(c.t.msg(&e.msg()));
                None
            }
        }
    };
    let (min_price, max_price) = (price(&min), price(&max));
    let after = Cursor::parse(&get("after"), sort, !search::terms(&text).is_empty());
    let page =
        s.db.search(&SearchQuery {
            text: text.clone(),
            place_id: place,
            category_id: category,
            seller_id: None,
            min_price,
            max_price,
            in_stock,
            sort,
            after,
            exact,
            limit: 24,
        })
        .await?;
    let base = format!(
        "/search?q={}&place={}&category={}&min={}&max={}&sort={}{}{}",
        urlencode(&text),
        place.map(|p| p.to_string()).unwrap_or_default(),
        category.map(|p| p.to_string()).unwrap_or_default(),
        urlencode(&min),
        urlencode(&max),
        sort.as_str(),
        if in_stock { "&stock=1" } else { "" },
        if exact { "&exact=1" } else { "" },
    );
    html(Home {
        title: c.t.t("nav-home"),
        c: &c,
        first_url: after.map(|_| base.clone()),
        next_url: page.next.map(|n| format!("{base}&after={}", n.token())),
        exact_url: page.corrected.as_ref().map(|_| format!("{base}&exact=1")),
        q: text,
        place,
        category,
        min,
        max,
        in_stock,
        sort,
        sorts: Sort::ALL,
        places: s.db.places().await?,
        categories: s.db.categories().await?,
        page,
        problem,
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
