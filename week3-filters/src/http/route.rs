//! # What filters see of the route
//!
//! Envoy's HCM resolves the route when request headers arrive and caches it
//! on the stream; filters read it through `callbacks->route()`, and a filter
//! that changes headers the route depends on calls `clearRouteCache()` so the
//! next look-up resolves again. Here:
//!
//! - the HCM gives the FilterManager a [`RouteResolver`] (it owns the current
//!   route table snapshot: week 1's `Router`);
//! - the FilterManager resolves once before the first decoder filter runs and
//!   caches an `Option<Arc<dyn RouteInfo>>`;
//! - [`FilterCallbacks::clear_route_cache`](crate::http::FilterCallbacks::clear_route_cache)
//!   drops the cache; it is resolved again, with the headers as they are now,
//!   at the next filter boundary (the filter that cleared it sees the new route
//!   from its next callback on).
//!
//! [`ResolvedRoute`] is an owned snapshot of week 1's borrowed
//! [`RouteDecision`], holding only the per-filter configs of the filters in
//! the chain, so it can outlive the router borrow. Per-filter configs are
//! compiled once, when the route table is built (`Router::with_filter_configs`
//! with [`crate::registry::RouteConfigCompiler`]); the snapshot only clones
//! their `Arc`s, and a filter gets its own compiled type back with
//! [`FilterCallbacks::per_filter_config`](crate::http::FilterCallbacks::per_filter_config).
//! [`RouteSnapshots`] goes one step further for the common route (a plain
//! `cluster`, no virtual cluster): its snapshot is made once and shared by
//! every request that matches it.

use std::fmt;
use std::sync::{Arc, OnceLock};

use week1_core::config::FieldPath;
use week1_core::config::filters::PerFilterConfig;
use week1_core::headers::HeaderMap;
use week1_core::router::{
    ClusterSpecifier, ForwardRef, RouteContext, RouteDecision, RouteFilterConfig,
    RouteFilterConfigCompiler, Router, RouterError, compile_route_filter_config,
};

/// What the router decided, as filters see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    /// Forward to this cluster.
    Forward {
        /// The cluster.
        cluster: String,
    },
    /// Answer locally with this status, body and headers (`direct_response`).
    DirectResponse {
        /// Status.
        status: u16,
        /// Body.
        body: String,
        /// Response headers (status, content type, route mutations).
        headers: HeaderMap,
    },
    /// Redirect.
    Redirect {
        /// Status (3xx).
        status: u16,
        /// Response headers (status, location, route mutations).
        headers: HeaderMap,
    },
    /// A route matched but its cluster does not exist.
    ClusterNotFound {
        /// The missing cluster.
        cluster: String,
        /// The status to answer (`cluster_not_found_response_code`).
        status: u16,
    },
}

/// A resolved route (Envoy's `Router::Route`).
pub trait RouteInfo: Send + Sync + fmt::Debug {
    /// The route's name (may be empty).
    fn name(&self) -> &str;
    /// What to do with the request.
    fn action(&self) -> &RouteAction;
    /// The most specific `typed_per_filter_config` for the filter named
    /// `filter_name` (weighted cluster, route, virtual host, route config),
    /// compiled when the route table was built (a `FilterConfig` wrapper
    /// already unwrapped).
    fn per_filter_config(&self, filter_name: &str) -> Option<&RouteFilterConfig>;

    /// Whether the route turns the filter on (`Some(false)`) or off
    /// (`Some(true)`) through a `FilterConfig` wrapper's `disabled`.
    fn filter_disabled(&self, filter_name: &str) -> Option<bool> {
        self.per_filter_config(filter_name)?.disabled
    }

    /// For a forwarding route, the handle on week 1's decision that the
    /// upstream half turns back into a `Forward` (timeouts, retries, hash
    /// policy, header rewrites) with `Router::forward`.
    fn forward_ref(&self) -> Option<&ForwardRef> {
        None
    }

    /// The route table that made this decision, when it can change under a
    /// connection (RDS): `forward_ref` indexes into it. `None`: the HCM's
    /// own, fixed table.
    fn router(&self) -> Option<&Arc<week1_core::router::Router>> {
        None
    }
}

/// Resolves the route of a stream; implemented by the HCM over its route
/// table. `None`: no route (the router filter answers 404 NR).
pub trait RouteResolver: Send + Sync {
    /// Routes a request.
    fn resolve(&self, headers: &HeaderMap) -> Option<Arc<dyn RouteInfo>>;
}

/// An owned route decision (see the module docs).
#[derive(Debug, Clone)]
pub struct ResolvedRoute {
    /// Route name.
    pub name: String,
    /// The decision.
    pub action: RouteAction,
    /// `(filter name, compiled config)` for the filters that have one.
    pub per_filter: Vec<(String, RouteFilterConfig)>,
    /// The week 1 decision, for a route forwarding to an existing cluster.
    pub forward: Option<ForwardRef>,
}

impl ResolvedRoute {
    /// A forwarding route with no per-filter configs (tests, simple setups).
    pub fn forward(name: &str, cluster: &str) -> Self {
        Self {
            name: name.to_string(),
            action: RouteAction::Forward { cluster: cluster.to_string() },
            per_filter: Vec::new(),
            forward: None,
        }
    }

    /// Adds a per-filter config, compiled by `compiler` as the router
    /// compiles route tables (tests, simple setups).
    pub fn with_filter_config(
        mut self,
        filter_name: &str,
        config: &PerFilterConfig,
        compiler: &dyn RouteFilterConfigCompiler,
    ) -> Result<Self, RouterError> {
        let at = FieldPath::root().field("typed_per_filter_config").key(filter_name);
        if let Some(c) = compile_route_filter_config(filter_name, config, compiler, &at)? {
            self.per_filter.push((filter_name.to_string(), c));
        }
        Ok(self)
    }

    /// Snapshots a week 1 decision, keeping the per-filter configs of the
    /// filters named in `filter_names` (the chain's filters). `None` for
    /// `NoRoute`.
    pub fn from_decision<S: AsRef<str>>(
        decision: &RouteDecision<'_>,
        request: &HeaderMap,
        ctx: &RouteContext<'_>,
        filter_names: &[S],
    ) -> Option<Self> {
        fn collect<'c, S: AsRef<str>>(
            names: &[S],
            lookup: impl Fn(&str) -> Option<&'c RouteFilterConfig>,
        ) -> Vec<(String, RouteFilterConfig)> {
            names
                .iter()
                .map(AsRef::as_ref)
                .filter_map(|n| lookup(n).map(|c| (n.to_string(), c.clone())))
                .collect()
        }
        let forward = match decision {
            RouteDecision::Route(f) => Some(f.to_ref()),
            _ => None,
        };
        let (name, action, per_filter) = match decision {
            RouteDecision::NoRoute => return None,
            RouteDecision::Route(f) => (
                f.route.name.as_str(),
                RouteAction::Forward { cluster: f.cluster.to_string() },
                collect(filter_names, |n| f.per_filter_config(n)),
            ),
            RouteDecision::ClusterNotFound(f) => (
                f.route.name.as_str(),
                RouteAction::ClusterNotFound {
                    cluster: f.cluster.to_string(),
                    status: f.cluster_not_found_status(),
                },
                collect(filter_names, |n| f.per_filter_config(n)),
            ),
            RouteDecision::DirectResponse(d) => (
                d.route.name.as_str(),
                RouteAction::DirectResponse {
                    status: d.status,
                    body: d.body.to_string(),
                    headers: d.response_headers(Some(request), ctx),
                },
                collect(filter_names, |n| d.route.per_filter_config(n)),
            ),
            RouteDecision::Redirect(r) => (
                r.route.map_or("", |r| r.name.as_str()),
                RouteAction::Redirect {
                    status: r.status,
                    headers: r.response_headers(Some(request), ctx),
                },
                collect(filter_names, |n| r.route.and_then(|r| r.per_filter_config(n))),
            ),
        };
        Some(Self { name: name.to_string(), action, per_filter, forward })
    }
}

impl RouteInfo for ResolvedRoute {
    fn name(&self) -> &str {
        &self.name
    }
    fn action(&self) -> &RouteAction {
        &self.action
    }
    fn per_filter_config(&self, filter_name: &str) -> Option<&RouteFilterConfig> {
        self.per_filter.iter().find(|(n, _)| n == filter_name).map(|(_, c)| c)
    }
    fn forward_ref(&self) -> Option<&ForwardRef> {
        self.forward.as_ref()
    }
}

// ANCHOR: route_snapshots
/// One shared [`ResolvedRoute`] per forwarding route whose result does not
/// depend on the request: a plain `cluster` and no virtual cluster. Such a
/// route's snapshot is made by the first request that matches it and
/// shared (an `Arc` clone) by the next ones, instead of copying its name,
/// cluster and per-filter configs per request. Weighted picks, `cluster_header`,
/// virtual clusters, direct responses and redirects depend on the request
/// and are snapshotted per request. The matching itself (and the check that
/// the cluster exists) still runs per request: only its result is shared.
#[derive(Debug)]
pub struct RouteSnapshots {
    /// Per virtual host, the index of its first route in `slots`.
    offsets: Vec<usize>,
    slots: Vec<OnceLock<Arc<dyn RouteInfo>>>,
}

impl RouteSnapshots {
    /// Empty slots for every route of `router`.
    pub fn new(router: &Router) -> Self {
        let mut offsets = Vec::with_capacity(router.virtual_hosts().len());
        let mut total = 0;
        for vhost in router.virtual_hosts() {
            offsets.push(total);
            total += vhost.routes.len();
        }
        Self { offsets, slots: (0..total).map(|_| OnceLock::new()).collect() }
    }

    /// The snapshot of `decision` (made by the router given to [`new`](Self::new)),
    /// shared when the route allows it; `None` for `NoRoute`.
    pub fn resolve<S: AsRef<str>>(
        &self,
        decision: &RouteDecision<'_>,
        request: &HeaderMap,
        ctx: &RouteContext<'_>,
        filter_names: &[S],
    ) -> Option<Arc<dyn RouteInfo>> {
        if let RouteDecision::Route(f) = decision
            && matches!(f.action.cluster, ClusterSpecifier::Named(_))
            && f.virtual_cluster.is_none()
        {
            let (vhost, route) = f.route_position();
            let slot = self.offsets.get(vhost).and_then(|o| self.slots.get(o + route));
            if let Some(slot) = slot {
                if let Some(shared) = slot.get() {
                    return Some(shared.clone());
                }
                let snapshot: Arc<dyn RouteInfo> =
                    Arc::new(ResolvedRoute::from_decision(decision, request, ctx, filter_names)?);
                // Another worker may have stored an equal snapshot first.
                let _ = slot.set(snapshot.clone());
                return Some(snapshot);
            }
        }
        ResolvedRoute::from_decision(decision, request, ctx, filter_names)
            .map(|r| Arc::new(r) as Arc<dyn RouteInfo>)
    }
}
// ANCHOR_END: route_snapshots

/// A resolver answering the same route for every request (tests, simple setups).
#[derive(Debug, Clone)]
pub struct StaticRouteResolver(pub Option<Arc<dyn RouteInfo>>);

impl RouteResolver for StaticRouteResolver {
    fn resolve(&self, _headers: &HeaderMap) -> Option<Arc<dyn RouteInfo>> {
        self.0.clone()
    }
}

/// A resolver from a closure.
pub struct FnRouteResolver<F>(pub F);

impl<F> RouteResolver for FnRouteResolver<F>
where
    F: Fn(&HeaderMap) -> Option<Arc<dyn RouteInfo>> + Send + Sync,
{
    fn resolve(&self, headers: &HeaderMap) -> Option<Arc<dyn RouteInfo>> {
        (self.0)(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use week1_core::config::route::RouteConfiguration;
    use week1_core::router::Router;

    use crate::context::FactoryContext;
    use crate::http::filters::cors::CorsConfig;
    use crate::registry::RouteConfigCompiler;

    #[test]
    fn snapshots_a_week1_decision_with_per_filter_configs() {
        let config: RouteConfiguration = week1_core::config::load_str(
            r#"
virtual_hosts:
- name: vh
  domains: ["*"]
  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_methods: GET
  routes:
  - name: api
    match: {prefix: /api}
    route: {cluster: backend}
    typed_per_filter_config:
      envoy.filters.http.buffer:
        "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
        disabled: true
  - match: {prefix: /}
    direct_response: {status: 200, body: {inline_string: hi}}
"#,
        )
        .unwrap();
        let compiler = RouteConfigCompiler::new(&FactoryContext::default());
        let router = Router::with_filter_configs(&config, &compiler).unwrap();
        let mut h = HeaderMap::new();
        h.try_insert(":authority", "x").unwrap();
        h.try_insert(":path", "/api/1").unwrap();
        let ctx = RouteContext::default();
        let d = router.route(&h, &ctx);
        let names = ["envoy.filters.http.cors", "envoy.filters.http.buffer", "other"];
        let r = ResolvedRoute::from_decision(&d, &h, &ctx, &names).unwrap();
        assert_eq!(r.name(), "api");
        assert_eq!(r.action(), &RouteAction::Forward { cluster: "backend".into() });
        // The snapshot shares the router's compiled CORS config, not a copy.
        let cors = r.per_filter_config("envoy.filters.http.cors").unwrap();
        assert!(cors.get::<CorsConfig>().is_some());
        let Some(RouteDecision::Route(f)) = Some(&d) else { panic!() };
        let in_router = f.per_filter_config("envoy.filters.http.cors").unwrap();
        assert!(Arc::ptr_eq(cors.config.as_ref().unwrap(), in_router.config.as_ref().unwrap()));
        assert_eq!(r.filter_disabled("envoy.filters.http.buffer"), Some(true));
        assert!(r.per_filter_config("envoy.filters.http.buffer").unwrap().config.is_none());
        assert_eq!(r.filter_disabled("envoy.filters.http.cors"), None);
        assert_eq!(r.per_filter.len(), 2);
        let back = router.forward(r.forward_ref().unwrap()).unwrap();
        assert_eq!(back.cluster, "backend");

        h.try_insert(":path", "/other").unwrap();
        let d = router.route(&h, &ctx);
        let r = ResolvedRoute::from_decision(&d, &h, &ctx, &names).unwrap();
        let RouteAction::DirectResponse { status, body, headers } = r.action() else { panic!() };
        assert_eq!((*status, body.as_str()), (200, "hi"));
        assert_eq!(headers.get_str(":status"), Some("200"));
    }

    #[test]
    fn plain_cluster_routes_share_one_snapshot_others_do_not() {
        let config: RouteConfiguration = week1_core::config::load_str(
            r#"
virtual_hosts:
- name: a
  domains: ["a"]
  routes:
  - name: plain
    match: {prefix: /plain}
    route: {cluster: backend}
  - match: {prefix: /header}
    route: {cluster_header: x-cluster}
  - match: {prefix: /}
    direct_response: {status: 200, body: {inline_string: hi}}
- name: b
  domains: ["*"]
  virtual_clusters:
  - name: vc
    headers: [{name: ":method", string_match: {exact: POST}}]
  routes:
  - match: {prefix: /}
    route: {cluster: other}
"#,
        )
        .unwrap();
        let router = Router::new(&config).unwrap();
        let snapshots = RouteSnapshots::new(&router);
        let ctx = RouteContext::default();
        let names: [&str; 0] = [];
        let resolve = |authority: &str, path: &str, cluster_header: Option<&str>| {
            let mut h = HeaderMap::new();
            h.try_insert(":method", "GET").unwrap();
            h.try_insert(":authority", authority).unwrap();
            h.try_insert(":path", path).unwrap();
            if let Some(c) = cluster_header {
                h.try_insert("x-cluster", c).unwrap();
            }
            snapshots.resolve(&router.route(&h, &ctx), &h, &ctx, &names)
        };
        let cluster = |r: &Arc<dyn RouteInfo>| match r.action() {
            RouteAction::Forward { cluster } => cluster.clone(),
            other => panic!("not a forward: {other:?}"),
        };
        // A plain cluster: made once, then shared.
        let first = resolve("a", "/plain/1", None).unwrap();
        let second = resolve("a", "/plain/2", None).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!((first.name(), cluster(&first).as_str()), ("plain", "backend"));
        assert_eq!(router.forward(first.forward_ref().unwrap()).unwrap().cluster, "backend");
        // From a request header: per request.
        let one = resolve("a", "/header", Some("c1")).unwrap();
        let two = resolve("a", "/header", Some("c2")).unwrap();
        assert_eq!((cluster(&one).as_str(), cluster(&two).as_str()), ("c1", "c2"));
        // A virtual cluster ("other" when none matches) depends on the request too.
        let v1 = resolve("b", "/", None).unwrap();
        let v2 = resolve("b", "/", None).unwrap();
        assert!(!Arc::ptr_eq(&v1, &v2));
        // Direct responses are not shared; no route is `None`.
        let d1 = resolve("a", "/x", None).unwrap();
        let d2 = resolve("a", "/x", None).unwrap();
        assert!(!Arc::ptr_eq(&d1, &d2));
        assert!(matches!(d1.action(), RouteAction::DirectResponse { .. }));
    }
}
