//! Turning a complete head into a [`HeaderMap`] plus the metadata the
//! connection manager needs: version, keep-alive, `Expect: 100-continue`,
//! upgrade/CONNECT, and how the body is framed.
//!
//! httparse does the tokenizing; this module adds what a proxy must check on
//! top of it: request smuggling (RFC 9112 §6.1, §6.3, §11.2), the
//! request-target forms (§3.2), `Host` rules, and the keep-alive decision (§9.3).

use std::mem::MaybeUninit;

use bytes::Bytes;
use week1_core::headers::{self, HeaderMap, HeaderName, HeaderValue};

use super::{BodyFraming, CodecError, Limits, Version};

/// A decoded request head (Envoy's request header map plus codec metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// `:method`, `:path` (absent for CONNECT), `:authority` (from `Host`, or
    /// from an absolute-form or authority-form target), `:scheme` (only for an
    /// absolute-form target), then the regular fields in wire order, names
    /// lowercased. `Host` itself is not kept: it became `:authority`.
    pub headers: HeaderMap,
    /// The request's version.
    pub version: Version,
    /// Whether the connection may carry another request after this one
    /// (RFC 9112 §9.3). False for CONNECT and upgrades: the connection becomes
    /// a tunnel.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
    /// An upgrade request (`Upgrade` and `Connection: upgrade`, HTTP/1.1,
    /// no body): what follows the head is tunnel data.
    pub upgrade: bool,
    /// A CONNECT request: what follows the head is tunnel data.
    pub connect: bool,
    /// How the body is framed.
    pub framing: BodyFraming,
}

impl RequestHead {
    /// The method (always present on a decoded head).
    pub fn method(&self) -> &str {
        self.headers.method().unwrap_or_default()
    }

    /// What the response decoder and encoder need to know about this request.
    pub fn info(&self) -> RequestInfo {
        RequestInfo {
            is_head: self.method() == "HEAD",
            is_connect: self.connect,
            is_upgrade: self.upgrade,
            version: self.version,
        }
    }
}

/// A decoded response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// `:status`, then the regular fields in wire order, names lowercased.
    /// The reason phrase is dropped, as Envoy does.
    pub headers: HeaderMap,
    /// The status code.
    pub status: u16,
    /// The response's version.
    pub version: Version,
    /// Whether the connection may carry another response after this one.
    pub keep_alive: bool,
    /// How the body is framed.
    pub framing: BodyFraming,
}

impl ResponseHead {
    /// A 1xx other than 101: an interim response, the final one follows.
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// What a response depends on from its request (RFC 9112 §6.3 rules 1–3):
/// given to [`ResponseDecoder::expect_response`](super::ResponseDecoder::expect_response)
/// and [`ResponseEncoder::new`](super::ResponseEncoder::new).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// A HEAD request: the response has no body whatever its headers say.
    pub is_head: bool,
    /// A CONNECT request: a 2xx response turns the connection into a tunnel.
    pub is_connect: bool,
    /// An upgrade request: a 101 response turns the connection into a tunnel.
    pub is_upgrade: bool,
    /// The request's version (an HTTP/1.0 client cannot read chunked bodies).
    pub version: Version,
}

impl RequestInfo {
    /// The info for a request with these headers and version, by the
    /// decoder's rules: an upgrade needs `Upgrade`, `Connection: upgrade`,
    /// HTTP/1.1 and no body.
    pub fn from_headers(headers: &HeaderMap, version: Version) -> Self {
        let method = headers.method().unwrap_or_default();
        let conn = connection_tokens(headers);
        let no_body = !headers.contains("transfer-encoding")
            && headers.get_str("content-length").is_none_or(|v| v.trim() == "0");
        Self {
            is_head: method == "HEAD",
            is_connect: method == "CONNECT",
            is_upgrade: method != "CONNECT"
                && version == Version::Http11
                && conn.upgrade
                && headers.contains("upgrade")
                && no_body,
            version,
        }
    }
}

/// `Connection` options that matter to the codec.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnectionTokens {
    pub(crate) close: bool,
    pub(crate) keep_alive: bool,
    pub(crate) upgrade: bool,
}

impl ConnectionTokens {
    fn add(&mut self, value: &[u8]) {
        for token in value.split(|&b| b == b',') {
            let token = trim_ows(token);
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            }
        }
    }
}

pub(crate) fn connection_tokens(headers: &HeaderMap) -> ConnectionTokens {
    let mut tokens = ConnectionTokens::default();
    for value in headers.get_all("connection") {
        tokens.add(value.as_bytes());
    }
    tokens
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

// ANCHOR: keep_alive
/// RFC 9112 §9.3: `close` always wins; HTTP/1.1 is persistent by default;
/// HTTP/1.0 only with `Connection: keep-alive`.
pub(crate) fn keep_alive(version: Version, conn: ConnectionTokens) -> bool {
    if conn.close {
        return false;
    }
    match version {
        Version::Http11 => true,
        Version::Http10 => conn.keep_alive,
    }
}
// ANCHOR_END: keep_alive

/// What the special header fields said, gathered in one pass over the head.
#[derive(Debug, Default)]
struct Framing {
    content_length: Option<u64>,
    /// `Transfer-Encoding` was present.
    te: bool,
    /// How many `chunked` codings, whether the last coding is `chunked`,
    /// whether another coding appeared, whether the list was malformed.
    te_chunked: u32,
    te_last_chunked: bool,
    te_other: bool,
    te_malformed: bool,
    conn: ConnectionTokens,
    upgrade_header: bool,
    expect_continue: bool,
}

impl Framing {
    fn content_length(&mut self, value: &[u8]) -> Result<(), CodecError> {
        if self.content_length.is_some() || value.contains(&b',') {
            // Duplicates are refused even when identical (Envoy's strict mode):
            // a lenient hop could pick another one.
            return Err(CodecError::MultipleContentLength);
        }
        if value.is_empty() || value.len() > 19 {
            return Err(CodecError::InvalidContentLength);
        }
        let mut n: u64 = 0;
        for &b in value {
            if !b.is_ascii_digit() {
                return Err(CodecError::InvalidContentLength);
            }
            n = n * 10 + u64::from(b - b'0'); // 19 digits cannot overflow u64
        }
        self.content_length = Some(n);
        Ok(())
    }

    fn transfer_encoding(&mut self, value: &[u8]) {
        self.te = true;
        for coding in value.split(|&b| b == b',') {
            let coding = trim_ows(coding);
            if coding.is_empty() {
                self.te_malformed = true;
                continue;
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.te_chunked += 1;
                self.te_last_chunked = true;
            } else {
                self.te_other = true;
                self.te_last_chunked = false;
            }
        }
    }

    // ANCHOR: smuggling_checks
    /// RFC 9112 §6.1 and §6.3, strictly: the checks that keep two parsers from
    /// disagreeing about where this message ends. Returns whether the body is
    /// chunked.
    fn check(&self, version: Version) -> Result<bool, CodecError> {
        if !self.te {
            return Ok(false);
        }
        if self.content_length.is_some() {
            return Err(CodecError::ContentLengthAndChunked);
        }
        if version == Version::Http10
            || self.te_malformed
            || self.te_chunked != 1
            || !self.te_last_chunked
        {
            // Chunked must be the final coding, exactly once; HTTP/1.0 has no
            // transfer codings, so a 1.0 message with one is faulty framing.
            return Err(CodecError::InvalidTransferEncoding);
        }
        if self.te_other {
            // e.g. `gzip, chunked`: well-formed, but not something we decode.
            return Err(CodecError::UnsupportedTransferEncoding);
        }
        Ok(true)
    }
    // ANCHOR_END: smuggling_checks
}

/// `head.slice_ref(part)` for a `part` that httparse found in `head`, with
/// fewer checks (`Bytes::slice` still checks the range).
fn part_of(head: &Bytes, part: &[u8]) -> Bytes {
    let start = part.as_ptr().addr().wrapping_sub(head.as_ptr().addr());
    head.slice(start..start.wrapping_add(part.len()))
}

/// The fields the codec itself acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    Expect,
    /// Any other field.
    No,
}

/// The lowercase name for a raw name, and whether the codec acts on that
/// field: a static name for common fields in any case (`Host`,
/// `user-agent`...: no allocation, no reference count), else zero-copy when
/// already lowercase.
#[inline(always)]
fn header_name(head: &Bytes, raw_bytes: &[u8]) -> Result<(HeaderName, Special), CodecError> {
    if raw_bytes.len() <= 32 {
        let mut lower = [0u8; 32];
        lower[..raw_bytes.len()].copy_from_slice(raw_bytes);
        // Over the whole fixed-size array, branch-free: vectorized.
        for b in &mut lower {
            *b |= u8::from(b.is_ascii_uppercase()) << 5;
        }
        if let Some(known) = common_name(&lower[..raw_bytes.len()]) {
            return Ok(known);
        }
    }
    // Every field the codec acts on has a static name above.
    let name =
        HeaderName::new(head.slice_ref(raw_bytes)).map_err(|_| CodecError::InvalidHeaderName)?;
    Ok((name, Special::No))
}

/// The `:method` value: static for the standard methods (no reference count
/// on the head), a slice of the head otherwise.
fn method_value(head: &Bytes, method: &[u8]) -> Result<HeaderValue, CodecError> {
    macro_rules! methods {
        ($($name:literal,)*) => {
            match method {
                $(name if name == $name.as_bytes() => {
                    const VALUE: HeaderValue = HeaderValue::from_static($name);
                    Ok(VALUE)
                })*
                _ => HeaderValue::new(head.slice_ref(method))
                    .map_err(|_| CodecError::InvalidMethod),
            }
        };
    }
    methods! { "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "TRACE", }
}

/// Static names for common fields. A `match` on bytes compiles to a switch
/// on the length then one comparison; each arm is a `const`, so nothing is
/// validated again at run time.
fn common_name(lower: &[u8]) -> Option<(HeaderName, Special)> {
    macro_rules! names {
        ($($bytes:literal => $name:literal $(: $special:ident)?,)*) => {
            match lower {
                $($bytes => {
                    const NAME: HeaderName = HeaderName::from_static($name);
                    Some((NAME, names!(@special $($special)?)))
                })*
                _ => None,
            }
        };
        (@special) => { Special::No };
        (@special $special:ident) => { Special::$special };
    }
    names! {
        b"host" => "host": Host,
        b"user-agent" => "user-agent",
        b"accept" => "accept",
        b"accept-encoding" => "accept-encoding",
        b"accept-language" => "accept-language",
        b"connection" => "connection": Connection,
        b"content-type" => "content-type",
        b"content-length" => "content-length": ContentLength,
        b"transfer-encoding" => "transfer-encoding": TransferEncoding,
        b"cookie" => "cookie",
        b"referer" => "referer",
        b"cache-control" => "cache-control",
        b"upgrade-insecure-requests" => "upgrade-insecure-requests",
        b"origin" => "origin",
        b"authorization" => "authorization",
        b"if-none-match" => "if-none-match",
        b"if-modified-since" => "if-modified-since",
        b"sec-fetch-dest" => "sec-fetch-dest",
        b"sec-fetch-mode" => "sec-fetch-mode",
        b"sec-fetch-site" => "sec-fetch-site",
        b"date" => "date",
        b"server" => "server",
        b"set-cookie" => "set-cookie",
        b"location" => "location",
        b"etag" => "etag",
        b"last-modified" => "last-modified",
        b"vary" => "vary",
        b"expect" => "expect": Expect,
        b"upgrade" => "upgrade": Upgrade,
    }
}

const STACK_HEADERS: usize = 128;

/// Runs `parse` with `count` uninitialized header slots, on the stack when
/// the count is small (the default 100 is).
fn with_header_slots<'b, R>(
    count: usize,
    parse: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> R,
) -> R {
    if count <= STACK_HEADERS {
        let mut slots = [const { MaybeUninit::<httparse::Header<'b>>::uninit() }; STACK_HEADERS];
        parse(&mut slots[..count])
    } else {
        let mut slots: Vec<httparse::Header<'b>> = Vec::with_capacity(count);
        parse(&mut slots.spare_capacity_mut()[..count])
    }
}

/// Where a part of a head lies in it, as offsets: a head is parsed while it
/// still sits in the read buffer, then cut out of it (zero-copy) once httparse
/// has told its length, and its parts become slices of that cut.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// The span of `part`, which httparse found inside `base`.
    fn of(base: &[u8], part: &[u8]) -> Self {
        let start = part.as_ptr().addr().wrapping_sub(base.as_ptr().addr());
        Self { start, end: start.wrapping_add(part.len()) }
    }

    fn bytes(self, head: &[u8]) -> &[u8] {
        head.get(self.start..self.end).unwrap_or_default()
    }

    fn slice(self, head: &Bytes) -> Bytes {
        head.slice(self.start..self.end)
    }
}

/// A header field httparse accepted: where its name and value lie.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldSpan {
    name: Span,
    value: Span,
}

/// Records where httparse found each field of `base`, reusing `out`'s storage.
fn record_fields(base: &[u8], fields: &[httparse::Header<'_>], out: &mut Vec<FieldSpan>) {
    out.clear();
    out.extend(fields.iter().map(|f| FieldSpan {
        name: Span::of(base, f.name.as_bytes()),
        value: Span::of(base, f.value),
    }));
}

/// Adds the fields of a head to `map`, noting the special ones in `framing`.
/// Each field is a name and its value, a slice of `head`. In a request head
/// (`host_count` given), `Host` is only counted, not added: the caller made
/// it `:authority`.
fn add_fields<'a>(
    head: &Bytes,
    fields: impl Iterator<Item = (&'a [u8], Bytes)>,
    map: &mut HeaderMap,
    framing: &mut Framing,
    mut host_count: Option<&mut u32>,
) -> Result<(), CodecError> {
    for (raw_name, raw_value) in fields {
        let (name, special) = header_name(head, raw_name)?;
        if special == Special::Host
            && let Some(count) = host_count.as_deref_mut()
        {
            // Checked as `:authority` by the caller.
            *count += 1;
            continue;
        }
        // httparse refused any byte `HeaderValue::new` would (the test
        // `field_values_follow_the_header_value_rule` checks every byte).
        let value = HeaderValue::from_parsed(raw_value);
        match special {
            Special::ContentLength => framing.content_length(value.as_bytes())?,
            Special::TransferEncoding => framing.transfer_encoding(value.as_bytes()),
            Special::Connection => framing.conn.add(value.as_bytes()),
            Special::Upgrade => framing.upgrade_header = true,
            Special::Expect => {
                framing.expect_continue |= value.as_bytes().eq_ignore_ascii_case(b"100-continue")
            }
            Special::Host | Special::No => {}
        }
        map.append(name, value);
    }
    Ok(())
}

/// The fields of a head as (name, value) pairs, values sliced from `head`.
fn spans_of<'a>(
    head: &'a Bytes,
    fields: &'a [FieldSpan],
) -> impl Iterator<Item = (&'a [u8], Bytes)> {
    fields.iter().map(|f| (f.name.bytes(head), f.value.slice(head)))
}

/// RFC 3986 authority characters (as nghttp2's and Envoy's authority check).
fn valid_authority(a: &[u8]) -> bool {
    const fn allowed(b: u8) -> bool {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'%'
                    | b'['
                    | b']'
            )
    }
    static ALLOWED: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            table[b] = allowed(b as u8);
            b += 1;
        }
        table
    };
    !a.is_empty() && a.iter().fold(true, |ok, &b| ok & ALLOWED[usize::from(b)])
}

/// The pseudo-headers a request-target gives.
struct Target {
    path: Option<Bytes>,
    authority: Option<Bytes>,
    scheme: Option<HeaderValue>,
}

// ANCHOR: request_target
/// RFC 9112 §3.2: origin-form (`/path?q`), absolute-form
/// (`http://host/path`), authority-form (`host:port`, CONNECT only) and
/// asterisk-form (`*`, OPTIONS only).
fn parse_target(
    head: &Bytes,
    method: &[u8],
    raw: &[u8],
    limits: &Limits,
) -> Result<Target, CodecError> {
    if raw.len() > limits.max_url_length {
        return Err(CodecError::UrlTooLong);
    }
    if !raw.is_ascii() {
        return Err(CodecError::InvalidUrl);
    }
    // ASCII, so UTF-8: the conversion cannot fail (only the rarer forms need text).
    let text = || std::str::from_utf8(raw).map_err(|_| CodecError::InvalidUrl);
    if method == b"CONNECT" {
        let target = text()?;
        let port_ok = match target.rsplit_once(':') {
            Some((host, port)) => {
                !host.is_empty()
                    && !port.is_empty()
                    && port.len() <= 5
                    && port.bytes().all(|b| b.is_ascii_digit())
            }
            None => false,
        };
        if !port_ok || !valid_authority(raw) || raw.contains(&b'@') {
            return Err(CodecError::InvalidUrl);
        }
        return Ok(Target { path: None, authority: Some(head.slice_ref(raw)), scheme: None });
    }
    if raw == b"*" {
        if method != b"OPTIONS" {
            return Err(CodecError::InvalidUrl);
        }
        return Ok(Target { path: Some(head.slice_ref(raw)), authority: None, scheme: None });
    }
    if raw.first() == Some(&b'/') {
        return Ok(Target { path: Some(head.slice_ref(raw)), authority: None, scheme: None });
    }
    // Absolute-form: the authority in the URI overrides Host (§3.2.2).
    let Some((scheme, rest)) = text()?.split_once("://") else {
        return Err(CodecError::InvalidUrl);
    };
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        const { HeaderValue::from_static("http") }
    } else if scheme.eq_ignore_ascii_case("https") {
        const { HeaderValue::from_static("https") }
    } else {
        return Err(CodecError::InvalidUrl);
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if !valid_authority(authority.as_bytes()) || authority.contains('@') {
        return Err(CodecError::InvalidUrl);
    }
    let path = if path.starts_with('/') {
        head.slice_ref(path.as_bytes())
    } else if path.is_empty() && method == b"OPTIONS" {
        Bytes::from_static(b"*")
    } else {
        let mut owned = Vec::with_capacity(path.len() + 1);
        owned.push(b'/');
        owned.extend_from_slice(path.as_bytes());
        Bytes::from(owned)
    };
    Ok(Target {
        path: Some(path),
        authority: Some(head.slice_ref(authority.as_bytes())),
        scheme: Some(scheme),
    })
}
// ANCHOR_END: request_target

/// A request head httparse accepted: its length and where its start-line
/// parts lie (the fields are in a separate, reused list).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRequest {
    pub(crate) len: usize,
    method: Span,
    target: Span,
    minor: u8,
}

/// Runs httparse over `bytes`. `Ok(None)`: the head is incomplete (or
/// httparse left out a part of the start line).
fn scan_request(
    bytes: &[u8],
    limits: &Limits,
    fields: &mut Vec<FieldSpan>,
) -> Result<Option<RawRequest>, httparse::Error> {
    with_header_slots(limits.max_headers_count as usize, |slots| {
        let mut req = httparse::Request::new(&mut []);
        let httparse::Status::Complete(len) = req.parse_with_uninit_headers(bytes, slots)? else {
            return Ok(None);
        };
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Ok(None);
        };
        record_fields(bytes, req.headers, fields);
        Ok(Some(RawRequest {
            len,
            method: Span::of(bytes, method.as_bytes()),
            target: Span::of(bytes, target.as_bytes()),
            minor,
        }))
    })
}

// ANCHOR: one_pass
/// The decoder's fast path: finds the end of the head at the start of
/// `front` and parses it in the same httparse pass. `Some` when the head is
/// complete within the size limit, httparse accepts it and every line ends in
/// CRLF; `None` sends the decoder to the incremental scanner, which resumes
/// across reads and reports the precise error.
pub(crate) fn request_in(
    front: &[u8],
    limits: &Limits,
    fields: &mut Vec<FieldSpan>,
) -> Option<RawRequest> {
    let window = &front[..front.len().min(limits.max_head_bytes())];
    let raw = scan_request(window, limits, fields).ok()??;
    crlf_line_ends(&window[..raw.len], fields).then_some(raw)
}

/// Whether every line of a head httparse accepted ends in CRLF (httparse
/// also takes a bare LF as a line end; a proxy must not, RFC 9112 §2.2).
/// httparse refuses a CR anywhere but before an LF, and obs-fold, so each
/// field name starts right after the LF that ended the line before it: one
/// byte look per line, no second scan of the head. The last field line and
/// the empty line are the head's last four bytes.
fn crlf_line_ends(head: &[u8], fields: &[FieldSpan]) -> bool {
    let crlf = head.ends_with(b"\r\n\r\n")
        && fields.iter().all(|f| head.get(f.name.start.wrapping_sub(2)) == Some(&b'\r'));
    debug_assert_eq!(crlf, memchr::memchr_iter(b'\r', head).count() == fields.len() + 2);
    crlf
}
// ANCHOR_END: one_pass

/// Parses a complete request head (`head` ends with CRLFCRLF), found by the
/// incremental scanner.
pub(crate) fn parse_request(
    head: Bytes,
    limits: &Limits,
    fields: &mut Vec<FieldSpan>,
) -> Result<RequestHead, CodecError> {
    match scan_request(&head, limits, fields) {
        Ok(Some(raw)) => build_request(head, &raw, fields, limits),
        Ok(None) => Err(CodecError::Malformed),
        Err(e) => Err(classify(&head, e, true)),
    }
}

/// Turns a head httparse accepted into a [`RequestHead`], with every check
/// a proxy adds on top of httparse.
pub(crate) fn build_request(
    head: Bytes,
    raw: &RawRequest,
    fields: &[FieldSpan],
    limits: &Limits,
) -> Result<RequestHead, CodecError> {
    let method = raw.method.bytes(&head);
    let minor = raw.minor;
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
    if version == Version::Http10 && !limits.accept_http_10 {
        return Err(CodecError::Http10NotAllowed);
    }
    let target = parse_target(&head, method, raw.target.bytes(&head), limits)?;

    // The pseudo-headers go in first, so every entry is a push (no
    // shifting the regular fields to make room). `Host` is looked up
    // before the fields are added; its errors still come after theirs.
    // Room for the pseudo-headers and what the proxy adds (x-forwarded-*, x-request-id,
    // x-envoy-*), so the map is allocated once.
    let mut map = HeaderMap::with_capacity(fields.len() + 10);
    map.append(headers::METHOD, method_value(&head, method)?);
    // The target is ASCII without controls or spaces (httparse's URI
    // check, then ours), and an authority passed `valid_authority`: both
    // follow the header value rule already.
    if let Some(path) = target.path {
        map.append(headers::PATH, HeaderValue::from_parsed(path));
    }
    let mut hosts = fields.iter().filter(|f| f.name.bytes(&head).eq_ignore_ascii_case(b"host"));
    let host = hosts.next().map(|f| f.value);
    let single_host = host.is_some() && hosts.next().is_none();
    let mut authority_error = None;
    match (target.authority, host) {
        (Some(from_target), _) => {
            map.append(headers::AUTHORITY, HeaderValue::from_parsed(from_target));
        }
        (None, Some(host)) if single_host => {
            if valid_authority(host.bytes(&head)) {
                map.append(headers::AUTHORITY, HeaderValue::from_parsed(host.slice(&head)));
            } else {
                authority_error = Some(CodecError::InvalidHost);
            }
        }
        // Several: `MultipleHost` once the fields are checked.
        (None, Some(_)) => {}
        (None, None) if version == Version::Http11 => {
            authority_error = Some(CodecError::MissingHost);
        }
        (None, None) => {}
    }
    if let Some(scheme) = target.scheme {
        map.append(headers::SCHEME, scheme);
    }
    let mut framing = Framing::default();
    let mut host_count = 0;
    add_fields(&head, spans_of(&head, fields), &mut map, &mut framing, Some(&mut host_count))?;

    if host_count > 1 {
        return Err(CodecError::MultipleHost);
    }
    if let Some(e) = authority_error {
        return Err(e);
    }

    // ANCHOR: request_framing
    let chunked = framing.check(version)?;
    let connect = method == b"CONNECT";
    let has_body = chunked || framing.content_length.is_some_and(|n| n > 0);
    // An upgrade with a body is served as a plain request (RFC 9110 §7.8
    // lets a server ignore Upgrade): the body must be read as HTTP first.
    let upgrade = !connect
        && version == Version::Http11
        && framing.conn.upgrade
        && framing.upgrade_header
        && !has_body;
    let framing_kind = if connect {
        if has_body {
            return Err(CodecError::BodyDisallowed);
        }
        BodyFraming::Tunnel
    } else if upgrade {
        BodyFraming::Tunnel
    } else if chunked {
        BodyFraming::Chunked
    } else if let Some(n) = framing.content_length {
        BodyFraming::ContentLength(n)
    } else {
        BodyFraming::None
    };
    // ANCHOR_END: request_framing
    let tunnel = framing_kind == BodyFraming::Tunnel;
    Ok(RequestHead {
        headers: map,
        version,
        keep_alive: !tunnel && keep_alive(version, framing.conn),
        expect_continue: version == Version::Http11 && framing.expect_continue,
        upgrade,
        connect,
        framing: framing_kind,
    })
}

/// A response head httparse accepted: its length and status line (the
/// fields are in a separate, reused list).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawResponse {
    pub(crate) len: usize,
    code: u16,
    minor: u8,
}

/// Runs httparse over `bytes`. `Ok(None)`: the head is incomplete.
fn scan_response(
    bytes: &[u8],
    limits: &Limits,
    fields: &mut Vec<FieldSpan>,
) -> Result<Option<RawResponse>, httparse::Error> {
    with_header_slots(limits.max_headers_count as usize, |slots| {
        let mut res = httparse::Response::new(&mut []);
        let httparse::Status::Complete(len) = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, bytes, slots)?
        else {
            return Ok(None);
        };
        let (Some(code), Some(minor)) = (res.code, res.version) else {
            return Ok(None);
        };
        record_fields(bytes, res.headers, fields);
        Ok(Some(RawResponse { len, code, minor }))
    })
}

/// [`request_in`] for a response head.
pub(crate) fn response_in(
    front: &[u8],
    limits: &Limits,
    fields: &mut Vec<FieldSpan>,
) -> Option<RawResponse> {
    let window = &front[..front.len().min(limits.max_head_bytes())];
    let raw = scan_response(window, limits, fields).ok()??;
    crlf_line_ends(&window[..raw.len], fields).then_some(raw)
}

/// Parses a complete response head (found by the incremental scanner)
/// answering the request described by `request`.
pub(crate) fn parse_response(
    head: Bytes,
    limits: &Limits,
    request: RequestInfo,
    fields: &mut Vec<FieldSpan>,
) -> Result<ResponseHead, CodecError> {
    match scan_response(&head, limits, fields) {
        Ok(Some(raw)) => build_response(head, &raw, fields, request),
        Ok(None) => Err(CodecError::Malformed),
        Err(e) => Err(classify(&head, e, false)),
    }
}

/// Turns a response head httparse accepted into a [`ResponseHead`].
pub(crate) fn build_response(
    head: Bytes,
    raw: &RawResponse,
    fields: &[FieldSpan],
    request: RequestInfo,
) -> Result<ResponseHead, CodecError> {
    let (code, minor) = (raw.code, raw.minor);
    if code < 100 {
        return Err(CodecError::InvalidStatus);
    }
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
    // Room for :status and what the proxy adds (server, x-envoy-upstream-service-time).
    let mut map = HeaderMap::with_capacity(fields.len() + 4);
    // "HTTP/1.x " is 9 bytes and httparse read the 3 digits after it:
    // share them rather than format the number again.
    let status = match head.get(9..12) {
        Some(digits) if digits == format_status(code) => head.slice(9..12),
        _ => Bytes::copy_from_slice(&format_status(code)),
    };
    map.append(headers::STATUS, HeaderValue::new(status).map_err(|_| CodecError::InvalidStatus)?);
    let mut framing = Framing::default();
    add_fields(&head, spans_of(&head, fields), &mut map, &mut framing, None)?;
    let chunked = framing.check(version)?;

    // ANCHOR: response_framing
    // RFC 9112 §6.3, in order.
    let framing_kind = if code == 101 {
        if !request.is_upgrade {
            return Err(CodecError::InvalidStatus);
        }
        BodyFraming::Tunnel
    } else if (100..200).contains(&code) || code == 204 || code == 304 || request.is_head {
        BodyFraming::None
    } else if request.is_connect && (200..300).contains(&code) {
        BodyFraming::Tunnel
    } else if chunked {
        BodyFraming::Chunked
    } else if let Some(n) = framing.content_length {
        BodyFraming::ContentLength(n)
    } else {
        BodyFraming::CloseDelimited
    };
    // ANCHOR_END: response_framing
    let persistent = !matches!(framing_kind, BodyFraming::CloseDelimited | BodyFraming::Tunnel);
    Ok(ResponseHead {
        headers: map,
        status: code,
        version,
        keep_alive: persistent && keep_alive(version, framing.conn),
        framing: framing_kind,
    })
}

/// Parses a complete trailer section (ends with CRLF, not empty).
pub(crate) fn parse_trailers(block: Bytes, limits: &Limits) -> Result<HeaderMap, CodecError> {
    let count = limits.max_headers_count as usize;
    let mut slots = vec![httparse::EMPTY_HEADER; count];
    let fields = match httparse::parse_headers(&block, &mut slots) {
        Ok(httparse::Status::Complete((_, fields))) => fields,
        Ok(httparse::Status::Partial) => return Err(CodecError::Malformed),
        Err(e) => return Err(classify_fields(&block, e)),
    };
    let mut map = HeaderMap::with_capacity(fields.len());
    let fields = fields.iter().map(|f| (f.name.as_bytes(), part_of(&block, f.value)));
    add_fields(&block, fields, &mut map, &mut Framing::default(), None)?;
    Ok(map)
}

/// Maps an httparse error on a head to a precise error kind. Only runs on the
/// error path, so it can afford a second look at the bytes.
fn classify(head: &[u8], e: httparse::Error, request: bool) -> CodecError {
    let line_end = head.windows(2).position(|w| w == b"\r\n").unwrap_or(head.len());
    let (start_line, fields) = head.split_at(line_end);
    if e != httparse::Error::TooManyHeaders
        && let Some(found) = classify_start_line(start_line, request)
    {
        return found;
    }
    classify_fields(fields.get(2..).unwrap_or_default(), e)
}

fn is_version(v: &[u8]) -> bool {
    v == b"HTTP/1.1" || v == b"HTTP/1.0"
}

/// What is wrong with a start line, if anything.
fn classify_start_line(line: &[u8], request: bool) -> Option<CodecError> {
    if line.iter().any(|&b| b.is_ascii_control()) {
        return Some(CodecError::InvalidCharacters);
    }
    let (first, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    if request {
        if first.is_empty() || !first.iter().all(|&b| is_tchar(b)) {
            return Some(CodecError::InvalidMethod);
        }
        let Some((target, version)) = rest.and_then(|r| {
            let i = r.iter().rposition(|&b| b == b' ')?;
            Some((&r[..i], &r[i + 1..]))
        }) else {
            return Some(CodecError::InvalidVersion);
        };
        if !is_version(version) {
            return Some(CodecError::InvalidVersion);
        }
        if target.is_empty() || target.iter().any(|&b| b == b' ' || b == 0x7f) {
            return Some(CodecError::InvalidUrl);
        }
        None
    } else {
        if !is_version(first) {
            return Some(CodecError::InvalidVersion);
        }
        let rest = rest.unwrap_or_default();
        let digits_ok = rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit);
        if !digits_ok || rest.get(3).is_some_and(|&b| b != b' ') {
            return Some(CodecError::InvalidStatus);
        }
        None
    }
}

/// Finds the first faulty field line and says what is wrong with it.
fn classify_fields(fields: &[u8], e: httparse::Error) -> CodecError {
    if e == httparse::Error::TooManyHeaders {
        return CodecError::TooManyHeaders;
    }
    for line in fields.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            return CodecError::ObsFold;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return if line.iter().any(|&b| b.is_ascii_control()) {
                CodecError::InvalidCharacters
            } else {
                CodecError::InvalidHeaderName
            };
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if !name.iter().all(|&b| is_tchar(b)) {
            let trimmed = trim_ows(name);
            return if trimmed.len() < name.len() && trimmed.iter().all(|&b| is_tchar(b)) {
                CodecError::WhitespaceBeforeColon
            } else if name.iter().any(|&b| b.is_ascii_control()) {
                CodecError::InvalidCharacters
            } else {
                CodecError::InvalidHeaderName
            };
        }
        if value.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
            return CodecError::InvalidCharacters;
        }
    }
    match e {
        httparse::Error::HeaderName => CodecError::InvalidHeaderName,
        httparse::Error::HeaderValue | httparse::Error::NewLine => CodecError::InvalidCharacters,
        _ => CodecError::Malformed,
    }
}

/// The three digits of a status code (`code` is below 1000: httparse reads 3 digits).
pub(crate) fn format_status(code: u16) -> [u8; 3] {
    let code = code % 1000;
    [b'0' + (code / 100) as u8, b'0' + (code / 10 % 10) as u8, b'0' + (code % 10) as u8]
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
