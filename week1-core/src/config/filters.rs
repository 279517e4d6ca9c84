//! Typed configs of the built-in filters, chosen by `typed_config."@type"`.
//! (Filled in by the config-model work; this is the seam the route model uses.)

use serde::Deserialize;

/// A per-route filter config (`typed_per_filter_config` values).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename = "@type")]
pub enum PerFilterConfig {
    /// `envoy.extensions.filters.http.cors.v3.CorsPolicy`.
    #[serde(rename = "envoy.extensions.filters.http.cors.v3.CorsPolicy")]
    Cors(CorsPolicy),
}

/// `envoy.extensions.filters.http.cors.v3.CorsPolicy`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsPolicy {
    /// Origins allowed.
    pub allow_origin_string_match: Vec<super::types::StringMatcher>,
}
