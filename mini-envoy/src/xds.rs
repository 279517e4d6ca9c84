//! # Dynamic configuration sources: CDS, EDS, LDS and RDS
//!
//! Envoy's `CdsApiImpl`, `EdsClusterImpl`, `LdsApiImpl` and RDS subscriptions
//! on the week 4 transports: the bootstrap's `dynamic_resources.cds_config`
//! and `lds_config`, each EDS cluster's `eds_cluster_config.eds_config` and
//! each HCM's `rds.config_source` name a file (`path_config_source`, or the
//! legacy `path`) or the ADS stream (`ads: {}` with `ads_config` naming a
//! static cluster that serves `envoy.service.discovery.v3.AggregatedDiscoveryService`).
//! Clusters go to the main thread's [`ClusterManager`], listeners and routes
//! to its [`ListenerManager`]; both publish to workers:
//!
//! ```text
//!  cds.yaml / eds.yaml moved in ─► FileSubscription ─┐                  ┌─► DynamicClusters
//!  lds.yaml / routes.yaml moved in ─► FileSubscription┼─► apply(type) ──┤
//!  ADS stream ─► AdsMux (ACK/NACK, CDS→EDS→LDS→RDS) ─┘                  └─► ListenerManager (+ RDS)
//! ```
//!
//! An update is validated whole before anything changes: a rejected one (a
//! bad file, a NACKed response) keeps the previous configuration and counts
//! `update_rejected`. A new EDS cluster warms until its endpoints arrive, a
//! listener until its routes do.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use week1_core::cluster::info::ClusterInfo;
use week1_core::config::bootstrap::{Bootstrap, Resource};
use week1_core::config::cluster::{Cluster, DiscoveryType};
use week1_core::config::config_source::{ApiType, ConfigSource};
use week1_core::config::{ConfigError, FieldPath};
use week4_xds::file::{FileSubscription, FileUpdate, Sources};
use week4_xds::grpc::client::{self, AdsHandler};
use week4_xds::grpc::convert::UnknownFields;
use week4_xds::{AdsMux, Interest, Mode, MuxConfig, Node, SystemRandom, TypeUrl, Update};

use crate::cluster_manager::{ClusterChange, ClusterManager, ClusterManagerError};
use crate::listener_manager::ListenerManager;
use crate::server::UnknownDynamicFields;
use crate::stats::{Counter, Gauge, Scope};

/// Envoy's per-subscription stats (`cluster_manager.cds.*`,
/// `cluster.<name>.update_*` for EDS): counters in the stats store, and the
/// `version_info` last applied.
#[derive(Clone)]
pub struct UpdateCounters {
    /// `update_attempt`.
    pub update_attempt: Counter,
    /// `update_success`.
    pub update_success: Counter,
    /// `update_rejected`.
    pub update_rejected: Counter,
    /// `version`: a hash of the `version_info` in force, as Envoy's gauge.
    pub version: Gauge,
    /// The `version_info` last applied.
    pub version_info: String,
}

impl std::fmt::Debug for UpdateCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateCounters").field("version_info", &self.version_info).finish()
    }
}

impl UpdateCounters {
    /// The counters under `scope` (e.g. `cluster_manager.cds.`).
    pub fn new(scope: &Scope) -> Self {
        Self {
            update_attempt: scope.counter("update_attempt"),
            update_success: scope.counter("update_success"),
            update_rejected: scope.counter("update_rejected"),
            version: scope.gauge("version"),
            version_info: String::new(),
        }
    }

    /// Counts one update attempt and its result.
    pub fn record(&mut self, result: &Result<(), String>, version_info: &str) {
        self.update_attempt.inc();
        match result {
            Ok(()) => {
                self.update_success.inc();
                self.version_info = version_info.to_string();
                // Envoy's `version` gauge: a hash of version_info.
                let hash = week4_xds::config_manager::hash_bytes(version_info.as_bytes());
                self.version.set((hash >> 1) as i64);
            }
            Err(_) => self.update_rejected.inc(),
        }
    }
}

// ANCHOR: dynamic_clusters
/// The main thread's CDS/EDS state: applies updates to the cluster manager
/// and runs a file watch per EDS cluster whose endpoints come from a file.
pub struct DynamicClusters {
    clusters: Rc<RefCell<ClusterManager>>,
    /// CDS counters.
    pub cds: UpdateCounters,
    /// EDS counters, by cluster.
    pub eds: BTreeMap<String, UpdateCounters>,
    /// File watches of EDS clusters, by cluster.
    eds_files: BTreeMap<String, JoinHandle<()>>,
    /// The JSON each CDS cluster came in, by name (`/config_dump`).
    cluster_sources: Sources,
}
// ANCHOR_END: dynamic_clusters

impl std::fmt::Debug for DynamicClusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicClusters").field("cds", &self.cds).finish()
    }
}

/// Checks a CDS update before anything changes: only clusters, each valid,
/// names unique, none the name of a static cluster.
pub fn validate_cds(resources: &[Resource], static_names: &BTreeSet<String>) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (i, r) in resources.iter().enumerate() {
        let at = FieldPath::root().field("resources").index(i);
        let Resource::Cluster(c) = r else {
            return Err(format!("{at}: not a Cluster"));
        };
        ClusterInfo::from_config(c, &at).map_err(|e| e.to_string())?;
        if !seen.insert(c.name.as_str()) {
            return Err(format!("{at}.name: duplicate cluster {:?}", c.name));
        }
        if static_names.contains(&c.name) {
            return Err(format!("{at}.name: {:?} is a static cluster", c.name));
        }
    }
    Ok(())
}

fn eds_file_source(c: &Cluster) -> Option<&ConfigSource> {
    let source = c.eds_cluster_config.as_ref()?.eds_config.as_ref()?;
    (c.cluster_type == DiscoveryType::Eds && source.file_path().is_some()).then_some(source)
}

impl DynamicClusters {
    /// CDS/EDS over `clusters` (static clusters already added), counting
    /// into the cluster manager's stats store.
    pub fn new(clusters: Rc<RefCell<ClusterManager>>) -> Rc<RefCell<Self>> {
        let cds = UpdateCounters::new(
            &clusters.borrow().store().root().scope("cluster_manager").scope("cds"),
        );
        Rc::new(RefCell::new(Self {
            clusters,
            cds,
            eds: BTreeMap::new(),
            eds_files: BTreeMap::new(),
            cluster_sources: Sources::new(),
        }))
    }

    /// The cluster manager CDS and EDS change.
    pub fn cluster_manager(&self) -> Rc<RefCell<ClusterManager>> {
        self.clusters.clone()
    }

    /// The JSON a CDS cluster came in (its file entry, or the protobuf JSON
    /// of its ADS resource).
    pub fn cluster_source(&self, name: &str) -> Option<&serde_json::Value> {
        self.cluster_sources.get(name)
    }

    /// After an accepted CDS update: keeps its clusters' JSON from
    /// `sources`, forgets removed ones.
    fn keep_cluster_sources(&mut self, update: &Update<Resource>, sources: &Sources) {
        for r in &update.resources {
            if let Some(json) = sources.get(r.name()) {
                self.cluster_sources.insert(r.name().to_string(), json.clone());
            }
        }
        for name in &update.removed {
            self.cluster_sources.remove(name);
        }
    }

    /// Health checking follows the new clusters and hosts.
    fn sync_health(&self) {
        if let Some(health) = crate::health::main_health() {
            health.sync(&self.clusters.borrow());
        }
    }

    /// EDS counters of `cluster` (`cluster.<name>.update_*`).
    fn eds_counters(&mut self, cluster: &str) -> &mut UpdateCounters {
        let store = self.clusters.borrow().store().clone();
        self.eds.entry(cluster.to_string()).or_insert_with(|| {
            UpdateCounters::new(&store.root().tagged_scope(
                "cluster",
                "envoy_cluster_name",
                cluster,
            ))
        })
    }

    fn static_names(&self) -> BTreeSet<String> {
        let cm = self.clusters.borrow();
        let names =
            cm.active().filter(|c| c.origin == crate::cluster_manager::ClusterOrigin::Static);
        names.map(|c| c.config.name.clone()).collect()
    }

    /// Applies a CDS update (added/changed clusters, removed names), all or
    /// nothing; counts it. Returns the EDS clusters whose endpoints come
    /// from a file, to watch.
    pub fn apply_cds(&mut self, update: &Update<Resource>) -> Result<Vec<Cluster>, String> {
        let result = self.try_apply_cds(update);
        self.sync_health();
        self.cds.record(&result.as_ref().map(|_| ()).map_err(Clone::clone), &update.version_info);
        if let Err(e) = &result {
            tracing::warn!(version = %update.version_info, "CDS update rejected: {e}");
        }
        result
    }

    fn try_apply_cds(&mut self, update: &Update<Resource>) -> Result<Vec<Cluster>, String> {
        validate_cds(&update.resources, &self.static_names())?;
        let mut cm = self.clusters.borrow_mut();
        let mut watch = Vec::new();
        for (i, r) in update.resources.iter().enumerate() {
            let Resource::Cluster(c) = r else { continue };
            let at = FieldPath::root().field("resources").index(i);
            let change = cm
                .add_or_update_cluster(c, &update.version_info, &at)
                .map_err(|e| e.to_string())?;
            if change == ClusterChange::Warming && c.cluster_type == DiscoveryType::Eds {
                end_warming_after_initial_fetch_timeout(&self.clusters, c);
            }
            if eds_file_source(c).is_some() {
                watch.push((**c).clone());
            }
        }
        for name in &update.removed {
            match cm.remove_cluster(name) {
                Ok(_) => {
                    if let Some(task) = self.eds_files.remove(name) {
                        task.abort();
                    }
                    self.eds.remove(name);
                }
                Err(ClusterManagerError::Static(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(watch)
    }

    /// Applies an EDS update: each `ClusterLoadAssignment` replaces the hosts
    /// of the clusters whose EDS service name it carries.
    pub fn apply_eds(&mut self, update: &Update<Resource>) -> Result<(), String> {
        let mut cm = self.clusters.borrow_mut();
        let mut result = Ok(());
        let mut touched = Vec::new();
        for (i, r) in update.resources.iter().enumerate() {
            let Resource::ClusterLoadAssignment(cla) = r else {
                result = Err(format!("resources[{i}]: not a ClusterLoadAssignment"));
                break;
            };
            let at = FieldPath::root().field("resources").index(i);
            let targets: Vec<String> = cm
                .active()
                .chain(cm.warming())
                .filter(|c| {
                    c.config.cluster_type == DiscoveryType::Eds
                        && c.config.eds_service_name() == cla.cluster_name
                })
                .map(|c| c.config.name.clone())
                .collect();
            for name in targets {
                if let Err(e) = cm.update_load_assignment(&name, cla, &at) {
                    result = Err(e.to_string());
                }
                touched.push(name);
            }
        }
        drop(cm);
        self.sync_health();
        for name in touched {
            self.eds_counters(&name).record(&result, &update.version_info);
        }
        if let Err(e) = &result {
            tracing::warn!(version = %update.version_info, "EDS update rejected: {e}");
        }
        result
    }
}

// ANCHOR: initial_fetch_timeout
/// Envoy's `initial_fetch_timeout` (default 15 s, 0: none) for a new EDS
/// cluster: if no assignment came by then, its initialization completes
/// without hosts (it serves `503 UH` rather than warm for ever), and a later
/// assignment fills it as usual.
fn end_warming_after_initial_fetch_timeout(clusters: &Rc<RefCell<ClusterManager>>, c: &Cluster) {
    let timeout = c
        .eds_cluster_config
        .as_ref()
        .and_then(|e| e.eds_config.as_ref())
        .map_or(std::time::Duration::from_secs(15), ConfigSource::initial_fetch_timeout);
    if timeout.is_zero() {
        return;
    }
    let (weak, config) = (Rc::downgrade(clusters), c.clone());
    tokio::task::spawn_local(async move {
        tokio::time::sleep(timeout).await;
        let Some(cm) = weak.upgrade() else { return };
        let still_waiting = {
            let cm = cm.borrow();
            cm.awaits_hosts(&config.name)
                && cm.get_any(&config.name).is_some_and(|w| w.config == config)
        };
        if !still_waiting {
            return;
        }
        tracing::warn!(
            "cluster {}: no endpoints within initial_fetch_timeout ({timeout:?}): serving without hosts",
            config.name
        );
        let empty = cm.borrow().get_any(&config.name).map(|w| (*w.entry.priority_set).clone());
        if let Some(empty) = empty
            && let Err(e) = cm.borrow_mut().update_hosts(&config.name, empty)
        {
            tracing::warn!("cluster {}: {e}", config.name);
        }
        if let Some(health) = crate::health::main_health() {
            health.sync(&cm.borrow());
        }
    });
}
// ANCHOR_END: initial_fetch_timeout

/// Watches one `DiscoveryResponse` file of `type_url`; applies its initial
/// content and every file moved into place.
/// `cluster` is the EDS cluster the file serves (`None` for CDS).
async fn watch_file(
    mut sub: FileSubscription,
    dynamic: Rc<RefCell<DynamicClusters>>,
    type_url: TypeUrl,
    cluster: Option<String>,
) {
    let mut next = sub.load();
    loop {
        match next {
            FileUpdate::Accepted(update) => apply(&dynamic, type_url, &update, sub.sources()),
            FileUpdate::Rejected { error } => {
                let mut d = dynamic.borrow_mut();
                let counters = match &cluster {
                    None => &mut d.cds,
                    Some(name) => d.eds_counters(name),
                };
                counters.record(&Err(error), "");
            }
        }
        next = match sub.next_update().await {
            Ok(update) => update,
            Err(e) => {
                tracing::error!(path = %sub.path().display(), "{e}");
                return;
            }
        };
    }
}

/// Applies one accepted CDS or EDS update (`sources`: its resources' JSON);
/// CDS starts file watches of new EDS clusters (LDS and RDS updates go to
/// the listener manager).
fn apply(
    dynamic: &Rc<RefCell<DynamicClusters>>,
    type_url: TypeUrl,
    update: &Update<Resource>,
    sources: &Sources,
) {
    match type_url {
        TypeUrl::Cluster => {
            let Ok(to_watch) = dynamic.borrow_mut().apply_cds(update) else { return };
            dynamic.borrow_mut().keep_cluster_sources(update, sources);
            for c in to_watch {
                watch_eds_file(dynamic, &c);
            }
        }
        TypeUrl::ClusterLoadAssignment => {
            let _ = dynamic.borrow_mut().apply_eds(update);
        }
        other => tracing::warn!("{} update ignored: not clusters or endpoints", other.short_name()),
    }
}

/// Counts a NACKed ADS response as `update_rejected` of its type.
fn reject(
    dynamic: &Rc<RefCell<DynamicClusters>>,
    listeners: &Rc<RefCell<ListenerManager>>,
    type_url: TypeUrl,
    names: &[String],
    error: &str,
) {
    tracing::warn!("{} response rejected: {error}", type_url.short_name());
    match type_url {
        TypeUrl::Cluster => dynamic.borrow_mut().cds.record(&Err(error.to_string()), ""),
        TypeUrl::Listener => listeners.borrow_mut().reject_lds(error),
        TypeUrl::RouteConfiguration => listeners.borrow_mut().routes.reject(names, error),
        _ => {}
    }
}

/// Watches the LDS file: applies its initial content and every file moved
/// into place to the listener manager, then starts the route file watches
/// new listeners need.
async fn watch_lds_file(mut sub: FileSubscription, listeners: Rc<RefCell<ListenerManager>>) {
    let mut next = sub.load();
    loop {
        match next {
            FileUpdate::Accepted(update) => {
                let _ = listeners.borrow_mut().apply_lds(&update, sub.sources());
                sync_rds_files(&listeners);
            }
            FileUpdate::Rejected { error } => listeners.borrow_mut().reject_lds(&error),
        }
        next = match sub.next_update().await {
            Ok(update) => update,
            Err(e) => {
                tracing::error!(path = %sub.path().display(), "{e}");
                return;
            }
        };
    }
}

/// Starts a watch of every route file the listeners read that is not
/// watched yet (one per path, whatever names it serves).
fn sync_rds_files(listeners: &Rc<RefCell<ListenerManager>>) {
    let sources = listeners.borrow().rds_sources();
    for source in sources {
        let Some(path) = source.file_path().map(str::to_string) else { continue };
        if listeners.borrow().rds_files.contains_key(&path) {
            continue;
        }
        let sub = match FileSubscription::from_config_source(&source, TypeUrl::RouteConfiguration) {
            Ok(sub) => sub,
            Err(e) => {
                tracing::error!(path = %path, "RDS: {e}");
                continue;
            }
        };
        let task = tokio::task::spawn_local(watch_rds_file(sub, listeners.clone(), path.clone()));
        listeners.borrow_mut().rds_files.insert(path, task);
    }
}

/// Watches one route file: each accepted version replaces the route
/// configurations it holds.
async fn watch_rds_file(
    mut sub: FileSubscription,
    listeners: Rc<RefCell<ListenerManager>>,
    path: String,
) {
    let mut next = sub.load();
    loop {
        match next {
            FileUpdate::Accepted(update) => {
                let _ = listeners.borrow_mut().apply_rds(&update, sub.sources());
            }
            FileUpdate::Rejected { error } => {
                let mut lm = listeners.borrow_mut();
                let names = lm.rds_names_from(&path);
                tracing::warn!(path = %path, "RDS file rejected: {error}");
                lm.routes.reject(&names, &error);
            }
        }
        next = match sub.next_update().await {
            Ok(update) => update,
            Err(e) => {
                tracing::error!(path = %sub.path().display(), "{e}");
                return;
            }
        };
    }
}

/// Starts (or restarts, if its source changed) the endpoint file watch of
/// an EDS cluster.
fn watch_eds_file(dynamic: &Rc<RefCell<DynamicClusters>>, c: &Cluster) {
    let Some(source) = eds_file_source(c) else { return };
    let sub = match FileSubscription::from_config_source(source, TypeUrl::ClusterLoadAssignment) {
        Ok(sub) => sub,
        Err(e) => {
            tracing::error!(cluster = %c.name, "EDS: {e}");
            return;
        }
    };
    let eds = TypeUrl::ClusterLoadAssignment;
    let task =
        tokio::task::spawn_local(watch_file(sub, dynamic.clone(), eds, Some(c.name.clone())));
    if let Some(old) = dynamic.borrow_mut().eds_files.insert(c.name.clone(), task) {
        old.abort();
    }
}

/// Forwards ACKed ADS updates to the main thread's loop; validates CDS,
/// LDS and RDS responses before they are ACKed.
struct Forward {
    updates: mpsc::UnboundedSender<AdsMessage>,
    static_names: BTreeSet<String>,
    listeners: crate::listener_manager::LdsValidator,
    /// The JSON of the last validated response of each type.
    decoded: BTreeMap<TypeUrl, Sources>,
    /// The policy for fields newer than our Envoy API, and their counter
    /// (`server.dynamic_unknown_fields`).
    unknown_fields: (UnknownDynamicFields, Counter),
}

impl AdsHandler for Forward {
    fn unknown_fields_policy(&self) -> UnknownFields {
        match self.unknown_fields.0 {
            UnknownDynamicFields::Reject => UnknownFields::Reject,
            UnknownDynamicFields::Warn | UnknownDynamicFields::Ignore => UnknownFields::Accept,
        }
    }

    fn unknown_fields(&mut self, type_url: TypeUrl, resource: &str, fields: Vec<String>) {
        if self.unknown_fields.0 == UnknownDynamicFields::Warn {
            // Envoy counts each message with unknown fields once.
            self.unknown_fields.1.inc();
            tracing::warn!(
                "{} {resource:?}: fields newer than mini-envoy's Envoy API were ignored: {}",
                type_url.as_str(),
                fields.join("; ")
            );
        }
    }

    fn validate(&mut self, type_url: TypeUrl, resources: &[Resource]) -> Result<(), String> {
        match type_url {
            TypeUrl::Cluster => validate_cds(resources, &self.static_names),
            TypeUrl::Listener => self.listeners.validate(resources),
            TypeUrl::RouteConfiguration => {
                let scratch = week3_filters::context::FactoryContext::default();
                crate::rds::compile_all(resources, &scratch).map(|_| ())
            }
            _ => Ok(()),
        }
    }

    fn rejected(&mut self, type_url: TypeUrl, names: Vec<String>, error: &str) {
        // NACKed: the main thread counts it as `update_rejected`.
        let error = error.to_string();
        let _ = self.updates.send(AdsMessage::Rejected { type_url, names, error });
    }

    fn decoded(&mut self, type_url: TypeUrl, sources: Vec<(String, serde_json::Value)>) {
        self.decoded.insert(type_url, sources.into_iter().collect());
    }

    fn apply(&mut self, update: Update<Resource>) {
        let sources = self.decoded.remove(&update.type_url).unwrap_or_default();
        let _ = self.updates.send(AdsMessage::Update(update, sources));
    }
}

/// What the ADS client hands the main thread.
enum AdsMessage {
    /// An ACKed update, with its resources' JSON.
    Update(Update<Resource>, Sources),
    /// A NACKed response: its resource names and why.
    Rejected { type_url: TypeUrl, names: Vec<String>, error: String },
}

/// What [`start`] runs until `shutdown`.
#[derive(Debug, Default)]
pub struct Started {
    /// Whether anything is dynamic.
    pub active: bool,
}

/// Starts CDS and EDS for `bootstrap` on the main thread (inside its
/// dispatcher): file watches, and the ADS client if any source is `ads`.
/// `node` identifies this proxy to the management server.
pub fn start(
    bootstrap: &Bootstrap,
    dynamic: &Rc<RefCell<DynamicClusters>>,
    listeners: &Rc<RefCell<ListenerManager>>,
    node: Node,
    unknown_fields: (UnknownDynamicFields, Counter),
    shutdown: watch::Receiver<bool>,
) -> Result<Started, ConfigError> {
    let dr = bootstrap.dynamic_resources.as_ref();
    let at = FieldPath::root().field("dynamic_resources");
    let mut started = Started::default();
    // LDS from a file, and the route files of the static listeners.
    let lds = dr.and_then(|d| d.lds_config.as_ref());
    let lds_over_ads = lds.is_some_and(|s| s.ads.is_some());
    if let Some(source) = lds.filter(|s| s.file_path().is_some()) {
        let sub = FileSubscription::from_config_source(source, TypeUrl::Listener)
            .map_err(|e| ConfigError::invalid(at.field("lds_config"), e.to_string()))?;
        tokio::task::spawn_local(watch_lds_file(sub, listeners.clone()));
        started.active = true;
    }
    sync_rds_files(listeners);
    let static_rds_ads: Vec<String> = listeners
        .borrow()
        .active()
        .iter()
        .chain(listeners.borrow().warming())
        .flat_map(|l| l.entry.rds.iter())
        .filter(|r| r.source.ads.is_some())
        .map(|r| r.name.clone())
        .collect();
    let mut ads_eds: Vec<String> = Vec::new();
    for c in bootstrap.clusters() {
        if eds_file_source(c).is_some() {
            watch_eds_file(dynamic, c);
            started.active = true;
        } else if c.cluster_type == DiscoveryType::Eds {
            ads_eds.push(c.eds_service_name().to_string());
        }
    }
    let cds = dr.and_then(|d| d.cds_config.as_ref());
    let cds_over_ads = cds.is_some_and(|s| s.ads.is_some());
    if let Some(source) = cds.filter(|s| s.file_path().is_some()) {
        let sub = FileSubscription::from_config_source(source, TypeUrl::Cluster)
            .map_err(|e| ConfigError::invalid(at.field("cds_config"), e.to_string()))?;
        tokio::task::spawn_local(watch_file(sub, dynamic.clone(), TypeUrl::Cluster, None));
        started.active = true;
    }
    if !cds_over_ads && ads_eds.is_empty() && !lds_over_ads && static_rds_ads.is_empty() {
        return Ok(started);
    }
    let ads = dr.and_then(|d| d.ads_config.as_ref()).ok_or_else(|| {
        ConfigError::invalid(at.field("ads_config"), "must be set when a config source is ads")
    })?;
    let ads_at = at.field("ads_config");
    let endpoint =
        ads_endpoint(ads.grpc_cluster_names().next(), &dynamic.borrow().clusters.borrow())
            .map_err(|e| ConfigError::invalid(ads_at.field("grpc_services"), e))?;
    let mode = match ads.api_type {
        ApiType::DeltaGrpc => Mode::Delta,
        _ => Mode::Sotw,
    };
    let mut config = MuxConfig::new(mode, node);
    config.set_node_on_first_message_only = ads.set_node_on_first_message_only;
    if let Some(t) = cds.map(ConfigSource::initial_fetch_timeout) {
        config.initial_fetch_timeout = t;
    }
    let mut mux = AdsMux::new(config);
    let now = std::time::Instant::now();
    if cds_over_ads {
        mux.subscribe(TypeUrl::Cluster, Interest::wildcard(), now);
    }
    // EDS names of dynamic clusters are added by the mux (CDS dependencies),
    // and so are the RDS names of LDS listeners.
    if !ads_eds.is_empty() {
        mux.subscribe(TypeUrl::ClusterLoadAssignment, Interest::names(ads_eds), now);
    }
    if lds_over_ads {
        mux.subscribe(TypeUrl::Listener, Interest::wildcard(), now);
    }
    if !static_rds_ads.is_empty() {
        mux.subscribe(TypeUrl::RouteConfiguration, Interest::names(static_rds_ads), now);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = Forward {
        updates: tx,
        static_names: dynamic.borrow().static_names(),
        listeners: listeners.borrow().validator(),
        decoded: BTreeMap::new(),
        unknown_fields,
    };
    tokio::task::spawn_local(async move {
        if let Err(e) = client::run(endpoint, mux, handler, SystemRandom::new(), shutdown).await {
            tracing::error!("ADS: {e}");
        }
    });
    let dynamic = dynamic.clone();
    let listeners = listeners.clone();
    tokio::task::spawn_local(async move {
        while let Some(message) = rx.recv().await {
            let (update, sources) = match message {
                AdsMessage::Update(update, sources) => (update, sources),
                AdsMessage::Rejected { type_url, names, error } => {
                    reject(&dynamic, &listeners, type_url, &names, &error);
                    continue;
                }
            };
            match update.type_url {
                TypeUrl::Listener => {
                    let _ = listeners.borrow_mut().apply_lds(&update, &sources);
                    sync_rds_files(&listeners);
                }
                TypeUrl::RouteConfiguration => {
                    let _ = listeners.borrow_mut().apply_rds(&update, &sources);
                }
                _ => apply(&dynamic, update.type_url, &update, &sources),
            }
        }
    });
    started.active = true;
    Ok(started)
}

/// `http://<address>` of the static cluster serving ADS (its first host).
fn ads_endpoint(cluster: Option<&str>, cm: &ClusterManager) -> Result<String, String> {
    let name = cluster.ok_or("needs a grpc_services[].envoy_grpc.cluster_name")?;
    let entry = cm.get(name).ok_or_else(|| format!("cluster {name:?} is not a static cluster"))?;
    let host: Option<SocketAddr> = entry
        .entry
        .priority_set
        .host_sets()
        .iter()
        .flat_map(|hs| hs.hosts().iter())
        .map(|h| h.address())
        .next();
    let host = host.ok_or_else(|| format!("cluster {name:?} has no host"))?;
    Ok(format!("http://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_manager::OwnedResolver;
    use crate::stats::Store;
    use week1_core::config::bootstrap::DiscoveryResponse;
    use week2_threads::dispatcher::{Dispatcher, TokioDispatcher};
    use week2_threads::tls::Instance;

    fn update(type_url: TypeUrl, version: &str, yaml: &str, removed: &[&str]) -> Update<Resource> {
        let resp: DiscoveryResponse =
            week1_core::config::load_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        Update {
            type_url,
            version_info: version.into(),
            resources: resp.resources,
            removed: removed.iter().map(|r| r.to_string()).collect(),
            warming: Default::default(),
        }
    }

    /// `web`'s `initial_fetch_timeout: 0s`: these tests run without a tokio
    /// runtime, where the timeout's timer could not be started.
    const CDS: &str = r#"
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  type: EDS
  connect_timeout: 1s
  eds_cluster_config: {service_name: web-eds, eds_config: {ads: {}, initial_fetch_timeout: 0s}}
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: api
  connect_timeout: 1s
  load_assignment:
    cluster_name: api
    endpoints:
    - lb_endpoints:
      - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8001}}}
"#;

    const EDS: &str = r#"
resources:
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: web-eds
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9001}}}
"#;

    fn dynamic() -> (TokioDispatcher, Store, Rc<RefCell<DynamicClusters>>) {
        let main = TokioDispatcher::new("main_thread").unwrap();
        let tls = Instance::new(main.handle());
        let resolve: OwnedResolver = Box::new(|_, h, _| Err(format!("no DNS for {h}")));
        let store = Store::default();
        let cm = ClusterManager::new(tls.allocate_slot().unwrap(), resolve, store.clone()).unwrap();
        (main, store, DynamicClusters::new(Rc::new(RefCell::new(cm))))
    }

    fn serving(d: &Rc<RefCell<DynamicClusters>>) -> Vec<String> {
        let d = d.borrow();
        let cm = d.clusters.borrow();
        let mut names: Vec<String> = cm.map().keys().cloned().collect();
        names.sort();
        names
    }

    #[test]
    fn cds_then_eds_warms_and_serves_and_removal_drops() {
        let (_main, store, d) = dynamic();
        let watch = d.borrow_mut().apply_cds(&update(TypeUrl::Cluster, "1", CDS, &[])).unwrap();
        assert!(watch.is_empty(), "no file-based EDS here");
        assert_eq!(serving(&d), ["api"], "web warms until its endpoints arrive");
        d.borrow_mut().apply_eds(&update(TypeUrl::ClusterLoadAssignment, "e1", EDS, &[])).unwrap();
        assert_eq!(serving(&d), ["api", "web"], "EDS by service name");
        d.borrow_mut()
            .apply_cds(&update(TypeUrl::Cluster, "2", "resources: []", &["api"]))
            .unwrap();
        assert_eq!(serving(&d), ["web"]);
        assert_eq!(store.counter_value("cluster_manager.cds.update_success"), Some(2));
        assert_eq!(store.counter_value("cluster.web.update_success"), Some(1));
        assert_eq!(d.borrow().cds.version_info, "2");
    }

    #[test]
    fn a_rejected_cds_update_changes_nothing() {
        let (_main, store, d) = dynamic();
        d.borrow_mut().apply_cds(&update(TypeUrl::Cluster, "1", CDS, &[])).unwrap();
        // An endpoint resource in a CDS update, which also removes `api`.
        let eds = update(TypeUrl::ClusterLoadAssignment, "2", EDS, &["api"]);
        let bad = Update { type_url: TypeUrl::Cluster, ..eds };
        let err = d.borrow_mut().apply_cds(&bad).unwrap_err();
        assert!(err.contains("not a Cluster"), "{err}");
        assert_eq!(serving(&d), ["api"], "the removal in the rejected update did not happen");
        assert_eq!(store.counter_value("cluster_manager.cds.update_rejected"), Some(1));
        assert_eq!(d.borrow().cds.version_info, "1");
    }

    #[test]
    fn cds_cannot_reuse_a_static_cluster_name() {
        let statics: BTreeSet<String> = ["api".to_string()].into();
        let resources = update(TypeUrl::Cluster, "1", CDS, &[]).resources;
        let err = validate_cds(&resources, &statics).unwrap_err();
        assert!(err.contains("static cluster"), "{err}");
        assert!(validate_cds(&resources, &BTreeSet::new()).is_ok());
    }
}
