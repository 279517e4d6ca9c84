//! # The configuration snapshot workers read
//!
//! Envoy's main thread turns configuration into immutable runtime objects and
//! publishes them to workers through thread-local slots. Here a [`Snapshot`]
//! is the listener side (Envoy's `ListenerManager` output), built once per
//! configuration version from the week 1 model with the week 1 and week 3
//! compilers; clusters live apart in the [`ClusterManager`](crate::cluster_manager):
//!
//! ```text
//!  Bootstrap / LDS ─► listeners: FilterChainMatcher (week 1)
//!                       └─► per filter chain: network filters + HCM (ConnectionManagerConfig,
//!                           FilterChainFactory, Router, access logs) or tcp_proxy (week 3)
//!                             └─► ClusterSource: the worker's current clusters, by name
//! ```
//!
//! A connection keeps the filter chain it started with while newer
//! connections see the next version; clusters are looked up by name in the
//! worker's current cluster map on every request. Inline routes
//! (`route_config`) belong to the chain; RDS routes (`rds`) are looked up by
//! `route_config_name` in the worker's current [`RouteMap`] (a thread-local
//! slot the main thread's [`RouteConfigs`](crate::rds::RouteConfigs)
//! publishes) on every request, so a keep-alive connection picks up new
//! routes on its next request, as in Envoy.

use std::net::SocketAddr;
use std::sync::Arc;

use week1_core::config::bootstrap::Bootstrap;
use week1_core::config::config_source::ConfigSource;
use week1_core::config::http_connection_manager::HttpConnectionManager;
use week1_core::config::listener::{Listener, NetworkFilterConfig};
use week1_core::config::{ConfigError, FieldPath};
use week1_core::headers::HeaderMap;
use week1_core::listener::FilterChainMatcher;
use week1_core::router::{RouteContext, Router};
use week2_threads::tls::Slot;
use week3_filters::context::FactoryContext;
use week3_filters::hcm::ConnectionManagerConfig;
use week3_filters::http::ResolvedRoute;
use week3_filters::http::filters::router::RouterConfig;
use week3_filters::http::{RouteInfo, RouteResolver, RouteSnapshots};
use week3_filters::network::filters::SharedBuckets;
use week3_filters::network::tcp_proxy::TcpProxyConfig;
use week3_filters::registry::{
    FilterChainFactory, NetworkFilterChainFactory, RouteConfigCompiler, Terminal,
};
use week4_xds::drain::{DrainConfig, DrainManager};

use crate::access_log::{AccessLogManager, AccessLogs};
use crate::cluster_manager::ClusterSource;
use crate::stats::{Counter, HttpConnectionManagerStats, Store};

// ANCHOR: snapshot
/// One listener configuration version, as workers see it.
#[derive(Debug)]
pub struct Snapshot {
    /// Listeners in configured order.
    pub listeners: Vec<Arc<ListenerEntry>>,
}
// ANCHOR_END: snapshot

/// A listener: its address and filter chains.
#[derive(Debug)]
pub struct ListenerEntry {
    /// `name`.
    pub name: String,
    /// The address to bind (port 0 is resolved by the main thread first).
    pub address: SocketAddr,
    /// Chooses a filter chain per connection.
    pub matcher: FilterChainMatcher,
    /// The filter chains, in configured order.
    pub chains: Vec<FilterChain>,
    /// `default_filter_chain`.
    pub default_chain: Option<FilterChain>,
    /// `per_connection_buffer_limit_bytes` (Envoy default 1 MiB).
    pub buffer_limit: usize,
    /// This listener version's drain: its connections are tracked here, and
    /// it drains when the version is replaced or removed.
    pub drain: DrainManager,
    /// The route configurations its HCMs read through RDS.
    pub rds: Vec<RdsRef>,
}

/// An HCM's `rds`: which route configuration, from where, counted under
/// which `stat_prefix`.
#[derive(Debug, Clone, PartialEq)]
pub struct RdsRef {
    /// `route_config_name`.
    pub name: String,
    /// `config_source`.
    pub source: ConfigSource,
    /// The HCM's `stat_prefix` (`http.<stat_prefix>.rds.<name>.*`).
    pub stat_prefix: String,
}

/// The route configurations RDS delivered, by name, as a worker reads them.
pub type RouteMap = std::collections::BTreeMap<String, Arc<Router>>;

/// What listeners are compiled with.
pub struct BuildContext<'a> {
    /// Access log sinks.
    pub logs: &'a AccessLogManager,
    /// The clusters chains route to.
    pub clusters: &'a ClusterSource,
    /// The stats store.
    pub stats: &'a Store,
    /// Whether CDS may add clusters later (unknown names are not errors).
    pub cds: bool,
    /// Where RDS routes are read (`None`: an HCM with `rds` is refused).
    pub routes: Option<&'a Slot<Arc<RouteMap>>>,
}

/// A filter chain: network filters and a terminal.
#[derive(Debug, Clone)]
pub struct FilterChain {
    /// The network filters before the terminal.
    pub network: Arc<NetworkFilterChainFactory>,
    /// Per network filter (configured order), the counter of connections it
    /// refused: `local_ratelimit.<stat_prefix>.rate_limited`.
    pub refused: Arc<[Option<Counter>]>,
    /// HTTP or TCP.
    pub terminal: ChainTerminal,
}

/// What ends a filter chain.
#[derive(Debug, Clone)]
pub enum ChainTerminal {
    /// `envoy.filters.network.http_connection_manager`.
    Http(Arc<HttpChain>),
    /// `envoy.filters.network.tcp_proxy`.
    Tcp(Arc<TcpChain>),
}

/// An HTTP connection manager, compiled.
pub struct HttpChain {
    /// The HCM's settings.
    pub config: ConnectionManagerConfig,
    /// Makes each stream's HTTP filters.
    pub filters: FilterChainFactory,
    /// The inline route table (`None` with RDS: each route carries its table).
    pub router: Option<Arc<Router>>,
    /// Resolves routes for the FilterManager.
    pub resolver: Arc<dyn RouteResolver>,
    /// The router filter's settings.
    pub router_config: Arc<RouterConfig>,
    /// Access logs.
    pub access_logs: AccessLogs,
    /// `http.<stat_prefix>.*`.
    pub stats: Arc<HttpConnectionManagerStats>,
    /// The clusters this HCM routes to (looked up per request).
    pub clusters: ClusterSource,
}

impl std::fmt::Debug for HttpChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpChain").field("stat_prefix", &self.config.stat_prefix).finish()
    }
}

/// A tcp_proxy, compiled.
#[derive(Debug)]
pub struct TcpChain {
    /// Its settings.
    pub config: Arc<TcpProxyConfig>,
    /// `tcp.<stat_prefix>.*`.
    pub stats: Arc<crate::stats::TcpProxyStats>,
    /// Access logs.
    pub access_logs: AccessLogs,
    /// The clusters it may pick (looked up per connection).
    pub clusters: ClusterSource,
}

/// The HCM's route table as the FilterManager's [`RouteResolver`].
#[derive(Debug)]
pub struct RouteTable {
    router: Arc<Router>,
    filter_names: Vec<String>,
    clusters: ClusterSource,
    /// Shared results of the routes that do not depend on the request.
    snapshots: RouteSnapshots,
}

impl RouteResolver for RouteTable {
    fn resolve(&self, headers: &HeaderMap) -> Option<Arc<dyn RouteInfo>> {
        let exists = |name: &str| self.clusters.contains(name);
        let ctx = RouteContext {
            random_value: crate::random::next_u64(),
            cluster_exists: Some(&exists),
            ..RouteContext::default()
        };
        let decision = self.router.route(headers, &ctx);
        self.snapshots.resolve(&decision, headers, &ctx, &self.filter_names)
    }
}

/// An HCM's RDS routes: the current version of `route_config_name` in the
/// worker's [`RouteMap`], looked up per request.
pub struct RdsRouteTable {
    name: String,
    routes: Slot<Arc<RouteMap>>,
    filter_names: Vec<String>,
    clusters: ClusterSource,
}

impl std::fmt::Debug for RdsRouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdsRouteTable").field("name", &self.name).finish()
    }
}

/// A route resolved from an RDS table, holding that table: the upstream half
/// turns its `forward_ref` back into a decision with the same version even
/// if RDS replaced the table since.
#[derive(Debug)]
struct RdsRoute {
    route: ResolvedRoute,
    router: Arc<Router>,
}

impl RouteInfo for RdsRoute {
    fn name(&self) -> &str {
        self.route.name()
    }
    fn action(&self) -> &week3_filters::http::RouteAction {
        self.route.action()
    }
    fn per_filter_config(
        &self,
        filter_name: &str,
    ) -> Option<&week1_core::router::RouteFilterConfig> {
        self.route.per_filter_config(filter_name)
    }
    fn forward_ref(&self) -> Option<&week1_core::router::ForwardRef> {
        self.route.forward_ref()
    }
    fn router(&self) -> Option<&Arc<Router>> {
        Some(&self.router)
    }
}

// ANCHOR: rds_resolve
impl RouteResolver for RdsRouteTable {
    fn resolve(&self, headers: &HeaderMap) -> Option<Arc<dyn RouteInfo>> {
        // No routes yet (warming timed out, or not delivered): 404 NR.
        let router = self.routes.with(|m| m.get(&self.name).cloned()).ok().flatten()?;
        let exists = |name: &str| self.clusters.contains(name);
        let ctx = RouteContext {
            random_value: crate::random::next_u64(),
            cluster_exists: Some(&exists),
            ..RouteContext::default()
        };
        let decision = router.route(headers, &ctx);
        let route = ResolvedRoute::from_decision(&decision, headers, &ctx, &self.filter_names)?;
        drop(decision);
        Some(Arc::new(RdsRoute { route, router }))
    }
}
// ANCHOR_END: rds_resolve

impl Snapshot {
    /// Compiles a bootstrap's static listeners, whose chains find clusters
    /// through `clusters` (no RDS). Every error names its field path.
    pub fn build(
        bootstrap: &Bootstrap,
        logs: &AccessLogManager,
        clusters: &ClusterSource,
        stats: &Store,
    ) -> Result<Self, ConfigError> {
        let ctx = BuildContext { logs, clusters, stats, cds: bootstrap.has_cds(), routes: None };
        Self::build_with(bootstrap, &ctx)
    }

    /// Compiles a bootstrap's static listeners with `ctx`.
    pub fn build_with(bootstrap: &Bootstrap, ctx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let static_resources = FieldPath::root().field("static_resources");
        let listeners = bootstrap
            .listeners()
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let at = static_resources.field("listeners").index(i);
                build_listener(l, &at, ctx).map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { listeners })
    }
}

fn socket_address(l: &Listener, at: &FieldPath) -> Result<SocketAddr, ConfigError> {
    l.address
        .as_ref()
        .and_then(|a| a.socket_addr())
        .ok_or_else(|| ConfigError::invalid(at.field("address"), "must be an IP socket address"))
}

/// Compiles one listener (static, or from LDS) at field path `at`. Its
/// drain is a placeholder until the listener manager gives it its own.
pub fn build_listener(
    l: &Listener,
    at: &FieldPath,
    build: &BuildContext<'_>,
) -> Result<ListenerEntry, ConfigError> {
    let address = socket_address(l, at)?;
    let matcher = FilterChainMatcher::from_listener(l, at)?;
    let ctx = FactoryContext { stats: Arc::new(build.stats.clone()), ..FactoryContext::default() };
    let shared = SharedBuckets::default();
    let mut rds = Vec::new();
    let mut chain = |fc: &week1_core::config::listener::FilterChain, at: FieldPath| {
        build_chain(&fc.filters, &at, build, &ctx, &shared, &mut rds)
    };
    let chains = l
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, fc)| chain(fc, at.field("filter_chains").index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let default_chain = l
        .default_filter_chain
        .as_ref()
        .map(|fc| chain(fc, at.field("default_filter_chain")))
        .transpose()?;
    Ok(ListenerEntry {
        name: l.name.clone(),
        address,
        matcher,
        chains,
        default_chain,
        buffer_limit: l.per_connection_buffer_limit_bytes() as usize,
        drain: DrainManager::new(DrainConfig::default()),
        rds,
    })
}

/// Compiles a route configuration (inline or from RDS) as the router runs it.
/// Per-route filter configs (a route's own rate limit) register their stats
/// in `ctx`'s scope.
pub fn compile_routes(
    route_config: &week1_core::config::route::RouteConfiguration,
    ctx: &FactoryContext,
) -> Result<Arc<Router>, String> {
    let compiler = RouteConfigCompiler::new(ctx);
    Router::with_filter_configs(route_config, &compiler).map(Arc::new).map_err(|e| e.to_string())
}

/// Prefixes an error's path with `at` (errors of sub-compilers are relative).
pub(crate) fn under(at: &FieldPath) -> impl Fn(ConfigError) -> ConfigError + '_ {
    move |mut e| {
        let inner = e.path.take().unwrap_or_default();
        let mut p = at.clone();
        p.0.extend(inner.0);
        e.path = Some(p);
        e
    }
}

fn build_chain(
    filters: &[week1_core::config::listener::Filter],
    at: &FieldPath,
    build: &BuildContext<'_>,
    ctx: &FactoryContext,
    shared: &SharedBuckets,
    rds: &mut Vec<RdsRef>,
) -> Result<FilterChain, ConfigError> {
    let (clusters, cds, logs) = (build.clusters, build.cds, build.logs);
    let network =
        NetworkFilterChainFactory::from_config(filters, ctx, shared, false).map_err(under(at))?;
    let terminal_index = filters.len().saturating_sub(1);
    let terminal_at = at.field("filters").index(terminal_index).field("typed_config");
    let terminal =
        match &network.terminal {
            Terminal::HttpConnectionManager(hcm, factory) => ChainTerminal::Http(Arc::new(
                build_http(hcm, factory.clone(), &terminal_at, build, ctx, rds)?,
            )),
            Terminal::TcpProxy(config) => {
                let access_logs = logs.compile(
                    &tcp_proxy_access_logs(&filters[terminal_index]),
                    &terminal_at.field("access_log"),
                )?;
                // Without CDS every cluster is known now, so a typo fails at
                // start-up; with CDS the cluster may come later, and a
                // connection to a missing one closes with `NC`, as in Envoy.
                for (cluster, _) in &config.clusters {
                    if !cds && !clusters.contains(cluster) {
                        return Err(ConfigError::invalid(
                            terminal_at.field("cluster"),
                            format!("unknown cluster {cluster:?}"),
                        ));
                    }
                }
                ChainTerminal::Tcp(Arc::new(TcpChain {
                    stats: Arc::new(crate::stats::TcpProxyStats::new(
                        build.stats,
                        &config.stat_prefix,
                    )),
                    config: config.clone(),
                    access_logs,
                    clusters: clusters.clone(),
                }))
            }
        };
    let refused = filters
        .iter()
        .map(|f| match &f.typed_config {
            Some(NetworkFilterConfig::LocalRateLimit(c)) => Some(
                build
                    .stats
                    .root()
                    .scope(&format!("local_ratelimit.{}", c.stat_prefix))
                    .counter("rate_limited"),
            ),
            _ => None,
        })
        .collect();
    Ok(FilterChain { network: Arc::new(network), refused, terminal })
}

fn tcp_proxy_access_logs(
    filter: &week1_core::config::listener::Filter,
) -> Vec<week1_core::config::access_log::AccessLog> {
    match &filter.typed_config {
        Some(week1_core::config::listener::NetworkFilterConfig::TcpProxy(t)) => {
            t.access_log.clone()
        }
        _ => Vec::new(),
    }
}

fn build_http(
    hcm: &HttpConnectionManager,
    filters: FilterChainFactory,
    at: &FieldPath,
    build: &BuildContext<'_>,
    ctx: &FactoryContext,
    rds: &mut Vec<RdsRef>,
) -> Result<HttpChain, ConfigError> {
    let (clusters, logs, stats) = (build.clusters, build.logs, build.stats);
    let config = ConnectionManagerConfig::from_config(hcm, at)?;
    let filter_names: Vec<String> =
        filters.filter_names().into_iter().map(str::to_string).collect();
    let (router, resolver): (Option<Arc<Router>>, Arc<dyn RouteResolver>) =
        match (&hcm.route_config, &hcm.rds) {
            (Some(route_config), _) => {
                let router = compile_routes(route_config, ctx)
                    .map_err(|e| ConfigError::invalid(at.field("route_config"), e))?;
                let resolver = Arc::new(RouteTable {
                    snapshots: RouteSnapshots::new(&router),
                    router: router.clone(),
                    filter_names,
                    clusters: clusters.clone(),
                });
                (Some(router), resolver)
            }
            (None, Some(r)) => {
                let Some(routes) = build.routes else {
                    return Err(ConfigError::unsupported(
                        at.field("rds"),
                        "RDS needs the running server's route provider",
                    ));
                };
                let source = r.config_source.clone().unwrap_or_default();
                if source.file_path().is_none() && source.ads.is_none() {
                    return Err(ConfigError::unsupported(
                        at.field("rds").field("config_source"),
                        "RDS reads a path_config_source (or path) or ads",
                    ));
                }
                rds.push(RdsRef {
                    name: r.route_config_name.clone(),
                    source,
                    stat_prefix: hcm.stat_prefix.clone(),
                });
                let resolver = Arc::new(RdsRouteTable {
                    name: r.route_config_name.clone(),
                    routes: routes.clone(),
                    filter_names,
                    clusters: clusters.clone(),
                });
                (None, resolver)
            }
            (None, None) => {
                return Err(ConfigError::invalid(at.clone(), "needs route_config or rds"));
            }
        };
    let router_config = filters.router_config().cloned().unwrap_or_default();
    let access_logs = logs.compile(&hcm.access_log, &at.field("access_log"))?;
    Ok(HttpChain {
        config,
        filters,
        router,
        resolver,
        router_config,
        access_logs,
        stats: Arc::new(HttpConnectionManagerStats::new(stats, &hcm.stat_prefix)),
        clusters: clusters.clone(),
    })
}
