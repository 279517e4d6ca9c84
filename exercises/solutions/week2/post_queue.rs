//! Reference solution of `post_queue`. The real one
//! (`week2_threads::dispatcher::post`) uses a channel and a `wake_pending` flag.

use std::sync::{Arc, Mutex, PoisonError};

/// A posted callback.
pub type Callback = Box<dyn FnOnce() + Send>;

/// A loop's queue of posted callbacks.
#[derive(Clone)]
pub struct PostQueue {
    queue: Arc<Mutex<Vec<Callback>>>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl PostQueue {
    /// A queue that calls `wake` when it becomes non-empty.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Self { queue: Arc::default(), wake: Arc::new(wake) }
    }

    /// Queues `callback` for the loop's thread.
    pub fn post(&self, callback: impl FnOnce() + Send + 'static) {
        let was_empty = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.push(Box::new(callback));
            queue.len() == 1
        };
        if was_empty {
            (self.wake)();
        }
    }

    /// Runs the callbacks queued so far; returns how many ran.
    pub fn run_posted(&self) -> usize {
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        let n = batch.len();
        for callback in batch {
            callback();
        }
        n
    }
}
