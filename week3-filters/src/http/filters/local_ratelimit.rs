//! # `envoy.filters.http.local_ratelimit`
//!
//! Envoy's local rate limit: a [`TokenBucket`](crate::token_bucket::TokenBucket)
//! per filter config (shared by all workers), one token per request. Envoy's
//! defaults apply: `filter_enabled` and `filter_enforced` are 0% unless set,
//! so a bare config only counts. A request that is checked and finds the
//! bucket empty is answered 429 (or `status`), `local_rate_limited`, with
//! `response_headers_to_add` and the `RL` flag when enforced; when not
//! enforced it goes on with `request_headers_to_add_when_not_enforced`. With
//! `enable_x_ratelimit_headers: DRAFT_VERSION_03` responses carry
//! `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset`.
//! A route's own `LocalRateLimit` replaces the filter's, with its own bucket:
//! compiled into a [`Limit`] when the route table is built, one bucket per
//! route entry (owned by the compiled route, shared by every worker through
//! an `Arc`; the bucket is atomic, nothing is locked per request).
//! Stats as Envoy's: `<stat_prefix>.http_local_rate_limit.enabled`, `ok`,
//! `rate_limited` (no token, enforced or not) and `enforced`, each limit
//! under its own `stat_prefix`.

use std::sync::Arc;

use week1_core::config::filters::{LocalRateLimit, XRateLimitHeaders};
use week1_core::headers::{HeaderMap, HeaderName, HeaderValue};
use week1_core::router::{FormatContext, HeaderMutations};

use crate::context::{FactoryContext, StatCounter};
use crate::http::stream_info::details;
use crate::http::{
    FilterCallbacks, FilterHeadersStatus, ResponseFlag, StreamDecoderFilter, StreamEncoderFilter,
    StreamFilterBase,
};
use crate::token_bucket::TokenBucket;

/// One compiled limit (the filter's or a route's).
#[derive(Debug)]
pub struct Limit {
    bucket: Option<TokenBucket>,
    status: u16,
    enabled: Option<week1_core::config::types::FractionalPercent>,
    enforced: Option<week1_core::config::types::FractionalPercent>,
    response_headers: HeaderMutations,
    request_headers_not_enforced: HeaderMutations,
    x_ratelimit: bool,
    stats: LimitStats,
}

/// `<stat_prefix>.http_local_rate_limit.*`.
#[derive(Debug)]
struct LimitStats {
    enabled: Arc<dyn StatCounter>,
    enforced: Arc<dyn StatCounter>,
    rate_limited: Arc<dyn StatCounter>,
    ok: Arc<dyn StatCounter>,
}

impl Limit {
    /// Compiles a config.
    pub fn new(c: &LocalRateLimit, ctx: &FactoryContext) -> Result<Self, String> {
        if c.local_rate_limit_per_downstream_connection {
            return Err("local_rate_limit_per_downstream_connection is not supported".into());
        }
        Ok(Self {
            bucket: c.token_bucket.as_ref().map(|b| TokenBucket::from_config(b, ctx.time.clone())),
            status: c.status(),
            enabled: c.filter_enabled.as_ref().map(|f| f.default_value),
            enforced: c.filter_enforced.as_ref().map(|f| f.default_value),
            response_headers: HeaderMutations::compile(&c.response_headers_to_add, &[])?,
            request_headers_not_enforced: HeaderMutations::compile(
                &c.request_headers_to_add_when_not_enforced,
                &[],
            )?,
            x_ratelimit: c.enable_x_ratelimit_headers == XRateLimitHeaders::DraftVersion03,
            stats: {
                let name = |leaf: &str| format!("{}.http_local_rate_limit.{leaf}", c.stat_prefix);
                LimitStats {
                    enabled: ctx.stats.counter(&name("enabled")),
                    enforced: ctx.stats.counter(&name("enforced")),
                    rate_limited: ctx.stats.counter(&name("rate_limited")),
                    ok: ctx.stats.counter(&name("ok")),
                }
            },
        })
    }
}

/// The filter config: the filter's own limit (routes bring theirs).
#[derive(Debug)]
pub struct LocalRateLimitConfig {
    limit: Arc<Limit>,
    ctx: FactoryContext,
}

impl LocalRateLimitConfig {
    /// Compiles the filter's config.
    pub fn new(c: &LocalRateLimit, ctx: &FactoryContext) -> Result<Self, String> {
        Ok(Self { limit: Arc::new(Limit::new(c, ctx)?), ctx: ctx.clone() })
    }
}

/// The filter of one stream.
#[derive(Debug)]
pub struct LocalRateLimitFilter {
    config: Arc<LocalRateLimitConfig>,
    /// The limit that checked this request, for the `x-ratelimit-*` headers.
    checked: Option<Arc<Limit>>,
}

impl LocalRateLimitFilter {
    /// A filter for one stream.
    pub fn new(config: Arc<LocalRateLimitConfig>) -> Self {
        Self { config, checked: None }
    }
}

impl StreamFilterBase for LocalRateLimitFilter {}

// ANCHOR: decode_headers
impl StreamDecoderFilter for LocalRateLimitFilter {
    fn decode_headers(
        &mut self,
        headers: &mut HeaderMap,
        _end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        let limit = cb.per_filter_config::<Limit>().unwrap_or_else(|| self.config.limit.clone());
        let Some(bucket) = &limit.bucket else { return FilterHeadersStatus::Continue };
        let random = &self.config.ctx.random;
        if !limit.enabled.is_some_and(|f| f.hits(random.random())) {
            return FilterHeadersStatus::Continue;
        }
        limit.stats.enabled.inc();
        self.checked = Some(limit.clone());
        if bucket.try_consume() {
            limit.stats.ok.inc();
            return FilterHeadersStatus::Continue;
        }
        limit.stats.rate_limited.inc();
        if !limit.enforced.is_some_and(|f| f.hits(random.random())) {
            let ctx = FormatContext { request_headers: None, ..FormatContext::default() };
            limit.request_headers_not_enforced.apply(headers, &ctx);
            return FilterHeadersStatus::Continue;
        }
        limit.stats.enforced.inc();
        cb.stream_info_mut().set_response_flag(ResponseFlag::RateLimited);
        let l = limit.clone();
        cb.send_local_reply(
            limit.status,
            "local_rate_limited",
            move |h| l.response_headers.apply(h, &FormatContext::default()),
            details::LOCAL_RATE_LIMITED,
        );
        FilterHeadersStatus::StopIteration
    }
}
// ANCHOR_END: decode_headers

impl StreamEncoderFilter for LocalRateLimitFilter {
    fn encode_headers(
        &mut self,
        headers: &mut HeaderMap,
        _end: bool,
        _cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        if let Some(limit) = &self.checked
            && limit.x_ratelimit
            && let Some(bucket) = &limit.bucket
        {
            let reset = bucket.next_fill_in().as_secs_f64().ceil() as u64;
            headers.insert(
                HeaderName::from_static("x-ratelimit-limit"),
                HeaderValue::from_u64(u64::from(bucket.max_tokens())),
            );
            headers.insert(
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderValue::from_u64(u64::from(bucket.remaining())),
            );
            headers
                .insert(HeaderName::from_static("x-ratelimit-reset"), HeaderValue::from_u64(reset));
        }
        FilterHeadersStatus::Continue
    }
}
