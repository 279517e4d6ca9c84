//! Pre-resolved stat handles, built when a cluster, HTTP connection manager,
//! listener or the server is created; the request path only calls
//! `inc`/`record` on their fields (Envoy's `ALL_CLUSTER_STATS`,
//! `ALL_HTTP_CONN_MAN_STATS`, `ALL_LISTENER_STATS`, `ALL_SERVER_STATS`).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};

use week1_core::cluster::{ClusterCircuitBreakers, HostSet, PrioritySet};

use super::{Counter, Gauge, Histogram, Scope, Store};

/// The response-code class index (0 for 1xx … 4 for 5xx) of a status.
fn class_index(status: u16) -> Option<usize> {
    matches!(status, 100..=599).then(|| usize::from(status / 100 - 1))
}

/// Counters `<prefix>_1xx` … `<prefix>_5xx`.
fn class_counters(scope: &Scope, prefix: &str) -> [Counter; 5] {
    [1, 2, 3, 4, 5].map(|c| scope.counter(&format!("{prefix}_{c}xx")))
}

// ANCHOR: cluster_stats
/// `cluster.<name>.*` (Envoy's cluster stats), one per cluster name: an
/// updated cluster gets the same cells back.
#[derive(Debug)]
pub struct ClusterStats {
    scope: Scope,
    /// Upstream connections opened.
    pub upstream_cx_total: Counter,
    /// Upstream connections open.
    pub upstream_cx_active: Gauge,
    /// Connection attempts that failed.
    pub upstream_cx_connect_fail: Counter,
    /// Connection attempts that timed out (`connect_timeout`).
    pub upstream_cx_connect_timeout: Counter,
    /// Upstream connections closed.
    pub upstream_cx_destroy: Counter,
    /// Connection establishment time (ms).
    pub upstream_cx_connect_ms: Histogram,
    /// Requests sent upstream.
    pub upstream_rq_total: Counter,
    /// Requests in flight upstream.
    pub upstream_rq_active: Gauge,
    /// Requests waiting for a connection.
    pub upstream_rq_pending_active: Gauge,
    /// Requests refused by the `max_pending_requests` breaker.
    pub upstream_rq_pending_overflow: Counter,
    /// Retries.
    pub upstream_rq_retry: Counter,
    /// Retries that succeeded.
    pub upstream_rq_retry_success: Counter,
    /// Retries not made: the route's `num_retries` were used up.
    pub upstream_rq_retry_limit_exceeded: Counter,
    /// Retries not made: the `max_retries` breaker (or retry budget) was full.
    pub upstream_rq_retry_overflow: Counter,
    /// Requests whose route timeout fired.
    pub upstream_rq_timeout: Counter,
    /// Tries whose `per_try_timeout` fired.
    pub upstream_rq_per_try_timeout: Counter,
    /// Upstream request time (ms), first byte sent to last byte received.
    pub upstream_rq_time: Histogram,
    /// `upstream_rq_1xx` … `upstream_rq_5xx`.
    pub upstream_rq_class: [Counter; 5],
    /// `upstream_rq_<code>`, registered on a code's first use.
    upstream_rq_code: Box<[OnceLock<Counter>]>,
}
// ANCHOR_END: cluster_stats

impl ClusterStats {
    /// The handles of `cluster.<observability name>.`.
    pub fn new(store: &Store, name: &str) -> Self {
        let scope = store.root().tagged_scope("cluster", "envoy_cluster_name", name);
        Self {
            upstream_cx_total: scope.counter("upstream_cx_total"),
            upstream_cx_active: scope.gauge("upstream_cx_active"),
            upstream_cx_connect_fail: scope.counter("upstream_cx_connect_fail"),
            upstream_cx_connect_timeout: scope.counter("upstream_cx_connect_timeout"),
            upstream_cx_destroy: scope.counter("upstream_cx_destroy"),
            upstream_cx_connect_ms: scope.histogram("upstream_cx_connect_ms"),
            upstream_rq_total: scope.counter("upstream_rq_total"),
            upstream_rq_active: scope.gauge("upstream_rq_active"),
            upstream_rq_pending_active: scope.gauge("upstream_rq_pending_active"),
            upstream_rq_pending_overflow: scope.counter("upstream_rq_pending_overflow"),
            upstream_rq_retry: scope.counter("upstream_rq_retry"),
            upstream_rq_retry_success: scope.counter("upstream_rq_retry_success"),
            upstream_rq_retry_limit_exceeded: scope.counter("upstream_rq_retry_limit_exceeded"),
            upstream_rq_retry_overflow: scope.counter("upstream_rq_retry_overflow"),
            upstream_rq_timeout: scope.counter("upstream_rq_timeout"),
            upstream_rq_per_try_timeout: scope.counter("upstream_rq_per_try_timeout"),
            upstream_rq_time: scope.histogram("upstream_rq_time"),
            upstream_rq_class: class_counters(&scope, "upstream_rq"),
            upstream_rq_code: (100..600).map(|_| OnceLock::new()).collect(),
            scope,
        }
    }

    /// This cluster's scope, for stats other modules own (`health_check.*`,
    /// `outlier_detection.*`).
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Counts a response from upstream: `upstream_rq_<class>xx` and
    /// `upstream_rq_<code>` (the exact-code counter is registered once, on
    /// the first response with that code).
    pub fn response(&self, status: u16) {
        let Some(class) = class_index(status) else { return };
        self.upstream_rq_class[class].inc();
        if let Some(cell) = self.upstream_rq_code.get(usize::from(status) - 100) {
            cell.get_or_init(|| self.scope.counter(&format!("upstream_rq_{status}"))).inc();
        }
    }

    /// `membership_total` / `membership_healthy` / `membership_degraded` /
    /// `membership_excluded`, computed from the hosts when read. Called on
    /// every host update; the gauges follow the newest priority set.
    pub fn watch_membership(&self, priority_set: &Arc<PrioritySet>) {
        type Pick = fn(&HostSet) -> usize;
        let gauges: [(&str, Pick); 4] = [
            ("membership_total", |h| h.hosts().len()),
            ("membership_healthy", |h| h.healthy_hosts().len()),
            ("membership_degraded", |h| h.degraded_hosts().len()),
            ("membership_excluded", |h| h.excluded_hosts().len()),
        ];
        for (name, pick) in gauges {
            let weak: Weak<PrioritySet> = Arc::downgrade(priority_set);
            self.scope.gauge_fn(
                name,
                Box::new(move || {
                    weak.upgrade()
                        .map_or(0, |ps| ps.host_sets().iter().map(|h| pick(h) as i64).sum::<i64>())
                }),
            );
        }
    }

    /// `circuit_breakers.{default,high}.{cx,rq_pending,rq,rq_retry}_open`,
    /// computed from the breakers when read.
    pub fn watch_circuit_breakers(&self, breakers: &Arc<ClusterCircuitBreakers>) {
        CircuitBreakerStats::register(&self.scope, breakers);
    }
}

/// `upstream_rq_total` and `upstream_rq_active` for one upstream request
/// (one attempt); `upstream_rq_active` drops when it is dropped.
#[derive(Debug)]
pub struct UpstreamRequestStats(Arc<ClusterStats>);

impl UpstreamRequestStats {
    /// Counts a request sent upstream.
    pub fn new(stats: &Arc<ClusterStats>) -> Self {
        stats.upstream_rq_total.inc();
        stats.upstream_rq_active.inc();
        Self(stats.clone())
    }
}

impl Drop for UpstreamRequestStats {
    fn drop(&mut self) {
        self.0.upstream_rq_active.dec();
    }
}

/// `upstream_rq_pending_active` while a request waits for a connection.
#[derive(Debug)]
pub struct PendingRequest(Arc<ClusterStats>);

impl PendingRequest {
    /// A request starts waiting.
    pub fn new(stats: &Arc<ClusterStats>) -> Self {
        stats.upstream_rq_pending_active.inc();
        Self(stats.clone())
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        self.0.upstream_rq_pending_active.dec();
    }
}

/// `upstream_cx_active` while an upstream connection is open;
/// `upstream_cx_destroy` when it closes.
#[derive(Debug)]
pub struct UpstreamConnectionStats(Arc<ClusterStats>);

impl UpstreamConnectionStats {
    /// A connection was established.
    pub fn new(stats: &Arc<ClusterStats>) -> Self {
        stats.upstream_cx_active.inc();
        Self(stats.clone())
    }
}

impl Drop for UpstreamConnectionStats {
    fn drop(&mut self) {
        self.0.upstream_cx_active.dec();
        self.0.upstream_cx_destroy.inc();
    }
}

/// Registers Envoy's circuit-breaker gauges of a cluster.
#[derive(Debug)]
pub struct CircuitBreakerStats;

impl CircuitBreakerStats {
    /// `circuit_breakers.<priority>.<resource>_open` (1 when the breaker is
    /// at its maximum) and `remaining_<resource>`, for both priorities.
    pub fn register(scope: &Scope, breakers: &Arc<ClusterCircuitBreakers>) {
        use week1_core::cluster::{ResourceKind, RoutingPriority};
        for (priority, label) in
            [(RoutingPriority::Default, "default"), (RoutingPriority::High, "high")]
        {
            let scope = scope.scope("circuit_breakers").scope(label);
            for kind in [
                ResourceKind::Connections,
                ResourceKind::PendingRequests,
                ResourceKind::Requests,
                ResourceKind::Retries,
            ] {
                let weak = Arc::downgrade(breakers);
                scope.gauge_fn(
                    &format!("{}_open", kind.stat_name()),
                    Box::new(move || {
                        weak.upgrade().map_or(0, |b| {
                            i64::from(b.for_priority(priority).resource(kind).is_open())
                        })
                    }),
                );
                let weak = Arc::downgrade(breakers);
                scope.gauge_fn(
                    &format!("remaining_{}", kind.stat_name()),
                    Box::new(move || {
                        weak.upgrade().map_or(0, |b| {
                            let r = b.for_priority(priority).resource(kind).remaining();
                            i64::try_from(r).unwrap_or(i64::MAX)
                        })
                    }),
                );
            }
        }
    }
}

// ANCHOR: hcm_stats
/// `http.<stat_prefix>.*` (Envoy's HTTP connection manager stats), one per
/// `stat_prefix`: every HCM with that prefix shares them, as in Envoy.
#[derive(Debug)]
pub struct HttpConnectionManagerStats {
    /// Downstream connections accepted.
    pub downstream_cx_total: Counter,
    /// Downstream connections open.
    pub downstream_cx_active: Gauge,
    /// Downstream connections closed.
    pub downstream_cx_destroy: Counter,
    /// Connections closed on a malformed request (codec error).
    pub downstream_cx_protocol_error: Counter,
    /// Requests received.
    pub downstream_rq_total: Counter,
    /// Requests in flight.
    pub downstream_rq_active: Gauge,
    /// `downstream_rq_1xx` … `downstream_rq_5xx`.
    pub downstream_rq_class: [Counter; 5],
    /// Request time (ms), first byte received to last byte sent.
    pub downstream_rq_time: Histogram,
}
// ANCHOR_END: hcm_stats

impl HttpConnectionManagerStats {
    /// The handles of `http.<stat_prefix>.`.
    pub fn new(store: &Store, stat_prefix: &str) -> Self {
        let scope =
            store.root().tagged_scope("http", "envoy_http_conn_manager_prefix", stat_prefix);
        Self {
            downstream_cx_total: scope.counter("downstream_cx_total"),
            downstream_cx_active: scope.gauge("downstream_cx_active"),
            downstream_cx_destroy: scope.counter("downstream_cx_destroy"),
            downstream_cx_protocol_error: scope.counter("downstream_cx_protocol_error"),
            downstream_rq_total: scope.counter("downstream_rq_total"),
            downstream_rq_active: scope.gauge("downstream_rq_active"),
            downstream_rq_class: class_counters(&scope, "downstream_rq"),
            downstream_rq_time: scope.histogram("downstream_rq_time"),
        }
    }

    /// Counts a response sent downstream (`downstream_rq_<class>xx`).
    pub fn response(&self, status: u16) {
        if let Some(class) = class_index(status) {
            self.downstream_rq_class[class].inc();
        }
    }
}

/// `tcp.<stat_prefix>.*` (Envoy's tcp_proxy stats), shared by every
/// tcp_proxy with that prefix. Not kept: `upstream_flush_*` (a connection
/// here stays one task until both directions are written, so there is no
/// separate flush phase), `on_demand_cluster_*`, `early_data_received_count_total`.
#[derive(Debug)]
pub struct TcpProxyStats {
    /// Connections handled.
    pub downstream_cx_total: Counter,
    /// Connections whose cluster does not exist (`NC`).
    pub downstream_cx_no_route: Counter,
    /// Bytes written to downstream.
    pub downstream_cx_tx_bytes_total: Counter,
    /// Bytes from upstream not yet written to downstream.
    pub downstream_cx_tx_bytes_buffered: Gauge,
    /// Bytes read from downstream.
    pub downstream_cx_rx_bytes_total: Counter,
    /// Bytes read from downstream not yet written upstream.
    pub downstream_cx_rx_bytes_buffered: Gauge,
    /// Downstream reads paused: the upstream's buffer was full.
    pub downstream_flow_control_paused_reading_total: Counter,
    /// Downstream reads resumed.
    pub downstream_flow_control_resumed_reading_total: Counter,
    /// Connections closed by `idle_timeout`.
    pub idle_timeout: Counter,
    /// Connections closed by `max_downstream_connection_duration`.
    pub max_downstream_connection_duration: Counter,
}

impl TcpProxyStats {
    /// The handles of `tcp.<stat_prefix>.`.
    pub fn new(store: &Store, stat_prefix: &str) -> Self {
        let scope = store.root().tagged_scope("tcp", "envoy_tcp_prefix", stat_prefix);
        Self {
            downstream_cx_total: scope.counter("downstream_cx_total"),
            downstream_cx_no_route: scope.counter("downstream_cx_no_route"),
            downstream_cx_tx_bytes_total: scope.counter("downstream_cx_tx_bytes_total"),
            downstream_cx_tx_bytes_buffered: scope.gauge("downstream_cx_tx_bytes_buffered"),
            downstream_cx_rx_bytes_total: scope.counter("downstream_cx_rx_bytes_total"),
            downstream_cx_rx_bytes_buffered: scope.gauge("downstream_cx_rx_bytes_buffered"),
            downstream_flow_control_paused_reading_total: scope
                .counter("downstream_flow_control_paused_reading_total"),
            downstream_flow_control_resumed_reading_total: scope
                .counter("downstream_flow_control_resumed_reading_total"),
            idle_timeout: scope.counter("idle_timeout"),
            max_downstream_connection_duration: scope.counter("max_downstream_connection_duration"),
        }
    }
}

/// Envoy's listener stat-name form of an address: `127.0.0.1_10000`,
/// `[__1]_10000` (`:` is not allowed in a stat name segment).
pub fn listener_stat_address(address: SocketAddr) -> String {
    address.to_string().replace(':', "_")
}

/// `listener.<address>.*` (Envoy's listener stats).
#[derive(Debug)]
pub struct ListenerStats {
    /// Connections accepted.
    pub downstream_cx_total: Counter,
    /// Connections open.
    pub downstream_cx_active: Gauge,
    /// Connections closed.
    pub downstream_cx_destroy: Counter,
    /// Connections closed because no filter chain matched.
    pub no_filter_chain_match: Counter,
}

impl ListenerStats {
    /// The handles of `listener.<address>.`.
    pub fn new(store: &Store, address: SocketAddr) -> Self {
        let a = listener_stat_address(address);
        let scope = store.root().tagged_scope("listener", "envoy_listener_address", &a);
        Self {
            downstream_cx_total: scope.counter("downstream_cx_total"),
            downstream_cx_active: scope.gauge("downstream_cx_active"),
            downstream_cx_destroy: scope.counter("downstream_cx_destroy"),
            no_filter_chain_match: scope.counter("no_filter_chain_match"),
        }
    }

    /// A connection this listener accepted has closed.
    pub fn connection_closed(&self) {
        self.downstream_cx_active.dec();
        self.downstream_cx_destroy.inc();
    }
}

/// Envoy's `server.state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Serving.
    Live = 0,
    /// Draining (`/healthcheck/fail`, shutdown).
    Draining = 1,
    /// Before initialization.
    PreInitializing = 2,
    /// Initializing.
    Initializing = 3,
}

/// `server.*` (Envoy's server stats), set by the main thread.
#[derive(Debug)]
pub struct ServerStats {
    /// 1 when serving, 0 when draining.
    pub live: Gauge,
    /// Seconds since start.
    pub uptime: Gauge,
    /// Worker threads.
    pub concurrency: Gauge,
    /// [`ServerState`].
    pub state: Gauge,
    /// The version as an integer (Envoy's SCM revision; here
    /// `stats_server_version_override` or `major*10000+minor*100+patch`).
    pub version: Gauge,
    /// xDS messages accepted with fields newer than mini-envoy's Envoy API.
    pub dynamic_unknown_fields: Counter,
}

impl ServerStats {
    /// The handles of `server.`.
    pub fn new(store: &Store) -> Self {
        let scope = store.root().scope("server");
        Self {
            live: scope.gauge("live"),
            uptime: scope.gauge("uptime"),
            concurrency: scope.gauge("concurrency"),
            state: scope.gauge("state"),
            version: scope.gauge("version"),
            dynamic_unknown_fields: scope.counter("dynamic_unknown_fields"),
        }
    }

    /// Sets `server.state` and `server.live`.
    pub fn set_state(&self, state: ServerState) {
        self.state.set(state as i64);
        self.live.set(i64::from(state == ServerState::Live));
    }

    /// This build's version as Envoy's integer `server.version`.
    pub fn version_number() -> i64 {
        let part = |s: &str| s.parse::<i64>().unwrap_or(0);
        part(env!("CARGO_PKG_VERSION_MAJOR")) * 10_000
            + part(env!("CARGO_PKG_VERSION_MINOR")) * 100
            + part(env!("CARGO_PKG_VERSION_PATCH"))
    }
}
