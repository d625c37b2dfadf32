//! Route planning for a courier pool: vehicles with capacity and shifts, stops with demand,
//! time windows and service time, solved with vrp-core under a time budget. Also reads Solomon
//! VRPTW instances so the same code path can be measured against best-known solutions.
//!
//! The solver is CPU-bound and uses all cores: call [`solve`] from a blocking thread or a
//! worker, never on the async executor. No I/O here.

pub mod day;
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
    let secs = budget.as_secs_f64().max(0.1);
    let environment = Arc::new(Environment {
        quota: Some(Arc::new(TimeQuota::new(secs))),
        logger: Arc::new(|_: &str| {}),
        ..Environment::default()
    });
    let config = VrpConfigBuilder::new(vrp.clone())
        .set_environment(environment)
        .prebuild()
        .map_err(err)?
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
                    matrix,
                    vehicles,
                    stops
                },
                Duration::from_secs(1)
            ),
            Err(RoutingError::Invalid(_))
        ));
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
