//! End-to-end tests of dynamic configuration (issue #7 §4): the real
//! `mini-envoy` binary with `dynamic_resources.cds_config` and EDS clusters
//! reading `DiscoveryResponse` files (Envoy's `path_config_source`), updated
//! by writing a temporary file and renaming it into place, while hyper
//! clients keep requests flowing. Waits are bounded polls.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mini_envoy_tests::config::{catch_all, http_listener, indent};
use mini_envoy_tests::{Backend, Behaviour, Client, MiniEnvoy, WAIT, wait_until_async};

/// A bootstrap whose one listener `front` routes everything to `svc`, and
/// whose clusters come from `cds` (a file).
fn bootstrap(cds: &Path) -> String {
    let listener =
        http_listener("front", &catch_all("- match: { prefix: / }\n  route: { cluster: svc }"), "");
    format!(
        "admin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: 0 }}\n\
static_resources:\n  listeners:\n{}\
dynamic_resources:\n  cds_config:\n    resource_api_version: V3\n    path_config_source: {{ path: {:?} }}\n",
        indent(&listener, 2),
        cds.display()
    )
}

/// A CDS file: the EDS cluster `svc` (its endpoints in `eds`, its connect
/// timeout `timeout_ms`, so each version really changes it) and `extra`
/// STATIC clusters named `extra-<n>`.
fn cds(
    version: usize,
    eds: &Path,
    timeout_ms: u64,
    extra: &[usize],
    backend: SocketAddr,
) -> String {
    let mut out = format!(
        "version_info: \"{version}\"\nresources:\n\
- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: svc\n  type: EDS\n  connect_timeout: {}s\n  eds_cluster_config:\n    eds_config:\n      resource_api_version: V3\n      path_config_source: {{ path: {:?} }}\n",
        timeout_ms as f64 / 1000.0,
        eds.display()
    );
    for n in extra {
        out += &format!(
            "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: extra-{n}\n  type: STATIC\n  connect_timeout: 1s\n  load_assignment:\n    cluster_name: extra-{n}\n    endpoints:\n    - lb_endpoints:\n      - endpoint: {{ address: {{ socket_address: {{ address: {}, port_value: {} }} }} }}\n",
            backend.ip(),
            backend.port()
        );
    }
    out
}

/// An EDS file for `svc` with these endpoints.
fn eds(version: usize, endpoints: &[SocketAddr]) -> String {
    let mut out = format!(
        "version_info: \"{version}\"\nresources:\n\
- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: svc\n  endpoints:\n  - lb_endpoints:\n"
    );
    for e in endpoints {
        out += &format!(
            "    - endpoint: {{ address: {{ socket_address: {{ address: {}, port_value: {} }} }} }}\n",
            e.ip(),
            e.port()
        );
    }
    out
}

/// Writes `text` to `path` as Envoy expects: a temporary file renamed over it.
fn move_in(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the temporary file");
    std::fs::rename(&tmp, path).expect("rename it into place");
}

/// Client tasks sending GETs until stopped; counts 2xx and everything else.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    let client = Client::new();
                    while !stop.load(Ordering::Relaxed) {
                        let req = mini_envoy_tests::client::request(hyper::Method::GET, addr, "/")
                            .body(Default::default())
                            .expect("valid request");
                        match client.try_send(req).await {
                            Ok(r) if (200..300).contains(&r.status) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                failed.lock().unwrap().push(format!("{} {}", r.status, r.text()))
                            }
                            Err(e) => failed.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        Load { stop, ok, failed, tasks }
    }

    /// Stops the clients; returns (2xx count, failures).
    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("client task");
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    cds: PathBuf,
    eds: PathBuf,
    envoy: MiniEnvoy,
    backends: Vec<Backend>,
}

/// Three backends; `svc` starts on the first.
async fn setup() -> Setup {
    let backends: Vec<Backend> =
        (0..3).map(|i| Backend::named(&format!("b{i}"), Behaviour::Fixed(200, "ok"))).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cds_path, eds_path) = (dir.path().join("cds.yaml"), dir.path().join("eds.yaml"));
    move_in(&eds_path, &eds(0, &[backends[0].addr()]));
    move_in(&cds_path, &cds(0, &eds_path, 1000, &[], backends[0].addr()));
    let bootstrap_path = dir.path().join("envoy.yaml");
    std::fs::write(&bootstrap_path, bootstrap(&cds_path)).expect("write the bootstrap");
    let config = bootstrap_path.display().to_string();
    let args = ["-c", &config, "--concurrency", "2", "--log-level", "info"];
    let envoy = MiniEnvoy::start_with_args(&args, 1, true);
    let client = Client::new();
    let front = envoy.listener("front");
    let serving = client.wait_for_ok(front).await;
    assert!(serving, "svc never served from the CDS/EDS files\n{}", envoy.output());
    Setup { _dir: dir, cds: cds_path, eds: eds_path, envoy, backends }
}

/// Waits (bounded) until `backend` got more than `before` requests.
async fn wait_for_traffic(backend: &Backend, before: usize) -> bool {
    backend.wait_for_requests_async(before + 1, WAIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_and_endpoints_replaced_ten_times_through_files_lose_no_request() {
    let s = setup().await;
    let load = Load::start(s.envoy.listener("front"), 4);
    for i in 1..=10 {
        // Endpoints move to another backend; the cluster's config changes;
        // a STATIC cluster is added and the previous one removed.
        let target = &s.backends[i % 3];
        let before = target.request_count();
        move_in(&s.cds, &cds(i, &s.eds, 1000 + i as u64, &[i], s.backends[0].addr()));
        move_in(&s.eds, &eds(i, &[target.addr()]));
        assert!(
            wait_for_traffic(target, before).await,
            "update {i}: no request reached {}\n{}",
            target.name(),
            s.envoy.output()
        );
    }
    let (ok, failed) = load.finish().await;
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok,
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests made it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_cds_file_keeps_the_previous_clusters() {
    let s = setup().await;
    let load = Load::start(s.envoy.listener("front"), 2);
    let bad = cds(1, &s.eds, 1000, &[], s.backends[0].addr()).replace("type: EDS", "type: EDZ");
    move_in(&s.cds, &bad);
    let rejected = wait_until_async(WAIT, || {
        s.envoy.stderr_lines().iter().any(|l| l.contains("CDS file rejected"))
    })
    .await;
    assert!(rejected, "the bad file was not rejected\n{}", s.envoy.output());
    // Envoy's CDS counters: the initial file applied, this one rejected.
    let stats = Client::new().get(s.envoy.admin(), "/stats?filter=cluster_manager.cds").await;
    let text = stats.text();
    for line in [
        "cluster_manager.cds.update_attempt: 2",
        "cluster_manager.cds.update_success: 1",
        "cluster_manager.cds.update_rejected: 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    // Still serving, and a good update after it applies.
    let before = s.backends[1].request_count();
    move_in(&s.eds, &eds(2, &[s.backends[1].addr()]));
    assert!(wait_for_traffic(&s.backends[1], before).await, "{}", s.envoy.output());
    let (ok, failed) = load.finish().await;
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok,
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_completes_in_flight_requests_then_exits_zero() {
    use mini_envoy_tests::config::{bootstrap, cluster};
    let backend = Backend::start(Behaviour::Hold);
    let routes = catch_all("- match: { prefix: / }\n  route: { cluster: svc }");
    let yaml =
        bootstrap(&[http_listener("front", &routes, "")], &[cluster("svc", &[backend.addr()], "")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write the bootstrap");
    let config = path.display().to_string();
    let args = ["-c", &config, "--concurrency", "2", "--drain-time-s", "5"];
    let mut envoy = MiniEnvoy::start_with_args(&args, 1, true);
    let front = envoy.listener("front");

    // Six requests in flight, held by the backend.
    let in_flight: Vec<_> =
        (0..6).map(|_| tokio::spawn(async move { Client::new().get(front, "/").await })).collect();
    assert!(backend.wait_for_requests_async(6, WAIT).await, "{}", envoy.output());

    envoy.terminate();
    let draining = wait_until_async(WAIT, || {
        envoy.stderr_lines().iter().any(|l| l.contains("shutting down: draining"))
    })
    .await;
    assert!(draining, "no drain started\n{}", envoy.output());
    // The listener no longer accepts (bounded: every worker's socket closes).
    let closed = wait_until_async(WAIT, || std::net::TcpStream::connect(front).is_err()).await;
    assert!(closed, "the listener still accepts while draining\n{}", envoy.output());
    assert!(envoy.is_running(), "exited with requests in flight\n{}", envoy.output());

    backend.release();
    for task in in_flight {
        let response = task.await.expect("client task");
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.header("connection"), Some("close"));
    }
    let status = tokio::task::block_in_place(|| envoy.wait_exit(WAIT));
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{}", envoy.output());
}

// -------------------------------------------------------------------------
// gRPC ADS against the week 4 control plane.

/// CDS + EDS resources for the control plane: `svc` (EDS over ADS, connect
/// timeout `timeout_ms`) on `endpoint`, and STATIC `extra-<n>`.
fn ads_resources(endpoint: SocketAddr, timeout_ms: u64, extra: usize) -> Vec<serde_json::Value> {
    use serde_json::json;
    let address = |a: SocketAddr| json!({"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}});
    vec![
        json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
               "name": "svc", "type": "EDS", "connect_timeout": format!("{}s", timeout_ms as f64 / 1000.0),
               "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}}),
        json!({"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
               "cluster_name": "svc",
               "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(endpoint)}}]}]}),
        json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
               "name": format!("extra-{extra}"), "type": "STATIC", "connect_timeout": "1s",
               "load_assignment": {"cluster_name": format!("extra-{extra}"),
                   "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(endpoint)}}]}]}}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_and_endpoints_replaced_ten_times_over_ads_lose_no_request() {
    use week4_xds::grpc::server::ControlPlane;
    let backends: Vec<Backend> =
        (0..3).map(|i| Backend::named(&format!("b{i}"), Behaviour::Fixed(200, "ok"))).collect();
    let cp = ControlPlane::new();
    cp.set_resources(&ads_resources(backends[0].addr(), 1000, 0)).expect("valid resources");
    let served = mini_envoy_tests::control_plane::ServedControlPlane::start(&cp).await;
    let cp_addr = served.addr;

    let routes = catch_all("- match: { prefix: / }\n  route: { cluster: svc }");
    let yaml = format!(
        "{}dynamic_resources:\n  cds_config: {{ ads: {{}}, resource_api_version: V3 }}\n  ads_config:\n    api_type: GRPC\n    transport_api_version: V3\n    grpc_services:\n    - envoy_grpc: {{ cluster_name: xds }}\n",
        mini_envoy_tests::config::bootstrap(
            &[http_listener("front", &routes, "")],
            &[mini_envoy_tests::config::cluster("xds", &[cp_addr], "")]
        )
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write the bootstrap");
    let config = path.display().to_string();
    let envoy = MiniEnvoy::start_with_args(&["-c", &config, "--concurrency", "2"], 1, true);
    let front = envoy.listener("front");
    assert!(
        Client::new().wait_for_ok(front).await,
        "svc never served over ADS\n{}",
        envoy.output()
    );

    let load = Load::start(front, 4);
    for i in 1..=10 {
        let target = &backends[i % 3];
        let before = target.request_count();
        cp.set_resources(&ads_resources(target.addr(), 1000 + i as u64, i)).expect("valid");
        assert!(
            wait_for_traffic(target, before).await,
            "update {i}: no request reached {}\n{}",
            target.name(),
            envoy.output()
        );
    }
    let (ok, failed) = load.finish().await;
    drop(served);
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        ok,
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests made it");
}

// -------------------------------------------------------------------------
// /drain_listeners.

/// mini-envoy with one listener `front` to `backend`, drain time `drain_s`.
fn start_front(backend: &Backend, drain_s: &str) -> (tempfile::TempDir, MiniEnvoy) {
    use mini_envoy_tests::config::{bootstrap, cluster};
    let routes = catch_all("- match: { prefix: / }\n  route: { cluster: svc }");
    let yaml =
        bootstrap(&[http_listener("front", &routes, "")], &[cluster("svc", &[backend.addr()], "")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write the bootstrap");
    let config = path.display().to_string();
    let args = ["-c", &config, "--concurrency", "2", "--drain-time-s", drain_s];
    let envoy = MiniEnvoy::start_with_args(&args, 1, true);
    (dir, envoy)
}

async fn admin(envoy: &MiniEnvoy, method: hyper::Method, path: &str) -> u16 {
    let req = mini_envoy_tests::client::request(method, envoy.admin(), path)
        .body(Default::default())
        .expect("valid request");
    Client::new().send(req).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_listeners_stops_accepting_finishes_requests_and_keeps_running() {
    let backend = Backend::start(Behaviour::Hold);
    let (_dir, mut envoy) = start_front(&backend, "5");
    let front = envoy.listener("front");
    assert_eq!(admin(&envoy, hyper::Method::GET, "/drain_listeners").await, 405);
    assert_eq!(admin(&envoy, hyper::Method::POST, "/drain_listeners?nope").await, 400);

    let in_flight = tokio::spawn(async move { Client::new().get(front, "/").await });
    assert!(backend.wait_for_requests_async(1, WAIT).await, "{}", envoy.output());
    assert_eq!(admin(&envoy, hyper::Method::POST, "/drain_listeners").await, 200);
    let closed = wait_until_async(WAIT, || std::net::TcpStream::connect(front).is_err()).await;
    assert!(closed, "the listener still accepts after /drain_listeners\n{}", envoy.output());
    backend.release();
    let response = in_flight.await.expect("client task");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(admin(&envoy, hyper::Method::GET, "/ready").await, 200, "the server keeps running");
    assert!(envoy.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_drain_accepts_during_the_drain_time_with_connection_close() {
    let backend = Backend::start(Behaviour::Fixed(200, "ok"));
    let (_dir, envoy) = start_front(&backend, "1");
    let front = envoy.listener("front");
    assert_eq!(admin(&envoy, hyper::Method::POST, "/drain_listeners?graceful").await, 200);
    // Still accepting during the drain period; every response closes.
    let response = Client::new().get(front, "/").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    // Then the listener stops (drain time 1 s; bounded wait).
    let closed = wait_until_async(WAIT, || std::net::TcpStream::connect(front).is_err()).await;
    assert!(closed, "the listener still accepts after the drain time\n{}", envoy.output());
}

/// A static tcp_proxy listener may name a cluster that only CDS provides (as in
/// Envoy, the cluster is looked up per connection): mini-envoy starts, and the
/// connection reaches the backend once the CDS file defines the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_tcp_proxy_can_name_a_cluster_from_cds() {
    let backend = Backend::named("tcp", Behaviour::Fixed(200, "via tcp_proxy"));
    let dir = tempfile::tempdir().expect("tempdir");
    let cds_path = dir.path().join("cds.yaml");
    let cluster = mini_envoy_tests::config::cluster("from_cds", &[backend.addr()], "").replacen(
        "- name:",
        "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name:",
        1,
    );
    move_in(&cds_path, &format!("version_info: \"1\"\nresources:\n{cluster}"));
    let bootstrap = format!(
        "static_resources:\n  listeners:\n  - name: tcp\n    address:\n      socket_address: {{ address: 127.0.0.1, port_value: 0 }}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.tcp_proxy\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: tcp\n          cluster: from_cds\n\
dynamic_resources:\n  cds_config:\n    resource_api_version: V3\n    path_config_source: {{ path: {:?} }}\n",
        cds_path.display()
    );
    let bootstrap_path = dir.path().join("envoy.yaml");
    std::fs::write(&bootstrap_path, bootstrap).expect("write the bootstrap");
    let config = bootstrap_path.display().to_string();
    let envoy = MiniEnvoy::start_with_args(&["-c", &config, "--concurrency", "1"], 1, false);
    let serving = Client::new().wait_for_ok(envoy.listener("tcp")).await;
    assert!(serving, "the tcp_proxy never reached the CDS cluster\n{}", envoy.output());
    assert!(backend.wait_for_requests_async(1, WAIT).await);
}

/// A control plane built on a newer Envoy API sends a field number mini-envoy
/// does not know: by default the cluster is accepted (the field ignored, a
/// warning, `server.dynamic_unknown_fields`); with
/// `--reject-unknown-dynamic-fields` the response is NACKed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_dynamic_fields_are_accepted_and_counted_or_rejected_on_request() {
    use mini_envoy_tests::stat;
    use week4_xds::grpc::convert::json_to_any;
    use week4_xds::grpc::server::ControlPlane;
    let backend = Backend::start(Behaviour::Fixed(200, "ok"));
    let mut cluster = json_to_any(&serde_json::json!({
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": "svc", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "svc", "endpoints": [{"lb_endpoints": [{"endpoint":
            {"address": {"socket_address": {"address": "127.0.0.1", "port_value": backend.addr().port()}}}}]}]}
    }))
    .expect("a valid cluster");
    cluster.value.extend_from_slice(&[0xf8, 0xff, 0x03, 0x01]); // field 8191 = 1: not in our API
    let cp = ControlPlane::new();
    cp.set_encoded(vec![("svc".into(), cluster)]).expect("served as is");
    let served = mini_envoy_tests::control_plane::ServedControlPlane::start(&cp).await;

    let routes = catch_all("- match: { prefix: / }\n  route: { cluster: svc }");
    let yaml = format!(
        "{}dynamic_resources:\n  cds_config: {{ ads: {{}}, resource_api_version: V3 }}\n  ads_config:\n    api_type: GRPC\n    transport_api_version: V3\n    grpc_services:\n    - envoy_grpc: {{ cluster_name: xds }}\n",
        mini_envoy_tests::config::bootstrap(
            &[http_listener("front", &routes, "")],
            &[mini_envoy_tests::config::cluster("xds", &[served.addr], "")]
        )
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write the bootstrap");
    let config = path.display().to_string();

    let lenient = MiniEnvoy::start_with_args(&["-c", &config, "--concurrency", "1"], 1, true);
    assert!(
        Client::new().wait_for_ok(lenient.listener("front")).await,
        "the cluster with an unknown field was not accepted\n{}",
        lenient.output()
    );
    assert_eq!(stat(&lenient, "server.dynamic_unknown_fields").await, Some(1));
    assert!(lenient.output().contains("field number 8191"), "{}", lenient.output());

    let strict = MiniEnvoy::start_with_args(
        &["-c", &config, "--concurrency", "1", "--reject-unknown-dynamic-fields"],
        1,
        true,
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while stat(&strict, "cluster_manager.cds.update_rejected").await != Some(1) {
        assert!(tokio::time::Instant::now() < deadline, "never NACKed\n{}", strict.output());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stat(&strict, "server.dynamic_unknown_fields").await, Some(0));
    let r = Client::new().get(strict.listener("front"), "/").await;
    assert_eq!(r.status, 503, "no cluster svc: {}", strict.output());
}

/// Envoy's cluster warming, for a cluster CDS adds at runtime: with active
/// health checking it stays off the workers until each host had its first
/// check (requests naming it meanwhile get `503 NC`, as for an unknown
/// cluster; `cluster_manager.warming_clusters` counts it), then serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_checked_cds_cluster_serves_only_after_its_first_checks() {
    use mini_envoy_tests::stat;
    // Every answer, the health check's too, comes after 1.5 s: the warming window.
    let backend = Backend::start(Behaviour::Delay(std::time::Duration::from_millis(1500)));
    let dir = tempfile::tempdir().expect("tempdir");
    let cds_path = dir.path().join("cds.yaml");
    move_in(&cds_path, "version_info: \"0\"\nresources: []\n");
    let bootstrap_path = dir.path().join("envoy.yaml");
    std::fs::write(&bootstrap_path, bootstrap(&cds_path)).expect("write the bootstrap");
    let config = bootstrap_path.display().to_string();
    let envoy = MiniEnvoy::start_with_args(&["-c", &config, "--concurrency", "2"], 1, true);
    let front = envoy.listener("front");
    let client = Client::new();
    assert_eq!(client.get(front, "/").await.status, 503, "no svc yet");

    move_in(
        &cds_path,
        &format!(
            concat!(
                "version_info: \"1\"\nresources:\n",
                "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n",
                "  name: svc\n  type: STATIC\n  connect_timeout: 1s\n",
                "  health_checks:\n  - timeout: 5s\n    interval: 10s\n",
                "    unhealthy_threshold: 1\n    healthy_threshold: 1\n",
                "    http_health_check: {{ path: /healthz }}\n",
                "  load_assignment:\n    cluster_name: svc\n    endpoints:\n    - lb_endpoints:\n",
                "      - endpoint: {{ address: {{ socket_address: {{ address: {}, port_value: {} }} }} }}\n",
            ),
            backend.addr().ip(),
            backend.addr().port()
        ),
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while stat(&envoy, "cluster_manager.warming_clusters").await != Some(1) {
        assert!(tokio::time::Instant::now() < deadline, "svc never warmed\n{}", envoy.output());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Warming: not on the workers, so not routed (its health check is in flight).
    let r = client.get(front, "/").await;
    assert_eq!((r.status, r.header("x-backend")), (503, None), "{}", envoy.output());
    assert!(backend.requests().iter().all(|r| r.path == "/healthz"), "only health checks so far");
    assert!(client.wait_for_ok(front).await, "svc never served\n{}", envoy.output());
    assert_eq!(stat(&envoy, "cluster_manager.warming_clusters").await, Some(0));
    assert_eq!(stat(&envoy, "cluster_manager.active_clusters").await, Some(1));
    assert_eq!(stat(&envoy, "cluster.svc.health_check.success").await, Some(1));
}

/// Envoy's `initial_fetch_timeout` for a new EDS cluster: without an
/// assignment by then, its warming ends and it serves without hosts
/// (`503 UH`); a later assignment fills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eds_cluster_without_endpoints_stops_warming_at_its_initial_fetch_timeout() {
    use mini_envoy_tests::stat;
    let backend = Backend::start(Behaviour::Fixed(200, "filled"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (cds_path, eds_path) = (dir.path().join("cds.yaml"), dir.path().join("eds.yaml"));
    // The EDS file exists but holds no assignment for `svc` yet.
    move_in(&eds_path, "version_info: \"0\"\nresources: []\n");
    move_in(
        &cds_path,
        &format!(
            concat!(
                "version_info: \"1\"\nresources:\n",
                "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n",
                "  name: svc\n  type: EDS\n  connect_timeout: 1s\n",
                "  eds_cluster_config:\n    eds_config:\n      resource_api_version: V3\n",
                "      initial_fetch_timeout: 0.5s\n      path_config_source: {{ path: {:?} }}\n",
            ),
            eds_path.display()
        ),
    );
    let bootstrap_path = dir.path().join("envoy.yaml");
    std::fs::write(&bootstrap_path, bootstrap(&cds_path)).expect("write the bootstrap");
    let config = bootstrap_path.display().to_string();
    let envoy = MiniEnvoy::start_with_args(&["-c", &config, "--concurrency", "1"], 1, true);
    let front = envoy.listener("front");
    let deadline = tokio::time::Instant::now() + WAIT;
    while stat(&envoy, "cluster_manager.active_clusters").await != Some(1) {
        assert!(tokio::time::Instant::now() < deadline, "svc kept warming\n{}", envoy.output());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stat(&envoy, "cluster_manager.warming_clusters").await, Some(0));
    let r = Client::new().get(front, "/").await;
    assert_eq!(r.status, 503, "served without hosts: {}", r.text());
    assert!(r.text().contains("no healthy upstream"), "{}", r.text());
    move_in(&eds_path, &eds(1, &[backend.addr()]));
    assert!(Client::new().wait_for_ok(front).await, "the late assignment never served");
}
