//! Loading a 1,000-cluster bootstrap (parse + deserialize + validate).
//! Target (issue 2): under 200 ms.

use criterion::{Criterion, criterion_group, criterion_main};
use std::fmt::Write;

use week1_core::config::load_bootstrap;

/// 1,000 STATIC clusters (3 endpoints, a health check, circuit breakers, outlier
/// detection) and one listener with a route to each cluster.
fn big_bootstrap(clusters: usize) -> String {
    let mut y = String::from(
        "admin:\n  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}\nstatic_resources:\n  listeners:\n  - name: main\n    address: {socket_address: {address: 0.0.0.0, port_value: 10000}}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: ingress\n          http_filters:\n          - name: envoy.filters.http.router\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n          route_config:\n            name: local\n            virtual_hosts:\n            - name: all\n              domains: [\"*\"]\n              routes:\n",
    );
    for i in 0..clusters {
        let _ = writeln!(
            y,
            "              - match: {{prefix: /svc{i}/}}\n                route: {{cluster: svc{i}, timeout: 2s}}"
        );
    }
    y.push_str("  clusters:\n");
    for i in 0..clusters {
        let _ = write!(
            y,
            "  - name: svc{i}
    connect_timeout: 0.25s
    lb_policy: LEAST_REQUEST
    circuit_breakers:
      thresholds:
      - {{priority: DEFAULT, max_connections: 100, max_pending_requests: 100, max_requests: 1000, max_retries: 3}}
      - {{priority: HIGH, max_connections: 200}}
    outlier_detection: {{consecutive_5xx: 5, interval: 10s, base_ejection_time: 30s}}
    health_checks:
    - timeout: 1s
      interval: 5s
      unhealthy_threshold: 3
      healthy_threshold: 2
      http_health_check: {{path: /healthz, expected_statuses: [{{start: 200, end: 300}}]}}
    load_assignment:
      cluster_name: svc{i}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 10.0.{}.{}, port_value: 8080}}}}}}
        - endpoint: {{address: {{socket_address: {{address: 10.1.{}.{}, port_value: 8080}}}}}}
          load_balancing_weight: 2
        - endpoint: {{address: {{socket_address: {{address: 10.2.{}.{}, port_value: 8080}}}}}}
",
            i / 250,
            i % 250,
            i / 250,
            i % 250,
            i / 250,
            i % 250
        );
    }
    y
}

fn config_load(c: &mut Criterion) {
    let text = big_bootstrap(1000);
    let loaded = load_bootstrap(&text).expect("the generated config is valid");
    assert_eq!(loaded.clusters().len(), 1000);
    let mut g = c.benchmark_group("config_load");
    g.sample_size(10);
    g.bench_function("bootstrap_1000_clusters", |b| b.iter(|| load_bootstrap(&text).unwrap()));
    g.finish();
}

criterion_group!(benches, config_load);
criterion_main!(benches);
