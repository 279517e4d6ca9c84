//! Envoy's `router_check_tool`: route a file of test requests and compare
//! what the router decides with what each test expects.
//!
//! This mirrors Envoy's `test/tools/router_check/` (`router.cc`,
//! `coverage.cc`, `validation.proto`). A test file is Envoy's
//! `RouterCheckToolSchema.Validation`, written as JSON or YAML and read by the
//! week 1 loader, so a mistake is reported with its field path and line:column.
//!
//! ```text
//!  test file ──load_test_file──► TestFile
//!  route config ──load_route_config──► RouteConfiguration ──tool quirks──► Router
//!  run_tests, per TestCase:
//!    TestInput ──► request HeaderMap + RouteContext ──Router::route──► Observed
//!    Expectations vs Observed ──► Vec<Failure>, and coverage marks for checks that held
//!  ──► Report { results, coverage }
//! ```
//!
//! The tool's quirks live here, never in the router:
//!
//! 1. a `runtime_fraction` route matches only when the test names its
//!    `runtime_key` in `input.runtime`, and then for `random % denominator < numerator`;
//! 2. every `runtime_fraction` numerator of 0 is raised to 1 before the router is built;
//! 3. redirect and `direct_response` routes have no forwarding entry, so cluster,
//!    virtual host, virtual cluster and rewrites read `""`; the "redirect" of a
//!    direct response is the request's own URL;
//! 4. a direct response's headers are the local reply's (`content-type`,
//!    `content-length`) plus the route's `response_headers_to_add`;
//! 5. the downstream peer is 127.0.0.1.
//!
//! Coverage follows `coverage.cc`: every route is one unit, except that each
//! cluster of `weighted_clusters` is its own unit. A unit is covered when one
//! of its fields was checked and held (cluster, virtual cluster, virtual host,
//! path and host rewrite for forwarding routes; redirect path and code for
//! redirects and direct responses). [`Coverage::percent`] counts covered
//! units; [`Coverage::comprehensive_percent`] (`--covall`) counts covered fields.
//!
//! Beyond the upstream schema this reads the newer fields seen in Envoy's test
//! data: `input.dynamic_metadata`, `validate.timeout` and `validate.route_metadata`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value as Json;

use super::{
    Action, ClusterSpecifier, DynamicMetadata, HeaderMatch, RouteContext, RouteDecision,
    RouteEntry, Router, RouterError, Runtime, VirtualHost, WeightedClusterEntry,
};
use crate::config::route::{HeaderMatcher, RouteConfiguration, RouteMatch};
use crate::config::types::{Duration, FractionalPercent};
use crate::config::yaml::{self, Node, to_snake_case};
use crate::config::{
    ConfigError, ErrorKind, FieldPath, ParseLimits, Validate, Validator, from_tree,
};
use crate::headers::{HeaderMap, HeaderName, HeaderValue};

// ---------------------------------------------------------------------------
// The test-file model (validation.proto).

/// A test file: Envoy's `RouterCheckToolSchema.Validation`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestFile {
    /// The tests, run in order.
    pub tests: Vec<TestCase>,
    /// Runtime keys the tool loads before the tests. Only
    /// `re2.max_program_size.*` is accepted, and it changes nothing: mini-envoy
    /// has no runtime layer and a fixed regex budget.
    pub runtime: BTreeMap<String, Json>,
}

/// One test: Envoy's `ValidationItem`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestCase {
    /// The name printed in results.
    pub test_name: String,
    /// The request to route.
    pub input: TestInput,
    /// What to check.
    pub validate: Expectations,
}

/// The request of a test: Envoy's `ValidationInput`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestInput {
    /// `:authority`.
    pub authority: String,
    /// `:path`, query included.
    pub path: String,
    /// `:method`.
    pub method: String,
    /// `:scheme` and `x-forwarded-proto` are `https` (else `http`).
    pub ssl: bool,
    /// Adds `x-envoy-internal: true`.
    pub internal: bool,
    /// Picks weighted clusters and decides runtime fractions.
    pub random_value: u64,
    /// The one runtime key that is on for this test.
    pub runtime: String,
    /// Headers appended to the request.
    pub additional_request_headers: Vec<HeaderKeyValue>,
    /// The v2-era name of `additional_request_headers`.
    pub additional_headers: Vec<HeaderKeyValue>,
    /// Headers of the response that response checks look at.
    pub additional_response_headers: Vec<HeaderKeyValue>,
    /// Dynamic metadata, applied in order as the set_metadata filter does.
    pub dynamic_metadata: Vec<DynamicMetadataEntry>,
}

/// `envoy.config.core.v3.HeaderValue` as the test schema uses it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderKeyValue {
    /// The header name.
    pub key: String,
    /// The value.
    pub value: String,
}

/// One set_metadata entry of `input.dynamic_metadata`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamicMetadataEntry {
    /// The filter namespace.
    pub metadata_namespace: String,
    /// A struct of values.
    pub value: Json,
    /// Whether a later entry may replace keys of an earlier one.
    pub allow_overwrite: bool,
}

/// One `validate.route_metadata` check: a key of the route's `filter_metadata`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteMetadataCheck {
    /// The filter namespace.
    pub namespace: String,
    /// The key inside it.
    pub key: String,
    /// The expected value.
    pub value: Json,
}

/// What a test checks: Envoy's `ValidationAssert`. A field that is not set is
/// not checked; a string set to `""` asserts "no value".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Expectations {
    /// The cluster of the forwarding route.
    pub cluster_name: Option<String>,
    /// The virtual cluster (`other` when the host has some and none matched).
    pub virtual_cluster_name: Option<String>,
    /// The virtual host.
    pub virtual_host_name: Option<String>,
    /// `:path` after the route's request changes.
    pub path_rewrite: Option<String>,
    /// `:authority` after the route's request changes.
    pub host_rewrite: Option<String>,
    /// The full redirect URL.
    pub path_redirect: Option<String>,
    /// The status of a redirect or direct response.
    pub code_redirect: Option<u32>,
    /// Matchers on the final request headers.
    pub request_header_matches: Vec<HeaderMatcher>,
    /// Matchers on the response headers.
    pub response_header_matches: Vec<HeaderMatcher>,
    /// Deprecated: exact request header values.
    pub request_header_fields: Vec<HeaderKeyValue>,
    /// Deprecated: exact response header values.
    pub response_header_fields: Vec<HeaderKeyValue>,
    /// The route's upstream timeout.
    pub timeout: Option<Duration>,
    /// Values of the route's `metadata.filter_metadata`.
    pub route_metadata: Vec<RouteMetadataCheck>,
}

impl Expectations {
    /// Whether nothing is checked.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Validate for TestFile {
    fn validate(&self, v: &mut Validator) {
        if self.tests.is_empty() {
            v.error("tests", "must list at least one test");
        }
        v.each("tests", &self.tests);
        v.field("runtime", |v| {
            for key in self.runtime.keys() {
                if !key.starts_with("re2.max_program_size.") {
                    v.key(key, |v| {
                        v.push(ConfigError::unsupported(
                            v.path().clone(),
                            "only re2.max_program_size.* keys are accepted; they change nothing",
                        ))
                    });
                }
            }
        });
    }
}

impl Validate for TestCase {
    fn validate(&self, v: &mut Validator) {
        if self.test_name.is_empty() {
            v.error("test_name", "must not be empty");
        }
        v.child("input", &self.input);
        if self.validate.is_empty() {
            v.error("validate", "must set at least one expectation");
        }
        v.child("validate", &self.validate);
    }
}

impl Validate for TestInput {
    fn validate(&self, v: &mut Validator) {
        for (name, value) in
            [("authority", &self.authority), ("path", &self.path), ("method", &self.method)]
        {
            if value.is_empty() {
                v.error(name, "must not be empty");
            } else if HeaderValue::try_from(value.as_str()).is_err() {
                v.error(name, format!("{value:?} is not a valid header value"));
            }
        }
        v.each("additional_request_headers", &self.additional_request_headers);
        v.each("additional_headers", &self.additional_headers);
        v.each("additional_response_headers", &self.additional_response_headers);
        v.each("dynamic_metadata", &self.dynamic_metadata);
    }
}

impl Validate for HeaderKeyValue {
    fn validate(&self, v: &mut Validator) {
        if HeaderName::try_from(self.key.as_str()).is_err() {
            v.error("key", format!("{:?} is not a valid header name", self.key));
        }
        if HeaderValue::try_from(self.value.as_str()).is_err() {
            v.error("value", format!("{:?} is not a valid header value", self.value));
        }
    }
}

impl Validate for DynamicMetadataEntry {
    fn validate(&self, v: &mut Validator) {
        if self.metadata_namespace.is_empty() {
            v.error("metadata_namespace", "must not be empty");
        }
        if !self.value.is_object() {
            v.error("value", "must be a struct (a mapping)");
        }
    }
}

impl Validate for RouteMetadataCheck {
    fn validate(&self, v: &mut Validator) {
        if self.namespace.is_empty() {
            v.error("namespace", "must not be empty");
        }
        if self.key.is_empty() {
            v.error("key", "must not be empty");
        }
    }
}

impl Validate for Expectations {
    fn validate(&self, v: &mut Validator) {
        v.each("request_header_matches", &self.request_header_matches);
        v.each("response_header_matches", &self.response_header_matches);
        v.each("request_header_fields", &self.request_header_fields);
        v.each("response_header_fields", &self.response_header_fields);
        v.each("route_metadata", &self.route_metadata);
    }
}

// ---------------------------------------------------------------------------
// Loading.

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: None,
        loc: None,
        kind: ErrorKind::Syntax(format!("cannot read {}: {e}", path.display())),
    })
}

/// Parses and validates a test file from JSON or YAML text (JSON is read by
/// the YAML loader, which also takes a trailing comma, as Envoy does).
pub fn parse_test_file(text: &str) -> Result<TestFile, ConfigError> {
    crate::config::load_str(text)
}

/// Reads a test file. Envoy also reads protobuf text (`.pb_text`); mini-envoy
/// refuses it with a message rather than misreading it.
pub fn load_test_file(path: &Path) -> Result<TestFile, ConfigError> {
    if path.extension().is_some_and(|e| e == "pb_text") {
        return Err(ConfigError {
            path: None,
            loc: None,
            kind: ErrorKind::Syntax(format!(
                "{}: protobuf text test files are not supported; write the test file as JSON or YAML",
                path.display()
            )),
        });
    }
    parse_test_file(&read(path)?)
}

/// Parses a route table from JSON or YAML text: a `RouteConfiguration`, or
/// (beyond Envoy's tool) a bootstrap, whose first inline HTTP connection
/// manager `route_config` is taken.
pub fn parse_route_config(text: &str) -> Result<RouteConfiguration, ConfigError> {
    let root = yaml::parse(text, &ParseLimits::default())?;
    let is_bootstrap = matches!(
        &root.value,
        yaml::Value::Map(entries) if entries.iter().any(|(k, _)| to_snake_case(&k.name) == "static_resources")
    );
    if !is_bootstrap {
        return from_tree(&root, Validator::new());
    }
    match find_route_config(&root, FieldPath::root()) {
        Some((node, path)) => from_tree(node, Validator::at(path)),
        None => Err(ConfigError::invalid(
            FieldPath::root().field("static_resources"),
            "a bootstrap without an inline HTTP connection manager route_config \
             (route-check reads a RouteConfiguration; RDS is not fetched)",
        )),
    }
}

/// Reads a route table file (see [`parse_route_config`]).
pub fn load_route_config(path: &Path) -> Result<RouteConfiguration, ConfigError> {
    parse_route_config(&read(path)?)
}

/// The first `route_config` mapping in a tree, with its path.
fn find_route_config(node: &Node, path: FieldPath) -> Option<(&Node, FieldPath)> {
    match &node.value {
        yaml::Value::Map(entries) => entries.iter().find_map(|(k, v)| {
            let name = to_snake_case(&k.name);
            let at = path.field(&name);
            if name == "route_config" && matches!(v.value, yaml::Value::Map(_)) {
                Some((v, at))
            } else {
                find_route_config(v, at)
            }
        }),
        yaml::Value::Seq(items) => {
            items.iter().enumerate().find_map(|(i, v)| find_route_config(v, path.index(i)))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Results.

/// One failed check, printed as router_check_tool prints it:
/// `expected: [x], actual: [y], test type: cluster_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What was checked: `cluster_name`, `response_header_matches.range_match`, ...
    pub test_type: String,
    /// The expected value; `None` for matchers the tool reports by actual value only.
    pub expected: Option<String>,
    /// The observed value.
    pub actual: String,
    /// The check wanted the values to differ (an inverted exact matcher).
    pub negated: bool,
}

impl Failure {
    fn new(test_type: &str, expected: impl fmt::Display, actual: impl fmt::Display) -> Self {
        Self {
            test_type: test_type.to_string(),
            expected: Some(expected.to_string()),
            actual: actual.to_string(),
            negated: false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.expected {
            write!(f, "expected: [{e}], ")?;
        }
        let not = if self.negated { "NOT " } else { "" };
        write!(f, "actual: {not}[{}], test type: {}", self.actual, self.test_type)
    }
}

/// The outcome of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The test's name.
    pub test_name: String,
    /// Every check that did not hold, in the tool's order.
    pub failures: Vec<Failure>,
}

impl TestResult {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The outcome of a test file.
#[derive(Debug, Clone)]
pub struct Report {
    /// One result per test, in file order.
    pub results: Vec<TestResult>,
    /// Which routes the passing checks covered.
    pub coverage: Coverage,
}

impl Report {
    /// Whether every test passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(TestResult::passed)
    }

    /// The tests that failed.
    pub fn failed(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| !r.passed())
    }
}

/// What kind of entry a route is, which decides its coverage fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// A forwarding route: cluster, virtual cluster, virtual host, path and host rewrite.
    Forward,
    /// A redirect or direct response: redirect path and code.
    Response,
}

const CLUSTER: u8 = 1;
const VIRTUAL_CLUSTER: u8 = 1 << 1;
const VIRTUAL_HOST: u8 = 1 << 2;
const PATH_REWRITE: u8 = 1 << 3;
const HOST_REWRITE: u8 = 1 << 4;
const REDIRECT_PATH: u8 = 1 << 5;
const REDIRECT_CODE: u8 = 1 << 6;

/// The coverage of one unit: a route, or one cluster of its `weighted_clusters`.
#[derive(Debug, Clone)]
pub struct RouteCoverage {
    /// The virtual host's name.
    pub virtual_host: String,
    /// The route's configured name (Envoy's tool appends a UUID; mini-envoy does not).
    pub route_name: String,
    /// The route's path match in protobuf text form, e.g. `prefix: "/"`.
    pub route_match: String,
    /// The weighted cluster this unit stands for.
    pub weighted_cluster: Option<String>,
    /// Forwarding or response route.
    pub kind: RouteKind,
    route: (usize, usize),
    covered: u8,
}

impl RouteCoverage {
    /// Whether any field of this unit was covered.
    pub fn is_covered(&self) -> bool {
        self.covered != 0
    }

    /// The share of this unit's fields that were covered (0 to 1).
    pub fn fraction(&self) -> f64 {
        let fields = match self.kind {
            RouteKind::Forward => {
                CLUSTER | VIRTUAL_CLUSTER | VIRTUAL_HOST | PATH_REWRITE | HOST_REWRITE
            }
            RouteKind::Response => REDIRECT_PATH | REDIRECT_CODE,
        };
        f64::from((self.covered & fields).count_ones()) / f64::from(fields.count_ones())
    }
}

/// Route coverage of a test run (Envoy's `Coverage`).
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    units: Vec<RouteCoverage>,
    /// Index of each route's first unit, per virtual host.
    first_unit: Vec<Vec<usize>>,
}

impl Coverage {
    fn new(config: &RouteConfiguration, router: &Router) -> Self {
        let mut c = Self::default();
        for (i, vh) in router.virtual_hosts().iter().enumerate() {
            let mut firsts = Vec::with_capacity(vh.routes.len());
            for (j, route) in vh.routes.iter().enumerate() {
                firsts.push(c.units.len());
                let route_match = config
                    .virtual_hosts
                    .get(i)
                    .and_then(|v| v.routes.get(j))
                    .map(|r| route_match_text(&r.r#match))
                    .unwrap_or_default();
                let unit = |weighted: Option<String>, kind| RouteCoverage {
                    virtual_host: vh.name.clone(),
                    route_name: route.name.clone(),
                    route_match: route_match.clone(),
                    weighted_cluster: weighted,
                    kind,
                    route: (i, j),
                    covered: 0,
                };
                match &route.action {
                    Action::Forward(f) => match &f.cluster {
                        ClusterSpecifier::Weighted(w) if !w.clusters.is_empty() => {
                            for wc in &w.clusters {
                                c.units.push(unit(Some(wc.name.clone()), RouteKind::Forward));
                            }
                        }
                        _ => c.units.push(unit(None, RouteKind::Forward)),
                    },
                    Action::Redirect(_) | Action::Direct(..) => {
                        c.units.push(unit(None, RouteKind::Response))
                    }
                }
            }
            c.first_unit.push(firsts);
        }
        c
    }

    fn mark(&mut self, unit: Option<usize>, field: u8) {
        if let Some(u) = unit.and_then(|u| self.units.get_mut(u)) {
            u.covered |= field;
        }
    }

    /// Every unit, in configuration order.
    pub fn units(&self) -> &[RouteCoverage] {
        &self.units
    }

    /// Envoy's default coverage: the percentage of units with a covered field.
    /// A table without routes is fully covered.
    pub fn percent(&self) -> f64 {
        self.share(|u| if u.is_covered() { 1.0 } else { 0.0 })
    }

    /// Envoy's `--covall` coverage: the percentage of all fields covered.
    pub fn comprehensive_percent(&self) -> f64 {
        self.share(RouteCoverage::fraction)
    }

    fn share(&self, weight: impl Fn(&RouteCoverage) -> f64) -> f64 {
        if self.units.is_empty() {
            return 100.0;
        }
        100.0 * self.units.iter().map(weight).sum::<f64>() / self.units.len() as f64
    }

    /// The routes no check covered (one entry per route, its first unit).
    pub fn missing_routes(&self) -> Vec<&RouteCoverage> {
        let mut out: Vec<&RouteCoverage> = Vec::new();
        for u in &self.units {
            let covered =
                self.units.iter().filter(|o| o.route == u.route).any(RouteCoverage::is_covered);
            if !covered && out.last().is_none_or(|l| l.route != u.route) {
                out.push(u);
            }
        }
        out
    }
}

/// A route's path match as protobuf text, as the tool prints it in
/// "Missing test" lines (the path specifier only).
fn route_match_text(m: &RouteMatch) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    if let Some(p) = &m.prefix {
        format!("prefix: {}", quote(p))
    } else if let Some(p) = &m.path {
        format!("path: {}", quote(p))
    } else if let Some(r) = &m.safe_regex {
        format!("safe_regex {{ regex: {} }}", quote(&r.regex))
    } else if let Some(p) = &m.path_separated_prefix {
        format!("path_separated_prefix: {}", quote(p))
    } else {
        String::new()
    }
}

// ---------------------------------------------------------------------------
// Running.

/// How tests are run.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// The downstream peer (`%DOWNSTREAM_REMOTE_ADDRESS%`); the tool's is 127.0.0.1.
    pub downstream_remote: SocketAddr,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self { downstream_remote: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)) }
    }
}

/// Runs every test of `tests` against the route table `config`, as
/// router_check_tool does (the quirks are applied to a copy of `config`).
/// Fails only when the table does not compile.
pub fn run_tests(
    config: &RouteConfiguration,
    tests: &TestFile,
    options: &CheckOptions,
) -> Result<Report, RouterError> {
    let mut config = config.clone();
    raise_zero_runtime_numerators(&mut config);
    let router = Router::new(&config)?;
    let mut coverage = Coverage::new(&config, &router);
    let results = tests
        .tests
        .iter()
        .map(|case| TestResult {
            test_name: case.test_name.clone(),
            failures: match observe(&router, &case.input, options) {
                Ok(o) => {
                    let unit = o.unit.map(|(i, j, w)| {
                        coverage
                            .first_unit
                            .get(i)
                            .and_then(|r| r.get(j))
                            .map_or(usize::MAX, |f| f + w.unwrap_or(0))
                    });
                    compare(&case.validate, &o, |field| coverage.mark(unit, field))
                }
                Err(f) => vec![f],
            },
        })
        .collect();
    Ok(Report { results, coverage })
}

/// Tool quirk 2: a `runtime_fraction` numerator of 0 becomes 1.
fn raise_zero_runtime_numerators(config: &mut RouteConfiguration) {
    for vh in &mut config.virtual_hosts {
        for r in &mut vh.routes {
            if let Some(f) = &mut r.r#match.runtime_fraction
                && f.default_value.numerator == 0
            {
                f.default_value.numerator = 1;
            }
        }
    }
}

/// Tool quirk 1: only the test's runtime key is on.
struct ToolRuntime<'a>(&'a str);

impl Runtime for ToolRuntime<'_> {
    fn feature_enabled(&self, key: &str, default: &FractionalPercent, random: u64) -> bool {
        !self.0.is_empty() && key == self.0 && default.hits(random)
    }
}

/// What the tool observes for one request.
#[derive(Debug, Default)]
struct Observed {
    /// (virtual host, route, weighted cluster) of the matched route.
    unit: Option<(usize, usize, Option<usize>)>,
    kind: Option<RouteKind>,
    cluster: String,
    vhost: String,
    virtual_cluster: String,
    path_rewrite: String,
    host_rewrite: String,
    path_redirect: String,
    code_redirect: u32,
    request_headers: HeaderMap,
    response_headers: HeaderMap,
    timeout: Option<std::time::Duration>,
    metadata: Option<BTreeMap<String, Json>>,
}

/// Dynamic metadata as the set_metadata filter builds it: a later entry for a
/// namespace replaces keys only with `allow_overwrite`.
fn build_metadata(entries: &[DynamicMetadataEntry]) -> DynamicMetadata {
    let mut md = DynamicMetadata::new();
    for e in entries {
        match md.get_mut(&e.metadata_namespace) {
            None => {
                md.insert(e.metadata_namespace.clone(), e.value.clone());
            }
            Some(existing) if e.allow_overwrite => {
                if let (Some(old), Some(new)) = (existing.as_object_mut(), e.value.as_object()) {
                    for (k, v) in new {
                        old.insert(k.clone(), v.clone());
                    }
                }
            }
            Some(_) => {}
        }
    }
    md
}

fn append(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), Failure> {
    headers.try_append(name, value).map_err(|e| Failure {
        test_type: "input".to_string(),
        expected: None,
        actual: format!("{name}: {value} ({e})"),
        negated: false,
    })
}

/// The position of `item` in `items`, by identity.
fn position<T>(items: &[T], item: &T) -> Option<usize> {
    items.iter().position(|i| std::ptr::eq(i, item))
}

/// The (virtual host, route, weighted cluster) indices of a matched route.
fn unit_of(
    router: &Router,
    vhost: &VirtualHost,
    route: &RouteEntry,
    weighted: Option<&WeightedClusterEntry>,
) -> Option<(usize, usize, Option<usize>)> {
    let w = match (&route.action, weighted) {
        (Action::Forward(f), Some(e)) => match &f.cluster {
            ClusterSpecifier::Weighted(w) => Some(position(&w.clusters, e)?),
            _ => None,
        },
        _ => None,
    };
    Some((position(router.virtual_hosts(), vhost)?, position(&vhost.routes, route)?, w))
}

fn observe(
    router: &Router,
    input: &TestInput,
    options: &CheckOptions,
) -> Result<Observed, Failure> {
    let mut req = HeaderMap::new();
    let scheme = if input.ssl { "https" } else { "http" };
    append(&mut req, ":authority", &input.authority)?;
    append(&mut req, ":path", &input.path)?;
    append(&mut req, ":method", &input.method)?;
    append(&mut req, ":scheme", scheme)?;
    append(&mut req, "x-forwarded-proto", scheme)?;
    if input.internal {
        append(&mut req, "x-envoy-internal", "true")?;
    }
    for kv in input.additional_request_headers.iter().chain(&input.additional_headers) {
        append(&mut req, &kv.key, &kv.value)?;
    }
    let mut resp = HeaderMap::new();
    for kv in &input.additional_response_headers {
        append(&mut resp, &kv.key, &kv.value)?;
    }
    let md = build_metadata(&input.dynamic_metadata);
    let runtime = ToolRuntime(&input.runtime);
    let ctx = RouteContext {
        random_value: input.random_value,
        downstream_remote: Some(options.downstream_remote),
        tls: input.ssl,
        internal: input.internal,
        dynamic_metadata: Some(&md),
        runtime: Some(&runtime),
        ..Default::default()
    };
    let mut o = Observed::default();
    match router.route(&req, &ctx) {
        // The tool does not check that clusters exist: both are forwarding routes.
        RouteDecision::Route(f) | RouteDecision::ClusterNotFound(f) => {
            o.unit = unit_of(router, f.vhost, f.route, f.weighted);
            o.kind = Some(RouteKind::Forward);
            o.cluster = f.cluster.to_string();
            o.vhost = f.vhost.name.clone();
            o.virtual_cluster = f.virtual_cluster.unwrap_or("").to_string();
            let mut finalized = req.clone();
            f.finalize_request_headers(&mut finalized, &ctx, true);
            o.path_rewrite = finalized.path().unwrap_or_default().to_string();
            o.host_rewrite = finalized.authority().unwrap_or_default().to_string();
            f.finalize_response_headers(&mut resp, Some(&req), &ctx);
            o.request_headers = finalized;
            o.response_headers = resp;
            o.timeout = f.timeout();
            o.metadata = f.route.metadata.as_ref().map(|m| m.filter_metadata.clone());
        }
        RouteDecision::Redirect(r) => {
            // A require_tls redirect belongs to no configured route.
            if let Some(route) = r.route {
                o.unit = unit_of(router, r.vhost, route, None);
                o.kind = Some(RouteKind::Response);
            }
            o.path_redirect = r.location.clone();
            o.code_redirect = u32::from(r.status);
            o.response_headers = r.response_headers(Some(&req), &ctx);
            o.request_headers = req;
        }
        RouteDecision::DirectResponse(d) => {
            o.unit = unit_of(router, d.vhost, d.route, None);
            o.kind = Some(RouteKind::Response);
            o.path_redirect = format!("{scheme}://{}{}", input.authority, input.path);
            o.code_redirect = u32::from(d.status);
            o.response_headers = d.response_headers(Some(&req), &ctx);
            o.metadata = d.route.metadata.as_ref().map(|m| m.filter_metadata.clone());
            o.request_headers = req;
        }
        RouteDecision::NoRoute => o.request_headers = req,
    }
    Ok(o)
}

/// Every check of `e` that does not hold for `o`, in the tool's order;
/// `cover` is called with the coverage field of each check that holds.
fn compare(e: &Expectations, o: &Observed, mut cover: impl FnMut(u8)) -> Vec<Failure> {
    let mut fails = Vec::new();
    let forward = o.kind == Some(RouteKind::Forward);
    let response = o.kind == Some(RouteKind::Response);
    let strings = [
        ("cluster_name", &e.cluster_name, &o.cluster, forward, CLUSTER),
        (
            "virtual_cluster_name",
            &e.virtual_cluster_name,
            &o.virtual_cluster,
            forward,
            VIRTUAL_CLUSTER,
        ),
        ("virtual_host_name", &e.virtual_host_name, &o.vhost, forward, VIRTUAL_HOST),
        ("path_rewrite", &e.path_rewrite, &o.path_rewrite, forward, PATH_REWRITE),
        ("host_rewrite", &e.host_rewrite, &o.host_rewrite, forward, HOST_REWRITE),
        ("path_redirect", &e.path_redirect, &o.path_redirect, response, REDIRECT_PATH),
    ];
    for (name, want, got, coverable, field) in strings {
        match want {
            Some(w) if w != got => fails.push(Failure::new(name, w, got)),
            Some(_) if coverable => cover(field),
            _ => {}
        }
    }
    match e.code_redirect {
        Some(c) if c != o.code_redirect => {
            fails.push(Failure::new("code_redirect", c, o.code_redirect))
        }
        Some(_) if response => cover(REDIRECT_CODE),
        _ => {}
    }
    for (kind, matchers, fields, headers) in [
        (
            "request_header_matches",
            &e.request_header_matches,
            ("request_header_fields", &e.request_header_fields),
            &o.request_headers,
        ),
        (
            "response_header_matches",
            &e.response_header_matches,
            ("response_header_fields", &e.response_header_fields),
            &o.response_headers,
        ),
    ] {
        for m in matchers {
            if let Some(f) = header_match_failure(kind, m, headers) {
                fails.push(f);
            }
        }
        for kv in fields.1 {
            let got = headers.get_joined(&kv.key.to_ascii_lowercase()).unwrap_or_default();
            if got != kv.value.as_str() {
                fails.push(Failure::new(fields.0, &kv.value, got));
            }
        }
    }
    if let Some(t) = e.timeout {
        let got = o.timeout.unwrap_or_default();
        if t.get() != got {
            fails.push(Failure::new("timeout", t, Duration(got)));
        }
    }
    for m in &e.route_metadata {
        let got =
            o.metadata.as_ref().and_then(|md| md.get(&m.namespace)).and_then(|ns| ns.get(&m.key));
        if got != Some(&m.value) {
            let at = format!("{}.{}", m.namespace, m.key);
            let got = got.map_or_else(|| "NULL".to_string(), Json::to_string);
            fails.push(Failure::new(
                "route_metadata",
                format!("{at}: {}", m.value),
                format!("{at}: {got}"),
            ));
        }
    }
    fails
}

/// The failure of a header matcher, worded as the tool words it, or `None`
/// when it matches.
fn header_match_failure(kind: &str, m: &HeaderMatcher, headers: &HeaderMap) -> Option<Failure> {
    let compiled = match HeaderMatch::compile(m) {
        Ok(c) => c,
        Err(e) => {
            return Some(Failure {
                test_type: kind.to_string(),
                expected: None,
                actual: format!("{}: invalid matcher: {e}", m.name),
                negated: false,
            });
        }
    };
    if compiled.matches(headers) {
        return None;
    }
    let value = headers.get_joined(&m.name.to_ascii_lowercase());
    let shown = format!("{}: {}", m.name, value.as_deref().unwrap_or("NULL"));
    let (spec, exact) = match &m.string_match {
        Some(s) => {
            let pattern = if s.exact.is_some() {
                "exact"
            } else if s.prefix.is_some() {
                "prefix"
            } else if s.suffix.is_some() {
                "suffix"
            } else if s.safe_regex.is_some() {
                "safe_regex"
            } else if s.contains.is_some() {
                "contains"
            } else {
                "match_pattern_not_set"
            };
            (format!("string_match.{pattern}"), s.exact.as_deref())
        }
        None if m.exact_match.is_some() => ("exact_match".to_string(), None),
        None if m.safe_regex_match.is_some() => ("safe_regex_match".to_string(), None),
        None if m.range_match.is_some() => ("range_match".to_string(), None),
        None if m.prefix_match.is_some() => ("prefix_match".to_string(), None),
        None if m.suffix_match.is_some() => ("suffix_match".to_string(), None),
        None if m.contains_match.is_some() => ("contains_match".to_string(), None),
        None => ("present_match".to_string(), None),
    };
    let test_type = format!("{kind}.{spec}");
    Some(if spec == "present_match" {
        let want = m.present_match.unwrap_or(true) != m.invert_match;
        Failure::new(
            &test_type,
            format!("has({}):{want}", m.name),
            format!("has({}):{}", m.name, !want),
        )
    } else if let Some(x) = exact {
        Failure {
            negated: m.invert_match,
            ..Failure::new(&test_type, format!("{}: {x}", m.name), shown)
        }
    } else {
        Failure { test_type, expected: None, actual: shown, negated: false }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "
virtual_hosts:
- name: local
  domains: ['*']
  routes:
  - match: {prefix: /api}
    route: {cluster: api, prefix_rewrite: /v2}
  - match: {prefix: /old}
    redirect: {path_redirect: /new}
";

    fn case(path: &str, validate: &str) -> String {
        format!(
            "tests:\n- test_name: t\n  input: {{authority: example.com, path: {path}, method: GET}}\n  validate: {validate}\n"
        )
    }

    fn run(tests: &str) -> Report {
        let cfg = parse_route_config(ROUTES).unwrap();
        run_tests(&cfg, &parse_test_file(tests).unwrap(), &CheckOptions::default()).unwrap()
    }

    #[test]
    fn test_file_errors_name_the_field_and_position() {
        let e = parse_test_file(&case("/x", "{cluster_nam: api}")).unwrap_err().to_string();
        assert!(e.contains("tests[0].validate: unknown field \"cluster_nam\""), "{e}");
        assert!(e.contains("line 4"), "{e}");
        let e = parse_test_file(&case("/x", "{}")).unwrap_err().to_string();
        assert!(e.contains("tests[0].validate: must set at least one expectation"), "{e}");
        let e = parse_test_file("tests: []").unwrap_err().to_string();
        assert!(e.contains("tests: must list at least one test"), "{e}");
        let e =
            parse_test_file(&format!("runtime: {{foo: 1}}\n{}", case("/x", "{cluster_name: a}")))
                .unwrap_err();
        assert!(e.is_unsupported(), "{e}");
        let e = load_test_file(Path::new("x.pb_text")).unwrap_err().to_string();
        assert!(e.contains("protobuf text test files are not supported"), "{e}");
    }

    #[test]
    fn failures_are_worded_as_the_tool_and_coverage_counts_held_checks() {
        let pass = run(&case("/api/x", "{cluster_name: api, path_rewrite: /v2/x}"));
        assert!(pass.passed());
        assert_eq!(pass.coverage.percent(), 50.0);
        assert_eq!(pass.coverage.comprehensive_percent(), 20.0);
        let missing = pass.coverage.missing_routes();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].route_match, "prefix: \"/old\"");

        let fail = run(&case("/old", "{cluster_name: api, code_redirect: 302}"));
        let lines: Vec<String> = fail.results[0].failures.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "expected: [api], actual: [], test type: cluster_name",
                "expected: [302], actual: [301], test type: code_redirect",
            ]
        );
        // A failed check covers nothing.
        assert_eq!(fail.coverage.percent(), 0.0);
    }

    #[test]
    fn a_bootstrap_yields_its_route_config() {
        let bootstrap = "
static_resources:
  listeners:
  - address: {socket_address: {address: 0.0.0.0, port_value: 80}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          route_config:
            virtual_hosts:
            - name: local
              domains: ['*']
              routes: [{match: {prefix: /}, route: {cluster: c, timeout: 2x}}]
";
        let e = parse_route_config(bootstrap).unwrap_err().to_string();
        assert!(
            e.contains("static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.timeout"),
            "{e}"
        );
        assert!(e.contains("line 15"), "{e}");
        let fixed = bootstrap.replace("2x", "2s");
        assert_eq!(parse_route_config(&fixed).unwrap().virtual_hosts[0].name, "local");
        let e = parse_route_config("static_resources: {}").unwrap_err().to_string();
        assert!(e.contains("without an inline HTTP connection manager route_config"), "{e}");
    }
}
