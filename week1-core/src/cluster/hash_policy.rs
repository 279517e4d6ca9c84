//! Request hashing for ring hash and Maglev: Envoy's `Router::HashPolicyImpl`.
//!
//! A route lists `hash_policy` entries; each may produce a 64-bit hash from the
//! request. The router calls [`compute_hash`] and passes the result to the load
//! balancer as [`LoadBalancerContext::hash_key`](super::LoadBalancerContext::hash_key):
//!
//! ```text
//!  for policy in route.hash_policy:
//!      h = xxHash64(value the policy extracts)      (skipped when absent)
//!      hash = rotl(hash, 1) XOR h                    (rotation: two equal policies
//!                                                     do not cancel out)
//!      stop if policy.terminal and a hash exists
//! ```
//!
//! - header: the header's value; several values are sorted and hashed in turn,
//!   each seeding the next;
//! - cookie: the named cookie's value from the `cookie` headers (generating a
//!   missing cookie with a TTL is response-side work left to the router);
//! - source IP: the downstream address without port (`10.0.0.1`, `::1`);
//! - query parameter: the first value of the named parameter in `:path`.

use std::net::IpAddr;

use xxhash_rust::xxh64::xxh64;

use crate::headers::HeaderMap;

/// What a hash policy hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashPolicyKind {
    /// `header.header_name`.
    Header {
        /// Header name (case-insensitive).
        name: String,
    },
    /// `cookie.name`.
    Cookie {
        /// Cookie name (case-sensitive).
        name: String,
    },
    /// `connection_properties.source_ip: true`.
    SourceIp,
    /// `query_parameter.name`.
    QueryParameter {
        /// Parameter name (case-sensitive).
        name: String,
    },
}

/// One `hash_policy` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashPolicy {
    /// What to hash.
    pub kind: HashPolicyKind,
    /// Stop at this policy if a hash has been produced so far.
    pub terminal: bool,
}

impl HashPolicy {
    /// A non-terminal policy.
    pub fn new(kind: HashPolicyKind) -> Self {
        Self { kind, terminal: false }
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get_all("cookie").find_map(|v| {
        v.as_bytes().split(|&b| b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (k, v) = (&pair[..eq], &pair[eq + 1..]);
            if k != name.as_bytes() {
                return None;
            }
            // Envoy strips one pair of surrounding double quotes.
            Some(if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
                &v[1..v.len() - 1]
            } else {
                v
            })
        })
    })
}

fn query_value<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let query = path.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

fn evaluate(kind: &HashPolicyKind, headers: &HeaderMap, source_ip: Option<IpAddr>) -> Option<u64> {
    match kind {
        HashPolicyKind::Header { name } => {
            let mut values: Vec<&[u8]> = headers.get_all(name).map(|v| v.as_bytes()).collect();
            match values.len() {
                0 => None,
                1 => Some(xxh64(values[0], 0)),
                _ => {
                    values.sort_unstable();
                    Some(values.iter().fold(0, |seed, v| xxh64(v, seed)))
                }
            }
        }
        HashPolicyKind::Cookie { name } => cookie_value(headers, name).map(|v| xxh64(v, 0)),
        HashPolicyKind::SourceIp => source_ip.map(|ip| xxh64(ip.to_string().as_bytes(), 0)),
        HashPolicyKind::QueryParameter { name } => {
            headers.path().and_then(|p| query_value(p, name)).map(|v| xxh64(v.as_bytes(), 0))
        }
    }
}

/// The request hash from `policies`, or `None` when no policy produced one.
pub fn compute_hash(
    policies: &[HashPolicy],
    headers: &HeaderMap,
    source_ip: Option<IpAddr>,
) -> Option<u64> {
    let mut hash: Option<u64> = None;
    for policy in policies {
        if let Some(h) = evaluate(&policy.kind, headers, source_ip) {
            hash = Some(hash.map_or(0, |old| old.rotate_left(1)) ^ h);
        }
        if policy.terminal && hash.is_some() {
            break;
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.try_append(k, v).unwrap();
        }
        h
    }

    fn header(name: &str) -> HashPolicy {
        HashPolicy::new(HashPolicyKind::Header { name: name.into() })
    }

    #[test]
    fn header_hash_is_xxhash_of_value() {
        let h = headers(&[("x-user", "alice")]);
        assert_eq!(compute_hash(&[header("X-User")], &h, None), Some(xxh64(b"alice", 0)));
        assert_eq!(compute_hash(&[header("x-missing")], &h, None), None);
    }

    #[test]
    fn multi_valued_header_is_order_independent() {
        let a = headers(&[("x-k", "b"), ("x-k", "a")]);
        let b = headers(&[("x-k", "a"), ("x-k", "b")]);
        let want = xxh64(b"b", xxh64(b"a", 0));
        assert_eq!(compute_hash(&[header("x-k")], &a, None), Some(want));
        assert_eq!(compute_hash(&[header("x-k")], &b, None), Some(want));
    }

    #[test]
    fn cookie_source_ip_and_query() {
        let h =
            headers(&[(":path", "/p?a=1&session=xyz#frag"), ("cookie", "a=1; sid=\"abc\"; z=2")]);
        let cookie = HashPolicy::new(HashPolicyKind::Cookie { name: "sid".into() });
        assert_eq!(compute_hash(&[cookie], &h, None), Some(xxh64(b"abc", 0)));
        let ip: IpAddr = "::1".parse().unwrap();
        let src = HashPolicy::new(HashPolicyKind::SourceIp);
        assert_eq!(compute_hash(std::slice::from_ref(&src), &h, Some(ip)), Some(xxh64(b"::1", 0)));
        assert_eq!(compute_hash(&[src], &h, None), None);
        let q = HashPolicy::new(HashPolicyKind::QueryParameter { name: "session".into() });
        assert_eq!(compute_hash(&[q], &h, None), Some(xxh64(b"xyz", 0)));
        let q = HashPolicy::new(HashPolicyKind::QueryParameter { name: "frag".into() });
        assert_eq!(compute_hash(&[q], &h, None), None);
    }

    #[test]
    fn policies_combine_by_rotate_xor_and_terminal_stops() {
        let h = headers(&[("x-a", "1"), ("x-b", "2")]);
        let (ha, hb) = (xxh64(b"1", 0), xxh64(b"2", 0));
        assert_eq!(
            compute_hash(&[header("x-a"), header("x-b")], &h, None),
            Some(ha.rotate_left(1) ^ hb)
        );
        // Two identical policies do not cancel out.
        assert_eq!(
            compute_hash(&[header("x-a"), header("x-a")], &h, None),
            Some(ha.rotate_left(1) ^ ha)
        );
        let terminal =
            HashPolicy { kind: HashPolicyKind::Header { name: "x-a".into() }, terminal: true };
        assert_eq!(compute_hash(&[terminal.clone(), header("x-b")], &h, None), Some(ha));
        // A terminal policy that produced nothing does not stop the walk.
        let t_missing =
            HashPolicy { kind: HashPolicyKind::Header { name: "x-none".into() }, terminal: true };
        assert_eq!(compute_hash(&[t_missing, header("x-b")], &h, None), Some(hb));
    }
}
