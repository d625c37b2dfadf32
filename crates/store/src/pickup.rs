//! Pickup points and lockers (carrier-agnostic): digital centres, neighbourhood stores, fuel
//! stations, lockers. Each has slots, opening hours, a hold period and a handling fee. Only
//! points with a free slot are offered, nearest first. The operator checks parcels in; the
//! hand-over against the buyer's one-time code is the proof of delivery; a parcel left past the
//! hold period goes back with a refund (a job scheduled at check-in).

use crate::orders::Order;
use crate::users::{Grant, GrantScope, Role, User};
use crate::{Db, Msg, Result, StoreError, row_i64, row_opt_i64, row_str};
use sqlx::Row;
use tianguis_domain::process::OrderState;

pub use tianguis_domain::kinds::PointKind;

/// Every kind a point may be, as its word.
pub const KINDS: &[&str] = &["centre", "store", "fuel_station", "locker"];

#[derive(Debug, Clone)]
pub struct PickupPoint {
    pub id: i64,
    pub name: String,
    pub kind: PointKind,
    pub place_id: i64,
    pub location: (f64, f64),
    pub plus_code: String,
    pub slots: i64,
    pub hours: String,
    pub hold_days: i64,
    pub fee_minor: i64,
    pub operator_id: Option<i64>,
    pub contact: String,
    /// Parcels booked or held now.
    pub used: i64,
    /// Metres from the reference location, when there is one.
    pub distance_m: Option<f64>,
}

impl PickupPoint {
    pub fn has_room(&self) -> bool {
        self.used < self.slots
    }
}

#[derive(Debug, Clone)]
pub struct NewPickupPoint {
    pub name: String,
    pub kind: String,
    pub place_id: i64,
    pub location: (f64, f64),
    pub slots: i64,
    pub hours: String,
    pub hold_days: i64,
    pub fee_minor: i64,
    pub operator_phone: Option<String>,
    /// How to reach the point (a phone, the person in charge).
    pub contact: String,
}

/// States in which an order occupies (or has booked) a slot at its point.
const OCCUPYING: &str = "('placed', 'paid', 'accepted', 'packed', 'shipped')";

fn point_from(r: &sqlx::any::AnyRow) -> Result<PickupPoint> {
    Ok(PickupPoint {
        id: row_i64(r, "id")?,
        name: row_str(r, "name")?,
        kind: {
            let k = row_str(r, "kind")?;
            PointKind::parse(&k).ok_or_else(|| StoreError::Corrupt(format!("point kind {k}")))?
        },
        place_id: row_i64(r, "place_id")?,
        location: (r.try_get::<f64, _>("lat")?, r.try_get::<f64, _>("lng")?),
        plus_code: row_str(r, "plus_code")?,
        slots: row_i64(r, "slots")?,
        hours: row_str(r, "hours")?,
        hold_days: row_i64(r, "hold_days")?,
        fee_minor: row_i64(r, "fee_minor")?,
        operator_id: row_opt_i64(r, "operator_id")?,
        contact: row_str(r, "contact")?,
        used: row_i64(r, "used")?,
        distance_m: None,
    })
}

/// Book a slot at a point inside a write transaction: the point's row is locked (a no-op
/// update) so two bookings cannot take its last slot.
pub async fn take_slot(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    point: i64,
    slots: i64,
) -> Result<()> {
    sqlx::query("UPDATE pickup_points SET slots = slots WHERE id = $1")
        .bind(point)
        .execute(&mut **tx)
        .await?;
    let used = sqlx::query(crate::sql(format!(
        "SELECT COUNT(*) AS n FROM orders WHERE pickup_point_id = $1 AND state IN {OCCUPYING}"
    )))
    .bind(point)
    .fetch_one(&mut **tx)
    .await?;
    if row_i64(&used, "n")? >= slots {
        return Err(StoreError::Conflict(Msg::new("err-pickup-full")));
    }
    Ok(())
}

/// Record a parcel's arrival at its point (guarded: once, while shipped).
pub async fn check_in_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    order_id: i64,
    now: i64,
) -> Result<()> {
    let n = sqlx::query("UPDATE orders SET checked_in_at = $1 WHERE id = $2 AND checked_in_at IS NULL AND state = 'shipped'")
        .bind(now)
        .bind(order_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::Conflict(Msg::new("err-order-changed")));
    }
    Ok(())
}

impl Db {
    pub async fn create_pickup_point(&self, p: &NewPickupPoint) -> Result<i64> {
        if p.name.trim().is_empty() || p.name.chars().count() > 120 {
            return Err(StoreError::invalid("err-place-name"));
        }
        if PointKind::parse(&p.kind).is_none() {
            return Err(StoreError::invalid("err-pickup-kind"));
        }
        if !(1..=10_000).contains(&p.slots) || !(1..=60).contains(&p.hold_days) || p.fee_minor < 0 {
            return Err(StoreError::invalid("err-pickup-numbers"));
        }
        let code = tianguis_geo::PlusCode::encode(p.location.0, p.location.1, 10)
            .map_err(|_| StoreError::invalid("err-coordinates"))?;
        let operator = match p.operator_phone.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(phone) => Some(self.user_by_phone(phone).await?),
            None => None,
        };
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO pickup_points (name, kind, place_id, lat, lng, plus_code, slots, hours, hold_days, fee_minor, operator_id, created_at, contact) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING id",
        )
        .bind(p.name.trim().to_string())
        .bind(p.kind.clone())
        .bind(p.place_id)
        .bind(p.location.0)
        .bind(p.location.1)
        .bind(code.to_string())
        .bind(p.slots)
        .bind(p.hours.trim().to_string())
        .bind(p.hold_days)
        .bind(p.fee_minor)
        .bind(operator.as_ref().map(|o| o.id))
        .bind(now)
        .bind(p.contact.trim().chars().take(200).collect::<String>())
        .fetch_one(&mut *tx)
        .await?;
        let id = row_i64(&r, "id")?;
        if let Some(op) = &operator {
            let g = Grant::new(
                Role::Operator,
                GrantScope::Point(tianguis_domain::ids::PointId(id)),
            )
            .map_err(crate::denied)?;
            crate::users::grant_in(&mut tx, None, op.id, g, now).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Every active point with its occupancy.
    pub async fn pickup_points(&self) -> Result<Vec<PickupPoint>> {
        let q = format!(
            "SELECT p.*, (SELECT COUNT(*) FROM orders o WHERE o.pickup_point_id = p.id AND o.state IN {OCCUPYING}) AS used \
             FROM pickup_points p WHERE p.active = 1 ORDER BY p.id"
        );
        sqlx::query(crate::sql(q))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(point_from)
            .collect()
    }

    pub async fn pickup_point(&self, id: i64) -> Result<PickupPoint> {
        self.pickup_points()
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or(StoreError::NotFound("pickup point"))
    }

    /// Points with a free slot, nearest to the buyer's place first.
    pub async fn pickup_points_for(&self, buyer_id: i64) -> Result<Vec<PickupPoint>> {
        let places = self.places().await?;
        let reference = self.home_location(buyer_id, &places).await?;
        let mut points: Vec<PickupPoint> = self
            .pickup_points()
            .await?
            .into_iter()
            .filter(PickupPoint::has_room)
            .collect();
        if let Some(r) = reference {
            for p in &mut points {
                p.distance_m = Some(tianguis_geo::haversine_m(r, p.location));
            }
            points.sort_by(|a, b| {
                a.distance_m
                    .unwrap_or(0.0)
                    .total_cmp(&b.distance_m.unwrap_or(0.0))
            });
        }
        Ok(points)
    }

    /// Parcels on their way to, and held at, the points this operator runs.
    pub async fn pickup_parcels(&self, user: &User) -> Result<(Vec<Order>, Vec<Order>)> {
        let mine: Vec<i64> = self
            .pickup_points()
            .await?
            .into_iter()
            .filter(|p| {
                user.person()
                    .serves_at(Some(tianguis_domain::ids::PointId(p.id)))
            })
            .map(|p| p.id)
            .collect();
        let mut expected = Vec::new();
        let mut held = Vec::new();
        for o in self.all_orders(Some(OrderState::Shipped), 500).await? {
            if o.pickup_point_id.is_some_and(|p| mine.contains(&p)) {
                if o.checked_in_at.is_some() {
                    held.push(o)
                } else {
                    expected.push(o)
                }
            }
        }
        Ok((expected, held))
    }
}
