//! # Built-in network filters
//!
//! - [`ConnectionLogFilter`]: the course's connection logging filter: a line
//!   when a connection opens and one when it closes, with bytes each way and
//!   duration.
//! - [`LocalRateLimitFilter`]: `envoy.filters.network.local_ratelimit`, a
//!   token bucket over *new connections*: a connection finding the bucket
//!   empty is closed at once (`NoFlush`) before any byte reaches the
//!   terminal. Buckets with the same `share_key` are shared across listeners.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use week1_core::config::tcp_proxy::NetworkLocalRateLimit;

use super::{
    CloseType, ConnectionEvent, FilterStatus, ReadFilter, ReadFilterCallbacks, WriteFilter,
    WriteFilterCallbacks,
};
use crate::buffer::Buffer;
use crate::context::{FactoryContext, LogSink, TimeSource};
use crate::token_bucket::TokenBucket;

/// The connection logging filter.
#[derive(Debug)]
pub struct ConnectionLogFilter {
    sink: Arc<dyn LogSink>,
    time: Arc<dyn TimeSource>,
    start: Option<Instant>,
    peer: String,
    rx: u64,
    tx: u64,
    logged_close: bool,
}

impl ConnectionLogFilter {
    /// A filter for one connection.
    pub fn new(sink: Arc<dyn LogSink>, time: Arc<dyn TimeSource>) -> Self {
        Self { sink, time, start: None, peer: "-".into(), rx: 0, tx: 0, logged_close: false }
    }
}

impl ReadFilter for ConnectionLogFilter {
    fn on_new_connection(&mut self, cb: &mut ReadFilterCallbacks<'_>) -> FilterStatus {
        self.start = Some(self.time.now());
        let c = cb.connection();
        self.peer = c.remote_address.map_or("-".into(), |a| a.to_string());
        self.sink.log(&format!("connection {} open from {}", c.id, self.peer));
        FilterStatus::Continue
    }

    fn on_data(
        &mut self,
        data: &mut Buffer,
        _end: bool,
        _cb: &mut ReadFilterCallbacks<'_>,
    ) -> FilterStatus {
        self.rx += data.len() as u64;
        FilterStatus::Continue
    }

    fn on_event(&mut self, event: ConnectionEvent) {
        if std::mem::replace(&mut self.logged_close, true) {
            return;
        }
        let ms = self.start.map_or(0, |s| self.time.now().saturating_duration_since(s).as_millis());
        let who = if event == ConnectionEvent::RemoteClose { "peer" } else { "proxy" };
        self.sink.log(&format!(
            "connection from {} closed by {who}: rx={} tx={} {ms}ms",
            self.peer, self.rx, self.tx
        ));
    }
}

impl WriteFilter for ConnectionLogFilter {
    fn on_write(
        &mut self,
        data: &mut Buffer,
        _end: bool,
        _cb: &mut WriteFilterCallbacks<'_>,
    ) -> FilterStatus {
        self.tx += data.len() as u64;
        FilterStatus::Continue
    }
}

/// Shared state of a network rate limit config.
#[derive(Debug)]
pub struct LocalRateLimitConfig {
    bucket: Arc<TokenBucket>,
    enabled: bool,
    rejected: AtomicU64,
    /// Stats prefix.
    pub stat_prefix: String,
}

/// Buckets by `share_key`, so listeners can share one (config time only).
#[derive(Debug, Default)]
pub struct SharedBuckets(Mutex<HashMap<String, Arc<TokenBucket>>>);

impl LocalRateLimitConfig {
    /// Compiles a config; `shared` holds the buckets of `share_key`s.
    pub fn new(
        c: &NetworkLocalRateLimit,
        ctx: &FactoryContext,
        shared: &SharedBuckets,
    ) -> Result<Self, String> {
        let tb = c.token_bucket.as_ref().ok_or("token_bucket must be set")?;
        let make = || Arc::new(TokenBucket::from_config(tb, ctx.time.clone()));
        let bucket = if c.share_key.is_empty() {
            make()
        } else {
            let mut m = shared.0.lock().map_err(|_| "shared bucket table poisoned")?;
            m.entry(c.share_key.clone()).or_insert_with(make).clone()
        };
        Ok(Self {
            bucket,
            enabled: c.runtime_enabled.as_ref().and_then(|f| f.default_value).unwrap_or(true),
            rejected: AtomicU64::new(0),
            stat_prefix: c.stat_prefix.clone(),
        })
    }

    /// Connections refused so far (`rate_limited` stat).
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// The network rate limit filter of one connection.
#[derive(Debug)]
pub struct LocalRateLimitFilter {
    config: Arc<LocalRateLimitConfig>,
}

impl LocalRateLimitFilter {
    /// A filter for one connection.
    pub fn new(config: Arc<LocalRateLimitConfig>) -> Self {
        Self { config }
    }
}

impl ReadFilter for LocalRateLimitFilter {
    fn on_new_connection(&mut self, cb: &mut ReadFilterCallbacks<'_>) -> FilterStatus {
        if !self.config.enabled || self.config.bucket.try_consume() {
            return FilterStatus::Continue;
        }
        self.config.rejected.fetch_add(1, Ordering::Relaxed);
        cb.close(CloseType::NoFlush);
        FilterStatus::StopIteration
    }

    fn on_data(
        &mut self,
        _data: &mut Buffer,
        _end: bool,
        _cb: &mut ReadFilterCallbacks<'_>,
    ) -> FilterStatus {
        FilterStatus::Continue
    }
}
