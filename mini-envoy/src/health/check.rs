//! # One health check on the wire
//!
//! Envoy's `HttpHealthCheckerImpl` and `TcpHealthCheckerImpl` sessions, the
//! I/O half: open (or reuse) a connection to the host, send the check, read
//! the answer, all bounded by the check's `timeout`, and return a
//! [`CheckOutcome`] for the week 1 state machine
//! ([`week1_core::cluster::health_checker`]). The HTTP request is encoded and
//! the response decoded with the week 3 HTTP/1.1 codec.
//!
//! ```text
//!  Checker::run(host) ─► connect (or the kept connection)
//!    HTTP: RequestEncoder(GET path, host, request_headers_to_add) ─► ResponseDecoder
//!          ─► status ∈ expected_statuses? x-envoy-immediate-health-check-fail? x-envoy-degraded?
//!    TCP:  send bytes ─► read until every `receive` block matched in order
//!  ─► CheckOutcome (timeout ─► Failure(Timeout), I/O error ─► Failure(Network))
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use week1_core::cluster::health_checker::{CheckOutcome, FailureKind, http_outcome};
use week1_core::config::health_check::{HealthCheck, HttpHealthCheck};
use week1_core::headers::HeaderMap;
use week1_core::router::{FormatContext, HeaderMutations};
use week3_filters::buffer::Buffer;
use week3_filters::http1::{Event, Limits, RequestEncoder, ResponseDecoder};

/// What a check sends and expects (from a validated `HealthCheck`).
#[derive(Debug)]
pub enum Checker {
    /// `http_health_check`.
    Http(Box<HttpChecker>),
    /// `tcp_health_check`.
    Tcp(TcpChecker),
}

/// An HTTP/1.1 check.
#[derive(Debug)]
pub struct HttpChecker {
    method: String,
    path: String,
    authority: String,
    mutations: HeaderMutations,
    config: HttpHealthCheck,
    reuse_connection: bool,
}

/// A TCP check: connect, then optionally send bytes and expect blocks back.
#[derive(Debug)]
pub struct TcpChecker {
    send: Option<Vec<u8>>,
    receive: Vec<Vec<u8>>,
}

/// Largest response a check reads before giving up on it (Envoy reads the
/// head and drains the body; a body this large is a misbehaving host).
const MAX_CHECK_RESPONSE: usize = 1 << 20;

impl Checker {
    /// The checker of `hc` for cluster `cluster` (the default `host` header).
    pub fn from_config(hc: &HealthCheck, cluster: &str) -> Result<Self, String> {
        if let Some(http) = &hc.http_health_check {
            let mutations = HeaderMutations::compile(
                &http.request_headers_to_add,
                &http.request_headers_to_remove,
            )?;
            let authority =
                if http.host.is_empty() { cluster.to_string() } else { http.host.clone() };
            return Ok(Self::Http(Box::new(HttpChecker {
                method: http.method.clone().unwrap_or_else(|| "GET".into()),
                path: http.path.clone(),
                authority,
                mutations,
                config: http.clone(),
                reuse_connection: hc.reuse_connection.unwrap_or(true),
            })));
        }
        if let Some(tcp) = &hc.tcp_health_check {
            let send = tcp.send.as_ref().and_then(|p| p.bytes());
            let receive = tcp.receive.iter().filter_map(|p| p.bytes()).collect();
            return Ok(Self::Tcp(TcpChecker { send, receive }));
        }
        Err("only http_health_check and tcp_health_check are supported".into())
    }

    /// Runs one check against `address` within `timeout`. `kept` is the
    /// connection an earlier HTTP check left open (`reuse_connection`).
    pub async fn run(
        &self,
        address: SocketAddr,
        timeout: Duration,
        kept: &mut Option<TcpStream>,
    ) -> CheckOutcome {
        let check = async {
            match self {
                Self::Http(http) => http.run(address, kept).await,
                Self::Tcp(tcp) => tcp.run(address).await,
            }
        };
        match tokio::time::timeout(timeout, check).await {
            Ok(outcome) => outcome,
            Err(_) => {
                *kept = None;
                CheckOutcome::Failure(FailureKind::Timeout)
            }
        }
    }
}

const NETWORK: CheckOutcome = CheckOutcome::Failure(FailureKind::Network);

impl HttpChecker {
    /// The request head a check sends.
    fn request(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let pseudo = [
            (":method", self.method.as_str()),
            (":path", self.path.as_str()),
            (":authority", self.authority.as_str()),
            ("user-agent", "Envoy/HC"),
        ];
        for (name, value) in pseudo {
            // Validated at load time; an invalid value leaves the header out.
            let _ = headers.try_append(name, value);
        }
        if !self.reuse_connection {
            let _ = headers.try_append("connection", "close");
        }
        self.mutations.apply(&mut headers, &FormatContext::default());
        headers
    }

    async fn run(&self, address: SocketAddr, kept: &mut Option<TcpStream>) -> CheckOutcome {
        let mut io = match kept.take().filter(crate::upstream::pool::is_alive) {
            Some(io) => io,
            None => match TcpStream::connect(address).await {
                Ok(io) => io,
                Err(_) => return NETWORK,
            },
        };
        let _ = io.set_nodelay(true);
        let mut out = Buffer::new();
        let mut encoder = RequestEncoder::new();
        let Ok(info) = encoder.encode_headers(&self.request(), true, &mut out) else {
            return CheckOutcome::Failure(FailureKind::Active);
        };
        if io.write_all(&out.to_vec()).await.is_err() {
            return NETWORK;
        }
        let mut decoder = ResponseDecoder::new(Limits::default());
        decoder.expect_response(info);
        let mut input = Buffer::new();
        let mut read = vec![0u8; 8192];
        let mut verdict = None;
        let mut keep_alive = false;
        let mut total = 0usize;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(Event::Headers(head))) if !head.is_informational() => {
                    let immediate = head.headers.contains("x-envoy-immediate-health-check-fail");
                    let degraded = head.headers.contains("x-envoy-degraded");
                    keep_alive = head.keep_alive;
                    verdict = Some(http_outcome(
                        head.status,
                        |s| self.config.is_expected(s),
                        immediate,
                        degraded,
                    ));
                }
                Ok(Some(Event::MessageComplete)) if verdict.is_some() => break,
                Ok(Some(_)) => {}
                Ok(None) => {
                    let n = match io.read(&mut read).await {
                        Ok(n) => n,
                        Err(_) => return NETWORK,
                    };
                    total += n;
                    if n == 0 {
                        decoder.on_eof();
                    } else if total > MAX_CHECK_RESPONSE {
                        return verdict.unwrap_or(NETWORK);
                    } else {
                        input.append(&read[..n]);
                    }
                    if n == 0 && verdict.is_some() && decoder.is_idle() {
                        break;
                    }
                }
                Err(_) => return verdict.unwrap_or(NETWORK),
            }
        }
        if self.reuse_connection && keep_alive {
            *kept = Some(io);
        }
        verdict.unwrap_or(NETWORK)
    }
}

/// Whether `blocks` all appear in `data`, in order (Envoy's `TcpHealthCheckMatcher`).
pub fn blocks_match(blocks: &[Vec<u8>], data: &[u8]) -> bool {
    let mut rest = data;
    for block in blocks {
        if block.is_empty() {
            continue;
        }
        match rest.windows(block.len()).position(|w| w == block.as_slice()) {
            Some(i) => rest = &rest[i + block.len()..],
            None => return false,
        }
    }
    true
}

impl TcpChecker {
    async fn run(&self, address: SocketAddr) -> CheckOutcome {
        let Ok(mut io) = TcpStream::connect(address).await else { return NETWORK };
        if let Some(send) = &self.send
            && io.write_all(send).await.is_err()
        {
            return NETWORK;
        }
        if self.receive.is_empty() {
            return CheckOutcome::Success { degraded: false };
        }
        let limit: usize = self.receive.iter().map(Vec::len).sum::<usize>() + MAX_CHECK_RESPONSE;
        let mut data = Vec::new();
        let mut read = vec![0u8; 4096];
        loop {
            // Envoy cannot tell wrong data from not enough data: it waits
            // (until the timeout) for more.
            match io.read(&mut read).await {
                Ok(0) | Err(_) => return NETWORK,
                Ok(n) => data.extend_from_slice(&read[..n]),
            }
            if blocks_match(&self.receive, &data) {
                return CheckOutcome::Success { degraded: false };
            }
            if data.len() > limit {
                return CheckOutcome::Failure(FailureKind::Active);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn hc(json: serde_json::Value) -> HealthCheck {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn tcp_blocks_match_in_order() {
        let b = |s: &str| s.as_bytes().to_vec();
        assert!(blocks_match(&[b("PO"), b("NG")], b"xxPONGxx"));
        assert!(!blocks_match(&[b("NG"), b("PO")], b"PONG"));
        assert!(blocks_match(&[], b""));
    }

    /// A one-shot HTTP server answering `response` to the first request and
    /// returning what it received.
    async fn serve_once(response: &'static str) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8(got).unwrap()
        });
        (addr, task)
    }

    #[tokio::test]
    async fn http_check_sends_envoy_request_and_reads_status() {
        let c = Checker::from_config(
            &hc(serde_json::json!({
                "timeout": "1s", "interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1,
                "http_health_check": {
                    "path": "/healthz",
                    "request_headers_to_add": [{"header": {"key": "x-hc", "value": "1"}}],
                    "expected_statuses": [{"start": 200, "end": 300}]
                }
            })),
            "backend",
        )
        .unwrap();
        let (addr, server) = serve_once("HTTP/1.1 204 No Content\r\n\r\n").await;
        let mut kept = None;
        let outcome = c.run(addr, Duration::from_secs(2), &mut kept).await;
        assert_eq!(outcome, CheckOutcome::Success { degraded: false });
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /healthz HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("host: backend\r\n"), "{request}");
        assert!(request.contains("user-agent: Envoy/HC\r\n"), "{request}");
        assert!(request.contains("x-hc: 1\r\n"), "{request}");
        assert!(kept.is_some(), "keep-alive response: connection kept for reuse");

        let (addr, _) = serve_once("HTTP/1.1 503 Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        let outcome = c.run(addr, Duration::from_secs(2), &mut None).await;
        assert_eq!(outcome, CheckOutcome::Failure(FailureKind::Active));

        let (addr, _) = serve_once(
            "HTTP/1.1 200 OK\r\nx-envoy-immediate-health-check-fail: true\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        let outcome = c.run(addr, Duration::from_secs(2), &mut None).await;
        assert_eq!(outcome, CheckOutcome::Failure(FailureKind::ImmediateFail));

        let (addr, _) =
            serve_once("HTTP/1.1 200 OK\r\nx-envoy-degraded: 1\r\ncontent-length: 2\r\n\r\nok")
                .await;
        let outcome = c.run(addr, Duration::from_secs(2), &mut None).await;
        assert_eq!(outcome, CheckOutcome::Success { degraded: true });
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_a_timeout_and_refusal_a_network_failure() {
        let c = Checker::from_config(
            &hc(serde_json::json!({
                "timeout": "1s", "interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1,
                "tcp_health_check": {"send": {"text": "50494e47"}, "receive": [{"text": "504f4e47"}]}
            })),
            "c",
        )
        .unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            // Accept and say nothing.
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(s);
        });
        let outcome = c.run(addr, Duration::from_millis(100), &mut None).await;
        assert_eq!(outcome, CheckOutcome::Failure(FailureKind::Timeout));
        server.abort();
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = closed.local_addr().unwrap();
        drop(closed);
        let outcome = c.run(gone, Duration::from_secs(1), &mut None).await;
        assert_eq!(outcome, NETWORK);
    }

    #[tokio::test]
    async fn tcp_check_send_receive() {
        let c = Checker::from_config(
            &hc(serde_json::json!({
                "timeout": "1s", "interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1,
                "tcp_health_check": {"send": {"text": "50494e47"}, "receive": [{"text": "504f4e47"}]}
            })),
            "c",
        )
        .unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"PING");
            s.write_all(b"PO").await.unwrap();
            s.write_all(b"NG").await.unwrap();
        });
        let outcome = c.run(addr, Duration::from_secs(2), &mut None).await;
        assert_eq!(outcome, CheckOutcome::Success { degraded: false });
    }
}
