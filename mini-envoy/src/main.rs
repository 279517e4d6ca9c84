//! The `mini-envoy` binary.

fn main() {}
