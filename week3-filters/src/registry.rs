//! # Filter registry: from config to per-stream filter chains
//!
//! Envoy's `NamedHttpFilterConfigFactory` registry: each `typed_config`
//! `@type` (or, for the router, a legacy name without typed config:
//! `envoy.filters.http.router`, `envoy.router`, `router`) maps to a factory.
//! [`FilterChainFactory::from_config`] turns an HCM's `http_filters` into a
//! list of factories once per config: each parses and compiles its config
//! into an `Arc`, so [`FilterChainFactory::create_chain`] builds a stream's
//! filters cheaply (an `Arc` clone and a small struct per filter). An
//! unsupported filter fails with the filter's path (`http_filters[2]...`).
//! [`NetworkFilterChainFactory`] does the same for a listener filter chain's
//! network filters and hands back the terminal's config.
//!
//! [`RouteConfigCompiler`] is the per-route half (Envoy's
//! `createRouteSpecificFilterConfig`): given to week 1's
//! `Router::with_filter_configs`, it compiles each `typed_per_filter_config`
//! once, when the route table is built, into the type the filter reads back
//! with `FilterCallbacks::per_filter_config::<T>()`.

use std::sync::Arc;

use week1_core::config::filters::{HttpFilterConfig, PerFilterConfig};
use week1_core::config::http_connection_manager::{HttpConnectionManager, HttpFilter};
use week1_core::config::listener::{Filter as NetworkFilter, NetworkFilterConfig};
use week1_core::config::{ConfigError, FieldPath};
use week1_core::router::{CompiledFilterConfig, RouteFilterConfigCompiler};

use crate::context::FactoryContext;
use crate::http::ConnectionInfo;
use crate::http::filters::basic_auth::{BasicAuthConfig, BasicAuthFilter, BasicAuthRouteConfig};
use crate::http::filters::bearer_auth::{BearerAuthConfig, BearerAuthFilter};
use crate::http::filters::buffer::BufferFilter;
use crate::http::filters::cors::{CorsConfig, CorsFilter};
use crate::http::filters::fault::{FaultConfig, FaultFilter};
use crate::http::filters::header_mutation::{HeaderMutationConfig, HeaderMutationFilter};
use crate::http::filters::local_ratelimit::{Limit, LocalRateLimitConfig, LocalRateLimitFilter};
use crate::http::filters::request_log::{RequestLogConfig, RequestLogFilter};
use crate::http::filters::router::{RouterConfig, RouterFilter};
use crate::http::{ChainFilter, HttpFilterInstance};
use crate::network::filters::{self as net, ConnectionLogFilter, SharedBuckets};
use crate::network::tcp_proxy::TcpProxyConfig;
use crate::network::{NetworkFilterInstance, NetworkFilterManager};

/// Makes one filter instance per stream.
pub trait HttpFilterFactory: Send + Sync {
    /// A new instance.
    fn create(&self) -> HttpFilterInstance;
}

impl<F: Fn() -> HttpFilterInstance + Send + Sync> HttpFilterFactory for F {
    fn create(&self) -> HttpFilterInstance {
        self()
    }
}

struct Entry {
    name: Arc<str>,
    factory: Arc<dyn HttpFilterFactory>,
    disabled: bool,
}

/// The HTTP filter chain of an HCM (see the module docs).
#[derive(Clone)]
pub struct FilterChainFactory {
    entries: Arc<[Entry]>,
    router: Option<Arc<RouterConfig>>,
}

impl std::fmt::Debug for FilterChainFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|e| &*e.name)).finish()
    }
}

fn at(i: usize) -> FieldPath {
    FieldPath::root().field("http_filters").index(i)
}

/// Builds the factory of one filter config.
pub fn http_filter_factory(
    config: &HttpFilterConfig,
    ctx: &FactoryContext,
) -> Result<Arc<dyn HttpFilterFactory>, String> {
    Ok(match config {
        HttpFilterConfig::Router(c) => {
            let c = Arc::new(RouterConfig::new(c));
            Arc::new(move || HttpFilterInstance::decoder(RouterFilter::new(c.clone())))
        }
        HttpFilterConfig::Cors(_) => {
            let random = ctx.random.clone();
            Arc::new(move || HttpFilterInstance::dual(CorsFilter::new(random.clone())))
        }
        HttpFilterConfig::BasicAuth(c) => {
            let c = Arc::new(BasicAuthConfig::new(c)?);
            Arc::new(move || HttpFilterInstance::decoder(BasicAuthFilter::new(c.clone())))
        }
        HttpFilterConfig::BearerAuth(c) => {
            let c = Arc::new(BearerAuthConfig::new(c)?);
            Arc::new(move || HttpFilterInstance::decoder(BearerAuthFilter::new(c.clone())))
        }
        HttpFilterConfig::LocalRateLimit(c) => {
            let c = Arc::new(LocalRateLimitConfig::new(c, ctx)?);
            Arc::new(move || HttpFilterInstance::dual(LocalRateLimitFilter::new(c.clone())))
        }
        HttpFilterConfig::Fault(c) => {
            let c = Arc::new(FaultConfig::new(c, ctx));
            Arc::new(move || HttpFilterInstance::decoder(FaultFilter::new(c.clone())))
        }
        HttpFilterConfig::Buffer(c) => {
            let c = *c;
            if c.max_request_bytes.unwrap_or(0) == 0 {
                return Err("max_request_bytes must be set".into());
            }
            Arc::new(move || HttpFilterInstance::decoder(BufferFilter::new(&c)))
        }
        HttpFilterConfig::HeaderMutation(c) => {
            let c = Arc::new(HeaderMutationConfig::new(&c.mutations)?);
            Arc::new(move || HttpFilterInstance::dual(HeaderMutationFilter::new(c.clone())))
        }
        HttpFilterConfig::RequestLog(c) => {
            let c = Arc::new(RequestLogConfig::new(c, ctx.log.clone()));
            Arc::new(move || HttpFilterInstance::decoder(RequestLogFilter::new(c.clone())))
        }
    })
}

impl FilterChainFactory {
    /// Builds the chain of an HCM's `http_filters`. The last filter must be
    /// the terminal (the router), and only the last.
    pub fn from_config(filters: &[HttpFilter], ctx: &FactoryContext) -> Result<Self, ConfigError> {
        let mut entries = Vec::with_capacity(filters.len());
        let mut router = None;
        for (i, f) in filters.iter().enumerate() {
            let Some(config) = f.config() else {
                if f.is_optional {
                    continue;
                }
                return Err(ConfigError::unsupported(
                    at(i),
                    format!("filter {:?} needs a typed_config naming a supported @type", f.name),
                ));
            };
            let last = i + 1 == filters.len();
            if config.is_terminal() != last {
                let msg = if last {
                    format!("the last HTTP filter must be the router, found {:?}", f.name)
                } else {
                    format!("the terminal filter {:?} must be last", f.name)
                };
                return Err(ConfigError::invalid(at(i), msg));
            }
            if let HttpFilterConfig::Router(r) = &config {
                router = Some(Arc::new(RouterConfig::new(r)));
            }
            let factory = http_filter_factory(&config, ctx)
                .map_err(|e| ConfigError::invalid(at(i).field("typed_config"), e))?;
            entries.push(Entry { name: f.name.as_str().into(), factory, disabled: f.disabled });
        }
        if entries.is_empty() {
            return Err(ConfigError::invalid(
                FieldPath::root().field("http_filters"),
                "must end with the router",
            ));
        }
        Ok(Self { entries: entries.into(), router })
    }

    /// The chain of an HCM config.
    /// Filters whose stats live under the connection manager's prefix get
    /// `http.<stat_prefix>.`.
    pub fn from_hcm(
        hcm: &HttpConnectionManager,
        ctx: &FactoryContext,
    ) -> Result<Self, ConfigError> {
        let ctx =
            FactoryContext { stats_prefix: format!("http.{}.", hcm.stat_prefix), ..ctx.clone() };
        Self::from_config(&hcm.http_filters, &ctx)
    }

    /// A chain of custom factories (tests, benches, extensions), in order.
    pub fn from_factories(filters: Vec<(String, Arc<dyn HttpFilterFactory>)>) -> Self {
        let entries = filters
            .into_iter()
            .map(|(name, factory)| Entry { name: name.into(), factory, disabled: false })
            .collect::<Vec<_>>();
        Self { entries: entries.into(), router: None }
    }

    /// One stream's filters.
    pub fn create_chain(&self) -> Vec<ChainFilter> {
        self.chain_filters().collect()
    }

    /// One stream's filters, made as they are consumed (for
    /// `FilterManager::new`, which stores them without an intermediate `Vec`).
    pub fn chain_filters(&self) -> impl ExactSizeIterator<Item = ChainFilter> + '_ {
        self.entries.iter().map(|e| ChainFilter {
            name: e.name.clone(),
            filter: e.factory.create(),
            disabled: e.disabled,
        })
    }

    /// The router's config (for mini-envoy's upstream half).
    pub fn router_config(&self) -> Option<&Arc<RouterConfig>> {
        self.router.as_ref()
    }

    /// The filter names, in order (for per-route config snapshots).
    pub fn filter_names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| &*e.name).collect()
    }
}

// ANCHOR: route_config_compiler
/// Compiles the per-route configs of the built-in HTTP filters when a route
/// table is built. As Envoy, the config's type picks the compiler (the
/// `@type` of the `typed_per_filter_config` entry):
///
/// | per-route config | compiled into |
/// | --- | --- |
/// | `CorsPolicy` | [`CorsConfig`] (origin matchers compiled) |
/// | `BasicAuthPerRoute` | [`BasicAuthRouteConfig`] (users parsed) |
/// | `LocalRateLimit` | [`Limit`] (one token bucket per route entry) |
/// | `HeaderMutationPerRoute` | [`HeaderMutationConfig`] |
/// | `HTTPFault` | `HttpFault` |
/// | `BufferPerRoute` | `BufferPerRoute` |
#[derive(Debug, Clone, Default)]
pub struct RouteConfigCompiler {
    ctx: FactoryContext,
}

impl RouteConfigCompiler {
    /// A compiler whose rate limit buckets use `ctx`'s clock.
    pub fn new(ctx: &FactoryContext) -> Self {
        Self { ctx: ctx.clone() }
    }
}

impl RouteFilterConfigCompiler for RouteConfigCompiler {
    fn compile(
        &self,
        _filter_name: &str,
        config: &PerFilterConfig,
        path: &FieldPath,
    ) -> Result<CompiledFilterConfig, ConfigError> {
        let invalid = |e: String| ConfigError::invalid(path.clone(), e);
        Ok(match config {
            PerFilterConfig::Cors(p) => Arc::new(CorsConfig::new(p).map_err(invalid)?),
            PerFilterConfig::BasicAuth(p) => {
                Arc::new(BasicAuthRouteConfig::new(p).map_err(invalid)?)
            }
            PerFilterConfig::LocalRateLimit(c) => {
                Arc::new(Limit::new(c, &self.ctx).map_err(invalid)?)
            }
            PerFilterConfig::HeaderMutation(p) => {
                Arc::new(HeaderMutationConfig::new(&p.mutations).map_err(invalid)?)
            }
            PerFilterConfig::Fault(f) => Arc::new((**f).clone()),
            PerFilterConfig::Buffer(b) => Arc::new(*b),
            PerFilterConfig::FilterConfig(_) => {
                return Err(invalid("a FilterConfig cannot wrap another FilterConfig".into()));
            }
        })
    }
}
// ANCHOR_END: route_config_compiler

/// The terminal of a network filter chain.
#[derive(Debug, Clone)]
pub enum Terminal {
    /// HTTP: the connection manager's config and its HTTP filter chain.
    HttpConnectionManager(Box<HttpConnectionManager>, FilterChainFactory),
    /// L4 proxying.
    TcpProxy(Arc<TcpProxyConfig>),
}

type NetFactory = Arc<dyn Fn() -> NetworkFilterInstance + Send + Sync>;

/// What a chain's network filters decided about a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every filter let it through: hand it to the terminal.
    Accepted,
    /// Filter `filter` (index in configured order) closed it.
    Refused {
        /// Which filter.
        filter: usize,
    },
}

/// The network filters of a listener filter chain, and its terminal.
#[derive(Clone)]
pub struct NetworkFilterChainFactory {
    filters: Vec<NetFactory>,
    /// The terminal (HCM or tcp_proxy).
    pub terminal: Terminal,
}

impl std::fmt::Debug for NetworkFilterChainFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkFilterChainFactory")
            .field("filters", &self.filters.len())
            .field("terminal", &self.terminal)
            .finish()
    }
}

impl NetworkFilterChainFactory {
    /// Builds a chain's network filters. `connection_log` adds the course's
    /// connection logging filter first. `shared` holds rate limit buckets
    /// shared by `share_key`.
    pub fn from_config(
        filters: &[NetworkFilter],
        ctx: &FactoryContext,
        shared: &SharedBuckets,
        connection_log: bool,
    ) -> Result<Self, ConfigError> {
        let path = |i: usize| FieldPath::root().field("filters").index(i);
        let mut out: Vec<NetFactory> = Vec::new();
        if connection_log {
            let (sink, time) = (ctx.log.clone(), ctx.time.clone());
            out.push(Arc::new(move || {
                NetworkFilterInstance::Dual(Box::new(ConnectionLogFilter::new(
                    sink.clone(),
                    time.clone(),
                )))
            }));
        }
        let mut terminal = None;
        for (i, f) in filters.iter().enumerate() {
            let Some(config) = &f.typed_config else {
                return Err(ConfigError::invalid(path(i).field("typed_config"), "must be set"));
            };
            if terminal.is_some() {
                return Err(ConfigError::invalid(path(i), "filters after the terminal filter"));
            }
            match config {
                NetworkFilterConfig::LocalRateLimit(c) => {
                    let c = Arc::new(
                        net::LocalRateLimitConfig::new(c, ctx, shared)
                            .map_err(|e| ConfigError::invalid(path(i).field("typed_config"), e))?,
                    );
                    out.push(Arc::new(move || {
                        NetworkFilterInstance::Read(Box::new(net::LocalRateLimitFilter::new(
                            c.clone(),
                        )))
                    }));
                }
                NetworkFilterConfig::TcpProxy(c) => {
                    let c = TcpProxyConfig::new(c)
                        .map_err(|e| ConfigError::invalid(path(i).field("typed_config"), e))?;
                    terminal = Some(Terminal::TcpProxy(Arc::new(c)));
                }
                NetworkFilterConfig::HttpConnectionManager(h) => {
                    let chain = FilterChainFactory::from_hcm(h, ctx).map_err(|mut e| {
                        let inner = e.path.take().unwrap_or_default();
                        let mut p = path(i).field("typed_config");
                        p.0.extend(inner.0);
                        e.path = Some(p);
                        e
                    })?;
                    terminal = Some(Terminal::HttpConnectionManager(h.clone(), chain));
                }
            }
        }
        let terminal = terminal.ok_or_else(|| {
            ConfigError::invalid(
                FieldPath::root().field("filters"),
                "must end with http_connection_manager or tcp_proxy",
            )
        })?;
        Ok(Self { filters: out, terminal })
    }

    /// One connection's network filters.
    pub fn create_filters(&self) -> Vec<NetworkFilterInstance> {
        self.filters.iter().map(|f| f()).collect()
    }

    /// Whether any network filter comes before the terminal.
    pub fn has_filters(&self) -> bool {
        !self.filters.is_empty()
    }

    // ANCHOR: admit
    /// Runs the filters' `on_new_connection` pass (Envoy's
    /// `initializeReadFilters`) for a connection just accepted. mini-envoy's
    /// terminals read the socket themselves, so this pass is where its
    /// non-terminal network filters act: the one the config model accepts
    /// before a terminal, `local_ratelimit`, does all its work here.
    pub fn admit(&self, conn: ConnectionInfo) -> Admission {
        if self.filters.is_empty() {
            return Admission::Accepted;
        }
        let mut manager = NetworkFilterManager::new(self.create_filters(), conn);
        manager.initialize();
        match (manager.is_open(), manager.closed_by()) {
            (true, _) => Admission::Accepted,
            (false, filter) => Admission::Refused { filter: filter.unwrap_or(0) },
        }
    }
    // ANCHOR_END: admit
}
