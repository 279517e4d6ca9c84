//! A loaded cluster turned into runtime objects: Envoy's `Upstream::ClusterInfo`
//! (`ClusterInfoImpl`) and a cluster's initial host set.
//!
//! The main thread calls [`ClusterInfo::from_config`] once per `Cluster` (static
//! or from CDS) and shares the result as `Arc<ClusterInfo>`: immutable settings
//! that the router, connection pools, health checker and DNS refresher read.
//! Hosts come from the cluster's `load_assignment` (or later from EDS / DNS):
//!
//! ```text
//!  config::cluster::Cluster ──ClusterInfo::from_config──► ClusterInfo
//!     │                         (defaults applied,          ├─ lb_config ──────────┐
//!     │                          LB and breaker config       └─ circuit_breakers    │
//!     │                          mapped onto week 1 types)                          ▼
//!     └─ load_assignment ──priority_set_from_assignment──► PrioritySet ──► LoadBalancerFactory
//!                            (IPs as-is, names via `resolve`)
//! ```
//!
//! Errors are [`ConfigError`]s that name the field path under the `at` the
//! caller passes (for example `static_resources.clusters[2]`). The cluster is
//! expected to have passed the config loader's validation, which already
//! refuses unsupported fields; this module re-checks only what changes the
//! mapping (load-balancer choice and parameters, addresses, ports, weights).
//!
//! Deviations from Envoy: a locality's `load_balancing_weight` must be the same
//! at every priority it appears in (one weight per locality per cluster), and
//! endpoint weights are limited to 1..=128 like the week 1 [`Host`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use super::ClusterError;
use super::circuit_breaker::{CircuitBreakerThresholds, ClusterCircuitBreakers};
use super::host::{HealthFlags, Host, Locality};
use super::host_set::{PrioritySet, PrioritySetBuilder};
use super::lb::{
    CommonLbConfig, LbConfig, LbPolicy, LeastRequestConfig, LoadBalancerFactory, LocalityLbConfig,
    MaglevConfig, RingHashConfig, ZoneAwareLbConfig,
};
use crate::config::FieldPath;
use crate::config::cluster::{self as cfg, Cluster, LbPolicyConfig};
pub use crate::config::cluster::{DiscoveryType, DnsLookupFamily, OutlierDetection};
use crate::config::endpoint::{ClusterLoadAssignment, HealthStatus};
pub use crate::config::health_check::HealthCheck;
use crate::config::protocol::{Http1ProtocolOptions, ProtocolOptionsConfig, TcpKeepalive};
use crate::config::{ConfigError, types};

/// A resolver: `(host name, port)` to addresses, or an error message.
/// [`system_resolver`] is the blocking one for the main thread at startup;
/// tests pass a closure.
pub type Resolve<'a> = dyn FnMut(&str, u16) -> Result<Vec<SocketAddr>, String> + 'a;

/// `circuit_breakers.thresholds[].retry_budget`: when set, it replaces
/// `max_retries` for its priority (Envoy's `RetryBudgetImpl`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// Retries allowed as a percentage of active plus pending requests (default 20).
    pub budget_percent: f64,
    /// Retries always allowed, whatever the budget (default 3).
    pub min_retry_concurrency: u32,
}

impl RetryBudget {
    /// The retry limit for `active_and_pending` requests in flight:
    /// `max(budget_percent% × active_and_pending, min_retry_concurrency)`.
    pub fn max_retries(&self, active_and_pending: u64) -> u64 {
        let budget = (self.budget_percent / 100.0 * active_and_pending as f64) as u64;
        budget.max(u64::from(self.min_retry_concurrency))
    }
}

/// Retry budgets per routing priority (`None`: `max_retries` applies).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RetryBudgets {
    /// The `DEFAULT` priority's budget.
    pub default: Option<RetryBudget>,
    /// The `HIGH` priority's budget.
    pub high: Option<RetryBudget>,
}

impl RetryBudgets {
    /// The budget for `priority`.
    pub fn for_priority(&self, priority: super::RoutingPriority) -> Option<&RetryBudget> {
        match priority {
            super::RoutingPriority::Default => self.default.as_ref(),
            super::RoutingPriority::High => self.high.as_ref(),
        }
    }
}

/// `dns_failure_refresh_rate`: exponential backoff after a failed resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsFailureRefreshRate {
    /// First retry interval.
    pub base_interval: Duration,
    /// Longest retry interval (default 10 × base).
    pub max_interval: Duration,
}

/// Envoy's `Upstream::ClusterInfo`: a cluster's immutable settings with
/// Envoy's defaults applied. Built once per cluster (version) on the main
/// thread and shared as `Arc<ClusterInfo>`.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    /// `name`.
    pub name: String,
    /// Name for stats: `alt_stat_name`, else `name` (Envoy's `observabilityName`).
    pub observability_name: String,
    /// `type`.
    pub discovery: DiscoveryType,
    /// The ClusterLoadAssignment name EDS asks for (`eds_cluster_config.service_name`,
    /// else `name`); `None` for other discovery types.
    pub eds_service_name: Option<String>,
    /// `connect_timeout` (default 5 s).
    pub connect_timeout: Duration,
    /// Load balancer and its parameters, from `lb_policy` / `load_balancing_policy`
    /// and the `*_lb_config` fields.
    pub lb_config: LbConfig,
    /// Circuit breakers for both routing priorities (Envoy defaults 1024/1024/1024/3).
    pub circuit_breakers: Arc<ClusterCircuitBreakers>,
    /// Retry budgets that replace `max_retries`, per priority.
    pub retry_budgets: RetryBudgets,
    /// `per_connection_buffer_limit_bytes` (default 1 MiB).
    pub per_connection_buffer_limit_bytes: u32,
    /// Requests per upstream connection before it is closed (`None`: no limit),
    /// from `common_http_protocol_options` or the deprecated cluster field.
    pub max_requests_per_connection: Option<u32>,
    /// Upstream connection idle timeout (default 1 h; `None` when set to 0).
    pub idle_timeout: Option<Duration>,
    /// Upstream connection lifetime limit (`None`: unset or 0).
    pub max_connection_duration: Option<Duration>,
    /// Upstream stream lifetime limit (`None`: unset or 0).
    pub max_stream_duration: Option<Duration>,
    /// Most headers in an upstream response (default 100).
    pub max_headers_count: u32,
    /// Largest upstream response headers in KiB (default 60).
    pub max_response_headers_kb: u32,
    /// Upstream HTTP/1.1 codec options (`explicit_http_config.http_protocol_options`,
    /// else the deprecated `http_protocol_options`).
    pub http1_protocol_options: Http1ProtocolOptions,
    /// `upstream_connection_options.tcp_keepalive`.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// `dns_refresh_rate` (default 5 s).
    pub dns_refresh_rate: Duration,
    /// `dns_failure_refresh_rate` (`None`: retry at `dns_refresh_rate`).
    pub dns_failure_refresh_rate: Option<DnsFailureRefreshRate>,
    /// `respect_dns_ttl`.
    pub respect_dns_ttl: bool,
    /// `dns_lookup_family` (default AUTO).
    pub dns_lookup_family: DnsLookupFamily,
    /// `wait_for_warm_on_init` (default true).
    pub wait_for_warm_on_init: bool,
    /// `health_checks`, as configured.
    pub health_checks: Vec<HealthCheck>,
    /// `outlier_detection`, as configured.
    pub outlier_detection: Option<OutlierDetection>,
    /// `ignore_health_on_host_removal`.
    pub ignore_health_on_host_removal: bool,
    /// `close_connections_on_host_health_failure`.
    pub close_connections_on_host_health_failure: bool,
    /// `common_lb_config.ignore_new_hosts_until_first_hc`.
    pub ignore_new_hosts_until_first_hc: bool,
    /// `common_lb_config.close_connections_on_host_set_change`.
    pub close_connections_on_host_set_change: bool,
    /// `common_lb_config.update_merge_window` (default 1 s; zero: no merging).
    pub update_merge_window: Duration,
}

impl ClusterInfo {
    /// Builds the runtime settings of `c`; `at` is the cluster's own path
    /// (for example `static_resources.clusters[2]`), used in errors.
    pub fn from_config(c: &Cluster, at: &FieldPath) -> Result<ClusterInfo, ConfigError> {
        if c.name.is_empty() {
            return Err(ConfigError::invalid(at.field("name"), "must not be empty"));
        }
        if c.cluster_type == DiscoveryType::OriginalDst {
            return Err(ConfigError::unsupported(
                at.field("type"),
                "ORIGINAL_DST needs transparent proxying; use STATIC, STRICT_DNS, LOGICAL_DNS or EDS",
            ));
        }
        let http = c.http_protocol_options();
        let max_requests_per_connection = match (
            http.max_requests_per_connection,
            c.max_requests_per_connection,
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    at.field("max_requests_per_connection"),
                    "set either this deprecated field or common_http_protocol_options.max_requests_per_connection, not both",
                ));
            }
            (Some(n), None) | (None, Some(n)) => Some(n).filter(|&n| n > 0),
            (None, None) => None,
        };
        let (circuit_breakers, retry_budgets) = circuit_breakers(c.circuit_breakers.as_ref());
        let common = c.common_lb_config.as_ref();
        Ok(ClusterInfo {
            name: c.name.clone(),
            observability_name: if c.alt_stat_name.is_empty() {
                c.name.clone()
            } else {
                c.alt_stat_name.clone()
            },
            discovery: c.cluster_type,
            eds_service_name: (c.cluster_type == DiscoveryType::Eds)
                .then(|| c.eds_service_name().to_string()),
            connect_timeout: c.connect_timeout(),
            lb_config: lb_config(c, at)?,
            circuit_breakers: Arc::new(circuit_breakers),
            retry_budgets,
            per_connection_buffer_limit_bytes: c.per_connection_buffer_limit_bytes(),
            max_requests_per_connection,
            idle_timeout: http.idle_timeout(),
            max_connection_duration: nonzero(http.max_connection_duration),
            max_stream_duration: nonzero(http.max_stream_duration),
            max_headers_count: http.max_headers_count(),
            max_response_headers_kb: http.max_response_headers_kb.unwrap_or(60),
            http1_protocol_options: http1_options(c),
            tcp_keepalive: c.upstream_connection_options.as_ref().and_then(|o| o.tcp_keepalive),
            dns_refresh_rate: c.dns_refresh_rate(),
            dns_failure_refresh_rate: c.dns_failure_refresh_rate.as_ref().and_then(|r| {
                let base = r.base_interval?.get();
                Some(DnsFailureRefreshRate {
                    base_interval: base,
                    max_interval: r.max_interval.map_or(base * 10, types::Duration::get),
                })
            }),
            respect_dns_ttl: c.respect_dns_ttl,
            dns_lookup_family: c.dns_lookup_family,
            wait_for_warm_on_init: c.wait_for_warm_on_init.unwrap_or(true),
            health_checks: c.health_checks.clone(),
            outlier_detection: c.outlier_detection.clone(),
            ignore_health_on_host_removal: c.ignore_health_on_host_removal,
            close_connections_on_host_health_failure: c.close_connections_on_host_health_failure,
            ignore_new_hosts_until_first_hc: common
                .is_some_and(|x| x.ignore_new_hosts_until_first_hc),
            close_connections_on_host_set_change: common
                .is_some_and(|x| x.close_connections_on_host_set_change),
            update_merge_window: common
                .and_then(|x| x.update_merge_window)
                .map_or(Duration::from_secs(1), types::Duration::get),
        })
    }

    /// The hosts `c` starts with: its `load_assignment` for STATIC, STRICT_DNS
    /// and LOGICAL_DNS clusters (host names resolved with `resolve`, answers
    /// filtered by `dns_lookup_family`, LOGICAL_DNS keeping the first address),
    /// and an empty set for EDS, whose hosts arrive from the management server.
    /// `c` must be the cluster this info was built from; `at` is its path.
    pub fn initial_priority_set(
        &self,
        c: &Cluster,
        resolve: &mut Resolve<'_>,
        at: &FieldPath,
    ) -> Result<PrioritySet, ConfigError> {
        let Some(assignment) =
            c.load_assignment.as_ref().filter(|_| self.discovery != DiscoveryType::Eds)
        else {
            return PrioritySet::builder().build().map_err(|e| cluster_error(at, e));
        };
        let discovery = self.discovery;
        let family = self.dns_lookup_family;
        let mut resolve_for_type = |name: &str, port: u16| match discovery {
            DiscoveryType::StrictDns => Ok(filter_lookup_family(family, resolve(name, port)?)),
            DiscoveryType::LogicalDns => {
                let mut addrs = filter_lookup_family(family, resolve(name, port)?);
                addrs.truncate(1);
                Ok(addrs)
            }
            DiscoveryType::Static | DiscoveryType::Eds | DiscoveryType::OriginalDst => {
                Err(format!(
                    "not an IP address (a {} cluster needs IPs; use STRICT_DNS or LOGICAL_DNS for host names)",
                    discovery_name(discovery)
                ))
            }
        };
        priority_set_from_assignment(
            assignment,
            &mut resolve_for_type,
            &at.field("load_assignment"),
        )
    }

    /// A load-balancer factory for a snapshot of this cluster's hosts (no
    /// zone-aware routing; for that, call [`LoadBalancerFactory::new`] with
    /// the local cluster's priority set).
    pub fn create_lb_factory(
        &self,
        priority_set: Arc<PrioritySet>,
    ) -> Result<LoadBalancerFactory, ClusterError> {
        LoadBalancerFactory::new(&self.lb_config, priority_set, None)
    }
}

/// Builds the host set of a `ClusterLoadAssignment` (from `load_assignment`
/// or EDS): one host per `endpoints[].lb_endpoints[]` with its weight,
/// hostname, EDS health, locality and priority; locality weights and the
/// overprovisioning factor from the assignment. An IP `socket_address.address`
/// is used as-is; any other name is passed to `resolve(name, port)` and every
/// returned address becomes a host (so the caller decides what a name means
/// for the cluster type; [`ClusterInfo::initial_priority_set`] does that).
/// `at` is the assignment's path.
pub fn priority_set_from_assignment(
    assignment: &ClusterLoadAssignment,
    resolve: &mut Resolve<'_>,
    at: &FieldPath,
) -> Result<PrioritySet, ConfigError> {
    priority_set_builder_from_assignment(assignment, resolve, at)?
        .build()
        .map_err(|e| cluster_error(at, e))
}

/// [`priority_set_from_assignment`] stopped before `build()`, so the caller
/// can add what the assignment does not say (the proxy's own locality for
/// zone-aware routing: [`PrioritySetBuilder::local_locality`]).
pub fn priority_set_builder_from_assignment(
    assignment: &ClusterLoadAssignment,
    resolve: &mut Resolve<'_>,
    at: &FieldPath,
) -> Result<PrioritySetBuilder, ConfigError> {
    let mut builder = PrioritySet::builder();
    if let Some(policy) = &assignment.policy {
        let factor = policy.overprovisioning_factor.unwrap_or(140);
        if factor == 0 {
            return Err(ConfigError::invalid(
                at.field("policy").field("overprovisioning_factor"),
                "must be greater than 0",
            ));
        }
        builder = builder
            .overprovisioning_factor(factor)
            .weighted_priority_health(policy.weighted_priority_health);
    }
    let mut locality_weights: Vec<(Locality, u32, usize)> = Vec::new();
    for (i, group) in assignment.endpoints.iter().enumerate() {
        let group_at = at.field("endpoints").index(i);
        let locality = group
            .locality
            .as_ref()
            .map(|l| Locality::new(&l.region, &l.zone, &l.sub_zone))
            .unwrap_or_default();
        if group.priority > super::host_set::MAX_PRIORITY {
            return Err(ConfigError::invalid(
                group_at.field("priority"),
                format!(
                    "{} is above the highest priority level {}",
                    group.priority,
                    super::host_set::MAX_PRIORITY
                ),
            ));
        }
        if let Some(weight) = group.load_balancing_weight {
            if weight == 0 {
                return Err(ConfigError::invalid(
                    group_at.field("load_balancing_weight"),
                    "must be at least 1",
                ));
            }
            match locality_weights.iter().find(|(l, _, _)| *l == locality) {
                Some((_, w, first)) if *w != weight => {
                    return Err(ConfigError::unsupported(
                        group_at.field("load_balancing_weight"),
                        format!(
                            "one weight per locality: endpoints[{first}] gives locality {locality} weight {w}"
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    locality_weights.push((locality.clone(), weight, i));
                    builder = builder.locality_weight(locality.clone(), weight);
                }
            }
        }
        for (j, lb_endpoint) in group.lb_endpoints.iter().enumerate() {
            let ep_at = group_at.field("lb_endpoints").index(j);
            let Some(endpoint) = &lb_endpoint.endpoint else {
                return Err(if lb_endpoint.endpoint_name.is_some() {
                    ConfigError::unsupported(
                        ep_at.field("endpoint_name"),
                        "give the endpoint inline",
                    )
                } else {
                    ConfigError::invalid(ep_at.field("endpoint"), "must be set")
                });
            };
            let addr_at = ep_at.field("endpoint").field("address");
            let Some(address) = &endpoint.address else {
                return Err(ConfigError::invalid(addr_at, "must be set"));
            };
            let Some(sa) = &address.socket_address else {
                return Err(ConfigError::unsupported(
                    addr_at,
                    "upstream endpoints are socket_address (IP or host name and port_value)",
                ));
            };
            let sa_at = addr_at.field("socket_address");
            if sa.named_port.is_some() {
                return Err(ConfigError::unsupported(sa_at.field("named_port"), "use port_value"));
            }
            let port = sa.port_value.unwrap_or(0);
            let port = u16::try_from(port).map_err(|_| {
                ConfigError::invalid(
                    sa_at.field("port_value"),
                    format!("{port} is not a port (0 to 65535)"),
                )
            })?;
            let (addrs, dns_name) = match sa.address.parse::<std::net::IpAddr>() {
                Ok(ip) => (vec![SocketAddr::new(ip, port)], None),
                Err(_) if sa.address.is_empty() => {
                    return Err(ConfigError::invalid(sa_at.field("address"), "must not be empty"));
                }
                Err(_) => {
                    let addrs = resolve(&sa.address, port).map_err(|msg| {
                        ConfigError::invalid(
                            sa_at.field("address"),
                            format!("{:?}: {msg}", sa.address),
                        )
                    })?;
                    (addrs, Some(sa.address.as_str()))
                }
            };
            // Envoy names a DNS host after its DNS name unless `hostname` is set.
            let hostname = match dns_name {
                Some(name) if endpoint.hostname.is_empty() => name,
                _ => endpoint.hostname.as_str(),
            };
            let flags = eds_health_flags(lb_endpoint.health_status);
            for addr in addrs {
                let host = Host::builder(addr)
                    .hostname(hostname)
                    .weight(lb_endpoint.weight())
                    .locality(locality.clone())
                    .priority(group.priority)
                    .health_flags(flags)
                    .build()
                    .map_err(|e| match e {
                        ClusterError::InvalidHostWeight { .. } => ConfigError::invalid(
                            ep_at.field("load_balancing_weight"),
                            e.to_string(),
                        ),
                        other => cluster_error(&ep_at, other),
                    })?;
                builder = builder.host(host);
            }
        }
    }
    Ok(builder)
}

/// Envoy's `HostImplBase::setEdsHealthFlag`: the flags an endpoint's
/// `health_status` sets (UNKNOWN and HEALTHY set none).
pub fn eds_health_flags(status: HealthStatus) -> HealthFlags {
    match status {
        HealthStatus::Unknown | HealthStatus::Healthy => HealthFlags::empty(),
        HealthStatus::Unhealthy | HealthStatus::Timeout => HealthFlags::FAILED_EDS_HEALTH,
        HealthStatus::Draining => HealthFlags::EDS_STATUS_DRAINING,
        HealthStatus::Degraded => HealthFlags::DEGRADED_EDS_HEALTH,
    }
}

/// Resolves `host:port` with the operating system's resolver (std's
/// `ToSocketAddrs`). Blocking: for the main thread at startup only.
pub fn system_resolver(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    (host, port).to_socket_addrs().map(Iterator::collect).map_err(|e| e.to_string())
}

/// Keeps the addresses `family` asks for, in resolver order: AUTO prefers
/// IPv6 and falls back to IPv4, V4_PREFERRED the reverse, ALL keeps both.
pub fn filter_lookup_family(family: DnsLookupFamily, addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let only = |v6: bool, addrs: &[SocketAddr]| -> Vec<SocketAddr> {
        addrs.iter().copied().filter(|a| a.is_ipv6() == v6).collect()
    };
    let preferring = |v6: bool| {
        let preferred = only(v6, &addrs);
        if preferred.is_empty() { only(!v6, &addrs) } else { preferred }
    };
    match family {
        DnsLookupFamily::All => addrs,
        DnsLookupFamily::V4Only => only(false, &addrs),
        DnsLookupFamily::V6Only => only(true, &addrs),
        DnsLookupFamily::Auto => preferring(true),
        DnsLookupFamily::V4Preferred => preferring(false),
    }
}

fn discovery_name(d: DiscoveryType) -> &'static str {
    match d {
        DiscoveryType::Static => "STATIC",
        DiscoveryType::StrictDns => "STRICT_DNS",
        DiscoveryType::LogicalDns => "LOGICAL_DNS",
        DiscoveryType::Eds => "EDS",
        DiscoveryType::OriginalDst => "ORIGINAL_DST",
    }
}

fn cluster_error(at: &FieldPath, e: ClusterError) -> ConfigError {
    ConfigError::invalid(at.clone(), e.to_string())
}

fn nonzero(d: Option<types::Duration>) -> Option<Duration> {
    d.filter(|d| !d.is_zero()).map(types::Duration::get)
}

/// Rounds a protobuf `Percent` as Envoy's `PROTOBUF_PERCENT_TO_ROUNDED_INTEGER_OR_DEFAULT`.
fn rounded_percent(p: Option<types::Percent>, default: u32) -> u32 {
    p.map_or(default, |p| p.value.clamp(0.0, 100.0).round() as u32)
}

fn http1_options(c: &Cluster) -> Http1ProtocolOptions {
    c.typed_extension_protocol_options
        .values()
        .find_map(|p| match p {
            ProtocolOptionsConfig::Http(h) => {
                h.explicit_http_config.as_ref()?.http_protocol_options.clone()
            }
        })
        .or_else(|| c.http_protocol_options.clone())
        .unwrap_or_default()
}

fn circuit_breakers(cb: Option<&cfg::CircuitBreakers>) -> (ClusterCircuitBreakers, RetryBudgets) {
    let per_priority = |p: cfg::RoutingPriority| {
        let t = cb
            .map(|cb| cb.for_priority(p))
            .unwrap_or(cfg::Thresholds { priority: p, ..Default::default() });
        let thresholds = CircuitBreakerThresholds {
            max_connections: u64::from(t.max_connections()),
            max_pending_requests: u64::from(t.max_pending_requests()),
            max_requests: u64::from(t.max_requests()),
            max_retries: u64::from(t.max_retries()),
            max_connection_pools: t.max_connection_pools.map(u64::from),
        };
        let budget = t.retry_budget.as_ref().map(|b| RetryBudget {
            budget_percent: b.budget_percent.map_or(20.0, |p| p.value),
            min_retry_concurrency: b.min_retry_concurrency.unwrap_or(3),
        });
        (thresholds, budget)
    };
    let (default, default_budget) = per_priority(cfg::RoutingPriority::Default);
    let (high, high_budget) = per_priority(cfg::RoutingPriority::High);
    (
        ClusterCircuitBreakers::new(&default, &high),
        RetryBudgets { default: default_budget, high: high_budget },
    )
}

fn zone_aware(
    z: &cfg::ZoneAwareLbConfig,
    at: &FieldPath,
) -> Result<ZoneAwareLbConfig, ConfigError> {
    if z.force_local_zone.is_some() {
        return Err(ConfigError::unsupported(
            at.field("force_local_zone"),
            "Envoy's default zone-aware routing",
        ));
    }
    if z.locality_basis.is_some() {
        return Err(ConfigError::unsupported(
            at.field("locality_basis"),
            "localities are weighted by healthy hosts",
        ));
    }
    if z.force_locality_direct_routing {
        return Err(ConfigError::unsupported(
            at.field("force_locality_direct_routing"),
            "Envoy's default zone-aware routing",
        ));
    }
    let defaults = ZoneAwareLbConfig::default();
    Ok(ZoneAwareLbConfig {
        routing_enabled: rounded_percent(z.routing_enabled, defaults.routing_enabled),
        min_cluster_size: z.min_cluster_size.unwrap_or(defaults.min_cluster_size),
        fail_traffic_on_panic: z.fail_traffic_on_panic,
        ..defaults
    })
}

/// `zone_aware_lb_config` / `locality_weighted_lb_config` (a oneof) at `at`.
fn locality_config(
    zone: Option<&cfg::ZoneAwareLbConfig>,
    weighted: bool,
    at: &FieldPath,
) -> Result<LocalityLbConfig, ConfigError> {
    match (zone, weighted) {
        (Some(_), true) => Err(ConfigError::invalid(
            at.clone(),
            "set only one of zone_aware_lb_config and locality_weighted_lb_config",
        )),
        (Some(z), false) => {
            Ok(LocalityLbConfig::ZoneAware(zone_aware(z, &at.field("zone_aware_lb_config"))?))
        }
        (None, true) => Ok(LocalityLbConfig::LocalityWeighted),
        (None, false) => Ok(LocalityLbConfig::default()),
    }
}

fn check_hash_function(h: cfg::HashFunction, at: &FieldPath) -> Result<(), ConfigError> {
    if h == cfg::HashFunction::MurmurHash2 {
        return Err(ConfigError::unsupported(at.field("hash_function"), "XX_HASH"));
    }
    Ok(())
}

/// Maps `lb_policy` (with its legacy `*_lb_config` fields) or the first
/// `load_balancing_policy` entry onto [`LbConfig`]. `healthy_panic_threshold`
/// comes from `common_lb_config` either way, as in Envoy.
fn lb_config(c: &Cluster, at: &FieldPath) -> Result<LbConfig, ConfigError> {
    let common_at = at.field("common_lb_config");
    let common_cfg = c.common_lb_config.as_ref();
    let mut lb = LbConfig {
        common: CommonLbConfig {
            healthy_panic_threshold: rounded_percent(
                common_cfg.and_then(|x| x.healthy_panic_threshold),
                50,
            ),
            ..CommonLbConfig::default()
        },
        ..LbConfig::default()
    };
    // Where a parameter error points: the typed policy, or the legacy field.
    let source: Box<dyn Fn(&ClusterError) -> FieldPath>;
    if let Some(policy) = &c.load_balancing_policy {
        let policies_at = at.field("load_balancing_policy").field("policies");
        let typed_at = policies_at.index(0).field("typed_extension_config").field("typed_config");
        let Some(first) = policy.first() else {
            return Err(ConfigError::invalid(
                policies_at,
                "needs a first policy with typed_extension_config.typed_config",
            ));
        };
        let (policy, e) = match first {
            LbPolicyConfig::RoundRobin(e) => (LbPolicy::RoundRobin, e),
            LbPolicyConfig::LeastRequest(e) => (LbPolicy::LeastRequest, e),
            LbPolicyConfig::Random(e) => (LbPolicy::Random, e),
            LbPolicyConfig::RingHash(e) => (LbPolicy::RingHash, e),
            LbPolicyConfig::Maglev(e) => (LbPolicy::Maglev, e),
        };
        lb.policy = policy;
        for (name, set) in [
            ("slow_start_config", e.slow_start_config.is_some()),
            ("selection_method", e.selection_method.is_some() || e.enable_full_scan.is_some()),
            ("hash_balance_factor", e.hash_balance_factor.is_some()),
        ] {
            if set {
                return Err(ConfigError::unsupported(
                    typed_at.field(name),
                    "the built-in round robin, least request, random, ring hash and Maglev without this option",
                ));
            }
        }
        lb.common.locality = match &e.locality_lb_config {
            Some(l) => locality_config(
                l.zone_aware_lb_config.as_ref(),
                l.locality_weighted_lb_config.is_some(),
                &typed_at.field("locality_lb_config"),
            )?,
            None if e.locality_weighted_lb_config.is_some() => LocalityLbConfig::LocalityWeighted,
            None => LocalityLbConfig::default(),
        };
        lb.common.use_hostname_for_hashing = e.use_hostname_for_hashing
            || e.consistent_hashing_lb_config.as_ref().is_some_and(|h| h.use_hostname_for_hashing);
        if policy == LbPolicy::RingHash {
            check_hash_function(e.hash_function, &typed_at)?;
        }
        let defaults = LbConfig::default();
        lb.ring_hash = RingHashConfig {
            minimum_ring_size: e.minimum_ring_size.unwrap_or(defaults.ring_hash.minimum_ring_size),
            maximum_ring_size: e.maximum_ring_size.unwrap_or(defaults.ring_hash.maximum_ring_size),
        };
        lb.maglev = MaglevConfig { table_size: e.table_size.unwrap_or(defaults.maglev.table_size) };
        lb.least_request = LeastRequestConfig {
            choice_count: e.choice_count.unwrap_or(defaults.least_request.choice_count),
            active_request_bias: e
                .active_request_bias
                .as_ref()
                .map_or(defaults.least_request.active_request_bias, |b| b.default_value),
        };
        source = Box::new(move |err| match err {
            ClusterError::InvalidPercent { .. } => common_at.clone(),
            _ => typed_at.clone(),
        });
    } else {
        lb.policy = match c.lb_policy {
            cfg::LbPolicy::RoundRobin => LbPolicy::RoundRobin,
            cfg::LbPolicy::LeastRequest => LbPolicy::LeastRequest,
            cfg::LbPolicy::Random => LbPolicy::Random,
            cfg::LbPolicy::RingHash => LbPolicy::RingHash,
            cfg::LbPolicy::Maglev => LbPolicy::Maglev,
            cfg::LbPolicy::ClusterProvided => {
                return Err(ConfigError::unsupported(
                    at.field("lb_policy"),
                    "CLUSTER_PROVIDED goes with ORIGINAL_DST; use ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH or MAGLEV",
                ));
            }
            cfg::LbPolicy::LoadBalancingPolicyConfig => {
                return Err(ConfigError::invalid(
                    at.field("load_balancing_policy"),
                    "must be set when lb_policy is LOAD_BALANCING_POLICY_CONFIG",
                ));
            }
        };
        if let Some(common) = common_cfg {
            lb.common.locality = locality_config(
                common.zone_aware_lb_config.as_ref(),
                common.locality_weighted_lb_config.is_some(),
                &common_at,
            )?;
            lb.common.use_hostname_for_hashing = common
                .consistent_hashing_lb_config
                .as_ref()
                .is_some_and(|h| h.use_hostname_for_hashing);
        }
        if let Some(r) = &c.ring_hash_lb_config {
            if lb.policy == LbPolicy::RingHash {
                check_hash_function(r.hash_function, &at.field("ring_hash_lb_config"))?;
            }
            lb.ring_hash = RingHashConfig {
                minimum_ring_size: r.minimum_ring_size(),
                maximum_ring_size: r.maximum_ring_size(),
            };
        }
        if let Some(m) = &c.maglev_lb_config {
            lb.maglev = MaglevConfig { table_size: m.table_size() };
        }
        if let Some(l) = &c.least_request_lb_config {
            if l.slow_start_config.is_some() {
                return Err(ConfigError::unsupported(
                    at.field("least_request_lb_config").field("slow_start_config"),
                    "new hosts get full weight at once",
                ));
            }
            lb.least_request = LeastRequestConfig {
                choice_count: l.choice_count(),
                active_request_bias: l
                    .active_request_bias
                    .as_ref()
                    .map_or(LeastRequestConfig::default().active_request_bias, |b| b.default_value),
            };
        }
        if c.round_robin_lb_config.as_ref().is_some_and(|r| r.slow_start_config.is_some()) {
            return Err(ConfigError::unsupported(
                at.field("round_robin_lb_config").field("slow_start_config"),
                "new hosts get full weight at once",
            ));
        }
        let at = at.clone();
        source = Box::new(move |err| match err {
            ClusterError::InvalidPercent { .. } => common_at.clone(),
            ClusterError::InvalidRingSize { .. } => at.field("ring_hash_lb_config"),
            ClusterError::MaglevTableNotPrime { .. } | ClusterError::MaglevTableTooLarge { .. } => {
                at.field("maglev_lb_config").field("table_size")
            }
            ClusterError::InvalidChoiceCount { .. } => {
                at.field("least_request_lb_config").field("choice_count")
            }
            ClusterError::InvalidActiveRequestBias { .. } => {
                at.field("least_request_lb_config").field("active_request_bias")
            }
            _ => at.clone(),
        });
    }
    lb.validate().map_err(|e| ConfigError::invalid(source(&e), e.to_string()))?;
    Ok(lb)
}
