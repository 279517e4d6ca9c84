//! End-to-end tests of LDS and RDS (issue #7 §4): the real `mini-envoy`
//! binary with `dynamic_resources.lds_config` and an HCM reading its routes
//! through `rds`, from files (`path_config_source`, updated by writing a
//! temporary file and renaming it into place) and from the week 4 control
//! plane over gRPC ADS, while hyper clients keep requests flowing. Through
//! files each listener version says who it is in the `server` header
//! (`server_name`) and each route version in `x-route-version`; over ADS
//! (whose protobuf mapping carries fewer fields) each listener version has
//! its own `stat_prefix` and the routes switch backends. Waits are bounded
//! polls.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mini_envoy_tests::config::cluster;
use mini_envoy_tests::{Backend, Behaviour, Client, MiniEnvoy, WAIT, wait_until_async};
use serde_json::json;

/// A free loopback port for a dynamic listener (Envoy binds what LDS says).
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local addr")
}

/// The listener `front` on `addr`: HCM `server_name: listener-<version>`,
/// `drain_timeout: 0.2s`, routes from RDS `routes` in the file `rds_path`.
fn listener_json(addr: SocketAddr, version: usize, rds_path: &Path) -> serde_json::Value {
    let source = json!({"resource_api_version": "V3", "path_config_source": {"path": rds_path}});
    json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": "front",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": addr.port()}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "front",
                "server_name": format!("listener-{version}"),
                "drain_timeout": "0.2s",
                "rds": {"config_source": source, "route_config_name": "routes"},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    })
}

/// [`listener_json`] with an HTTP filter mini-envoy does not know.
fn bad_listener(addr: SocketAddr, version: usize, rds_path: &Path) -> serde_json::Value {
    let mut l = listener_json(addr, version, rds_path);
    let filter = &mut l["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0];
    filter["name"] = json!("envoy.filters.http.nope");
    filter["typed_config"]["@type"] = json!("type.googleapis.com/nope.v3.Nope");
    l
}

/// The route configuration `routes`: everything to `cluster`, answered with
/// `x-route-version: <version>`.
fn routes_json(version: usize, cluster: &str) -> serde_json::Value {
    json!({
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": "routes",
        "response_headers_to_add": [{"header": {"key": "x-route-version", "value": version.to_string()}}],
        "virtual_hosts": [{"name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]
    })
}

/// A `DiscoveryResponse` file (JSON is YAML).
fn response_file(version: usize, resources: &[serde_json::Value]) -> String {
    json!({"version_info": version.to_string(), "resources": resources}).to_string()
}

/// Writes `text` to `path` as Envoy expects: a temporary file renamed over it.
fn move_in(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the temporary file");
    std::fs::rename(&tmp, path).expect("rename it into place");
}

/// What the load saw: 2xx count, failures, and the newest listener and
/// route versions answered.
#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    failed: Mutex<Vec<String>>,
    listener: AtomicU64,
    route: AtomicU64,
}

/// Client tasks sending GETs until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn version_of(header: Option<&str>, prefix: &str) -> Option<u64> {
    header?.strip_prefix(prefix)?.parse().ok()
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let tasks = (0..clients)
            .map(|_| {
                let (stop, seen) = (stop.clone(), seen.clone());
                tokio::spawn(async move {
                    let client = Client::new();
                    while !stop.load(Ordering::Relaxed) {
                        let req = mini_envoy_tests::client::request(hyper::Method::GET, addr, "/")
                            .body(Default::default())
                            .expect("valid request");
                        match client.try_send(req).await {
                            Ok(r) if (200..300).contains(&r.status) => {
                                seen.ok.fetch_add(1, Ordering::Relaxed);
                                if let Some(v) = version_of(r.header("server"), "listener-") {
                                    seen.listener.fetch_max(v, Ordering::Relaxed);
                                }
                                if let Some(v) = version_of(r.header("x-route-version"), "") {
                                    seen.route.fetch_max(v, Ordering::Relaxed);
                                }
                            }
                            Ok(r) => seen.failed.lock().unwrap().push(format!(
                                "{} {}",
                                r.status,
                                r.text()
                            )),
                            Err(e) => seen.failed.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        Load { stop, seen, tasks }
    }

    /// Waits (bounded) until the load saw listener and route `version`.
    async fn wait_for_version(&self, version: u64) -> bool {
        let seen = self.seen.clone();
        wait_until_async(WAIT, move || {
            seen.listener.load(Ordering::Relaxed) >= version
                && seen.route.load(Ordering::Relaxed) >= version
        })
        .await
    }

    /// Stops the clients; returns (2xx count, failures).
    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("client task");
        }
        let failed = self.seen.failed.lock().unwrap().clone();
        (self.seen.ok.load(Ordering::Relaxed), failed)
    }
}

fn assert_no_loss(ok: u64, failed: &[String]) {
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok + failed.len() as u64,
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests made it");
}

/// `/stats` lines matching `filter`.
async fn stats(envoy: &MiniEnvoy, filter: &str) -> String {
    Client::new().get(envoy.admin(), &format!("/stats?filter={filter}")).await.text()
}

/// Waits (bounded) until `/stats` has `line`.
async fn wait_for_stat(envoy: &MiniEnvoy, filter: &str, line: &str) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if stats(envoy, filter).await.lines().any(|l| l == line) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Waits (bounded) until `addr` refuses connections.
async fn wait_refused(addr: SocketAddr) -> bool {
    wait_until_async(WAIT, || std::net::TcpStream::connect(addr).is_err()).await
}

struct FileSetup {
    _dir: tempfile::TempDir,
    lds: PathBuf,
    rds: PathBuf,
    front: SocketAddr,
    envoy: MiniEnvoy,
    backends: Vec<Backend>,
}

/// mini-envoy with static clusters `b0`, `b1`, and `front` from `lds.yaml`
/// reading `routes` from `routes.yaml` (version 0, to `b0`); drain time 2 s.
async fn file_setup() -> FileSetup {
    file_setup_draining("2").await
}

/// [`file_setup`] with `--drain-time-s drain_s`.
async fn file_setup_draining(drain_s: &str) -> FileSetup {
    let backends: Vec<Backend> =
        (0..2).map(|i| Backend::named(&format!("b{i}"), Behaviour::Fixed(200, "ok"))).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let (lds, rds) = (dir.path().join("lds.yaml"), dir.path().join("routes.yaml"));
    let front = free_port();
    move_in(&rds, &response_file(0, &[routes_json(0, "b0")]));
    move_in(&lds, &response_file(0, &[listener_json(front, 0, &rds)]));
    let clusters: Vec<String> =
        backends.iter().map(|b| cluster(b.name(), &[b.addr()], "")).collect();
    let yaml = format!(
        "{}dynamic_resources:\n  lds_config:\n    resource_api_version: V3\n    path_config_source: {{ path: {:?} }}\n",
        mini_envoy_tests::config::bootstrap(&[], &clusters)
            .replace("  listeners:\n", "  listeners: []\n"),
        lds.display()
    );
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write the bootstrap");
    let config = path.display().to_string();
    let args = ["-c", &config, "--concurrency", "2", "--drain-time-s", drain_s];
    let envoy = MiniEnvoy::start_with_args(&args, 0, true);
    let serving = Client::new().wait_for_ok(front).await;
    assert!(serving, "front never served from the LDS/RDS files\n{}", envoy.output());
    FileSetup { _dir: dir, lds, rds, front, envoy, backends }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_and_routes_replaced_ten_times_through_files_lose_no_request() {
    let s = file_setup().await;
    let load = Load::start(s.front, 4);
    for i in 1..=10 {
        // A new listener version on the same address, and new routes that
        // move traffic to the other backend.
        move_in(&s.rds, &response_file(i, &[routes_json(i, &format!("b{}", i % 2))]));
        move_in(&s.lds, &response_file(i, &[listener_json(s.front, i, &s.rds)]));
        assert!(
            load.wait_for_version(i as u64).await,
            "update {i}: listener and routes never observed\n{}",
            s.envoy.output()
        );
    }
    let (ok, failed) = load.finish().await;
    assert_no_loss(ok, &failed);
    let text = stats(&s.envoy, "listener_manager").await;
    for line in [
        "listener_manager.lds.update_success: 11",
        "listener_manager.listener_added: 1",
        "listener_manager.listener_modified: 10",
        "listener_manager.total_listeners_active: 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    // Every old version finishes draining (its idle connections close after
    // drain_timeout, anything left at the 2 s drain time).
    let drained = "listener_manager.total_listeners_draining: 0";
    assert!(wait_for_stat(&s.envoy, "draining", drained).await, "{}", s.envoy.output());
    let rds = stats(&s.envoy, "http.front.rds.routes.update_success").await;
    assert!(rds.lines().any(|l| l == "http.front.rds.routes.update_success: 11"), "{rds}");

    // /listeners lists the LDS listener; once removed, its socket stops
    // accepting and it is no longer listed.
    let listed = Client::new().get(s.envoy.admin(), "/listeners").await.text();
    assert!(listed.contains(&format!("front::{}", s.front)), "{listed}");
    move_in(&s.lds, &response_file(11, &[]));
    assert!(wait_refused(s.front).await, "front still accepts\n{}", s.envoy.output());
    let listed = Client::new().get(s.envoy.admin(), "/listeners").await.text();
    assert!(!listed.contains("front::"), "{listed}");
    assert!(
        wait_for_stat(&s.envoy, "listener_removed", "listener_manager.listener_removed: 1").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_lds_and_rds_files_keep_serving_and_count_update_rejected() {
    let s = file_setup().await;
    let load = Load::start(s.front, 2);
    // A listener whose HCM has an unknown HTTP filter; routes with a regex
    // that does not compile.
    move_in(&s.lds, &response_file(1, &[bad_listener(s.front, 1, &s.rds)]));
    let rejected = "listener_manager.lds.update_rejected: 1";
    assert!(wait_for_stat(&s.envoy, "lds.update_rejected", rejected).await, "{}", s.envoy.output());
    let mut bad_routes = routes_json(1, "b1");
    bad_routes["virtual_hosts"][0]["routes"][0]["match"] = json!({"safe_regex": {"regex": "("}});
    move_in(&s.rds, &response_file(1, &[bad_routes]));
    let rejected = "http.front.rds.routes.update_rejected: 1";
    assert!(
        wait_for_stat(&s.envoy, "rds.routes.update_rejected", rejected).await,
        "{}",
        s.envoy.output()
    );
    // A listener that cannot bind (its port is taken) is rejected too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let elsewhere = taken.local_addr().expect("addr");
    move_in(&s.lds, &response_file(2, &[listener_json(elsewhere, 2, &s.rds)]));
    let rejected = "listener_manager.lds.update_rejected: 2";
    assert!(wait_for_stat(&s.envoy, "lds.update_rejected", rejected).await, "{}", s.envoy.output());

    // Still serving version 0; a good update after them applies.
    move_in(&s.rds, &response_file(3, &[routes_json(3, "b1")]));
    move_in(&s.lds, &response_file(3, &[listener_json(s.front, 3, &s.rds)]));
    assert!(load.wait_for_version(3).await, "{}", s.envoy.output());
    let (ok, failed) = load.finish().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(ok > 0);

    // /config_dump: the LDS listener and the RDS routes in force, as the
    // JSON they came in, with their version (the rejected ones never were).
    let dump = Client::new().get(s.envoy.admin(), "/config_dump").await.text();
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("/config_dump is JSON");
    let part = |t: &str| {
        dump["configs"].as_array().unwrap().iter().find(|c| c["@type"] == t).cloned().unwrap()
    };
    let listeners = part("type.googleapis.com/envoy.admin.v3.ListenersConfigDump");
    assert_eq!(listeners["version_info"], "3");
    let front = &listeners["dynamic_listeners"][0];
    assert_eq!(front["name"], "front");
    assert_eq!(front["active_state"]["version_info"], "3");
    let hcm = &front["active_state"]["listener"]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["server_name"], "listener-3", "{front}");
    assert!(front["active_state"]["last_updated"].as_str().is_some_and(|t| t.ends_with('Z')));
    let routes = part("type.googleapis.com/envoy.admin.v3.RoutesConfigDump");
    let rds = &routes["dynamic_route_configs"][0];
    assert_eq!(rds["version_info"], "3", "{routes}");
    assert_eq!(rds["route_config"]["name"], "routes");
    assert_eq!(
        rds["route_config"]["@type"],
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    );
    let only = Client::new().get(s.envoy.admin(), "/config_dump?resource=dynamic_listeners").await;
    let only: serde_json::Value = serde_json::from_str(&only.text()).expect("JSON");
    assert_eq!(only["configs"][0]["name"], "front", "{only}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_closes_after_drain_timeout_when_its_listener_is_replaced() {
    use tokio::io::AsyncReadExt;
    let s = file_setup_draining("30").await;
    // Connected, never sends a request.
    let mut silent = tokio::net::TcpStream::connect(s.front).await.expect("connect");
    // Let a worker accept it under version 0.
    let accepted =
        wait_for_stat(&s.envoy, "downstream_cx_active", "http.front.downstream_cx_active: 1").await;
    assert!(accepted, "{}", stats(&s.envoy, "downstream_cx").await);
    move_in(&s.lds, &response_file(1, &[listener_json(s.front, 1, &s.rds)]));
    // drain_timeout is 0.2 s, the drain time 30 s: closed long before a
    // forced close would; bounded wait.
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the silent connection stayed open: {read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed only after {:?} (the drain time, not drain_timeout)",
        started.elapsed()
    );
    assert!(Client::new().wait_for_ok(s.front).await, "the new version serves");
}

/// The listener `front` on `addr` for the control plane, whose protobuf
/// mapping carries a subset of the HCM: each version has its own
/// `stat_prefix` (`front_<version>`), its routes come from RDS over ADS.
fn ads_listener(addr: SocketAddr, version: usize) -> serde_json::Value {
    json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": "front",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": addr.port()}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": format!("front_{version}"),
                "rds": {"config_source": {"ads": {}}, "route_config_name": "routes"},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    })
}

/// The route configuration `routes` for the control plane: everything to `cluster`.
fn ads_routes(cluster: &str) -> serde_json::Value {
    json!({
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": "routes",
        "virtual_hosts": [{"name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]
    })
}

/// Waits (bounded) until counter `name` is above zero.
async fn wait_for_counter(envoy: &MiniEnvoy, name: &str) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    let prefix = format!("{name}: ");
    while tokio::time::Instant::now() < deadline {
        let text = stats(envoy, name).await;
        let value = text.lines().find_map(|l| l.strip_prefix(&prefix)?.parse::<u64>().ok());
        if value.is_some_and(|v| v > 0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_and_routes_replaced_ten_times_over_ads_lose_no_request() {
    use week4_xds::grpc::server::ControlPlane;
    let backends: Vec<Backend> =
        (0..2).map(|i| Backend::named(&format!("b{i}"), Behaviour::Fixed(200, "ok"))).collect();
    let front = free_port();
    let cp = ControlPlane::new();
    cp.set_resources(&[ads_listener(front, 0), ads_routes("b0")]).expect("valid");
    let served = mini_envoy_tests::control_plane::ServedControlPlane::start(&cp).await;
    let cp_addr = served.addr;
    let mut clusters: Vec<String> =
        backends.iter().map(|b| cluster(b.name(), &[b.addr()], "")).collect();
    clusters.push(cluster("xds", &[cp_addr], ""));
    let yaml = format!(
        "{}dynamic_resources:\n  lds_config: {{ ads: {{}}, resource_api_version: V3 }}\n  ads_config:\n    api_type: GRPC\n    transport_api_version: V3\n    grpc_services:\n    - envoy_grpc: {{ cluster_name: xds }}\n",
        mini_envoy_tests::config::bootstrap(&[], &clusters)
            .replace("  listeners:\n", "  listeners: []\n")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write the bootstrap");
    let config = path.display().to_string();
    let args = ["-c", &config, "--concurrency", "2", "--drain-time-s", "2"];
    let envoy = MiniEnvoy::start_with_args(&args, 0, true);
    assert!(
        Client::new().wait_for_ok(front).await,
        "front never served over ADS\n{}",
        envoy.output()
    );

    let load = Load::start(front, 4);
    for i in 1..=10 {
        // The routes move traffic to the other backend; the listener's
        // new stat_prefix shows which version served.
        let target = &backends[i % 2];
        let before = target.request_count();
        cp.set_resources(&[ads_listener(front, i), ads_routes(target.name())]).expect("valid");
        assert!(
            target.wait_for_requests_async(before + 1, WAIT).await,
            "update {i}: no request reached {}\n{}",
            target.name(),
            envoy.output()
        );
        let served = format!("http.front_{i}.downstream_rq_total");
        assert!(wait_for_counter(&envoy, &served).await, "update {i}: {served} stays 0");
    }
    let (ok, failed) = load.finish().await;
    assert_no_loss(ok, &failed);
    let success = "listener_manager.lds.update_success: 11";
    assert!(wait_for_stat(&envoy, "lds.update_success", success).await, "{}", envoy.output());

    // A listener mini-envoy cannot build (a host name, not an IP) is NACKed,
    // counted, and the previous version keeps serving.
    let mut bad = ads_listener(front, 11);
    bad["address"]["socket_address"]["address"] = json!("localhost");
    cp.set_resources(&[bad, ads_routes("b0")]).expect("valid protobuf");
    let rejected = "listener_manager.lds.update_rejected: 1";
    assert!(wait_for_stat(&envoy, "lds.update_rejected", rejected).await, "{}", envoy.output());
    assert!(Client::new().wait_for_ok(front).await, "{}", envoy.output());

    // Removed over ADS: the socket stops accepting.
    cp.set_resources(&[]).expect("valid");
    assert!(wait_refused(front).await, "front still accepts\n{}", envoy.output());
    drop(served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_uses_new_routes_on_its_next_request() {
    use mini_envoy_tests::RawConnection;
    let s = file_setup().await;
    let (front, rds) = (s.front, s.rds.clone());
    let get = b"GET / HTTP/1.1\r\nhost: front\r\n\r\n";
    tokio::task::block_in_place(|| {
        let mut conn = RawConnection::connect(front);
        conn.send(get);
        let first = conn.read_response().expect("a response");
        assert_eq!(first.header("x-route-version"), Some("0"), "{first:?}");
        // Only the routes change (to b1): the listener, and so this
        // connection, stay.
        move_in(&rds, &response_file(1, &[routes_json(1, "b1")]));
        let switched = mini_envoy_tests::wait_until(WAIT, || {
            conn.send(get);
            let r = conn.read_response().expect("the keep-alive connection stays open");
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(r.header("connection"), None, "not asked to close: {r:?}");
            r.header("x-route-version") == Some("1")
        });
        assert!(switched, "the connection never saw the new routes\n{}", s.envoy.output());
    });
    assert!(s.backends[1].request_count() > 0, "b1 got the requests of the new routes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_warms_until_its_routes_arrive() {
    let s = file_setup().await;
    // `second` reads routes `other`, which the route file does not have yet.
    let second = free_port();
    let mut warming = listener_json(second, 0, &s.rds);
    warming["name"] = json!("second");
    let hcm = &mut warming["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["stat_prefix"] = json!("second");
    hcm["rds"]["route_config_name"] = json!("other");
    hcm["rds"]["config_source"]["initial_fetch_timeout"] = json!("60s");
    let front = listener_json(s.front, 0, &s.rds);
    move_in(&s.lds, &response_file(1, &[front.clone(), warming]));
    let line = "listener_manager.total_listeners_warming: 1";
    assert!(wait_for_stat(&s.envoy, "warming", line).await, "{}", s.envoy.output());
    let listed = Client::new().get(s.envoy.admin(), "/listeners").await.text();
    assert!(!listed.contains("second::"), "a warming listener is not active: {listed}");
    assert!(Client::new().wait_for_ok(s.front).await, "front keeps serving");

    // The routes arrive: `second` activates and serves them.
    let mut other = routes_json(1, "b1");
    other["name"] = json!("other");
    move_in(&s.rds, &response_file(1, &[routes_json(1, "b0"), other]));
    assert!(Client::new().wait_for_ok(second).await, "second never served\n{}", s.envoy.output());
    let line = "listener_manager.total_listeners_warming: 0";
    assert!(wait_for_stat(&s.envoy, "warming", line).await, "{}", s.envoy.output());
    let active = "listener_manager.total_listeners_active: 2";
    assert!(wait_for_stat(&s.envoy, "total_listeners_active", active).await);
}
