//! # `/config_dump`: Envoy's `ConfigTracker`
//!
//! Envoy's `Server::ConfigTracker` and `ConfigDumpHandler`: a registry on
//! the main thread where each subsystem registers, under a key, a callback
//! producing its part of the dump (an `envoy.admin.v3.*ConfigDump` message
//! as JSON). `/config_dump` calls them in key order, which is Envoy's order
//! (`bootstrap`, `clusters`, `endpoints`, `listeners`, `routes`), and
//! applies the query:
//!
//! ```text
//!  server / xDS ─► tracker.add("clusters", || clusters_dump(...)) ─► EntryOwner (drop = unregister)
//!  GET /config_dump?resource=&mask=&name_regex=&include_eds
//!     └─► each callback ─► name_regex filter ─► resource (flatten) / mask (trim) ─► {"configs": [...]}
//! ```
//!
//! The builders ([`bootstrap_dump`], [`clusters_dump`], [`listeners_dump`],
//! [`routes_dump`], [`endpoints_dump`]) give each part Envoy's shape; a
//! resource is the JSON it was loaded from (see [`ResourceState`]).
//! `endpoints` is only included with `?include_eds`, as in Envoy.
//!
//! Differences from Envoy: unknown query parameters are refused (400);
//! `configs` is printed even when empty; mask paths inside a resource (e.g.
//! `cluster.name`) are not checked against the resource's schema (an unknown
//! one selects nothing).

pub mod parts;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::time::SystemTime;

use serde_json::{Map, Value, json};

/// The `@type` prefix of every message in the dump.
pub const TYPE_PREFIX: &str = "type.googleapis.com/";

/// The key whose part is only dumped with `?include_eds`.
pub const ENDPOINTS_KEY: &str = "endpoints";

/// Produces one part of the dump: a `*ConfigDump` message as JSON, with its
/// `"@type"` (use the builders below).
pub type DumpCallback = Rc<dyn Fn() -> Value>;

// ANCHOR: config_tracker
/// The registry (Envoy's `ConfigTracker`), owned by the main thread.
#[derive(Default)]
pub struct ConfigTracker {
    entries: RefCell<BTreeMap<String, DumpCallback>>,
}

/// Keeps a callback registered; dropping it removes the entry (Envoy's
/// `ConfigTracker::EntryOwner`).
#[must_use = "dropping the owner unregisters the callback"]
pub struct EntryOwner {
    tracker: Weak<ConfigTracker>,
    key: String,
}
// ANCHOR_END: config_tracker

impl std::fmt::Debug for ConfigTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigTracker").field("keys", &self.keys()).finish()
    }
}

impl std::fmt::Debug for EntryOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryOwner").field("key", &self.key).finish()
    }
}

impl Drop for EntryOwner {
    fn drop(&mut self) {
        if let Some(tracker) = self.tracker.upgrade() {
            tracker.entries.borrow_mut().remove(&self.key);
        }
    }
}

thread_local! {
    static MAIN_TRACKER: RefCell<Option<Rc<ConfigTracker>>> = const { RefCell::new(None) };
}

/// The main thread's tracker while the server runs (`None` on other
/// threads): where subsystems register and `/config_dump` reads.
pub fn main_tracker() -> Option<Rc<ConfigTracker>> {
    MAIN_TRACKER.with(|t| t.borrow().clone())
}

/// Makes `tracker` this thread's [`main_tracker`] (`None` clears it).
pub fn set_main_tracker(tracker: Option<Rc<ConfigTracker>>) {
    MAIN_TRACKER.with(|t| *t.borrow_mut() = tracker);
}

impl ConfigTracker {
    /// An empty tracker.
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Registers `callback` under `key`; `None` if the key is taken (as
    /// Envoy's `add` returns null). The entry lives as long as the owner.
    pub fn add(
        self: &Rc<Self>,
        key: &str,
        callback: impl Fn() -> Value + 'static,
    ) -> Option<EntryOwner> {
        let mut entries = self.entries.borrow_mut();
        if entries.contains_key(key) {
            return None;
        }
        entries.insert(key.to_string(), Rc::new(callback));
        Some(EntryOwner { tracker: Rc::downgrade(self), key: key.to_string() })
    }

    /// The registered keys, in dump order.
    pub fn keys(&self) -> Vec<String> {
        self.entries.borrow().keys().cloned().collect()
    }

    /// The parts to dump, in order (callbacks are cloned out so they may
    /// use the tracker themselves).
    fn parts(&self, include_eds: bool) -> Vec<Value> {
        let callbacks: Vec<DumpCallback> = self
            .entries
            .borrow()
            .iter()
            .filter(|(k, _)| include_eds || k.as_str() != ENDPOINTS_KEY)
            .map(|(_, c)| c.clone())
            .collect();
        callbacks.iter().map(|c| c()).collect()
    }

    // ANCHOR: dump
    /// `/config_dump` with `query`: `{"configs": [...]}`, or the status and
    /// message of a bad query.
    pub fn dump(&self, query: &DumpQuery) -> Result<Value, (u16, String)> {
        let mut parts = self.parts(query.include_eds);
        if let Some(re) = &query.name_regex {
            parts.iter_mut().for_each(|p| retain_names(p, re));
        }
        let configs = match &query.resource {
            Some(resource) => flatten(parts, resource, query.mask.as_deref())?,
            None => match &query.mask {
                None => parts,
                Some(mask) => {
                    let paths = mask_paths(mask);
                    let trimmed: Vec<Value> =
                        parts.iter().filter_map(|p| trim_message(p, &paths).ok()).collect();
                    if trimmed.is_empty() {
                        return Err((
                            400,
                            format!(
                                "FieldMask {mask} could not be successfully applied to any configs."
                            ),
                        ));
                    }
                    trimmed
                }
            },
        };
        Ok(json!({ "configs": configs }))
    }
    // ANCHOR_END: dump
}

/// The query parameters of `/config_dump`.
#[derive(Debug, Clone, Default)]
pub struct DumpQuery {
    /// `?resource=`: one repeated field of the parts, flattened.
    pub resource: Option<String>,
    /// `?mask=`: a field mask (comma-separated paths).
    pub mask: Option<String>,
    /// `?name_regex=`: keep resources whose name fully matches.
    pub name_regex: Option<regex::Regex>,
    /// `?include_eds`: add the endpoints part.
    pub include_eds: bool,
}

impl DumpQuery {
    /// Parses the query; unknown parameters and bad regexes are errors.
    pub fn parse<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let mut q = Self::default();
        for (k, v) in params {
            match k {
                "resource" if !v.is_empty() => q.resource = Some(v.to_string()),
                "mask" if !v.is_empty() => q.mask = Some(v.to_string()),
                "resource" | "mask" => {}
                "include_eds" => q.include_eds = true,
                "name_regex" if v.is_empty() => {}
                "name_regex" => {
                    let re = regex::Regex::new(&format!("^(?:{v})$"))
                        .map_err(|e| format!("Error while parsing name_regex from {v}: {e}"))?;
                    q.name_regex = Some(re);
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?} (resource, mask, name_regex, include_eds)"
                    ));
                }
            }
        }
        Ok(q)
    }
}

// ---------------------------------------------------------------- schema

/// A field of a config-dump message: its name, and for a repeated field the
/// message of its elements.
type Field = (&'static str, Option<&'static str>);

/// The fields of Envoy's config-dump messages (`envoy.admin.v3`).
fn fields_of(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "envoy.admin.v3.BootstrapConfigDump" => &[("bootstrap", None), ("last_updated", None)],
        "envoy.admin.v3.ClustersConfigDump" => &[
            ("version_info", None),
            ("static_clusters", Some("envoy.admin.v3.ClustersConfigDump.StaticCluster")),
            ("dynamic_active_clusters", Some("envoy.admin.v3.ClustersConfigDump.DynamicCluster")),
            ("dynamic_warming_clusters", Some("envoy.admin.v3.ClustersConfigDump.DynamicCluster")),
        ],
        "envoy.admin.v3.ListenersConfigDump" => &[
            ("version_info", None),
            ("static_listeners", Some("envoy.admin.v3.ListenersConfigDump.StaticListener")),
            ("dynamic_listeners", Some("envoy.admin.v3.ListenersConfigDump.DynamicListener")),
        ],
        "envoy.admin.v3.RoutesConfigDump" => &[
            ("static_route_configs", Some("envoy.admin.v3.RoutesConfigDump.StaticRouteConfig")),
            ("dynamic_route_configs", Some("envoy.admin.v3.RoutesConfigDump.DynamicRouteConfig")),
        ],
        "envoy.admin.v3.EndpointsConfigDump" => &[
            (
                "static_endpoint_configs",
                Some("envoy.admin.v3.EndpointsConfigDump.StaticEndpointConfig"),
            ),
            (
                "dynamic_endpoint_configs",
                Some("envoy.admin.v3.EndpointsConfigDump.DynamicEndpointConfig"),
            ),
        ],
        "envoy.admin.v3.ClustersConfigDump.StaticCluster"
        | "envoy.admin.v3.ListenersConfigDump.StaticListener"
        | "envoy.admin.v3.RoutesConfigDump.StaticRouteConfig"
        | "envoy.admin.v3.EndpointsConfigDump.StaticEndpointConfig" => &[
            ("cluster", None),
            ("listener", None),
            ("route_config", None),
            ("endpoint_config", None),
            ("last_updated", None),
        ],
        "envoy.admin.v3.ClustersConfigDump.DynamicCluster"
        | "envoy.admin.v3.RoutesConfigDump.DynamicRouteConfig"
        | "envoy.admin.v3.EndpointsConfigDump.DynamicEndpointConfig" => &[
            ("version_info", None),
            ("cluster", None),
            ("route_config", None),
            ("endpoint_config", None),
            ("last_updated", None),
            ("error_state", None),
            ("client_status", None),
        ],
        "envoy.admin.v3.ListenersConfigDump.DynamicListener" => &[
            ("name", None),
            ("active_state", None),
            ("warming_state", None),
            ("draining_state", None),
            ("error_state", None),
            ("client_status", None),
        ],
        _ => return None,
    })
}

/// The message name of a JSON message (its `@type` without the prefix).
fn message_name(v: &Value) -> &str {
    let t = v.get("@type").and_then(Value::as_str).unwrap_or_default();
    t.strip_prefix(TYPE_PREFIX).unwrap_or(t)
}

/// `value` with `"@type": type.googleapis.com/<message>` added.
pub fn typed(message: &str, value: Value) -> Value {
    let mut out = Map::new();
    out.insert("@type".into(), Value::String(format!("{TYPE_PREFIX}{message}")));
    if let Value::Object(fields) = value {
        out.extend(fields.into_iter().filter(|(k, _)| k != "@type"));
    }
    Value::Object(out)
}

// ---------------------------------------------------------------- query

/// The name a dumped resource is matched by: a dynamic listener's `name`, or
/// the `name` (`cluster_name` for endpoints) of the resource it wraps.
fn resource_name(element: &Value) -> Option<&str> {
    if let Some(name) = element.get("name").and_then(Value::as_str) {
        return Some(name);
    }
    ["cluster", "listener", "route_config", "endpoint_config"].iter().find_map(|k| {
        let r = element.get(*k)?;
        r.get("name").or_else(|| r.get("cluster_name")).and_then(Value::as_str)
    })
}

/// `?name_regex=`: drops the resources of a part whose name does not match.
fn retain_names(part: &mut Value, re: &regex::Regex) {
    let Some(fields) = fields_of(message_name(part)) else { return };
    let Value::Object(message) = part else { return };
    for (field, element) in fields {
        if element.is_none() {
            continue;
        }
        if let Some(Value::Array(items)) = message.get_mut(*field) {
            items.retain(|e| resource_name(e).is_some_and(|n| re.is_match(n)));
            if items.is_empty() {
                message.remove(*field);
            }
        }
    }
}

/// `?resource=`: the elements of the first part that has that repeated field.
fn flatten(
    parts: Vec<Value>,
    resource: &str,
    mask: Option<&str>,
) -> Result<Vec<Value>, (u16, String)> {
    let paths = mask.map(mask_paths);
    for part in parts {
        let Some(fields) = fields_of(message_name(&part)) else { continue };
        let Some((_, element)) = fields.iter().find(|(f, _)| *f == resource) else { continue };
        let Some(element) = element else {
            return Err((
                400,
                format!(
                    "{resource} is not a repeated field. Use ?mask={resource} to get only this field"
                ),
            ));
        };
        let items = match part.get(resource) {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let item = typed(element, item);
            let item = match &paths {
                Some(paths) => trim_message(&item, paths).map_err(|()| {
                    (
                        400,
                        format!("FieldMask {} could not be successfully used.", mask.unwrap_or("")),
                    )
                })?,
                None => item,
            };
            out.push(item);
        }
        return Ok(out);
    }
    Err((404, format!("{resource} not found in config dump")))
}

fn mask_paths(mask: &str) -> Vec<Vec<&str>> {
    mask.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.split('.').collect())
        .collect()
}

/// A field mask applied to one message: keeps its `@type` and the masked
/// paths. `Err` if a path does not start with a field of the message, or
/// goes below a repeated field.
fn trim_message(message: &Value, paths: &[Vec<&str>]) -> Result<Value, ()> {
    let fields = fields_of(message_name(message)).ok_or(())?;
    for path in paths {
        let (first, rest) = path.split_first().ok_or(())?;
        let (_, element) = fields.iter().find(|(f, _)| f == first).ok_or(())?;
        if element.is_some() && !rest.is_empty() {
            return Err(());
        }
    }
    let mut out = Map::new();
    if let Some(t) = message.get("@type") {
        out.insert("@type".into(), t.clone());
    }
    for path in paths {
        keep_path(message, path, &mut out)?;
    }
    Ok(Value::Object(out))
}

/// Copies the value at `path` of `from` into `into`, creating the objects
/// on the way (keeping their `@type`). Nothing if the path is unset; `Err`
/// if it goes through a list.
fn keep_path(from: &Value, path: &[&str], into: &mut Map<String, Value>) -> Result<(), ()> {
    let Some((first, rest)) = path.split_first() else { return Ok(()) };
    let Some(value) = from.get(*first) else { return Ok(()) };
    if rest.is_empty() {
        into.insert((*first).to_string(), value.clone());
        return Ok(());
    }
    if !value.is_object() {
        return if value.is_array() { Err(()) } else { Ok(()) };
    }
    let slot = into.entry((*first).to_string()).or_insert_with(|| {
        let mut m = Map::new();
        if let Some(t) = value.get("@type") {
            m.insert("@type".into(), t.clone());
        }
        Value::Object(m)
    });
    match slot {
        Value::Object(inner) => keep_path(value, rest, inner),
        _ => Ok(()), // already kept whole by a shorter path
    }
}

// ---------------------------------------------------------------- builders

// ANCHOR: builders
/// One resource as the dump shows it: the JSON it was loaded from (with its
/// `@type`, see [`typed`]), the `version_info` it came with (empty for
/// static resources) and when it was last updated.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceState {
    /// The xDS `version_info`.
    pub version_info: String,
    /// The resource, as JSON with `@type`.
    pub resource: Value,
    /// When it was last added or changed.
    pub last_updated: SystemTime,
}

/// A protobuf `Timestamp` in JSON: RFC 3339 in UTC with milliseconds
/// (`2024-01-01T00:00:00.000Z`), as Envoy prints `last_updated`.
pub fn timestamp(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    crate::access_log::time::TimeFormat::envoy_default().write(t, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn insert_nonempty(out: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if !empty {
        out.insert(key.to_string(), value);
    }
}

/// A static resource: `{<field>: resource, last_updated}`.
fn static_entry(field: &str, r: &ResourceState) -> Value {
    json!({ field: r.resource, "last_updated": timestamp(r.last_updated) })
}

/// A dynamic resource: `{version_info, <field>: resource, last_updated}`.
fn dynamic_entry(field: &str, r: &ResourceState) -> Value {
    let mut out = Map::new();
    insert_nonempty(&mut out, "version_info", Value::String(r.version_info.clone()));
    out.insert(field.to_string(), r.resource.clone());
    out.insert("last_updated".into(), Value::String(timestamp(r.last_updated)));
    Value::Object(out)
}

fn part(message: &str, fields: Vec<(&str, Value)>) -> Value {
    let mut out = Map::new();
    out.insert("@type".into(), Value::String(format!("{TYPE_PREFIX}{message}")));
    for (k, v) in fields {
        insert_nonempty(&mut out, k, v);
    }
    Value::Object(out)
}

/// `envoy.admin.v3.BootstrapConfigDump`: the bootstrap as loaded.
pub fn bootstrap_dump(bootstrap: Value, last_updated: SystemTime) -> Value {
    part(
        "envoy.admin.v3.BootstrapConfigDump",
        vec![("bootstrap", bootstrap), ("last_updated", Value::String(timestamp(last_updated)))],
    )
}

/// `envoy.admin.v3.ClustersConfigDump`: `version_info` is the CDS version
/// in force.
pub fn clusters_dump(
    version_info: &str,
    static_clusters: &[ResourceState],
    active: &[ResourceState],
    warming: &[ResourceState],
) -> Value {
    let list = |rs: &[ResourceState], f: fn(&str, &ResourceState) -> Value| {
        Value::Array(rs.iter().map(|r| f("cluster", r)).collect())
    };
    part(
        "envoy.admin.v3.ClustersConfigDump",
        vec![
            ("version_info", Value::String(version_info.to_string())),
            ("static_clusters", list(static_clusters, static_entry)),
            ("dynamic_active_clusters", list(active, dynamic_entry)),
            ("dynamic_warming_clusters", list(warming, dynamic_entry)),
        ],
    )
}

/// A listener added by LDS, in each of its states.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicListener {
    /// The listener's name.
    pub name: String,
    /// The version serving.
    pub active: Option<ResourceState>,
    /// The version warming (waiting for its routes or clusters).
    pub warming: Option<ResourceState>,
    /// The version draining after an update or removal.
    pub draining: Option<ResourceState>,
}

/// `envoy.admin.v3.ListenersConfigDump`: `version_info` is the LDS version
/// in force.
pub fn listeners_dump(
    version_info: &str,
    static_listeners: &[ResourceState],
    dynamic: &[DynamicListener],
) -> Value {
    let statics = static_listeners.iter().map(|r| static_entry("listener", r)).collect();
    let dynamics = dynamic
        .iter()
        .map(|l| {
            let mut out = Map::new();
            out.insert("name".into(), Value::String(l.name.clone()));
            for (key, state) in [
                ("active_state", &l.active),
                ("warming_state", &l.warming),
                ("draining_state", &l.draining),
            ] {
                if let Some(s) = state {
                    out.insert(key.into(), dynamic_entry("listener", s));
                }
            }
            Value::Object(out)
        })
        .collect();
    part(
        "envoy.admin.v3.ListenersConfigDump",
        vec![
            ("version_info", Value::String(version_info.to_string())),
            ("static_listeners", Value::Array(statics)),
            ("dynamic_listeners", Value::Array(dynamics)),
        ],
    )
}

/// `envoy.admin.v3.RoutesConfigDump`: route configurations inline in
/// listeners (static) and from RDS (dynamic).
pub fn routes_dump(static_configs: &[ResourceState], dynamic: &[ResourceState]) -> Value {
    part(
        "envoy.admin.v3.RoutesConfigDump",
        vec![
            (
                "static_route_configs",
                static_configs.iter().map(|r| static_entry("route_config", r)).collect(),
            ),
            (
                "dynamic_route_configs",
                dynamic.iter().map(|r| dynamic_entry("route_config", r)).collect(),
            ),
        ],
    )
}

/// `envoy.admin.v3.EndpointsConfigDump`: each cluster's current endpoints
/// as `ClusterLoadAssignment`s (built from the hosts in force, as Envoy's).
pub fn endpoints_dump(static_assignments: Vec<Value>, dynamic_assignments: Vec<Value>) -> Value {
    let wrap = |v: Vec<Value>| {
        Value::Array(v.into_iter().map(|a| json!({ "endpoint_config": a })).collect())
    };
    part(
        "envoy.admin.v3.EndpointsConfigDump",
        vec![
            ("static_endpoint_configs", wrap(static_assignments)),
            ("dynamic_endpoint_configs", wrap(dynamic_assignments)),
        ],
    )
}
// ANCHOR_END: builders

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn cluster(name: &str, version: &str) -> ResourceState {
        ResourceState {
            version_info: version.into(),
            resource: typed(
                "envoy.config.cluster.v3.Cluster",
                json!({"name": name, "connect_timeout": "1s"}),
            ),
            last_updated: at(1_700_000_000),
        }
    }

    fn tracker() -> (Rc<ConfigTracker>, Vec<EntryOwner>) {
        let t = ConfigTracker::new();
        let owners = vec![
            t.add("listeners", || listeners_dump("", &[], &[])).unwrap(),
            t.add("clusters", || {
                clusters_dump(
                    "v2",
                    &[cluster("static_a", "")],
                    &[cluster("dyn_a", "v2"), cluster("dyn_b", "v1")],
                    &[cluster("warm", "v2")],
                )
            })
            .unwrap(),
            t.add("bootstrap", || bootstrap_dump(json!({"node": {"id": "n"}}), at(0))).unwrap(),
            t.add(ENDPOINTS_KEY, || {
                endpoints_dump(vec![json!({"cluster_name": "static_a"})], vec![])
            })
            .unwrap(),
        ];
        (t, owners)
    }

    fn dump(t: &ConfigTracker, query: &[(&str, &str)]) -> Result<Value, (u16, String)> {
        let q = DumpQuery::parse(query.iter().copied()).map_err(|e| (400, e))?;
        t.dump(&q)
    }

    fn types(v: &Value) -> Vec<&str> {
        v["configs"].as_array().unwrap().iter().map(message_name).collect()
    }

    #[test]
    fn parts_come_in_envoys_order_with_their_types() {
        let (t, _owners) = tracker();
        let v = dump(&t, &[]).unwrap();
        assert_eq!(
            types(&v),
            [
                "envoy.admin.v3.BootstrapConfigDump",
                "envoy.admin.v3.ClustersConfigDump",
                "envoy.admin.v3.ListenersConfigDump"
            ]
        );
        let clusters = &v["configs"][1];
        assert_eq!(clusters["version_info"], "v2");
        assert_eq!(clusters["static_clusters"][0]["cluster"]["name"], "static_a");
        assert!(clusters["static_clusters"][0].get("version_info").is_none());
        assert_eq!(clusters["dynamic_active_clusters"][1]["version_info"], "v1");
        assert_eq!(clusters["dynamic_warming_clusters"][0]["cluster"]["name"], "warm");
        assert_eq!(
            clusters["dynamic_active_clusters"][0]["last_updated"],
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(v["configs"][0]["last_updated"], "1970-01-01T00:00:00.000Z");
        // Empty lists are left out, as protobuf's JSON does.
        assert!(v["configs"][2].get("static_listeners").is_none());
    }

    #[test]
    fn endpoints_only_with_include_eds() {
        let (t, _owners) = tracker();
        let v = dump(&t, &[("include_eds", "")]).unwrap();
        assert_eq!(types(&v)[2], "envoy.admin.v3.EndpointsConfigDump");
        assert_eq!(
            v["configs"][2]["static_endpoint_configs"][0]["endpoint_config"]["cluster_name"],
            "static_a"
        );
    }

    #[test]
    fn resource_flattens_one_list() {
        let (t, _owners) = tracker();
        let v = dump(&t, &[("resource", "dynamic_active_clusters")]).unwrap();
        let configs = v["configs"].as_array().unwrap();
        assert_eq!(configs.len(), 2);
        assert_eq!(
            configs[0]["@type"],
            "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster"
        );
        assert_eq!(configs[1]["cluster"]["name"], "dyn_b");
        let err = dump(&t, &[("resource", "bootstrap")]).unwrap_err();
        assert_eq!(err.0, 400);
        assert!(err.1.contains("not a repeated field"), "{}", err.1);
        assert_eq!(dump(&t, &[("resource", "nope")]).unwrap_err().0, 404);
        // Known field, nothing in it: an empty list.
        let v = dump(&t, &[("resource", "static_listeners")]).unwrap();
        assert_eq!(v["configs"], json!([]));
    }

    #[test]
    fn mask_trims_parts_or_resources() {
        let (t, _owners) = tracker();
        let v = dump(&t, &[("mask", "version_info")]).unwrap();
        // Bootstrap has no version_info: left out; listeners' is empty.
        assert_eq!(types(&v).len(), 2);
        assert_eq!(
            v["configs"][0],
            json!({"@type": format!("{TYPE_PREFIX}envoy.admin.v3.ClustersConfigDump"), "version_info": "v2"})
        );
        let v = dump(&t, &[("resource", "static_clusters"), ("mask", "cluster.name,last_updated")])
            .unwrap();
        let c = &v["configs"][0];
        assert_eq!(
            c["cluster"],
            json!({"@type": format!("{TYPE_PREFIX}envoy.config.cluster.v3.Cluster"), "name": "static_a"})
        );
        assert!(c["last_updated"].is_string());
        assert_eq!(dump(&t, &[("mask", "nope")]).unwrap_err().0, 400);
        let bad = dump(&t, &[("resource", "static_clusters"), ("mask", "nope")]);
        assert_eq!(bad.unwrap_err().0, 400);
        // No indexing through lists.
        assert_eq!(dump(&t, &[("mask", "static_clusters.cluster")]).unwrap_err().0, 400);
    }

    #[test]
    fn name_regex_fully_matches_resource_names() {
        let (t, _owners) = tracker();
        let v = dump(&t, &[("name_regex", "dyn_.")]).unwrap();
        let clusters = &v["configs"][1];
        assert!(clusters.get("static_clusters").is_none());
        assert_eq!(clusters["dynamic_active_clusters"].as_array().unwrap().len(), 2);
        assert!(clusters.get("dynamic_warming_clusters").is_none());
        // Full match: "dyn" alone matches nothing.
        let v =
            dump(&t, &[("resource", "dynamic_active_clusters"), ("name_regex", "dyn")]).unwrap();
        assert_eq!(v["configs"], json!([]));
        let err = dump(&t, &[("name_regex", "(")]).unwrap_err();
        assert_eq!(err.0, 400);
        assert!(err.1.starts_with("Error while parsing name_regex from ("), "{}", err.1);
    }

    #[test]
    fn unknown_parameters_are_refused() {
        let (t, _owners) = tracker();
        let err = dump(&t, &[("resources", "x")]).unwrap_err();
        assert_eq!(err.0, 400);
        assert!(err.1.contains("resources"));
    }

    #[test]
    fn dropping_the_owner_unregisters() {
        let t = ConfigTracker::new();
        let owner = t.add("routes", || routes_dump(&[], &[])).unwrap();
        assert!(t.add("routes", || Value::Null).is_none());
        assert_eq!(t.keys(), ["routes"]);
        drop(owner);
        assert!(t.keys().is_empty());
    }

    #[test]
    fn dynamic_listeners_have_their_states() {
        let l = DynamicListener {
            name: "front".into(),
            active: Some(ResourceState {
                version_info: "3".into(),
                resource: typed("envoy.config.listener.v3.Listener", json!({"name": "front"})),
                last_updated: at(0),
            }),
            ..Default::default()
        };
        let v = listeners_dump("3", &[], &[l]);
        let d = &v["dynamic_listeners"][0];
        assert_eq!(d["name"], "front");
        assert_eq!(d["active_state"]["version_info"], "3");
        assert_eq!(d["active_state"]["listener"]["name"], "front");
        assert!(d.get("warming_state").is_none());
    }
}
