//! Checks of `filter_chain`.

use std::cell::RefCell;
use std::rc::Rc;

use week1_core::headers::HeaderMap;
use week3_filters::buffer::Buffer;
use week3_filters::http::{FilterDataStatus, FilterHeadersStatus};

use super::week3::filter_chain::{DecoderFilter, FilterChain};

type Log = Rc<RefCell<Vec<String>>>;

/// Logs every call; answers `headers` to headers and `data` to data.
struct Probe {
    name: &'static str,
    log: Log,
    headers: FilterHeadersStatus,
    data: FilterDataStatus,
}

impl DecoderFilter for Probe {
    fn decode_headers(&mut self, headers: &mut HeaderMap, end_stream: bool) -> FilterHeadersStatus {
        self.log.borrow_mut().push(format!("{}:headers:{end_stream}", self.name));
        headers.try_append("x-seen-by", self.name).unwrap();
        self.headers
    }
    fn decode_data(&mut self, data: &mut Buffer, end_stream: bool) -> FilterDataStatus {
        let text = String::from_utf8_lossy(&data.to_vec()).into_owned();
        self.log.borrow_mut().push(format!("{}:data:{text}:{end_stream}", self.name));
        self.data
    }
}

fn chain(spec: &[(&'static str, FilterHeadersStatus, FilterDataStatus)]) -> (FilterChain, Log) {
    let log: Log = Rc::default();
    let filters = spec
        .iter()
        .map(|&(name, headers, data)| {
            Box::new(Probe { name, log: Rc::clone(&log), headers, data }) as Box<dyn DecoderFilter>
        })
        .collect();
    (FilterChain::new(filters), log)
}

fn request() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.try_insert(":method", "POST").unwrap();
    h.try_insert(":path", "/upload").unwrap();
    h
}

fn data(text: &str) -> Buffer {
    let mut b = Buffer::new();
    b.append(text.as_bytes());
    b
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.borrow_mut())
}

use FilterDataStatus as D;
use FilterHeadersStatus as H;

checks! {
    fn everything_flows_when_every_filter_continues() {
        let (mut c, log) = chain(&[("a", H::Continue, D::Continue), ("b", H::Continue, D::Continue)]);
        c.decode_headers(request(), false);
        c.decode_data(data("hi"), true);
        assert_eq!(take(&log), ["a:headers:false", "b:headers:false", "a:data:hi:true", "b:data:hi:true"]);
        let seen: Vec<_> = c.upstream_headers().unwrap().get_all("x-seen-by").map(|v| v.to_str().unwrap().to_string()).collect();
        assert_eq!(seen, ["a", "b"], "filters may change the headers");
        assert_eq!(c.upstream_body().to_vec(), b"hi");
        assert!(c.upstream_end_stream());
    }

    fn data_waits_behind_stopped_headers() {
        let (mut c, log) = chain(&[
            ("a", H::Continue, D::Continue),
            ("auth", H::StopIteration, D::Continue),
            ("c", H::Continue, D::Continue),
        ]);
        c.decode_headers(request(), false);
        c.decode_data(data("one,"), false);
        c.decode_data(data("two"), true);
        assert_eq!(take(&log), ["a:headers:false", "auth:headers:false", "a:data:one,:false", "a:data:two:true"]);
        assert!(c.upstream_headers().is_none());
        assert!(c.upstream_body().is_empty());
        c.continue_decoding();
        assert_eq!(take(&log), ["c:headers:false", "auth:data:one,two:true", "c:data:one,two:true"]);
        assert!(c.upstream_headers().is_some());
        assert_eq!(c.upstream_body().to_vec(), b"one,two");
        assert!(c.upstream_end_stream());
        c.continue_decoding(); // nothing is stopped: nothing happens
        assert!(take(&log).is_empty());
    }

    fn a_second_stop_keeps_the_data_waiting() {
        let (mut c, log) = chain(&[
            ("auth", H::StopIteration, D::Continue),
            ("ratelimit", H::StopAllIterationAndBuffer, D::Continue),
            ("c", H::Continue, D::Continue),
        ]);
        c.decode_headers(request(), false);
        c.decode_data(data("x"), true);
        c.continue_decoding();
        assert_eq!(take(&log), ["auth:headers:false", "ratelimit:headers:false", "auth:data:x:true"]);
        assert!(c.upstream_headers().is_none());
        c.continue_decoding();
        assert_eq!(take(&log), ["c:headers:false", "ratelimit:data:x:true", "c:data:x:true"]);
        assert_eq!(c.upstream_body().to_vec(), b"x");
        assert!(c.upstream_end_stream());
    }

    fn a_filter_can_consume_data() {
        let (mut c, log) = chain(&[("sink", H::Continue, D::StopIterationNoBuffer), ("b", H::Continue, D::Continue)]);
        c.decode_headers(request(), true);
        assert!(c.upstream_end_stream(), "a header-only request ends with its headers");
        let (mut c, _) = chain(&[("sink", H::Continue, D::StopIterationNoBuffer), ("b", H::Continue, D::Continue)]);
        take(&log);
        c.decode_headers(request(), false);
        c.decode_data(data("gone"), true);
        assert!(c.upstream_headers().is_some());
        assert!(c.upstream_body().is_empty());
        assert!(!c.upstream_end_stream());
    }
}
