//! Stage one of loading: text → a tree of [`Node`]s that remember their position.
//!
//! Envoy reads YAML by converting it to JSON and parsing that with protobuf's JSON
//! mapping. We keep the same two stages: [`parse`] turns YAML (or JSON, which is
//! YAML) into an untyped tree, and [`super::de`] maps the tree onto the typed model
//! with the protobuf JSON rules. The tree keeps every node's line and column, so
//! any later error can point at the source.
//!
//! Parsing is done by `serde-saphyr` (pure Rust, maintained) with resource budgets,
//! so a hostile file (an alias "billion laughs", aliases that re-expand large
//! strings, deep nesting) is refused instead of exhausting memory.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

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
    /// Most YAML events replayed through aliases (`*name`).
    pub max_alias_replayed_events: usize,
    /// Deepest nesting (at most 200: the parser thread's stack is sized for that).
    pub max_depth: usize,
}
// ANCHOR_END: parse_limits

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_input_bytes: 64 << 20,
            max_nodes: 4_000_000,
            max_scalar_bytes: 64 << 20,
            max_alias_replayed_events: 250_000,
            max_depth: 64,
        }
    }
}

/// Stack for the parser thread: room for [`ParseLimits::max_depth`] levels with a wide margin.
const PARSER_STACK_BYTES: usize = 64 << 20;

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
    let max_depth = limits.max_depth.min(200);
    if text.trim().is_empty() {
        return Ok(Node { loc: Loc { line: 1, column: 1 }, value: Value::Map(Vec::new()) });
    }
    // The parser recurses once per nesting level with large frames (over 16 KiB
    // each in debug builds), so it runs on a thread whose stack comfortably holds
    // `max_depth` levels; the budget refuses anything deeper before recursing.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("config-parse".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(s, || {
                let options = serde_saphyr::options! {
                    budget: serde_saphyr::budget! {
                        max_nodes: limits.max_nodes,
                        max_total_scalar_bytes: limits.max_scalar_bytes,
                        max_depth: max_depth,
                        max_documents: 1,
                    },
                    alias_limits: serde_saphyr::alias_limits! {
                        max_total_replayed_events: limits.max_alias_replayed_events,
                    },
                    strict_booleans: true,
                };
                serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options)
                    .map(Node::from)
                    .map_err(|e| syntax(yaml_message(&e)))
            })
            .map_err(|e| syntax(format!("cannot start the config parser thread: {e}")))?
            .join()
            .map_err(|_| syntax("the YAML parser failed unexpectedly".to_string()))?
    })
}
// ANCHOR_END: parse

fn syntax(msg: String) -> ConfigError {
    ConfigError { path: None, loc: None, kind: ErrorKind::Syntax(msg) }
}

/// serde-saphyr's message, on one line, with its position as `line L column C`.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim().to_string();
    match e.location() {
        Some(l) if !first.contains("line") => {
            format!("invalid YAML: {first} at line {} column {}", l.line(), l.column())
        }
        _ => format!("invalid YAML: {first}"),
    }
}

/// What serde-saphyr hands us: values with spans, converted to [`Node`] right after.
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<String>, Spanned<Raw>)>),
}

fn loc_of<T>(s: &Spanned<T>) -> Loc {
    Loc { line: s.referenced.line() as u32, column: s.referenced.column() as u32 }
}

impl From<Spanned<Raw>> for Node {
    fn from(s: Spanned<Raw>) -> Self {
        let loc = loc_of(&s);
        let value = match s.value {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(b),
            Raw::Int(i) => Value::Int(i),
            Raw::Float(f) => Value::Float(f),
            Raw::Str(s) => Value::Str(s),
            Raw::Seq(items) => Value::Seq(items.into_iter().map(Node::from).collect()),
            Raw::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (Key { loc: loc_of(&k), name: k.value }, Node::from(v)))
                    .collect(),
            ),
        };
        Node { loc, value }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Raw, E> {
                i128::try_from(v).map(Raw::Int).map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Raw, E> {
                String::from_utf8(v.to_vec()).map(Raw::Str).map_err(|_| E::custom("binary value"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Raw::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
                    let key = Spanned {
                        value: key.value.0,
                        referenced: key.referenced,
                        defined: key.defined,
                    };
                    entries.push((key, map.next_value()?));
                }
                Ok(Raw::Map(entries))
            }
        }
        d.deserialize_any(RawVisitor)
    }
}

/// A mapping key: any scalar, kept as text (`80: x` has key "80").
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Str(s) => Ok(KeyText(s)),
            Raw::Int(i) => Ok(KeyText(i.to_string())),
            Raw::Bool(b) => Ok(KeyText(b.to_string())),
            Raw::Float(f) => Ok(KeyText(f.to_string())),
            Raw::Null => Ok(KeyText(String::new())),
            Raw::Seq(_) | Raw::Map(_) => {
                Err(serde::de::Error::custom("a mapping key must be a scalar"))
            }
        }
    }
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

impl Node {
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
