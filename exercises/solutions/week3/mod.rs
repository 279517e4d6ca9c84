//! Week 3 reference solutions.

pub mod chunked;
pub mod cors;
pub mod filter_chain;
pub mod token_bucket;
