//! Reference solution of `backoff`: the interval as a function of the attempt.
//! `week4_xds::backoff::Backoff` keeps the next interval as state instead.

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
        let base = base.max(Duration::from_millis(1));
        Self { base, max: max.max(base) }
    }

    /// The interval of failure number `attempt` (0 = the first).
    pub fn interval(&self, attempt: u32) -> Duration {
        let mut interval = self.base;
        for _ in 0..attempt {
            let doubled = interval.saturating_mul(2).min(self.max);
            if doubled == interval {
                break; // at the cap (or saturated): it stays there
            }
            interval = doubled;
        }
        interval
    }

    /// The delay before reconnecting after failure number `attempt`.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let nanos = u64::try_from(self.interval(attempt).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(random % nanos.max(1))
    }
}
