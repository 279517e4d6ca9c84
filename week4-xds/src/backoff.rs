//! Reconnection delays: Envoy's `JitteredExponentialBackOffStrategy`.
//!
//! When an xDS stream fails, Envoy waits a random time drawn from
//! `[0, interval)` ("full jitter"), and doubles `interval` after each failure up
//! to a maximum (for xDS: 500 ms base, 30 s cap). A message received on the
//! stream resets it. Randomness is injected through [`RandomSource`] so tests
//! are deterministic.
//!
//! ```text
//!  failure 1: random % 500ms   failure 2: random % 1s   ...   failure n: random % 30s
//! ```

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::SmallRng};

/// A source of random numbers (Envoy's `Random::RandomGenerator`).
pub trait RandomSource: Send {
    /// A uniformly distributed 64-bit number.
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64 + Send> RandomSource for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// The production random source: a small, fast PRNG seeded from the OS.
#[derive(Debug)]
pub struct SystemRandom(SmallRng);

impl SystemRandom {
    /// A generator seeded from the operating system.
    pub fn new() -> Self {
        Self(SmallRng::from_os_rng())
    }
}

impl Default for SystemRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl RandomSource for SystemRandom {
    fn next_u64(&mut self) -> u64 {
        self.0.random()
    }
}

/// Envoy's xDS retry base interval.
pub const XDS_BASE_INTERVAL: Duration = Duration::from_millis(500);
/// Envoy's xDS retry cap.
pub const XDS_MAX_INTERVAL: Duration = Duration::from_secs(30);

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A strategy starting at `base` and doubling up to `max` (`max` is raised to `base` if lower;
    /// a zero `base` is taken as 1 ms).
    pub fn new(base: Duration, max: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        let max = max.max(base);
        Self { base, max, next: base }
    }

    /// Envoy's xDS settings: 500 ms doubling to 30 s.
    pub fn xds() -> Self {
        Self::new(XDS_BASE_INTERVAL, XDS_MAX_INTERVAL)
    }

    // ANCHOR: backoff
    /// The delay before the next attempt: uniform in `[0, interval)`; then the
    /// interval doubles, up to the cap.
    pub fn next_delay(&mut self, random: &mut dyn RandomSource) -> Duration {
        let interval = self.next;
        self.next = interval.saturating_mul(2).min(self.max);
        let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX).max(1);
        Duration::from_nanos(random.next_u64() % nanos)
    }

    /// Back to the base interval (a message arrived on the stream).
    pub fn reset(&mut self) {
        self.next = self.base;
    }
    // ANCHOR_END: backoff

    /// The interval the next delay is drawn from.
    pub fn current_interval(&self) -> Duration {
        self.next
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::xds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_stays_below_the_interval() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let mut max = || u64::MAX;
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay(&mut max)).collect();
        let caps = [500u64, 1000, 2000, 4000, 4000, 4000];
        for (d, cap) in delays.iter().zip(caps) {
            let cap_nanos = cap * 1_000_000;
            assert_eq!(*d, Duration::from_nanos(u64::MAX % cap_nanos), "interval {cap}ms");
            assert!(*d < Duration::from_millis(cap));
        }
    }

    #[test]
    fn jitter_comes_from_the_random_source() {
        let mut b = Backoff::xds();
        let mut zero = || 0u64;
        assert_eq!(b.next_delay(&mut zero), Duration::ZERO);
        let mut fixed = || 250_000_000u64; // 250 ms in nanoseconds
        assert_eq!(b.next_delay(&mut fixed), Duration::from_millis(250));
        let mut big = || 1_250_000_000u64; // 1.25 s mod 2 s interval
        assert_eq!(b.next_delay(&mut big), Duration::from_millis(1250));
    }

    #[test]
    fn reset_returns_to_base() {
        let mut b = Backoff::xds();
        let mut r = || 7u64;
        for _ in 0..10 {
            b.next_delay(&mut r);
        }
        assert_eq!(b.current_interval(), XDS_MAX_INTERVAL);
        b.reset();
        assert_eq!(b.current_interval(), XDS_BASE_INTERVAL);
    }

    #[test]
    fn degenerate_settings_do_not_panic() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        let mut r = || u64::MAX;
        assert!(b.next_delay(&mut r) < Duration::from_millis(1));
        let mut huge = Backoff::new(Duration::MAX, Duration::MAX);
        let _ = huge.next_delay(&mut r);
        let _ = huge.next_delay(&mut r);
    }
}
