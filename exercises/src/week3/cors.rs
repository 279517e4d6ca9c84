//! # Exercise `cors`: a CORS filter (week 3, day 3)
//!
//! Browsers ask before sending a cross-origin request with custom methods or
//! headers: a *preflight* `OPTIONS` request carrying `Origin` and
//! `Access-Control-Request-Method`. Envoy's CORS filter answers preflights
//! itself, without bothering the upstream, and decorates the responses to
//! actual cross-origin requests. Build it on week 1's real [`HeaderMap`].
//!
//! ## Task
//!
//! [`Cors::on_request_headers`] (decoder side), for a request with `origin`
//! allowed by the policy (exactly one of `allow_origins`, or `*` in the list):
//!
//! - a preflight (`:method` `OPTIONS` and an `access-control-request-method`
//!   header) is answered locally: return [`CorsAction::Respond`] with headers
//!   `:status: 200`, `access-control-allow-origin: <the origin>`,
//!   `access-control-allow-methods`, `access-control-allow-headers` (each
//!   only if the policy's string is not empty), `access-control-max-age`
//!   (if set) and `access-control-allow-credentials: true` (if allowed);
//! - any other request continues ([`CorsAction::Continue`]), and
//!   [`Cors::on_response_headers`] (encoder side, same stream) later adds
//!   `access-control-allow-origin: <the origin>` and, if allowed,
//!   `access-control-allow-credentials: true` to the response.
//!
//! Requests without `origin`, or from an origin not allowed, continue
//! untouched, and their responses get no CORS header (the browser then
//! blocks the page from reading them).
//!
//! Run `cargo run -p exercises -- verify cors`.

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
    // Suggested state: the allowed origin of this stream's actual request.
}

impl Cors {
    /// A filter for one stream under `policy`.
    pub fn new(policy: CorsPolicy) -> Self {
        todo!()
    }

    /// The request headers.
    pub fn on_request_headers(&mut self, headers: &HeaderMap) -> CorsAction {
        todo!()
    }

    /// The response headers of the same stream.
    pub fn on_response_headers(&mut self, headers: &mut HeaderMap) {
        todo!()
    }
}
