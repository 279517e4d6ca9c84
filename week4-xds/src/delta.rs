//! Incremental (Delta) subscription state for one resource type (Envoy's
//! `DeltaSubscriptionState`).
//!
//! ```text
//!  interest change ──► pending subscribe / unsubscribe ─┐
//!  response ──► handle_response ──► validate (caller)   ├──► build_request
//!                  │  accept: per-resource versions,    │    (subscribe, unsubscribe,
//!                  │  removals, system_version_info     │     initial_resource_versions
//!                  └─ queue ACK / NACK (nonce, error) ──┘     on a new stream, nonce, error)
//! ```
//!
//! Unlike SotW, each resource carries its own version, responses carry only
//! what changed plus `removed_resources`, and every response gets its own ACK or
//! NACK. On a new stream the first request lists every subscribed name and the
//! versions already held (`initial_resource_versions`), so the server sends only
//! what changed while the client was away.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::protocol::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Node, Status};
use crate::resource::{TypeUrl, XdsResource};
use crate::subscription::{Handled, Interest, Outcome, Update, duplicate_name};

/// One queued answer to a response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingAck {
    nonce: String,
    error: Option<Status>,
}

/// One resource type's delta protocol state.
#[derive(Debug, Clone)]
pub struct DeltaState {
    type_url: TypeUrl,
    interest: Interest,
    /// Resources held: name → version.
    versions: BTreeMap<String, String>,
    pending_subscribe: BTreeSet<String>,
    pending_unsubscribe: BTreeSet<String>,
    acks: VecDeque<PendingAck>,
    system_version_info: String,
    /// The next request is the first of a stream.
    first_on_stream: bool,
}

impl DeltaState {
    /// A new subscription; its first request lists the whole interest.
    pub fn new(type_url: TypeUrl, interest: Interest) -> Self {
        Self {
            type_url,
            interest,
            versions: BTreeMap::new(),
            pending_subscribe: BTreeSet::new(),
            pending_unsubscribe: BTreeSet::new(),
            acks: VecDeque::new(),
            system_version_info: String::new(),
            first_on_stream: true,
        }
    }

    /// The type this state is for.
    pub fn type_url(&self) -> TypeUrl {
        self.type_url
    }

    /// The names subscribed to.
    pub fn interest(&self) -> &Interest {
        &self.interest
    }

    /// The resources held and their versions.
    pub fn resource_versions(&self) -> &BTreeMap<String, String> {
        &self.versions
    }

    /// The server's last `system_version_info`.
    pub fn system_version_info(&self) -> &str {
        &self.system_version_info
    }

    /// Whether a resource of this name is held.
    pub fn has(&self, name: &str) -> bool {
        self.versions.contains_key(name)
    }

    /// Replaces the subscribed names; returns whether a request is due, and the
    /// resources forgotten because they are no longer subscribed.
    pub fn set_interest(&mut self, interest: Interest) -> (bool, Vec<String>) {
        if interest == self.interest {
            return (false, Vec::new());
        }
        let old = std::mem::replace(&mut self.interest, interest);
        let new = &self.interest;
        let mut subscribe: Vec<String> = new.names.difference(&old.names).cloned().collect();
        let mut unsubscribe: Vec<String> = old.names.difference(&new.names).cloned().collect();
        if new.wildcard && !old.wildcard {
            subscribe.push("*".into());
        }
        if old.wildcard && !new.wildcard {
            unsubscribe.push("*".into());
        }
        for n in subscribe {
            self.pending_unsubscribe.remove(&n);
            self.pending_subscribe.insert(n);
        }
        for n in unsubscribe {
            self.pending_subscribe.remove(&n);
            self.pending_unsubscribe.insert(n);
        }
        let mut dropped = Vec::new();
        if !new.wildcard {
            self.versions.retain(|name, _| {
                let keep = new.names.contains(name);
                if !keep {
                    dropped.push(name.clone());
                }
                keep
            });
        }
        (true, dropped)
    }

    /// A new stream starts: the next request re-announces everything.
    pub fn on_stream_reset(&mut self) {
        self.first_on_stream = true;
        self.acks.clear();
        self.pending_subscribe.clear();
        self.pending_unsubscribe.clear();
    }

    /// Whether a request is waiting to be sent. A first request for an explicit
    /// subscription with no names is held back: an empty first request would
    /// mean "everything" (the legacy wildcard).
    pub fn request_due(&self) -> bool {
        if self.first_on_stream {
            return self.interest.wildcard || !self.interest.names.is_empty();
        }
        !self.acks.is_empty()
            || !self.pending_subscribe.is_empty()
            || !self.pending_unsubscribe.is_empty()
    }

    /// Builds the next request: on a new stream, the whole interest and the
    /// versions held; later, the subscription changes since the last request;
    /// plus the oldest pending ACK or NACK.
    pub fn build_request(&mut self, node: Option<Node>) -> DeltaDiscoveryRequest {
        let mut req = DeltaDiscoveryRequest {
            node,
            type_url: self.type_url.as_str().to_string(),
            ..Default::default()
        };
        if self.first_on_stream {
            self.first_on_stream = false;
            if self.interest.wildcard && !self.interest.names.is_empty() {
                req.resource_names_subscribe.push("*".into());
            }
            req.resource_names_subscribe.extend(self.interest.names.iter().cloned());
            req.initial_resource_versions = self
                .versions
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.pending_subscribe.clear();
            self.pending_unsubscribe.clear();
        } else {
            req.resource_names_subscribe =
                std::mem::take(&mut self.pending_subscribe).into_iter().collect();
            req.resource_names_unsubscribe =
                std::mem::take(&mut self.pending_unsubscribe).into_iter().collect();
        }
        if let Some(ack) = self.acks.pop_front() {
            req.response_nonce = ack.nonce;
            req.error_detail = ack.error;
        }
        req
    }

    // ANCHOR: delta_update
    /// Handles a response. Resources whose version the client already holds are
    /// dropped first (nothing to apply); `validate` judges the rest. Accepted:
    /// per-resource versions are recorded, removals forgotten, the system
    /// version noted, and an ACK queued. Rejected: nothing changes and a NACK
    /// with the reason is queued.
    pub fn handle_response<P, R, F>(
        &mut self,
        resp: DeltaDiscoveryResponse<P>,
        validate: F,
    ) -> Handled<R>
    where
        R: XdsResource,
        F: FnOnce(&DeltaDiscoveryResponse<P>) -> Result<Vec<R>, String>,
    {
        let nonce = resp.nonce.clone();
        if let Some(error) = Self::check_shape(&resp) {
            return self.reject(nonce, error);
        }
        let DeltaDiscoveryResponse {
            system_version_info,
            resources,
            type_url,
            removed_resources,
            ..
        } = resp;
        let (unchanged, changed): (Vec<_>, Vec<_>) = resources
            .into_iter()
            .partition(|r| !r.version.is_empty() && self.versions.get(&r.name) == Some(&r.version));
        let removed: Vec<String> =
            removed_resources.into_iter().filter(|n| self.versions.contains_key(n)).collect();
        drop(unchanged);
        if changed.is_empty() && removed.is_empty() {
            self.system_version_info = system_version_info;
            self.acks.push_back(PendingAck { nonce, error: None });
            return Handled { outcome: Outcome::Duplicate, request_due: true };
        }
        let filtered = DeltaDiscoveryResponse {
            system_version_info,
            resources: changed,
            type_url,
            removed_resources: removed,
            nonce: nonce.clone(),
        };
        match validate(&filtered) {
            Err(error) => self.reject(nonce, error),
            Ok(decoded) => {
                for r in &filtered.resources {
                    self.versions.insert(r.name.clone(), r.version.clone());
                }
                for n in &filtered.removed_resources {
                    self.versions.remove(n);
                }
                self.system_version_info = filtered.system_version_info.clone();
                self.acks.push_back(PendingAck { nonce, error: None });
                let update = Update {
                    type_url: self.type_url,
                    version_info: filtered.system_version_info,
                    resources: decoded,
                    removed: filtered.removed_resources,
                    warming: Default::default(),
                };
                Handled { outcome: Outcome::Accepted(update), request_due: true }
            }
        }
    }
    // ANCHOR_END: delta_update

    fn reject<R>(&mut self, nonce: String, error: String) -> Handled<R> {
        self.acks
            .push_back(PendingAck { nonce, error: Some(Status::invalid_argument(error.clone())) });
        Handled { outcome: Outcome::Rejected { error }, request_due: true }
    }

    /// Protocol-level checks Envoy makes before looking at the resources.
    fn check_shape<P>(resp: &DeltaDiscoveryResponse<P>) -> Option<String> {
        if let Some(dup) = duplicate_name(resp.resources.iter().map(|r| r.name.as_str())) {
            return Some(format!("duplicate resource name {dup:?} in the response"));
        }
        if let Some(empty) = resp.resources.iter().find(|r| r.name.is_empty()) {
            let _ = empty;
            return Some("a resource has no name".to_string());
        }
        let added: BTreeSet<&str> = resp.resources.iter().map(|r| r.name.as_str()).collect();
        if let Some(both) = resp.removed_resources.iter().find(|n| added.contains(n.as_str())) {
            return Some(format!("resource {both:?} is both updated and removed"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DeltaResource;
    use crate::subscription::test_support::Res;

    fn resp(nonce: &str, added: &[(&str, &str)], removed: &[&str]) -> DeltaDiscoveryResponse<Res> {
        DeltaDiscoveryResponse {
            system_version_info: format!("sys-{nonce}"),
            resources: added
                .iter()
                .map(|(n, v)| DeltaResource {
                    name: n.to_string(),
                    version: v.to_string(),
                    resource: Some(Res::new(n)),
                    aliases: vec![],
                })
                .collect(),
            type_url: TypeUrl::Cluster.as_str().into(),
            removed_resources: removed.iter().map(|s| s.to_string()).collect(),
            nonce: nonce.into(),
        }
    }

    fn ok(r: &DeltaDiscoveryResponse<Res>) -> Result<Vec<Res>, String> {
        Ok(r.resources.iter().filter_map(|r| r.resource.clone()).collect())
    }

    #[test]
    fn versions_removals_and_reconnect() {
        let mut s = DeltaState::new(TypeUrl::Cluster, Interest::wildcard());
        let first = s.build_request(None);
        assert!(
            first.resource_names_subscribe.is_empty() && first.initial_resource_versions.is_empty()
        );
        assert!(!s.request_due());

        s.handle_response(resp("n1", &[("a", "1"), ("b", "1")], &[]), ok);
        let ack = s.build_request(None);
        assert_eq!((ack.response_nonce.as_str(), ack.error_detail.clone()), ("n1", None));
        assert_eq!(s.system_version_info(), "sys-n1");

        let h = s.handle_response(resp("n2", &[("a", "2")], &["b"]), ok);
        let u = h.outcome.update().expect("accepted").clone();
        assert_eq!(u.removed, vec!["b".to_string()]);
        s.build_request(None);
        assert_eq!(s.resource_versions().get("a").map(String::as_str), Some("2"));
        assert!(!s.has("b"));

        s.on_stream_reset();
        let again = s.build_request(None);
        assert_eq!(again.initial_resource_versions.get("a").map(String::as_str), Some("2"));
        assert_eq!(again.initial_resource_versions.len(), 1);
        assert_eq!(again.response_nonce, "");
    }

    #[test]
    fn nack_keeps_versions() {
        let mut s = DeltaState::new(TypeUrl::Cluster, Interest::wildcard());
        s.build_request(None);
        s.handle_response(resp("n1", &[("a", "1")], &[]), ok);
        s.build_request(None);
        let h =
            s.handle_response(resp("n2", &[("a", "2")], &[]), |_| Err::<Vec<Res>, _>("no".into()));
        assert!(h.outcome.is_rejected());
        let nack = s.build_request(None);
        assert_eq!(nack.response_nonce, "n2");
        assert_eq!(nack.error_detail.map(|e| e.code), Some(3));
        assert_eq!(s.resource_versions().get("a").map(String::as_str), Some("1"));
    }

    #[test]
    fn unchanged_versions_are_duplicates_and_malformed_responses_are_rejected() {
        let mut s = DeltaState::new(TypeUrl::Cluster, Interest::wildcard());
        s.build_request(None);
        s.handle_response(resp("n1", &[("a", "1")], &[]), ok);
        let h = s.handle_response(resp("n2", &[("a", "1")], &[]), ok);
        assert!(matches!(h.outcome, Outcome::Duplicate));
        let h = s.handle_response(resp("n3", &[("x", "1")], &["x"]), ok);
        assert!(h.outcome.is_rejected());
        let h = s.handle_response(resp("n4", &[("y", "1"), ("y", "2")], &[]), ok);
        assert!(h.outcome.is_rejected());
    }

    #[test]
    fn explicit_interest_changes_become_subscribe_and_unsubscribe() {
        let mut s =
            DeltaState::new(TypeUrl::ClusterLoadAssignment, Interest::names(Vec::<String>::new()));
        assert!(!s.request_due(), "an empty explicit first request would mean wildcard");
        s.set_interest(Interest::names(["a", "b"]));
        assert!(s.request_due());
        let first = s.build_request(None);
        assert_eq!(first.resource_names_subscribe, vec!["a", "b"]);
        s.set_interest(Interest::names(["b", "c"]));
        let next = s.build_request(None);
        assert_eq!(next.resource_names_subscribe, vec!["c"]);
        assert_eq!(next.resource_names_unsubscribe, vec!["a"]);
        assert!(!s.request_due());
    }
}
