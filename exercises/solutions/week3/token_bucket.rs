//! Reference solution of `token_bucket`. The real bucket
//! (`week3_filters::token_bucket`) is shared by all workers with atomics only.

use std::time::{Duration, Instant};

/// A token bucket.
#[derive(Debug)]
pub struct TokenBucket {
    max_tokens: u32,
    tokens_per_fill: u32,
    fill_interval: Duration,
    tokens: u32,
    last_fill: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`. A zero `fill_interval` is treated as 1 ns.
    pub fn new(
        max_tokens: u32,
        tokens_per_fill: u32,
        fill_interval: Duration,
        now: Instant,
    ) -> Self {
        let fill_interval = fill_interval.max(Duration::from_nanos(1));
        Self { max_tokens, tokens_per_fill, fill_interval, tokens: max_tokens, last_fill: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_fill);
        let fills = elapsed.as_nanos() / self.fill_interval.as_nanos();
        if fills == 0 {
            return;
        }
        let added = fills.saturating_mul(u128::from(self.tokens_per_fill));
        let tokens = (u128::from(self.tokens) + added).min(u128::from(self.max_tokens));
        self.tokens = u32::try_from(tokens).unwrap_or(self.max_tokens);
        // Move by whole intervals only: the partial one keeps counting.
        let step = u32::try_from(fills).map_or(elapsed, |f| self.fill_interval.saturating_mul(f));
        self.last_fill += step.min(elapsed);
    }

    /// Takes one token if there is one at `now`.
    pub fn try_consume(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// The tokens available at `now`.
    pub fn available(&mut self, now: Instant) -> u32 {
        self.refill(now);
        self.tokens
    }
}
