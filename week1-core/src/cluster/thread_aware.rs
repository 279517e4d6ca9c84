//! Shared hash tables for consistent hashing: Envoy's `ThreadAwareLoadBalancerBase`.
//!
//! Ring hash and Maglev tables are expensive to build (thousands to millions of
//! entries) and pure functions of the snapshot, so they are built once on the
//! main thread, one per priority level, and shared read-only by every worker:
//!
//! ```text
//!  PrioritySet ─► per level: normalized weights ─► table (ring / Maglev)
//!                  (healthy hosts, or all in panic;       │
//!                   optionally × locality weight)         ▼
//!  worker: hash (or random) ─► choose_priority ─► level's table ─► host
//! ```
//!
//! A level in panic hashes over all its hosts; otherwise over its healthy
//! hosts, with a second table over its degraded hosts for the degraded share of
//! the priority load.

use std::sync::Arc;

use rand::RngCore;
use rand::rngs::SmallRng;

use super::host::Host;
use super::host_set::{HostSet, HostsPerLocality};
use super::lb::{LoadBalancer, LoadBalancerContext};
use super::priority::{HostAvailability, PriorityLoad, choose_priority};
use super::zone_aware::SharedState;

/// Hosts with weights normalized to sum to (at most) 1.
#[derive(Debug, Clone, Default)]
pub struct NormalizedHosts {
    /// `(host, weight)`, weights in `(0, 1]`.
    pub hosts: Vec<(Arc<Host>, f64)>,
    /// Smallest weight (1.0 when empty).
    pub min: f64,
    /// Largest weight (0.0 when empty).
    pub max: f64,
}

impl NormalizedHosts {
    fn push_all(&mut self, hosts: &[Arc<Host>], scale: f64) {
        let sum: u64 = hosts.iter().map(|h| u64::from(h.weight())).sum();
        if sum == 0 {
            return;
        }
        for h in hosts {
            let w = f64::from(h.weight()) * scale / sum as f64;
            self.hosts.push((Arc::clone(h), w));
            self.min = self.min.min(w);
            self.max = self.max.max(w);
        }
    }

    /// Envoy's `normalizeHostWeights`: each host's share of the total weight.
    pub fn from_hosts(hosts: &[Arc<Host>]) -> Self {
        let mut n = Self { hosts: Vec::new(), min: 1.0, max: 0.0 };
        n.push_all(hosts, 1.0);
        n
    }

    /// Envoy's `normalizeLocalityWeights`: a host's share within its locality
    /// times the locality's share of the locality weights. Localities of weight
    /// 0 are left out.
    pub fn from_localities(per_locality: &HostsPerLocality, weights: &[u32]) -> Self {
        let mut n = Self { hosts: Vec::new(), min: 1.0, max: 0.0 };
        let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if sum == 0 {
            return n;
        }
        for (hosts, &w) in per_locality.get().iter().zip(weights) {
            if w > 0 {
                n.push_all(hosts, f64::from(w) / sum as f64);
            }
        }
        n
    }
}

/// A consistent-hash lookup structure.
pub(crate) trait HashTable: Send + Sync + std::fmt::Debug + 'static {
    /// The host for `hash`; `attempt > 0` asks for an alternative (retry).
    fn choose(&self, hash: u64, attempt: u32) -> Option<&Arc<Host>>;
}

#[derive(Debug)]
struct Level<T> {
    /// Healthy hosts, or all hosts when the level is in panic.
    primary: T,
    /// Degraded hosts (unused in panic).
    degraded: T,
    panic: bool,
}

/// Per-priority tables plus the priority load to choose among them.
#[derive(Debug)]
pub(crate) struct HashTables<T> {
    load: PriorityLoad,
    levels: Vec<Level<T>>,
}

fn normalize(
    hs: &HostSet,
    in_panic: bool,
    locality_weighted: bool,
    degraded: bool,
) -> NormalizedHosts {
    let (flat, per_locality) = match (in_panic, degraded) {
        (true, _) => (hs.hosts(), hs.hosts_per_locality()),
        (false, false) => (hs.healthy_hosts(), hs.healthy_hosts_per_locality()),
        (false, true) => (hs.degraded_hosts(), hs.degraded_hosts_per_locality()),
    };
    match hs.locality_weights() {
        Some(w) if locality_weighted && !w.is_empty() => {
            NormalizedHosts::from_localities(per_locality, w)
        }
        _ => NormalizedHosts::from_hosts(flat),
    }
}

impl<T: HashTable> HashTables<T> {
    pub(crate) fn build(shared: &SharedState, build: impl Fn(&NormalizedHosts) -> T) -> Self {
        let levels = shared
            .priority_set
            .host_sets()
            .iter()
            .zip(&shared.state.panic)
            .map(|(hs, &panic)| Level {
                primary: build(&normalize(hs, panic, shared.locality_weighted, false)),
                degraded: build(&if panic {
                    NormalizedHosts::default()
                } else {
                    normalize(hs, false, shared.locality_weighted, true)
                }),
                panic,
            })
            .collect();
        Self { load: shared.state.load.clone(), levels }
    }
}

/// The per-worker side: just a reference to the shared tables and an RNG for
/// requests without a hash.
#[derive(Debug)]
pub(crate) struct ThreadAwareLb<T> {
    tables: Arc<HashTables<T>>,
    rng: SmallRng,
}

impl<T> ThreadAwareLb<T> {
    pub(crate) fn new(tables: Arc<HashTables<T>>, rng: SmallRng) -> Self {
        Self { tables, rng }
    }
}

impl<T: HashTable> LoadBalancer for ThreadAwareLb<T> {
    fn choose_host(&mut self, ctx: &mut dyn LoadBalancerContext) -> Option<Arc<Host>> {
        // No hash policy matched: behave like random, as Envoy does.
        let hash = ctx.hash_key().unwrap_or_else(|| self.rng.next_u64());
        let (p, availability) = choose_priority(hash, &self.tables.load);
        let level = self.tables.levels.get(p)?;
        let table = if level.panic || availability == HostAvailability::Healthy {
            &level.primary
        } else {
            &level.degraded
        };
        let attempts = ctx.host_selection_retry_count().saturating_add(1);
        let mut host = None;
        for attempt in 0..attempts {
            let h = table.choose(hash, attempt)?;
            if !ctx.should_select_another_host(h) {
                return Some(Arc::clone(h));
            }
            host = Some(h);
        }
        host.cloned()
    }
}
