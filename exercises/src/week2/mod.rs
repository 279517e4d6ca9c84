//! Week 2 exercises (stubs to complete, in course order).

pub mod deferred_delete;
pub mod post_queue;
pub mod timer_heap;
pub mod tls_slot;
