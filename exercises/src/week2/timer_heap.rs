//! # Exercise `timer_heap`: the dispatcher's timers (week 2, day 4)
//!
//! Every Envoy worker owns one event loop; each loop iteration sleeps until the
//! earliest timer deadline (or I/O), then fires the due timers. Connection
//! idle timeouts, request timeouts and retry backoffs are all such timers, and
//! most are cancelled before they fire. Build the timer queue.
//!
//! ## Task
//!
//! Implement [`TimerHeap`] on a binary heap (`std::collections::BinaryHeap`
//! with `std::cmp::Reverse`) with *lazy cancellation*:
//!
//! - [`TimerHeap::schedule`] arms a timer at `deadline` and returns a new
//!   [`TimerId`] (ids grow: 0, 1, 2, ...). O(log n).
//! - [`TimerHeap::cancel`] disarms it in O(1): do not search the heap; remember
//!   that the id is no longer armed and skip its entry when it reaches the top.
//!   Returns whether the timer was armed.
//! - [`TimerHeap::next_deadline`] is the earliest deadline of an *armed* timer
//!   (what the loop sleeps until).
//! - [`TimerHeap::expire`] removes and returns every armed timer with
//!   `deadline <= now`, earliest first; equal deadlines in the order they were
//!   scheduled.
//! - [`TimerHeap::len`] counts armed timers.
//!
//! Run `cargo run -p exercises -- verify timer_heap`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::time::Instant;

/// A scheduled timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

/// The timers of one event loop.
#[derive(Debug, Default)]
pub struct TimerHeap {
    // Suggested state: a min-heap of (deadline, id), the set of armed ids, the next id.
    heap: BinaryHeap<Reverse<(Instant, TimerId)>>,
}

impl TimerHeap {
    /// An empty queue.
    pub fn new() -> Self {
        todo!()
    }

    /// Arms a new timer.
    pub fn schedule(&mut self, deadline: Instant) -> TimerId {
        todo!()
    }

    /// Disarms `id`; true if it was armed.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        todo!()
    }

    /// The earliest armed deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        todo!()
    }

    /// Removes and returns the due timers, earliest first.
    pub fn expire(&mut self, now: Instant) -> Vec<TimerId> {
        todo!()
    }

    /// Armed timers.
    pub fn len(&self) -> usize {
        todo!()
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        todo!()
    }
}
