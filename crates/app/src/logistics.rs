//! The courier pool and pickup points as use cases: a carrier moves a job (the policy decides
//! on the job and the person read inside the transaction), the door delivery with the buyer's
//! code, a parcel checked in at its pickup point.

use crate::engine::{Move, engine, timer_in};
use tianguis_domain::delivery::{self as rules, FailReason, JobAction, JobState};
use tianguis_domain::ids::{CarrierId, JobId, OrderId};
use tianguis_domain::notify::JobEvent;
use tianguis_domain::policy::{self, JobFacts};
use tianguis_domain::process::{Actor, OrderState, Transition};
use tianguis_domain::promise::DAY_MS;
use tianguis_store::users::{self, User};
use tianguis_store::{Db, Msg, Result, StoreError, delivery, orders, pickup};

/// A carrier (or an admin for them) moves a job. `Accept` is for any active carrier the job
/// fits; the rest only for the carrier holding it, decided on the job as it is inside this
/// transaction (a job another carrier took a moment ago is theirs, whatever this carrier's
/// page showed). Delivery itself goes through [`deliver_job`] or a pickup point's check-in.
pub async fn job_act(
    db: &Db,
    user: &User,
    job_id: impl Into<JobId>,
    action: JobAction,
    reason: Option<FailReason>,
) -> Result<JobState> {
    let job_id = i64::from(job_id.into());
    let job = db.delivery_job(job_id).await?;
    let me = db.carrier_of(user.id).await?.filter(|c| c.active);
    // Read before the write lock: the nearest point with room, for a redirect.
    let redirect_to = if action == JobAction::Redirect {
        Some(
            db.nearest_point_with_room(job.drop)
                .await?
                .ok_or_else(|| StoreError::Conflict(Msg::new("err-no-point-room")))?,
        )
    } else {
        None
    };
    let timing = db.timing().await?;
    let now = db.now_ms();
    let mut tx = db.begin_write().await?;
    let (_, order_id, facts) = delivery::job_facts(&mut tx, "j.id = $1", job_id)
        .await?
        .ok_or(StoreError::NotFound("delivery job"))?;
    let person = users::person_in(&mut tx, user.id).await?;
    policy::job_move(
        &person,
        me.as_ref().map(|c| CarrierId(c.id)),
        &JobFacts {
            state: facts.state,
            carrier_id: delivery::holder_in(&mut tx, job_id).await?.map(CarrierId),
        },
        action,
    )
    .map_err(tianguis_store::denied)?;
    let mut note = String::new();
    match action {
        JobAction::Accept => {
            let Some(c) = &me else {
                return Err(StoreError::Forbidden(Msg::new("err-not-a-carrier")));
            };
            let held = delivery::lock_load_in(&mut tx, c.id).await?;
            if !rules::fits(
                c.area(),
                c.capacity,
                held,
                job.pickup,
                job.drop,
                job.parcels,
            ) {
                return Err(StoreError::Conflict(Msg::new("err-job-does-not-fit")));
            }
            let to =
                delivery::move_job(&mut tx, job_id, facts, action, Some(user.id), "", now).await?;
            delivery::assign_in(&mut tx, job_id, c.id).await?;
            tx.commit().await?;
            return Ok(to);
        }
        JobAction::Fail => {
            let Some(r) = reason else {
                return Err(StoreError::invalid("err-job-reason"));
            };
            note = r.as_str().to_string();
        }
        JobAction::PickUp => {
            // Picking up at the seller ships the order (and issues the buyer's code).
            let order = orders::move_facts_in(&mut tx, order_id).await?;
            if order.state == OrderState::Packed {
                let m = Move::new(order_id, Transition::Ship, Actor::Courier)
                    .by(Some(user.id))
                    .because("picked up by courier");
                engine().apply(&mut tx, now, &timing, &m).await?;
            } else if order.state != OrderState::Shipped {
                return Err(StoreError::Conflict(Msg::new("err-order-changed")));
            }
        }
        JobAction::Redirect => {
            let Some(point) = &redirect_to else {
                return Err(StoreError::Conflict(Msg::new("err-no-point-room")));
            };
            pickup::take_slot(&mut tx, point.id, point.slots).await?;
            delivery::redirect_in(&mut tx, job_id, order_id, point, now).await?;
            note = point.name.clone();
        }
        JobAction::Depart | JobAction::Retry => {}
        JobAction::Deliver | JobAction::Cancel => {
            // The policy refused these above; kept as an error, never a panic.
            return Err(StoreError::Forbidden(Msg::new("err-job-deliver-with-code")));
        }
    }
    let to = delivery::move_job(&mut tx, job_id, facts, action, Some(user.id), &note, now).await?;
    // The buyer hears when it leaves for their door and when an attempt failed.
    let event = match action {
        JobAction::Depart | JobAction::Retry => Some(JobEvent::OutForDelivery),
        JobAction::Fail => Some(JobEvent::AttemptFailed),
        _ => None,
    };
    if let Some(e) = event {
        crate::notify::after_job_in(&mut tx, order_id, e, now).await?;
    }
    tx.commit().await?;
    Ok(to)
}

/// The carrier records the delivery with the buyer's one-time code (cash on delivery: the cash
/// is collected with it). The order's move delivers the job.
pub async fn deliver_job(
    db: &Db,
    user: &User,
    job_id: impl Into<JobId>,
    code: &str,
) -> Result<OrderState> {
    let job_id = i64::from(job_id.into());
    let job = db.delivery_job(job_id).await?;
    let me = db.carrier_of(user.id).await?;
    policy::job_deliver(
        &user.person(),
        me.map(|c| CarrierId(c.id)),
        &JobFacts {
            state: job.state,
            carrier_id: job.carrier_id.map(CarrierId),
        },
    )
    .map_err(tianguis_store::denied)?;
    if job.pickup_point_id.is_some() {
        return Err(StoreError::Conflict(Msg::new("err-job-at-point")));
    }
    if !matches!(job.state, JobState::OutForDelivery) {
        return Err(StoreError::Conflict(
            rules::JobError::NotAllowed {
                action: JobAction::Deliver,
                from: job.state,
            }
            .msg(),
        ));
    }
    crate::orders::deliver_with_code(db, user, job.order_id, code).await
}

/// The operator (or the centre's agent, or an admin) checks a parcel in at its point; the hold
/// period starts, and the carrier's job is done.
pub async fn check_in(db: &Db, user: &User, order_id: impl Into<OrderId>) -> Result<()> {
    let order_id = i64::from(order_id.into());
    let order = db.order(order_id).await?;
    let Some(point_id) = order.pickup_point_id else {
        return Err(StoreError::NotFound("order"));
    };
    let point = db.pickup_point(point_id).await?;
    let now = db.now_ms();
    let mut tx = db.begin_write().await?;
    let person = users::person_in(&mut tx, user.id).await?;
    let facts = orders::facts_in(&mut tx, order_id).await?;
    policy::serve_parcel(&person, &facts).map_err(tianguis_store::denied)?;
    if orders::move_facts_in(&mut tx, order_id).await?.state != OrderState::Shipped {
        return Err(StoreError::Conflict(Msg::new("err-pickup-not-shipped")));
    }
    pickup::check_in_in(&mut tx, order_id, now).await?;
    timer_in(
        &mut tx,
        order_id,
        Transition::ReturnUncollected,
        now + point.hold_days * DAY_MS,
        now,
    )
    .await?;
    delivery::dropped_at_point(&mut tx, order_id, user.id, now).await?;
    crate::notify::after_job_in(&mut tx, order_id, JobEvent::ReadyAtPoint, now).await?;
    tx.commit().await?;
    Ok(())
}
