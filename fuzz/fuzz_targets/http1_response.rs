//! Arbitrary bytes into the response decoder (`ResponseDecoder`, Envoy's
//! `ClientConnectionImpl`). The first byte picks the request being answered
//! (GET, HEAD, CONNECT, upgrade, HTTP/1.0), since a response's framing
//! depends on it. Same checks as the request target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use week3_filters::http1::testing::{
    check_response_roundtrip, check_split_invariance, request_info_for,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let request = request_info_for(selector);
    check_response_roundtrip(request, rest);
    let cut = rest.first().map_or(0, |&b| usize::from(b));
    check_split_invariance(rest, &[cut, rest.len() / 2], Some(request));
});
