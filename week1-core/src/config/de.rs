//! Stage two of loading: the [`Node`] tree → typed model, with protobuf's JSON rules.
//!
//! Envoy parses YAML through protobuf's JSON mapping, and real configs rely on
//! its rules, so this serde `Deserializer` follows them:
//!
//! - message fields may be written in snake_case or lowerCamelCase
//!   (`virtual_hosts` or `virtualHosts`); map keys are kept verbatim;
//! - 64-bit integers (and any integer) may be quoted: `"5"`;
//! - `null` means "not set", so the field keeps its default;
//! - a single value where a list is expected is a one-element list;
//! - `google.protobuf.Any` (`typed_config`) is chosen by its `"@type"`: model it
//!   as an enum with `#[serde(rename = "@type")]` whose variants are renamed to
//!   the full message names (`envoy.extensions....v3.HttpConnectionManager`);
//!   an `@type` with no variant is an `unsupported:` error.
//!
//! Model structs use `#[serde(default, deny_unknown_fields)]`: a misspelt field
//! is an error that names it (with a "did you mean"), never silently ignored.
//! Every error gets the field path and the line:column of the offending node.

use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::error::{ConfigError, ErrorKind, FieldPath};
use super::yaml::{Node, Value, to_snake_case};

/// The serde enum name that marks a `google.protobuf.Any` chosen by `"@type"`.
pub const TYPE_TAG: &str = "@type";

// ANCHOR: from_node
/// Deserializes a typed model from a node, reporting errors under `base`.
pub fn from_node<T: de::DeserializeOwned>(node: &Node, base: &FieldPath) -> Result<T, ConfigError> {
    let path = PathStack::Root(base);
    T::deserialize(NodeDe { node, path: &path, skip_type_key: false })
}
// ANCHOR_END: from_node

/// The path to the node being read, as a stack of borrowed frames (built only on error).
#[derive(Clone, Copy)]
enum PathStack<'a> {
    Root(&'a FieldPath),
    Field(&'a PathStack<'a>, &'a str),
    Index(&'a PathStack<'a>, usize),
    Key(&'a PathStack<'a>, &'a str),
}

impl PathStack<'_> {
    fn to_path(self) -> FieldPath {
        match self {
            PathStack::Root(base) => base.clone(),
            PathStack::Field(parent, name) => parent.to_path().field(name),
            PathStack::Index(parent, i) => parent.to_path().index(i),
            PathStack::Key(parent, k) => parent.to_path().key(k),
        }
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    path: &'a PathStack<'a>,
    /// Reading the body of an `Any`: its `"@type"` key was already consumed.
    skip_type_key: bool,
}

impl<'a> NodeDe<'a> {
    fn place(&self, e: ConfigError) -> ConfigError {
        let path = *self.path;
        e.at(|| path.to_path(), self.node.loc)
    }

    fn type_error(&self, expected: &str) -> ConfigError {
        let found = match &self.node.value {
            Value::Str(s) => format!("the string {s:?}"),
            Value::Int(i) => format!("the integer {i}"),
            other => other.kind().to_string(),
        };
        self.place(ConfigError::message(format!("expected {expected}, found {found}")))
    }

    // ANCHOR: integer
    fn integer(&self, what: &str) -> Result<i128, ConfigError> {
        match &self.node.value {
            Value::Int(i) => Ok(*i),
            Value::Str(s) => s.trim().parse::<i128>().map_err(|_| self.type_error(what)),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e38 => Ok(*f as i128),
            _ => Err(self.type_error(what)),
        }
    }
    // ANCHOR_END: integer

    fn ranged<T: TryFrom<i128>>(&self, what: &str) -> Result<T, ConfigError> {
        let i = self.integer(what)?;
        T::try_from(i).map_err(|_| {
            self.place(ConfigError::message(format!("integer {i} is out of range for {what}")))
        })
    }

    fn float(&self) -> Result<f64, ConfigError> {
        match &self.node.value {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            Value::Str(s) => match s.trim() {
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                "NaN" => Ok(f64::NAN),
                t => t.parse().map_err(|_| self.type_error("a number")),
            },
            _ => Err(self.type_error("a number")),
        }
    }
}

macro_rules! deserialize_int {
    ($($method:ident $visit:ident $ty:ty => $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
            let n: $ty = self.ranged($what)?;
            visitor.$visit(n).map_err(|e| self.place(e))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = ConfigError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => match i64::try_from(*i) {
                Ok(n) => visitor.visit_i64(n),
                Err(_) => match u64::try_from(*i) {
                    Ok(n) => visitor.visit_u64(n),
                    Err(_) => visitor.visit_i128(*i),
                },
            },
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDe { items, next: 0, path: self.path }),
            Value::Map(entries) => {
                visitor.visit_map(MapDe::new(entries, self.path, KeyMode::Verbatim, false))
            }
        };
        result.map_err(|e| self.place(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match &self.node.value {
            Value::Bool(b) => visitor.visit_bool(*b).map_err(|e| self.place(e)),
            _ => Err(self.type_error("true or false")),
        }
    }

    deserialize_int! {
        deserialize_i8 visit_i8 i8 => "int8";
        deserialize_i16 visit_i16 i16 => "int16";
        deserialize_i32 visit_i32 i32 => "int32";
        deserialize_i64 visit_i64 i64 => "int64";
        deserialize_u8 visit_u8 u8 => "uint8";
        deserialize_u16 visit_u16 u16 => "uint16";
        deserialize_u32 visit_u32 u32 => "uint32";
        deserialize_u64 visit_u64 u64 => "uint64";
        deserialize_i128 visit_i128 i128 => "int128";
        deserialize_u128 visit_u128 u128 => "uint128";
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        let f = self.float()?;
        visitor.visit_f32(f as f32).map_err(|e| self.place(e))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        let f = self.float()?;
        visitor.visit_f64(f).map_err(|e| self.place(e))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        let result = match &self.node.value {
            Value::Str(s) => visitor.visit_str(s),
            // Unquoted scalars that YAML typed as numbers or booleans: their text is exact.
            Value::Int(i) => visitor.visit_string(i.to_string()),
            Value::Bool(b) => visitor.visit_string(b.to_string()),
            Value::Float(_) => {
                return Err(self.type_error("a string (quote the value to keep its exact text)"));
            }
            _ => return Err(self.type_error("a string")),
        };
        result.map_err(|e| self.place(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match &self.node.value {
            Value::Str(s) => visitor.visit_bytes(s.as_bytes()).map_err(|e| self.place(e)),
            _ => Err(self.type_error("a string")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match &self.node.value {
            Value::Null => visitor.visit_none().map_err(|e| self.place(e)),
            _ => {
                let place = (*self.path, self.node.loc);
                visitor.visit_some(self).map_err(|e| e.at(|| place.0.to_path(), place.1))
            }
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match &self.node.value {
            Value::Null => visitor.visit_unit().map_err(|e| self.place(e)),
            Value::Map(entries) if entries.is_empty() => {
                visitor.visit_unit().map_err(|e| self.place(e))
            }
            _ => Err(self.type_error("an empty value")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        let place = (*self.path, self.node.loc);
        visitor.visit_newtype_struct(self).map_err(|e| e.at(|| place.0.to_path(), place.1))
    }

    // ANCHOR: lone_value_list
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        let result = match &self.node.value {
            Value::Seq(items) => visitor.visit_seq(SeqDe { items, next: 0, path: self.path }),
            Value::Null => visitor.visit_seq(SeqDe { items: &[], next: 0, path: self.path }),
            // protobuf's JSON parser takes a lone value for a repeated field.
            _ => visitor.visit_seq(SeqDe {
                items: std::slice::from_ref(self.node),
                next: 0,
                path: self.path,
            }),
        };
        result.map_err(|e| self.place(e))
    }
    // ANCHOR_END: lone_value_list

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        let result = match &self.node.value {
            Value::Map(entries) => {
                visitor.visit_map(MapDe::new(entries, self.path, KeyMode::Verbatim, false))
            }
            Value::Null => visitor.visit_map(MapDe::new(&[], self.path, KeyMode::Verbatim, false)),
            _ => return Err(self.type_error("a mapping")),
        };
        result.map_err(|e| self.place(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        let result = match &self.node.value {
            Value::Map(entries) => visitor.visit_map(MapDe::new(
                entries,
                self.path,
                KeyMode::Fields(fields),
                self.skip_type_key,
            )),
            Value::Null => {
                visitor.visit_map(MapDe::new(&[], self.path, KeyMode::Fields(fields), false))
            }
            _ => return Err(self.type_error("a mapping")),
        };
        result.map_err(|e| self.place(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        let result = if name == TYPE_TAG {
            self.any_by_type(variants, visitor)
        } else {
            match &self.node.value {
                Value::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
                Value::Int(_) => {
                    return Err(
                        self.type_error("the name of an enum value (numbers are not accepted)")
                    );
                }
                Value::Map(entries) if entries.len() == 1 => {
                    let (key, value) = &entries[0];
                    let variant = to_snake_case(&key.name);
                    let path = PathStack::Field(self.path, &variant);
                    visitor.visit_enum(TaggedEnum {
                        variant: &variant,
                        content: NodeDe { node: value, path: &path, skip_type_key: false },
                    })
                }
                _ => return Err(self.type_error("an enum value name")),
            }
        };
        result.map_err(|e| self.place(e))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        visitor.visit_unit()
    }
}

impl NodeDe<'_> {
    // ANCHOR: any_by_type
    /// A `google.protobuf.Any`: pick the variant named by `"@type"`, read the rest as its body.
    fn any_by_type<'de, V: Visitor<'de>>(
        &self,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        let Value::Map(entries) = &self.node.value else {
            return Err(self.type_error("a mapping with an \"@type\" key"));
        };
        let Some((key, type_node)) = entries.iter().find(|(k, _)| k.name == TYPE_TAG) else {
            return Err(self.place(ConfigError::message(
                "missing \"@type\": typed_config must name its message type",
            )));
        };
        let type_path = PathStack::Key(self.path, TYPE_TAG);
        let Value::Str(type_url) = &type_node.value else {
            return Err(NodeDe { node: type_node, path: &type_path, skip_type_key: false }
                .type_error("a type URL string"));
        };
        // "type.googleapis.com/envoy.x.v3.Y" → "envoy.x.v3.Y", as protobuf does.
        let type_name = type_url.rsplit('/').next().unwrap_or(type_url);
        if !variants.contains(&type_name) {
            let mut err = ConfigError::unsupported(
                self.path.to_path(),
                format!("{type_url} is not implemented; supported here: {}", variants.join(", ")),
            );
            err.loc = Some(if key.loc.line > 0 { type_node.loc } else { self.node.loc });
            return Err(err);
        }
        visitor.visit_enum(TaggedEnum {
            variant: type_name,
            content: NodeDe { node: self.node, path: self.path, skip_type_key: true },
        })
    }
    // ANCHOR_END: any_by_type
}

struct SeqDe<'a> {
    items: &'a [Node],
    next: usize,
    path: &'a PathStack<'a>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_> {
    type Error = ConfigError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ConfigError> {
        let Some(node) = self.items.get(self.next) else { return Ok(None) };
        let path = PathStack::Index(self.path, self.next);
        self.next += 1;
        seed.deserialize(NodeDe { node, path: &path, skip_type_key: false }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

enum KeyMode {
    /// A protobuf `map<string, V>`: keys are data and stay as written.
    Verbatim,
    /// A message: keys are field names in either spelling.
    Fields(&'static [&'static str]),
}

struct MapDe<'a> {
    entries: &'a [(super::yaml::Key, Node)],
    next: usize,
    path: &'a PathStack<'a>,
    mode: KeyMode,
    skip_type_key: bool,
    /// The current key in its normalized form, for the value's path.
    current: Cow<'a, str>,
    seen: Vec<Cow<'a, str>>,
}

impl<'a> MapDe<'a> {
    fn new(
        entries: &'a [(super::yaml::Key, Node)],
        path: &'a PathStack<'a>,
        mode: KeyMode,
        skip_type_key: bool,
    ) -> Self {
        Self {
            entries,
            next: 0,
            path,
            mode,
            skip_type_key,
            current: Cow::Borrowed(""),
            seen: Vec::new(),
        }
    }
}

impl<'de> de::MapAccess<'de> for MapDe<'_> {
    type Error = ConfigError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ConfigError> {
        loop {
            let Some((key, value)) = self.entries.get(self.next) else { return Ok(None) };
            // ANCHOR: field_keys
            match self.mode {
                KeyMode::Verbatim => {
                    self.current = Cow::Borrowed(key.name.as_str());
                }
                KeyMode::Fields(fields) => {
                    // Unset (null) fields and an Any's consumed "@type" are skipped.
                    if matches!(value.value, Value::Null)
                        || (self.skip_type_key && key.name == TYPE_TAG)
                    {
                        self.next += 1;
                        continue;
                    }
                    let name = to_snake_case(&key.name);
                    if self.seen.contains(&name) {
                        return Err(ConfigError::message(format!(
                            "field {name:?} is set twice (as snake_case and camelCase?)"
                        ))
                        .at(|| self.path.to_path(), key.loc));
                    }
                    self.seen.push(name.clone());
                    if !fields.contains(&name.as_ref()) && !fields.is_empty() {
                        return Err(unknown_field(&key.name, &name, fields)
                            .at(|| self.path.to_path(), key.loc));
                    }
                    self.current = name;
                }
            }
            // ANCHOR_END: field_keys
            let key_node = Node { loc: key.loc, value: Value::Str(self.current.to_string()) };
            let key_path = *self.path;
            return seed
                .deserialize(NodeDe { node: &key_node, path: &key_path, skip_type_key: false })
                .map(Some)
                .map_err(|e| match e.kind {
                    ErrorKind::UnknownField { .. } => unknown_field(&key.name, &self.current, &[])
                        .at(|| key_path.to_path(), key.loc),
                    _ => e.at(|| key_path.to_path(), key.loc),
                });
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ConfigError> {
        let Some((_, node)) = self.entries.get(self.next) else {
            return Err(ConfigError::message("value requested past the end of a mapping"));
        };
        self.next += 1;
        let path = match self.mode {
            KeyMode::Verbatim => PathStack::Key(self.path, &self.current),
            KeyMode::Fields(_) => PathStack::Field(self.path, &self.current),
        };
        seed.deserialize(NodeDe { node, path: &path, skip_type_key: false })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.next)
    }
}

// ANCHOR: unknown_field
fn unknown_field(written: &str, normalized: &str, fields: &'static [&'static str]) -> ConfigError {
    let suggestion = fields
        .iter()
        .map(|f| (edit_distance(normalized, f), *f))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, f)| f);
    let msg = match suggestion {
        Some(f) => format!("unknown field {written:?} (did you mean {f:?}?)"),
        None if fields.is_empty() => format!("unknown field {written:?}"),
        None => format!("unknown field {written:?} (expected one of {})", fields.join(", ")),
    };
    ConfigError::message(msg)
}
// ANCHOR_END: unknown_field

/// Levenshtein distance, for "did you mean" hints on short field names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// An enum variant chosen by a tag (an Any's `@type` or a single-key mapping).
struct TaggedEnum<'a> {
    variant: &'a str,
    content: NodeDe<'a>,
}

impl<'de, 'a> de::EnumAccess<'de> for TaggedEnum<'a> {
    type Error = ConfigError;
    type Variant = NodeDe<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, NodeDe<'a>), ConfigError> {
        let variant = seed.deserialize(self.variant.into_deserializer())?;
        Ok((variant, self.content))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'_> {
    type Error = ConfigError;

    fn unit_variant(self) -> Result<(), ConfigError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ConfigError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::{ParseLimits, parse};
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Cluster {
        name: String,
        lb_policy: LbPolicy,
        max_requests: Option<u64>,
        per_connection_buffer_limit_bytes: u32,
        weights: Vec<u32>,
        metadata: BTreeMap<String, String>,
        typed_config: Option<Filter>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    enum LbPolicy {
        #[default]
        RoundRobin,
        LeastRequest,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename = "@type")]
    enum Filter {
        #[serde(rename = "envoy.test.v3.Router")]
        Router(Router),
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Router {
        dynamic_stats: Option<bool>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Root {
        clusters: Vec<Cluster>,
    }

    fn load(text: &str) -> Result<Root, ConfigError> {
        let node = parse(text, &ParseLimits::default())?;
        from_node(&node, &FieldPath::root())
    }

    #[test]
    fn camel_case_quoted_ints_nulls_and_lone_values() {
        let root = load(
            "clusters:\n- name: a\n  lbPolicy: LEAST_REQUEST\n  maxRequests: \"18446744073709551615\"\n  perConnectionBufferLimitBytes: ~\n  weights: 7\n  metadata: {someKey: v}\n",
        )
        .unwrap();
        let c = &root.clusters[0];
        assert_eq!(c.lb_policy, LbPolicy::LeastRequest);
        assert_eq!(c.max_requests, Some(u64::MAX));
        assert_eq!(c.per_connection_buffer_limit_bytes, 0);
        assert_eq!(c.weights, [7]);
        assert_eq!(c.metadata.get("someKey").map(String::as_str), Some("v"));
    }

    #[test]
    fn unknown_enum_value_names_path_and_position() {
        let e = load("clusters:\n- name: a\n- name: b\n  lb_policy: ROUND_ROBBIN\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "clusters[1].lb_policy: unknown value \"ROUND_ROBBIN\" (expected one of ROUND_ROBIN, LEAST_REQUEST) at line 4 column 14"
        );
    }

    #[test]
    fn unknown_fields_are_rejected_with_a_suggestion() {
        let e = load("clusters:\n- name: a\n  lbPolcy: X\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "clusters[0]: unknown field \"lbPolcy\" (did you mean \"lb_policy\"?) at line 3 column 3"
        );
    }

    #[test]
    fn snake_and_camel_twice_is_an_error() {
        let e = load("clusters:\n- lb_policy: ROUND_ROBIN\n  lbPolicy: ROUND_ROBIN\n").unwrap_err();
        assert!(e.to_string().contains("set twice"), "{e}");
    }

    #[test]
    fn out_of_range_and_wrong_types() {
        let e = load("clusters:\n- per_connection_buffer_limit_bytes: 4294967296\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "clusters[0].per_connection_buffer_limit_bytes: integer 4294967296 is out of range for uint32 at line 2 column 38"
        );
        let e = load("clusters:\n- name: [1]\n").unwrap_err();
        assert!(e.to_string().starts_with("clusters[0].name: expected a string"), "{e}");
        let e = load("clusters:\n- name: 1.5\n").unwrap_err();
        assert!(e.to_string().contains("quote the value"), "{e}");
        let e = load("clusters: 5\n").unwrap_err();
        assert!(e.to_string().starts_with("clusters[0]: expected a mapping"), "{e}");
    }

    #[test]
    fn any_is_chosen_by_type() {
        let root = load(
            "clusters:\n- typed_config:\n    \"@type\": type.googleapis.com/envoy.test.v3.Router\n    dynamicStats: false\n",
        )
        .unwrap();
        assert_eq!(
            root.clusters[0].typed_config,
            Some(Filter::Router(Router { dynamic_stats: Some(false) }))
        );

        let e = load(
            "clusters:\n- typed_config:\n    \"@type\": type.googleapis.com/envoy.test.v3.Lua\n",
        )
        .unwrap_err();
        assert!(e.is_unsupported());
        assert_eq!(
            e.to_string(),
            "unsupported: clusters[0].typed_config (type.googleapis.com/envoy.test.v3.Lua is not implemented; supported here: envoy.test.v3.Router) at line 3 column 14"
        );

        let e = load("clusters:\n- typed_config: {}\n").unwrap_err();
        assert!(e.to_string().contains("missing \"@type\""), "{e}");

        let e = load(
            "clusters:\n- typed_config:\n    \"@type\": x/envoy.test.v3.Router\n    bogus: 1\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "clusters[0].typed_config: unknown field \"bogus\" (did you mean \"@type\"?) at line 4 column 5"
                .replace(" (did you mean \"@type\"?)", " (expected one of dynamic_stats)")
        );
    }

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("lb_polcy", "lb_policy"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
