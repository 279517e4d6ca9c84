//! # Per-worker HTTP/1.1 connection pools
//!
//! Envoy's `Http1::ConnPoolImpl`: every worker keeps, for every upstream host
//! it talks to (and every routing priority, as Envoy's pool per priority), its
//! own pool of keep-alive connections, so no lock is taken on the request path. A stream asks its worker's [`WorkerPools`] for a
//! connection to a host and gives it back when its exchange is over:
//!
//! ```text
//!  acquire(host) ─► an idle connection (newest first, checked alive)    ──► stream
//!            └────► else connect, if the cluster's max_connections allows
//!            └────► else wait (pending, bounded by max_pending_requests) for
//!                   a connection this worker releases or closes
//!  release(conn, reusable) ─► a waiting stream, else the idle list
//! ```
//!
//! Circuit breakers (`max_connections`, `max_pending_requests`) are the
//! cluster's for the route's priority, shared by all workers (week 1's atomic [`ResourceManager`]); a
//! connection holds its `max_connections` guard for its whole life. Idle
//! connections past the cluster's `idle_timeout`, over
//! `max_requests_per_connection`, or closed by the upstream are dropped.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use week1_core::cluster::info::ClusterInfo;
use week1_core::cluster::{Host, ResourceGuard, ResourceManager, RoutingPriority};
use week3_filters::buffer::Buffer;

use super::ConnectionGuard;
use crate::stats::{ClusterStats, PendingRequest, UpstreamConnectionStats};
use week3_filters::http1::{Limits, ResponseDecoder};

/// One upstream HTTP/1.1 connection, owned by one stream at a time.
#[derive(Debug)]
pub struct UpstreamConnection {
    /// The socket.
    pub io: TcpStream,
    /// Bytes read and not yet decoded.
    pub read_buf: Buffer,
    /// The response decoder (it keeps its state across requests).
    pub decoder: ResponseDecoder,
    /// The host.
    pub host: Arc<Host>,
    /// Requests sent on this connection so far.
    pub requests: u32,
    /// Whether it was taken from the idle list (not freshly connected).
    pub reused: bool,
    key: PoolKey,
    created: Instant,
    cx_guard: ConnectionGuard,
    _cx_stats: UpstreamConnectionStats,
}

/// Why no connection could be had.
#[derive(Debug)]
pub enum PoolFailure {
    /// The connection attempt failed (Envoy `UF`, `upstream_cx_connect_fail`).
    ConnectFailure(io::Error),
    /// The connection attempt timed out (`UF`, `upstream_cx_connect_timeout`).
    ConnectTimeout,
    /// `max_connections` reached and `max_pending_requests` too (`UO`).
    Overflow,
}

impl std::fmt::Display for PoolFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ConnectFailure(e) => write!(f, "connection failure: {e}"),
            Self::ConnectTimeout => f.write_str("connection timeout"),
            Self::Overflow => f.write_str("overflow"),
        }
    }
}

/// A pool is per cluster, host address and routing priority (a host in two
/// clusters has two pools; as Envoy, `HIGH` priority requests have their own
/// connections, counted against the `HIGH` circuit breakers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    cluster: Arc<str>,
    address: SocketAddr,
    priority: RoutingPriority,
}

#[derive(Debug)]
struct IdleConnection {
    conn: Box<UpstreamConnection>,
    since: Instant,
}

#[derive(Debug, Default)]
struct HostPool {
    /// Newest last: reuse the warmest connection.
    idle: Vec<IdleConnection>,
    waiters: VecDeque<oneshot::Sender<Option<Box<UpstreamConnection>>>>,
}

/// Pool settings from the cluster.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// The cluster (pool key).
    pub cluster: Arc<str>,
    /// `connect_timeout`.
    pub connect_timeout: Duration,
    /// Upstream `idle_timeout` (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// `max_requests_per_connection` (`None`: unlimited).
    pub max_requests_per_connection: Option<u32>,
    /// Response codec limits.
    pub limits: Limits,
    /// `cluster.<name>.*`.
    pub stats: Arc<ClusterStats>,
}

impl PoolSettings {
    /// From a cluster's settings.
    pub fn from_cluster(info: &ClusterInfo, stats: Arc<ClusterStats>) -> Self {
        Self {
            cluster: Arc::from(info.name.as_str()),
            connect_timeout: info.connect_timeout,
            idle_timeout: info.idle_timeout,
            max_requests_per_connection: info.max_requests_per_connection,
            limits: Limits::default(),
            stats,
        }
    }
}

/// A worker's pools (one per worker thread; `Rc`, never shared).
#[derive(Debug, Default)]
pub struct WorkerPools {
    pools: RefCell<FxHashMap<PoolKey, HostPool>>,
}

/// The circuit breakers of a pool's priority.
fn breakers(info: &ClusterInfo, priority: RoutingPriority) -> &ResourceManager {
    info.circuit_breakers.for_priority(priority)
}

impl WorkerPools {
    // ANCHOR: acquire
    /// A connection to `host` for a request of `priority`: an idle one, a
    /// new one, or one released while waiting. The caller bounds the whole
    /// wait (route timeout) by dropping the future.
    pub async fn acquire(
        self: Rc<Self>,
        settings: Arc<PoolSettings>,
        info: Arc<ClusterInfo>,
        host: Arc<Host>,
        priority: RoutingPriority,
    ) -> Result<Box<UpstreamConnection>, PoolFailure> {
        let key = PoolKey { cluster: settings.cluster.clone(), address: host.address(), priority };
        let mut pending_guard = None;
        loop {
            if let Some(conn) = self.take_idle(&key, &settings) {
                return Ok(conn);
            }
            if let Ok(cx) = breakers(&info, priority).connections().try_acquire() {
                return connect(&settings, key, host, cx).await;
            }
            // At max_connections: wait for one of this worker's connections.
            if pending_guard.is_none() {
                match breakers(&info, priority).pending_requests().try_acquire() {
                    Ok(g) => pending_guard = Some((g, PendingRequest::new(&settings.stats))),
                    Err(_) => {
                        settings.stats.upstream_rq_pending_overflow.inc();
                        return Err(PoolFailure::Overflow);
                    }
                }
            }
            let (tx, rx) = oneshot::channel();
            self.pools.borrow_mut().entry(key.clone()).or_default().waiters.push_back(tx);
            match rx.await {
                Ok(Some(conn)) => return Ok(conn),
                // A connection closed (capacity freed) or the pool was cleared: try again.
                Ok(None) | Err(_) => continue,
            }
        }
    }
    // ANCHOR_END: acquire

    /// An idle connection to `host` for `priority`, if this worker has one (no waiting).
    pub fn take_idle_for(
        &self,
        settings: &PoolSettings,
        host: &Host,
        priority: RoutingPriority,
    ) -> Option<Box<UpstreamConnection>> {
        let key = PoolKey { cluster: settings.cluster.clone(), address: host.address(), priority };
        self.take_idle(&key, settings)
    }

    fn take_idle(&self, key: &PoolKey, settings: &PoolSettings) -> Option<Box<UpstreamConnection>> {
        let mut pools = self.pools.borrow_mut();
        let pool = pools.get_mut(key)?;
        let now = crate::clock::now();
        while let Some(IdleConnection { mut conn, since }) = pool.idle.pop() {
            let expired = settings.idle_timeout.is_some_and(|t| now.duration_since(since) >= t);
            if !expired && is_alive(&conn.io) {
                conn.reused = true;
                conn.read_buf = crate::io::take_buffer();
                return Some(conn);
            }
        }
        None
    }

    // ANCHOR: release
    /// Gives a connection back after an exchange. `reusable`: the response
    /// was read completely and both sides allow keep-alive.
    pub fn release(&self, mut conn: Box<UpstreamConnection>, reusable: bool) {
        let mut pools = self.pools.borrow_mut();
        let pool = pools.entry(conn.key.clone()).or_default();
        let reusable = reusable && conn.read_buf.is_empty() && conn.decoder.is_idle();
        if reusable {
            conn.reused = true;
            // Hand it to the first stream still waiting.
            while let Some(waiter) = pool.waiters.pop_front() {
                match waiter.send(Some(conn)) {
                    Ok(()) => return,
                    Err(back) => conn = back.expect("sent Some"),
                }
            }
            crate::io::recycle_buffer(std::mem::take(&mut conn.read_buf));
            pool.idle.push(IdleConnection { conn, since: crate::clock::now() });
        } else {
            drop(conn);
            // Capacity freed: wake one waiter to connect.
            while let Some(waiter) = pool.waiters.pop_front() {
                if waiter.send(None).is_ok() {
                    break;
                }
            }
        }
    }
    // ANCHOR_END: release

    /// Whether a connection may carry another request.
    pub fn may_reuse(conn: &UpstreamConnection, settings: &PoolSettings) -> bool {
        settings.max_requests_per_connection.is_none_or(|max| conn.requests < max)
    }

    /// Closes idle connections that timed out or whose cluster or host is
    /// gone, and empty pools. `idle_timeout_of(cluster, address)` is `None`
    /// for a host that is gone, else the cluster's idle timeout.
    pub fn sweep(&self, idle_timeout_of: impl Fn(&str, SocketAddr) -> Option<Option<Duration>>) {
        let now = Instant::now();
        self.pools.borrow_mut().retain(|key, pool| {
            match idle_timeout_of(&key.cluster, key.address) {
                None => pool.idle.clear(),
                Some(timeout) => pool.idle.retain(|c| {
                    timeout.is_none_or(|t| now.duration_since(c.since) < t) && is_alive(&c.conn.io)
                }),
            }
            pool.waiters.retain(|w| !w.is_closed());
            !pool.idle.is_empty() || !pool.waiters.is_empty()
        });
    }

    /// Idle connections held, for tests and stats.
    pub fn idle_count(&self) -> usize {
        self.pools.borrow().values().map(|p| p.idle.len()).sum()
    }
}

// ANCHOR: is_alive
/// Whether an idle connection is still open: no EOF, no unexpected bytes.
pub(crate) fn is_alive(io: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}
// ANCHOR_END: is_alive

async fn connect(
    settings: &PoolSettings,
    key: PoolKey,
    host: Arc<Host>,
    cx: ResourceGuard,
) -> Result<Box<UpstreamConnection>, PoolFailure> {
    let stats = host.stats();
    stats.cx_total.fetch_add(1, Ordering::Relaxed);
    let cluster = &settings.stats;
    cluster.upstream_cx_total.inc();
    let started = Instant::now();
    let attempt = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(key.address));
    let io = match attempt.await {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => {
            stats.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
            cluster.upstream_cx_connect_fail.inc();
            return Err(PoolFailure::ConnectFailure(e));
        }
        Err(_) => {
            stats.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
            cluster.upstream_cx_connect_fail.inc();
            cluster.upstream_cx_connect_timeout.inc();
            return Err(PoolFailure::ConnectTimeout);
        }
    };
    cluster.upstream_cx_connect_ms.record_duration(started.elapsed());
    let cx_stats = UpstreamConnectionStats::new(cluster);
    // Requests are small writes that must leave at once.
    io.set_nodelay(true).map_err(PoolFailure::ConnectFailure)?;
    // Boxed once per connection: it moves between the pool and requests as a pointer.
    Ok(Box::new(UpstreamConnection {
        io,
        read_buf: Buffer::new(),
        decoder: ResponseDecoder::new(settings.limits),
        host: host.clone(),
        requests: 0,
        reused: false,
        key,
        created: crate::clock::now(),
        cx_guard: ConnectionGuard::new(host, cx),
        _cx_stats: cx_stats,
    }))
}

impl UpstreamConnection {
    /// How long the connection has been open.
    pub fn age(&self) -> Duration {
        self.created.elapsed()
    }

    /// The host this connection counts against.
    pub fn counted_host(&self) -> &Arc<Host> {
        self.cx_guard.host()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Store;
    use week1_core::cluster::CircuitBreakerThresholds;

    fn cluster(max_connections: u64, max_pending: u64) -> Arc<ClusterInfo> {
        let mut info = ClusterInfo::from_config(
            &week1_core::config::load_str(
                "name: c\nconnect_timeout: 1s\nload_assignment: {cluster_name: c}\n",
            )
            .unwrap(),
            &week1_core::config::FieldPath::root(),
        )
        .unwrap();
        let t = CircuitBreakerThresholds {
            max_connections,
            max_pending_requests: max_pending,
            ..CircuitBreakerThresholds::default()
        };
        info.circuit_breakers = Arc::new(week1_core::cluster::ClusterCircuitBreakers::new(
            &t,
            &CircuitBreakerThresholds::default(),
        ));
        Arc::new(info)
    }

    async fn listener() -> (tokio::net::TcpListener, Arc<Host>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = Host::builder(l.local_addr().unwrap()).build().unwrap();
        (l, host)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reuses_released_connections_and_drops_closed_ones() {
        let (l, host) = listener().await;
        let info = cluster(10, 10);
        let settings = Arc::new(PoolSettings::from_cluster(
            &info,
            Arc::new(ClusterStats::new(&Store::default(), "c")),
        ));
        let pools = Rc::new(WorkerPools::default());
        let c1 = pools
            .clone()
            .acquire(settings.clone(), info.clone(), host.clone(), RoutingPriority::Default)
            .await
            .unwrap();
        let (server_side, _) = l.accept().await.unwrap();
        assert!(!c1.reused);
        assert_eq!(host.stats().cx_active(), 1);
        pools.release(c1, true);
        assert_eq!(pools.idle_count(), 1);
        let c2 = pools
            .clone()
            .acquire(settings.clone(), info.clone(), host.clone(), RoutingPriority::Default)
            .await
            .unwrap();
        assert!(c2.reused, "the idle connection is reused");
        pools.release(c2, true);
        // The upstream closes it: the next acquire notices and connects anew.
        drop(server_side);
        tokio::task::yield_now().await;
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        let acquire = pools.clone().acquire(
            settings.clone(),
            info.clone(),
            host.clone(),
            RoutingPriority::Default,
        );
        let (c3, accepted) = tokio::join!(acquire, l.accept());
        let c3 = c3.unwrap();
        assert!(accepted.is_ok());
        assert!(!c3.reused, "a closed idle connection is not handed out");
        pools.release(c3, false);
        assert_eq!(host.stats().cx_active(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waits_at_max_connections_and_overflows_past_max_pending() {
        tokio::task::LocalSet::new().run_until(waits_and_overflows()).await;
    }

    async fn waits_and_overflows() {
        let (l, host) = listener().await;
        let info = cluster(1, 1);
        let settings = Arc::new(PoolSettings::from_cluster(
            &info,
            Arc::new(ClusterStats::new(&Store::default(), "c")),
        ));
        let pools = Rc::new(WorkerPools::default());
        let c1 = pools
            .clone()
            .acquire(settings.clone(), info.clone(), host.clone(), RoutingPriority::Default)
            .await
            .unwrap();
        let _server = l.accept().await.unwrap();
        // Second: pending. Third: overflow.
        let waiting = tokio::task::spawn_local(pools.clone().acquire(
            settings.clone(),
            info.clone(),
            host.clone(),
            RoutingPriority::Default,
        ));
        tokio::task::yield_now().await;
        let third = pools
            .clone()
            .acquire(settings.clone(), info.clone(), host.clone(), RoutingPriority::Default)
            .await;
        assert!(matches!(third, Err(PoolFailure::Overflow)));
        // HIGH priority has its own connections and breakers (Envoy's pool per
        // priority): it connects while DEFAULT is at its limits.
        let high = pools.clone().acquire(
            settings.clone(),
            info.clone(),
            host.clone(),
            RoutingPriority::High,
        );
        let (high, accepted) = tokio::join!(high, l.accept());
        let high = high.unwrap();
        assert!(accepted.is_ok() && !high.reused);
        pools.release(c1, true);
        let c2 = waiting.await.unwrap().unwrap();
        assert!(c2.reused, "the waiter got the released connection");
        pools.release(high, true);
        assert!(pools.take_idle_for(&settings, &host, RoutingPriority::Default).is_none());
        let again = pools.take_idle_for(&settings, &host, RoutingPriority::High);
        assert!(again.is_some(), "a HIGH connection goes back to the HIGH pool");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connect_failure_is_reported() {
        let (l, host) = listener().await;
        drop(l);
        let info = cluster(10, 10);
        let settings = Arc::new(PoolSettings::from_cluster(
            &info,
            Arc::new(ClusterStats::new(&Store::default(), "c")),
        ));
        let pools = Rc::new(WorkerPools::default());
        let r = pools.clone().acquire(settings, info, host.clone(), RoutingPriority::Default).await;
        assert!(matches!(r, Err(PoolFailure::ConnectFailure(_))));
        assert_eq!(host.stats().cx_connect_fail.load(Ordering::Relaxed), 1);
        assert_eq!(host.stats().cx_active(), 0);
    }
}
