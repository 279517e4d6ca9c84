//! Reference solution of `delta`. The real state (`week4_xds::delta::DeltaState`)
//! also handles wildcard subscriptions, aliases and coalescing of requests.

use std::collections::{BTreeMap, BTreeSet};

use week4_xds::protocol::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Status};

/// One resource type's Delta subscription.
#[derive(Debug, Clone)]
pub struct DeltaSubscription {
    type_url: String,
    subscribed: BTreeSet<String>,
    versions: BTreeMap<String, String>,
}

impl DeltaSubscription {
    /// A subscription to nothing yet.
    pub fn new(type_url: &str) -> Self {
        Self {
            type_url: type_url.to_string(),
            subscribed: BTreeSet::new(),
            versions: BTreeMap::new(),
        }
    }

    fn request(&self) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: self.type_url.clone(),
            ..DeltaDiscoveryRequest::default()
        }
    }

    /// Subscribes to `names`.
    pub fn subscribe(&mut self, names: &[&str]) -> DeltaDiscoveryRequest {
        let added: BTreeSet<String> = names
            .iter()
            .filter(|n| self.subscribed.insert(n.to_string()))
            .map(|n| n.to_string())
            .collect();
        DeltaDiscoveryRequest {
            resource_names_subscribe: added.into_iter().collect(),
            ..self.request()
        }
    }

    /// Unsubscribes from `names`.
    pub fn unsubscribe(&mut self, names: &[&str]) -> DeltaDiscoveryRequest {
        let removed: BTreeSet<String> =
            names.iter().filter(|n| self.subscribed.remove(**n)).map(|n| n.to_string()).collect();
        for name in &removed {
            self.versions.remove(name);
        }
        DeltaDiscoveryRequest {
            resource_names_unsubscribe: removed.into_iter().collect(),
            ..self.request()
        }
    }

    /// Applies `response` if `validate` accepts it; the ACK or NACK.
    pub fn handle_response<P>(
        &mut self,
        response: &DeltaDiscoveryResponse<P>,
        validate: impl FnOnce(&DeltaDiscoveryResponse<P>) -> Result<(), String>,
    ) -> DeltaDiscoveryRequest {
        let error_detail = match validate(response) {
            Ok(()) => {
                for r in &response.resources {
                    self.versions.insert(r.name.clone(), r.version.clone());
                }
                for name in &response.removed_resources {
                    self.versions.remove(name);
                }
                None
            }
            Err(reason) => Some(Status::invalid_argument(reason)),
        };
        DeltaDiscoveryRequest {
            response_nonce: response.nonce.clone(),
            error_detail,
            ..self.request()
        }
    }

    /// The first request on a new stream.
    pub fn reconnect_request(&self) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            resource_names_subscribe: self.subscribed.iter().cloned().collect(),
            initial_resource_versions: self.versions.clone(),
            ..self.request()
        }
    }

    /// Name → version of the resources held.
    pub fn versions(&self) -> &BTreeMap<String, String> {
        &self.versions
    }
}
