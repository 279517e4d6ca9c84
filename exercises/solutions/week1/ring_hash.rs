//! Reference solution of `ring_hash`: sorted entries and a binary search.

use std::sync::Arc;

use week1_core::cluster::Host;
use xxhash_rust::xxh64::xxh64;

/// A built hash ring.
#[derive(Debug, Clone)]
pub struct HashRing {
    /// `(entry hash, index into hosts)`, sorted.
    entries: Vec<(u64, usize)>,
    hosts: Vec<Arc<Host>>,
}

impl HashRing {
    /// Places each host `entries_per_host` times on the ring.
    pub fn new(hosts: &[Arc<Host>], entries_per_host: u64) -> Self {
        let mut entries = Vec::new();
        for (idx, host) in hosts.iter().enumerate() {
            for i in 0..entries_per_host {
                let key = format!("{}_{i}", host.hash_key());
                entries.push((xxh64(key.as_bytes(), 0), idx));
            }
        }
        entries.sort_unstable();
        Self { entries, hosts: hosts.to_vec() }
    }

    /// Number of entries on the ring.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the ring has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The host owning `hash`: the first entry clockwise from it.
    pub fn lookup(&self, hash: u64) -> Option<&Arc<Host>> {
        let i = self.entries.partition_point(|&(h, _)| h < hash);
        let (_, owner) = self.entries.get(i).or_else(|| self.entries.first())?;
        Some(&self.hosts[*owner])
    }
}
