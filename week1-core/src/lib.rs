//! # Week 1: the core model of an Envoy-style proxy
//!
//! Envoy's data plane is a pipeline of a few core objects, and this crate builds
//! each of them as plain, deterministic Rust with no sockets on the hot path:
//!
//! ```text
//!   bootstrap YAML ──► config (typed Envoy v3 model, validated)
//!                         │
//!        ┌────────────────┼──────────────────┐
//!        ▼                ▼                  ▼
//!   listener          router              cluster
//!   (bind, pick a     (virtual host,      (hosts, health, priorities,
//!    filter chain)     route, action)      load balancer, circuit breakers)
//! ```
//!
//! A connection arrives on a [`listener`], which picks a filter chain; the HTTP
//! connection manager (week 3) hands each request's [`headers::HeaderMap`] to the
//! [`router`], which returns a decision naming a cluster; the [`cluster`] module
//! picks a host with a load balancer and guards it with circuit breakers. The
//! runnable proxy (`mini-envoy`) feeds real sockets and time into these pieces.

pub mod cluster;
pub mod config;
pub mod headers;
pub mod listener;
pub mod router;

pub use headers::HeaderMap;
