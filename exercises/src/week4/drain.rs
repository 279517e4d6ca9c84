//! # Exercise `drain`: draining connections gradually (week 4, day 4)
//!
//! When a listener is replaced or the server stops, Envoy does not cut
//! connections. It stops accepting new ones and, for `drain_time`, asks more
//! and more of the existing ones to go away (`Connection: close` on an
//! HTTP/1.1 response) so clients reconnect elsewhere gradually instead of all
//! at once. Build the decision.
//!
//! ## Task
//!
//! Implement [`Drain`] (time and randomness are passed in):
//!
//! - [`Drain::start`] starts draining at `now`; a second call changes nothing.
//! - [`Drain::is_accepting`]: true until draining starts.
//! - [`Drain::deadline`]: start + `drain_time`, once started.
//! - [`Drain::drain_close`]: should the response being sent at `now` close its
//!   connection? Never before draining. With [`DrainStrategy::Immediate`], or
//!   a zero `drain_time`: always. With [`DrainStrategy::Gradual`], in whole
//!   milliseconds: `elapsed >= drain_time || random % drain_time < elapsed`,
//!   so the probability grows linearly from 0 to 1 over the drain time.
//!   `now` before the start counts as zero elapsed.
//!
//! Run `cargo run -p exercises -- verify drain`.

use std::time::{Duration, Instant};

pub use week4_xds::drain::DrainStrategy;

/// The drain state of a listener.
#[derive(Debug, Clone)]
pub struct Drain {
    drain_time: Duration,
    strategy: DrainStrategy,
    started: Option<Instant>,
}

impl Drain {
    /// Not draining yet.
    pub fn new(drain_time: Duration, strategy: DrainStrategy) -> Self {
        todo!()
    }

    /// Starts draining (idempotent).
    pub fn start(&mut self, now: Instant) {
        todo!()
    }

    /// Whether new connections may be accepted.
    pub fn is_accepting(&self) -> bool {
        todo!()
    }

    /// When the remaining connections will be closed.
    pub fn deadline(&self) -> Option<Instant> {
        todo!()
    }

    /// Whether the response sent at `now` should carry `Connection: close`.
    pub fn drain_close(&self, now: Instant, random: u64) -> bool {
        todo!()
    }
}
