//! Reference solution of `drain`. The real manager
//! (`week4_xds::drain::DrainManager`) is shared across threads, has a parent
//! (the server's drain), counts connections and closes them at the deadline.

use std::time::{Duration, Instant};

pub use week4_xds::drain::DrainStrategy;

/// The drain state of a listener.
#[derive(Debug, Clone)]
pub struct Drain {
    drain_time: Duration,
    strategy: DrainStrategy,
    started: Option<Instant>,
}

impl Drain {
    /// Not draining yet.
    pub fn new(drain_time: Duration, strategy: DrainStrategy) -> Self {
        Self { drain_time, strategy, started: None }
    }

    /// Starts draining (idempotent).
    pub fn start(&mut self, now: Instant) {
        self.started.get_or_insert(now);
    }

    /// Whether new connections may be accepted.
    pub fn is_accepting(&self) -> bool {
        self.started.is_none()
    }

    /// When the remaining connections will be closed.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|s| s + self.drain_time)
    }

    /// Whether the response sent at `now` should carry `Connection: close`.
    pub fn drain_close(&self, now: Instant, random: u64) -> bool {
        let Some(start) = self.started else { return false };
        let total = u64::try_from(self.drain_time.as_millis()).unwrap_or(u64::MAX);
        if self.strategy == DrainStrategy::Immediate || total == 0 {
            return true;
        }
        let elapsed =
            u64::try_from(now.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX);
        elapsed >= total || random % total < elapsed
    }
}
