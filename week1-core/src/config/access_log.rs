//! `envoy.config.accesslog.v3.AccessLog` and the file/stream access loggers
//! (`envoy.extensions.access_loggers.{file,stream}.v3`).
//!
//! Loaded here wherever Envoy allows access logs (HCM, tcp_proxy, listener,
//! admin, router upstream log); mini-envoy's access logger formats and writes
//! them off the request path.

use serde::Deserialize;

use super::protocol::DataSource;
use super::types::RuntimeUInt32;
use super::validate::{Validate, Validator};

/// `envoy.config.accesslog.v3.AccessLog`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLog {
    /// Free-form name (e.g. `envoy.access_loggers.stdout`).
    pub name: String,
    /// Only log entries passing this filter (unset: all).
    pub filter: Option<AccessLogFilter>,
    /// The logger, chosen by `@type`.
    pub typed_config: Option<AccessLogConfig>,
}

impl Validate for AccessLog {
    fn validate(&self, v: &mut Validator) {
        v.child("filter", &self.filter);
        match &self.typed_config {
            None => v.error(
                "typed_config",
                "must be set (a FileAccessLog, StdoutAccessLog or StderrAccessLog)",
            ),
            Some(c) => v.child("typed_config", c),
        }
    }
}

/// An access logger, chosen by `typed_config."@type"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename = "@type")]
pub enum AccessLogConfig {
    /// Write to a file.
    #[serde(rename = "envoy.extensions.access_loggers.file.v3.FileAccessLog")]
    File(FileAccessLog),
    /// Write to standard output.
    #[serde(rename = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog")]
    Stdout(StreamAccessLog),
    /// Write to standard error.
    #[serde(rename = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog")]
    Stderr(StreamAccessLog),
}

impl Validate for AccessLogConfig {
    fn validate(&self, v: &mut Validator) {
        match self {
            Self::File(f) => f.validate(v),
            Self::Stdout(s) | Self::Stderr(s) => v.child("log_format", &s.log_format),
        }
    }
}

/// `envoy.extensions.access_loggers.file.v3.FileAccessLog`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileAccessLog {
    /// The file to append to (`/dev/stdout` works).
    pub path: String,
    /// Deprecated: a text format string.
    pub format: Option<String>,
    /// Deprecated: a JSON format (field → format string).
    pub json_format: Option<serde_json::Map<String, serde_json::Value>>,
    /// Deprecated: a typed JSON format.
    pub typed_json_format: Option<serde_json::Map<String, serde_json::Value>>,
    /// The format (unset: Envoy's default format).
    pub log_format: Option<SubstitutionFormatString>,
}

impl FileAccessLog {
    /// The effective format, folding the deprecated fields into `log_format`.
    pub fn effective_format(&self) -> Option<SubstitutionFormatString> {
        if let Some(f) = &self.log_format {
            return Some(f.clone());
        }
        if let Some(text) = &self.format {
            return Some(SubstitutionFormatString {
                text_format: Some(text.clone()),
                ..Default::default()
            });
        }
        self.json_format.as_ref().or(self.typed_json_format.as_ref()).map(|j| {
            SubstitutionFormatString { json_format: Some(j.clone()), ..Default::default() }
        })
    }
}

impl Validate for FileAccessLog {
    fn validate(&self, v: &mut Validator) {
        if self.path.is_empty() {
            v.error("path", "must not be empty");
        }
        v.oneof(
            "access_log_format",
            &[
                ("format", self.format.is_some()),
                ("json_format", self.json_format.is_some()),
                ("typed_json_format", self.typed_json_format.is_some()),
                ("log_format", self.log_format.is_some()),
            ],
            false,
        );
        v.child("log_format", &self.log_format);
    }
}

/// `envoy.extensions.access_loggers.stream.v3.StdoutAccessLog` / `StderrAccessLog`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamAccessLog {
    /// The format (unset: Envoy's default format).
    pub log_format: Option<SubstitutionFormatString>,
}

/// `envoy.config.core.v3.SubstitutionFormatString`: one of `text_format`,
/// `json_format`, `text_format_source`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubstitutionFormatString {
    /// Deprecated: a text format string.
    pub text_format: Option<String>,
    /// A JSON object whose values are format strings.
    pub json_format: Option<serde_json::Map<String, serde_json::Value>>,
    /// A text format from a data source.
    pub text_format_source: Option<DataSource>,
    /// Leave out empty values (`-` in text, absent keys in JSON).
    pub omit_empty_values: bool,
    /// Content type of local replies using this format (default text/plain or application/json).
    pub content_type: String,
    /// Formatter extensions (not supported).
    pub formatters: Vec<serde_json::Value>,
    /// JSON output options (`sort_properties`).
    pub json_format_options: Option<JsonFormatOptions>,
}

/// `envoy.config.core.v3.JsonFormatOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonFormatOptions {
    /// Sort keys in the output.
    pub sort_properties: bool,
}

impl Validate for SubstitutionFormatString {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "format",
            &[
                ("text_format", self.text_format.is_some()),
                ("json_format", self.json_format.is_some()),
                ("text_format_source", self.text_format_source.is_some()),
            ],
            true,
        );
        v.child("text_format_source", &self.text_format_source);
        if !self.formatters.is_empty() {
            v.unsupported("formatters", "only Envoy's built-in command operators");
        }
    }
}

/// `envoy.config.accesslog.v3.AccessLogFilter`: exactly one filter kind.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLogFilter {
    /// Compare the response code.
    pub status_code_filter: Option<StatusCodeFilter>,
    /// Compare the request duration in milliseconds.
    pub duration_filter: Option<DurationFilter>,
    /// Skip health-check requests.
    pub not_health_check_filter: Option<super::types::Empty>,
    /// Only traced requests (not supported).
    pub traceable_filter: Option<serde_json::Value>,
    /// Sample by runtime (not supported).
    pub runtime_filter: Option<serde_json::Value>,
    /// All sub-filters pass.
    pub and_filter: Option<AccessLogFilterList>,
    /// Any sub-filter passes.
    pub or_filter: Option<AccessLogFilterList>,
    /// Match a request header (not supported).
    pub header_filter: Option<serde_json::Value>,
    /// Requests with any of these response flags (empty: any flag).
    pub response_flag_filter: Option<ResponseFlagFilter>,
    /// gRPC status (not supported).
    pub grpc_status_filter: Option<serde_json::Value>,
    /// Extension filter (not supported).
    pub extension_filter: Option<serde_json::Value>,
    /// Dynamic metadata (not supported).
    pub metadata_filter: Option<serde_json::Value>,
    /// Log type (not supported).
    pub log_type_filter: Option<serde_json::Value>,
}

impl Validate for AccessLogFilter {
    fn validate(&self, v: &mut Validator) {
        v.oneof(
            "filter_specifier",
            &[
                ("status_code_filter", self.status_code_filter.is_some()),
                ("duration_filter", self.duration_filter.is_some()),
                ("not_health_check_filter", self.not_health_check_filter.is_some()),
                ("traceable_filter", self.traceable_filter.is_some()),
                ("runtime_filter", self.runtime_filter.is_some()),
                ("and_filter", self.and_filter.is_some()),
                ("or_filter", self.or_filter.is_some()),
                ("header_filter", self.header_filter.is_some()),
                ("response_flag_filter", self.response_flag_filter.is_some()),
                ("grpc_status_filter", self.grpc_status_filter.is_some()),
                ("extension_filter", self.extension_filter.is_some()),
                ("metadata_filter", self.metadata_filter.is_some()),
                ("log_type_filter", self.log_type_filter.is_some()),
            ],
            true,
        );
        const SUPPORTED: &str = "status_code_filter, duration_filter, not_health_check_filter, response_flag_filter, and_filter, or_filter";
        for (name, set) in [
            ("traceable_filter", self.traceable_filter.is_some()),
            ("runtime_filter", self.runtime_filter.is_some()),
            ("header_filter", self.header_filter.is_some()),
            ("grpc_status_filter", self.grpc_status_filter.is_some()),
            ("extension_filter", self.extension_filter.is_some()),
            ("metadata_filter", self.metadata_filter.is_some()),
            ("log_type_filter", self.log_type_filter.is_some()),
        ] {
            if set {
                v.unsupported(name, SUPPORTED);
            }
        }
        if let Some(f) = &self.response_flag_filter {
            v.field("response_flag_filter", |v| {
                v.field("flags", |v| {
                    for (i, flag) in f.flags.iter().enumerate() {
                        if !RESPONSE_FLAGS.contains(&flag.as_str()) {
                            v.index(i, |v| v.error_here(format!("unknown response flag {flag:?}")));
                        }
                    }
                });
            });
        }
        for (name, list) in [("and_filter", &self.and_filter), ("or_filter", &self.or_filter)] {
            if let Some(l) = list {
                v.field(name, |v| {
                    if l.filters.len() < 2 {
                        v.error("filters", "needs at least 2 filters");
                    }
                    v.each("filters", &l.filters);
                });
            }
        }
    }
}

/// `envoy.config.accesslog.v3.ComparisonFilter.Op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ComparisonOp {
    /// Equal.
    #[default]
    Eq,
    /// Greater or equal.
    Ge,
    /// Less or equal.
    Le,
    /// Not equal.
    Ne,
}

/// `envoy.config.accesslog.v3.ComparisonFilter`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComparisonFilter {
    /// The comparison.
    pub op: ComparisonOp,
    /// The value compared against (`default_value` applies).
    pub value: RuntimeUInt32,
}

impl ComparisonFilter {
    /// Whether `x` passes the comparison.
    pub fn passes(&self, x: u64) -> bool {
        let y = u64::from(self.value.default_value);
        match self.op {
            ComparisonOp::Eq => x == y,
            ComparisonOp::Ge => x >= y,
            ComparisonOp::Le => x <= y,
            ComparisonOp::Ne => x != y,
        }
    }
}

/// `envoy.config.accesslog.v3.StatusCodeFilter`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusCodeFilter {
    /// The comparison against the response code.
    pub comparison: ComparisonFilter,
}

/// `envoy.config.accesslog.v3.DurationFilter`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DurationFilter {
    /// The comparison against the duration in milliseconds.
    pub comparison: ComparisonFilter,
}

/// `envoy.config.accesslog.v3.AndFilter` / `OrFilter`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLogFilterList {
    /// The sub-filters (at least 2).
    pub filters: Vec<AccessLogFilter>,
}

/// `envoy.config.accesslog.v3.ResponseFlagFilter`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseFlagFilter {
    /// Short flag names (`UH`, `UF`, ...); empty means any flag.
    pub flags: Vec<String>,
}

/// Envoy's accepted `ResponseFlagFilter.flags` values.
pub const RESPONSE_FLAGS: &[&str] = &[
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
    "UDO",
];
