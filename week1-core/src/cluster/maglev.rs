//! Maglev: Envoy's `MaglevLoadBalancer` (Google's Maglev consistent hashing).
//!
//! A lookup table of prime size `M` (default 65537) maps `hash % M` to a host,
//! so a pick is one array read. Each host has its own permutation of the table
//! slots, from two xxHash64 values of its address:
//!
//! ```text
//!  offset = xxh64(key, seed 0) % M
//!  skip   = xxh64(key, seed 1) % (M - 1) + 1
//!  permutation(j) = (offset + j × skip) % M        (a full cycle, M prime)
//! ```
//!
//! Hosts take turns claiming the next free slot of their permutation until the
//! table is full. Weighted: a host of normalized weight `w` takes a turn in
//! iteration `k` only when `k × w ≥` its running target, which grows by the
//! largest weight per claim, so the heaviest host claims every round and a host
//! of half its weight every other round. The result gives each host about
//! `w × M` slots, and removing a host mostly only frees its own slots.

use std::sync::Arc;

use xxhash_rust::xxh64::xxh64;

use super::ClusterError;
use super::host::Host;
use super::lb::MaglevConfig;
use super::ring_hash::host_key;
use super::thread_aware::{HashTable, NormalizedHosts};

const EMPTY: u32 = u32::MAX;

/// A built Maglev lookup table. Immutable; shared by every worker.
#[derive(Debug, Clone, Default)]
pub struct MaglevTable {
    table: Vec<u32>,
    hosts: Vec<Arc<Host>>,
}

impl MaglevTable {
    /// Builds a table over `hosts` (weighted by [`Host::weight`]) after
    /// validating `config` (prime size). An empty host list gives an empty table.
    pub fn new(hosts: &[Arc<Host>], config: &MaglevConfig) -> Result<Self, ClusterError> {
        config.validate()?;
        Ok(Self::build_unchecked(&NormalizedHosts::from_hosts(hosts), config.table_size, false))
    }

    // ANCHOR: maglev_build
    /// Builds from normalized weights; `table_size` must be prime.
    pub(crate) fn build_unchecked(
        n: &NormalizedHosts,
        table_size: u64,
        use_hostname: bool,
    ) -> Self {
        struct Entry {
            skip: usize,
            weight: f64,
            target: f64,
            /// Next slot of this host's permutation to try.
            pos: usize,
        }
        let m = table_size as usize;
        if n.hosts.is_empty() || m < 2 || n.max.is_nan() || n.max <= 0.0 {
            return Self::default();
        }
        let mut entries: Vec<Entry> = n
            .hosts
            .iter()
            .map(|(host, weight)| {
                let key = host_key(host, use_hostname).as_bytes();
                Entry {
                    pos: (xxh64(key, 0) % table_size) as usize,
                    skip: (xxh64(key, 1) % (table_size - 1) + 1) as usize,
                    weight: *weight,
                    target: 0.0,
                }
            })
            .collect();

        let mut table = vec![EMPTY; m];
        let mut filled = 0;
        let mut iteration = 1u64;
        while filled < m {
            for (idx, e) in entries.iter_mut().enumerate() {
                if filled == m {
                    break;
                }
                if (iteration as f64) * e.weight < e.target {
                    continue; // lighter host: sits this round out
                }
                e.target += n.max;
                // Walk the permutation to the next free slot (there is one:
                // filled < m, and a prime-size permutation visits every slot).
                while table[e.pos] != EMPTY {
                    e.pos = (e.pos + e.skip) % m;
                }
                table[e.pos] = idx as u32;
                e.pos = (e.pos + e.skip) % m;
                filled += 1;
            }
            iteration += 1;
        }
        Self { table, hosts: n.hosts.iter().map(|(h, _)| Arc::clone(h)).collect() }
    }
    // ANCHOR_END: maglev_build

    /// Table size (0 when empty).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when the table is empty (no hosts).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The host owning `hash`.
    pub fn lookup(&self, hash: u64) -> Option<&Arc<Host>> {
        self.choose(hash, 0)
    }

    /// Slots owned by each host, in host order.
    pub fn slots_per_host(&self) -> Vec<usize> {
        let mut counts = vec![0; self.hosts.len()];
        for &i in &self.table {
            counts[i as usize] += 1;
        }
        counts
    }
}

impl HashTable for MaglevTable {
    fn choose(&self, hash: u64, attempt: u32) -> Option<&Arc<Host>> {
        if self.table.is_empty() {
            return None;
        }
        // Retry: flip most bits of the hash for a far-away slot (Envoy's trick).
        let hash = if attempt > 0 { hash ^ u64::from(attempt).wrapping_neg() } else { hash };
        let idx = self.table[(hash % self.table.len() as u64) as usize];
        self.hosts.get(idx as usize)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::host::HealthFlags;
    use super::super::host_set::PrioritySet;
    use super::super::lb::{LbConfig, LbPolicy, LoadBalancerContext, LoadBalancerFactory};
    use super::*;
    use crate::cluster::testing::{hosts, key_hash};

    #[test]
    fn table_is_full_and_balanced() {
        let t = MaglevTable::new(&hosts(&[1; 10]), &MaglevConfig::default()).unwrap();
        assert_eq!(t.len(), 65537);
        let slots = t.slots_per_host();
        assert_eq!(slots.iter().sum::<usize>(), 65537);
        // Unweighted Maglev hands out slots round-robin: within one of each other.
        assert!(slots.iter().max().unwrap() - slots.iter().min().unwrap() <= 1, "{slots:?}");
    }

    #[test]
    fn weights_give_proportional_slots() {
        let t = MaglevTable::new(&hosts(&[1, 2, 4]), &MaglevConfig { table_size: 7919 }).unwrap();
        let s = t.slots_per_host();
        // 1/7, 2/7, 4/7 of 7919 = 1131, 2262, 4525 (each within one round).
        assert!((s[0] as i64 - 1131).abs() <= 2 && (s[1] as i64 - 2262).abs() <= 2, "{s:?}");
    }

    #[test]
    fn rejects_non_prime_and_handles_tiny_tables() {
        assert_eq!(
            MaglevTable::new(&hosts(&[1]), &MaglevConfig { table_size: 65536 }).unwrap_err(),
            ClusterError::MaglevTableNotPrime { size: 65536 }
        );
        // More hosts than slots: the table fills and some hosts get nothing.
        let t = MaglevTable::new(&hosts(&[1; 5]), &MaglevConfig { table_size: 3 }).unwrap();
        assert_eq!(t.slots_per_host().iter().sum::<usize>(), 3);
        assert!(MaglevTable::new(&[], &MaglevConfig::default()).unwrap().lookup(7).is_none());
    }

    struct Hashed(u64, Option<Arc<Host>>, u32);
    impl LoadBalancerContext for Hashed {
        fn hash_key(&self) -> Option<u64> {
            Some(self.0)
        }
        fn should_select_another_host(&self, host: &Host) -> bool {
            self.1.as_ref().is_some_and(|h| std::ptr::eq(&**h, host))
        }
        fn host_selection_retry_count(&self) -> u32 {
            self.2
        }
    }

    #[test]
    fn lb_is_consistent_skips_unhealthy_and_retries() {
        let hs = hosts(&[1; 6]);
        hs[4].set_health_flags(HealthFlags::FAILED_OUTLIER_CHECK);
        let ps = Arc::new(PrioritySet::builder().hosts(hs.iter().cloned()).build().unwrap());
        let f = LoadBalancerFactory::new(&LbConfig::new(LbPolicy::Maglev), ps, None).unwrap();
        let (mut w1, mut w2) = (f.create_seeded(1), f.create_seeded(2));
        for k in 0..500 {
            let a = w1.choose_host(&mut Hashed(key_hash(k), None, 0)).unwrap();
            assert!(Arc::ptr_eq(&a, &w2.choose_host(&mut Hashed(key_hash(k), None, 0)).unwrap()));
            assert!(!Arc::ptr_eq(&a, &hs[4]));
            let other = w1.choose_host(&mut Hashed(key_hash(k), Some(Arc::clone(&a)), 5)).unwrap();
            assert!(!Arc::ptr_eq(&other, &a));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Removing one of N hosts: all of its keys move, and the total share of
        /// keys that move is within `[0.85/N, 1.2/N + 0.01]` (measured 0.99/N to
        /// 1.07/N over 20,000 keys).
        #[test]
        fn removing_a_host_moves_about_one_nth(n in 3usize..20, removed in any::<prop::sample::Index>()) {
            let hs = hosts(&vec![1; n]);
            let gone = removed.index(n);
            let cfg = MaglevConfig::default();
            let before = MaglevTable::new(&hs, &cfg).unwrap();
            let rest: Vec<_> = hs.iter().enumerate().filter(|&(i, _)| i != gone).map(|(_, h)| Arc::clone(h)).collect();
            let after = MaglevTable::new(&rest, &cfg).unwrap();
            let keys = 20_000u64;
            let mut moved = 0;
            for k in 0..keys {
                let (b, a) = (before.lookup(key_hash(k)).unwrap(), after.lookup(key_hash(k)).unwrap());
                prop_assert!(!Arc::ptr_eq(a, &hs[gone]));
                if !Arc::ptr_eq(a, b) {
                    moved += 1;
                }
            }
            let share = moved as f64 / keys as f64;
            let ideal = 1.0 / n as f64;
            prop_assert!(share > 0.85 * ideal && share < 1.2 * ideal + 0.01, "moved {} want ~{}", share, ideal);
        }
    }
}
