//! # Exercise `backoff`: reconnecting to the control plane (week 4, day 2)
//!
//! When the xDS stream breaks, a thousand Envoys must not all reconnect at the
//! same instant. Envoy waits a random delay drawn from `[0, interval)` ("full
//! jitter"), where the interval starts at a base and doubles after each
//! failure up to a cap (xDS: 500 ms doubling to 30 s); a message on the
//! stream starts over from the base. Build it as pure functions of the
//! attempt number, with the randomness passed in, so every case is exact.
//!
//! ## Task
//!
//! - [`Schedule::new`]: a zero `base` is taken as 1 ms; a `max` below the
//!   base is raised to it.
//! - [`Schedule::interval`]: the interval of failure number `attempt`
//!   (0 for the first): `base`, doubled `attempt` times, never above `max` and
//!   never overflowing (`Duration::saturating_mul`). Bound your loop: once
//!   the interval stops growing, it is final.
//! - [`Schedule::delay`]: `random % interval`, in nanoseconds, as a
//!   `Duration` (week 4's
//!   [`RandomSource`](week4_xds::backoff::RandomSource) supplies `random` in mini-envoy).
//!
//! mini-envoy's `Backoff` keeps the next interval as state instead; the
//! checks hold your functions to the same sequence.
//!
//! Run `cargo run -p exercises -- verify backoff`.

use std::time::Duration;

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    base: Duration,
    max: Duration,
}

impl Schedule {
    /// Starts at `base`, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        todo!()
    }

    /// The interval of failure number `attempt` (0 = the first).
    pub fn interval(&self, attempt: u32) -> Duration {
        todo!()
    }

    /// The delay before reconnecting after failure number `attempt`.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        todo!()
    }
}
