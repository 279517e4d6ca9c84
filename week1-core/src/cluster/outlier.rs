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
//!          interval ─► on_interval(now) ─► uneject ─► rebuild + publish
//! ```
//!
//! Success-rate and failure-percentage analyses are not run (their
//! `enforcing_*` settings are accepted and change nothing).

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
}

impl EjectionKind {
    const ALL: [Self; 3] = [
        Self::Consecutive5xx,
        Self::ConsecutiveGatewayFailure,
        Self::ConsecutiveLocalOriginFailure,
    ];

    fn bit(self) -> u32 {
        match self {
            Self::Consecutive5xx => 1,
            Self::ConsecutiveGatewayFailure => 2,
            Self::ConsecutiveLocalOriginFailure => 4,
        }
    }

    /// Envoy's stat suffix (`ejections_enforced_<suffix>`).
    pub fn stat_suffix(self) -> &'static str {
        match self {
            Self::Consecutive5xx => "consecutive_5xx",
            Self::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Self::ConsecutiveLocalOriginFailure => "consecutive_local_origin_failure",
        }
    }
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
        }
    }

    fn threshold(&self, kind: EjectionKind) -> u32 {
        match kind {
            EjectionKind::Consecutive5xx => self.consecutive_5xx,
            EjectionKind::ConsecutiveGatewayFailure => self.consecutive_gateway_failure,
            EjectionKind::ConsecutiveLocalOriginFailure => self.consecutive_local_origin_failure,
        }
    }

    fn enforcing(&self, kind: EjectionKind) -> u32 {
        match kind {
            EjectionKind::Consecutive5xx => self.enforcing_consecutive_5xx,
            EjectionKind::ConsecutiveGatewayFailure => self.enforcing_consecutive_gateway_failure,
            EjectionKind::ConsecutiveLocalOriginFailure => {
                self.enforcing_consecutive_local_origin_failure
            }
        }
    }
}

// ANCHOR: monitor
/// A host's consecutive-error counters, written by every worker without a lock.
#[derive(Debug, Default)]
pub struct OutlierMonitor {
    consecutive_5xx: AtomicU32,
    consecutive_gateway_failure: AtomicU32,
    consecutive_local_origin_failure: AtomicU32,
    /// [`EjectionKind`] bits whose threshold was reached, for the main thread.
    pending: AtomicU32,
}

impl OutlierMonitor {
    /// Counts an HTTP response status. Returns `true` when a threshold was
    /// just reached: the main thread should [`OutlierDetector::collect`].
    pub fn put_http_status(&self, policy: &OutlierPolicy, status: u16) -> bool {
        if (500..600).contains(&status) {
            let mut reached = false;
            if matches!(status, 502..=504) {
                reached |= self.count(
                    &self.consecutive_gateway_failure,
                    policy,
                    EjectionKind::ConsecutiveGatewayFailure,
                );
            }
            reached |= self.count(&self.consecutive_5xx, policy, EjectionKind::Consecutive5xx);
            reached
        } else {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
            self.consecutive_gateway_failure.store(0, Ordering::Relaxed);
            false
        }
    }

    /// Counts a result that is not a status. Without
    /// `split_external_local_origin_errors` a connect failure counts as a 503
    /// and a timeout as a 504, as in Envoy.
    pub fn put_result(&self, policy: &OutlierPolicy, result: UpstreamResult) -> bool {
        if policy.split_external_local_origin_errors {
            return match result {
                UpstreamResult::ConnectFailed | UpstreamResult::Timeout => self.count(
                    &self.consecutive_local_origin_failure,
                    policy,
                    EjectionKind::ConsecutiveLocalOriginFailure,
                ),
                UpstreamResult::ConnectSuccess | UpstreamResult::Success => {
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
    /// `ejections_detected_<kind>` per [`EjectionKind`].
    pub detected: [AtomicU64; 3],
    /// `ejections_enforced_<kind>` per [`EjectionKind`].
    pub enforced: [AtomicU64; 3],
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
}

impl OutlierDetector {
    /// A detector over `hosts`, counting into `stats`.
    pub fn new(policy: OutlierPolicy, hosts: &[Arc<Host>], stats: Arc<OutlierStats>) -> Self {
        let mut d = Self { policy, hosts: Vec::new(), stats, ejected: 0 };
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
        if kind == EjectionKind::Consecutive5xx {
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

    /// The `interval` sweep: returns hosts whose ejection time has passed and
    /// shortens the backoff of hosts that stayed healthy. Returns `true` when a
    /// host came back.
    pub fn on_interval(&mut self, now: Instant) -> bool {
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
        changed
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
        assert!(!d.on_interval(t0 + secs(9)));
        assert!(d.on_interval(t0 + secs(10)), "base_ejection_time x 1");
        assert_eq!(hs[0].health(), HostHealth::Healthy);
        assert_eq!(stats.ejections_active.load(Ordering::Relaxed), 0);

        let t1 = t0 + secs(11);
        fail(&hs[0], &p, 3);
        assert!(d.collect(t1, &mut rng));
        assert!(!d.on_interval(t1 + secs(19)));
        assert!(d.on_interval(t1 + secs(20)), "base_ejection_time x 2");
        let t2 = t1 + secs(21);
        fail(&hs[0], &p, 3);
        d.collect(t2, &mut rng);
        assert!(!d.on_interval(t2 + secs(24)));
        assert!(d.on_interval(t2 + secs(25)), "capped by max_ejection_time");
        assert_eq!(stats.ejections_enforced_total.load(Ordering::Relaxed), 3);
        assert_eq!(stats.enforced[0].load(Ordering::Relaxed), 3);
        assert_eq!(stats.detected[0].load(Ordering::Relaxed), 3);
        // Healthy for base_ejection_time per sweep: the multiplier comes down.
        let t3 = t2 + secs(25);
        d.on_interval(t3 + secs(10));
        d.on_interval(t3 + secs(20));
        d.on_interval(t3 + secs(30));
        fail(&hs[0], &p, 3);
        d.collect(t3 + secs(31), &mut rng);
        assert!(d.on_interval(t3 + secs(41)), "back to base_ejection_time x 1");
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
}
