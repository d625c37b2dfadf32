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

#[test]
fn c101_plan_is_feasible() {
    let inst = instance("C101");
    let problem = inst.to_problem();
    let plan = solve(&problem, Duration::from_secs(3)).unwrap();
    assert!(plan.unassigned.is_empty(), "{:?}", plan.unassigned);
    let served: usize = plan.routes.iter().map(|r| r.visits.len()).sum();
    assert_eq!(served, 100);
    assert!(plan.routes.len() <= inst.vehicles);
    for r in &plan.routes {
        let load: i32 = r.visits.iter().map(|v| inst.rows[v.location].2).sum();
        assert!(load <= inst.capacity, "{} carries {load}", r.vehicle_id);
        for v in &r.visits {
            let (_, _, _, _ready, due, _) = inst.rows[v.location];
            assert!(
                v.arrival <= due + 1e-6,
                "{} reaches {} at {} after {due}",
                r.vehicle_id,
                v.stop_id,
                v.arrival
            );
        }
        let last = r.visits.last().unwrap();
        let home = last.departure + problem.matrix.distances[last.location * problem.matrix.size];
        assert!(
            home <= inst.rows[0].4 + 1e-6,
            "{} home at {home}",
            r.vehicle_id
        );
    }
    // Sanity: nobody beats the best-known distance (828.94) by more than rounding.
    assert!(plan.distance > 828.94 * 0.999, "{}", plan.distance);
}
