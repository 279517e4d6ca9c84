//! Checks of `drain`, against week 4's own `DrainManager`.

use std::time::Duration;

use week2_threads::clock::{SimulatedClock, TimeSource};
use week4_xds::drain::{DrainConfig, DrainManager};

use super::week4::drain::{Drain, DrainStrategy};

checks! {
    fn accepts_until_started_and_start_is_idempotent() {
        let clock = SimulatedClock::new();
        let t0 = clock.now();
        let mut d = Drain::new(Duration::from_secs(10), DrainStrategy::Gradual);
        assert!(d.is_accepting());
        assert_eq!(d.deadline(), None);
        assert!(!d.drain_close(t0, 0), "not draining: never close");
        d.start(t0);
        d.start(t0 + Duration::from_secs(5));
        assert!(!d.is_accepting());
        assert_eq!(d.deadline(), Some(t0 + Duration::from_secs(10)), "the first start counts");
    }

    fn gradual_closes_more_and_more() {
        let clock = SimulatedClock::new();
        let t0 = clock.now();
        let mut d = Drain::new(Duration::from_millis(1000), DrainStrategy::Gradual);
        d.start(t0);
        let share = |ms: u64| (0..1000u64).filter(|&r| d.drain_close(t0 + Duration::from_millis(ms), r)).count();
        assert_eq!(share(0), 0);
        assert_eq!(share(250), 250);
        assert_eq!(share(900), 900);
        assert_eq!(share(1000), 1000);
        assert_eq!(share(5000), 1000);
        let mut immediate = Drain::new(Duration::from_secs(600), DrainStrategy::Immediate);
        immediate.start(t0);
        assert!(immediate.drain_close(t0, 12345));
        let mut zero = Drain::new(Duration::ZERO, DrainStrategy::Gradual);
        zero.start(t0 + Duration::from_secs(1));
        assert!(zero.drain_close(t0, 7), "zero drain time, and now before the start");
    }

    fn decides_exactly_like_mini_envoy() {
        let clock = SimulatedClock::new();
        let t0 = clock.now();
        for strategy in [DrainStrategy::Gradual, DrainStrategy::Immediate] {
            for drain_ms in [0u64, 1, 777, 600_000] {
                let time = Duration::from_millis(drain_ms);
                let real = DrainManager::new(DrainConfig { drain_time: time, strategy });
                let mut mine = Drain::new(time, strategy);
                real.start_drain_sequence(t0);
                mine.start(t0);
                for at in [0u64, 1, 100, 776, 777, 10_000, 600_000] {
                    for random in [0u64, 1, 99, 776, 123_456_789, u64::MAX] {
                        let now = t0 + Duration::from_millis(at);
                        assert_eq!(
                            mine.drain_close(now, random),
                            real.drain_close(now, random),
                            "{strategy:?} drain {drain_ms}ms at {at}ms random {random}"
                        );
                    }
                }
            }
        }
    }
}
