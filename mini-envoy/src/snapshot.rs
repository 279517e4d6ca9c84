//! # The configuration snapshot workers read
//!
//! Envoy's main thread turns configuration into immutable runtime objects
//! (listeners with their filter-chain factories, the cluster manager's
//! clusters) and publishes them to workers through thread-local slots. Here a
//! [`Snapshot`] is that whole set, built once per configuration version from
//! the week 1 model with the week 1 and week 3 compilers:
//!
//! ```text
//!  Bootstrap ─► clusters: ClusterInfo + PrioritySet + LoadBalancerFactory (week 1)
//!          └──► listeners: FilterChainMatcher (week 1)
//!                 └─► per filter chain: network filters + HCM (ConnectionManagerConfig,
//!                     FilterChainFactory, Router, access logs) or tcp_proxy (week 3)
//! ```
//!
//! Workers hold an `Arc<Snapshot>` per connection, so a connection keeps the
//! configuration it started with while newer connections see the next one.

use std::net::SocketAddr;
use std::sync::Arc;

use week1_core::cluster::info::ClusterInfo;
use week1_core::cluster::{LoadBalancerFactory, PrioritySet};
use week1_core::config::bootstrap::Bootstrap;
use week1_core::config::http_connection_manager::HttpConnectionManager;
use week1_core::config::listener::Listener;
use week1_core::config::{ConfigError, FieldPath};
use week1_core::headers::HeaderMap;
use week1_core::listener::FilterChainMatcher;
use week1_core::router::{RouteContext, Router};
use week3_filters::context::FactoryContext;
use week3_filters::hcm::ConnectionManagerConfig;
use week3_filters::http::filters::router::RouterConfig;
use week3_filters::http::{ResolvedRoute, RouteInfo, RouteResolver};
use week3_filters::network::filters::SharedBuckets;
use week3_filters::network::tcp_proxy::TcpProxyConfig;
use week3_filters::registry::{
    FilterChainFactory, NetworkFilterChainFactory, RouteConfigCompiler, Terminal,
};

use crate::access_log::{AccessLogManager, AccessLogs};
use crate::upstream::pool::PoolSettings;

// ANCHOR: snapshot
/// One configuration version, as workers see it.
#[derive(Debug)]
pub struct Snapshot {
    /// Listeners in configured order.
    pub listeners: Vec<Arc<ListenerEntry>>,
    /// Clusters by name.
    pub clusters: Arc<ClusterMap>,
}
// ANCHOR_END: snapshot

/// The cluster manager's clusters (Envoy's `ClusterManager`), by name.
pub type ClusterMap = rustc_hash::FxHashMap<String, Arc<ClusterEntry>>;

/// A cluster ready for workers: settings, hosts, the load-balancer factory
/// each worker creates its own load balancer from.
#[derive(Debug)]
pub struct ClusterEntry {
    /// Envoy's `ClusterInfo`.
    pub info: Arc<ClusterInfo>,
    /// The hosts, per priority.
    pub priority_set: Arc<PrioritySet>,
    /// Creates per-worker load balancers.
    pub lb_factory: Arc<LoadBalancerFactory>,
    /// Connection-pool settings.
    pub pool: Arc<PoolSettings>,
}

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
    /// The clusters this HCM routes to.
    pub clusters: Arc<ClusterMap>,
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
    /// The clusters it may pick.
    pub clusters: Arc<ClusterMap>,
}

/// The HCM's route table as the FilterManager's [`RouteResolver`].
#[derive(Debug)]
pub struct RouteTable {
    router: Arc<Router>,
    filter_names: Vec<String>,
    clusters: Arc<ClusterMap>,
}

impl RouteResolver for RouteTable {
    fn resolve(&self, headers: &HeaderMap) -> Option<Arc<dyn RouteInfo>> {
        let exists = |name: &str| self.clusters.contains_key(name);
        let ctx = RouteContext {
            random_value: crate::random::next_u64(),
            cluster_exists: Some(&exists),
            ..RouteContext::default()
        };
        let decision = self.router.route(headers, &ctx);
        ResolvedRoute::from_decision(&decision, headers, &ctx, &self.filter_names)
            .map(|r| Arc::new(r) as Arc<dyn RouteInfo>)
    }
}

/// Resolves DNS names of STRICT_DNS / LOGICAL_DNS clusters.
pub type Resolver<'a> = &'a mut dyn FnMut(&str, u16) -> Result<Vec<SocketAddr>, String>;

impl Snapshot {
    /// Compiles a bootstrap. Every error names its field path.
    pub fn build(
        bootstrap: &Bootstrap,
        logs: &AccessLogManager,
        resolve: Resolver<'_>,
    ) -> Result<Self, ConfigError> {
        let static_resources = FieldPath::root().field("static_resources");
        let mut clusters = ClusterMap::default();
        for (i, c) in bootstrap.clusters().iter().enumerate() {
            let at = static_resources.field("clusters").index(i);
            let entry = build_cluster(c, &at, resolve)?;
            clusters.insert(c.name.clone(), Arc::new(entry));
        }
        let clusters = Arc::new(clusters);
        let ctx = FactoryContext::default();
        let shared = SharedBuckets::default();
        let listeners = bootstrap
            .listeners()
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let at = static_resources.field("listeners").index(i);
                build_listener(l, &at, &clusters, &ctx, &shared, logs).map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { listeners, clusters })
    }
}

fn build_cluster(
    c: &week1_core::config::cluster::Cluster,
    at: &FieldPath,
    resolve: Resolver<'_>,
) -> Result<ClusterEntry, ConfigError> {
    let info = ClusterInfo::from_config(c, at)?;
    let priority_set = Arc::new(info.initial_priority_set(c, resolve, at)?);
    let lb_factory = LoadBalancerFactory::new(&info.lb_config, priority_set.clone(), None)
        .map_err(|e| ConfigError::invalid(at.clone(), e.to_string()))?;
    let pool = Arc::new(PoolSettings::from_cluster(&info));
    Ok(ClusterEntry { info: Arc::new(info), priority_set, lb_factory: Arc::new(lb_factory), pool })
}

fn socket_address(l: &Listener, at: &FieldPath) -> Result<SocketAddr, ConfigError> {
    l.address
        .as_ref()
        .and_then(|a| a.socket_addr())
        .ok_or_else(|| ConfigError::invalid(at.field("address"), "must be an IP socket address"))
}

fn build_listener(
    l: &Listener,
    at: &FieldPath,
    clusters: &Arc<ClusterMap>,
    ctx: &FactoryContext,
    shared: &SharedBuckets,
    logs: &AccessLogManager,
) -> Result<ListenerEntry, ConfigError> {
    let address = socket_address(l, at)?;
    let matcher = FilterChainMatcher::from_listener(l, at)?;
    let chain = |fc: &week1_core::config::listener::FilterChain, at: FieldPath| {
        build_chain(&fc.filters, &at, clusters, ctx, shared, logs)
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
fn under(at: &FieldPath) -> impl Fn(ConfigError) -> ConfigError + '_ {
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
    clusters: &Arc<ClusterMap>,
    ctx: &FactoryContext,
    shared: &SharedBuckets,
    logs: &AccessLogManager,
) -> Result<FilterChain, ConfigError> {
    let network =
        NetworkFilterChainFactory::from_config(filters, ctx, shared, false).map_err(under(at))?;
    let terminal_index = filters.len().saturating_sub(1);
    let terminal_at = at.field("filters").index(terminal_index).field("typed_config");
    let terminal =
        match &network.terminal {
            Terminal::HttpConnectionManager(hcm, factory) => ChainTerminal::Http(Arc::new(
                build_http(hcm, factory.clone(), &terminal_at, clusters, ctx, logs)?,
            )),
            Terminal::TcpProxy(config) => {
                let access_logs = logs.compile(
                    &tcp_proxy_access_logs(&filters[terminal_index]),
                    &terminal_at.field("access_log"),
                )?;
                for (cluster, _) in &config.clusters {
                    if !clusters.contains_key(cluster) {
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
    Ok(FilterChain { network: Arc::new(network), terminal })
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
    clusters: &Arc<ClusterMap>,
    ctx: &FactoryContext,
    logs: &AccessLogManager,
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
    let resolver =
        Arc::new(RouteTable { router: router.clone(), filter_names, clusters: clusters.clone() });
    let router_config = filters.router_config().cloned().unwrap_or_default();
    let access_logs = logs.compile(&hcm.access_log, &at.field("access_log"))?;
    Ok(HttpChain {
        config,
        filters,
        router,
        resolver,
        router_config,
        access_logs,
        clusters: clusters.clone(),
    })
}
