//! The decoders: [`RequestDecoder`] (server side, Envoy's
//! `ServerConnectionImpl`) and [`ResponseDecoder`] (client side, Envoy's
//! `ClientConnectionImpl`). One decoder per connection; it walks
//! head → body → end of message, then the next message (pipelining), until a
//! message that closes the connection or turns it into a tunnel.

use std::collections::VecDeque;

use bytes::Bytes;
use week1_core::headers::HeaderMap;

use super::body::{BodyDecoder, BodyStep};
use super::head::{
    FieldSpan, RequestHead, RequestInfo, ResponseHead, build_request, build_response,
    parse_request, parse_response, request_in, response_in,
};
use super::scan::HeadScanner;
use super::{BodyFraming, CodecError, Limits};
use crate::buffer::Buffer;

/// What a decoder found in its input. Every message is `Headers`, any number
/// of `Data`, at most one `Trailers`, then `MessageComplete`.
///
/// How the body is cut into `Data` events depends on how the input arrived
/// (each event is a zero-copy slice of one input slice); the concatenated
/// body does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<H> {
    /// A message head: a [`RequestHead`] or a [`ResponseHead`].
    Headers(H),
    /// Body bytes (for a tunnel: opaque tunnel bytes).
    Data(Bytes),
    /// Chunked trailers, when there were any.
    Trailers(HeaderMap),
    /// The message is complete (for a tunnel or a close-delimited body: the
    /// input ended).
    MessageComplete,
}

/// Events of a [`RequestDecoder`].
pub type RequestEvent = Event<RequestHead>;
/// Events of a [`ResponseDecoder`].
pub type ResponseEvent = Event<ResponseHead>;

#[derive(Debug)]
enum State {
    /// Waiting for (the rest of) a head.
    Head(HeadScanner),
    Body(BodyDecoder),
    /// The message has no body (left): `MessageComplete` comes next.
    EndOfMessage,
    /// No further message on this connection: the input is left untouched.
    Closed,
    Failed(CodecError),
}

/// The state shared by both decoders: everything but head parsing.
#[derive(Debug)]
struct Core {
    limits: Limits,
    state: State,
    eof: bool,
    /// Whether another message may follow the current one.
    keep_alive: bool,
    /// Where the fields of the head being parsed lie: kept across messages
    /// so that parsing a head allocates nothing for it.
    fields: Vec<FieldSpan>,
}

enum HeadStep<R> {
    /// A head the fast path parsed while finding its end: its bytes and
    /// what httparse found (fields in `Core::fields`).
    Parsed(Bytes, R),
    /// A complete head the scanner found, to be parsed.
    Head(Bytes),
    NeedMore,
}

/// What a fast path found at the start of the input: a complete head of
/// this many bytes.
trait HeadLen {
    fn head_len(&self) -> usize;
}

impl HeadLen for super::head::RawRequest {
    fn head_len(&self) -> usize {
        self.len
    }
}

impl HeadLen for super::head::RawResponse {
    fn head_len(&self) -> usize {
        self.len
    }
}

impl Core {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Head(HeadScanner::for_head()),
            eof: false,
            keep_alive: true,
            fields: Vec::new(),
        }
    }

    /// In the `Head` state: skips empty lines before a message (RFC 9112
    /// §2.2), then looks for the end of the head: first with `fast`, which
    /// parses a head that sits whole in the first slice in the same pass
    /// (the usual case), else with the incremental scanner.
    fn find_head<R: HeadLen>(
        &mut self,
        input: &mut Buffer,
        fast: impl FnOnce(&[u8], &Limits, &mut Vec<FieldSpan>) -> Option<R>,
    ) -> Result<HeadStep<R>, CodecError> {
        let State::Head(scanner) = &mut self.state else {
            return Err(CodecError::Malformed);
        };
        if scanner.scanned() == 0 {
            loop {
                if input.starts_with(b"\r\n") {
                    input.drain(2);
                    continue;
                }
                match input.byte_at(0) {
                    Some(b'\n') => return Err(CodecError::InvalidCharacters),
                    // A lone CR: wait for its LF, so that input cut anywhere
                    // is treated alike.
                    Some(b'\r') if input.len() == 1 => {
                        return if self.eof {
                            Err(CodecError::PrematureEof)
                        } else {
                            Ok(HeadStep::NeedMore)
                        };
                    }
                    _ => break,
                }
            }
            // Fast path: one httparse pass finds the end and parses. An
            // incomplete or faulty head goes to the incremental scanner,
            // which resumes across reads and also gives the precise error:
            // each head costs at most one failed fast attempt.
            if let Some(raw) = fast(input.front_slice(), &self.limits, &mut self.fields) {
                return Ok(HeadStep::Parsed(input.split_to_bytes(raw.head_len()), raw));
            }
        }
        match scanner.scan(input, self.limits.max_head_bytes())? {
            Some(n) => Ok(HeadStep::Head(input.split_to_bytes(n))),
            None if self.eof && !input.is_empty() => Err(CodecError::PrematureEof),
            None => Ok(HeadStep::NeedMore),
        }
    }

    /// After a head: where decoding goes next.
    fn start_body(&mut self, framing: BodyFraming, keep_alive: bool) {
        self.keep_alive = keep_alive;
        self.state = match BodyDecoder::new(framing) {
            Some(body) => State::Body(body),
            None => State::EndOfMessage,
        };
    }

    fn end_message(&mut self) {
        self.state =
            if self.keep_alive { State::Head(HeadScanner::for_head()) } else { State::Closed };
    }

    /// Steps that do not depend on the role; `None` when in the `Head` state.
    fn step_non_head<H>(
        &mut self,
        input: &mut Buffer,
    ) -> Option<Result<Option<Event<H>>, CodecError>> {
        Some(match &mut self.state {
            State::Failed(e) => Err(*e),
            State::Closed => Ok(None),
            State::EndOfMessage => {
                self.end_message();
                Ok(Some(Event::MessageComplete))
            }
            State::Body(body) => match body.decode(input, self.eof, &self.limits) {
                Ok(BodyStep::Data(data)) => Ok(Some(Event::Data(data))),
                Ok(BodyStep::Trailers(trailers)) => Ok(Some(Event::Trailers(trailers))),
                Ok(BodyStep::NeedMore) => Ok(None),
                Ok(BodyStep::Done) => {
                    self.end_message();
                    Ok(Some(Event::MessageComplete))
                }
                Err(e) => Err(e),
            },
            State::Head(_) => return None,
        })
    }

    /// Remembers a failure: the decoder answers it from now on.
    fn fail<T>(&mut self, result: Result<T, CodecError>) -> Result<T, CodecError> {
        if let Err(e) = &result {
            self.state = State::Failed(*e);
        }
        result
    }

    fn is_idle(&self) -> bool {
        matches!(&self.state, State::Head(scanner) if scanner.scanned() == 0)
    }
}

/// Decodes requests from a downstream connection.
///
/// ```
/// use week3_filters::buffer::Buffer;
/// use week3_filters::http1::{Event, RequestDecoder};
///
/// let mut decoder = RequestDecoder::default();
/// let mut input = Buffer::from(&b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n"[..]);
/// let Some(Event::Headers(head)) = decoder.decode(&mut input).unwrap() else { panic!() };
/// assert_eq!(head.headers.path(), Some("/a"));
/// assert_eq!(head.headers.authority(), Some("example.com"));
/// assert_eq!(decoder.decode(&mut input).unwrap(), Some(Event::MessageComplete));
/// assert_eq!(decoder.decode(&mut input).unwrap(), None); // waiting for the next request
/// ```
#[derive(Debug)]
pub struct RequestDecoder {
    core: Core,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl RequestDecoder {
    /// A decoder for a new connection.
    pub fn new(limits: Limits) -> Self {
        Self { core: Core::new(limits) }
    }

    /// Decodes the next event from `input`, consuming the bytes it covers.
    /// `Ok(None)`: more input is needed (or, after a message that closes the
    /// connection, no further request will be decoded). After an error the
    /// decoder keeps answering that error: reply with its
    /// [`status_code`](CodecError::status_code) and close.
    pub fn decode(&mut self, input: &mut Buffer) -> Result<Option<RequestEvent>, CodecError> {
        let result = self.decode_inner(input);
        self.core.fail(result)
    }

    fn decode_inner(&mut self, input: &mut Buffer) -> Result<Option<RequestEvent>, CodecError> {
        if let Some(step) = self.core.step_non_head(input) {
            return step;
        }
        let core = &mut self.core;
        let head = match core.find_head(input, request_in)? {
            HeadStep::NeedMore => return Ok(None),
            HeadStep::Parsed(bytes, raw) => build_request(bytes, &raw, &core.fields, &core.limits)?,
            HeadStep::Head(bytes) => parse_request(bytes, &core.limits, &mut core.fields)?,
        };
        core.start_body(head.framing, head.keep_alive);
        Ok(Some(Event::Headers(head)))
    }

    /// The peer closed its side: from now on `decode` ends a tunnel, or
    /// reports a message cut short as [`CodecError::PrematureEof`].
    pub fn on_eof(&mut self) {
        self.core.eof = true;
    }

    /// Whether the decoder is between messages (no byte of a next one seen).
    pub fn is_idle(&self) -> bool {
        self.core.is_idle()
    }
}

/// Decodes responses from an upstream connection. It must be told about each
/// request sent ([`expect_response`](Self::expect_response)), since a
/// response's framing depends on its request (HEAD, CONNECT, upgrade).
#[derive(Debug)]
pub struct ResponseDecoder {
    core: Core,
    pending: VecDeque<RequestInfo>,
}

impl Default for ResponseDecoder {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl ResponseDecoder {
    /// A decoder for a new upstream connection.
    pub fn new(limits: Limits) -> Self {
        Self { core: Core::new(limits), pending: VecDeque::new() }
    }

    /// A request was sent: the next final response answers it (in order, for
    /// pipelined requests).
    pub fn expect_response(&mut self, request: RequestInfo) {
        self.pending.push_back(request);
    }

    /// Requests still waiting for their final response.
    pub fn pending_responses(&self) -> usize {
        self.pending.len()
    }

    /// Decodes the next event from `input`; see [`RequestDecoder::decode`].
    /// Interim (1xx) responses come as their own `Headers` + `MessageComplete`
    /// before the final response to the same request.
    pub fn decode(&mut self, input: &mut Buffer) -> Result<Option<ResponseEvent>, CodecError> {
        let result = self.decode_inner(input);
        self.core.fail(result)
    }

    fn decode_inner(&mut self, input: &mut Buffer) -> Result<Option<ResponseEvent>, CodecError> {
        if let Some(step) = self.core.step_non_head(input) {
            return step;
        }
        if !input.is_empty() && self.pending.is_empty() {
            return Err(CodecError::UnexpectedResponse);
        }
        let request = self.pending.front().copied().unwrap_or_default();
        let core = &mut self.core;
        let head = match core.find_head(input, response_in)? {
            HeadStep::NeedMore => return Ok(None),
            HeadStep::Parsed(bytes, raw) => build_response(bytes, &raw, &core.fields, request)?,
            HeadStep::Head(bytes) => {
                parse_response(bytes, &core.limits, request, &mut core.fields)?
            }
        };
        if !head.is_informational() {
            self.pending.pop_front();
        }
        self.core.start_body(head.framing, head.keep_alive);
        Ok(Some(Event::Headers(head)))
    }

    /// The upstream closed its side: ends a close-delimited body or a tunnel,
    /// or makes a cut-short response a [`CodecError::PrematureEof`].
    pub fn on_eof(&mut self) {
        self.core.eof = true;
    }

    /// Whether the decoder is between responses.
    pub fn is_idle(&self) -> bool {
        self.core.is_idle()
    }
}
