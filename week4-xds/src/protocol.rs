//! The xDS wire messages as plain Rust structs (`envoy.service.discovery.v3`).
//!
//! These mirror `DiscoveryRequest`, `DiscoveryResponse`, `DeltaDiscoveryRequest`,
//! `DeltaDiscoveryResponse` and `Resource` field for field, so the sans-IO state
//! machines in [`crate::sotw`], [`crate::delta`] and [`crate::mux`] can be driven
//! and tested without protobufs. The transports convert at the edge:
//!
//! ```text
//!  gRPC (prost)  ──grpc::convert──►  DiscoveryResponse<prost Any>  ──►  AdsMux
//!  file (YAML)   ──file::parse───►  DiscoveryResponse<Node tree>  ──►  (NACK rules)
//!  AdsMux ──► DiscoveryRequest ──grpc::convert──► prost ──► stream
//! ```
//!
//! Responses are generic over the resource payload `P` (a protobuf `Any`, a parsed
//! YAML node, or a test fixture); requests carry no payload.

use std::collections::BTreeMap;

/// `google.rpc.Code.INVALID_ARGUMENT`: the code Envoy puts in a NACK's `error_detail`.
pub const INVALID_ARGUMENT: i32 = 3;

/// `google.rpc.Status`, as carried in a NACK's `error_detail`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// A `google.rpc.Code`.
    pub code: i32,
    /// Why the update was rejected.
    pub message: String,
}

impl Status {
    /// The status Envoy sends when it rejects an update: INVALID_ARGUMENT plus the reason.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self { code: INVALID_ARGUMENT, message: message.into() }
    }
}

/// `envoy.config.core.v3.Node`: who the client is (the fields control planes key on).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// `--service-node`: this proxy's identity.
    pub id: String,
    /// `--service-cluster`: the service this proxy belongs to.
    pub cluster: String,
    /// The client's name, "mini-envoy".
    pub user_agent_name: String,
    /// The client's version.
    pub user_agent_version: String,
}

/// `envoy.service.discovery.v3.DiscoveryRequest` (State of the World).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoveryRequest {
    /// The last version the client accepted ("" before any).
    pub version_info: String,
    /// Who is asking (every request, or only the first of a stream).
    pub node: Option<Node>,
    /// The resources wanted; empty (or `*`) asks for all of them (wildcard).
    pub resource_names: Vec<String>,
    /// The resource type.
    pub type_url: String,
    /// The nonce of the response this request answers ("" for the first request of a stream).
    pub response_nonce: String,
    /// Set on a NACK: why the response was rejected.
    pub error_detail: Option<Status>,
}

impl DiscoveryRequest {
    /// Whether this request rejects a response.
    pub fn is_nack(&self) -> bool {
        self.error_detail.is_some()
    }
}

/// `envoy.service.discovery.v3.DiscoveryResponse` with resource payload `P`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryResponse<P> {
    /// The version of this state of the world.
    pub version_info: String,
    /// Every resource of the type (LDS, CDS) or the requested ones (RDS, EDS).
    pub resources: Vec<P>,
    /// Whether this is a canary update (accepted like any other).
    pub canary: bool,
    /// The resource type.
    pub type_url: String,
    /// Identifies this response; the client's ACK or NACK echoes it.
    pub nonce: String,
    /// The control plane's identifier, for debugging.
    pub control_plane: Option<String>,
}

/// `envoy.service.discovery.v3.DeltaDiscoveryRequest` (incremental).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeltaDiscoveryRequest {
    /// Who is asking (first request of a stream, or every one).
    pub node: Option<Node>,
    /// The resource type.
    pub type_url: String,
    /// Names added to the subscription (`*` for wildcard).
    pub resource_names_subscribe: Vec<String>,
    /// Names removed from the subscription.
    pub resource_names_unsubscribe: Vec<String>,
    /// First request of a stream only: the versions the client already holds.
    pub initial_resource_versions: BTreeMap<String, String>,
    /// The nonce of the response this request ACKs or NACKs.
    pub response_nonce: String,
    /// Set on a NACK.
    pub error_detail: Option<Status>,
}

impl DeltaDiscoveryRequest {
    /// Whether this request rejects a response.
    pub fn is_nack(&self) -> bool {
        self.error_detail.is_some()
    }
}

/// `envoy.service.discovery.v3.Resource`: one resource of a delta response.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaResource<P> {
    /// The resource's name.
    pub name: String,
    /// Other names it is known by.
    pub aliases: Vec<String>,
    /// The resource's own version.
    pub version: String,
    /// The resource itself.
    pub resource: Option<P>,
}

/// `envoy.service.discovery.v3.DeltaDiscoveryResponse` with resource payload `P`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaDiscoveryResponse<P> {
    /// The server's version of everything, for debugging only.
    pub system_version_info: String,
    /// Resources added or changed.
    pub resources: Vec<DeltaResource<P>>,
    /// The resource type.
    pub type_url: String,
    /// Resources that no longer exist.
    pub removed_resources: Vec<String>,
    /// Identifies this response; the client's ACK or NACK echoes it.
    pub nonce: String,
}

// Manual impls: no `P: Default` bound.
impl<P> Default for DiscoveryResponse<P> {
    fn default() -> Self {
        Self {
            version_info: String::new(),
            resources: Vec::new(),
            canary: false,
            type_url: String::new(),
            nonce: String::new(),
            control_plane: None,
        }
    }
}

impl<P> Default for DeltaResource<P> {
    fn default() -> Self {
        Self { name: String::new(), aliases: Vec::new(), version: String::new(), resource: None }
    }
}

impl<P> Default for DeltaDiscoveryResponse<P> {
    fn default() -> Self {
        Self {
            system_version_info: String::new(),
            resources: Vec::new(),
            type_url: String::new(),
            removed_resources: Vec::new(),
            nonce: String::new(),
        }
    }
}

/// A request the client wants sent, in whichever protocol variant the stream speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A State-of-the-World request.
    Sotw(DiscoveryRequest),
    /// An incremental request.
    Delta(DeltaDiscoveryRequest),
}

impl Request {
    /// The resource type this request is about.
    pub fn type_url(&self) -> &str {
        match self {
            Self::Sotw(r) => &r.type_url,
            Self::Delta(r) => &r.type_url,
        }
    }

    /// The SotW request, if this is one.
    pub fn as_sotw(&self) -> Option<&DiscoveryRequest> {
        match self {
            Self::Sotw(r) => Some(r),
            Self::Delta(_) => None,
        }
    }

    /// The delta request, if this is one.
    pub fn as_delta(&self) -> Option<&DeltaDiscoveryRequest> {
        match self {
            Self::Sotw(_) => None,
            Self::Delta(r) => Some(r),
        }
    }
}
