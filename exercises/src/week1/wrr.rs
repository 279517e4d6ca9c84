//! # Exercise `wrr`: weighted round robin (week 1, day 6)
//!
//! Envoy's `ROUND_ROBIN` policy with host weights does not send a host its
//! whole share in one burst: it spreads the picks evenly in time with an
//! *earliest deadline first* (EDF) schedule. Build that load balancer.
//!
//! ## Task
//!
//! Implement [`WeightedRoundRobin`], a real [`LoadBalancer`] (the trait every
//! mini-envoy load balancer implements):
//!
//! - [`WeightedRoundRobin::new`] takes the cluster's hosts. Only hosts whose
//!   [`Host::health`] is [`HostHealth::Healthy`] take part.
//! - Each host `i` has a *deadline*, starting at `1.0 / weight_i`
//!   ([`Host::weight`]). A pick returns the host with the earliest deadline;
//!   ties go to the host that was added or re-scheduled first. The picked
//!   host's next deadline is `its deadline + 1.0 / weight` (use `f64`).
//! - With weights 5, 1, 1 the picks start `a a a a b c a`: over
//!   any `Σweights` picks each host gets exactly its weight.
//! - `choose_host` asks the context: while
//!   `ctx.should_select_another_host(&host)` is true, pick again, but at most
//!   `ctx.host_selection_retry_count()` extra times; then return the last pick.
//! - No healthy host: `None`.
//!
//! Run `cargo run -p exercises -- verify wrr`.

use std::sync::Arc;

use week1_core::cluster::{Host, HostHealth, LoadBalancer, LoadBalancerContext};

/// A weighted round robin load balancer for one worker.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    // Suggested state: the healthy hosts, one deadline per host, and a counter
    // that orders entries with equal deadlines.
    hosts: Vec<Arc<Host>>,
}

impl WeightedRoundRobin {
    /// A load balancer over the healthy hosts among `hosts`.
    pub fn new(hosts: Vec<Arc<Host>>) -> Self {
        todo!()
    }
}

impl LoadBalancer for WeightedRoundRobin {
    fn choose_host(&mut self, ctx: &mut dyn LoadBalancerContext) -> Option<Arc<Host>> {
        todo!()
    }
}
