//! Listeners: binding sockets and choosing a filter chain for each connection.
//!
//! Mirrors Envoy's `ListenerImpl` and `FilterChainManagerImpl`. A connection's
//! life starts here:
//!
//! ```text
//!  accept ──► listener filters ──► filter-chain match ──► network filters (week 3)
//!             (inspect, may pause     (destination, SNI,
//!              until data arrives)     source, … most specific)
//! ```
//!
//! - [`bind`] opens a TCP socket with `SO_REUSEADDR` and `SO_REUSEPORT`, so every
//!   worker thread can own its own socket on the same port and the kernel spreads
//!   connections between them (Envoy's `enable_reuse_port`, on by default).
//! - [`ListenerFilterChain`] runs listener filters (Envoy's
//!   `Network::ListenerFilter`) that may stop and wait for the first bytes.
//! - [`FilterChainMatcher`] picks the filter chain with Envoy's order of criteria.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::listener::{
    CidrRange as CidrConfig, ConnectionSourceType, FilterChainMatch, Listener,
};
use crate::config::{ConfigError, FieldPath};

/// Socket options for [`bind`].
#[derive(Debug, Clone)]
pub struct BindOptions {
    /// `SO_REUSEPORT`: several sockets (one per worker) on one address.
    pub reuse_port: bool,
    /// Length of the accept queue (Envoy's `tcp_backlog_size`, default 1024 in
    /// Envoy's listener config docs).
    pub backlog: i32,
    /// For an IPv6 wildcard address, also accept IPv4 (Envoy's `ipv4_compat`).
    pub ipv4_compat: bool,
    /// Non-blocking mode, as event loops need.
    pub nonblocking: bool,
}

impl Default for BindOptions {
    fn default() -> Self {
        Self { reuse_port: true, backlog: 1024, ipv4_compat: false, nonblocking: true }
    }
}

// ANCHOR: bind
/// Opens a listening TCP socket on `addr`. Port 0 picks a free port; read it
/// back with `local_addr()`.
pub fn bind(addr: SocketAddr, opts: &BindOptions) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Restarting mini-envoy must not wait for old connections in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if opts.reuse_port {
        // Each worker binds its own socket to the same address; the kernel
        // load-balances new connections across them.
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(!opts.ipv4_compat)?;
    }
    socket.set_nonblocking(opts.nonblocking)?;
    socket.bind(&addr.into())?;
    socket.listen(opts.backlog)?;
    Ok(socket.into())
}
// ANCHOR_END: bind

/// What a listener knows about a new connection when it picks a filter chain.
/// Listener filters fill in `server_name`, `transport_protocol` and
/// `application_protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The address the connection was accepted on (the listener's side).
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// SNI, when a listener filter found one.
    pub server_name: Option<String>,
    /// `raw_buffer` unless a listener filter detected another protocol such as `tls`.
    pub transport_protocol: String,
    /// ALPN values, when a listener filter found them.
    pub application_protocols: Vec<String>,
}

impl ConnectionInfo {
    /// A plain TCP connection between two addresses.
    pub fn new(local: SocketAddr, remote: SocketAddr) -> Self {
        Self {
            local,
            remote,
            server_name: None,
            transport_protocol: "raw_buffer".to_string(),
            application_protocols: Vec::new(),
        }
    }
}

/// What a listener filter tells the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerFilterStatus {
    /// Done: run the next filter.
    Continue,
    /// Wait for (more) bytes from the client, then call `on_data`.
    StopIteration,
    /// Close the connection.
    Reject,
}

/// Envoy's `Network::ListenerFilter`: runs on a new connection before the
/// filter chain is chosen, and may look at the first bytes without consuming them.
pub trait ListenerFilter {
    /// A connection was accepted.
    fn on_accept(&mut self, conn: &mut ConnectionInfo) -> ListenerFilterStatus;

    /// Bytes peeked from the connection (everything received so far). Only called
    /// after this filter returned `StopIteration`.
    fn on_data(&mut self, _conn: &mut ConnectionInfo, _peeked: &[u8]) -> ListenerFilterStatus {
        ListenerFilterStatus::Continue
    }

    /// How many bytes this filter wants to see at most.
    fn max_read_bytes(&self) -> usize {
        0
    }
}

/// Where a [`ListenerFilterChain`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerFiltersOutcome {
    /// Every filter continued: choose the filter chain now.
    Done,
    /// A filter waits for more bytes (up to `max_read_bytes`).
    NeedData {
        /// Bytes the waiting filter may need in all.
        max_read_bytes: usize,
    },
    /// A filter rejected the connection.
    Rejected,
}

/// Runs listener filters in order and resumes where one stopped.
pub struct ListenerFilterChain {
    filters: Vec<Box<dyn ListenerFilter + Send>>,
    next: usize,
    waiting: bool,
}

impl ListenerFilterChain {
    /// A chain over `filters`, in configured order.
    pub fn new(filters: Vec<Box<dyn ListenerFilter + Send>>) -> Self {
        Self { filters, next: 0, waiting: false }
    }

    /// Starts the chain for a newly accepted connection.
    pub fn on_accept(&mut self, conn: &mut ConnectionInfo) -> ListenerFiltersOutcome {
        self.next = 0;
        self.waiting = false;
        self.run(conn, None)
    }

    /// Feeds everything peeked so far to the waiting filter, then continues.
    /// Calling it when no filter waits is harmless and returns the current state.
    pub fn on_data(&mut self, conn: &mut ConnectionInfo, peeked: &[u8]) -> ListenerFiltersOutcome {
        if !self.waiting {
            return if self.next >= self.filters.len() {
                ListenerFiltersOutcome::Done
            } else {
                self.run(conn, None)
            };
        }
        self.run(conn, Some(peeked))
    }

    fn run(
        &mut self,
        conn: &mut ConnectionInfo,
        mut data: Option<&[u8]>,
    ) -> ListenerFiltersOutcome {
        while let Some(filter) = self.filters.get_mut(self.next) {
            let status = match (self.waiting, data.take()) {
                (true, Some(bytes)) => filter.on_data(conn, bytes),
                _ => filter.on_accept(conn),
            };
            match status {
                ListenerFilterStatus::Continue => {
                    self.waiting = false;
                    self.next += 1;
                }
                ListenerFilterStatus::StopIteration => {
                    self.waiting = true;
                    return ListenerFiltersOutcome::NeedData {
                        max_read_bytes: filter.max_read_bytes(),
                    };
                }
                ListenerFilterStatus::Reject => return ListenerFiltersOutcome::Rejected,
            }
        }
        ListenerFiltersOutcome::Done
    }
}

/// An IP prefix such as `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// A prefix; `len` must fit the address family.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(Self { addr, len })
    }

    /// Prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `ip` is inside the prefix. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.len)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn is_local(ip: IpAddr, local: IpAddr) -> bool {
    let ip = canonical(ip);
    ip.is_loopback() || ip == canonical(local) || ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
}

/// The source-type criterion of a filter chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceType {
    /// Any source.
    #[default]
    Any,
    /// The peer is this host (loopback or the local address).
    SameIpOrLoopback,
    /// The peer is another host.
    External,
}

/// One filter chain's match criteria, compiled (Envoy's `FilterChainMatch`).
/// Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainCriteria {
    /// Destination port.
    pub destination_port: Option<u16>,
    /// Destination IP prefixes.
    pub destination_ips: Vec<Cidr>,
    /// Server names: exact (`example.com`) or wildcard (`*.example.com`), lowercase.
    pub server_names: Vec<String>,
    /// Transport protocol, such as `raw_buffer` or `tls`.
    pub transport_protocol: Option<String>,
    /// ALPN values.
    pub application_protocols: Vec<String>,
    /// Source type.
    pub source_type: SourceType,
    /// Source IP prefixes.
    pub source_ips: Vec<Cidr>,
    /// Source ports.
    pub source_ports: Vec<u16>,
}

fn cidrs(ranges: &[CidrConfig], path: &FieldPath) -> Result<Vec<Cidr>, ConfigError> {
    ranges
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let p = path.index(i);
            let ip: IpAddr = r.address_prefix.parse().map_err(|_| {
                ConfigError::invalid(
                    p.field("address_prefix"),
                    format!("{:?} is not an IP address", r.address_prefix),
                )
            })?;
            let len = r.prefix_len.unwrap_or(if ip.is_ipv4() { 32 } else { 128 });
            u8::try_from(len).ok().and_then(|len| Cidr::new(ip, len)).ok_or_else(|| {
                ConfigError::invalid(p.field("prefix_len"), format!("{len} is too long for {ip}"))
            })
        })
        .collect()
}

impl ChainCriteria {
    /// Compiles a config `filter_chain_match`; `path` locates errors.
    pub fn from_config(m: &FilterChainMatch, path: &FieldPath) -> Result<Self, ConfigError> {
        let port = |p: u32, field: &str| {
            u16::try_from(p)
                .map_err(|_| ConfigError::invalid(path.field(field), format!("{p} is not a port")))
        };
        Ok(Self {
            destination_port: m
                .destination_port
                .map(|p| port(p, "destination_port"))
                .transpose()?,
            destination_ips: cidrs(&m.prefix_ranges, &path.field("prefix_ranges"))?,
            server_names: m.server_names.iter().map(|s| s.to_ascii_lowercase()).collect(),
            transport_protocol: Some(m.transport_protocol.clone()).filter(|t| !t.is_empty()),
            application_protocols: m.application_protocols.clone(),
            source_type: match m.source_type {
                ConnectionSourceType::Any => SourceType::Any,
                ConnectionSourceType::SameIpOrLoopback => SourceType::SameIpOrLoopback,
                ConnectionSourceType::External => SourceType::External,
            },
            source_ips: cidrs(&m.source_prefix_ranges, &path.field("source_prefix_ranges"))?,
            source_ports: m
                .source_ports
                .iter()
                .map(|&p| port(p, "source_ports"))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// How well one criterion matches: `None` is no match, higher is more specific,
/// `Some(0)` is "criterion not set" (matches anything).
type Score = Option<u32>;

fn score_cidrs(ranges: &[Cidr], ip: IpAddr) -> Score {
    if ranges.is_empty() {
        return Some(0);
    }
    ranges.iter().filter(|c| c.contains(ip)).map(|c| u32::from(c.prefix_len()) + 1).max()
}

fn score_server_name(names: &[String], sni: Option<&str>) -> Score {
    if names.is_empty() {
        return Some(0);
    }
    let sni = sni?.to_ascii_lowercase();
    names
        .iter()
        .filter_map(|n| {
            if *n == sni {
                Some(u32::MAX)
            } else {
                // `*.example.com` matches `a.example.com` and `a.b.example.com`,
                // the longest wildcard suffix winning.
                let suffix = n.strip_prefix('*')?;
                (suffix.starts_with('.') && sni.ends_with(suffix) && sni.len() > suffix.len())
                    .then(|| u32::try_from(suffix.len()).unwrap_or(u32::MAX - 1))
            }
        })
        .max()
}

// ANCHOR: chain_criteria_order
/// The criteria in Envoy's order; each narrows the candidates to the most
/// specific matches before the next is looked at.
fn criteria_scores(c: &ChainCriteria, conn: &ConnectionInfo) -> [Score; 8] {
    [
        // 1. destination port
        match c.destination_port {
            None => Some(0),
            Some(p) => (p == conn.local.port()).then_some(1),
        },
        // 2. destination IP
        score_cidrs(&c.destination_ips, conn.local.ip()),
        // 3. server name: exact, then the longest wildcard
        score_server_name(&c.server_names, conn.server_name.as_deref()),
        // 4. transport protocol
        match &c.transport_protocol {
            None => Some(0),
            Some(t) => (*t == conn.transport_protocol).then_some(1),
        },
        // 5. application protocols
        if c.application_protocols.is_empty() {
            Some(0)
        } else {
            c.application_protocols
                .iter()
                .any(|p| conn.application_protocols.contains(p))
                .then_some(1)
        },
        // 6. source type
        match c.source_type {
            SourceType::Any => Some(0),
            SourceType::SameIpOrLoopback => {
                is_local(conn.remote.ip(), conn.local.ip()).then_some(1)
            }
            SourceType::External => (!is_local(conn.remote.ip(), conn.local.ip())).then_some(1),
        },
        // 7. source IP
        score_cidrs(&c.source_ips, conn.remote.ip()),
        // 8. source port
        if c.source_ports.is_empty() {
            Some(0)
        } else {
            c.source_ports.contains(&conn.remote.port()).then_some(1)
        },
    ]
}
// ANCHOR_END: chain_criteria_order

/// The result of filter-chain selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainMatch {
    /// The chain at this index of `filter_chains`.
    Chain(usize),
    /// No chain matched: `default_filter_chain` applies.
    Default,
    /// Nothing matched and there is no default: Envoy closes the connection and
    /// counts `no_filter_chain_match`.
    NoMatch,
}

/// Chooses a filter chain for each connection (Envoy's `FilterChainManagerImpl`).
#[derive(Debug, Clone, Default)]
pub struct FilterChainMatcher {
    chains: Vec<ChainCriteria>,
    has_default: bool,
}

impl FilterChainMatcher {
    /// A matcher over chains in configured order; `has_default` says whether a
    /// `default_filter_chain` exists.
    pub fn new(chains: Vec<ChainCriteria>, has_default: bool) -> Self {
        Self { chains, has_default }
    }

    /// Compiles a listener's filter chains. Two chains with identical criteria
    /// are an error, as in Envoy.
    pub fn from_listener(listener: &Listener, path: &FieldPath) -> Result<Self, ConfigError> {
        let chains_path = path.field("filter_chains");
        let mut chains: Vec<ChainCriteria> = Vec::with_capacity(listener.filter_chains.len());
        for (i, chain) in listener.filter_chains.iter().enumerate() {
            let p = chains_path.index(i);
            let criteria = match &chain.filter_chain_match {
                Some(m) => ChainCriteria::from_config(m, &p.field("filter_chain_match"))?,
                None => ChainCriteria::default(),
            };
            if let Some(j) = chains.iter().position(|c| *c == criteria) {
                return Err(ConfigError::invalid(
                    p,
                    format!("filter chain {i} has the same filter_chain_match as filter chain {j}"),
                ));
            }
            chains.push(criteria);
        }
        Ok(Self::new(chains, listener.default_filter_chain.is_some()))
    }

    // ANCHOR: select_chain
    /// Picks the chain for `conn`: at each criterion, in Envoy's order, keep only
    /// the candidates that match most specifically. As in Envoy there is no
    /// backtracking: if the most specific candidates fail a later criterion, a
    /// less specific chain is not tried.
    pub fn select(&self, conn: &ConnectionInfo) -> ChainMatch {
        let scored: Vec<(usize, [Score; 8])> =
            self.chains.iter().enumerate().map(|(i, c)| (i, criteria_scores(c, conn))).collect();
        let mut candidates: Vec<&(usize, [Score; 8])> = scored.iter().collect();
        for level in 0..8 {
            let best = candidates.iter().filter_map(|(_, s)| s[level]).max();
            match best {
                Some(best) => candidates.retain(|(_, s)| s[level] == Some(best)),
                None => {
                    candidates.clear();
                    break;
                }
            }
        }
        match candidates.first() {
            Some((i, _)) => ChainMatch::Chain(*i),
            None if self.has_default => ChainMatch::Default,
            None => ChainMatch::NoMatch,
        }
    }
    // ANCHOR_END: select_chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        let (ip, len) = s.split_once('/').unwrap();
        Cidr::new(ip.parse().unwrap(), len.parse().unwrap()).unwrap()
    }

    fn conn(local: &str, remote: &str) -> ConnectionInfo {
        ConnectionInfo::new(addr(local), addr(remote))
    }

    #[test]
    fn binds_port_zero_and_reports_the_real_port() {
        let l = bind(addr("127.0.0.1:0"), &BindOptions::default()).unwrap();
        assert_ne!(l.local_addr().unwrap().port(), 0);
    }

    #[test]
    fn two_sockets_share_a_port_with_reuse_port() {
        let a = bind(addr("127.0.0.1:0"), &BindOptions::default()).unwrap();
        let port = a.local_addr().unwrap().port();
        let b = bind(SocketAddr::new("127.0.0.1".parse().unwrap(), port), &BindOptions::default());
        assert!(b.is_ok(), "{b:?}");
        let no_reuse = BindOptions { reuse_port: false, ..BindOptions::default() };
        let c = bind(SocketAddr::new("127.0.0.1".parse().unwrap(), port), &no_reuse);
        assert!(c.is_err(), "without SO_REUSEPORT the port is taken");
    }

    #[test]
    fn binds_ipv6_loopback() {
        // Some sandboxes have no IPv6; only assert when ::1 exists.
        if let Ok(l) = bind(addr("[::1]:0"), &BindOptions::default()) {
            assert!(l.local_addr().unwrap().is_ipv6());
        }
    }

    #[test]
    fn cidr_contains() {
        assert!(cidr("10.0.0.0/8").contains("10.1.2.3".parse().unwrap()));
        assert!(!cidr("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(cidr("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(cidr("10.0.0.0/8").contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(cidr("2001:db8::/32").contains("2001:db8::1".parse().unwrap()));
        assert!(!cidr("2001:db8::/32").contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::new("1.2.3.4".parse().unwrap(), 33).is_none());
    }

    #[test]
    fn most_specific_destination_and_source_win() {
        let m = FilterChainMatcher::new(
            vec![
                ChainCriteria::default(),
                ChainCriteria { source_ips: vec![cidr("10.0.0.0/8")], ..Default::default() },
                ChainCriteria { source_ips: vec![cidr("10.1.0.0/16")], ..Default::default() },
                ChainCriteria { destination_port: Some(8443), ..Default::default() },
            ],
            false,
        );
        assert_eq!(m.select(&conn("1.1.1.1:80", "9.9.9.9:5")), ChainMatch::Chain(0));
        assert_eq!(m.select(&conn("1.1.1.1:80", "10.9.9.9:5")), ChainMatch::Chain(1));
        assert_eq!(m.select(&conn("1.1.1.1:80", "10.1.9.9:5")), ChainMatch::Chain(2));
        // Destination port is looked at first and wins over any source criterion.
        assert_eq!(m.select(&conn("1.1.1.1:8443", "10.1.9.9:5")), ChainMatch::Chain(3));
    }

    #[test]
    fn server_names_exact_then_longest_wildcard() {
        let m = FilterChainMatcher::new(
            vec![
                ChainCriteria { server_names: vec!["*.example.com".into()], ..Default::default() },
                ChainCriteria {
                    server_names: vec!["*.api.example.com".into()],
                    ..Default::default()
                },
                ChainCriteria {
                    server_names: vec!["www.example.com".into()],
                    ..Default::default()
                },
            ],
            true,
        );
        let with_sni = |sni: &str| {
            let mut c = conn("1.1.1.1:443", "2.2.2.2:5");
            c.server_name = Some(sni.into());
            m.select(&c)
        };
        assert_eq!(with_sni("WWW.example.com"), ChainMatch::Chain(2));
        assert_eq!(with_sni("v1.api.example.com"), ChainMatch::Chain(1));
        assert_eq!(with_sni("a.example.com"), ChainMatch::Chain(0));
        assert_eq!(with_sni("example.com"), ChainMatch::Default);
        assert_eq!(m.select(&conn("1.1.1.1:443", "2.2.2.2:5")), ChainMatch::Default);
    }

    #[test]
    fn no_backtracking_after_a_more_specific_level() {
        // Chain 0 is more specific on destination port but needs TLS; chain 1
        // would match, but Envoy does not fall back to it.
        let m = FilterChainMatcher::new(
            vec![
                ChainCriteria {
                    destination_port: Some(80),
                    transport_protocol: Some("tls".into()),
                    ..Default::default()
                },
                ChainCriteria::default(),
            ],
            false,
        );
        assert_eq!(m.select(&conn("1.1.1.1:80", "2.2.2.2:5")), ChainMatch::NoMatch);
        assert_eq!(m.select(&conn("1.1.1.1:81", "2.2.2.2:5")), ChainMatch::Chain(1));
    }

    #[test]
    fn source_type_and_ports() {
        let m = FilterChainMatcher::new(
            vec![
                ChainCriteria { source_type: SourceType::SameIpOrLoopback, ..Default::default() },
                ChainCriteria {
                    source_type: SourceType::External,
                    source_ports: vec![7],
                    ..Default::default()
                },
            ],
            false,
        );
        assert_eq!(m.select(&conn("10.0.0.1:80", "127.0.0.1:9")), ChainMatch::Chain(0));
        assert_eq!(m.select(&conn("10.0.0.1:80", "10.0.0.1:9")), ChainMatch::Chain(0));
        assert_eq!(m.select(&conn("10.0.0.1:80", "10.0.0.2:7")), ChainMatch::Chain(1));
        assert_eq!(m.select(&conn("10.0.0.1:80", "10.0.0.2:8")), ChainMatch::NoMatch);
    }

    #[test]
    fn transport_and_application_protocols() {
        let m = FilterChainMatcher::new(
            vec![
                ChainCriteria {
                    transport_protocol: Some("raw_buffer".into()),
                    ..Default::default()
                },
                ChainCriteria {
                    transport_protocol: Some("tls".into()),
                    application_protocols: vec!["h2".into()],
                    ..Default::default()
                },
            ],
            false,
        );
        assert_eq!(m.select(&conn("1.1.1.1:80", "2.2.2.2:5")), ChainMatch::Chain(0));
        let mut tls = conn("1.1.1.1:80", "2.2.2.2:5");
        tls.transport_protocol = "tls".into();
        assert_eq!(m.select(&tls), ChainMatch::NoMatch);
        tls.application_protocols = vec!["http/1.1".into(), "h2".into()];
        assert_eq!(m.select(&tls), ChainMatch::Chain(1));
    }

    /// Waits for 3 bytes, then sets the SNI from them; rejects on "bad".
    struct Sniffer;
    impl ListenerFilter for Sniffer {
        fn on_accept(&mut self, _conn: &mut ConnectionInfo) -> ListenerFilterStatus {
            ListenerFilterStatus::StopIteration
        }
        fn on_data(&mut self, conn: &mut ConnectionInfo, peeked: &[u8]) -> ListenerFilterStatus {
            match peeked {
                b"bad" => ListenerFilterStatus::Reject,
                p if p.len() < 3 => ListenerFilterStatus::StopIteration,
                p => {
                    conn.server_name = Some(String::from_utf8_lossy(p).into_owned());
                    ListenerFilterStatus::Continue
                }
            }
        }
        fn max_read_bytes(&self) -> usize {
            3
        }
    }

    struct Counter(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl ListenerFilter for Counter {
        fn on_accept(&mut self, _conn: &mut ConnectionInfo) -> ListenerFilterStatus {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            ListenerFilterStatus::Continue
        }
    }

    #[test]
    fn listener_filters_stop_for_data_and_resume_in_order() {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut chain = ListenerFilterChain::new(vec![
            Box::new(Counter(count.clone())),
            Box::new(Sniffer),
            Box::new(Counter(count.clone())),
        ]);
        let mut c = conn("1.1.1.1:80", "2.2.2.2:5");
        assert_eq!(chain.on_accept(&mut c), ListenerFiltersOutcome::NeedData { max_read_bytes: 3 });
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            chain.on_data(&mut c, b"ab"),
            ListenerFiltersOutcome::NeedData { max_read_bytes: 3 }
        );
        assert_eq!(chain.on_data(&mut c, b"abc"), ListenerFiltersOutcome::Done);
        assert_eq!(c.server_name.as_deref(), Some("abc"));
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2, "the last filter ran once");
        assert_eq!(chain.on_data(&mut c, b"abcd"), ListenerFiltersOutcome::Done);

        let mut c = conn("1.1.1.1:80", "2.2.2.2:5");
        chain.on_accept(&mut c);
        assert_eq!(chain.on_data(&mut c, b"bad"), ListenerFiltersOutcome::Rejected);
    }
}
