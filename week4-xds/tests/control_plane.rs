//! The bundled control plane as a server, driven by a raw ADS client (Envoy's
//! generated protobuf client, not our own xDS client): the stale-nonce rule of
//! the xDS protocol, and reloading its YAML files on atomic move-in. Every wait
//! is bounded and event-driven (no sleeps).

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use week4_xds::grpc::server::ControlPlane;

mod common;
use common::{TempDir, move_in, start_server};

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const GUARD: Duration = Duration::from_secs(10);

fn cluster(name: &str, port: u16) -> Value {
    json!({"@type": CDS, "name": name, "type": "STATIC", "connect_timeout": "1s",
           "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
               {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}})
}

/// A raw SotW stream: requests go in through a channel, responses come out.
struct RawStream {
    requests: mpsc::UnboundedSender<DiscoveryRequest>,
    responses: tonic::Streaming<DiscoveryResponse>,
}

impl RawStream {
    async fn open(endpoint: String) -> Self {
        let mut client =
            AggregatedDiscoveryServiceClient::connect(endpoint).await.expect("connect");
        let (requests, rx) = mpsc::unbounded_channel();
        let responses = client
            .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
            .await
            .expect("open the ADS stream")
            .into_inner();
        Self { requests, responses }
    }

    fn send(&self, version: &str, nonce: &str, names: &[&str]) {
        let request = DiscoveryRequest {
            node: Some(Node { id: "raw".into(), ..Default::default() }),
            type_url: CDS.into(),
            version_info: version.into(),
            response_nonce: nonce.into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        };
        self.requests.send(request).expect("stream open");
    }

    async fn next(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(GUARD, self.responses.next())
            .await
            .expect("a response within the deadlock guard")
            .expect("stream open")
            .expect("a response, not an error")
    }
}

fn names(r: &DiscoveryResponse) -> Vec<String> {
    let mut names: Vec<String> = r
        .resources
        .iter()
        .map(|any| {
            let c =
                <envoy_types::pb::envoy::config::cluster::v3::Cluster as prost::Message>::decode(
                    any.value.as_slice(),
                )
                .expect("a Cluster");
            c.name
        })
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_a_stale_nonce_are_ignored() {
    let cp = ControlPlane::new();
    cp.set_resources(&[cluster("api", 8081), cluster("web", 8080)]).expect("snapshot");
    let (endpoint, stop) = start_server(&cp).await;
    let mut stream = RawStream::open(endpoint).await;

    // Wildcard subscription: version 1 with both clusters.
    stream.send("", "", &[]);
    let first = stream.next().await;
    assert_eq!(first.version_info, "1");
    assert_eq!(names(&first), ["api", "web"]);
    stream.send("1", &first.nonce, &[]);

    // A new version is pushed with a new nonce.
    cp.set_resources(&[cluster("api", 8082), cluster("web", 8080)]).expect("snapshot");
    let second = stream.next().await;
    assert_eq!(second.version_info, "2");
    assert_ne!(second.nonce, first.nonce);

    // A request answering the *first* response is stale: it must change nothing,
    // even though it narrows the subscription to "api".
    stream.send("1", &first.nonce, &["api"]);
    // A request answering the latest response that narrows to "web" is current.
    // Requests are handled in order, so had the stale one been acted on, its
    // ["api"] response would arrive first.
    stream.send("2", &second.nonce, &["web"]);
    let third = stream.next().await;
    assert_eq!(names(&third), ["web"], "the stale request was acted on");
    assert_eq!(third.version_info, "2");

    stop.send_replace(true);
}

fn response_file(clusters: &[(&str, u16)]) -> String {
    let mut text = String::from("resources:\n");
    for (name, port) in clusters {
        text.push_str(&format!(
            "- \"@type\": {CDS}\n  name: {name}\n  type: STATIC\n  load_assignment:\n    cluster_name: {name}\n    endpoints:\n    - lb_endpoints:\n      - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n"
        ));
    }
    text
}

async fn next_version(
    changes: &mut watch::Receiver<std::sync::Arc<week4_xds::grpc::server::ServerSnapshot>>,
) -> u64 {
    tokio::time::timeout(GUARD, changes.changed())
        .await
        .expect("a reload within the deadlock guard")
        .expect("control plane alive");
    changes.borrow_and_update().version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_files_reload_on_move_in_and_a_bad_file_keeps_the_snapshot() {
    let dir = TempDir::new();
    let path = dir.0.join("cds.yaml");
    std::fs::write(&path, response_file(&[("web", 8080)])).expect("write");
    let cp = ControlPlane::new();
    assert_eq!(cp.load_files(std::slice::from_ref(&path)).expect("load"), 1);
    let mut changes = cp.subscribe();
    let _watcher = cp.watch_files(vec![path.clone()]).expect("watch");

    // An atomic move-in of a changed file is served as the next version.
    move_in(&dir.0, "cds.yaml", &response_file(&[("web", 8080), ("api", 8081)]));
    assert_eq!(next_version(&mut changes).await, 2);
    assert_eq!(cp.snapshot().resources.values().map(|m| m.len()).sum::<usize>(), 2);

    // A file the week 1 loader rejects keeps the served snapshot, and the next
    // good file is version 3, not 4: the bad one made no version.
    move_in(&dir.0, "cds.yaml", &response_file(&[("web", 8080)]).replace("STATIC", "STATIK"));
    move_in(&dir.0, "cds.yaml", &response_file(&[("api", 8081)]));
    assert_eq!(next_version(&mut changes).await, 3);
    let snapshot = cp.snapshot();
    let served: Vec<&String> = snapshot.resources.values().flat_map(|m| m.keys()).collect();
    assert_eq!(served, ["api"]);
}
