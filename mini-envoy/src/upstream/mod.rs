//! # The upstream side: the cluster manager's per-worker half
//!
//! Envoy's `ThreadLocalClusterManager`: each worker owns one load balancer
//! per cluster (created from the cluster's shared factory, week 1) and one
//! connection pool per upstream host ([`pool`]). Nothing here is shared
//! between workers except the clusters' atomic host stats and circuit
//! breakers.
//!
//! ```text
//!  router (hcm) ─► WorkerUpstreams::choose_host(cluster, ctx) ─► Arc<Host>
//!              └─► WorkerPools::acquire(host) ─► UpstreamConnection ─► release
//! ```

pub mod pool;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use week1_core::cluster::{Host, LoadBalancer, LoadBalancerContext, ResourceGuard};

use crate::cluster_manager::{ClusterEntry, ClusterMap};
use pool::WorkerPools;

/// A worker's load balancer for one cluster entry, keeping the entry alive
/// (its address is the key).
type WorkerLb = (Arc<ClusterEntry>, Box<dyn LoadBalancer>);

/// A worker's load balancers and pools.
#[derive(Default)]
pub struct WorkerUpstreams {
    /// Connection pools.
    pub pools: Rc<WorkerPools>,
    /// One load balancer per cluster entry (a new snapshot's entry gets a new one).
    lbs: RefCell<FxHashMap<usize, WorkerLb>>,
}

impl std::fmt::Debug for WorkerUpstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerUpstreams").field("lbs", &self.lbs.borrow().len()).finish()
    }
}

impl WorkerUpstreams {
    // ANCHOR: choose_host
    /// Picks a host of `cluster` with this worker's load balancer.
    pub fn choose_host(
        &self,
        cluster: &Arc<ClusterEntry>,
        ctx: &mut dyn LoadBalancerContext,
    ) -> Option<Arc<Host>> {
        let key = Arc::as_ptr(cluster) as usize;
        let mut lbs = self.lbs.borrow_mut();
        let (_, lb) = lbs.entry(key).or_insert_with(|| {
            (cluster.clone(), cluster.lb_factory.create(crate::random::small_rng()))
        });
        lb.choose_host(ctx)
    }
    // ANCHOR_END: choose_host

    /// Drops load balancers of cluster versions nothing uses any more, and
    /// idle connections that timed out or whose cluster or host is gone
    /// (`clusters` is the worker's current map).
    pub fn sweep(&self, clusters: &ClusterMap) {
        self.lbs.borrow_mut().retain(|_, (entry, _)| Arc::strong_count(entry) > 1);
        self.pools.sweep(|name, address| {
            let cluster = clusters.get(name).filter(|c| c.has_host(address))?;
            Some(cluster.info.idle_timeout)
        });
    }
}

/// Counts an open upstream connection: the host's `cx_active` and the
/// cluster's `max_connections` slot, both given back when it drops.
#[derive(Debug)]
pub struct ConnectionGuard {
    host: Arc<Host>,
    _resource: ResourceGuard,
}

impl ConnectionGuard {
    /// Counts a connection to `host` holding the breaker slot `resource`.
    pub fn new(host: Arc<Host>, resource: ResourceGuard) -> Self {
        host.stats().cx_active.fetch_add(1, Ordering::Relaxed);
        Self { host, _resource: resource }
    }

    /// The host counted.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.host.stats().cx_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the load balancer knows of a request: the hash for ring hash and
/// Maglev, and the hosts to avoid (already tried: Envoy's `previous_hosts`).
#[derive(Debug, Clone, Copy)]
pub struct LbContext<'a> {
    /// The request's hash.
    pub hash: Option<u64>,
    /// Hosts to pick again instead of.
    pub avoid: &'a [SocketAddr],
    /// How many extra picks may be made to avoid them.
    pub selection_retries: u32,
}

impl LoadBalancerContext for LbContext<'_> {
    fn hash_key(&self) -> Option<u64> {
        self.hash
    }
    fn should_select_another_host(&self, host: &Host) -> bool {
        self.avoid.contains(&host.address())
    }
    fn host_selection_retry_count(&self) -> u32 {
        self.selection_retries
    }
}
