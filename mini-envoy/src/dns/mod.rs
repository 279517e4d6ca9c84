//! # DNS refresh of STRICT_DNS and LOGICAL_DNS clusters
//!
//! Envoy's `StrictDnsClusterImpl` / `LogicalDnsCluster` resolve targets: the
//! main thread re-resolves a DNS cluster's names every `dns_refresh_rate`
//! (default 5 s; with `respect_dns_ttl`, at the answer's TTL; after a
//! failure every `dns_failure_refresh_rate`, doubling up to its
//! `max_interval`) and replaces the cluster's hosts through the cluster
//! manager, which keeps the `Arc<Host>` — health flags, stats and pooled
//! connections — of every address that stays:
//!
//! ```text
//!  ClusterManager::watch_config ─► supervisor: one refresh task per DNS cluster
//!     (static or CDS; a CDS update restarts it, a removal stops it)
//!  refresh task: timer ─► DnsResolver (resolver.rs) ─► PrioritySet
//!        ─► ClusterManager::update_hosts (hosts that stay are kept) ─► workers
//!        └► HealthManager::sync (new hosts get health checks)
//! ```
//!
//! Each cluster uses the resolver its config picks ([`DnsResolvers`]): its
//! own `typed_dns_resolver_config` (or the deprecated fields), else the
//! bootstrap's, else the system's `getaddrinfo`. A STRICT_DNS name that
//! resolves to nothing (NXDOMAIN, no record) loses its hosts, as in Envoy; a
//! LOGICAL_DNS cluster keeps one host, the first address of the latest
//! non-empty answer, so new connections go to it. Stats:
//! `cluster.<name>.update_attempt/update_success/update_failure/update_no_rebuild`
//! (Envoy's DNS clusters never count `update_empty`, an EDS stat) and the
//! resolvers' `dns.cares.*`. Unlike Envoy, a cluster's names are refreshed
//! together, and one failing name fails the refresh (hosts stay as they were).

pub mod resolver;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use week1_core::cluster::PrioritySet;
use week1_core::cluster::info::ClusterInfo;
use week1_core::config::FieldPath;
use week1_core::config::cluster::{Cluster, DiscoveryType};
use week1_core::config::dns::DnsResolverChoice;

use crate::cluster_manager::{ClusterManager, ClusterOrigin};
use crate::stats::{Counter, Scope, Store};
pub use resolver::{CaresStats, DnsResolver, Resolved};

/// The resolvers of DNS clusters: the bootstrap's default and each
/// cluster's own, counting into `dns.cares.*`.
#[derive(Debug, Clone)]
pub struct DnsResolvers {
    default: DnsResolverChoice,
    stats: CaresStats,
}

impl DnsResolvers {
    /// Clusters without their own resolver use `default` (the bootstrap's
    /// [`dns_resolver`](week1_core::config::bootstrap::Bootstrap::dns_resolver)).
    pub fn new(default: DnsResolverChoice, store: &Store) -> Self {
        Self { default, stats: CaresStats::new(&store.root()) }
    }

    /// The resolver `cluster` uses.
    pub fn choice_for(&self, cluster: &Cluster) -> DnsResolverChoice {
        cluster.dns_resolver().unwrap_or_else(|| self.default.clone())
    }

    /// A resolver for `cluster`'s refreshes (inside the runtime that runs them).
    pub fn resolver_for(&self, cluster: &Cluster) -> Result<DnsResolver, String> {
        DnsResolver::new(&self.choice_for(cluster), &self.stats)
    }

    /// Resolves one of `cluster`'s names, blocking (start-up, CDS updates).
    pub fn resolve_blocking(
        &self,
        cluster: &Cluster,
        name: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, String> {
        let choice = self.choice_for(cluster);
        resolver::resolve_blocking(&choice, &self.stats, name, port, cluster.dns_lookup_family)
    }
}

/// `cluster.<name>.update_*` of a DNS cluster.
#[derive(Debug)]
pub struct DnsStats {
    /// Resolutions started.
    pub update_attempt: Counter,
    /// Resolutions that completed (the hosts follow the answer).
    pub update_success: Counter,
    /// Resolutions that failed (the hosts stay as they were).
    pub update_failure: Counter,
    /// Completed resolutions that left the hosts as they were.
    pub update_no_rebuild: Counter,
}

impl DnsStats {
    /// The counters in a cluster's scope.
    pub fn new(scope: &Scope) -> Self {
        Self {
            update_attempt: scope.counter("update_attempt"),
            update_success: scope.counter("update_success"),
            update_failure: scope.counter("update_failure"),
            update_no_rebuild: scope.counter("update_no_rebuild"),
        }
    }
}

// ANCHOR: next_refresh
/// The delay before the next resolution. After `failures` failures in a
/// row: `dns_failure_refresh_rate`'s base doubled per failure up to its max
/// (or `dns_refresh_rate` when unset). After a success: the answer's `ttl`
/// with `respect_dns_ttl` (Envoy ignores a TTL of 0 and empty answers, as
/// `None` here), else `dns_refresh_rate`.
pub fn next_refresh(info: &ClusterInfo, failures: u32, ttl: Option<Duration>) -> Duration {
    match (failures, &info.dns_failure_refresh_rate) {
        (0, _) => match ttl {
            Some(ttl) if info.respect_dns_ttl && !ttl.is_zero() => ttl,
            _ => info.dns_refresh_rate,
        },
        (_, None) => info.dns_refresh_rate,
        (n, Some(rate)) => {
            let factor = 1u32 << (n - 1).min(16);
            rate.base_interval.saturating_mul(factor).min(rate.max_interval)
        }
    }
}
// ANCHOR_END: next_refresh

/// The DNS names of `cluster`'s endpoints, with their ports.
pub fn dns_names(cluster: &Cluster) -> Vec<(String, u16)> {
    let Some(la) = &cluster.load_assignment else { return Vec::new() };
    let mut names = Vec::new();
    for group in &la.endpoints {
        for e in &group.lb_endpoints {
            let Some(sa) = e.socket_address() else { continue };
            let Ok(port) = u16::try_from(sa.port_value.unwrap_or(0)) else { continue };
            if sa.address.parse::<std::net::IpAddr>().is_err()
                && !names.iter().any(|(n, p)| *n == sa.address && *p == port)
            {
                names.push((sa.address.clone(), port));
            }
        }
    }
    names
}

/// What one refresh produced.
#[derive(Debug)]
pub enum Refresh {
    /// The new hosts, and the smallest TTL of the answers.
    Hosts(PrioritySet, Option<Duration>),
    /// The resolution failed; the hosts stay.
    Failed(String),
}

/// Builds `config`'s hosts from `answers` (one per [`dns_names`] entry):
/// every address of a STRICT_DNS name is a host (a name without addresses
/// has none); a LOGICAL_DNS cluster needs an address (an empty answer is a
/// failure, as in Envoy) and keeps the first.
pub fn hosts_from_answers(
    config: &Cluster,
    info: &ClusterInfo,
    answers: &BTreeMap<(String, u16), Resolved>,
) -> Refresh {
    let logical = config.cluster_type == DiscoveryType::LogicalDns;
    if logical && answers.values().any(|a| a.addresses.is_empty()) {
        return Refresh::Failed("no address".into());
    }
    let ttl = answers.values().filter_map(|a| a.ttl).min();
    let mut lookup = |name: &str, port: u16| {
        answers
            .get(&(name.to_string(), port))
            .map(|a| a.addresses.clone())
            .ok_or_else(|| format!("{name}: not resolved"))
    };
    let at = FieldPath::root().field("clusters").field(&config.name);
    match info.initial_priority_set(config, &mut lookup, &at) {
        Ok(hosts) => Refresh::Hosts(hosts, ttl),
        Err(e) => Refresh::Failed(e.to_string()),
    }
}

/// Whether `next` has the same hosts (address and priority) as `current`.
pub fn same_hosts(current: &PrioritySet, next: &PrioritySet) -> bool {
    let key = |ps: &PrioritySet| {
        let mut hosts: Vec<(u32, SocketAddr)> = ps
            .host_sets()
            .iter()
            .flat_map(|hs| hs.hosts().iter().map(|h| (h.priority(), h.address())))
            .collect();
        hosts.sort_unstable();
        hosts
    };
    key(current) == key(next)
}

// ANCHOR: dns_refresh
/// Starts refreshing every STRICT_DNS / LOGICAL_DNS cluster of `clusters`
/// (main thread, inside its tokio `LocalSet`): a supervisor keeps one
/// refresh task per DNS cluster in step with the cluster manager's configs.
pub fn start(clusters: &Rc<RefCell<ClusterManager>>, resolvers: DnsResolvers) {
    let mut changes = clusters.borrow().watch_config();
    let weak = Rc::downgrade(clusters);
    tokio::task::spawn_local(async move {
        let mut running: BTreeMap<String, (Cluster, tokio::task::JoinHandle<()>)> = BTreeMap::new();
        loop {
            let Some(cm) = weak.upgrade() else { break };
            let wanted: Vec<(Cluster, Arc<ClusterInfo>, Scope)> = cm
                .borrow()
                .active()
                .chain(cm.borrow().warming())
                .filter(|c| {
                    matches!(
                        c.config.cluster_type,
                        DiscoveryType::StrictDns | DiscoveryType::LogicalDns
                    )
                })
                .map(|c| {
                    (c.config.clone(), c.entry.info.clone(), c.entry.pool.stats.scope().clone())
                })
                .collect();
            drop(cm);
            // Stop the tasks of removed or changed clusters.
            running.retain(|name, (config, task)| {
                let keep = wanted.iter().any(|(c, _, _)| c.name == *name && c == config);
                if !keep {
                    task.abort();
                    tracing::info!(
                        "cluster {name}: DNS refresh stopped (cluster removed or updated)"
                    );
                }
                keep
            });
            for (config, info, scope) in wanted {
                if running.contains_key(&config.name) {
                    continue;
                }
                let stats = Arc::new(DnsStats::new(&scope));
                let resolver = match resolvers.resolver_for(&config) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("cluster {}: no DNS refresh: {e}", config.name);
                        continue;
                    }
                };
                let task = refresh_loop(weak.clone(), config.clone(), info, resolver, stats);
                running.insert(config.name.clone(), (config, tokio::task::spawn_local(task)));
            }
            if changes.changed().await.is_err() {
                break;
            }
        }
        for (_, (_, task)) in running {
            task.abort();
        }
    });
}

async fn refresh_loop(
    clusters: Weak<RefCell<ClusterManager>>,
    config: Cluster,
    info: Arc<ClusterInfo>,
    resolver: DnsResolver,
    stats: Arc<DnsStats>,
) {
    let names = dns_names(&config);
    let (mut failures, mut ttl) = (0u32, None);
    // A cluster CDS added or changed resolves at once (a new one warms until
    // its first resolution, success or failure, as Envoy's pre-init); static
    // clusters were resolved at start-up.
    let mut now = clusters.upgrade().is_some_and(|cm| {
        cm.borrow().get_any(&config.name).is_some_and(|c| c.origin != ClusterOrigin::Static)
    });
    loop {
        if !std::mem::take(&mut now) {
            tokio::time::sleep(next_refresh(&info, failures, ttl)).await;
        }
        stats.update_attempt.inc();
        let mut answers = BTreeMap::new();
        let mut failed = None;
        for (name, port) in &names {
            match resolver.resolve(name, *port, info.dns_lookup_family).await {
                Ok(answer) => {
                    answers.insert((name.clone(), *port), answer);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let refresh = match failed {
            Some(e) => Refresh::Failed(e),
            None => hosts_from_answers(&config, &info, &answers),
        };
        let Some(cm) = clusters.upgrade() else { return };
        let warming = cm.borrow().warming().any(|c| c.config == config);
        let (hosts, answer_ttl) = match refresh {
            Refresh::Hosts(hosts, answer_ttl) => (hosts, answer_ttl),
            Refresh::Failed(e) => {
                // Envoy keeps the hosts it has when a resolution fails.
                tracing::warn!("cluster {}: DNS refresh failed: {e}", config.name);
                stats.update_failure.inc();
                failures = failures.saturating_add(1);
                if warming {
                    // The first attempt ends warming, even failed (no hosts yet).
                    let empty =
                        cm.borrow().get_any(&config.name).map(|c| c.entry.priority_set.clone());
                    if let Some(empty) = empty
                        && let Err(e) = cm.borrow_mut().update_hosts(&config.name, (*empty).clone())
                    {
                        tracing::debug!("cluster {}: DNS refresh stops: {e}", config.name);
                        return;
                    }
                }
                continue;
            }
        };
        (failures, ttl) = (0, answer_ttl);
        stats.update_success.inc();
        let current = match cm.borrow().get_any(&config.name) {
            // A CDS update or removal: the supervisor has stopped this task.
            Some(c) if c.config == config => c.entry.priority_set.clone(),
            _ => return,
        };
        tracing::debug!("cluster {}: DNS refresh: {} hosts", config.name, hosts.total_hosts());
        if !warming && same_hosts(&current, &hosts) {
            stats.update_no_rebuild.inc();
            continue;
        }
        let updated = cm.borrow_mut().update_hosts(&config.name, hosts);
        match updated {
            Ok(()) => {
                if let Some(health) = crate::health::main_health() {
                    health.sync(&cm.borrow());
                }
            }
            Err(e) => {
                tracing::debug!("cluster {}: DNS refresh stops: {e}", config.name);
                return;
            }
        }
    }
}
// ANCHOR_END: dns_refresh

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(yaml: &str) -> (Cluster, ClusterInfo) {
        let c: Cluster = week1_core::config::load_str(yaml).unwrap();
        let info = ClusterInfo::from_config(&c, &FieldPath::root()).unwrap();
        (c, info)
    }

    #[test]
    fn refresh_and_failure_backoff() {
        let (_, i) = cluster("name: a\ntype: STRICT_DNS\ndns_refresh_rate: 2s\n");
        let ttl = Some(Duration::from_secs(30));
        assert_eq!(next_refresh(&i, 0, None), Duration::from_secs(2));
        assert_eq!(next_refresh(&i, 0, ttl), Duration::from_secs(2), "TTL not respected");
        assert_eq!(
            next_refresh(&i, 3, None),
            Duration::from_secs(2),
            "no failure rate: refresh rate"
        );
        let (_, i) = cluster(
            "name: a\ntype: STRICT_DNS\ndns_failure_refresh_rate: { base_interval: 1s, max_interval: 5s }\n",
        );
        assert_eq!(
            next_refresh(&i, 0, None),
            Duration::from_secs(5),
            "Envoy's default refresh rate"
        );
        assert_eq!(next_refresh(&i, 1, None), Duration::from_secs(1));
        assert_eq!(next_refresh(&i, 2, None), Duration::from_secs(2));
        assert_eq!(next_refresh(&i, 3, None), Duration::from_secs(4));
        assert_eq!(next_refresh(&i, 4, None), Duration::from_secs(5), "capped");
        assert_eq!(next_refresh(&i, 40, None), Duration::from_secs(5));
    }

    #[test]
    fn respect_dns_ttl_refreshes_at_the_ttl() {
        let (_, i) =
            cluster("name: a\ntype: STRICT_DNS\ndns_refresh_rate: 2s\nrespect_dns_ttl: true\n");
        assert_eq!(next_refresh(&i, 0, Some(Duration::from_secs(30))), Duration::from_secs(30));
        assert_eq!(next_refresh(&i, 0, Some(Duration::from_secs(1))), Duration::from_secs(1));
        assert_eq!(next_refresh(&i, 0, Some(Duration::ZERO)), Duration::from_secs(2), "TTL 0");
        assert_eq!(next_refresh(&i, 0, None), Duration::from_secs(2), "no TTL");
        assert_eq!(next_refresh(&i, 1, Some(Duration::from_secs(30))), Duration::from_secs(2));
    }

    const STRICT: &str = "
name: web
type: STRICT_DNS
load_assignment:
  cluster_name: web
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: a.test, port_value: 80}}}
    - endpoint: {address: {socket_address: {address: 10.0.0.9, port_value: 80}}}
  - priority: 1
    lb_endpoints:
    - endpoint: {address: {socket_address: {address: b.test, port_value: 81}}}
    - endpoint: {address: {socket_address: {address: a.test, port_value: 80}}}
";

    fn answer(ips: &[&str], ttl: u64) -> Resolved {
        Resolved {
            addresses: ips.iter().map(|ip| format!("{ip}:0").parse().unwrap()).collect(),
            ttl: Some(Duration::from_secs(ttl)),
        }
    }

    fn addrs(ps: &PrioritySet) -> Vec<(u32, String)> {
        let hosts = ps.host_sets().iter().flat_map(|hs| hs.hosts().to_vec());
        hosts.map(|h| (h.priority(), h.address().ip().to_string())).collect()
    }

    #[test]
    fn strict_dns_hosts_follow_each_answer_and_empty_names_lose_their_hosts() {
        let (c, i) = cluster(STRICT);
        assert_eq!(dns_names(&c), [("a.test".to_string(), 80), ("b.test".to_string(), 81)]);
        let mut answers = BTreeMap::new();
        answers.insert(("a.test".to_string(), 80), answer(&["127.0.0.2", "127.0.0.3"], 30));
        answers.insert(("b.test".to_string(), 81), answer(&["127.0.0.4"], 10));
        let Refresh::Hosts(hosts, ttl) = hosts_from_answers(&c, &i, &answers) else { panic!() };
        assert_eq!(ttl, Some(Duration::from_secs(10)), "the smallest TTL");
        let ips = |v: &[(u32, &str)]| -> Vec<(u32, String)> {
            v.iter().map(|(p, ip)| (*p, ip.to_string())).collect()
        };
        assert_eq!(
            addrs(&hosts),
            ips(&[
                (0, "127.0.0.2"),
                (0, "127.0.0.3"),
                (0, "10.0.0.9"),
                (1, "127.0.0.4"),
                (1, "127.0.0.2"),
                (1, "127.0.0.3")
            ])
        );
        answers.insert(("a.test".to_string(), 80), Resolved::default());
        let Refresh::Hosts(fewer, ttl) = hosts_from_answers(&c, &i, &answers) else { panic!() };
        assert_eq!(addrs(&fewer), ips(&[(0, "10.0.0.9"), (1, "127.0.0.4")]));
        assert_eq!(ttl, Some(Duration::from_secs(10)));
        assert!(!same_hosts(&hosts, &fewer));
        let Refresh::Hosts(again, _) = hosts_from_answers(&c, &i, &answers) else { panic!() };
        assert!(same_hosts(&fewer, &again), "the same answer: no rebuild");
        answers.remove(&("b.test".to_string(), 81));
        assert!(matches!(hosts_from_answers(&c, &i, &answers), Refresh::Failed(_)));
    }

    #[test]
    fn logical_dns_keeps_the_first_address_and_refuses_empty_answers() {
        let (c, i) = cluster(
            "name: l\ntype: LOGICAL_DNS\nload_assignment:\n  cluster_name: l\n  endpoints:\n  - lb_endpoints:\n    - endpoint: {address: {socket_address: {address: l.test, port_value: 80}}}\n",
        );
        let mut answers = BTreeMap::new();
        answers.insert(("l.test".to_string(), 80), answer(&["127.0.0.3", "127.0.0.2"], 5));
        let Refresh::Hosts(hosts, _) = hosts_from_answers(&c, &i, &answers) else { panic!() };
        assert_eq!(addrs(&hosts), [(0, "127.0.0.3".to_string())]);
        answers.insert(("l.test".to_string(), 80), Resolved::default());
        assert!(matches!(hosts_from_answers(&c, &i, &answers), Refresh::Failed(_)));
    }
}
