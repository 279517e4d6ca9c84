//! Checks of `backoff`, against week 4's own `Backoff`.

use std::time::Duration;

use week4_xds::backoff::Backoff;

use super::week4::backoff::Schedule;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A deterministic pseudo-random sequence.
fn lcg(seed: u64) -> impl FnMut() -> u64 + Send {
    let mut x = seed;
    move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        x
    }
}

checks! {
    fn doubles_up_to_the_cap() {
        let s = Schedule::new(ms(500), ms(30_000));
        let intervals: Vec<_> = (0..8).map(|a| s.interval(a)).collect();
        assert_eq!(intervals, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000].map(ms));
        assert_eq!(s.interval(u32::MAX), ms(30_000), "a huge attempt number is fine");
        let odd = Schedule::new(Duration::ZERO, Duration::ZERO);
        assert_eq!((odd.interval(0), odd.interval(5)), (ms(1), ms(1)), "zero base: 1 ms, cap raised");
        let huge = Schedule::new(Duration::from_secs(u64::MAX / 4), Duration::MAX);
        assert_eq!(huge.interval(10), Duration::MAX, "saturates instead of overflowing");
    }

    fn the_delay_is_the_random_number_modulo_the_interval() {
        let s = Schedule::new(ms(500), ms(30_000));
        let r = 1_234_567_890_123u64;
        assert_eq!(s.delay(0, r), Duration::from_nanos(r % 500_000_000));
        assert_eq!(s.delay(1, r), Duration::from_nanos(r % 1_000_000_000));
        assert_eq!(s.delay(3, 0), Duration::ZERO);
        assert!((0..20).all(|a| s.delay(a, u64::MAX) < s.interval(a)));
    }

    fn matches_mini_envoys_backoff() {
        let cases = [
            (ms(500), ms(30_000)),
            (ms(1), ms(7)),
            (ms(3), ms(1)),
            (Duration::ZERO, ms(5)),
            (Duration::from_secs(u64::MAX / 4), Duration::MAX),
        ];
        for (base, max) in cases {
            let (mine, mut real) = (Schedule::new(base, max), Backoff::new(base, max));
            let (mut r1, mut r2) = (lcg(42), lcg(42));
            for attempt in 0..70 {
                assert_eq!(mine.interval(attempt), real.current_interval(), "{base:?}/{max:?} #{attempt}");
                assert_eq!(mine.delay(attempt, r1()), real.next_delay(&mut r2), "{base:?}/{max:?} #{attempt}");
            }
        }
    }
}
