//! Tests of the request and response header rules, each citing the Envoy
//! behaviour (mostly `test/common/http/conn_manager_utility_test.cc`).

use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;
use week1_core::config::http_connection_manager::{
    ForwardClientCertDetails, ServerHeaderTransformation,
};
use week1_core::headers::{HeaderMap, HeaderValue};

use super::utility::*;
use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.try_append(n, v).unwrap();
    }
    h
}

fn request(extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = headers(&[(":method", "GET"), (":path", "/"), (":authority", "example.com")]);
    for (n, v) in extra {
        h.try_append(n, v).unwrap();
    }
    h
}

fn ctx(remote: &str) -> RequestContext {
    RequestContext {
        remote_address: SocketAddr::new(remote.parse().unwrap(), 40000),
        local_address: "10.0.0.100:8080".parse().unwrap(),
        tls: false,
        codec_upgrade: false,
    }
}

/// A deterministic random source: 1, 2, 3, ...
fn counter() -> impl FnMut() -> u64 {
    let mut n = 0;
    move || {
        n += 1;
        n
    }
}

fn mutate(
    h: &mut HeaderMap,
    c: &RequestContext,
    config: &ConnectionManagerConfig,
) -> MutateOutcome {
    mutate_request_headers(h, c, config, &mut counter())
}

fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get_str(name)
}

fn edge() -> ConnectionManagerConfig {
    ConnectionManagerConfig { use_remote_address: true, ..Default::default() }
}

// ---- hop-by-hop ----

#[test]
fn hop_by_hop_request_headers_are_removed() {
    // Envoy: removeConnection, removeUpgrade (not an upgrade), removeKeepAlive,
    // removeProxyConnection, removeTransferEncoding.
    let mut h = request(&[
        ("connection", "keep-alive, x-hop"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("x-hop", "1"),
        ("x-end-to-end", "2"),
    ]);
    let out = mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    for gone in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"] {
        assert!(!h.contains(gone), "{gone}");
    }
    assert!(!h.contains("x-hop"), "named in Connection (RFC 9110 §7.6.1)");
    assert_eq!(get(&h, "x-end-to-end"), Some("2"));
    assert_eq!(out.upgrade, None);
}

#[test]
fn connection_cannot_remove_pseudo_headers() {
    let mut h = request(&[("connection", ":path, :authority")]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert_eq!(h.path(), Some("/"));
    assert_eq!(h.authority(), Some("example.com"));
}

#[test]
fn te_is_reduced_to_trailers() {
    // Envoy's sanitizeTEHeader: "trailers" is kept alone, anything else dropped.
    let mut h = request(&[("connection", "te"), ("te", "gzip, trailers")]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert_eq!(get(&h, "te"), Some("trailers"));
    let mut h = request(&[("te", "gzip;q=0.5, deflate")]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert!(!h.contains("te"));
}

#[test]
fn an_upgrade_keeps_connection_and_upgrade() {
    // Envoy: "If this is a Upgrade request, do not remove the Connection and
    // Upgrade headers, as we forward them verbatim to the upstream hosts."
    let mut h = request(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("te", "gzip")]);
    let c = RequestContext { codec_upgrade: true, ..ctx("10.0.0.1") };
    let out = mutate(&mut h, &c, &Default::default());
    assert_eq!(get(&h, "connection"), Some("Upgrade"));
    assert_eq!(get(&h, "upgrade"), Some("websocket"));
    assert_eq!(get(&h, "te"), Some("gzip"), "not sanitized for an upgrade, as in Envoy");
    assert_eq!(out.upgrade.as_deref(), Some("websocket"));
}

#[test]
fn upgrade_headers_the_codec_did_not_decode_as_an_upgrade_are_removed() {
    // E.g. an upgrade with a body, or over HTTP/1.0: the codec reads it as a
    // plain request, so the upstream must too.
    let mut h = request(&[("connection", "upgrade"), ("upgrade", "websocket")]);
    let out = mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert!(!h.contains("connection") && !h.contains("upgrade"));
    assert_eq!(out.upgrade, None);
}

#[test]
fn connect_is_reported_as_an_upgrade_without_scheme() {
    let mut h = headers(&[(":method", "CONNECT"), (":authority", "example.com:443")]);
    let out = mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert_eq!(out.upgrade.as_deref(), Some("CONNECT"));
    assert!(!h.contains(":scheme"));
}

#[test]
fn repeated_referer_is_dropped() {
    // Envoy: "A request header shouldn't have multiple referer field."
    let mut h = request(&[("referer", "https://a/"), ("referer", "https://b/")]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert!(!h.contains("referer"));
    let mut h = request(&[("referer", "https://a/")]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert_eq!(get(&h, "referer"), Some("https://a/"));
}

// ---- x-forwarded-for, trusted address, internal / edge ----

#[test]
fn use_remote_address_appends_the_peer_and_trusts_it() {
    // Envoy: UseRemoteAddressWhenNotLocalHostRemoteAddress.
    let mut h = request(&[]);
    let out = mutate(&mut h, &ctx("12.12.12.12"), &edge());
    assert_eq!(get(&h, "x-forwarded-for"), Some("12.12.12.12"));
    assert_eq!(out.trusted_downstream_address, Some("12.12.12.12".parse().unwrap()));
    assert!(out.edge && !out.internal);
    assert_eq!(get(&h, "x-envoy-external-address"), Some("12.12.12.12"));

    let mut h = request(&[("x-forwarded-for", "198.51.100.1")]);
    mutate(&mut h, &ctx("12.12.12.12"), &edge());
    assert_eq!(get(&h, "x-forwarded-for"), Some("198.51.100.1,12.12.12.12"));
}

#[test]
fn repeated_xff_fields_are_joined_before_appending() {
    let mut h = request(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2")]);
    mutate(&mut h, &ctx("12.12.12.12"), &edge());
    assert_eq!(h.get_all("x-forwarded-for").count(), 1);
    assert_eq!(get(&h, "x-forwarded-for"), Some("1.1.1.1,2.2.2.2,12.12.12.12"));
}

#[test]
fn internal_peer_without_xff_is_internal() {
    // Envoy: InternalServiceForceTrace / the internal-request rules: a single
    // internal address.
    let mut h = request(&[("x-envoy-retry-on", "5xx")]);
    let out = mutate(&mut h, &ctx("10.0.0.1"), &edge());
    assert!(out.internal && !out.edge);
    assert_eq!(get(&h, "x-envoy-internal"), Some("true"));
    assert_eq!(get(&h, "x-envoy-retry-on"), Some("5xx"), "internal requests keep x-envoy-*");
    assert!(!h.contains("x-envoy-external-address"));
}

#[test]
fn internal_peer_with_incoming_xff_is_external() {
    // Envoy: with use_remote_address, an incoming XFF means the peer is not the client.
    let mut h = request(&[("x-forwarded-for", "10.0.0.2")]);
    let out = mutate(&mut h, &ctx("10.0.0.1"), &edge());
    assert!(!out.internal && out.edge);
    assert_eq!(get(&h, "x-forwarded-for"), Some("10.0.0.2,10.0.0.1"));
    assert!(!h.contains("x-envoy-internal"));
}

#[test]
fn client_cannot_claim_to_be_internal() {
    let mut h = request(&[("x-envoy-internal", "true")]);
    let out = mutate(&mut h, &ctx("203.0.113.9"), &edge());
    assert!(!out.internal);
    assert!(!h.contains("x-envoy-internal"));
}

#[test]
fn skip_xff_append() {
    let config = ConnectionManagerConfig { skip_xff_append: true, ..edge() };
    let mut h = request(&[]);
    let out = mutate(&mut h, &ctx("12.12.12.12"), &config);
    assert!(!h.contains("x-forwarded-for"));
    assert_eq!(out.trusted_downstream_address, Some("12.12.12.12".parse().unwrap()));
}

#[test]
fn ipv4_as_mapped_ipv6() {
    let config = ConnectionManagerConfig {
        represent_ipv4_remote_address_as_ipv4_mapped_ipv6: true,
        ..edge()
    };
    let mut h = request(&[]);
    let out = mutate(&mut h, &ctx("12.12.12.12"), &config);
    assert_eq!(get(&h, "x-forwarded-for"), Some("::ffff:12.12.12.12"));
    assert_eq!(out.trusted_downstream_address, Some("::ffff:12.12.12.12".parse().unwrap()));
}

/// Envoy's XFF documentation examples (`config/http/http_conn_man/headers`):
/// XFF = "203.0.113.128, 203.0.113.10, 203.0.113.1", peer 192.0.2.5.
const DOC_XFF: &str = "203.0.113.128, 203.0.113.10, 203.0.113.1";

#[test]
fn xff_doc_example_edge_with_one_trusted_proxy() {
    // use_remote_address: true, xff_num_trusted_hops: 1 -> trusted client 203.0.113.1.
    let config = ConnectionManagerConfig { xff_num_trusted_hops: 1, ..edge() };
    let mut h = request(&[("x-forwarded-for", DOC_XFF), ("x-forwarded-proto", "https")]);
    let out = mutate(&mut h, &ctx("192.0.2.5"), &config);
    let client: IpAddr = "203.0.113.1".parse().unwrap();
    assert_eq!(out.trusted_downstream_address, Some(client));
    assert_eq!(get(&h, "x-envoy-external-address"), Some("203.0.113.1"));
    assert_eq!(
        get(&h, "x-forwarded-for"),
        Some("203.0.113.128, 203.0.113.10, 203.0.113.1,192.0.2.5")
    );
    assert_eq!(get(&h, "x-forwarded-proto"), Some("https"), "set by a trusted hop: kept");
}

#[test]
fn xff_doc_example_internal_proxy_with_trusted_hops() {
    // use_remote_address: false, xff_num_trusted_hops: 1 -> 203.0.113.10; no append.
    let config = ConnectionManagerConfig { xff_num_trusted_hops: 1, ..Default::default() };
    let mut h = request(&[("x-forwarded-for", DOC_XFF)]);
    let out = mutate(&mut h, &ctx("192.0.2.5"), &config);
    assert_eq!(out.trusted_downstream_address, Some("203.0.113.10".parse().unwrap()));
    assert_eq!(get(&h, "x-forwarded-for"), Some(DOC_XFF));
    assert!(!out.edge && !out.internal);
    // use_remote_address: false, hops 0 -> the last element.
    let mut h = request(&[("x-forwarded-for", DOC_XFF)]);
    let out = mutate(&mut h, &ctx("192.0.2.5"), &Default::default());
    assert_eq!(out.trusted_downstream_address, Some("203.0.113.1".parse().unwrap()));
}

#[test]
fn too_few_xff_elements_fall_back_to_the_peer() {
    // Envoy: "or there are but they didn't populate XFF properly, the trusted
    // client address is the source address of the immediate downstream".
    let config = ConnectionManagerConfig { xff_num_trusted_hops: 3, ..edge() };
    let mut h = request(&[("x-forwarded-for", "1.2.3.4")]);
    let out = mutate(&mut h, &ctx("192.0.2.5"), &config);
    assert_eq!(out.trusted_downstream_address, Some("192.0.2.5".parse().unwrap()));
}

#[test]
fn without_remote_address_a_single_internal_xff_is_internal() {
    // Envoy: "After remote address/XFF appending, the XFF header must contain a
    // *single* address", and "If configured to not use remote address, but no
    // XFF header is available, even if the connection is from an internal
    // address it will remain external."
    let config = ConnectionManagerConfig::default();
    let mut h = request(&[("x-forwarded-for", "10.1.1.1")]);
    assert!(mutate(&mut h, &ctx("10.0.0.1"), &config).internal);
    let mut h = request(&[("x-forwarded-for", "10.1.1.1,10.1.1.2")]);
    assert!(!mutate(&mut h, &ctx("10.0.0.1"), &config).internal);
    let mut h = request(&[]);
    let out = mutate(&mut h, &ctx("10.0.0.1"), &config);
    assert!(!out.internal && !out.edge);
    assert_eq!(out.trusted_downstream_address, None);
}

#[test]
fn custom_internal_ranges() {
    let config = ConnectionManagerConfig {
        internal_addresses: InternalAddresses {
            cidr_ranges: vec![("192.0.2.0".parse().unwrap(), 24)],
        },
        ..edge()
    };
    assert!(mutate(&mut request(&[]), &ctx("192.0.2.7"), &config).internal);
    assert!(!mutate(&mut request(&[]), &ctx("10.0.0.1"), &config).internal);
}

#[test]
fn last_address_from_xff_is_envoys() {
    // Envoy: UtilityTest.GetLastAddressFromXff.
    let h = headers(&[("x-forwarded-for", "192.0.2.10, 192.0.2.1 ,10.0.0.1")]);
    let at = |n| last_address_from_xff(&h, n);
    assert_eq!(at(0).address, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(at(1).address, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(at(2).address, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(at(3).address, None);
    assert!(!at(0).single_address);
    let one = headers(&[("x-forwarded-for", " 2001:db8::1 ")]);
    assert_eq!(
        last_address_from_xff(&one, 0),
        XffAddress { address: Some("2001:db8::1".parse().unwrap()), single_address: true }
    );
    let bad = headers(&[("x-forwarded-for", "not-an-ip")]);
    assert_eq!(last_address_from_xff(&bad, 0).address, None);
    assert_eq!(last_address_from_xff(&HeaderMap::new(), 0).address, None);
}

// ---- x-forwarded-proto, x-forwarded-port, :scheme ----

#[test]
fn forwarded_proto_is_overwritten_at_the_edge() {
    // Envoy: "If the prior hop is not a trusted proxy, overwrite any
    // x-forwarded-proto value it set as untrusted."
    let mut h = request(&[("x-forwarded-proto", "https")]);
    mutate(&mut h, &ctx("12.12.12.12"), &edge());
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    let mut h = request(&[]);
    mutate(&mut h, &RequestContext { tls: true, ..ctx("12.12.12.12") }, &edge());
    assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));
}

#[test]
fn forwarded_proto_is_kept_behind_a_trusted_proxy_and_set_when_absent() {
    let mut h = request(&[("x-forwarded-proto", "https")]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));
    let mut h = request(&[]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
}

#[test]
fn scheme_follows_a_valid_forwarded_proto() {
    // Envoy's getScheme: a valid x-forwarded-proto, else the connection's.
    let mut h = request(&[("x-forwarded-proto", "https")]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert_eq!(h.scheme(), Some("https"));
    let mut h = request(&[("x-forwarded-proto", "gopher")]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert_eq!(h.scheme(), Some("http"));
    let mut h = request(&[(":scheme", "https")]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert_eq!(h.scheme(), Some("https"), "an absolute-form target's scheme is kept");
}

#[test]
fn forwarded_port() {
    // Envoy: append_x_forwarded_port sets the listener port, overwriting an
    // untrusted one.
    let config = ConnectionManagerConfig { append_x_forwarded_port: true, ..edge() };
    let mut h = request(&[("x-forwarded-port", "1")]);
    mutate(&mut h, &ctx("12.12.12.12"), &config);
    assert_eq!(get(&h, "x-forwarded-port"), Some("8080"));
    let mut h = request(&[]);
    mutate(&mut h, &ctx("12.12.12.12"), &edge());
    assert!(!h.contains("x-forwarded-port"));
}

// ---- x-envoy-* sanitizing ----

fn all_envoy_headers() -> Vec<(&'static str, &'static str)> {
    UNTRUSTED_ENVOY_REQUEST_HEADERS
        .iter()
        .chain(EDGE_ONLY_ENVOY_REQUEST_HEADERS.iter())
        .map(|&n| (n, "x"))
        .collect()
}

#[test]
fn edge_requests_lose_every_untrusted_envoy_header() {
    // Envoy: cleanInternalHeaders(edge_request = true).
    let mut h = request(&all_envoy_headers());
    h.try_append("x-envoy-expected-rq-timeout-ms", "5").unwrap();
    mutate(&mut h, &ctx("12.12.12.12"), &edge());
    for name in UNTRUSTED_ENVOY_REQUEST_HEADERS.iter().chain(&EDGE_ONLY_ENVOY_REQUEST_HEADERS) {
        assert!(!h.contains(name), "{name}");
    }
}

#[test]
fn external_non_edge_requests_keep_the_edge_only_headers() {
    // Envoy: intermediate hops strip the retry/timeout headers but trust the
    // edge's x-envoy-downstream-service-* and x-envoy-decorator-operation.
    let mut h = request(&all_envoy_headers());
    let out = mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert!(!out.internal && !out.edge);
    for name in UNTRUSTED_ENVOY_REQUEST_HEADERS {
        assert!(!h.contains(name), "{name}");
    }
    for name in EDGE_ONLY_ENVOY_REQUEST_HEADERS {
        assert!(h.contains(name), "{name}");
    }
}

#[test]
fn the_external_address_of_a_non_edge_request_is_kept() {
    let mut h = request(&[("x-envoy-external-address", "198.51.100.7")]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert_eq!(get(&h, "x-envoy-external-address"), Some("198.51.100.7"));
    let mut h = request(&[("x-envoy-external-address", "198.51.100.7")]);
    mutate(&mut h, &ctx("12.12.12.12"), &edge());
    assert_eq!(get(&h, "x-envoy-external-address"), Some("12.12.12.12"));
}

// ---- x-request-id ----

#[test]
fn request_id_is_a_uuid_v4_from_the_random_source() {
    let id = new_request_id(&mut counter());
    let text = id.to_str().unwrap();
    let parsed = uuid::Uuid::parse_str(text).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
    assert_eq!(text, "01000000-0000-4000-8200-000000000000");
    assert_ne!(text, new_request_id(&mut || 7).to_str().unwrap());
}

#[test]
fn request_id_generated_when_absent() {
    let mut h = request(&[]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert_eq!(get(&h, "x-request-id"), Some("01000000-0000-4000-8200-000000000000"));
}

#[test]
fn request_id_of_edge_requests_is_replaced_unless_preserved() {
    // Envoy's UUIDRequestIDExtension::set: an edge request's id is untrusted.
    let mut h = request(&[("x-request-id", "client-chosen")]);
    mutate(&mut h, &ctx("12.12.12.12"), &edge());
    assert_eq!(get(&h, "x-request-id"), Some("01000000-0000-4000-8200-000000000000"));

    let config = ConnectionManagerConfig { preserve_external_request_id: true, ..edge() };
    let mut h = request(&[("x-request-id", "client-chosen")]);
    mutate(&mut h, &ctx("12.12.12.12"), &config);
    assert_eq!(get(&h, "x-request-id"), Some("client-chosen"));

    // Not an edge request: the id is trusted.
    let mut h = request(&[("x-request-id", "upstream-id")]);
    mutate(&mut h, &ctx("12.12.12.12"), &Default::default());
    assert_eq!(get(&h, "x-request-id"), Some("upstream-id"));
}

#[test]
fn generate_request_id_off() {
    let config = ConnectionManagerConfig { generate_request_id: false, ..edge() };
    let mut h = request(&[]);
    mutate(&mut h, &ctx("12.12.12.12"), &config);
    assert!(!h.contains("x-request-id"));
    let mut h = request(&[("x-request-id", "kept")]);
    mutate(&mut h, &ctx("12.12.12.12"), &config);
    assert_eq!(get(&h, "x-request-id"), Some("kept"));
}

// ---- via, x-forwarded-client-cert ----

#[test]
fn via_is_appended_to_requests() {
    // Envoy's appendVia: ", " between entries.
    let config =
        ConnectionManagerConfig { via: Some(HeaderValue::from_static("1.1 me")), ..edge() };
    let mut h = request(&[("via", "1.0 fred")]);
    mutate(&mut h, &ctx("12.12.12.12"), &config);
    assert_eq!(get(&h, "via"), Some("1.0 fred, 1.1 me"));
    let mut h = request(&[]);
    mutate(&mut h, &ctx("12.12.12.12"), &config);
    assert_eq!(get(&h, "via"), Some("1.1 me"));
}

#[test]
fn client_cert_header_is_sanitized_without_tls() {
    let mut h = request(&[("x-forwarded-client-cert", "By=spiffe://x")]);
    mutate(&mut h, &ctx("10.0.0.1"), &Default::default());
    assert!(!h.contains("x-forwarded-client-cert"));
    let config = ConnectionManagerConfig {
        forward_client_cert_details: ForwardClientCertDetails::AlwaysForwardOnly,
        ..Default::default()
    };
    let mut h = request(&[("x-forwarded-client-cert", "By=spiffe://x")]);
    mutate(&mut h, &ctx("10.0.0.1"), &config);
    assert!(h.contains("x-forwarded-client-cert"));
}

// ---- upgrades ----

#[test]
fn is_upgrade_needs_both_headers() {
    // Envoy's Utility::isUpgrade.
    let h = headers(&[("connection", "keep-alive, Upgrade"), ("upgrade", "WebSocket")]);
    assert_eq!(is_upgrade(&h), Some("WebSocket"));
    assert_eq!(is_upgrade(&headers(&[("upgrade", "websocket")])), None);
    assert_eq!(is_upgrade(&headers(&[("connection", "upgrade")])), None);
    assert_eq!(is_upgrade(&headers(&[("connection", "upgrades"), ("upgrade", "x")])), None);
}

#[test]
fn upgrades_need_hcm_config_and_routes_may_override() {
    // Envoy's createUpgradeFilterChain.
    let config = ConnectionManagerConfig {
        upgrades: vec![
            UpgradePolicy { upgrade_type: "websocket".into(), enabled: true },
            UpgradePolicy { upgrade_type: "spdy/3.1".into(), enabled: false },
        ],
        ..Default::default()
    };
    assert!(upgrade_allowed(&config, "WebSocket"));
    assert!(!upgrade_allowed(&config, "spdy/3.1"));
    assert!(!upgrade_allowed(&config, "h2c"));
    assert!(!upgrade_allowed(&config, "CONNECT"));
    assert!(upgrade_allowed_on_route(&config, "websocket", &[]));
    assert!(!upgrade_allowed_on_route(&config, "websocket", &[("websocket".into(), false)]));
    assert!(upgrade_allowed_on_route(&config, "spdy/3.1", &[("spdy/3.1".into(), true)]));
    assert!(
        !upgrade_allowed_on_route(&config, "h2c", &[("h2c".into(), true)]),
        "a route cannot allow a type the HCM does not list"
    );
}

// ---- responses ----

#[test]
fn hop_by_hop_response_headers_are_removed() {
    let mut r = headers(&[
        (":status", "200"),
        ("connection", "close, x-hop"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "close"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("x-hop", "1"),
        ("content-type", "text/plain"),
    ]);
    mutate_response_headers(&mut r, Some(&request(&[])), &Default::default());
    for gone in
        ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "x-hop"]
    {
        assert!(!r.contains(gone), "{gone}");
    }
    assert_eq!(get(&r, "content-type"), Some("text/plain"));
}

#[test]
fn switching_protocols_keeps_connection_and_upgrade() {
    let req = request(&[("connection", "upgrade"), ("upgrade", "websocket")]);
    let mut r = headers(&[(":status", "101"), ("connection", "Upgrade"), ("upgrade", "websocket")]);
    mutate_response_headers(&mut r, Some(&req), &Default::default());
    assert_eq!(get(&r, "connection"), Some("Upgrade"));
    assert_eq!(get(&r, "upgrade"), Some("websocket"));
    // A refusal of the upgrade is a plain response.
    let mut r = headers(&[(":status", "426"), ("connection", "Upgrade"), ("upgrade", "websocket")]);
    mutate_response_headers(&mut r, Some(&req), &Default::default());
    assert!(!r.contains("connection") && !r.contains("upgrade"));
    // A 101 to a request that did not ask for an upgrade is not trusted.
    let mut r = headers(&[(":status", "101"), ("connection", "Upgrade"), ("upgrade", "websocket")]);
    mutate_response_headers(&mut r, Some(&request(&[])), &Default::default());
    assert!(!r.contains("upgrade"));
}

#[test]
fn server_header_transformations() {
    let upstream = || headers(&[(":status", "200"), ("server", "nginx")]);
    let with =
        |t| ConnectionManagerConfig { server_header_transformation: t, ..Default::default() };

    let mut r = upstream();
    mutate_response_headers(&mut r, None, &with(ServerHeaderTransformation::Overwrite));
    assert_eq!(get(&r, "server"), Some("envoy"));

    let mut r = upstream();
    mutate_response_headers(&mut r, None, &with(ServerHeaderTransformation::AppendIfAbsent));
    assert_eq!(get(&r, "server"), Some("nginx"));
    let mut r = headers(&[(":status", "200")]);
    mutate_response_headers(&mut r, None, &with(ServerHeaderTransformation::AppendIfAbsent));
    assert_eq!(get(&r, "server"), Some("envoy"));

    let mut r = headers(&[(":status", "200")]);
    mutate_response_headers(&mut r, None, &with(ServerHeaderTransformation::PassThrough));
    assert!(!r.contains("server"));
}

#[test]
fn request_id_echo() {
    // Envoy: always_set_request_id_in_response, or x-envoy-force-trace on the request.
    let req = request(&[("x-request-id", "abc")]);
    let config =
        ConnectionManagerConfig { always_set_request_id_in_response: true, ..Default::default() };
    let mut r = headers(&[(":status", "200"), ("x-request-id", "upstream")]);
    mutate_response_headers(&mut r, Some(&req), &config);
    assert_eq!(get(&r, "x-request-id"), Some("abc"));

    let mut r = headers(&[(":status", "200")]);
    mutate_response_headers(&mut r, Some(&req), &Default::default());
    assert!(!r.contains("x-request-id"));

    let traced = request(&[("x-request-id", "abc"), ("x-envoy-force-trace", "true")]);
    let mut r = headers(&[(":status", "200")]);
    mutate_response_headers(&mut r, Some(&traced), &Default::default());
    assert_eq!(get(&r, "x-request-id"), Some("abc"));

    let mut r = headers(&[(":status", "503")]);
    mutate_response_headers(&mut r, None, &config);
    assert!(!r.contains("x-request-id"), "a local reply before request headers has none");
}

#[test]
fn via_is_appended_to_responses() {
    let config = ConnectionManagerConfig {
        via: Some(HeaderValue::from_static("1.1 me")),
        ..Default::default()
    };
    let mut r = headers(&[(":status", "200"), ("via", "1.1 origin")]);
    mutate_response_headers(&mut r, None, &config);
    assert_eq!(get(&r, "via"), Some("1.1 origin, 1.1 me"));
}

// ---- host ----

#[test]
fn host_port_stripping() {
    // Envoy's HeaderUtility::stripPortFromHost.
    let with = |strip_port| ConnectionManagerConfig { strip_port, ..Default::default() };
    let run = |authority: &str, config: &ConnectionManagerConfig| {
        let mut h = headers(&[(":method", "GET"), (":authority", authority)]);
        let port = normalize_host(&mut h, config, 8080);
        (h.authority().unwrap().to_string(), port)
    };
    let matching = with(StripPortMode::MatchingListener);
    assert_eq!(run("example.com:8080", &matching), ("example.com".into(), Some(8080)));
    assert_eq!(run("example.com:9090", &matching), ("example.com:9090".into(), None));
    let any = with(StripPortMode::Any);
    assert_eq!(run("example.com:9090", &any), ("example.com".into(), Some(9090)));
    assert_eq!(run("[::1]:9090", &any), ("[::1]".into(), Some(9090)));
    assert_eq!(run("[::1]", &any), ("[::1]".into(), None));
    assert_eq!(run("example.com:http", &any), ("example.com:http".into(), None));
    assert_eq!(
        run("example.com:9090", &with(StripPortMode::None)),
        ("example.com:9090".into(), None)
    );

    let mut h = headers(&[(":method", "CONNECT"), (":authority", "example.com:443")]);
    assert_eq!(normalize_host(&mut h, &any, 443), None);
    assert_eq!(h.authority(), Some("example.com:443"));
}

#[test]
fn trailing_host_dot() {
    // Envoy's HeaderUtility::stripTrailingHostDot.
    let config = ConnectionManagerConfig { strip_trailing_host_dot: true, ..Default::default() };
    for (input, want) in [
        ("example.com.", "example.com"),
        ("example.com.:443", "example.com:443"),
        ("example.com", "example.com"),
    ] {
        let mut h = headers(&[(":method", "GET"), (":authority", input)]);
        normalize_host(&mut h, &config, 80);
        assert_eq!(h.authority(), Some(want), "{input}");
    }
}

// ---- properties ----

const NAMES: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-envoy-internal",
    "x-envoy-retry-on",
    "x-envoy-original-path",
    "x-request-id",
    "referer",
    "via",
    "x-custom",
    ":scheme",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ,.:;=-]{0,24}",
        Just("upgrade".to_string()),
        Just("close, x-custom, te".to_string()),
        Just("trailers".to_string()),
        Just("10.0.0.1, 203.0.113.5".to_string()),
        Just("::1".to_string()),
    ]
}

fn remote() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        Just("10.0.0.1".parse().unwrap()),
        Just("127.0.0.1".parse().unwrap()),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

proptest! {
    #[test]
    fn mutate_request_headers_never_leaves_hop_by_hop_headers(
        fields in proptest::collection::vec((0..NAMES.len(), value()), 0..12),
        connect in any::<bool>(),
        codec_upgrade in any::<bool>(),
        remote in remote(),
        use_remote_address in any::<bool>(),
        hops in 0..3u32,
        skip_xff_append in any::<bool>(),
        generate_request_id in any::<bool>(),
        tls in any::<bool>(),
    ) {
        let mut h = if connect {
            headers(&[(":method", "CONNECT"), (":authority", "example.com:443")])
        } else {
            request(&[])
        };
        for (i, v) in &fields {
            h.try_append(NAMES[*i], v).unwrap();
        }
        let config = ConnectionManagerConfig {
            use_remote_address,
            xff_num_trusted_hops: hops,
            skip_xff_append,
            generate_request_id,
            ..Default::default()
        };
        let c = RequestContext {
            remote_address: SocketAddr::new(remote, 1234),
            local_address: "10.0.0.100:8080".parse().unwrap(),
            tls,
            codec_upgrade,
        };
        let out = mutate_request_headers(&mut h, &c, &config, &mut counter());

        for name in ["keep-alive", "proxy-connection", "transfer-encoding"] {
            prop_assert!(!h.contains(name), "{} left", name);
        }
        let kept_upgrade = out.upgrade.as_deref().is_some_and(|u| u != "CONNECT");
        if kept_upgrade {
            prop_assert!(codec_upgrade && is_upgrade(&h).is_some());
        } else {
            prop_assert!(!h.contains("connection") && !h.contains("upgrade"));
            for te in h.get_all("te") {
                prop_assert_eq!(te.as_bytes(), b"trailers");
            }
        }
        prop_assert_eq!(h.contains("x-envoy-internal"), out.internal);
        if !out.internal {
            for name in UNTRUSTED_ENVOY_REQUEST_HEADERS {
                prop_assert!(!h.contains(name), "{} left on an external request", name);
            }
        }
        prop_assert_eq!(out.edge, use_remote_address && !out.internal);
        if use_remote_address {
            prop_assert!(out.trusted_downstream_address.is_some());
            prop_assert!(h.contains("x-forwarded-proto"));
            if !skip_xff_append {
                let xff = h.get_str("x-forwarded-for").unwrap();
                let last = xff.rsplit(',').next().unwrap();
                prop_assert_eq!(last, remote.to_string());
            }
        }
        if generate_request_id {
            prop_assert!(h.contains("x-request-id"));
        }
        prop_assert!(h.get_all("x-forwarded-for").count() <= 1 || !use_remote_address || skip_xff_append);
    }

    #[test]
    fn mutate_response_headers_never_leaves_hop_by_hop_headers(
        fields in proptest::collection::vec((0..NAMES.len(), value()), 0..12),
        status in prop_oneof![Just(101u16), Just(200), Just(426), 100..600u16],
        upgrade_request in any::<bool>(),
    ) {
        let mut r = headers(&[(":status", &status.to_string())]);
        for (i, v) in &fields {
            if NAMES[*i] != ":scheme" {
                r.try_append(NAMES[*i], v).unwrap();
            }
        }
        let req = if upgrade_request {
            request(&[("connection", "upgrade"), ("upgrade", "websocket")])
        } else {
            request(&[])
        };
        let switching = status == 101 && upgrade_request && is_upgrade(&r).is_some();
        mutate_response_headers(&mut r, Some(&req), &Default::default());
        for name in ["keep-alive", "proxy-connection", "transfer-encoding"] {
            prop_assert!(!r.contains(name));
        }
        if !switching {
            prop_assert!(!r.contains("connection") && !r.contains("upgrade"));
        }
        prop_assert_eq!(r.get_str("server"), Some("envoy"));
    }
}
