//! Upstream hosts: Envoy's `Upstream::Host`.
//!
//! A [`Host`] is one endpoint of a cluster (an `lb_endpoint` in Envoy's config):
//! an address, a weight, a [`Locality`] and a priority, plus two kinds of
//! mutable state that many threads touch at once:
//!
//! - **health flags** ([`HealthFlags`]), written by the main thread (active health
//!   checker, outlier detector, EDS) and read by anyone. [`Host::health`] folds
//!   them into Envoy's coarse [`HostHealth`] (healthy / degraded / unhealthy);
//!   [`Host::health_flags`] keeps the reasons.
//! - **stats** ([`HostStats`]): active requests and connections, which the least
//!   request load balancer reads on every pick.
//!
//! Both live in atomics, so a `Arc<Host>` is shared by every worker and nothing on
//! the pick path takes a lock. Changing a flag does **not** by itself move
//! traffic: as in Envoy, the main thread then rebuilds the cluster's
//! [`PrioritySet`](super::PrioritySet) snapshot (which re-partitions hosts into
//! healthy / degraded / unhealthy lists) and workers rebuild their load balancers
//! from it.
//!
//! ```text
//!  health checker ─┐ set/clear flags            ┌─► worker 1 LB ─► pick ─► rq_active += 1
//!  outlier detect ─┼──────────► Arc<Host> ◄─────┼─► worker 2 LB ─► pick ─► rq_active += 1
//!  EDS update ─────┘  (atomics)                 └─► ...
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::ops::{BitOr, BitOrAssign};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::ClusterError;
use super::outlier::OutlierMonitor;

/// Smallest endpoint weight Envoy accepts (`load_balancing_weight`).
pub const MIN_HOST_WEIGHT: u32 = 1;
/// Largest endpoint weight Envoy accepts (`load_balancing_weight`).
pub const MAX_HOST_WEIGHT: u32 = 128;

/// Where a host runs: Envoy's `core.v3.Locality`. Empty strings mean "unset".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locality {
    /// Cloud region, e.g. `us-east-1`.
    pub region: String,
    /// Availability zone within the region, e.g. `us-east-1a`.
    pub zone: String,
    /// Finer subdivision within the zone (rack, cell).
    pub sub_zone: String,
}

impl Locality {
    /// A locality from its three parts.
    pub fn new(
        region: impl Into<String>,
        zone: impl Into<String>,
        sub_zone: impl Into<String>,
    ) -> Self {
        Self { region: region.into(), zone: zone.into(), sub_zone: sub_zone.into() }
    }

    /// True when no part is set.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty() && self.zone.is_empty() && self.sub_zone.is_empty()
    }
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.region, self.zone, self.sub_zone)
    }
}

/// Envoy's `Host::HealthFlag` bit set: *why* a host is not fully healthy.
///
/// Several flags can be set at once (a host can fail active health checking and
/// be outlier-ejected); the host is healthy again only when every unhealthy flag
/// is cleared.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HealthFlags(u32);

impl HealthFlags {
    /// Failing active health checks.
    pub const FAILED_ACTIVE_HC: Self = Self(0x1);
    /// Ejected by outlier detection.
    pub const FAILED_OUTLIER_CHECK: Self = Self(0x2);
    /// Marked `UNHEALTHY` (or `TIMEOUT`, `UNKNOWN`-as-unhealthy) by EDS.
    pub const FAILED_EDS_HEALTH: Self = Self(0x4);
    /// Active health check answered "degraded" (`x-envoy-degraded`).
    pub const DEGRADED_ACTIVE_HC: Self = Self(0x8);
    /// Marked `DEGRADED` by EDS.
    pub const DEGRADED_EDS_HEALTH: Self = Self(0x10);
    /// Removed by discovery but kept while active health checking still passes.
    pub const PENDING_DYNAMIC_REMOVAL: Self = Self(0x20);
    /// Waiting for its first active health check; excluded from priority and
    /// panic arithmetic.
    pub const PENDING_ACTIVE_HC: Self = Self(0x40);
    /// Taken out of rotation by an immediate health-check failure
    /// (`x-envoy-immediate-health-check-fail`); excluded like `PENDING_ACTIVE_HC`.
    pub const EXCLUDED_VIA_IMMEDIATE_HC_FAIL: Self = Self(0x80);
    /// The last active health check failed by timing out.
    pub const ACTIVE_HC_TIMEOUT: Self = Self(0x100);
    /// Marked `DRAINING` by EDS.
    pub const EDS_STATUS_DRAINING: Self = Self(0x200);

    /// Flags that make a host unhealthy (Envoy's `coarseHealth`).
    pub const UNHEALTHY_MASK: Self = Self(0x1 | 0x2 | 0x4 | 0x200);
    /// Flags that make an otherwise healthy host degraded.
    pub const DEGRADED_MASK: Self = Self(0x8 | 0x10);
    /// Flags that exclude a host from priority-load and panic arithmetic.
    pub const EXCLUDED_MASK: Self = Self(0x40 | 0x80);

    const NAMES: [(Self, &'static str); 10] = [
        (Self::FAILED_ACTIVE_HC, "FAILED_ACTIVE_HC"),
        (Self::FAILED_OUTLIER_CHECK, "FAILED_OUTLIER_CHECK"),
        (Self::FAILED_EDS_HEALTH, "FAILED_EDS_HEALTH"),
        (Self::DEGRADED_ACTIVE_HC, "DEGRADED_ACTIVE_HC"),
        (Self::DEGRADED_EDS_HEALTH, "DEGRADED_EDS_HEALTH"),
        (Self::PENDING_DYNAMIC_REMOVAL, "PENDING_DYNAMIC_REMOVAL"),
        (Self::PENDING_ACTIVE_HC, "PENDING_ACTIVE_HC"),
        (Self::EXCLUDED_VIA_IMMEDIATE_HC_FAIL, "EXCLUDED_VIA_IMMEDIATE_HC_FAIL"),
        (Self::ACTIVE_HC_TIMEOUT, "ACTIVE_HC_TIMEOUT"),
        (Self::EDS_STATUS_DRAINING, "EDS_STATUS_DRAINING"),
    ];

    /// No flag set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from raw bits; unknown bits are dropped.
    pub const fn from_bits_truncate(bits: u32) -> Self {
        Self(bits & 0x3ff)
    }

    /// True when no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when any flag of `other` is set.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The flags of `self` that are also in `mask`.
    pub const fn intersection(self, mask: Self) -> Self {
        Self(self.0 & mask.0)
    }

    /// The set flags with their Envoy names, in bit order.
    pub fn iter(self) -> impl Iterator<Item = (Self, &'static str)> {
        Self::NAMES.into_iter().filter(move |(f, _)| self.contains(*f))
    }
}

impl BitOr for HealthFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for HealthFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for HealthFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("HealthFlags(empty)");
        }
        f.write_str("HealthFlags(")?;
        for (i, (_, name)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
        }
        f.write_str(")")
    }
}

/// Envoy's coarse host health (`Host::Health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostHealth {
    /// Takes traffic.
    Healthy,
    /// Takes traffic only when not enough healthy hosts are left.
    Degraded,
    /// Takes traffic only in panic mode.
    Unhealthy,
}

impl HostHealth {
    /// Folds flags into a coarse health: any unhealthy flag wins, then any
    /// degraded flag; pending flags alone leave a host healthy.
    pub const fn from_flags(flags: HealthFlags) -> Self {
        if flags.intersects(HealthFlags::UNHEALTHY_MASK) {
            HostHealth::Unhealthy
        } else if flags.intersects(HealthFlags::DEGRADED_MASK) {
            HostHealth::Degraded
        } else {
            HostHealth::Healthy
        }
    }
}

/// Per-host counters (a subset of Envoy's host stats), all relaxed atomics.
#[derive(Debug, Default)]
pub struct HostStats {
    /// Requests in flight (`rq_active`); the least request LB reads this.
    pub rq_active: AtomicU64,
    /// Requests started (`rq_total`).
    pub rq_total: AtomicU64,
    /// Requests that completed with a 5xx or reset (`rq_error`).
    pub rq_error: AtomicU64,
    /// Requests that completed without error (`rq_success`).
    pub rq_success: AtomicU64,
    /// Requests that timed out, route or per-try timeout (`rq_timeout`).
    pub rq_timeout: AtomicU64,
    /// Open connections (`cx_active`).
    pub cx_active: AtomicU64,
    /// Connections opened (`cx_total`).
    pub cx_total: AtomicU64,
    /// Connection attempts that failed (`cx_connect_fail`).
    pub cx_connect_fail: AtomicU64,
}

impl HostStats {
    /// Current `rq_active`.
    pub fn rq_active(&self) -> u64 {
        self.rq_active.load(Ordering::Relaxed)
    }

    /// Current `cx_active`.
    pub fn cx_active(&self) -> u64 {
        self.cx_active.load(Ordering::Relaxed)
    }
}

/// One upstream endpoint, shared as `Arc<Host>` by the main thread and every worker.
pub struct Host {
    address: SocketAddr,
    hostname: String,
    /// `address` as text (`10.0.0.1:80`, `[::1]:80`): the key ring hash and
    /// Maglev hash, like Envoy's `address()->asString()`.
    hash_key: String,
    weight: AtomicU32,
    locality: Locality,
    priority: u32,
    health_flags: AtomicU32,
    stats: HostStats,
    outlier: OutlierMonitor,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("address", &self.address)
            .field("hostname", &self.hostname)
            .field("weight", &self.weight())
            .field("locality", &self.locality)
            .field("priority", &self.priority)
            .field("health_flags", &self.health_flags())
            .finish()
    }
}

/// Builds a [`Host`]; see [`Host::builder`].
#[derive(Debug, Clone)]
pub struct HostBuilder {
    address: SocketAddr,
    hostname: String,
    weight: u32,
    locality: Locality,
    priority: u32,
    health_flags: HealthFlags,
}

impl HostBuilder {
    /// Hostname (used for `auto_host_rewrite` and logging). Defaults to empty.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    /// Load-balancing weight, 1..=128. Defaults to 1.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Locality. Defaults to the empty locality.
    pub fn locality(mut self, locality: Locality) -> Self {
        self.locality = locality;
        self
    }

    /// Priority level (0 is highest). Defaults to 0.
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    /// Initial health flags (e.g. `FAILED_ACTIVE_HC | PENDING_ACTIVE_HC` for a
    /// host added to a cluster with active health checking). Defaults to none.
    pub fn health_flags(mut self, flags: HealthFlags) -> Self {
        self.health_flags = flags;
        self
    }

    /// Validates and builds the shared host.
    pub fn build(self) -> Result<Arc<Host>, ClusterError> {
        validate_weight(self.weight)?;
        Ok(Arc::new(Host {
            address: self.address,
            hostname: self.hostname,
            hash_key: self.address.to_string(),
            weight: AtomicU32::new(self.weight),
            locality: self.locality,
            priority: self.priority,
            health_flags: AtomicU32::new(self.health_flags.bits()),
            stats: HostStats::default(),
            outlier: OutlierMonitor::default(),
        }))
    }
}

fn validate_weight(weight: u32) -> Result<(), ClusterError> {
    if (MIN_HOST_WEIGHT..=MAX_HOST_WEIGHT).contains(&weight) {
        Ok(())
    } else {
        Err(ClusterError::InvalidHostWeight { weight })
    }
}

impl Host {
    /// Starts building a host at `address` (weight 1, priority 0, healthy).
    pub fn builder(address: SocketAddr) -> HostBuilder {
        HostBuilder {
            address,
            hostname: String::new(),
            weight: 1,
            locality: Locality::default(),
            priority: 0,
            health_flags: HealthFlags::empty(),
        }
    }

    /// The endpoint address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The configured hostname (may be empty).
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The string ring hash and Maglev hash for this host.
    pub fn hash_key(&self) -> &str {
        &self.hash_key
    }

    /// Current load-balancing weight.
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Changes the weight (EDS update in place). Load balancers see it after
    /// the next rebuild from a fresh snapshot.
    pub fn set_weight(&self, weight: u32) -> Result<(), ClusterError> {
        validate_weight(weight)?;
        self.weight.store(weight, Ordering::Relaxed);
        Ok(())
    }

    /// The host's locality.
    pub fn locality(&self) -> &Locality {
        &self.locality
    }

    /// The host's priority level.
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// Counters.
    pub fn stats(&self) -> &HostStats {
        &self.stats
    }

    /// The outlier detector's consecutive-error counters, which workers
    /// report upstream results into.
    pub fn outlier(&self) -> &OutlierMonitor {
        &self.outlier
    }

    /// Every health flag currently set.
    pub fn health_flags(&self) -> HealthFlags {
        HealthFlags(self.health_flags.load(Ordering::Acquire))
    }

    /// Sets `flags` (main thread: health checker, outlier detector, EDS).
    /// Returns the flags as they were before.
    pub fn set_health_flags(&self, flags: HealthFlags) -> HealthFlags {
        HealthFlags(self.health_flags.fetch_or(flags.bits(), Ordering::AcqRel))
    }

    /// Clears `flags`. Returns the flags as they were before.
    pub fn clear_health_flags(&self, flags: HealthFlags) -> HealthFlags {
        HealthFlags(self.health_flags.fetch_and(!flags.bits(), Ordering::AcqRel))
    }

    /// Coarse health derived from the flags.
    pub fn health(&self) -> HostHealth {
        HostHealth::from_flags(self.health_flags())
    }

    /// The flags that make this host unhealthy (empty when it is not).
    pub fn unhealthy_reasons(&self) -> HealthFlags {
        self.health_flags().intersection(HealthFlags::UNHEALTHY_MASK)
    }

    /// The flags that make this host degraded (empty when it is not).
    pub fn degraded_reasons(&self) -> HealthFlags {
        self.health_flags().intersection(HealthFlags::DEGRADED_MASK)
    }

    /// True when the host is left out of priority and panic arithmetic
    /// (`PENDING_ACTIVE_HC` or `EXCLUDED_VIA_IMMEDIATE_HC_FAIL`).
    pub fn is_excluded(&self) -> bool {
        self.health_flags().intersects(HealthFlags::EXCLUDED_MASK)
    }

    /// Records the start of a request: `rq_active` and `rq_total` go up, and
    /// `rq_active` goes down again when the returned guard drops.
    pub fn start_request(self: &Arc<Self>) -> ActiveRequest {
        self.stats.rq_total.fetch_add(1, Ordering::Relaxed);
        self.stats.rq_active.fetch_add(1, Ordering::Relaxed);
        ActiveRequest { host: Arc::clone(self) }
    }
}

/// An in-flight request on a host; decrements `rq_active` on drop.
#[derive(Debug)]
#[must_use = "dropping the guard ends the request at once"]
pub struct ActiveRequest {
    host: Arc<Host>,
}

impl ActiveRequest {
    /// The host serving the request.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.host.stats.rq_active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Arc<Host> {
        Host::builder("10.0.0.1:80".parse().unwrap()).build().unwrap()
    }

    #[test]
    fn weight_is_validated() {
        let addr: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert_eq!(
            Host::builder(addr).weight(0).build().unwrap_err(),
            ClusterError::InvalidHostWeight { weight: 0 }
        );
        assert_eq!(
            Host::builder(addr).weight(129).build().unwrap_err(),
            ClusterError::InvalidHostWeight { weight: 129 }
        );
        let h = Host::builder(addr).weight(128).build().unwrap();
        assert_eq!(h.weight(), 128);
        assert!(h.set_weight(0).is_err());
        assert_eq!(h.weight(), 128);
        h.set_weight(7).unwrap();
        assert_eq!(h.weight(), 7);
    }

    #[test]
    fn health_folds_flags_like_envoy() {
        let h = host();
        assert_eq!(h.health(), HostHealth::Healthy);
        h.set_health_flags(HealthFlags::PENDING_ACTIVE_HC);
        assert_eq!(h.health(), HostHealth::Healthy, "pending alone is not unhealthy");
        assert!(h.is_excluded());
        h.clear_health_flags(HealthFlags::PENDING_ACTIVE_HC);
        h.set_health_flags(HealthFlags::DEGRADED_EDS_HEALTH);
        assert_eq!(h.health(), HostHealth::Degraded);
        assert_eq!(h.degraded_reasons(), HealthFlags::DEGRADED_EDS_HEALTH);
        h.set_health_flags(HealthFlags::FAILED_OUTLIER_CHECK | HealthFlags::FAILED_ACTIVE_HC);
        assert_eq!(h.health(), HostHealth::Unhealthy, "unhealthy wins over degraded");
        assert_eq!(
            h.unhealthy_reasons(),
            HealthFlags::FAILED_ACTIVE_HC | HealthFlags::FAILED_OUTLIER_CHECK
        );
        let names: Vec<_> = h.unhealthy_reasons().iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["FAILED_ACTIVE_HC", "FAILED_OUTLIER_CHECK"]);
        h.clear_health_flags(HealthFlags::FAILED_ACTIVE_HC);
        assert_eq!(h.health(), HostHealth::Unhealthy, "still outlier-ejected");
        h.clear_health_flags(HealthFlags::FAILED_OUTLIER_CHECK);
        assert_eq!(h.health(), HostHealth::Degraded);
        h.set_health_flags(HealthFlags::EDS_STATUS_DRAINING);
        assert_eq!(h.health(), HostHealth::Unhealthy);
        assert_eq!(
            format!("{:?}", h.health_flags()),
            "HealthFlags(DEGRADED_EDS_HEALTH | EDS_STATUS_DRAINING)"
        );
    }

    #[test]
    fn hash_key_is_envoy_address_string() {
        assert_eq!(host().hash_key(), "10.0.0.1:80");
        let v6 = Host::builder("[::1]:8080".parse().unwrap()).build().unwrap();
        assert_eq!(v6.hash_key(), "[::1]:8080");
    }

    #[test]
    fn active_request_guard_counts() {
        let h = host();
        let a = h.start_request();
        let b = h.start_request();
        assert_eq!(h.stats().rq_active(), 2);
        drop(a);
        assert_eq!(h.stats().rq_active(), 1);
        assert!(Arc::ptr_eq(b.host(), &h));
        drop(b);
        assert_eq!(h.stats().rq_active(), 0);
        assert_eq!(h.stats().rq_total.load(Ordering::Relaxed), 2);
    }
}
