//! # The HTTP connection manager: one downstream connection
//!
//! Envoy's `ConnectionManagerImpl` and its `ActiveStream`s, as the thin I/O
//! shell around the week 3 cores. A worker runs one task per downstream
//! connection; the task owns the socket, the codec, the stream's
//! FilterManager and, while a request is in flight, the upstream connection
//! it borrowed from the worker's pool:
//!
//! ```text
//!  socket ─read─► Buffer ─► RequestDecoder ─► ConnectionManagerUtility ─► FilterManager
//!                                                                           │ Upstream* events
//!                                       router (crate::router): LB, pool, retries, timeouts
//!                                                                           │ response
//!  socket ◄─writev─ Buffer ◄─ ResponseEncoder ◄─ Downstream* events ◄─ FilterManager
//! ```
//!
//! The task is a small event loop of its own: it decodes and runs everything
//! that is ready without blocking, flushes what it can, then waits for the
//! first of downstream readable/writable, upstream readable/writable, a
//! pending connection, or the earliest deadline. Reading a side stops while
//! the other side's write buffer is over the connection buffer limit, which
//! is how bodies stream with bounded memory (Envoy's watermarks). HTTP/1.1
//! serves one request at a time: pipelined requests wait in the read buffer.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue};
use week3_filters::buffer::Buffer;
use week3_filters::hcm::utility::{self, RequestContext};
use week3_filters::hcm::{ConnectionManagerConfig, path};
use week3_filters::http::{
    ConnectionInfo, FilterManager, FilterManagerConfig, ResponseFlag, StreamEvent, StreamInfo,
    TimerId,
};
use week3_filters::http1::{
    BodyFraming, CodecError, Event, RequestDecoder, RequestHead, RequestInfo, ResponseEncoder,
};

use week4_xds::drain::ConnectionGuard;

use crate::access_log::LogEntry;
use crate::clock;
use crate::router::{UpstreamEvent, UpstreamRequest};
use crate::snapshot::HttpChain;
use crate::upstream::WorkerUpstreams;

/// How one downstream connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// Keep-alive.
    No,
    /// Close once the current response is written (`Connection: close`,
    /// HTTP/1.0, drain, `max_requests_per_connection`).
    AfterResponse,
    /// Flush what is buffered, then close.
    FlushAndClose,
    /// Close now (reset).
    Abort,
}

/// What woke the connection task.
enum Wake {
    DownstreamReadable,
    DownstreamWritable,
    Upstream(UpstreamEvent),
    Timer,
    /// The server or listener started draining.
    Drain,
    /// The drain time is over: close now.
    ForceClose,
    Io(io::Error),
}

/// Serves one downstream HTTP/1.1 connection until it closes. `drain` counts
/// it for the server's (or its listener's) drain: once draining, responses
/// carry `Connection: close` and an idle connection closes after the HCM's
/// `drain_timeout`; the drain's deadline closes it regardless.
pub async fn serve_connection(
    io: TcpStream,
    connection: ConnectionInfo,
    chain: Arc<HttpChain>,
    upstreams: Rc<WorkerUpstreams>,
    buffer_limit: usize,
    drain: Option<ConnectionGuard>,
) {
    let _ = io.set_nodelay(true);
    let stats = chain.stats.clone();
    stats.downstream_cx_total.inc();
    stats.downstream_cx_active.inc();
    let mut conn = Connection::new(io, connection, chain, upstreams, buffer_limit);
    conn.drain_event = drain.as_ref().map(|g| {
        let started: Pin<Box<dyn std::future::Future<Output = ()>>> =
            Box::pin(g.drain_started_owned());
        started
    });
    conn.drain = drain;
    conn.run().await;
    stats.downstream_cx_active.dec();
    stats.downstream_cx_destroy.inc();
}

/// The connection's state (Envoy's `ConnectionManagerImpl`).
struct Connection {
    io: TcpStream,
    chain: Arc<HttpChain>,
    upstreams: Rc<WorkerUpstreams>,
    fm_config: FilterManagerConfig,
    request_context: RequestContext,
    buffer_limit: usize,
    read_buf: Buffer,
    /// Spare read capacity; dropped while the connection is idle.
    read_space: BytesMut,
    write_buf: Buffer,
    /// The connection holds no buffers of its own (new, or idle: they went
    /// to the worker's pool); the next read takes pooled ones.
    buffers_pooled: bool,
    decoder: RequestDecoder,
    stream: Option<Box<ActiveStream>>,
    read_eof: bool,
    closing: Closing,
    requests: u32,
    created: Instant,
    /// Since when no stream is active (connection `idle_timeout`).
    idle_since: Instant,
    /// When the first byte of the current request head arrived.
    head_started: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    /// Counts this connection in a drain.
    drain: Option<ConnectionGuard>,
    /// What the drain holds for this connection next: its start, then (once
    /// draining) the force-close. Kept across waits: registered once, not
    /// per wake-up.
    drain_event: Option<Pin<Box<dyn std::future::Future<Output = ()>>>>,
    /// The drain started and was acted on.
    draining: bool,
    /// While draining, when the connection closes if no request has started
    /// (the HCM's `drain_timeout` after the drain started).
    idle_close_at: Option<Instant>,
}

/// One request/response exchange (Envoy's `ActiveStream`).
struct ActiveStream {
    /// Boxed: it moves between the pool and streams as a pointer, not a copy.
    fm: Box<FilterManager>,
    request: RequestInfo,
    encoder: ResponseEncoder,
    /// The codec delivered the end of the request.
    request_decoded: bool,
    /// End of stream was given to the FilterManager.
    request_ended: bool,
    /// Body bytes waiting for a lookahead (is the next event the end?).
    held_data: Option<Bytes>,
    response_ended: bool,
    /// The FilterManager asked to stop reading the downstream.
    read_disabled: bool,
    upstream: UpstreamRequest,
    timers: Vec<(TimerId, Instant)>,
    last_activity: Instant,
    /// `request_timeout` deadline, until the request is complete.
    request_deadline: Option<Instant>,
    close_after: bool,
}

impl Connection {
    fn new(
        io: TcpStream,
        connection: ConnectionInfo,
        chain: Arc<HttpChain>,
        upstreams: Rc<WorkerUpstreams>,
        buffer_limit: usize,
    ) -> Self {
        let remote = connection.remote_address.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let local = connection.local_address.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let fm_config = FilterManagerConfig {
            buffer_limit,
            route_resolver: Some(chain.resolver.clone()),
            time: Arc::new(crate::clock::ApproximateTime),
            connection,
        };
        let now = clock::now();
        Self {
            io,
            decoder: RequestDecoder::new(chain.config.limits),
            request_context: RequestContext {
                remote_address: remote,
                local_address: local,
                tls: false,
                codec_upgrade: false,
            },
            chain,
            upstreams,
            fm_config,
            buffer_limit,
            read_buf: Buffer::new(),
            read_space: BytesMut::new(),
            write_buf: Buffer::new(),
            // Nothing to give back yet; the first read takes pooled buffers.
            buffers_pooled: true,
            stream: None,
            read_eof: false,
            closing: Closing::No,
            requests: 0,
            created: now,
            idle_since: now,
            head_started: None,
            timer: Box::pin(tokio::time::sleep_until(now)),
            timer_at: None,
            drain: None,
            drain_event: None,
            draining: false,
            idle_close_at: None,
        }
    }

    fn config(&self) -> &ConnectionManagerConfig {
        &self.chain.config
    }

    // ANCHOR: connection_loop
    async fn run(&mut self) {
        // One clock read per wake-up (Envoy's approximate monotonic time).
        let mut tick = Some(clock::Tick::new());
        loop {
            self.process();
            if let Err(e) = self.flush_downstream() {
                self.on_downstream_error(e);
            }
            if let Some(s) = &mut self.stream
                && let Err(e) = s.upstream.flush()
            {
                let ev = UpstreamEvent::Failed(e);
                self.on_upstream(ev);
                continue;
            }
            match self.closing {
                Closing::Abort => break,
                Closing::FlushAndClose if self.write_buf.is_empty() => break,
                Closing::AfterResponse if self.stream.is_none() && self.write_buf.is_empty() => {
                    break;
                }
                _ => {}
            }
            if self.stream.is_none() && self.read_eof && self.read_buf.is_empty() {
                break;
            }
            if self.stream.is_none() && self.read_buf.is_empty() && self.write_buf.is_empty() {
                // Idle keep-alive connection: give buffer capacity back, so an
                // idle connection costs a few hundred bytes, not a read buffer.
                // Buffers go to the worker's pool and come back with the next request.
                if !self.buffers_pooled {
                    crate::io::recycle(std::mem::take(&mut self.read_space));
                    crate::io::recycle_buffer(std::mem::take(&mut self.read_buf));
                    crate::io::recycle_buffer(std::mem::take(&mut self.write_buf));
                    self.buffers_pooled = true;
                }
            }
            self.arm_timer();
            drop(tick.take());
            let wake = self.wait().await;
            tick = Some(clock::Tick::new());
            match wake {
                Wake::DownstreamReadable => self.read_downstream(),
                Wake::DownstreamWritable => {}
                Wake::Upstream(ev) => self.on_upstream(ev),
                Wake::Timer => self.on_timers(),
                Wake::Drain => self.on_drain(),
                Wake::ForceClose => {
                    self.drain_event = None;
                    self.closing = Closing::Abort;
                }
                Wake::Io(e) => self.on_downstream_error(e),
            }
        }
        if let Some(mut s) = self.stream.take() {
            if !s.response_ended && !s.upstream.must_reset_downstream() {
                s.fm.stream_info_mut()
                    .set_response_flag(ResponseFlag::DownstreamConnectionTermination);
            }
            self.finish_stream(s);
        }
        let _ = self.flush_downstream();
    }
    // ANCHOR_END: connection_loop

    // ANCHOR: watermarks
    fn wants_read(&self) -> bool {
        if self.read_eof || self.closing != Closing::No && self.stream.is_none() {
            return false;
        }
        if self.write_buf.len() >= self.buffer_limit {
            return false;
        }
        match &self.stream {
            None => self.read_buf.len() < self.buffer_limit,
            // Once the request is complete, keep reading (pipelined requests
            // wait in the buffer, bounded) so a client that goes away is seen.
            Some(s) => {
                (s.request_decoded
                    || !s.read_disabled && s.upstream.pending_request_bytes() < self.buffer_limit)
                    && self.read_buf.len() < self.buffer_limit
            }
        }
    }
    // ANCHOR_END: watermarks

    async fn wait(&mut self) -> Wake {
        let want_read = self.wants_read();
        let want_write = !self.write_buf.is_empty();
        let down_room = self.write_buf.len() < self.buffer_limit;
        let io = &self.io;
        let timer_armed = self.timer_at.is_some();
        let timer = &mut self.timer;
        let upstream = self.stream.as_mut().map(|s| &mut s.upstream);
        let has_upstream = upstream.is_some();
        let upstream_wait = async move {
            match upstream {
                Some(u) => u.wait(down_room).await,
                None => std::future::pending().await,
            }
        };
        let draining = self.draining;
        let drain_armed = self.drain_event.is_some();
        let drain_event = async {
            match self.drain_event.as_mut() {
                Some(event) => {
                    event.as_mut().await;
                    if draining { Wake::ForceClose } else { Wake::Drain }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            ev = upstream_wait, if has_upstream => Wake::Upstream(ev),
            r = crate::io::ready(io, want_read, want_write), if want_read || want_write => match r {
                Ok(crate::io::Ready::Readable) => Wake::DownstreamReadable,
                Ok(crate::io::Ready::Writable) => Wake::DownstreamWritable,
                Err(e) => Wake::Io(e),
            },
            () = timer.as_mut(), if timer_armed => Wake::Timer,
            wake = drain_event, if drain_armed => wake,
        }
    }

    // ANCHOR: on_drain
    /// The drain started: every response from now on carries
    /// `Connection: close` and ends the connection. An idle connection (no
    /// request in flight: between requests, or none sent yet) closes after
    /// the HCM's `drain_timeout`, Envoy's grace period between the drain
    /// notice and the close, unless a request starts first (it is then
    /// served, with `Connection: close`): closing it at once could lose a
    /// request a client is sending on it at that moment.
    fn on_drain(&mut self) {
        self.draining = true;
        // Next: the drain deadline's force-close.
        self.drain_event = self.drain.as_ref().map(|g| {
            let closed: Pin<Box<dyn std::future::Future<Output = ()>>> =
                Box::pin(g.force_closed_owned());
            closed
        });
        if self.closing != Closing::No {
            return;
        }
        if self.stream.is_some() {
            self.closing = Closing::AfterResponse;
        } else {
            self.idle_close_at = Some(Instant::now() + self.config().timeouts.drain_timeout);
        }
    }
    // ANCHOR_END: on_drain

    fn read_downstream(&mut self) {
        crate::io::ensure_read_space(&mut self.read_space);
        match crate::io::read_once(&self.io, &mut self.read_space) {
            Ok(0) => {
                self.read_eof = true;
                self.decoder.on_eof();
                // As Envoy's HCM, no half-close for HTTP: a client that closes
                // while its response is unfinished resets the stream (DC),
                // except a tunnel, whose request ends with the client's EOF.
                if let Some(s) = &mut self.stream
                    && !s.response_ended
                    && !s.upstream.is_tunnel()
                {
                    s.fm.stream_info_mut()
                        .set_response_flag(ResponseFlag::DownstreamConnectionTermination);
                    s.upstream.cancel();
                    self.closing = Closing::Abort;
                }
            }
            Ok(_) => {
                if self.buffers_pooled {
                    self.buffers_pooled = false;
                    if self.read_buf.is_empty() {
                        self.read_buf = crate::io::take_buffer();
                    }
                    if self.write_buf.is_empty() {
                        self.write_buf = crate::io::take_buffer();
                    }
                }
                if self.head_started.is_none() && self.stream.is_none() {
                    self.head_started = Some(clock::now());
                }
                let chunk = self.read_space.split().freeze();
                self.read_buf.append_bytes(chunk);
                if let Some(s) = &mut self.stream {
                    s.last_activity = clock::now();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Nothing to read after all (a new connection is polled once
                // before its first bytes arrive): an idle connection keeps no
                // read buffer, or a thousand new ones would hold 16 KiB each.
                if self.buffers_pooled {
                    crate::io::recycle(std::mem::take(&mut self.read_space));
                }
            }
            Err(e) => self.on_downstream_error(e),
        }
    }

    fn on_downstream_error(&mut self, e: io::Error) {
        tracing::debug!("downstream connection error: {e}");
        self.read_eof = true;
        if let Some(s) = &mut self.stream {
            s.fm.stream_info_mut().set_response_flag(ResponseFlag::DownstreamConnectionTermination);
        }
        self.closing = Closing::Abort;
    }

    /// Writes as much as the socket takes.
    fn flush_downstream(&mut self) -> io::Result<()> {
        while !self.write_buf.is_empty() {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = self.write_buf.chunks_vectored(&mut slices);
            match self.io.try_write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.write_buf.advance(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------------
    // Processing: everything that can run without waiting.

    fn process(&mut self) {
        for _ in 0..1024 {
            if self.closing == Closing::Abort {
                return;
            }
            // The upstream failed after the response started: the only way to
            // tell the client is to reset (close) the connection, as Envoy.
            if self.stream.as_ref().is_some_and(|s| s.upstream.must_reset_downstream()) {
                self.closing = Closing::Abort;
                return;
            }
            let mut progressed = self.decode_downstream();
            progressed |= self.run_stream_events();
            progressed |= self.drive_upstream();
            progressed |= self.complete_stream();
            if !progressed {
                return;
            }
        }
    }

    /// Feeds decoded request events to the stream. Returns whether anything happened.
    fn decode_downstream(&mut self) -> bool {
        let mut progressed = false;
        loop {
            let can_decode = match &self.stream {
                None => self.closing == Closing::No,
                Some(s) => !s.request_decoded && !s.read_disabled,
            };
            if !can_decode {
                return progressed;
            }
            let event = match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    // A held body chunk waits for the next event only while
                    // more input may come.
                    if let Some(s) = &mut self.stream
                        && let Some(data) = s.held_data.take()
                    {
                        s.fm.decode_data(Buffer::from(data), false);
                        progressed = true;
                    }
                    if self.read_eof && self.stream.is_none() && !self.read_buf.is_empty() {
                        // A truncated head at end of input.
                        self.read_buf.clear();
                    }
                    return progressed;
                }
                Err(e) => {
                    self.on_codec_error(e);
                    return true;
                }
            };
            progressed = true;
            match event {
                Event::Headers(head) => self.start_stream(head),
                Event::Data(data) => {
                    let Some(s) = &mut self.stream else { continue };
                    if let Some(prev) = s.held_data.replace(data) {
                        s.fm.decode_data(Buffer::from(prev), false);
                    }
                }
                Event::Trailers(trailers) => {
                    let Some(s) = &mut self.stream else { continue };
                    if let Some(prev) = s.held_data.take() {
                        s.fm.decode_data(Buffer::from(prev), false);
                    }
                    s.request_decoded = true;
                    s.request_ended = true;
                    s.fm.decode_trailers(trailers);
                }
                Event::MessageComplete => {
                    let Some(s) = &mut self.stream else { continue };
                    s.request_decoded = true;
                    s.request_deadline = None;
                    if !s.request_ended {
                        s.request_ended = true;
                        let last = s.held_data.take().map(Buffer::from).unwrap_or_default();
                        s.fm.decode_data(last, true);
                    }
                }
            }
            // Let the stream react before decoding more.
            if self.stream.as_ref().is_some_and(|s| s.fm_has_events()) {
                return progressed;
            }
        }
    }

    // ANCHOR: codec_error
    fn on_codec_error(&mut self, e: CodecError) {
        tracing::debug!("downstream codec error: {e}");
        let status = e.status_code();
        match &mut self.stream {
            Some(s) if !s.fm.response_started() => {
                s.fm.stream_info_mut().set_response_flag(ResponseFlag::DownstreamProtocolError);
                s.close_after = true;
                s.request_decoded = true;
                s.request_ended = true;
                s.fm.send_local_reply(status, "", |_| {}, e.details());
            }
            Some(s) => {
                s.fm.stream_info_mut().set_response_flag(ResponseFlag::DownstreamProtocolError);
                self.closing = Closing::Abort;
            }
            None => {
                // Envoy answers a request it cannot parse and closes; the
                // request never reaches a filter or an upstream.
                self.write_local_response(status, e.details());
                self.closing = Closing::FlushAndClose;
            }
        }
        self.read_buf.clear();
    }
    // ANCHOR_END: codec_error

    /// A response written straight to the codec (no stream: the request head
    /// could not be parsed), access-logged like Envoy's codec errors.
    fn write_local_response(&mut self, status: u16, details: &'static str) {
        let body = week3_filters::http1::reason_phrase(status);
        let mut headers = HeaderMap::new();
        headers.insert(
            const { HeaderName::from_static(":status") },
            HeaderValue::from(u64::from(status)),
        );
        headers.insert(
            const { HeaderName::from_static("content-length") },
            HeaderValue::from(body.len() as u64),
        );
        let _ = headers.try_insert("content-type", "text/plain");
        let _ = headers.try_insert("connection", "close");
        let mut encoder = ResponseEncoder::new(RequestInfo::default());
        let _ = encoder.encode_headers(&headers, body.is_empty(), &mut self.write_buf);
        if !body.is_empty() {
            let _ =
                encoder.encode_data(Bytes::from_static(body.as_bytes()), true, &mut self.write_buf);
        }
        self.chain.stats.downstream_cx_protocol_error.inc();
        let now = clock::now();
        let mut info = StreamInfo::new(now.into_std(), std::time::SystemTime::now());
        info.connection = self.fm_config.connection.clone();
        info.response_code = Some(status);
        info.set_response_code_details(details);
        info.set_response_flag(ResponseFlag::DownstreamProtocolError);
        info.bytes_sent = body.len() as u64;
        self.chain.access_logs.log(&LogEntry {
            request_headers: None,
            response_headers: Some(&headers),
            response_trailers: None,
            stream_info: &info,
            protocol: Some("HTTP/1.1"),
        });
    }

    fn start_stream(&mut self, head: RequestHead) {
        self.chain.stats.downstream_rq_total.inc();
        self.chain.stats.downstream_rq_active.inc();
        self.requests += 1;
        self.head_started = None;
        let now = clock::now();
        let RequestHead {
            mut headers,
            version,
            keep_alive,
            expect_continue,
            upgrade,
            connect,
            framing,
            ..
        } = head;
        let request = RequestInfo::from_headers(&headers, version);
        let config = &self.chain.config;
        let mut close_after = !keep_alive || self.draining;
        if config.max_requests_per_connection.is_some_and(|max| self.requests >= max) {
            close_after = true;
        }
        if let Some(max) = config.timeouts.max_connection_duration
            && now.saturating_duration_since(self.created) >= max
        {
            close_after = true;
        }
        let end_stream = matches!(framing, BodyFraming::None | BodyFraming::ContentLength(0));

        // Envoy answers `Expect: 100-continue` itself and does not forward it.
        if expect_continue {
            headers.remove("expect");
            if !end_stream {
                self.write_buf.append(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
        }

        let fm = pooled_filter_manager(&self.chain, &self.fm_config);
        let encoder = ResponseEncoder::new(request);
        // ANCHOR: sanitize
        // Header sanitizing before any filter sees the request.
        let mut reject: Option<(u16, &'static str)> = None;
        self.request_context.codec_upgrade = upgrade;
        // An upgrade (or CONNECT) must be allowed by `upgrade_configs`;
        // Envoy refuses others with 403.
        let kind = if connect { Some("CONNECT") } else { utility::is_upgrade(&headers) };
        if (upgrade || connect) && kind.is_none_or(|k| !utility::upgrade_allowed(config, k)) {
            reject = Some((403, "upgrade_failed"));
        }
        if reject.is_none() {
            match path::normalize_path(&mut headers, &config.path_normalization) {
                Ok(path::PathAction::Continue) => {}
                Ok(path::PathAction::Redirect) => {
                    reject = Some((307, "path_normalization_redirect"))
                }
                Err(_) => reject = Some((400, path::RESPONSE_CODE_DETAILS)),
            }
        }
        let listener_port = self.request_context.local_address.port();
        utility::normalize_host(&mut headers, config, listener_port);
        utility::mutate_request_headers(
            &mut headers,
            &self.request_context,
            config,
            &mut crate::random::next_u64,
        );
        // ANCHOR_END: sanitize
        let request_deadline = config.timeouts.request_timeout.map(|t| now + t);
        let upstream = UpstreamRequest::new(self.chain.clone(), self.upstreams.clone(), upgrade);
        let mut stream = Box::new(ActiveStream {
            fm,
            request,
            encoder,
            request_decoded: end_stream && !upgrade,
            request_ended: end_stream && !upgrade,
            held_data: None,
            response_ended: false,
            read_disabled: false,
            upstream,
            timers: Vec::new(),
            last_activity: now,
            request_deadline,
            close_after,
        });
        // A rejected request is answered before its headers are decoded, so
        // the decoder filters stop at once and nothing goes upstream.
        match reject {
            Some((307, details)) => {
                let location = stream_path(&headers);
                stream.fm.send_local_reply(
                    307,
                    "",
                    |h| {
                        if let Ok(v) = HeaderValue::try_from(location) {
                            h.insert(const { HeaderName::from_static("location") }, v);
                        }
                    },
                    details,
                );
                stream.fm.decode_headers(headers, true);
            }
            Some((status, details)) => {
                stream.close_after = true;
                stream.request_decoded = true;
                stream.request_ended = true;
                stream.fm.send_local_reply(status, "", |_| {}, details);
                stream.fm.decode_headers(headers, true);
            }
            None => stream.fm.decode_headers(headers, end_stream && !upgrade),
        }
        self.stream = Some(stream);
    }

    /// Runs the FilterManager's events. Returns whether there were any.
    fn run_stream_events(&mut self) -> bool {
        let Some(s) = &mut self.stream else { return false };
        let mut any = false;
        while let Some(ev) = s.fm.next_event() {
            any = true;
            match ev {
                // ANCHOR: upstream_headers_event
                StreamEvent::UpstreamHeaders { end_stream } => {
                    let random = crate::random::next_u64();
                    s.upstream.start(
                        &mut s.fm,
                        end_stream,
                        random,
                        self.request_context.remote_address,
                    );
                }
                // ANCHOR_END: upstream_headers_event
                StreamEvent::UpstreamData { data, end_stream } => {
                    s.upstream.send_data(&mut s.fm, data, end_stream);
                }
                StreamEvent::UpstreamTrailers => {
                    let trailers = s.fm.request_trailers().cloned().unwrap_or_default();
                    s.upstream.send_trailers(&mut s.fm, trailers);
                }
                StreamEvent::DownstreamInformational(headers) => {
                    let _ = s.encoder.encode_headers(&headers, false, &mut self.write_buf);
                }
                // ANCHOR: downstream_headers_event
                StreamEvent::DownstreamHeaders { end_stream } => {
                    // Finalized in place (moved out and back, no copy), so the
                    // access log sees what went downstream.
                    let mut headers =
                        s.fm.response_headers_mut().map(std::mem::take).unwrap_or_default();
                    utility::mutate_response_headers(
                        &mut headers,
                        s.fm.request_headers(),
                        &self.chain.config,
                    );
                    // A 101 keeps its `connection: upgrade`; the tunnel ends the
                    // connection anyway.
                    let switching = headers.status() == Some(101) && headers.contains("upgrade");
                    if !switching && (s.close_after || self.closing != Closing::No) {
                        headers.insert(
                            const { HeaderName::from_static("connection") },
                            const { HeaderValue::from_static("close") },
                        );
                    }
                    if let Err(e) =
                        s.encoder.encode_headers(&headers, end_stream, &mut self.write_buf)
                    {
                        tracing::debug!("cannot encode response headers: {e}");
                        self.closing = Closing::Abort;
                    }
                    if let Some(slot) = s.fm.response_headers_mut() {
                        *slot = headers;
                    }
                    if end_stream {
                        s.response_ended = true;
                    }
                }
                // ANCHOR_END: downstream_headers_event
                StreamEvent::DownstreamData { mut data, end_stream } => {
                    let mut failed = false;
                    if data.is_empty() {
                        failed |= s
                            .encoder
                            .encode_data(Bytes::new(), end_stream, &mut self.write_buf)
                            .is_err();
                    }
                    while !data.is_empty() {
                        let n = data.front_slice().len();
                        let chunk = data.split_to_bytes(n);
                        let last = end_stream && data.is_empty();
                        failed |= s.encoder.encode_data(chunk, last, &mut self.write_buf).is_err();
                    }
                    if failed {
                        self.closing = Closing::Abort;
                    }
                    if end_stream {
                        s.response_ended = true;
                    }
                }
                StreamEvent::DownstreamTrailers => {
                    let trailers = s.fm.response_trailers().cloned().unwrap_or_default();
                    if s.encoder.encode_trailers(&trailers, &mut self.write_buf).is_err() {
                        self.closing = Closing::Abort;
                    }
                    s.response_ended = true;
                }
                StreamEvent::LocalReply { .. } => {
                    s.upstream.cancel();
                    if !s.request_decoded {
                        // The rest of the request cannot be skipped reliably.
                        s.close_after = true;
                    }
                }
                StreamEvent::StartTimer { timer, after } => {
                    s.timers.retain(|(t, _)| *t != timer);
                    s.timers.push((timer, clock::now() + after));
                }
                StreamEvent::CancelTimer(timer) => s.timers.retain(|(t, _)| *t != timer),
                StreamEvent::DownstreamReadDisable(disable) => s.read_disabled = disable,
                StreamEvent::UpstreamReadDisable(disable) => s.upstream.set_read_disabled(disable),
                StreamEvent::ResetStream { details } => {
                    tracing::debug!("stream reset: {details}");
                    s.upstream.cancel();
                    s.fm.stream_info_mut().set_response_code_details(details);
                    self.closing = Closing::Abort;
                }
            }
        }
        any
    }

    /// Moves upstream response events into the stream.
    fn drive_upstream(&mut self) -> bool {
        let Some(s) = &mut self.stream else { return false };
        let down_room = self.write_buf.len() < self.buffer_limit;
        s.upstream.process(&mut s.fm, down_room)
    }

    fn on_upstream(&mut self, ev: UpstreamEvent) {
        if let Some(s) = &mut self.stream {
            s.last_activity = clock::now();
            s.upstream.on_event(&mut s.fm, ev);
        }
    }

    /// Ends the stream once both directions are done.
    fn complete_stream(&mut self) -> bool {
        let Some(s) = &self.stream else { return false };
        if !s.response_ended {
            return false;
        }
        let request_done = s.request_decoded;
        let Some(s) = self.stream.take() else { return false };
        if !request_done || s.close_after || s.encoder.close_delimited() {
            self.closing = if self.closing == Closing::Abort {
                Closing::Abort
            } else {
                Closing::FlushAndClose
            };
        }
        self.finish_stream(s);
        self.idle_since = clock::now();
        true
    }

    // ANCHOR: finish_stream
    fn finish_stream(&mut self, mut s: Box<ActiveStream>) {
        s.upstream.finish(&mut s.fm);
        s.fm.on_stream_complete();
        let stats = &self.chain.stats;
        stats.downstream_rq_active.dec();
        let info = s.fm.stream_info();
        stats.response(info.response_code.unwrap_or(0));
        stats.downstream_rq_time.record_duration(info.since_start(clock::now().into_std()));
        if !self.chain.access_logs.is_empty() {
            self.chain.access_logs.log(&LogEntry {
                request_headers: s.fm.request_headers(),
                response_headers: s.fm.response_headers(),
                response_trailers: s.fm.response_trailers(),
                stream_info: s.fm.stream_info(),
                protocol: Some(s.request.version.as_str()),
            });
        }
        recycle_filter_manager(s.fm);
    }
    // ANCHOR_END: finish_stream

    // ---------------------------------------------------------------------
    // Timers.

    // ANCHOR: deadlines
    fn next_deadline(&self) -> Option<Instant> {
        let t = &self.config().timeouts;
        let mut next: Option<Instant> = None;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        };
        consider(t.max_connection_duration.map(|d| self.created + d));
        match &self.stream {
            None => {
                consider(t.idle_timeout.map(|d| self.idle_since + d));
                consider(self.idle_close_at.filter(|_| self.head_started.is_none()));
                if let (Some(started), Some(d)) = (self.head_started, t.request_headers_timeout) {
                    consider(Some(started + d));
                }
            }
            Some(s) => {
                consider(t.stream_idle_timeout.map(|d| s.last_activity + d));
                consider(s.request_deadline);
                consider(s.timers.iter().map(|(_, at)| *at).min());
                consider(s.upstream.next_deadline());
            }
        }
        next
    }
    // ANCHOR_END: deadlines

    // ANCHOR: arm_timer
    /// Arms the connection's one timer for the earliest deadline. A later
    /// deadline keeps the timer armed earlier (most requests only move the
    /// deadlines later): it fires early, `on_timers` finds nothing due and the
    /// timer is armed again, one spurious wake-up instead of a timer-wheel
    /// update per request.
    fn arm_timer(&mut self) {
        match self.next_deadline() {
            None => self.timer_at = None,
            Some(at) => {
                if self.timer_at.is_none_or(|armed| armed > at) {
                    self.timer.as_mut().reset(at);
                    self.timer_at = Some(at);
                }
            }
        }
    }
    // ANCHOR_END: arm_timer

    fn on_timers(&mut self) {
        let now = clock::now();
        self.timer_at = None;
        let t = self.config().timeouts;
        if t.max_connection_duration.is_some_and(|d| now >= self.created + d) {
            // Envoy drains: no new request; close once the current one is done.
            if self.closing == Closing::No {
                self.closing = Closing::AfterResponse;
            }
        }
        let Some(s) = &mut self.stream else {
            if t.idle_timeout.is_some_and(|d| now >= self.idle_since + d) {
                self.closing = Closing::FlushAndClose;
            }
            let idle = self.head_started.is_none() && self.read_buf.is_empty();
            if idle && self.idle_close_at.is_some_and(|at| now >= at) {
                // Draining, and still no request: close (Envoy's drain_timeout).
                self.closing = Closing::FlushAndClose;
            }
            if let (Some(started), Some(d)) = (self.head_started, t.request_headers_timeout)
                && now >= started + d
            {
                // 408 for a request whose headers did not arrive in time.
                self.write_local_response(408, "request_header_timeout");
                self.closing = Closing::FlushAndClose;
            }
            return;
        };
        // Filter timers.
        let due: Vec<TimerId> =
            s.timers.iter().filter(|(_, at)| *at <= now).map(|(id, _)| *id).collect();
        for id in due {
            s.timers.retain(|(t, _)| *t != id);
            s.fm.on_timer(id);
        }
        if s.request_deadline.is_some_and(|d| now >= d) {
            s.request_deadline = None;
            s.upstream.cancel();
            local_reply_or_reset(s, 408, "request_overall_timeout", None, &mut self.closing);
            s.close_after = true;
        }
        if t.stream_idle_timeout.is_some_and(|d| now >= s.last_activity + d) {
            s.upstream.cancel();
            s.close_after = true;
            let status = if s.request_decoded { 504 } else { 408 };
            local_reply_or_reset(
                s,
                status,
                "stream_idle_timeout",
                Some(ResponseFlag::StreamIdleTimeout),
                &mut self.closing,
            );
        }
        s.upstream.on_timer(&mut s.fm, now);
    }
}

impl ActiveStream {
    fn fm_has_events(&self) -> bool {
        self.fm.has_pending_events()
    }
}

/// Finished streams' FilterManagers a worker keeps for reuse (at most this many).
const FILTER_MANAGER_POOL_LIMIT: usize = 64;

thread_local! {
    /// FilterManagers of finished streams, cleared: a new stream reuses one
    /// (its chain slots and event queues) instead of allocating its own.
    // Boxed on purpose: a stream takes and returns one as a pointer move.
    #[allow(clippy::vec_box)]
    static FILTER_MANAGERS: RefCell<Vec<Box<FilterManager>>> = const { RefCell::new(Vec::new()) };
}

/// A FilterManager for a new stream of `chain`: one from this worker's pool, or a new one.
fn pooled_filter_manager(chain: &HttpChain, config: &FilterManagerConfig) -> Box<FilterManager> {
    match FILTER_MANAGERS.with(|pool| pool.borrow_mut().pop()) {
        Some(mut fm) => {
            fm.reset(chain.filters.chain_filters(), config);
            fm
        }
        None => Box::new(FilterManager::new(chain.filters.chain_filters(), config)),
    }
}

/// Gives a finished stream's FilterManager back to this worker's pool
/// (cleared, so it holds no filter, route or configuration while pooled).
fn recycle_filter_manager(mut fm: Box<FilterManager>) {
    fm.clear();
    FILTER_MANAGERS.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < FILTER_MANAGER_POOL_LIMIT {
            pool.push(fm);
        }
    });
}

/// A local reply when the response has not started, else a reset.
fn local_reply_or_reset(
    s: &mut ActiveStream,
    status: u16,
    details: &'static str,
    flag: Option<ResponseFlag>,
    closing: &mut Closing,
) {
    if let Some(flag) = flag {
        s.fm.stream_info_mut().set_response_flag(flag);
    }
    if s.fm.response_started() {
        s.fm.stream_info_mut().set_response_code_details(details);
        *closing = Closing::Abort;
    } else {
        s.fm.send_local_reply(status, "", |_| {}, details);
    }
}

fn stream_path(headers: &HeaderMap) -> String {
    headers.path().unwrap_or("/").to_string()
}
