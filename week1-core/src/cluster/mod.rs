//! Clusters: hosts, health, priorities, load balancing and circuit breakers.
//!
//! This module mirrors Envoy's `source/common/upstream` and
//! `source/extensions/load_balancing_policies`. Data flows one way, from the
//! main thread (which owns membership and health) to the workers (which pick):
//!
//! ```text
//!  main thread                                          worker threads
//!  ───────────                                          ──────────────
//!  Host (atomics: health flags, rq_active)  ◄──────────── rq_active += 1 per request
//!    │  health checker / outlier detector set flags
//!    ▼
//!  PrioritySet snapshot (HostSet per priority:
//!    healthy / degraded / excluded, per locality)
//!    ▼
//!  LoadBalancerFactory (priority load, panic,      ──►  factory.create(rng)
//!    zone routing plan, ring / Maglev tables)           Box<dyn LoadBalancer>: choose_host()
//!                                                        ▼
//!  ClusterCircuitBreakers (atomic counters)        ◄──  try_acquire() → ResourceGuard (RAII)
//! ```
//!
//! - [`host`]: [`Host`], [`HealthFlags`], [`HostHealth`], [`Locality`].
//! - [`host_set`]: [`HostSet`], [`PrioritySet`] snapshots.
//! - [`priority`]: priority load, overprovisioning, panic mode.
//! - [`zone_aware`]: host-list selection (panic, locality-weighted, zone-aware).
//! - [`edf`]: the earliest-deadline-first scheduler behind weighted round robin.
//! - [`lb`]: the [`LoadBalancer`] trait, [`LoadBalancerContext`], config types
//!   and [`LoadBalancerFactory`]; algorithms in [`round_robin`],
//!   [`least_request`], [`random`], [`ring_hash`] and [`maglev`].
//! - The request hash that ring hash and Maglev consume comes from the route's
//!   `hash_policy`, computed by the router ([`crate::router::HashPolicy`]).
//! - [`health_checker`]: the active health-check state machine (flags and
//!   next check time per result); [`outlier`]: outlier detection (per-host
//!   monitors workers report into, the main thread's ejection policy).
//! - [`circuit_breaker`]: [`ResourceManager`] and [`ResourceGuard`].
//!
//! ```
//! use std::sync::Arc;
//! use week1_core::cluster::{Host, HealthFlags, LbConfig, LbPolicy, LoadBalancerFactory, PrioritySet};
//!
//! let hosts: Vec<_> = (1..=3)
//!     .map(|i| Host::builder(format!("10.0.0.{i}:8080").parse().unwrap()).weight(i).build().unwrap())
//!     .collect();
//! let snapshot = Arc::new(PrioritySet::builder().hosts(hosts.clone()).build()?);
//! let factory = LoadBalancerFactory::new(&LbConfig::new(LbPolicy::RoundRobin), snapshot, None)?;
//! let mut lb = factory.create_seeded(42); // one per worker
//! assert!(lb.choose().is_some());
//!
//! // The health checker marks a host down; the main thread re-snapshots and
//! // workers rebuild from the new factory.
//! hosts[2].set_health_flags(HealthFlags::FAILED_ACTIVE_HC);
//! let snapshot = Arc::new(factory.priority_set().rebuild());
//! let factory = LoadBalancerFactory::new(&LbConfig::new(LbPolicy::RoundRobin), snapshot, None)?;
//! let mut lb = factory.create_seeded(42);
//! for _ in 0..10 {
//!     assert_ne!(lb.choose().unwrap().address(), hosts[2].address());
//! }
//! # Ok::<(), week1_core::cluster::ClusterError>(())
//! ```

pub mod circuit_breaker;
pub mod edf;
pub mod health_checker;
pub mod host;
pub mod host_set;
pub mod info;
pub mod lb;
pub mod least_request;
pub mod maglev;
pub mod outlier;
pub mod priority;
pub mod random;
pub mod ring_hash;
pub mod round_robin;
#[cfg(test)]
mod testing;
mod thread_aware;
pub mod zone_aware;

pub use circuit_breaker::{
    CircuitBreakerThresholds, ClusterCircuitBreakers, Resource, ResourceGuard, ResourceKind,
    ResourceManager, ResourceOverflow, RetryBudget, RoutingPriority,
};
pub use host::{ActiveRequest, HealthFlags, Host, HostBuilder, HostHealth, HostStats, Locality};
pub use host_set::{HostSet, HostsPerLocality, PrioritySet, PrioritySetBuilder};
pub use info::{ClusterInfo, priority_set_from_assignment, system_resolver};
pub use lb::{
    CommonLbConfig, LbConfig, LbPolicy, LeastRequestConfig, LoadBalancer, LoadBalancerContext,
    LoadBalancerFactory, LocalityBasis, LocalityLbConfig, MaglevConfig, NoContext, RingHashConfig,
    ZoneAwareLbConfig,
};
pub use maglev::MaglevTable;
pub use priority::{HostAvailability, PriorityLoad, PriorityState};
pub use ring_hash::Ring;
pub use thread_aware::NormalizedHosts;
pub use zone_aware::{HostsSource, LocalityRouting};

/// Every way building cluster state can be refused. Nothing in this module
/// panics on input; it returns one of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClusterError {
    /// `load_balancing_weight` outside Envoy's 1..=128.
    #[error("host weight {weight} out of range (1..=128)")]
    InvalidHostWeight {
        /// The rejected weight.
        weight: u32,
    },
    /// A locality `load_balancing_weight` of 0.
    #[error("locality {locality}: load_balancing_weight must be at least 1")]
    InvalidLocalityWeight {
        /// The locality, as `region/zone/sub_zone`.
        locality: String,
    },
    /// A priority above [`host_set::MAX_PRIORITY`].
    #[error("priority {priority} too high (at most {max})")]
    PriorityTooHigh {
        /// The rejected priority.
        priority: u32,
        /// The limit.
        max: u32,
    },
    /// `overprovisioning_factor` of 0.
    #[error("overprovisioning_factor must be greater than 0")]
    InvalidOverprovisioningFactor,
    /// A percentage above 100.
    #[error("{field}: {value}% is not a percentage (0..=100)")]
    InvalidPercent {
        /// The config field.
        field: &'static str,
        /// The rejected value.
        value: u32,
    },
    /// Ring sizes not satisfying `1 <= minimum <= maximum <= 8M`.
    #[error(
        "ring_hash_lb_config: minimum_ring_size {minimum} / maximum_ring_size {maximum} invalid (need 1 <= minimum <= maximum <= 8388608)"
    )]
    InvalidRingSize {
        /// `minimum_ring_size`.
        minimum: u64,
        /// `maximum_ring_size`.
        maximum: u64,
    },
    /// A Maglev table size that is not prime.
    #[error("maglev_lb_config.table_size {size} is not a prime number")]
    MaglevTableNotPrime {
        /// The rejected size.
        size: u64,
    },
    /// A Maglev table size above Envoy's limit.
    #[error("maglev_lb_config.table_size {size} too large (at most {max})")]
    MaglevTableTooLarge {
        /// The rejected size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// `least_request_lb_config.choice_count` below 2.
    #[error("least_request_lb_config.choice_count {choice_count} must be at least 2")]
    InvalidChoiceCount {
        /// The rejected count.
        choice_count: u32,
    },
    /// A negative or non-finite `active_request_bias`.
    #[error("least_request_lb_config.active_request_bias {bias} must be a finite number >= 0")]
    InvalidActiveRequestBias {
        /// The rejected bias.
        bias: f64,
    },
    /// A local cluster (for zone-aware routing) with more than one priority.
    #[error("the local cluster has {levels} priority levels; zone-aware routing needs exactly one")]
    LocalClusterHasPriorities {
        /// Levels found.
        levels: usize,
    },
}
