//! Checks of `timer_heap`, on week 2's simulated clock.

use std::time::Duration;

use week2_threads::clock::{SimulatedClock, TimeSource};

use super::week2::timer_heap::{TimerHeap, TimerId};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

checks! {
    fn expires_in_deadline_then_schedule_order() {
        let clock = SimulatedClock::new();
        let t0 = clock.now();
        let mut timers = TimerHeap::new();
        let late = timers.schedule(t0 + ms(30));
        let a = timers.schedule(t0 + ms(10));
        let b = timers.schedule(t0 + ms(10));
        let mid = timers.schedule(t0 + ms(20));
        assert_eq!([late, a, b, mid], [TimerId(0), TimerId(1), TimerId(2), TimerId(3)]);
        assert_eq!(timers.len(), 4);
        assert_eq!(timers.next_deadline(), Some(t0 + ms(10)));
        clock.advance(ms(5));
        assert!(timers.expire(clock.now()).is_empty(), "nothing is due at 5ms");
        clock.advance(ms(15));
        assert_eq!(timers.expire(clock.now()), vec![a, b, mid], "due at 20ms, in order");
        assert_eq!(timers.next_deadline(), Some(t0 + ms(30)));
        assert_eq!(timers.expire(t0 + ms(100)), vec![late]);
        assert!(timers.is_empty());
        assert_eq!(timers.next_deadline(), None);
    }

    fn cancelled_timers_never_fire() {
        let clock = SimulatedClock::new();
        let t0 = clock.now();
        let mut timers = TimerHeap::new();
        let first = timers.schedule(t0 + ms(1));
        let second = timers.schedule(t0 + ms(2));
        assert!(timers.cancel(first));
        assert!(!timers.cancel(first), "already cancelled");
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next_deadline(), Some(t0 + ms(2)), "the cancelled one is skipped");
        assert_eq!(timers.expire(t0 + ms(10)), vec![second]);
        assert!(!timers.cancel(second), "fired timers are no longer armed");
    }

    fn many_timers_stay_ordered() {
        let clock = SimulatedClock::new();
        let t0 = clock.now();
        let mut timers = TimerHeap::new();
        // Deadlines in a scrambled order; cancel every third.
        let ids: Vec<_> = (0..300u64).map(|i| (i, timers.schedule(t0 + ms((i * 7919) % 301)))).collect();
        for (i, id) in &ids {
            if i % 3 == 0 {
                timers.cancel(*id);
            }
        }
        assert_eq!(timers.len(), 200);
        let fired = timers.expire(t0 + ms(1000));
        assert_eq!(fired.len(), 200);
        let deadline = |id: &TimerId| (id.0 * 7919) % 301;
        assert!(fired.windows(2).all(|w| (deadline(&w[0]), w[0]) < (deadline(&w[1]), w[1])));
        assert!(fired.iter().all(|id| id.0 % 3 != 0));
    }
}
