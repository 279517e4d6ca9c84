//! # Exercise `post_queue`: posting work to another thread's loop (week 2, day 4)
//!
//! `Dispatcher::post` is how Envoy's threads talk: the main thread posts a
//! callback to a worker's queue, and the worker runs it on its own loop.
//! Waking a sleeping loop costs a system call (an `eventfd` write), so Envoy
//! wakes it only when the queue goes from empty to non-empty: a burst of posts
//! costs one wake-up. Build that queue.
//!
//! ## Task
//!
//! Implement [`PostQueue`] (cheap to clone, usable from any thread):
//!
//! - [`PostQueue::new`] takes the `wake` function (in a real loop: write the
//!   eventfd).
//! - [`PostQueue::post`] appends a callback and calls `wake` only if the
//!   queue was empty (so at most one wake-up per batch). Do not call `wake`
//!   while holding your lock.
//! - [`PostQueue::run_posted`] (on the loop's thread) takes the whole batch
//!   out first, then runs it in FIFO order outside the lock, and returns how
//!   many ran. A callback posted while the batch runs waits for the next call
//!   (and wakes the loop again), so a callback that re-posts itself cannot
//!   starve the loop.
//!
//! Run `cargo run -p exercises -- verify post_queue`.

use std::sync::{Arc, Mutex};

/// A posted callback.
pub type Callback = Box<dyn FnOnce() + Send>;

/// A loop's queue of posted callbacks.
#[derive(Clone)]
pub struct PostQueue {
    // Suggested state: the callbacks behind a Mutex, and the wake function.
    queue: Arc<Mutex<Vec<Callback>>>,
}

impl PostQueue {
    /// A queue that calls `wake` when it becomes non-empty.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        todo!()
    }

    /// Queues `callback` for the loop's thread.
    pub fn post(&self, callback: impl FnOnce() + Send + 'static) {
        todo!()
    }

    /// Runs the callbacks queued so far; returns how many ran.
    pub fn run_posted(&self) -> usize {
        todo!()
    }
}
