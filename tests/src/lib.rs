//! Helpers for the end-to-end tests of the real `mini-envoy` binary.
//!
//! The tests run the binary exactly as a user does (a bootstrap file, Envoy's
//! command-line flags) in front of backends and behind clients built on an
//! HTTP implementation independent of mini-envoy's (hyper 1.x), so a bug in
//! the week 3 codec cannot hide itself on both sides of the proxy:
//!
//! ```text
//!  Client (hyper) ──┐                                   ┌──► Backend (hyper server, records requests)
//!  RawConnection ───┼──► mini-envoy (child process) ────┤
//!  (byte-exact)     ┘     bootstrap in a tempdir,       └──► closed_port() (connect failures)
//!                         ports resolved from its log
//! ```
//!
//! - [`MiniEnvoy`]: starts the binary on ephemeral loopback ports and learns
//!   them from its `listener <name> on <addr>` / `admin on <addr>` log lines.
//! - [`Backend`]: a hyper server with a [`Behaviour`], recording every request
//!   that reached it.
//! - [`Client`]: a keep-alive hyper client; [`RawConnection`]: bytes in,
//!   parsed responses out, for malformed and pipelined requests.
//! - [`config`]: small YAML builders for bootstraps.
//! - [`DnsServer`]: an authoritative DNS server on loopback UDP whose A
//!   answers a test changes (STRICT_DNS / LOGICAL_DNS clusters).
//!
//! Nothing here sleeps to synchronize: waits are bounded polls on conditions.
//! In `#[tokio::test]`s use the `*_async` waits, which let spawned tasks run.

pub mod backend;
pub mod binary;
pub mod client;
pub mod config;
pub mod control_plane;
pub mod dns;
pub mod envoy;
pub mod raw;

use std::time::{Duration, Instant};

pub use backend::{Backend, Behaviour, RecordedRequest, Reply};
pub use client::{Client, Response};
pub use dns::DnsServer;
pub use envoy::MiniEnvoy;
pub use raw::{RawConnection, RawResponse};

/// How long any single wait in the harness may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
/// Between polls it yields the thread briefly (a bounded poll, not a sleep
/// that a test's correctness depends on).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// [`wait_until`] for async tests: polls without blocking the runtime, so
/// tasks the test spawned keep running (a blocking wait on a current-thread
/// runtime would starve them).
pub async fn wait_until_async(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One counter or gauge of mini-envoy's `/stats` (text format), if present.
pub async fn stat(envoy: &MiniEnvoy, name: &str) -> Option<u64> {
    let text = Client::without_pool().get(envoy.admin(), "/stats").await.text();
    let value = text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(": "));
    value.and_then(|v| v.trim().parse().ok())
}

/// A loopback address where nothing listens (the port was just released).
pub fn closed_port() -> std::net::SocketAddr {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address of an ephemeral listener")
}
