//! Envoy's substitution formatter (`Formatter::SubstitutionFormatParser`).
//!
//! A format string is parsed once, at config load, into literal and
//! [`Operator`] pieces; formatting a [`LogEntry`] appends each piece to the
//! thread's log buffer without building intermediate strings. Text formats
//! print a missing value as `-` (nothing with `omit_empty_values`); JSON
//! formats (`json_format`) give each field its own format string, print a
//! value that is exactly one numeric operator as a JSON number, a missing one
//! as `null` (left out with `omit_empty_values`), and end each entry with a
//! newline. JSON keys come out sorted, as in Envoy.
//!
//! Deviations: `FILTER_STATE` values are plain strings in mini-envoy, so the
//! `PLAIN` and `TYPED` serializations print the same string (Envoy quotes
//! non-`PLAIN` values in text formats). `:Z` truncation keeps whole UTF-8
//! characters.

use std::borrow::Cow;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use week1_core::config::access_log::SubstitutionFormatString;
use week1_core::config::{ConfigError, FieldPath};
use week1_core::headers::HeaderMap;
use week3_filters::http::{ResponseFlag, ResponseFlags};

use super::LogEntry;
use super::time::TimeFormat;

/// Envoy's default access-log format.
pub const DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// The command operators mini-envoy implements (for error messages).
const SUPPORTED_OPERATORS: &str = "START_TIME, REQ, RESP, TRAILER (REQUEST_HEADER, RESPONSE_HEADER, RESPONSE_TRAILER), RESPONSE_CODE, RESPONSE_CODE_DETAILS, RESPONSE_FLAGS, RESPONSE_FLAGS_LONG, BYTES_RECEIVED, BYTES_SENT, DURATION, REQUEST_DURATION, RESPONSE_DURATION, RESPONSE_TX_DURATION, UPSTREAM_HOST, UPSTREAM_CLUSTER, ROUTE_NAME, PROTOCOL, DOWNSTREAM_REMOTE_ADDRESS[_WITHOUT_PORT], DOWNSTREAM_LOCAL_ADDRESS[_WITHOUT_PORT], DOWNSTREAM_DIRECT_REMOTE_ADDRESS[_WITHOUT_PORT], CONNECTION_ID, FILTER_STATE, HOSTNAME";

/// Envoy command operators that exist but that mini-envoy does not implement;
/// they are refused as `unsupported:` rather than as unknown.
const ENVOY_ONLY_OPERATORS: &[&str] = &[
    "DYNAMIC_METADATA",
    "CLUSTER_METADATA",
    "UPSTREAM_METADATA",
    "UPSTREAM_TRANSPORT_FAILURE_REASON",
    "UPSTREAM_LOCAL_ADDRESS",
    "UPSTREAM_REMOTE_ADDRESS",
    "UPSTREAM_REQUEST_ATTEMPT_COUNT",
    "REQUESTED_SERVER_NAME",
    "GRPC_STATUS",
    "GRPC_STATUS_NUMBER",
    "CONNECTION_TERMINATION_DETAILS",
    "UPSTREAM_CONNECTION_ID",
    "STREAM_ID",
    "REQ_WITHOUT_QUERY",
    "ENVIRONMENT",
    "LOCAL_REPLY_BODY",
    "ACCESS_LOG_TYPE",
    "VIRTUAL_CLUSTER_NAME",
    "DOWNSTREAM_PEER_URI_SAN",
    "DOWNSTREAM_LOCAL_URI_SAN",
    "DOWNSTREAM_TLS_VERSION",
    "DOWNSTREAM_TLS_CIPHER",
    "DOWNSTREAM_PEER_SUBJECT",
    "DOWNSTREAM_PEER_CERT",
    "REQUEST_HEADERS_BYTES",
    "RESPONSE_HEADERS_BYTES",
    "RESPONSE_TRAILERS_BYTES",
    "UPSTREAM_WIRE_BYTES_SENT",
    "UPSTREAM_WIRE_BYTES_RECEIVED",
    "DOWNSTREAM_WIRE_BYTES_SENT",
    "DOWNSTREAM_WIRE_BYTES_RECEIVED",
    "COMMON_DURATION",
    "START_TIME_LOCAL",
    "SYSTEM_TIME",
    "TRACE_ID",
];

/// A header operator's names: `X?Y` looks up `X`, then `Y`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeaderSelector {
    main: String,
    alternative: Option<String>,
}

impl HeaderSelector {
    fn parse(args: &str) -> Result<Self, String> {
        let mut names = args.split('?');
        let main = names.next().unwrap_or_default();
        let alternative = names.next();
        if names.next().is_some() {
            return Err(format!("more than one alternative header in ({args})"));
        }
        if main.is_empty() || alternative.is_some_and(str::is_empty) {
            return Err(format!("empty header name in ({args})"));
        }
        Ok(Self {
            main: main.to_ascii_lowercase(),
            alternative: alternative.map(str::to_ascii_lowercase),
        })
    }

    fn find<'a>(&self, headers: Option<&'a HeaderMap>) -> Value<'a> {
        let Some(headers) = headers else { return Value::Null };
        let value = headers
            .get(&self.main)
            .or_else(|| self.alternative.as_deref().and_then(|alt| headers.get(alt)));
        value.map_or(Value::Null, |v| Value::Str(v.to_str_lossy()))
    }
}

/// Which address of a connection, with or without the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Address {
    DownstreamRemote,
    DownstreamLocal,
}

/// What an operator reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OperatorKind {
    StartTime(TimeFormat),
    RequestHeader(HeaderSelector),
    ResponseHeader(HeaderSelector),
    ResponseTrailer(HeaderSelector),
    ResponseCode,
    ResponseCodeDetails,
    ResponseFlags,
    ResponseFlagsLong,
    BytesReceived,
    BytesSent,
    Duration,
    RequestDuration,
    ResponseDuration,
    ResponseTxDuration,
    UpstreamHost,
    UpstreamCluster,
    RouteName,
    Protocol,
    Address { which: Address, with_port: bool },
    ConnectionId,
    FilterState(String),
    Hostname(String),
}

/// One command operator, e.g. `%REQ(USER-AGENT):10%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    kind: OperatorKind,
    max_length: Option<usize>,
}

/// An operator's value for one entry.
enum Value<'a> {
    /// Not available: `-` in text, `null` in JSON.
    Null,
    /// A number (a JSON number when it is a whole JSON value).
    Number(u64),
    Str(Cow<'a, str>),
    Socket(SocketAddr),
    Ip(IpAddr),
    Time(SystemTime, &'a TimeFormat),
    Flags(ResponseFlags, bool),
}

impl Value<'_> {
    /// Appends the value as text (`Null` as `-`).
    fn write(&self, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail.
        let _ = match self {
            Value::Null => out.write_all(b"-"),
            Value::Number(n) => write!(out, "{n}"),
            Value::Str(s) => out.write_all(s.as_bytes()),
            Value::Socket(a) => write!(out, "{a}"),
            Value::Ip(ip) => write!(out, "{ip}"),
            Value::Time(t, format) => {
                format.write(*t, out);
                Ok(())
            }
            Value::Flags(flags, false) => write!(out, "{flags}"),
            Value::Flags(flags, true) => write_long_flags(*flags, out),
        };
    }
}

/// `%RESPONSE_FLAGS_LONG%`: Envoy's long names joined by commas, `-` when none.
fn write_long_flags(flags: ResponseFlags, out: &mut Vec<u8>) -> std::io::Result<()> {
    if flags.is_empty() {
        return out.write_all(b"-");
    }
    for (i, flag) in flags.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.write_all(long_flag_name(flag).as_bytes())?;
    }
    Ok(())
}

/// Envoy's long response-flag name (`ResponseFlagUtils`).
pub fn long_flag_name(flag: ResponseFlag) -> &'static str {
    use ResponseFlag::*;
    match flag {
        FailedLocalHealthCheck => "FailedLocalHealthCheck",
        NoHealthyUpstream => "NoHealthyUpstream",
        UpstreamRequestTimeout => "UpstreamRequestTimeout",
        LocalReset => "LocalReset",
        UpstreamRemoteReset => "UpstreamRemoteReset",
        UpstreamConnectionFailure => "UpstreamConnectionFailure",
        UpstreamConnectionTermination => "UpstreamConnectionTermination",
        UpstreamOverflow => "UpstreamOverflow",
        NoRouteFound => "NoRouteFound",
        DelayInjected => "DelayInjected",
        FaultInjected => "FaultInjected",
        RateLimited => "RateLimited",
        UnauthorizedExternalService => "UnauthorizedExternalService",
        RateLimitServiceError => "RateLimitServiceError",
        DownstreamConnectionTermination => "DownstreamConnectionTermination",
        UpstreamRetryLimitExceeded => "UpstreamRetryLimitExceeded",
        StreamIdleTimeout => "StreamIdleTimeout",
        InvalidEnvoyRequestHeaders => "InvalidEnvoyRequestHeaders",
        DownstreamProtocolError => "DownstreamProtocolError",
        UpstreamMaxStreamDurationReached => "UpstreamMaxStreamDurationReached",
        ResponseFromCacheFilter => "ResponseFromCacheFilter",
        NoFilterConfigFound => "NoFilterConfigFound",
        DurationTimeout => "DurationTimeout",
        UpstreamProtocolError => "UpstreamProtocolError",
        NoClusterFound => "NoClusterFound",
        OverloadManager => "OverloadManagerTerminated",
        DnsResolutionFailed => "DnsResolutionFailed",
        DropOverLoad => "DropOverload",
        DownstreamRemoteReset => "DownstreamRemoteReset",
        UnconditionalDropOverload => "UnconditionalDropOverload",
    }
}

fn millis(d: Option<Duration>) -> Value<'static> {
    d.map_or(Value::Null, |d| Value::Number(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

fn text<'a>(s: Option<&'a str>) -> Value<'a> {
    s.map_or(Value::Null, |s| Value::Str(Cow::Borrowed(s)))
}

impl Operator {
    /// Builds an operator from its parsed parts; the error says what is wrong.
    fn new(name: &str, args: Option<&str>, max_length: Option<usize>) -> Result<Self, OpError> {
        use OperatorKind as K;
        let no_args = |kind: OperatorKind| match args {
            None => Ok(kind),
            Some(_) => Err(OpError::Invalid(format!("%{name}% takes no argument"))),
        };
        let header_args = || {
            args.ok_or_else(|| {
                OpError::Invalid(format!("%{name}% needs a header name, e.g. %{name}(USER-AGENT)%"))
            })
            .and_then(|a| HeaderSelector::parse(a).map_err(OpError::Invalid))
        };
        let address = |which, with_port| no_args(K::Address { which, with_port });
        let kind = match name {
            "START_TIME" => K::StartTime(match args {
                None | Some("") => TimeFormat::envoy_default(),
                Some(spec) => TimeFormat::parse(spec).map_err(OpError::Invalid)?,
            }),
            "REQ" | "REQUEST_HEADER" => K::RequestHeader(header_args()?),
            "RESP" | "RESPONSE_HEADER" => K::ResponseHeader(header_args()?),
            "TRAILER" | "RESPONSE_TRAILER" => K::ResponseTrailer(header_args()?),
            "RESPONSE_CODE" => no_args(K::ResponseCode)?,
            "RESPONSE_CODE_DETAILS" => no_args(K::ResponseCodeDetails)?,
            "RESPONSE_FLAGS" => no_args(K::ResponseFlags)?,
            "RESPONSE_FLAGS_LONG" => no_args(K::ResponseFlagsLong)?,
            "BYTES_RECEIVED" => no_args(K::BytesReceived)?,
            "BYTES_SENT" => no_args(K::BytesSent)?,
            "DURATION" => no_args(K::Duration)?,
            "REQUEST_DURATION" => no_args(K::RequestDuration)?,
            "RESPONSE_DURATION" => no_args(K::ResponseDuration)?,
            "RESPONSE_TX_DURATION" => no_args(K::ResponseTxDuration)?,
            "UPSTREAM_HOST" => no_args(K::UpstreamHost)?,
            "UPSTREAM_CLUSTER" => no_args(K::UpstreamCluster)?,
            "ROUTE_NAME" => no_args(K::RouteName)?,
            "PROTOCOL" => no_args(K::Protocol)?,
            "DOWNSTREAM_REMOTE_ADDRESS" | "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => {
                address(Address::DownstreamRemote, true)?
            }
            "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT"
            | "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => {
                address(Address::DownstreamRemote, false)?
            }
            "DOWNSTREAM_LOCAL_ADDRESS" => address(Address::DownstreamLocal, true)?,
            "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => address(Address::DownstreamLocal, false)?,
            "CONNECTION_ID" => no_args(K::ConnectionId)?,
            "HOSTNAME" => no_args(K::Hostname(hostname().to_string()))?,
            "FILTER_STATE" => {
                let args = args.unwrap_or_default();
                let (key, serialization) = args.split_once(':').unwrap_or((args, "PLAIN"));
                if key.is_empty() {
                    return Err(OpError::Invalid(
                        "%FILTER_STATE% needs a key, e.g. %FILTER_STATE(user:PLAIN)%".into(),
                    ));
                }
                if !matches!(serialization, "PLAIN" | "TYPED") {
                    return Err(OpError::Invalid(format!(
                        "%FILTER_STATE({args})%: serialization must be PLAIN or TYPED"
                    )));
                }
                K::FilterState(key.to_string())
            }
            other if ENVOY_ONLY_OPERATORS.contains(&other) => {
                return Err(OpError::Unsupported(format!("%{other}%")));
            }
            other => {
                return Err(OpError::Invalid(format!(
                    "unknown command operator %{other}% (supported: {SUPPORTED_OPERATORS})"
                )));
            }
        };
        Ok(Self { kind, max_length })
    }

    /// This operator's value for `entry`.
    fn value<'a>(&'a self, entry: &LogEntry<'a>) -> Value<'a> {
        use OperatorKind as K;
        let info = entry.stream_info;
        match &self.kind {
            K::StartTime(format) => Value::Time(info.start_time, format),
            K::RequestHeader(h) => h.find(entry.request_headers),
            K::ResponseHeader(h) => h.find(entry.response_headers),
            K::ResponseTrailer(h) => h.find(entry.response_trailers),
            // Envoy prints 0 when no response was sent.
            K::ResponseCode => Value::Number(info.response_code.map_or(0, u64::from)),
            K::ResponseCodeDetails => text(info.response_code_details.as_deref()),
            K::ResponseFlags => Value::Flags(info.response_flags, false),
            K::ResponseFlagsLong => Value::Flags(info.response_flags, true),
            K::BytesReceived => Value::Number(info.bytes_received),
            K::BytesSent => Value::Number(info.bytes_sent),
            K::Duration => millis(info.completed),
            K::RequestDuration => millis(info.last_downstream_rx_byte_received),
            K::ResponseDuration => millis(info.first_upstream_rx_byte_received),
            K::ResponseTxDuration => {
                match (info.last_downstream_tx_byte_sent, info.first_upstream_rx_byte_received) {
                    (Some(tx), Some(rx)) => millis(Some(tx.saturating_sub(rx))),
                    _ => Value::Null,
                }
            }
            K::UpstreamHost => info.upstream_host.map_or(Value::Null, Value::Socket),
            K::UpstreamCluster => text(info.upstream_cluster.as_deref()),
            K::RouteName => text(info.route_name.as_deref().filter(|n| !n.is_empty())),
            K::Protocol => text(entry.protocol),
            K::Address { which, with_port } => {
                let addr = match which {
                    Address::DownstreamRemote => info.connection.remote_address,
                    Address::DownstreamLocal => info.connection.local_address,
                };
                match addr {
                    None => Value::Null,
                    Some(a) if *with_port => Value::Socket(a),
                    Some(a) => Value::Ip(a.ip()),
                }
            }
            K::ConnectionId => Value::Number(info.connection.id),
            K::FilterState(key) => text(info.filter_state(key)),
            K::Hostname(name) => text(Some(name)),
        }
    }

    /// Appends the value as text; a missing one as `-`, or nothing when `omit_empty`.
    fn write_text(&self, entry: &LogEntry<'_>, omit_empty: bool, out: &mut Vec<u8>) {
        match self.value(entry) {
            Value::Null if omit_empty => {}
            Value::Null => out.push(b'-'),
            v => {
                let start = out.len();
                v.write(out);
                self.truncate(out, start);
            }
        }
    }

    /// Cuts what was appended since `start` to the `:Z` length, on a character boundary.
    fn truncate(&self, out: &mut Vec<u8>, start: usize) {
        if let Some(max) = self.max_length
            && out.len() - start > max
        {
            let mut end = start + max;
            // A UTF-8 continuation byte is 0b10xx_xxxx.
            while end > start && out[end] & 0xC0 == 0x80 {
                end -= 1;
            }
            out.truncate(end);
        }
    }
}

/// Why an operator was refused.
enum OpError {
    Invalid(String),
    Unsupported(String),
}

/// The host name for `%HOSTNAME%`, read once (`-` when unknown).
fn hostname() -> &'static str {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    HOSTNAME.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .chain(std::env::var("HOSTNAME").ok())
            .map(|s| s.trim().to_string())
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| "-".to_string())
    })
}

/// A literal or an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Operator(Operator),
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `format`; errors are placed at `path`.
    fn parse(format: &str, path: &FieldPath) -> Result<Self, ConfigError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = format;
        while let Some(i) = rest.find('%') {
            literal.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('%') {
                literal.push('%');
                rest = tail;
                continue;
            }
            let position = format.len() - rest.len() + i;
            let Some((name, args, max_length, consumed)) = split_command(after) else {
                return Err(ConfigError::invalid(
                    path.clone(),
                    format!(
                        "no valid command operator at position {position} (write a literal % as %%)"
                    ),
                ));
            };
            let operator = Operator::new(name, args, max_length).map_err(|e| match e {
                OpError::Invalid(msg) => {
                    ConfigError::invalid(path.clone(), format!("{msg} at position {position}"))
                }
                OpError::Unsupported(op) => ConfigError::unsupported(
                    path.clone(),
                    format!("the command operator {op} is not implemented; supported: {SUPPORTED_OPERATORS}"),
                ),
            })?;
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Operator(operator));
            rest = &after[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Self { pieces })
    }

    fn write(&self, entry: &LogEntry<'_>, omit_empty: bool, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Piece::Operator(op) => op.write_text(entry, omit_empty, out),
            }
        }
    }
}

/// Splits `NAME(ARGS):LEN%` (what follows an opening `%`) into its parts and
/// the bytes consumed, as Envoy's `%([A-Z]|[0-9]|_)+(\([^\)]*\))?(:[0-9]+)?%`.
fn split_command(s: &str) -> Option<(&str, Option<&str>, Option<usize>, usize)> {
    let bytes = s.as_bytes();
    let name_len = bytes
        .iter()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
        .count();
    if name_len == 0 {
        return None;
    }
    let name = &s[..name_len];
    let mut at = name_len;
    let mut args = None;
    if bytes.get(at) == Some(&b'(') {
        let close = s[at + 1..].find(')')? + at + 1;
        args = Some(&s[at + 1..close]);
        at = close + 1;
    }
    let mut max_length = None;
    if bytes.get(at) == Some(&b':') {
        let digits = bytes[at + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        max_length = Some(s[at + 1..at + 1 + digits].parse().ok()?);
        at += 1 + digits;
    }
    (bytes.get(at) == Some(&b'%')).then_some((name, args, max_length, at + 1))
}

/// A compiled `json_format` value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JsonNode {
    /// Pre-serialized JSON: a literal string, number, bool or null.
    Raw(String),
    /// Exactly one operator: typed (numbers stay numbers, missing is `null`).
    Operator(Operator),
    /// A string with operators and literals.
    Template(Template),
    /// A nested object; keys pre-serialized, sorted.
    Object(Vec<(String, JsonNode)>),
    Array(Vec<JsonNode>),
}

impl JsonNode {
    fn compile(value: &serde_json::Value, path: &FieldPath) -> Result<Self, ConfigError> {
        use serde_json::Value as J;
        Ok(match value {
            J::String(s) => {
                let template = Template::parse(s, path)?;
                match template.pieces.as_slice() {
                    [] => JsonNode::Raw("\"\"".into()),
                    [Piece::Operator(op)] => JsonNode::Operator(op.clone()),
                    [Piece::Literal(lit)] => JsonNode::Raw(json_string(lit)),
                    _ => JsonNode::Template(template),
                }
            }
            J::Object(map) => JsonNode::Object(
                map.iter()
                    .map(|(k, v)| Ok((json_string(k), JsonNode::compile(v, &path.key(k))?)))
                    .collect::<Result<_, ConfigError>>()?,
            ),
            J::Array(items) => JsonNode::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| JsonNode::compile(v, &path.index(i)))
                    .collect::<Result<_, _>>()?,
            ),
            other => JsonNode::Raw(other.to_string()),
        })
    }

    /// Appends this value as JSON.
    fn write(
        &self,
        entry: &LogEntry<'_>,
        omit_empty: bool,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) {
        match self {
            JsonNode::Raw(raw) => out.extend_from_slice(raw.as_bytes()),
            JsonNode::Operator(op) => match op.value(entry) {
                Value::Null => out.extend_from_slice(b"null"),
                Value::Number(n) => {
                    let _ = write!(out, "{n}");
                }
                v => {
                    scratch.clear();
                    v.write(scratch);
                    op.truncate(scratch, 0);
                    write_json_str(scratch, out);
                }
            },
            JsonNode::Template(t) => {
                scratch.clear();
                t.write(entry, omit_empty, scratch);
                write_json_str(scratch, out);
            }
            JsonNode::Object(fields) => write_object(fields, entry, omit_empty, out, scratch),
            JsonNode::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(entry, omit_empty, out, scratch);
                }
                out.push(b']');
            }
        }
    }

    /// Whether this is a typed operator without a value (left out under `omit_empty_values`).
    fn is_missing(&self, entry: &LogEntry<'_>) -> bool {
        matches!(self, JsonNode::Operator(op) if matches!(op.value(entry), Value::Null))
    }
}

fn write_object(
    fields: &[(String, JsonNode)],
    entry: &LogEntry<'_>,
    omit_empty: bool,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) {
    out.push(b'{');
    let mut first = true;
    for (key, node) in fields {
        if omit_empty && node.is_missing(entry) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(key.as_bytes());
        out.push(b':');
        node.write(entry, omit_empty, out, scratch);
    }
    out.push(b'}');
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Appends `bytes` (UTF-8 text, lossily) as a JSON string literal.
fn write_json_str(bytes: &[u8], out: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(bytes);
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text.as_ref());
}

/// A compiled `SubstitutionFormatString` (or Envoy's default format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatter {
    body: Body,
    omit_empty_values: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Text(Template),
    Json(Vec<(String, JsonNode)>),
}

impl Formatter {
    /// Envoy's default format ([`DEFAULT_FORMAT`]).
    pub fn envoy_default() -> Self {
        static DEFAULT: OnceLock<Formatter> = OnceLock::new();
        DEFAULT
            .get_or_init(|| match Self::text(DEFAULT_FORMAT, false, &FieldPath::root()) {
                Ok(f) => f,
                // Unreachable: the default format is a constant covered by tests.
                Err(_) => Self {
                    body: Body::Text(Template { pieces: Vec::new() }),
                    omit_empty_values: false,
                },
            })
            .clone()
    }

    /// A text format (`text_format`, the deprecated `format`); errors at `path`.
    pub fn text(
        format: &str,
        omit_empty_values: bool,
        path: &FieldPath,
    ) -> Result<Self, ConfigError> {
        Ok(Self { body: Body::Text(Template::parse(format, path)?), omit_empty_values })
    }

    /// A JSON format (`json_format`); errors at `path` and its keys.
    pub fn json(
        format: &serde_json::Map<String, serde_json::Value>,
        omit_empty_values: bool,
        path: &FieldPath,
    ) -> Result<Self, ConfigError> {
        let fields = format
            .iter()
            .map(|(k, v)| Ok((json_string(k), JsonNode::compile(v, &path.key(k))?)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self { body: Body::Json(fields), omit_empty_values })
    }

    /// A `SubstitutionFormatString` at `path` (unset: Envoy's default format).
    pub fn from_config(
        format: Option<&SubstitutionFormatString>,
        path: &FieldPath,
    ) -> Result<Self, ConfigError> {
        let Some(f) = format else { return Ok(Self::envoy_default()) };
        let omit = f.omit_empty_values;
        if !f.formatters.is_empty() {
            return Err(ConfigError::unsupported(
                path.field("formatters"),
                "only Envoy's built-in command operators",
            ));
        }
        if let Some(text) = &f.text_format {
            return Self::text(text, omit, &path.field("text_format"));
        }
        if let Some(json) = &f.json_format {
            return Self::json(json, omit, &path.field("json_format"));
        }
        if let Some(source) = &f.text_format_source {
            let at = path.field("text_format_source");
            let text = week3_filters::http::filters::read_data_source(source)
                .map_err(|e| ConfigError::invalid(at.clone(), e))?;
            return Self::text(&text, omit, &at);
        }
        Err(ConfigError::invalid(
            path.clone(),
            "one of text_format, json_format or text_format_source must be set",
        ))
    }

    /// Appends the entry to `out`; `scratch` is reused working space.
    pub fn format(&self, entry: &LogEntry<'_>, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        match &self.body {
            Body::Text(t) => t.write(entry, self.omit_empty_values, out),
            Body::Json(fields) => {
                write_object(fields, entry, self.omit_empty_values, out, scratch);
                out.push(b'\n');
            }
        }
    }

    /// The entry as a string (tests, local tools).
    pub fn format_to_string(&self, entry: &LogEntry<'_>) -> String {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        self.format(entry, &mut out, &mut scratch);
        String::from_utf8_lossy(&out).into_owned()
    }
}
