//! Small builders for test bootstraps.
//!
//! Blocks are written at column 0 and indented into place, so a test spells
//! only the part it is about (usually the `route_config`), in Envoy's own
//! YAML. Every address is `127.0.0.1`, every port 0 unless a backend's.
//!
//! ```text
//! bootstrap(&[http_listener("front", ROUTES, "")], &[cluster("svc", &[backend.addr()], "")])
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Indents every line of `block` by `spaces`.
pub fn indent(block: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    let mut out = String::new();
    for line in block.trim_matches('\n').lines() {
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{pad}{line}");
        }
    }
    out
}

/// A bootstrap with an admin on `127.0.0.1:0`, these listeners and clusters.
pub fn bootstrap(listeners: &[String], clusters: &[String]) -> String {
    let mut out = String::from(
        "admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 0 }\nstatic_resources:\n",
    );
    out.push_str("  listeners:\n");
    for l in listeners {
        out.push_str(&indent(l, 2));
    }
    if clusters.is_empty() {
        out.push_str("  clusters: []\n");
    } else {
        out.push_str("  clusters:\n");
        for c in clusters {
            out.push_str(&indent(c, 2));
        }
    }
    out
}

/// An HTTP listener on `127.0.0.1:0` whose connection manager has
/// `route_config` (the YAML *inside* `route_config:`, at column 0), the
/// router filter, and `hcm_extra` (more HCM fields at column 0, e.g.
/// `access_log`).
pub fn http_listener(name: &str, route_config: &str, hcm_extra: &str) -> String {
    format!(
        "\
- name: {name}
  address:
    socket_address: {{ address: 127.0.0.1, port_value: 0 }}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: {name}
{extra}        route_config:
{routes}        http_filters:
        - name: envoy.filters.http.router
          typed_config:
            \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
",
        extra = indent(hcm_extra, 8),
        routes = indent(route_config, 10),
    )
}

/// A route config with one virtual host `all` matching every domain, with
/// `routes` (the YAML list inside `routes:`, at column 0).
pub fn catch_all(routes: &str) -> String {
    format!("virtual_hosts:\n- name: all\n  domains: [\"*\"]\n  routes:\n{}", indent(routes, 2))
}

/// A `STATIC` cluster over `endpoints` (round robin, 1 s connect timeout),
/// with `extra` cluster fields at column 0.
pub fn cluster(name: &str, endpoints: &[SocketAddr], extra: &str) -> String {
    let mut out = format!(
        "- name: {name}\n  connect_timeout: 1s\n  type: STATIC\n{}  load_assignment:\n    cluster_name: {name}\n    endpoints:\n    - lb_endpoints:\n",
        indent(extra, 2)
    );
    if endpoints.is_empty() {
        out = format!(
            "- name: {name}\n  connect_timeout: 1s\n  type: STATIC\n{}  load_assignment:\n    cluster_name: {name}\n    endpoints: []\n",
            indent(extra, 2)
        );
        return out;
    }
    for e in endpoints {
        let _ = writeln!(
            out,
            "      - endpoint:\n          address:\n            socket_address: {{ address: {}, port_value: {} }}",
            e.ip(),
            e.port()
        );
    }
    out
}

/// A file access log named `file` in mini-envoy's directory (read it with
/// [`MiniEnvoy::wait_for_file_line`](crate::MiniEnvoy::wait_for_file_line))
/// with `format` (a `text_format_source`), as an `access_log:` HCM field for
/// [`http_listener`]'s `hcm_extra`.
pub fn file_access_log(file: &str, format: &str) -> String {
    let path = format!("{}/{file}", crate::envoy::DIR_PLACEHOLDER);
    format!(
        "\
access_log:
- name: envoy.access_loggers.file
  typed_config:
    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: {path:?}
    log_format:
      text_format_source:
        inline_string: {format:?}
",
    )
}
