//! The week 1 config model as xDS resources.
//!
//! Week 1's loader reads Envoy's `DiscoveryResponse` files into
//! [`bootstrap::Resource`] (Listener, Cluster, RouteConfiguration,
//! ClusterLoadAssignment, chosen by `@type`). This module ties that enum to the
//! protocol core: its type URL, its dependencies (an EDS cluster needs its
//! `ClusterLoadAssignment`; a listener whose HTTP connection manager uses RDS
//! needs its `RouteConfiguration`, as Envoy's warming rules say), and the
//! conversion of an accepted update into a [`ConfigManager`] change.
//!
//! [`ConfigManager`]: crate::config_manager::ConfigManager

use week1_core::config::bootstrap::Resource;
use week1_core::config::cluster::DiscoveryType;
use week1_core::config::listener::{FilterChain, NetworkFilterConfig};

use crate::config_manager::{TypeChange, Upsert, hash_debug};
use crate::resource::{ResourceRef, TypeUrl, XdsResource};
use crate::subscription::Update;

/// The type URL of a model resource.
pub fn type_of(r: &Resource) -> TypeUrl {
    match r {
        Resource::Listener(_) => TypeUrl::Listener,
        Resource::Cluster(_) => TypeUrl::Cluster,
        Resource::RouteConfiguration(_) => TypeUrl::RouteConfiguration,
        Resource::ClusterLoadAssignment(_) => TypeUrl::ClusterLoadAssignment,
    }
}

fn chain_routes(chain: &FilterChain, out: &mut Vec<ResourceRef>) {
    for f in &chain.filters {
        if let Some(NetworkFilterConfig::HttpConnectionManager(hcm)) = &f.typed_config
            && let Some(rds) = &hcm.rds
        {
            let r = ResourceRef::new(TypeUrl::RouteConfiguration, rds.route_config_name.clone());
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
}

impl XdsResource for Resource {
    fn name(&self) -> &str {
        Resource::name(self)
    }

    fn dependencies(&self) -> Vec<ResourceRef> {
        match self {
            Resource::Cluster(c) if c.cluster_type == DiscoveryType::Eds => {
                vec![ResourceRef::new(TypeUrl::ClusterLoadAssignment, c.eds_service_name())]
            }
            Resource::Listener(l) => {
                let mut out = Vec::new();
                for chain in l.filter_chains.iter().chain(l.default_filter_chain.as_ref()) {
                    chain_routes(chain, &mut out);
                }
                out
            }
            _ => Vec::new(),
        }
    }
}

/// The [`ConfigManager`](crate::config_manager::ConfigManager) change for an
/// accepted update. `replace_all` is for SotW LDS/CDS over gRPC, whose
/// responses carry every resource of the type.
pub fn to_change(update: Update<Resource>, replace_all: bool) -> TypeChange<Resource> {
    TypeChange {
        type_url: update.type_url,
        version_info: update.version_info,
        replace_all,
        upserts: update
            .resources
            .into_iter()
            .map(|r| {
                let hash = hash_debug(&r);
                Upsert::new(Resource::name(&r).to_string(), r, hash)
            })
            .collect(),
        removed: update.removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use week1_core::config::bootstrap::DiscoveryResponse;

    #[test]
    fn eds_clusters_and_rds_listeners_declare_dependencies() {
        let text = r#"
version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  type: EDS
  eds_cluster_config:
    service_name: web-eds
    eds_config: {ads: {}}
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: fixed
  type: STATIC
  load_assignment:
    cluster_name: fixed
    endpoints:
    - lb_endpoints:
      - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9000}}}
"#;
        let resp: DiscoveryResponse =
            week1_core::config::load_str(text).unwrap_or_else(|e| panic!("{e}"));
        let deps: Vec<Vec<ResourceRef>> = resp.resources.iter().map(|r| r.dependencies()).collect();
        assert_eq!(
            deps,
            vec![vec![ResourceRef::new(TypeUrl::ClusterLoadAssignment, "web-eds")], vec![]]
        );
        assert_eq!(type_of(&resp.resources[0]), TypeUrl::Cluster);

        let text = r#"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: http
  address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
  filter_chains:
  - filters:
    - name: hcm
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: ingress
        rds:
          route_config_name: local_route
          config_source: {ads: {}}
        http_filters:
        - name: envoy.filters.http.router
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#;
        let resp: DiscoveryResponse =
            week1_core::config::load_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            resp.resources[0].dependencies(),
            vec![ResourceRef::new(TypeUrl::RouteConfiguration, "local_route")]
        );
    }
}
