//! Reference solution of `backoff`, as `week4_xds::backoff::Backoff` does it.

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
        let base = base.max(Duration::from_millis(1));
        Self { base, max: max.max(base), next: base }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self, random: &mut dyn RandomSource) -> Duration {
        let interval = self.next;
        self.next = interval.saturating_mul(2).min(self.max);
        let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX).max(1);
        Duration::from_nanos(random.next_u64() % nanos)
    }

    /// Back to the base interval.
    pub fn reset(&mut self) {
        self.next = self.base;
    }

    /// The interval the next delay is drawn from.
    pub fn current_interval(&self) -> Duration {
        self.next
    }
}
