//! The event loop: Envoy's `Event::Dispatcher`.
//!
//! Every Envoy thread (the main thread and each worker) owns exactly one
//! dispatcher and runs it until told to exit. Everything that happens on the
//! thread happens inside one of its callbacks:
//!
//! ```text
//!   other threads ──post(cb)──► post queue ──┐
//!   sockets ───readiness──────► I/O events ──┤    one loop iteration:
//!   timers ────deadline───────► timer queue ─┼──► run the ready callbacks,
//!   callbacks ─deferred_delete► delete list ─┘    then drop deferred objects
//! ```
//!
//! Two implementations share the [`Dispatcher`] trait and one conformance suite:
//!
//! * [`MioDispatcher`]: hand-built on `mio::Poll` + `mio::Waker`; the one the
//!   course reads line by line.
//! * [`TokioDispatcher`]: a tokio current-thread runtime plus a `LocalSet`; the one
//!   mini-envoy's workers run, so connection code can be ordinary `!Send` async.
//!
//! A dispatcher value is `!Send`: it lives and runs on one thread, and its timer
//! and I/O callbacks need not be `Send`. Other threads talk to it through a
//! [`DispatcherHandle`], which can only `post`, `exit` and `shutdown`.

mod mio_dispatcher;
mod post;
mod timer;
mod tokio_dispatcher;

use std::any::Any;
use std::io;
use std::time::Instant;

pub use mio_dispatcher::{IoHandle, MioDispatcher, Readiness};
pub use post::DispatcherHandle;
pub use timer::Timer;
pub use tokio_dispatcher::TokioDispatcher;

/// Errors returned by dispatchers and their handles.
#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    /// The dispatcher was shut down or dropped; the callback was not queued.
    #[error("dispatcher `{0}` is closed")]
    Closed(String),
    /// `run` was called from inside one of the dispatcher's own callbacks.
    #[error("dispatcher `{0}` is already running")]
    AlreadyRunning(String),
    /// The operation needs the loop to be running (e.g. spawning a local task).
    #[error("dispatcher `{0}` is not running")]
    NotRunning(String),
    /// The supplied runtime cannot host a dispatcher (it must be current-thread).
    #[error("invalid runtime: {0}")]
    InvalidRuntime(&'static str),
    /// The operating system failed (creating the poller, polling, registering).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

// ANCHOR: dispatcher_trait
/// Envoy's `Event::Dispatcher`: a single-threaded event loop.
///
/// Callbacks run on the thread that calls [`run`](Dispatcher::run), one at a time.
/// Implementations are cheap reference-counted handles (`Clone`), so a callback can
/// capture the dispatcher it runs on; they are `!Send` by design.
pub trait Dispatcher: Clone + 'static {
    /// The dispatcher's name (Envoy names them `main_thread`, `worker_0`, ...).
    fn name(&self) -> &str;

    /// A `Send + Sync` handle other threads use to post callbacks or stop the loop.
    fn handle(&self) -> DispatcherHandle;

    /// The dispatcher currently running on this thread, if any. Lets a callback
    /// posted from another thread (which cannot capture the `!Send` dispatcher)
    /// reach the loop it runs on, e.g. to create a timer there.
    fn current() -> Option<Self>;

    /// Queues `callback` to run on the dispatcher thread. Callbacks run in FIFO
    /// order; the same as `self.handle().post(callback)`.
    fn post<F>(&self, callback: F) -> Result<(), DispatcherError>
    where
        F: FnOnce() + Send + 'static;

    /// Creates a disabled timer whose callback runs on this dispatcher's thread.
    /// The callback receives the timer, so it can re-enable itself.
    fn create_timer<F>(&self, callback: F) -> Timer
    where
        F: FnMut(&Timer) + 'static;

    /// Keeps `object` alive until the end of the current loop iteration, then drops
    /// it on this thread. Lets a callback "delete" the object it belongs to.
    fn deferred_delete(&self, object: Box<dyn Any>);

    /// Runs the loop until [`exit`](Dispatcher::exit) (from any thread, via the
    /// handle) or [`DispatcherHandle::shutdown`].
    fn run(&self) -> Result<(), DispatcherError>;

    /// Asks the loop to return from `run` after the current iteration. Callbacks
    /// still queued stay queued for the next `run`.
    fn exit(&self);

    /// The dispatcher's notion of now (from its time source).
    fn now(&self) -> Instant;
}
// ANCHOR_END: dispatcher_trait

/// Marks a dispatcher as running for the duration of `run` and registers it as
/// the thread's current dispatcher; rejects re-entrant `run` calls.
struct RunGuard<'a> {
    running: &'a std::cell::Cell<bool>,
}

impl<'a> RunGuard<'a> {
    fn enter(running: &'a std::cell::Cell<bool>, name: &str) -> Result<Self, DispatcherError> {
        if running.replace(true) {
            return Err(DispatcherError::AlreadyRunning(name.to_owned()));
        }
        Ok(Self { running })
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.running.set(false);
    }
}
