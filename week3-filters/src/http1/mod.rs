//! # The HTTP/1.1 codec: bytes in, header maps and body chunks out (and back)
//!
//! Mirrors Envoy's `Http1::ServerConnectionImpl` (decode requests from
//! downstream, encode responses) and `Http1::ClientConnectionImpl` (encode
//! requests to upstream, decode responses), in `source/common/http/http1/`.
//! It is *sans-IO*: it never touches a socket or a clock, so the same code runs
//! under tokio in mini-envoy, in unit tests, in property tests and under the
//! fuzzer.
//!
//! ```text
//!  socket ──read──► Buffer ──► RequestDecoder::decode ──► Event::Headers(RequestHead)
//!                                  │ head: httparse finds the  Event::Data(Bytes)  (zero-copy)
//!                                  │ end and parses in one     Event::Trailers(HeaderMap)
//!                                  │ pass (partial heads: a    Event::MessageComplete
//!                                  │ scanner that resumes where
//!                                  │ it stopped), smuggling checks
//!                                  └ body: Content-Length / chunked / close / tunnel
//!
//!  HeaderMap + body ──► ResponseEncoder / RequestEncoder ──► Buffer ──writev──► socket
//! ```
//!
//! The caller appends what it reads to a [`Buffer`](crate::buffer::Buffer) and
//! calls `decode` until it answers `Ok(None)` (more input needed); the decoder
//! consumes exactly the bytes it has turned into events, so pipelined messages
//! stay in the buffer until the caller asks for them. At end of input the
//! caller calls `on_eof` and drains `decode` once more: that ends a
//! close-delimited body or a tunnel, or reports a truncated message.
//!
//! Framing follows RFC 9112 §6, strictly: everything that could let two
//! parsers disagree about where a message ends is a distinct [`CodecError`].

mod body;
mod decoder;
mod encoder;
mod error;
mod head;
mod scan;
pub mod testing;

#[cfg(test)]
mod tests;

pub use decoder::{Event, RequestDecoder, RequestEvent, ResponseDecoder, ResponseEvent};
pub use encoder::{RequestEncoder, ResponseEncoder, reason_phrase};
pub use error::{CodecError, EncodeError};
pub use head::{RequestHead, RequestInfo, ResponseHead};

/// The protocol version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Version {
    /// `HTTP/1.0`: close after each message unless `Connection: keep-alive`.
    Http10,
    /// `HTTP/1.1`: persistent unless `Connection: close`.
    #[default]
    Http11,
}

impl Version {
    /// The version as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }
}

/// How the end of a message body is found (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyFraming {
    /// No body: a request without framing headers, or a HEAD, 1xx, 204 or 304 response.
    None,
    /// Exactly this many bytes.
    ContentLength(u64),
    /// `Transfer-Encoding: chunked`, possibly with trailers.
    Chunked,
    /// A response body that ends when the server closes the connection.
    CloseDelimited,
    /// CONNECT, an upgrade request, a 101 or a 2xx answering CONNECT: every
    /// byte after the head is opaque tunnel data until end of input.
    Tunnel,
}

/// Codec limits, with Envoy's defaults (`HttpConnectionManager` /
/// `Http1ProtocolOptions`). One set serves a request decoder or a response
/// decoder (Envoy's `max_request_headers_kb` and `max_response_headers_kb`
/// share the same default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (start line + header fields + CRLFs), and largest trailer
    /// section, in KiB. Envoy: `max_request_headers_kb`, default 60. Over it:
    /// [`CodecError::HeadersTooLarge`] (431).
    pub max_headers_kb: u32,
    /// Most header fields in a head or trailer section. Envoy:
    /// `max_request_headers_count`, default 100. Over it:
    /// [`CodecError::TooManyHeaders`] (431).
    pub max_headers_count: u32,
    /// Longest request-target. Envoy has no separate limit (the head limit
    /// applies); mini-envoy defaults to 8 KiB, the common limit of origin
    /// servers. Over it: [`CodecError::UrlTooLong`] (414).
    pub max_url_length: usize,
    /// Longest chunk-size line, extensions included. Default 4 KiB. Over it:
    /// [`CodecError::ChunkLineTooLong`] (400).
    pub max_chunk_line_length: usize,
    /// Whether HTTP/1.0 requests are served. Envoy's `accept_http_10` defaults
    /// to false; mini-envoy defaults to true (the course teaches 1.0 keep-alive).
    pub accept_http_10: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_headers_kb: 60,
            max_headers_count: 100,
            max_url_length: 8 * 1024,
            max_chunk_line_length: 4 * 1024,
            accept_http_10: true,
        }
    }
}

impl Limits {
    /// `max_headers_kb` in bytes.
    pub fn max_head_bytes(&self) -> usize {
        self.max_headers_kb as usize * 1024
    }
}
