//! `envoy.config.core.v3.ConfigSource`: where xDS resources come from.
//!
//! Loaded here as part of `dynamic_resources` (LDS/CDS/ADS), an HCM's `rds`
//! and a cluster's `eds_cluster_config`; the week 4 xDS layer reads it to pick
//! a filesystem watch or a gRPC stream, and mini-envoy wires it in at start-up.
//! Supported: `path` / `path_config_source` (files, Envoy's move-in reload),
//! `api_config_source` with `GRPC` or `DELTA_GRPC` over `envoy_grpc`, and `ads: {}`.

use serde::Deserialize;

use super::types::{Duration, Empty};
use super::validate::{Validate, Validator};

/// `envoy.config.core.v3.ApiVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiVersion {
    /// Envoy's default: V3.
    #[default]
    Auto,
    /// The removed v2 API (not supported).
    V2,
    /// The v3 API.
    V3,
}

/// `envoy.config.core.v3.ConfigSource`: one of `path`, `path_config_source`,
/// `api_config_source`, `ads`, `self`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigSource {
    /// Deprecated: a file to watch (same as `path_config_source.path`).
    pub path: Option<String>,
    /// A file to watch, reloaded when a new file is moved into place.
    pub path_config_source: Option<PathConfigSource>,
    /// A management server reached over gRPC.
    pub api_config_source: Option<ApiConfigSource>,
    /// The bootstrap's `ads_config` stream.
    pub ads: Option<Empty>,
    /// The same server that sent the referring resource (`self: {}`).
    #[serde(rename = "self")]
    pub self_source: Option<serde_json::Value>,
    /// Resource API version; AUTO (V3) or V3.
    pub resource_api_version: ApiVersion,
    /// How long to wait for the first response before going on (default 15s; 0 waits forever).
    pub initial_fetch_timeout: Option<Duration>,
    /// xdstp authorities (not supported).
    pub authorities: Vec<serde_json::Value>,
}

impl ConfigSource {
    /// The file watched, from `path_config_source` or the deprecated `path`.
    pub fn file_path(&self) -> Option<&str> {
        self.path_config_source.as_ref().map(|p| p.path.as_str()).or(self.path.as_deref())
    }

    /// Time to wait for the first update (Envoy's default 15s).
    pub fn initial_fetch_timeout(&self) -> std::time::Duration {
        self.initial_fetch_timeout.map_or(std::time::Duration::from_secs(15), Duration::get)
    }

    /// The clusters this source's gRPC services name (they must be static clusters).
    pub fn grpc_cluster_names(&self) -> impl Iterator<Item = &str> {
        self.api_config_source.iter().flat_map(ApiConfigSource::grpc_cluster_names)
    }
}

impl Validate for ConfigSource {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "config_source_specifier",
            &[
                ("path", self.path.is_some()),
                ("path_config_source", self.path_config_source.is_some()),
                ("api_config_source", self.api_config_source.is_some()),
                ("ads", self.ads.is_some()),
                ("self", self.self_source.is_some()),
            ],
            true,
        );
        if self.path.as_deref() == Some("") {
            v.error("path", "must not be empty");
        }
        if self.self_source.is_some() {
            v.unsupported("self", "use ads, path_config_source or api_config_source");
        }
        if self.resource_api_version == ApiVersion::V2 {
            v.unsupported("resource_api_version", "only the v3 API (V3 or AUTO)");
        }
        if !self.authorities.is_empty() {
            v.unsupported("authorities", "xdstp:// naming is not supported");
        }
        v.child("path_config_source", &self.path_config_source);
        v.child("api_config_source", &self.api_config_source);
    }
}

/// `envoy.config.core.v3.PathConfigSource`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathConfigSource {
    /// The file holding a `DiscoveryResponse` (`resources: [...]`).
    pub path: String,
    /// Watch this directory instead of the file (for symlink swaps, as Kubernetes does).
    pub watched_directory: Option<WatchedDirectory>,
}

/// `envoy.config.core.v3.WatchedDirectory`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchedDirectory {
    /// The directory watched for moves.
    pub path: String,
}

impl Validate for PathConfigSource {
    fn validate(&self, v: &mut Validator) {
        if self.path.is_empty() {
            v.error("path", "must not be empty");
        }
        if let Some(w) = &self.watched_directory
            && w.path.is_empty()
        {
            v.field("watched_directory", |v| v.error("path", "must not be empty"));
        }
    }
}

/// `envoy.config.core.v3.ApiConfigSource.ApiType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiType {
    /// Envoy's zero value, which must not be used.
    #[default]
    DeprecatedAndUnavailableDoNotUse,
    /// REST-JSON polling (not supported).
    Rest,
    /// State-of-the-world gRPC.
    Grpc,
    /// Incremental (delta) gRPC.
    DeltaGrpc,
    /// xdstp aggregated gRPC (not supported).
    AggregatedGrpc,
    /// xdstp aggregated delta gRPC (not supported).
    AggregatedDeltaGrpc,
}

/// `envoy.config.core.v3.ApiConfigSource`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfigSource {
    /// Transport: GRPC or DELTA_GRPC.
    pub api_type: ApiType,
    /// Transport API version: AUTO (V3) or V3.
    pub transport_api_version: ApiVersion,
    /// Clusters for REST (not supported).
    pub cluster_names: Vec<String>,
    /// The gRPC services to use (the first is used).
    pub grpc_services: Vec<GrpcService>,
    /// REST polling interval (REST only).
    pub refresh_delay: Option<Duration>,
    /// REST request timeout (REST only).
    pub request_timeout: Option<Duration>,
    /// Rate limiting of discovery requests (not supported).
    pub rate_limit_settings: Option<serde_json::Value>,
    /// Send the node only on the first request of a stream.
    pub set_node_on_first_message_only: bool,
    /// Config validators (not supported).
    pub config_validators: Vec<serde_json::Value>,
}

impl ApiConfigSource {
    /// The clusters the gRPC services name.
    pub fn grpc_cluster_names(&self) -> impl Iterator<Item = &str> {
        self.grpc_services
            .iter()
            .filter_map(|g| g.envoy_grpc.as_ref().map(|e| e.cluster_name.as_str()))
    }
}

impl Validate for ApiConfigSource {
    fn validate(&self, v: &mut Validator) {
        match self.api_type {
            ApiType::Grpc | ApiType::DeltaGrpc => {}
            ApiType::DeprecatedAndUnavailableDoNotUse => {
                v.error("api_type", "must be set (GRPC or DELTA_GRPC)")
            }
            ApiType::Rest => v.unsupported("api_type", "REST-JSON polling; use GRPC or DELTA_GRPC"),
            ApiType::AggregatedGrpc | ApiType::AggregatedDeltaGrpc => {
                v.unsupported("api_type", "xdstp aggregation; use GRPC or DELTA_GRPC")
            }
        }
        if self.transport_api_version == ApiVersion::V2 {
            v.unsupported("transport_api_version", "only the v3 API (V3 or AUTO)");
        }
        if !self.cluster_names.is_empty() {
            v.unsupported("cluster_names", "REST is not supported; use grpc_services");
        }
        if self.rate_limit_settings.is_some() {
            v.unsupported("rate_limit_settings", "discovery requests are not rate limited");
        }
        if !self.config_validators.is_empty() {
            v.unsupported("config_validators", "no config validator extensions");
        }
        if matches!(self.api_type, ApiType::Grpc | ApiType::DeltaGrpc)
            && self.grpc_services.is_empty()
        {
            v.error("grpc_services", "must name one gRPC service for GRPC and DELTA_GRPC");
        }
        v.each("grpc_services", &self.grpc_services);
    }
}

/// `envoy.config.core.v3.GrpcService`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcService {
    /// Envoy's own gRPC client over a static cluster.
    pub envoy_grpc: Option<EnvoyGrpc>,
    /// The Google C++ gRPC client (not supported).
    pub google_grpc: Option<serde_json::Value>,
    /// Per-call timeout (unset: none).
    pub timeout: Option<Duration>,
    /// Headers sent with each call.
    pub initial_metadata: Vec<super::types::HeaderValue>,
    /// Retries of the stream (not supported).
    pub retry_policy: Option<serde_json::Value>,
}

/// `envoy.config.core.v3.GrpcService.EnvoyGrpc`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvoyGrpc {
    /// The static cluster to call.
    pub cluster_name: String,
    /// `:authority` to send (default: the cluster name).
    pub authority: String,
    /// Largest message accepted (unset: Envoy's gRPC default).
    pub max_receive_message_length: Option<u32>,
    /// Do not send the `x-envoy-*` headers.
    pub skip_envoy_headers: bool,
    /// Retries of the stream (not supported).
    pub retry_policy: Option<serde_json::Value>,
}

impl Validate for GrpcService {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "target_specifier",
            &[
                ("envoy_grpc", self.envoy_grpc.is_some()),
                ("google_grpc", self.google_grpc.is_some()),
            ],
            true,
        );
        if self.google_grpc.is_some() {
            v.unsupported("google_grpc", "use envoy_grpc with a static cluster");
        }
        if self.retry_policy.is_some() {
            v.unsupported("retry_policy", "xDS streams reconnect with backoff on their own");
        }
        if let Some(e) = &self.envoy_grpc {
            v.field("envoy_grpc", |v| {
                if e.cluster_name.is_empty() {
                    v.error("cluster_name", "must not be empty");
                } else if let Some(known) = &v.known_clusters
                    && !known.contains(&e.cluster_name) {
                        let msg = format!(
                            "cluster {:?} is not a static cluster (xDS and gRPC services need one in static_resources.clusters)",
                            e.cluster_name
                        );
                        v.error("cluster_name", msg);
                    }
                if e.retry_policy.is_some() {
                    v.unsupported("retry_policy", "xDS streams reconnect with backoff on their own");
                }
            });
        }
    }
}
