//! State of the World subscription state for one resource type (Envoy's
//! `SotwSubscriptionState` / the per-type `GrpcMuxImpl::ApiState`).
//!
//! ```text
//!  response ──► handle_response ──► validate (caller) ──► ACK: version_info = new, nonce = new
//!                                                     └─► NACK: version_info = last good,
//!                                                              nonce = rejected, error_detail
//!  build_request ◄── mux (on ACK/NACK, interest change, new stream)
//! ```
//!
//! The state keeps the last *accepted* `version_info`, the last *received*
//! nonce, the names subscribed to, and a pending error for the next request.
//! Requests are built when the mux sends them, from the current state, so
//! several changes to one type coalesce into one request as in Envoy.

use std::collections::BTreeSet;

use crate::protocol::{DiscoveryRequest, DiscoveryResponse, Node, Status};
use crate::resource::{TypeUrl, XdsResource};
use crate::subscription::{Handled, Interest, Outcome, Update, duplicate_name};

/// One resource type's SotW protocol state.
#[derive(Debug, Clone)]
pub struct SotwState {
    type_url: TypeUrl,
    interest: Interest,
    /// Last version accepted ("" before any): sent in every request, and kept by a NACK.
    version_info: String,
    /// Last nonce received on the current stream.
    nonce: String,
    /// The NACK detail to send in the next request.
    pending_error: Option<Status>,
    /// The interest in force when `version_info` was accepted (to recognise a resend).
    interest_at_version: Option<Interest>,
    /// Names of the resources held.
    known: BTreeSet<String>,
}

impl SotwState {
    /// A new subscription with no version yet.
    pub fn new(type_url: TypeUrl, interest: Interest) -> Self {
        Self {
            type_url,
            interest,
            version_info: String::new(),
            nonce: String::new(),
            pending_error: None,
            interest_at_version: None,
            known: BTreeSet::new(),
        }
    }

    /// The type this state is for.
    pub fn type_url(&self) -> TypeUrl {
        self.type_url
    }

    /// The last accepted version.
    pub fn version_info(&self) -> &str {
        &self.version_info
    }

    /// The last nonce received on this stream.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// The names subscribed to.
    pub fn interest(&self) -> &Interest {
        &self.interest
    }

    /// Whether a resource of this name is held.
    pub fn has(&self, name: &str) -> bool {
        self.known.contains(name)
    }

    /// The names of the resources held.
    pub fn known(&self) -> &BTreeSet<String> {
        &self.known
    }

    /// Replaces the subscribed names; returns whether they changed (a request is due).
    /// Resources no longer subscribed are forgotten and returned.
    pub fn set_interest(&mut self, interest: Interest) -> (bool, Vec<String>) {
        if interest == self.interest {
            return (false, Vec::new());
        }
        let mut dropped = Vec::new();
        if !interest.wildcard {
            self.known.retain(|n| {
                let keep = interest.names.contains(n);
                if !keep {
                    dropped.push(n.clone());
                }
                keep
            });
        }
        self.interest = interest;
        (true, dropped)
    }

    /// A new stream starts: nonces of the old one mean nothing to the new server.
    pub fn on_stream_reset(&mut self) {
        self.nonce.clear();
        self.pending_error = None;
    }

    /// The request to send now: the last good version, the last nonce, the
    /// names, and the error detail if the last response was rejected.
    pub fn build_request(&mut self, node: Option<Node>) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: self.version_info.clone(),
            node,
            resource_names: self.interest.sotw_names(),
            type_url: self.type_url.as_str().to_string(),
            response_nonce: self.nonce.clone(),
            error_detail: self.pending_error.take(),
        }
    }

    // ANCHOR: sotw_ack_nack
    /// Handles a response: `validate` decodes and checks the resources (the
    /// caller's verdict). On success the new version is accepted and the next
    /// request ACKs it; on failure the version stays, and the next request NACKs
    /// the response's nonce with INVALID_ARGUMENT and the reason.
    pub fn handle_response<P, R, F>(
        &mut self,
        resp: DiscoveryResponse<P>,
        validate: F,
    ) -> Handled<R>
    where
        R: XdsResource,
        F: FnOnce(&DiscoveryResponse<P>) -> Result<Vec<R>, String>,
    {
        self.nonce = resp.nonce.clone();
        // A resend of the version already accepted, for the same names: ACK it
        // again (the server waits for an answer to every nonce) and apply nothing.
        if !self.version_info.is_empty()
            && resp.version_info == self.version_info
            && self.interest_at_version.as_ref() == Some(&self.interest)
        {
            return Handled { outcome: Outcome::Duplicate, request_due: true };
        }
        let verdict = validate(&resp).and_then(|resources| {
            match duplicate_name(resources.iter().map(XdsResource::name)) {
                Some(dup) => Err(format!("duplicate resource name {dup:?} in the response")),
                None => Ok(resources),
            }
        });
        match verdict {
            Err(error) => {
                self.pending_error = Some(Status::invalid_argument(error.clone()));
                Handled { outcome: Outcome::Rejected { error }, request_due: true }
            }
            Ok(resources) => {
                let names: BTreeSet<String> =
                    resources.iter().map(|r| r.name().to_string()).collect();
                let removed: Vec<String> = if self.type_url.is_full_state() {
                    self.known.difference(&names).cloned().collect()
                } else {
                    Vec::new()
                };
                if self.type_url.is_full_state() {
                    self.known = names;
                } else {
                    self.known.extend(names);
                }
                self.version_info = resp.version_info;
                self.interest_at_version = Some(self.interest.clone());
                self.pending_error = None;
                let update = Update {
                    type_url: self.type_url,
                    version_info: self.version_info.clone(),
                    resources,
                    removed,
                    warming: Default::default(),
                };
                Handled { outcome: Outcome::Accepted(update), request_due: true }
            }
        }
    }
    // ANCHOR_END: sotw_ack_nack
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::test_support::Res;

    fn resp(version: &str, nonce: &str, names: &[&str]) -> DiscoveryResponse<Res> {
        DiscoveryResponse {
            version_info: version.into(),
            resources: names.iter().map(|n| Res::new(n)).collect(),
            type_url: TypeUrl::Cluster.as_str().into(),
            nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn ok(r: &DiscoveryResponse<Res>) -> Result<Vec<Res>, String> {
        Ok(r.resources.clone())
    }

    #[test]
    fn ack_then_nack_keeps_the_good_version() {
        let mut s = SotwState::new(TypeUrl::Cluster, Interest::wildcard());
        let first = s.build_request(None);
        assert_eq!((first.version_info.as_str(), first.response_nonce.as_str()), ("", ""));
        assert!(first.resource_names.is_empty());

        let h = s.handle_response(resp("1", "a", &["c1"]), ok);
        assert!(matches!(h.outcome, Outcome::Accepted(_)));
        let ack = s.build_request(None);
        assert_eq!((ack.version_info.as_str(), ack.response_nonce.as_str()), ("1", "a"));
        assert_eq!(ack.error_detail, None);

        let h = s.handle_response(resp("2", "b", &["c1"]), |_| Err::<Vec<Res>, _>("bad".into()));
        assert!(matches!(h.outcome, Outcome::Rejected { .. }));
        let nack = s.build_request(None);
        assert_eq!((nack.version_info.as_str(), nack.response_nonce.as_str()), ("1", "b"));
        assert_eq!(nack.error_detail, Some(Status { code: 3, message: "bad".into() }));
        // The error is sent once.
        assert_eq!(s.build_request(None).error_detail, None);
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let mut s = SotwState::new(TypeUrl::Cluster, Interest::wildcard());
        let h = s.handle_response(resp("1", "a", &["c1", "c1"]), ok);
        match h.outcome {
            Outcome::Rejected { error } => assert!(error.contains("duplicate"), "{error}"),
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert_eq!(s.version_info(), "");
    }

    #[test]
    fn full_state_types_report_removals() {
        let mut s = SotwState::new(TypeUrl::Cluster, Interest::wildcard());
        s.handle_response(resp("1", "a", &["c1", "c2"]), ok);
        let h = s.handle_response(resp("2", "b", &["c2"]), ok);
        match h.outcome {
            Outcome::Accepted(u) => assert_eq!(u.removed, vec!["c1".to_string()]),
            other => panic!("{other:?}"),
        }
        assert!(!s.has("c1") && s.has("c2"));
    }

    #[test]
    fn same_version_same_names_is_a_duplicate_but_new_names_are_not() {
        let mut s = SotwState::new(TypeUrl::ClusterLoadAssignment, Interest::names(["a"]));
        s.handle_response(resp("1", "n1", &["a"]), ok);
        let h = s.handle_response(resp("1", "n2", &["a"]), ok);
        assert!(matches!(h.outcome, Outcome::Duplicate));
        assert_eq!(s.build_request(None).response_nonce, "n2");
        s.set_interest(Interest::names(["a", "b"]));
        let h = s.handle_response(resp("1", "n3", &["a", "b"]), ok);
        assert!(matches!(h.outcome, Outcome::Accepted(_)));
    }
}
