//! Reference solution of `deferred_delete`: swap the list out, then drop.

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
        Self::default()
    }

    /// Drops `object` at the next `clear`.
    pub fn defer(&self, object: Box<dyn Any>) {
        self.list.borrow_mut().push(object);
    }

    /// Drops what was deferred before this call, in order; returns how many.
    pub fn clear(&self) -> usize {
        // The borrow ends with this statement, before any Drop runs.
        let batch = std::mem::take(&mut *self.list.borrow_mut());
        let n = batch.len();
        for object in batch {
            drop(object);
        }
        n
    }

    /// Objects waiting.
    pub fn len(&self) -> usize {
        self.list.borrow().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.list.borrow().is_empty()
    }
}
