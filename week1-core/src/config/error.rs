//! Config errors: every one names the field path and, when known, line:column.
//!
//! A [`ConfigError`] looks like
//! `static_resources.clusters[2].lb_policy: unknown value "ROUND_ROBBIN" (expected one of ROUND_ROBIN, ...) at line 41 column 18`.
//! The deserializer fills path and position as an error bubbles up through the
//! node tree; validation errors carry a [`FieldPath`] whose position is found
//! afterwards by walking the same tree (see [`super::yaml::Node::locate`]).

use std::fmt;

/// A position in the source text, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    /// Line, starting at 1.
    pub line: u32,
    /// Column, starting at 1.
    pub column: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A message field, always in its snake_case proto name.
    Field(String),
    /// An element of a repeated field.
    Index(usize),
    /// An entry of a map field (keys are shown quoted).
    Key(String),
}

/// Where in the config a value sits, e.g. `static_resources.clusters[2].lb_policy`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The empty path: the document root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a field.
    pub fn field(&self, name: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Field(name.to_string()));
        p
    }

    /// This path extended by an index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    /// This path extended by a map key.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Key(k.to_string()));
        p
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<root>");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Field(name) if i == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) => write!(f, "[{k:?}]")?,
            }
        }
        Ok(())
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not valid YAML/JSON, or it broke a resource budget.
    Syntax(String),
    /// A key that is not a field of this message.
    UnknownField {
        /// The key as written.
        field: String,
        /// The fields this message has.
        expected: Vec<&'static str>,
    },
    /// An Envoy feature that exists but that mini-envoy does not implement.
    Unsupported {
        /// What mini-envoy supports instead.
        supported: String,
    },
    /// Any other invalid value.
    Invalid(String),
}

// ANCHOR: config_error
/// A config error with the field path and source position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the error is; `None` until the deserializer has placed it.
    pub path: Option<FieldPath>,
    /// Line and column, when known.
    pub loc: Option<Loc>,
    /// What went wrong.
    pub kind: ErrorKind,
}
// ANCHOR_END: config_error

impl ConfigError {
    /// An invalid value at `path`.
    pub fn invalid(path: FieldPath, msg: impl Into<String>) -> Self {
        Self { path: Some(path), loc: None, kind: ErrorKind::Invalid(msg.into()) }
    }

    /// An unsupported Envoy feature at `path`; `supported` says what works instead.
    pub fn unsupported(path: FieldPath, supported: impl Into<String>) -> Self {
        Self {
            path: Some(path),
            loc: None,
            kind: ErrorKind::Unsupported { supported: supported.into() },
        }
    }

    pub(crate) fn message(msg: impl Into<String>) -> Self {
        Self { path: None, loc: None, kind: ErrorKind::Invalid(msg.into()) }
    }

    // ANCHOR: place
    /// Places an error that has no position yet; an error placed deeper keeps its own.
    pub(crate) fn at(mut self, path: impl FnOnce() -> FieldPath, loc: Loc) -> Self {
        if self.path.is_none() {
            self.path = Some(path());
        }
        if self.loc.is_none() && loc.line > 0 {
            self.loc = Some(loc);
        }
        self
    }
    // ANCHOR_END: place

    /// Whether this is an `unsupported:` error.
    pub fn is_unsupported(&self) -> bool {
        matches!(self.kind, ErrorKind::Unsupported { .. })
    }
}

// ANCHOR: display
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.clone().unwrap_or_default();
        match &self.kind {
            ErrorKind::Unsupported { supported } => write!(f, "unsupported: {path} ({supported})")?,
            ErrorKind::Syntax(msg) => write!(f, "{msg}")?,
            ErrorKind::UnknownField { field, expected } => {
                write!(f, "{path}: unknown field {field:?}")?;
                if !expected.is_empty() {
                    write!(f, " (expected one of {})", expected.join(", "))?;
                }
            }
            ErrorKind::Invalid(msg) => write!(f, "{path}: {msg}")?,
        }
        if let Some(loc) = self.loc {
            write!(f, " at {loc}")?;
        }
        Ok(())
    }
}
// ANCHOR_END: display

impl std::error::Error for ConfigError {}

impl serde::de::Error for ConfigError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::message(msg.to_string())
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::message(format!(
            "unknown value {variant:?} (expected one of {})",
            expected.join(", ")
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self {
            path: None,
            loc: None,
            kind: ErrorKind::UnknownField { field: field.to_string(), expected: expected.to_vec() },
        }
    }

    fn invalid_type(unexp: serde::de::Unexpected<'_>, exp: &dyn serde::de::Expected) -> Self {
        Self::message(format!("expected {exp}, found {unexp}"))
    }

    fn missing_field(field: &'static str) -> Self {
        Self::message(format!("missing required field {field:?}"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::message(format!(
            "field {field:?} is set twice (once in snake_case, once in camelCase?)"
        ))
    }
}
