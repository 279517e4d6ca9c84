//! # Exercise `tls_slot`: configuration to workers without locks (week 2, day 3)
//!
//! Envoy's workers read configuration (routes, clusters) on every request, so
//! those reads must not lock. The main thread never writes into a worker's
//! memory: it *posts* the new value to every worker, and each worker swaps its
//! own copy when its loop gets to the post. Build a thread-local slot.
//!
//! ## Task
//!
//! [`slot`] creates one [`SlotWriter`] (main thread) and one [`WorkerSlot`]
//! per worker, connected by channels (`std::sync::mpsc`):
//!
//! - [`SlotWriter::set`] wraps the value in one `Arc` and sends a clone of it
//!   to every worker (all workers share one allocation; nothing is copied).
//!   A worker whose `WorkerSlot` was dropped is skipped.
//! - [`WorkerSlot::run_posted`] (the worker's loop) applies every update
//!   received so far, in order, and returns how many it applied. Until then the
//!   worker keeps reading its old value: workers may briefly disagree.
//! - [`WorkerSlot::get`] reads the worker's current value: no lock, no channel.
//! - When every worker has moved off an old value, it is freed (the `Arc`s
//!   holding it are gone).
//!
//! Run `cargo run -p exercises -- verify tls_slot`.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

/// The main thread's end: publishes new values.
#[derive(Debug)]
pub struct SlotWriter<T> {
    workers: Vec<Sender<Arc<T>>>,
}

/// One worker's end: its own current value and its queue of updates.
#[derive(Debug)]
pub struct WorkerSlot<T> {
    updates: Receiver<Arc<T>>,
    current: Option<Arc<T>>,
}

/// A slot for `workers` workers: the writer and one worker end each.
pub fn slot<T: Send + Sync + 'static>(workers: usize) -> (SlotWriter<T>, Vec<WorkerSlot<T>>) {
    todo!()
}

impl<T> SlotWriter<T> {
    /// Publishes `value` to every worker.
    pub fn set(&self, value: T) {
        todo!()
    }
}

impl<T> WorkerSlot<T> {
    /// Applies the updates received so far; returns how many.
    pub fn run_posted(&mut self) -> usize {
        todo!()
    }

    /// This worker's current value.
    pub fn get(&self) -> Option<&Arc<T>> {
        todo!()
    }
}
