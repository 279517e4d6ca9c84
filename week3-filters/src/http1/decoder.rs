//! The decoders: [`RequestDecoder`] (server side, Envoy's
//! `ServerConnectionImpl`) and [`ResponseDecoder`] (client side, Envoy's
//! `ClientConnectionImpl`). One decoder per connection; it walks
//! head → body → end of message, then the next message (pipelining), until a
//! message that closes the connection or turns it into a tunnel.

use std::collections::VecDeque;

use bytes::Bytes;
use week1_core::headers::HeaderMap;

use super::body::{BodyDecoder, BodyStep};
use super::head::{RequestHead, RequestInfo, ResponseHead, parse_request, parse_response};
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
}

enum HeadStep {
    /// A complete head, to be parsed.
    Head(Bytes),
    NeedMore,
}

impl Core {
    fn new(limits: Limits) -> Self {
        Self { limits, state: State::Head(HeadScanner::for_head()), eof: false, keep_alive: true }
    }

    /// In the `Head` state: skips empty lines before a message (RFC 9112
    /// §2.2), then looks for the end of the head.
    fn find_head(&mut self, input: &mut Buffer) -> Result<HeadStep, CodecError> {
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
            // Fast path: the whole head sits in the first slice (the usual
            // case) with strict line ends: one search for the empty line.
            // Anything else goes to the incremental scanner, which also gives
            // the precise error.
            if let Some(n) = whole_head(input.front_slice(), self.limits.max_head_bytes()) {
                return Ok(HeadStep::Head(input.split_to_bytes(n)));
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

/// The length of the head at the start of `front`, when it ends within
/// `limit` bytes and every CR in it is followed by LF and every LF preceded
/// by CR: exactly when [`HeadScanner`] would find the same end without error.
/// `None` sends the caller to the scanner.
fn whole_head(front: &[u8], limit: usize) -> Option<usize> {
    static END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    let window = &front[..front.len().min(limit)];
    let n = END.find(window)? + 4;
    line_ends_paired(&window[..n]).then_some(n)
}

/// Whether every CR in `head` is followed by LF and every LF is preceded by
/// CR. Branch-free over adjacent pairs, so the compiler vectorizes it.
fn line_ends_paired(head: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (head.first(), head.last()) else {
        return true;
    };
    if first == b'\n' || last == b'\r' {
        return false;
    }
    let mut unpaired = 0u8;
    for (&a, &b) in head[..head.len() - 1].iter().zip(&head[1..]) {
        unpaired |= u8::from(a == b'\r') ^ u8::from(b == b'\n');
    }
    unpaired == 0
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
        match self.core.find_head(input)? {
            HeadStep::NeedMore => Ok(None),
            HeadStep::Head(bytes) => {
                let head = parse_request(bytes, &self.core.limits)?;
                self.core.start_body(head.framing, head.keep_alive);
                Ok(Some(Event::Headers(head)))
            }
        }
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
        match self.core.find_head(input)? {
            HeadStep::NeedMore => Ok(None),
            HeadStep::Head(bytes) => {
                let request = self.pending.front().copied().unwrap_or_default();
                let head = parse_response(bytes, &self.core.limits, request)?;
                if !head.is_informational() {
                    self.pending.pop_front();
                }
                self.core.start_body(head.framing, head.keep_alive);
                Ok(Some(Event::Headers(head)))
            }
        }
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

#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn line_ends_must_pair() {
        assert!(line_ends_paired(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!line_ends_paired(b"GET / HTTP/1.1\nHost: a\r\n\r\n"));
        assert!(!line_ends_paired(b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"));
        assert!(!line_ends_paired(b"\nGET"));
        assert!(!line_ends_paired(b"GET\r"));
        assert_eq!(whole_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", 1000), Some(27));
        assert_eq!(whole_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", 26), None);
        assert_eq!(whole_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r", 1000), None);
    }

    proptest! {
        /// Whenever the fast path answers, the scanner gives the same end.
        #[test]
        fn fast_path_agrees_with_the_scanner(
            input in prop::collection::vec(
                prop_oneof![Just(b'a'), Just(b'\r'), Just(b'\n'), Just(b':')], 0..40),
            limit in 0usize..48,
        ) {
            let scanned = HeadScanner::for_head().scan(&Buffer::from(&input[..]), limit);
            match whole_head(&input, limit) {
                Some(n) => prop_assert_eq!(scanned, Ok(Some(n))),
                None => prop_assert!(!matches!(scanned, Ok(Some(n)) if n <= limit
                    && line_ends_paired(&input[..n]))),
            }
        }
    }
}
