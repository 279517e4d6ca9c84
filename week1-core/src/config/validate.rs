//! Semantic checks after parsing: oneofs, ranges, cross-references.
//!
//! Envoy validates every message with protoc-gen-validate rules; mini-envoy does
//! the same with a [`Validate`] impl per message. A [`Validator`] walks the model
//! keeping the current [`FieldPath`], so each check only names its own field:
//!
//! ```ignore
//! impl Validate for Cluster {
//!     fn validate(&self, v: &mut Validator) {
//!         if self.name.is_empty() { v.error("name", "must not be empty"); }
//!         v.each("health_checks", &self.health_checks);
//!     }
//! }
//! ```
//!
//! The loader turns each error's path into a line:column through the node tree.

use std::collections::BTreeSet;

use super::error::{ConfigError, FieldPath, Segment};

// ANCHOR: validate_trait
/// A message that can check itself.
pub trait Validate {
    /// Reports every problem of `self` (and its children) to `v`.
    fn validate(&self, v: &mut Validator);
}
// ANCHOR_END: validate_trait

impl<T: Validate> Validate for Option<T> {
    fn validate(&self, v: &mut Validator) {
        if let Some(inner) = self {
            inner.validate(v);
        }
    }
}

impl<T: Validate> Validate for Box<T> {
    fn validate(&self, v: &mut Validator) {
        (**self).validate(v);
    }
}

/// Walks a config model collecting errors, each with its field path.
#[derive(Debug, Default)]
pub struct Validator {
    path: FieldPath,
    errors: Vec<ConfigError>,
    /// Cluster names that routes may name; `None` when clusters come from CDS
    /// and cannot be checked at load time.
    pub known_clusters: Option<BTreeSet<String>>,
}

impl Validator {
    /// A validator at the document root.
    pub fn new() -> Self {
        Self::default()
    }

    /// A validator whose paths start at `base` (for a message inside a larger document).
    pub fn at(base: FieldPath) -> Self {
        Self { path: base, ..Self::default() }
    }

    /// The path of the message being validated.
    pub fn path(&self) -> &FieldPath {
        &self.path
    }

    /// Runs `f` one field deeper.
    pub fn field(&mut self, name: &str, f: impl FnOnce(&mut Self)) {
        self.path.0.push(Segment::Field(name.to_string()));
        f(self);
        self.path.0.pop();
    }

    /// Runs `f` at element `i` of the current list.
    pub fn index(&mut self, i: usize, f: impl FnOnce(&mut Self)) {
        self.path.0.push(Segment::Index(i));
        f(self);
        self.path.0.pop();
    }

    /// Runs `f` at entry `key` of the current map.
    pub fn key(&mut self, key: &str, f: impl FnOnce(&mut Self)) {
        self.path.0.push(Segment::Key(key.to_string()));
        f(self);
        self.path.0.pop();
    }

    /// Validates a child message.
    pub fn child<T: Validate + ?Sized>(&mut self, name: &str, value: &T) {
        self.field(name, |v| value.validate(v));
    }

    /// Validates each element of a repeated field.
    pub fn each<T: Validate>(&mut self, name: &str, items: &[T]) {
        self.field(name, |v| {
            for (i, item) in items.iter().enumerate() {
                v.index(i, |v| item.validate(v));
            }
        });
    }

    /// An invalid value in field `name` of the current message.
    pub fn error(&mut self, name: &str, msg: impl Into<String>) {
        self.errors.push(ConfigError::invalid(self.path.field(name), msg));
    }

    /// An invalid value at the current path.
    pub fn error_here(&mut self, msg: impl Into<String>) {
        self.errors.push(ConfigError::invalid(self.path.clone(), msg));
    }

    /// A recognised Envoy feature in field `name` that mini-envoy does not implement.
    pub fn unsupported(&mut self, name: &str, supported: impl Into<String>) {
        self.errors.push(ConfigError::unsupported(self.path.field(name), supported));
    }

    // ANCHOR: oneof
    /// Checks a protobuf `oneof`: at most one of `fields` is set, and one is set
    /// when `required`. Each entry is `(field name, is set)`.
    pub fn oneof(&mut self, group: &str, fields: &[(&str, bool)], required: bool) {
        let set: Vec<&str> = fields.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
        let names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
        match set.as_slice() {
            [] if required => {
                self.error_here(format!("{group}: one of {} must be set", names.join(", ")))
            }
            [_, second, ..] => self.error(
                second,
                format!(
                    "{group}: only one of {} may be set, found {}",
                    names.join(", "),
                    set.join(" and ")
                ),
            ),
            _ => {}
        }
    }
    // ANCHOR_END: oneof

    /// Adds an error built elsewhere.
    pub fn push(&mut self, e: ConfigError) {
        self.errors.push(e);
    }

    /// The errors found, in document order of discovery.
    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }
}
