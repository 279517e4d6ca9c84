//! # `envoy.filters.http.basic_auth`
//!
//! Envoy's Basic authentication filter: users come from an htpasswd text
//! (`user:{SHA}base64(sha1(password))`, the only hash Envoy accepts), a
//! request must carry `Authorization: Basic base64(user:password)` (or the
//! configured `authentication_header`) of one of them, otherwise the answer
//! is 401 with `WWW-Authenticate: Basic realm="http"`. The user name can be
//! forwarded upstream (`forward_username_header`); a route can replace the
//! users (`BasicAuthPerRoute`).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use sha1::{Digest, Sha1};
use week1_core::config::filters::{BasicAuth, BasicAuthPerRoute};
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue};

use super::{constant_time_eq, read_data_source};
use crate::http::stream_info::details;
use crate::http::{FilterCallbacks, FilterHeadersStatus, StreamDecoderFilter, StreamFilterBase};

/// Users: name → SHA-1 of the password.
pub type Users = HashMap<String, [u8; 20]>;

/// Parses htpasswd `{SHA}` lines.
pub fn parse_htpasswd(text: &str) -> Result<Users, String> {
    let mut users = Users::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected user:{{SHA}}hash", n + 1))?;
        let b64 = hash
            .strip_prefix("{SHA}")
            .ok_or_else(|| format!("line {}: only {{SHA}} hashes are supported", n + 1))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| format!("line {}: the hash is not base64", n + 1))?;
        let digest: [u8; 20] =
            raw.try_into().map_err(|_| format!("line {}: a SHA-1 hash has 20 bytes", n + 1))?;
        if users.insert(user.to_string(), digest).is_some() {
            return Err(format!("line {}: user {user:?} appears twice", n + 1));
        }
    }
    Ok(users)
}

/// The compiled filter config.
#[derive(Debug)]
pub struct BasicAuthConfig {
    users: Users,
    header: String,
    forward_username_header: Option<HeaderName>,
}

impl BasicAuthConfig {
    /// Reads and parses the users.
    pub fn new(c: &BasicAuth) -> Result<Self, String> {
        let users =
            parse_htpasswd(&read_data_source(c.users.as_ref().ok_or("users must be set")?)?)?;
        Ok(Self {
            users,
            header: if c.authentication_header.is_empty() {
                "authorization".into()
            } else {
                c.authentication_header.to_ascii_lowercase()
            },
            forward_username_header: (!c.forward_username_header.is_empty())
                .then(|| HeaderName::try_from(c.forward_username_header.as_str()))
                .transpose()
                .map_err(|e| e.to_string())?,
        })
    }
}

/// A route's `BasicAuthPerRoute`, its users read and parsed when the route
/// table is built (no users: the filter's apply).
#[derive(Debug)]
pub struct BasicAuthRouteConfig {
    users: Option<Users>,
}

impl BasicAuthRouteConfig {
    /// Reads and parses the route's users.
    pub fn new(c: &BasicAuthPerRoute) -> Result<Self, String> {
        let users = c.users.as_ref().map(read_data_source).transpose()?;
        Ok(Self { users: users.as_deref().map(parse_htpasswd).transpose()? })
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denied {
    Missing,
    Scheme,
    Invalid,
}

fn check(users: &Users, value: Option<&str>) -> Result<String, Denied> {
    let value = value.ok_or(Denied::Missing)?;
    let (scheme, rest) = value.trim().split_once(' ').ok_or(Denied::Scheme)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Denied::Scheme);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| Denied::Invalid)?;
    let text = String::from_utf8(decoded).map_err(|_| Denied::Invalid)?;
    let (user, password) = text.split_once(':').ok_or(Denied::Invalid)?;
    let expected = users.get(user).ok_or(Denied::Invalid)?;
    let got: [u8; 20] = Sha1::digest(password.as_bytes()).into();
    if constant_time_eq(&got, expected) { Ok(user.to_string()) } else { Err(Denied::Invalid) }
}

/// The filter of one stream.
#[derive(Debug)]
pub struct BasicAuthFilter {
    config: Arc<BasicAuthConfig>,
}

impl BasicAuthFilter {
    /// A filter for one stream.
    pub fn new(config: Arc<BasicAuthConfig>) -> Self {
        Self { config }
    }
}

impl StreamFilterBase for BasicAuthFilter {}

impl StreamDecoderFilter for BasicAuthFilter {
    fn decode_headers(
        &mut self,
        headers: &mut HeaderMap,
        _end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        let route = cb.per_filter_config::<BasicAuthRouteConfig>();
        let users = route.as_ref().and_then(|r| r.users.as_ref()).unwrap_or(&self.config.users);
        match check(users, headers.get_str(&self.config.header)) {
            Ok(user) => {
                if let Some(h) = &self.config.forward_username_header
                    && let Ok(v) = HeaderValue::try_from(user.as_str())
                {
                    headers.insert(h.clone(), v);
                }
                cb.stream_info_mut().set_filter_state("basic_auth.username", user);
                FilterHeadersStatus::Continue
            }
            Err(why) => {
                let (body, detail) = match why {
                    Denied::Missing => (
                        "User authentication failed. Missing username and password.",
                        details::NO_CREDENTIAL_FOR_BASIC_AUTH,
                    ),
                    Denied::Scheme => (
                        "User authentication failed. Expected 'Basic' authentication scheme.",
                        details::INVALID_CREDENTIAL_FOR_BASIC_AUTH,
                    ),
                    Denied::Invalid => (
                        "User authentication failed. Invalid username/password combination.",
                        details::INVALID_CREDENTIAL_FOR_BASIC_AUTH,
                    ),
                };
                cb.send_local_reply(
                    401,
                    body,
                    |h| {
                        h.insert(
                            HeaderName::from_static("www-authenticate"),
                            HeaderValue::from_static("Basic realm=\"http\""),
                        )
                    },
                    detail,
                );
                FilterHeadersStatus::StopIteration
            }
        }
    }
}
