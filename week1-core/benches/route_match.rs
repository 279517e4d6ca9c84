//! Route matching over a 1,000-route table, miss-heavy (issue 2 §6: < 2 µs).
//!
//! One virtual host with 1,000 routes: a quarter each of prefixes, exact
//! paths, safe_regex paths and prefixes with a header matcher, in that
//! rotation, and no catch-all. Requests mostly miss or match one of the last
//! routes, so every lookup walks (nearly) the whole table.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use week1_core::config::route::{
    HeaderMatcher, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use week1_core::config::types::{RegexMatcher, StringMatcher};
use week1_core::headers::HeaderMap;
use week1_core::router::{RouteContext, RouteDecision, Router};

fn table(n: usize) -> RouteConfiguration {
    let routes = (0..n)
        .map(|i| {
            let mut m = RouteMatch::default();
            match i % 4 {
                0 => m.prefix = Some(format!("/api/v1/svc{i}/")),
                1 => m.path = Some(format!("/api/v2/svc{i}/status")),
                2 => {
                    m.safe_regex = Some(RegexMatcher {
                        regex: format!("/api/v3/svc{i}/items/[0-9]+"),
                        ..Default::default()
                    })
                }
                _ => {
                    m.prefix = Some(format!("/api/v1/tenant{i}/"));
                    m.headers = vec![HeaderMatcher {
                        name: "x-tenant".into(),
                        string_match: Some(StringMatcher {
                            exact: Some(format!("t{i}")),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }];
                }
            }
            Route {
                name: format!("r{i}"),
                r#match: m,
                route: Some(RouteAction { cluster: format!("c{}", i % 50), ..Default::default() }),
                ..Default::default()
            }
        })
        .collect();
    RouteConfiguration {
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn request(path: &str, tenant: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.try_append(":method", "GET").unwrap();
    h.try_append(":authority", "api.example.com").unwrap();
    h.try_append(":path", path).unwrap();
    h.try_append("user-agent", "bench").unwrap();
    if let Some(t) = tenant {
        h.try_append("x-tenant", t).unwrap();
    }
    h
}

fn bench(c: &mut Criterion) {
    let router = Router::new(&table(1000)).unwrap();
    // 6 misses, 3 late hits.
    let requests = [
        (request("/api/v4/unknown/path", None), false),
        (request("/api/v1/svc1000/x", None), false),
        (request("/api/v3/svc998/items/abc", None), false),
        (request("/api/v1/tenant999/x", Some("t1")), false),
        (request("/static/app.js", None), false),
        (request("/api/v2/svc997/status/extra", None), false),
        (request("/api/v3/svc998/items/42", None), true),
        (request("/api/v1/tenant999/orders", Some("t999")), true),
        (request("/api/v2/svc997/status?x=1", None), true),
    ];
    let ctx = RouteContext::default();
    for (req, hit) in &requests {
        assert_eq!(matches!(router.route(req, &ctx), RouteDecision::Route(_)), *hit, "{req:?}");
    }
    c.bench_function("route_match/1000_routes_miss_heavy", |b| {
        let mut i = 0;
        b.iter(|| {
            let (req, _) = &requests[i % requests.len()];
            i += 1;
            black_box(matches!(router.route(black_box(req), &ctx), RouteDecision::Route(_)))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
