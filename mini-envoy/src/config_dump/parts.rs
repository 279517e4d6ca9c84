//! The proxy's parts of `/config_dump`: what each subsystem registers with
//! the main thread's [`ConfigTracker`](super::ConfigTracker).
//!
//! ```text
//!  bootstrap JSON (as loaded) ─► "bootstrap"  BootstrapConfigDump
//!        └─ static_resources ──► "listeners"  static_listeners
//!                            ──► "routes"     static_route_configs (HCM route_config)
//!  ListenerManager (LDS) ─────► "listeners"  dynamic_listeners: active / warming / draining
//!  ListenerManager routes (RDS) ► "routes"   dynamic_route_configs
//!  ClusterManager + CDS state ─► "clusters"   static / dynamic_active / dynamic_warming
//!  ClusterManager hosts ──────► "endpoints"  (?include_eds) ClusterLoadAssignments
//! ```
//!
//! Static resources are the JSON of the bootstrap as loaded, `last_updated`
//! the start-up time; dynamic clusters are the JSON they came in (a
//! `DiscoveryResponse` file or an ADS response), with the `version_info` and
//! time of the update that last changed them; so are LDS listeners (each
//! version: serving, warming for its routes, or draining after an update or
//! removal) and RDS route configurations.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use serde_json::{Map, Value, json};
use week1_core::cluster::{Host, HostHealth, PrioritySet};

use super::DynamicListener;
use super::{
    ConfigTracker, ENDPOINTS_KEY, EntryOwner, ResourceState, bootstrap_dump, clusters_dump,
    endpoints_dump, listeners_dump, routes_dump, typed,
};
use crate::cluster_manager::{ClusterManager, ClusterOrigin, ManagedCluster};
use crate::listener_manager::{ListenerManager, ListenerOrigin, ManagedListener};
use crate::xds::DynamicClusters;

/// `envoy.config.cluster.v3.Cluster`.
pub const CLUSTER_TYPE: &str = "envoy.config.cluster.v3.Cluster";
/// `envoy.config.listener.v3.Listener`.
pub const LISTENER_TYPE: &str = "envoy.config.listener.v3.Listener";
/// `envoy.config.route.v3.RouteConfiguration`.
pub const ROUTE_CONFIG_TYPE: &str = "envoy.config.route.v3.RouteConfiguration";
/// `envoy.config.endpoint.v3.ClusterLoadAssignment`.
pub const ASSIGNMENT_TYPE: &str = "envoy.config.endpoint.v3.ClusterLoadAssignment";

/// The `i`th entry of `static_resources.<list>` in the bootstrap JSON (a
/// lone value counts as a one-element list, as the loader reads it).
pub fn static_source(bootstrap: &Value, list: &str, i: usize) -> Option<Value> {
    match bootstrap.get("static_resources")?.get(list)? {
        Value::Array(items) => items.get(i).cloned(),
        lone if i == 0 => Some(lone.clone()),
        _ => None,
    }
}

/// The static listeners, as loaded, updated at `started`.
pub fn static_listeners(
    bootstrap: &Value,
    count: usize,
    started: SystemTime,
) -> Vec<ResourceState> {
    (0..count)
        .filter_map(|i| static_source(bootstrap, "listeners", i))
        .map(|l| ResourceState {
            version_info: String::new(),
            resource: typed(LISTENER_TYPE, l),
            last_updated: started,
        })
        .collect()
}

/// The route configurations written inline in a listener's HTTP connection
/// managers (`filter_chains[*]` and `default_filter_chain`).
pub fn inline_route_configs(listener: &Value) -> Vec<Value> {
    let chains = match listener.get("filter_chains") {
        Some(Value::Array(chains)) => chains.iter().collect(),
        Some(lone) => vec![lone],
        None => Vec::new(),
    };
    let filters = chains
        .into_iter()
        .chain(listener.get("default_filter_chain"))
        .filter_map(|c| c.get("filters"))
        .flat_map(|f| match f {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            lone => vec![lone],
        });
    filters
        .filter_map(|f| f.get("typed_config"))
        .filter(|t| {
            t.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(".HttpConnectionManager"))
        })
        .filter_map(|t| t.get("route_config").cloned())
        .collect()
}

/// The static route configurations (inline in static listeners).
pub fn static_route_configs(listeners: &[ResourceState]) -> Vec<ResourceState> {
    listeners
        .iter()
        .flat_map(|l| {
            inline_route_configs(&l.resource).into_iter().map(|r| ResourceState {
                version_info: String::new(),
                resource: typed(ROUTE_CONFIG_TYPE, r),
                last_updated: l.last_updated,
            })
        })
        .collect()
}

/// One managed cluster as a dump entry: `source` is its JSON when known;
/// a static cluster's comes from the bootstrap.
fn cluster_state(c: &ManagedCluster, source: Option<&Value>) -> ResourceState {
    let version_info = match &c.origin {
        ClusterOrigin::Static => String::new(),
        ClusterOrigin::Dynamic { version_info } => version_info.clone(),
    };
    let resource = source.cloned().unwrap_or_else(|| json!({ "name": c.config.name }));
    ResourceState {
        version_info,
        resource: typed(CLUSTER_TYPE, resource),
        last_updated: c.last_updated,
    }
}

/// The `clusters` part now: static clusters (their bootstrap JSON, by
/// position), CDS clusters serving and warming (the JSON they came in).
pub fn clusters_part(
    bootstrap: &Value,
    statics: &[String],
    clusters: &ClusterManager,
    dynamic: &DynamicClusters,
) -> Value {
    let mut static_states = Vec::new();
    let mut active = Vec::new();
    for c in clusters.active() {
        match c.origin {
            ClusterOrigin::Static => {
                let i = statics.iter().position(|n| *n == c.config.name);
                let source = i.and_then(|i| static_source(bootstrap, "clusters", i));
                static_states.push(cluster_state(c, source.as_ref()));
            }
            ClusterOrigin::Dynamic { .. } => {
                active.push(cluster_state(c, dynamic.cluster_source(&c.config.name)));
            }
        }
    }
    let warming: Vec<ResourceState> = clusters
        .warming()
        .map(|c| cluster_state(c, dynamic.cluster_source(&c.config.name)))
        .collect();
    clusters_dump(&dynamic.cds.version_info, &static_states, &active, &warming)
}

// ANCHOR: listeners_part
/// The `listeners` part now: static listeners (their bootstrap JSON) and,
/// per LDS listener name, its active, warming and draining versions (the
/// JSON each came in).
pub fn listeners_part(statics: &[ResourceState], lm: Option<&ListenerManager>) -> Value {
    let Some(lm) = lm else { return listeners_dump("", statics, &[]) };
    let mut dynamic: Vec<DynamicListener> = Vec::new();
    let draining = lm.draining();
    let versions = [(0, lm.active()), (1, lm.warming()), (2, &draining[..])];
    for (state, listeners) in versions {
        for l in listeners.iter().filter(|l| l.origin == ListenerOrigin::Dynamic) {
            let i = match dynamic.iter().position(|d| d.name == l.name) {
                Some(i) => i,
                None => {
                    dynamic.push(DynamicListener {
                        name: l.name.clone(),
                        active: None,
                        warming: None,
                        draining: None,
                    });
                    dynamic.len() - 1
                }
            };
            let d = &mut dynamic[i];
            let slot = match state {
                0 => &mut d.active,
                1 => &mut d.warming,
                _ => &mut d.draining,
            };
            // Several draining versions: the newest one, as Envoy shows one.
            if slot.as_ref().is_none_or(|s| s.last_updated <= l.last_updated) {
                *slot = Some(listener_state(l));
            }
        }
    }
    listeners_dump(&lm.lds.version_info, statics, &dynamic)
}
// ANCHOR_END: listeners_part

fn listener_state(l: &ManagedListener) -> ResourceState {
    let resource = l.source.clone().unwrap_or_else(|| json!({ "name": l.name }));
    ResourceState {
        version_info: l.version_info.clone(),
        resource: typed(LISTENER_TYPE, resource),
        last_updated: l.last_updated,
    }
}

/// The `routes` part now: route configurations inline in static listeners,
/// and every RDS route configuration received (the JSON it came in).
pub fn routes_part(statics: &[ResourceState], lm: Option<&ListenerManager>) -> Value {
    let dynamic: Vec<ResourceState> = lm
        .map(|lm| {
            let configs = lm.routes.configs.iter().filter(|(_, s)| s.config.is_some());
            configs
                .map(|(name, s)| ResourceState {
                    version_info: s.version_info.clone(),
                    resource: typed(
                        ROUTE_CONFIG_TYPE,
                        s.source.clone().unwrap_or_else(|| json!({ "name": name })),
                    ),
                    last_updated: s.last_updated.unwrap_or(SystemTime::UNIX_EPOCH),
                })
                .collect()
        })
        .unwrap_or_default();
    routes_dump(statics, &dynamic)
}

fn health_status(host: &Host) -> &'static str {
    match host.health() {
        HostHealth::Healthy => "HEALTHY",
        HostHealth::Degraded => "DEGRADED",
        HostHealth::Unhealthy => "UNHEALTHY",
    }
}

fn lb_endpoint(host: &Host) -> Value {
    let a = host.address();
    let mut endpoint = Map::new();
    endpoint.insert(
        "address".into(),
        json!({"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}}),
    );
    if !host.hostname().is_empty() {
        endpoint.insert("hostname".into(), Value::String(host.hostname().to_string()));
    }
    json!({
        "endpoint": endpoint,
        "health_status": health_status(host),
        "load_balancing_weight": host.weight(),
    })
}

/// A cluster's hosts in force as a `ClusterLoadAssignment` named
/// `cluster_name`: one `LocalityLbEndpoints` per priority and locality.
pub fn load_assignment(cluster_name: &str, hosts: &PrioritySet) -> Value {
    let mut endpoints = Vec::new();
    let mut overprovisioning = None;
    for set in hosts.host_sets() {
        overprovisioning = Some(set.overprovisioning_factor());
        let mut groups: Vec<(&week1_core::cluster::Locality, Vec<Value>)> = Vec::new();
        for h in set.hosts() {
            match groups.iter_mut().find(|(l, _)| *l == h.locality()) {
                Some((_, list)) => list.push(lb_endpoint(h)),
                None => groups.push((h.locality(), vec![lb_endpoint(h)])),
            }
        }
        for (locality, lb_endpoints) in groups {
            let mut group = Map::new();
            let mut l = Map::new();
            for (k, v) in [
                ("region", &locality.region),
                ("zone", &locality.zone),
                ("sub_zone", &locality.sub_zone),
            ] {
                if !v.is_empty() {
                    l.insert(k.into(), Value::String(v.clone()));
                }
            }
            group.insert("locality".into(), Value::Object(l));
            group.insert("lb_endpoints".into(), Value::Array(lb_endpoints));
            if set.priority() > 0 {
                group.insert("priority".into(), json!(set.priority()));
            }
            endpoints.push(Value::Object(group));
        }
    }
    let mut out = Map::new();
    out.insert("cluster_name".into(), Value::String(cluster_name.to_string()));
    out.insert("endpoints".into(), Value::Array(endpoints));
    if let Some(f) = overprovisioning {
        out.insert("policy".into(), json!({"overprovisioning_factor": f}));
    }
    typed(ASSIGNMENT_TYPE, Value::Object(out))
}

/// The `endpoints` part now: every serving cluster's hosts, static and
/// dynamic apart (by how the cluster was added, as Envoy's).
pub fn endpoints_part(clusters: &ClusterManager) -> Value {
    let (mut statics, mut dynamics) = (Vec::new(), Vec::new());
    for c in clusters.active() {
        let assignment = load_assignment(c.config.eds_service_name(), &c.entry.priority_set);
        match c.origin {
            ClusterOrigin::Static => statics.push(assignment),
            ClusterOrigin::Dynamic { .. } => dynamics.push(assignment),
        }
    }
    endpoints_dump(statics, dynamics)
}

// ANCHOR: register
/// Registers the proxy's parts: `bootstrap` (when its JSON is known),
/// `clusters`, `endpoints`, `listeners` and `routes` (static ones, and the
/// main thread's listener manager's LDS listeners and RDS route
/// configurations). Keep the owners as long as the parts should be dumped.
pub fn register(
    tracker: &Rc<ConfigTracker>,
    bootstrap: Option<Value>,
    bootstrap_model: &week1_core::config::bootstrap::Bootstrap,
    started: SystemTime,
    dynamic: &Rc<RefCell<DynamicClusters>>,
) -> Vec<EntryOwner> {
    let mut owners = Vec::new();
    let source = Rc::new(bootstrap.unwrap_or(Value::Null));
    if !source.is_null() {
        let s = source.clone();
        owners.extend(tracker.add("bootstrap", move || bootstrap_dump((*s).clone(), started)));
    }
    let statics: Vec<String> = bootstrap_model.clusters().iter().map(|c| c.name.clone()).collect();
    let (s, d) = (source.clone(), dynamic.clone());
    owners.extend(tracker.add("clusters", move || {
        let d = d.borrow();
        let cm = d.cluster_manager();
        let cm = cm.borrow();
        clusters_part(&s, &statics, &cm, &d)
    }));
    let d = dynamic.clone();
    owners.extend(tracker.add(ENDPOINTS_KEY, move || {
        let cm = d.borrow().cluster_manager();
        let cm = cm.borrow();
        endpoints_part(&cm)
    }));
    let listeners = static_listeners(&source, bootstrap_model.listeners().len(), started);
    let routes = static_route_configs(&listeners);
    // The listener manager (LDS, RDS) lives on this thread while the server runs.
    let lm = crate::server::main_listener_manager;
    owners.extend(tracker.add("listeners", move || {
        let lm = lm();
        listeners_part(&listeners, lm.as_ref().map(|lm| lm.borrow()).as_deref())
    }));
    owners.extend(tracker.add("routes", move || {
        let lm = lm();
        routes_part(&routes, lm.as_ref().map(|lm| lm.borrow()).as_deref())
    }));
    owners
}
// ANCHOR_END: register

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_routes_come_from_http_connection_managers() {
        let listener = json!({
            "name": "front",
            "filter_chains": [{"filters": [
                {"name": "tcp", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "cluster": "a"}},
                {"name": "hcm", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "route_config": {"name": "local", "virtual_hosts": []}}}
            ]}],
            "default_filter_chain": {"filters": {"typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "route_config": {"name": "fallback"}}}}
        });
        let names: Vec<Value> =
            inline_route_configs(&listener).into_iter().map(|r| r["name"].clone()).collect();
        assert_eq!(names, [json!("local"), json!("fallback")]);
    }

    #[test]
    fn static_sources_by_position() {
        let b = json!({"static_resources": {"clusters": [{"name": "a"}, {"name": "b"}], "listeners": {"name": "lone"}}});
        assert_eq!(static_source(&b, "clusters", 1), Some(json!({"name": "b"})));
        assert_eq!(static_source(&b, "clusters", 2), None);
        assert_eq!(static_source(&b, "listeners", 0), Some(json!({"name": "lone"})));
        let listeners = static_listeners(&b, 1, SystemTime::UNIX_EPOCH);
        assert_eq!(
            listeners[0].resource["@type"],
            format!("{}{LISTENER_TYPE}", super::super::TYPE_PREFIX)
        );
    }

    #[test]
    fn load_assignment_groups_by_priority_and_locality() {
        use week1_core::cluster::Locality;
        let host = |port: u16, zone: &str| {
            Host::builder(([127, 0, 0, 1], port).into())
                .locality(Locality::new("r", zone, ""))
                .weight(3)
                .build()
                .unwrap()
        };
        let ps = PrioritySet::builder()
            .hosts([host(1, "a"), host(2, "b"), host(3, "a")])
            .build()
            .unwrap();
        let a = load_assignment("web", &ps);
        assert_eq!(a["cluster_name"], "web");
        let groups = a["endpoints"].as_array().unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0]["locality"], json!({"region": "r", "zone": "a"}));
        assert_eq!(groups[0]["lb_endpoints"].as_array().unwrap().len(), 2);
        let e = &groups[0]["lb_endpoints"][1];
        assert_eq!(e["endpoint"]["address"]["socket_address"]["port_value"], 3);
        assert_eq!(e["load_balancing_weight"], 3);
        assert!(e["health_status"].is_string());
    }
}
