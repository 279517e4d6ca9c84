//! `envoy.config.endpoint.v3.ClusterLoadAssignment`: a cluster's endpoints by
//! locality and priority.
//!
//! Loaded here from a cluster's `load_assignment` or EDS; the week 1 cluster
//! code (`crate::cluster`) builds host sets per priority from it.

use serde::Deserialize;

use super::types::{Address, Duration, FractionalPercent, Locality, Metadata};
use super::validate::{Validate, Validator};

/// `envoy.config.core.v3.HealthStatus` (as reported by EDS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    /// Not known: treated as healthy.
    #[default]
    Unknown,
    /// Healthy.
    Healthy,
    /// Unhealthy.
    Unhealthy,
    /// Draining: unhealthy for new requests.
    Draining,
    /// Timed out: unhealthy.
    Timeout,
    /// Degraded: used when no healthy host is left.
    Degraded,
}

/// `Endpoint.HealthCheckConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointHealthCheckConfig {
    /// Health-check this port instead of the endpoint's.
    pub port_value: u32,
    /// `host` header for HTTP health checks of this endpoint.
    pub hostname: String,
    /// Health-check this address instead (not supported).
    pub address: Option<Address>,
    /// Skip the check when the endpoint is unhealthy (not supported).
    pub disable_active_health_check: bool,
}

/// `envoy.config.endpoint.v3.Endpoint`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoint {
    /// The upstream address (an IP for STATIC/EDS, a host name or IP for DNS clusters).
    pub address: Option<Address>,
    /// Health-check overrides.
    pub health_check_config: Option<EndpointHealthCheckConfig>,
    /// Host name for `auto_host_rewrite` and logs.
    pub hostname: String,
    /// More addresses (not supported).
    pub additional_addresses: Vec<serde_json::Value>,
}

/// `envoy.config.endpoint.v3.LbEndpoint`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LbEndpoint {
    /// The endpoint (oneof with `endpoint_name`).
    pub endpoint: Option<Endpoint>,
    /// A named endpoint (not supported).
    pub endpoint_name: Option<String>,
    /// Health as reported by EDS.
    pub health_status: HealthStatus,
    /// Metadata for subset LB and logs.
    pub metadata: Option<Metadata>,
    /// Weight within its locality (default 1, at least 1).
    pub load_balancing_weight: Option<u32>,
}

impl LbEndpoint {
    /// Effective weight (default 1).
    pub fn weight(&self) -> u32 {
        self.load_balancing_weight.unwrap_or(1)
    }

    /// The endpoint's socket address, when it has one.
    pub fn socket_address(&self) -> Option<&super::types::SocketAddress> {
        self.endpoint.as_ref()?.address.as_ref()?.socket_address.as_ref()
    }
}

impl Validate for LbEndpoint {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "host_identifier",
            &[
                ("endpoint", self.endpoint.is_some()),
                ("endpoint_name", self.endpoint_name.is_some()),
            ],
            true,
        );
        if self.endpoint_name.is_some() {
            v.unsupported("endpoint_name", "give the endpoint inline");
        }
        if self.load_balancing_weight == Some(0) {
            v.error("load_balancing_weight", "must be at least 1");
        }
        if let Some(e) = &self.endpoint {
            v.field("endpoint", |v| {
                match &e.address {
                    None => v.error("address", "must be set"),
                    Some(a) => v.child("address", a),
                }
                if !e.additional_addresses.is_empty() {
                    v.unsupported("additional_addresses", "one address per endpoint");
                }
                if let Some(h) = &e.health_check_config {
                    v.field("health_check_config", |v| {
                        if h.port_value > 65535 {
                            v.error(
                                "port_value",
                                format!("{} is not a port (0 to 65535)", h.port_value),
                            );
                        }
                        if h.address.is_some() {
                            v.unsupported("address", "use port_value");
                        }
                        if h.disable_active_health_check {
                            v.unsupported(
                                "disable_active_health_check",
                                "every endpoint is health-checked",
                            );
                        }
                    });
                }
            });
        }
    }
}

/// `envoy.config.endpoint.v3.LocalityLbEndpoints`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalityLbEndpoints {
    /// Where these endpoints are.
    pub locality: Option<Locality>,
    /// Metadata (not interpreted).
    pub metadata: Option<Metadata>,
    /// The endpoints.
    pub lb_endpoints: Vec<LbEndpoint>,
    /// A named endpoint list (not supported).
    pub leds_cluster_locality_config: Option<serde_json::Value>,
    /// Locality weight for locality-weighted LB (at least 1 when set).
    pub load_balancing_weight: Option<u32>,
    /// Priority: 0 is highest, at most 127.
    pub priority: u32,
    /// Proximity for failover (not supported).
    pub proximity: Option<u32>,
}

impl Validate for LocalityLbEndpoints {
    fn validate(&self, v: &mut Validator) {
        v.each("lb_endpoints", &self.lb_endpoints);
        if self.load_balancing_weight == Some(0) {
            v.error("load_balancing_weight", "must be at least 1");
        }
        if self.priority > 127 {
            v.error(
                "priority",
                format!("{} is above the highest priority level 127", self.priority),
            );
        }
        if self.leds_cluster_locality_config.is_some() {
            v.unsupported("leds_cluster_locality_config", "list lb_endpoints inline");
        }
        if self.proximity.is_some() {
            v.unsupported("proximity", "failover follows priority");
        }
    }
}

/// `ClusterLoadAssignment.Policy.DropOverload`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DropOverload {
    /// Category for stats.
    pub category: String,
    /// Fraction of requests dropped.
    pub drop_percentage: FractionalPercent,
}

/// `ClusterLoadAssignment.Policy`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Requests to drop (at most one category).
    pub drop_overloads: Vec<DropOverload>,
    /// Overprovisioning factor in percent (default 140).
    pub overprovisioning_factor: Option<u32>,
    /// Consider endpoints stale after this long without EDS (not supported).
    pub endpoint_stale_after: Option<Duration>,
    /// Weighted priority health (not supported).
    pub weighted_priority_health: bool,
}

/// `envoy.config.endpoint.v3.ClusterLoadAssignment`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterLoadAssignment {
    /// The cluster name (or EDS service name); may differ from the cluster's `name`.
    pub cluster_name: String,
    /// Endpoints grouped by locality and priority.
    pub endpoints: Vec<LocalityLbEndpoints>,
    /// Named endpoints (not supported).
    pub named_endpoints: Option<serde_json::Value>,
    /// Load-balancing policy.
    pub policy: Option<Policy>,
}

impl ClusterLoadAssignment {
    /// Overprovisioning factor as a ratio (default 1.4).
    pub fn overprovisioning_factor(&self) -> f64 {
        f64::from(self.policy.as_ref().and_then(|p| p.overprovisioning_factor).unwrap_or(140))
            / 100.0
    }

    /// Every endpoint with its locality entry.
    pub fn lb_endpoints(&self) -> impl Iterator<Item = (&LocalityLbEndpoints, &LbEndpoint)> {
        self.endpoints.iter().flat_map(|l| l.lb_endpoints.iter().map(move |e| (l, e)))
    }
}

impl Validate for ClusterLoadAssignment {
    fn validate(&self, v: &mut Validator) {
        v.each("endpoints", &self.endpoints);
        if self.named_endpoints.is_some() {
            v.unsupported("named_endpoints", "list endpoints inline");
        }
        if let Some(p) = &self.policy {
            v.field("policy", |v| {
                if p.overprovisioning_factor == Some(0) {
                    v.error("overprovisioning_factor", "must be greater than 0");
                }
                if p.drop_overloads.len() > 1 {
                    v.error("drop_overloads", "at most one drop_overloads category");
                }
                if p.endpoint_stale_after.is_some() {
                    v.unsupported("endpoint_stale_after", "endpoints stay until EDS replaces them");
                }
                if p.weighted_priority_health {
                    v.unsupported("weighted_priority_health", "priority health counts hosts");
                }
            });
        }
        // Envoy: a locality (with its priority) appears once.
        v.field("endpoints", |v| {
            for (i, l) in self.endpoints.iter().enumerate() {
                if l.locality.is_some()
                    && self.endpoints[..i]
                        .iter()
                        .any(|e| e.locality == l.locality && e.priority == l.priority)
                {
                    v.index(i, |v| v.error("locality", "duplicate locality at the same priority"));
                }
            }
        });
    }
}
