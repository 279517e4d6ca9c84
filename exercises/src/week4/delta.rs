//! # Exercise `delta`: a Delta xDS subscription (week 4, day 2)
//!
//! Delta (incremental) xDS sends only what changed: the client subscribes and
//! unsubscribes by name, the server sends added/changed resources with a
//! per-resource version and the names of removed ones. On a new stream the
//! client tells the server which versions it already has
//! (`initial_resource_versions`) so nothing is resent needlessly. Build the
//! client side on week 4's real protocol types.
//!
//! ## Task
//!
//! Implement [`DeltaSubscription`] (every request carries its `type_url`):
//!
//! - [`DeltaSubscription::subscribe`] returns the request subscribing to the
//!   names not yet subscribed (sorted, no duplicates); names already
//!   subscribed are not repeated.
//! - [`DeltaSubscription::unsubscribe`] returns the request unsubscribing the
//!   subscribed ones among `names` (sorted), and forgets their versions.
//! - [`DeltaSubscription::handle_response`]: if `validate` accepts, record
//!   each resource's version (by name) and forget each `removed_resources`
//!   name, then ACK (`response_nonce` = the nonce, no error); if it rejects,
//!   change nothing and NACK with
//!   `error_detail: Some(Status::invalid_argument(<reason>))`.
//! - [`DeltaSubscription::reconnect_request`]: the first request of a new
//!   stream: every subscribed name in `resource_names_subscribe` (sorted) and
//!   every known version in `initial_resource_versions`, no nonce.
//! - [`DeltaSubscription::versions`]: name → version of what is held.
//!
//! Run `cargo run -p exercises -- verify delta`.

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
        todo!()
    }

    /// Subscribes to `names`.
    pub fn subscribe(&mut self, names: &[&str]) -> DeltaDiscoveryRequest {
        todo!()
    }

    /// Unsubscribes from `names`.
    pub fn unsubscribe(&mut self, names: &[&str]) -> DeltaDiscoveryRequest {
        todo!()
    }

    /// Applies `response` if `validate` accepts it; the ACK or NACK.
    pub fn handle_response<P>(
        &mut self,
        response: &DeltaDiscoveryResponse<P>,
        validate: impl FnOnce(&DeltaDiscoveryResponse<P>) -> Result<(), String>,
    ) -> DeltaDiscoveryRequest {
        todo!()
    }

    /// The first request on a new stream.
    pub fn reconnect_request(&self) -> DeltaDiscoveryRequest {
        todo!()
    }

    /// Name → version of the resources held.
    pub fn versions(&self) -> &BTreeMap<String, String> {
        todo!()
    }
}
