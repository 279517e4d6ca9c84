//! # Approximate monotonic time, read once per wake-up
//!
//! Envoy's `Dispatcher::approximateMonotonicTime()`: the event loop reads the
//! clock once per iteration and the code it runs uses that value, instead of
//! a `clock_gettime` per timestamp. A proxied request takes a dozen
//! timestamps (stream start, activity, upstream attempt, deadlines, the
//! request-time histograms); read one by one they cost more than the
//! request's header rewrites.
//!
//! ```text
//!  connection task wakes ─► Tick::new() reads the clock once ─► now() … now()
//!                             (dropped before the task waits again: outside a
//!                              tick, now() reads the clock itself)
//! ```
//!
//! The cached value is at most as old as the work done since the wake-up
//! (microseconds), and it never leaks to another task: a [`Tick`] lives only
//! while its task runs. [`ApproximateTime`] hands the same value to the
//! FilterManager's stream timings. The clock is tokio's, so tests with paused
//! time see paused time.

use std::cell::Cell;
use std::time::SystemTime;

use tokio::time::Instant;
use week3_filters::context::TimeSource;

thread_local! {
    /// The time read at the current task's wake-up, while it runs.
    static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The current time: the value cached by the running [`Tick`], else the clock.
pub fn now() -> Instant {
    NOW.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Caches the time for one wake-up of a task; the cache ends when it drops
/// (the previous value, if any, comes back).
#[must_use = "the cached time lasts as long as the Tick"]
pub struct Tick {
    previous: Option<Instant>,
}

impl Tick {
    /// Reads the clock once and caches it for [`now`].
    pub fn new() -> Self {
        let previous = NOW.with(|n| n.replace(Some(Instant::now())));
        Self { previous }
    }
}

impl Default for Tick {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Tick {
    fn drop(&mut self) {
        NOW.with(|n| n.set(self.previous));
    }
}

/// A [`TimeSource`] reading [`now`] (the FilterManager's stream timings).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApproximateTime;

impl TimeSource for ApproximateTime {
    fn now(&self) -> std::time::Instant {
        now().into_std()
    }
    fn system_time(&self) -> SystemTime {
        SystemTime::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_tick_freezes_now_until_it_drops() {
        let tick = Tick::new();
        let first = now();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(now(), first, "cached for the tick");
        assert_eq!(ApproximateTime.now(), first.into_std());
        drop(tick);
        assert_eq!(now(), first + Duration::from_secs(1), "outside a tick: the clock");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn nested_ticks_restore_the_outer_value() {
        let outer = Tick::new();
        let t0 = now();
        tokio::time::advance(Duration::from_millis(5)).await;
        {
            let _inner = Tick::new();
            assert_eq!(now(), t0 + Duration::from_millis(5));
        }
        assert_eq!(now(), t0, "the outer tick's time is back");
        drop(outer);
        tokio::time::advance(Duration::from_millis(5)).await;
        assert_eq!(now(), t0 + Duration::from_millis(10));
    }
}
