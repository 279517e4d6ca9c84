//! Helpers shared by the load balancers' unit tests: hosts with given weights, a
//! seeded load balancer over them, and Envoy's key hash.

use std::sync::Arc;

use xxhash_rust::xxh64::xxh64;

use super::host::Host;
use super::host_set::PrioritySet;
use super::lb::{LbConfig, LoadBalancer, LoadBalancerFactory};

/// One priority-0 host per weight, at distinct addresses `10.0.x.y:80`.
pub(crate) fn hosts(weights: &[u32]) -> Vec<Arc<Host>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            Host::builder(format!("10.0.{}.{}:80", i / 250, i % 250).parse().unwrap())
                .weight(w)
                .build()
                .unwrap()
        })
        .collect()
}

/// A load balancer of `config` over `hosts`, with a seeded random source.
pub(crate) fn seeded_lb(
    config: &LbConfig,
    hosts: &[Arc<Host>],
    seed: u64,
) -> Box<dyn LoadBalancer> {
    let ps = PrioritySet::builder().hosts(hosts.iter().cloned()).build().unwrap();
    LoadBalancerFactory::new(config, Arc::new(ps), None).unwrap().create_seeded(seed)
}

/// The position of `host` in `hosts`, by identity.
pub(crate) fn index_of(hosts: &[Arc<Host>], host: &Arc<Host>) -> usize {
    hosts.iter().position(|x| Arc::ptr_eq(x, host)).unwrap()
}

/// A request key hashed as Envoy hashes (xxHash64, seed 0).
pub(crate) fn key_hash(key: u64) -> u64 {
    xxh64(&key.to_le_bytes(), 0)
}
