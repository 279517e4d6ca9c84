//! A chain of 5 pass-through HTTP filters, per request: a FilterManager is
//! created from the chain factory, request headers + one body chunk (end of
//! stream) go through the decoder filters, the response headers + one body
//! chunk through the encoder filters, and the events are drained. Target
//! (issue 4): under 300 ns per request.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
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

/// The request headers, response headers and body chunk of one exchange.
fn inputs() -> (HeaderMap, HeaderMap, Bytes) {
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
    (request, response, Bytes::from(vec![b'x'; 64]))
}

fn bench(c: &mut Criterion) {
    let factory: Arc<dyn HttpFilterFactory> = Arc::new(|| HttpFilterInstance::dual(PassThrough));
    let chain = FilterChainFactory::from_factories(
        (0..5).map(|i| (format!("pass{i}"), factory.clone())).collect(),
    );
    let config = FilterManagerConfig::default();
    let (request, response, body) = inputs();

    let mut g = c.benchmark_group("filter_chain");
    g.throughput(Throughput::Elements(1));
    // The header maps and body chunks the codec would hand over are made in
    // the setup, outside the measurement: only the stream through the chain
    // (chain creation, FilterManager, 5 filters each way, events) is timed.
    let inputs = || {
        (request.clone(), Buffer::from(body.clone()), response.clone(), Buffer::from(body.clone()))
    };
    g.bench_function("5_pass_through_filters_request_and_response", |b| {
        b.iter_batched(
            inputs,
            |(req, req_body, resp, resp_body)| {
                one_stream(&chain, &config, req, req_body, Some((resp, resp_body)))
            },
            BatchSize::SmallInput,
        )
    });
    // As the HCM runs streams: each worker reuses finished streams'
    // FilterManagers (`reset`), so a stream allocates nothing of its own.
    g.bench_function("5_pass_through_filters_request_and_response_pooled", |b| {
        let mut fm = FilterManager::new(chain.chain_filters(), &config);
        b.iter_batched(
            inputs,
            |(req, req_body, resp, resp_body)| {
                fm.reset(chain.chain_filters(), &config);
                run_stream(&mut fm, req, req_body, Some((resp, resp_body)))
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("5_pass_through_filters_request_only", |b| {
        b.iter_batched(
            inputs,
            |(req, req_body, _, _)| one_stream(&chain, &config, req, req_body, None),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// One request (and response) through the chain; returns the event count.
fn one_stream(
    chain: &FilterChainFactory,
    config: &FilterManagerConfig,
    request: HeaderMap,
    request_body: Buffer,
    response: Option<(HeaderMap, Buffer)>,
) -> usize {
    let mut fm = FilterManager::new(chain.chain_filters(), config);
    run_stream(&mut fm, request, request_body, response)
}

/// Runs one exchange through a fresh or reset FilterManager.
fn run_stream(
    fm: &mut FilterManager,
    request: HeaderMap,
    request_body: Buffer,
    response: Option<(HeaderMap, Buffer)>,
) -> usize {
    fm.decode_headers(request, false);
    fm.decode_data(request_body, true);
    if let Some((headers, body)) = response {
        fm.encode_headers(headers, false);
        fm.encode_data(body, true);
    }
    let mut n = 0;
    while let Some(e) = fm.next_event() {
        n += 1;
        black_box(e);
    }
    black_box(n)
}

/// `FILTER_CHAIN_PROFILE_ITERS=N` runs N request/response streams without
/// criterion (inputs prepared first), for instruction counts under
/// `valgrind --tool=callgrind`: run with two values of N and divide the
/// difference by the difference in N. With `FILTER_CHAIN_PROFILE_POOLED` set,
/// one FilterManager is reset for each stream, as the HCM does.
fn profile(iters: usize) {
    let factory: Arc<dyn HttpFilterFactory> = Arc::new(|| HttpFilterInstance::dual(PassThrough));
    let chain = FilterChainFactory::from_factories(
        (0..5).map(|i| (format!("pass{i}"), factory.clone())).collect(),
    );
    let config = FilterManagerConfig::default();
    let (request, response, body) = inputs();
    let prepared: Vec<_> = (0..iters)
        .map(|_| {
            (
                request.clone(),
                Buffer::from(body.clone()),
                response.clone(),
                Buffer::from(body.clone()),
            )
        })
        .collect();
    let pooled = std::env::var_os("FILTER_CHAIN_PROFILE_POOLED").is_some();
    let mut fm = FilterManager::new(chain.chain_filters(), &config);
    let mut total = 0;
    for (req, req_body, resp, resp_body) in prepared {
        total += if pooled {
            fm.reset(chain.chain_filters(), &config);
            run_stream(&mut fm, req, req_body, Some((resp, resp_body)))
        } else {
            one_stream(&chain, &config, req, req_body, Some((resp, resp_body)))
        };
    }
    println!("{iters} streams, {total} events");
}

criterion_group!(benches, bench);

fn main() {
    if let Some(iters) =
        std::env::var("FILTER_CHAIN_PROFILE_ITERS").ok().and_then(|v| v.parse().ok())
    {
        profile(iters);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
