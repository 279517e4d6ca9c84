//! What the tokio dispatcher adds for mini-envoy's workers: local `!Send` tasks,
//! tokio I/O and tokio time inside the loop. Time is paused; nothing sleeps.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use week2_threads::dispatcher::{Dispatcher, DispatcherError, TokioDispatcher};

mod common;
use common::run_guarded;

fn paused() -> TokioDispatcher {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    TokioDispatcher::from_runtime("tokio-test", runtime).unwrap()
}

struct Tracked(Arc<AtomicUsize>);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn spawn_local_needs_a_running_loop() {
    let d = paused();
    assert!(matches!(d.spawn_local(async {}), Err(DispatcherError::NotRunning(_))));
}

#[test]
fn posted_callback_spawns_not_send_task_using_tokio_time() {
    let d = paused();
    let start = d.now();
    let elapsed = Rc::new(Cell::new(None));
    let e = elapsed.clone();
    let dd = d.clone();
    // A timer callback (not Send) spawns a task that owns an Rc (not Send).
    let kick = d.create_timer(move |_| {
        let (e, dd2) = (e.clone(), dd.clone());
        dd.spawn_local(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            e.set(Some(dd2.now() - start));
            dd2.exit();
        })
        .unwrap();
    });
    kick.enable(Duration::ZERO);
    run_guarded(&d);
    let elapsed = elapsed.get().expect("task ran");
    assert!(elapsed >= Duration::from_millis(50) && elapsed < Duration::from_millis(51));
}

#[test]
fn cross_thread_post_spawns_on_the_workers_local_set() {
    let d = paused();
    let h = d.handle();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    thread::scope(|s| {
        s.spawn(move || {
            h.post(move || {
                let local = Rc::new(7); // !Send state in the task
                tokio::task::spawn_local(async move {
                    tokio::task::yield_now().await;
                    r.store(*local, Ordering::SeqCst);
                    TokioDispatcher::current().expect("running").exit();
                });
            })
            .unwrap();
        });
        run_guarded(&d);
    });
    assert_eq!(ran.load(Ordering::SeqCst), 7);
}

#[test]
fn tokio_io_inside_local_tasks() {
    let d = TokioDispatcher::new("tokio-io").unwrap();
    let got = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let g = got.clone();
    // Real sockets, real (unpaused) runtime; the tasks exit the loop when done.
    d.post(move || {
        let (mut a, mut b) = tokio::net::UnixStream::pair().expect("socket pair");
        tokio::task::spawn_local(async move {
            a.write_all(b"over tokio").await.unwrap();
        });
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 10];
            b.read_exact(&mut buf).await.unwrap();
            g.lock().extend_from_slice(&buf);
            TokioDispatcher::current().unwrap().exit();
        });
    })
    .unwrap();
    run_guarded(&d);
    assert_eq!(&*got.lock(), b"over tokio");
}

#[test]
fn unfinished_tasks_are_dropped_when_run_returns() {
    let d = paused();
    let drops = Arc::new(AtomicUsize::new(0));
    let t = Tracked(drops.clone());
    let dd = d.clone();
    let kick = d.create_timer(move |_| {
        let tracked = Tracked(t.0.clone());
        dd.spawn_local(async move {
            let _held = tracked;
            std::future::pending::<()>().await;
        })
        .unwrap();
        dd.exit();
    });
    kick.enable(Duration::ZERO);
    run_guarded(&d);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn deferred_delete_from_a_task_is_cleared_promptly() {
    let d = paused();
    let drops = Arc::new(AtomicUsize::new(0));
    let seen = Rc::new(Cell::new(None));
    let (dr, s, dd) = (drops.clone(), seen.clone(), d.clone());
    let kick = d.create_timer(move |_| {
        let (dr, s, dd2) = (dr.clone(), s.clone(), dd.clone());
        dd.spawn_local(async move {
            dd2.deferred_delete(Box::new(Tracked(dr.clone())));
            assert_eq!(dr.load(Ordering::SeqCst), 0, "not inside the same callback");
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            s.set(Some(dr.load(Ordering::SeqCst)));
            dd2.exit();
        })
        .unwrap();
    });
    kick.enable(Duration::ZERO);
    run_guarded(&d);
    assert_eq!(seen.get(), Some(1));
}

#[test]
fn runtime_handle_spawns_onto_the_loop() {
    let d = paused();
    let dd = d.clone();
    let kick = d.create_timer(move |_| {
        let exit = dd.handle();
        dd.runtime_handle().spawn(async move { exit.exit() });
    });
    kick.enable(Duration::ZERO);
    run_guarded(&d);
}

#[test]
fn multi_thread_runtime_is_rejected() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    assert!(matches!(
        TokioDispatcher::from_runtime("bad", runtime),
        Err(DispatcherError::InvalidRuntime(_))
    ));
}
