//! End-to-end tests of the admin interface and stats (issue #7 §2, §3): the
//! real `mini-envoy` binary, hyper clients and backends, loopback only.
//!
//! `/stats/prometheus` is read with `prometheus-parse`, a Prometheus
//! text-format parser independent of mini-envoy (a crate: promtool would need
//! a download the test command cannot make), plus a strict line check of the
//! exposition grammar it is lenient about (`# TYPE` before every family,
//! valid metric and label names).

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
    for path in ["/quitquitquit", "/healthcheck/fail", "/healthcheck/ok"] {
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
