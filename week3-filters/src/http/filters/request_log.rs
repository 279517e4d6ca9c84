//! # `mini_envoy.filters.http.request_log`: the course's request logging filter
//!
//! When a stream completes, one line:
//!
//! ```text
//! request GET /api/users 200 - rx=0 tx=512 12ms user-agent="curl/8.5"
//! ```
//!
//! (prefix, method, path, status, Envoy response flags, body bytes received
//! and sent, duration, then the configured request and response headers),
//! written to the factory context's [`LogSink`](crate::context::LogSink).

use std::fmt::Write as _;
use std::sync::Arc;

use week1_core::config::filters::RequestLog;

use crate::context::LogSink;
use crate::http::{CompletedStream, StreamDecoderFilter, StreamFilterBase};
use crate::http::{FilterCallbacks, FilterHeadersStatus};

/// The compiled config.
#[derive(Debug)]
pub struct RequestLogConfig {
    prefix: String,
    request_headers: Vec<String>,
    response_headers: Vec<String>,
    sink: Arc<dyn LogSink>,
}

impl RequestLogConfig {
    /// From the typed config.
    pub fn new(c: &RequestLog, sink: Arc<dyn LogSink>) -> Self {
        Self {
            prefix: if c.prefix.is_empty() { "request".into() } else { c.prefix.clone() },
            request_headers: c.request_headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            response_headers: c.response_headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            sink,
        }
    }

    /// The log line of a completed stream.
    pub fn format(&self, s: &CompletedStream<'_>) -> String {
        let req = s.request_headers;
        let mut line = format!(
            "{} {} {} {} {} rx={} tx={} {}ms",
            self.prefix,
            req.and_then(|h| h.method()).unwrap_or("-"),
            req.and_then(|h| h.path()).unwrap_or("-"),
            s.info.response_code.map_or("-".to_string(), |c| c.to_string()),
            s.info.response_flags,
            s.info.bytes_received,
            s.info.bytes_sent,
            s.info.completed.unwrap_or_default().as_millis(),
        );
        for (names, map) in
            [(&self.request_headers, req), (&self.response_headers, s.response_headers)]
        {
            for n in names {
                let v = map.and_then(|m| m.get_joined(n));
                let _ = write!(line, " {n}={:?}", v.as_deref().unwrap_or("-"));
            }
        }
        line
    }
}

/// The filter of one stream (it only observes).
#[derive(Debug)]
pub struct RequestLogFilter {
    config: Arc<RequestLogConfig>,
}

impl RequestLogFilter {
    /// A filter for one stream.
    pub fn new(config: Arc<RequestLogConfig>) -> Self {
        Self { config }
    }
}

impl StreamFilterBase for RequestLogFilter {
    fn on_stream_complete(&mut self, s: &CompletedStream<'_>) {
        self.config.sink.log(&self.config.format(s));
    }
}

impl StreamDecoderFilter for RequestLogFilter {
    fn decode_headers(
        &mut self,
        _h: &mut week1_core::headers::HeaderMap,
        _end: bool,
        _cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        FilterHeadersStatus::Continue
    }
}
