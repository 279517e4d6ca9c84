//! The dispatcher mini-envoy's workers run: a tokio current-thread runtime plus a
//! `LocalSet`, with the same semantics as [`MioDispatcher`](super::MioDispatcher).
//!
//! `run` drives one "loop task" with `block_on(local_set.run_until(..))`. The loop
//! task sleeps on a `Notify` (posts, exit, a new earliest timer) raced against
//! `tokio::time::sleep_until(next deadline)`, then runs due timers, one batch of
//! posted callbacks and the deferred-delete list, exactly like the mio loop.
//!
//! Everything else the worker does lives in *local tasks* spawned next to the loop
//! task: a connection is an ordinary `!Send` future using `tokio::net` and
//! `tokio::time`. Posted callbacks, timer callbacks and tasks all run inside the
//! runtime and the `LocalSet`, so any of them may call `tokio::task::spawn_local`,
//! [`TokioDispatcher::spawn_local`] or `tokio::runtime::Handle::current()`.
//!
//! Local tasks live until they finish or until `run` returns: the `LocalSet` is
//! per run, so exiting a worker's loop drops its connections, as Envoy does.
//! Time comes from the runtime's clock, so tests use tokio's paused time.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio::task::{JoinHandle, LocalSet};

use super::post::{Drained, PostQueue, Wakeup};
use super::timer::{Timer, TimerQueue};
use super::{Dispatcher, DispatcherError, DispatcherHandle, RunGuard};
use crate::clock::TimeSource;

thread_local! {
    static CURRENT: RefCell<Vec<TokioDispatcher>> = const { RefCell::new(Vec::new()) };
}

/// The runtime's clock (`tokio::time::Instant::now`), which honours paused time.
#[derive(Debug)]
struct TokioClock {
    handle: Handle,
}

impl TimeSource for TokioClock {
    fn now(&self) -> Instant {
        let _entered = self.handle.enter();
        tokio::time::Instant::now().into_std()
    }
}

struct Inner {
    name: Arc<str>,
    posts: PostQueue,
    timers: Rc<TimerQueue>,
    deferred: RefCell<Vec<Box<dyn Any>>>,
    running: Cell<bool>,
    /// Declared last: dropped after everything that may hold tokio resources.
    runtime: Runtime,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Deferred objects may own tokio sockets or timers: drop them in context.
        let _entered = self.runtime.enter();
        let deferred = std::mem::take(self.deferred.get_mut());
        drop(deferred);
    }
}

/// A dispatcher on a tokio current-thread runtime. Cheap to clone (an `Rc`);
/// `!Send`.
#[derive(Clone)]
pub struct TokioDispatcher {
    inner: Rc<Inner>,
}

impl fmt::Debug for TokioDispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioDispatcher").field("name", &self.inner.name).finish()
    }
}

impl TokioDispatcher {
    /// A dispatcher on a new current-thread runtime with I/O and time enabled.
    pub fn new(name: &str) -> Result<Self, DispatcherError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Self::from_runtime(name, runtime)
    }

    /// A dispatcher on a runtime the caller built, e.g. one with paused time for
    /// tests. The runtime must be current-thread and should have time enabled.
    pub fn from_runtime(name: &str, runtime: Runtime) -> Result<Self, DispatcherError> {
        if runtime.handle().runtime_flavor() != RuntimeFlavor::CurrentThread {
            return Err(DispatcherError::InvalidRuntime("the runtime must be current-thread"));
        }
        let name: Arc<str> = Arc::from(name);
        let posts = PostQueue::new(name.clone(), Wakeup::Tokio(tokio::sync::Notify::new()));
        // A timer armed earlier than the loop's current sleep must wake the loop.
        let waker = posts.handle();
        let on_new_earliest: Box<dyn Fn()> = Box::new(move || waker.wake_loop());
        let clock = Arc::new(TokioClock { handle: runtime.handle().clone() });
        Ok(Self {
            inner: Rc::new(Inner {
                name,
                posts,
                timers: Rc::new(TimerQueue::new(clock, Some(on_new_earliest))),
                deferred: RefCell::new(Vec::new()),
                running: Cell::new(false),
                runtime,
            }),
        })
    }

    /// A handle to the runtime (`Send`): for `block_on`-free code that needs to
    /// enter the runtime or spawn onto it from this thread.
    pub fn runtime_handle(&self) -> Handle {
        self.inner.runtime.handle().clone()
    }

    /// Spawns a `!Send` task on this dispatcher's `LocalSet`. Only while the loop
    /// is running (from a callback or another task); before `run`, post a callback
    /// that spawns. The task is dropped when `run` returns if it has not finished.
    pub fn spawn_local<F>(&self, future: F) -> Result<JoinHandle<F::Output>, DispatcherError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if !self.inner.running.get() {
            return Err(DispatcherError::NotRunning(self.inner.name.to_string()));
        }
        Ok(tokio::task::spawn_local(future))
    }

    fn has_immediate_work(&self, now: Instant) -> bool {
        self.inner.posts.has_pending()
            || self.inner.posts.exit_requested()
            || self.inner.posts.is_closed()
            || !self.inner.deferred.borrow().is_empty()
            || self.inner.timers.next_deadline().is_some_and(|d| d <= now)
    }

    fn clear_deferred_delete(&self) {
        loop {
            let batch = std::mem::take(&mut *self.inner.deferred.borrow_mut());
            if batch.is_empty() {
                break;
            }
            drop(batch);
        }
    }

    // ANCHOR: tokio_loop
    async fn event_loop(&self) {
        let inner = &self.inner;
        let Some(notify) = inner.posts.notify() else { return };
        loop {
            if inner.posts.take_exit_request() {
                break;
            }
            if self.has_immediate_work(inner.timers.clock().now()) {
                // Let spawned tasks run between iterations, as `poll` would.
                tokio::task::yield_now().await;
            } else {
                match inner.timers.next_deadline() {
                    Some(deadline) => {
                        let sleep = tokio::time::sleep_until(deadline.into());
                        tokio::select! {
                            biased;
                            () = notify.notified() => {}
                            () = sleep => {}
                        }
                    }
                    None => notify.notified().await,
                }
            }
            inner.timers.run_due();
            let drained = inner.posts.run_batch();
            self.clear_deferred_delete();
            if drained == Drained::ShutDown {
                break;
            }
        }
    }
    // ANCHOR_END: tokio_loop
}

impl Dispatcher for TokioDispatcher {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn handle(&self) -> DispatcherHandle {
        self.inner.posts.handle()
    }

    fn current() -> Option<Self> {
        CURRENT.with(|c| c.borrow().last().cloned())
    }

    fn post<F>(&self, callback: F) -> Result<(), DispatcherError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.inner.posts.post(Box::new(callback))
    }

    fn create_timer<F>(&self, callback: F) -> Timer
    where
        F: FnMut(&Timer) + 'static,
    {
        self.inner.timers.create(Box::new(callback))
    }

    fn deferred_delete(&self, object: Box<dyn Any>) {
        let was_empty = {
            let mut deferred = self.inner.deferred.borrow_mut();
            deferred.push(object);
            deferred.len() == 1
        };
        if was_empty && self.inner.running.get() {
            // Called from a task: make sure the loop task comes round to clear it.
            self.inner.posts.wake_loop();
        }
    }

    fn run(&self) -> Result<(), DispatcherError> {
        let _running = RunGuard::enter(&self.inner.running, &self.inner.name)?;
        let _current = CurrentGuard::push(self.clone());
        let local = LocalSet::new();
        self.inner.runtime.block_on(local.run_until(self.event_loop()));
        // Unfinished tasks are dropped here, inside the runtime's context.
        let _entered = self.inner.runtime.enter();
        drop(local);
        Ok(())
    }

    fn exit(&self) {
        self.inner.posts.request_exit();
    }

    fn now(&self) -> Instant {
        self.inner.timers.clock().now()
    }
}

struct CurrentGuard;

impl CurrentGuard {
    fn push(dispatcher: TokioDispatcher) -> Self {
        CURRENT.with(|c| c.borrow_mut().push(dispatcher));
        CurrentGuard
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let popped = CURRENT.with(|c| c.borrow_mut().pop());
        drop(popped);
    }
}
