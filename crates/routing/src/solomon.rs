//! Solomon VRPTW instances (the original text format): name, vehicle count and capacity, then
//! one row per customer (number, x, y, demand, ready time, due date, service time); row 0 is the
//! depot. Travel time equals Euclidean distance.

use crate::{Matrix, Problem, RoutingError, Stop, Vehicle};

#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub vehicles: usize,
    pub capacity: i32,
    /// (x, y, demand, ready, due, service); index 0 is the depot.
    pub rows: Vec<(f64, f64, i32, f64, f64, f64)>,
}

pub fn parse(text: &str) -> Result<Instance, RoutingError> {
    let bad = |m: &str| RoutingError::Invalid(format!("Solomon file: {m}"));
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let name = lines.next().ok_or_else(|| bad("empty"))?.to_string();
    let mut vehicles = None;
    let mut rows = Vec::new();
    for l in lines {
        let nums: Vec<f64> = l
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        let all_numeric = nums.len() == l.split_whitespace().count();
        if !all_numeric {
            continue; // headings
        }
        match nums.len() {
            2 if vehicles.is_none() => vehicles = Some((nums[0] as usize, nums[1] as i32)),
            7 => rows.push((nums[1], nums[2], nums[3] as i32, nums[4], nums[5], nums[6])),
            _ => return Err(bad(&format!("unexpected line '{l}'"))),
        }
    }
    let (vehicles, capacity) = vehicles.ok_or_else(|| bad("no vehicle line"))?;
    if rows.len() < 2 {
        return Err(bad("no customers"));
    }
    Ok(Instance {
        name,
        vehicles,
        capacity,
        rows,
    })
}

impl Instance {
    pub fn to_problem(&self) -> Problem {
        let points: Vec<(f64, f64)> = self.rows.iter().map(|r| (r.0, r.1)).collect();
        let depot = self.rows[0];
        let vehicles = (0..self.vehicles)
            .map(|i| Vehicle {
                id: format!("v{}", i + 1),
                capacity: self.capacity,
                start: 0,
                end: 0,
                shift: (depot.3, depot.4),
            })
            .collect();
        let stops = self
            .rows
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, r)| Stop {
                id: format!("c{i}"),
                location: i,
                demand: r.2,
                window: Some((r.3, r.4)),
                service: r.5,
            })
            .collect();
        Problem {
            matrix: Matrix::euclidean(&points),
            vehicles,
            stops,
        }
    }
}
