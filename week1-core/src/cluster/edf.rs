//! Earliest-deadline-first scheduler: Envoy's `EdfScheduler`.
//!
//! Weighted round robin in Envoy spreads each host's picks evenly in time
//! instead of sending a host's whole share in one burst. Envoy does that with an
//! EDF scheduler, and so do we:
//!
//! - every entry has a *deadline*; an entry of weight `w` added at virtual time
//!   `t` gets deadline `t + 1/w`;
//! - a pick takes the entry with the earliest deadline (ties: the one added
//!   first), moves virtual time to that deadline and re-adds the entry, so its
//!   next deadline is `1/w` later.
//!
//! Each entry is picked every `1/w` of virtual time, so over any window the
//! picks follow the weights to within about one pick per entry. With weights
//! 5:1:1 the sequence is `a a a a b c a a a a a b c a ...` (a at 0.2, 0.4, ...;
//! b and c at 1.0, 2.0, ...). nginx's smooth weighted round robin interleaves
//! a little more evenly (`a a b a c a a`) but scans all `n` entries per pick;
//! EDF pays `O(log n)`: one sift-down of a binary heap. We follow Envoy.
//!
//! The least request load balancer reuses the scheduler with a weight that is
//! recomputed at each re-add (`weight / (active + 1)^bias`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

#[derive(Debug, Clone)]
struct Entry<T> {
    deadline: f64,
    order: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    /// Reversed, so the max-heap's top is the earliest deadline, then the
    /// earliest insertion.
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.total_cmp(&self.deadline).then_with(|| other.order.cmp(&self.order))
    }
}

/// A weighted EDF queue of `T` (in practice, host indices).
#[derive(Debug, Clone)]
pub struct EdfScheduler<T> {
    heap: BinaryHeap<Entry<T>>,
    current_time: f64,
    order: u64,
}

impl<T: Copy> Default for EdfScheduler<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy> EdfScheduler<T> {
    /// An empty scheduler.
    pub fn new() -> Self {
        Self { heap: BinaryHeap::new(), current_time: 0.0, order: 0 }
    }

    /// Adds `item` with `weight`. A weight that is not a positive finite number
    /// is refused (returns false): such an entry would never or always be due.
    pub fn add(&mut self, weight: f64, item: T) -> bool {
        if !(weight.is_finite() && weight > 0.0) {
            return false;
        }
        let order = self.next_order();
        self.heap.push(Entry { deadline: self.current_time + 1.0 / weight, order, item });
        true
    }

    fn next_order(&mut self) -> u64 {
        let o = self.order;
        self.order += 1;
        o
    }

    // ANCHOR: edf_pick
    /// Picks the entry with the earliest deadline and re-adds it with the weight
    /// `weight_of` returns now. An entry whose new weight is not positive and
    /// finite is dropped after this pick.
    pub fn pick_and_add(&mut self, weight_of: impl FnOnce(&T) -> f64) -> Option<T> {
        let order = self.next_order();
        let mut top = self.heap.peek_mut()?;
        self.current_time = top.deadline;
        let item = top.item;
        let weight = weight_of(&item);
        if weight.is_finite() && weight > 0.0 {
            // Re-add in place: one sift-down when `top` drops.
            top.deadline = self.current_time + 1.0 / weight;
            top.order = order;
        } else {
            PeekMut::pop(top);
        }
        Some(item)
    }
    // ANCHOR_END: edf_pick

    /// The entry the next pick returns, without picking it.
    pub fn peek(&self) -> Option<T> {
        self.heap.peek().map(|e| e.item)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_interleaving() {
        let mut s = EdfScheduler::new();
        for (i, w) in [5.0, 1.0, 1.0].into_iter().enumerate() {
            assert!(s.add(w, i));
        }
        let picks: Vec<usize> =
            (0..7 * 20).map(|_| s.pick_and_add(|&i| [5.0, 1.0, 1.0][i]).unwrap()).collect();
        // a (w5) is due every 0.2, b and c (w1) every 1.0; ties go to the entry
        // re-added earliest. Later ties are decided by floating-point rounding of
        // the accumulated deadlines (as in Envoy), so only the start is exact.
        assert_eq!(picks[..7], [0, 0, 0, 0, 1, 2, 0]);
        // Every window of 7 picks holds 5 a's, give or take one.
        for w in picks.windows(7) {
            let a = w.iter().filter(|&&i| i == 0).count();
            assert!((4..=6).contains(&a), "{picks:?}");
        }
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 20);
    }

    #[test]
    fn equal_weights_rotate_in_insertion_order() {
        let mut s = EdfScheduler::new();
        for i in 0..3 {
            s.add(2.0, i);
        }
        let picks: Vec<i32> = (0..6).map(|_| s.pick_and_add(|_| 2.0).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn refuses_bad_weights_and_drops_on_zero() {
        let mut s = EdfScheduler::new();
        assert!(!s.add(0.0, 1));
        assert!(!s.add(f64::NAN, 1));
        assert!(!s.add(f64::INFINITY, 1));
        assert!(s.is_empty());
        assert_eq!(s.pick_and_add(|_| 1.0), None);
        s.add(1.0, 7);
        assert_eq!(s.peek(), Some(7));
        assert_eq!(s.pick_and_add(|_| 0.0), Some(7));
        assert!(s.is_empty());
    }
}
