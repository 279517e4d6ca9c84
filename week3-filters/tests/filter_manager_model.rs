//! State-machine property test of the HTTP FilterManager.
//!
//! Random chains of scripted filters stop (every status Envoy has except the
//! data-dropping `StopIterationNoBuffer`) at random points and resume from
//! timers fired in random order; the request and the response are cut into
//! random chunks, with or without trailers; one filter may send a local reply.
//! A small reference model says what must come out: every filter and the
//! upstream see the request exactly once, in order, with end of stream exactly
//! once; the downstream sees the upstream response (or the local reply)
//! likewise; nothing is lost or duplicated.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use week1_core::headers::HeaderMap;
use week3_filters::buffer::Buffer;
use week3_filters::http::*;

#[derive(Debug, Clone, Copy)]
enum H {
    Continue,
    Stop,
    StopAllBuffer,
    StopAllWatermark,
}

#[derive(Debug, Clone, Copy)]
enum D {
    Continue,
    Buffer,
    Watermark,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ReplyAt {
    Headers,
    Data,
    Trailers,
}

#[derive(Debug, Clone)]
struct Script {
    dh: H,
    dd: Vec<D>,
    dt_stop: bool,
    eh: H,
    ed: Vec<D>,
    et_stop: bool,
    reply: Option<ReplyAt>,
}

/// What one filter saw.
#[derive(Debug, Default, Clone)]
struct Seen {
    dec_headers: usize,
    dec_body: Vec<u8>,
    dec_ends: usize,
    dec_trailers: usize,
    enc_headers: usize,
    enc_body: Vec<u8>,
    enc_ends: usize,
    enc_trailers: usize,
    replied: bool,
}

struct Scripted {
    s: Script,
    seen: Arc<Mutex<Seen>>,
    dd_calls: usize,
    ed_calls: usize,
    timers: Vec<(TimerId, bool)>,
}

impl Scripted {
    fn stop_headers(
        &mut self,
        h: H,
        decode: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        let status = match h {
            H::Continue => return FilterHeadersStatus::Continue,
            H::Stop => FilterHeadersStatus::StopIteration,
            H::StopAllBuffer => FilterHeadersStatus::StopAllIterationAndBuffer,
            H::StopAllWatermark => FilterHeadersStatus::StopAllIterationAndWatermark,
        };
        let t = cb.start_timer(Duration::from_millis(1));
        self.timers.push((t, decode));
        status
    }

    fn stop_data(&mut self, d: D, decode: bool, cb: &mut FilterCallbacks<'_>) -> FilterDataStatus {
        let status = match d {
            D::Continue => return FilterDataStatus::Continue,
            D::Buffer => FilterDataStatus::StopIterationAndBuffer,
            D::Watermark => FilterDataStatus::StopIterationAndWatermark,
        };
        let t = cb.start_timer(Duration::from_millis(1));
        self.timers.push((t, decode));
        status
    }

    fn reply(&mut self, cb: &mut FilterCallbacks<'_>) {
        self.seen.lock().unwrap().replied = true;
        cb.send_local_reply(418, "teapot", |_| {}, "model");
    }
}

impl StreamFilterBase for Scripted {
    fn on_timer(&mut self, t: TimerId, cb: &mut FilterCallbacks<'_>) {
        if let Some(i) = self.timers.iter().position(|(x, _)| *x == t) {
            let (_, decode) = self.timers.remove(i);
            if decode { cb.continue_decoding() } else { cb.continue_encoding() }
        }
    }
}

impl StreamDecoderFilter for Scripted {
    fn decode_headers(
        &mut self,
        _: &mut HeaderMap,
        end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        {
            let mut s = self.seen.lock().unwrap();
            s.dec_headers += 1;
            s.dec_ends += usize::from(end);
        }
        if self.s.reply == Some(ReplyAt::Headers) {
            self.reply(cb);
            return FilterHeadersStatus::StopIteration;
        }
        self.stop_headers(self.s.dh, true, cb)
    }
    fn decode_data(
        &mut self,
        d: &mut Buffer,
        end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterDataStatus {
        {
            let mut s = self.seen.lock().unwrap();
            s.dec_body.extend(d.to_vec());
            s.dec_ends += usize::from(end);
        }
        if self.s.reply == Some(ReplyAt::Data) {
            self.reply(cb);
            return FilterDataStatus::StopIterationNoBuffer;
        }
        let d = self.s.dd[self.dd_calls % self.s.dd.len()];
        self.dd_calls += 1;
        self.stop_data(d, true, cb)
    }
    fn decode_trailers(
        &mut self,
        _: &mut HeaderMap,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterTrailersStatus {
        {
            let mut s = self.seen.lock().unwrap();
            s.dec_trailers += 1;
            s.dec_ends += 1;
        }
        if self.s.reply == Some(ReplyAt::Trailers) {
            self.reply(cb);
            return FilterTrailersStatus::StopIteration;
        }
        if self.s.dt_stop {
            let t = cb.start_timer(Duration::from_millis(1));
            self.timers.push((t, true));
            return FilterTrailersStatus::StopIteration;
        }
        FilterTrailersStatus::Continue
    }
}

impl StreamEncoderFilter for Scripted {
    fn encode_headers(
        &mut self,
        _: &mut HeaderMap,
        end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        {
            let mut s = self.seen.lock().unwrap();
            s.enc_headers += 1;
            s.enc_ends += usize::from(end);
        }
        self.stop_headers(self.s.eh, false, cb)
    }
    fn encode_data(
        &mut self,
        d: &mut Buffer,
        end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterDataStatus {
        {
            let mut s = self.seen.lock().unwrap();
            s.enc_body.extend(d.to_vec());
            s.enc_ends += usize::from(end);
        }
        let d = self.s.ed[self.ed_calls % self.s.ed.len()];
        self.ed_calls += 1;
        self.stop_data(d, false, cb)
    }
    fn encode_trailers(
        &mut self,
        _: &mut HeaderMap,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterTrailersStatus {
        {
            let mut s = self.seen.lock().unwrap();
            s.enc_trailers += 1;
            s.enc_ends += 1;
        }
        if self.s.et_stop {
            let t = cb.start_timer(Duration::from_millis(1));
            self.timers.push((t, false));
            return FilterTrailersStatus::StopIteration;
        }
        FilterTrailersStatus::Continue
    }
}

fn h() -> impl Strategy<Value = H> {
    prop_oneof![4 => Just(H::Continue), 2 => Just(H::Stop), 1 => Just(H::StopAllBuffer), 1 => Just(H::StopAllWatermark)]
}

fn d() -> impl Strategy<Value = D> {
    prop_oneof![4 => Just(D::Continue), 2 => Just(D::Buffer), 1 => Just(D::Watermark)]
}

fn script() -> impl Strategy<Value = Script> {
    (
        h(),
        prop::collection::vec(d(), 1..4),
        any::<bool>(),
        h(),
        prop::collection::vec(d(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(dh, dd, dt_stop, eh, ed, et_stop)| Script {
            dh,
            dd,
            dt_stop,
            eh,
            ed,
            et_stop,
            reply: None,
        })
}

/// A body cut into chunks.
fn chunks() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(1usize..40, 0..5).prop_map(|sizes| {
        let mut next = 0u8;
        sizes
            .into_iter()
            .map(|n| {
                (0..n)
                    .map(|_| {
                        next = next.wrapping_add(1);
                        next
                    })
                    .collect()
            })
            .collect()
    })
}

/// What the owner saw, per side.
#[derive(Debug, Default)]
struct Side {
    headers: usize,
    body: Vec<u8>,
    ends: usize,
    trailers: usize,
    /// Something arrived after the end.
    after_end: bool,
    status: Option<u16>,
}

#[derive(Debug, Default)]
struct Owner {
    up: Side,
    down: Side,
    timers: Vec<TimerId>,
    local_replies: usize,
}

fn drain(fm: &mut FilterManager, o: &mut Owner) {
    while let Some(e) = fm.next_event() {
        let (side, end, body, is_headers, is_trailers) = match e {
            StreamEvent::UpstreamHeaders { end_stream } => {
                (&mut o.up, end_stream, None, true, false)
            }
            StreamEvent::UpstreamData { data, end_stream } => {
                (&mut o.up, end_stream, Some(data), false, false)
            }
            StreamEvent::UpstreamTrailers => (&mut o.up, true, None, false, true),
            StreamEvent::DownstreamHeaders { end_stream } => {
                o.down.status = fm.response_headers().and_then(|h| h.status());
                (&mut o.down, end_stream, None, true, false)
            }
            StreamEvent::DownstreamData { data, end_stream } => {
                (&mut o.down, end_stream, Some(data), false, false)
            }
            StreamEvent::DownstreamTrailers => (&mut o.down, true, None, false, true),
            StreamEvent::StartTimer { timer, .. } => {
                o.timers.push(timer);
                continue;
            }
            StreamEvent::CancelTimer(t) => {
                o.timers.retain(|x| *x != t);
                continue;
            }
            StreamEvent::LocalReply { .. } => {
                o.local_replies += 1;
                continue;
            }
            _ => continue,
        };
        if side.ends > 0 {
            side.after_end = true;
        }
        side.headers += usize::from(is_headers);
        side.trailers += usize::from(is_trailers);
        side.ends += usize::from(end);
        if let Some(b) = body {
            side.body.extend(b.to_vec());
        }
    }
}

fn fire_one(fm: &mut FilterManager, o: &mut Owner, pick: u8) -> bool {
    if o.timers.is_empty() {
        return false;
    }
    let t = o.timers.remove(usize::from(pick) % o.timers.len());
    fm.on_timer(t);
    drain(fm, o);
    true
}

fn trailers() -> HeaderMap {
    let mut t = HeaderMap::new();
    t.try_insert("x-t", "1").unwrap();
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn filter_manager_matches_the_model(
        scripts in prop::collection::vec(script(), 1..5),
        reply in prop::option::weighted(0.25, (0usize..4, prop_oneof![Just(ReplyAt::Headers), Just(ReplyAt::Data), Just(ReplyAt::Trailers)])),
        req in chunks(),
        req_trailers in any::<bool>(),
        resp in chunks(),
        resp_trailers in any::<bool>(),
        picks in prop::collection::vec(any::<u8>(), 64),
        interleave in prop::collection::vec(0u8..3, 32),
        reuse in prop::option::of((script(), chunks())),
    ) {
        let mut scripts = scripts;
        if let Some((i, at)) = reply {
            let i = i % scripts.len();
            scripts[i].reply = Some(at);
        }
        let seen: Vec<Arc<Mutex<Seen>>> = scripts.iter().map(|_| Arc::default()).collect();
        let chain: Vec<ChainFilter> = scripts
            .iter()
            .zip(&seen)
            .enumerate()
            .map(|(i, (s, seen))| {
                let f = Scripted { s: s.clone(), seen: seen.clone(), dd_calls: 0, ed_calls: 0, timers: Vec::new() };
                ChainFilter::new(format!("f{i}"), HttpFilterInstance::dual(f))
            })
            .collect();
        let cfg = FilterManagerConfig { buffer_limit: 1 << 30, ..Default::default() };
        // A reused FilterManager (`reset`, as the HCM's pool does) behaves
        // as a new one, whatever state its previous stream was left in.
        let mut fm = match reuse {
            None => FilterManager::new(chain, &cfg),
            Some((prev_script, prev_req)) => {
                let prev_seen = Arc::default();
                let f = Scripted { s: prev_script, seen: prev_seen, dd_calls: 0, ed_calls: 0, timers: Vec::new() };
                let mut fm = FilterManager::new(vec![ChainFilter::new("prev", HttpFilterInstance::dual(f))], &cfg);
                let mut head = HeaderMap::new();
                head.try_insert(":method", "POST").unwrap();
                head.try_insert(":path", "/prev").unwrap();
                fm.decode_headers(head, false);
                for c in &prev_req {
                    fm.decode_data(Buffer::from(&c[..]), false);
                }
                fm.reset(chain, &cfg);
                prop_assert!(!fm.has_pending_events());
                prop_assert!(fm.request_headers().is_none() && !fm.response_started());
                fm
            }
        };
        let mut o = Owner::default();
        let mut picks = picks.into_iter().cycle();
        let mut inter = interleave.into_iter().cycle();
        let fire_some = |fm: &mut FilterManager, o: &mut Owner, picks: &mut dyn Iterator<Item = u8>, n: u8| {
            for _ in 0..n {
                fire_one(fm, o, picks.next().unwrap_or(0));
            }
        };

        // The request, with timers firing in between.
        let req_body: Vec<u8> = req.concat();
        let header_only = req.is_empty() && !req_trailers;
        let mut head = HeaderMap::new();
        head.try_insert(":method", "POST").unwrap();
        head.try_insert(":path", "/").unwrap();
        fm.decode_headers(head, header_only);
        drain(&mut fm, &mut o);
        for (i, c) in req.iter().enumerate() {
            fire_some(&mut fm, &mut o, &mut picks, inter.next().unwrap_or(0));
            let end = i + 1 == req.len() && !req_trailers;
            fm.decode_data(Buffer::from(&c[..]), end);
            drain(&mut fm, &mut o);
        }
        if req_trailers {
            fire_some(&mut fm, &mut o, &mut picks, inter.next().unwrap_or(0));
            fm.decode_trailers(trailers());
            drain(&mut fm, &mut o);
        }
        // Let the request reach the upstream (or a local reply happen).
        while o.up.ends == 0 && o.down.ends == 0 && fire_one(&mut fm, &mut o, picks.next().unwrap_or(0)) {}

        let replied = seen.iter().any(|s| s.lock().unwrap().replied);
        let resp_body: Vec<u8> = resp.concat();
        if !replied {
            prop_assert_eq!(o.up.ends, 1, "request never reached the upstream: {:?}", o);
            let mut head = HeaderMap::new();
            head.try_insert(":status", "200").unwrap();
            let header_only = resp.is_empty() && !resp_trailers;
            fm.encode_headers(head, header_only);
            drain(&mut fm, &mut o);
            for (i, c) in resp.iter().enumerate() {
                fire_some(&mut fm, &mut o, &mut picks, inter.next().unwrap_or(0));
                let end = i + 1 == resp.len() && !resp_trailers;
                fm.encode_data(Buffer::from(&c[..]), end);
                drain(&mut fm, &mut o);
            }
            if resp_trailers {
                fire_some(&mut fm, &mut o, &mut picks, inter.next().unwrap_or(0));
                fm.encode_trailers(trailers());
                drain(&mut fm, &mut o);
            }
        }
        while fire_one(&mut fm, &mut o, picks.next().unwrap_or(0)) {}

        // The model.
        prop_assert!(!o.up.after_end && !o.down.after_end, "events after end of stream: {:?}", o);
        prop_assert_eq!(o.down.ends, 1, "the response must end exactly once: {:?}", o);
        prop_assert_eq!(o.down.headers, 1);
        prop_assert!(o.up.headers <= 1);
        if replied {
            prop_assert_eq!(o.local_replies, 1);
            prop_assert_eq!(o.down.status, Some(418));
            prop_assert_eq!(&o.down.body[..], b"teapot");
            prop_assert!(o.up.ends <= 1);
            prop_assert!(req_body.starts_with(&o.up.body), "upstream body is not a prefix");
            for s in &seen {
                let s = s.lock().unwrap();
                prop_assert!(s.dec_headers <= 1 && s.dec_ends <= 1);
                prop_assert!(req_body.starts_with(&s.dec_body));
                prop_assert_eq!(s.enc_ends, 1, "every encoder sees the local reply end once");
                prop_assert_eq!(&s.enc_body[..], b"teapot");
            }
        } else {
            prop_assert_eq!(o.local_replies, 0);
            prop_assert_eq!(o.up.headers, 1);
            prop_assert_eq!(&o.up.body, &req_body);
            prop_assert_eq!(o.up.trailers, usize::from(req_trailers));
            prop_assert_eq!(o.down.status, Some(200));
            prop_assert_eq!(&o.down.body, &resp_body);
            prop_assert_eq!(o.down.trailers, usize::from(resp_trailers));
            for s in &seen {
                let s = s.lock().unwrap();
                prop_assert_eq!(s.dec_headers, 1);
                prop_assert_eq!(&s.dec_body, &req_body);
                prop_assert_eq!(s.dec_ends, 1);
                prop_assert_eq!(s.dec_trailers, usize::from(req_trailers));
                prop_assert_eq!(s.enc_headers, 1);
                prop_assert_eq!(&s.enc_body, &resp_body);
                prop_assert_eq!(s.enc_ends, 1);
                prop_assert_eq!(s.enc_trailers, usize::from(resp_trailers));
            }
        }
        prop_assert!(o.timers.is_empty(), "timers left armed: {:?}", o.timers);
        prop_assert!(fm.response_complete());
    }
}
