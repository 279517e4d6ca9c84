//! DNS resolver configuration: Envoy's `typed_dns_resolver_config`
//! (`envoy.network.dns_resolver.cares` / `.getaddrinfo`), the deprecated
//! `dns_resolution_config`, `dns_resolvers` and `use_tcp_for_dns_lookups`,
//! on a cluster or on the bootstrap (the default for every cluster).
//!
//! The loader parses and validates the fields; [`DnsResolverChoice`] then
//! folds them, with Envoy's precedence, into the one resolver a STRICT_DNS /
//! LOGICAL_DNS cluster uses:
//!
//! ```text
//!  cluster: typed_dns_resolver_config > dns_resolution_config > dns_resolvers/use_tcp_for_dns_lookups
//!     └─ none set ─► bootstrap: typed_dns_resolver_config > dns_resolution_config > use_tcp_for_dns_lookups
//!                       └─ none set ─► the system resolver (getaddrinfo)
//! ```
//!
//! mini-envoy runs a c-ares config on an async stub resolver (hickory); its
//! default, with nothing configured, is `getaddrinfo` (Envoy's is c-ares on
//! `/etc/resolv.conf`: the same servers, plus `/etc/hosts` and NSS here).

use std::net::SocketAddr;

use serde::Deserialize;

use super::types::{Address, Duration};
use super::validate::{Validate, Validator};

/// `envoy.config.core.v3.DnsResolverOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsResolverOptions {
    /// Query over TCP instead of UDP.
    pub use_tcp_for_dns_lookups: bool,
    /// Do not append the system's search domains to names.
    pub no_default_search_domain: bool,
}

/// `envoy.config.core.v3.DnsResolutionConfig` (deprecated: use
/// `typed_dns_resolver_config`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsResolutionConfig {
    /// Name servers, `socket_address` with an IP and a port.
    pub resolvers: Vec<Address>,
    /// Resolver flags.
    pub dns_resolver_options: Option<DnsResolverOptions>,
}

impl Validate for DnsResolutionConfig {
    fn validate(&self, v: &mut Validator) {
        validate_resolvers(v, "resolvers", &self.resolvers);
    }
}

/// `envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaresDnsResolverConfig {
    /// Name servers (empty: the system's, from `/etc/resolv.conf`).
    pub resolvers: Vec<Address>,
    /// Use `resolvers` only when the system names no server.
    pub use_resolvers_as_fallback: bool,
    /// Drop answers of a family no interface can reach (not supported).
    pub filter_unroutable_families: bool,
    /// Resolver flags.
    pub dns_resolver_options: Option<DnsResolverOptions>,
    /// Most queries per UDP socket (at least 1). Every query here uses its
    /// own socket, which is within any limit.
    pub udp_max_queries: Option<u32>,
    /// Seconds before one query attempt times out (default 5).
    pub query_timeout_seconds: Option<u64>,
    /// Attempts per query, each server (default 4).
    pub query_tries: Option<u32>,
    /// Spread queries over the servers instead of asking them in order.
    pub rotate_nameservers: bool,
    /// The EDNS0 UDP payload size announced (default 1232, 0 = no EDNS0).
    pub edns0_max_payload_size: Option<u32>,
    /// Longest life of a UDP channel. Every query here uses a fresh socket,
    /// which is within any duration.
    pub max_udp_channel_duration: Option<Duration>,
    /// Re-create the channel after a timeout. Every query here uses a fresh
    /// socket, so there is no channel to re-create.
    pub reinit_channel_on_timeout: bool,
}

/// c-ares' default query timeout.
pub const DEFAULT_QUERY_TIMEOUT_SECONDS: u64 = 5;
/// c-ares' default tries per query.
pub const DEFAULT_QUERY_TRIES: u32 = 4;
/// c-ares' default EDNS0 payload size.
pub const DEFAULT_EDNS0_PAYLOAD_SIZE: u32 = 1232;

impl CaresDnsResolverConfig {
    /// The flags in force (unset: all false).
    pub fn options(&self) -> DnsResolverOptions {
        self.dns_resolver_options.clone().unwrap_or_default()
    }

    /// Effective per-attempt timeout (default 5 s).
    pub fn query_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.query_timeout_seconds.unwrap_or(DEFAULT_QUERY_TIMEOUT_SECONDS),
        )
    }

    /// Effective tries (default 4).
    pub fn query_tries(&self) -> u32 {
        self.query_tries.unwrap_or(DEFAULT_QUERY_TRIES)
    }

    /// Effective EDNS0 payload size (default 1232; 0 turns EDNS0 off).
    pub fn edns0_max_payload_size(&self) -> u32 {
        self.edns0_max_payload_size.unwrap_or(DEFAULT_EDNS0_PAYLOAD_SIZE)
    }

    /// The name servers as socket addresses (validated: every one is an IP
    /// `socket_address` with a port).
    pub fn resolver_addrs(&self) -> Vec<SocketAddr> {
        self.resolvers.iter().filter_map(Address::socket_addr).collect()
    }
}

impl Validate for CaresDnsResolverConfig {
    fn validate(&self, v: &mut Validator) {
        validate_resolvers(v, "resolvers", &self.resolvers);
        if self.use_resolvers_as_fallback && self.resolvers.is_empty() {
            v.error("resolvers", "must not be empty when use_resolvers_as_fallback is set");
        }
        if self.filter_unroutable_families {
            v.unsupported(
                "filter_unroutable_families",
                "choose the families with the cluster's dns_lookup_family",
            );
        }
        if self.udp_max_queries == Some(0) {
            v.error("udp_max_queries", "must be greater than 0");
        }
        if self.query_timeout_seconds == Some(0) {
            v.error("query_timeout_seconds", "must be greater than 0");
        }
        if self.query_tries == Some(0) {
            v.error("query_tries", "must be greater than 0");
        }
        if let Some(size) = self.edns0_max_payload_size
            && size != 0
            && !(512..=u32::from(u16::MAX)).contains(&size)
        {
            v.error("edns0_max_payload_size", format!("{size} is not 0 or 512 to 65535"));
        }
        if self.max_udp_channel_duration.is_some_and(|d| d.is_zero()) {
            v.error("max_udp_channel_duration", "must be greater than 0");
        }
    }
}

/// `envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GetAddrInfoDnsResolverConfig {
    /// Retries of a failed lookup (unset: none).
    pub num_retries: Option<u32>,
    /// Resolver threads; lookups here run on tokio's blocking pool.
    pub num_resolver_threads: Option<u32>,
}

/// The typed config of a `typed_dns_resolver_config`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename = "@type")]
pub enum DnsResolverTypedConfig {
    /// `envoy.network.dns_resolver.cares`.
    #[serde(rename = "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig")]
    Cares(CaresDnsResolverConfig),
    /// `envoy.network.dns_resolver.getaddrinfo`.
    #[serde(
        rename = "envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig"
    )]
    GetAddrInfo(GetAddrInfoDnsResolverConfig),
}

/// `envoy.config.core.v3.TypedExtensionConfig` naming a DNS resolver.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypedDnsResolverConfig {
    /// Extension name (`envoy.network.dns_resolver.cares`, `...getaddrinfo`).
    pub name: String,
    /// The resolver's config.
    pub typed_config: Option<DnsResolverTypedConfig>,
}

/// The extension names Envoy registers for its resolvers.
pub const CARES: &str = "envoy.network.dns_resolver.cares";
/// See [`CARES`].
pub const GETADDRINFO: &str = "envoy.network.dns_resolver.getaddrinfo";

impl Validate for TypedDnsResolverConfig {
    fn validate(&self, v: &mut Validator) {
        match &self.typed_config {
            None => v.error("typed_config", "must be set"),
            Some(DnsResolverTypedConfig::Cares(c)) => v.child("typed_config", c),
            Some(DnsResolverTypedConfig::GetAddrInfo(_)) => {}
        }
        let expected = match &self.typed_config {
            Some(DnsResolverTypedConfig::Cares(_)) => Some(CARES),
            Some(DnsResolverTypedConfig::GetAddrInfo(_)) => Some(GETADDRINFO),
            None => None,
        };
        if let Some(expected) = expected
            && !self.name.is_empty()
            && self.name != expected
        {
            v.error(
                "name",
                format!("{:?} does not name this typed_config ({expected})", self.name),
            );
        }
    }
}

/// Name servers must be IP `socket_address`es with a port (UDP or TCP both
/// mean "this server"; `use_tcp_for_dns_lookups` picks the transport).
pub(crate) fn validate_resolvers(v: &mut Validator, field: &str, resolvers: &[Address]) {
    v.field(field, |v| {
        for (i, r) in resolvers.iter().enumerate() {
            v.index(i, |v| match &r.socket_address {
                None => v.unsupported("socket_address", "name servers are socket_address"),
                Some(sa) => v.field("socket_address", |v| {
                    if sa.address.parse::<std::net::IpAddr>().is_err() {
                        v.error("address", format!("{:?} is not an IP address", sa.address));
                    }
                    match sa.port_value {
                        None | Some(0) => v.error("port_value", "a name server needs a port"),
                        Some(p) if p > 65535 => {
                            v.error("port_value", format!("{p} is not a port (0 to 65535)"))
                        }
                        Some(_) => {}
                    }
                    if sa.named_port.is_some() {
                        v.unsupported("named_port", "use port_value");
                    }
                }),
            });
        }
    });
}

/// The resolver a DNS cluster uses, after Envoy's precedence.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum DnsResolverChoice {
    /// The operating system's `getaddrinfo` (mini-envoy's default).
    #[default]
    GetAddrInfo,
    /// A stub resolver with c-ares' settings.
    Cares(CaresDnsResolverConfig),
}

impl DnsResolverChoice {
    /// Envoy's `createDnsResolverFactoryFromProto`: `typed_dns_resolver_config`
    /// wins; else `dns_resolution_config` (resolvers and options); else the
    /// legacy `dns_resolvers` / `use_tcp_for_dns_lookups`; `None` when none
    /// of them is set.
    pub fn from_fields(
        typed: Option<&TypedDnsResolverConfig>,
        resolution: Option<&DnsResolutionConfig>,
        legacy_resolvers: &[Address],
        legacy_use_tcp: bool,
    ) -> Option<Self> {
        if let Some(typed) = typed {
            return Some(match &typed.typed_config {
                Some(DnsResolverTypedConfig::Cares(c)) => Self::Cares(c.clone()),
                Some(DnsResolverTypedConfig::GetAddrInfo(_)) | None => Self::GetAddrInfo,
            });
        }
        if let Some(r) = resolution {
            return Some(Self::Cares(CaresDnsResolverConfig {
                resolvers: r.resolvers.clone(),
                dns_resolver_options: r.dns_resolver_options.clone(),
                ..CaresDnsResolverConfig::default()
            }));
        }
        if !legacy_resolvers.is_empty() || legacy_use_tcp {
            return Some(Self::Cares(CaresDnsResolverConfig {
                resolvers: legacy_resolvers.to_vec(),
                dns_resolver_options: Some(DnsResolverOptions {
                    use_tcp_for_dns_lookups: legacy_use_tcp,
                    no_default_search_domain: false,
                }),
                ..CaresDnsResolverConfig::default()
            }));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn cares(yaml: &str) -> Result<TypedDnsResolverConfig, String> {
        load_str::<TypedDnsResolverConfig>(yaml).map_err(|e| e.to_string())
    }

    const TYPE: &str = "\"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig";

    #[test]
    fn cares_fields_parse_with_defaults() {
        let yaml = format!(
            "name: envoy.network.dns_resolver.cares\ntyped_config:\n  {TYPE}\n  resolvers:\n  - socket_address: {{address: 127.0.0.1, port_value: 5353}}\n  - socket_address: {{address: \"::1\", port_value: 53, protocol: UDP}}\n  dns_resolver_options: {{use_tcp_for_dns_lookups: true, no_default_search_domain: true}}\n  use_resolvers_as_fallback: true\n  udp_max_queries: 100\n"
        );
        let t = cares(&yaml).unwrap();
        let Some(DnsResolverTypedConfig::Cares(c)) = &t.typed_config else { panic!("{t:?}") };
        assert_eq!(
            c.resolver_addrs(),
            ["127.0.0.1:5353".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
        assert!(c.options().use_tcp_for_dns_lookups && c.options().no_default_search_domain);
        assert!(c.use_resolvers_as_fallback);
        assert_eq!(c.udp_max_queries, Some(100));
        assert_eq!(c.query_timeout(), std::time::Duration::from_secs(5));
        assert_eq!(c.query_tries(), 4);
        assert_eq!(c.edns0_max_payload_size(), 1232);
    }

    #[test]
    fn bad_resolvers_are_refused_with_their_path_and_line() {
        let yaml = format!(
            "name: envoy.network.dns_resolver.cares\ntyped_config:\n  {TYPE}\n  resolvers:\n  - socket_address: {{address: dns.example, port_value: 53}}\n"
        );
        assert_eq!(
            cares(&yaml).unwrap_err(),
            "typed_config.resolvers[0].socket_address.address: \"dns.example\" is not an IP address at line 5 column 31"
        );
        let yaml = format!(
            "typed_config:\n  {TYPE}\n  resolvers:\n  - socket_address: {{address: 127.0.0.1}}\n"
        );
        assert!(
            cares(&yaml).unwrap_err().starts_with(
                "typed_config.resolvers[0].socket_address.port_value: a name server needs a port"
            ),
            "{}",
            cares(&yaml).unwrap_err()
        );
        let yaml = format!("typed_config:\n  {TYPE}\n  udp_max_queries: 0\n");
        assert!(cares(&yaml).unwrap_err().contains("udp_max_queries: must be greater than 0"));
        let yaml = format!("typed_config:\n  {TYPE}\n  use_resolvers_as_fallback: true\n");
        assert!(cares(&yaml).unwrap_err().contains("typed_config.resolvers: must not be empty"));
        let yaml = format!("typed_config:\n  {TYPE}\n  filter_unroutable_families: true\n");
        assert!(
            cares(&yaml)
                .unwrap_err()
                .starts_with("unsupported: typed_config.filter_unroutable_families")
        );
        let yaml = format!("typed_config:\n  {TYPE}\n  dns_resolver_options: {{use_tcp: true}}\n");
        assert!(cares(&yaml).unwrap_err().contains("use_tcp"), "{}", cares(&yaml).unwrap_err());
        let yaml =
            format!("name: envoy.network.dns_resolver.getaddrinfo\ntyped_config:\n  {TYPE}\n");
        assert!(
            cares(&yaml)
                .unwrap_err()
                .starts_with("name: \"envoy.network.dns_resolver.getaddrinfo\" does not name")
        );
        let yaml = "typed_config:\n  \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.apple.v3.AppleDnsResolverConfig\n";
        assert!(cares(yaml).unwrap_err().starts_with("unsupported: typed_config"));
    }

    #[test]
    fn bootstrap_default_and_cluster_override() {
        let yaml = format!(
            "typed_dns_resolver_config:\n  name: envoy.network.dns_resolver.cares\n  typed_config:\n    {TYPE}\n    resolvers: [{{socket_address: {{address: 127.0.0.1, port_value: 5300}}}}]\nstatic_resources:\n  clusters:\n  - name: own\n    type: STRICT_DNS\n    dns_resolution_config:\n      resolvers: [{{socket_address: {{address: 127.0.0.1, port_value: 5301}}}}]\n      dns_resolver_options: {{use_tcp_for_dns_lookups: true}}\n  - name: default\n    type: STRICT_DNS\n"
        );
        let b = crate::config::load_bootstrap(&yaml).unwrap();
        let DnsResolverChoice::Cares(default) = b.dns_resolver() else { panic!() };
        assert_eq!(default.resolver_addrs()[0].port(), 5300);
        let Some(DnsResolverChoice::Cares(own)) = b.clusters()[0].dns_resolver() else { panic!() };
        assert_eq!(own.resolver_addrs()[0].port(), 5301);
        assert!(own.options().use_tcp_for_dns_lookups);
        assert_eq!(b.clusters()[1].dns_resolver(), None, "the bootstrap's applies");
        assert_eq!(
            crate::config::load_bootstrap("static_resources: {}\n").unwrap().dns_resolver(),
            DnsResolverChoice::GetAddrInfo
        );

        let bad = "static_resources:\n  clusters:\n  - name: c\n    dns_resolvers:\n    - socket_address: {address: 127.0.0.1, port_value: 0}\n";
        assert_eq!(
            crate::config::load_bootstrap(bad).unwrap_err().to_string(),
            "static_resources.clusters[0].dns_resolvers[0].socket_address.port_value: a name server needs a port at line 5 column 56"
        );
    }

    #[test]
    fn precedence_follows_envoy() {
        let addr = |port: u32| Address {
            socket_address: Some(crate::config::types::SocketAddress {
                address: "127.0.0.1".into(),
                port_value: Some(port),
                ..Default::default()
            }),
            ..Default::default()
        };
        let typed = TypedDnsResolverConfig {
            name: CARES.into(),
            typed_config: Some(DnsResolverTypedConfig::Cares(CaresDnsResolverConfig {
                resolvers: vec![addr(1)],
                ..Default::default()
            })),
        };
        let resolution =
            DnsResolutionConfig { resolvers: vec![addr(2)], dns_resolver_options: None };
        let pick = |t, r, l: &[Address], tcp| DnsResolverChoice::from_fields(t, r, l, tcp);
        let port = |c: Option<DnsResolverChoice>| match c {
            Some(DnsResolverChoice::Cares(c)) => c.resolver_addrs()[0].port(),
            other => panic!("{other:?}"),
        };
        assert_eq!(port(pick(Some(&typed), Some(&resolution), &[addr(3)], true)), 1);
        assert_eq!(port(pick(None, Some(&resolution), &[addr(3)], true)), 2);
        assert_eq!(port(pick(None, None, &[addr(3)], false)), 3);
        let Some(DnsResolverChoice::Cares(tcp_only)) = pick(None, None, &[], true) else {
            panic!()
        };
        assert!(tcp_only.resolvers.is_empty() && tcp_only.options().use_tcp_for_dns_lookups);
        assert_eq!(pick(None, None, &[], false), None);
        let gai = TypedDnsResolverConfig {
            name: GETADDRINFO.into(),
            typed_config: Some(DnsResolverTypedConfig::GetAddrInfo(Default::default())),
        };
        assert_eq!(
            pick(Some(&gai), Some(&resolution), &[], false),
            Some(DnsResolverChoice::GetAddrInfo)
        );
    }
}
