//! Router unit tests: virtual host order, route matching, actions, rewrites.

use proptest::prelude::*;

use super::*;
use crate::config::load_str;

fn router(yaml: &str) -> Router {
    let cfg: RouteConfiguration = load_str(yaml).unwrap_or_else(|e| panic!("{e}"));
    Router::new(&cfg).unwrap()
}

fn req(authority: &str, path: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.try_append(":method", "GET").unwrap();
    h.try_append(":authority", authority).unwrap();
    h.try_append(":path", path).unwrap();
    for (k, v) in extra {
        h.try_append(k, v).unwrap();
    }
    h
}

fn vhost_of(r: &Router, authority: &str) -> Option<String> {
    r.find_virtual_host(authority).map(|v| v.name.clone())
}

fn cluster(d: &RouteDecision<'_>) -> Option<String> {
    match d {
        RouteDecision::Route(f) => Some(f.cluster.to_string()),
        _ => None,
    }
}

const VHOSTS: &str = r#"
virtual_hosts:
- {name: default, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c}}]}
- {name: suffix_short, domains: ["*.com"], routes: []}
- {name: suffix_long, domains: ["*.example.com"], routes: []}
- {name: prefix_short, domains: ["api.*"], routes: []}
- {name: prefix_long, domains: ["api.example.*"], routes: []}
- {name: exact, domains: ["api.example.com", "Port.Example.com:8080", "[::1]"], routes: []}
"#;

#[test]
fn vhost_selection_follows_envoy_order() {
    let r = router(VHOSTS);
    assert_eq!(vhost_of(&r, "api.example.com").as_deref(), Some("exact"));
    assert_eq!(vhost_of(&r, "API.Example.COM").as_deref(), Some("exact"));
    assert_eq!(vhost_of(&r, "www.example.com").as_deref(), Some("suffix_long"));
    assert_eq!(vhost_of(&r, "foo.com").as_deref(), Some("suffix_short"));
    // Suffix wildcards win over prefix wildcards.
    assert_eq!(vhost_of(&r, "api.other.com").as_deref(), Some("suffix_short"));
    assert_eq!(vhost_of(&r, "api.example.org").as_deref(), Some("prefix_long"));
    assert_eq!(vhost_of(&r, "api.org").as_deref(), Some("prefix_short"));
    assert_eq!(vhost_of(&r, "nothing.org").as_deref(), Some("default"));
    // A wildcard must cover at least one character.
    assert_eq!(vhost_of(&r, ".example.com").as_deref(), Some("suffix_short"));
}

#[test]
fn ports_are_stripped_when_the_domain_does_not_match_with_them() {
    let r = router(VHOSTS);
    // With the port, the prefix wildcard "api.example.*" already matches (as in Envoy).
    assert_eq!(vhost_of(&r, "api.example.com:443").as_deref(), Some("prefix_long"));
    assert_eq!(vhost_of(&r, "www.example.com:443").as_deref(), Some("suffix_long"));
    assert_eq!(vhost_of(&r, "port.example.com:8080").as_deref(), Some("exact"));
    assert_eq!(vhost_of(&r, "port.example.com:9090").as_deref(), Some("suffix_long"));
    assert_eq!(vhost_of(&r, "[::1]:80").as_deref(), Some("exact"));
    assert_eq!(vhost_of(&r, "[::1]").as_deref(), Some("exact"));
    assert_eq!(strip_port("::1"), "::1");
    assert_eq!(strip_port("[::1]:80"), "[::1]");
    assert_eq!(strip_port("h:x"), "h:x");
}

#[test]
fn no_default_vhost_means_no_route() {
    let r = router(
        "virtual_hosts: [{name: a, domains: [a.com], routes: [{match: {prefix: /}, route: {cluster: c}}]}]",
    );
    assert!(matches!(
        r.route(&req("b.com", "/", &[]), &RouteContext::default()),
        RouteDecision::NoRoute
    ));
    assert!(matches!(
        r.route(&req("a.com", "/", &[]), &RouteContext::default()),
        RouteDecision::Route(_)
    ));
}

const ROUTES: &str = r#"
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {match: {path: /exact}, route: {cluster: exact}}
  - {match: {prefix: /CI, case_sensitive: false}, route: {cluster: ci}}
  - {match: {safe_regex: {regex: "/re/[0-9]+"}}, route: {cluster: regex}}
  - {match: {path_separated_prefix: /sep}, route: {cluster: sep}}
  - {match: {prefix: /h, headers: [{name: x-v, range_match: {start: 1, end: 10}}]}, route: {cluster: range}}
  - {match: {prefix: /h, headers: [{name: x-v, string_match: {suffix: "-z"}}]}, route: {cluster: suffix}}
  - {match: {prefix: /h, headers: [{name: x-v, present_match: true, invert_match: true}]}, route: {cluster: absent}}
  - {match: {prefix: /q, query_parameters: [{name: debug, string_match: {exact: "1"}}]}, route: {cluster: query}}
  - {match: {prefix: /g, grpc: {}}, route: {cluster: grpc}}
  - {match: {prefix: /rt, runtime_fraction: {default_value: {numerator: 50}}}, route: {cluster: half}}
  - {match: {prefix: /}, route: {cluster: fallback}}
"#;

#[test]
fn each_matcher_kind() {
    let r = router(ROUTES);
    let ctx = RouteContext::default();
    let c = |path: &str, extra: &[(&str, &str)]| {
        cluster(&r.route(&req("x", path, extra), &ctx)).unwrap()
    };
    assert_eq!(c("/exact", &[]), "exact");
    assert_eq!(c("/exact?q=1", &[]), "exact");
    assert_eq!(c("/exactly", &[]), "fallback");
    assert_eq!(c("/ci/x", &[]), "ci");
    assert_eq!(c("/Ci/x", &[]), "ci");
    assert_eq!(c("/re/123", &[]), "regex");
    assert_eq!(c("/re/123?x", &[]), "regex");
    assert_eq!(c("/re/12a", &[]), "fallback");
    assert_eq!(c("/sep", &[]), "sep");
    assert_eq!(c("/sep/x", &[]), "sep");
    assert_eq!(c("/separate", &[]), "fallback");
    assert_eq!(c("/h", &[("x-v", "5")]), "range");
    assert_eq!(c("/h", &[("x-v", "a-z")]), "suffix");
    assert_eq!(c("/h", &[]), "absent");
    assert_eq!(c("/h", &[("x-v", "nope")]), "fallback");
    assert_eq!(c("/q?debug=1", &[]), "query");
    assert_eq!(c("/q?debug=2", &[]), "fallback");
    assert_eq!(c("/g", &[("content-type", "application/grpc+proto")]), "grpc");
    assert_eq!(c("/g", &[("content-type", "application/json")]), "fallback");
    let rt = |random| {
        cluster(&r.route(&req("x", "/rt", &[]), &RouteContext { random_value: random, ..ctx }))
            .unwrap()
    };
    assert_eq!(rt(49), "half");
    assert_eq!(rt(50), "fallback");
    assert_eq!(rt(149), "half");
}

#[test]
fn weighted_clusters_pick_by_random_modulo_total() {
    let r = router(
        r#"virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: /}, route: {weighted_clusters: {clusters: [{name: a, weight: 30}, {name: b, weight: 30}, {name: c, weight: 40}]}}}]}]"#,
    );
    let pick = |random| {
        cluster(&r.route(
            &req("x", "/", &[]),
            &RouteContext { random_value: random, ..Default::default() },
        ))
        .unwrap()
    };
    assert_eq!(pick(0), "a");
    assert_eq!(pick(29), "a");
    assert_eq!(pick(30), "b");
    assert_eq!(pick(60), "c");
    assert_eq!(pick(199), "c");
    assert_eq!(pick(115), "a");
}

#[test]
fn rewrites_timeouts_and_header_mutations() {
    let r = router(
        r#"
request_headers_to_add: [{header: {key: x-level, value: config}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]
virtual_hosts:
- name: v
  domains: ["*"]
  request_headers_to_add: [{header: {key: x-level, value: vhost}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]
  routes:
  - match: {prefix: /old}
    route: {cluster: c, prefix_rewrite: /new, host_rewrite_literal: up.internal, timeout: 0s}
    request_headers_to_add: [{header: {key: x-ip, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}]
  - match: {prefix: /re}
    route: {cluster: c, regex_rewrite: {pattern: {regex: "^/re/(\\w+)/(\\w+)"}, substitution: "/\\2/\\1"}, idle_timeout: 3s}
  - match: {prefix: /}
    route: {cluster: c}
"#,
    );
    let ctx = RouteContext {
        downstream_remote: Some("10.1.2.3:4444".parse().unwrap()),
        ..Default::default()
    };
    let mut h = req("a.com", "/old/x?y=1", &[]);
    let RouteDecision::Route(f) = r.route(&h, &ctx) else { panic!() };
    assert_eq!(f.timeout(), None);
    f.finalize_request_headers(&mut h, &ctx, true);
    assert_eq!(h.path(), Some("/new/x?y=1"));
    assert_eq!(h.authority(), Some("up.internal"));
    assert_eq!(h.get_str("x-envoy-original-path"), Some("/old/x?y=1"));
    assert_eq!(h.get_str("x-ip"), Some("10.1.2.3"));
    // Route config applied last wins by default.
    assert_eq!(h.get_str("x-level"), Some("config"));

    let mut h = req("a.com", "/re/a/b?q", &[]);
    let RouteDecision::Route(f) = r.route(&h, &ctx) else { panic!() };
    assert_eq!(f.idle_timeout(), Some(Duration::from_secs(3)));
    f.finalize_request_headers(&mut h, &ctx, false);
    assert_eq!(h.path(), Some("/b/a?q"));
    assert!(!h.contains("x-envoy-original-path"));

    let h = req("a.com", "/", &[]);
    let RouteDecision::Route(f) = r.route(&h, &ctx) else { panic!() };
    assert_eq!(f.timeout(), Some(Duration::from_secs(15)));
}

#[test]
fn redirects_direct_responses_and_tls() {
    let r = router(
        r#"
virtual_hosts:
- name: secure
  domains: [secure.com]
  require_tls: ALL
  routes: [{match: {prefix: /}, route: {cluster: c}}]
- name: v
  domains: ["*"]
  routes:
  - {match: {prefix: /a}, redirect: {https_redirect: true, port_redirect: 8443, response_code: TEMPORARY_REDIRECT}}
  - {match: {prefix: /b}, redirect: {prefix_rewrite: /c, strip_query: true}}
  - {match: {prefix: /d}, redirect: {path_redirect: /e, host_redirect: other.com}}
  - {match: {prefix: /ping}, direct_response: {status: 200, body: {inline_string: pong}}}
  - {match: {prefix: /hdr}, route: {cluster_header: x-cluster, cluster_not_found_response_code: NOT_FOUND}}
"#,
    );
    let ctx = RouteContext::default();
    let loc = |d: RouteDecision<'_>| match d {
        RouteDecision::Redirect(r) => (r.status, r.location),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        loc(r.route(&req("secure.com", "/x?y", &[]), &ctx)),
        (301, "https://secure.com/x?y".into())
    );
    assert!(matches!(
        r.route(&req("secure.com", "/x", &[("x-forwarded-proto", "https")]), &ctx),
        RouteDecision::Route(_)
    ));
    assert!(matches!(
        r.route(&req("secure.com", "/x", &[]), &RouteContext { tls: true, ..ctx }),
        RouteDecision::Route(_)
    ));
    assert_eq!(
        loc(r.route(&req("h.com:80", "/a?q", &[]), &ctx)),
        (307, "https://h.com:8443/a?q".into())
    );
    assert_eq!(loc(r.route(&req("h.com", "/bx?q", &[]), &ctx)), (301, "http://h.com/cx".into()));
    assert_eq!(
        loc(r.route(&req("h.com", "/d?q", &[]), &ctx)),
        (301, "http://other.com/e?q".into())
    );
    let RouteDecision::DirectResponse(d) = r.route(&req("h.com", "/ping", &[]), &ctx) else {
        panic!()
    };
    assert_eq!((d.status, d.body), (200, "pong"));
    let h = d.response_headers(None, &ctx);
    assert_eq!(h.get_str("content-length"), Some("4"));
    assert_eq!(h.get_str("content-type"), Some("text/plain"));
    let RouteDecision::ClusterNotFound(f) = r.route(&req("h.com", "/hdr", &[]), &ctx) else {
        panic!()
    };
    assert_eq!(f.cluster_not_found_status(), 404);
    assert_eq!(
        cluster(&r.route(&req("h.com", "/hdr", &[("x-cluster", "z")]), &ctx)).as_deref(),
        Some("z")
    );
    let known = |c: &str| c == "y";
    let ctx2 = RouteContext { cluster_exists: Some(&known), ..ctx };
    assert!(matches!(
        r.route(&req("h.com", "/hdr", &[("x-cluster", "z")]), &ctx2),
        RouteDecision::ClusterNotFound(_)
    ));
}

#[test]
fn config_errors_are_reported_with_positions() {
    let bad = |yaml: &str| load_str::<RouteConfiguration>(yaml).unwrap_err().to_string();
    let e = bad(
        "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {safe_regex: {regex: '('}}, route: {cluster: c}}]}]",
    );
    assert!(
        e.contains("virtual_hosts[0].routes[0].match.safe_regex.regex") && e.contains("line 1"),
        "{e}"
    );
    let e = bad(
        "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /, path: /}, route: {cluster: c}}]}]",
    );
    assert!(e.contains("only one of"), "{e}");
    let e = bad(
        "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: c, retry_policy: {retry_on: '5xx,bogus'}}}]}]",
    );
    assert!(e.contains("unknown retry condition \"bogus\""), "{e}");
    let e = bad(
        "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, direct_response: {status: 99}}]}]",
    );
    assert!(e.contains("status"), "{e}");
    let e = bad(
        "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: c}, redirect: {}}]}]",
    );
    assert!(e.contains("only one of"), "{e}");
    let e = bad("virtual_hosts: [{name: v, domains: ['*'], hedge_policy: {}, routes: []}]");
    assert!(e.starts_with("unsupported: virtual_hosts[0].hedge_policy"), "{e}");
    let e = bad("virtual_hosts: [{name: v, domains: ['*', 'a*b'], routes: []}]");
    assert!(e.contains("invalid domain"), "{e}");
    let e = bad(
        "virtual_hosts: [{name: v, domains: ['*'], routes: []}, {name: w, domains: ['*'], routes: []}]",
    );
    assert!(e.contains("already used"), "{e}");
    let e = bad("request_headers_to_add: [{header: {key: x, value: '%BOGUS%'}}]");
    assert!(e.contains("unsupported: header variable"), "{e}");
    let e = bad(
        "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {weighted_clusters: {clusters: [{name: a, weight: 1}], total_weight: 5}}}]}]",
    );
    assert!(e.contains("total_weight"), "{e}");
    let e = bad(
        "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: c, retry_policy: {retry_host_predicate: [{name: x, typed_config: {'@type': type.googleapis.com/envoy.extensions.retry.host.omit_canary_hosts.v3.OmitCanaryHostsPredicate}}]}}}]}]",
    );
    assert!(e.starts_with("unsupported:"), "{e}");
}

#[test]
fn unknown_clusters_are_rejected_when_clusters_are_known() {
    let mut v = crate::config::Validator::new();
    v.known_clusters = Some(["a".to_string()].into());
    let yaml = "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: b}}]}]";
    let e = crate::config::load_str_with::<RouteConfiguration>(yaml, &Default::default(), v)
        .unwrap_err();
    assert!(e.to_string().contains("unknown cluster \"b\""), "{e}");
}

#[test]
fn regex_literal_prefixes_are_conservative() {
    assert_eq!(regex_literal_prefix("/api/v[0-9]/.*"), "/api/v");
    assert_eq!(regex_literal_prefix("^/users/\\d+$"), "/users/");
    assert_eq!(regex_literal_prefix("/ab?c"), "/a");
    assert_eq!(regex_literal_prefix("/a|/b"), "");
    assert_eq!(regex_literal_prefix("/x/(a|b)"), "/x/");
    assert_eq!(regex_literal_prefix("(?i)/abc"), "");
    assert_eq!(regex_literal_prefix("/a\\.b"), "/a.b");
}

#[test]
fn envoy_substitutions_translate() {
    assert_eq!(envoy_substitution("/\\2/\\1$"), "/${2}/${1}$$");
}

proptest! {
    /// Exact domains select the same virtual host whatever order they are declared in.
    #[test]
    fn exact_vhost_selection_is_order_independent(
        names in prop::collection::btree_set("[a-z]{1,6}\\.(com|org)", 1..8),
        seed in any::<u64>(),
    ) {
        let names: Vec<String> = names.into_iter().collect();
        let mut shuffled = names.clone();
        let n = shuffled.len();
        for i in 0..n {
            let j = (seed.rotate_left(i as u32) as usize) % n;
            shuffled.swap(i, j);
        }
        let mk = |list: &[String]| {
            let mut y = String::from("virtual_hosts:\n- {name: wild, domains: ['*.com', '*'], routes: []}\n");
            for d in list {
                y.push_str(&format!("- {{name: '{d}', domains: ['{d}'], routes: []}}\n"));
            }
            router(&y)
        };
        let (a, b) = (mk(&names), mk(&shuffled));
        for d in &names {
            prop_assert_eq!(vhost_of(&a, d), Some(d.clone()));
            prop_assert_eq!(vhost_of(&b, d), Some(d.clone()));
            let upper = d.to_ascii_uppercase() + ":8080";
            prop_assert_eq!(vhost_of(&b, &upper), Some(d.clone()));
        }
        prop_assert_eq!(vhost_of(&a, "zzzzzzz.com"), vhost_of(&b, "zzzzzzz.com"));
    }

    /// The prefix index finds exactly the route a plain in-order scan finds.
    #[test]
    fn index_keeps_first_match_order(
        routes in prop::collection::vec(("/[ab/]{0,18}", 0u8..3, any::<bool>()), 1..12),
        path in "/[abAB/]{0,20}(\\?x=1)?",
    ) {
        let entries: Vec<String> = routes
            .iter()
            .enumerate()
            .map(|(i, (lit, kind, ci))| {
                let m = match kind {
                    0 => format!("prefix: '{lit}'"),
                    1 => format!("path: '{lit}'"),
                    _ => format!("safe_regex: {{regex: '{lit}.*'}}"),
                };
                format!("{{match: {{{m}, case_sensitive: {}}}, route: {{cluster: c{i}}}}}", !ci)
            })
            .collect();
        let cfg = format!("virtual_hosts: [{{name: v, domains: ['*'], routes: [{}]}}]", entries.join(", "));
        let r = router(&cfg);
        let vh = &r.virtual_hosts()[0];
        let headers = req("x", &path, &[]);
        let ctx = RouteContext::default();
        let naive = vh.routes.iter().position(|e| e.matches(&headers, &path, &ctx));
        let indexed = vh.index.first(&path, |i| vh.routes[i].matches(&headers, &path, &ctx));
        prop_assert_eq!(naive, indexed);
    }

    /// The prefilter never rejects a route that would match.
    #[test]
    fn prefilter_agrees_with_the_full_matcher(path in "/[a-cA-C/]{0,20}", lit in "/[a-cA-C/]{0,18}", ci in any::<bool>()) {
        let cfg = format!("virtual_hosts: [{{name: v, domains: ['*'], routes: [{{match: {{prefix: '{lit}', case_sensitive: {}}}, route: {{cluster: c}}}}]}}]", !ci);
        let r = router(&cfg);
        let vh = &r.virtual_hosts()[0];
        let full = vh.routes[0].path.matches(&path, !ci);
        let routed = matches!(r.route(&req("x", &path, &[]), &RouteContext::default()), RouteDecision::Route(_));
        prop_assert_eq!(full, routed);
    }
}

#[test]
fn forward_ref_round_trips_through_the_router() {
    let config: RouteConfiguration = crate::config::load_str(
        r#"
virtual_hosts:
- name: a
  domains: ["a"]
  routes:
  - match: {prefix: /x}
    direct_response: {status: 200}
- name: b
  domains: ["*"]
  virtual_clusters:
  - name: vc
    headers: [{name: ":method", string_match: {exact: POST}}]
  routes:
  - match: {prefix: /one}
    route: {cluster: one, prefix_rewrite: /uno}
  - match: {prefix: /w}
    route:
      weighted_clusters:
        clusters:
        - {name: w1, weight: 1}
        - {name: w2, weight: 1}
"#,
    )
    .unwrap();
    let router = Router::new(&config).unwrap();
    let other = Router::new(&config).unwrap();
    for (path, random) in [("/one/1", 0), ("/w", 0), ("/w", 1)] {
        let mut h = HeaderMap::new();
        h.try_insert(":authority", "b").unwrap();
        h.try_insert(":method", "POST").unwrap();
        h.try_insert(":path", path).unwrap();
        let ctx = RouteContext { random_value: random, ..Default::default() };
        let RouteDecision::Route(f) = router.route(&h, &ctx) else { panic!("{path}") };
        let r = f.to_ref();
        let back = router.forward(&r).unwrap();
        assert_eq!(back.cluster, f.cluster);
        assert!(std::ptr::eq(back.route, f.route));
        assert!(std::ptr::eq(back.vhost, f.vhost));
        assert_eq!(back.weighted.map(|w| &w.name), f.weighted.map(|w| &w.name));
        assert_eq!(back.virtual_cluster, Some("vc"));
        assert_eq!(back.rewritten_path(path), f.rewritten_path(path));
        // A clone of the router holds equal data at other addresses: indices still work.
        assert_eq!(other.forward(&r).unwrap().cluster, f.cluster);
    }
    let bogus = ForwardRef {
        vhost: 0,
        route: 0,
        weighted: None,
        cluster: "x".into(),
        virtual_cluster: None,
    };
    assert!(router.forward(&bogus).is_none(), "a direct-response route is no forward");
}
