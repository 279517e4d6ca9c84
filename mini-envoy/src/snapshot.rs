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
//! A connection keeps the filter chain (and routes) it started with while
//! newer connections see the next version; clusters are looked up by name in
//! the worker's current cluster map on every request.

use std::net::SocketAddr;
use std::sync::Arc;

use week1_core::config::bootstrap::Bootstrap;
use week1_core::config::http_connection_manager::HttpConnectionManager;
use week1_core::config::listener::{Listener, NetworkFilterConfig};
use week1_core::config::{ConfigError, FieldPath};
use week1_core::headers::HeaderMap;
use week1_core::listener::FilterChainMatcher;
use week1_core::router::{RouteContext, Router};
use week3_filters::context::FactoryContext;
use week3_filters::hcm::ConnectionManagerConfig;
use week3_filters::http::filters::router::RouterConfig;
use week3_filters::http::{RouteInfo, RouteResolver, RouteSnapshots};
use week3_filters::network::filters::SharedBuckets;
use week3_filters::network::tcp_proxy::TcpProxyConfig;
use week3_filters::registry::{
    FilterChainFactory, NetworkFilterChainFactory, RouteConfigCompiler, Terminal,
};

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
    /// The route table.
    pub router: Arc<Router>,
    /// Resolves routes for the FilterManager.
    pub resolver: Arc<RouteTable>,
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

impl Snapshot {
    /// Compiles a bootstrap's static listeners, whose chains find clusters
    /// through `clusters`. Every error names its field path.
    pub fn build(
        bootstrap: &Bootstrap,
        logs: &AccessLogManager,
        clusters: &ClusterSource,
        stats: &Store,
    ) -> Result<Self, ConfigError> {
        let static_resources = FieldPath::root().field("static_resources");
        let ctx = FactoryContext::default();
        let shared = SharedBuckets::default();
        let cds = bootstrap.has_cds();
        let listeners = bootstrap
            .listeners()
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let at = static_resources.field("listeners").index(i);
                build_listener(l, &at, clusters, cds, &ctx, &shared, logs, stats).map(Arc::new)
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

#[allow(clippy::too_many_arguments)]
fn build_listener(
    l: &Listener,
    at: &FieldPath,
    clusters: &ClusterSource,
    cds: bool,
    ctx: &FactoryContext,
    shared: &SharedBuckets,
    logs: &AccessLogManager,
    stats: &Store,
) -> Result<ListenerEntry, ConfigError> {
    let address = socket_address(l, at)?;
    let matcher = FilterChainMatcher::from_listener(l, at)?;
    let chain = |fc: &week1_core::config::listener::FilterChain, at: FieldPath| {
        build_chain(&fc.filters, &at, clusters, cds, ctx, shared, logs, stats)
    };
    let chains = l
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, fc)| chain(fc, at.field("filter_chains").index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let default_chain =
        l.default_filter_chain.as_ref().map(|fc| chain(fc, at.field("default_filter_chain")));
    Ok(ListenerEntry {
        name: l.name.clone(),
        address,
        matcher,
        chains,
        default_chain: default_chain.transpose()?,
        buffer_limit: l.per_connection_buffer_limit_bytes() as usize,
    })
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

#[allow(clippy::too_many_arguments)]
fn build_chain(
    filters: &[week1_core::config::listener::Filter],
    at: &FieldPath,
    clusters: &ClusterSource,
    cds: bool,
    ctx: &FactoryContext,
    shared: &SharedBuckets,
    logs: &AccessLogManager,
    stats: &Store,
) -> Result<FilterChain, ConfigError> {
    let network =
        NetworkFilterChainFactory::from_config(filters, ctx, shared, false).map_err(under(at))?;
    let terminal_index = filters.len().saturating_sub(1);
    let terminal_at = at.field("filters").index(terminal_index).field("typed_config");
    let terminal =
        match &network.terminal {
            Terminal::HttpConnectionManager(hcm, factory) => ChainTerminal::Http(Arc::new(
                build_http(hcm, factory.clone(), &terminal_at, clusters, ctx, logs, stats)?,
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
                stats
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
    clusters: &ClusterSource,
    ctx: &FactoryContext,
    logs: &AccessLogManager,
    stats: &Store,
) -> Result<HttpChain, ConfigError> {
    let config = ConnectionManagerConfig::from_config(hcm, at)?;
    let route_config = match &hcm.route_config {
        Some(rc) => rc,
        None => {
            return Err(ConfigError::unsupported(
                at.field("rds"),
                "routes must be given inline as route_config (RDS arrives with dynamic configuration)",
            ));
        }
    };
    let compiler = RouteConfigCompiler::new(ctx);
    let router = Router::with_filter_configs(route_config, &compiler)
        .map_err(|e| ConfigError::invalid(at.field("route_config"), e.to_string()))?;
    let router = Arc::new(router);
    let filter_names = filters.filter_names().into_iter().map(str::to_string).collect();
    let resolver = Arc::new(RouteTable {
        snapshots: RouteSnapshots::new(&router),
        router: router.clone(),
        filter_names,
        clusters: clusters.clone(),
    });
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
