//! # DNS refresh of STRICT_DNS and LOGICAL_DNS clusters
//!
//! Envoy's `StrictDnsClusterImpl` / `LogicalDnsCluster` resolve targets: the
//! main thread re-resolves a DNS cluster's names every `dns_refresh_rate`
//! (default 5 s; after a failure every `dns_failure_refresh_rate`, doubling up
//! to its `max_interval`) and replaces the cluster's hosts through the
//! cluster manager, which keeps the `Arc<Host>` — health flags, stats and
//! pooled connections — of every address that stays:
//!
//! ```text
//!  timer ─► resolve (blocking pool: the system resolver) ─► PrioritySet
//!        ─► ClusterManager::update_hosts (hosts that stay are kept) ─► workers
//!        └► HealthManager::sync (new hosts get health checks)
//! ```
//!
//! A LOGICAL_DNS cluster keeps one host, the first address of the latest
//! answer, so new connections go to it. The resolver is the system's
//! (`getaddrinfo`); `dns_resolvers` and `typed_dns_resolver_config` are not
//! supported yet.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use week1_core::cluster::info::{ClusterInfo, system_resolver};
use week1_core::config::FieldPath;
use week1_core::config::cluster::{Cluster, DiscoveryType};

use crate::cluster_manager::ClusterManager;
use crate::stats::{Counter, Scope};

/// `cluster.<name>.update_attempt/update_success/update_failure` of a DNS cluster.
#[derive(Debug)]
pub struct DnsStats {
    /// Resolutions started.
    pub update_attempt: Counter,
    /// Resolutions that produced hosts.
    pub update_success: Counter,
    /// Resolutions that failed (the hosts stay as they were).
    pub update_failure: Counter,
}

impl DnsStats {
    /// The counters in a cluster's scope.
    pub fn new(scope: &Scope) -> Self {
        Self {
            update_attempt: scope.counter("update_attempt"),
            update_success: scope.counter("update_success"),
            update_failure: scope.counter("update_failure"),
        }
    }
}

/// The delay before the next resolution: `dns_refresh_rate` after a success;
/// after `failures` failures in a row, `dns_failure_refresh_rate`'s base
/// doubled per failure up to its max (or `dns_refresh_rate` when unset).
pub fn next_refresh(info: &ClusterInfo, failures: u32) -> Duration {
    match (failures, &info.dns_failure_refresh_rate) {
        (0, _) | (_, None) => info.dns_refresh_rate,
        (n, Some(rate)) => {
            let factor = 1u32 << (n - 1).min(16);
            rate.base_interval.saturating_mul(factor).min(rate.max_interval)
        }
    }
}

// ANCHOR: dns_refresh
/// Starts refreshing every static STRICT_DNS / LOGICAL_DNS cluster of
/// `clusters` (main thread, inside its tokio `LocalSet`). Returns each
/// cluster's stats.
pub fn start(clusters: &Rc<RefCell<ClusterManager>>) -> Vec<(String, Arc<DnsStats>)> {
    let dns: Vec<(Cluster, Arc<ClusterInfo>, Scope)> = clusters
        .borrow()
        .active()
        .filter(|c| {
            matches!(c.config.cluster_type, DiscoveryType::StrictDns | DiscoveryType::LogicalDns)
        })
        .map(|c| (c.config.clone(), c.entry.info.clone(), c.entry.pool.stats.scope().clone()))
        .collect();
    let mut all = Vec::new();
    for (config, info, scope) in dns {
        let stats = Arc::new(DnsStats::new(&scope));
        all.push((config.name.clone(), stats.clone()));
        tokio::task::spawn_local(refresh_loop(Rc::downgrade(clusters), config, info, stats));
    }
    all
}

async fn refresh_loop(
    clusters: std::rc::Weak<RefCell<ClusterManager>>,
    config: Cluster,
    info: Arc<ClusterInfo>,
    stats: Arc<DnsStats>,
) {
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(next_refresh(&info, failures)).await;
        stats.update_attempt.inc();
        let (c, i) = (config.clone(), info.clone());
        let resolved = tokio::task::spawn_blocking(move || {
            let at = FieldPath::root().field("clusters").field(&c.name);
            i.initial_priority_set(&c, &mut system_resolver, &at)
        })
        .await;
        let Some(cm) = clusters.upgrade() else { return };
        let hosts = match resolved {
            Ok(Ok(hosts)) if hosts.total_hosts() > 0 => Some(hosts),
            Ok(Ok(_)) => {
                tracing::warn!("cluster {}: DNS refresh: no address", config.name);
                None
            }
            Ok(Err(e)) => {
                tracing::warn!("cluster {}: DNS refresh failed: {e}", config.name);
                None
            }
            Err(e) => {
                tracing::warn!("cluster {}: DNS refresh failed: {e}", config.name);
                None
            }
        };
        let Some(hosts) = hosts else {
            // Envoy keeps the hosts it has when a resolution fails.
            stats.update_failure.inc();
            failures = failures.saturating_add(1);
            continue;
        };
        failures = 0;
        tracing::debug!("cluster {}: DNS refresh: {} hosts", config.name, hosts.total_hosts());
        let updated = cm.borrow_mut().update_hosts(&config.name, hosts);
        match updated {
            Ok(()) => {
                stats.update_success.inc();
                if let Some(health) = crate::health::main_health() {
                    health.sync(&cm.borrow());
                }
            }
            // The cluster was removed or replaced (CDS): stop.
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

    fn info(yaml: &str) -> ClusterInfo {
        let c: Cluster = week1_core::config::load_str(yaml).unwrap();
        ClusterInfo::from_config(&c, &FieldPath::root()).unwrap()
    }

    #[test]
    fn refresh_and_failure_backoff() {
        let i = info("name: a\ntype: STRICT_DNS\ndns_refresh_rate: 2s\n");
        assert_eq!(next_refresh(&i, 0), Duration::from_secs(2));
        assert_eq!(next_refresh(&i, 3), Duration::from_secs(2), "no failure rate: refresh rate");
        let i = info(
            "name: a\ntype: STRICT_DNS\ndns_failure_refresh_rate: { base_interval: 1s, max_interval: 5s }\n",
        );
        assert_eq!(next_refresh(&i, 0), Duration::from_secs(5), "Envoy's default refresh rate");
        assert_eq!(next_refresh(&i, 1), Duration::from_secs(1));
        assert_eq!(next_refresh(&i, 2), Duration::from_secs(2));
        assert_eq!(next_refresh(&i, 3), Duration::from_secs(4));
        assert_eq!(next_refresh(&i, 4), Duration::from_secs(5), "capped");
        assert_eq!(next_refresh(&i, 40), Duration::from_secs(5));
    }
}
