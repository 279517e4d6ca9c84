//! # DNS resolvers: `getaddrinfo` and Envoy's c-ares settings
//!
//! Envoy's `Network::DnsResolver`: a cluster resolves its names with the
//! resolver its config picks ([`DnsResolverChoice`]: the cluster's own
//! `typed_dns_resolver_config` / deprecated fields, else the bootstrap's):
//!
//! ```text
//!  DnsResolverChoice ─► DnsResolver::GetAddrInfo ─► getaddrinfo (blocking pool)
//!                    └► DnsResolver::Cares ─► hickory stub resolver ─► A / AAAA queries
//!                                              (UDP or TCP to `resolvers`, timeouts, tries)
//!  answer ─► Resolved { addresses, TTL }  ·  NXDOMAIN / no data ─► empty answer
//! ```
//!
//! The c-ares config runs on hickory (a maintained async stub resolver on
//! tokio) with c-ares' semantics: `resolvers` replace the system's name
//! servers (or back them up with `use_resolvers_as_fallback`), `query_tries`
//! and `query_timeout_seconds` bound each query, NXDOMAIN and NODATA complete
//! with no address (`dns.cares.not_found`) while other errors fail
//! (`dns.cares.get_addr_failure`, `dns.cares.timeouts`). Every query uses a
//! fresh UDP socket, so `udp_max_queries` and `max_udp_channel_duration` hold
//! trivially. Answers are never cached: each refresh asks the servers.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts, ServerOrderingStrategy,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RecordType;
use week1_core::cluster::info::system_resolver;
use week1_core::config::cluster::DnsLookupFamily;
use week1_core::config::dns::{CaresDnsResolverConfig, DnsResolverChoice};

use crate::stats::{Counter, Gauge, Scope};

/// `dns.cares.*`: every c-ares-style resolver counts into the same cells.
#[derive(Debug, Clone)]
pub struct CaresStats {
    /// Lookups started.
    pub resolve_total: Counter,
    /// Lookups in flight.
    pub pending_resolutions: Gauge,
    /// Lookups answered NXDOMAIN or with no record of the family.
    pub not_found: Counter,
    /// Lookups that failed (timeouts, refused, server failure, I/O).
    pub get_addr_failure: Counter,
    /// Lookups that timed out.
    pub timeouts: Counter,
}

impl CaresStats {
    /// The counters under `dns.cares.` of `root`.
    pub fn new(root: &Scope) -> Self {
        let scope = root.scope("dns").scope("cares");
        Self {
            resolve_total: scope.counter("resolve_total"),
            pending_resolutions: scope.gauge("pending_resolutions"),
            not_found: scope.counter("not_found"),
            get_addr_failure: scope.counter("get_addr_failure"),
            timeouts: scope.counter("timeouts"),
        }
    }
}

/// One name's answer: its addresses (empty: the name has none of the
/// family asked for) and the smallest TTL among the records, when known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    /// The addresses with the endpoint's port.
    pub addresses: Vec<SocketAddr>,
    /// The answer's TTL (`None`: getaddrinfo, or no record).
    pub ttl: Option<Duration>,
}

/// A resolver ready for lookups (build it inside the tokio runtime that
/// runs the lookups).
#[derive(Clone)]
pub enum DnsResolver {
    /// The operating system's `getaddrinfo`, on tokio's blocking pool.
    GetAddrInfo,
    /// A stub resolver with c-ares' settings.
    Cares(Arc<CaresResolver>),
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::GetAddrInfo => f.write_str("GetAddrInfo"),
            Self::Cares(c) => f.debug_tuple("Cares").field(&c.servers).finish(),
        }
    }
}

impl DnsResolver {
    /// The resolver `choice` describes, counting into `stats` (c-ares only).
    pub fn new(choice: &DnsResolverChoice, stats: &CaresStats) -> Result<Self, String> {
        Ok(match choice {
            DnsResolverChoice::GetAddrInfo => Self::GetAddrInfo,
            DnsResolverChoice::Cares(c) => Self::Cares(Arc::new(CaresResolver::new(c, stats)?)),
        })
    }

    /// Looks `name` up for `family`, the answer's addresses with `port`.
    pub async fn resolve(
        &self,
        name: &str,
        port: u16,
        family: DnsLookupFamily,
    ) -> Result<Resolved, String> {
        match self {
            Self::GetAddrInfo => {
                let owned = name.to_string();
                let addrs = tokio::task::spawn_blocking(move || system_resolver(&owned, port))
                    .await
                    .map_err(|e| e.to_string())??;
                let addresses = week1_core::cluster::info::filter_lookup_family(family, addrs);
                Ok(Resolved { addresses, ttl: None })
            }
            Self::Cares(c) => c.resolve(name, port, family).await,
        }
    }
}

/// Resolves with `choice` and blocks until done: for the main thread at
/// start-up and on CDS updates (a helper thread runs its own runtime, so
/// this works inside and outside of tokio).
pub fn resolve_blocking(
    choice: &DnsResolverChoice,
    stats: &CaresStats,
    name: &str,
    port: u16,
    family: DnsLookupFamily,
) -> Result<Vec<SocketAddr>, String> {
    if *choice == DnsResolverChoice::GetAddrInfo {
        return system_resolver(name, port);
    }
    block_on_helper(async {
        let resolver = DnsResolver::new(choice, stats)?;
        resolver.resolve(name, port, family).await.map(|r| r.addresses)
    })?
}

fn block_on_helper<T: Send>(future: impl Future<Output = T> + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a DNS runtime: {e}"))?;
            Ok(rt.block_on(future))
        })
        .join()
        .map_err(|_| "the DNS lookup thread panicked".to_string())?
    })
}

/// The c-ares settings on hickory.
pub struct CaresResolver {
    resolver: TokioResolver,
    servers: Vec<IpAddr>,
    stats: CaresStats,
}

impl CaresResolver {
    /// A resolver for `config`: its `resolvers` (or the system's name
    /// servers when none are given, or with `use_resolvers_as_fallback`
    /// when the system names some), its flags, timeout and tries.
    pub fn new(config: &CaresDnsResolverConfig, stats: &CaresStats) -> Result<Self, String> {
        let options = config.options();
        let given = config.resolver_addrs();
        let system = hickory_resolver::system_conf::read_system_conf();
        let use_system = given.is_empty()
            || (config.use_resolvers_as_fallback
                && system.as_ref().is_ok_and(|(c, _)| !c.name_servers().is_empty()));
        let (system_config, system_opts) = match system {
            Ok((c, o)) => (Some(c), o),
            Err(e) if use_system => {
                return Err(format!("no resolvers given and no system resolver config: {e}"));
            }
            Err(_) => (None, ResolverOpts::default()),
        };
        let name_servers = if use_system {
            let servers = system_config.as_ref().map(|c| c.name_servers().to_vec());
            let servers = servers.unwrap_or_default();
            if servers.is_empty() {
                return Err("no resolvers given and the system names no name server".into());
            }
            if options.use_tcp_for_dns_lookups {
                servers.into_iter().map(|s| tcp_only(s.ip, 53)).collect()
            } else {
                servers
            }
        } else {
            given
                .iter()
                .map(|a| {
                    if options.use_tcp_for_dns_lookups {
                        tcp_only(a.ip(), a.port())
                    } else {
                        udp_then_tcp(a.ip(), a.port())
                    }
                })
                .collect()
        };
        let servers = name_servers.iter().map(|s| s.ip).collect();
        let (domain, search, ndots) = match (&system_config, options.no_default_search_domain) {
            (Some(c), false) => (c.domain().cloned(), c.search().to_vec(), system_opts.ndots),
            _ => (None, Vec::new(), ResolverOpts::default().ndots),
        };
        let mut opts = ResolverOpts::default();
        opts.ndots = ndots;
        opts.timeout = config.query_timeout();
        opts.attempts = config.query_tries().saturating_sub(1) as usize;
        opts.server_ordering_strategy = if config.rotate_nameservers {
            ServerOrderingStrategy::RoundRobin
        } else {
            ServerOrderingStrategy::UserProvidedOrder
        };
        match u16::try_from(config.edns0_max_payload_size()) {
            Ok(0) | Err(_) => opts.edns0 = false,
            Ok(size) => {
                opts.edns0 = true;
                opts.edns_payload_len = size;
            }
        }
        let resolver_config = ResolverConfig::from_parts(domain, search, name_servers);
        let resolver =
            TokioResolver::builder_with_config(resolver_config, TokioRuntimeProvider::default())
                .with_options(opts)
                .build()
                .map_err(|e| format!("cannot build the resolver: {e}"))?;
        Ok(Self { resolver, servers, stats: stats.clone() })
    }

    /// One lookup as c-ares answers Envoy: AUTO asks AAAA then A when there
    /// is no AAAA, V4_PREFERRED the reverse, ALL both.
    pub async fn resolve(
        &self,
        name: &str,
        port: u16,
        family: DnsLookupFamily,
    ) -> Result<Resolved, String> {
        self.stats.resolve_total.inc();
        self.stats.pending_resolutions.inc();
        let result = self.resolve_family(name, port, family).await;
        self.stats.pending_resolutions.dec();
        result
    }

    async fn resolve_family(
        &self,
        name: &str,
        port: u16,
        family: DnsLookupFamily,
    ) -> Result<Resolved, String> {
        use RecordType::{A, AAAA};
        let (first, second, both) = match family {
            DnsLookupFamily::V4Only => (A, None, false),
            DnsLookupFamily::V6Only => (AAAA, None, false),
            DnsLookupFamily::Auto => (AAAA, Some(A), false),
            DnsLookupFamily::V4Preferred => (A, Some(AAAA), false),
            DnsLookupFamily::All => (A, Some(AAAA), true),
        };
        let mut answer = self.query(name, port, first).await?;
        if let Some(second) = second
            && (both || answer.addresses.is_empty())
        {
            let more = self.query(name, port, second).await?;
            answer.addresses.extend(more.addresses);
            answer.ttl = min_ttl(answer.ttl, more.ttl);
        }
        if answer.addresses.is_empty() {
            self.stats.not_found.inc();
        }
        Ok(answer)
    }

    async fn query(&self, name: &str, port: u16, kind: RecordType) -> Result<Resolved, String> {
        // Each refresh asks the servers: no answer is served from a cache.
        self.resolver.clear_cache();
        match self.resolver.lookup(name, kind).await {
            Ok(lookup) => {
                let mut resolved = Resolved::default();
                for record in lookup.answers() {
                    if let Some(ip) = record.data.ip_addr() {
                        resolved.addresses.push(SocketAddr::new(ip, port));
                    }
                    let ttl = Duration::from_secs(u64::from(record.ttl));
                    resolved.ttl = min_ttl(resolved.ttl, Some(ttl));
                }
                if resolved.addresses.is_empty() {
                    resolved.ttl = None;
                }
                Ok(resolved)
            }
            Err(e) if e.is_no_records_found() => Ok(Resolved::default()),
            Err(e) => {
                self.stats.get_addr_failure.inc();
                if matches!(e, NetError::Timeout) {
                    self.stats.timeouts.inc();
                }
                Err(format!("{name}: {e}"))
            }
        }
    }
}

fn min_ttl(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn udp_then_tcp(ip: IpAddr, port: u16) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = port;
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = port;
    NameServerConfig::new(ip, true, vec![udp, tcp])
}

fn tcp_only(ip: IpAddr, port: u16) -> NameServerConfig {
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = port;
    NameServerConfig::new(ip, true, vec![tcp])
}
