//! Week 2 benchmarks, side by side in one run:
//!
//! * `post_round_trip/{mio,tokio}`: main → worker → main through the post queues.
//! * `timers_1m/{mio,tokio}`: enable then cancel 1,000,000 timers.
//! * `tls_read/*`: `slot.get()` against `RwLock` read and `ArcSwap::load`.
//! * `run_on_all_threads/{2,4}`: Envoy's runOnAllThreads with its completion.
//!
//! `cargo bench -p week2-threads -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use week2_threads::dispatcher::{Dispatcher, MioDispatcher, Timer, TokioDispatcher};
use week2_threads::tls::Instance;
use week2_threads::worker::{WorkerConfig, WorkerPool};

fn start_pool(kind: &str, workers: usize, main: &MioDispatcher) -> WorkerPool {
    let config = WorkerConfig::new(workers);
    match kind {
        "mio" => WorkerPool::start_mio(&config, main.handle()),
        _ => WorkerPool::start_tokio(&config, main.handle()),
    }
    .expect("start workers")
}

fn post_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("post_round_trip");
    for kind in ["mio", "tokio"] {
        let main = MioDispatcher::new("main_thread").expect("main dispatcher");
        let mut pool = start_pool(kind, 1, &main);
        let main_handle = main.handle();
        group.bench_function(kind, |b| {
            b.iter(|| {
                let back = main_handle.clone();
                pool.post(0, move || {
                    let exit = back.clone();
                    // Post back to main; main's loop returns once it has run it.
                    let _ = back.post(move || exit.exit());
                })
                .expect("post");
                main.run().expect("main run");
            });
        });
        pool.stop().expect("stop");
    }
    group.finish();
}

const TIMERS: usize = 1_000_000;

fn timers_enable_cancel<D: Dispatcher>(c: &mut Criterion, kind: &str, dispatcher: &D) {
    let timers: Vec<Timer> = (0..TIMERS).map(|_| dispatcher.create_timer(|_| {})).collect();
    let mut group = c.benchmark_group("timers_1m");
    group.sample_size(10);
    group.throughput(Throughput::Elements(TIMERS as u64));
    group.bench_function(BenchmarkId::new("enable_then_cancel", kind), |b| {
        b.iter(|| {
            for (i, timer) in timers.iter().enumerate() {
                timer.enable(Duration::from_millis(1 + (i % 1000) as u64));
            }
            for timer in &timers {
                timer.disable();
            }
        });
    });
    group.finish();
}

fn timers(c: &mut Criterion) {
    let mio = MioDispatcher::new("bench").expect("mio dispatcher");
    timers_enable_cancel(c, "mio", &mio);
    let tokio = TokioDispatcher::new("bench").expect("tokio dispatcher");
    timers_enable_cancel(c, "tokio", &tokio);
}

/// A stand-in for a route table snapshot.
struct Config {
    version: u64,
    _routes: Vec<String>,
}

fn config() -> Config {
    Config { version: 7, _routes: (0..16).map(|i| format!("/svc{i}")).collect() }
}

fn tls_read(c: &mut Criterion) {
    let main = MioDispatcher::new("main_thread").expect("main dispatcher");
    let tls = Instance::new(main.handle());
    let slot = tls.allocate_slot::<Arc<Config>>().expect("slot");
    let shared = Arc::new(config());
    slot.set(move || shared.clone()).expect("set"); // the main thread's value is set now
    let rwlock = RwLock::new(Arc::new(config()));
    let swap = ArcSwap::from_pointee(config());

    let mut group = c.benchmark_group("tls_read");
    group.bench_function("slot_get", |b| {
        b.iter(|| black_box(slot.get().map(|config| config.version).unwrap_or(0)));
    });
    group.bench_function("slot_with", |b| {
        b.iter(|| black_box(slot.with(|config| config.version).unwrap_or(0)));
    });
    group.bench_function("rwlock_read", |b| {
        b.iter(|| black_box(rwlock.read().map(|config| config.version).unwrap_or(0)));
    });
    group.bench_function("arcswap_load", |b| {
        b.iter(|| black_box(swap.load().version));
    });
    group.finish();
}

fn run_on_all_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("run_on_all_threads");
    for workers in [2, 4] {
        let main = MioDispatcher::new("main_thread").expect("main dispatcher");
        let mut pool = start_pool("tokio", workers, &main);
        let main_handle = main.handle();
        group.bench_function(BenchmarkId::from_parameter(workers), |b| {
            b.iter(|| {
                let exit = main_handle.clone();
                pool.run_on_all_threads(
                    || {},
                    move |result| {
                        debug_assert!(result.is_ok());
                        exit.exit();
                    },
                )
                .expect("run_on_all_threads");
                main.run().expect("main run");
            });
        });
        pool.stop().expect("stop");
    }
    group.finish();
}

criterion_group!(benches, post_round_trip, timers, tls_read, run_on_all_threads);
criterion_main!(benches);
