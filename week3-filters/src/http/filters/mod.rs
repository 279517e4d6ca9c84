//! # Built-in HTTP filters
//!
//! Each follows Envoy's semantics for its `envoy.filters.http.*` name and is
//! built from its typed config by [`crate::registry`]: a `…Config` compiled
//! once (held in an `Arc` by the factory) and a small per-stream filter.
//!
//! | filter | Envoy name | role |
//! | --- | --- | --- |
//! | [`router::RouterFilter`] | `envoy.filters.http.router` | terminal: local answers from the route; forwarding is the owner's |
//! | [`cors::CorsFilter`] | `envoy.filters.http.cors` | preflight answered locally, CORS headers on responses |
//! | [`basic_auth::BasicAuthFilter`] | `envoy.filters.http.basic_auth` | htpasswd `{SHA}` users, 401 |
//! | [`bearer_auth::BearerAuthFilter`] | `mini_envoy.filters.http.bearer_auth` | the course's token check |
//! | [`local_ratelimit::LocalRateLimitFilter`] | `envoy.filters.http.local_ratelimit` | token bucket, 429 |
//! | [`fault::FaultFilter`] | `envoy.filters.http.fault` | delays (timer) and aborts |
//! | [`buffer::BufferFilter`] | `envoy.filters.http.buffer` | whole request before upstream, 413 |
//! | [`header_mutation::HeaderMutationFilter`] | `envoy.filters.http.header_mutation` | request/response header rules |
//! | [`request_log::RequestLogFilter`] | `mini_envoy.filters.http.request_log` | one line per request |

pub mod basic_auth;
pub mod bearer_auth;
pub mod buffer;
pub mod cors;
pub mod fault;
pub mod header_mutation;
pub mod local_ratelimit;
pub mod request_log;
pub mod router;

use week1_core::config::protocol::DataSource;

/// Reads a data source at config time (inline text, bytes, file or environment):
/// Envoy's `DataSource`, shared by the filters and mini-envoy's access log formats.
pub fn read_data_source(d: &DataSource) -> Result<String, String> {
    if let Some(s) = &d.inline_string {
        return Ok(s.clone());
    }
    if let Some(b) = &d.inline_bytes {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|e| format!("inline_bytes is not base64: {e}"))?;
        return String::from_utf8(raw).map_err(|_| "inline_bytes is not UTF-8".to_string());
    }
    if let Some(f) = &d.filename {
        return std::fs::read_to_string(f).map_err(|e| format!("cannot read {f}: {e}"));
    }
    if let Some(v) = &d.environment_variable {
        return std::env::var(v).map_err(|_| format!("environment variable {v} is not set"));
    }
    Err("data source is empty".into())
}

/// Compares two byte strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
