//! # Exercise `circuit_breaker`: a resource limit with an RAII guard (week 1, day 6)
//!
//! Envoy's circuit breakers (`max_connections`, `max_pending_requests`,
//! `max_requests`, `max_retries`) are counters shared by every worker: a
//! request takes one unit before it goes upstream and gives it back when it
//! ends; when the counter is at its max the request fails fast (503 `UO`)
//! instead of piling onto an overloaded cluster.
//!
//! ## Task
//!
//! Implement [`Resource`] and [`ResourceGuard`]:
//!
//! - [`Resource::try_acquire`] takes one unit if `count < max` and returns a
//!   guard; otherwise `None`. Workers call it concurrently: the count must
//!   never exceed `max`, even for an instant (use an atomic and a
//!   compare-exchange loop, not a load followed by a store).
//! - Dropping the guard gives the unit back: the count can never leak, even
//!   when the request ends by an early return or a panic.
//! - [`Resource::count`] and [`Resource::remaining`] report the state.
//!
//! Run `cargo run -p exercises -- verify circuit_breaker`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One limited resource of a cluster.
#[derive(Debug)]
pub struct Resource {
    max: u64,
    count: AtomicU64,
}

/// One unit of a [`Resource`], given back on drop.
#[derive(Debug)]
pub struct ResourceGuard {
    resource: Arc<Resource>,
}

impl Resource {
    /// A resource admitting at most `max` units at once.
    pub fn new(max: u64) -> Arc<Self> {
        todo!()
    }

    /// Takes one unit, or `None` when the resource is full.
    pub fn try_acquire(self: &Arc<Self>) -> Option<ResourceGuard> {
        todo!()
    }

    /// Units taken now.
    pub fn count(&self) -> u64 {
        todo!()
    }

    /// Units still available.
    pub fn remaining(&self) -> u64 {
        todo!()
    }
}

impl Drop for ResourceGuard {
    fn drop(&mut self) {
        // TODO: give the unit back. (No todo!() here: a panic in `drop` while a
        // failed check unwinds would abort the runner.)
    }
}
