//! The admin formats of merged stats: Envoy's `/stats` text and JSON, and
//! `/stats/prometheus` (Prometheus text exposition 0.0.4 with Envoy's tags).
//!
//! ```text
//!  Store::values() ─► StatsQuery::select (filter, usedonly, type) ─► text | json | prometheus
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use regex::Regex;

use super::{BUCKETS, HistogramValue, SUPPORTED_QUANTILES, StatKind, StatValue, Value};

/// Which stats a `/stats` request wants (`?filter=`, `?usedonly`, `?type=`).
#[derive(Debug, Default)]
pub struct StatsQuery {
    /// `filter`: a regex the full name must match (searched, as Envoy's).
    pub filter: Option<Regex>,
    /// `usedonly`: only stats written at least once.
    pub used_only: bool,
    /// `type`: `Counters`, `Gauges`, `Histograms` (or `All`, `None` here).
    pub kind: Option<StatKind>,
}

impl StatsQuery {
    /// Parses the admin query parameters (already percent-decoded).
    pub fn parse<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let mut q = StatsQuery::default();
        for (key, value) in params {
            match key {
                "filter" if !value.is_empty() => {
                    let re = regex::RegexBuilder::new(value)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| format!("invalid regex: {e}"))?;
                    q.filter = Some(re);
                }
                "usedonly" => q.used_only = true,
                "type" => {
                    q.kind = match value {
                        "Counters" => Some(StatKind::Counter),
                        "Gauges" => Some(StatKind::Gauge),
                        "Histograms" => Some(StatKind::Histogram),
                        "All" | "" => None,
                        other => return Err(format!("invalid type: {other}")),
                    }
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// Keeps the stats the query asks for.
    pub fn select(&self, stats: Vec<StatValue>) -> Vec<StatValue> {
        stats
            .into_iter()
            .filter(|s| !self.used_only || s.used)
            .filter(|s| self.kind.is_none_or(|k| k == s.kind()))
            .filter(|s| self.filter.as_ref().is_none_or(|re| re.is_match(&s.name)))
            .collect()
    }
}

/// A quantile as Envoy prints it (`nan` without samples).
fn quantile_text(v: Option<f64>) -> String {
    v.map_or_else(|| "nan".to_string(), |v| format!("{v}"))
}

// ANCHOR: text_format
/// Envoy's `/stats` text: counters and gauges `name: value` sorted by name,
/// then histograms `name: P0(interval,cumulative) P25(…) …` (no flush
/// interval here, so the interval value is `nan`; `No recorded values`
/// before the first sample).
pub fn text(stats: &[StatValue]) -> String {
    let mut out = String::new();
    for s in stats {
        match &s.value {
            Value::Counter(v) => {
                let _ = writeln!(out, "{}: {v}", s.name);
            }
            Value::Gauge(v) => {
                let _ = writeln!(out, "{}: {v}", s.name);
            }
            Value::Histogram(_) => {}
        }
    }
    for s in stats {
        let Value::Histogram(h) = &s.value else { continue };
        if h.count == 0 {
            let _ = writeln!(out, "{}: No recorded values", s.name);
            continue;
        }
        let parts: Vec<String> = SUPPORTED_QUANTILES
            .iter()
            .map(|q| format!("P{q}(nan,{})", quantile_text(h.quantile(*q))))
            .collect();
        let _ = writeln!(out, "{}: {}", s.name, parts.join(" "));
    }
    out
}
// ANCHOR_END: text_format

/// Envoy's `/stats?format=json`: `{"stats":[{"name":…,"value":…},…,
/// {"histograms":{"supported_quantiles":[…],"computed_quantiles":[{"name":…,
/// "values":[{"interval":null,"cumulative":…},…]}]}}]}`.
pub fn json(stats: &[StatValue]) -> serde_json::Value {
    use serde_json::json;
    let mut list: Vec<serde_json::Value> = stats
        .iter()
        .filter_map(|s| match &s.value {
            Value::Counter(v) => Some(json!({"name": s.name, "value": v})),
            Value::Gauge(v) => Some(json!({"name": s.name, "value": v})),
            Value::Histogram(_) => None,
        })
        .collect();
    let computed: Vec<serde_json::Value> = stats
        .iter()
        .filter_map(|s| {
            let Value::Histogram(h) = &s.value else { return None };
            let values: Vec<serde_json::Value> = SUPPORTED_QUANTILES
                .iter()
                .map(|q| json!({"interval": null, "cumulative": h.quantile(*q)}))
                .collect();
            Some(json!({"name": s.name, "values": values}))
        })
        .collect();
    if !computed.is_empty() {
        list.push(json!({"histograms": {
            "supported_quantiles": SUPPORTED_QUANTILES,
            "computed_quantiles": computed,
        }}));
    }
    json!({ "stats": list })
}

/// A Prometheus metric name: `envoy_` + the tag-extracted name with every
/// character outside `[a-zA-Z0-9_]` replaced by `_`.
fn prometheus_name(tag_extracted: &str) -> String {
    let mut out = String::from("envoy_");
    out.extend(tag_extracted.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }));
    out
}

/// A label value escaped for the text exposition format.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(tags: &[(String, String)], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> =
        tags.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{}\"", escape_label(v)));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn prometheus_histogram(
    out: &mut String,
    name: &str,
    tags: &[(String, String)],
    h: &HistogramValue,
) {
    for (bound, n) in BUCKETS.iter().zip(h.cumulative()) {
        let _ =
            writeln!(out, "{name}_bucket{} {n}", labels(tags, Some(("le", &bound.to_string()))));
    }
    let _ = writeln!(out, "{name}_bucket{} {}", labels(tags, Some(("le", "+Inf"))), h.count);
    let _ = writeln!(out, "{name}_sum{} {}", labels(tags, None), h.sum);
    let _ = writeln!(out, "{name}_count{} {}", labels(tags, None), h.count);
}

// ANCHOR: prometheus_format
/// `/stats/prometheus`: one `# TYPE` line per metric family, then its
/// series with Envoy's tags as labels
/// (`envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="backend"} 3`).
pub fn prometheus(stats: &[StatValue]) -> String {
    let mut families: BTreeMap<String, (StatKind, Vec<&StatValue>)> = BTreeMap::new();
    for s in stats {
        let name = prometheus_name(&s.tag_extracted);
        let family = families.entry(name).or_insert_with(|| (s.kind(), Vec::new()));
        // One type per family: a name clash across kinds keeps the first kind.
        if family.0 == s.kind() {
            family.1.push(s);
        }
    }
    let mut out = String::new();
    for (name, (kind, series)) in &families {
        let kind_name = match kind {
            StatKind::Counter => "counter",
            StatKind::Gauge => "gauge",
            StatKind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# TYPE {name} {kind_name}");
        for s in series {
            match &s.value {
                Value::Counter(v) => {
                    let _ = writeln!(out, "{name}{} {v}", labels(&s.tags, None));
                }
                Value::Gauge(v) => {
                    let _ = writeln!(out, "{name}{} {v}", labels(&s.tags, None));
                }
                Value::Histogram(h) => prometheus_histogram(&mut out, name, &s.tags, h),
            }
        }
    }
    out
}
// ANCHOR_END: prometheus_format
