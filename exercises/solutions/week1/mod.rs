//! Week 1 reference solutions.

pub mod circuit_breaker;
pub mod ring_hash;
pub mod route_match;
pub mod wrr;
