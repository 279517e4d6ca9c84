//! Passive health checking: Envoy's outlier detection (`Outlier::DetectorImpl`
//! and `DetectorHostMonitorImpl`), without the I/O.
//!
//! Two halves, as in Envoy:
//!
//! - Every [`Host`] carries an [`OutlierMonitor`] of atomic counters. Workers
//!   report each upstream result into it ([`OutlierMonitor::put_http_status`],
//!   [`OutlierMonitor::put_result`]) without a lock; when a counter reaches
//!   its threshold the monitor records a pending ejection and returns `true`,
//!   so the worker can wake the main thread.
//! - The main thread owns one [`OutlierDetector`] per cluster. It takes the
//!   pending ejections ([`OutlierDetector::collect`]), applies
//!   `max_ejection_percent` and the `enforcing_*` chances, sets
//!   `FAILED_OUTLIER_CHECK`, and on every `interval` sweep
//!   ([`OutlierDetector::on_interval`]) returns hosts whose ejection time —
//!   `base_ejection_time` × ejections so far, capped by `max_ejection_time`,
//!   plus jitter — has passed.
//!
//! ```text
//!  worker: response 5xx ─► host.outlier().put_http_status() ─► threshold? ─► wake main
//!  main:   collect() ─► eject: FAILED_OUTLIER_CHECK ─► rebuild + publish
//!          interval ─► on_interval(now) ─► uneject, success-rate / failure-% ejections ─► publish
//! ```
//!
//! Each monitor also counts the requests and successes of the current
//! `interval` in one packed atomic per origin (external: HTTP statuses;
//! local: connect results, with `split_external_local_origin_errors`). Every
//! sweep takes these buckets and runs Envoy's two statistical analyses
//! ([`OutlierDetector::on_interval`]): success rate (eject hosts below
//! `mean - success_rate_stdev_factor/1000 × stdev` of the hosts with
//! `success_rate_request_volume` requests, when at least
//! `success_rate_minimum_hosts` have them) and failure percentage (eject hosts
//! failing at least `failure_percentage_threshold` percent, with
//! `failure_percentage_request_volume` requests and
//! `failure_percentage_minimum_hosts` such hosts).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::host::{HealthFlags, Host};
use crate::config::cluster::OutlierDetection;

/// Why a host is ejected (Envoy's `OutlierEjectionType`, the ones run here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EjectionKind {
    /// `consecutive_5xx` errors in a row.
    Consecutive5xx,
    /// `consecutive_gateway_failure` 502/503/504s in a row.
    ConsecutiveGatewayFailure,
    /// `consecutive_local_origin_failure` connect failures or timeouts in a
    /// row (with `split_external_local_origin_errors`).
    ConsecutiveLocalOriginFailure,
    /// Success rate below the cluster's ejection threshold.
    SuccessRate,
    /// Failure percentage at or above `failure_percentage_threshold`.
    FailurePercentage,
    /// Local-origin success rate below its threshold (split mode).
    LocalOriginSuccessRate,
    /// Local-origin failure percentage at or above the threshold (split mode).
    LocalOriginFailurePercentage,
}

impl EjectionKind {
    /// Every kind, in stats order.
    pub const ALL: [Self; 7] = [
        Self::Consecutive5xx,
        Self::ConsecutiveGatewayFailure,
        Self::ConsecutiveLocalOriginFailure,
        Self::SuccessRate,
        Self::FailurePercentage,
        Self::LocalOriginSuccessRate,
        Self::LocalOriginFailurePercentage,
    ];

    fn bit(self) -> u32 {
        1 << self as u32
    }

    /// Envoy's stat suffix (`ejections_enforced_<suffix>`).
    pub fn stat_suffix(self) -> &'static str {
        match self {
            Self::Consecutive5xx => "consecutive_5xx",
            Self::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Self::ConsecutiveLocalOriginFailure => "consecutive_local_origin_failure",
            Self::SuccessRate => "success_rate",
            Self::FailurePercentage => "failure_percentage",
            Self::LocalOriginSuccessRate => "local_origin_success_rate",
            Self::LocalOriginFailurePercentage => "local_origin_failure_percentage",
        }
    }
}

/// Where an error came from (Envoy's `SuccessRateMonitorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// HTTP statuses from the upstream (all results unless split).
    External,
    /// Connect failures and timeouts, with `split_external_local_origin_errors`.
    Local,
}

/// A result the router saw that is not an HTTP status (Envoy's `Outlier::Result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamResult {
    /// The connection was established (a request follows; no verdict yet).
    ConnectSuccess,
    /// Connecting failed, or the upstream reset before answering.
    ConnectFailed,
    /// The upstream did not answer in time.
    Timeout,
    /// The request completed well.
    Success,
}

// ANCHOR: outlier_policy
/// An `OutlierDetection`'s settings, with Envoy's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierPolicy {
    /// 5xx in a row before ejection.
    pub consecutive_5xx: u32,
    /// 502/503/504 in a row before ejection.
    pub consecutive_gateway_failure: u32,
    /// Local-origin failures in a row before ejection (split mode only).
    pub consecutive_local_origin_failure: u32,
    /// Chance, percent, that a consecutive-5xx ejection is enforced.
    pub enforcing_consecutive_5xx: u32,
    /// Chance, percent, that a gateway-failure ejection is enforced.
    pub enforcing_consecutive_gateway_failure: u32,
    /// Chance, percent, that a local-origin ejection is enforced.
    pub enforcing_consecutive_local_origin_failure: u32,
    /// Count connect failures and timeouts apart from HTTP statuses.
    pub split_external_local_origin_errors: bool,
    /// Time between sweeps that return ejected hosts.
    pub interval: Duration,
    /// Ejection time per ejection so far.
    pub base_ejection_time: Duration,
    /// Longest ejection time.
    pub max_ejection_time: Duration,
    /// Random extra ejection time, at most this.
    pub max_ejection_time_jitter: Duration,
    /// Most hosts ejected at once, percent of the cluster.
    pub max_ejection_percent: u32,
    /// Eject one host even when `max_ejection_percent` forbids it.
    pub always_eject_one_host: bool,
    /// A passing active health check returns an ejected host.
    pub successful_active_health_check_uneject_host: bool,
    /// Hosts with enough requests needed to run the success-rate analysis.
    pub success_rate_minimum_hosts: u32,
    /// Requests in an interval for a host to count in the success-rate analysis.
    pub success_rate_request_volume: u32,
    /// The ejection threshold is `mean - stdev × success_rate_stdev_factor / 1000`.
    pub success_rate_stdev_factor: u32,
    /// Chance, percent, that a success-rate ejection is enforced.
    pub enforcing_success_rate: u32,
    /// Same, for the local-origin success rate.
    pub enforcing_local_origin_success_rate: u32,
    /// Failure percentage at which a host is ejected.
    pub failure_percentage_threshold: u32,
    /// Hosts with enough requests needed to run the failure-percentage analysis.
    pub failure_percentage_minimum_hosts: u32,
    /// Requests in an interval for a host to count in it.
    pub failure_percentage_request_volume: u32,
    /// Chance, percent, that a failure-percentage ejection is enforced.
    pub enforcing_failure_percentage: u32,
    /// Same, for the local-origin failure percentage.
    pub enforcing_failure_percentage_local_origin: u32,
}
// ANCHOR_END: outlier_policy

impl OutlierPolicy {
    /// The policy of a validated `OutlierDetection`.
    pub fn from_config(od: &OutlierDetection) -> Self {
        Self {
            consecutive_5xx: od.consecutive_5xx(),
            consecutive_gateway_failure: od.consecutive_gateway_failure(),
            consecutive_local_origin_failure: od.consecutive_local_origin_failure.unwrap_or(5),
            enforcing_consecutive_5xx: od.enforcing_consecutive_5xx(),
            enforcing_consecutive_gateway_failure: od.enforcing_consecutive_gateway_failure(),
            enforcing_consecutive_local_origin_failure: od
                .enforcing_consecutive_local_origin_failure
                .unwrap_or(100),
            split_external_local_origin_errors: od.split_external_local_origin_errors,
            interval: od.interval(),
            base_ejection_time: od.base_ejection_time(),
            max_ejection_time: od.max_ejection_time(),
            max_ejection_time_jitter: od
                .max_ejection_time_jitter
                .map_or(Duration::ZERO, crate::config::types::Duration::get),
            max_ejection_percent: od.max_ejection_percent().min(100),
            always_eject_one_host: od.always_eject_one_host.unwrap_or(false),
            successful_active_health_check_uneject_host: od
                .successful_active_health_check_uneject_host
                .unwrap_or(true),
            success_rate_minimum_hosts: od.success_rate_minimum_hosts.unwrap_or(5),
            success_rate_request_volume: od.success_rate_request_volume.unwrap_or(100),
            success_rate_stdev_factor: od.success_rate_stdev_factor.unwrap_or(1900),
            enforcing_success_rate: od.enforcing_success_rate.unwrap_or(100),
            enforcing_local_origin_success_rate: od
                .enforcing_local_origin_success_rate
                .unwrap_or(100),
            failure_percentage_threshold: od.failure_percentage_threshold.unwrap_or(85),
            failure_percentage_minimum_hosts: od.failure_percentage_minimum_hosts.unwrap_or(5),
            failure_percentage_request_volume: od.failure_percentage_request_volume.unwrap_or(50),
            enforcing_failure_percentage: od.enforcing_failure_percentage.unwrap_or(0),
            enforcing_failure_percentage_local_origin: od
                .enforcing_failure_percentage_local_origin
                .unwrap_or(0),
        }
    }

    fn threshold(&self, kind: EjectionKind) -> u32 {
        match kind {
            EjectionKind::Consecutive5xx => self.consecutive_5xx,
            EjectionKind::ConsecutiveGatewayFailure => self.consecutive_gateway_failure,
            EjectionKind::ConsecutiveLocalOriginFailure => self.consecutive_local_origin_failure,
            _ => 0,
        }
    }

    fn enforcing(&self, kind: EjectionKind) -> u32 {
        match kind {
            EjectionKind::Consecutive5xx => self.enforcing_consecutive_5xx,
            EjectionKind::ConsecutiveGatewayFailure => self.enforcing_consecutive_gateway_failure,
            EjectionKind::ConsecutiveLocalOriginFailure => {
                self.enforcing_consecutive_local_origin_failure
            }
            EjectionKind::SuccessRate => self.enforcing_success_rate,
            EjectionKind::FailurePercentage => self.enforcing_failure_percentage,
            EjectionKind::LocalOriginSuccessRate => self.enforcing_local_origin_success_rate,
            EjectionKind::LocalOriginFailurePercentage => {
                self.enforcing_failure_percentage_local_origin
            }
        }
    }
}

/// One request in an interval bucket: the low half counts requests.
const ONE_REQUEST: u64 = 1;
/// One success: the high half counts successes (and the request).
const ONE_SUCCESS: u64 = (1 << 32) | 1;
/// `success_rate` before (or without) an analysis, as Envoy prints it.
const NOT_COMPUTED: f64 = -1.0;

// ANCHOR: monitor
/// A host's consecutive-error counters and this interval's request and
/// success counts, written by every worker without a lock.
#[derive(Debug)]
pub struct OutlierMonitor {
    consecutive_5xx: AtomicU32,
    consecutive_gateway_failure: AtomicU32,
    consecutive_local_origin_failure: AtomicU32,
    /// [`EjectionKind`] bits whose threshold was reached, for the main thread.
    pending: AtomicU32,
    /// This interval's `successes << 32 | requests`, per [`Origin`]: one
    /// atomic, so the sweep takes a consistent pair with one swap.
    buckets: [AtomicU64; 2],
    /// The last analysis' success rate per [`Origin`] (`f64` bits; -1 when
    /// not computed), for `/clusters`.
    success_rate: [AtomicU64; 2],
}

impl Default for OutlierMonitor {
    fn default() -> Self {
        let rate = || AtomicU64::new(NOT_COMPUTED.to_bits());
        Self {
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway_failure: AtomicU32::new(0),
            consecutive_local_origin_failure: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            buckets: [AtomicU64::new(0), AtomicU64::new(0)],
            success_rate: [rate(), rate()],
        }
    }
}

impl OutlierMonitor {
    /// Counts an HTTP response status. Returns `true` when a threshold was
    /// just reached: the main thread should [`OutlierDetector::collect`].
    pub fn put_http_status(&self, policy: &OutlierPolicy, status: u16) -> bool {
        let bucket = &self.buckets[Origin::External as usize];
        if (500..600).contains(&status) {
            bucket.fetch_add(ONE_REQUEST, Ordering::Relaxed);
            let mut reached = false;
            if matches!(status, 502..=504) {
                reached |= self.count(
                    &self.consecutive_gateway_failure,
                    policy,
                    EjectionKind::ConsecutiveGatewayFailure,
                );
            } else {
                // Envoy: another 5xx breaks a run of gateway failures.
                self.consecutive_gateway_failure.store(0, Ordering::Relaxed);
            }
            reached |= self.count(&self.consecutive_5xx, policy, EjectionKind::Consecutive5xx);
            reached
        } else {
            bucket.fetch_add(ONE_SUCCESS, Ordering::Relaxed);
            self.consecutive_5xx.store(0, Ordering::Relaxed);
            self.consecutive_gateway_failure.store(0, Ordering::Relaxed);
            false
        }
    }

    /// The success rate the last analysis computed for `origin`, percent, or
    /// -1 when the host did not take part (Envoy's `/clusters` `success_rate`).
    pub fn success_rate(&self, origin: Origin) -> f64 {
        f64::from_bits(self.success_rate[origin as usize].load(Ordering::Relaxed))
    }

    fn set_success_rate(&self, origin: Origin, rate: f64) {
        self.success_rate[origin as usize].store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Takes this interval's `(requests, successes)` for `origin`, starting a new one.
    fn take_bucket(&self, origin: Origin) -> (u64, u64) {
        let packed = self.buckets[origin as usize].swap(0, Ordering::AcqRel);
        (packed & u64::from(u32::MAX), packed >> 32)
    }

    /// Counts a result that is not a status. Without
    /// `split_external_local_origin_errors` a connect failure counts as a 503
    /// and a timeout as a 504, as in Envoy.
    pub fn put_result(&self, policy: &OutlierPolicy, result: UpstreamResult) -> bool {
        if policy.split_external_local_origin_errors {
            let bucket = &self.buckets[Origin::Local as usize];
            return match result {
                UpstreamResult::ConnectFailed | UpstreamResult::Timeout => {
                    bucket.fetch_add(ONE_REQUEST, Ordering::Relaxed);
                    self.count(
                        &self.consecutive_local_origin_failure,
                        policy,
                        EjectionKind::ConsecutiveLocalOriginFailure,
                    )
                }
                UpstreamResult::ConnectSuccess | UpstreamResult::Success => {
                    bucket.fetch_add(ONE_SUCCESS, Ordering::Relaxed);
                    self.consecutive_local_origin_failure.store(0, Ordering::Relaxed);
                    false
                }
            };
        }
        match result {
            UpstreamResult::ConnectSuccess => false,
            UpstreamResult::ConnectFailed => self.put_http_status(policy, 503),
            UpstreamResult::Timeout => self.put_http_status(policy, 504),
            UpstreamResult::Success => self.put_http_status(policy, 200),
        }
    }

    /// Consecutive 5xx so far.
    pub fn consecutive_5xx(&self) -> u32 {
        self.consecutive_5xx.load(Ordering::Relaxed)
    }

    fn count(&self, counter: &AtomicU32, policy: &OutlierPolicy, kind: EjectionKind) -> bool {
        let threshold = policy.threshold(kind);
        // Exactly at the threshold, so one bout of errors reports once.
        if threshold > 0 && counter.fetch_add(1, Ordering::Relaxed) + 1 == threshold {
            self.pending.fetch_or(kind.bit(), Ordering::AcqRel);
            true
        } else {
            false
        }
    }

    fn take_pending(&self) -> u32 {
        self.pending.swap(0, Ordering::AcqRel)
    }

    fn reset(&self, kind: EjectionKind) {
        match kind {
            EjectionKind::Consecutive5xx => &self.consecutive_5xx,
            EjectionKind::ConsecutiveGatewayFailure => &self.consecutive_gateway_failure,
            EjectionKind::ConsecutiveLocalOriginFailure => &self.consecutive_local_origin_failure,
            _ => return,
        }
        .store(0, Ordering::Relaxed);
    }

    fn reset_all(&self) {
        EjectionKind::ALL.iter().for_each(|k| self.reset(*k));
    }
}
// ANCHOR_END: monitor

/// `cluster.<name>.outlier_detection.*`, as Envoy names them.
#[derive(Debug, Default)]
pub struct OutlierStats {
    /// Hosts ejected now (gauge `ejections_active`).
    pub ejections_active: AtomicU64,
    /// Ejections wanted but refused by `max_ejection_percent` (`ejections_overflow`).
    pub ejections_overflow: AtomicU64,
    /// Ejections enforced, any reason (`ejections_enforced_total`).
    pub ejections_enforced_total: AtomicU64,
    /// Deprecated `ejections_total` (consecutive 5xx ejections allowed by the percentage).
    pub ejections_total: AtomicU64,
    /// Deprecated `ejections_consecutive_5xx`.
    pub ejections_consecutive_5xx: AtomicU64,
    /// Deprecated `ejections_success_rate` (success-rate outliers detected).
    pub ejections_success_rate: AtomicU64,
    /// `ejections_detected_<kind>` per [`EjectionKind`].
    pub detected: [AtomicU64; 7],
    /// `ejections_enforced_<kind>` per [`EjectionKind`].
    pub enforced: [AtomicU64; 7],
}

impl OutlierStats {
    /// `(name, value)` for every stat, without the `cluster.<name>.outlier_detection.` prefix.
    pub fn values(&self) -> Vec<(String, u64)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut v = vec![
            ("ejections_active".to_string(), g(&self.ejections_active)),
            ("ejections_overflow".to_string(), g(&self.ejections_overflow)),
            ("ejections_enforced_total".to_string(), g(&self.ejections_enforced_total)),
            ("ejections_total".to_string(), g(&self.ejections_total)),
            ("ejections_consecutive_5xx".to_string(), g(&self.ejections_consecutive_5xx)),
            ("ejections_success_rate".to_string(), g(&self.ejections_success_rate)),
        ];
        for (i, kind) in EjectionKind::ALL.iter().enumerate() {
            v.push((format!("ejections_detected_{}", kind.stat_suffix()), g(&self.detected[i])));
            v.push((format!("ejections_enforced_{}", kind.stat_suffix()), g(&self.enforced[i])));
        }
        v
    }
}

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// The main thread's record of one host.
#[derive(Debug)]
struct Tracked {
    host: Arc<Host>,
    /// Envoy's `ejectTimeBackoff`: multiplies `base_ejection_time`.
    backoff: u32,
    last_ejection: Option<Instant>,
    last_unejection: Option<Instant>,
    jitter: Duration,
}

// ANCHOR: detector
/// A cluster's outlier detector (main thread).
#[derive(Debug)]
pub struct OutlierDetector {
    policy: OutlierPolicy,
    hosts: Vec<Tracked>,
    stats: Arc<OutlierStats>,
    ejected: u32,
    /// The last success-rate analysis per [`Origin`] (-1 when not run).
    success_rate: [SuccessRateSummary; 2],
}

/// A cluster's last success-rate analysis (Envoy's `/clusters`
/// `outlier::success_rate_average` and `success_rate_ejection_threshold`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuccessRateSummary {
    /// Mean success rate of the hosts with enough requests, percent.
    pub average: f64,
    /// Hosts below this success rate were outliers.
    pub ejection_threshold: f64,
}

impl SuccessRateSummary {
    const NOT_COMPUTED: Self = Self { average: NOT_COMPUTED, ejection_threshold: NOT_COMPUTED };
}

// ANCHOR: success_rate_threshold
/// Envoy's `successRateEjectionThreshold`: `(mean, mean - factor × stdev)` of
/// the hosts' success rates (population standard deviation). For
/// `[50, 100, 100, 100, 100]` and factor 1.9: mean 90, stdev 20, threshold 52.
pub fn success_rate_ejection_threshold(rates: &[f64], stdev_factor: f64) -> SuccessRateSummary {
    if rates.is_empty() {
        return SuccessRateSummary::NOT_COMPUTED;
    }
    let n = rates.len() as f64;
    let mean = rates.iter().sum::<f64>() / n;
    let variance = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    SuccessRateSummary { average: mean, ejection_threshold: mean - stdev_factor * variance.sqrt() }
}
// ANCHOR_END: success_rate_threshold

impl OutlierDetector {
    /// A detector over `hosts`, counting into `stats`.
    pub fn new(policy: OutlierPolicy, hosts: &[Arc<Host>], stats: Arc<OutlierStats>) -> Self {
        let mut d = Self {
            policy,
            hosts: Vec::new(),
            stats,
            ejected: 0,
            success_rate: [SuccessRateSummary::NOT_COMPUTED; 2],
        };
        d.set_hosts(hosts);
        d
    }

    /// The settings.
    pub fn policy(&self) -> &OutlierPolicy {
        &self.policy
    }

    /// The stats.
    pub fn stats(&self) -> &Arc<OutlierStats> {
        &self.stats
    }

    /// Follows a membership change: hosts that stay keep their ejection state.
    pub fn set_hosts(&mut self, hosts: &[Arc<Host>]) {
        let mut old = std::mem::take(&mut self.hosts);
        for host in hosts {
            let kept =
                old.iter().position(|t| Arc::ptr_eq(&t.host, host)).map(|i| old.swap_remove(i));
            self.hosts.push(kept.unwrap_or_else(|| Tracked {
                host: host.clone(),
                backoff: 0,
                last_ejection: None,
                last_unejection: None,
                jitter: Duration::ZERO,
            }));
        }
        self.ejected = self
            .hosts
            .iter()
            .filter(|t| t.host.health_flags().contains(HealthFlags::FAILED_OUTLIER_CHECK))
            .count() as u32;
        self.stats.ejections_active.store(u64::from(self.ejected), Ordering::Relaxed);
    }

    /// Takes the ejections workers asked for and decides them. Returns `true`
    /// when a host was ejected (the cluster must be republished).
    pub fn collect(&mut self, now: Instant, random: &mut dyn FnMut() -> u64) -> bool {
        let mut changed = false;
        for i in 0..self.hosts.len() {
            let pending = self.hosts[i].host.outlier().take_pending();
            for kind in EjectionKind::ALL {
                if pending & kind.bit() != 0 {
                    changed |= self.on_consecutive_error(i, kind, now, random);
                }
            }
        }
        changed
    }

    fn on_consecutive_error(
        &mut self,
        i: usize,
        kind: EjectionKind,
        now: Instant,
        random: &mut dyn FnMut() -> u64,
    ) -> bool {
        let host = self.hosts[i].host.clone();
        if host.health_flags().contains(HealthFlags::FAILED_OUTLIER_CHECK) {
            return false;
        }
        let k = kind as usize;
        inc(&self.stats.detected[k]);
        let ejected = self.eject(i, kind, now, random);
        if kind == EjectionKind::Consecutive5xx {
            inc(&self.stats.ejections_consecutive_5xx);
        }
        host.outlier().reset(kind);
        ejected
    }

    fn eject(
        &mut self,
        i: usize,
        kind: EjectionKind,
        now: Instant,
        random: &mut dyn FnMut() -> u64,
    ) -> bool {
        let total = self.hosts.len().max(1) as f64;
        let percent = 100.0 * f64::from(self.ejected + 1) / total;
        let allowed = percent <= f64::from(self.policy.max_ejection_percent)
            || (self.policy.always_eject_one_host && self.ejected == 0);
        if !allowed {
            inc(&self.stats.ejections_overflow);
            return false;
        }
        if matches!(kind, EjectionKind::Consecutive5xx | EjectionKind::SuccessRate) {
            inc(&self.stats.ejections_total);
        }
        if random() % 100 >= u64::from(self.policy.enforcing(kind)) {
            return false;
        }
        self.ejected += 1;
        self.stats.ejections_active.store(u64::from(self.ejected), Ordering::Relaxed);
        inc(&self.stats.ejections_enforced_total);
        inc(&self.stats.enforced[kind as usize]);
        let (base, max) = (self.policy.base_ejection_time, self.max_time());
        let jitter_ms = self.policy.max_ejection_time_jitter.as_millis() as u64;
        let t = &mut self.hosts[i];
        t.host.set_health_flags(HealthFlags::FAILED_OUTLIER_CHECK);
        t.last_ejection = Some(now);
        if base * t.backoff < max + base {
            t.backoff += 1;
        }
        t.jitter = Duration::from_millis(random() % (jitter_ms + 1));
        true
    }

    fn max_time(&self) -> Duration {
        self.policy.max_ejection_time.max(self.policy.base_ejection_time)
    }

    /// The `interval` sweep: returns hosts whose ejection time has passed,
    /// shortens the backoff of hosts that stayed healthy, then runs the
    /// success-rate and failure-percentage analyses over this interval's
    /// requests (Envoy's `onIntervalTimer`). Returns `true` when a host came
    /// back or was ejected.
    pub fn on_interval(&mut self, now: Instant, random: &mut dyn FnMut() -> u64) -> bool {
        let (base, max) = (self.policy.base_ejection_time, self.max_time());
        let mut changed = false;
        for t in &mut self.hosts {
            if !t.host.health_flags().contains(HealthFlags::FAILED_OUTLIER_CHECK) {
                if t.backoff > 0 && t.last_unejection.is_some_and(|u| now - u >= base) {
                    t.backoff -= 1;
                }
                continue;
            }
            let Some(ejected_at) = t.last_ejection else { continue };
            if (base * t.backoff).min(max) + t.jitter <= now.saturating_duration_since(ejected_at) {
                Self::uneject_tracked(t, now);
                self.ejected = self.ejected.saturating_sub(1);
                changed = true;
            }
        }
        self.stats.ejections_active.store(u64::from(self.ejected), Ordering::Relaxed);
        changed |= self.analyse(Origin::External, now, random);
        // Without the split, local-origin results count as 5xx: no local bucket.
        if self.policy.split_external_local_origin_errors {
            changed |= self.analyse(Origin::Local, now, random);
        }
        changed
    }

    // ANCHOR: analyse
    /// Envoy's `processSuccessRateEjections` for one origin: takes every
    /// host's bucket, then ejects success-rate and failure-percentage outliers
    /// among the hosts not ejected already.
    fn analyse(&mut self, origin: Origin, now: Instant, random: &mut dyn FnMut() -> u64) -> bool {
        let p = &self.policy;
        self.success_rate[origin as usize] = SuccessRateSummary::NOT_COMPUTED;
        // (host index, success rate percent) with enough requests for each analysis.
        let mut for_success_rate = Vec::new();
        let mut for_failure_percentage = Vec::new();
        for (i, t) in self.hosts.iter().enumerate() {
            let monitor = t.host.outlier();
            let (requests, successes) = monitor.take_bucket(origin);
            monitor.set_success_rate(origin, NOT_COMPUTED);
            if requests == 0 || t.host.health_flags().contains(HealthFlags::FAILED_OUTLIER_CHECK) {
                continue;
            }
            let rate = 100.0 * successes as f64 / requests as f64;
            if requests >= u64::from(p.success_rate_request_volume) {
                for_success_rate.push((i, rate));
                monitor.set_success_rate(origin, rate);
            }
            if requests >= u64::from(p.failure_percentage_request_volume) {
                for_failure_percentage.push((i, rate));
            }
        }
        let (sr_kind, fp_kind) = match origin {
            Origin::External => (EjectionKind::SuccessRate, EjectionKind::FailurePercentage),
            Origin::Local => {
                (EjectionKind::LocalOriginSuccessRate, EjectionKind::LocalOriginFailurePercentage)
            }
        };
        let mut outliers = Vec::new();
        if !for_success_rate.is_empty()
            && for_success_rate.len() >= p.success_rate_minimum_hosts as usize
        {
            let rates: Vec<f64> = for_success_rate.iter().map(|(_, r)| *r).collect();
            let factor = f64::from(p.success_rate_stdev_factor) / 1000.0;
            let summary = success_rate_ejection_threshold(&rates, factor);
            self.success_rate[origin as usize] = summary;
            outliers.extend(
                for_success_rate
                    .iter()
                    .filter(|(_, r)| *r < summary.ejection_threshold)
                    .map(|(i, _)| (*i, sr_kind)),
            );
        }
        if !for_failure_percentage.is_empty()
            && for_failure_percentage.len() >= p.failure_percentage_minimum_hosts as usize
        {
            let threshold = f64::from(p.failure_percentage_threshold);
            outliers.extend(
                for_failure_percentage
                    .iter()
                    .filter(|(_, r)| 100.0 - *r >= threshold)
                    .map(|(i, _)| (*i, fp_kind)),
            );
        }
        let mut changed = false;
        for (i, kind) in outliers {
            if self.hosts[i].host.health_flags().contains(HealthFlags::FAILED_OUTLIER_CHECK) {
                continue; // a success-rate ejection already took it
            }
            inc(&self.stats.detected[kind as usize]);
            if kind == EjectionKind::SuccessRate {
                inc(&self.stats.ejections_success_rate);
            }
            changed |= self.eject(i, kind, now, random);
        }
        changed
    }
    // ANCHOR_END: analyse

    /// The last success-rate analysis of `origin` (both -1 when it did not run).
    pub fn success_rate_summary(&self, origin: Origin) -> SuccessRateSummary {
        self.success_rate[origin as usize]
    }

    /// A passing active health check returns an ejected host at once
    /// (`successful_active_health_check_uneject_host`). Returns `true` when it did.
    pub fn on_active_check_success(&mut self, host: &Arc<Host>, now: Instant) -> bool {
        if !self.policy.successful_active_health_check_uneject_host
            || !host.health_flags().contains(HealthFlags::FAILED_OUTLIER_CHECK)
        {
            return false;
        }
        let Some(t) = self.hosts.iter_mut().find(|t| Arc::ptr_eq(&t.host, host)) else {
            return false;
        };
        Self::uneject_tracked(t, now);
        self.ejected = self.ejected.saturating_sub(1);
        self.stats.ejections_active.store(u64::from(self.ejected), Ordering::Relaxed);
        true
    }

    fn uneject_tracked(t: &mut Tracked, now: Instant) {
        t.host.clear_health_flags(HealthFlags::FAILED_OUTLIER_CHECK);
        t.host.outlier().reset_all();
        t.last_unejection = Some(now);
    }

    /// When `host` was last ejected, if ever (for `/clusters`-style reports).
    pub fn last_ejection(&self, host: &Arc<Host>) -> Option<Instant> {
        self.hosts.iter().find(|t| Arc::ptr_eq(&t.host, host)).and_then(|t| t.last_ejection)
    }
}
// ANCHOR_END: detector

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::HostHealth;

    fn policy() -> OutlierPolicy {
        OutlierPolicy::from_config(&OutlierDetection {
            consecutive_5xx: Some(3),
            max_ejection_percent: Some(50),
            base_ejection_time: Some(crate::config::types::Duration::from_secs(10)),
            max_ejection_time: Some(crate::config::types::Duration::from_secs(25)),
            ..OutlierDetection::default()
        })
    }

    fn hosts(n: usize) -> Vec<Arc<Host>> {
        (0..n)
            .map(|i| {
                Host::builder(format!("10.0.0.{}:80", i + 1).parse().unwrap()).build().unwrap()
            })
            .collect()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn defaults_follow_envoy() {
        let p = OutlierPolicy::from_config(&OutlierDetection::default());
        assert_eq!((p.consecutive_5xx, p.consecutive_gateway_failure), (5, 5));
        assert_eq!(
            (p.enforcing_consecutive_5xx, p.enforcing_consecutive_gateway_failure),
            (100, 0)
        );
        assert_eq!(
            (p.interval, p.base_ejection_time, p.max_ejection_time),
            (secs(10), secs(30), secs(300))
        );
        assert_eq!(p.max_ejection_percent, 10);
        assert!(p.successful_active_health_check_uneject_host);
    }

    #[test]
    fn monitor_reports_once_at_the_threshold_and_resets_on_success() {
        let p = policy();
        let m = OutlierMonitor::default();
        assert!(!m.put_http_status(&p, 500));
        assert!(!m.put_http_status(&p, 500));
        assert!(!m.put_http_status(&p, 200), "a success resets the count");
        assert_eq!(m.consecutive_5xx(), 0);
        assert!(!m.put_http_status(&p, 500));
        assert!(!m.put_http_status(&p, 503));
        assert!(m.put_http_status(&p, 500));
        assert!(!m.put_http_status(&p, 500), "reported once per bout");
        assert_eq!(m.take_pending(), EjectionKind::Consecutive5xx.bit());
        assert!(!m.put_http_status(&p, 404), "4xx is not an error");
        assert_eq!(m.consecutive_5xx(), 0);
    }

    #[test]
    fn connect_failures_count_as_503_unless_split() {
        let mut p = policy();
        p.consecutive_gateway_failure = 2;
        let m = OutlierMonitor::default();
        assert!(!m.put_result(&p, UpstreamResult::ConnectFailed));
        assert!(!m.put_result(&p, UpstreamResult::ConnectSuccess), "not a verdict");
        assert!(m.put_result(&p, UpstreamResult::Timeout), "gateway failure threshold");
        assert!(m.put_result(&p, UpstreamResult::ConnectFailed), "and the 5xx threshold");
        assert_eq!(
            m.take_pending(),
            EjectionKind::ConsecutiveGatewayFailure.bit() | EjectionKind::Consecutive5xx.bit()
        );
        p.split_external_local_origin_errors = true;
        p.consecutive_local_origin_failure = 2;
        let m = OutlierMonitor::default();
        assert!(!m.put_result(&p, UpstreamResult::ConnectFailed));
        assert!(!m.put_result(&p, UpstreamResult::ConnectSuccess));
        assert!(!m.put_result(&p, UpstreamResult::ConnectFailed));
        assert!(m.put_result(&p, UpstreamResult::Timeout));
        assert_eq!(m.consecutive_5xx(), 0, "local-origin errors are apart");
    }

    fn fail(host: &Host, p: &OutlierPolicy, n: u32) {
        for _ in 0..n {
            host.outlier().put_http_status(p, 500);
        }
    }

    #[test]
    fn ejects_then_returns_after_growing_capped_times() {
        let p = policy();
        let hs = hosts(2);
        let stats = Arc::new(OutlierStats::default());
        let mut d = OutlierDetector::new(p.clone(), &hs, stats.clone());
        let mut rng = || 0;
        let t0 = Instant::now();
        fail(&hs[0], &p, 3);
        assert!(d.collect(t0, &mut rng));
        assert_eq!(hs[0].health(), HostHealth::Unhealthy);
        assert_eq!(hs[0].health_flags(), HealthFlags::FAILED_OUTLIER_CHECK);
        assert_eq!(stats.ejections_active.load(Ordering::Relaxed), 1);
        assert!(!d.on_interval(t0 + secs(9), &mut rng));
        assert!(d.on_interval(t0 + secs(10), &mut rng), "base_ejection_time x 1");
        assert_eq!(hs[0].health(), HostHealth::Healthy);
        assert_eq!(stats.ejections_active.load(Ordering::Relaxed), 0);

        let t1 = t0 + secs(11);
        fail(&hs[0], &p, 3);
        assert!(d.collect(t1, &mut rng));
        assert!(!d.on_interval(t1 + secs(19), &mut rng));
        assert!(d.on_interval(t1 + secs(20), &mut rng), "base_ejection_time x 2");
        let t2 = t1 + secs(21);
        fail(&hs[0], &p, 3);
        d.collect(t2, &mut rng);
        assert!(!d.on_interval(t2 + secs(24), &mut rng));
        assert!(d.on_interval(t2 + secs(25), &mut rng), "capped by max_ejection_time");
        assert_eq!(stats.ejections_enforced_total.load(Ordering::Relaxed), 3);
        assert_eq!(stats.enforced[0].load(Ordering::Relaxed), 3);
        assert_eq!(stats.detected[0].load(Ordering::Relaxed), 3);
        // Healthy for base_ejection_time per sweep: the multiplier comes down.
        let t3 = t2 + secs(25);
        d.on_interval(t3 + secs(10), &mut rng);
        d.on_interval(t3 + secs(20), &mut rng);
        d.on_interval(t3 + secs(30), &mut rng);
        fail(&hs[0], &p, 3);
        d.collect(t3 + secs(31), &mut rng);
        assert!(d.on_interval(t3 + secs(41), &mut rng), "back to base_ejection_time x 1");
    }

    #[test]
    fn max_ejection_percent_limits_and_always_eject_one_host() {
        let p = policy();
        let hs = hosts(3);
        let stats = Arc::new(OutlierStats::default());
        let mut d = OutlierDetector::new(p.clone(), &hs, stats.clone());
        let now = Instant::now();
        fail(&hs[0], &p, 3);
        fail(&hs[1], &p, 3);
        d.collect(now, &mut || 0);
        assert_eq!(hs[0].health(), HostHealth::Unhealthy, "1/3 <= 50%");
        assert_eq!(hs[1].health(), HostHealth::Healthy, "2/3 > 50%");
        assert_eq!(stats.ejections_overflow.load(Ordering::Relaxed), 1);

        let p =
            OutlierPolicy { max_ejection_percent: 10, always_eject_one_host: false, ..policy() };
        let hs = hosts(2);
        let mut d = OutlierDetector::new(p.clone(), &hs, Arc::new(OutlierStats::default()));
        fail(&hs[0], &p, 3);
        assert!(!d.collect(now, &mut || 0), "Envoy's default 10% ejects nothing of 2 hosts");
        let p = OutlierPolicy { always_eject_one_host: true, ..p };
        let mut d = OutlierDetector::new(p.clone(), &hs, Arc::new(OutlierStats::default()));
        fail(&hs[0], &p, 3);
        assert!(d.collect(now, &mut || 0));
    }

    #[test]
    fn enforcing_percentages_and_detected_stats() {
        let mut p = policy();
        p.consecutive_gateway_failure = 2;
        let hs = hosts(2);
        let stats = Arc::new(OutlierStats::default());
        let mut d = OutlierDetector::new(p.clone(), &hs, stats.clone());
        hs[0].outlier().put_http_status(&p, 502);
        hs[0].outlier().put_http_status(&p, 502);
        assert!(!d.collect(Instant::now(), &mut || 0), "gateway enforcing defaults to 0%");
        assert_eq!(stats.detected[1].load(Ordering::Relaxed), 1);
        assert_eq!(stats.enforced[1].load(Ordering::Relaxed), 0);
        p.enforcing_consecutive_5xx = 30;
        let mut d = OutlierDetector::new(p.clone(), &hs, stats.clone());
        fail(&hs[1], &p, 3);
        assert!(!d.collect(Instant::now(), &mut || 30), "roll 30 >= 30%");
        fail(&hs[1], &p, 3);
        assert!(d.collect(Instant::now(), &mut || 29));
    }

    #[test]
    fn active_check_success_unejects_and_membership_keeps_state() {
        let p = policy();
        let hs = hosts(2);
        let stats = Arc::new(OutlierStats::default());
        let mut d = OutlierDetector::new(p.clone(), &hs, stats.clone());
        let now = Instant::now();
        fail(&hs[0], &p, 3);
        d.collect(now, &mut || 0);
        let extra = hosts(3).pop().unwrap();
        d.set_hosts(&[hs[0].clone(), extra]);
        assert_eq!(stats.ejections_active.load(Ordering::Relaxed), 1);
        assert_eq!(d.last_ejection(&hs[0]), Some(now));
        assert!(d.on_active_check_success(&hs[0], now));
        assert_eq!(hs[0].health(), HostHealth::Healthy);
        assert_eq!(stats.ejections_active.load(Ordering::Relaxed), 0);
        assert!(!d.on_active_check_success(&hs[0], now));
    }

    /// Feeds `requests` statuses to `host`: `successes` 200s, the rest 500s
    /// interleaved so no consecutive-5xx threshold is reached.
    fn traffic(host: &Host, p: &OutlierPolicy, requests: u32, successes: u32) {
        for i in 0..requests {
            let ok = i < successes;
            host.outlier().put_http_status(p, if ok { 200 } else { 500 });
        }
    }

    fn statistical_policy() -> OutlierPolicy {
        OutlierPolicy {
            consecutive_5xx: 0,
            max_ejection_percent: 100,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 10,
            failure_percentage_minimum_hosts: 5,
            failure_percentage_request_volume: 10,
            ..policy()
        }
    }

    #[test]
    fn statistical_defaults_follow_envoy() {
        let p = OutlierPolicy::from_config(&OutlierDetection::default());
        assert_eq!((p.success_rate_minimum_hosts, p.success_rate_request_volume), (5, 100));
        assert_eq!((p.success_rate_stdev_factor, p.enforcing_success_rate), (1900, 100));
        assert_eq!((p.failure_percentage_threshold, p.failure_percentage_minimum_hosts), (85, 5));
        assert_eq!((p.failure_percentage_request_volume, p.enforcing_failure_percentage), (50, 0));
        assert_eq!(p.enforcing_failure_percentage_local_origin, 0);
        assert_eq!(p.enforcing_local_origin_success_rate, 100);
    }

    #[test]
    fn ejection_threshold_matches_envoys_worked_example() {
        let s = success_rate_ejection_threshold(&[50.0, 100.0, 100.0, 100.0, 100.0], 1.9);
        assert_eq!((s.average, s.ejection_threshold), (90.0, 52.0));
        let s = success_rate_ejection_threshold(&[], 1.9);
        assert_eq!((s.average, s.ejection_threshold), (-1.0, -1.0));
    }

    #[test]
    fn success_rate_ejects_the_outlier_and_reports_rates() {
        let p = statistical_policy();
        let hs = hosts(5);
        let stats = Arc::new(OutlierStats::default());
        let mut d = OutlierDetector::new(p.clone(), &hs, stats.clone());
        for h in &hs[1..] {
            traffic(h, &p, 20, 20);
        }
        traffic(&hs[0], &p, 20, 10);
        assert_eq!(hs[0].outlier().success_rate(Origin::External), -1.0, "before a sweep");
        assert!(d.on_interval(Instant::now(), &mut || 0));
        assert_eq!(hs[0].health_flags(), HealthFlags::FAILED_OUTLIER_CHECK);
        assert!(hs[1..].iter().all(|h| h.health_flags().is_empty()));
        assert_eq!(d.success_rate_summary(Origin::External).average, 90.0);
        assert_eq!(d.success_rate_summary(Origin::External).ejection_threshold, 52.0);
        assert_eq!(hs[0].outlier().success_rate(Origin::External), 50.0);
        assert_eq!(hs[1].outlier().success_rate(Origin::External), 100.0);
        let k = EjectionKind::SuccessRate as usize;
        assert_eq!(stats.detected[k].load(Ordering::Relaxed), 1);
        assert_eq!(stats.enforced[k].load(Ordering::Relaxed), 1);
        assert_eq!(stats.ejections_success_rate.load(Ordering::Relaxed), 1);
        assert_eq!(stats.ejections_total.load(Ordering::Relaxed), 1);
        // The next interval starts empty: nothing computed, nothing ejected.
        assert!(!d.on_interval(Instant::now(), &mut || 0));
        assert_eq!(d.success_rate_summary(Origin::External).average, -1.0);
        assert_eq!(hs[1].outlier().success_rate(Origin::External), -1.0);
    }

    #[test]
    fn success_rate_needs_minimum_hosts_and_request_volume() {
        let p = statistical_policy();
        let hs = hosts(5);
        let mut d = OutlierDetector::new(p.clone(), &hs, Arc::new(OutlierStats::default()));
        for h in &hs[1..4] {
            traffic(h, &p, 20, 20);
        }
        traffic(&hs[4], &p, 9, 9); // below success_rate_request_volume
        traffic(&hs[0], &p, 20, 0);
        assert!(!d.on_interval(Instant::now(), &mut || 0), "4 hosts with volume < 5");
        assert_eq!(d.success_rate_summary(Origin::External).average, -1.0);
        assert_eq!(hs[4].outlier().success_rate(Origin::External), -1.0);
        assert_eq!(hs[1].outlier().success_rate(Origin::External), 100.0, "still shown");
    }

    #[test]
    fn enforcing_success_rate_rolls_the_dice() {
        let p = OutlierPolicy { enforcing_success_rate: 40, ..statistical_policy() };
        let hs = hosts(5);
        let stats = Arc::new(OutlierStats::default());
        let mut d = OutlierDetector::new(p.clone(), &hs, stats.clone());
        for round in [40, 39] {
            for h in &hs[1..] {
                traffic(h, &p, 20, 20);
            }
            traffic(&hs[0], &p, 20, 10);
            let ejected = d.on_interval(Instant::now(), &mut || round);
            assert_eq!(ejected, round < 40);
        }
        let k = EjectionKind::SuccessRate as usize;
        assert_eq!(stats.detected[k].load(Ordering::Relaxed), 2);
        assert_eq!(stats.enforced[k].load(Ordering::Relaxed), 1);
    }

    #[test]
    fn failure_percentage_ejects_at_the_threshold_when_enforced() {
        // Two failing hosts of five: success rate's stdev hides neither.
        let p = OutlierPolicy {
            success_rate_minimum_hosts: 100,
            failure_percentage_threshold: 50,
            ..statistical_policy()
        };
        let hs = hosts(5);
        let stats = Arc::new(OutlierStats::default());
        let mut d = OutlierDetector::new(p.clone(), &hs, stats.clone());
        let feed = || {
            traffic(&hs[0], &p, 20, 10); // 50% failures: at the threshold
            traffic(&hs[1], &p, 20, 11); // 45%: below
            for h in &hs[2..] {
                traffic(h, &p, 20, 20);
            }
        };
        feed();
        assert!(!d.on_interval(Instant::now(), &mut || 0), "enforcing_failure_percentage is 0%");
        let k = EjectionKind::FailurePercentage as usize;
        assert_eq!(stats.detected[k].load(Ordering::Relaxed), 1);
        let p = OutlierPolicy { enforcing_failure_percentage: 100, ..p };
        let mut d = OutlierDetector::new(p.clone(), &hs, stats.clone());
        feed();
        assert!(d.on_interval(Instant::now(), &mut || 0));
        assert_eq!(hs[0].health_flags(), HealthFlags::FAILED_OUTLIER_CHECK);
        assert!(hs[1].health_flags().is_empty());
        assert_eq!(stats.enforced[k].load(Ordering::Relaxed), 1);
        assert_eq!(stats.ejections_total.load(Ordering::Relaxed), 0, "not counted there");
        // An ejected host sits out the analyses.
        feed();
        assert!(!d.on_interval(Instant::now(), &mut || 0));
        assert_eq!(stats.detected[k].load(Ordering::Relaxed), 2);
    }

    #[test]
    fn local_origin_analyses_run_only_when_split() {
        let p = OutlierPolicy {
            split_external_local_origin_errors: true,
            consecutive_local_origin_failure: 0,
            enforcing_failure_percentage_local_origin: 100,
            ..statistical_policy()
        };
        let hs = hosts(5);
        let stats = Arc::new(OutlierStats::default());
        let mut d = OutlierDetector::new(p.clone(), &hs, stats.clone());
        for (i, h) in hs.iter().enumerate() {
            for n in 0..20 {
                let fail = i == 0 && n % 10 != 0; // host 0: 90% connect failures
                let r = if fail {
                    UpstreamResult::ConnectFailed
                } else {
                    UpstreamResult::ConnectSuccess
                };
                h.outlier().put_result(&p, r);
                h.outlier().put_http_status(&p, 200);
            }
        }
        assert!(d.on_interval(Instant::now(), &mut || 0));
        assert_eq!(hs[0].health_flags(), HealthFlags::FAILED_OUTLIER_CHECK);
        assert_eq!(hs[0].outlier().success_rate(Origin::External), 100.0);
        assert_eq!(hs[0].outlier().success_rate(Origin::Local), 10.0);
        let sr = EjectionKind::LocalOriginSuccessRate as usize;
        let fp = EjectionKind::LocalOriginFailurePercentage as usize;
        assert_eq!(stats.enforced[sr].load(Ordering::Relaxed), 1, "success rate first");
        assert_eq!(stats.detected[fp].load(Ordering::Relaxed), 0, "already ejected");
        let names: Vec<String> = stats.values().into_iter().map(|(n, _)| n).collect();
        for name in [
            "ejections_enforced_local_origin_success_rate",
            "ejections_detected_local_origin_failure_percentage",
            "ejections_enforced_failure_percentage",
            "ejections_detected_success_rate",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}");
        }
    }

    #[test]
    fn a_non_gateway_5xx_breaks_a_gateway_failure_run() {
        let p = OutlierPolicy { consecutive_gateway_failure: 2, consecutive_5xx: 0, ..policy() };
        let m = OutlierMonitor::default();
        assert!(!m.put_http_status(&p, 503));
        assert!(!m.put_http_status(&p, 500));
        assert!(!m.put_http_status(&p, 502), "the run restarted");
        assert!(m.put_http_status(&p, 504));
        assert_eq!(m.take_bucket(Origin::External), (4, 0));
        assert_eq!(m.take_bucket(Origin::External), (0, 0), "taken");
    }
}
