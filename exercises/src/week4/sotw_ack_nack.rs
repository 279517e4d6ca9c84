//! # Exercise `sotw_ack_nack`: ACK and NACK in State of the World xDS (week 4, day 3)
//!
//! In SotW xDS the control plane sends every resource of a type in each
//! `DiscoveryResponse`, tagged with a `version_info` and a `nonce`. The client
//! answers every response with a `DiscoveryRequest`: an ACK carries the new
//! version; a NACK carries the *last accepted* version and an `error_detail`,
//! and the client keeps running on the config it had. Both echo the nonce.
//! Build that state machine on week 4's real protocol types.
//!
//! ## Task
//!
//! Implement [`SotwSubscription`]:
//!
//! - [`SotwSubscription::initial_request`]: the first request of a stream:
//!   the type URL, the resource names, the last accepted `version_info` (empty
//!   before any), an empty `response_nonce`, no error.
//! - [`SotwSubscription::handle_response`]: every response is answered with
//!   its `nonce` in `response_nonce`. A response for another `type_url` is
//!   rejected without calling `validate`; otherwise `validate` (the caller's
//!   decoding and checking of the resources) decides. Accepted: remember its
//!   `version_info` and ACK it. Rejected: NACK with the last accepted version
//!   and `error_detail: Some(Status::invalid_argument(<reason>))`.
//! - [`SotwSubscription::version_info`]: the last accepted version.
//! - `node` stays `None` in this exercise (the real client sets it on a
//!   stream's first request).
//!
//! Run `cargo run -p exercises -- verify sotw_ack_nack`.

use week4_xds::protocol::{DiscoveryRequest, DiscoveryResponse, Status};

/// One resource type's SotW subscription.
#[derive(Debug, Clone)]
pub struct SotwSubscription {
    type_url: String,
    resource_names: Vec<String>,
    // Suggested state: the last accepted version.
}

impl SotwSubscription {
    /// A subscription to `resource_names` of `type_url` (empty: all, a wildcard).
    pub fn new(type_url: &str, resource_names: Vec<String>) -> Self {
        todo!()
    }

    /// The first request on a (new) stream.
    pub fn initial_request(&self) -> DiscoveryRequest {
        todo!()
    }

    /// Answers `response`: an ACK if `validate` accepts its resources, else a NACK.
    pub fn handle_response<P>(
        &mut self,
        response: &DiscoveryResponse<P>,
        validate: impl FnOnce(&[P]) -> Result<(), String>,
    ) -> DiscoveryRequest {
        todo!()
    }

    /// The last accepted version ("" before any).
    pub fn version_info(&self) -> &str {
        todo!()
    }
}
