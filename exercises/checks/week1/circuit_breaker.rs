//! Checks of `circuit_breaker`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use super::week1::circuit_breaker::Resource;

fn take_then_fail(r: &Arc<Resource>) -> Result<(), &'static str> {
    let _guard = r.try_acquire().ok_or("full")?;
    Err("the upstream failed") // early return: the guard still gives the unit back
}

checks! {
    fn admits_up_to_max_then_overflows() {
        let r = Resource::new(2);
        assert_eq!((r.count(), r.remaining()), (0, 2));
        let a = r.try_acquire().expect("first");
        let _b = r.try_acquire().expect("second");
        assert!(r.try_acquire().is_none(), "a third unit over max 2");
        assert_eq!((r.count(), r.remaining()), (2, 0));
        drop(a);
        assert_eq!(r.count(), 1);
        assert!(r.try_acquire().is_some());
    }

    fn zero_never_admits() {
        let r = Resource::new(0);
        assert!(r.try_acquire().is_none());
        assert_eq!((r.count(), r.remaining()), (0, 0));
    }

    fn early_returns_do_not_leak() {
        let r = Resource::new(1);
        for _ in 0..3 {
            assert_eq!(take_then_fail(&r), Err("the upstream failed"));
        }
        assert_eq!(r.count(), 0);
    }

    fn never_exceeds_max_across_threads() {
        let r = Resource::new(3);
        let peak = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (r, peak) = (Arc::clone(&r), Arc::clone(&peak));
                thread::spawn(move || {
                    let mut admitted = 0;
                    for _ in 0..2_000 {
                        if let Some(g) = r.try_acquire() {
                            peak.fetch_max(r.count(), Ordering::AcqRel);
                            admitted += 1;
                            drop(g);
                        }
                    }
                    admitted
                })
            })
            .collect();
        let admitted: u32 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
        assert!(admitted > 0);
        assert!(peak.load(Ordering::Acquire) <= 3, "count went over max");
        assert_eq!(r.count(), 0);
    }
}
