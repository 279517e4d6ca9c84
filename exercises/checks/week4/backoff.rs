//! Checks of `backoff`, against week 4's own `Backoff`.

use std::time::Duration;

use week4_xds::backoff::Backoff as RealBackoff;

use super::week4::backoff::Backoff;

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
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(ms(500), ms(30_000));
        let mut max_random = || u64::MAX;
        let mut intervals = Vec::new();
        for _ in 0..8 {
            intervals.push(b.current_interval());
            let d = b.next_delay(&mut max_random);
            assert!(d < *intervals.last().unwrap(), "the delay is below its interval");
        }
        let expected: Vec<_> = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000].map(ms).to_vec();
        assert_eq!(intervals, expected);
        b.reset();
        assert_eq!(b.current_interval(), ms(500));
    }

    fn the_delay_is_the_random_number_modulo_the_interval() {
        let mut b = Backoff::new(ms(500), ms(30_000));
        let mut r = || 1_234_567_890_123u64;
        assert_eq!(b.next_delay(&mut r), Duration::from_nanos(1_234_567_890_123 % 500_000_000));
        assert_eq!(b.next_delay(&mut r), Duration::from_nanos(1_234_567_890_123 % 1_000_000_000));
        let mut zero = || 0u64;
        assert_eq!(b.next_delay(&mut zero), Duration::ZERO);
        let mut odd = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(odd.current_interval(), ms(1), "a zero base is 1 ms, the cap is raised to it");
        odd.next_delay(&mut zero);
        assert_eq!(odd.current_interval(), ms(1));
    }

    fn matches_mini_envoys_backoff() {
        for (base, max) in [(ms(500), ms(30_000)), (ms(1), ms(7)), (ms(3), ms(1)), (Duration::from_secs(u64::MAX / 4), Duration::MAX)] {
            let (mut mine, mut real) = (Backoff::new(base, max), RealBackoff::new(base, max));
            let (mut r1, mut r2) = (lcg(42), lcg(42));
            for step in 0..40 {
                assert_eq!(mine.current_interval(), real.current_interval(), "{base:?}/{max:?} step {step}");
                assert_eq!(mine.next_delay(&mut r1), real.next_delay(&mut r2), "{base:?}/{max:?} step {step}");
                if step == 20 {
                    mine.reset();
                    real.reset();
                }
            }
        }
    }
}
