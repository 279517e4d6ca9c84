//! Header mutations (`*_headers_to_add` / `*_headers_to_remove`) and the
//! `%VARIABLE%` substitutions their values may use.
//!
//! Envoy's `Router::HeaderParser`: each level (route config, virtual host,
//! route, weighted cluster) has one parser; applying it removes the listed
//! headers first, then adds the new values according to each entry's
//! `append_action`. Values are parsed once into a [`HeaderTemplate`] so a
//! request only fills in the variables.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::config::types::{HeaderAppendAction, HeaderValueOption};
use crate::headers::{HeaderMap, HeaderName, HeaderValue};

/// What `%VARIABLE%`s read: the downstream connection and the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct FormatContext<'a> {
    /// The downstream peer address.
    pub downstream_remote: Option<SocketAddr>,
    /// The local address the request arrived on.
    pub downstream_local: Option<SocketAddr>,
    /// The request headers, for `%REQ(name)%`.
    pub request_headers: Option<&'a HeaderMap>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    RemoteAddress,
    RemoteAddressWithoutPort,
    RemotePort,
    LocalAddress,
    LocalAddressWithoutPort,
    LocalPort,
    Req(String),
}

/// A header value with `%VARIABLE%` substitutions, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTemplate(Vec<Piece>);

/// The substitutions supported in header values.
pub const SUPPORTED_VARIABLES: &str = "%DOWNSTREAM_REMOTE_ADDRESS%, %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%, \
     %DOWNSTREAM_REMOTE_PORT%, %DOWNSTREAM_LOCAL_ADDRESS%, %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%, \
     %DOWNSTREAM_LOCAL_PORT%, %REQ(header)%, %%";

impl HeaderTemplate {
    /// Parses a value; an unknown variable or a lone `%` is an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('%') {
            lit.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(r) = rest.strip_prefix('%') {
                lit.push('%');
                rest = r;
                continue;
            }
            let Some(end) = rest.find('%') else {
                return Err(format!(
                    "unterminated %VARIABLE% in {text:?} (write %% for a literal %)"
                ));
            };
            let var = &rest[..end];
            rest = &rest[end + 1..];
            let piece = match var {
                "DOWNSTREAM_REMOTE_ADDRESS" => Piece::RemoteAddress,
                "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Piece::RemoteAddressWithoutPort,
                "DOWNSTREAM_REMOTE_PORT" => Piece::RemotePort,
                "DOWNSTREAM_LOCAL_ADDRESS" => Piece::LocalAddress,
                "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => Piece::LocalAddressWithoutPort,
                "DOWNSTREAM_LOCAL_PORT" => Piece::LocalPort,
                v if v.starts_with("REQ(") && v.ends_with(')') && v.len() > 5 => {
                    Piece::Req(v[4..v.len() - 1].to_ascii_lowercase())
                }
                v => {
                    return Err(format!(
                        "unsupported: header variable %{v}% (supported: {SUPPORTED_VARIABLES})"
                    ));
                }
            };
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(piece);
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Self(pieces))
    }

    /// Fills in the variables; an unknown value renders as empty.
    pub fn render(&self, ctx: &FormatContext<'_>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::RemoteAddress => {
                    if let Some(a) = ctx.downstream_remote {
                        let _ = write!(out, "{a}");
                    }
                }
                Piece::RemoteAddressWithoutPort => {
                    if let Some(a) = ctx.downstream_remote {
                        let _ = write!(out, "{}", a.ip());
                    }
                }
                Piece::RemotePort => {
                    if let Some(a) = ctx.downstream_remote {
                        let _ = write!(out, "{}", a.port());
                    }
                }
                Piece::LocalAddress => {
                    if let Some(a) = ctx.downstream_local {
                        let _ = write!(out, "{a}");
                    }
                }
                Piece::LocalAddressWithoutPort => {
                    if let Some(a) = ctx.downstream_local {
                        let _ = write!(out, "{}", a.ip());
                    }
                }
                Piece::LocalPort => {
                    if let Some(a) = ctx.downstream_local {
                        let _ = write!(out, "{}", a.port());
                    }
                }
                Piece::Req(name) => {
                    if let Some(v) = ctx.request_headers.and_then(|h| h.get(name)) {
                        out.push_str(&v.to_str_lossy());
                    }
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
struct AddEntry {
    name: HeaderName,
    value: HeaderTemplate,
    action: HeaderAppendAction,
    keep_empty: bool,
}

/// One level's header changes (Envoy's `HeaderParser`).
#[derive(Debug, Clone, Default)]
pub struct HeaderMutations {
    add: Vec<AddEntry>,
    remove: Vec<String>,
}

impl HeaderMutations {
    /// Compiles `headers_to_add` / `headers_to_remove`.
    pub fn compile(add: &[HeaderValueOption], remove: &[String]) -> Result<Self, String> {
        let add = add
            .iter()
            .map(|h| {
                Ok(AddEntry {
                    name: HeaderName::try_from(h.header.key.as_str()).map_err(|e| e.to_string())?,
                    value: HeaderTemplate::parse(&h.header.value)?,
                    action: h.action(),
                    keep_empty: h.keep_empty_value,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { add, remove: remove.iter().map(|r| r.to_ascii_lowercase()).collect() })
    }

    /// Whether this level changes nothing.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// Applies the changes: removals first, then additions.
    pub fn apply(&self, headers: &mut HeaderMap, ctx: &FormatContext<'_>) {
        for r in &self.remove {
            headers.remove(r);
        }
        for e in &self.add {
            let text = e.value.render(ctx);
            if text.is_empty() && !e.keep_empty {
                continue;
            }
            let Ok(value) = HeaderValue::try_from(text) else { continue };
            let present = headers.contains(e.name.as_str());
            match e.action {
                HeaderAppendAction::AppendIfExistsOrAdd => headers.append(e.name.clone(), value),
                HeaderAppendAction::AddIfAbsent if !present => {
                    headers.append(e.name.clone(), value)
                }
                HeaderAppendAction::AddIfAbsent => {}
                HeaderAppendAction::OverwriteIfExistsOrAdd => headers.insert(e.name.clone(), value),
                HeaderAppendAction::OverwriteIfExists if present => {
                    headers.insert(e.name.clone(), value)
                }
                HeaderAppendAction::OverwriteIfExists => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::HeaderValue as CfgHeaderValue;

    #[test]
    fn templates_substitute_variables() {
        let h = {
            let mut h = HeaderMap::new();
            h.try_append("x-id", "7").unwrap();
            h
        };
        let ctx = FormatContext {
            downstream_remote: Some("127.0.0.1:5000".parse().unwrap()),
            downstream_local: Some("[::1]:80".parse().unwrap()),
            request_headers: Some(&h),
        };
        let t = HeaderTemplate::parse(
            "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %REQ(X-Id)% 100%%",
        )
        .unwrap();
        assert_eq!(t.render(&ctx), "127.0.0.1 127.0.0.1:5000 ::1 7 100%");
        assert!(HeaderTemplate::parse("%NOPE%").unwrap_err().contains("unsupported"));
        assert!(HeaderTemplate::parse("50%").is_err());
    }

    #[test]
    fn removals_then_additions_by_action() {
        let opt = |k: &str, v: &str, action| HeaderValueOption {
            header: CfgHeaderValue { key: k.into(), value: v.into(), raw_value: None },
            append_action: Some(action),
            ..Default::default()
        };
        let m = HeaderMutations::compile(
            &[
                opt("a", "2", HeaderAppendAction::AppendIfExistsOrAdd),
                opt("b", "2", HeaderAppendAction::OverwriteIfExistsOrAdd),
                opt("c", "2", HeaderAppendAction::AddIfAbsent),
                opt("d", "2", HeaderAppendAction::OverwriteIfExists),
                opt("e", "2", HeaderAppendAction::AddIfAbsent),
            ],
            &["gone".into()],
        )
        .unwrap();
        let mut h = HeaderMap::new();
        for (k, v) in [("a", "1"), ("b", "1"), ("c", "1"), ("gone", "x")] {
            h.try_append(k, v).unwrap();
        }
        m.apply(&mut h, &FormatContext::default());
        assert_eq!(h.get_joined("a").unwrap(), "1,2");
        assert_eq!(h.get_joined("b").unwrap(), "2");
        assert_eq!(h.get_joined("c").unwrap(), "1");
        assert!(!h.contains("d"));
        assert_eq!(h.get_joined("e").unwrap(), "2");
        assert!(!h.contains("gone"));
    }
}
