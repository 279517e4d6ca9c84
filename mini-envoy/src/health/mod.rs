//! # Upstream health: active health checks and outlier detection
//!
//! Envoy's `HealthCheckerImplBase` and `Outlier::DetectorImpl`, the I/O
//! shells around the week 1 policies
//! ([`week1_core::cluster::health_checker`], [`week1_core::cluster::outlier`]).
//! Everything here runs on the main thread (its tokio dispatcher); workers
//! only read host flags through the cluster map the cluster manager publishes,
//! and report upstream results into each host's lock-free outlier monitor:
//!
//! ```text
//!  main thread                                                   workers
//!  ───────────                                                   ───────
//!  per host and health check: timer ─► Checker::run ─► session.on_result ─► host flags
//!  outlier task: wake / interval ─► detector.collect / on_interval ─► host flags
//!        │ Changed                                  ▲ wake (threshold reached)
//!        ▼                                          │
//!  publish(cluster) = ClusterManager::hosts_changed ─► new cluster map ─► slot ─► LB rebuild
//!                                    router: host.outlier().put_http_status / put_result ─┘
//! ```
//!
//! Warming, as Envoy's cluster initialization: hosts of a health-checked
//! cluster start `FAILED_ACTIVE_HC` (plus `PENDING_ACTIVE_HC` with
//! `common_lb_config.ignore_new_hosts_until_first_hc`), and the server starts
//! accepting on its listeners only when every host had its first check
//! ([`HealthManager::initial_checks_done`]; each check is bounded by its
//! `initial_jitter` and `timeout`). Hosts added later (EDS, DNS) start the
//! same way and are checked at once.
//!
//! A health-checked cluster added by CDS warms the same way: it stays off the
//! workers (the cluster manager's warming set) until each of its hosts had its
//! first check, then [`ClusterManager::finish_warming`] publishes it.
//!
//! Difference from Envoy: TCP checks open a connection per check
//! (`reuse_connection` applies to HTTP).

pub mod check;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use week1_core::cluster::Host;
use week1_core::cluster::health_checker::{
    CheckOutcome, HealthCheckPolicy, HealthCheckSession, HealthCheckStats, Transition,
    passive_immediate_failure,
};
use week1_core::cluster::info::ClusterInfo;
use week1_core::cluster::outlier::{
    Origin, OutlierDetector, OutlierStats, SuccessRateSummary, UpstreamResult,
};

pub use check::Checker;

use crate::cluster_manager::{ClusterEntry, ClusterManager};

/// Wakes the main thread's outlier task when a worker's report reaches a
/// threshold (`notify_one` keeps a permit, so no wake-up is lost).
static OUTLIER_WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

// ANCHOR: report
/// A worker saw `status` from `host` of cluster `info`: counts it in the
/// host's `rq_success`/`rq_error` and for outlier detection, and wakes the
/// main thread when a threshold is reached.
pub fn report_status(info: &ClusterInfo, host: &Host, status: u16) {
    let stats = host.stats();
    let counter = if status >= 500 { &stats.rq_error } else { &stats.rq_success };
    counter.fetch_add(1, Ordering::Relaxed);
    if let Some(policy) = &info.outlier_policy
        && host.outlier().put_http_status(policy, status)
    {
        OUTLIER_WAKE.notify_one();
    }
}

/// Hosts whose upstream response said `x-envoy-immediate-health-check-fail`,
/// from workers to the main thread's health manager (by cluster name).
static IMMEDIATE_FAILS: std::sync::OnceLock<
    tokio::sync::mpsc::UnboundedSender<(String, Arc<Host>)>,
> = std::sync::OnceLock::new();

/// A worker saw `x-envoy-immediate-health-check-fail` on a response from
/// `host`: when the cluster is actively health checked, the main thread
/// fails the host at once (Envoy's passive health-check failure, counted in
/// `health_check.passive_failure`). Off the request path's fast lane: only
/// responses carrying the header get here.
pub fn report_immediate_fail(info: &ClusterInfo, host: &Arc<Host>) {
    if info.health_checks.is_empty() {
        return;
    }
    if let Some(tx) = IMMEDIATE_FAILS.get() {
        let _ = tx.send((info.name.clone(), host.clone()));
    }
}

/// A worker saw a connect failure, reset or timeout (or a connection) that
/// is not an HTTP status; failures count in the host's `rq_error` (and
/// `rq_timeout`).
pub fn report_result(info: &ClusterInfo, host: &Host, result: UpstreamResult) {
    let stats = host.stats();
    match result {
        UpstreamResult::Timeout => {
            stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
            stats.rq_error.fetch_add(1, Ordering::Relaxed);
        }
        UpstreamResult::ConnectFailed => {
            stats.rq_error.fetch_add(1, Ordering::Relaxed);
        }
        UpstreamResult::ConnectSuccess | UpstreamResult::Success => {}
    }
    if let Some(policy) = &info.outlier_policy
        && host.outlier().put_result(policy, result)
    {
        OUTLIER_WAKE.notify_one();
    }
}
// ANCHOR_END: report

/// Counts the check sessions that have not had their first result yet
/// (Envoy's initial health-check pass that completes cluster warming).
#[derive(Default)]
struct FirstChecks {
    pending: std::cell::Cell<usize>,
    done: Notify,
}

/// Held by a check loop until its first result (or until it is aborted).
struct FirstCheckGuard(Rc<FirstChecks>);

impl FirstCheckGuard {
    fn new(first: &Rc<FirstChecks>) -> Self {
        first.pending.set(first.pending.get() + 1);
        Self(first.clone())
    }
}

impl Drop for FirstCheckGuard {
    fn drop(&mut self) {
        let left = self.0.pending.get().saturating_sub(1);
        self.0.pending.set(left);
        if left == 0 {
            self.0.done.notify_waiters();
        }
    }
}

/// Republishes a cluster after its hosts' flags changed (the cluster
/// manager's `hosts_changed`).
pub type Publish = Rc<dyn Fn(&str)>;

/// A warming cluster's hosts all had their first checks (the cluster
/// manager's `finish_warming` for that version of the cluster).
pub type Warmed = Rc<dyn Fn(&str, &Arc<ClusterInfo>)>;

thread_local! {
    /// The main thread's health manager, once started.
    static MAIN_HEALTH: RefCell<Option<Rc<HealthManager>>> = const { RefCell::new(None) };
}

// ANCHOR: start
/// Starts health checking and outlier detection of every serving cluster of
/// `clusters` (main thread, inside its tokio `LocalSet`); flag changes are
/// published with [`ClusterManager::hosts_changed`]. Returns the manager,
/// also reachable with [`main_health`].
pub fn start(clusters: &Rc<RefCell<ClusterManager>>) -> Rc<HealthManager> {
    let weak = Rc::downgrade(clusters);
    let publish: Publish = Rc::new(move |name: &str| {
        let Some(cm) = weak.upgrade() else { return };
        if let Err(e) = cm.borrow_mut().hosts_changed(name) {
            tracing::warn!("cluster {name}: cannot publish host health: {e}");
        }
    });
    let health = HealthManager::new(publish);
    let weak = Rc::downgrade(clusters);
    *health.warmed.borrow_mut() = Some(Rc::new(move |name: &str, info: &Arc<ClusterInfo>| {
        let Some(cm) = weak.upgrade() else { return };
        match cm.borrow_mut().finish_warming(name, info) {
            Ok(true) => tracing::info!("cluster {name}: warmed (every host had its first check)"),
            Ok(false) => {}
            Err(e) => tracing::warn!("cluster {name}: cannot publish the warmed cluster: {e}"),
        }
    }));
    health.sync(&clusters.borrow());
    MAIN_HEALTH.with(|h| *h.borrow_mut() = Some(health.clone()));
    health.receive_immediate_fails();
    health
}
// ANCHOR_END: start

/// The main thread's health manager (`None` elsewhere or before [`start`]).
/// Whoever adds, updates or removes clusters or hosts (CDS, EDS, DNS) calls
/// [`HealthManager::sync`] afterwards.
pub fn main_health() -> Option<Rc<HealthManager>> {
    MAIN_HEALTH.with(|h| h.borrow().clone())
}

/// Every host of a cluster entry, all priorities.
pub fn all_hosts(entry: &ClusterEntry) -> Vec<Arc<Host>> {
    entry.priority_set.host_sets().iter().flat_map(|hs| hs.hosts().iter().cloned()).collect()
}

/// A cluster's health stats, for the stats sink and `/clusters`.
#[derive(Debug, Clone)]
pub struct ClusterHealthStats {
    /// `cluster.<name>.health_check.*` (when the cluster has health checks).
    pub health_check: Option<Arc<HealthCheckStats>>,
    /// `cluster.<name>.outlier_detection.*` (when it has outlier detection).
    pub outlier_detection: Option<Arc<OutlierStats>>,
}

/// Copies a week 1 stats struct (atomics the sans-IO policies count into)
/// into the stats store under `scope`: counters get the increase since the
/// last copy, gauges the value. Runs on the main thread after each change.
struct StatsMirror {
    scope: crate::stats::Scope,
    counters: FxHashMap<String, (crate::stats::Counter, u64)>,
}

impl StatsMirror {
    fn new(scope: crate::stats::Scope) -> Self {
        Self { scope, counters: FxHashMap::default() }
    }

    fn copy(&mut self, values: &[(String, u64)], gauges: &[&str]) {
        for (name, value) in values {
            if gauges.contains(&name.as_str()) {
                self.scope.gauge(name).set(i64::try_from(*value).unwrap_or(i64::MAX));
                continue;
            }
            let scope = &self.scope;
            let (counter, last) =
                self.counters.entry(name.clone()).or_insert_with(|| (scope.counter(name), 0));
            counter.add(value.saturating_sub(*last));
            *last = *value;
        }
    }
}

fn hc_values(stats: &HealthCheckStats) -> Vec<(String, u64)> {
    stats.values().iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

/// One health check of a cluster.
struct CheckConfig {
    checker: Checker,
    policy: HealthCheckPolicy,
}

/// A cluster's health state (main thread).
struct ClusterHealth {
    name: String,
    checks: Vec<Rc<CheckConfig>>,
    hc_stats: Arc<HealthCheckStats>,
    outlier: Option<RefCell<OutlierDetector>>,
    next_sweep: RefCell<tokio::time::Instant>,
    hosts: RefCell<Vec<Arc<Host>>>,
    /// `cluster.<name>.health_check.*` in the stats store.
    hc_mirror: RefCell<StatsMirror>,
    /// `cluster.<name>.outlier_detection.*` in the stats store.
    outlier_mirror: RefCell<StatsMirror>,
    /// The running check tasks, per host.
    tasks: RefCell<Vec<(Arc<Host>, Vec<AbortHandle>)>>,
    /// This cluster's hosts still waiting for their first check (warming).
    first_checks: Rc<FirstChecks>,
}

impl ClusterHealth {
    fn copy_stats(&self) {
        self.hc_mirror.borrow_mut().copy(&hc_values(&self.hc_stats), &["healthy", "degraded"]);
        if let Some(d) = &self.outlier {
            let values = d.borrow().stats().values();
            self.outlier_mirror.borrow_mut().copy(&values, &["ejections_active"]);
        }
    }

    fn had_traffic(&self) -> bool {
        self.hosts.borrow().iter().any(|h| h.stats().cx_total.load(Ordering::Relaxed) > 0)
    }
}

impl Drop for ClusterHealth {
    fn drop(&mut self) {
        for (_, tasks) in self.tasks.get_mut().drain(..) {
            tasks.iter().for_each(AbortHandle::abort);
        }
    }
}

// ANCHOR: health_manager
/// Every cluster's health checkers and outlier detector (main thread only).
pub struct HealthManager {
    clusters: RefCell<FxHashMap<String, Rc<ClusterHealth>>>,
    publish: Publish,
    outlier_task: RefCell<Option<AbortHandle>>,
    first_checks: Rc<FirstChecks>,
    /// Called when a warming cluster's first checks are done.
    warmed: RefCell<Option<Warmed>>,
    /// The version (`ClusterInfo`) of each warming cluster being waited for.
    warm_waiters: RefCell<FxHashMap<String, Arc<ClusterInfo>>>,
}
// ANCHOR_END: health_manager

impl std::fmt::Debug for HealthManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthManager")
            .field("clusters", &self.clusters.borrow().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Drop for HealthManager {
    fn drop(&mut self) {
        if let Some(task) = self.outlier_task.get_mut().take() {
            task.abort();
        }
    }
}

impl HealthManager {
    /// A manager that calls `publish(cluster)` when host flags changed.
    pub fn new(publish: Publish) -> Rc<Self> {
        Rc::new(Self {
            clusters: RefCell::new(FxHashMap::default()),
            publish,
            outlier_task: RefCell::new(None),
            first_checks: Rc::default(),
            warmed: RefCell::new(None),
            warm_waiters: RefCell::new(FxHashMap::default()),
        })
    }

    // ANCHOR: initial_checks_done
    /// Resolves when every host being checked has had its first result of
    /// every check, pass or fail (at once when nothing is checked): the
    /// server's listeners wait for this, as Envoy's cluster manager
    /// initialization waits for each cluster's initial health-check pass.
    pub async fn initial_checks_done(&self) {
        loop {
            let done = self.first_checks.done.notified();
            if self.first_checks.pending.get() == 0 {
                return;
            }
            done.await;
        }
    }
    // ANCHOR_END: initial_checks_done

    /// Starts health checking and outlier detection of a cluster with these
    /// hosts, or follows a change of them (hosts that stay keep their check
    /// sessions and ejection state; new hosts are checked at once). A changed
    /// cluster config restarts its checkers. Must run on the main thread's
    /// tokio `LocalSet`.
    pub fn set_cluster(self: &Rc<Self>, entry: &ClusterEntry, hosts: Vec<Arc<Host>>) {
        let info = &entry.info;
        if info.health_checks.is_empty() && info.outlier_policy.is_none() {
            self.remove_cluster(&info.name);
            return;
        }
        let existing = self.clusters.borrow().get(&info.name).cloned();
        let cluster = match existing.filter(|c| same_config(c, info)) {
            Some(c) => c,
            None => {
                let c = Rc::new(new_cluster(info, entry.pool.stats.scope()));
                c.copy_stats();
                self.clusters.borrow_mut().insert(info.name.clone(), c.clone());
                c
            }
        };
        if let Some(detector) = &cluster.outlier {
            detector.borrow_mut().set_hosts(&hosts);
        }
        // Stop checking hosts that left; start checking new ones.
        let mut tasks = cluster.tasks.borrow_mut();
        tasks.retain(|(h, handles)| {
            let stays = hosts.iter().any(|n| Arc::ptr_eq(n, h));
            if !stays {
                handles.iter().for_each(AbortHandle::abort);
            }
            stays
        });
        for host in &hosts {
            if tasks.iter().any(|(h, _)| Arc::ptr_eq(h, host)) {
                continue;
            }
            let handles = cluster
                .checks
                .iter()
                .map(|check| {
                    let first = [
                        FirstCheckGuard::new(&self.first_checks),
                        FirstCheckGuard::new(&cluster.first_checks),
                    ];
                    let run = check_loop(
                        Rc::downgrade(&cluster),
                        check.clone(),
                        host.clone(),
                        self.publish.clone(),
                        first,
                    );
                    tokio::task::spawn_local(run).abort_handle()
                })
                .collect();
            tasks.push((host.clone(), handles));
        }
        drop(tasks);
        *cluster.hosts.borrow_mut() = hosts;
        if cluster.outlier.is_some() {
            self.ensure_outlier_task();
        }
    }

    /// Follows the cluster manager after CDS/EDS/DNS changed clusters or
    /// hosts: starts, updates and stops checkers to match its serving
    /// clusters and the warming ones that have their hosts (whose first
    /// checks end their warming).
    pub fn sync(self: &Rc<Self>, clusters: &ClusterManager) {
        let warming = clusters.warming().filter(|c| clusters.awaits_first_checks(&c.config.name));
        let warming: Vec<_> = warming.map(|c| c.entry.clone()).collect();
        let serving: Vec<_> = clusters.active().map(|c| c.entry.clone()).collect();
        let known = |name: &str| serving.iter().chain(&warming).any(|e| e.info.name == name);
        self.clusters.borrow_mut().retain(|name, _| known(name));
        self.warm_waiters.borrow_mut().retain(|name, _| known(name));
        for entry in serving {
            self.set_cluster(&entry, all_hosts(&entry));
        }
        for entry in warming {
            self.set_cluster(&entry, all_hosts(&entry));
            self.wait_warmed(&entry.info);
        }
    }

    /// Applies the passive failures workers report ([`report_immediate_fail`])
    /// on this thread, for as long as the manager lives. One process has one
    /// main thread: the first manager to start receives them.
    fn receive_immediate_fails(self: &Rc<Self>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        if IMMEDIATE_FAILS.set(tx).is_err() {
            return;
        }
        let manager = Rc::downgrade(self);
        tokio::task::spawn_local(async move {
            while let Some((cluster, host)) = rx.recv().await {
                let Some(m) = manager.upgrade() else { return };
                let Some(c) = m.clusters.borrow().get(&cluster).cloned() else { continue };
                if !c.hosts.borrow().iter().any(|h| Arc::ptr_eq(h, &host)) {
                    continue; // the host left the cluster meanwhile
                }
                let transition = passive_immediate_failure(&host, &c.hc_stats);
                tracing::warn!(
                    "cluster {cluster}: host {} answered x-envoy-immediate-health-check-fail",
                    host.address()
                );
                c.copy_stats();
                if transition == Transition::Changed {
                    (m.publish)(&cluster);
                }
            }
        });
    }

    // ANCHOR: wait_warmed
    /// Once every host of this version of a warming cluster had its first
    /// check, calls `warmed` (the cluster manager publishes it). One waiter
    /// per version; a newer version gets its own.
    fn wait_warmed(self: &Rc<Self>, info: &Arc<ClusterInfo>) {
        let mut waiters = self.warm_waiters.borrow_mut();
        if waiters.get(&info.name).is_some_and(|w| Arc::ptr_eq(w, info)) {
            return;
        }
        waiters.insert(info.name.clone(), info.clone());
        drop(waiters);
        let without_checks = Rc::new(FirstChecks::default());
        let first = match self.clusters.borrow().get(&info.name) {
            Some(c) => c.first_checks.clone(),
            None => without_checks, // no checks run (none configured or none usable)
        };
        let (manager, info) = (Rc::downgrade(self), info.clone());
        tokio::task::spawn_local(async move {
            loop {
                let done = first.done.notified();
                if first.pending.get() == 0 {
                    break;
                }
                done.await;
            }
            let Some(m) = manager.upgrade() else { return };
            let warmed = m.warmed.borrow().clone();
            m.warm_waiters.borrow_mut().remove(&info.name);
            if let Some(warmed) = warmed {
                warmed(&info.name, &info);
            }
        });
    }
    // ANCHOR_END: wait_warmed

    /// Stops checking a removed cluster.
    pub fn remove_cluster(&self, name: &str) {
        self.clusters.borrow_mut().remove(name);
    }

    /// A cluster's health stats, if it has checks or outlier detection.
    pub fn stats(&self, name: &str) -> Option<ClusterHealthStats> {
        let clusters = self.clusters.borrow();
        let c = clusters.get(name)?;
        Some(ClusterHealthStats {
            health_check: (!c.checks.is_empty()).then(|| c.hc_stats.clone()),
            outlier_detection: c.outlier.as_ref().map(|d| d.borrow().stats().clone()),
        })
    }

    /// A cluster's last success-rate analyses (external, local origin), if
    /// it has outlier detection (`/clusters`' `outlier::` lines).
    pub fn success_rate_summaries(&self, name: &str) -> Option<[SuccessRateSummary; 2]> {
        let clusters = self.clusters.borrow();
        let d = clusters.get(name)?.outlier.as_ref()?.borrow();
        Some([d.success_rate_summary(Origin::External), d.success_rate_summary(Origin::Local)])
    }

    fn ensure_outlier_task(self: &Rc<Self>) {
        if self.outlier_task.borrow().is_some() {
            return;
        }
        let manager = Rc::downgrade(self);
        let task = tokio::task::spawn_local(async move {
            loop {
                let next = match manager.upgrade() {
                    Some(m) => m.next_sweep(),
                    None => return,
                };
                tokio::select! {
                    _ = OUTLIER_WAKE.notified() => {}
                    _ = tokio::time::sleep_until(next) => {}
                }
                let Some(m) = manager.upgrade() else { return };
                m.run_outlier_detection();
            }
        });
        *self.outlier_task.borrow_mut() = Some(task.abort_handle());
    }

    fn next_sweep(&self) -> tokio::time::Instant {
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        self.clusters
            .borrow()
            .values()
            .filter(|c| c.outlier.is_some())
            .map(|c| *c.next_sweep.borrow())
            .min()
            .unwrap_or(far)
    }

    /// Takes pending ejections and runs due interval sweeps; republishes
    /// clusters whose hosts changed.
    fn run_outlier_detection(&self) {
        let now = tokio::time::Instant::now();
        let clusters: Vec<Rc<ClusterHealth>> = self.clusters.borrow().values().cloned().collect();
        for c in clusters {
            let Some(detector) = &c.outlier else { continue };
            let changed = {
                let mut d = detector.borrow_mut();
                let mut random = crate::random::next_u64;
                let mut changed = d.collect(now.into_std(), &mut random);
                if now >= *c.next_sweep.borrow() {
                    changed |= d.on_interval(now.into_std(), &mut random);
                    *c.next_sweep.borrow_mut() = now + d.policy().interval;
                }
                changed
            };
            c.copy_stats();
            if changed {
                tracing::info!("cluster {}: outlier detection changed host health", c.name);
                (self.publish)(&c.name);
            }
        }
    }
}

fn same_config(c: &ClusterHealth, info: &ClusterInfo) -> bool {
    let policies: Vec<_> = info.health_checks.iter().map(HealthCheckPolicy::from_config).collect();
    c.checks.len() == policies.len()
        && c.checks.iter().zip(&policies).all(|(a, b)| a.policy == *b)
        && c.outlier.as_ref().map(|d| d.borrow().policy().clone()) == info.outlier_policy
}

fn new_cluster(info: &ClusterInfo, scope: &crate::stats::Scope) -> ClusterHealth {
    let checks = info
        .health_checks
        .iter()
        .filter_map(|hc| match Checker::from_config(hc, &info.name) {
            Ok(checker) => {
                Some(Rc::new(CheckConfig { checker, policy: HealthCheckPolicy::from_config(hc) }))
            }
            Err(e) => {
                tracing::error!("cluster {}: health check not run: {e}", info.name);
                None
            }
        })
        .collect();
    let outlier = info.outlier_policy.clone().map(|p| {
        let interval = p.interval;
        (RefCell::new(OutlierDetector::new(p, &[], Arc::new(OutlierStats::default()))), interval)
    });
    let now = tokio::time::Instant::now();
    ClusterHealth {
        name: info.name.clone(),
        checks,
        hc_stats: Arc::new(HealthCheckStats::default()),
        next_sweep: RefCell::new(now + outlier.as_ref().map_or(Duration::ZERO, |(_, i)| *i)),
        outlier: outlier.map(|(d, _)| d),
        hosts: RefCell::new(Vec::new()),
        hc_mirror: RefCell::new(StatsMirror::new(scope.scope("health_check"))),
        outlier_mirror: RefCell::new(StatsMirror::new(scope.scope("outlier_detection"))),
        tasks: RefCell::new(Vec::new()),
        first_checks: Rc::default(),
    }
}

// ANCHOR: check_loop
/// Checks one host with one health check until aborted (host or cluster removed).
async fn check_loop(
    cluster: std::rc::Weak<ClusterHealth>,
    check: Rc<CheckConfig>,
    host: Arc<Host>,
    publish: Publish,
    first: [FirstCheckGuard; 2],
) {
    let mut first = Some(first);
    let mut session = HealthCheckSession::new();
    let mut kept: Option<TcpStream> = None;
    tokio::time::sleep(check.policy.first_check_in(crate::random::next_u64())).await;
    loop {
        let Some(c) = cluster.upgrade() else { return };
        let stats = c.hc_stats.clone();
        drop(c);
        stats.attempt.fetch_add(1, Ordering::Relaxed);
        let outcome = check.checker.run(host.address(), check.policy.timeout, &mut kept).await;
        let Some(c) = cluster.upgrade() else { return };
        let mut random = crate::random::next_u64;
        let before = host.health_flags();
        let decision =
            session.on_result(&host, outcome, &check.policy, c.had_traffic(), &stats, &mut random);
        if decision.log_failure {
            tracing::warn!(
                "cluster {}: health check of {} failed: {outcome:?}",
                c.name,
                host.address()
            );
        }
        c.copy_stats();
        let mut changed = decision.transition == Transition::Changed;
        if matches!(outcome, CheckOutcome::Success { .. })
            && let Some(detector) = &c.outlier
        {
            let now = tokio::time::Instant::now().into_std();
            changed |= detector.borrow_mut().on_active_check_success(&host, now);
        }
        if changed {
            tracing::info!(
                "cluster {}: host {} health flags {:?} -> {:?}",
                c.name,
                host.address(),
                before,
                host.health_flags()
            );
            publish(&c.name);
        }
        drop(c);
        // After the flags are published: the host's first result counts.
        drop(first.take());
        tokio::time::sleep(decision.next_check_in).await;
    }
}
// ANCHOR_END: check_loop
