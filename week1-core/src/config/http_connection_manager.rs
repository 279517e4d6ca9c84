//! `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`:
//! the network filter that turns a connection into HTTP streams.
//!
//! Loaded here from a listener's filter chain; mini-envoy's connection
//! manager reads the codec limits and timeouts, builds the HTTP filter chain
//! from [`HttpFilter`]s (week 3 registry) and routes with the inline
//! `route_config` (week 1 router) or the one RDS delivers (week 4).

use serde::Deserialize;

use super::access_log::AccessLog;
use super::config_source::ConfigSource;
use super::filters::{HttpFilterConfig, ROUTER_NAMES, Router};
use super::protocol::{Http1ProtocolOptions, HttpProtocolOptions};
use super::route::RouteConfiguration;
use super::types::Duration;
use super::validate::{Validate, Validator};

/// `HttpConnectionManager.CodecType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CodecType {
    /// Sniff the protocol; mini-envoy serves HTTP/1.1 (and 1.0).
    #[default]
    Auto,
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (not supported).
    Http2,
    /// HTTP/3 (not supported).
    Http3,
}

/// `HttpConnectionManager.ServerHeaderTransformation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerHeaderTransformation {
    /// Set `server` to `server_name`, replacing the upstream's.
    #[default]
    Overwrite,
    /// Set `server` only when the upstream did not.
    AppendIfAbsent,
    /// Leave `server` as the upstream sent it.
    PassThrough,
}

/// `HttpConnectionManager.PathWithEscapedSlashesAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PathWithEscapedSlashesAction {
    /// Envoy's default: KEEP_UNCHANGED.
    #[default]
    ImplementationSpecificDefault,
    /// Forward `%2F`/`%5C` unchanged.
    KeepUnchanged,
    /// Reply 400.
    RejectRequest,
    /// Unescape, then redirect to the unescaped path.
    UnescapeAndRedirect,
    /// Unescape and forward.
    UnescapeAndForward,
}

/// `HttpConnectionManager.ForwardClientCertDetails`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ForwardClientCertDetails {
    /// Remove `x-forwarded-client-cert` (the only meaningful choice without TLS).
    #[default]
    Sanitize,
    /// Forward only (needs mTLS: not supported).
    ForwardOnly,
    /// Append client cert details (needs mTLS: not supported).
    AppendForward,
    /// Sanitize, then set (needs mTLS: not supported).
    SanitizeSet,
    /// Always forward unchanged.
    AlwaysForwardOnly,
}

/// `HttpConnectionManager.Rds`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rds {
    /// Where the route configuration comes from.
    pub config_source: Option<ConfigSource>,
    /// The RouteConfiguration's name.
    pub route_config_name: String,
}

impl Validate for Rds {
    fn validate(&self, v: &mut Validator) {
        match &self.config_source {
            None => v.error("config_source", "must be set"),
            Some(c) => v.child("config_source", c),
        }
        if self.route_config_name.is_empty() {
            v.error("route_config_name", "must not be empty");
        }
    }
}

/// `envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpFilter {
    /// Free-form name; `typed_config."@type"` chooses the filter.
    pub name: String,
    /// The config; may be omitted only for the router (by name).
    pub typed_config: Option<HttpFilterConfig>,
    /// Config from ECDS (not supported).
    pub config_discovery: Option<serde_json::Value>,
    /// Skip this filter if its type is unknown (unknown types still fail to load here).
    pub is_optional: bool,
    /// Off unless a route enables it through `typed_per_filter_config`.
    pub disabled: bool,
}

impl HttpFilter {
    /// The effective config: `typed_config`, or the router for a router name.
    pub fn config(&self) -> Option<HttpFilterConfig> {
        match &self.typed_config {
            Some(c) => Some(c.clone()),
            None if ROUTER_NAMES.contains(&self.name.as_str()) => {
                Some(HttpFilterConfig::Router(Router::default()))
            }
            None => None,
        }
    }
}

impl Validate for HttpFilter {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.error("name", "must not be empty");
        }
        if self.config_discovery.is_some() {
            v.unsupported("config_discovery", "set typed_config inline");
        }
        match &self.typed_config {
            Some(c) => v.child("typed_config", c),
            None if ROUTER_NAMES.contains(&self.name.as_str()) => {}
            None if self.config_discovery.is_some() => {}
            None => v.error(
                "typed_config",
                format!(
                    "must be set: filter {:?} is not the router (only {} may omit typed_config)",
                    self.name,
                    ROUTER_NAMES.join(", ")
                ),
            ),
        }
    }
}

/// `HttpConnectionManager.UpgradeConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpgradeConfig {
    /// The `Upgrade` value, case-insensitive (e.g. `websocket`).
    pub upgrade_type: String,
    /// Filters for upgraded streams (not supported: the HCM chain is used).
    pub filters: Vec<serde_json::Value>,
    /// Allowed by default (true).
    pub enabled: Option<bool>,
}

impl Validate for UpgradeConfig {
    fn validate(&self, v: &mut Validator) {
        if self.upgrade_type.is_empty() {
            v.error("upgrade_type", "must not be empty");
        }
        if self.upgrade_type.eq_ignore_ascii_case("CONNECT") {
            v.unsupported(
                "upgrade_type",
                "CONNECT tunnelling is not supported; websocket-style upgrades are",
            );
        }
        if !self.filters.is_empty() {
            v.unsupported("filters", "upgraded streams use the HCM's http_filters");
        }
    }
}

/// `HttpConnectionManager.InternalAddressConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InternalAddressConfig {
    /// Unix-socket peers are internal.
    pub unix_sockets: bool,
    /// Peers in these ranges are internal (default: RFC 1918 and loopback).
    pub cidr_ranges: Vec<super::listener::CidrRange>,
}

/// `HttpConnectionManager`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConnectionManager {
    /// Codec: AUTO or HTTP1 (HTTP/2 and HTTP/3 are not supported).
    pub codec_type: CodecType,
    /// Stats prefix `http.<stat_prefix>.` (required).
    pub stat_prefix: String,
    /// Routes from RDS (oneof with `route_config`).
    pub rds: Option<Rds>,
    /// Inline routes (oneof with `rds`).
    pub route_config: Option<RouteConfiguration>,
    /// Scoped routes (not supported).
    pub scoped_routes: Option<serde_json::Value>,
    /// HTTP filters, in decode order; the router must be last (empty: just the router).
    pub http_filters: Vec<HttpFilter>,
    /// Add `user-agent` and `x-envoy-downstream-service-cluster` (default false).
    pub add_user_agent: Option<bool>,
    /// Tracing (not supported).
    pub tracing: Option<serde_json::Value>,
    /// Connection limits and timeouts (idle_timeout default 1h, max_headers_count 100).
    pub common_http_protocol_options: Option<HttpProtocolOptions>,
    /// HTTP/1 options.
    pub http_protocol_options: Option<Http1ProtocolOptions>,
    /// HTTP/2 options; accepted and ignored (no HTTP/2 downstream is served).
    pub http2_protocol_options: Option<serde_json::Value>,
    /// HTTP/3 options (not supported).
    pub http3_protocol_options: Option<serde_json::Value>,
    /// `server` header value (default `envoy`).
    pub server_name: String,
    /// How to treat the upstream's `server` header.
    pub server_header_transformation: ServerHeaderTransformation,
    /// Rewrite `:scheme` (not supported).
    pub scheme_header_transformation: Option<serde_json::Value>,
    /// Largest request headers in KiB (default 60, at most 8192).
    pub max_request_headers_kb: Option<u32>,
    /// Reset a stream idle this long (default 5m; 0 disables).
    pub stream_idle_timeout: Option<Duration>,
    /// Time for a whole request to arrive (default 0: disabled).
    pub request_timeout: Option<Duration>,
    /// Time for request headers to arrive (default 0: disabled).
    pub request_headers_timeout: Option<Duration>,
    /// Grace time for connections when draining (default 5s).
    pub drain_timeout: Option<Duration>,
    /// Wait for the peer to close after a local close (default 1s).
    pub delayed_close_timeout: Option<Duration>,
    /// Access logs per request.
    pub access_log: Vec<AccessLog>,
    /// Periodic flush for long requests (not supported).
    pub access_log_flush_interval: Option<Duration>,
    /// Log when a request arrives as well (not supported).
    pub flush_access_log_on_new_request: bool,
    /// Access log timing options (not supported).
    pub access_log_options: Option<serde_json::Value>,
    /// Use the peer address as the client address (default false).
    pub use_remote_address: Option<bool>,
    /// Trusted proxies in `x-forwarded-for` (default 0).
    pub xff_num_trusted_hops: u32,
    /// Original-IP extensions (not supported).
    pub original_ip_detection_extensions: Vec<serde_json::Value>,
    /// Early header mutation extensions (not supported).
    pub early_header_mutation_extensions: Vec<serde_json::Value>,
    /// Which peers are internal.
    pub internal_address_config: Option<InternalAddressConfig>,
    /// Do not append the peer to `x-forwarded-for`.
    pub skip_xff_append: bool,
    /// `via` header value to append (empty: none).
    pub via: String,
    /// Generate `x-request-id` when absent (default true).
    pub generate_request_id: Option<bool>,
    /// Keep a downstream `x-request-id` even from external peers.
    pub preserve_external_request_id: bool,
    /// Echo `x-request-id` in responses.
    pub always_set_request_id_in_response: bool,
    /// `x-forwarded-client-cert` handling (only SANITIZE / ALWAYS_FORWARD_ONLY: no TLS).
    pub forward_client_cert_details: ForwardClientCertDetails,
    /// Client cert fields (needs TLS: not supported).
    pub set_current_client_cert_details: Option<serde_json::Value>,
    /// Proxy `100 Continue` from upstream instead of answering locally.
    pub proxy_100_continue: bool,
    /// Represent IPv4 peers as IPv4-mapped IPv6.
    pub represent_ipv4_remote_address_as_ipv4_mapped_ipv6: bool,
    /// Allowed upgrades (e.g. websocket).
    pub upgrade_configs: Vec<UpgradeConfig>,
    /// Normalize the path per RFC 3986 (default false).
    pub normalize_path: Option<bool>,
    /// Merge adjacent slashes in the path.
    pub merge_slashes: bool,
    /// What to do with `%2F`, `%5C` in paths.
    pub path_with_escaped_slashes_action: PathWithEscapedSlashesAction,
    /// Request id extension (not supported).
    pub request_id_extension: Option<serde_json::Value>,
    /// Local reply rewriting (not supported).
    pub local_reply_config: Option<serde_json::Value>,
    /// Strip the port from `host` when it matches the listener's port.
    pub strip_matching_host_port: bool,
    /// Strip any port from `host`.
    pub strip_any_host_port: Option<bool>,
    /// Reset only the stream on invalid messages (default false: close).
    pub stream_error_on_invalid_http_message: Option<bool>,
    /// Strip a trailing dot from `host`.
    pub strip_trailing_host_dot: bool,
    /// `proxy-status` header (not supported).
    pub proxy_status_config: Option<serde_json::Value>,
    /// Header validator extension (not supported).
    pub typed_header_validation_config: Option<serde_json::Value>,
    /// Append `x-forwarded-port`.
    pub append_x_forwarded_port: bool,
    /// Add `x-envoy-local-overloaded` (no overload manager: never set).
    pub append_local_overload: bool,
    /// PROXY protocol state (not supported).
    pub add_proxy_protocol_connection_state: Option<bool>,
}

impl HttpConnectionManager {
    /// Effective header size limit in bytes (default 60 KiB).
    pub fn max_request_headers_bytes(&self) -> usize {
        self.max_request_headers_kb.unwrap_or(60) as usize * 1024
    }

    /// Effective stream idle timeout: 5m by default, `None` when 0 (disabled).
    pub fn stream_idle_timeout(&self) -> Option<std::time::Duration> {
        enabled(self.stream_idle_timeout, 300)
    }

    /// Effective request timeout (`None`: disabled, Envoy's default).
    pub fn request_timeout(&self) -> Option<std::time::Duration> {
        enabled(self.request_timeout, 0)
    }

    /// Effective request headers timeout (`None`: disabled, Envoy's default).
    pub fn request_headers_timeout(&self) -> Option<std::time::Duration> {
        enabled(self.request_headers_timeout, 0)
    }

    /// Effective connection idle timeout: 1h by default, `None` when 0.
    pub fn idle_timeout(&self) -> Option<std::time::Duration> {
        self.common_http_protocol_options.clone().unwrap_or_default().idle_timeout()
    }

    /// Effective drain timeout (default 5s).
    pub fn drain_timeout(&self) -> std::time::Duration {
        self.drain_timeout.map_or(std::time::Duration::from_secs(5), Duration::get)
    }

    /// Effective delayed close timeout (default 1s; 0 disables).
    pub fn delayed_close_timeout(&self) -> Option<std::time::Duration> {
        enabled(self.delayed_close_timeout, 1)
    }

    /// `x-request-id` generation (default true).
    pub fn generate_request_id(&self) -> bool {
        self.generate_request_id.unwrap_or(true)
    }

    /// The `server` header value (default `envoy`).
    pub fn server_name(&self) -> &str {
        if self.server_name.is_empty() { "envoy" } else { &self.server_name }
    }

    /// The HTTP filters in order, each with its effective config; the router
    /// is added when the list is empty.
    pub fn effective_http_filters(&self) -> Vec<(String, HttpFilterConfig, bool)> {
        if self.http_filters.is_empty() {
            return vec![(
                "envoy.filters.http.router".to_string(),
                HttpFilterConfig::Router(Router::default()),
                false,
            )];
        }
        self.http_filters
            .iter()
            .filter_map(|f| f.config().map(|c| (f.name.clone(), c, f.disabled)))
            .collect()
    }
}

/// `None` when the duration is zero; `default_secs` when unset (0: disabled).
fn enabled(d: Option<Duration>, default_secs: u64) -> Option<std::time::Duration> {
    match d {
        None if default_secs == 0 => None,
        None => Some(std::time::Duration::from_secs(default_secs)),
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d.get()),
    }
}

impl Validate for HttpConnectionManager {
    fn validate(&self, v: &mut Validator) {
        match self.codec_type {
            CodecType::Auto | CodecType::Http1 => {}
            CodecType::Http2 | CodecType::Http3 => v.unsupported(
                "codec_type",
                "downstream HTTP/2 and HTTP/3 are not served; use AUTO or HTTP1",
            ),
        }
        if self.stat_prefix.is_empty() {
            v.error("stat_prefix", "must not be empty");
        }
        v.oneof(
            "route_specifier",
            &[
                ("rds", self.rds.is_some()),
                ("route_config", self.route_config.is_some()),
                ("scoped_routes", self.scoped_routes.is_some()),
            ],
            true,
        );
        if self.scoped_routes.is_some() {
            v.unsupported("scoped_routes", "use route_config or rds");
        }
        v.child("rds", &self.rds);
        v.child("route_config", &self.route_config);
        v.each("http_filters", &self.http_filters);
        // Envoy: the terminal filter (router) must be last, and only last.
        let last = self.http_filters.len().saturating_sub(1);
        v.field("http_filters", |v| {
            for (i, f) in self.http_filters.iter().enumerate() {
                let Some(c) = f.config() else { continue };
                if c.is_terminal() && i != last {
                    v.index(i, |v| {
                        v.error_here(format!(
                            "the router filter {:?} is terminal and must be the last filter",
                            f.name
                        ))
                    });
                }
                if !c.is_terminal() && i == last {
                    v.index(i, |v| {
                        v.error_here(format!(
                            "the last filter must be the router, found {:?} ({})",
                            f.name,
                            c.type_name()
                        ))
                    });
                }
            }
        });
        for (name, set) in [
            ("tracing", self.tracing.is_some()),
            ("http3_protocol_options", self.http3_protocol_options.is_some()),
            ("scheme_header_transformation", self.scheme_header_transformation.is_some()),
            ("access_log_flush_interval", self.access_log_flush_interval.is_some()),
            ("flush_access_log_on_new_request", self.flush_access_log_on_new_request),
            ("access_log_options", self.access_log_options.is_some()),
            ("original_ip_detection_extensions", !self.original_ip_detection_extensions.is_empty()),
            ("early_header_mutation_extensions", !self.early_header_mutation_extensions.is_empty()),
            ("set_current_client_cert_details", self.set_current_client_cert_details.is_some()),
            ("request_id_extension", self.request_id_extension.is_some()),
            ("local_reply_config", self.local_reply_config.is_some()),
            ("proxy_status_config", self.proxy_status_config.is_some()),
            ("typed_header_validation_config", self.typed_header_validation_config.is_some()),
            (
                "add_proxy_protocol_connection_state",
                self.add_proxy_protocol_connection_state.is_some(),
            ),
        ] {
            if set {
                v.unsupported(name, unsupported_hint(name));
            }
        }
        if matches!(
            self.forward_client_cert_details,
            ForwardClientCertDetails::ForwardOnly
                | ForwardClientCertDetails::AppendForward
                | ForwardClientCertDetails::SanitizeSet
        ) {
            v.unsupported(
                "forward_client_cert_details",
                "client certificates need TLS; use SANITIZE or ALWAYS_FORWARD_ONLY",
            );
        }
        if let Some(kb) = self.max_request_headers_kb
            && !(1..=8192).contains(&kb)
        {
            v.error("max_request_headers_kb", format!("{kb} is not between 1 and 8192"));
        }
        if self.strip_matching_host_port && self.strip_any_host_port == Some(true) {
            v.error(
                "strip_any_host_port",
                "strip_port_mode: only one of strip_matching_host_port and strip_any_host_port may be set",
            );
        }
        v.child("common_http_protocol_options", &self.common_http_protocol_options);
        v.child("http_protocol_options", &self.http_protocol_options);
        if let Some(cfg) = &self.internal_address_config {
            v.field("internal_address_config", |v| {
                if cfg.unix_sockets {
                    v.unsupported("unix_sockets", "listeners are TCP only");
                }
                v.each("cidr_ranges", &cfg.cidr_ranges);
            });
        }
        if self.via.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            v.error("via", "must not contain CR, LF or NUL");
        }
        if self.server_name.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            v.error("server_name", "must not contain CR, LF or NUL");
        }
        v.each("access_log", &self.access_log);
        v.each("upgrade_configs", &self.upgrade_configs);
    }
}

fn unsupported_hint(field: &str) -> &'static str {
    match field {
        "tracing" => "mini-envoy does not trace; use access logs and x-request-id",
        "http3_protocol_options" => "only HTTP/1.1 is served",
        "local_reply_config" => "local replies use Envoy's default bodies",
        "set_current_client_cert_details" => "client certificates need TLS, which is not supported",
        "access_log_flush_interval" | "flush_access_log_on_new_request" | "access_log_options" => {
            "access logs are written when a request ends"
        }
        _ => "not implemented in mini-envoy",
    }
}
