//! Checks of `ring_hash`, against week 1's own `Ring`.

use std::sync::Arc;

use week1_core::cluster::{Host, Ring, RingHashConfig};
use xxhash_rust::xxh64::xxh64;

use super::week1::ring_hash::HashRing;

fn hosts(n: usize) -> Vec<Arc<Host>> {
    (0..n)
        .map(|i| Host::builder(format!("10.3.0.{}:80", i + 1).parse().unwrap()).build().unwrap())
        .collect()
}

fn key_hash(k: u64) -> u64 {
    xxh64(&k.to_le_bytes(), 0)
}

checks! {
    fn has_one_entry_per_host_and_index() {
        assert_eq!(HashRing::new(&hosts(3), 10).len(), 30);
        assert!(!HashRing::new(&hosts(1), 1).is_empty());
        let empty = HashRing::new(&[], 10);
        assert!(empty.is_empty());
        assert!(empty.lookup(42).is_none());
    }

    fn entries_sit_at_envoys_keys() {
        let hs = hosts(2);
        let ring = HashRing::new(&hs, 5);
        // A request hashing exactly onto an entry lands on that entry's host.
        for (h, host) in hs.iter().enumerate() {
            for i in 0..5 {
                let at = xxh64(format!("{}_{i}", host.hash_key()).as_bytes(), 0);
                assert!(Arc::ptr_eq(ring.lookup(at).unwrap(), &hs[h]), "{}_{i}", host.hash_key());
            }
        }
    }

    fn wraps_past_the_last_entry() {
        let hs = hosts(3);
        let ring = HashRing::new(&hs, 4);
        let first = ring.lookup(0).unwrap();
        assert!(Arc::ptr_eq(ring.lookup(u64::MAX).unwrap(), first));
    }

    fn agrees_with_mini_envoys_ring() {
        // Four equal hosts and a 400-entry ring: the real ring gives each host
        // entries "<address>_0" .. "<address>_99", exactly like this exercise.
        let hs = hosts(4);
        let real = Ring::new(&hs, &RingHashConfig { minimum_ring_size: 400, maximum_ring_size: 400 })
            .unwrap();
        let ring = HashRing::new(&hs, 100);
        assert_eq!(ring.len(), real.len());
        for k in 0..2_000 {
            let h = key_hash(k);
            assert_eq!(
                ring.lookup(h).unwrap().address(),
                real.lookup(h).unwrap().address(),
                "key {k}"
            );
        }
    }

    fn removing_a_host_moves_only_its_keys() {
        let hs = hosts(5);
        let before = HashRing::new(&hs, 100);
        let after = HashRing::new(&hs[..4], 100);
        for k in 0..2_000 {
            let h = key_hash(k);
            let old = before.lookup(h).unwrap();
            if !Arc::ptr_eq(old, &hs[4]) {
                assert!(Arc::ptr_eq(after.lookup(h).unwrap(), old), "key {k} moved");
            }
        }
    }
}
