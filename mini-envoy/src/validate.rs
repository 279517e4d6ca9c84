//! Envoy's validation mode (`--mode validate`, `server/config_validation/`).
//!
//! Loading a bootstrap already checks what the YAML can say wrong (types,
//! oneofs, ranges, field paths with line:column). Validation then compiles
//! everything `serve` would, with the same code: every static cluster
//! (`ClusterEntry::from_config`: load balancer, health checks, outlier
//! detection, circuit breakers), every listener's filter chains (network and
//! HTTP filter factories, route tables, cluster references), with nothing
//! bound, connected or resolved:
//!
//! ```text
//!   Bootstrap ─► static_cluster_map (DNS names: no lookup) ─► ClusterSource::Fixed
//!             └► Snapshot::build_with (listeners, chains, routes; RDS names allowed)
//! ```
//!
//! As in Envoy, access-log files are opened (so a path that cannot be written
//! is an error here, not at start-up), and dynamic resources (CDS, LDS, RDS)
//! are not fetched: what a management server will send is validated when it
//! arrives.

use std::sync::Arc;

use week1_core::config::ConfigError;
use week1_core::config::bootstrap::Bootstrap;
use week2_threads::dispatcher::{Dispatcher, MioDispatcher};
use week2_threads::tls::Instance;

use crate::access_log::AccessLogManager;
use crate::cluster_manager::{ClusterSource, static_cluster_map};
use crate::snapshot::{BuildContext, RouteMap, Snapshot};
use crate::stats::Store;

/// Compiles `bootstrap` as the server would at start-up, without sockets or
/// DNS. The error names the field path of what failed.
pub fn validate(bootstrap: &Bootstrap) -> Result<(), ConfigError> {
    let store = Store::default();
    // DNS clusters compile with no hosts yet, as they start before their
    // first resolution.
    let mut no_lookup = |_: &str, _: u16| Ok(Vec::new());
    let clusters = static_cluster_map(bootstrap.clusters(), &store, &mut no_lookup)?;
    let clusters = ClusterSource::Fixed(Arc::new(clusters));
    // An HCM with `rds` needs somewhere to read routes from: a slot that
    // stays empty (nothing is served).
    let main = MioDispatcher::new("validate").map_err(|e| internal(&e))?;
    let tls = Instance::new(main.handle());
    let routes = tls.allocate_slot::<Arc<RouteMap>>().map_err(|e| internal(&e))?;
    let logs = AccessLogManager::new();
    let ctx = BuildContext {
        logs: &logs,
        clusters: &clusters,
        stats: &store,
        cds: bootstrap.has_cds(),
        routes: Some(&routes),
    };
    Snapshot::build_with(bootstrap, &ctx).map(drop)
}

fn internal(e: &dyn std::fmt::Display) -> ConfigError {
    ConfigError::invalid(week1_core::config::FieldPath::root(), format!("validation set-up: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<(), String> {
        let bootstrap = week1_core::config::load_bootstrap(yaml).map_err(|e| e.to_string())?;
        validate(&bootstrap).map_err(|e| e.to_string())
    }

    const CLUSTER: &str = "
  clusters:
  - name: web
    type: STRICT_DNS
    load_assignment:
      cluster_name: web
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: web.invalid, port_value: 80 } } }
";

    fn listener(route_cluster: &str) -> String {
        format!(
            "static_resources:
  listeners:
  - name: front
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          route_config:
            virtual_hosts:
            - name: all
              domains: [\"*\"]
              routes:
              - match: {{ prefix: \"/\" }}
                route: {{ cluster: {route_cluster} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
{CLUSTER}"
        )
    }

    #[test]
    fn a_valid_config_compiles_without_binding_or_resolving() {
        // Port 1 needs privileges to bind and web.invalid never resolves:
        // neither is attempted.
        assert_eq!(check(&listener("web")), Ok(()));
    }

    #[test]
    fn what_only_compiling_finds_is_an_error_with_its_path() {
        let valid = listener("web");
        let cases = [
            // An access log the server cannot open.
            (
                valid.replace(
                    "          stat_prefix: front\n",
                    "          stat_prefix: front\n          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: /nonexistent-mini-envoy-dir/access.log\n",
                ),
                "access_log",
            ),
            // RDS from a source mini-envoy does not read (gRPC without ADS).
            (
                format!(
                    "{}{}{}",
                    &valid[..valid.find("          route_config:").unwrap()],
                    "          rds:\n            route_config_name: r\n            config_source: { api_config_source: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: web } } ] } }\n",
                    &valid[valid.find("          http_filters:").unwrap()..],
                ),
                "rds.config_source",
            ),
        ];
        for (yaml, path) in cases {
            assert_ne!(yaml, valid, "the case changed nothing");
            let bootstrap = week1_core::config::load_bootstrap(&yaml);
            let bootstrap = bootstrap.expect("the loader alone accepts it");
            let err = validate(&bootstrap).unwrap_err().to_string();
            assert!(err.contains(path), "{err}");
        }
    }
}
