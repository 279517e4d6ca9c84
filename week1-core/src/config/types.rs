//! Envoy's shared building blocks: durations, percentages, addresses, header
//! options, string matchers, metadata.
//!
//! These mirror `google.protobuf.*` well-known types and `envoy.config.core.v3` /
//! `envoy.type.matcher.v3` messages that many resources embed. Field names and
//! defaults are Envoy's.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Deserializer};

use super::validate::{Validate, Validator};

/// `google.protobuf.Duration`, written as in protobuf JSON: `"0.25s"`, `"5s"`, `"1.5s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// Whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    /// Milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    /// The standard library duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// Whether this is zero (Envoy's "disabled" for most timeouts).
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    // ANCHOR: duration_parse
    /// Parses protobuf JSON's duration text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid duration {text:?} (expected seconds with an \"s\" suffix, such as \"0.25s\")"
            )
        };
        let body = text.strip_suffix('s').ok_or_else(bad)?;
        if body.starts_with('-') {
            return Err(format!("invalid duration {text:?}: must not be negative"));
        }
        let (secs, frac) = match body.split_once('.') {
            Some((s, f)) => (s, f),
            None => (body, ""),
        };
        if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let secs: u64 = secs.parse().map_err(|_| bad())?;
        // protobuf's limit: ±10,000 years.
        if secs > 315_576_000_000 {
            return Err(format!("invalid duration {text:?}: more than 10,000 years"));
        }
        let nanos: u32 =
            if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(|_| bad())? };
        Ok(Self(std::time::Duration::new(secs, nanos)))
    }
    // ANCHOR_END: duration_parse
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, n) = (self.0.as_secs(), self.0.subsec_nanos());
        if n == 0 {
            write!(f, "{s}s")
        } else {
            let frac = format!("{n:09}");
            write!(f, "{s}.{}s", frac.trim_end_matches('0'))
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    /// The JSON string form (`"0.25s"`), or the message form `{seconds, nanos}`
    /// that Envoy's YAML loader also accepts (seen in Envoy's own test configs).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"0.25s\"")
            }
            fn visit_str<E: Error>(self, s: &str) -> Result<Duration, E> {
                Duration::parse(s).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Duration, A::Error> {
                let (mut secs, mut nanos) = (0i64, 0i64);
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "seconds" => secs = m.next_value()?,
                        "nanos" => nanos = m.next_value()?,
                        other => return Err(A::Error::unknown_field(other, &["seconds", "nanos"])),
                    }
                }
                if secs < 0 || !(0..1_000_000_000).contains(&nanos) || secs > 315_576_000_000 {
                    return Err(A::Error::custom(format!(
                        "invalid duration {{seconds: {secs}, nanos: {nanos}}}"
                    )));
                }
                Ok(Duration(std::time::Duration::new(secs as u64, nanos as u32)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `envoy.type.v3.Percent`: `{value: 0..100}`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Percent {
    /// Percentage, 0 to 100.
    pub value: f64,
}

impl Validate for Percent {
    fn validate(&self, v: &mut Validator) {
        if !(0.0..=100.0).contains(&self.value) {
            v.error("value", format!("{} is not a percentage between 0 and 100", self.value));
        }
    }
}

/// `envoy.type.v3.FractionalPercent.DenominatorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DenominatorType {
    /// 100.
    #[default]
    Hundred,
    /// 10,000.
    TenThousand,
    /// 1,000,000.
    Million,
}

impl DenominatorType {
    /// The denominator as a number.
    pub fn value(self) -> u64 {
        match self {
            Self::Hundred => 100,
            Self::TenThousand => 10_000,
            Self::Million => 1_000_000,
        }
    }
}

/// `envoy.type.v3.FractionalPercent`: `numerator / denominator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FractionalPercent {
    /// Numerator; values above the denominator mean 100%.
    pub numerator: u32,
    /// Denominator.
    pub denominator: DenominatorType,
}

impl FractionalPercent {
    /// Whether `random` (any u64) falls inside the fraction: `random % denominator < numerator`.
    pub fn hits(&self, random: u64) -> bool {
        random % self.denominator.value() < u64::from(self.numerator)
    }
}

/// `envoy.config.core.v3.RuntimeFractionalPercent`. mini-envoy has no runtime
/// layer, so `default_value` is what applies.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeFractionalPercent {
    /// The fraction in force.
    pub default_value: FractionalPercent,
    /// Envoy's runtime key (kept for compatibility; not consulted).
    pub runtime_key: String,
}

/// `envoy.config.core.v3.RuntimeFeatureFlag`: a boolean with a runtime key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeFeatureFlag {
    /// The value in force.
    pub default_value: Option<bool>,
    /// Envoy's runtime key (kept for compatibility; not consulted).
    pub runtime_key: String,
}

/// `envoy.config.core.v3.RuntimeUInt32`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeUInt32 {
    /// The value in force.
    pub default_value: u32,
    /// Envoy's runtime key (kept for compatibility; not consulted).
    pub runtime_key: String,
}

/// `envoy.config.core.v3.RuntimePercent`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimePercent {
    /// The value in force.
    pub default_value: Percent,
    /// Envoy's runtime key (kept for compatibility; not consulted).
    pub runtime_key: String,
}

/// `envoy.config.core.v3.Address`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Address {
    /// An IP address and port.
    pub socket_address: Option<SocketAddress>,
    /// A Unix domain socket (not supported).
    pub pipe: Option<serde_json::Value>,
    /// Envoy's internal listener address (not supported).
    pub envoy_internal_address: Option<serde_json::Value>,
}

impl Address {
    /// The resolved socket address, when this is an IP address with a numeric port.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.socket_address.as_ref()?.socket_addr()
    }
}

impl Validate for Address {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "address",
            &[
                ("socket_address", self.socket_address.is_some()),
                ("pipe", self.pipe.is_some()),
                ("envoy_internal_address", self.envoy_internal_address.is_some()),
            ],
            true,
        );
        if self.pipe.is_some() {
            v.unsupported("pipe", "only socket_address (TCP over IPv4/IPv6) is supported");
        }
        if self.envoy_internal_address.is_some() {
            v.unsupported(
                "envoy_internal_address",
                "only socket_address (TCP over IPv4/IPv6) is supported",
            );
        }
        v.child("socket_address", &self.socket_address);
    }
}

/// `envoy.config.core.v3.SocketAddress.Protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SocketProtocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP (not supported).
    Udp,
}

/// `envoy.config.core.v3.SocketAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketAddress {
    /// TCP or UDP.
    pub protocol: SocketProtocol,
    /// An IP address, or a host name for DNS clusters.
    pub address: String,
    /// The port.
    pub port_value: Option<u32>,
    /// A named port (not supported).
    pub named_port: Option<String>,
    /// A custom resolver (not supported).
    pub resolver_name: String,
    /// Accept IPv4 on an IPv6 socket.
    pub ipv4_compat: bool,
    /// A network namespace (not supported).
    pub network_namespace_filepath: String,
}

impl SocketAddress {
    /// The address as a socket address, when `address` is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.address.parse().ok()?;
        let port = u16::try_from(self.port_value.unwrap_or(0)).ok()?;
        Some(SocketAddr::new(ip, port))
    }
}

// ANCHOR: socket_address_validate
impl Validate for SocketAddress {
    fn validate(&self, v: &mut Validator) {
        if self.address.is_empty() {
            v.error("address", "must not be empty");
        }
        if self.protocol == SocketProtocol::Udp {
            v.unsupported("protocol", "only TCP listeners and upstreams are supported");
        }
        if self.named_port.is_some() {
            v.unsupported("named_port", "use port_value");
        }
        if !self.resolver_name.is_empty() {
            v.unsupported("resolver_name", "the system resolver is used");
        }
        if !self.network_namespace_filepath.is_empty() {
            v.unsupported(
                "network_namespace_filepath",
                "sockets are opened in mini-envoy's own network namespace",
            );
        }
        match self.port_value {
            Some(p) if p > 65535 => {
                v.error("port_value", format!("{p} is not a port (0 to 65535)"))
            }
            None if self.named_port.is_none() => v.error("port_value", "must be set"),
            _ => {}
        }
    }
}
// ANCHOR_END: socket_address_validate

/// `envoy.config.core.v3.HeaderValue`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderValue {
    /// Header name.
    pub key: String,
    /// Header value; may use Envoy's `%COMMAND%` substitutions.
    pub value: String,
    /// A binary value (not supported).
    pub raw_value: Option<String>,
}

/// `envoy.config.core.v3.HeaderValueOption.HeaderAppendAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeaderAppendAction {
    /// Append to existing values, or add.
    #[default]
    AppendIfExistsOrAdd,
    /// Add only when absent.
    AddIfAbsent,
    /// Replace existing values, or add.
    OverwriteIfExistsOrAdd,
    /// Replace only when present.
    OverwriteIfExists,
}

/// `envoy.config.core.v3.HeaderValueOption`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderValueOption {
    /// The header to add.
    pub header: HeaderValue,
    /// Deprecated boolean form of `append_action` (true: append, false: overwrite).
    pub append: Option<bool>,
    /// How to combine with existing values.
    pub append_action: Option<HeaderAppendAction>,
    /// Keep the header when its value is empty after substitution.
    pub keep_empty_value: bool,
}

impl HeaderValueOption {
    /// The effective action, honouring the deprecated `append` flag as Envoy does.
    pub fn action(&self) -> HeaderAppendAction {
        match (self.append_action, self.append) {
            (Some(a), _) => a,
            (None, Some(false)) => HeaderAppendAction::OverwriteIfExistsOrAdd,
            (None, _) => HeaderAppendAction::AppendIfExistsOrAdd,
        }
    }
}

impl Validate for HeaderValueOption {
    fn validate(&self, v: &mut Validator) {
        v.field("header", |v| {
            if self.header.key.is_empty() {
                v.error("key", "must not be empty");
            } else if crate::headers::HeaderName::try_from(self.header.key.as_str()).is_err() {
                v.error("key", format!("{:?} is not a valid header name", self.header.key));
            }
            if self.header.raw_value.is_some() {
                v.unsupported("raw_value", "use value");
            }
            if self.header.value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                v.error("value", "must not contain CR, LF or NUL");
            }
        });
        if self.append.is_some() && self.append_action.is_some() {
            v.error("append", "append and append_action cannot both be set");
        }
    }
}

/// `envoy.type.matcher.v3.RegexMatcher`. The regex dialect is Rust's `regex`
/// crate, which like RE2 guarantees linear-time matching.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegexMatcher {
    /// The deprecated engine selector `google_re2: {}`; accepted and ignored.
    pub google_re2: Option<serde_json::Value>,
    /// The regular expression; it must match the whole input.
    pub regex: String,
}

impl RegexMatcher {
    /// Compiles the expression anchored at both ends, as RE2's FullMatch.
    pub fn compile(&self) -> Result<regex::Regex, regex::Error> {
        regex::RegexBuilder::new(&format!("^(?:{})$", self.regex)).size_limit(1 << 20).build()
    }
}

impl Validate for RegexMatcher {
    fn validate(&self, v: &mut Validator) {
        if let Err(e) = self.compile() {
            let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
            v.error("regex", format!("invalid regex {:?}: {first}", self.regex));
        }
    }
}

/// `envoy.type.matcher.v3.StringMatcher`: one of exact, prefix, suffix,
/// safe_regex, contains.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StringMatcher {
    /// Equal to.
    pub exact: Option<String>,
    /// Starts with.
    pub prefix: Option<String>,
    /// Ends with.
    pub suffix: Option<String>,
    /// Matches the whole regex.
    pub safe_regex: Option<RegexMatcher>,
    /// Contains.
    pub contains: Option<String>,
    /// Compare ASCII case-insensitively (not for `safe_regex`).
    pub ignore_case: bool,
}

impl Validate for StringMatcher {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "match_pattern",
            &[
                ("exact", self.exact.is_some()),
                ("prefix", self.prefix.is_some()),
                ("suffix", self.suffix.is_some()),
                ("safe_regex", self.safe_regex.is_some()),
                ("contains", self.contains.is_some()),
            ],
            true,
        );
        for (name, value) in
            [("prefix", &self.prefix), ("suffix", &self.suffix), ("contains", &self.contains)]
        {
            if value.as_deref() == Some("") {
                v.error(name, "must not be empty");
            }
        }
        v.child("safe_regex", &self.safe_regex);
    }
}

/// `envoy.config.core.v3.Locality`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Locality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Sub-zone.
    pub sub_zone: String,
}

/// `envoy.config.core.v3.Metadata`: `filter_metadata` maps a namespace to a free
/// JSON object.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metadata {
    /// Namespace → struct.
    pub filter_metadata: std::collections::BTreeMap<String, serde_json::Value>,
    /// Namespace → typed message (not interpreted).
    pub typed_filter_metadata: std::collections::BTreeMap<String, serde_json::Value>,
}

/// An empty message, such as `ads: {}` or `google_re2: {}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_protobuf_json() {
        assert_eq!(Duration::parse("0.25s").unwrap(), Duration::from_millis(250));
        assert_eq!(Duration::parse("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(Duration::parse("1.000000001s").unwrap().get().subsec_nanos(), 1);
        assert_eq!(Duration::parse("0s").unwrap(), Duration::default());
        for bad in ["5", "s", ".5s", "1.s5", "-1s", "1.0000000001s", "1ms", "1e3s", " 1s"] {
            assert!(Duration::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert_eq!(Duration::from_millis(1500).to_string(), "1.5s");
        assert_eq!(Duration::from_secs(3).to_string(), "3s");
        let obj: Duration = serde_json::from_str(r#"{"seconds": 30, "nanos": 5}"#).unwrap();
        assert_eq!(obj.get(), std::time::Duration::new(30, 5));
        assert!(serde_json::from_str::<Duration>(r#"{"nanos": -1}"#).is_err());
        assert!(serde_json::from_str::<Duration>(r#"{"minutes": 1}"#).is_err());
    }

    #[test]
    fn fractional_percent() {
        let f = FractionalPercent { numerator: 30, denominator: DenominatorType::Hundred };
        assert!(f.hits(29));
        assert!(!f.hits(30));
        assert!(f.hits(129));
    }

    #[test]
    fn header_append_action_honours_legacy_append() {
        let mut h = HeaderValueOption::default();
        assert_eq!(h.action(), HeaderAppendAction::AppendIfExistsOrAdd);
        h.append = Some(false);
        assert_eq!(h.action(), HeaderAppendAction::OverwriteIfExistsOrAdd);
        h.append_action = Some(HeaderAppendAction::AddIfAbsent);
        assert_eq!(h.action(), HeaderAppendAction::AddIfAbsent);
    }

    #[test]
    fn regexes_match_the_whole_input() {
        let r =
            RegexMatcher { google_re2: None, regex: "/api/v[0-9]/.*".into() }.compile().unwrap();
        assert!(r.is_match("/api/v1/x"));
        assert!(!r.is_match("/api/v10/x"));
        assert!(!r.is_match("x/api/v1/x"));
    }
}

/// `envoy.config.core.v3.RoutingPriority`: a route's `priority`, and the
/// priority a circuit-breaker `thresholds` entry applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoutingPriority {
    /// `DEFAULT`.
    #[default]
    Default,
    /// `HIGH`.
    High,
}
