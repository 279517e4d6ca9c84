//! Host sets and priority sets: Envoy's `HostSet` and `PrioritySet`.
//!
//! A cluster's endpoints are grouped by priority (P=0 is preferred); each
//! priority's group is a [`HostSet`]. Building a host set *partitions* its hosts
//! by their current health flags into the lists load balancers pick from:
//!
//! ```text
//!   hosts ──partition by flags──► healthy / degraded / excluded
//!     │                              │
//!     └──group by locality──────────►└─► per-locality lists (local locality first)
//! ```
//!
//! A [`PrioritySet`] is an immutable snapshot of all levels. When membership or
//! health changes, the main thread builds a new snapshot
//! ([`PrioritySet::rebuild`] after a flag flip, or a new
//! [`PrioritySetBuilder`] after an EDS update) and hands it to workers, which
//! rebuild their load balancers from it. Nothing here is mutated after
//! construction, so workers read it without locks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::ClusterError;
use super::host::{HealthFlags, Host, HostHealth, Locality};

/// Envoy's default overprovisioning factor, as a percentage (1.4).
pub const DEFAULT_OVERPROVISIONING_FACTOR: u32 = 140;
/// Highest priority level accepted. Envoy has no hard limit, but each level
/// costs a host set and real configs use a handful.
pub const MAX_PRIORITY: u32 = 127;

/// Hosts grouped by locality: Envoy's `HostsPerLocality`.
///
/// When the snapshot knows the local locality (the one this proxy runs in) and
/// it has hosts, it is index 0 and [`has_local_locality`](Self::has_local_locality)
/// is true. All per-locality lists of one [`HostSet`] share the same indexing.
#[derive(Debug, Clone, Default)]
pub struct HostsPerLocality {
    localities: Arc<[Locality]>,
    hosts: Vec<Vec<Arc<Host>>>,
    has_local_locality: bool,
}

impl HostsPerLocality {
    /// One list per locality, in [`localities`](Self::localities) order.
    pub fn get(&self) -> &[Vec<Arc<Host>>] {
        &self.hosts
    }

    /// The locality of each list.
    pub fn localities(&self) -> &[Locality] {
        &self.localities
    }

    /// Number of localities.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// True when there are no localities (no hosts).
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// True when index 0 is the local locality.
    pub fn has_local_locality(&self) -> bool {
        self.has_local_locality
    }

    fn filter(&self, keep: impl Fn(&Host) -> bool) -> Self {
        Self {
            localities: Arc::clone(&self.localities),
            hosts: self
                .hosts
                .iter()
                .map(|list| list.iter().filter(|h| keep(h)).cloned().collect())
                .collect(),
            has_local_locality: self.has_local_locality,
        }
    }
}

/// The hosts of one priority level, partitioned by health.
#[derive(Debug, Clone)]
pub struct HostSet {
    priority: u32,
    hosts: Vec<Arc<Host>>,
    healthy: Vec<Arc<Host>>,
    degraded: Vec<Arc<Host>>,
    excluded: Vec<Arc<Host>>,
    hosts_per_locality: HostsPerLocality,
    healthy_per_locality: HostsPerLocality,
    degraded_per_locality: HostsPerLocality,
    excluded_per_locality: HostsPerLocality,
    locality_weights: Option<Vec<u32>>,
    overprovisioning_factor: u32,
    weighted_priority_health: bool,
}

impl HostSet {
    fn new(
        priority: u32,
        hosts: Vec<Arc<Host>>,
        local_locality: Option<&Locality>,
        locality_weights: &HashMap<Locality, u32>,
        overprovisioning_factor: u32,
        weighted_priority_health: bool,
    ) -> Self {
        // Group by locality: local locality first (when it has hosts), the rest in
        // order of first appearance, like EDS keeps `LocalityLbEndpoints` order.
        let mut order: Vec<Locality> = Vec::new();
        let mut index: HashMap<&Locality, usize> = HashMap::new();
        let has_local = local_locality.is_some_and(|l| hosts.iter().any(|h| h.locality() == l));
        if let (true, Some(local)) = (has_local, local_locality) {
            index.insert(local, 0);
            order.push(local.clone());
        }
        for h in &hosts {
            if !index.contains_key(h.locality()) {
                index.insert(h.locality(), order.len());
                order.push(h.locality().clone());
            }
        }
        let mut grouped = vec![Vec::new(); order.len()];
        for h in &hosts {
            grouped[index[h.locality()]].push(Arc::clone(h));
        }
        let weights = if locality_weights.is_empty() {
            None
        } else {
            // As in Envoy, a locality without `load_balancing_weight` has weight 0.
            Some(order.iter().map(|l| locality_weights.get(l).copied().unwrap_or(0)).collect())
        };
        let hosts_per_locality = HostsPerLocality {
            localities: order.into(),
            hosts: grouped,
            has_local_locality: has_local,
        };

        let routable = |h: &Host, want: HostHealth| !h.is_excluded() && h.health() == want;
        let healthy = hosts.iter().filter(|h| routable(h, HostHealth::Healthy)).cloned().collect();
        let degraded =
            hosts.iter().filter(|h| routable(h, HostHealth::Degraded)).cloned().collect();
        let excluded = hosts.iter().filter(|h| h.is_excluded()).cloned().collect();
        Self {
            priority,
            healthy_per_locality: hosts_per_locality.filter(|h| routable(h, HostHealth::Healthy)),
            degraded_per_locality: hosts_per_locality.filter(|h| routable(h, HostHealth::Degraded)),
            excluded_per_locality: hosts_per_locality.filter(Host::is_excluded),
            hosts_per_locality,
            hosts,
            healthy,
            degraded,
            excluded,
            locality_weights: weights,
            overprovisioning_factor,
            weighted_priority_health,
        }
    }

    /// This set's priority level.
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// Every host, whatever its health.
    pub fn hosts(&self) -> &[Arc<Host>] {
        &self.hosts
    }

    /// Healthy, non-excluded hosts.
    pub fn healthy_hosts(&self) -> &[Arc<Host>] {
        &self.healthy
    }

    /// Degraded, non-excluded hosts.
    pub fn degraded_hosts(&self) -> &[Arc<Host>] {
        &self.degraded
    }

    /// Hosts left out of priority/panic arithmetic (pending first health check,
    /// or immediately failed).
    pub fn excluded_hosts(&self) -> &[Arc<Host>] {
        &self.excluded
    }

    /// All hosts by locality.
    pub fn hosts_per_locality(&self) -> &HostsPerLocality {
        &self.hosts_per_locality
    }

    /// Healthy hosts by locality.
    pub fn healthy_hosts_per_locality(&self) -> &HostsPerLocality {
        &self.healthy_per_locality
    }

    /// Degraded hosts by locality.
    pub fn degraded_hosts_per_locality(&self) -> &HostsPerLocality {
        &self.degraded_per_locality
    }

    /// Excluded hosts by locality.
    pub fn excluded_hosts_per_locality(&self) -> &HostsPerLocality {
        &self.excluded_per_locality
    }

    /// Configured locality weights, aligned with the per-locality lists, or
    /// `None` when the cluster sets none.
    pub fn locality_weights(&self) -> Option<&[u32]> {
        self.locality_weights.as_deref()
    }

    /// Overprovisioning factor as a percentage (140 = 1.4).
    pub fn overprovisioning_factor(&self) -> u32 {
        self.overprovisioning_factor
    }

    /// Whether priority health is computed from host weights instead of counts
    /// (`weighted_priority_health`).
    pub fn weighted_priority_health(&self) -> bool {
        self.weighted_priority_health
    }

    /// Envoy's `effectiveLocalityWeight`: the configured weight scaled by the
    /// locality's availability, `min(1, overprovisioning * eligible / hosts)`.
    pub(crate) fn effective_locality_weight(
        &self,
        index: usize,
        eligible: &HostsPerLocality,
    ) -> f64 {
        let Some(weights) = &self.locality_weights else { return 0.0 };
        let total = self.hosts_per_locality.hosts[index].len()
            - self.excluded_per_locality.hosts[index].len();
        if total == 0 {
            return 0.0;
        }
        let ratio = eligible.hosts[index].len() as f64 / total as f64;
        let availability = (self.overprovisioning_factor as f64 / 100.0 * ratio).min(1.0);
        weights[index] as f64 * availability
    }
}

/// Every priority level of one cluster: an immutable snapshot.
#[derive(Debug, Clone)]
pub struct PrioritySet {
    host_sets: Vec<Arc<HostSet>>,
    params: Params,
}

#[derive(Debug, Clone)]
struct Params {
    local_locality: Option<Locality>,
    locality_weights: HashMap<Locality, u32>,
    overprovisioning_factor: u32,
    weighted_priority_health: bool,
}

/// Builds a [`PrioritySet`]; see [`PrioritySet::builder`].
#[derive(Debug, Clone)]
pub struct PrioritySetBuilder {
    hosts: Vec<Arc<Host>>,
    params: Params,
}

impl PrioritySetBuilder {
    /// Adds one host; its [`Host::priority`] picks the level.
    pub fn host(mut self, host: Arc<Host>) -> Self {
        self.hosts.push(host);
        self
    }

    /// Adds hosts.
    pub fn hosts(mut self, hosts: impl IntoIterator<Item = Arc<Host>>) -> Self {
        self.hosts.extend(hosts);
        self
    }

    /// The locality this proxy runs in (Envoy's `node.locality`); its hosts are
    /// listed first in every per-locality list, which zone-aware routing needs.
    pub fn local_locality(mut self, locality: Locality) -> Self {
        self.params.local_locality = Some(locality);
        self
    }

    /// A locality's `load_balancing_weight` (1..). Once any weight is set, a
    /// locality without one has weight 0 and gets no traffic under
    /// locality-weighted balancing, as in Envoy.
    pub fn locality_weight(mut self, locality: Locality, weight: u32) -> Self {
        self.params.locality_weights.insert(locality, weight);
        self
    }

    /// `policy.overprovisioning_factor` as a percentage; default 140.
    pub fn overprovisioning_factor(mut self, percent: u32) -> Self {
        self.params.overprovisioning_factor = percent;
        self
    }

    /// `policy.weighted_priority_health`; default false.
    pub fn weighted_priority_health(mut self, on: bool) -> Self {
        self.params.weighted_priority_health = on;
        self
    }

    /// Validates and partitions the hosts.
    pub fn build(self) -> Result<PrioritySet, ClusterError> {
        if self.params.overprovisioning_factor == 0 {
            return Err(ClusterError::InvalidOverprovisioningFactor);
        }
        if let Some((l, _)) = self.params.locality_weights.iter().find(|(_, w)| **w == 0) {
            return Err(ClusterError::InvalidLocalityWeight { locality: l.to_string() });
        }
        if let Some(h) = self.hosts.iter().find(|h| h.priority() > MAX_PRIORITY) {
            return Err(ClusterError::PriorityTooHigh {
                priority: h.priority(),
                max: MAX_PRIORITY,
            });
        }
        Ok(PrioritySet::partition(self.hosts, self.params))
    }
}

impl PrioritySet {
    /// Starts a snapshot with Envoy's defaults (overprovisioning 1.4, no local
    /// locality, no locality weights).
    pub fn builder() -> PrioritySetBuilder {
        PrioritySetBuilder {
            hosts: Vec::new(),
            params: Params {
                local_locality: None,
                locality_weights: HashMap::new(),
                overprovisioning_factor: DEFAULT_OVERPROVISIONING_FACTOR,
                weighted_priority_health: false,
            },
        }
    }

    fn partition(hosts: Vec<Arc<Host>>, params: Params) -> Self {
        let levels = hosts.iter().map(|h| h.priority() as usize + 1).max().unwrap_or(1);
        let mut by_priority = vec![Vec::new(); levels];
        for h in hosts {
            by_priority[h.priority() as usize].push(h);
        }
        let host_sets = by_priority
            .into_iter()
            .enumerate()
            .map(|(p, hosts)| {
                Arc::new(HostSet::new(
                    p as u32,
                    hosts,
                    params.local_locality.as_ref(),
                    &params.locality_weights,
                    params.overprovisioning_factor,
                    params.weighted_priority_health,
                ))
            })
            .collect();
        Self { host_sets, params }
    }

    /// A new snapshot of the same hosts, re-partitioned by their current health
    /// flags. The main thread calls this after health checking or outlier
    /// detection flips a flag.
    pub fn rebuild(&self) -> Self {
        let hosts = self.host_sets.iter().flat_map(|hs| hs.hosts.iter().cloned()).collect();
        Self::partition(hosts, self.params.clone())
    }

    /// This snapshot with every host that `previous` also has (same address,
    /// hostname, locality and priority) replaced by `previous`'s `Arc<Host>`,
    /// whose weight and EDS health flags are updated to the new host's. Hosts
    /// that stay thus keep their health-check and outlier flags, their stats
    /// and their pooled connections across an EDS update or DNS refresh
    /// (Envoy's `updateDynamicHostList`).
    pub fn keeping_hosts_of(&self, previous: &PrioritySet) -> Self {
        let old: HashMap<SocketAddr, &Arc<Host>> = previous
            .host_sets
            .iter()
            .flat_map(|hs| hs.hosts.iter())
            .map(|h| (h.address(), h))
            .collect();
        let eds = HealthFlags::FAILED_EDS_HEALTH
            | HealthFlags::DEGRADED_EDS_HEALTH
            | HealthFlags::EDS_STATUS_DRAINING;
        let hosts = self
            .host_sets
            .iter()
            .flat_map(|hs| hs.hosts.iter())
            .map(|new| match old.get(&new.address()) {
                Some(kept)
                    if kept.hostname() == new.hostname()
                        && kept.locality() == new.locality()
                        && kept.priority() == new.priority() =>
                {
                    // Host::build validated the weight already.
                    let _ = kept.set_weight(new.weight());
                    kept.clear_health_flags(eds);
                    kept.set_health_flags(new.health_flags().intersection(eds));
                    Arc::clone(kept)
                }
                _ => new.clone(),
            })
            .collect();
        Self::partition(hosts, self.params.clone())
    }

    /// Host sets by priority; never empty (an empty cluster has one empty P=0).
    pub fn host_sets(&self) -> &[Arc<HostSet>] {
        &self.host_sets
    }

    /// The host set at `priority`, if that level exists.
    pub fn host_set(&self, priority: usize) -> Option<&HostSet> {
        self.host_sets.get(priority).map(|hs| &**hs)
    }

    /// The local locality, if configured.
    pub fn local_locality(&self) -> Option<&Locality> {
        self.params.local_locality.as_ref()
    }

    /// Total number of hosts across priorities.
    pub fn total_hosts(&self) -> usize {
        self.host_sets.iter().map(|hs| hs.hosts.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::host::HealthFlags;
    use super::*;

    fn h(i: u8, zone: &str, priority: u32) -> Arc<Host> {
        Host::builder(format!("10.0.0.{i}:80").parse().unwrap())
            .locality(Locality::new("r", zone, ""))
            .priority(priority)
            .build()
            .unwrap()
    }

    #[test]
    fn keeping_hosts_of_reuses_hosts_that_stay_with_their_flags() {
        let old = PrioritySet::builder().hosts([h(1, "a", 0), h(2, "a", 0)]).build().unwrap();
        let kept = old.host_sets()[0].hosts()[0].clone();
        kept.set_health_flags(HealthFlags::FAILED_ACTIVE_HC | HealthFlags::FAILED_EDS_HEALTH);
        let moved = h(2, "a", 1);
        let new = PrioritySet::builder()
            .hosts([h(1, "a", 0), moved.clone(), h(3, "a", 0)])
            .build()
            .unwrap()
            .keeping_hosts_of(&old);
        let p0 = new.host_set(0).unwrap().hosts();
        assert!(Arc::ptr_eq(&p0[0], &kept), "same address: the same Arc<Host>");
        assert_eq!(
            kept.health_flags(),
            HealthFlags::FAILED_ACTIVE_HC,
            "EDS flags follow the update, health-check flags stay"
        );
        assert_eq!(p0[1].address(), "10.0.0.3:80".parse().unwrap());
        let p1 = new.host_set(1).unwrap().hosts();
        assert!(Arc::ptr_eq(&p1[0], &moved), "a host that changed priority is a new host");
        assert_eq!(new.host_set(0).unwrap().healthy_hosts().len(), 1);
    }

    #[test]
    fn partitions_by_priority_health_and_locality() {
        let hosts = [h(1, "b", 0), h(2, "a", 0), h(3, "a", 0), h(4, "b", 2)];
        hosts[1].set_health_flags(HealthFlags::FAILED_OUTLIER_CHECK);
        hosts[2].set_health_flags(HealthFlags::DEGRADED_ACTIVE_HC);
        let ps = PrioritySet::builder()
            .hosts(hosts.iter().cloned())
            .local_locality(Locality::new("r", "a", ""))
            .build()
            .unwrap();
        assert_eq!(ps.host_sets().len(), 3, "P=1 exists and is empty");
        assert!(ps.host_set(1).unwrap().hosts().is_empty());
        let p0 = ps.host_set(0).unwrap();
        assert_eq!(p0.hosts().len(), 3);
        assert_eq!(p0.healthy_hosts().len(), 1);
        assert_eq!(p0.degraded_hosts().len(), 1);
        let hpl = p0.hosts_per_locality();
        assert!(hpl.has_local_locality());
        assert_eq!(hpl.localities()[0].zone, "a", "local locality first");
        assert_eq!(hpl.get()[0].len(), 2);
        assert_eq!(p0.healthy_hosts_per_locality().get()[0].len(), 0);
        assert_eq!(p0.healthy_hosts_per_locality().get()[1].len(), 1);
        assert_eq!(p0.degraded_hosts_per_locality().get()[0].len(), 1);

        hosts[1].clear_health_flags(HealthFlags::FAILED_OUTLIER_CHECK);
        let ps2 = ps.rebuild();
        assert_eq!(ps2.host_set(0).unwrap().healthy_hosts().len(), 2);
        assert_eq!(ps.host_set(0).unwrap().healthy_hosts().len(), 1, "old snapshot unchanged");
    }

    #[test]
    fn excluded_hosts_are_not_routable() {
        let a = h(1, "a", 0);
        a.set_health_flags(HealthFlags::PENDING_ACTIVE_HC);
        let ps = PrioritySet::builder().host(a).build().unwrap();
        let p0 = ps.host_set(0).unwrap();
        assert_eq!(p0.excluded_hosts().len(), 1);
        assert!(p0.healthy_hosts().is_empty());
    }

    #[test]
    fn empty_cluster_has_one_empty_level() {
        let ps = PrioritySet::builder().build().unwrap();
        assert_eq!(ps.host_sets().len(), 1);
        assert_eq!(ps.total_hosts(), 0);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            PrioritySet::builder().overprovisioning_factor(0).build().unwrap_err(),
            ClusterError::InvalidOverprovisioningFactor
        );
        assert!(matches!(
            PrioritySet::builder().locality_weight(Locality::new("r", "a", ""), 0).build(),
            Err(ClusterError::InvalidLocalityWeight { .. })
        ));
        assert_eq!(
            PrioritySet::builder().host(h(1, "a", 128)).build().unwrap_err(),
            ClusterError::PriorityTooHigh { priority: 128, max: MAX_PRIORITY }
        );
    }

    #[test]
    fn locality_weights_align_and_default_to_zero() {
        let ps = PrioritySet::builder()
            .hosts([h(1, "a", 0), h(2, "b", 0), h(3, "c", 0)])
            .locality_weight(Locality::new("r", "a", ""), 2)
            .locality_weight(Locality::new("r", "c", ""), 5)
            .build()
            .unwrap();
        assert_eq!(ps.host_set(0).unwrap().locality_weights(), Some(&[2, 0, 5][..]));
    }
}
