//! # Week 2: Envoy's threading model
//!
//! Envoy runs one main thread (configuration, admin, health checks) and N worker
//! threads, each with its own event loop (the *Dispatcher*). Workers share no
//! mutable state: configuration reaches them through *thread-local slots*.
//! This crate builds those three pieces:
//!
//! ```text
//!   main thread ── Instance (tls) ── slot.set(v) ─┬─ post ─► worker-0 dispatcher ─► TLS[slot]=v
//!        │                                        └─ post ─► worker-1 dispatcher ─► TLS[slot]=v
//!        └── WorkerPool ── post / run_on_all_threads ──► workers ── completion ──► main dispatcher
//! ```
//!
//! * [`dispatcher`]: the event loop (`Event::Dispatcher`), on mio and on tokio.
//! * [`worker`]: named worker threads and the main thread's handle on them.
//! * [`tls`]: thread-local slots (`ThreadLocal::SlotAllocator`).
//! * [`clock`]: injectable time, so tests never sleep.
//!
//! ## How mini-envoy uses it
//!
//! ```no_run
//! use std::sync::Arc;
//! use week2_threads::dispatcher::{Dispatcher, MioDispatcher, TokioDispatcher};
//! use week2_threads::tls::Instance;
//! use week2_threads::worker::{WorkerConfig, WorkerPool};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let main = MioDispatcher::new("main_thread")?;
//! let mut workers = WorkerPool::start_tokio(&WorkerConfig::new(4), main.handle())?;
//! let tls = Instance::new(main.handle());
//! for handle in workers.handles() {
//!     tls.register_thread(handle)?;
//! }
//! let routes = tls.allocate_slot::<Arc<Vec<String>>>()?;
//! let table = Arc::new(vec!["/api -> backend".to_owned()]);
//! routes.set(move || table.clone())?;
//!
//! // A worker spawns its !Send connection tasks on its own LocalSet.
//! let slot = routes.clone();
//! workers.post_to_all(move || {
//!     let slot = slot.clone();
//!     if let Some(d) = TokioDispatcher::current() {
//!         let _ = d.spawn_local(async move {
//!             let _routes = slot.get(); // lock-free read of this worker's copy
//!         });
//!     }
//! })?;
//! workers.stop()?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod clock;
mod completion;
pub mod dispatcher;
pub mod tls;
pub mod worker;
