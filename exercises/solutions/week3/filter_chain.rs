//! Reference solution of `filter_chain`. The real FilterManager
//! (`week3_filters::http::filter_manager`) also handles trailers, the encoder
//! direction, buffer limits, watermarks and local replies.

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

/// Headers waiting at a filter, with the data queued behind them.
struct Stopped {
    at: usize,
    headers: HeaderMap,
    end_stream: bool,
    data: Buffer,
    data_end_stream: bool,
}

/// One request's walk through the filters.
pub struct FilterChain {
    filters: Vec<Box<dyn DecoderFilter>>,
    stopped: Option<Stopped>,
    upstream_headers: Option<HeaderMap>,
    upstream_body: Buffer,
    upstream_end_stream: bool,
}

impl FilterChain {
    /// A chain of `filters`, in order.
    pub fn new(filters: Vec<Box<dyn DecoderFilter>>) -> Self {
        Self {
            filters,
            stopped: None,
            upstream_headers: None,
            upstream_body: Buffer::new(),
            upstream_end_stream: false,
        }
    }

    /// Runs headers through filters `from..`; the filter they stop at, if any.
    fn run_headers(
        &mut self,
        from: usize,
        headers: &mut HeaderMap,
        end_stream: bool,
    ) -> Option<usize> {
        (from..self.filters.len()).find(|&i| {
            self.filters[i].decode_headers(headers, end_stream) != FilterHeadersStatus::Continue
        })
    }

    /// Runs data through filters `from..to`; false if a filter consumed it.
    fn run_data(&mut self, from: usize, to: usize, data: &mut Buffer, end_stream: bool) -> bool {
        (from..to)
            .all(|i| self.filters[i].decode_data(data, end_stream) == FilterDataStatus::Continue)
    }

    fn send_upstream_data(&mut self, mut data: Buffer, end_stream: bool) {
        self.upstream_body.move_from(&mut data);
        self.upstream_end_stream |= end_stream;
    }

    /// The request headers arrive.
    pub fn decode_headers(&mut self, mut headers: HeaderMap, end_stream: bool) {
        match self.run_headers(0, &mut headers, end_stream) {
            Some(at) => {
                self.stopped = Some(Stopped {
                    at,
                    headers,
                    end_stream,
                    data: Buffer::new(),
                    data_end_stream: false,
                });
            }
            None => {
                self.upstream_headers = Some(headers);
                self.upstream_end_stream = end_stream;
            }
        }
    }

    /// A piece of the request body arrives.
    pub fn decode_data(&mut self, mut data: Buffer, end_stream: bool) {
        let to = self.stopped.as_ref().map_or(self.filters.len(), |s| s.at);
        if !self.run_data(0, to, &mut data, end_stream) {
            return;
        }
        match self.stopped.as_mut() {
            Some(s) => {
                s.data.move_from(&mut data);
                s.data_end_stream |= end_stream;
            }
            None => self.send_upstream_data(data, end_stream),
        }
    }

    /// The filter where the headers stopped resumes the chain.
    pub fn continue_decoding(&mut self) {
        let Some(mut s) = self.stopped.take() else { return };
        let next_stop = self.run_headers(s.at + 1, &mut s.headers, s.end_stream);
        let to = next_stop.unwrap_or(self.filters.len());
        let has_data = !s.data.is_empty() || s.data_end_stream;
        let passed = has_data && self.run_data(s.at, to, &mut s.data, s.data_end_stream);
        match next_stop {
            Some(at) => {
                let (data, data_end_stream) =
                    if passed { (s.data, s.data_end_stream) } else { (Buffer::new(), false) };
                self.stopped = Some(Stopped {
                    at,
                    headers: s.headers,
                    end_stream: s.end_stream,
                    data,
                    data_end_stream,
                });
            }
            None => {
                self.upstream_headers = Some(s.headers);
                self.upstream_end_stream = s.end_stream;
                if passed {
                    self.send_upstream_data(s.data, s.data_end_stream);
                }
            }
        }
    }

    /// The headers the upstream received, if they got there.
    pub fn upstream_headers(&self) -> Option<&HeaderMap> {
        self.upstream_headers.as_ref()
    }

    /// The body the upstream received so far.
    pub fn upstream_body(&self) -> &Buffer {
        &self.upstream_body
    }

    /// Whether the end of the stream reached the upstream.
    pub fn upstream_end_stream(&self) -> bool {
        self.upstream_end_stream
    }
}
