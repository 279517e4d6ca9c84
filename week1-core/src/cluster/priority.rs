//! Priority load and panic mode: Envoy's `LoadBalancerBase` arithmetic.
//!
//! Given a [`PrioritySet`] snapshot this computes, once per snapshot on the
//! main thread, how the 100% of traffic splits across priority levels:
//!
//! ```text
//!  per level:  health   = min(100, overprovisioning% * healthy  / (hosts - excluded))
//!              degraded = min(100, overprovisioning% * degraded / (hosts - excluded))
//!  normalized total availability  N = min(100, Σ health + Σ degraded)
//!  healthy load, P=0 first:  load[p]  = min(left, health[p]   * 100 / N)
//!  then degraded load:       dload[p] = min(left, degraded[p] * 100 / N)
//!  rounding leftovers go to the first level with health (else with degraded)
//!  panic[p] = N < 100 && (healthy% + degraded%)[p] < healthy_panic_threshold
//!  all levels in panic ⇒ load by host count, ignoring health
//! ```
//!
//! Every load balancer then maps a random (or hashed) number in `1..=100` to a
//! level with [`choose_priority`]: healthy loads first, degraded loads after, so
//! degraded hosts only take traffic healthy hosts cannot.

use super::host_set::{HostSet, PrioritySet};

/// Whether a pick should target a level's healthy or degraded hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostAvailability {
    /// Pick among healthy hosts.
    Healthy,
    /// Pick among degraded hosts.
    Degraded,
}

/// Percent of traffic per priority; healthy + degraded always sums to 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityLoad {
    /// Percent to each level's healthy hosts.
    pub healthy: Vec<u32>,
    /// Percent to each level's degraded hosts.
    pub degraded: Vec<u32>,
}

/// Everything Envoy derives from a priority set before picking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityState {
    /// Traffic split.
    pub load: PriorityLoad,
    /// Per-level health score, 0..=100.
    pub health: Vec<u32>,
    /// Per-level degraded score, 0..=100.
    pub degraded: Vec<u32>,
    /// Per-level panic flag: the level routes to all its hosts.
    pub panic: Vec<bool>,
    /// Every level is in panic and load follows host counts.
    pub total_panic: bool,
}

/// Healthy + degraded share of a level (excluded hosts left out), as Envoy's
/// `isHostSetInPanic` compares it with the panic threshold.
pub fn host_set_in_panic(host_set: &HostSet, panic_threshold: u32) -> bool {
    let count = host_set.hosts().len() - host_set.excluded_hosts().len();
    let (healthy, degraded) = if count == 0 {
        (0.0, 0.0)
    } else {
        (
            100.0 * host_set.healthy_hosts().len() as f64 / count as f64,
            100.0 * host_set.degraded_hosts().len() as f64 / count as f64,
        )
    };
    healthy + degraded < panic_threshold.min(100) as f64
}

fn level_scores(hs: &HostSet) -> (u32, u32) {
    let count = hs.hosts().len() - hs.excluded_hosts().len();
    if count == 0 {
        return (0, 0);
    }
    let (healthy, degraded, total) = if hs.weighted_priority_health() {
        let sum = |hosts: &[std::sync::Arc<super::Host>]| -> u64 {
            hosts.iter().map(|h| u64::from(h.weight())).sum()
        };
        (
            sum(hs.healthy_hosts()),
            sum(hs.degraded_hosts()),
            sum(hs.hosts()) - sum(hs.excluded_hosts()),
        )
    } else {
        (hs.healthy_hosts().len() as u64, hs.degraded_hosts().len() as u64, count as u64)
    };
    let factor = u64::from(hs.overprovisioning_factor());
    let score = |n: u64| (factor * n / total).min(100) as u32;
    (score(healthy), score(degraded))
}

/// Spreads `total` over levels in order; returns (first level with a nonzero
/// score, load left over).
fn distribute(
    load: &mut [u32],
    scores: &[u32],
    mut total: u32,
    normalized: u32,
) -> (Option<usize>, u32) {
    let mut first = None;
    for (p, (l, &score)) in load.iter_mut().zip(scores).enumerate() {
        if first.is_none() && score > 0 {
            first = Some(p);
        }
        *l = total.min(score * 100 / normalized);
        total -= *l;
    }
    (first, total)
}

// ANCHOR: priority_load
/// Computes priority loads and panic flags for a snapshot, exactly as Envoy's
/// `recalculatePerPriorityState` + `recalculatePerPriorityPanic` do.
/// `panic_threshold` is `common_lb_config.healthy_panic_threshold` in percent
/// (0 disables panic mode).
pub fn compute_priority_state(ps: &PrioritySet, panic_threshold: u32) -> PriorityState {
    let levels = ps.host_sets().len();
    let (health, degraded): (Vec<u32>, Vec<u32>) =
        ps.host_sets().iter().map(|hs| level_scores(hs)).unzip();
    let mut load = PriorityLoad { healthy: vec![0; levels], degraded: vec![0; levels] };

    let normalized = (health.iter().sum::<u32>() + degraded.iter().sum::<u32>()).min(100);
    if normalized > 0 {
        let (first_healthy, left) = distribute(&mut load.healthy, &health, 100, normalized);
        let (first_degraded, left) = distribute(&mut load.degraded, &degraded, left, normalized);
        if left > 0 {
            // Rounding crumbs: first level with healthy hosts, else with degraded.
            match (first_healthy, first_degraded) {
                (Some(p), _) => load.healthy[p] += left,
                (None, Some(p)) => load.degraded[p] += left,
                (None, None) => unreachable_zero_availability(&mut load),
            }
        }
    }

    let threshold = panic_threshold.min(100);
    if threshold == 0 && normalized == 0 {
        // No panic and nothing available: send "everything" to P=0, which has no
        // hosts to pick, so the pick fails cleanly.
        load.healthy[0] = 100;
        let panic = vec![false; levels];
        return PriorityState { load, health, degraded, panic, total_panic: false };
    }
    // A full normalized availability never panics, however bad one level is.
    let panic: Vec<bool> = ps
        .host_sets()
        .iter()
        .map(|hs| threshold > 0 && normalized < 100 && host_set_in_panic(hs, threshold))
        .collect();
    let total_panic = panic.iter().all(|&p| p);
    if total_panic {
        // Every level is in panic: split by raw host counts, ignoring health.
        // An empty cluster sends "everything" to the empty P=0.
        let total_hosts = ps.total_hosts() as u64;
        load.degraded.fill(0);
        let mut left = 100;
        for (l, hs) in load.healthy.iter_mut().zip(ps.host_sets()) {
            *l = (100 * hs.hosts().len() as u64).checked_div(total_hosts).unwrap_or(0) as u32;
            left -= *l;
        }
        let first_nonempty =
            ps.host_sets().iter().position(|hs| !hs.hosts().is_empty()).unwrap_or(0);
        load.healthy[first_nonempty] += left;
    }
    PriorityState { load, health, degraded, panic, total_panic }
}
// ANCHOR_END: priority_load

/// `normalized > 0` guarantees some level has a score, so this never runs; it
/// keeps the load summing to 100 rather than panicking if that ever changed.
fn unreachable_zero_availability(load: &mut PriorityLoad) {
    load.healthy[0] += 100 - load.healthy.iter().sum::<u32>() - load.degraded.iter().sum::<u32>();
}

/// Maps `hash` to a level: `hash % 100 + 1` walks the healthy loads, then the
/// degraded loads (Envoy's `choosePriority`).
pub fn choose_priority(hash: u64, load: &PriorityLoad) -> (usize, HostAvailability) {
    let target = (hash % 100 + 1) as u32;
    let mut acc = 0;
    for (p, &l) in load.healthy.iter().enumerate() {
        acc += l;
        if target <= acc {
            return (p, HostAvailability::Healthy);
        }
    }
    for (p, &l) in load.degraded.iter().enumerate() {
        acc += l;
        if target <= acc {
            return (p, HostAvailability::Degraded);
        }
    }
    (0, HostAvailability::Healthy)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::host::{HealthFlags, Host};
    use super::*;

    /// A priority set whose level `p` has `total[p]` hosts of which `healthy[p]`
    /// are healthy and `degraded[p]` degraded (the rest unhealthy).
    pub(crate) fn levels(spec: &[(u32, u32, u32)]) -> PrioritySet {
        let mut hosts = Vec::new();
        let mut n = 0u32;
        for (p, &(total, healthy, degraded)) in spec.iter().enumerate() {
            for i in 0..total {
                n += 1;
                let addr = format!("10.{}.{}.{}:80", p, n / 250, n % 250).parse().unwrap();
                let h: Arc<Host> = Host::builder(addr).priority(p as u32).build().unwrap();
                if i >= healthy + degraded {
                    h.set_health_flags(HealthFlags::FAILED_ACTIVE_HC);
                } else if i >= healthy {
                    h.set_health_flags(HealthFlags::DEGRADED_ACTIVE_HC);
                }
                hosts.push(h);
            }
        }
        PrioritySet::builder().hosts(hosts).build().unwrap()
    }

    /// Loads with panic mode off: the docs' tables assume no level panics.
    fn load(spec: &[(u32, u32, u32)]) -> Vec<u32> {
        compute_priority_state(&levels(spec), 0).load.healthy
    }

    #[test]
    fn envoy_docs_two_levels() {
        // Envoy docs, "Priority levels", 2 levels with P=1 fully healthy.
        assert_eq!(load(&[(100, 100, 0), (100, 100, 0)]), [100, 0]);
        assert_eq!(load(&[(100, 72, 0), (100, 100, 0)]), [100, 0]);
        assert_eq!(load(&[(100, 71, 0), (100, 100, 0)]), [99, 1]);
        assert_eq!(load(&[(100, 50, 0), (100, 100, 0)]), [70, 30]);
        assert_eq!(load(&[(100, 25, 0), (100, 100, 0)]), [35, 65]);
        assert_eq!(load(&[(100, 0, 0), (100, 100, 0)]), [0, 100]);
    }

    #[test]
    fn envoy_docs_normalized_total_health() {
        // Docs: health {20, 30} normalizes to loads {40, 60}.
        // 20 = 140 * 1 / 7 (floor), 30 = 140 * 3 / 14.
        let s = compute_priority_state(&levels(&[(7, 1, 0), (14, 3, 0)]), 0);
        assert_eq!(s.health, [20, 30]);
        assert_eq!(s.load.healthy, [40, 60]);
        // Docs table: 72/72 -> 100/0, 71/71 -> 99/1, 50/50 -> 70/30, 25/25 -> 50/50.
        assert_eq!(load(&[(100, 72, 0), (100, 72, 0)]), [100, 0]);
        assert_eq!(load(&[(100, 71, 0), (100, 71, 0)]), [99, 1]);
        assert_eq!(load(&[(100, 50, 0), (100, 50, 0)]), [70, 30]);
        assert_eq!(load(&[(100, 25, 0), (100, 25, 0)]), [50, 50]);
    }

    #[test]
    fn envoy_docs_three_levels() {
        assert_eq!(load(&[(100, 100, 0), (100, 100, 0), (100, 100, 0)]), [100, 0, 0]);
        assert_eq!(load(&[(100, 72, 0), (100, 72, 0), (100, 100, 0)]), [100, 0, 0]);
        assert_eq!(load(&[(100, 71, 0), (100, 71, 0), (100, 100, 0)]), [99, 1, 0]);
        assert_eq!(load(&[(100, 50, 0), (100, 50, 0), (100, 100, 0)]), [70, 30, 0]);
        assert_eq!(load(&[(100, 25, 0), (100, 100, 0), (100, 100, 0)]), [35, 65, 0]);
        assert_eq!(load(&[(100, 25, 0), (100, 25, 0), (100, 100, 0)]), [35, 35, 30]);
        // The docs table prints 36/36/28 for 25%/25%/20%, but Envoy's integer code
        // (which we follow) floors 35*100/98 = 35, 28*100/98 = 28 and hands the 2%
        // rounding remainder to the first healthy level: 37/35/28.
        assert_eq!(load(&[(100, 25, 0), (100, 25, 0), (100, 20, 0)]), [37, 35, 28]);
    }

    #[test]
    fn envoy_degraded_example() {
        // From Envoy's source comment: health 10/20/10 and degraded 20/10/0
        // give 16/28/14 healthy and 28/14/0 degraded (first healthy gets +2).
        // 10 = 140*1/14, 20 = 140*2/14, degraded likewise.
        let s = compute_priority_state(&levels(&[(14, 1, 2), (14, 2, 1), (14, 1, 0)]), 0);
        assert_eq!(s.health, [10, 20, 10]);
        assert_eq!(s.degraded, [20, 10, 0]);
        assert_eq!(s.load.healthy, [16, 28, 14]);
        assert_eq!(s.load.degraded, [28, 14, 0]);
        assert_eq!(choose_priority(15, &s.load), (0, HostAvailability::Healthy));
        assert_eq!(choose_priority(16, &s.load), (1, HostAvailability::Healthy));
        assert_eq!(choose_priority(58, &s.load), (0, HostAvailability::Degraded));
        assert_eq!(choose_priority(99, &s.load), (1, HostAvailability::Degraded));
    }

    #[test]
    fn degraded_hosts_only_take_what_healthy_cannot() {
        // P=0: 50% healthy, 50% degraded -> health 70, degraded 70 -> 70% healthy, 30% degraded.
        let s = compute_priority_state(&levels(&[(10, 5, 5)]), 50);
        assert_eq!(s.load.healthy, [70]);
        assert_eq!(s.load.degraded, [30]);
        assert!(!s.panic[0]);
    }

    #[test]
    fn panic_mode() {
        // 40% healthy on the only level: normalized 56 < 100 and 40% < 50%.
        let s = compute_priority_state(&levels(&[(10, 4, 0)]), 50);
        assert_eq!(s.panic, [true]);
        assert!(s.total_panic);
        assert_eq!(s.load.healthy, [100]);
        // Same with a 30% threshold: not in panic.
        let s = compute_priority_state(&levels(&[(10, 4, 0)]), 30);
        assert_eq!(s.panic, [false]);
        // Threshold 0 disables panic even with nothing healthy.
        let s = compute_priority_state(&levels(&[(10, 0, 0), (5, 0, 0)]), 0);
        assert_eq!(s.panic, [false, false]);
        assert_eq!(s.load.healthy, [100, 0]);
    }

    #[test]
    fn no_panic_when_other_levels_cover_the_load() {
        // P=0 has 10% healthy but P=1 is fully healthy: normalized total is 100.
        let s = compute_priority_state(&levels(&[(10, 1, 0), (10, 10, 0)]), 50);
        assert_eq!(s.panic, [false, false]);
        assert_eq!(s.load.healthy, [14, 86]);
    }

    #[test]
    fn total_panic_splits_by_host_count() {
        let s = compute_priority_state(&levels(&[(3, 0, 0), (1, 0, 0)]), 50);
        assert!(s.total_panic);
        assert_eq!(s.load.healthy, [75, 25]);
        // Partial panic: P=0 in panic, P=1 not (60% healthy), normalized 14+84 < 100;
        // loads floor to 14/85 and the crumb goes to P=0.
        let s = compute_priority_state(&levels(&[(10, 1, 0), (10, 6, 0)]), 50);
        assert_eq!(s.panic, [true, false]);
        assert!(!s.total_panic);
        assert_eq!(s.load.healthy, [15, 85]);
    }

    #[test]
    fn empty_cluster_is_total_panic_on_p0() {
        let ps = PrioritySet::builder().build().unwrap();
        let s = compute_priority_state(&ps, 50);
        assert_eq!(s.load.healthy, [100]);
        assert!(s.total_panic);
    }

    #[test]
    fn weighted_priority_health_uses_weights() {
        let a = Host::builder("10.0.0.1:80".parse().unwrap()).weight(3).build().unwrap();
        let b = Host::builder("10.0.0.2:80".parse().unwrap()).weight(1).build().unwrap();
        b.set_health_flags(HealthFlags::FAILED_ACTIVE_HC);
        let c = Host::builder("10.0.1.1:80".parse().unwrap()).priority(1).build().unwrap();
        let ps =
            PrioritySet::builder().hosts([a, b, c]).weighted_priority_health(true).build().unwrap();
        // 140 * 3 / 4 = 105 -> capped 100, although only half the hosts are healthy.
        assert_eq!(compute_priority_state(&ps, 50).load.healthy, [100, 0]);
    }

    #[test]
    fn load_always_sums_to_100() {
        for a in 0..=6 {
            for b in 0..=(6 - a) {
                for c in 0..=4 {
                    let s = compute_priority_state(&levels(&[(6, a, b), (4, c, 0)]), 50);
                    let sum: u32 = s.load.healthy.iter().chain(&s.load.degraded).sum();
                    assert_eq!(sum, 100, "{a} {b} {c}: {s:?}");
                }
            }
        }
    }
}
