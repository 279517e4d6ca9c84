//! # `envoy.filters.http.router`: the terminal filter
//!
//! In Envoy the router is the last decoder filter: it looks at the route and
//! either answers locally (no route: 404 `NR`; unknown cluster: 503 `NC`;
//! `direct_response`; redirect) or forwards the request upstream and later
//! feeds the upstream response into the encoder chain.
//!
//! mini-envoy splits it at the I/O boundary. [`RouterFilter`] (here, sans-IO)
//! makes the local answers and records the cluster in the stream info; a
//! forwarded request then leaves the chain as
//! [`StreamEvent::UpstreamHeaders`](crate::http::StreamEvent) /
//! `UpstreamData` / `UpstreamTrailers`, which mini-envoy's upstream half (the
//! *terminal interface*) consumes: it picks a host (week 1 load balancer),
//! sends the request over its connection pool, sets
//! [`StreamInfo::upstream_host`](crate::http::StreamInfo) and the upstream
//! timings, answers the response with [`FilterManager::encode_headers`]
//! / `encode_data` / `encode_trailers`, and failures with
//! [`FilterManager::send_local_reply`] (503 `UH`/`UF`/`UO`, 504 `UT`).
//! On [`StreamEvent::LocalReply`](crate::http::StreamEvent) it cancels the
//! upstream request. [`RouterConfig`] carries the router's typed config for it.
//!
//! [`FilterManager::encode_headers`]: crate::http::FilterManager::encode_headers
//! [`FilterManager::send_local_reply`]: crate::http::FilterManager::send_local_reply

use std::sync::Arc;

use week1_core::config::filters::Router;
use week1_core::headers::HeaderMap;

use crate::buffer::Buffer;
use crate::http::stream_info::details;
use crate::http::{
    FilterCallbacks, FilterHeadersStatus, ResponseFlag, RouteAction, StreamDecoderFilter,
    StreamFilterBase,
};

/// The router's settings, for mini-envoy's upstream half.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouterConfig {
    /// Do not add `x-envoy-*` headers.
    pub suppress_envoy_headers: bool,
    /// Honour `x-envoy-expected-rq-timeout-ms` from downstream.
    pub respect_expected_rq_timeout: bool,
    /// Headers to check strictly.
    pub strict_check_headers: Vec<String>,
    /// Per-cluster dynamic stats.
    pub dynamic_stats: bool,
}

impl RouterConfig {
    /// From the typed config.
    pub fn new(c: &Router) -> Self {
        Self {
            suppress_envoy_headers: c.suppress_envoy_headers,
            respect_expected_rq_timeout: c.respect_expected_rq_timeout,
            strict_check_headers: c.strict_check_headers.clone(),
            dynamic_stats: c.dynamic_stats.unwrap_or(true),
        }
    }
}

/// The router filter (see the module docs).
#[derive(Debug)]
pub struct RouterFilter {
    config: Arc<RouterConfig>,
}

impl RouterFilter {
    /// A router for one stream.
    pub fn new(config: Arc<RouterConfig>) -> Self {
        Self { config }
    }

    /// The router's settings.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }
}

impl StreamFilterBase for RouterFilter {}

impl StreamDecoderFilter for RouterFilter {
    fn decode_headers(
        &mut self,
        _headers: &mut HeaderMap,
        _end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        let Some(route) = cb.route() else {
            cb.stream_info_mut().set_response_flag(ResponseFlag::NoRouteFound);
            cb.send_local_reply(404, "", |_| {}, details::ROUTE_NOT_FOUND);
            return FilterHeadersStatus::StopIteration;
        };
        match route.action() {
            RouteAction::Forward { cluster } => {
                cb.stream_info_mut().upstream_cluster = Some(cluster.clone());
                FilterHeadersStatus::Continue
            }
            RouteAction::ClusterNotFound { status, .. } => {
                cb.stream_info_mut().set_response_flag(ResponseFlag::NoClusterFound);
                cb.send_local_reply(*status, "", |_| {}, details::CLUSTER_NOT_FOUND);
                FilterHeadersStatus::StopIteration
            }
            RouteAction::DirectResponse { body, headers, .. } => {
                let with_body = !body.is_empty() && !cb.is_head_request();
                cb.encode_headers(headers.clone(), !with_body, details::DIRECT_RESPONSE);
                if with_body {
                    cb.encode_data(Buffer::from(body.as_bytes()), true);
                }
                FilterHeadersStatus::StopIteration
            }
            RouteAction::Redirect { headers, .. } => {
                cb.encode_headers(headers.clone(), true, details::REDIRECT);
                FilterHeadersStatus::StopIteration
            }
        }
    }
}
