//! # `envoy.filters.http.buffer`
//!
//! Envoy's buffer filter: the whole request body is collected before the
//! request goes upstream (the stream's buffer limit becomes
//! `max_request_bytes`, so a bigger body gets the FilterManager's 413), and a
//! request without `content-length` gets one. A route can disable the
//! filter or set another limit (`BufferPerRoute`).

use week1_core::config::filters::{Buffer as BufferConfig, BufferPerRoute};
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue};

use crate::buffer::Buffer;
use crate::http::{
    FilterCallbacks, FilterDataStatus, FilterHeadersStatus, StreamDecoderFilter, StreamFilterBase,
};

/// The filter of one stream.
#[derive(Debug)]
pub struct BufferFilter {
    max_request_bytes: usize,
    active: bool,
}

impl BufferFilter {
    /// A filter for one stream.
    pub fn new(config: &BufferConfig) -> Self {
        Self { max_request_bytes: config.max_request_bytes.unwrap_or(0) as usize, active: false }
    }
}

impl StreamFilterBase for BufferFilter {}

impl StreamDecoderFilter for BufferFilter {
    fn decode_headers(
        &mut self,
        _headers: &mut HeaderMap,
        end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        if end {
            return FilterHeadersStatus::Continue;
        }
        let mut limit = self.max_request_bytes;
        if let Some(p) = cb.per_filter_config::<BufferPerRoute>() {
            if p.disabled == Some(true) {
                return FilterHeadersStatus::Continue;
            }
            if let Some(max) = p.buffer.and_then(|b| b.max_request_bytes) {
                limit = max as usize;
            }
        }
        cb.set_buffer_limit(limit);
        self.active = true;
        FilterHeadersStatus::StopIteration
    }

    fn decode_data(
        &mut self,
        data: &mut Buffer,
        end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterDataStatus {
        if !self.active {
            return FilterDataStatus::Continue;
        }
        if !end {
            return FilterDataStatus::StopIterationAndBuffer;
        }
        let total = data.len() + cb.decoding_buffer().map_or(0, Buffer::len);
        if let Some(h) = cb.request_headers_mut()
            && !h.contains("content-length")
            && !h.contains("transfer-encoding")
        {
            h.insert(
                HeaderName::from_static("content-length"),
                HeaderValue::from_u64(total as u64),
            );
        }
        FilterDataStatus::Continue
    }

    fn decode_trailers(
        &mut self,
        _trailers: &mut HeaderMap,
        _cb: &mut FilterCallbacks<'_>,
    ) -> crate::http::FilterTrailersStatus {
        crate::http::FilterTrailersStatus::Continue
    }
}
