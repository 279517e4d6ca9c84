//! `envoy.config.listener.v3.Listener`: addresses, filter chains and their
//! match criteria, network filters, listener filters.
//!
//! Loaded here from `static_resources.listeners` or LDS; the week 1 runtime
//! listener (`crate::listener`) binds the address and selects filter chains,
//! and mini-envoy builds the network filters (HCM, tcp_proxy, rate limit).

use std::net::IpAddr;

use serde::Deserialize;

use super::access_log::AccessLog;
use super::http_connection_manager::HttpConnectionManager;
use super::tcp_proxy::{NetworkLocalRateLimit, TcpProxy};
use super::types::{Address, Duration, Metadata};
use super::validate::{Validate, Validator};

/// `envoy.config.core.v3.CidrRange`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CidrRange {
    /// An IPv4 or IPv6 address.
    pub address_prefix: String,
    /// Prefix length (unset: 0).
    pub prefix_len: Option<u32>,
}

impl CidrRange {
    /// The range as (network address, prefix length), when valid.
    pub fn parse(&self) -> Option<(IpAddr, u8)> {
        let ip: IpAddr = self.address_prefix.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = self.prefix_len.unwrap_or(0);
        (len <= max).then_some((ip, len as u8))
    }

    /// Whether `ip` is inside the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let Some((net, len)) = self.parse() else { return false };
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl Validate for CidrRange {
    fn validate(&self, v: &mut Validator) {
        match self.address_prefix.parse::<IpAddr>() {
            Err(_) => {
                v.error("address_prefix", format!("{:?} is not an IP address", self.address_prefix))
            }
            Ok(ip) => {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                if let Some(len) = self.prefix_len
                    && len > max
                {
                    v.error("prefix_len", format!("{len} is longer than {max}"));
                }
            }
        }
    }
}

/// `FilterChainMatch.ConnectionSourceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionSourceType {
    /// Any source.
    #[default]
    Any,
    /// The peer is this host (same IP or loopback).
    SameIpOrLoopback,
    /// The peer is another host.
    External,
}

/// `envoy.config.listener.v3.FilterChainMatch`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterChainMatch {
    /// Local port the connection was accepted on.
    pub destination_port: Option<u32>,
    /// Local address ranges.
    pub prefix_ranges: Vec<CidrRange>,
    /// Deprecated, never implemented by Envoy (not supported).
    pub address_suffix: String,
    /// Deprecated, never implemented by Envoy (not supported).
    pub suffix_len: Option<u32>,
    /// Ranges of the directly connected peer.
    pub direct_source_prefix_ranges: Vec<CidrRange>,
    /// Local or external peers.
    pub source_type: ConnectionSourceType,
    /// Peer address ranges.
    pub source_prefix_ranges: Vec<CidrRange>,
    /// Peer ports.
    pub source_ports: Vec<u32>,
    /// SNI names (exact or `*.suffix`), set by a TLS inspector.
    pub server_names: Vec<String>,
    /// `raw_buffer` or `tls`, as detected by an inspector.
    pub transport_protocol: String,
    /// ALPN values, as detected by an inspector.
    pub application_protocols: Vec<String>,
}

impl Validate for FilterChainMatch {
    fn validate(&self, v: &mut Validator) {
        if let Some(p) = self.destination_port
            && !(1..=65535).contains(&p)
        {
            v.error("destination_port", format!("{p} is not a port (1 to 65535)"));
        }
        v.each("prefix_ranges", &self.prefix_ranges);
        v.each("direct_source_prefix_ranges", &self.direct_source_prefix_ranges);
        v.each("source_prefix_ranges", &self.source_prefix_ranges);
        v.field("source_ports", |v| {
            for (i, p) in self.source_ports.iter().enumerate() {
                if !(1..=65535).contains(p) {
                    v.index(i, |v| v.error_here(format!("{p} is not a port (1 to 65535)")));
                }
            }
        });
        if !self.address_suffix.is_empty() || self.suffix_len.is_some() {
            v.unsupported("address_suffix", "use prefix_ranges");
        }
        v.field("server_names", |v| {
            for (i, name) in self.server_names.iter().enumerate() {
                let bad = name.is_empty()
                    || name.contains('*')
                        && !(name.starts_with("*.") && name.len() > 2 && !name[1..].contains('*'));
                if bad {
                    v.index(i, |v| {
                        v.error_here(format!(
                            "{name:?} is not a server name (exact or \"*.suffix\")"
                        ))
                    });
                }
            }
        });
    }
}

/// A network filter's config, chosen by `typed_config."@type"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename = "@type")]
pub enum NetworkFilterConfig {
    /// `envoy.filters.network.http_connection_manager` (terminal).
    #[serde(
        rename = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    )]
    HttpConnectionManager(Box<HttpConnectionManager>),
    /// `envoy.filters.network.tcp_proxy` (terminal).
    #[serde(rename = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy")]
    TcpProxy(Box<TcpProxy>),
    /// `envoy.filters.network.local_ratelimit`.
    #[serde(rename = "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit")]
    LocalRateLimit(NetworkLocalRateLimit),
}

impl NetworkFilterConfig {
    /// Whether this filter ends the chain.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::HttpConnectionManager(_) | Self::TcpProxy(_))
    }
}

impl Validate for NetworkFilterConfig {
    fn validate(&self, v: &mut Validator) {
        match self {
            Self::HttpConnectionManager(c) => c.validate(v),
            Self::TcpProxy(c) => c.validate(v),
            Self::LocalRateLimit(c) => c.validate(v),
        }
    }
}

/// `envoy.config.listener.v3.Filter`: a network filter.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    /// Free-form name; `typed_config."@type"` chooses the filter.
    pub name: String,
    /// The filter's config (required).
    pub typed_config: Option<NetworkFilterConfig>,
    /// Config from ECDS (not supported).
    pub config_discovery: Option<serde_json::Value>,
}

impl Validate for Filter {
    fn validate(&self, v: &mut Validator) {
        if self.config_discovery.is_some() {
            v.unsupported("config_discovery", "set typed_config inline");
        }
        match &self.typed_config {
            Some(c) => v.child("typed_config", c),
            None if self.config_discovery.is_some() => {}
            None => v.error("typed_config", "must be set (its \"@type\" chooses the filter)"),
        }
    }
}

/// `envoy.config.listener.v3.FilterChain`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterChain {
    /// When this chain applies (unset: always).
    pub filter_chain_match: Option<FilterChainMatch>,
    /// Network filters in order; the last is terminal (HCM or tcp_proxy).
    pub filters: Vec<Filter>,
    /// Deprecated PROXY protocol flag (not supported).
    pub use_proxy_proto: Option<bool>,
    /// Metadata for filters and logs.
    pub metadata: Option<Metadata>,
    /// Downstream TLS (not supported).
    pub transport_socket: Option<serde_json::Value>,
    /// TLS handshake timeout (TLS only: not supported).
    pub transport_socket_connect_timeout: Option<Duration>,
    /// Name, unique within the listener when set.
    pub name: String,
    /// On-demand filter chains (not supported).
    pub on_demand_configuration: Option<serde_json::Value>,
}

impl Validate for FilterChain {
    fn validate(&self, v: &mut Validator) {
        v.child("filter_chain_match", &self.filter_chain_match);
        if self.transport_socket.is_some() {
            v.unsupported(
                "transport_socket",
                "TLS is not supported; filter chains accept plain TCP (pass TLS through with tcp_proxy)",
            );
        }
        if self.transport_socket_connect_timeout.is_some() {
            v.unsupported("transport_socket_connect_timeout", "TLS is not supported");
        }
        if self.use_proxy_proto.is_some() {
            v.unsupported("use_proxy_proto", "the PROXY protocol is not supported");
        }
        if self.on_demand_configuration.is_some() {
            v.unsupported("on_demand_configuration", "filter chains are built at load");
        }
        if self.filters.is_empty() {
            v.error("filters", "must not be empty (end with http_connection_manager or tcp_proxy)");
        }
        v.each("filters", &self.filters);
        let last = self.filters.len().saturating_sub(1);
        v.field("filters", |v| {
            for (i, f) in self.filters.iter().enumerate() {
                let Some(c) = &f.typed_config else { continue };
                if c.is_terminal() && i != last {
                    v.index(i, |v| v.error_here(format!("{:?} is a terminal filter and must be last", f.name)));
                }
                if !c.is_terminal() && i == last {
                    v.index(i, |v| {
                        v.error_here(format!(
                            "the last filter must be terminal (http_connection_manager or tcp_proxy), found {:?}",
                            f.name
                        ))
                    });
                }
            }
        });
    }
}

/// Listener filters mini-envoy recognises (by `@type` or name); none is
/// implemented yet, so each is `unsupported:` with a reason.
const LISTENER_FILTERS: &[(&str, &str, &str)] = &[
    (
        "tls_inspector.v3.TlsInspector",
        "envoy.filters.listener.tls_inspector",
        "tls_inspector is not implemented (TLS is not supported)",
    ),
    (
        "http_inspector.v3.HttpInspector",
        "envoy.filters.listener.http_inspector",
        "http_inspector is not implemented (HCM listeners serve HTTP/1.1)",
    ),
    (
        "original_dst.v3.OriginalDst",
        "envoy.filters.listener.original_dst",
        "original_dst is not implemented (no transparent proxying)",
    ),
    (
        "original_src.v3.OriginalSrc",
        "envoy.filters.listener.original_src",
        "original_src is not implemented (no transparent proxying)",
    ),
    (
        "proxy_protocol.v3.ProxyProtocol",
        "envoy.filters.listener.proxy_protocol",
        "proxy_protocol is not implemented",
    ),
    (
        "udp_proxy.v3.UdpProxyConfig",
        "envoy.filters.udp_listener.udp_proxy",
        "udp_proxy is not implemented (TCP listeners only)",
    ),
];

/// `envoy.config.listener.v3.ListenerFilter`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerFilter {
    /// Free-form name.
    pub name: String,
    /// The filter's config (`@type`, or the name when `typed_config` is `{}`, as Envoy does).
    pub typed_config: Option<serde_json::Value>,
    /// Config from ECDS (not supported).
    pub config_discovery: Option<serde_json::Value>,
    /// Skip for matching connections (not supported).
    pub filter_disabled: Option<serde_json::Value>,
}

impl Validate for ListenerFilter {
    fn validate(&self, v: &mut Validator) {
        let type_url = self
            .typed_config
            .as_ref()
            .and_then(|c| c.get("@type"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let known = LISTENER_FILTERS.iter().find(|(ty, name, _)| {
            (!type_url.is_empty() && type_url.ends_with(ty))
                || (type_url.is_empty() && self.name == *name)
        });
        let what = match known {
            Some((_, _, why)) => format!("listener filter {why}"),
            None if type_url.is_empty() => {
                format!("listener filter {:?} is not implemented", self.name)
            }
            None => format!("listener filter {type_url} is not implemented"),
        };
        v.unsupported("typed_config", format!("{what}; no listener filters are implemented yet"));
        if self.config_discovery.is_some() {
            v.unsupported("config_discovery", "no listener filters are implemented yet");
        }
        if self.filter_disabled.is_some() {
            v.unsupported("filter_disabled", "no listener filters are implemented yet");
        }
    }
}

/// `envoy.config.listener.v3.Listener.DrainType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DrainType {
    /// Drain on health-check failure, hot restart and LDS changes.
    #[default]
    Default,
    /// Drain only on LDS modification or removal.
    ModifyOnly,
}

/// `envoy.config.core.v3.TrafficDirection`: metadata for stats and tracing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrafficDirection {
    /// Not set.
    #[default]
    Unspecified,
    /// Inbound to this host.
    Inbound,
    /// Outbound from this host.
    Outbound,
}

/// `envoy.config.listener.v3.Listener`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listener {
    /// Unique name (Envoy generates one when empty in static configs; required by LDS).
    pub name: String,
    /// Where to listen (required).
    pub address: Option<Address>,
    /// Extra addresses (not supported).
    pub additional_addresses: Vec<serde_json::Value>,
    /// Stats prefix (default: the address).
    pub stat_prefix: String,
    /// Filter chains, chosen per connection by `filter_chain_match`.
    pub filter_chains: Vec<FilterChain>,
    /// Matcher-API chain selection (not supported: use filter_chain_match).
    pub filter_chain_matcher: Option<serde_json::Value>,
    /// Hand connections to the listener owning the original destination (not supported).
    pub use_original_dst: Option<bool>,
    /// The chain for connections no `filter_chain_match` selects.
    pub default_filter_chain: Option<FilterChain>,
    /// Read/write buffer limit per connection (default 1 MiB).
    pub per_connection_buffer_limit_bytes: Option<u32>,
    /// Metadata for filters and logs.
    pub metadata: Option<Metadata>,
    /// Deprecated v1 options (not supported).
    pub deprecated_v1: Option<serde_json::Value>,
    /// When to drain.
    pub drain_type: DrainType,
    /// Filters run before the chain is chosen (none implemented yet).
    pub listener_filters: Vec<ListenerFilter>,
    /// Timeout for listener filters (default 15s).
    pub listener_filters_timeout: Option<Duration>,
    /// Go on with the default chain when listener filters time out.
    pub continue_on_listener_filters_timeout: bool,
    /// IP_TRANSPARENT (not supported).
    pub transparent: Option<bool>,
    /// IP_FREEBIND (not supported).
    pub freebind: Option<bool>,
    /// Raw socket options (not supported).
    pub socket_options: Vec<serde_json::Value>,
    /// TCP Fast Open queue; accepted and ignored (kernel tuning).
    pub tcp_fast_open_queue_length: Option<u32>,
    /// Inbound or outbound; metadata only, accepted and ignored.
    pub traffic_direction: TrafficDirection,
    /// UDP listener options (not supported).
    pub udp_listener_config: Option<serde_json::Value>,
    /// API listener (not supported).
    pub api_listener: Option<serde_json::Value>,
    /// Connection balancing between workers (not supported).
    pub connection_balance_config: Option<serde_json::Value>,
    /// Deprecated: use enable_reuse_port.
    pub reuse_port: bool,
    /// SO_REUSEPORT, one socket per worker (default true).
    pub enable_reuse_port: Option<bool>,
    /// Access logs for connections no chain accepted.
    pub access_log: Vec<AccessLog>,
    /// listen() backlog (unset: net.core.somaxconn on Linux).
    pub tcp_backlog_size: Option<u32>,
    /// Accept batch size; accepted and ignored (event-loop tuning).
    pub max_connections_to_accept_per_socket_event: Option<u32>,
    /// Bind the socket (default true; false is not supported).
    pub bind_to_port: Option<bool>,
    /// Internal listener (not supported).
    pub internal_listener: Option<serde_json::Value>,
    /// MPTCP (not supported).
    pub enable_mptcp: bool,
    /// Exempt from the global connection limit; accepted and ignored (no global limit).
    pub ignore_global_conn_limit: bool,
    /// Exempt from the overload manager; accepted and ignored (no overload manager).
    pub bypass_overload_manager: bool,
    /// Per-listener connection limit via filter (not supported).
    pub max_connections: Option<serde_json::Value>,
}

impl Listener {
    /// Effective per-connection buffer limit (default 1 MiB).
    pub fn per_connection_buffer_limit_bytes(&self) -> u32 {
        self.per_connection_buffer_limit_bytes.unwrap_or(1024 * 1024)
    }

    /// Whether each worker gets its own SO_REUSEPORT socket (default true).
    pub fn reuse_port(&self) -> bool {
        self.enable_reuse_port.unwrap_or(true)
    }

    /// Every filter chain, the default one last.
    pub fn all_filter_chains(&self) -> impl Iterator<Item = &FilterChain> {
        self.filter_chains.iter().chain(self.default_filter_chain.iter())
    }
}

impl Validate for Listener {
    fn validate(&self, v: &mut Validator) {
        match &self.address {
            None => v.error("address", "must be set"),
            Some(a) => v.child("address", a),
        }
        if self.filter_chains.is_empty() && self.default_filter_chain.is_none() {
            v.error("filter_chains", "must not be empty unless default_filter_chain is set");
        }
        v.each("filter_chains", &self.filter_chains);
        v.child("default_filter_chain", &self.default_filter_chain);
        // Envoy rejects two chains with the same match, and duplicate chain names.
        v.field("filter_chains", |v| {
            for (i, c) in self.filter_chains.iter().enumerate() {
                let earlier = &self.filter_chains[..i];
                if earlier.iter().any(|e| e.filter_chain_match == c.filter_chain_match) {
                    v.index(i, |v| {
                        v.error("filter_chain_match", "another filter chain has the same match")
                    });
                }
                if !c.name.is_empty() && earlier.iter().any(|e| e.name == c.name) {
                    v.index(i, |v| {
                        v.error("name", format!("duplicate filter chain name {:?}", c.name))
                    });
                }
            }
        });
        v.each("listener_filters", &self.listener_filters);
        v.each("access_log", &self.access_log);
        if self.bind_to_port == Some(false) {
            v.unsupported("bind_to_port", "every listener binds its address");
        }
        for (name, set, hint) in [
            (
                "additional_addresses",
                !self.additional_addresses.is_empty(),
                "one address per listener",
            ),
            ("filter_chain_matcher", self.filter_chain_matcher.is_some(), "use filter_chain_match"),
            ("use_original_dst", self.use_original_dst == Some(true), "no transparent proxying"),
            ("deprecated_v1", self.deprecated_v1.is_some(), "v3 fields only"),
            ("transparent", self.transparent == Some(true), "no transparent proxying"),
            ("freebind", self.freebind == Some(true), "listeners bind local addresses"),
            (
                "socket_options",
                !self.socket_options.is_empty(),
                "SO_REUSEADDR/SO_REUSEPORT are set by mini-envoy",
            ),
            ("udp_listener_config", self.udp_listener_config.is_some(), "TCP listeners only"),
            ("api_listener", self.api_listener.is_some(), "TCP listeners only"),
            (
                "connection_balance_config",
                self.connection_balance_config.is_some(),
                "the kernel balances SO_REUSEPORT sockets",
            ),
            ("internal_listener", self.internal_listener.is_some(), "TCP listeners only"),
            ("enable_mptcp", self.enable_mptcp, "TCP listeners only"),
            (
                "max_connections",
                self.max_connections.is_some(),
                "use envoy.filters.network.local_ratelimit",
            ),
        ] {
            if set {
                v.unsupported(name, hint);
            }
        }
        if let Some(limit) = self.per_connection_buffer_limit_bytes
            && limit == 0
        {
            v.error("per_connection_buffer_limit_bytes", "must be greater than 0");
        }
    }
}
