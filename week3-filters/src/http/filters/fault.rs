//! # `envoy.filters.http.fault`
//!
//! Envoy's fault injection: a fixed *delay* for a percentage of requests
//! (the filter stops the chain and asks the FilterManager for a timer; when
//! it fires the chain continues — flag `DI`), then an *abort* for a
//! percentage (a local reply with the configured HTTP status, or 200 with a
//! `grpc-status` — flag `FI`, details `fault_filter_abort`). Percentages draw
//! from the injected random source. Faults can be limited to an upstream
//! cluster, to downstream nodes (`x-envoy-downstream-service-node`) and to
//! `max_active_faults` at once; a route's `HTTPFault` replaces the filter's.
//! Stats as Envoy's, under the connection manager's prefix:
//! `http.<stat_prefix>.fault.delays_injected`, `aborts_injected`,
//! `faults_overflow` and the gauge `active_faults`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use week1_core::config::filters::HttpFault;
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue};

use crate::context::{FactoryContext, RandomSource, StatCounter, StatGauge};
use crate::http::stream_info::details;
use crate::http::{
    CompletedStream, FilterCallbacks, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus,
    ResponseFlag, RouteAction, StreamDecoderFilter, StreamFilterBase, TimerId,
};

/// The filter config (plus the count of active faults, shared by all streams).
#[derive(Debug)]
pub struct FaultConfig {
    fault: Arc<HttpFault>,
    random: Arc<dyn RandomSource>,
    active: Arc<AtomicU32>,
    stats: FaultStats,
}

/// `http.<stat_prefix>.fault.*`.
#[derive(Debug)]
struct FaultStats {
    delays_injected: Arc<dyn StatCounter>,
    aborts_injected: Arc<dyn StatCounter>,
    faults_overflow: Arc<dyn StatCounter>,
    active_faults: Arc<dyn StatGauge>,
}

impl FaultConfig {
    /// From the typed config; stats go to `ctx.stats` under `ctx.stats_prefix`.
    pub fn new(c: &HttpFault, ctx: &FactoryContext) -> Self {
        let name = |leaf: &str| format!("{}fault.{leaf}", ctx.stats_prefix);
        let stats = FaultStats {
            delays_injected: ctx.stats.counter(&name("delays_injected")),
            aborts_injected: ctx.stats.counter(&name("aborts_injected")),
            faults_overflow: ctx.stats.counter(&name("faults_overflow")),
            active_faults: ctx.stats.gauge(&name("active_faults")),
        };
        Self {
            fault: Arc::new(c.clone()),
            random: ctx.random.clone(),
            active: Arc::default(),
            stats,
        }
    }

    /// Faults active now.
    pub fn active_faults(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }
}

/// The filter of one stream.
#[derive(Debug)]
pub struct FaultFilter {
    config: Arc<FaultConfig>,
    /// The fault config in force (the route's or the filter's).
    fault: Option<Arc<HttpFault>>,
    delay_timer: Option<TimerId>,
    counted: bool,
}

impl FaultFilter {
    /// A filter for one stream.
    pub fn new(config: Arc<FaultConfig>) -> Self {
        Self { config, fault: None, delay_timer: None, counted: false }
    }

    fn release(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.config.active.fetch_sub(1, Ordering::Relaxed);
            self.config.stats.active_faults.add(-1);
        }
    }

    /// The abort step; `true` when the request was aborted.
    fn maybe_abort(&mut self, cb: &mut FilterCallbacks<'_>) -> bool {
        let Some(abort) = self.fault.as_ref().and_then(|f| f.abort.clone()) else { return false };
        if !abort.percentage.hits(self.config.random.random()) {
            return false;
        }
        cb.stream_info_mut().set_response_flag(ResponseFlag::FaultInjected);
        self.config.stats.aborts_injected.inc();
        if let Some(grpc) = abort.grpc_status {
            cb.send_local_reply(
                200,
                "",
                |h| {
                    h.insert(
                        HeaderName::from_static("content-type"),
                        HeaderValue::from_static("application/grpc"),
                    );
                    h.insert(
                        HeaderName::from_static("grpc-status"),
                        HeaderValue::from_u64(u64::from(grpc)),
                    );
                },
                details::FAULT_FILTER_ABORT,
            );
        } else {
            let status = abort.http_status.and_then(|s| u16::try_from(s).ok()).unwrap_or(503);
            cb.send_local_reply(status, "fault filter abort", |_| {}, details::FAULT_FILTER_ABORT);
        }
        true
    }
}

impl StreamFilterBase for FaultFilter {
    fn on_timer(&mut self, timer: TimerId, cb: &mut FilterCallbacks<'_>) {
        if self.delay_timer != Some(timer) {
            return;
        }
        self.delay_timer = None;
        if !self.maybe_abort(cb) {
            cb.continue_decoding();
        }
    }

    fn on_stream_complete(&mut self, _stream: &CompletedStream<'_>) {
        self.release();
    }

    fn on_destroy(&mut self) {
        self.release();
    }
}

impl StreamDecoderFilter for FaultFilter {
    fn decode_headers(
        &mut self,
        headers: &mut HeaderMap,
        _end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        let route = cb.route();
        let fault =
            cb.per_filter_config::<HttpFault>().unwrap_or_else(|| self.config.fault.clone());
        if !fault.upstream_cluster.is_empty() {
            let cluster = route.as_deref().and_then(|r| match r.action() {
                RouteAction::Forward { cluster } => Some(cluster.as_str()),
                _ => None,
            });
            if cluster != Some(fault.upstream_cluster.as_str()) {
                return FilterHeadersStatus::Continue;
            }
        }
        if !fault.downstream_nodes.is_empty() {
            let node = headers.get_str("x-envoy-downstream-service-node");
            if !node.is_some_and(|n| fault.downstream_nodes.iter().any(|x| x == n)) {
                return FilterHeadersStatus::Continue;
            }
        }
        if fault.delay.is_none() && fault.abort.is_none() {
            return FilterHeadersStatus::Continue;
        }
        let max = fault.max_active_faults.unwrap_or(u32::MAX);
        let admitted = self
            .config
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| (a < max).then_some(a + 1))
            .is_ok();
        if !admitted {
            self.config.stats.faults_overflow.inc();
            return FilterHeadersStatus::Continue;
        }
        self.counted = true;
        self.config.stats.active_faults.add(1);
        let delay = fault.delay.as_ref().and_then(|d| {
            let hit = d.percentage.hits(self.config.random.random());
            d.fixed_delay.filter(|_| hit).map(|d| d.get())
        });
        self.fault = Some(fault);
        if let Some(delay) = delay.filter(|d| *d > Duration::ZERO) {
            cb.stream_info_mut().set_response_flag(ResponseFlag::DelayInjected);
            self.config.stats.delays_injected.inc();
            self.delay_timer = Some(cb.start_timer(delay));
            return FilterHeadersStatus::StopIteration;
        }
        if self.maybe_abort(cb) {
            return FilterHeadersStatus::StopIteration;
        }
        FilterHeadersStatus::Continue
    }

    /// While delayed, body waits here (Envoy: `StopIterationAndWatermark`).
    fn decode_data(
        &mut self,
        _data: &mut crate::buffer::Buffer,
        _end: bool,
        _cb: &mut FilterCallbacks<'_>,
    ) -> FilterDataStatus {
        if self.delay_timer.is_some() {
            FilterDataStatus::StopIterationAndWatermark
        } else {
            FilterDataStatus::Continue
        }
    }

    fn decode_trailers(
        &mut self,
        _trailers: &mut HeaderMap,
        _cb: &mut FilterCallbacks<'_>,
    ) -> FilterTrailersStatus {
        if self.delay_timer.is_some() {
            FilterTrailersStatus::StopIteration
        } else {
            FilterTrailersStatus::Continue
        }
    }
}
