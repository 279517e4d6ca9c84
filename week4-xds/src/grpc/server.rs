//! A small ADS control plane (the role go-control-plane's snapshot cache plays):
//! serves snapshots built from YAML `DiscoveryResponse` files over
//! `StreamAggregatedResources` (SotW) and `DeltaAggregatedResources`, and
//! pushes a new version to every stream when the snapshot changes.
//!
//! ```text
//!  YAML files ─► week 1 loader (validate) ─► JSON ─► convert ─► Any
//!      └─► ControlPlane::set_snapshot ─► watch ─► every stream task
//!  stream task: request ─► stale nonce? ignore : update interest ─► respond
//!               snapshot changed ─► respond to every subscribed type
//! ```
//!
//! SotW: a type is (re)sent when the snapshot version differs from what the
//! stream last sent, or the names asked for changed; requests whose
//! `response_nonce` is not the latest nonce sent for the type are stale and
//! ignored, as the xDS spec says. Delta: each resource's version is the hash
//! of its bytes; the server sends what the client does not hold at that
//! version, and `removed_resources` for what disappeared.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3 as pb;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::google::protobuf::Any;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::UnboundedReceiverStream;
use week1_core::config::bootstrap::DiscoveryResponse as FileResponse;

use super::convert::{self, ConvertError};
use crate::config_manager::hash_bytes;
use crate::resource::TypeUrl;

/// A versioned set of resources, as served.
#[derive(Debug, Default)]
pub struct ServerSnapshot {
    /// Increments with every change.
    pub version: u64,
    /// Resources by type and name: the encoded resource and its version.
    pub resources: BTreeMap<TypeUrl, BTreeMap<String, (Any, String)>>,
}

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// A file is unreadable or invalid.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A resource cannot be encoded.
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

/// The control plane: clone it freely (shared snapshot).
#[derive(Debug, Clone)]
pub struct ControlPlane {
    snapshot: watch::Sender<Arc<ServerSnapshot>>,
}

impl Default for ControlPlane {
    fn default() -> Self {
        Self::new()
    }
}

impl ControlPlane {
    /// An empty control plane (version 0, no resources).
    pub fn new() -> Self {
        Self { snapshot: watch::Sender::new(Arc::new(ServerSnapshot::default())) }
    }

    /// The snapshot being served.
    pub fn snapshot(&self) -> Arc<ServerSnapshot> {
        self.snapshot.borrow().clone()
    }

    /// Notified each time the served snapshot changes (a new version).
    pub fn subscribe(&self) -> watch::Receiver<Arc<ServerSnapshot>> {
        self.snapshot.subscribe()
    }

    /// Replaces every resource with `resources` (protobuf JSON with `"@type"`).
    /// Returns the new version; an identical set keeps the version.
    pub fn set_resources(&self, resources: &[serde_json::Value]) -> Result<u64, ControlPlaneError> {
        let mut encoded = Vec::with_capacity(resources.len());
        for (i, r) in resources.iter().enumerate() {
            let any = convert::json_to_any(r)
                .map_err(|e| ConvertError(format!("resources[{i}]: {e}")))?;
            let name = convert::json_resource_name(r)
                .ok_or_else(|| ConvertError(format!("resources[{i}]: no name")))?
                .to_string();
            encoded.push((name, any));
        }
        self.set_encoded(encoded)
    }

    /// Replaces every resource with already encoded ones, by name, served as
    /// they are (e.g. built from a newer Envoy API than mini-envoy's).
    pub fn set_encoded(&self, resources: Vec<(String, Any)>) -> Result<u64, ControlPlaneError> {
        let mut by_type: BTreeMap<TypeUrl, BTreeMap<String, (Any, String)>> = BTreeMap::new();
        for (i, (name, any)) in resources.into_iter().enumerate() {
            let t = TypeUrl::parse(&any.type_url)
                .ok_or_else(|| ConvertError(format!("resources[{i}]: unknown type")))?;
            let version = format!("{:016x}", hash_bytes(&any.value));
            by_type.entry(t).or_default().insert(name, (any, version));
        }
        let mut version = 0;
        self.snapshot.send_if_modified(|cur| {
            if cur.resources == by_type {
                version = cur.version;
                return false;
            }
            version = cur.version + 1;
            *cur = Arc::new(ServerSnapshot { version, resources: by_type });
            true
        });
        Ok(version)
    }

    /// Loads `DiscoveryResponse` YAML/JSON files (each validated by the week 1
    /// loader, so the control plane never serves what mini-envoy would reject)
    /// and serves their union.
    pub fn load_files(&self, paths: &[PathBuf]) -> Result<u64, ControlPlaneError> {
        let mut all = Vec::new();
        for path in paths {
            let file_err =
                |message: String| ControlPlaneError::File { path: path.clone(), message };
            let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
            // One parse: the tree is validated as a response, then read as JSON.
            let tree = week1_core::config::yaml::parse(&text, &Default::default())
                .map_err(|e| file_err(e.to_string()))?;
            week1_core::config::from_tree::<FileResponse>(&tree, Default::default())
                .map_err(|e| file_err(e.to_string()))?;
            let value: serde_json::Value =
                week1_core::config::de::from_node(&tree, &Default::default())
                    .map_err(|e| file_err(e.to_string()))?;
            if let Some(list) = value.get("resources").and_then(serde_json::Value::as_array) {
                all.extend(list.iter().cloned());
            }
        }
        self.set_resources(&all)
    }

    /// Watches the files' directories and reloads when one of them is moved
    /// into place; a bad file is logged and the served snapshot stays. Runs
    /// until the returned watcher is dropped (the caller keeps it).
    pub fn watch_files(
        &self,
        paths: Vec<PathBuf>,
    ) -> Result<notify::RecommendedWatcher, notify::Error> {
        use notify::Watcher;
        let cp = self.clone();
        let names: BTreeSet<std::ffi::OsString> =
            paths.iter().filter_map(|p| p.file_name().map(|n| n.to_os_string())).collect();
        let dirs: BTreeSet<PathBuf> = paths
            .iter()
            .map(|p| p.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf))
            .collect();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let Ok(ev) = ev else { return };
            let moved_in = matches!(
                ev.kind,
                notify::EventKind::Modify(notify::event::ModifyKind::Name(
                    notify::event::RenameMode::To | notify::event::RenameMode::Any
                ))
            );
            if moved_in && ev.paths.iter().any(|p| p.file_name().is_some_and(|n| names.contains(n)))
            {
                match cp.load_files(&paths) {
                    Ok(v) => tracing::info!(version = v, "control plane reloaded"),
                    Err(e) => tracing::warn!("control plane kept its snapshot: {e}"),
                }
            }
        })?;
        for d in dirs {
            watcher.watch(
                if d.as_os_str().is_empty() { Path::new(".") } else { &d },
                notify::RecursiveMode::NonRecursive,
            )?;
        }
        Ok(watcher)
    }

    /// The tonic service to add to a server.
    pub fn service(&self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self.clone())
    }

    /// Serves ADS on `listener` (HTTP/2, plaintext) until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        tonic::transport::Server::builder()
            .add_service(self.service())
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown,
            )
            .await
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for ControlPlane {
    type StreamAggregatedResourcesStream = BoxStream<pb::DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = BoxStream<pb::DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<pb::DiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::StreamAggregatedResourcesStream>, tonic::Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(sotw_stream(inbound, self.snapshot.subscribe(), tx));
        Ok(tonic::Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<pb::DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::DeltaAggregatedResourcesStream>, tonic::Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(delta_stream(inbound, self.snapshot.subscribe(), tx));
        Ok(tonic::Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}

#[derive(Debug, Default)]
struct SotwWatch {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Latest nonce sent for this type ("" before any).
    nonce: String,
    /// Snapshot version last sent.
    sent: Option<u64>,
}

async fn sotw_stream(
    mut inbound: tonic::Streaming<pb::DiscoveryRequest>,
    mut snapshots: watch::Receiver<Arc<ServerSnapshot>>,
    tx: mpsc::UnboundedSender<Result<pb::DiscoveryResponse, tonic::Status>>,
) {
    let mut watches: BTreeMap<TypeUrl, SotwWatch> = BTreeMap::new();
    let mut nonce = 0u64;
    loop {
        tokio::select! {
            msg = inbound.message() => {
                let req = match msg {
                    Ok(Some(r)) => convert::request_from_pb(&r),
                    _ => return,
                };
                let Some(t) = TypeUrl::parse(&req.type_url) else { continue };
                let w = watches.entry(t).or_default();
                // ANCHOR: stale_nonce
                if !req.response_nonce.is_empty() && req.response_nonce != w.nonce {
                    continue; // stale: answers a response superseded since
                }
                // ANCHOR_END: stale_nonce
                if let Some(e) = &req.error_detail {
                    tracing::warn!(type_url = %t, "client NACKed: {}", e.message);
                    continue;
                }
                let names: BTreeSet<String> =
                    req.resource_names.iter().filter(|n| n.as_str() != "*").cloned().collect();
                let wildcard = req.resource_names.is_empty() || req.resource_names.iter().any(|n| n == "*");
                let changed = names != w.names || wildcard != w.wildcard;
                w.names = names;
                w.wildcard = wildcard;
                let snap = snapshots.borrow().clone();
                let client_has = req.version_info == snap.version.to_string();
                if w.sent.is_none() && client_has && req.response_nonce.is_empty() && !changed {
                    // Reconnected and already up to date: nothing to send.
                    w.sent = Some(snap.version);
                    continue;
                }
                if changed || w.sent != Some(snap.version) {
                    send_sotw(t, w, &snap, &mut nonce, &tx);
                }
            }
            res = snapshots.changed() => {
                if res.is_err() { return; }
                let snap = snapshots.borrow_and_update().clone();
                for t in TypeUrl::ADS_ORDER {
                    if let Some(w) = watches.get_mut(&t) && w.sent.is_some() && w.sent != Some(snap.version) {
                        send_sotw(t, w, &snap, &mut nonce, &tx);
                    }
                }
            }
        }
    }
}

fn send_sotw(
    t: TypeUrl,
    w: &mut SotwWatch,
    snap: &ServerSnapshot,
    nonce: &mut u64,
    tx: &mpsc::UnboundedSender<Result<pb::DiscoveryResponse, tonic::Status>>,
) {
    let empty = BTreeMap::new();
    let all = snap.resources.get(&t).unwrap_or(&empty);
    let resources: Vec<Any> = all
        .iter()
        .filter(|(name, _)| w.wildcard || w.names.contains(*name))
        .map(|(_, (any, _))| any.clone())
        .collect();
    *nonce += 1;
    w.nonce = nonce.to_string();
    w.sent = Some(snap.version);
    let resp = crate::protocol::DiscoveryResponse {
        version_info: snap.version.to_string(),
        resources,
        type_url: t.as_str().to_string(),
        nonce: w.nonce.clone(),
        ..Default::default()
    };
    let _ = tx.send(Ok(convert::response_to_pb(resp)));
}

#[derive(Debug, Default)]
struct DeltaWatch {
    wildcard: bool,
    names: BTreeSet<String>,
    /// What the client holds: name → version.
    known: HashMap<String, String>,
    nonce: String,
    started: bool,
}

async fn delta_stream(
    mut inbound: tonic::Streaming<pb::DeltaDiscoveryRequest>,
    mut snapshots: watch::Receiver<Arc<ServerSnapshot>>,
    tx: mpsc::UnboundedSender<Result<pb::DeltaDiscoveryResponse, tonic::Status>>,
) {
    let mut watches: BTreeMap<TypeUrl, DeltaWatch> = BTreeMap::new();
    let mut nonce = 0u64;
    loop {
        tokio::select! {
            msg = inbound.message() => {
                let req = match msg {
                    Ok(Some(r)) => convert::delta_request_from_pb(&r),
                    _ => return,
                };
                let Some(t) = TypeUrl::parse(&req.type_url) else { continue };
                let w = watches.entry(t).or_default();
                if !w.started {
                    w.started = true;
                    w.wildcard = req.resource_names_subscribe.is_empty()
                        || req.resource_names_subscribe.iter().any(|n| n == "*");
                    w.known = req.initial_resource_versions.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                }
                for n in &req.resource_names_subscribe {
                    if n == "*" { w.wildcard = true } else { w.names.insert(n.clone()); }
                }
                for n in &req.resource_names_unsubscribe {
                    if n == "*" { w.wildcard = false } else { w.names.remove(n); w.known.remove(n); }
                }
                if let Some(e) = &req.error_detail {
                    tracing::warn!(type_url = %t, "client NACKed: {}", e.message);
                }
                let snap = snapshots.borrow().clone();
                send_delta(t, w, &snap, &mut nonce, &tx);
            }
            res = snapshots.changed() => {
                if res.is_err() { return; }
                let snap = snapshots.borrow_and_update().clone();
                for t in TypeUrl::ADS_ORDER {
                    if let Some(w) = watches.get_mut(&t) {
                        send_delta(t, w, &snap, &mut nonce, &tx);
                    }
                }
            }
        }
    }
}

/// Sends what the client lacks; nothing when it is up to date.
fn send_delta(
    t: TypeUrl,
    w: &mut DeltaWatch,
    snap: &ServerSnapshot,
    nonce: &mut u64,
    tx: &mpsc::UnboundedSender<Result<pb::DeltaDiscoveryResponse, tonic::Status>>,
) {
    let empty = BTreeMap::new();
    let all = snap.resources.get(&t).unwrap_or(&empty);
    let wanted = |n: &str| w.wildcard || w.names.contains(n);
    let mut resources = Vec::new();
    for (name, (any, version)) in all {
        if wanted(name) && w.known.get(name) != Some(version) {
            resources.push(crate::protocol::DeltaResource {
                name: name.clone(),
                aliases: Vec::new(),
                version: version.clone(),
                resource: Some(any.clone()),
            });
        }
    }
    let mut removed: Vec<String> =
        w.known.keys().filter(|n| !all.contains_key(*n)).cloned().collect();
    removed.sort();
    if resources.is_empty() && removed.is_empty() {
        return;
    }
    for r in &resources {
        w.known.insert(r.name.clone(), r.version.clone());
    }
    for n in &removed {
        w.known.remove(n);
    }
    *nonce += 1;
    w.nonce = nonce.to_string();
    let resp = crate::protocol::DeltaDiscoveryResponse {
        system_version_info: snap.version.to_string(),
        resources,
        type_url: t.as_str().to_string(),
        removed_resources: removed,
        nonce: w.nonce.clone(),
    };
    let _ = tx.send(Ok(convert::delta_response_to_pb(resp)));
}
