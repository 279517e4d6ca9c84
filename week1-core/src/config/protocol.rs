//! Shared `envoy.config.core.v3` protocol messages: `DataSource`,
//! `HttpProtocolOptions`, `Http1ProtocolOptions`, upstream connection options,
//! and the upstream `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`.
//!
//! Loaded here as parts of the HCM (downstream codec limits and timeouts) and
//! of clusters (upstream pools); used by the week 3 HTTP/1.1 codec and the
//! mini-envoy connection manager and connection pools.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::types::Duration;
use super::validate::{Validate, Validator};

/// `envoy.config.core.v3.DataSource`: one of `filename`, `inline_string`,
/// `inline_bytes`, `environment_variable`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSource {
    /// Read from this file.
    pub filename: Option<String>,
    /// This text.
    pub inline_string: Option<String>,
    /// These bytes (base64 in JSON; kept as written).
    pub inline_bytes: Option<String>,
    /// Read from this environment variable.
    pub environment_variable: Option<String>,
    /// File watching (not supported).
    pub watched_directory: Option<serde_json::Value>,
}

impl Validate for DataSource {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "specifier",
            &[
                ("filename", self.filename.is_some()),
                ("inline_string", self.inline_string.is_some()),
                ("inline_bytes", self.inline_bytes.is_some()),
                ("environment_variable", self.environment_variable.is_some()),
            ],
            true,
        );
        if self.filename.as_deref() == Some("") {
            v.error("filename", "must not be empty");
        }
        if self.environment_variable.as_deref() == Some("") {
            v.error("environment_variable", "must not be empty");
        }
        if self.watched_directory.is_some() {
            v.unsupported("watched_directory", "data sources are read once at load");
        }
    }
}

/// `envoy.config.core.v3.HttpProtocolOptions.HeadersWithUnderscoresAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeadersWithUnderscoresAction {
    /// Keep such headers (Envoy's default).
    #[default]
    Allow,
    /// Reject the request with 400.
    RejectRequest,
    /// Drop the header.
    DropHeader,
}

/// `envoy.config.core.v3.HttpProtocolOptions`: limits and timeouts shared by
/// every HTTP codec (the HCM's and clusters' `common_http_protocol_options`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpProtocolOptions {
    /// Close a connection idle this long (HCM default 1h; 0 disables).
    pub idle_timeout: Option<Duration>,
    /// Close a connection after this long (unset: never).
    pub max_connection_duration: Option<Duration>,
    /// Most headers per message (default 100).
    pub max_headers_count: Option<u32>,
    /// Largest response headers in KiB (default 60).
    pub max_response_headers_kb: Option<u32>,
    /// Longest a stream may last (unset: no limit).
    pub max_stream_duration: Option<Duration>,
    /// What to do with header names containing `_`.
    pub headers_with_underscores_action: HeadersWithUnderscoresAction,
    /// Most requests per connection (unset: no limit).
    pub max_requests_per_connection: Option<u32>,
}

impl HttpProtocolOptions {
    /// Effective idle timeout: 1h by default, `None` when set to 0 (disabled).
    pub fn idle_timeout(&self) -> Option<std::time::Duration> {
        match self.idle_timeout {
            None => Some(std::time::Duration::from_secs(3600)),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d.get()),
        }
    }

    /// Effective header count limit (Envoy's default 100).
    pub fn max_headers_count(&self) -> u32 {
        self.max_headers_count.unwrap_or(100)
    }
}

impl Validate for HttpProtocolOptions {
    fn validate(&self, v: &mut Validator) {
        if self.max_headers_count == Some(0) {
            v.error("max_headers_count", "must be at least 1");
        }
        if let Some(kb) = self.max_response_headers_kb
            && !(1..=8192).contains(&kb)
        {
            v.error("max_response_headers_kb", format!("{kb} is not between 1 and 8192"));
        }
    }
}

/// `envoy.config.core.v3.Http1ProtocolOptions`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http1ProtocolOptions {
    /// Accept absolute URLs in requests (forward-proxy style).
    pub allow_absolute_url: Option<bool>,
    /// Accept HTTP/1.0 and HTTP/0.9 requests.
    pub accept_http_10: bool,
    /// `:authority` for HTTP/1.0 requests without `Host` (needs `accept_http_10`).
    pub default_host_for_http_10: String,
    /// Header name casing (not supported: names are sent lowercase).
    pub header_key_format: Option<serde_json::Value>,
    /// Forward chunked trailers.
    pub enable_trailers: bool,
    /// Accept both `Content-Length` and chunked (not supported: always rejected).
    pub allow_chunked_length: bool,
    /// Keep the connection open after an invalid message.
    pub override_stream_error_on_invalid_http_message: Option<bool>,
    /// Send absolute URLs upstream.
    pub send_fully_qualified_url: bool,
    /// Parser choice; accepted and ignored (mini-envoy has one parser).
    pub use_balsa_parser: Option<bool>,
    /// Accept methods outside RFC 9110's list.
    pub allow_custom_methods: bool,
    /// Ignore `Upgrade` on HTTP/1.1 requests matching these.
    pub ignore_http_11_upgrade: Vec<super::types::StringMatcher>,
}

impl Validate for Http1ProtocolOptions {
    fn validate(&self, v: &mut Validator) {
        if self.header_key_format.is_some() {
            v.unsupported("header_key_format", "header names are sent in lowercase");
        }
        if self.allow_chunked_length {
            v.unsupported(
                "allow_chunked_length",
                "Content-Length with chunked encoding is always rejected (request smuggling)",
            );
        }
        if !self.default_host_for_http_10.is_empty() && !self.accept_http_10 {
            v.error("default_host_for_http_10", "needs accept_http_10: true");
        }
        v.each("ignore_http_11_upgrade", &self.ignore_http_11_upgrade);
    }
}

/// `envoy.config.core.v3.TcpKeepalive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpKeepalive {
    /// Probes before the connection is dead (unset: OS default).
    pub keepalive_probes: Option<u32>,
    /// Idle seconds before probing (unset: OS default).
    pub keepalive_time: Option<u32>,
    /// Seconds between probes (unset: OS default).
    pub keepalive_interval: Option<u32>,
}

/// `envoy.config.cluster.v3.UpstreamConnectionOptions`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConnectionOptions {
    /// TCP keepalive on upstream sockets.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Interface-name reporting; accepted and ignored (stats metadata only).
    pub set_local_interface_name_on_upstream_connections: bool,
    /// Happy Eyeballs tuning (not supported).
    pub happy_eyeballs_config: Option<serde_json::Value>,
}

impl Validate for UpstreamConnectionOptions {
    fn validate(&self, v: &mut Validator) {
        if self.happy_eyeballs_config.is_some() {
            v.unsupported("happy_eyeballs_config", "addresses are tried in resolver order");
        }
    }
}

/// The values of a cluster's `typed_extension_protocol_options`, chosen by `@type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename = "@type")]
pub enum ProtocolOptionsConfig {
    /// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`.
    #[serde(rename = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions")]
    Http(Box<UpstreamHttpProtocolOptions>),
}

impl ProtocolOptionsConfig {
    /// The full message name, which must equal the map key (or its extension name).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Http(_) => "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        }
    }
}

/// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`: the upstream
/// HTTP version and limits of a cluster.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamHttpProtocolOptions {
    /// Limits and timeouts of upstream connections (idle_timeout default 1h).
    pub common_http_protocol_options: Option<HttpProtocolOptions>,
    /// SNI / SAN options (TLS only: not supported).
    pub upstream_http_protocol_options: Option<serde_json::Value>,
    /// Use one fixed protocol.
    pub explicit_http_config: Option<ExplicitHttpConfig>,
    /// Use the downstream protocol (not supported: upstreams are HTTP/1.1).
    pub use_downstream_protocol_config: Option<serde_json::Value>,
    /// ALPN-negotiated protocol (not supported: needs TLS).
    pub auto_config: Option<serde_json::Value>,
    /// Upstream HTTP filters (not supported).
    pub http_filters: Vec<serde_json::Value>,
    /// Header validation extension (not supported).
    pub header_validation_config: Option<serde_json::Value>,
}

/// `...HttpProtocolOptions.ExplicitHttpConfig`: one of the three protocols.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExplicitHttpConfig {
    /// HTTP/1.1.
    pub http_protocol_options: Option<Http1ProtocolOptions>,
    /// HTTP/2 (only for gRPC xDS clusters, whose client always speaks HTTP/2).
    pub http2_protocol_options: Option<serde_json::Value>,
    /// HTTP/3 (not supported).
    pub http3_protocol_options: Option<serde_json::Value>,
}

impl UpstreamHttpProtocolOptions {
    /// Whether this asks for HTTP/2 upstream.
    pub fn wants_http2(&self) -> bool {
        self.explicit_http_config.as_ref().is_some_and(|e| e.http2_protocol_options.is_some())
    }

    /// Checks the options; `grpc_cluster` allows HTTP/2 (an xDS cluster).
    pub fn validate_for(&self, v: &mut Validator, grpc_cluster: bool) {
        v.child("common_http_protocol_options", &self.common_http_protocol_options);
        if self.upstream_http_protocol_options.is_some() {
            v.unsupported("upstream_http_protocol_options", "TLS to upstreams is not supported");
        }
        if self.use_downstream_protocol_config.is_some() {
            v.unsupported(
                "use_downstream_protocol_config",
                "upstreams use HTTP/1.1: set explicit_http_config.http_protocol_options",
            );
        }
        if self.auto_config.is_some() {
            v.unsupported(
                "auto_config",
                "upstreams use HTTP/1.1: set explicit_http_config.http_protocol_options",
            );
        }
        if !self.http_filters.is_empty() {
            v.unsupported("http_filters", "upstream HTTP filters are not supported");
        }
        if self.header_validation_config.is_some() {
            v.unsupported("header_validation_config", "the built-in header validation is used");
        }
        let Some(e) = &self.explicit_http_config else { return };
        v.field("explicit_http_config", |v| {
            v.oneof(
                "protocol_config",
                &[
                    ("http_protocol_options", e.http_protocol_options.is_some()),
                    ("http2_protocol_options", e.http2_protocol_options.is_some()),
                    ("http3_protocol_options", e.http3_protocol_options.is_some()),
                ],
                true,
            );
            v.child("http_protocol_options", &e.http_protocol_options);
            if e.http2_protocol_options.is_some() && !grpc_cluster {
                v.unsupported(
                    "http2_protocol_options",
                    "upstream HTTP/2 is only used for gRPC xDS clusters; proxied traffic uses HTTP/1.1 (http_protocol_options)",
                );
            }
            if e.http3_protocol_options.is_some() {
                v.unsupported("http3_protocol_options", "upstreams use HTTP/1.1 (http_protocol_options)");
            }
        });
    }
}

/// Checks a cluster's `typed_extension_protocol_options` map.
pub fn validate_protocol_options(
    v: &mut Validator,
    map: &BTreeMap<String, ProtocolOptionsConfig>,
    grpc_cluster: bool,
) {
    v.field("typed_extension_protocol_options", |v| {
        for (key, value) in map {
            v.key(key, |v| {
                let name = value.type_name();
                if key != name {
                    v.error_here(format!("key {key:?} does not name the value's type {name}"));
                }
                match value {
                    ProtocolOptionsConfig::Http(o) => o.validate_for(v, grpc_cluster),
                }
            });
        }
    });
}
