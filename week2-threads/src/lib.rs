//! # Week 2: Envoy's threading model
//!
//! Envoy runs one main thread (configuration, admin, health checks) and N worker
//! threads, each with its own event loop (the *Dispatcher*). Workers share no
//! mutable state: configuration reaches them through *thread-local slots*.
//! This crate builds those three pieces.
