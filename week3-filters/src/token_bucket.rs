//! # Token bucket (Envoy's `TokenBucketImpl`, lock-free, time injected)
//!
//! Both local rate limit filters (network: new connections; HTTP: requests)
//! take one token per admitted unit. The bucket starts full with
//! `max_tokens`; every `fill_interval` it gains `tokens_per_fill`, never
//! beyond `max_tokens`. Refills are computed lazily from the injected clock,
//! so tests move time explicitly and production needs no refill timer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use week1_core::config::filters::TokenBucket as TokenBucketConfig;

use crate::context::TimeSource;

/// A token bucket shared by every worker (atomics only).
#[derive(Debug)]
pub struct TokenBucket {
    max_tokens: u32,
    tokens_per_fill: u32,
    interval_nanos: u64,
    tokens: AtomicU32,
    /// When the next fill happens, in nanoseconds after `base`.
    next_fill: AtomicU64,
    base: Instant,
    time: Arc<dyn TimeSource>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(
        max_tokens: u32,
        tokens_per_fill: u32,
        fill_interval: Duration,
        time: Arc<dyn TimeSource>,
    ) -> Self {
        let interval_nanos = u64::try_from(fill_interval.as_nanos()).unwrap_or(u64::MAX).max(1);
        Self {
            max_tokens,
            tokens_per_fill,
            interval_nanos,
            tokens: AtomicU32::new(max_tokens),
            next_fill: AtomicU64::new(interval_nanos),
            base: time.now(),
            time,
        }
    }

    /// A bucket from config (`fill_interval` unset: one second).
    pub fn from_config(c: &TokenBucketConfig, time: Arc<dyn TimeSource>) -> Self {
        let interval = c.fill_interval.map_or(Duration::from_secs(1), |d| d.get());
        Self::new(c.max_tokens, c.tokens_per_fill(), interval, time)
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.time.now().saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX)
    }

    // ANCHOR: token_bucket
    /// Adds the fills that are due. The thread that moves `next_fill` forward
    /// adds their tokens, so each fill is counted once.
    fn refill(&self) {
        let now = self.now_nanos();
        loop {
            let next = self.next_fill.load(Ordering::Acquire);
            if now < next {
                return;
            }
            let fills = (now - next) / self.interval_nanos + 1;
            let new_next = next.saturating_add(fills.saturating_mul(self.interval_nanos));
            if self
                .next_fill
                .compare_exchange(next, new_next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let add = u32::try_from(fills.saturating_mul(u64::from(self.tokens_per_fill)))
                    .unwrap_or(u32::MAX);
                let max = self.max_tokens;
                let _ = self.tokens.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    Some(t.saturating_add(add).min(max))
                });
                return;
            }
        }
    }

    /// Takes one token; `false` when the bucket is empty.
    pub fn try_consume(&self) -> bool {
        self.refill();
        self.tokens.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(1)).is_ok()
    }
    // ANCHOR_END: token_bucket

    /// Tokens left now.
    pub fn remaining(&self) -> u32 {
        self.refill();
        self.tokens.load(Ordering::Acquire)
    }

    /// The bucket size.
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }

    /// Time until the next fill.
    pub fn next_fill_in(&self) -> Duration {
        let now = self.now_nanos();
        Duration::from_nanos(self.next_fill.load(Ordering::Acquire).saturating_sub(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ManualTime;

    #[test]
    fn refills_per_interval_up_to_max() {
        let t = Arc::new(ManualTime::new());
        let b = TokenBucket::new(3, 2, Duration::from_secs(1), t.clone());
        assert!(b.try_consume() && b.try_consume() && b.try_consume());
        assert!(!b.try_consume());
        t.advance(Duration::from_millis(999));
        assert!(!b.try_consume());
        assert_eq!(b.next_fill_in(), Duration::from_millis(1));
        t.advance(Duration::from_millis(1));
        assert_eq!(b.remaining(), 2);
        t.advance(Duration::from_secs(10));
        assert_eq!(b.remaining(), 3, "never above max");
    }

    #[test]
    fn concurrent_consumers_never_overdraw() {
        let t = Arc::new(ManualTime::new());
        let b = Arc::new(TokenBucket::new(1000, 1, Duration::from_secs(3600), t));
        let taken: u32 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..400).filter(|_| b.try_consume()).count() as u32))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(taken, 1000);
    }
}
