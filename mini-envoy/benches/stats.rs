//! The stats increment path: a pre-resolved counter's `inc` (this thread's
//! shard, relaxed load + store) against a shared `AtomicU64::fetch_add`
//! (what a naive shared counter costs), a gauge inc/dec pair and a histogram
//! record; and merging on read.
//!
//! `cargo bench -p mini-envoy --bench stats -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use mini_envoy::stats::{ClusterStats, Store};

fn increments(c: &mut Criterion) {
    let store = Store::default();
    let stats = ClusterStats::new(&store, "backend");
    let mut g = c.benchmark_group("stats");
    g.bench_function("counter_inc", |b| b.iter(|| black_box(&stats.upstream_rq_total).inc()));
    let shared = AtomicU64::new(0);
    g.bench_function("atomic_fetch_add (reference)", |b| {
        b.iter(|| black_box(&shared).fetch_add(1, Ordering::Relaxed))
    });
    g.bench_function("gauge_inc_dec", |b| {
        b.iter(|| {
            let g = black_box(&stats.upstream_rq_active);
            g.inc();
            g.dec();
        })
    });
    g.bench_function("histogram_record", |b| {
        b.iter(|| black_box(&stats.upstream_rq_time).record(black_box(7)))
    });
    g.bench_function("response_200", |b| b.iter(|| stats.response(black_box(200))));
    g.bench_function("merge_on_read_all_stats", |b| b.iter(|| black_box(store.values().len())));
    g.finish();
}

criterion_group!(benches, increments);
criterion_main!(benches);
