//! Reference solution of `wrr`: weighted round robin on an EDF schedule.
//!
//! A linear scan for the earliest deadline keeps the idea visible; the real
//! thing (`week1_core::cluster::edf`) keeps the entries in a binary heap.

use std::sync::Arc;

use week1_core::cluster::{Host, HostHealth, LoadBalancer, LoadBalancerContext};

#[derive(Debug)]
struct Entry {
    deadline: f64,
    /// Tie-breaker: lower was scheduled first.
    order: u64,
    host: Arc<Host>,
}

/// A weighted round robin load balancer for one worker.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    entries: Vec<Entry>,
    next_order: u64,
}

impl WeightedRoundRobin {
    /// A load balancer over the healthy hosts among `hosts`.
    pub fn new(hosts: Vec<Arc<Host>>) -> Self {
        let entries: Vec<Entry> = hosts
            .into_iter()
            .filter(|h| h.health() == HostHealth::Healthy)
            .enumerate()
            .map(|(i, host)| Entry {
                deadline: 1.0 / f64::from(host.weight()),
                order: i as u64,
                host,
            })
            .collect();
        let next_order = entries.len() as u64;
        Self { entries, next_order }
    }

    fn pick(&mut self) -> Option<Arc<Host>> {
        let earliest = self
            .entries
            .iter_mut()
            .min_by(|a, b| a.deadline.total_cmp(&b.deadline).then_with(|| a.order.cmp(&b.order)))?;
        earliest.deadline += 1.0 / f64::from(earliest.host.weight());
        earliest.order = self.next_order;
        self.next_order += 1;
        Some(Arc::clone(&earliest.host))
    }
}

impl LoadBalancer for WeightedRoundRobin {
    fn choose_host(&mut self, ctx: &mut dyn LoadBalancerContext) -> Option<Arc<Host>> {
        let mut host = self.pick()?;
        for _ in 0..ctx.host_selection_retry_count() {
            if !ctx.should_select_another_host(&host) {
                break;
            }
            host = self.pick()?;
        }
        Some(host)
    }
}
