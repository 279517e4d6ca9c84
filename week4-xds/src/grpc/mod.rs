//! gRPC ADS with Envoy's real v3 protobufs (`envoy-types`, tonic): the
//! client that drives [`crate::mux::AdsMux`] over `StreamAggregatedResources`
//! or `DeltaAggregatedResources`, the conversions, and a small control plane.
//!
//! ```text
//!  AdsClient task: connect ─► open stream ─► loop { mux.poll_request → send;
//!                  recv response → decode (convert) → validate (caller) → mux }
//!                  stream error ─► mux.disconnected → backoff sleep ─► reconnect
//!  ControlPlane:   YAML files ─► Snapshot (version) ─► per-stream SotW/Delta state
//! ```

pub mod client;
pub mod convert;
pub mod server;
