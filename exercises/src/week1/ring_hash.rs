//! # Exercise `ring_hash`: a consistent-hash ring (week 1, day 6)
//!
//! Envoy's `RING_HASH` policy sends requests with the same hash (the same
//! user, session or header value) to the same host, and when a host leaves
//! only that host's keys move. Build the ring.
//!
//! ## Task
//!
//! Implement [`HashRing`]:
//!
//! - [`HashRing::new`] places every host `entries_per_host` times on a ring of
//!   `u64`s, at `xxh64("<address>_<i>", 0)` for `i = 0..entries_per_host`,
//!   where `<address>` is [`Host::hash_key`] (e.g. `10.0.0.1:80`). These are
//!   Envoy's keys, so the ring is the one Envoy would build.
//! - Keep the entries sorted by hash (equal hashes: the earlier host first).
//! - [`HashRing::lookup`] returns the host of the first entry whose hash is
//!   `>= hash`, wrapping around to the first entry past the end. An empty ring
//!   returns `None`.
//! - [`HashRing::len`] is the number of entries.
//!
//! (The real ring also scales each host's entry count by its weight and
//! between `minimum_ring_size` and `maximum_ring_size`.)
//!
//! Run `cargo run -p exercises -- verify ring_hash`.

use std::sync::Arc;

use week1_core::cluster::Host;

/// A built hash ring.
#[derive(Debug, Clone)]
pub struct HashRing {
    // Suggested state: sorted (hash, host index) entries and the hosts.
    hosts: Vec<Arc<Host>>,
}

impl HashRing {
    /// Places each host `entries_per_host` times on the ring.
    pub fn new(hosts: &[Arc<Host>], entries_per_host: u64) -> Self {
        todo!()
    }

    /// Number of entries on the ring.
    pub fn len(&self) -> usize {
        todo!()
    }

    /// True when the ring has no entries.
    pub fn is_empty(&self) -> bool {
        todo!()
    }

    /// The host owning `hash`: the first entry clockwise from it.
    pub fn lookup(&self, hash: u64) -> Option<&Arc<Host>> {
        todo!()
    }
}
