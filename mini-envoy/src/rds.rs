//! # Dynamic routes: RDS
//!
//! Envoy's `RdsRouteConfigProviderImpl`, shared per `route_config_name`: an
//! HCM with `rds: {config_source, route_config_name}` reads its routes from
//! here. The main thread compiles each delivered `RouteConfiguration` once
//! and publishes the whole [`RouteMap`] through a thread-local slot; a
//! worker's [`RdsRouteTable`](crate::snapshot::RdsRouteTable) looks its name
//! up on every request, so a keep-alive connection routes its next request
//! with the new table:
//!
//! ```text
//!  routes.yaml moved in ─► FileSubscription ─┐
//!  ADS stream (RDS names from listeners) ────┴─► RouteConfigs::apply ─► slot.set(RouteMap)
//!                                                    │                    └─► workers, per request
//!                                                    └─► ListenerManager: warming listeners activate
//! ```
//!
//! An update is compiled whole before anything changes: a rejected one keeps
//! the previous routes and counts `http.<stat_prefix>.rds.<name>.update_rejected`
//! for every HCM reading that name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use week1_core::config::bootstrap::Resource;
use week1_core::config::route::RouteConfiguration;
use week2_threads::tls::Slot;
use week3_filters::context::FactoryContext;
use week4_xds::Update;

use crate::snapshot::{RouteMap, compile_routes};
use crate::stats::Store;
use crate::xds::UpdateCounters;

/// What is known of one route configuration.
#[derive(Debug, Default)]
pub struct RouteConfigState {
    /// The resource in force (for `/config_dump`).
    pub config: Option<Arc<RouteConfiguration>>,
    /// The JSON it came in (for `/config_dump`).
    pub source: Option<serde_json::Value>,
    /// Its `version_info`.
    pub version_info: String,
    /// When it was applied.
    pub last_updated: Option<SystemTime>,
    /// Counters per reading HCM, by `stat_prefix`.
    counters: BTreeMap<String, UpdateCounters>,
}

/// The main thread's RDS state: every route configuration by name, and the
/// slot workers read them from.
pub struct RouteConfigs {
    slot: Slot<Arc<RouteMap>>,
    map: RouteMap,
    /// By `route_config_name`.
    pub configs: BTreeMap<String, RouteConfigState>,
    store: Store,
}

impl std::fmt::Debug for RouteConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteConfigs").field("names", &self.map.keys()).finish()
    }
}

impl RouteConfigs {
    /// Empty; publishes an empty map to every thread.
    pub fn new(slot: Slot<Arc<RouteMap>>, store: Store) -> Self {
        let _ = slot.set(|| Arc::new(RouteMap::new()));
        Self { slot, map: RouteMap::new(), configs: BTreeMap::new(), store }
    }

    /// The slot workers read.
    pub fn slot(&self) -> &Slot<Arc<RouteMap>> {
        &self.slot
    }

    /// Whether routes named `name` were delivered.
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// An HCM with `stat_prefix` reads `name`: its counters exist from now on.
    pub fn register(&mut self, name: &str, stat_prefix: &str) {
        let store = self.store.clone();
        let state = self.configs.entry(name.to_string()).or_default();
        state.counters.entry(stat_prefix.to_string()).or_insert_with(|| {
            UpdateCounters::new(
                &store.root().scope("http").scope(stat_prefix).scope("rds").scope(name),
            )
        });
    }

    fn record(&mut self, name: &str, result: &Result<(), String>, version_info: &str) {
        if let Some(state) = self.configs.get_mut(name) {
            for c in state.counters.values_mut() {
                c.record(result, version_info);
            }
        }
    }

    /// A file or response could not be read: every name it serves counts a
    /// rejection.
    pub fn reject(&mut self, names: &[String], error: &str) {
        for name in names {
            self.record(name, &Err(error.to_string()), "");
        }
    }

    /// Applies an RDS update, all or nothing: compiles every
    /// `RouteConfiguration`, then publishes them. Returns the names updated.
    pub fn apply(
        &mut self,
        update: &Update<Resource>,
        sources: &week4_xds::file::Sources,
    ) -> Result<Vec<String>, String> {
        let ctx =
            FactoryContext { stats: Arc::new(self.store.clone()), ..FactoryContext::default() };
        let compiled = compile_all(&update.resources, &ctx);
        let names: Vec<String> = update.resources.iter().map(|r| r.name().to_string()).collect();
        let compiled = match compiled {
            Ok(c) => c,
            Err(e) => {
                for name in &names {
                    self.record(name, &Err(e.clone()), &update.version_info);
                }
                tracing::warn!(version = %update.version_info, "RDS update rejected: {e}");
                return Err(e);
            }
        };
        let now = SystemTime::now();
        for (config, router) in compiled {
            let name = config.name.clone();
            self.map.insert(name.clone(), router);
            let state = self.configs.entry(name.clone()).or_default();
            state.source = sources.get(&name).cloned();
            state.config = Some(config);
            state.version_info = update.version_info.clone();
            state.last_updated = Some(now);
            self.record(&name, &Ok(()), &update.version_info);
        }
        let published = Arc::new(self.map.clone());
        self.slot.set(move || published.clone()).map_err(|e| e.to_string())?;
        tracing::info!(version = %update.version_info, "RDS: routes {names:?} applied");
        Ok(names)
    }
}

type Compiled = Vec<(Arc<RouteConfiguration>, Arc<week1_core::router::Router>)>;

/// Compiles every resource of an RDS update (only route configurations);
/// filter stats register in `ctx`'s scope (a throwaway one to validate only).
pub fn compile_all(resources: &[Resource], ctx: &FactoryContext) -> Result<Compiled, String> {
    let mut out: Compiled = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let Resource::RouteConfiguration(rc) = r else {
            return Err(format!("resources[{i}]: not a RouteConfiguration"));
        };
        if out.iter().any(|(c, _)| c.name == rc.name) {
            return Err(format!(
                "resources[{i}].name: duplicate route configuration {:?}",
                rc.name
            ));
        }
        let router = compile_routes(rc, ctx).map_err(|e| format!("resources[{i}]: {e}"))?;
        out.push((Arc::new((**rc).clone()), router));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use week1_core::config::bootstrap::DiscoveryResponse;
    use week2_threads::dispatcher::{Dispatcher, TokioDispatcher};
    use week2_threads::tls::Instance;
    use week4_xds::TypeUrl;

    fn update(version: &str, yaml: &str) -> Update<Resource> {
        let resp: DiscoveryResponse =
            week1_core::config::load_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        Update {
            type_url: TypeUrl::RouteConfiguration,
            version_info: version.into(),
            resources: resp.resources,
            removed: Vec::new(),
            warming: Default::default(),
        }
    }

    fn routes(cluster: &str, regex: &str) -> String {
        format!(
            r#"
resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: local
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: {{ safe_regex: {{ regex: "{regex}" }} }}
      route: {{ cluster: {cluster} }}
"#
        )
    }

    #[test]
    fn an_update_replaces_the_routes_and_a_bad_one_keeps_them() {
        let main = TokioDispatcher::new("main_thread").unwrap();
        let tls = Instance::new(main.handle());
        let store = Store::default();
        let mut rds = RouteConfigs::new(tls.allocate_slot().unwrap(), store.clone());
        rds.register("local", "ingress");
        assert!(!rds.has("local"));
        assert_eq!(
            rds.apply(&update("1", &routes("a", "/.*")), &Default::default()).unwrap(),
            ["local"]
        );
        let first = rds.slot().get().unwrap().get("local").cloned().expect("published");
        // A listener among the routes: nothing changes.
        let mut bad = update("2", &routes("b", "/.*"));
        let listener = week1_core::config::listener::Listener::default();
        bad.resources.push(Resource::Listener(Box::new(listener)));
        let err = rds.apply(&bad, &Default::default()).unwrap_err();
        assert!(err.contains("resources[1]: not a RouteConfiguration"), "{err}");
        let kept = rds.slot().get().unwrap().get("local").cloned().unwrap();
        assert!(Arc::ptr_eq(&first, &kept), "the rejected version was not published");
        assert_eq!(rds.configs["local"].version_info, "1");
        rds.apply(&update("3", &routes("b", "/.*")), &Default::default()).unwrap();
        let third = rds.slot().get().unwrap().get("local").cloned().unwrap();
        assert!(!Arc::ptr_eq(&first, &third));
        let counter = |n: &str| store.counter_value(&format!("http.ingress.rds.local.{n}"));
        assert_eq!(counter("update_attempt"), Some(3));
        assert_eq!(counter("update_success"), Some(2));
        assert_eq!(counter("update_rejected"), Some(1));
    }

    #[test]
    fn only_route_configurations_with_unique_names_compile() {
        let yaml = routes("a", "/.*");
        let mut twice = update("1", &yaml).resources;
        twice.extend(update("1", &yaml).resources);
        assert!(compile_all(&twice, &FactoryContext::default()).unwrap_err().contains("duplicate"));
        let listener = week1_core::config::listener::Listener::default();
        let wrong = [Resource::Listener(Box::new(listener))];
        assert!(
            compile_all(&wrong, &FactoryContext::default())
                .unwrap_err()
                .contains("not a RouteConfiguration")
        );
    }
}
