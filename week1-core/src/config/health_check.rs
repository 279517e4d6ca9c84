//! `envoy.config.core.v3.HealthCheck`: active health checking of a cluster's hosts.
//!
//! Loaded here from a cluster's `health_checks`; mini-envoy's health checker
//! (main thread) runs HTTP and TCP checks and publishes host health to workers.

use serde::Deserialize;

use super::types::{Duration, HeaderValueOption, StringMatcher};
use super::validate::{Validate, Validator};

/// `envoy.type.v3.Int64Range`: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Int64Range {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

/// `envoy.type.v3.CodecClientType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CodecClientType {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 (not supported).
    Http2,
    /// HTTP/3 (not supported).
    Http3,
}

/// `HealthCheck.Payload`: one of `text` (hex) or `binary`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Payload {
    /// Hex-encoded bytes.
    pub text: Option<String>,
    /// Bytes (base64 in JSON).
    pub binary: Option<String>,
}

impl Payload {
    /// The bytes of a `text` payload.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        let t = self.text.as_deref()?;
        if t.len() % 2 != 0 {
            return None;
        }
        (0..t.len()).step_by(2).map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok()).collect()
    }
}

impl Validate for Payload {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "payload",
            &[("text", self.text.is_some()), ("binary", self.binary.is_some())],
            true,
        );
        if let Some(t) = &self.text
            && (t.is_empty() || self.bytes().is_none())
        {
            v.error("text", format!("{t:?} is not non-empty hex"));
        }
        if self.binary.is_some() {
            v.unsupported("binary", "use text (hex)");
        }
    }
}

/// `HealthCheck.HttpHealthCheck`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpHealthCheck {
    /// `host` header (default: the cluster name).
    pub host: String,
    /// Request path (required).
    pub path: String,
    /// Request body (not supported).
    pub send: Option<Payload>,
    /// Expected response body bytes (not supported).
    pub receive: Vec<Payload>,
    /// Largest response body read (not supported).
    pub response_buffer_size: Option<u64>,
    /// Headers added to the check request.
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Headers removed from the check request.
    pub request_headers_to_remove: Vec<String>,
    /// Healthy statuses, `[start, end)` ranges (default 200 only).
    pub expected_statuses: Vec<Int64Range>,
    /// Statuses that count as degraded-but-passing (not supported).
    pub retriable_statuses: Vec<Int64Range>,
    /// Protocol of the check (HTTP1 only).
    pub codec_client_type: CodecClientType,
    /// Match the `x-envoy-upstream-healthchecked-cluster` response header (not supported).
    pub service_name_matcher: Option<StringMatcher>,
    /// Request method (default GET).
    pub method: Option<String>,
}

impl Validate for HttpHealthCheck {
    fn validate(&self, v: &mut Validator) {
        if self.path.is_empty() {
            v.error("path", "must not be empty");
        } else if !self.path.starts_with('/') {
            v.error("path", format!("{:?} must start with '/'", self.path));
        }
        if self.send.is_some() {
            v.unsupported("send", "HTTP checks send no body");
        }
        if !self.receive.is_empty() {
            v.unsupported("receive", "HTTP checks look at the status only");
        }
        if self.response_buffer_size.is_some() {
            v.unsupported("response_buffer_size", "HTTP checks look at the status only");
        }
        if !self.retriable_statuses.is_empty() {
            v.unsupported("retriable_statuses", "use expected_statuses");
        }
        if self.service_name_matcher.is_some() {
            v.unsupported("service_name_matcher", "checks look at the status only");
        }
        if self.codec_client_type != CodecClientType::Http1 {
            v.unsupported("codec_client_type", "health checks use HTTP1");
        }
        if let Some(m) = &self.method
            && !matches!(
                m.as_str(),
                "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS" | "TRACE" | "PATCH"
            )
        {
            v.error("method", format!("{m:?} is not an allowed method"));
        }
        v.each("request_headers_to_add", &self.request_headers_to_add);
        v.field("expected_statuses", |v| {
            for (i, r) in self.expected_statuses.iter().enumerate() {
                if !(100..=600).contains(&r.start)
                    || !(100..=600).contains(&r.end)
                    || r.start >= r.end
                {
                    v.index(i, |v| {
                        v.error_here(format!(
                            "[{}, {}) is not a status range within [100, 600) with start < end",
                            r.start, r.end
                        ))
                    });
                }
            }
        });
    }
}

impl HttpHealthCheck {
    /// Whether `status` counts as healthy (default: 200 only).
    pub fn is_expected(&self, status: u16) -> bool {
        if self.expected_statuses.is_empty() {
            return status == 200;
        }
        let s = i64::from(status);
        self.expected_statuses.iter().any(|r| r.start <= s && s < r.end)
    }
}

/// `HealthCheck.TcpHealthCheck`: connect, optionally send and expect bytes.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpHealthCheck {
    /// Bytes to send (unset: connect only).
    pub send: Option<Payload>,
    /// Byte blocks that must all appear in the response.
    pub receive: Vec<Payload>,
    /// Proxy protocol (not supported).
    pub proxy_protocol_config: Option<serde_json::Value>,
}

impl Validate for TcpHealthCheck {
    fn validate(&self, v: &mut Validator) {
        v.child("send", &self.send);
        v.each("receive", &self.receive);
        if self.proxy_protocol_config.is_some() {
            v.unsupported("proxy_protocol_config", "the PROXY protocol is not supported");
        }
    }
}

/// `envoy.config.core.v3.HealthCheck`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheck {
    /// Time for one check to answer (required, > 0).
    pub timeout: Option<Duration>,
    /// Time between checks (required, > 0).
    pub interval: Option<Duration>,
    /// Extra random delay added to the first check.
    pub initial_jitter: Option<Duration>,
    /// Extra random delay added to each interval.
    pub interval_jitter: Option<Duration>,
    /// Extra random delay as a percentage of the interval.
    pub interval_jitter_percent: u32,
    /// Failures before a host is unhealthy (required).
    pub unhealthy_threshold: Option<u32>,
    /// Successes before a host is healthy again (required).
    pub healthy_threshold: Option<u32>,
    /// Alternative port (not supported: use the endpoint's health_check_config).
    pub alt_port: Option<u32>,
    /// Re-use the connection between checks (default true).
    pub reuse_connection: Option<bool>,
    /// HTTP check.
    pub http_health_check: Option<HttpHealthCheck>,
    /// TCP check.
    pub tcp_health_check: Option<TcpHealthCheck>,
    /// gRPC check (not supported).
    pub grpc_health_check: Option<serde_json::Value>,
    /// Custom check (not supported).
    pub custom_health_check: Option<serde_json::Value>,
    /// Interval while the cluster has no traffic (default 60s).
    pub no_traffic_interval: Option<Duration>,
    /// Interval for hosts never seen healthy while idle (default: no_traffic_interval).
    pub no_traffic_healthy_interval: Option<Duration>,
    /// Interval for unhealthy hosts (default: interval).
    pub unhealthy_interval: Option<Duration>,
    /// Interval right after a host turns unhealthy (default: unhealthy_interval).
    pub unhealthy_edge_interval: Option<Duration>,
    /// Interval right after a host turns healthy (default: interval).
    pub healthy_edge_interval: Option<Duration>,
    /// Deprecated event log file (not supported).
    pub event_log_path: String,
    /// Event loggers (not supported).
    pub event_logger: Vec<serde_json::Value>,
    /// Event service (not supported).
    pub event_service: Option<serde_json::Value>,
    /// Log every failure, not just the first.
    pub always_log_health_check_failures: bool,
    /// Log every success (with event logs only; not supported).
    pub always_log_health_check_success: bool,
    /// TLS options (not supported).
    pub tls_options: Option<serde_json::Value>,
    /// Transport socket match criteria (not supported).
    pub transport_socket_match_criteria: Option<serde_json::Value>,
}

impl HealthCheck {
    /// Interval while the cluster has had no traffic (default 60s).
    pub fn no_traffic_interval(&self) -> std::time::Duration {
        self.no_traffic_interval.map_or(std::time::Duration::from_secs(60), Duration::get)
    }

    /// Interval for unhealthy hosts (default: `interval`).
    pub fn unhealthy_interval(&self) -> std::time::Duration {
        self.unhealthy_interval.or(self.interval).unwrap_or_default().get()
    }
}

fn positive(v: &mut Validator, name: &str, d: Option<Duration>, required: bool) {
    match d {
        None if required => v.error(name, "must be set"),
        Some(d) if d.is_zero() => v.error(name, "must be greater than 0"),
        _ => {}
    }
}

impl Validate for HealthCheck {
    fn validate(&self, v: &mut Validator) {
        positive(v, "timeout", self.timeout, true);
        positive(v, "interval", self.interval, true);
        for (name, d) in [
            ("no_traffic_interval", self.no_traffic_interval),
            ("no_traffic_healthy_interval", self.no_traffic_healthy_interval),
            ("unhealthy_interval", self.unhealthy_interval),
            ("unhealthy_edge_interval", self.unhealthy_edge_interval),
            ("healthy_edge_interval", self.healthy_edge_interval),
        ] {
            positive(v, name, d, false);
        }
        if self.unhealthy_threshold.is_none() {
            v.error("unhealthy_threshold", "must be set");
        }
        if self.healthy_threshold.is_none() {
            v.error("healthy_threshold", "must be set");
        }
        if self.interval_jitter_percent > 100 {
            v.error(
                "interval_jitter_percent",
                format!("{} is more than 100", self.interval_jitter_percent),
            );
        }
        v.oneof(
            "health_checker",
            &[
                ("http_health_check", self.http_health_check.is_some()),
                ("tcp_health_check", self.tcp_health_check.is_some()),
                ("grpc_health_check", self.grpc_health_check.is_some()),
                ("custom_health_check", self.custom_health_check.is_some()),
            ],
            true,
        );
        v.child("http_health_check", &self.http_health_check);
        v.child("tcp_health_check", &self.tcp_health_check);
        for (name, set, hint) in [
            (
                "grpc_health_check",
                self.grpc_health_check.is_some(),
                "use http_health_check or tcp_health_check",
            ),
            (
                "custom_health_check",
                self.custom_health_check.is_some(),
                "use http_health_check or tcp_health_check",
            ),
            (
                "alt_port",
                self.alt_port.is_some(),
                "set health_check_config.port_value on endpoints",
            ),
            (
                "event_log_path",
                !self.event_log_path.is_empty(),
                "health events go to the log and stats",
            ),
            (
                "event_logger",
                !self.event_logger.is_empty(),
                "health events go to the log and stats",
            ),
            (
                "event_service",
                self.event_service.is_some(),
                "health events go to the log and stats",
            ),
            ("tls_options", self.tls_options.is_some(), "TLS is not supported"),
            (
                "transport_socket_match_criteria",
                self.transport_socket_match_criteria.is_some(),
                "TLS is not supported",
            ),
        ] {
            if set {
                v.unsupported(name, hint);
            }
        }
    }
}
