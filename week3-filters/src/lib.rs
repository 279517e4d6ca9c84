//! # Week 3: from bytes to HTTP streams, and the filters that act on them
//!
//! Bytes arrive in buffers, the HTTP/1.1 codec turns them into header maps and
//! body chunks, and chains of network and HTTP filters inspect and change them
//! on the way to the router.

pub mod buffer;
pub mod context;
pub mod hcm;
pub mod http;
pub mod http1;
pub mod network;
pub mod registry;
pub mod token_bucket;
