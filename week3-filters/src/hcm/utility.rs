//! Envoy's `ConnectionManagerUtility` (`source/common/http/conn_manager_utility.cc`):
//! what the connection manager does to every request's headers before the
//! filter chain sees them, and to every response's headers before the codec
//! writes them.
//!
//! ```text
//! codec ─► RequestHead ─► normalize_path, normalize_host ─► mutate_request_headers
//!                              (400 / 307)                   │ hop-by-hop out, XFF, x-forwarded-proto,
//!                                                            │ internal / edge, x-envoy-* sanitized,
//!                                                            │ x-request-id, via
//!                                                            ▼
//!                                      MutateOutcome (trusted client address, upgrade kind)
//!                                                            │ route, then upgrade_allowed_on_route (403)
//!                                                            ▼
//!                                                   FilterManager ─► router ─► upstream
//! upstream response ─► FilterManager ─► mutate_response_headers ─► codec
//!                                        (hop-by-hop out, server, x-request-id, via)
//! ```
//!
//! Everything here is a pure function of the headers, a [`RequestContext`]
//! describing the connection, the compiled [`ConnectionManagerConfig`] and,
//! for `x-request-id`, an injected random source: no clock, no I/O.
//!
//! Envoy behaviours deliberately not replicated:
//! - With `use_remote_address` and a loopback peer, Envoy appends its own
//!   configured address to `x-forwarded-for`; mini-envoy appends the peer
//!   address as it is (`127.0.0.1`).
//! - `add_user_agent` (needs the node's service cluster), `referer` value
//!   validation (only a repeated `referer` is dropped), early header mutation
//!   and original-IP-detection extensions, tracing decisions, `proxy-status`
//!   and client certificates (no TLS) are not implemented here.
//! - `te` tokens are compared case-insensitively (Envoy: exactly `trailers`).
//! - Beyond Envoy, fields named in `Connection` are removed too (RFC 9110
//!   §7.6.1), except `te` (kept as `trailers`, as Envoy does) and pseudo-headers.
//! - An upgrade is what the codec decoded as one ([`RequestContext::codec_upgrade`]),
//!   so both sides agree on where the request ends. Envoy's HTTP/1 codec
//!   strips an `h2c` upgrade and serves the request; here it is an upgrade of
//!   kind `h2c`, refused (403) unless `upgrade_configs` lists it.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use week1_core::config::http_connection_manager::{
    ForwardClientCertDetails, ServerHeaderTransformation,
};
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue, well_known_bits};

use super::config::ConnectionManagerConfig;

/// `x-forwarded-for`
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-port`
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// `x-request-id`
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-envoy-internal`
pub const X_ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");
/// `x-envoy-external-address`
pub const X_ENVOY_EXTERNAL_ADDRESS: HeaderName =
    const { HeaderName::from_static("x-envoy-external-address") };
/// `via`
pub const VIA: HeaderName = HeaderName::from_static("via");
/// `server`
pub const SERVER: HeaderName = HeaderName::from_static("server");

/// Hop-by-hop request headers always removed (Envoy: `removeKeepAlive`,
/// `removeProxyConnection`, `removeTransferEncoding`; the codec already
/// framed the body, and the upstream encoder frames it again).
const HOP_BY_HOP_ALWAYS: [&str; 3] = ["keep-alive", "proxy-connection", "transfer-encoding"];

/// `x-envoy-*` request headers Envoy strips from every external request
/// (`cleanInternalHeaders`): they steer retries, timeouts, stats and tracing.
pub const UNTRUSTED_ENVOY_REQUEST_HEADERS: [&str; 14] = [
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// Further `x-envoy-*` request headers Envoy strips only from edge requests
/// (external and `use_remote_address`).
pub const EDGE_ONLY_ENVOY_REQUEST_HEADERS: [&str; 3] = [
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
];

/// The downstream connection a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestContext {
    /// The peer's address.
    pub remote_address: SocketAddr,
    /// The listener-side address of the connection.
    pub local_address: SocketAddr,
    /// Whether the connection is TLS (mini-envoy listeners are plaintext: false).
    pub tls: bool,
    /// Whether the codec decoded the request as an upgrade
    /// ([`RequestHead::upgrade`](crate::http1::RequestHead::upgrade)): the
    /// `Connection`/`Upgrade` headers are then kept for the upstream.
    pub codec_upgrade: bool,
}

/// What [`mutate_request_headers`] decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutateOutcome {
    /// The request is internal: its single trusted client address is internal
    /// (`x-envoy-internal: true` was set).
    pub internal: bool,
    /// External and `use_remote_address`: this proxy is the edge (untrusted
    /// `x-envoy-*` and `x-request-id` were replaced, `x-envoy-external-address` set).
    pub edge: bool,
    /// The client address to log and to match on (Envoy's
    /// `downstreamRemoteAddress` after `mutateRequestHeaders`): the peer, or
    /// the address `xff_num_trusted_hops` picks from `x-forwarded-for`;
    /// `None` when `x-forwarded-for` named no usable address and
    /// `use_remote_address` is off (keep the peer address then).
    pub trusted_downstream_address: Option<IpAddr>,
    /// The upgrade the request asks for: the `Upgrade` value of an upgrade the
    /// codec decoded, or `CONNECT`. The caller answers 403 unless
    /// [`upgrade_allowed_on_route`] allows it.
    pub upgrade: Option<String>,
}

/// Envoy's `Http::Utility::isUpgrade`: `Connection` has the `upgrade` token
/// and `Upgrade` is present. Returns the `Upgrade` value.
pub fn is_upgrade(headers: &HeaderMap) -> Option<&str> {
    let upgrade = headers.get_str("upgrade")?;
    headers
        .get_all("connection")
        .any(|v| tokens(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"upgrade")))
        .then_some(upgrade)
}

/// Whether the connection manager allows upgrade `kind` (case-insensitive):
/// listed in `upgrade_configs` and enabled.
pub fn upgrade_allowed(config: &ConnectionManagerConfig, kind: &str) -> bool {
    config.upgrade_policy(kind).is_some_and(|p| p.enabled)
}

/// Envoy's `createUpgradeFilterChain`: the type must be listed in the HCM's
/// `upgrade_configs`; the route's own entry for it (`route_upgrades`, as the
/// router compiles them: lowercase type, enabled) then overrides the HCM's
/// `enabled`.
pub fn upgrade_allowed_on_route(
    config: &ConnectionManagerConfig,
    kind: &str,
    route_upgrades: &[(String, bool)],
) -> bool {
    let Some(policy) = config.upgrade_policy(kind) else { return false };
    route_upgrades
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(kind))
        .map_or(policy.enabled, |&(_, enabled)| enabled)
}

/// Comma-separated list elements, trimmed of optional whitespace, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty())
}

/// All values of `name` joined with `,` (Envoy keeps one inline header and
/// appends repeats to it with `,`).
fn joined_bytes<'a>(headers: &'a HeaderMap, name: &'a str) -> Option<Cow<'a, [u8]>> {
    let mut values = headers.get_all(name);
    let first = values.next()?;
    let mut joined = Cow::Borrowed(first.as_bytes());
    for v in values {
        let j = joined.to_mut();
        j.push(b',');
        j.extend_from_slice(v.as_bytes());
    }
    Some(joined)
}

/// An address taken from `x-forwarded-for` (Envoy's `GetLastAddressFromXffInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XffAddress {
    /// The address, when the chosen element parses as one.
    pub address: Option<IpAddr>,
    /// The header held exactly one element and none was skipped.
    pub single_address: bool,
}

/// Envoy's `Utility::getLastAddressFromXFF`: skips the last `num_to_skip`
/// elements of `x-forwarded-for` (those the trusted proxies appended) and
/// parses the one before them.
pub fn last_address_from_xff(headers: &HeaderMap, num_to_skip: u32) -> XffAddress {
    let none = XffAddress { address: None, single_address: false };
    let Some(xff) = joined_bytes(headers, "x-forwarded-for") else { return none };
    let mut rest: &[u8] = &xff;
    for _ in 0..num_to_skip {
        match rest.iter().rposition(|&b| b == b',') {
            Some(comma) => rest = &rest[..comma],
            None => return none,
        }
    }
    let last_comma = rest.iter().rposition(|&b| b == b',');
    let element = last_comma.map_or(rest, |c| &rest[c + 1..]).trim_ascii();
    XffAddress {
        address: std::str::from_utf8(element).ok().and_then(|s| s.parse().ok()),
        single_address: last_comma.is_none() && num_to_skip == 0,
    }
}

/// A new `x-request-id`: a version 4 UUID from 128 bits of `random`.
pub fn new_request_id(random: &mut dyn FnMut() -> u64) -> HeaderValue {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&random().to_le_bytes());
    bytes[8..].copy_from_slice(&random().to_le_bytes());
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut text);
    HeaderValue::try_from(&*text).unwrap_or(const { HeaderValue::from_static("") })
}

/// Removes the fields named in `Connection` (RFC 9110 §7.6.1), except
/// pseudo-headers and `keep`.
/// Removes every field named in `names` (lowercase) in one pass, and only
/// when one may be present: `bits` ([`well_known_bits`] of `names`, computed
/// at compile time) answers that without looking at the entries for the
/// common request, which has none.
fn remove_all(headers: &mut HeaderMap, names: &[&str], bits: u64) {
    if !headers.may_contain_any(bits) {
        return;
    }
    let present = headers.iter().any(|(n, _)| names.contains(&n.as_str()));
    if present {
        headers.retain(|n, _| !names.contains(&n.as_str()));
    }
}

/// [`remove_all`] for a `const` list of names.
macro_rules! remove_all {
    ($headers:expr, $names:expr) => {{
        const NAMES: &[&str] = &$names;
        remove_all($headers, NAMES, const { well_known_bits(NAMES) })
    }};
}

fn remove_connection_options(headers: &mut HeaderMap, keep: &[&str]) {
    if !headers.contains("connection") {
        return;
    }
    let mut named: Vec<String> = Vec::new();
    for v in headers.get_all("connection") {
        for t in tokens(v.as_bytes()) {
            // Only names actually present are collected: the usual
            // `keep-alive` / `close` tokens allocate nothing.
            if let Ok(name) = std::str::from_utf8(t)
                && !name.starts_with(':')
                && !keep.iter().any(|k| k.eq_ignore_ascii_case(name))
                && headers.iter().any(|(n, _)| n.matches(name))
            {
                named.push(name.to_ascii_lowercase());
            }
        }
    }
    for name in &named {
        headers.remove(name);
    }
    remove_all!(headers, ["connection"]);
}

/// Envoy's `sanitizeTEHeader`: `te` becomes exactly `trailers` when it lists
/// `trailers`, and is removed otherwise.
fn sanitize_te(headers: &mut HeaderMap) {
    if !headers.contains("te") {
        return;
    }
    let trailers = headers
        .get_all("te")
        .any(|v| tokens(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"trailers")));
    if trailers {
        headers.insert(
            const { HeaderName::from_static("te") },
            const { HeaderValue::from_static("trailers") },
        );
    } else {
        headers.remove("te");
    }
}

/// Appends `value` to the single `name` field with `delimiter`, joining any
/// repeated fields first (Envoy's `appendToHeader`).
fn append_to_list(headers: &mut HeaderMap, name: HeaderName, value: &[u8], delimiter: &[u8]) {
    let mut joined = joined_bytes(headers, name.as_str()).map(Cow::into_owned).unwrap_or_default();
    if !joined.is_empty() {
        joined.extend_from_slice(delimiter);
    }
    joined.extend_from_slice(value);
    if let Ok(v) = HeaderValue::new(joined) {
        headers.insert(name, v);
    }
}

/// Envoy's `ConnectionManagerUtility::mutateRequestHeaders`, for a request
/// from downstream. `random` feeds `x-request-id` generation.
///
/// In order:
/// 1. Hop-by-hop fields go: `connection` and the fields it names, `upgrade`
///    and `te` other than `trailers` (all three kept verbatim for an upgrade),
///    `keep-alive`, `proxy-connection`, `transfer-encoding`, and a client's
///    `x-envoy-internal`. A repeated `referer` is dropped.
/// 2. With `use_remote_address`, the trusted client address is the element
///    `xff_num_trusted_hops` from the end of `x-forwarded-for` (before
///    appending), or else the peer; the peer is appended to
///    `x-forwarded-for` unless `skip_xff_append`; `x-forwarded-proto` is set
///    from the connection (`http`/`https`) unless a trusted hop set it.
///    Without it, the client address is the element `xff_num_trusted_hops`
///    from the end, and `x-forwarded-proto` is only set when absent.
/// 3. `:scheme`, when absent, is a valid `x-forwarded-proto`, else the
///    connection's (not for CONNECT).
/// 4. The request is internal when `x-forwarded-for` held no address but the
///    peer (with `use_remote_address`) or exactly one (without), and that
///    address is internal: `x-envoy-internal: true` is set. Otherwise the
///    untrusted `x-envoy-*` fields are removed
///    ([`UNTRUSTED_ENVOY_REQUEST_HEADERS`], plus
///    [`EDGE_ONLY_ENVOY_REQUEST_HEADERS`] on an edge request).
/// 5. `via` is appended; an edge request gets `x-envoy-external-address`.
/// 6. With `generate_request_id`, `x-request-id` is generated when absent,
///    and regenerated on an edge request unless `preserve_external_request_id`.
/// 7. `x-forwarded-client-cert` is removed unless ALWAYS_FORWARD_ONLY.
pub fn mutate_request_headers(
    headers: &mut HeaderMap,
    ctx: &RequestContext,
    config: &ConnectionManagerConfig,
    random: &mut dyn FnMut() -> u64,
) -> MutateOutcome {
    let connect = headers.method() == Some("CONNECT");
    let upgrade = if connect {
        Some("CONNECT".to_string())
    } else if ctx.codec_upgrade {
        is_upgrade(headers).map(str::to_string)
    } else {
        None
    };

    // 1. Hop-by-hop fields.
    if connect || upgrade.is_none() {
        remove_connection_options(headers, &["te"]);
        remove_all!(headers, ["upgrade"]);
        sanitize_te(headers);
    }
    remove_all!(headers, HOP_BY_HOP_ALWAYS);
    remove_all!(headers, ["x-envoy-internal"]);
    if headers.get_all("referer").nth(1).is_some() {
        headers.remove("referer");
    }

    // 2. The trusted client address, x-forwarded-for and x-forwarded-proto.
    let remote_ip = match ctx.remote_address.ip() {
        IpAddr::V4(v4) if config.represent_ipv4_remote_address_as_ipv4_mapped_ipv6 => {
            IpAddr::V6(v4.to_ipv6_mapped())
        }
        ip => ip,
    };
    let proto: &'static str = if ctx.tls { "https" } else { "http" };
    let hops = config.xff_num_trusted_hops;
    let (trusted, single_address) = if config.use_remote_address {
        let single = !headers.contains(X_FORWARDED_FOR.as_str());
        let from_xff =
            if hops > 0 { last_address_from_xff(headers, hops - 1).address } else { None };
        if !config.skip_xff_append {
            append_to_list(headers, X_FORWARDED_FOR, remote_ip.to_string().as_bytes(), b",");
        }
        if hops == 0 || !headers.contains(X_FORWARDED_PROTO.as_str()) {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
        if config.append_x_forwarded_port
            && (hops == 0 || !headers.contains(X_FORWARDED_PORT.as_str()))
        {
            headers
                .insert(X_FORWARDED_PORT, HeaderValue::from_u64(ctx.local_address.port().into()));
        }
        (Some(from_xff.unwrap_or(remote_ip)), single)
    } else {
        let xff = last_address_from_xff(headers, hops);
        (xff.address, xff.single_address)
    };
    if !headers.contains(X_FORWARDED_PROTO.as_str()) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }

    // 3. :scheme.
    if !connect && !headers.contains(":scheme") {
        let scheme = match headers.get_str(X_FORWARDED_PROTO.as_str()) {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            Some(p) if p.eq_ignore_ascii_case("http") => "http",
            _ => proto,
        };
        headers
            .insert(const { HeaderName::from_static(":scheme") }, HeaderValue::from_static(scheme));
    }

    // 4. Internal or external.
    let internal =
        single_address && trusted.is_some_and(|ip| config.internal_addresses.contains(ip));
    let edge = !internal && config.use_remote_address;
    if internal {
        headers.insert(X_ENVOY_INTERNAL, const { HeaderValue::from_static("true") });
    } else {
        if edge {
            remove_all!(headers, EDGE_ONLY_ENVOY_REQUEST_HEADERS);
        }
        remove_all!(headers, UNTRUSTED_ENVOY_REQUEST_HEADERS);
    }

    // 5. via, x-envoy-external-address.
    if let Some(via) = &config.via {
        append_to_list(headers, VIA, via.as_bytes(), b", ");
    }
    if edge
        && let Some(ip) = trusted
        && let Ok(v) = HeaderValue::try_from(ip.to_string())
    {
        headers.insert(X_ENVOY_EXTERNAL_ADDRESS, v);
    }

    // 6. x-request-id.
    if config.generate_request_id
        && (!headers.contains(X_REQUEST_ID.as_str())
            || (edge && !config.preserve_external_request_id))
    {
        headers.insert(X_REQUEST_ID, new_request_id(random));
    }

    // 7. x-forwarded-client-cert: no client certificates without TLS.
    if config.forward_client_cert_details != ForwardClientCertDetails::AlwaysForwardOnly {
        headers.remove("x-forwarded-client-cert");
    }

    MutateOutcome { internal, edge, trusted_downstream_address: trusted, upgrade }
}

/// Envoy's `mutateResponseHeaders` plus the `server` header the HCM's
/// `encodeHeaders` sets, for a response about to go downstream. `request` is
/// the request's headers after [`mutate_request_headers`] (`None` for a local
/// reply sent before the request headers were complete).
///
/// - `connection` (and the fields it names) and `upgrade` go unless this is
///   a 101 answering an upgrade request with `Connection: upgrade` and
///   `Upgrade` of its own; `transfer-encoding`, `keep-alive` and
///   `proxy-connection` always go (the encoder frames the body itself).
/// - `server` follows `server_header_transformation`.
/// - `x-request-id` is copied from the request when
///   `always_set_request_id_in_response` (or the request had
///   `x-envoy-force-trace`).
/// - `via` is appended.
pub fn mutate_response_headers(
    response: &mut HeaderMap,
    request: Option<&HeaderMap>,
    config: &ConnectionManagerConfig,
) {
    let switching = response.status() == Some(101)
        && request.is_some_and(|r| is_upgrade(r).is_some())
        && is_upgrade(response).is_some();
    if !switching {
        remove_connection_options(response, &[]);
        remove_all!(response, ["upgrade"]);
    }
    remove_all!(response, HOP_BY_HOP_ALWAYS);

    match config.server_header_transformation {
        ServerHeaderTransformation::Overwrite => {
            response.insert(SERVER, config.server_name.clone());
        }
        ServerHeaderTransformation::AppendIfAbsent => {
            if !response.contains(SERVER.as_str()) {
                response.insert(SERVER, config.server_name.clone());
            }
        }
        ServerHeaderTransformation::PassThrough => {}
    }

    if let Some(request) = request
        && (config.always_set_request_id_in_response || request.contains("x-envoy-force-trace"))
        && let Some(id) = request.get(X_REQUEST_ID.as_str())
    {
        response.insert(X_REQUEST_ID, id.clone());
    }

    if let Some(via) = &config.via {
        append_to_list(response, VIA, via.as_bytes(), b", ");
    }
}

/// Envoy's `maybeNormalizeHost`: strips a trailing `.` from the host
/// (`strip_trailing_host_dot`), then the port per `strip_port`
/// (`strip_matching_host_port` compares with `listener_port`). Never for
/// CONNECT, whose authority is the tunnel target. Returns the stripped port.
pub fn normalize_host(
    headers: &mut HeaderMap,
    config: &ConnectionManagerConfig,
    listener_port: u16,
) -> Option<u16> {
    use super::config::StripPortMode;

    if config.strip_trailing_host_dot
        && let Some(authority) = headers.authority()
    {
        let (host, port) = split_port(authority);
        if let Some(stripped) = host.strip_suffix('.') {
            let new = match port {
                Some(p) => format!("{stripped}:{p}"),
                None => stripped.to_string(),
            };
            if let Ok(v) = HeaderValue::try_from(new) {
                headers.insert(const { HeaderName::from_static(":authority") }, v);
            }
        }
    }
    let only_matching = match config.strip_port {
        StripPortMode::None => return None,
        StripPortMode::MatchingListener => true,
        StripPortMode::Any => false,
    };
    if headers.method() == Some("CONNECT") {
        return None;
    }
    let authority = headers.authority()?;
    let (host, Some(port_text)) = split_port(authority) else { return None };
    let port: u16 = port_text.parse().ok()?;
    if only_matching && port != listener_port {
        return None;
    }
    let v = HeaderValue::try_from(host).ok()?;
    headers.insert(const { HeaderName::from_static(":authority") }, v);
    Some(port)
}

/// Splits `host:port` (or `[v6]:port`); the port is `None` when absent.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    if authority.ends_with(']') {
        return (authority, None);
    }
    match authority.rfind(':') {
        // A bare IPv6 address has several colons and no brackets: no port.
        Some(i) if !authority[..i].contains(':') || authority.starts_with('[') => {
            (&authority[..i], Some(&authority[i + 1..]))
        }
        _ => (authority, None),
    }
}
