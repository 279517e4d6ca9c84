//! A chain of 5 pass-through HTTP filters, per request: a FilterManager is
//! created from the chain factory, request headers + one body chunk (end of
//! stream) go through the decoder filters, the response headers + one body
//! chunk through the encoder filters, and the events are drained. Target
//! (issue 4): under 300 ns per request.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use week1_core::headers::HeaderMap;
use week3_filters::buffer::Buffer;
use week3_filters::http::*;
use week3_filters::registry::{FilterChainFactory, HttpFilterFactory};

struct PassThrough;

impl StreamFilterBase for PassThrough {}

impl StreamDecoderFilter for PassThrough {
    fn decode_headers(
        &mut self,
        _: &mut HeaderMap,
        _: bool,
        _: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        FilterHeadersStatus::Continue
    }
}

impl StreamEncoderFilter for PassThrough {
    fn encode_headers(
        &mut self,
        _: &mut HeaderMap,
        _: bool,
        _: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        FilterHeadersStatus::Continue
    }
}

fn bench(c: &mut Criterion) {
    let factory: Arc<dyn HttpFilterFactory> = Arc::new(|| HttpFilterInstance::dual(PassThrough));
    let chain = FilterChainFactory::from_factories(
        (0..5).map(|i| (format!("pass{i}"), factory.clone())).collect(),
    );
    let config = FilterManagerConfig::default();
    let mut request = HeaderMap::new();
    for (n, v) in [
        (":method", "POST"),
        (":path", "/api/v1/items"),
        (":authority", "example.com"),
        ("user-agent", "bench"),
        ("content-length", "64"),
    ] {
        request.try_insert(n, v).unwrap_or_default();
    }
    let mut response = HeaderMap::new();
    response.try_insert(":status", "200").unwrap_or_default();
    let body = Bytes::from(vec![b'x'; 64]);

    let mut g = c.benchmark_group("filter_chain");
    g.throughput(Throughput::Elements(1));
    g.bench_function("5_pass_through_filters_request_and_response", |b| {
        b.iter(|| {
            let mut fm = FilterManager::new(chain.create_chain(), &config);
            fm.decode_headers(request.clone(), false);
            fm.decode_data(Buffer::from(body.clone()), true);
            fm.encode_headers(response.clone(), false);
            fm.encode_data(Buffer::from(body.clone()), true);
            let mut n = 0;
            while let Some(e) = fm.next_event() {
                n += 1;
                black_box(e);
            }
            black_box(n)
        })
    });
    g.bench_function("5_pass_through_filters_request_only", |b| {
        b.iter(|| {
            let mut fm = FilterManager::new(chain.create_chain(), &config);
            fm.decode_headers(request.clone(), false);
            fm.decode_data(Buffer::from(body.clone()), true);
            while let Some(e) = fm.next_event() {
                black_box(e);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
