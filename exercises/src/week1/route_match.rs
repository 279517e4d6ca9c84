//! # Exercise `route_match`: virtual hosts and routes (week 1, day 5)
//!
//! Envoy's router picks a *virtual host* by the request's `:authority`, then
//! the *first* route of that virtual host whose match conditions all hold.
//! Build both steps.
//!
//! ## Task
//!
//! [`find_virtual_host`] picks by domain, in Envoy's order:
//!
//! 1. an exact domain (`api.example.com`);
//! 2. a suffix wildcard (`*.example.com`, `*-dev.example.com`), longest first;
//! 3. a prefix wildcard (`api.*`), longest first;
//! 4. the default `*`.
//!
//! A wildcard's `*` must cover at least one character (`*.example.com` does
//! not match `.example.com`). Domains compare case-insensitively (lower-case
//! the authority). If the authority has a port (`api.example.com:8080`) and
//! nothing but `*` matched with it, try again without the port.
//!
//! [`route`] takes the request headers (a real [`HeaderMap`]: `:authority`,
//! `:path` and the rest), picks the virtual host, and returns the first route
//! whose [`PathMatch`] matches the path (without its `?query`) and whose every
//! [`HeaderMatch`] is present with exactly that value.
//!
//! Run `cargo run -p exercises -- verify route_match`.

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

/// The virtual host for `authority`, in Envoy's order.
pub fn find_virtual_host<'a>(
    vhosts: &'a [VirtualHost],
    authority: &str,
) -> Option<&'a VirtualHost> {
    todo!()
}

/// The route for a request.
pub fn route<'a>(vhosts: &'a [VirtualHost], headers: &HeaderMap) -> Option<&'a Route> {
    todo!()
}
