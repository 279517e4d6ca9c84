//! Least request: Envoy's `LeastRequestLoadBalancer`.
//!
//! Reads each host's `rq_active` counter (an atomic the request path bumps via
//! [`Host::start_request`]) and prefers idle hosts, without scanning them all:
//!
//! - all weights equal: **power of N choices** (`choice_count`, default 2):
//!   sample N hosts at random (with replacement) and take the one with the
//!   fewest active requests; ties keep the earlier sample. Two choices already
//!   give an exponentially better max load than one random choice.
//! - weights differ: the EDF scheduler of weighted round robin, where a host's
//!   weight is recomputed each time it is re-added as
//!   `weight / (rq_active + 1) ^ active_request_bias` (bias 1.0 by default; 0.0
//!   makes it plain weighted round robin).
//!
//! The counters are read with relaxed loads: another worker may change them
//! between read and pick, which only makes a pick slightly stale, as in Envoy.

use std::sync::Arc;

use rand::rngs::SmallRng;

use super::edf::EdfScheduler;
use super::host::Host;
use super::lb::LeastRequestConfig;
use super::round_robin::{edf_for, weights_equal};
use super::zone_aware::{SourcePicker, random_index};

/// Least-request state of one host list.
#[derive(Debug)]
pub(crate) enum LrState {
    /// Equal weights: power of N choices, no state.
    Unweighted,
    /// Different weights: EDF with dynamic weights.
    Weighted(EdfScheduler<u32>),
}

/// The least-request [`SourcePicker`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeastRequest {
    choice_count: u32,
    bias: f64,
}

impl LeastRequest {
    pub(crate) fn new(cfg: &LeastRequestConfig) -> Self {
        Self { choice_count: cfg.choice_count.max(2), bias: cfg.active_request_bias }
    }

    /// `weight / (active + 1)^bias`, Envoy's `hostWeight`.
    pub(crate) fn host_weight(&self, host: &Host) -> f64 {
        let weight = f64::from(host.weight());
        let active = host.stats().rq_active().saturating_add(1) as f64;
        if self.bias == 0.0 {
            weight
        } else if self.bias == 1.0 {
            weight / active
        } else {
            weight / active.powf(self.bias)
        }
    }
}

impl SourcePicker for LeastRequest {
    type State = LrState;

    fn new_state(&self, hosts: &[Arc<Host>], rng: &mut SmallRng) -> LrState {
        if weights_equal(hosts) {
            LrState::Unweighted
        } else {
            LrState::Weighted(edf_for(hosts, rng, |h| self.host_weight(h)))
        }
    }

    // ANCHOR: p2c_pick
    fn pick(&self, state: &mut LrState, hosts: &[Arc<Host>], rng: &mut SmallRng) -> usize {
        match state {
            LrState::Unweighted => {
                let mut best = random_index(rng, hosts.len());
                let mut best_active = hosts[best].stats().rq_active();
                for _ in 1..self.choice_count {
                    let i = random_index(rng, hosts.len());
                    let active = hosts[i].stats().rq_active();
                    if active < best_active {
                        (best, best_active) = (i, active);
                    }
                }
                best
            }
            LrState::Weighted(edf) => edf
                .pick_and_add(|&i| self.host_weight(&hosts[i as usize]))
                .map_or(0, |i| i as usize),
        }
    }
    // ANCHOR_END: p2c_pick
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::super::lb::{LbConfig, LbPolicy, LoadBalancer};
    use super::*;
    use crate::cluster::testing::{hosts, index_of, seeded_lb};

    fn lb_with(hosts: &[Arc<Host>], cfg: LeastRequestConfig, seed: u64) -> Box<dyn LoadBalancer> {
        let mut c = LbConfig::new(LbPolicy::LeastRequest);
        c.least_request = cfg;
        seeded_lb(&c, hosts, seed)
    }

    #[test]
    fn two_choices_never_pick_the_busier_of_two() {
        let hs = hosts(&[1, 1]);
        let _busy: Vec<_> = (0..5).map(|_| hs[0].start_request()).collect();
        let mut lb = lb_with(&hs, LeastRequestConfig::default(), 4);
        // With 2 hosts, host 0 only wins when both samples are host 0: ~25%.
        let n = 4000;
        let zero = (0..n).filter(|_| index_of(&hs, &lb.choose().unwrap()) == 0).count();
        assert!((800..1200).contains(&zero), "{zero}");
    }

    #[test]
    fn more_choices_find_the_idle_host() {
        let hs = hosts(&[1; 10]);
        let _busy: Vec<_> = hs[1..].iter().map(|h| h.start_request()).collect();
        let cfg = LeastRequestConfig { choice_count: 10, active_request_bias: 1.0 };
        let mut lb = lb_with(&hs, cfg, 5);
        let n = 2000;
        let idle = (0..n).filter(|_| index_of(&hs, &lb.choose().unwrap()) == 0).count();
        // P(miss host 0 in 10 samples) = 0.9^10 = 35%: expect ~65% picks.
        assert!((1150..1450).contains(&idle), "{idle}");
    }

    #[test]
    fn weighted_uses_active_request_bias() {
        let hs = hosts(&[2, 1]);
        // Host 0: weight 2 with 3 active -> 2/4 = 0.5; host 1: 1/1 = 1.0.
        let _busy: Vec<_> = (0..3).map(|_| hs[0].start_request()).collect();
        let lr = LeastRequest::new(&LeastRequestConfig::default());
        assert_eq!(lr.host_weight(&hs[0]), 0.5);
        assert_eq!(lr.host_weight(&hs[1]), 1.0);
        let sq =
            LeastRequest::new(&LeastRequestConfig { choice_count: 2, active_request_bias: 2.0 });
        assert_eq!(sq.host_weight(&hs[0]), 2.0 / 16.0);
        let flat =
            LeastRequest::new(&LeastRequestConfig { choice_count: 2, active_request_bias: 0.0 });
        assert_eq!(flat.host_weight(&hs[0]), 2.0);

        let mut lb = lb_with(&hs, LeastRequestConfig::default(), 6);
        let n = 3000;
        let zero = (0..n).filter(|_| index_of(&hs, &lb.choose().unwrap()) == 0).count();
        // Dynamic weights 0.5 vs 1.0: host 0 gets about a third.
        assert!((900..1100).contains(&zero), "{zero}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// With no load, weighted least request is weighted round robin: exact
        /// shares over k full cycles, to within one pick.
        #[test]
        fn idle_weighted_picks_follow_weights(weights in prop::collection::vec(1u32..=64, 2..8), seed: u64) {
            prop_assume!(!weights.windows(2).all(|w| w[0] == w[1]));
            let hs = hosts(&weights);
            let mut lb = lb_with(&hs, LeastRequestConfig::default(), seed);
            let total: u32 = weights.iter().sum();
            let mut counts: HashMap<usize, u32> = HashMap::new();
            for _ in 0..2 * total {
                *counts.entry(index_of(&hs, &lb.choose().unwrap())).or_default() += 1;
            }
            for (i, &w) in weights.iter().enumerate() {
                let got = counts.get(&i).copied().unwrap_or(0);
                prop_assert!((i64::from(got) - i64::from(2 * w)).abs() <= 1, "host {} w {} got {}", i, w, got);
            }
        }

        /// Equal weights, no load: P2C is uniform. Each of n hosts gets 1/n of
        /// 400n picks within 25% relative (over 5 standard deviations).
        #[test]
        fn idle_unweighted_picks_are_uniform(n in 2usize..10, seed: u64) {
            let hs = hosts(&vec![1; n]);
            let mut lb = lb_with(&hs, LeastRequestConfig::default(), seed);
            let mut counts = vec![0u32; n];
            for _ in 0..400 * n {
                counts[index_of(&hs, &lb.choose().unwrap())] += 1;
            }
            for c in counts {
                prop_assert!((300..=500).contains(&c), "{}", c);
            }
        }
    }
}
