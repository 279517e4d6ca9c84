//! Thread-local slots: Envoy's `ThreadLocal::Instance` and `SlotAllocator`.
//!
//! This is how configuration reaches workers without locks. The main thread owns
//! the [`Instance`] and allocates typed [`Slot`]s. Writing a slot never touches a
//! worker's memory directly: [`Slot::set`] and [`Slot::update`] *post* a callback to
//! every registered worker dispatcher (and run it at once on the main thread), and
//! each thread stores its own value in real thread-local storage:
//!
//! ```text
//!   main: slot.set(|| Arc::new(routes_v2))
//!     ├─ runs now on main ───────────► main's TLS[slot] = v2
//!     ├─ post ─► worker-0 queue ─────► worker-0's TLS[slot] = v2   (drops its v1)
//!     └─ post ─► worker-1 queue ─────► worker-1's TLS[slot] = v2   (drops its v1)
//!   worker-1, any time: slot.get()  ─► its own TLS[slot]: no lock, no atomic RMW
//! ```
//!
//! # Guarantees (as Envoy states them)
//!
//! * Reads never block: `get` reads the calling thread's own storage; there is no
//!   mutex and no atomic read-modify-write on the read path.
//! * Each worker sees updates in the order the main thread made them: they travel
//!   through the worker's FIFO post queue.
//! * Workers may briefly disagree: each moves to a new value when its loop reaches
//!   the posted update, not all at the same instant. Use the `*_with_completion`
//!   variants to learn when every thread has moved.
//!
//! Old values are dropped by each thread when it moves off them, so a value shared
//! between threads (an `Arc` captured by the initializer) is freed only after the
//! last thread has switched. Freeing a slot is itself posted to every thread, and a
//! freed slot's handles return [`TlsError::Freed`].

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, ThreadId};

use parking_lot::{Mutex, RwLock};

use crate::completion::AllThreads;
use crate::dispatcher::DispatcherHandle;

/// Errors from thread-local slots.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The slot was freed.
    #[error("thread-local slot {0} was freed")]
    Freed(u32),
    /// This thread has no value for the slot (not set yet, or the update has not
    /// reached this thread, or the thread is not registered).
    #[error("thread-local slot {0} has no value on this thread")]
    NotSet(u32),
    /// The operation must run on the thread that created the [`Instance`].
    #[error("thread-local slots can only be changed from the main thread")]
    NotMainThread,
    /// `shutdown_global_threading` was called.
    #[error("thread-local instance is shut down")]
    ShutDown,
    /// Threads must be registered before the first slot is allocated.
    #[error("threads must be registered before slots are allocated")]
    RegisterAfterAllocate,
    /// The thread is exiting and its storage is gone.
    #[error("thread-local storage is being destroyed on this thread")]
    ThreadExiting,
    /// Some threads did not run the operation (their dispatcher was stopped).
    #[error("update did not reach {missed} thread(s)")]
    Incomplete {
        /// How many threads it missed.
        missed: usize,
    },
}

// ANCHOR: storage
struct Entry {
    /// Which allocation of this index the value belongs to; 0 means empty.
    generation: u64,
    value: Option<Rc<dyn Any>>,
}

thread_local! {
    /// This thread's values, indexed by slot index. Only this thread touches it.
    static SLOTS: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}
// ANCHOR_END: storage

/// Slot indices are process-wide, so several `Instance`s (e.g. parallel tests)
/// never collide in one thread's storage; generations make reuse safe.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);
static FREE_INDICES: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static NEXT_INDEX: Mutex<u32> = Mutex::new(0);

fn allocate_index() -> u32 {
    if let Some(index) = FREE_INDICES.lock().pop() {
        return index;
    }
    let mut next = NEXT_INDEX.lock();
    let index = *next;
    *next += 1;
    index
}

/// Stores `value` for (index, generation) on the current thread. The replaced
/// value is dropped after the storage borrow ends (its destructor may use slots).
fn store(index: u32, generation: u64, value: Rc<dyn Any>) {
    let old = SLOTS.try_with(|slots| {
        let mut slots = slots.borrow_mut();
        let i = index as usize;
        if slots.len() <= i {
            slots.resize_with(i + 1, || Entry { generation: 0, value: None });
        }
        std::mem::replace(&mut slots[i], Entry { generation, value: Some(value) })
    });
    drop(old);
}

fn load(index: u32, generation: u64) -> Result<Option<Rc<dyn Any>>, TlsError> {
    SLOTS
        .try_with(|slots| match slots.borrow().get(index as usize) {
            Some(entry) if entry.generation == generation => entry.value.clone(),
            _ => None,
        })
        .map_err(|_| TlsError::ThreadExiting)
}

// ANCHOR: typed
/// The stored value as the `T` it was created as, without a run-time type check.
///
/// Envoy's `TypedSlot<T>::get` does the same with a `static_cast`. It is sound
/// because an entry's generation names its owner: generations are unique per
/// allocation (a global counter, never reused), every clone of a `Slot<T>` with
/// that generation has the same `T`, and only [`Slot::set`] and [`Slot::update`]
/// store under it, always an `Rc<T>`; [`Slot::lookup`] hands an entry here only
/// after matching the slot's generation. Checking the `TypeId` instead
/// (`downcast_ref`) costs a virtual call per read, about a sixth of `get`'s time.
/// Debug builds (and so the tests) check it anyway.
#[inline(always)]
#[allow(unsafe_code)]
fn typed<T: 'static>(value: &Rc<dyn Any>) -> &T {
    debug_assert!(value.is::<T>(), "slot entry of another type: generation invariant broken");
    // Dropping the vtable half of the fat pointer leaves the address of the `T`.
    let data = Rc::as_ptr(value) as *const T;
    // SAFETY: `data` points to a live `T` (the invariant above) owned by `value`,
    // which outlives the returned borrow.
    unsafe { &*data }
}

/// [`typed`], as a new strong reference (what `Rc::downcast` returns after its check).
#[inline(always)]
#[allow(unsafe_code)]
fn typed_rc<T: 'static>(value: &Rc<dyn Any>) -> Rc<T> {
    debug_assert!(value.is::<T>(), "slot entry of another type: generation invariant broken");
    let data = Rc::as_ptr(value) as *const T;
    // SAFETY: `data` is the data pointer of an `Rc` whose value is a `T`, which is
    // what `from_raw` requires of an unsized `Rc<dyn Any>`; the count is raised
    // first, so the new `Rc<T>` owns its own strong reference.
    unsafe {
        Rc::increment_strong_count(data);
        Rc::from_raw(data)
    }
}
// ANCHOR_END: typed

fn remove(index: u32, generation: u64) {
    let old = SLOTS.try_with(|slots| {
        let mut slots = slots.borrow_mut();
        match slots.get_mut(index as usize) {
            Some(entry) if entry.generation == generation => {
                Some(std::mem::replace(entry, Entry { generation: 0, value: None }))
            }
            _ => None,
        }
    });
    drop(old);
}

type ThreadOp = Arc<dyn Fn() + Send + Sync + 'static>;

struct InstanceShared {
    main_thread: ThreadId,
    main: DispatcherHandle,
    workers: RwLock<Vec<DispatcherHandle>>,
    slots_allocated: AtomicBool,
    shut_down: AtomicBool,
}

impl InstanceShared {
    fn on_main_thread(&self) -> bool {
        thread::current().id() == self.main_thread
    }

    // ANCHOR: tls_run_on_all_threads
    /// Runs `op` on every worker (posted) and on the main thread (directly when
    /// called there, posted otherwise); `on_done(missed)` then runs on main.
    fn run_on_all_threads(&self, op: ThreadOp, on_done: Box<dyn FnOnce(usize) + Send>) {
        let workers = self.workers.read().clone();
        let barrier = Arc::new(AllThreads::new(workers.len() + 1, self.main.clone(), on_done));
        for worker in &workers {
            let (op, barrier) = (op.clone(), barrier.clone());
            // A stopped worker's storage is gone with its thread: nothing to update,
            // and the barrier counts it as missed.
            let _ = worker.post(move || {
                op();
                barrier.ran_on_one();
            });
        }
        if self.on_main_thread() {
            op();
            barrier.ran_on_one();
        } else {
            let _ = self.main.post(move || {
                op();
                barrier.ran_on_one();
            });
        }
    }
    // ANCHOR_END: tls_run_on_all_threads
}

/// The main thread's thread-local registry (Envoy's `ThreadLocal::InstanceImpl`).
///
/// Create it on the main thread with the main dispatcher's handle, register every
/// worker's handle, then allocate slots. Cloning gives another handle to the same
/// registry (slots keep it alive as long as they need it).
#[derive(Clone)]
pub struct Instance {
    shared: Arc<InstanceShared>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance").field("workers", &self.shared.workers.read().len()).finish()
    }
}

impl Instance {
    /// A registry whose main thread is the calling thread, running `main`.
    pub fn new(main: DispatcherHandle) -> Self {
        Self {
            shared: Arc::new(InstanceShared {
                main_thread: thread::current().id(),
                main,
                workers: RwLock::new(Vec::new()),
                slots_allocated: AtomicBool::new(false),
                shut_down: AtomicBool::new(false),
            }),
        }
    }

    /// Registers a worker's dispatcher. All workers must be registered before the
    /// first slot is allocated, so every slot reaches every thread.
    pub fn register_thread(&self, worker: DispatcherHandle) -> Result<(), TlsError> {
        self.check_main()?;
        if self.shared.slots_allocated.load(Ordering::Acquire) {
            return Err(TlsError::RegisterAfterAllocate);
        }
        self.shared.workers.write().push(worker);
        Ok(())
    }

    /// Allocates a slot holding a `T` on each thread. The slot starts empty.
    pub fn allocate_slot<T: 'static>(&self) -> Result<Slot<T>, TlsError> {
        self.check_main()?;
        self.shared.slots_allocated.store(true, Ordering::Release);
        let index = allocate_index();
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(SlotState {
            index,
            generation,
            instance: self.shared.clone(),
            freed: AtomicBool::new(false),
        });
        Ok(Slot { index, generation, state, _type: PhantomData })
    }

    /// Runs `callback` on every registered worker and on the main thread, then
    /// `completion` on the main thread (Envoy's `ThreadLocal::Instance::runOnAllThreads`).
    pub fn run_on_all_threads<F, C>(&self, callback: F, completion: C) -> Result<(), TlsError>
    where
        F: Fn() + Send + Sync + 'static,
        C: FnOnce(Result<(), TlsError>) + Send + 'static,
    {
        self.check_main()?;
        self.shared.run_on_all_threads(Arc::new(callback), completion_for(completion));
        Ok(())
    }

    /// Envoy's `shutdownGlobalThreading`: later `set`/`update` calls fail with
    /// [`TlsError::ShutDown`]. Values already stored are dropped with their threads
    /// or when their slots are freed.
    pub fn shutdown_global_threading(&self) {
        self.shared.shut_down.store(true, Ordering::Release);
    }

    fn check_main(&self) -> Result<(), TlsError> {
        if !self.shared.on_main_thread() {
            return Err(TlsError::NotMainThread);
        }
        if self.shared.shut_down.load(Ordering::Acquire) {
            return Err(TlsError::ShutDown);
        }
        Ok(())
    }
}

fn completion_for<C>(completion: C) -> Box<dyn FnOnce(usize) + Send>
where
    C: FnOnce(Result<(), TlsError>) + Send + 'static,
{
    Box::new(move |missed| {
        completion(if missed == 0 { Ok(()) } else { Err(TlsError::Incomplete { missed }) })
    })
}

struct SlotState {
    index: u32,
    generation: u64,
    instance: Arc<InstanceShared>,
    freed: AtomicBool,
}

impl SlotState {
    // ANCHOR: free_slot
    /// Posts the removal to every thread; the index is reused only after every
    /// thread has dropped its value (so no late `set` can land on a new owner).
    fn free(&self) {
        if self.freed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (index, generation) = (self.index, self.generation);
        self.instance.run_on_all_threads(
            Arc::new(move || remove(index, generation)),
            Box::new(move |_missed| FREE_INDICES.lock().push(index)),
        );
    }
    // ANCHOR_END: free_slot
}

impl Drop for SlotState {
    fn drop(&mut self) {
        self.free();
    }
}

/// A typed thread-local slot (Envoy's `TypedSlot<T>`).
///
/// Cheap to clone and `Send + Sync` whatever `T` is: each thread owns its own `T`,
/// built on that thread. The slot is freed when [`free`](Slot::free) is called or
/// the last clone is dropped, after which every clone returns [`TlsError::Freed`].
pub struct Slot<T> {
    index: u32,
    generation: u64,
    state: Arc<SlotState>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Self {
            index: self.index,
            generation: self.generation,
            state: self.state.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("index", &self.index)
            .field("generation", &self.generation)
            .finish()
    }
}

impl<T: 'static> Slot<T> {
    // ANCHOR: slot_get
    /// This thread's current value. Lock-free: a thread-local lookup, a generation
    /// check and a non-atomic `Rc` clone; never blocks, never touches another thread.
    #[inline]
    pub fn get(&self) -> Result<Rc<T>, TlsError> {
        self.lookup(typed_rc::<T>)
    }

    /// Calls `f` with this thread's current value, without cloning the `Rc`: the
    /// cheapest read (a thread-local lookup and a generation check).
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Result<R, TlsError> {
        self.lookup(|value| f(typed::<T>(value)))
    }

    #[inline]
    fn lookup<R>(&self, read: impl FnOnce(&Rc<dyn Any>) -> R) -> Result<R, TlsError> {
        let found = SLOTS.try_with(|slots| match slots.borrow().get(self.index as usize) {
            Some(Entry { generation, value: Some(value) }) if *generation == self.generation => {
                Some(read(value))
            }
            _ => None,
        });
        match found {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(self.missing()),
            Err(_) => Err(TlsError::ThreadExiting),
        }
    }
    // ANCHOR_END: slot_get

    #[cold]
    fn missing(&self) -> TlsError {
        if self.state.freed.load(Ordering::Acquire) {
            TlsError::Freed(self.index)
        } else {
            TlsError::NotSet(self.index)
        }
    }

    // ANCHOR: slot_set
    /// Sets every thread's value to a fresh `init()`, built on that thread: now on
    /// the main thread, and on each worker when its loop reaches the posted update.
    pub fn set<F>(&self, init: F) -> Result<(), TlsError>
    where
        F: Fn() -> T + Send + Sync + 'static,
    {
        self.set_with_completion(init, |_| {})
    }

    /// [`set`](Slot::set), then `completion` on the main thread once every thread
    /// has its new value (and has dropped its old one).
    pub fn set_with_completion<F, C>(&self, init: F, completion: C) -> Result<(), TlsError>
    where
        F: Fn() -> T + Send + Sync + 'static,
        C: FnOnce(Result<(), TlsError>) + Send + 'static,
    {
        self.check_writable()?;
        let (index, generation) = (self.index, self.generation);
        // The op keeps the slot alive until it ran everywhere, so it is never
        // freed (and its index reused) while an update is in flight.
        let state = self.state.clone();
        let op = move || {
            let _alive = &state;
            store(index, generation, Rc::new(init()));
        };
        self.state.instance.run_on_all_threads(Arc::new(op), completion_for(completion));
        Ok(())
    }

    /// Replaces every thread's value with `f(&current)`, on each thread. Threads
    /// without a value are left alone (Envoy passes them an empty `OptRef`).
    pub fn update<F>(&self, f: F) -> Result<(), TlsError>
    where
        F: Fn(&T) -> T + Send + Sync + 'static,
    {
        self.update_with_completion(f, |_| {})
    }

    /// [`update`](Slot::update), then `completion` on the main thread once every
    /// thread has run it.
    pub fn update_with_completion<F, C>(&self, f: F, completion: C) -> Result<(), TlsError>
    where
        F: Fn(&T) -> T + Send + Sync + 'static,
        C: FnOnce(Result<(), TlsError>) + Send + 'static,
    {
        self.check_writable()?;
        let (index, generation) = (self.index, self.generation);
        let state = self.state.clone();
        let op = move || {
            let _alive = &state;
            let current = load(index, generation).ok().flatten();
            if let Some(current) = current.and_then(|v| v.downcast::<T>().ok()) {
                let next = f(&current);
                drop(current);
                store(index, generation, Rc::new(next));
            }
        };
        self.state.instance.run_on_all_threads(Arc::new(op), completion_for(completion));
        Ok(())
    }
    // ANCHOR_END: slot_set

    /// Frees the slot on every thread (posted, like an update). Other clones of this
    /// slot return [`TlsError::Freed`] from then on.
    pub fn free(self) -> Result<(), TlsError> {
        if !self.state.instance.on_main_thread() {
            return Err(TlsError::NotMainThread);
        }
        if self.state.freed.load(Ordering::Acquire) {
            return Err(TlsError::Freed(self.index));
        }
        self.state.free();
        Ok(())
    }

    /// The slot's index in every thread's storage (appears in error values).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Whether the slot was freed.
    pub fn is_freed(&self) -> bool {
        self.state.freed.load(Ordering::Acquire)
    }

    fn check_writable(&self) -> Result<(), TlsError> {
        if self.state.freed.load(Ordering::Acquire) {
            return Err(TlsError::Freed(self.index));
        }
        if !self.state.instance.on_main_thread() {
            return Err(TlsError::NotMainThread);
        }
        if self.state.instance.shut_down.load(Ordering::Acquire) {
            return Err(TlsError::ShutDown);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The unchecked typed reads on the main thread alone (no workers), small
    //! enough for Miri: `cargo +nightly miri test -p week2-threads --lib tls::`.

    use super::*;
    use crate::dispatcher::{Dispatcher, MioDispatcher};

    /// Counts its drops.
    struct Counted(Vec<u64>, Arc<AtomicU64>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn typed_reads_see_their_own_values_across_index_reuse() {
        let main = MioDispatcher::new("main_thread").unwrap();
        let tls = Instance::new(main.handle());
        let words = tls.allocate_slot::<&'static str>().unwrap();
        words.set(|| "a").unwrap();
        assert_eq!(words.with(|w| w.len()), Ok(1));
        let stale_generation = words.generation;
        words.free().unwrap(); // runs on this (the main) thread at once

        let numbers = tls.allocate_slot::<Vec<u64>>().unwrap();
        assert_ne!(numbers.generation, stale_generation);
        assert_eq!(numbers.get(), Err(TlsError::NotSet(numbers.index())));
        numbers.set(|| vec![1, 2, 3]).unwrap();
        let held = numbers.get().unwrap();
        numbers.update(|v| v.iter().map(|n| n * 10).collect()).unwrap();
        assert_eq!(*held, [1, 2, 3], "a reader's Rc outlives the update");
        assert_eq!(numbers.with(|v| v.iter().sum::<u64>()), Ok(60));
        assert_eq!(Rc::strong_count(&held), 1);
        drop(held);
        numbers.free().unwrap();
    }

    #[test]
    fn every_value_is_dropped_exactly_once() {
        let main = MioDispatcher::new("main_thread").unwrap();
        let tls = Instance::new(main.handle());
        let drops = Arc::new(AtomicU64::new(0));
        let slot = tls.allocate_slot::<Counted>().unwrap();
        let d = drops.clone();
        slot.set(move || Counted(vec![1], d.clone())).unwrap();
        let reader = slot.get().unwrap();
        let d = drops.clone();
        slot.set(move || Counted(vec![2], d.clone())).unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 0, "a reader still holds the first value");
        assert_eq!(reader.0, [1]);
        drop(reader);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(slot.with(|c| c.0[0]), Ok(2));
        slot.free().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }
}
