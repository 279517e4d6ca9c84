//! Reference solution of `circuit_breaker`: a compare-exchange admit and an
//! RAII release, as in `week1_core::cluster::circuit_breaker`.

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
        Arc::new(Self { max, count: AtomicU64::new(0) })
    }

    /// Takes one unit, or `None` when the resource is full.
    pub fn try_acquire(self: &Arc<Self>) -> Option<ResourceGuard> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| (c < self.max).then_some(c + 1))
            .ok()?;
        Some(ResourceGuard { resource: Arc::clone(self) })
    }

    /// Units taken now.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Units still available.
    pub fn remaining(&self) -> u64 {
        self.max.saturating_sub(self.count())
    }
}

impl Drop for ResourceGuard {
    fn drop(&mut self) {
        self.resource.count.fetch_sub(1, Ordering::AcqRel);
    }
}
