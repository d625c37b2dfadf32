//! The courier pool: carriers, delivery jobs and route plans. A packed order gets a delivery
//! job (the `OfferDelivery` effect, in the packing transaction); carriers whose working area and
//! spare capacity fit see it offered and one accepts it under a guarded update; the job's moves
//! are decided by `tianguis_domain::delivery::job_step`. Picking up ships the order (the buyer's
//! code is issued); the code given at the door, or the pickup point's check-in, delivers it.
//! Route plans are queued here, solved by a worker (`tianguis-web`), and their stops kept for
//! the printable route sheet.

use crate::users::{Role, User};
use crate::{Db, Msg, Result, StoreError, row_i64, row_opt_i64, row_opt_str, row_str};
use sqlx::{Any, Row, Transaction as DbTx};
use tianguis_domain::delivery::{self as rules, Area, Job, JobAction, JobState};
use tianguis_domain::process::{Actor, OrderState};
use tianguis_geo::PlusCode;

pub const CARRIER_KINDS: &[&str] = &["post_office", "courier", "motorbike", "bicycle"];

#[derive(Debug, Clone)]
pub struct Carrier {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub kind: String,
    pub phone: String,
    /// Parcels the vehicle carries at once.
    pub capacity: i64,
    pub base: (f64, f64),
    pub base_plus_code: String,
    pub radius_km: i64,
    pub shift_start_min: i64,
    pub shift_end_min: i64,
    pub speed_kmh: i64,
    pub active: bool,
    /// Parcels of the jobs the carrier holds now.
    pub held: i64,
}

impl Carrier {
    pub fn area(&self) -> Area {
        Area {
            base: self.base,
            radius_m: self.radius_km as f64 * 1000.0,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewCarrier {
    pub name: String,
    pub kind: String,
    pub capacity: i64,
    /// A plus code (full, or short with a place name); empty: the person's own place.
    pub base: String,
    pub radius_km: i64,
    pub shift_start_min: i64,
    pub shift_end_min: i64,
    pub speed_kmh: i64,
}

#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub id: i64,
    pub order_id: i64,
    pub state: JobState,
    pub order_state: OrderState,
    pub carrier_id: Option<i64>,
    pub carrier_name: Option<String>,
    pub parcels: i64,
    pub attempts: i64,
    pub pickup: (f64, f64),
    pub pickup_plus_code: String,
    pub shop_name: String,
    pub seller_phone: String,
    pub drop: (f64, f64),
    pub drop_plus_code: String,
    pub buyer_name: String,
    pub buyer_phone: String,
    /// The address as the buyer wrote it (landmarks live here).
    pub address: String,
    pub pickup_point_id: Option<i64>,
    pub pickup_point_name: Option<String>,
    pub pickup_point_hours: Option<String>,
    /// Cash the carrier collects at the door (cash on delivery, not via a pickup point).
    pub cash_minor: i64,
    pub currency: String,
    pub last_failure: Option<String>,
    pub updated_at: i64,
}

impl DeliveryJob {
    pub fn rules(&self) -> Job {
        Job {
            state: self.state,
            attempts: self.attempts,
            to_point: self.pickup_point_id.is_some(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobEvent {
    pub action: String,
    pub from_state: String,
    pub to_state: String,
    pub reason: String,
    pub user_id: Option<i64>,
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct RoutePlan {
    pub id: i64,
    pub carrier_id: i64,
    pub carrier_name: String,
    pub day: String,
    /// queued, running, done, failed
    pub status: String,
    pub budget_ms: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub distance_m: Option<i64>,
    pub end_min: Option<i64>,
    /// Jobs the plan could not fit (capacity, shift).
    pub unassigned: Vec<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct RouteStop {
    pub seq: i64,
    /// pickup or drop
    pub kind: String,
    pub arrival_min: i64,
    pub departure_min: i64,
    pub job: DeliveryJob,
}

/// A solved stop, for [`Db::finish_route_plan`].
#[derive(Debug, Clone)]
pub struct SolvedStop {
    pub job_id: i64,
    pub pickup: bool,
    pub arrival_min: i64,
    pub departure_min: i64,
}

const CARRIER_SELECT: &str = "SELECT cr.*, u.phone, \
    (SELECT CAST(COALESCE(SUM(j.parcels), 0) AS BIGINT) FROM delivery_jobs j WHERE j.carrier_id = cr.id AND j.state IN ('accepted', 'picked_up', 'out_for_delivery', 'failed')) AS held \
    FROM carriers cr JOIN users u ON u.id = cr.user_id";

const JOB_SELECT: &str = "SELECT j.id, j.order_id, j.state, o.state AS order_state, j.carrier_id, cr.name AS carrier_name, \
    j.parcels, j.attempts, j.pickup_lat, j.pickup_lng, j.drop_lat, j.drop_lng, s.shop_name, su.phone AS seller_phone, \
    bu.name AS buyer_name, c.phone AS buyer_phone, c.address, c.plus_code, c.method, o.total_minor, o.currency, \
    o.pickup_point_id, pp.name AS point_name, pp.hours AS point_hours, pp.plus_code AS point_plus_code, j.updated_at, \
    (SELECT e.reason FROM delivery_events e WHERE e.job_id = j.id AND e.action = 'fail' ORDER BY e.id DESC LIMIT 1) AS last_failure \
    FROM delivery_jobs j JOIN orders o ON o.id = j.order_id JOIN checkouts c ON c.id = o.checkout_id \
    JOIN sellers s ON s.id = o.seller_id JOIN users su ON su.id = s.user_id JOIN users bu ON bu.id = o.buyer_id \
    LEFT JOIN carriers cr ON cr.id = j.carrier_id LEFT JOIN pickup_points pp ON pp.id = o.pickup_point_id";

const HELD: &str = "('accepted', 'picked_up', 'out_for_delivery', 'failed')";

fn carrier_from(r: &sqlx::any::AnyRow) -> Result<Carrier> {
    Ok(Carrier {
        id: row_i64(r, "id")?,
        user_id: row_i64(r, "user_id")?,
        name: row_str(r, "name")?,
        kind: row_str(r, "kind")?,
        phone: row_str(r, "phone")?,
        capacity: row_i64(r, "capacity")?,
        base: (r.try_get("base_lat")?, r.try_get("base_lng")?),
        base_plus_code: row_str(r, "base_plus_code")?,
        radius_km: row_i64(r, "radius_km")?,
        shift_start_min: row_i64(r, "shift_start_min")?,
        shift_end_min: row_i64(r, "shift_end_min")?,
        speed_kmh: row_i64(r, "speed_kmh")?,
        active: row_i64(r, "active")? == 1,
        held: row_i64(r, "held")?,
    })
}

fn code_of(p: (f64, f64)) -> String {
    PlusCode::encode(p.0, p.1, 10)
        .map(|c| c.to_string())
        .unwrap_or_default()
}

fn job_from(r: &sqlx::any::AnyRow) -> Result<DeliveryJob> {
    let state = row_str(r, "state")?;
    let order_state = row_str(r, "order_state")?;
    let pickup = (r.try_get("pickup_lat")?, r.try_get("pickup_lng")?);
    let drop = (r.try_get("drop_lat")?, r.try_get("drop_lng")?);
    let point_id = row_opt_i64(r, "pickup_point_id")?;
    let on_delivery =
        row_str(r, "method")? == crate::orders::PaymentMethod::CashOnDelivery.as_str();
    let order_state = OrderState::parse(&order_state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown order state {order_state}")))?;
    let collect = on_delivery
        && point_id.is_none()
        && !matches!(order_state, OrderState::Delivered | OrderState::Completed);
    let drop_plus_code = match point_id {
        Some(_) => row_opt_str(r, "point_plus_code")?,
        None => row_opt_str(r, "plus_code")?,
    }
    .unwrap_or_else(|| code_of(drop));
    Ok(DeliveryJob {
        id: row_i64(r, "id")?,
        order_id: row_i64(r, "order_id")?,
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown job state {state}")))?,
        order_state,
        carrier_id: row_opt_i64(r, "carrier_id")?,
        carrier_name: row_opt_str(r, "carrier_name")?,
        parcels: row_i64(r, "parcels")?,
        attempts: row_i64(r, "attempts")?,
        pickup,
        pickup_plus_code: code_of(pickup),
        shop_name: row_str(r, "shop_name")?,
        seller_phone: row_str(r, "seller_phone")?,
        drop,
        drop_plus_code,
        buyer_name: row_str(r, "buyer_name")?,
        buyer_phone: row_str(r, "buyer_phone")?,
        address: row_str(r, "address")?,
        pickup_point_id: point_id,
        pickup_point_name: row_opt_str(r, "point_name")?,
        pickup_point_hours: row_opt_str(r, "point_hours")?,
        cash_minor: if collect {
            row_i64(r, "total_minor")?
        } else {
            0
        },
        currency: row_str(r, "currency")?,
        last_failure: row_opt_str(r, "last_failure")?,
        updated_at: row_i64(r, "updated_at")?,
    })
}

fn plan_from(r: &sqlx::any::AnyRow) -> Result<RoutePlan> {
    Ok(RoutePlan {
        id: row_i64(r, "id")?,
        carrier_id: row_i64(r, "carrier_id")?,
        carrier_name: row_str(r, "carrier_name")?,
        day: row_str(r, "day")?,
        status: row_str(r, "status")?,
        budget_ms: row_i64(r, "budget_ms")?,
        started_at: row_opt_i64(r, "started_at")?,
        finished_at: row_opt_i64(r, "finished_at")?,
        distance_m: row_opt_i64(r, "distance_m")?,
        end_min: row_opt_i64(r, "end_min")?,
        unassigned: row_str(r, "unassigned")?
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        created_at: row_i64(r, "created_at")?,
    })
}

const PLAN_SELECT: &str = "SELECT p.*, cr.name AS carrier_name FROM route_plans p JOIN carriers cr ON cr.id = p.carrier_id";

/// A job's rules-facts inside a transaction: (job id, order id, facts), by `cond` on `j`
/// (`j.id = $1` or `j.order_id = $1`).
pub async fn job_facts(
    tx: &mut DbTx<'static, Any>,
    cond: &str,
    id: i64,
) -> Result<Option<(i64, i64, Job)>> {
    let q = format!(
        "SELECT j.id, j.state, j.attempts, j.order_id, o.pickup_point_id FROM delivery_jobs j JOIN orders o ON o.id = j.order_id WHERE {cond}"
    );
    let Some(r) = sqlx::query(crate::sql(q))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let state = row_str(&r, "state")?;
    let job = Job {
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown job state {state}")))?,
        attempts: row_i64(&r, "attempts")?,
        to_point: row_opt_i64(&r, "pickup_point_id")?.is_some(),
    };
    Ok(Some((row_i64(&r, "id")?, row_i64(&r, "order_id")?, job)))
}

/// Move a job, guarded on its state, and record the event. The one place job rows change state.
pub async fn move_job(
    tx: &mut DbTx<'static, Any>,
    job_id: i64,
    job: Job,
    action: JobAction,
    user: Option<i64>,
    reason: &str,
    now: i64,
) -> Result<JobState> {
    let to = rules::job_step(job, action).map_err(|e| StoreError::Conflict(e.msg()))?;
    let failed = i64::from(action == JobAction::Fail);
    let n = sqlx::query("UPDATE delivery_jobs SET state = $1, attempts = attempts + $2, updated_at = $3 WHERE id = $4 AND state = $5")
        .bind(to.as_str())
        .bind(failed)
        .bind(now)
        .bind(job_id)
        .bind(job.state.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::Conflict(Msg::new("err-job-changed")));
    }
    sqlx::query("INSERT INTO delivery_events (job_id, action, from_state, to_state, reason, user_id, at) VALUES ($1,$2,$3,$4,$5,$6,$7)")
        .bind(job_id)
        .bind(action.as_str())
        .bind(job.state.as_str())
        .bind(to.as_str())
        .bind(reason.chars().take(300).collect::<String>())
        .bind(user)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(to)
}

/// Who holds a job now, inside a transaction.
pub async fn holder_in(tx: &mut DbTx<'static, Any>, job_id: i64) -> Result<Option<i64>> {
    let r = sqlx::query("SELECT carrier_id FROM delivery_jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("delivery job"))?;
    row_opt_i64(&r, "carrier_id")
}

/// Lock a carrier's row and count the parcels it holds, inside the accepting transaction, so
/// two accepts at once cannot overfill the vehicle.
pub async fn lock_load_in(tx: &mut DbTx<'static, Any>, carrier_id: i64) -> Result<i64> {
    sqlx::query("UPDATE carriers SET capacity = capacity WHERE id = $1")
        .bind(carrier_id)
        .execute(&mut **tx)
        .await?;
    let held = sqlx::query(crate::sql(format!("SELECT CAST(COALESCE(SUM(parcels), 0) AS BIGINT) AS n FROM delivery_jobs WHERE carrier_id = $1 AND state IN {HELD}")))
        .bind(carrier_id)
        .fetch_one(&mut **tx)
        .await?;
    row_i64(&held, "n")
}

pub async fn assign_in(tx: &mut DbTx<'static, Any>, job_id: i64, carrier_id: i64) -> Result<()> {
    sqlx::query("UPDATE delivery_jobs SET carrier_id = $1 WHERE id = $2")
        .bind(carrier_id)
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A failed delivery goes to a pickup point instead: the order is addressed there and the
/// job's drop moves to it.
pub async fn redirect_in(
    tx: &mut DbTx<'static, Any>,
    job_id: i64,
    order_id: i64,
    point: &crate::pickup::PickupPoint,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE orders SET pickup_point_id = $1, updated_at = $2 WHERE id = $3 AND pickup_point_id IS NULL")
        .bind(point.id)
        .bind(now)
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE delivery_jobs SET drop_lat = $1, drop_lng = $2 WHERE id = $3")
        .bind(point.location.0)
        .bind(point.location.1)
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The `OfferDelivery` effect: a packed order becomes an open delivery job, from the seller's
/// place to the pickup point, the address's plus code, or the buyer's place.
pub async fn offer_delivery(tx: &mut DbTx<'static, Any>, order_id: i64, now: i64) -> Result<()> {
    let r = sqlx::query(
        "SELECT c.plus_code, pp.lat AS point_lat, pp.lng AS point_lng, \
         sp.lat AS seller_lat, sp.lng AS seller_lng, spp.lat AS seller_parent_lat, spp.lng AS seller_parent_lng, \
         bp.lat AS buyer_lat, bp.lng AS buyer_lng, bpp.lat AS buyer_parent_lat, bpp.lng AS buyer_parent_lng, \
         (SELECT CAST(SUM(l.quantity) AS BIGINT) FROM order_lines l WHERE l.order_id = o.id) AS parcels \
         FROM orders o JOIN checkouts c ON c.id = o.checkout_id JOIN sellers s ON s.id = o.seller_id \
         JOIN places sp ON sp.id = s.place_id LEFT JOIN places spp ON spp.id = sp.parent_id \
         JOIN users b ON b.id = o.buyer_id LEFT JOIN places bp ON bp.id = b.place_id LEFT JOIN places bpp ON bpp.id = bp.parent_id \
         LEFT JOIN pickup_points pp ON pp.id = o.pickup_point_id WHERE o.id = $1",
    )
    .bind(order_id)
    .fetch_one(&mut **tx)
    .await?;
    let at = |a: &str, b: &str| -> Result<Option<(f64, f64)>> {
        Ok(
            match (
                r.try_get::<Option<f64>, _>(a)?,
                r.try_get::<Option<f64>, _>(b)?,
            ) {
                (Some(x), Some(y)) => Some((x, y)),
                _ => None,
            },
        )
    };
    let coded = row_opt_str(&r, "plus_code")?
        .and_then(|c| PlusCode::parse(&c).ok())
        .and_then(|c| c.decode().ok())
        .map(|a| a.center());
    let seller = at("seller_lat", "seller_lng")?.or(at("seller_parent_lat", "seller_parent_lng")?);
    let buyer = at("buyer_lat", "buyer_lng")?.or(at("buyer_parent_lat", "buyer_parent_lng")?);
    let drop = at("point_lat", "point_lng")?.or(coded).or(buyer).or(seller);
    let pickup = seller.or(drop);
    // Without any coordinates the job is still recorded; it fits nobody's area until an
    // official gives the places a reference point.
    let (pickup, drop) = (pickup.unwrap_or((0.0, 0.0)), drop.unwrap_or((0.0, 0.0)));
    sqlx::query(
        "INSERT INTO delivery_jobs (order_id, state, carrier_id, parcels, pickup_lat, pickup_lng, drop_lat, drop_lng, attempts, created_at, updated_at) \
         VALUES ($1, 'open', NULL, $2, $3, $4, $5, $6, 0, $7, $7) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(row_opt_i64(&r, "parcels")?.unwrap_or(1).max(1))
    .bind(pickup.0)
    .bind(pickup.1)
    .bind(drop.0)
    .bind(drop.1)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The active carriers an order's open job fits (its pickup and drop inside their area, its
/// parcels within what they can still carry), read inside the transaction that offered it.
pub async fn fitting_carriers_in(
    tx: &mut DbTx<'static, Any>,
    order_id: i64,
) -> Result<Vec<Carrier>> {
    let Some(j) = sqlx::query(
        "SELECT parcels, pickup_lat, pickup_lng, drop_lat, drop_lng FROM delivery_jobs WHERE order_id = $1 AND state = 'open'",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(Vec::new());
    };
    let get = |c: &str| -> Result<f64> { Ok(j.try_get::<f64, _>(c)?) };
    let (pickup, drop) = (
        (get("pickup_lat")?, get("pickup_lng")?),
        (get("drop_lat")?, get("drop_lng")?),
    );
    let parcels = row_i64(&j, "parcels")?;
    let all: Vec<Carrier> = sqlx::query(crate::sql(format!(
        "{CARRIER_SELECT} WHERE cr.active = 1 ORDER BY cr.id"
    )))
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(carrier_from)
    .collect::<Result<_>>()?;
    Ok(all
        .into_iter()
        .filter(|c| rules::fits(c.area(), c.capacity, c.held, pickup, drop, parcels))
        .collect())
}

/// Keep the order's job in step with the order: a delivered order's job is delivered (if it
/// was on its way) or cancelled (if nobody had picked it up); a cancelled order's job is
/// cancelled; an order the seller ships themselves withdraws a job nobody accepted (an accepted
/// one stays: the seller handed the parcel to that courier).
pub async fn follow_order(
    tx: &mut DbTx<'static, Any>,
    order_id: i64,
    to: OrderState,
    actor: Actor,
    user: Option<i64>,
    now: i64,
) -> Result<()> {
    // A seller who ships themselves takes the delivery on: an untaken job is withdrawn.
    let seller_ships = to == OrderState::Shipped && actor == Actor::Seller;
    if !matches!(to, OrderState::Delivered | OrderState::Cancelled) && !seller_ships {
        return Ok(());
    }
    let Some((job_id, _, job)) = job_facts(tx, "j.order_id = $1", order_id).await? else {
        return Ok(());
    };
    if job.state.is_final() || (seller_ships && job.state != JobState::Open) {
        return Ok(());
    }
    let action = if to == OrderState::Delivered && rules::job_step(job, JobAction::Deliver).is_ok()
    {
        JobAction::Deliver
    } else {
        JobAction::Cancel
    };
    move_job(tx, job_id, job, action, user, to.as_str(), now).await?;
    Ok(())
}

/// A parcel checked in at its pickup point completes the carrier's job.
pub async fn dropped_at_point(
    tx: &mut DbTx<'static, Any>,
    order_id: i64,
    user: i64,
    now: i64,
) -> Result<()> {
    let Some((job_id, _, job)) = job_facts(tx, "j.order_id = $1", order_id).await? else {
        return Ok(());
    };
    let action = if rules::job_step(job, JobAction::Deliver).is_ok() {
        JobAction::Deliver
    } else if matches!(job.state, JobState::Open | JobState::Accepted) {
        // The seller brought it to the point themselves.
        JobAction::Cancel
    } else {
        return Ok(());
    };
    move_job(tx, job_id, job, action, Some(user), "checked in", now).await?;
    Ok(())
}

impl Db {
    /// A person registers as a carrier (one vehicle). Their role becomes courier unless they
    /// already have a more specific one.
    pub async fn register_carrier(&self, user: &User, n: &NewCarrier) -> Result<i64> {
        let name = n.name.trim();
        if name.is_empty() || name.chars().count() > 120 {
            return Err(StoreError::invalid("err-carrier-name"));
        }
        if !CARRIER_KINDS.contains(&n.kind.as_str()) {
            return Err(StoreError::invalid("err-carrier-kind"));
        }
        if !(1..=2000).contains(&n.capacity)
            || !(1..=300).contains(&n.radius_km)
            || !(0..1440).contains(&n.shift_start_min)
            || !(1..=1440).contains(&n.shift_end_min)
            || n.shift_start_min >= n.shift_end_min
            || !(3..=120).contains(&n.speed_kmh)
        {
            return Err(StoreError::invalid("err-carrier-numbers"));
        }
        let base = if n.base.trim().is_empty() {
            let places = self.places().await?;
            self.home_location(user.id, &places)
                .await?
                .ok_or_else(|| StoreError::invalid("err-carrier-base"))?
        } else {
            let code = self
                .resolve_plus_code(user.id, &n.base)
                .await?
                .ok_or_else(|| StoreError::invalid("err-plus-code"))?;
            PlusCode::parse(&code)
                .and_then(|c| c.decode())
                .map_err(|_| StoreError::invalid("err-plus-code"))?
                .center()
        };
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        if let Some(g) = crate::users::everywhere(Role::Courier) {
            crate::users::grant_in(&mut tx, None, user.id, g, now).await?;
        }
        let r = sqlx::query(
            "INSERT INTO carriers (user_id, name, kind, capacity, base_lat, base_lng, base_plus_code, radius_km, shift_start_min, shift_end_min, speed_kmh, active, created_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,1,$12) ON CONFLICT (user_id) DO NOTHING RETURNING id",
        )
        .bind(user.id)
        .bind(name.to_string())
        .bind(n.kind.clone())
        .bind(n.capacity)
        .bind(base.0)
        .bind(base.1)
        .bind(code_of(base))
        .bind(n.radius_km)
        .bind(n.shift_start_min)
        .bind(n.shift_end_min)
        .bind(n.speed_kmh)
        .bind(self.now_ms())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Conflict(Msg::new("err-carrier-exists")))?;
        tx.commit().await?;
        row_i64(&r, "id")
    }

    pub async fn carriers(&self) -> Result<Vec<Carrier>> {
        sqlx::query(crate::sql(format!("{CARRIER_SELECT} ORDER BY cr.id")))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(carrier_from)
            .collect()
    }

    pub async fn carrier(&self, id: i64) -> Result<Carrier> {
        let r = sqlx::query(crate::sql(format!("{CARRIER_SELECT} WHERE cr.id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("carrier"))?;
        carrier_from(&r)
    }

    /// The carrier this person rides as, if any.
    pub async fn carrier_of(&self, user_id: i64) -> Result<Option<Carrier>> {
        sqlx::query(crate::sql(format!(
            "{CARRIER_SELECT} WHERE cr.user_id = $1"
        )))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(carrier_from)
        .transpose()
    }

    async fn jobs_where(&self, cond: &str, bind: i64, limit: i64) -> Result<Vec<DeliveryJob>> {
        sqlx::query(crate::sql(format!(
            "{JOB_SELECT} WHERE {cond} ORDER BY j.id LIMIT $2"
        )))
        .bind(bind)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_from)
        .collect()
    }

    pub async fn delivery_job(&self, id: i64) -> Result<DeliveryJob> {
        self.jobs_where("j.id = $1", id, 1)
            .await?
            .pop()
            .ok_or(StoreError::NotFound("delivery job"))
    }

    pub async fn delivery_job_of_order(&self, order_id: i64) -> Result<Option<DeliveryJob>> {
        Ok(self.jobs_where("j.order_id = $1", order_id, 1).await?.pop())
    }

    /// Open jobs this carrier could take now: both ends in their area, within spare capacity,
    /// the parcel packed and waiting at the seller.
    pub async fn delivery_offers(&self, carrier: &Carrier) -> Result<Vec<DeliveryJob>> {
        if !carrier.active {
            return Ok(Vec::new());
        }
        let open = self
            .jobs_where(
                "j.state = 'open' AND o.state IN ('packed', 'shipped') AND j.id > $1",
                0,
                500,
            )
            .await?;
        Ok(open
            .into_iter()
            .filter(|j| {
                rules::fits(
                    carrier.area(),
                    carrier.capacity,
                    carrier.held,
                    j.pickup,
                    j.drop,
                    j.parcels,
                )
            })
            .collect())
    }

    /// The jobs a carrier holds, then the last ones they finished.
    pub async fn carrier_jobs(
        &self,
        carrier_id: i64,
    ) -> Result<(Vec<DeliveryJob>, Vec<DeliveryJob>)> {
        let held = self
            .jobs_where(
                &format!("j.carrier_id = $1 AND j.state IN {HELD}"),
                carrier_id,
                500,
            )
            .await?;
        let done = sqlx::query(crate::sql(format!("{JOB_SELECT} WHERE j.carrier_id = $1 AND j.state IN ('delivered', 'cancelled') ORDER BY j.updated_at DESC LIMIT 20")))
            .bind(carrier_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(job_from)
            .collect::<Result<Vec<_>>>()?;
        Ok((held, done))
    }

    /// Every job in a state (officials' view).
    pub async fn delivery_jobs(&self, state: JobState, limit: i64) -> Result<Vec<DeliveryJob>> {
        sqlx::query(crate::sql(format!(
            "{JOB_SELECT} WHERE j.state = $1 ORDER BY j.id DESC LIMIT $2"
        )))
        .bind(state.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_from)
        .collect()
    }

    /// How many delivery jobs are in each state (for metrics).
    pub async fn delivery_jobs_by_state(&self) -> Result<Vec<(String, i64)>> {
        sqlx::query("SELECT state, COUNT(*) AS n FROM delivery_jobs GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((row_str(r, "state")?, row_i64(r, "n")?)))
            .collect()
    }

    pub async fn job_events(&self, job_id: i64) -> Result<Vec<JobEvent>> {
        let rows = sqlx::query("SELECT action, from_state, to_state, reason, user_id, at FROM delivery_events WHERE job_id = $1 ORDER BY id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(JobEvent {
                    action: row_str(r, "action")?,
                    from_state: row_str(r, "from_state")?,
                    to_state: row_str(r, "to_state")?,
                    reason: row_str(r, "reason")?,
                    user_id: row_opt_i64(r, "user_id")?,
                    at: row_i64(r, "at")?,
                })
            })
            .collect()
    }

    pub async fn nearest_point_with_room(
        &self,
        from: (f64, f64),
    ) -> Result<Option<crate::pickup::PickupPoint>> {
        Ok(self
            .pickup_points()
            .await?
            .into_iter()
            .filter(crate::pickup::PickupPoint::has_room)
            .min_by(|a, b| {
                tianguis_geo::haversine_m(from, a.location)
                    .total_cmp(&tianguis_geo::haversine_m(from, b.location))
            }))
    }

    /// Queue a route plan for a carrier's day. Morning plans are one per carrier and day
    /// (several servers may try); on-demand plans are always queued.
    pub async fn queue_route_plan(
        &self,
        carrier_id: i64,
        day: &str,
        budget_ms: i64,
        morning: bool,
    ) -> Result<Option<i64>> {
        let key = morning.then(|| format!("{carrier_id}:{day}"));
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO route_plans (carrier_id, day, morning_key, status, budget_ms, created_at) VALUES ($1,$2,$3,'queued',$4,$5) \
             ON CONFLICT (morning_key) DO NOTHING RETURNING id",
        )
        .bind(carrier_id)
        .bind(day.to_string())
        .bind(key)
        .bind(budget_ms.clamp(200, 120_000))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = r else {
            tx.rollback().await?;
            return Ok(None);
        };
        let id = row_i64(&r, "id")?;
        // Solving it is a job of the planner's lane, written with the plan.
        crate::queue::enqueue_in(
            &mut tx,
            crate::queue::Kind::RoutePlan,
            serde_json::json!({"plan_id": id}),
            now,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// The morning round: a plan for every active carrier holding jobs, once per day.
    pub async fn queue_morning_plans(&self, day: &str, budget_ms: i64) -> Result<usize> {
        let mut n = 0;
        for c in self.carriers().await? {
            if c.active
                && c.held > 0
                && self
                    .queue_route_plan(c.id, day, budget_ms, true)
                    .await?
                    .is_some()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Start solving a plan (its planner job was claimed): queued, or running under a lease
    /// that ran out (its worker died). Returns the plan, its carrier and the jobs to plan; None
    /// when another worker has it or it is finished.
    pub async fn start_route_plan(
        &self,
        id: i64,
        lease_ms: i64,
    ) -> Result<Option<(RoutePlan, Carrier, Vec<DeliveryJob>)>> {
        let now = self.now_ms();
        let n = sqlx::query(
            "UPDATE route_plans SET status = 'running', locked_until = $1, started_at = $2 \
             WHERE id = $3 AND (status = 'queued' OR (status = 'running' AND locked_until < $2))",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(id)
        .execute(&self.write)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(None); // another worker took it
        }
        let plan = self.route_plan(id).await?;
        let carrier = self.carrier(plan.carrier_id).await?;
        let jobs = self.carrier_jobs(carrier.id).await?.0;
        Ok(Some((plan, carrier, jobs)))
    }

    /// Store a solved plan's stops, guarded on the plan still running.
    pub async fn finish_route_plan(
        &self,
        plan_id: i64,
        stops: &[SolvedStop],
        distance_m: i64,
        end_min: i64,
        unassigned: &[i64],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE route_plans SET status = 'done', finished_at = $1, distance_m = $2, end_min = $3, unassigned = $4, locked_until = NULL \
             WHERE id = $5 AND status = 'running'",
        )
        .bind(self.now_ms())
        .bind(distance_m)
        .bind(end_min)
        .bind(unassigned.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","))
        .bind(plan_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(Msg::new("err-plan-changed")));
        }
        for (seq, s) in stops.iter().enumerate() {
            sqlx::query("INSERT INTO route_stops (plan_id, seq, job_id, kind, arrival_min, departure_min) VALUES ($1,$2,$3,$4,$5,$6)")
                .bind(plan_id)
                .bind(seq as i64 + 1)
                .bind(s.job_id)
                .bind(if s.pickup { "pickup" } else { "drop" })
                .bind(s.arrival_min)
                .bind(s.departure_min)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn fail_route_plan(&self, plan_id: i64, error: &str) -> Result<()> {
        sqlx::query("UPDATE route_plans SET status = 'failed', finished_at = $1, error = $2, locked_until = NULL WHERE id = $3 AND status = 'running'")
            .bind(self.now_ms())
            .bind(error.chars().take(500).collect::<String>())
            .bind(plan_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    pub async fn route_plan(&self, id: i64) -> Result<RoutePlan> {
        let r = sqlx::query(crate::sql(format!("{PLAN_SELECT} WHERE p.id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("route plan"))?;
        plan_from(&r)
    }

    /// A carrier's latest plans.
    pub async fn route_plans_of(&self, carrier_id: i64, limit: i64) -> Result<Vec<RoutePlan>> {
        sqlx::query(crate::sql(format!(
            "{PLAN_SELECT} WHERE p.carrier_id = $1 ORDER BY p.id DESC LIMIT $2"
        )))
        .bind(carrier_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(plan_from)
        .collect()
    }

    /// Every plan of a day (officials' view).
    pub async fn route_plans_on(&self, day: &str) -> Result<Vec<RoutePlan>> {
        sqlx::query(crate::sql(format!(
            "{PLAN_SELECT} WHERE p.day = $1 ORDER BY p.id DESC LIMIT 500"
        )))
        .bind(day.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(plan_from)
        .collect()
    }

    /// The stops of a solved plan in order, with what the route sheet prints.
    pub async fn route_stops(&self, plan_id: i64) -> Result<Vec<RouteStop>> {
        let rows = sqlx::query("SELECT seq, job_id, kind, arrival_min, departure_min FROM route_stops WHERE plan_id = $1 ORDER BY seq")
            .bind(plan_id)
            .fetch_all(&self.pool)
            .await?;
        let jobs = self
            .jobs_where(
                "j.id IN (SELECT job_id FROM route_stops WHERE plan_id = $1)",
                plan_id,
                10_000,
            )
            .await?;
        let mut stops = Vec::with_capacity(rows.len());
        for r in &rows {
            let job_id = row_i64(r, "job_id")?;
            let job = jobs
                .iter()
                .find(|j| j.id == job_id)
                .cloned()
                .ok_or(StoreError::NotFound("delivery job"))?;
            stops.push(RouteStop {
                seq: row_i64(r, "seq")?,
                kind: row_str(r, "kind")?,
                arrival_min: row_i64(r, "arrival_min")?,
                departure_min: row_i64(r, "departure_min")?,
                job,
            });
        }
        Ok(stops)
    }
}
