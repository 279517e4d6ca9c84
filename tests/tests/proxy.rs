//! End-to-end tests of the proxy data plane (issue #6 §7): the real
//! `mini-envoy` binary between hyper clients or raw sockets and hyper
//! backends, all on loopback with ephemeral ports.
//!
//! Each test starts its own mini-envoy (`--concurrency 2`) and backends, and
//! asserts both what the client got and what reached the upstream. Waits are
//! bounded polls; nothing sleeps to synchronize.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use mini_envoy_tests::client::request;
use mini_envoy_tests::config::{bootstrap, catch_all, cluster, file_access_log, http_listener};
use mini_envoy_tests::raw::exchange;
use mini_envoy_tests::{
    Backend, Behaviour, Client, MiniEnvoy, RawConnection, Reply, WAIT, closed_port, stat,
};

/// The access log the flag tests read: path, status, flags.
const LOG: &str = "access.log";
const FLAGS_FORMAT: &str = "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS%\n";

/// mini-envoy with one listener `front`: a catch-all virtual host with
/// `routes`, these clusters, `hcm_extra`, and the file access log `LOG`.
fn start(routes: &str, clusters: &[String], hcm_extra: &str) -> MiniEnvoy {
    let extra = format!("{}{hcm_extra}", file_access_log(LOG, FLAGS_FORMAT));
    MiniEnvoy::start(&bootstrap(&[http_listener("front", &catch_all(routes), &extra)], clusters))
}

/// Waits for the access-log line of `path` and returns it.
fn log_line(envoy: &MiniEnvoy, path: &str) -> String {
    let prefix = format!("{path} ");
    let lines = envoy.wait_for_file_line(LOG, WAIT, |l| l.starts_with(&prefix));
    lines.into_iter().find(|l| l.starts_with(&prefix)).expect("matched above")
}

fn post(addr: std::net::SocketAddr, path: &str, body: &'static str) -> hyper::Request<Full<Bytes>> {
    request(Method::POST, addr, path).body(Full::new(Bytes::from_static(body.as_bytes()))).unwrap()
}

// -------------------------------------------------------------------------
// Routing.

#[tokio::test]
async fn virtual_hosts_and_route_matches_pick_the_cluster() {
    let names = ["api", "exact", "regex", "header", "fallback"];
    let backends: Vec<Backend> =
        names.iter().map(|n| Backend::named(n, Behaviour::Fixed(200, "ok"))).collect();
    let clusters: Vec<String> =
        names.iter().zip(&backends).map(|(n, b)| cluster(n, &[b.addr()], "")).collect();
    let route_config = r#"
virtual_hosts:
- name: api
  domains: ["api.example.com", "api.example.com:*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: api }
- name: web
  domains: ["*"]
  routes:
  - match: { path: "/exact" }
    route: { cluster: exact }
  - match: { safe_regex: { regex: "/re/[0-9]+" } }
    route: { cluster: regex }
  - match:
      prefix: "/hdr"
      headers:
      - name: x-variant
        string_match: { exact: beta }
    route: { cluster: header }
  - match: { prefix: "/" }
    route: { cluster: fallback }
"#;
    let envoy =
        MiniEnvoy::start(&bootstrap(&[http_listener("front", route_config, "")], &clusters));
    let front = envoy.listener("front");
    let client = Client::new();
    let via = |r: &mini_envoy_tests::Response| r.header("x-backend").unwrap_or("-").to_string();

    assert_eq!(via(&client.get_host(front, "api.example.com", "/exact").await), "api");
    assert_eq!(via(&client.get_host(front, "API.example.com:8080", "/x").await), "api");
    assert_eq!(via(&client.get(front, "/exact").await), "exact");
    assert_eq!(via(&client.get(front, "/exact/more").await), "fallback");
    assert_eq!(via(&client.get(front, "/exact?q=1").await), "exact", "the query is not the path");
    assert_eq!(via(&client.get(front, "/re/123").await), "regex");
    assert_eq!(
        via(&client.get(front, "/re/12a").await),
        "fallback",
        "safe_regex matches the whole path"
    );
    let beta = request(Method::GET, front, "/hdr").header("x-variant", "beta");
    assert_eq!(via(&client.send(beta.body(Full::default()).unwrap()).await), "header");
    let alpha = request(Method::GET, front, "/hdr").header("x-variant", "alpha");
    assert_eq!(via(&client.send(alpha.body(Full::default()).unwrap()).await), "fallback");
    assert_eq!(via(&client.get(front, "/hdr").await), "fallback");
    let counts: Vec<usize> = backends.iter().map(Backend::request_count).collect();
    assert_eq!(counts, [2, 2, 1, 1, 4], "{names:?}");
}

#[tokio::test]
async fn direct_response_redirect_and_rewrites() {
    let echo = Backend::named("echo", Behaviour::Echo);
    let routes = r#"
- match: { prefix: "/direct" }
  direct_response: { status: 418, body: { inline_string: "teapot" } }
- match: { prefix: "/redirect" }
  redirect: { host_redirect: "other.example.com", path_redirect: "/new", response_code: FOUND }
- match: { prefix: "/old/" }
  route: { cluster: echo, prefix_rewrite: "/new/" }
- match: { prefix: "/hostrw" }
  route: { cluster: echo, host_rewrite_literal: "rewritten.example.com" }
"#;
    let envoy = start(routes, &[cluster("echo", &[echo.addr()], "")], "");
    let front = envoy.listener("front");
    let client = Client::new();

    let r = client.get(front, "/direct").await;
    assert_eq!((r.status, r.text().as_str()), (418, "teapot"));
    let r = client.get(front, "/redirect/x").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://other.example.com/new"));
    assert_eq!(echo.request_count(), 0, "direct responses and redirects never reach the upstream");

    let r = client.get(front, "/old/thing?a=b").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-echo-path"), Some("/new/thing?a=b"));
    let seen = echo.requests();
    assert_eq!(seen[0].header("x-envoy-original-path"), Some("/old/thing?a=b"));

    let r = client.get_host(front, "original.example.com", "/hostrw").await;
    assert_eq!(r.status, 200);
    let seen = echo.requests();
    assert_eq!(seen[1].header("host"), Some("rewritten.example.com"));
    assert_eq!(seen[1].header("x-envoy-original-path"), None);
}

// -------------------------------------------------------------------------
// Load balancing.

#[tokio::test]
async fn round_robin_over_three_hosts_is_even() {
    let backends: Vec<Backend> =
        ["a", "b", "c"].iter().map(|n| Backend::named(n, Behaviour::Fixed(200, "ok"))).collect();
    let hosts: Vec<_> = backends.iter().map(Backend::addr).collect();
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: rr }",
        &[cluster("rr", &hosts, "lb_policy: ROUND_ROBIN")],
        "",
    );
    // One keep-alive connection: one worker, one load balancer.
    let client = Client::new();
    for _ in 0..30 {
        assert_eq!(client.get(envoy.listener("front"), "/").await.status, 200);
    }
    let counts: Vec<usize> = backends.iter().map(Backend::request_count).collect();
    assert_eq!(counts, [10, 10, 10]);
}

#[tokio::test]
async fn weighted_clusters_split_roughly_by_weight() {
    let light = Backend::named("light", Behaviour::Fixed(200, "ok"));
    let heavy = Backend::named("heavy", Behaviour::Fixed(200, "ok"));
    let routes = r#"
- match: { prefix: "/" }
  route:
    weighted_clusters:
      clusters:
      - { name: light, weight: 25 }
      - { name: heavy, weight: 75 }
"#;
    let envoy = start(
        routes,
        &[cluster("light", &[light.addr()], ""), cluster("heavy", &[heavy.addr()], "")],
        "",
    );
    let client = Client::new();
    let mut by_backend: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        let r = client.get(envoy.listener("front"), "/").await;
        assert_eq!(r.status, 200);
        *by_backend.entry(r.header("x-backend").unwrap_or("-").to_string()).or_default() += 1;
    }
    let light_share = by_backend.get("light").copied().unwrap_or(0);
    // Expected 75 of 300 (σ ≈ 7.5): ±35 is over 4.5σ.
    assert!((40..=110).contains(&light_share), "{by_backend:?}");
    assert_eq!(light_share + by_backend.get("heavy").copied().unwrap_or(0), 300);
}

// -------------------------------------------------------------------------
// Retries.

#[tokio::test]
async fn a_5xx_is_retried_on_the_other_host() {
    let failing = Backend::named("failing", Behaviour::Fixed(503, "down"));
    let healthy = Backend::named("healthy", Behaviour::Fixed(200, "up"));
    let routes = r#"
- match: { prefix: "/" }
  route:
    cluster: svc
    retry_policy: { retry_on: 5xx, num_retries: 1 }
"#;
    let envoy = MiniEnvoy::start(&bootstrap(
        &[http_listener(
            "front",
            &format!(
                "virtual_hosts:\n- name: all\n  domains: [\"*\"]\n  include_request_attempt_count: true\n  routes:\n{}",
                mini_envoy_tests::config::indent(routes, 2)
            ),
            "",
        )],
        &[cluster("svc", &[failing.addr(), healthy.addr()], "")],
    ));
    let client = Client::new();
    for _ in 0..4 {
        let r = client.get(envoy.listener("front"), "/").await;
        assert_eq!((r.status, r.header("x-backend")), (200, Some("healthy")), "{}", envoy.output());
    }
    // Round robin sends some first attempts to the failing host; each of
    // those was retried on the healthy one, as the same request.
    let failed = failing.requests();
    assert!(!failed.is_empty(), "round robin never picked the failing host");
    let retried = healthy.requests();
    assert_eq!(retried.len(), 4);
    for f in &failed {
        let id = f.header("x-request-id").expect("x-request-id upstream");
        assert_eq!(f.header("x-envoy-attempt-count"), None, "first attempts carry no count");
        let retry = retried.iter().find(|r| r.header("x-request-id") == Some(id));
        let retry = retry.unwrap_or_else(|| panic!("request {id} was not retried"));
        assert_eq!(retry.header("x-envoy-attempt-count"), Some("2"));
    }
}

#[tokio::test]
async fn retries_stop_at_num_retries_and_pass_the_last_5xx_through() {
    let failing = Backend::named("failing", Behaviour::Statuses(vec![503, 502, 500, 200]));
    let routes = r#"
- match: { prefix: "/" }
  route:
    cluster: svc
    retry_policy: { retry_on: 5xx, num_retries: 2 }
"#;
    let envoy = start(routes, &[cluster("svc", &[failing.addr()], "")], "");
    let r = Client::new().get(envoy.listener("front"), "/").await;
    assert_eq!(r.status, 500, "the third attempt's answer goes to the client");
    assert_eq!(r.text(), "status 500");
    assert_eq!(failing.request_count(), 3);
    assert_eq!(log_line(&envoy, "/"), "/ 500 URX", "retry limit exceeded");
    let counter = |name: &'static str| stat(&envoy, name);
    assert_eq!(counter("cluster.svc.upstream_rq_retry").await, Some(2));
    assert_eq!(counter("cluster.svc.upstream_rq_retry_limit_exceeded").await, Some(1));
}

#[tokio::test]
async fn the_max_retries_breaker_and_retry_budgets_bound_retries() {
    // Each backend fails its first request and then succeeds: a retry that is
    // made gets 200, a retry refused by the breaker passes the 503 through.
    let flaky = |name| Backend::named(name, Behaviour::Statuses(vec![503, 200]));
    let (no_retries, empty_budget, budget, defaults) =
        (flaky("no_retries"), flaky("empty_budget"), flaky("budget"), flaky("defaults"));
    let retried =
        "  route:\n    cluster: {c}\n    retry_policy: { retry_on: 5xx, num_retries: 3 }\n";
    let routes: String = ["no_retries", "empty_budget", "budget", "defaults"]
        .iter()
        .map(|c| format!("- match: {{ prefix: \"/{c}\" }}\n{}", retried.replace("{c}", c)))
        .collect();
    let breakers =
        |thresholds: &str| format!("circuit_breakers:\n  thresholds: [ {thresholds} ]\n");
    let envoy = start(
        &routes,
        &[
            cluster("no_retries", &[no_retries.addr()], &breakers("{ max_retries: 0 }")),
            // A budget replaces max_retries: 0% of one request, no floor...
            cluster(
                "empty_budget",
                &[empty_budget.addr()],
                &breakers(
                    "{ max_retries: 5, retry_budget: { budget_percent: { value: 0 }, min_retry_concurrency: 0 } }",
                ),
            ),
            // ... or 100% of the one request in flight.
            cluster(
                "budget",
                &[budget.addr()],
                &breakers(
                    "{ max_retries: 0, retry_budget: { budget_percent: { value: 100 }, min_retry_concurrency: 0 } }",
                ),
            ),
            cluster("defaults", &[defaults.addr()], ""),
        ],
        "",
    );
    let client = Client::new();
    let front = envoy.listener("front");
    for (path, status, attempts, flags) in [
        ("/no_retries", 503, 1, "UO"),
        ("/empty_budget", 503, 1, "UO"),
        ("/budget", 200, 2, "-"),
        ("/defaults", 200, 2, "-"),
    ] {
        let r = client.get(front, path).await;
        assert_eq!(r.status, status, "{path}: {}", envoy.output());
        assert_eq!(log_line(&envoy, path), format!("{path} {status} {flags}"));
        let name = &path[1..];
        let overflow = stat(&envoy, &format!("cluster.{name}.upstream_rq_retry_overflow")).await;
        let made = stat(&envoy, &format!("cluster.{name}.upstream_rq_retry")).await;
        assert_eq!((made, overflow), (Some(attempts - 1), Some(2 - attempts)), "{path}");
    }
    let seen = [&no_retries, &empty_budget, &budget, &defaults].map(|b| b.request_count());
    assert_eq!(seen, [1, 1, 2, 2], "a refused retry never reaches the backend");
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_the_other_host() {
    let healthy = Backend::named("healthy", Behaviour::Fixed(200, "up"));
    let routes = r#"
- match: { prefix: "/" }
  route:
    cluster: svc
    retry_policy: { retry_on: connect-failure, num_retries: 1 }
"#;
    let envoy = start(routes, &[cluster("svc", &[closed_port(), healthy.addr()], "")], "");
    let client = Client::new();
    for _ in 0..4 {
        let r = client.get(envoy.listener("front"), "/").await;
        assert_eq!((r.status, r.header("x-backend")), (200, Some("healthy")), "{}", envoy.output());
    }
    assert_eq!(healthy.request_count(), 4);
}

#[tokio::test]
async fn a_connect_failure_without_retries_is_503_uf() {
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc }",
        &[cluster("svc", &[closed_port()], "")],
        "",
    );
    let r = Client::new().get(envoy.listener("front"), "/uf").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text(),
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    );
    assert_eq!(log_line(&envoy, "/uf"), "/uf 503 UF");
}

// -------------------------------------------------------------------------
// Timeouts, circuit breakers, local replies.

#[tokio::test]
async fn route_timeout_is_504_ut() {
    let stalled = Backend::named("stalled", Behaviour::Hold);
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc, timeout: 0.2s }",
        &[cluster("svc", &[stalled.addr()], "")],
        "",
    );
    let r = Client::new().get(envoy.listener("front"), "/slow").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "upstream request timeout");
    assert_eq!(stalled.request_count(), 1);
    assert_eq!(stalled.requests()[0].header("x-envoy-expected-rq-timeout-ms"), Some("200"));
    assert_eq!(log_line(&envoy, "/slow"), "/slow 504 UT");
}

/// Holds one request at a backend of `svc` (with `breakers`), then sends four
/// more, each of which must overflow with `503 UO` without reaching the
/// backend; returns the bodies of the overflows and, after the backend
/// releases the held request, its response and that of one more request.
async fn overflow_while_one_request_is_held(
    breakers: &str,
) -> (Backend, Vec<String>, mini_envoy_tests::Response, mini_envoy_tests::Response) {
    let stalled = Backend::named("stalled", Behaviour::Hold);
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc }",
        &[cluster("svc", &[stalled.addr()], breakers)],
        "",
    );
    let front = envoy.listener("front");
    let client = Client::new();
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.get(front, "/held").await }
    });
    assert!(stalled.wait_for_requests_async(1, WAIT).await, "{}", envoy.output());
    // Breakers are the cluster's, shared by both workers: a second
    // connection overflows whichever worker takes it.
    let mut bodies = Vec::new();
    for i in 0..4 {
        let r = client.get(front, &format!("/over{i}")).await;
        assert_eq!(r.status, 503, "{}", envoy.output());
        assert_eq!(log_line(&envoy, &format!("/over{i}")), format!("/over{i} 503 UO"));
        bodies.push(r.text());
    }
    assert_eq!(stalled.request_count(), 1, "overflowed requests never reach the upstream");
    stalled.release();
    let held = held.await.expect("held request task");
    let after = client.get(front, "/after").await;
    (stalled, bodies, held, after)
}

#[tokio::test]
async fn max_requests_circuit_breaker_overflows_with_503_uo() {
    let (_, bodies, held, after) =
        overflow_while_one_request_is_held("circuit_breakers:\n  thresholds:\n  - max_requests: 1")
            .await;
    for body in bodies {
        assert_eq!(
            body,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        );
    }
    assert_eq!((held.status, held.text().as_str()), (200, "released"));
    // The breaker is free again.
    assert_eq!(after.status, 200);
}

#[tokio::test]
async fn no_route_is_404_nr_and_no_hosts_is_503_uh() {
    let envoy = start(
        "- match: { prefix: \"/empty\" }\n  route: { cluster: empty }",
        &[cluster("empty", &[], "")],
        "",
    );
    let client = Client::new();
    let r = client.get(envoy.listener("front"), "/nowhere").await;
    assert_eq!(r.status, 404);
    assert_eq!(log_line(&envoy, "/nowhere"), "/nowhere 404 NR");
    let r = client.get(envoy.listener("front"), "/empty").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "no healthy upstream");
    assert_eq!(log_line(&envoy, "/empty"), "/empty 503 UH");
}

#[tokio::test]
async fn network_local_ratelimit_before_the_hcm_closes_connections_over_the_limit() {
    let backend = Backend::start(Behaviour::Fixed(200, "ok"));
    let listener = http_listener(
        "front",
        &catch_all("- match: { prefix: \"/\" }\n  route: { cluster: b }\n"),
        "",
    );
    // One token, refilled hourly: the first connection passes, the next is
    // closed before a byte reaches the connection manager.
    let rate_limit = "    - name: envoy.filters.network.local_ratelimit
      typed_config:
        \"@type\": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit
        stat_prefix: conns
        token_bucket: { max_tokens: 1, fill_interval: 3600s }
";
    let listener = listener.replacen("  - filters:\n", &format!("  - filters:\n{rate_limit}"), 1);
    let envoy = MiniEnvoy::start(&bootstrap(&[listener], &[cluster("b", &[backend.addr()], "")]));
    let front = envoy.listener("front");
    let client = Client::without_pool();
    assert_eq!(client.get(front, "/first").await.status, 200);
    let refused = client
        .try_send(request(Method::GET, front, "/second").body(Full::default()).unwrap())
        .await;
    assert!(refused.is_err(), "the second connection must be closed: {refused:?}");
    assert_eq!(backend.request_count(), 1);
    let stats =
        Client::new().get(envoy.admin(), "/stats?filter=%5Elocal_ratelimit%5C.").await.text();
    assert_eq!(stats.trim(), "local_ratelimit.conns.rate_limited: 1", "{stats}");
}

#[tokio::test]
async fn http_rate_limit_and_fault_filters_answer_locally_and_count_in_envoy_stats() {
    let backend = Backend::start(Behaviour::Fixed(200, "ok"));
    let routes = r#"- match: { prefix: "/fault" }
  route: { cluster: b }
  typed_per_filter_config:
    envoy.filters.http.fault:
      "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
      abort: { http_status: 418, percentage: { numerator: 100 } }
- match: { prefix: "/" }
  route: { cluster: b }
"#;
    let filters = r#"- name: envoy.filters.http.fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
- name: envoy.filters.http.local_ratelimit
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
    stat_prefix: rl
    token_bucket: { max_tokens: 2, fill_interval: 3600s }
    filter_enabled: { default_value: { numerator: 100 } }
    filter_enforced: { default_value: { numerator: 100 } }
"#;
    let listener = http_listener("front", &catch_all(routes), "");
    let listener = listener.replacen(
        "        http_filters:\n",
        &format!("        http_filters:\n{}", mini_envoy_tests::config::indent(filters, 8)),
        1,
    );
    let envoy = MiniEnvoy::start(&bootstrap(&[listener], &[cluster("b", &[backend.addr()], "")]));
    let front = envoy.listener("front");
    let client = Client::new();
    // The fault aborts before the rate limit spends a token.
    assert_eq!(client.get(front, "/fault").await.status, 418);
    assert_eq!(client.get(front, "/a").await.status, 200);
    assert_eq!(client.get(front, "/b").await.status, 200);
    let limited = client.get(front, "/c").await;
    assert_eq!((limited.status, limited.text().as_str()), (429, "local_rate_limited"));
    assert_eq!(backend.request_count(), 2);

    let stats = Client::new().get(envoy.admin(), "/stats").await.text();
    for line in [
        "http.front.fault.aborts_injected: 1",
        "http.front.fault.active_faults: 0",
        "rl.http_local_rate_limit.enabled: 3",
        "rl.http_local_rate_limit.ok: 2",
        "rl.http_local_rate_limit.rate_limited: 1",
        "rl.http_local_rate_limit.enforced: 1",
    ] {
        assert!(stats.lines().any(|l| l == line), "{line} missing from /stats:\n{stats}");
    }
    let prometheus = Client::new().get(envoy.admin(), "/stats/prometheus").await.text();
    assert!(
        prometheus.contains(
            r#"envoy_http_fault_aborts_injected{envoy_http_conn_manager_prefix="front"} 1"#
        ),
        "{prometheus}"
    );
}

// -------------------------------------------------------------------------
// HTTP/1.1 on the wire.

fn echo_proxy() -> (Backend, MiniEnvoy) {
    let echo = Backend::named("echo", Behaviour::Echo);
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: echo }",
        &[cluster("echo", &[echo.addr()], "")],
        "",
    );
    (echo, envoy)
}

#[test]
fn chunked_request_body_reaches_the_upstream_whole() {
    let (echo, envoy) = echo_proxy();
    let mut conn = RawConnection::connect(envoy.listener("front"));
    conn.send(
        b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
    );
    let r = conn.read_response().expect("a response");
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    let seen = echo.requests();
    assert_eq!(seen[0].body.as_ref(), b"hello world");
    assert_eq!(seen[0].header("content-length"), None);
    assert_eq!(seen[0].header("transfer-encoding"), Some("chunked"));
}

#[test]
fn chunked_response_body_reaches_the_client_chunked() {
    let chunky = Backend::named("chunky", Behaviour::Chunked(vec!["one,", "two,", "three"]));
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc }",
        &[cluster("svc", &[chunky.addr()], "")],
        "",
    );
    let mut conn = RawConnection::connect(envoy.listener("front"));
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = conn.read_response().expect("a response");
    assert_eq!(r.status, 200);
    assert!(r.chunked, "{r:?}");
    assert_eq!(r.text(), "one,two,three");
    // Keep-alive after a chunked response.
    conn.send(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_response().expect("a second response").text(), "one,two,three");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (echo, envoy) = echo_proxy();
    let mut conn = RawConnection::connect(envoy.listener("front"));
    conn.send(
        b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\
          GET /3 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    for (path, body) in [("/1", ""), ("/2", "abc"), ("/3", "")] {
        let r = conn.read_response().expect("a response");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-echo-path"), Some(path));
        assert_eq!(r.text(), body);
    }
    assert_eq!(echo.request_count(), 3);
}

#[test]
fn malformed_and_smuggling_requests_are_400_and_never_forwarded() {
    let (echo, envoy) = echo_proxy();
    let front = envoy.listener("front");
    let cases: [(&str, &[u8]); 9] = [
        (
            "content-length with transfer-encoding",
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "duplicate content-length",
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        (
            "identical duplicate content-length",
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        ),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n"),
        ("space before colon", b"GET / HTTP/1.1\r\nHost: t\r\nX-A : a\r\n\r\n"),
        ("bare LF", b"GET / HTTP/1.1\nHost: t\n\n"),
        ("invalid method", b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n"),
        ("no host", b"GET / HTTP/1.1\r\n\r\n"),
        (
            "transfer-encoding other than chunked",
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n0\r\n\r\n",
        ),
    ];
    for (what, bytes) in cases {
        let mut conn = RawConnection::connect(front);
        conn.send(bytes);
        let r = conn.read_response().unwrap_or_else(|| panic!("{what}: no response"));
        assert_eq!(r.status, 400, "{what}: {r:?}");
        assert!(conn.closed(), "{what}: the connection must close after a 400");
    }
    // A bad chunk size: the head was valid, so only the whole request must
    // not reach the upstream.
    let mut conn = RawConnection::connect(front);
    conn.send(
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    let r = conn.read_response().expect("bad chunk size: a response");
    assert_eq!(r.status, 400, "bad chunk size: {r:?}");
    assert!(conn.closed());

    // The proxy still serves, and the backend saw only this request.
    let ok = exchange(front, b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].status, 200);
    let seen = echo.requests();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].path, "/ok");
    assert!(echo.request_count() <= 2, "only the bad-chunk request's head may have been forwarded");
}

#[test]
fn http_1_0_and_connection_close_end_the_connection() {
    let (echo, envoy) = echo_proxy();
    let front = envoy.listener("front");

    let r = exchange(front, b"GET /ten HTTP/1.0\r\n\r\n");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].header("x-echo-path"), Some("/ten"));

    // HTTP/1.0 keep-alive is honoured.
    let mut conn = RawConnection::connect(front);
    conn.send(b"GET /ka1 HTTP/1.0\r\nConnection: keep-alive\r\nHost: t\r\n\r\n");
    let r = conn.read_response().expect("a response");
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_some(), "{r:?}");
    conn.send(b"GET /ka2 HTTP/1.0\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_response().expect("a second response").status, 200);
    assert!(conn.closed());

    // HTTP/1.1 Connection: close: the response says so and the proxy closes.
    let mut conn = RawConnection::connect(front);
    conn.send(b"GET /close HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = conn.read_response().expect("a response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(conn.closed());
    assert_eq!(echo.request_count(), 4);
    // None of it leaked upstream.
    for seen in echo.requests() {
        assert_ne!(seen.header("connection"), Some("close"), "{seen:?}");
    }
}

#[test]
fn expect_100_continue_is_answered_by_the_proxy() {
    let (echo, envoy) = echo_proxy();
    let mut conn = RawConnection::connect(envoy.listener("front"));
    conn.send(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = conn.read_response().expect("100 Continue");
    assert_eq!(interim.status, 100);
    conn.send(b"hello");
    let r = conn.read_response().expect("the final response");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    assert_eq!(echo.requests()[0].header("expect"), None);
}

// -------------------------------------------------------------------------
// Headers the proxy adds and removes.

#[tokio::test]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_removed() {
    let backend = Backend::named(
        "b",
        Behaviour::custom(|_, _| {
            Reply::new(200, "ok")
                .header("keep-alive", "timeout=5")
                .header("proxy-connection", "keep-alive")
                .header("x-kept", "yes")
        }),
    );
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc, timeout: 3s }",
        &[cluster("svc", &[backend.addr()], "")],
        "use_remote_address: true\n",
    );
    let client = Client::new();
    let req = request(Method::GET, envoy.listener("front"), "/h")
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "keep-alive, x-nominated")
        .header("x-nominated", "1")
        .header("keep-alive", "timeout=9")
        .header("proxy-connection", "keep-alive")
        .header("te", "gzip")
        .header("x-envoy-upstream-rq-timeout-ms", "1")
        .body(Full::default())
        .unwrap();
    let r = client.send(req).await;
    assert_eq!(r.status, 200, "{}", envoy.output());
    assert_eq!(r.header("x-kept"), Some("yes"));
    assert_eq!(r.header("keep-alive"), None);
    assert_eq!(r.header("proxy-connection"), None);
    let service_time = r.header("x-envoy-upstream-service-time").expect("service time");
    assert!(service_time.parse::<u64>().is_ok(), "{service_time:?}");

    let seen = &backend.requests()[0];
    assert_eq!(seen.header("x-forwarded-for"), Some("203.0.113.7,127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let id = seen.header("x-request-id").expect("x-request-id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    // An external client's x-envoy-* timeout is not trusted.
    assert_eq!(seen.header("x-envoy-expected-rq-timeout-ms"), Some("3000"));
    assert_eq!(seen.header("x-envoy-upstream-rq-timeout-ms"), None);
    for hop in ["keep-alive", "proxy-connection", "te", "x-nominated"] {
        assert_eq!(seen.header(hop), None, "{hop} reached the upstream");
    }
    assert_ne!(seen.header("connection"), Some("keep-alive, x-nominated"));
}

#[tokio::test]
async fn request_id_is_kept_for_an_internal_client_and_default_timeout_is_15s() {
    let (echo, envoy) = echo_proxy();
    let client = Client::new();
    let req = request(Method::GET, envoy.listener("front"), "/id")
        .header("x-request-id", "abc-123")
        .body(Full::default())
        .unwrap();
    assert_eq!(client.send(req).await.status, 200);
    let r = client.send(post(envoy.listener("front"), "/p", "body")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "body"));
    let seen = echo.requests();
    assert_eq!(seen[0].header("x-request-id"), Some("abc-123"));
    assert_eq!(seen[0].header("x-envoy-expected-rq-timeout-ms"), Some("15000"));
    assert!(seen[1].header("x-request-id").is_some_and(|id| id != "abc-123"));
    assert_eq!(seen[1].header("content-length"), Some("4"));
}

// -------------------------------------------------------------------------
// The demo mode.

#[tokio::test]
async fn demo_mode_serves_on_its_fixed_ports() {
    let ports = [10000, 10001, 10002, 9901];
    for port in ports {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            eprintln!("SKIPPED demo_mode_serves_on_its_fixed_ports: 127.0.0.1:{port} is taken");
            return;
        }
    }
    let envoy = MiniEnvoy::start_with_args(&["--concurrency", "2"], 3, true);
    let front = envoy.listener("demo_listener");
    assert_eq!(front.port(), 10000);
    assert_eq!(envoy.admin().port(), 9901);
    let client = Client::new();
    let r = client.get(front, "/hello").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello from mini-envoy\n"));
    assert_eq!(r.header("x-served-by"), Some("mini-envoy-demo"));
    let r = client.get(front, "/api/users").await;
    assert_eq!((r.status, r.text().as_str()), (200, "demo_api: hello from the API backend\n"));
    let r = client.get(front, "/").await;
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("demo_api:") || r.text().starts_with("demo_web:"), "{}", r.text());
    let help =
        envoy.wait_for_stdout(WAIT, |l| l.contains("mini-envoy is serving the embedded demo"));
    assert!(!help.is_empty());
    envoy.wait_for_stdout(WAIT, |l| l.contains("\"GET /api/users HTTP/1.1\" 200"));
}

// -------------------------------------------------------------------------
// More upstream behaviour: connection reuse, pool limits, bad upstreams.

#[tokio::test]
async fn upstream_connections_are_reused_and_a_closing_upstream_is_not() {
    let closing = Backend::named(
        "closing",
        Behaviour::custom(|req, _| {
            let reply = Reply::new(200, "ok");
            if req.path == "/close" { reply.header("connection", "close") } else { reply }
        }),
    );
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc }",
        &[cluster("svc", &[closing.addr()], "")],
        "",
    );
    let client = Client::new();
    for _ in 0..5 {
        assert_eq!(client.get(envoy.listener("front"), "/keep").await.status, 200);
    }
    assert_eq!(closing.connection_count(), 1, "one keep-alive upstream connection");
    assert_eq!(client.get(envoy.listener("front"), "/close").await.status, 200);
    for _ in 0..3 {
        let r = client.get(envoy.listener("front"), "/keep").await;
        assert_eq!(r.status, 200, "{}", envoy.output());
    }
    assert_eq!(closing.connection_count(), 2, "a new connection after the upstream closed");
}

#[tokio::test]
async fn pool_overflow_with_max_connections_1_and_no_pending_is_503_uo() {
    let (stalled, _, held, _) = overflow_while_one_request_is_held(
        "circuit_breakers:\n  thresholds:\n  - { max_connections: 1, max_pending_requests: 0 }",
    )
    .await;
    assert_eq!(stalled.connection_count(), 1);
    assert_eq!(held.status, 200);
}

#[tokio::test]
async fn a_post_body_is_replayed_on_retry() {
    let flaky = Backend::named("flaky", Behaviour::Statuses(vec![503, 200]));
    let routes = r#"
- match: { prefix: "/" }
  route:
    cluster: svc
    retry_policy: { retry_on: 5xx, num_retries: 1 }
"#;
    let envoy = start(routes, &[cluster("svc", &[flaky.addr()], "")], "");
    let r = Client::new().send(post(envoy.listener("front"), "/p", "payload")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "status 200"));
    let seen = flaky.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.body.as_ref() == b"payload"), "{seen:#?}");
}

#[tokio::test]
async fn per_try_timeout_retries_then_succeeds() {
    let slow_then_fast = Backend::named("sf", Behaviour::custom(|_, _| Reply::new(200, "fast")));
    let stalled = Backend::named("stalled", Behaviour::Hold);
    let routes = r#"
- match: { prefix: "/" }
  route:
    cluster: svc
    timeout: 5s
    retry_policy: { retry_on: 5xx, num_retries: 1, per_try_timeout: 0.2s }
"#;
    let envoy = start(routes, &[cluster("svc", &[stalled.addr(), slow_then_fast.addr()], "")], "");
    let client = Client::new();
    for i in 0..2 {
        let r = client.get(envoy.listener("front"), &format!("/t{i}")).await;
        assert_eq!((r.status, r.text().as_str()), (200, "fast"), "{}", envoy.output());
    }
    assert!(stalled.request_count() >= 1, "round robin tried the stalled host");
    let expected =
        slow_then_fast.requests()[0].header("x-envoy-expected-rq-timeout-ms").map(str::to_string);
    assert_eq!(expected.as_deref(), Some("200"), "the per-try timeout is the expected one");
}

#[test]
fn a_malformed_upstream_response_is_502_upe() {
    let bogus = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = bogus.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = bogus.accept().expect("accept");
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n");
        let _ = s.read(&mut buf);
    });
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc }",
        &[cluster("svc", &[addr], "")],
        "",
    );
    let r = exchange(
        envoy.listener("front"),
        b"GET /bad HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 502, "{r:?}");
    assert_eq!(log_line(&envoy, "/bad"), "/bad 502 UPE");
    drop(envoy);
    let _ = server.join();
}

#[test]
fn an_upstream_reset_after_headers_resets_the_downstream() {
    let truncating = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = truncating.local_addr().expect("addr");
    let _server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = truncating.accept().expect("accept");
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        // Promise 100 bytes, send 3, close.
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc");
    });
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc }",
        &[cluster("svc", &[addr], "")],
        "",
    );
    // The client sees the headers, then the connection closing early; no hang.
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(envoy.listener("front")).expect("connect");
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    c.write_all(b"GET /cut HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    let mut got = Vec::new();
    c.read_to_end(&mut got).expect("closed by mini-envoy, not timed out");
    let text = String::from_utf8_lossy(&got);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(body.len() < 100, "{text}");
    assert_eq!(log_line(&envoy, "/cut"), "/cut 200 UC");
}

#[test]
fn an_upstream_reset_before_headers_is_503_uc() {
    let resetting = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = resetting.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        use std::io::Read;
        let (mut s, _) = resetting.accept().expect("accept");
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        // Close without answering.
    });
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc }",
        &[cluster("svc", &[addr], "")],
        "",
    );
    let r = exchange(
        envoy.listener("front"),
        b"GET /rst HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 503, "{r:?}");
    assert_eq!(
        r[0].text(),
        "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
    );
    assert_eq!(log_line(&envoy, "/rst"), "/rst 503 UC");
    let _ = server.join();
}

#[test]
fn head_204_and_large_bodies() {
    let backend = Backend::named(
        "b",
        Behaviour::custom(|req, _| match req.path.as_str() {
            "/204" => Reply::new(204, ""),
            "/big" => Reply::new(200, vec![b'x'; 1 << 20]),
            _ => Reply::new(200, req.body.clone()),
        }),
    );
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc }",
        &[cluster("svc", &[backend.addr()], "")],
        "",
    );
    let mut conn = RawConnection::connect(envoy.listener("front"));
    conn.send(b"HEAD /big HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = conn.read_head_response().expect("HEAD response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1048576"));
    conn.send(b"GET /204 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = conn.read_response().expect("204");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-length"), None);
    conn.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = conn.read_response().expect("big");
    assert_eq!(r.body.len(), 1 << 20);
    let upload = vec![b'y'; 3 << 20];
    let mut head =
        format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", upload.len())
            .into_bytes();
    head.extend_from_slice(&upload);
    conn.send(&head);
    let r = conn.read_response().expect("echo");
    assert_eq!(r.status, 200);
    assert!(r.body == upload, "3 MiB echoed intact");
}

#[test]
fn oversized_request_headers_are_431() {
    let (echo, envoy) = echo_proxy();
    let mut conn = RawConnection::connect(envoy.listener("front"));
    let big = "a".repeat(70 * 1024);
    conn.send(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let r = conn.read_response().expect("a response");
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(echo.request_count(), 0);
}

#[test]
fn an_idle_upstream_connection_closed_by_the_upstream_is_not_reused() {
    use std::io::{Read, Write};
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = upstream.local_addr().expect("addr");
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        // Each connection answers one keep-alive request, then the upstream
        // closes it while it sits idle in mini-envoy's pool.
        for _ in 0..2 {
            let (mut s, _) = upstream.accept().expect("accept");
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let _ = s.shutdown(std::net::Shutdown::Both);
            let _ = closed_tx.send(());
        }
    });
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc }",
        &[cluster("svc", &[addr], "")],
        "",
    );
    let mut conn = RawConnection::connect(envoy.listener("front"));
    conn.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_response().expect("first").status, 200);
    closed_rx.recv_timeout(WAIT).expect("the upstream closed its connection");
    conn.send(b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = conn.read_response().expect("second");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", envoy.output());
    let _ = server.join();
}

#[tokio::test]
async fn an_internal_client_may_set_the_upstream_timeout() {
    // With use_remote_address the loopback peer is internal (Envoy's
    // default internal_address_config); without it and with no
    // x-forwarded-for, Envoy (and mini-envoy) trust no x-envoy-* header.
    let echo = Backend::named("echo", Behaviour::Echo);
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: echo }",
        &[cluster("echo", &[echo.addr()], "")],
        "use_remote_address: true\n",
    );
    let req = request(Method::GET, envoy.listener("front"), "/t")
        .header("x-envoy-upstream-rq-timeout-ms", "1234")
        .body(Full::default())
        .unwrap();
    assert_eq!(Client::new().send(req).await.status, 200);
    let seen = &echo.requests()[0];
    assert_eq!(seen.header("x-envoy-expected-rq-timeout-ms"), Some("1234"));
    assert_eq!(seen.header("x-envoy-upstream-rq-timeout-ms"), None, "consumed by the router");
}

#[test]
fn a_client_that_disconnects_mid_request_is_logged_dc() {
    let stalled = Backend::named("stalled", Behaviour::Hold);
    let envoy = start(
        "- match: { prefix: \"/\" }\n  route: { cluster: svc }",
        &[cluster("svc", &[stalled.addr()], "")],
        "",
    );
    let mut conn = RawConnection::connect(envoy.listener("front"));
    conn.send(b"GET /gone HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(stalled.wait_for_requests(1, WAIT));
    drop(conn);
    assert_eq!(log_line(&envoy, "/gone"), "/gone 0 DC");
}
