//! Week 1 exercises (stubs to complete, in course order).

pub mod circuit_breaker;
pub mod ring_hash;
pub mod route_match;
pub mod wrr;
