//! Random: Envoy's `RandomLoadBalancer`, made weight-aware.
//!
//! The zone-aware base picks the host list; this module draws one host from it
//! uniformly, or, when weights differ, with probability `weight / Σweights`
//! (a binary search over cumulative weights). Envoy's RANDOM ignores weights;
//! we honour them because a weight is an operator's statement of capacity.

use std::sync::Arc;

use rand::rngs::SmallRng;

use super::host::Host;
use super::round_robin::weights_equal;
use super::zone_aware::{SourcePicker, random_index};

/// Random state of one host list.
#[derive(Debug)]
pub(crate) enum RandomState {
    /// Equal weights: uniform.
    Unweighted,
    /// Different weights: running sums of weights.
    Weighted { cumulative: Vec<u64> },
}

/// The random [`SourcePicker`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RandomPicker;

impl SourcePicker for RandomPicker {
    type State = RandomState;

    fn new_state(&self, hosts: &[Arc<Host>], _rng: &mut SmallRng) -> RandomState {
        if weights_equal(hosts) {
            return RandomState::Unweighted;
        }
        let mut acc = 0;
        let cumulative = hosts
            .iter()
            .map(|h| {
                acc += u64::from(h.weight());
                acc
            })
            .collect();
        RandomState::Weighted { cumulative }
    }

    fn pick(&self, state: &mut RandomState, hosts: &[Arc<Host>], rng: &mut SmallRng) -> usize {
        match state {
            RandomState::Unweighted => random_index(rng, hosts.len()),
            RandomState::Weighted { cumulative } => {
                let total = cumulative.last().copied().unwrap_or(0);
                let r = random_index(rng, total as usize) as u64;
                cumulative.partition_point(|&c| c <= r)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::host::HealthFlags;
    use super::super::lb::{LbConfig, LbPolicy, LoadBalancer};
    use super::*;
    use crate::cluster::testing::{hosts, index_of, seeded_lb};

    fn lb(hosts: &[Arc<Host>], seed: u64) -> Box<dyn LoadBalancer> {
        seeded_lb(&LbConfig::new(LbPolicy::Random), hosts, seed)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Each host's share of 20,000 picks is within 2.5 percentage points of
        /// `weight / Σweights` (over 7 standard deviations for any share).
        #[test]
        fn picks_follow_weights(weights in prop::collection::vec(1u32..=128, 1..8), seed: u64) {
            let hs = hosts(&weights);
            let mut lb = lb(&hs, seed);
            let n = 20_000;
            let mut counts = vec![0u32; hs.len()];
            for _ in 0..n {
                counts[index_of(&hs, &lb.choose().unwrap())] += 1;
            }
            let total: u32 = weights.iter().sum();
            for (i, &w) in weights.iter().enumerate() {
                let want = f64::from(w) / f64::from(total);
                let got = f64::from(counts[i]) / f64::from(n);
                prop_assert!((want - got).abs() < 0.025, "host {} want {} got {}", i, want, got);
            }
        }

        /// Unhealthy hosts never get picked unless the level is in panic, and
        /// in panic every host can be picked.
        #[test]
        fn unhealthy_skipped_unless_panic(n in 2usize..12, down in prop::collection::vec(any::<bool>(), 12), seed: u64) {
            let hs = hosts(&vec![1; n]);
            for (h, &d) in hs.iter().zip(&down) {
                if d {
                    h.set_health_flags(HealthFlags::FAILED_ACTIVE_HC);
                }
            }
            let healthy = hs.iter().filter(|h| h.unhealthy_reasons().is_empty()).count();
            let mut lb = lb(&hs, seed);
            let panic = (healthy as f64) / (n as f64) < 0.5;
            let mut seen = vec![false; n];
            for _ in 0..200 * n {
                let h = lb.choose().unwrap();
                prop_assert!(panic || h.unhealthy_reasons().is_empty());
                seen[index_of(&hs, &h)] = true;
            }
            if panic {
                prop_assert!(seen.iter().all(|&s| s), "panic mode reaches every host");
            }
        }
    }
}
