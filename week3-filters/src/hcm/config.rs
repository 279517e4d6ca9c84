//! The connection manager's compiled settings: Envoy's `ConnectionManagerConfig`
//! (`HttpConnectionManagerConfig` in `source/extensions/filters/network/http_connection_manager/config.cc`).
//!
//! [`ConnectionManagerConfig::from_config`] turns the loaded
//! [`HttpConnectionManager`] message into plain values once, when a listener's
//! filter chain is built: every default is resolved (Envoy's, unless a
//! deviation is documented on the field), header values are validated, CIDR
//! ranges parsed and upgrade types lowercased, so the per-request code in
//! [`super::utility`] and [`super::path`] only reads fields.

use std::net::IpAddr;
use std::time::Duration;

use week1_core::config::error::{ConfigError, FieldPath};
use week1_core::config::http_connection_manager::{
    ForwardClientCertDetails, HttpConnectionManager, PathWithEscapedSlashesAction,
    ServerHeaderTransformation,
};
use week1_core::config::protocol::HeadersWithUnderscoresAction;
use week1_core::config::types::Duration as ConfigDuration;
use week1_core::headers::HeaderValue;

use crate::http1::Limits;

/// Envoy's default `server_name`.
pub const DEFAULT_SERVER_NAME: &str = "envoy";
/// Envoy's default `stream_idle_timeout`: 5 minutes.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Envoy's default connection `idle_timeout` for the HCM: 1 hour.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default `drain_timeout`: 5 seconds.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Envoy's default `delayed_close_timeout`: 1 second.
pub const DEFAULT_DELAYED_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The connection manager's timers, resolved. `None` means disabled: Envoy
/// disables a timeout that is set to 0 (and the ones whose default is "unset").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time for the request headers to arrive, from the first byte of the
    /// request (`request_headers_timeout`, default disabled). Expiry: 408.
    pub request_headers_timeout: Option<Duration>,
    /// Reset a stream with no activity this long (`stream_idle_timeout`,
    /// default 5 min). Expiry before response headers: 408, else reset.
    pub stream_idle_timeout: Option<Duration>,
    /// Time for the whole request to arrive (`request_timeout`, default
    /// disabled). Expiry: 408.
    pub request_timeout: Option<Duration>,
    /// Close a connection with no active stream this long
    /// (`common_http_protocol_options.idle_timeout`, default 1 h).
    pub idle_timeout: Option<Duration>,
    /// Drain (`connection: close` on the next response, then close) a
    /// connection this old (`common_http_protocol_options.max_connection_duration`,
    /// default disabled; 0 also disables).
    pub max_connection_duration: Option<Duration>,
    /// Reset a stream this old (`common_http_protocol_options.max_stream_duration`,
    /// default disabled; 0 also disables).
    pub max_stream_duration: Option<Duration>,
    /// Grace period between the drain notice and the close (`drain_timeout`,
    /// default 5 s). Not optional: 0 closes at once, as in Envoy.
    pub drain_timeout: Duration,
    /// After a local close with data still being flushed, wait this long for
    /// the peer to close first (`delayed_close_timeout`, default 1 s; 0 disables).
    pub delayed_close_timeout: Option<Duration>,
}

impl Default for Timeouts {
    /// Envoy's defaults.
    fn default() -> Self {
        Self {
            request_headers_timeout: None,
            stream_idle_timeout: Some(DEFAULT_STREAM_IDLE_TIMEOUT),
            request_timeout: None,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_connection_duration: None,
            max_stream_duration: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            delayed_close_timeout: Some(DEFAULT_DELAYED_CLOSE_TIMEOUT),
        }
    }
}

/// What to do with `%2F` / `%5C` in a path (`path_with_escaped_slashes_action`),
/// with Envoy's `IMPLEMENTATION_SPECIFIC_DEFAULT` resolved to `KEEP_UNCHANGED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashesAction {
    /// Forward them as they are (Envoy's default).
    #[default]
    KeepUnchanged,
    /// Reply 400.
    RejectRequest,
    /// Unescape, then answer 307 with the unescaped path in `location`.
    UnescapeAndRedirect,
    /// Unescape and forward.
    UnescapeAndForward,
}

impl From<PathWithEscapedSlashesAction> for EscapedSlashesAction {
    fn from(a: PathWithEscapedSlashesAction) -> Self {
        match a {
            PathWithEscapedSlashesAction::ImplementationSpecificDefault
            | PathWithEscapedSlashesAction::KeepUnchanged => Self::KeepUnchanged,
            PathWithEscapedSlashesAction::RejectRequest => Self::RejectRequest,
            PathWithEscapedSlashesAction::UnescapeAndRedirect => Self::UnescapeAndRedirect,
            PathWithEscapedSlashesAction::UnescapeAndForward => Self::UnescapeAndForward,
        }
    }
}

/// How `:path` is normalized before routing (see [`super::path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathNormalization {
    /// RFC 3986 normalization: dot segments removed, `\` as `/`, escaped
    /// unreserved characters decoded (`normalize_path`, default false).
    pub normalize_path: bool,
    /// Collapse runs of `/` into one (`merge_slashes`, default false).
    pub merge_slashes: bool,
    /// What to do with `%2F` / `%5C`.
    pub escaped_slashes: EscapedSlashesAction,
}

/// Which port to strip from `:authority` before routing (Envoy's `strip_port_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StripPortMode {
    /// Keep the port (default).
    #[default]
    None,
    /// Strip it when it equals the listener's port (`strip_matching_host_port`).
    MatchingListener,
    /// Strip any port (`strip_any_host_port`).
    Any,
}

/// Which downstream peers are internal (`internal_address_config`). A request
/// is internal when its trusted client address is one (see
/// [`super::utility::mutate_request_headers`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InternalAddresses {
    /// Parsed `cidr_ranges` as (network, prefix length). Empty: Envoy's
    /// default set, [`is_default_internal_address`].
    pub cidr_ranges: Vec<(IpAddr, u8)>,
}

impl InternalAddresses {
    /// Whether `ip` is internal.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.cidr_ranges.is_empty() {
            return is_default_internal_address(ip);
        }
        self.cidr_ranges.iter().any(|&(net, len)| cidr_contains(net, len, ip))
    }
}

/// Envoy's `Network::Utility::isInternalAddress`: RFC 1918 (10/8, 172.16/12,
/// 192.168/16), exactly `127.0.0.1`, the IPv6 unique local `fd00::/8` and
/// `::1`. (Envoy counts only `127.0.0.1`, not all of 127/8, and an
/// IPv4-mapped IPv6 address is not internal.)
pub fn is_default_internal_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, _, _] = v4.octets();
            a == 10 || (a == 192 && b == 168) || (a == 172 && (16..=31).contains(&b)) || {
                v4 == std::net::Ipv4Addr::LOCALHOST
            }
        }
        IpAddr::V6(v6) => v6.octets()[0] == 0xfd || v6 == std::net::Ipv6Addr::LOCALHOST,
    }
}

fn cidr_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// One entry of `upgrade_configs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradePolicy {
    /// The `Upgrade` value, lowercased (matched case-insensitively).
    pub upgrade_type: String,
    /// `enabled` (default true). A route's `upgrade_configs` may override it,
    /// but only for a type listed here.
    pub enabled: bool,
}

/// The compiled `HttpConnectionManager` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionManagerConfig {
    /// Stats are `http.<stat_prefix>.*`.
    pub stat_prefix: String,
    /// Downstream HTTP/1 codec limits: `max_request_headers_kb` (default 60),
    /// `common_http_protocol_options.max_headers_count` (default 100),
    /// `http_protocol_options.accept_http_10`.
    ///
    /// Deviation: without `http_protocol_options`, HTTP/1.0 is accepted
    /// ([`Limits::default`]; Envoy refuses it). Once the message is present
    /// its `accept_http_10` applies, as in Envoy.
    pub limits: Limits,
    /// Timers (see [`Timeouts`]).
    pub timeouts: Timeouts,
    /// Requests per downstream connection before it is drained
    /// (`common_http_protocol_options.max_requests_per_connection`, unset: no limit).
    pub max_requests_per_connection: Option<u32>,
    /// Header names with `_` (`common_http_protocol_options.headers_with_underscores_action`).
    pub headers_with_underscores_action: HeadersWithUnderscoresAction,
    /// `:authority` for an HTTP/1.0 request without `Host`
    /// (`http_protocol_options.default_host_for_http_10`).
    pub default_host_for_http_10: Option<HeaderValue>,
    /// Forward HTTP/1 chunked trailers (`http_protocol_options.enable_trailers`,
    /// default false: Envoy drops them).
    pub enable_trailers: bool,
    /// On an invalid message, reset only the stream instead of closing the
    /// connection (`stream_error_on_invalid_http_message`, overridden by
    /// `http_protocol_options.override_stream_error_on_invalid_http_message`;
    /// default false). With HTTP/1 the connection cannot be reused after a
    /// framing error anyway, so this only changes the `connection: close`.
    pub stream_error_on_invalid_http_message: bool,
    /// Trust the peer address as the client (`use_remote_address`, default false).
    pub use_remote_address: bool,
    /// Trusted proxies in front of this one (`xff_num_trusted_hops`, default 0).
    pub xff_num_trusted_hops: u32,
    /// Do not append the peer to `x-forwarded-for` (`skip_xff_append`).
    pub skip_xff_append: bool,
    /// Write the peer's IPv4 address as IPv4-mapped IPv6
    /// (`represent_ipv4_remote_address_as_ipv4_mapped_ipv6`).
    pub represent_ipv4_remote_address_as_ipv4_mapped_ipv6: bool,
    /// Set `x-forwarded-port` to the listener port (`append_x_forwarded_port`).
    pub append_x_forwarded_port: bool,
    /// Which peers are internal.
    pub internal_addresses: InternalAddresses,
    /// Appended to `via` on requests and responses (`via`, empty: none).
    pub via: Option<HeaderValue>,
    /// Generate `x-request-id` (`generate_request_id`, default true).
    pub generate_request_id: bool,
    /// Keep an edge request's own `x-request-id` (`preserve_external_request_id`).
    pub preserve_external_request_id: bool,
    /// Copy the request's `x-request-id` to the response
    /// (`always_set_request_id_in_response`).
    pub always_set_request_id_in_response: bool,
    /// The `server` response header (`server_name`, default `envoy`).
    pub server_name: HeaderValue,
    /// How `server` is set (`server_header_transformation`, default OVERWRITE).
    pub server_header_transformation: ServerHeaderTransformation,
    /// `x-forwarded-client-cert`: without TLS only SANITIZE (remove it, the
    /// default) and ALWAYS_FORWARD_ONLY (keep it) exist.
    pub forward_client_cert_details: ForwardClientCertDetails,
    /// Allowed upgrade types (`upgrade_configs`), in config order.
    pub upgrades: Vec<UpgradePolicy>,
    /// `:path` normalization before routing.
    pub path_normalization: PathNormalization,
    /// Port stripping from `:authority` before routing.
    pub strip_port: StripPortMode,
    /// Strip a trailing `.` from the host (`strip_trailing_host_dot`).
    pub strip_trailing_host_dot: bool,
    /// Forward an upstream `100 Continue` instead of answering
    /// `Expect: 100-continue` locally (`proxy_100_continue`).
    pub proxy_100_continue: bool,
}

impl Default for ConnectionManagerConfig {
    /// Envoy's defaults, with stat prefix `ingress_http`.
    fn default() -> Self {
        Self {
            stat_prefix: "ingress_http".to_string(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            max_requests_per_connection: None,
            headers_with_underscores_action: HeadersWithUnderscoresAction::Allow,
            default_host_for_http_10: None,
            enable_trailers: false,
            stream_error_on_invalid_http_message: false,
            use_remote_address: false,
            xff_num_trusted_hops: 0,
            skip_xff_append: false,
            represent_ipv4_remote_address_as_ipv4_mapped_ipv6: false,
            append_x_forwarded_port: false,
            internal_addresses: InternalAddresses::default(),
            via: None,
            generate_request_id: true,
            preserve_external_request_id: false,
            always_set_request_id_in_response: false,
            server_name: HeaderValue::from_static(DEFAULT_SERVER_NAME),
            server_header_transformation: ServerHeaderTransformation::Overwrite,
            forward_client_cert_details: ForwardClientCertDetails::Sanitize,
            upgrades: Vec::new(),
            path_normalization: PathNormalization::default(),
            strip_port: StripPortMode::None,
            strip_trailing_host_dot: false,
            proxy_100_continue: false,
        }
    }
}

impl ConnectionManagerConfig {
    /// Compiles `hcm`; `at` is its place in the config (errors name fields under it).
    ///
    /// Refuses what cannot be compiled even if validation was skipped: header
    /// limits out of range, CIDR ranges that do not parse, `server_name` or
    /// `via` that are not header values, both port-stripping modes, and the
    /// client-certificate modes that need TLS.
    pub fn from_config(hcm: &HttpConnectionManager, at: &FieldPath) -> Result<Self, ConfigError> {
        let common = hcm.common_http_protocol_options.clone().unwrap_or_default();
        let common_at = || at.field("common_http_protocol_options");
        let http1_at = || at.field("http_protocol_options");

        let max_headers_kb = hcm.max_request_headers_kb.unwrap_or(60);
        if !(1..=8192).contains(&max_headers_kb) {
            return Err(ConfigError::invalid(
                at.field("max_request_headers_kb"),
                format!("{max_headers_kb} is not between 1 and 8192"),
            ));
        }
        let max_headers_count = common.max_headers_count();
        if max_headers_count == 0 {
            return Err(ConfigError::invalid(
                common_at().field("max_headers_count"),
                "must be at least 1",
            ));
        }
        let defaults = Limits::default();
        let http1 = hcm.http_protocol_options.as_ref();
        let limits = Limits {
            max_headers_kb,
            max_headers_count,
            accept_http_10: http1.map_or(defaults.accept_http_10, |o| o.accept_http_10),
            ..defaults
        };
        let default_host_for_http_10 = match http1.map(|o| o.default_host_for_http_10.as_str()) {
            None | Some("") => None,
            Some(host) => Some(HeaderValue::try_from(host).map_err(|_| {
                ConfigError::invalid(
                    http1_at().field("default_host_for_http_10"),
                    "is not a valid header value",
                )
            })?),
        };

        let timeouts = Timeouts {
            request_headers_timeout: hcm.request_headers_timeout(),
            stream_idle_timeout: hcm.stream_idle_timeout(),
            request_timeout: hcm.request_timeout(),
            idle_timeout: common.idle_timeout(),
            max_connection_duration: non_zero(common.max_connection_duration),
            max_stream_duration: non_zero(common.max_stream_duration),
            drain_timeout: hcm.drain_timeout(),
            delayed_close_timeout: hcm.delayed_close_timeout(),
        };

        let internal_addresses = match &hcm.internal_address_config {
            None => InternalAddresses::default(),
            Some(cfg) => {
                let ranges_at = at.field("internal_address_config").field("cidr_ranges");
                let cidr_ranges = cfg
                    .cidr_ranges
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        r.parse().ok_or_else(|| {
                            ConfigError::invalid(
                                ranges_at.index(i),
                                format!(
                                    "{:?}/{} is not a valid CIDR range",
                                    r.address_prefix,
                                    r.prefix_len.unwrap_or(0)
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                InternalAddresses { cidr_ranges }
            }
        };

        let header_value = |field: &str, value: &str| {
            HeaderValue::try_from(value).map_err(|_| {
                ConfigError::invalid(at.field(field), "must not contain control characters")
            })
        };
        let via = if hcm.via.is_empty() { None } else { Some(header_value("via", &hcm.via)?) };
        let server_name = header_value("server_name", hcm.server_name())?;

        if matches!(
            hcm.forward_client_cert_details,
            ForwardClientCertDetails::ForwardOnly
                | ForwardClientCertDetails::AppendForward
                | ForwardClientCertDetails::SanitizeSet
        ) {
            return Err(ConfigError::unsupported(
                at.field("forward_client_cert_details"),
                "client certificates need TLS; use SANITIZE or ALWAYS_FORWARD_ONLY",
            ));
        }

        let strip_port = match (hcm.strip_matching_host_port, hcm.strip_any_host_port) {
            (true, Some(true)) => {
                return Err(ConfigError::invalid(
                    at.field("strip_any_host_port"),
                    "strip_port_mode: only one of strip_matching_host_port and strip_any_host_port may be set",
                ));
            }
            (true, _) => StripPortMode::MatchingListener,
            (false, Some(true)) => StripPortMode::Any,
            (false, _) => StripPortMode::None,
        };

        let upgrades = hcm
            .upgrade_configs
            .iter()
            .map(|u| UpgradePolicy {
                upgrade_type: u.upgrade_type.to_ascii_lowercase(),
                enabled: u.enabled.unwrap_or(true),
            })
            .collect();

        Ok(Self {
            stat_prefix: hcm.stat_prefix.clone(),
            limits,
            timeouts,
            max_requests_per_connection: common.max_requests_per_connection,
            headers_with_underscores_action: common.headers_with_underscores_action,
            default_host_for_http_10,
            enable_trailers: http1.is_some_and(|o| o.enable_trailers),
            stream_error_on_invalid_http_message: http1
                .and_then(|o| o.override_stream_error_on_invalid_http_message)
                .or(hcm.stream_error_on_invalid_http_message)
                .unwrap_or(false),
            use_remote_address: hcm.use_remote_address.unwrap_or(false),
            xff_num_trusted_hops: hcm.xff_num_trusted_hops,
            skip_xff_append: hcm.skip_xff_append,
            represent_ipv4_remote_address_as_ipv4_mapped_ipv6: hcm
                .represent_ipv4_remote_address_as_ipv4_mapped_ipv6,
            append_x_forwarded_port: hcm.append_x_forwarded_port,
            internal_addresses,
            via,
            generate_request_id: hcm.generate_request_id(),
            preserve_external_request_id: hcm.preserve_external_request_id,
            always_set_request_id_in_response: hcm.always_set_request_id_in_response,
            server_name,
            server_header_transformation: hcm.server_header_transformation,
            forward_client_cert_details: hcm.forward_client_cert_details,
            upgrades,
            path_normalization: PathNormalization {
                normalize_path: hcm.normalize_path.unwrap_or(false),
                merge_slashes: hcm.merge_slashes,
                escaped_slashes: hcm.path_with_escaped_slashes_action.into(),
            },
            strip_port,
            strip_trailing_host_dot: hcm.strip_trailing_host_dot,
            proxy_100_continue: hcm.proxy_100_continue,
        })
    }

    /// The HCM-level policy for an upgrade type (case-insensitive), if listed.
    pub fn upgrade_policy(&self, upgrade_type: &str) -> Option<&UpgradePolicy> {
        self.upgrades.iter().find(|u| u.upgrade_type.eq_ignore_ascii_case(upgrade_type))
    }
}

/// `None` for unset or 0.
fn non_zero(d: Option<ConfigDuration>) -> Option<Duration> {
    d.filter(|d| !d.is_zero()).map(ConfigDuration::get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use week1_core::config::http_connection_manager::UpgradeConfig;
    use week1_core::config::listener::CidrRange;
    use week1_core::config::load_str;
    use week1_core::config::protocol::{Http1ProtocolOptions, HttpProtocolOptions};

    fn compile(yaml: &str) -> ConnectionManagerConfig {
        let hcm: HttpConnectionManager = load_str(yaml).unwrap();
        ConnectionManagerConfig::from_config(&hcm, &FieldPath::root()).unwrap()
    }

    fn compile_err(hcm: &HttpConnectionManager) -> String {
        let at = FieldPath::root().field("hcm");
        ConnectionManagerConfig::from_config(hcm, &at).unwrap_err().to_string()
    }

    const MINIMAL: &str = "stat_prefix: ingress_http\nroute_config: {}\n";

    #[test]
    fn defaults_match_envoy() {
        let c = compile(MINIMAL);
        // Envoy: max_request_headers_kb 60, max_headers_count 100.
        assert_eq!(c.limits.max_headers_kb, 60);
        assert_eq!(c.limits.max_headers_count, 100);
        // Envoy's HCM timer defaults.
        assert_eq!(c.timeouts.request_headers_timeout, None);
        assert_eq!(c.timeouts.stream_idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.timeouts.request_timeout, None);
        assert_eq!(c.timeouts.idle_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(c.timeouts.max_connection_duration, None);
        assert_eq!(c.timeouts.max_stream_duration, None);
        assert_eq!(c.timeouts.drain_timeout, Duration::from_secs(5));
        assert_eq!(c.timeouts.delayed_close_timeout, Some(Duration::from_secs(1)));
        assert!(c.generate_request_id);
        assert!(!c.use_remote_address);
        assert_eq!(c.xff_num_trusted_hops, 0);
        assert_eq!(c.server_name.as_bytes(), b"envoy");
        assert_eq!(c.server_header_transformation, ServerHeaderTransformation::Overwrite);
        assert_eq!(c.via, None);
        assert_eq!(c.forward_client_cert_details, ForwardClientCertDetails::Sanitize);
        assert!(c.upgrades.is_empty());
        assert_eq!(c.path_normalization, PathNormalization::default());
        assert_eq!(c.path_normalization.escaped_slashes, EscapedSlashesAction::KeepUnchanged);
        assert_eq!(c.strip_port, StripPortMode::None);
        assert_eq!(c.internal_addresses, InternalAddresses::default());
        // Default::default() is the same compiled config.
        assert_eq!(c, ConnectionManagerConfig::default());
    }

    #[test]
    fn explicit_settings_are_compiled() {
        let c = compile(
            r#"
stat_prefix: edge
route_config: {}
max_request_headers_kb: 96
request_headers_timeout: 2s
stream_idle_timeout: 0s
request_timeout: 30s
drain_timeout: 0.5s
delayed_close_timeout: 0s
common_http_protocol_options:
  idle_timeout: 0s
  max_connection_duration: 60s
  max_stream_duration: 0s
  max_headers_count: 50
  max_requests_per_connection: 1000
http_protocol_options:
  accept_http_10: false
  enable_trailers: true
use_remote_address: true
xff_num_trusted_hops: 2
skip_xff_append: true
via: mini-envoy
generate_request_id: false
preserve_external_request_id: true
always_set_request_id_in_response: true
server_name: edge-proxy
server_header_transformation: APPEND_IF_ABSENT
upgrade_configs:
- upgrade_type: WebSocket
- upgrade_type: h2c
  enabled: false
normalize_path: true
merge_slashes: true
path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT
strip_any_host_port: true
internal_address_config:
  cidr_ranges:
  - address_prefix: 100.64.0.0
    prefix_len: 10
"#,
        );
        assert_eq!(c.stat_prefix, "edge");
        assert_eq!(c.limits.max_headers_kb, 96);
        assert_eq!(c.limits.max_headers_count, 50);
        assert!(!c.limits.accept_http_10);
        assert!(c.enable_trailers);
        assert_eq!(c.max_requests_per_connection, Some(1000));
        let t = c.timeouts;
        assert_eq!(t.request_headers_timeout, Some(Duration::from_secs(2)));
        assert_eq!(t.stream_idle_timeout, None, "0 disables");
        assert_eq!(t.request_timeout, Some(Duration::from_secs(30)));
        assert_eq!(t.idle_timeout, None, "0 disables");
        assert_eq!(t.max_connection_duration, Some(Duration::from_secs(60)));
        assert_eq!(t.max_stream_duration, None, "0 disables");
        assert_eq!(t.drain_timeout, Duration::from_millis(500));
        assert_eq!(t.delayed_close_timeout, None, "0 disables");
        assert!(c.use_remote_address && c.skip_xff_append);
        assert_eq!(c.xff_num_trusted_hops, 2);
        assert_eq!(c.via.as_ref().map(HeaderValue::as_bytes), Some(&b"mini-envoy"[..]));
        assert!(!c.generate_request_id);
        assert!(c.preserve_external_request_id && c.always_set_request_id_in_response);
        assert_eq!(c.server_name.as_bytes(), b"edge-proxy");
        assert_eq!(c.server_header_transformation, ServerHeaderTransformation::AppendIfAbsent);
        assert_eq!(
            c.upgrades,
            [
                UpgradePolicy { upgrade_type: "websocket".into(), enabled: true },
                UpgradePolicy { upgrade_type: "h2c".into(), enabled: false },
            ]
        );
        assert!(c.upgrade_policy("WEBSOCKET").is_some());
        assert_eq!(
            c.path_normalization,
            PathNormalization {
                normalize_path: true,
                merge_slashes: true,
                escaped_slashes: EscapedSlashesAction::UnescapeAndRedirect,
            }
        );
        assert_eq!(c.strip_port, StripPortMode::Any);
        assert!(c.internal_addresses.contains("100.100.1.1".parse().unwrap()));
        assert!(
            !c.internal_addresses.contains("10.0.0.1".parse().unwrap()),
            "ranges replace the default"
        );
    }

    #[test]
    fn http_protocol_options_absent_accepts_http_10() {
        // mini-envoy's documented deviation (Limits::default).
        assert!(compile(MINIMAL).limits.accept_http_10);
        let c = compile("stat_prefix: s\nroute_config: {}\nhttp_protocol_options: {}\n");
        assert!(!c.limits.accept_http_10, "once set, Envoy's default false applies");
    }

    #[test]
    fn stream_error_override_wins() {
        let c = compile(
            "stat_prefix: s\nroute_config: {}\nstream_error_on_invalid_http_message: true\n\
             http_protocol_options: {override_stream_error_on_invalid_http_message: false}\n",
        );
        assert!(!c.stream_error_on_invalid_http_message);
    }

    #[test]
    fn strip_matching_host_port() {
        let c = compile("stat_prefix: s\nroute_config: {}\nstrip_matching_host_port: true\n");
        assert_eq!(c.strip_port, StripPortMode::MatchingListener);
    }

    #[test]
    fn uncompilable_values_are_errors_with_paths() {
        let base = HttpConnectionManager { stat_prefix: "s".into(), ..Default::default() };

        let hcm = HttpConnectionManager { max_request_headers_kb: Some(0), ..base.clone() };
        assert_eq!(compile_err(&hcm), "hcm.max_request_headers_kb: 0 is not between 1 and 8192");

        let hcm = HttpConnectionManager {
            common_http_protocol_options: Some(HttpProtocolOptions {
                max_headers_count: Some(0),
                ..Default::default()
            }),
            ..base.clone()
        };
        assert_eq!(
            compile_err(&hcm),
            "hcm.common_http_protocol_options.max_headers_count: must be at least 1"
        );

        let hcm = HttpConnectionManager {
            internal_address_config: Some(
                week1_core::config::http_connection_manager::InternalAddressConfig {
                    unix_sockets: false,
                    cidr_ranges: vec![CidrRange {
                        address_prefix: "10.0.0.0".into(),
                        prefix_len: Some(33),
                    }],
                },
            ),
            ..base.clone()
        };
        assert_eq!(
            compile_err(&hcm),
            "hcm.internal_address_config.cidr_ranges[0]: \"10.0.0.0\"/33 is not a valid CIDR range"
        );

        let hcm = HttpConnectionManager { via: "a\u{1}b".into(), ..base.clone() };
        assert_eq!(compile_err(&hcm), "hcm.via: must not contain control characters");

        let hcm = HttpConnectionManager {
            strip_matching_host_port: true,
            strip_any_host_port: Some(true),
            ..base.clone()
        };
        assert!(compile_err(&hcm).starts_with("hcm.strip_any_host_port: strip_port_mode"));

        let hcm = HttpConnectionManager {
            forward_client_cert_details: ForwardClientCertDetails::AppendForward,
            ..base.clone()
        };
        assert!(compile_err(&hcm).starts_with("unsupported: hcm.forward_client_cert_details"));

        let hcm = HttpConnectionManager {
            http_protocol_options: Some(Http1ProtocolOptions {
                accept_http_10: true,
                default_host_for_http_10: "bad\nhost".into(),
                ..Default::default()
            }),
            ..base.clone()
        };
        assert_eq!(
            compile_err(&hcm),
            "hcm.http_protocol_options.default_host_for_http_10: is not a valid header value"
        );

        let hcm = HttpConnectionManager {
            upgrade_configs: vec![UpgradeConfig {
                upgrade_type: "websocket".into(),
                enabled: Some(false),
                ..Default::default()
            }],
            ..base
        };
        let c = ConnectionManagerConfig::from_config(&hcm, &FieldPath::root()).unwrap();
        assert!(!c.upgrades[0].enabled);
    }

    #[test]
    fn default_internal_addresses_are_envoys() {
        // Envoy's Network::Utility::isInternalAddress.
        for (ip, internal) in [
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("172.32.0.1", false),
            ("172.15.0.1", false),
            ("192.168.1.1", true),
            ("192.169.1.1", false),
            ("127.0.0.1", true),
            ("127.0.0.2", false),
            ("8.8.8.8", false),
            ("::1", true),
            ("fd00::1", true),
            ("fc00::1", false),
            ("2001:db8::1", false),
            ("::ffff:10.0.0.1", false),
        ] {
            assert_eq!(is_default_internal_address(ip.parse().unwrap()), internal, "{ip}");
        }
    }

    #[test]
    fn cidr_ranges_match_by_prefix() {
        let r = InternalAddresses {
            cidr_ranges: vec![
                ("192.0.2.0".parse().unwrap(), 24),
                ("2001:db8::".parse().unwrap(), 32),
                ("0.0.0.0".parse().unwrap(), 0),
            ],
        };
        assert!(r.contains("192.0.2.200".parse().unwrap()));
        assert!(r.contains("8.8.8.8".parse().unwrap()), "/0 matches every IPv4 address");
        assert!(r.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!r.contains("2001:db9::1".parse().unwrap()));
    }
}
