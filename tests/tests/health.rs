//! End-to-end tests of upstream health (issue #7 §1, §5): active HTTP and TCP
//! health checks and outlier detection, in the real `mini-envoy` binary in
//! front of hyper backends whose health the test switches.
//!
//! Intervals are tens of milliseconds; every wait is a bounded poll on what
//! the client sees (which backend answered), so each test takes well under
//! a few seconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use mini_envoy_tests::config::{bootstrap, catch_all, cluster, http_listener};
use mini_envoy_tests::{
    Backend, Behaviour, Client, MiniEnvoy, Reply, WAIT, closed_port, wait_until_async,
};

/// A backend named `name` answering `/healthz` with the status in `health`
/// and anything else with `status` (also switchable) and its name as body.
fn backend(name: &'static str, health: Arc<AtomicU16>, status: Arc<AtomicU16>) -> Backend {
    Backend::named(
        name,
        Behaviour::custom(move |req, _| {
            if req.path == "/healthz" {
                Reply::new(health.load(Ordering::Relaxed), "hc")
            } else {
                Reply::new(status.load(Ordering::Relaxed), name)
            }
        }),
    )
}

/// One stat of `/stats` as a number (it must exist).
async fn stat(envoy: &MiniEnvoy, name: &str) -> u64 {
    let value = mini_envoy_tests::stat(envoy, name).await;
    value.unwrap_or_else(|| panic!("no {name} in /stats"))
}

/// The `health_flags` of `host` in `/clusters` (Envoy's text format).
async fn health_flags(envoy: &MiniEnvoy, host: SocketAddr) -> String {
    let r = Client::without_pool().get(envoy.admin(), "/clusters").await;
    let prefix = format!("backends::{host}::health_flags::");
    let text = r.text();
    let flags = text.lines().find_map(|l| l.strip_prefix(&prefix));
    flags.unwrap_or_else(|| panic!("no {prefix} in\n{text}")).to_string()
}

fn switch(v: u16) -> Arc<AtomicU16> {
    Arc::new(AtomicU16::new(v))
}

fn start(cluster_yaml: String) -> MiniEnvoy {
    let route = "- match: { prefix: \"/\" }\n  route: { cluster: backends }\n";
    MiniEnvoy::start(&bootstrap(&[http_listener("front", &catch_all(route), "")], &[cluster_yaml]))
}

/// Sends requests until `n` answers in a row satisfy `ok` (bounded by
/// [`WAIT`]); returns how many requests that took.
async fn until_in_a_row(
    client: &Client,
    front: SocketAddr,
    n: usize,
    ok: impl Fn(u16, &str) -> bool,
) -> usize {
    let deadline = Instant::now() + WAIT;
    let (mut streak, mut sent) = (0, 0);
    while streak < n {
        assert!(Instant::now() < deadline, "no {n} matching answers in a row within {WAIT:?}");
        let r = client.get(front, "/").await;
        sent += 1;
        streak = if ok(r.status, &r.text()) { streak + 1 } else { 0 };
    }
    sent
}

const HTTP_CHECK: &str = "\
health_checks:
- timeout: 0.5s
  interval: 0.03s
  no_traffic_interval: 0.03s
  unhealthy_threshold: 1
  healthy_threshold: 1
  http_health_check: { path: /healthz }
";

#[tokio::test]
async fn http_health_check_moves_traffic_away_and_back() {
    let (a_health, b_health) = (switch(200), switch(200));
    let a = backend("a", a_health.clone(), switch(200));
    let b = backend("b", b_health.clone(), switch(200));
    let envoy = start(cluster("backends", &[a.addr(), b.addr()], HTTP_CHECK));
    let front = envoy.listener("front");
    let client = Client::new();
    // Both hosts pass their first checks: both take traffic.
    until_in_a_row(&client, front, 1, |s, body| s == 200 && body == "a").await;
    until_in_a_row(&client, front, 1, |s, body| s == 200 && body == "b").await;
    // Traffic can reach a host before its first check (panic routing while
    // no host is known healthy): wait for a's first check to have passed.
    let checked = |b: &Backend| b.requests().iter().any(|r| r.path == "/healthz");
    assert!(wait_until_async(WAIT, || checked(&a)).await, "a was never health checked");

    // a's health path fails: after its next check every request goes to b.
    a_health.store(503, Ordering::Relaxed);
    until_in_a_row(&client, front, 20, |s, body| s == 200 && body == "b").await;
    let checks: Vec<_> = a.requests().into_iter().filter(|r| r.path == "/healthz").collect();
    assert!(checks.len() >= 2, "a was health checked ({} checks)", checks.len());
    let checked = &checks[0];
    assert_eq!(checked.header("host"), Some("backends"), "Envoy's default host: the cluster");
    assert_eq!(checked.header("user-agent"), Some("Envoy/HC"));
    assert!(stat(&envoy, "cluster.backends.health_check.failure").await >= 1);
    assert!(stat(&envoy, "cluster.backends.health_check.success").await >= 2);
    assert_eq!(stat(&envoy, "cluster.backends.health_check.healthy").await, 1, "b only");
    assert_eq!(health_flags(&envoy, a.addr()).await, "/failed_active_hc");
    assert_eq!(health_flags(&envoy, b.addr()).await, "healthy");

    // a recovers: it takes traffic again.
    a_health.store(200, Ordering::Relaxed);
    until_in_a_row(&client, front, 1, |s, body| s == 200 && body == "a").await;
}

#[tokio::test]
async fn outlier_detection_ejects_after_consecutive_5xx_and_returns() {
    let (a_status, b_status) = (switch(500), switch(200));
    let a = backend("a", switch(200), a_status.clone());
    let b = backend("b", switch(200), b_status);
    let outlier = "\
outlier_detection:
  consecutive_5xx: 3
  interval: 0.05s
  base_ejection_time: 1s
  max_ejection_percent: 50
";
    let envoy = start(cluster("backends", &[a.addr(), b.addr()], outlier));
    let front = envoy.listener("front");
    let client = Client::new();
    // Round robin sends a its 5xx until it is ejected; then only b answers.
    until_in_a_row(&client, front, 20, |s, body| s == 200 && body == "b").await;
    let a_errors = a.request_count();
    assert!(a_errors >= 3, "a was ejected after 3 consecutive 5xx ({a_errors} requests)");
    assert!(a_errors <= 6, "and then got no more traffic ({a_errors} requests)");
    let od = "cluster.backends.outlier_detection";
    assert_eq!(stat(&envoy, &format!("{od}.ejections_active")).await, 1);
    assert_eq!(stat(&envoy, &format!("{od}.ejections_enforced_consecutive_5xx")).await, 1);
    assert_eq!(health_flags(&envoy, a.addr()).await, "/failed_outlier_check");

    // a is healthy again; after base_ejection_time it is back in rotation.
    a_status.store(200, Ordering::Relaxed);
    let back = Instant::now();
    until_in_a_row(&client, front, 1, |s, body| s == 200 && body == "a").await;
    assert!(back.elapsed() < Duration::from_secs(3), "returned after {:?}", back.elapsed());
}

#[tokio::test]
async fn tcp_health_check_keeps_traffic_off_a_dead_host() {
    let live = backend("live", switch(200), switch(200));
    let dead = closed_port();
    let tcp = "\
health_checks:
- timeout: 0.2s
  interval: 0.03s
  no_traffic_interval: 0.03s
  unhealthy_threshold: 1
  healthy_threshold: 1
  tcp_health_check: {}
";
    let envoy = start(cluster("backends", &[dead, live.addr()], tcp));
    let front = envoy.listener("front");
    let client = Client::new();
    // Once the first checks ran, round robin never picks the dead host: no 503.
    until_in_a_row(&client, front, 30, |s, body| s == 200 && body == "live").await;
}

#[tokio::test]
async fn strict_dns_refresh_keeps_pooled_connections_to_hosts_that_stay() {
    let b = backend("dns", switch(200), switch(200));
    let port = b.addr().port();
    // `localhost` re-resolved every 20 ms: the host stays, so its pooled
    // connection must survive every refresh.
    let dns_cluster = format!(
        "- name: backends\n  connect_timeout: 1s\n  type: STRICT_DNS\n  dns_refresh_rate: 0.02s\n  dns_lookup_family: V4_ONLY\n  load_assignment:\n    cluster_name: backends\n    endpoints:\n    - lb_endpoints:\n      - endpoint: {{ address: {{ socket_address: {{ address: localhost, port_value: {port} }} }} }}\n"
    );
    let route = "- match: { prefix: \"/\" }\n  route: { cluster: backends }\n";
    let yaml = bootstrap(&[http_listener("front", &catch_all(route), "")], &[dns_cluster]);
    let args =
        ["--config-yaml", &yaml, "--concurrency", "2", "--component-log-level", "main:debug"];
    let envoy = MiniEnvoy::start_with_args(&args, 1, true);
    let front = envoy.listener("front");
    let client = Client::new();
    // Requests for 300 ms: spread over about fifteen refreshes.
    let deadline = Instant::now() + Duration::from_millis(300);
    let mut sent = 0;
    while Instant::now() < deadline || sent < 5 {
        let r = client.get(front, "/").await;
        assert_eq!((r.status, r.text()), (200, "dns".to_string()));
        sent += 1;
    }
    let refreshes = envoy
        .stderr_lines()
        .iter()
        .filter(|l| l.contains("cluster backends: DNS refresh: 1 hosts"))
        .count();
    assert!(refreshes >= 3, "the name was re-resolved ({refreshes} refreshes)");
    assert!(stat(&envoy, "cluster.backends.update_success").await >= 3);
    assert_eq!(b.request_count(), sent);
    assert_eq!(b.connection_count(), 1, "one pooled connection across {sent} requests");
}

/// A backend that answers `status` to all but every `every`-th request (200).
fn mostly_failing(name: &'static str, status: u16, every: usize) -> Backend {
    Backend::named(
        name,
        Behaviour::custom(move |_, i| Reply::new(if i % every == 0 { 200 } else { status }, name)),
    )
}

/// The `/clusters` text lines of cluster `backends` that start with `field`
/// after the cluster (or host) prefix.
async fn clusters_value(envoy: &MiniEnvoy, key: &str) -> Option<String> {
    let r = Client::without_pool().get(envoy.admin(), "/clusters").await;
    let prefix = format!("backends::{key}::");
    r.text().lines().find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

/// Round robin over a mostly failing host `a` and healthy `b`, `c` until 30
/// answers in a row avoid `a`: the interval analysis ejected it.
async fn until_a_is_ejected(envoy: &MiniEnvoy, a: &Backend) {
    let front = envoy.listener("front");
    let client = Client::new();
    until_in_a_row(&client, front, 30, |s, body| s == 200 && body != "a").await;
    assert!(a.request_count() >= 10, "a had success_rate_request_volume requests");
    assert_eq!(health_flags(envoy, a.addr()).await, "/failed_outlier_check");
}

#[tokio::test]
async fn success_rate_analysis_ejects_a_host_failing_most_requests() {
    let a = mostly_failing("a", 500, 5); // 20% success
    let (b, c) = (backend("b", switch(200), switch(200)), backend("c", switch(200), switch(200)));
    // Three hosts: one outlier is 1.41 stdev from the mean at most, so the
    // factor is 1.0 (Envoy's default 1.9 needs five or more hosts).
    let outlier = "\
outlier_detection:
  interval: 0.1s
  base_ejection_time: 30s
  max_ejection_percent: 50
  enforcing_consecutive_5xx: 0
  success_rate_minimum_hosts: 3
  success_rate_request_volume: 10
  success_rate_stdev_factor: 1000
";
    let envoy = start(cluster("backends", &[a.addr(), b.addr(), c.addr()], outlier));
    until_a_is_ejected(&envoy, &a).await;
    let od = "cluster.backends.outlier_detection";
    assert_eq!(stat(&envoy, &format!("{od}.ejections_enforced_success_rate")).await, 1);
    assert!(stat(&envoy, &format!("{od}.ejections_detected_success_rate")).await >= 1);
    assert_eq!(stat(&envoy, &format!("{od}.ejections_enforced_consecutive_5xx")).await, 0);
    assert_eq!(stat(&envoy, &format!("{od}.ejections_active")).await, 1);
    // /clusters prints the analysis: numbers (-1 when an interval had too few requests).
    let average = clusters_value(&envoy, "outlier::success_rate_average").await;
    let average: f64 = average.expect("outlier lines").parse().expect("a number");
    assert!((-1.0..=100.0).contains(&average), "{average}");
    let rate = clusters_value(&envoy, &format!("{}::success_rate", b.addr())).await;
    let rate: f64 = rate.expect("success_rate line").parse().expect("a number");
    assert!(rate == -1.0 || rate == 100.0, "b's success rate {rate}");
}

#[tokio::test]
async fn failure_percentage_analysis_ejects_a_host_above_the_threshold() {
    let a = mostly_failing("a", 503, 10); // 90% failures
    let (b, c) = (backend("b", switch(200), switch(200)), backend("c", switch(200), switch(200)));
    let outlier = "\
outlier_detection:
  interval: 0.1s
  base_ejection_time: 30s
  max_ejection_percent: 50
  enforcing_consecutive_5xx: 0
  enforcing_success_rate: 0
  failure_percentage_threshold: 80
  failure_percentage_minimum_hosts: 3
  failure_percentage_request_volume: 10
  enforcing_failure_percentage: 100
";
    let envoy = start(cluster("backends", &[a.addr(), b.addr(), c.addr()], outlier));
    until_a_is_ejected(&envoy, &a).await;
    let od = "cluster.backends.outlier_detection";
    assert_eq!(stat(&envoy, &format!("{od}.ejections_enforced_failure_percentage")).await, 1);
    assert_eq!(stat(&envoy, &format!("{od}.ejections_enforced_success_rate")).await, 0);
    assert_eq!(stat(&envoy, &format!("{od}.ejections_enforced_total")).await, 1);
}

#[tokio::test]
async fn warming_keeps_a_failing_host_out_from_the_first_request() {
    let a = backend("a", switch(503), switch(200));
    let b = backend("b", switch(200), switch(200));
    // The first checks come up to 0.5 s after start-up. Without warming the
    // listener would serve at once, both hosts FAILED_ACTIVE_HC: panic mode,
    // round robin over both, so a would take half of the first requests.
    let check = "\
health_checks:
- timeout: 0.5s
  interval: 5s
  initial_jitter: 0.5s
  unhealthy_threshold: 1
  healthy_threshold: 1
  http_health_check: { path: /healthz }
";
    let envoy = start(cluster("backends", &[a.addr(), b.addr()], check));
    let front = envoy.listener("front");
    let client = Client::new();
    for _ in 0..20 {
        let r = client.get(front, "/").await;
        assert_eq!((r.status, r.text()), (200, "b".to_string()));
    }
    let served = a.requests().iter().filter(|r| r.path != "/healthz").count();
    assert_eq!(served, 0, "a was never sent a request");
    assert_eq!(a.requests().len(), 1, "a had its first health check");
    let r = Client::without_pool().get(envoy.admin(), "/ready").await;
    assert_eq!((r.status, r.text().trim()), (200, "LIVE"));
}

/// Envoy's passive health-check failure: a response carrying
/// `x-envoy-immediate-health-check-fail` (what an Envoy upstream sends after
/// `/healthcheck/fail`) fails that host at once, without waiting for the next
/// check, and counts `health_check.passive_failure` (passing checks bring it
/// back, as after any failure).
#[tokio::test]
async fn immediate_health_check_fail_on_a_response_takes_the_host_out_at_once() {
    let failing = Backend::named(
        "failing",
        Behaviour::custom(|req, _| {
            if req.path == "/healthz" {
                Reply::new(200, "hc")
            } else {
                Reply::new(200, "failing").header("x-envoy-immediate-health-check-fail", "")
            }
        }),
    );
    let steady = backend("steady", switch(200), switch(200));
    // Checks pass (the health path never fails) and are far apart: only the
    // data path can take `failing` out within the test.
    let checks = "\
health_checks:
- timeout: 1s
  interval: 3600s
  no_traffic_interval: 3600s
  unhealthy_threshold: 3
  healthy_threshold: 1
  http_health_check: { path: /healthz }
";
    let envoy = start(cluster("backends", &[failing.addr(), steady.addr()], checks));
    let front = envoy.listener("front");
    let client = Client::new();
    // Round robin reaches `failing` within two requests; soon after its
    // answer, every request goes to `steady`.
    // (A request or two may reach it before the main thread's update does.)
    until_in_a_row(&client, front, 20, |s, body| s == 200 && body == "steady").await;
    let data_requests = failing.requests().iter().filter(|r| r.path != "/healthz").count();
    assert!((1..=3).contains(&data_requests), "{data_requests} requests reached failing");
    let passive = stat(&envoy, "cluster.backends.health_check.passive_failure").await;
    assert_eq!(passive, data_requests as u64, "one passive failure per such response");
    let flags = health_flags(&envoy, failing.addr()).await;
    assert!(
        flags.contains("/failed_active_hc") && flags.contains("excluded_via_immediate_hc_fail"),
        "{flags}"
    );
}
