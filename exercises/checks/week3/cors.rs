//! Checks of `cors`.

use week1_core::headers::HeaderMap;

use super::week3::cors::{Cors, CorsAction, CorsPolicy};

fn policy() -> CorsPolicy {
    CorsPolicy {
        allow_origins: vec!["https://app.example.com".into()],
        allow_methods: "GET, POST, PUT".into(),
        allow_headers: "content-type, x-token".into(),
        max_age: Some(600),
        allow_credentials: true,
    }
}

fn request(method: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.try_insert(":method", method).unwrap();
    h.try_insert(":path", "/api").unwrap();
    h.try_insert(":authority", "api.example.com").unwrap();
    for (n, v) in extra {
        h.try_insert(n, v).unwrap();
    }
    h
}

fn response() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.try_insert(":status", "200").unwrap();
    h
}

const ORIGIN: (&str, &str) = ("origin", "https://app.example.com");
const PREFLIGHT: (&str, &str) = ("access-control-request-method", "PUT");

checks! {
    fn answers_an_allowed_preflight_locally() {
        let mut f = Cors::new(policy());
        let CorsAction::Respond(reply) = f.on_request_headers(&request("OPTIONS", &[ORIGIN, PREFLIGHT])) else {
            panic!("an allowed preflight is answered by the filter");
        };
        assert_eq!(reply.get_str(":status"), Some("200"));
        assert_eq!(reply.get_str("access-control-allow-origin"), Some("https://app.example.com"));
        assert_eq!(reply.get_str("access-control-allow-methods"), Some("GET, POST, PUT"));
        assert_eq!(reply.get_str("access-control-allow-headers"), Some("content-type, x-token"));
        assert_eq!(reply.get_str("access-control-max-age"), Some("600"));
        assert_eq!(reply.get_str("access-control-allow-credentials"), Some("true"));
        let mut minimal = Cors::new(CorsPolicy { allow_origins: vec!["*".into()], ..CorsPolicy::default() });
        let CorsAction::Respond(reply) = minimal.on_request_headers(&request("OPTIONS", &[("origin", "https://x.test"), PREFLIGHT])) else {
            panic!("`*` allows any origin");
        };
        assert_eq!(reply.get_str("access-control-allow-origin"), Some("https://x.test"));
        assert!(!reply.contains("access-control-max-age") && !reply.contains("access-control-allow-credentials"));
        assert!(!reply.contains("access-control-allow-methods"));
    }

    fn decorates_the_response_of_an_allowed_actual_request() {
        let mut f = Cors::new(policy());
        assert!(matches!(f.on_request_headers(&request("POST", &[ORIGIN])), CorsAction::Continue));
        let mut resp = response();
        f.on_response_headers(&mut resp);
        assert_eq!(resp.get_str("access-control-allow-origin"), Some("https://app.example.com"));
        assert_eq!(resp.get_str("access-control-allow-credentials"), Some("true"));
        // An OPTIONS without Access-Control-Request-Method is an actual request.
        let mut f = Cors::new(policy());
        assert!(matches!(f.on_request_headers(&request("OPTIONS", &[ORIGIN])), CorsAction::Continue));
    }

    fn leaves_other_origins_and_same_origin_requests_alone() {
        for extra in [&[("origin", "https://evil.test"), PREFLIGHT][..], &[("origin", "https://evil.test")], &[]] {
            for method in ["OPTIONS", "GET"] {
                let mut f = Cors::new(policy());
                assert!(matches!(f.on_request_headers(&request(method, extra)), CorsAction::Continue), "{method} {extra:?}");
                let mut resp = response();
                f.on_response_headers(&mut resp);
                assert_eq!(resp.len(), 1, "no CORS header for {method} {extra:?}");
            }
        }
    }
}
