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

use std::sync::Arc;

use week1_core::config::filters::CorsPolicy;
use week1_core::config::types::RuntimeFractionalPercent;
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
    random: Option<Arc<dyn crate::context::RandomSource>>,
    /// Response headers to add (actual request from an allowed origin).
    add: Vec<(HeaderName, HeaderValue)>,
}

impl CorsFilter {
    /// A filter; `random` decides `filter_enabled` fractions.
    pub fn new(random: Arc<dyn crate::context::RandomSource>) -> Self {
        Self { random: Some(random), add: Vec::new() }
    }
}

/// A route's [`CorsPolicy`], compiled when the route table is built: origin
/// matchers compiled, header values checked.
#[derive(Debug)]
pub struct CorsConfig {
    origins: Vec<StringMatch>,
    filter_enabled: Option<RuntimeFractionalPercent>,
    forward_not_matching_preflights: bool,
    allow_credentials: bool,
    allow_private_network_access: bool,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

impl CorsConfig {
    /// Compiles a policy.
    pub fn new(p: &CorsPolicy) -> Result<Self, String> {
        let value = |field: &str, v: &str| {
            (!v.is_empty())
                .then(|| {
                    HeaderValue::try_from(v).map_err(|_| format!("{field}: invalid header value"))
                })
                .transpose()
        };
        Ok(Self {
            origins: p
                .allow_origin_string_match
                .iter()
                .map(|m| {
                    StringMatch::compile(m).map_err(|e| format!("allow_origin_string_match: {e}"))
                })
                .collect::<Result<_, _>>()?,
            filter_enabled: p.filter_enabled.clone(),
            forward_not_matching_preflights: p.forward_not_matching_preflights.unwrap_or(true),
            allow_credentials: p.allow_credentials == Some(true),
            allow_private_network_access: p.allow_private_network_access == Some(true),
            allow_methods: value("allow_methods", &p.allow_methods)?,
            allow_headers: value("allow_headers", &p.allow_headers)?,
            expose_headers: value("expose_headers", &p.expose_headers)?,
            max_age: value("max_age", &p.max_age)?,
        })
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|m| m.matches(origin))
    }
}

fn push_value(h: &mut HeaderMap, name: &'static str, value: &Option<HeaderValue>) {
    if let Some(v) = value {
        h.insert(HeaderName::from_static(name), v.clone());
    }
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
        let Some(policy) = cb.per_filter_config::<CorsConfig>() else {
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
        let allowed = policy.origin_allowed(&origin);
        let preflight = headers.method() == Some("OPTIONS")
            && headers.get("access-control-request-method").is_some_and(|v| !v.is_empty());
        if preflight {
            if !allowed {
                if policy.forward_not_matching_preflights {
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
            if policy.allow_credentials {
                push(&mut h, "access-control-allow-credentials", "true");
            }
            push_value(&mut h, "access-control-allow-methods", &policy.allow_methods);
            push_value(&mut h, "access-control-allow-headers", &policy.allow_headers);
            push_value(&mut h, "access-control-max-age", &policy.max_age);
            if policy.allow_private_network_access
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
            if policy.allow_credentials {
                push(&mut h, "access-control-allow-credentials", "true");
            }
            push_value(&mut h, "access-control-expose-headers", &policy.expose_headers);
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
