//! "Run on all threads, then tell the main thread": the completion barrier behind
//! Envoy's `runOnAllThreads(cb, all_threads_complete_cb)`.
//!
//! Envoy shares one `shared_ptr` among the per-thread callbacks and posts the
//! completion from its deleter. Here an `Arc<AllThreads>` rides along with every
//! posted callback; the last one to be dropped, whether it ran or not (its thread
//! died, it panicked), posts the completion to the main dispatcher with the number
//! of threads that did not run it. Nothing waits forever for a dead worker.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::dispatcher::DispatcherHandle;

type OnDone = Box<dyn FnOnce(usize) + Send + 'static>;

pub(crate) struct AllThreads {
    expected: usize,
    ran: AtomicUsize,
    main: DispatcherHandle,
    /// Only touched in `drop` (through `get_mut`); the mutex just makes it `Sync`.
    on_done: Mutex<Option<OnDone>>,
}

impl AllThreads {
    /// `on_done(missed)` runs on `main` once every clone is dropped.
    pub(crate) fn new(expected: usize, main: DispatcherHandle, on_done: OnDone) -> Self {
        Self { expected, ran: AtomicUsize::new(0), main, on_done: Mutex::new(Some(on_done)) }
    }

    /// Records that one thread finished its callback.
    pub(crate) fn ran_on_one(&self) {
        self.ran.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for AllThreads {
    fn drop(&mut self) {
        let missed = self.expected.saturating_sub(self.ran.load(Ordering::Acquire));
        if let Some(on_done) = self.on_done.get_mut().take()
            && let Err(err) = self.main.post(move || on_done(missed))
        {
            tracing::error!(%err, missed, "run_on_all_threads completion dropped");
        }
    }
}
