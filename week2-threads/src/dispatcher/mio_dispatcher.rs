//! The hand-built dispatcher: `mio::Poll` + `mio::Waker` (Envoy's libevent-based
//! `DispatcherImpl`, without libevent).
//!
//! One loop iteration:
//!
//! 1. compute a poll timeout: zero if work is already queued, else until the next
//!    timer (asking the time source, which a simulated clock answers with a jump);
//! 2. `poll` for socket readiness and the waker;
//! 3. run socket callbacks, then due timers, then one batch of posted callbacks,
//!    then callbacks re-activated with [`IoHandle::activate`];
//! 4. drop everything handed to `deferred_delete` during the iteration.
//!
//! # Edge-triggered readiness
//!
//! mio registers sockets edge-triggered (`EPOLLET` on Linux, `EV_CLEAR` with
//! kqueue), as Envoy does for connections: a callback fires when a socket *becomes*
//! readable or writable, not while it *stays* so. A callback must therefore read
//! (or write) until `WouldBlock`; data left unread produces no further event until
//! more arrives. To come back later to data already buffered, either call
//! [`IoHandle::activate`] (a synthetic event next iteration, Envoy's
//! `FileEvent::activate`) or [`IoHandle::reregister`], which re-arms the socket
//! (`EPOLL_CTL_MOD`) and reports it again if it is still ready. There is no
//! level-triggered mode; `activate` is the way to emulate one.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::{Event, Source};
use mio::{Events, Interest, Poll, Registry, Token};

use super::post::{Drained, PostQueue, Wakeup};
use super::timer::{Timer, TimerQueue};
use super::{Dispatcher, DispatcherError, DispatcherHandle, RunGuard};
use crate::clock::{MonotonicClock, TimeSource};

const WAKER_TOKEN: Token = Token(usize::MAX);
const EVENTS_CAPACITY: usize = 1024;

thread_local! {
    static CURRENT: RefCell<Vec<MioDispatcher>> = const { RefCell::new(Vec::new()) };
}

/// What a socket is ready for, as reported to an I/O callback.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Data (or a pending accept) can be read.
    pub readable: bool,
    /// The socket can accept writes.
    pub writable: bool,
    /// The peer closed its writing half (read will return 0 once drained).
    pub read_closed: bool,
    /// The writing half is closed.
    pub write_closed: bool,
    /// The socket has a pending error.
    pub error: bool,
}

impl Readiness {
    /// Only `readable` set.
    pub const READABLE: Readiness = Readiness {
        readable: true,
        writable: false,
        read_closed: false,
        write_closed: false,
        error: false,
    };
    /// Only `writable` set.
    pub const WRITABLE: Readiness = Readiness {
        readable: false,
        writable: true,
        read_closed: false,
        write_closed: false,
        error: false,
    };

    fn from_event(event: &Event) -> Self {
        Self {
            readable: event.is_readable(),
            writable: event.is_writable(),
            read_closed: event.is_read_closed(),
            write_closed: event.is_write_closed(),
            error: event.is_error(),
        }
    }

    fn merge(self, other: Readiness) -> Self {
        Self {
            readable: self.readable || other.readable,
            writable: self.writable || other.writable,
            read_closed: self.read_closed || other.read_closed,
            write_closed: self.write_closed || other.write_closed,
            error: self.error || other.error,
        }
    }
}

type IoCallback = Box<dyn FnMut(Readiness)>;

struct IoEntry {
    token: Token,
    dispatcher: Weak<Inner>,
    callback: RefCell<Option<IoCallback>>,
    activated: Cell<Option<Readiness>>,
}

impl IoEntry {
    fn fire(&self, readiness: Readiness) {
        let callback = self.callback.borrow_mut().take();
        if let Some(mut callback) = callback {
            callback(readiness);
            self.callback.borrow_mut().get_or_insert(callback);
        }
    }
}

impl Drop for IoEntry {
    fn drop(&mut self) {
        if let Some(inner) = self.dispatcher.upgrade() {
            inner.io.borrow_mut().remove(&self.token);
        }
    }
}

/// A socket registration, Envoy's `FileEvent`. Owns the callback; dropping it
/// stops callbacks (closing the socket removes it from the poller).
pub struct IoHandle {
    entry: Rc<IoEntry>,
}

impl fmt::Debug for IoHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoHandle").field("token", &self.entry.token).finish()
    }
}

impl IoHandle {
    fn dispatcher(&self) -> Result<Rc<Inner>, DispatcherError> {
        self.entry
            .dispatcher
            .upgrade()
            .ok_or_else(|| DispatcherError::Closed("dropped dispatcher".to_owned()))
    }

    /// Changes the interest set and re-arms the registration: if the socket is
    /// still ready for `interest`, a new event is reported.
    pub fn reregister<S>(&self, source: &mut S, interest: Interest) -> Result<(), DispatcherError>
    where
        S: Source + ?Sized,
    {
        let inner = self.dispatcher()?;
        inner.registry.reregister(source, self.entry.token, interest)?;
        Ok(())
    }

    /// Removes `source` from the poller and drops the callback.
    pub fn deregister<S>(self, source: &mut S) -> Result<(), DispatcherError>
    where
        S: Source + ?Sized,
    {
        let inner = self.dispatcher()?;
        inner.registry.deregister(source)?;
        Ok(())
    }

    /// Delivers `readiness` to the callback in the next loop iteration, as if the
    /// poller had reported it (merged with other activations). Envoy's
    /// `FileEvent::activate`; the tool for resuming work on an edge-triggered socket.
    pub fn activate(&self, readiness: Readiness) {
        let Ok(inner) = self.dispatcher() else { return };
        let merged = self.entry.activated.get().map_or(readiness, |r| r.merge(readiness));
        if self.entry.activated.replace(Some(merged)).is_none() {
            inner.activated.borrow_mut().push(Rc::downgrade(&self.entry));
        }
    }
}

struct Inner {
    name: Arc<str>,
    poll: RefCell<Poll>,
    registry: Registry,
    events: RefCell<Events>,
    posts: PostQueue,
    timers: Rc<TimerQueue>,
    io: RefCell<HashMap<Token, Weak<IoEntry>>>,
    next_token: Cell<usize>,
    activated: RefCell<Vec<Weak<IoEntry>>>,
    deferred: RefCell<Vec<Box<dyn Any>>>,
    running: Cell<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Deferred objects are dropped on this thread, oldest first.
        let deferred = std::mem::take(self.deferred.get_mut());
        drop(deferred);
    }
}

/// The mio-based dispatcher. Cheap to clone (an `Rc`); `!Send`.
#[derive(Clone)]
pub struct MioDispatcher {
    inner: Rc<Inner>,
}

impl fmt::Debug for MioDispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MioDispatcher").field("name", &self.inner.name).finish()
    }
}

impl MioDispatcher {
    /// A dispatcher on the real monotonic clock.
    pub fn new(name: &str) -> Result<Self, DispatcherError> {
        Self::with_time_source(name, MonotonicClock)
    }

    /// A dispatcher whose timers read time from `clock` (tests pass a
    /// [`SimulatedClock`](crate::clock::SimulatedClock)).
    pub fn with_time_source(name: &str, clock: impl TimeSource) -> Result<Self, DispatcherError> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let name: Arc<str> = Arc::from(name);
        Ok(Self {
            inner: Rc::new(Inner {
                posts: PostQueue::new(name.clone(), Wakeup::Mio(waker)),
                name,
                poll: RefCell::new(poll),
                registry,
                events: RefCell::new(Events::with_capacity(EVENTS_CAPACITY)),
                timers: Rc::new(TimerQueue::new(Arc::new(clock), None)),
                io: RefCell::new(HashMap::new()),
                next_token: Cell::new(0),
                activated: RefCell::new(Vec::new()),
                deferred: RefCell::new(Vec::new()),
                running: Cell::new(false),
            }),
        })
    }

    /// Registers `source` for `interest`; `callback` runs on this thread with the
    /// readiness each time the poller reports the source (edge-triggered, see the
    /// module docs). The registration lives as long as the returned handle.
    pub fn register_io<S, F>(
        &self,
        source: &mut S,
        interest: Interest,
        callback: F,
    ) -> Result<IoHandle, DispatcherError>
    where
        S: Source + ?Sized,
        F: FnMut(Readiness) + 'static,
    {
        let token = Token(self.inner.next_token.get());
        self.inner.next_token.set(token.0 + 1);
        self.inner.registry.register(source, token, interest)?;
        let entry = Rc::new(IoEntry {
            token,
            dispatcher: Rc::downgrade(&self.inner),
            callback: RefCell::new(Some(Box::new(callback))),
            activated: Cell::new(None),
        });
        self.inner.io.borrow_mut().insert(token, Rc::downgrade(&entry));
        Ok(IoHandle { entry })
    }

    /// The mio registry, for sources that need it directly.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    fn has_immediate_work(&self) -> bool {
        self.inner.posts.has_pending()
            || self.inner.posts.exit_requested()
            || self.inner.posts.is_closed()
            || !self.inner.deferred.borrow().is_empty()
            || !self.inner.activated.borrow().is_empty()
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if self.has_immediate_work() {
            return Some(Duration::ZERO);
        }
        let deadline = self.inner.timers.next_deadline()?;
        Some(self.inner.timers.clock().block_until(deadline))
    }

    // ANCHOR: poll_io
    /// Waits for readiness (at most `timeout`) and runs the socket callbacks.
    fn poll_io(&self, timeout: Option<Duration>) -> Result<(), DispatcherError> {
        let mut ready = Vec::new();
        {
            let mut poll = self.inner.poll.borrow_mut();
            let mut events = self.inner.events.borrow_mut();
            match poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(err) => return Err(err.into()),
            }
            // Copy out the events: callbacks may register sockets while we dispatch.
            for event in events.iter().filter(|e| e.token() != WAKER_TOKEN) {
                ready.push((event.token(), Readiness::from_event(event)));
            }
        }
        for (token, readiness) in ready {
            let entry = self.inner.io.borrow().get(&token).and_then(Weak::upgrade);
            if let Some(entry) = entry {
                entry.fire(readiness);
            }
        }
        Ok(())
    }
    // ANCHOR_END: poll_io

    fn run_activated(&self) {
        let activated = std::mem::take(&mut *self.inner.activated.borrow_mut());
        for entry in activated.iter().filter_map(Weak::upgrade) {
            if let Some(readiness) = entry.activated.take() {
                entry.fire(readiness);
            }
        }
    }

    // ANCHOR: deferred_delete
    /// Drops what callbacks handed to `deferred_delete`, oldest first. Objects
    /// deferred by those destructors are dropped in the same pass.
    fn clear_deferred_delete(&self) {
        loop {
            let batch = std::mem::take(&mut *self.inner.deferred.borrow_mut());
            if batch.is_empty() {
                break;
            }
            drop(batch);
        }
    }
    // ANCHOR_END: deferred_delete
}

impl Dispatcher for MioDispatcher {
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
        self.inner.deferred.borrow_mut().push(object);
    }

    // ANCHOR: run_loop
    fn run(&self) -> Result<(), DispatcherError> {
        let _running = RunGuard::enter(&self.inner.running, &self.inner.name)?;
        let _current = CurrentGuard::push(self.clone());
        loop {
            if self.inner.posts.take_exit_request() {
                break;
            }
            self.poll_io(self.poll_timeout())?;
            self.inner.timers.run_due();
            let drained = self.inner.posts.run_batch();
            self.run_activated();
            self.clear_deferred_delete();
            if drained == Drained::ShutDown {
                break;
            }
        }
        Ok(())
    }
    // ANCHOR_END: run_loop

    fn exit(&self) {
        self.inner.posts.request_exit();
    }

    fn now(&self) -> Instant {
        self.inner.timers.clock().now()
    }
}

struct CurrentGuard;

impl CurrentGuard {
    fn push(dispatcher: MioDispatcher) -> Self {
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
