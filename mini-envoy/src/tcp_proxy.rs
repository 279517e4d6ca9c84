//! # `envoy.filters.network.tcp_proxy`: one downstream connection
//!
//! The I/O shell around week 3's sans-IO [`TcpProxySession`], as Envoy's
//! `TcpProxy::Filter`. A worker runs one task per downstream connection; the
//! task picks the cluster (weighted clusters included), takes the cluster's
//! `max_connections` circuit breaker, picks a host with the worker's load
//! balancer (source-IP hash when configured) and connects a fresh upstream
//! socket (tcp_proxy does not share the HTTP pool). Then bytes flow both ways:
//!
//! ```text
//!  downstream ─read─► session.on_downstream_data ─► to_upstream ─write─► upstream
//!  downstream ◄─write─ to_downstream ◄─ session.on_upstream_data ◄─read─ upstream
//!  EOF on one side ─► shutdown(Write) on the other once its buffer is written
//! ```
//!
//! - Backpressure: a side is not read while the other side's write buffer
//!   is full (Envoy's per-connection buffer watermarks): bytes for upstream
//!   up to the cluster's `per_connection_buffer_limit_bytes`, bytes for
//!   downstream up to the listener's (both 1 MiB by default).
//! - Half-close: the connection ends when both directions have ended and
//!   been written; a reset on one side flushes what is buffered for the
//!   other side, then closes it (Envoy's `FlushWrite`).
//! - Connect failures and timeouts (`connect_timeout`) retry up to
//!   `max_connect_attempts`, avoiding hosts already tried, then close with
//!   `UF`; no host is `UH`, circuit breaker overflow `UO`, an unknown cluster
//!   `NC`.
//! - Idle timeout (default 1 h; any byte read or written re-arms it) and
//!   `max_downstream_connection_duration` (`DT`) close both sides at once.
//! - One access-log entry per connection when it closes; Envoy's
//!   `tcp.<stat_prefix>.*` stats ([`crate::stats::TcpProxyStats`]).
//!
//! As in Envoy, the downstream is not read until the upstream is connected.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use week1_core::cluster::{Host, ResourceGuard, RoutingPriority};
use week3_filters::buffer::Buffer;
use week3_filters::http::{ConnectionInfo, ResponseFlag, StreamInfo};
use week3_filters::network::tcp_proxy::{SessionState, TcpAction, TcpProxySession};

use week3_filters::network::tcp_proxy::{CLOSE_IDLE_TIMEOUT, CLOSE_MAX_DURATION};

use crate::access_log::LogEntry;
use crate::snapshot::TcpChain;
use crate::stats::{ClusterStats, UpstreamConnectionStats};
use crate::upstream::{ConnectionGuard, LbContext, WorkerUpstreams};

/// Envoy's default `per_connection_buffer_limit_bytes` (1 MiB).
pub const BUFFER_LIMIT: usize = week3_filters::http::DEFAULT_BUFFER_LIMIT;

/// Bytes read from a socket per `read` call.
const READ_SIZE: usize = 64 * 1024;

/// Extra load-balancer picks to avoid a host that already failed to connect.
const HOST_SELECTION_RETRIES: u32 = 3;

/// Serves one downstream connection with tcp_proxy until both sides close.
/// `buffer_limit` is the listener's `per_connection_buffer_limit_bytes`.
pub async fn serve_connection(
    io: TcpStream,
    connection: ConnectionInfo,
    chain: Arc<TcpChain>,
    upstreams: Rc<WorkerUpstreams>,
    buffer_limit: usize,
    drain: Option<week4_xds::drain::ConnectionGuard>,
) {
    let _ = io.set_nodelay(true);
    let mut proxy = Proxy::new(io, connection, chain, upstreams);
    proxy.downstream_limit = buffer_limit.max(1);
    proxy.drain = drain;
    proxy.run().await;
    proxy.log();
    proxy.account(0, 0);
}

/// The two sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Downstream,
    Upstream,
}

/// One direction of the byte stream, from a source socket to a sink socket.
#[derive(Debug, Default)]
struct Direction {
    /// Read from the source, not yet written to the sink.
    pending: Buffer,
    /// The source sent EOF, failed, or is no longer read.
    source_done: bool,
    /// Shut down the sink's write side once `pending` is written.
    end: bool,
    /// The sink's write side is shut down (or the sink failed).
    sink_done: bool,
}

/// An upstream connect in progress.
struct Connecting {
    future: Pin<Box<dyn Future<Output = io::Result<TcpStream>>>>,
    host: Arc<Host>,
    resource: ResourceGuard,
    /// `cluster.<name>.upstream_cx_*`.
    stats: Arc<ClusterStats>,
    started: std::time::Instant,
}

/// An open upstream connection.
struct Upstream {
    io: TcpStream,
    _guard: ConnectionGuard,
    /// Counts it in `upstream_cx_active` (and `upstream_cx_destroy` when dropped).
    _stats: UpstreamConnectionStats,
}

/// What woke the connection task.
enum Wake {
    Readable(Side),
    Writable,
    Connected(io::Result<TcpStream>),
    Timer,
    Io(Side, io::Error),
    /// The listener's drain time is over: close both sides.
    ForceClose,
}

/// One proxied connection (Envoy's `TcpProxy::Filter`).
struct Proxy {
    chain: Arc<TcpChain>,
    upstreams: Rc<WorkerUpstreams>,
    downstream: TcpStream,
    upstream: Option<Upstream>,
    connecting: Option<Connecting>,
    session: TcpProxySession,
    to_upstream: Direction,
    to_downstream: Direction,
    /// Hosts that failed to connect.
    tried: Vec<SocketAddr>,
    hash: Option<u64>,
    read_space: BytesMut,
    /// Why the connection is closed at once (no flush).
    abort: Option<&'static str>,
    info: StreamInfo,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    /// Counts this connection in its listener's drain, which closes it at
    /// the drain deadline (a byte stream has no graceful way to ask).
    drain: Option<week4_xds::drain::ConnectionGuard>,
    /// Bytes for downstream held at most (the listener's buffer limit).
    downstream_limit: usize,
    /// Bytes for upstream held at most (the cluster's buffer limit).
    upstream_limit: usize,
    /// What this connection adds to `downstream_cx_{rx,tx}_bytes_buffered`.
    buffered: (usize, usize),
    /// Downstream reads are paused by a full upstream buffer.
    paused: bool,
}

/// The session's clock is `std`'s; reading it through tokio keeps tests
/// with paused time deterministic.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Proxy {
    fn new(
        downstream: TcpStream,
        connection: ConnectionInfo,
        chain: Arc<TcpChain>,
        upstreams: Rc<WorkerUpstreams>,
    ) -> Self {
        let start = now();
        let hash = chain.config.hash_key(connection.remote_address.map(|a| a.ip()));
        let mut info = StreamInfo::new(start, SystemTime::now());
        info.connection = connection;
        let (session, first) =
            TcpProxySession::start(&chain.config, crate::random::next_u64(), start);
        let mut proxy = Self {
            chain,
            upstreams,
            downstream,
            upstream: None,
            connecting: None,
            session,
            to_upstream: Direction::default(),
            to_downstream: Direction::default(),
            tried: Vec::new(),
            hash,
            read_space: BytesMut::new(),
            abort: None,
            info,
            timer: Box::pin(tokio::time::sleep_until(Instant::from_std(start))),
            timer_at: None,
            drain: None,
            downstream_limit: BUFFER_LIMIT,
            upstream_limit: BUFFER_LIMIT,
            buffered: (0, 0),
            paused: false,
        };
        proxy.chain.stats.downstream_cx_total.inc();
        proxy.apply(first);
        proxy
    }

    async fn run(&mut self) {
        loop {
            if self.abort.is_some() {
                break;
            }
            self.flush(Side::Upstream);
            self.flush(Side::Downstream);
            if self.abort.is_some() || self.finished() {
                break;
            }
            self.arm_timer();
            let (rx, tx) = (self.to_upstream.pending.len(), self.to_downstream.pending.len());
            self.account(rx, tx);
            self.flow_control();
            match self.wait().await {
                Some(Wake::Readable(side)) => self.read(side),
                Some(Wake::Writable) => {}
                Some(Wake::Connected(result)) => self.on_connected(result),
                Some(Wake::Timer) => self.on_timer(),
                Some(Wake::Io(side, e)) => self.fail(side, &e),
                Some(Wake::ForceClose) => self.abort = Some("drain time over"),
                None => self.abort = Some("nothing left to wait for"),
            }
        }
        if let Some(reason) = self.abort {
            tracing::debug!("tcp_proxy: closing connection: {reason}");
        }
    }

    /// Does what the session asked for.
    fn apply(&mut self, action: TcpAction) {
        match action {
            TcpAction::None => {}
            TcpAction::Connect(cluster) => self.connect(&cluster),
            TcpAction::WriteUpstream(mut data, end_stream) => {
                self.to_upstream.pending.move_from(&mut data);
                self.to_upstream.end |= end_stream;
            }
            TcpAction::Close(reason) => self.abort = Some(reason),
        }
    }

    // ---------------------------------------------------------------------
    // Connecting.

    /// Starts a connect attempt to a host of `cluster`.
    fn connect(&mut self, cluster: &str) {
        let Some(entry) = self.chain.clusters.get(cluster) else {
            self.chain.stats.downstream_cx_no_route.inc();
            let action = self.session.on_no_upstream(ResponseFlag::NoClusterFound);
            return self.apply(action);
        };
        self.info.upstream_cluster = Some(entry.info.name.clone());
        self.upstream_limit = (entry.info.per_connection_buffer_limit_bytes as usize).max(1);
        let breakers = entry.info.circuit_breakers.for_priority(RoutingPriority::Default);
        let Ok(resource) = breakers.connections().try_acquire() else {
            let action = self.session.on_no_upstream(ResponseFlag::UpstreamOverflow);
            return self.apply(action);
        };
        let mut ctx = LbContext {
            hash: self.hash,
            avoid: &self.tried,
            selection_retries: if self.tried.is_empty() { 0 } else { HOST_SELECTION_RETRIES },
        };
        let Some(host) = self.upstreams.choose_host(&entry, &mut ctx) else {
            let action = self.session.on_no_upstream(ResponseFlag::NoHealthyUpstream);
            return self.apply(action);
        };
        let address = host.address();
        host.stats().cx_total.fetch_add(1, Ordering::Relaxed);
        let stats = entry.pool.stats.clone();
        stats.upstream_cx_total.inc();
        self.info.upstream_host = Some(address);
        let timeout = entry.info.connect_timeout;
        let future = Box::pin(async move {
            match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timeout")),
            }
        });
        let started = now();
        self.connecting = Some(Connecting { future, host, resource, stats, started });
    }

    fn on_connected(&mut self, result: io::Result<TcpStream>) {
        let Some(Connecting { host, resource, stats, started, .. }) = self.connecting.take() else {
            return;
        };
        match result {
            Ok(io) => {
                let _ = io.set_nodelay(true);
                stats
                    .upstream_cx_connect_ms
                    .record_duration(now().saturating_duration_since(started));
                self.upstream = Some(Upstream {
                    io,
                    _guard: ConnectionGuard::new(host, resource),
                    _stats: UpstreamConnectionStats::new(&stats),
                });
                let action = self.session.on_upstream_connected(now());
                self.apply(action);
            }
            Err(e) => {
                tracing::debug!("tcp_proxy: connect to {}: {e}", host.address());
                host.stats().cx_connect_fail.fetch_add(1, Ordering::Relaxed);
                stats.upstream_cx_connect_fail.inc();
                if e.kind() == io::ErrorKind::TimedOut {
                    stats.upstream_cx_connect_timeout.inc();
                }
                self.tried.push(host.address());
                drop(resource);
                let action = self.session.on_upstream_connect_failed();
                self.apply(action);
            }
        }
    }

    // ---------------------------------------------------------------------
    // Bytes.

    /// The direction read from `side`.
    fn read_from(&mut self, side: Side) -> &mut Direction {
        match side {
            Side::Downstream => &mut self.to_upstream,
            Side::Upstream => &mut self.to_downstream,
        }
    }

    /// The direction written to `side`.
    fn written_to(&mut self, side: Side) -> &mut Direction {
        match side {
            Side::Downstream => &mut self.to_downstream,
            Side::Upstream => &mut self.to_upstream,
        }
    }

    fn wants_read(&self, side: Side) -> bool {
        let (dir, limit) = match side {
            Side::Downstream => (&self.to_upstream, self.upstream_limit),
            Side::Upstream => (&self.to_downstream, self.downstream_limit),
        };
        self.upstream.is_some()
            && !dir.source_done
            && !dir.sink_done
            && dir.pending.len() < limit
            && self.session.state() != SessionState::Closed
    }

    /// Moves this connection's share of the `*_bytes_buffered` gauges to
    /// `rx` (read from downstream, not yet upstream) and `tx` (for downstream).
    fn account(&mut self, rx: usize, tx: usize) {
        let stats = &self.chain.stats;
        let (old_rx, old_tx) = self.buffered;
        stats.downstream_cx_rx_bytes_buffered.add(rx as i64 - old_rx as i64);
        stats.downstream_cx_tx_bytes_buffered.add(tx as i64 - old_tx as i64);
        self.buffered = (rx, tx);
    }

    /// Counts pauses and resumptions of downstream reads by a full upstream
    /// buffer (Envoy's `downstream_flow_control_*_reading_total`).
    fn flow_control(&mut self) {
        let dir = &self.to_upstream;
        let full = self.upstream.is_some()
            && !dir.source_done
            && !dir.sink_done
            && dir.pending.len() >= self.upstream_limit;
        if full != self.paused {
            self.paused = full;
            let stats = &self.chain.stats;
            let counter = if full {
                &stats.downstream_flow_control_paused_reading_total
            } else {
                &stats.downstream_flow_control_resumed_reading_total
            };
            counter.inc();
        }
    }

    /// Reads what `side` has, until it would block or the other side's
    /// buffer is full.
    fn read(&mut self, side: Side) {
        while self.wants_read(side) {
            if self.read_space.capacity() < 1024 {
                self.read_space.reserve(READ_SIZE);
            }
            let io = match (side, &self.upstream) {
                (Side::Downstream, _) => &self.downstream,
                (Side::Upstream, Some(u)) => &u.io,
                (Side::Upstream, None) => return,
            };
            let result = io.try_read_buf(&mut self.read_space);
            let now = now();
            if side == Side::Downstream
                && let Ok(n) = result
            {
                self.chain.stats.downstream_cx_rx_bytes_total.add(n as u64);
            }
            match result {
                Ok(0) => {
                    let dir = self.read_from(side);
                    dir.source_done = true;
                    dir.end = true;
                    let action = match side {
                        Side::Downstream => {
                            self.session.on_downstream_data(&mut Buffer::new(), true, now)
                        }
                        // Both sides ended: the connection closes once the
                        // buffers are written, which `finished` sees.
                        Side::Upstream => {
                            let _ = self.session.on_upstream_data(&Buffer::new(), true, now);
                            TcpAction::None
                        }
                    };
                    return self.apply(action);
                }
                Ok(_) => {
                    let mut data = Buffer::from(self.read_space.split().freeze());
                    match side {
                        Side::Downstream => {
                            let action = self.session.on_downstream_data(&mut data, false, now);
                            self.apply(action);
                        }
                        Side::Upstream => {
                            let action = self.session.on_upstream_data(&data, false, now);
                            self.to_downstream.pending.move_from(&mut data);
                            self.apply(action);
                        }
                    }
                    #[cfg(test)]
                    probe::record(self.read_from(side).pending.len());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => return self.fail(side, &e),
            }
        }
    }

    /// Writes what `side` takes; shuts its write side down after the last
    /// byte when the other side ended.
    fn flush(&mut self, side: Side) {
        let (io, dir) = match (side, &self.upstream) {
            (Side::Downstream, _) => (&self.downstream, &mut self.to_downstream),
            (Side::Upstream, Some(u)) => (&u.io, &mut self.to_upstream),
            (Side::Upstream, None) => return,
        };
        if dir.sink_done {
            return;
        }
        let mut wrote = false;
        let mut result = Ok(());
        while !dir.pending.is_empty() {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = dir.pending.chunks_vectored(&mut slices);
            match io.try_write_vectored(&slices[..n]) {
                Ok(0) => {
                    result = Err(io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(written) => {
                    dir.pending.advance(written);
                    wrote = true;
                    if side == Side::Downstream {
                        self.chain.stats.downstream_cx_tx_bytes_total.add(written as u64);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() && dir.pending.is_empty() && dir.end {
            result = socket2::SockRef::from(io).shutdown(Shutdown::Write);
            dir.sink_done = true;
        }
        if wrote {
            self.session.on_bytes_written(now());
        }
        if let Err(e) = result {
            self.fail(side, &e);
        }
    }

    /// `side` reset or failed: nothing more is read from or written to it;
    /// what was read from it still goes to the other side, which then closes.
    fn fail(&mut self, side: Side, e: &io::Error) {
        tracing::debug!("tcp_proxy: {side:?} connection: {e}");
        let to = self.written_to(side);
        to.pending.clear();
        to.source_done = true;
        to.sink_done = true;
        let from = self.read_from(side);
        from.source_done = true;
        from.end = true;
    }

    /// Both directions ended and were written.
    fn finished(&self) -> bool {
        self.to_upstream.sink_done && self.to_downstream.sink_done
    }

    // ---------------------------------------------------------------------
    // Waiting and timers.

    async fn wait(&mut self) -> Option<Wake> {
        let read_down = self.wants_read(Side::Downstream);
        let read_up = self.wants_read(Side::Upstream);
        let write_down = !self.to_downstream.pending.is_empty() && !self.to_downstream.sink_done;
        let write_up = !self.to_upstream.pending.is_empty() && !self.to_upstream.sink_done;
        let down = &self.downstream;
        let up = self.upstream.as_ref().map(|u| &u.io);
        let connecting = self.connecting.as_mut().map(|c| c.future.as_mut());
        let is_connecting = connecting.is_some();
        let timer_armed = self.timer_at.is_some();
        let timer = &mut self.timer;
        let connect = async move {
            match connecting {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        let drain = self.drain.as_mut();
        let has_drain = drain.is_some();
        let force_closed = async move {
            match drain {
                Some(guard) => guard.force_closed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = force_closed, if has_drain => Some(Wake::ForceClose),
            r = connect, if is_connecting => Some(Wake::Connected(r)),
            r = down.readable(), if read_down => Some(ready(Side::Downstream, r, true)),
            r = down.writable(), if write_down => Some(ready(Side::Downstream, r, false)),
            r = readiness(up, true), if read_up => Some(ready(Side::Upstream, r, true)),
            r = readiness(up, false), if write_up => Some(ready(Side::Upstream, r, false)),
            () = timer.as_mut(), if timer_armed => Some(Wake::Timer),
            else => None,
        }
    }

    fn arm_timer(&mut self) {
        let next = self.session.next_deadline().map(Instant::from_std);
        if next != self.timer_at {
            if let Some(at) = next {
                self.timer.as_mut().reset(at);
            }
            self.timer_at = next;
        }
    }

    fn on_timer(&mut self) {
        self.timer_at = None;
        let now = now();
        let action = self.session.on_timer(now);
        if let TcpAction::Close(reason) = &action {
            let stats = &self.chain.stats;
            match *reason {
                CLOSE_IDLE_TIMEOUT => stats.idle_timeout.inc(),
                CLOSE_MAX_DURATION => stats.max_downstream_connection_duration.inc(),
                _ => {}
            }
        }
        if self.session.state() == SessionState::Closed
            && matches!(action, TcpAction::None)
            && self.session.next_deadline().is_some_and(|d| now >= d)
        {
            // Both sides ended, but the last bytes are not taken in time.
            self.abort = Some("timeout while flushing");
        }
        self.apply(action);
    }

    // ---------------------------------------------------------------------
    // Access log.

    fn log(&mut self) {
        if self.chain.access_logs.is_empty() {
            return;
        }
        let s = &self.session;
        self.info.bytes_received = s.bytes_received;
        self.info.bytes_sent = s.bytes_sent;
        self.info.response_flags = s.flags;
        self.info.completed = Some(now().saturating_duration_since(self.info.start));
        self.chain.access_logs.log(&LogEntry {
            request_headers: None,
            response_headers: None,
            response_trailers: None,
            stream_info: &self.info,
            protocol: None,
        });
    }
}

/// What a readiness wait on `side` (`read`: readable) reports.
fn ready(side: Side, r: io::Result<()>, read: bool) -> Wake {
    match r {
        Ok(()) if read => Wake::Readable(side),
        Ok(()) => Wake::Writable,
        Err(e) => Wake::Io(side, e),
    }
}

/// Waits until the upstream socket is readable (`read`) or writable.
async fn readiness(io: Option<&TcpStream>, read: bool) -> io::Result<()> {
    match io {
        Some(io) if read => io.readable().await,
        Some(io) => io.writable().await,
        None => std::future::pending().await,
    }
}

/// The largest per-direction buffer a test's proxies held.
#[cfg(test)]
mod probe {
    use std::cell::Cell;

    thread_local! {
        static MAX_PENDING: Cell<usize> = const { Cell::new(0) };
    }

    pub fn record(len: usize) {
        MAX_PENDING.with(|m| m.set(m.get().max(len)));
    }

    pub fn max_pending() -> usize {
        MAX_PENDING.with(Cell::get)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::LocalSet;
    use week1_core::cluster::system_resolver;

    use super::*;
    use crate::access_log::{AccessLogManager, flush_thread_buffers};
    use crate::cluster_manager::{ClusterSource, static_cluster_map};
    use crate::snapshot::{ChainTerminal, Snapshot};
    use week4_xds::drain::DrainManager;

    /// A proxy on loopback serving every connection with one tcp_proxy chain.
    struct Harness {
        addr: SocketAddr,
        chain: Arc<TcpChain>,
        store: crate::stats::Store,
        log: PathBuf,
        _dir: tempfile::TempDir,
    }

    /// The access-log line each test checks (a YAML escape ends it with `\n`).
    const LOG_FORMAT: &str =
        "%RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_HOST% %UPSTREAM_CLUSTER%\\n";

    /// `proxy` and `cluster` are extra YAML lines for the TcpProxy (indented
    /// 10) and the cluster (indented 4).
    fn config(hosts: &[SocketAddr], proxy: &str, cluster: &str, log: &std::path::Path) -> String {
        let endpoints = if hosts.is_empty() {
            "      endpoints: []\n".to_string()
        } else {
            let mut e = "      endpoints:\n      - lb_endpoints:\n".to_string();
            for h in hosts {
                let (ip, port) = (h.ip(), h.port());
                e += "        - endpoint: {address: {socket_address: ";
                e += &format!("{{address: {ip}, port_value: {port}}}}}}}\n");
            }
            e
        };
        format!(
            r#"static_resources:
  listeners:
  - name: tcp
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: backend
{proxy}          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {log}
              log_format: {{text_format_source: {{inline_string: "{LOG_FORMAT}"}}}}
  clusters:
  - name: backend
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
{cluster}    load_assignment:
      cluster_name: backend
{endpoints}"#,
            log = log.display()
        )
    }

    /// Loads the config through the week 1 loader and the snapshot builder,
    /// and serves its listener's tcp_proxy chain (must run in a `LocalSet`).
    async fn start(hosts: &[SocketAddr], proxy: &str, cluster: &str) -> Harness {
        start_draining(hosts, proxy, cluster, None).await
    }

    /// [`start`], each connection tracked by `drain`.
    async fn start_draining(
        hosts: &[SocketAddr],
        proxy: &str,
        cluster: &str,
        drain: Option<DrainManager>,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let yaml = config(hosts, proxy, cluster, &log);
        let bootstrap = week1_core::config::load_bootstrap(&yaml).unwrap();
        let store = crate::stats::Store::default();
        let clusters =
            static_cluster_map(bootstrap.clusters(), &store, &mut |h, p| system_resolver(h, p))
                .unwrap();
        let source = ClusterSource::Fixed(Arc::new(clusters));
        let snapshot =
            Snapshot::build(&bootstrap, &AccessLogManager::new(), &source, &store).unwrap();
        let ChainTerminal::Tcp(chain) = &snapshot.listeners[0].chains[0].terminal else {
            panic!("the listener's chain is not a tcp_proxy");
        };
        let chain = chain.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstreams = Rc::new(WorkerUpstreams::default());
        let serving = chain.clone();
        tokio::task::spawn_local(async move {
            let mut id = 0;
            while let Ok((io, remote)) = listener.accept().await {
                id += 1;
                let connection = ConnectionInfo {
                    id,
                    remote_address: Some(remote),
                    local_address: io.local_addr().ok(),
                };
                let guard = drain.as_ref().map(DrainManager::track);
                let task = serve_connection(
                    io,
                    connection,
                    serving.clone(),
                    upstreams.clone(),
                    BUFFER_LIMIT,
                    guard,
                );
                tokio::task::spawn_local(task);
            }
        });
        Harness { addr, chain, store, log, _dir: dir }
    }

    impl Harness {
        fn host(&self, addr: SocketAddr) -> Arc<Host> {
            let cluster = self.chain.clusters.get("backend").unwrap();
            let hosts = cluster.priority_set.host_sets()[0].hosts();
            hosts.iter().find(|h| h.address() == addr).cloned().unwrap()
        }

        /// Waits until every upstream connection is closed: the proxy tasks
        /// wrote their access-log entries before dropping them.
        async fn settle(&self) {
            let cluster = self.chain.clusters.get("backend").unwrap();
            let hosts = cluster.priority_set.host_sets()[0].hosts().to_vec();
            while hosts.iter().any(|h| h.stats().cx_active() > 0) {
                tokio::task::yield_now().await;
            }
        }

        /// A `tcp.t.*` counter or gauge (`cluster.backend.*` with that prefix).
        fn stat(&self, name: &str) -> i64 {
            let name = if name.starts_with("cluster.") {
                name.to_string()
            } else {
                format!("tcp.t.{name}")
            };
            let counter = self.store.counter_value(&name).map(|v| v as i64);
            counter.or_else(|| self.store.gauge_value(&name)).unwrap()
        }

        fn log_lines(&self) -> Vec<String> {
            flush_thread_buffers();
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            text.lines().map(str::to_string).collect()
        }
    }

    /// An echo server; it half-closes when the client does.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::task::spawn_local(async move {
            while let Ok((mut io, _)) = listener.accept().await {
                tokio::task::spawn_local(async move {
                    let (mut r, mut w) = io.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });
        addr
    }

    /// An address nothing listens on (connections are refused).
    async fn dead_address() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    async fn echo_once(proxy: SocketAddr, msg: &[u8]) -> Vec<u8> {
        let mut c = TcpStream::connect(proxy).await.unwrap();
        c.write_all(msg).await.unwrap();
        c.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        back
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn echoes_through_the_proxy_and_logs_the_connection() {
        LocalSet::new()
            .run_until(async {
                let echo = echo_server().await;
                let h = start(&[echo], "", "").await;
                let mut c = TcpStream::connect(h.addr).await.unwrap();
                c.write_all(b"hello").await.unwrap();
                let mut buf = [0u8; 5];
                c.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"hello");
                c.write_all(b", world").await.unwrap();
                c.shutdown().await.unwrap();
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).await.unwrap();
                assert_eq!(rest, b", world");
                h.settle().await;
                let host = h.host(echo);
                assert_eq!(host.stats().cx_total.load(Ordering::Relaxed), 1);
                assert_eq!(host.stats().cx_active(), 0);
                assert_eq!(h.log_lines(), [format!("- 12 12 {echo} backend")]);
                // Envoy's tcp.<stat_prefix>.* stats.
                assert_eq!(h.stat("downstream_cx_total"), 1);
                assert_eq!(h.stat("downstream_cx_rx_bytes_total"), 12);
                assert_eq!(h.stat("downstream_cx_tx_bytes_total"), 12);
                assert_eq!(h.stat("downstream_cx_rx_bytes_buffered"), 0);
                assert_eq!(h.stat("downstream_cx_tx_bytes_buffered"), 0);
                assert_eq!(h.stat("downstream_cx_no_route"), 0);
                // The cluster counts tcp_proxy's upstream connections too.
                assert_eq!(h.stat("cluster.backend.upstream_cx_total"), 1);
                assert_eq!(h.stat("cluster.backend.upstream_cx_active"), 0);
                assert_eq!(h.stat("cluster.backend.upstream_cx_destroy"), 1);
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn large_transfers_stream_both_ways_with_bounded_buffers() {
        LocalSet::new()
            .run_until(async {
                let echo = echo_server().await;
                let h = start(&[echo], "", "").await;
                let sent = pattern(8 << 20, 7);
                let c = TcpStream::connect(h.addr).await.unwrap();
                let (mut r, mut w) = c.into_split();
                let data = sent.clone();
                let writer = tokio::task::spawn_local(async move {
                    w.write_all(&data).await.unwrap();
                    w.shutdown().await.unwrap();
                });
                let mut back = Vec::new();
                r.read_to_end(&mut back).await.unwrap();
                writer.await.unwrap();
                assert!(back == sent, "8 MiB came back intact ({} bytes)", back.len());
                assert!(probe::max_pending() <= BUFFER_LIMIT + 2 * READ_SIZE);
                h.settle().await;
                let n = sent.len();
                assert_eq!(h.log_lines(), [format!("- {n} {n} {echo} backend")]);
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stalled_upstream_stops_downstream_reads_at_the_clusters_buffer_limit() {
        LocalSet::new()
            .run_until(async {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let upstream = listener.local_addr().unwrap();
                let (go, wait) = tokio::sync::oneshot::channel::<()>();
                let server = tokio::task::spawn_local(async move {
                    let (mut io, _) = listener.accept().await.unwrap();
                    let _ = wait.await;
                    let mut got = Vec::new();
                    io.read_to_end(&mut got).await.unwrap();
                    got
                });
                // The cluster's per_connection_buffer_limit_bytes bounds the
                // bytes held for upstream (Envoy's upstream write watermark).
                const LIMIT: usize = 256 * 1024;
                let h =
                    start(&[upstream], "", "    per_connection_buffer_limit_bytes: 262144\n").await;
                let sent = pattern(64 << 20, 3);
                let mut c = TcpStream::connect(h.addr).await.unwrap();
                let data = sent.clone();
                let writer = tokio::task::spawn_local(async move {
                    c.write_all(&data).await.unwrap();
                    c.shutdown().await.unwrap();
                    c
                });
                // The kernel buffers fill, then the proxy's buffer does.
                while probe::max_pending() < LIMIT && !writer.is_finished() {
                    tokio::task::yield_now().await;
                }
                assert!(
                    !writer.is_finished(),
                    "64 MiB cannot fit while the upstream reads nothing"
                );
                for _ in 0..1000 {
                    tokio::task::yield_now().await;
                }
                assert!(probe::max_pending() <= LIMIT + 2 * READ_SIZE);
                go.send(()).unwrap();
                let got = server.await.unwrap();
                let _client = writer.await.unwrap();
                assert!(got == sent, "all bytes arrive in order ({} bytes)", got.len());
                h.settle().await;
                assert!(h.stat("downstream_flow_control_paused_reading_total") >= 1);
                assert_eq!(
                    h.stat("downstream_flow_control_paused_reading_total"),
                    h.stat("downstream_flow_control_resumed_reading_total"),
                    "every pause was resumed"
                );
                assert_eq!(h.stat("downstream_cx_rx_bytes_total"), sent.len() as i64);
                assert_eq!(h.stat("downstream_cx_rx_bytes_buffered"), 0);
                assert!(probe::max_pending() <= LIMIT + 2 * READ_SIZE);
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn half_close_propagates_both_ways() {
        LocalSet::new()
            .run_until(async {
                // Downstream half-closes first; the upstream answers after EOF.
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let upstream = listener.local_addr().unwrap();
                let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
                tokio::task::spawn_local(async move {
                    let (mut io, _) = listener.accept().await.unwrap();
                    let mut request = Vec::new();
                    io.read_to_end(&mut request).await.unwrap();
                    io.write_all(format!("got {} bytes", request.len()).as_bytes()).await.unwrap();
                    io.shutdown().await.unwrap();
                    // Upstream half-closes first; the downstream still sends.
                    let (mut io, _) = listener.accept().await.unwrap();
                    io.write_all(b"hello").await.unwrap();
                    io.shutdown().await.unwrap();
                    let mut late = Vec::new();
                    io.read_to_end(&mut late).await.unwrap();
                    let _ = seen_tx.send(late);
                });
                let h = start(&[upstream], "", "").await;
                assert_eq!(echo_once(h.addr, b"ping").await, b"got 4 bytes");

                let mut c = TcpStream::connect(h.addr).await.unwrap();
                let mut greeting = Vec::new();
                c.read_to_end(&mut greeting).await.unwrap();
                assert_eq!(greeting, b"hello");
                c.write_all(b"still here").await.unwrap();
                c.shutdown().await.unwrap();
                assert_eq!(seen_rx.await.unwrap(), b"still here");
                h.settle().await;
                let host = h.host(upstream);
                assert_eq!(host.stats().cx_total.load(Ordering::Relaxed), 2);
                assert_eq!(
                    h.log_lines(),
                    [format!("- 4 11 {upstream} backend"), format!("- 10 5 {upstream} backend")]
                );
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connect_failures_retry_on_another_host() {
        LocalSet::new()
            .run_until(async {
                let dead = dead_address().await;
                let echo = echo_server().await;
                let h = start(&[dead, echo], "          max_connect_attempts: 2\n", "").await;
                // Round robin: one of two connections starts on the dead host.
                for msg in [&b"one"[..], b"two"] {
                    assert_eq!(echo_once(h.addr, msg).await, msg);
                }
                h.settle().await;
                assert!(h.host(dead).stats().cx_connect_fail.load(Ordering::Relaxed) >= 1);
                assert_eq!(h.host(echo).stats().cx_total.load(Ordering::Relaxed), 2);
                assert_eq!(h.host(echo).stats().cx_connect_fail.load(Ordering::Relaxed), 0);
                let fails = h.host(dead).stats().cx_connect_fail.load(Ordering::Relaxed) as i64;
                assert_eq!(h.stat("cluster.backend.upstream_cx_connect_fail"), fails);
                assert_eq!(h.stat("cluster.backend.upstream_cx_total"), 2 + fails);
                let line = format!("- 3 3 {echo} backend");
                assert_eq!(h.log_lines(), [line.clone(), line]);
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connect_failure_closes_the_downstream_with_uf() {
        LocalSet::new()
            .run_until(async {
                let dead = dead_address().await;
                let h = start(&[dead], "          max_connect_attempts: 3\n", "").await;
                let mut c = TcpStream::connect(h.addr).await.unwrap();
                let mut got = Vec::new();
                let _ = c.read_to_end(&mut got).await;
                assert!(got.is_empty());
                let stats = h.host(dead);
                assert_eq!(stats.stats().cx_connect_fail.load(Ordering::Relaxed), 3);
                assert_eq!(stats.stats().cx_total.load(Ordering::Relaxed), 3);
                assert_eq!(stats.stats().cx_active(), 0);
                assert_eq!(h.log_lines(), [format!("UF 0 0 {dead} backend")]);
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn no_host_is_uh_and_breaker_overflow_is_uo() {
        LocalSet::new()
            .run_until(async {
                let h = start(&[], "", "").await;
                let mut c = TcpStream::connect(h.addr).await.unwrap();
                let _ = c.read_to_end(&mut Vec::new()).await;
                assert_eq!(h.log_lines(), ["UH 0 0 - backend"]);

                let echo = echo_server().await;
                let breaker = "    circuit_breakers: {thresholds: [{max_connections: 1}]}\n";
                let h = start(&[echo], "", breaker).await;
                let mut first = TcpStream::connect(h.addr).await.unwrap();
                first.write_all(b"up").await.unwrap();
                first.read_exact(&mut [0u8; 2]).await.unwrap();
                let mut second = TcpStream::connect(h.addr).await.unwrap();
                let mut got = Vec::new();
                let _ = second.read_to_end(&mut got).await;
                assert!(got.is_empty());
                assert_eq!(h.log_lines(), ["UO 0 0 - backend"]);
                drop(first);
                h.settle().await;
                assert_eq!(h.log_lines()[1], format!("- 2 2 {echo} backend"));
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn idle_timeout_closes_an_idle_connection() {
        LocalSet::new()
            .run_until(async {
                let echo = echo_server().await;
                let h = start(&[echo], "          idle_timeout: 10s\n", "").await;
                let mut c = TcpStream::connect(h.addr).await.unwrap();
                c.write_all(b"hi").await.unwrap();
                c.read_exact(&mut [0u8; 2]).await.unwrap();
                let quiet_since = Instant::now();
                let mut rest = Vec::new();
                let _ = c.read_to_end(&mut rest).await;
                assert!(rest.is_empty());
                let idle = quiet_since.elapsed();
                assert!(
                    idle >= Duration::from_secs(10) && idle < Duration::from_secs(11),
                    "{idle:?}"
                );
                h.settle().await;
                assert_eq!(h.log_lines(), [format!("- 2 2 {echo} backend")]);
                assert_eq!(h.stat("idle_timeout"), 1);
                assert_eq!(h.stat("max_downstream_connection_duration"), 0);
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_drain_deadline_closes_a_proxied_connection() {
        use week4_xds::drain::{DrainConfig, DrainOutcome, DrainStrategy};
        LocalSet::new()
            .run_until(async {
                let echo = echo_server().await;
                let drain = DrainManager::new(DrainConfig {
                    drain_time: Duration::from_secs(5),
                    strategy: DrainStrategy::Immediate,
                });
                let h = start_draining(&[echo], "", "", Some(drain.clone())).await;
                let mut c = TcpStream::connect(h.addr).await.unwrap();
                c.write_all(b"hi").await.unwrap();
                c.read_exact(&mut [0u8; 2]).await.unwrap();
                let started = Instant::now();
                let outcome = drain.drain().await;
                assert_eq!(outcome, DrainOutcome::ForcedClose { remaining: 1 });
                let mut rest = Vec::new();
                let closed =
                    tokio::time::timeout(Duration::from_secs(60), c.read_to_end(&mut rest));
                assert!(closed.await.is_ok(), "the proxied connection stayed open");
                assert!(rest.is_empty());
                assert!(started.elapsed() >= Duration::from_secs(5), "{:?}", started.elapsed());
                h.settle().await;
                assert_eq!(drain.active_connections(), 0);
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn max_downstream_connection_duration_closes_a_busy_connection_with_dt() {
        LocalSet::new()
            .run_until(async {
                let echo = echo_server().await;
                let extra = "          idle_timeout: 2s\n";
                let extra = format!("{extra}          max_downstream_connection_duration: 4.5s\n");
                let h = start(&[echo], &extra, "").await;
                let started = Instant::now();
                let mut c = TcpStream::connect(h.addr).await.unwrap();
                // Traffic every second keeps the idle timeout away.
                let mut echoed = 0;
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if c.write_all(b"x").await.is_err() {
                        break;
                    }
                    let mut b = [0u8; 1];
                    match c.read(&mut b).await {
                        Ok(1) => echoed += 1,
                        _ => break,
                    }
                }
                assert_eq!(echoed, 4);
                // Closed at 4.5 s, seen by the client's next exchange at 5 s.
                assert_eq!(started.elapsed(), Duration::from_secs(5));
                assert_eq!(h.log_lines(), [format!("DT 4 4 {echo} backend")]);
                assert_eq!(h.stat("max_downstream_connection_duration"), 1);
                assert_eq!(h.stat("idle_timeout"), 0);
            })
            .await;
    }
}
