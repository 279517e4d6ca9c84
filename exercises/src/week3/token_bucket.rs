//! # Exercise `token_bucket`: the local rate limiter's bucket (week 3, day 3)
//!
//! Envoy's `local_ratelimit` filters admit a request only if they can take a
//! token from a bucket. The bucket starts full with `max_tokens`, and every
//! `fill_interval` it gains `tokens_per_fill`, never beyond `max_tokens`.
//! There is no refill timer: the refill is computed from the clock when a
//! token is asked for. Time is passed in, so tests never sleep.
//!
//! ## Task
//!
//! Implement [`TokenBucket`]:
//!
//! - [`TokenBucket::new`] starts full at `now`.
//! - [`TokenBucket::try_consume`] first adds the fills due by `now` (one per
//!   *whole* `fill_interval` elapsed since the last fill; a partial interval
//!   is kept for later, not lost), then takes one token if there is one.
//! - [`TokenBucket::available`] refills the same way and returns the tokens.
//! - A `now` earlier than the last fill adds nothing (never panic).
//!
//! Run `cargo run -p exercises -- verify token_bucket`.

use std::time::{Duration, Instant};

/// A token bucket.
#[derive(Debug)]
pub struct TokenBucket {
    max_tokens: u32,
    tokens_per_fill: u32,
    fill_interval: Duration,
    // Suggested state: the tokens now and when the last fill happened.
}

impl TokenBucket {
    /// A full bucket at `now`. A zero `fill_interval` is treated as 1 ns.
    pub fn new(
        max_tokens: u32,
        tokens_per_fill: u32,
        fill_interval: Duration,
        now: Instant,
    ) -> Self {
        todo!()
    }

    /// Takes one token if there is one at `now`.
    pub fn try_consume(&mut self, now: Instant) -> bool {
        todo!()
    }

    /// The tokens available at `now`.
    pub fn available(&mut self, now: Instant) -> u32 {
        todo!()
    }
}
