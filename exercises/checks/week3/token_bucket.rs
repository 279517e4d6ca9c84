//! Checks of `token_bucket`, on week 2's simulated clock.

use std::time::Duration;

use week2_threads::clock::{SimulatedClock, TimeSource};

use super::week3::token_bucket::TokenBucket;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

checks! {
    fn starts_full_and_runs_dry() {
        let clock = SimulatedClock::new();
        let mut b = TokenBucket::new(3, 1, ms(100), clock.now());
        assert_eq!(b.available(clock.now()), 3);
        assert!((0..3).all(|_| b.try_consume(clock.now())));
        assert!(!b.try_consume(clock.now()), "empty");
        assert_eq!(b.available(clock.now()), 0);
    }

    fn refills_per_whole_interval_up_to_max() {
        let clock = SimulatedClock::new();
        let mut b = TokenBucket::new(5, 2, ms(100), clock.now());
        while b.try_consume(clock.now()) {}
        clock.advance(ms(99));
        assert_eq!(b.available(clock.now()), 0, "not a whole interval yet");
        clock.advance(ms(1));
        assert_eq!(b.available(clock.now()), 2);
        clock.advance(ms(250));
        assert_eq!(b.available(clock.now()), 5, "capped at max (2 + 2 fills of 2)");
        clock.advance(Duration::from_secs(3600));
        assert_eq!(b.available(clock.now()), 5);
    }

    fn partial_intervals_are_not_lost() {
        let clock = SimulatedClock::new();
        let t0 = clock.now();
        let mut b = TokenBucket::new(10, 1, ms(100), t0);
        while b.try_consume(t0) {}
        // Ask every 60 ms: fills happen at 100, 200, 300 ms, not every other ask.
        let mut admitted = 0;
        for step in 1..=5u64 {
            if b.try_consume(t0 + ms(60 * step)) {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 3, "300 ms hold three whole intervals");
        // Time going backwards adds nothing and does not panic.
        assert_eq!(b.available(t0), 0);
    }
}
