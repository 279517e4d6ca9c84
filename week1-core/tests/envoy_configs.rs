//! Loads every file of the Envoy config corpus (`tests/data/envoy-configs`,
//! origin and licence in its README) and checks each file's exact outcome:
//! loaded, or rejected with an `unsupported:` error naming the feature.
//! Never a panic, and never a parse or validation error on these real configs.

use std::path::Path;

use week1_core::config::bootstrap::{Bootstrap, DiscoveryResponse, ResourceList};
use week1_core::config::cluster::Cluster;
use week1_core::config::listener::Listener;
use week1_core::config::route::RouteConfiguration;
use week1_core::config::{ConfigError, load_str};

/// What a file is expected to do: `None` loads, `Some(s)`: `unsupported:` containing `s`.
#[rustfmt::skip]
const EXPECTED: &[(&str, Option<&str>)] = &[
    ("envoy__configs__ads.yaml", None),
    ("envoy__configs__envoy-demo.yaml", Some("static_resources.clusters[0].transport_socket")),
    ("envoy__configs__original-dst-cluster__proxy_config.yaml", Some("static_resources.clusters[0].type (ORIGINAL_DST")),
    ("envoy__docs__root__configuration__best_practices___include__edge.yaml", Some("layered_runtime.layers[0].static_layer")),
    ("envoy__docs__root__configuration__http__http_conn_man___include__local-reply.yaml", Some("local_reply_config")),
    ("envoy__docs__root__faq__configuration___include__local-cluster.yaml", None),
    ("envoy__docs__root__faq__load_balancing___include__circuit-breaker-config.yaml", None),
    ("envoy__docs__root__intro___include__life-of-a-request.yaml", Some("static_resources.clusters[0].http2_protocol_options")),
    ("envoy__docs__root__intro__arch_overview__upstream___include__load-balancing-policy.yaml", None),
    ("examples__cors__backend__envoy.yaml", None),
    ("examples__double-proxy__envoy-frontend.yaml", Some("static_resources.clusters[0].transport_socket")),
    ("examples__dynamic-config-cp__envoy.yaml", None),
    ("examples__dynamic-config-fs__configs__cds.yaml", None),
    ("examples__dynamic-config-fs__configs__lds.yaml", None),
    ("examples__dynamic-config-fs__envoy.yaml", None),
    ("examples__ext_authz__config__http-service.yaml", Some("envoy.extensions.filters.http.ext_authz.v3.ExtAuthz is not implemented")),
    ("examples__fault-injection__envoy.yaml", Some("layered_runtime.layers[0].disk_layer")),
    ("examples__front-proxy__envoy.yaml", Some("layered_runtime.layers[0].static_layer")),
    ("examples__front-proxy__service-envoy.yaml", None),
    ("examples__grpc-bridge__client__envoy-proxy.yaml", Some("grpc_http1_bridge.v3.Config is not implemented")),
    ("examples__local_ratelimit__envoy.yaml", None),
    ("examples__locality-load-balancing__envoy.yaml", None),
    ("examples__lua-cluster-specifier__envoy.yaml", Some("inline_cluster_specifier_plugin")),
    ("examples__lua__envoy.yaml", Some("envoy.extensions.filters.http.lua.v3.Lua")),
    ("examples__mysql__envoy.yaml", Some("mysql_proxy.v3.MySQLProxy is not implemented")),
    ("examples__rbac__envoy.yaml", Some("envoy.extensions.filters.http.rbac.v3.RBAC is not implemented")),
    ("examples__redis__envoy.yaml", Some("redis_proxy.v3.RedisProxy is not implemented")),
    ("examples__route-mirror__envoy.yaml", Some("request_mirror_policies")),
    ("examples__single-page-app__envoy.yaml", Some("oauth2.v3.OAuth2 is not implemented")),
    ("examples__tls-sni__envoy.yaml", Some("filter_chains[0].transport_socket")),
    ("examples__tls__envoy-https-http.yaml", Some("filter_chains[0].transport_socket")),
    ("examples__tls__envoy-https-passthrough.yaml", None),
    ("examples__udp__envoy.yaml", Some("socket_address.protocol")),
    ("examples__websocket__envoy-ws-route.yaml", None),
    ("gateway__internal__xds__bootstrap__testdata__render__enable-prometheus.yaml", Some("layered_runtime.layers[0].static_layer")),
    ("gateway__internal__xds__translator__testdata__out__xds-ir__http-route-redirect.routes.yaml", None),
    ("gateway__internal__xds__translator__testdata__out__xds-ir__http-route-regex.routes.yaml", None),
    ("gateway__internal__xds__translator__testdata__out__xds-ir__http-route-timeout.routes.yaml", None),
    ("gateway__internal__xds__translator__testdata__out__xds-ir__http-route-weighted-backend-with-filters.routes.yaml", None),
    ("gateway__internal__xds__translator__testdata__out__xds-ir__passive-failure-percentage.clusters.yaml", None),
    ("gateway__internal__xds__translator__testdata__out__xds-ir__request-buffer.listeners.yaml", None),
    ("gateway__internal__xds__translator__testdata__out__xds-ir__retry.routes.yaml", Some("retry_policy.retry_priority")),
];

/// Loads one corpus file the way its kind requires.
fn load(name: &str, text: &str) -> Result<(), ConfigError> {
    if name.ends_with(".routes.yaml") {
        load_str::<ResourceList<RouteConfiguration>>(text).map(drop)
    } else if name.ends_with(".clusters.yaml") {
        load_str::<ResourceList<Cluster>>(text).map(drop)
    } else if name.ends_with(".listeners.yaml") {
        load_str::<ResourceList<Listener>>(text).map(drop)
    } else if text.lines().any(|l| l.starts_with("resources:")) {
        load_str::<DiscoveryResponse>(text).map(drop)
    } else {
        load_str::<Bootstrap>(text).map(drop)
    }
}

#[test]
fn every_corpus_file_has_its_expected_outcome() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/envoy-configs");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|(n, _)| *n).collect();
    assert_eq!(files, listed, "the table must list exactly the corpus files");

    let mut failures = Vec::new();
    eprintln!("{:<100} outcome", "file");
    for (name, expected) in EXPECTED {
        let text = std::fs::read_to_string(dir.join(name)).expect("read corpus file");
        let outcome = load(name, &text);
        let shown = match &outcome {
            Ok(()) => "loaded".to_string(),
            Err(e) => format!("{}({e})", if e.is_unsupported() { "unsupported" } else { "ERROR" }),
        };
        eprintln!("{name:<100} {shown}");
        let ok = match (expected, &outcome) {
            (None, Ok(())) => true,
            (Some(feature), Err(e)) => e.is_unsupported() && e.to_string().contains(feature),
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: expected {expected:?}, got {shown}"));
        }
    }
    assert!(failures.is_empty(), "unexpected outcomes:\n{}", failures.join("\n"));
}
