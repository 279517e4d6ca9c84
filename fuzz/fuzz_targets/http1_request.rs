//! Arbitrary bytes into the request decoder (`RequestDecoder`, Envoy's
//! `ServerConnectionImpl`): no panic; decoding whole or cut at two points
//! gives the same events; every request that decodes encodes again and
//! decodes back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use week3_filters::http1::testing::{check_request_roundtrip, check_split_invariance};

fuzz_target!(|data: &[u8]| {
    check_request_roundtrip(data);
    // Cut points derived from the input itself, so libFuzzer explores them too.
    let cut = data.first().map_or(0, |&b| usize::from(b));
    check_split_invariance(data, &[cut, data.len() / 2], None);
});
