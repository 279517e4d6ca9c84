//! Reference solution of `tls_slot`. The real slots (`week2_threads::tls`)
//! post closures through each worker's dispatcher and keep values in real
//! thread-local storage.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

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
    let (senders, ends) = (0..workers)
        .map(|_| {
            let (tx, rx) = mpsc::channel();
            (tx, WorkerSlot { updates: rx, current: None })
        })
        .unzip();
    (SlotWriter { workers: senders }, ends)
}

impl<T> SlotWriter<T> {
    /// Publishes `value` to every worker.
    pub fn set(&self, value: T) {
        let value = Arc::new(value);
        for worker in &self.workers {
            // A gone worker has nothing to update.
            let _ = worker.send(Arc::clone(&value));
        }
    }
}

impl<T> WorkerSlot<T> {
    /// Applies the updates received so far; returns how many.
    pub fn run_posted(&mut self) -> usize {
        let mut applied = 0;
        while let Ok(value) = self.updates.try_recv() {
            self.current = Some(value); // drops this worker's hold on the old value
            applied += 1;
        }
        applied
    }

    /// This worker's current value.
    pub fn get(&self) -> Option<&Arc<T>> {
        self.current.as_ref()
    }
}
