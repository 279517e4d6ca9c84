//! Reference solution of `sotw_ack_nack`. The real state
//! (`week4_xds::sotw::SotwState`) also tracks interest changes, resends and
//! removed resources.

use week4_xds::protocol::{DiscoveryRequest, DiscoveryResponse, Status};

/// One resource type's SotW subscription.
#[derive(Debug, Clone)]
pub struct SotwSubscription {
    type_url: String,
    resource_names: Vec<String>,
    version_info: String,
}

impl SotwSubscription {
    /// A subscription to `resource_names` of `type_url` (empty: all, a wildcard).
    pub fn new(type_url: &str, resource_names: Vec<String>) -> Self {
        Self { type_url: type_url.to_string(), resource_names, version_info: String::new() }
    }

    fn request(&self, nonce: &str, error_detail: Option<Status>) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: self.version_info.clone(),
            node: None,
            resource_names: self.resource_names.clone(),
            type_url: self.type_url.clone(),
            response_nonce: nonce.to_string(),
            error_detail,
        }
    }

    /// The first request on a (new) stream.
    pub fn initial_request(&self) -> DiscoveryRequest {
        self.request("", None)
    }

    /// Answers `response`: an ACK if `validate` accepts its resources, else a NACK.
    pub fn handle_response<P>(
        &mut self,
        response: &DiscoveryResponse<P>,
        validate: impl FnOnce(&[P]) -> Result<(), String>,
    ) -> DiscoveryRequest {
        let verdict = if response.type_url == self.type_url {
            validate(&response.resources)
        } else {
            Err(format!("type_url {:?} does not match {:?}", response.type_url, self.type_url))
        };
        match verdict {
            Ok(()) => {
                self.version_info = response.version_info.clone();
                self.request(&response.nonce, None)
            }
            Err(reason) => self.request(&response.nonce, Some(Status::invalid_argument(reason))),
        }
    }

    /// The last accepted version ("" before any).
    pub fn version_info(&self) -> &str {
        &self.version_info
    }
}
