//! `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy` (L4 proxying) and
//! the network `envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit`.
//!
//! Loaded here from a listener's filter chain; the week 3 network filters
//! (sans-IO tcp_proxy, connection rate limit) and mini-envoy's tcp_proxy use them.

use serde::Deserialize;

use super::access_log::AccessLog;
use super::filters::TokenBucket;
use super::types::{Duration, Empty, Metadata, RuntimeFeatureFlag};
use super::validate::{Validate, Validator};

/// `TcpProxy.WeightedCluster.ClusterWeight`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterWeight {
    /// The cluster.
    pub name: String,
    /// Relative weight (at least 1).
    pub weight: u32,
    /// Endpoint subset selection (not supported).
    pub metadata_match: Option<Metadata>,
}

/// `TcpProxy.WeightedCluster`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeightedCluster {
    /// The clusters and their weights.
    pub clusters: Vec<ClusterWeight>,
}

/// `envoy.type.v3.HashPolicy`: one of `source_ip`, `filter_state`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpHashPolicy {
    /// Hash the downstream IP.
    pub source_ip: Option<Empty>,
    /// Hash a filter-state object (not supported).
    pub filter_state: Option<serde_json::Value>,
}

/// `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpProxy {
    /// Stats prefix `tcp.<stat_prefix>.` (required).
    pub stat_prefix: String,
    /// The upstream cluster (oneof with `weighted_clusters`).
    pub cluster: Option<String>,
    /// Weighted upstream clusters (oneof with `cluster`).
    pub weighted_clusters: Option<WeightedCluster>,
    /// On-demand CDS (not supported).
    pub on_demand: Option<serde_json::Value>,
    /// Endpoint subset selection (not supported).
    pub metadata_match: Option<Metadata>,
    /// Close after no data either way for this long (default 1h; 0 disables).
    pub idle_timeout: Option<Duration>,
    /// Deprecated downstream idle timeout (not supported: use idle_timeout).
    pub downstream_idle_timeout: Option<Duration>,
    /// Deprecated upstream idle timeout (not supported: use idle_timeout).
    pub upstream_idle_timeout: Option<Duration>,
    /// Access logs per connection.
    pub access_log: Vec<AccessLog>,
    /// Upstream connect attempts (default 1, at least 1).
    pub max_connect_attempts: Option<u32>,
    /// Hash for consistent-hash load balancers (at most one).
    pub hash_policy: Vec<TcpHashPolicy>,
    /// HTTP CONNECT tunnelling (not supported).
    pub tunneling_config: Option<serde_json::Value>,
    /// Close connections older than this (unset: no limit).
    pub max_downstream_connection_duration: Option<Duration>,
    /// Periodic access log flush (not supported).
    pub access_log_flush_interval: Option<Duration>,
    /// Log on upstream connect too (not supported).
    pub flush_access_log_on_connected: bool,
    /// Access log timing options (not supported).
    pub access_log_options: Option<serde_json::Value>,
    /// Backoff between connect attempts (not supported).
    pub backoff_options: Option<serde_json::Value>,
    /// PROXY protocol TLVs (not supported).
    pub proxy_protocol_tlvs: Vec<serde_json::Value>,
    /// Wait for upstream connect before reading downstream (not supported).
    pub upstream_connect_mode: Option<serde_json::Value>,
}

impl TcpProxy {
    /// Effective idle timeout: 1h by default, `None` when 0.
    pub fn idle_timeout(&self) -> Option<std::time::Duration> {
        match self.idle_timeout {
            None => Some(std::time::Duration::from_secs(3600)),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d.get()),
        }
    }

    /// Effective connect attempts (default 1).
    pub fn max_connect_attempts(&self) -> u32 {
        self.max_connect_attempts.unwrap_or(1)
    }

    /// The clusters this proxy may use.
    pub fn cluster_names(&self) -> impl Iterator<Item = &str> {
        self.cluster.iter().map(String::as_str).chain(
            self.weighted_clusters.iter().flat_map(|w| w.clusters.iter().map(|c| c.name.as_str())),
        )
    }
}

fn check_cluster(v: &mut Validator, field: &str, name: &str) {
    if name.is_empty() {
        v.error(field, "must not be empty");
    } else if let Some(known) = &v.known_clusters
        && !known.contains(name)
    {
        v.error(field, format!("unknown cluster {name:?}"));
    }
}

impl Validate for TcpProxy {
    fn validate(&self, v: &mut Validator) {
        if self.stat_prefix.is_empty() {
            v.error("stat_prefix", "must not be empty");
        }
        v.oneof(
            "cluster_specifier",
            &[
                ("cluster", self.cluster.is_some()),
                ("weighted_clusters", self.weighted_clusters.is_some()),
            ],
            true,
        );
        if let Some(c) = &self.cluster {
            check_cluster(v, "cluster", c);
        }
        if let Some(w) = &self.weighted_clusters {
            v.field("weighted_clusters", |v| {
                if w.clusters.is_empty() {
                    v.error("clusters", "must not be empty");
                }
                v.field("clusters", |v| {
                    for (i, c) in w.clusters.iter().enumerate() {
                        v.index(i, |v| {
                            check_cluster(v, "name", &c.name);
                            if c.weight == 0 {
                                v.error("weight", "must be at least 1");
                            }
                            if c.metadata_match.is_some() {
                                v.unsupported(
                                    "metadata_match",
                                    "subset load balancing is not supported",
                                );
                            }
                        });
                    }
                });
            });
        }
        if self.max_connect_attempts == Some(0) {
            v.error("max_connect_attempts", "must be at least 1");
        }
        if self.hash_policy.len() > 1 {
            v.error("hash_policy", "at most one hash policy");
        }
        v.field("hash_policy", |v| {
            for (i, h) in self.hash_policy.iter().enumerate() {
                v.index(i, |v| {
                    v.oneof(
                        "policy_specifier",
                        &[
                            ("source_ip", h.source_ip.is_some()),
                            ("filter_state", h.filter_state.is_some()),
                        ],
                        true,
                    );
                    if h.filter_state.is_some() {
                        v.unsupported("filter_state", "hash by source_ip");
                    }
                });
            }
        });
        for (name, set, hint) in [
            ("on_demand", self.on_demand.is_some(), "clusters must be known (static or CDS)"),
            (
                "metadata_match",
                self.metadata_match.is_some(),
                "subset load balancing is not supported",
            ),
            ("downstream_idle_timeout", self.downstream_idle_timeout.is_some(), "use idle_timeout"),
            ("upstream_idle_timeout", self.upstream_idle_timeout.is_some(), "use idle_timeout"),
            ("tunneling_config", self.tunneling_config.is_some(), "raw TCP proxying only"),
            (
                "access_log_flush_interval",
                self.access_log_flush_interval.is_some(),
                "access logs are written when a connection ends",
            ),
            (
                "flush_access_log_on_connected",
                self.flush_access_log_on_connected,
                "access logs are written when a connection ends",
            ),
            (
                "access_log_options",
                self.access_log_options.is_some(),
                "access logs are written when a connection ends",
            ),
            (
                "backoff_options",
                self.backoff_options.is_some(),
                "connect attempts are retried immediately",
            ),
            (
                "proxy_protocol_tlvs",
                !self.proxy_protocol_tlvs.is_empty(),
                "the PROXY protocol is not supported",
            ),
            (
                "upstream_connect_mode",
                self.upstream_connect_mode.is_some(),
                "downstream data is read at once",
            ),
        ] {
            if set {
                v.unsupported(name, hint);
            }
        }
        v.each("access_log", &self.access_log);
    }
}

/// `envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit`: a
/// token bucket over new connections.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkLocalRateLimit {
    /// Stats prefix (required).
    pub stat_prefix: String,
    /// The bucket (required).
    pub token_bucket: Option<TokenBucket>,
    /// Enabled (default true).
    pub runtime_enabled: Option<RuntimeFeatureFlag>,
    /// Share the bucket between listeners with this key.
    pub share_key: String,
}

impl Validate for NetworkLocalRateLimit {
    fn validate(&self, v: &mut Validator) {
        if self.stat_prefix.is_empty() {
            v.error("stat_prefix", "must not be empty");
        }
        match &self.token_bucket {
            None => v.error("token_bucket", "must be set"),
            Some(b) => v.child("token_bucket", b),
        }
    }
}
