//! One test per rejection path of the config model: each asserts the whole
//! message, with the field path and line:column.

use week1_core::config::bootstrap::{Bootstrap, DiscoveryResponse};
use week1_core::config::{load_bootstrap, load_str};

fn err(yaml: &str) -> String {
    match load_bootstrap(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

/// A listener whose HCM routes everything to `target`, plus the given clusters YAML.
fn with_route(target: &str, clusters: &str) -> String {
    format!(
        "static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 0.0.0.0, port_value: 8080}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          route_config:
            virtual_hosts:
            - name: v
              domains: [\"*\"]
              routes:
              - match: {{prefix: /}}
                route: {{cluster: {target}}}
  clusters:
{clusters}"
    )
}

const CLUSTER_A: &str = "  - name: a
    load_assignment:
      cluster_name: a
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 80}}}
";

#[test]
fn a_valid_bootstrap_loads_with_defaults() {
    let b: Bootstrap = load_bootstrap(&with_route("a", CLUSTER_A)).unwrap();
    let c = &b.clusters()[0];
    assert_eq!(c.connect_timeout(), std::time::Duration::from_secs(5));
    assert_eq!(c.lb_kind(), Some(week1_core::config::cluster::LbKind::RoundRobin));
    assert_eq!(
        c.circuit_breakers
            .clone()
            .unwrap_or_default()
            .for_priority(Default::default())
            .max_retries(),
        3
    );
}

#[test]
fn route_to_a_missing_cluster_is_rejected_without_cds() {
    let e = err(&with_route("nope", CLUSTER_A));
    assert!(e.starts_with("static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster"), "{e}");
    assert!(e.contains("nope") && e.ends_with("at line 17 column 34"), "{e}");
}

#[test]
fn duplicate_cluster_names() {
    let e = err(&with_route("a", &format!("{CLUSTER_A}{CLUSTER_A}")));
    assert_eq!(
        e,
        "static_resources.clusters[1].name: duplicate cluster name \"a\" at line 25 column 11"
    );
}

#[test]
fn static_cluster_needs_ip_addresses() {
    let e = err(&with_route("a", &CLUSTER_A.replace("127.0.0.1", "backend")));
    assert_eq!(
        e,
        "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: \"backend\" is not an IP address (a STATIC cluster needs IPs; use STRICT_DNS or LOGICAL_DNS for host names) at line 24 column 58"
    );
}

#[test]
fn logical_dns_needs_one_endpoint() {
    let two = CLUSTER_A
        .replace("    load_assignment", "    type: LOGICAL_DNS\n    load_assignment")
        + "        - endpoint: {address: {socket_address: {address: b, port_value: 80}}}\n";
    let e = err(&with_route("a", &two));
    assert_eq!(
        e,
        "static_resources.clusters[0].load_assignment: a LOGICAL_DNS cluster needs exactly one endpoint, found 2 at line 22 column 7"
    );
}

#[test]
fn eds_cluster_needs_eds_config() {
    let e = err(&with_route("a", "  - name: a\n    type: EDS\n"));
    assert_eq!(
        e,
        "static_resources.clusters[0].eds_cluster_config: must be set for an EDS cluster at line 19 column 5"
    );
}

#[test]
fn endpoint_weight_must_be_positive() {
    let c = CLUSTER_A
        .replace("port_value: 80}}}", "port_value: 80}}}\n          load_balancing_weight: 0");
    let e = err(&with_route("a", &c));
    assert_eq!(
        e,
        "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight: must be at least 1 at line 25 column 34"
    );
}

#[test]
fn ring_sizes_and_maglev_table() {
    let c = format!(
        "{CLUSTER_A}    ring_hash_lb_config: {{minimum_ring_size: 4096, maximum_ring_size: 1024}}\n"
    );
    let e = err(&with_route("a", &c));
    assert_eq!(
        e,
        "static_resources.clusters[0].ring_hash_lb_config.minimum_ring_size: 4096 is larger than maximum_ring_size 1024 at line 25 column 46"
    );
    let c = format!("{CLUSTER_A}    maglev_lb_config: {{table_size: 65536}}\n");
    let e = err(&with_route("a", &c));
    assert_eq!(
        e,
        "static_resources.clusters[0].maglev_lb_config.table_size: 65536 is not a prime number up to 5000011 at line 25 column 36"
    );
}

#[test]
fn unsupported_cluster_features() {
    let c = format!("{CLUSTER_A}    transport_socket: {{name: tls}}\n");
    let e = err(&with_route("a", &c));
    assert_eq!(
        e,
        "unsupported: static_resources.clusters[0].transport_socket (TLS to upstreams is not supported; clusters connect over plain TCP) at line 25 column 23"
    );
    let c = format!("{CLUSTER_A}    lb_policy: CLUSTER_PROVIDED\n");
    assert!(
        err(&with_route("a", &c))
            .starts_with("unsupported: static_resources.clusters[0].lb_policy (CLUSTER_PROVIDED")
    );
}

#[test]
fn unknown_lb_policy_value() {
    let c = format!("{CLUSTER_A}    lb_policy: ROUND_ROBBIN\n");
    let e = err(&with_route("a", &c));
    assert_eq!(
        e,
        "static_resources.clusters[0].lb_policy: unknown value \"ROUND_ROBBIN\" (expected one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV, CLUSTER_PROVIDED, LOAD_BALANCING_POLICY_CONFIG) at line 25 column 16"
    );
}

#[test]
fn health_check_needs_timeout_and_checker() {
    let c = format!(
        "{CLUSTER_A}    health_checks:\n    - interval: 5s\n      unhealthy_threshold: 2\n      healthy_threshold: 2\n      http_health_check: {{path: /h}}\n"
    );
    let e = err(&with_route("a", &c));
    assert_eq!(
        e,
        "static_resources.clusters[0].health_checks[0].timeout: must be set at line 26 column 7"
    );
    let c = format!(
        "{CLUSTER_A}    health_checks:\n    - {{timeout: 1s, interval: 5s, unhealthy_threshold: 2, healthy_threshold: 2, grpc_health_check: {{}}}}\n"
    );
    let e = err(&with_route("a", &c));
    assert_eq!(
        e,
        "unsupported: static_resources.clusters[0].health_checks[0].grpc_health_check (use http_health_check or tcp_health_check) at line 26 column 100"
    );
}

#[test]
fn outlier_percentages_are_bounded() {
    let c = format!("{CLUSTER_A}    outlier_detection: {{max_ejection_percent: 101}}\n");
    let e = err(&with_route("a", &c));
    assert_eq!(
        e,
        "static_resources.clusters[0].outlier_detection.max_ejection_percent: 101 is more than 100 percent at line 25 column 47"
    );
}

#[test]
fn circuit_breaker_priorities_are_unique() {
    let c = format!(
        "{CLUSTER_A}    circuit_breakers: {{thresholds: [{{priority: HIGH}}, {{priority: HIGH}}]}}\n"
    );
    let e = err(&with_route("a", &c));
    assert_eq!(
        e,
        "static_resources.clusters[0].circuit_breakers.thresholds[1].priority: High thresholds are given twice at line 25 column 66"
    );
}

#[test]
fn router_must_be_the_last_http_filter() {
    let y = with_route("a", CLUSTER_A).replace(
        "          stat_prefix: in\n",
        "          stat_prefix: in\n          http_filters:\n          - name: envoy.filters.http.router\n          - name: buf\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: 10}\n",
    );
    let e = err(&y);
    assert_eq!(
        e,
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0]: the router filter \"envoy.filters.http.router\" is terminal and must be the last filter at line 12 column 13"
    );
}

#[test]
fn http_filter_without_config_must_be_the_router() {
    let y = with_route("a", CLUSTER_A).replace(
        "          stat_prefix: in\n",
        "          stat_prefix: in\n          http_filters:\n          - name: envoy.filters.http.cors\n",
    );
    let e = err(&y);
    assert_eq!(
        e,
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config: must be set: filter \"envoy.filters.http.cors\" is not the router (only envoy.filters.http.router, envoy.router, router may omit typed_config) at line 12 column 13"
    );
}

#[test]
fn unknown_http_filter_type_is_unsupported() {
    let y = with_route("a", CLUSTER_A).replace(
        "          stat_prefix: in\n",
        "          stat_prefix: in\n          http_filters:\n          - name: lua\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}\n",
    );
    let e = err(&y);
    assert!(e.starts_with("unsupported: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config (type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua is not implemented"), "{e}");
    assert!(e.ends_with("at line 13 column 37"), "{e}");
}

#[test]
fn hcm_codec_http2_and_header_limit() {
    let y = with_route("a", CLUSTER_A)
        .replace("stat_prefix: in\n", "stat_prefix: in\n          codec_type: HTTP2\n");
    assert_eq!(
        err(&y),
        "unsupported: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.codec_type (downstream HTTP/2 and HTTP/3 are not served; use AUTO or HTTP1) at line 11 column 23"
    );
    let y = with_route("a", CLUSTER_A)
        .replace("stat_prefix: in\n", "stat_prefix: in\n          max_request_headers_kb: 9000\n");
    assert_eq!(
        err(&y),
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.max_request_headers_kb: 9000 is not between 1 and 8192 at line 11 column 35"
    );
}

#[test]
fn hcm_needs_route_config_or_rds() {
    let y = with_route("a", CLUSTER_A)
        .replace("          route_config:\n", "          route_configX:\n");
    let e = err(&y);
    assert!(e.contains("unknown field \"route_configX\""), "{e}");
    let y = with_route("a", CLUSTER_A).replace("          stat_prefix: in\n", "          stat_prefix: in\n          rds: {route_config_name: r, config_source: {ads: {}}}\n");
    assert_eq!(
        err(&y),
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config: route_specifier: only one of rds, route_config, scoped_routes may be set, found rds and route_config at line 13 column 13"
    );
}

#[test]
fn listener_checks() {
    let y = with_route("a", CLUSTER_A).replace("    filter_chains:\n    - filters:", "    transparent: true\n    filter_chains:\n    - transport_socket: {name: tls}\n      filters:");
    assert_eq!(
        err(&y),
        "unsupported: static_resources.listeners[0].filter_chains[0].transport_socket (TLS is not supported; filter chains accept plain TCP (pass TLS through with tcp_proxy)) at line 7 column 25"
    );
    let y = with_route("a", CLUSTER_A).replace("    - filters:", "    - filter_chain_match: {source_prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 33}]}\n      filters:");
    assert_eq!(
        err(&y),
        "static_resources.listeners[0].filter_chains[0].filter_chain_match.source_prefix_ranges[0].prefix_len: 33 is longer than 32 at line 6 column 90"
    );
    let y = with_route("a", CLUSTER_A).replace("    filter_chains:", "    listener_filters:\n    - name: envoy.filters.listener.tls_inspector\n      typed_config: {}\n    filter_chains:");
    assert_eq!(
        err(&y),
        "unsupported: static_resources.listeners[0].listener_filters[0].typed_config (listener filter tls_inspector is not implemented (TLS is not supported); no listener filters are implemented yet) at line 7 column 21"
    );
}

#[test]
fn tcp_proxy_checks_its_cluster() {
    let y = with_route("a", CLUSTER_A).replace(
        "      - name: hcm\n",
        "      - name: tcp\n        typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: missing}\n      - name: hcm\n",
    );
    assert_eq!(
        err(&y),
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster: unknown cluster \"missing\" at line 8 column 134"
    );
}

#[test]
fn xds_sources_need_static_grpc_clusters() {
    let y = "dynamic_resources:\n  ads_config:\n    api_type: GRPC\n    grpc_services: [{envoy_grpc: {cluster_name: xds}}]\n  cds_config: {ads: {}}\n";
    assert_eq!(
        err(y),
        "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name: cluster \"xds\" is not a static cluster (xDS and gRPC services need one in static_resources.clusters) at line 4 column 49"
    );
    let y = "dynamic_resources:\n  cds_config: {ads: {}}\n";
    assert_eq!(
        err(y),
        "dynamic_resources.ads_config: must be set when lds_config or cds_config uses ads at line 2 column 3"
    );
    let y = "dynamic_resources:\n  lds_config: {api_config_source: {api_type: REST}}\n";
    assert_eq!(
        err(y),
        "unsupported: dynamic_resources.lds_config.api_config_source.api_type (REST-JSON polling; use GRPC or DELTA_GRPC) at line 2 column 46"
    );
    let y = "dynamic_resources:\n  lds_config: {path: /a, ads: {}}\n";
    assert!(err(y).contains("config_source_specifier: only one of"), "{}", err(y));
}

#[test]
fn access_log_and_filter_configs() {
    let y = with_route("a", CLUSTER_A).replace("stat_prefix: in\n", "stat_prefix: in\n          access_log: [{name: f, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog}}]\n");
    assert_eq!(
        err(&y),
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.access_log[0].typed_config.path: must not be empty at line 11 column 48"
    );
    let y = with_route("a", CLUSTER_A).replace("          stat_prefix: in\n", "          stat_prefix: in\n          http_filters:\n          - name: rl\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: r, token_bucket: {max_tokens: 0, fill_interval: 1s}}\n          - name: envoy.router\n");
    assert_eq!(
        err(&y),
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.token_bucket.max_tokens: must be greater than 0 at line 13 column 165"
    );
    let y = with_route("a", CLUSTER_A).replace("          stat_prefix: in\n", "          stat_prefix: in\n          http_filters:\n          - name: ba\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth, users: {inline_string: \"u:plain\"}}\n          - name: envoy.router\n");
    assert_eq!(
        err(&y),
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.users.inline_string: line 1: only {SHA} hashes are supported at line 13 column 135"
    );
    let y = with_route("a", CLUSTER_A).replace("          stat_prefix: in\n", "          stat_prefix: in\n          http_filters:\n          - name: f\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, abort: {http_status: 700, percentage: {numerator: 1}}}\n          - name: envoy.router\n");
    assert_eq!(
        err(&y),
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.abort.http_status: 700 is not between 200 and 599 at line 13 column 128"
    );
}

#[test]
fn discovery_responses_load_typed_resources() {
    let y = "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: c\n  type: STRICT_DNS\n  load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: backend, port_value: 80}}}}]}]}\n";
    let r: DiscoveryResponse = load_str(y).unwrap();
    assert_eq!(r.resources[0].name(), "c");
    let dup =
        format!("{y}- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: c\n");
    let e = load_str::<DiscoveryResponse>(&dup).unwrap_err().to_string();
    assert_eq!(e, "resources[1]: duplicate resource name \"c\" at line 7 column 3");
    let bad = "resources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  address: {socket_address: {address: 0.0.0.0, port_value: 1}}\n  filter_chains: []\n";
    let e = load_str::<DiscoveryResponse>(bad).unwrap_err().to_string();
    assert_eq!(
        e,
        "resources[0].name: must not be empty (xDS resources are named) at line 2 column 3"
    );
}

#[test]
fn one_character_and_multibyte_domains_do_not_panic() {
    for domain in ["a", "é", "*é*", "é*"] {
        let yaml = format!(
            "virtual_hosts:\n- name: v\n  domains: [\"{domain}\"]\n  routes:\n  - match: {{prefix: /}}\n    direct_response: {{status: 200}}\n"
        );
        let _ =
            week1_core::config::load_str::<week1_core::config::route::RouteConfiguration>(&yaml);
    }
    let ok = "virtual_hosts:\n- name: v\n  domains: [a]\n  routes:\n  - match: {prefix: /}\n    direct_response: {status: 200}\n";
    assert!(
        week1_core::config::load_str::<week1_core::config::route::RouteConfiguration>(ok).is_ok()
    );
}
