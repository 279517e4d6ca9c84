//! # The server: main thread, workers, listeners
//!
//! Envoy's `Server::InstanceImpl` and `ListenerManager`, on the week 2
//! threading crate:
//!
//! ```text
//!  main thread (tokio Dispatcher)          worker-0 … worker-N-1 (tokio Dispatchers)
//!  ─────────────────────────────           ──────────────────────────────────────────
//!  build Snapshot (week 1 + week 3)
//!  bind one SO_REUSEPORT socket per  ──►   accept on its own socket
//!    listener per worker                    ├─ slot.get(): this thread's Snapshot
//!  slot.set(snapshot) (week 2 TLS)   ──►    ├─ filter-chain match (week 1)
//!  admin, signals                           └─ spawn the connection (hcm / tcp_proxy)
//! ```
//!
//! Every worker owns its sockets, its connections, its load balancers and its
//! upstream pools; configuration reaches it only through the thread-local
//! slot, so the request path takes no lock. The main thread's
//! [`ListenerManager`] owns the listeners after start-up: LDS adds, replaces
//! and removes them while the server runs.

use std::cell::{OnceCell, RefCell};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use week1_core::config::bootstrap::Bootstrap;
use week1_core::config::{ConfigError, FieldPath};
use week1_core::listener::{BindOptions, ChainMatch, ConnectionInfo as ListenerConnection, bind};
use week2_threads::dispatcher::{Dispatcher, DispatcherHandle, TokioDispatcher};
use week2_threads::tls::{Instance, Slot};
use week2_threads::worker::{WorkerConfig, WorkerPool};
use week3_filters::http::ConnectionInfo;
use week3_filters::registry::Admission;
use week4_xds::drain::{DrainConfig, DrainManager, DrainOutcome, DrainStrategy};

use crate::access_log::{self, AccessLogManager};
use crate::cluster_manager::{
    ClusterManager, ClusterManagerError, ClusterMap, ClusterOrigin, OwnedResolver,
};
use crate::listener_manager::{ListenerManager, ManagerParts, StaticListener};
use crate::snapshot::{
    BuildContext, ChainTerminal, FilterChain, ListenerEntry, RouteMap, Snapshot, build_listener,
};
use crate::stats::{ListenerStats, ServerState, ServerStats, Store};
use crate::upstream::WorkerUpstreams;

/// How to run the server (Envoy's command-line options).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Worker threads (`--concurrency`).
    pub concurrency: usize,
    /// `--drain-time-s`.
    pub drain_time: Duration,
    /// `--parent-shutdown-time-s`.
    pub parent_shutdown_time: Duration,
    /// `--service-node`.
    pub service_node: Option<String>,
    /// `--service-cluster`.
    pub service_cluster: Option<String>,
    /// The command line, for `/server_info`.
    pub command_line: Vec<String>,
    /// xDS fields newer than mini-envoy's Envoy API (`--reject-unknown-dynamic-fields`,
    /// `--ignore-unknown-dynamic-fields`).
    pub unknown_dynamic_fields: UnknownDynamicFields,
    /// Runtime log levels for `/logging` (`None`: not adjustable).
    pub log_control: Option<Arc<crate::admin::logging::LogControl>>,
    /// The bootstrap as loaded, as JSON (`config::load_bootstrap_with_source`),
    /// for `/config_dump` (`None`: the dump has no `bootstrap` part and
    /// static resources show only their names).
    pub bootstrap_source: Option<serde_json::Value>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            concurrency: std::thread::available_parallelism().map_or(1, usize::from),
            drain_time: Duration::from_secs(600),
            parent_shutdown_time: Duration::from_secs(900),
            service_node: None,
            service_cluster: None,
            command_line: Vec::new(),
            unknown_dynamic_fields: UnknownDynamicFields::Warn,
            log_control: None,
            bootstrap_source: None,
        }
    }
}

/// What xDS does with fields newer than mini-envoy's Envoy API (Envoy's
/// handling of unknown fields in dynamic configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownDynamicFields {
    /// Accept the resource, log a warning, count `server.dynamic_unknown_fields`
    /// (Envoy's default).
    #[default]
    Warn,
    /// Accept the resource silently (`--ignore-unknown-dynamic-fields`).
    Ignore,
    /// NACK the response (`--reject-unknown-dynamic-fields`).
    Reject,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A socket could not be bound.
    #[error("cannot bind {what} to {address}: {source}")]
    Bind {
        /// The listener or "admin".
        what: String,
        /// Where.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Threads could not start.
    #[error("cannot start threads: {0}")]
    Threads(String),
}

impl From<ClusterManagerError> for ServerError {
    fn from(e: ClusterManagerError) -> Self {
        match e {
            ClusterManagerError::Config(e) => Self::Config(e),
            other => Self::Threads(other.to_string()),
        }
    }
}

/// Where the server listens, once started (port 0 resolved).
#[derive(Debug, Clone, Default)]
pub struct BoundAddresses {
    /// `(listener name, address)`.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The admin address.
    pub admin: Option<SocketAddr>,
}

/// A worker's state, created on the worker's thread.
struct WorkerState {
    upstreams: Rc<WorkerUpstreams>,
}

thread_local! {
    static WORKER: OnceCell<Rc<WorkerState>> = const { OnceCell::new() };
}

fn worker_state() -> Rc<WorkerState> {
    WORKER.with(|w| {
        w.get_or_init(|| Rc::new(WorkerState { upstreams: Rc::new(WorkerUpstreams::default()) }))
            .clone()
    })
}

/// Binds `count` sockets (one per worker) for a listener address; port 0 is
/// resolved by the first.
pub(crate) fn bind_all(
    what: &str,
    address: SocketAddr,
    count: usize,
    reuse_port: bool,
) -> Result<(SocketAddr, Vec<StdListener>), ServerError> {
    let err = |source| ServerError::Bind { what: what.to_string(), address, source };
    let opts = BindOptions { reuse_port, ..BindOptions::default() };
    let first = bind(address, &opts).map_err(err)?;
    let bound = first.local_addr().map_err(err)?;
    let mut sockets = vec![first];
    for _ in 1..count {
        if reuse_port {
            sockets.push(bind(bound, &opts).map_err(err)?);
        } else {
            sockets.push(sockets[0].try_clone().map_err(err)?);
        }
    }
    Ok((bound, sockets))
}

/// What the main thread starts from: the cluster manager with the static
/// clusters, the static listeners compiled and bound (one socket per
/// worker), their addresses, and the admin socket.
type Started = (ClusterManager, Vec<StaticListener>, BoundAddresses, Option<StdListener>);

/// Compiles the static configuration and binds every socket on the main
/// thread, so errors surface at start-up.
fn start_configuration(
    bootstrap: &Bootstrap,
    logs: &AccessLogManager,
    store: &Store,
    slots: (Slot<Arc<ClusterMap>>, &Slot<Arc<RouteMap>>),
    workers: usize,
    dns: &crate::dns::DnsResolvers,
) -> Result<Started, ServerError> {
    let (cluster_slot, route_slot) = slots;
    let dns = dns.clone();
    let resolver: OwnedResolver =
        Box::new(move |c, name, port| dns.resolve_blocking(c, name, port));
    let mut cluster_manager = ClusterManager::new(cluster_slot, resolver, store.clone())
        .map_err(|e| ServerError::Threads(e.to_string()))?;
    cluster_manager.add_static_clusters(bootstrap.clusters())?;
    let clusters = cluster_manager.source();
    let ctx = BuildContext {
        logs,
        clusters: &clusters,
        stats: store,
        cds: bootstrap.has_cds(),
        routes: Some(route_slot),
    };
    let listeners_at = FieldPath::root().field("static_resources").field("listeners");

    // ANCHOR: bind_sockets
    let mut addresses = BoundAddresses::default();
    let mut listeners = Vec::new();
    for (i, config) in bootstrap.listeners().iter().enumerate() {
        let mut entry = build_listener(config, &listeners_at.index(i), &ctx)?;
        let what = format!("listener {:?}", entry.name);
        let (bound, sockets) = bind_all(&what, entry.address, workers, config.reuse_port())?;
        entry.address = bound;
        addresses.listeners.push((entry.name.clone(), bound));
        listeners.push(StaticListener { config: config.clone(), entry, sockets });
    }
    // ANCHOR_END: bind_sockets
    let admin_socket = match bootstrap.admin.as_ref().and_then(|a| a.address.as_ref()) {
        Some(address) => {
            let address = address.socket_addr().ok_or_else(|| {
                ConfigError::invalid(
                    FieldPath::root().field("admin").field("address"),
                    "must be an IP socket address",
                )
            })?;
            let (bound, mut socks) = bind_all("admin", address, 1, false)?;
            addresses.admin = Some(bound);
            socks.pop()
        }
        None => None,
    };
    Ok((cluster_manager, listeners, addresses, admin_socket))
}

thread_local! {
    /// The main thread's cluster manager, once the main loop runs.
    static MAIN_CLUSTER_MANAGER: RefCell<Option<Rc<RefCell<ClusterManager>>>> =
        const { RefCell::new(None) };
    /// The main thread's listener manager, once the main loop runs.
    static MAIN_LISTENER_MANAGER: RefCell<Option<Rc<RefCell<ListenerManager>>>> =
        const { RefCell::new(None) };
}

/// The listener manager, on the main thread while the server runs (`None`
/// on any other thread): admin endpoints and shutdown read it.
pub fn main_listener_manager() -> Option<Rc<RefCell<ListenerManager>>> {
    MAIN_LISTENER_MANAGER.with(|lm| lm.borrow().clone())
}

/// The cluster manager, on the main thread while the server runs (`None` on
/// any other thread). Main-thread services (health checking, DNS refresh,
/// xDS) change clusters through it; each change reaches workers at once.
pub fn main_cluster_manager() -> Option<Rc<RefCell<ClusterManager>>> {
    MAIN_CLUSTER_MANAGER.with(|cm| cm.borrow().clone())
}

/// Who this proxy is to a management server: the bootstrap's `node`, with
/// `--service-node` / `--service-cluster` overriding it.
fn xds_node(bootstrap: &Bootstrap, options: &ServerOptions) -> week4_xds::Node {
    let node = bootstrap.node.as_ref();
    week4_xds::Node {
        id: options.service_node.clone().or_else(|| node.map(|n| n.id.clone())).unwrap_or_default(),
        cluster: options
            .service_cluster
            .clone()
            .or_else(|| node.map(|n| n.cluster.clone()))
            .unwrap_or_default(),
        user_agent_name: "mini-envoy".to_string(),
        user_agent_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Global connection ids, as Envoy's `connection_id`.
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Runs the server until SIGINT/SIGTERM or `/quitquitquit`. `on_ready` is
/// called on the main thread once every listener accepts.
pub fn run(
    bootstrap: &Bootstrap,
    options: &ServerOptions,
    on_ready: impl FnOnce(&BoundAddresses) + Send + 'static,
) -> Result<(), ServerError> {
    let logs = Arc::new(AccessLogManager::new());
    let workers = options.concurrency.max(1);
    let threads = |e: &dyn std::fmt::Display| ServerError::Threads(e.to_string());

    // ANCHOR: publish_snapshot
    let main = TokioDispatcher::new("main_thread").map_err(|e| threads(&e))?;
    let mut pool = WorkerPool::start_tokio(&WorkerConfig::new(workers), main.handle())
        .map_err(|e| threads(&e))?;
    let tls = Instance::new(main.handle());
    for handle in pool.handles() {
        tls.register_thread(handle).map_err(|e| threads(&e))?;
    }
    let cluster_slot: Slot<Arc<ClusterMap>> = tls.allocate_slot().map_err(|e| threads(&e))?;
    let slot: Slot<Arc<Snapshot>> = tls.allocate_slot().map_err(|e| threads(&e))?;
    let route_slot: Slot<Arc<RouteMap>> = tls.allocate_slot().map_err(|e| threads(&e))?;
    let store = Store::default();
    let slots = (cluster_slot.clone(), &route_slot);
    let dns = crate::dns::DnsResolvers::new(bootstrap.dns_resolver(), &store);
    let started = start_configuration(bootstrap, &logs, &store, slots, workers, &dns);
    let (cluster_manager, static_listeners, addresses, admin_socket) = match started {
        Ok(started) => started,
        Err(e) => {
            let _ = pool.stop();
            return Err(e);
        }
    };
    // The main thread's listener manager publishes the snapshot (below);
    // every listener version drains on its own: once draining, every
    // response says `Connection: close`, as Envoy's immediate drain strategy.
    let drain_config =
        DrainConfig { drain_time: options.drain_time, strategy: DrainStrategy::Immediate };
    let manager_parts = ManagerParts {
        workers: pool.handles(),
        slot: slot.clone(),
        route_slot,
        logs: logs.clone(),
        clusters: cluster_manager.source(),
        store: store.clone(),
        cds: bootstrap.has_cds(),
        drain_config,
    };
    // ANCHOR_END: publish_snapshot

    for w in 0..workers {
        let cluster_slot = cluster_slot.clone();
        pool.post(w, move || {
            let Some(worker) = TokioDispatcher::current() else { return };
            let state = worker_state();
            let _ = worker.spawn_local(access_log::run_flusher(Duration::from_secs(1)));
            let sweep_slot = cluster_slot.clone();
            let _ = worker.spawn_local(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    if let Ok(clusters) = sweep_slot.get() {
                        state.upstreams.sweep(&clusters);
                    }
                }
            });
        })
        .map_err(|e| ServerError::Threads(e.to_string()))?;
    }

    // The main thread: the cluster manager, xDS, admin and signals.
    let cluster_manager = Mutex::new(Some(cluster_manager));
    let xds_bootstrap = bootstrap.clone();
    let xds_node = xds_node(bootstrap, options);
    let xds_unknown_fields = options.unknown_dynamic_fields;
    let (xds_stopper, xds_stop) = tokio::sync::watch::channel(false);
    let handle = main.handle();
    let server_stats = Arc::new(ServerStats::new(&store));
    server_stats.concurrency.set(workers as i64);
    server_stats.version.set(
        bootstrap
            .stats_server_version_override
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or_else(ServerStats::version_number),
    );
    server_stats.set_state(ServerState::Initializing);
    // /clusters runs on the main thread, where the cluster manager lives.
    let cluster_views: crate::admin::clusters::ClusterProvider = Arc::new(|| {
        let Some(manager) = main_cluster_manager() else { return Vec::new() };
        let manager = manager.borrow();
        manager
            .active()
            .map(|c| crate::admin::clusters::ClusterView {
                info: c.entry.info.clone(),
                priority_set: c.entry.priority_set.clone(),
                added_via_api: c.origin != ClusterOrigin::Static,
                outlier: crate::health::main_health()
                    .and_then(|h| h.success_rate_summaries(&c.entry.info.name)),
            })
            .collect()
    });
    let admin_state = Arc::new(
        crate::admin::AdminState::new(
            options.clone(),
            addresses.clone(),
            store.clone(),
            server_stats.clone(),
        )
        .with_clusters(cluster_views)
        .with_listener_drains(Arc::new(|| {
            main_listener_manager().map(|lm| lm.borrow().listener_drains()).unwrap_or_default()
        })),
    );
    let static_listeners = Mutex::new(Some(static_listeners));
    let manager_parts = Mutex::new(Some(manager_parts));
    let ready_addresses = addresses.clone();
    let started_at = std::time::SystemTime::now();
    let bootstrap_source = options.bootstrap_source.clone();
    let dump_bootstrap = bootstrap.clone();
    main.post(move || {
        let Some(main) = TokioDispatcher::current() else { return };
        // Main-thread services (health checking, xDS) share the manager.
        let Some(cluster_manager) = cluster_manager.lock().take() else { return };
        let cluster_manager = Rc::new(RefCell::new(cluster_manager));
        MAIN_CLUSTER_MANAGER.with(|cm| *cm.borrow_mut() = Some(cluster_manager.clone()));
        // The listeners: static ones now, LDS ones as they come.
        let Some(parts) = manager_parts.lock().take() else { return };
        let listeners = ListenerManager::new(parts);
        MAIN_LISTENER_MANAGER.with(|lm| *lm.borrow_mut() = Some(listeners.clone()));
        // Health checks and outlier detection run on this thread's LocalSet.
        let for_health = cluster_manager.clone();
        let (ready_stats, ready_addresses) = (server_stats.clone(), ready_addresses.clone());
        let static_listeners = static_listeners.lock().take().unwrap_or_default();
        let warming_listeners = listeners.clone();
        let _ = main.spawn_local(async move {
            let health = crate::health::start(&for_health);
            crate::dns::start(&for_health, dns);
            // ANCHOR: warming
            // The static listeners (bound already: connections wait in the
            // backlog) accept once the clusters warmed, as Envoy's workers
            // start listening after the cluster manager initialized.
            health.initial_checks_done().await;
            warming_listeners.borrow_mut().add_static(static_listeners);
            ready_stats.set_state(ServerState::Live);
            on_ready(&ready_addresses);
            // ANCHOR_END: warming
        });
        // CDS, EDS, LDS and RDS (file watches, the ADS stream) until the server exits.
        let dynamic = crate::xds::DynamicClusters::new(cluster_manager.clone());
        // /config_dump: each part registered with the main thread's tracker.
        let tracker = crate::config_dump::ConfigTracker::new();
        crate::config_dump::set_main_tracker(Some(tracker.clone()));
        let dump_owners = crate::config_dump::parts::register(
            &tracker,
            bootstrap_source,
            &dump_bootstrap,
            started_at,
            &dynamic,
        );
        // The parts stay registered while the main loop runs.
        let _ = main.spawn_local(async move {
            let _owners = dump_owners;
            std::future::pending::<()>().await;
        });
        let unknown_fields = (xds_unknown_fields, server_stats.dynamic_unknown_fields.clone());
        if let Err(e) = crate::xds::start(
            &xds_bootstrap,
            &dynamic,
            &listeners,
            xds_node,
            unknown_fields,
            xds_stop,
        ) {
            tracing::error!("dynamic_resources: {e}");
            handle.exit();
            return;
        }
        if let Some(socket) = admin_socket {
            let handle = handle.clone();
            let state = admin_state.clone();
            let _ = main.spawn_local(async move {
                match tokio::net::TcpListener::from_std(socket) {
                    Ok(l) => crate::admin::serve(l, state, handle).await,
                    Err(e) => tracing::error!("admin: {e}"),
                }
            });
        }
        // server.uptime, refreshed every second (and on every admin read).
        let uptime_state = admin_state.clone();
        let _ = main.spawn_local(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                uptime_state.refresh_server_stats();
            }
        });
        let handle = handle.clone();
        let _ = main.spawn_local(graceful_shutdown(handle));
    })
    .map_err(|e| ServerError::Threads(e.to_string()))?;

    main.run().map_err(|e| ServerError::Threads(e.to_string()))?;
    let _ = xds_stopper.send(true);
    // Drop the managers (and their slots) before thread-locals are torn down.
    MAIN_LISTENER_MANAGER.with(|lm| lm.borrow_mut().take());
    MAIN_CLUSTER_MANAGER.with(|cm| cm.borrow_mut().take());
    crate::config_dump::set_main_tracker(None);
    // Flush access logs on every worker, then stop.
    let _ = pool.post_to_all(access_log::flush_thread_buffers);
    let _ = pool.stop();
    access_log::flush_thread_buffers();
    Ok(())
}

async fn wait_for_shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

// ANCHOR: graceful_shutdown
/// SIGTERM / SIGINT: drain every listener (stop accepting, responses say
/// `Connection: close`, idle connections close after `drain_timeout`), wait
/// for open connections (of every listener version, old ones included) up
/// to `--drain-time-s`, then stop the main loop (exit 0).
async fn graceful_shutdown(main: DispatcherHandle) {
    wait_for_shutdown_signal().await;
    let (sockets, versions) = match main_listener_manager() {
        Some(lm) => {
            let mut lm = lm.borrow_mut();
            lm.shut_down();
            (lm.listener_drains(), lm.version_drains())
        }
        None => Default::default(),
    };
    let open: usize = versions.iter().map(|(_, d)| d.active_connections()).sum();
    let drain_time = sockets.first().map(|d| d.drain.config().drain_time).unwrap_or_default();
    tracing::info!("shutting down: draining {open} connections for up to {drain_time:?}");
    let now = std::time::Instant::now();
    for d in &sockets {
        d.drain.start_drain_sequence(now);
    }
    for (name, d) in &versions {
        if let DrainOutcome::ForcedClose { remaining } = d.drain().await {
            tracing::warn!("listener {name}: drain time over, closing {remaining} connections");
        }
    }
    tracing::info!("drained");
    main.exit();
}

/// A listener's drain, for SIGTERM and `/drain_listeners`.
#[derive(Debug, Clone)]
pub struct ListenerDrain {
    /// The listener's name.
    pub name: String,
    /// Not `traffic_direction: OUTBOUND` (what `?inboundonly` drains).
    pub inbound: bool,
    /// Its drain manager; its connections are tracked here.
    pub drain: DrainManager,
}
// ANCHOR_END: graceful_shutdown

// ANCHOR: accept_loop
/// One worker's accept loop for one listener socket, until the socket's
/// drain stops accepting. Each connection runs the listener version current
/// in this worker's snapshot, and is tracked by that version's drain.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    socket: AcceptSocket,
    slot: Slot<Arc<Snapshot>>,
    state: Rc<WorkerState>,
) {
    let AcceptSocket { name, address, drain: accepting, stats } = socket;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = accepting.stopped_accepting() => {
                tracing::debug!("listener {name}: draining, no longer accepting");
                return;
            }
        };
        let (io, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("listener {name}: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(snapshot) = slot.get() else { continue };
        let current = snapshot.listeners.iter().find(|l| l.name == name && l.address == address);
        let Some(entry) = current.cloned() else { continue };
        let drain = &entry.drain;
        let local = io.local_addr().unwrap_or(entry.address);
        stats.downstream_cx_total.inc();
        let Some(chain) = select_chain(&entry, local, remote) else {
            tracing::debug!("listener {name}: no filter chain matches {remote}");
            stats.no_filter_chain_match.inc();
            stats.downstream_cx_destroy.inc();
            continue;
        };
        let connection = ConnectionInfo {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            remote_address: Some(remote),
            local_address: Some(local),
        };
        if let Admission::Refused { filter } = chain.network.admit(connection.clone()) {
            // A network filter (the rate limit) closed it: dropping `io` closes.
            if let Some(Some(refused)) = chain.refused.get(filter) {
                refused.inc();
            }
            stats.downstream_cx_destroy.inc();
            continue;
        }
        stats.downstream_cx_active.inc();
        let stats = stats.clone();
        let upstreams = state.upstreams.clone();
        let limit = entry.buffer_limit;
        match chain.terminal {
            ChainTerminal::Http(http) => {
                let guard = Some(drain.track());
                tokio::task::spawn_local(async move {
                    crate::hcm::serve_connection(io, connection, http, upstreams, limit, guard)
                        .await;
                    stats.connection_closed();
                });
            }
            ChainTerminal::Tcp(tcp) => {
                let guard = Some(drain.track());
                tokio::task::spawn_local(async move {
                    crate::tcp_proxy::serve_connection(
                        io, connection, tcp, upstreams, limit, guard,
                    )
                    .await;
                    stats.connection_closed();
                });
            }
        }
    }
}
// ANCHOR_END: accept_loop

/// What a worker's accept loop needs of its socket.
#[derive(Debug, Clone)]
struct AcceptSocket {
    name: String,
    address: SocketAddr,
    /// The socket's drain: accepting stops when it does.
    drain: DrainManager,
    stats: Arc<ListenerStats>,
}

/// Starts accepting on `sockets` (one per worker, in worker order).
pub(crate) fn start_accept_loops(
    workers: &[DispatcherHandle],
    name: &str,
    address: SocketAddr,
    drain: &DrainManager,
    stats: &Arc<ListenerStats>,
    sockets: Vec<StdListener>,
    slot: &Slot<Arc<Snapshot>>,
) -> Result<(), String> {
    for (worker, socket) in workers.iter().zip(sockets) {
        let accept = AcceptSocket {
            name: name.to_string(),
            address,
            drain: drain.clone(),
            stats: stats.clone(),
        };
        let slot = slot.clone();
        worker
            .post(move || {
                let Some(worker) = TokioDispatcher::current() else { return };
                let state = worker_state();
                let spawned = worker.spawn_local(async move {
                    match tokio::net::TcpListener::from_std(socket) {
                        Ok(listener) => accept_loop(listener, accept, slot, state).await,
                        Err(e) => tracing::error!("listener {}: {e}", accept.name),
                    }
                });
                if let Err(e) = spawned {
                    tracing::error!("cannot start a listener: {e}");
                }
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

// ANCHOR: select_chain
fn select_chain(
    entry: &ListenerEntry,
    local: SocketAddr,
    remote: SocketAddr,
) -> Option<FilterChain> {
    let conn = ListenerConnection::new(local, remote);
    match entry.matcher.select(&conn) {
        ChainMatch::Chain(i) => entry.chains.get(i).cloned(),
        ChainMatch::Default => entry.default_chain.clone(),
        ChainMatch::NoMatch => None,
    }
}
// ANCHOR_END: select_chain
