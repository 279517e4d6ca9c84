//! The gRPC ADS client against the bundled control plane on 127.0.0.1
//! (ephemeral port), SotW and Delta. Every wait is bounded.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use week1_core::config::bootstrap::Resource;
use week4_xds::grpc::client::{self, AdsHandler};

mod common;
use common::start_server;
use week4_xds::grpc::server::ControlPlane;
use week4_xds::{AdsMux, Interest, Mode, MuxConfig, Node, TypeUrl, Update};

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

fn resources(lb_policy: &str, with_api: bool) -> Vec<Value> {
    let mut v = vec![
        json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
               "name": "web", "type": "EDS", "connect_timeout": "1s", "lb_policy": lb_policy,
               "eds_cluster_config": {"eds_config": {"ads": {}}}}),
        json!({"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
               "cluster_name": "web",
               "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}]}]}),
        json!({"@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
               "name": "http", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
               "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {"@type": HCM, "stat_prefix": "in",
                   "rds": {"route_config_name": "local", "config_source": {"ads": {}}},
                   "http_filters": [{"name": "router", "typed_config": {"@type": ROUTER}}]}}]}]}),
        json!({"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
               "name": "local", "virtual_hosts": [{"name": "all", "domains": ["*"],
                   "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "web"}}]}]}),
    ];
    if with_api {
        v.push(json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                      "name": "api", "type": "STATIC", "connect_timeout": "1s",
                      "load_assignment": {"cluster_name": "api", "endpoints": [{"lb_endpoints": [
                          {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8081}}}}]}]}}));
    }
    v
}

#[derive(Debug)]
struct Seen {
    type_url: TypeUrl,
    names: Vec<String>,
    removed: Vec<String>,
}

struct Forward(mpsc::UnboundedSender<Seen>);

impl AdsHandler for Forward {
    fn apply(&mut self, u: Update<Resource>) {
        let names = u.resources.iter().map(|r| r.name().to_string()).collect();
        let _ = self.0.send(Seen { type_url: u.type_url, names, removed: u.removed });
    }
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an update within the deadlock guard")
        .expect("client alive")
}

async fn scenario(mode: Mode) {
    let cp = ControlPlane::new();
    assert_eq!(cp.set_resources(&resources("ROUND_ROBIN", true)).expect("snapshot"), 1);
    let (endpoint, stop_server) = start_server(&cp).await;

    let now = tokio::time::Instant::now().into_std();
    let mut mux =
        AdsMux::new(MuxConfig::new(mode, Node { id: "e2e".into(), ..Default::default() }));
    mux.subscribe(TypeUrl::Cluster, Interest::wildcard(), now);
    mux.subscribe(TypeUrl::Listener, Interest::wildcard(), now);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_client, shutdown) = watch::channel(false);
    let random = || 0u64;
    let client = tokio::spawn(client::run(endpoint, mux, Forward(tx), random, shutdown));

    // Envoy's order: CDS, EDS for the EDS cluster, LDS once clusters are warm, RDS.
    let order: Vec<(TypeUrl, Vec<String>)> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let s = recv(&mut rx).await;
            v.push((s.type_url, s.names));
        }
        v
    };
    assert_eq!(
        order,
        vec![
            (TypeUrl::Cluster, vec!["api".to_string(), "web".to_string()]),
            (TypeUrl::ClusterLoadAssignment, vec!["web".to_string()]),
            (TypeUrl::Listener, vec!["http".to_string()]),
            (TypeUrl::RouteConfiguration, vec!["local".to_string()]),
        ]
    );

    // A new version (changed "web", "api" gone) is pushed to the client.
    assert_eq!(cp.set_resources(&resources("LEAST_REQUEST", false)).expect("snapshot"), 2);
    let s = recv(&mut rx).await;
    assert_eq!(s.type_url, TypeUrl::Cluster);
    assert_eq!(s.removed, vec!["api".to_string()]);
    match mode {
        Mode::Sotw => {
            assert_eq!(s.names, vec!["web".to_string()], "SotW CDS carries every cluster")
        }
        Mode::Delta => {
            assert_eq!(s.names, vec!["web".to_string()], "delta carries the changed cluster")
        }
    }

    stop_client.send_replace(true);
    tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .expect("client stops")
        .expect("client task")
        .expect("client result");
    stop_server.send_replace(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_end_to_end() {
    scenario(Mode::Sotw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_end_to_end() {
    scenario(Mode::Delta).await;
}

/// A snapshot using what a real control plane sends beyond the basics:
/// circuit breakers, health checks, outlier detection, lb settings, protocol
/// options, regex/header matches, weighted clusters, retries, CORS and other
/// HTTP filters. Each resource must be ACKed (applied) and reach the model
/// exactly as the week 1 loader reads the same JSON from a file.
fn rich_resources() -> Vec<Value> {
    vec![
        json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
               "name": "web", "type": "EDS", "connect_timeout": "0.5s", "lb_policy": "LEAST_REQUEST",
               "least_request_lb_config": {"choice_count": 3},
               "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}},
               "circuit_breakers": {"thresholds": [{"max_connections": 64, "max_pending_requests": 32,
                   "max_requests": 128, "max_retries": 4}]},
               "health_checks": [{"timeout": "1s", "interval": "2s", "unhealthy_threshold": 3,
                   "healthy_threshold": 2, "http_health_check": {"path": "/healthz"}}],
               "outlier_detection": {"consecutive_5xx": 5, "base_ejection_time": "15s"},
               "typed_extension_protocol_options": {
                   "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                       "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                       "common_http_protocol_options": {"idle_timeout": "30s"},
                       "explicit_http_config": {"http_protocol_options": {}}}}}),
        json!({"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
               "cluster_name": "web",
               "endpoints": [{"lb_endpoints": [
                   {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}},
                    "load_balancing_weight": 2},
                   {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8081}}}}]}]}),
        json!({"@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
               "name": "http", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
               "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {"@type": HCM,
                   "stat_prefix": "in", "common_http_protocol_options": {"idle_timeout": "60s"},
                   "rds": {"route_config_name": "local", "config_source": {"ads": {}}},
                   "http_filters": [
                       {"name": "envoy.filters.http.cors", "typed_config": {
                           "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
                       {"name": "envoy.filters.http.local_ratelimit", "typed_config": {
                           "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                           "stat_prefix": "rl",
                           "token_bucket": {"max_tokens": 100, "tokens_per_fill": 100, "fill_interval": "1s"},
                           "filter_enabled": {"default_value": {"numerator": 100}},
                           "filter_enforced": {"default_value": {"numerator": 100}}}},
                       {"name": "router", "typed_config": {"@type": ROUTER}}]}}]}]}),
        json!({"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
               "name": "local", "virtual_hosts": [{"name": "all", "domains": ["*"],
                   "typed_per_filter_config": {"envoy.filters.http.cors": {
                       "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
                       "allow_origin_string_match": [{"prefix": "https://"}]}},
                   "routes": [
                       {"match": {"safe_regex": {"regex": "^/v[12]/.*"},
                                  "headers": [{"name": "x-tenant", "string_match": {"exact": "a"}}]},
                        "route": {"weighted_clusters": {"clusters": [
                                      {"name": "web", "weight": 3}, {"name": "web", "weight": 1}]},
                                  "retry_policy": {"retry_on": "5xx", "num_retries": 2}}},
                       {"match": {"prefix": "/"}, "route": {"cluster": "web", "timeout": "3s"}}]}]}),
    ]
}

struct Record(mpsc::UnboundedSender<Update<Resource>>);

impl AdsHandler for Record {
    fn apply(&mut self, u: Update<Resource>) {
        let _ = self.0.send(u);
    }
}

async fn rich_snapshot_is_acked(mode: Mode) {
    let sent = rich_resources();
    let cp = ControlPlane::new();
    cp.set_resources(&sent).expect("the control plane encodes every resource");
    let (endpoint, stop_server) = start_server(&cp).await;

    let now = tokio::time::Instant::now().into_std();
    let mut mux =
        AdsMux::new(MuxConfig::new(mode, Node { id: "rich".into(), ..Default::default() }));
    mux.subscribe(TypeUrl::Cluster, Interest::wildcard(), now);
    mux.subscribe(TypeUrl::Listener, Interest::wildcard(), now);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_client, shutdown) = watch::channel(false);
    let client = tokio::spawn(client::run(endpoint, mux, Record(tx), || 0u64, shutdown));

    let mut applied = Vec::new();
    for _ in 0..4 {
        let u = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an ACKed update within the deadlock guard")
            .expect("client alive");
        applied.extend(u.resources);
    }
    assert_eq!(applied.len(), sent.len());
    for (got, json) in applied.iter().zip(&sent) {
        let from_file: Resource =
            week1_core::config::load_str(&json.to_string()).expect("the loader accepts it");
        assert_eq!(got, &from_file, "{} differs after ADS", got.name());
    }

    stop_client.send_replace(true);
    tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .expect("client stops")
        .expect("client task")
        .expect("client result");
    stop_server.send_replace(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_snapshot_is_acked_over_sotw() {
    rich_snapshot_is_acked(Mode::Sotw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_snapshot_is_acked_over_delta() {
    rich_snapshot_is_acked(Mode::Delta).await;
}
