//! Places, categories, seller profiles, products, photos, the search index and carts.
//!
//! Every write of a listing rewrites its entry in the search index (`crate::search`) in the
//! same transaction.

pub use crate::search::{SearchPage, SearchQuery};
use crate::{Db, Msg, Result, StoreError, row_i64, row_opt_i64, row_opt_str, row_str};
use sqlx::{Any, Transaction};
use tianguis_domain::kinds::PlaceKind;
use tianguis_domain::money::{Currency, Money};

/// The marketplace's settings (fees, timers, currency), with their defaults.
#[derive(Debug, Clone, Default)]
pub struct Settings(std::collections::HashMap<String, String>);

impl Settings {
    fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        self.0
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
    pub fn text(&self, key: &str, default: &str) -> String {
        self.0
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }
    /// The marketplace's country (the `country` setting): the region national phone numbers
    /// are read in. None until an official sets it; numbers then need their country code.
    pub fn region(&self) -> Option<tianguis_domain::phone::Region> {
        self.0
            .get("country")
            .and_then(|c| tianguis_domain::phone::Region::parse(c).ok())
    }
    /// A phone number as typed, read in the marketplace's country.
    pub fn phone(&self, raw: &str) -> Result<tianguis_domain::phone::PhoneNumber> {
        tianguis_domain::phone::PhoneNumber::parse(raw, self.region())
            .map_err(|e| StoreError::Invalid(e.msg()))
    }
    pub fn fees(&self) -> tianguis_domain::checkout::Fees {
        tianguis_domain::checkout::Fees {
            platform_bps: self.num("platform_fee_bps", 500),
            delivery_per_order: self.num("delivery_fee_minor", 3000),
        }
    }
    /// Most different products in one checkout (a request with more is refused before it
    /// reaches the write lock).
    pub fn max_checkout_lines(&self) -> usize {
        self.num("max_checkout_lines", 100usize).clamp(1, 1000)
    }
    /// The default delivery promise in days (Ek-Shop's four).
    pub fn delivery_days(&self) -> i64 {
        self.num("delivery_days", 4)
    }
    /// Local time of the marketplace, minutes east of UTC (Oaxaca: -360).
    pub fn utc_offset_minutes(&self) -> i64 {
        self.num("utc_offset_minutes", 0)
    }
    /// The hour (local) at which each carrier's morning route plan is made.
    pub fn route_plan_hour(&self) -> i64 {
        self.num("route_plan_hour", 6)
    }
    /// The solver's time budget per route plan.
    pub fn route_plan_ms(&self) -> i64 {
        self.num("route_plan_seconds", 5i64).clamp(1, 120) * 1000
    }
    /// Roads wind: straight-line distance times this is the road distance.
    pub fn road_factor(&self) -> f64 {
        self.num("road_factor", 1.3f64).clamp(1.0, 3.0)
    }
    /// Minutes spent at each stop (parking, finding the door, the code, the cash).
    pub fn stop_minutes(&self) -> i64 {
        self.num("stop_minutes", 5i64).clamp(0, 60)
    }
    /// When the marketplace pays out (see `tianguis_domain::payout::Schedule`).
    pub fn payout_schedule(&self) -> tianguis_domain::payout::Schedule {
        let d = tianguis_domain::payout::Schedule::default();
        tianguis_domain::payout::Schedule {
            every_days: self.num("payout_every_days", d.every_days),
            threshold_minor: self.num("payout_threshold_minor", d.threshold_minor),
            minimum_minor: self.num("payout_minimum_minor", d.minimum_minor),
        }
    }
    /// A different official than the one who prepared a payout batch must approve it (off only
    /// for a one-person office).
    pub fn payout_four_eyes(&self) -> bool {
        self.num("payout_four_eyes", 1i64) != 0
    }
    pub fn timing(&self) -> tianguis_domain::process::Timing {
        let d = tianguis_domain::process::Timing::default();
        tianguis_domain::process::Timing {
            unpaid_cancel_minutes: self.num("unpaid_cancel_minutes", d.unpaid_cancel_minutes),
            ship_within_days: self.num("ship_within_days", d.ship_within_days),
            dispute_window_days: self.num("dispute_window_days", d.dispute_window_days),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Place {
    pub id: i64,
    pub name: String,
    pub kind: PlaceKind,
    pub parent_id: Option<i64>,
    /// Delivery promise in days for buyers here (None: the district's, then the default).
    pub delivery_days: Option<i64>,
    /// A reference point (latitude, longitude) for recovering short plus codes.
    pub location: Option<(f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct Category {
    pub id: i64,
    pub slug: String,
    pub name_en: String,
    pub name_es: String,
    pub name_bn: Option<String>,
}

impl Category {
    pub fn name(&self, lang: &str) -> &str {
        match lang {
            "es" => &self.name_es,
            "bn" => self.name_bn.as_deref().unwrap_or(&self.name_en),
            _ => &self.name_en,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Seller {
    pub id: i64,
    pub user_id: i64,
    pub shop_name: String,
    pub place_id: i64,
    pub place_name: String,
    pub journey_level: i64,
    pub women_led: bool,
}

#[derive(Debug, Clone)]
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
    pub price: Money,
    pub stock: i64,
    pub photo_id: Option<i64>,
    pub active: bool,
}

impl Product {
    pub fn name(&self, lang: &str) -> &str {
        let alt = match lang {
            "es" => self.name_es.as_deref(),
            "bn" => self.name_bn.as_deref(),
            "sw" => self.name_sw.as_deref(),
            _ => None,
        };
        alt.filter(|s| !s.is_empty()).unwrap_or(&self.name_en)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProductInput {
    pub category_id: i64,
    pub name_en: String,
    pub name_es: Option<String>,
    pub name_bn: Option<String>,
    pub name_sw: Option<String>,
    pub description: String,
    pub price_minor: i64,
    pub stock: i64,
}

impl ProductInput {
    fn check(&self) -> Result<()> {
        crate::text::line(&self.name_en, "name_en")?;
        crate::text::line(self.name_es.as_deref().unwrap_or(""), "name_es")?;
        crate::text::line(self.name_bn.as_deref().unwrap_or(""), "name_bn")?;
        crate::text::line(self.name_sw.as_deref().unwrap_or(""), "name_sw")?;
        crate::text::multiline(&self.description, "description")?;
        let n = self.name_en.trim();
        if n.is_empty() || n.chars().count() > 120 {
            return Err(StoreError::invalid("err-product-name"));
        }
        if self.description.chars().count() > 4000 {
            return Err(StoreError::invalid("err-description-long"));
        }
        if !(0..=100_000_000_000).contains(&self.price_minor) {
            return Err(StoreError::invalid("err-price"));
        }
        if !(0..=1_000_000).contains(&self.stock) {
            return Err(StoreError::invalid("err-stock"));
        }
        Ok(())
    }
    /// Its words for the search index, with its shop's name.
    pub(crate) fn doc(&self, shop: &str) -> crate::search::Doc {
        let opt = |n: &Option<String>| n.clone().unwrap_or_default();
        let names = [
            self.name_en.clone(),
            opt(&self.name_es),
            opt(&self.name_bn),
            opt(&self.name_sw),
        ];
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        crate::search::Doc::new(&names, &self.description, shop)
    }
}

#[derive(Debug, Clone)]
pub struct CartLine {
    pub product: Product,
    pub quantity: i64,
}

pub(crate) const PRODUCT_COLS: &str = "p.id, p.seller_id, s.shop_name, s.place_id, pl.name AS place_name, p.category_id, \
    p.name_en, p.name_es, p.name_bn, p.name_sw, p.description, p.price_minor, p.currency, p.stock, p.photo_id, p.active";
const PRODUCT_FROM: &str =
    "FROM products p JOIN sellers s ON s.id = p.seller_id JOIN places pl ON pl.id = s.place_id";

pub(crate) fn product_from(r: &sqlx::any::AnyRow) -> Result<Product> {
    let currency = Currency::parse(&row_str(r, "currency")?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Product {
        id: row_i64(r, "id")?,
        seller_id: row_i64(r, "seller_id")?,
        shop_name: row_str(r, "shop_name")?,
        place_id: row_i64(r, "place_id")?,
        place_name: row_str(r, "place_name")?,
        category_id: row_i64(r, "category_id")?,
        name_en: row_str(r, "name_en")?,
        name_es: row_opt_str(r, "name_es")?,
        name_bn: row_opt_str(r, "name_bn")?,
        name_sw: row_opt_str(r, "name_sw")?,
        description: row_str(r, "description")?,
        price: Money::new(row_i64(r, "price_minor")?, currency),
        stock: row_i64(r, "stock")?,
        photo_id: row_opt_i64(r, "photo_id")?,
        active: row_i64(r, "active")? == 1,
    })
}

impl Db {
    /// The marketplace's currency (setting `currency`, default MXN).
    pub async fn currency(&self) -> Result<Currency> {
        let v = self
            .setting("currency")
            .await?
            .unwrap_or_else(|| "MXN".into());
        Currency::parse(&v).map_err(|e| StoreError::Corrupt(format!("setting currency: {e}")))
    }

    /// All settings in one read.
    pub async fn settings(&self) -> Result<Settings> {
        let rows = sqlx::query("SELECT key, value FROM settings")
            .fetch_all(&self.pool)
            .await?;
        let mut map = std::collections::HashMap::new();
        for r in &rows {
            map.insert(row_str(r, "key")?, row_str(r, "value")?);
        }
        Ok(Settings(map))
    }

    /// The marketplace's country for reading phone numbers (see `Settings::region`).
    pub async fn phone_region(&self) -> Result<Option<tianguis_domain::phone::Region>> {
        Ok(self
            .setting("country")
            .await?
            .and_then(|c| tianguis_domain::phone::Region::parse(&c).ok()))
    }

    /// A phone number as a person typed it, normalised to E.164 in the marketplace's country:
    /// the one way every entry point (pages, API, imports, command line) reads a phone.
    pub async fn phone(&self, raw: &str) -> Result<tianguis_domain::phone::PhoneNumber> {
        tianguis_domain::phone::PhoneNumber::parse(raw, self.phone_region().await?)
            .map_err(|e| StoreError::Invalid(e.msg()))
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        let r = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key.to_string())
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| row_str(&r, "value")).transpose()
    }

    /// Several settings at once, all or none (a rule that spans keys never half-changes).
    pub async fn set_settings(&self, pairs: &[(&str, String)]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (k, v) in pairs {
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(k.to_string())
                .bind(v.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key.to_string())
            .bind(value.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    pub async fn create_place(
        &self,
        name: &str,
        kind: &str,
        parent_id: Option<i64>,
    ) -> Result<i64> {
        if PlaceKind::parse(kind).is_none() {
            return Err(StoreError::invalid("err-place-kind"));
        }
        if name.trim().is_empty() {
            return Err(StoreError::invalid("err-place-name"));
        }
        let r = sqlx::query(
            "INSERT INTO places (name, kind, parent_id) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name.trim().to_string())
        .bind(kind.to_string())
        .bind(parent_id)
        .fetch_one(&self.write)
        .await?;
        row_i64(&r, "id")
    }

    /// Set a place's reference point.
    pub async fn set_place_location(&self, place_id: i64, lat: f64, lng: f64) -> Result<()> {
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
            return Err(StoreError::invalid("err-coordinates"));
        }
        sqlx::query("UPDATE places SET lat = $1, lng = $2 WHERE id = $3")
            .bind(lat)
            .bind(lng)
            .bind(place_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// The full plus code in a delivery address, if it has one. A short code ("8C4X+2F Santa
    /// Ana") is recovered near the place named in the address, else the buyer's place, else its
    /// district.
    pub async fn resolve_plus_code(&self, buyer_id: i64, address: &str) -> Result<Option<String>> {
        let code = tianguis_geo::olc::find_in_text(address)
            .map_err(|_| StoreError::invalid("err-plus-code"))?;
        let Some(code) = code else { return Ok(None) };
        if code.is_full() {
            return Ok(Some(code.to_string()));
        }
        let places = self.places().await?;
        let lower = address.to_lowercase();
        let named = places
            .iter()
            .filter(|p| p.location.is_some() && lower.contains(&p.name.to_lowercase()))
            .max_by_key(|p| p.name.len());
        let home = self.home_location(buyer_id, &places).await?;
        let reference = named.and_then(|p| p.location).or(home);
        let Some((lat, lng)) = reference else {
            return Err(StoreError::invalid("err-plus-code-place"));
        };
        let full = code
            .recover(lat, lng)
            .map_err(|_| StoreError::invalid("err-plus-code"))?;
        Ok(Some(full.to_string()))
    }

    /// The reference point of a buyer's place, else of its district (`places` as from
    /// [`Db::places`]).
    pub async fn home_location(
        &self,
        buyer_id: i64,
        places: &[Place],
    ) -> Result<Option<(f64, f64)>> {
        let own = self
            .user(buyer_id)
            .await?
            .place_id
            .and_then(|id| places.iter().find(|p| p.id == id));
        let parent = own
            .and_then(|p| p.parent_id)
            .and_then(|id| places.iter().find(|p| p.id == id));
        Ok(own
            .and_then(|p| p.location)
            .or(parent.and_then(|p| p.location)))
    }

    /// Set a place's delivery promise (None: inherit).
    pub async fn set_place_delivery_days(&self, place_id: i64, days: Option<i64>) -> Result<()> {
        if days.is_some_and(|d| !(1..=60).contains(&d)) {
            return Err(StoreError::invalid("err-delivery-days"));
        }
        let n = sqlx::query("UPDATE places SET delivery_days = $1 WHERE id = $2")
            .bind(days)
            .bind(place_id)
            .execute(&self.write)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("place"));
        }
        Ok(())
    }

    /// Days promised to a buyer by their place's policy, else their district's (None: the
    /// marketplace's setting applies; the caller has the settings at hand).
    pub async fn place_promise_days(&self, buyer_id: i64) -> Result<Option<i64>> {
        let r = sqlx::query("SELECT p.delivery_days AS own, pp.delivery_days AS parent FROM users u LEFT JOIN places p ON p.id = u.place_id LEFT JOIN places pp ON pp.id = p.parent_id WHERE u.id = $1")
            .bind(buyer_id)
            .fetch_optional(&self.pool)
            .await?;
        let from_place = match r {
            Some(r) => row_opt_i64(&r, "own")?.or(row_opt_i64(&r, "parent")?),
            None => None,
        };
        Ok(from_place)
    }

    pub async fn places(&self) -> Result<Vec<Place>> {
        let rows = sqlx::query(
            "SELECT id, name, kind, parent_id, delivery_days, lat, lng FROM places ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Place {
                    id: row_i64(r, "id")?,
                    name: row_str(r, "name")?,
                    kind: {
                        let k = row_str(r, "kind")?;
                        PlaceKind::parse(&k)
                            .ok_or_else(|| StoreError::Corrupt(format!("place kind {k}")))?
                    },
                    parent_id: row_opt_i64(r, "parent_id")?,
                    delivery_days: row_opt_i64(r, "delivery_days")?,
                    location: {
                        use sqlx::Row;
                        match (
                            r.try_get::<Option<f64>, _>("lat")?,
                            r.try_get::<Option<f64>, _>("lng")?,
                        ) {
                            (Some(a), Some(b)) => Some((a, b)),
                            _ => None,
                        }
                    },
                })
            })
            .collect()
    }

    pub async fn create_category(
        &self,
        slug: &str,
        en: &str,
        es: &str,
        bn: Option<&str>,
    ) -> Result<i64> {
        if slug.is_empty() || !slug.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            return Err(StoreError::invalid("err-category-slug"));
        }
        let r = sqlx::query("INSERT INTO categories (slug, name_en, name_es, name_bn) VALUES ($1,$2,$3,$4) RETURNING id")
            .bind(slug.to_string())
            .bind(en.to_string())
            .bind(es.to_string())
            .bind(bn.map(str::to_string))
            .fetch_one(&self.write)
            .await;
        match r {
            Ok(r) => row_i64(&r, "id"),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
                Msg::new("err-category-exists").arg("slug", slug),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn categories(&self) -> Result<Vec<Category>> {
        let rows =
            sqlx::query("SELECT id, slug, name_en, name_es, name_bn FROM categories ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(Category {
                    id: row_i64(r, "id")?,
                    slug: row_str(r, "slug")?,
                    name_en: row_str(r, "name_en")?,
                    name_es: row_str(r, "name_es")?,
                    name_bn: row_opt_str(r, "name_bn")?,
                })
            })
            .collect()
    }

    /// Create a listing once per key: a form sent again (a retry after a dropped connection)
    /// returns the listing the first one made.
    pub async fn create_product_once(
        &self,
        seller_id: i64,
        p: &ProductInput,
        key: &str,
    ) -> Result<i64> {
        if key.len() > 100 {
            return Err(StoreError::invalid("err-idempotency-key"));
        }
        let scope = format!("product:{seller_id}");
        let fresh = sqlx::query("INSERT INTO idempotency (scope, key, created_at) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING")
            .bind(scope.clone())
            .bind(key.to_string())
            .bind(self.now_ms())
            .execute(&self.write)
            .await?
            .rows_affected()
            == 1;
        if !fresh {
            let r = sqlx::query("SELECT response FROM idempotency WHERE scope = $1 AND key = $2")
                .bind(scope)
                .bind(key.to_string())
                .fetch_one(&self.write)
                .await?;
            return crate::row_opt_str(&r, "response")?
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StoreError::Conflict(Msg::new("err-checkout-in-flight")));
        }
        match self.create_product(seller_id, p).await {
            Ok(id) => {
                sqlx::query("UPDATE idempotency SET response = $1 WHERE scope = $2 AND key = $3")
                    .bind(id.to_string())
                    .bind(scope)
                    .bind(key.to_string())
                    .execute(&self.write)
                    .await?;
                Ok(id)
            }
            Err(e) => {
                // Nothing was made: the key is free for the corrected form.
                sqlx::query("DELETE FROM idempotency WHERE scope = $1 AND key = $2")
                    .bind(scope)
                    .bind(key.to_string())
                    .execute(&self.write)
                    .await?;
                Err(e)
            }
        }
    }

    pub async fn create_seller(
        &self,
        user_id: i64,
        shop_name: &str,
        place_id: i64,
        journey_level: i64,
        women_led: bool,
    ) -> Result<i64> {
        if shop_name.trim().is_empty() || shop_name.chars().count() > 120 {
            return Err(StoreError::invalid("err-shop-name"));
        }
        if !(0..=5).contains(&journey_level) {
            return Err(StoreError::invalid("err-journey-level"));
        }
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO sellers (user_id, shop_name, place_id, journey_level, women_led, created_at) \
             VALUES ($1,$2,$3,$4,$5,$6) RETURNING id",
        )
        .bind(user_id)
        .bind(shop_name.trim().to_string())
        .bind(place_id)
        .bind(journey_level)
        .bind(women_led as i64)
        .bind(self.now_ms())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET role = 'seller' WHERE id = $1 AND role = 'buyer'")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        row_i64(&r, "id")
    }

    /// Every shop, (id, name), by name (for officials' forms).
    pub async fn seller_names(&self) -> Result<Vec<(i64, String)>> {
        sqlx::query("SELECT id, shop_name FROM sellers ORDER BY shop_name, id LIMIT 5000")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((row_i64(r, "id")?, row_str(r, "shop_name")?)))
            .collect()
    }

    pub async fn seller(&self, id: i64) -> Result<Seller> {
        let r = sqlx::query(
            "SELECT s.id, s.user_id, s.shop_name, s.place_id, pl.name AS place_name, s.journey_level, s.women_led \
             FROM sellers s JOIN places pl ON pl.id = s.place_id WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("seller"))?;
        Ok(Seller {
            id: row_i64(&r, "id")?,
            user_id: row_i64(&r, "user_id")?,
            shop_name: row_str(&r, "shop_name")?,
            place_id: row_i64(&r, "place_id")?,
            place_name: row_str(&r, "place_name")?,
            journey_level: row_i64(&r, "journey_level")?,
            women_led: row_i64(&r, "women_led")? == 1,
        })
    }

    pub async fn create_product(&self, seller_id: i64, p: &ProductInput) -> Result<i64> {
        p.check()?;
        let currency = self.currency().await?;
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO products (seller_id, category_id, name_en, name_es, name_bn, name_sw, description, price_minor, currency, stock, created_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id",
        )
        .bind(seller_id)
        .bind(p.category_id)
        .bind(p.name_en.trim().to_string())
        .bind(p.name_es.clone().filter(|s| !s.trim().is_empty()))
        .bind(p.name_bn.clone().filter(|s| !s.trim().is_empty()))
        .bind(p.name_sw.clone().filter(|s| !s.trim().is_empty()))
        .bind(p.description.clone())
        .bind(p.price_minor)
        .bind(currency.as_str().to_string())
        .bind(p.stock)
        .bind(self.now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::invalid("err-unknown-category"),
            e => e.into(),
        })?;
        let id = row_i64(&r, "id")?;
        let shop = shop_name_in(&mut tx, seller_id).await?;
        crate::search::index_in(&mut tx, self.backend, id, None, &p.doc(&shop), true).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Update a product; `seller_id` must own it (a seller can never touch another's listing).
    /// A seller's edit. `stock_seen` is the stock the edit form showed: the change applies only
    /// if stock is still that (units sold meanwhile are not sold twice); otherwise nothing is
    /// saved and the seller is told what it is now. `None` sets stock outright (imports).
    pub async fn update_product(
        &self,
        seller_id: i64,
        product_id: i64,
        p: &ProductInput,
        stock_seen: Option<i64>,
    ) -> Result<()> {
        p.check()?;
        let mut tx = self.begin_write().await?;
        // Its words before (the search counts take them away), locked first so two edits at
        // once take them away once.
        sqlx::query("UPDATE products SET active = active WHERE id = $1 AND seller_id = $2")
            .bind(product_id)
            .bind(seller_id)
            .execute(&mut *tx)
            .await?;
        let before = sqlx::query(crate::sql(format!(
            "{LISTING_WORDS} WHERE p.id = $1 AND p.seller_id = $2"
        )))
        .bind(product_id)
        .bind(seller_id)
        .fetch_optional(&mut *tx)
        .await?;
        let active = match &before {
            Some(r) => row_i64(r, "active")? == 1,
            None => false,
        };
        let old = match &before {
            Some(r) if active => Some(crate::search::Doc::from_row(r)?),
            _ => None,
        };
        let n = sqlx::query(
            "UPDATE products SET category_id=$1, name_en=$2, name_es=$3, name_bn=$4, name_sw=$5, description=$6, price_minor=$7, stock=$8 \
             WHERE id=$9 AND seller_id=$10 AND ($11 = 0 OR stock = $12)",
        )
        .bind(p.category_id)
        .bind(p.name_en.trim().to_string())
        .bind(p.name_es.clone().filter(|s| !s.trim().is_empty()))
        .bind(p.name_bn.clone().filter(|s| !s.trim().is_empty()))
        .bind(p.name_sw.clone().filter(|s| !s.trim().is_empty()))
        .bind(p.description.clone())
        .bind(p.price_minor)
        .bind(p.stock)
        .bind(product_id)
        .bind(seller_id)
        .bind(i64::from(stock_seen.is_some()))
        .bind(stock_seen.unwrap_or(0))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            let now = sqlx::query("SELECT stock FROM products WHERE id = $1 AND seller_id = $2")
                .bind(product_id)
                .bind(seller_id)
                .fetch_optional(&mut *tx)
                .await?;
            return Err(match now {
                Some(r) => StoreError::Conflict(
                    Msg::new("err-stock-moved")
                        .arg("seen", stock_seen.unwrap_or(0))
                        .arg("now", row_i64(&r, "stock")?),
                ),
                None => StoreError::NotFound("product"),
            });
        }
        let shop = shop_name_in(&mut tx, seller_id).await?;
        crate::search::index_in(
            &mut tx,
            self.backend,
            product_id,
            old.as_ref(),
            &p.doc(&shop),
            active,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn product(&self, id: i64) -> Result<Product> {
        let q = format!("SELECT {PRODUCT_COLS} {PRODUCT_FROM} WHERE p.id = $1");
        let r = sqlx::query(crate::sql(q))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        product_from(&r.ok_or(StoreError::NotFound("product"))?)
    }

    pub async fn set_product_photo(
        &self,
        seller_id: i64,
        product_id: i64,
        photo: &crate::images::Photo,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let owned = sqlx::query("SELECT id FROM products WHERE id = $1 AND seller_id = $2")
            .bind(product_id)
            .bind(seller_id)
            .fetch_optional(&mut *tx)
            .await?;
        if owned.is_none() {
            return Err(StoreError::NotFound("product"));
        }
        let id = photo_in(&mut tx, photo).await?;
        sqlx::query("UPDATE products SET photo_id = $1 WHERE id = $2")
            .bind(id)
            .bind(product_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn photo(&self, id: i64) -> Result<(Vec<u8>, String)> {
        use sqlx::Row;
        let r = sqlx::query("SELECT bytes, content_type FROM photos WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("photo"))?;
        Ok((
            r.try_get::<Vec<u8>, _>("bytes")?,
            row_str(&r, "content_type")?,
        ))
    }

    // ---- cart (keyed by session, so it lives in the database for every server) ----

    pub async fn cart_set(&self, session: &str, product_id: i64, quantity: i64) -> Result<()> {
        if !(0..=999).contains(&quantity) {
            return Err(StoreError::invalid("err-quantity"));
        }
        let p = self.product(product_id).await?;
        if !p.active {
            return Err(StoreError::invalid("err-not-sold"));
        }
        if quantity == 0 {
            sqlx::query("DELETE FROM cart_lines WHERE session_id = $1 AND product_id = $2")
                .bind(session.to_string())
                .bind(product_id)
                .execute(&self.write)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO cart_lines (session_id, product_id, quantity) VALUES ($1,$2,$3) \
                 ON CONFLICT (session_id, product_id) DO UPDATE SET quantity = excluded.quantity",
            )
            .bind(session.to_string())
            .bind(product_id)
            .bind(quantity)
            .execute(&self.write)
            .await?;
        }
        Ok(())
    }

    pub async fn cart_add(&self, session: &str, product_id: i64, quantity: i64) -> Result<()> {
        let cur = sqlx::query(
            "SELECT quantity FROM cart_lines WHERE session_id = $1 AND product_id = $2",
        )
        .bind(session.to_string())
        .bind(product_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| row_i64(&r, "quantity"))
        .transpose()?
        .unwrap_or(0);
        self.cart_set(session, product_id, (cur + quantity).min(999))
            .await
    }

    /// How many lines the cart has (shown on every page: one cheap query).
    pub async fn cart_count(&self, session: &str) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM cart_lines WHERE session_id = $1")
            .bind(session.to_string())
            .fetch_one(&self.pool)
            .await?;
        row_i64(&r, "n")
    }

    pub async fn cart(&self, session: &str) -> Result<Vec<CartLine>> {
        let q = format!(
            "SELECT {PRODUCT_COLS}, c.quantity AS quantity FROM cart_lines c JOIN products p ON p.id = c.product_id \
             JOIN sellers s ON s.id = p.seller_id JOIN places pl ON pl.id = s.place_id WHERE c.session_id = $1 ORDER BY p.seller_id, p.id"
        );
        let rows = sqlx::query(crate::sql(q))
            .bind(session.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CartLine {
                    product: product_from(r)?,
                    quantity: row_i64(r, "quantity")?,
                })
            })
            .collect()
    }
}

/// Put stock back on the shelf (an order cancelled or returned): (product, quantity).
pub async fn restore_stock_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    lines: &[(i64, i64)],
) -> Result<()> {
    for (product, qty) in lines {
        sqlx::query("UPDATE products SET stock = stock + $1 WHERE id = $2")
            .bind(*qty)
            .bind(*product)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Take stock for a checkout line and read its price, in one guarded statement: None when
/// there is not enough (or it is not sold), and nothing changed.
pub async fn take_stock_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    product: i64,
    qty: i64,
) -> Result<Option<(i64, Money, i64)>> {
    let taken = sqlx::query(
        "UPDATE products SET stock = stock - $1 WHERE id = $2 AND stock >= $3 AND active = 1 \
         RETURNING seller_id, price_minor, currency, stock",
    )
    .bind(qty)
    .bind(product)
    .bind(qty)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = taken else { return Ok(None) };
    let currency = Currency::parse(&row_str(&r, "currency")?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some((
        row_i64(&r, "seller_id")?,
        Money::new(row_i64(&r, "price_minor")?, currency),
        row_i64(&r, "stock")?,
    )))
}

/// Why a product could not be taken: (stock, sold at all).
pub async fn stock_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    product: i64,
) -> Result<(i64, bool)> {
    let why = sqlx::query("SELECT stock, active FROM products WHERE id = $1")
        .bind(product)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("product"))?;
    Ok((row_i64(&why, "stock")?, row_i64(&why, "active")? == 1))
}

/// Empty a visitor's cart (after their checkout).
pub async fn empty_cart_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    session: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM cart_lines WHERE session_id = $1")
        .bind(session.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Store a prepared photo; its id.
async fn photo_in(tx: &mut Transaction<'static, Any>, photo: &crate::images::Photo) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO photos (bytes, content_type, width, height) VALUES ($1,$2,$3,$4) RETURNING id",
    )
    .bind(photo.bytes.clone())
    .bind(photo.content_type.to_string())
    .bind(photo.width as i64)
    .bind(photo.height as i64)
    .fetch_one(&mut **tx)
    .await?;
    row_i64(&r, "id")
}

/// The columns a listing's words are made from ([`crate::search::Doc::from_row`]), with its
/// seller and SKU.
const LISTING_WORDS: &str = "SELECT p.seller_id, p.sku, p.active, p.name_en, p.name_es, p.name_bn, p.name_sw, p.description, s.shop_name \
     FROM products p JOIN sellers s ON s.id = p.seller_id";

/// The words of the active listings among (seller, SKU) pairs, before an import changes them,
/// each row locked first (two writers at once take the old words away once).
async fn words_before_in(
    tx: &mut Transaction<'static, Any>,
    keys: &[(i64, &str)],
) -> Result<Vec<crate::search::Doc>> {
    let mut out = Vec::new();
    for chunk in keys.chunks(crate::db::rows_per_statement(tx, 2, 400)) {
        let pairs: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        let cond = |p: &str| format!("({p}seller_id, {p}sku) IN (VALUES {})", pairs.join(","));
        let bind = |sql: String| {
            let mut q = sqlx::query(crate::sql(sql));
            for (seller, sku) in chunk {
                q = q.bind(*seller).bind(sku.to_string());
            }
            q
        };
        bind(format!(
            "UPDATE products SET active = active WHERE {}",
            cond("")
        ))
        .execute(&mut **tx)
        .await?;
        for r in bind(format!(
            "{LISTING_WORDS} WHERE p.active = 1 AND {}",
            cond("p.")
        ))
        .fetch_all(&mut **tx)
        .await?
        {
            out.push(crate::search::Doc::from_row(&r)?);
        }
    }
    Ok(out)
}

async fn shop_name_in(tx: &mut Transaction<'static, Any>, seller_id: i64) -> Result<String> {
    let r = sqlx::query("SELECT shop_name FROM sellers WHERE id = $1")
        .bind(seller_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("seller"))?;
    row_str(&r, "shop_name")
}

/// One listing of an import, checked, with its seller and category found.
#[derive(Debug, Clone)]
pub struct Listing {
    pub seller_id: i64,
    pub shop_name: String,
    pub sku: String,
    pub input: ProductInput,
    /// A photo, prepared: it replaces the listing's photo.
    pub photo: Option<crate::images::Photo>,
}

/// Rows per statement of an import on PostgreSQL (SQLite: see `rows_per_statement`).
const UPSERT_ROWS: usize = 200;

impl Db {
    /// Add or update a batch of listings in one transaction: a seller's SKU is one listing, so
    /// importing a file again updates instead of duplicating. Each is indexed for search in the
    /// same transaction. Returns each listing's product id, in order. A batch must not name
    /// one seller's SKU twice (the caller splits batches there).
    pub async fn upsert_listings(&self, batch: &[Listing]) -> Result<Vec<i64>> {
        for l in batch {
            l.input.check()?;
        }
        let currency = self.currency().await?;
        let now = self.now_ms();
        let pg = self.backend == crate::Backend::Postgres;
        let docs: Vec<crate::search::Doc> =
            batch.iter().map(|l| l.input.doc(&l.shop_name)).collect();
        let mut tx = self.begin_write().await?;
        // One import at a time across servers: a SKU two imports add at once would otherwise
        // be counted in search twice (neither saw the other's words to take away).
        crate::db::lock_marker_in(&mut tx, "catalogue_import").await?;
        let mut ids: std::collections::HashMap<(i64, String), i64> =
            std::collections::HashMap::new();
        let per = if pg { 13 } else { 12 };
        let rows = crate::db::rows_per_statement(&tx, per, UPSERT_ROWS);
        let rows_of = |chunk: &[(&Listing, &crate::search::Doc)], update: bool| {
            let values: Vec<String> = (0..chunk.len())
                .map(|r| {
                    let ps: Vec<String> = (1..=per).map(|k| format!("${}", r * per + k)).collect();
                    if pg {
                        format!(
                            "({}, CAST({} AS tsvector))",
                            ps[..per - 1].join(","),
                            ps[per - 1]
                        )
                    } else {
                        format!("({})", ps.join(","))
                    }
                })
                .collect();
            let conflict = if !update {
                "DO NOTHING".to_string()
            } else {
                format!(
                    "DO UPDATE SET category_id = excluded.category_id, name_en = excluded.name_en, \
                     name_es = excluded.name_es, name_bn = excluded.name_bn, name_sw = excluded.name_sw, description = excluded.description, \
                     price_minor = excluded.price_minor, stock = excluded.stock, active = 1{}",
                    if pg {
                        ", search_doc = excluded.search_doc"
                    } else {
                        ""
                    }
                )
            };
            let sql = format!(
                "INSERT INTO products (seller_id, sku, category_id, name_en, name_es, name_bn, name_sw, description, price_minor, currency, stock, created_at{}) \
                 VALUES {} ON CONFLICT (seller_id, sku) {conflict} RETURNING id, seller_id, sku",
                if pg { ", search_doc" } else { "" },
                values.join(","),
            );
            let mut q = sqlx::query(crate::sql(sql));
            let opt = |v: &Option<String>| {
                v.clone()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            };
            for (l, d) in chunk {
                let p = &l.input;
                q = q
                    .bind(l.seller_id)
                    .bind(l.sku.clone())
                    .bind(p.category_id)
                    .bind(p.name_en.trim().to_string())
                    .bind(opt(&p.name_es))
                    .bind(opt(&p.name_bn))
                    .bind(opt(&p.name_sw))
                    .bind(p.description.clone())
                    .bind(p.price_minor)
                    .bind(currency.as_str().to_string())
                    .bind(p.stock)
                    .bind(now);
                if pg {
                    q = q.bind(d.tsvector());
                }
            }
            q
        };
        let unknown_category = |e: sqlx::Error| match e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                StoreError::invalid("err-unknown-category")
            }
            e => e.into(),
        };
        let all: Vec<(&Listing, &crate::search::Doc)> = batch.iter().zip(&docs).collect();
        // New SKUs are added; those already listed are updated after their words are read
        // (search takes them away from its counts). A first import reads nothing more.
        let mut listed: Vec<(&Listing, &crate::search::Doc)> = Vec::new();
        for chunk in all.chunks(rows) {
            let added = rows_of(chunk, false)
                .fetch_all(&mut *tx)
                .await
                .map_err(unknown_category)?;
            for r in &added {
                ids.insert(
                    (row_i64(r, "seller_id")?, row_str(r, "sku")?),
                    row_i64(r, "id")?,
                );
            }
            listed.extend(
                chunk
                    .iter()
                    .filter(|(l, _)| !ids.contains_key(&(l.seller_id, l.sku.clone()))),
            );
        }
        let keys: Vec<(i64, &str)> = listed
            .iter()
            .map(|(l, _)| (l.seller_id, l.sku.as_str()))
            .collect();
        let before = words_before_in(&mut tx, &keys).await?;
        for chunk in listed.chunks(rows) {
            for r in &rows_of(chunk, true)
                .fetch_all(&mut *tx)
                .await
                .map_err(unknown_category)?
            {
                ids.insert(
                    (row_i64(r, "seller_id")?, row_str(r, "sku")?),
                    row_i64(r, "id")?,
                );
            }
        }
        let ids: Vec<i64> = batch
            .iter()
            .map(|l| {
                ids.get(&(l.seller_id, l.sku.clone()))
                    .copied()
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("no row came back for SKU {}", l.sku))
                    })
            })
            .collect::<Result<_>>()?;
        if !pg {
            crate::search::fts_rows_in(&mut tx, &ids, &docs).await?;
        }
        for (l, id) in batch.iter().zip(&ids) {
            if let Some(photo) = &l.photo {
                let photo_id = photo_in(&mut tx, photo).await?;
                sqlx::query("UPDATE products SET photo_id = $1 WHERE id = $2")
                    .bind(photo_id)
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let docs: Vec<&crate::search::Doc> = docs.iter().collect();
        let before: Vec<&crate::search::Doc> = before.iter().collect();
        crate::search::vocab_in(&mut tx, &before, &docs).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Bring the planner's statistics up to date after a bulk change (a large import), so
    /// PostgreSQL and SQLite choose their plans for the catalogue as it now is.
    pub async fn refresh_statistics(&self) -> Result<()> {
        let sql = match self.backend {
            crate::Backend::Postgres => "ANALYZE",
            crate::Backend::Sqlite => "PRAGMA optimize",
        };
        sqlx::query(sql).execute(&self.write).await?;
        if self.backend == crate::Backend::Postgres {
            // Merge the search index's pending entries now: until then every search reads
            // them one by one.
            sqlx::query("SELECT gin_clean_pending_list(CAST('products_search' AS regclass)) AS n")
                .fetch_one(&self.write)
                .await?;
        }
        Ok(())
    }

    /// How many listings there are (imports say how many they added).
    pub async fn product_count(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM products")
            .fetch_one(&self.pool)
            .await?;
        row_i64(&r, "n")
    }

    /// Sellers by their phone (E.164), with their shop's name: for imports.
    pub async fn seller_by_phone(&self, phone: &str) -> Result<Option<(i64, String)>> {
        let r = sqlx::query(
            "SELECT s.id, s.shop_name FROM sellers s JOIN users u ON u.id = s.user_id WHERE u.phone = $1",
        )
        .bind(phone.to_string())
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| Ok((row_i64(&r, "id")?, row_str(&r, "shop_name")?)))
            .transpose()
    }
}
