//! Worker threads and the main thread's view of them: Envoy's `Server::Worker`
//! (`WorkerImpl`) plus the main thread's `runOnAllThreads`.
//!
//! A [`WorkerPool`] starts N named OS threads (`worker-0`, `worker-1`, ...). Each
//! builds its own dispatcher *on its own thread* (dispatchers are `!Send`), runs it,
//! and is reached only through its [`DispatcherHandle`]:
//!
//! ```text
//!   main thread                         worker-i thread
//!   ───────────                         ───────────────
//!   pool.post(i, f) ───post queue────►  f() runs in worker-i's loop
//!   pool.run_on_all_threads(f, done)──► f() on every worker ─┐
//!   main dispatcher ◄──── post(done) ── last one to finish ──┘
//!   pool.stop() ───── shutdown ───────► run what is queued, exit, thread ends
//!                 ◄──── join ─────────
//! ```
//!
//! A panic on a worker is caught at the top of its thread, logged with the worker's
//! name and recorded for the main thread ([`WorkerPool::failures`], and the result of
//! [`WorkerPool::stop`]); the worker's queue closes, so later posts to it fail with
//! [`WorkerError::Stopped`] instead of vanishing.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

use parking_lot::Mutex;

use crate::completion::AllThreads;
use crate::dispatcher::{
    Dispatcher, DispatcherError, DispatcherHandle, MioDispatcher, TokioDispatcher,
};

/// How many workers to start and how.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Number of worker threads (Envoy's `--concurrency`).
    pub count: usize,
    /// Thread names are `{name_prefix}-{index}`.
    pub name_prefix: String,
    /// Pin worker `i` to CPU `i % cpus`. Off by default; failures are logged.
    pub pin_to_cpus: bool,
}

impl WorkerConfig {
    /// `count` unpinned workers named `worker-0..`.
    pub fn new(count: usize) -> Self {
        Self { count, name_prefix: "worker".to_owned(), pin_to_cpus: false }
    }
}

impl Default for WorkerConfig {
    /// One worker per available CPU, as Envoy's default concurrency.
    fn default() -> Self {
        Self::new(thread::available_parallelism().map_or(1, usize::from))
    }
}

/// What a dispatcher factory is told about the worker it builds for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// 0-based worker index.
    pub index: usize,
    /// The thread name, e.g. `worker-3`.
    pub name: String,
}

/// A worker that died: its name and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerFailure {
    /// The worker's thread name.
    pub worker: String,
    /// The panic message or error.
    pub message: String,
}

impl fmt::Display for WorkerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.worker, self.message)
    }
}

/// Errors from the worker pool.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// There is no worker with that index.
    #[error("no worker {index} (the pool has {count})")]
    NoSuchWorker {
        /// The requested index.
        index: usize,
        /// How many workers there are.
        count: usize,
    },
    /// The worker was stopped (or died); the callback was not queued.
    #[error("worker {worker} is stopped")]
    Stopped {
        /// The worker's name.
        worker: String,
    },
    /// The OS refused to create the thread.
    #[error("cannot spawn thread {worker}: {source}")]
    Spawn {
        /// The worker's name.
        worker: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The worker's thread started but its loop never ran.
    #[error("worker {worker} failed to start: {reason}")]
    StartFailed {
        /// The worker's name.
        worker: String,
        /// Why.
        reason: String,
    },
    /// A `run_on_all_threads` callback did not run on some workers (they were
    /// stopped, died, or the callback panicked).
    #[error("callback did not complete on {missed} worker(s)")]
    Incomplete {
        /// How many workers did not run it.
        missed: usize,
    },
    /// One or more workers failed during their lifetime.
    #[error("{} worker(s) failed, first: {}", failures.len(), failures.first().map(ToString::to_string).unwrap_or_default())]
    Failed {
        /// Every failure, in the order they happened.
        failures: Vec<WorkerFailure>,
    },
}

struct WorkerThread {
    name: String,
    handle: DispatcherHandle,
    thread: Option<thread::JoinHandle<()>>,
}

/// The main thread's handle on its workers.
pub struct WorkerPool {
    workers: Vec<WorkerThread>,
    main: DispatcherHandle,
    failures: Arc<Mutex<Vec<WorkerFailure>>>,
    stopped: bool,
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("workers", &self.workers.iter().map(|w| &w.name).collect::<Vec<_>>())
            .field("stopped", &self.stopped)
            .finish()
    }
}

type Ready = Result<DispatcherHandle, String>;

impl WorkerPool {
    /// Starts `config.count` workers running tokio dispatchers (mini-envoy's choice).
    /// `main` is the main thread's dispatcher, where completions are posted.
    pub fn start_tokio(config: &WorkerConfig, main: DispatcherHandle) -> Result<Self, WorkerError> {
        Self::start(config, main, |info| TokioDispatcher::new(&info.name))
    }

    /// Starts `config.count` workers running mio dispatchers.
    pub fn start_mio(config: &WorkerConfig, main: DispatcherHandle) -> Result<Self, WorkerError> {
        Self::start(config, main, |info| MioDispatcher::new(&info.name))
    }

    // ANCHOR: worker_start
    /// Starts the workers; `factory` builds each worker's dispatcher on the worker's
    /// own thread. Returns once every worker's loop is running (each signals from
    /// inside its first loop iteration). If any worker fails to start, the others are
    /// stopped and joined before the error is returned.
    pub fn start<D, F>(
        config: &WorkerConfig,
        main: DispatcherHandle,
        factory: F,
    ) -> Result<Self, WorkerError>
    where
        D: Dispatcher,
        F: Fn(&WorkerInfo) -> Result<D, DispatcherError> + Send + Sync + 'static,
    {
        let factory = Arc::new(factory);
        let failures = Arc::new(Mutex::new(Vec::new()));
        let cores = if config.pin_to_cpus { core_ids() } else { Vec::new() };
        let mut spawned = Vec::with_capacity(config.count);
        let mut error = None;
        for index in 0..config.count {
            let info = WorkerInfo { index, name: format!("{}-{index}", config.name_prefix) };
            let name = info.name.clone();
            let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<Ready>();
            let core = (!cores.is_empty()).then(|| cores[index % cores.len()]);
            let factory = factory.clone();
            let thread_failures = failures.clone();
            let spawn = thread::Builder::new().name(name.clone()).spawn(move || {
                worker_main(info, &*factory, core, &ready_tx, &thread_failures);
            });
            match spawn {
                Ok(thread) => spawned.push((name, thread, ready_rx)),
                Err(source) => {
                    error = Some(WorkerError::Spawn { worker: name, source });
                    break;
                }
            }
        }

        let mut workers = Vec::with_capacity(spawned.len());
        let mut orphans = Vec::new();
        for (name, thread, ready_rx) in spawned {
            // Never hangs: the thread either signals from its running loop, or
            // reports a failure, or exits (dropping the sender).
            match ready_rx.recv() {
                Ok(Ok(handle)) => workers.push(WorkerThread { name, handle, thread: Some(thread) }),
                Ok(Err(reason)) => {
                    error.get_or_insert(WorkerError::StartFailed { worker: name, reason });
                    orphans.push(thread);
                }
                Err(_) => {
                    let reason = "thread exited before its loop started".to_owned();
                    error.get_or_insert(WorkerError::StartFailed { worker: name, reason });
                    orphans.push(thread);
                }
            }
        }
        let mut pool = Self { workers, main, failures, stopped: false };
        if let Some(error) = error {
            for orphan in orphans {
                let _ = orphan.join();
            }
            let _ = pool.stop();
            return Err(error);
        }
        Ok(pool)
    }
    // ANCHOR_END: worker_start

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether the pool has no workers.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Worker names, in index order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.workers.iter().map(|w| w.name.as_str())
    }

    /// The handle of worker `index`.
    pub fn handle(&self, index: usize) -> Option<&DispatcherHandle> {
        self.workers.get(index).map(|w| &w.handle)
    }

    /// Handles of every worker, in index order (e.g. to register with
    /// [`tls::Instance`](crate::tls::Instance)).
    pub fn handles(&self) -> Vec<DispatcherHandle> {
        self.workers.iter().map(|w| w.handle.clone()).collect()
    }

    /// Queues `callback` on worker `index`. A callback can reach the worker's
    /// dispatcher with [`Dispatcher::current`].
    pub fn post<F>(&self, index: usize, callback: F) -> Result<(), WorkerError>
    where
        F: FnOnce() + Send + 'static,
    {
        let worker = self
            .workers
            .get(index)
            .ok_or(WorkerError::NoSuchWorker { index, count: self.workers.len() })?;
        worker
            .handle
            .post(callback)
            .map_err(|_| WorkerError::Stopped { worker: worker.name.clone() })
    }

    /// Queues `callback` on every worker. Posts to every live worker even if some
    /// are stopped, then reports the first stopped one.
    pub fn post_to_all<F>(&self, callback: F) -> Result<(), WorkerError>
    where
        F: Fn() + Send + Sync + 'static,
    {
        let callback = Arc::new(callback);
        let mut first_error = None;
        for worker in &self.workers {
            let callback = callback.clone();
            if worker.handle.post(move || callback()).is_err() {
                first_error.get_or_insert(WorkerError::Stopped { worker: worker.name.clone() });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    // ANCHOR: run_on_all_threads
    /// Envoy's `runOnAllThreads(cb, complete_cb)`: runs `callback` on every worker,
    /// then `completion` on the main dispatcher once all of them have.
    ///
    /// `completion` always runs exactly once (nothing waits forever on a dead
    /// worker): with `Ok(())` if every worker ran `callback`, otherwise with
    /// [`WorkerError::Incomplete`]. The return value reports workers that were
    /// already stopped when posting.
    pub fn run_on_all_threads<F, C>(&self, callback: F, completion: C) -> Result<(), WorkerError>
    where
        F: Fn() + Send + Sync + 'static,
        C: FnOnce(Result<(), WorkerError>) + Send + 'static,
    {
        let callback = Arc::new(callback);
        let barrier = Arc::new(AllThreads::new(
            self.workers.len(),
            self.main.clone(),
            Box::new(move |missed| {
                completion(if missed == 0 {
                    Ok(())
                } else {
                    Err(WorkerError::Incomplete { missed })
                })
            }),
        ));
        let mut first_error = None;
        for worker in &self.workers {
            let (callback, barrier) = (callback.clone(), barrier.clone());
            let posted = worker.handle.post(move || {
                callback();
                barrier.ran_on_one();
            });
            if posted.is_err() {
                first_error.get_or_insert(WorkerError::Stopped { worker: worker.name.clone() });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
    // ANCHOR_END: run_on_all_threads

    /// Failures (panics, loop errors) reported by workers so far.
    pub fn failures(&self) -> Vec<WorkerFailure> {
        self.failures.lock().clone()
    }

    // ANCHOR: worker_stop
    /// Stops every worker: each rejects new posts, runs what is already queued,
    /// leaves its loop and its thread ends; then all threads are joined. Returns
    /// [`WorkerError::Failed`] if any worker failed during its life. Idempotent.
    pub fn stop(&mut self) -> Result<(), WorkerError> {
        self.stopped = true;
        for worker in &self.workers {
            worker.handle.shutdown();
        }
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take()
                && thread.join().is_err()
            {
                // worker_main catches panics, so this is a panic while reporting one.
                self.failures.lock().push(WorkerFailure {
                    worker: worker.name.clone(),
                    message: "thread panicked outside its loop".to_owned(),
                });
            }
        }
        let failures = self.failures();
        if failures.is_empty() { Ok(()) } else { Err(WorkerError::Failed { failures }) }
    }
    // ANCHOR_END: worker_stop
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        if !self.stopped
            && let Err(err) = self.stop()
        {
            tracing::error!(%err, "worker pool dropped with failed workers");
        }
    }
}

fn core_ids() -> Vec<core_affinity::CoreId> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.is_empty() {
        tracing::warn!("CPU pinning requested but the CPU list is unavailable; not pinning");
    }
    cores
}

/// The body of a worker thread.
fn worker_main<D, F>(
    info: WorkerInfo,
    factory: &F,
    core: Option<core_affinity::CoreId>,
    ready: &crossbeam_channel::Sender<Ready>,
    failures: &Mutex<Vec<WorkerFailure>>,
) where
    D: Dispatcher,
    F: Fn(&WorkerInfo) -> Result<D, DispatcherError>,
{
    if let Some(core) = core
        && !core_affinity::set_for_current(core)
    {
        tracing::warn!(worker = %info.name, core = core.id, "failed to pin worker to CPU");
    }
    let report = |message: String| {
        tracing::error!(worker = %info.name, "worker failed: {message}");
        failures.lock().push(WorkerFailure { worker: info.name.clone(), message: message.clone() });
        // If `start` is still waiting for this worker, fail it instead of hanging.
        let _ = ready.send(Err(message));
    };
    let built = panic::catch_unwind(AssertUnwindSafe(|| factory(&info)));
    let dispatcher = match built {
        Ok(Ok(dispatcher)) => dispatcher,
        Ok(Err(err)) => return report(format!("cannot create dispatcher: {err}")),
        Err(payload) => return report(format!("panicked: {}", panic_message(payload.as_ref()))),
    };
    let handle = dispatcher.handle();
    let ready_signal = ready.clone();
    let self_handle = handle.clone();
    if let Err(err) = dispatcher.post(move || {
        let _ = ready_signal.send(Ok(self_handle));
    }) {
        return report(err.to_string());
    }
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| dispatcher.run()));
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(err.to_string()),
        Err(payload) => Some(format!("panicked: {}", panic_message(payload.as_ref()))),
    };
    if let Some(message) = failure {
        // Reject new posts, record the failure, and only then drop what is still
        // queued: a completion released by that drop finds the failure recorded.
        handle.shutdown();
        report(message);
    }
    drop(dispatcher);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}
