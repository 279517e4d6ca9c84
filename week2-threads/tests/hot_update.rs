//! The "config hot update" scenario from `examples/hot_update.rs`, as a test.

#[path = "../examples/hot_update.rs"]
#[allow(dead_code, unreachable_pub)]
mod hot_update;

use hot_update::{RouteTable, Scenario, run_scenario};

#[test]
fn workers_see_complete_versions_moving_forward() {
    let scenario = Scenario { versions: 100, min_reads: 2_000, ..Scenario::default() };
    let reports = run_scenario(&scenario).expect("scenario ran");
    assert_eq!(reports.len(), 4);
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.worker, format!("worker-{i}"));
        assert_eq!(r.torn, 0, "{r:?}");
        assert_eq!(r.backwards, 0, "{r:?}");
        assert_eq!(r.last_version, scenario.versions, "{r:?}");
        assert!(r.reads >= scenario.min_reads, "{r:?}");
        assert!(r.versions_seen > 1, "readers ran while versions changed: {r:?}");
    }
}

#[test]
fn torn_tables_are_detectable() {
    // The check the readers rely on must be able to fail.
    let mut table = RouteTable::build(7);
    assert!(table.is_complete());
    table.routes[3].version = 6;
    assert!(!table.is_complete());
    let mut table = RouteTable::build(7);
    table.routes.pop();
    assert!(!table.is_complete());
}
