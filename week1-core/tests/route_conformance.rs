//! Envoy's router_check_tool conformance data, run against mini-envoy's router.
//!
//! `tests/data/envoy-route-tests/` holds Envoy's own route tables and
//! expectation files (see its README for origin, licence and format). This
//! harness plays the part of Envoy's `router_check_tool`: it builds each
//! request, routes it, and compares what the tool would report. The tool's
//! quirks (runtime gating, numerator 0 → 1, `""` fields for redirects and
//! direct responses, 127.0.0.1 as the peer) live here, never in the router.
//!
//! Every case must pass, except the ones designed to fail (`*Failures` files
//! and two RouteMetadata cases), which must fail with exactly the documented
//! failures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;

use week1_core::config::route::{HeaderMatcher, RouteConfiguration};
use week1_core::config::types::{Duration, FractionalPercent};
use week1_core::config::{FieldPath, Node, ParseLimits, Validator, de, from_tree, yaml};
use week1_core::headers::HeaderMap;
use week1_core::router::{
    DynamicMetadata, HeaderMatch, RouteContext, RouteDecision, Router, Runtime,
};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/envoy-route-tests")
}

// ---------------------------------------------------------------------------
// The test-file schema (router_check_tool's validation.proto, as JSON).

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TestFile {
    tests: Vec<TestCase>,
    /// Runtime keys loaded before the tests (only regex program size limits occur).
    runtime: BTreeMap<String, Json>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TestCase {
    test_name: String,
    input: Input,
    validate: Expect,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct KeyValue {
    key: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DynamicMetadataEntry {
    metadata_namespace: String,
    value: Json,
    allow_overwrite: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Input {
    authority: String,
    path: String,
    method: String,
    ssl: bool,
    internal: bool,
    random_value: u64,
    runtime: String,
    additional_request_headers: Vec<KeyValue>,
    /// The v2-era name of `additional_request_headers`.
    additional_headers: Vec<KeyValue>,
    additional_response_headers: Vec<KeyValue>,
    dynamic_metadata: Vec<DynamicMetadataEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RouteMetadataCheck {
    namespace: String,
    key: String,
    value: Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Expect {
    cluster_name: Option<String>,
    virtual_cluster_name: Option<String>,
    virtual_host_name: Option<String>,
    path_rewrite: Option<String>,
    host_rewrite: Option<String>,
    path_redirect: Option<String>,
    code_redirect: Option<u32>,
    request_header_matches: Vec<HeaderMatcher>,
    response_header_matches: Vec<HeaderMatcher>,
    request_header_fields: Vec<KeyValue>,
    response_header_fields: Vec<KeyValue>,
    timeout: Option<Duration>,
    route_metadata: Vec<RouteMetadataCheck>,
}

// ---------------------------------------------------------------------------
// Loading.

/// JSON and YAML test files go through the project's YAML loader, which also
/// reads TestRoutes.golden's trailing comma (as Envoy does).
fn load_test_file(path: &Path) -> TestFile {
    let text = std::fs::read_to_string(path).unwrap();
    if path.extension().is_some_and(|e| e == "pb_text") {
        let json = pb_text::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return serde_json::from_value(json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let node = yaml::parse(&text, &ParseLimits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    de::from_node(&node, &FieldPath::root()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Finds the first `route_config` mapping anywhere in a tree (a Bootstrap's
/// listener → HCM → route_config).
fn find_route_config(node: &Node) -> Option<&Node> {
    match &node.value {
        yaml::Value::Map(entries) => entries.iter().find_map(|(k, v)| {
            if k.name == "route_config" || k.name == "routeConfig" {
                Some(v)
            } else {
                find_route_config(v)
            }
        }),
        yaml::Value::Seq(items) => items.iter().find_map(find_route_config),
        _ => None,
    }
}

fn load_route_config(file: &str) -> Result<RouteConfiguration, String> {
    let text = std::fs::read_to_string(data_dir().join(file)).map_err(|e| e.to_string())?;
    let root = yaml::parse(&text, &ParseLimits::default()).map_err(|e| e.to_string())?;
    let node = if root_has_key(&root, "static_resources") {
        find_route_config(&root).ok_or("bootstrap without route_config")?
    } else {
        &root
    };
    let mut cfg: RouteConfiguration =
        from_tree(node, Validator::new()).map_err(|e| e.to_string())?;
    // Tool quirk 2: every runtime_fraction numerator of 0 becomes 1.
    for vh in &mut cfg.virtual_hosts {
        for r in &mut vh.routes {
            if let Some(f) = &mut r.r#match.runtime_fraction
                && f.default_value.numerator == 0
            {
                f.default_value.numerator = 1;
            }
        }
    }
    Ok(cfg)
}

fn root_has_key(node: &Node, key: &str) -> bool {
    matches!(&node.value, yaml::Value::Map(e) if e.iter().any(|(k, _)| k.name == key))
}

// ---------------------------------------------------------------------------
// Running one case the way router_check_tool does.

/// Tool quirk 1: a runtime-gated route matches only when the case names its
/// key, and then only for `random % denominator < numerator`.
struct ToolRuntime<'a>(&'a str);

impl Runtime for ToolRuntime<'_> {
    fn feature_enabled(&self, key: &str, default: &FractionalPercent, random: u64) -> bool {
        !self.0.is_empty() && key == self.0 && default.hits(random)
    }
}

/// What the tool observes for a request.
#[derive(Debug, Default)]
struct Observed {
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

fn build_metadata(entries: &[DynamicMetadataEntry]) -> DynamicMetadata {
    // As the set_metadata filter: a later entry for a namespace replaces keys
    // only with allow_overwrite.
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

fn observe(router: &Router, input: &Input) -> Observed {
    let mut req = HeaderMap::new();
    let scheme = if input.ssl { "https" } else { "http" };
    for (k, v) in
        [(":authority", &input.authority), (":path", &input.path), (":method", &input.method)]
    {
        req.try_append(k, v).unwrap();
    }
    req.try_append(":scheme", scheme).unwrap();
    req.try_append("x-forwarded-proto", scheme).unwrap();
    if input.internal {
        req.try_append("x-envoy-internal", "true").unwrap();
    }
    for kv in input.additional_request_headers.iter().chain(&input.additional_headers) {
        req.try_append(&kv.key, &kv.value).unwrap();
    }
    let mut resp = HeaderMap::new();
    for kv in &input.additional_response_headers {
        resp.try_append(&kv.key, &kv.value).unwrap();
    }
    let md = build_metadata(&input.dynamic_metadata);
    let runtime = ToolRuntime(&input.runtime);
    let ctx = RouteContext {
        random_value: input.random_value,
        // Tool quirk 7: the peer is 127.0.0.1.
        downstream_remote: Some("127.0.0.1:0".parse().unwrap()),
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
        // Tool quirk 4: no forwarding entry, so names and rewrites are "".
        RouteDecision::Redirect(r) => {
            o.path_redirect = r.location.clone();
            o.code_redirect = u32::from(r.status);
            o.response_headers = r.response_headers(Some(&req), &ctx);
            o.request_headers = req;
        }
        RouteDecision::DirectResponse(d) => {
            // The tool reports the request's own URL as the "redirect" of a direct response.
            o.path_redirect = format!("{scheme}://{}{}", input.authority, input.path);
            o.code_redirect = u32::from(d.status);
            // Tool quirk 6: local reply headers plus the route's response headers.
            o.response_headers = d.response_headers(Some(&req), &ctx);
            o.metadata = d.route.metadata.as_ref().map(|m| m.filter_metadata.clone());
            o.request_headers = req;
        }
        RouteDecision::NoRoute => o.request_headers = req,
    }
    o
}

/// Every mismatch between the expectation and what was observed.
fn check(e: &Expect, o: &Observed) -> Vec<String> {
    let mut fails = Vec::new();
    let mut field = |name: &str, want: &Option<String>, got: &str| {
        if let Some(w) = want
            && w != got
        {
            fails.push(format!("{name}: expected {w:?}, actual {got:?}"));
        }
    };
    field("cluster_name", &e.cluster_name, &o.cluster);
    field("virtual_cluster_name", &e.virtual_cluster_name, &o.virtual_cluster);
    field("virtual_host_name", &e.virtual_host_name, &o.vhost);
    field("path_rewrite", &e.path_rewrite, &o.path_rewrite);
    field("host_rewrite", &e.host_rewrite, &o.host_rewrite);
    field("path_redirect", &e.path_redirect, &o.path_redirect);
    if let Some(c) = e.code_redirect
        && c != o.code_redirect
    {
        fails.push(format!("code_redirect: expected {c}, actual {}", o.code_redirect));
    }
    for (kind, matchers, headers) in [
        ("request_header_matches", &e.request_header_matches, &o.request_headers),
        ("response_header_matches", &e.response_header_matches, &o.response_headers),
    ] {
        for m in matchers {
            let compiled = HeaderMatch::compile(m).expect("expectation header matcher compiles");
            if !compiled.matches(headers) {
                fails.push(format!(
                    "{kind}: {:?} does not match (actual value {:?})",
                    m.name,
                    headers.get_joined(&m.name.to_ascii_lowercase())
                ));
            }
        }
    }
    for (kind, fields, headers) in [
        ("request_header_fields", &e.request_header_fields, &o.request_headers),
        ("response_header_fields", &e.response_header_fields, &o.response_headers),
    ] {
        for kv in fields {
            let got = headers.get_joined(&kv.key.to_ascii_lowercase());
            if got.as_deref() != Some(kv.value.as_str()) {
                fails.push(format!("{kind}: {}: expected {:?}, actual {got:?}", kv.key, kv.value));
            }
        }
    }
    if let Some(t) = e.timeout {
        let got = o.timeout.unwrap_or_default();
        if t.get() != got {
            fails.push(format!("timeout: expected {t}, actual {}", Duration(got)));
        }
    }
    for m in &e.route_metadata {
        let got =
            o.metadata.as_ref().and_then(|md| md.get(&m.namespace)).and_then(|ns| ns.get(&m.key));
        if got != Some(&m.value) {
            fails.push(format!(
                "route_metadata: {}.{}: expected {}, actual {}",
                m.namespace,
                m.key,
                m.value,
                got.map_or("<missing>".to_string(), |v| v.to_string())
            ));
        }
    }
    fails
}

// ---------------------------------------------------------------------------
// The suite.

/// (route config, expectation file).
const PAIRS: &[(&str, &str)] = &[
    ("ClusterHeader.yaml", "ClusterHeader.golden.proto.json"),
    ("ComprehensiveRoutes.yaml", "ComprehensiveRoutes.golden.proto.json"),
    ("ContentType.yaml", "ContentType.golden.proto.json"),
    ("DefaultRuntime.yaml", "DefaultRuntime.golden.proto.json"),
    ("DetailedCoverage.yaml", "DetailedCoverage.golden.proto.json"),
    ("DirectResponse.yaml", "DirectResponse.golden.proto.json"),
    ("DynamicMetadata.yaml", "DynamicMetadata.golden.proto.json"),
    ("HeaderMatchedRouting.yaml", "HeaderMatchedRouting.golden.proto.json"),
    ("Redirect.yaml", "Redirect.golden.proto.json"),
    ("Redirect2.yaml", "Redirect2.golden.proto.json"),
    ("Redirect3.yaml", "Redirect3.golden.proto.json"),
    ("Redirect4.yaml", "Redirect4.golden.proto.json"),
    ("RouteMetadata.yaml", "RouteMetadata.golden.proto.json"),
    ("Runtime.yaml", "Runtime.golden.proto.json"),
    ("TestRoutes.yaml", "TestRoutes.golden.proto.json"),
    ("TestRoutes.yaml", "TestRoutesFailures.golden.proto.json"),
    ("Timeout.yaml", "Timeout.golden.proto.json"),
    ("Timeout.yaml", "TimeoutFailures.golden.proto.json"),
    ("Weighted.yaml", "Weighted.golden.proto.json"),
    // The same cases again through the YAML and protobuf-text test-file readers.
    ("Weighted.yaml", "Weighted.golden.proto.yaml"),
    ("Weighted.yaml", "Weighted.golden.proto.pb_text"),
    // The Bootstrap variant of ClusterHeader/DefaultRuntime: the route config is
    // pulled out of listener → HCM → route_config.
    ("ClusterHeaderBootstrap.yaml", "DefaultRuntime.golden.proto.json"),
];

/// Cases designed to fail, with the failures they must produce (by prefix).
fn designed_failures(golden: &str, test: &str) -> Option<Vec<&'static str>> {
    match (golden, test) {
        ("TestRoutesFailures.golden.proto.json", "ResponseHeaderMatches Failures") => Some(vec![
            "response_header_matches: \"content-type\"",
            "response_header_matches: \"content-length\"",
            "response_header_matches: \"x-ping-response\"",
            "response_header_matches: \"x-ping-response\"",
            "response_header_matches: \"x-pong-response\"",
        ]),
        ("TimeoutFailures.golden.proto.json", "Test_1") => {
            Some(vec!["timeout: expected 120s, actual 30s"])
        }
        ("RouteMetadata.golden.proto.json", "MetadataValueMismatch") => Some(vec![
            "route_metadata: databricks.der.route_id: expected \"stable\", actual \"canary\"",
        ]),
        ("RouteMetadata.golden.proto.json", "MetadataNamespaceMissing") => Some(vec![
            "route_metadata: databricks.der.route_id: expected \"canary\", actual <missing>",
        ]),
        _ => None,
    }
}

#[test]
fn envoy_router_check_tool_conformance() {
    let mut summary = String::new();
    let (mut files, mut passed, mut designed, mut unexpected) = (0, 0, 0, Vec::new());
    let mut unsupported: Vec<String> = Vec::new();
    for (config, golden) in PAIRS {
        files += 1;
        let tests = load_test_file(&data_dir().join(golden));
        assert!(!tests.tests.is_empty(), "{golden}: no tests");
        // The only runtime keys used raise RE2's program size limit.
        for key in tests.runtime.keys() {
            assert!(
                key.starts_with("re2.max_program_size"),
                "{golden}: runtime key {key} not understood"
            );
        }
        let cfg = match load_route_config(config) {
            Ok(cfg) => cfg,
            // The config's 100+-character regex needs Envoy's runtime override
            // `re2.max_program_size.error_level`; mini-envoy's compiled-regex
            // budget (1 MiB) is fixed and has no runtime layer to raise it.
            Err(e)
                if tests.runtime.contains_key("re2.max_program_size.error_level")
                    && e.contains("exceeds size limit") =>
            {
                for case in &tests.tests {
                    unsupported.push(format!(
                        "{config} + {golden} / {}: the route table does not load: {e} \
                         (Envoy loads it only with runtime re2.max_program_size.error_level raised; \
                         mini-envoy has no runtime layer and a fixed 1 MiB regex budget)",
                        case.test_name
                    ));
                }
                let _ = writeln!(
                    summary,
                    "{config} + {golden}: 0/{} (unsupported: regex budget)",
                    tests.tests.len()
                );
                continue;
            }
            Err(e) => panic!("{config}: {e}"),
        };
        let router = Router::new(&cfg).unwrap_or_else(|e| panic!("{config}: {e}"));
        let mut file_pass = 0;
        for case in &tests.tests {
            let observed = observe(&router, &case.input);
            let fails = check(&case.validate, &observed);
            match designed_failures(golden, &case.test_name) {
                Some(expected) => {
                    let ok = fails.len() == expected.len()
                        && fails.iter().zip(&expected).all(|(f, e)| f.starts_with(e));
                    if ok {
                        designed += 1;
                        let _ = writeln!(
                            summary,
                            "  failed as designed: {golden} / {}:",
                            case.test_name
                        );
                        for f in &fails {
                            let _ = writeln!(summary, "      {f}");
                        }
                    } else {
                        unexpected.push(format!(
                            "{config} + {golden} / {}: expected failures {expected:?}, got {fails:?}",
                            case.test_name
                        ));
                    }
                }
                None if fails.is_empty() => {
                    passed += 1;
                    file_pass += 1;
                }
                None => {
                    unexpected.push(format!("{config} + {golden} / {}: {fails:?}", case.test_name))
                }
            }
        }
        let _ = writeln!(summary, "{config} + {golden}: {file_pass}/{} passed", tests.tests.len());
    }
    println!("router_check_tool conformance ({files} config/expectation pairs)\n{summary}");
    println!(
        "passed: {passed}, failed as designed: {designed}, unsupported: {}, unexpected failures: {}",
        unsupported.len(),
        unexpected.len()
    );
    for u in &unsupported {
        println!("  unsupported: {u}");
    }
    assert!(unexpected.is_empty(), "unexpected results:\n{}", unexpected.join("\n"));
    // 111 upstream cases + 4 (YAML) + 2 (pb_text) repeats + 3 (Bootstrap pairing) = 120:
    // the DefaultRuntime golden against DefaultRuntime.yaml and against the
    // Bootstrap (3 + 3) is the only unsupported part.
    assert_eq!(unsupported.len(), 6, "{unsupported:#?}");
    assert_eq!(passed + designed + unsupported.len(), 120);
    assert_eq!(designed, 4);
}

#[test]
fn designed_failures_really_fail() {
    // The failure checker is not vacuous: a wrong expectation is reported.
    let cfg = load_route_config("Timeout.yaml").unwrap();
    let router = Router::new(&cfg).unwrap();
    let input = Input {
        authority: "www.example.com".into(),
        path: "/api/v1/x".into(),
        method: "GET".into(),
        ..Default::default()
    };
    let o = observe(&router, &input);
    let e = Expect { cluster_name: Some("nope".into()), ..Default::default() };
    assert_eq!(
        check(&e, &o),
        vec!["cluster_name: expected \"nope\", actual \"service\"".to_string()]
    );
}

/// A tiny protobuf text-format reader: enough for router_check_tool test files
/// (messages, strings, numbers, booleans, repeated fields). Wrapper messages
/// such as `cluster_name: { value: "x" }` become their value.
mod pb_text {
    use serde_json::{Map, Value};

    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let mut root = p.message(false)?;
        // `tests` is repeated even when it appears once.
        if let Some(t) = root.get_mut("tests")
            && !t.is_array()
        {
            *t = Value::Array(vec![t.take()]);
        }
        Ok(Value::Object(root))
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn skip_ws(&mut self) {
            while self.i < self.s.len() {
                match self.s[self.i] {
                    b' ' | b'\t' | b'\n' | b'\r' | b',' | b';' => self.i += 1,
                    b'#' => {
                        while self.i < self.s.len() && self.s[self.i] != b'\n' {
                            self.i += 1;
                        }
                    }
                    _ => break,
                }
            }
        }

        fn message(&mut self, nested: bool) -> Result<Map<String, Value>, String> {
            let mut map = Map::new();
            loop {
                self.skip_ws();
                match self.s.get(self.i) {
                    None if !nested => return Ok(map),
                    None => return Err("unexpected end of input".into()),
                    Some(b'}') if nested => {
                        self.i += 1;
                        return Ok(map);
                    }
                    _ => {}
                }
                let start = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
                {
                    self.i += 1;
                }
                if start == self.i {
                    return Err(format!("expected a field name at byte {}", self.i));
                }
                let name = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.skip_ws();
                if self.s.get(self.i) == Some(&b':') {
                    self.i += 1;
                    self.skip_ws();
                }
                let value = if self.s.get(self.i) == Some(&b'{') {
                    self.i += 1;
                    let m = self.message(true)?;
                    if m.len() == 1 && m.contains_key("value") {
                        m["value"].clone()
                    } else {
                        Value::Object(m)
                    }
                } else {
                    self.scalar()?
                };
                match map.get_mut(&name) {
                    Some(Value::Array(a)) => a.push(value),
                    Some(existing) => {
                        let first = existing.take();
                        *existing = Value::Array(vec![first, value]);
                    }
                    None => {
                        map.insert(name, value);
                    }
                }
            }
        }

        fn scalar(&mut self) -> Result<Value, String> {
            if self.s.get(self.i) == Some(&b'"') {
                self.i += 1;
                let mut out = Vec::new();
                while let Some(&c) = self.s.get(self.i) {
                    self.i += 1;
                    match c {
                        b'"' => {
                            return Ok(Value::String(String::from_utf8_lossy(&out).into_owned()));
                        }
                        b'\\' => {
                            let e = *self.s.get(self.i).ok_or("bad escape")?;
                            self.i += 1;
                            out.push(match e {
                                b'n' => b'\n',
                                b't' => b'\t',
                                other => other,
                            });
                        }
                        c => out.push(c),
                    }
                }
                return Err("unterminated string".into());
            }
            let start = self.i;
            while self.i < self.s.len()
                && (self.s[self.i].is_ascii_alphanumeric()
                    || matches!(self.s[self.i], b'-' | b'.' | b'_'))
            {
                self.i += 1;
            }
            let word = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
            Ok(match word {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                w => match w.parse::<u64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => match w.parse::<f64>() {
                        Ok(f) => Value::from(f),
                        Err(_) if !w.is_empty() => Value::String(w.to_string()),
                        Err(_) => return Err(format!("expected a value at byte {start}")),
                    },
                },
            })
        }
    }
}
