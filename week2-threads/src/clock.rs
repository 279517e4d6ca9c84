//! Time sources: Envoy's `TimeSource` / `MonotonicTimeSource`.
//!
//! Every dispatcher reads "now" from an injected [`TimeSource`] instead of calling
//! [`Instant::now`] directly. Production code uses [`MonotonicClock`]; tests use
//! [`SimulatedClock`], Envoy's `SimulatedTimeSystem` in miniature, so that a test
//! that arms a one-hour timer finishes in microseconds and always sees the same
//! timestamps.
//!
//! Data flow: the timer queue asks the source for `now()` when a timer is enabled
//! (to compute its deadline) and when it looks for due timers. When the event loop
//! has nothing to do until the next deadline it calls [`TimeSource::block_until`],
//! which a real clock answers with "wait this long" and a simulated clock answers by
//! jumping to the deadline.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A source of monotonic time, shared by a dispatcher and (in tests) the test itself.
pub trait TimeSource: Send + Sync + fmt::Debug + 'static {
    /// The current monotonic time.
    fn now(&self) -> Instant;

    /// Called by an idle event loop whose next timer is due at `deadline`. Returns
    /// how long the loop may block in the OS (it wakes early on I/O or posts).
    ///
    /// A real clock returns the remaining time; a simulated clock advances itself to
    /// `deadline` and returns zero, so no test ever waits on the wall clock.
    fn block_until(&self, deadline: Instant) -> Duration {
        deadline.saturating_duration_since(self.now())
    }
}

/// The real monotonic clock ([`Instant::now`]). The default for every dispatcher.
#[derive(Debug, Default, Clone, Copy)]
pub struct MonotonicClock;

impl TimeSource for MonotonicClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to, or when an event loop would otherwise sleep.
///
/// It behaves like tokio's paused clock: `advance` moves it forward explicitly, and
/// an idle loop waiting for a timer jumps straight to that timer's deadline
/// ("auto-advance"). Cloning gives another handle to the same clock.
#[derive(Clone)]
pub struct SimulatedClock {
    inner: Arc<SimulatedInner>,
}

struct SimulatedInner {
    origin: Instant,
    /// Nanoseconds elapsed since `origin`; only ever grows.
    elapsed_nanos: AtomicU64,
}

impl SimulatedClock {
    /// A new clock whose time starts at the real "now" and then stands still.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(SimulatedInner {
                origin: Instant::now(),
                elapsed_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update cannot fail here: the closure always returns Some.
        let _ = self
            .inner
            .elapsed_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_add(by)));
    }

    /// Moves time forward to `instant`; does nothing if it is already in the past.
    pub fn advance_to(&self, instant: Instant) {
        let target = u64::try_from(instant.saturating_duration_since(self.inner.origin).as_nanos())
            .unwrap_or(u64::MAX);
        self.inner.elapsed_nanos.fetch_max(target, Ordering::AcqRel);
    }

    /// Time elapsed on this clock since it was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.elapsed_nanos.load(Ordering::Acquire))
    }
}

impl Default for SimulatedClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SimulatedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedClock").field("elapsed", &self.elapsed()).finish()
    }
}

impl TimeSource for SimulatedClock {
    fn now(&self) -> Instant {
        self.inner.origin + self.elapsed()
    }

    fn block_until(&self, deadline: Instant) -> Duration {
        self.advance_to(deadline);
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_moves_only_when_told() {
        let clock = SimulatedClock::new();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(clock.now() - start, Duration::from_secs(3600));
    }

    #[test]
    fn simulated_clock_never_goes_backwards() {
        let clock = SimulatedClock::new();
        let start = clock.now();
        clock.advance_to(start + Duration::from_millis(50));
        clock.advance_to(start + Duration::from_millis(10));
        assert_eq!(clock.elapsed(), Duration::from_millis(50));
        assert_eq!(clock.block_until(start + Duration::from_millis(20)), Duration::ZERO);
        assert_eq!(clock.elapsed(), Duration::from_millis(50));
        assert_eq!(clock.block_until(start + Duration::from_millis(70)), Duration::ZERO);
        assert_eq!(clock.elapsed(), Duration::from_millis(70));
    }

    #[test]
    fn clones_share_time() {
        let a = SimulatedClock::new();
        let b = a.clone();
        a.advance(Duration::from_millis(5));
        assert_eq!(b.elapsed(), Duration::from_millis(5));
    }

    #[test]
    fn monotonic_clock_reports_remaining_time() {
        let clock = MonotonicClock;
        let far = clock.now() + Duration::from_secs(60);
        assert!(clock.block_until(far) > Duration::from_secs(59));
        assert_eq!(clock.block_until(clock.now() - Duration::from_millis(1)), Duration::ZERO);
    }
}
