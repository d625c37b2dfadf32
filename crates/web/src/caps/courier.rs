//! The courier pool's pages and the route planner worker. A person registers as a carrier, sees
//! the jobs offered to them (their area and spare capacity fit), accepts, picks up, goes out,
//! delivers with the buyer's code or records a failed attempt, and asks for a route plan. The
//! plan is solved by the planner lane's [`PlanJob`] on a blocking thread (never on the web executor); its
//! page shows progress, then the printable route sheet. Officials see every carrier and job at
//! `/admin/deliveries`.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::{CsrfOnly, admin_of, html, parse_id};
use crate::ctx::Ctx;
use crate::error::AppError;
use crate::forms::CsrfForm;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::time::Duration;
use tianguis_domain::calendar::local_day;
use tianguis_domain::delivery::{self as rules, FailReason, JobAction, JobState};
use tianguis_domain::money::{Currency, Money};
use tianguis_routing::day::{Courier, DayJob, StopKind, plan_day};
use tianguis_store::delivery::{
    Carrier, DeliveryJob, NewCarrier, RoutePlan, RouteStop, SolvedStop,
};
use tianguis_store::{Db, Msg, StoreError};

type R = Result<Response, AppError>;

pub fn routes() -> Table {
    Table::new("courier")
        .get("/courier", courier_page)
        .post("/courier/register", register)
        .post("/courier/plans", plan_now)
        .get("/courier/plans/{id}", plan_page)
        .post("/courier/jobs/{id}/deliver", deliver)
        .post("/courier/jobs/{id}/{action}", act)
        .get("/admin/deliveries", admin_deliveries)
}

/// "HH:MM" for minutes since midnight.
fn hhmm(min: i64) -> String {
    let m = min.rem_euclid(1440);
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// "HH:MM" to minutes since midnight.
fn parse_hhmm(s: &str) -> Result<i64, AppError> {
    let bad = || AppError::bad(Msg::new("err-time").arg("value", s));
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || h * 60 + m > 1440 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// A job as a row the courier pages show.
pub struct JobRow {
    pub job: DeliveryJob,
    pub state_label: String,
    pub actions: Vec<(&'static str, String)>,
    pub can_fail: bool,
    pub can_deliver: bool,
    pub cash: String,
    pub failure: String,
}

fn row(c: &Ctx, job: DeliveryJob, holder: bool) -> JobRow {
    let facts = job.rules();
    let actions = if holder {
        rules::carrier_actions(facts)
            .into_iter()
            .filter(|a| *a != JobAction::Fail)
            .map(|a| (a.as_str(), c.t.t(&format!("job-action-{}", a.as_str()))))
            .collect()
    } else {
        Vec::new()
    };
    let cash = if job.cash_minor > 0 {
        Currency::parse(&job.currency)
            .map(|cur| c.t.money(&Money::new(job.cash_minor, cur)))
            .unwrap_or_default()
    } else {
        String::new()
    };
    JobRow {
        state_label: c.t.t(&format!("job-state-{}", job.state.as_str())),
        can_fail: holder && rules::job_step(facts, JobAction::Fail).is_ok(),
        can_deliver: holder
            && job.state == JobState::OutForDelivery
            && job.pickup_point_id.is_none(),
        failure: job
            .last_failure
            .as_deref()
            .map(|r| c.t.t(&format!("fail-reason-{r}")))
            .unwrap_or_default(),
        actions,
        cash,
        job,
    }
}

#[derive(Template)]
#[template(path = "courier.html")]
struct CourierPage<'a> {
    c: &'a Ctx,
    title: String,
    carrier: Option<Carrier>,
    kinds: Vec<(&'static str, String)>,
    reasons: Vec<(&'static str, String)>,
    held: Vec<JobRow>,
    offers: Vec<JobRow>,
    done: Vec<JobRow>,
    plans: Vec<PlanRow>,
    shift: String,
}

pub struct PlanRow {
    pub plan: RoutePlan,
    pub status: String,
}

fn plan_row(c: &Ctx, plan: RoutePlan) -> PlanRow {
    PlanRow {
        status: c.t.t(&format!("plan-status-{}", plan.status)),
        plan,
    }
}

async fn courier_page(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    let user = c.require_user()?;
    let carrier = s.db.carrier_of(user.id).await?;
    let (mut held, mut offers, mut done, mut plans) = (vec![], vec![], vec![], vec![]);
    if let Some(k) = &carrier {
        let (h, d) = s.db.carrier_jobs(k.id).await?;
        held = h.into_iter().map(|j| row(&c, j, true)).collect();
        done = d.into_iter().map(|j| row(&c, j, false)).collect();
        offers =
            s.db.delivery_offers(k)
                .await?
                .into_iter()
                .map(|j| row(&c, j, false))
                .collect();
        plans =
            s.db.route_plans_of(k.id, 5)
                .await?
                .into_iter()
                .map(|p| plan_row(&c, p))
                .collect();
    }
    html(CourierPage {
        title: c.t.t("courier-title"),
        shift: carrier
            .as_ref()
            .map(|k| format!("{}–{}", hhmm(k.shift_start_min), hhmm(k.shift_end_min)))
            .unwrap_or_default(),
        kinds: tianguis_store::delivery::CARRIER_KINDS
            .iter()
            .map(|k| (*k, c.t.t(&format!("carrier-kind-{k}"))))
            .collect(),
        reasons: FailReason::ALL
            .iter()
            .map(|r| (r.as_str(), c.t.t(&format!("fail-reason-{}", r.as_str()))))
            .collect(),
        c: &c,
        carrier,
        held,
        offers,
        done,
        plans,
    })
}

async fn register(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let user = c.require_user()?;
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    s.db.register_carrier(
        user,
        &NewCarrier {
            name: get("name"),
            kind: get("kind"),
            capacity: parse_id(&get("capacity"), "capacity")?,
            base: get("base"),
            radius_km: parse_id(&get("radius_km"), "radius_km")?,
            shift_start_min: parse_hhmm(&get("shift_start"))?,
            shift_end_min: parse_hhmm(&get("shift_end"))?,
            speed_kmh: parse_id(&get("speed_kmh"), "speed_kmh")?,
        },
    )
    .await?;
    Ok(Redirect::to("/courier").into_response())
}

async fn act(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path((id, action)): Path<(i64, String)>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let user = c.require_user()?;
    let action = JobAction::parse(&action).ok_or_else(|| {
        AppError::User(
            StatusCode::NOT_FOUND,
            Msg::new("err-not-found").arg("what", "page"),
        )
    })?;
    let reason = f.get("reason").and_then(|r| FailReason::parse(r));
    tianguis_app::logistics::job_act(&s.db, user, id, action, reason).await?;
    Ok(Redirect::to("/courier").into_response())
}

async fn deliver(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let user = c.require_user()?;
    tianguis_app::logistics::deliver_job(
        &s.db,
        user,
        id,
        f.get("code").map(String::as_str).unwrap_or(""),
    )
    .await?;
    Ok(Redirect::to("/courier?delivered=1").into_response())
}

/// Plan my route now (today's jobs).
async fn plan_now(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(_f): CsrfForm<CsrfOnly>,
) -> R {
    let user = c.require_user()?;
    let carrier =
        s.db.carrier_of(user.id)
            .await?
            .filter(|k| k.active)
            .ok_or_else(|| AppError::user(StatusCode::FORBIDDEN, "err-not-a-carrier"))?;
    let settings = s.db.settings().await?;
    let (day, _) = local_day(s.db.now_ms(), settings.utc_offset_minutes());
    let id =
        s.db.queue_route_plan(carrier.id, &day, settings.route_plan_ms(), false)
            .await?
            .ok_or_else(|| AppError::Internal("plan not queued".into()))?;
    Ok(Redirect::to(&format!("/courier/plans/{id}")).into_response())
}

pub struct StopRow {
    pub stop: RouteStop,
    pub pickup: bool,
    pub arrival: String,
    pub cash: String,
    pub name: String,
    pub phone: String,
    pub plus_code: String,
    pub landmark: String,
}

#[derive(Template)]
#[template(path = "route_plan.html")]
struct PlanPage<'a> {
    c: &'a Ctx,
    title: String,
    plan: RoutePlan,
    status: String,
    carrier: Carrier,
    /// Percent of the time budget used, while the planner runs.
    progress: i64,
    waiting: bool,
    stops: Vec<StopRow>,
    cash_total: String,
    distance_km: String,
    end: String,
    unassigned: Vec<DeliveryJob>,
}

async fn plan_page(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
) -> R {
    let user = c.require_user()?;
    let plan = s.db.route_plan(id).await?;
    let carrier = s.db.carrier(plan.carrier_id).await?;
    tianguis_domain::policy::route_plan(&user.person(), carrier.user_id.into())
        .map_err(crate::who::refusal)?;
    let waiting = matches!(plan.status.as_str(), "queued" | "running");
    let progress = match (plan.status.as_str(), plan.started_at) {
        ("running", Some(t)) => ((s.db.now_ms() - t) * 100 / plan.budget_ms.max(1)).clamp(1, 99),
        ("done", _) => 100,
        _ => 0,
    };
    let currency = s.db.currency().await?;
    let mut cash = 0;
    let mut stops = Vec::new();
    for st in s.db.route_stops(id).await? {
        let pickup = st.kind == "pickup";
        let j = &st.job;
        // Cash is collected at the door, so it shows on the drop.
        let collect = if pickup { 0 } else { j.cash_minor };
        cash += collect;
        stops.push(StopRow {
            pickup,
            arrival: hhmm(st.arrival_min),
            cash: if collect > 0 {
                c.t.money(&Money::new(collect, currency))
            } else {
                String::new()
            },
            name: if pickup {
                j.shop_name.clone()
            } else {
                j.pickup_point_name
                    .clone()
                    .unwrap_or_else(|| j.buyer_name.clone())
            },
            phone: if pickup {
                j.seller_phone.clone()
            } else {
                j.buyer_phone.clone()
            },
            plus_code: if pickup {
                j.pickup_plus_code.clone()
            } else {
                j.drop_plus_code.clone()
            },
            landmark: if pickup || j.pickup_point_id.is_some() {
                j.pickup_point_hours
                    .clone()
                    .filter(|_| !pickup)
                    .unwrap_or_default()
            } else {
                j.address.clone()
            },
            stop: st,
        });
    }
    let mut unassigned = Vec::new();
    for job in &plan.unassigned {
        if let Ok(j) = s.db.delivery_job(*job).await {
            unassigned.push(j);
        }
    }
    html(PlanPage {
        title: c.t.t1("plan-title", "id", plan.id),
        status: c.t.t(&format!("plan-status-{}", plan.status)),
        cash_total: c.t.money(&Money::new(cash, currency)),
        distance_km: format!("{:.1}", plan.distance_m.unwrap_or(0) as f64 / 1000.0),
        end: plan.end_min.map(hhmm).unwrap_or_default(),
        c: &c,
        progress,
        waiting,
        stops,
        unassigned,
        carrier,
        plan,
    })
}

#[derive(Template)]
#[template(path = "deliveries.html")]
struct DeliveriesPage<'a> {
    c: &'a Ctx,
    title: String,
    carriers: Vec<(Carrier, String)>,
    counts: Vec<(String, usize)>,
    failed: Vec<JobRow>,
    open: Vec<JobRow>,
    plans: Vec<PlanRow>,
    day: String,
}

/// Officials: carriers, jobs by state, failed attempts, and today's route plans.
async fn admin_deliveries(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    admin_of(&c)?;
    let settings = s.db.settings().await?;
    let (day, _) = local_day(s.db.now_ms(), settings.utc_offset_minutes());
    let mut counts = Vec::new();
    let mut failed = Vec::new();
    let mut open = Vec::new();
    for st in JobState::ALL {
        let jobs = s.db.delivery_jobs(st, 200).await?;
        counts.push((c.t.t(&format!("job-state-{}", st.as_str())), jobs.len()));
        match st {
            JobState::Failed => failed = jobs.into_iter().map(|j| row(&c, j, false)).collect(),
            JobState::Open => open = jobs.into_iter().map(|j| row(&c, j, false)).collect(),
            _ => {}
        }
    }
    html(DeliveriesPage {
        title: c.t.t("deliveries-title"),
        carriers: s
            .db
            .carriers()
            .await?
            .into_iter()
            .map(|k| {
                let kind = c.t.t(&format!("carrier-kind-{}", k.kind));
                (k, kind)
            })
            .collect(),
        plans: s
            .db
            .route_plans_on(&day)
            .await?
            .into_iter()
            .map(|p| plan_row(&c, p))
            .collect(),
        c: &c,
        counts,
        failed,
        open,
        day,
    })
}

/// Each carrier's morning plan, queued once the local hour has come (the planner's loop asks
/// about once a minute; a plan is made once per carrier and day, whichever server asks).
pub async fn queue_morning_plans(db: &Db) -> Result<usize, StoreError> {
    let settings = db.settings().await?;
    let (day, minute) = local_day(db.now_ms(), settings.utc_offset_minutes());
    if minute < settings.route_plan_hour() * 60 {
        return Ok(0);
    }
    db.queue_morning_plans(&day, settings.route_plan_ms()).await
}

/// The queue's `route_plan` job: solve one carrier's day on a blocking thread (never on the
/// web executor) and store its stops.
pub struct PlanJob;

impl tianguis_app::queue::JobHandler for PlanJob {
    fn run<'a>(
        &'a self,
        db: &'a Db,
        job: &'a tianguis_store::queue::QueuedJob,
    ) -> tianguis_app::queue::JobFuture<'a> {
        use tianguis_app::queue::Outcome;
        Box::pin(async move {
            let plan_id = match job.id_in("plan_id") {
                Ok(id) => id,
                Err(e) => return Outcome::GiveUp(e.to_string()),
            };
            match solve_plan(db, plan_id).await {
                Ok(true) => Outcome::Done,
                Ok(false) => Outcome::Skipped,
                Err(e) if e.is_transient() => Outcome::Retry(e.to_string()),
                Err(e) => Outcome::GiveUp(e.to_string()),
            }
        })
    }
}

/// Solve a queued plan; false when another worker has it or it is finished.
pub async fn solve_plan(db: &Db, plan_id: i64) -> Result<bool, StoreError> {
    let settings = db.settings().await?;
    let (day, minute) = local_day(db.now_ms(), settings.utc_offset_minutes());
    let Some((plan, carrier, jobs)) = db
        .start_route_plan(plan_id, settings.route_plan_ms() * 4 + 60_000)
        .await?
    else {
        return Ok(false);
    };
    let mut start = carrier.shift_start_min;
    if plan.day == day {
        start = start.max(minute);
    }
    if start >= carrier.shift_end_min {
        // Past today's shift: plan the next one.
        start = carrier.shift_start_min;
    }
    let courier = Courier {
        base: carrier.base,
        capacity: i32::try_from(carrier.capacity).unwrap_or(i32::MAX),
        shift: (start as f64 * 60.0, carrier.shift_end_min as f64 * 60.0),
        speed_kmh: carrier.speed_kmh as f64,
        road_factor: settings.road_factor(),
        service_s: settings.stop_minutes() as f64 * 60.0,
    };
    let day_jobs: Vec<DayJob> = jobs
        .iter()
        .map(|j| DayJob {
            id: j.id.to_string(),
            pickup: (j.state == JobState::Accepted).then_some(j.pickup),
            drop: j.drop,
            parcels: i32::try_from(j.parcels).unwrap_or(i32::MAX),
            drop_window: j
                .pickup_point_hours
                .as_deref()
                .and_then(rules::opening_window)
                .map(|(a, b)| (a as f64 * 60.0, b as f64 * 60.0)),
        })
        .collect();
    let budget = Duration::from_millis(u64::try_from(plan.budget_ms).unwrap_or(1000));
    let solved = tokio::task::spawn_blocking(move || plan_day(&courier, &day_jobs, budget)).await;
    match solved {
        Ok(Ok(p)) => {
            let stops: Vec<SolvedStop> = p
                .stops
                .iter()
                .filter_map(|s| {
                    Some(SolvedStop {
                        job_id: s.job_id.parse().ok()?,
                        pickup: s.kind == StopKind::Pickup,
                        arrival_min: (s.arrival_s / 60.0).round() as i64,
                        departure_min: (s.departure_s / 60.0).round() as i64,
                    })
                })
                .collect();
            let unassigned: Vec<i64> = p.unassigned.iter().filter_map(|u| u.parse().ok()).collect();
            db.finish_route_plan(
                plan.id,
                &stops,
                p.distance_m.round() as i64,
                (p.end_s / 60.0).round() as i64,
                &unassigned,
            )
            .await?;
        }
        Ok(Err(e)) => db.fail_route_plan(plan.id, &e.to_string()).await?,
        Err(e) => db.fail_route_plan(plan.id, &e.to_string()).await?,
    }
    Ok(true)
}

/// Queue the morning plans due now and solve every queued plan, here and now (the demo's
/// start, tests). Returns how many plans were solved.
pub async fn run_route_plans(db: &Db) -> Result<usize, StoreError> {
    queue_morning_plans(db).await?;
    let runner = tianguis_app::queue::Runner::new("planner-now")
        .handle(tianguis_store::queue::Kind::RoutePlan, PlanJob);
    let run = runner
        .drain(db, tianguis_store::queue::Lane::Planner, 100)
        .await?;
    Ok(run.done as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_and_minutes() {
        // 2026-11-22 16:34 UTC is 10:34 in Oaxaca (UTC-6).
        assert_eq!(
            local_day(1_795_365_240_000, -360),
            ("2026-11-22".into(), 634)
        );
        assert_eq!(local_day(1_795_365_240_000, 480), ("2026-11-23".into(), 34));
        assert_eq!(hhmm(8 * 60 + 5), "08:05");
        assert_eq!(parse_hhmm("8:05").unwrap(), 485);
        assert!(
            parse_hhmm("25:00").is_err()
                && parse_hhmm("noon").is_err()
                && parse_hhmm("7:60").is_err()
        );
    }
}
