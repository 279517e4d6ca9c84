//! The cross-thread post queue and the `Send` handle to a dispatcher.
//!
//! Envoy's `Dispatcher::post` appends to a locked list and wakes the loop only when
//! the list goes from empty to non-empty. Here the list is a crossbeam channel and
//! the "only wake once" rule is a `wake_pending` flag, so a burst of posts costs one
//! wake-up (one `eventfd` write for mio, one `Notify` permit for tokio).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::RwLock;

use super::DispatcherError;

pub(crate) type PostCallback = Box<dyn FnOnce() + Send + 'static>;

/// How a poster wakes a sleeping loop.
pub(crate) enum Wakeup {
    /// `mio::Waker`: makes `Poll::poll` return.
    Mio(mio::Waker),
    /// A tokio `Notify` the loop task awaits.
    Tokio(tokio::sync::Notify),
}

struct Shared {
    name: Arc<str>,
    /// `true` once the dispatcher is shut down or dropped. Posters hold the read
    /// lock while sending, so once `shutdown` holds the write lock no post is in
    /// flight: every accepted callback is in the channel and will be drained.
    closed: RwLock<bool>,
    sender: Sender<PostCallback>,
    /// Set by the first poster after the loop last drained the queue.
    wake_pending: AtomicBool,
    exit_requested: AtomicBool,
    wakeup: Wakeup,
}

// ANCHOR: post
impl Shared {
    fn post(&self, callback: PostCallback) -> Result<(), DispatcherError> {
        {
            let closed = self.closed.read();
            if *closed {
                return Err(DispatcherError::Closed(self.name.to_string()));
            }
            // The receiver lives until `closed` is set under the write lock, so
            // sending while holding the read lock cannot fail.
            if self.sender.send(callback).is_err() {
                return Err(DispatcherError::Closed(self.name.to_string()));
            }
        }
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.wake_now();
        }
    }

    fn wake_now(&self) {
        match &self.wakeup {
            Wakeup::Mio(waker) => {
                if let Err(err) = waker.wake() {
                    tracing::error!(dispatcher = %self.name, %err, "failed to wake dispatcher");
                }
            }
            Wakeup::Tokio(notify) => notify.notify_one(),
        }
    }
}
// ANCHOR_END: post

/// A cloneable, `Send + Sync` handle to a dispatcher running on another thread.
///
/// This is all other threads ever see of a dispatcher: they can queue callbacks
/// and ask the loop to stop. Cloning is an `Arc` clone.
#[derive(Clone)]
pub struct DispatcherHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for DispatcherHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatcherHandle")
            .field("name", &self.shared.name)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl DispatcherHandle {
    /// The dispatcher's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Queues `callback` to run on the dispatcher's thread, after every callback
    /// posted before it (FIFO). Fails with [`DispatcherError::Closed`] once the
    /// dispatcher has been shut down or dropped.
    ///
    /// `Ok` means "queued": a dispatcher that is dropped without running again
    /// drops (does not run) what is still queued.
    pub fn post<F>(&self, callback: F) -> Result<(), DispatcherError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared.post(Box::new(callback))
    }

    /// Asks the loop to return from `run` after its current iteration. Callable
    /// from any thread; if the loop is not running, the next `run` returns at once.
    pub fn exit(&self) {
        self.shared.exit_requested.store(true, Ordering::Release);
        self.shared.wake_now();
    }

    /// Stops accepting posts, runs every callback already posted, then makes `run`
    /// return. Permanent: later posts fail with [`DispatcherError::Closed`].
    pub fn shutdown(&self) {
        *self.shared.closed.write() = true;
        self.shared.wake_now();
    }

    /// Whether the dispatcher was shut down or dropped.
    pub fn is_closed(&self) -> bool {
        *self.shared.closed.read()
    }

    /// Wakes the loop so it runs an iteration (local state changed).
    pub(crate) fn wake_loop(&self) {
        self.shared.wake_now();
    }

    /// Whether both handles point at the same dispatcher.
    pub fn same_dispatcher(&self, other: &DispatcherHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// What the loop should do after draining a batch of posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// Keep looping.
    Open,
    /// The dispatcher was shut down and its queue is now empty: leave `run`.
    ShutDown,
}

/// The dispatcher-side end of the post queue. Dropping it closes the handle and
/// drops any callbacks still queued, on the dispatcher's own thread.
pub(crate) struct PostQueue {
    shared: Arc<Shared>,
    receiver: Receiver<PostCallback>,
}

impl PostQueue {
    pub(crate) fn new(name: Arc<str>, wakeup: Wakeup) -> Self {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            name,
            closed: RwLock::new(false),
            sender,
            wake_pending: AtomicBool::new(false),
            exit_requested: AtomicBool::new(false),
            wakeup,
        });
        Self { shared, receiver }
    }

    pub(crate) fn handle(&self) -> DispatcherHandle {
        DispatcherHandle { shared: self.shared.clone() }
    }

    /// `DispatcherHandle::post` without cloning the handle.
    pub(crate) fn post(&self, callback: PostCallback) -> Result<(), DispatcherError> {
        self.shared.post(callback)
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.receiver.is_empty()
    }

    /// Wakes the loop without going through the post path (local state changed).
    pub(crate) fn wake_loop(&self) {
        self.shared.wake_now();
    }

    /// The tokio loop awaits this between iterations.
    pub(crate) fn notify(&self) -> Option<&tokio::sync::Notify> {
        match &self.shared.wakeup {
            Wakeup::Tokio(notify) => Some(notify),
            Wakeup::Mio(_) => None,
        }
    }

    pub(crate) fn exit_requested(&self) -> bool {
        self.shared.exit_requested.load(Ordering::Acquire)
    }

    /// Consumes a pending exit request; returns whether there was one.
    pub(crate) fn take_exit_request(&self) -> bool {
        self.shared.exit_requested.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn request_exit(&self) {
        self.shared.exit_requested.store(true, Ordering::Release);
        self.shared.wake_now();
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.shared.closed.read()
    }

    // ANCHOR: run_posted
    /// Runs the callbacks that were queued when the batch started, in FIFO order.
    /// Callbacks posted by these callbacks run in the next iteration, so a callback
    /// that re-posts itself cannot starve timers and I/O.
    pub(crate) fn run_batch(&self) -> Drained {
        // Re-arm the wake-up before looking at the queue: a post that lands after
        // this line either is seen below or wakes the loop again.
        self.shared.wake_pending.swap(false, Ordering::AcqRel);
        if self.is_closed() {
            // Shut down: no new posts can arrive, run everything that is left.
            while let Ok(callback) = self.receiver.try_recv() {
                callback();
            }
            return Drained::ShutDown;
        }
        for _ in 0..self.receiver.len() {
            match self.receiver.try_recv() {
                Ok(callback) => callback(),
                Err(_) => break,
            }
        }
        Drained::Open
    }
    // ANCHOR_END: run_posted
}

impl Drop for PostQueue {
    fn drop(&mut self) {
        *self.shared.closed.write() = true;
        // Drop (never run) whatever is still queued, here on the owning thread.
        while let Ok(callback) = self.receiver.try_recv() {
            drop(callback);
        }
    }
}
