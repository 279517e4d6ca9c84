//! Active health checking policy: Envoy's `HealthCheckerImplBase` and its
//! `ActiveHealthCheckSession`, without the I/O.
//!
//! One [`HealthCheckSession`] per host turns each check's [`CheckOutcome`]
//! into host flag changes (`FAILED_ACTIVE_HC`, `DEGRADED_ACTIVE_HC`,
//! `ACTIVE_HC_TIMEOUT`, `PENDING_ACTIVE_HC`, `EXCLUDED_VIA_IMMEDIATE_HC_FAIL`)
//! and the delay until the next check. The I/O shell (mini-envoy's health
//! module, on the main thread) runs the checks, feeds the outcomes in, arms a
//! timer with [`Decision::next_check_in`] and republishes the cluster when
//! [`Decision::transition`] is [`Transition::Changed`]:
//!
//! ```text
//!  timer ─► check (HTTP / TCP, bounded by timeout) ─► CheckOutcome
//!    ▲                                                   │
//!    └──── next_check_in ◄── HealthCheckSession::on_result(host) ─► host flags
//!                                                        └─► Changed: rebuild + publish
//! ```
//!
//! As in Envoy: a host starts `FAILED_ACTIVE_HC` and its first result decides
//! at once; after that `healthy_threshold` successes make it healthy again and
//! `unhealthy_threshold` *network* failures (connect errors, timeouts) make it
//! unhealthy, while an active failure (an unexpected HTTP status, a TCP
//! payload mismatch) makes it unhealthy at once. The next check comes after
//! `interval`, `unhealthy_interval`, or an edge interval while a transition is
//! pending or has just happened; `no_traffic_interval` while the cluster has
//! not opened a connection yet; plus jitter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::host::{HealthFlags, Host};
use crate::config::health_check::HealthCheck;

// ANCHOR: policy
/// A `HealthCheck`'s timing and thresholds, with Envoy's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckPolicy {
    /// Time one check may take.
    pub timeout: Duration,
    /// Time between checks of a healthy host.
    pub interval: Duration,
    /// Random extra delay, at most this, added to every interval.
    pub interval_jitter: Duration,
    /// Random extra delay, at most this percentage of the interval.
    pub interval_jitter_percent: u32,
    /// Random delay, at most this, before a host's first check.
    pub initial_jitter: Duration,
    /// Network failures before a healthy host is marked unhealthy.
    pub unhealthy_threshold: u32,
    /// Successes before an unhealthy host is marked healthy.
    pub healthy_threshold: u32,
    /// Interval while the cluster has opened no connection yet.
    pub no_traffic_interval: Duration,
    /// Same, for hosts that are healthy.
    pub no_traffic_healthy_interval: Duration,
    /// Interval for unhealthy hosts.
    pub unhealthy_interval: Duration,
    /// Interval right after a host turned unhealthy.
    pub unhealthy_edge_interval: Duration,
    /// Interval right after a host turned healthy.
    pub healthy_edge_interval: Duration,
    /// Log every failure, not only the first after a success.
    pub always_log_failures: bool,
}
// ANCHOR_END: policy

impl HealthCheckPolicy {
    /// The policy of a validated `HealthCheck` (Envoy's defaults for unset fields).
    pub fn from_config(hc: &HealthCheck) -> Self {
        let d = |v: Option<crate::config::types::Duration>| v.map(|d| d.get());
        let interval = d(hc.interval).unwrap_or(Duration::from_secs(1));
        let unhealthy_interval = d(hc.unhealthy_interval).unwrap_or(interval);
        let no_traffic_interval = hc.no_traffic_interval();
        Self {
            timeout: d(hc.timeout).unwrap_or(Duration::from_secs(1)),
            interval,
            interval_jitter: d(hc.interval_jitter).unwrap_or_default(),
            interval_jitter_percent: hc.interval_jitter_percent.min(100),
            initial_jitter: d(hc.initial_jitter).unwrap_or_default(),
            unhealthy_threshold: hc.unhealthy_threshold.unwrap_or(1).max(1),
            healthy_threshold: hc.healthy_threshold.unwrap_or(1).max(1),
            no_traffic_interval,
            no_traffic_healthy_interval: d(hc.no_traffic_healthy_interval)
                .unwrap_or(no_traffic_interval),
            unhealthy_interval,
            unhealthy_edge_interval: d(hc.unhealthy_edge_interval).unwrap_or(unhealthy_interval),
            healthy_edge_interval: d(hc.healthy_edge_interval).unwrap_or(interval),
            always_log_failures: hc.always_log_health_check_failures,
        }
    }

    /// Delay before a host's first check: up to `initial_jitter`.
    pub fn first_check_in(&self, random: u64) -> Duration {
        jitter(Duration::ZERO, self.initial_jitter, random)
    }

    /// Envoy's `HealthCheckerImplBase::interval`: the delay before the next
    /// check after a result of `state` that caused `transition`.
    pub fn next_interval(
        &self,
        state: CheckState,
        transition: Transition,
        had_traffic: bool,
        random: &mut dyn FnMut() -> u64,
    ) -> Duration {
        let base = match (had_traffic, state, transition) {
            (false, CheckState::Healthy, _) => self.no_traffic_healthy_interval,
            (false, CheckState::Unhealthy, _) => self.no_traffic_interval,
            (true, CheckState::Unhealthy, Transition::ChangePending) => self.healthy_edge_interval,
            (true, CheckState::Unhealthy, Transition::Changed) => self.unhealthy_edge_interval,
            (true, CheckState::Unhealthy, Transition::Unchanged) => self.unhealthy_interval,
            (true, CheckState::Healthy, Transition::ChangePending) => self.unhealthy_edge_interval,
            (true, CheckState::Healthy, Transition::Changed) => self.healthy_edge_interval,
            (true, CheckState::Healthy, Transition::Unchanged) => self.interval,
        };
        let percent = base * self.interval_jitter_percent / 100;
        let with_percent = jitter(base, percent, random());
        jitter(with_percent, self.interval_jitter, random())
    }
}

/// `base` plus `random % max` (in milliseconds, as Envoy).
fn jitter(base: Duration, max: Duration, random: u64) -> Duration {
    let max_ms = max.as_millis() as u64;
    if max_ms == 0 { base } else { base + Duration::from_millis(random % max_ms) }
}

/// Which way a result points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    /// A success.
    Healthy,
    /// A failure.
    Unhealthy,
}

/// Envoy's `HealthCheckFailureType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The host answered wrongly (unexpected status, payload mismatch): unhealthy at once.
    Active,
    /// The host answered `x-envoy-immediate-health-check-fail`: unhealthy at once and
    /// excluded from load calculations.
    ImmediateFail,
    /// Connecting or reading failed: counts toward `unhealthy_threshold`.
    Network,
    /// The check timed out: counts toward `unhealthy_threshold`, sets `ACTIVE_HC_TIMEOUT`.
    Timeout,
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Expected answer; `degraded` when the host said `x-envoy-degraded`.
    Success {
        /// The host asked to be degraded.
        degraded: bool,
    },
    /// The check failed.
    Failure(FailureKind),
}

/// Envoy's `HealthTransition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed.
    Unchanged,
    /// Host flags changed: the cluster's host lists must be rebuilt.
    Changed,
    /// Moving toward a change that a threshold has not allowed yet.
    ChangePending,
}

/// What to do after a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether host flags changed.
    pub transition: Transition,
    /// When to run the next check.
    pub next_check_in: Duration,
    /// The failure deserves a log line (the first after a success, or always
    /// with `always_log_health_check_failures`).
    pub log_failure: bool,
}

/// `cluster.<name>.health_check.*`, as Envoy names them.
#[derive(Debug, Default)]
pub struct HealthCheckStats {
    /// Checks started (`attempt`).
    pub attempt: AtomicU64,
    /// Checks passed (`success`).
    pub success: AtomicU64,
    /// Checks failed, for any reason (`failure`).
    pub failure: AtomicU64,
    /// Checks failed by a network error or timeout (`network_failure`).
    pub network_failure: AtomicU64,
    /// Failures reported by the data path (`passive_failure`): an upstream
    /// response carrying `x-envoy-immediate-health-check-fail`.
    pub passive_failure: AtomicU64,
    /// Service-name verifications failed (`verify_cluster`; always 0 here).
    pub verify_cluster: AtomicU64,
    /// Hosts currently healthy by active checks (gauge `healthy`).
    pub healthy: AtomicU64,
    /// Hosts currently degraded by active checks (gauge `degraded`).
    pub degraded: AtomicU64,
}

impl HealthCheckStats {
    /// `(name, value)` for every stat, in Envoy's names (without the
    /// `cluster.<name>.health_check.` prefix).
    pub fn values(&self) -> [(&'static str, u64); 8] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("attempt", g(&self.attempt)),
            ("success", g(&self.success)),
            ("failure", g(&self.failure)),
            ("network_failure", g(&self.network_failure)),
            ("passive_failure", g(&self.passive_failure)),
            ("verify_cluster", g(&self.verify_cluster)),
            ("healthy", g(&self.healthy)),
            ("degraded", g(&self.degraded)),
        ]
    }

    fn inc(a: &AtomicU64) {
        a.fetch_add(1, Ordering::Relaxed);
    }

    fn dec(a: &AtomicU64) {
        let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }
}

/// The flags a host joins a health-checked cluster with: unhealthy until its
/// first check passes (Envoy sets `FAILED_ACTIVE_HC` on initial hosts, and
/// `PENDING_ACTIVE_HC` too when they should not take traffic before a check).
pub fn initial_flags(exclude_until_checked: bool) -> HealthFlags {
    if exclude_until_checked {
        HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC
    } else {
        HealthFlags::FAILED_ACTIVE_HC
    }
}

// ANCHOR: session
/// One host's health-check state (Envoy's `ActiveHealthCheckSession`).
#[derive(Debug, Clone)]
pub struct HealthCheckSession {
    num_healthy: u32,
    num_unhealthy: u32,
    first_check: bool,
}

impl Default for HealthCheckSession {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthCheckSession {
    /// A session whose host has not been checked yet.
    pub fn new() -> Self {
        Self { num_healthy: 0, num_unhealthy: 0, first_check: true }
    }

    /// Applies one check's outcome to `host`'s flags and `stats`, and decides
    /// when to check next. `had_traffic`: the cluster has opened a connection.
    pub fn on_result(
        &mut self,
        host: &Host,
        outcome: CheckOutcome,
        policy: &HealthCheckPolicy,
        had_traffic: bool,
        stats: &HealthCheckStats,
        random: &mut dyn FnMut() -> u64,
    ) -> Decision {
        let (state, transition, log_failure) = match outcome {
            CheckOutcome::Success { degraded } => {
                (CheckState::Healthy, self.on_success(host, degraded, policy, stats), false)
            }
            CheckOutcome::Failure(kind) => {
                let log = self.first_check
                    || policy.always_log_failures
                    || !host.health_flags().contains(HealthFlags::FAILED_ACTIVE_HC);
                (CheckState::Unhealthy, self.on_failure(host, kind, policy, stats), log)
            }
        };
        self.first_check = false;
        let next_check_in = policy.next_interval(state, transition, had_traffic, random);
        Decision { transition, next_check_in, log_failure }
    }

    fn on_success(
        &mut self,
        host: &Host,
        degraded: bool,
        policy: &HealthCheckPolicy,
        stats: &HealthCheckStats,
    ) -> Transition {
        self.num_unhealthy = 0;
        let mut transition = Transition::Unchanged;
        if host.health_flags().contains(HealthFlags::FAILED_ACTIVE_HC) {
            self.num_healthy += 1;
            if self.first_check || self.num_healthy >= policy.healthy_threshold {
                host.clear_health_flags(
                    HealthFlags::FAILED_ACTIVE_HC
                        | HealthFlags::ACTIVE_HC_TIMEOUT
                        | HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL,
                );
                HealthCheckStats::inc(&stats.healthy);
                transition = Transition::Changed;
            } else {
                transition = Transition::ChangePending;
            }
        }
        transition = clear_pending(host, transition);
        let was_degraded = host.health_flags().contains(HealthFlags::DEGRADED_ACTIVE_HC);
        if degraded != was_degraded {
            if degraded {
                host.set_health_flags(HealthFlags::DEGRADED_ACTIVE_HC);
                HealthCheckStats::inc(&stats.degraded);
            } else {
                host.clear_health_flags(HealthFlags::DEGRADED_ACTIVE_HC);
                HealthCheckStats::dec(&stats.degraded);
            }
            if transition == Transition::Unchanged {
                transition = Transition::Changed;
            }
        }
        HealthCheckStats::inc(&stats.success);
        transition
    }

    fn on_failure(
        &mut self,
        host: &Host,
        kind: FailureKind,
        policy: &HealthCheckPolicy,
        stats: &HealthCheckStats,
    ) -> Transition {
        self.num_healthy = 0;
        let network = matches!(kind, FailureKind::Network | FailureKind::Timeout);
        let mut transition = Transition::Unchanged;
        if !host.health_flags().contains(HealthFlags::FAILED_ACTIVE_HC) {
            self.num_unhealthy += 1;
            if !network || self.num_unhealthy >= policy.unhealthy_threshold {
                host.set_health_flags(HealthFlags::FAILED_ACTIVE_HC);
                HealthCheckStats::dec(&stats.healthy);
                transition = Transition::Changed;
            } else {
                transition = Transition::ChangePending;
            }
        }
        if kind == FailureKind::ImmediateFail
            && !host.health_flags().contains(HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL)
        {
            host.set_health_flags(HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL);
            transition = Transition::Changed;
        }
        // A failed host toggles between "timed out" and "failed" with its last result.
        if kind == FailureKind::Timeout
            && host.health_flags().contains(HealthFlags::FAILED_ACTIVE_HC)
        {
            host.set_health_flags(HealthFlags::ACTIVE_HC_TIMEOUT);
        } else {
            host.clear_health_flags(HealthFlags::ACTIVE_HC_TIMEOUT);
        }
        transition = clear_pending(host, transition);
        HealthCheckStats::inc(&stats.failure);
        if network {
            HealthCheckStats::inc(&stats.network_failure);
        }
        transition
    }
}
// ANCHOR_END: session

// ANCHOR: passive_immediate_failure
/// An upstream response carried `x-envoy-immediate-health-check-fail`
/// (Envoy's `HealthCheckHostMonitor::setUnhealthy(ImmediateHealthCheckFail)`,
/// a passive failure): the host fails active health checking at once and is
/// excluded from load calculations, until its checks pass again
/// (`healthy_threshold`, as after any failure). Counts `failure` and
/// `passive_failure`.
pub fn passive_immediate_failure(host: &Host, stats: &HealthCheckStats) -> Transition {
    let mut transition = Transition::Unchanged;
    let flags = host.health_flags();
    if !flags.contains(HealthFlags::FAILED_ACTIVE_HC) {
        host.set_health_flags(HealthFlags::FAILED_ACTIVE_HC);
        HealthCheckStats::dec(&stats.healthy);
        transition = Transition::Changed;
    }
    if !flags.contains(HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL) {
        host.set_health_flags(HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL);
        transition = Transition::Changed;
    }
    HealthCheckStats::inc(&stats.failure);
    HealthCheckStats::inc(&stats.passive_failure);
    transition
}
// ANCHOR_END: passive_immediate_failure

/// Clears `PENDING_ACTIVE_HC`; its removal changes the excluded list, so it
/// is a change even when health is not.
fn clear_pending(host: &Host, transition: Transition) -> Transition {
    let before = host.clear_health_flags(HealthFlags::PENDING_ACTIVE_HC);
    if before.contains(HealthFlags::PENDING_ACTIVE_HC) { Transition::Changed } else { transition }
}

/// Whether an HTTP check's response means "exclude me now"
/// (`x-envoy-immediate-health-check-fail`) or "degraded" (`x-envoy-degraded`):
/// the HTTP checker's verdict from status and these two headers.
pub fn http_outcome(
    status: u16,
    expected: impl Fn(u16) -> bool,
    immediate_fail: bool,
    degraded: bool,
) -> CheckOutcome {
    if immediate_fail {
        CheckOutcome::Failure(FailureKind::ImmediateFail)
    } else if expected(status) {
        CheckOutcome::Success { degraded }
    } else {
        CheckOutcome::Failure(FailureKind::Active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::HostHealth;
    use std::sync::Arc;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn policy() -> HealthCheckPolicy {
        HealthCheckPolicy {
            timeout: ms(100),
            interval: ms(1000),
            interval_jitter: Duration::ZERO,
            interval_jitter_percent: 0,
            initial_jitter: Duration::ZERO,
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            no_traffic_interval: ms(60_000),
            no_traffic_healthy_interval: ms(60_000),
            unhealthy_interval: ms(5000),
            unhealthy_edge_interval: ms(500),
            healthy_edge_interval: ms(700),
            always_log_failures: false,
        }
    }

    fn host(flags: HealthFlags) -> Arc<Host> {
        Host::builder("10.0.0.1:80".parse().unwrap()).health_flags(flags).build().unwrap()
    }

    struct Run {
        host: Arc<Host>,
        session: HealthCheckSession,
        policy: HealthCheckPolicy,
        stats: HealthCheckStats,
    }

    impl Run {
        fn new(flags: HealthFlags) -> Self {
            Self {
                host: host(flags),
                session: HealthCheckSession::new(),
                policy: policy(),
                stats: HealthCheckStats::default(),
            }
        }
        fn step(&mut self, outcome: CheckOutcome) -> Decision {
            let mut rng = || 0;
            self.session.on_result(&self.host, outcome, &self.policy, true, &self.stats, &mut rng)
        }
    }

    const OK: CheckOutcome = CheckOutcome::Success { degraded: false };
    const NET: CheckOutcome = CheckOutcome::Failure(FailureKind::Network);

    #[test]
    fn first_result_decides_at_once_and_clears_pending() {
        let mut r = Run::new(initial_flags(true));
        assert!(r.host.is_excluded());
        let d = r.step(OK);
        assert_eq!(d.transition, Transition::Changed);
        assert!(r.host.health_flags().is_empty());
        assert_eq!(d.next_check_in, ms(700), "healthy_edge_interval after turning healthy");
        assert_eq!(r.stats.healthy.load(Ordering::Relaxed), 1);

        let mut r = Run::new(initial_flags(true));
        let d = r.step(NET);
        assert_eq!(d.transition, Transition::Changed, "pending cleared");
        assert!(d.log_failure);
        assert_eq!(r.host.health_flags(), HealthFlags::FAILED_ACTIVE_HC);
    }

    #[test]
    fn network_failures_count_to_unhealthy_threshold_with_edge_intervals() {
        let mut r = Run::new(HealthFlags::FAILED_ACTIVE_HC);
        r.step(OK);
        assert_eq!(r.host.health(), HostHealth::Healthy);
        let d = r.step(NET);
        assert_eq!(d.transition, Transition::ChangePending);
        assert!(d.log_failure);
        assert_eq!(d.next_check_in, ms(700), "still healthy: healthy_edge_interval");
        assert_eq!(r.step(NET).transition, Transition::ChangePending);
        assert_eq!(r.host.health(), HostHealth::Healthy);
        let d = r.step(NET);
        assert_eq!(d.transition, Transition::Changed);
        assert_eq!(d.next_check_in, ms(500), "unhealthy_edge_interval after the change");
        assert_eq!(r.host.health(), HostHealth::Unhealthy);
        let d = r.step(NET);
        assert_eq!(d.transition, Transition::Unchanged);
        assert!(!d.log_failure, "only the first failure is logged");
        assert_eq!(d.next_check_in, ms(5000), "unhealthy_interval");
        assert_eq!(r.stats.failure.load(Ordering::Relaxed), 4);
        assert_eq!(r.stats.network_failure.load(Ordering::Relaxed), 4);
        assert_eq!(r.stats.healthy.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut r = Run::new(HealthFlags::FAILED_ACTIVE_HC);
        r.step(OK);
        r.step(NET);
        r.step(NET);
        let d = r.step(OK);
        assert_eq!(d.transition, Transition::Unchanged);
        assert_eq!(d.next_check_in, ms(1000), "interval");
        r.step(NET);
        r.step(NET);
        assert_eq!(r.host.health(), HostHealth::Healthy);
    }

    #[test]
    fn a_passive_immediate_failure_fails_and_excludes_the_host_at_once() {
        let host = host(HealthFlags::empty());
        let stats = HealthCheckStats::default();
        stats.healthy.store(1, Ordering::Relaxed);
        assert_eq!(passive_immediate_failure(&host, &stats), Transition::Changed);
        let flags = host.health_flags();
        assert!(flags.contains(HealthFlags::FAILED_ACTIVE_HC));
        assert!(flags.contains(HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL));
        assert_eq!(stats.passive_failure.load(Ordering::Relaxed), 1);
        assert_eq!(stats.failure.load(Ordering::Relaxed), 1);
        assert_eq!(stats.healthy.load(Ordering::Relaxed), 0);
        // Again while failed: counted, nothing changes.
        assert_eq!(passive_immediate_failure(&host, &stats), Transition::Unchanged);
        assert_eq!(stats.passive_failure.load(Ordering::Relaxed), 2);
        assert_eq!(stats.healthy.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn active_failure_is_immediate_and_healthy_threshold_applies_after() {
        let mut r = Run::new(HealthFlags::FAILED_ACTIVE_HC);
        r.step(OK);
        let d = r.step(CheckOutcome::Failure(FailureKind::Active));
        assert_eq!(d.transition, Transition::Changed);
        assert_eq!(r.stats.network_failure.load(Ordering::Relaxed), 0);
        let d = r.step(OK);
        assert_eq!(d.transition, Transition::ChangePending);
        assert_eq!(d.next_check_in, ms(500), "still unhealthy: unhealthy_edge_interval");
        assert_eq!(r.host.health(), HostHealth::Unhealthy);
        assert_eq!(r.step(OK).transition, Transition::Changed);
        assert_eq!(r.host.health(), HostHealth::Healthy);
        assert_eq!(r.stats.success.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn timeout_flag_follows_the_last_failure() {
        let mut r = Run::new(HealthFlags::FAILED_ACTIVE_HC);
        r.policy.unhealthy_threshold = 1;
        r.step(OK);
        r.step(CheckOutcome::Failure(FailureKind::Timeout));
        assert_eq!(
            r.host.health_flags(),
            HealthFlags::FAILED_ACTIVE_HC | HealthFlags::ACTIVE_HC_TIMEOUT
        );
        r.step(CheckOutcome::Failure(FailureKind::Active));
        assert_eq!(r.host.health_flags(), HealthFlags::FAILED_ACTIVE_HC);
        r.step(CheckOutcome::Failure(FailureKind::Timeout));
        r.step(OK);
        r.step(OK);
        assert!(r.host.health_flags().is_empty(), "healthy clears the timeout flag");
    }

    #[test]
    fn immediate_fail_excludes_until_healthy_and_degraded_toggles() {
        let mut r = Run::new(HealthFlags::FAILED_ACTIVE_HC);
        r.step(OK);
        let d = r.step(CheckOutcome::Failure(FailureKind::ImmediateFail));
        assert_eq!(d.transition, Transition::Changed);
        assert!(r.host.is_excluded());
        r.step(OK);
        r.step(OK);
        assert!(!r.host.is_excluded());
        let d = r.step(CheckOutcome::Success { degraded: true });
        assert_eq!(d.transition, Transition::Changed);
        assert_eq!(r.host.health(), HostHealth::Degraded);
        assert_eq!(r.stats.degraded.load(Ordering::Relaxed), 1);
        assert_eq!(
            r.step(CheckOutcome::Success { degraded: true }).transition,
            Transition::Unchanged
        );
        assert_eq!(r.step(OK).transition, Transition::Changed);
        assert_eq!(r.host.health(), HostHealth::Healthy);
        assert_eq!(r.stats.degraded.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn always_log_failures() {
        let mut r = Run::new(HealthFlags::FAILED_ACTIVE_HC);
        r.policy.always_log_failures = true;
        r.step(NET);
        assert!(r.step(NET).log_failure);
    }

    #[test]
    fn intervals_without_traffic_and_with_jitter() {
        let p = HealthCheckPolicy {
            interval_jitter: ms(10),
            interval_jitter_percent: 10,
            no_traffic_healthy_interval: ms(30_000),
            ..policy()
        };
        let mut zero = || 0;
        let no_traffic = |s| p.next_interval(s, Transition::Unchanged, false, &mut || 0);
        assert_eq!(no_traffic(CheckState::Unhealthy), ms(60_000));
        assert_eq!(no_traffic(CheckState::Healthy), ms(30_000));
        assert_eq!(
            p.next_interval(CheckState::Healthy, Transition::Unchanged, true, &mut zero),
            ms(1000)
        );
        // 1000ms + up to 10% (99ms) + up to 10ms (9ms).
        let mut big = || u64::MAX;
        let d = p.next_interval(CheckState::Healthy, Transition::Unchanged, true, &mut big);
        assert_eq!(d, ms(1000 + u64::MAX % 100 + u64::MAX % 10));
        assert!(d < ms(1110));
        let p = HealthCheckPolicy { initial_jitter: ms(50), ..policy() };
        assert_eq!(p.first_check_in(123), ms(23));
        assert_eq!(policy().first_check_in(123), Duration::ZERO);
    }

    #[test]
    fn policy_defaults_follow_envoy() {
        let hc: HealthCheck = serde_json::from_value(serde_json::json!({
            "timeout": "0.2s", "interval": "3s", "unhealthy_threshold": 2,
            "healthy_threshold": 1, "tcp_health_check": {}
        }))
        .unwrap();
        let p = HealthCheckPolicy::from_config(&hc);
        assert_eq!(p.timeout, ms(200));
        assert_eq!(p.unhealthy_interval, ms(3000));
        assert_eq!(p.unhealthy_edge_interval, ms(3000));
        assert_eq!(p.healthy_edge_interval, ms(3000));
        assert_eq!(p.no_traffic_interval, ms(60_000));
        assert_eq!(p.no_traffic_healthy_interval, ms(60_000));
        assert_eq!((p.unhealthy_threshold, p.healthy_threshold), (2, 1));
    }

    #[test]
    fn http_verdict() {
        let ok = |s| s == 200;
        assert_eq!(http_outcome(200, ok, false, false), OK);
        assert_eq!(http_outcome(200, ok, false, true), CheckOutcome::Success { degraded: true });
        assert_eq!(http_outcome(503, ok, false, false), CheckOutcome::Failure(FailureKind::Active));
        assert_eq!(
            http_outcome(200, ok, true, false),
            CheckOutcome::Failure(FailureKind::ImmediateFail)
        );
    }
}
