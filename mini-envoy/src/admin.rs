//! # The admin interface
//!
//! Envoy's `Server::AdminImpl`: an HTTP endpoint on the main thread, bound
//! where `admin.address` says, serving operators (Envoy's paths, so scripts
//! and habits carry over). It speaks HTTP/1.1 with the same week 3 codec as
//! the data plane:
//!
//! ```text
//!  socket ─► RequestDecoder ─► handler(path, method) ─► ResponseEncoder ─► socket
//! ```
//!
//! Mutating endpoints (`/quitquitquit`, `/healthcheck/fail`, ...) require
//! POST, as in Envoy. A malformed request gets a 4xx, never a crash.
//! Endpoints live in submodules: [`stats`] (`/stats`, `/stats/prometheus`),
//! [`clusters`] (`/clusters`, `/listeners`), [`logging`] (`/logging`);
//! `/config_dump` reads the [`crate::config_dump`] registry.

pub mod clusters;
pub mod logging;
pub mod stats;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::{TcpListener, TcpStream};
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue};
use week1_core::router::percent_decode;
use week2_threads::dispatcher::DispatcherHandle;
use week3_filters::buffer::Buffer;
use week3_filters::http1::{Event, Limits, RequestDecoder, ResponseEncoder};

use self::clusters::ClusterProvider;
use self::logging::LogControl;
use crate::server::{BoundAddresses, ListenerDrain, ServerOptions};
use crate::stats::{ServerState, ServerStats, Store};

/// What the admin endpoints report on.
pub struct AdminState {
    options: ServerOptions,
    addresses: BoundAddresses,
    started: Instant,
    /// `/healthcheck/fail` was called.
    failing: AtomicBool,
    store: Store,
    server_stats: Arc<ServerStats>,
    clusters: Option<ClusterProvider>,
    logging: Option<Arc<LogControl>>,
    /// The current listeners' drains (`/drain_listeners`).
    listener_drains: Option<ListenerDrainProvider>,
}

/// Lists the current listeners' drains (read on the main thread, where the
/// listener manager lives).
pub type ListenerDrainProvider = Arc<dyn Fn() -> Vec<ListenerDrain> + Send + Sync>;

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").field("addresses", &self.addresses).finish_non_exhaustive()
    }
}

impl AdminState {
    /// State for a server started with `options`, listening on `addresses`,
    /// recording into `store`.
    pub fn new(
        options: ServerOptions,
        addresses: BoundAddresses,
        store: Store,
        server_stats: Arc<ServerStats>,
    ) -> Self {
        let logging = options.log_control.clone();
        Self {
            options,
            addresses,
            started: Instant::now(),
            failing: AtomicBool::new(false),
            store,
            server_stats,
            clusters: None,
            logging,
            listener_drains: None,
        }
    }

    /// The listeners `/drain_listeners` drains.
    pub fn with_listener_drains(mut self, drains: ListenerDrainProvider) -> Self {
        self.listener_drains = Some(drains);
        self
    }

    /// Where `/clusters` reads the current clusters.
    pub fn with_clusters(mut self, provider: ClusterProvider) -> Self {
        self.clusters = Some(provider);
        self
    }

    /// Updates `server.uptime`, `server.state` and `server.live`.
    pub fn refresh_server_stats(&self) {
        let uptime = i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX);
        self.server_stats.uptime.set(uptime);
        let failing = self.failing.load(Ordering::Relaxed);
        self.server_stats.set_state(if failing {
            ServerState::Draining
        } else {
            ServerState::Live
        });
    }
}

/// One admin response.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `content-type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    fn text(status: u16, body: String) -> Self {
        Self { status, content_type: "text/plain; charset=UTF-8", body: Bytes::from(body) }
    }

    fn json(value: &serde_json::Value) -> Self {
        let body = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
        Self { status: 200, content_type: "application/json", body: Bytes::from(body) }
    }
}

/// The query parameters of a request target, percent-decoded.
fn query_params(target: &str) -> Vec<(String, String)> {
    let Some((_, query)) = target.split_once('?') else { return Vec::new() };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k).into_owned(), percent_decode(v).into_owned())
        })
        .collect()
}

/// Serves the admin listener until the main loop exits.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, main: DispatcherHandle) {
    loop {
        let Ok((io, _)) = listener.accept().await else { continue };
        let (state, main) = (state.clone(), main.clone());
        tokio::task::spawn_local(async move {
            if let Err(e) = serve_connection(io, &state, &main).await {
                tracing::debug!("admin connection: {e}");
            }
        });
    }
}

async fn serve_connection(
    io: TcpStream,
    state: &AdminState,
    main: &DispatcherHandle,
) -> io::Result<()> {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut input = Buffer::new();
    let mut space = BytesMut::new();
    let mut request: Option<(String, String, week3_filters::http1::RequestInfo, bool)> = None;
    loop {
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(Event::Headers(head))) => {
                    let method = head.method().to_string();
                    let path = head.headers.path().unwrap_or("/").to_string();
                    request = Some((method, path, head.info(), head.keep_alive));
                }
                Ok(Some(Event::MessageComplete)) => {
                    let Some((method, path, info, keep_alive)) = request.take() else { continue };
                    let (reply, quit) = handle(state, &method, &path);
                    let Reply { status, content_type, body } = reply;
                    write_response(&io, info, status, content_type, body, keep_alive).await?;
                    if quit {
                        main.exit();
                    }
                    if !keep_alive {
                        return Ok(());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    let body = Bytes::from(format!("{e}\n"));
                    let info = week3_filters::http1::RequestInfo::default();
                    write_response(&io, info, e.status_code(), "text/plain", body, false).await?;
                    return Ok(());
                }
            }
        }
        io.readable().await?;
        space.reserve(4096);
        match io.try_read_buf(&mut space) {
            Ok(0) => return Ok(()),
            Ok(_) => input.append_bytes(space.split().freeze()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

async fn write_response(
    io: &TcpStream,
    info: week3_filters::http1::RequestInfo,
    status: u16,
    content_type: &'static str,
    body: Bytes,
    keep_alive: bool,
) -> io::Result<()> {
    let mut headers = HeaderMap::new();
    headers
        .insert(const { HeaderName::from_static(":status") }, HeaderValue::from(u64::from(status)));
    headers.insert(
        const { HeaderName::from_static("content-type") },
        HeaderValue::from_static(content_type),
    );
    headers.insert(
        const { HeaderName::from_static("content-length") },
        HeaderValue::from(body.len() as u64),
    );
    headers.insert(
        const { HeaderName::from_static("cache-control") },
        const { HeaderValue::from_static("no-cache") },
    );
    if !keep_alive {
        headers.insert(
            const { HeaderName::from_static("connection") },
            const { HeaderValue::from_static("close") },
        );
    }
    let mut out = Buffer::new();
    let mut encoder = ResponseEncoder::new(info);
    let empty = body.is_empty();
    encoder
        .encode_headers(&headers, empty, &mut out)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    if !empty {
        encoder
            .encode_data(body, true, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    }
    while out.has_remaining() {
        io.writable().await?;
        match io.try_write(out.chunk()) {
            Ok(n) => out.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The reply to one admin request, and whether to quit after sending it.
fn handle(state: &AdminState, method: &str, target: &str) -> (Reply, bool) {
    let path = target.split('?').next().unwrap_or("/");
    let params = query_params(target);
    let mutating = matches!(
        path,
        "/quitquitquit"
            | "/healthcheck/fail"
            | "/healthcheck/ok"
            | "/drain_listeners"
            | "/reset_counters"
    );
    if mutating && method != "POST" {
        return (Reply::text(405, "This endpoint requires POST.\n".into()), false);
    }
    let reply = match path {
        "/" => Reply {
            status: 200,
            content_type: "text/html; charset=UTF-8",
            body: Bytes::from(index_html()),
        },
        "/ready" => {
            if state.failing.load(Ordering::Relaxed) {
                Reply::text(503, "DRAINING\n".into())
            } else {
                Reply::text(200, "LIVE\n".into())
            }
        }
        "/server_info" => Reply::json(&server_info(state)),
        "/stats" => stats::stats(state, &params),
        "/stats/prometheus" => stats::prometheus(state, &params),
        "/clusters" => clusters::clusters(state, &params),
        "/listeners" => clusters::listeners(state, &params),
        "/logging" => match &state.logging {
            Some(control) => control.handle(method, &params),
            None => Reply::text(404, "log levels are not adjustable in this process\n".into()),
        },
        "/healthcheck/fail" => {
            state.failing.store(true, Ordering::Relaxed);
            state.refresh_server_stats();
            Reply::text(200, "OK\n".into())
        }
        "/healthcheck/ok" => {
            state.failing.store(false, Ordering::Relaxed);
            state.refresh_server_stats();
            Reply::text(200, "OK\n".into())
        }
        "/config_dump" => config_dump(&params),
        "/reset_counters" => {
            state.store.reset_counters();
            Reply::text(200, "OK\n".into())
        }
        "/runtime" => Reply::json(&runtime(state)),
        "/memory" => Reply::json(&memory()),
        "/certs" => Reply::json(&serde_json::json!({ "certificates": [] })),
        "/quitquitquit" => return (Reply::text(200, "OK\n".into()), true),
        "/drain_listeners" => {
            let (status, body) = drain_listeners(state, target);
            Reply::text(status, body)
        }
        _ => Reply::text(404, format!("invalid path: {path}\n{}", endpoint_list())),
    };
    (reply, false)
}

// ANCHOR: config_dump
/// `/config_dump`: the main thread's [`ConfigTracker`](crate::config_dump::ConfigTracker).
fn config_dump(params: &[(String, String)]) -> Reply {
    let Some(tracker) = crate::config_dump::main_tracker() else {
        return Reply::text(404, "no configuration is tracked in this process\n".into());
    };
    let query =
        crate::config_dump::DumpQuery::parse(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match query.map_err(|e| (400, e)).and_then(|q| tracker.dump(&q)) {
        Ok(dump) => Reply::json(&dump),
        Err((status, message)) => Reply::text(status, message + "\n"),
    }
}
// ANCHOR_END: config_dump

/// Envoy's `/runtime`: the bootstrap's runtime layers (mini-envoy accepts
/// only empty ones) and no entries.
fn runtime(state: &AdminState) -> serde_json::Value {
    let layers = state
        .options
        .bootstrap_source
        .as_ref()
        .and_then(|b| b.get("layered_runtime")?.get("layers")?.as_array().cloned())
        .unwrap_or_default();
    let names: Vec<serde_json::Value> =
        layers.iter().filter_map(|l| l.get("name").cloned()).collect();
    serde_json::json!({ "layers": names, "entries": {} })
}

/// Envoy's `/memory` (`envoy.admin.v3.Memory`, 64-bit values as strings).
/// Without an instrumented allocator the allocator fields are 0, as in
/// Envoy built without tcmalloc; `total_physical_bytes` is the resident set
/// size (`VmRSS` in `/proc/self/status`; 0 where there is none).
fn memory() -> serde_json::Value {
    let rss = resident_bytes().unwrap_or(0);
    serde_json::json!({
        "allocated": "0",
        "heap_size": "0",
        "pageheap_unmapped": "0",
        "pageheap_free": "0",
        "total_thread_cache": "0",
        "total_physical_bytes": rss.to_string(),
    })
}

/// The resident set size: `VmRSS` of `/proc/self/status` (in kB there, so
/// no page size is needed).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

/// Envoy's `/server_info` (`envoy.admin.v3.ServerInfo`).
fn server_info(state: &AdminState) -> serde_json::Value {
    let o = &state.options;
    let uptime = format!("{}s", state.started.elapsed().as_secs());
    serde_json::json!({
        "version": concat!("mini-envoy/", env!("CARGO_PKG_VERSION")),
        "state": if state.failing.load(Ordering::Relaxed) { "DRAINING" } else { "LIVE" },
        "hot_restart_version": "disabled",
        "uptime_current_epoch": uptime,
        "uptime_all_epochs": uptime,
        "command_line_options": {
            "concurrency": o.concurrency,
            "drain_time": format!("{}s", o.drain_time.as_secs()),
            "parent_shutdown_time": format!("{}s", o.parent_shutdown_time.as_secs()),
            "service_node": o.service_node.clone().unwrap_or_default(),
            "service_cluster": o.service_cluster.clone().unwrap_or_default(),
            "restart_epoch": 0,
            "mode": "Serve",
            "disable_hot_restart": true,
            "reject_unknown_fields": true,
            "reject_unknown_fields_dynamic":
                o.unknown_dynamic_fields == crate::server::UnknownDynamicFields::Reject,
            "ignore_unknown_fields":
                o.unknown_dynamic_fields == crate::server::UnknownDynamicFields::Ignore,
            "argv": o.command_line,
        },
        "node": {
            "id": o.service_node.clone().unwrap_or_default(),
            "cluster": o.service_cluster.clone().unwrap_or_default(),
            "user_agent_name": "mini-envoy",
        },
    })
}

const ENDPOINTS: &[(&str, &str)] = &[
    ("/", "this page"),
    ("/ready", "print server state, return 200 if LIVE, otherwise 503"),
    ("/server_info", "print server version/status information"),
    ("/stats", "print server stats (?filter=regex, ?usedonly, ?type=, ?format=json|prometheus)"),
    ("/stats/prometheus", "print server stats in prometheus format"),
    ("/clusters", "upstream cluster status (?format=json)"),
    ("/config_dump", "dump current Envoy configs (?resource=, ?mask=, ?name_regex=, ?include_eds)"),
    ("/reset_counters", "reset all counters to zero (POST)"),
    ("/runtime", "print runtime values"),
    ("/memory", "print current allocation/heap usage"),
    ("/certs", "print certs on machine"),
    ("/listeners", "print listener info (?format=json)"),
    ("/logging", "query/change logging levels (POST ?level= or ?<logger>=)"),
    ("/healthcheck/fail", "cause the server to fail health checks (POST)"),
    ("/healthcheck/ok", "cause the server to pass health checks (POST)"),
    ("/quitquitquit", "exit the server (POST)"),
    ("/drain_listeners", "drain listeners (POST; ?graceful, ?inboundonly)"),
];

// ANCHOR: drain_listeners
/// `POST /drain_listeners[?graceful][&inboundonly]`, as Envoy: the listeners
/// (only those not `OUTBOUND` with `inboundonly`) drain their connections
/// (`Connection: close`, idle ones close after `drain_timeout`). They stop accepting at once, or,
/// with `graceful`, after the drain time. The server keeps running.
fn drain_listeners(state: &AdminState, target: &str) -> (u16, String) {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let (mut graceful, mut inbound_only) = (false, false);
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=').map_or(param, |(k, _)| k) {
            "graceful" => graceful = true,
            "inboundonly" => inbound_only = true,
            other => {
                return (400, format!("unknown parameter {other:?} (graceful, inboundonly)\n"));
            }
        }
    }
    let now = std::time::Instant::now();
    let drains = state.listener_drains.as_ref().map(|p| p()).unwrap_or_default();
    for d in drains.iter().filter(|d| d.inbound || !inbound_only) {
        if !graceful {
            d.drain.start_drain_sequence(now);
            continue;
        }
        d.drain.start_draining_connections(now);
        let drain = d.drain.clone();
        let period = drain.config().drain_time;
        // Admin requests are served on the main thread's LocalSet.
        tokio::task::spawn_local(async move {
            tokio::time::sleep(period).await;
            drain.stop_accepting();
        });
    }
    (200, "OK\n".to_string())
}
// ANCHOR_END: drain_listeners

fn endpoint_list() -> String {
    ENDPOINTS.iter().map(|(p, d)| format!("  {p}: {d}\n")).collect()
}

fn index_html() -> String {
    let rows: String = ENDPOINTS
        .iter()
        .map(|(p, d)| format!("<tr><td><a href=\"{p}\">{p}</a></td><td>{d}</td></tr>\n"))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html><head><title>mini-envoy admin</title></head><body>\n\
         <h1>mini-envoy admin</h1>\n<table>\n{rows}</table>\n</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AdminState {
        let store = Store::default();
        let server_stats = Arc::new(ServerStats::new(&store));
        AdminState::new(ServerOptions::default(), BoundAddresses::default(), store, server_stats)
    }

    fn get(s: &AdminState, method: &str, target: &str) -> (u16, &'static str, Bytes, bool) {
        let (r, quit) = handle(s, method, target);
        (r.status, r.content_type, r.body, quit)
    }

    #[test]
    fn mutating_endpoints_require_post() {
        let s = state();
        assert_eq!(get(&s, "GET", "/quitquitquit").0, 405);
        assert_eq!(get(&s, "GET", "/healthcheck/fail").0, 405);
        assert!(get(&s, "POST", "/quitquitquit").3);
    }

    #[test]
    fn ready_follows_healthcheck_fail_and_ok() {
        let s = state();
        assert_eq!(get(&s, "GET", "/ready").0, 200);
        assert_eq!(get(&s, "POST", "/healthcheck/fail").0, 200);
        assert_eq!(get(&s, "GET", "/ready").0, 503);
        assert_eq!(get(&s, "POST", "/healthcheck/ok").0, 200);
        assert_eq!(get(&s, "GET", "/ready?x=1").0, 200);
    }

    #[test]
    fn unknown_paths_are_404_with_the_list() {
        let (status, _, body, _) = get(&state(), "GET", "/nope");
        assert_eq!(status, 404);
        assert!(std::str::from_utf8(&body).unwrap().contains("/server_info"));
    }

    #[test]
    fn reset_counters_is_post_only_and_zeroes_counters() {
        let s = state();
        let hits = s.store.root().counter("hits");
        hits.add(3);
        assert_eq!(get(&s, "GET", "/reset_counters").0, 405);
        assert_eq!(hits.value(), 3);
        assert_eq!(get(&s, "POST", "/reset_counters").0, 200);
        assert_eq!(hits.value(), 0);
    }

    #[test]
    fn runtime_memory_and_certs_are_envoys_json() {
        let layers = serde_json::json!({"layers": [{"name": "static", "static_layer": {}}]});
        let options = ServerOptions {
            bootstrap_source: Some(serde_json::json!({ "layered_runtime": layers })),
            ..ServerOptions::default()
        };
        let store = Store::default();
        let stats = Arc::new(ServerStats::new(&store));
        let s = AdminState::new(options, BoundAddresses::default(), store, stats);
        let json = |target| {
            let (status, ct, body, _) = get(&s, "GET", target);
            assert_eq!((status, ct), (200, "application/json"), "{target}");
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        };
        assert_eq!(json("/runtime"), serde_json::json!({"layers": ["static"], "entries": {}}));
        let memory = json("/memory");
        let rss: u64 = memory["total_physical_bytes"].as_str().unwrap().parse().unwrap();
        assert!(rss > 0, "this test process has a resident set");
        assert_eq!(memory["allocated"], "0");
        assert_eq!(json("/certs"), serde_json::json!({"certificates": []}));
    }

    #[test]
    fn config_dump_reads_this_threads_tracker() {
        let s = state();
        assert_eq!(get(&s, "GET", "/config_dump").0, 404);
        let tracker = crate::config_dump::ConfigTracker::new();
        let _owner = tracker.add("routes", || crate::config_dump::routes_dump(&[], &[])).unwrap();
        crate::config_dump::set_main_tracker(Some(tracker));
        let (status, ct, body, _) = get(&s, "GET", "/config_dump");
        assert_eq!((status, ct), (200, "application/json"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["configs"][0]["@type"], "type.googleapis.com/envoy.admin.v3.RoutesConfigDump");
        let (status, _, body, _) = get(&s, "GET", "/config_dump?name_regex=(");
        assert_eq!(status, 400);
        assert!(std::str::from_utf8(&body).unwrap().contains("name_regex"));
        assert_eq!(get(&s, "GET", "/config_dump?bogus=1").0, 400);
        crate::config_dump::set_main_tracker(None);
    }

    #[test]
    fn the_index_lists_every_endpoint() {
        let (_, ct, body, _) = get(&state(), "GET", "/");
        assert!(ct.starts_with("text/html"));
        let html = std::str::from_utf8(&body).unwrap();
        for path in ["/config_dump", "/reset_counters", "/runtime", "/memory", "/certs"] {
            assert!(html.contains(&format!("href=\"{path}\"")), "{path}");
        }
    }

    #[test]
    fn server_info_is_json() {
        let (_, ct, body, _) = get(&state(), "GET", "/server_info");
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["state"], "LIVE");
    }
}
