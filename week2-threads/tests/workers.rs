//! Worker threads: naming, posting, run_on_all_threads, draining stop, panics,
//! pinning. Every pool is stopped (joined) before its test returns.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use parking_lot::Mutex;
use week2_threads::dispatcher::{Dispatcher, DispatcherError, MioDispatcher, TokioDispatcher};
use week2_threads::worker::{WorkerConfig, WorkerError, WorkerPool};

mod common;
use common::{DEADLOCK_GUARD, run_guarded};

fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Mio,
    Tokio,
}

fn start(kind: Kind, count: usize, main: &MioDispatcher) -> WorkerPool {
    let config = WorkerConfig::new(count);
    match kind {
        Kind::Mio => WorkerPool::start_mio(&config, main.handle()),
        Kind::Tokio => WorkerPool::start_tokio(&config, main.handle()),
    }
    .expect("start workers")
}

#[test]
fn workers_are_named_and_running_when_start_returns() {
    for kind in [Kind::Mio, Kind::Tokio] {
        let main = MioDispatcher::new("main_thread").unwrap();
        let mut pool = start(kind, 3, &main);
        assert_eq!(pool.names().collect::<Vec<_>>(), ["worker-0", "worker-1", "worker-2"]);
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in 0..pool.len() {
            let tx = tx.clone();
            pool.post(i, move || {
                let running = match kind {
                    Kind::Mio => MioDispatcher::current().is_some(),
                    Kind::Tokio => TokioDispatcher::current().is_some(),
                };
                tx.send((i, thread_name(), running)).unwrap();
            })
            .unwrap();
        }
        let mut seen: Vec<_> =
            (0..3).map(|_| rx.recv_timeout(DEADLOCK_GUARD).expect("worker replied")).collect();
        seen.sort();
        for (i, (index, name, running)) in seen.into_iter().enumerate() {
            assert_eq!(index, i);
            assert_eq!(name, format!("worker-{i}"), "{kind:?}");
            assert!(running, "callbacks run inside the worker's loop");
        }
        pool.stop().unwrap();
    }
}

#[test]
fn post_to_all_reaches_every_worker() {
    let main = MioDispatcher::new("main_thread").unwrap();
    let mut pool = start(Kind::Tokio, 4, &main);
    let (tx, rx) = crossbeam_channel::unbounded();
    pool.post_to_all(move || tx.send(thread_name()).unwrap()).unwrap();
    let names: BTreeSet<String> =
        (0..4).map(|_| rx.recv_timeout(DEADLOCK_GUARD).expect("reply")).collect();
    assert_eq!(names, (0..4).map(|i| format!("worker-{i}")).collect());
    pool.stop().unwrap();
}

#[test]
fn run_on_all_threads_completes_on_the_main_thread() {
    for kind in [Kind::Mio, Kind::Tokio] {
        for count in [1, 2, 4] {
            let main = MioDispatcher::new("main_thread").unwrap();
            let mut pool = start(kind, count, &main);
            let ran = Arc::new(Mutex::new(Vec::new()));
            let outcome = Arc::new(Mutex::new(None));
            let (r, o, exit) = (ran.clone(), outcome.clone(), main.handle());
            let main_thread = thread::current().id();
            pool.run_on_all_threads(
                move || r.lock().push(thread_name()),
                move |result| {
                    *o.lock() = Some((result.is_ok(), thread::current().id() == main_thread));
                    exit.exit();
                },
            )
            .unwrap();
            run_guarded(&main);
            assert_eq!(*outcome.lock(), Some((true, true)), "{kind:?} x{count}");
            let mut ran = ran.lock().clone();
            ran.sort();
            assert_eq!(ran, (0..count).map(|i| format!("worker-{i}")).collect::<Vec<_>>());
            pool.stop().unwrap();
        }
    }
}

#[test]
fn stop_runs_already_posted_work_then_rejects_posts() {
    for kind in [Kind::Mio, Kind::Tokio] {
        let main = MioDispatcher::new("main_thread").unwrap();
        let mut pool = start(kind, 2, &main);
        let count = Arc::new(AtomicUsize::new(0));
        for _ in 0..1000 {
            for w in 0..2 {
                let c = count.clone();
                pool.post(w, move || {
                    c.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            }
        }
        pool.stop().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2000, "{kind:?}");
        assert!(
            matches!(pool.post(0, || {}), Err(WorkerError::Stopped { worker }) if worker == "worker-0")
        );
        assert!(matches!(pool.post_to_all(|| {}), Err(WorkerError::Stopped { .. })));
        assert!(matches!(
            pool.post(7, || {}),
            Err(WorkerError::NoSuchWorker { index: 7, count: 2 })
        ));
        pool.stop().unwrap(); // idempotent
    }
}

#[test]
fn run_on_all_threads_after_stop_still_completes_with_an_error() {
    let main = MioDispatcher::new("main_thread").unwrap();
    let mut pool = start(Kind::Mio, 2, &main);
    pool.stop().unwrap();
    let outcome = Arc::new(Mutex::new(None));
    let (o, exit) = (outcome.clone(), main.handle());
    let posted = pool.run_on_all_threads(
        || {},
        move |result| {
            *o.lock() = Some(result);
            exit.exit();
        },
    );
    assert!(matches!(posted, Err(WorkerError::Stopped { .. })));
    run_guarded(&main);
    assert!(matches!(*outcome.lock(), Some(Err(WorkerError::Incomplete { missed: 2 }))));
}

#[test]
fn panicking_worker_is_reported_and_nothing_hangs() {
    for kind in [Kind::Mio, Kind::Tokio] {
        let main = MioDispatcher::new("main_thread").unwrap();
        let mut pool = start(kind, 3, &main);
        pool.post(1, || panic!("boom in a callback")).unwrap();
        let outcome = Arc::new(Mutex::new(None));
        let ran = Arc::new(AtomicUsize::new(0));
        let (o, r, exit) = (outcome.clone(), ran.clone(), main.handle());
        // Queued behind the panic on worker-1 (or rejected if it already died).
        let _ = pool.run_on_all_threads(
            move || {
                r.fetch_add(1, Ordering::SeqCst);
            },
            move |result| {
                *o.lock() = Some(result);
                exit.exit();
            },
        );
        run_guarded(&main);
        assert!(
            matches!(*outcome.lock(), Some(Err(WorkerError::Incomplete { missed: 1 }))),
            "{kind:?}: {:?}",
            outcome.lock()
        );
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        let failures = pool.failures();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].worker, "worker-1");
        assert!(failures[0].message.contains("boom in a callback"), "{}", failures[0].message);
        assert!(matches!(pool.post(1, || {}), Err(WorkerError::Stopped { .. })));
        pool.post(0, || {}).expect("other workers keep running");
        match pool.stop() {
            Err(WorkerError::Failed { failures }) => assert_eq!(failures[0].worker, "worker-1"),
            other => panic!("expected Failed, got {other:?}"),
        }
    }
}

#[test]
fn factory_failure_fails_start_and_joins_the_others() {
    let main = MioDispatcher::new("main_thread").unwrap();
    let built = Arc::new(AtomicUsize::new(0));
    let b = built.clone();
    let result = WorkerPool::start(&WorkerConfig::new(3), main.handle(), move |info| {
        if info.index == 1 {
            return Err(DispatcherError::InvalidRuntime("refused by test"));
        }
        b.fetch_add(1, Ordering::SeqCst);
        MioDispatcher::new(&info.name)
    });
    match result {
        Err(WorkerError::StartFailed { worker, reason }) => {
            assert_eq!(worker, "worker-1");
            assert!(reason.contains("refused by test"), "{reason}");
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    assert_eq!(built.load(Ordering::SeqCst), 2);
}

#[test]
fn dropping_the_pool_joins_its_threads() {
    thread_local! {
        static HELD: std::cell::RefCell<Option<Arc<()>>> = const { std::cell::RefCell::new(None) };
    }
    let main = MioDispatcher::new("main_thread").unwrap();
    let token = Arc::new(());
    let pool = start(Kind::Tokio, 3, &main);
    let (tx, rx) = crossbeam_channel::unbounded();
    let t = token.clone();
    pool.post_to_all(move || {
        // Released only when the worker thread exits.
        HELD.with(|h| *h.borrow_mut() = Some(t.clone()));
        tx.send(()).unwrap();
    })
    .unwrap();
    for _ in 0..3 {
        rx.recv_timeout(DEADLOCK_GUARD).expect("posted");
    }
    // Each worker holds a clone; the shared closure holds one more until the
    // last worker has finished running it (it may still be returning now).
    assert!(Arc::strong_count(&token) >= 4, "every worker holds the token");
    drop(pool);
    assert_eq!(Arc::strong_count(&token), 1, "every worker thread has exited");
}

#[cfg(target_os = "linux")]
#[test]
fn pinned_workers_run_on_one_cpu_each() {
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    if cpus.is_empty() {
        return; // no affinity information on this machine
    }
    let main = MioDispatcher::new("main_thread").unwrap();
    let config = WorkerConfig { pin_to_cpus: true, ..WorkerConfig::new(2) };
    let mut pool = WorkerPool::start_mio(&config, main.handle()).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..2 {
        let tx = tx.clone();
        // On Linux, get_core_ids reads the calling thread's affinity mask.
        pool.post(i, move || tx.send((i, core_affinity::get_core_ids())).unwrap()).unwrap();
    }
    for _ in 0..2 {
        let (i, mask) = rx.recv_timeout(DEADLOCK_GUARD).unwrap();
        let mask = mask.unwrap_or_default();
        assert_eq!(mask.len(), 1, "worker-{i} pinned to exactly one CPU");
        assert_eq!(mask[0].id, cpus[i % cpus.len()].id);
    }
    pool.stop().unwrap();
}
