//! `envoy.config.route.v3`: route configurations, virtual hosts and routes.
//!
//! The model the [`crate::router`] compiles. A `RouteConfiguration` holds
//! virtual hosts (chosen by `:authority`), each with an ordered list of routes;
//! a route is a `match` plus one action (`route`, `redirect` or
//! `direct_response`). Field names and defaults are Envoy's v3 ones, so a
//! `route_config:` block from a real Envoy config loads unchanged. Envoy
//! features that the router does not implement are rejected with
//! `unsupported:` rather than ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;

use super::filters::PerFilterConfig;
use super::types::{
    Duration, Empty, HeaderValueOption, Metadata, RegexMatcher, RuntimeFractionalPercent,
    StringMatcher,
};
use super::validate::{Validate, Validator};

/// `typed_per_filter_config`: filter name → that filter's per-route config.
pub type PerFilterConfigs = BTreeMap<String, PerFilterConfig>;

/// `envoy.config.route.v3.RouteConfiguration`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfiguration {
    /// The name RDS refers to.
    pub name: String,
    /// Virtual hosts, chosen by `:authority`.
    pub virtual_hosts: Vec<VirtualHost>,
    /// On-demand virtual host discovery (not supported).
    pub vhds: Option<Json>,
    /// Headers removed from requests that do not come from an internal address.
    pub internal_only_headers: Vec<String>,
    /// Response headers added at the route-configuration level.
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Response headers removed at the route-configuration level.
    pub response_headers_to_remove: Vec<String>,
    /// Request headers added at the route-configuration level.
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Request headers removed at the route-configuration level.
    pub request_headers_to_remove: Vec<String>,
    /// Apply header mutations from least to most specific (route last) instead
    /// of Envoy's default most-specific-first. Default false.
    pub most_specific_header_mutations_wins: bool,
    /// Whether routes must name known clusters (Envoy: true for static configs).
    pub validate_clusters: Option<bool>,
    /// Largest `direct_response` body in bytes. Default 4096.
    pub max_direct_response_body_size_bytes: Option<u32>,
    /// Cluster specifier plugins (not supported).
    pub cluster_specifier_plugins: Vec<Json>,
    /// Request mirroring (not supported).
    pub request_mirror_policies: Vec<Json>,
    /// Ignore the port of `:authority` when matching domains. Default false.
    pub ignore_port_in_host_matching: bool,
    /// Strip `;params` before path matching (not supported).
    pub ignore_path_parameters_in_path_matching: bool,
    /// Per-filter configs that apply to every route.
    pub typed_per_filter_config: PerFilterConfigs,
    /// Free metadata.
    pub metadata: Option<Metadata>,
}

impl RouteConfiguration {
    /// The effective `max_direct_response_body_size_bytes` (default 4096).
    pub fn max_direct_response_body_size(&self) -> usize {
        self.max_direct_response_body_size_bytes.unwrap_or(4096) as usize
    }
}

impl Validate for RouteConfiguration {
    fn validate(&self, v: &mut Validator) {
        if self.vhds.is_some() {
            v.unsupported("vhds", "virtual hosts are listed inline in virtual_hosts");
        }
        if !self.cluster_specifier_plugins.is_empty() {
            v.unsupported(
                "cluster_specifier_plugins",
                "use cluster, cluster_header or weighted_clusters",
            );
        }
        if !self.request_mirror_policies.is_empty() {
            v.unsupported("request_mirror_policies", "request mirroring is not implemented");
        }
        if self.ignore_path_parameters_in_path_matching {
            v.unsupported(
                "ignore_path_parameters_in_path_matching",
                "paths are matched as received",
            );
        }
        let limit = self.max_direct_response_body_size();
        let check_clusters = self.validate_clusters != Some(false);
        let mut seen_domains: BTreeMap<String, usize> = BTreeMap::new();
        let mut seen_names: BTreeMap<&str, usize> = BTreeMap::new();
        v.field("virtual_hosts", |v| {
            for (i, vh) in self.virtual_hosts.iter().enumerate() {
                v.index(i, |v| {
                    vh.validate(v);
                    vh.validate_routes(v, limit, check_clusters);
                    if let Some(prev) = seen_names.insert(&vh.name, i) {
                        v.error(
                            "name",
                            format!(
                                "duplicate virtual host name {:?} (also virtual_hosts[{prev}])",
                                vh.name
                            ),
                        );
                    }
                    v.field("domains", |v| {
                        for (j, d) in vh.domains.iter().enumerate() {
                            let key = d.to_ascii_lowercase();
                            if let Some(prev) = seen_domains.insert(key, i) {
                                v.index(j, |v| {
                                    v.error_here(format!(
                                        "domain {d:?} is already used by virtual_hosts[{prev}]"
                                    ))
                                });
                            }
                        }
                    });
                });
            }
        });
        headers_to_add_check(v, "request_headers_to_add", &self.request_headers_to_add);
        headers_to_add_check(v, "response_headers_to_add", &self.response_headers_to_add);
        headers_to_remove_check(v, "request_headers_to_remove", &self.request_headers_to_remove);
        headers_to_remove_check(v, "response_headers_to_remove", &self.response_headers_to_remove);
        v.field("internal_only_headers", |v| {
            for (i, h) in self.internal_only_headers.iter().enumerate() {
                if crate::headers::HeaderName::try_from(h.as_str()).is_err() {
                    v.index(i, |v| v.error_here(format!("{h:?} is not a valid header name")));
                }
            }
        });
    }
}

/// Checks `*_headers_to_add`, including `%VARIABLE%` substitutions.
fn headers_to_add_check(v: &mut Validator, name: &str, items: &[HeaderValueOption]) {
    v.field(name, |v| {
        for (i, h) in items.iter().enumerate() {
            v.index(i, |v| {
                h.validate(v);
                let key = &h.header.key;
                if key.starts_with(':') || key.eq_ignore_ascii_case("host") {
                    v.field("header", |v| {
                        v.error(
                            "key",
                            format!("{key:?} cannot be set here (use the route's rewrite options)"),
                        )
                    });
                }
                if let Err(e) = crate::router::HeaderTemplate::parse(&h.header.value) {
                    v.field("header", |v| v.error("value", e));
                }
            });
        }
    });
}

/// Checks `*_headers_to_remove`: valid names, no pseudo-headers, not `host`.
fn headers_to_remove_check(v: &mut Validator, name: &str, items: &[String]) {
    v.field(name, |v| {
        for (i, h) in items.iter().enumerate() {
            v.index(i, |v| {
                if crate::headers::HeaderName::try_from(h.as_str()).is_err() {
                    v.error_here(format!("{h:?} is not a valid header name"));
                } else if h.starts_with(':') || h.eq_ignore_ascii_case("host") {
                    v.error_here(format!("{h:?} cannot be removed"));
                }
            });
        }
    });
}

/// `envoy.config.route.v3.VirtualHost.TlsRequirementType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsRequirementType {
    /// No requirement.
    #[default]
    None,
    /// Requests from outside (no `x-envoy-internal: true`) must use TLS.
    ExternalOnly,
    /// Every request must use TLS.
    All,
}

/// `envoy.config.route.v3.VirtualHost`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VirtualHost {
    /// The name (used in stats and by the router check tool).
    pub name: String,
    /// Host names served: exact, `*.suffix`, `prefix.*` or `*`; may carry a port.
    pub domains: Vec<String>,
    /// Routes, tried in order.
    pub routes: Vec<Route>,
    /// The generic matcher tree (not supported).
    pub matcher: Option<Json>,
    /// Whether TLS is required; other requests are redirected to https.
    pub require_tls: TlsRequirementType,
    /// Request classes for stats.
    pub virtual_clusters: Vec<VirtualCluster>,
    /// Rate limit descriptors (not supported).
    pub rate_limits: Vec<Json>,
    /// Request headers added at the virtual host level.
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Request headers removed at the virtual host level.
    pub request_headers_to_remove: Vec<String>,
    /// Response headers added at the virtual host level.
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Response headers removed at the virtual host level.
    pub response_headers_to_remove: Vec<String>,
    /// Deprecated CORS policy (use `typed_per_filter_config`).
    pub cors: Option<Json>,
    /// Per-filter configs for this virtual host's routes.
    pub typed_per_filter_config: PerFilterConfigs,
    /// Add `x-envoy-attempt-count` to upstream requests.
    pub include_request_attempt_count: bool,
    /// Add `x-envoy-attempt-count` to downstream responses.
    pub include_attempt_count_in_response: bool,
    /// Retry policy for routes that set none.
    pub retry_policy: Option<RetryPolicy>,
    /// Typed retry policy (not supported).
    pub retry_policy_typed_config: Option<Json>,
    /// Request hedging (not supported).
    pub hedge_policy: Option<Json>,
    /// Include the vhost rate limits in route rate limits (not supported).
    pub include_vh_rate_limits: bool,
    /// Body buffering limit for retries and shadowing.
    pub per_request_buffer_limit_bytes: Option<u32>,
    /// Request mirroring (not supported).
    pub request_mirror_policies: Vec<Json>,
    /// Free metadata.
    pub metadata: Option<Metadata>,
}

impl Validate for VirtualHost {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.error("name", "must not be empty");
        }
        if self.domains.is_empty() {
            v.error("domains", "must list at least one domain");
        }
        v.field("domains", |v| {
            for (i, d) in self.domains.iter().enumerate() {
                let bad = d.is_empty()
                    || (d != "*"
                        && d.get(1..d.len().saturating_sub(1)).is_some_and(|m| m.contains('*')))
                    || (d.len() > 1 && d.starts_with('*') && d.ends_with('*'));
                if bad {
                    v.index(i, |v| {
                        v.error_here(format!(
                            "invalid domain {d:?} (expected a host name, \"*.suffix\", \"prefix*\" or \"*\")"
                        ))
                    });
                }
            }
        });
        if self.matcher.is_some() {
            v.unsupported("matcher", "use routes");
        }
        if !self.rate_limits.is_empty() {
            v.unsupported("rate_limits", "rate limiting is not implemented");
        }
        if self.cors.is_some() {
            v.unsupported(
                "cors",
                "the deprecated vhost cors field is not supported; use typed_per_filter_config with envoy.filters.http.cors",
            );
        }
        if self.retry_policy_typed_config.is_some() {
            v.unsupported("retry_policy_typed_config", "use retry_policy");
        }
        if self.hedge_policy.is_some() {
            v.unsupported("hedge_policy", "request hedging is not implemented");
        }
        if self.include_vh_rate_limits {
            v.unsupported("include_vh_rate_limits", "rate limiting is not implemented");
        }
        if !self.request_mirror_policies.is_empty() {
            v.unsupported("request_mirror_policies", "request mirroring is not implemented");
        }
        v.each("virtual_clusters", &self.virtual_clusters);
        headers_to_add_check(v, "request_headers_to_add", &self.request_headers_to_add);
        headers_to_add_check(v, "response_headers_to_add", &self.response_headers_to_add);
        headers_to_remove_check(v, "request_headers_to_remove", &self.request_headers_to_remove);
        headers_to_remove_check(v, "response_headers_to_remove", &self.response_headers_to_remove);
        v.child("retry_policy", &self.retry_policy);
    }
}

impl VirtualHost {
    fn validate_routes(&self, v: &mut Validator, body_limit: usize, check_clusters: bool) {
        v.field("routes", |v| {
            for (i, r) in self.routes.iter().enumerate() {
                v.index(i, |v| {
                    r.validate(v);
                    if let Some(body) = r.direct_response.as_ref().and_then(|d| d.body.as_ref()) && body.inline_string.as_ref().is_some_and(|s| s.len() > body_limit) {
                        v.field("direct_response", |v| {
                            v.field("body", |v| {
                                v.error(
                                    "inline_string",
                                    format!(
                                        "body is longer than max_direct_response_body_size_bytes ({body_limit})"
                                    ),
                                )
                            })
                        });
                    }
                    if !check_clusters {
                        return;
                    }
                    let Some(action) = &r.route else { return };
                    let Some(known) = &v.known_clusters else { return };
                    // Collect first: the set is borrowed from the validator.
                    let cluster_unknown =
                        !action.cluster.is_empty() && !known.contains(&action.cluster);
                    let unknown_weighted: Vec<(usize, &str)> = action
                        .weighted_clusters
                        .iter()
                        .flat_map(|w| w.clusters.iter().enumerate())
                        .filter(|(_, c)| !c.name.is_empty() && !known.contains(&c.name))
                        .map(|(j, c)| (j, c.name.as_str()))
                        .collect();
                    if !cluster_unknown && unknown_weighted.is_empty() {
                        return;
                    }
                    v.field("route", |v| {
                        if cluster_unknown {
                            v.error("cluster", format!("unknown cluster {:?}", action.cluster));
                        }
                        for (j, name) in unknown_weighted {
                            v.field("weighted_clusters", |v| {
                                v.field("clusters", |v| {
                                    v.index(j, |v| v.error("name", format!("unknown cluster {name:?}")))
                                })
                            });
                        }
                    });
                });
            }
        });
    }
}

/// `envoy.config.route.v3.VirtualCluster`: a class of requests for stats.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VirtualCluster {
    /// The name.
    pub name: String,
    /// All must match.
    pub headers: Vec<HeaderMatcher>,
}

impl Validate for VirtualCluster {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.error("name", "must not be empty");
        }
        v.each("headers", &self.headers);
    }
}

/// `envoy.config.route.v3.Route`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Route {
    /// The route's name.
    pub name: String,
    /// When the route applies.
    pub r#match: RouteMatch,
    /// Forward upstream.
    pub route: Option<RouteAction>,
    /// Answer with a redirect.
    pub redirect: Option<RedirectAction>,
    /// Answer directly.
    pub direct_response: Option<DirectResponseAction>,
    /// A filter action (not supported).
    pub filter_action: Option<Json>,
    /// A non-forwarding action (not supported).
    pub non_forwarding_action: Option<Json>,
    /// Free metadata (`filter_metadata`).
    pub metadata: Option<Metadata>,
    /// Tracing decorator.
    pub decorator: Option<Decorator>,
    /// Per-filter configs for this route.
    pub typed_per_filter_config: PerFilterConfigs,
    /// Request headers added at the route level.
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Request headers removed at the route level.
    pub request_headers_to_remove: Vec<String>,
    /// Response headers added at the route level.
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Response headers removed at the route level.
    pub response_headers_to_remove: Vec<String>,
    /// Tracing overrides (not supported).
    pub tracing: Option<Json>,
    /// Body buffering limit for retries and shadowing.
    pub per_request_buffer_limit_bytes: Option<u32>,
    /// Per-route stats prefix.
    pub stat_prefix: String,
}

impl Validate for Route {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "action",
            &[
                ("route", self.route.is_some()),
                ("redirect", self.redirect.is_some()),
                ("direct_response", self.direct_response.is_some()),
                ("filter_action", self.filter_action.is_some()),
                ("non_forwarding_action", self.non_forwarding_action.is_some()),
            ],
            true,
        );
        if self.filter_action.is_some() {
            v.unsupported("filter_action", "use route, redirect or direct_response");
        }
        if self.non_forwarding_action.is_some() {
            v.unsupported("non_forwarding_action", "use route, redirect or direct_response");
        }
        if self.tracing.is_some() {
            v.unsupported("tracing", "tracing is not implemented");
        }
        v.child("match", &self.r#match);
        v.child("route", &self.route);
        v.child("redirect", &self.redirect);
        v.child("direct_response", &self.direct_response);
        headers_to_add_check(v, "request_headers_to_add", &self.request_headers_to_add);
        headers_to_add_check(v, "response_headers_to_add", &self.response_headers_to_add);
        headers_to_remove_check(v, "request_headers_to_remove", &self.request_headers_to_remove);
        headers_to_remove_check(v, "response_headers_to_remove", &self.response_headers_to_remove);
        if self.r#match.safe_regex.is_some() {
            let prefix_rewrite =
                self.route.as_ref().and_then(|a| a.prefix_rewrite.as_ref()).is_some()
                    || self.redirect.as_ref().and_then(|r| r.prefix_rewrite.as_ref()).is_some();
            if prefix_rewrite {
                v.error(
                    "match",
                    "prefix_rewrite cannot be used with a safe_regex match (use regex_rewrite)",
                );
            }
        }
    }
}

/// `envoy.config.route.v3.Decorator`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Decorator {
    /// The span name.
    pub operation: String,
    /// Whether to propagate the span context upstream.
    pub propagate: Option<bool>,
}

/// `envoy.config.route.v3.RouteMatch`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteMatch {
    /// The path starts with this.
    pub prefix: Option<String>,
    /// The path (without query) equals this.
    pub path: Option<String>,
    /// The path (without query) fully matches this regex.
    pub safe_regex: Option<RegexMatcher>,
    /// CONNECT requests (not supported).
    pub connect_matcher: Option<Json>,
    /// The path equals this or starts with it followed by `/`, `?` or `#`.
    pub path_separated_prefix: Option<String>,
    /// A path-template match policy (not supported).
    pub path_match_policy: Option<Json>,
    /// Whether path matching is case sensitive. Default true.
    pub case_sensitive: Option<bool>,
    /// Match only this fraction of requests.
    pub runtime_fraction: Option<RuntimeFractionalPercent>,
    /// Request header matchers; all must match.
    pub headers: Vec<HeaderMatcher>,
    /// Query parameter matchers; all must match.
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// Only gRPC requests (`content-type: application/grpc*`).
    pub grpc: Option<Empty>,
    /// TLS context matcher (not supported).
    pub tls_context: Option<Json>,
    /// Dynamic metadata matchers; all must match.
    pub dynamic_metadata: Vec<MetadataMatcher>,
    /// Filter state matchers (not supported).
    pub filter_state: Vec<Json>,
    /// Cookie matchers (not supported).
    pub cookies: Vec<Json>,
}

impl RouteMatch {
    /// Envoy's default: paths match case-sensitively.
    pub fn is_case_sensitive(&self) -> bool {
        self.case_sensitive.unwrap_or(true)
    }
}

impl Validate for RouteMatch {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "path_specifier",
            &[
                ("prefix", self.prefix.is_some()),
                ("path", self.path.is_some()),
                ("safe_regex", self.safe_regex.is_some()),
                ("connect_matcher", self.connect_matcher.is_some()),
                ("path_separated_prefix", self.path_separated_prefix.is_some()),
                ("path_match_policy", self.path_match_policy.is_some()),
            ],
            true,
        );
        if self.connect_matcher.is_some() {
            v.unsupported(
                "connect_matcher",
                "CONNECT is not supported; use prefix, path or safe_regex",
            );
        }
        if self.path_match_policy.is_some() {
            v.unsupported(
                "path_match_policy",
                "use prefix, path, safe_regex or path_separated_prefix",
            );
        }
        if let Some(p) = &self.path_separated_prefix
            && (!p.starts_with('/') || (p.len() > 1 && p.ends_with('/')) || p.contains(['?', '#']))
        {
            v.error(
                "path_separated_prefix",
                format!("{p:?} must start with '/', not end with '/', and have no '?' or '#'"),
            );
        }
        if self.tls_context.is_some() {
            v.unsupported("tls_context", "match on headers instead");
        }
        if !self.filter_state.is_empty() {
            v.unsupported("filter_state", "match on headers or dynamic_metadata instead");
        }
        if !self.cookies.is_empty() {
            v.unsupported("cookies", "match on the cookie header instead");
        }
        v.child("safe_regex", &self.safe_regex);
        v.each("headers", &self.headers);
        v.each("query_parameters", &self.query_parameters);
        v.each("dynamic_metadata", &self.dynamic_metadata);
    }
}

/// `envoy.type.v3.Int64Range`: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Int64Range {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

/// `envoy.config.route.v3.HeaderMatcher`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderMatcher {
    /// The header name (may be a pseudo-header such as `:path`).
    pub name: String,
    /// Deprecated: equal to.
    pub exact_match: Option<String>,
    /// Deprecated: fully matches the regex.
    pub safe_regex_match: Option<RegexMatcher>,
    /// The value is an integer in `[start, end)`.
    pub range_match: Option<Int64Range>,
    /// true: the header is present; false: it is absent.
    pub present_match: Option<bool>,
    /// Deprecated: starts with.
    pub prefix_match: Option<String>,
    /// Deprecated: ends with.
    pub suffix_match: Option<String>,
    /// Deprecated: contains.
    pub contains_match: Option<String>,
    /// A string matcher on the value.
    pub string_match: Option<StringMatcher>,
    /// Invert the result.
    pub invert_match: bool,
    /// Treat a missing header as an empty value.
    pub treat_missing_header_as_empty: bool,
}

impl Validate for HeaderMatcher {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.error("name", "must not be empty");
        } else if crate::headers::HeaderName::try_from(self.name.as_str()).is_err() {
            v.error("name", format!("{:?} is not a valid header name", self.name));
        }
        v.oneof(
            "header_match_specifier",
            &[
                ("exact_match", self.exact_match.is_some()),
                ("safe_regex_match", self.safe_regex_match.is_some()),
                ("range_match", self.range_match.is_some()),
                ("present_match", self.present_match.is_some()),
                ("prefix_match", self.prefix_match.is_some()),
                ("suffix_match", self.suffix_match.is_some()),
                ("contains_match", self.contains_match.is_some()),
                ("string_match", self.string_match.is_some()),
            ],
            false,
        );
        for (name, value) in [
            ("prefix_match", &self.prefix_match),
            ("suffix_match", &self.suffix_match),
            ("contains_match", &self.contains_match),
        ] {
            if value.as_deref() == Some("") {
                v.error(name, "must not be empty");
            }
        }
        if let Some(r) = self.range_match
            && r.start >= r.end
        {
            v.error("range_match", format!("start {} must be below end {}", r.start, r.end));
        }
        v.child("safe_regex_match", &self.safe_regex_match);
        v.child("string_match", &self.string_match);
    }
}

/// `envoy.config.route.v3.QueryParameterMatcher`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryParameterMatcher {
    /// The parameter name.
    pub name: String,
    /// A string matcher on the (decoded) value.
    pub string_match: Option<StringMatcher>,
    /// The parameter is present.
    pub present_match: Option<bool>,
}

impl Validate for QueryParameterMatcher {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.error("name", "must not be empty");
        }
        v.oneof(
            "query_parameter_match_specifier",
            &[
                ("string_match", self.string_match.is_some()),
                ("present_match", self.present_match.is_some()),
            ],
            false,
        );
        v.child("string_match", &self.string_match);
    }
}

/// `envoy.type.matcher.v3.MetadataMatcher`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataMatcher {
    /// The metadata namespace (filter name).
    pub filter: String,
    /// Keys leading to the value.
    pub path: Vec<MetadataPathSegment>,
    /// What the value must be.
    pub value: ValueMatcher,
    /// Invert the result.
    pub invert: bool,
}

impl Validate for MetadataMatcher {
    fn validate(&self, v: &mut Validator) {
        if self.filter.is_empty() {
            v.error("filter", "must not be empty");
        }
        if self.path.is_empty() {
            v.error("path", "must have at least one key");
        }
        v.child("value", &self.value);
    }
}

/// `envoy.type.matcher.v3.MetadataMatcher.PathSegment`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataPathSegment {
    /// A struct key.
    pub key: String,
}

/// `envoy.type.matcher.v3.DoubleMatcher`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoubleMatcher {
    /// `[start, end)`.
    pub range: Option<DoubleRange>,
    /// Equal to.
    pub exact: Option<f64>,
}

/// `envoy.type.v3.DoubleRange`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoubleRange {
    /// Inclusive start.
    pub start: f64,
    /// Exclusive end.
    pub end: f64,
}

/// `envoy.type.matcher.v3.ValueMatcher`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValueMatcher {
    /// The value is null.
    pub null_match: Option<Empty>,
    /// A number matcher.
    pub double_match: Option<DoubleMatcher>,
    /// A string matcher.
    pub string_match: Option<StringMatcher>,
    /// Equal to this boolean.
    pub bool_match: Option<bool>,
    /// The value is present.
    pub present_match: Option<bool>,
    /// A list matcher (not supported).
    pub list_match: Option<Json>,
    /// An or-matcher (not supported).
    pub or_match: Option<Json>,
}

impl Validate for ValueMatcher {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "match_pattern",
            &[
                ("null_match", self.null_match.is_some()),
                ("double_match", self.double_match.is_some()),
                ("string_match", self.string_match.is_some()),
                ("bool_match", self.bool_match.is_some()),
                ("present_match", self.present_match.is_some()),
                ("list_match", self.list_match.is_some()),
                ("or_match", self.or_match.is_some()),
            ],
            true,
        );
        if self.list_match.is_some() {
            v.unsupported("list_match", "null, double, string, bool and present matchers");
        }
        if self.or_match.is_some() {
            v.unsupported("or_match", "null, double, string, bool and present matchers");
        }
        if let Some(d) = &self.double_match {
            v.field("double_match", |v| {
                v.oneof(
                    "match_pattern",
                    &[("range", d.range.is_some()), ("exact", d.exact.is_some())],
                    true,
                )
            });
        }
        v.child("string_match", &self.string_match);
    }
}

/// `envoy.config.route.v3.RouteAction.ClusterNotFoundResponseCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterNotFoundResponseCode {
    /// 503.
    #[default]
    ServiceUnavailable,
    /// 404.
    NotFound,
    /// 500.
    InternalServerError,
}

impl ClusterNotFoundResponseCode {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::ServiceUnavailable => 503,
            Self::NotFound => 404,
            Self::InternalServerError => 500,
        }
    }
}

pub use super::types::RoutingPriority;

/// `envoy.type.matcher.v3.RegexMatchAndSubstitute`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegexMatchAndSubstitute {
    /// The pattern (matched anywhere; every match is replaced).
    pub pattern: RegexMatcher,
    /// The replacement; `\1`..`\9` name capture groups.
    pub substitution: String,
}

impl RegexMatchAndSubstitute {
    /// Compiles the pattern unanchored, as Envoy's `RE2::GlobalReplace`.
    pub fn compile(&self) -> Result<regex::Regex, regex::Error> {
        regex::RegexBuilder::new(&self.pattern.regex).size_limit(1 << 20).build()
    }
}

impl Validate for RegexMatchAndSubstitute {
    fn validate(&self, v: &mut Validator) {
        if let Err(e) = self.compile() {
            let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
            v.field("pattern", |v| {
                v.error("regex", format!("invalid regex {:?}: {first}", self.pattern.regex))
            });
        }
    }
}

/// `envoy.config.route.v3.RouteAction`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteAction {
    /// The upstream cluster.
    pub cluster: String,
    /// The request header naming the cluster.
    pub cluster_header: String,
    /// Clusters picked by weight.
    pub weighted_clusters: Option<WeightedCluster>,
    /// A cluster specifier plugin (not supported).
    pub cluster_specifier_plugin: String,
    /// An inline cluster specifier plugin (not supported).
    pub inline_cluster_specifier_plugin: Option<Json>,
    /// The status when the cluster does not exist. Default 503.
    pub cluster_not_found_response_code: ClusterNotFoundResponseCode,
    /// Endpoint subset metadata (not supported).
    pub metadata_match: Option<Json>,
    /// Replace the matched prefix (or path) with this.
    pub prefix_rewrite: Option<String>,
    /// Rewrite the path (without query) with a regex.
    pub regex_rewrite: Option<RegexMatchAndSubstitute>,
    /// A path template rewrite (not supported).
    pub path_rewrite_policy: Option<Json>,
    /// Set the Host/`:authority` to this.
    pub host_rewrite_literal: Option<String>,
    /// Set the Host to the upstream host's name.
    pub auto_host_rewrite: Option<bool>,
    /// Set the Host from this request header.
    pub host_rewrite_header: Option<String>,
    /// Rewrite the Host from the path with a regex (not supported).
    pub host_rewrite_path_regex: Option<Json>,
    /// Add `x-forwarded-host` when the host is rewritten.
    pub append_x_forwarded_host: bool,
    /// Upstream timeout for the whole request. Default 15s; 0 disables.
    pub timeout: Option<Duration>,
    /// Stream idle timeout for this route.
    pub idle_timeout: Option<Duration>,
    /// Early data (not supported).
    pub early_data_policy: Option<Json>,
    /// Retries.
    pub retry_policy: Option<RetryPolicy>,
    /// Typed retry policy (not supported).
    pub retry_policy_typed_config: Option<Json>,
    /// Request mirroring (not supported).
    pub request_mirror_policies: Vec<Json>,
    /// The upstream priority.
    pub priority: RoutingPriority,
    /// Rate limits (not supported).
    pub rate_limits: Vec<Json>,
    /// Include the virtual host rate limits (not supported).
    pub include_vh_rate_limits: Option<bool>,
    /// Hash policies for ring hash / Maglev.
    pub hash_policy: Vec<HashPolicy>,
    /// Deprecated CORS (not supported).
    pub cors: Option<Json>,
    /// Deprecated gRPC timeout cap (not supported).
    pub max_grpc_timeout: Option<Json>,
    /// Deprecated gRPC timeout offset (not supported).
    pub grpc_timeout_offset: Option<Json>,
    /// Upgrades (WebSocket and others) allowed on this route.
    pub upgrade_configs: Vec<UpgradeConfig>,
    /// Internal redirects (not supported).
    pub internal_redirect_policy: Option<Json>,
    /// Deprecated internal redirect action (not supported).
    pub internal_redirect_action: Option<Json>,
    /// Deprecated internal redirect limit (not supported).
    pub max_internal_redirects: Option<Json>,
    /// Request hedging (not supported).
    pub hedge_policy: Option<Json>,
    /// Stream duration limits.
    pub max_stream_duration: Option<MaxStreamDuration>,
}

impl RouteAction {
    /// The effective timeout: 15s when unset, `None` when disabled by `0s`.
    pub fn effective_timeout(&self) -> Option<std::time::Duration> {
        let t = self.timeout.unwrap_or(Duration::from_secs(15));
        (!t.is_zero()).then(|| t.get())
    }
}

impl Validate for RouteAction {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "cluster_specifier",
            &[
                ("cluster", !self.cluster.is_empty()),
                ("cluster_header", !self.cluster_header.is_empty()),
                ("weighted_clusters", self.weighted_clusters.is_some()),
                ("cluster_specifier_plugin", !self.cluster_specifier_plugin.is_empty()),
                ("inline_cluster_specifier_plugin", self.inline_cluster_specifier_plugin.is_some()),
            ],
            true,
        );
        let only = "use cluster, cluster_header or weighted_clusters";
        if !self.cluster_specifier_plugin.is_empty() {
            v.unsupported("cluster_specifier_plugin", only);
        }
        if self.inline_cluster_specifier_plugin.is_some() {
            v.unsupported("inline_cluster_specifier_plugin", only);
        }
        if !self.cluster_header.is_empty()
            && crate::headers::HeaderName::try_from(self.cluster_header.as_str()).is_err()
        {
            v.error(
                "cluster_header",
                format!("{:?} is not a valid header name", self.cluster_header),
            );
        }
        v.child("weighted_clusters", &self.weighted_clusters);
        for (name, set) in [
            ("metadata_match", self.metadata_match.is_some()),
            ("path_rewrite_policy", self.path_rewrite_policy.is_some()),
            ("host_rewrite_path_regex", self.host_rewrite_path_regex.is_some()),
            ("early_data_policy", self.early_data_policy.is_some()),
            ("retry_policy_typed_config", self.retry_policy_typed_config.is_some()),
            ("request_mirror_policies", !self.request_mirror_policies.is_empty()),
            ("rate_limits", !self.rate_limits.is_empty()),
            ("include_vh_rate_limits", self.include_vh_rate_limits.is_some()),
            ("cors", self.cors.is_some()),
            ("max_grpc_timeout", self.max_grpc_timeout.is_some()),
            ("grpc_timeout_offset", self.grpc_timeout_offset.is_some()),
            ("internal_redirect_policy", self.internal_redirect_policy.is_some()),
            ("internal_redirect_action", self.internal_redirect_action.is_some()),
            ("max_internal_redirects", self.max_internal_redirects.is_some()),
            ("hedge_policy", self.hedge_policy.is_some()),
        ] {
            if set {
                v.unsupported(name, unsupported_route_action_hint(name));
            }
        }
        v.oneof(
            "path_rewrite",
            &[
                ("prefix_rewrite", self.prefix_rewrite.is_some()),
                ("regex_rewrite", self.regex_rewrite.is_some()),
            ],
            false,
        );
        v.child("regex_rewrite", &self.regex_rewrite);
        v.oneof(
            "host_rewrite_specifier",
            &[
                ("host_rewrite_literal", self.host_rewrite_literal.is_some()),
                ("auto_host_rewrite", self.auto_host_rewrite.is_some()),
                ("host_rewrite_header", self.host_rewrite_header.is_some()),
                ("host_rewrite_path_regex", self.host_rewrite_path_regex.is_some()),
            ],
            false,
        );
        if let Some(h) = &self.host_rewrite_header
            && crate::headers::HeaderName::try_from(h.as_str()).is_err()
        {
            v.error("host_rewrite_header", format!("{h:?} is not a valid header name"));
        }
        v.child("retry_policy", &self.retry_policy);
        v.each("hash_policy", &self.hash_policy);
        v.each("upgrade_configs", &self.upgrade_configs);
    }
}

fn unsupported_route_action_hint(name: &str) -> &'static str {
    match name {
        "path_rewrite_policy" => "use prefix_rewrite or regex_rewrite",
        "host_rewrite_path_regex" => {
            "use host_rewrite_literal, host_rewrite_header or auto_host_rewrite"
        }
        "retry_policy_typed_config" => "use retry_policy",
        "request_mirror_policies" => "request mirroring is not implemented",
        "rate_limits" | "include_vh_rate_limits" => "rate limiting is not implemented",
        "cors" => "use typed_per_filter_config with envoy.filters.http.cors",
        "max_grpc_timeout" | "grpc_timeout_offset" => "use max_stream_duration",
        "internal_redirect_policy" | "internal_redirect_action" | "max_internal_redirects" => {
            "internal redirects are not implemented"
        }
        "hedge_policy" => "request hedging is not implemented",
        "metadata_match" => "endpoint subsets are not implemented",
        _ => "not implemented",
    }
}

/// `envoy.config.route.v3.WeightedCluster`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeightedCluster {
    /// The clusters, picked in this order.
    pub clusters: Vec<ClusterWeight>,
    /// Deprecated: the sum of the weights (checked when set).
    pub total_weight: Option<u32>,
    /// Runtime keys for the weights (kept; there is no runtime layer, so the
    /// configured weights apply).
    pub runtime_key_prefix: String,
    /// A request header whose value is the random number to pick with.
    pub header_name: String,
    /// A fixed random value (not supported).
    pub random_value_specifier: Option<Json>,
}

impl WeightedCluster {
    /// The sum of the weights.
    pub fn sum(&self) -> u64 {
        self.clusters.iter().map(|c| u64::from(c.weight.unwrap_or(0))).sum()
    }
}

impl Validate for WeightedCluster {
    fn validate(&self, v: &mut Validator) {
        if self.clusters.is_empty() {
            v.error("clusters", "must list at least one cluster");
        }
        v.each("clusters", &self.clusters);
        let sum = self.sum();
        match self.total_weight {
            Some(t) if u64::from(t) != sum => {
                v.error("total_weight", format!("is {t} but the weights add up to {sum}"))
            }
            _ if sum == 0 && !self.clusters.is_empty() => {
                v.error("clusters", "the weights add up to 0")
            }
            _ if sum > u64::from(u32::MAX) => {
                v.error("clusters", "the weights add up to more than 2^32-1")
            }
            _ => {}
        }
        if !self.header_name.is_empty()
            && crate::headers::HeaderName::try_from(self.header_name.as_str()).is_err()
        {
            v.error("header_name", format!("{:?} is not a valid header name", self.header_name));
        }
        if self.random_value_specifier.is_some() {
            v.unsupported("random_value_specifier", "use header_name or the router's random value");
        }
    }
}

/// `envoy.config.route.v3.WeightedCluster.ClusterWeight`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterWeight {
    /// The cluster.
    pub name: String,
    /// A header naming the cluster (not supported).
    pub cluster_header: String,
    /// The weight.
    pub weight: Option<u32>,
    /// Endpoint subset metadata (not supported).
    pub metadata_match: Option<Json>,
    /// Request headers added when this cluster is picked.
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Request headers removed when this cluster is picked.
    pub request_headers_to_remove: Vec<String>,
    /// Response headers added when this cluster is picked.
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Response headers removed when this cluster is picked.
    pub response_headers_to_remove: Vec<String>,
    /// Per-filter configs when this cluster is picked.
    pub typed_per_filter_config: PerFilterConfigs,
    /// Host rewrite when this cluster is picked.
    pub host_rewrite_literal: Option<String>,
}

impl Validate for ClusterWeight {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.error("name", "must not be empty");
        }
        if !self.cluster_header.is_empty() {
            v.unsupported("cluster_header", "name the cluster");
        }
        if self.metadata_match.is_some() {
            v.unsupported("metadata_match", "endpoint subsets are not implemented");
        }
        headers_to_add_check(v, "request_headers_to_add", &self.request_headers_to_add);
        headers_to_add_check(v, "response_headers_to_add", &self.response_headers_to_add);
        headers_to_remove_check(v, "request_headers_to_remove", &self.request_headers_to_remove);
        headers_to_remove_check(v, "response_headers_to_remove", &self.response_headers_to_remove);
    }
}

/// `envoy.config.route.v3.RouteAction.UpgradeConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpgradeConfig {
    /// The upgrade protocol, such as `websocket` (case-insensitive).
    pub upgrade_type: String,
    /// Whether it is enabled on this route. Default true.
    pub enabled: Option<bool>,
    /// CONNECT settings (not supported).
    pub connect_config: Option<Json>,
}

impl Validate for UpgradeConfig {
    fn validate(&self, v: &mut Validator) {
        if self.upgrade_type.is_empty() {
            v.error("upgrade_type", "must not be empty");
        }
        if self.connect_config.is_some() {
            v.unsupported("connect_config", "CONNECT is not supported");
        }
    }
}

/// `envoy.config.route.v3.RouteAction.MaxStreamDuration`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaxStreamDuration {
    /// Overall stream duration limit.
    pub max_stream_duration: Option<Duration>,
    /// Cap on `grpc-timeout`.
    pub grpc_timeout_header_max: Option<Duration>,
    /// Subtracted from `grpc-timeout`.
    pub grpc_timeout_header_offset: Option<Duration>,
}

/// `envoy.config.route.v3.RouteAction.HashPolicy`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashPolicy {
    /// Hash a request header.
    pub header: Option<HashHeader>,
    /// Hash a cookie.
    pub cookie: Option<HashCookie>,
    /// Hash the downstream source IP.
    pub connection_properties: Option<HashConnectionProperties>,
    /// Hash a query parameter.
    pub query_parameter: Option<HashQueryParameter>,
    /// Hash filter state (not supported).
    pub filter_state: Option<Json>,
    /// Stop at this policy when it produced a hash.
    pub terminal: bool,
}

impl Validate for HashPolicy {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "policy_specifier",
            &[
                ("header", self.header.is_some()),
                ("cookie", self.cookie.is_some()),
                ("connection_properties", self.connection_properties.is_some()),
                ("query_parameter", self.query_parameter.is_some()),
                ("filter_state", self.filter_state.is_some()),
            ],
            true,
        );
        if self.filter_state.is_some() {
            v.unsupported(
                "filter_state",
                "hash a header, cookie, query parameter or the source IP",
            );
        }
        if let Some(h) = &self.header {
            v.field("header", |v| {
                if crate::headers::HeaderName::try_from(h.header_name.as_str()).is_err() {
                    v.error(
                        "header_name",
                        format!("{:?} is not a valid header name", h.header_name),
                    );
                }
                v.child("regex_rewrite", &h.regex_rewrite);
            });
        }
        if let Some(c) = &self.cookie {
            v.field("cookie", |v| {
                if c.name.is_empty() {
                    v.error("name", "must not be empty");
                }
                if !c.attributes.is_empty() {
                    v.unsupported("attributes", "name, ttl and path");
                }
            });
        }
        if let Some(q) = &self.query_parameter
            && q.name.is_empty()
        {
            v.field("query_parameter", |v| v.error("name", "must not be empty"));
        }
    }
}

/// `HashPolicy.Header`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashHeader {
    /// The header to hash.
    pub header_name: String,
    /// Rewrite the value before hashing.
    pub regex_rewrite: Option<RegexMatchAndSubstitute>,
}

/// `HashPolicy.Cookie`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashCookie {
    /// The cookie name.
    pub name: String,
    /// When set and the cookie is absent, Envoy generates one with this TTL.
    pub ttl: Option<Duration>,
    /// The generated cookie's path.
    pub path: String,
    /// Extra cookie attributes (not supported).
    pub attributes: Vec<Json>,
}

/// `HashPolicy.ConnectionProperties`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashConnectionProperties {
    /// Hash the source IP.
    pub source_ip: bool,
}

/// `HashPolicy.QueryParameter`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashQueryParameter {
    /// The parameter name.
    pub name: String,
}

/// The `retry_on` conditions Envoy's router understands (HTTP and gRPC).
pub const RETRY_ON_VALUES: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// `envoy.config.route.v3.RetryPolicy`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Comma-separated conditions, such as `5xx,reset`.
    pub retry_on: String,
    /// How many retries. Default 1.
    pub num_retries: Option<u32>,
    /// Timeout of each attempt.
    pub per_try_timeout: Option<Duration>,
    /// Idle timeout of each attempt.
    pub per_try_idle_timeout: Option<Duration>,
    /// Priority selection for retries (not supported).
    pub retry_priority: Option<Json>,
    /// Host predicates for retries (only previous_hosts is supported).
    pub retry_host_predicate: Vec<RetryHostPredicate>,
    /// Retry options predicates (not supported).
    pub retry_options_predicates: Vec<Json>,
    /// How many times host selection is retried with the predicates. Default 1.
    pub host_selection_retry_max_attempts: i64,
    /// Statuses retried with `retriable-status-codes`.
    pub retriable_status_codes: Vec<u32>,
    /// Back-off between retries.
    pub retry_back_off: Option<RetryBackOff>,
    /// Rate-limited back-off (not supported).
    pub rate_limited_retry_back_off: Option<Json>,
    /// Response headers that make a response retriable (`retriable-headers`).
    pub retriable_headers: Vec<HeaderMatcher>,
    /// Request headers that must match for a request to be retried.
    pub retriable_request_headers: Vec<HeaderMatcher>,
}

impl Validate for RetryPolicy {
    fn validate(&self, v: &mut Validator) {
        for cond in self.retry_on.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if !RETRY_ON_VALUES.contains(&cond) {
                v.error(
                    "retry_on",
                    format!(
                        "unknown retry condition {cond:?} (expected any of {})",
                        RETRY_ON_VALUES.join(", ")
                    ),
                );
            }
        }
        if self.retry_priority.is_some() {
            v.unsupported("retry_priority", "retries use the normal priority selection");
        }
        if !self.retry_options_predicates.is_empty() {
            v.unsupported("retry_options_predicates", "not implemented");
        }
        if self.rate_limited_retry_back_off.is_some() {
            v.unsupported("rate_limited_retry_back_off", "use retry_back_off");
        }
        v.each("retry_host_predicate", &self.retry_host_predicate);
        v.field("retriable_status_codes", |v| {
            for (i, c) in self.retriable_status_codes.iter().enumerate() {
                if !(100..=599).contains(c) {
                    v.index(i, |v| v.error_here(format!("{c} is not an HTTP status (100 to 599)")));
                }
            }
        });
        v.child("retry_back_off", &self.retry_back_off);
        v.each("retriable_headers", &self.retriable_headers);
        v.each("retriable_request_headers", &self.retriable_request_headers);
    }
}

/// `envoy.config.route.v3.RetryPolicy.RetryHostPredicate`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryHostPredicate {
    /// The extension name, such as `envoy.retry_host_predicates.previous_hosts`.
    pub name: String,
    /// The typed config.
    pub typed_config: Option<RetryHostPredicateConfig>,
}

/// The retry host predicates mini-envoy implements.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename = "@type")]
pub enum RetryHostPredicateConfig {
    /// Avoid hosts already tried.
    #[serde(rename = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate")]
    PreviousHosts(PreviousHostsPredicate),
}

/// `envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreviousHostsPredicate {}

impl Validate for RetryHostPredicate {
    fn validate(&self, v: &mut Validator) {
        if self.typed_config.is_none() && self.name != "envoy.retry_host_predicates.previous_hosts"
        {
            v.unsupported(
                "name",
                "only envoy.retry_host_predicates.previous_hosts (PreviousHostsPredicate) is supported",
            );
        }
    }
}

/// `envoy.config.route.v3.RetryPolicy.RetryBackOff`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryBackOff {
    /// The first interval. Envoy's default (when no back-off is set) is 25ms.
    pub base_interval: Option<Duration>,
    /// The cap. Default 10 × base_interval.
    pub max_interval: Option<Duration>,
}

impl Validate for RetryBackOff {
    fn validate(&self, v: &mut Validator) {
        match self.base_interval {
            None => v.error("base_interval", "must be set"),
            Some(b) if b.get() < std::time::Duration::from_millis(1) => {
                v.error("base_interval", "must be at least 1ms")
            }
            Some(b) => {
                if let Some(m) = self.max_interval
                    && m < b
                {
                    v.error("max_interval", "must not be less than base_interval");
                }
            }
        }
    }
}

/// `envoy.config.route.v3.RedirectAction.RedirectResponseCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectResponseCode {
    /// 301.
    #[default]
    MovedPermanently,
    /// 302.
    Found,
    /// 303.
    SeeOther,
    /// 307.
    TemporaryRedirect,
    /// 308.
    PermanentRedirect,
}

impl RedirectResponseCode {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::MovedPermanently => 301,
            Self::Found => 302,
            Self::SeeOther => 303,
            Self::TemporaryRedirect => 307,
            Self::PermanentRedirect => 308,
        }
    }
}

/// `envoy.config.route.v3.RedirectAction`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedirectAction {
    /// Redirect to https.
    pub https_redirect: bool,
    /// Redirect to this scheme.
    pub scheme_redirect: String,
    /// Replace the host.
    pub host_redirect: String,
    /// Replace the port.
    pub port_redirect: u32,
    /// Replace the path (and the query when it has one).
    pub path_redirect: Option<String>,
    /// Replace the matched prefix.
    pub prefix_rewrite: Option<String>,
    /// Rewrite the path with a regex.
    pub regex_rewrite: Option<RegexMatchAndSubstitute>,
    /// The status. Default 301.
    pub response_code: RedirectResponseCode,
    /// Drop the query string.
    pub strip_query: bool,
}

impl Validate for RedirectAction {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "scheme_rewrite_specifier",
            &[
                ("https_redirect", self.https_redirect),
                ("scheme_redirect", !self.scheme_redirect.is_empty()),
            ],
            false,
        );
        v.oneof(
            "path_rewrite_specifier",
            &[
                ("path_redirect", self.path_redirect.is_some()),
                ("prefix_rewrite", self.prefix_rewrite.is_some()),
                ("regex_rewrite", self.regex_rewrite.is_some()),
            ],
            false,
        );
        if self.port_redirect > 65535 {
            v.error("port_redirect", format!("{} is not a port", self.port_redirect));
        }
        if self.host_redirect.bytes().any(|b| b.is_ascii_control() || b == b'/') {
            v.error("host_redirect", "must be a host name");
        }
        v.child("regex_rewrite", &self.regex_rewrite);
    }
}

/// `envoy.config.route.v3.DirectResponseAction`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectResponseAction {
    /// The status, 200 to 599.
    pub status: u32,
    /// The body.
    pub body: Option<DataSource>,
}

impl Validate for DirectResponseAction {
    fn validate(&self, v: &mut Validator) {
        if !(200..=599).contains(&self.status) {
            v.error("status", format!("{} is not a status between 200 and 599", self.status));
        }
        v.child("body", &self.body);
    }
}

/// `envoy.config.core.v3.DataSource`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSource {
    /// Read from a file (not supported here: the router does no I/O).
    pub filename: Option<String>,
    /// Base64 bytes (not supported).
    pub inline_bytes: Option<String>,
    /// Text.
    pub inline_string: Option<String>,
    /// An environment variable (not supported).
    pub environment_variable: Option<String>,
}

impl Validate for DataSource {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "specifier",
            &[
                ("filename", self.filename.is_some()),
                ("inline_bytes", self.inline_bytes.is_some()),
                ("inline_string", self.inline_string.is_some()),
                ("environment_variable", self.environment_variable.is_some()),
            ],
            false,
        );
        for (name, set) in [
            ("filename", self.filename.is_some()),
            ("inline_bytes", self.inline_bytes.is_some()),
            ("environment_variable", self.environment_variable.is_some()),
        ] {
            if set {
                v.unsupported(name, "use inline_string");
            }
        }
    }
}
