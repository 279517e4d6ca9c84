//! The config summary `--mode validate` prints: listeners with their filter
//! chains and routes, clusters with their endpoints, and dynamic sources.
//!
//! It reads the week 1 model only; it is what a course reader runs to see how
//! mini-envoy understood an Envoy YAML.

use std::fmt::Write;

use week1_core::config::bootstrap::Bootstrap;
use week1_core::config::cluster::Cluster;
use week1_core::config::listener::{FilterChain, NetworkFilterConfig};
use week1_core::config::route::RouteConfiguration;
use week1_core::config::types::Address;

fn address(a: Option<&Address>) -> String {
    match a.and_then(|a| a.socket_address.as_ref()) {
        Some(s) if s.address.contains(':') => {
            format!("[{}]:{}", s.address, s.port_value.unwrap_or(0))
        }
        Some(s) => format!("{}:{}", s.address, s.port_value.unwrap_or(0)),
        None => "(no address)".to_string(),
    }
}

fn routes(out: &mut String, rc: &RouteConfiguration, indent: &str) {
    let _ = writeln!(
        out,
        "{indent}route_config {:?}: {} virtual host(s)",
        rc.name,
        rc.virtual_hosts.len()
    );
    for vh in &rc.virtual_hosts {
        let _ = writeln!(
            out,
            "{indent}  virtual_host {:?} domains [{}]: {} route(s)",
            vh.name,
            vh.domains.join(", "),
            vh.routes.len()
        );
    }
}

fn chain(out: &mut String, label: &str, chain: &FilterChain) {
    let _ = writeln!(out, "    {label}: {} filter(s)", chain.filters.len());
    for f in &chain.filters {
        match &f.typed_config {
            Some(NetworkFilterConfig::HttpConnectionManager(hcm)) => {
                let filters: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
                let _ = writeln!(
                    out,
                    "      http_connection_manager (stat_prefix {:?}), http_filters [{}]",
                    hcm.stat_prefix,
                    filters.join(", ")
                );
                match (&hcm.route_config, &hcm.rds) {
                    (Some(rc), _) => routes(out, rc, "        "),
                    (None, Some(rds)) => {
                        let _ =
                            writeln!(out, "        routes from RDS: {:?}", rds.route_config_name);
                    }
                    (None, None) => {}
                }
            }
            Some(NetworkFilterConfig::TcpProxy(tcp)) => {
                let target = match (&tcp.cluster, &tcp.weighted_clusters) {
                    (Some(c), _) => c.clone(),
                    (None, Some(w)) => {
                        let names: Vec<String> = w
                            .clusters
                            .iter()
                            .map(|c| format!("{} ({})", c.name, c.weight))
                            .collect();
                        names.join(", ")
                    }
                    (None, None) => "?".to_string(),
                };
                let _ =
                    writeln!(out, "      tcp_proxy (stat_prefix {:?}) → {target}", tcp.stat_prefix);
            }
            Some(other) => {
                let _ = writeln!(out, "      {} ({:?})", f.name, std::mem::discriminant(other));
            }
            None => {
                let _ = writeln!(out, "      {}", f.name);
            }
        }
    }
}

fn cluster(out: &mut String, c: &Cluster) {
    let endpoints: Vec<String> = c
        .load_assignment
        .iter()
        .flat_map(|la| la.endpoints.iter())
        .flat_map(|le| le.lb_endpoints.iter())
        .filter_map(|e| e.endpoint.as_ref())
        .map(|e| address(e.address.as_ref()))
        .collect();
    let _ = writeln!(
        out,
        "  {:?}: {:?}, {:?}, {} endpoint(s){}",
        c.name,
        c.cluster_type,
        c.lb_policy,
        endpoints.len(),
        if endpoints.is_empty() { String::new() } else { format!(" [{}]", endpoints.join(", ")) }
    );
}

/// The summary text, one item per line.
pub fn render(b: &Bootstrap) -> String {
    let mut out = String::new();
    if let Some(admin) = &b.admin {
        let _ = writeln!(out, "admin: {}", address(admin.address.as_ref()));
    }
    let _ = writeln!(out, "listeners: {}", b.listeners().len());
    for l in b.listeners() {
        let _ = writeln!(out, "  {:?} on {}", l.name, address(l.address.as_ref()));
        for (i, c) in l.filter_chains.iter().enumerate() {
            chain(&mut out, &format!("filter_chains[{i}]"), c);
        }
        if let Some(c) = &l.default_filter_chain {
            chain(&mut out, "default_filter_chain", c);
        }
    }
    let _ = writeln!(out, "clusters: {}", b.clusters().len());
    for c in b.clusters() {
        cluster(&mut out, c);
    }
    if let Some(d) = &b.dynamic_resources {
        let _ = writeln!(
            out,
            "dynamic: lds {}, cds {}, ads {}",
            if d.lds_config.is_some() { "on" } else { "off" },
            if d.cds_config.is_some() { "on" } else { "off" },
            if d.ads_config.is_some() { "on" } else { "off" },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use week1_core::config;

    #[test]
    fn demo_summary_names_everything() {
        let b = config::load_bootstrap(crate::DEMO_CONFIG).unwrap();
        let s = render(&b);
        for needle in [
            "admin: 127.0.0.1:9901",
            "\"demo_listener\" on 127.0.0.1:10000",
            "http_filters [envoy.filters.http.router]",
            "route_config \"demo_routes\": 1 virtual host(s)",
            "virtual_host \"demo\" domains [*]: 3 route(s)",
            "\"demo_api\": Static, RoundRobin, 1 endpoint(s) [127.0.0.1:10001]",
            "\"demo_web\": Static, LeastRequest, 1 endpoint(s) [127.0.0.1:10002]",
        ] {
            assert!(s.contains(needle), "missing {needle:?} in:\n{s}");
        }
    }
}
