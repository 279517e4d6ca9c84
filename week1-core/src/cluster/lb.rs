//! The load balancer interface and its factory: Envoy's `LoadBalancer`,
//! `LoadBalancerContext` and `ThreadAwareLoadBalancer::factory()`.
//!
//! Load balancers are built in two steps, as in Envoy:
//!
//! ```text
//!  main thread                                   each worker
//!  ───────────                                   ───────────
//!  PrioritySet snapshot ─► LoadBalancerFactory ──► factory.create(rng) ─► Box<dyn LoadBalancer>
//!                          (priority loads, panic,     (own RNG, own round-robin
//!                           zone-routing plan,          cursors / EDF schedulers;
//!                           ring / Maglev tables)       &mut self, no locks)
//! ```
//!
//! The factory does the expensive, deterministic work once per snapshot and
//! shares it read-only (`Arc`); `create` is cheap and gives each worker an
//! independent load balancer it mutates without synchronisation. When
//! membership or health changes, the main thread builds a new snapshot and a
//! new factory, publishes it, and each worker replaces its load balancer with
//! `new_factory.create(..)`.
//!
//! A pick takes a [`LoadBalancerContext`] from the router: the request's hash
//! (for ring hash and Maglev), and the retry plugin's "previous hosts" predicate
//! with its retry count.

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::ClusterError;
use super::host::Host;
use super::host_set::PrioritySet;
use super::least_request::LeastRequest;
use super::maglev::MaglevTable;
use super::priority::PriorityState;
use super::random::RandomPicker;
use super::ring_hash::Ring;
use super::round_robin::RoundRobin;
use super::thread_aware::{HashTables, ThreadAwareLb};
use super::zone_aware::{LocalityRouting, SharedState, ZoneAwareLb};

/// What the caller knows about the request being balanced.
///
/// Every method has a default, so a context only overrides what it knows.
pub trait LoadBalancerContext {
    /// The request's hash from the route's hash policies (header, cookie,
    /// source IP...), for ring hash and Maglev. `None` makes them pick at random.
    fn hash_key(&self) -> Option<u64> {
        None
    }

    /// True to reject `host` and pick again (the retry `previous_hosts`
    /// predicate). At most [`host_selection_retry_count`](Self::host_selection_retry_count)
    /// extra picks are made; then the last pick is returned anyway.
    fn should_select_another_host(&self, _host: &Host) -> bool {
        false
    }

    /// How many times a rejected pick may be retried
    /// (`host_selection_retry_max_attempts`).
    fn host_selection_retry_count(&self) -> u32 {
        0
    }
}

/// A context that knows nothing: no hash, accepts any host.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoContext;

impl LoadBalancerContext for NoContext {}

/// Picks hosts for one worker. Owned, `&mut self`, never shared.
pub trait LoadBalancer: Send {
    /// Picks a host, or `None` when the cluster has nothing to route to.
    fn choose_host(&mut self, ctx: &mut dyn LoadBalancerContext) -> Option<Arc<Host>>;

    /// Picks a host with no request context.
    fn choose(&mut self) -> Option<Arc<Host>> {
        self.choose_host(&mut NoContext)
    }
}

/// `lb_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LbPolicy {
    /// Smooth weighted round robin (EDF when weights differ).
    #[default]
    RoundRobin,
    /// Power of N choices over active requests; weighted EDF when weights differ.
    LeastRequest,
    /// Uniform random, weighted when weights differ.
    Random,
    /// Ketama-style consistent hash ring.
    RingHash,
    /// Maglev consistent hashing table.
    Maglev,
}

/// `ring_hash_lb_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingHashConfig {
    /// Minimum ring entries; default 1024.
    pub minimum_ring_size: u64,
    /// Maximum ring entries; default 8M (8,388,608), also the hard upper bound.
    pub maximum_ring_size: u64,
}

/// Envoy's upper bound (and default) for `maximum_ring_size`.
pub const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;

impl Default for RingHashConfig {
    fn default() -> Self {
        Self { minimum_ring_size: 1024, maximum_ring_size: MAX_RING_SIZE }
    }
}

impl RingHashConfig {
    /// Checks `1 <= minimum <= maximum <= 8M`.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let (min, max) = (self.minimum_ring_size, self.maximum_ring_size);
        if min == 0 || min > max || max > MAX_RING_SIZE {
            return Err(ClusterError::InvalidRingSize { minimum: min, maximum: max });
        }
        Ok(())
    }
}

/// `maglev_lb_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaglevConfig {
    /// Lookup table size; must be prime; default 65537, at most 5,000,011.
    pub table_size: u64,
}

/// Envoy's default Maglev table size.
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65537;
/// Envoy's upper bound for the Maglev table size.
pub const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;

impl Default for MaglevConfig {
    fn default() -> Self {
        Self { table_size: DEFAULT_MAGLEV_TABLE_SIZE }
    }
}

impl MaglevConfig {
    /// Checks the table size is a prime no larger than 5,000,011.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let m = self.table_size;
        if m > MAX_MAGLEV_TABLE_SIZE {
            return Err(ClusterError::MaglevTableTooLarge { size: m, max: MAX_MAGLEV_TABLE_SIZE });
        }
        if !is_prime(m) {
            return Err(ClusterError::MaglevTableNotPrime { size: m });
        }
        Ok(())
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// `least_request_lb_config`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeastRequestConfig {
    /// Hosts sampled per pick when weights are equal; default 2, at least 2.
    pub choice_count: u32,
    /// Exponent of `weight / (active + 1)^bias` when weights differ; default 1.0.
    pub active_request_bias: f64,
}

impl Default for LeastRequestConfig {
    fn default() -> Self {
        Self { choice_count: 2, active_request_bias: 1.0 }
    }
}

impl LeastRequestConfig {
    /// Checks `choice_count >= 2` and a finite, non-negative bias.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if self.choice_count < 2 {
            return Err(ClusterError::InvalidChoiceCount { choice_count: self.choice_count });
        }
        let b = self.active_request_bias;
        if !(b.is_finite() && b >= 0.0) {
            return Err(ClusterError::InvalidActiveRequestBias { bias: b });
        }
        Ok(())
    }
}

/// How zone-aware routing weighs localities (`locality_basis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalityBasis {
    /// Count healthy hosts (default).
    #[default]
    HealthyHostsNum,
    /// Sum healthy hosts' weights.
    HealthyHostsWeight,
}

/// `common_lb_config.zone_aware_lb_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneAwareLbConfig {
    /// Percent of requests that consider zone-aware routing; default 100.
    pub routing_enabled: u32,
    /// Below this many healthy upstream hosts, no zone-aware routing; default 6.
    pub min_cluster_size: u64,
    /// In panic, fail the pick instead of using all hosts; default false.
    pub fail_traffic_on_panic: bool,
    /// `force_local_zone.min_size`: route all traffic to the local zone when it
    /// has at least this many healthy hosts. `None` (default) is off.
    pub force_local_zone_min_size: Option<u32>,
    /// How localities are weighed.
    pub locality_basis: LocalityBasis,
}

impl Default for ZoneAwareLbConfig {
    fn default() -> Self {
        Self {
            routing_enabled: 100,
            min_cluster_size: 6,
            fail_traffic_on_panic: false,
            force_local_zone_min_size: None,
            locality_basis: LocalityBasis::HealthyHostsNum,
        }
    }
}

/// `common_lb_config`'s `locality_config_specifier` one-of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalityLbConfig {
    /// Zone-aware routing (active only when a local cluster is given).
    ZoneAware(ZoneAwareLbConfig),
    /// Locality-weighted balancing from the localities' `load_balancing_weight`.
    LocalityWeighted,
}

impl Default for LocalityLbConfig {
    fn default() -> Self {
        Self::ZoneAware(ZoneAwareLbConfig::default())
    }
}

/// `common_lb_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommonLbConfig {
    /// `healthy_panic_threshold` in percent; default 50, 0 disables panic mode.
    pub healthy_panic_threshold: u32,
    /// Zone-aware or locality-weighted.
    pub locality: LocalityLbConfig,
    /// Hash hosts by hostname instead of address (ring hash, Maglev).
    pub use_hostname_for_hashing: bool,
}

impl Default for CommonLbConfig {
    fn default() -> Self {
        Self {
            healthy_panic_threshold: 50,
            locality: LocalityLbConfig::default(),
            use_hostname_for_hashing: false,
        }
    }
}

impl CommonLbConfig {
    /// Checks the percentages are in `0..=100`.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if self.healthy_panic_threshold > 100 {
            return Err(ClusterError::InvalidPercent {
                field: "healthy_panic_threshold",
                value: self.healthy_panic_threshold,
            });
        }
        if let LocalityLbConfig::ZoneAware(z) = &self.locality
            && z.routing_enabled > 100
        {
            return Err(ClusterError::InvalidPercent {
                field: "zone_aware_lb_config.routing_enabled",
                value: z.routing_enabled,
            });
        }
        Ok(())
    }
}

/// Everything that shapes a cluster's load balancing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LbConfig {
    /// Which algorithm.
    pub policy: LbPolicy,
    /// Panic threshold and locality handling.
    pub common: CommonLbConfig,
    /// Used when `policy` is `RingHash`.
    pub ring_hash: RingHashConfig,
    /// Used when `policy` is `Maglev`.
    pub maglev: MaglevConfig,
    /// Used when `policy` is `LeastRequest`.
    pub least_request: LeastRequestConfig,
}

impl LbConfig {
    /// A default config for `policy`.
    pub fn new(policy: LbPolicy) -> Self {
        Self { policy, ..Self::default() }
    }

    /// Validates the parts the policy uses.
    pub fn validate(&self) -> Result<(), ClusterError> {
        self.common.validate()?;
        match self.policy {
            LbPolicy::RingHash => self.ring_hash.validate(),
            LbPolicy::Maglev => self.maglev.validate(),
            LbPolicy::LeastRequest => self.least_request.validate(),
            LbPolicy::RoundRobin | LbPolicy::Random => Ok(()),
        }
    }
}

#[derive(Debug)]
enum Kind {
    RoundRobin,
    LeastRequest(LeastRequest),
    Random,
    RingHash(Arc<HashTables<Ring>>),
    Maglev(Arc<HashTables<MaglevTable>>),
}

/// Builds per-worker load balancers from one [`PrioritySet`] snapshot.
/// Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct LoadBalancerFactory {
    shared: Arc<SharedState>,
    kind: Arc<Kind>,
}

impl LoadBalancerFactory {
    /// Validates `config` and precomputes everything shared by workers:
    /// priority loads and panic flags, the zone-aware routing plan (when
    /// `local_priority_set` describes the proxies of the local cluster), and
    /// for ring hash / Maglev the per-priority tables.
    pub fn new(
        config: &LbConfig,
        priority_set: Arc<PrioritySet>,
        local_priority_set: Option<Arc<PrioritySet>>,
    ) -> Result<Self, ClusterError> {
        config.validate()?;
        if let Some(local) = &local_priority_set
            && local.host_sets().len() > 1
        {
            return Err(ClusterError::LocalClusterHasPriorities {
                levels: local.host_sets().len(),
            });
        }
        let shared =
            Arc::new(SharedState::new(&config.common, priority_set, local_priority_set.as_deref()));
        let kind = match config.policy {
            LbPolicy::RoundRobin => Kind::RoundRobin,
            LbPolicy::Random => Kind::Random,
            LbPolicy::LeastRequest => Kind::LeastRequest(LeastRequest::new(&config.least_request)),
            LbPolicy::RingHash => Kind::RingHash(Arc::new(HashTables::build(&shared, |hosts| {
                Ring::build(hosts, &config.ring_hash, config.common.use_hostname_for_hashing)
            }))),
            LbPolicy::Maglev => Kind::Maglev(Arc::new(HashTables::build(&shared, |hosts| {
                MaglevTable::build_unchecked(
                    hosts,
                    config.maglev.table_size,
                    config.common.use_hostname_for_hashing,
                )
            }))),
        };
        Ok(Self { shared, kind: Arc::new(kind) })
    }

    /// A load balancer for one worker, drawing randomness from `rng`.
    pub fn create(&self, rng: SmallRng) -> Box<dyn LoadBalancer> {
        let shared = Arc::clone(&self.shared);
        match &*self.kind {
            Kind::RoundRobin => Box::new(ZoneAwareLb::new(shared, RoundRobin, rng)),
            Kind::LeastRequest(lr) => Box::new(ZoneAwareLb::new(shared, *lr, rng)),
            Kind::Random => Box::new(ZoneAwareLb::new(shared, RandomPicker, rng)),
            Kind::RingHash(t) => Box::new(ThreadAwareLb::new(Arc::clone(t), rng)),
            Kind::Maglev(t) => Box::new(ThreadAwareLb::new(Arc::clone(t), rng)),
        }
    }

    /// [`create`](Self::create) with a `SmallRng` seeded from `seed`
    /// (deterministic; tests and benches).
    pub fn create_seeded(&self, seed: u64) -> Box<dyn LoadBalancer> {
        self.create(SmallRng::seed_from_u64(seed))
    }

    /// The snapshot this factory was built from.
    pub fn priority_set(&self) -> &Arc<PrioritySet> {
        &self.shared.priority_set
    }

    /// Priority loads and panic flags of the snapshot.
    pub fn priority_state(&self) -> &PriorityState {
        &self.shared.state
    }

    /// The zone-aware routing plan for P=0.
    pub fn locality_routing(&self) -> &LocalityRouting {
        &self.shared.routing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_rejects_bad_values() {
        let mut c = LbConfig::new(LbPolicy::Maglev);
        c.maglev.table_size = 65536;
        assert_eq!(c.validate(), Err(ClusterError::MaglevTableNotPrime { size: 65536 }));
        c.maglev.table_size = 1;
        assert_eq!(c.validate(), Err(ClusterError::MaglevTableNotPrime { size: 1 }));
        c.maglev.table_size = 5_000_101;
        assert!(matches!(c.validate(), Err(ClusterError::MaglevTableTooLarge { .. })));
        c.maglev.table_size = 5_000_011;
        assert_eq!(c.validate(), Ok(()));

        let mut c = LbConfig::new(LbPolicy::RingHash);
        c.ring_hash.minimum_ring_size = 0;
        assert!(matches!(c.validate(), Err(ClusterError::InvalidRingSize { .. })));
        c.ring_hash = RingHashConfig { minimum_ring_size: 10, maximum_ring_size: 5 };
        assert!(matches!(c.validate(), Err(ClusterError::InvalidRingSize { .. })));
        c.ring_hash =
            RingHashConfig { minimum_ring_size: 10, maximum_ring_size: MAX_RING_SIZE + 1 };
        assert!(matches!(c.validate(), Err(ClusterError::InvalidRingSize { .. })));

        let mut c = LbConfig::new(LbPolicy::LeastRequest);
        c.least_request.choice_count = 1;
        assert_eq!(c.validate(), Err(ClusterError::InvalidChoiceCount { choice_count: 1 }));
        c.least_request = LeastRequestConfig { choice_count: 2, active_request_bias: -1.0 };
        assert!(matches!(c.validate(), Err(ClusterError::InvalidActiveRequestBias { .. })));
        c.least_request.active_request_bias = f64::NAN;
        assert!(matches!(c.validate(), Err(ClusterError::InvalidActiveRequestBias { .. })));

        let mut c = LbConfig::default();
        c.common.healthy_panic_threshold = 101;
        assert!(matches!(c.validate(), Err(ClusterError::InvalidPercent { .. })));
        c.common.healthy_panic_threshold = 50;
        c.common.locality = LocalityLbConfig::ZoneAware(ZoneAwareLbConfig {
            routing_enabled: 101,
            ..Default::default()
        });
        assert!(matches!(c.validate(), Err(ClusterError::InvalidPercent { .. })));
    }

    #[test]
    fn factory_rejects_bad_config_and_multi_priority_local_cluster() {
        let ps = Arc::new(PrioritySet::builder().build().unwrap());
        let mut c = LbConfig::new(LbPolicy::Maglev);
        c.maglev.table_size = 100;
        assert!(LoadBalancerFactory::new(&c, Arc::clone(&ps), None).is_err());
        let local = Host::builder("10.9.0.1:80".parse().unwrap()).priority(1).build().unwrap();
        let local = Arc::new(PrioritySet::builder().host(local).build().unwrap());
        assert_eq!(
            LoadBalancerFactory::new(&LbConfig::default(), ps, Some(local)).unwrap_err(),
            ClusterError::LocalClusterHasPriorities { levels: 2 }
        );
    }

    #[test]
    fn every_policy_returns_none_on_an_empty_cluster() {
        let ps = Arc::new(PrioritySet::builder().build().unwrap());
        for policy in [
            LbPolicy::RoundRobin,
            LbPolicy::LeastRequest,
            LbPolicy::Random,
            LbPolicy::RingHash,
            LbPolicy::Maglev,
        ] {
            let f =
                LoadBalancerFactory::new(&LbConfig::new(policy), Arc::clone(&ps), None).unwrap();
            let mut lb = f.create_seeded(1);
            assert!(lb.choose().is_none(), "{policy:?}");
        }
    }

    use proptest::prelude::*;

    use super::super::host::HealthFlags;

    const ALL: [LbPolicy; 5] = [
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::Random,
        LbPolicy::RingHash,
        LbPolicy::Maglev,
    ];

    fn host(i: usize, priority: u32) -> Arc<Host> {
        Host::builder(format!("10.7.{}.{}:80", priority, i).parse().unwrap())
            .priority(priority)
            .build()
            .unwrap()
    }

    /// Picks per (priority, health) from 10,000 picks of `policy`.
    fn split(ps: PrioritySet, policy: LbPolicy) -> HashMap<(u32, HostHealth), u32> {
        let f = LoadBalancerFactory::new(&LbConfig::new(policy), Arc::new(ps), None).unwrap();
        let mut lb = f.create_seeded(11);
        let mut out = HashMap::new();
        for _ in 0..10_000 {
            let h = lb.choose().unwrap();
            *out.entry((h.priority(), h.health())).or_default() += 1;
        }
        out
    }

    use std::collections::HashMap;

    use super::super::host::HostHealth;

    #[test]
    fn priority_failover_and_degraded_split_for_every_policy() {
        for policy in ALL {
            // P=0: 4 hosts, 1 healthy (health 35); P=1 all healthy: 35% / 65%.
            let hosts: Vec<_> =
                (0..4).map(|i| host(i, 0)).chain((0..4).map(|i| host(i, 1))).collect();
            for h in &hosts[1..4] {
                h.set_health_flags(HealthFlags::FAILED_ACTIVE_HC);
            }
            let s = split(PrioritySet::builder().hosts(hosts).build().unwrap(), policy);
            let p0 = s.get(&(0, HostHealth::Healthy)).copied().unwrap_or(0);
            assert!((3200..3800).contains(&p0), "{policy:?}: {s:?}");
            assert_eq!(s.get(&(0, HostHealth::Unhealthy)), None, "{policy:?}");

            // One level, 5 healthy + 5 degraded: 70% healthy, 30% degraded.
            let hosts: Vec<_> = (0..10).map(|i| host(i, 0)).collect();
            for h in &hosts[5..] {
                h.set_health_flags(HealthFlags::DEGRADED_EDS_HEALTH);
            }
            let s = split(PrioritySet::builder().hosts(hosts).build().unwrap(), policy);
            let degraded = s.get(&(0, HostHealth::Degraded)).copied().unwrap_or(0);
            assert!((2700..3300).contains(&degraded), "{policy:?}: {s:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Every policy: unhealthy hosts are never picked unless the level is in
        /// panic (healthy share below 50%), and in panic they are reachable.
        #[test]
        fn unhealthy_skipped_unless_panic(n in 2usize..10, down in prop::collection::vec(any::<bool>(), 10), seed: u64) {
            let hosts: Vec<_> = (0..n).map(|i| host(i, 0)).collect();
            for (h, &d) in hosts.iter().zip(&down) {
                if d {
                    h.set_health_flags(HealthFlags::FAILED_OUTLIER_CHECK);
                }
            }
            let healthy = hosts.iter().filter(|h| h.health() == HostHealth::Healthy).count();
            let panic = 2 * healthy < n;
            let ps = Arc::new(PrioritySet::builder().hosts(hosts).build().unwrap());
            for policy in ALL {
                let f = LoadBalancerFactory::new(&LbConfig::new(policy), Arc::clone(&ps), None).unwrap();
                prop_assert_eq!(f.priority_state().panic[0], panic);
                let mut lb = f.create_seeded(seed);
                let mut saw_unhealthy = false;
                for _ in 0..100 * n {
                    let h = lb.choose().unwrap();
                    saw_unhealthy |= h.health() != HostHealth::Healthy;
                }
                prop_assert!(panic || !saw_unhealthy, "{:?}", policy);
                prop_assert!(!panic || healthy == n || saw_unhealthy, "{:?} never reached unhealthy hosts in panic", policy);
            }
        }
    }
}
