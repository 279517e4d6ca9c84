//! # mini-envoy: the runnable proxy
//!
//! The four course crates assembled into a proxy, as Envoy assembles its
//! libraries into `envoy-static`:
//!
//! ```text
//!  main thread: load config (week 1) ─► Snapshot ─► thread-local slot (week 2)
//!                                                        │
//!  worker-N (tokio Dispatcher):  accept ─► HCM: codec + FilterManager (week 3)
//!                                              └─► router upstream: LB (week 1), pool ─► upstream
//! ```
//!
//! - [`access_log`]: Envoy's access-log formats, written off the request path.
//! - [`server`]: the main thread, workers and listeners; [`snapshot`]: the
//!   listener configuration workers read; [`cluster_manager`]: the clusters,
//!   owned by the main thread and published to workers; [`hcm`]: one downstream HTTP connection;
//!   [`router`]: the router's upstream half; [`upstream`]: per-worker load
//!   balancers and connection pools; [`tcp_proxy`]: L4 proxying; [`admin`]:
//!   the admin interface; [`config_dump`]: the registry `/config_dump`
//!   reads (Envoy's `ConfigTracker`); [`stats`]: counters, gauges and histograms merged
//!   on read; [`health`]: active health checks and outlier detection (main
//!   thread); [`dns`]: DNS refresh of STRICT_DNS / LOGICAL_DNS clusters;
//!   [`xds`]: CDS, EDS, LDS and RDS sources (files, ADS);
//!   [`listener_manager`]: static and LDS listeners, their sockets and
//!   drains; [`rds`]: RDS route configurations; [`io`]: socket reads;
//!   [`clock`]: the time read once per wake-up; [`random`]: per-thread randomness.
//! - [`route_check`]: Envoy's `router_check_tool`, as `mini-envoy route-check`.

pub mod access_log;
pub mod admin;
pub mod clock;
pub mod cluster_manager;
pub mod config_dump;
pub mod dns;
pub mod hcm;
pub mod health;
pub mod io;
pub mod listener_manager;
pub mod random;
pub mod rds;
pub mod route_check;
pub mod router;
pub mod server;
pub mod snapshot;
pub mod stats;
pub mod tcp_proxy;
pub mod upstream;
pub mod validate;
pub mod xds;
