//! Envoy's v3 configuration: a typed model and its YAML/JSON loader.
//!
//! An Envoy user's bootstrap YAML loads here unchanged. Loading has three stages,
//! each with its own module:
//!
//! ```text
//!  text ──yaml::parse──► Node tree ──de::from_node──► typed model ──Validate──► ok
//!        (budgets, positions)   (protobuf JSON rules)        (oneofs, ranges, references)
//! ```
//!
//! Whatever stage fails, the error names the field path and line:column:
//! `static_resources.clusters[2].lb_policy: unknown value "ROUND_ROBBIN" (...) at line 41 column 18`.
//! Unknown fields are errors, and Envoy features that mini-envoy does not
//! implement fail with `unsupported: <path> (<what is supported>)` rather than
//! being ignored.

pub mod access_log;
pub mod bootstrap;
pub mod cluster;
pub mod config_source;
pub mod de;
pub mod dns;
pub mod endpoint;
pub mod error;
pub mod filters;
pub mod health_check;
pub mod http_connection_manager;
pub mod listener;
pub mod protocol;
pub mod route;
pub mod tcp_proxy;
pub mod types;
pub mod validate;
pub mod yaml;

use std::path::Path;

use serde::de::DeserializeOwned;

pub use error::{ConfigError, ErrorKind, FieldPath, Loc};
pub use types::Duration;
pub use validate::{Validate, Validator};
pub use yaml::{Node, ParseLimits};

/// Loads a message of type `T` from YAML or JSON text, then validates it.
pub fn load_str<T: DeserializeOwned + Validate>(text: &str) -> Result<T, ConfigError> {
    load_str_with(text, &ParseLimits::default(), Validator::new())
}

/// [`load_str`] with explicit limits and a prepared validator (for example one
/// that knows the cluster names routes may use).
pub fn load_str_with<T: DeserializeOwned + Validate>(
    text: &str,
    limits: &ParseLimits,
    validator: Validator,
) -> Result<T, ConfigError> {
    let root = yaml::parse(text, limits)?;
    from_tree(&root, validator)
}

/// Maps an already parsed tree onto `T` and validates it; errors get positions
/// from the tree.
pub fn from_tree<T: DeserializeOwned + Validate>(
    root: &Node,
    mut validator: Validator,
) -> Result<T, ConfigError> {
    let base = validator.path().clone();
    let value: T = de::from_node(root, &base)?;
    value.validate(&mut validator);
    match validator.into_errors().into_iter().next() {
        None => Ok(value),
        Some(e) => Err(locate(root, &base, e)),
    }
}

/// Fills in the line:column of a validation error from the tree.
fn locate(root: &Node, base: &FieldPath, mut e: ConfigError) -> ConfigError {
    if let (None, Some(path)) = (e.loc, &e.path) {
        let relative = FieldPath(path.0.get(base.0.len()..).unwrap_or_default().to_vec());
        e.loc = Some(root.locate(&relative));
    }
    e
}

/// Reads a config file; the error names the file.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: None,
        loc: None,
        kind: ErrorKind::Syntax(format!("cannot read {}: {e}", path.display())),
    })
}

/// Reads and loads a file; the error names the file.
pub fn load_file<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    load_str(&read_file(path)?)
}

/// Loads and validates an Envoy bootstrap from YAML or JSON text.
pub fn load_bootstrap(text: &str) -> Result<bootstrap::Bootstrap, ConfigError> {
    load_str(text)
}

/// [`load_bootstrap`], also returning the bootstrap as JSON, as written
/// (see [`Node::to_json`]): what `/config_dump` shows.
pub fn load_bootstrap_with_source(
    text: &str,
) -> Result<(bootstrap::Bootstrap, serde_json::Value), ConfigError> {
    let root = yaml::parse(text, &ParseLimits::default())?;
    let bootstrap = from_tree(&root, Validator::new())?;
    Ok((bootstrap, root.to_json()))
}

/// Reads, loads and validates an Envoy bootstrap file.
pub fn load_bootstrap_file(path: &Path) -> Result<bootstrap::Bootstrap, ConfigError> {
    load_file(path)
}

/// [`load_bootstrap_file`] with the bootstrap's JSON, as [`load_bootstrap_with_source`].
pub fn load_bootstrap_file_with_source(
    path: &Path,
) -> Result<(bootstrap::Bootstrap, serde_json::Value), ConfigError> {
    load_bootstrap_with_source(&read_file(path)?)
}
