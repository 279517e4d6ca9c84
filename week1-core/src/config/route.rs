//! `envoy.config.route.v3`: route configurations, virtual hosts and routes.
//! (Filled in by the router work; this is the seam other config modules use.)

use serde::Deserialize;

use super::validate::{Validate, Validator};

/// `envoy.config.route.v3.RouteConfiguration`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfiguration {
    /// The name RDS refers to.
    pub name: String,
}

impl Validate for RouteConfiguration {
    fn validate(&self, _v: &mut Validator) {}
}
