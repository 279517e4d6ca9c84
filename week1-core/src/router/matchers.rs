//! Compiled matchers: the pieces of Envoy's `RouteEntryImplBase::matchRoute`.
//!
//! Each config matcher (`RouteMatch` path specifier, `HeaderMatcher`,
//! `QueryParameterMatcher`, `MetadataMatcher`, `StringMatcher`) is turned once,
//! at compile time, into a small value here: regexes are compiled, patterns
//! lowercased when matching ignores case. Matching a request then only reads.

use std::borrow::Cow;
use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value as Json;

use super::RouterError;
use crate::config::route::{HeaderMatcher, MetadataMatcher, QueryParameterMatcher, ValueMatcher};
use crate::config::types::{RegexMatcher, StringMatcher};
use crate::headers::HeaderMap;

/// The path without query string or fragment.
pub(crate) fn strip_query(path: &str) -> &str {
    match path.find(['?', '#']) {
        Some(i) => &path[..i],
        None => path,
    }
}

fn starts_with(s: &str, p: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        s.starts_with(p)
    } else {
        s.len() >= p.len() && s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    }
}

fn compile_regex(r: &RegexMatcher) -> Result<Regex, RouterError> {
    r.compile().map_err(|e| RouterError::Regex { regex: r.regex.clone(), error: e.to_string() })
}

// ANCHOR: path_matcher
/// How a route matches `:path` (`RouteMatch.path_specifier`).
#[derive(Debug, Clone)]
pub enum PathMatcher {
    /// `prefix`: the whole `:path` (query included, as Envoy) starts with it.
    Prefix(String),
    /// `path`: the path without query equals it.
    Path(String),
    /// `safe_regex`: the path without query fully matches.
    Regex(Regex),
    /// `path_separated_prefix`: the path without query equals it or continues with `/`.
    SeparatedPrefix(String),
}

impl PathMatcher {
    /// Whether `path` matches. `case_sensitive` does not apply to regexes.
    pub fn matches(&self, path: &str, case_sensitive: bool) -> bool {
        match self {
            Self::Prefix(p) => starts_with(path, p, case_sensitive),
            Self::Path(p) => {
                let path = strip_query(path);
                path.len() == p.len() && starts_with(path, p, case_sensitive)
            }
            Self::Regex(r) => r.is_match(strip_query(path)),
            Self::SeparatedPrefix(p) => {
                let path = strip_query(path);
                starts_with(path, p, case_sensitive)
                    && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
            }
        }
    }

    /// The length of `:path` that a `prefix_rewrite` replaces.
    pub fn matched_len(&self, path: &str) -> usize {
        match self {
            Self::Prefix(p) | Self::Path(p) | Self::SeparatedPrefix(p) => p.len(),
            Self::Regex(_) => strip_query(path).len(),
        }
    }
}
// ANCHOR_END: path_matcher

/// A compiled `envoy.type.matcher.v3.StringMatcher`.
#[derive(Debug, Clone)]
pub enum StringMatch {
    /// Equal.
    Exact(String, bool),
    /// Starts with.
    Prefix(String, bool),
    /// Ends with.
    Suffix(String, bool),
    /// Contains (the pattern is lowercased when ignoring case).
    Contains(String, bool),
    /// Full regex match.
    Regex(Regex),
}

impl StringMatch {
    /// Compiles a config string matcher.
    pub fn compile(m: &StringMatcher) -> Result<Self, RouterError> {
        let ic = m.ignore_case;
        Ok(if let Some(s) = &m.exact {
            Self::Exact(s.clone(), ic)
        } else if let Some(s) = &m.prefix {
            Self::Prefix(s.clone(), ic)
        } else if let Some(s) = &m.suffix {
            Self::Suffix(s.clone(), ic)
        } else if let Some(s) = &m.contains {
            Self::Contains(if ic { s.to_ascii_lowercase() } else { s.clone() }, ic)
        } else if let Some(r) = &m.safe_regex {
            Self::Regex(compile_regex(r)?)
        } else {
            return Err(RouterError::Invalid("string matcher with no pattern".into()));
        })
    }

    /// Whether `v` matches.
    pub fn matches(&self, v: &str) -> bool {
        match self {
            Self::Exact(s, false) => v == s,
            Self::Exact(s, true) => v.eq_ignore_ascii_case(s),
            Self::Prefix(s, ic) => starts_with(v, s, !ic),
            Self::Suffix(s, false) => v.ends_with(s.as_str()),
            Self::Suffix(s, true) => {
                v.len() >= s.len()
                    && v.as_bytes()[v.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
            Self::Contains(s, false) => v.contains(s.as_str()),
            Self::Contains(s, true) => v.to_ascii_lowercase().contains(s.as_str()),
            Self::Regex(r) => r.is_match(v),
        }
    }
}

/// What a header matcher checks on the value.
#[derive(Debug, Clone)]
enum HeaderCheck {
    Present(bool),
    String(StringMatch),
    Range(i64, i64),
}

// ANCHOR: header_matcher
/// A compiled `envoy.config.route.v3.HeaderMatcher` (Envoy's `HeaderUtility::HeaderData`).
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    name: String,
    check: HeaderCheck,
    invert: bool,
    treat_missing_as_empty: bool,
}

impl HeaderMatch {
    /// Compiles a config header matcher; the legacy `*_match` fields map onto string matchers.
    pub fn compile(m: &HeaderMatcher) -> Result<Self, RouterError> {
        let s = |v: &Option<String>| v.clone();
        let check = if let Some(sm) = &m.string_match {
            HeaderCheck::String(StringMatch::compile(sm)?)
        } else if let Some(v) = s(&m.exact_match) {
            HeaderCheck::String(StringMatch::Exact(v, false))
        } else if let Some(v) = s(&m.prefix_match) {
            HeaderCheck::String(StringMatch::Prefix(v, false))
        } else if let Some(v) = s(&m.suffix_match) {
            HeaderCheck::String(StringMatch::Suffix(v, false))
        } else if let Some(v) = s(&m.contains_match) {
            HeaderCheck::String(StringMatch::Contains(v, false))
        } else if let Some(r) = &m.safe_regex_match {
            HeaderCheck::String(StringMatch::Regex(compile_regex(r)?))
        } else if let Some(r) = m.range_match {
            HeaderCheck::Range(r.start, r.end)
        } else {
            // No specifier means "present"; `present_match: false` means "absent".
            HeaderCheck::Present(m.present_match.unwrap_or(true))
        };
        Ok(Self {
            name: m.name.to_ascii_lowercase(),
            check,
            invert: m.invert_match,
            treat_missing_as_empty: m.treat_missing_header_as_empty,
        })
    }

    /// The header name (lowercase).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the headers match. Several values of the name are joined with
    /// `,` first, as Envoy's `getAllOfHeaderAsString`.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        let value = headers.get_joined(&self.name);
        let value: Cow<'_, str> = match value {
            Some(v) => v,
            None if self.treat_missing_as_empty => Cow::Borrowed(""),
            // An absent header only matches a presence check (`present_match: false`
            // or an inverted presence check); every other matcher fails, inverted or not.
            None => {
                return match self.check {
                    HeaderCheck::Present(want) => want == self.invert,
                    _ => false,
                };
            }
        };
        let hit = match &self.check {
            HeaderCheck::Present(want) => *want,
            HeaderCheck::String(s) => s.matches(&value),
            HeaderCheck::Range(start, end) => {
                value.parse::<i64>().is_ok_and(|n| n >= *start && n < *end)
            }
        };
        hit != self.invert
    }
}
// ANCHOR_END: header_matcher

/// All of `matchers` match (an empty list matches).
pub fn all_headers_match(matchers: &[HeaderMatch], headers: &HeaderMap) -> bool {
    matchers.iter().all(|m| m.matches(headers))
}

/// A compiled `QueryParameterMatcher`.
#[derive(Debug, Clone)]
pub struct QueryMatch {
    name: String,
    value: Option<StringMatch>,
}

impl QueryMatch {
    /// Compiles a config query parameter matcher (no value matcher: presence).
    pub fn compile(m: &QueryParameterMatcher) -> Result<Self, RouterError> {
        let value = m.string_match.as_ref().map(StringMatch::compile).transpose()?;
        Ok(Self { name: m.name.clone(), value })
    }

    /// Whether the query string of `path` matches (the first occurrence of the
    /// parameter counts, percent-decoded, as Envoy).
    pub fn matches(&self, path: &str) -> bool {
        let Some(query) =
            path.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or_default())
        else {
            return false;
        };
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(k) == self.name {
                return match &self.value {
                    None => true,
                    Some(m) => m.matches(&percent_decode(v)),
                };
            }
        }
        false
    }
}

/// Decodes `%XX` escapes; malformed escapes stay as written.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Dynamic metadata as filters set it: namespace → struct.
pub type DynamicMetadata = BTreeMap<String, Json>;

/// A compiled `envoy.type.matcher.v3.MetadataMatcher` over dynamic metadata.
#[derive(Debug, Clone)]
pub struct MetadataMatch {
    filter: String,
    path: Vec<String>,
    value: ValueMatch,
    invert: bool,
}

#[derive(Debug, Clone)]
enum ValueMatch {
    Null,
    Double { exact: Option<f64>, range: Option<(f64, f64)> },
    String(StringMatch),
    Bool(bool),
    Present(bool),
}

impl MetadataMatch {
    /// Compiles a config metadata matcher.
    pub fn compile(m: &MetadataMatcher) -> Result<Self, RouterError> {
        let v: &ValueMatcher = &m.value;
        let value = if v.null_match.is_some() {
            ValueMatch::Null
        } else if let Some(d) = &v.double_match {
            ValueMatch::Double { exact: d.exact, range: d.range.map(|r| (r.start, r.end)) }
        } else if let Some(s) = &v.string_match {
            ValueMatch::String(StringMatch::compile(s)?)
        } else if let Some(b) = v.bool_match {
            ValueMatch::Bool(b)
        } else if let Some(p) = v.present_match {
            ValueMatch::Present(p)
        } else {
            return Err(RouterError::Invalid("metadata matcher with no value matcher".into()));
        };
        Ok(Self {
            filter: m.filter.clone(),
            path: m.path.iter().map(|s| s.key.clone()).collect(),
            value,
            invert: m.invert,
        })
    }

    /// Whether the metadata matches (Envoy's `Matchers::MetadataMatcher::match`).
    pub fn matches(&self, md: Option<&DynamicMetadata>) -> bool {
        let mut cur = md.and_then(|m| m.get(&self.filter));
        for key in &self.path {
            cur = cur.and_then(|v| v.as_object()).and_then(|o| o.get(key));
        }
        let hit = match (&self.value, cur) {
            (ValueMatch::Present(p), v) => v.is_some() == *p,
            (_, None) => false,
            (ValueMatch::Null, Some(v)) => v.is_null(),
            (ValueMatch::Bool(b), Some(v)) => v.as_bool() == Some(*b),
            (ValueMatch::String(s), Some(v)) => v.as_str().is_some_and(|t| s.matches(t)),
            (ValueMatch::Double { exact, range }, Some(v)) => v.as_f64().is_some_and(|n| {
                exact.is_some_and(|e| n == e) || range.is_some_and(|(a, b)| n >= a && n < b)
            }),
        };
        hit != self.invert
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::route::Int64Range;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.try_append(k, v).unwrap();
        }
        m
    }

    fn hm(f: impl FnOnce(&mut HeaderMatcher)) -> HeaderMatch {
        let mut m = HeaderMatcher { name: "x-a".into(), ..Default::default() };
        f(&mut m);
        HeaderMatch::compile(&m).unwrap()
    }

    fn sm(f: impl FnOnce(&mut StringMatcher)) -> Option<StringMatcher> {
        let mut m = StringMatcher::default();
        f(&mut m);
        Some(m)
    }

    #[test]
    fn path_matchers() {
        let p = PathMatcher::Prefix("/api".into());
        assert!(p.matches("/api/x?q", true));
        assert!(!p.matches("/API/x", true));
        assert!(p.matches("/API/x", false));
        let p = PathMatcher::Path("/a".into());
        assert!(p.matches("/a?x=1", true));
        assert!(!p.matches("/ab", true));
        assert!(p.matches("/A", false));
        let p = PathMatcher::Regex(
            RegexMatcher { regex: "/v[0-9]+".into(), ..Default::default() }.compile().unwrap(),
        );
        assert!(p.matches("/v12?x", true));
        assert!(!p.matches("/v12/x", true));
        let p = PathMatcher::SeparatedPrefix("/api".into());
        assert!(p.matches("/api", true));
        assert!(p.matches("/api/x", true));
        assert!(p.matches("/api?x", true));
        assert!(!p.matches("/apix", true));
    }

    #[test]
    fn header_exact_prefix_suffix_contains_regex() {
        let h = headers(&[("x-a", "Hello-World")]);
        assert!(hm(|m| m.exact_match = Some("Hello-World".into())).matches(&h));
        assert!(!hm(|m| m.exact_match = Some("hello-world".into())).matches(&h));
        assert!(
            hm(|m| m.string_match = sm(|s| {
                s.exact = Some("hello-world".into());
                s.ignore_case = true
            }))
            .matches(&h)
        );
        assert!(hm(|m| m.prefix_match = Some("Hello".into())).matches(&h));
        assert!(hm(|m| m.suffix_match = Some("World".into())).matches(&h));
        assert!(hm(|m| m.contains_match = Some("o-W".into())).matches(&h));
        assert!(
            hm(|m| m.string_match = sm(|s| {
                s.contains = Some("O-w".into());
                s.ignore_case = true
            }))
            .matches(&h)
        );
        assert!(
            hm(|m| m.safe_regex_match =
                Some(RegexMatcher { regex: "H.*d".into(), ..Default::default() }))
            .matches(&h)
        );
        assert!(
            !hm(|m| m.safe_regex_match =
                Some(RegexMatcher { regex: "H.*l".into(), ..Default::default() }))
            .matches(&h)
        );
    }

    #[test]
    fn header_present_range_invert_and_missing() {
        let h = headers(&[("x-a", "42")]);
        let empty = HeaderMap::new();
        assert!(hm(|_| {}).matches(&h));
        assert!(!hm(|_| {}).matches(&empty));
        assert!(hm(|m| m.invert_match = true).matches(&empty));
        assert!(hm(|m| m.present_match = Some(false)).matches(&empty));
        assert!(!hm(|m| m.present_match = Some(false)).matches(&h));
        let range = |m: &mut HeaderMatcher| m.range_match = Some(Int64Range { start: 0, end: 43 });
        assert!(hm(range).matches(&h));
        assert!(!hm(|m| m.range_match = Some(Int64Range { start: 43, end: 50 })).matches(&h));
        assert!(!hm(range).matches(&headers(&[("x-a", "x")])));
        // Inverted value matchers fail on a missing header unless it counts as empty.
        let inv = |m: &mut HeaderMatcher| {
            m.exact_match = Some("1".into());
            m.invert_match = true
        };
        assert!(!hm(inv).matches(&empty));
        assert!(
            hm(|m| {
                inv(m);
                m.treat_missing_header_as_empty = true
            })
            .matches(&empty)
        );
        assert!(hm(inv).matches(&h));
    }

    #[test]
    fn header_values_are_joined_with_commas() {
        let h = headers(&[("x-a", "1"), ("x-a", "2")]);
        assert!(hm(|m| m.exact_match = Some("1,2".into())).matches(&h));
    }

    #[test]
    fn query_parameters() {
        let q = QueryMatch::compile(&QueryParameterMatcher {
            name: "debug".into(),
            string_match: sm(|s| s.exact = Some("a b".into())),
            present_match: None,
        })
        .unwrap();
        assert!(q.matches("/x?y=1&debug=a%20b"));
        assert!(!q.matches("/x?debug=ab"));
        assert!(!q.matches("/x"));
        let p =
            QueryMatch::compile(&QueryParameterMatcher { name: "on".into(), ..Default::default() })
                .unwrap();
        assert!(p.matches("/x?on"));
        assert!(!p.matches("/x?off=1"));
    }

    #[test]
    fn metadata_matchers() {
        let mut md = DynamicMetadata::new();
        md.insert("ns".into(), serde_json::json!({"a": {"b": "v"}, "n": 3.0, "t": true}));
        let m = |path: &[&str], value: ValueMatcher, invert: bool| {
            MetadataMatch::compile(&MetadataMatcher {
                filter: "ns".into(),
                path: path
                    .iter()
                    .map(|k| crate::config::route::MetadataPathSegment { key: k.to_string() })
                    .collect(),
                value,
                invert,
            })
            .unwrap()
        };
        let s =
            ValueMatcher { string_match: sm(|s| s.exact = Some("v".into())), ..Default::default() };
        assert!(m(&["a", "b"], s.clone(), false).matches(Some(&md)));
        assert!(!m(&["a", "b"], s.clone(), true).matches(Some(&md)));
        assert!(!m(&["a", "c"], s.clone(), false).matches(Some(&md)));
        assert!(m(&["a", "c"], s, true).matches(None));
        assert!(
            m(&["t"], ValueMatcher { bool_match: Some(true), ..Default::default() }, false)
                .matches(Some(&md))
        );
        assert!(
            m(&["n"], ValueMatcher { present_match: Some(true), ..Default::default() }, false)
                .matches(Some(&md))
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("a%zz"), "a%zz");
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
