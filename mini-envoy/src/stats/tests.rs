use std::sync::Arc;

use super::format::{self, StatsQuery};
use super::*;

#[test]
fn counters_merge_exactly_across_threads() {
    let store = Store::default();
    let counter = store.root().scope("test").counter("hits");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = counter.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 + t {
                    c.inc();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    counter.add(5);
    let expected = 8 * 10_000 + (0..8).sum::<u64>() + 5;
    assert_eq!(counter.value(), expected);
    assert_eq!(store.counter_value("test.hits"), Some(expected));
}

#[test]
fn gauges_add_up_when_inc_and_dec_run_on_different_threads() {
    let store = Store::default();
    let g = store.root().gauge("active");
    let up = {
        let g = g.clone();
        std::thread::spawn(move || (0..1000).for_each(|_| g.inc()))
    };
    up.join().unwrap();
    let down = {
        let g = g.clone();
        std::thread::spawn(move || (0..400).for_each(|_| g.dec()))
    };
    down.join().unwrap();
    assert_eq!(g.value(), 600);
    assert_eq!(store.gauge_value("active"), Some(600));
    let set = store.root().gauge("set_only");
    set.set(7);
    set.set(3);
    assert_eq!(store.gauge_value("set_only"), Some(3));
}

#[test]
fn histograms_merge_buckets_sum_and_count_across_threads() {
    let store = Store::default();
    let h = store.root().histogram("rq_time");
    let threads: Vec<_> = [0u64, 3, 70, 100_000_000]
        .into_iter()
        .map(|v| {
            let h = h.clone();
            std::thread::spawn(move || (0..10).for_each(|_| h.record(v)))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let values = store.values();
    let Value::Histogram(v) = &values[0].value else { panic!("not a histogram") };
    assert_eq!(v.count, 40);
    assert_eq!(v.sum, 10 * (3 + 70 + 100_000_000));
    assert_eq!(v.buckets[0], 10, "0 ms <= 0.5");
    assert_eq!(v.buckets[2], 10, "3 ms <= 5");
    assert_eq!(v.buckets[6], 10, "70 ms <= 100");
    assert_eq!(v.buckets[BUCKETS.len()], 10, "overflow");
    assert_eq!((v.min, v.max), (0, 100_000_000));
    assert_eq!(v.cumulative()[BUCKETS.len() - 1], 30);
    assert_eq!(v.quantile(0.0), Some(0.0));
    assert_eq!(v.quantile(100.0), Some(100_000_000.0));
    let p50 = v.quantile(50.0).unwrap();
    assert!((1.0..=5.0).contains(&p50), "{p50}");
}

#[test]
fn registration_by_name_returns_the_same_cells() {
    let store = Store::default();
    let first = ClusterStats::new(&store, "backend");
    first.upstream_rq_total.inc();
    // The cluster is updated (CDS): new handles, same stats.
    let second = ClusterStats::new(&store, "backend");
    second.upstream_rq_total.inc();
    assert_eq!(store.counter_value("cluster.backend.upstream_rq_total"), Some(2));
    assert_eq!(second.upstream_rq_total.value(), 2);
}

#[test]
fn a_name_registered_with_another_kind_is_dropped_not_shared() {
    let store = Store::default();
    let c = store.root().counter("x");
    let g = store.root().gauge("x");
    c.inc();
    g.add(5);
    assert_eq!(store.counter_value("x"), Some(1));
}

#[test]
fn stats_past_the_limit_are_dropped() {
    let store = Store::new(StoreOptions { max_cells: 2 });
    let a = store.root().counter("a");
    let b = store.root().counter("b");
    let c = store.root().counter("c");
    let h = store.root().histogram("h");
    a.inc();
    b.inc();
    c.inc();
    h.record(1);
    assert_eq!((a.value(), b.value(), c.value()), (1, 1, 0));
}

#[test]
fn used_only_tracks_writes() {
    let store = Store::default();
    let root = store.root();
    let (c, _unused, g) = (root.counter("c"), root.counter("unused"), root.gauge("g"));
    c.inc();
    g.set(0);
    let q = StatsQuery::parse([("usedonly", "")]).unwrap();
    let names: Vec<String> = q.select(store.values()).into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["c", "g"]);
}

#[test]
fn envoy_names_and_tags() {
    let store = Store::default();
    let cluster = ClusterStats::new(&store, "backend");
    cluster.response(200);
    cluster.response(200);
    cluster.response(503);
    cluster.response(42); // not an HTTP status: ignored
    let hcm = HttpConnectionManagerStats::new(&store, "ingress_http");
    hcm.response(404);
    let listener = ListenerStats::new(&store, "127.0.0.1:10000".parse().unwrap());
    listener.downstream_cx_total.inc();
    let c = |n: &str| store.counter_value(n);
    assert_eq!(c("cluster.backend.upstream_rq_200"), Some(2));
    assert_eq!(c("cluster.backend.upstream_rq_2xx"), Some(2));
    assert_eq!(c("cluster.backend.upstream_rq_503"), Some(1));
    assert_eq!(c("cluster.backend.upstream_rq_5xx"), Some(1));
    assert_eq!(c("http.ingress_http.downstream_rq_4xx"), Some(1));
    assert_eq!(c("listener.127.0.0.1_10000.downstream_cx_total"), Some(1));
    assert_eq!(listener_stat_address("[::1]:80".parse().unwrap()), "[__1]_80");

    let prom = format::prometheus(&store.values());
    assert!(prom.contains("# TYPE envoy_cluster_upstream_rq counter\n"), "{prom}");
    assert!(prom.contains(
        "envoy_cluster_upstream_rq{envoy_cluster_name=\"backend\",envoy_response_code=\"200\"} 2\n"
    ));
    assert!(prom.contains(
        "envoy_cluster_upstream_rq_xx{envoy_cluster_name=\"backend\",envoy_response_code_class=\"5\"} 1\n"
    ));
    assert!(prom.contains(
        "envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix=\"ingress_http\",envoy_response_code_class=\"4\"} 1\n"
    ));
    assert!(prom.contains(
        "envoy_listener_downstream_cx_total{envoy_listener_address=\"127.0.0.1_10000\"} 1\n"
    ));
    assert_eq!(prom.matches("# TYPE envoy_cluster_upstream_rq_xx ").count(), 1);
}

#[test]
fn computed_gauges_follow_their_source() {
    use week1_core::cluster::{CircuitBreakerThresholds, ClusterCircuitBreakers, RoutingPriority};
    let store = Store::default();
    let stats = ClusterStats::new(&store, "b");
    let thresholds = CircuitBreakerThresholds { max_connections: 1, ..Default::default() };
    let breakers = Arc::new(ClusterCircuitBreakers::new(&thresholds, &thresholds));
    stats.watch_circuit_breakers(&breakers);
    let open = || store.gauge_value("cluster.b.circuit_breakers.default.cx_open");
    assert_eq!(open(), Some(0));
    let guard = breakers.for_priority(RoutingPriority::Default).connections().try_acquire();
    assert!(guard.is_ok());
    assert_eq!(open(), Some(1));
    assert_eq!(store.gauge_value("cluster.b.circuit_breakers.high.cx_open"), Some(0));
    drop(guard);
    assert_eq!(open(), Some(0));
    drop(breakers);
    assert_eq!(open(), Some(0));
}

#[test]
fn text_and_json_formats() {
    let store = Store::default();
    let root = store.root();
    root.counter("b.count").add(3);
    root.gauge("a.gauge").set(-2);
    root.histogram("c.time").record(7);
    root.histogram("d.empty");
    let stats = store.values();
    let text = format::text(&stats);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("a.gauge: -2"));
    assert_eq!(lines.next(), Some("b.count: 3"));
    let h = lines.next().unwrap();
    assert!(h.starts_with("c.time: P0(nan,7) P25(nan,"), "{h}");
    assert!(h.ends_with(" P100(nan,7)"), "{h}");
    assert_eq!(lines.next(), Some("d.empty: No recorded values"));

    let json = format::json(&stats);
    assert_eq!(json["stats"][0]["name"], "a.gauge");
    assert_eq!(json["stats"][1]["value"], 3);
    let hist = &json["stats"][2]["histograms"];
    assert_eq!(hist["supported_quantiles"][9], 100.0);
    assert_eq!(hist["computed_quantiles"][0]["name"], "c.time");
    assert_eq!(hist["computed_quantiles"][0]["values"][9]["cumulative"], 7.0);
    assert!(hist["computed_quantiles"][1]["values"][0]["cumulative"].is_null());

    let q = StatsQuery::parse([("filter", "^b\\."), ("type", "Counters")]).unwrap();
    assert_eq!(q.select(stats.clone()).len(), 1);
    assert!(StatsQuery::parse([("filter", "(")]).is_err());
    assert!(StatsQuery::parse([("type", "Bogus")]).is_err());
    let prom = format::prometheus(&stats);
    assert!(prom.contains("envoy_c_time_bucket{le=\"5\"} 0\nenvoy_c_time_bucket{le=\"10\"} 1\n"));
    assert!(prom.contains(
        "envoy_c_time_bucket{le=\"+Inf\"} 1\nenvoy_c_time_sum 7\nenvoy_c_time_count 1\n"
    ));
}

#[test]
fn reset_counters_zeroes_counters_only_and_counting_goes_on() {
    let store = Store::default();
    let hits = store.root().counter("hits");
    let active = store.root().gauge("active");
    let time = store.root().histogram("time");
    let worker = {
        let hits = hits.clone();
        std::thread::spawn(move || (0..100).for_each(|_| hits.inc()))
    };
    worker.join().unwrap();
    active.set(7);
    time.record(3);
    store.reset_counters();
    assert_eq!(hits.value(), 0);
    assert_eq!(store.counter_value("hits"), Some(0));
    assert_eq!(store.gauge_value("active"), Some(7));
    hits.add(2);
    assert_eq!(store.counter_value("hits"), Some(2));
    let values = store.values();
    let get = |name: &str| values.iter().find(|v| v.name == name).unwrap();
    assert_eq!(get("hits").value, Value::Counter(2));
    assert!(matches!(&get("time").value, Value::Histogram(h) if h.count == 1));
}
