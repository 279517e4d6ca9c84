//! # Exercise `backoff`: reconnecting to the control plane (week 4, day 2)
//!
//! When the xDS stream breaks, a thousand Envoys must not all reconnect at the
//! same instant. Envoy waits a random delay drawn from `[0, interval)` ("full
//! jitter"), and doubles the interval after each failure up to a cap (xDS:
//! 500 ms doubling to 30 s); a message on the stream resets it. Build it with
//! injected randomness (week 4's [`RandomSource`]), so tests are exact.
//!
//! ## Task
//!
//! Implement [`Backoff`]:
//!
//! - [`Backoff::new`]: the interval starts at `base`. A zero `base` is taken
//!   as 1 ms; a `max` below `base` is raised to `base`.
//! - [`Backoff::next_delay`]: take the current interval, then double it for
//!   next time (never above `max`, never overflowing), and return
//!   `random.next_u64() % interval` in nanoseconds (as a `Duration`).
//! - [`Backoff::reset`]: back to `base`.
//! - [`Backoff::current_interval`]: the interval the next delay is drawn from.
//!
//! Run `cargo run -p exercises -- verify backoff`.

use std::time::Duration;

use week4_xds::backoff::RandomSource;

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `base`, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        todo!()
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self, random: &mut dyn RandomSource) -> Duration {
        todo!()
    }

    /// Back to the base interval.
    pub fn reset(&mut self) {
        todo!()
    }

    /// The interval the next delay is drawn from.
    pub fn current_interval(&self) -> Duration {
        todo!()
    }
}
