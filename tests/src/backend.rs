//! Upstream backends on hyper's HTTP/1.1 server.
//!
//! Each [`Backend`] listens on `127.0.0.1:0` and runs a current-thread tokio
//! runtime on its own thread, so it serves both sync and async tests. Every
//! request that reaches it is recorded ([`RecordedRequest`]) before it is
//! answered, so a test can assert what mini-envoy forwarded, or that nothing
//! was forwarded at all. Every response carries `x-backend: <name>`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response as HyperResponse};
use hyper_util::rt::TokioIo;
use tokio::sync::{oneshot, watch};

/// A request as the backend saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target as received (path and query).
    pub path: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The whole request body.
    pub body: Bytes,
    /// Which accepted connection (0-based) carried it.
    pub connection: usize,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A response a [`Behaviour::Custom`] function returns.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body chunks. With `chunked`, each is sent as its own frame with no
    /// `content-length` (hyper then uses chunked encoding on HTTP/1.1).
    pub chunks: Vec<Bytes>,
    /// Send without `content-length`.
    pub chunked: bool,
}

impl Reply {
    /// `status` with `body` and a `content-length`.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply { status, headers: Vec::new(), chunks: vec![body.into()], chunked: false }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

type CustomFn = dyn Fn(&RecordedRequest, usize) -> Reply + Send + Sync;

/// How a backend answers.
#[derive(Clone)]
pub enum Behaviour {
    /// Always `status` with `body`.
    Fixed(u16, &'static str),
    /// 200 with the request body; `x-echo-method`, `x-echo-path` and
    /// `x-echo-body-length` describe the request.
    Echo,
    /// The n-th request gets the n-th status (the last one repeats); the body
    /// names the status.
    Statuses(Vec<u16>),
    /// Never answers until [`Backend::release`]; then 200 `released`.
    Hold,
    /// Answers 200 `delayed` after the duration (tokio timer in the backend).
    Delay(Duration),
    /// 200 with these chunks, chunked-encoded.
    Chunked(Vec<&'static str>),
    /// `f(request, index)` decides; `index` counts requests from 0.
    Custom(Arc<CustomFn>),
}

impl Behaviour {
    /// A [`Behaviour::Custom`] from a closure.
    pub fn custom(f: impl Fn(&RecordedRequest, usize) -> Reply + Send + Sync + 'static) -> Self {
        Behaviour::Custom(Arc::new(f))
    }
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Behaviour::Fixed(s, b) => write!(f, "Fixed({s}, {b:?})"),
            Behaviour::Echo => f.write_str("Echo"),
            Behaviour::Statuses(s) => write!(f, "Statuses({s:?})"),
            Behaviour::Hold => f.write_str("Hold"),
            Behaviour::Delay(d) => write!(f, "Delay({d:?})"),
            Behaviour::Chunked(c) => write!(f, "Chunked({c:?})"),
            Behaviour::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

struct Shared {
    name: String,
    behaviour: Behaviour,
    requests: Mutex<Vec<RecordedRequest>>,
    count: AtomicUsize,
    connections: AtomicUsize,
    release: watch::Sender<bool>,
}

/// A running backend. Dropping it stops it.
pub struct Backend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    /// A backend named `backend`.
    pub fn start(behaviour: Behaviour) -> Backend {
        Backend::named("backend", behaviour)
    }

    /// A backend that answers with `x-backend: name`.
    pub fn named(name: &str, behaviour: Behaviour) -> Backend {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a backend on loopback");
        Backend::on(listener, name, behaviour)
    }

    /// A backend named `name` on `addr` (another loopback address, such as
    /// `127.0.0.2:port` for DNS tests whose hosts share a port), or the bind error.
    pub fn named_at(
        name: &str,
        addr: SocketAddr,
        behaviour: Behaviour,
    ) -> std::io::Result<Backend> {
        Ok(Backend::on(std::net::TcpListener::bind(addr)?, name, behaviour))
    }

    fn on(listener: std::net::TcpListener, name: &str, behaviour: Behaviour) -> Backend {
        listener.set_nonblocking(true).expect("non-blocking backend listener");
        let addr = listener.local_addr().expect("backend address");
        let shared = Arc::new(Shared {
            name: name.to_string(),
            behaviour,
            requests: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            release: watch::channel(false).0,
        });
        let (stop, stopped) = oneshot::channel();
        let task_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("backend-{name}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("backend runtime");
                runtime.block_on(serve(listener, task_shared, stopped));
            })
            .expect("spawn the backend thread");
        Backend { addr, shared, stop: Some(stop), thread: Some(thread) }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its name (the `x-backend` value).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Every complete request seen so far (head and whole body).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many requests arrived, complete or not (counted when their head
    /// arrived).
    pub fn request_count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// How many TCP connections were accepted.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until at least `n` complete requests were recorded;
    /// returns whether they were.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        crate::wait_until(timeout, || {
            self.shared.requests.lock().unwrap_or_else(|e| e.into_inner()).len() >= n
        })
    }

    /// [`wait_for_requests`](Self::wait_for_requests) for async tests.
    pub async fn wait_for_requests_async(&self, n: usize, timeout: Duration) -> bool {
        crate::wait_until_async(timeout, || {
            self.shared.requests.lock().unwrap_or_else(|e| e.into_inner()).len() >= n
        })
        .await
    }

    /// Lets held requests ([`Behaviour::Hold`]) answer.
    pub fn release(&self) {
        self.shared.release.send_replace(true);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.release();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .field("behaviour", &self.shared.behaviour)
            .finish()
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio backend listener");
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let connection = shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                tasks.spawn(async move {
                    let service = service_fn(move |req| handle(shared.clone(), connection, req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    tasks.abort_all();
}

async fn handle(
    shared: Arc<Shared>,
    connection: usize,
    req: Request<Incoming>,
) -> Result<HyperResponse<ChunkBody>, Infallible> {
    let index = shared.count.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    // A request whose body failed (reset, bad framing) is counted but not recorded.
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let mut r = HyperResponse::new(ChunkBody::empty());
            *r.status_mut() = hyper::StatusCode::BAD_REQUEST;
            eprintln!("backend {}: request body failed: {e}", shared.name);
            return Ok(r);
        }
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.to_string(),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body,
        connection,
    };
    shared.requests.lock().unwrap_or_else(|e| e.into_inner()).push(recorded.clone());
    let reply = match &shared.behaviour {
        Behaviour::Fixed(status, body) => Reply::new(*status, *body),
        Behaviour::Echo => Reply::new(200, recorded.body.clone())
            .header("x-echo-method", &recorded.method)
            .header("x-echo-path", &recorded.path)
            .header("x-echo-body-length", &recorded.body.len().to_string()),
        Behaviour::Statuses(statuses) => {
            let status = statuses.get(index).or(statuses.last()).copied().unwrap_or(200);
            Reply::new(status, format!("status {status}"))
        }
        Behaviour::Hold => {
            let mut released = shared.release.subscribe();
            let _ = released.wait_for(|r| *r).await;
            Reply::new(200, "released")
        }
        Behaviour::Delay(d) => {
            tokio::time::sleep(*d).await;
            Reply::new(200, "delayed")
        }
        Behaviour::Chunked(chunks) => Reply {
            status: 200,
            headers: Vec::new(),
            chunks: chunks.iter().map(|c| Bytes::from_static(c.as_bytes())).collect(),
            chunked: true,
        },
        Behaviour::Custom(f) => f(&recorded, index),
    };
    let mut response =
        HyperResponse::builder().status(reply.status).header("x-backend", &shared.name);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let body = ChunkBody { chunks: reply.chunks.into_iter().collect(), chunked: reply.chunked };
    Ok(response.body(body).unwrap_or_else(|e| {
        let mut r = HyperResponse::new(ChunkBody::empty());
        *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        eprintln!("backend {}: invalid reply: {e}", shared.name);
        r
    }))
}

/// A body sent as a list of frames; with an exact size unless `chunked`.
pub struct ChunkBody {
    chunks: VecDeque<Bytes>,
    chunked: bool,
}

impl ChunkBody {
    fn empty() -> Self {
        ChunkBody { chunks: VecDeque::new(), chunked: false }
    }
}

impl Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.chunked {
            SizeHint::default()
        } else {
            SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
        }
    }
}
