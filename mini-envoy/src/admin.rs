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

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::{TcpListener, TcpStream};
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue};
use week2_threads::dispatcher::DispatcherHandle;
use week3_filters::buffer::Buffer;
use week3_filters::http1::{Event, Limits, RequestDecoder, ResponseEncoder};

use crate::server::{BoundAddresses, ServerOptions};

/// What the admin endpoints report on.
#[derive(Debug)]
pub struct AdminState {
    options: ServerOptions,
    addresses: BoundAddresses,
    started: Instant,
    /// `/healthcheck/fail` was called.
    failing: AtomicBool,
}

impl AdminState {
    /// State for a server started with `options`, listening on `addresses`.
    pub fn new(options: ServerOptions, addresses: BoundAddresses) -> Self {
        Self { options, addresses, started: Instant::now(), failing: AtomicBool::new(false) }
    }
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
                    let (status, content_type, body, quit) = handle(state, &method, &path);
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

/// `(status, content type, body, quit)` for one admin request.
fn handle(state: &AdminState, method: &str, target: &str) -> (u16, &'static str, Bytes, bool) {
    let path = target.split('?').next().unwrap_or("/");
    let text =
        |status, body: String| (status, "text/plain; charset=UTF-8", Bytes::from(body), false);
    let mutating = matches!(path, "/quitquitquit" | "/healthcheck/fail" | "/healthcheck/ok");
    if mutating && method != "POST" {
        return text(405, "This endpoint requires POST.\n".into());
    }
    match path {
        "/" => (200, "text/html; charset=UTF-8", Bytes::from(index_html()), false),
        "/ready" => {
            if state.failing.load(Ordering::Relaxed) {
                text(503, "DRAINING\n".into())
            } else {
                text(200, "LIVE\n".into())
            }
        }
        "/server_info" => {
            let info = serde_json::json!({
                "version": concat!("mini-envoy/", env!("CARGO_PKG_VERSION")),
                "state": if state.failing.load(Ordering::Relaxed) { "DRAINING" } else { "LIVE" },
                "uptime_current_epoch": format!("{}s", state.started.elapsed().as_secs()),
                "uptime_all_epochs": format!("{}s", state.started.elapsed().as_secs()),
                "command_line_options": {
                    "concurrency": state.options.concurrency,
                    "drain_time": format!("{}s", state.options.drain_time.as_secs()),
                    "parent_shutdown_time": format!("{}s", state.options.parent_shutdown_time.as_secs()),
                    "service_node": state.options.service_node.clone().unwrap_or_default(),
                    "service_cluster": state.options.service_cluster.clone().unwrap_or_default(),
                    "restart_epoch": 0,
                },
                "node": {
                    "id": state.options.service_node.clone().unwrap_or_default(),
                    "cluster": state.options.service_cluster.clone().unwrap_or_default(),
                },
            });
            let body = serde_json::to_string_pretty(&info).unwrap_or_default() + "\n";
            (200, "application/json", Bytes::from(body), false)
        }
        "/listeners" => {
            let mut out = String::new();
            for (name, address) in &state.addresses.listeners {
                out.push_str(&format!("{name}::{address}\n"));
            }
            text(200, out)
        }
        "/healthcheck/fail" => {
            state.failing.store(true, Ordering::Relaxed);
            text(200, "OK\n".into())
        }
        "/healthcheck/ok" => {
            state.failing.store(false, Ordering::Relaxed);
            text(200, "OK\n".into())
        }
        "/quitquitquit" => (200, "text/plain; charset=UTF-8", Bytes::from("OK\n"), true),
        _ => text(404, format!("invalid path: {path}\n{}", endpoint_list())),
    }
}

const ENDPOINTS: &[(&str, &str)] = &[
    ("/", "this page"),
    ("/ready", "print server state, return 200 if LIVE, otherwise 503"),
    ("/server_info", "print server version/status information"),
    ("/listeners", "print listener info"),
    ("/healthcheck/fail", "cause the server to fail health checks (POST)"),
    ("/healthcheck/ok", "cause the server to pass health checks (POST)"),
    ("/quitquitquit", "exit the server (POST)"),
];

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
        AdminState::new(ServerOptions::default(), BoundAddresses::default())
    }

    #[test]
    fn mutating_endpoints_require_post() {
        let s = state();
        assert_eq!(handle(&s, "GET", "/quitquitquit").0, 405);
        assert_eq!(handle(&s, "GET", "/healthcheck/fail").0, 405);
        assert!(handle(&s, "POST", "/quitquitquit").3);
    }

    #[test]
    fn ready_follows_healthcheck_fail_and_ok() {
        let s = state();
        assert_eq!(handle(&s, "GET", "/ready").0, 200);
        assert_eq!(handle(&s, "POST", "/healthcheck/fail").0, 200);
        assert_eq!(handle(&s, "GET", "/ready").0, 503);
        assert_eq!(handle(&s, "POST", "/healthcheck/ok").0, 200);
        assert_eq!(handle(&s, "GET", "/ready?x=1").0, 200);
    }

    #[test]
    fn unknown_paths_are_404_with_the_list() {
        let (status, _, body, _) = handle(&state(), "GET", "/nope");
        assert_eq!(status, 404);
        assert!(std::str::from_utf8(&body).unwrap().contains("/server_info"));
    }

    #[test]
    fn server_info_is_json() {
        let (_, ct, body, _) = handle(&state(), "GET", "/server_info");
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["state"], "LIVE");
    }
}
