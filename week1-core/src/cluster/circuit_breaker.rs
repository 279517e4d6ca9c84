//! Circuit breakers: Envoy's `ResourceManager`.
//!
//! Each cluster has one resource manager per routing priority (`DEFAULT` and
//! `HIGH`), and each manager counts five resources against a maximum:
//!
//! | resource               | default max | acquired by                         |
//! |------------------------|-------------|-------------------------------------|
//! | `max_connections`      | 1024        | connection pool, per upstream conn  |
//! | `max_pending_requests` | 1024        | a request waiting for a connection  |
//! | `max_requests`         | 1024        | a request in flight                 |
//! | `max_retries`          | 3           | a retry, from its scheduling to its |
//! |                        |             | outcome (backoff and the attempt)   |
//! | `max_connection_pools` | unlimited   | a connection pool                   |
//!
//! [`Resource::try_acquire`] is an atomic compare-and-increment that succeeds
//! only below the maximum and returns a [`ResourceGuard`]; dropping the guard
//! releases the slot. Because release is tied to `Drop`, an early return or a
//! `?` can never leak a slot. Overflow is an error value ([`ResourceOverflow`]),
//! which the router turns into a 503 with `x-envoy-overloaded` and the
//! `upstream_rq_pending_overflow` (etc.) stat.
//!
//! A `retry_budget` replaces `max_retries` (Envoy's `RetryBudgetImpl`): the
//! limit on retries becomes a share of the requests active or pending right now,
//! recomputed each time a retry asks ([`ResourceManager::try_acquire_retry`]).
//!
//! [`Resource::is_open`] is Envoy's `circuit_breakers.<priority>.<rq>_open`
//! gauge (1 when the count has reached the max) and [`Resource::remaining`] its
//! `remaining_<rq>` gauge.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Routing priority of a request (the route's `priority`): the config's
/// `envoy.config.core.v3.RoutingPriority`, one type from YAML to breaker.
pub use crate::config::types::RoutingPriority;

/// One priority's `circuit_breakers.thresholds` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakerThresholds {
    /// `max_connections`; default 1024.
    pub max_connections: u64,
    /// `max_pending_requests`; default 1024.
    pub max_pending_requests: u64,
    /// `max_requests`; default 1024.
    pub max_requests: u64,
    /// `max_retries`; default 3.
    pub max_retries: u64,
    /// `max_connection_pools`; default unlimited (`None`).
    pub max_connection_pools: Option<u64>,
}

impl Default for CircuitBreakerThresholds {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            max_connection_pools: None,
        }
    }
}

/// `circuit_breakers.thresholds[].retry_budget`: when set, it replaces
/// `max_retries` for its priority (Envoy's `RetryBudgetImpl`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// Retries allowed as a percentage of active plus pending requests (default 20).
    pub budget_percent: f64,
    /// Retries always allowed, whatever the budget (default 3).
    pub min_retry_concurrency: u32,
}

impl RetryBudget {
    /// The retry limit for `active_and_pending` requests in flight:
    /// `max(budget_percent% × active_and_pending, min_retry_concurrency)`.
    pub fn max_retries(&self, active_and_pending: u64) -> u64 {
        let budget = (self.budget_percent / 100.0 * active_and_pending as f64) as u64;
        budget.max(u64::from(self.min_retry_concurrency))
    }
}

/// Which resource a counter limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// Upstream connections (`cx`).
    Connections,
    /// Requests waiting for a connection (`rq_pending`).
    PendingRequests,
    /// Requests in flight (`rq`).
    Requests,
    /// Retries in flight (`rq_retry`).
    Retries,
    /// Connection pools (`cx_pool`).
    ConnectionPools,
}

impl ResourceKind {
    /// Envoy's stat name fragment (`cx_open`, `rq_pending_open`, ...).
    pub fn stat_name(self) -> &'static str {
        match self {
            Self::Connections => "cx",
            Self::PendingRequests => "rq_pending",
            Self::Requests => "rq",
            Self::Retries => "rq_retry",
            Self::ConnectionPools => "cx_pool",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connections => "max_connections",
            Self::PendingRequests => "max_pending_requests",
            Self::Requests => "max_requests",
            Self::Retries => "max_retries",
            Self::ConnectionPools => "max_connection_pools",
        })
    }
}

/// A circuit breaker tripped: the resource is at its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open: {kind} ({max}) reached")]
pub struct ResourceOverflow {
    /// The exhausted resource.
    pub kind: ResourceKind,
    /// Its maximum at the time.
    pub max: u64,
}

/// One counted resource with a maximum. Shared as `Arc<Resource>` by all workers.
#[derive(Debug)]
pub struct Resource {
    kind: ResourceKind,
    max: AtomicU64,
    count: AtomicU64,
}

impl Resource {
    /// A resource with `max` slots (`u64::MAX` for unlimited).
    pub fn new(kind: ResourceKind, max: u64) -> Arc<Self> {
        Arc::new(Self { kind, max: AtomicU64::new(max), count: AtomicU64::new(0) })
    }

    // ANCHOR: resource_guard
    /// Takes one slot if one is free. The slot is released when the returned
    /// guard drops, on every path.
    pub fn try_acquire(self: &Arc<Self>) -> Result<ResourceGuard, ResourceOverflow> {
        let max = self.max.load(Ordering::Relaxed);
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| (c < max).then_some(c + 1))
            .map_err(|_| ResourceOverflow { kind: self.kind, max })?;
        Ok(ResourceGuard { resource: Arc::clone(self) })
    }
    // ANCHOR_END: resource_guard

    /// Which resource this is.
    pub fn kind(&self) -> ResourceKind {
        self.kind
    }

    /// Slots in use.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Current maximum.
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// Changes the maximum (runtime override). Slots already held stay held;
    /// if the count now exceeds the maximum, new acquisitions fail until it
    /// drops below.
    pub fn set_max(&self, max: u64) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// `max - count`, saturating (Envoy's `remaining_*` gauge).
    pub fn remaining(&self) -> u64 {
        self.max().saturating_sub(self.count())
    }

    /// True when the count has reached the maximum (Envoy's `*_open` gauge).
    pub fn is_open(&self) -> bool {
        self.count() >= self.max()
    }

    /// True when a slot is free right now (Envoy's `canCreate`); another
    /// thread may take it before you do, so prefer [`try_acquire`](Self::try_acquire).
    pub fn can_create(&self) -> bool {
        !self.is_open()
    }
}

/// A held slot of a [`Resource`]; releases it on drop.
#[derive(Debug)]
#[must_use = "dropping the guard releases the slot at once"]
pub struct ResourceGuard {
    resource: Arc<Resource>,
}

impl ResourceGuard {
    /// The resource this slot belongs to.
    pub fn resource(&self) -> &Arc<Resource> {
        &self.resource
    }
}

// ANCHOR: resource_guard_drop
impl Drop for ResourceGuard {
    fn drop(&mut self) {
        self.resource.count.fetch_sub(1, Ordering::AcqRel);
    }
}
// ANCHOR_END: resource_guard_drop

/// The five resources of one routing priority.
#[derive(Debug, Clone)]
pub struct ResourceManager {
    connections: Arc<Resource>,
    pending_requests: Arc<Resource>,
    requests: Arc<Resource>,
    retries: Arc<Resource>,
    connection_pools: Arc<Resource>,
    retry_budget: Option<RetryBudget>,
}

impl ResourceManager {
    /// A manager with the given maxima.
    pub fn new(t: &CircuitBreakerThresholds) -> Self {
        Self {
            retry_budget: None,
            connections: Resource::new(ResourceKind::Connections, t.max_connections),
            pending_requests: Resource::new(ResourceKind::PendingRequests, t.max_pending_requests),
            requests: Resource::new(ResourceKind::Requests, t.max_requests),
            retries: Resource::new(ResourceKind::Retries, t.max_retries),
            connection_pools: Resource::new(
                ResourceKind::ConnectionPools,
                t.max_connection_pools.unwrap_or(u64::MAX),
            ),
        }
    }

    /// The counter for `kind`.
    pub fn resource(&self, kind: ResourceKind) -> &Arc<Resource> {
        match kind {
            ResourceKind::Connections => &self.connections,
            ResourceKind::PendingRequests => &self.pending_requests,
            ResourceKind::Requests => &self.requests,
            ResourceKind::Retries => &self.retries,
            ResourceKind::ConnectionPools => &self.connection_pools,
        }
    }

    /// Upstream connections.
    pub fn connections(&self) -> &Arc<Resource> {
        &self.connections
    }

    /// Requests waiting for a connection.
    pub fn pending_requests(&self) -> &Arc<Resource> {
        &self.pending_requests
    }

    /// Requests in flight.
    pub fn requests(&self) -> &Arc<Resource> {
        &self.requests
    }

    /// Retries in flight.
    pub fn retries(&self) -> &Arc<Resource> {
        &self.retries
    }

    /// Connection pools.
    pub fn connection_pools(&self) -> &Arc<Resource> {
        &self.connection_pools
    }

    /// This manager with `budget` in place of `max_retries`.
    pub fn with_retry_budget(mut self, budget: Option<RetryBudget>) -> Self {
        self.retry_budget = budget;
        self
    }

    /// The retry budget, if one replaces `max_retries`.
    pub fn retry_budget(&self) -> Option<&RetryBudget> {
        self.retry_budget.as_ref()
    }

    // ANCHOR: try_acquire_retry
    /// A slot for one retry (Envoy's `retries().canCreate()` then `inc()`), held
    /// from the retry's scheduling until its outcome is known. With a retry
    /// budget the limit is first recomputed from the requests active and pending
    /// now, so it follows the load.
    pub fn try_acquire_retry(&self) -> Result<ResourceGuard, ResourceOverflow> {
        if let Some(budget) = &self.retry_budget {
            let in_flight = self.requests.count() + self.pending_requests.count();
            self.retries.set_max(budget.max_retries(in_flight));
        }
        self.retries.try_acquire()
    }
    // ANCHOR_END: try_acquire_retry
}

/// A cluster's circuit breakers for both routing priorities.
#[derive(Debug, Clone)]
pub struct ClusterCircuitBreakers {
    default: ResourceManager,
    high: ResourceManager,
}

impl Default for ClusterCircuitBreakers {
    fn default() -> Self {
        Self::new(&CircuitBreakerThresholds::default(), &CircuitBreakerThresholds::default())
    }
}

impl ClusterCircuitBreakers {
    /// Breakers from the `DEFAULT` and `HIGH` thresholds (Envoy uses the same
    /// defaults for both when a priority is not listed).
    pub fn new(default: &CircuitBreakerThresholds, high: &CircuitBreakerThresholds) -> Self {
        Self::from_managers(ResourceManager::new(default), ResourceManager::new(high))
    }

    /// Breakers from one manager per priority (e.g. with retry budgets).
    pub fn from_managers(default: ResourceManager, high: ResourceManager) -> Self {
        Self { default, high }
    }

    /// The manager for `priority`.
    pub fn for_priority(&self, priority: RoutingPriority) -> &ResourceManager {
        match priority {
            RoutingPriority::Default => &self.default,
            RoutingPriority::High => &self.high,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn retries_are_bounded_by_max_retries_or_by_a_budget_that_follows_load() {
        let fixed = ResourceManager::new(&CircuitBreakerThresholds {
            max_retries: 1,
            ..Default::default()
        });
        let held = fixed.try_acquire_retry().unwrap();
        assert_eq!(fixed.try_acquire_retry().unwrap_err().kind, ResourceKind::Retries);
        drop(held);
        assert!(fixed.try_acquire_retry().is_ok(), "the slot returns with its guard");

        let budget = RetryBudget { budget_percent: 25.0, min_retry_concurrency: 1 };
        let m = ResourceManager::new(&CircuitBreakerThresholds::default())
            .with_retry_budget(Some(budget));
        // No requests in flight: the floor, min_retry_concurrency.
        let first = m.try_acquire_retry().unwrap();
        assert!(m.try_acquire_retry().is_err());
        // Eight requests active or pending: 25% of them.
        let load: Vec<_> = (0..6).map(|_| m.requests().try_acquire().unwrap()).collect();
        let pending: Vec<_> = (0..2).map(|_| m.pending_requests().try_acquire().unwrap()).collect();
        let second = m.try_acquire_retry().unwrap();
        assert_eq!(m.retries().max(), 2);
        assert!(m.try_acquire_retry().is_err());
        drop((load, pending, first, second));
        assert!(m.try_acquire_retry().is_ok());
        assert_eq!(m.retries().max(), 1, "the limit falls with the load");
    }

    #[test]
    fn defaults_are_envoys() {
        let cb = ClusterCircuitBreakers::default();
        let m = cb.for_priority(RoutingPriority::Default);
        assert_eq!(m.connections().max(), 1024);
        assert_eq!(m.pending_requests().max(), 1024);
        assert_eq!(m.requests().max(), 1024);
        assert_eq!(m.retries().max(), 3);
        assert_eq!(m.connection_pools().max(), u64::MAX);
    }

    #[test]
    fn overflow_then_release() {
        let r = Resource::new(ResourceKind::Retries, 2);
        let a = r.try_acquire().unwrap();
        assert_eq!((r.count(), r.remaining(), r.is_open()), (1, 1, false));
        let b = r.try_acquire().unwrap();
        assert!(r.is_open());
        assert!(!r.can_create());
        let err = r.try_acquire().unwrap_err();
        assert_eq!(err, ResourceOverflow { kind: ResourceKind::Retries, max: 2 });
        assert_eq!(err.to_string(), "circuit breaker open: max_retries (2) reached");
        assert_eq!(r.count(), 2, "a failed acquire takes nothing");
        drop(a);
        assert!(!r.is_open());
        let _c = r.try_acquire().unwrap();
        drop(b);
        assert_eq!(r.count(), 1);
    }

    #[test]
    fn zero_max_never_admits_and_set_max_applies() {
        let r = Resource::new(ResourceKind::Connections, 0);
        assert!(r.is_open());
        assert!(r.try_acquire().is_err());
        r.set_max(1);
        let g = r.try_acquire().unwrap();
        r.set_max(0);
        assert_eq!(r.remaining(), 0);
        assert!(r.try_acquire().is_err());
        drop(g);
        assert_eq!(r.count(), 0);
    }

    fn handler(r: &Arc<Resource>, fail: bool) -> Result<u32, &'static str> {
        let _slot = r.try_acquire().map_err(|_| "overflow")?;
        if fail {
            return Err("upstream reset"); // early return: the guard still releases
        }
        Ok(200)
    }

    #[test]
    fn early_return_does_not_leak() {
        let r = Resource::new(ResourceKind::Requests, 1);
        for i in 0..10 {
            let _ = handler(&r, i % 2 == 0);
        }
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn guards_across_threads() {
        let r = Resource::new(ResourceKind::Requests, 8);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        if let Ok(g) = r.try_acquire() {
                            assert!(r.count() <= 8);
                            drop(g);
                        }
                    }
                });
            }
        });
        assert_eq!(r.count(), 0);
    }

    proptest! {
        /// Random acquire/drop sequences: the count always equals the guards
        /// alive, never exceeds the max, and returns to 0 when all drop.
        #[test]
        fn guards_never_leak(max in 0u64..6, ops in prop::collection::vec(any::<(bool, prop::sample::Index)>(), 0..200)) {
            let r = Resource::new(ResourceKind::PendingRequests, max);
            let mut held = Vec::new();
            for (acquire, which) in ops {
                if acquire {
                    match r.try_acquire() {
                        Ok(g) => held.push(g),
                        Err(e) => prop_assert_eq!(held.len() as u64, e.max),
                    }
                } else if !held.is_empty() {
                    drop(held.swap_remove(which.index(held.len())));
                }
                prop_assert_eq!(r.count(), held.len() as u64);
                prop_assert!(r.count() <= max);
                prop_assert_eq!(r.is_open(), held.len() as u64 >= max);
            }
            drop(held);
            prop_assert_eq!(r.count(), 0);
        }
    }
}
