//! Checks of `wrr`, against week 1's own EDF scheduler.

use std::sync::Arc;

use week1_core::cluster::edf::EdfScheduler;
use week1_core::cluster::{HealthFlags, Host, LoadBalancer, LoadBalancerContext};

use super::week1::wrr::WeightedRoundRobin;

fn hosts(weights: &[u32]) -> Vec<Arc<Host>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            Host::builder(format!("10.0.0.{}:80", i + 1).parse().unwrap())
                .weight(w)
                .build()
                .unwrap()
        })
        .collect()
}

fn index_of(hosts: &[Arc<Host>], h: &Arc<Host>) -> usize {
    hosts.iter().position(|x| Arc::ptr_eq(x, h)).expect("a host of the cluster")
}

/// The sequence week 1's `EdfScheduler` produces for `weights`.
fn edf_sequence(weights: &[u32], picks: usize) -> Vec<usize> {
    let mut edf = EdfScheduler::new();
    for (i, &w) in weights.iter().enumerate() {
        edf.add(f64::from(w), i);
    }
    (0..picks).map(|_| edf.pick_and_add(|&i| f64::from(weights[i])).unwrap()).collect()
}

fn picks(weights: &[u32], n: usize) -> Vec<usize> {
    let hs = hosts(weights);
    let mut lb = WeightedRoundRobin::new(hs.clone());
    (0..n).map(|_| index_of(&hs, &lb.choose().expect("a host"))).collect()
}

/// Rejects one address, up to `retries` times.
struct Avoid {
    address: std::net::SocketAddr,
    retries: u32,
}

impl LoadBalancerContext for Avoid {
    fn should_select_another_host(&self, host: &Host) -> bool {
        host.address() == self.address
    }
    fn host_selection_retry_count(&self) -> u32 {
        self.retries
    }
}

checks! {
    fn picks_5_1_1_smoothly() {
        assert_eq!(picks(&[5, 1, 1], 7), vec![0, 0, 0, 0, 1, 2, 0]);
    }

    fn follows_envoys_edf_order() {
        for weights in [&[3, 2, 7, 1][..], &[1, 1, 1], &[10, 1], &[2, 3, 5, 7, 11]] {
            let total: u32 = weights.iter().sum();
            let n = 3 * total as usize;
            assert_eq!(picks(weights, n), edf_sequence(weights, n), "weights {weights:?}");
        }
    }

    fn each_host_gets_its_weight_per_period() {
        let weights = [4, 1, 3];
        let got = picks(&weights, 8 * 5);
        for (i, &w) in weights.iter().enumerate() {
            assert_eq!(got.iter().filter(|&&x| x == i).count(), 5 * w as usize, "host {i}");
        }
    }

    fn skips_unhealthy_hosts_and_handles_empty() {
        let hs = hosts(&[1, 1, 1]);
        hs[1].set_health_flags(HealthFlags::FAILED_ACTIVE_HC);
        let mut lb = WeightedRoundRobin::new(hs.clone());
        for _ in 0..6 {
            assert_ne!(index_of(&hs, &lb.choose().unwrap()), 1);
        }
        let mut empty = WeightedRoundRobin::new(Vec::new());
        assert!(empty.choose().is_none());
        hs[0].set_health_flags(HealthFlags::FAILED_OUTLIER_CHECK);
        hs[2].set_health_flags(HealthFlags::FAILED_EDS_HEALTH);
        assert!(WeightedRoundRobin::new(hs).choose().is_none());
    }

    fn retries_a_rejected_host_within_the_budget() {
        let hs = hosts(&[1, 1]);
        let mut lb = WeightedRoundRobin::new(hs.clone());
        let mut ctx = Avoid { address: hs[0].address(), retries: 1 };
        // The first pick is hosts[0]: rejected, so the balancer moves on.
        assert_eq!(index_of(&hs, &lb.choose_host(&mut ctx).unwrap()), 1);
        // No retry budget: the rejected host comes back anyway.
        let mut lb = WeightedRoundRobin::new(hs.clone());
        let mut ctx = Avoid { address: hs[0].address(), retries: 0 };
        assert_eq!(index_of(&hs, &lb.choose_host(&mut ctx).unwrap()), 0);
    }
}
