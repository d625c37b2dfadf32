//! One carrier's day over their accepted jobs, the way rural posts and couriers work it: a
//! collection round from the base to the sellers and back, then a delivery round to the buyers
//! and pickup points and back, each solved with [`solve`](crate::solve) under part of the time
//! budget. The vehicle's capacity bounds what is on board in each round; the shift bounds both.
//! Jobs that do not fit are listed as unassigned (left for another day or another carrier).
//! Times are seconds since local midnight; travel is straight-line metres times a road factor
//! at a set speed.

use crate::{Matrix, Problem, RoutingError, Stop, Vehicle, solve};
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Courier {
    pub base: (f64, f64),
    /// Parcels the vehicle carries at once.
    pub capacity: i32,
    /// Shift start and end, seconds since midnight.
    pub shift: (f64, f64),
    pub speed_kmh: f64,
    pub road_factor: f64,
    /// Seconds spent at each stop.
    pub service_s: f64,
}

#[derive(Debug, Clone)]
pub struct DayJob {
    pub id: String,
    /// Where to collect the parcel; `None` when it is already on board.
    pub pickup: Option<(f64, f64)>,
    pub drop: (f64, f64),
    pub parcels: i32,
    /// When the drop can be made (a pickup point's opening hours), seconds since midnight.
    pub drop_window: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    Pickup,
    Drop,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DayStop {
    pub job_id: String,
    pub kind: StopKind,
    pub location: (f64, f64),
    pub arrival_s: f64,
    pub departure_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DayPlan {
    pub stops: Vec<DayStop>,
    pub unassigned: Vec<String>,
    pub distance_m: f64,
    /// Back at the base, seconds since midnight.
    pub end_s: f64,
}

/// Plan the day. Deterministic in shape (collection before delivery); the solver chooses the
/// order within each round.
pub fn plan_day(c: &Courier, jobs: &[DayJob], budget: Duration) -> Result<DayPlan, RoutingError> {
    if c.capacity < 0 || c.shift.0 > c.shift.1 {
        return Err(RoutingError::Invalid("courier is not valid".into()));
    }
    let to_collect: Vec<&DayJob> = jobs.iter().filter(|j| j.pickup.is_some()).collect();
    let on_board: i32 = jobs
        .iter()
        .filter(|j| j.pickup.is_none())
        .map(|j| j.parcels)
        .sum();
    let half = if to_collect.is_empty() {
        Duration::ZERO
    } else {
        budget / 2
    };
    let mut stops = Vec::new();
    let mut unassigned = Vec::new();
    let mut distance_m = 0.0;

    // Round 1: collect, with room for what is already on board.
    let mut collected: HashSet<String> = HashSet::new();
    let mut clock = c.shift.0;
    if !to_collect.is_empty() {
        let points: Vec<(f64, f64)> = std::iter::once(c.base)
            .chain(to_collect.iter().filter_map(|j| j.pickup))
            .collect();
        let round = round(
            c,
            &points,
            to_collect
                .iter()
                .enumerate()
                .map(|(i, j)| (j.id.clone(), i + 1, j.parcels, None))
                .collect(),
            (c.capacity - on_board).max(0),
            (clock, c.shift.1),
            half,
            StopKind::Pickup,
        )?;
        collected.extend(round.stops.iter().map(|s| s.job_id.clone()));
        unassigned.extend(round.unassigned);
        distance_m += round.distance_m;
        clock = round.end_s;
        stops.extend(round.stops);
    }

    // Round 2: deliver what is on board and what was collected.
    let to_drop: Vec<&DayJob> = jobs
        .iter()
        .filter(|j| j.pickup.is_none() || collected.contains(&j.id))
        .collect();
    if !to_drop.is_empty() {
        let points: Vec<(f64, f64)> = std::iter::once(c.base)
            .chain(to_drop.iter().map(|j| j.drop))
            .collect();
        let round = round(
            c,
            &points,
            to_drop
                .iter()
                .enumerate()
                .map(|(i, j)| (j.id.clone(), i + 1, j.parcels, j.drop_window))
                .collect(),
            c.capacity,
            (clock, c.shift.1.max(clock)),
            budget.saturating_sub(half),
            StopKind::Drop,
        )?;
        unassigned.extend(round.unassigned);
        distance_m += round.distance_m;
        clock = round.end_s;
        stops.extend(round.stops);
    }
    Ok(DayPlan {
        stops,
        unassigned,
        distance_m,
        end_s: clock,
    })
}

type RoundStop = (String, usize, i32, Option<(f64, f64)>);

fn round(
    c: &Courier,
    points: &[(f64, f64)],
    wanted: Vec<RoundStop>,
    capacity: i32,
    shift: (f64, f64),
    budget: Duration,
    kind: StopKind,
) -> Result<DayPlan, RoutingError> {
    let matrix = Matrix::straight_line(points, c.speed_kmh, c.road_factor);
    let problem = Problem {
        matrix: matrix.clone(),
        vehicles: vec![Vehicle {
            id: "carrier".into(),
            capacity,
            start: 0,
            end: 0,
            shift,
        }],
        stops: wanted
            .iter()
            .map(|(id, loc, parcels, window)| Stop {
                id: id.clone(),
                location: *loc,
                demand: *parcels,
                window: *window,
                service: c.service_s,
            })
            .collect(),
    };
    let plan = solve(&problem, budget.max(Duration::from_millis(200)))?;
    let mut stops = Vec::new();
    let mut end_s = shift.0;
    for r in &plan.routes {
        for v in &r.visits {
            stops.push(DayStop {
                job_id: v.stop_id.clone(),
                kind,
                location: points[v.location],
                arrival_s: v.arrival,
                departure_s: v.departure,
            });
        }
        if let Some(last) = r.visits.last() {
            end_s = last.departure + matrix.durations[last.location * matrix.size];
        }
    }
    Ok(DayPlan {
        stops,
        unassigned: plan.unassigned,
        distance_m: plan.distance,
        end_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn courier(capacity: i32) -> Courier {
        Courier {
            base: (17.0654, -96.7236),
            capacity,
            shift: (8.0 * 3600.0, 18.0 * 3600.0),
            speed_kmh: 30.0,
            road_factor: 1.3,
            service_s: 300.0,
        }
    }

    fn near(dlat: f64, dlng: f64) -> (f64, f64) {
        (17.0654 + dlat, -96.7236 + dlng)
    }

    #[test]
    fn collects_before_delivering_and_respects_capacity() {
        let jobs = vec![
            DayJob {
                id: "1".into(),
                pickup: Some(near(0.01, 0.0)),
                drop: near(0.05, 0.02),
                parcels: 2,
                drop_window: None,
            },
            DayJob {
                id: "2".into(),
                pickup: Some(near(-0.01, 0.01)),
                drop: near(-0.04, 0.03),
                parcels: 2,
                drop_window: Some((9.0 * 3600.0, 17.0 * 3600.0)),
            },
            DayJob {
                id: "3".into(),
                pickup: None,
                drop: near(0.02, -0.02),
                parcels: 1,
                drop_window: None,
            },
            // Too big for the van once the others are on board.
            DayJob {
                id: "4".into(),
                pickup: Some(near(0.0, 0.01)),
                drop: near(0.0, 0.04),
                parcels: 4,
                drop_window: None,
            },
        ];
        let plan = plan_day(&courier(6), &jobs, Duration::from_millis(600)).unwrap();
        let kinds: Vec<StopKind> = plan.stops.iter().map(|s| s.kind).collect();
        let first_drop = kinds.iter().position(|k| *k == StopKind::Drop).unwrap();
        assert!(kinds[..first_drop].iter().all(|k| *k == StopKind::Pickup));
        assert!(kinds[first_drop..].iter().all(|k| *k == StopKind::Drop));
        let picked: i32 = plan
            .stops
            .iter()
            .filter(|s| s.kind == StopKind::Pickup)
            .map(|s| jobs.iter().find(|j| j.id == s.job_id).unwrap().parcels)
            .sum();
        let on_board = 1;
        assert!(picked + on_board <= 6, "on board never exceeds capacity");
        assert_eq!(plan.unassigned, vec!["4".to_string()], "{plan:?}");
        let dropped: Vec<&str> = plan
            .stops
            .iter()
            .filter(|s| s.kind == StopKind::Drop)
            .map(|s| s.job_id.as_str())
            .collect();
        assert_eq!(dropped.len(), 3);
        assert!(dropped.contains(&"3"));
        // Every job left out of collection is not delivered either.
        assert!(!dropped.contains(&plan.unassigned[0].as_str()));
        for w in plan.stops.windows(2) {
            assert!(w[0].departure_s <= w[1].arrival_s);
        }
        let two = plan
            .stops
            .iter()
            .find(|s| s.job_id == "2" && s.kind == StopKind::Drop)
            .unwrap();
        assert!(two.arrival_s <= 17.0 * 3600.0);
        assert!(plan.end_s <= 18.0 * 3600.0 && plan.end_s > 8.0 * 3600.0);
        assert!(plan.distance_m > 0.0);
    }

    #[test]
    fn an_empty_day_is_an_empty_plan() {
        let plan = plan_day(&courier(5), &[], Duration::from_millis(100)).unwrap();
        assert!(plan.stops.is_empty() && plan.unassigned.is_empty());
        assert!(
            plan_day(
                &Courier {
                    shift: (10.0, 5.0),
                    ..courier(5)
                },
                &[],
                Duration::ZERO
            )
            .is_err()
        );
    }
}
