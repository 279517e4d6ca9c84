//! The encoders: [`RequestEncoder`] (client side, upstream) and
//! [`ResponseEncoder`] (server side, downstream), Envoy's
//! `RequestEncoderImpl` / `ResponseEncoderImpl`. One encoder per message:
//! `encode_headers`, then any `encode_data`, then optionally
//! `encode_trailers`, with `end_stream` marking the last part, as Envoy's
//! `StreamEncoder`. The encoder picks the framing itself (it writes
//! `transfer-encoding: chunked` when needed and drops any given one), so a
//! filter that changed the body cannot leave a stale framing header behind.

use bytes::{Bytes, BytesMut};
use week1_core::headers::HeaderMap;

use super::head::{RequestInfo, connection_tokens, format_status};
use super::{EncodeError, Version};
use crate::buffer::Buffer;

/// How the body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length {
        remaining: u64,
    },
    Chunked,
    /// Tunnel or close-delimited: bytes as they are.
    Raw,
    /// A response that cannot have a body (HEAD, 1xx, 204, 304): data is dropped.
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Headers,
    Body(Framing),
    Done,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_content_length(headers: &HeaderMap) -> Result<Option<u64>, EncodeError> {
    match headers.get("content-length") {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().ok_or(EncodeError::InvalidContentLength)?;
            text.trim().parse().map(Some).map_err(|_| EncodeError::InvalidContentLength)
        }
    }
}

/// Writes `name: value\r\n` for each regular field that `keep` allows.
fn write_fields(out: &mut BytesMut, headers: &HeaderMap, keep: impl Fn(&[u8]) -> bool) {
    for (name, value) in headers.regular() {
        if keep(name.as_bytes()) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Rough size of an encoded head, to reserve once.
fn head_size(headers: &HeaderMap) -> usize {
    headers.byte_size() + 4 * headers.len() + 64
}

/// Hex digits of a chunk size, without allocating.
fn chunk_size_line(n: usize) -> ([u8; 20], usize) {
    let mut line = [0u8; 20];
    let digits = (usize::BITS - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in line.iter_mut().take(digits).enumerate() {
        let nibble = (n >> (4 * (digits - 1 - i))) & 0xf;
        *slot = b"0123456789abcdef"[nibble];
    }
    line[digits] = b'\r';
    line[digits + 1] = b'\n';
    (line, digits + 2)
}

/// The body and trailer half shared by both encoders.
#[derive(Debug)]
struct BodyEncoder {
    state: State,
}

impl BodyEncoder {
    fn data(&mut self, data: Bytes, end_stream: bool, out: &mut Buffer) -> Result<(), EncodeError> {
        let State::Body(framing) = &mut self.state else {
            return Err(EncodeError::OutOfOrder(if self.state == State::Headers {
                "data before headers"
            } else {
                "data after the end of the message"
            }));
        };
        match framing {
            Framing::Length { remaining } => {
                let len = data.len() as u64;
                if len > *remaining || (end_stream && len != *remaining) {
                    return Err(EncodeError::BodyLengthMismatch);
                }
                *remaining -= len;
                out.append_bytes(data);
            }
            Framing::Chunked => {
                if !data.is_empty() {
                    let (line, n) = chunk_size_line(data.len());
                    out.append(&line[..n]);
                    out.append_bytes(data);
                    out.append(b"\r\n");
                }
                if end_stream {
                    out.append(b"0\r\n\r\n");
                }
            }
            Framing::Raw => out.append_bytes(data),
            Framing::Discard => {}
        }
        if end_stream {
            self.state = State::Done;
        }
        Ok(())
    }

    fn trailers(&mut self, trailers: &HeaderMap, out: &mut Buffer) -> Result<(), EncodeError> {
        match self.state {
            State::Body(Framing::Chunked) => {
                out.with_tail(|t| {
                    t.reserve(head_size(trailers));
                    t.extend_from_slice(b"0\r\n");
                    write_fields(t, trailers, |_| true);
                    t.extend_from_slice(b"\r\n");
                });
            }
            State::Body(Framing::Length { remaining }) if remaining != 0 => {
                return Err(EncodeError::BodyLengthMismatch);
            }
            // Only chunked bodies carry trailers: elsewhere they are dropped,
            // as Envoy does (`enable_trailers` off).
            State::Body(_) => {}
            State::Headers => return Err(EncodeError::OutOfOrder("trailers before headers")),
            State::Done => {
                return Err(EncodeError::OutOfOrder("trailers after the end of the message"));
            }
        }
        self.state = State::Done;
        Ok(())
    }
}

/// Encodes one request for an upstream connection.
///
/// ```
/// use week1_core::headers::HeaderMap;
/// use week3_filters::buffer::Buffer;
/// use week3_filters::http1::RequestEncoder;
///
/// let mut headers = HeaderMap::new();
/// headers.try_append(":method", "POST").unwrap();
/// headers.try_append(":path", "/upload").unwrap();
/// headers.try_append(":authority", "example.com").unwrap();
/// let mut out = Buffer::new();
/// let mut encoder = RequestEncoder::new();
/// encoder.encode_headers(&headers, false, &mut out).unwrap();
/// encoder.encode_data("hello".into(), true, &mut out).unwrap();
/// assert_eq!(
///     out.to_vec(),
///     b"POST /upload HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: chunked\r\n\r\n\
///       5\r\nhello\r\n0\r\n\r\n"
/// );
/// ```
#[derive(Debug)]
pub struct RequestEncoder {
    body: BodyEncoder,
    version: Version,
    fully_qualified_url: bool,
}

impl Default for RequestEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestEncoder {
    /// An HTTP/1.1 request encoder, writing origin-form targets.
    pub fn new() -> Self {
        Self {
            body: BodyEncoder { state: State::Headers },
            version: Version::Http11,
            fully_qualified_url: false,
        }
    }

    /// Writes this version on the request line (HTTP/1.1 by default).
    pub fn with_version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// Envoy's `send_fully_qualified_url`: when the headers have `:scheme`,
    /// write an absolute-form target (`http://host/path`), as for a forward proxy.
    pub fn send_fully_qualified_url(mut self, enabled: bool) -> Self {
        self.fully_qualified_url = enabled;
        self
    }

    /// Writes the request line and header fields. `end_stream`: there is no
    /// body. Returns what the response decoder must know about this request.
    pub fn encode_headers(
        &mut self,
        headers: &HeaderMap,
        end_stream: bool,
        out: &mut Buffer,
    ) -> Result<RequestInfo, EncodeError> {
        if self.body.state != State::Headers {
            return Err(EncodeError::OutOfOrder("headers twice"));
        }
        let method = headers.method().ok_or(EncodeError::MissingPseudoHeader(":method"))?;
        if method.is_empty() || !method.bytes().all(is_tchar) {
            return Err(EncodeError::InvalidPseudoHeader(":method"));
        }
        let connect = method == "CONNECT";
        let authority = headers.authority();
        let target_ok = |t: &str| !t.is_empty() && t.bytes().all(|b| (0x21..0x7f).contains(&b));
        let target: (&str, &str, &str, &str) = if connect {
            let a = authority.ok_or(EncodeError::MissingPseudoHeader(":authority"))?;
            ("", "", a, "")
        } else {
            let path = headers.path().ok_or(EncodeError::MissingPseudoHeader(":path"))?;
            match (self.fully_qualified_url, headers.scheme(), authority) {
                (true, Some(scheme), Some(a)) => {
                    // `*` (OPTIONS) becomes the bare authority: `OPTIONS http://host`.
                    let path = if path == "*" { "" } else { path };
                    if !path.is_empty() && !path.starts_with('/') {
                        return Err(EncodeError::InvalidPseudoHeader(":path"));
                    }
                    if !scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        return Err(EncodeError::InvalidPseudoHeader(":scheme"));
                    }
                    (scheme, "://", a, path)
                }
                _ => ("", "", "", path),
            }
        };
        let parts = [target.0, target.2, target.3];
        if !parts.iter().any(|p| !p.is_empty())
            || !parts.iter().all(|p| p.is_empty() || target_ok(p))
        {
            return Err(EncodeError::InvalidPseudoHeader(if connect {
                ":authority"
            } else {
                ":path"
            }));
        }

        // ANCHOR: request_encoder_framing
        let content_length = parse_content_length(headers)?;
        let conn = connection_tokens(headers);
        let upgrade = !connect
            && self.version == Version::Http11
            && conn.upgrade
            && headers.contains("upgrade");
        // CONNECT, or an upgrade without a body: what follows is tunnel data.
        let (framing, add_chunked) =
            if connect || (upgrade && content_length.unwrap_or(0) == 0 && !end_stream) {
                (Framing::Raw, false)
            } else if let Some(n) = content_length {
                if end_stream && n != 0 {
                    return Err(EncodeError::BodyLengthMismatch);
                }
                (Framing::Length { remaining: n }, false)
            } else if end_stream {
                (Framing::Length { remaining: 0 }, false)
            } else if self.version == Version::Http10 {
                return Err(EncodeError::LengthRequired);
            } else {
                (Framing::Chunked, true)
            };
        // ANCHOR_END: request_encoder_framing

        out.with_tail(|t| {
            t.reserve(head_size(headers));
            t.extend_from_slice(method.as_bytes());
            t.extend_from_slice(b" ");
            for part in [target.0, target.1, target.2, target.3] {
                t.extend_from_slice(part.as_bytes());
            }
            t.extend_from_slice(b" ");
            t.extend_from_slice(self.version.as_str().as_bytes());
            t.extend_from_slice(b"\r\n");
            if let Some(a) = authority {
                t.extend_from_slice(b"host: ");
                t.extend_from_slice(a.as_bytes());
                t.extend_from_slice(b"\r\n");
            }
            write_fields(t, headers, |name| match name {
                b"transfer-encoding" => false,
                b"content-length" => !connect,
                b"host" => authority.is_none(),
                _ => true,
            });
            if add_chunked {
                t.extend_from_slice(b"transfer-encoding: chunked\r\n");
            }
            t.extend_from_slice(b"\r\n");
        });
        self.body.state = if end_stream { State::Done } else { State::Body(framing) };
        Ok(RequestInfo {
            is_head: method == "HEAD",
            is_connect: connect,
            is_upgrade: upgrade && content_length.unwrap_or(0) == 0,
            version: self.version,
        })
    }

    /// Writes body bytes; `end_stream` ends the request.
    pub fn encode_data(
        &mut self,
        data: Bytes,
        end_stream: bool,
        out: &mut Buffer,
    ) -> Result<(), EncodeError> {
        self.body.data(data, end_stream, out)
    }

    /// Writes trailers (chunked bodies only; dropped otherwise) and ends the request.
    pub fn encode_trailers(
        &mut self,
        trailers: &HeaderMap,
        out: &mut Buffer,
    ) -> Result<(), EncodeError> {
        self.body.trailers(trailers, out)
    }

    /// Whether the whole request was written.
    pub fn is_complete(&self) -> bool {
        self.body.state == State::Done
    }
}

/// The reason phrase for common status codes (empty otherwise, which is valid).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Encodes one response for a downstream connection.
#[derive(Debug)]
pub struct ResponseEncoder {
    body: BodyEncoder,
    request: RequestInfo,
    version: Version,
    close_delimited: bool,
}

impl ResponseEncoder {
    /// An encoder for the response to `request` (from
    /// [`RequestHead::info`](super::RequestHead::info)), writing `HTTP/1.1`
    /// as Envoy does whatever the request's version.
    pub fn new(request: RequestInfo) -> Self {
        Self {
            body: BodyEncoder { state: State::Headers },
            request,
            version: Version::Http11,
            close_delimited: false,
        }
    }

    /// Writes this version on the status line.
    pub fn with_version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// Writes the status line and header fields. `end_stream`: there is no
    /// body. An interim (1xx other than 101) response is complete by itself:
    /// the encoder then waits for the final response's headers.
    pub fn encode_headers(
        &mut self,
        headers: &HeaderMap,
        end_stream: bool,
        out: &mut Buffer,
    ) -> Result<(), EncodeError> {
        if self.body.state != State::Headers {
            return Err(EncodeError::OutOfOrder("headers twice"));
        }
        let status_text =
            headers.get_str(":status").ok_or(EncodeError::MissingPseudoHeader(":status"))?;
        let status: u16 = match status_text.parse() {
            Ok(s @ 100..=999) if status_text.len() == 3 => s,
            _ => return Err(EncodeError::InvalidPseudoHeader(":status")),
        };
        let req = self.request;
        // ANCHOR: response_encoder_framing
        let informational = (100..200).contains(&status) && status != 101;
        let content_length = parse_content_length(headers)?;
        // (framing, keep content-length, add transfer-encoding: chunked, add content-length: 0)
        let (framing, keep_cl, add_chunked, add_zero) =
            if status == 101 || (req.is_connect && (200..300).contains(&status)) {
                (Framing::Raw, false, false, false)
            } else if informational || status == 204 {
                (Framing::Discard, false, false, false)
            } else if status == 304 || req.is_head {
                (Framing::Discard, true, false, false)
            } else if let Some(n) = content_length {
                if end_stream && n != 0 {
                    return Err(EncodeError::BodyLengthMismatch);
                }
                (Framing::Length { remaining: n }, true, false, false)
            } else if end_stream {
                (Framing::Length { remaining: 0 }, false, false, true)
            } else if req.version == Version::Http10 || self.version == Version::Http10 {
                // An HTTP/1.0 client cannot read chunked: end the body by closing.
                (Framing::Raw, false, false, false)
            } else {
                (Framing::Chunked, false, true, false)
            };
        // ANCHOR_END: response_encoder_framing
        self.close_delimited = framing == Framing::Raw && status != 101 && !req.is_connect;
        let digits = format_status(status);
        out.with_tail(|t| {
            t.reserve(head_size(headers));
            t.extend_from_slice(self.version.as_str().as_bytes());
            t.extend_from_slice(b" ");
            t.extend_from_slice(&digits);
            t.extend_from_slice(b" ");
            t.extend_from_slice(reason_phrase(status).as_bytes());
            t.extend_from_slice(b"\r\n");
            write_fields(t, headers, |name| match name {
                b"transfer-encoding" => false,
                b"content-length" => keep_cl,
                _ => true,
            });
            if add_chunked {
                t.extend_from_slice(b"transfer-encoding: chunked\r\n");
            }
            if add_zero {
                t.extend_from_slice(b"content-length: 0\r\n");
            }
            t.extend_from_slice(b"\r\n");
        });
        self.body.state = if informational {
            State::Headers
        } else if end_stream {
            State::Done
        } else {
            State::Body(framing)
        };
        Ok(())
    }

    /// Writes body bytes (dropped for HEAD, 204 and 304); `end_stream` ends the response.
    pub fn encode_data(
        &mut self,
        data: Bytes,
        end_stream: bool,
        out: &mut Buffer,
    ) -> Result<(), EncodeError> {
        self.body.data(data, end_stream, out)
    }

    /// Writes trailers (chunked bodies only; dropped otherwise) and ends the response.
    pub fn encode_trailers(
        &mut self,
        trailers: &HeaderMap,
        out: &mut Buffer,
    ) -> Result<(), EncodeError> {
        self.body.trailers(trailers, out)
    }

    /// Whether the whole response was written.
    pub fn is_complete(&self) -> bool {
        self.body.state == State::Done
    }

    /// Whether the body is delimited by closing the connection (a response
    /// with a body of unknown length to an HTTP/1.0 client): the caller must
    /// close once the response is written.
    pub fn close_delimited(&self) -> bool {
        self.close_delimited
    }
}
