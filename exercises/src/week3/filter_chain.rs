//! # Exercise `filter_chain`: stop and continue (week 3, day 2)
//!
//! Envoy's FilterManager passes a request through the HTTP filters in order.
//! A filter that needs to wait (an auth call, a rate-limit check) answers
//! `StopIteration`; the request's headers, and the body behind them, wait at
//! that filter until it calls `continue_decoding`. Build that iteration.
//!
//! ## Task
//!
//! Implement [`FilterChain`] over the [`DecoderFilter`]s, with week 3's real
//! status enums; the end of the chain is the upstream (recorded in the chain):
//!
//! - [`FilterChain::decode_headers`]: call each filter's `decode_headers` in
//!   order. `Continue` goes on; any other status stops the headers at that
//!   filter (keep them). Past the last filter the headers reach the upstream
//!   (and so does the end of the stream if `end_stream`).
//! - [`FilterChain::decode_data`]: data can never overtake headers. While the
//!   headers wait at filter `i`, the data goes through filters `0..i` (they have
//!   passed the headers) and then waits at `i` too, appended to what already
//!   waits there. Otherwise it goes through every filter to the upstream body.
//!   A filter answering anything but `Continue` to data has consumed that data:
//!   it (and its `end_stream`) goes no further.
//! - [`FilterChain::continue_decoding`] (the stopped filter is done waiting):
//!   the headers go on from the filter *after* the stopped one; then the
//!   waiting data goes on from the stopped filter itself (it has not seen it).
//!   If the headers stop again at a later filter, the data waits there.
//!   Without a stop, it does nothing.
//!
//! Run `cargo run -p exercises -- verify filter_chain`.

use week1_core::headers::HeaderMap;
use week3_filters::buffer::Buffer;
use week3_filters::http::{FilterDataStatus, FilterHeadersStatus};

/// A request-path HTTP filter (the decoder half of Envoy's `StreamFilter`).
pub trait DecoderFilter {
    /// Sees (and may change) the request headers.
    fn decode_headers(&mut self, headers: &mut HeaderMap, end_stream: bool) -> FilterHeadersStatus;
    /// Sees (and may change) a piece of the request body.
    fn decode_data(&mut self, data: &mut Buffer, end_stream: bool) -> FilterDataStatus;
}

/// One request's walk through the filters.
pub struct FilterChain {
    filters: Vec<Box<dyn DecoderFilter>>,
    // Suggested state: the waiting headers and where they stopped, the waiting
    // data and its end_stream, and what reached the upstream.
    upstream_headers: Option<HeaderMap>,
    upstream_body: Buffer,
    upstream_end_stream: bool,
}

impl FilterChain {
    /// A chain of `filters`, in order.
    pub fn new(filters: Vec<Box<dyn DecoderFilter>>) -> Self {
        todo!()
    }

    /// The request headers arrive.
    pub fn decode_headers(&mut self, headers: HeaderMap, end_stream: bool) {
        todo!()
    }

    /// A piece of the request body arrives.
    pub fn decode_data(&mut self, data: Buffer, end_stream: bool) {
        todo!()
    }

    /// The filter where the headers stopped resumes the chain.
    pub fn continue_decoding(&mut self) {
        todo!()
    }

    /// The headers the upstream received, if they got there.
    pub fn upstream_headers(&self) -> Option<&HeaderMap> {
        todo!()
    }

    /// The body the upstream received so far.
    pub fn upstream_body(&self) -> &Buffer {
        todo!()
    }

    /// Whether the end of the stream reached the upstream.
    pub fn upstream_end_stream(&self) -> bool {
        todo!()
    }
}
