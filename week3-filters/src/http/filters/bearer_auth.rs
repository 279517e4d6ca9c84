//! # `mini_envoy.filters.http.bearer_auth`: the course's authentication filter
//!
//! A request must carry `Authorization: Bearer <token>` (RFC 6750) with one
//! of the configured tokens. Tokens are kept as SHA-1 digests and compared
//! in constant time. On success the token's subject can be forwarded upstream
//! (and the credentials are then stripped); otherwise 401 with
//! `WWW-Authenticate: Bearer realm="…"` (plus `error="invalid_token"` when a
//! token was sent but is not accepted).

use std::sync::Arc;

use sha1::{Digest, Sha1};
use week1_core::config::filters::BearerAuth;
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue};

use super::constant_time_eq;
use crate::http::stream_info::details;
use crate::http::{FilterCallbacks, FilterHeadersStatus, StreamDecoderFilter, StreamFilterBase};

/// The compiled config.
#[derive(Debug)]
pub struct BearerAuthConfig {
    tokens: Vec<([u8; 20], String)>,
    header: String,
    forward_subject_header: Option<HeaderName>,
    challenge: HeaderValue,
    challenge_invalid: HeaderValue,
}

impl BearerAuthConfig {
    /// Compiles the config.
    pub fn new(c: &BearerAuth) -> Result<Self, String> {
        if c.tokens.is_empty() {
            return Err("tokens must not be empty".into());
        }
        let realm = if c.realm.is_empty() { "mini-envoy" } else { c.realm.as_str() };
        let value = |s: String| HeaderValue::try_from(s).map_err(|e| e.to_string());
        Ok(Self {
            tokens: c
                .tokens
                .iter()
                .map(|t| (Sha1::digest(t.token.as_bytes()).into(), t.subject.clone()))
                .collect(),
            header: if c.authentication_header.is_empty() {
                "authorization".into()
            } else {
                c.authentication_header.to_ascii_lowercase()
            },
            forward_subject_header: (!c.forward_subject_header.is_empty())
                .then(|| HeaderName::try_from(c.forward_subject_header.as_str()))
                .transpose()
                .map_err(|e| e.to_string())?,
            challenge: value(format!("Bearer realm=\"{realm}\""))?,
            challenge_invalid: value(format!("Bearer realm=\"{realm}\", error=\"invalid_token\""))?,
        })
    }

    /// The subject of a token, if accepted (every token is compared).
    pub fn subject(&self, token: &str) -> Option<&str> {
        let digest: [u8; 20] = Sha1::digest(token.as_bytes()).into();
        let mut found = None;
        for (d, subject) in &self.tokens {
            if constant_time_eq(d, &digest) {
                found = Some(subject.as_str());
            }
        }
        found
    }
}

/// The filter of one stream.
#[derive(Debug)]
pub struct BearerAuthFilter {
    config: Arc<BearerAuthConfig>,
}

impl BearerAuthFilter {
    /// A filter for one stream.
    pub fn new(config: Arc<BearerAuthConfig>) -> Self {
        Self { config }
    }
}

impl StreamFilterBase for BearerAuthFilter {}

impl StreamDecoderFilter for BearerAuthFilter {
    fn decode_headers(
        &mut self,
        headers: &mut HeaderMap,
        _end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        let c = &self.config;
        let token = headers.get_str(&c.header).and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
        });
        let subject = token.as_deref().and_then(|t| c.subject(t)).map(str::to_string);
        match subject {
            Some(subject) => {
                if let Some(h) = &c.forward_subject_header {
                    headers.remove(&c.header);
                    if let Ok(v) = HeaderValue::try_from(subject.as_str()) {
                        headers.insert(h.clone(), v);
                    }
                }
                cb.stream_info_mut().set_filter_state("bearer_auth.subject", subject);
                FilterHeadersStatus::Continue
            }
            None => {
                let challenge =
                    if token.is_some() { c.challenge_invalid.clone() } else { c.challenge.clone() };
                cb.send_local_reply(
                    401,
                    "Unauthorized",
                    |h| h.insert(HeaderName::from_static("www-authenticate"), challenge),
                    details::BEARER_AUTH_DENIED,
                );
                FilterHeadersStatus::StopIteration
            }
        }
    }
}
