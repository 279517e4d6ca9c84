//! `envoy.config.bootstrap.v3.Bootstrap`: the file mini-envoy starts from, and
//! `DiscoveryResponse` files (Envoy's filesystem xDS format).
//!
//! Loaded here by [`super::load_bootstrap`] / [`super::load_bootstrap_file`];
//! mini-envoy reads static listeners and clusters, the admin address and
//! `dynamic_resources` (handed to the week 4 xDS layer, which loads
//! `resources:` files with [`DiscoveryResponse`]).
//!
//! Accepted and ignored (no observable behaviour in mini-envoy):
//! `stats_flush_interval`, `stats_flush_on_admin`, `watchdog`, `watchdogs`
//! (no watchdog thread), `enable_dispatcher_stats`, `layered_runtime` layers
//! that are empty static layers or `admin_layer`, `node.user_agent_*`,
//! `node.client_features`, `node.extensions`, `admin.ignore_global_conn_limit`,
//! `deferred_stat_options`, `cluster_manager.enable_deferred_cluster_creation`.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::access_log::AccessLog;
use super::cluster::Cluster;
use super::config_source::{ApiConfigSource, ConfigSource};
use super::dns::{DnsResolutionConfig, DnsResolverChoice, TypedDnsResolverConfig};
use super::endpoint::ClusterLoadAssignment;
use super::listener::{Listener, NetworkFilterConfig};
use super::route::RouteConfiguration;
use super::types::{Address, Duration, Locality};
use super::validate::{Validate, Validator};

/// `envoy.config.core.v3.Node`: who this proxy is (sent to xDS servers).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Node {
    /// Node id (`--service-node` overrides).
    pub id: String,
    /// Service cluster (`--service-cluster` overrides).
    pub cluster: String,
    /// Free metadata sent to the management server.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Dynamic parameters (not supported).
    pub dynamic_parameters: Option<serde_json::Value>,
    /// Where this proxy runs.
    pub locality: Option<Locality>,
    /// Agent name; accepted and ignored (reported as mini-envoy).
    pub user_agent_name: String,
    /// Agent version; accepted and ignored.
    pub user_agent_version: Option<String>,
    /// Agent build version; accepted and ignored.
    pub user_agent_build_version: Option<serde_json::Value>,
    /// Extensions list; accepted and ignored (informational).
    pub extensions: Vec<serde_json::Value>,
    /// Client features; accepted and ignored (informational).
    pub client_features: Vec<String>,
    /// Deprecated listening addresses; accepted and ignored (informational).
    pub listening_addresses: Vec<serde_json::Value>,
}

/// `Bootstrap.StaticResources`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticResources {
    /// Listeners.
    pub listeners: Vec<Listener>,
    /// Clusters.
    pub clusters: Vec<Cluster>,
    /// TLS secrets (not supported).
    pub secrets: Vec<serde_json::Value>,
}

/// `Bootstrap.DynamicResources`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamicResources {
    /// Where listeners come from (LDS).
    pub lds_config: Option<ConfigSource>,
    /// xdstp LDS locator (not supported).
    pub lds_resources_locator: Option<String>,
    /// Where clusters come from (CDS).
    pub cds_config: Option<ConfigSource>,
    /// xdstp CDS locator (not supported).
    pub cds_resources_locator: Option<String>,
    /// The ADS stream that `ads: {}` sources use.
    pub ads_config: Option<ApiConfigSource>,
}

impl DynamicResources {
    /// The clusters named by gRPC config sources here.
    pub fn grpc_cluster_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> =
            self.ads_config.iter().flat_map(ApiConfigSource::grpc_cluster_names).collect();
        for c in [&self.lds_config, &self.cds_config].into_iter().flatten() {
            names.extend(c.grpc_cluster_names());
        }
        names
    }
}

impl Validate for DynamicResources {
    fn validate(&self, v: &mut Validator) {
        v.child("lds_config", &self.lds_config);
        v.child("cds_config", &self.cds_config);
        v.child("ads_config", &self.ads_config);
        if self.lds_resources_locator.is_some() {
            v.unsupported("lds_resources_locator", "use lds_config");
        }
        if self.cds_resources_locator.is_some() {
            v.unsupported("cds_resources_locator", "use cds_config");
        }
        let uses_ads =
            [&self.lds_config, &self.cds_config].into_iter().flatten().any(|c| c.ads.is_some());
        if uses_ads && self.ads_config.is_none() {
            v.error("ads_config", "must be set when lds_config or cds_config uses ads");
        }
    }
}

/// `envoy.config.bootstrap.v3.Admin`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// Access logs for admin requests.
    pub access_log: Vec<AccessLog>,
    /// Deprecated: a file for admin access logs.
    pub access_log_path: String,
    /// CPU profile output (default `/var/log/envoy/envoy.prof`).
    pub profile_path: String,
    /// Where the admin API listens (unset: admin disabled).
    pub address: Option<Address>,
    /// Socket options (not supported).
    pub socket_options: Vec<serde_json::Value>,
    /// Exempt from the global connection limit; accepted and ignored (no global limit).
    pub ignore_global_conn_limit: bool,
    /// Allow paths (not supported).
    pub allow_paths: Vec<serde_json::Value>,
}

impl Validate for Admin {
    fn validate(&self, v: &mut Validator) {
        v.child("address", &self.address);
        v.each("access_log", &self.access_log);
        if !self.socket_options.is_empty() {
            v.unsupported("socket_options", "SO_REUSEADDR is set by mini-envoy");
        }
        if !self.allow_paths.is_empty() {
            v.unsupported("allow_paths", "every admin endpoint is served");
        }
    }
}

/// `envoy.config.bootstrap.v3.ClusterManager`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterManager {
    /// The static cluster this proxy belongs to (for zone-aware routing).
    pub local_cluster_name: String,
    /// Outlier event log (not supported).
    pub outlier_detection: Option<serde_json::Value>,
    /// Source address for upstream connections (not supported).
    pub upstream_bind_config: Option<serde_json::Value>,
    /// Load reporting (not supported).
    pub load_stats_config: Option<serde_json::Value>,
    /// Stats for idle clusters; accepted and ignored (stats tuning).
    pub enable_deferred_cluster_creation: bool,
}

/// `envoy.config.bootstrap.v3.RuntimeLayer`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeLayer {
    /// Layer name.
    pub name: String,
    /// Key/value overrides.
    pub static_layer: Option<serde_json::Value>,
    /// Overrides read from files.
    pub disk_layer: Option<serde_json::Value>,
    /// Overrides set through the admin API.
    pub admin_layer: Option<serde_json::Value>,
    /// Overrides from RTDS.
    pub rtds_layer: Option<serde_json::Value>,
}

/// `envoy.config.bootstrap.v3.LayeredRuntime`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayeredRuntime {
    /// Layers, later ones win.
    pub layers: Vec<RuntimeLayer>,
}

impl Validate for LayeredRuntime {
    fn validate(&self, v: &mut Validator) {
        const HINT: &str =
            "mini-envoy has no runtime: each runtime-keyed field uses its default_value";
        v.field("layers", |v| {
            for (i, l) in self.layers.iter().enumerate() {
                v.index(i, |v| {
                    let empty_static = match &l.static_layer {
                        None => true,
                        Some(serde_json::Value::Object(m)) => m.is_empty(),
                        Some(serde_json::Value::Null) => true,
                        Some(_) => false,
                    };
                    if !empty_static {
                        v.unsupported("static_layer", HINT);
                    }
                    if l.disk_layer.is_some() {
                        v.unsupported("disk_layer", HINT);
                    }
                    if l.rtds_layer.is_some() {
                        v.unsupported("rtds_layer", HINT);
                    }
                });
            }
        });
    }
}

/// `envoy.config.bootstrap.v3.Bootstrap`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bootstrap {
    /// Node identity.
    pub node: Option<Node>,
    /// Node context parameters (not supported).
    pub node_context_params: Vec<String>,
    /// Listeners and clusters given inline.
    pub static_resources: Option<StaticResources>,
    /// xDS sources.
    pub dynamic_resources: Option<DynamicResources>,
    /// Cluster manager settings.
    pub cluster_manager: Option<ClusterManager>,
    /// Health discovery service (not supported).
    pub hds_config: Option<serde_json::Value>,
    /// Flags directory (not supported).
    pub flags_path: Option<String>,
    /// Stats sinks (not supported).
    pub stats_sinks: Vec<serde_json::Value>,
    /// Stats tags and matchers (not supported).
    pub stats_config: Option<serde_json::Value>,
    /// Sink flush interval; accepted and ignored (no sinks).
    pub stats_flush_interval: Option<Duration>,
    /// Flush sinks on admin requests; accepted and ignored (no sinks).
    pub stats_flush_on_admin: bool,
    /// Deprecated watchdog; accepted and ignored.
    pub watchdog: Option<serde_json::Value>,
    /// Watchdogs; accepted and ignored.
    pub watchdogs: Option<serde_json::Value>,
    /// Tracing (not supported).
    pub tracing: Option<serde_json::Value>,
    /// Runtime layers (only empty ones).
    pub layered_runtime: Option<LayeredRuntime>,
    /// The admin API.
    pub admin: Option<Admin>,
    /// Overload manager (not supported).
    pub overload_manager: Option<serde_json::Value>,
    /// Dispatcher stats; accepted and ignored.
    pub enable_dispatcher_stats: bool,
    /// Prefix replacing `x-envoy` (not supported).
    pub header_prefix: String,
    /// `server_info` version override (not supported).
    pub stats_server_version_override: Option<u64>,
    /// Deprecated: DNS over TCP for the default resolver.
    pub use_tcp_for_dns_lookups: bool,
    /// Deprecated: the default resolver's name servers and flags.
    pub dns_resolution_config: Option<DnsResolutionConfig>,
    /// The default resolver of DNS clusters that name none.
    pub typed_dns_resolver_config: Option<TypedDnsResolverConfig>,
    /// Bootstrap extensions (not supported).
    pub bootstrap_extensions: Vec<serde_json::Value>,
    /// Fatal actions (not supported).
    pub fatal_actions: Vec<serde_json::Value>,
    /// Default regex engine (only the built-in one).
    pub default_regex_engine: Option<serde_json::Value>,
    /// Application log format (not supported).
    pub application_log_config: Option<serde_json::Value>,
    /// Certificate providers (not supported).
    pub certificate_provider_instances: Option<serde_json::Value>,
    /// Inline header registration (not supported).
    pub inline_headers: Vec<serde_json::Value>,
    /// Lazy stat creation; accepted and ignored (stats tuning).
    pub deferred_stat_options: Option<DeferredStatOptions>,
}

/// `envoy.config.bootstrap.v3.Bootstrap.DeferredStatOptions`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeferredStatOptions {
    /// Create stats on first use; accepted and ignored.
    pub enable_deferred_creation_stats: bool,
}

impl Bootstrap {
    /// Static listeners.
    pub fn listeners(&self) -> &[Listener] {
        self.static_resources.as_ref().map_or(&[], |s| &s.listeners)
    }

    /// The default resolver of DNS clusters (`typed_dns_resolver_config`,
    /// else the deprecated `dns_resolution_config`, `use_tcp_for_dns_lookups`;
    /// none set: the system's `getaddrinfo`).
    pub fn dns_resolver(&self) -> DnsResolverChoice {
        DnsResolverChoice::from_fields(
            self.typed_dns_resolver_config.as_ref(),
            self.dns_resolution_config.as_ref(),
            &[],
            self.use_tcp_for_dns_lookups,
        )
        .unwrap_or_default()
    }

    /// Static clusters.
    pub fn clusters(&self) -> &[Cluster] {
        self.static_resources.as_ref().map_or(&[], |s| &s.clusters)
    }

    /// Whether clusters come from CDS (then route cluster names cannot be checked).
    pub fn has_cds(&self) -> bool {
        self.dynamic_resources.as_ref().is_some_and(|d| d.cds_config.is_some())
    }

    /// Names of static clusters that carry gRPC (xDS) traffic.
    pub fn grpc_clusters(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        if let Some(d) = &self.dynamic_resources {
            names.extend(d.grpc_cluster_names().into_iter().map(str::to_string));
        }
        for c in self.clusters() {
            if let Some(e) = c.eds_cluster_config.as_ref().and_then(|e| e.eds_config.as_ref()) {
                names.extend(e.grpc_cluster_names().map(str::to_string));
            }
        }
        for l in self.listeners() {
            for chain in l.all_filter_chains() {
                for f in &chain.filters {
                    if let Some(NetworkFilterConfig::HttpConnectionManager(h)) = &f.typed_config
                        && let Some(cs) = h.rds.as_ref().and_then(|r| r.config_source.as_ref())
                    {
                        names.extend(cs.grpc_cluster_names().map(str::to_string));
                    }
                }
            }
        }
        names
    }
}

impl Validate for Bootstrap {
    fn validate(&self, v: &mut Validator) {
        let outer_known = v.known_clusters.take();
        let statics: BTreeSet<String> = self.clusters().iter().map(|c| c.name.clone()).collect();
        // xDS gRPC services and the local cluster must name static clusters.
        v.known_clusters = Some(statics.clone());
        let grpc = self.grpc_clusters();
        v.child("dynamic_resources", &self.dynamic_resources);
        v.child("admin", &self.admin);
        v.child("layered_runtime", &self.layered_runtime);
        if let Some(cm) = &self.cluster_manager {
            v.field("cluster_manager", |v| {
                if !cm.local_cluster_name.is_empty() && !statics.contains(&cm.local_cluster_name) {
                    v.error(
                        "local_cluster_name",
                        format!("{:?} is not a static cluster", cm.local_cluster_name),
                    );
                }
                for (name, set) in [
                    ("outlier_detection", cm.outlier_detection.is_some()),
                    ("upstream_bind_config", cm.upstream_bind_config.is_some()),
                    ("load_stats_config", cm.load_stats_config.is_some()),
                ] {
                    if set {
                        v.unsupported(name, "not implemented in mini-envoy's cluster manager");
                    }
                }
            });
        }
        if let Some(s) = &self.static_resources {
            v.field("static_resources", |v| {
                v.field("clusters", |v| {
                    let mut seen = BTreeSet::new();
                    for (i, c) in s.clusters.iter().enumerate() {
                        v.index(i, |v| {
                            c.validate_for(v, grpc.contains(&c.name));
                            if !c.name.is_empty() && !seen.insert(c.name.as_str()) {
                                v.error("name", format!("duplicate cluster name {:?}", c.name));
                            }
                        });
                    }
                });
                if !s.secrets.is_empty() {
                    v.unsupported("secrets", "TLS is not supported");
                }
                // Routes and tcp_proxy may only name static clusters unless CDS adds more.
                v.known_clusters = if self.has_cds() { None } else { Some(statics.clone()) };
                v.field("listeners", |v| {
                    let mut seen = BTreeSet::new();
                    for (i, l) in s.listeners.iter().enumerate() {
                        v.index(i, |v| {
                            l.validate(v);
                            if !l.name.is_empty() && !seen.insert(l.name.as_str()) {
                                v.error("name", format!("duplicate listener name {:?}", l.name));
                            }
                        });
                    }
                });
            });
        }
        v.known_clusters = outer_known;
        v.child("dns_resolution_config", &self.dns_resolution_config);
        v.child("typed_dns_resolver_config", &self.typed_dns_resolver_config);
        for (name, set, hint) in [
            (
                "node_context_params",
                !self.node_context_params.is_empty(),
                "xdstp naming is not supported",
            ),
            ("hds_config", self.hds_config.is_some(), "health checks are configured per cluster"),
            ("flags_path", self.flags_path.is_some(), "use command-line flags"),
            (
                "stats_sinks",
                !self.stats_sinks.is_empty(),
                "stats are served by the admin API (/stats, /stats/prometheus)",
            ),
            (
                "stats_config",
                self.stats_config.is_some(),
                "stats use Envoy's default names and tags",
            ),
            ("tracing", self.tracing.is_some(), "mini-envoy does not trace"),
            (
                "overload_manager",
                self.overload_manager.is_some(),
                "there is no overload manager; limit load with circuit breakers and local rate limits",
            ),
            ("header_prefix", !self.header_prefix.is_empty(), "headers use the x-envoy prefix"),
            (
                "bootstrap_extensions",
                !self.bootstrap_extensions.is_empty(),
                "no bootstrap extensions",
            ),
            ("fatal_actions", !self.fatal_actions.is_empty(), "no fatal actions"),
            (
                "default_regex_engine",
                self.default_regex_engine.is_some(),
                "regexes use Rust's regex crate (linear time, like RE2)",
            ),
            ("application_log_config", self.application_log_config.is_some(), "use --log-level"),
            (
                "certificate_provider_instances",
                self.certificate_provider_instances.is_some(),
                "TLS is not supported",
            ),
            (
                "inline_headers",
                !self.inline_headers.is_empty(),
                "header storage is not configurable",
            ),
        ] {
            if set {
                v.unsupported(name, hint);
            }
        }
        if let Some(n) = &self.node
            && n.dynamic_parameters.is_some()
        {
            v.field("node", |v| {
                v.unsupported("dynamic_parameters", "xdstp naming is not supported")
            });
        }
    }
}

/// One resource of a discovery response, chosen by `"@type"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename = "@type")]
pub enum Resource {
    /// `envoy.config.listener.v3.Listener` (LDS).
    #[serde(rename = "envoy.config.listener.v3.Listener")]
    Listener(Box<Listener>),
    /// `envoy.config.cluster.v3.Cluster` (CDS).
    #[serde(rename = "envoy.config.cluster.v3.Cluster")]
    Cluster(Box<Cluster>),
    /// `envoy.config.route.v3.RouteConfiguration` (RDS).
    #[serde(rename = "envoy.config.route.v3.RouteConfiguration")]
    RouteConfiguration(Box<RouteConfiguration>),
    /// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
    #[serde(rename = "envoy.config.endpoint.v3.ClusterLoadAssignment")]
    ClusterLoadAssignment(Box<ClusterLoadAssignment>),
}

impl Resource {
    /// The resource's name (listener, cluster or route config name; EDS cluster_name).
    pub fn name(&self) -> &str {
        match self {
            Self::Listener(l) => &l.name,
            Self::Cluster(c) => &c.name,
            Self::RouteConfiguration(r) => &r.name,
            Self::ClusterLoadAssignment(c) => &c.cluster_name,
        }
    }
}

impl Validate for Resource {
    fn validate(&self, v: &mut Validator) {
        match self {
            Self::Listener(l) => {
                if l.name.is_empty() {
                    v.error("name", "must not be empty (xDS resources are named)");
                }
                l.validate(v)
            }
            Self::Cluster(c) => c.validate(v),
            Self::RouteConfiguration(r) => r.validate(v),
            Self::ClusterLoadAssignment(c) => {
                if c.cluster_name.is_empty() {
                    v.error("cluster_name", "must not be empty");
                }
                c.validate(v)
            }
        }
    }
}

/// `envoy.service.discovery.v3.DiscoveryResponse`, as Envoy reads it from a
/// `path_config_source` file: `resources: [ {"@type": ..., ...} ]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryResponse {
    /// Version of this set of resources.
    pub version_info: String,
    /// The resources.
    pub resources: Vec<Resource>,
    /// Type URL of every resource (optional in files).
    pub type_url: String,
    /// Canary flag; accepted and ignored.
    pub canary: bool,
    /// Nonce (gRPC only).
    pub nonce: String,
    /// Control plane identifier; accepted and ignored.
    pub control_plane: Option<serde_json::Value>,
}

impl Validate for DiscoveryResponse {
    fn validate(&self, v: &mut Validator) {
        // Cluster names cannot be checked: CDS may supply them.
        let outer = v.known_clusters.take();
        v.each("resources", &self.resources);
        v.known_clusters = outer;
        v.field("resources", |v| {
            for (i, r) in self.resources.iter().enumerate() {
                if let Some(first) = self.resources.first()
                    && std::mem::discriminant(first) != std::mem::discriminant(r)
                {
                    v.index(i, |v| v.error_here("all resources must have the same type"));
                }
                let dup = self.resources[..i].iter().any(|e| {
                    std::mem::discriminant(e) == std::mem::discriminant(r) && e.name() == r.name()
                });
                if dup {
                    v.index(i, |v| v.error_here(format!("duplicate resource name {:?}", r.name())));
                }
            }
        });
        if !self.type_url.is_empty() {
            let t = self.type_url.rsplit('/').next().unwrap_or_default();
            if ![
                "envoy.config.listener.v3.Listener",
                "envoy.config.cluster.v3.Cluster",
                "envoy.config.route.v3.RouteConfiguration",
                "envoy.config.endpoint.v3.ClusterLoadAssignment",
            ]
            .contains(&t)
            {
                v.unsupported(
                    "type_url",
                    "Listener, Cluster, RouteConfiguration or ClusterLoadAssignment",
                );
            }
        }
    }
}

/// A bare YAML list of resources of one type (as Envoy Gateway's golden files).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(transparent)]
pub struct ResourceList<T>(pub Vec<T>);

impl<T: Validate> Validate for ResourceList<T> {
    fn validate(&self, v: &mut Validator) {
        // Cluster names cannot be checked: other resources may supply them.
        let outer = v.known_clusters.take();
        for (i, item) in self.0.iter().enumerate() {
            v.index(i, |v| item.validate(v));
        }
        v.known_clusters = outer;
    }
}
