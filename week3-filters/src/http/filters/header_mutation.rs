//! # `envoy.filters.http.header_mutation`
//!
//! Envoy's header mutation filter: ordered rules (`remove`, `append` with an
//! append action and `%VARIABLE%` substitutions, `remove_on_match`) applied
//! to request headers on the way in and to response headers on the way out;
//! a route's `HeaderMutationPerRoute` rules apply after the filter's.

use std::sync::Arc;

use week1_core::config::filters::{HeaderMutationRule, Mutations};
use week1_core::headers::HeaderMap;
use week1_core::router::{FormatContext, HeaderMutations, StringMatch};

use crate::http::{
    FilterCallbacks, FilterHeadersStatus, StreamDecoderFilter, StreamEncoderFilter,
    StreamFilterBase,
};

/// One compiled rule.
#[derive(Debug)]
enum Rule {
    Set(HeaderMutations),
    RemoveMatching(StringMatch),
}

/// Compiled request and response rules.
#[derive(Debug, Default)]
pub struct HeaderMutationConfig {
    request: Vec<Rule>,
    response: Vec<Rule>,
}

fn compile(rules: &[HeaderMutationRule]) -> Result<Vec<Rule>, String> {
    rules
        .iter()
        .map(|r| {
            if let Some(name) = &r.remove {
                Ok(Rule::Set(HeaderMutations::compile(&[], std::slice::from_ref(name))?))
            } else if let Some(add) = &r.append {
                Ok(Rule::Set(HeaderMutations::compile(std::slice::from_ref(add), &[])?))
            } else if let Some(m) = &r.remove_on_match {
                Ok(Rule::RemoveMatching(
                    StringMatch::compile(&m.key_matcher).map_err(|e| e.to_string())?,
                ))
            } else {
                Err("a rule needs remove, append or remove_on_match".into())
            }
        })
        .collect()
}

impl HeaderMutationConfig {
    /// Compiles mutations.
    pub fn new(m: &Mutations) -> Result<Self, String> {
        Ok(Self {
            request: compile(&m.request_mutations)?,
            response: compile(&m.response_mutations)?,
        })
    }
}

fn apply(rules: &[Rule], headers: &mut HeaderMap, ctx: &FormatContext<'_>) {
    for r in rules {
        match r {
            Rule::Set(m) => m.apply(headers, ctx),
            Rule::RemoveMatching(m) => {
                headers.retain(|n, _| n.is_pseudo() || !m.matches(n.as_str()))
            }
        }
    }
}

/// The filter of one stream.
#[derive(Debug)]
pub struct HeaderMutationFilter {
    config: Arc<HeaderMutationConfig>,
    route: Option<Arc<HeaderMutationConfig>>,
}

impl HeaderMutationFilter {
    /// A filter for one stream.
    pub fn new(config: Arc<HeaderMutationConfig>) -> Self {
        Self { config, route: None }
    }
}

impl StreamFilterBase for HeaderMutationFilter {}

impl StreamDecoderFilter for HeaderMutationFilter {
    fn decode_headers(
        &mut self,
        headers: &mut HeaderMap,
        _end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        if let Some(route) = cb.per_filter_config::<HeaderMutationConfig>() {
            self.route = Some(route);
        }
        let c = cb.connection();
        let snapshot = headers.clone();
        let ctx = FormatContext {
            downstream_remote: c.remote_address,
            downstream_local: c.local_address,
            request_headers: Some(&snapshot),
        };
        apply(&self.config.request, headers, &ctx);
        if let Some(r) = &self.route {
            apply(&r.request, headers, &ctx);
        }
        FilterHeadersStatus::Continue
    }
}

impl StreamEncoderFilter for HeaderMutationFilter {
    fn encode_headers(
        &mut self,
        headers: &mut HeaderMap,
        _end: bool,
        cb: &mut FilterCallbacks<'_>,
    ) -> FilterHeadersStatus {
        let c = cb.connection();
        let ctx = FormatContext {
            downstream_remote: c.remote_address,
            downstream_local: c.local_address,
            request_headers: cb.request_headers(),
        };
        apply(&self.config.response, headers, &ctx);
        if let Some(r) = &self.route {
            apply(&r.response, headers, &ctx);
        }
        FilterHeadersStatus::Continue
    }
}
