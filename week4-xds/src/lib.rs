//! # Week 4: dynamic configuration with xDS
//!
//! How Envoy's configuration changes at runtime without losing traffic: the xDS
//! protocol state machines, their transports, the ConfigManager that validates
//! and versions snapshots, and the DrainManager that retires old listeners.
//!
//! ```text
//!   transports (file watch, gRPC ADS)          sans-IO protocol core
//!   ─────────────────────────────────          ─────────────────────
//!   bytes ──► DiscoveryResponse<P> ──────────► AdsMux ─► SotwState / DeltaState
//!                                                │  (ACK/NACK, ordering, warming)
//!                     DiscoveryRequest ◄─────────┘
//!                                                │ accepted updates
//!                                                ▼
//!                                        ConfigManager (validate, version, notify)
//!                                                │ listener replaced / removed
//!                                                ▼
//!                                        DrainManager (old listener drains)
//! ```

pub mod backoff;
pub mod config_manager;
pub mod delta;
pub mod drain;
pub mod file;
pub mod grpc;
pub mod model;
pub mod mux;
pub mod protocol;
pub mod resource;
pub mod sotw;
pub mod subscription;

pub use backoff::{Backoff, RandomSource, SystemRandom};
pub use mux::{AdsMux, Event, Mode, MuxConfig};
pub use protocol::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DeltaResource, DiscoveryRequest,
    DiscoveryResponse, Node, Request, Status,
};
pub use resource::{ResourceRef, TypeUrl, XdsResource};
pub use subscription::{IgnoreReason, Interest, Outcome, Update};
