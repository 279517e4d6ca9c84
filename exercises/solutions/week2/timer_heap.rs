//! Reference solution of `timer_heap`: a min-heap with lazy cancellation. The
//! real queue (`week2_threads::dispatcher::timer`) also compacts the heap when
//! cancelled entries pile up.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::time::Instant;

/// A scheduled timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

/// The timers of one event loop.
#[derive(Debug, Default)]
pub struct TimerHeap {
    /// (deadline, id): ids grow, so equal deadlines pop in schedule order.
    heap: BinaryHeap<Reverse<(Instant, TimerId)>>,
    armed: HashSet<TimerId>,
    next_id: u64,
}

impl TimerHeap {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms a new timer.
    pub fn schedule(&mut self, deadline: Instant) -> TimerId {
        let id = TimerId(self.next_id);
        self.next_id += 1;
        self.heap.push(Reverse((deadline, id)));
        self.armed.insert(id);
        id
    }

    /// Disarms `id`; true if it was armed.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        self.armed.remove(&id)
    }

    /// Pops cancelled entries off the top.
    fn drop_stale_top(&mut self) {
        while let Some(Reverse((_, id))) = self.heap.peek() {
            if self.armed.contains(id) {
                return;
            }
            self.heap.pop();
        }
    }

    /// The earliest armed deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// Removes and returns the due timers, earliest first.
    pub fn expire(&mut self, now: Instant) -> Vec<TimerId> {
        let mut due = Vec::new();
        while self.next_deadline().is_some_and(|d| d <= now) {
            if let Some(Reverse((_, id))) = self.heap.pop() {
                self.armed.remove(&id);
                due.push(id);
            }
        }
        due
    }

    /// Armed timers.
    pub fn len(&self) -> usize {
        self.armed.len()
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }
}
