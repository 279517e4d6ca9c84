//! Envoy's access-log filters (`AccessLog::filter`), compiled once.
//!
//! A filter decides from the stream's [`StreamInfo`] whether an entry is
//! written at all. Envoy's semantics: a missing response code compares as 0; a
//! stream without a completion time fails the duration filter; an empty
//! `response_flag_filter.flags` matches any flag.
//!
//! `not_health_check_filter` always passes: mini-envoy has no health-check
//! HTTP filter, so no request is marked as a health check.

use week1_core::config::access_log::{AccessLogFilter, ComparisonFilter};
use week1_core::config::{ConfigError, FieldPath};
use week3_filters::http::{ResponseFlag, ResponseFlags, StreamInfo};

/// The filter kinds mini-envoy evaluates.
const SUPPORTED: &str = "status_code_filter, duration_filter, not_health_check_filter, response_flag_filter, and_filter, or_filter";

/// A compiled `AccessLogFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `status_code_filter`.
    StatusCode(ComparisonFilter),
    /// `duration_filter` (milliseconds).
    Duration(ComparisonFilter),
    /// `not_health_check_filter`.
    NotHealthCheck,
    /// `response_flag_filter`; `None` means any flag.
    ResponseFlag(Option<ResponseFlags>),
    /// `and_filter`.
    And(Vec<Filter>),
    /// `or_filter`.
    Or(Vec<Filter>),
}

impl Filter {
    /// Compiles `config` found at `path`; refuses kinds mini-envoy does not evaluate.
    pub fn compile(config: &AccessLogFilter, path: &FieldPath) -> Result<Self, ConfigError> {
        let unsupported = [
            ("traceable_filter", config.traceable_filter.is_some()),
            ("runtime_filter", config.runtime_filter.is_some()),
            ("header_filter", config.header_filter.is_some()),
            ("grpc_status_filter", config.grpc_status_filter.is_some()),
            ("extension_filter", config.extension_filter.is_some()),
            ("metadata_filter", config.metadata_filter.is_some()),
            ("log_type_filter", config.log_type_filter.is_some()),
        ];
        if let Some((name, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(ConfigError::unsupported(path.field(name), SUPPORTED));
        }
        let mut found = Vec::new();
        if let Some(f) = &config.status_code_filter {
            found.push(Filter::StatusCode(f.comparison.clone()));
        }
        if let Some(f) = &config.duration_filter {
            found.push(Filter::Duration(f.comparison.clone()));
        }
        if config.not_health_check_filter.is_some() {
            found.push(Filter::NotHealthCheck);
        }
        if let Some(f) = &config.response_flag_filter {
            let at = path.field("response_flag_filter").field("flags");
            let mut flags = ResponseFlags::EMPTY;
            for (i, code) in f.flags.iter().enumerate() {
                let flag = ResponseFlag::from_short_code(code).ok_or_else(|| {
                    ConfigError::invalid(at.index(i), format!("unknown response flag {code:?}"))
                })?;
                flags.insert(flag);
            }
            found.push(Filter::ResponseFlag((!flags.is_empty()).then_some(flags)));
        }
        for (name, list, make) in [
            ("and_filter", &config.and_filter, Filter::And as fn(Vec<Filter>) -> Filter),
            ("or_filter", &config.or_filter, Filter::Or),
        ] {
            if let Some(list) = list {
                let at = path.field(name).field("filters");
                if list.filters.len() < 2 {
                    return Err(ConfigError::invalid(at, "needs at least 2 filters"));
                }
                let subs = list
                    .filters
                    .iter()
                    .enumerate()
                    .map(|(i, f)| Filter::compile(f, &at.index(i)))
                    .collect::<Result<_, _>>()?;
                found.push(make(subs));
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            _ => Err(ConfigError::invalid(
                path.clone(),
                format!("exactly one filter kind must be set ({SUPPORTED})"),
            )),
        }
    }

    /// Whether the stream is logged.
    pub fn passes(&self, info: &StreamInfo) -> bool {
        match self {
            Filter::StatusCode(c) => c.passes(info.response_code.map_or(0, u64::from)),
            Filter::Duration(c) => info
                .completed
                .is_some_and(|d| c.passes(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
            Filter::NotHealthCheck => true,
            Filter::ResponseFlag(None) => !info.response_flags.is_empty(),
            Filter::ResponseFlag(Some(wanted)) => {
                info.response_flags.iter().any(|f| wanted.contains(f))
            }
            Filter::And(subs) => subs.iter().all(|f| f.passes(info)),
            Filter::Or(subs) => subs.iter().any(|f| f.passes(info)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, SystemTime};

    use week1_core::config::access_log::{
        AccessLogFilterList, ComparisonOp, DurationFilter, ResponseFlagFilter, StatusCodeFilter,
    };
    use week1_core::config::types::RuntimeUInt32;

    use super::*;

    fn comparison(op: ComparisonOp, value: u32) -> ComparisonFilter {
        ComparisonFilter { op, value: RuntimeUInt32 { default_value: value, ..Default::default() } }
    }

    fn status(op: ComparisonOp, value: u32) -> AccessLogFilter {
        AccessLogFilter {
            status_code_filter: Some(StatusCodeFilter { comparison: comparison(op, value) }),
            ..Default::default()
        }
    }

    fn duration(op: ComparisonOp, value: u32) -> AccessLogFilter {
        AccessLogFilter {
            duration_filter: Some(DurationFilter { comparison: comparison(op, value) }),
            ..Default::default()
        }
    }

    fn flags(codes: &[&str]) -> AccessLogFilter {
        AccessLogFilter {
            response_flag_filter: Some(ResponseFlagFilter {
                flags: codes.iter().map(|c| c.to_string()).collect(),
            }),
            ..Default::default()
        }
    }

    fn info(code: Option<u16>, completed_ms: Option<u64>) -> StreamInfo {
        let mut i = StreamInfo::new(Instant::now(), SystemTime::UNIX_EPOCH);
        i.response_code = code;
        i.completed = completed_ms.map(Duration::from_millis);
        i
    }

    fn compile(f: &AccessLogFilter) -> Filter {
        Filter::compile(f, &FieldPath::root().field("filter")).unwrap()
    }

    #[test]
    fn status_code_comparisons() {
        let ge500 = compile(&status(ComparisonOp::Ge, 500));
        assert!(ge500.passes(&info(Some(503), None)));
        assert!(!ge500.passes(&info(Some(200), None)));
        // No response code compares as 0.
        assert!(!ge500.passes(&info(None, None)));
        assert!(compile(&status(ComparisonOp::Eq, 0)).passes(&info(None, None)));
        assert!(compile(&status(ComparisonOp::Le, 399)).passes(&info(Some(302), None)));
        assert!(compile(&status(ComparisonOp::Ne, 200)).passes(&info(Some(404), None)));
        assert!(!compile(&status(ComparisonOp::Ne, 200)).passes(&info(Some(200), None)));
    }

    #[test]
    fn duration_needs_a_completed_stream() {
        let slow = compile(&duration(ComparisonOp::Ge, 100));
        assert!(slow.passes(&info(None, Some(100))));
        assert!(!slow.passes(&info(None, Some(99))));
        assert!(!slow.passes(&info(None, None)));
    }

    #[test]
    fn response_flags() {
        let mut with_uh = info(Some(503), None);
        with_uh.set_response_flag(ResponseFlag::NoHealthyUpstream);
        let plain = info(Some(200), None);
        let any = compile(&flags(&[]));
        assert!(any.passes(&with_uh));
        assert!(!any.passes(&plain));
        assert!(compile(&flags(&["UF", "UH"])).passes(&with_uh));
        assert!(!compile(&flags(&["NR"])).passes(&with_uh));
        let err =
            Filter::compile(&flags(&["UH", "XX"]), &FieldPath::root().field("filter")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "filter.response_flag_filter.flags[1]: unknown response flag \"XX\""
        );
    }

    #[test]
    fn and_or_not_health_check() {
        let list = |a, b| Some(AccessLogFilterList { filters: vec![a, b] });
        let and = AccessLogFilter {
            and_filter: list(status(ComparisonOp::Ge, 500), duration(ComparisonOp::Ge, 10)),
            ..Default::default()
        };
        let or = AccessLogFilter {
            or_filter: list(status(ComparisonOp::Ge, 500), duration(ComparisonOp::Ge, 10)),
            ..Default::default()
        };
        let (and, or) = (compile(&and), compile(&or));
        assert!(and.passes(&info(Some(500), Some(10))));
        assert!(!and.passes(&info(Some(500), Some(9))));
        assert!(or.passes(&info(Some(200), Some(10))));
        assert!(!or.passes(&info(Some(200), Some(9))));
        let nhc = AccessLogFilter {
            not_health_check_filter: Some(Default::default()),
            ..Default::default()
        };
        assert!(compile(&nhc).passes(&info(None, None)));
    }

    #[test]
    fn bad_filters_name_the_path() {
        let at = FieldPath::root().field("access_log").index(0).field("filter");
        let header =
            AccessLogFilter { header_filter: Some(serde_json::json!({})), ..Default::default() };
        let err = Filter::compile(&header, &at).unwrap_err();
        assert!(err.is_unsupported());
        assert!(err.to_string().starts_with("unsupported: access_log[0].filter.header_filter ("));
        let nested = AccessLogFilter {
            or_filter: Some(AccessLogFilterList {
                filters: vec![status(ComparisonOp::Ge, 500), header.clone()],
            }),
            ..Default::default()
        };
        let err = Filter::compile(&nested, &at).unwrap_err();
        assert!(
            err.to_string().contains("access_log[0].filter.or_filter.filters[1].header_filter")
        );
        let err = Filter::compile(&AccessLogFilter::default(), &at).unwrap_err();
        assert!(err.to_string().starts_with("access_log[0].filter: exactly one filter kind"));
        let short = AccessLogFilter {
            and_filter: Some(AccessLogFilterList { filters: vec![status(ComparisonOp::Eq, 1)] }),
            ..Default::default()
        };
        let err = Filter::compile(&short, &at).unwrap_err();
        assert_eq!(
            err.to_string(),
            "access_log[0].filter.and_filter.filters: needs at least 2 filters"
        );
    }
}
