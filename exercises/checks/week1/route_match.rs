//! Checks of `route_match`.

use week1_core::config::load_str;
use week1_core::config::route::RouteConfiguration;
use week1_core::headers::HeaderMap;
use week1_core::router::Router;

use super::week1::route_match::{
    HeaderMatch, PathMatch, Route, VirtualHost, find_virtual_host, route,
};

fn vh(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
    }
}

fn r(path: PathMatch, headers: &[(&str, &str)], cluster: &str) -> Route {
    Route {
        path,
        headers: headers
            .iter()
            .map(|(n, v)| HeaderMatch { name: n.to_string(), value: v.to_string() })
            .collect(),
        cluster: cluster.into(),
    }
}

fn domains() -> Vec<VirtualHost> {
    vec![
        vh("default", &["*"], vec![]),
        vh("prefix", &["api.*"], vec![]),
        vh("long-prefix", &["api.example.*"], vec![]),
        vh("suffix", &["*.example.com"], vec![]),
        vh("long-suffix", &["*.eu.example.com"], vec![]),
        vh("exact", &["www.example.com", "example.com"], vec![]),
    ]
}

fn pick(authority: &str) -> String {
    find_virtual_host(&domains(), authority).map(|v| v.name.clone()).unwrap_or_default()
}

fn request(authority: &str, path: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.try_insert(":method", "GET").unwrap();
    h.try_insert(":authority", authority).unwrap();
    h.try_insert(":path", path).unwrap();
    for (n, v) in extra {
        h.try_insert(n, v).unwrap();
    }
    h
}

/// `domains()` as an Envoy route configuration, for mini-envoy's own router.
const DOMAINS_YAML: &str = r#"
name: local
virtual_hosts:
- { name: default, domains: ["*"] }
- { name: prefix, domains: ["api.*"] }
- { name: long-prefix, domains: ["api.example.*"] }
- { name: suffix, domains: ["*.example.com"] }
- { name: long-suffix, domains: ["*.eu.example.com"] }
- { name: exact, domains: ["www.example.com", "example.com"] }
"#;

checks! {
    fn exact_then_suffix_then_prefix_then_default() {
        assert_eq!(pick("www.example.com"), "exact");
        assert_eq!(pick("api.example.com"), "suffix"); // suffix beats prefix
        assert_eq!(pick("a.eu.example.com"), "long-suffix"); // longest suffix
        assert_eq!(pick("api.example.org"), "long-prefix"); // longest prefix
        assert_eq!(pick("api.other"), "prefix");
        assert_eq!(pick("nothing.test"), "default");
    }

    fn wildcards_cover_at_least_one_character_and_case_is_ignored() {
        assert_eq!(pick(".example.com"), "default");
        assert_eq!(pick("WWW.Example.COM"), "exact");
        assert!(find_virtual_host(&[vh("only", &["a.com"], vec![])], "b.com").is_none());
    }

    fn a_port_is_tried_with_then_without() {
        assert_eq!(pick("www.example.com:8080"), "exact");
        let vhs = vec![vh("with-port", &["www.example.com:8080"], vec![]), vh("bare", &["www.example.com"], vec![])];
        assert_eq!(find_virtual_host(&vhs, "www.example.com:8080").unwrap().name, "with-port");
        assert_eq!(find_virtual_host(&vhs, "www.example.com:9090").unwrap().name, "bare");
    }

    fn the_first_matching_route_wins() {
        let vhs = vec![vh(
            "app",
            &["*"],
            vec![
                r(PathMatch::Path("/login".into()), &[], "auth"),
                r(PathMatch::Prefix("/api".into()), &[("x-canary", "1")], "api-canary"),
                r(PathMatch::Prefix("/api".into()), &[], "api"),
                r(PathMatch::Prefix("/".into()), &[], "web"),
            ],
        )];
        let cluster = |path: &str, extra: &[(&str, &str)]| {
            route(&vhs, &request("app.test", path, extra)).map(|r| r.cluster.clone())
        };
        assert_eq!(cluster("/login", &[]).as_deref(), Some("auth"));
        assert_eq!(cluster("/login?next=/", &[]).as_deref(), Some("auth"));
        assert_eq!(cluster("/login/x", &[]).as_deref(), Some("web"));
        assert_eq!(cluster("/api/users", &[("x-canary", "1")]).as_deref(), Some("api-canary"));
        assert_eq!(cluster("/api/users", &[("x-canary", "2")]).as_deref(), Some("api"));
        assert_eq!(cluster("/", &[]).as_deref(), Some("web"));
        let none = vec![vh("app", &["app.test"], vec![r(PathMatch::Prefix("/api".into()), &[], "api")])];
        assert!(route(&none, &request("app.test", "/web", &[])).is_none());
        assert!(route(&none, &request("other.test", "/api", &[])).is_none());
    }

    fn agrees_with_mini_envoys_router() {
        let config: RouteConfiguration = load_str(DOMAINS_YAML).expect("a valid route configuration");
        let router = Router::new(&config).expect("a router");
        for authority in [
            "www.example.com", "EXAMPLE.com", "example.com:443", "api.example.com", "x.eu.example.com",
            "eu.example.com", ".example.com", "api.example.org", "api.example.", "api.", "api.x:80",
            "nothing", "www.example.com:8080", "a.b.example.com:1",
        ] {
            let real = router.find_virtual_host(authority).map(|v| v.name.clone()).unwrap_or_default();
            assert_eq!(pick(authority), real, "authority {authority:?}");
        }
    }
}
