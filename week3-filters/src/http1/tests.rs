//! Codec tests: framing, smuggling cases (one test each), limits, encoders,
//! and property tests (arbitrary input, split invariance, round trips).

use bytes::Bytes;
use proptest::prelude::*;
use week1_core::headers::HeaderMap;

use super::testing::{
    Decoded, check_request_roundtrip, check_response_roundtrip, check_split_invariance,
    decode_requests, decode_responses, messages, request_info_for,
};
use super::*;
use crate::buffer::Buffer;

fn req(data: &[u8]) -> Decoded<RequestHead> {
    decode_requests([data], Limits::default())
}

fn req_err(data: &[u8]) -> Option<CodecError> {
    req(data).error
}

fn head_of(data: &[u8]) -> RequestHead {
    match req(data).events.into_iter().next() {
        Some(Event::Headers(h)) => h,
        other => panic!("no head: {other:?} for {:?}", String::from_utf8_lossy(data)),
    }
}

const GET: RequestInfo =
    RequestInfo { is_head: false, is_connect: false, is_upgrade: false, version: Version::Http11 };

fn res(data: &[u8], request: RequestInfo) -> Decoded<ResponseHead> {
    decode_responses([data], Limits::default(), &[request; 4])
}

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (n, v) in pairs {
        m.try_append(n, v).unwrap();
    }
    m
}

fn body_of<H>(events: &[Event<H>]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Data(d) => Some(d.to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

// ---------------------------------------------------------------- requests

/// The codec builds field values without checking them again
/// (`HeaderValue::from_parsed`): httparse must refuse exactly the bytes
/// `HeaderValue::new` refuses, in requests, responses and trailers.
#[test]
fn field_values_follow_the_header_value_rule() {
    for b in 0..=255u8 {
        let allowed = week1_core::headers::HeaderValue::new(vec![b'a', b, b'z']).is_ok();
        let mut request = b"GET / HTTP/1.1\r\nHost: h\r\nX: a".to_vec();
        request.push(b);
        request.extend_from_slice(b"z\r\n\r\n");
        let decoded = req(&request);
        assert_eq!(decoded.error.is_none(), allowed, "byte {b:#04x} in a request: {decoded:?}");
        if allowed {
            let head = head_of(&request);
            assert_eq!(head.headers.get("x").map(|v| v.as_bytes()), Some(&[b'a', b, b'z'][..]));
        }
        let mut response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: a".to_vec();
        response.push(b);
        response.extend_from_slice(b"z\r\n\r\n");
        let decoded = res(&response, RequestInfo::default());
        assert_eq!(decoded.error.is_none(), allowed, "byte {b:#04x} in a response: {decoded:?}");
        let mut chunked =
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a".to_vec();
        chunked.push(b);
        chunked.extend_from_slice(b"z\r\n\r\n");
        let decoded = req(&chunked);
        assert_eq!(decoded.error.is_none(), allowed, "byte {b:#04x} in trailers: {decoded:?}");
    }
}

/// The fields that frame a message count in any letter case.
#[test]
fn framing_fields_in_any_case() {
    let head = head_of(b"POST / HTTP/1.1\r\nhOsT: h\r\ncOnTeNt-LeNgTh: 3\r\n\r\nabc");
    assert_eq!(head.framing, BodyFraming::ContentLength(3));
    assert_eq!(head.headers.authority(), Some("h"));
    let head =
        head_of(b"POST / HTTP/1.1\r\nHOST: h\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(head.framing, BodyFraming::Chunked);
    assert_eq!(
        req_err(b"POST / HTTP/1.1\r\nHost: h\r\nCONTENT-length: 1\r\ncontent-LENGTH: 1\r\n\r\na"),
        Some(CodecError::MultipleContentLength)
    );
    assert_eq!(
        req_err(b"GET / HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n"),
        Some(CodecError::MultipleHost)
    );
    let head =
        head_of(b"GET / HTTP/1.1\r\nHost: h\r\nCONNECTION: Upgrade\r\nUPGRADE: websocket\r\n\r\n");
    assert!(head.upgrade);
    let head = head_of(b"GET / HTTP/1.1\r\nHost: h\r\nEXPECT: 100-continue\r\n\r\n");
    assert!(head.expect_continue);
}

#[test]
fn simple_get() {
    let d = req(b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nX-Custom: a b \r\n\r\n");
    assert_eq!(d.error, None);
    let [Event::Headers(h), Event::MessageComplete] = &d.events[..] else {
        panic!("{:?}", d.events)
    };
    let expected = map(&[
        (":method", "GET"),
        (":path", "/index.html?q=1"),
        (":authority", "example.com"),
        ("user-agent", "t"),
        ("x-custom", "a b"),
    ]);
    assert_eq!(h.headers, expected);
    assert_eq!(h.version, Version::Http11);
    assert!(h.keep_alive && !h.expect_continue && !h.upgrade && !h.connect);
    assert_eq!(h.framing, BodyFraming::None);
    assert_eq!(h.headers.scheme(), None);
}

#[test]
fn content_length_body_is_zero_copy() {
    let mut input = Buffer::new();
    let payload = Bytes::from(
        b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 300\r\n\r\n"
            .iter()
            .copied()
            .chain([b'x'; 300])
            .collect::<Vec<u8>>(),
    );
    input.append_bytes(payload.clone());
    let mut dec = RequestDecoder::default();
    let Some(Event::Headers(h)) = dec.decode(&mut input).unwrap() else { panic!() };
    assert_eq!(h.framing, BodyFraming::ContentLength(300));
    let Some(Event::Data(body)) = dec.decode(&mut input).unwrap() else { panic!() };
    assert_eq!(body.len(), 300);
    assert_eq!(body.as_ptr(), payload[payload.len() - 300..].as_ptr(), "body shares the input");
    // Header values share the input too.
    let len = h.headers.get("content-length").unwrap().as_bytes();
    assert!(payload.as_ptr_range().contains(&len.as_ptr()));
    assert_eq!(dec.decode(&mut input).unwrap(), Some(Event::MessageComplete));
    assert_eq!(dec.decode(&mut input).unwrap(), None);
    assert!(dec.is_idle());
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let d = req(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;name=value\r\nhello\r\n6 ; x=\"q;\\\"d\"\r\n world\r\n000\r\nX-Checksum: abc\r\nX-B: 1\r\n\r\n");
    assert_eq!(d.error, None);
    assert_eq!(body_of(&d.events), b"hello world");
    let trailers = d.events.iter().find_map(|e| match e {
        Event::Trailers(t) => Some(t.clone()),
        _ => None,
    });
    assert_eq!(trailers, Some(map(&[("x-checksum", "abc"), ("x-b", "1")])));
    assert_eq!(d.events.last(), Some(&Event::MessageComplete));
}

#[test]
fn chunked_without_trailers_has_no_trailers_event() {
    let d = req(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(d.error, None);
    assert!(matches!(&d.events[..], [Event::Headers(_), Event::Data(_), Event::MessageComplete]));
}

#[test]
fn pipelined_requests_resume_at_the_next_message() {
    let mut input = Buffer::from(
        &b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nokGET /3 HTTP/1.1\r\nHost: h\r\n\r\n"[..],
    );
    let mut dec = RequestDecoder::default();
    let mut paths = Vec::new();
    // The caller may stop between messages (Envoy does until the response
    // is sent); the next request waits in the buffer.
    while let Some(event) = dec.decode(&mut input).unwrap() {
        if let Event::Headers(h) = event {
            paths.push(h.headers.path().unwrap().to_string());
        }
    }
    assert_eq!(paths, ["/1", "/2", "/3"]);
    assert!(input.is_empty());
}

#[test]
fn leading_empty_lines_are_skipped() {
    assert_eq!(head_of(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").headers.path(), Some("/"));
}

#[test]
fn absolute_form_sets_scheme_and_authority() {
    let h = head_of(b"GET HTTP://proxy.example:8080/a?b HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(h.headers.scheme(), Some("http"));
    assert_eq!(h.headers.authority(), Some("proxy.example:8080"));
    assert_eq!(h.headers.path(), Some("/a?b"));
    assert!(!h.headers.contains("host"));
    let h = head_of(b"GET https://a.example?x HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(h.headers.path(), Some("/?x"));
    assert_eq!(h.headers.scheme(), Some("https"));
    let h = head_of(b"OPTIONS http://a.example HTTP/1.1\r\n\r\n");
    assert_eq!(h.headers.path(), Some("*"));
}

#[test]
fn asterisk_form_for_options_only() {
    assert_eq!(head_of(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").headers.path(), Some("*"));
    assert_eq!(req_err(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), Some(CodecError::InvalidUrl));
}

#[test]
fn expect_continue_is_flagged_for_http11_only() {
    let h = head_of(
        b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n",
    );
    assert!(h.expect_continue);
    let h = head_of(b"PUT /f HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n");
    assert!(!h.expect_continue);
}

#[test]
fn keep_alive_rules() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, CLOSE\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n", true),
    ];
    for (data, keep) in cases {
        assert_eq!(head_of(data).keep_alive, *keep, "{:?}", String::from_utf8_lossy(data));
    }
}

#[test]
fn no_request_is_decoded_after_connection_close() {
    let mut input =
        Buffer::from(&b"GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"[..]);
    let mut dec = RequestDecoder::default();
    assert!(matches!(dec.decode(&mut input), Ok(Some(Event::Headers(_)))));
    assert_eq!(dec.decode(&mut input), Ok(Some(Event::MessageComplete)));
    assert_eq!(dec.decode(&mut input), Ok(None));
    assert_eq!(input.len(), 28, "the next request is left alone");
}

#[test]
fn upgrade_turns_the_rest_into_tunnel_data() {
    let mut input = Buffer::from(
        &b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello GET / HTTP/1.1\r\n"[..],
    );
    let mut dec = RequestDecoder::default();
    let Some(Event::Headers(h)) = dec.decode(&mut input).unwrap() else { panic!() };
    assert!(h.upgrade && !h.keep_alive);
    assert_eq!(h.framing, BodyFraming::Tunnel);
    let Some(Event::Data(d)) = dec.decode(&mut input).unwrap() else { panic!() };
    assert_eq!(&d[..], b"\x81\x05hello GET / HTTP/1.1\r\n");
    assert_eq!(dec.decode(&mut input), Ok(None));
    dec.on_eof();
    assert_eq!(dec.decode(&mut input), Ok(Some(Event::MessageComplete)));
    assert_eq!(dec.decode(&mut input), Ok(None));
}

#[test]
fn upgrade_with_a_body_is_a_plain_request() {
    let h = head_of(b"POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nab");
    assert!(!h.upgrade);
    assert_eq!(h.framing, BodyFraming::ContentLength(2));
}

#[test]
fn connect_is_a_tunnel() {
    let d = req(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01");
    let [Event::Headers(h), Event::Data(data), Event::MessageComplete] = &d.events[..] else {
        panic!("{:?}", d.events)
    };
    assert!(h.connect);
    assert_eq!(h.headers.authority(), Some("example.com:443"));
    assert_eq!(h.headers.path(), None);
    assert_eq!(&data[..], b"\x16\x03\x01");
    assert_eq!(req_err(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n"), None);
}

#[test]
fn connect_target_must_be_host_and_port() {
    for target in ["example.com", "/path", "http://a:1/", "a:", ":443", "user@a:443"] {
        let data = format!("CONNECT {target} HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(req_err(data.as_bytes()), Some(CodecError::InvalidUrl), "{target}");
    }
}

#[test]
fn connect_with_a_body_is_refused() {
    let e = req_err(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(e, Some(CodecError::BodyDisallowed));
}

#[test]
fn errors_are_sticky() {
    let mut dec = RequestDecoder::default();
    let mut input = Buffer::from(&b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n"[..]);
    assert_eq!(dec.decode(&mut input), Err(CodecError::InvalidContentLength));
    input.append(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(dec.decode(&mut input), Err(CodecError::InvalidContentLength));
}

#[test]
fn premature_eof() {
    assert_eq!(req_err(b"GET / HTTP/1.1\r\nHo"), Some(CodecError::PrematureEof));
    assert_eq!(
        req_err(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab"),
        Some(CodecError::PrematureEof)
    );
    assert_eq!(
        req_err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
        Some(CodecError::PrematureEof)
    );
    assert_eq!(req_err(b""), None, "a close between messages is clean");
}

// ------------------------------------------------- smuggling: one test each

fn te_cl(head: &str) -> Option<CodecError> {
    req_err(format!("POST / HTTP/1.1\r\nHost: h\r\n{head}\r\n\r\n").as_bytes())
}

#[test]
fn content_length_with_transfer_encoding() {
    assert_eq!(
        te_cl("Content-Length: 3\r\nTransfer-Encoding: chunked"),
        Some(CodecError::ContentLengthAndChunked)
    );
    assert_eq!(
        te_cl("Transfer-Encoding: chunked\r\nContent-Length: 3"),
        Some(CodecError::ContentLengthAndChunked)
    );
}

#[test]
fn identical_duplicate_content_length() {
    assert_eq!(
        te_cl("Content-Length: 3\r\nContent-Length: 3"),
        Some(CodecError::MultipleContentLength)
    );
    assert_eq!(te_cl("Content-Length: 3, 3"), Some(CodecError::MultipleContentLength));
}

#[test]
fn conflicting_content_length() {
    assert_eq!(
        te_cl("Content-Length: 3\r\nContent-Length: 4"),
        Some(CodecError::MultipleContentLength)
    );
}

#[test]
fn invalid_content_length() {
    for v in ["", "abc", "-1", "+1", "1 2", "0x10", "99999999999999999999", "18446744073709551616"]
    {
        assert_eq!(
            te_cl(&format!("Content-Length: {v}")),
            Some(CodecError::InvalidContentLength),
            "{v:?}"
        );
    }
}

#[test]
fn final_transfer_coding_must_be_chunked() {
    assert_eq!(te_cl("Transfer-Encoding: gzip"), Some(CodecError::InvalidTransferEncoding));
    assert_eq!(
        te_cl("Transfer-Encoding: chunked, gzip"),
        Some(CodecError::InvalidTransferEncoding)
    );
    assert_eq!(
        te_cl("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity"),
        Some(CodecError::InvalidTransferEncoding)
    );
}

#[test]
fn chunked_twice() {
    assert_eq!(
        te_cl("Transfer-Encoding: chunked, chunked"),
        Some(CodecError::InvalidTransferEncoding)
    );
    assert_eq!(
        te_cl("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"),
        Some(CodecError::InvalidTransferEncoding)
    );
}

#[test]
fn malformed_transfer_encoding_list() {
    assert_eq!(te_cl("Transfer-Encoding: ,chunked"), Some(CodecError::InvalidTransferEncoding));
    assert_eq!(te_cl("Transfer-Encoding: "), Some(CodecError::InvalidTransferEncoding));
}

#[test]
fn other_codings_before_chunked_are_unsupported() {
    let e = te_cl("Transfer-Encoding: gzip, chunked");
    assert_eq!(e, Some(CodecError::UnsupportedTransferEncoding));
    assert_eq!(e.unwrap().status_code(), 501);
}

#[test]
fn transfer_encoding_in_http10() {
    let e = req_err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(e, Some(CodecError::InvalidTransferEncoding));
}

fn chunked_body(body: &str) -> Option<CodecError> {
    req_err(
        format!("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
            .as_bytes(),
    )
}

#[test]
fn invalid_chunk_sizes() {
    for body in [
        "zz\r\n",
        "\r\n",
        "-1\r\n",
        "0x5\r\n",
        "5 \r\n",
        "+5\r\n",
        "5\r\r\n",
        "5;a\nb\r\n",
        "5;\0\r\n",
    ] {
        assert_eq!(chunked_body(body), Some(CodecError::InvalidChunkSize), "{body:?}");
    }
}

#[test]
fn overflowing_chunk_size() {
    assert_eq!(chunked_body("1ffffffffffffffff\r\n"), Some(CodecError::ChunkSizeOverflow));
    assert_eq!(
        chunked_body("00000000000000000000000000001\r\nx\r\n0\r\n\r\n"),
        None,
        "leading zeros are fine"
    );
}

#[test]
fn chunk_data_must_end_with_crlf() {
    assert_eq!(chunked_body("3\r\nabcX\r\n0\r\n\r\n"), Some(CodecError::InvalidChunkTerminator));
    assert_eq!(chunked_body("3\r\nabc\rX0\r\n\r\n"), Some(CodecError::InvalidChunkTerminator));
}

#[test]
fn whitespace_between_name_and_colon() {
    let e = req_err(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n");
    assert_eq!(e, Some(CodecError::WhitespaceBeforeColon));
    let e = req_err(b"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n");
    assert_eq!(e, Some(CodecError::WhitespaceBeforeColon));
}

#[test]
fn obs_fold() {
    let e = req_err(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n  folded\r\n\r\n");
    assert_eq!(e, Some(CodecError::ObsFold));
    let e = req_err(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n");
    assert_eq!(e, Some(CodecError::ObsFold));
}

#[test]
fn bare_cr_lf_nul() {
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\nb\r\n\r\n",
        b"GET / HTTP/1.1\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-\0A: ab\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n",
        b"GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        // Heads httparse accepts whole (it takes a bare LF as a line end):
        // the one-pass fast path must refuse them too.
        b"GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\n",
        b"GET / HTTP/1.1\nHost: h\nX: 1\n\n",
    ];
    for data in cases {
        assert_eq!(
            req_err(data),
            Some(CodecError::InvalidCharacters),
            "{:?}",
            String::from_utf8_lossy(data)
        );
    }
}

#[test]
fn invalid_header_name() {
    assert_eq!(
        req_err(b"GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n"),
        Some(CodecError::InvalidHeaderName)
    );
    assert_eq!(
        req_err(b"GET / HTTP/1.1\r\nHost: h\r\nno-colon\r\n\r\n"),
        Some(CodecError::InvalidHeaderName)
    );
}

#[test]
fn invalid_method() {
    for m in ["G(T", "GE\"T", "", "G@T"] {
        let data = format!("{m} / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(req_err(data.as_bytes()), Some(CodecError::InvalidMethod), "{m:?}");
    }
}

#[test]
fn invalid_version() {
    for v in ["HTTP/2.0", "HTTP/1.2", "http/1.1", "HTTP/1.1x", "HTTP/1"] {
        let data = format!("GET / {v}\r\nHost: h\r\n\r\n");
        assert_eq!(req_err(data.as_bytes()), Some(CodecError::InvalidVersion), "{v:?}");
    }
}

#[test]
fn invalid_request_target() {
    for t in ["foo", "ftp://a/b", "http://", "http://us@er/", "/caf\u{e9}", "//a b"] {
        let data = format!("GET {t} HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(req_err(data.as_bytes()), Some(CodecError::InvalidUrl), "{t:?}");
    }
}

#[test]
fn host_rules() {
    assert_eq!(req_err(b"GET / HTTP/1.1\r\n\r\n"), Some(CodecError::MissingHost));
    assert_eq!(
        req_err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
        Some(CodecError::MultipleHost)
    );
    assert_eq!(req_err(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), Some(CodecError::InvalidHost));
    assert_eq!(req_err(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"), Some(CodecError::InvalidHost));
    assert_eq!(head_of(b"GET / HTTP/1.0\r\n\r\n").headers.authority(), None, "1.0 needs no Host");
}

#[test]
fn http10_can_be_refused() {
    let limits = Limits { accept_http_10: false, ..Limits::default() };
    let d = decode_requests([&b"GET / HTTP/1.0\r\n\r\n"[..]], limits);
    assert_eq!(d.error, Some(CodecError::Http10NotAllowed));
    assert_eq!(d.error.unwrap().status_code(), 426);
}

// ------------------------------------------------------------------ limits

#[test]
fn headers_too_large_by_default_at_60_kib() {
    let big = "a".repeat(61 * 1024);
    let e = req_err(format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n").as_bytes());
    assert_eq!(e, Some(CodecError::HeadersTooLarge));
    assert_eq!(e.unwrap().status_code(), 431);
    assert_eq!(e.unwrap().details(), "http1.headers_too_large");
    // Found before the end of the head arrives: a peer cannot make us buffer forever.
    let mut dec = RequestDecoder::default();
    let mut input = Buffer::from(format!("GET / HTTP/1.1\r\nX: {big}").as_bytes());
    assert_eq!(dec.decode(&mut input), Err(CodecError::HeadersTooLarge));
    let fits = "a".repeat(59 * 1024);
    assert_eq!(
        req_err(format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {fits}\r\n\r\n").as_bytes()),
        None
    );
}

#[test]
fn too_many_headers() {
    let fields = |n: usize| (0..n).map(|i| format!("x-{i}: v\r\n")).collect::<String>();
    let data = |n: usize| format!("GET / HTTP/1.1\r\n{}\r\n", fields(n));
    // Host counts as a field: 100 fields in all are fine, 101 are not.
    assert_eq!(
        req_err(format!("GET / HTTP/1.1\r\nHost: h\r\n{}\r\n", fields(99)).as_bytes()),
        None
    );
    let e = req_err(data(101).as_bytes());
    assert_eq!(e, Some(CodecError::TooManyHeaders));
    assert_eq!(e.unwrap().status_code(), 431);
    // A larger configured limit uses heap slots.
    let limits = Limits { max_headers_count: 300, ..Limits::default() };
    let d = decode_requests(
        [format!("GET / HTTP/1.1\r\nHost: h\r\n{}\r\n", fields(250)).as_bytes()],
        limits,
    );
    assert_eq!(d.error, None);
}

#[test]
fn url_too_long() {
    let path = format!("/{}", "p".repeat(8 * 1024));
    let e = req_err(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    assert_eq!(e, Some(CodecError::UrlTooLong));
    assert_eq!(e.unwrap().status_code(), 414);
    let limits = Limits { max_url_length: 16 * 1024, ..Limits::default() };
    let d = decode_requests([format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes()], limits);
    assert_eq!(d.error, None);
}

#[test]
fn chunk_line_too_long() {
    let ext = "x".repeat(5000);
    assert_eq!(
        chunked_body(&format!("1;{ext}\r\na\r\n0\r\n\r\n")),
        Some(CodecError::ChunkLineTooLong)
    );
    assert_eq!(chunked_body(&format!("1;{}\r\na\r\n0\r\n\r\n", &ext[..4000])), None);
}

#[test]
fn trailers_obey_header_limits() {
    let limits = Limits { max_headers_count: 2, ..Limits::default() };
    let data = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
    assert_eq!(decode_requests([&data[..]], limits).error, Some(CodecError::TooManyHeaders));
    let data =
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad name: 1\r\n\r\n";
    assert_eq!(req_err(data), Some(CodecError::InvalidHeaderName));
}

#[test]
fn every_error_has_an_envoy_style_detail_and_a_status() {
    use CodecError::*;
    let all = [
        InvalidMethod,
        InvalidUrl,
        UrlTooLong,
        InvalidVersion,
        Http10NotAllowed,
        InvalidStatus,
        InvalidHeaderName,
        WhitespaceBeforeColon,
        ObsFold,
        InvalidCharacters,
        HeadersTooLarge,
        TooManyHeaders,
        MissingHost,
        MultipleHost,
        InvalidHost,
        ContentLengthAndChunked,
        InvalidContentLength,
        MultipleContentLength,
        InvalidTransferEncoding,
        UnsupportedTransferEncoding,
        BodyDisallowed,
        InvalidChunkSize,
        ChunkSizeOverflow,
        ChunkLineTooLong,
        InvalidChunkTerminator,
        PrematureEof,
        UnexpectedResponse,
        Malformed,
    ];
    let mut details: Vec<_> = all.iter().map(|e| e.details()).collect();
    assert!(details.iter().all(|d| d.starts_with("http1.")));
    details.sort_unstable();
    details.dedup();
    assert_eq!(details.len(), all.len(), "details are distinct");
    assert_eq!(ContentLengthAndChunked.details(), "http1.content_length_and_chunked_not_allowed");
    assert_eq!(ContentLengthAndChunked.status_code(), 400);
    assert_eq!(InvalidChunkSize.status_code(), 400);
}

// --------------------------------------------------------------- responses

#[test]
fn response_with_content_length() {
    let d = res(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: s\r\n\r\nhello", GET);
    assert_eq!(d.error, None);
    let Event::Headers(h) = &d.events[0] else { panic!() };
    assert_eq!(h.status, 200);
    assert_eq!(h.headers, map(&[(":status", "200"), ("content-length", "5"), ("server", "s")]));
    assert!(h.keep_alive);
    assert_eq!(body_of(&d.events), b"hello");
}

#[test]
fn close_delimited_response_ends_at_eof() {
    let mut dec = ResponseDecoder::default();
    dec.expect_response(GET);
    let mut input = Buffer::from(&b"HTTP/1.1 200 OK\r\n\r\nsome"[..]);
    let Some(Event::Headers(h)) = dec.decode(&mut input).unwrap() else { panic!() };
    assert_eq!(h.framing, BodyFraming::CloseDelimited);
    assert!(!h.keep_alive);
    assert!(matches!(dec.decode(&mut input), Ok(Some(Event::Data(_)))));
    input.append(b" more");
    assert!(matches!(dec.decode(&mut input), Ok(Some(Event::Data(_)))));
    assert_eq!(dec.decode(&mut input), Ok(None));
    dec.on_eof();
    assert_eq!(dec.decode(&mut input), Ok(Some(Event::MessageComplete)));
    assert_eq!(dec.decode(&mut input), Ok(None));
}

#[test]
fn bodiless_responses() {
    let head = RequestInfo { is_head: true, ..GET };
    let d =
        res(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", head);
    assert_eq!(d.error, None);
    let heads: Vec<_> = d
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Headers(h) => Some((h.status, h.framing)),
            _ => None,
        })
        .collect();
    assert_eq!(heads, [(200, BodyFraming::None), (204, BodyFraming::None)]);
    for status in ["204 No Content", "304 Not Modified"] {
        let data = format!("HTTP/1.1 {status}\r\nContent-Length: 10\r\n\r\n");
        let d = res(data.as_bytes(), GET);
        assert_eq!(d.error, None);
        assert_eq!(d.events.len(), 2, "{status}: headers then complete");
    }
}

#[test]
fn interim_responses_precede_the_final_one() {
    let mut dec = ResponseDecoder::default();
    dec.expect_response(GET);
    let mut input =
        Buffer::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..]);
    let mut statuses = Vec::new();
    while let Some(e) = dec.decode(&mut input).unwrap() {
        if let Event::Headers(h) = e {
            statuses.push((h.status, h.is_informational()));
        }
    }
    assert_eq!(statuses, [(100, true), (103, true), (200, false)]);
    assert_eq!(dec.pending_responses(), 0);
}

#[test]
fn switching_protocols_needs_an_upgrade_request() {
    let upgrade = RequestInfo { is_upgrade: true, ..GET };
    let d = res(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00", upgrade);
    let [Event::Headers(h), Event::Data(data), Event::MessageComplete] = &d.events[..] else {
        panic!("{d:?}")
    };
    assert_eq!(h.framing, BodyFraming::Tunnel);
    assert_eq!(&data[..], b"\x81\x00");
    let d = res(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", GET);
    assert_eq!(d.error, Some(CodecError::InvalidStatus));
}

#[test]
fn connect_response() {
    let connect = RequestInfo { is_connect: true, ..GET };
    let d = res(b"HTTP/1.1 200 Connection established\r\n\r\ntunnel", connect);
    assert!(matches!(&d.events[0], Event::Headers(h) if h.framing == BodyFraming::Tunnel));
    assert_eq!(body_of(&d.events), b"tunnel");
    let d = res(b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\nno", connect);
    assert!(
        matches!(&d.events[0], Event::Headers(h) if h.framing == BodyFraming::ContentLength(2))
    );
}

#[test]
fn response_keep_alive_and_version() {
    let d = res(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", GET);
    assert!(
        matches!(&d.events[0], Event::Headers(h) if !h.keep_alive && h.version == Version::Http10)
    );
    let d = res(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", GET);
    assert!(matches!(&d.events[0], Event::Headers(h) if h.keep_alive));
}

#[test]
fn response_side_smuggling_and_status_errors() {
    let cases: &[(&[u8], CodecError)] = &[
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            CodecError::ContentLengthAndChunked,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            CodecError::MultipleContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            CodecError::InvalidTransferEncoding,
        ),
        (b"HTTP/1.1 200 OK\r\nX : y\r\n\r\n", CodecError::WhitespaceBeforeColon),
        (b"HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", CodecError::ObsFold),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", CodecError::InvalidStatus),
        (b"HTTP/1.1 099 Low\r\n\r\n", CodecError::InvalidStatus),
        (b"HTTP/2.0 200 OK\r\n\r\n", CodecError::InvalidVersion),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
            CodecError::ChunkSizeOverflow,
        ),
    ];
    for (data, want) in cases {
        assert_eq!(res(data, GET).error, Some(*want), "{:?}", String::from_utf8_lossy(data));
    }
}

#[test]
fn response_without_request() {
    let d = decode_responses([&b"HTTP/1.1 200 OK\r\n\r\n"[..]], Limits::default(), &[]);
    assert_eq!(d.error, Some(CodecError::UnexpectedResponse));
}

// ---------------------------------------------------------------- encoders

fn encode_req(headers: &HeaderMap, body: Option<&str>) -> Result<String, EncodeError> {
    let mut out = Buffer::new();
    let mut enc = RequestEncoder::new();
    enc.encode_headers(headers, body.is_none(), &mut out)?;
    if let Some(b) = body {
        enc.encode_data(Bytes::copy_from_slice(b.as_bytes()), true, &mut out)?;
    }
    assert!(enc.is_complete());
    Ok(String::from_utf8(out.to_vec()).unwrap())
}

#[test]
fn request_encoder_framing() {
    let get = map(&[(":method", "GET"), (":path", "/"), (":authority", "h"), ("accept", "*/*")]);
    assert_eq!(encode_req(&get, None).unwrap(), "GET / HTTP/1.1\r\nhost: h\r\naccept: */*\r\n\r\n");
    let mut post =
        map(&[(":method", "POST"), (":path", "/p"), (":authority", "h"), ("content-length", "3")]);
    assert_eq!(
        encode_req(&post, Some("abc")).unwrap(),
        "POST /p HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\nabc"
    );
    assert_eq!(encode_req(&post, Some("abcd")), Err(EncodeError::BodyLengthMismatch));
    post.remove("content-length");
    post.try_append("transfer-encoding", "gzip").unwrap();
    assert_eq!(
        encode_req(&post, Some("abc")).unwrap(),
        "POST /p HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "the encoder owns the framing"
    );
    let connect = map(&[(":method", "CONNECT"), (":authority", "a:443")]);
    assert_eq!(
        encode_req(&connect, Some("raw")).unwrap(),
        "CONNECT a:443 HTTP/1.1\r\nhost: a:443\r\n\r\nraw"
    );
}

#[test]
fn request_encoder_refuses_what_cannot_go_on_the_wire() {
    let no_path = map(&[(":method", "GET"), (":authority", "h")]);
    assert_eq!(encode_req(&no_path, None), Err(EncodeError::MissingPseudoHeader(":path")));
    let bad_method = map(&[(":method", "GET /x"), (":path", "/"), (":authority", "h")]);
    assert_eq!(encode_req(&bad_method, None), Err(EncodeError::InvalidPseudoHeader(":method")));
    let bad_path = map(&[(":method", "GET"), (":path", "/a b"), (":authority", "h")]);
    assert_eq!(encode_req(&bad_path, None), Err(EncodeError::InvalidPseudoHeader(":path")));
    let mut out = Buffer::new();
    let mut enc = RequestEncoder::new().with_version(Version::Http10);
    let post = map(&[(":method", "POST"), (":path", "/"), (":authority", "h")]);
    assert_eq!(enc.encode_headers(&post, false, &mut out), Err(EncodeError::LengthRequired));
    let mut enc = RequestEncoder::new();
    assert_eq!(
        enc.encode_data(Bytes::new(), true, &mut out),
        Err(EncodeError::OutOfOrder("data before headers"))
    );
}

#[test]
fn request_encoder_fully_qualified_url() {
    let h = map(&[(":method", "GET"), (":scheme", "http"), (":path", "/x"), (":authority", "h:1")]);
    let mut out = Buffer::new();
    let info = RequestEncoder::new()
        .send_fully_qualified_url(true)
        .encode_headers(&h, true, &mut out)
        .unwrap();
    assert_eq!(out.to_vec(), b"GET http://h:1/x HTTP/1.1\r\nhost: h:1\r\n\r\n");
    assert_eq!(info, GET);
}

fn encode_res(request: RequestInfo, headers: &HeaderMap, body: Option<&str>) -> (String, bool) {
    let mut out = Buffer::new();
    let mut enc = ResponseEncoder::new(request);
    enc.encode_headers(headers, body.is_none(), &mut out).unwrap();
    if let Some(b) = body {
        enc.encode_data(Bytes::copy_from_slice(b.as_bytes()), true, &mut out).unwrap();
    }
    (String::from_utf8(out.to_vec()).unwrap(), enc.close_delimited())
}

#[test]
fn response_encoder_framing() {
    let ok = map(&[(":status", "200"), ("server", "m")]);
    assert_eq!(
        encode_res(GET, &ok, None).0,
        "HTTP/1.1 200 OK\r\nserver: m\r\ncontent-length: 0\r\n\r\n"
    );
    assert_eq!(
        encode_res(GET, &ok, Some("hi")).0,
        "HTTP/1.1 200 OK\r\nserver: m\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    );
    let old_client = RequestInfo { version: Version::Http10, ..GET };
    assert_eq!(
        encode_res(old_client, &ok, Some("hi")),
        ("HTTP/1.1 200 OK\r\nserver: m\r\n\r\nhi".into(), true)
    );
    let head = RequestInfo { is_head: true, ..GET };
    let with_len = map(&[(":status", "200"), ("content-length", "10")]);
    assert_eq!(
        encode_res(head, &with_len, Some("dropped")).0,
        "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"
    );
    let no_content = map(&[(":status", "204"), ("content-length", "0")]);
    assert_eq!(encode_res(GET, &no_content, None).0, "HTTP/1.1 204 No Content\r\n\r\n");
    let odd = map(&[(":status", "299")]);
    assert_eq!(encode_res(GET, &odd, None).0, "HTTP/1.1 299 \r\ncontent-length: 0\r\n\r\n");
}

#[test]
fn response_encoder_interim_then_final_and_trailers() {
    let mut out = Buffer::new();
    let mut enc = ResponseEncoder::new(GET);
    enc.encode_headers(&map(&[(":status", "100")]), false, &mut out).unwrap();
    enc.encode_headers(&map(&[(":status", "200")]), false, &mut out).unwrap();
    enc.encode_data(Bytes::from_static(b"abc"), false, &mut out).unwrap();
    enc.encode_trailers(&map(&[("grpc-status", "0")]), &mut out).unwrap();
    assert!(enc.is_complete());
    assert_eq!(
        String::from_utf8(out.to_vec()).unwrap(),
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\n\r\n"
    );
    assert_eq!(
        enc.encode_data(Bytes::new(), true, &mut out),
        Err(EncodeError::OutOfOrder("data after the end of the message"))
    );
    let mut enc = ResponseEncoder::new(GET);
    assert_eq!(
        enc.encode_headers(&map(&[(":status", "20")]), true, &mut out),
        Err(EncodeError::InvalidPseudoHeader(":status"))
    );
}

#[test]
fn encoded_body_data_is_not_copied() {
    let mut out = Buffer::new();
    let mut enc = ResponseEncoder::new(GET);
    enc.encode_headers(&map(&[(":status", "200"), ("content-length", "4096")]), false, &mut out)
        .unwrap();
    let body = Bytes::from(vec![b'z'; 4096]);
    enc.encode_data(body.clone(), true, &mut out).unwrap();
    assert!(out.slices().any(|s| s.as_ptr() == body.as_ptr()));
}

// --------------------------------------------------------- property tests

/// A syntactically valid request, and what the decoder must make of it.
#[derive(Debug, Clone)]
struct GenMessage {
    wire: Vec<u8>,
    head: HeaderMap,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
}

fn field_name() -> impl Strategy<Value = String> {
    "[xX]-[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[!-~]", "[!-~][ -~\t]{0,30}[!-~]"]
}

fn ows() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\t "), Just("  ")]
}

fn fields() -> impl Strategy<Value = Vec<(String, String, &'static str, &'static str)>> {
    prop::collection::vec((field_name(), field_value(), ows(), ows()), 0..6)
}

#[derive(Debug, Clone)]
enum GenBody {
    None,
    Length(Vec<u8>),
    Chunked {
        chunks: Vec<(Vec<u8>, String)>,
        trailers: Vec<(String, String, &'static str, &'static str)>,
    },
}

fn gen_body() -> impl Strategy<Value = GenBody> {
    let ext = prop_oneof![
        Just(String::new()),
        Just(";a=b".to_string()),
        Just(" ;name=\"q v\"".to_string()),
        Just(";x;y=1".to_string())
    ];
    prop_oneof![
        Just(GenBody::None),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(GenBody::Length),
        (prop::collection::vec((prop::collection::vec(any::<u8>(), 1..80), ext), 0..5), fields())
            .prop_map(|(chunks, trailers)| GenBody::Chunked { chunks, trailers }),
    ]
}

fn write_fields(wire: &mut Vec<u8>, map: &mut HeaderMap, fields: &[(String, String, &str, &str)]) {
    for (name, value, before, after) in fields {
        wire.extend_from_slice(format!("{name}:{before}{value}{after}\r\n").as_bytes());
        map.try_append(name, value).unwrap();
    }
}

fn write_body(
    wire: &mut Vec<u8>,
    head: &mut HeaderMap,
    body: &GenBody,
) -> (Vec<u8>, Option<HeaderMap>) {
    match body {
        GenBody::None => {
            wire.extend_from_slice(b"\r\n");
            (Vec::new(), None)
        }
        GenBody::Length(data) => {
            wire.extend_from_slice(format!("Content-Length: {}\r\n\r\n", data.len()).as_bytes());
            wire.extend_from_slice(data);
            head.try_append("content-length", &data.len().to_string()).unwrap();
            (data.clone(), None)
        }
        GenBody::Chunked { chunks, trailers } => {
            wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            head.try_append("transfer-encoding", "chunked").unwrap();
            let mut all = Vec::new();
            for (chunk, ext) in chunks {
                wire.extend_from_slice(format!("{:X}{ext}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
                all.extend_from_slice(chunk);
            }
            wire.extend_from_slice(b"0\r\n");
            let mut t = HeaderMap::new();
            write_fields(wire, &mut t, trailers);
            wire.extend_from_slice(b"\r\n");
            (all, (!t.is_empty()).then_some(t))
        }
    }
}

fn gen_request() -> impl Strategy<Value = GenMessage> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"]),
        "/[a-zA-Z0-9/._~?=&%!$'()*+,;:@-]{0,40}",
        "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
        fields(),
        gen_body(),
    )
        .prop_map(|(method, path, host, fields, body)| {
            let mut wire = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
            let mut head = HeaderMap::new();
            head.try_append(":method", method).unwrap();
            head.try_append(":path", &path).unwrap();
            head.try_append(":authority", &host).unwrap();
            write_fields(&mut wire, &mut head, &fields);
            let (body, trailers) = write_body(&mut wire, &mut head, &body);
            GenMessage { wire, head, body, trailers }
        })
}

fn gen_response() -> impl Strategy<Value = GenMessage> {
    (
        prop::sample::select(vec![200u16, 201, 202, 206, 301, 404, 500, 503]),
        "[ -~]{0,20}",
        fields(),
        gen_body(),
    )
        .prop_map(|(status, reason, fields, body)| {
            let mut wire = format!("HTTP/1.1 {status} {reason}\r\n").into_bytes();
            let mut head = HeaderMap::new();
            head.try_append(":status", &status.to_string()).unwrap();
            write_fields(&mut wire, &mut head, &fields);
            // A response without framing would be close-delimited: give it a length.
            let body = match body {
                GenBody::None => GenBody::Length(Vec::new()),
                other => other,
            };
            let (body, trailers) = write_body(&mut wire, &mut head, &body);
            GenMessage { wire, head, body, trailers }
        })
}

/// The events a decoder must produce for `messages`, in order.
fn expected_events(messages: &[GenMessage]) -> Vec<(HeaderMap, Vec<u8>, Option<HeaderMap>)> {
    messages.iter().map(|m| (m.head.clone(), m.body.clone(), m.trailers.clone())).collect()
}

fn concat(messages: &[GenMessage]) -> Vec<u8> {
    messages.iter().flat_map(|m| m.wire.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Valid pipelined requests decode to exactly what was generated, whole,
    /// one byte at a time and cut at random points; and they round-trip.
    #[test]
    fn valid_requests_decode_split_and_round_trip(
        msgs in prop::collection::vec(gen_request(), 1..4),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let wire = concat(&msgs);
        let whole = decode_requests([&wire[..]], Limits::default());
        prop_assert_eq!(whole.error, None, "{}", String::from_utf8_lossy(&wire));
        let got: Vec<_> = messages(&whole.events).into_iter().map(|m| (m.head.headers, m.body, m.trailers)).collect();
        prop_assert_eq!(got, expected_events(&msgs));
        let bytewise = decode_requests(wire.chunks(1), Limits::default());
        prop_assert_eq!(&bytewise, &whole);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        check_split_invariance(&wire, &cuts, None);
        check_request_roundtrip(&wire);
    }

    /// Same for responses.
    #[test]
    fn valid_responses_decode_split_and_round_trip(
        msgs in prop::collection::vec(gen_response(), 1..4),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let wire = concat(&msgs);
        let whole = decode_responses([&wire[..]], Limits::default(), &[GET; 4]);
        prop_assert_eq!(whole.error, None, "{}", String::from_utf8_lossy(&wire));
        let got: Vec<_> = messages(&whole.events).into_iter().map(|m| (m.head.headers, m.body, m.trailers)).collect();
        prop_assert_eq!(got, expected_events(&msgs));
        let bytewise = decode_responses(wire.chunks(1), Limits::default(), &[GET; 4]);
        prop_assert_eq!(&bytewise, &whole);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        check_split_invariance(&wire, &cuts, Some(GET));
        check_response_roundtrip(GET, &wire);
    }

    /// Arbitrary bytes: no panic, the same outcome however the input is cut,
    /// and whatever decodes also round-trips (the CI twin of the fuzz targets).
    #[test]
    fn arbitrary_bytes(
        data in prop::collection::vec(any::<u8>(), 0..400),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        selector in any::<u8>(),
    ) {
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        check_split_invariance(&data, &cuts, None);
        check_split_invariance(&data, &cuts, Some(request_info_for(selector)));
        check_request_roundtrip(&data);
        check_response_roundtrip(request_info_for(selector), &data);
    }

    /// Valid messages with a few bytes changed, inserted or removed: explores
    /// the edges of the grammar far better than random bytes.
    #[test]
    fn mutated_messages(
        msgs in prop::collection::vec(gen_request(), 1..3),
        response in gen_response(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(b"\r\n\0 \t:;,0aZ\x7f\xff".to_vec())), 1..4),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        selector in any::<u8>(),
    ) {
        for mut wire in [concat(&msgs), response.wire.clone()] {
            for (at, kind, byte) in &edits {
                let i = at.index(wire.len() + 1);
                match kind {
                    0 if i < wire.len() => wire[i] = *byte,
                    1 => wire.insert(i, *byte),
                    _ if i < wire.len() => { wire.remove(i); }
                    _ => {}
                }
            }
            let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            check_split_invariance(&wire, &cuts, None);
            check_split_invariance(&wire, &cuts, Some(request_info_for(selector)));
            check_request_roundtrip(&wire);
            check_response_roundtrip(request_info_for(selector), &wire);
        }
    }
}

#[test]
fn response_heads_with_a_bare_lf_are_refused_whole_or_split() {
    for data in [
        &b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n",
    ] {
        assert_eq!(res(data, GET).error, Some(CodecError::InvalidCharacters));
        let bytewise = decode_responses(data.chunks(1), Limits::default(), &[GET; 4]);
        assert_eq!(bytewise.error, Some(CodecError::InvalidCharacters));
    }
}

#[test]
fn a_head_split_across_reads_decodes_as_a_whole_one() {
    let wire = b"GET /a HTTP/1.1\r\nHost: h\r\nX-Long: 0123456789\r\nContent-Length: 2\r\n\r\nok";
    let whole = req(wire);
    assert_eq!(whole.error, None);
    for cut in 1..wire.len() {
        let split = decode_requests([&wire[..cut], &wire[cut..]], Limits::default());
        assert_eq!(split, whole, "cut at {cut}");
    }
}
