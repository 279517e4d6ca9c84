//! One host pick with 100 hosts, per load-balancing policy (issue targets:
//! round robin < 50 ns, least request < 100 ns, ring hash and Maglev < 100 ns).
//!
//! Each iteration is a full `choose_host` through `Box<dyn LoadBalancer>`,
//! including priority selection and the `Arc<Host>` clone and drop.
//! Setup is kept small so the bench also runs quickly under `cargo test`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use week1_core::cluster::{
    Host, LbConfig, LbPolicy, LoadBalancerContext, LoadBalancerFactory, PrioritySet,
};

const HOSTS: usize = 100;

fn priority_set(weighted: bool) -> Arc<PrioritySet> {
    let hosts = (0..HOSTS).map(|i| {
        let weight = if weighted { (i % 5 + 1) as u32 } else { 1 };
        Host::builder(format!("10.0.{}.{}:8080", i / 200, i % 200 + 1).parse().unwrap())
            .weight(weight)
            .build()
            .unwrap()
    });
    Arc::new(PrioritySet::builder().hosts(hosts).build().unwrap())
}

/// A context carrying a precomputed request hash, as the router provides.
struct Hashed(u64);

impl LoadBalancerContext for Hashed {
    fn hash_key(&self) -> Option<u64> {
        Some(self.0)
    }
}

fn bench_picks(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick_100_hosts");
    let cases = [
        ("round_robin", LbPolicy::RoundRobin, false),
        ("round_robin_weighted", LbPolicy::RoundRobin, true),
        ("least_request", LbPolicy::LeastRequest, false),
        ("least_request_weighted", LbPolicy::LeastRequest, true),
        ("random", LbPolicy::Random, false),
        ("ring_hash", LbPolicy::RingHash, false),
        ("maglev", LbPolicy::Maglev, false),
    ];
    for (name, policy, weighted) in cases {
        let factory =
            LoadBalancerFactory::new(&LbConfig::new(policy), priority_set(weighted), None).unwrap();
        let mut lb = factory.create_seeded(1);
        if matches!(policy, LbPolicy::RingHash | LbPolicy::Maglev) {
            // Vary the hash so lookups do not all hit one cached spot.
            let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
            group.bench_function(name, |b| {
                b.iter(|| {
                    h = h.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    black_box(lb.choose_host(&mut Hashed(h)))
                })
            });
        } else {
            group.bench_function(name, |b| b.iter(|| black_box(lb.choose())));
        }
    }
    group.finish();
}

criterion_group!(benches, bench_picks);
criterion_main!(benches);
