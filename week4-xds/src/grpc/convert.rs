//! Conversion between Envoy's v3 protobufs (`envoy-types`) and the rest of
//! this crate: the discovery envelopes, and the resources themselves.
//!
//! **Choice.** `envoy-types` ships prost structs but no file descriptors and
//! no serde, so reflection-based protobuf JSON (prost-reflect, pbjson) is not
//! available without protoc. A field-by-field conversion into week 1's typed
//! model would duplicate week 1's validation. Instead resources travel through
//! protobuf JSON, for a focused, hand-written set of fields:
//!
//! ```text
//!  client:  Any ─decode─► prost message ─to_json─► JSON ─week 1 loader─► model
//!                                 └── round trip: from_json(to_json(m)) == m ?
//!  server:  YAML ─week 1 loader (validate)─► JSON ─from_json─► prost ─► Any
//! ```
//!
//! So an xDS resource gets exactly the validation a YAML file gets, with the
//! same field paths in its NACK. The mapping covers what mini-envoy's demo and
//! tests use (see each function); the client checks that mapping a message to
//! JSON and back reproduces it, so a field outside the mapping is a NACK
//! (`unsupported: ...`), never silently dropped. The server likewise refuses
//! JSON keys it cannot encode.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::router::v3 as router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::service::discovery::v3 as pb;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration, UInt32Value};
use envoy_types::pb::google::rpc::Status as PbStatus;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::protocol::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DeltaResource, DiscoveryRequest,
    DiscoveryResponse, Node, Status,
};
use crate::resource::TypeUrl;

/// A conversion failure: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConvertError> {
    Err(ConvertError(msg.into()))
}

// ---------------------------------------------------------------- envelopes

fn node_to_pb(n: &Node) -> core::Node {
    core::Node {
        id: n.id.clone(),
        cluster: n.cluster.clone(),
        user_agent_name: n.user_agent_name.clone(),
        user_agent_version_type: Some(core::node::UserAgentVersionType::UserAgentVersion(
            n.user_agent_version.clone(),
        )),
        ..Default::default()
    }
}

fn node_from_pb(n: &core::Node) -> Node {
    let version = match &n.user_agent_version_type {
        Some(core::node::UserAgentVersionType::UserAgentVersion(v)) => v.clone(),
        _ => String::new(),
    };
    Node {
        id: n.id.clone(),
        cluster: n.cluster.clone(),
        user_agent_name: n.user_agent_name.clone(),
        user_agent_version: version,
    }
}

fn status_to_pb(s: &Status) -> PbStatus {
    PbStatus { code: s.code, message: s.message.clone(), details: Vec::new() }
}

fn status_from_pb(s: &PbStatus) -> Status {
    Status { code: s.code, message: s.message.clone() }
}

/// A SotW request to its protobuf.
pub fn request_to_pb(r: &DiscoveryRequest) -> pb::DiscoveryRequest {
    pb::DiscoveryRequest {
        version_info: r.version_info.clone(),
        node: r.node.as_ref().map(node_to_pb),
        resource_names: r.resource_names.clone(),
        type_url: r.type_url.clone(),
        response_nonce: r.response_nonce.clone(),
        error_detail: r.error_detail.as_ref().map(status_to_pb),
        ..Default::default()
    }
}

/// A SotW request from its protobuf (server side).
pub fn request_from_pb(r: &pb::DiscoveryRequest) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: r.version_info.clone(),
        node: r.node.as_ref().map(node_from_pb),
        resource_names: r.resource_names.clone(),
        type_url: r.type_url.clone(),
        response_nonce: r.response_nonce.clone(),
        error_detail: r.error_detail.as_ref().map(status_from_pb),
    }
}

/// A delta request to its protobuf.
pub fn delta_request_to_pb(r: &DeltaDiscoveryRequest) -> pb::DeltaDiscoveryRequest {
    pb::DeltaDiscoveryRequest {
        node: r.node.as_ref().map(node_to_pb),
        type_url: r.type_url.clone(),
        resource_names_subscribe: r.resource_names_subscribe.clone(),
        resource_names_unsubscribe: r.resource_names_unsubscribe.clone(),
        initial_resource_versions: r
            .initial_resource_versions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        response_nonce: r.response_nonce.clone(),
        error_detail: r.error_detail.as_ref().map(status_to_pb),
        ..Default::default()
    }
}

/// A delta request from its protobuf (server side).
pub fn delta_request_from_pb(r: &pb::DeltaDiscoveryRequest) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: r.node.as_ref().map(node_from_pb),
        type_url: r.type_url.clone(),
        resource_names_subscribe: r.resource_names_subscribe.clone(),
        resource_names_unsubscribe: r.resource_names_unsubscribe.clone(),
        initial_resource_versions: r
            .initial_resource_versions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        response_nonce: r.response_nonce.clone(),
        error_detail: r.error_detail.as_ref().map(status_from_pb),
    }
}

/// A SotW response from its protobuf; resources stay `Any`.
pub fn response_from_pb(r: pb::DiscoveryResponse) -> DiscoveryResponse<Any> {
    DiscoveryResponse {
        version_info: r.version_info,
        resources: r.resources,
        canary: r.canary,
        type_url: r.type_url,
        nonce: r.nonce,
        control_plane: r.control_plane.map(|c| c.identifier),
    }
}

/// A SotW response to its protobuf (server side).
pub fn response_to_pb(r: DiscoveryResponse<Any>) -> pb::DiscoveryResponse {
    pb::DiscoveryResponse {
        version_info: r.version_info,
        resources: r.resources,
        canary: r.canary,
        type_url: r.type_url,
        nonce: r.nonce,
        control_plane: r.control_plane.map(|identifier| core::ControlPlane { identifier }),
        ..Default::default()
    }
}

/// A delta response from its protobuf.
pub fn delta_response_from_pb(r: pb::DeltaDiscoveryResponse) -> DeltaDiscoveryResponse<Any> {
    DeltaDiscoveryResponse {
        system_version_info: r.system_version_info,
        resources: r
            .resources
            .into_iter()
            .map(|x| DeltaResource {
                name: x.name,
                aliases: x.aliases,
                version: x.version,
                resource: x.resource,
            })
            .collect(),
        type_url: r.type_url,
        removed_resources: r.removed_resources,
        nonce: r.nonce,
    }
}

/// A delta response to its protobuf (server side).
pub fn delta_response_to_pb(r: DeltaDiscoveryResponse<Any>) -> pb::DeltaDiscoveryResponse {
    pb::DeltaDiscoveryResponse {
        system_version_info: r.system_version_info,
        resources: r
            .resources
            .into_iter()
            .map(|x| pb::Resource {
                name: x.name,
                aliases: x.aliases,
                version: x.version,
                resource: x.resource,
                ..Default::default()
            })
            .collect(),
        type_url: r.type_url,
        removed_resources: r.removed_resources,
        nonce: r.nonce,
        ..Default::default()
    }
}

// ---------------------------------------------------------------- resources

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

fn pack<M: Message>(type_url: &str, m: &M) -> Any {
    Any { type_url: type_url.to_string(), value: m.encode_to_vec() }
}

/// Decodes an xDS resource `Any` into protobuf JSON for the week 1 loader,
/// with its `"@type"`. Fails on an unknown type, undecodable bytes, or a field
/// outside the mapping.
pub fn any_to_json(any: &Any) -> Result<Value, ConvertError> {
    let t = TypeUrl::parse(&any.type_url)
        .ok_or_else(|| ConvertError(format!("unsupported resource type {}", any.type_url)))?;
    let bad = |e: prost::DecodeError| ConvertError(format!("cannot decode {}: {e}", any.type_url));
    let mut v = match t {
        TypeUrl::Cluster => {
            let m = cluster::Cluster::decode(&any.value[..]).map_err(bad)?;
            let j = cluster_to_json(&m)?;
            roundtrip(&m, cluster_from_json(&j)?, "Cluster")?;
            j
        }
        TypeUrl::ClusterLoadAssignment => {
            let m = endpoint::ClusterLoadAssignment::decode(&any.value[..]).map_err(bad)?;
            let j = cla_to_json(&m)?;
            roundtrip(&m, cla_from_json(&j)?, "ClusterLoadAssignment")?;
            j
        }
        TypeUrl::Listener => {
            let m = listener::Listener::decode(&any.value[..]).map_err(bad)?;
            let j = listener_to_json(&m)?;
            roundtrip(&m, listener_from_json(&j)?, "Listener")?;
            j
        }
        TypeUrl::RouteConfiguration => {
            let m = route::RouteConfiguration::decode(&any.value[..]).map_err(bad)?;
            let j = route_config_to_json(&m)?;
            roundtrip(&m, route_config_from_json(&j)?, "RouteConfiguration")?;
            j
        }
        TypeUrl::Secret => return err("SDS secrets are not supported (mini-envoy has no TLS)"),
    };
    if let Value::Object(o) = &mut v {
        o.insert("@type".into(), Value::String(t.as_str().into()));
    }
    Ok(v)
}

/// Encodes a resource written as protobuf JSON (with `"@type"`) into an `Any`.
pub fn json_to_any(v: &Value) -> Result<Any, ConvertError> {
    let t = v
        .get("@type")
        .and_then(Value::as_str)
        .ok_or_else(|| ConvertError("resource has no \"@type\"".into()))?;
    let ty =
        TypeUrl::parse(t).ok_or_else(|| ConvertError(format!("unsupported resource type {t}")))?;
    let mut body = v.clone();
    if let Value::Object(o) = &mut body {
        o.remove("@type");
    }
    Ok(match ty {
        TypeUrl::Cluster => pack(ty.as_str(), &cluster_from_json(&body)?),
        TypeUrl::ClusterLoadAssignment => pack(ty.as_str(), &cla_from_json(&body)?),
        TypeUrl::Listener => pack(ty.as_str(), &listener_from_json(&body)?),
        TypeUrl::RouteConfiguration => pack(ty.as_str(), &route_config_from_json(&body)?),
        TypeUrl::Secret => return err("SDS secrets are not supported"),
    })
}

/// The name of a resource written as protobuf JSON.
pub fn json_resource_name(v: &Value) -> Option<&str> {
    v.get("name").or_else(|| v.get("cluster_name")).and_then(Value::as_str)
}

fn roundtrip<M: PartialEq>(original: &M, back: M, what: &str) -> Result<(), ConvertError> {
    if *original == back {
        Ok(())
    } else {
        err(format!(
            "unsupported: the {what} sets fields outside mini-envoy's protobuf mapping (see week4-xds grpc::convert)"
        ))
    }
}

/// Reads a JSON object, remembering which keys were used; leftover keys are errors.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    used: BTreeSet<&'a str>,
    path: String,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: &str) -> Result<Self, ConvertError> {
        match v {
            Value::Object(map) => Ok(Self { map, used: BTreeSet::new(), path: path.to_string() }),
            _ => err(format!("{path}: expected an object")),
        }
    }

    fn at(&self, k: &str) -> String {
        if self.path.is_empty() { k.to_string() } else { format!("{}.{k}", self.path) }
    }

    fn get(&mut self, k: &'a str) -> Option<&'a Value> {
        let v = self.map.get(k).filter(|v| !v.is_null());
        if v.is_some() {
            self.used.insert(k);
        }
        v
    }

    fn string(&mut self, k: &'a str) -> Result<String, ConvertError> {
        match self.get(k) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => err(format!("{}: expected a string", self.at(k))),
        }
    }

    fn u32(&mut self, k: &'a str) -> Result<Option<u32>, ConvertError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(|| {
                    ConvertError(format!("{}: expected a 32-bit unsigned integer", self.at(k)))
                })
            }
            Some(Value::String(s)) => s.parse().map(Some).map_err(|_| {
                ConvertError(format!("{}: expected a 32-bit unsigned integer", self.at(k)))
            }),
            Some(_) => err(format!("{}: expected an integer", self.at(k))),
        }
    }

    fn duration(&mut self, k: &'a str) -> Result<Option<PbDuration>, ConvertError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let d = week1_core::config::Duration::parse(s)
                    .map_err(|e| ConvertError(format!("{}: {e}", self.at(k))))?
                    .get();
                Ok(Some(PbDuration {
                    seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
                }))
            }
            Some(_) => err(format!("{}: expected a duration string such as \"5s\"", self.at(k))),
        }
    }

    fn list(&mut self, k: &'a str) -> Result<&'a [Value], ConvertError> {
        match self.get(k) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => err(format!("{}: expected a list", self.at(k))),
        }
    }

    fn object(&mut self, k: &'a str) -> Result<Option<Obj<'a>>, ConvertError> {
        let path = self.at(k);
        self.get(k).map(|v| Obj::new(v, &path)).transpose()
    }

    fn finish(self) -> Result<(), ConvertError> {
        match self.map.keys().find(|k| !self.used.contains(k.as_str())) {
            None => Ok(()),
            Some(k) => {
                err(format!("unsupported: {} (not in mini-envoy's protobuf mapping)", self.at(k)))
            }
        }
    }
}

fn insert_nonempty(o: &mut Map<String, Value>, k: &str, s: &str) {
    if !s.is_empty() {
        o.insert(k.into(), Value::String(s.into()));
    }
}

fn duration_json(d: &PbDuration) -> Result<Value, ConvertError> {
    if d.seconds < 0 || d.nanos < 0 {
        return err("negative durations are not supported");
    }
    let secs = u64::try_from(d.seconds).unwrap_or(0);
    let nanos = u32::try_from(d.nanos).unwrap_or(0);
    Ok(Value::String(
        week1_core::config::Duration(std::time::Duration::new(secs, nanos)).to_string(),
    ))
}

fn list_of<T>(
    items: &[Value],
    path: &str,
    f: impl Fn(&Value, &str) -> Result<T, ConvertError>,
) -> Result<Vec<T>, ConvertError> {
    items.iter().enumerate().map(|(i, v)| f(v, &format!("{path}[{i}]"))).collect()
}

// Address: socket_address { address, port_value }.
fn address_to_json(a: &core::Address) -> Result<Value, ConvertError> {
    match &a.address {
        Some(core::address::Address::SocketAddress(s)) => {
            let mut o = Map::new();
            insert_nonempty(&mut o, "address", &s.address);
            if let Some(core::socket_address::PortSpecifier::PortValue(p)) = &s.port_specifier {
                o.insert("port_value".into(), json!(p));
            }
            Ok(json!({ "socket_address": Value::Object(o) }))
        }
        _ => err("unsupported: address (only socket_address)"),
    }
}

fn address_from_json(v: &Value, path: &str) -> Result<core::Address, ConvertError> {
    let mut o = Obj::new(v, path)?;
    let mut s = o
        .object("socket_address")?
        .ok_or_else(|| ConvertError(format!("{path}.socket_address: must be set")))?;
    let address = s.string("address")?;
    let port = s.u32("port_value")?;
    s.finish()?;
    o.finish()?;
    Ok(core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address,
            port_specifier: port.map(core::socket_address::PortSpecifier::PortValue),
            ..Default::default()
        })),
    })
}

// ConfigSource: ads {}, plus resource_api_version and initial_fetch_timeout.
fn config_source_to_json(c: &core::ConfigSource) -> Result<Value, ConvertError> {
    let mut o = Map::new();
    match &c.config_source_specifier {
        Some(core::config_source::ConfigSourceSpecifier::Ads(_)) => {
            o.insert("ads".into(), json!({}));
        }
        None => {}
        Some(_) => return err("unsupported: config_source over gRPC (only ads: {})"),
    }
    if c.resource_api_version != 0 {
        let name = core::ApiVersion::try_from(c.resource_api_version)
            .map(|v| v.as_str_name())
            .unwrap_or("UNKNOWN");
        o.insert("resource_api_version".into(), json!(name));
    }
    if let Some(d) = &c.initial_fetch_timeout {
        o.insert("initial_fetch_timeout".into(), duration_json(d)?);
    }
    Ok(Value::Object(o))
}

fn config_source_from_json(v: &Value, path: &str) -> Result<core::ConfigSource, ConvertError> {
    let mut o = Obj::new(v, path)?;
    let mut c = core::ConfigSource::default();
    if let Some(ads) = o.object("ads")? {
        ads.finish()?;
        c.config_source_specifier =
            Some(core::config_source::ConfigSourceSpecifier::Ads(core::AggregatedConfigSource {}));
    }
    let api = o.string("resource_api_version")?;
    if !api.is_empty() {
        c.resource_api_version = core::ApiVersion::from_str_name(&api)
            .ok_or_else(|| ConvertError(format!("{path}.resource_api_version: unknown {api:?}")))?
            as i32;
    }
    c.initial_fetch_timeout = o.duration("initial_fetch_timeout")?;
    o.finish()?;
    Ok(c)
}

// ClusterLoadAssignment: cluster_name, endpoints[{priority, load_balancing_weight,
// lb_endpoints[{endpoint: {address}, load_balancing_weight}]}].
fn cla_to_json(c: &endpoint::ClusterLoadAssignment) -> Result<Value, ConvertError> {
    let mut groups = Vec::new();
    for g in &c.endpoints {
        let mut lbs = Vec::new();
        for lb in &g.lb_endpoints {
            let mut e = Map::new();
            match &lb.host_identifier {
                Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(ep)) => {
                    let mut inner = Map::new();
                    if let Some(a) = &ep.address {
                        inner.insert("address".into(), address_to_json(a)?);
                    }
                    e.insert("endpoint".into(), Value::Object(inner));
                }
                None => {}
                Some(_) => return err("unsupported: lb_endpoints[].endpoint_name"),
            }
            if let Some(w) = &lb.load_balancing_weight {
                e.insert("load_balancing_weight".into(), json!(w.value));
            }
            lbs.push(Value::Object(e));
        }
        let mut o = Map::new();
        o.insert("lb_endpoints".into(), Value::Array(lbs));
        if g.priority != 0 {
            o.insert("priority".into(), json!(g.priority));
        }
        if let Some(w) = &g.load_balancing_weight {
            o.insert("load_balancing_weight".into(), json!(w.value));
        }
        groups.push(Value::Object(o));
    }
    Ok(json!({ "cluster_name": c.cluster_name, "endpoints": groups }))
}

fn cla_from_json(v: &Value) -> Result<endpoint::ClusterLoadAssignment, ConvertError> {
    cla_from_json_at(v, "")
}

fn cla_from_json_at(
    v: &Value,
    path: &str,
) -> Result<endpoint::ClusterLoadAssignment, ConvertError> {
    let mut o = Obj::new(v, path)?;
    let cluster_name = o.string("cluster_name")?;
    let groups = o.list("endpoints")?;
    let endpoints = list_of(groups, &o.at("endpoints"), |g, p| {
        let mut go = Obj::new(g, p)?;
        let lbs = go.list("lb_endpoints")?;
        let lb_endpoints = list_of(lbs, &go.at("lb_endpoints"), |lb, p| {
            let mut lo = Obj::new(lb, p)?;
            let mut out = endpoint::LbEndpoint::default();
            if let Some(mut eo) = lo.object("endpoint")? {
                let address = match eo.get("address") {
                    Some(a) => Some(address_from_json(a, &eo.at("address"))?),
                    None => None,
                };
                eo.finish()?;
                out.host_identifier =
                    Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(endpoint::Endpoint {
                        address,
                        ..Default::default()
                    }));
            }
            out.load_balancing_weight =
                lo.u32("load_balancing_weight")?.map(|value| UInt32Value { value });
            lo.finish()?;
            Ok(out)
        })?;
        let priority = go.u32("priority")?.unwrap_or(0);
        let load_balancing_weight =
            go.u32("load_balancing_weight")?.map(|value| UInt32Value { value });
        go.finish()?;
        Ok(endpoint::LocalityLbEndpoints {
            lb_endpoints,
            priority,
            load_balancing_weight,
            ..Default::default()
        })
    })?;
    o.finish()?;
    Ok(endpoint::ClusterLoadAssignment { cluster_name, endpoints, ..Default::default() })
}

// Cluster: name, type, connect_timeout, lb_policy, eds_cluster_config, load_assignment.
fn cluster_to_json(c: &cluster::Cluster) -> Result<Value, ConvertError> {
    let mut o = Map::new();
    o.insert("name".into(), json!(c.name));
    match &c.cluster_discovery_type {
        Some(cluster::cluster::ClusterDiscoveryType::Type(t)) => {
            let name = cluster::cluster::DiscoveryType::try_from(*t)
                .map_err(|_| ConvertError(format!("type: unknown discovery type {t}")))?
                .as_str_name();
            o.insert("type".into(), json!(name));
        }
        None => {}
        Some(_) => return err("unsupported: cluster_type (custom cluster extensions)"),
    }
    if let Some(d) = &c.connect_timeout {
        o.insert("connect_timeout".into(), duration_json(d)?);
    }
    if c.lb_policy != 0 {
        let name = cluster::cluster::LbPolicy::try_from(c.lb_policy)
            .map_err(|_| ConvertError(format!("lb_policy: unknown value {}", c.lb_policy)))?
            .as_str_name();
        o.insert("lb_policy".into(), json!(name));
    }
    if let Some(e) = &c.eds_cluster_config {
        let mut eo = Map::new();
        insert_nonempty(&mut eo, "service_name", &e.service_name);
        if let Some(cs) = &e.eds_config {
            eo.insert("eds_config".into(), config_source_to_json(cs)?);
        }
        o.insert("eds_cluster_config".into(), Value::Object(eo));
    }
    if let Some(la) = &c.load_assignment {
        o.insert("load_assignment".into(), cla_to_json(la)?);
    }
    Ok(Value::Object(o))
}

fn cluster_from_json(v: &Value) -> Result<cluster::Cluster, ConvertError> {
    let mut o = Obj::new(v, "")?;
    let mut c = cluster::Cluster { name: o.string("name")?, ..Default::default() };
    let t = o.string("type")?;
    if !t.is_empty() {
        let d = cluster::cluster::DiscoveryType::from_str_name(&t)
            .ok_or_else(|| ConvertError(format!("type: unknown value {t:?}")))?;
        c.cluster_discovery_type = Some(cluster::cluster::ClusterDiscoveryType::Type(d as i32));
    }
    c.connect_timeout = o.duration("connect_timeout")?;
    let lb = o.string("lb_policy")?;
    if !lb.is_empty() {
        c.lb_policy = cluster::cluster::LbPolicy::from_str_name(&lb)
            .ok_or_else(|| ConvertError(format!("lb_policy: unknown value {lb:?}")))?
            as i32;
    }
    if let Some(mut e) = o.object("eds_cluster_config")? {
        let service_name = e.string("service_name")?;
        let eds_config = match e.get("eds_config") {
            Some(cs) => Some(config_source_from_json(cs, "eds_cluster_config.eds_config")?),
            None => None,
        };
        e.finish()?;
        c.eds_cluster_config =
            Some(cluster::cluster::EdsClusterConfig { service_name, eds_config });
    }
    if let Some(la) = o.get("load_assignment") {
        c.load_assignment = Some(cla_from_json_at(la, "load_assignment")?);
    }
    o.finish()?;
    Ok(c)
}

// RouteConfiguration: name, virtual_hosts[{name, domains, routes[{name, match
// {prefix | path}, route {cluster, timeout, prefix_rewrite}}]}].
fn route_config_to_json(r: &route::RouteConfiguration) -> Result<Value, ConvertError> {
    let mut vhosts = Vec::new();
    for vh in &r.virtual_hosts {
        let mut routes = Vec::new();
        for rt in &vh.routes {
            let mut ro = Map::new();
            insert_nonempty(&mut ro, "name", &rt.name);
            let mut m = Map::new();
            if let Some(rm) = &rt.r#match {
                match &rm.path_specifier {
                    Some(route::route_match::PathSpecifier::Prefix(p)) => {
                        m.insert("prefix".into(), json!(p));
                    }
                    Some(route::route_match::PathSpecifier::Path(p)) => {
                        m.insert("path".into(), json!(p));
                    }
                    None => {}
                    Some(_) => return err("unsupported: match (only prefix or path)"),
                }
            }
            ro.insert("match".into(), Value::Object(m));
            match &rt.action {
                Some(route::route::Action::Route(a)) => {
                    let mut ao = Map::new();
                    match &a.cluster_specifier {
                        Some(route::route_action::ClusterSpecifier::Cluster(c)) => {
                            ao.insert("cluster".into(), json!(c));
                        }
                        None => {}
                        Some(_) => {
                            return err("unsupported: route.cluster_specifier (only cluster)");
                        }
                    }
                    if let Some(t) = &a.timeout {
                        ao.insert("timeout".into(), duration_json(t)?);
                    }
                    insert_nonempty(&mut ao, "prefix_rewrite", &a.prefix_rewrite);
                    ro.insert("route".into(), Value::Object(ao));
                }
                None => {}
                Some(_) => return err("unsupported: route action (only route)"),
            }
            routes.push(Value::Object(ro));
        }
        vhosts.push(json!({ "name": vh.name, "domains": vh.domains, "routes": routes }));
    }
    Ok(json!({ "name": r.name, "virtual_hosts": vhosts }))
}

fn route_config_from_json(v: &Value) -> Result<route::RouteConfiguration, ConvertError> {
    route_config_from_json_at(v, "")
}

fn route_config_from_json_at(
    v: &Value,
    path: &str,
) -> Result<route::RouteConfiguration, ConvertError> {
    let mut o = Obj::new(v, path)?;
    let name = o.string("name")?;
    let vhs = o.list("virtual_hosts")?;
    let virtual_hosts = list_of(vhs, &o.at("virtual_hosts"), |vh, p| {
        let mut vo = Obj::new(vh, p)?;
        let name = vo.string("name")?;
        let domains = list_of(vo.list("domains")?, &vo.at("domains"), |d, p| {
            d.as_str()
                .map(str::to_string)
                .ok_or_else(|| ConvertError(format!("{p}: expected a string")))
        })?;
        let routes = list_of(vo.list("routes")?, &vo.at("routes"), |rt, p| {
            let mut ro = Obj::new(rt, p)?;
            let mut out = route::Route { name: ro.string("name")?, ..Default::default() };
            if let Some(mut m) = ro.object("match")? {
                let prefix = m.string("prefix")?;
                let exact = m.string("path")?;
                m.finish()?;
                out.r#match = Some(route::RouteMatch {
                    path_specifier: if !exact.is_empty() {
                        Some(route::route_match::PathSpecifier::Path(exact))
                    } else if m_has_prefix(rt) {
                        Some(route::route_match::PathSpecifier::Prefix(prefix))
                    } else {
                        None
                    },
                    ..Default::default()
                });
            }
            if let Some(mut a) = ro.object("route")? {
                let cluster = a.string("cluster")?;
                let timeout = a.duration("timeout")?;
                let prefix_rewrite = a.string("prefix_rewrite")?;
                a.finish()?;
                out.action = Some(route::route::Action::Route(route::RouteAction {
                    cluster_specifier: (!cluster.is_empty())
                        .then_some(route::route_action::ClusterSpecifier::Cluster(cluster)),
                    timeout,
                    prefix_rewrite,
                    ..Default::default()
                }));
            }
            ro.finish()?;
            Ok(out)
        })?;
        vo.finish()?;
        Ok(route::VirtualHost { name, domains, routes, ..Default::default() })
    })?;
    o.finish()?;
    Ok(route::RouteConfiguration { name, virtual_hosts, ..Default::default() })
}

/// Whether a route's `match` sets `prefix` (an empty prefix "" is meaningful).
fn m_has_prefix(route: &Value) -> bool {
    route.get("match").and_then(|m| m.get("prefix")).is_some_and(Value::is_string)
}

// HttpConnectionManager: stat_prefix, codec_type, rds or route_config, http_filters
// (the router, with no options).
fn hcm_to_json(h: &hcm::HttpConnectionManager) -> Result<Value, ConvertError> {
    let mut o = Map::new();
    o.insert("@type".into(), json!(HCM_TYPE));
    insert_nonempty(&mut o, "stat_prefix", &h.stat_prefix);
    if h.codec_type != 0 {
        let name = hcm::http_connection_manager::CodecType::try_from(h.codec_type)
            .map(|c| c.as_str_name())
            .unwrap_or("UNKNOWN");
        o.insert("codec_type".into(), json!(name));
    }
    match &h.route_specifier {
        Some(hcm::http_connection_manager::RouteSpecifier::Rds(r)) => {
            let mut ro = Map::new();
            insert_nonempty(&mut ro, "route_config_name", &r.route_config_name);
            if let Some(cs) = &r.config_source {
                ro.insert("config_source".into(), config_source_to_json(cs)?);
            }
            o.insert("rds".into(), Value::Object(ro));
        }
        Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(rc)) => {
            o.insert("route_config".into(), route_config_to_json(rc)?);
        }
        None => {}
        Some(_) => return err("unsupported: scoped_routes"),
    }
    let mut filters = Vec::new();
    for f in &h.http_filters {
        let mut fo = Map::new();
        insert_nonempty(&mut fo, "name", &f.name);
        match &f.config_type {
            Some(hcm::http_filter::ConfigType::TypedConfig(any)) if any.type_url == ROUTER_TYPE => {
                let r = router::Router::decode(&any.value[..]).map_err(|e| {
                    ConvertError(format!("http_filters: cannot decode Router: {e}"))
                })?;
                if r != router::Router::default() {
                    return err("unsupported: Router options over gRPC (use the defaults)");
                }
                fo.insert("typed_config".into(), json!({ "@type": ROUTER_TYPE }));
            }
            None => {}
            Some(_) => return err("unsupported: HTTP filters other than the router over gRPC"),
        }
        filters.push(Value::Object(fo));
    }
    o.insert("http_filters".into(), Value::Array(filters));
    Ok(Value::Object(o))
}

fn hcm_from_json(v: &Value, path: &str) -> Result<hcm::HttpConnectionManager, ConvertError> {
    let mut o = Obj::new(v, path)?;
    let _ = o.string("@type")?;
    let mut h =
        hcm::HttpConnectionManager { stat_prefix: o.string("stat_prefix")?, ..Default::default() };
    let codec = o.string("codec_type")?;
    if !codec.is_empty() {
        h.codec_type = hcm::http_connection_manager::CodecType::from_str_name(&codec)
            .ok_or_else(|| ConvertError(format!("{path}.codec_type: unknown value {codec:?}")))?
            as i32;
    }
    if let Some(mut r) = o.object("rds")? {
        let route_config_name = r.string("route_config_name")?;
        let config_source = match r.get("config_source") {
            Some(cs) => Some(config_source_from_json(cs, &r.at("config_source"))?),
            None => None,
        };
        r.finish()?;
        h.route_specifier = Some(hcm::http_connection_manager::RouteSpecifier::Rds(hcm::Rds {
            config_source,
            route_config_name,
        }));
    }
    if let Some(rc) = o.get("route_config") {
        h.route_specifier = Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
            route_config_from_json_at(rc, &format!("{path}.route_config"))?,
        ));
    }
    h.http_filters = list_of(o.list("http_filters")?, &o.at("http_filters"), |f, p| {
        let mut fo = Obj::new(f, p)?;
        let name = fo.string("name")?;
        let config_type = match fo.object("typed_config")? {
            None => None,
            Some(mut tc) => {
                let t = tc.string("@type")?;
                tc.finish()?;
                if t != ROUTER_TYPE {
                    return err(format!(
                        "unsupported: {p}.typed_config {t} (only the router over gRPC)"
                    ));
                }
                Some(hcm::http_filter::ConfigType::TypedConfig(pack(
                    ROUTER_TYPE,
                    &router::Router::default(),
                )))
            }
        };
        fo.finish()?;
        Ok(hcm::HttpFilter { name, config_type, ..Default::default() })
    })?;
    o.finish()?;
    Ok(h)
}

// Listener: name, address, stat_prefix, filter_chains[{filters[{name, typed_config: HCM}]}].
fn listener_to_json(l: &listener::Listener) -> Result<Value, ConvertError> {
    let mut o = Map::new();
    o.insert("name".into(), json!(l.name));
    if let Some(a) = &l.address {
        o.insert("address".into(), address_to_json(a)?);
    }
    insert_nonempty(&mut o, "stat_prefix", &l.stat_prefix);
    let mut chains = Vec::new();
    for fc in &l.filter_chains {
        let mut filters = Vec::new();
        for f in &fc.filters {
            let mut fo = Map::new();
            insert_nonempty(&mut fo, "name", &f.name);
            match &f.config_type {
                Some(listener::filter::ConfigType::TypedConfig(any))
                    if any.type_url == HCM_TYPE =>
                {
                    let h = hcm::HttpConnectionManager::decode(&any.value[..]).map_err(|e| {
                        ConvertError(format!(
                            "filter_chains: cannot decode HttpConnectionManager: {e}"
                        ))
                    })?;
                    fo.insert("typed_config".into(), hcm_to_json(&h)?);
                }
                None => {}
                Some(_) => {
                    return err(
                        "unsupported: network filters other than the HTTP connection manager over gRPC",
                    );
                }
            }
            filters.push(Value::Object(fo));
        }
        chains.push(json!({ "filters": filters }));
    }
    o.insert("filter_chains".into(), Value::Array(chains));
    Ok(Value::Object(o))
}

fn listener_from_json(v: &Value) -> Result<listener::Listener, ConvertError> {
    let mut o = Obj::new(v, "")?;
    let mut l = listener::Listener { name: o.string("name")?, ..Default::default() };
    if let Some(a) = o.get("address") {
        l.address = Some(address_from_json(a, "address")?);
    }
    l.stat_prefix = o.string("stat_prefix")?;
    l.filter_chains = list_of(o.list("filter_chains")?, "filter_chains", |fc, p| {
        let mut co = Obj::new(fc, p)?;
        let filters = list_of(co.list("filters")?, &co.at("filters"), |f, p| {
            let mut fo = Obj::new(f, p)?;
            let name = fo.string("name")?;
            let config_type = match fo.get("typed_config") {
                None => None,
                Some(tc) => {
                    let t = tc.get("@type").and_then(Value::as_str).unwrap_or_default();
                    if t != HCM_TYPE {
                        return err(format!(
                            "unsupported: {p}.typed_config {t} (only the HTTP connection manager over gRPC)"
                        ));
                    }
                    let h = hcm_from_json(tc, &format!("{p}.typed_config"))?;
                    Some(listener::filter::ConfigType::TypedConfig(pack(HCM_TYPE, &h)))
                }
            };
            fo.finish()?;
            Ok(listener::Filter { name, config_type })
        })?;
        co.finish()?;
        Ok(listener::FilterChain { filters, ..Default::default() })
    })?;
    o.finish()?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use week1_core::config::bootstrap::Resource;

    fn roundtrips(v: Value) -> Resource {
        let any = json_to_any(&v).unwrap_or_else(|e| panic!("encode: {e}"));
        let back = any_to_json(&any).unwrap_or_else(|e| panic!("decode: {e}"));
        let text = back.to_string();
        week1_core::config::load_str::<Resource>(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn cluster_and_endpoints_round_trip_into_the_model() {
        let r = roundtrips(json!({
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": "web", "type": "EDS", "connect_timeout": "0.25s", "lb_policy": "LEAST_REQUEST",
            "eds_cluster_config": {"service_name": "web", "eds_config": {"ads": {}, "resource_api_version": "V3"}}
        }));
        assert_eq!(r.name(), "web");
        let r = roundtrips(json!({
            "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            "cluster_name": "web",
            "endpoints": [{"priority": 1, "lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}},
                 "load_balancing_weight": 3}]}]
        }));
        assert_eq!(r.name(), "web");
    }

    #[test]
    fn listener_with_rds_and_route_config_round_trip() {
        let r = roundtrips(json!({
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "http", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
            "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {
                "@type": HCM_TYPE, "stat_prefix": "ingress",
                "rds": {"route_config_name": "local", "config_source": {"ads": {}}},
                "http_filters": [{"name": "router", "typed_config": {"@type": ROUTER_TYPE}}]}}]}]
        }));
        assert_eq!(r.name(), "http");
        let r = roundtrips(json!({
            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "name": "local",
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "route": {"cluster": "web", "timeout": "5s"}},
                {"match": {"path": "/x"}, "route": {"cluster": "web", "prefix_rewrite": "/y"}}]}]
        }));
        assert_eq!(r.name(), "local");
    }

    #[test]
    fn unmapped_fields_are_refused_both_ways() {
        let e = json_to_any(&json!({
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": "c", "dns_lookup_family": "V4_ONLY"
        }))
        .expect_err("unknown key");
        assert!(e.0.contains("dns_lookup_family"), "{e}");
        // A protobuf setting a field outside the mapping is refused, not dropped.
        let m = cluster::Cluster {
            name: "c".into(),
            per_connection_buffer_limit_bytes: Some(UInt32Value { value: 7 }),
            ..Default::default()
        };
        let e = any_to_json(&pack(TypeUrl::Cluster.as_str(), &m)).expect_err("unmapped");
        assert!(e.0.starts_with("unsupported"), "{e}");
        let e = any_to_json(&Any {
            type_url: TypeUrl::Listener.as_str().into(),
            value: vec![0xff, 0xff],
        })
        .expect_err("garbage");
        assert!(e.0.contains("cannot decode"), "{e}");
    }

    #[test]
    fn envelopes_round_trip() {
        let req = DiscoveryRequest {
            version_info: "1".into(),
            node: Some(Node { id: "n".into(), cluster: "c".into(), ..Default::default() }),
            resource_names: vec!["a".into()],
            type_url: TypeUrl::Cluster.as_str().into(),
            response_nonce: "x".into(),
            error_detail: Some(Status::invalid_argument("bad")),
        };
        assert_eq!(request_from_pb(&request_to_pb(&req)), req);
        let d = DeltaDiscoveryRequest {
            type_url: TypeUrl::Cluster.as_str().into(),
            initial_resource_versions: [("a".to_string(), "1".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(delta_request_from_pb(&delta_request_to_pb(&d)), d);
    }
}
