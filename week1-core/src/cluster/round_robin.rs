//! Weighted round robin: Envoy's `RoundRobinLoadBalancer`.
//!
//! The zone-aware base ([`super::zone_aware`]) picks the host list (priority,
//! health, locality); this module walks the list:
//!
//! - all weights equal: a plain cursor, `hosts[i++]`, starting at a random
//!   offset per worker so workers do not hit the same host in lockstep;
//! - weights differ: Envoy's EDF scheduler ([`super::edf`]) so each host gets
//!   `weight / Σweights` of the picks, spread evenly in time (smooth) rather
//!   than in bursts. With static weights EDF's order repeats every `Σweights`
//!   picks, so when that period is at most [`MAX_SCHEDULE_LEN`] we run EDF
//!   once at build time, record one period, and then walk the recording with a
//!   cursor: the same sequence, at the cost of an unweighted pick. Larger
//!   periods use the live scheduler (`O(log n)` per pick). Either way the
//!   start is a random point of the sequence, per worker.
//!
//! Weights are read when the load balancer is built from a snapshot; an EDS
//! weight change reaches picks with the next snapshot, as membership does.
//! One cursor or scheduler exists per host list, per worker.

use std::sync::Arc;

use rand::rngs::SmallRng;

use super::edf::EdfScheduler;
use super::host::Host;
use super::zone_aware::{SourcePicker, random_index};

/// True when every host has the same weight (then weights are ignored).
pub(crate) fn weights_equal(hosts: &[Arc<Host>]) -> bool {
    hosts.windows(2).all(|w| w[0].weight() == w[1].weight())
}

/// Builds an EDF scheduler over `hosts` and advances it a random number of
/// picks (less than `hosts.len()`), like Envoy's `createWithPicks`.
pub(crate) fn edf_for(
    hosts: &[Arc<Host>],
    rng: &mut SmallRng,
    weight: impl Fn(&Host) -> f64,
) -> EdfScheduler<u32> {
    let mut s = EdfScheduler::new();
    for (i, h) in hosts.iter().enumerate() {
        s.add(weight(h), i as u32);
    }
    if !hosts.is_empty() {
        for _ in 0..random_index(rng, hosts.len()) {
            s.pick_and_add(|&i| weight(&hosts[i as usize]));
        }
    }
    s
}

/// Longest weighted round-robin period (`Σweights`) recorded up front
/// (256 KiB of `u32` per host list and worker at most).
pub const MAX_SCHEDULE_LEN: u64 = 1 << 16;

/// Round-robin state of one host list.
#[derive(Debug)]
pub(crate) enum RrState {
    /// Equal weights: next index.
    Unweighted { next: usize },
    /// Different weights, short period: one recorded EDF period and a cursor.
    Schedule { order: Vec<u32>, next: usize },
    /// Different weights, long period: the live EDF scheduler.
    Weighted(EdfScheduler<u32>),
}

/// Advances a cursor over `len > 0` items.
#[inline]
fn advance(next: &mut usize, len: usize) -> usize {
    // A compare instead of `% len`: no division on the hot path.
    let i = if *next < len { *next } else { 0 };
    *next = i + 1;
    i
}

/// The round-robin [`SourcePicker`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoundRobin;

impl SourcePicker for RoundRobin {
    type State = RrState;

    fn new_state(&self, hosts: &[Arc<Host>], rng: &mut SmallRng) -> RrState {
        if weights_equal(hosts) {
            let next = if hosts.is_empty() { 0 } else { random_index(rng, hosts.len()) };
            return RrState::Unweighted { next };
        }
        let weight = |h: &Host| f64::from(h.weight());
        let period: u64 = hosts.iter().map(|h| u64::from(h.weight())).sum();
        if period > MAX_SCHEDULE_LEN {
            return RrState::Weighted(edf_for(hosts, rng, weight));
        }
        // ANCHOR: round_robin_schedule
        let mut edf = EdfScheduler::new();
        for (i, h) in hosts.iter().enumerate() {
            edf.add(weight(h), i as u32);
        }
        let order: Vec<u32> =
            (0..period).filter_map(|_| edf.pick_and_add(|&i| weight(&hosts[i as usize]))).collect();
        // ANCHOR_END: round_robin_schedule
        let next = random_index(rng, order.len());
        RrState::Schedule { order, next }
    }

    // ANCHOR: round_robin_pick
    fn pick(&self, state: &mut RrState, hosts: &[Arc<Host>], _rng: &mut SmallRng) -> usize {
        match state {
            RrState::Unweighted { next } => advance(next, hosts.len()),
            RrState::Schedule { order, next } => order[advance(next, order.len())] as usize,
            RrState::Weighted(edf) => {
                let weight = |&i: &u32| f64::from(hosts[i as usize].weight());
                edf.pick_and_add(weight).map_or(0, |i| i as usize)
            }
        }
    }
    // ANCHOR_END: round_robin_pick
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::super::host::HealthFlags;
    use super::super::lb::{LbConfig, LbPolicy, LoadBalancer, LoadBalancerContext};
    use super::*;
    use crate::cluster::testing::{hosts, index_of, seeded_lb};

    fn lb(hosts: &[Arc<Host>], seed: u64) -> Box<dyn LoadBalancer> {
        seeded_lb(&LbConfig::new(LbPolicy::RoundRobin), hosts, seed)
    }

    #[test]
    fn unweighted_cycles_through_every_host() {
        let hs = hosts(&[1, 1, 1, 1]);
        let mut lb = lb(&hs, 9);
        let first: Vec<usize> = (0..4).map(|_| index_of(&hs, &lb.choose().unwrap())).collect();
        let second: Vec<usize> = (0..4).map(|_| index_of(&hs, &lb.choose().unwrap())).collect();
        assert_eq!(first, second, "same order every cycle");
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3]);
        // Consecutive indices, starting from the worker's random offset.
        assert!(first.windows(2).all(|w| w[1] == (w[0] + 1) % 4), "{first:?}");
    }

    #[test]
    fn weighted_is_exact_over_a_cycle_and_smooth() {
        let hs = hosts(&[3, 1, 1]);
        let mut lb = lb(&hs, 1);
        let picks: Vec<usize> = (0..50).map(|_| index_of(&hs, &lb.choose().unwrap())).collect();
        for w in picks.windows(5) {
            // Any 5 consecutive picks hold the 3:1:1 share to within one.
            let a = w.iter().filter(|&&i| i == 0).count();
            assert!((2..=4).contains(&a), "{picks:?}");
        }
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 30);
    }

    #[test]
    fn skips_unhealthy_hosts() {
        let hs = hosts(&[1, 1, 1, 1, 1]);
        hs[2].set_health_flags(HealthFlags::FAILED_ACTIVE_HC);
        let mut lb = lb(&hs, 2);
        for _ in 0..100 {
            assert_ne!(index_of(&hs, &lb.choose().unwrap()), 2);
        }
    }

    struct AvoidFirst(Arc<Host>, u32);
    impl LoadBalancerContext for AvoidFirst {
        fn should_select_another_host(&self, host: &Host) -> bool {
            std::ptr::eq(host, &*self.0)
        }
        fn host_selection_retry_count(&self) -> u32 {
            self.1
        }
    }

    #[test]
    fn retry_predicate_moves_to_another_host() {
        let hs = hosts(&[1, 1]);
        let mut lb = lb(&hs, 3);
        let first = lb.choose().unwrap();
        // Next plain pick would be the other host; the one after is `first` again.
        let _ = lb.choose();
        let mut ctx = AvoidFirst(Arc::clone(&first), 1);
        let picked = lb.choose_host(&mut ctx).unwrap();
        assert!(!Arc::ptr_eq(&picked, &first));
        // The retry consumed two turns, so `first` is due again. With no retries
        // allowed, the rejected host is returned anyway.
        let mut ctx = AvoidFirst(Arc::clone(&first), 0);
        assert!(Arc::ptr_eq(&lb.choose_host(&mut ctx).unwrap(), &first));
    }

    #[test]
    fn long_periods_use_the_live_scheduler() {
        // 600 hosts of weight 128: period 76,800 > MAX_SCHEDULE_LEN.
        let mut ws = vec![128; 600];
        ws[0] = 64;
        let hs = hosts(&ws);
        let mut rng: SmallRng = rand::SeedableRng::seed_from_u64(1);
        assert!(matches!(RoundRobin.new_state(&hs, &mut rng), RrState::Weighted(_)));
        let small = hosts(&[1, 2, 3]);
        assert!(
            matches!(RoundRobin.new_state(&small, &mut rng), RrState::Schedule { ref order, .. } if order.len() == 6)
        );
        let mut lb = lb(&hs, 4);
        let zero = (0..2 * 76_800).filter(|_| Arc::ptr_eq(&lb.choose().unwrap(), &hs[0])).count();
        assert!((127..=129).contains(&zero), "{zero}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Over k full weight cycles, every host gets exactly k * weight picks,
        /// give or take one (EDF is exact up to where the window starts).
        #[test]
        fn picks_follow_weights(weights in prop::collection::vec(1u32..=128, 1..12), seed: u64) {
            let hs = hosts(&weights);
            let mut lb = lb(&hs, seed);
            let total: u32 = weights.iter().sum();
            let k = 3;
            let mut counts: HashMap<usize, u32> = HashMap::new();
            for _ in 0..k * total {
                *counts.entry(index_of(&hs, &lb.choose().unwrap())).or_default() += 1;
            }
            for (i, &w) in weights.iter().enumerate() {
                let got = counts.get(&i).copied().unwrap_or(0);
                prop_assert!((i64::from(got) - i64::from(k * w)).abs() <= 1, "host {} w {} got {}", i, w, got);
            }
        }
    }
}
