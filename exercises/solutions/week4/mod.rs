//! Week 4 reference solutions.

pub mod backoff;
pub mod delta;
pub mod drain;
pub mod sotw_ack_nack;
