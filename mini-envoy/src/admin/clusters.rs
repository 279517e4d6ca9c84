//! `/clusters` and `/listeners`: Envoy's text (`name::field::value`) and
//! JSON (`?format=json`) views of the cluster manager and listeners.
//!
//! ```text
//!  ClusterProvider() ─► [ClusterView] ─► per cluster: breakers, outlier success-rate analysis,
//!                                        per host: stats, health, success_rate
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;
use week1_core::cluster::outlier::{Origin, SuccessRateSummary};
use week1_core::cluster::{ClusterInfo, Host, PrioritySet, ResourceKind, RoutingPriority};

use super::{AdminState, Reply};

/// One cluster as the admin shows it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// Settings (name, circuit breakers).
    pub info: Arc<ClusterInfo>,
    /// Current hosts.
    pub priority_set: Arc<PrioritySet>,
    /// Added by CDS (`false` for `static_resources`).
    pub added_via_api: bool,
    /// The last success-rate analyses (external, local origin) when the
    /// cluster has outlier detection.
    pub outlier: Option<[SuccessRateSummary; 2]>,
}

/// Lists the current clusters (called on each `/clusters` request).
pub type ClusterProvider = Arc<dyn Fn() -> Vec<ClusterView> + Send + Sync>;

const PRIORITIES: [(RoutingPriority, &str, &str); 2] = [
    (RoutingPriority::Default, "default_priority", "DEFAULT"),
    (RoutingPriority::High, "high_priority", "HIGH"),
];
const LIMITS: [ResourceKind; 4] = [
    ResourceKind::Connections,
    ResourceKind::PendingRequests,
    ResourceKind::Requests,
    ResourceKind::Retries,
];

/// Envoy's `health_flags` text: `healthy`, or `/failed_active_hc/failed_outlier_check`….
pub fn health_flags_text(host: &Host) -> String {
    let flags = host.health_flags();
    if flags.is_empty() {
        return "healthy".into();
    }
    flags.iter().map(|(_, name)| format!("/{}", name.to_ascii_lowercase())).collect()
}

fn host_counters(host: &Host) -> [(&'static str, u64); 6] {
    let s = host.stats();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    [
        ("cx_connect_fail", get(&s.cx_connect_fail)),
        ("cx_total", get(&s.cx_total)),
        ("rq_error", get(&s.rq_error)),
        ("rq_success", get(&s.rq_success)),
        ("rq_timeout", get(&s.rq_timeout)),
        ("rq_total", get(&s.rq_total)),
    ]
}

fn hosts(view: &ClusterView) -> impl Iterator<Item = &Arc<Host>> {
    view.priority_set.host_sets().iter().flat_map(|h| h.hosts().iter())
}

// ANCHOR: clusters_text
/// Envoy's `/clusters` text.
pub fn clusters_text(views: &[ClusterView]) -> String {
    let mut out = String::new();
    let mut line = |parts: &[&dyn std::fmt::Display]| {
        let texts: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        out.push_str(&texts.join("::"));
        out.push('\n');
    };
    for v in views {
        let name = &v.info.name;
        line(&[name, &"observability_name", &v.info.observability_name]);
        for (priority, label, _) in PRIORITIES {
            let breakers = v.info.circuit_breakers.for_priority(priority);
            for kind in LIMITS {
                line(&[name, &label, &kind, &breakers.resource(kind).max()]);
            }
        }
        if let Some([external, local]) = v.outlier {
            line(&[name, &"outlier", &"success_rate_average", &external.average]);
            line(&[
                name,
                &"outlier",
                &"success_rate_ejection_threshold",
                &external.ejection_threshold,
            ]);
            line(&[name, &"outlier", &"local_origin_success_rate_average", &local.average]);
            line(&[
                name,
                &"outlier",
                &"local_origin_success_rate_ejection_threshold",
                &local.ejection_threshold,
            ]);
        }
        line(&[name, &"added_via_api", &v.added_via_api]);
        for h in hosts(v) {
            let a = h.address();
            for (stat, value) in host_counters(h) {
                line(&[name, &a, &stat, &value]);
            }
            line(&[name, &a, &"cx_active", &h.stats().cx_active()]);
            line(&[name, &a, &"rq_active", &h.stats().rq_active()]);
            line(&[name, &a, &"hostname", &h.hostname()]);
            line(&[name, &a, &"health_flags", &health_flags_text(h)]);
            line(&[name, &a, &"weight", &h.weight()]);
            let l = h.locality();
            line(&[name, &a, &"region", &l.region]);
            line(&[name, &a, &"zone", &l.zone]);
            line(&[name, &a, &"sub_zone", &l.sub_zone]);
            line(&[name, &a, &"canary", &false]);
            line(&[name, &a, &"priority", &h.priority()]);
            line(&[name, &a, &"success_rate", &h.outlier().success_rate(Origin::External)]);
            let local = h.outlier().success_rate(Origin::Local);
            line(&[name, &a, &"local_origin_success_rate", &local]);
        }
    }
    out
}
// ANCHOR_END: clusters_text

fn socket_address(a: SocketAddr) -> serde_json::Value {
    json!({"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}})
}

/// Envoy's `/clusters?format=json` (`envoy.admin.v3.Clusters`; 64-bit
/// counters as strings, as proto3 JSON prints them).
pub fn clusters_json(views: &[ClusterView]) -> serde_json::Value {
    let statuses: Vec<serde_json::Value> = views
        .iter()
        .map(|v| {
            let thresholds: Vec<serde_json::Value> = PRIORITIES
                .iter()
                .map(|(p, _, label)| {
                    let b = v.info.circuit_breakers.for_priority(*p);
                    json!({
                        "priority": label,
                        "max_connections": b.connections().max(),
                        "max_pending_requests": b.pending_requests().max(),
                        "max_requests": b.requests().max(),
                        "max_retries": b.retries().max(),
                    })
                })
                .collect();
            let hosts: Vec<serde_json::Value> = hosts(v)
                .map(|h| {
                    let mut stats: Vec<serde_json::Value> = host_counters(h)
                        .iter()
                        .map(|(n, value)| json!({"name": n, "value": value.to_string()}))
                        .collect();
                    for (n, value) in
                        [("cx_active", h.stats().cx_active()), ("rq_active", h.stats().rq_active())]
                    {
                        stats.push(json!({"name": n, "type": "GAUGE", "value": value.to_string()}));
                    }
                    let flags = h.health_flags();
                    let mut health = serde_json::Map::new();
                    for (_, name) in flags.iter() {
                        let key = match name {
                            "FAILED_ACTIVE_HC" => "failed_active_health_check",
                            "FAILED_OUTLIER_CHECK" => "failed_outlier_check",
                            "DEGRADED_ACTIVE_HC" => "failed_active_degraded_check",
                            "PENDING_DYNAMIC_REMOVAL" => "pending_dynamic_removal",
                            "PENDING_ACTIVE_HC" => "pending_active_hc",
                            "EXCLUDED_VIA_IMMEDIATE_HC_FAIL" => "excluded_via_immediate_hc_fail",
                            "ACTIVE_HC_TIMEOUT" => "active_hc_timeout",
                            _ => continue,
                        };
                        health.insert(key.into(), json!(true));
                    }
                    let eds = if flags.contains(week1_core::cluster::HealthFlags::FAILED_EDS_HEALTH)
                    {
                        "UNHEALTHY"
                    } else if flags.contains(week1_core::cluster::HealthFlags::EDS_STATUS_DRAINING)
                    {
                        "DRAINING"
                    } else if flags.contains(week1_core::cluster::HealthFlags::DEGRADED_EDS_HEALTH)
                    {
                        "DEGRADED"
                    } else {
                        "HEALTHY"
                    };
                    health.insert("eds_health_status".into(), json!(eds));
                    let l = h.locality();
                    let mut host = json!({
                        "address": socket_address(h.address()),
                        "stats": stats,
                        "health_status": health,
                        "weight": h.weight(),
                        "hostname": h.hostname(),
                        "locality": {"region": l.region, "zone": l.zone, "sub_zone": l.sub_zone},
                        "priority": h.priority(),
                    });
                    // Envoy sets these only when computed.
                    for (key, origin) in [
                        ("success_rate", Origin::External),
                        ("local_origin_success_rate", Origin::Local),
                    ] {
                        let rate = h.outlier().success_rate(origin);
                        if rate >= 0.0 {
                            host[key] = json!({ "value": rate });
                        }
                    }
                    host
                })
                .collect();
            let mut cluster = json!({
                "name": v.info.name,
                "observability_name": v.info.observability_name,
                "added_via_api": v.added_via_api,
                "circuit_breakers": {"thresholds": thresholds},
                "host_statuses": hosts,
            });
            if let Some([external, local]) = v.outlier {
                for (key, summary) in [
                    ("success_rate_ejection_threshold", external),
                    ("local_origin_success_rate_ejection_threshold", local),
                ] {
                    if summary.ejection_threshold >= 0.0 {
                        cluster[key] = json!({ "value": summary.ejection_threshold });
                    }
                }
            }
            cluster
        })
        .collect();
    json!({ "cluster_statuses": statuses })
}

/// `GET /clusters` (`?format=json`).
pub(super) fn clusters(state: &AdminState, params: &[(String, String)]) -> Reply {
    let views = state.clusters.as_ref().map(|p| p()).unwrap_or_default();
    match params.iter().find(|(k, _)| k == "format").map(|(_, v)| v.as_str()) {
        None | Some("text") => Reply::text(200, clusters_text(&views)),
        Some("json") => Reply::json(&clusters_json(&views)),
        Some(other) => {
            Reply::text(400, format!("usage: /clusters?format=json|text (got {other:?})\n"))
        }
    }
}

/// `GET /listeners` (`?format=json`): Envoy's `name::address` lines or
/// `{"listener_statuses":[{"name":…,"local_address":…}]}`.
pub(super) fn listeners(state: &AdminState, params: &[(String, String)]) -> Reply {
    // The listener manager's active listeners (LDS ones too), on the main
    // thread where admin runs; the start-up list otherwise.
    let listeners: Vec<(String, std::net::SocketAddr)> =
        match crate::server::main_listener_manager() {
            Some(lm) => {
                lm.borrow().active().iter().map(|l| (l.name.clone(), l.socket.address)).collect()
            }
            None => state.addresses.listeners.clone(),
        };
    match params.iter().find(|(k, _)| k == "format").map(|(_, v)| v.as_str()) {
        None | Some("text") => {
            Reply::text(200, listeners.iter().map(|(n, a)| format!("{n}::{a}\n")).collect())
        }
        Some("json") => {
            let statuses: Vec<serde_json::Value> = listeners
                .iter()
                .map(|(n, a)| json!({"name": n, "local_address": socket_address(*a)}))
                .collect();
            Reply::json(&json!({ "listener_statuses": statuses }))
        }
        Some(other) => {
            Reply::text(400, format!("usage: /listeners?format=json|text (got {other:?})\n"))
        }
    }
}
