//! The HTTP router: from request headers to a [`RouteDecision`], with no I/O.
//!
//! This is Envoy's `Router::ConfigImpl` (a compiled route configuration),
//! `VirtualHostImpl` (a set of domains and an ordered list of routes) and
//! `RouteEntryImplBase` (one route: a match plus an action). A request flows
//! through it like this:
//!
//! ```text
//!  HeaderMap + RouteContext
//!     │
//!     ▼  Router::route
//!  find_virtual_host(:authority)   exact → *.suffix (longest) → prefix.* (longest) → "*"
//!     │                            (then again without the port)
//!     ▼
//!  require_tls?  ── not https ──► Redirect to https://host/path (301)
//!     │
//!     ▼  routes in order: path (prefix/path/regex/separated prefix, prefiltered),
//!     │  grpc, headers, query parameters, runtime fraction, dynamic metadata
//!     ▼
//!  first match ─► Route (cluster, rewrites, timeouts, retry & hash policies)
//!               ─► Redirect / DirectResponse
//!  no match ───► NoRoute (404, Envoy's NR)   cluster unknown ─► ClusterNotFound
//! ```
//!
//! [`Router::new`] compiles a [`RouteConfiguration`] once: regexes are compiled,
//! domains are indexed, header templates are parsed. [`Router::route`] only
//! reads, so one router can be shared by every worker thread. Everything the
//! router needs besides headers comes in a [`RouteContext`] (the random value,
//! the downstream addresses, TLS, dynamic metadata, a runtime).

pub mod check;
pub mod matchers;
pub mod mutation;
pub mod policy;

use std::any::Any;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

pub use matchers::{
    DynamicMetadata, HeaderMatch, MetadataMatch, PathMatcher, QueryMatch, StringMatch,
    percent_decode,
};
pub use mutation::{FormatContext, HeaderMutations, HeaderTemplate};
pub use policy::{HashPolicy, ResetReason, RetryOn, RetryPolicy};

use crate::config::filters::PerFilterConfig;
use crate::config::route::{
    self as cfg, PerFilterConfigs, RouteConfiguration, RoutingPriority, TlsRequirementType,
};
use crate::config::types::{FractionalPercent, Metadata, RuntimeFractionalPercent};
use crate::config::{ConfigError, FieldPath};
use crate::headers::{HeaderMap, HeaderName, HeaderValue};

/// Why a route configuration could not be compiled. A configuration that
/// passed [`crate::config::Validate`] always compiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// A regex does not compile.
    #[error("invalid regex {regex:?}: {error}")]
    Regex {
        /// The expression.
        regex: String,
        /// The compiler's message.
        error: String,
    },
    /// Anything else that validation would have rejected.
    #[error("{0}")]
    Invalid(String),
    /// A `typed_per_filter_config` the filter's compiler rejected (with its path).
    #[error("{0}")]
    FilterConfig(ConfigError),
}

// ANCHOR: route_filter_config
/// A per-route filter config compiled when the route table is built (Envoy's
/// `RouteSpecificFilterConfig`): whatever the filter wants to find on the
/// request path (compiled matchers, a token bucket, parsed users). The filter
/// downcasts it to its own type.
pub type CompiledFilterConfig = Arc<dyn Any + Send + Sync>;

/// Compiles `typed_per_filter_config` entries when a [`Router`] is built
/// (Envoy's `NamedHttpFilterConfigFactory::createRouteSpecificFilterConfig`).
/// The HTTP filter registry implements it; an error fails the whole route
/// table, with `path` pointing at the entry.
pub trait RouteFilterConfigCompiler {
    /// Compiles the config of the filter named `filter_name` found at `path`.
    fn compile(
        &self,
        filter_name: &str,
        config: &PerFilterConfig,
        path: &FieldPath,
    ) -> Result<CompiledFilterConfig, ConfigError>;
}

/// The compiler [`Router::new`] uses: keeps each config as configured (an
/// `Arc<PerFilterConfig>`), for tools and tests that read raw configs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawFilterConfigs;

impl RouteFilterConfigCompiler for RawFilterConfigs {
    fn compile(
        &self,
        _filter_name: &str,
        config: &PerFilterConfig,
        _path: &FieldPath,
    ) -> Result<CompiledFilterConfig, ConfigError> {
        Ok(Arc::new(config.clone()))
    }
}

/// One `typed_per_filter_config` entry, compiled. An
/// `envoy.config.route.v3.FilterConfig` wrapper is unwrapped here: its
/// `disabled` becomes [`disabled`](Self::disabled), its inner config is compiled.
#[derive(Clone)]
pub struct RouteFilterConfig {
    /// `Some(d)` when a `FilterConfig` wrapper turns the filter off (`true`)
    /// or on (`false`) for this route.
    pub disabled: Option<bool>,
    /// The compiled config (`None`: a wrapper without one).
    pub config: Option<CompiledFilterConfig>,
}

impl RouteFilterConfig {
    /// The compiled config as the filter's own type.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.config.as_deref()?.downcast_ref::<T>()
    }
}

impl std::fmt::Debug for RouteFilterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteFilterConfig")
            .field("disabled", &self.disabled)
            .field("config", &self.config.is_some())
            .finish()
    }
}

/// The compiled per-filter configs of one level (route, virtual host, ...).
type CompiledPerFilter = BTreeMap<String, RouteFilterConfig>;

/// Compiles one `typed_per_filter_config` entry of the filter `name` found at
/// `at` (the entry's own path). `None`: an `is_optional` wrapper whose config
/// the compiler rejected (ignored, as Envoy ignores optional configs of
/// filters it does not have).
pub fn compile_route_filter_config(
    name: &str,
    config: &PerFilterConfig,
    compiler: &dyn RouteFilterConfigCompiler,
    at: &FieldPath,
) -> Result<Option<RouteFilterConfig>, RouterError> {
    Ok(Some(match config {
        PerFilterConfig::FilterConfig(w) => {
            let inner = match &w.config {
                Some(c) => match compiler.compile(name, c, &at.field("config")) {
                    Ok(c) => Some(c),
                    Err(_) if w.is_optional => return Ok(None),
                    Err(e) => return Err(RouterError::FilterConfig(e)),
                },
                None => None,
            };
            RouteFilterConfig { disabled: Some(w.disabled), config: inner }
        }
        c => RouteFilterConfig {
            disabled: None,
            config: Some(compiler.compile(name, c, at).map_err(RouterError::FilterConfig)?),
        },
    }))
}

/// Compiles one level's `typed_per_filter_config` (the level is at `path`).
fn compile_per_filter(
    configs: &PerFilterConfigs,
    compiler: &dyn RouteFilterConfigCompiler,
    path: &FieldPath,
) -> Result<CompiledPerFilter, RouterError> {
    let mut out = CompiledPerFilter::new();
    for (name, config) in configs {
        let at = path.field("typed_per_filter_config").key(name);
        if let Some(entry) = compile_route_filter_config(name, config, compiler, &at)? {
            out.insert(name.clone(), entry);
        }
    }
    Ok(out)
}
// ANCHOR_END: route_filter_config

/// Envoy's runtime layer, as far as routing needs it: `runtime_fraction`
/// asks whether a feature is enabled for a random value.
pub trait Runtime {
    /// Whether `key` is enabled for `random`, given the configured default.
    fn feature_enabled(&self, key: &str, default: &FractionalPercent, random: u64) -> bool;
}

/// What the router needs besides the request headers.
#[derive(Clone, Copy, Default)]
pub struct RouteContext<'a> {
    /// A random number: picks weighted clusters (`random % total_weight`) and
    /// decides `runtime_fraction` matches (`random % denominator < numerator`).
    pub random_value: u64,
    /// The downstream peer address (for `%DOWNSTREAM_REMOTE_ADDRESS%`, hashing).
    pub downstream_remote: Option<SocketAddr>,
    /// The local address the request arrived on.
    pub downstream_local: Option<SocketAddr>,
    /// The downstream connection uses TLS (used when `x-forwarded-proto` is absent).
    pub tls: bool,
    /// The request is internal (also true when `x-envoy-internal: true`).
    pub internal: bool,
    /// Dynamic metadata set by earlier filters.
    pub dynamic_metadata: Option<&'a DynamicMetadata>,
    /// A runtime for `runtime_fraction`; without one the default fraction applies.
    pub runtime: Option<&'a dyn Runtime>,
    /// Whether a cluster exists; without it every named cluster is assumed to.
    pub cluster_exists: Option<&'a dyn Fn(&str) -> bool>,
}

impl RouteContext<'_> {
    fn format<'h>(&self, request: Option<&'h HeaderMap>) -> FormatContext<'h> {
        FormatContext {
            downstream_remote: self.downstream_remote,
            downstream_local: self.downstream_local,
            request_headers: request,
        }
    }
}

/// Converts Envoy's `\1` substitution syntax to the regex crate's `${1}`.
pub(crate) fn envoy_substitution(sub: &str) -> String {
    let mut out = String::with_capacity(sub.len());
    let mut chars = sub.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(d) if d.is_ascii_digit() => {
                    out.push_str(&format!("${{{d}}}"));
                    chars.next();
                }
                Some('\\') => {
                    out.push('\\');
                    chars.next();
                }
                _ => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

fn compile_rewrite(r: &cfg::RegexMatchAndSubstitute) -> Result<(Regex, String), RouterError> {
    let re = r
        .compile()
        .map_err(|e| RouterError::Regex { regex: r.pattern.regex.clone(), error: e.to_string() })?;
    Ok((re, envoy_substitution(&r.substitution)))
}

/// The literal text every match of `regex` starts with (conservative: empty
/// when unsure). Used only to prefilter routes.
fn regex_literal_prefix(regex: &str) -> String {
    // A top-level alternation means no common prefix.
    let (mut depth, mut in_class, mut escaped) = (0i32, false, false);
    for c in regex.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '(' => depth += 1,
            ')' => depth -= 1,
            '|' if depth == 0 => return String::new(),
            _ => {}
        }
    }
    let mut out = String::new();
    let mut chars = regex.strip_prefix('^').unwrap_or(regex).chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) if n.is_ascii_punctuation() => out.push(n),
                _ => break,
            }
        } else if "\\.+*?()|[]{}^$#".contains(c) || c.is_whitespace() {
            if matches!(c, '?' | '*' | '{') {
                out.pop();
            }
            return out;
        } else {
            out.push(c);
        }
        if matches!(chars.peek(), Some('?' | '*' | '{')) {
            // The last literal is optional or repeated: not required.
            chars.next();
            out.pop();
            return out;
        }
    }
    out
}

// ANCHOR: prefilter
/// The first 16 bytes of a path as a number (zero-padded), so a route's literal
/// prefix can be compared with one integer operation.
fn head_of(bytes: &[u8]) -> (u128, usize) {
    let n = bytes.len().min(16);
    let mut buf = [0u8; 16];
    buf[..n].copy_from_slice(&bytes[..n]);
    (u128::from_le_bytes(buf), n)
}

/// [`head_of`] lowercased: the same 16 bytes with ASCII letters folded, no allocation.
fn lowercase_head(head: u128) -> u128 {
    let mut bytes = head.to_le_bytes();
    bytes.make_ascii_lowercase();
    u128::from_le_bytes(bytes)
}

/// Hashes a `u128` head with one multiply: heads are already well spread.
#[derive(Default, Clone, Copy)]
struct HeadHasher(u64);

impl std::hash::Hasher for HeadHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        let folded = (v as u64) ^ ((v >> 64) as u64).rotate_left(29);
        self.0 = folded.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

/// Routes whose literal path prefix has the same length (up to 16 bytes) and
/// case sensitivity, keyed by those bytes.
#[derive(Debug, Clone)]
struct PrefixGroup {
    mask: u128,
    lowercase: bool,
    routes: HashMap<u128, Vec<u32>, std::hash::BuildHasherDefault<HeadHasher>>,
}

/// Which routes can possibly match a path, found without looking at each route.
///
/// Every route has a literal prefix its path must start with (for a regex, the
/// literal text before its first special character; it may be empty). Routes
/// are grouped by the length of that prefix, up to 16 bytes, and indexed by its
/// bytes, so a lookup costs one hash probe per distinct length instead of a
/// comparison per route. Candidates are then checked in configuration order, so
/// the first matching route still wins, exactly as without the index.
#[derive(Debug, Clone, Default)]
struct RouteIndex {
    groups: Vec<PrefixGroup>,
    /// Routes with an empty literal prefix: candidates for every path.
    always: Vec<u32>,
}

/// Most sorted candidate lists a lookup merges: one per (length 1..=16, case)
/// group, plus the always-candidates.
const MAX_LISTS: usize = 2 * 16 + 1;

impl RouteIndex {
    fn new<'a>(prefixes: impl Iterator<Item = (&'a str, bool)>) -> Self {
        let mut index = Self::default();
        for (i, (literal, lowercase)) in prefixes.enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let literal =
                if lowercase { literal.to_ascii_lowercase() } else { literal.to_string() };
            let (head, n) = head_of(literal.as_bytes());
            if n == 0 {
                index.always.push(i);
                continue;
            }
            let mask = if n == 16 { u128::MAX } else { (1u128 << (8 * n)) - 1 };
            let group = match index
                .groups
                .iter()
                .position(|g| g.mask == mask && g.lowercase == lowercase)
            {
                Some(g) => &mut index.groups[g],
                None => {
                    index.groups.push(PrefixGroup { mask, lowercase, routes: HashMap::default() });
                    index.groups.last_mut().expect("just pushed")
                }
            };
            group.routes.entry(head).or_default().push(i);
        }
        index
    }

    /// Calls `check` on each candidate route index in ascending order until it
    /// returns true; returns that index.
    fn first(&self, path: &str, mut check: impl FnMut(usize) -> bool) -> Option<usize> {
        let (raw, n) = head_of(path.as_bytes());
        let lower = lowercase_head(raw);
        let mut lists: [&[u32]; MAX_LISTS] = [&[]; MAX_LISTS];
        let mut count = 0;
        if !self.always.is_empty() {
            lists[0] = &self.always;
            count = 1;
        }
        for g in &self.groups {
            // A path shorter than the prefix cannot start with it.
            if (g.mask.count_ones() / 8) as usize > n {
                continue;
            }
            let key = (if g.lowercase { lower } else { raw }) & g.mask;
            if let Some(routes) = g.routes.get(&key) {
                lists[count] = routes;
                count += 1;
            }
        }
        // Merge the sorted lists: configuration order decides.
        let lists = &mut lists[..count];
        loop {
            let (pos, &next) = lists
                .iter()
                .enumerate()
                .filter_map(|(k, l)| l.first().map(|r| (k, r)))
                .min_by_key(|(_, r)| **r)?;
            lists[pos] = &lists[pos][1..];
            if check(next as usize) {
                return Some(next as usize);
            }
        }
    }
}
// ANCHOR_END: prefilter

/// Where a forwarding route sends the request.
#[derive(Debug, Clone)]
pub enum ClusterSpecifier {
    /// `cluster`.
    Named(String),
    /// `cluster_header`: the value of this request header.
    Header(String),
    /// `weighted_clusters`.
    Weighted(WeightedClusters),
}

/// `weighted_clusters`, compiled.
#[derive(Debug, Clone)]
pub struct WeightedClusters {
    /// The clusters in configured order.
    pub clusters: Vec<WeightedClusterEntry>,
    /// The sum of the weights.
    pub total_weight: u64,
    /// A header whose numeric value replaces the random value.
    pub header_name: Option<String>,
}

/// One weighted cluster.
#[derive(Debug, Clone)]
pub struct WeightedClusterEntry {
    /// The cluster name.
    pub name: String,
    /// Its weight.
    pub weight: u64,
    request_mutations: HeaderMutations,
    response_mutations: HeaderMutations,
    per_filter: CompiledPerFilter,
    host_rewrite: Option<String>,
}

impl WeightedClusters {
    // ANCHOR: weighted_pick
    /// Picks a cluster as Envoy does: `random % total_weight` falls into the
    /// bucket of one cluster, buckets laid out in configured order.
    pub fn pick(&self, random: u64) -> &WeightedClusterEntry {
        let selected = random % self.total_weight.max(1);
        let mut end = 0;
        for c in &self.clusters {
            end += c.weight;
            if selected < end {
                return c;
            }
        }
        // Unreachable for validated weights (total = sum); keep the last one.
        &self.clusters[self.clusters.len() - 1]
    }
    // ANCHOR_END: weighted_pick
}

/// How the Host header is rewritten when forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRewrite {
    /// Keep it.
    None,
    /// `host_rewrite_literal`.
    Literal(String),
    /// `host_rewrite_header`: the value of this header, when present.
    Header(String),
    /// `auto_host_rewrite`: the upstream host's name (applied by the upstream stage).
    Auto,
}

/// A forwarding action (`route:`), compiled.
#[derive(Debug, Clone)]
pub struct ForwardAction {
    /// Where to send it.
    pub cluster: ClusterSpecifier,
    /// The status when the cluster does not exist.
    pub cluster_not_found_status: u16,
    prefix_rewrite: Option<String>,
    regex_rewrite: Option<(Regex, String)>,
    /// Host rewriting.
    pub host_rewrite: HostRewrite,
    /// Append `x-forwarded-host` when the host is rewritten.
    pub append_x_forwarded_host: bool,
    /// The upstream timeout (`None`: disabled).
    pub timeout: Option<Duration>,
    /// The stream idle timeout override.
    pub idle_timeout: Option<Duration>,
    retry_policy: Option<RetryPolicy>,
    /// Hash policies for ring hash / Maglev.
    pub hash_policy: HashPolicy,
    /// Upstream priority.
    pub priority: RoutingPriority,
    /// Upgrades allowed (type lowercase, enabled).
    pub upgrades: Vec<(String, bool)>,
    /// `max_stream_duration.max_stream_duration`.
    pub max_stream_duration: Option<Duration>,
}

/// A redirect action, compiled.
#[derive(Debug, Clone)]
pub struct RedirectSpec {
    scheme: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path: Option<String>,
    prefix_rewrite: Option<String>,
    regex_rewrite: Option<(Regex, String)>,
    /// The status.
    pub status: u16,
    strip_query: bool,
}

/// What a route does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Forward upstream.
    Forward(Box<ForwardAction>),
    /// Redirect.
    Redirect(RedirectSpec),
    /// Respond directly: status and body.
    Direct(u16, String),
}

/// One compiled route (Envoy's `RouteEntryImplBase`).
#[derive(Debug, Clone)]
pub struct RouteEntry {
    /// The route name.
    pub name: String,
    /// How `:path` is matched.
    pub path: PathMatcher,
    /// Whether path matching is case sensitive.
    pub case_sensitive: bool,
    headers: Vec<HeaderMatch>,
    query: Vec<QueryMatch>,
    grpc: bool,
    runtime: Option<RuntimeFractionalPercent>,
    dynamic_metadata: Vec<MetadataMatch>,
    /// The action.
    pub action: Action,
    /// The route's metadata (`filter_metadata`).
    pub metadata: Option<Metadata>,
    /// The decorator's operation name.
    pub decorator: Option<String>,
    per_filter: CompiledPerFilter,
    request_mutations: HeaderMutations,
    response_mutations: HeaderMutations,
}

impl RouteEntry {
    fn compile(
        r: &cfg::Route,
        vh_retry: Option<&cfg::RetryPolicy>,
        compiler: &dyn RouteFilterConfigCompiler,
        at: &FieldPath,
    ) -> Result<Self, RouterError> {
        let m = &r.r#match;
        let case_sensitive = m.is_case_sensitive();
        let lower = |s: &String| if case_sensitive { s.clone() } else { s.to_ascii_lowercase() };
        let path = if let Some(p) = &m.prefix {
            PathMatcher::Prefix(lower(p))
        } else if let Some(p) = &m.path {
            PathMatcher::Path(lower(p))
        } else if let Some(re) = &m.safe_regex {
            PathMatcher::Regex(re.compile().map_err(|e| RouterError::Regex {
                regex: re.regex.clone(),
                error: e.to_string(),
            })?)
        } else if let Some(p) = &m.path_separated_prefix {
            PathMatcher::SeparatedPrefix(lower(p))
        } else {
            return Err(RouterError::Invalid(format!(
                "route {:?}: only prefix, path, safe_regex and path_separated_prefix are supported",
                r.name
            )));
        };
        let invalid = RouterError::Invalid;
        let action = if let Some(a) = &r.route {
            Action::Forward(Box::new(compile_forward(a, vh_retry, compiler, &at.field("route"))?))
        } else if let Some(rd) = &r.redirect {
            Action::Redirect(RedirectSpec {
                scheme: if rd.https_redirect {
                    Some("https".into())
                } else {
                    Some(rd.scheme_redirect.to_ascii_lowercase()).filter(|s| !s.is_empty())
                },
                host: Some(rd.host_redirect.clone()).filter(|h| !h.is_empty()),
                port: (rd.port_redirect != 0).then_some(rd.port_redirect as u16),
                path: rd.path_redirect.clone(),
                prefix_rewrite: rd.prefix_rewrite.clone(),
                regex_rewrite: rd.regex_rewrite.as_ref().map(compile_rewrite).transpose()?,
                status: rd.response_code.status(),
                strip_query: rd.strip_query,
            })
        } else if let Some(d) = &r.direct_response {
            let body = d.body.as_ref().and_then(|b| b.inline_string.clone()).unwrap_or_default();
            Action::Direct(d.status as u16, body)
        } else {
            return Err(invalid(format!("route {:?} has no supported action", r.name)));
        };
        Ok(Self {
            name: r.name.clone(),
            path,
            case_sensitive,
            headers: m.headers.iter().map(HeaderMatch::compile).collect::<Result<_, _>>()?,
            query: m.query_parameters.iter().map(QueryMatch::compile).collect::<Result<_, _>>()?,
            grpc: m.grpc.is_some(),
            runtime: m.runtime_fraction.clone(),
            dynamic_metadata: m
                .dynamic_metadata
                .iter()
                .map(MetadataMatch::compile)
                .collect::<Result<_, _>>()?,
            action,
            metadata: r.metadata.clone(),
            decorator: r.decorator.as_ref().map(|d| d.operation.clone()),
            per_filter: compile_per_filter(&r.typed_per_filter_config, compiler, at)?,
            request_mutations: HeaderMutations::compile(
                &r.request_headers_to_add,
                &r.request_headers_to_remove,
            )
            .map_err(invalid)?,
            response_mutations: HeaderMutations::compile(
                &r.response_headers_to_add,
                &r.response_headers_to_remove,
            )
            .map_err(invalid)?,
        })
    }

    /// The literal text every matching path starts with, and whether it is
    /// compared case-insensitively.
    fn literal_prefix(&self) -> (String, bool) {
        match &self.path {
            PathMatcher::Prefix(p) | PathMatcher::Path(p) | PathMatcher::SeparatedPrefix(p) => {
                (p.clone(), !self.case_sensitive)
            }
            PathMatcher::Regex(r) => {
                // The compiled form is ^(?:...)$; take the source inside.
                let src = r.as_str();
                let inner =
                    src.strip_prefix("^(?:").and_then(|s| s.strip_suffix(")$")).unwrap_or("");
                (regex_literal_prefix(inner), false)
            }
        }
    }

    // ANCHOR: route_matches
    /// Whether this route matches (everything but the prefiltered path bytes).
    fn matches(&self, headers: &HeaderMap, path: &str, ctx: &RouteContext<'_>) -> bool {
        if !self.path.matches(path, self.case_sensitive) {
            return false;
        }
        if self.grpc
            && !headers.get_str("content-type").is_some_and(|c| c.starts_with("application/grpc"))
        {
            return false;
        }
        if !matchers::all_headers_match(&self.headers, headers) {
            return false;
        }
        if !self.query.iter().all(|q| q.matches(path)) {
            return false;
        }
        if let Some(rf) = &self.runtime {
            let on = match ctx.runtime {
                Some(rt) => {
                    rt.feature_enabled(&rf.runtime_key, &rf.default_value, ctx.random_value)
                }
                None => rf.default_value.hits(ctx.random_value),
            };
            if !on {
                return false;
            }
        }
        self.dynamic_metadata.iter().all(|m| m.matches(ctx.dynamic_metadata))
    }
    // ANCHOR_END: route_matches

    /// The compiled per-filter config of `filter` set on this route.
    pub fn per_filter_config(&self, filter: &str) -> Option<&RouteFilterConfig> {
        self.per_filter.get(filter)
    }
}

fn compile_forward(
    a: &cfg::RouteAction,
    vh_retry: Option<&cfg::RetryPolicy>,
    compiler: &dyn RouteFilterConfigCompiler,
    path: &FieldPath,
) -> Result<ForwardAction, RouterError> {
    let invalid = RouterError::Invalid;
    let cluster = if !a.cluster.is_empty() {
        ClusterSpecifier::Named(a.cluster.clone())
    } else if !a.cluster_header.is_empty() {
        ClusterSpecifier::Header(a.cluster_header.to_ascii_lowercase())
    } else if let Some(w) = &a.weighted_clusters {
        let clusters = w
            .clusters
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let at = path.field("weighted_clusters").field("clusters").index(k);
                Ok(WeightedClusterEntry {
                    name: c.name.clone(),
                    weight: u64::from(c.weight.unwrap_or(0)),
                    request_mutations: HeaderMutations::compile(
                        &c.request_headers_to_add,
                        &c.request_headers_to_remove,
                    )
                    .map_err(invalid)?,
                    response_mutations: HeaderMutations::compile(
                        &c.response_headers_to_add,
                        &c.response_headers_to_remove,
                    )
                    .map_err(invalid)?,
                    per_filter: compile_per_filter(&c.typed_per_filter_config, compiler, &at)?,
                    host_rewrite: c.host_rewrite_literal.clone(),
                })
            })
            .collect::<Result<Vec<_>, RouterError>>()?;
        if clusters.is_empty() || w.sum() == 0 {
            return Err(invalid("weighted_clusters needs a positive total weight".into()));
        }
        ClusterSpecifier::Weighted(WeightedClusters {
            clusters,
            total_weight: w.sum(),
            header_name: Some(w.header_name.to_ascii_lowercase()).filter(|h| !h.is_empty()),
        })
    } else {
        return Err(invalid("route action has no supported cluster specifier".into()));
    };
    let host_rewrite = if let Some(h) = &a.host_rewrite_literal {
        HostRewrite::Literal(h.clone())
    } else if let Some(h) = &a.host_rewrite_header {
        HostRewrite::Header(h.to_ascii_lowercase())
    } else if a.auto_host_rewrite == Some(true) {
        HostRewrite::Auto
    } else {
        HostRewrite::None
    };
    Ok(ForwardAction {
        cluster,
        cluster_not_found_status: a.cluster_not_found_response_code.status(),
        prefix_rewrite: a.prefix_rewrite.clone(),
        regex_rewrite: a.regex_rewrite.as_ref().map(compile_rewrite).transpose()?,
        host_rewrite,
        append_x_forwarded_host: a.append_x_forwarded_host,
        timeout: a.effective_timeout(),
        idle_timeout: a.idle_timeout.map(|d| d.get()),
        retry_policy: a.retry_policy.as_ref().or(vh_retry).map(RetryPolicy::compile).transpose()?,
        hash_policy: HashPolicy::compile(&a.hash_policy)?,
        priority: a.priority,
        upgrades: a
            .upgrade_configs
            .iter()
            .map(|u| (u.upgrade_type.to_ascii_lowercase(), u.enabled.unwrap_or(true)))
            .collect(),
        max_stream_duration: a
            .max_stream_duration
            .as_ref()
            .and_then(|m| m.max_stream_duration)
            .filter(|d| !d.is_zero())
            .map(|d| d.get()),
    })
}

/// One compiled virtual host (Envoy's `VirtualHostImpl`).
#[derive(Debug, Clone)]
pub struct VirtualHost {
    /// The name.
    pub name: String,
    /// The TLS requirement.
    pub require_tls: TlsRequirementType,
    /// Routes in order.
    pub routes: Vec<RouteEntry>,
    index: RouteIndex,
    virtual_clusters: Vec<(String, Vec<HeaderMatch>)>,
    request_mutations: HeaderMutations,
    response_mutations: HeaderMutations,
    per_filter: CompiledPerFilter,
    /// Add `x-envoy-attempt-count` upstream.
    pub include_request_attempt_count: bool,
    /// Add `x-envoy-attempt-count` downstream.
    pub include_attempt_count_in_response: bool,
}

impl VirtualHost {
    fn compile(
        vh: &cfg::VirtualHost,
        compiler: &dyn RouteFilterConfigCompiler,
        path: &FieldPath,
    ) -> Result<Self, RouterError> {
        let invalid = RouterError::Invalid;
        let routes = vh
            .routes
            .iter()
            .enumerate()
            .map(|(j, r)| {
                let at = path.field("routes").index(j);
                RouteEntry::compile(r, vh.retry_policy.as_ref(), compiler, &at)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let prefixes: Vec<(String, bool)> = routes.iter().map(RouteEntry::literal_prefix).collect();
        let index = RouteIndex::new(prefixes.iter().map(|(p, ci)| (p.as_str(), *ci)));
        Ok(Self {
            name: vh.name.clone(),
            require_tls: vh.require_tls,
            routes,
            index,
            virtual_clusters: vh
                .virtual_clusters
                .iter()
                .map(|vc| {
                    Ok((
                        vc.name.clone(),
                        vc.headers.iter().map(HeaderMatch::compile).collect::<Result<_, _>>()?,
                    ))
                })
                .collect::<Result<_, RouterError>>()?,
            request_mutations: HeaderMutations::compile(
                &vh.request_headers_to_add,
                &vh.request_headers_to_remove,
            )
            .map_err(invalid)?,
            response_mutations: HeaderMutations::compile(
                &vh.response_headers_to_add,
                &vh.response_headers_to_remove,
            )
            .map_err(invalid)?,
            per_filter: compile_per_filter(&vh.typed_per_filter_config, compiler, path)?,
            include_request_attempt_count: vh.include_request_attempt_count,
            include_attempt_count_in_response: vh.include_attempt_count_in_response,
        })
    }

    /// The virtual cluster (stats class) of a request: the first whose header
    /// matchers all match, `"other"` when there are virtual clusters but none
    /// matches, `None` when the virtual host defines none.
    pub fn virtual_cluster(&self, headers: &HeaderMap) -> Option<&str> {
        if self.virtual_clusters.is_empty() {
            return None;
        }
        Some(
            self.virtual_clusters
                .iter()
                .find(|(_, ms)| matchers::all_headers_match(ms, headers))
                .map_or("other", |(n, _)| n.as_str()),
        )
    }

    /// The route entries that match, in order, after the prefilter (for tools and tests).
    fn first_match(
        &self,
        headers: &HeaderMap,
        path: &str,
        ctx: &RouteContext<'_>,
    ) -> Option<&RouteEntry> {
        // ANCHOR: route_match_loop
        self.index
            .first(path, |i| self.routes[i].matches(headers, path, ctx))
            .map(|i| &self.routes[i])
        // ANCHOR_END: route_match_loop
    }
}

/// Where the port starts in a host (`host:port`, `[v6]:port`), as Envoy's
/// `getPortStart`; a bare IPv6 literal has no port.
fn port_start(host: &str) -> Option<usize> {
    let colon = host.rfind(':')?;
    if host.ends_with(']') {
        return None;
    }
    let before = &host[..colon];
    if before.starts_with('[') {
        if !before.ends_with(']') {
            return None;
        }
    } else if before.contains(':') {
        return None;
    }
    let port = &host[colon + 1..];
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(colon)
}

/// The host without its port.
pub fn strip_port(host: &str) -> &str {
    port_start(host).map_or(host, |i| &host[..i])
}

/// Wildcard domains of one length: suffix or prefix → virtual host.
type WildcardIndex = Vec<(usize, HashMap<String, usize>)>;

fn insert_wildcard(index: &mut WildcardIndex, key: String, vh: usize) {
    let len = key.len();
    match index.iter_mut().find(|(l, _)| *l == len) {
        Some((_, m)) => {
            m.entry(key).or_insert(vh);
        }
        None => {
            index.push((len, HashMap::from([(key, vh)])));
            // Longest first.
            index.sort_by_key(|e| std::cmp::Reverse(e.0));
        }
    }
}

/// A compiled route configuration (Envoy's `Router::ConfigImpl`).
#[derive(Debug, Clone)]
pub struct Router {
    /// The route configuration's name.
    pub name: String,
    virtual_hosts: Vec<VirtualHost>,
    exact: HashMap<String, usize>,
    suffixes: WildcardIndex,
    prefixes: WildcardIndex,
    default: Option<usize>,
    ignore_port: bool,
    most_specific_wins: bool,
    internal_only_headers: Vec<String>,
    request_mutations: HeaderMutations,
    response_mutations: HeaderMutations,
    per_filter: CompiledPerFilter,
}

impl Router {
    /// Compiles a route configuration, keeping per-filter configs as
    /// configured ([`RawFilterConfigs`]: [`RouteFilterConfig::get`] gives a
    /// [`PerFilterConfig`]).
    pub fn new(config: &RouteConfiguration) -> Result<Self, RouterError> {
        Self::with_filter_configs(config, &RawFilterConfigs)
    }

    /// Compiles a route configuration, each `typed_per_filter_config` entry
    /// (route configuration, virtual hosts, routes, weighted clusters)
    /// compiled once by `compiler` and kept with its level.
    pub fn with_filter_configs(
        config: &RouteConfiguration,
        compiler: &dyn RouteFilterConfigCompiler,
    ) -> Result<Self, RouterError> {
        let invalid = RouterError::Invalid;
        let virtual_hosts = config
            .virtual_hosts
            .iter()
            .enumerate()
            .map(|(i, vh)| {
                VirtualHost::compile(
                    vh,
                    compiler,
                    &FieldPath::root().field("virtual_hosts").index(i),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (mut exact, mut suffixes, mut prefixes, mut default) =
            (HashMap::new(), Vec::new(), Vec::new(), None);
        for (i, vh) in config.virtual_hosts.iter().enumerate() {
            for d in &vh.domains {
                let d = d.to_ascii_lowercase();
                if d == "*" {
                    default.get_or_insert(i);
                } else if let Some(suffix) = d.strip_prefix('*') {
                    insert_wildcard(&mut suffixes, suffix.to_string(), i);
                } else if let Some(prefix) = d.strip_suffix('*') {
                    insert_wildcard(&mut prefixes, prefix.to_string(), i);
                } else {
                    exact.entry(d).or_insert(i);
                }
            }
        }
        Ok(Self {
            name: config.name.clone(),
            virtual_hosts,
            exact,
            suffixes,
            prefixes,
            default,
            ignore_port: config.ignore_port_in_host_matching,
            most_specific_wins: config.most_specific_header_mutations_wins,
            internal_only_headers: config
                .internal_only_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            request_mutations: HeaderMutations::compile(
                &config.request_headers_to_add,
                &config.request_headers_to_remove,
            )
            .map_err(invalid)?,
            response_mutations: HeaderMutations::compile(
                &config.response_headers_to_add,
                &config.response_headers_to_remove,
            )
            .map_err(invalid)?,
            per_filter: compile_per_filter(
                &config.typed_per_filter_config,
                compiler,
                &FieldPath::root(),
            )?,
        })
    }

    /// The virtual hosts in configured order.
    pub fn virtual_hosts(&self) -> &[VirtualHost] {
        &self.virtual_hosts
    }

    fn match_domain(&self, host: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(host) {
            return Some(i);
        }
        // A wildcard must cover at least one character: strictly longer hosts only.
        for (len, map) in &self.suffixes {
            if host.len() > *len
                && let Some(&i) = host.get(host.len() - len..).and_then(|s| map.get(s))
            {
                return Some(i);
            }
        }
        for (len, map) in &self.prefixes {
            if host.len() > *len
                && let Some(&i) = host.get(..*len).and_then(|s| map.get(s))
            {
                return Some(i);
            }
        }
        None
    }

    // ANCHOR: vhost_selection
    /// The virtual host for an `:authority`, in Envoy's order: exact domain,
    /// then `*.suffix` wildcards (longest first), then `prefix.*` wildcards
    /// (longest first), then `*`. Domains compare case-insensitively. When the
    /// authority has a port and nothing matched with it, the lookup is retried
    /// without the port (`ignore_port_in_host_matching` strips it up front).
    pub fn find_virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        let host: Cow<'_, str> = if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(authority.to_ascii_lowercase())
        } else {
            Cow::Borrowed(authority)
        };
        let host = if self.ignore_port { strip_port(&host) } else { &host };
        let found = self.match_domain(host).or_else(|| {
            let bare = strip_port(host);
            (bare.len() != host.len()).then(|| self.match_domain(bare)).flatten()
        });
        found.or(self.default).map(|i| &self.virtual_hosts[i])
    }
    // ANCHOR_END: vhost_selection

    /// Routes a request: the decision value the HTTP connection manager acts on.
    pub fn route<'r>(&'r self, headers: &HeaderMap, ctx: &RouteContext<'_>) -> RouteDecision<'r> {
        let Some(vhost) = self.find_virtual_host(headers.authority().unwrap_or_default()) else {
            return RouteDecision::NoRoute;
        };
        let https = match headers.get_str("x-forwarded-proto") {
            Some(p) => p.eq_ignore_ascii_case("https"),
            None => ctx.tls,
        };
        let internal = ctx.internal || headers.get_str("x-envoy-internal") == Some("true");
        let tls_redirect = match vhost.require_tls {
            TlsRequirementType::None => false,
            TlsRequirementType::All => !https,
            TlsRequirementType::ExternalOnly => !https && !internal,
        };
        if tls_redirect {
            let location = format!(
                "https://{}{}",
                headers.authority().unwrap_or_default(),
                headers.path().unwrap_or_default()
            );
            return RouteDecision::Redirect(Redirect {
                router: self,
                vhost,
                route: None,
                location,
                status: 301,
            });
        }
        let path = headers.path().unwrap_or_default();
        let Some(route) = vhost.first_match(headers, path, ctx) else {
            return RouteDecision::NoRoute;
        };
        match &route.action {
            Action::Forward(action) => {
                let (cluster, weighted): (Cow<'r, str>, _) = match &action.cluster {
                    ClusterSpecifier::Named(n) => (Cow::Borrowed(n.as_str()), None),
                    ClusterSpecifier::Header(h) => (
                        headers.get(h).map_or(Cow::Borrowed(""), |v| {
                            Cow::Owned(v.to_str_lossy().into_owned())
                        }),
                        None,
                    ),
                    ClusterSpecifier::Weighted(w) => {
                        let random = w
                            .header_name
                            .as_ref()
                            .and_then(|h| headers.get_str(h))
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .unwrap_or(ctx.random_value);
                        let c = w.pick(random);
                        (Cow::Borrowed(c.name.as_str()), Some(c))
                    }
                };
                let target = Forward {
                    router: self,
                    vhost,
                    route,
                    action,
                    cluster,
                    weighted,
                    virtual_cluster: vhost.virtual_cluster(headers),
                };
                let exists = !target.cluster.is_empty()
                    && ctx.cluster_exists.is_none_or(|f| f(&target.cluster));
                if exists {
                    RouteDecision::Route(target)
                } else {
                    RouteDecision::ClusterNotFound(target)
                }
            }
            Action::Redirect(spec) => RouteDecision::Redirect(Redirect {
                router: self,
                vhost,
                route: Some(route),
                location: spec.location(headers, route, https),
                status: spec.status,
            }),
            Action::Direct(status, body) => RouteDecision::DirectResponse(DirectResponse {
                router: self,
                vhost,
                route,
                status: *status,
                body,
            }),
        }
    }

    /// Header mutation levels from most to least specific, ordered for applying.
    fn levels<'a>(
        &'a self,
        vhost: &'a VirtualHost,
        route: Option<&'a RouteEntry>,
        weighted: Option<&'a WeightedClusterEntry>,
        response: bool,
    ) -> impl Iterator<Item = &'a HeaderMutations> {
        let pick = move |req: &'a HeaderMutations, resp: &'a HeaderMutations| {
            if response { resp } else { req }
        };
        // At most four levels: kept on the stack (this runs for every request).
        let mut levels: [Option<&HeaderMutations>; 4] = [None; 4];
        let mut n = 0;
        let mut push = |l: &'a HeaderMutations| {
            levels[n] = Some(l);
            n += 1;
        };
        if let Some(w) = weighted {
            push(pick(&w.request_mutations, &w.response_mutations));
        }
        if let Some(r) = route {
            push(pick(&r.request_mutations, &r.response_mutations));
        }
        push(pick(&vhost.request_mutations, &vhost.response_mutations));
        push(pick(&self.request_mutations, &self.response_mutations));
        // Envoy's default applies the route first so the route config has the
        // last word; `most_specific_header_mutations_wins` reverses that.
        if self.most_specific_wins {
            levels[..n].reverse();
        }
        levels.into_iter().flatten().filter(|l| !l.is_empty())
    }

    fn finalize_response(
        &self,
        vhost: &VirtualHost,
        route: Option<&RouteEntry>,
        weighted: Option<&WeightedClusterEntry>,
        headers: &mut HeaderMap,
        request: Option<&HeaderMap>,
        ctx: &RouteContext<'_>,
    ) {
        let fctx = ctx.format(request);
        for level in self.levels(vhost, route, weighted, true) {
            level.apply(headers, &fctx);
        }
    }
}

/// The router's answer for one request.
pub enum RouteDecision<'r> {
    /// Forward upstream.
    Route(Forward<'r>),
    /// Answer locally with a status and body.
    DirectResponse(DirectResponse<'r>),
    /// Answer with a redirect.
    Redirect(Redirect<'r>),
    /// No virtual host or route matched: 404 (Envoy's `NR` flag).
    NoRoute,
    /// A route matched but its cluster is empty or unknown: answer with
    /// [`Forward::cluster_not_found_status`].
    ClusterNotFound(Forward<'r>),
}

impl std::fmt::Debug for RouteDecision<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Route(t) => write!(f, "Route({:?} via {:?})", t.cluster, t.route.name),
            Self::DirectResponse(d) => write!(f, "DirectResponse({})", d.status),
            Self::Redirect(r) => write!(f, "Redirect({} {})", r.status, r.location),
            Self::NoRoute => f.write_str("NoRoute"),
            Self::ClusterNotFound(t) => write!(f, "ClusterNotFound({:?})", t.cluster),
        }
    }
}

/// A forwarding decision (Envoy's `RouteEntry` after cluster resolution).
pub struct Forward<'r> {
    router: &'r Router,
    /// The virtual host.
    pub vhost: &'r VirtualHost,
    /// The route.
    pub route: &'r RouteEntry,
    /// The route's action.
    pub action: &'r ForwardAction,
    /// The cluster (from `cluster`, `cluster_header` or the weighted pick).
    pub cluster: Cow<'r, str>,
    /// The weighted cluster picked, if any.
    pub weighted: Option<&'r WeightedClusterEntry>,
    /// The virtual cluster (`"other"` when the vhost has some and none matched).
    pub virtual_cluster: Option<&'r str>,
}

/// An owned handle on a [`Forward`] decision: indices into the router that
/// made it, so the decision can outlive the borrow (a stream keeps the
/// router's `Arc` and its `ForwardRef`, as Envoy's stream keeps its cached
/// route). [`Router::forward`] turns it back into a [`Forward`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRef {
    vhost: usize,
    route: usize,
    weighted: Option<usize>,
    /// The cluster, as the decision resolved it.
    pub cluster: String,
    virtual_cluster: Option<String>,
}

/// Index of `item` in `items` when it is one of its elements (address arithmetic only).
fn index_in<T>(items: &[T], item: &T) -> Option<usize> {
    let size = std::mem::size_of::<T>().max(1);
    let offset = (item as *const T as usize).checked_sub(items.as_ptr() as usize)?;
    let i = offset / size;
    (offset % size == 0 && i < items.len()).then_some(i)
}

impl Router {
    /// The decision a [`ForwardRef`] (from this router) stands for; `None`
    /// when the handle came from another router.
    pub fn forward(&self, r: &ForwardRef) -> Option<Forward<'_>> {
        let vhost = self.virtual_hosts.get(r.vhost)?;
        let route = vhost.routes.get(r.route)?;
        let Action::Forward(action) = &route.action else { return None };
        let weighted = match (r.weighted, &action.cluster) {
            (Some(i), ClusterSpecifier::Weighted(w)) => Some(w.clusters.get(i)?),
            (None, _) => None,
            _ => return None,
        };
        let virtual_cluster = r.virtual_cluster.as_deref().and_then(|name| {
            vhost
                .virtual_clusters
                .iter()
                .map(|(n, _)| n.as_str())
                .chain(["other"])
                .find(|n| *n == name)
        });
        // Borrowed from the config when it names the cluster (no copy per call).
        let cluster = match (&action.cluster, weighted) {
            (ClusterSpecifier::Named(n), _) if *n == r.cluster => Cow::Borrowed(n.as_str()),
            (_, Some(w)) if w.name == r.cluster => Cow::Borrowed(w.name.as_str()),
            _ => Cow::Owned(r.cluster.clone()),
        };
        Some(Forward { router: self, vhost, route, action, cluster, weighted, virtual_cluster })
    }
}

impl<'r> Forward<'r> {
    /// Where the matched route is in the router: the indices of its virtual
    /// host in [`Router::virtual_hosts`] and of the route in that host's `routes`.
    pub fn route_position(&self) -> (usize, usize) {
        (
            index_in(self.router.virtual_hosts(), self.vhost).unwrap_or(usize::MAX),
            index_in(&self.vhost.routes, self.route).unwrap_or(usize::MAX),
        )
    }

    /// An owned handle on this decision (see [`ForwardRef`]).
    pub fn to_ref(&self) -> ForwardRef {
        let (vhost, route) = self.route_position();
        let weighted = match (&self.action.cluster, self.weighted) {
            (ClusterSpecifier::Weighted(w), Some(e)) => index_in(&w.clusters, e),
            _ => None,
        };
        ForwardRef {
            vhost,
            route,
            weighted,
            cluster: self.cluster.to_string(),
            virtual_cluster: self.virtual_cluster.map(str::to_string),
        }
    }

    /// The status to answer when the cluster does not exist.
    pub fn cluster_not_found_status(&self) -> u16 {
        self.action.cluster_not_found_status
    }

    /// The upstream timeout (`None`: disabled by `0s`).
    pub fn timeout(&self) -> Option<Duration> {
        self.action.timeout
    }

    /// The stream idle timeout override.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.action.idle_timeout
    }

    /// The retry policy (the route's, else the virtual host's).
    pub fn retry_policy(&self) -> Option<&'r RetryPolicy> {
        self.action.retry_policy.as_ref()
    }

    /// The request's hash for ring hash / Maglev (see [`HashPolicy::compute_hash`]).
    pub fn compute_hash(
        &self,
        headers: &HeaderMap,
        source_ip: Option<std::net::IpAddr>,
    ) -> Option<u64> {
        self.action.hash_policy.compute_hash(headers, source_ip)
    }

    /// The most specific compiled per-filter config for `filter`: weighted
    /// cluster, route, virtual host, route configuration.
    pub fn per_filter_config(&self, filter: &str) -> Option<&'r RouteFilterConfig> {
        self.weighted
            .and_then(|w| w.per_filter.get(filter))
            .or_else(|| self.route.per_filter.get(filter))
            .or_else(|| self.vhost.per_filter.get(filter))
            .or_else(|| self.router.per_filter.get(filter))
    }

    /// The `:path` after `prefix_rewrite` / `regex_rewrite`, or `None` when unchanged.
    pub fn rewritten_path(&self, path: &str) -> Option<String> {
        if let Some(pr) = &self.action.prefix_rewrite {
            let n = self.route.path.matched_len(path).min(path.len());
            return Some(format!("{pr}{}", &path[n..]));
        }
        let (re, sub) = self.action.regex_rewrite.as_ref()?;
        let bare = matchers::strip_query(path);
        Some(format!("{}{}", re.replace_all(bare, sub.as_str()), &path[bare.len()..]))
    }

    /// Applies the route's request changes, as Envoy's `finalizeRequestHeaders`:
    /// header mutations (weighted cluster, route, virtual host, route config),
    /// then the host rewrite, then the path rewrite (keeping the original in
    /// `x-envoy-original-path` when `keep_original_path`). Internal-only headers
    /// are dropped from external requests.
    pub fn finalize_request_headers(
        &self,
        headers: &mut HeaderMap,
        ctx: &RouteContext<'_>,
        keep_original_path: bool,
    ) {
        let internal = ctx.internal || headers.get_str("x-envoy-internal") == Some("true");
        if !internal {
            for h in &self.router.internal_only_headers {
                headers.remove(h);
            }
        }
        let mut levels =
            self.router.levels(self.vhost, Some(self.route), self.weighted, false).peekable();
        if levels.peek().is_some() {
            // Formatted values read the request as it arrived.
            let snapshot = headers.clone();
            let fctx = ctx.format(Some(&snapshot));
            for level in levels {
                level.apply(headers, &fctx);
            }
        }
        let new_host =
            match (&self.weighted.and_then(|w| w.host_rewrite.as_ref()), &self.action.host_rewrite)
            {
                (Some(h), _) => Some((*h).clone()),
                (None, HostRewrite::Literal(h)) => Some(h.clone()),
                (None, HostRewrite::Header(name)) => headers.get_str(name).map(str::to_string),
                _ => None,
            };
        if let Some(h) = new_host.and_then(|h| HeaderValue::try_from(h).ok()) {
            if self.action.append_x_forwarded_host
                && let Some(old) = headers.get(":authority").cloned()
            {
                headers.append(const { HeaderName::from_static("x-forwarded-host") }, old);
            }
            headers.insert(crate::headers::AUTHORITY, h);
        }
        let path = headers.path().unwrap_or_default().to_string();
        if let Some(new) = self.rewritten_path(&path).and_then(|p| HeaderValue::try_from(p).ok()) {
            if keep_original_path && let Ok(v) = HeaderValue::try_from(path) {
                headers.insert(const { HeaderName::from_static("x-envoy-original-path") }, v);
            }
            headers.insert(crate::headers::PATH, new);
        }
    }

    /// Applies the route's response changes (weighted cluster, route, virtual
    /// host, route config) to an upstream response.
    pub fn finalize_response_headers(
        &self,
        headers: &mut HeaderMap,
        request: Option<&HeaderMap>,
        ctx: &RouteContext<'_>,
    ) {
        self.router.finalize_response(
            self.vhost,
            Some(self.route),
            self.weighted,
            headers,
            request,
            ctx,
        );
    }
}

/// A local answer with a fixed status and body (`direct_response`).
pub struct DirectResponse<'r> {
    router: &'r Router,
    /// The virtual host.
    pub vhost: &'r VirtualHost,
    /// The route.
    pub route: &'r RouteEntry,
    /// The status.
    pub status: u16,
    /// The body.
    pub body: &'r str,
}

impl DirectResponse<'_> {
    /// The response headers: `content-type: text/plain` and `content-length`
    /// for a non-empty body (as Envoy's local reply), then the response header
    /// mutations of the route, virtual host and route config.
    pub fn response_headers(
        &self,
        request: Option<&HeaderMap>,
        ctx: &RouteContext<'_>,
    ) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(crate::headers::STATUS, HeaderValue::from_u64(u64::from(self.status)));
        if !self.body.is_empty() {
            h.insert(
                const { HeaderName::from_static("content-type") },
                const { HeaderValue::from_static("text/plain") },
            );
            h.insert(
                const { HeaderName::from_static("content-length") },
                HeaderValue::from_u64(self.body.len() as u64),
            );
        }
        self.router.finalize_response(self.vhost, Some(self.route), None, &mut h, request, ctx);
        h
    }
}

/// A redirect answer: `location` and a 3xx status.
pub struct Redirect<'r> {
    router: &'r Router,
    /// The virtual host.
    pub vhost: &'r VirtualHost,
    /// The route (`None` for a `require_tls` redirect).
    pub route: Option<&'r RouteEntry>,
    /// The new URL.
    pub location: String,
    /// The status (301 by default).
    pub status: u16,
}

impl Redirect<'_> {
    /// The response headers: `:status`, `location`, then the response header
    /// mutations of the route, virtual host and route config.
    pub fn response_headers(
        &self,
        request: Option<&HeaderMap>,
        ctx: &RouteContext<'_>,
    ) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(crate::headers::STATUS, HeaderValue::from_u64(u64::from(self.status)));
        if let Ok(v) = HeaderValue::try_from(self.location.as_str()) {
            h.insert(const { HeaderName::from_static("location") }, v);
        }
        self.router.finalize_response(self.vhost, self.route, None, &mut h, request, ctx);
        h
    }
}

impl RedirectSpec {
    /// The redirect URL for a request (Envoy's `RouteEntryImplBase::newUri`).
    fn location(&self, headers: &HeaderMap, route: &RouteEntry, https: bool) -> String {
        let orig_scheme = if https { "https" } else { "http" };
        let scheme = self.scheme.as_deref().unwrap_or(orig_scheme);
        let orig_host = headers.authority().unwrap_or_default();
        let mut host = match &self.host {
            Some(h) => h.clone(),
            None => orig_host.to_string(),
        };
        if let Some(port) = self.port {
            host = format!("{}:{port}", strip_port(&host));
        } else if self.host.is_none() && self.scheme.is_some() {
            // Drop a default port that no longer fits the new scheme.
            if let Some(i) = port_start(&host) {
                let p = &host[i + 1..];
                if (scheme == "https" && p == "80") || (scheme == "http" && p == "443") {
                    host.truncate(i);
                }
            }
        }
        let path = headers.path().unwrap_or_default();
        let query_at = path.find('?');
        let (bare, query) = match query_at {
            Some(i) => (&path[..i], &path[i..]),
            None => (path, ""),
        };
        let new_path = if let Some(p) = &self.path {
            if p.contains('?') || self.strip_query { p.clone() } else { format!("{p}{query}") }
        } else {
            let rewritten = if let Some(pr) = &self.prefix_rewrite {
                let n = route.path.matched_len(path).min(path.len());
                format!("{pr}{}", &path[n..])
            } else if let Some((re, sub)) = &self.regex_rewrite {
                format!("{}{}", re.replace_all(bare, sub.as_str()), query)
            } else {
                path.to_string()
            };
            if self.strip_query { matchers::strip_query(&rewritten).to_string() } else { rewritten }
        };
        format!("{scheme}://{host}{new_path}")
    }
}

#[cfg(test)]
mod tests;
