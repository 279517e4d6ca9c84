//! # `envoy.filters.network.tcp_proxy`, sans-IO half
//!
//! Envoy's TCP proxy is the terminal network filter of an L4 listener. Here
//! it is split as the HTTP router is: [`TcpProxyConfig`] (compiled config:
//! cluster choice including weighted clusters, idle timeout, connect
//! attempts, max connection duration) and [`TcpProxySession`], the state of
//! one proxied connection, which mini-envoy drives with socket events and
//! which tells it what to do: connect where, write what, close when. It
//! keeps Envoy's byte counters and the idle-timeout bookkeeping (any byte
//! read or written either way re-arms it), and records `UF` (connect
//! failure) like Envoy's stream info.
//!
//! ```text
//! NetworkEvent::Read ─► session.on_downstream_data ─► Write upstream (or held until connected)
//! upstream socket    ─► session.on_upstream_data   ─► network fm.write(...) to downstream
//! connect ok / fail  ─► on_upstream_connected / on_upstream_connect_failed (retry or give up)
//! timer              ─► on_timer(now): idle or max duration → close both
//! ```

use std::net::IpAddr;
use std::time::{Duration, Instant};

use week1_core::config::route::{HashConnectionProperties, HashPolicy as HashPolicyConfig};
use week1_core::config::tcp_proxy::TcpProxy;
use week1_core::headers::HeaderMap;
use week1_core::router::HashPolicy;

use crate::buffer::Buffer;
use crate::http::{ResponseFlag, ResponseFlags};

/// The compiled tcp_proxy config.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpProxyConfig {
    /// Stats prefix.
    pub stat_prefix: String,
    /// `(cluster, weight)`; one entry with weight 1 for `cluster`.
    pub clusters: Vec<(String, u64)>,
    total_weight: u64,
    /// Idle timeout (`None`: disabled).
    pub idle_timeout: Option<Duration>,
    /// Connect attempts.
    pub max_connect_attempts: u32,
    /// Close connections older than this.
    pub max_downstream_connection_duration: Option<Duration>,
    /// Hash by source IP (for ring hash / Maglev).
    pub hash_source_ip: bool,
}

impl TcpProxyConfig {
    /// Compiles a (validated) config.
    pub fn new(c: &TcpProxy) -> Result<Self, String> {
        let clusters: Vec<(String, u64)> = match (&c.cluster, &c.weighted_clusters) {
            (Some(name), None) => vec![(name.clone(), 1)],
            (None, Some(w)) => {
                w.clusters.iter().map(|c| (c.name.clone(), u64::from(c.weight))).collect()
            }
            _ => return Err("exactly one of cluster and weighted_clusters must be set".into()),
        };
        let total_weight = clusters.iter().map(|c| c.1).sum();
        if total_weight == 0 {
            return Err("weighted_clusters need a positive total weight".into());
        }
        Ok(Self {
            stat_prefix: c.stat_prefix.clone(),
            clusters,
            total_weight,
            idle_timeout: c.idle_timeout(),
            max_connect_attempts: c.max_connect_attempts(),
            max_downstream_connection_duration: c
                .max_downstream_connection_duration
                .map(|d| d.get()),
            hash_source_ip: c.hash_policy.iter().any(|h| h.source_ip.is_some()),
        })
    }

    /// Picks the cluster: `random % total_weight` into buckets in configured order.
    pub fn pick_cluster(&self, random: u64) -> &str {
        let mut r = random % self.total_weight;
        for (name, w) in &self.clusters {
            if r < *w {
                return name;
            }
            r -= w;
        }
        self.clusters.last().map_or("", |c| c.0.as_str())
    }

    /// The load balancer's hash key for a connection from `source_ip`: with
    /// `hash_policy: [{source_ip: {}}]`, the HTTP router's source-IP hash
    /// (xxHash64 of the address text, as Envoy's `HashPolicyImpl`), so a
    /// ring hash or Maglev cluster keeps a client on one host. `None` otherwise.
    pub fn hash_key(&self, source_ip: Option<IpAddr>) -> Option<u64> {
        if !self.hash_source_ip {
            return None;
        }
        let policy = HashPolicy::compile(&[HashPolicyConfig {
            connection_properties: Some(HashConnectionProperties { source_ip: true }),
            ..HashPolicyConfig::default()
        }])
        .ok()?;
        policy.compute_hash(&HeaderMap::new(), source_ip)
    }
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Connecting to the upstream (attempt number, from 1).
    Connecting(u32),
    /// Bytes flow both ways.
    Connected,
    /// Done.
    Closed,
}

/// The [`TcpAction::Close`] reason of an idle timeout (`tcp.<prefix>.idle_timeout`).
pub const CLOSE_IDLE_TIMEOUT: &str = "idle timeout";
/// The [`TcpAction::Close`] reason of `max_downstream_connection_duration` (`DT`).
pub const CLOSE_MAX_DURATION: &str = "max connection duration";

/// What the owner must do after a session step.
#[derive(Debug)]
pub enum TcpAction {
    /// Nothing yet.
    None,
    /// Connect to a host of this cluster (again, on a retry).
    Connect(String),
    /// Write these bytes upstream (`end_stream`: half-close after).
    WriteUpstream(Buffer, bool),
    /// Close both connections (reason for logs).
    Close(&'static str),
}

/// One proxied connection.
#[derive(Debug)]
pub struct TcpProxySession {
    cluster: String,
    state: SessionState,
    max_attempts: u32,
    idle_timeout: Option<Duration>,
    deadline_max: Option<Instant>,
    last_activity: Instant,
    held: Buffer,
    held_end: bool,
    downstream_closed: bool,
    upstream_closed: bool,
    /// Bytes from downstream.
    pub bytes_received: u64,
    /// Bytes to downstream.
    pub bytes_sent: u64,
    /// Bytes written upstream.
    pub upstream_bytes_sent: u64,
    /// Bytes from upstream.
    pub upstream_bytes_received: u64,
    /// Envoy's response flags for the access log (`UF`, `UO`, ...).
    pub flags: ResponseFlags,
}

impl TcpProxySession {
    /// A session for a new connection: picks the cluster and asks to connect.
    pub fn start(config: &TcpProxyConfig, random: u64, now: Instant) -> (Self, TcpAction) {
        let cluster = config.pick_cluster(random).to_string();
        let s = Self {
            cluster: cluster.clone(),
            state: SessionState::Connecting(1),
            max_attempts: config.max_connect_attempts.max(1),
            idle_timeout: config.idle_timeout,
            deadline_max: config.max_downstream_connection_duration.map(|d| now + d),
            last_activity: now,
            held: Buffer::new(),
            held_end: false,
            downstream_closed: false,
            upstream_closed: false,
            bytes_received: 0,
            bytes_sent: 0,
            upstream_bytes_sent: 0,
            upstream_bytes_received: 0,
            flags: ResponseFlags::EMPTY,
        };
        (s, TcpAction::Connect(cluster))
    }

    /// The chosen cluster.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Bytes from downstream; held until the upstream is connected.
    pub fn on_downstream_data(
        &mut self,
        data: &mut Buffer,
        end_stream: bool,
        now: Instant,
    ) -> TcpAction {
        self.last_activity = now;
        self.bytes_received += data.len() as u64;
        self.downstream_closed |= end_stream;
        match self.state {
            SessionState::Connected => {
                self.upstream_bytes_sent += data.len() as u64;
                TcpAction::WriteUpstream(std::mem::take(data), end_stream)
            }
            SessionState::Connecting(_) => {
                self.held.move_from(data);
                self.held_end |= end_stream;
                TcpAction::None
            }
            SessionState::Closed => TcpAction::None,
        }
    }

    /// The upstream connected: held bytes go out.
    pub fn on_upstream_connected(&mut self, now: Instant) -> TcpAction {
        if self.state == SessionState::Closed {
            return TcpAction::None;
        }
        self.state = SessionState::Connected;
        self.last_activity = now;
        if self.held.is_empty() && !self.held_end {
            return TcpAction::None;
        }
        self.upstream_bytes_sent += self.held.len() as u64;
        TcpAction::WriteUpstream(std::mem::take(&mut self.held), self.held_end)
    }

    /// A connect attempt failed: retry up to `max_connect_attempts`, then
    /// close with `UF`.
    pub fn on_upstream_connect_failed(&mut self) -> TcpAction {
        match self.state {
            SessionState::Connecting(n) if n < self.max_attempts => {
                self.state = SessionState::Connecting(n + 1);
                TcpAction::Connect(self.cluster.clone())
            }
            SessionState::Connecting(_) => {
                self.flags.insert(ResponseFlag::UpstreamConnectionFailure);
                self.state = SessionState::Closed;
                TcpAction::Close("upstream connect failed")
            }
            _ => TcpAction::None,
        }
    }

    /// No host to connect to (no healthy host `UH`, or overflow `UO`).
    pub fn on_no_upstream(&mut self, flag: ResponseFlag) -> TcpAction {
        self.flags.insert(flag);
        self.state = SessionState::Closed;
        TcpAction::Close("no upstream host")
    }

    /// Bytes from upstream, to write downstream (the caller passes them to
    /// the network FilterManager's `write`). Closes when both sides ended.
    pub fn on_upstream_data(&mut self, data: &Buffer, end_stream: bool, now: Instant) -> TcpAction {
        self.last_activity = now;
        self.upstream_bytes_received += data.len() as u64;
        self.bytes_sent += data.len() as u64;
        self.upstream_closed |= end_stream;
        if self.upstream_closed && self.downstream_closed {
            self.state = SessionState::Closed;
            return TcpAction::Close("both sides closed");
        }
        TcpAction::None
    }

    /// Bytes were written to either connection: like Envoy's bytes-sent
    /// callbacks, this re-arms the idle timeout, so a slow reader that keeps
    /// taking bytes is not idle.
    pub fn on_bytes_written(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// When the owner should call [`on_timer`](Self::on_timer) next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let idle = self.idle_timeout.map(|t| self.last_activity + t);
        match (idle, self.deadline_max) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A timer fired: close on idle timeout or max duration (`DT`).
    pub fn on_timer(&mut self, now: Instant) -> TcpAction {
        if self.state == SessionState::Closed {
            return TcpAction::None;
        }
        if self.deadline_max.is_some_and(|d| now >= d) {
            self.flags.insert(ResponseFlag::DurationTimeout);
            self.state = SessionState::Closed;
            return TcpAction::Close(CLOSE_MAX_DURATION);
        }
        if self.idle_timeout.is_some_and(|t| now >= self.last_activity + t) {
            self.state = SessionState::Closed;
            return TcpAction::Close(CLOSE_IDLE_TIMEOUT);
        }
        TcpAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> TcpProxyConfig {
        let c: TcpProxy = week1_core::config::load_str(yaml).unwrap();
        TcpProxyConfig::new(&c).unwrap()
    }

    #[test]
    fn hash_key_only_with_a_source_ip_policy() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let plain = config("stat_prefix: t\ncluster: a\n");
        assert_eq!(plain.hash_key(Some(ip)), None);
        let hashed = config("stat_prefix: t\ncluster: a\nhash_policy: [{source_ip: {}}]\n");
        let key = hashed.hash_key(Some(ip));
        // xxHash64("10.0.0.1", seed 0), the router's source-IP hash.
        assert_eq!(key, Some(0xed16_cb68_c786_e3d7));
        assert_ne!(key, hashed.hash_key(Some("10.0.0.2".parse().unwrap())));
        assert_eq!(hashed.hash_key(None), None);
    }

    #[test]
    fn writes_re_arm_the_idle_timeout() {
        let cfg = config("stat_prefix: t\ncluster: a\nidle_timeout: 10s\n");
        let now = Instant::now();
        let (mut s, _) = TcpProxySession::start(&cfg, 0, now);
        s.on_upstream_connected(now);
        let later = now + Duration::from_secs(8);
        s.on_bytes_written(later);
        assert_eq!(s.next_deadline(), Some(later + Duration::from_secs(10)));
        assert!(matches!(s.on_timer(now + Duration::from_secs(10)), TcpAction::None));
        assert!(matches!(
            s.on_timer(later + Duration::from_secs(10)),
            TcpAction::Close("idle timeout")
        ));
    }
}
