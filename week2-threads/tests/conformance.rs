//! One conformance suite, run against every `Dispatcher` implementation.
//!
//! Time is simulated: the mio dispatcher runs on a `SimulatedClock`, the tokio
//! dispatcher on a runtime with paused time. In both, an idle loop jumps straight
//! to its next timer, so timer tests are exact and instantaneous. The only real
//! wait anywhere is the deadlock guard in `run_guarded`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use week2_threads::clock::SimulatedClock;
use week2_threads::dispatcher::{
    Dispatcher, DispatcherError, MioDispatcher, Timer, TokioDispatcher,
};

mod common;
use common::{DEADLOCK_GUARD, run_guarded};

/// Builds a dispatcher on simulated time.
trait Harness {
    type D: Dispatcher;
    fn make() -> Self::D;
}

struct Mio;
impl Harness for Mio {
    type D = MioDispatcher;
    fn make() -> MioDispatcher {
        MioDispatcher::with_time_source("conformance", SimulatedClock::new())
            .expect("mio dispatcher")
    }
}

struct Tokio;
impl Harness for Tokio {
    type D = TokioDispatcher;
    fn make() -> TokioDispatcher {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        TokioDispatcher::from_runtime("conformance", runtime).expect("tokio dispatcher")
    }
}

const MS: Duration = Duration::from_millis(1);

/// Counts drops of the values it is cloned into.
#[derive(Clone, Default)]
struct DropCounter(Arc<AtomicUsize>);
struct Tracked(Arc<AtomicUsize>);
impl DropCounter {
    fn track(&self) -> Tracked {
        Tracked(self.0.clone())
    }
    fn drops(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

mod suite {
    use super::*;

    pub fn posts_run_in_fifo_order<D: Dispatcher>(d: D) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..1000 {
            let seen = seen.clone();
            d.post(move || seen.lock().push(i)).unwrap();
        }
        let h = d.handle();
        d.post(move || h.exit()).unwrap();
        run_guarded(&d);
        assert_eq!(*seen.lock(), (0..1000).collect::<Vec<_>>());
    }

    pub fn posts_from_many_threads_keep_per_thread_order<D: Dispatcher>(d: D) {
        const THREADS: usize = 4;
        const PER_THREAD: usize = 500;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        thread::scope(|s| {
            for t in 0..THREADS {
                let (h, seen, count) = (d.handle(), seen.clone(), count.clone());
                s.spawn(move || {
                    for i in 0..PER_THREAD {
                        let (seen, count, exit) = (seen.clone(), count.clone(), h.clone());
                        h.post(move || {
                            seen.lock().push((t, i));
                            if count.fetch_add(1, Ordering::SeqCst) + 1 == THREADS * PER_THREAD {
                                exit.exit();
                            }
                        })
                        .unwrap();
                    }
                });
            }
            run_guarded(&d);
        });
        let seen = seen.lock();
        assert_eq!(seen.len(), THREADS * PER_THREAD);
        for t in 0..THREADS {
            let order: Vec<usize> =
                seen.iter().filter(|(th, _)| *th == t).map(|(_, i)| *i).collect();
            assert_eq!(order, (0..PER_THREAD).collect::<Vec<_>>(), "thread {t}");
        }
    }

    pub fn exit_from_another_thread<D: Dispatcher>(d: D) {
        let (started_tx, started_rx) = crossbeam_channel::bounded(1);
        d.post(move || started_tx.send(()).unwrap()).unwrap();
        let h = d.handle();
        thread::scope(|s| {
            s.spawn(move || {
                started_rx.recv_timeout(DEADLOCK_GUARD).expect("loop started");
                h.exit();
            });
            run_guarded(&d);
        });
    }

    pub fn exit_keeps_later_posts_for_next_run<D: Dispatcher>(d: D) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (l, h) = (log.clone(), d.handle());
        d.post(move || {
            l.lock().push("first");
            h.exit();
            let (l2, h2) = (l.clone(), h.clone());
            // Posted during the batch: belongs to the next iteration, after exit.
            h.post(move || {
                l2.lock().push("next run");
                h2.exit();
            })
            .unwrap();
        })
        .unwrap();
        run_guarded(&d);
        assert_eq!(*log.lock(), ["first"]);
        run_guarded(&d);
        assert_eq!(*log.lock(), ["first", "next run"]);
    }

    pub fn run_is_not_reentrant<D: Dispatcher>(d: D) {
        let result = Rc::new(RefCell::new(None));
        let (r, inner) = (result.clone(), d.clone());
        let timer = d.create_timer(move |_| {
            *r.borrow_mut() = Some(inner.run());
            inner.exit();
        });
        timer.enable(Duration::ZERO);
        run_guarded(&d);
        assert!(matches!(*result.borrow(), Some(Err(DispatcherError::AlreadyRunning(_)))));
    }

    pub fn timers_fire_in_deadline_order<D: Dispatcher>(d: D) {
        let start = d.now();
        let fired = Rc::new(RefCell::new(Vec::new()));
        let mut timers = Vec::new();
        for ms in [30u32, 10, 20] {
            let (f, dd) = (fired.clone(), d.clone());
            let t = d.create_timer(move |_| {
                f.borrow_mut().push((ms, dd.now() - start));
                if ms == 30 {
                    dd.exit();
                }
            });
            t.enable(ms * MS);
            timers.push(t);
        }
        run_guarded(&d);
        let fired = fired.borrow();
        assert_eq!(fired.iter().map(|(ms, _)| *ms).collect::<Vec<_>>(), [10, 20, 30]);
        for (ms, at) in fired.iter() {
            assert!(*at >= *ms * MS && *at < *ms * MS + MS, "timer {ms}ms fired at {at:?}");
        }
    }

    pub fn same_deadline_fires_in_enable_order<D: Dispatcher>(d: D) {
        let fired = Rc::new(RefCell::new(Vec::new()));
        let timers: Vec<Timer> = (0..10)
            .map(|i| {
                let f = fired.clone();
                d.create_timer(move |_| f.borrow_mut().push(i))
            })
            .collect();
        for i in [3, 7, 1, 9, 0, 5, 2, 8, 6, 4] {
            timers[i].enable(10 * MS);
        }
        // Re-enabling moves a timer to the back of its deadline's line.
        timers[3].enable(10 * MS);
        let dd = d.clone();
        let exit = d.create_timer(move |_| dd.exit());
        exit.enable(20 * MS);
        run_guarded(&d);
        assert_eq!(*fired.borrow(), [7, 1, 9, 0, 5, 2, 8, 6, 4, 3]);
    }

    pub fn timer_reenabled_from_own_callback<D: Dispatcher>(d: D) {
        let start = d.now();
        let ticks = Rc::new(RefCell::new(Vec::new()));
        let (t, dd) = (ticks.clone(), d.clone());
        let periodic = d.create_timer(move |timer| {
            t.borrow_mut().push(dd.now() - start);
            if t.borrow().len() < 5 {
                timer.enable(10 * MS);
            } else {
                dd.exit();
            }
        });
        periodic.enable(10 * MS);
        run_guarded(&d);
        let ticks = ticks.borrow();
        assert_eq!(ticks.len(), 5);
        for (i, at) in ticks.iter().enumerate() {
            let expected = (i as u32 + 1) * 10 * MS;
            assert!(*at >= expected && *at < expected + MS, "tick {i} at {at:?}");
        }
        assert!(!periodic.is_enabled());
    }

    pub fn disabled_timer_does_not_fire<D: Dispatcher>(d: D) {
        let fired = Rc::new(RefCell::new(Vec::new()));
        let f = fired.clone();
        let b = Rc::new(d.create_timer(move |_| f.borrow_mut().push("b")));
        let (f, b2) = (fired.clone(), b.clone());
        // `a` and `b` are due in the same iteration; `a` runs first and cancels `b`.
        let a = d.create_timer(move |_| {
            f.borrow_mut().push("a");
            b2.disable();
        });
        a.enable(10 * MS);
        b.enable(10 * MS);
        let f = fired.clone();
        let c = d.create_timer(move |_| f.borrow_mut().push("c"));
        c.enable(15 * MS);
        c.disable();
        assert!(!c.is_enabled());
        let dd = d.clone();
        let exit = d.create_timer(move |_| dd.exit());
        exit.enable(20 * MS);
        run_guarded(&d);
        assert_eq!(*fired.borrow(), ["a"]);
    }

    pub fn dropped_timer_does_not_fire<D: Dispatcher>(d: D) {
        let counter = DropCounter::default();
        let fired = Rc::new(Cell::new(false));
        let (f, tracked) = (fired.clone(), counter.track());
        let t = d.create_timer(move |_| {
            let _keep = &tracked;
            f.set(true);
        });
        t.enable(5 * MS);
        drop(t);
        assert_eq!(counter.drops(), 1, "dropping the timer drops its callback");
        let dd = d.clone();
        let exit = d.create_timer(move |_| dd.exit());
        exit.enable(10 * MS);
        run_guarded(&d);
        assert!(!fired.get());
    }

    pub fn callback_can_destroy_its_own_timer<D: Dispatcher>(d: D) {
        let holder: Rc<RefCell<Option<Timer>>> = Rc::new(RefCell::new(None));
        let fired = Rc::new(Cell::new(0));
        let (h, f, dd) = (holder.clone(), fired.clone(), d.clone());
        let timer = d.create_timer(move |timer| {
            f.set(f.get() + 1);
            timer.enable(MS); // re-armed, then destroyed: must not fire again
            let me = h.borrow_mut().take();
            dd.deferred_delete(Box::new(me));
        });
        timer.enable(MS);
        *holder.borrow_mut() = Some(timer);
        let dd = d.clone();
        let exit = d.create_timer(move |_| dd.exit());
        exit.enable(10 * MS);
        run_guarded(&d);
        assert_eq!(fired.get(), 1);
        assert!(holder.borrow().is_none());
    }

    pub fn zero_delay_rearm_does_not_starve_posts<D: Dispatcher>(d: D) {
        let flag = Arc::new(AtomicBool::new(false));
        let fired = Rc::new(Cell::new(0u32));
        let (f, fl, dd) = (fired.clone(), flag.clone(), d.clone());
        let timer = d.create_timer(move |timer| {
            f.set(f.get() + 1);
            if f.get() == 1 {
                let fl = fl.clone();
                dd.post(move || fl.store(true, Ordering::SeqCst)).unwrap();
            }
            if fl.load(Ordering::SeqCst) || f.get() > 1000 {
                dd.exit();
            } else {
                timer.enable(Duration::ZERO);
            }
        });
        timer.enable(Duration::ZERO);
        run_guarded(&d);
        assert!(flag.load(Ordering::SeqCst));
        assert!(fired.get() <= 3, "post waited {} timer iterations", fired.get());
    }

    pub fn deferred_delete_drops_at_end_of_iteration<D: Dispatcher>(d: D) {
        let counter = DropCounter::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (counter.clone(), seen.clone());
        let dd = d.clone();
        let timer_a = d.create_timer(move |_| {
            dd.deferred_delete(Box::new(c.track()));
            s.lock().push(("a", c.drops()));
        });
        let (c, s, dd) = (counter.clone(), seen.clone(), d.clone());
        // Next iteration: the object must be gone.
        let timer_c = Rc::new(d.create_timer(move |_| {
            s.lock().push(("c", c.drops()));
            dd.exit();
        }));
        let (c, s, tc) = (counter.clone(), seen.clone(), timer_c.clone());
        // Same iteration as `a`: the object must still be alive.
        let timer_b = d.create_timer(move |_| {
            s.lock().push(("b", c.drops()));
            tc.enable(Duration::ZERO);
        });
        timer_a.enable(MS);
        timer_b.enable(MS);
        run_guarded(&d);
        assert_eq!(*seen.lock(), [("a", 0), ("b", 0), ("c", 1)]);
    }

    pub fn dropping_with_pending_work_is_clean<D: Dispatcher>(d: D) {
        let counter = DropCounter::default();
        let ran = Arc::new(AtomicBool::new(false));
        for _ in 0..3 {
            let (t, r) = (counter.track(), ran.clone());
            d.post(move || {
                let _keep = &t;
                r.store(true, Ordering::SeqCst);
            })
            .unwrap();
        }
        let timers: Vec<Timer> = (0..3)
            .map(|i| {
                let (t, r) = (counter.track(), ran.clone());
                let timer = d.create_timer(move |_| {
                    let _keep = &t;
                    r.store(true, Ordering::SeqCst);
                });
                timer.enable(i * MS);
                timer
            })
            .collect();
        d.deferred_delete(Box::new(counter.track()));
        let handle = d.handle();
        drop(d);
        assert_eq!(counter.drops(), 4, "queued posts and deferred objects dropped with it");
        assert!(matches!(handle.post(|| {}), Err(DispatcherError::Closed(_))));
        assert!(handle.is_closed());
        for timer in &timers {
            timer.enable(MS); // inert, no panic
            assert!(!timer.is_enabled());
        }
        drop(timers);
        assert_eq!(counter.drops(), 7);
        assert!(!ran.load(Ordering::SeqCst));
    }

    pub fn shutdown_runs_queued_posts_then_rejects<D: Dispatcher>(d: D) {
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let r = ran.clone();
            d.post(move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        let h = d.handle();
        h.shutdown();
        assert!(matches!(h.post(|| {}), Err(DispatcherError::Closed(_))));
        run_guarded(&d);
        assert_eq!(ran.load(Ordering::SeqCst), 3);
        // A shut-down dispatcher's run returns at once.
        run_guarded(&d);
    }

    pub fn long_timers_need_no_real_waiting<D: Dispatcher>(d: D) {
        let start = d.now();
        let at = Rc::new(Cell::new(None));
        let (a, dd) = (at.clone(), d.clone());
        let t = d.create_timer(move |_| {
            a.set(Some(dd.now() - start));
            dd.exit();
        });
        t.enable(Duration::from_secs(3600));
        run_guarded(&d); // the guard fails the test if this really waited
        let at = at.get().expect("fired");
        assert!(at >= Duration::from_secs(3600) && at < Duration::from_secs(3600) + MS);
    }

    pub fn current_is_the_running_dispatcher<D: Dispatcher>(d: D) {
        assert!(D::current().is_none());
        let h = d.handle();
        let ok = Arc::new(AtomicBool::new(false));
        let o = ok.clone();
        // A Send callback cannot capture `d`, but can find it via `current()`.
        d.post(move || {
            let current = D::current().expect("inside run");
            o.store(current.handle().same_dispatcher(&h), Ordering::SeqCst);
            current.exit();
        })
        .unwrap();
        run_guarded(&d);
        assert!(ok.load(Ordering::SeqCst));
        assert!(D::current().is_none());
    }
}

macro_rules! conformance {
    ($harness:ty) => {
        conformance!(@cases $harness;
            posts_run_in_fifo_order,
            posts_from_many_threads_keep_per_thread_order,
            exit_from_another_thread,
            exit_keeps_later_posts_for_next_run,
            run_is_not_reentrant,
            timers_fire_in_deadline_order,
            same_deadline_fires_in_enable_order,
            timer_reenabled_from_own_callback,
            disabled_timer_does_not_fire,
            dropped_timer_does_not_fire,
            callback_can_destroy_its_own_timer,
            zero_delay_rearm_does_not_starve_posts,
            deferred_delete_drops_at_end_of_iteration,
            dropping_with_pending_work_is_clean,
            shutdown_runs_queued_posts_then_rejects,
            long_timers_need_no_real_waiting,
            current_is_the_running_dispatcher,
        );
    };
    (@cases $harness:ty; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                super::suite::$case(<$harness as super::Harness>::make());
            }
        )*
    };
}

mod mio_dispatcher {
    conformance!(super::Mio);
}

mod tokio_dispatcher {
    conformance!(super::Tokio);
}
