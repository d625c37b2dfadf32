//! The planner's first pass: ruin and recreate with slack induction by string removals (SISR,
//! Christiaens and Vanden Berghe, Transportation Science 54(2), 2020) under simulated
//! annealing, one independent search per core. Its best solutions are the initial population
//! of vrp-core, which refines them and has the last word.
//!
//! Why it exists: vrp-core's search needs a millisecond or two per generation, and on long
//! days (few couriers with thirty stops each, Solomon class 2) it settles in a few seconds
//! 5-20% above the best known distance. SISR's moves are cheap (each insertion is checked in
//! constant time against the route's earliest departures and latest starts), so tens of
//! thousands of them fit in a second, and its string removals free the slack long routes need.
//! Pure computation: no I/O, deterministic for a seed.

use crate::Problem;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use std::time::{Duration, Instant};

/// Average customers removed per ruin and longest string (the paper's c-bar and L-max).
const AVG_REMOVED: f64 = 10.0;
const MAX_STRING: f64 = 10.0;
/// Chance that a ruin removes a split string, and of skipping a position while inserting.
const SPLIT_RATE: f64 = 0.5;
const BLINK_RATE: f64 = 0.01;
/// Rounding allowed when a route is walked again: sums in another order differ in the last bits.
const SLACK: f64 = 1e-6;
/// An unserved stop costs more than any route: the search first serves, then shortens.
const UNASSIGNED: f64 = 1e9;

#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub vehicle: usize,
    pub stops: Vec<usize>,
    load: i32,
    distance: f64,
    /// Departure from node k: 0 is the start, k the k-th stop.
    dep: Vec<f64>,
    /// Latest start of service at node k (1..=n) such that the rest stays on time; n+1 is
    /// the latest arrival at the end.
    latest: Vec<f64>,
    /// Every stop started in its window and the vehicle home by its shift's end. Insertions
    /// keep this, but taking stops out may not where travel times break the triangle
    /// inequality (road networks): such a route makes its solution unacceptable.
    on_time: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Solution {
    pub routes: Vec<Route>,
    pub unassigned: Vec<usize>,
    pub cost: f64,
    /// Ruin-and-recreate steps the run that found it took.
    pub iterations: u64,
}

pub(crate) struct Search<'a> {
    p: &'a Problem,
    /// For each stop, the other stops nearest first.
    near: Vec<Vec<usize>>,
    /// The vehicles of each distinct kind (start, end, shift, capacity), for new routes,
    /// and an empty route of each kind.
    kinds: Vec<Vec<usize>>,
    empty: Vec<Route>,
}

impl<'a> Search<'a> {
    pub fn new(p: &'a Problem) -> Self {
        let n = p.stops.len();
        let near = (0..n)
            .map(|i| {
                let mut v: Vec<usize> = (0..n).filter(|&j| j != i).collect();
                v.sort_by(|&a, &b| self_dist(p, i, a).total_cmp(&self_dist(p, i, b)));
                v
            })
            .collect();
        let mut kinds: Vec<Vec<usize>> = Vec::new();
        for (i, v) in p.vehicles.iter().enumerate() {
            let same = |k: &Vec<usize>| {
                let w = &p.vehicles[k[0]];
                (w.start, w.end, w.capacity) == (v.start, v.end, v.capacity) && w.shift == v.shift
            };
            match kinds.iter_mut().find(|k| same(k)) {
                Some(k) => k.push(i),
                None => kinds.push(vec![i]),
            }
        }
        let mut search = Search {
            p,
            near,
            kinds,
            empty: vec![],
        };
        search.empty = search
            .kinds
            .iter()
            .map(|k| search.route(k[0], vec![]))
            .collect();
        search
    }

    fn dist(&self, a: usize, b: usize) -> f64 {
        self.p.matrix.distances[a * self.p.matrix.size + b]
    }

    fn time(&self, a: usize, b: usize) -> f64 {
        self.p.matrix.durations[a * self.p.matrix.size + b]
    }

    fn window(&self, s: usize) -> (f64, f64) {
        self.p.stops[s]
            .window
            .unwrap_or((f64::NEG_INFINITY, f64::INFINITY))
    }

    /// Location of node k of a route (0 the start, 1..=n the stops, n+1 the end).
    fn loc(&self, r: &Route, k: usize) -> usize {
        let v = &self.p.vehicles[r.vehicle];
        if k == 0 {
            v.start
        } else if k > r.stops.len() {
            v.end
        } else {
            self.p.stops[r.stops[k - 1]].location
        }
    }

    fn route(&self, vehicle: usize, stops: Vec<usize>) -> Route {
        let mut r = Route {
            vehicle,
            stops,
            load: 0,
            distance: 0.0,
            dep: vec![],
            latest: vec![],
            on_time: true,
        };
        self.refresh(&mut r);
        r
    }

    /// Recompute a route's load, distance, departures and latest starts.
    fn refresh(&self, r: &mut Route) {
        let v = &self.p.vehicles[r.vehicle];
        let n = r.stops.len();
        r.load = r.stops.iter().map(|&s| self.p.stops[s].demand).sum();
        r.dep.clear();
        r.dep.push(v.shift.0);
        r.distance = 0.0;
        r.on_time = true;
        for k in 1..=n {
            let s = r.stops[k - 1];
            let (a, b) = self.window(s);
            let (from, to) = (self.loc(r, k - 1), self.loc(r, k));
            r.distance += self.dist(from, to);
            let arrive = r.dep[k - 1] + self.time(from, to);
            r.on_time &= arrive <= b + SLACK;
            r.dep.push(arrive.max(a) + self.p.stops[s].service);
        }
        let (last, end) = (self.loc(r, n), self.loc(r, n + 1));
        r.distance += self.dist(last, end);
        r.on_time &= r.dep[n] + self.time(last, end) <= v.shift.1 + SLACK;
        r.latest.clear();
        r.latest.resize(n + 2, 0.0);
        r.latest[n + 1] = v.shift.1;
        for k in (1..=n).rev() {
            let s = r.stops[k - 1];
            let (_, b) = self.window(s);
            let next = r.latest[k + 1]
                - self.time(self.loc(r, k), self.loc(r, k + 1))
                - self.p.stops[s].service;
            r.latest[k] = b.min(next);
        }
    }

    /// The added distance of putting stop `s` after node k of route r, if it stays feasible.
    fn insertion(&self, r: &Route, k: usize, s: usize) -> Option<f64> {
        let stop = &self.p.stops[s];
        let (from, to) = (self.loc(r, k), self.loc(r, k + 1));
        let (a, b) = self.window(s);
        let start = (r.dep[k] + self.time(from, stop.location)).max(a);
        if start > b {
            return None;
        }
        let arrive_next = start + stop.service + self.time(stop.location, to);
        if arrive_next > r.latest[k + 1] {
            return None;
        }
        Some(self.dist(from, stop.location) + self.dist(stop.location, to) - self.dist(from, to))
    }

    fn cost(routes: &[Route], unassigned: usize) -> f64 {
        if routes.iter().any(|r| !r.on_time) {
            return f64::INFINITY;
        }
        routes.iter().map(|r| r.distance).sum::<f64>() + UNASSIGNED * unassigned as f64
    }

    /// Insert every removed stop at its cheapest feasible place (skipping a few at random),
    /// opening a free vehicle's route when none fits.
    fn recreate(&self, sol: &mut Solution, mut removed: Vec<usize>, rng: &mut SmallRng) {
        let depot = self.p.vehicles[0].start;
        match rng.random_range(0..11u32) {
            0..=3 => removed.shuffle(rng),
            4..=7 => removed.sort_by_key(|&s| std::cmp::Reverse(self.p.stops[s].demand)),
            8..=9 => removed.sort_by(|&a, &b| {
                self.dist(depot, self.p.stops[b].location)
                    .total_cmp(&self.dist(depot, self.p.stops[a].location))
            }),
            _ => removed.sort_by(|&a, &b| {
                self.dist(depot, self.p.stops[a].location)
                    .total_cmp(&self.dist(depot, self.p.stops[b].location))
            }),
        }
        for s in removed {
            let demand = self.p.stops[s].demand;
            let mut best: Option<(f64, usize, usize)> = None;
            for (ri, r) in sol.routes.iter().enumerate() {
                if r.load + demand > self.p.vehicles[r.vehicle].capacity {
                    continue;
                }
                for k in 0..=r.stops.len() {
                    if rng.random::<f64>() < BLINK_RATE {
                        continue;
                    }
                    if let Some(d) = self.insertion(r, k, s)
                        && best.is_none_or(|b| d < b.0)
                    {
                        best = Some((d, ri, k));
                    }
                }
            }
            // A free vehicle's new route competes with the cheapest insertion: with distance
            // the only cost, a stop out near the depot may be cheaper on its own.
            let opened = self.open_route(sol, s);
            match (best, opened) {
                (Some((d, _, _)), Some((o, v))) if o < d => {
                    sol.routes.push(self.route(v, vec![s]));
                }
                (Some((_, ri, k)), _) => {
                    sol.routes[ri].stops.insert(k, s);
                    self.refresh(&mut sol.routes[ri]);
                }
                (None, Some((_, v))) => sol.routes.push(self.route(v, vec![s])),
                (None, None) => sol.unassigned.push(s),
            }
        }
        sol.cost = Self::cost(&sol.routes, sol.unassigned.len());
    }

    /// The cheapest free vehicle to serve `s` alone, and that route's distance.
    fn open_route(&self, sol: &Solution, s: usize) -> Option<(f64, usize)> {
        let mut best: Option<(f64, usize)> = None;
        for (kind, empty) in self.kinds.iter().zip(&self.empty) {
            if self.p.stops[s].demand > self.p.vehicles[kind[0]].capacity {
                continue;
            }
            let Some(&v) = kind
                .iter()
                .find(|&&v| !sol.routes.iter().any(|r| r.vehicle == v))
            else {
                continue;
            };
            if let Some(d) = self.insertion(empty, 0, s)
                && best.is_none_or(|b| empty.distance + d < b.0)
            {
                best = Some((empty.distance + d, v));
            }
        }
        best
    }

    /// Remove strings of consecutive stops from routes near a random seed stop.
    fn ruin(&self, sol: &mut Solution, rng: &mut SmallRng) -> Vec<usize> {
        let mut removed = std::mem::take(&mut sol.unassigned);
        let served: usize = sol.routes.iter().map(|r| r.stops.len()).sum();
        if sol.routes.is_empty() || served == 0 {
            return removed;
        }
        let avg_len = served as f64 / sol.routes.len() as f64;
        let max_len = MAX_STRING.min(avg_len);
        let max_strings = (4.0 * AVG_REMOVED / (1.0 + max_len) - 1.0).max(1.0);
        let strings = rng.random_range(1..=max_strings.floor() as usize);
        let seed = rng.random_range(0..self.p.stops.len());
        let mut ruined: Vec<usize> = Vec::new();
        let strings = strings.min(sol.routes.len());
        for &c in std::iter::once(&seed).chain(self.near[seed].iter()) {
            if ruined.len() >= strings {
                break;
            }
            let Some(ri) = sol.routes.iter().position(|r| r.stops.contains(&c)) else {
                continue;
            };
            let v = sol.routes[ri].vehicle;
            if ruined.contains(&v) {
                continue;
            }
            ruined.push(v);
            let r = &mut sol.routes[ri];
            let pos = r.stops.iter().position(|&x| x == c).unwrap_or(0);
            let len = r.stops.len();
            let take = rng.random_range(1..=(max_len.min(len as f64).floor() as usize).max(1));
            if rng.random::<f64>() < SPLIT_RATE && take < len {
                // A split string: a longer string of which a run of m stops stays.
                let mut keep = 1;
                while take + keep < len && rng.random::<f64>() < 0.5 {
                    keep += 1;
                }
                let span = take + keep;
                let first = start_of(pos, span, len, rng);
                let kept_at = rng.random_range(0..=take);
                let span_stops: Vec<usize> = r.stops.drain(first..first + span).collect();
                let mut kept = Vec::new();
                for (i, x) in span_stops.into_iter().enumerate() {
                    if (kept_at..kept_at + keep).contains(&i) {
                        kept.push(x);
                    } else {
                        removed.push(x);
                    }
                }
                for (i, x) in kept.into_iter().enumerate() {
                    r.stops.insert(first + i, x);
                }
            } else {
                let first = start_of(pos, take, len, rng);
                removed.extend(r.stops.drain(first..first + take));
            }
            self.refresh(r);
        }
        sol.routes.retain(|r| !r.stops.is_empty());
        removed
    }

    /// One simulated-annealing run until `until`: returns the best solution found.
    pub fn run(&self, seed: u64, until: Instant) -> Solution {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut current = Solution {
            routes: vec![],
            unassigned: vec![],
            cost: 0.0,
            iterations: 0,
        };
        let all: Vec<usize> = (0..self.p.stops.len()).collect();
        self.recreate(&mut current, all, &mut rng);
        let mut best = current.clone();
        // The paper's temperatures (100 to 1) suit Solomon's distances; scale them to this
        // problem's typical distance between neighbouring stops.
        let scale = self.typical_gap() / 5.0;
        let (t0, t1) = (100.0 * scale, 1.0 * scale);
        let began = Instant::now();
        let span = until
            .saturating_duration_since(began)
            .as_secs_f64()
            .max(1e-3);
        let mut temperature = t0;
        let mut i = 0u64;
        // A small day settles long before its budget: stop when nothing better has turned up
        // in a good while.
        let patience = 20_000 + 2_000 * self.p.stops.len() as u64;
        let mut last_better = 0u64;
        loop {
            if i.is_multiple_of(64) {
                let now = Instant::now();
                if now >= until || i - last_better > patience {
                    break;
                }
                let f = (now - began).as_secs_f64() / span;
                temperature = t0 * (t1 / t0).powf(f);
            }
            i += 1;
            let mut next = current.clone();
            let removed = self.ruin(&mut next, &mut rng);
            self.recreate(&mut next, removed, &mut rng);
            let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            if next.cost < current.cost - temperature * u.ln() {
                current = next;
                if current.cost < best.cost {
                    best = current.clone();
                    last_better = i;
                }
            }
        }
        best.iterations = i;
        best
    }

    /// Median distance from a stop to its nearest other stop (about 5 on Solomon's plane).
    fn typical_gap(&self) -> f64 {
        let mut d: Vec<f64> = (0..self.p.stops.len())
            .filter_map(|i| {
                // The nearest stop elsewhere: stops sharing a place say nothing of the scale.
                self.near[i]
                    .iter()
                    .map(|&j| self.dist(self.p.stops[i].location, self.p.stops[j].location))
                    .find(|d| *d > 0.0)
            })
            .collect();
        if d.is_empty() {
            return 5.0;
        }
        d.sort_by(f64::total_cmp);
        d[d.len() / 2].max(1e-6)
    }
}

fn self_dist(p: &Problem, a: usize, b: usize) -> f64 {
    p.matrix.distances[p.stops[a].location * p.matrix.size + p.stops[b].location]
}

/// Where a string of `span` stops containing position `pos` starts, at random.
fn start_of(pos: usize, span: usize, len: usize, rng: &mut SmallRng) -> usize {
    let lo = (pos + 1).saturating_sub(span);
    let hi = pos.min(len - span);
    if lo >= hi {
        hi
    } else {
        rng.random_range(lo..=hi)
    }
}

/// Independent searches, one per core, for `budget`: their best solutions, best first.
pub(crate) fn search(p: &Problem, budget: Duration, seed: u64) -> Vec<Solution> {
    let now = Instant::now();
    let until = now
        .checked_add(budget)
        .unwrap_or(now + Duration::from_secs(3600));
    let search = Search::new(p);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let mut found: Vec<Solution> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let search = &search;
                scope.spawn(move || search.run(seed.wrapping_add(t as u64 * 0x9E37_79B9), until))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    found.sort_by(|a, b| a.cost.total_cmp(&b.cost));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Matrix, Stop, Vehicle};

    fn line_problem() -> Problem {
        // A depot at 0 and stops along a line, two of them with tight windows.
        let points: Vec<(f64, f64)> = (0..8).map(|i| (i as f64 * 10.0, 0.0)).collect();
        Problem {
            matrix: Matrix::euclidean(&points),
            vehicles: (0..3)
                .map(|i| Vehicle {
                    id: format!("v{i}"),
                    capacity: 4,
                    start: 0,
                    end: 0,
                    shift: (0.0, 500.0),
                })
                .collect(),
            stops: (1..8)
                .map(|i| Stop {
                    id: format!("s{i}"),
                    location: i,
                    demand: 1,
                    window: if i == 3 { Some((100.0, 120.0)) } else { None },
                    service: 5.0,
                })
                .collect(),
        }
    }

    #[test]
    fn routes_are_recomputed_consistently_and_insertions_respect_windows() {
        let p = line_problem();
        let s = Search::new(&p);
        let r = s.route(0, vec![0, 1]); // stops at 10 and 20
        assert_eq!(r.distance, 40.0);
        assert_eq!(r.dep, vec![0.0, 15.0, 30.0]);
        // The stop at 30 (index 2) opens at 100: after the stop at 20 it waits, still fits.
        assert_eq!(s.insertion(&r, 2, 2), Some(20.0));
        // A stop that must start by 120 cannot come after a long detour.
        let far = s.route(0, vec![6, 5, 4]);
        assert!(s.insertion(&far, 3, 2).is_none(), "{:?}", far.dep);
    }

    #[test]
    fn a_route_made_late_by_a_removal_is_flagged_and_never_accepted() {
        // Straight to the far stop takes 100, by way of the near one 10: travel times that
        // break the triangle inequality, as road networks can.
        let mut matrix = Matrix::euclidean(&[(0.0, 0.0), (5.0, 0.0), (10.0, 0.0)]);
        matrix.durations[2] = 100.0;
        let stop = |id: &str, location, window| Stop {
            id: id.into(),
            location,
            demand: 1,
            window,
            service: 0.0,
        };
        let p = Problem {
            matrix,
            vehicles: vec![Vehicle {
                id: "v".into(),
                capacity: 5,
                start: 0,
                end: 0,
                shift: (0.0, 1000.0),
            }],
            stops: vec![stop("near", 1, None), stop("far", 2, Some((0.0, 20.0)))],
        };
        let s = Search::new(&p);
        assert!(s.route(0, vec![0, 1]).on_time);
        let alone = s.route(0, vec![1]);
        assert!(
            !alone.on_time,
            "the far stop alone is reached at 100, after 20"
        );
        assert_eq!(Search::cost(&[alone], 0), f64::INFINITY);
    }

    #[test]
    fn the_search_serves_every_stop_within_capacity_and_windows() {
        let p = line_problem();
        let best = &search(&p, Duration::from_millis(200), 7)[0];
        assert!(best.unassigned.is_empty());
        let s = Search::new(&p);
        for r in &best.routes {
            assert!(r.load <= 4);
            let again = s.route(r.vehicle, r.stops.clone());
            assert_eq!(again.distance, r.distance);
            // Feasible: every start within its window (the backward pass never went below
            // the forward one).
            for k in 1..=r.stops.len() {
                assert!(again.dep[k] - p.stops[r.stops[k - 1]].service <= again.latest[k] + 1e-9);
            }
        }
        // Seven stops, capacity four: the four farthest on one trip (140), the rest on
        // another (60).
        assert_eq!(best.routes.len(), 2);
        assert!((best.cost - 200.0).abs() < 1e-6, "{}", best.cost);
    }
}
