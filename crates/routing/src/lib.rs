//! Route planning for a courier pool: vehicles with capacity and shifts, stops with demand,
//! time windows and service time, solved with vrp-core under a time budget. Also reads Solomon
//! VRPTW instances so the same code path can be measured against best-known solutions.
//!
//! The solver is CPU-bound and uses all cores: call [`solve`] from a blocking thread or a
//! worker, never on the async executor. No I/O here.

pub mod day;
mod sisr;
pub mod solomon;

use std::sync::Arc;
use std::time::Duration;
use vrp_core::models::common::TimeWindow;
use vrp_core::models::problem::{JobIdDimension, VehicleIdDimension};
use vrp_core::prelude::*;
use vrp_core::rosomaxa::utils::{Environment, TimeQuota};

#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("the routing problem is not valid: {0}")]
    Invalid(String),
    #[error("the solver failed: {0}")]
    Solver(String),
}

/// Travel between locations: distances and durations, row-major, `size` x `size`.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub size: usize,
    pub distances: Vec<f64>,
    pub durations: Vec<f64>,
}

impl Matrix {
    /// Plane points; duration equals distance (the Solomon convention).
    pub fn euclidean(points: &[(f64, f64)]) -> Matrix {
        let n = points.len();
        let mut d = Vec::with_capacity(n * n);
        for a in points {
            for b in points {
                d.push(((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt());
            }
        }
        Matrix {
            size: n,
            durations: d.clone(),
            distances: d,
        }
    }

    /// Latitude/longitude points: great-circle metres times a road factor (roads wind), and
    /// seconds at `speed_kmh`. A road-network matrix can replace this later.
    pub fn straight_line(points: &[(f64, f64)], speed_kmh: f64, road_factor: f64) -> Matrix {
        let n = points.len();
        let mut dist = Vec::with_capacity(n * n);
        for a in points {
            for b in points {
                dist.push(haversine_m(*a, *b) * road_factor);
            }
        }
        let mps = (speed_kmh.max(1.0)) * 1000.0 / 3600.0;
        let durations = dist.iter().map(|d| d / mps).collect();
        Matrix {
            size: n,
            distances: dist,
            durations,
        }
    }

    fn at(&self, from: usize, to: usize) -> f64 {
        self.distances[from * self.size + to]
    }
}

pub use tianguis_geo::haversine_m;

#[derive(Debug, Clone)]
pub struct Vehicle {
    pub id: String,
    pub capacity: i32,
    pub start: usize,
    pub end: usize,
    /// Shift start and end, in the matrix's time unit.
    pub shift: (f64, f64),
}

#[derive(Debug, Clone)]
pub struct Stop {
    pub id: String,
    pub location: usize,
    pub demand: i32,
    pub window: Option<(f64, f64)>,
    pub service: f64,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub matrix: Matrix,
    pub vehicles: Vec<Vehicle>,
    pub stops: Vec<Stop>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub stop_id: String,
    pub location: usize,
    pub arrival: f64,
    pub departure: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoutePlan {
    pub vehicle_id: String,
    pub visits: Vec<Visit>,
    pub distance: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub routes: Vec<RoutePlan>,
    pub unassigned: Vec<String>,
    pub distance: f64,
}

impl Problem {
    fn check(&self) -> Result<(), RoutingError> {
        let n = self.matrix.size;
        if self.matrix.distances.len() != n * n || self.matrix.durations.len() != n * n {
            return Err(RoutingError::Invalid("matrix is not square".into()));
        }
        if self.vehicles.is_empty() {
            return Err(RoutingError::Invalid("no vehicles".into()));
        }
        let mut ids = std::collections::HashSet::new();
        for id in self.vehicles.iter().map(|v| &v.id) {
            if !ids.insert(("vehicle", id)) {
                return Err(RoutingError::Invalid(format!("vehicle {id} given twice")));
            }
        }
        for id in self.stops.iter().map(|s| &s.id) {
            if !ids.insert(("stop", id)) {
                return Err(RoutingError::Invalid(format!("stop {id} given twice")));
            }
        }
        for v in &self.vehicles {
            if v.start >= n || v.end >= n || v.capacity < 0 || v.shift.0 > v.shift.1 {
                return Err(RoutingError::Invalid(format!(
                    "vehicle {} is not valid",
                    v.id
                )));
            }
        }
        for s in &self.stops {
            if s.location >= n
                || s.demand < 0
                || s.service < 0.0
                || s.window.is_some_and(|w| w.0 > w.1)
            {
                return Err(RoutingError::Invalid(format!("stop {} is not valid", s.id)));
            }
        }
        Ok(())
    }
}

/// Plan routes minimising unassigned stops first, then distance, within `budget`.
pub fn solve(problem: &Problem, budget: Duration) -> Result<Plan, RoutingError> {
    problem.check()?;
    if problem.stops.is_empty() {
        return Ok(Plan {
            routes: vec![],
            unassigned: vec![],
            distance: 0.0,
        });
    }
    let err = |e: GenericError| RoutingError::Solver(e.to_string());
    let transport: Arc<dyn TransportCost> = Arc::new(
        SimpleTransportCost::new(
            problem.matrix.durations.clone(),
            problem.matrix.distances.clone(),
        )
        .map_err(err)?,
    );
    let goal = GoalContextBuilder::with_features(&[
        MinimizeUnassignedBuilder::new("min-unassigned")
            .build()
            .map_err(err)?,
        TransportFeatureBuilder::new("min-distance")
            .set_transport_cost(transport.clone())
            .set_time_constrained(true)
            .build_minimize_distance()
            .map_err(err)?,
        CapacityFeatureBuilder::<SingleDimLoad>::new("capacity")
            .build()
            .map_err(err)?,
    ])
    .map_err(err)?
    .build()
    .map_err(err)?;
    let mut jobs = Vec::with_capacity(problem.stops.len());
    for s in &problem.stops {
        let mut b = SingleBuilder::default();
        b = b
            .id(&s.id)
            .demand(Demand::delivery(s.demand))
            .duration(s.service)
            .map_err(err)?
            .location(s.location)
            .map_err(err)?;
        if let Some((a, z)) = s.window {
            b = b.times(vec![TimeWindow::new(a, z)]).map_err(err)?;
        }
        jobs.push(b.build_as_job().map_err(err)?);
    }
    let mut vehicles = Vec::with_capacity(problem.vehicles.len());
    for v in &problem.vehicles {
        vehicles.push(
            VehicleBuilder::default()
                .id(&v.id)
                .add_detail(
                    VehicleDetailBuilder::default()
                        .set_start_location(v.start)
                        .set_start_time(v.shift.0)
                        .set_end_location(v.end)
                        .set_end_time(v.shift.1)
                        .build()
                        .map_err(err)?,
                )
                .capacity(SingleDimLoad::new(v.capacity))
                .build()
                .map_err(err)?,
        );
    }
    let vrp = Arc::new(
        ProblemBuilder::default()
            .add_jobs(jobs.into_iter())
            .add_vehicles(vehicles.into_iter())
            .with_goal(goal)
            .with_transport_cost(transport)
            .with_logger(Arc::new(|_: &str| {}))
            .build()
            .map_err(err)?,
    );
    // Three quarters of the budget at most to the string-removal search, a quarter to
    // vrp-core, which starts from its best solutions and keeps the best it sees. A small
    // problem's first pass ends early, so its plan comes back early.
    let found = sisr::search(problem, budget.mul_f64(FIRST_PASS), 1);
    let secs = budget.mul_f64(1.0 - FIRST_PASS).as_secs_f64().max(0.1);
    let environment = Arc::new(Environment {
        quota: Some(Arc::new(TimeQuota::new(secs))),
        logger: Arc::new(|_: &str| {}),
        ..Environment::default()
    });
    let initial = found
        .iter()
        .filter_map(|s| insertion_context(&vrp, problem, s, environment.clone()))
        .collect::<Vec<_>>();
    let config = VrpConfigBuilder::new(vrp.clone())
        .set_environment(environment)
        .prebuild()
        .map_err(err)?
        .with_init_solutions(initial, None)
        .with_max_time(Some(secs.ceil() as usize))
        .build()
        .map_err(err)?;
    let solution = Solver::new(vrp, config).solve().map_err(err)?;

    let mut routes = Vec::new();
    let mut total = 0.0;
    for r in &solution.routes {
        let vehicle_id = r
            .actor
            .vehicle
            .dimens
            .get_vehicle_id()
            .cloned()
            .unwrap_or_default();
        let mut visits = Vec::new();
        let mut distance = 0.0;
        let mut prev: Option<usize> = None;
        for a in r.tour.all_activities() {
            if let Some(p) = prev {
                distance += problem.matrix.at(p, a.place.location);
            }
            prev = Some(a.place.location);
            if let Some(job) = &a.job {
                visits.push(Visit {
                    stop_id: job.dimens.get_job_id().cloned().unwrap_or_default(),
                    location: a.place.location,
                    arrival: a.schedule.arrival,
                    departure: a.schedule.departure,
                });
            }
        }
        total += distance;
        routes.push(RoutePlan {
            vehicle_id,
            visits,
            distance,
        });
    }
    let unassigned = solution
        .unassigned
        .iter()
        .filter_map(|(j, _)| j.dimens().get_job_id().cloned())
        .collect();
    Ok(Plan {
        routes,
        unassigned,
        distance: total,
    })
}

/// Check a plan against its problem from scratch, walking each route from its vehicle's
/// start: every stop served once or listed unassigned, loads within capacity, every service
/// started inside its window, every vehicle at its end by its shift's end, the distances as
/// stated. The first breach, in words, if any.
pub fn verify(problem: &Problem, plan: &Plan) -> Result<(), String> {
    let m = &problem.matrix;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0.0;
    for r in &plan.routes {
        let v = problem
            .vehicles
            .iter()
            .find(|v| v.id == r.vehicle_id)
            .ok_or_else(|| format!("unknown vehicle {}", r.vehicle_id))?;
        let (mut clock, mut at, mut load, mut distance) = (v.shift.0, v.start, 0, 0.0);
        for visit in &r.visits {
            let s = problem
                .stops
                .iter()
                .find(|s| s.id == visit.stop_id)
                .ok_or_else(|| format!("unknown stop {}", visit.stop_id))?;
            if !seen.insert(s.id.as_str()) {
                return Err(format!("stop {} served twice", s.id));
            }
            clock += m.durations[at * m.size + s.location];
            distance += m.distances[at * m.size + s.location];
            if let Some((open, close)) = s.window {
                if clock > close + 1e-6 {
                    return Err(format!(
                        "{} reaches {} at {clock}, after {close}",
                        v.id, s.id
                    ));
                }
                clock = clock.max(open);
            }
            clock += s.service;
            load += s.demand;
            at = s.location;
        }
        clock += m.durations[at * m.size + v.end];
        distance += m.distances[at * m.size + v.end];
        if load > v.capacity {
            return Err(format!("{} carries {load} over {}", v.id, v.capacity));
        }
        if clock > v.shift.1 + 1e-6 {
            return Err(format!("{} ends at {clock}, after {}", v.id, v.shift.1));
        }
        if (distance - r.distance).abs() > 1e-6 {
            return Err(format!("{} drives {distance}, not {}", v.id, r.distance));
        }
        total += distance;
    }
    for id in &plan.unassigned {
        if !seen.insert(id.as_str()) {
            return Err(format!("stop {id} both served and unassigned"));
        }
    }
    if seen.len() != problem.stops.len() {
        return Err(format!(
            "{} stops neither served nor unassigned",
            problem.stops.len() - seen.len()
        ));
    }
    if (total - plan.distance).abs() > 1e-6 {
        return Err(format!("routes add up to {total}, not {}", plan.distance));
    }
    Ok(())
}

/// Share of the budget the first pass (see [`sisr`]) takes.
const FIRST_PASS: f64 = 0.75;

/// A first-pass solution as vrp-core's own: each route's stops in order on its vehicle, its
/// states computed by vrp-core's features. None if a vehicle or stop is not in its problem.
fn insertion_context(
    vrp: &Arc<vrp_core::models::Problem>,
    problem: &Problem,
    sol: &sisr::Solution,
    environment: Arc<Environment>,
) -> Option<InsertionContext> {
    use vrp_core::construction::heuristics::UnassignmentInfo;
    use vrp_core::models::common::{Schedule, TimeSpan};
    use vrp_core::models::solution::{Activity, Place, Registry, Route, Tour};
    let actor = |id: &str| {
        vrp.fleet
            .actors
            .iter()
            .find(|a| a.vehicle.dimens.get_vehicle_id().is_some_and(|v| v == id))
            .cloned()
    };
    let jobs: std::collections::HashMap<&str, &Job> = vrp
        .jobs
        .all()
        .iter()
        .filter_map(|j| j.dimens().get_job_id().map(|id| (id.as_str(), j)))
        .collect();
    let single = |id: &str| match jobs.get(id) {
        Some(Job::Single(s)) => Some(s.clone()),
        _ => None,
    };
    let mut routes = Vec::with_capacity(sol.routes.len());
    for r in &sol.routes {
        let actor = actor(&problem.vehicles[r.vehicle].id)?;
        let mut tour = Tour::new(&actor);
        for (k, &s) in r.stops.iter().enumerate() {
            let job = single(&problem.stops[s].id)?;
            let place = job.places.first()?;
            let time = place
                .times
                .iter()
                .find_map(|t| match t {
                    TimeSpan::Window(w) => Some(w.clone()),
                    _ => None,
                })
                .unwrap_or_else(TimeWindow::max);
            tour.insert_at(
                Activity {
                    place: Place {
                        idx: 0,
                        location: place.location?,
                        duration: place.duration,
                        time,
                    },
                    schedule: Schedule::new(0.0, 0.0),
                    job: Some(job),
                    commute: None,
                },
                k + 1,
            );
        }
        routes.push(Route { actor, tour });
    }
    let unassigned = sol
        .unassigned
        .iter()
        .filter_map(|&s| {
            let job = jobs.get(problem.stops[s].id.as_str())?;
            Some(((*job).clone(), UnassignmentInfo::Unknown))
        })
        .collect();
    let solution = vrp_core::models::Solution {
        cost: Default::default(),
        registry: Registry::new(&vrp.fleet, environment.random.clone()),
        routes,
        unassigned,
        telemetry: None,
    };
    Some(InsertionContext::new_from_solution(
        vrp.clone(),
        (solution, None),
        environment,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_day_of_deliveries_respects_capacity_and_windows() {
        // Depot at 0; four villages around it.
        let points = [
            (0.0, 0.0),
            (0.0, 10.0),
            (0.0, 11.0),
            (10.0, 0.0),
            (11.0, 0.0),
        ];
        let matrix = Matrix::euclidean(&points);
        let stops = (1..=4)
            .map(|i| Stop {
                id: format!("s{i}"),
                location: i,
                demand: 1,
                window: if i == 4 { Some((0.0, 40.0)) } else { None },
                service: 1.0,
            })
            .collect();
        let vehicles = (0..2)
            .map(|i| Vehicle {
                id: format!("v{i}"),
                capacity: 2,
                start: 0,
                end: 0,
                shift: (0.0, 100.0),
            })
            .collect();
        let plan = solve(
            &Problem {
                matrix,
                vehicles,
                stops,
            },
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(plan.unassigned.is_empty());
        assert_eq!(plan.routes.len(), 2, "capacity 2 needs two vehicles");
        for r in &plan.routes {
            assert!(r.visits.len() <= 2);
            let locs: Vec<usize> = r.visits.iter().map(|v| v.location).collect();
            assert!(
                locs.iter().all(|l| *l <= 2) || locs.iter().all(|l| *l >= 3),
                "each vehicle takes one direction: {locs:?}"
            );
        }
        assert!((plan.distance - 44.0).abs() < 1e-6, "{}", plan.distance);
        let s4 = plan
            .routes
            .iter()
            .flat_map(|r| &r.visits)
            .find(|v| v.stop_id == "s4")
            .unwrap();
        assert!(s4.arrival <= 40.0);
    }

    #[test]
    fn verify_names_the_first_broken_constraint() {
        let matrix = Matrix::euclidean(&[(0.0, 0.0), (0.0, 10.0)]);
        let problem = Problem {
            matrix,
            vehicles: vec![Vehicle {
                id: "v".into(),
                capacity: 1,
                start: 0,
                end: 0,
                shift: (0.0, 100.0),
            }],
            stops: vec![Stop {
                id: "s".into(),
                location: 1,
                demand: 1,
                window: Some((0.0, 5.0)),
                service: 0.0,
            }],
        };
        let plan = |arrival: f64, unassigned: Vec<String>| Plan {
            routes: vec![RoutePlan {
                vehicle_id: "v".into(),
                visits: vec![Visit {
                    stop_id: "s".into(),
                    location: 1,
                    arrival,
                    departure: arrival,
                }],
                distance: 20.0,
            }],
            unassigned,
            distance: 20.0,
        };
        let late = verify(&problem, &plan(10.0, vec![])).unwrap_err();
        assert!(late.contains("after 5"), "{late}");
        // The same stop on time (a window to 50) but also listed as unassigned.
        let mut roomy = problem.clone();
        roomy.stops[0].window = Some((0.0, 50.0));
        assert_eq!(verify(&roomy, &plan(10.0, vec![])), Ok(()));
        let twice = verify(&roomy, &plan(10.0, vec!["s".into()])).unwrap_err();
        assert!(twice.contains("both served and unassigned"), "{twice}");
        let empty = Plan {
            routes: vec![],
            unassigned: vec!["s".into()],
            distance: 0.0,
        };
        assert_eq!(verify(&problem, &empty), Ok(()));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let matrix = Matrix::euclidean(&[(0.0, 0.0)]);
        let stops = vec![Stop {
            id: "x".into(),
            location: 5,
            demand: 1,
            window: None,
            service: 0.0,
        }];
        let vehicles = vec![Vehicle {
            id: "v".into(),
            capacity: 1,
            start: 0,
            end: 0,
            shift: (0.0, 1.0),
        }];
        assert!(matches!(
            solve(
                &Problem {
                    matrix: matrix.clone(),
                    vehicles: vehicles.clone(),
                    stops
                },
                Duration::from_secs(1)
            ),
            Err(RoutingError::Invalid(_))
        ));
        // One id for two stops would let one of them drop out of the plan unseen.
        let twice = Stop {
            id: "x".into(),
            location: 0,
            demand: 0,
            window: None,
            service: 0.0,
        };
        let e = solve(
            &Problem {
                matrix,
                vehicles,
                stops: vec![twice.clone(), twice],
            },
            Duration::from_secs(1),
        );
        assert!(matches!(e, Err(RoutingError::Invalid(m)) if m.contains("twice")));
    }

    #[test]
    fn straight_line_matrix_uses_road_factor_and_speed() {
        // Oaxaca city to a village ~10 km away.
        let m = Matrix::straight_line(&[(17.0654, -96.7236), (17.0654, -96.6296)], 30.0, 1.3);
        let d = m.distances[1];
        assert!((d / 1.3 - 10_000.0).abs() < 200.0, "{d}");
        assert!((m.durations[1] - d / (30_000.0 / 3600.0)).abs() < 1e-6);
    }
}
