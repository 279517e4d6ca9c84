//! End-to-end tests of the admin interface and stats (issue #7 §2, §3): the
//! real `mini-envoy` binary, hyper clients and backends, loopback only.
//!
//! `/stats/prometheus` is read with `prometheus-parse`, a Prometheus
//! text-format parser independent of mini-envoy (a crate: promtool would need
//! a download the test command cannot make), plus a strict line check of the
//! exposition grammar it is lenient about (`# TYPE` before every family,
//! valid metric and label names).
//!
//! `/config_dump` is parsed with `serde_json` and its timestamps with
//! `chrono`'s RFC 3339 parser.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use mini_envoy_tests::client::request;
use mini_envoy_tests::config::{bootstrap, catch_all, cluster, http_listener};
use mini_envoy_tests::raw::exchange;
use mini_envoy_tests::{Backend, Behaviour, Client, MiniEnvoy, Response, WAIT, wait_until_async};

const ROUTES: &str = r#"
- match: { prefix: "/down" }
  direct_response: { status: 503 }
- match: { prefix: "/" }
  route: { cluster: svc }
"#;

fn start(backend: &Backend) -> MiniEnvoy {
    MiniEnvoy::start(&bootstrap(
        &[http_listener("front", &catch_all(ROUTES), "")],
        &[cluster("svc", &[backend.addr()], "")],
    ))
}

async fn admin_get(envoy: &MiniEnvoy, path: &str) -> Response {
    Client::without_pool().get(envoy.admin(), path).await
}

async fn admin_post(envoy: &MiniEnvoy, path: &str) -> Response {
    let req = request(Method::POST, envoy.admin(), path).body(Full::new(Bytes::new())).unwrap();
    Client::without_pool().send(req).await
}

/// `/stats` text as `name -> value` (counters and gauges).
async fn stats(envoy: &MiniEnvoy) -> HashMap<String, String> {
    let r = admin_get(envoy, "/stats").await;
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Sends 3 requests routed to the backend (200) and 2 direct 503s, each on
/// its own connection.
async fn five_requests(front: SocketAddr) {
    let client = Client::without_pool();
    for _ in 0..3 {
        assert_eq!(client.get(front, "/ok").await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(client.get(front, "/down").await.status, 503);
    }
}

#[tokio::test]
async fn stats_count_requests_exactly_in_every_format() {
    let backend = Backend::start(Behaviour::Fixed(200, "ok"));
    let envoy = start(&backend);
    let front = envoy.listener("front");
    five_requests(front).await;

    let listener = format!("listener.{}", front.to_string().replace(':', "_"));
    let expected = [
        ("http.front.downstream_rq_total", "5"),
        ("http.front.downstream_rq_2xx", "3"),
        ("http.front.downstream_rq_5xx", "2"),
        ("http.front.downstream_rq_4xx", "0"),
        ("http.front.downstream_cx_total", "5"),
        ("http.front.downstream_rq_active", "0"),
        (&format!("{listener}.downstream_cx_total"), "5"),
        ("cluster.svc.upstream_rq_total", "3"),
        ("cluster.svc.upstream_rq_200", "3"),
        ("cluster.svc.upstream_rq_2xx", "3"),
        ("cluster.svc.upstream_rq_active", "0"),
        ("cluster.svc.upstream_rq_pending_active", "0"),
        ("cluster.svc.upstream_cx_connect_fail", "0"),
        ("cluster.svc.membership_total", "1"),
        ("cluster.svc.membership_healthy", "1"),
        ("cluster.svc.circuit_breakers.default.cx_open", "0"),
        ("cluster.svc.circuit_breakers.high.rq_pending_open", "0"),
        ("server.concurrency", "2"),
        ("server.live", "1"),
        ("server.state", "0"),
    ];
    // The last connection's close is counted when the worker sees it: a
    // bounded poll until no connection is active.
    let active = format!("{listener}.downstream_cx_active");
    let deadline = tokio::time::Instant::now() + WAIT;
    while stats(&envoy).await.get(&active).map(String::as_str) != Some("0") {
        assert!(tokio::time::Instant::now() < deadline, "{}", envoy.output());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let s = stats(&envoy).await;
    for (name, value) in expected {
        assert_eq!(s.get(name).map(String::as_str), Some(value), "{name}");
    }
    let text = admin_get(&envoy, "/stats").await.text();
    let names: Vec<&str> = text.lines().take_while(|l| !l.contains(": P0(")).collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "counters and gauges sorted");
    let rq_time = text.lines().find(|l| l.starts_with("http.front.downstream_rq_time: "));
    assert!(rq_time.is_some_and(|l| l.contains("P50(nan,") && l.contains("P100(nan,")), "{text}");

    // ?filter= and ?usedonly.
    let filtered =
        admin_get(&envoy, "/stats?usedonly&filter=%5Ehttp%5C.front%5C.downstream_rq_").await;
    let lines: Vec<String> = filtered.text().lines().map(str::to_string).collect();
    assert!(lines.contains(&"http.front.downstream_rq_2xx: 3".to_string()), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("http.front.downstream_rq_4xx")), "unused");
    assert!(lines.iter().all(|l| l.starts_with("http.front.downstream_rq_")), "{lines:?}");

    // ?format=json in Envoy's shape.
    let json = admin_get(&envoy, "/stats?format=json").await;
    assert_eq!(json.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&json.body).expect("JSON");
    let list = v["stats"].as_array().expect("stats array");
    let value_of = |name: &str| list.iter().find(|s| s["name"] == name).map(|s| s["value"].clone());
    assert_eq!(value_of("http.front.downstream_rq_total"), Some(5.into()));
    let hist = list.iter().find_map(|s| s.get("histograms")).expect("histograms entry");
    assert_eq!(hist["supported_quantiles"].as_array().map(Vec::len), Some(10));
    let rq_time = hist["computed_quantiles"]
        .as_array()
        .and_then(|a| a.iter().find(|h| h["name"] == "http.front.downstream_rq_time"))
        .expect("downstream_rq_time quantiles");
    assert!(rq_time["values"][9]["cumulative"].is_number());

    // /stats/prometheus, parsed by an independent parser.
    let prom = admin_get(&envoy, "/stats/prometheus").await;
    assert_eq!(prom.status, 200);
    let body = prom.text();
    check_exposition_grammar(&body);
    let scrape =
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parses");
    let sample = |metric: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| s.value.clone())
    };
    use prometheus_parse::Value;
    let prefix = ("envoy_http_conn_manager_prefix", "front");
    assert_eq!(
        sample("envoy_http_downstream_rq_xx", &[prefix, ("envoy_response_code_class", "2")]),
        Some(Value::Counter(3.0))
    );
    assert_eq!(
        sample("envoy_http_downstream_rq_xx", &[prefix, ("envoy_response_code_class", "5")]),
        Some(Value::Counter(2.0))
    );
    let address = front.to_string().replace(':', "_");
    assert_eq!(
        sample("envoy_listener_downstream_cx_total", &[("envoy_listener_address", &address)]),
        Some(Value::Counter(5.0))
    );
    assert_eq!(sample("envoy_server_concurrency", &[]), Some(Value::Gauge(2.0)));
    assert_eq!(
        sample(
            "envoy_cluster_upstream_rq",
            &[("envoy_cluster_name", "svc"), ("envoy_response_code", "200")]
        ),
        Some(Value::Counter(3.0))
    );
    assert_eq!(
        sample("envoy_cluster_upstream_rq_total", &[("envoy_cluster_name", "svc")]),
        Some(Value::Counter(3.0))
    );
    match sample("envoy_http_downstream_rq_time", &[prefix]) {
        Some(Value::Histogram(buckets)) => {
            assert_eq!(buckets.len(), 20, "19 bounds and +Inf");
            assert_eq!(buckets.last().map(|b| b.count), Some(5.0));
            assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count), "cumulative");
        }
        other => panic!("downstream_rq_time: {other:?}"),
    }
    assert_eq!(sample("envoy_http_downstream_rq_time_count", &[prefix]), Some(Value::Untyped(5.0)));
}

/// The exposition grammar, line by line: every sample's family was declared
/// by a `# TYPE` line, names and labels are valid, values are numbers.
fn check_exposition_grammar(body: &str) {
    let name = regex::Regex::new(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$").unwrap();
    let sample = regex::Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (\S+)$"#,
    )
    .unwrap();
    let mut declared: HashMap<String, String> = HashMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(name.is_match(family), "{line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                declared.insert(family.into(), kind.into()).is_none(),
                "declared twice: {line}"
            );
            continue;
        }
        let c = sample.captures(line).unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let metric = &c[1];
        let value = &c[5];
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                metric
                    .strip_suffix(s)
                    .filter(|f| declared.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(metric);
        assert!(declared.contains_key(family), "no # TYPE before {line}");
    }
}

#[tokio::test]
async fn clusters_and_listeners_in_envoys_formats() {
    let backend = Backend::start(Behaviour::Fixed(200, "ok"));
    let envoy = start(&backend);
    let front = envoy.listener("front");
    assert_eq!(Client::new().get(front, "/ok").await.status, 200);

    let text = admin_get(&envoy, "/clusters").await.text();
    let host = format!("svc::{}", backend.addr());
    for line in [
        "svc::default_priority::max_connections::1024".to_string(),
        "svc::default_priority::max_retries::3".to_string(),
        "svc::high_priority::max_requests::1024".to_string(),
        "svc::added_via_api::false".to_string(),
        format!("{host}::health_flags::healthy"),
        format!("{host}::weight::1"),
        format!("{host}::region::"),
        format!("{host}::canary::false"),
        format!("{host}::priority::0"),
        format!("{host}::success_rate::-1"),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(text.lines().any(|l| l.starts_with(&format!("{host}::cx_active::"))), "{text}");
    assert!(text.lines().any(|l| l.starts_with(&format!("{host}::rq_total::"))), "{text}");

    let json: serde_json::Value =
        serde_json::from_slice(&admin_get(&envoy, "/clusters?format=json").await.body).unwrap();
    let svc = &json["cluster_statuses"][0];
    assert_eq!(svc["name"], "svc");
    assert_eq!(svc["added_via_api"], false);
    let h = &svc["host_statuses"][0];
    assert_eq!(h["address"]["socket_address"]["port_value"], backend.addr().port());
    assert_eq!(h["health_status"]["eds_health_status"], "HEALTHY");

    let listeners = admin_get(&envoy, "/listeners").await.text();
    assert_eq!(listeners, format!("front::{front}\n"));
    let json: serde_json::Value =
        serde_json::from_slice(&admin_get(&envoy, "/listeners?format=json").await.body).unwrap();
    assert_eq!(json["listener_statuses"][0]["name"], "front");
    assert_eq!(
        json["listener_statuses"][0]["local_address"]["socket_address"]["port_value"],
        front.port()
    );
}

#[tokio::test]
async fn server_info_logging_and_health_endpoints() {
    let backend = Backend::start(Behaviour::Fixed(200, "ok"));
    let envoy = start(&backend);

    let info = admin_get(&envoy, "/server_info").await;
    let v: serde_json::Value = serde_json::from_slice(&info.body).expect("JSON");
    assert_eq!(v["state"], "LIVE");
    assert_eq!(v["hot_restart_version"], "disabled");
    assert_eq!(v["command_line_options"]["concurrency"], 2);
    assert!(v["uptime_current_epoch"].as_str().is_some_and(|u| u.ends_with('s')));
    assert!(v["version"].as_str().is_some_and(|s| s.starts_with("mini-envoy/")));

    let listing = admin_get(&envoy, "/logging").await;
    assert_eq!(listing.status, 200);
    assert!(listing.text().contains("  router: info\n"), "{}", listing.text());
    assert_eq!(admin_get(&envoy, "/logging?level=debug").await.status, 405);
    let set = admin_post(&envoy, "/logging?router=trace").await;
    assert_eq!(set.status, 200);
    assert!(set.text().contains("  router: trace\n") && set.text().contains("  admin: info\n"));
    let all = admin_post(&envoy, "/logging?level=debug").await;
    assert!(all.text().contains("  router: debug\n"), "{}", all.text());
    assert_eq!(admin_post(&envoy, "/logging?nope=debug").await.status, 400);
    assert_eq!(admin_post(&envoy, "/logging?level=loud").await.status, 400);

    assert_eq!(admin_get(&envoy, "/ready").await.status, 200);
    assert_eq!(admin_post(&envoy, "/healthcheck/fail").await.status, 200);
    assert_eq!(admin_get(&envoy, "/ready").await.status, 503);
    let s = stats(&envoy).await;
    assert_eq!(s.get("server.state").map(String::as_str), Some("1"));
    assert_eq!(s.get("server.live").map(String::as_str), Some("0"));
    assert_eq!(admin_post(&envoy, "/healthcheck/ok").await.status, 200);
    assert_eq!(admin_get(&envoy, "/ready").await.status, 200);

    let index = admin_get(&envoy, "/").await;
    assert!(index.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    assert!(index.text().contains("/stats/prometheus"));
}

#[tokio::test]
async fn mutating_endpoints_need_post_and_garbage_gets_4xx() {
    let backend = Backend::start(Behaviour::Fixed(200, "ok"));
    let mut envoy = start(&backend);
    for path in ["/quitquitquit", "/healthcheck/fail", "/healthcheck/ok", "/reset_counters"] {
        assert_eq!(admin_get(&envoy, path).await.status, 405, "{path}");
    }
    assert!(envoy.is_running());
    assert_eq!(admin_get(&envoy, "/stats?filter=(").await.status, 400);
    assert_eq!(admin_get(&envoy, "/stats?type=Bogus").await.status, 400);
    assert_eq!(admin_get(&envoy, "/stats?format=xml").await.status, 400);
    assert_eq!(admin_get(&envoy, "/clusters?format=xml").await.status, 400);
    assert_eq!(admin_get(&envoy, "/no/such/endpoint").await.status, 404);
    let admin = envoy.admin();
    let replies =
        tokio::task::spawn_blocking(move || exchange(admin, b"\x16\x03\x01garbage\r\n\r\n"))
            .await
            .unwrap();
    assert!(replies.first().is_some_and(|r| (400..500).contains(&r.status)), "{replies:?}");
    assert_eq!(admin_get(&envoy, "/ready").await.status, 200, "still serving");

    assert_eq!(admin_post(&envoy, "/quitquitquit").await.status, 200);
    let exited = wait_until_async(WAIT, || !envoy.is_running()).await;
    assert!(exited, "mini-envoy exits after /quitquitquit");
}

#[tokio::test]
async fn reset_counters_zeroes_counters() {
    let backend = Backend::start(Behaviour::Fixed(200, "ok"));
    let envoy = start(&backend);
    five_requests(envoy.listener("front")).await;
    let before = stats(&envoy).await;
    assert_eq!(before.get("http.front.downstream_rq_total").map(String::as_str), Some("5"));
    assert_eq!(admin_get(&envoy, "/reset_counters").await.status, 405);
    assert_eq!(stats(&envoy).await["http.front.downstream_rq_total"], "5", "GET changed nothing");
    assert_eq!(admin_post(&envoy, "/reset_counters").await.status, 200);
    let after = stats(&envoy).await;
    assert_eq!(after["http.front.downstream_rq_total"], "0");
    assert_eq!(after["cluster.svc.upstream_rq_total"], "0");
    assert_eq!(after["server.concurrency"], "2", "gauges keep their values");
    assert_eq!(Client::without_pool().get(envoy.listener("front"), "/ok").await.status, 200);
    assert_eq!(stats(&envoy).await["http.front.downstream_rq_total"], "1", "counting goes on");
}

#[tokio::test]
async fn runtime_memory_and_certs_answer_envoys_json() {
    let backend = Backend::start(Behaviour::Fixed(200, "ok"));
    let envoy = start(&backend);
    let json = |r: Response| -> serde_json::Value {
        assert_eq!(r.status, 200);
        serde_json::from_str(&r.text()).expect("JSON")
    };
    let runtime = json(admin_get(&envoy, "/runtime").await);
    assert_eq!(runtime, serde_json::json!({"layers": [], "entries": {}}));
    let memory = json(admin_get(&envoy, "/memory").await);
    let rss: u64 = memory["total_physical_bytes"].as_str().unwrap().parse().unwrap();
    assert!(rss > 1 << 20, "a running proxy has more than 1 MiB resident: {rss}");
    assert_eq!(json(admin_get(&envoy, "/certs").await), serde_json::json!({"certificates": []}));
    let index = admin_get(&envoy, "/").await.text();
    for path in ["/config_dump", "/reset_counters", "/runtime", "/memory", "/certs"] {
        assert!(index.contains(&format!("href=\"{path}\"")), "{path} in the index");
    }
}

/// A CDS file with one EDS cluster `dyn` (endpoints from `eds`).
fn cds_file(version: &str, eds: &std::path::Path, connect_timeout: &str) -> String {
    format!(
        "version_info: \"{version}\"\nresources:\n\
- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: dyn\n  type: EDS\n  connectTimeout: {connect_timeout}\n  eds_cluster_config:\n    eds_config: {{ path_config_source: {{ path: {:?} }} }}\n",
        eds.display()
    )
}

fn move_in(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the temporary file");
    std::fs::rename(&tmp, path).expect("rename it into place");
}

/// Polls `/config_dump` (with `query`) until `ready` holds on it.
async fn dump_until(
    envoy: &MiniEnvoy,
    query: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = admin_get(envoy, &format!("/config_dump{query}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let dump: serde_json::Value = serde_json::from_str(&r.text()).expect("config_dump is JSON");
        if ready(&dump) {
            return dump;
        }
        assert!(tokio::time::Instant::now() < deadline, "config_dump never got there: {dump:#}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn rfc3339(v: &serde_json::Value) -> chrono::DateTime<chrono::FixedOffset> {
    let text = v.as_str().unwrap_or_else(|| panic!("a timestamp string: {v}"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn part<'a>(dump: &'a serde_json::Value, message: &str) -> &'a serde_json::Value {
    let want = format!("type.googleapis.com/envoy.admin.v3.{message}");
    let configs = dump["configs"].as_array().expect("configs");
    configs.iter().find(|c| c["@type"] == want.as_str()).unwrap_or_else(|| panic!("{message}"))
}

fn dynamic_version(dump: &serde_json::Value) -> Option<&str> {
    let clusters = part(dump, "ClustersConfigDump");
    clusters["dynamic_active_clusters"].get(0)?["version_info"].as_str()
}

#[tokio::test]
async fn config_dump_shows_static_and_dynamic_config_in_envoys_shape() {
    let backend = Backend::start(Behaviour::Fixed(200, "ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (cds, eds) = (dir.path().join("cds.yaml"), dir.path().join("eds.yaml"));
    let a = backend.addr();
    let eds_text = format!(
        "version_info: e1\nresources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: dyn\n  endpoints:\n  - lb_endpoints:\n    - endpoint: {{ address: {{ socket_address: {{ address: {}, port_value: {} }} }} }}\n",
        a.ip(),
        a.port()
    );
    move_in(&eds, &eds_text);
    move_in(&cds, &cds_file("1", &eds, "1s"));
    let yaml =
        bootstrap(&[http_listener("front", &catch_all(ROUTES), "")], &[cluster("svc", &[a], "")])
            + &format!(
                "dynamic_resources:\n  cds_config: {{ path_config_source: {{ path: {cds:?} }} }}\n"
            );
    let envoy = MiniEnvoy::start(&yaml);
    let started = chrono::Utc::now();

    let dump = dump_until(&envoy, "", |d| dynamic_version(d) == Some("1")).await;
    let types: Vec<&str> =
        dump["configs"].as_array().unwrap().iter().filter_map(|c| c["@type"].as_str()).collect();
    let expected = ["Bootstrap", "Clusters", "Listeners", "Routes"]
        .map(|m| format!("type.googleapis.com/envoy.admin.v3.{m}ConfigDump"));
    assert_eq!(types, expected, "Envoy's parts in Envoy's order, no endpoints unasked");

    let boot = part(&dump, "BootstrapConfigDump");
    assert_eq!(boot["bootstrap"]["static_resources"]["clusters"][0]["name"], "svc");
    assert_eq!(
        boot["bootstrap"]["dynamic_resources"]["cds_config"]["path_config_source"]["path"],
        cds.display().to_string()
    );
    let boot_time = rfc3339(&boot["last_updated"]);
    assert!((boot_time.to_utc() - started).num_seconds().abs() < 60, "start-up time");

    let clusters = part(&dump, "ClustersConfigDump");
    assert_eq!(clusters["version_info"], "1");
    let svc = &clusters["static_clusters"][0];
    assert_eq!(svc["cluster"]["@type"], "type.googleapis.com/envoy.config.cluster.v3.Cluster");
    assert_eq!(svc["cluster"]["name"], "svc");
    assert!(svc.get("version_info").is_none(), "static clusters have no version");
    rfc3339(&svc["last_updated"]);
    let dynamic = &clusters["dynamic_active_clusters"][0];
    assert_eq!(dynamic["cluster"]["name"], "dyn");
    assert_eq!(dynamic["cluster"]["connect_timeout"], "1s", "as written, in proto field names");
    let first_update = rfc3339(&dynamic["last_updated"]);

    let listeners = part(&dump, "ListenersConfigDump");
    let front = &listeners["static_listeners"][0]["listener"];
    assert_eq!(front["@type"], "type.googleapis.com/envoy.config.listener.v3.Listener");
    assert_eq!(front["name"], "front");
    let routes = part(&dump, "RoutesConfigDump");
    assert_eq!(
        routes["static_route_configs"][0]["route_config"]["virtual_hosts"][0]["name"],
        "all"
    );

    // A CDS update: new version, new content, a later last_updated.
    move_in(&cds, &cds_file("2", &eds, "2s"));
    let dump = dump_until(&envoy, "", |d| dynamic_version(d) == Some("2")).await;
    let clusters = part(&dump, "ClustersConfigDump");
    assert_eq!(clusters["version_info"], "2");
    let dynamic = &clusters["dynamic_active_clusters"][0];
    assert_eq!(dynamic["cluster"]["connect_timeout"], "2s");
    assert!(rfc3339(&dynamic["last_updated"]) >= first_update);

    // ?resource= flattens one list; ?name_regex= filters it; ?mask= trims.
    let flat = dump_until(&envoy, "?resource=dynamic_active_clusters", |_| true).await;
    let flat = flat["configs"].as_array().unwrap();
    assert_eq!(flat.len(), 1);
    assert_eq!(
        flat[0]["@type"],
        "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster"
    );
    assert_eq!(
        (flat[0]["version_info"].as_str(), flat[0]["cluster"]["name"].as_str()),
        (Some("2"), Some("dyn"))
    );
    let none = dump_until(&envoy, "?resource=static_clusters&name_regex=d.*", |_| true).await;
    assert_eq!(none["configs"], serde_json::json!([]));
    let masked = dump_until(&envoy, "?resource=static_clusters&mask=cluster.name", |_| true).await;
    assert_eq!(
        masked["configs"][0]["cluster"],
        serde_json::json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "svc"})
    );

    // ?include_eds adds the endpoints in force.
    let with_eds = dump_until(&envoy, "?include_eds", |_| true).await;
    let endpoints = part(&with_eds, "EndpointsConfigDump");
    let dyn_eds = &endpoints["dynamic_endpoint_configs"][0]["endpoint_config"];
    assert_eq!(dyn_eds["cluster_name"], "dyn");
    let address =
        &dyn_eds["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
    assert_eq!(address["port_value"], a.port());
    assert_eq!(endpoints["static_endpoint_configs"][0]["endpoint_config"]["cluster_name"], "svc");

    // Bad queries get a 4xx with a message.
    for (query, status) in [
        ("?bogus=1", 400),
        ("?name_regex=(", 400),
        ("?resource=bootstrap", 400),
        ("?resource=no_such_field", 404),
        ("?mask=no_such_field", 400),
    ] {
        let r = admin_get(&envoy, &format!("/config_dump{query}")).await;
        assert_eq!(r.status, status, "{query}: {}", r.text());
        assert!(!r.text().trim().is_empty(), "{query} says why");
    }
}
