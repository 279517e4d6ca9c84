//! End-to-end tests of DNS clusters (issue #7 §1, §5): the real `mini-envoy`
//! binary resolves its STRICT_DNS / LOGICAL_DNS clusters through
//! `typed_dns_resolver_config` pointing at the test's own authoritative DNS
//! server ([`DnsServer`], loopback UDP), whose answers the test changes.
//!
//! DNS gives addresses, the port comes from the cluster, so the two backends
//! listen on `127.0.0.2` and `127.0.0.3` with the same port. Refreshes run
//! every 50 ms; every wait is a bounded poll on what the client sees.
//!
//! ```text
//!  Client ─► mini-envoy ─► cluster "backends" (backend.dns.test:PORT)
//!               └─ every 50 ms: A? backend.dns.test ─► DnsServer (127.0.0.2 / .3)
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use mini_envoy_tests::config::{bootstrap, catch_all, http_listener, indent};
use mini_envoy_tests::{Backend, Behaviour, Client, DnsServer, MiniEnvoy, WAIT};

const NAME: &str = "backend.dns.test";
const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// Backends "a" on 127.0.0.2 and "b" on 127.0.0.3, on one port.
fn two_backends() -> (Backend, Backend, u16) {
    for _ in 0..20 {
        let a = Backend::named_at("a", SocketAddr::new(A.into(), 0), Behaviour::Fixed(200, "a"))
            .expect("bind 127.0.0.2");
        let port = a.addr().port();
        if let Ok(b) =
            Backend::named_at("b", SocketAddr::new(B.into(), port), Behaviour::Fixed(200, "b"))
        {
            return (a, b, port);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

/// A DNS cluster `backends` of `kind` on `NAME:port`, resolved by `dns`.
fn dns_cluster(kind: &str, port: u16, dns: SocketAddr) -> String {
    format!(
        "- name: backends
  connect_timeout: 1s
  type: {kind}
  dns_refresh_rate: 0.05s
  dns_lookup_family: V4_ONLY
  typed_dns_resolver_config:
    name: envoy.network.dns_resolver.cares
    typed_config:
      \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig
      resolvers:
      - socket_address: {{ address: {}, port_value: {} }}
      dns_resolver_options: {{ no_default_search_domain: true }}
      query_timeout_seconds: 1
  load_assignment:
    cluster_name: backends
    endpoints:
    - lb_endpoints:
      - endpoint: {{ address: {{ socket_address: {{ address: {NAME}, port_value: {port} }} }} }}
",
        dns.ip(),
        dns.port()
    )
}

const ROUTE: &str = "- match: { prefix: \"/\" }\n  route: { cluster: backends }\n";

fn start(cluster: String) -> MiniEnvoy {
    MiniEnvoy::start(&bootstrap(&[http_listener("front", &catch_all(ROUTE), "")], &[cluster]))
}

/// One stat of `/stats` as a number (0 when absent).
async fn stat(envoy: &MiniEnvoy, name: &str) -> u64 {
    mini_envoy_tests::stat(envoy, name).await.unwrap_or(0)
}

/// Sends requests until `n` answers in a row are `(status, body)` (bounded by [`WAIT`]).
async fn until_in_a_row(client: &Client, front: SocketAddr, n: usize, status: u16, body: &str) {
    let deadline = Instant::now() + WAIT;
    let mut streak = 0;
    while streak < n {
        assert!(
            Instant::now() < deadline,
            "no {n} answers {status} {body:?} in a row within {WAIT:?}"
        );
        let r = client.get(front, "/").await;
        streak = if r.status == status && r.text() == body { streak + 1 } else { 0 };
    }
}

/// Waits until the stat `name` reaches `at_least` (bounded by [`WAIT`]).
async fn until_stat(envoy: &MiniEnvoy, name: &str, at_least: u64) {
    let deadline = Instant::now() + WAIT;
    while stat(envoy, name).await < at_least {
        assert!(Instant::now() < deadline, "{name} stayed below {at_least} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn strict_dns_follows_the_answer_and_keeps_connections_to_hosts_that_stay() {
    let (a, b, port) = two_backends();
    let dns = DnsServer::start();
    dns.set(NAME, &[A], 1);
    let envoy = start(dns_cluster("STRICT_DNS", port, dns.addr()));
    let (front, client) = (envoy.listener("front"), Client::new());

    // The answer stays: a's pooled upstream connection outlives the refreshes.
    until_in_a_row(&client, front, 3, 200, "a").await;
    let success = stat(&envoy, "cluster.backends.update_success").await;
    until_stat(&envoy, "cluster.backends.update_no_rebuild", 3).await;
    until_in_a_row(&client, front, 3, 200, "a").await;
    assert!(stat(&envoy, "cluster.backends.update_success").await >= success + 3);
    assert_eq!(a.connection_count(), 1, "one pooled connection across the refreshes");

    // b joins: traffic spreads, a keeps its connection.
    dns.set(NAME, &[A, B], 1);
    let deadline = Instant::now() + WAIT;
    while b.request_count() == 0 {
        assert!(Instant::now() < deadline, "b never got traffic");
        assert_eq!(client.get(front, "/").await.status, 200);
    }
    assert_eq!(a.connection_count(), 1, "a stayed a host: its connection too");

    // a leaves: everything goes to b.
    dns.set(NAME, &[B], 1);
    until_in_a_row(&client, front, 10, 200, "b").await;

    // The name disappears (NXDOMAIN): as in Envoy, STRICT_DNS drops its hosts.
    dns.remove(NAME);
    until_in_a_row(&client, front, 3, 503, "no healthy upstream").await;
    assert!(stat(&envoy, "dns.cares.not_found").await >= 1);
    assert!(stat(&envoy, "dns.cares.resolve_total").await >= 5);
    assert_eq!(stat(&envoy, "cluster.backends.update_failure").await, 0);

    // And comes back.
    dns.set(NAME, &[A], 1);
    until_in_a_row(&client, front, 3, 200, "a").await;
}

#[tokio::test]
async fn logical_dns_connects_new_connections_to_the_latest_address() {
    let (_a, _b, port) = two_backends();
    let dns = DnsServer::start();
    dns.set(NAME, &[A], 1);
    let envoy = start(dns_cluster("LOGICAL_DNS", port, dns.addr()));
    let front = envoy.listener("front");
    // A new downstream connection per request.
    let client = Client::without_pool();
    until_in_a_row(&client, front, 3, 200, "a").await;

    dns.set(NAME, &[B, A], 1);
    until_in_a_row(&client, front, 5, 200, "b").await;

    // An empty answer is a failure for LOGICAL_DNS: the last address stays.
    let failures = stat(&envoy, "cluster.backends.update_failure").await;
    dns.set(NAME, &[], 1);
    until_stat(&envoy, "cluster.backends.update_failure", failures + 2).await;
    until_in_a_row(&client, front, 3, 200, "b").await;
}

/// Writes `text` to `path` as Envoy expects: a temporary file renamed over it.
fn move_in(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the temporary file");
    std::fs::rename(&tmp, path).expect("rename it into place");
}

#[tokio::test]
async fn a_dns_cluster_from_cds_is_refreshed_and_stops_when_removed() {
    let (a, _b, port) = two_backends();
    let dns = DnsServer::start();
    dns.set(NAME, &[A], 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let cds_path = dir.path().join("cds.yaml");
    let cluster = dns_cluster("STRICT_DNS", port, dns.addr()).replacen(
        "- name:",
        "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name:",
        1,
    );
    move_in(&cds_path, &format!("version_info: \"1\"\nresources:\n{cluster}"));
    let yaml = format!(
        "admin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: 0 }}\nstatic_resources:\n  listeners:\n{}dynamic_resources:\n  cds_config:\n    resource_api_version: V3\n    path_config_source: {{ path: {:?} }}\n",
        indent(&http_listener("front", &catch_all(ROUTE), ""), 2),
        cds_path.display()
    );
    let envoy = MiniEnvoy::start(&yaml);
    let (front, client) = (envoy.listener("front"), Client::new());
    until_in_a_row(&client, front, 3, 200, "a").await;

    // Refreshed like a static cluster: the new answer is followed.
    dns.set(NAME, &[B], 1);
    until_in_a_row(&client, front, 5, 200, "b").await;
    assert!(a.request_count() >= 3);

    // Removed by CDS: its refresh task is stopped.
    move_in(&cds_path, "version_info: \"2\"\nresources: []\n");
    until_in_a_row(&client, front, 1, 503, "").await;
    let stopped = mini_envoy_tests::wait_until_async(WAIT, || {
        envoy.stderr_lines().iter().any(|l| l.contains("cluster backends: DNS refresh stopped"))
    })
    .await;
    assert!(stopped, "the removed cluster's refresh did not stop\n{}", envoy.output());
}
