//! # Per-thread randomness
//!
//! Envoy's `Random::RandomGenerator`: routing (weighted clusters, runtime
//! fractions), load balancing, retry jitter and request ids all draw random
//! numbers on the request path. Each thread owns a fast generator seeded from
//! the OS, so drawing takes no lock and no system call.

use std::cell::RefCell;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

/// A random `u64` from this thread's generator.
pub fn next_u64() -> u64 {
    RNG.with(|r| r.borrow_mut().random())
}

/// A generator for a new per-worker object (a load balancer), seeded from
/// this thread's generator.
pub fn small_rng() -> SmallRng {
    SmallRng::seed_from_u64(next_u64())
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_differ() {
        let draws: std::collections::HashSet<u64> = (0..100).map(|_| super::next_u64()).collect();
        assert!(draws.len() > 95);
    }
}
