//! `envoy.config.cluster.v3.Cluster`: upstream clusters, their discovery
//! type, load balancing, circuit breakers, outlier detection, health checks.
//!
//! Loaded here from `static_resources.clusters` or CDS; the week 1 cluster
//! code (`crate::cluster`) builds hosts, load balancers and circuit breakers,
//! and mini-envoy runs DNS refresh, health checks and outlier detection.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::config_source::ConfigSource;
use super::dns::{
    DnsResolutionConfig, DnsResolverChoice, TypedDnsResolverConfig, validate_resolvers,
};
use super::endpoint::ClusterLoadAssignment;
use super::health_check::HealthCheck;
use super::protocol::{
    Http1ProtocolOptions, HttpProtocolOptions, ProtocolOptionsConfig, UpstreamConnectionOptions,
    validate_protocol_options,
};
use super::types::{Address, Duration, Empty, Metadata, Percent};
use super::validate::{Validate, Validator};

/// `Cluster.DiscoveryType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscoveryType {
    /// Endpoints listed in `load_assignment` (IP addresses).
    #[default]
    Static,
    /// Every DNS answer is a host, re-resolved every `dns_refresh_rate`.
    StrictDns,
    /// The first DNS answer is used per new connection.
    LogicalDns,
    /// Endpoints from EDS.
    Eds,
    /// The connection's original destination (not supported).
    OriginalDst,
}

/// `Cluster.LbPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbPolicy {
    /// Weighted round robin.
    #[default]
    RoundRobin,
    /// Power of two choices over active requests.
    LeastRequest,
    /// Consistent hashing on a ring.
    RingHash,
    /// Uniform random.
    Random,
    /// Maglev consistent hashing.
    Maglev,
    /// Chosen by the cluster type (ORIGINAL_DST only; not supported).
    ClusterProvided,
    /// Use `load_balancing_policy`.
    LoadBalancingPolicyConfig,
}

/// The load balancer a cluster resolves to, from `lb_policy` or `load_balancing_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbKind {
    /// Weighted round robin.
    RoundRobin,
    /// Least request.
    LeastRequest,
    /// Random.
    Random,
    /// Ring hash.
    RingHash,
    /// Maglev.
    Maglev,
}

/// `Cluster.EdsClusterConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdsClusterConfig {
    /// Where endpoints come from.
    pub eds_config: Option<ConfigSource>,
    /// The ClusterLoadAssignment name (default: the cluster name).
    pub service_name: String,
}

pub use super::types::RoutingPriority;

/// `CircuitBreakers.Thresholds.RetryBudget`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryBudget {
    /// Retries as a share of active requests (default 20%).
    pub budget_percent: Option<Percent>,
    /// Retries always allowed (default 3).
    pub min_retry_concurrency: Option<u32>,
}

/// `CircuitBreakers.Thresholds`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Which priority these apply to.
    pub priority: RoutingPriority,
    /// Most connections (default 1024).
    pub max_connections: Option<u32>,
    /// Most pending requests (default 1024).
    pub max_pending_requests: Option<u32>,
    /// Most active requests (default 1024).
    pub max_requests: Option<u32>,
    /// Most active retries (default 3).
    pub max_retries: Option<u32>,
    /// Retry budget instead of `max_retries`.
    pub retry_budget: Option<RetryBudget>,
    /// Publish remaining-capacity gauges; accepted and ignored (stats tuning).
    pub track_remaining: bool,
    /// Most connection pools (unset: no limit).
    pub max_connection_pools: Option<u32>,
}

impl Thresholds {
    /// Effective max_connections (default 1024).
    pub fn max_connections(&self) -> u32 {
        self.max_connections.unwrap_or(1024)
    }
    /// Effective max_pending_requests (default 1024).
    pub fn max_pending_requests(&self) -> u32 {
        self.max_pending_requests.unwrap_or(1024)
    }
    /// Effective max_requests (default 1024).
    pub fn max_requests(&self) -> u32 {
        self.max_requests.unwrap_or(1024)
    }
    /// Effective max_retries (default 3).
    pub fn max_retries(&self) -> u32 {
        self.max_retries.unwrap_or(3)
    }
}

/// `envoy.config.cluster.v3.CircuitBreakers`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreakers {
    /// Limits per priority (at most one entry each).
    pub thresholds: Vec<Thresholds>,
    /// Per-host limits (only max_connections in Envoy; not supported).
    pub per_host_thresholds: Vec<serde_json::Value>,
}

impl CircuitBreakers {
    /// The thresholds for `priority` (defaults when absent).
    pub fn for_priority(&self, priority: RoutingPriority) -> Thresholds {
        self.thresholds
            .iter()
            .find(|t| t.priority == priority)
            .cloned()
            .unwrap_or(Thresholds { priority, ..Thresholds::default() })
    }
}

impl Validate for CircuitBreakers {
    fn validate(&self, v: &mut Validator) {
        v.field("thresholds", |v| {
            for (i, t) in self.thresholds.iter().enumerate() {
                v.index(i, |v| {
                    if self.thresholds[..i].iter().any(|e| e.priority == t.priority) {
                        v.error("priority", format!("{:?} thresholds are given twice", t.priority));
                    }
                    if let Some(b) = &t.retry_budget {
                        v.field("retry_budget", |v| v.child("budget_percent", &b.budget_percent));
                    }
                });
            }
        });
        if !self.per_host_thresholds.is_empty() {
            v.unsupported("per_host_thresholds", "limits are per cluster");
        }
    }
}

/// `envoy.config.cluster.v3.OutlierDetection` (defaults are Envoy's).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierDetection {
    /// Consecutive 5xx before ejection (default 5).
    #[serde(rename = "consecutive_5xx", alias = "consecutive5xx")]
    pub consecutive_5xx: Option<u32>,
    /// Time between analysis sweeps (default 10s).
    pub interval: Option<Duration>,
    /// Base ejection time, multiplied by the ejection count (default 30s).
    pub base_ejection_time: Option<Duration>,
    /// Most hosts ejected at once, percent (default 10).
    pub max_ejection_percent: Option<u32>,
    /// Chance of enforcing a consecutive-5xx ejection, percent (default 100).
    #[serde(
        rename = "enforcing_consecutive_5xx",
        alias = "enforcingConsecutive5xx",
        alias = "enforcing_consecutive5xx"
    )]
    pub enforcing_consecutive_5xx: Option<u32>,
    /// Chance of enforcing a success-rate ejection, percent (default 100).
    pub enforcing_success_rate: Option<u32>,
    /// Hosts needed for success-rate analysis (default 5).
    pub success_rate_minimum_hosts: Option<u32>,
    /// Requests per host needed for success-rate analysis (default 100).
    pub success_rate_request_volume: Option<u32>,
    /// Success-rate stdev factor / 1000 (default 1900).
    pub success_rate_stdev_factor: Option<u32>,
    /// Consecutive gateway failures before ejection (default 5).
    pub consecutive_gateway_failure: Option<u32>,
    /// Chance of enforcing a gateway-failure ejection, percent (default 0).
    pub enforcing_consecutive_gateway_failure: Option<u32>,
    /// Track local-origin errors separately (default false).
    pub split_external_local_origin_errors: bool,
    /// Consecutive local-origin failures before ejection (default 5).
    pub consecutive_local_origin_failure: Option<u32>,
    /// Chance of enforcing it, percent (default 100).
    pub enforcing_consecutive_local_origin_failure: Option<u32>,
    /// Chance of enforcing local-origin success-rate ejection (default 100).
    pub enforcing_local_origin_success_rate: Option<u32>,
    /// Failure-percentage threshold (default 85).
    pub failure_percentage_threshold: Option<u32>,
    /// Chance of enforcing failure-percentage ejection (default 0).
    pub enforcing_failure_percentage: Option<u32>,
    /// Same, local-origin (default 0).
    pub enforcing_failure_percentage_local_origin: Option<u32>,
    /// Hosts needed for failure-percentage analysis (default 5).
    pub failure_percentage_minimum_hosts: Option<u32>,
    /// Requests per host needed for it (default 50).
    pub failure_percentage_request_volume: Option<u32>,
    /// Longest ejection (default 300s).
    pub max_ejection_time: Option<Duration>,
    /// Jitter added to ejection time (default 0s).
    pub max_ejection_time_jitter: Option<Duration>,
    /// Let the first host be ejected even above max_ejection_percent.
    pub successful_active_health_check_uneject_host: Option<bool>,
    /// Outlier event logs (not supported).
    pub monitors: Vec<serde_json::Value>,
    /// Eject at least one host regardless of max_ejection_percent.
    pub always_eject_one_host: Option<bool>,
    /// Count 5xx from local-origin errors (not supported).
    pub detect_degraded_hosts: Option<bool>,
}

impl OutlierDetection {
    /// Effective consecutive_5xx (default 5).
    pub fn consecutive_5xx(&self) -> u32 {
        self.consecutive_5xx.unwrap_or(5)
    }
    /// Effective interval (default 10s).
    pub fn interval(&self) -> std::time::Duration {
        self.interval.map_or(std::time::Duration::from_secs(10), Duration::get)
    }
    /// Effective base ejection time (default 30s).
    pub fn base_ejection_time(&self) -> std::time::Duration {
        self.base_ejection_time.map_or(std::time::Duration::from_secs(30), Duration::get)
    }
    /// Effective max ejection time (default 300s).
    pub fn max_ejection_time(&self) -> std::time::Duration {
        self.max_ejection_time.map_or(std::time::Duration::from_secs(300), Duration::get)
    }
    /// Effective max_ejection_percent (default 10).
    pub fn max_ejection_percent(&self) -> u32 {
        self.max_ejection_percent.unwrap_or(10)
    }
    /// Effective enforcing_consecutive_5xx (default 100).
    pub fn enforcing_consecutive_5xx(&self) -> u32 {
        self.enforcing_consecutive_5xx.unwrap_or(100)
    }
    /// Effective consecutive_gateway_failure (default 5).
    pub fn consecutive_gateway_failure(&self) -> u32 {
        self.consecutive_gateway_failure.unwrap_or(5)
    }
    /// Effective enforcing_consecutive_gateway_failure (default 0).
    pub fn enforcing_consecutive_gateway_failure(&self) -> u32 {
        self.enforcing_consecutive_gateway_failure.unwrap_or(0)
    }
}

impl Validate for OutlierDetection {
    fn validate(&self, v: &mut Validator) {
        for (name, value) in [
            ("max_ejection_percent", self.max_ejection_percent),
            ("enforcing_consecutive_5xx", self.enforcing_consecutive_5xx),
            ("enforcing_success_rate", self.enforcing_success_rate),
            ("enforcing_consecutive_gateway_failure", self.enforcing_consecutive_gateway_failure),
            (
                "enforcing_consecutive_local_origin_failure",
                self.enforcing_consecutive_local_origin_failure,
            ),
            ("enforcing_local_origin_success_rate", self.enforcing_local_origin_success_rate),
            ("failure_percentage_threshold", self.failure_percentage_threshold),
            ("enforcing_failure_percentage", self.enforcing_failure_percentage),
            (
                "enforcing_failure_percentage_local_origin",
                self.enforcing_failure_percentage_local_origin,
            ),
        ] {
            if let Some(p) = value
                && p > 100
            {
                v.error(name, format!("{p} is more than 100 percent"));
            }
        }
        for (name, d) in [
            ("interval", self.interval),
            ("base_ejection_time", self.base_ejection_time),
            ("max_ejection_time", self.max_ejection_time),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                v.error(name, "must be greater than 0");
            }
        }
        if self.base_ejection_time() > self.max_ejection_time() {
            v.error("base_ejection_time", "must not exceed max_ejection_time (default 300s)");
        }
        if !self.monitors.is_empty() {
            v.unsupported("monitors", "outlier events go to the log and stats");
        }
        if self.detect_degraded_hosts.is_some() {
            v.unsupported("detect_degraded_hosts", "hosts are ejected, not degraded");
        }
    }
}

/// `Cluster.CommonLbConfig.ZoneAwareLbConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoneAwareLbConfig {
    /// Percentage of requests zone-aware routing applies to (default 100%).
    pub routing_enabled: Option<Percent>,
    /// Smallest local cluster for zone-aware routing (default 6).
    pub min_cluster_size: Option<u64>,
    /// Fail instead of crossing zones when the local zone panics.
    pub fail_traffic_on_panic: bool,
    /// Forced zone-aware routing (not supported).
    pub force_locality_direct_routing: bool,
    /// Forced local-zone config (not supported).
    pub force_local_zone: Option<serde_json::Value>,
    /// Basis for locality weights (not supported).
    pub locality_basis: Option<serde_json::Value>,
}

/// `Cluster.CommonLbConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommonLbConfig {
    /// Below this share of healthy hosts, use all hosts (default 50%).
    pub healthy_panic_threshold: Option<Percent>,
    /// Prefer the local zone (oneof with locality_weighted_lb_config).
    pub zone_aware_lb_config: Option<ZoneAwareLbConfig>,
    /// Weight localities by `load_balancing_weight`.
    pub locality_weighted_lb_config: Option<Empty>,
    /// Batch host updates within this window (default 1s); accepted, applied by the cluster manager.
    pub update_merge_window: Option<Duration>,
    /// Ignore new hosts until their first health check.
    pub ignore_new_hosts_until_first_hc: bool,
    /// Close connections on host set changes.
    pub close_connections_on_host_set_change: bool,
    /// Consistent hashing options.
    pub consistent_hashing_lb_config: Option<ConsistentHashingLbConfig>,
    /// Override host statuses (not supported).
    pub override_host_status: Option<serde_json::Value>,
}

impl CommonLbConfig {
    /// Effective panic threshold in percent (default 50).
    pub fn healthy_panic_threshold(&self) -> f64 {
        self.healthy_panic_threshold.map_or(50.0, |p| p.value)
    }
}

/// `Cluster.CommonLbConfig.ConsistentHashingLbConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsistentHashingLbConfig {
    /// Hash the host name instead of the address.
    pub use_hostname_for_hashing: bool,
    /// Bounded-load factor (not supported).
    pub hash_balance_factor: Option<u32>,
}

impl Validate for CommonLbConfig {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "locality_config_specifier",
            &[
                ("zone_aware_lb_config", self.zone_aware_lb_config.is_some()),
                ("locality_weighted_lb_config", self.locality_weighted_lb_config.is_some()),
            ],
            false,
        );
        v.child("healthy_panic_threshold", &self.healthy_panic_threshold);
        if let Some(z) = &self.zone_aware_lb_config {
            v.field("zone_aware_lb_config", |v| z.validate(v));
        }
        if let Some(c) = &self.consistent_hashing_lb_config
            && c.hash_balance_factor.is_some()
        {
            v.field("consistent_hashing_lb_config", |v| {
                v.unsupported("hash_balance_factor", "plain consistent hashing")
            });
        }
        if self.override_host_status.is_some() {
            v.unsupported("override_host_status", "host status comes from health checks and EDS");
        }
    }
}

impl Validate for ZoneAwareLbConfig {
    fn validate(&self, v: &mut Validator) {
        v.child("routing_enabled", &self.routing_enabled);
        if self.force_locality_direct_routing {
            v.unsupported("force_locality_direct_routing", "Envoy's default zone-aware routing");
        }
        if self.force_local_zone.is_some() {
            v.unsupported("force_local_zone", "Envoy's default zone-aware routing");
        }
        if self.locality_basis.is_some() {
            v.unsupported("locality_basis", "localities are weighted by healthy hosts");
        }
    }
}

/// `Cluster.RingHashLbConfig.HashFunction` (also the extension's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HashFunction {
    /// The extension's zero value: XX_HASH.
    DefaultHash,
    /// xxHash64.
    #[default]
    XxHash,
    /// MurmurHash2 (not supported).
    MurmurHash2,
}

/// Envoy's ring size ceiling (8M entries).
pub const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;

/// `Cluster.RingHashLbConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RingHashLbConfig {
    /// Smallest ring (default 1024).
    pub minimum_ring_size: Option<u64>,
    /// Hash function (XX_HASH).
    pub hash_function: HashFunction,
    /// Largest ring (default 8M).
    pub maximum_ring_size: Option<u64>,
}

impl RingHashLbConfig {
    /// Effective minimum ring size (default 1024).
    pub fn minimum_ring_size(&self) -> u64 {
        self.minimum_ring_size.unwrap_or(1024)
    }
    /// Effective maximum ring size (default 8M).
    pub fn maximum_ring_size(&self) -> u64 {
        self.maximum_ring_size.unwrap_or(MAX_RING_SIZE)
    }
}

fn check_ring(v: &mut Validator, min: u64, max: u64, hash: HashFunction) {
    if min == 0 {
        v.error("minimum_ring_size", "must be at least 1");
    }
    if max > MAX_RING_SIZE {
        v.error("maximum_ring_size", format!("{max} is above the limit of {MAX_RING_SIZE}"));
    }
    if min > max {
        v.error("minimum_ring_size", format!("{min} is larger than maximum_ring_size {max}"));
    }
    if hash == HashFunction::MurmurHash2 {
        v.unsupported("hash_function", "XX_HASH");
    }
}

impl Validate for RingHashLbConfig {
    fn validate(&self, v: &mut Validator) {
        check_ring(v, self.minimum_ring_size(), self.maximum_ring_size(), self.hash_function);
    }
}

/// `Cluster.MaglevLbConfig` (and the Maglev extension).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaglevLbConfig {
    /// Lookup table size, a prime (default 65537).
    pub table_size: Option<u64>,
}

/// Largest Maglev table Envoy accepts.
pub const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

fn check_table_size(v: &mut Validator, size: Option<u64>) {
    if let Some(n) = size
        && (!is_prime(n) || n > MAX_MAGLEV_TABLE_SIZE)
    {
        v.error("table_size", format!("{n} is not a prime number up to {MAX_MAGLEV_TABLE_SIZE}"));
    }
}

impl MaglevLbConfig {
    /// Effective table size (default 65537).
    pub fn table_size(&self) -> u64 {
        self.table_size.unwrap_or(65537)
    }
}

impl Validate for MaglevLbConfig {
    fn validate(&self, v: &mut Validator) {
        check_table_size(v, self.table_size);
    }
}

/// `Cluster.LeastRequestLbConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeastRequestLbConfig {
    /// Hosts sampled per pick (default 2, at least 2).
    pub choice_count: Option<u32>,
    /// Weight exponent for active requests (default 1.0).
    pub active_request_bias: Option<RuntimeDouble>,
    /// Slow start (not supported).
    pub slow_start_config: Option<serde_json::Value>,
}

impl LeastRequestLbConfig {
    /// Effective choice count (default 2).
    pub fn choice_count(&self) -> u32 {
        self.choice_count.unwrap_or(2)
    }
}

impl Validate for LeastRequestLbConfig {
    fn validate(&self, v: &mut Validator) {
        if self.choice_count.is_some_and(|c| c < 2) {
            v.error("choice_count", "must be at least 2");
        }
        if self.slow_start_config.is_some() {
            v.unsupported("slow_start_config", "new hosts get full weight at once");
        }
    }
}

/// `envoy.config.core.v3.RuntimeDouble`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeDouble {
    /// The value in force.
    pub default_value: f64,
    /// Envoy's runtime key (kept for compatibility; not consulted).
    pub runtime_key: String,
}

/// `Cluster.RoundRobinLbConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoundRobinLbConfig {
    /// Slow start (not supported).
    pub slow_start_config: Option<serde_json::Value>,
}

/// `envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalityLbConfig {
    /// Zone-aware routing.
    pub zone_aware_lb_config: Option<ZoneAwareLbConfig>,
    /// Locality-weighted routing.
    pub locality_weighted_lb_config: Option<Empty>,
}

/// The typed config of a `load_balancing_policy` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename = "@type")]
pub enum LbPolicyConfig {
    /// `envoy.load_balancing_policies.round_robin`.
    #[serde(rename = "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin")]
    RoundRobin(ExtensionLb),
    /// `envoy.load_balancing_policies.least_request`.
    #[serde(rename = "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest")]
    LeastRequest(ExtensionLb),
    /// `envoy.load_balancing_policies.random`.
    #[serde(rename = "envoy.extensions.load_balancing_policies.random.v3.Random")]
    Random(ExtensionLb),
    /// `envoy.load_balancing_policies.ring_hash`.
    #[serde(rename = "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash")]
    RingHash(ExtensionLb),
    /// `envoy.load_balancing_policies.maglev`.
    #[serde(rename = "envoy.extensions.load_balancing_policies.maglev.v3.Maglev")]
    Maglev(ExtensionLb),
}

/// The fields of the built-in load-balancing extensions (each uses a subset).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtensionLb {
    /// Locality handling.
    pub locality_lb_config: Option<LocalityLbConfig>,
    /// Slow start (not supported).
    pub slow_start_config: Option<serde_json::Value>,
    /// Least request: hosts sampled (default 2).
    pub choice_count: Option<u32>,
    /// Least request: active request bias.
    pub active_request_bias: Option<RuntimeDouble>,
    /// Least request: scan all hosts (not supported).
    pub enable_full_scan: Option<bool>,
    /// Least request: selection method (not supported).
    pub selection_method: Option<serde_json::Value>,
    /// Ring hash: hash function.
    pub hash_function: HashFunction,
    /// Ring hash: smallest ring (default 1024).
    pub minimum_ring_size: Option<u64>,
    /// Ring hash: largest ring (default 8M).
    pub maximum_ring_size: Option<u64>,
    /// Ring hash: hash host names (deprecated spelling).
    pub use_hostname_for_hashing: bool,
    /// Ring hash: bounded load (not supported).
    pub hash_balance_factor: Option<u32>,
    /// Hash options.
    pub consistent_hashing_lb_config: Option<ConsistentHashingLbConfig>,
    /// Ring hash / Maglev: locality weighting.
    pub locality_weighted_lb_config: Option<Empty>,
    /// Maglev: table size (default 65537).
    pub table_size: Option<u64>,
}

/// `envoy.config.core.v3.TypedExtensionConfig` for a load-balancing policy.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LbTypedExtensionConfig {
    /// Extension name.
    pub name: String,
    /// The policy config.
    pub typed_config: Option<LbPolicyConfig>,
}

/// `LoadBalancingPolicy.Policy`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LbPolicyEntry {
    /// The extension.
    pub typed_extension_config: Option<LbTypedExtensionConfig>,
}

/// `envoy.config.cluster.v3.LoadBalancingPolicy`: the first listed policy is used.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadBalancingPolicy {
    /// Policies in order of preference.
    pub policies: Vec<LbPolicyEntry>,
}

impl LoadBalancingPolicy {
    /// The first policy's config.
    pub fn first(&self) -> Option<&LbPolicyConfig> {
        self.policies.first()?.typed_extension_config.as_ref()?.typed_config.as_ref()
    }
}

impl Validate for LoadBalancingPolicy {
    fn validate(&self, v: &mut Validator) {
        if self.policies.is_empty() {
            v.error("policies", "must not be empty");
        }
        v.field("policies", |v| {
            for (i, p) in self.policies.iter().enumerate() {
                v.index(i, |v| match &p.typed_extension_config {
                    None => v.error("typed_extension_config", "must be set"),
                    Some(t) => v.field("typed_extension_config", |v| match &t.typed_config {
                        None => v.error("typed_config", "must be set"),
                        Some(c) => v.field("typed_config", |v| c.validate(v)),
                    }),
                });
            }
        });
    }
}

impl Validate for LbPolicyConfig {
    fn validate(&self, v: &mut Validator) {
        let (Self::RoundRobin(e)
        | Self::LeastRequest(e)
        | Self::Random(e)
        | Self::RingHash(e)
        | Self::Maglev(e)) = self;
        if e.slow_start_config.is_some() {
            v.unsupported("slow_start_config", "new hosts get full weight at once");
        }
        if e.enable_full_scan.is_some() || e.selection_method.is_some() {
            v.unsupported("selection_method", "power-of-choice sampling");
        }
        if e.hash_balance_factor.is_some() {
            v.unsupported("hash_balance_factor", "plain consistent hashing");
        }
        if let Some(l) = &e.locality_lb_config {
            v.field("locality_lb_config", |v| {
                v.oneof(
                    "locality_config_specifier",
                    &[
                        ("zone_aware_lb_config", l.zone_aware_lb_config.is_some()),
                        ("locality_weighted_lb_config", l.locality_weighted_lb_config.is_some()),
                    ],
                    false,
                );
                v.child("zone_aware_lb_config", &l.zone_aware_lb_config);
            });
        }
        if e.choice_count.is_some_and(|c| c < 2) {
            v.error("choice_count", "must be at least 2");
        }
        if matches!(self, Self::RingHash(_)) {
            check_ring(
                v,
                e.minimum_ring_size.unwrap_or(1024),
                e.maximum_ring_size.unwrap_or(MAX_RING_SIZE),
                e.hash_function,
            );
        }
        check_table_size(v, e.table_size);
    }
}

/// `Cluster.ClusterProtocolSelection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterProtocolSelection {
    /// Use the configured protocol (HTTP/1.1).
    #[default]
    UseConfiguredProtocol,
    /// Use the downstream's protocol (HTTP/1.1 downstream: the same).
    UseDownstreamProtocol,
}

/// `Cluster.DnsLookupFamily`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DnsLookupFamily {
    /// IPv6 first, IPv4 if none (Envoy's default).
    #[default]
    Auto,
    /// IPv4 only.
    V4Only,
    /// IPv6 only.
    V6Only,
    /// IPv4 first, IPv6 if none.
    V4Preferred,
    /// Both families.
    All,
}

/// `Cluster.RefreshRate`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefreshRate {
    /// Base backoff (required, >= 1ms).
    pub base_interval: Option<Duration>,
    /// Most backoff (default 10 × base).
    pub max_interval: Option<Duration>,
}

/// `envoy.config.cluster.v3.Cluster`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// Unique name (required).
    pub name: String,
    /// Name used in stats instead of `name`.
    pub alt_stat_name: String,
    /// Discovery type (default STATIC).
    #[serde(rename = "type")]
    pub cluster_type: DiscoveryType,
    /// A custom cluster extension (not supported).
    #[serde(rename = "cluster_type")]
    pub custom_cluster_type: Option<serde_json::Value>,
    /// EDS settings (EDS clusters).
    pub eds_cluster_config: Option<EdsClusterConfig>,
    /// Upstream connect timeout (default 5s).
    pub connect_timeout: Option<Duration>,
    /// Buffer limit per upstream connection (default 1 MiB).
    pub per_connection_buffer_limit_bytes: Option<u32>,
    /// Load balancer (default ROUND_ROBIN).
    pub lb_policy: LbPolicy,
    /// Endpoints (STATIC and DNS clusters).
    pub load_assignment: Option<ClusterLoadAssignment>,
    /// Active health checks.
    pub health_checks: Vec<HealthCheck>,
    /// Deprecated: use common_http_protocol_options.max_requests_per_connection.
    pub max_requests_per_connection: Option<u32>,
    /// Connection and request limits.
    pub circuit_breakers: Option<CircuitBreakers>,
    /// Deprecated upstream SNI options (TLS only: not supported).
    pub upstream_http_protocol_options: Option<serde_json::Value>,
    /// Deprecated: use typed_extension_protocol_options.
    pub common_http_protocol_options: Option<HttpProtocolOptions>,
    /// Deprecated: use typed_extension_protocol_options.
    pub http_protocol_options: Option<Http1ProtocolOptions>,
    /// Deprecated HTTP/2 upstream (only for gRPC xDS clusters).
    pub http2_protocol_options: Option<serde_json::Value>,
    /// Protocol options per extension name.
    pub typed_extension_protocol_options: BTreeMap<String, ProtocolOptionsConfig>,
    /// DNS re-resolution interval (default 5s).
    pub dns_refresh_rate: Option<Duration>,
    /// Backoff after DNS failures (default: dns_refresh_rate).
    pub dns_failure_refresh_rate: Option<RefreshRate>,
    /// Refresh at the answer's TTL instead of dns_refresh_rate (a TTL of 0: dns_refresh_rate).
    pub respect_dns_ttl: bool,
    /// Address families to resolve.
    pub dns_lookup_family: DnsLookupFamily,
    /// Deprecated: name servers (use typed_dns_resolver_config).
    pub dns_resolvers: Vec<Address>,
    /// Deprecated: DNS over TCP (use typed_dns_resolver_config).
    pub use_tcp_for_dns_lookups: bool,
    /// Deprecated: name servers and flags (use typed_dns_resolver_config).
    pub dns_resolution_config: Option<DnsResolutionConfig>,
    /// The resolver of this cluster's names (default: the bootstrap's).
    pub typed_dns_resolver_config: Option<TypedDnsResolverConfig>,
    /// Wait for the first DNS/EDS result before serving (default true).
    pub wait_for_warm_on_init: Option<bool>,
    /// Passive health checking.
    pub outlier_detection: Option<OutlierDetection>,
    /// ORIGINAL_DST cleanup interval (default 5s).
    pub cleanup_interval: Option<Duration>,
    /// Source address for upstream connections (not supported).
    pub upstream_bind_config: Option<serde_json::Value>,
    /// Subset load balancing (not supported).
    pub lb_subset_config: Option<serde_json::Value>,
    /// Ring hash options.
    pub ring_hash_lb_config: Option<RingHashLbConfig>,
    /// Maglev options.
    pub maglev_lb_config: Option<MaglevLbConfig>,
    /// ORIGINAL_DST options (not supported).
    pub original_dst_lb_config: Option<serde_json::Value>,
    /// Least-request options.
    pub least_request_lb_config: Option<LeastRequestLbConfig>,
    /// Round-robin options.
    pub round_robin_lb_config: Option<RoundRobinLbConfig>,
    /// Options for every load balancer.
    pub common_lb_config: Option<CommonLbConfig>,
    /// Upstream TLS (not supported).
    pub transport_socket: Option<serde_json::Value>,
    /// Per-endpoint TLS (not supported).
    pub transport_socket_matches: Vec<serde_json::Value>,
    /// Metadata for filters and logs.
    pub metadata: Option<Metadata>,
    /// Upstream protocol selection.
    pub protocol_selection: ClusterProtocolSelection,
    /// Upstream socket options.
    pub upstream_connection_options: Option<UpstreamConnectionOptions>,
    /// Close connections to hosts that fail health checks.
    pub close_connections_on_host_health_failure: bool,
    /// Remove hosts EDS dropped at once, without waiting for them to fail health checks.
    pub ignore_health_on_host_removal: bool,
    /// Upstream network filters (not supported).
    pub filters: Vec<serde_json::Value>,
    /// Extension-style load-balancing policy (used when lb_policy is LOAD_BALANCING_POLICY_CONFIG or it is set).
    pub load_balancing_policy: Option<LoadBalancingPolicy>,
    /// Load reporting (not supported).
    pub lrs_server: Option<ConfigSource>,
    /// Timeout-budget histograms; accepted and ignored (stats tuning).
    pub track_timeout_budgets: bool,
    /// Upstream config extension (not supported).
    pub upstream_config: Option<serde_json::Value>,
    /// Optional stats; accepted and ignored (stats tuning).
    pub track_cluster_stats: Option<serde_json::Value>,
    /// Preconnecting (not supported).
    pub preconnect_policy: Option<serde_json::Value>,
    /// Pools per downstream connection (not supported).
    pub connection_pool_per_downstream_connection: bool,
}

impl Cluster {
    /// Effective connect timeout (default 5s).
    pub fn connect_timeout(&self) -> std::time::Duration {
        self.connect_timeout.map_or(std::time::Duration::from_secs(5), Duration::get)
    }

    /// Effective DNS refresh rate (default 5s).
    pub fn dns_refresh_rate(&self) -> std::time::Duration {
        self.dns_refresh_rate.map_or(std::time::Duration::from_secs(5), Duration::get)
    }

    /// This cluster's own resolver (`typed_dns_resolver_config`, else the
    /// deprecated `dns_resolution_config`, `dns_resolvers`,
    /// `use_tcp_for_dns_lookups`); `None`: the bootstrap's default.
    pub fn dns_resolver(&self) -> Option<DnsResolverChoice> {
        DnsResolverChoice::from_fields(
            self.typed_dns_resolver_config.as_ref(),
            self.dns_resolution_config.as_ref(),
            &self.dns_resolvers,
            self.use_tcp_for_dns_lookups,
        )
    }

    /// Effective per-connection buffer limit (default 1 MiB).
    pub fn per_connection_buffer_limit_bytes(&self) -> u32 {
        self.per_connection_buffer_limit_bytes.unwrap_or(1024 * 1024)
    }

    /// The EDS service name (default: the cluster name).
    pub fn eds_service_name(&self) -> &str {
        match &self.eds_cluster_config {
            Some(e) if !e.service_name.is_empty() => &e.service_name,
            _ => &self.name,
        }
    }

    /// The load balancer, from `load_balancing_policy` when set, else `lb_policy`.
    /// `None` only for unsupported policies (rejected by validation).
    pub fn lb_kind(&self) -> Option<LbKind> {
        if let Some(p) = self.load_balancing_policy.as_ref().and_then(LoadBalancingPolicy::first) {
            return Some(match p {
                LbPolicyConfig::RoundRobin(_) => LbKind::RoundRobin,
                LbPolicyConfig::LeastRequest(_) => LbKind::LeastRequest,
                LbPolicyConfig::Random(_) => LbKind::Random,
                LbPolicyConfig::RingHash(_) => LbKind::RingHash,
                LbPolicyConfig::Maglev(_) => LbKind::Maglev,
            });
        }
        match self.lb_policy {
            LbPolicy::RoundRobin => Some(LbKind::RoundRobin),
            LbPolicy::LeastRequest => Some(LbKind::LeastRequest),
            LbPolicy::RingHash => Some(LbKind::RingHash),
            LbPolicy::Random => Some(LbKind::Random),
            LbPolicy::Maglev => Some(LbKind::Maglev),
            LbPolicy::ClusterProvided | LbPolicy::LoadBalancingPolicyConfig => None,
        }
    }

    /// The upstream HTTP options: typed extension options, else the deprecated fields.
    pub fn http_protocol_options(&self) -> HttpProtocolOptions {
        self.typed_extension_protocol_options
            .values()
            .find_map(|p| match p {
                ProtocolOptionsConfig::Http(h) => h.common_http_protocol_options.clone(),
            })
            .or_else(|| self.common_http_protocol_options.clone())
            .unwrap_or_default()
    }

    /// Whether the cluster asks for HTTP/2 upstream (allowed for gRPC xDS clusters only).
    pub fn wants_http2(&self) -> bool {
        self.http2_protocol_options.is_some()
            || self.typed_extension_protocol_options.values().any(|p| match p {
                ProtocolOptionsConfig::Http(h) => h.wants_http2(),
            })
    }

    /// Validates the cluster; `grpc_cluster` says it carries gRPC (xDS), which
    /// allows HTTP/2 protocol options.
    pub fn validate_for(&self, v: &mut Validator, grpc_cluster: bool) {
        if self.name.is_empty() {
            v.error("name", "must not be empty");
        }
        match self.cluster_type {
            DiscoveryType::OriginalDst => v.unsupported(
                "type",
                "ORIGINAL_DST needs transparent proxying; use STATIC, STRICT_DNS, LOGICAL_DNS or EDS",
            ),
            DiscoveryType::Eds => match &self.eds_cluster_config {
                None => v.error("eds_cluster_config", "must be set for an EDS cluster"),
                Some(e) => v.field("eds_cluster_config", |v| match &e.eds_config {
                    None => v.error("eds_config", "must be set"),
                    Some(c) => v.child("eds_config", c),
                }),
            },
            DiscoveryType::Static | DiscoveryType::StrictDns | DiscoveryType::LogicalDns => {
                self.validate_endpoints(v)
            }
        }
        if self.custom_cluster_type.is_some() {
            v.unsupported("cluster_type", "use type: STATIC, STRICT_DNS, LOGICAL_DNS or EDS");
        }
        match self.lb_policy {
            LbPolicy::ClusterProvided => v.unsupported(
                "lb_policy",
                "CLUSTER_PROVIDED goes with ORIGINAL_DST; use ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH or MAGLEV",
            ),
            LbPolicy::LoadBalancingPolicyConfig if self.load_balancing_policy.is_none() => {
                v.error("load_balancing_policy", "must be set when lb_policy is LOAD_BALANCING_POLICY_CONFIG")
            }
            _ => {}
        }
        v.child("load_balancing_policy", &self.load_balancing_policy);
        if self.connect_timeout.is_some_and(|d| d.is_zero()) {
            v.error("connect_timeout", "must be greater than 0");
        }
        if self.dns_refresh_rate.is_some_and(|d| d.get() < std::time::Duration::from_millis(1)) {
            v.error("dns_refresh_rate", "must be at least 1ms");
        }
        if let Some(r) = &self.dns_failure_refresh_rate {
            v.field("dns_failure_refresh_rate", |v| match r.base_interval {
                None => v.error("base_interval", "must be set"),
                Some(b) if b.get() < std::time::Duration::from_millis(1) => {
                    v.error("base_interval", "must be at least 1ms")
                }
                Some(b) => {
                    if r.max_interval.is_some_and(|m| m < b) {
                        v.error("max_interval", "must not be less than base_interval");
                    }
                }
            });
        }
        if self.per_connection_buffer_limit_bytes == Some(0) {
            v.error("per_connection_buffer_limit_bytes", "must be greater than 0");
        }
        validate_resolvers(v, "dns_resolvers", &self.dns_resolvers);
        v.child("dns_resolution_config", &self.dns_resolution_config);
        v.child("typed_dns_resolver_config", &self.typed_dns_resolver_config);
        v.each("health_checks", &self.health_checks);
        v.child("circuit_breakers", &self.circuit_breakers);
        v.child("outlier_detection", &self.outlier_detection);
        v.child("common_lb_config", &self.common_lb_config);
        v.child("ring_hash_lb_config", &self.ring_hash_lb_config);
        v.child("maglev_lb_config", &self.maglev_lb_config);
        v.child("least_request_lb_config", &self.least_request_lb_config);
        v.child("common_http_protocol_options", &self.common_http_protocol_options);
        v.child("http_protocol_options", &self.http_protocol_options);
        v.child("upstream_connection_options", &self.upstream_connection_options);
        validate_protocol_options(v, &self.typed_extension_protocol_options, grpc_cluster);
        if self.http2_protocol_options.is_some() && !grpc_cluster {
            v.unsupported(
                "http2_protocol_options",
                "upstream HTTP/2 is only used for gRPC xDS clusters; proxied traffic uses HTTP/1.1",
            );
        }
        if let Some(rr) = &self.round_robin_lb_config
            && rr.slow_start_config.is_some()
        {
            v.field("round_robin_lb_config", |v| {
                v.unsupported("slow_start_config", "new hosts get full weight at once")
            });
        }
        const TLS: &str = "TLS to upstreams is not supported; clusters connect over plain TCP";
        for (name, set, hint) in [
            ("transport_socket", self.transport_socket.is_some(), TLS),
            ("transport_socket_matches", !self.transport_socket_matches.is_empty(), TLS),
            ("upstream_http_protocol_options", self.upstream_http_protocol_options.is_some(), TLS),
            (
                "upstream_bind_config",
                self.upstream_bind_config.is_some(),
                "the OS picks the source address",
            ),
            (
                "lb_subset_config",
                self.lb_subset_config.is_some(),
                "subset load balancing is not supported",
            ),
            (
                "original_dst_lb_config",
                self.original_dst_lb_config.is_some(),
                "ORIGINAL_DST is not supported",
            ),
            ("filters", !self.filters.is_empty(), "upstream network filters are not supported"),
            ("lrs_server", self.lrs_server.is_some(), "load reporting is not supported"),
            (
                "upstream_config",
                self.upstream_config.is_some(),
                "the built-in HTTP/1.1 and TCP upstreams",
            ),
            (
                "preconnect_policy",
                self.preconnect_policy.is_some(),
                "connections are opened on demand",
            ),
            (
                "connection_pool_per_downstream_connection",
                self.connection_pool_per_downstream_connection,
                "pools are per worker",
            ),
        ] {
            if set {
                v.unsupported(name, hint);
            }
        }
    }

    fn validate_endpoints(&self, v: &mut Validator) {
        let Some(la) = &self.load_assignment else { return };
        v.field("load_assignment", |v| {
            la.validate(v);
            let total: usize = la.endpoints.iter().map(|l| l.lb_endpoints.len()).sum();
            if self.cluster_type == DiscoveryType::LogicalDns && total != 1 {
                v.error_here(format!(
                    "a LOGICAL_DNS cluster needs exactly one endpoint, found {total}"
                ));
            }
            v.field("endpoints", |v| {
                for (i, l) in la.endpoints.iter().enumerate() {
                    v.index(i, |v| {
                        v.field("lb_endpoints", |v| {
                            for (j, e) in l.lb_endpoints.iter().enumerate() {
                                let Some(sa) = e.socket_address() else { continue };
                                let is_ip = sa.address.parse::<std::net::IpAddr>().is_ok();
                                v.index(j, |v| {
                                    v.field("endpoint", |v| {
                                        v.field("address", |v| {
                                            v.field("socket_address", |v| {
                                                if self.cluster_type == DiscoveryType::Static && !is_ip && !sa.address.is_empty() {
                                                    v.error("address", format!(
                                                        "{:?} is not an IP address (a STATIC cluster needs IPs; use STRICT_DNS or LOGICAL_DNS for host names)",
                                                        sa.address
                                                    ));
                                                }
                                                if self.cluster_type != DiscoveryType::Static && sa.port_value == Some(0) {
                                                    v.error("port_value", "a DNS cluster needs a port");
                                                }
                                            });
                                        });
                                    });
                                });
                            }
                        });
                    });
                }
            });
        });
    }
}

impl Validate for Cluster {
    fn validate(&self, v: &mut Validator) {
        self.validate_for(v, false);
    }
}
