//! Week 3 exercises (stubs to complete, in course order).

pub mod chunked;
pub mod cors;
pub mod filter_chain;
pub mod token_bucket;
