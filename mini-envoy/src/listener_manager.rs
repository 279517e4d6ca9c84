//! # The listener manager: static and LDS listeners at runtime
//!
//! Envoy's `ListenerManagerImpl` on the main thread. Every listener version
//! is compiled into a [`ListenerEntry`] with its own drain (a child of its
//! socket's), and the manager publishes the active ones to workers as a
//! [`Snapshot`] through the thread-local slot:
//!
//! ```text
//!  LDS update ─► compile all (reject: nothing changes) ─► bind new addresses
//!     │                                                   (reuse the socket of an unchanged address)
//!     ├─ warming: until its RDS routes arrive (or initial_fetch_timeout)
//!     └─ active:  slot.set(Snapshot) ─► workers' accept loops pick the new version
//!                 old version: drain (Connection: close, idle ones close, the rest at drain time)
//!                 removed / moved address: the socket stops accepting, its connections drain
//! ```
//!
//! A socket is bound once per worker (`SO_REUSEPORT`) and kept as long as a
//! version of its listener uses the same address, so an update never refuses
//! a connection. Its drain ([`BoundSocket::drain`]) stops the accept loops;
//! each version's drain is a child of it, so SIGTERM and `/drain_listeners`
//! (which drain the socket) reach every version on it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::task::JoinHandle;

use week1_core::config::bootstrap::Resource;
use week1_core::config::listener::{Listener, TrafficDirection};
use week1_core::config::{ConfigError, FieldPath};
use week2_threads::dispatcher::DispatcherHandle;
use week2_threads::tls::Slot;
use week4_xds::Update;
use week4_xds::drain::{DrainConfig, DrainManager};

use crate::access_log::AccessLogManager;
use crate::cluster_manager::ClusterSource;
use crate::rds::RouteConfigs;
use crate::server::{ListenerDrain, ServerError, bind_all, start_accept_loops};
use crate::snapshot::{BuildContext, ListenerEntry, RouteMap, Snapshot, build_listener};
use crate::stats::{Counter, Gauge, ListenerStats, Store};
use crate::xds::UpdateCounters;

/// Where a listener came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerOrigin {
    /// `static_resources.listeners`.
    Static,
    /// LDS.
    Dynamic,
}

/// A bound address: one socket per worker, its accept loops and their stats.
#[derive(Debug)]
pub struct BoundSocket {
    /// The address the configuration asked for (port 0 stays 0 here).
    pub configured: SocketAddr,
    /// The address bound.
    pub address: SocketAddr,
    /// Stops the accept loops; every listener version on this socket drains
    /// with it.
    pub drain: DrainManager,
    /// `listener.<address>.*`.
    pub stats: Arc<ListenerStats>,
    /// Sockets not yet handed to workers (until the listener first activates).
    pending: RefCell<Option<Vec<StdListener>>>,
}

/// One listener version the manager holds.
#[derive(Debug, Clone)]
pub struct ManagedListener {
    /// `name`.
    pub name: String,
    /// Static or LDS.
    pub origin: ListenerOrigin,
    /// The resource (for `/config_dump`).
    pub config: Arc<Listener>,
    /// The JSON it came in (LDS; `None` for static ones, whose JSON is the
    /// bootstrap's), for `/config_dump`.
    pub source: Option<serde_json::Value>,
    /// The `version_info` it came with (empty for static ones).
    pub version_info: String,
    /// When it was added or last updated.
    pub last_updated: SystemTime,
    /// What workers run.
    pub entry: Arc<ListenerEntry>,
    /// Its socket.
    pub socket: Rc<BoundSocket>,
    /// Not `traffic_direction: OUTBOUND`.
    pub inbound: bool,
    /// While warming: when it activates without its routes.
    warm_deadline: Option<Instant>,
}

/// `listener_manager.*` stats (Envoy names).
#[derive(Clone)]
struct ManagerStats {
    added: Counter,
    modified: Counter,
    removed: Counter,
    active: Gauge,
    warming: Gauge,
    draining: Gauge,
}

/// The main thread's listeners. See the module docs.
pub struct ListenerManager {
    me: Weak<RefCell<ListenerManager>>,
    workers: Vec<DispatcherHandle>,
    slot: Slot<Arc<Snapshot>>,
    /// RDS routes, shared by every HCM that names them.
    pub routes: RouteConfigs,
    logs: Arc<AccessLogManager>,
    clusters: ClusterSource,
    store: Store,
    cds: bool,
    /// `--drain-time-s` for replaced and removed listeners.
    drain_config: DrainConfig,
    active: Vec<ManagedListener>,
    warming: Vec<ManagedListener>,
    /// Old versions still draining (for shutdown and `/config_dump`).
    draining: Rc<RefCell<Vec<ManagedListener>>>,
    stats: ManagerStats,
    /// `listener_manager.lds.*`.
    pub lds: UpdateCounters,
    shutting_down: bool,
    /// Route file watches, by path.
    pub(crate) rds_files: BTreeMap<String, JoinHandle<()>>,
}

/// Checks LDS responses before they are ACKed, off the manager (the ADS
/// client's handler must be `Send`).
pub struct LdsValidator {
    logs: Arc<AccessLogManager>,
    clusters: ClusterSource,
    store: Store,
    cds: bool,
    routes: Slot<Arc<RouteMap>>,
    static_names: BTreeSet<String>,
}

impl LdsValidator {
    /// Whether `resources` would be accepted as an LDS update.
    pub fn validate(&self, resources: &[Resource]) -> Result<(), String> {
        let ctx = BuildContext {
            logs: &self.logs,
            clusters: &self.clusters,
            stats: &self.store,
            cds: self.cds,
            routes: Some(&self.routes),
        };
        validate_lds(resources, &self.static_names, &ctx).map(|_| ())
    }
}

impl std::fmt::Debug for ListenerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.active.iter().map(|l| l.name.as_str()).collect();
        f.debug_struct("ListenerManager").field("active", &names).finish_non_exhaustive()
    }
}

/// What the listener manager is built from.
pub struct ManagerParts {
    /// The workers (accept loops are posted to them).
    pub workers: Vec<DispatcherHandle>,
    /// The listener snapshot slot.
    pub slot: Slot<Arc<Snapshot>>,
    /// The RDS route slot.
    pub route_slot: Slot<Arc<RouteMap>>,
    /// Access log sinks.
    pub logs: Arc<AccessLogManager>,
    /// The clusters.
    pub clusters: ClusterSource,
    /// The stats store.
    pub store: Store,
    /// Whether CDS is configured.
    pub cds: bool,
    /// The listener drain settings.
    pub drain_config: DrainConfig,
}

/// A static listener, compiled and bound by the server at start-up.
pub struct StaticListener {
    /// The resource.
    pub config: Listener,
    /// Compiled (its address is the bound one).
    pub entry: ListenerEntry,
    /// One socket per worker.
    pub sockets: Vec<StdListener>,
}

impl ListenerManager {
    /// A manager with no listeners.
    pub fn new(parts: ManagerParts) -> Rc<RefCell<Self>> {
        let root = parts.store.root().scope("listener_manager");
        let stats = ManagerStats {
            added: root.counter("listener_added"),
            modified: root.counter("listener_modified"),
            removed: root.counter("listener_removed"),
            active: root.gauge("total_listeners_active"),
            warming: root.gauge("total_listeners_warming"),
            draining: root.gauge("total_listeners_draining"),
        };
        let lds = UpdateCounters::new(&root.scope("lds"));
        Rc::new_cyclic(|me| {
            RefCell::new(Self {
                me: me.clone(),
                workers: parts.workers,
                slot: parts.slot,
                routes: RouteConfigs::new(parts.route_slot, parts.store.clone()),
                logs: parts.logs,
                clusters: parts.clusters,
                store: parts.store,
                cds: parts.cds,
                drain_config: parts.drain_config,
                active: Vec::new(),
                warming: Vec::new(),
                draining: Rc::default(),
                stats,
                lds,
                shutting_down: false,
                rds_files: BTreeMap::new(),
            })
        })
    }

    /// Adds the static listeners (already bound) and starts them.
    pub fn add_static(&mut self, listeners: Vec<StaticListener>) {
        let now = SystemTime::now();
        for l in listeners {
            let address = l.entry.address;
            let configured = socket_address(&l.config).unwrap_or(address);
            let socket = self.socket(configured, address, l.sockets);
            let managed = self.manage(l.config, l.entry, socket, ListenerOrigin::Static, "", now);
            self.warm_or_activate(managed);
        }
    }

    fn socket(
        &self,
        configured: SocketAddr,
        address: SocketAddr,
        sockets: Vec<StdListener>,
    ) -> Rc<BoundSocket> {
        Rc::new(BoundSocket {
            configured,
            address,
            drain: DrainManager::new(self.drain_config),
            stats: Arc::new(ListenerStats::new(&self.store, address)),
            pending: RefCell::new(Some(sockets)),
        })
    }

    fn manage(
        &mut self,
        config: Listener,
        mut entry: ListenerEntry,
        socket: Rc<BoundSocket>,
        origin: ListenerOrigin,
        version_info: &str,
        now: SystemTime,
    ) -> ManagedListener {
        entry.address = socket.address;
        entry.drain = socket.drain.child();
        let mut deadline: Option<Instant> = None;
        for r in &entry.rds {
            self.routes.register(&r.name, &r.stat_prefix);
            let timeout = r.source.initial_fetch_timeout();
            if !timeout.is_zero() {
                let at = Instant::now() + timeout;
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
        }
        ManagedListener {
            name: config.name.clone(),
            origin,
            inbound: config.traffic_direction != TrafficDirection::Outbound,
            config: Arc::new(config),
            source: None,
            version_info: version_info.to_string(),
            last_updated: now,
            entry: Arc::new(entry),
            socket,
            warm_deadline: deadline,
        }
    }

    /// The active listeners, in order.
    pub fn active(&self) -> &[ManagedListener] {
        &self.active
    }

    /// Listeners waiting for their routes.
    pub fn warming(&self) -> &[ManagedListener] {
        &self.warming
    }

    /// Old versions still draining (Envoy's `draining_state`).
    pub fn draining(&self) -> Vec<ManagedListener> {
        self.draining.borrow().clone()
    }

    /// The route configurations the active and warming listeners read from
    /// files: `(path, source)` pairs, deduplicated.
    pub fn rds_sources(&self) -> Vec<week1_core::config::config_source::ConfigSource> {
        let mut out = Vec::new();
        for l in self.active.iter().chain(&self.warming) {
            for r in &l.entry.rds {
                if !out.contains(&r.source) {
                    out.push(r.source.clone());
                }
            }
        }
        out
    }

    /// A validator of LDS updates against the current static listeners.
    pub fn validator(&self) -> LdsValidator {
        LdsValidator {
            logs: self.logs.clone(),
            clusters: self.clusters.clone(),
            store: self.store.clone(),
            cds: self.cds,
            routes: self.routes.slot().clone(),
            static_names: self.static_names(),
        }
    }

    /// The route configuration names read from the file at `path`.
    pub fn rds_names_from(&self, path: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for l in self.active.iter().chain(&self.warming) {
            for r in &l.entry.rds {
                if r.source.file_path() == Some(path) && !out.contains(&r.name) {
                    out.push(r.name.clone());
                }
            }
        }
        out
    }

    /// The drains `/drain_listeners` and SIGTERM act on: each active
    /// listener's socket.
    pub fn listener_drains(&self) -> Vec<ListenerDrain> {
        self.active
            .iter()
            .map(|l| ListenerDrain {
                name: l.name.clone(),
                inbound: l.inbound,
                drain: l.socket.drain.clone(),
            })
            .collect()
    }

    /// Every listener version's own drain (active and draining), for the
    /// server's shutdown to wait on.
    pub fn version_drains(&self) -> Vec<(String, DrainManager)> {
        let mut out: Vec<(String, DrainManager)> =
            self.active.iter().map(|l| (l.name.clone(), l.entry.drain.clone())).collect();
        out.extend(self.draining.borrow().iter().map(|l| (l.name.clone(), l.entry.drain.clone())));
        out
    }

    /// The server is shutting down: LDS changes nothing from now on.
    pub fn shut_down(&mut self) {
        self.shutting_down = true;
    }

    fn static_names(&self) -> BTreeSet<String> {
        self.active
            .iter()
            .chain(&self.warming)
            .filter(|l| l.origin == ListenerOrigin::Static)
            .map(|l| l.name.clone())
            .collect()
    }

    fn build_context(&self) -> BuildContext<'_> {
        BuildContext {
            logs: &self.logs,
            clusters: &self.clusters,
            stats: &self.store,
            cds: self.cds,
            routes: Some(self.routes.slot()),
        }
    }

    /// Checks an LDS update without changing anything: every resource a
    /// listener that compiles, names unique and not static.
    pub fn validate(
        &self,
        resources: &[Resource],
    ) -> Result<Vec<(Listener, ListenerEntry)>, String> {
        validate_lds(resources, &self.static_names(), &self.build_context())
    }

    /// Applies an LDS update (added/changed listeners, removed names), all or
    /// nothing; counts it.
    /// `sources` is each resource's JSON, by name (for `/config_dump`).
    pub fn apply_lds(
        &mut self,
        update: &Update<Resource>,
        sources: &week4_xds::file::Sources,
    ) -> Result<(), String> {
        if self.shutting_down {
            return Ok(());
        }
        let result = self.try_apply_lds(update, sources);
        self.lds.record(&result, &update.version_info);
        match &result {
            Ok(()) => tracing::info!(version = %update.version_info, "LDS update applied"),
            Err(e) => tracing::warn!(version = %update.version_info, "LDS update rejected: {e}"),
        }
        self.refresh_gauges();
        result
    }

    /// Counts an LDS file that could not be read as a rejected update.
    pub fn reject_lds(&mut self, error: &str) {
        self.lds.record(&Err(error.to_string()), "");
        tracing::warn!("LDS update rejected: {error}");
    }

    fn current(&self, name: &str) -> Option<&ManagedListener> {
        let warming = self.warming.iter().find(|l| l.name == name);
        warming.or_else(|| self.active.iter().find(|l| l.name == name))
    }

    // ANCHOR: apply_lds
    fn try_apply_lds(
        &mut self,
        update: &Update<Resource>,
        sources: &week4_xds::file::Sources,
    ) -> Result<(), String> {
        let compiled = self.validate(&update.resources)?;
        // Unchanged listeners are left alone (Envoy compares the config hash).
        let changed: Vec<(Listener, ListenerEntry)> = compiled
            .into_iter()
            .filter(|(l, _)| self.current(&l.name).is_none_or(|c| *c.config != *l))
            .collect();
        for name in &update.removed {
            if self.static_names().contains(name) {
                return Err(format!("cannot remove static listener {name:?}"));
            }
        }
        // Bind what needs a new socket before anything changes.
        let workers = self.workers.len();
        let mut sockets = Vec::new();
        for (l, _) in &changed {
            let configured = socket_address(l).ok_or("listener without an IP address")?;
            let reuse = self.current(&l.name).filter(|c| c.socket.configured == configured);
            match reuse {
                Some(c) => sockets.push(c.socket.clone()),
                None => {
                    let what = format!("listener {:?}", l.name);
                    let (bound, socks) = bind_all(&what, configured, workers, l.reuse_port())
                        .map_err(|e: ServerError| e.to_string())?;
                    sockets.push(self.socket(configured, bound, socks));
                }
            }
        }
        let now = SystemTime::now();
        for ((config, entry), socket) in changed.into_iter().zip(sockets) {
            let existed = self.current(&config.name).is_some();
            let managed = self.manage(
                config,
                entry,
                socket,
                ListenerOrigin::Dynamic,
                &update.version_info,
                now,
            );
            let mut managed = managed;
            managed.source = sources.get(&managed.name).cloned();
            if existed {
                self.stats.modified.inc();
            } else {
                self.stats.added.inc();
            }
            tracing::info!("LDS: listener {} on {}", managed.name, managed.socket.address);
            self.warm_or_activate(managed);
        }
        let mut changed_active = false;
        for name in &update.removed {
            self.warming.retain(|l| l.name != *name);
            if let Some(i) = self.active.iter().position(|l| l.name == *name) {
                let old = self.active.remove(i);
                self.stats.removed.inc();
                self.drain_version(&old, true);
                changed_active = true;
            }
        }
        if changed_active {
            self.publish();
        }
        Ok(())
    }
    // ANCHOR_END: apply_lds

    /// A listener version whose routes are all here activates now; otherwise
    /// it warms (the previous version, if any, keeps serving).
    fn warm_or_activate(&mut self, l: ManagedListener) {
        self.warming.retain(|w| w.name != l.name);
        let ready = l.entry.rds.iter().all(|r| self.routes.has(&r.name));
        if ready || l.warm_deadline.is_some_and(|d| d <= Instant::now()) {
            self.activate(l);
            self.publish_and_start();
            return;
        }
        if let Some(deadline) = l.warm_deadline {
            self.arm_warming_timer(deadline);
        }
        tracing::info!(listener = %l.name, "warming until its routes arrive");
        self.warming.push(l);
        self.refresh_gauges();
    }

    fn arm_warming_timer(&self, deadline: Instant) {
        let me = self.me.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep_until(deadline.into()).await;
            if let Some(me) = me.upgrade() {
                me.borrow_mut().check_warming();
            }
        });
    }

    /// Activates warming listeners whose routes arrived (or whose initial
    /// fetch timed out: they serve, answering 404 until routes arrive).
    pub fn check_warming(&mut self) {
        let now = Instant::now();
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.warming).into_iter().partition(|l| {
                l.entry.rds.iter().all(|r| self.routes.has(&r.name))
                    || l.warm_deadline.is_some_and(|d| d <= now)
            });
        self.warming = waiting;
        if ready.is_empty() {
            return;
        }
        for l in ready {
            if l.entry.rds.iter().any(|r| !self.routes.has(&r.name)) {
                tracing::warn!(listener = %l.name, "initial fetch timed out: serving without routes");
            }
            self.activate(l);
        }
        self.publish_and_start();
    }

    fn activate(&mut self, l: ManagedListener) {
        match self.active.iter().position(|a| a.name == l.name) {
            Some(i) => {
                let old = std::mem::replace(&mut self.active[i], l);
                let moved = !Rc::ptr_eq(&old.socket, &self.active[i].socket);
                self.drain_version(&old, moved);
            }
            None => self.active.push(l),
        }
    }

    // ANCHOR: drain_version
    /// Drains an old version: `Connection: close` on its next responses,
    /// idle ones close after `drain_timeout`, the rest are closed at the
    /// drain time. With
    /// `close_socket`, its socket stops accepting too.
    fn drain_version(&mut self, old: &ManagedListener, close_socket: bool) {
        let now = Instant::now();
        if close_socket {
            old.socket.drain.start_drain_sequence(now);
        }
        let drain = old.entry.drain.clone();
        drain.start_drain_sequence(now);
        let name = old.name.clone();
        self.draining.borrow_mut().push(old.clone());
        self.stats.draining.inc();
        let (draining, gauge) = (Rc::downgrade(&self.draining), self.stats.draining.clone());
        tokio::task::spawn_local(async move {
            let outcome = drain.drain().await;
            tracing::info!(listener = %name, "old listener version drained: {outcome:?}");
            gauge.dec();
            if let Some(d) = draining.upgrade() {
                d.borrow_mut().retain(|l| l.entry.drain.active_connections() > 0);
            }
        });
    }
    // ANCHOR_END: drain_version

    /// Publishes the active listeners, then starts the accept loops of new
    /// sockets (after the snapshot, so a worker finds the listener).
    fn publish_and_start(&mut self) {
        self.publish();
        for l in &self.active {
            if let Some(sockets) = l.socket.pending.borrow_mut().take() {
                let socket = &l.socket;
                let started = start_accept_loops(
                    &self.workers,
                    &l.name,
                    socket.address,
                    &socket.drain,
                    &socket.stats,
                    sockets,
                    &self.slot,
                );
                if let Err(e) = started {
                    tracing::error!(listener = %l.name, "cannot start accepting: {e}");
                }
            }
        }
        self.refresh_gauges();
    }

    fn publish(&mut self) {
        let snapshot =
            Arc::new(Snapshot { listeners: self.active.iter().map(|l| l.entry.clone()).collect() });
        if let Err(e) = self.slot.set(move || snapshot.clone()) {
            tracing::error!("cannot publish listeners: {e}");
        }
    }

    fn refresh_gauges(&self) {
        self.stats.active.set(self.active.len() as i64);
        self.stats.warming.set(self.warming.len() as i64);
    }

    /// Applies an RDS update (`sources`: each route configuration's JSON),
    /// then activates listeners it warmed.
    pub fn apply_rds(
        &mut self,
        update: &Update<Resource>,
        sources: &week4_xds::file::Sources,
    ) -> Result<(), String> {
        self.routes.apply(update, sources)?;
        self.check_warming();
        Ok(())
    }
}

/// Checks an LDS update: listeners only, each compiling, names unique, none
/// the name of a static listener. Returns them compiled.
pub fn validate_lds(
    resources: &[Resource],
    static_names: &BTreeSet<String>,
    ctx: &BuildContext<'_>,
) -> Result<Vec<(Listener, ListenerEntry)>, String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let at = FieldPath::root().field("resources").index(i);
        let Resource::Listener(l) = r else {
            return Err(format!("{at}: not a Listener"));
        };
        if !seen.insert(l.name.as_str()) {
            return Err(format!("{at}.name: duplicate listener {:?}", l.name));
        }
        if static_names.contains(&l.name) {
            return Err(format!("{at}.name: {:?} is a static listener", l.name));
        }
        let entry = build_listener(l, &at, ctx).map_err(|e: ConfigError| e.to_string())?;
        out.push(((**l).clone(), entry));
    }
    Ok(out)
}

fn socket_address(l: &Listener) -> Option<SocketAddr> {
    l.address.as_ref().and_then(|a| a.socket_addr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use week1_core::config::bootstrap::DiscoveryResponse;
    use week2_threads::dispatcher::{Dispatcher, TokioDispatcher};
    use week2_threads::tls::Instance;

    fn resources(yaml: &str) -> Vec<Resource> {
        let resp: DiscoveryResponse =
            week1_core::config::load_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        resp.resources
    }

    fn listener(name: &str, rds: bool) -> String {
        let routes = if rds {
            "rds: { route_config_name: local, config_source: { ads: {} } }".to_string()
        } else {
            "route_config: { virtual_hosts: [] }".to_string()
        };
        format!(
            r#"
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: {name}
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: {name}
        {routes}
        http_filters:
        - name: envoy.filters.http.router
          typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
        )
    }

    fn update(version: &str, resources: Vec<Resource>, removed: &[&str]) -> Update<Resource> {
        Update {
            type_url: week4_xds::TypeUrl::Listener,
            version_info: version.into(),
            resources,
            removed: removed.iter().map(|r| r.to_string()).collect(),
            warming: Default::default(),
        }
    }

    /// `listener(name, false)` at `address`, with `stat_prefix` (so versions differ).
    fn at(name: &str, address: &str, stat_prefix: &str) -> Vec<Resource> {
        let yaml = listener(name, false)
            .replace("port_value: 0", &format!("port_value: {address}"))
            .replace(&format!("stat_prefix: {name}"), &format!("stat_prefix: {stat_prefix}"));
        resources(&format!("resources:{yaml}"))
    }

    #[test]
    fn updates_keep_the_socket_of_an_unchanged_address_and_drain_the_old_version() {
        let main = TokioDispatcher::new("main_thread").unwrap();
        let tls = Instance::new(main.handle());
        let store = Store::default();
        let parts = ManagerParts {
            workers: Vec::new(),
            slot: tls.allocate_slot().unwrap(),
            route_slot: tls.allocate_slot().unwrap(),
            logs: Arc::default(),
            clusters: ClusterSource::Fixed(Arc::default()),
            store: store.clone(),
            cds: false,
            drain_config: DrainConfig::default(),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Drains run as tasks on this thread's LocalSet, as on the main thread.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let local = tokio::task::LocalSet::new();
        rt.block_on(local.run_until(async {
            let lm = ListenerManager::new(parts);
            let mut m = lm.borrow_mut();
            m.apply_lds(&update("1", at("a", &port.to_string(), "v1"), &[]), &Default::default())
                .unwrap();
            let first = m.active()[0].clone();
            assert_eq!(first.socket.address.port(), port);
            // Identical: nothing happens.
            m.apply_lds(&update("2", at("a", &port.to_string(), "v1"), &[]), &Default::default())
                .unwrap();
            assert!(Arc::ptr_eq(&m.active()[0].entry, &first.entry));
            // New config, same address: the socket stays, the old version drains.
            m.apply_lds(&update("3", at("a", &port.to_string(), "v3"), &[]), &Default::default())
                .unwrap();
            let second = m.active()[0].clone();
            assert!(Rc::ptr_eq(&second.socket, &first.socket), "the bound socket is reused");
            assert!(first.entry.drain.draining() && !second.entry.drain.draining());
            assert!(second.socket.drain.is_accepting());
            // A bind failure (the port is taken by a socket without
            // SO_REUSEPORT) changes nothing and is counted.
            let counter = |n: &str| store.counter_value(&format!("listener_manager.{n}"));
            let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let busy = taken.local_addr().unwrap().port().to_string();
            let err = m
                .apply_lds(&update("4", at("b", &busy, "v4"), &[]), &Default::default())
                .unwrap_err();
            assert!(err.contains("cannot bind"), "{err}");
            assert_eq!(m.active().len(), 1);
            assert_eq!(counter("lds.update_rejected"), Some(1));
            // Removed: its socket stops accepting, its version drains.
            m.apply_lds(&update("6", Vec::new(), &["a"]), &Default::default()).unwrap();
            assert!(m.active().is_empty());
            assert!(!second.socket.drain.is_accepting() && second.entry.drain.draining());
            assert_eq!(counter("listener_added"), Some(1));
            assert_eq!(counter("listener_modified"), Some(1));
            assert_eq!(counter("listener_removed"), Some(1));
            assert_eq!(m.lds.version_info, "6");
        }));
    }

    #[test]
    fn lds_updates_are_checked_whole() {
        let main = TokioDispatcher::new("main_thread").unwrap();
        let tls = Instance::new(main.handle());
        let routes: Slot<Arc<RouteMap>> = tls.allocate_slot().unwrap();
        let store = Store::default();
        let logs = AccessLogManager::new();
        let clusters = ClusterSource::Fixed(Arc::default());
        let ctx = BuildContext {
            logs: &logs,
            clusters: &clusters,
            stats: &store,
            cds: true,
            routes: Some(&routes),
        };
        let statics: BTreeSet<String> = ["admin-like".to_string()].into();

        let ok = resources(&format!("resources:{}{}", listener("a", false), listener("b", true)));
        let built = validate_lds(&ok, &statics, &ctx).unwrap();
        assert_eq!(built.len(), 2);
        assert!(built[0].1.rds.is_empty());
        assert_eq!(built[1].1.rds[0].name, "local", "RDS names are recorded for warming");

        let mut dup = resources(&format!("resources:{}", listener("a", false)));
        dup.extend(resources(&format!("resources:{}", listener("a", false))));
        assert!(validate_lds(&dup, &statics, &ctx).unwrap_err().contains("duplicate"));
        let stat = resources(&format!("resources:{}", listener("admin-like", false)));
        assert!(validate_lds(&stat, &statics, &ctx).unwrap_err().contains("static listener"));
        // Without a route provider, RDS is refused.
        let no_rds = BuildContext { routes: None, ..ctx };
        let rds = resources(&format!("resources:{}", listener("b", true)));
        assert!(validate_lds(&rds, &statics, &no_rds).is_err());
    }
}
