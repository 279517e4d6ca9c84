//! # StreamInfo: what happened to one request
//!
//! Envoy's `StreamInfo::StreamInfo`: start time, the timings of the first and
//! last bytes in each direction, bytes counted, the response code and its
//! *details* (why this code), the *response flags* (Envoy's short codes such as
//! `NR`, `UH`, `UF`, `RL` that access logs print for `%RESPONSE_FLAGS%`), the
//! upstream host and cluster and the route name. The FilterManager fills what
//! it sees (bytes, downstream timings, response code), filters and the router
//! fill the rest through [`FilterCallbacks::stream_info_mut`](crate::http::FilterCallbacks::stream_info_mut),
//! and the access log reads it when the stream completes.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

// ANCHOR: response_flags
/// Envoy's response flags, in Envoy's order (which is the order access logs
/// print them in), each with its short code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResponseFlag {
    /// `LH`: the local health check failed.
    FailedLocalHealthCheck,
    /// `UH`: no healthy upstream host.
    NoHealthyUpstream,
    /// `UT`: upstream request timeout.
    UpstreamRequestTimeout,
    /// `LR`: the connection was reset locally.
    LocalReset,
    /// `UR`: the upstream reset the connection.
    UpstreamRemoteReset,
    /// `UF`: the upstream connection failed.
    UpstreamConnectionFailure,
    /// `UC`: the upstream connection terminated.
    UpstreamConnectionTermination,
    /// `UO`: upstream overflow (circuit breaking).
    UpstreamOverflow,
    /// `NR`: no route found.
    NoRouteFound,
    /// `DI`: a delay was injected (fault filter).
    DelayInjected,
    /// `FI`: an abort was injected (fault filter).
    FaultInjected,
    /// `RL`: rate limited locally.
    RateLimited,
    /// `UAEX`: an external authorization service denied the request.
    UnauthorizedExternalService,
    /// `RLSE`: the rate limit service failed.
    RateLimitServiceError,
    /// `DC`: the downstream connection terminated.
    DownstreamConnectionTermination,
    /// `URX`: the upstream retry limit was exceeded.
    UpstreamRetryLimitExceeded,
    /// `SI`: the stream idle timeout fired.
    StreamIdleTimeout,
    /// `IH`: invalid `x-envoy-*` request headers.
    InvalidEnvoyRequestHeaders,
    /// `DPE`: downstream protocol error.
    DownstreamProtocolError,
    /// `UMSDR`: the upstream max stream duration was reached.
    UpstreamMaxStreamDurationReached,
    /// `RFCF`: the response came from the cache filter.
    ResponseFromCacheFilter,
    /// `NFCF`: no filter config found (ECDS).
    NoFilterConfigFound,
    /// `DT`: a duration timeout (max stream / connection duration).
    DurationTimeout,
    /// `UPE`: upstream protocol error.
    UpstreamProtocolError,
    /// `NC`: no cluster found for the route.
    NoClusterFound,
    /// `OM`: the overload manager rejected the request.
    OverloadManager,
    /// `DF`: DNS resolution failed.
    DnsResolutionFailed,
    /// `DO`: dropped by the cluster's drop overload.
    DropOverLoad,
    /// `DR`: the downstream reset the stream.
    DownstreamRemoteReset,
    /// `UDO`: unconditional drop overload.
    UnconditionalDropOverload,
}

impl ResponseFlag {
    /// Every flag, in Envoy's order.
    pub const ALL: [ResponseFlag; 30] = {
        use ResponseFlag::*;
        [
            FailedLocalHealthCheck,
            NoHealthyUpstream,
            UpstreamRequestTimeout,
            LocalReset,
            UpstreamRemoteReset,
            UpstreamConnectionFailure,
            UpstreamConnectionTermination,
            UpstreamOverflow,
            NoRouteFound,
            DelayInjected,
            FaultInjected,
            RateLimited,
            UnauthorizedExternalService,
            RateLimitServiceError,
            DownstreamConnectionTermination,
            UpstreamRetryLimitExceeded,
            StreamIdleTimeout,
            InvalidEnvoyRequestHeaders,
            DownstreamProtocolError,
            UpstreamMaxStreamDurationReached,
            ResponseFromCacheFilter,
            NoFilterConfigFound,
            DurationTimeout,
            UpstreamProtocolError,
            NoClusterFound,
            OverloadManager,
            DnsResolutionFailed,
            DropOverLoad,
            DownstreamRemoteReset,
            UnconditionalDropOverload,
        ]
    };

    /// The short code printed by `%RESPONSE_FLAGS%`.
    pub fn short_code(self) -> &'static str {
        use ResponseFlag::*;
        match self {
            FailedLocalHealthCheck => "LH",
            NoHealthyUpstream => "UH",
            UpstreamRequestTimeout => "UT",
            LocalReset => "LR",
            UpstreamRemoteReset => "UR",
            UpstreamConnectionFailure => "UF",
            UpstreamConnectionTermination => "UC",
            UpstreamOverflow => "UO",
            NoRouteFound => "NR",
            DelayInjected => "DI",
            FaultInjected => "FI",
            RateLimited => "RL",
            UnauthorizedExternalService => "UAEX",
            RateLimitServiceError => "RLSE",
            DownstreamConnectionTermination => "DC",
            UpstreamRetryLimitExceeded => "URX",
            StreamIdleTimeout => "SI",
            InvalidEnvoyRequestHeaders => "IH",
            DownstreamProtocolError => "DPE",
            UpstreamMaxStreamDurationReached => "UMSDR",
            ResponseFromCacheFilter => "RFCF",
            NoFilterConfigFound => "NFCF",
            DurationTimeout => "DT",
            UpstreamProtocolError => "UPE",
            NoClusterFound => "NC",
            OverloadManager => "OM",
            DnsResolutionFailed => "DF",
            DropOverLoad => "DO",
            DownstreamRemoteReset => "DR",
            UnconditionalDropOverload => "UDO",
        }
    }

    /// The flag of a short code.
    pub fn from_short_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.short_code() == code)
    }
}

/// A set of [`ResponseFlag`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResponseFlags(u32);

impl ResponseFlags {
    /// No flag.
    pub const EMPTY: Self = Self(0);

    /// Adds a flag.
    pub fn insert(&mut self, flag: ResponseFlag) {
        self.0 |= 1 << flag as u8;
    }

    /// Whether a flag is set.
    pub fn contains(self, flag: ResponseFlag) -> bool {
        self.0 & (1 << flag as u8) != 0
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags set, in Envoy's order.
    pub fn iter(self) -> impl Iterator<Item = ResponseFlag> {
        ResponseFlag::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

/// `%RESPONSE_FLAGS%`: the short codes joined by commas, `-` when none.
impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (i, flag) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(flag.short_code())?;
        }
        Ok(())
    }
}

impl fmt::Debug for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseFlags({self})")
    }
}
// ANCHOR_END: response_flags

/// Envoy's response code details (`%RESPONSE_CODE_DETAILS%`) used here.
pub mod details {
    /// The response came from the upstream.
    pub const VIA_UPSTREAM: &str = "via_upstream";
    /// A route's `direct_response`.
    pub const DIRECT_RESPONSE: &str = "direct_response";
    /// No route matched.
    pub const ROUTE_NOT_FOUND: &str = "route_not_found";
    /// The route's cluster does not exist.
    pub const CLUSTER_NOT_FOUND: &str = "cluster_not_found";
    /// The request body outgrew the buffer limit.
    pub const REQUEST_PAYLOAD_TOO_LARGE: &str = "request_payload_too_large";
    /// The response body outgrew the buffer limit.
    pub const RESPONSE_PAYLOAD_TOO_LARGE: &str = "response_payload_too_large";
    /// The local rate limit filter refused the request.
    pub const LOCAL_RATE_LIMITED: &str = "local_rate_limited";
    /// The fault filter aborted the request.
    pub const FAULT_FILTER_ABORT: &str = "fault_filter_abort";
    /// The CORS filter answered a preflight.
    pub const CORS_RESPONSE: &str = "cors_response";
    /// Basic auth: no credentials.
    pub const NO_CREDENTIAL_FOR_BASIC_AUTH: &str = "no_credential_for_basic_auth";
    /// Basic auth: wrong credentials.
    pub const INVALID_CREDENTIAL_FOR_BASIC_AUTH: &str = "invalid_credential_for_basic_auth";
    /// Bearer auth: no or wrong token.
    pub const BEARER_AUTH_DENIED: &str = "bearer_auth_denied";
    /// A redirect answered by the router.
    pub const REDIRECT: &str = "redirect";
}

/// Downstream connection facts a stream can see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection's id (unique per process).
    pub id: u64,
    /// The peer's address.
    pub remote_address: Option<SocketAddr>,
    /// The local address the connection was accepted on.
    pub local_address: Option<SocketAddr>,
}

/// What happened to one stream (Envoy's `StreamInfo`). Timings are offsets
/// from [`start`](Self::start), as Envoy's `DownstreamTiming`.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Wall-clock start (`%START_TIME%`).
    pub start_time: SystemTime,
    /// Monotonic start.
    pub start: Instant,
    /// The whole request was received.
    pub last_downstream_rx_byte_received: Option<Duration>,
    /// The request headers were sent upstream.
    pub first_upstream_tx_byte_sent: Option<Duration>,
    /// The whole request was sent upstream.
    pub last_upstream_tx_byte_sent: Option<Duration>,
    /// The response headers arrived from upstream (set by the router).
    pub first_upstream_rx_byte_received: Option<Duration>,
    /// The whole response arrived from upstream (set by the router).
    pub last_upstream_rx_byte_received: Option<Duration>,
    /// The response headers went to the codec.
    pub first_downstream_tx_byte_sent: Option<Duration>,
    /// The whole response went to the codec.
    pub last_downstream_tx_byte_sent: Option<Duration>,
    /// The stream ended (`%DURATION%`).
    pub completed: Option<Duration>,
    /// Request body bytes received (`%BYTES_RECEIVED%`).
    pub bytes_received: u64,
    /// Response body bytes sent (`%BYTES_SENT%`).
    pub bytes_sent: u64,
    /// The response status sent downstream.
    pub response_code: Option<u16>,
    /// Why this response code (`%RESPONSE_CODE_DETAILS%`).
    pub response_code_details: Option<Cow<'static, str>>,
    /// Envoy's response flags.
    pub response_flags: ResponseFlags,
    /// The upstream host chosen (`%UPSTREAM_HOST%`).
    pub upstream_host: Option<SocketAddr>,
    /// The upstream cluster (`%UPSTREAM_CLUSTER%`).
    pub upstream_cluster: Option<String>,
    /// The route's name (`%ROUTE_NAME%`).
    pub route_name: Option<String>,
    /// The downstream connection.
    pub connection: ConnectionInfo,
    /// Strings filters leave for others and for the access log (Envoy's
    /// filter state, reduced to text), e.g. the authenticated user.
    pub filter_state: Vec<(Cow<'static, str>, String)>,
}

impl StreamInfo {
    /// A stream starting now.
    pub fn new(start: Instant, start_time: SystemTime) -> Self {
        Self {
            start_time,
            start,
            last_downstream_rx_byte_received: None,
            first_upstream_tx_byte_sent: None,
            last_upstream_tx_byte_sent: None,
            first_upstream_rx_byte_received: None,
            last_upstream_rx_byte_received: None,
            first_downstream_tx_byte_sent: None,
            last_downstream_tx_byte_sent: None,
            completed: None,
            bytes_received: 0,
            bytes_sent: 0,
            response_code: None,
            response_code_details: None,
            response_flags: ResponseFlags::EMPTY,
            upstream_host: None,
            upstream_cluster: None,
            route_name: None,
            connection: ConnectionInfo::default(),
            filter_state: Vec::new(),
        }
    }

    /// Adds a response flag.
    pub fn set_response_flag(&mut self, flag: ResponseFlag) {
        self.response_flags.insert(flag);
    }

    /// Whether a response flag is set.
    pub fn has_response_flag(&self, flag: ResponseFlag) -> bool {
        self.response_flags.contains(flag)
    }

    /// Sets the response code details.
    pub fn set_response_code_details(&mut self, details: impl Into<Cow<'static, str>>) {
        self.response_code_details = Some(details.into());
    }

    /// The offset of `now` from the start.
    pub fn since_start(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.start)
    }

    /// Sets a filter-state string (replacing a previous value of `key`).
    pub fn set_filter_state(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) {
        let key = key.into();
        let value = value.into();
        match self.filter_state.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.filter_state.push((key, value)),
        }
    }

    /// A filter-state string.
    pub fn filter_state(&self, key: &str) -> Option<&str> {
        self.filter_state.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_in_envoy_order() {
        let mut f = ResponseFlags::EMPTY;
        assert_eq!(f.to_string(), "-");
        f.insert(ResponseFlag::RateLimited);
        f.insert(ResponseFlag::NoHealthyUpstream);
        f.insert(ResponseFlag::UnconditionalDropOverload);
        assert_eq!(f.to_string(), "UH,RL,UDO");
        assert!(f.contains(ResponseFlag::RateLimited));
        assert!(!f.contains(ResponseFlag::NoRouteFound));
        for flag in ResponseFlag::ALL {
            assert_eq!(ResponseFlag::from_short_code(flag.short_code()), Some(flag));
        }
    }

    #[test]
    fn filter_state_replaces() {
        let mut i = StreamInfo::new(Instant::now(), SystemTime::now());
        i.set_filter_state("user", "a");
        i.set_filter_state("user", "b");
        assert_eq!(i.filter_state("user"), Some("b"));
        assert_eq!(i.filter_state.len(), 1);
    }
}
