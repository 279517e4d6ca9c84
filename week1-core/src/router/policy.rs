//! Per-route policies the router hands to the upstream request: retries
//! (Envoy's `RetryPolicyImpl` + `JitteredExponentialBackOffStrategy`) and
//! consistent-hash keys (Envoy's `HashPolicyImpl`).
//!
//! Both are sans-IO: the caller passes the attempt number and a random value to
//! [`RetryPolicy::backoff`], and the request headers and source IP to
//! [`HashPolicy::compute_hash`].

use std::net::IpAddr;
use std::time::Duration;

use xxhash_rust::xxh64::{Xxh64, xxh64};

use super::RouterError;
use super::matchers::{HeaderMatch, percent_decode};
use crate::config::route::{self as cfg, RETRY_ON_VALUES};
use crate::headers::HeaderMap;

/// Parsed `retry_on` conditions, one bit each (Envoy's `RetryPolicy::RETRY_ON_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RetryOn(u32);

impl RetryOn {
    /// `5xx`: any 5xx response, or a reset / connect failure.
    pub const FIVE_XX: Self = Self(1);
    /// `gateway-error`: 502, 503, 504.
    pub const GATEWAY_ERROR: Self = Self(1 << 1);
    /// `reset`: the upstream reset the stream or did not respond.
    pub const RESET: Self = Self(1 << 2);
    /// `connect-failure`.
    pub const CONNECT_FAILURE: Self = Self(1 << 3);
    /// `retriable-4xx`: 409.
    pub const RETRIABLE_4XX: Self = Self(1 << 4);
    /// `refused-stream`: HTTP/2 REFUSED_STREAM.
    pub const REFUSED_STREAM: Self = Self(1 << 5);
    /// `retriable-status-codes`.
    pub const RETRIABLE_STATUS_CODES: Self = Self(1 << 6);
    /// `retriable-headers`.
    pub const RETRIABLE_HEADERS: Self = Self(1 << 7);
    /// `envoy-ratelimited`.
    pub const ENVOY_RATELIMITED: Self = Self(1 << 8);
    /// `http3-post-connect-failure`.
    pub const HTTP3_POST_CONNECT_FAILURE: Self = Self(1 << 9);
    /// `reset-before-request`.
    pub const RESET_BEFORE_REQUEST: Self = Self(1 << 10);

    /// Parses a comma-separated `retry_on`. gRPC conditions (`cancelled`, ...)
    /// are accepted and kept as no bits here (they apply to `grpc-status`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut bits = 0;
        for cond in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            bits |= match cond {
                "5xx" => Self::FIVE_XX.0,
                "gateway-error" => Self::GATEWAY_ERROR.0,
                "reset" => Self::RESET.0,
                "connect-failure" => Self::CONNECT_FAILURE.0,
                "retriable-4xx" => Self::RETRIABLE_4XX.0,
                "refused-stream" => Self::REFUSED_STREAM.0,
                "retriable-status-codes" => Self::RETRIABLE_STATUS_CODES.0,
                "retriable-headers" => Self::RETRIABLE_HEADERS.0,
                "envoy-ratelimited" => Self::ENVOY_RATELIMITED.0,
                "http3-post-connect-failure" => Self::HTTP3_POST_CONNECT_FAILURE.0,
                "reset-before-request" => Self::RESET_BEFORE_REQUEST.0,
                c if RETRY_ON_VALUES.contains(&c) => 0,
                c => return Err(format!("unknown retry condition {c:?}")),
            };
        }
        Ok(Self(bits))
    }

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
}

/// Why an upstream attempt failed without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The connection could not be established.
    ConnectFailure,
    /// The stream was reset or the connection closed before a response.
    Reset,
    /// HTTP/2 REFUSED_STREAM.
    RefusedStream,
}

/// Envoy's default retry back-off base interval.
pub const DEFAULT_BASE_INTERVAL: Duration = Duration::from_millis(25);

/// A route's retry policy, ready to use.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The conditions.
    pub retry_on: RetryOn,
    /// How many retries (default 1).
    pub num_retries: u32,
    /// Per-attempt timeout.
    pub per_try_timeout: Option<Duration>,
    /// Per-attempt idle timeout.
    pub per_try_idle_timeout: Option<Duration>,
    /// Back-off base (default 25ms).
    pub base_interval: Duration,
    /// Back-off cap (default 10 × base).
    pub max_interval: Duration,
    /// Statuses for `retriable-status-codes`.
    pub retriable_status_codes: Vec<u16>,
    /// Response header matchers for `retriable-headers`.
    pub retriable_headers: Vec<HeaderMatch>,
    /// Request header matchers that must match for retries to happen at all.
    pub retriable_request_headers: Vec<HeaderMatch>,
    /// Avoid previously tried hosts (the `previous_hosts` predicate).
    pub avoid_previous_hosts: bool,
    /// Host selection attempts per retry (default 1).
    pub host_selection_retry_max_attempts: u32,
}

impl RetryPolicy {
    /// Compiles the config policy.
    pub fn compile(p: &cfg::RetryPolicy) -> Result<Self, RouterError> {
        let retry_on = RetryOn::parse(&p.retry_on).map_err(RouterError::Invalid)?;
        let base = p.retry_back_off.as_ref().and_then(|b| b.base_interval).map(|d| d.get());
        let base_interval = base.unwrap_or(DEFAULT_BASE_INTERVAL);
        let max_interval = p
            .retry_back_off
            .as_ref()
            .and_then(|b| b.max_interval)
            .map(|d| d.get())
            .unwrap_or(base_interval * 10);
        let compile_all = |ms: &[cfg::HeaderMatcher]| -> Result<Vec<HeaderMatch>, RouterError> {
            ms.iter().map(HeaderMatch::compile).collect()
        };
        Ok(Self {
            retry_on,
            num_retries: p.num_retries.unwrap_or(1),
            per_try_timeout: p.per_try_timeout.filter(|d| !d.is_zero()).map(|d| d.get()),
            per_try_idle_timeout: p.per_try_idle_timeout.filter(|d| !d.is_zero()).map(|d| d.get()),
            base_interval,
            max_interval,
            retriable_status_codes: p.retriable_status_codes.iter().map(|&c| c as u16).collect(),
            retriable_headers: compile_all(&p.retriable_headers)?,
            retriable_request_headers: compile_all(&p.retriable_request_headers)?,
            avoid_previous_hosts: !p.retry_host_predicate.is_empty(),
            host_selection_retry_max_attempts: p
                .host_selection_retry_max_attempts
                .clamp(1, i64::from(u32::MAX))
                as u32,
        })
    }

    // ANCHOR: backoff
    /// The wait before retry number `attempt` (1 for the first retry), with
    /// full jitter as Envoy's `JitteredExponentialBackOffStrategy`: the interval
    /// doubles from `base_interval` up to `max_interval`, and the wait is
    /// `random % interval` (in milliseconds).
    pub fn backoff(&self, attempt: u32, random: u64) -> Duration {
        let base = self.base_interval.as_millis().max(1) as u64;
        let max = (self.max_interval.as_millis() as u64).max(base);
        let shift = attempt.saturating_sub(1).min(63);
        let interval = base.checked_mul(1u64 << shift).map_or(max, |i| i.min(max));
        Duration::from_millis(random % interval)
    }
    // ANCHOR_END: backoff

    /// Whether the request may be retried at all (`retriable_request_headers`).
    pub fn request_is_retriable(&self, request: &HeaderMap) -> bool {
        self.retriable_request_headers.is_empty()
            || self.retriable_request_headers.iter().any(|m| m.matches(request))
    }

    /// Whether a response with `status` (and `headers`) should be retried.
    pub fn retry_on_response(&self, status: u16, headers: &HeaderMap) -> bool {
        let on = |f| self.retry_on.contains(f);
        (on(RetryOn::FIVE_XX) && (500..600).contains(&status))
            || (on(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504))
            || (on(RetryOn::RETRIABLE_4XX) && status == 409)
            || (on(RetryOn::RETRIABLE_STATUS_CODES)
                && self.retriable_status_codes.contains(&status))
            || (on(RetryOn::ENVOY_RATELIMITED) && headers.contains("x-envoy-ratelimited"))
            || (on(RetryOn::RETRIABLE_HEADERS)
                && self.retriable_headers.iter().any(|m| m.matches(headers)))
    }

    /// Whether an attempt that failed without a response should be retried.
    pub fn retry_on_reset(&self, reason: ResetReason) -> bool {
        let on = |f| self.retry_on.contains(f);
        match reason {
            ResetReason::ConnectFailure => {
                on(RetryOn::CONNECT_FAILURE)
                    || on(RetryOn::FIVE_XX)
                    || on(RetryOn::GATEWAY_ERROR)
                    || on(RetryOn::RESET)
            }
            ResetReason::Reset => {
                on(RetryOn::RESET) || on(RetryOn::FIVE_XX) || on(RetryOn::GATEWAY_ERROR)
            }
            ResetReason::RefusedStream => on(RetryOn::REFUSED_STREAM) || on(RetryOn::RESET),
        }
    }
}

#[derive(Debug, Clone)]
enum HashMethod {
    Header { name: String, rewrite: Option<(regex::Regex, String)> },
    Cookie { name: String },
    SourceIp,
    Query { name: String },
}

/// One `hash_policy` entry.
#[derive(Debug, Clone)]
struct HashEntry {
    method: HashMethod,
    terminal: bool,
}

/// A route's hash policies (Envoy's `HashPolicyImpl`).
#[derive(Debug, Clone, Default)]
pub struct HashPolicy {
    entries: Vec<HashEntry>,
}

impl HashPolicy {
    /// Compiles the config's `hash_policy` list.
    pub fn compile(policies: &[cfg::HashPolicy]) -> Result<Self, RouterError> {
        let mut entries = Vec::new();
        for p in policies {
            let method = if let Some(h) = &p.header {
                let rewrite = match &h.regex_rewrite {
                    Some(r) => Some((
                        r.compile().map_err(|e| RouterError::Regex {
                            regex: r.pattern.regex.clone(),
                            error: e.to_string(),
                        })?,
                        super::envoy_substitution(&r.substitution),
                    )),
                    None => None,
                };
                HashMethod::Header { name: h.header_name.to_ascii_lowercase(), rewrite }
            } else if let Some(c) = &p.cookie {
                HashMethod::Cookie { name: c.name.clone() }
            } else if p.connection_properties.as_ref().is_some_and(|c| c.source_ip) {
                HashMethod::SourceIp
            } else if let Some(q) = &p.query_parameter {
                HashMethod::Query { name: q.name.clone() }
            } else {
                continue;
            };
            entries.push(HashEntry { method, terminal: p.terminal });
        }
        Ok(Self { entries })
    }

    /// Whether there are no policies.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    // ANCHOR: compute_hash
    /// The request's hash key for ring hash / Maglev, or `None` when no policy
    /// produced one. Each policy hashes with xxHash64 (seed 0); results are
    /// combined as Envoy does (`rotl(hash, 1) ^ new`), and a `terminal` policy
    /// that produced a hash stops the walk. A cookie policy whose cookie is
    /// absent produces nothing (mini-envoy does not generate cookies).
    pub fn compute_hash(&self, headers: &HeaderMap, source_ip: Option<IpAddr>) -> Option<u64> {
        let mut hash: Option<u64> = None;
        for e in &self.entries {
            if let Some(new) = Self::evaluate(&e.method, headers, source_ip) {
                let old = hash.map_or(0, |h| h.rotate_left(1));
                hash = Some(old ^ new);
            }
            if e.terminal && hash.is_some() {
                break;
            }
        }
        hash
    }
    // ANCHOR_END: compute_hash

    fn evaluate(m: &HashMethod, headers: &HeaderMap, source_ip: Option<IpAddr>) -> Option<u64> {
        match m {
            HashMethod::Header { name, rewrite } => {
                let mut values: Vec<String> = headers
                    .get_all(name)
                    .map(|v| {
                        let v = v.to_str_lossy();
                        match rewrite {
                            Some((re, sub)) => re.replace_all(&v, sub.as_str()).into_owned(),
                            None => v.into_owned(),
                        }
                    })
                    .collect();
                if values.is_empty() {
                    return None;
                }
                // The same hash whatever the order of the values.
                values.sort();
                let mut h = Xxh64::new(0);
                for v in &values {
                    h.update(v.as_bytes());
                }
                Some(h.digest())
            }
            HashMethod::Cookie { name } => headers.get_all("cookie").find_map(|v| {
                let v = v.to_str_lossy();
                v.split(';').find_map(|kv| {
                    let (k, val) = kv.trim().split_once('=')?;
                    (k == name).then(|| xxh64(val.trim_matches('"').as_bytes(), 0))
                })
            }),
            HashMethod::SourceIp => source_ip.map(|ip| xxh64(ip.to_string().as_bytes(), 0)),
            HashMethod::Query { name } => {
                let path = headers.path()?;
                let query = path.split_once('?')?.1;
                query.split('&').find_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (percent_decode(k) == name.as_str()).then(|| xxh64(v.as_bytes(), 0))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::Duration as CfgDuration;

    fn policy(retry_on: &str) -> RetryPolicy {
        RetryPolicy::compile(&cfg::RetryPolicy { retry_on: retry_on.into(), ..Default::default() })
            .unwrap()
    }

    #[test]
    fn retry_defaults_follow_envoy() {
        let p = policy("5xx");
        assert_eq!(p.num_retries, 1);
        assert_eq!(p.base_interval, Duration::from_millis(25));
        assert_eq!(p.max_interval, Duration::from_millis(250));
        let custom = RetryPolicy::compile(&cfg::RetryPolicy {
            retry_back_off: Some(cfg::RetryBackOff {
                base_interval: Some(CfgDuration::from_millis(100)),
                max_interval: None,
            }),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(custom.max_interval, Duration::from_secs(1));
    }

    #[test]
    fn backoff_doubles_with_full_jitter_up_to_the_cap() {
        let p = policy("5xx");
        assert_eq!(p.backoff(1, 24), Duration::from_millis(24));
        assert_eq!(p.backoff(1, 25), Duration::ZERO);
        assert_eq!(p.backoff(2, 49), Duration::from_millis(49));
        assert_eq!(p.backoff(3, 99), Duration::from_millis(99));
        // 25 * 2^4 = 400 > 250: capped.
        assert_eq!(p.backoff(5, 249), Duration::from_millis(249));
        assert_eq!(p.backoff(5, 250), Duration::ZERO);
        assert_eq!(p.backoff(200, u64::MAX), Duration::from_millis(u64::MAX % 250));
        for r in 0..1000u64 {
            assert!(p.backoff(7, r.wrapping_mul(7919)) < p.max_interval);
        }
    }

    #[test]
    fn retry_conditions() {
        let h = HeaderMap::new();
        let p = policy("gateway-error,retriable-4xx");
        assert!(p.retry_on_response(503, &h));
        assert!(!p.retry_on_response(500, &h));
        assert!(p.retry_on_response(409, &h));
        assert!(p.retry_on_reset(ResetReason::ConnectFailure));
        assert!(!p.retry_on_reset(ResetReason::RefusedStream));
        let p = RetryPolicy::compile(&cfg::RetryPolicy {
            retry_on: "retriable-status-codes".into(),
            retriable_status_codes: vec![418],
            ..Default::default()
        })
        .unwrap();
        assert!(p.retry_on_response(418, &h));
        assert!(!p.retry_on_response(503, &h));
        assert!(RetryOn::parse("5xx, bogus").is_err());
        assert!(RetryOn::parse("5xx,cancelled").unwrap().contains(RetryOn::FIVE_XX));
    }

    #[test]
    fn hashes_are_xxhash64_and_combine_like_envoy() {
        let mut h = HeaderMap::new();
        h.try_append(":path", "/x?user=bob").unwrap();
        h.try_append("x-user", "alice").unwrap();
        h.try_append("cookie", "a=1; session=abc").unwrap();
        let one = |p: cfg::HashPolicy| HashPolicy::compile(&[p]).unwrap();
        let header = cfg::HashPolicy {
            header: Some(cfg::HashHeader { header_name: "X-User".into(), regex_rewrite: None }),
            ..Default::default()
        };
        assert_eq!(one(header.clone()).compute_hash(&h, None), Some(xxh64(b"alice", 0)));
        let cookie = cfg::HashPolicy {
            cookie: Some(cfg::HashCookie { name: "session".into(), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(one(cookie).compute_hash(&h, None), Some(xxh64(b"abc", 0)));
        let query = cfg::HashPolicy {
            query_parameter: Some(cfg::HashQueryParameter { name: "user".into() }),
            ..Default::default()
        };
        assert_eq!(one(query).compute_hash(&h, None), Some(xxh64(b"bob", 0)));
        let ip = cfg::HashPolicy {
            connection_properties: Some(cfg::HashConnectionProperties { source_ip: true }),
            ..Default::default()
        };
        let addr: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(one(ip.clone()).compute_hash(&h, Some(addr)), Some(xxh64(b"10.0.0.1", 0)));
        assert_eq!(one(ip.clone()).compute_hash(&h, None), None);
        let both = HashPolicy::compile(&[header.clone(), ip.clone()]).unwrap();
        let a = xxh64(b"alice", 0);
        assert_eq!(
            both.compute_hash(&h, Some(addr)),
            Some(a.rotate_left(1) ^ xxh64(b"10.0.0.1", 0))
        );
        let terminal =
            HashPolicy::compile(&[cfg::HashPolicy { terminal: true, ..header }, ip]).unwrap();
        assert_eq!(terminal.compute_hash(&h, Some(addr)), Some(a));
        // Value order does not change the hash.
        let mut h2 = HeaderMap::new();
        h2.try_append("x-user", "b").unwrap();
        h2.try_append("x-user", "a").unwrap();
        let p = HashPolicy::compile(&[cfg::HashPolicy {
            header: Some(cfg::HashHeader { header_name: "x-user".into(), regex_rewrite: None }),
            ..Default::default()
        }])
        .unwrap();
        assert_eq!(p.compute_hash(&h2, None), Some(xxh64(b"ab", 0)));
    }
}
