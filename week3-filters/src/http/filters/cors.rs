//! # `envoy.filters.http.cors`
//!
//! Envoy's CORS filter. The policy is per route (`typed_per_filter_config`
//! of the route, virtual host or route configuration, key
//! `envoy.filters.http.cors`, a [`CorsPolicy`]); without one the filter does
//! nothing. For a request carrying `Origin`:
//!
//! - a *preflight* (`OPTIONS` with `Access-Control-Request-Method`) from an
//!   allowed origin is answered here, 200 with the `Access-Control-Allow-*`
//!   headers, without any upstream call; from another origin it is forwarded
//!   (or answered 200 without CORS headers when
//!   `forward_not_matching_preflights: false`);
//! - an actual request from an allowed origin goes on, and its response gets
//!   `Access-Control-Allow-Origin` (the request's origin),
//!   `Access-Control-Allow-Credentials` and `Access-Control-Expose-Headers`.

use week1_core::config::filters::{CorsPolicy, PerFilterConfig};
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue};
use week1_core::router::StringMatch;

use crate::http::stream_info::details;
use crate::http::{
    FilterCallbacks, FilterHeadersStatus, StreamDecoderFilter, StreamEncoderFilter,
    StreamFilterBase,
};

/// The CORS filter of one stream.
#[derive(Debug, Default)]
pub struct CorsFilter {
    random: Option<std::sync::Arc<dyn crate::context::RandomSource>>,
    /// Response headers to add (actual request from an allowed origin).
    add: Vec<(HeaderName, HeaderValue)>,
}

impl CorsFilter {
    /// A filter; `random` decides `filter_enabled` fractions.
    pub fn new(random: std::sync::Arc<dyn crate::context::RandomSource>) -> Self {
        Self { random: Some(random), add: Vec::new() }
    }
}

fn origin_allowed(policy: &CorsPolicy, origin: &str) -> bool {
    policy
        .allow_origin_string_match
        .iter()
        .any(|m| StringMatch::compile(m).is_ok_and(|m| m.matches(origin)))
}

fn push(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::try_from(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

impl StreamFilterBase for CorsFilter {}

impl StreamDecoderFilter for CorsFilter {
    // ANCHOR: cors_preflight
    fn decode_headers(
        &mut self,
        headers: &mut HeaderMap,
        _end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        let Some(PerFilterConfig::Cors(policy)) = cb.per_filter_config() else {
            return FilterHeadersStatus::Continue;
        };
        if let (Some(f), Some(r)) = (&policy.filter_enabled, &self.random)
            && !f.default_value.hits(r.random())
        {
            return FilterHeadersStatus::Continue;
        }
        let Some(origin) = headers.get_str("origin").map(str::to_string) else {
            return FilterHeadersStatus::Continue;
        };
        let allowed = origin_allowed(&policy, &origin);
        let preflight = headers.method() == Some("OPTIONS")
            && headers.get("access-control-request-method").is_some_and(|v| !v.is_empty());
        if preflight {
            if !allowed {
                if policy.forward_not_matching_preflights.unwrap_or(true) {
                    return FilterHeadersStatus::Continue;
                }
                let mut h = HeaderMap::new();
                push(&mut h, ":status", "200");
                cb.encode_headers(h, true, details::CORS_RESPONSE);
                return FilterHeadersStatus::StopIteration;
            }
            let mut h = HeaderMap::new();
            push(&mut h, ":status", "200");
            push(&mut h, "access-control-allow-origin", &origin);
            if policy.allow_credentials == Some(true) {
                push(&mut h, "access-control-allow-credentials", "true");
            }
            if !policy.allow_methods.is_empty() {
                push(&mut h, "access-control-allow-methods", &policy.allow_methods);
            }
            if !policy.allow_headers.is_empty() {
                push(&mut h, "access-control-allow-headers", &policy.allow_headers);
            }
            if !policy.max_age.is_empty() {
                push(&mut h, "access-control-max-age", &policy.max_age);
            }
            if policy.allow_private_network_access == Some(true)
                && headers.get_str("access-control-request-private-network") == Some("true")
            {
                push(&mut h, "access-control-allow-private-network", "true");
            }
            cb.encode_headers(h, true, details::CORS_RESPONSE);
            return FilterHeadersStatus::StopIteration;
        }
        if allowed {
            let mut h = HeaderMap::new();
            push(&mut h, "access-control-allow-origin", &origin);
            if policy.allow_credentials == Some(true) {
                push(&mut h, "access-control-allow-credentials", "true");
            }
            if !policy.expose_headers.is_empty() {
                push(&mut h, "access-control-expose-headers", &policy.expose_headers);
            }
            self.add = h.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        }
        FilterHeadersStatus::Continue
    }
    // ANCHOR_END: cors_preflight
}

impl StreamEncoderFilter for CorsFilter {
    fn encode_headers(
        &mut self,
        headers: &mut HeaderMap,
        _end: bool,
        _cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        for (n, v) in self.add.drain(..) {
            headers.insert(n, v);
        }
        FilterHeadersStatus::Continue
    }
}
