//! What SotW and Delta subscriptions share (Envoy's `SubscriptionState` base):
//! the client's interest (wildcard and/or explicit names) and the outcome of
//! handling one response.
//!
//! ```text
//!  response ──► SotwState / DeltaState ──► Handled { outcome, request_due }
//!                                             │
//!          Accepted(Update) | Rejected | Duplicate | Ignored
//! ```

use std::collections::BTreeSet;

use crate::resource::TypeUrl;

/// The names a subscription asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interest {
    /// Everything of the type (`*`), as LDS and CDS usually are.
    pub wildcard: bool,
    /// Explicitly named resources (RDS and EDS, or on top of a wildcard).
    pub names: BTreeSet<String>,
}

impl Interest {
    /// A wildcard subscription.
    pub fn wildcard() -> Self {
        Self { wildcard: true, names: BTreeSet::new() }
    }

    /// An explicit subscription to `names`.
    pub fn names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { wildcard: false, names: names.into_iter().map(Into::into).collect() }
    }

    /// Whether a resource of this name is wanted.
    pub fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// The SotW `resource_names`: empty for a plain (legacy) wildcard, `*` plus
    /// the names for a wildcard with extra names, else the names.
    pub fn sotw_names(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.names.len() + 1);
        if self.wildcard && !self.names.is_empty() {
            out.push("*".to_string());
        }
        out.extend(self.names.iter().cloned());
        out
    }
}

/// An accepted update, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Update<R> {
    /// The resource type.
    pub type_url: TypeUrl,
    /// SotW: the accepted `version_info`; Delta: the `system_version_info`.
    pub version_info: String,
    /// Resources added or changed (SotW LDS/CDS: all of them).
    pub resources: Vec<R>,
    /// Names of resources that no longer exist.
    pub removed: Vec<String>,
    /// Names among `resources` that are warming: they wait for resources they
    /// depend on (filled in by [`crate::mux::AdsMux`]); apply them, but serve
    /// them only after their [`crate::mux::Event::Warmed`].
    pub warming: BTreeSet<String>,
}

/// Why a response was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreReason {
    /// The type URL is not one mini-envoy knows.
    UnknownType(String),
    /// Nothing subscribes to this type.
    NotSubscribed(TypeUrl),
}

/// What became of one response.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<R> {
    /// Valid: apply `Update`; an ACK is queued.
    Accepted(Update<R>),
    /// Invalid: nothing changes; a NACK is queued.
    Rejected {
        /// The reason sent in `error_detail`.
        error: String,
    },
    /// The same version again for the same names (or, in delta, nothing new):
    /// ACKed, nothing to apply.
    Duplicate,
    /// Not for a type this client watches; no request is sent.
    Ignored(IgnoreReason),
}

impl<R> Outcome<R> {
    /// The update, when accepted.
    pub fn update(&self) -> Option<&Update<R>> {
        match self {
            Self::Accepted(u) => Some(u),
            _ => None,
        }
    }

    /// Whether the response was rejected.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }
}

/// The result of a per-type state handling a response.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled<R> {
    /// What happened.
    pub outcome: Outcome<R>,
    /// Whether an ACK or NACK is now due for this type.
    pub request_due: bool,
}

/// The first name that appears twice, if any.
pub(crate) fn duplicate_name<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = BTreeSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::resource::{ResourceRef, XdsResource};

    /// A minimal resource for unit tests.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Res {
        pub name: String,
        pub deps: Vec<ResourceRef>,
    }

    impl Res {
        pub fn new(name: &str) -> Self {
            Self { name: name.into(), deps: Vec::new() }
        }
    }

    impl XdsResource for Res {
        fn name(&self) -> &str {
            &self.name
        }
        fn dependencies(&self) -> Vec<ResourceRef> {
            self.deps.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sotw_names_follow_the_wildcard_rules() {
        assert!(Interest::wildcard().sotw_names().is_empty());
        let mut w = Interest::wildcard();
        w.names.insert("x".into());
        assert_eq!(w.sotw_names(), vec!["*", "x"]);
        assert_eq!(Interest::names(["b", "a"]).sotw_names(), vec!["a", "b"]);
        assert!(w.wants("anything") && !Interest::names(["a"]).wants("b"));
    }

    #[test]
    fn finds_duplicates() {
        assert_eq!(duplicate_name(["a", "b", "a"].into_iter()), Some("a"));
        assert_eq!(duplicate_name(["a", "b"].into_iter()), None);
    }
}
