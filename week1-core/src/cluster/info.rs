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
use super::circuit_breaker::{
    CircuitBreakerThresholds, ClusterCircuitBreakers, ResourceManager, RetryBudget,
};
use super::health_checker::initial_flags;
use super::host::{HealthFlags, Host, Locality};
use super::host_set::{PrioritySet, PrioritySetBuilder};
use super::lb::{
    CommonLbConfig, LbConfig, LbPolicy, LeastRequestConfig, LoadBalancerFactory, LocalityLbConfig,
    MaglevConfig, RingHashConfig, ZoneAwareLbConfig,
};
use super::outlier::OutlierPolicy;
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
    /// `outlier_detection` with Envoy's defaults applied: what workers report
    /// upstream results against.
    pub outlier_policy: Option<OutlierPolicy>,
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
        let circuit_breakers = circuit_breakers(c.circuit_breakers.as_ref());
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
            outlier_policy: c.outlier_detection.as_ref().map(OutlierPolicy::from_config),
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
        let hosts = priority_set_from_assignment(
            assignment,
            &mut resolve_for_type,
            &at.field("load_assignment"),
        )?;
        Ok(self.with_initial_health(hosts))
    }

    /// As in Envoy, hosts of an actively health-checked cluster start
    /// `FAILED_ACTIVE_HC` (and `PENDING_ACTIVE_HC` with
    /// `ignore_new_hosts_until_first_hc`) until their first check passes.
    pub fn with_initial_health(&self, hosts: PrioritySet) -> PrioritySet {
        if self.health_checks.is_empty() {
            return hosts;
        }
        let flags = initial_flags(self.ignore_new_hosts_until_first_hc);
        for hs in hosts.host_sets() {
            for h in hs.hosts() {
                h.set_health_flags(flags);
            }
        }
        hosts.rebuild()
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

fn circuit_breakers(cb: Option<&cfg::CircuitBreakers>) -> ClusterCircuitBreakers {
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
        ResourceManager::new(&thresholds).with_retry_budget(budget)
    };
    ClusterCircuitBreakers::from_managers(
        per_priority(cfg::RoutingPriority::Default),
        per_priority(cfg::RoutingPriority::High),
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::path::Path;

    use super::*;
    use crate::cluster::{HostHealth, RoutingPriority};
    use crate::config::bootstrap::{Bootstrap, DiscoveryResponse, Resource, ResourceList};
    use crate::config::load_str;

    fn cluster(yaml: &str) -> Cluster {
        load_str::<Cluster>(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    fn at() -> FieldPath {
        FieldPath::root().field("static_resources").field("clusters").index(0)
    }

    fn info(yaml: &str) -> ClusterInfo {
        ClusterInfo::from_config(&cluster(yaml), &at()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn info_err(c: &Cluster) -> String {
        ClusterInfo::from_config(c, &at()).expect_err("must be refused").to_string()
    }

    fn no_dns(name: &str, _: u16) -> Result<Vec<SocketAddr>, String> {
        panic!("unexpected resolution of {name}")
    }

    fn hosts(c: &Cluster, resolve: &mut Resolve<'_>) -> Result<PrioritySet, ConfigError> {
        ClusterInfo::from_config(c, &at())?.initial_priority_set(c, resolve, &at())
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const MINIMAL: &str = "
name: backend
load_assignment:
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }
";

    #[test]
    fn defaults_are_envoys() {
        let i = info(MINIMAL);
        assert_eq!(i.name, "backend");
        assert_eq!(i.observability_name, "backend");
        assert_eq!(i.discovery, DiscoveryType::Static);
        assert_eq!(i.eds_service_name, None);
        assert_eq!(i.connect_timeout, Duration::from_secs(5));
        assert_eq!(i.lb_config, LbConfig::default());
        assert_eq!(i.lb_config.policy, LbPolicy::RoundRobin);
        assert_eq!(i.lb_config.common.healthy_panic_threshold, 50);
        for p in [RoutingPriority::Default, RoutingPriority::High] {
            let m = i.circuit_breakers.for_priority(p);
            assert_eq!(m.connections().max(), 1024);
            assert_eq!(m.pending_requests().max(), 1024);
            assert_eq!(m.requests().max(), 1024);
            assert_eq!(m.retries().max(), 3);
            assert_eq!(m.connection_pools().max(), u64::MAX);
            assert_eq!(m.retry_budget(), None);
        }
        assert_eq!(i.per_connection_buffer_limit_bytes, 1024 * 1024);
        assert_eq!(i.max_requests_per_connection, None);
        assert_eq!(i.idle_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(i.max_connection_duration, None);
        assert_eq!(i.max_stream_duration, None);
        assert_eq!((i.max_headers_count, i.max_response_headers_kb), (100, 60));
        assert_eq!(i.dns_refresh_rate, Duration::from_secs(5));
        assert_eq!(i.dns_failure_refresh_rate, None);
        assert_eq!(i.dns_lookup_family, DnsLookupFamily::Auto);
        assert!(i.wait_for_warm_on_init);
        assert!(i.health_checks.is_empty() && i.outlier_detection.is_none());
        assert!(!i.ignore_health_on_host_removal && !i.close_connections_on_host_health_failure);
        assert_eq!(i.update_merge_window, Duration::from_secs(1));
        assert_eq!(i.tcp_keepalive, None);
    }

    #[test]
    fn cluster_info_is_shared_across_threads() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        send_sync(&Arc::new(info(MINIMAL)));
    }

    #[test]
    fn explicit_settings_are_kept() {
        let i = info(
            "
name: backend
alt_stat_name: backend_stats
type: STRICT_DNS
connect_timeout: 0.25s
per_connection_buffer_limit_bytes: 32768
dns_refresh_rate: 10s
dns_failure_refresh_rate: { base_interval: 2s }
respect_dns_ttl: true
dns_lookup_family: V4_ONLY
wait_for_warm_on_init: false
ignore_health_on_host_removal: true
close_connections_on_host_health_failure: true
upstream_connection_options: { tcp_keepalive: { keepalive_time: 30 } }
common_lb_config:
  update_merge_window: 0s
  ignore_new_hosts_until_first_hc: true
health_checks:
- timeout: 1s
  interval: 5s
  unhealthy_threshold: 2
  healthy_threshold: 1
  http_health_check: { path: /healthz }
outlier_detection: { consecutive_5xx: 3 }
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    common_http_protocol_options:
      idle_timeout: 0s
      max_connection_duration: 60s
      max_requests_per_connection: 100
      max_headers_count: 50
    explicit_http_config: { http_protocol_options: { enable_trailers: true } }
",
        );
        assert_eq!(i.observability_name, "backend_stats");
        assert_eq!(i.discovery, DiscoveryType::StrictDns);
        assert_eq!(i.connect_timeout, Duration::from_millis(250));
        assert_eq!(i.per_connection_buffer_limit_bytes, 32768);
        assert_eq!(i.dns_refresh_rate, Duration::from_secs(10));
        assert_eq!(
            i.dns_failure_refresh_rate,
            Some(DnsFailureRefreshRate {
                base_interval: Duration::from_secs(2),
                max_interval: Duration::from_secs(20)
            })
        );
        assert!(i.respect_dns_ttl);
        assert_eq!(i.dns_lookup_family, DnsLookupFamily::V4Only);
        assert!(!i.wait_for_warm_on_init);
        assert!(i.ignore_health_on_host_removal && i.close_connections_on_host_health_failure);
        assert_eq!(i.tcp_keepalive.and_then(|k| k.keepalive_time), Some(30));
        assert_eq!(i.update_merge_window, Duration::ZERO);
        assert!(i.ignore_new_hosts_until_first_hc);
        assert_eq!(i.health_checks.len(), 1);
        assert_eq!(i.outlier_detection.as_ref().and_then(|o| o.consecutive_5xx), Some(3));
        assert_eq!(i.idle_timeout, None, "0 disables the idle timeout");
        assert_eq!(i.max_connection_duration, Some(Duration::from_secs(60)));
        assert_eq!(i.max_requests_per_connection, Some(100));
        assert_eq!(i.max_headers_count, 50);
        assert!(i.http1_protocol_options.enable_trailers);
    }

    #[test]
    fn max_requests_per_connection_sources() {
        let deprecated = info(&format!("{MINIMAL}max_requests_per_connection: 1\n"));
        assert_eq!(deprecated.max_requests_per_connection, Some(1));
        let legacy = info(&format!(
            "{MINIMAL}common_http_protocol_options: {{ max_requests_per_connection: 7, idle_timeout: 30s }}\n"
        ));
        assert_eq!(legacy.max_requests_per_connection, Some(7));
        assert_eq!(legacy.idle_timeout, Some(Duration::from_secs(30)));
        let zero = info(&format!("{MINIMAL}max_requests_per_connection: 0\n"));
        assert_eq!(zero.max_requests_per_connection, None, "0 is no limit");

        let both = cluster(&format!(
            "{MINIMAL}max_requests_per_connection: 1\ncommon_http_protocol_options: {{ max_requests_per_connection: 2 }}\n"
        ));
        assert!(
            info_err(&both).starts_with(
                "static_resources.clusters[0].max_requests_per_connection: set either"
            )
        );
    }

    #[test]
    fn each_lb_policy_maps() {
        let lb = |extra: &str| info(&format!("{MINIMAL}{extra}")).lb_config;
        assert_eq!(lb("lb_policy: ROUND_ROBIN\n"), LbConfig::new(LbPolicy::RoundRobin));
        assert_eq!(lb("lb_policy: RANDOM\n"), LbConfig::new(LbPolicy::Random));
        assert_eq!(lb("lb_policy: LEAST_REQUEST\n"), LbConfig::new(LbPolicy::LeastRequest));
        assert_eq!(lb("lb_policy: RING_HASH\n"), LbConfig::new(LbPolicy::RingHash));
        assert_eq!(lb("lb_policy: MAGLEV\n"), LbConfig::new(LbPolicy::Maglev));

        let c = lb(
            "lb_policy: LEAST_REQUEST\nleast_request_lb_config: { choice_count: 3, active_request_bias: { default_value: 0.5, runtime_key: k } }\n",
        );
        assert_eq!(
            c.least_request,
            LeastRequestConfig { choice_count: 3, active_request_bias: 0.5 }
        );
        let c = lb(
            "lb_policy: RING_HASH\nring_hash_lb_config: { minimum_ring_size: 64, maximum_ring_size: 4096 }\ncommon_lb_config: { consistent_hashing_lb_config: { use_hostname_for_hashing: true } }\n",
        );
        assert_eq!(c.policy, LbPolicy::RingHash);
        assert_eq!(c.ring_hash, RingHashConfig { minimum_ring_size: 64, maximum_ring_size: 4096 });
        assert!(c.common.use_hostname_for_hashing);
        let c = lb("lb_policy: MAGLEV\nmaglev_lb_config: { table_size: 251 }\n");
        assert_eq!(c.maglev, MaglevConfig { table_size: 251 });

        let c = lb(
            "common_lb_config: { healthy_panic_threshold: { value: 25.5 }, zone_aware_lb_config: { routing_enabled: { value: 40 }, min_cluster_size: 3, fail_traffic_on_panic: true } }\n",
        );
        assert_eq!(c.common.healthy_panic_threshold, 26, "rounded like Envoy");
        assert_eq!(
            c.common.locality,
            LocalityLbConfig::ZoneAware(ZoneAwareLbConfig {
                routing_enabled: 40,
                min_cluster_size: 3,
                fail_traffic_on_panic: true,
                ..ZoneAwareLbConfig::default()
            })
        );
        let c = lb("common_lb_config: { locality_weighted_lb_config: {} }\n");
        assert_eq!(c.common.locality, LocalityLbConfig::LocalityWeighted);
        let c = lb("common_lb_config: { healthy_panic_threshold: { value: 0 } }\n");
        assert_eq!(c.common.healthy_panic_threshold, 0, "0 disables panic mode");
    }

    fn typed_policy(ty: &str, body: &str) -> String {
        format!(
            "{MINIMAL}load_balancing_policy:\n  policies:\n  - typed_extension_config:\n      name: p\n      typed_config:\n        '@type': type.googleapis.com/envoy.extensions.load_balancing_policies.{ty}\n{body}"
        )
    }

    #[test]
    fn load_balancing_policy_maps() {
        let lb = |ty: &str, body: &str| info(&typed_policy(ty, body)).lb_config;
        assert_eq!(lb("round_robin.v3.RoundRobin", ""), LbConfig::new(LbPolicy::RoundRobin));
        assert_eq!(lb("random.v3.Random", ""), LbConfig::new(LbPolicy::Random));
        let c = lb(
            "least_request.v3.LeastRequest",
            "        choice_count: 4\n        locality_lb_config: { locality_weighted_lb_config: {} }\n",
        );
        assert_eq!(c.policy, LbPolicy::LeastRequest);
        assert_eq!(c.least_request.choice_count, 4);
        assert_eq!(c.common.locality, LocalityLbConfig::LocalityWeighted);
        let c = lb(
            "ring_hash.v3.RingHash",
            "        minimum_ring_size: 16\n        maximum_ring_size: 32\n        consistent_hashing_lb_config: { use_hostname_for_hashing: true }\n",
        );
        assert_eq!(c.policy, LbPolicy::RingHash);
        assert_eq!(c.ring_hash, RingHashConfig { minimum_ring_size: 16, maximum_ring_size: 32 });
        assert!(c.common.use_hostname_for_hashing);
        let c = lb("maglev.v3.Maglev", "        table_size: 65537\n");
        assert_eq!((c.policy, c.maglev.table_size), (LbPolicy::Maglev, 65537));

        // load_balancing_policy wins over lb_policy; the panic threshold still
        // comes from common_lb_config.
        let c = info(&format!(
            "{}lb_policy: RANDOM\ncommon_lb_config: {{ healthy_panic_threshold: {{ value: 10 }} }}\n",
            typed_policy("maglev.v3.Maglev", "")
        ))
        .lb_config;
        assert_eq!((c.policy, c.common.healthy_panic_threshold), (LbPolicy::Maglev, 10));
    }

    #[test]
    fn unsupported_or_invalid_lb_settings_name_their_field() {
        let mut c = cluster(MINIMAL);
        c.lb_policy = cfg::LbPolicy::ClusterProvided;
        assert!(info_err(&c).starts_with("unsupported: static_resources.clusters[0].lb_policy ("));

        let mut c = cluster(MINIMAL);
        c.lb_policy = cfg::LbPolicy::LoadBalancingPolicyConfig;
        assert!(
            info_err(&c)
                .starts_with("static_resources.clusters[0].load_balancing_policy: must be set")
        );

        let mut c = cluster(&format!("{MINIMAL}lb_policy: MAGLEV\n"));
        c.maglev_lb_config = Some(cfg::MaglevLbConfig { table_size: Some(65536) });
        assert_eq!(
            info_err(&c),
            "static_resources.clusters[0].maglev_lb_config.table_size: maglev_lb_config.table_size 65536 is not a prime number"
        );

        let mut c = cluster(&format!("{MINIMAL}lb_policy: RING_HASH\n"));
        c.ring_hash_lb_config = Some(cfg::RingHashLbConfig {
            hash_function: cfg::HashFunction::MurmurHash2,
            ..Default::default()
        });
        assert_eq!(
            info_err(&c),
            "unsupported: static_resources.clusters[0].ring_hash_lb_config.hash_function (XX_HASH)"
        );

        let mut c = cluster(&format!("{MINIMAL}lb_policy: LEAST_REQUEST\n"));
        c.least_request_lb_config =
            Some(cfg::LeastRequestLbConfig { choice_count: Some(1), ..Default::default() });
        assert!(
            info_err(&c)
                .starts_with("static_resources.clusters[0].least_request_lb_config.choice_count: ")
        );

        let mut c = cluster(&typed_policy("ring_hash.v3.RingHash", ""));
        if let Some(LbPolicyConfig::RingHash(e)) = c
            .load_balancing_policy
            .as_mut()
            .and_then(|p| p.policies[0].typed_extension_config.as_mut())
            .and_then(|t| t.typed_config.as_mut())
        {
            e.minimum_ring_size = Some(0);
        }
        assert!(info_err(&c).starts_with(
            "static_resources.clusters[0].load_balancing_policy.policies[0].typed_extension_config.typed_config: ring_hash_lb_config: minimum_ring_size 0"
        ));

        let mut c = cluster(MINIMAL);
        c.common_lb_config = Some(cfg::CommonLbConfig {
            zone_aware_lb_config: Some(cfg::ZoneAwareLbConfig::default()),
            locality_weighted_lb_config: Some(types::Empty {}),
            ..Default::default()
        });
        assert!(
            info_err(&c).starts_with("static_resources.clusters[0].common_lb_config: set only one")
        );

        let mut c = cluster(MINIMAL);
        c.cluster_type = DiscoveryType::OriginalDst;
        assert!(info_err(&c).starts_with("unsupported: static_resources.clusters[0].type ("));
    }

    #[test]
    fn thresholds_per_priority() {
        let i = info(&format!(
            "{MINIMAL}circuit_breakers:
  thresholds:
  - {{ priority: HIGH, max_requests: 7, max_retries: 1, retry_budget: {{ budget_percent: {{ value: 50 }} }} }}
  - {{ max_connections: 10, max_pending_requests: 20, max_connection_pools: 2 }}
"
        ));
        let d = i.circuit_breakers.for_priority(RoutingPriority::Default);
        assert_eq!(
            (d.connections().max(), d.pending_requests().max(), d.requests().max()),
            (10, 20, 1024)
        );
        assert_eq!((d.retries().max(), d.connection_pools().max()), (3, 2));
        let h = i.circuit_breakers.for_priority(RoutingPriority::High);
        assert_eq!((h.connections().max(), h.pending_requests().max()), (1024, 1024));
        assert_eq!((h.requests().max(), h.retries().max()), (7, 1));
        assert_eq!(h.connection_pools().max(), u64::MAX);

        assert_eq!(d.retry_budget(), None);
        let budget = *h.retry_budget().unwrap();
        assert_eq!(budget, RetryBudget { budget_percent: 50.0, min_retry_concurrency: 3 });
        assert_eq!(budget.max_retries(0), 3, "min_retry_concurrency floor");
        assert_eq!(budget.max_retries(100), 50);
        let default_budget = info(&format!(
            "{MINIMAL}circuit_breakers: {{ thresholds: [ {{ retry_budget: {{}} }} ] }}\n"
        ))
        .circuit_breakers
        .for_priority(RoutingPriority::Default)
        .retry_budget()
        .copied()
        .unwrap();
        assert_eq!(default_budget, RetryBudget { budget_percent: 20.0, min_retry_concurrency: 3 });
    }

    #[test]
    fn hosts_keep_weights_localities_priorities_and_health() {
        let c = cluster(
            "
name: backend
load_assignment:
  policy: { overprovisioning_factor: 200 }
  endpoints:
  - locality: { region: r1, zone: z1 }
    load_balancing_weight: 3
    lb_endpoints:
    - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } }, hostname: one.example }
      load_balancing_weight: 5
    - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 80 } } }
      health_status: UNHEALTHY
    - endpoint: { address: { socket_address: { address: 10.0.0.3, port_value: 80 } } }
      health_status: DEGRADED
  - locality: { region: r1, zone: z2 }
    load_balancing_weight: 1
    lb_endpoints:
    - endpoint: { address: { socket_address: { address: 10.0.0.4, port_value: 81 } } }
      health_status: DRAINING
    - endpoint: { address: { socket_address: { address: '::1', port_value: 82 } } }
      health_status: TIMEOUT
    - endpoint: { address: { socket_address: { address: 10.0.0.6, port_value: 83 } } }
      health_status: HEALTHY
  - priority: 2
    lb_endpoints:
    - endpoint: { address: { socket_address: { address: 10.0.1.1, port_value: 80 } } }
",
        );
        let ps = hosts(&c, &mut no_dns).unwrap();
        assert_eq!(ps.host_sets().len(), 3);
        assert_eq!(ps.total_hosts(), 7);
        let p0 = ps.host_set(0).unwrap();
        assert_eq!(p0.overprovisioning_factor(), 200);
        let h: Vec<_> = p0.hosts().iter().map(|h| (h.address(), h.weight(), h.health())).collect();
        assert_eq!(
            h,
            [
                (addr("10.0.0.1:80"), 5, HostHealth::Healthy),
                (addr("10.0.0.2:80"), 1, HostHealth::Unhealthy),
                (addr("10.0.0.3:80"), 1, HostHealth::Degraded),
                (addr("10.0.0.4:81"), 1, HostHealth::Unhealthy),
                (addr("[::1]:82"), 1, HostHealth::Unhealthy),
                (addr("10.0.0.6:83"), 1, HostHealth::Healthy),
            ]
        );
        let flags: Vec<_> = p0.hosts().iter().map(|h| h.health_flags()).collect();
        assert_eq!(flags[1], HealthFlags::FAILED_EDS_HEALTH);
        assert_eq!(flags[2], HealthFlags::DEGRADED_EDS_HEALTH);
        assert_eq!(flags[3], HealthFlags::EDS_STATUS_DRAINING);
        assert_eq!(flags[4], HealthFlags::FAILED_EDS_HEALTH);
        assert_eq!(p0.hosts()[0].hostname(), "one.example");
        assert_eq!(p0.hosts()[1].hostname(), "");
        assert_eq!(p0.hosts()[0].locality(), &Locality::new("r1", "z1", ""));
        assert_eq!(p0.hosts()[3].locality(), &Locality::new("r1", "z2", ""));
        assert_eq!(p0.healthy_hosts().len(), 2);
        assert_eq!(p0.degraded_hosts().len(), 1);
        let localities = p0.hosts_per_locality().localities().to_vec();
        let weights = p0.locality_weights().expect("locality weights set");
        let weight_of = |zone: &str| {
            weights[localities.iter().position(|l| l.zone == zone).expect("locality listed")]
        };
        assert_eq!((weight_of("z1"), weight_of("z2")), (3, 1));
        assert!(ps.host_set(1).unwrap().hosts().is_empty());
        let p2 = ps.host_set(2).unwrap();
        assert_eq!((p2.hosts()[0].address(), p2.hosts()[0].priority()), (addr("10.0.1.1:80"), 2));

        // The same snapshot feeds the week 1 load balancer.
        let info = ClusterInfo::from_config(&c, &at()).unwrap();
        let factory = info.create_lb_factory(Arc::new(ps)).unwrap();
        let mut lb = factory.create_seeded(1);
        let picked = lb.choose().expect("healthy hosts at P=0");
        assert!(matches!(picked.address().port(), 80 | 83));
    }

    #[test]
    fn assignment_errors_name_their_field() {
        let base = |endpoint: &str| {
            format!(
                "name: backend\nload_assignment:\n  endpoints:\n  - lb_endpoints:\n    - endpoint: {{ address: {{ socket_address: {endpoint} }} }}\n      load_balancing_weight: 200\n"
            )
        };
        let c = cluster(&base("{ address: 10.0.0.1, port_value: 80 }"));
        assert_eq!(
            hosts(&c, &mut no_dns).unwrap_err().to_string(),
            "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight: host weight 200 out of range (1..=128)"
        );

        let mut c = cluster(MINIMAL);
        if let Some(sa) = c.load_assignment.as_mut().and_then(|la| {
            la.endpoints[0].lb_endpoints[0]
                .endpoint
                .as_mut()?
                .address
                .as_mut()?
                .socket_address
                .as_mut()
        }) {
            sa.address = "backend.internal".into();
            sa.port_value = Some(70000);
        }
        let sa_path = "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address";
        assert_eq!(
            hosts(&c, &mut no_dns).unwrap_err().to_string(),
            format!("{sa_path}.port_value: 70000 is not a port (0 to 65535)")
        );
        if let Some(sa) = c.load_assignment.as_mut().and_then(|la| {
            la.endpoints[0].lb_endpoints[0]
                .endpoint
                .as_mut()?
                .address
                .as_mut()?
                .socket_address
                .as_mut()
        }) {
            sa.port_value = Some(80);
        }
        assert_eq!(
            hosts(&c, &mut no_dns).unwrap_err().to_string(),
            format!(
                "{sa_path}.address: \"backend.internal\": not an IP address (a STATIC cluster needs IPs; use STRICT_DNS or LOGICAL_DNS for host names)"
            )
        );

        let c = cluster(
            "
name: backend
load_assignment:
  endpoints:
  - locality: { zone: a }
    load_balancing_weight: 2
  - locality: { zone: a }
    load_balancing_weight: 3
    priority: 1
",
        );
        assert_eq!(
            hosts(&c, &mut no_dns).unwrap_err().to_string(),
            "unsupported: static_resources.clusters[0].load_assignment.endpoints[1].load_balancing_weight (one weight per locality: endpoints[0] gives locality /a/ weight 2)"
        );
    }

    const DNS: &str = "
name: dns
type: TYPE
load_assignment:
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: backend.internal, port_value: 8080 } } }
      load_balancing_weight: 4
    - endpoint: { address: { socket_address: { address: 10.9.9.9, port_value: 9090 } } }
";

    fn fake_dns(
        calls: &mut Vec<(String, u16)>,
    ) -> impl FnMut(&str, u16) -> Result<Vec<SocketAddr>, String> + '_ {
        move |name, port| {
            calls.push((name.to_string(), port));
            Ok(vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), port),
            ])
        }
    }

    #[test]
    fn strict_dns_resolves_names_and_keeps_the_lookup_family() {
        let c = cluster(&DNS.replace("TYPE", "STRICT_DNS"));
        let mut calls = Vec::new();
        let ps = hosts(&c, &mut fake_dns(&mut calls)).unwrap();
        assert_eq!(calls, [("backend.internal".to_string(), 8080)], "the IP needs no lookup");
        let got: Vec<_> = ps.host_sets()[0]
            .hosts()
            .iter()
            .map(|h| (h.address(), h.hostname(), h.weight()))
            .collect();
        // AUTO prefers IPv6 answers when there are any.
        assert_eq!(
            got,
            [(addr("[::1]:8080"), "backend.internal", 4), (addr("10.9.9.9:9090"), "", 1)]
        );

        let c =
            cluster(&format!("{}dns_lookup_family: V4_ONLY\n", DNS.replace("TYPE", "STRICT_DNS")));
        let mut calls = Vec::new();
        let ps = hosts(&c, &mut fake_dns(&mut calls)).unwrap();
        let got: Vec<_> = ps.host_sets()[0].hosts().iter().map(|h| h.address()).collect();
        assert_eq!(got, [addr("192.0.2.1:8080"), addr("192.0.2.2:8080"), addr("10.9.9.9:9090")]);

        let mut failing = |_: &str, _: u16| Err("no such host".to_string());
        let err = hosts(&c, &mut failing).unwrap_err().to_string();
        assert!(
            err.ends_with(".socket_address.address: \"backend.internal\": no such host"),
            "{err}"
        );
    }

    #[test]
    fn logical_dns_keeps_the_first_address() {
        let yaml = "
name: logical
type: LOGICAL_DNS
dns_lookup_family: ALL
load_assignment:
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: backend.internal, port_value: 8080 } }, hostname: shown.example }
";
        let c = cluster(yaml);
        let mut calls = Vec::new();
        let ps = hosts(&c, &mut fake_dns(&mut calls)).unwrap();
        assert_eq!(calls.len(), 1);
        let h = &ps.host_sets()[0].hosts();
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].address(), h[0].hostname()), (addr("192.0.2.1:8080"), "shown.example"));
    }

    #[test]
    fn lookup_family_filter() {
        let v4 = addr("192.0.2.1:1");
        let v6 = addr("[::1]:1");
        let both = vec![v4, v6];
        assert_eq!(filter_lookup_family(DnsLookupFamily::Auto, both.clone()), [v6]);
        assert_eq!(filter_lookup_family(DnsLookupFamily::Auto, vec![v4]), [v4]);
        assert_eq!(filter_lookup_family(DnsLookupFamily::V4Preferred, both.clone()), [v4]);
        assert_eq!(filter_lookup_family(DnsLookupFamily::V4Preferred, vec![v6]), [v6]);
        assert_eq!(filter_lookup_family(DnsLookupFamily::V4Only, vec![v6]), []);
        assert_eq!(filter_lookup_family(DnsLookupFamily::V6Only, both.clone()), [v6]);
        assert_eq!(filter_lookup_family(DnsLookupFamily::All, both.clone()), both);
    }

    #[test]
    fn system_resolver_handles_ip_literals_without_network() {
        assert_eq!(system_resolver("127.0.0.1", 80), Ok(vec![addr("127.0.0.1:80")]));
        assert_eq!(system_resolver("::1", 81), Ok(vec![addr("[::1]:81")]));
    }

    #[test]
    fn eds_clusters_start_empty() {
        let c = cluster(
            "
name: eds
type: EDS
eds_cluster_config: { service_name: svc, eds_config: { ads: {} } }
",
        );
        let i = ClusterInfo::from_config(&c, &at()).unwrap();
        assert_eq!(i.eds_service_name.as_deref(), Some("svc"));
        let ps = i.initial_priority_set(&c, &mut no_dns, &at()).unwrap();
        assert_eq!((ps.host_sets().len(), ps.total_hosts()), (1, 0));
    }

    #[test]
    fn health_checked_hosts_start_failed_until_checked() {
        let yaml = "
name: hc
load_assignment:
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }
health_checks:
- { timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }
outlier_detection: { consecutive_5xx: 2 }
";
        let c = cluster(yaml);
        let ps = hosts(&c, &mut no_dns).unwrap();
        let h = &ps.host_sets()[0].hosts()[0];
        assert_eq!(h.health_flags(), HealthFlags::FAILED_ACTIVE_HC);
        assert_eq!(ps.host_sets()[0].healthy_hosts().len(), 0, "partitioned as unhealthy");
        let i = ClusterInfo::from_config(&c, &at()).unwrap();
        assert_eq!(i.outlier_policy.as_ref().map(|p| p.consecutive_5xx), Some(2));
        let plain = cluster(MINIMAL);
        assert!(
            hosts(&plain, &mut no_dns).unwrap().host_sets()[0].hosts()[0].health_flags().is_empty()
        );
    }

    /// Converts every cluster of a loaded config; returns how many.
    fn convert_all(clusters: &[(FieldPath, &Cluster)]) -> Result<usize, ConfigError> {
        let mut answer = |_: &str, port: u16| Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
        for (at, c) in clusters {
            let info = ClusterInfo::from_config(c, at)?;
            let ps = info.initial_priority_set(c, &mut answer, at)?;
            info.create_lb_factory(Arc::new(ps))
                .map_err(|e| ConfigError::invalid(at.clone(), e.to_string()))?;
        }
        Ok(clusters.len())
    }

    fn bootstrap_clusters(b: &Bootstrap) -> Vec<(FieldPath, &Cluster)> {
        let base = FieldPath::root().field("static_resources").field("clusters");
        b.static_resources
            .iter()
            .flat_map(|s| s.clusters.iter().enumerate())
            .map(|(i, c)| (base.index(i), c))
            .collect()
    }

    #[test]
    fn demo_config_converts() {
        let b: Bootstrap = load_str(include_str!("../../../mini-envoy/src/demo.yaml")).unwrap();
        let clusters = bootstrap_clusters(&b);
        assert_eq!(convert_all(&clusters), Ok(2));
        let web = ClusterInfo::from_config(clusters[1].1, &clusters[1].0).unwrap();
        assert_eq!(web.lb_config.policy, LbPolicy::LeastRequest);
        assert_eq!(web.connect_timeout, Duration::from_millis(250));
    }

    #[test]
    fn envoy_config_corpus_converts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/envoy-configs");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("corpus directory")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        let (mut converted, mut failures) = (0, Vec::new());
        for path in files {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).expect("read corpus file");
            // Files the loader refuses (unsupported features) are the loader's
            // test's business; every cluster that loads must convert.
            let outcome = if name.ends_with(".clusters.yaml") {
                let Ok(list) = load_str::<ResourceList<Cluster>>(&text) else { continue };
                let at = FieldPath::root();
                convert_all(
                    &list.0.iter().enumerate().map(|(i, c)| (at.index(i), c)).collect::<Vec<_>>(),
                )
            } else if text.lines().any(|l| l.starts_with("resources:")) {
                let Ok(r) = load_str::<DiscoveryResponse>(&text) else { continue };
                let at = FieldPath::root().field("resources");
                let clusters: Vec<_> = r
                    .resources
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| match r {
                        Resource::Cluster(c) => Some((at.index(i), &**c)),
                        _ => None,
                    })
                    .collect();
                convert_all(&clusters)
            } else if name.ends_with(".yaml")
                && !name.contains(".routes.")
                && !name.contains(".listeners.")
            {
                let Ok(b) = load_str::<Bootstrap>(&text) else { continue };
                convert_all(&bootstrap_clusters(&b))
            } else {
                continue;
            };
            match outcome {
                Ok(n) => converted += n,
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        assert!(
            failures.is_empty(),
            "clusters that load but do not convert:\n{}",
            failures.join("\n")
        );
        assert!(converted >= 15, "only {converted} corpus clusters converted");
    }

    #[test]
    fn corpus_circuit_breakers_map() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/envoy-configs");
        let text =
            std::fs::read_to_string(dir.join(
                "envoy__docs__root__faq__load_balancing___include__circuit-breaker-config.yaml",
            ))
            .expect("read corpus file");
        let b: Bootstrap = load_str(&text).unwrap();
        let clusters = bootstrap_clusters(&b);
        let i = ClusterInfo::from_config(clusters[0].1, &clusters[0].0).unwrap();
        assert_eq!(i.discovery, DiscoveryType::LogicalDns);
        for p in [RoutingPriority::Default, RoutingPriority::High] {
            let m = i.circuit_breakers.for_priority(p);
            assert_eq!(m.connections().max(), 1_000_000_000);
            assert_eq!(m.retries().max(), 1_000_000_000);
        }
    }
    #[test]
    fn corpus_locality_weighted_dns_cluster_maps() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/envoy-configs");
        let text =
            std::fs::read_to_string(dir.join("examples__locality-load-balancing__envoy.yaml"))
                .expect("read corpus file");
        let b: Bootstrap = load_str(&text).unwrap();
        let clusters = bootstrap_clusters(&b);
        let (at, c) = clusters.iter().find(|(_, c)| c.name == "backend").expect("backend cluster");
        let i = ClusterInfo::from_config(c, at).unwrap();
        assert_eq!(i.lb_config.common.locality, LocalityLbConfig::LocalityWeighted);
        assert_eq!(i.health_checks.len(), 1);
        let mut calls = Vec::new();
        let ps = i.initial_priority_set(c, &mut fake_dns(&mut calls), at).unwrap();
        let names: Vec<_> = calls.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..3], ["backend-local-1", "backend-local-2", "backend-remote-1"]);
        let p0 = ps.host_set(0).unwrap();
        assert_eq!(p0.hosts().len(), 1, "AUTO keeps the one IPv6 answer");
        assert_eq!(p0.hosts()[0].hostname(), "backend-local-1");
        assert_eq!(p0.locality_weights(), Some(&[1][..]));
        let p1 = ps.host_set(1).unwrap();
        assert_eq!(p1.hosts_per_locality().len(), 2);
    }
}
