//! Test support shared by the property tests, the fuzz targets (`fuzz/`) and
//! the benchmarks: run a decoder over input cut into pieces, gather whole
//! messages, encode them again, and check that parse → encode → parse gives
//! the same message. Not meant for production code.

use bytes::Bytes;
use week1_core::headers::HeaderMap;

use super::{
    BodyFraming, CodecError, EncodeError, Event, Limits, RequestDecoder, RequestEncoder,
    RequestHead, RequestInfo, ResponseDecoder, ResponseEncoder, ResponseHead, Version,
};
use crate::buffer::Buffer;

/// Everything a decoder said about some input: its events (adjacent `Data`
/// merged, since how a body is cut depends on how the input arrived) and the
/// error it stopped on, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<H> {
    /// Events in order.
    pub events: Vec<Event<H>>,
    /// The error that stopped decoding.
    pub error: Option<CodecError>,
}

trait Drive {
    type Head;
    fn next(&mut self, input: &mut Buffer) -> Result<Option<Event<Self::Head>>, CodecError>;
    fn eof(&mut self);
}

impl Drive for RequestDecoder {
    type Head = RequestHead;
    fn next(&mut self, input: &mut Buffer) -> Result<Option<Event<RequestHead>>, CodecError> {
        self.decode(input)
    }
    fn eof(&mut self) {
        self.on_eof();
    }
}

impl Drive for ResponseDecoder {
    type Head = ResponseHead;
    fn next(&mut self, input: &mut Buffer) -> Result<Option<Event<ResponseHead>>, CodecError> {
        self.decode(input)
    }
    fn eof(&mut self) {
        self.on_eof();
    }
}

fn drive<'a, D: Drive>(
    decoder: &mut D,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Decoded<D::Head> {
    let mut input = Buffer::new();
    let mut out = Decoded { events: Vec::new(), error: None };
    let mut fed = 0usize;
    let drain = |decoder: &mut D, input: &mut Buffer, out: &mut Decoded<D::Head>, fed: usize| {
        loop {
            match decoder.next(input) {
                Ok(Some(Event::Data(data))) => match out.events.last_mut() {
                    Some(Event::Data(prev)) => {
                        let mut joined = Vec::with_capacity(prev.len() + data.len());
                        joined.extend_from_slice(prev);
                        joined.extend_from_slice(&data);
                        *prev = Bytes::from(joined);
                    }
                    _ => out.events.push(Event::Data(data)),
                },
                Ok(Some(event)) => out.events.push(event),
                Ok(None) => return true,
                Err(e) => {
                    out.error = Some(e);
                    return false;
                }
            }
            // Every event but Data consumes input or ends a message that did:
            // more events than bytes means the decoder is spinning.
            assert!(out.events.len() <= 2 * fed + 4, "decoder produces events without input");
        }
    };
    for piece in pieces {
        input.append(piece);
        fed += piece.len();
        if !drain(decoder, &mut input, &mut out, fed) {
            return out;
        }
    }
    decoder.eof();
    drain(decoder, &mut input, &mut out, fed);
    out
}

/// Feeds `pieces` one after the other to a request decoder, then ends the input.
pub fn decode_requests<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    limits: Limits,
) -> Decoded<RequestHead> {
    drive(&mut RequestDecoder::new(limits), pieces)
}

/// Feeds `pieces` to a response decoder that expects answers to `requests`.
pub fn decode_responses<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    limits: Limits,
    requests: &[RequestInfo],
) -> Decoded<ResponseHead> {
    let mut decoder = ResponseDecoder::new(limits);
    for request in requests {
        decoder.expect_response(*request);
    }
    drive(&mut decoder, pieces)
}

/// A whole message gathered from events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<H> {
    /// The head.
    pub head: H,
    /// The whole body (for a tunnel: the tunnel bytes).
    pub body: Vec<u8>,
    /// Trailers, when a chunked body had some.
    pub trailers: Option<HeaderMap>,
}

/// The complete messages among `events` (a message cut short is left out).
pub fn messages<H: Clone>(events: &[Event<H>]) -> Vec<Message<H>> {
    let mut done = Vec::new();
    let mut current: Option<Message<H>> = None;
    for event in events {
        match event {
            Event::Headers(head) => {
                current = Some(Message { head: head.clone(), body: Vec::new(), trailers: None })
            }
            Event::Data(data) => {
                if let Some(m) = current.as_mut() {
                    m.body.extend_from_slice(data);
                }
            }
            Event::Trailers(t) => {
                if let Some(m) = current.as_mut() {
                    m.trailers = Some(t.clone());
                }
            }
            Event::MessageComplete => done.extend(current.take()),
        }
    }
    done
}

fn has_more(body: &[u8], trailers: &Option<HeaderMap>, framing: BodyFraming) -> bool {
    !body.is_empty() || trailers.is_some() || framing == BodyFraming::Tunnel
}

/// Encodes a decoded request again, as the client codec would send it.
pub fn encode_request(
    m: &Message<RequestHead>,
    out: &mut Buffer,
) -> Result<RequestInfo, EncodeError> {
    let mut encoder = RequestEncoder::new()
        .with_version(m.head.version)
        .send_fully_qualified_url(m.head.headers.scheme().is_some());
    let more = has_more(&m.body, &m.trailers, m.head.framing);
    let info = encoder.encode_headers(&m.head.headers, !more, out)?;
    encode_rest(&mut encoder, &m.body, &m.trailers, more, out)?;
    Ok(info)
}

/// Encodes a decoded response again, as the server codec would send it.
pub fn encode_response(
    m: &Message<ResponseHead>,
    request: RequestInfo,
    out: &mut Buffer,
) -> Result<(), EncodeError> {
    let mut encoder = ResponseEncoder::new(request).with_version(m.head.version);
    let more = has_more(&m.body, &m.trailers, m.head.framing);
    encoder.encode_headers(&m.head.headers, !more, out)?;
    encode_rest(&mut encoder, &m.body, &m.trailers, more, out)
}

/// The body half of either encoder.
trait BodySink {
    fn data(&mut self, data: Bytes, end_stream: bool, out: &mut Buffer) -> Result<(), EncodeError>;
    fn trailers(&mut self, trailers: &HeaderMap, out: &mut Buffer) -> Result<(), EncodeError>;
}

impl BodySink for RequestEncoder {
    fn data(&mut self, data: Bytes, end_stream: bool, out: &mut Buffer) -> Result<(), EncodeError> {
        self.encode_data(data, end_stream, out)
    }
    fn trailers(&mut self, trailers: &HeaderMap, out: &mut Buffer) -> Result<(), EncodeError> {
        self.encode_trailers(trailers, out)
    }
}

impl BodySink for ResponseEncoder {
    fn data(&mut self, data: Bytes, end_stream: bool, out: &mut Buffer) -> Result<(), EncodeError> {
        self.encode_data(data, end_stream, out)
    }
    fn trailers(&mut self, trailers: &HeaderMap, out: &mut Buffer) -> Result<(), EncodeError> {
        self.encode_trailers(trailers, out)
    }
}

fn encode_rest(
    encoder: &mut impl BodySink,
    body: &[u8],
    trailers: &Option<HeaderMap>,
    more: bool,
    out: &mut Buffer,
) -> Result<(), EncodeError> {
    if !more {
        return Ok(());
    }
    match trailers {
        Some(t) => {
            if !body.is_empty() {
                encoder.data(Bytes::copy_from_slice(body), false, out)?;
            }
            encoder.trailers(t, out)
        }
        None => encoder.data(Bytes::copy_from_slice(body), true, out),
    }
}

/// Limits loose enough for re-encoded messages (the encoder may add a space
/// after each colon, a `host` line or a `/`).
fn loose() -> Limits {
    Limits {
        max_headers_kb: 1024,
        max_headers_count: 1000,
        max_url_length: 1 << 20,
        max_chunk_line_length: 1 << 20,
        accept_http_10: true,
    }
}

/// Framing headers are the encoder's choice, so they are left out of comparisons.
fn without_framing(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    h.remove("content-length");
    h.remove("transfer-encoding");
    h
}

/// What must survive a round trip, for a request.
fn request_essence(m: &Message<RequestHead>) -> impl PartialEq + std::fmt::Debug {
    let h = &m.head;
    (
        without_framing(&h.headers),
        h.version,
        h.keep_alive,
        h.expect_continue,
        h.upgrade,
        h.connect,
        h.framing == BodyFraming::Tunnel,
        m.body.clone(),
        m.trailers.clone(),
    )
}

/// What must survive a round trip, for a response. Re-encoding may change
/// a close-delimited body into a framed one and back (for an HTTP/1.0
/// client, which cannot read chunked): that changes persistence, and a
/// close-delimited body cannot carry trailers. `lossy` says it happened.
fn response_essence(m: &Message<ResponseHead>, lossy: bool) -> impl PartialEq + std::fmt::Debug {
    let h = &m.head;
    (
        without_framing(&h.headers),
        h.status,
        h.version,
        (!lossy).then_some(h.keep_alive),
        h.framing == BodyFraming::Tunnel,
        m.body.clone(),
        m.trailers.clone().filter(|_| !lossy),
    )
}

/// Decodes `data` as requests; every complete request must encode, and the
/// encoding must decode to the same requests. Panics otherwise.
pub fn check_request_roundtrip(data: &[u8]) {
    let first = decode_requests([data], Limits::default());
    let originals = messages(&first.events);
    let mut wire = Buffer::new();
    for m in &originals {
        if let Err(e) = encode_request(m, &mut wire) {
            panic!("a decoded request does not encode: {e}\n{m:?}");
        }
    }
    let wire = wire.to_vec();
    let second = decode_requests([&wire[..]], loose());
    assert_eq!(
        second.error,
        None,
        "re-encoded requests do not decode: {:?}",
        String::from_utf8_lossy(&wire)
    );
    let again = messages(&second.events);
    assert_eq!(
        originals.len(),
        again.len(),
        "message count changed: {:?}",
        String::from_utf8_lossy(&wire)
    );
    for (a, b) in originals.iter().zip(&again) {
        assert_eq!(request_essence(a), request_essence(b), "{:?}", String::from_utf8_lossy(&wire));
    }
}

/// What a response-side fuzz input answers: picked by its first byte.
pub fn request_info_for(selector: u8) -> RequestInfo {
    RequestInfo {
        is_head: selector % 5 == 1,
        is_connect: selector % 5 == 2,
        is_upgrade: selector % 5 == 3,
        version: if selector % 5 == 4 { Version::Http10 } else { Version::Http11 },
    }
}

/// Decodes `data` as responses to requests like `request` (as many as could
/// fit); every complete response must encode, and decode back the same.
pub fn check_response_roundtrip(request: RequestInfo, data: &[u8]) {
    let requests = vec![request; data.len() / 8 + 1];
    let first = decode_responses([data], Limits::default(), &requests);
    let originals = messages(&first.events);
    let mut wire = Buffer::new();
    for m in &originals {
        if let Err(e) = encode_response(m, request, &mut wire) {
            panic!("a decoded response does not encode: {e}\n{m:?}");
        }
    }
    let wire = wire.to_vec();
    let second = decode_responses([&wire[..]], loose(), &requests);
    assert_eq!(
        second.error,
        None,
        "re-encoded responses do not decode: {:?}",
        String::from_utf8_lossy(&wire)
    );
    let again = messages(&second.events);
    assert_eq!(
        originals.len(),
        again.len(),
        "message count changed: {:?}",
        String::from_utf8_lossy(&wire)
    );
    for (a, b) in originals.iter().zip(&again) {
        let lossy = a.head.framing == BodyFraming::CloseDelimited
            || b.head.framing == BodyFraming::CloseDelimited;
        assert_eq!(
            response_essence(a, lossy),
            response_essence(b, lossy),
            "{:?}",
            String::from_utf8_lossy(&wire)
        );
    }
}

/// Decoding `data` whole and decoding it cut at `cuts` must agree. Panics otherwise.
pub fn check_split_invariance(data: &[u8], cuts: &[usize], request: Option<RequestInfo>) {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(data.len())).collect();
    points.sort_unstable();
    points.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for p in points.into_iter().chain([data.len()]) {
        pieces.push(&data[start..p]);
        start = p;
    }
    match request {
        None => {
            let whole = decode_requests([data], Limits::default());
            let split = decode_requests(pieces, Limits::default());
            assert_eq!(whole, split);
        }
        Some(info) => {
            let requests = vec![info; data.len() / 8 + 1];
            let whole = decode_responses([data], Limits::default(), &requests);
            let split = decode_responses(pieces, Limits::default(), &requests);
            assert_eq!(whole, split);
        }
    }
}
