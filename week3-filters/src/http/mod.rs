//! # HTTP filters and the FilterManager
//!
//! Envoy's L7 extension point. Every HTTP stream the connection manager
//! decodes runs through a chain of [`StreamDecoderFilter`]s on the way to
//! the router, and its response runs back through [`StreamEncoderFilter`]s
//! in reverse order. The [`FilterManager`] (Envoy's `Http::FilterManager`)
//! drives one stream through its chain, sans-IO: the HCM feeds it decoded
//! headers/body/trailers and upstream responses, and consumes
//! [`StreamEvent`]s (what to send upstream, what to encode downstream,
//! timers to arm).
//!
//! - [`filter`]: the filter traits and statuses;
//! - [`filter_manager`]: the FilterManager, [`FilterCallbacks`] and events;
//! - [`stream_info`]: [`StreamInfo`] and Envoy's response flags;
//! - [`route`]: how filters see the route;
//! - [`filters`]: the built-in filters (router, CORS, auth, rate limit, fault, ...).

pub mod filter;
pub mod filter_manager;
pub mod filters;
pub mod route;
pub mod stream_info;

pub use filter::{
    CompletedStream, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus,
    HttpFilterInstance, StreamDecoderFilter, StreamEncoderFilter, StreamFilter, StreamFilterBase,
};
pub use filter_manager::{
    ChainFilter, DEFAULT_BUFFER_LIMIT, FilterCallbacks, FilterManager, FilterManagerConfig,
    StreamEvent, TimerId,
};
pub use route::{
    ResolvedRoute, RouteAction, RouteInfo, RouteResolver, RouteSnapshots, StaticRouteResolver,
};
pub use stream_info::{ConnectionInfo, ResponseFlag, ResponseFlags, StreamInfo};
