//! Codec errors, each with Envoy-style details for access logs and the HTTP
//! status a server answers with.
//!
//! On the request side (`RequestDecoder`, downstream) the connection manager
//! sends [`CodecError::status_code`] and closes the connection. On the response
//! side (`ResponseDecoder`, upstream) every error is an upstream protocol error
//! (Envoy's `UPE` response flag): the downstream client gets a 502 and the
//! upstream connection is closed.

/// Why the decoder refused its input. The decoder is unusable afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The method is not an RFC 9110 token.
    #[error("invalid method")]
    InvalidMethod,
    /// The request-target is malformed, or its form does not suit the method.
    #[error("invalid request-target")]
    InvalidUrl,
    /// The request-target is longer than `Limits::max_url_length`.
    #[error("request-target too long")]
    UrlTooLong,
    /// The version is not `HTTP/1.0` or `HTTP/1.1`.
    #[error("invalid HTTP version")]
    InvalidVersion,
    /// An HTTP/1.0 request while `Limits::accept_http_10` is off.
    #[error("HTTP/1.0 not allowed")]
    Http10NotAllowed,
    /// A malformed status line, or a 101 that answers no upgrade request.
    #[error("invalid status line")]
    InvalidStatus,
    /// A header name with a character that is not a token character.
    #[error("invalid header name")]
    InvalidHeaderName,
    /// Whitespace between a header name and its colon (RFC 9112 §5.1).
    #[error("whitespace between header name and colon")]
    WhitespaceBeforeColon,
    /// A line folded with obs-fold (RFC 9112 §5.2).
    #[error("obsolete line folding")]
    ObsFold,
    /// A bare CR, a bare LF, a NUL or another control character in the head.
    #[error("invalid characters in message head")]
    InvalidCharacters,
    /// The head (or the trailers) is larger than `Limits::max_headers_kb`.
    #[error("headers too large")]
    HeadersTooLarge,
    /// More header fields than `Limits::max_headers_count`.
    #[error("too many headers")]
    TooManyHeaders,
    /// An HTTP/1.1 request without `Host` (RFC 9112 §3.2).
    #[error("missing Host header")]
    MissingHost,
    /// More than one `Host` field (RFC 9112 §3.2).
    #[error("multiple Host headers")]
    MultipleHost,
    /// An empty `Host`, or one (or a CONNECT target) with characters an
    /// authority cannot have.
    #[error("invalid Host")]
    InvalidHost,
    /// Both `Content-Length` and `Transfer-Encoding` (a classic smuggling vector).
    #[error("Content-Length together with Transfer-Encoding")]
    ContentLengthAndChunked,
    /// A `Content-Length` that is not a decimal number fitting in 63 bits.
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// Several `Content-Length` values, identical or not (strict, as Envoy).
    #[error("multiple Content-Length values")]
    MultipleContentLength,
    /// A final transfer coding other than `chunked`, `chunked` twice, an empty
    /// coding, or any `Transfer-Encoding` in an HTTP/1.0 message.
    #[error("invalid Transfer-Encoding")]
    InvalidTransferEncoding,
    /// A transfer coding other than `chunked` before the final `chunked`.
    #[error("unsupported transfer coding")]
    UnsupportedTransferEncoding,
    /// A CONNECT request with a body.
    #[error("body not allowed")]
    BodyDisallowed,
    /// A chunk-size line that is not `hex [BWS ; extensions] CRLF`.
    #[error("invalid chunk size")]
    InvalidChunkSize,
    /// A chunk size that does not fit in 64 bits.
    #[error("chunk size overflow")]
    ChunkSizeOverflow,
    /// A chunk-size line longer than `Limits::max_chunk_line_length`.
    #[error("chunk-size line too long")]
    ChunkLineTooLong,
    /// Chunk data not followed by CRLF.
    #[error("invalid chunk terminator")]
    InvalidChunkTerminator,
    /// The peer closed the connection in the middle of a message.
    #[error("connection closed before the message was complete")]
    PrematureEof,
    /// Response bytes arrived while no request was waiting for an answer.
    #[error("response without a request")]
    UnexpectedResponse,
    /// Any other malformed input.
    #[error("malformed HTTP/1 message")]
    Malformed,
}

impl CodecError {
    /// Envoy-style details string, for access logs (`%RESPONSE_CODE_DETAILS%`).
    pub fn details(&self) -> &'static str {
        match self {
            Self::InvalidMethod => "http1.invalid_method",
            Self::InvalidUrl => "http1.invalid_url",
            Self::UrlTooLong => "http1.url_too_long",
            Self::InvalidVersion => "http1.invalid_version",
            Self::Http10NotAllowed => "http1.http_10_not_allowed",
            Self::InvalidStatus => "http1.invalid_status",
            Self::InvalidHeaderName => "http1.invalid_header_name",
            Self::WhitespaceBeforeColon => "http1.whitespace_before_colon",
            Self::ObsFold => "http1.obs_fold",
            Self::InvalidCharacters => "http1.invalid_characters",
            Self::HeadersTooLarge => "http1.headers_too_large",
            Self::TooManyHeaders => "http1.too_many_headers",
            Self::MissingHost => "http1.missing_host",
            Self::MultipleHost => "http1.multiple_host",
            Self::InvalidHost => "http1.invalid_host",
            Self::ContentLengthAndChunked => "http1.content_length_and_chunked_not_allowed",
            Self::InvalidContentLength => "http1.invalid_content_length",
            Self::MultipleContentLength => "http1.multiple_content_length",
            Self::InvalidTransferEncoding => "http1.invalid_transfer_encoding",
            Self::UnsupportedTransferEncoding => "http1.unsupported_transfer_encoding",
            Self::BodyDisallowed => "http1.body_disallowed",
            Self::InvalidChunkSize => "http1.invalid_chunk_size",
            Self::ChunkSizeOverflow => "http1.chunk_size_overflow",
            Self::ChunkLineTooLong => "http1.chunk_line_too_long",
            Self::InvalidChunkTerminator => "http1.invalid_chunk_terminator",
            Self::PrematureEof => "http1.premature_eof",
            Self::UnexpectedResponse => "http1.unexpected_response",
            Self::Malformed => "http1.codec_error",
        }
    }

    // ANCHOR: error_status
    /// The status a server answers a bad *request* with. (Response-side errors
    /// are upstream protocol errors: 502 to the downstream client.)
    pub fn status_code(&self) -> u16 {
        match self {
            Self::HeadersTooLarge | Self::TooManyHeaders => 431,
            Self::UrlTooLong => 414,
            Self::UnsupportedTransferEncoding => 501,
            Self::Http10NotAllowed => 426,
            Self::UnexpectedResponse | Self::InvalidStatus => 502,
            _ => 400,
        }
    }
    // ANCHOR_END: error_status
}

/// Why an encoder refused a message part. Nothing was written when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A required pseudo-header (`:method`, `:path`, `:authority` for CONNECT,
    /// `:status`) is missing.
    #[error("missing pseudo-header {0}")]
    MissingPseudoHeader(&'static str),
    /// A pseudo-header whose value cannot go on a request or status line.
    #[error("invalid pseudo-header {0}")]
    InvalidPseudoHeader(&'static str),
    /// Headers twice, data before headers or after the end of the message.
    #[error("encoder used out of order: {0}")]
    OutOfOrder(&'static str),
    /// More body than `Content-Length` announced, or less at the end.
    #[error("body length does not match Content-Length")]
    BodyLengthMismatch,
    /// A `content-length` header that is not a decimal number.
    #[error("invalid content-length header")]
    InvalidContentLength,
    /// An HTTP/1.0 request with a body but no `Content-Length` (chunked is 1.1 only).
    #[error("HTTP/1.0 request body needs a Content-Length")]
    LengthRequired,
}
