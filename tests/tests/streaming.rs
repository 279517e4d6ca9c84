//! Streaming through the real `mini-envoy` binary (issue #6 §7).
//!
//! Every test starts its own mini-envoy with the harness's [`MiniEnvoy`]
//! (`--concurrency 2`, port-0 listeners) in front of independent peers on
//! loopback: hyper for HTTP, tokio-tungstenite for WebSocket, plain tokio
//! sockets for TCP. What is checked:
//!
//! - 100 MiB up and 100 MiB down with bounded proxy memory: bodies are generated
//!   and verified byte for byte as streams of 64 KiB chunks, and the proxy's peak
//!   RSS (`VmHWM`) stays far below the body size;
//! - backpressure: a client that stops reading stalls the backend, then drains
//!   the body in small reads, yielding between them; a backend that stops
//!   reading stalls the uploading client;
//! - WebSocket upgrade through the HCM (`upgrade_configs`), and 403 without it;
//! - `envoy.filters.network.tcp_proxy`: echo, half-close, 1 MB each direction;
//! - a chunked upload of unknown length, with trailers, and a chunked download.
//!
//! Nothing sleeps to synchronize: waits are bounded polls with timeouts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mini_envoy_tests::MiniEnvoy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self, Message};

const MIB: u64 = 1024 * 1024;
/// The bodies of the bounded-memory test.
const BIG_BODY: u64 = 100 * MIB;
/// Chunks the peers produce bodies in.
const CHUNK: usize = 64 * 1024;
/// The ceiling for mini-envoy's peak resident memory while it streams.
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// An upper bound for any single wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Deterministic content: byte `i` of every body is `PATTERN[i % PERIOD]`.
// The period is prime and larger than a chunk, so chunk boundaries never
// line up with it and a dropped, repeated or reordered chunk shows.

const PERIOD: usize = 65_537;

/// Two periods back to back, so any `PERIOD`-long window is one slice.
static PATTERN: LazyLock<Bytes> = LazyLock::new(|| {
    let mut state: u32 = 0x9e37_79b9;
    let period: Vec<u8> = (0..PERIOD)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    Bytes::from([period.as_slice(), period.as_slice()].concat())
});

/// `len` (at most `PERIOD`) bytes of content starting at `offset`.
fn content(offset: u64, len: usize) -> Bytes {
    assert!(len <= PERIOD);
    let start = (offset % PERIOD as u64) as usize;
    PATTERN.slice(start..start + len)
}

/// Checks a received stream against the content, chunk by chunk.
#[derive(Debug, Default)]
struct Verifier {
    received: u64,
    first_mismatch: Option<u64>,
}

impl Verifier {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let start = (self.received % PERIOD as u64) as usize;
            let n = data.len().min(PERIOD - start);
            let expected = &PATTERN[start..start + n];
            if self.first_mismatch.is_none() && data[..n] != *expected {
                let at = data.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(0);
                self.first_mismatch = Some(self.received + at as u64);
            }
            self.received += n as u64;
            data = &data[n..];
        }
    }

    /// Panics unless exactly `len` bytes of the content arrived.
    fn assert_complete(&self, len: u64, what: &str) {
        assert_eq!(self.first_mismatch, None, "{what}: content differs at this offset");
        assert_eq!(self.received, len, "{what}: byte count");
    }
}

/// A body of `len` content bytes in `CHUNK`s, optionally with trailers.
struct PatternBody {
    len: u64,
    sent: u64,
    /// Whether the length is announced (`Content-Length`) or not (chunked).
    known_length: bool,
    trailers: Option<hyper::HeaderMap>,
    /// Counts the bytes handed to hyper (the producer's progress).
    produced: Arc<AtomicU64>,
}

impl PatternBody {
    fn new(len: u64) -> Self {
        Self {
            len,
            sent: 0,
            known_length: true,
            trailers: None,
            produced: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.sent < this.len {
            let n = (this.len - this.sent).min(CHUNK as u64) as usize;
            let data = content(this.sent, n);
            this.sent += n as u64;
            this.produced.fetch_add(n as u64, Ordering::Relaxed);
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.len && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.known_length {
            SizeHint::with_exact(self.len - self.sent)
        } else {
            SizeHint::default()
        }
    }
}

// ---------------------------------------------------------------------------
// The proxy: the harness's MiniEnvoy, and its memory.

/// mini-envoy's process id. The harness runs it as
/// `mini-envoy -c <its tempdir>/envoy.yaml`, a command line no other process has.
fn pid_of(envoy: &MiniEnvoy) -> u32 {
    let config = envoy.path("envoy.yaml");
    let config = config.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == config))
        })
        .expect("the mini-envoy process")
}

/// A process's peak resident set size so far (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
}

/// A bootstrap: one HTTP listener `front` routing everything to `backend`,
/// plus `extra_listeners` (YAML list items) and one cluster per `(name, addr)`.
fn http_bootstrap(
    hcm_extra: &str,
    extra_listeners: &str,
    clusters: &[(&str, SocketAddr)],
) -> String {
    let mut yaml = format!(
        r#"static_resources:
  listeners:
  - name: front
    address:
      socket_address: {{ address: 127.0.0.1, port_value: 0 }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
{hcm_extra}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: backend, timeout: 0s }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
{extra_listeners}
  clusters:
"#
    );
    for (name, addr) in clusters {
        yaml.push_str(&format!(
            r#"  - name: {name}
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {ip}, port_value: {port} }}
"#,
            ip = addr.ip(),
            port = addr.port()
        ));
    }
    yaml
}

// ---------------------------------------------------------------------------
// The HTTP backend (hyper).

/// What the backend saw of one upload.
#[derive(Debug)]
struct UploadReport {
    verifier: Verifier,
    content_length: Option<String>,
    transfer_encoding: Option<String>,
    trailers: Option<hyper::HeaderMap>,
    /// The request carried mini-envoy's `x-request-id` (it went through the proxy).
    proxied: bool,
}

/// A hyper HTTP/1.1 backend:
/// - `GET /download/<n>`: `n` content bytes, streamed in chunks, with a
///   `Content-Length`, or chunked for `?chunked`;
/// - `POST /upload`: reads the body as a stream, verifies it, reports it;
///   with `?paused`, only after [`resume`](Self::resume).
struct HttpBackend {
    addr: SocketAddr,
    uploads: tokio::sync::mpsc::UnboundedReceiver<UploadReport>,
    /// Download body bytes handed to hyper so far, over all requests.
    produced: Arc<AtomicU64>,
    resume: Arc<tokio::sync::Notify>,
}

impl HttpBackend {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, uploads) = tokio::sync::mpsc::unbounded_channel();
        let produced = Arc::new(AtomicU64::new(0));
        let counter = produced.clone();
        let resume = Arc::new(tokio::sync::Notify::new());
        let resumed = resume.clone();
        tokio::spawn(async move {
            loop {
                let Ok((io, _)) = listener.accept().await else { return };
                // A small send buffer keeps the backend's own kernel
                // buffering out of the backpressure measurement.
                let _ = socket2::SockRef::from(&io).set_send_buffer_size(64 * 1024);
                let (tx, counter, resumed) = (tx.clone(), counter.clone(), resumed.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, tx.clone(), counter.clone(), resumed.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(io), service)
                        .await;
                });
            }
        });
        Self { addr, uploads, produced, resume }
    }

    /// Lets a `?paused` upload read its body.
    fn resume(&self) {
        self.resume.notify_one();
    }

    async fn next_upload(&mut self) -> UploadReport {
        timeout(WAIT, self.uploads.recv()).await.expect("upload report in time").expect("backend")
    }
}

async fn handle(
    req: Request<Incoming>,
    uploads: tokio::sync::mpsc::UnboundedSender<UploadReport>,
    produced: Arc<AtomicU64>,
    resume: Arc<tokio::sync::Notify>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, hyper::Error> {
    let path = req.uri().path().to_string();
    if let Some(n) = path.strip_prefix("/download/").and_then(|n| n.parse::<u64>().ok()) {
        let mut body = PatternBody::new(n);
        body.known_length = req.uri().query() != Some("chunked");
        body.produced = produced;
        return Ok(Response::new(BoxBody::new(body)));
    }
    if path == "/upload" {
        let header = |name: &str| {
            req.headers().get(name).map(|v| v.to_str().unwrap_or("<binary>").to_string())
        };
        let content_length = header("content-length");
        let transfer_encoding = header("transfer-encoding");
        let proxied = req.headers().contains_key("x-request-id");
        if req.uri().query() == Some("paused") {
            resume.notified().await;
        }
        let mut body = req.into_body();
        let mut verifier = Verifier::default();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            match frame.into_data() {
                Ok(data) => verifier.feed(&data),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        let _ = uploads.send(UploadReport {
            verifier,
            content_length,
            transfer_encoding,
            trailers,
            proxied,
        });
        let ok = http_body_util::Full::new(Bytes::from_static(b"stored\n"));
        return Ok(Response::new(BoxBody::new(ok.map_err(|e| match e {}))));
    }
    let mut not_found =
        Response::new(BoxBody::new(http_body_util::Empty::<Bytes>::new().map_err(|e| match e {})));
    *not_found.status_mut() = StatusCode::NOT_FOUND;
    Ok(not_found)
}

/// A hyper HTTP/1.1 client connection to `addr`.
async fn http_client(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<PatternBody> {
    let io = timeout(WAIT, TcpStream::connect(addr)).await.expect("connect in time").unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.unwrap();
    tokio::spawn(conn);
    sender
}

/// Sends `body` to `/upload` through `addr`; returns the response status.
async fn upload(addr: SocketAddr, body: PatternBody, extra: &[(&str, &str)]) -> StatusCode {
    let mut client = http_client(addr).await;
    let mut req = Request::post("/upload").header("host", "backend.test");
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    let resp = client.send_request(req.body(body).unwrap()).await.expect("upload response");
    let status = resp.status();
    resp.into_body().collect().await.expect("upload response body");
    status
}

/// Downloads `n` bytes from `path` through `addr` as a stream, verifies
/// them, and returns the response headers.
async fn download(addr: SocketAddr, path: &str, n: u64) -> hyper::HeaderMap {
    let mut client = http_client(addr).await;
    let req = Request::get(path).header("host", "backend.test").body(PatternBody::new(0)).unwrap();
    let resp = client.send_request(req).await.expect("download response");
    assert_eq!(resp.status(), StatusCode::OK);
    // hyper's server sends no `server` header: mini-envoy's says it went through.
    assert_eq!(resp.headers()["server"], "envoy");
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut verifier = Verifier::default();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("download body").into_data() {
            verifier.feed(&data);
        }
    }
    verifier.assert_complete(n, "download");
    headers
}

// ---------------------------------------------------------------------------
// 1. Large bodies with bounded memory, and backpressure.

/// A process's resident set size now (`VmRSS`), in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Opens `n` connections to `front` first, then sends one GET on each in
/// turn (the load benchmark's idle-connection pattern) and keeps them open.
async fn idle_after_one_request(front: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(TcpStream::connect(front).await.expect("connect"));
    }
    for io in &mut conns {
        io.write_all(b"GET /download/64 HTTP/1.1\r\nhost: backend.test\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // The head and the 64-byte body (bounded by the read timeout).
        while !got.windows(4).any(|w| w == b"\r\n\r\n")
            || got.len() < got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4 + 64
        {
            let n = timeout(Duration::from_secs(10), io.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "mini-envoy closed a keep-alive connection");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    }
    conns
}

/// Issue #6's idle-connection target (≤ 4 KiB each): an idle keep-alive
/// connection holds no read or write buffer, including a new one that was
/// polled before its first bytes came (the regression this guards: every new
/// connection kept a 16 KiB read buffer, ~6.6 KiB of RSS each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_cost_under_4_kib_each() {
    let backend = HttpBackend::start().await;
    let proxy = MiniEnvoy::start(&http_bootstrap("", "", &[("backend", backend.addr)]));
    let front = proxy.listener("front");
    let pid = pid_of(&proxy);
    // Warm up (worker pools, upstream connection, allocator arenas), then measure.
    drop(idle_after_one_request(front, 100).await);
    let before = rss_kib(pid);
    const N: usize = 1000;
    let held = idle_after_one_request(front, N).await;
    let per_conn = (rss_kib(pid).saturating_sub(before) * 1024) / N as u64;
    eprintln!("{N} idle keep-alive connections: {per_conn} B of RSS each");
    assert!(per_conn <= 4096, "{per_conn} B of RSS per idle connection (target 4096)");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_up_and_down_stream_with_bounded_proxy_memory() {
    let mut backend = HttpBackend::start().await;
    let proxy = MiniEnvoy::start(&http_bootstrap("", "", &[("backend", backend.addr)]));
    let front = proxy.listener("front");
    let pid = pid_of(&proxy);
    let started = std::time::Instant::now();

    let up = async {
        let status = upload(front, PatternBody::new(BIG_BODY), &[]).await;
        assert_eq!(status, StatusCode::OK);
    };
    let down = async {
        let headers = download(front, &format!("/download/{BIG_BODY}"), BIG_BODY).await;
        assert_eq!(headers["content-length"], BIG_BODY.to_string().as_str());
    };
    tokio::join!(up, down);
    let report = backend.next_upload().await;
    assert!(report.proxied, "the upload did not go through mini-envoy");
    report.verifier.assert_complete(BIG_BODY, "upload");
    assert_eq!(report.content_length.as_deref(), Some(BIG_BODY.to_string().as_str()));

    let peak = peak_rss_kib(pid);
    eprintln!(
        "100 MiB up + 100 MiB down in {:.1?}; mini-envoy peak RSS {} KiB",
        started.elapsed(),
        peak
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "mini-envoy's peak RSS {peak} KiB is not well below the 100 MiB bodies"
    );
}

/// Polls a producer's byte counter until it stops moving (bounded by
/// `WAIT`) and returns where it stopped. What is in flight then sits in
/// kernel socket buffers (up to the tcp_rmem/tcp_wmem maxima) and the
/// proxy's per-connection buffers (1 MiB each), not in the producer.
async fn wait_for_stall(produced: &AtomicU64, who: &str) -> u64 {
    const STILL_POLLS: u32 = 15;
    let mut last = produced.load(Ordering::Relaxed);
    let mut unchanged = 0;
    let mut polls = tokio::time::interval(Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + WAIT;
    while unchanged < STILL_POLLS && tokio::time::Instant::now() < deadline {
        polls.tick().await;
        let now = produced.load(Ordering::Relaxed);
        unchanged = if now == last { unchanged + 1 } else { 0 };
        last = now;
    }
    assert_eq!(unchanged, STILL_POLLS, "{who} never stalled (produced {last} bytes)");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_stalls_the_backend() {
    const BODY: u64 = 64 * MIB;
    let backend = HttpBackend::start().await;
    let proxy = MiniEnvoy::start(&http_bootstrap("", "", &[("backend", backend.addr)]));
    let pid = pid_of(&proxy);

    // A raw client with a small receive buffer, so the kernel holds little.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut io = timeout(WAIT, socket.connect(proxy.listener("front"))).await.unwrap().unwrap();
    io.write_all(format!("GET /download/{BODY} HTTP/1.1\r\nhost: backend.test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut head = Vec::new();
    let body_start = loop {
        let n = timeout(WAIT, io.read(&mut buf)).await.expect("response head").unwrap();
        assert!(n > 0, "EOF before the response head");
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head_text = String::from_utf8_lossy(&head[..body_start]).to_ascii_lowercase();
    assert!(head_text.starts_with("http/1.1 200"), "{head_text}");
    assert!(head_text.contains(&format!("content-length: {BODY}\r\n")), "{head_text}");

    // Stop reading. The backend must stall far from done.
    let last = wait_for_stall(&backend.produced, "the backend").await;
    assert!(last < BODY / 2, "the backend produced {last} of {BODY} bytes for a paused client");
    let stalled_rss = peak_rss_kib(pid);

    // Now read it all, slowly: small reads, yielding between them.
    let mut verifier = Verifier::default();
    verifier.feed(&head[body_start..]);
    while verifier.received < BODY {
        let want = buf.len().min((BODY - verifier.received) as usize);
        let n =
            timeout(WAIT, io.read(&mut buf[..want])).await.expect("body bytes in time").unwrap();
        assert!(n > 0, "EOF after {} body bytes", verifier.received);
        verifier.feed(&buf[..n]);
        tokio::task::yield_now().await;
    }
    verifier.assert_complete(BODY, "slow download");
    let peak = peak_rss_kib(pid);
    eprintln!(
        "paused client: backend stalled after {last} bytes; mini-envoy peak RSS {stalled_rss} KiB \
         stalled, {peak} KiB after draining"
    );
    assert!(peak < RSS_LIMIT_KIB, "mini-envoy's peak RSS {peak} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_stops_reading_stalls_the_uploader() {
    const BODY: u64 = 64 * MIB;
    let mut backend = HttpBackend::start().await;
    let proxy = MiniEnvoy::start(&http_bootstrap("", "", &[("backend", backend.addr)]));
    let pid = pid_of(&proxy);
    let front = proxy.listener("front");

    let body = PatternBody::new(BODY);
    let produced = body.produced.clone();
    let upload = tokio::spawn(async move {
        let mut client = http_client(front).await;
        let req = Request::post("/upload?paused").header("host", "backend.test").body(body);
        let resp = client.send_request(req.unwrap()).await.expect("upload response");
        resp.status()
    });
    // The backend has the request head but reads none of the body.
    let last = wait_for_stall(&produced, "the uploader").await;
    assert!(last < BODY / 2, "the client sent {last} of {BODY} bytes to a paused backend");
    let stalled_rss = peak_rss_kib(pid);

    backend.resume();
    let status = timeout(WAIT, upload).await.expect("upload in time").unwrap();
    assert_eq!(status, StatusCode::OK);
    let report = backend.next_upload().await;
    report.verifier.assert_complete(BODY, "paused upload");
    let peak = peak_rss_kib(pid);
    eprintln!(
        "paused backend: uploader stalled after {last} bytes; mini-envoy peak RSS {stalled_rss} \
         KiB stalled, {peak} KiB after draining"
    );
    assert!(peak < RSS_LIMIT_KIB, "mini-envoy's peak RSS {peak} KiB");
}

// ---------------------------------------------------------------------------
// 4. Chunked upload of unknown length, with trailers.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_of_unknown_length_keeps_body_and_trailers() {
    let mut backend = HttpBackend::start().await;
    let proxy = MiniEnvoy::start(&http_bootstrap("", "", &[("backend", backend.addr)]));
    let len = 3 * MIB + 12_345;
    let mut body = PatternBody::new(len);
    body.known_length = false;
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("x-upload-checksum", "abc123".parse().unwrap());
    body.trailers = Some(trailers);

    // hyper sends only the trailers the `trailer` header announces.
    let status = upload(proxy.listener("front"), body, &[("trailer", "x-upload-checksum")]).await;
    assert_eq!(status, StatusCode::OK);
    let report = backend.next_upload().await;
    assert!(report.proxied, "the upload did not go through mini-envoy");
    report.verifier.assert_complete(len, "chunked upload");
    assert_eq!(report.content_length, None);
    assert_eq!(report.transfer_encoding.as_deref(), Some("chunked"));
    let trailers = report.trailers.expect("the request trailers reach the backend");
    assert_eq!(trailers.get("x-upload-checksum").map(|v| v.as_bytes()), Some(&b"abc123"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_download_of_unknown_length_stays_chunked() {
    let backend = HttpBackend::start().await;
    let proxy = MiniEnvoy::start(&http_bootstrap("", "", &[("backend", backend.addr)]));
    let len = 3 * MIB + 54_321;
    let headers = download(proxy.listener("front"), &format!("/download/{len}?chunked"), len).await;
    assert_eq!(headers.get("content-length"), None);
    assert_eq!(headers["transfer-encoding"], "chunked");
}

// ---------------------------------------------------------------------------
// 2. WebSocket.

/// A tokio-tungstenite echo backend.
async fn websocket_echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((io, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(io).await else { return };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
                // A close frame was answered by tungstenite; dropping the
                // stream closes the TCP connection, server first as RFC 6455 says.
            });
        }
    });
    addr
}

const WEBSOCKET_UPGRADES: &str = "          upgrade_configs:\n          - upgrade_type: websocket";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_echoes_text_and_binary_and_closes_cleanly() {
    let backend = websocket_echo_backend().await;
    let yaml = http_bootstrap(WEBSOCKET_UPGRADES, "", &[("backend", backend)]);
    let proxy = MiniEnvoy::start(&yaml);
    let front = proxy.listener("front");

    let io = TcpStream::connect(front).await.unwrap();
    let (mut ws, response) =
        timeout(WAIT, tokio_tungstenite::client_async(format!("ws://{front}/chat"), io))
            .await
            .expect("handshake in time")
            .expect("upgrade through mini-envoy");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);

    // A megabyte crosses many reads and writes of the tunnel, both ways.
    let megabyte: Vec<u8> = (0..16u64).flat_map(|i| content(i * CHUNK as u64, CHUNK)).collect();
    let messages = [
        Message::text("hello through mini-envoy"),
        Message::binary(content(7, 60_000)),
        Message::text("ünïcödé ✓"),
        Message::binary(Vec::new()),
        Message::binary(megabyte),
    ];
    for msg in &messages {
        ws.send(msg.clone()).await.unwrap();
        let echoed = timeout(WAIT, ws.next()).await.expect("echo in time").expect("open").unwrap();
        assert_eq!(&echoed, msg);
    }

    ws.close(None).await.unwrap();
    // The backend answers the close frame, then the stream ends.
    loop {
        match timeout(WAIT, ws.next()).await.expect("close in time") {
            Some(Ok(Message::Close(_))) => {}
            Some(Ok(other)) => panic!("unexpected message after close: {other:?}"),
            Some(Err(tungstenite::Error::ConnectionClosed)) | None => break,
            Some(Err(e)) => panic!("closing: {e}"),
        }
    }
    // The backend closed its TCP connection: mini-envoy closes ours.
    let mut io = ws.into_inner();
    let mut byte = [0u8; 1];
    let n = timeout(WAIT, io.read(&mut byte)).await.expect("EOF in time").unwrap_or(0);
    assert_eq!(n, 0, "the tunnel is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_refused_with_403_when_the_hcm_does_not_allow_it() {
    // A backend nobody should reach: its accept queue is checked, not served.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    backend.set_nonblocking(true).unwrap();
    let yaml = http_bootstrap("", "", &[("backend", backend.local_addr().unwrap())]);
    let proxy = MiniEnvoy::start(&yaml);
    let front = proxy.listener("front");

    let io = TcpStream::connect(front).await.unwrap();
    let result =
        timeout(WAIT, tokio_tungstenite::client_async(format!("ws://{front}/chat"), io)).await;
    match result.expect("answer in time") {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN)
        }
        Err(e) => panic!("expected a 403, got {e}"),
        Ok((_, response)) => panic!("the upgrade went through: {response:?}"),
    }
    // A loopback connect completes its handshake inside connect(), so one
    // begun before the 403 was written would already be in the queue.
    match backend.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, from)) => panic!("mini-envoy connected to the backend from {from}"),
        Err(e) => panic!("accept: {e}"),
    }
}

// ---------------------------------------------------------------------------
// 3. tcp_proxy.

/// A plain tokio echo server: echoes until EOF, then writes
/// `[eof after N bytes]` and closes.
async fn tcp_echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut io, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let (mut rd, mut wr) = io.split();
                let Ok(n) = tokio::io::copy(&mut rd, &mut wr).await else { return };
                let _ = wr.write_all(format!("[eof after {n} bytes]").as_bytes()).await;
                let _ = wr.shutdown().await;
            });
        }
    });
    addr
}

fn tcp_proxy_bootstrap(echo: SocketAddr) -> String {
    let listener = r#"  - name: tcp
    address:
      socket_address: { address: 127.0.0.1, port_value: 0 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: echo"#;
    // The HTTP listener's cluster is unused here; it points at the echo server.
    let admin = "admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 0 }\n";
    format!("{admin}{}", http_bootstrap("", listener, &[("backend", echo), ("echo", echo)]))
}

/// Reads until EOF (bounded by `WAIT`).
async fn read_to_eof(io: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    timeout(WAIT, io.read_to_end(&mut out)).await.expect("EOF in time").expect("read");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_proxy_echoes_both_ways_and_half_closes() {
    let echo = tcp_echo_backend().await;
    let proxy = MiniEnvoy::start(&tcp_proxy_bootstrap(echo));
    let mut io = TcpStream::connect(proxy.listener("tcp")).await.unwrap();

    // Request/response turns on one connection.
    for msg in [&b"ping"[..], b"hello, tcp_proxy", &[0u8, 255, 10, 13]] {
        io.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        timeout(WAIT, io.read_exact(&mut back)).await.expect("echo in time").unwrap();
        assert_eq!(back, msg);
    }

    // Half-close: our FIN reaches the server through the proxy, and what the
    // server writes after it still reaches us, then its FIN.
    io.write_all(b"last words").await.unwrap();
    io.shutdown().await.unwrap();
    let rest = read_to_eof(&mut io).await;
    let total = 4 + 16 + 4 + 10;
    assert_eq!(String::from_utf8_lossy(&rest), format!("last words[eof after {total} bytes]"));

    // Envoy's tcp.<stat_prefix>.* stats and the cluster's upstream connection.
    let stat = |name: &'static str| mini_envoy_tests::stat(&proxy, name);
    assert_eq!(stat("tcp.tcp.downstream_cx_total").await, Some(1));
    assert_eq!(stat("tcp.tcp.downstream_cx_rx_bytes_total").await, Some(total));
    assert_eq!(stat("tcp.tcp.downstream_cx_tx_bytes_total").await, Some(24 + rest.len() as u64));
    assert_eq!(stat("cluster.echo.upstream_cx_total").await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_proxy_carries_a_megabyte_each_direction() {
    const LEN: u64 = 1_000_000;
    let echo = tcp_echo_backend().await;
    let proxy = MiniEnvoy::start(&tcp_proxy_bootstrap(echo));
    let io = TcpStream::connect(proxy.listener("tcp")).await.unwrap();
    let (mut rd, mut wr) = io.into_split();

    let writer = async move {
        let mut sent = 0u64;
        while sent < LEN {
            let n = (LEN - sent).min(CHUNK as u64) as usize;
            wr.write_all(&content(sent, n)).await.unwrap();
            sent += n as u64;
        }
        wr.shutdown().await.unwrap();
    };
    let reader = async move {
        let mut verifier = Verifier::default();
        let mut buf = vec![0u8; CHUNK];
        while verifier.received < LEN {
            let want = buf.len().min((LEN - verifier.received) as usize);
            let n = timeout(WAIT, rd.read(&mut buf[..want])).await.expect("bytes in time").unwrap();
            assert!(n > 0, "EOF after {} bytes", verifier.received);
            verifier.feed(&buf[..n]);
        }
        verifier.assert_complete(LEN, "tcp echo");
        read_to_eof(&mut rd).await
    };
    let ((), suffix) = tokio::join!(writer, reader);
    assert_eq!(String::from_utf8_lossy(&suffix), format!("[eof after {LEN} bytes]"));
}
