//! `:path` normalization before routing: Envoy's
//! `ConnectionManagerUtility::maybeNormalizePath` with `PathUtil::unescapeSlashes`,
//! `PathUtil::canonicalPath` and `PathUtil::mergeSlashes`
//! (`source/common/http/path_utility.cc`).
//!
//! The connection manager calls [`normalize_path`] on each request's headers
//! before it picks a route, in Envoy's order:
//!
//! ```text
//! :path ─► '#'? reject ─► %2F / %5C (path_with_escaped_slashes_action)
//!       ─► RFC 3986 normalization (normalize_path) ─► merge_slashes ─► :path
//! ```
//!
//! Only the part before `?` changes; the query string is kept byte for byte.
//! An [`InvalidPath`] becomes a 400 (`path_normalization_failed`), a
//! [`PathAction::Redirect`] a 307 whose `location` is the new `:path`.
//!
//! Envoy canonicalizes with Chromium's URL library; this is the same
//! RFC 3986 algorithm written out: `\` is read as `/`, escaped unreserved
//! characters (`%41`, `%2E`, ...) are decoded, so `%2E%2E` is a dot segment,
//! dot segments are removed (§5.2.4), bytes that may not appear in a path are
//! percent-encoded, and an escaped NUL (`%00`) is refused. Other escapes keep
//! their spelling (`%5c%25` stays). Deviation: a `:path` that does not start
//! with `/` (`*`, or none for CONNECT) is left alone here; Envoy answers 404
//! for a non-`*` relative path before normalizing, which is the caller's check.

use week1_core::headers::{self, HeaderMap, HeaderValue};

use super::config::{EscapedSlashesAction, PathNormalization};

/// What the caller does after a successful normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathAction {
    /// Route the request (its `:path` may have changed).
    Continue,
    /// Answer 307 with `location` set to the new `:path`
    /// (`UNESCAPE_AND_REDIRECT` found an escaped slash). Envoy rejects a gRPC
    /// request with 400 instead of redirecting it.
    Redirect,
}

/// Why a path was refused: the caller answers 400 with
/// [`RESPONSE_CODE_DETAILS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPath {
    /// The path has a `#` fragment (Envoy's `http_reject_path_with_fragment`).
    #[error("the path has a fragment")]
    Fragment,
    /// `%2F` or `%5C` with `path_with_escaped_slashes_action: REJECT_REQUEST`.
    #[error("the path has an escaped slash")]
    EscapedSlash,
    /// An escaped NUL (`%00`), which canonicalization refuses.
    #[error("the path has an escaped NUL")]
    EscapedNul,
}

/// Envoy's response code details for a refused path.
pub const RESPONSE_CODE_DETAILS: &str = "path_normalization_failed";

/// Normalizes `:path` in place per `cfg`. A request without `:path`, or whose
/// path does not start with `/`, is left as it is.
pub fn normalize_path(
    headers: &mut HeaderMap,
    cfg: &PathNormalization,
) -> Result<PathAction, InvalidPath> {
    let Some(value) = headers.get(":path") else { return Ok(PathAction::Continue) };
    let Some((normalized, action)) = normalize(value.as_bytes(), cfg)? else {
        return Ok(PathAction::Continue);
    };
    // Every byte written is a path byte or a percent escape: always a valid value.
    if let Ok(v) = HeaderValue::new(normalized) {
        headers.insert(headers::PATH, v);
    }
    Ok(action)
}

/// Normalizes a raw `:path`. `Ok(None)`: nothing changes (and the action is
/// `Continue`: unescaping a slash always changes the path).
pub fn normalize(
    path: &[u8],
    cfg: &PathNormalization,
) -> Result<Option<(Vec<u8>, PathAction)>, InvalidPath> {
    if path.contains(&b'#') {
        return Err(InvalidPath::Fragment);
    }
    if path.first() != Some(&b'/') {
        return Ok(None);
    }
    let split = path.iter().position(|&b| b == b'?').unwrap_or(path.len());
    let (original, query) = path.split_at(split);
    let mut current: Option<Vec<u8>> = None;
    let mut action = PathAction::Continue;

    if cfg.escaped_slashes != EscapedSlashesAction::KeepUnchanged
        && let Some(unescaped) = unescape_slashes(original)
    {
        match cfg.escaped_slashes {
            EscapedSlashesAction::RejectRequest => return Err(InvalidPath::EscapedSlash),
            EscapedSlashesAction::UnescapeAndRedirect => action = PathAction::Redirect,
            EscapedSlashesAction::UnescapeAndForward | EscapedSlashesAction::KeepUnchanged => {}
        }
        current = Some(unescaped);
    }
    if cfg.normalize_path {
        let canonical = canonicalize(current.as_deref().unwrap_or(original))?;
        current = Some(canonical);
    }
    if cfg.merge_slashes {
        let p = current.as_deref().unwrap_or(original);
        if p.windows(2).any(|w| w == b"//") {
            current = Some(merge_slashes(p));
        }
    }
    match current {
        Some(mut p) if p != original => {
            p.extend_from_slice(query);
            Ok(Some((p, action)))
        }
        _ => Ok(None),
    }
}

/// `%2F`/`%2f` → `/`, `%5C`/`%5c` → `\` (Envoy's `PathUtil::unescapeSlashes`);
/// `None` when there is none.
fn unescape_slashes(path: &[u8]) -> Option<Vec<u8>> {
    let escaped = |w: &[u8]| {
        w[0] == b'%' && (w[1..].eq_ignore_ascii_case(b"2f") || w[1..].eq_ignore_ascii_case(b"5c"))
    };
    if !path.windows(3).any(escaped) {
        return None;
    }
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if i + 3 <= path.len() && escaped(&path[i..i + 3]) {
            out.push(if path[i + 1] == b'2' { b'/' } else { b'\\' });
            i += 3;
        } else {
            out.push(path[i]);
            i += 1;
        }
    }
    Some(out)
}

/// RFC 3986 §2.3 unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes that must be percent-encoded in a canonical path.
fn needs_escape(b: u8) -> bool {
    b <= 0x20 || b >= 0x7f || matches!(b, b'"' | b'<' | b'>' | b'`' | b'{' | b'}')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Envoy's `PathUtil::canonicalPath` on the part before `?` (which starts with `/`).
fn canonicalize(path: &[u8]) -> Result<Vec<u8>, InvalidPath> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // Pass 1: `\` as `/`, decode escaped unreserved bytes, escape what must be.
    let mut text = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                path.get(i + 1).copied().and_then(hex_value),
                path.get(i + 2).copied().and_then(hex_value),
            )
        {
            let decoded = hi << 4 | lo;
            if decoded == 0 {
                return Err(InvalidPath::EscapedNul);
            }
            if is_unreserved(decoded) {
                text.push(decoded);
            } else {
                text.extend_from_slice(&path[i..i + 3]);
            }
            i += 3;
            continue;
        }
        match b {
            b'\\' => text.push(b'/'),
            b if needs_escape(b) => {
                text.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
            }
            b => text.push(b),
        }
        i += 1;
    }
    // Pass 2: remove dot segments (RFC 3986 §5.2.4).
    let body = text.strip_prefix(b"/").unwrap_or(&text);
    let segments: Vec<&[u8]> = body.split(|&b| b == b'/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&[u8]> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            b"." => {}
            b".." => {
                out.pop();
            }
            s => out.push(s),
        }
        if i == last && matches!(*seg, b"." | b"..") {
            out.push(b"");
        }
    }
    let mut result = Vec::with_capacity(text.len());
    result.push(b'/');
    result.extend_from_slice(&out.join(&b'/'));
    Ok(result)
}

/// Collapses every run of `/` into one (Envoy's `PathUtil::mergeSlashes`).
fn merge_slashes(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if b == b'/' && out.last() == Some(&b'/') {
            continue;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NORMALIZE: PathNormalization = PathNormalization {
        normalize_path: true,
        merge_slashes: false,
        escaped_slashes: EscapedSlashesAction::KeepUnchanged,
    };

    fn run(path: &str, cfg: &PathNormalization) -> Result<(String, PathAction), InvalidPath> {
        let mut h = HeaderMap::new();
        h.try_append(":path", path).unwrap();
        let action = normalize_path(&mut h, cfg)?;
        Ok((h.path().unwrap().to_string(), action))
    }

    fn normalized(path: &str, cfg: &PathNormalization) -> String {
        run(path, cfg).unwrap().0
    }

    #[test]
    fn envoy_normalize_valid_paths() {
        // Envoy's PathUtilityTest.NormalizeValidPaths (those starting with `/`).
        for (input, want) in [
            ("/a/b/../c", "/a/c"),
            ("/a/b/./c", "/a/b/c"),
            ("/a/b/../../../../c", "/c"),
            ("/a/..\\c", "/c"),
            ("/%c0%af", "/%c0%af"),
            ("/%5c%25", "/%5c%25"),
            ("/a/b/%2E%2E/c", "/a/c"),
        ] {
            assert_eq!(normalized(input, &NORMALIZE), want, "{input}");
        }
    }

    #[test]
    fn envoy_already_normal_paths_are_unchanged() {
        for p in ["/xyz", "/x/y/z", "/", "/a/b/", "/a...b/..c/c..", "/%2F"] {
            assert_eq!(normalize(p.as_bytes(), &NORMALIZE), Ok(None), "{p}");
        }
    }

    #[test]
    fn envoy_invalid_paths_are_rejected() {
        // Envoy's PathUtilityTest.InvalidPaths.
        for p in ["/xyz/.%00../abc", "/xyz/%00.%00./abc", "/xyz/AAAAA%%0000/abc"] {
            assert_eq!(run(p, &NORMALIZE), Err(InvalidPath::EscapedNul), "{p}");
        }
    }

    #[test]
    fn dot_segments_at_the_end_leave_a_directory() {
        // RFC 3986 §5.2.4: "/a/." -> "/a/", "/a/.." -> "/".
        assert_eq!(normalized("/a/.", &NORMALIZE), "/a/");
        assert_eq!(normalized("/a/..", &NORMALIZE), "/");
        assert_eq!(normalized("/..", &NORMALIZE), "/");
        assert_eq!(normalized("/a/%2e", &NORMALIZE), "/a/");
        assert_eq!(normalized("/a/.%2E/b", &NORMALIZE), "/b");
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_unsafe_bytes_escaped() {
        assert_eq!(normalized("/%41%7e%2d", &NORMALIZE), "/A~-");
        assert_eq!(normalized("/a b\"<>`{}", &NORMALIZE), "/a%20b%22%3C%3E%60%7B%7D");
        // A lone `%` and a bad escape stay as written.
        assert_eq!(normalize(b"/100%", &NORMALIZE), Ok(None));
        assert_eq!(normalize(b"/%zz", &NORMALIZE), Ok(None));
    }

    #[test]
    fn query_is_kept_byte_for_byte() {
        let cfg = PathNormalization {
            normalize_path: true,
            merge_slashes: true,
            escaped_slashes: EscapedSlashesAction::RejectRequest,
        };
        assert_eq!(normalized("/a/../b//c?x=/../y//%2F&z=%41", &cfg), "/b/c?x=/../y//%2F&z=%41");
    }

    #[test]
    fn merge_slashes_after_normalizing() {
        // Envoy merges after normalization to catch "/a/..//b".
        let cfg = PathNormalization { merge_slashes: true, ..NORMALIZE };
        assert_eq!(normalized("/a/..//b", &cfg), "/b");
        let merge = PathNormalization { merge_slashes: true, ..Default::default() };
        assert_eq!(normalized("//a//b///c/", &merge), "/a/b/c/");
        assert_eq!(normalized("//", &merge), "/");
        assert_eq!(normalized("/a/../b", &merge), "/a/../b", "normalize_path is off");
    }

    #[test]
    fn nothing_configured_changes_nothing() {
        let off = PathNormalization::default();
        assert_eq!(normalize(b"/a/../b//c%2F", &off), Ok(None));
    }

    #[test]
    fn escaped_slashes_actions() {
        let with = |escaped_slashes| PathNormalization { escaped_slashes, ..Default::default() };
        let keep = with(EscapedSlashesAction::KeepUnchanged);
        assert_eq!(run("/a%2Fb", &keep), Ok(("/a%2Fb".into(), PathAction::Continue)));
        let reject = with(EscapedSlashesAction::RejectRequest);
        assert_eq!(run("/a%2fb", &reject), Err(InvalidPath::EscapedSlash));
        assert_eq!(run("/a%5Cb", &reject), Err(InvalidPath::EscapedSlash));
        assert_eq!(run("/a?b=%2F", &reject), Ok(("/a?b=%2F".into(), PathAction::Continue)));
        let forward = with(EscapedSlashesAction::UnescapeAndForward);
        assert_eq!(run("/a%2Fb%5cc", &forward), Ok(("/a/b\\c".into(), PathAction::Continue)));
        let redirect = with(EscapedSlashesAction::UnescapeAndRedirect);
        assert_eq!(run("/a%2Fb", &redirect), Ok(("/a/b".into(), PathAction::Redirect)));
        assert_eq!(run("/a/b", &redirect), Ok(("/a/b".into(), PathAction::Continue)));
        // Unescaped `\` then becomes `/` when normalizing; `%2F..` becomes a dot segment.
        let both = PathNormalization { normalize_path: true, ..forward };
        assert_eq!(normalized("/a%5Cb", &both), "/a/b");
        assert_eq!(normalized("/a/b%2F..%2Fc", &both), "/a/c");
    }

    #[test]
    fn fragment_is_rejected() {
        assert_eq!(run("/a#b", &PathNormalization::default()), Err(InvalidPath::Fragment));
    }

    #[test]
    fn non_origin_form_and_missing_path_are_left_alone() {
        assert_eq!(normalized("*", &NORMALIZE), "*");
        let mut h = HeaderMap::new();
        h.try_append(":method", "CONNECT").unwrap();
        assert_eq!(normalize_path(&mut h, &NORMALIZE), Ok(PathAction::Continue));
        assert!(!h.contains(":path"));
    }

    proptest! {
        #[test]
        fn normalization_never_panics_and_keeps_its_promises(
            path in "/[a-zA-Z0-9./\\\\%2eEfF5cC ~?#-]{0,40}",
            normalize_path in any::<bool>(),
            merge_slashes in any::<bool>(),
            escaped in 0..4u8,
        ) {
            let escaped_slashes = match escaped {
                0 => EscapedSlashesAction::KeepUnchanged,
                1 => EscapedSlashesAction::RejectRequest,
                2 => EscapedSlashesAction::UnescapeAndRedirect,
                _ => EscapedSlashesAction::UnescapeAndForward,
            };
            let cfg = PathNormalization { normalize_path, merge_slashes, escaped_slashes };
            let Ok(result) = normalize(path.as_bytes(), &cfg) else { return Ok(()) };
            let out = result.map_or_else(|| path.as_bytes().to_vec(), |(p, _)| p);
            prop_assert!(HeaderValue::new(out.clone()).is_ok());
            let split = out.iter().position(|&b| b == b'?').unwrap_or(out.len());
            let (p, q) = out.split_at(split);
            let in_split = path.find('?').unwrap_or(path.len());
            prop_assert_eq!(q, &path.as_bytes()[in_split..], "query kept");
            prop_assert_eq!(p.first(), Some(&b'/'));
            if normalize_path {
                prop_assert!(!p.contains(&b'\\'));
                for seg in p.split(|&b| b == b'/') {
                    prop_assert!(seg != b"." && seg != b"..", "dot segment left in {:?}", out);
                }
            }
            if merge_slashes {
                prop_assert!(!p.windows(2).any(|w| w == b"//"));
            }
        }
    }
}
