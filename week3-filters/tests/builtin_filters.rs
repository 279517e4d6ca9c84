//! The built-in HTTP filters, built from Envoy YAML through the registry.

use std::sync::Arc;
use std::time::Duration;

use week1_core::config::filters::PerFilterConfig;
use week1_core::config::http_connection_manager::HttpFilter;
use week1_core::headers::HeaderMap;
use week3_filters::buffer::Buffer;
use week3_filters::context::{FactoryContext, ManualTime, MemorySink, MemoryStats};
use week3_filters::http::*;
use week3_filters::registry::{FilterChainFactory, RouteConfigCompiler};

fn filters(yaml: &[&str]) -> Vec<HttpFilter> {
    yaml.iter().map(|y| week1_core::config::load_str::<HttpFilter>(y).unwrap()).collect()
}

const ROUTER: &str = "name: envoy.filters.http.router\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n";

fn stream(chain: &FilterChainFactory, route: Option<ResolvedRoute>) -> FilterManager {
    let resolver = StaticRouteResolver(route.map(|r| Arc::new(r) as Arc<dyn RouteInfo>));
    let cfg =
        FilterManagerConfig { route_resolver: Some(Arc::new(resolver)), ..Default::default() };
    FilterManager::new(chain.create_chain(), &cfg)
}

fn req(method: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.try_insert(":method", method).unwrap();
    h.try_insert(":path", "/api").unwrap();
    h.try_insert(":authority", "example.com").unwrap();
    for (n, v) in extra {
        h.try_append(n, v).unwrap();
    }
    h
}

fn resp() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.try_insert(":status", "200").unwrap();
    h
}

#[derive(Debug, Default)]
struct Out {
    up_headers: bool,
    up_body: Vec<u8>,
    down_status: Option<u16>,
    down_headers: Option<HeaderMap>,
    down_body: Vec<u8>,
    timers: Vec<(TimerId, Duration)>,
}

fn drain(fm: &mut FilterManager) -> Out {
    let mut o = Out::default();
    while let Some(e) = fm.next_event() {
        match e {
            StreamEvent::UpstreamHeaders { .. } => o.up_headers = true,
            StreamEvent::UpstreamData { data, .. } => o.up_body.extend(data.to_vec()),
            StreamEvent::DownstreamHeaders { .. } => {
                o.down_headers = fm.response_headers().cloned();
                o.down_status = o.down_headers.as_ref().and_then(|h| h.status());
            }
            StreamEvent::DownstreamData { data, .. } => o.down_body.extend(data.to_vec()),
            StreamEvent::StartTimer { timer, after } => o.timers.push((timer, after)),
            _ => {}
        }
    }
    o
}

fn ctx() -> (FactoryContext, Arc<ManualTime>) {
    let t = Arc::new(ManualTime::new());
    (FactoryContext::manual(t.clone(), 0), t)
}

/// A context whose stats can be read back, as under an HCM `front`.
fn ctx_with_stats() -> (FactoryContext, Arc<ManualTime>, Arc<MemoryStats>) {
    let (ctx, t) = ctx();
    let stats = Arc::new(MemoryStats::default());
    let ctx = FactoryContext { stats: stats.clone(), stats_prefix: "http.front.".into(), ..ctx };
    (ctx, t, stats)
}

#[test]
fn registry_errors_name_the_filter() {
    let (ctx, _) = ctx();
    // The loader itself refuses a non-router filter without typed_config...
    assert!(week1_core::config::load_str::<HttpFilter>("name: my.custom.filter\n").is_err());
    // ...and so does the registry, for a config built in code.
    let f = vec![HttpFilter { name: "my.custom.filter".into(), ..Default::default() }];
    let e = FilterChainFactory::from_config(&f, &ctx).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unsupported: http_filters[0] (filter \"my.custom.filter\" needs a typed_config naming a supported @type)"
    );
    let e = FilterChainFactory::from_config(&filters(&[ROUTER, ROUTER]), &ctx).unwrap_err();
    assert!(e.to_string().starts_with("http_filters[0]: the terminal filter"), "{e}");
    let cors = "name: envoy.filters.http.cors\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors\n";
    let e = FilterChainFactory::from_config(&filters(&[cors]), &ctx).unwrap_err();
    assert!(e.to_string().contains("the last HTTP filter must be the router"), "{e}");
    // Legacy router names need no typed_config.
    let legacy = vec![HttpFilter { name: "envoy.router".into(), ..Default::default() }];
    let chain = FilterChainFactory::from_config(&legacy, &ctx).unwrap();
    assert_eq!(chain.filter_names(), ["envoy.router"]);
    assert!(chain.router_config().is_some());
}

#[test]
fn router_answers_locally_or_lets_the_request_go_upstream() {
    let (ctx, _) = ctx();
    let chain = FilterChainFactory::from_config(&filters(&[ROUTER]), &ctx).unwrap();
    let mut fm = stream(&chain, None);
    fm.decode_headers(req("GET", &[]), true);
    let o = drain(&mut fm);
    assert_eq!((o.down_status, o.up_headers), (Some(404), false));
    assert_eq!(fm.stream_info().response_flags.to_string(), "NR");
    assert_eq!(fm.stream_info().response_code_details.as_deref(), Some("route_not_found"));

    let mut fm = stream(&chain, Some(ResolvedRoute::forward("r", "backend")));
    fm.decode_headers(req("GET", &[]), true);
    assert!(drain(&mut fm).up_headers);
    assert_eq!(fm.stream_info().upstream_cluster.as_deref(), Some("backend"));

    let mut h = HeaderMap::new();
    h.try_insert(":status", "418").unwrap();
    let direct = ResolvedRoute {
        name: "d".into(),
        action: RouteAction::DirectResponse { status: 418, body: "tea".into(), headers: h },
        per_filter: vec![],
        forward: None,
    };
    let mut fm = stream(&chain, Some(direct));
    fm.decode_headers(req("GET", &[]), true);
    let o = drain(&mut fm);
    assert_eq!((o.down_status, &o.down_body[..]), (Some(418), &b"tea"[..]));
}

fn cors_route(policy_yaml: &str) -> ResolvedRoute {
    let p: PerFilterConfig = week1_core::config::load_str(policy_yaml).unwrap();
    let compiler = RouteConfigCompiler::default();
    ResolvedRoute::forward("r", "c")
        .with_filter_config("envoy.filters.http.cors", &p, &compiler)
        .unwrap()
}

const CORS: &str = "name: envoy.filters.http.cors\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors\n";
const POLICY: &str = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy\nallow_origin_string_match: [{suffix: .example.com}]\nallow_methods: GET, POST\nallow_headers: content-type\nexpose_headers: x-trace\nmax_age: \"600\"\nallow_credentials: true\n";

#[test]
fn cors_preflight_is_answered_without_upstream() {
    let (ctx, _) = ctx();
    let chain = FilterChainFactory::from_config(&filters(&[CORS, ROUTER]), &ctx).unwrap();
    let mut fm = stream(&chain, Some(cors_route(POLICY)));
    fm.decode_headers(
        req(
            "OPTIONS",
            &[("origin", "https://app.example.com"), ("access-control-request-method", "POST")],
        ),
        true,
    );
    let o = drain(&mut fm);
    assert!(!o.up_headers, "no upstream call");
    let h = o.down_headers.unwrap();
    assert_eq!(h.status(), Some(200));
    assert_eq!(h.get_str("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(h.get_str("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(h.get_str("access-control-allow-headers"), Some("content-type"));
    assert_eq!(h.get_str("access-control-max-age"), Some("600"));
    assert_eq!(h.get_str("access-control-allow-credentials"), Some("true"));
    assert_eq!(fm.stream_info().response_code_details.as_deref(), Some("cors_response"));

    // Another origin: the preflight goes upstream untouched.
    let mut fm = stream(&chain, Some(cors_route(POLICY)));
    fm.decode_headers(
        req(
            "OPTIONS",
            &[("origin", "https://evil.test"), ("access-control-request-method", "POST")],
        ),
        true,
    );
    assert!(drain(&mut fm).up_headers);
}

#[test]
fn cors_headers_on_actual_requests() {
    let (ctx, _) = ctx();
    let chain = FilterChainFactory::from_config(&filters(&[CORS, ROUTER]), &ctx).unwrap();
    let mut fm = stream(&chain, Some(cors_route(POLICY)));
    fm.decode_headers(req("GET", &[("origin", "https://app.example.com")]), true);
    assert!(drain(&mut fm).up_headers);
    fm.encode_headers(resp(), true);
    let h = drain(&mut fm).down_headers.unwrap();
    assert_eq!(h.get_str("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(h.get_str("access-control-expose-headers"), Some("x-trace"));

    let mut fm = stream(&chain, Some(cors_route(POLICY)));
    fm.decode_headers(req("GET", &[("origin", "https://evil.test")]), true);
    drain(&mut fm);
    fm.encode_headers(resp(), true);
    assert_eq!(drain(&mut fm).down_headers.unwrap().get("access-control-allow-origin"), None);
}

#[test]
fn basic_auth_checks_htpasswd_sha_users() {
    // user:{SHA}base64(sha1("password"))
    let basic = "name: envoy.filters.http.basic_auth\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth\n  users: {inline_string: \"user:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\"}\n  forward_username_header: x-user\n";
    let (ctx, _) = ctx();
    let chain = FilterChainFactory::from_config(&filters(&[basic, ROUTER]), &ctx).unwrap();
    let route = || Some(ResolvedRoute::forward("r", "c"));
    let mut fm = stream(&chain, route());
    fm.decode_headers(req("GET", &[]), true);
    let o = drain(&mut fm);
    assert_eq!(o.down_status, Some(401));
    assert_eq!(o.down_headers.unwrap().get_str("www-authenticate"), Some("Basic realm=\"http\""));
    assert_eq!(
        fm.stream_info().response_code_details.as_deref(),
        Some("no_credential_for_basic_auth")
    );

    // base64("user:password") = dXNlcjpwYXNzd29yZA==
    let mut fm = stream(&chain, route());
    fm.decode_headers(req("GET", &[("authorization", "Basic dXNlcjpwYXNzd29yZA==")]), true);
    assert!(drain(&mut fm).up_headers);
    assert_eq!(fm.request_headers().unwrap().get_str("x-user"), Some("user"));

    // base64("user:wrong") = dXNlcjp3cm9uZw==
    let mut fm = stream(&chain, route());
    fm.decode_headers(req("GET", &[("authorization", "Basic dXNlcjp3cm9uZw==")]), true);
    let o = drain(&mut fm);
    assert_eq!(o.down_status, Some(401));
    assert!(String::from_utf8_lossy(&o.down_body).contains("Invalid username/password"));
}

#[test]
fn bearer_auth_accepts_configured_tokens_only() {
    let bearer = "name: auth\ntyped_config:\n  \"@type\": type.googleapis.com/mini_envoy.filters.http.bearer_auth.v1.BearerAuth\n  tokens: [{subject: alice, token: s3cret}]\n  forward_subject_header: x-subject\n  realm: course\n";
    let (ctx, _) = ctx();
    let chain = FilterChainFactory::from_config(&filters(&[bearer, ROUTER]), &ctx).unwrap();
    let route = || Some(ResolvedRoute::forward("r", "c"));
    let mut fm = stream(&chain, route());
    fm.decode_headers(req("GET", &[("authorization", "Bearer s3cret")]), true);
    assert!(drain(&mut fm).up_headers);
    let h = fm.request_headers().unwrap();
    assert_eq!((h.get_str("x-subject"), h.get("authorization")), (Some("alice"), None));

    for (auth, challenge) in [
        (None, "Bearer realm=\"course\""),
        (Some("Bearer nope"), "Bearer realm=\"course\", error=\"invalid_token\""),
    ] {
        let mut fm = stream(&chain, route());
        let extra: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        fm.decode_headers(req("GET", &extra), true);
        let o = drain(&mut fm);
        assert_eq!(o.down_status, Some(401));
        assert_eq!(o.down_headers.unwrap().get_str("www-authenticate"), Some(challenge));
        assert!(!o.up_headers);
    }
}

#[test]
fn local_ratelimit_answers_429_with_ratelimit_headers() {
    let rl = "name: envoy.filters.http.local_ratelimit\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit\n  stat_prefix: rl\n  token_bucket: {max_tokens: 1, tokens_per_fill: 1, fill_interval: 2s}\n  filter_enabled: {default_value: {numerator: 100}}\n  filter_enforced: {default_value: {numerator: 100}}\n  enable_x_ratelimit_headers: DRAFT_VERSION_03\n  response_headers_to_add: [{header: {key: x-limited, value: \"yes\"}}]\n";
    let (ctx, time, stats) = ctx_with_stats();
    let chain = FilterChainFactory::from_config(&filters(&[rl, ROUTER]), &ctx).unwrap();
    let route = || Some(ResolvedRoute::forward("r", "c"));
    let mut fm = stream(&chain, route());
    fm.decode_headers(req("GET", &[]), true);
    assert!(drain(&mut fm).up_headers);
    fm.encode_headers(resp(), true);
    let h = drain(&mut fm).down_headers.unwrap();
    assert_eq!(h.get_str("x-ratelimit-limit"), Some("1"));
    assert_eq!(h.get_str("x-ratelimit-remaining"), Some("0"));
    assert_eq!(h.get_str("x-ratelimit-reset"), Some("2"));

    let mut fm = stream(&chain, route());
    fm.decode_headers(req("GET", &[]), true);
    let o = drain(&mut fm);
    assert_eq!((o.down_status, o.up_headers), (Some(429), false));
    let h = o.down_headers.unwrap();
    assert_eq!(h.get_str("x-limited"), Some("yes"));
    assert_eq!(h.get_str("x-ratelimit-remaining"), Some("0"));
    assert_eq!(fm.stream_info().response_flags.to_string(), "RL");
    assert_eq!(&o.down_body[..], b"local_rate_limited");

    time.advance(Duration::from_secs(2));
    let mut fm = stream(&chain, route());
    fm.decode_headers(req("GET", &[]), true);
    assert!(drain(&mut fm).up_headers, "refilled");
    let stat = |leaf: &str| stats.counter_value(&format!("rl.http_local_rate_limit.{leaf}"));
    assert_eq!(
        ["enabled", "ok", "rate_limited", "enforced"].map(stat),
        [Some(3), Some(2), Some(1), Some(1)]
    );
}

#[test]
fn local_ratelimit_is_off_by_default() {
    let rl = "name: rl\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit\n  stat_prefix: rl\n  token_bucket: {max_tokens: 1, fill_interval: 60s}\n";
    let (ctx, _, stats) = ctx_with_stats();
    let chain = FilterChainFactory::from_config(&filters(&[rl, ROUTER]), &ctx).unwrap();
    for _ in 0..3 {
        let mut fm = stream(&chain, Some(ResolvedRoute::forward("r", "c")));
        fm.decode_headers(req("GET", &[]), true);
        assert!(drain(&mut fm).up_headers);
    }
    assert_eq!(stats.counter_value("rl.http_local_rate_limit.enabled"), Some(0));
}

#[test]
fn fault_delays_through_a_timer_then_aborts() {
    let fault = "name: envoy.filters.http.fault\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n  delay: {fixed_delay: 0.5s, percentage: {numerator: 100}}\n  abort: {http_status: 503, percentage: {numerator: 100}}\n  max_active_faults: 1\n";
    let (ctx, _, stats) = ctx_with_stats();
    let chain = FilterChainFactory::from_config(&filters(&[fault, ROUTER]), &ctx).unwrap();
    let mut fm = stream(&chain, Some(ResolvedRoute::forward("r", "c")));
    fm.decode_headers(req("POST", &[]), false);
    fm.decode_data(Buffer::from(&b"body"[..]), true);
    let o = drain(&mut fm);
    assert_eq!(o.timers.len(), 1);
    assert_eq!(o.timers[0].1, Duration::from_millis(500));
    assert!(!o.up_headers && o.down_status.is_none(), "held during the delay");
    assert_eq!(stats.gauge_value("http.front.fault.active_faults"), Some(1));
    // A second stream while the first is active: max_active_faults says no fault.
    let mut other = stream(&chain, Some(ResolvedRoute::forward("r", "c")));
    other.decode_headers(req("GET", &[]), true);
    assert!(drain(&mut other).up_headers);
    fm.on_timer(o.timers[0].0);
    let o = drain(&mut fm);
    assert_eq!(o.down_status, Some(503));
    assert_eq!(fm.stream_info().response_flags.to_string(), "DI,FI");
    assert_eq!(fm.stream_info().response_code_details.as_deref(), Some("fault_filter_abort"));
    drop(fm);
    let stat = |leaf: &str| stats.counter_value(&format!("http.front.fault.{leaf}"));
    assert_eq!(
        ["delays_injected", "aborts_injected", "faults_overflow"].map(stat),
        [Some(1), Some(1), Some(1)]
    );
    assert_eq!(stats.gauge_value("http.front.fault.active_faults"), Some(0));
}

#[test]
fn fault_delay_only_then_forwards_the_whole_request() {
    let fault = "name: envoy.filters.http.fault\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n  delay: {fixed_delay: 1s, percentage: {numerator: 100}}\n";
    let (ctx, _) = ctx();
    let chain = FilterChainFactory::from_config(&filters(&[fault, ROUTER]), &ctx).unwrap();
    let mut fm = stream(&chain, Some(ResolvedRoute::forward("r", "c")));
    fm.decode_headers(req("POST", &[]), false);
    fm.decode_data(Buffer::from(&b"ab"[..]), false);
    fm.decode_data(Buffer::from(&b"cd"[..]), true);
    let o = drain(&mut fm);
    assert!(!o.up_headers);
    fm.on_timer(o.timers[0].0);
    let o = drain(&mut fm);
    assert!(o.up_headers);
    assert_eq!(&o.up_body[..], b"abcd");
}

#[test]
fn buffer_filter_collects_the_body_and_limits_it() {
    let buf = "name: envoy.filters.http.buffer\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer\n  max_request_bytes: 4\n";
    let (ctx, _) = ctx();
    let chain = FilterChainFactory::from_config(&filters(&[buf, ROUTER]), &ctx).unwrap();
    let mut fm = stream(&chain, Some(ResolvedRoute::forward("r", "c")));
    fm.decode_headers(req("POST", &[]), false);
    fm.decode_data(Buffer::from(&b"ab"[..]), false);
    assert!(!drain(&mut fm).up_headers);
    fm.decode_data(Buffer::from(&b"c"[..]), true);
    let o = drain(&mut fm);
    assert!(o.up_headers);
    assert_eq!(&o.up_body[..], b"abc");
    assert_eq!(fm.request_headers().unwrap().get_str("content-length"), Some("3"));

    let mut fm = stream(&chain, Some(ResolvedRoute::forward("r", "c")));
    fm.decode_headers(req("POST", &[]), false);
    fm.decode_data(Buffer::from(&b"abc"[..]), false);
    fm.decode_data(Buffer::from(&b"de"[..]), false);
    let o = drain(&mut fm);
    assert_eq!((o.down_status, o.up_headers), (Some(413), false));
}

#[test]
fn header_mutation_applies_rules_in_order() {
    let hm = "name: envoy.filters.http.header_mutation\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation\n  mutations:\n    request_mutations:\n    - remove: x-secret\n    - append: {header: {key: x-from, value: \"%REQ(:authority)%\"}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n    - remove_on_match: {key_matcher: {prefix: x-debug-}}\n    response_mutations:\n    - append: {header: {key: x-served-by, value: mini-envoy}}\n";
    let (ctx, _) = ctx();
    let chain = FilterChainFactory::from_config(&filters(&[hm, ROUTER]), &ctx).unwrap();
    let mut fm = stream(&chain, Some(ResolvedRoute::forward("r", "c")));
    fm.decode_headers(req("GET", &[("x-secret", "1"), ("x-debug-a", "2"), ("x-keep", "3")]), true);
    drain(&mut fm);
    let h = fm.request_headers().unwrap();
    assert_eq!(h.get("x-secret"), None);
    assert_eq!(h.get("x-debug-a"), None);
    assert_eq!(h.get_str("x-keep"), Some("3"));
    assert_eq!(h.get_str("x-from"), Some("example.com"));
    fm.encode_headers(resp(), true);
    assert_eq!(drain(&mut fm).down_headers.unwrap().get_str("x-served-by"), Some("mini-envoy"));
}

#[test]
fn request_log_writes_one_line_per_stream() {
    let log = "name: log\ntyped_config:\n  \"@type\": type.googleapis.com/mini_envoy.filters.http.request_log.v1.RequestLog\n  request_headers: [user-agent]\n";
    let t = Arc::new(ManualTime::new());
    let sink = Arc::new(MemorySink::default());
    let ctx = FactoryContext { log: sink.clone(), ..FactoryContext::manual(t.clone(), 0) };
    let chain = FilterChainFactory::from_config(&filters(&[log, ROUTER]), &ctx).unwrap();
    let cfg = FilterManagerConfig {
        time: t.clone(),
        route_resolver: Some(Arc::new(StaticRouteResolver(Some(Arc::new(
            ResolvedRoute::forward("r", "c"),
        ))))),
        ..Default::default()
    };
    let mut fm = FilterManager::new(chain.create_chain(), &cfg);
    fm.decode_headers(req("GET", &[("user-agent", "curl/8")]), true);
    t.advance(Duration::from_millis(12));
    fm.encode_headers(resp(), false);
    fm.encode_data(Buffer::from(&b"hello"[..]), true);
    drain(&mut fm);
    fm.on_stream_complete();
    assert_eq!(sink.lines(), ["request GET /api 200 - rx=0 tx=5 12ms user-agent=\"curl/8\""]);
}

/// Streams routed by a week 1 router whose per-filter configs were compiled
/// by the registry's compiler when the table was built.
fn routed_stream(
    chain: &FilterChainFactory,
    router: &Arc<week1_core::router::Router>,
) -> FilterManager {
    let (router, names) =
        (router.clone(), chain.filter_names().iter().map(|n| n.to_string()).collect::<Vec<_>>());
    let resolver = route::FnRouteResolver(move |h: &HeaderMap| -> Option<Arc<dyn RouteInfo>> {
        let ctx = week1_core::router::RouteContext::default();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let r = ResolvedRoute::from_decision(&router.route(h, &ctx), h, &ctx, &names)?;
        Some(Arc::new(r))
    });
    let cfg =
        FilterManagerConfig { route_resolver: Some(Arc::new(resolver)), ..Default::default() };
    FilterManager::new(chain.create_chain(), &cfg)
}

fn get(path: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = req("GET", extra);
    h.try_insert(":path", path).unwrap();
    h
}

#[test]
fn local_ratelimit_route_entries_with_identical_configs_have_their_own_buckets() {
    let rl = "name: envoy.filters.http.local_ratelimit\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit\n  stat_prefix: rl\n";
    let per_route = r#"
        envoy.filters.http.local_ratelimit:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: route
          token_bucket: {max_tokens: 1, tokens_per_fill: 1, fill_interval: 60s}
          filter_enabled: {default_value: {numerator: 100}}
          filter_enforced: {default_value: {numerator: 100}}"#;
    let routes: week1_core::config::route::RouteConfiguration = week1_core::config::load_str(&format!(
        "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n  routes:\n  - match: {{prefix: /a}}\n    route: {{cluster: c}}\n    typed_per_filter_config:{per_route}\n  - match: {{prefix: /b}}\n    route: {{cluster: c}}\n    typed_per_filter_config:{per_route}\n"
    ))
    .unwrap();
    let (ctx, _time) = ctx();
    let chain = FilterChainFactory::from_config(&filters(&[rl, ROUTER]), &ctx).unwrap();
    let compiler = RouteConfigCompiler::new(&ctx);
    let router =
        Arc::new(week1_core::router::Router::with_filter_configs(&routes, &compiler).unwrap());
    let status = |path: &str| {
        let mut fm = routed_stream(&chain, &router);
        fm.decode_headers(get(path, &[]), true);
        let o = drain(&mut fm);
        if o.up_headers { 200 } else { o.down_status.unwrap() }
    };
    // One token per route entry: /a's second request is limited, /b still has its own token.
    assert_eq!(status("/a"), 200);
    assert_eq!(status("/a"), 429);
    assert_eq!(status("/b"), 200);
    assert_eq!(status("/b"), 429);
    // The filter's own config (no bucket) applies off the routes.
    assert_eq!(status("/zzz"), 404);
}

#[test]
fn basic_auth_route_users_replace_the_filters() {
    // user:test (filter), admin:test (route /admin).
    let basic = "name: envoy.filters.http.basic_auth\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth\n  users: {inline_string: \"user:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\"}\n";
    let routes: week1_core::config::route::RouteConfiguration = week1_core::config::load_str(
        r#"
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /admin}
    route: {cluster: c}
    typed_per_filter_config:
      envoy.filters.http.basic_auth:
        "@type": type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuthPerRoute
        users: {inline_string: "admin:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M="}
  - match: {prefix: /}
    route: {cluster: c}
"#,
    )
    .unwrap();
    let (ctx, _time) = ctx();
    let chain = FilterChainFactory::from_config(&filters(&[basic, ROUTER]), &ctx).unwrap();
    let router = Arc::new(
        week1_core::router::Router::with_filter_configs(&routes, &RouteConfigCompiler::new(&ctx))
            .unwrap(),
    );
    use base64::Engine;
    let auth = |u: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:test")))
    };
    let passes = |path: &str, user: &str| {
        let mut fm = routed_stream(&chain, &router);
        fm.decode_headers(get(path, &[("authorization", &auth(user))]), true);
        drain(&mut fm).up_headers
    };
    assert!(passes("/x", "user"));
    assert!(!passes("/x", "admin"));
    assert!(passes("/admin", "admin"));
    assert!(!passes("/admin", "user"));
}

#[test]
fn invalid_per_route_configs_fail_when_the_route_table_is_built() {
    let build = |per_route: &str| {
        let routes: week1_core::config::route::RouteConfiguration =
            week1_core::config::load_str(&format!(
                "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n  routes:\n  - match: {{prefix: /}}\n    route: {{cluster: c}}\n  - match: {{prefix: /x}}\n    route: {{cluster: c}}\n    typed_per_filter_config:\n      {per_route}\n"
            ))
            .unwrap();
        week1_core::router::Router::with_filter_configs(&routes, &RouteConfigCompiler::default())
            .map(|_| ())
            .map_err(|e| match e {
                week1_core::router::RouterError::FilterConfig(e) => e.path.unwrap().to_string(),
                other => panic!("{other}"),
            })
    };
    assert_eq!(
        build(
            "auth: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuthPerRoute, users: {inline_string: \"admin:plain\"}}"
        ),
        Err("virtual_hosts[0].routes[1].typed_per_filter_config[\"auth\"]".to_string())
    );
    assert_eq!(
        build(
            "cors: {\"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy, allow_origin_string_match: [{safe_regex: {regex: \"(\"}}]}}"
        ),
        Err("virtual_hosts[0].routes[1].typed_per_filter_config[\"cors\"].config".to_string())
    );
    // An optional wrapper the compiler rejects is ignored.
    assert_eq!(
        build(
            "cors: {\"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, is_optional: true, config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy, allow_origin_string_match: [{safe_regex: {regex: \"(\"}}]}}"
        ),
        Ok(())
    );
    assert_eq!(
        build(
            "cors: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy, allow_methods: GET}"
        ),
        Ok(())
    );
}
