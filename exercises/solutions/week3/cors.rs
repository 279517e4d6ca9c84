//! Reference solution of `cors`. The real filter
//! (`week3_filters::http::filters::cors`) takes per-route policies with
//! string matchers and `filter_enabled` fractions.

use week1_core::headers::HeaderMap;

/// The route's CORS policy (a subset of Envoy's `CorsPolicy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Exact origins allowed; `*` allows any.
    pub allow_origins: Vec<String>,
    /// `access-control-allow-methods`, e.g. `GET, POST`.
    pub allow_methods: String,
    /// `access-control-allow-headers`, e.g. `content-type, x-token`.
    pub allow_headers: String,
    /// `access-control-max-age` in seconds.
    pub max_age: Option<u32>,
    /// `access-control-allow-credentials: true`.
    pub allow_credentials: bool,
}

/// What the filter does with a request.
#[derive(Debug)]
pub enum CorsAction {
    /// Let it go on to the next filter.
    Continue,
    /// Answer it here with these response headers.
    Respond(HeaderMap),
}

/// The CORS filter of one stream.
#[derive(Debug)]
pub struct Cors {
    policy: CorsPolicy,
    /// The allowed origin of this stream's actual request.
    origin: Option<String>,
}

impl Cors {
    /// A filter for one stream under `policy`.
    pub fn new(policy: CorsPolicy) -> Self {
        Self { policy, origin: None }
    }

    fn allowed(&self, origin: &str) -> bool {
        self.policy.allow_origins.iter().any(|o| o == "*" || o == origin)
    }

    /// The request headers.
    pub fn on_request_headers(&mut self, headers: &HeaderMap) -> CorsAction {
        let Some(origin) = headers.get_str("origin").filter(|o| self.allowed(o)) else {
            return CorsAction::Continue;
        };
        let preflight = headers.method() == Some("OPTIONS")
            && headers.contains("access-control-request-method");
        if !preflight {
            self.origin = Some(origin.to_string());
            return CorsAction::Continue;
        }
        let p = &self.policy;
        let mut reply = HeaderMap::new();
        let mut set = |name: &str, value: &str| {
            // Values come from a validated request or the operator's policy;
            // one that is not a valid header value is left out.
            let _ = reply.try_insert(name, value);
        };
        set(":status", "200");
        set("access-control-allow-origin", origin);
        if !p.allow_methods.is_empty() {
            set("access-control-allow-methods", &p.allow_methods);
        }
        if !p.allow_headers.is_empty() {
            set("access-control-allow-headers", &p.allow_headers);
        }
        if let Some(age) = p.max_age {
            set("access-control-max-age", &age.to_string());
        }
        if p.allow_credentials {
            set("access-control-allow-credentials", "true");
        }
        CorsAction::Respond(reply)
    }

    /// The response headers of the same stream.
    pub fn on_response_headers(&mut self, headers: &mut HeaderMap) {
        let Some(origin) = self.origin.take() else { return };
        let _ = headers.try_insert("access-control-allow-origin", &origin);
        if self.policy.allow_credentials {
            let _ = headers.try_insert("access-control-allow-credentials", "true");
        }
    }
}
