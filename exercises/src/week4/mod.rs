//! Week 4 exercises (stubs to complete, in course order).

pub mod backoff;
pub mod delta;
pub mod drain;
pub mod sotw_ack_nack;
