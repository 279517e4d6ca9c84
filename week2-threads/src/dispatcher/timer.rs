//! Timers: Envoy's `Event::Timer`, on a binary heap with lazy cancellation.
//!
//! Both dispatchers share this queue; they differ only in how they sleep until
//! the earliest deadline (mio: the `poll` timeout; tokio: `sleep_until`).
//!
//! * enable: push `(deadline, seq)` on a min-heap, O(log n). `seq` grows with every
//!   enable, so timers due at the same instant fire in enable order.
//! * disable / re-enable / drop: O(1). The old heap entry is left in place and
//!   recognised as stale when it reaches the top (its `seq` no longer matches the
//!   timer's state, or the timer is gone). When stale entries outnumber live ones
//!   the heap is compacted, so memory stays proportional to armed timers.
//!
//! The heap holds only `Weak` references: the [`Timer`] handle owns the callback,
//! and dropping the handle cancels the timer.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::TimeSource;

type TimerCallback = Box<dyn FnMut(&Timer)>;

/// Compact the heap once this many stale entries accumulate (and they outnumber
/// the live ones).
const COMPACT_MIN_STALE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Disabled,
    /// In the heap under this `seq`.
    Armed {
        deadline: Instant,
        seq: u64,
    },
    /// Popped as due in the current batch; fires unless disabled first.
    Due,
}

struct TimerInner {
    queue: Weak<TimerQueue>,
    state: Cell<State>,
    /// Taken out while the callback runs, so the callback may touch its timer.
    callback: RefCell<Option<TimerCallback>>,
}

impl Drop for TimerInner {
    fn drop(&mut self) {
        if let (State::Armed { .. }, Some(queue)) = (self.state.get(), self.queue.upgrade()) {
            queue.stale.set(queue.stale.get() + 1);
        }
    }
}

/// A one-shot timer owned by the code that created it.
///
/// Created disabled by [`Dispatcher::create_timer`](super::Dispatcher::create_timer).
/// `enable` (re)arms it, `disable` cancels it, dropping it cancels it. The callback
/// runs on the dispatcher thread and receives the timer, so a periodic timer is a
/// callback that calls `timer.enable(period)`. Once its dispatcher is gone, `enable`
/// does nothing.
pub struct Timer {
    inner: Rc<TimerInner>,
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").field("state", &self.inner.state.get()).finish()
    }
}

impl Timer {
    /// Arms the timer to fire `after` from now, replacing any earlier deadline.
    /// A zero duration fires in the next loop iteration, never in the current one.
    pub fn enable(&self, after: Duration) {
        let Some(queue) = self.inner.queue.upgrade() else { return };
        let now = queue.clock.now();
        // Saturate absurd durations instead of overflowing Instant.
        let deadline = now
            .checked_add(after)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        queue.arm(&self.inner, deadline);
    }

    /// Cancels the timer if it is armed (including when it is due in this iteration).
    pub fn disable(&self) {
        match self.inner.state.replace(State::Disabled) {
            State::Armed { .. } => {
                if let Some(queue) = self.inner.queue.upgrade() {
                    queue.note_stale();
                }
            }
            State::Due | State::Disabled => {}
        }
    }

    /// Whether the timer will fire (it is armed, or due in the current iteration).
    pub fn is_enabled(&self) -> bool {
        self.inner.queue.strong_count() > 0 && !matches!(self.inner.state.get(), State::Disabled)
    }

    /// The deadline the timer is armed for, if any.
    pub fn deadline(&self) -> Option<Instant> {
        if self.inner.queue.strong_count() == 0 {
            return None;
        }
        match self.inner.state.get() {
            State::Armed { deadline, .. } => Some(deadline),
            State::Disabled | State::Due => None,
        }
    }
}

struct Entry {
    deadline: Instant,
    seq: u64,
    timer: Weak<TimerInner>,
}

impl Entry {
    fn is_live(&self) -> bool {
        self.timer
            .upgrade()
            .is_some_and(|t| matches!(t.state.get(), State::Armed { seq, .. } if seq == self.seq))
    }
}

// Reversed so that `BinaryHeap` (a max-heap) pops the earliest (deadline, seq).
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.cmp(&self.deadline).then_with(|| other.seq.cmp(&self.seq))
    }
}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}
impl Eq for Entry {}

/// The per-dispatcher timer queue.
pub(crate) struct TimerQueue {
    clock: Arc<dyn TimeSource>,
    heap: RefCell<BinaryHeap<Entry>>,
    next_seq: Cell<u64>,
    /// Heap entries known to be stale (disabled, re-armed or dropped timers).
    stale: Cell<usize>,
    /// Called when a newly armed timer becomes the earliest one (the tokio loop
    /// must then shorten its sleep).
    on_new_earliest: Option<Box<dyn Fn()>>,
}

impl TimerQueue {
    pub(crate) fn new(clock: Arc<dyn TimeSource>, on_new_earliest: Option<Box<dyn Fn()>>) -> Self {
        Self {
            clock,
            heap: RefCell::new(BinaryHeap::new()),
            next_seq: Cell::new(0),
            stale: Cell::new(0),
            on_new_earliest,
        }
    }

    pub(crate) fn clock(&self) -> &Arc<dyn TimeSource> {
        &self.clock
    }

    pub(crate) fn create(self: &Rc<Self>, callback: TimerCallback) -> Timer {
        Timer {
            inner: Rc::new(TimerInner {
                queue: Rc::downgrade(self),
                state: Cell::new(State::Disabled),
                callback: RefCell::new(Some(callback)),
            }),
        }
    }

    // ANCHOR: timer_arm
    fn arm(&self, timer: &Rc<TimerInner>, deadline: Instant) {
        if let State::Armed { .. } = timer.state.get() {
            self.note_stale(); // its old heap entry is now stale
        }
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        timer.state.set(State::Armed { deadline, seq });
        let is_new_earliest = {
            let mut heap = self.heap.borrow_mut();
            let earlier = heap.peek().is_none_or(|top| deadline < top.deadline);
            heap.push(Entry { deadline, seq, timer: Rc::downgrade(timer) });
            earlier
        };
        if is_new_earliest && let Some(notify) = &self.on_new_earliest {
            notify();
        }
    }
    // ANCHOR_END: timer_arm

    fn note_stale(&self) {
        let stale = self.stale.get() + 1;
        self.stale.set(stale);
        let len = self.heap.borrow().len();
        if stale >= COMPACT_MIN_STALE && stale * 2 > len {
            self.heap.borrow_mut().retain(Entry::is_live);
            self.stale.set(0);
        }
    }

    fn popped_stale(&self) {
        self.stale.set(self.stale.get().saturating_sub(1));
    }

    /// The earliest armed deadline, discarding stale entries on the way.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut heap = self.heap.borrow_mut();
        while let Some(top) = heap.peek() {
            if top.is_live() {
                return Some(top.deadline);
            }
            heap.pop();
            self.popped_stale();
        }
        None
    }

    /// Number of armed timers plus not-yet-discarded stale entries.
    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.heap.borrow().len()
    }

    // ANCHOR: timer_run_due
    /// Fires every timer whose deadline has passed, earliest first (ties in enable
    /// order). Timers armed by these callbacks fire in a later iteration, even with
    /// a zero delay. Returns how many fired.
    pub(crate) fn run_due(&self) -> usize {
        let now = self.clock.now();
        let mut due = Vec::new();
        {
            let mut heap = self.heap.borrow_mut();
            while heap.peek().is_some_and(|top| top.deadline <= now) {
                let Some(entry) = heap.pop() else { break };
                match entry.timer.upgrade() {
                    Some(timer) if entry.is_live() => {
                        timer.state.set(State::Due);
                        due.push(timer);
                    }
                    _ => self.popped_stale(),
                }
            }
        }
        let mut fired = 0;
        for timer in due {
            // An earlier callback in this batch may have disabled or re-armed it.
            if timer.state.get() != State::Due {
                continue;
            }
            timer.state.set(State::Disabled);
            let callback = timer.callback.borrow_mut().take();
            if let Some(mut callback) = callback {
                let handle = Timer { inner: timer.clone() };
                callback(&handle);
                timer.callback.borrow_mut().get_or_insert(callback);
                fired += 1;
            }
        }
        fired
    }
    // ANCHOR_END: timer_run_due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimulatedClock;

    fn queue(clock: &SimulatedClock) -> Rc<TimerQueue> {
        Rc::new(TimerQueue::new(Arc::new(clock.clone()), None))
    }

    #[test]
    fn compaction_bounds_the_heap() {
        let clock = SimulatedClock::new();
        let q = queue(&clock);
        let timers: Vec<Timer> = (0..10_000).map(|_| q.create(Box::new(|_| {}))).collect();
        for _ in 0..5 {
            for t in &timers {
                t.enable(Duration::from_secs(10));
            }
        }
        // 40,000 re-arms made stale entries; compaction keeps the heap near 10,000.
        assert!(q.heap_len() <= 2 * 10_000 + COMPACT_MIN_STALE, "{}", q.heap_len());
        for t in &timers {
            t.disable();
        }
        assert!(q.heap_len() <= 10_000, "{}", q.heap_len());
        assert_eq!(q.next_deadline(), None);
        assert_eq!(q.heap_len(), 0);
    }

    #[test]
    fn dropped_timer_never_fires() {
        let clock = SimulatedClock::new();
        let q = queue(&clock);
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let t = q.create(Box::new(move |_| f.set(true)));
        t.enable(Duration::from_millis(1));
        drop(t);
        clock.advance(Duration::from_millis(5));
        assert_eq!(q.run_due(), 0);
        assert!(!fired.get());
    }

    #[test]
    fn timer_outliving_its_queue_is_inert() {
        let clock = SimulatedClock::new();
        let q = queue(&clock);
        let t = q.create(Box::new(|_| {}));
        drop(q);
        t.enable(Duration::from_millis(1));
        assert!(!t.is_enabled());
        t.disable();
    }

    #[test]
    fn huge_durations_saturate() {
        let clock = SimulatedClock::new();
        let q = queue(&clock);
        let t = q.create(Box::new(|_| {}));
        t.enable(Duration::MAX);
        assert!(t.is_enabled());
        assert!(t.deadline().is_some());
    }
}
