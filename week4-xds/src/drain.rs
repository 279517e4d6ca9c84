//! Graceful draining (Envoy's `DrainManagerImpl` and the listener manager's
//! per-listener drain).
//!
//! When a listener is updated or removed, or the server shuts down, Envoy does
//! not cut connections: it stops accepting on the old listener, asks clients to
//! go away (`Connection: close` on HTTP/1.1 responses) with a probability that
//! ramps up over `drain_time`, and closes whatever is left at the deadline.
//!
//! ```text
//!  start_drain_sequence(now) ──► accepting = false
//!        │
//!        ├─ drain_close(now, random)  gradual: P(close) = elapsed / drain_time
//!        │                            immediate: always
//!        ├─ ConnectionGuard dropped ──► count 0 ──► wait_idle() resolves (no polling)
//!        └─ deadline ──► force_close ──► ConnectionGuard::force_closed() resolves
//! ```
//!
//! A [`DrainManager`] is cheap to clone (shared state). Each listener gets a
//! [`DrainManager::child`] of the server's: it drains on its own when replaced
//! ([`ListenerDrains`]), and also whenever the server drains.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Envoy's default `--drain-time-s`.
pub const DEFAULT_DRAIN_TIME: Duration = Duration::from_secs(600);

/// `--drain-strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrainStrategy {
    /// The chance to close a connection grows linearly over the drain time.
    #[default]
    Gradual,
    /// Every connection is asked to close as soon as draining starts.
    Immediate,
}

impl std::str::FromStr for DrainStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gradual" => Ok(Self::Gradual),
            "immediate" => Ok(Self::Immediate),
            other => {
                Err(format!("unknown drain strategy {other:?} (expected gradual or immediate)"))
            }
        }
    }
}

/// How a drain behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainConfig {
    /// `--drain-time-s`: how long the drain lasts before connections are closed.
    pub drain_time: Duration,
    /// `--drain-strategy`.
    pub strategy: DrainStrategy,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self { drain_time: DEFAULT_DRAIN_TIME, strategy: DrainStrategy::Gradual }
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every connection finished before the deadline.
    Completed,
    /// The deadline passed; this many connections were told to close.
    ForcedClose {
        /// Connections still open at the deadline.
        remaining: usize,
    },
}

#[derive(Debug)]
struct Inner {
    config: DrainConfig,
    parent: Option<DrainManager>,
    started: Mutex<Option<Instant>>,
    /// Turns true when the drain starts (connections wait on it).
    draining: watch::Sender<bool>,
    connections: watch::Sender<usize>,
    accepting: watch::Sender<bool>,
    force_close: watch::Sender<bool>,
}

/// Drain state of the server or of one listener. See the module docs.
#[derive(Debug, Clone)]
pub struct DrainManager {
    inner: Arc<Inner>,
}

impl DrainManager {
    /// A manager that is not draining.
    pub fn new(config: DrainConfig) -> Self {
        Self::build(config, None)
    }

    fn build(config: DrainConfig, parent: Option<DrainManager>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                parent,
                started: Mutex::new(None),
                draining: watch::Sender::new(false),
                connections: watch::Sender::new(0),
                accepting: watch::Sender::new(true),
                force_close: watch::Sender::new(false),
            }),
        }
    }

    /// A per-listener manager with the same settings: it drains on its own, and
    /// also while this one drains.
    pub fn child(&self) -> DrainManager {
        Self::build(self.inner.config, Some(self.clone()))
    }

    /// The settings.
    pub fn config(&self) -> DrainConfig {
        self.inner.config
    }

    fn started(&self) -> MutexGuard<'_, Option<Instant>> {
        self.inner.started.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts draining at `now` (idempotent): stop accepting, start the ramp.
    pub fn start_drain_sequence(&self, now: Instant) {
        self.start_draining_connections(now);
        self.stop_accepting();
    }

    /// Starts the ramp at `now` (idempotent) while the listener still
    /// accepts: Envoy's `/drain_listeners?graceful` drain period, after which
    /// the caller calls [`stop_accepting`](Self::stop_accepting).
    pub fn start_draining_connections(&self, now: Instant) {
        let mut started = self.started();
        if started.is_none() {
            *started = Some(now);
            self.inner.draining.send_replace(true);
        }
    }

    /// Stops accepting new connections (idempotent).
    pub fn stop_accepting(&self) {
        self.inner.accepting.send_replace(false);
    }

    /// Resolves when this manager (or its parent) starts draining: a
    /// connection then closes when idle and says `Connection: close`.
    pub async fn wait_drain_started(&self) {
        let mut own = self.inner.draining.subscribe();
        match &self.inner.parent {
            None => {
                let _ = own.wait_for(|d| *d).await;
            }
            Some(parent) => {
                let mut parent_rx = parent.inner.draining.subscribe();
                tokio::select! {
                    _ = own.wait_for(|d| *d) => {}
                    _ = parent_rx.wait_for(|d| *d) => {}
                }
            }
        }
    }

    /// When this manager started draining.
    pub fn drain_started(&self) -> Option<Instant> {
        *self.started()
    }

    /// Whether this manager or its parent is draining.
    pub fn draining(&self) -> bool {
        self.drain_started().is_some() || self.inner.parent.as_ref().is_some_and(Self::draining)
    }

    /// When connections will be closed regardless: start + drain_time.
    pub fn deadline(&self) -> Option<Instant> {
        self.drain_started().map(|s| s + self.inner.config.drain_time)
    }

    // ANCHOR: drain_close
    /// Whether the response being sent now should carry `Connection: close`
    /// (Envoy's `drainClose()`). Immediate: always, once draining. Gradual: with
    /// probability `elapsed / drain_time`, decided by `random`, so the load
    /// moves away smoothly instead of reconnecting all at once.
    pub fn drain_close(&self, now: Instant, random: u64) -> bool {
        let own = self.drain_started().is_some_and(|start| {
            let cfg = self.inner.config;
            let total = u64::try_from(cfg.drain_time.as_millis()).unwrap_or(u64::MAX);
            if cfg.strategy == DrainStrategy::Immediate || total == 0 {
                return true;
            }
            let elapsed =
                u64::try_from(now.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX);
            elapsed >= total || random % total < elapsed
        });
        own || self.inner.parent.as_ref().is_some_and(|p| p.drain_close(now, random))
    }
    // ANCHOR_END: drain_close

    /// Whether new connections may be accepted.
    pub fn is_accepting(&self) -> bool {
        *self.inner.accepting.borrow()
    }

    /// Resolves when this manager stops accepting (the accept loop selects on it).
    pub async fn stopped_accepting(&self) {
        let mut rx = self.inner.accepting.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|accepting| !*accepting).await;
    }

    /// Tracks a new connection until the guard is dropped.
    pub fn track(&self) -> ConnectionGuard {
        self.inner.connections.send_modify(|n| *n += 1);
        let parent = self
            .inner
            .parent
            .as_ref()
            .map(|p| (p.inner.draining.subscribe(), p.inner.force_close.subscribe()));
        ConnectionGuard {
            manager: self.clone(),
            draining: self.inner.draining.subscribe(),
            force_close: self.inner.force_close.subscribe(),
            parent,
        }
    }

    /// Connections open now.
    pub fn active_connections(&self) -> usize {
        *self.inner.connections.borrow()
    }

    /// Resolves when no connection is open (immediately if none is).
    pub async fn wait_idle(&self) {
        let mut rx = self.inner.connections.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Tells every tracked connection to close now.
    pub fn force_close(&self) {
        self.inner.force_close.send_replace(true);
    }

    /// Starts draining (if not yet) and waits until every connection has
    /// closed or the deadline passes; at the deadline the remaining
    /// connections are force-closed. Uses tokio time, so tests can pause it.
    pub async fn drain(&self) -> DrainOutcome {
        let now = tokio::time::Instant::now();
        self.start_drain_sequence(now.into_std());
        let deadline = self
            .deadline()
            .map(tokio::time::Instant::from_std)
            .unwrap_or(now + self.inner.config.drain_time);
        tokio::select! {
            () = self.wait_idle() => DrainOutcome::Completed,
            () = tokio::time::sleep_until(deadline) => {
                let remaining = self.active_connections();
                if remaining == 0 {
                    DrainOutcome::Completed
                } else {
                    self.force_close();
                    DrainOutcome::ForcedClose { remaining }
                }
            }
        }
    }
}

/// Keeps a connection counted; dropping it (the connection closed) may
/// complete the drain.
///
/// It subscribes once to what a connection waits for (its manager's and the
/// parent's drain start and force-close), so a connection that waits many
/// times (each request, each read) does not subscribe again each time.
#[derive(Debug)]
pub struct ConnectionGuard {
    manager: DrainManager,
    draining: watch::Receiver<bool>,
    force_close: watch::Receiver<bool>,
    /// The parent's (the server's) drain start and force-close.
    parent: Option<(watch::Receiver<bool>, watch::Receiver<bool>)>,
}

impl ConnectionGuard {
    /// The manager this connection belongs to (for `drain_close`).
    pub fn manager(&self) -> &DrainManager {
        &self.manager
    }

    /// Resolves when this connection's manager (or its parent) starts
    /// draining ([`DrainManager::wait_drain_started`]), as a future that owns
    /// what it waits on: a connection keeps it across its waits (registered
    /// once, polled cheaply) instead of building a new wait each time.
    pub fn drain_started_owned(&self) -> impl Future<Output = ()> + Send + 'static {
        either_true(self.draining.clone(), self.parent.as_ref().map(|(d, _)| d.clone()))
    }

    /// Resolves when the drain deadline force-closes connections (of this
    /// manager or, for a listener, of the server), as an owned future.
    pub fn force_closed_owned(&self) -> impl Future<Output = ()> + Send + 'static {
        either_true(self.force_close.clone(), self.parent.as_ref().map(|(_, f)| f.clone()))
    }

    /// [`force_closed_owned`](Self::force_closed_owned), awaited.
    pub async fn force_closed(&mut self) {
        self.force_closed_owned().await;
    }
}

/// Resolves when `own` (or `parent`, if any) holds `true`.
async fn either_true(mut own: watch::Receiver<bool>, parent: Option<watch::Receiver<bool>>) {
    match parent {
        None => {
            let _ = own.wait_for(|v| *v).await;
        }
        Some(mut parent) => {
            tokio::select! {
                _ = own.wait_for(|v| *v) => {}
                _ = parent.wait_for(|v| *v) => {}
            }
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.manager.inner.connections.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Per-listener drains (Envoy's listener manager): replacing or removing a
/// listener drains the old generation while the new one accepts at once.
#[derive(Debug)]
pub struct ListenerDrains {
    server: DrainManager,
    active: BTreeMap<String, DrainManager>,
    draining: Vec<(String, DrainManager)>,
}

impl ListenerDrains {
    /// Listeners drained under `server`'s settings.
    pub fn new(server: DrainManager) -> Self {
        Self { server, active: BTreeMap::new(), draining: Vec::new() }
    }

    /// A listener is added or updated: returns the new generation's manager;
    /// the old generation (if any) starts draining at `now` and is returned too.
    pub fn replace(&mut self, name: &str, now: Instant) -> (DrainManager, Option<DrainManager>) {
        let fresh = self.server.child();
        let old = self.active.insert(name.to_string(), fresh.clone());
        if let Some(old) = &old {
            old.start_drain_sequence(now);
            self.draining.push((name.to_string(), old.clone()));
        }
        (fresh, old)
    }

    /// A listener is removed: its manager starts draining and is returned.
    pub fn remove(&mut self, name: &str, now: Instant) -> Option<DrainManager> {
        let old = self.active.remove(name)?;
        old.start_drain_sequence(now);
        self.draining.push((name.to_string(), old.clone()));
        Some(old)
    }

    /// The current generation of a listener.
    pub fn get(&self, name: &str) -> Option<&DrainManager> {
        self.active.get(name)
    }

    /// Old generations still holding connections (finished ones are dropped).
    pub fn draining(&mut self) -> &[(String, DrainManager)] {
        self.draining.retain(|(_, m)| m.active_connections() > 0);
        &self.draining
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradual(secs: u64) -> DrainManager {
        DrainManager::new(DrainConfig {
            drain_time: Duration::from_secs(secs),
            strategy: DrainStrategy::Gradual,
        })
    }

    #[test]
    fn gradual_probability_ramps_linearly() {
        let m = gradual(100);
        let t = Instant::now();
        assert!(!m.drain_close(t, 0), "not draining yet");
        m.start_drain_sequence(t);
        // Count closes over a uniform sweep of random values at several times.
        let total_ms = 100_000u64;
        for pct in [0u64, 10, 50, 90] {
            let now = t + Duration::from_millis(total_ms * pct / 100);
            let closes = (0..total_ms).step_by(100).filter(|r| m.drain_close(now, *r)).count();
            assert_eq!(closes as u64, pct * 10, "at {pct}%");
        }
        assert!(m.drain_close(t + Duration::from_secs(100), u64::MAX));
        assert!(m.drain_close(t + Duration::from_secs(500), 99_999));
    }

    #[test]
    fn immediate_always_closes_and_children_follow_the_server() {
        let server = DrainManager::new(DrainConfig {
            drain_time: Duration::from_secs(600),
            strategy: DrainStrategy::Immediate,
        });
        let listener = server.child();
        let t = Instant::now();
        assert!(!listener.draining() && listener.is_accepting());
        server.start_drain_sequence(t);
        assert!(listener.draining());
        assert!(listener.drain_close(t, 12345));
        assert_eq!("gradual".parse(), Ok(DrainStrategy::Gradual));
        assert!("slow".parse::<DrainStrategy>().is_err());
    }

    #[test]
    fn start_is_idempotent_and_stops_accepting() {
        let m = gradual(10);
        let t = Instant::now();
        m.start_drain_sequence(t);
        m.start_drain_sequence(t + Duration::from_secs(5));
        assert_eq!(m.drain_started(), Some(t));
        assert_eq!(m.deadline(), Some(t + Duration::from_secs(10)));
        assert!(!m.is_accepting());
    }

    #[test]
    fn listener_replacement_drains_only_the_old_generation() {
        let mut l = ListenerDrains::new(gradual(600));
        let t = Instant::now();
        let (first, old) = l.replace("http", t);
        assert!(old.is_none());
        let conn = first.track();
        let (second, old) = l.replace("http", t);
        let old = old.expect("old generation");
        assert!(!old.is_accepting() && old.draining());
        assert!(second.is_accepting() && !second.draining());
        assert_eq!(l.draining().len(), 1);
        drop(conn);
        assert!(l.draining().is_empty());
        assert!(l.remove("http", t).is_some_and(|m| !m.is_accepting()));
        assert!(l.get("http").is_none());
    }
}
