//! Week 2 reference solutions.

pub mod deferred_delete;
pub mod post_queue;
pub mod timer_heap;
pub mod tls_slot;
