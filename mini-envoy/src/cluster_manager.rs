//! # The cluster manager
//!
//! Envoy's `ClusterManager` (main thread) and the cluster half of its
//! `ThreadLocalClusterManager` (workers). The main thread owns every cluster
//! by name: its config, its [`ClusterInfo`], its hosts ([`PrioritySet`]) and
//! the load-balancer factory workers create their balancers from. Every
//! change publishes a new immutable [`ClusterMap`] through the manager's own
//! thread-local slot (week 2); workers look clusters up by name in their
//! current map on every request, so a keep-alive connection sees new,
//! removed and re-weighted clusters and hosts at once:
//!
//! ```text
//!  static_resources / CDS ─► add_or_update_cluster ─┐
//!  EDS / DNS refresh ───────► update_hosts ─────────┼─► new ClusterMap ─► slot.set ─► workers
//!  health checks / outlier ─► hosts_changed ────────┘     (ClusterSource::get on each request)
//! ```
//!
//! Hosts whose address stays across an update keep their `Arc<Host>`
//! ([`PrioritySet::keeping_hosts_of`]), hence their health flags, stats and
//! pooled connections. A new CDS cluster *warms*, as in Envoy: it is
//! published only once its first endpoints arrive (EDS assignment, first DNS
//! answer) and, when health checked, its hosts had their first checks
//! ([`ClusterManager::finish_warming`], called by the health manager).
//! Removed clusters and hosts get no new connections; workers' pool sweeps
//! close their idle ones.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use rustc_hash::{FxHashMap, FxHashSet};
use week1_core::cluster::info::{ClusterInfo, priority_set_builder_from_assignment};
use week1_core::cluster::{LoadBalancerFactory, PrioritySet};
use week1_core::config::cluster::{Cluster, DiscoveryType};
use week1_core::config::endpoint::ClusterLoadAssignment;
use week1_core::config::{ConfigError, FieldPath};
use week2_threads::tls::{Slot, TlsError};

use crate::stats::{ClusterStats, Store};
use crate::upstream::pool::PoolSettings;

// ANCHOR: cluster_entry
/// The clusters workers route to, by name (one immutable version).
pub type ClusterMap = FxHashMap<String, Arc<ClusterEntry>>;

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
    /// Every host address, for the pool sweep.
    addresses: FxHashSet<SocketAddr>,
}
// ANCHOR_END: cluster_entry

impl ClusterEntry {
    /// An entry for `info` with the hosts of `priority_set`.
    pub fn new(
        info: Arc<ClusterInfo>,
        priority_set: Arc<PrioritySet>,
        pool: Arc<PoolSettings>,
    ) -> Result<Self, week1_core::cluster::ClusterError> {
        let lb_factory = LoadBalancerFactory::new(&info.lb_config, priority_set.clone(), None)?;
        pool.stats.watch_membership(&priority_set);
        let addresses = priority_set
            .host_sets()
            .iter()
            .flat_map(|hs| hs.hosts().iter().map(|h| h.address()))
            .collect();
        Ok(Self { info, priority_set, lb_factory: Arc::new(lb_factory), pool, addresses })
    }

    /// Compiles a cluster's config with its initial hosts (`resolve` looks
    /// up STRICT_DNS / LOGICAL_DNS names; EDS clusters start empty).
    pub fn from_config(
        c: &Cluster,
        at: &FieldPath,
        store: &Store,
        resolve: Resolver<'_>,
    ) -> Result<Self, ConfigError> {
        let info = ClusterInfo::from_config(c, at)?;
        let priority_set = Arc::new(info.initial_priority_set(c, resolve, at)?);
        // Same name, same cells: an updated cluster keeps its stats.
        let stats = Arc::new(ClusterStats::new(store, &info.observability_name));
        stats.watch_circuit_breakers(&info.circuit_breakers);
        let pool = Arc::new(PoolSettings::from_cluster(&info, stats));
        Self::new(Arc::new(info), priority_set, pool)
            .map_err(|e| ConfigError::invalid(at.clone(), e.to_string()))
    }

    /// The same cluster with other hosts (a new load-balancer factory).
    fn with_hosts(&self, priority_set: PrioritySet) -> Result<Self, ConfigError> {
        Self::new(self.info.clone(), Arc::new(priority_set), self.pool.clone())
            .map_err(|e| ConfigError::invalid(FieldPath::root(), e.to_string()))
    }

    /// Whether `address` is one of this cluster's hosts.
    pub fn has_host(&self, address: SocketAddr) -> bool {
        self.addresses.contains(&address)
    }
}

/// Resolves DNS names of STRICT_DNS / LOGICAL_DNS clusters.
pub type Resolver<'a> = &'a mut dyn FnMut(&str, u16) -> Result<Vec<SocketAddr>, String>;

/// Compiles `static_resources.clusters`, in order (errors name their path).
pub fn compile_static_clusters(
    clusters: &[Cluster],
    store: &Store,
    resolve: Resolver<'_>,
) -> Result<Vec<Arc<ClusterEntry>>, ConfigError> {
    let at = FieldPath::root().field("static_resources").field("clusters");
    clusters
        .iter()
        .enumerate()
        .map(|(i, c)| ClusterEntry::from_config(c, &at.index(i), store, resolve).map(Arc::new))
        .collect()
}

/// [`compile_static_clusters`] as a fixed map (validation, tests).
pub fn static_cluster_map(
    clusters: &[Cluster],
    store: &Store,
    resolve: Resolver<'_>,
) -> Result<ClusterMap, ConfigError> {
    let entries = compile_static_clusters(clusters, store, resolve)?;
    Ok(clusters.iter().map(|c| c.name.clone()).zip(entries).collect())
}

// ANCHOR: cluster_source
/// Where a listener's filter chains find clusters: the worker's current map
/// (the cluster manager's slot), or a fixed map (validation, unit tests).
#[derive(Debug, Clone)]
pub enum ClusterSource {
    /// This thread's current value of the cluster manager's slot.
    Slot(Slot<Arc<ClusterMap>>),
    /// One fixed map.
    Fixed(Arc<ClusterMap>),
}

impl ClusterSource {
    /// Calls `f` with the current clusters (an empty map on a thread the
    /// slot does not reach).
    pub fn with<R>(&self, f: impl FnOnce(&ClusterMap) -> R) -> R {
        match self {
            Self::Fixed(map) => f(map),
            Self::Slot(slot) => match slot.get() {
                Ok(map) => f(&map),
                Err(_) => f(&ClusterMap::default()),
            },
        }
    }

    /// The cluster named `name`, as of now.
    pub fn get(&self, name: &str) -> Option<Arc<ClusterEntry>> {
        self.with(|m| m.get(name).cloned())
    }

    /// Whether a cluster named `name` exists now.
    pub fn contains(&self, name: &str) -> bool {
        self.with(|m| m.contains_key(name))
    }
}
// ANCHOR_END: cluster_source

/// Where a cluster came from (`/config_dump` lists them apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterOrigin {
    /// `static_resources.clusters`: CDS cannot change or remove it.
    Static,
    /// CDS, with the `version_info` of the response that last changed it.
    Dynamic {
        /// The xDS `version_info`.
        version_info: String,
    },
}

/// One cluster as the main thread keeps it.
#[derive(Debug, Clone)]
pub struct ManagedCluster {
    /// Its config, as last added or updated.
    pub config: Cluster,
    /// What workers see (or will see, while warming).
    pub entry: Arc<ClusterEntry>,
    /// Static or CDS.
    pub origin: ClusterOrigin,
    /// When its config last changed.
    pub last_updated: SystemTime,
}

/// What [`ClusterManager::add_or_update_cluster`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterChange {
    /// A new cluster, serving now.
    Added,
    /// A new cluster, warming (not yet on the workers: requests naming it
    /// get `503 NC`) until its initialization completes, as Envoy's cluster
    /// warming: its first endpoints (EDS: [`ClusterManager::update_load_assignment`];
    /// DNS: the first resolution, [`ClusterManager::update_hosts`]) and, with
    /// active health checking, every host's first check
    /// ([`ClusterManager::finish_warming`]).
    Warming,
    /// An existing cluster got a new config.
    Updated,
    /// The config is the one already in place: nothing changed.
    Unchanged,
}

/// Why a cluster operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClusterManagerError {
    /// The config is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// No cluster has that name.
    #[error("unknown cluster {0:?}")]
    Unknown(String),
    /// A static cluster cannot be changed or removed by CDS.
    #[error("cluster {0:?} is static: CDS cannot update or remove it")]
    Static(String),
    /// The new map could not be published to workers.
    #[error("cannot publish clusters to workers: {0}")]
    Publish(#[from] TlsError),
}

/// A DNS resolver the manager owns: `(cluster, name, port)` to addresses,
/// for `STRICT_DNS` / `LOGICAL_DNS` names (each cluster may name its own
/// resolver: [`crate::dns::DnsResolvers::resolve_blocking`]).
pub type OwnedResolver =
    Box<dyn FnMut(&Cluster, &str, u16) -> Result<Vec<SocketAddr>, String> + Send>;

/// Envoy's `cluster_manager.*` stats.
#[derive(Debug, Clone)]
struct ClusterManagerStats {
    /// Clusters added (static or CDS).
    cluster_added: crate::stats::Counter,
    /// Clusters whose config CDS changed.
    cluster_modified: crate::stats::Counter,
    /// Clusters CDS removed.
    cluster_removed: crate::stats::Counter,
    /// Clusters on the workers.
    active_clusters: crate::stats::Gauge,
    /// Clusters warming (not on the workers yet).
    warming_clusters: crate::stats::Gauge,
}

impl ClusterManagerStats {
    fn new(store: &Store) -> Self {
        let scope = store.root().scope("cluster_manager");
        Self {
            cluster_added: scope.counter("cluster_added"),
            cluster_modified: scope.counter("cluster_modified"),
            cluster_removed: scope.counter("cluster_removed"),
            active_clusters: scope.gauge("active_clusters"),
            warming_clusters: scope.gauge("warming_clusters"),
        }
    }
}

// ANCHOR: cluster_manager
/// The main thread's clusters (Envoy's `ClusterManager`). It lives on the
/// main thread (its slot refuses writes elsewhere); every mutation publishes
/// at once to workers.
pub struct ClusterManager {
    active: BTreeMap<String, ManagedCluster>,
    warming: BTreeMap<String, ManagedCluster>,
    /// Warming clusters that have no endpoints yet (EDS, DNS).
    awaiting_hosts: std::collections::BTreeSet<String>,
    /// `cluster_manager.*`.
    stats: ClusterManagerStats,
    published: Arc<ClusterMap>,
    slot: Slot<Arc<ClusterMap>>,
    resolve: OwnedResolver,
    /// Where each cluster's `cluster.<name>.*` stats live.
    store: Store,
    /// Bumped on every config change (add, update, remove).
    config_changes: tokio::sync::watch::Sender<u64>,
}
// ANCHOR_END: cluster_manager

impl std::fmt::Debug for ClusterManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterManager")
            .field("active", &self.active.keys().collect::<Vec<_>>())
            .field("warming", &self.warming.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ClusterManager {
    /// An empty manager publishing through `slot` (allocated on the main
    /// thread's TLS instance after every worker registered); `resolve` looks
    /// up DNS cluster names (blocking, on the main thread); cluster stats
    /// go to `store`.
    pub fn new(
        slot: Slot<Arc<ClusterMap>>,
        resolve: OwnedResolver,
        store: Store,
    ) -> Result<Self, TlsError> {
        let published = Arc::new(ClusterMap::default());
        let first = published.clone();
        slot.set(move || first.clone())?;
        let (active, warming) = (BTreeMap::new(), BTreeMap::new());
        let (config_changes, _) = tokio::sync::watch::channel(0);
        let stats = ClusterManagerStats::new(&store);
        let awaiting_hosts = std::collections::BTreeSet::new();
        Ok(Self {
            active,
            warming,
            awaiting_hosts,
            stats,
            published,
            slot,
            resolve,
            store,
            config_changes,
        })
    }

    /// Wakes whenever a cluster is added, updated or removed (main-thread
    /// services that follow configs: DNS refresh). Closed when the manager
    /// is dropped.
    pub fn watch_config(&self) -> tokio::sync::watch::Receiver<u64> {
        self.config_changes.subscribe()
    }

    fn config_changed(&self) {
        self.config_changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Adds every `static_resources.clusters` entry (errors name their path)
    /// and publishes once.
    pub fn add_static_clusters(&mut self, clusters: &[Cluster]) -> Result<(), ClusterManagerError> {
        let at = FieldPath::root().field("static_resources").field("clusters");
        let mut entries = Vec::with_capacity(clusters.len());
        for (i, c) in clusters.iter().enumerate() {
            let resolve = &mut *self.resolve;
            let mut for_cluster = |name: &str, port: u16| resolve(c, name, port);
            entries.push(ClusterEntry::from_config(
                c,
                &at.index(i),
                &self.store,
                &mut for_cluster,
            )?);
        }
        for (config, entry) in clusters.iter().zip(entries) {
            let managed = ManagedCluster {
                config: config.clone(),
                entry: Arc::new(entry),
                origin: ClusterOrigin::Static,
                last_updated: SystemTime::now(),
            };
            self.active.insert(config.name.clone(), managed);
            self.stats.cluster_added.inc();
        }
        self.config_changed();
        self.publish()
    }

    /// The stats store clusters record into.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How workers find the clusters: this manager's slot.
    pub fn source(&self) -> ClusterSource {
        ClusterSource::Slot(self.slot.clone())
    }

    /// The map workers currently have (or are about to have).
    pub fn map(&self) -> &Arc<ClusterMap> {
        &self.published
    }

    /// The serving cluster named `name`.
    pub fn get(&self, name: &str) -> Option<&ManagedCluster> {
        self.active.get(name)
    }

    /// Serving clusters, by name.
    pub fn active(&self) -> impl Iterator<Item = &ManagedCluster> {
        self.active.values()
    }

    /// Clusters still warming (not on the workers yet), by name.
    pub fn warming(&self) -> impl Iterator<Item = &ManagedCluster> {
        self.warming.values()
    }

    /// The cluster named `name`, serving or warming.
    pub fn get_any(&self, name: &str) -> Option<&ManagedCluster> {
        self.active.get(name).or_else(|| self.warming.get(name))
    }

    /// Whether `name` warms waiting for its first endpoints (EDS, DNS).
    pub fn awaits_hosts(&self, name: &str) -> bool {
        self.awaiting_hosts.contains(name)
    }

    /// Whether `name` warms and has its endpoints: only its hosts' first
    /// health checks are missing.
    pub fn awaits_first_checks(&self, name: &str) -> bool {
        self.warming.contains_key(name) && !self.awaiting_hosts.contains(name)
    }

    /// Whether a cluster named `name` serves or warms.
    pub fn contains(&self, name: &str) -> bool {
        self.active.contains_key(name) || self.warming.contains_key(name)
    }

    // ANCHOR: add_or_update_cluster
    /// CDS: adds a cluster or replaces one's config, with the `version_info`
    /// of the response it came in. A new cluster warms (see
    /// [`ClusterChange::Warming`]) unless it is static with no health checks;
    /// an update applies at once, keeping the hosts it has (hosts that stay
    /// keep their `Arc<Host>`; EDS and DNS clusters keep all of theirs until
    /// their next assignment or resolution). No DNS lookup happens here: a
    /// DNS cluster's refresh task resolves it. `at` is the cluster's path for errors.
    pub fn add_or_update_cluster(
        &mut self,
        config: &Cluster,
        version_info: &str,
        at: &FieldPath,
    ) -> Result<ClusterChange, ClusterManagerError> {
        let name = &config.name;
        if let Some(current) = self.get_any(name) {
            if current.origin == ClusterOrigin::Static {
                return Err(ClusterManagerError::Static(name.clone()));
            }
            if current.config == *config {
                return Ok(ClusterChange::Unchanged);
            }
        }
        let mut no_lookup = |_: &str, _: u16| -> Result<Vec<SocketAddr>, String> { Ok(Vec::new()) };
        let compiled = ClusterEntry::from_config(config, at, &self.store, &mut no_lookup)?;
        let discovered = matches!(
            compiled.info.discovery,
            DiscoveryType::Eds | DiscoveryType::StrictDns | DiscoveryType::LogicalDns
        );
        let previous = self.active.get(name).map(|c| c.entry.priority_set.clone());
        let hosts = match (&previous, discovered) {
            (Some(previous), true) => (**previous).clone(),
            (Some(previous), false) => compiled.priority_set.keeping_hosts_of(previous),
            (None, _) => compiled.info.with_initial_health((*compiled.priority_set).clone()),
        };
        let entry = compiled.with_hosts(hosts).map_err(crate::snapshot::under(at))?;
        let health_checked = !entry.info.health_checks.is_empty();
        let managed = ManagedCluster {
            config: config.clone(),
            entry: Arc::new(entry),
            origin: ClusterOrigin::Dynamic { version_info: version_info.to_string() },
            last_updated: SystemTime::now(),
        };
        self.config_changed();
        if previous.is_none() && (discovered || health_checked) {
            if self.warming.insert(name.clone(), managed).is_none() {
                self.stats.cluster_added.inc();
            } else {
                self.stats.cluster_modified.inc();
            }
            if discovered {
                self.awaiting_hosts.insert(name.clone());
            } else {
                self.awaiting_hosts.remove(name);
            }
            self.count();
            return Ok(ClusterChange::Warming);
        }
        let was_warming = self.warming.remove(name).is_some();
        self.awaiting_hosts.remove(name);
        let change = if self.active.insert(name.clone(), managed).is_some() || was_warming {
            self.stats.cluster_modified.inc();
            ClusterChange::Updated
        } else {
            self.stats.cluster_added.inc();
            ClusterChange::Added
        };
        self.publish()?;
        Ok(change)
    }
    // ANCHOR_END: add_or_update_cluster

    /// A warming cluster's hosts had their first health checks: it replaces
    /// any serving version on the workers. `info` names the version that
    /// warmed (a config update since then keeps the newer one warming).
    /// Returns whether it went active.
    pub fn finish_warming(
        &mut self,
        name: &str,
        info: &Arc<ClusterInfo>,
    ) -> Result<bool, ClusterManagerError> {
        let ready = self.awaits_first_checks(name)
            && self.warming.get(name).is_some_and(|c| Arc::ptr_eq(&c.entry.info, info));
        if !ready {
            return Ok(false);
        }
        let Some(warmed) = self.warming.remove(name) else { return Ok(false) };
        self.active.insert(name.to_string(), warmed);
        self.config_changed();
        self.publish()?;
        Ok(true)
    }

    /// CDS: removes a dynamic cluster (serving or warming). Its idle pooled
    /// connections are closed by the workers' next sweep; requests already
    /// using it finish. Returns whether it existed.
    pub fn remove_cluster(&mut self, name: &str) -> Result<bool, ClusterManagerError> {
        if self.active.get(name).is_some_and(|c| c.origin == ClusterOrigin::Static) {
            return Err(ClusterManagerError::Static(name.to_string()));
        }
        let warmed = self.warming.remove(name).is_some();
        self.awaiting_hosts.remove(name);
        if self.active.remove(name).is_some() {
            self.stats.cluster_removed.inc();
            self.config_changed();
            self.publish()?;
            return Ok(true);
        }
        if warmed {
            self.stats.cluster_removed.inc();
            self.config_changed();
            self.count();
        }
        Ok(warmed)
    }

    // ANCHOR: update_hosts
    /// Replaces a cluster's hosts (EDS, a DNS refresh): hosts whose address,
    /// hostname, locality and priority stay keep their `Arc<Host>` (health
    /// flags, stats, pooled connections); the others come and go. A warming
    /// cluster starts serving. New hosts of a health-checked cluster start
    /// `FAILED_ACTIVE_HC` until their first check, as in Envoy. Publishes to workers.
    pub fn update_hosts(
        &mut self,
        cluster: &str,
        hosts: PrioritySet,
    ) -> Result<(), ClusterManagerError> {
        if let Some(warming) = self.warming.get_mut(cluster) {
            let hosts = warming.entry.info.with_initial_health(hosts);
            let hosts = hosts.keeping_hosts_of(&warming.entry.priority_set);
            let checked = !warming.entry.info.health_checks.is_empty() && hosts.total_hosts() > 0;
            warming.entry = Arc::new(warming.entry.with_hosts(hosts)?);
            self.awaiting_hosts.remove(cluster);
            if checked {
                // Warm until every host had its first check (finish_warming).
                return Ok(());
            }
            let warmed = self.warming.remove(cluster).expect("warming above");
            self.active.insert(cluster.to_string(), warmed);
            self.config_changed();
            return self.publish();
        }
        let current = self
            .active
            .get_mut(cluster)
            .ok_or_else(|| ClusterManagerError::Unknown(cluster.into()))?;
        let hosts = current.entry.info.with_initial_health(hosts);
        let hosts = hosts.keeping_hosts_of(&current.entry.priority_set);
        current.entry = Arc::new(current.entry.with_hosts(hosts)?);
        self.publish()
    }

    /// EDS: a `ClusterLoadAssignment` for `cluster` (endpoints must be IP
    /// addresses, as Envoy's EDS requires), then [`update_hosts`](Self::update_hosts).
    pub fn update_load_assignment(
        &mut self,
        cluster: &str,
        assignment: &ClusterLoadAssignment,
        at: &FieldPath,
    ) -> Result<(), ClusterManagerError> {
        if !self.contains(cluster) {
            return Err(ClusterManagerError::Unknown(cluster.to_string()));
        }
        let mut no_dns = |name: &str, _: u16| -> Result<Vec<SocketAddr>, String> {
            Err(format!("{name:?} is not an IP address (EDS endpoints are IP addresses)"))
        };
        let hosts = priority_set_builder_from_assignment(assignment, &mut no_dns, at)?
            .build()
            .map_err(|e| ConfigError::invalid(at.clone(), e.to_string()))?;
        self.update_hosts(cluster, hosts)
    }

    /// Health checking or outlier detection changed some hosts' flags:
    /// re-partitions the cluster's hosts by their current flags
    /// ([`PrioritySet::rebuild`]) with a new load-balancer factory, and
    /// publishes. Call it once after a batch of flag changes.
    pub fn hosts_changed(&mut self, cluster: &str) -> Result<(), ClusterManagerError> {
        if let Some(warming) = self.warming.get_mut(cluster) {
            // Not on the workers yet: the new partition goes with it when it warms.
            let hosts = warming.entry.priority_set.rebuild();
            warming.entry = Arc::new(warming.entry.with_hosts(hosts)?);
            return Ok(());
        }
        let current = self
            .active
            .get_mut(cluster)
            .ok_or_else(|| ClusterManagerError::Unknown(cluster.into()))?;
        current.entry = Arc::new(current.entry.with_hosts(current.entry.priority_set.rebuild())?);
        self.publish()
    }
    // ANCHOR_END: update_hosts

    /// `cluster_manager.active_clusters` / `warming_clusters`.
    fn count(&self) {
        self.stats.active_clusters.set(self.active.len() as i64);
        self.stats.warming_clusters.set(self.warming.len() as i64);
    }

    /// Sends the serving clusters to every thread.
    fn publish(&mut self) -> Result<(), ClusterManagerError> {
        self.count();
        let map: ClusterMap =
            self.active.iter().map(|(name, c)| (name.clone(), c.entry.clone())).collect();
        self.published = Arc::new(map);
        let map = self.published.clone();
        self.slot.set(move || map.clone())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use week1_core::cluster::HealthFlags;
    use week2_threads::dispatcher::{Dispatcher, TokioDispatcher};
    use week2_threads::tls::Instance;

    const STATIC: &str = r#"
static_resources:
  clusters:
  - name: fixed
    connect_timeout: 1s
    load_assignment:
      cluster_name: fixed
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8001}}}
"#;

    fn clusters(yaml: &str) -> Vec<Cluster> {
        week1_core::config::load_bootstrap(yaml).unwrap().clusters().to_vec()
    }

    /// A dynamic cluster `name` with `ports` on 127.0.0.1 and `timeout`.
    fn dynamic(name: &str, ports: &[u16], timeout: &str) -> Cluster {
        let mut endpoints = String::new();
        for p in ports {
            endpoints += &format!(
                "        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}\n"
            );
        }
        let yaml = format!(
            "static_resources:\n  clusters:\n  - name: {name}\n    connect_timeout: {timeout}\n    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n{endpoints}"
        );
        clusters(&yaml).remove(0)
    }

    fn eds(name: &str) -> Cluster {
        let yaml = format!(
            "static_resources:\n  clusters:\n  - name: {name}\n    connect_timeout: 1s\n    type: EDS\n    eds_cluster_config: {{eds_config: {{ads: {{}}, resource_api_version: V3}}}}\n"
        );
        clusters(&yaml).remove(0)
    }

    fn assignment(name: &str, ports: &[u16]) -> ClusterLoadAssignment {
        dynamic(name, ports, "1s").load_assignment.unwrap()
    }

    /// A manager on this thread (the TLS main thread, no workers).
    fn manager() -> (TokioDispatcher, ClusterManager) {
        let main = TokioDispatcher::new("main_thread").unwrap();
        let tls = Instance::new(main.handle());
        let slot = tls.allocate_slot().unwrap();
        let resolve: OwnedResolver = Box::new(|_, h, _| Err(format!("no DNS for {h}")));
        (main, ClusterManager::new(slot, resolve, Store::default()).unwrap())
    }

    fn ports(entry: &ClusterEntry) -> Vec<u16> {
        let hosts = entry.priority_set.host_sets().iter().flat_map(|hs| hs.hosts().to_vec());
        hosts.map(|h| h.address().port()).collect()
    }

    #[test]
    fn static_clusters_are_published_and_cds_cannot_touch_them() {
        let (_main, mut cm) = manager();
        cm.add_static_clusters(&clusters(STATIC)).unwrap();
        let source = cm.source();
        assert_eq!(ports(&source.get("fixed").unwrap()), [8001]);
        assert!(source.get("other").is_none());
        let at = FieldPath::root();
        let err = cm.add_or_update_cluster(&dynamic("fixed", &[9], "1s"), "1", &at).unwrap_err();
        assert!(matches!(err, ClusterManagerError::Static(_)), "{err}");
        assert!(matches!(cm.remove_cluster("fixed"), Err(ClusterManagerError::Static(_))));
        assert_eq!(ports(&source.get("fixed").unwrap()), [8001], "unchanged");
    }

    #[test]
    fn cds_adds_updates_and_removes_keeping_hosts_that_stay() {
        let (_main, mut cm) = manager();
        let source = cm.source();
        let at = FieldPath::root();
        let v1 = dynamic("api", &[8001, 8002], "1s");
        assert_eq!(cm.add_or_update_cluster(&v1, "1", &at).unwrap(), ClusterChange::Added);
        assert_eq!(cm.add_or_update_cluster(&v1, "2", &at).unwrap(), ClusterChange::Unchanged);
        let before = source.get("api").unwrap();
        let kept = before.priority_set.host_sets()[0].hosts()[1].clone();
        kept.set_health_flags(HealthFlags::FAILED_ACTIVE_HC);

        let v2 = dynamic("api", &[8002, 8003], "2s");
        assert_eq!(cm.add_or_update_cluster(&v2, "3", &at).unwrap(), ClusterChange::Updated);
        let after = source.get("api").unwrap();
        assert_eq!(after.info.connect_timeout, std::time::Duration::from_secs(2));
        assert_eq!(ports(&after), [8002, 8003]);
        let hosts = after.priority_set.host_sets()[0].hosts();
        assert!(Arc::ptr_eq(&hosts[0], &kept), "8002 stays the same host");
        assert_eq!(after.priority_set.host_sets()[0].healthy_hosts().len(), 1);
        assert!(
            after.has_host(kept.address()) && !after.has_host("127.0.0.1:8001".parse().unwrap())
        );
        let version = cm.get("api").map(|c| c.origin.clone());
        assert_eq!(version, Some(ClusterOrigin::Dynamic { version_info: "3".into() }));

        assert!(cm.remove_cluster("api").unwrap());
        assert!(source.get("api").is_none());
        assert!(!cm.remove_cluster("api").unwrap());
    }

    #[test]
    fn a_new_eds_cluster_warms_until_its_endpoints_arrive() {
        let (_main, mut cm) = manager();
        let source = cm.source();
        let at = FieldPath::root();
        assert_eq!(
            cm.add_or_update_cluster(&eds("svc"), "1", &at).unwrap(),
            ClusterChange::Warming
        );
        assert!(source.get("svc").is_none(), "not served while warming");
        assert_eq!(cm.warming().count(), 1);
        cm.update_load_assignment("svc", &assignment("svc", &[8001, 8002]), &at).unwrap();
        assert_eq!(ports(&source.get("svc").unwrap()), [8001, 8002]);
        assert_eq!(cm.warming().count(), 0);

        let first = source.get("svc").unwrap().priority_set.host_sets()[0].hosts()[0].clone();
        cm.update_load_assignment("svc", &assignment("svc", &[8001]), &at).unwrap();
        let now = source.get("svc").unwrap();
        assert!(Arc::ptr_eq(&now.priority_set.host_sets()[0].hosts()[0], &first));
        assert_eq!(ports(&now), [8001]);

        // A CDS update of a serving EDS cluster keeps its endpoints.
        let mut changed = eds("svc");
        changed.connect_timeout =
            Some(week1_core::config::types::Duration(std::time::Duration::from_secs(3)));
        assert_eq!(cm.add_or_update_cluster(&changed, "2", &at).unwrap(), ClusterChange::Updated);
        assert_eq!(ports(&source.get("svc").unwrap()), [8001]);

        let unknown = cm.update_load_assignment("nope", &assignment("nope", &[1]), &at);
        assert!(matches!(unknown, Err(ClusterManagerError::Unknown(_))));
    }

    #[test]
    fn new_hosts_of_a_health_checked_cluster_start_failed_active_hc() {
        let (_main, mut cm) = manager();
        let source = cm.source();
        let at = FieldPath::root();
        let mut checked = eds("svc");
        checked.health_checks = serde_json::from_value(serde_json::json!([{
            "timeout": "1s", "interval": "1s", "unhealthy_threshold": 1,
            "healthy_threshold": 1, "tcp_health_check": {}
        }]))
        .unwrap();
        cm.add_or_update_cluster(&checked, "1", &at).unwrap();
        cm.update_load_assignment("svc", &assignment("svc", &[8001]), &at).unwrap();
        assert!(source.get("svc").is_none(), "warms until its hosts' first checks");
        assert!(cm.awaits_first_checks("svc"));
        let warming = cm.get_any("svc").unwrap().entry.clone();
        let first = warming.priority_set.host_sets()[0].hosts()[0].clone();
        assert_eq!(first.health_flags(), HealthFlags::FAILED_ACTIVE_HC, "warming's hosts too");
        first.clear_health_flags(HealthFlags::FAILED_ACTIVE_HC); // its first check passed
        cm.hosts_changed("svc").unwrap();
        assert!(cm.finish_warming("svc", &warming.info).unwrap());
        let serving = source.get("svc").unwrap();
        assert_eq!(serving.priority_set.host_sets()[0].healthy_hosts().len(), 1);
        cm.update_load_assignment("svc", &assignment("svc", &[8001, 8002]), &at).unwrap();
        let hosts = source.get("svc").unwrap().priority_set.host_sets()[0].hosts().to_vec();
        assert!(Arc::ptr_eq(&hosts[0], &first) && hosts[0].health_flags().is_empty());
        assert_eq!(hosts[1].health_flags(), HealthFlags::FAILED_ACTIVE_HC, "new: unchecked");
    }

    #[test]
    fn new_cds_clusters_warm_until_their_hosts_and_first_checks_updates_do_not() {
        let (_main, mut cm) = manager();
        let source = cm.source();
        let at = FieldPath::root();
        let gauge = |cm: &ClusterManager, name: &str| {
            cm.store().gauge_value(&format!("cluster_manager.{name}")).unwrap()
        };
        // Static without health checks: serves at once.
        assert_eq!(
            cm.add_or_update_cluster(&dynamic("plain", &[8001], "1s"), "1", &at).unwrap(),
            ClusterChange::Added
        );
        assert!(source.get("plain").is_some());
        // Static with health checks: warms with its hosts until finish_warming.
        let checked = |timeout: &str| {
            let mut c = dynamic("checked", &[8002], timeout);
            c.health_checks = serde_json::from_value(serde_json::json!([{
                "timeout": "1s", "interval": "1s", "unhealthy_threshold": 1,
                "healthy_threshold": 1, "tcp_health_check": {}
            }]))
            .unwrap();
            c
        };
        let change = cm.add_or_update_cluster(&checked("1s"), "1", &at).unwrap();
        assert_eq!(change, ClusterChange::Warming);
        assert!(cm.awaits_first_checks("checked") && source.get("checked").is_none());
        assert_eq!((gauge(&cm, "active_clusters"), gauge(&cm, "warming_clusters")), (1, 1));
        // STRICT_DNS: warms without hosts (no lookup here) until its first resolution.
        let dns = clusters(
            "static_resources:\n  clusters:\n  - name: dns\n    type: STRICT_DNS\n    load_assignment:\n      cluster_name: dns\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {address: {socket_address: {address: backend.test, port_value: 8003}}}\n",
        )
        .remove(0);
        assert_eq!(cm.add_or_update_cluster(&dns, "1", &at).unwrap(), ClusterChange::Warming);
        assert!(!cm.awaits_first_checks("dns"), "its hosts come first");
        let resolved = cm.get_any("dns").unwrap().entry.priority_set.clone();
        assert_eq!(resolved.total_hosts(), 0, "nothing resolved on the main thread");
        cm.update_hosts(
            "dns",
            dynamic("x", &[8003], "1s")
                .load_assignment
                .map(|a| {
                    priority_set_builder_from_assignment(&a, &mut |_, _| Ok(Vec::new()), &at)
                        .unwrap()
                        .build()
                        .unwrap()
                })
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ports(&source.get("dns").unwrap()), [8003], "the first answer made it serve");
        // A stale version's first checks do not promote a newer one.
        let stale = cm.get_any("checked").unwrap().entry.info.clone();
        let change = cm.add_or_update_cluster(&checked("2s"), "2", &at).unwrap();
        assert_eq!(change, ClusterChange::Warming);
        assert!(!cm.finish_warming("checked", &stale).unwrap());
        let current = cm.get_any("checked").unwrap().entry.info.clone();
        assert!(cm.finish_warming("checked", &current).unwrap());
        assert!(source.get("checked").is_some());
        // An update of a serving cluster applies at once (no warming).
        let change = cm.add_or_update_cluster(&checked("3s"), "3", &at).unwrap();
        assert_eq!(change, ClusterChange::Updated);
        assert_eq!((gauge(&cm, "active_clusters"), gauge(&cm, "warming_clusters")), (3, 0));
        let store = cm.store().clone();
        let counter = |name: &str| store.counter_value(&format!("cluster_manager.{name}")).unwrap();
        assert_eq!((counter("cluster_added"), counter("cluster_modified")), (3, 2));
        // Removing a warming cluster cancels it.
        cm.add_or_update_cluster(&eds("later"), "4", &at).unwrap();
        assert!(cm.remove_cluster("later").unwrap());
        assert!(cm.get_any("later").is_none() && !cm.awaits_first_checks("later"));
        assert_eq!(counter("cluster_removed"), 1);
    }

    #[test]
    fn hosts_changed_repartitions_by_current_flags() {
        let (_main, mut cm) = manager();
        cm.add_static_clusters(&clusters(STATIC)).unwrap();
        let source = cm.source();
        let host = source.get("fixed").unwrap().priority_set.host_sets()[0].hosts()[0].clone();
        host.set_health_flags(HealthFlags::FAILED_ACTIVE_HC);
        let stale = source.get("fixed").unwrap();
        assert_eq!(stale.priority_set.host_sets()[0].healthy_hosts().len(), 1, "not yet");
        cm.hosts_changed("fixed").unwrap();
        let fresh = source.get("fixed").unwrap();
        assert!(fresh.priority_set.host_sets()[0].healthy_hosts().is_empty());
        assert!(Arc::ptr_eq(&fresh.priority_set.host_sets()[0].hosts()[0], &host));
        host.clear_health_flags(HealthFlags::FAILED_ACTIVE_HC);
        cm.hosts_changed("fixed").unwrap();
        assert_eq!(
            source.get("fixed").unwrap().priority_set.host_sets()[0].healthy_hosts().len(),
            1
        );
        assert!(matches!(cm.hosts_changed("nope"), Err(ClusterManagerError::Unknown(_))));
    }
}
