//! # The HTTP FilterManager: one stream through the filter chain
//!
//! Envoy's `Http::FilterManager` (the filter half of the HCM's
//! `ActiveStream`), sans-IO. The HTTP connection manager owns one per stream
//! and drives it with what the codec decoded and what the upstream answered;
//! the FilterManager runs the filters and hands back [`StreamEvent`]s:
//!
//! ```text
//!   codec ──decode_headers/data/trailers──► [F1 → F2 → … → Fn] ──► Upstream* events (router)
//!                                                                     │
//!   codec ◄──Downstream* events── [F1 ← F2 ← … ← Fn] ◄──encode_headers/data/trailers── upstream
//! ```
//!
//! Decoder filters run in configured order, encoder filters in reverse. When
//! a filter stops, the FilterManager remembers where: the filter resumes the
//! chain with `continue_decoding()` and iteration picks up *exactly* there
//! (from the next filter, or from the stopping filter itself when it stopped
//! with `StopAll…` and has not seen the body yet). Body data arriving while
//! the chain is stopped is buffered in the stream's buffer up to
//! [`FilterManagerConfig::buffer_limit`]: over it, 413 for a request and 500
//! for a response (or, for the `…Watermark` statuses, a request to the owner to
//! stop reading). A filter's local reply (`send_local_reply`) aborts the
//! request path and goes back through the encoder filters — all of them when
//! the response has not started, straight to the codec when an upstream
//! response is already being encoded, and as a reset when headers already
//! went out — exactly as Envoy.
//!
//! ## How the HCM drives it
//!
//! ```text
//! let mut fm = FilterManager::new(factory.create_chain(), &config);
//! fm.decode_headers(head.headers, end_stream);       // from the codec
//! while let Some(ev) = fm.next_event() {
//!     match ev {
//!         StreamEvent::UpstreamHeaders { end_stream } => router.send(fm.request_headers()…),
//!         StreamEvent::DownstreamHeaders { end_stream } => codec.encode(fm.response_headers()…),
//!         StreamEvent::StartTimer { timer, after } => dispatcher timer → fm.on_timer(timer),
//!         …
//!     }
//! }
//! // upstream response → fm.encode_headers / encode_data / encode_trailers
//! // response done     → fm.on_stream_complete(); access log; drop(fm)
//! ```
//!
//! Filters never call back into the FilterManager while it is calling them:
//! their [`FilterCallbacks`] record continuations, local replies and
//! responses, which run as soon as the current filter call returns
//! (Envoy's non-reentrant local reply).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue};

use super::filter::{
    CompletedStream, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus,
    HttpFilterInstance,
};
use super::route::{RouteInfo, RouteResolver};
use super::stream_info::{ConnectionInfo, StreamInfo, details};
use crate::buffer::Buffer;
use crate::context::{RealTime, TimeSource};

/// Envoy's default stream buffer limit (`per_connection_buffer_limit_bytes`): 1 MiB.
pub const DEFAULT_BUFFER_LIMIT: usize = 1024 * 1024;

/// A timer a filter asked for; the owner arms it and calls
/// [`FilterManager::on_timer`] when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

/// Settings shared by the streams of one HCM.
#[derive(Clone)]
pub struct FilterManagerConfig {
    /// Most bytes buffered per direction while the chain is stopped.
    pub buffer_limit: usize,
    /// The clock for stream timings.
    pub time: Arc<dyn TimeSource>,
    /// Resolves routes; without one, filters see no route.
    pub route_resolver: Option<Arc<dyn RouteResolver>>,
    /// The downstream connection.
    pub connection: ConnectionInfo,
}

impl Default for FilterManagerConfig {
    fn default() -> Self {
        Self {
            buffer_limit: DEFAULT_BUFFER_LIMIT,
            time: Arc::new(RealTime),
            route_resolver: None,
            connection: ConnectionInfo::default(),
        }
    }
}

impl std::fmt::Debug for FilterManagerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterManagerConfig")
            .field("buffer_limit", &self.buffer_limit)
            .field("route_resolver", &self.route_resolver.is_some())
            .finish()
    }
}

/// One filter of a stream's chain, as a factory creates it.
#[derive(Debug)]
pub struct ChainFilter {
    /// The filter's configured name (the key of `typed_per_filter_config`).
    pub name: Arc<str>,
    /// The instance.
    pub filter: HttpFilterInstance,
    /// Off unless the route enables it (`HttpFilter.disabled`).
    pub disabled: bool,
}

impl ChainFilter {
    /// An enabled filter.
    pub fn new(name: impl Into<Arc<str>>, filter: HttpFilterInstance) -> Self {
        Self { name: name.into(), filter, disabled: false }
    }
}

/// What the FilterManager asks its owner to do, in order.
#[derive(Debug)]
pub enum StreamEvent {
    /// The request headers passed every decoder filter: send them upstream
    /// (read them with [`FilterManager::request_headers`]).
    UpstreamHeaders {
        /// Header-only request.
        end_stream: bool,
    },
    /// Request body for the upstream.
    UpstreamData {
        /// The bytes (ownership moves to the owner).
        data: Buffer,
        /// Last request body.
        end_stream: bool,
    },
    /// The request trailers passed every filter (the end of the request);
    /// read them with [`FilterManager::request_trailers`].
    UpstreamTrailers,
    /// A 1xx response for the codec.
    DownstreamInformational(HeaderMap),
    /// The response headers passed every encoder filter: encode them
    /// (read them with [`FilterManager::response_headers`]).
    DownstreamHeaders {
        /// Header-only response.
        end_stream: bool,
    },
    /// Response body for the codec.
    DownstreamData {
        /// The bytes.
        data: Buffer,
        /// Last response body.
        end_stream: bool,
    },
    /// The response trailers (the end of the response).
    DownstreamTrailers,
    /// A local reply replaces the upstream exchange: cancel any upstream
    /// request of this stream. Its response follows as `Downstream*` events.
    LocalReply {
        /// The reply's status.
        status: u16,
    },
    /// Arm a timer and call [`FilterManager::on_timer`] when it fires.
    StartTimer {
        /// Which.
        timer: TimerId,
        /// After how long.
        after: Duration,
    },
    /// Disarm a timer.
    CancelTimer(TimerId),
    /// Stop (`true`) or resume (`false`) reading the downstream: the request
    /// buffer went over / back under its limit in watermark mode.
    DownstreamReadDisable(bool),
    /// Stop or resume reading the upstream (response buffer watermark).
    UpstreamReadDisable(bool),
    /// Reset the stream: a local reply after response headers were sent, or
    /// a filter asked for it.
    ResetStream {
        /// Why.
        details: Cow<'static, str>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Stop {
    #[default]
    None,
    Single,
    AllBuffer,
    AllWatermark,
}

impl Stop {
    fn is_all(self) -> bool {
        matches!(self, Stop::AllBuffer | Stop::AllWatermark)
    }
}

/// Per filter, per direction (Envoy's `ActiveStreamFilterBase` state).
#[derive(Debug, Clone, Copy, Default)]
struct IterState {
    stop: Stop,
    headers_continued: bool,
    /// The end of stream the headers carried when they reached this filter.
    headers_end: bool,
    end_stream: bool,
    iterate_from_current: bool,
}

struct Slot {
    name: Arc<str>,
    filter: HttpFilterInstance,
    disabled_by_default: bool,
    /// Not run for this stream (disabled, by default or by the route).
    skip: bool,
    dec: IterState,
    enc: IterState,
}

impl Slot {
    /// This filter's iteration state on path `D`.
    fn state<const D: bool>(&mut self) -> &mut IterState {
        if D { &mut self.dec } else { &mut self.enc }
    }
}

/// Path `D`'s headers callback of a filter (which takes part in that path).
fn call_headers<const D: bool>(
    filter: &mut HttpFilterInstance,
    headers: &mut HeaderMap,
    end_stream: bool,
    cb: &mut FilterCallbacks<'_>,
) -> FilterHeadersStatus {
    if D {
        filter
            .as_decoder()
            .map_or(FilterHeadersStatus::Continue, |f| f.decode_headers(headers, end_stream, cb))
    } else {
        filter
            .as_encoder()
            .map_or(FilterHeadersStatus::Continue, |f| f.encode_headers(headers, end_stream, cb))
    }
}

fn call_data<const D: bool>(
    filter: &mut HttpFilterInstance,
    data: &mut Buffer,
    end_stream: bool,
    cb: &mut FilterCallbacks<'_>,
) -> FilterDataStatus {
    if D {
        filter
            .as_decoder()
            .map_or(FilterDataStatus::Continue, |f| f.decode_data(data, end_stream, cb))
    } else {
        filter
            .as_encoder()
            .map_or(FilterDataStatus::Continue, |f| f.encode_data(data, end_stream, cb))
    }
}

fn call_trailers<const D: bool>(
    filter: &mut HttpFilterInstance,
    trailers: &mut HeaderMap,
    cb: &mut FilterCallbacks<'_>,
) -> FilterTrailersStatus {
    if D {
        filter
            .as_decoder()
            .map_or(FilterTrailersStatus::Continue, |f| f.decode_trailers(trailers, cb))
    } else {
        filter
            .as_encoder()
            .map_or(FilterTrailersStatus::Continue, |f| f.encode_trailers(trailers, cb))
    }
}

/// The request path through the decoder filters (the `D` of the iteration).
const DECODE: bool = true;
/// The response path through the encoder filters, in reverse order.
const ENCODE: bool = false;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Call {
    #[default]
    None,
    Headers,
    Data,
    Trailers,
}

/// Per direction state of the stream.
#[derive(Default)]
struct Dir {
    /// Bytes held at stopped filters, all together (limited by the buffer limit).
    held_bytes: usize,
    /// The filter at which the trailers wait, if they are stopped.
    trailers_at: Option<usize>,
    /// The stop that buffers asked for watermarks instead of an error.
    streaming: bool,
    /// `DownstreamReadDisable(true)` / `UpstreamReadDisable(true)` was emitted.
    above_limit: bool,
    /// The buffer went over the limit and the error reply was sent.
    overflowed: bool,
    /// All input of this direction has entered the chain.
    complete: bool,
    /// No more filter calls in this direction (local reply, reset).
    aborted: bool,
    /// The end of stream left the chain.
    ended: bool,
    /// Which callback of this direction is running.
    call: Call,
    /// Data added with `add_*_data` during a data or trailers callback.
    stash: Option<Buffer>,
}

enum Deferred {
    ContinueDecoding(usize),
    ContinueEncoding(usize),
    LocalReply { headers: HeaderMap, body: Bytes, details: Cow<'static, str> },
    EncodeHeaders(HeaderMap, bool),
    EncodeData(Buffer, bool),
    EncodeTrailers(HeaderMap),
}

/// Data held at one stopped filter (Envoy keeps one buffer per direction;
/// one per stop point keeps the order right when two filters hold data at once).
#[derive(Default)]
struct Held {
    data: Buffer,
    /// The held data ends the stream.
    end: bool,
}

/// Everything of a stream but its filters: what [`FilterCallbacks`] reach.
struct Core {
    dec: Dir,
    enc: Dir,
    /// Per filter: request data held there.
    dec_held: Vec<Option<Held>>,
    /// Per filter: response data held there.
    enc_held: Vec<Option<Held>>,
    request_headers: Option<HeaderMap>,
    request_trailers: Option<HeaderMap>,
    response_headers: Option<HeaderMap>,
    response_trailers: Option<HeaderMap>,
    info: StreamInfo,
    time: Arc<dyn TimeSource>,
    /// Time since the stream started, read from the clock at the first timing
    /// recorded since the owner last called in (`None`: not read yet). A
    /// call that records no timing reads no clock; one that records several
    /// reads it once.
    elapsed: Option<Duration>,
    resolver: Option<Arc<dyn RouteResolver>>,
    route: Option<Arc<dyn RouteInfo>>,
    route_stale: bool,
    buffer_limit: usize,
    is_head_request: bool,
    /// Response headers entered the encoder chain (Envoy: `responseHeaders()` set).
    response_started: bool,
    /// Response headers went to the codec.
    response_headers_sent: bool,
    local_reply_queued: bool,
    events: VecDeque<StreamEvent>,
    deferred: VecDeque<Deferred>,
    timers: Vec<(TimerId, usize)>,
    next_timer: u64,
    completed: bool,
    destroyed: bool,
}

impl Core {
    /// Time since the stream started, as of the current entry point (the
    /// clock is read lazily, at most once per call from the owner).
    fn elapsed(&mut self) -> Duration {
        *self.elapsed.get_or_insert_with(|| self.info.since_start(self.time.now()))
    }

    /// A new call from the owner (or a filter's response): timings recorded
    /// from now on read the clock again.
    fn tick(&mut self) {
        self.elapsed = None;
    }

    fn held_slot(held: &mut Vec<Option<Held>>, i: usize) -> &mut Option<Held> {
        if held.len() <= i {
            held.resize_with(i + 1, || None);
        }
        &mut held[i]
    }

    fn resolve_route(&mut self, headers: &HeaderMap) {
        if let Some(r) = &self.resolver {
            self.route = r.resolve(headers);
            self.info.route_name = self.route.as_ref().map(|r| r.name().to_string());
        }
        self.route_stale = false;
    }

    fn dir<const D: bool>(&mut self) -> &mut Dir {
        if D { &mut self.dec } else { &mut self.enc }
    }

    /// Per filter slot: the data of path `D` held there.
    fn held<const D: bool>(&mut self) -> &mut Vec<Option<Held>> {
        if D { &mut self.dec_held } else { &mut self.enc_held }
    }

    /// The request (`DECODE`) or response (`ENCODE`) headers.
    fn headers<const D: bool>(&mut self) -> &mut Option<HeaderMap> {
        if D { &mut self.request_headers } else { &mut self.response_headers }
    }

    fn trailers<const D: bool>(&mut self) -> &mut Option<HeaderMap> {
        if D { &mut self.request_trailers } else { &mut self.response_trailers }
    }

    // ANCHOR: buffer_while_stopped
    /// Holds `data` at filter `i` while path `D` is stopped there (Envoy's
    /// `commonHandleBufferData` plus the buffer's high watermark). Over the
    /// limit: a request gets 413, a response 500 (sent straight to the codec,
    /// since the response has started) — or, when the stop asked for
    /// watermarks, the owner is asked to stop reading that peer.
    fn buffer<const D: bool>(&mut self, i: usize, data: &mut Buffer, end: bool) {
        let added = data.len();
        let held = Self::held_slot(self.held::<D>(), i).get_or_insert_with(Held::default);
        held.data.move_from(data);
        held.end |= end;
        let limit = self.buffer_limit;
        let dir = self.dir::<D>();
        dir.held_bytes += added;
        if dir.held_bytes <= limit {
            return;
        }
        if dir.streaming {
            if !dir.above_limit {
                dir.above_limit = true;
                self.events.push_back(if D {
                    StreamEvent::DownstreamReadDisable(true)
                } else {
                    StreamEvent::UpstreamReadDisable(true)
                });
            }
        } else if !dir.overflowed {
            dir.overflowed = true;
            let (status, body, why) = if D {
                (413, "Payload Too Large", details::REQUEST_PAYLOAD_TOO_LARGE)
            } else {
                (500, "Internal Server Error", details::RESPONSE_PAYLOAD_TOO_LARGE)
            };
            self.local_reply(status, Bytes::from_static(body.as_bytes()), |_| {}, why.into());
        }
    }
    // ANCHOR_END: buffer_while_stopped

    /// Takes the data held at filter `i` on path `D`; below the low
    /// watermark (half the limit) reading resumes.
    fn take_held<const D: bool>(&mut self, i: usize) -> Option<Held> {
        let held = self.held::<D>().get_mut(i)?.take()?;
        let limit = self.buffer_limit;
        let dir = self.dir::<D>();
        dir.held_bytes -= held.data.len();
        if dir.above_limit && dir.held_bytes <= limit / 2 {
            dir.above_limit = false;
            self.events.push_back(if D {
                StreamEvent::DownstreamReadDisable(false)
            } else {
                StreamEvent::UpstreamReadDisable(false)
            });
        }
        Some(held)
    }

    /// Drops everything held on path `D` (the request is answered, or a
    /// local reply replaces the response).
    fn drop_held<const D: bool>(&mut self) {
        for i in 0..self.held::<D>().len() {
            self.take_held::<D>(i);
        }
        self.dir::<D>().trailers_at = None;
    }

    /// Prepares a local reply (runs when the current filter call returns).
    fn local_reply(
        &mut self,
        status: u16,
        body: Bytes,
        modify: impl FnOnce(&mut HeaderMap),
        details: Cow<'static, str>,
    ) {
        if self.local_reply_queued || self.destroyed {
            return;
        }
        self.local_reply_queued = true;
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(week1_core::headers::STATUS, HeaderValue::from_u64(u64::from(status)));
        if !body.is_empty() {
            headers.insert(
                const { HeaderName::from_static("content-type") },
                const { HeaderValue::from_static("text/plain") },
            );
            headers.insert(
                const { HeaderName::from_static("content-length") },
                HeaderValue::from_u64(body.len() as u64),
            );
        }
        modify(&mut headers);
        // The request path stops at once (Envoy's decoder_filter_chain_aborted_);
        // a response already being encoded stops too (the reply goes direct).
        self.dec.aborted = true;
        if self.response_started {
            self.enc.aborted = true;
        }
        self.deferred.push_back(Deferred::LocalReply { headers, body, details });
    }

    fn start_timer(&mut self, slot: usize, after: Duration) -> TimerId {
        self.next_timer += 1;
        let id = TimerId(self.next_timer);
        self.timers.push((id, slot));
        self.events.push_back(StreamEvent::StartTimer { timer: id, after });
        id
    }

    fn cancel_timer(&mut self, id: TimerId) {
        if let Some(i) = self.timers.iter().position(|(t, _)| *t == id) {
            self.timers.swap_remove(i);
            self.events.push_back(StreamEvent::CancelTimer(id));
        }
    }
}

/// The stream's side of a filter call: everything a filter may ask of the
/// FilterManager (Envoy's `StreamDecoderFilterCallbacks` and
/// `StreamEncoderFilterCallbacks` together).
pub struct FilterCallbacks<'a> {
    core: &'a mut Core,
    name: &'a str,
    slot: usize,
    n: usize,
    is_decoder: bool,
    is_encoder: bool,
}

impl<'a> FilterCallbacks<'a> {
    /// The filter's configured name.
    pub fn filter_name(&self) -> &'a str {
        self.name
    }

    /// Resumes the request path where this filter stopped it. Runs when the
    /// current filter call returns; a no-op unless the filter is stopped.
    pub fn continue_decoding(&mut self) {
        if self.is_decoder {
            self.core.deferred.push_back(Deferred::ContinueDecoding(self.slot));
        }
    }

    /// Resumes the response path where this filter stopped it.
    pub fn continue_encoding(&mut self) {
        if self.is_encoder {
            self.core.deferred.push_back(Deferred::ContinueEncoding(self.n - 1 - self.slot));
        }
    }

    /// Answers the request locally (Envoy's `sendLocalReply`): `:status`,
    /// `content-type: text/plain` and `content-length` for a non-empty body,
    /// then `modify_headers`. The request path stops at once; the reply goes
    /// through the encoder filters when the response has not started, straight
    /// to the codec when it has, and becomes a reset once headers were sent.
    /// A HEAD request gets the headers without the body.
    pub fn send_local_reply(
        &mut self,
        status: u16,
        body: impl Into<Bytes>,
        modify_headers: impl FnOnce(&mut HeaderMap),
        details: impl Into<Cow<'static, str>>,
    ) {
        self.core.local_reply(status, body.into(), modify_headers, details.into());
    }

    /// Starts a response from a decoder filter acting as a terminal (Envoy's
    /// `StreamDecoderFilterCallbacks::encodeHeaders`): it goes through every
    /// encoder filter. The CORS preflight answer uses this.
    pub fn encode_headers(
        &mut self,
        headers: HeaderMap,
        end_stream: bool,
        details: impl Into<Cow<'static, str>>,
    ) {
        self.core.info.set_response_code_details(details);
        self.core.deferred.push_back(Deferred::EncodeHeaders(headers, end_stream));
    }

    /// Response body after [`encode_headers`](Self::encode_headers).
    pub fn encode_data(&mut self, data: Buffer, end_stream: bool) {
        self.core.tick();
        self.core.deferred.push_back(Deferred::EncodeData(data, end_stream));
    }

    /// Response trailers after [`encode_headers`](Self::encode_headers).
    pub fn encode_trailers(&mut self, trailers: HeaderMap) {
        self.core.tick();
        self.core.deferred.push_back(Deferred::EncodeTrailers(trailers));
    }

    /// Adds request body (Envoy's `addDecodedData`): during `decode_data` it
    /// joins the data being decoded; during `decode_trailers` it goes to the
    /// next filters before the trailers; otherwise it is buffered and flows
    /// when the filter continues (`streaming`: watermark instead of 413).
    pub fn add_decoded_data(&mut self, data: &mut Buffer, streaming: bool) {
        match self.core.dec.call {
            Call::Data | Call::Trailers => {
                self.core.dec.stash.get_or_insert_with(Buffer::new).move_from(data);
            }
            Call::Headers | Call::None => {
                self.core.dec.streaming = streaming;
                self.core.buffer::<DECODE>(self.slot, data, false);
            }
        }
    }

    /// Adds response body (Envoy's `addEncodedData`); as [`add_decoded_data`](Self::add_decoded_data).
    pub fn add_encoded_data(&mut self, data: &mut Buffer, streaming: bool) {
        match self.core.enc.call {
            Call::Data | Call::Trailers => {
                self.core.enc.stash.get_or_insert_with(Buffer::new).move_from(data);
            }
            Call::Headers | Call::None => {
                self.core.enc.streaming = streaming;
                self.core.buffer::<ENCODE>(self.slot, data, false);
            }
        }
    }

    /// Adds request trailers during the last `decode_data` (Envoy's
    /// `addDecodedTrailers`): the data then ends without end of stream and
    /// the trailers follow it.
    pub fn add_decoded_trailers(&mut self) -> &mut HeaderMap {
        self.core.request_trailers.get_or_insert_with(HeaderMap::new)
    }

    /// Adds response trailers during the last `encode_data`.
    pub fn add_encoded_trailers(&mut self) -> &mut HeaderMap {
        self.core.response_trailers.get_or_insert_with(HeaderMap::new)
    }

    /// The request body held at this filter so far (Envoy's `decodingBuffer`).
    pub fn decoding_buffer(&self) -> Option<&Buffer> {
        self.core.dec_held.get(self.slot)?.as_ref().map(|h| &h.data)
    }

    /// The request body held at this filter, to change it in place.
    pub fn decoding_buffer_mut(&mut self) -> Option<&mut Buffer> {
        self.core.dec_held.get_mut(self.slot)?.as_mut().map(|h| &mut h.data)
    }

    /// The response body held at this filter so far (Envoy's `encodingBuffer`).
    pub fn encoding_buffer(&self) -> Option<&Buffer> {
        self.core.enc_held.get(self.slot)?.as_ref().map(|h| &h.data)
    }

    /// The stream's buffer limit.
    pub fn buffer_limit(&self) -> usize {
        self.core.buffer_limit
    }

    /// Sets the stream's buffer limit (Envoy's `setDecoderBufferLimit`).
    pub fn set_buffer_limit(&mut self, limit: usize) {
        self.core.buffer_limit = limit;
    }

    /// The request headers; `None` inside `decode_headers`, which gets them
    /// as its argument.
    pub fn request_headers(&self) -> Option<&HeaderMap> {
        self.core.request_headers.as_ref()
    }

    /// The request headers, to change them (e.g. from `decode_data`).
    pub fn request_headers_mut(&mut self) -> Option<&mut HeaderMap> {
        self.core.request_headers.as_mut()
    }

    /// The response headers (outside `encode_headers`).
    pub fn response_headers(&self) -> Option<&HeaderMap> {
        self.core.response_headers.as_ref()
    }

    /// Whether the request is a HEAD.
    pub fn is_head_request(&self) -> bool {
        self.core.is_head_request
    }

    /// The route of the stream (resolved again after [`clear_route_cache`](Self::clear_route_cache)).
    pub fn route(&mut self) -> Option<Arc<dyn RouteInfo>> {
        if self.core.route_stale
            && let Some(h) = self.core.request_headers.take()
        {
            self.core.resolve_route(&h);
            self.core.request_headers = Some(h);
        }
        self.core.route.clone()
    }

    /// Drops the cached route: the next look-up resolves it with the headers
    /// as they are then.
    pub fn clear_route_cache(&mut self) {
        self.core.route = None;
        self.core.route_stale = true;
    }

    /// This filter's most specific per-route config (by its configured
    /// name), as the type its route config compiler made when the route
    /// table was built (`None` when there is none or it is another type).
    /// Costs an `Arc` clone: nothing is parsed or compiled per request.
    pub fn per_filter_config<T: std::any::Any + Send + Sync>(&mut self) -> Option<Arc<T>> {
        let route = self.route()?;
        let config = route.per_filter_config(self.name)?.config.clone()?;
        config.downcast::<T>().ok()
    }

    /// The stream's info.
    pub fn stream_info(&self) -> &StreamInfo {
        &self.core.info
    }

    /// The stream's info, to set flags, details, upstream facts.
    pub fn stream_info_mut(&mut self) -> &mut StreamInfo {
        &mut self.core.info
    }

    /// The downstream connection.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.core.info.connection
    }

    /// The current time from the stream's clock.
    pub fn now(&self) -> Instant {
        self.core.time.now()
    }

    /// Asks the owner for a timer; [`StreamFilterBase::on_timer`](super::StreamFilterBase::on_timer)
    /// runs when it fires.
    pub fn start_timer(&mut self, after: Duration) -> TimerId {
        self.core.start_timer(self.slot, after)
    }

    /// Cancels a timer this stream started.
    pub fn cancel_timer(&mut self, timer: TimerId) {
        self.core.cancel_timer(timer);
    }

    /// Resets the stream.
    pub fn reset_stream(&mut self, details: impl Into<Cow<'static, str>>) {
        self.core.dec.aborted = true;
        self.core.enc.aborted = true;
        self.core.events.push_back(StreamEvent::ResetStream { details: details.into() });
    }
}

/// One stream's filter chain (see the module docs).
pub struct FilterManager {
    slots: Vec<Slot>,
    core: Core,
}

impl std::fmt::Debug for FilterManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterManager")
            .field("filters", &self.slots.iter().map(|s| &*s.name).collect::<Vec<_>>())
            .field("response_started", &self.core.response_started)
            .finish()
    }
}

macro_rules! callbacks {
    ($self:ident, $i:expr, $slot:ident, $cb:ident) => {
        let n = $self.slots.len();
        let $slot = &mut $self.slots[$i];
        let is_decoder = $slot.filter.is_decoder();
        let is_encoder = $slot.filter.is_encoder();
        let mut $cb = FilterCallbacks {
            core: &mut $self.core,
            name: &$slot.name,
            slot: $i,
            n,
            is_decoder,
            is_encoder,
        };
    };
}

impl FilterManager {
    /// A stream with the given chain (in configured order): a `Vec` from
    /// `FilterChainFactory::create_chain`, or straight from
    /// `FilterChainFactory::chain_filters` without an intermediate `Vec`.
    pub fn new(chain: impl IntoIterator<Item = ChainFilter>, config: &FilterManagerConfig) -> Self {
        let mut fm = Self {
            slots: Vec::new(),
            core: Core {
                dec: Dir::default(),
                enc: Dir::default(),
                dec_held: Vec::new(),
                enc_held: Vec::new(),
                request_headers: None,
                request_trailers: None,
                response_headers: None,
                response_trailers: None,
                info: StreamInfo::new(config.time.now(), config.time.system_time()),
                elapsed: None,
                time: config.time.clone(),
                resolver: None,
                route: None,
                route_stale: false,
                buffer_limit: config.buffer_limit,
                is_head_request: false,
                response_started: false,
                response_headers_sent: false,
                local_reply_queued: false,
                // Headers and one body frame each way, without regrowing.
                events: VecDeque::with_capacity(4),
                deferred: VecDeque::new(),
                timers: Vec::new(),
                next_timer: 0,
                completed: false,
                destroyed: false,
            },
        };
        fm.core.info.connection = config.connection.clone();
        fm.start(chain, config);
        fm
    }

    // ANCHOR: reuse
    /// Serves a new stream with this FilterManager, keeping the memory it
    /// allocated for earlier ones (the chain's slots, event queues, held
    /// buffers): the stream object is pooled instead of allocated per
    /// request. The previous stream ends first, as [`clear`](Self::clear).
    pub fn reset(
        &mut self,
        chain: impl IntoIterator<Item = ChainFilter>,
        config: &FilterManagerConfig,
    ) {
        self.clear();
        let c = &mut self.core;
        let mut info = StreamInfo::new(config.time.now(), config.time.system_time());
        info.connection = config.connection.clone();
        // The emptied filter state keeps its capacity.
        info.filter_state = std::mem::take(&mut c.info.filter_state);
        c.info = info;
        self.start(chain, config);
    }

    /// Ends the stream ([`destroy`](Self::destroy)) and drops what belongs
    /// to it — filters, headers, route, pending events (so a `CancelTimer`
    /// not yet taken is lost: take the events first if timers matter) —
    /// keeping the allocations for [`reset`](Self::reset). A pooled
    /// FilterManager holds no filter, route or configuration.
    pub fn clear(&mut self) {
        self.destroy();
        self.slots.clear();
        let c = &mut self.core;
        c.dec = Dir::default();
        c.enc = Dir::default();
        c.dec_held.clear();
        c.enc_held.clear();
        c.request_headers = None;
        c.request_trailers = None;
        c.response_headers = None;
        c.response_trailers = None;
        c.info.route_name = None;
        c.info.upstream_cluster = None;
        c.info.filter_state.clear();
        c.resolver = None;
        c.route = None;
        c.events.clear();
        c.deferred.clear();
        c.timers.clear();
    }

    fn start(
        &mut self,
        chain: impl IntoIterator<Item = ChainFilter>,
        config: &FilterManagerConfig,
    ) {
        self.slots.extend(chain.into_iter().map(|c| Slot {
            name: c.name,
            filter: c.filter,
            disabled_by_default: c.disabled,
            skip: c.disabled,
            dec: IterState::default(),
            enc: IterState::default(),
        }));
        // Everything but the stream info, which the caller made.
        let c = &mut self.core;
        c.elapsed = None;
        if !Arc::ptr_eq(&c.time, &config.time) {
            c.time = config.time.clone();
        }
        c.resolver.clone_from(&config.route_resolver);
        c.route_stale = false;
        c.buffer_limit = config.buffer_limit;
        c.is_head_request = false;
        c.response_started = false;
        c.response_headers_sent = false;
        c.local_reply_queued = false;
        c.next_timer = 0;
        c.completed = false;
        c.destroyed = false;
    }
    // ANCHOR_END: reuse

    // ---------------------------------------------------------------- owner API

    /// The next thing to do, in order.
    pub fn next_event(&mut self) -> Option<StreamEvent> {
        self.core.events.pop_front()
    }

    /// Whether [`next_event`](Self::next_event) has something.
    pub fn has_pending_events(&self) -> bool {
        !self.core.events.is_empty()
    }

    /// Request headers from the codec. Resolves the route first (so filters
    /// disabled per route are skipped), then runs the decoder filters.
    pub fn decode_headers(&mut self, headers: HeaderMap, end_stream: bool) {
        self.core.tick();
        if self.core.request_headers.is_some() || self.core.destroyed {
            return;
        }
        self.core.is_head_request = headers.get(":method").is_some_and(|m| m.as_bytes() == b"HEAD");
        self.core.resolve_route(&headers);
        if let Some(route) = self.core.route.clone() {
            for s in &mut self.slots {
                s.skip = match route.filter_disabled(&s.name) {
                    Some(disabled) => disabled,
                    None => s.disabled_by_default,
                };
            }
        }
        self.core.request_headers = Some(headers);
        self.end_decode_if(end_stream);
        self.headers_from::<DECODE>(0, end_stream);
        self.run_deferred();
    }

    /// Request body from the codec.
    pub fn decode_data(&mut self, mut data: Buffer, end_stream: bool) {
        self.core.tick();
        self.core.info.bytes_received += data.len() as u64;
        if self.core.dec.complete || self.core.request_headers.is_none() || self.core.destroyed {
            return;
        }
        self.end_decode_if(end_stream);
        if self.core.dec.aborted {
            return;
        }
        self.data_from::<DECODE>(0, &mut data, end_stream);
        self.run_deferred();
    }

    /// Request trailers from the codec (the end of the request).
    pub fn decode_trailers(&mut self, trailers: HeaderMap) {
        self.core.tick();
        if self.core.dec.complete || self.core.request_headers.is_none() || self.core.destroyed {
            return;
        }
        self.end_decode_if(true);
        if self.core.dec.aborted {
            return;
        }
        self.core.request_trailers = Some(trailers);
        self.trailers_from::<DECODE>(0);
        self.run_deferred();
    }

    /// A 1xx response from upstream: straight to the codec.
    pub fn encode_1xx_headers(&mut self, headers: HeaderMap) {
        if !self.core.response_started && !self.core.destroyed {
            self.core.events.push_back(StreamEvent::DownstreamInformational(headers));
        }
    }

    /// Response headers from the terminal (router). Ignored once a response
    /// (e.g. a local reply) has started.
    pub fn encode_headers(&mut self, headers: HeaderMap, end_stream: bool) {
        self.core.tick();
        if self.core.response_started || self.core.destroyed {
            return;
        }
        self.start_encode_headers(headers, end_stream);
        self.run_deferred();
    }

    /// Response body from the terminal.
    pub fn encode_data(&mut self, data: Buffer, end_stream: bool) {
        self.core.tick();
        self.start_encode_data(data, end_stream);
        self.run_deferred();
    }

    /// Response trailers from the terminal.
    pub fn encode_trailers(&mut self, trailers: HeaderMap) {
        self.core.tick();
        self.start_encode_trailers(trailers);
        self.run_deferred();
    }

    /// A local reply from the owner (the HCM or router: 404 NR, 503 UH, 504
    /// UT, 408 ...), with the same paths as a filter's.
    pub fn send_local_reply(
        &mut self,
        status: u16,
        body: impl Into<Bytes>,
        modify_headers: impl FnOnce(&mut HeaderMap),
        details: impl Into<Cow<'static, str>>,
    ) {
        self.core.tick();
        self.core.local_reply(status, body.into(), modify_headers, details.into());
        self.run_deferred();
    }

    /// A timer fired.
    pub fn on_timer(&mut self, timer: TimerId) {
        self.core.tick();
        let Some(pos) = self.core.timers.iter().position(|(t, _)| *t == timer) else { return };
        let (_, slot) = self.core.timers.swap_remove(pos);
        if self.core.destroyed {
            return;
        }
        {
            callbacks!(self, slot, s, cb);
            s.filter.base().on_timer(timer, &mut cb);
        }
        self.run_deferred();
    }

    /// The stream is over: filters' `on_stream_complete` (once), before the
    /// access log.
    pub fn on_stream_complete(&mut self) {
        self.core.tick();
        if self.core.completed {
            return;
        }
        self.core.completed = true;
        self.core.info.completed = Some(self.core.elapsed());
        let core = &self.core;
        let done = CompletedStream {
            info: &core.info,
            request_headers: core.request_headers.as_ref(),
            response_headers: core.response_headers.as_ref(),
            request_trailers: core.request_trailers.as_ref(),
            response_trailers: core.response_trailers.as_ref(),
        };
        for s in &mut self.slots {
            s.filter.base().on_stream_complete(&done);
        }
    }

    /// Destroys the filters (`on_destroy`, once) and cancels their timers.
    /// Dropping the FilterManager does this too.
    pub fn destroy(&mut self) {
        if self.core.destroyed {
            return;
        }
        self.core.destroyed = true;
        self.core.dec.aborted = true;
        self.core.enc.aborted = true;
        for (t, _) in std::mem::take(&mut self.core.timers) {
            self.core.events.push_back(StreamEvent::CancelTimer(t));
        }
        for s in &mut self.slots {
            s.filter.base().on_destroy();
        }
    }

    /// The request headers (after `decode_headers`).
    pub fn request_headers(&self) -> Option<&HeaderMap> {
        self.core.request_headers.as_ref()
    }

    /// The request headers, for the owner's router half to finalize in
    /// place (route rewrites, `x-envoy-*`), as Envoy's router does: the
    /// access log then sees what went upstream.
    pub fn request_headers_mut(&mut self) -> Option<&mut HeaderMap> {
        self.core.request_headers.as_mut()
    }

    /// The response headers, for the owner to finalize in place before
    /// encoding (hop-by-hop removal, `server`, `connection: close`).
    pub fn response_headers_mut(&mut self) -> Option<&mut HeaderMap> {
        self.core.response_headers.as_mut()
    }

    /// The request trailers.
    pub fn request_trailers(&self) -> Option<&HeaderMap> {
        self.core.request_trailers.as_ref()
    }

    /// The response headers (after they entered the encoder chain).
    pub fn response_headers(&self) -> Option<&HeaderMap> {
        self.core.response_headers.as_ref()
    }

    /// The response trailers.
    pub fn response_trailers(&self) -> Option<&HeaderMap> {
        self.core.response_trailers.as_ref()
    }

    /// The stream's info.
    pub fn stream_info(&self) -> &StreamInfo {
        &self.core.info
    }

    /// The stream's info, for the owner (upstream host, timings, flags).
    pub fn stream_info_mut(&mut self) -> &mut StreamInfo {
        &mut self.core.info
    }

    /// The cached route.
    pub fn route(&self) -> Option<&Arc<dyn RouteInfo>> {
        self.core.route.as_ref()
    }

    /// Whether the whole request has entered the chain.
    pub fn request_complete(&self) -> bool {
        self.core.dec.complete
    }

    /// Whether the end of the response left the chain (or the stream was reset).
    pub fn response_complete(&self) -> bool {
        self.core.enc.ended
    }

    /// Whether a response (upstream or local) has started.
    pub fn response_started(&self) -> bool {
        self.core.response_started
    }

    /// Filter names, in configured order.
    pub fn filter_names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| &*s.name)
    }

    // ------------------------------------------------------------- decoding

    fn end_decode_if(&mut self, end_stream: bool) {
        if end_stream && !self.core.dec.complete {
            self.core.dec.complete = true;
            self.core.info.last_downstream_rx_byte_received = Some(self.core.elapsed());
        }
    }

    fn emit_upstream_headers(&mut self, end_stream: bool) {
        self.core.info.first_upstream_tx_byte_sent = Some(self.core.elapsed());
        if end_stream {
            self.upstream_ended();
        }
        self.core.events.push_back(StreamEvent::UpstreamHeaders { end_stream });
    }

    fn emit_upstream_data(&mut self, data: Buffer, end_stream: bool) {
        if end_stream {
            self.upstream_ended();
        }
        self.core.events.push_back(StreamEvent::UpstreamData { data, end_stream });
    }

    fn emit_upstream_trailers(&mut self) {
        self.upstream_ended();
        self.core.events.push_back(StreamEvent::UpstreamTrailers);
    }

    fn upstream_ended(&mut self) {
        self.core.dec.ended = true;
        self.core.info.last_upstream_tx_byte_sent = Some(self.core.elapsed());
    }

    // ------------------------------------------------------------- encoding

    fn start_encode_headers(&mut self, headers: HeaderMap, end_stream: bool) {
        if self.core.response_started || self.core.destroyed {
            return;
        }
        self.core.response_started = true;
        self.core.enc.complete = end_stream;
        self.core.response_headers = Some(headers);
        self.headers_from::<ENCODE>(0, end_stream);
    }

    fn start_encode_data(&mut self, mut data: Buffer, end_stream: bool) {
        if !self.core.response_started || self.core.enc.complete || self.core.enc.aborted {
            return;
        }
        self.core.enc.complete = end_stream;
        self.data_from::<ENCODE>(0, &mut data, end_stream);
    }

    fn start_encode_trailers(&mut self, trailers: HeaderMap) {
        if !self.core.response_started || self.core.enc.complete || self.core.enc.aborted {
            return;
        }
        self.core.enc.complete = true;
        self.core.response_trailers = Some(trailers);
        self.trailers_from::<ENCODE>(0);
    }

    // ----------------------------------------------- iteration (both paths)
    //
    // One implementation of each step for both paths: `D` is `DECODE` (the
    // request through the decoder filters in configured order) or `ENCODE`
    // (the response through the encoder filters in reverse order). `k` is a
    // position along the path, `i` the filter's slot.

    /// The slot of the filter at position `k` of path `D`.
    fn slot_at<const D: bool>(&self, k: usize) -> usize {
        if D { k } else { self.slots.len() - 1 - k }
    }

    /// Whether the filter at position `k` takes part in path `D`.
    fn runs<const D: bool>(&self, k: usize) -> bool {
        let s = &self.slots[self.slot_at::<D>(k)];
        !s.skip && if D { s.filter.is_decoder() } else { s.filter.is_encoder() }
    }

    // ANCHOR: headers_iteration
    /// Runs the headers of path `D` through its filters from position `start`
    /// on (Envoy's `decodeHeaders` / `encodeHeaders`).
    fn headers_from<const D: bool>(&mut self, start: usize, end_stream: bool) {
        let Some(mut headers) = self.core.headers::<D>().take() else { return };
        let n = self.slots.len();
        // A filter that adds a body to a header-only message: later filters
        // see headers without end of stream, then that body.
        let mut continue_data_at = None;
        let mut stopped = false;
        for k in start..n {
            if self.core.dir::<D>().aborted {
                break;
            }
            if !self.runs::<D>(k) {
                continue;
            }
            let i = self.slot_at::<D>(k);
            let eos = end_stream && continue_data_at.is_none();
            self.core.dir::<D>().call = Call::Headers;
            let st = self.slots[i].state::<D>();
            st.end_stream = eos;
            st.headers_end = eos;
            let status = {
                callbacks!(self, i, s, cb);
                call_headers::<D>(&mut s.filter, &mut headers, eos, &mut cb)
            };
            self.core.dir::<D>().call = Call::None;
            if D && self.core.route_stale {
                self.core.resolve_route(&headers);
            }
            if self.core.dir::<D>().aborted {
                break;
            }
            let st = self.slots[i].state::<D>();
            match status {
                FilterHeadersStatus::Continue => st.headers_continued = true,
                FilterHeadersStatus::StopIteration => st.stop = Stop::Single,
                FilterHeadersStatus::StopAllIterationAndBuffer => st.stop = Stop::AllBuffer,
                FilterHeadersStatus::StopAllIterationAndWatermark => st.stop = Stop::AllWatermark,
            }
            let stop = st.stop;
            let held = self.core.held::<D>().get_mut(i).and_then(Option::as_mut);
            let added_body = eos && held.is_some();
            if added_body && let Some(h) = held {
                h.end = true;
            }
            if stop != Stop::None {
                stopped = true;
                break;
            }
            if added_body {
                continue_data_at = Some(k);
            }
        }
        let aborted = self.core.dir::<D>().aborted;
        let slot = self.core.headers::<D>();
        if !aborted || slot.is_none() {
            *slot = Some(headers);
        }
        if aborted {
            return;
        }
        if !stopped {
            let eos = end_stream && continue_data_at.is_none();
            if D {
                self.emit_upstream_headers(eos);
            } else {
                self.emit_downstream_headers(eos);
            }
        }
        if let Some(k) = continue_data_at {
            let i = self.slot_at::<D>(k);
            self.slots[i].state::<D>().stop = Stop::Single;
            self.continue_now::<D>(k);
        }
    }
    // ANCHOR_END: headers_iteration

    /// Runs body of path `D` from position `start` on (Envoy's
    /// `decodeData` / `encodeData`).
    fn data_from<const D: bool>(&mut self, start: usize, data: &mut Buffer, end_stream: bool) {
        let n = self.slots.len();
        let trailers_before = self.core.trailers::<D>().is_some();
        let mut trailers_added_at = None;
        let mut reached_end = true;
        for k in start..n {
            if self.core.dir::<D>().aborted {
                return;
            }
            if !self.runs::<D>(k) {
                continue;
            }
            let i = self.slot_at::<D>(k);
            let st = *self.slots[i].state::<D>();
            let eos = end_stream && trailers_added_at.is_none();
            if st.stop.is_all() {
                // Stopped for everything: this filter has not seen the data yet.
                self.core.dir::<D>().streaming = st.stop == Stop::AllWatermark;
                self.core.buffer::<D>(i, data, eos);
                reached_end = false;
                break;
            }
            if st.end_stream {
                return;
            }
            self.core.dir::<D>().call = Call::Data;
            self.slots[i].state::<D>().end_stream = eos;
            let status = {
                callbacks!(self, i, s, cb);
                call_data::<D>(&mut s.filter, data, eos, &mut cb)
            };
            let dir = self.core.dir::<D>();
            dir.call = Call::None;
            if let Some(mut extra) = dir.stash.take() {
                data.move_from(&mut extra);
            }
            if dir.aborted {
                return;
            }
            if !trailers_before
                && trailers_added_at.is_none()
                && self.core.trailers::<D>().is_some()
            {
                trailers_added_at = Some(k);
            }
            let eos = end_stream && trailers_added_at.is_none();
            if !self.after_data::<D>(k, status, data, eos) {
                reached_end = false;
                break;
            }
        }
        if reached_end && !self.core.dir::<D>().aborted {
            let eos = end_stream && trailers_added_at.is_none();
            let data = std::mem::take(data);
            if D {
                self.emit_upstream_data(data, eos);
            } else {
                self.emit_downstream_data(data, eos);
            }
        }
        if let Some(k) = trailers_added_at {
            self.trailers_from::<D>(k + 1);
        }
    }

    /// After a data callback: whether to go on (Envoy's `commonHandleAfterDataCallback`).
    fn after_data<const D: bool>(
        &mut self,
        k: usize,
        status: FilterDataStatus,
        data: &mut Buffer,
        eos: bool,
    ) -> bool {
        let i = self.slot_at::<D>(k);
        match status {
            FilterDataStatus::Continue => {
                if self.slots[i].state::<D>().stop == Stop::Single {
                    // Stopped on headers, now continuing: everything restarts
                    // from here, headers first.
                    self.core.buffer::<D>(i, data, eos);
                    self.continue_now::<D>(k);
                    return false;
                }
                true
            }
            FilterDataStatus::StopIterationAndBuffer
            | FilterDataStatus::StopIterationAndWatermark => {
                self.slots[i].state::<D>().stop = Stop::Single;
                self.core.dir::<D>().streaming =
                    status == FilterDataStatus::StopIterationAndWatermark;
                self.core.buffer::<D>(i, data, eos);
                false
            }
            FilterDataStatus::StopIterationNoBuffer => {
                self.slots[i].state::<D>().stop = Stop::Single;
                if eos {
                    // So that continuing sends an (empty) end-of-stream frame.
                    self.core.buffer::<D>(i, &mut Buffer::new(), true);
                }
                false
            }
        }
    }

    /// Runs the trailers of path `D` from position `start` on (Envoy's
    /// `decodeTrailers` / `encodeTrailers`).
    fn trailers_from<const D: bool>(&mut self, start: usize) {
        let n = self.slots.len();
        for k in start..n {
            if self.core.dir::<D>().aborted {
                return;
            }
            if !self.runs::<D>(k) {
                continue;
            }
            let i = self.slot_at::<D>(k);
            if self.slots[i].state::<D>().stop.is_all() {
                self.core.dir::<D>().trailers_at = Some(k);
                return;
            }
            let Some(mut trailers) = self.core.trailers::<D>().take() else { return };
            self.core.dir::<D>().call = Call::Trailers;
            self.slots[i].state::<D>().end_stream = true;
            let status = {
                callbacks!(self, i, s, cb);
                call_trailers::<D>(&mut s.filter, &mut trailers, &mut cb)
            };
            *self.core.trailers::<D>() = Some(trailers);
            let dir = self.core.dir::<D>();
            dir.call = Call::None;
            let extra = dir.stash.take();
            if dir.aborted {
                return;
            }
            match status {
                FilterTrailersStatus::StopIteration => {
                    self.slots[i].state::<D>().stop = Stop::Single;
                    self.core.dir::<D>().trailers_at = Some(k);
                    if let Some(mut extra) = extra {
                        self.core.buffer::<D>(i, &mut extra, false);
                    }
                    return;
                }
                FilterTrailersStatus::Continue
                    if self.slots[i].state::<D>().stop == Stop::Single =>
                {
                    self.core.dir::<D>().trailers_at = Some(k);
                    if let Some(mut extra) = extra {
                        self.core.buffer::<D>(i, &mut extra, false);
                    }
                    self.continue_now::<D>(k);
                    return;
                }
                FilterTrailersStatus::Continue => {
                    if let Some(mut extra) = extra {
                        // Body added while handling trailers goes on first.
                        let trailers = self.core.trailers::<D>().take();
                        self.data_from::<D>(k + 1, &mut extra, false);
                        *self.core.trailers::<D>() = trailers;
                    }
                }
            }
        }
        if !self.core.dir::<D>().aborted {
            if D {
                self.emit_upstream_trailers();
            } else {
                self.emit_downstream_trailers();
            }
        }
    }

    // ANCHOR: continue_iteration
    /// Resumes path `D` at position `k` (Envoy's `commonContinue`): headers
    /// if they had not passed it, then the body held there (starting at the
    /// filter itself if it stopped for everything and has not seen it), then
    /// the trailers if they wait there.
    fn continue_now<const D: bool>(&mut self, k: usize) {
        let i = self.slot_at::<D>(k);
        if self.core.dir::<D>().aborted || self.slots[i].state::<D>().stop == Stop::None {
            return;
        }
        let st = self.slots[i].state::<D>();
        if st.stop.is_all() {
            st.iterate_from_current = true;
        }
        st.stop = Stop::None;
        if !st.headers_continued {
            st.headers_continued = true;
            let headers_end = st.headers_end;
            let eos = headers_end && self.core.held::<D>().get(i).is_none_or(Option::is_none);
            self.headers_from::<D>(k + 1, eos);
        }
        let trailers_here = self.core.dir::<D>().trailers_at == Some(k);
        let st = self.slots[i].state::<D>();
        let from = if st.iterate_from_current { k } else { k + 1 };
        st.iterate_from_current = false;
        if let Some(mut held) = self.core.take_held::<D>(i) {
            let eos = held.end && !trailers_here;
            self.data_from::<D>(from, &mut held.data, eos);
        }
        if trailers_here && self.core.dir::<D>().trailers_at == Some(k) {
            self.core.dir::<D>().trailers_at = None;
            self.trailers_from::<D>(from);
        }
    }
    // ANCHOR_END: continue_iteration

    fn emit_downstream_headers(&mut self, end_stream: bool) {
        self.core.response_headers_sent = true;
        self.core.info.response_code = self.core.response_headers.as_ref().and_then(|h| h.status());
        self.core.info.first_downstream_tx_byte_sent = Some(self.core.elapsed());
        self.core.events.push_back(StreamEvent::DownstreamHeaders { end_stream });
        if end_stream {
            self.downstream_ended();
        }
    }

    fn emit_downstream_data(&mut self, data: Buffer, end_stream: bool) {
        self.core.info.bytes_sent += data.len() as u64;
        self.core.events.push_back(StreamEvent::DownstreamData { data, end_stream });
        if end_stream {
            self.downstream_ended();
        }
    }

    fn emit_downstream_trailers(&mut self) {
        self.core.events.push_back(StreamEvent::DownstreamTrailers);
        self.downstream_ended();
    }

    /// The end of the response left the chain: the stream is answered. A
    /// request still arriving is dropped from now on.
    fn downstream_ended(&mut self) {
        self.core.enc.ended = true;
        self.core.info.last_downstream_tx_byte_sent = Some(self.core.elapsed());
        if !self.core.dec.ended {
            self.core.dec.aborted = true;
            self.core.drop_held::<DECODE>();
        }
    }

    // ------------------------------------------------------------- deferred

    /// Runs what filters asked for during their calls, in order.
    fn run_deferred(&mut self) {
        while let Some(d) = self.core.deferred.pop_front() {
            if self.core.destroyed {
                self.core.deferred.clear();
                return;
            }
            match d {
                Deferred::ContinueDecoding(k) => self.continue_now::<DECODE>(k),
                Deferred::ContinueEncoding(k) => self.continue_now::<ENCODE>(k),
                Deferred::LocalReply { headers, body, details } => {
                    self.execute_local_reply(headers, body, details)
                }
                Deferred::EncodeHeaders(h, end) => self.start_encode_headers(h, end),
                Deferred::EncodeData(d, end) => self.start_encode_data(d, end),
                Deferred::EncodeTrailers(t) => self.start_encode_trailers(t),
            }
        }
    }

    // ANCHOR: local_reply
    /// Sends a prepared local reply on the right path (Envoy's
    /// `DownstreamFilterManager::sendLocalReply`).
    fn execute_local_reply(&mut self, headers: HeaderMap, body: Bytes, details: Cow<'static, str>) {
        let status = headers.status().unwrap_or(500);
        self.core.dec.aborted = true;
        self.core.drop_held::<DECODE>();
        if self.core.response_headers_sent {
            // Too late for a reply: all that is left is a reset.
            self.core.enc.aborted = true;
            self.core.events.push_back(StreamEvent::ResetStream { details });
            return;
        }
        self.core.events.push_back(StreamEvent::LocalReply { status });
        self.core.info.set_response_code_details(details);
        let with_body = !body.is_empty() && !self.core.is_head_request;
        if !self.core.response_started {
            // The response has not started: through every encoder filter.
            self.start_encode_headers(headers, !with_body);
            if with_body {
                self.start_encode_data(Buffer::from(body), true);
            }
        } else {
            // A response is being encoded but nothing went out yet: bypass
            // the encoder filters (their state machines saw another response).
            self.core.enc.aborted = true;
            self.core.drop_held::<ENCODE>();
            self.core.enc.complete = true;
            self.core.response_headers = Some(headers);
            self.emit_downstream_headers(!with_body);
            if with_body {
                self.emit_downstream_data(Buffer::from(body), true);
            }
        }
    }
    // ANCHOR_END: local_reply
}

impl Drop for FilterManager {
    fn drop(&mut self) {
        self.destroy();
    }
}
