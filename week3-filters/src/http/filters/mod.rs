//! # Built-in HTTP filters
//!
//! Each filter follows Envoy's semantics for its `envoy.filters.http.*`
//! name and is built from its typed config by [`crate::registry`].
