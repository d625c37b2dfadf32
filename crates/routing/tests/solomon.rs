//! The planner on real Solomon instances (`tests/data/solomon/`, copied from `../shared/data/vrptw/` with its BSD-2-Clause licence): every customer served, no
//! vehicle over capacity, every service started inside its window, every vehicle home before
//! the depot closes. Speed and quality are measured by `tianguis routes bench`, not here.

use std::time::Duration;
use tianguis_routing::{solomon, solve};

fn instance(name: &str) -> solomon::Instance {
    let path = format!(
        "{}/tests/data/solomon/{name}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    solomon::parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

#[test]
fn parses_the_three_instances() {
    for (name, customers) in [("C101", 100), ("R101", 100), ("RC101", 100)] {
        let i = instance(name);
        assert_eq!(
            (i.name.as_str(), i.vehicles, i.capacity, i.rows.len() - 1),
            (name, 25, 200, customers)
        );
    }
    assert!(solomon::parse("X\n\nVEHICLE\n").is_err());
    assert!(solomon::parse("").is_err());
}

/// A short day (C101: many vehicles, few stops each) and a long one (R211: a few vehicles with
/// thirty stops each, a rural courier's day), each checked stop by stop.
#[test]
fn plans_are_feasible_on_short_and_long_days() {
    for (name, best_known) in [("C101", 828.94), ("R211", 755.96)] {
        let inst = instance(name);
        let problem = inst.to_problem();
        let plan = solve(&problem, Duration::from_secs(3)).unwrap();
        assert!(plan.unassigned.is_empty(), "{name}: {:?}", plan.unassigned);
        let mut served: Vec<&str> = plan
            .routes
            .iter()
            .flat_map(|r| r.visits.iter().map(|v| v.stop_id.as_str()))
            .collect();
        served.sort_unstable();
        served.dedup();
        assert_eq!(served.len(), 100, "{name}: each customer once");
        assert!(plan.routes.len() <= inst.vehicles);
        let mut total = 0.0;
        for r in &plan.routes {
            let load: i32 = r.visits.iter().map(|v| inst.rows[v.location].2).sum();
            assert!(
                load <= inst.capacity,
                "{name}: {} carries {load}",
                r.vehicle_id
            );
            // Walk the route again from the depot: travel, waiting, service.
            let (mut clock, mut at) = (inst.rows[0].3, 0usize);
            for v in &r.visits {
                let (_, _, _, ready, due, service) = inst.rows[v.location];
                clock += problem.matrix.distances[at * problem.matrix.size + v.location];
                total += problem.matrix.distances[at * problem.matrix.size + v.location];
                assert!(
                    clock <= due + 1e-6,
                    "{name}: {} reaches {} at {clock} after {due}",
                    r.vehicle_id,
                    v.stop_id
                );
                clock = clock.max(ready) + service;
                at = v.location;
            }
            clock += problem.matrix.distances[at * problem.matrix.size];
            total += problem.matrix.distances[at * problem.matrix.size];
            assert!(
                clock <= inst.rows[0].4 + 1e-6,
                "{name}: {} home at {clock}",
                r.vehicle_id
            );
        }
        assert!(
            (total - plan.distance).abs() < 1e-6,
            "{name}: {total} vs {}",
            plan.distance
        );
        assert_eq!(tianguis_routing::verify(&problem, &plan), Ok(()));
        // Sanity: nobody beats the best-known distance by more than rounding.
        assert!(
            plan.distance > best_known * 0.999,
            "{name}: {}",
            plan.distance
        );
    }
}
