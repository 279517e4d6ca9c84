//! Thread-local slots across a real main thread and real workers.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use parking_lot::Mutex;
use week2_threads::dispatcher::{Dispatcher, MioDispatcher};
use week2_threads::tls::{Instance, Slot, TlsError};
use week2_threads::worker::{WorkerConfig, WorkerPool};

mod common;
use common::{DEADLOCK_GUARD, run_guarded};

struct Setup {
    main: MioDispatcher,
    pool: WorkerPool,
    tls: Instance,
}

fn setup(workers: usize) -> Setup {
    let main = MioDispatcher::new("main_thread").unwrap();
    let pool = WorkerPool::start_tokio(&WorkerConfig::new(workers), main.handle()).unwrap();
    let tls = Instance::new(main.handle());
    for handle in pool.handles() {
        tls.register_thread(handle).unwrap();
    }
    Setup { main, pool, tls }
}

/// Runs `f` on every worker and collects the results, in worker order.
fn on_each_worker<R: Send + 'static>(
    pool: &WorkerPool,
    f: impl Fn() -> R + Send + Sync + Clone + 'static,
) -> Vec<R> {
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..pool.len() {
        let (tx, f) = (tx.clone(), f.clone());
        pool.post(i, move || tx.send((i, f())).unwrap()).unwrap();
    }
    let mut out: Vec<(usize, R)> =
        (0..pool.len()).map(|_| rx.recv_timeout(DEADLOCK_GUARD).expect("worker replied")).collect();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Runs the main loop until every thread has run everything posted so far.
fn settle(s: &Setup) {
    let exit = s.main.handle();
    s.tls
        .run_on_all_threads(
            || {},
            move |r| {
                r.unwrap();
                exit.exit();
            },
        )
        .unwrap();
    run_guarded(&s.main);
}

#[test]
fn slot_types_are_send_and_sync_even_for_rc_values() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Slot<Rc<String>>>();
    assert_send_sync::<Instance>();
}

#[test]
fn set_builds_a_value_on_every_thread() {
    let mut s = setup(3);
    let slot = s.tls.allocate_slot::<String>().unwrap();
    assert_eq!(slot.get(), Err(TlsError::NotSet(slot.index())));
    slot.set(|| format!("built on {}", thread::current().name().unwrap_or("?"))).unwrap();
    // The main thread's value is set synchronously.
    assert_eq!(*slot.get().unwrap(), format!("built on {}", thread::current().name().unwrap()));
    let sl = slot.clone();
    let seen = on_each_worker(&s.pool, move || sl.with(|v| v.clone()).unwrap());
    assert_eq!(seen, ["built on worker-0", "built on worker-1", "built on worker-2"]);
    s.pool.stop().unwrap();
}

#[test]
fn updates_apply_in_order_on_every_thread() {
    let mut s = setup(2);
    let slot = s.tls.allocate_slot::<Vec<u32>>().unwrap();
    slot.set(Vec::new).unwrap();
    for i in 1..=20 {
        slot.update(move |v| {
            let mut v = v.clone();
            v.push(i);
            v
        })
        .unwrap();
    }
    let expected: Vec<u32> = (1..=20).collect();
    assert_eq!(*slot.get().unwrap(), expected);
    let sl = slot.clone();
    for seen in on_each_worker(&s.pool, move || (*sl.get().unwrap()).clone()) {
        assert_eq!(seen, expected);
    }
    s.pool.stop().unwrap();
}

struct Tracked(Arc<AtomicUsize>);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn old_value_dropped_only_after_every_thread_moved_off() {
    let mut s = setup(2);
    let slot = s.tls.allocate_slot::<Arc<Tracked>>().unwrap();
    let v1_drops = Arc::new(AtomicUsize::new(0));
    let v1 = Arc::new(Tracked(v1_drops.clone()));
    slot.set(move || v1.clone()).unwrap();
    settle(&s);

    // Hold worker-0 inside a callback so the next update queues behind it.
    let (entered_tx, entered_rx) = crossbeam_channel::bounded(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
    s.pool
        .post(0, move || {
            entered_tx.send(()).unwrap();
            release_rx.recv_timeout(DEADLOCK_GUARD).expect("released");
        })
        .unwrap();
    entered_rx.recv_timeout(DEADLOCK_GUARD).unwrap();

    let v2_drops = Arc::new(AtomicUsize::new(0));
    let v2 = Arc::new(Tracked(v2_drops.clone()));
    let done = Arc::new(Mutex::new(None));
    let (d, exit) = (done.clone(), s.main.handle());
    slot.set_with_completion(
        move || v2.clone(),
        move |r| {
            *d.lock() = Some(r);
            exit.exit();
        },
    )
    .unwrap();
    // Main moved to v2 at once; worker-1 may have too; worker-0 has not.
    assert_eq!(v1_drops.load(Ordering::SeqCst), 0, "worker-0 still holds v1");
    release_tx.send(()).unwrap();
    run_guarded(&s.main);
    assert_eq!(*done.lock(), Some(Ok(())));
    assert_eq!(v1_drops.load(Ordering::SeqCst), 1, "dropped once, after the last thread moved");
    assert_eq!(v2_drops.load(Ordering::SeqCst), 0);

    // Freeing is posted to every thread too; afterwards v2 is gone everywhere.
    slot.free().unwrap();
    settle(&s);
    assert_eq!(v2_drops.load(Ordering::SeqCst), 1);
    s.pool.stop().unwrap();
}

#[test]
fn freed_slot_returns_errors_everywhere() {
    let mut s = setup(2);
    let slot = s.tls.allocate_slot::<u64>().unwrap();
    slot.set(|| 42).unwrap();
    let clone = slot.clone();
    let index = slot.index();
    slot.free().unwrap();
    assert!(clone.is_freed());
    assert_eq!(clone.get(), Err(TlsError::Freed(index)));
    assert_eq!(clone.set(|| 1), Err(TlsError::Freed(index)));
    assert_eq!(clone.update(|v| v + 1), Err(TlsError::Freed(index)));
    settle(&s);
    let c = clone.clone();
    for seen in on_each_worker(&s.pool, move || c.get().map(|v| *v)) {
        assert_eq!(seen, Err(TlsError::Freed(index)));
    }
    assert_eq!(clone.free(), Err(TlsError::Freed(index)));
    s.pool.stop().unwrap();
}

#[test]
fn index_is_reused_safely_after_free() {
    let mut s = setup(2);
    let a = s.tls.allocate_slot::<&'static str>().unwrap();
    a.set(|| "a").unwrap();
    a.free().unwrap();
    settle(&s); // the index returns to the free list once every thread dropped "a"
    settle(&s);
    // Another type, usually at the same index (parallel tests share the free
    // list): reads skip the run-time type check, so the
    // generation check must keep `a`'s entry from ever being read as a `Vec`.
    let b = s.tls.allocate_slot::<Vec<u64>>().unwrap();
    assert_eq!(b.get(), Err(TlsError::NotSet(b.index())), "no stale value from `a`");
    assert_eq!(b.with(|v| v.len()), Err(TlsError::NotSet(b.index())));
    b.set(|| vec![7, 8]).unwrap();
    let bb = b.clone();
    for seen in on_each_worker(&s.pool, move || bb.get().unwrap().to_vec()) {
        assert_eq!(seen, [7, 8]);
    }
    assert_eq!(b.with(|v| v.iter().sum::<u64>()), Ok(15));
    s.pool.stop().unwrap();
}

#[test]
fn writes_are_main_thread_only_and_reads_work_anywhere() {
    let mut s = setup(1);
    let slot = s.tls.allocate_slot::<u32>().unwrap();
    slot.set(|| 5).unwrap();
    let sl = slot.clone();
    let results =
        on_each_worker(&s.pool, move || (sl.set(|| 6), sl.update(|v| v + 1), sl.get().map(|v| *v)));
    let (set, update, get) = &results[0];
    assert_eq!(set, &Err(TlsError::NotMainThread));
    assert_eq!(update, &Err(TlsError::NotMainThread));
    assert_eq!(get, &Ok(5));
    let tls = s.tls.clone();
    let other = thread::spawn(move || tls.allocate_slot::<u8>().map(|_| ())).join().unwrap();
    assert_eq!(other, Err(TlsError::NotMainThread));
    s.pool.stop().unwrap();
}

#[test]
fn registration_and_shutdown_rules() {
    let mut s = setup(1);
    let slot = s.tls.allocate_slot::<u8>().unwrap();
    let late = MioDispatcher::new("late").unwrap();
    assert_eq!(s.tls.register_thread(late.handle()), Err(TlsError::RegisterAfterAllocate));
    s.tls.shutdown_global_threading();
    assert_eq!(slot.set(|| 1), Err(TlsError::ShutDown));
    assert!(matches!(s.tls.allocate_slot::<u8>(), Err(TlsError::ShutDown)));
    s.pool.stop().unwrap();
}

#[test]
fn set_with_a_stopped_worker_reports_incomplete() {
    let mut s = setup(2);
    let slot = s.tls.allocate_slot::<u8>().unwrap();
    s.pool.stop().unwrap();
    let done = Arc::new(Mutex::new(None));
    let (d, exit) = (done.clone(), s.main.handle());
    slot.set_with_completion(
        || 1,
        move |r| {
            *d.lock() = Some(r);
            exit.exit();
        },
    )
    .unwrap();
    run_guarded(&s.main);
    assert_eq!(*done.lock(), Some(Err(TlsError::Incomplete { missed: 2 })));
    assert_eq!(*slot.get().unwrap(), 1, "the main thread still got it");
}
