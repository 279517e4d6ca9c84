//! The gRPC ADS client (Envoy's `GrpcMuxImpl` / `NewGrpcMuxImpl` with its
//! `GrpcStream`): one task owning an [`AdsMux`] and the stream.
//!
//! ```text
//!  connect ─► StreamAggregatedResources / DeltaAggregatedResources
//!     │  mux.connected(): queued requests (CDS first, last versions) ─► outbound
//!     ├─ inbound response ─► Any → JSON → week 1 model (convert + loader)
//!     │      └─► handler.validate ─► mux (ACK / NACK) ─► handler.apply ─► outbound
//!     ├─ mux deadline ─► mux.handle_timeout (initial fetch, warming)
//!     └─ stream ends / fails ─► mux.disconnected() = jittered backoff ─► reconnect
//! ```

use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3 as pb;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::Any;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use week1_core::config::bootstrap::Resource;

use super::convert::{self, UnknownFields};
use crate::backoff::RandomSource;
use crate::model::type_of;
use crate::mux::{AdsMux, Event, Mode};
use crate::protocol::Request;
use crate::resource::TypeUrl;
use crate::subscription::{Outcome, Update};

/// What the proxy does with what the client receives.
pub trait AdsHandler: Send {
    /// Checks a response's resources before they are ACKed (e.g. with
    /// `ConfigManager::check`); an `Err` NACKs the response with its message.
    fn validate(&mut self, _type_url: TypeUrl, _resources: &[Resource]) -> Result<(), String> {
        Ok(())
    }

    /// The resources of a response that passed validation, as the protobuf
    /// JSON they were decoded from (name, JSON); called just before the
    /// response is ACKed and its update applied (for `/config_dump`).
    fn decoded(&mut self, _type_url: TypeUrl, _sources: Vec<(String, serde_json::Value)>) {}

    /// What to do with field numbers newer than mini-envoy's Envoy API:
    /// accept and report them (Envoy's default) or NACK the response
    /// (Envoy's `--reject-unknown-dynamic-fields`).
    fn unknown_fields_policy(&self) -> UnknownFields {
        UnknownFields::Accept
    }

    /// A resource that passed validation carried unknown fields (each as
    /// `<path>: field number N of <message>`); called before the ACK.
    fn unknown_fields(&mut self, _type_url: TypeUrl, _resource: &str, _fields: Vec<String>) {}

    /// A response is NACKed with `error`: it could not be decoded, the loader
    /// refused a resource, or [`validate`](Self::validate) did (`names`: the
    /// resources it held, when they were decoded). Envoy's `update_rejected`.
    fn rejected(&mut self, _type_url: TypeUrl, _names: Vec<String>, _error: &str) {}

    /// Applies an ACKed update.
    fn apply(&mut self, update: Update<Resource>);

    /// A warming, timeout or initialisation event.
    fn event(&mut self, _event: Event) {}
}

/// Why the client stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint URI is invalid.
    #[error("invalid endpoint {0}")]
    Endpoint(String),
}

/// A resource decoded from a response.
#[derive(Debug, Clone)]
pub struct DecodedResource {
    /// The week 1 model, validated by its loader.
    pub resource: Resource,
    /// The protobuf JSON it was loaded from (for `/config_dump`).
    pub json: serde_json::Value,
    /// Fields the descriptors do not know, when the policy accepted them.
    pub unknown_fields: Vec<String>,
}

/// Decodes a response's resources into the week 1 model, with week 1's validation.
pub fn decode_resources(
    type_url: &str,
    resources: &[Any],
    unknown: UnknownFields,
) -> Result<Vec<Resource>, String> {
    let decoded = decode_resources_with_json(type_url, resources, unknown)?;
    Ok(decoded.into_iter().map(|d| d.resource).collect())
}

/// [`decode_resources`], keeping each resource's protobuf JSON and unknown fields.
pub fn decode_resources_with_json(
    type_url: &str,
    resources: &[Any],
    unknown: UnknownFields,
) -> Result<Vec<DecodedResource>, String> {
    let expected = TypeUrl::parse(type_url);
    resources
        .iter()
        .enumerate()
        .map(|(i, any)| {
            if TypeUrl::parse(&any.type_url) != expected {
                return Err(format!("resources[{i}]: {} in a {type_url} response", any.type_url));
            }
            let decoded =
                convert::any_to_json(any, unknown).map_err(|e| format!("resources[{i}]: {e}"))?;
            let resource: Resource = week1_core::config::load_str(&decoded.json.to_string())
                .map_err(|mut e| {
                    // A position in JSON the control plane never saw means
                    // nothing to it: the field path says where.
                    e.loc = None;
                    format!("resources[{i}]: {e}")
                })?;
            debug_assert_eq!(Some(type_of(&resource)), expected);
            Ok(DecodedResource {
                resource,
                json: decoded.json,
                unknown_fields: decoded.unknown_fields,
            })
        })
        .collect()
}

/// Decodes and validates a response's resources; a failure is reported to
/// `handler` before the mux NACKs it.
fn checked<H: AdsHandler>(
    handler: &mut H,
    type_url: &str,
    resources: &[Any],
) -> Result<Vec<Resource>, String> {
    let (outcome, names) =
        match decode_resources_with_json(type_url, resources, handler.unknown_fields_policy()) {
            Err(e) => (Err(e), Vec::new()),
            Ok(decoded) => {
                let names = decoded.iter().map(|d| d.resource.name().to_string()).collect();
                (validated(handler, type_url, decoded), names)
            }
        };
    if let (Err(error), Some(t)) = (&outcome, TypeUrl::parse(type_url)) {
        handler.rejected(t, names, error);
    }
    outcome
}

/// Checks decoded resources with `handler`, then hands it their JSON (and
/// reports unknown fields).
fn validated<H: AdsHandler>(
    handler: &mut H,
    type_url: &str,
    decoded: Vec<DecodedResource>,
) -> Result<Vec<Resource>, String> {
    let t = TypeUrl::parse(type_url).ok_or("unknown type")?;
    let mut resources = Vec::with_capacity(decoded.len());
    let mut sources = Vec::with_capacity(decoded.len());
    let mut unknown = Vec::new();
    for d in decoded {
        let name = d.resource.name().to_string();
        if !d.unknown_fields.is_empty() {
            unknown.push((name.clone(), d.unknown_fields));
        }
        sources.push((name, d.json));
        resources.push(d.resource);
    }
    handler.validate(t, &resources)?;
    for (name, fields) in unknown {
        handler.unknown_fields(t, &name, fields);
    }
    handler.decoded(t, sources);
    Ok(resources)
}

enum Inbound {
    Sotw(tonic::Streaming<pb::DiscoveryResponse>),
    Delta(tonic::Streaming<pb::DeltaDiscoveryResponse>),
}

/// Runs the ADS client until `shutdown` turns true: connects to `endpoint`
/// (e.g. `http://127.0.0.1:18000`), keeps the stream up with backoff, and
/// feeds `handler`. Subscribe on `mux` before calling.
pub async fn run<H: AdsHandler>(
    endpoint: String,
    mut mux: AdsMux,
    mut handler: H,
    mut random: impl RandomSource,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
        .map_err(|_| ClientError::Endpoint(endpoint.clone()))?
        .connect_timeout(Duration::from_secs(5));
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        if let Ok(conn) = channel.connect().await {
            let mut client = AggregatedDiscoveryServiceClient::new(conn);
            session(&mut client, &mut mux, &mut handler, &mut shutdown).await;
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        let delay = mux.disconnected(&mut random);
        tracing::info!(?delay, "xDS stream closed; reconnecting after backoff");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// One stream's life.
async fn session<H: AdsHandler>(
    client: &mut AggregatedDiscoveryServiceClient<tonic::transport::Channel>,
    mux: &mut AdsMux,
    handler: &mut H,
    shutdown: &mut watch::Receiver<bool>,
) {
    mux.connected();
    let (sotw_tx, sotw_rx) = mpsc::unbounded_channel::<pb::DiscoveryRequest>();
    let (delta_tx, delta_rx) = mpsc::unbounded_channel::<pb::DeltaDiscoveryRequest>();
    let flush = |mux: &mut AdsMux| {
        while let Some(req) = mux.poll_request() {
            // A closed channel means the stream is gone; the read side notices.
            match req {
                Request::Sotw(r) => {
                    let _ = sotw_tx.send(convert::request_to_pb(&r));
                }
                Request::Delta(r) => {
                    let _ = delta_tx.send(convert::delta_request_to_pb(&r));
                }
            }
        }
    };
    flush(mux);
    let inbound = match mux.mode() {
        Mode::Sotw => client
            .stream_aggregated_resources(UnboundedReceiverStream::new(sotw_rx))
            .await
            .map(|r| Inbound::Sotw(r.into_inner())),
        Mode::Delta => client
            .delta_aggregated_resources(UnboundedReceiverStream::new(delta_rx))
            .await
            .map(|r| Inbound::Delta(r.into_inner())),
    };
    let mut inbound = match inbound {
        Ok(s) => s,
        Err(status) => {
            tracing::warn!(%status, "xDS stream could not open");
            return;
        }
    };
    loop {
        let deadline = mux.poll_timeout().map(tokio::time::Instant::from_std);
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = next(&mut inbound) => {
                let now = tokio::time::Instant::now().into_std();
                match msg {
                    Some(Ok(Received::Sotw(resp))) => {
                        let resp = convert::response_from_pb(resp);
                        let outcome = mux.handle_sotw(resp, now, |r| {
                            checked(handler, &r.type_url, &r.resources)
                        });
                        deliver(outcome, handler);
                    }
                    Some(Ok(Received::Delta(resp))) => {
                        let resp = convert::delta_response_from_pb(resp);
                        let outcome = mux.handle_delta(resp, now, |r| {
                            let anys: Vec<Any> = r.resources.iter().filter_map(|x| x.resource.clone()).collect();
                            checked(handler, &r.type_url, &anys)
                        });
                        deliver(outcome, handler);
                    }
                    Some(Err(status)) => {
                        tracing::warn!(%status, "xDS stream failed");
                        return;
                    }
                    None => return,
                }
            }
            () = timer => mux.handle_timeout(tokio::time::Instant::now().into_std()),
            _ = shutdown.changed() => return,
        }
        while let Some(ev) = mux.poll_event() {
            handler.event(ev);
        }
        flush(mux);
    }
}

enum Received {
    Sotw(pb::DiscoveryResponse),
    Delta(pb::DeltaDiscoveryResponse),
}

async fn next(inbound: &mut Inbound) -> Option<Result<Received, tonic::Status>> {
    match inbound {
        Inbound::Sotw(s) => s.message().await.transpose().map(|r| r.map(Received::Sotw)),
        Inbound::Delta(s) => s.message().await.transpose().map(|r| r.map(Received::Delta)),
    }
}

fn deliver<H: AdsHandler>(outcome: Outcome<Resource>, handler: &mut H) {
    match outcome {
        Outcome::Accepted(update) => handler.apply(update),
        Outcome::Rejected { error } => tracing::warn!("xDS update rejected: {error}"),
        Outcome::Duplicate | Outcome::Ignored(_) => {}
    }
}
