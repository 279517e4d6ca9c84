//! # The router's upstream half
//!
//! Envoy's `Router::Filter` and `UpstreamRequest`, the I/O half of week 3's
//! sans-IO router filter. When a request leaves the HTTP filter chain
//! (`StreamEvent::UpstreamHeaders`), the stream's [`UpstreamRequest`]:
//!
//! 1. turns the cached route back into week 1's forwarding decision
//!    (`Router::forward`), applies its header rewrites, takes its timeout,
//!    retry policy and hash policy;
//! 2. takes the cluster's `max_requests` circuit breaker, picks a host with the
//!    worker's load balancer (avoiding hosts already tried when the retry
//!    policy says so) and gets a connection from the worker's pool;
//! 3. encodes the request (week 3 codec), streams the body, and feeds the
//!    decoded response back into the FilterManager;
//! 4. on a retriable failure (a 5xx, a reset, a connect failure, a per-try
//!    timeout) waits the jittered back-off and starts another attempt,
//!    replaying the request body it kept (up to the buffer limit);
//! 5. answers what cannot be retried with Envoy's local replies and response
//!    flags: 503 `UH`, `UF`, `UO`, `UC`, 504 `UT`, 502 `UPE`, plus `URX`
//!    when retries ran out.
//!
//! Timers (route timeout, per-try timeout, back-off) are deadlines the
//! connection task waits on; nothing here sleeps.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;
use week1_core::cluster::outlier::UpstreamResult;
use week1_core::cluster::{ActiveRequest, Host, ResourceGuard, RoutingPriority};
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue};
use week1_core::router::{Forward, ForwardRef, ResetReason, RetryPolicy, RouteContext};
use week3_filters::buffer::Buffer;
use week3_filters::http::{FilterManager, ResponseFlag};
use week3_filters::http1::{BodyFraming, Event, RequestEncoder};

use crate::cluster_manager::ClusterEntry;
use crate::snapshot::HttpChain;
use crate::stats::UpstreamRequestStats;
use crate::upstream::pool::{PoolFailure, UpstreamConnection, WorkerPools};
use crate::upstream::{LbContext, WorkerUpstreams};

/// Envoy's default route timeout when `timeout` is not set.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

type Acquire = Pin<Box<dyn Future<Output = Result<Box<UpstreamConnection>, PoolFailure>>>>;

/// What woke an upstream request.
pub enum UpstreamEvent {
    /// The pool answered.
    Acquired(Result<Box<UpstreamConnection>, PoolFailure>),
    /// The upstream socket has bytes (or EOF).
    Readable,
    /// The upstream socket can take more.
    Writable,
    /// An I/O error.
    Failed(io::Error),
}

enum State {
    /// Nothing sent yet (or the request was answered locally).
    Idle,
    /// Waiting for a connection.
    Acquiring(Acquire),
    /// An attempt in flight.
    Active(Attempt),
    /// Waiting for the back-off before the next attempt.
    Backoff(Instant),
    /// The exchange is over.
    Done,
}

/// One try on one connection (Envoy's `UpstreamRequest`).
struct Attempt {
    conn: Box<UpstreamConnection>,
    encoder: RequestEncoder,
    write_buf: Buffer,
    read_space: BytesMut,
    started: Instant,
    response_headers: bool,
    response_keep_alive: bool,
    response_ended: bool,
    held_data: Option<Bytes>,
    _active: ActiveRequest,
    _stats: Option<UpstreamRequestStats>,
}

/// The upstream side of one stream.
pub struct UpstreamRequest {
    chain: Arc<HttpChain>,
    upstreams: Rc<WorkerUpstreams>,
    upgrade: bool,
    state: State,
    forward: Option<ForwardRef>,
    /// The route table `forward` indexes into (the HCM's, or the RDS
    /// version that routed this stream).
    router: Option<Arc<week1_core::router::Router>>,
    cluster: Option<Arc<ClusterEntry>>,
    /// Request body not yet written to the current attempt.
    pending: Buffer,
    /// The whole body so far, while a retry could still replay it.
    replay: Option<Buffer>,
    request_end: bool,
    trailers: Option<HeaderMap>,
    retries_left: u32,
    /// The route has a retry policy this request qualifies for, and its body
    /// can still be replayed (Envoy creates no retry state otherwise).
    retry_enabled: bool,
    /// The route's priority: which circuit breakers this stream counts against.
    priority: RoutingPriority,
    /// The `max_retries` (or retry budget) slot of the retry in progress, held
    /// from its scheduling until its outcome is known (Envoy's `retries().inc()`).
    retry_guard: Option<ResourceGuard>,
    attempts: u32,
    previous_hosts: Vec<SocketAddr>,
    /// The current attempt's host, for outlier detection reports.
    attempt_host: Option<Arc<Host>>,
    hash: Option<u64>,
    timeout: Option<Duration>,
    per_try_timeout: Option<Duration>,
    global_deadline: Option<Instant>,
    per_try_deadline: Option<Instant>,
    read_disabled: bool,
    /// Response headers went into the filter chain: no more retries.
    response_started: bool,
    reset_downstream: bool,
    buffer_limit: usize,
    _requests: Option<ResourceGuard>,
}

/// Envoy's body for a local reply after an upstream reset.
fn reset_body(reason: &str) -> String {
    format!("upstream connect error or disconnect/reset before headers. reset reason: {reason}")
}

impl UpstreamRequest {
    /// An idle upstream request for a stream of `chain`.
    pub fn new(chain: Arc<HttpChain>, upstreams: Rc<WorkerUpstreams>, upgrade: bool) -> Self {
        Self {
            chain,
            upstreams,
            upgrade,
            state: State::Idle,
            forward: None,
            router: None,
            cluster: None,
            pending: Buffer::new(),
            replay: None,
            request_end: false,
            trailers: None,
            retries_left: 0,
            retry_enabled: false,
            priority: RoutingPriority::Default,
            retry_guard: None,
            attempts: 0,
            previous_hosts: Vec::new(),
            attempt_host: None,
            hash: None,
            timeout: None,
            per_try_timeout: None,
            global_deadline: None,
            per_try_deadline: None,
            read_disabled: false,
            response_started: false,
            reset_downstream: false,
            buffer_limit: week3_filters::http::DEFAULT_BUFFER_LIMIT,
            _requests: None,
        }
    }

    fn route(&self) -> Option<Forward<'_>> {
        self.router.as_ref()?.forward(self.forward.as_ref()?)
    }

    fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.route().and_then(|f| f.retry_policy())
    }

    /// Whether the downstream must be reset (the response had started when
    /// the upstream failed).
    pub fn must_reset_downstream(&self) -> bool {
        self.reset_downstream
    }

    /// Whether this is an upgraded (tunnelled) exchange.
    pub fn is_tunnel(&self) -> bool {
        self.upgrade
    }

    /// Request bytes buffered for the upstream (backpressure on the downstream).
    pub fn pending_request_bytes(&self) -> usize {
        let writing = match &self.state {
            State::Active(a) => a.write_buf.len(),
            _ => 0,
        };
        self.pending.len() + writing
    }

    /// Stops or resumes reading the upstream (response buffer watermark).
    pub fn set_read_disabled(&mut self, disabled: bool) {
        self.read_disabled = disabled;
    }

    /// The request left the filter chain: route it and start the first attempt.
    pub fn start(
        &mut self,
        fm: &mut FilterManager,
        end_stream: bool,
        random: u64,
        remote: SocketAddr,
    ) {
        // ANCHOR: route_lookup
        let route_info = fm.route();
        let table = route_info.as_ref().and_then(|r| r.router().cloned());
        let Some(forward) = route_info.and_then(|r| r.forward_ref().cloned()) else {
            fm.stream_info_mut().set_response_flag(ResponseFlag::NoRouteFound);
            fm.send_local_reply(404, "", |_| {}, "route_not_found");
            return;
        };
        let Some(cluster) = self.chain.clusters.get(&forward.cluster) else {
            fm.stream_info_mut().set_response_flag(ResponseFlag::NoClusterFound);
            fm.send_local_reply(503, "", |_| {}, "cluster_not_found");
            return;
        };
        self.buffer_limit = cluster.info.per_connection_buffer_limit_bytes as usize;
        let Some(router) = table.or_else(|| self.chain.router.clone()) else {
            fm.send_local_reply(404, "", |_| {}, "route_not_found");
            return;
        };
        let Some(route) = router.forward(&forward) else {
            fm.send_local_reply(404, "", |_| {}, "route_not_found");
            return;
        };
        let suppress = self.chain.router_config.suppress_envoy_headers;
        let Some(headers) = fm.request_headers_mut() else { return };
        let ctx = RouteContext {
            random_value: random,
            downstream_remote: Some(remote),
            ..RouteContext::default()
        };
        route.finalize_request_headers(headers, &ctx, !suppress);
        // ANCHOR_END: route_lookup

        // Timeouts: the route's, or what a trusted caller asked for.
        let asked = take_timeout_headers(headers);
        self.timeout = match asked.timeout_ms {
            Some(ms) => (ms > 0).then(|| Duration::from_millis(ms)),
            None => route.timeout(),
        };
        let policy = route.retry_policy();
        self.per_try_timeout = match asked.per_try_timeout_ms {
            Some(ms) => (ms > 0).then(|| Duration::from_millis(ms)),
            None => policy.and_then(|p| p.per_try_timeout),
        };
        let expected = match (self.per_try_timeout, self.timeout) {
            (Some(p), Some(t)) => Some(p.min(t)),
            (p, t) => p.or(t),
        };
        if !suppress && let Some(e) = expected {
            headers.insert(
                const { HeaderName::from_static("x-envoy-expected-rq-timeout-ms") },
                number_value(e.as_millis() as u64),
            );
        }
        (self.retry_enabled, self.retries_left) = match policy {
            Some(p) if p.request_is_retriable(headers) => (true, p.num_retries),
            _ => (false, 0),
        };
        if self.retries_left > 0 {
            self.replay = Some(Buffer::new());
        }
        self.hash = route.compute_hash(headers, Some(remote.ip()));
        self.priority = route.action.priority;
        // ANCHOR: request_breaker
        match cluster
            .info
            .circuit_breakers
            .for_priority(route.action.priority)
            .requests()
            .try_acquire()
        {
            Ok(guard) => self._requests = Some(guard),
            Err(_) => {
                fm.stream_info_mut().set_response_flag(ResponseFlag::UpstreamOverflow);
                fm.send_local_reply(
                    503,
                    reset_body("overflow"),
                    |_| {},
                    "upstream_reset_before_response_started{overflow}",
                );
                self.state = State::Done;
                return;
            }
        }
        // ANCHOR_END: request_breaker
        drop(route);
        self.forward = Some(forward);
        self.router = Some(router);
        self.cluster = Some(cluster);
        if end_stream {
            self.on_request_end();
        }
        self.begin_attempt(fm);
    }

    fn on_request_end(&mut self) {
        self.request_end = true;
        let now = crate::clock::now();
        self.global_deadline = self.timeout.map(|t| now + t);
        if matches!(self.state, State::Active(_)) {
            self.per_try_deadline = self.per_try_timeout.map(|t| now + t);
        }
    }

    // ANCHOR: begin_attempt
    fn begin_attempt(&mut self, fm: &mut FilterManager) {
        let Some(cluster) = self.cluster.clone() else { return };
        let (selection_retries, avoid_previous) = self
            .retry_policy()
            .map_or((0, false), |p| (p.host_selection_retry_max_attempts, p.avoid_previous_hosts));
        let avoid = avoid_previous || self.attempts > 0;
        let host = {
            let mut ctx = LbContext {
                hash: self.hash,
                avoid: if avoid { &self.previous_hosts } else { &[] },
                selection_retries: if avoid { selection_retries.max(3) } else { 0 },
            };
            self.upstreams.choose_host(&cluster, &mut ctx)
        };
        let Some(host) = host else {
            fm.stream_info_mut().set_response_flag(ResponseFlag::NoHealthyUpstream);
            self.fail(fm, 503, "no healthy upstream".into(), "no_healthy_upstream");
            return;
        };
        self.attempts += 1;
        if self.retries_left > 0 {
            // Only a retry avoids the hosts tried before.
            self.previous_hosts.push(host.address());
        }
        self.attempt_host = Some(host.clone());
        let info = fm.stream_info_mut();
        info.upstream_host = Some(host.address());
        // The router filter named the cluster already (no copy then).
        if info.upstream_cluster.as_deref() != Some(cluster.info.name.as_str()) {
            info.upstream_cluster = Some(cluster.info.name.clone());
        }
        let pools: Rc<WorkerPools> = self.upstreams.pools.clone();
        // Most of the time an idle connection is ready: no need to wait.
        if let Some(conn) = pools.take_idle_for(&cluster.pool, &host, self.priority) {
            return self.on_acquired(fm, Ok(conn));
        }
        let acquire =
            pools.acquire(cluster.pool.clone(), cluster.info.clone(), host, self.priority);
        let mut acquire: Acquire = Box::pin(acquire);
        // A connection may also come at once (a new one cannot: connecting waits).
        let waker = futures_noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match acquire.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => self.on_acquired(fm, result),
            std::task::Poll::Pending => self.state = State::Acquiring(acquire),
        }
    }
    // ANCHOR_END: begin_attempt

    fn on_acquired(
        &mut self,
        fm: &mut FilterManager,
        result: Result<Box<UpstreamConnection>, PoolFailure>,
    ) {
        match result {
            Ok(conn) => {
                self.report(UpstreamResult::ConnectSuccess);
                self.attach(fm, conn);
            }
            Err(PoolFailure::Overflow) => {
                fm.stream_info_mut().set_response_flag(ResponseFlag::UpstreamOverflow);
                self.fail(
                    fm,
                    503,
                    reset_body("overflow"),
                    "upstream_reset_before_response_started{overflow}",
                );
            }
            Err(e) => {
                tracing::debug!("upstream connect: {e}");
                self.report(UpstreamResult::ConnectFailed);
                self.state = State::Idle;
                if !self.maybe_retry_reset(fm, ResetReason::ConnectFailure) {
                    fm.stream_info_mut().set_response_flag(ResponseFlag::UpstreamConnectionFailure);
                    self.fail(
                        fm,
                        503,
                        reset_body("connection failure"),
                        "upstream_reset_before_response_started{connection_failure}",
                    );
                }
            }
        }
    }

    fn attach(&mut self, fm: &mut FilterManager, mut conn: Box<UpstreamConnection>) {
        conn.requests += 1;
        let mut attempt = Attempt {
            _active: conn.host.start_request(),
            conn,
            encoder: RequestEncoder::new(),
            write_buf: crate::io::take_buffer(),
            read_space: BytesMut::new(),
            started: crate::clock::now(),
            response_headers: false,
            response_keep_alive: true,
            response_ended: false,
            held_data: None,
            _stats: self.cluster.as_ref().map(|c| UpstreamRequestStats::new(&c.pool.stats)),
        };
        if let Some(replay) = &self.replay
            && self.attempts > 1
        {
            self.pending = replay.share();
        }
        let header_only = self.request_end && self.pending.is_empty() && self.trailers.is_none();
        if self.attempts > 1
            && self.route().is_some_and(|r| r.vhost.include_request_attempt_count)
            && let Some(headers) = fm.request_headers_mut()
        {
            headers.insert(
                const { HeaderName::from_static("x-envoy-attempt-count") },
                HeaderValue::from(u64::from(self.attempts)),
            );
        }
        let Some(headers) = fm.request_headers() else { return };
        match attempt.encoder.encode_headers(
            headers,
            header_only && !self.upgrade,
            &mut attempt.write_buf,
        ) {
            Ok(info) => attempt.conn.decoder.expect_response(info),
            Err(e) => {
                tracing::debug!("cannot encode the upstream request: {e}");
                fm.send_local_reply(400, "", |_| {}, "invalid_upstream_request");
                self.state = State::Done;
                return;
            }
        }
        let now = crate::clock::now();
        let since_start = fm.stream_info().since_start(now.into_std());
        fm.stream_info_mut().first_upstream_tx_byte_sent = Some(since_start);
        self.state = State::Active(attempt);
        self.write_pending();
        if self.request_end {
            self.per_try_deadline = self.per_try_timeout.map(|t| now + t);
        }
    }

    /// Writes buffered body (and trailers) into the active attempt.
    fn write_pending(&mut self) {
        let State::Active(a) = &mut self.state else { return };
        let end_with_data = self.request_end && self.trailers.is_none();
        if self.upgrade {
            a.write_buf.move_from(&mut self.pending);
            return;
        }
        while !self.pending.is_empty() {
            let n = self.pending.front_slice().len();
            let chunk = self.pending.split_to_bytes(n);
            let last = end_with_data && self.pending.is_empty();
            let _ = a.encoder.encode_data(chunk, last, &mut a.write_buf);
        }
        if a.encoder.is_complete() {
            return;
        }
        if let Some(t) = &self.trailers
            && self.request_end
        {
            let _ = a.encoder.encode_trailers(t, &mut a.write_buf);
        } else if end_with_data {
            let _ = a.encoder.encode_data(Bytes::new(), true, &mut a.write_buf);
        }
    }

    /// Request body from the filter chain.
    pub fn send_data(&mut self, fm: &mut FilterManager, data: Buffer, end_stream: bool) {
        let _ = fm;
        if let Some(replay) = &mut self.replay {
            if replay.len() + data.len() > self.buffer_limit {
                // Too big to replay: this request will not be retried.
                self.replay = None;
                self.retry_enabled = false;
            } else {
                replay.move_from(&mut data.share());
            }
        }
        let mut data = data;
        self.pending.move_from(&mut data);
        if end_stream {
            self.on_request_end();
        }
        if self.upgrade && end_stream {
            // The downstream closed its half of the tunnel.
            if let State::Active(a) = &mut self.state {
                a.write_buf.move_from(&mut self.pending);
                let _ = a.conn.io.try_write(&[]);
            }
        }
        self.write_pending();
    }

    /// Request trailers from the filter chain (the end of the request).
    pub fn send_trailers(&mut self, fm: &mut FilterManager, trailers: HeaderMap) {
        let _ = fm;
        self.trailers = Some(trailers);
        self.on_request_end();
        self.write_pending();
    }

    /// A local reply replaced the upstream exchange: drop the attempt.
    pub fn cancel(&mut self) {
        self.state = State::Done;
        self.global_deadline = None;
        self.per_try_deadline = None;
    }

    /// The stream is over: give the connection back or close it.
    pub fn finish(&mut self, fm: &mut FilterManager) {
        let _ = fm;
        if let State::Active(a) = std::mem::replace(&mut self.state, State::Done) {
            drop(a);
        }
    }

    /// Writes what the upstream socket takes.
    pub fn flush(&mut self) -> io::Result<()> {
        let State::Active(a) = &mut self.state else { return Ok(()) };
        while !a.write_buf.is_empty() {
            let mut slices = [io::IoSlice::new(&[]); 64];
            let n = bytes::Buf::chunks_vectored(&a.write_buf, &mut slices);
            match a.conn.io.try_write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => bytes::Buf::advance(&mut a.write_buf, written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.upgrade
            && self.request_end
            && a.write_buf.is_empty()
            && let Ok(std) = socket_ref(&a.conn.io)
        {
            let _ = std.shutdown(std::net::Shutdown::Write);
        }
        Ok(())
    }

    /// Waits for the upstream: a connection, readable bytes (when the
    /// downstream has room), or room to write.
    pub async fn wait(&mut self, down_room: bool) -> UpstreamEvent {
        match &mut self.state {
            State::Acquiring(acquire) => UpstreamEvent::Acquired(acquire.as_mut().await),
            State::Active(a) => {
                let read = down_room && !self.read_disabled && !a.response_ended;
                let write = !a.write_buf.is_empty();
                match crate::io::ready(&a.conn.io, read, write).await {
                    Ok(crate::io::Ready::Readable) => UpstreamEvent::Readable,
                    Ok(crate::io::Ready::Writable) => UpstreamEvent::Writable,
                    Err(e) => UpstreamEvent::Failed(e),
                }
            }
            _ => std::future::pending().await,
        }
    }

    /// Handles what [`wait`](Self::wait) returned.
    pub fn on_event(&mut self, fm: &mut FilterManager, ev: UpstreamEvent) {
        match ev {
            UpstreamEvent::Acquired(result) => {
                self.state = State::Idle;
                self.on_acquired(fm, result);
            }
            UpstreamEvent::Readable => self.read(fm),
            UpstreamEvent::Writable => {
                if let Err(e) = self.flush() {
                    self.on_reset(fm, &e.to_string());
                }
            }
            UpstreamEvent::Failed(e) => self.on_reset(fm, &e.to_string()),
        }
    }

    fn read(&mut self, fm: &mut FilterManager) {
        let State::Active(a) = &mut self.state else { return };
        // A read that fills the buffer may have left more behind: read on (up
        // to the buffer limit) so a response is decoded, and written
        // downstream, in one go rather than one write per read.
        let mut got_data = false;
        loop {
            crate::io::ensure_read_space(&mut a.read_space);
            let room = a.read_space.capacity() - a.read_space.len();
            match crate::io::read_once(&a.conn.io, &mut a.read_space) {
                // End of input after data: seen again on the next wake-up,
                // once the data is decoded.
                Ok(0) if got_data => break,
                Ok(0) => {
                    a.conn.decoder.on_eof();
                    self.process(fm, true);
                    // The decoder ended what the close could end; a response
                    // still open (none started: a stale pooled connection or an
                    // upstream that closed without answering) is a reset. Else
                    // the socket stays readable at EOF and nothing ends it.
                    if matches!(&self.state, State::Active(a) if !a.response_ended) {
                        self.on_reset(fm, "connection termination");
                    }
                    return;
                }
                Ok(n) => {
                    got_data = true;
                    let chunk = a.read_space.split().freeze();
                    a.conn.read_buf.append_bytes(chunk);
                    if n < room || a.conn.read_buf.len() >= self.buffer_limit {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !got_data {
                        return;
                    }
                    break;
                }
                // An error after data: reported by the next read.
                Err(_) if got_data => break,
                Err(e) => return self.on_reset(fm, &e.to_string()),
            }
        }
        self.process(fm, true);
    }

    /// Decodes buffered response bytes into the filter chain. Returns whether
    /// anything happened.
    pub fn process(&mut self, fm: &mut FilterManager, down_room: bool) -> bool {
        let mut progressed = false;
        loop {
            let State::Active(a) = &mut self.state else { return progressed };
            if a.response_ended || (a.response_headers && !down_room) {
                return progressed;
            }
            let event = match a.conn.decoder.decode(&mut a.conn.read_buf) {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    if let Some(data) = a.held_data.take() {
                        fm.encode_data(Buffer::from(data), false);
                        progressed = true;
                    }
                    return progressed;
                }
                Err(e) => {
                    tracing::debug!("upstream protocol error: {e}");
                    if a.response_headers || self.response_started {
                        let flag = if e == week3_filters::http1::CodecError::PrematureEof {
                            ResponseFlag::UpstreamConnectionTermination
                        } else {
                            ResponseFlag::UpstreamProtocolError
                        };
                        fm.stream_info_mut().set_response_flag(flag);
                        self.reset_downstream = true;
                        self.state = State::Done;
                    } else if e == week3_filters::http1::CodecError::PrematureEof {
                        self.state = State::Idle;
                        self.on_reset(fm, "connection termination");
                    } else {
                        self.state = State::Done;
                        fm.stream_info_mut().set_response_flag(ResponseFlag::UpstreamProtocolError);
                        self.fail(
                            fm,
                            502,
                            reset_body("protocol error"),
                            "upstream_reset_before_response_started{protocol_error}",
                        );
                    }
                    return true;
                }
            };
            progressed = true;
            match event {
                Event::Headers(head) => {
                    if head.is_informational() && !(head.status == 101 && self.upgrade) {
                        // 100 Continue was answered downstream already.
                        if head.status != 100 {
                            fm.encode_1xx_headers(head.headers);
                        }
                        continue;
                    }
                    let status = head.status;
                    if let (Some(cluster), Some(host)) = (&self.cluster, &self.attempt_host) {
                        crate::health::report_status(&cluster.info, host, status);
                        // A presence bit: a well-known header name.
                        if head.headers.contains("x-envoy-immediate-health-check-fail") {
                            crate::health::report_immediate_fail(&cluster.info, host);
                        }
                    }
                    let now = crate::clock::now();
                    let stats = self.cluster.as_ref().map(|c| c.pool.stats.clone());
                    if let Some(stats) = &stats {
                        stats.response(status);
                    }
                    // ANCHOR: retry_on_response
                    let wants = !self.response_started
                        && self
                            .retry_policy()
                            .is_some_and(|p| p.retry_on_response(status, &head.headers));
                    if self.retry_decided(fm, wants) {
                        return true; // the backoff state dropped this attempt
                    }
                    // ANCHOR_END: retry_on_response
                    let State::Active(a) = &mut self.state else { return true };
                    if let Some(stats) = stats {
                        stats
                            .upstream_rq_time
                            .record_duration(now.saturating_duration_since(a.started));
                        if self.attempts > 1 && status < 500 {
                            stats.upstream_rq_retry_success.inc();
                        }
                    }
                    a.response_headers = true;
                    a.response_keep_alive = head.keep_alive;
                    self.response_started = true;
                    self.per_try_deadline = None;
                    let mut headers = head.headers;
                    let since_start = fm.stream_info().since_start(now.into_std());
                    fm.stream_info_mut().first_upstream_rx_byte_received = Some(since_start);
                    if !self.chain.router_config.suppress_envoy_headers {
                        let ms = now.saturating_duration_since(a.started).as_millis() as u64;
                        headers.insert(
                            const { HeaderName::from_static("x-envoy-upstream-service-time") },
                            number_value(ms),
                        );
                    }
                    if let Some(route) = self.route() {
                        let ctx = RouteContext::default();
                        route.finalize_response_headers(&mut headers, fm.request_headers(), &ctx);
                    }
                    let end =
                        matches!(head.framing, BodyFraming::None | BodyFraming::ContentLength(0));
                    if end && let State::Active(a) = &mut self.state {
                        a.response_ended = true;
                    }
                    fm.encode_headers(headers, end);
                    if end {
                        self.response_complete();
                    }
                }
                Event::Data(data) => {
                    if let Some(prev) = a.held_data.replace(data) {
                        fm.encode_data(Buffer::from(prev), false);
                    }
                }
                Event::Trailers(trailers) => {
                    if let Some(prev) = a.held_data.take() {
                        fm.encode_data(Buffer::from(prev), false);
                    }
                    a.response_ended = true;
                    fm.encode_trailers(trailers);
                    self.response_complete();
                }
                Event::MessageComplete => {
                    if !a.response_ended {
                        a.response_ended = true;
                        let last = a.held_data.take().map(Buffer::from).unwrap_or_default();
                        fm.encode_data(last, true);
                    }
                    self.response_complete();
                }
            }
        }
    }

    /// The response is complete: the connection goes back to the pool when
    /// the request was written completely and both sides keep it alive.
    fn response_complete(&mut self) {
        self.global_deadline = None;
        self.per_try_deadline = None;
        if !matches!(self.state, State::Active(ref a) if a.response_ended) {
            return;
        }
        let State::Active(a) = std::mem::replace(&mut self.state, State::Done) else { return };
        let Attempt { conn, encoder, response_keep_alive, write_buf, read_space, .. } = a;
        crate::io::recycle(read_space);
        let written = write_buf.is_empty();
        crate::io::recycle_buffer(write_buf);
        let reusable = !self.upgrade
            && response_keep_alive
            && encoder.is_complete()
            && written
            && conn.decoder.is_idle()
            && self.cluster.as_ref().is_some_and(|c| WorkerPools::may_reuse(&conn, &c.pool));
        self.upstreams.pools.release(conn, reusable);
    }

    /// Whether a retry could be sent at all: the request can be replayed
    /// and the route timeout has not passed.
    fn can_replay(&self) -> bool {
        (self.replay.is_some() || self.request_end && self.pending.is_empty())
            && self.global_deadline.is_none_or(|d| crate::clock::now() < d)
    }

    /// Reports the current attempt's result to outlier detection.
    fn report(&self, result: UpstreamResult) {
        if let (Some(cluster), Some(host)) = (&self.cluster, &self.attempt_host) {
            crate::health::report_result(&cluster.info, host, result);
        }
    }

    /// The attempt failed before a response: retry or answer.
    fn on_reset(&mut self, fm: &mut FilterManager, why: &str) {
        tracing::debug!("upstream reset: {why}");
        let started = self.response_started;
        if !started {
            self.report(UpstreamResult::ConnectFailed);
        }
        self.state = State::Idle;
        if started {
            fm.stream_info_mut().set_response_flag(ResponseFlag::UpstreamConnectionTermination);
            self.reset_downstream = true;
            self.state = State::Done;
            return;
        }
        if !self.maybe_retry_reset(fm, ResetReason::Reset) {
            fm.stream_info_mut().set_response_flag(ResponseFlag::UpstreamConnectionTermination);
            self.fail(
                fm,
                503,
                reset_body("connection termination"),
                "upstream_reset_before_response_started{connection_termination}",
            );
        }
    }

    fn maybe_retry_reset(&mut self, fm: &mut FilterManager, reason: ResetReason) -> bool {
        let wants = self.retry_policy().is_some_and(|p| p.retry_on_reset(reason));
        self.retry_decided(fm, wants)
    }

    // ANCHOR: schedule_retry
    /// An attempt's outcome is known and the retry policy `wants` a retry or
    /// not (Envoy's `RetryState::shouldRetry`). The previous retry's breaker
    /// slot is released; a new retry needs one left in the policy's
    /// `num_retries` (else `upstream_rq_retry_limit_exceeded`, flag URX) and a
    /// slot of the cluster's `max_retries` breaker or retry budget (else
    /// `upstream_rq_retry_overflow`, flag UO). True when a retry is scheduled.
    fn retry_decided(&mut self, fm: &mut FilterManager, wants: bool) -> bool {
        self.retry_guard = None;
        if !wants || !self.retry_enabled || !self.can_replay() {
            return false;
        }
        let Some(cluster) = self.cluster.clone() else { return false };
        let stats = &cluster.pool.stats;
        if self.retries_left == 0 {
            stats.upstream_rq_retry_limit_exceeded.inc();
            fm.stream_info_mut().set_response_flag(ResponseFlag::UpstreamRetryLimitExceeded);
            return false;
        }
        self.retries_left -= 1;
        match cluster.info.circuit_breakers.for_priority(self.priority).try_acquire_retry() {
            Ok(guard) => self.retry_guard = Some(guard),
            Err(_) => {
                stats.upstream_rq_retry_overflow.inc();
                fm.stream_info_mut().set_response_flag(ResponseFlag::UpstreamOverflow);
                return false;
            }
        }
        stats.upstream_rq_retry.inc();
        let backoff = self
            .retry_policy()
            .map_or(Duration::ZERO, |p| p.backoff(self.attempts, crate::random::next_u64()));
        self.per_try_deadline = None;
        self.state = State::Backoff(crate::clock::now() + backoff);
        true
    }
    // ANCHOR_END: schedule_retry

    /// Answers locally, noting `URX` when retries were made.
    fn fail(&mut self, fm: &mut FilterManager, status: u16, body: String, details: &'static str) {
        if self.attempts > 1 {
            fm.stream_info_mut().set_response_flag(ResponseFlag::UpstreamRetryLimitExceeded);
        }
        self.state = State::Done;
        self.global_deadline = None;
        self.per_try_deadline = None;
        if fm.response_started() {
            self.reset_downstream = true;
        } else {
            fm.send_local_reply(status, body, |_| {}, details);
        }
    }

    /// The earliest deadline of this request.
    pub fn next_deadline(&self) -> Option<Instant> {
        let backoff = match &self.state {
            State::Backoff(at) => Some(*at),
            _ => None,
        };
        [self.global_deadline, self.per_try_deadline, backoff].into_iter().flatten().min()
    }

    /// Deadlines that passed.
    pub fn on_timer(&mut self, fm: &mut FilterManager, now: Instant) {
        if self.global_deadline.is_some_and(|d| now >= d) {
            self.global_deadline = None;
            self.timeout_fired(fm, false);
            return;
        }
        if self.per_try_deadline.is_some_and(|d| now >= d) {
            self.per_try_deadline = None;
            self.timeout_fired(fm, true);
            return;
        }
        if let State::Backoff(at) = self.state
            && now >= at
        {
            self.state = State::Idle;
            self.begin_attempt(fm);
        }
    }

    // ANCHOR: timeout_fired
    fn timeout_fired(&mut self, fm: &mut FilterManager, per_try: bool) {
        if let Some(c) = &self.cluster {
            let s = &c.pool.stats;
            if per_try { s.upstream_rq_per_try_timeout.inc() } else { s.upstream_rq_timeout.inc() }
        }
        if matches!(self.state, State::Active(_) | State::Acquiring(_)) {
            self.report(UpstreamResult::Timeout);
        }
        if self.response_started {
            fm.stream_info_mut().set_response_flag(ResponseFlag::UpstreamRequestTimeout);
            self.reset_downstream = true;
            self.state = State::Done;
            return;
        }
        self.state = State::Idle;
        let wants = per_try
            && self.retry_policy().is_some_and(|p| p.retry_on_response(504, &HeaderMap::new()));
        if self.retry_decided(fm, wants) {
            return;
        }
        fm.stream_info_mut().set_response_flag(ResponseFlag::UpstreamRequestTimeout);
        self.fail(fm, 504, "upstream request timeout".into(), "upstream_response_timeout");
    }
    // ANCHOR_END: timeout_fired
}

/// The timeouts a (trusted) caller asked for in request headers.
#[derive(Debug, Default, PartialEq, Eq)]
struct AskedTimeouts {
    timeout_ms: Option<u64>,
    per_try_timeout_ms: Option<u64>,
}

const RQ_TIMEOUT_PREFIX: &str = "x-envoy-upstream-rq-";
const RQ_TIMEOUT: &str = "x-envoy-upstream-rq-timeout-ms";
const RQ_PER_TRY_TIMEOUT: &str = "x-envoy-upstream-rq-per-try-timeout-ms";

/// Parses and removes `x-envoy-upstream-rq-timeout-ms` and
/// `x-envoy-upstream-rq-per-try-timeout-ms` (the first value of each counts).
/// One pass over the names when neither is present, the usual case.
fn take_timeout_headers(headers: &mut HeaderMap) -> AskedTimeouts {
    let present = headers.iter().any(|(n, _)| {
        let n = n.as_str().as_bytes();
        n.len() > RQ_TIMEOUT_PREFIX.len()
            && n[..RQ_TIMEOUT_PREFIX.len()].eq_ignore_ascii_case(RQ_TIMEOUT_PREFIX.as_bytes())
    });
    if !present {
        return AskedTimeouts::default();
    }
    let mut take = |name: &str| {
        let v = headers.get_str(name).and_then(|v| v.trim().parse::<u64>().ok());
        headers.remove(name);
        v
    };
    AskedTimeouts { timeout_ms: take(RQ_TIMEOUT), per_try_timeout_ms: take(RQ_PER_TRY_TIMEOUT) }
}

/// Entries of the per-thread cache of numeric header values.
const NUMBER_VALUES: usize = 64;

thread_local! {
    /// Numeric header values recently made (`x-envoy-expected-rq-timeout-ms`
    /// repeats the route's timeout, `x-envoy-upstream-service-time` is a few
    /// milliseconds): a hit shares the bytes instead of formatting and
    /// allocating. Direct-mapped by value.
    static NUMBER_VALUE_CACHE: std::cell::RefCell<Vec<Option<(u64, HeaderValue)>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// `n` as a header value, shared from this thread's cache when it was made recently.
fn number_value(n: u64) -> HeaderValue {
    NUMBER_VALUE_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.is_empty() {
            cache.resize(NUMBER_VALUES, None);
        }
        let slot = &mut cache[(n % NUMBER_VALUES as u64) as usize];
        match slot {
            Some((cached, value)) if *cached == n => value.clone(),
            _ => {
                let value = HeaderValue::from(n);
                *slot = Some((n, value.clone()));
                value
            }
        }
    })
}

fn socket_ref(io: &tokio::net::TcpStream) -> io::Result<socket2::SockRef<'_>> {
    Ok(socket2::SockRef::from(io))
}

fn futures_noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            h.try_append(n, v).unwrap();
        }
        h
    }

    #[test]
    fn timeout_headers_are_parsed_and_removed() {
        let mut h = headers(&[
            (":path", "/"),
            ("X-Envoy-Upstream-Rq-Timeout-Ms", " 250 "),
            ("x-envoy-upstream-rq-per-try-timeout-ms", "100"),
            ("x-envoy-upstream-rq-per-try-timeout-ms", "7"),
            ("x-other", "1"),
        ]);
        let asked = take_timeout_headers(&mut h);
        assert_eq!(asked, AskedTimeouts { timeout_ms: Some(250), per_try_timeout_ms: Some(100) });
        assert!(!h.contains(RQ_TIMEOUT) && !h.contains(RQ_PER_TRY_TIMEOUT));
        assert!(h.contains("x-other"));

        let mut h = headers(&[("x-envoy-upstream-rq-timeout-ms", "soon")]);
        assert_eq!(take_timeout_headers(&mut h), AskedTimeouts::default());
        assert!(!h.contains(RQ_TIMEOUT), "an invalid value is removed too");

        let mut h = headers(&[("x-envoy-upstream-rq-", "1"), ("host", "a")]);
        assert_eq!(take_timeout_headers(&mut h), AskedTimeouts::default());
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn number_values_are_right_whether_cached_or_not() {
        for n in [0, 1, 15000, 64, 0, 128, 15000, u64::MAX, 1] {
            assert_eq!(number_value(n).as_bytes(), n.to_string().as_bytes());
        }
    }
}
