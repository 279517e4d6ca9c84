//! # Access logs: Envoy's file, stdout and stderr access loggers
//!
//! Mirrors Envoy's `AccessLog::Instance` with the file and stream loggers and
//! the substitution formatter:
//!
//! ```text
//! config load:  [AccessLog] ─► AccessLogManager::compile ─► AccessLogs (filters, formatters, sinks)
//! stream end:   LogEntry ─► AccessLogs::log ─► filter? ─► format into this thread's buffer
//! off the path: buffer ≥ 64 KiB | run_flusher tick | thread exit ─► one O_APPEND write of whole entries
//! ```
//!
//! - [`format`](mod@format): the command operators (`%START_TIME%`, `%REQ(X?Y):Z%`, ...),
//!   text and JSON formats, Envoy's default format.
//! - [`filter`]: `status_code`, `duration`, `response_flag`, `not_health_check`,
//!   `and`, `or`.
//! - [`sink`]: the per-thread buffers and the shared files.
//!
//! Each worker spawns [`run_flusher`] on its current-thread runtime and calls
//! [`flush_thread_buffers`] when it stops; any other thread that logs must do
//! the same (its buffer is also written when the thread exits).
//!
//! As in Envoy, a text format is written as is: it must end with `\n` to give
//! one line per entry (the default format does). A JSON format adds the `\n`.

pub mod filter;
pub mod format;
pub mod sink;
pub(crate) mod time;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use week1_core::config::access_log::{AccessLog, AccessLogConfig};
use week1_core::config::{ConfigError, FieldPath};
use week1_core::headers::HeaderMap;
use week3_filters::http::StreamInfo;

pub use filter::Filter;
pub use format::{DEFAULT_FORMAT, Formatter};
pub use sink::{FLUSH_THRESHOLD_BYTES, Sink, SinkCounters, flush_thread_buffers};

/// Envoy's `file_flush_interval_msec` default.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(1000);

/// What one access-log entry is made from. TCP proxy entries carry no headers.
#[derive(Debug, Clone, Copy)]
pub struct LogEntry<'a> {
    /// The downstream request headers.
    pub request_headers: Option<&'a HeaderMap>,
    /// The response headers sent downstream.
    pub response_headers: Option<&'a HeaderMap>,
    /// The response trailers sent downstream.
    pub response_trailers: Option<&'a HeaderMap>,
    /// What happened to the stream.
    pub stream_info: &'a StreamInfo,
    /// `%PROTOCOL%`, e.g. `HTTP/1.1`.
    pub protocol: Option<&'a str>,
}

/// One compiled `AccessLog`.
#[derive(Debug)]
struct CompiledLog {
    filter: Option<Filter>,
    formatter: Formatter,
    sink: Arc<Sink>,
}

/// The compiled access logs of one place (an HCM, a tcp_proxy, a listener).
/// Cheap to clone; empty by default.
#[derive(Debug, Clone, Default)]
pub struct AccessLogs {
    logs: Arc<[CompiledLog]>,
}

impl AccessLogs {
    /// Whether there is no access log (callers can skip building entries).
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// Writes `entry` to every log whose filter passes, into this thread's buffers.
    pub fn log(&self, entry: &LogEntry<'_>) {
        for log in self.logs.iter() {
            if log.filter.as_ref().is_none_or(|f| f.passes(entry.stream_info)) {
                sink::append(&log.sink, |out, scratch| log.formatter.format(entry, out, scratch));
            }
        }
    }
}

/// A snapshot of the filesystem counters (Envoy's `filesystem.*` stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccessLogStats {
    /// Entries buffered.
    pub write_buffered: u64,
    /// Buffer writes that succeeded.
    pub write_completed: u64,
    /// Buffer writes that failed.
    pub write_failed: u64,
    /// Buffers written by the flusher timer.
    pub flushed_by_timer: u64,
}

/// Envoy's `AccessLogManager`: compiles access-log configs and opens each
/// destination once, shared by every logger and thread that writes to it.
#[derive(Debug, Default)]
pub struct AccessLogManager {
    sinks: Mutex<HashMap<String, Weak<Sink>>>,
    counters: Arc<SinkCounters>,
}

impl AccessLogManager {
    /// A manager with no open file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles the `access_log` list found at `at` (e.g.
    /// `static_resources.listeners[0]....access_log`), opening files as needed.
    pub fn compile(&self, logs: &[AccessLog], at: &FieldPath) -> Result<AccessLogs, ConfigError> {
        let mut compiled = Vec::with_capacity(logs.len());
        for (i, log) in logs.iter().enumerate() {
            let at = at.index(i);
            let filter =
                log.filter.as_ref().map(|f| Filter::compile(f, &at.field("filter"))).transpose()?;
            let typed = at.field("typed_config");
            let (formatter, path, path_field) = match &log.typed_config {
                None => {
                    return Err(ConfigError::invalid(
                        typed,
                        "must be set (a FileAccessLog, StdoutAccessLog or StderrAccessLog)",
                    ));
                }
                Some(AccessLogConfig::File(f)) => {
                    if f.path.is_empty() {
                        return Err(ConfigError::invalid(typed.field("path"), "must not be empty"));
                    }
                    (file_formatter(f, &typed)?, f.path.as_str(), typed.field("path"))
                }
                Some(AccessLogConfig::Stdout(s)) => (
                    Formatter::from_config(s.log_format.as_ref(), &typed.field("log_format"))?,
                    STDOUT,
                    typed,
                ),
                Some(AccessLogConfig::Stderr(s)) => (
                    Formatter::from_config(s.log_format.as_ref(), &typed.field("log_format"))?,
                    STDERR,
                    typed,
                ),
            };
            let sink = self.sink(path, path_field)?;
            compiled.push(CompiledLog { filter, formatter, sink });
        }
        Ok(AccessLogs { logs: compiled.into() })
    }

    /// The filesystem counters of every sink this manager opened.
    pub fn stats(&self) -> AccessLogStats {
        let c = &self.counters;
        AccessLogStats {
            write_buffered: c.write_buffered.load(Ordering::Relaxed),
            write_completed: c.write_completed.load(Ordering::Relaxed),
            write_failed: c.write_failed.load(Ordering::Relaxed),
            flushed_by_timer: c.flushed_by_timer.load(Ordering::Relaxed),
        }
    }

    /// The sink of `path`, opened on first use; an open error is placed at `at`.
    fn sink(&self, path: &str, at: FieldPath) -> Result<Arc<Sink>, ConfigError> {
        let mut sinks = self.sinks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sink) = sinks.get(path).and_then(Weak::upgrade) {
            return Ok(sink);
        }
        let file = open(path).map_err(|e| {
            ConfigError::invalid(at, format!("cannot open access log {path:?}: {e}"))
        })?;
        let sink = Arc::new(Sink::new(path.to_string(), file, Arc::clone(&self.counters)));
        sinks.retain(|_, s| s.strong_count() > 0);
        sinks.insert(path.to_string(), Arc::downgrade(&sink));
        Ok(sink)
    }
}

const STDOUT: &str = "/dev/stdout";
const STDERR: &str = "/dev/stderr";

/// Opens a log destination for appending; stdout and stderr are the process's own.
fn open(path: &str) -> std::io::Result<File> {
    match path {
        STDOUT => Ok(File::from(std::io::stdout().as_fd().try_clone_to_owned()?)),
        STDERR => Ok(File::from(std::io::stderr().as_fd().try_clone_to_owned()?)),
        _ => OpenOptions::new().append(true).create(true).open(path),
    }
}

/// A `FileAccessLog`'s formatter, from whichever of its format fields is set.
fn file_formatter(
    f: &week1_core::config::access_log::FileAccessLog,
    at: &FieldPath,
) -> Result<Formatter, ConfigError> {
    if let Some(format) = &f.log_format {
        return Formatter::from_config(Some(format), &at.field("log_format"));
    }
    if let Some(text) = &f.format {
        return Formatter::text(text, false, &at.field("format"));
    }
    if let Some(json) = &f.json_format {
        return Formatter::json(json, false, &at.field("json_format"));
    }
    if let Some(json) = &f.typed_json_format {
        return Formatter::json(json, false, &at.field("typed_json_format"));
    }
    Ok(Formatter::envoy_default())
}

/// Flushes this thread's access-log buffers every `interval` (Envoy's
/// `file_flush_interval_msec`), forever. Spawn it on each worker's
/// current-thread runtime: it flushes the buffers of the thread it runs on.
pub async fn run_flusher(interval: Duration) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick completes at once.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        sink::flush(true);
    }
}
