//! xDS resource types and their v3 type URLs (Envoy's `Config::TypeUrl`).
//!
//! Each discovery service serves one resource type, named on the wire by its
//! type URL. ADS carries all of them on one stream, in [`TypeUrl::ADS_ORDER`].
//!
//! The protocol core is generic over the decoded resource: anything that
//! implements [`XdsResource`] (a name plus the resources it needs before it can
//! serve: a cluster's endpoints, a listener's routes) can be subscribed to.

use std::fmt;

/// The resource types mini-envoy subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeUrl {
    /// CDS: `envoy.config.cluster.v3.Cluster`.
    Cluster,
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment`.
    ClusterLoadAssignment,
    /// LDS: `envoy.config.listener.v3.Listener`.
    Listener,
    /// RDS: `envoy.config.route.v3.RouteConfiguration`.
    RouteConfiguration,
    /// SDS: `envoy.extensions.transport_sockets.tls.v3.Secret`.
    Secret,
}

impl TypeUrl {
    /// Every type, in the order Envoy's ADS sends and applies them: CDS, EDS,
    /// LDS, RDS (a cluster before its endpoints, a listener before its routes,
    /// clusters before the listeners whose routes name them), then SDS.
    pub const ADS_ORDER: [TypeUrl; 5] = [
        TypeUrl::Cluster,
        TypeUrl::ClusterLoadAssignment,
        TypeUrl::Listener,
        TypeUrl::RouteConfiguration,
        TypeUrl::Secret,
    ];

    /// The full type URL.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            Self::ClusterLoadAssignment => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            Self::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            Self::RouteConfiguration => {
                "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
            }
            Self::Secret => "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        }
    }

    /// The protobuf message name (the type URL without its prefix).
    pub fn message_name(self) -> &'static str {
        let url = self.as_str();
        url.strip_prefix("type.googleapis.com/").unwrap_or(url)
    }

    /// Envoy's short name for the service: "CDS", "EDS", "LDS", "RDS", "SDS".
    pub const fn short_name(self) -> &'static str {
        match self {
            Self::Cluster => "CDS",
            Self::ClusterLoadAssignment => "EDS",
            Self::Listener => "LDS",
            Self::RouteConfiguration => "RDS",
            Self::Secret => "SDS",
        }
    }

    /// Parses a type URL (with or without the `type.googleapis.com/` prefix).
    pub fn parse(url: &str) -> Option<Self> {
        let name = url.rsplit_once('/').map_or(url, |(_, n)| n);
        Self::ADS_ORDER.into_iter().find(|t| t.message_name() == name)
    }

    /// Whether a SotW response for this type always carries every resource, so a
    /// resource missing from it has been removed (LDS and CDS). RDS and EDS
    /// responses carry only what changed among the names asked for.
    pub const fn is_full_state(self) -> bool {
        matches!(self, Self::Cluster | Self::Listener)
    }

    /// Position in [`TypeUrl::ADS_ORDER`].
    pub fn ads_rank(self) -> usize {
        Self::ADS_ORDER.iter().position(|t| *t == self).unwrap_or(usize::MAX)
    }
}

impl fmt::Display for TypeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference from one resource to another it needs, e.g. an EDS cluster to
/// its `ClusterLoadAssignment`, or a listener's HTTP connection manager to its
/// `RouteConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRef {
    /// The type of the resource needed.
    pub type_url: TypeUrl,
    /// Its name.
    pub name: String,
}

impl ResourceRef {
    /// A reference to `name` of type `type_url`.
    pub fn new(type_url: TypeUrl, name: impl Into<String>) -> Self {
        Self { type_url, name: name.into() }
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.type_url.short_name(), self.name)
    }
}

/// A decoded, validated resource the protocol core can track.
pub trait XdsResource {
    /// The resource's name (a cluster's, listener's, route configuration's name).
    fn name(&self) -> &str;

    /// The resources this one needs before it can serve: it stays *warming*
    /// until each has arrived (or the initial fetch timeout passes).
    fn dependencies(&self) -> Vec<ResourceRef> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_urls_round_trip() {
        for t in TypeUrl::ADS_ORDER {
            assert_eq!(TypeUrl::parse(t.as_str()), Some(t));
            assert_eq!(TypeUrl::parse(t.message_name()), Some(t));
        }
        assert_eq!(TypeUrl::parse("type.googleapis.com/envoy.config.listener.v2.Listener"), None);
        assert_eq!(
            TypeUrl::Listener.as_str(),
            "type.googleapis.com/envoy.config.listener.v3.Listener"
        );
        assert_eq!(TypeUrl::ClusterLoadAssignment.short_name(), "EDS");
    }

    #[test]
    fn ads_order_is_cds_eds_lds_rds() {
        let ranks: Vec<usize> = [
            TypeUrl::Cluster,
            TypeUrl::ClusterLoadAssignment,
            TypeUrl::Listener,
            TypeUrl::RouteConfiguration,
        ]
        .iter()
        .map(|t| t.ads_rank())
        .collect();
        assert_eq!(ranks, vec![0, 1, 2, 3]);
    }
}
