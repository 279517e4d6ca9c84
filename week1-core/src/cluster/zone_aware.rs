//! Choosing *which list of hosts* to pick from: Envoy's `ZoneAwareLoadBalancerBase`.
//!
//! Round robin, least request and random share this step; they differ only in
//! how they pick within the list. For each pick:
//!
//! ```text
//!  random ─► choose_priority ─► level p, healthy or degraded
//!              │
//!              ├─ level p in panic ─────────────► all hosts of p (or fail, if configured)
//!              ├─ locality-weighted ────────────► EDF over localities by effective weight
//!              ├─ p = 0 and zone-aware routing:
//!              │     LocalityDirect ────────────► local locality
//!              │     LocalityResidual ──────────► local with probability, else a remote
//!              │                                   locality with spare capacity
//!              └─ otherwise ────────────────────► healthy (or degraded) hosts of p
//! ```
//!
//! `SharedState` is computed once per snapshot on the main thread (priority
//! loads, panic flags, the zone routing plan); the per-worker part keeps only
//! the locality schedulers and the pickers' per-list state.
//!
//! Zone-aware routing (Envoy docs, "Zone aware routing") compares, per
//! locality, the share of *upstream* healthy hosts with the share of *local*
//! proxies (the local cluster). If the local zone's upstream share is at least
//! its proxy share, all traffic stays local (`LocalityDirect`). Otherwise only
//! `upstream% / local%` of it stays and the rest goes to localities whose
//! upstream share exceeds their proxy share, in proportion to the excess
//! (`LocalityResidual`).

use std::collections::HashMap;
use std::sync::Arc;

use rand::RngCore;
use rand::rngs::SmallRng;

use super::edf::EdfScheduler;
use super::host::{Host, Locality};
use super::host_set::{HostSet, HostsPerLocality, PrioritySet};
use super::lb::{
    CommonLbConfig, LoadBalancer, LoadBalancerContext, LocalityBasis, LocalityLbConfig,
    ZoneAwareLbConfig,
};
use super::priority::{
    HostAvailability, PriorityState, choose_priority, compute_priority_state, host_set_in_panic,
};

/// The list a pick draws from (Envoy's `HostsSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostsSource {
    /// All hosts of a level, whatever their health (panic mode).
    AllHosts(usize),
    /// Healthy hosts of a level.
    HealthyHosts(usize),
    /// Degraded hosts of a level.
    DegradedHosts(usize),
    /// Healthy hosts of one locality of a level.
    LocalityHealthyHosts(usize, usize),
    /// Degraded hosts of one locality of a level.
    LocalityDegradedHosts(usize, usize),
}

/// Zone-aware routing plan for P=0 (Envoy's `LocalityRoutingState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalityRouting {
    /// Zone-aware routing does not apply (no local cluster, too small, ...).
    NoLocalityRouting,
    /// Send everything to the local locality.
    LocalityDirect,
    /// Send `local_percent_to_route / 10000` locally, the rest by residual capacity.
    LocalityResidual {
        /// Share kept local, in 1/10000.
        local_percent_to_route: u64,
        /// Running sum of spare capacity per locality (same indexing as
        /// the per-locality host lists), in 1/10000.
        residual_capacity: Vec<u64>,
    },
}

/// Per-snapshot state shared by every worker.
#[derive(Debug)]
pub(crate) struct SharedState {
    pub(crate) priority_set: Arc<PrioritySet>,
    pub(crate) state: PriorityState,
    pub(crate) routing: LocalityRouting,
    pub(crate) local_in_panic: bool,
    pub(crate) routing_enabled: u32,
    pub(crate) fail_traffic_on_panic: bool,
    pub(crate) locality_weighted: bool,
    /// P=0 healthy takes 100%: skip the priority draw.
    pub(crate) all_to_p0_healthy: bool,
}

impl SharedState {
    pub(crate) fn new(
        common: &CommonLbConfig,
        ps: Arc<PrioritySet>,
        local: Option<&PrioritySet>,
    ) -> Self {
        let state = compute_priority_state(&ps, common.healthy_panic_threshold);
        let (zone, locality_weighted) = match common.locality {
            LocalityLbConfig::ZoneAware(z) => (z, false),
            LocalityLbConfig::LocalityWeighted => (ZoneAwareLbConfig::default(), true),
        };
        let (routing, local_in_panic) = match local {
            Some(local) => (
                locality_routing(&ps, local, &zone),
                local
                    .host_set(0)
                    .is_none_or(|hs| host_set_in_panic(hs, common.healthy_panic_threshold)),
            ),
            None => (LocalityRouting::NoLocalityRouting, false),
        };
        Self {
            all_to_p0_healthy: state.load.healthy.first() == Some(&100),
            priority_set: ps,
            state,
            routing,
            local_in_panic,
            routing_enabled: zone.routing_enabled,
            fail_traffic_on_panic: zone.fail_traffic_on_panic,
            locality_weighted,
        }
    }

    /// The hosts of a source. Indices come from this snapshot, so they are in range.
    pub(crate) fn hosts(&self, src: HostsSource) -> &[Arc<Host>] {
        let sets = self.priority_set.host_sets();
        match src {
            HostsSource::AllHosts(p) => sets[p].hosts(),
            HostsSource::HealthyHosts(p) => sets[p].healthy_hosts(),
            HostsSource::DegradedHosts(p) => sets[p].degraded_hosts(),
            HostsSource::LocalityHealthyHosts(p, l) => {
                &sets[p].healthy_hosts_per_locality().get()[l]
            }
            HostsSource::LocalityDegradedHosts(p, l) => {
                &sets[p].degraded_hosts_per_locality().get()[l]
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct LocalityPercentages {
    local: u64,
    upstream: u64,
}

fn locality_weight(hosts: &[Arc<Host>], basis: LocalityBasis) -> u64 {
    match basis {
        LocalityBasis::HealthyHostsNum => hosts.len() as u64,
        LocalityBasis::HealthyHostsWeight => hosts.iter().map(|h| u64::from(h.weight())).sum(),
    }
}

/// Each upstream locality's share of local proxies and of upstream hosts, in 1/10000.
fn locality_percentages(
    local: &HostsPerLocality,
    upstream: &HostsPerLocality,
    basis: LocalityBasis,
) -> Vec<LocalityPercentages> {
    let weights = |hpl: &HostsPerLocality| -> (HashMap<Locality, u64>, u64) {
        let mut map = HashMap::new();
        let mut total = 0;
        for (loc, hosts) in hpl.localities().iter().zip(hpl.get()) {
            let w = locality_weight(hosts, basis);
            total += w;
            if !hosts.is_empty() {
                map.insert(loc.clone(), w);
            }
        }
        (map, total)
    };
    let (local_w, local_total) = weights(local);
    let (up_w, up_total) = weights(upstream);
    upstream
        .localities()
        .iter()
        .zip(upstream.get())
        .map(|(loc, hosts)| {
            if hosts.is_empty() {
                return LocalityPercentages::default();
            }
            let pct = |w: Option<&u64>, total: u64| {
                (10000 * w.copied().unwrap_or(0)).checked_div(total).unwrap_or(0)
            };
            LocalityPercentages {
                local: pct(local_w.get(loc), local_total),
                upstream: pct(up_w.get(loc), up_total),
            }
        })
        .collect()
}

/// Envoy's `regenerateLocalityRoutingStructures` (+ `earlyExitNonLocalityRouting`).
fn locality_routing(
    ps: &PrioritySet,
    local: &PrioritySet,
    cfg: &ZoneAwareLbConfig,
) -> LocalityRouting {
    let (Some(hs), Some(local_hs)) = (ps.host_set(0), local.host_set(0)) else {
        return LocalityRouting::NoLocalityRouting;
    };
    let upstream = hs.healthy_hosts_per_locality();
    if upstream.len() < 2 {
        return LocalityRouting::NoLocalityRouting;
    }
    let local_hpl = local_hs.hosts_per_locality();
    if cfg.force_local_zone_min_size.is_none() && local_hpl.len() < 2 {
        return LocalityRouting::NoLocalityRouting;
    }
    if !local_hpl.has_local_locality() || local_hpl.get()[0].is_empty() {
        return LocalityRouting::NoLocalityRouting;
    }
    if (hs.healthy_hosts().len() as u64) < cfg.min_cluster_size {
        return LocalityRouting::NoLocalityRouting;
    }

    let pct =
        locality_percentages(local_hs.healthy_hosts_per_locality(), upstream, cfg.locality_basis);
    if upstream.has_local_locality() {
        let direct = pct[0].upstream > 0 && pct[0].upstream >= pct[0].local;
        let forced = cfg
            .force_local_zone_min_size
            .is_some_and(|min| upstream.get()[0].len() >= min as usize);
        if direct || forced {
            return LocalityRouting::LocalityDirect;
        }
    }
    let local_percent_to_route = if upstream.has_local_locality() && pct[0].local > 0 {
        pct[0].upstream * 10000 / pct[0].local
    } else {
        0
    };
    let mut residual_capacity = Vec::with_capacity(pct.len());
    let mut acc = 0;
    for (i, p) in pct.iter().enumerate() {
        let is_local = i == 0 && upstream.has_local_locality();
        if !is_local && p.upstream > p.local {
            acc += p.upstream - p.local;
        }
        residual_capacity.push(acc);
    }
    LocalityRouting::LocalityResidual { local_percent_to_route, residual_capacity }
}

/// Uniform index in `0..n` (Lemire's multiply-shift; `n > 0`).
#[inline]
pub(crate) fn random_index(rng: &mut SmallRng, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// Per-priority EDF schedulers over localities (Envoy's `LocalityWrr`).
#[derive(Debug)]
struct LocalityWrr {
    healthy: EdfScheduler<u32>,
    healthy_weights: Vec<f64>,
    degraded: EdfScheduler<u32>,
    degraded_weights: Vec<f64>,
}

impl LocalityWrr {
    fn new(hs: &HostSet, rng: &mut SmallRng) -> Self {
        let build = |eligible: &HostsPerLocality, rng: &mut SmallRng| {
            let weights: Vec<f64> =
                (0..eligible.len()).map(|i| hs.effective_locality_weight(i, eligible)).collect();
            let mut s = EdfScheduler::new();
            for (i, &w) in weights.iter().enumerate() {
                s.add(w, i as u32);
            }
            // Random start so workers do not all begin with the same locality.
            if !s.is_empty() {
                for _ in 0..random_index(rng, s.len()) {
                    s.pick_and_add(|&i| weights[i as usize]);
                }
            }
            (s, weights)
        };
        let (healthy, healthy_weights) = build(hs.healthy_hosts_per_locality(), rng);
        let (degraded, degraded_weights) = build(hs.degraded_hosts_per_locality(), rng);
        Self { healthy, healthy_weights, degraded, degraded_weights }
    }

    fn choose(&mut self, availability: HostAvailability) -> Option<usize> {
        let (s, w) = match availability {
            HostAvailability::Healthy => (&mut self.healthy, &self.healthy_weights),
            HostAvailability::Degraded => (&mut self.degraded, &self.degraded_weights),
        };
        s.pick_and_add(|&i| w[i as usize]).map(|i| i as usize)
    }
}

/// How a zone-aware load balancer picks *within* a host list.
pub(crate) trait SourcePicker: Send + 'static {
    /// Per-list state (cursor, scheduler...).
    type State: Send;
    /// Builds the state for `hosts` (may be empty).
    fn new_state(&self, hosts: &[Arc<Host>], rng: &mut SmallRng) -> Self::State;
    /// Picks an index into `hosts` (non-empty, the list `state` was built for).
    fn pick(&self, state: &mut Self::State, hosts: &[Arc<Host>], rng: &mut SmallRng) -> usize;
}

#[derive(Debug)]
struct Sources<S> {
    all: S,
    healthy: S,
    degraded: S,
    healthy_locality: Vec<S>,
    degraded_locality: Vec<S>,
}

/// A per-worker load balancer: zone-aware list selection + a [`SourcePicker`].
pub(crate) struct ZoneAwareLb<P: SourcePicker> {
    shared: Arc<SharedState>,
    picker: P,
    sources: Vec<Sources<P::State>>,
    locality_wrr: Vec<LocalityWrr>,
    rng: SmallRng,
}

impl<P: SourcePicker> ZoneAwareLb<P> {
    pub(crate) fn new(shared: Arc<SharedState>, picker: P, mut rng: SmallRng) -> Self {
        let sets = shared.priority_set.host_sets();
        let mut state = |hosts: &[Arc<Host>]| picker.new_state(hosts, &mut rng);
        let sources = sets
            .iter()
            .map(|hs| Sources {
                all: state(hs.hosts()),
                healthy: state(hs.healthy_hosts()),
                degraded: state(hs.degraded_hosts()),
                healthy_locality: hs
                    .healthy_hosts_per_locality()
                    .get()
                    .iter()
                    .map(|l| state(l))
                    .collect(),
                degraded_locality: hs
                    .degraded_hosts_per_locality()
                    .get()
                    .iter()
                    .map(|l| state(l))
                    .collect(),
            })
            .collect();
        let locality_wrr = if shared.locality_weighted {
            sets.iter().map(|hs| LocalityWrr::new(hs, &mut rng)).collect()
        } else {
            Vec::new()
        };
        Self { shared, picker, sources, locality_wrr, rng }
    }

    /// Envoy's `hostSourceToUse`.
    fn host_source(&mut self) -> Option<HostsSource> {
        let shared = &*self.shared;
        let (p, availability) = if shared.all_to_p0_healthy {
            (0, HostAvailability::Healthy)
        } else {
            choose_priority(self.rng.next_u64(), &shared.state.load)
        };
        let plain = match availability {
            HostAvailability::Healthy => HostsSource::HealthyHosts(p),
            HostAvailability::Degraded => HostsSource::DegradedHosts(p),
        };
        let in_locality = |l| match availability {
            HostAvailability::Healthy => HostsSource::LocalityHealthyHosts(p, l),
            HostAvailability::Degraded => HostsSource::LocalityDegradedHosts(p, l),
        };
        if shared.state.panic[p] {
            return (!shared.fail_traffic_on_panic).then_some(HostsSource::AllHosts(p));
        }
        if shared.locality_weighted
            && let Some(l) = self.locality_wrr[p].choose(availability)
        {
            return Some(in_locality(l));
        }
        if p != 0 || shared.routing == LocalityRouting::NoLocalityRouting {
            return Some(plain);
        }
        if shared.routing_enabled < 100
            && (self.rng.next_u64() % 100) as u32 >= shared.routing_enabled
        {
            return Some(plain);
        }
        if shared.local_in_panic {
            return (!shared.fail_traffic_on_panic).then_some(plain);
        }
        Some(in_locality(choose_local_locality(&shared.routing, &mut self.rng)))
    }

    fn choose_once(&mut self) -> Option<Arc<Host>> {
        let src = self.host_source()?;
        let hosts = self.shared.hosts(src);
        if hosts.is_empty() {
            return None;
        }
        let s = &mut self.sources;
        let state = match src {
            HostsSource::AllHosts(p) => &mut s[p].all,
            HostsSource::HealthyHosts(p) => &mut s[p].healthy,
            HostsSource::DegradedHosts(p) => &mut s[p].degraded,
            HostsSource::LocalityHealthyHosts(p, l) => &mut s[p].healthy_locality[l],
            HostsSource::LocalityDegradedHosts(p, l) => &mut s[p].degraded_locality[l],
        };
        let i = self.picker.pick(state, hosts, &mut self.rng);
        hosts.get(i).cloned()
    }
}

/// Envoy's `tryChooseLocalLocalityHosts`.
fn choose_local_locality(routing: &LocalityRouting, rng: &mut SmallRng) -> usize {
    match routing {
        LocalityRouting::NoLocalityRouting | LocalityRouting::LocalityDirect => 0,
        LocalityRouting::LocalityResidual { local_percent_to_route, residual_capacity } => {
            if rng.next_u64() % 10000 < *local_percent_to_route {
                return 0;
            }
            let total = residual_capacity.last().copied().unwrap_or(0);
            if total == 0 {
                // Rounding left no spare capacity anywhere: any locality.
                return random_index(rng, residual_capacity.len().max(1));
            }
            let threshold = rng.next_u64() % total;
            residual_capacity.iter().position(|&c| threshold < c).unwrap_or(0)
        }
    }
}

impl<P: SourcePicker> LoadBalancer for ZoneAwareLb<P> {
    fn choose_host(&mut self, ctx: &mut dyn LoadBalancerContext) -> Option<Arc<Host>> {
        let attempts = ctx.host_selection_retry_count().saturating_add(1);
        let mut host = None;
        for _ in 0..attempts {
            host = self.choose_once();
            match &host {
                Some(h) if ctx.should_select_another_host(h) => continue,
                _ => return host,
            }
        }
        host
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::super::host::HealthFlags;
    use super::super::lb::{LbConfig, LbPolicy, LoadBalancerFactory};
    use super::*;

    fn host(i: u32, zone: &str) -> Arc<Host> {
        Host::builder(format!("10.{}.{}.{}:80", zone.len(), i / 250, i % 250).parse().unwrap())
            .locality(Locality::new("r", zone, ""))
            .build()
            .unwrap()
    }

    fn zoned(counts: &[(&str, u32)], local_zone: &str) -> PrioritySet {
        let mut hosts = Vec::new();
        let mut n = 0;
        for &(zone, count) in counts {
            for _ in 0..count {
                n += 1;
                hosts.push(host(n, zone));
            }
        }
        PrioritySet::builder()
            .hosts(hosts)
            .local_locality(Locality::new("r", local_zone, ""))
            .build()
            .unwrap()
    }

    fn routing(upstream: &[(&str, u32)], local: &[(&str, u32)]) -> LocalityRouting {
        let f = LoadBalancerFactory::new(
            &LbConfig::default(),
            Arc::new(zoned(upstream, "a")),
            Some(Arc::new(zoned(local, "a"))),
        )
        .unwrap();
        f.locality_routing().clone()
    }

    #[test]
    fn zone_aware_direct_when_local_zone_has_enough_upstreams() {
        // Upstream 50/50, proxies 50/50: local zone can take all of its traffic.
        assert_eq!(
            routing(&[("a", 5), ("b", 5)], &[("a", 2), ("b", 2)]),
            LocalityRouting::LocalityDirect
        );
    }

    #[test]
    fn zone_aware_residual_matches_envoy_example() {
        // Envoy's comment: local 40/40/20, upstream 25/50/25 (in 1/10000:
        // 4000/4000/2000 vs 2500/5000/2500) -> keep 2500/4000 = 62.5% local,
        // residual capacity 0, 1000, 1500.
        let r = routing(&[("a", 2), ("b", 4), ("c", 2)], &[("a", 2), ("b", 2), ("c", 1)]);
        assert_eq!(
            r,
            LocalityRouting::LocalityResidual {
                local_percent_to_route: 6250,
                residual_capacity: vec![0, 1000, 1500]
            }
        );
    }

    #[test]
    fn zone_aware_off_for_small_clusters_or_single_zone() {
        assert_eq!(
            routing(&[("a", 2), ("b", 3)], &[("a", 1), ("b", 1)]),
            LocalityRouting::NoLocalityRouting
        );
        assert_eq!(routing(&[("a", 9)], &[("a", 1), ("b", 1)]), LocalityRouting::NoLocalityRouting);
        assert_eq!(routing(&[("a", 5), ("b", 5)], &[("a", 3)]), LocalityRouting::NoLocalityRouting);
        // The local cluster has no proxy in our own zone.
        assert_eq!(
            routing(&[("a", 5), ("b", 5)], &[("b", 1), ("c", 1)]),
            LocalityRouting::NoLocalityRouting
        );
    }

    #[test]
    fn zone_aware_picks_follow_the_plan() {
        let upstream = Arc::new(zoned(&[("a", 2), ("b", 4), ("c", 2)], "a"));
        let local = Arc::new(zoned(&[("a", 2), ("b", 2), ("c", 1)], "a"));
        let f = LoadBalancerFactory::new(&LbConfig::new(LbPolicy::Random), upstream, Some(local))
            .unwrap();
        let mut lb = f.create_seeded(7);
        let mut by_zone: HashMap<String, u32> = HashMap::new();
        let n = 40_000;
        for _ in 0..n {
            *by_zone.entry(lb.choose().unwrap().locality().zone.clone()).or_default() += 1;
        }
        // Expected: a 62.5%, b 37.5% * 1000/1500 = 25%, c 12.5%. Tolerance 1.5 points
        // (about 8 standard deviations at n = 40000).
        let share = |z: &str| f64::from(by_zone[z]) / f64::from(n) * 100.0;
        assert!((share("a") - 62.5).abs() < 1.5, "{by_zone:?}");
        assert!((share("b") - 25.0).abs() < 1.5, "{by_zone:?}");
        assert!((share("c") - 12.5).abs() < 1.5, "{by_zone:?}");
    }

    #[test]
    fn locality_weighted_balancing_follows_effective_weights() {
        let hosts: Vec<_> =
            (0..4).map(|i| host(i, "a")).chain((4..8).map(|i| host(i, "b"))).collect();
        // Zone b: 1 of 4 healthy -> availability min(1, 1.4 * 0.25) = 0.35.
        for h in &hosts[5..8] {
            h.set_health_flags(HealthFlags::FAILED_ACTIVE_HC);
        }
        let ps = PrioritySet::builder()
            .hosts(hosts)
            .locality_weight(Locality::new("r", "a", ""), 1)
            .locality_weight(Locality::new("r", "b", ""), 2)
            .build()
            .unwrap();
        let mut cfg = LbConfig::new(LbPolicy::RoundRobin);
        cfg.common.locality = LocalityLbConfig::LocalityWeighted;
        // Health 5/8 * 140 = 87 < 100 but 62.5% healthy >= 50%: no panic.
        let f = LoadBalancerFactory::new(&cfg, Arc::new(ps), None).unwrap();
        assert_eq!(f.priority_state().panic, [false]);
        let mut lb = f.create(SmallRng::seed_from_u64(3));
        let mut b = 0;
        let n = 1700;
        for _ in 0..n {
            if lb.choose().unwrap().locality().zone == "b" {
                b += 1;
            }
        }
        // Effective weights a = 1.0, b = 2 * 0.35 = 0.7: b gets 0.7/1.7 of picks,
        // exactly (EDF is deterministic) to within one pick per locality.
        assert!((b - 700i32).abs() <= 2, "b = {b}");
    }

    #[test]
    fn fail_traffic_on_panic() {
        let hosts: Vec<_> = (0..4).map(|i| host(i, "a")).collect();
        for h in &hosts[..3] {
            h.set_health_flags(HealthFlags::FAILED_OUTLIER_CHECK);
        }
        let ps = Arc::new(PrioritySet::builder().hosts(hosts).build().unwrap());
        let mut cfg = LbConfig::default();
        let mut lb =
            LoadBalancerFactory::new(&cfg, Arc::clone(&ps), None).unwrap().create_seeded(1);
        assert!(lb.choose().is_some(), "panic routes to all hosts");
        cfg.common.locality = LocalityLbConfig::ZoneAware(ZoneAwareLbConfig {
            fail_traffic_on_panic: true,
            ..Default::default()
        });
        let mut lb = LoadBalancerFactory::new(&cfg, ps, None).unwrap().create_seeded(1);
        assert!(lb.choose().is_none());
    }

    #[test]
    fn residual_sampling_helper() {
        let mut rng = SmallRng::seed_from_u64(1);
        let plan = LocalityRouting::LocalityResidual {
            local_percent_to_route: 0,
            residual_capacity: vec![0, 0, 0],
        };
        for _ in 0..100 {
            assert!(choose_local_locality(&plan, &mut rng) < 3);
        }
        let plan = LocalityRouting::LocalityResidual {
            local_percent_to_route: 0,
            residual_capacity: vec![0, 0, 5],
        };
        for _ in 0..100 {
            assert_eq!(choose_local_locality(&plan, &mut rng), 2);
        }
    }
}
