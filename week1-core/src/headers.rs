//! HTTP header maps, shared by every layer of mini-envoy.
//!
//! Mirrors Envoy's `Http::HeaderMap`: one ordered list of `(name, value)` entries
//! in which
//!
//! - names are case-insensitive (stored lowercase, as Envoy's codecs do),
//! - one name may carry several values (`get_all`, `append`),
//! - insertion order is kept, so a proxied message keeps its header order,
//! - HTTP/2-style pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`,
//!   `:status`) always sit before regular headers, whatever the insertion order.
//!
//! As Envoy's `HeaderMapImpl` keeps its O(1) inline headers, the map knows
//! which *well-known* fields it may hold (hop-by-hop fields, `host`,
//! `x-forwarded-*`, `x-request-id`, `x-envoy-*`...): each [`HeaderName`]
//! carries its bit in [`WELL_KNOWN`], computed once (at compile time for
//! `const` names, when the codec parses a name otherwise), and the map keeps
//! the union of its names' bits. Asking for, or removing, a well-known field
//! the map cannot hold answers at once instead of comparing every name; a
//! well-known field that is present is found by comparing bits, not text.
//!
//! The HTTP/1.1 codec (week 3) fills a map from the wire, the router (week 1)
//! reads it to pick a route, filters mutate it, and the codec encodes it again.
//! Values are [`Bytes`], so a codec can hand out slices of its read buffer
//! without copying. Names and values are validated on construction: a value can
//! never contain CR, LF or NUL, so encoding a map can never inject a header.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use bytestring::ByteString;

/// Why a header name or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHeader {
    /// The name is empty or has a byte that is not an RFC 9110 token character.
    #[error("invalid header name {0:?}")]
    Name(String),
    /// The value has CR, LF, NUL or another control character other than tab.
    #[error("invalid header value for {name}: contains a control character")]
    Value {
        /// The name the value was meant for, when known.
        name: String,
    },
}

/// `:method`
pub const METHOD: HeaderName = HeaderName::from_static(":method");
/// `:path`
pub const PATH: HeaderName = HeaderName::from_static(":path");
/// `:authority` (HTTP/1.1's `Host`)
pub const AUTHORITY: HeaderName = HeaderName::from_static(":authority");
/// `:scheme`
pub const SCHEME: HeaderName = HeaderName::from_static(":scheme");
/// `:status`
pub const STATUS: HeaderName = HeaderName::from_static(":status");

/// RFC 9110 `tchar`.
const fn is_token_byte(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Declares the well-known names: the [`WELL_KNOWN`] table and the run-time
/// lookup of a name's bit, from one list.
macro_rules! well_known {
    ($($bit:literal => $name:literal,)*) => {
        /// Fields the map tracks by presence bit (bit `i` for `WELL_KNOWN[i]`),
        /// the ones a proxy asks for or strips on every request. Any other
        /// `x-envoy-*` name shares bit 63 ([`OTHER_X_ENVOY`]).
        pub const WELL_KNOWN: [&str; [$($bit),*].len()] = [$(
            match std::str::from_utf8($name) {
                Ok(name) => name,
                Err(_) => panic!("well-known names are ASCII"),
            }
        ),*];

        /// The presence bit of a lowercase name, at run time: a `match` on
        /// literals (a switch on the length, then a comparison). Inlined: for
        /// a literal name the compiler folds it to a constant.
        #[inline]
        fn well_known_bit(lower: &[u8]) -> u64 {
            match lower {
                $($name => 1 << $bit,)*
                [b'x', b'-', b'e', b'n', b'v', b'o', b'y', b'-', ..] => OTHER_X_ENVOY,
                _ => 0,
            }
        }
    };
}

well_known! {
    0 => b":method",
    1 => b":path",
    2 => b":authority",
    3 => b":scheme",
    4 => b":status",
    5 => b"host",
    6 => b"content-length",
    7 => b"transfer-encoding",
    8 => b"connection",
    9 => b"keep-alive",
    10 => b"proxy-connection",
    11 => b"te",
    12 => b"upgrade",
    13 => b"expect",
    14 => b"trailer",
    15 => b"via",
    16 => b"referer",
    17 => b"x-forwarded-for",
    18 => b"x-forwarded-proto",
    19 => b"x-forwarded-host",
    20 => b"x-forwarded-port",
    21 => b"x-forwarded-client-cert",
    22 => b"x-request-id",
    23 => b"x-client-trace-id",
    24 => b"x-envoy-internal",
    25 => b"x-envoy-external-address",
    26 => b"x-envoy-original-path",
    27 => b"x-envoy-original-url",
    28 => b"x-envoy-decorator-operation",
    29 => b"x-envoy-downstream-service-cluster",
    30 => b"x-envoy-downstream-service-node",
    31 => b"x-envoy-expected-rq-timeout-ms",
    32 => b"x-envoy-upstream-rq-timeout-ms",
    33 => b"x-envoy-upstream-rq-per-try-timeout-ms",
    34 => b"x-envoy-upstream-rq-timeout-alt-response",
    35 => b"x-envoy-upstream-alt-stat-name",
    36 => b"x-envoy-upstream-service-time",
    37 => b"x-envoy-retry-on",
    38 => b"x-envoy-retry-grpc-on",
    39 => b"x-envoy-max-retries",
    40 => b"x-envoy-retriable-status-codes",
    41 => b"x-envoy-retriable-header-names",
    42 => b"x-envoy-hedge-on-per-try-timeout",
    43 => b"x-envoy-force-trace",
    44 => b"x-envoy-ip-tags",
    45 => b"x-envoy-attempt-count",
    46 => b"x-envoy-overloaded",
    47 => b"x-envoy-immediate-health-check-fail",
}

/// The presence bit shared by every `x-envoy-*` name not in [`WELL_KNOWN`].
pub const OTHER_X_ENVOY: u64 = 1 << 63;

const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// [`well_known_bit`] in a `const` context (a search of the table; at run
/// time only for a name `from_static` is given outside a `const`).
const fn well_known_bit_const(lower: &[u8]) -> u64 {
    let mut i = 0;
    while i < WELL_KNOWN.len() {
        if bytes_eq(WELL_KNOWN[i].as_bytes(), lower) {
            return 1 << i;
        }
        i += 1;
    }
    if lower.len() >= 8 && bytes_eq(lower.split_at(8).0, b"x-envoy-") {
        return OTHER_X_ENVOY;
    }
    0
}

/// The presence bits of `names` (lowercase), for
/// [`HeaderMap::may_contain_any`]: computed at compile time for a `const`
/// list. `u64::MAX` ("may hold any") when a name has no bit of its own, so a
/// check with it never skips wrongly.
pub const fn well_known_bits(names: &[&str]) -> u64 {
    let mut bits = 0;
    let mut i = 0;
    while i < names.len() {
        let bit = well_known_bit_const(names[i].as_bytes());
        if bit == 0 {
            return u64::MAX;
        }
        bits |= bit;
        i += 1;
    }
    bits
}

/// A lowercase header name. Pseudo-header names start with `:`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderName {
    name: ByteString,
    /// Its presence bit (see [`WELL_KNOWN`]); 0 for other names. A function
    /// of `name`, so the derived comparisons stay those of the text.
    bit: u64,
}

impl HeaderName {
    /// Validates `name` and lowercases it (without copying when it is already lowercase).
    pub fn new(name: impl Into<Bytes>) -> Result<Self, InvalidHeader> {
        let name: Bytes = name.into();
        let body = name.strip_prefix(b":").unwrap_or(&name);
        if body.is_empty() || !body.iter().all(|&b| is_token_byte(b)) {
            return Err(InvalidHeader::Name(String::from_utf8_lossy(&name).into_owned()));
        }
        let name = if name.iter().any(u8::is_ascii_uppercase) {
            name.to_ascii_lowercase().into()
        } else {
            name
        };
        // Token characters are ASCII, so this is valid UTF-8: checked once here,
        // so `as_str` is free on the request path.
        let bit = well_known_bit(&name);
        ByteString::try_from(name)
            .map(|name| Self { name, bit })
            .map_err(|_| InvalidHeader::Name("non-ASCII header name".to_string()))
    }

    /// A name known at compile time. It must already be lowercase and valid;
    /// an invalid literal fails the build when used in a `const`.
    pub const fn from_static(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty(), "empty header name");
        let mut i = if bytes[0] == b':' { 1 } else { 0 };
        assert!(i < bytes.len(), "empty pseudo-header name");
        while i < bytes.len() {
            let b = bytes[i];
            assert!(
                is_token_byte(b) && !b.is_ascii_uppercase(),
                "header name literal must be a lowercase token"
            );
            i += 1;
        }
        Self { name: ByteString::from_static(name), bit: well_known_bit_const(bytes) }
    }

    /// The lowercase name as text (names are always ASCII).
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The lowercase name as bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.name.as_bytes()
    }

    /// Its presence bit in [`WELL_KNOWN`] ([`OTHER_X_ENVOY`] for another
    /// `x-envoy-*` name, 0 for any other name).
    #[inline]
    pub fn well_known_bit(&self) -> u64 {
        self.bit
    }

    /// Whether this is a pseudo-header such as `:path`.
    #[inline]
    pub fn is_pseudo(&self) -> bool {
        self.name.as_bytes().first() == Some(&b':')
    }

    /// Case-insensitive comparison with a name given as text.
    pub fn matches(&self, name: &str) -> bool {
        // Names are stored lowercase and usually asked for in lowercase: an
        // exact comparison first (a length check, then memcmp).
        self.name.len() == name.len()
            && (self.name.as_bytes() == name.as_bytes() || self.name.eq_ignore_ascii_case(name))
    }
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<&str> for HeaderName {
    type Error = InvalidHeader;
    fn try_from(name: &str) -> Result<Self, InvalidHeader> {
        Self::new(Bytes::copy_from_slice(name.as_bytes()))
    }
}

impl TryFrom<String> for HeaderName {
    type Error = InvalidHeader;
    fn try_from(name: String) -> Result<Self, InvalidHeader> {
        Self::new(Bytes::from(name))
    }
}

/// A header value: any bytes except control characters other than horizontal tab.
///
/// HTTP allows obs-text (bytes 0x80–0xFF) in values, so a value is bytes, and
/// [`HeaderValue::to_str`] answers `None` for a value that is not UTF-8.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderValue(Bytes);

const fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Whether every byte is allowed in a value: codecs validate every header
/// value they parse, so this is on the hot path of every request.
///
/// Eight bytes at a time (SWAR): a word with no byte below 0x20 and none equal
/// to 0x7f is accepted at once. A word that may hold one (a tab does too) sends
/// the whole value to the exact byte-wise check, so the answer is always
/// exactly `value.iter().all(is_value_byte)`.
fn all_value_bytes(value: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut words = value.chunks_exact(8);
    let mut suspect = 0u64;
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_ne_bytes(bytes);
        // High bit of a byte set when that byte is below 0x20 (no false negatives).
        let below_space = x.wrapping_sub(0x20 * ONES) & !x & HIGH;
        // High bit of a byte set when that byte is 0x7f.
        let y = x ^ (0x7f * ONES);
        let del = y.wrapping_sub(ONES) & !y & HIGH;
        suspect |= below_space | del;
    }
    if suspect == 0 && words.remainder().iter().all(|&b| is_value_byte(b)) {
        return true;
    }
    value.iter().all(|&b| is_value_byte(b))
}

impl HeaderValue {
    // ANCHOR: header_value_new
    /// Validates `value`.
    pub fn new(value: impl Into<Bytes>) -> Result<Self, InvalidHeader> {
        let value: Bytes = value.into();
        if all_value_bytes(&value) {
            Ok(Self(value))
        } else {
            Err(InvalidHeader::Value { name: String::new() })
        }
    }
    // ANCHOR_END: header_value_new

    /// A value an HTTP parser has already checked against exactly the rule
    /// of [`new`](Self::new) (httparse's field-value check is that rule:
    /// tab, 0x20–0x7e and obs-text). The check is not repeated in release
    /// builds, since it would scan every header byte of every request twice;
    /// debug builds (tests, fuzzing) still assert it. Anything that did not
    /// come out of such a parser must use [`new`](Self::new).
    #[doc(hidden)]
    #[inline]
    pub fn from_parsed(value: Bytes) -> Self {
        debug_assert!(all_value_bytes(&value), "parser let a control character through");
        Self(value)
    }

    /// A value known at compile time.
    pub const fn from_static(value: &'static str) -> Self {
        let bytes = value.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            assert!(is_value_byte(bytes[i]), "header value literal has a control character");
            i += 1;
        }
        Self(Bytes::from_static(bytes))
    }

    /// The decimal text of `n`.
    pub fn from_u64(n: u64) -> Self {
        Self(Bytes::from(n.to_string()))
    }

    /// The value as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as text, when it is UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The value as text, with invalid UTF-8 replaced.
    pub fn to_str_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// The value's underlying shared bytes.
    pub fn as_shared(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_str_lossy(), f)
    }
}

/// A number as a header value (`content-length`, `x-envoy-upstream-service-time`):
/// decimal digits are always a valid value.
impl From<u64> for HeaderValue {
    fn from(n: u64) -> Self {
        let mut digits = itoa_u64(n);
        HeaderValue::from_parsed(Bytes::copy_from_slice(digits.as_slice()))
    }
}

/// The decimal digits of `n` without allocating a `String`.
fn itoa_u64(mut n: u64) -> DigitBuf {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    DigitBuf { buf, start: i }
}

struct DigitBuf {
    buf: [u8; 20],
    start: usize,
}

impl DigitBuf {
    fn as_slice(&mut self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl TryFrom<&str> for HeaderValue {
    type Error = InvalidHeader;
    fn try_from(value: &str) -> Result<Self, InvalidHeader> {
        Self::new(Bytes::copy_from_slice(value.as_bytes()))
    }
}

impl TryFrom<String> for HeaderValue {
    type Error = InvalidHeader;
    fn try_from(value: String) -> Result<Self, InvalidHeader> {
        Self::new(Bytes::from(value))
    }
}

// ANCHOR: header_map
/// An ordered, case-insensitive, multi-valued header map.
#[derive(Clone, Default)]
pub struct HeaderMap {
    entries: Vec<(HeaderName, HeaderValue)>,
    /// Number of leading entries that are pseudo-headers.
    pseudo_count: usize,
    /// Sum of name and value lengths, as Envoy's `byteSize()`.
    byte_size: usize,
    /// At least the union of the entries' well-known bits: a bit not set
    /// means no entry has that name.
    present: u64,
}
// ANCHOR_END: header_map

/// Maps are equal when their entries are (the presence bits are a cache).
impl PartialEq for HeaderMap {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for HeaderMap {}

/// The presence bit of a name asked for as text, when it is given in
/// lowercase (the usual case): the map answers "absent" at once when that
/// bit is not set. 0 when the name is not well-known or not lowercase.
#[inline]
fn lookup_bit(name: &str) -> u64 {
    well_known_bit(name.as_bytes())
}

impl HeaderMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        Self { entries: Vec::with_capacity(n), ..Self::default() }
    }

    /// Number of entries (a name with two values counts twice).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total bytes of names and values: what `max_request_headers_kb` limits.
    pub fn byte_size(&self) -> usize {
        self.byte_size
    }

    // ANCHOR: append
    /// Adds a value, keeping any existing values of the same name.
    #[inline]
    pub fn append(&mut self, name: HeaderName, value: HeaderValue) {
        self.byte_size += name.as_bytes().len() + value.len();
        self.present |= name.bit;
        if name.is_pseudo() {
            self.entries.insert(self.pseudo_count, (name, value));
            self.pseudo_count += 1;
        } else {
            self.entries.push((name, value));
        }
    }
    // ANCHOR_END: append

    /// Sets the only value of `name`: the first existing entry is replaced in
    /// place (keeping its position) and any others are removed.
    pub fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        // The name knows its presence bit: no classification of the text.
        let known = name.bit != 0 && name.bit != OTHER_X_ENVOY;
        let at = if known && self.present & name.bit == 0 {
            None
        } else {
            self.position_with_bit(name.as_str(), name.bit)
        };
        match at {
            Some(first) => {
                let old = &mut self.entries[first].1;
                self.byte_size = self.byte_size - old.len() + value.len();
                *old = value;
                let mut i = first + 1;
                while i < self.entries.len() {
                    if self.entries[i].0 == name {
                        self.remove_at(i);
                    } else {
                        i += 1;
                    }
                }
            }
            None => self.append(name, value),
        }
    }

    /// [`append`](Self::append) from text, validating both parts.
    pub fn try_append(&mut self, name: &str, value: &str) -> Result<(), InvalidHeader> {
        let name = HeaderName::try_from(name)?;
        let value = HeaderValue::try_from(value)
            .map_err(|_| InvalidHeader::Value { name: name.to_string() })?;
        self.append(name, value);
        Ok(())
    }

    /// [`insert`](Self::insert) from text, validating both parts.
    pub fn try_insert(&mut self, name: &str, value: &str) -> Result<(), InvalidHeader> {
        let name = HeaderName::try_from(name)?;
        let value = HeaderValue::try_from(value)
            .map_err(|_| InvalidHeader::Value { name: name.to_string() })?;
        self.insert(name, value);
        Ok(())
    }

    /// Inlined, so a name written as a literal at the call site gets its
    /// presence bit at compile time (the classification folds away).
    #[inline]
    fn position(&self, name: &str) -> Option<usize> {
        let bit = lookup_bit(name);
        if bit != 0 && bit != OTHER_X_ENVOY && self.present & bit == 0 {
            return None;
        }
        self.position_with_bit(name, bit)
    }

    fn position_with_bit(&self, name: &str, bit: u64) -> Option<usize> {
        let (range, offset) = if name.starts_with(':') {
            (&self.entries[..self.pseudo_count], 0)
        } else {
            (&self.entries[self.pseudo_count..], self.pseudo_count)
        };
        let found = if bit == 0 || bit == OTHER_X_ENVOY {
            range.iter().position(|(n, _)| n.matches(name))
        } else if self.present & bit == 0 {
            None
        } else {
            // A well-known name: one integer comparison per entry.
            range.iter().position(|(n, _)| n.bit == bit)
        };
        found.map(|i| i + offset)
    }

    /// Whether an entry named `name` may be present: false when the name is
    /// well-known and its presence bit is not set.
    #[inline]
    fn may_contain(&self, name: &str) -> bool {
        let bit = lookup_bit(name);
        bit == 0 || self.present & bit != 0
    }

    fn remove_at(&mut self, i: usize) -> (HeaderName, HeaderValue) {
        let (name, value) = self.entries.remove(i);
        self.byte_size -= name.as_bytes().len() + value.len();
        if i < self.pseudo_count {
            self.pseudo_count -= 1;
        }
        (name, value)
    }

    /// The first value of `name` (case-insensitive).
    #[inline]
    pub fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.position(name).map(|i| &self.entries[i].1)
    }

    /// The first value of `name` as text, when it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(HeaderValue::to_str)
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a HeaderValue> + 'a {
        let entries = if self.may_contain(name) { &self.entries[..] } else { &[] };
        entries.iter().filter(move |(n, _)| n.matches(name)).map(|(_, v)| v)
    }

    /// All values of `name` joined with `,` (RFC 9110 list semantics), or `None`
    /// when absent. Borrows when there is a single value.
    pub fn get_joined(&self, name: &str) -> Option<Cow<'_, str>> {
        let entries = if self.may_contain(name) { &self.entries[..] } else { &[] };
        let mut values = entries.iter().filter(|(n, _)| n.matches(name)).map(|(_, v)| v);
        let first = values.next()?;
        let mut joined: Cow<'_, str> = first.to_str_lossy();
        for v in values {
            let s = joined.to_mut();
            s.push(',');
            s.push_str(&v.to_str_lossy());
        }
        Some(joined)
    }

    /// Whether `name` has at least one value.
    #[inline]
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Removes every value of `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let bit = lookup_bit(name);
        if bit != 0 && self.present & bit == 0 {
            return 0;
        }
        if bit != 0 && bit != OTHER_X_ENVOY {
            // Every entry with this name goes: the bit is exact again.
            self.present &= !bit;
        }
        let mut removed = 0;
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].0.matches(name) {
                self.remove_at(i);
                removed += 1;
            } else {
                i += 1;
            }
        }
        removed
    }

    /// Keeps only the entries for which `keep` answers true.
    pub fn retain(&mut self, mut keep: impl FnMut(&HeaderName, &HeaderValue) -> bool) {
        let mut i = 0;
        let mut present = 0;
        while i < self.entries.len() {
            let (n, v) = &self.entries[i];
            if keep(n, v) {
                present |= n.bit;
                i += 1;
            } else {
                self.remove_at(i);
            }
        }
        self.present = present;
    }

    /// Whether the map may hold a field with one of these presence bits
    /// ([`well_known_bits`]). False means it certainly holds none: a
    /// sanitiser can skip its scan of the entries.
    #[inline]
    pub fn may_contain_any(&self, bits: u64) -> bool {
        self.present & bits != 0
    }

    /// Entries in order: pseudo-headers first, then regular headers as inserted.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&HeaderName, &HeaderValue)> {
        self.entries.iter().map(|(n, v)| (n, v))
    }

    /// Regular (non-pseudo) entries in order.
    pub fn regular(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.entries[self.pseudo_count..].iter().map(|(n, v)| (n, v))
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.pseudo_count = 0;
        self.byte_size = 0;
        self.present = 0;
    }

    /// `:method`, when set and UTF-8.
    pub fn method(&self) -> Option<&str> {
        self.pseudo(":method", const { well_known_bit_const(b":method") })
    }

    /// `:path` (with the query string), when set and UTF-8.
    pub fn path(&self) -> Option<&str> {
        self.pseudo(":path", const { well_known_bit_const(b":path") })
    }

    /// `:authority`, when set and UTF-8.
    pub fn authority(&self) -> Option<&str> {
        self.pseudo(":authority", const { well_known_bit_const(b":authority") })
    }

    /// `:scheme`, when set and UTF-8.
    pub fn scheme(&self) -> Option<&str> {
        self.pseudo(":scheme", const { well_known_bit_const(b":scheme") })
    }

    /// `:status` parsed as a number, when set and valid.
    pub fn status(&self) -> Option<u16> {
        self.pseudo(":status", const { well_known_bit_const(b":status") })?.parse().ok()
    }

    /// A pseudo-header's value as text, its presence bit computed at compile time.
    #[inline]
    fn pseudo(&self, name: &str, bit: u64) -> Option<&str> {
        if self.present & bit == 0 {
            return None;
        }
        let i = self.position_with_bit(name, bit)?;
        self.entries[i].1.to_str()
    }
}

impl fmt::Debug for HeaderMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a HeaderMap {
    type Item = (&'a HeaderName, &'a HeaderValue);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (HeaderName, HeaderValue)>,
        fn(&'a (HeaderName, HeaderValue)) -> (&'a HeaderName, &'a HeaderValue),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(n, v)| (n, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.try_append(n, v).unwrap();
        }
        m
    }

    #[test]
    fn names_are_case_insensitive_and_stored_lowercase() {
        let m = map(&[("Content-Type", "text/plain")]);
        assert_eq!(m.get_str("content-type"), Some("text/plain"));
        assert_eq!(m.get_str("CONTENT-TYPE"), Some("text/plain"));
        assert_eq!(m.iter().next().unwrap().0.as_str(), "content-type");
    }

    #[test]
    fn multiple_values_keep_order_and_join() {
        let m = map(&[("x-a", "1"), ("x-b", "2"), ("X-A", "3")]);
        let all: Vec<_> = m.get_all("x-a").map(|v| v.to_str().unwrap()).collect();
        assert_eq!(all, ["1", "3"]);
        assert_eq!(m.get_joined("x-a").unwrap(), "1,3");
        let names: Vec<_> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-a", "x-b", "x-a"]);
    }

    #[test]
    fn pseudo_headers_stay_first() {
        let m = map(&[("host", "h"), (":method", "GET"), ("accept", "*/*"), (":path", "/")]);
        let names: Vec<_> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [":method", ":path", "host", "accept"]);
        assert_eq!(m.method(), Some("GET"));
        assert_eq!(m.path(), Some("/"));
        assert_eq!(m.regular().count(), 2);
    }

    #[test]
    fn insert_replaces_in_place_and_removes_duplicates() {
        let mut m = map(&[("a", "1"), ("b", "2"), ("a", "3")]);
        m.try_insert("A", "9").unwrap();
        let pairs: Vec<_> = m.iter().map(|(n, v)| (n.as_str(), v.to_str().unwrap())).collect();
        assert_eq!(pairs, [("a", "9"), ("b", "2")]);
    }

    #[test]
    fn remove_and_byte_size() {
        let mut m = map(&[(":status", "200"), ("a", "1"), ("a", "22")]);
        assert_eq!(m.byte_size(), ":status".len() + 3 + 1 + 1 + 1 + 2);
        assert_eq!(m.remove("A"), 2);
        assert_eq!(m.byte_size(), ":status".len() + 3);
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.remove(":status"), 1);
        assert!(m.is_empty());
        assert_eq!(m.byte_size(), 0);
    }

    #[test]
    fn invalid_names_and_values_are_errors() {
        assert!(HeaderName::try_from("").is_err());
        assert!(HeaderName::try_from(":").is_err());
        assert!(HeaderName::try_from("bad name").is_err());
        assert!(HeaderName::try_from("bad:name").is_err());
        assert!(HeaderValue::try_from("a\r\nx-injected: 1").is_err());
        assert!(HeaderValue::try_from("nul\0").is_err());
        assert!(HeaderValue::try_from("tab\tok").is_ok());
        assert!(HeaderValue::new(Bytes::from_static(b"obs\xfftext")).is_ok());
        let mut m = HeaderMap::new();
        assert_eq!(m.try_append("x", "a\nb"), Err(InvalidHeader::Value { name: "x".into() }));
    }

    #[test]
    fn well_known_names_have_their_own_bit() {
        assert!(WELL_KNOWN.len() < 63);
        for (i, name) in WELL_KNOWN.iter().enumerate() {
            let parsed = HeaderName::try_from(name.to_ascii_uppercase().as_str()).unwrap();
            assert_eq!(parsed.well_known_bit(), 1 << i, "{name}");
            assert_eq!(well_known_bit_const(name.as_bytes()), 1 << i, "{name}");
        }
        assert_eq!(HeaderName::try_from("x-envoy-custom").unwrap().well_known_bit(), OTHER_X_ENVOY);
        assert_eq!(HeaderName::try_from("x-custom").unwrap().well_known_bit(), 0);
        assert_eq!(well_known_bits(&["te", "upgrade"]), (1 << 11) | (1 << 12));
        assert_eq!(well_known_bits(&["te", "x-custom"]), u64::MAX);
        assert_eq!(well_known_bits(&["x-envoy-custom"]), OTHER_X_ENVOY);
    }

    #[test]
    fn absent_well_known_fields_are_answered_from_the_bits() {
        let mut m = map(&[("host", "h"), ("x-envoy-custom", "1"), ("accept", "*/*")]);
        assert!(m.may_contain_any(well_known_bits(&["host"])));
        assert!(!m.may_contain_any(well_known_bits(&["te", "connection", "upgrade"])));
        assert!(m.may_contain_any(well_known_bits(&["x-envoy-other"])));
        assert!(m.may_contain_any(well_known_bits(&["x-anything"])));
        assert_eq!(m.remove("host"), 1);
        assert!(!m.may_contain_any(well_known_bits(&["host"])));
        m.retain(|n, _| n.as_str() != "x-envoy-custom");
        assert!(!m.may_contain_any(OTHER_X_ENVOY));
        m.try_append("Host", "again").unwrap();
        assert_eq!(m.get_str("host"), Some("again"));
        assert_eq!(m.get_str("HOST"), Some("again"));
        m.clear();
        assert!(!m.may_contain_any(u64::MAX));
    }

    #[test]
    fn lowercase_names_are_not_copied() {
        let raw = Bytes::from_static(b"x-lower");
        let name = HeaderName::new(raw.clone()).unwrap();
        assert_eq!(name.as_bytes().as_ptr(), raw.as_ptr());
    }

    #[test]
    fn value_check_finds_each_control_byte_at_each_position() {
        for len in 0..20 {
            for pos in 0..len {
                for bad in (0u8..0x20).filter(|&b| b != b'\t').chain([0x7f]) {
                    let mut v = vec![b'a'; len];
                    v[pos] = bad;
                    assert!(HeaderValue::new(v).is_err(), "len {len} pos {pos} byte {bad:#x}");
                }
                let mut v = vec![0xff; len];
                v[pos] = b'\t';
                assert!(HeaderValue::new(v).is_ok());
            }
        }
    }

    proptest! {
        /// The word-at-a-time value check answers exactly as the byte-wise rule.
        #[test]
        fn value_check_matches_the_bytewise_rule(v in prop::collection::vec(
            prop_oneof![Just(b'\t'), Just(0x7fu8), Just(0u8), Just(b'\r'), Just(b'\n'), any::<u8>(), 0x20u8..0x7f], 0..40))
        {
            let want = v.iter().all(|&b| is_value_byte(b));
            prop_assert_eq!(HeaderValue::new(v).is_ok(), want);
        }

        /// The map behaves like a simple model: a list of (lowercase name, value).
        #[test]
        fn matches_a_list_model(ops in prop::collection::vec(
            (0u8..5, "[a-cA-C]{1,2}|:p|:path|te|TE|host|Host|x-envoy-a|x-envoy-internal|X-Envoy-Internal", "[a-z0-9]{0,3}"), 0..40))
        {
            let mut m = HeaderMap::new();
            let mut model: Vec<(String, String)> = Vec::new();
            for (op, name, value) in ops {
                let lower = name.to_ascii_lowercase();
                match op {
                    0 => { m.try_append(&name, &value).unwrap(); model.push((lower, value)); }
                    1 => {
                        m.try_insert(&name, &value).unwrap();
                        match model.iter().position(|(n, _)| *n == lower) {
                            Some(i) => {
                                model[i].1 = value;
                                let mut j = i + 1;
                                while j < model.len() {
                                    if model[j].0 == lower { model.remove(j); } else { j += 1; }
                                }
                            }
                            None => model.push((lower, value)),
                        }
                    }
                    2 => {
                        let before = model.len();
                        model.retain(|(n, _)| *n != lower);
                        prop_assert_eq!(m.remove(&name), before - model.len());
                    }
                    3 => {
                        // retain recomputes the presence bits.
                        model.retain(|(n, _)| *n != lower);
                        m.retain(|n, _| n.as_str() != lower);
                    }
                    _ => {
                        let want = model.iter().find(|(n, _)| *n == lower).map(|(_, v)| v.as_str());
                        prop_assert_eq!(m.get_str(&name), want);
                        prop_assert_eq!(m.get_str(&lower), want);
                        prop_assert_eq!(m.contains(&lower), want.is_some());
                        let all: Vec<_> = model.iter().filter(|(n, _)| *n == lower).map(|(_, v)| v.as_str()).collect();
                        let got: Vec<_> = m.get_all(&lower).map(|v| v.to_str().unwrap()).collect();
                        prop_assert_eq!(got, all);
                    }
                }
                // Pseudo-headers first, stable order otherwise.
                let mut expect: Vec<_> = model.iter().filter(|(n, _)| n.starts_with(':')).cloned().collect();
                expect.extend(model.iter().filter(|(n, _)| !n.starts_with(':')).cloned());
                let got: Vec<_> = m.iter().map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap().to_string())).collect();
                prop_assert_eq!(&got, &expect);
                prop_assert_eq!(m.byte_size(), expect.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>());
            }
        }
    }
}

#[cfg(test)]
mod number_value_tests {
    use super::HeaderValue;

    #[test]
    fn numbers_become_decimal_values() {
        for n in [0u64, 7, 10, 1234567890, u64::MAX] {
            assert_eq!(HeaderValue::from(n).as_bytes(), n.to_string().as_bytes());
        }
    }
}
