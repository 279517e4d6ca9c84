//! FilterManager behaviour, case by case (Envoy's filter_manager_test spirit).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use week1_core::headers::HeaderMap;
use week3_filters::buffer::Buffer;
use week3_filters::http::*;

type Log = Arc<Mutex<Vec<String>>>;
type Dh =
    Box<dyn FnMut(&mut HeaderMap, bool, &mut FilterCallbacks<'_>) -> FilterHeadersStatus + Send>;
type Dd = Box<dyn FnMut(&mut Buffer, bool, &mut FilterCallbacks<'_>) -> FilterDataStatus + Send>;
type Dt = Box<dyn FnMut(&mut HeaderMap, &mut FilterCallbacks<'_>) -> FilterTrailersStatus + Send>;
type Tm = Box<dyn FnMut(TimerId, &mut FilterCallbacks<'_>) + Send>;

/// A filter whose every callback is a closure (default: Continue), logging calls.
struct Probe {
    name: &'static str,
    log: Log,
    dh: Option<Dh>,
    dd: Option<Dd>,
    dt: Option<Dt>,
    eh: Option<Dh>,
    ed: Option<Dd>,
    et: Option<Dt>,
    timer: Option<Tm>,
}

impl Probe {
    fn new(name: &'static str, log: &Log) -> Self {
        Self {
            name,
            log: log.clone(),
            dh: None,
            dd: None,
            dt: None,
            eh: None,
            ed: None,
            et: None,
            timer: None,
        }
    }
    fn push(&self, what: String) {
        self.log.lock().unwrap().push(format!("{}:{what}", self.name));
    }
    fn dh(
        mut self,
        f: impl FnMut(&mut HeaderMap, bool, &mut FilterCallbacks<'_>) -> FilterHeadersStatus
        + Send
        + 'static,
    ) -> Self {
        self.dh = Some(Box::new(f));
        self
    }
    fn dd(
        mut self,
        f: impl FnMut(&mut Buffer, bool, &mut FilterCallbacks<'_>) -> FilterDataStatus + Send + 'static,
    ) -> Self {
        self.dd = Some(Box::new(f));
        self
    }
    #[allow(dead_code)]
    fn dt(
        mut self,
        f: impl FnMut(&mut HeaderMap, &mut FilterCallbacks<'_>) -> FilterTrailersStatus + Send + 'static,
    ) -> Self {
        self.dt = Some(Box::new(f));
        self
    }
    fn eh(
        mut self,
        f: impl FnMut(&mut HeaderMap, bool, &mut FilterCallbacks<'_>) -> FilterHeadersStatus
        + Send
        + 'static,
    ) -> Self {
        self.eh = Some(Box::new(f));
        self
    }
    fn ed(
        mut self,
        f: impl FnMut(&mut Buffer, bool, &mut FilterCallbacks<'_>) -> FilterDataStatus + Send + 'static,
    ) -> Self {
        self.ed = Some(Box::new(f));
        self
    }
    fn on_timer(
        mut self,
        f: impl FnMut(TimerId, &mut FilterCallbacks<'_>) + Send + 'static,
    ) -> Self {
        self.timer = Some(Box::new(f));
        self
    }
    fn chain(self) -> ChainFilter {
        ChainFilter::new(self.name, HttpFilterInstance::dual(self))
    }
}

impl StreamFilterBase for Probe {
    fn on_timer(&mut self, t: TimerId, cb: &mut FilterCallbacks<'_>) {
        self.push("timer".into());
        if let Some(f) = &mut self.timer {
            f(t, cb)
        }
    }
    fn on_stream_complete(&mut self, s: &CompletedStream<'_>) {
        self.push(format!("complete {:?}", s.info.response_code));
    }
    fn on_destroy(&mut self) {
        self.push("destroy".into());
    }
}

impl StreamDecoderFilter for Probe {
    fn decode_headers(
        &mut self,
        h: &mut HeaderMap,
        end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        self.push(format!("dh end={end}"));
        self.dh.as_mut().map_or(FilterHeadersStatus::Continue, |f| f(h, end, cb))
    }
    fn decode_data(
        &mut self,
        d: &mut Buffer,
        end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterDataStatus {
        self.push(format!("dd {:?} end={end}", String::from_utf8_lossy(&d.to_vec())));
        self.dd.as_mut().map_or(FilterDataStatus::Continue, |f| f(d, end, cb))
    }
    fn decode_trailers(
        &mut self,
        t: &mut HeaderMap,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterTrailersStatus {
        self.push("dt".into());
        self.dt.as_mut().map_or(FilterTrailersStatus::Continue, |f| f(t, cb))
    }
}

impl StreamEncoderFilter for Probe {
    fn encode_headers(
        &mut self,
        h: &mut HeaderMap,
        end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        self.push(format!("eh {:?} end={end}", h.status()));
        self.eh.as_mut().map_or(FilterHeadersStatus::Continue, |f| f(h, end, cb))
    }
    fn encode_data(
        &mut self,
        d: &mut Buffer,
        end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterDataStatus {
        self.push(format!("ed {:?} end={end}", String::from_utf8_lossy(&d.to_vec())));
        self.ed.as_mut().map_or(FilterDataStatus::Continue, |f| f(d, end, cb))
    }
    fn encode_trailers(
        &mut self,
        t: &mut HeaderMap,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterTrailersStatus {
        self.push("et".into());
        self.et.as_mut().map_or(FilterTrailersStatus::Continue, |f| f(t, cb))
    }
}

fn request(method: &str, path: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.try_insert(":method", method).unwrap();
    h.try_insert(":path", path).unwrap();
    h.try_insert(":authority", "example.com").unwrap();
    h
}

fn response(status: u16) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.try_insert(":status", &status.to_string()).unwrap();
    h
}

fn data(s: &str) -> Buffer {
    Buffer::from(s.as_bytes())
}

/// Events rendered as text (data bodies inline).
fn events(fm: &mut FilterManager) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(e) = fm.next_event() {
        out.push(match e {
            StreamEvent::UpstreamHeaders { end_stream } => format!("up headers end={end_stream}"),
            StreamEvent::UpstreamData { data, end_stream } => {
                format!("up data {:?} end={end_stream}", String::from_utf8_lossy(&data.to_vec()))
            }
            StreamEvent::UpstreamTrailers => "up trailers".into(),
            StreamEvent::DownstreamHeaders { end_stream } => format!(
                "down headers {:?} end={end_stream}",
                fm.response_headers().and_then(|h| h.status())
            ),
            StreamEvent::DownstreamData { data, end_stream } => {
                format!("down data {:?} end={end_stream}", String::from_utf8_lossy(&data.to_vec()))
            }
            StreamEvent::DownstreamTrailers => "down trailers".into(),
            StreamEvent::LocalReply { status } => format!("local reply {status}"),
            StreamEvent::StartTimer { timer, after } => {
                format!("start timer {} {after:?}", timer.0)
            }
            StreamEvent::CancelTimer(t) => format!("cancel timer {}", t.0),
            StreamEvent::DownstreamReadDisable(b) => format!("downstream read disable {b}"),
            StreamEvent::UpstreamReadDisable(b) => format!("upstream read disable {b}"),
            StreamEvent::ResetStream { details } => format!("reset {details}"),
            StreamEvent::DownstreamInformational(h) => format!("1xx {:?}", h.status()),
        });
    }
    out
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

fn fm(chain: Vec<ChainFilter>) -> FilterManager {
    FilterManager::new(chain, &FilterManagerConfig::default())
}

/// A filter that stops on headers and continues when its timer fires.
fn pauser(name: &'static str, log: &Log, status: FilterHeadersStatus) -> Probe {
    Probe::new(name, log)
        .dh(move |_, _, cb| {
            cb.start_timer(Duration::from_millis(10));
            status
        })
        .on_timer(|_, cb| cb.continue_decoding())
}

#[test]
fn decoders_run_in_order_encoders_in_reverse() {
    let log = Log::default();
    let mut fm = fm(vec![
        Probe::new("a", &log).chain(),
        Probe::new("b", &log).chain(),
        Probe::new("c", &log).chain(),
    ]);
    fm.decode_headers(request("POST", "/"), false);
    fm.decode_data(data("body"), true);
    assert_eq!(events(&mut fm), ["up headers end=false", "up data \"body\" end=true"]);
    assert_eq!(fm.request_headers().and_then(|h| h.path()), Some("/"));
    fm.encode_headers(response(200), false);
    fm.encode_data(data("resp"), true);
    assert_eq!(
        events(&mut fm),
        ["down headers Some(200) end=false", "down data \"resp\" end=true"]
    );
    assert_eq!(
        take(&log),
        [
            "a:dh end=false",
            "b:dh end=false",
            "c:dh end=false",
            "a:dd \"body\" end=true",
            "b:dd \"body\" end=true",
            "c:dd \"body\" end=true",
            "c:eh Some(200) end=false",
            "b:eh Some(200) end=false",
            "a:eh Some(200) end=false",
            "c:ed \"resp\" end=true",
            "b:ed \"resp\" end=true",
            "a:ed \"resp\" end=true",
        ]
    );
    assert!(fm.response_complete() && fm.request_complete());
    assert_eq!(fm.stream_info().bytes_received, 4);
    assert_eq!(fm.stream_info().bytes_sent, 4);
    assert_eq!(fm.stream_info().response_code, Some(200));
    fm.on_stream_complete();
    fm.on_stream_complete();
    drop(fm);
    let l = take(&log);
    assert_eq!(l.iter().filter(|s| s.contains("complete Some(200)")).count(), 3);
    assert_eq!(l.iter().filter(|s| s.ends_with("destroy")).count(), 3);
}

#[test]
fn header_only_request_ends_on_headers() {
    let log = Log::default();
    let mut fm = fm(vec![Probe::new("a", &log).chain()]);
    fm.decode_headers(request("GET", "/"), true);
    assert_eq!(events(&mut fm), ["up headers end=true"]);
    assert_eq!(take(&log), ["a:dh end=true"]);
    fm.encode_headers(response(204), true);
    assert_eq!(events(&mut fm), ["down headers Some(204) end=true"]);
}

#[test]
fn stop_iteration_on_headers_still_feeds_data_to_the_stopped_filter() {
    let log = Log::default();
    let b = pauser("b", &log, FilterHeadersStatus::StopIteration)
        .dd(|_, _, _| FilterDataStatus::StopIterationAndBuffer);
    let mut fm = fm(vec![Probe::new("a", &log).chain(), b.chain(), Probe::new("c", &log).chain()]);
    fm.decode_headers(request("POST", "/"), false);
    fm.decode_data(data("12"), false);
    fm.decode_data(data("34"), true);
    assert_eq!(events(&mut fm), ["start timer 1 10ms"]);
    assert_eq!(
        take(&log),
        [
            "a:dh end=false",
            "b:dh end=false",
            "a:dd \"12\" end=false",
            "b:dd \"12\" end=false",
            "a:dd \"34\" end=true",
            "b:dd \"34\" end=true"
        ]
    );
    fm.on_timer(TimerId(1));
    // Resumes after b: headers, then the buffered body at once, ending the stream.
    assert_eq!(take(&log), ["b:timer", "c:dh end=false", "c:dd \"1234\" end=true"]);
    assert_eq!(events(&mut fm), ["up headers end=false", "up data \"1234\" end=true"]);
}

#[test]
fn stop_all_holds_data_back_from_the_stopped_filter_and_resumes_at_it() {
    let log = Log::default();
    let b = pauser("b", &log, FilterHeadersStatus::StopAllIterationAndBuffer);
    let mut fm = fm(vec![Probe::new("a", &log).chain(), b.chain(), Probe::new("c", &log).chain()]);
    fm.decode_headers(request("POST", "/"), false);
    fm.decode_data(data("xy"), false);
    let mut t = HeaderMap::new();
    t.try_insert("grpc-status", "0").unwrap();
    fm.decode_trailers(t);
    assert_eq!(take(&log), ["a:dh end=false", "b:dh end=false", "a:dd \"xy\" end=false", "a:dt"]);
    fm.on_timer(TimerId(1));
    assert_eq!(
        take(&log),
        [
            "b:timer",
            "c:dh end=false",
            "b:dd \"xy\" end=false",
            "c:dd \"xy\" end=false",
            "b:dt",
            "c:dt"
        ]
    );
    assert_eq!(
        events(&mut fm),
        ["start timer 1 10ms", "up headers end=false", "up data \"xy\" end=false", "up trailers"]
    );
    assert_eq!(fm.request_trailers().and_then(|t| t.get_str("grpc-status")), Some("0"));
}

#[test]
fn continue_from_data_after_a_headers_stop_replays_headers_first() {
    let log = Log::default();
    let b =
        Probe::new("b", &log).dh(|_, _, _| FilterHeadersStatus::StopIteration).dd(|_, end, _| {
            if end { FilterDataStatus::Continue } else { FilterDataStatus::StopIterationAndBuffer }
        });
    let mut fm = fm(vec![b.chain(), Probe::new("c", &log).chain()]);
    fm.decode_headers(request("POST", "/"), false);
    fm.decode_data(data("a"), false);
    fm.decode_data(data("b"), true);
    assert_eq!(
        take(&log),
        [
            "b:dh end=false",
            "b:dd \"a\" end=false",
            "b:dd \"b\" end=true",
            "c:dh end=false",
            "c:dd \"ab\" end=true"
        ]
    );
    assert_eq!(events(&mut fm), ["up headers end=false", "up data \"ab\" end=true"]);
}

#[test]
fn request_over_the_buffer_limit_gets_413_through_all_encoders() {
    let log = Log::default();
    let b = Probe::new("b", &log).dh(|_, _, _| FilterHeadersStatus::StopAllIterationAndBuffer);
    let cfg = FilterManagerConfig { buffer_limit: 4, ..Default::default() };
    let mut fm = FilterManager::new(
        vec![Probe::new("a", &log).chain(), b.chain(), Probe::new("c", &log).chain()],
        &cfg,
    );
    fm.decode_headers(request("POST", "/"), false);
    fm.decode_data(data("123"), false);
    assert!(events(&mut fm).is_empty());
    fm.decode_data(data("45"), false);
    assert_eq!(
        events(&mut fm),
        [
            "local reply 413",
            "down headers Some(413) end=false",
            "down data \"Payload Too Large\" end=true"
        ]
    );
    assert_eq!(
        fm.stream_info().response_code_details.as_deref(),
        Some("request_payload_too_large")
    );
    let l = take(&log);
    // Every encoder filter sees the local reply, c (never decoded past b) included.
    assert!(l.contains(&"c:eh Some(413) end=false".to_string()), "{l:?}");
    assert!(l.contains(&"a:ed \"Payload Too Large\" end=true".to_string()), "{l:?}");
    // The rest of the request is dropped, and the upstream response ignored.
    fm.decode_data(data("678"), true);
    fm.encode_headers(response(200), true);
    assert!(events(&mut fm).is_empty());
    assert!(take(&log).is_empty());
}

#[test]
fn watermark_stops_ask_to_stop_reading_instead_of_failing() {
    let log = Log::default();
    let b = pauser("b", &log, FilterHeadersStatus::StopAllIterationAndWatermark);
    let cfg = FilterManagerConfig { buffer_limit: 4, ..Default::default() };
    let mut fm = FilterManager::new(vec![b.chain()], &cfg);
    fm.decode_headers(request("POST", "/"), false);
    fm.decode_data(data("12345"), false);
    fm.decode_data(data("6"), true);
    assert_eq!(events(&mut fm), ["start timer 1 10ms", "downstream read disable true"]);
    fm.on_timer(TimerId(1));
    assert_eq!(
        events(&mut fm),
        ["up headers end=false", "downstream read disable false", "up data \"123456\" end=true"]
    );
}

#[test]
fn response_over_the_limit_gets_a_direct_500() {
    let log = Log::default();
    let a = Probe::new("a", &log)
        .eh(|_, _, _| FilterHeadersStatus::StopIteration)
        .ed(|_, _, _| FilterDataStatus::StopIterationAndBuffer);
    let cfg = FilterManagerConfig { buffer_limit: 3, ..Default::default() };
    let mut fm = FilterManager::new(vec![a.chain(), Probe::new("b", &log).chain()], &cfg);
    fm.decode_headers(request("GET", "/"), true);
    fm.encode_headers(response(200), false);
    fm.encode_data(data("ab"), false);
    fm.encode_data(data("cd"), false);
    let ev = events(&mut fm);
    assert_eq!(
        ev,
        [
            "up headers end=true",
            "local reply 500",
            "down headers Some(500) end=false",
            "down data \"Internal Server Error\" end=true"
        ]
    );
    // Bypassed the encoder filters.
    assert!(!take(&log).iter().any(|l| l.contains("500")));
    assert_eq!(
        fm.stream_info().response_code_details.as_deref(),
        Some("response_payload_too_large")
    );
    assert_eq!(fm.stream_info().response_code, Some(500));
}

#[test]
fn local_reply_from_decode_headers_skips_later_decoders() {
    let log = Log::default();
    let b = Probe::new("b", &log).dh(|_, _, cb| {
        cb.stream_info_mut().set_response_flag(ResponseFlag::RateLimited);
        cb.send_local_reply(
            429,
            "slow down",
            |h| h.try_insert("x-why", "rl").unwrap(),
            "local_rate_limited",
        );
        FilterHeadersStatus::StopIteration
    });
    let mut fm = fm(vec![Probe::new("a", &log).chain(), b.chain(), Probe::new("c", &log).chain()]);
    fm.decode_headers(request("GET", "/"), true);
    assert_eq!(
        events(&mut fm),
        ["local reply 429", "down headers Some(429) end=false", "down data \"slow down\" end=true"]
    );
    assert_eq!(
        take(&log),
        [
            "a:dh end=true",
            "b:dh end=true",
            "c:eh Some(429) end=false",
            "b:eh Some(429) end=false",
            "a:eh Some(429) end=false",
            "c:ed \"slow down\" end=true",
            "b:ed \"slow down\" end=true",
            "a:ed \"slow down\" end=true",
        ]
    );
    let h = fm.response_headers().unwrap();
    assert_eq!(h.get_str("x-why"), Some("rl"));
    assert_eq!(h.get_str("content-length"), Some("9"));
    assert_eq!(h.get_str("content-type"), Some("text/plain"));
    assert_eq!(fm.stream_info().response_flags.to_string(), "RL");
}

#[test]
fn local_reply_to_head_has_no_body() {
    let log = Log::default();
    let a = Probe::new("a", &log).dh(|_, _, cb| {
        cb.send_local_reply(403, "no", |_| {}, "denied");
        FilterHeadersStatus::StopIteration
    });
    let mut fm = fm(vec![a.chain()]);
    fm.decode_headers(request("HEAD", "/"), true);
    assert_eq!(events(&mut fm), ["local reply 403", "down headers Some(403) end=true"]);
    assert_eq!(fm.response_headers().unwrap().get_str("content-length"), Some("2"));
}

#[test]
fn local_reply_while_encoding_goes_straight_to_the_codec() {
    let log = Log::default();
    let b = Probe::new("b", &log).eh(|_, _, cb| {
        cb.send_local_reply(502, "bad", |_| {}, "filter_said_so");
        FilterHeadersStatus::StopIteration
    });
    let mut fm = fm(vec![Probe::new("a", &log).chain(), b.chain(), Probe::new("c", &log).chain()]);
    fm.decode_headers(request("GET", "/"), true);
    take(&log);
    fm.encode_headers(response(200), false);
    fm.encode_data(data("ignored"), true);
    assert_eq!(
        events(&mut fm),
        [
            "up headers end=true",
            "local reply 502",
            "down headers Some(502) end=false",
            "down data \"bad\" end=true"
        ]
    );
    assert_eq!(take(&log), ["c:eh Some(200) end=false", "b:eh Some(200) end=false"]);
}

#[test]
fn local_reply_after_headers_went_out_is_a_reset() {
    let log = Log::default();
    let a = Probe::new("a", &log).ed(|_, _, cb| {
        cb.send_local_reply(500, "x", |_| {}, "late");
        FilterDataStatus::StopIterationNoBuffer
    });
    let mut fm = fm(vec![a.chain()]);
    fm.decode_headers(request("GET", "/"), true);
    fm.encode_headers(response(200), false);
    fm.encode_data(data("abc"), true);
    assert_eq!(
        events(&mut fm),
        ["up headers end=true", "down headers Some(200) end=false", "reset late"]
    );
}

#[test]
fn a_filter_can_add_a_body_to_a_header_only_request() {
    let log = Log::default();
    let a = Probe::new("a", &log).dh(|_, _, cb| {
        cb.add_decoded_data(&mut data("added"), false);
        FilterHeadersStatus::Continue
    });
    let mut fm = fm(vec![a.chain(), Probe::new("b", &log).chain()]);
    fm.decode_headers(request("GET", "/"), true);
    assert_eq!(take(&log), ["a:dh end=true", "b:dh end=false", "b:dd \"added\" end=true"]);
    assert_eq!(events(&mut fm), ["up headers end=false", "up data \"added\" end=true"]);
}

#[test]
fn trailers_added_on_the_last_data_follow_it() {
    let log = Log::default();
    let a = Probe::new("a", &log).dd(|_, end, cb| {
        if end {
            cb.add_decoded_trailers().try_insert("x-checksum", "42").unwrap();
        }
        FilterDataStatus::Continue
    });
    let mut fm = fm(vec![a.chain(), Probe::new("b", &log).chain()]);
    fm.decode_headers(request("POST", "/"), false);
    fm.decode_data(data("d"), true);
    assert_eq!(
        take(&log),
        ["a:dh end=false", "b:dh end=false", "a:dd \"d\" end=true", "b:dd \"d\" end=false", "b:dt"]
    );
    assert_eq!(events(&mut fm), ["up headers end=false", "up data \"d\" end=false", "up trailers"]);
    assert_eq!(fm.request_trailers().unwrap().get_str("x-checksum"), Some("42"));
}

#[test]
fn stop_no_buffer_then_add_back_keeps_order() {
    let log = Log::default();
    let held = Arc::new(Mutex::new(Buffer::new()));
    let (h1, h2) = (held.clone(), held.clone());
    let a = Probe::new("a", &log)
        .dd(move |d, _, cb| {
            h1.lock().unwrap().move_from(d);
            cb.start_timer(Duration::from_millis(1));
            FilterDataStatus::StopIterationNoBuffer
        })
        .on_timer(move |_, cb| {
            let mut d = std::mem::take(&mut *h2.lock().unwrap());
            if !d.is_empty() {
                cb.add_decoded_data(&mut d, false);
            }
            cb.continue_decoding();
        });
    let mut fm = fm(vec![a.chain()]);
    fm.decode_headers(request("POST", "/"), false);
    fm.decode_data(data("ab"), false);
    fm.decode_data(data("cd"), true);
    let ev = events(&mut fm);
    assert_eq!(ev[0], "up headers end=false");
    fm.on_timer(TimerId(1));
    assert_eq!(events(&mut fm), ["up data \"abcd\" end=true"]);
    fm.on_timer(TimerId(2));
    assert!(events(&mut fm).is_empty(), "continuing twice is a no-op");
}

#[test]
fn decoder_filter_can_answer_as_a_terminal() {
    let log = Log::default();
    let a = Probe::new("a", &log).dh(|_, _, cb| {
        let mut h = HeaderMap::new();
        h.try_insert(":status", "200").unwrap();
        cb.encode_headers(h, true, "cors_response");
        FilterHeadersStatus::StopIteration
    });
    let mut fm = fm(vec![Probe::new("z", &log).chain(), a.chain(), Probe::new("b", &log).chain()]);
    fm.decode_headers(request("OPTIONS", "/"), true);
    assert_eq!(events(&mut fm), ["down headers Some(200) end=true"]);
    assert_eq!(
        take(&log),
        [
            "z:dh end=true",
            "a:dh end=true",
            "b:eh Some(200) end=true",
            "a:eh Some(200) end=true",
            "z:eh Some(200) end=true"
        ]
    );
    assert_eq!(fm.stream_info().response_code_details.as_deref(), Some("cors_response"));
}

#[test]
fn routes_choose_filters_and_clear_route_cache_re_resolves() {
    use week1_core::config::filters::{FilterConfig, PerFilterConfig};
    use week1_core::router::RawFilterConfigs;
    let log = Log::default();
    let off = PerFilterConfig::FilterConfig(FilterConfig {
        config: None,
        is_optional: false,
        disabled: true,
    });
    let on = PerFilterConfig::FilterConfig(FilterConfig {
        config: None,
        is_optional: false,
        disabled: false,
    });
    let resolver = route::FnRouteResolver(move |h: &HeaderMap| -> Option<Arc<dyn RouteInfo>> {
        let r = ResolvedRoute::forward(h.path().unwrap_or_default(), "c")
            .with_filter_config("a", &off, &RawFilterConfigs)
            .and_then(|r| r.with_filter_config("c", &on, &RawFilterConfigs))
            .unwrap();
        Some(Arc::new(r))
    });
    let cfg =
        FilterManagerConfig { route_resolver: Some(Arc::new(resolver)), ..Default::default() };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let b = Probe::new("b", &log).dh(move |h, _, cb| {
        s.lock().unwrap().push(cb.route().map(|r| r.name().to_string()));
        h.try_insert(":path", "/rewritten").unwrap();
        cb.clear_route_cache();
        FilterHeadersStatus::Continue
    });
    let s = seen.clone();
    let c = Probe::new("c", &log).dh(move |_, _, cb| {
        s.lock().unwrap().push(cb.route().map(|r| r.name().to_string()));
        FilterHeadersStatus::Continue
    });
    let mut c = c.chain();
    c.disabled = true; // enabled by the route
    let mut fm = FilterManager::new(vec![Probe::new("a", &log).chain(), b.chain(), c], &cfg);
    fm.decode_headers(request("GET", "/orig"), true);
    assert_eq!(take(&log), ["b:dh end=true", "c:dh end=true"]);
    assert_eq!(*seen.lock().unwrap(), [Some("/orig".to_string()), Some("/rewritten".to_string())]);
    assert_eq!(fm.stream_info().route_name.as_deref(), Some("/rewritten"));
}

#[test]
fn destroy_cancels_pending_timers() {
    let log = Log::default();
    let mut fm = fm(vec![pauser("a", &log, FilterHeadersStatus::StopIteration).chain()]);
    fm.decode_headers(request("GET", "/"), true);
    assert_eq!(events(&mut fm), ["start timer 1 10ms"]);
    fm.destroy();
    assert_eq!(events(&mut fm), ["cancel timer 1"]);
    fm.on_timer(TimerId(1));
    assert!(events(&mut fm).is_empty());
}

#[test]
fn response_before_the_request_ends_drops_the_rest_of_the_request() {
    let log = Log::default();
    let mut fm = fm(vec![Probe::new("a", &log).chain()]);
    fm.decode_headers(request("POST", "/"), false);
    fm.encode_headers(response(413), true);
    fm.decode_data(data("late"), true);
    assert_eq!(events(&mut fm), ["up headers end=false", "down headers Some(413) end=true"]);
    assert_eq!(take(&log), ["a:dh end=false", "a:eh Some(413) end=true"]);
}
