//! Helpers for the end-to-end tests of the real `mini-envoy` binary.
