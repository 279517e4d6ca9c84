//! Typed configs of the built-in HTTP filters (`envoy.extensions.filters.http.*.v3`),
//! chosen by `typed_config."@type"`, and their per-route configs.
//!
//! Loaded here from an HCM's `http_filters` ([`HttpFilterConfig`]) and from
//! `typed_per_filter_config` of routes, virtual hosts and route configurations
//! ([`PerFilterConfig`], used by the route model); the week 3 filter registry
//! builds filter instances from them. A filter type not listed here (lua,
//! ext_authz, rbac, oauth2, compressor, grpc_web, ...) fails to load with
//! `unsupported:` naming its type.

use serde::Deserialize;

use super::access_log::AccessLog;
use super::protocol::DataSource;
use super::types::{
    Duration, FractionalPercent, HeaderValueOption, RuntimeFractionalPercent, StringMatcher,
};
use super::validate::{Validate, Validator};

/// Full proto names of the built-in filter configs.
pub mod type_names {
    /// Router.
    pub const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
    /// CORS filter.
    pub const CORS: &str = "envoy.extensions.filters.http.cors.v3.Cors";
    /// Basic auth.
    pub const BASIC_AUTH: &str = "envoy.extensions.filters.http.basic_auth.v3.BasicAuth";
    /// Local rate limit.
    pub const LOCAL_RATELIMIT: &str =
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";
    /// Fault injection.
    pub const FAULT: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";
    /// Buffer.
    pub const BUFFER: &str = "envoy.extensions.filters.http.buffer.v3.Buffer";
    /// Header mutation.
    pub const HEADER_MUTATION: &str =
        "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation";
    /// The course's request logging filter (mini-envoy specific).
    pub const REQUEST_LOG: &str = "mini_envoy.filters.http.request_log.v1.RequestLog";
    /// The course's bearer-token check (mini-envoy specific).
    pub const BEARER_AUTH: &str = "mini_envoy.filters.http.bearer_auth.v1.BearerAuth";
}

/// The filter names that mean the router when `typed_config` is absent.
pub const ROUTER_NAMES: &[&str] = &["envoy.filters.http.router", "envoy.router", "router"];

/// An HTTP filter's config, chosen by `typed_config."@type"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename = "@type")]
pub enum HttpFilterConfig {
    /// `envoy.filters.http.router`: forwards to the routed cluster (terminal).
    #[serde(rename = "envoy.extensions.filters.http.router.v3.Router")]
    Router(Router),
    /// `envoy.filters.http.cors`: policies come per route/virtual host.
    #[serde(rename = "envoy.extensions.filters.http.cors.v3.Cors")]
    Cors(Cors),
    /// `envoy.filters.http.basic_auth`.
    #[serde(rename = "envoy.extensions.filters.http.basic_auth.v3.BasicAuth")]
    BasicAuth(BasicAuth),
    /// `envoy.filters.http.local_ratelimit`.
    #[serde(rename = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit")]
    LocalRateLimit(Box<LocalRateLimit>),
    /// `envoy.filters.http.fault`.
    #[serde(rename = "envoy.extensions.filters.http.fault.v3.HTTPFault")]
    Fault(Box<HttpFault>),
    /// `envoy.filters.http.buffer`.
    #[serde(rename = "envoy.extensions.filters.http.buffer.v3.Buffer")]
    Buffer(Buffer),
    /// `envoy.filters.http.header_mutation`.
    #[serde(rename = "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation")]
    HeaderMutation(HeaderMutation),
    /// `mini_envoy.filters.http.request_log`: the course's request logging filter.
    #[serde(rename = "mini_envoy.filters.http.request_log.v1.RequestLog")]
    RequestLog(RequestLog),
    /// `mini_envoy.filters.http.bearer_auth`: the course's bearer-token check.
    #[serde(rename = "mini_envoy.filters.http.bearer_auth.v1.BearerAuth")]
    BearerAuth(BearerAuth),
}

impl HttpFilterConfig {
    /// The full proto name of this config.
    pub fn type_name(&self) -> &'static str {
        use type_names::*;
        match self {
            Self::Router(_) => ROUTER,
            Self::Cors(_) => CORS,
            Self::BasicAuth(_) => BASIC_AUTH,
            Self::LocalRateLimit(_) => LOCAL_RATELIMIT,
            Self::Fault(_) => FAULT,
            Self::Buffer(_) => BUFFER,
            Self::HeaderMutation(_) => HEADER_MUTATION,
            Self::RequestLog(_) => REQUEST_LOG,
            Self::BearerAuth(_) => BEARER_AUTH,
        }
    }

    /// Whether this filter ends the chain (only the router).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Router(_))
    }
}

impl Validate for HttpFilterConfig {
    fn validate(&self, v: &mut Validator) {
        match self {
            Self::Router(c) => c.validate(v),
            Self::Cors(_) => {}
            Self::BasicAuth(c) => c.validate(v),
            Self::LocalRateLimit(c) => c.validate(v),
            Self::Fault(c) => c.validate(v),
            Self::Buffer(c) => c.validate(v),
            Self::HeaderMutation(c) => c.validate(v),
            Self::RequestLog(c) => c.validate(v),
            Self::BearerAuth(c) => c.validate(v),
        }
    }
}

/// `envoy.extensions.filters.http.router.v3.Router`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Router {
    /// Per-cluster dynamic stats (default true).
    pub dynamic_stats: Option<bool>,
    /// Child tracing spans; accepted and ignored (mini-envoy has no tracing).
    pub start_child_span: bool,
    /// Access logs for each upstream request.
    pub upstream_log: Vec<AccessLog>,
    /// When to write upstream logs (not supported).
    pub upstream_log_options: Option<serde_json::Value>,
    /// Do not add `x-envoy-*` response headers or honour `x-envoy-*` request headers.
    pub suppress_envoy_headers: bool,
    /// `x-envoy-*` request headers to validate strictly.
    pub strict_check_headers: Vec<String>,
    /// Use `x-envoy-expected-rq-timeout-ms` from downstream as the route timeout.
    pub respect_expected_rq_timeout: bool,
    /// Skip gRPC failure-code stats; accepted and ignored (stats tuning).
    pub suppress_grpc_request_failure_code_stats: bool,
    /// Upstream HTTP filters (not supported).
    pub upstream_http_filters: Vec<serde_json::Value>,
    /// Half-close on multiplexed upstreams (not supported: HTTP/1.1 only).
    pub allow_multiplexed_upstream_half_close: bool,
}

/// `x-envoy-*` headers `strict_check_headers` may list.
const STRICT_CHECK_HEADERS: &[&str] = &[
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-max-retries",
    "x-envoy-retry-grpc-on",
    "x-envoy-retry-on",
];

impl Validate for Router {
    fn validate(&self, v: &mut Validator) {
        v.each("upstream_log", &self.upstream_log);
        if self.upstream_log_options.is_some() {
            v.unsupported("upstream_log_options", "upstream logs are written when a request ends");
        }
        if !self.upstream_http_filters.is_empty() {
            v.unsupported("upstream_http_filters", "upstream HTTP filters are not supported");
        }
        if self.allow_multiplexed_upstream_half_close {
            v.unsupported("allow_multiplexed_upstream_half_close", "upstreams use HTTP/1.1");
        }
        v.field("strict_check_headers", |v| {
            for (i, h) in self.strict_check_headers.iter().enumerate() {
                if !STRICT_CHECK_HEADERS.contains(&h.as_str()) {
                    v.index(i, |v| {
                        v.error_here(format!(
                            "{h:?} is not one of {}",
                            STRICT_CHECK_HEADERS.join(", ")
                        ))
                    });
                }
            }
        });
    }
}

/// `envoy.extensions.filters.http.cors.v3.Cors`: the filter itself has no
/// settings; policies come from `typed_per_filter_config` ([`CorsPolicy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cors {}

/// `envoy.extensions.filters.http.cors.v3.CorsPolicy` (per route, virtual host
/// or route configuration).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsPolicy {
    /// Origins allowed.
    pub allow_origin_string_match: Vec<StringMatcher>,
    /// `Access-Control-Allow-Methods` value.
    pub allow_methods: String,
    /// `Access-Control-Allow-Headers` value.
    pub allow_headers: String,
    /// `Access-Control-Expose-Headers` value.
    pub expose_headers: String,
    /// `Access-Control-Max-Age` value.
    pub max_age: String,
    /// `Access-Control-Allow-Credentials: true` when set to true.
    pub allow_credentials: Option<bool>,
    /// Answer private-network-access preflights.
    pub allow_private_network_access: Option<bool>,
    /// Fraction of requests the policy applies to (default 100%).
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    /// Evaluate without enforcing (stats only) for this fraction.
    pub shadow_enabled: Option<RuntimeFractionalPercent>,
    /// Forward preflights whose origin does not match (default true).
    pub forward_not_matching_preflights: Option<bool>,
}

impl Validate for CorsPolicy {
    fn validate(&self, v: &mut Validator) {
        v.each("allow_origin_string_match", &self.allow_origin_string_match);
        if !self.max_age.is_empty() && self.max_age.parse::<u64>().is_err() {
            v.error("max_age", format!("{:?} is not a number of seconds", self.max_age));
        }
    }
}

/// `envoy.extensions.filters.http.basic_auth.v3.BasicAuth`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BasicAuth {
    /// htpasswd lines `user:{SHA}base64(sha1(password))`.
    pub users: Option<DataSource>,
    /// Forward the authenticated user name upstream in this header.
    pub forward_username_header: String,
    /// Read credentials from this header instead of `Authorization`.
    pub authentication_header: String,
}

/// Checks htpasswd text: one `user:{SHA}hash` per non-empty line, users unique.
pub fn check_htpasswd(text: &str) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err(format!("line {}: expected user:{{SHA}}hash", n + 1));
        };
        if user.is_empty() {
            return Err(format!("line {}: empty user name", n + 1));
        }
        if !hash.starts_with("{SHA}") {
            return Err(format!("line {}: only {{SHA}} hashes are supported", n + 1));
        }
        if !seen.insert(user) {
            return Err(format!("line {}: user {user:?} appears twice", n + 1));
        }
    }
    Ok(())
}

impl Validate for BasicAuth {
    fn validate(&self, v: &mut Validator) {
        match &self.users {
            None => v.error("users", "must be set"),
            Some(users) => {
                v.child("users", users);
                if let Some(text) = &users.inline_string
                    && let Err(e) = check_htpasswd(text)
                {
                    v.field("users", |v| v.error("inline_string", e));
                }
            }
        }
        for (name, h) in [
            ("forward_username_header", &self.forward_username_header),
            ("authentication_header", &self.authentication_header),
        ] {
            if !h.is_empty() && crate::headers::HeaderName::try_from(h.as_str()).is_err() {
                v.error(name, format!("{h:?} is not a valid header name"));
            }
        }
    }
}

/// `envoy.extensions.filters.http.basic_auth.v3.BasicAuthPerRoute`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BasicAuthPerRoute {
    /// The users for this route (replaces the filter's).
    pub users: Option<DataSource>,
}

impl Validate for BasicAuthPerRoute {
    fn validate(&self, v: &mut Validator) {
        match &self.users {
            None => v.error("users", "must be set"),
            Some(users) => {
                v.child("users", users);
                if let Some(text) = &users.inline_string
                    && let Err(e) = check_htpasswd(text)
                {
                    v.field("users", |v| v.error("inline_string", e));
                }
            }
        }
    }
}

/// `envoy.type.v3.TokenBucket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenBucket {
    /// Bucket size (must be > 0).
    pub max_tokens: u32,
    /// Tokens added per fill (default 1).
    pub tokens_per_fill: Option<u32>,
    /// Time between fills (must be > 0).
    pub fill_interval: Option<Duration>,
}

impl TokenBucket {
    /// Tokens added per fill (Envoy's default 1).
    pub fn tokens_per_fill(&self) -> u32 {
        self.tokens_per_fill.unwrap_or(1)
    }
}

impl Validate for TokenBucket {
    fn validate(&self, v: &mut Validator) {
        if self.max_tokens == 0 {
            v.error("max_tokens", "must be greater than 0");
        }
        if self.tokens_per_fill == Some(0) {
            v.error("tokens_per_fill", "must be greater than 0");
        }
        match self.fill_interval {
            None => v.error("fill_interval", "must be set"),
            Some(d) if d.get() < std::time::Duration::from_millis(1) => {
                v.error("fill_interval", "must be at least 1ms")
            }
            Some(_) => {}
        }
    }
}

/// `envoy.type.v3.HttpStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpStatus {
    /// The status code (Envoy accepts the `StatusCode` enum's numbers).
    pub code: u32,
}

/// `...local_ratelimit.v3.LocalRateLimit.EnableXRateLimitHeaders` (common ratelimit enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum XRateLimitHeaders {
    /// No `x-ratelimit-*` headers.
    #[default]
    Off,
    /// `x-ratelimit-limit/remaining/reset` per draft 03 (Envoy spells it `DRAFT_VERSION_03`).
    #[serde(rename = "DRAFT_VERSION_03")]
    DraftVersion03,
}

/// `envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit` (also per route).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalRateLimit {
    /// Stats prefix (required).
    pub stat_prefix: String,
    /// Status of rate-limited replies (default 429).
    pub status: Option<HttpStatus>,
    /// The bucket (unset: the filter is a no-op).
    pub token_bucket: Option<TokenBucket>,
    /// Fraction of requests checked (default 0%: disabled).
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    /// Fraction of checked requests actually limited (default 0%: shadow mode).
    pub filter_enforced: Option<RuntimeFractionalPercent>,
    /// Request headers added when limited but not enforced.
    pub request_headers_to_add_when_not_enforced: Vec<HeaderValueOption>,
    /// Response headers added to rate-limited replies.
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Descriptor buckets (not supported).
    pub descriptors: Vec<serde_json::Value>,
    /// Filter stage (only 0 is supported).
    pub stage: u32,
    /// One bucket per downstream connection instead of per filter.
    pub local_rate_limit_per_downstream_connection: bool,
    /// Share the limit across the local cluster (not supported).
    pub local_cluster_rate_limit: Option<serde_json::Value>,
    /// Add `x-ratelimit-*` headers.
    pub enable_x_ratelimit_headers: XRateLimitHeaders,
    /// Virtual-host rate-limit option (descriptors only; not supported).
    pub vh_rate_limits: Option<String>,
    /// Consume the default bucket also when a descriptor matched (descriptors only).
    pub always_consume_default_token_bucket: Option<bool>,
    /// Report limited gRPC requests as RESOURCE_EXHAUSTED.
    pub rate_limited_as_resource_exhausted: bool,
    /// Route rate limits (not supported).
    pub rate_limits: Vec<serde_json::Value>,
    /// Dynamic descriptor cap (descriptors only; not supported).
    pub max_dynamic_descriptors: Option<u32>,
}

impl LocalRateLimit {
    /// Status of rate-limited replies (default 429).
    pub fn status(&self) -> u16 {
        self.status.map_or(429, |s| s.code as u16)
    }
}

impl Validate for LocalRateLimit {
    fn validate(&self, v: &mut Validator) {
        if self.stat_prefix.is_empty() {
            v.error("stat_prefix", "must not be empty");
        }
        if let Some(s) = self.status
            && !(400..=599).contains(&s.code)
        {
            v.field("status", |v| {
                v.error("code", format!("{} is not a 4xx or 5xx status", s.code))
            });
        }
        v.child("token_bucket", &self.token_bucket);
        v.each(
            "request_headers_to_add_when_not_enforced",
            &self.request_headers_to_add_when_not_enforced,
        );
        v.each("response_headers_to_add", &self.response_headers_to_add);
        if !self.descriptors.is_empty() {
            v.unsupported("descriptors", "only the default token_bucket");
        }
        if !self.rate_limits.is_empty() {
            v.unsupported("rate_limits", "only the default token_bucket");
        }
        if self.stage != 0 {
            v.unsupported("stage", "only stage 0");
        }
        if self.local_cluster_rate_limit.is_some() {
            v.unsupported("local_cluster_rate_limit", "limits are per proxy instance");
        }
        if self.vh_rate_limits.is_some() {
            v.unsupported("vh_rate_limits", "descriptors are not supported");
        }
        if self.max_dynamic_descriptors.is_some() {
            v.unsupported("max_dynamic_descriptors", "descriptors are not supported");
        }
    }
}

/// `envoy.extensions.filters.common.fault.v3.FaultDelay`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultDelay {
    /// The delay added.
    pub fixed_delay: Option<Duration>,
    /// Take the delay from `x-envoy-fault-delay-request` (not supported).
    pub header_delay: Option<serde_json::Value>,
    /// Fraction of requests delayed.
    pub percentage: FractionalPercent,
}

impl Validate for FaultDelay {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "fault_delay_type",
            &[
                ("fixed_delay", self.fixed_delay.is_some()),
                ("header_delay", self.header_delay.is_some()),
            ],
            true,
        );
        if self.header_delay.is_some() {
            v.unsupported("header_delay", "use fixed_delay");
        }
    }
}

/// `envoy.extensions.filters.http.fault.v3.FaultAbort`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultAbort {
    /// HTTP status of the abort (200..600).
    pub http_status: Option<u32>,
    /// gRPC status of the abort.
    pub grpc_status: Option<u32>,
    /// Take the status from `x-envoy-fault-abort-request` (not supported).
    pub header_abort: Option<serde_json::Value>,
    /// Fraction of requests aborted.
    pub percentage: FractionalPercent,
}

impl Validate for FaultAbort {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "error_type",
            &[
                ("http_status", self.http_status.is_some()),
                ("grpc_status", self.grpc_status.is_some()),
                ("header_abort", self.header_abort.is_some()),
            ],
            true,
        );
        if let Some(s) = self.http_status
            && !(200..600).contains(&s)
        {
            v.error("http_status", format!("{s} is not between 200 and 599"));
        }
        if self.header_abort.is_some() {
            v.unsupported("header_abort", "use http_status or grpc_status");
        }
    }
}

/// `envoy.extensions.filters.http.fault.v3.HTTPFault` (also per route).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpFault {
    /// Delay injection.
    pub delay: Option<FaultDelay>,
    /// Abort injection.
    pub abort: Option<FaultAbort>,
    /// Only for requests to this cluster (empty: all).
    pub upstream_cluster: String,
    /// Only for requests matching all these header matchers (not supported yet).
    pub headers: Vec<serde_json::Value>,
    /// Only for these downstream nodes (`x-envoy-downstream-service-node`).
    pub downstream_nodes: Vec<String>,
    /// Most faults active at once (unset: no limit).
    pub max_active_faults: Option<u32>,
    /// Response body rate limit (not supported).
    pub response_rate_limit: Option<serde_json::Value>,
    /// Runtime key overrides; accepted and ignored (mini-envoy has no runtime).
    pub delay_percent_runtime: String,
    /// Runtime key override; accepted and ignored.
    pub abort_percent_runtime: String,
    /// Runtime key override; accepted and ignored.
    pub delay_duration_runtime: String,
    /// Runtime key override; accepted and ignored.
    pub abort_http_status_runtime: String,
    /// Runtime key override; accepted and ignored.
    pub max_active_faults_runtime: String,
    /// Runtime key override; accepted and ignored.
    pub response_rate_limit_percent_runtime: String,
    /// Runtime key override; accepted and ignored.
    pub abort_grpc_status_runtime: String,
    /// Skip per-downstream-cluster stats; accepted and ignored (stats tuning).
    pub disable_downstream_cluster_stats: bool,
    /// Faults from dynamic metadata (not supported).
    pub filter_metadata: Option<serde_json::Value>,
}

impl Validate for HttpFault {
    fn validate(&self, v: &mut Validator) {
        v.child("delay", &self.delay);
        v.child("abort", &self.abort);
        if !self.headers.is_empty() {
            v.unsupported("headers", "faults apply to every request (use upstream_cluster or downstream_nodes to narrow)");
        }
        if self.response_rate_limit.is_some() {
            v.unsupported("response_rate_limit", "delay and abort faults");
        }
        if self.filter_metadata.is_some() {
            v.unsupported("filter_metadata", "faults come from the filter config");
        }
    }
}

/// `envoy.extensions.filters.http.buffer.v3.Buffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Buffer {
    /// Largest request body buffered; over it the reply is 413 (required).
    pub max_request_bytes: Option<u32>,
}

impl Validate for Buffer {
    fn validate(&self, v: &mut Validator) {
        match self.max_request_bytes {
            None => v.error("max_request_bytes", "must be set"),
            Some(0) => v.error("max_request_bytes", "must be greater than 0"),
            Some(_) => {}
        }
    }
}

/// `envoy.extensions.filters.http.buffer.v3.BufferPerRoute`: one of
/// `disabled: true` or `buffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BufferPerRoute {
    /// Turn the filter off for this route.
    pub disabled: Option<bool>,
    /// Settings for this route.
    pub buffer: Option<Buffer>,
}

impl Validate for BufferPerRoute {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "override",
            &[("disabled", self.disabled.is_some()), ("buffer", self.buffer.is_some())],
            true,
        );
        if self.disabled == Some(false) {
            v.error("disabled", "must be true when set");
        }
        v.child("buffer", &self.buffer);
    }
}

/// `envoy.config.common.mutation_rules.v3.HeaderMutation`: one of `remove`,
/// `append`, `remove_on_match`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderMutationRule {
    /// Remove this header.
    pub remove: Option<String>,
    /// Add or set a header.
    pub append: Option<HeaderValueOption>,
    /// Remove headers whose names match.
    pub remove_on_match: Option<RemoveOnMatch>,
}

/// `...HeaderMutation.RemoveOnMatch`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoveOnMatch {
    /// Names to remove.
    pub key_matcher: StringMatcher,
}

impl Validate for HeaderMutationRule {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "action",
            &[
                ("remove", self.remove.is_some()),
                ("append", self.append.is_some()),
                ("remove_on_match", self.remove_on_match.is_some()),
            ],
            true,
        );
        if let Some(name) = &self.remove
            && crate::headers::HeaderName::try_from(name.as_str()).is_err()
        {
            v.error("remove", format!("{name:?} is not a valid header name"));
        }
        v.child("append", &self.append);
        if let Some(r) = &self.remove_on_match {
            v.field("remove_on_match", |v| v.child("key_matcher", &r.key_matcher));
        }
    }
}

/// `envoy.extensions.filters.http.header_mutation.v3.Mutations`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mutations {
    /// Applied to requests, in order.
    pub request_mutations: Vec<HeaderMutationRule>,
    /// Query parameter mutations (not supported).
    pub query_parameter_mutations: Vec<serde_json::Value>,
    /// Applied to responses, in order.
    pub response_mutations: Vec<HeaderMutationRule>,
    /// Trailer mutations (not supported).
    pub request_trailers_mutations: Vec<serde_json::Value>,
    /// Trailer mutations (not supported).
    pub response_trailers_mutations: Vec<serde_json::Value>,
}

impl Validate for Mutations {
    fn validate(&self, v: &mut Validator) {
        v.each("request_mutations", &self.request_mutations);
        v.each("response_mutations", &self.response_mutations);
        for (name, list) in [
            ("query_parameter_mutations", &self.query_parameter_mutations),
            ("request_trailers_mutations", &self.request_trailers_mutations),
            ("response_trailers_mutations", &self.response_trailers_mutations),
        ] {
            if !list.is_empty() {
                v.unsupported(name, "request_mutations and response_mutations");
            }
        }
    }
}

/// `envoy.extensions.filters.http.header_mutation.v3.HeaderMutation`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderMutation {
    /// The mutations.
    pub mutations: Mutations,
    /// Per-route configs win over less specific ones instead of all applying.
    pub most_specific_header_mutations_wins: bool,
}

impl Validate for HeaderMutation {
    fn validate(&self, v: &mut Validator) {
        v.child("mutations", &self.mutations);
    }
}

/// `envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderMutationPerRoute {
    /// The mutations for this route.
    pub mutations: Mutations,
}

/// A per-route filter config (`typed_per_filter_config` values), chosen by `"@type"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename = "@type")]
pub enum PerFilterConfig {
    /// `envoy.extensions.filters.http.cors.v3.CorsPolicy`.
    #[serde(rename = "envoy.extensions.filters.http.cors.v3.CorsPolicy")]
    Cors(CorsPolicy),
    /// `envoy.extensions.filters.http.buffer.v3.BufferPerRoute`.
    #[serde(rename = "envoy.extensions.filters.http.buffer.v3.BufferPerRoute")]
    Buffer(BufferPerRoute),
    /// `envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit` for one route.
    #[serde(rename = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit")]
    LocalRateLimit(Box<LocalRateLimit>),
    /// `envoy.extensions.filters.http.fault.v3.HTTPFault` for one route.
    #[serde(rename = "envoy.extensions.filters.http.fault.v3.HTTPFault")]
    Fault(Box<HttpFault>),
    /// `envoy.extensions.filters.http.basic_auth.v3.BasicAuthPerRoute`.
    #[serde(rename = "envoy.extensions.filters.http.basic_auth.v3.BasicAuthPerRoute")]
    BasicAuth(BasicAuthPerRoute),
    /// `envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute`.
    #[serde(rename = "envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute")]
    HeaderMutation(HeaderMutationPerRoute),
    /// `envoy.config.route.v3.FilterConfig`: a wrapper that can disable a filter.
    #[serde(rename = "envoy.config.route.v3.FilterConfig")]
    FilterConfig(FilterConfig),
}

impl Validate for PerFilterConfig {
    fn validate(&self, v: &mut Validator) {
        match self {
            Self::Cors(c) => c.validate(v),
            Self::Buffer(c) => c.validate(v),
            Self::LocalRateLimit(c) => c.validate(v),
            Self::Fault(c) => c.validate(v),
            Self::BasicAuth(c) => c.validate(v),
            Self::HeaderMutation(c) => v.child("mutations", &c.mutations),
            Self::FilterConfig(c) => c.validate(v),
        }
    }
}

/// `envoy.config.route.v3.FilterConfig`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    /// The per-route config (unset with `disabled: true` just turns the filter off).
    pub config: Option<Box<PerFilterConfig>>,
    /// Ignore this config if the filter is not in the chain.
    pub is_optional: bool,
    /// Turn the filter off for this route.
    pub disabled: bool,
}

impl Validate for FilterConfig {
    fn validate(&self, v: &mut Validator) {
        if let Some(c) = &self.config
            && matches!(**c, PerFilterConfig::FilterConfig(_))
        {
            v.error("config", "a FilterConfig cannot wrap another FilterConfig");
        }
        if self.config.is_none() && !self.disabled {
            v.error("config", "must be set unless disabled is true");
        }
        v.child("config", &self.config);
    }
}

/// `mini_envoy.filters.http.request_log.v1.RequestLog`: the course's request
/// logging filter. One line per request when the stream completes: method,
/// path, status, response flags, bytes and duration, plus the headers listed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLog {
    /// Text put before every line (default `request`).
    pub prefix: String,
    /// Request headers whose values are logged.
    pub request_headers: Vec<String>,
    /// Response headers whose values are logged.
    pub response_headers: Vec<String>,
}

impl Validate for RequestLog {
    fn validate(&self, v: &mut Validator) {
        for (field, names) in [
            ("request_headers", &self.request_headers),
            ("response_headers", &self.response_headers),
        ] {
            v.field(field, |v| {
                for (i, h) in names.iter().enumerate() {
                    if crate::headers::HeaderName::try_from(h.as_str()).is_err() {
                        v.index(i, |v| v.error_here(format!("{h:?} is not a valid header name")));
                    }
                }
            });
        }
    }
}

/// One accepted bearer token of [`BearerAuth`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BearerToken {
    /// Who the token belongs to (forwarded upstream in `forward_subject_header`).
    pub subject: String,
    /// The token itself, as sent in `Authorization: Bearer <token>`.
    pub token: String,
}

/// `mini_envoy.filters.http.bearer_auth.v1.BearerAuth`: the course's
/// authentication filter. A request passes when it carries one of the
/// configured tokens; otherwise the reply is 401 with
/// `WWW-Authenticate: Bearer realm="<realm>"`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BearerAuth {
    /// The accepted tokens (at least one).
    pub tokens: Vec<BearerToken>,
    /// Read the token from this header instead of `Authorization`.
    pub authentication_header: String,
    /// Forward the token's subject upstream in this header (and strip the
    /// credentials from the request).
    pub forward_subject_header: String,
    /// The realm named in `WWW-Authenticate` (default `mini-envoy`).
    pub realm: String,
}

impl Validate for BearerAuth {
    fn validate(&self, v: &mut Validator) {
        if self.tokens.is_empty() {
            v.error("tokens", "must not be empty");
        }
        let mut seen = std::collections::BTreeSet::new();
        v.field("tokens", |v| {
            for (i, t) in self.tokens.iter().enumerate() {
                v.index(i, |v| {
                    if t.token.is_empty() {
                        v.error("token", "must not be empty");
                    } else if t.token.bytes().any(|b| !b.is_ascii_graphic()) {
                        v.error("token", "must be printable ASCII without spaces");
                    } else if !seen.insert(t.token.as_str()) {
                        v.error("token", "appears twice");
                    }
                });
            }
        });
        for (name, h) in [
            ("authentication_header", &self.authentication_header),
            ("forward_subject_header", &self.forward_subject_header),
        ] {
            if !h.is_empty() && crate::headers::HeaderName::try_from(h.as_str()).is_err() {
                v.error(name, format!("{h:?} is not a valid header name"));
            }
        }
        if self.realm.contains('"') || self.realm.bytes().any(|b| b.is_ascii_control()) {
            v.error("realm", "must not contain quotes or control characters");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::http_connection_manager::HttpFilter;

    #[test]
    fn course_filters_load_by_type_url() {
        let f: HttpFilter = crate::config::load_str(
            "name: auth\ntyped_config:\n  \"@type\": type.googleapis.com/mini_envoy.filters.http.bearer_auth.v1.BearerAuth\n  tokens: [{subject: alice, token: s3cret}]\n  forward_subject_header: x-user\n",
        )
        .unwrap();
        let Some(HttpFilterConfig::BearerAuth(b)) = &f.typed_config else { panic!("{f:?}") };
        assert_eq!(b.tokens[0].subject, "alice");
        assert_eq!(
            f.typed_config.as_ref().map(HttpFilterConfig::type_name),
            Some(type_names::BEARER_AUTH)
        );
        let f: HttpFilter = crate::config::load_str(
            "name: log\ntyped_config:\n  \"@type\": type.googleapis.com/mini_envoy.filters.http.request_log.v1.RequestLog\n  request_headers: [user-agent]\n",
        )
        .unwrap();
        assert!(matches!(f.typed_config, Some(HttpFilterConfig::RequestLog(_))));
    }

    #[test]
    fn x_ratelimit_headers_use_envoys_enum_name() {
        let l: LocalRateLimit = serde_json::from_str(
            r#"{"stat_prefix": "x", "enable_x_ratelimit_headers": "DRAFT_VERSION_03"}"#,
        )
        .unwrap();
        assert_eq!(l.enable_x_ratelimit_headers, XRateLimitHeaders::DraftVersion03);
    }

    #[test]
    fn course_filters_reject_bad_configs() {
        let e = crate::config::load_str::<HttpFilter>(
            "name: auth\ntyped_config:\n  \"@type\": type.googleapis.com/mini_envoy.filters.http.bearer_auth.v1.BearerAuth\n  tokens: [{subject: a, token: x}, {subject: b, token: x}]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("typed_config.tokens[1].token: appears twice"), "{e}");
        let e = crate::config::load_str::<HttpFilter>(
            "name: log\ntyped_config:\n  \"@type\": type.googleapis.com/mini_envoy.filters.http.request_log.v1.RequestLog\n  response_headers: [\"bad name\"]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("typed_config.response_headers[0]"), "{e}");
    }
}
