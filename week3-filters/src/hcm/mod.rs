//! # The HTTP connection manager's sans-IO core
//!
//! Mirrors the parts of Envoy's `ConnectionManagerImpl`
//! (`source/common/http/conn_manager_impl.cc`) that are neither the codec
//! ([`crate::http1`]) nor the filter chain ([`crate::http::FilterManager`]):
//!
//! - [`config`]: `HttpConnectionManager` compiled once into a
//!   [`ConnectionManagerConfig`] with Envoy's defaults (codec limits, timers,
//!   header policies, upgrades, path handling);
//! - [`path`]: `:path` normalization before routing (400 / 307);
//! - [`utility`]: Envoy's `ConnectionManagerUtility`, the request and
//!   response header rules (hop-by-hop, `x-forwarded-*`, internal/edge,
//!   `x-envoy-*` sanitizing, `x-request-id`, `via`, `server`), host
//!   normalization and upgrade checks.
//!
//! Per request, the connection loop (mini-envoy) calls, after the codec
//! produced a [`RequestHead`](crate::http1::RequestHead):
//! [`normalize_path`] (an `Err` is a 400, a `Redirect` a 307),
//! [`normalize_host`], [`mutate_request_headers`], routes, checks
//! [`MutateOutcome::upgrade`] with [`upgrade_allowed_on_route`] (403 when
//! refused), runs the filter chain, and calls [`mutate_response_headers`]
//! on the way back. Nothing here does I/O or reads a clock; randomness for
//! `x-request-id` is injected.

pub mod config;
pub mod path;
pub mod utility;

pub use config::{
    ConnectionManagerConfig, EscapedSlashesAction, InternalAddresses, PathNormalization,
    StripPortMode, Timeouts, UpgradePolicy,
};
pub use path::{InvalidPath, PathAction, normalize_path};
pub use utility::{
    MutateOutcome, RequestContext, is_upgrade, mutate_request_headers, mutate_response_headers,
    new_request_id, normalize_host, upgrade_allowed, upgrade_allowed_on_route,
};

#[cfg(test)]
mod tests;
