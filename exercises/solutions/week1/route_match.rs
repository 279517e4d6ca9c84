//! Reference solution of `route_match`: a scan per lookup. The real router
//! (`week1_core::router`) indexes the domains by kind and length up front.

use week1_core::headers::HeaderMap;

/// A route's path condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The path starts with this.
    Prefix(String),
    /// The path is exactly this.
    Path(String),
}

/// A header that must be present with exactly this value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// Lower-case header name.
    pub name: String,
    /// The exact value.
    pub value: String,
}

/// One route: conditions and the cluster it sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The path condition.
    pub path: PathMatch,
    /// Header conditions, all required.
    pub headers: Vec<HeaderMatch>,
    /// Where matching requests go.
    pub cluster: String,
}

/// A virtual host: domains and ordered routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualHost {
    /// Its name.
    pub name: String,
    /// Lower-case domains, with wildcards as described above.
    pub domains: Vec<String>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
}

/// The best domain match of `host` in one kind, as (kind rank, covered length):
/// exact beats suffix beats prefix; within a kind, longer wins.
fn domain_score(domain: &str, host: &str) -> Option<(u8, usize)> {
    if domain == host {
        Some((3, domain.len()))
    } else if let Some(suffix) = domain.strip_prefix('*').filter(|s| !s.is_empty()) {
        (host.len() > suffix.len() && host.ends_with(suffix)).then_some((2, suffix.len()))
    } else if let Some(prefix) = domain.strip_suffix('*').filter(|p| !p.is_empty()) {
        (host.len() > prefix.len() && host.starts_with(prefix)).then_some((1, prefix.len()))
    } else {
        None
    }
}

fn best_match<'a>(vhosts: &'a [VirtualHost], host: &str) -> Option<&'a VirtualHost> {
    let mut best: Option<((u8, usize), &VirtualHost)> = None;
    for vh in vhosts {
        for d in &vh.domains {
            if let Some(score) = domain_score(d, host)
                && best.is_none_or(|(b, _)| score > b)
            {
                best = Some((score, vh));
            }
        }
    }
    best.map(|(_, vh)| vh)
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The virtual host for `authority`, in Envoy's order.
pub fn find_virtual_host<'a>(
    vhosts: &'a [VirtualHost],
    authority: &str,
) -> Option<&'a VirtualHost> {
    let host = authority.to_ascii_lowercase();
    best_match(vhosts, &host)
        .or_else(|| {
            let bare = strip_port(&host);
            (bare.len() != host.len()).then(|| best_match(vhosts, bare)).flatten()
        })
        .or_else(|| vhosts.iter().find(|vh| vh.domains.iter().any(|d| d == "*")))
}

/// The route for a request.
pub fn route<'a>(vhosts: &'a [VirtualHost], headers: &HeaderMap) -> Option<&'a Route> {
    let vh = find_virtual_host(vhosts, headers.authority().unwrap_or_default())?;
    let path = headers.path().unwrap_or_default();
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    vh.routes.iter().find(|r| {
        let path_ok = match &r.path {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Path(p) => path == p,
        };
        path_ok && r.headers.iter().all(|h| headers.get_str(&h.name) == Some(h.value.as_str()))
    })
}
