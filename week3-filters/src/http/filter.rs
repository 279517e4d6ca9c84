//! # HTTP filter interfaces: `StreamDecoderFilter`, `StreamEncoderFilter`, `StreamFilter`
//!
//! Envoy's `Http::StreamDecoderFilter` sees the request on its way from the
//! codec to the router (`decode_headers`, `decode_data`, `decode_trailers`);
//! `Http::StreamEncoderFilter` sees the response on its way back
//! (`encode_headers`, `encode_data`, `encode_trailers`); a
//! `Http::StreamFilter` is both. Each call answers a status that tells the
//! [`FilterManager`](crate::http::FilterManager) whether to go on to the next
//! filter or to stop here, and if so whether to buffer what comes next:
//!
//! ```text
//!  headers: Continue | StopIteration | StopAllIterationAndBuffer | StopAllIterationAndWatermark
//!  data:    Continue | StopIterationAndBuffer | StopIterationAndWatermark | StopIterationNoBuffer
//!  trailers: Continue | StopIteration
//! ```
//!
//! A stopped filter resumes the chain later with
//! [`FilterCallbacks::continue_decoding`] / [`FilterCallbacks::continue_encoding`],
//! typically from [`StreamFilterBase::on_timer`] (a timer it asked for with
//! [`FilterCallbacks::start_timer`]). Every method gets the stream's
//! [`FilterCallbacks`]: route, stream info, buffers, local replies.
//!
//! Filters are created per stream by a factory that holds their parsed
//! config in an `Arc` (see [`crate::registry`]), so a filter instance only
//! carries per-stream state.

use week1_core::headers::HeaderMap;

use super::filter_manager::{FilterCallbacks, TimerId};
use super::stream_info::StreamInfo;
use crate::buffer::Buffer;

/// What a filter answers to headers (Envoy's `FilterHeadersStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterHeadersStatus {
    /// Go on to the next filter.
    Continue,
    /// Do not pass the headers on; body data still reaches this filter.
    StopIteration,
    /// Do not pass headers on, and hold back body and trailers from this
    /// filter too (buffered, up to the buffer limit: over it 413 / 500).
    StopAllIterationAndBuffer,
    /// As `StopAllIterationAndBuffer`, but over the limit the FilterManager
    /// asks the owner to stop reading (watermark) instead of failing.
    StopAllIterationAndWatermark,
}

/// What a filter answers to body data (Envoy's `FilterDataStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterDataStatus {
    /// Go on (after a stop on headers: resume the whole chain, headers first).
    Continue,
    /// Keep this data in the stream's buffer and stop (limit: 413 / 500).
    StopIterationAndBuffer,
    /// Keep this data and stop; over the limit, stop reading (watermark).
    StopIterationAndWatermark,
    /// Stop without buffering: the filter took care of the data (it is
    /// dropped unless the filter moved it out, e.g. to add it back later with
    /// `add_decoded_data`).
    StopIterationNoBuffer,
}

/// What a filter answers to trailers (Envoy's `FilterTrailersStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterTrailersStatus {
    /// Go on.
    Continue,
    /// Stop until the filter continues.
    StopIteration,
}

/// The end of a stream as filters see it when it completes: everything the
/// access log sees.
#[derive(Debug, Clone, Copy)]
pub struct CompletedStream<'a> {
    /// The stream's info.
    pub info: &'a StreamInfo,
    /// The request headers, if any arrived.
    pub request_headers: Option<&'a HeaderMap>,
    /// The response headers, if a response started.
    pub response_headers: Option<&'a HeaderMap>,
    /// Request trailers.
    pub request_trailers: Option<&'a HeaderMap>,
    /// Response trailers.
    pub response_trailers: Option<&'a HeaderMap>,
}

/// What every HTTP filter has (Envoy's `StreamFilterBase`).
pub trait StreamFilterBase: Send {
    /// A timer this filter started fired.
    fn on_timer(&mut self, _timer: TimerId, _cb: &mut FilterCallbacks<'_>) {}
    /// The stream is complete (before it is logged); once per stream.
    fn on_stream_complete(&mut self, _stream: &CompletedStream<'_>) {}
    /// The stream is being destroyed; once per stream, last call.
    fn on_destroy(&mut self) {}
}

/// A filter on the request path (Envoy's `StreamDecoderFilter`).
pub trait StreamDecoderFilter: StreamFilterBase {
    /// Request headers; `end_stream` when the request has no body or trailers.
    fn decode_headers(
        &mut self,
        headers: &mut HeaderMap,
        end_stream: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus;

    /// A chunk of request body.
    fn decode_data(
        &mut self,
        _data: &mut Buffer,
        _end_stream: bool,
        _cb: &mut FilterCallbacks<'_>,
    ) -> FilterDataStatus {
        FilterDataStatus::Continue
    }

    /// Request trailers (the end of the request).
    fn decode_trailers(
        &mut self,
        _trailers: &mut HeaderMap,
        _cb: &mut FilterCallbacks<'_>,
    ) -> FilterTrailersStatus {
        FilterTrailersStatus::Continue
    }
}

/// A filter on the response path (Envoy's `StreamEncoderFilter`).
pub trait StreamEncoderFilter: StreamFilterBase {
    /// Response headers; `end_stream` when the response has no body.
    fn encode_headers(
        &mut self,
        headers: &mut HeaderMap,
        end_stream: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus;

    /// A chunk of response body.
    fn encode_data(
        &mut self,
        _data: &mut Buffer,
        _end_stream: bool,
        _cb: &mut FilterCallbacks<'_>,
    ) -> FilterDataStatus {
        FilterDataStatus::Continue
    }

    /// Response trailers.
    fn encode_trailers(
        &mut self,
        _trailers: &mut HeaderMap,
        _cb: &mut FilterCallbacks<'_>,
    ) -> FilterTrailersStatus {
        FilterTrailersStatus::Continue
    }
}

/// A filter on both paths (Envoy's `StreamFilter`).
pub trait StreamFilter: StreamDecoderFilter + StreamEncoderFilter {}

impl<T: StreamDecoderFilter + StreamEncoderFilter> StreamFilter for T {}

/// One filter instance of a stream, by role.
pub enum HttpFilterInstance {
    /// Request path only.
    Decoder(Box<dyn StreamDecoderFilter>),
    /// Response path only.
    Encoder(Box<dyn StreamEncoderFilter>),
    /// Both paths (one instance, shared state).
    Dual(Box<dyn StreamFilter>),
}

impl HttpFilterInstance {
    /// A request-path filter.
    pub fn decoder(f: impl StreamDecoderFilter + 'static) -> Self {
        Self::Decoder(Box::new(f))
    }
    /// A response-path filter.
    pub fn encoder(f: impl StreamEncoderFilter + 'static) -> Self {
        Self::Encoder(Box::new(f))
    }
    /// A filter on both paths.
    pub fn dual(f: impl StreamFilter + 'static) -> Self {
        Self::Dual(Box::new(f))
    }

    pub(crate) fn as_decoder(&mut self) -> Option<&mut dyn StreamDecoderFilter> {
        match self {
            Self::Decoder(f) => Some(f.as_mut()),
            Self::Dual(f) => Some(f.as_mut() as &mut dyn StreamDecoderFilter),
            Self::Encoder(_) => None,
        }
    }

    pub(crate) fn as_encoder(&mut self) -> Option<&mut dyn StreamEncoderFilter> {
        match self {
            Self::Encoder(f) => Some(f.as_mut()),
            Self::Dual(f) => Some(f.as_mut() as &mut dyn StreamEncoderFilter),
            Self::Decoder(_) => None,
        }
    }

    pub(crate) fn base(&mut self) -> &mut dyn StreamFilterBase {
        match self {
            Self::Decoder(f) => f.as_mut() as &mut dyn StreamFilterBase,
            Self::Encoder(f) => f.as_mut() as &mut dyn StreamFilterBase,
            Self::Dual(f) => f.as_mut() as &mut dyn StreamFilterBase,
        }
    }

    /// Whether the filter is on the request path.
    pub fn is_decoder(&self) -> bool {
        !matches!(self, Self::Encoder(_))
    }

    /// Whether the filter is on the response path.
    pub fn is_encoder(&self) -> bool {
        !matches!(self, Self::Decoder(_))
    }
}

impl std::fmt::Debug for HttpFilterInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Decoder(_) => "Decoder",
            Self::Encoder(_) => "Encoder",
            Self::Dual(_) => "Dual",
        })
    }
}
