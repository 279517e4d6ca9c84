//! Stage one of loading: text → a tree of [`Node`]s that remember their position.
//!
//! Envoy reads YAML by converting it to JSON and parsing that with protobuf's JSON
//! mapping. We keep the same two stages: [`parse`] turns YAML (or JSON, which is
//! YAML) into an untyped tree, and [`super::de`] maps the tree onto the typed model
//! with the protobuf JSON rules. The tree keeps every node's line and column, so
//! any later error can point at the source.
//!
//! The YAML events come from `granit-parser` (pure Rust, maintained: the parser
//! under `serde-saphyr`), and [`TreeBuilder`] assembles them with resource budgets
//! counted after alias expansion, so a hostile file (an alias "billion laughs",
//! aliases that re-expand large strings, deep nesting) is refused instead of
//! exhausting memory. The parser itself is iterative, so depth cannot overflow
//! the stack.

use super::error::{ConfigError, ErrorKind, FieldPath, Loc, Segment};

// ANCHOR: node
/// A YAML value with the position it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts (for an alias: where the alias is used).
    pub loc: Loc,
    /// The value.
    pub value: Value,
}

/// An untyped YAML/JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` / `false` (YAML 1.2 core spellings only).
    Bool(bool),
    /// An integer; wide enough for any int64 or uint64.
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Key, Node)>),
}
// ANCHOR_END: node

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key as written.
    pub name: String,
    /// Where the key is.
    pub loc: Loc,
}

impl Value {
    /// A short description for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

// ANCHOR: parse_limits
/// Resource limits for parsing untrusted config text.
#[derive(Debug, Clone)]
pub struct ParseLimits {
    /// Largest input accepted, in bytes.
    pub max_input_bytes: usize,
    /// Most YAML nodes (after alias expansion).
    pub max_nodes: usize,
    /// Most scalar bytes (after alias expansion).
    pub max_scalar_bytes: usize,
    /// Most nodes copied through aliases (`*name`), in all.
    pub max_alias_nodes: usize,
    /// Deepest nesting of lists and mappings.
    pub max_depth: usize,
}
// ANCHOR_END: parse_limits

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_input_bytes: 64 << 20,
            max_nodes: 4_000_000,
            max_scalar_bytes: 64 << 20,
            max_alias_nodes: 250_000,
            max_depth: 64,
        }
    }
}

// ANCHOR: parse
/// Parses YAML or JSON text into a position-carrying tree.
pub fn parse(text: &str, limits: &ParseLimits) -> Result<Node, ConfigError> {
    if text.len() > limits.max_input_bytes {
        return Err(syntax(format!(
            "config is {} bytes, more than the limit of {} bytes",
            text.len(),
            limits.max_input_bytes
        )));
    }
    let mut tree = TreeBuilder::new(limits);
    for event in granit_parser::Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            syntax(format!(
                "invalid YAML: {} at line {} column {}",
                e.info(),
                m.line(),
                m.col() + 1
            ))
        })?;
        let loc = Loc { line: span.start.line() as u32, column: span.start.col() as u32 + 1 };
        tree.event(event, loc)?;
    }
    Ok(tree.finish())
}
// ANCHOR_END: parse

fn syntax(msg: String) -> ConfigError {
    ConfigError { path: None, loc: None, kind: ErrorKind::Syntax(msg) }
}

fn over_budget(what: &str, limit: usize, loc: Loc) -> ConfigError {
    syntax(format!(
        "invalid YAML: more than {limit} {what} at line {} column {}",
        loc.line, loc.column
    ))
}

/// An open sequence or mapping while its events stream in.
struct Frame {
    loc: Loc,
    anchor: usize,
    kind: FrameKind,
    /// Nodes and scalar bytes inside this collection, itself included, so an
    /// alias to it can be charged without walking it.
    nodes: usize,
    bytes: usize,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Key, Node)>,
        /// The key waiting for its value; `None` when a key comes next.
        key: Option<Key>,
        /// Values of `<<` merge keys, applied when the mapping ends.
        merges: Vec<Node>,
    },
}

/// An anchored node with its cost, for aliases to copy.
struct Anchored {
    node: Node,
    nodes: usize,
    bytes: usize,
}

// ANCHOR: tree_builder
/// Builds the [`Node`] tree from parser events, expanding aliases and merge
/// keys, and enforcing [`ParseLimits`]: every node and scalar byte counts, those
/// copied through aliases included, so an alias bomb fails on its budget long
/// before it can exhaust memory.
struct TreeBuilder<'l> {
    limits: &'l ParseLimits,
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: std::collections::HashMap<usize, Anchored>,
    documents: usize,
    nodes: usize,
    bytes: usize,
    alias_nodes: usize,
}

impl<'l> TreeBuilder<'l> {
    fn new(limits: &'l ParseLimits) -> Self {
        Self {
            limits,
            stack: Vec::new(),
            root: None,
            anchors: Default::default(),
            documents: 0,
            nodes: 0,
            bytes: 0,
            alias_nodes: 0,
        }
    }

    fn event(&mut self, event: granit_parser::Event<'_>, loc: Loc) -> Result<(), ConfigError> {
        use granit_parser::Event;
        match event {
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(syntax(format!(
                        "invalid YAML: only one document is allowed, a second starts at line {} column {}",
                        loc.line, loc.column
                    )));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.charge(1, text.len(), loc)?;
                if self.expects_key() {
                    let is_merge = style == granit_parser::ScalarStyle::Plain && text == "<<";
                    return self.key(Key { name: text.into_owned(), loc }, is_merge);
                }
                let value = resolve_scalar(&text, style, tag.as_deref(), loc)?;
                let node = Node { loc, value };
                if anchor != 0 {
                    self.anchors.insert(
                        anchor,
                        Anchored { node: node.clone(), nodes: 1, bytes: text.len() },
                    );
                }
                self.value(node, 1, text.len())?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq", loc)?;
                self.open(loc, anchor, FrameKind::Seq(Vec::new()))?;
            }
            Event::MappingStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map", loc)?;
                self.open(
                    loc,
                    anchor,
                    FrameKind::Map { entries: Vec::new(), key: None, merges: Vec::new() },
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.close()?,
            Event::Alias(id) => {
                let Some(a) = self.anchors.get(&id) else {
                    return Err(syntax(format!(
                        "invalid YAML: alias to an unknown anchor at line {} column {}",
                        loc.line, loc.column
                    )));
                };
                let (nodes, bytes) = (a.nodes, a.bytes);
                self.alias_nodes += nodes;
                if self.alias_nodes > self.limits.max_alias_nodes {
                    return Err(over_budget(
                        "nodes copied through aliases",
                        self.limits.max_alias_nodes,
                        loc,
                    ));
                }
                self.charge(nodes, bytes, loc)?;
                let mut node = self.anchors[&id].node.clone();
                node.loc = loc;
                if self.expects_key() {
                    return match node.value {
                        Value::Str(name) => self.key(Key { name, loc }, false),
                        _ => Err(self.complex_key(loc)),
                    };
                }
                self.value(node, nodes, bytes)?;
            }
            Event::UnresolvedAlias(name) => {
                return Err(syntax(format!(
                    "invalid YAML: alias *{name} names no anchor at line {} column {}",
                    loc.line, loc.column
                )));
            }
            _ => {}
        }
        Ok(())
    }

    fn charge(&mut self, nodes: usize, bytes: usize, loc: Loc) -> Result<(), ConfigError> {
        self.nodes += nodes;
        self.bytes += bytes;
        if self.nodes > self.limits.max_nodes {
            return Err(over_budget("nodes", self.limits.max_nodes, loc));
        }
        if self.bytes > self.limits.max_scalar_bytes {
            return Err(over_budget("bytes of scalars", self.limits.max_scalar_bytes, loc));
        }
        Ok(())
    }

    fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame { kind: FrameKind::Map { key: None, .. }, .. }))
    }

    fn complex_key(&self, loc: Loc) -> ConfigError {
        syntax(format!(
            "invalid YAML: a mapping key must be a plain value, not a list or mapping, at line {} column {}",
            loc.line, loc.column
        ))
    }

    fn key(&mut self, key: Key, is_merge: bool) -> Result<(), ConfigError> {
        if let Some(Frame { kind: FrameKind::Map { key: slot, .. }, .. }) = self.stack.last_mut() {
            // A merge key is marked by a name no real key can have.
            *slot = Some(if is_merge {
                Key { name: MERGE_KEY.to_string(), loc: key.loc }
            } else {
                key
            });
        }
        Ok(())
    }

    fn open(&mut self, loc: Loc, anchor: usize, kind: FrameKind) -> Result<(), ConfigError> {
        if self.expects_key() {
            return Err(self.complex_key(loc));
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(over_budget("levels of nesting", self.limits.max_depth, loc));
        }
        self.charge(1, 0, loc)?;
        self.stack.push(Frame { loc, anchor, kind, nodes: 1, bytes: 0 });
        Ok(())
    }

    fn close(&mut self) -> Result<(), ConfigError> {
        let Some(frame) = self.stack.pop() else { return Ok(()) };
        let value = match frame.kind {
            FrameKind::Seq(items) => Value::Seq(items),
            FrameKind::Map { mut entries, merges, .. } => {
                reject_duplicate_keys(&entries)?;
                // Explicit keys win over merged ones; earlier merge sources win
                // over later ones (YAML merge key semantics).
                for source in merges {
                    let maps = match source.value {
                        Value::Map(m) => vec![m],
                        Value::Seq(items) => items
                            .into_iter()
                            .map(|n| match n.value {
                                Value::Map(m) => Ok(m),
                                _ => Err(merge_error(n.loc)),
                            })
                            .collect::<Result<_, _>>()?,
                        _ => return Err(merge_error(source.loc)),
                    };
                    for map in maps {
                        for (k, v) in map {
                            if !entries.iter().any(|(e, _)| e.name == k.name) {
                                entries.push((k, v));
                            }
                        }
                    }
                }
                Value::Map(entries)
            }
        };
        let node = Node { loc: frame.loc, value };
        if frame.anchor != 0 {
            self.anchors.insert(
                frame.anchor,
                Anchored { node: node.clone(), nodes: frame.nodes, bytes: frame.bytes },
            );
        }
        self.value(node, frame.nodes, frame.bytes)
    }

    /// A finished value: into the open collection, or the document root.
    fn value(&mut self, node: Node, nodes: usize, bytes: usize) -> Result<(), ConfigError> {
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        parent.nodes += nodes;
        parent.bytes += bytes;
        match &mut parent.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map { entries, key, merges } => match key.take() {
                Some(k) if k.name == MERGE_KEY => merges.push(node),
                Some(k) => entries.push((k, node)),
                None => return Err(self.complex_key(node.loc)),
            },
        }
        Ok(())
    }

    fn finish(self) -> Node {
        self.root.unwrap_or(Node { loc: Loc { line: 1, column: 1 }, value: Value::Map(Vec::new()) })
    }
}
// ANCHOR_END: tree_builder

/// Stands for `<<` while a mapping is open; never a real key (it has a NUL).
const MERGE_KEY: &str = "\0<<";

fn merge_error(loc: Loc) -> ConfigError {
    syntax(format!(
        "invalid YAML: a merge key (<<) takes a mapping or a list of mappings, at line {} column {}",
        loc.line, loc.column
    ))
}

fn reject_duplicate_keys(entries: &[(Key, Node)]) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    for (k, _) in entries {
        if !seen.insert(k.name.as_str()) {
            return Err(syntax(format!(
                "invalid YAML: duplicate key {:?} at line {} column {}",
                k.name, k.loc.line, k.loc.column
            )));
        }
    }
    Ok(())
}

fn check_collection_tag(
    tag: Option<&granit_parser::Tag>,
    core: &str,
    loc: Loc,
) -> Result<(), ConfigError> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema_tag(core) => Ok(()),
        Some(_) => Err(syntax(format!(
            "invalid YAML: unsupported tag on a collection at line {} column {}",
            loc.line, loc.column
        ))),
    }
}

// ANCHOR: resolve_scalar
/// Types a scalar with the YAML 1.2 core schema, as Envoy's YAML→JSON step does:
/// quoted scalars are strings; plain ones may be null, a boolean, an integer or a
/// float. YAML 1.1 spellings (`yes`, `on`, `0755` as octal) stay strings or decimals.
fn resolve_scalar(
    text: &str,
    style: granit_parser::ScalarStyle,
    tag: Option<&granit_parser::Tag>,
    loc: Loc,
) -> Result<Value, ConfigError> {
    let bad = |what: &str| {
        syntax(format!(
            "invalid YAML: {text:?} is not {what} at line {} column {}",
            loc.line, loc.column
        ))
    };
    if let Some(tag) = tag {
        let is = |suffix| tag.is_yaml_core_schema_tag(suffix);
        return match () {
            _ if is("str") => Ok(Value::Str(text.to_string())),
            _ if is("null") => Ok(Value::Null),
            _ if is("bool") => plain_bool(text).map(Value::Bool).ok_or_else(|| bad("a boolean")),
            _ if is("int") => plain_int(text).map(Value::Int).ok_or_else(|| bad("an integer")),
            _ if is("float") => plain_float(text).map(Value::Float).ok_or_else(|| bad("a number")),
            _ => Err(syntax(format!(
                "invalid YAML: unsupported tag on {text:?} at line {} column {}",
                loc.line, loc.column
            ))),
        };
    }
    if style != granit_parser::ScalarStyle::Plain {
        return Ok(Value::Str(text.to_string()));
    }
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        _ => match (plain_bool(text), plain_int(text), plain_float(text)) {
            (Some(b), _, _) => Value::Bool(b),
            (_, Some(i), _) => Value::Int(i),
            (_, _, Some(f)) => Value::Float(f),
            _ => Value::Str(text.to_string()),
        },
    })
}
// ANCHOR_END: resolve_scalar

fn plain_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn plain_int(text: &str) -> Option<i128> {
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(oct) = text.strip_prefix("0o") {
        (oct, 8)
    } else {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return text.parse().ok();
    };
    if digits.is_empty() {
        return None;
    }
    i128::from_str_radix(digits, radix).ok()
}

fn plain_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    // [-+]? ( . [0-9]+ | [0-9]+ ( . [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let b = text.strip_prefix(['-', '+']).unwrap_or(text).as_bytes();
    let digits = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
    let int = digits(b);
    let mut i = int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        frac = digits(&b[i + 1..]);
        i += 1 + frac;
    }
    if int + frac == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let rest = &b[i + 1..];
        let sign = usize::from(matches!(rest.first(), Some(b'-' | b'+')));
        let exp = digits(&rest[sign..]);
        if exp == 0 {
            return None;
        }
        i += 1 + sign + exp;
    }
    (i == b.len()).then(|| text.parse().ok()).flatten()
}

// ANCHOR: to_snake_case
/// `virtualHosts` → `virtual_hosts`: protobuf's JSON names back to proto names.
pub fn to_snake_case(key: &str) -> std::borrow::Cow<'_, str> {
    if !key.bytes().any(|b| b.is_ascii_uppercase()) {
        return key.into();
    }
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out.into()
}
// ANCHOR_END: to_snake_case

/// Fields whose values are free-form (protobuf `Struct`s and maps keyed by
/// user text): [`Node::to_json`] keeps their keys as written.
const FREE_FORM_FIELDS: &[&str] = &[
    "metadata",
    "filter_metadata",
    "typed_filter_metadata",
    "json_format",
    "typed_json_format",
    "static_layer",
    "fields",
];

/// Whether `key` is a lowerCamelCase field name (`virtualHosts`), which
/// protobuf's JSON mapping turns back into `virtual_hosts`. Type names,
/// header names and other keys with dots, dashes or underscores are not.
fn is_camel_case_field(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase()) && bytes.all(|b| b.is_ascii_alphanumeric())
}

impl Node {
    // ANCHOR: to_json
    /// The value as JSON, with protobuf field names (`virtualHosts` becomes
    /// `virtual_hosts`; keys inside free-form fields such as `metadata` stay
    /// as written). Scalars stay as written: `"0.25s"` is not normalised to
    /// `"0.250s"`, as Envoy's re-serialisation would.
    pub fn to_json(&self) -> serde_json::Value {
        self.to_json_keys(true)
    }

    fn to_json_keys(&self, proto_names: bool) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => {
                if let Ok(i) = i64::try_from(*i) {
                    J::from(i)
                } else if let Ok(u) = u64::try_from(*i) {
                    J::from(u)
                } else {
                    J::String(i.to_string())
                }
            }
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => {
                J::Array(items.iter().map(|n| n.to_json_keys(proto_names)).collect())
            }
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let name = if proto_names && is_camel_case_field(&k.name) {
                            to_snake_case(&k.name).into_owned()
                        } else {
                            k.name.clone()
                        };
                        let inner = proto_names && !FREE_FORM_FIELDS.contains(&name.as_str());
                        (name, v.to_json_keys(inner))
                    })
                    .collect(),
            ),
        }
    }
    // ANCHOR_END: to_json

    // ANCHOR: locate
    /// The position of the value at `path`, or of its nearest existing ancestor.
    ///
    /// Field segments match keys in either snake_case or lowerCamelCase.
    pub fn locate(&self, path: &FieldPath) -> Loc {
        let mut node = self;
        for seg in &path.0 {
            let next = match (seg, &node.value) {
                (Segment::Field(name), Value::Map(entries)) => {
                    entries.iter().find(|(k, _)| to_snake_case(&k.name) == name.as_str())
                }
                (Segment::Key(name), Value::Map(entries)) => {
                    entries.iter().find(|(k, _)| k.name == *name)
                }
                (Segment::Index(i), Value::Seq(items)) => {
                    node = match items.get(*i) {
                        Some(n) => n,
                        None => return node.loc,
                    };
                    continue;
                }
                // A lone value where a list is expected counts as a one-element list.
                (Segment::Index(0), _) => continue,
                _ => None,
            };
            match next {
                Some((_, n)) => node = n,
                None => return node.loc,
            }
        }
        node.loc
    }
    // ANCHOR_END: locate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        parse(text, &ParseLimits::default()).unwrap()
    }

    #[test]
    fn to_json_uses_proto_names_outside_free_form_fields() {
        let n = p("virtualHosts: [{name: a, requestHeadersToAdd: []}]\n\
                   metadata: {filter_metadata: {myKey: 1}}\n\
                   typed_extension_protocol_options:\n  envoy.x.v3.HttpOptions: {idleTimeout: 1s}\n\
                   big: 18446744073709551615\nneg: -3\nf: 0.5\nn: ~\n");
        let j = n.to_json();
        assert_eq!(j["virtual_hosts"][0]["request_headers_to_add"], serde_json::json!([]));
        assert_eq!(j["metadata"]["filter_metadata"]["myKey"], 1);
        let opts = &j["typed_extension_protocol_options"]["envoy.x.v3.HttpOptions"];
        assert_eq!(opts["idle_timeout"], "1s");
        assert_eq!(j["big"], serde_json::json!(u64::MAX));
        assert_eq!((j["neg"].as_i64(), j["f"].as_f64()), (Some(-3), Some(0.5)));
        assert!(j["n"].is_null());
    }

    #[test]
    fn keeps_positions_and_types() {
        let n = p("a:\n  b: \"5\"\n  c: 5\n  d: 0.25s\n  e: [1, x, ~, true]\n");
        let Value::Map(top) = &n.value else { panic!() };
        let Value::Map(inner) = &top[0].1.value else { panic!() };
        assert_eq!(inner[0].1.value, Value::Str("5".into()));
        assert_eq!(inner[1].1.value, Value::Int(5));
        assert_eq!(inner[1].1.loc, Loc { line: 3, column: 6 });
        assert_eq!(inner[2].1.value, Value::Str("0.25s".into()));
        let Value::Seq(items) = &inner[3].1.value else { panic!() };
        assert_eq!(items[2].value, Value::Null);
        assert_eq!(items[3].value, Value::Bool(true));
    }

    fn get<'a>(n: &'a Node, key: &str) -> &'a Node {
        let Value::Map(entries) = &n.value else { panic!("not a map: {n:?}") };
        &entries.iter().find(|(k, _)| k.name == key).unwrap_or_else(|| panic!("no {key}")).1
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = p(concat!(
            "base: &b {timeout: 5s, retries: 3}\n",
            "a:\n  <<: *b\n  retries: 9\n",
            "c:\n  <<: [{x: 1}, {x: 2, y: 2}]\n",
            "d: *b\n",
        ));
        let a = get(&n, "a");
        assert_eq!(get(a, "timeout").value, Value::Str("5s".into()));
        assert_eq!(get(a, "retries").value, Value::Int(9), "explicit keys win");
        let c = get(&n, "c");
        assert_eq!(get(c, "x").value, Value::Int(1), "earlier merge sources win");
        assert_eq!(get(c, "y").value, Value::Int(2));
        let d = get(&n, "d");
        assert_eq!(d.loc.line, 7, "an alias is located where it is used");
        assert_eq!(get(d, "retries").value, Value::Int(3));
        let e = parse("a: {<<: 5}\n", &ParseLimits::default()).unwrap_err();
        assert!(e.to_string().contains("merge key"), "{e}");
        let e = parse("a: *nope\n", &ParseLimits::default()).unwrap_err();
        assert!(e.to_string().contains("anchor"), "{e}");
    }

    #[test]
    fn core_schema_scalars() {
        let n = p(
            "a: [0x1F, 0o17, -12, +3, 1.5, -2e3, .inf, .nan, 1e, 0755, 1_000, '7', !!str 8, ~, Null, TRUE]\n",
        );
        let Value::Seq(items) = &get(&n, "a").value else { panic!() };
        let v: Vec<&Value> = items.iter().map(|n| &n.value).collect();
        assert_eq!(v[0], &Value::Int(31));
        assert_eq!(v[1], &Value::Int(15));
        assert_eq!(v[2], &Value::Int(-12));
        assert_eq!(v[3], &Value::Int(3));
        assert_eq!(v[4], &Value::Float(1.5));
        assert_eq!(v[5], &Value::Float(-2000.0));
        assert_eq!(v[6], &Value::Float(f64::INFINITY));
        assert!(matches!(v[7], Value::Float(f) if f.is_nan()));
        assert_eq!(v[8], &Value::Str("1e".into()));
        assert_eq!(v[9], &Value::Int(755), "YAML 1.2: no implicit octal");
        assert_eq!(v[10], &Value::Str("1_000".into()));
        assert_eq!(v[11], &Value::Str("7".into()));
        assert_eq!(v[12], &Value::Str("8".into()));
        assert_eq!(v[13], &Value::Null);
        assert_eq!(v[14], &Value::Null);
        assert_eq!(v[15], &Value::Bool(true));
        let e = parse("a: !!int abc\n", &ParseLimits::default()).unwrap_err();
        assert!(e.to_string().contains("not an integer"), "{e}");
        let e = parse("a: !custom x\n", &ParseLimits::default()).unwrap_err();
        assert!(e.to_string().contains("unsupported tag"), "{e}");
    }

    #[test]
    fn json_is_yaml() {
        let n = p(r#"{"clusters": [{"name": "a", "port": 80, "on": true}]}"#);
        let Value::Seq(c) = &get(&n, "clusters").value else { panic!() };
        assert_eq!(get(&c[0], "port").value, Value::Int(80));
        assert_eq!(get(&c[0], "on").value, Value::Bool(true));
    }

    #[test]
    fn structural_errors() {
        let e = parse("a: 1\n---\nb: 2\n", &ParseLimits::default()).unwrap_err();
        assert!(e.to_string().contains("only one document"), "{e}");
        let e = parse("? [a, b]\n: c\n", &ParseLimits::default()).unwrap_err();
        assert!(e.to_string().contains("mapping key must be a plain value"), "{e}");
        let small = ParseLimits { max_nodes: 10, ..ParseLimits::default() };
        let e = parse("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]", &small).unwrap_err();
        assert!(e.to_string().contains("more than 10 nodes"), "{e}");
        let big = ParseLimits { max_input_bytes: 4, ..ParseLimits::default() };
        assert!(parse("a: 12345", &big).unwrap_err().to_string().contains("limit"));
        let shallow = ParseLimits { max_depth: 3, ..ParseLimits::default() };
        let e = parse("[[[[1]]]]", &shallow).unwrap_err();
        assert!(e.to_string().contains("levels of nesting"), "{e}");
    }

    #[test]
    fn empty_document_is_an_empty_mapping() {
        assert_eq!(p("").value, Value::Map(Vec::new()));
        assert_eq!(p("# only a comment\n").value, Value::Map(Vec::new()));
    }

    #[test]
    fn yaml_1_1_booleans_are_strings() {
        let n = p("a: yes\n");
        let Value::Map(top) = &n.value else { panic!() };
        assert_eq!(top[0].1.value, Value::Str("yes".into()));
    }

    #[test]
    fn locate_follows_snake_and_camel_keys() {
        let n = p("staticResources:\n  clusters:\n  - name: a\n  - name: b\n    lbPolicy: X\n");
        let path = FieldPath::root()
            .field("static_resources")
            .field("clusters")
            .index(1)
            .field("lb_policy");
        assert_eq!(n.locate(&path), Loc { line: 5, column: 15 });
        let missing = FieldPath::root().field("static_resources").field("clusters").index(7);
        assert_eq!(n.locate(&missing).line, 3, "falls back to the list itself");
    }

    #[test]
    fn snake_case_conversion() {
        assert_eq!(to_snake_case("virtualHosts"), "virtual_hosts");
        assert_eq!(to_snake_case("http2ProtocolOptions"), "http2_protocol_options");
        assert_eq!(to_snake_case("already_snake"), "already_snake");
        assert_eq!(to_snake_case("@type"), "@type");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse("a: [1, 2\nb: c\n", &ParseLimits::default()).unwrap_err();
        assert!(e.to_string().contains("line"), "{e}");
        let e = parse("a: 1\na: 2\n", &ParseLimits::default()).unwrap_err();
        assert!(e.to_string().contains("invalid YAML"), "{e}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        assert!(parse(&bomb, &ParseLimits::default()).is_err());
    }

    #[test]
    fn large_strings_re_expanded_through_aliases_are_refused() {
        // A 1 MB file whose ten 100 KB strings are each used a thousand times.
        let big = "x".repeat(100_000);
        let mut text = String::new();
        for i in 0..10 {
            text.push_str(&format!("s{i}: &s{i} \"{big}\"\n"));
        }
        text.push_str("uses:\n");
        for _ in 0..1000 {
            text.push_str("- [*s0, *s1, *s2, *s3, *s4, *s5, *s6, *s7, *s8, *s9]\n");
        }
        let e = parse(&text, &ParseLimits::default()).unwrap_err();
        assert!(e.to_string().contains("invalid YAML"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowing() {
        let deep = "[".repeat(100_000);
        assert!(parse(&deep, &ParseLimits::default()).is_err());
        let deep_block: String = (0..5000).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert!(parse(&deep_block, &ParseLimits::default()).is_err());
    }
}
