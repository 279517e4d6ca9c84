//! # Exercise `deferred_delete`: deleting at the end of the loop iteration (week 2, day 4)
//!
//! In Envoy, a connection that closes inside one of its own callbacks cannot
//! free itself there: the code up the stack may still touch it. It hands
//! itself to `dispatcher.deferredDelete()`, and the loop drops everything in
//! that list at the end of the iteration, when no callback is running. Build
//! that list.
//!
//! ## Task
//!
//! Implement [`DeferredDeleter`] (single-threaded: the loop's thread):
//!
//! - [`DeferredDeleter::defer`] keeps the object alive until the next
//!   [`DeferredDeleter::clear`]. It takes `&self`, because callbacks only have
//!   a shared reference to their dispatcher.
//! - [`DeferredDeleter::clear`] drops the objects in the order they were
//!   deferred and returns how many it dropped. A `Drop` may itself call
//!   `defer` (a connection freeing its filters): that must not panic, and what
//!   it defers waits for the next `clear`. Hint: never drop while borrowing.
//! - [`DeferredDeleter::len`] counts waiting objects.
//!
//! Run `cargo run -p exercises -- verify deferred_delete`.

use std::any::Any;
use std::cell::RefCell;

/// The loop's list of objects to drop at the end of the iteration.
#[derive(Default)]
pub struct DeferredDeleter {
    list: RefCell<Vec<Box<dyn Any>>>,
}

impl DeferredDeleter {
    /// An empty list.
    pub fn new() -> Self {
        todo!()
    }

    /// Drops `object` at the next `clear`.
    pub fn defer(&self, object: Box<dyn Any>) {
        todo!()
    }

    /// Drops what was deferred before this call, in order; returns how many.
    pub fn clear(&self) -> usize {
        todo!()
    }

    /// Objects waiting.
    pub fn len(&self) -> usize {
        todo!()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        todo!()
    }
}
