use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use week1_core::config::access_log::{
    AccessLog, AccessLogConfig, AccessLogFilter, ComparisonFilter, ComparisonOp, FileAccessLog,
    StatusCodeFilter, StreamAccessLog, SubstitutionFormatString,
};
use week1_core::config::protocol::DataSource;
use week1_core::config::types::RuntimeUInt32;
use week3_filters::http::ResponseFlag;

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.try_append(k, v).unwrap();
    }
    h
}

/// The stream of Envoy's documented example line.
fn example_info() -> StreamInfo {
    let start = UNIX_EPOCH + Duration::from_millis(1_460_751_420_310);
    let mut i = StreamInfo::new(Instant::now(), start);
    i.response_code = Some(204);
    i.bytes_received = 154;
    i.bytes_sent = 0;
    i.completed = Some(Duration::from_micros(226_900));
    i.last_downstream_rx_byte_received = Some(Duration::from_millis(12));
    i.first_upstream_rx_byte_received = Some(Duration::from_millis(200));
    i.last_downstream_tx_byte_sent = Some(Duration::from_millis(225));
    i.upstream_host = Some("10.0.2.1:80".parse().unwrap());
    i.upstream_cluster = Some("locations".into());
    i.route_name = Some("r1".into());
    i.connection.id = 42;
    i.connection.remote_address = Some("10.0.35.28:51234".parse().unwrap());
    i.connection.local_address = Some("[::1]:10000".parse().unwrap());
    i.response_code_details = Some(Cow::Borrowed("via_upstream"));
    i.set_filter_state("user", "alice");
    i
}

fn example_request() -> HeaderMap {
    headers(&[
        (":method", "POST"),
        (":path", "/api/v1/locations"),
        (":authority", "locations"),
        ("x-forwarded-for", "10.0.35.28"),
        ("user-agent", "nsq2http"),
        ("x-request-id", "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2"),
    ])
}

fn example_response() -> HeaderMap {
    headers(&[
        (":status", "204"),
        ("x-envoy-upstream-service-time", "100"),
        ("via", "a"),
        ("via", "b"),
    ])
}

fn render(format: &str, entry: &LogEntry<'_>) -> String {
    Formatter::text(format, false, &FieldPath::root()).unwrap().format_to_string(entry)
}

macro_rules! entry {
    ($info:expr, $req:expr, $resp:expr, $trailers:expr, $proto:expr) => {
        LogEntry {
            request_headers: $req,
            response_headers: $resp,
            response_trailers: $trailers,
            stream_info: $info,
            protocol: $proto,
        }
    };
}

#[test]
fn default_format_matches_envoys_documented_line() {
    let (info, req, resp) = (example_info(), example_request(), example_response());
    let e = entry!(&info, Some(&req), Some(&resp), None, Some("HTTP/2"));
    assert_eq!(
        Formatter::envoy_default().format_to_string(&e),
        "[2016-04-15T20:17:00.310Z] \"POST /api/v1/locations HTTP/2\" 204 - 154 0 226 100 \"10.0.35.28\" \"nsq2http\" \"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2\" \"locations\" \"10.0.2.1:80\"\n"
    );
}

#[test]
fn default_format_of_an_empty_stream() {
    let info = StreamInfo::new(Instant::now(), UNIX_EPOCH + Duration::from_secs(1_704_067_200));
    let e = entry!(&info, None, None, None, None);
    assert_eq!(
        Formatter::envoy_default().format_to_string(&e),
        "[2024-01-01T00:00:00.000Z] \"- - -\" 0 - 0 0 - - \"-\" \"-\" \"-\" \"-\" \"-\"\n"
    );
}

#[test]
fn original_path_wins_over_path() {
    let info = example_info();
    let req = headers(&[(":path", "/rewritten"), ("x-envoy-original-path", "/original")]);
    let e = entry!(&info, Some(&req), None, None, None);
    assert_eq!(render("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", &e), "/original");
    let req = headers(&[(":path", "/rewritten")]);
    let e = entry!(&info, Some(&req), None, None, None);
    assert_eq!(render("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", &e), "/rewritten");
}

#[test]
fn every_operator() {
    let (mut info, req, resp) = (example_info(), example_request(), example_response());
    info.set_response_flag(ResponseFlag::UpstreamRequestTimeout);
    info.set_response_flag(ResponseFlag::NoHealthyUpstream);
    let trailers = headers(&[("grpc-status", "0")]);
    let e = entry!(&info, Some(&req), Some(&resp), Some(&trailers), Some("HTTP/1.1"));
    let cases = [
        ("%START_TIME%", "2016-04-15T20:17:00.310Z"),
        ("%START_TIME(%s.%3f)%", "1460751420.310"),
        ("%START_TIME(%Y/%m/%d %H:%M:%S %f)%", "2016/04/15 20:17:00 310000000"),
        ("%REQ(:METHOD)% %REQUEST_HEADER(user-agent)%", "POST nsq2http"),
        ("%REQ(USER-AGENT):3%", "nsq"),
        ("%REQ(X-MISSING)%", "-"),
        ("%REQ(X-MISSING?USER-AGENT)%", "nsq2http"),
        ("%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %RESPONSE_HEADER(:STATUS)%", "100 204"),
        ("%RESP(VIA)%", "a"),
        ("%TRAILER(GRPC-STATUS)% %RESPONSE_TRAILER(X)%", "0 -"),
        ("%RESPONSE_CODE% %RESPONSE_CODE_DETAILS%", "204 via_upstream"),
        ("%RESPONSE_FLAGS%", "UH,UT"),
        ("%RESPONSE_FLAGS_LONG%", "NoHealthyUpstream,UpstreamRequestTimeout"),
        ("%BYTES_RECEIVED% %BYTES_SENT%", "154 0"),
        (
            "%DURATION% %REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION%",
            "226 12 200 25",
        ),
        ("%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %ROUTE_NAME%", "10.0.2.1:80 locations r1"),
        ("%PROTOCOL%", "HTTP/1.1"),
        ("%DOWNSTREAM_REMOTE_ADDRESS%", "10.0.35.28:51234"),
        ("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.35.28"),
        ("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%", "10.0.35.28:51234"),
        ("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.35.28"),
        ("%DOWNSTREAM_LOCAL_ADDRESS%", "[::1]:10000"),
        ("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "::1"),
        ("%CONNECTION_ID%", "42"),
        ("%FILTER_STATE(user)% %FILTER_STATE(user:PLAIN)% %FILTER_STATE(nobody)%", "alice alice -"),
        ("100%% %%REQ%%", "100% %REQ%"),
        ("plain text", "plain text"),
        ("", ""),
    ];
    for (format, want) in cases {
        assert_eq!(render(format, &e), want, "format {format:?}");
    }
    let host = render("%HOSTNAME%", &e);
    assert!(!host.is_empty() && !host.contains('\n'), "{host:?}");
}

#[test]
fn missing_values_print_a_dash_or_nothing() {
    let info = StreamInfo::new(Instant::now(), UNIX_EPOCH);
    let e = entry!(&info, None, None, None, None);
    let format = "%DURATION%|%UPSTREAM_HOST%|%ROUTE_NAME%|%RESPONSE_CODE_DETAILS%|%PROTOCOL%|%DOWNSTREAM_REMOTE_ADDRESS%|%RESPONSE_TX_DURATION%|%RESPONSE_FLAGS%";
    assert_eq!(render(format, &e), "-|-|-|-|-|-|-|-");
    let omit = Formatter::text(format, true, &FieldPath::root()).unwrap();
    // RESPONSE_FLAGS prints "-" for "no flag": it is a value, not a missing one.
    assert_eq!(omit.format_to_string(&e), "|||||||-");
}

#[test]
fn truncation_keeps_whole_characters() {
    let info = example_info();
    let req = headers(&[("x-name", "h\u{e9}llo")]);
    let e = entry!(&info, Some(&req), None, None, None);
    assert_eq!(render("%REQ(X-NAME):2%", &e), "h");
    assert_eq!(render("%REQ(X-NAME):3%", &e), "h\u{e9}");
    assert_eq!(render("%REQ(X-NAME):0%", &e), "");
    assert_eq!(render("%UPSTREAM_HOST:4%", &e), "10.0");
}

#[test]
fn format_errors_name_the_field() {
    let at = FieldPath::root().field("log_format").field("text_format");
    let err = |f: &str| Formatter::text(f, false, &at).unwrap_err();
    assert_eq!(
        err("a %BOGUS% b").to_string(),
        format!(
            "log_format.text_format: unknown command operator %BOGUS% (supported: {}) at position 2",
            "START_TIME, REQ, RESP, TRAILER (REQUEST_HEADER, RESPONSE_HEADER, RESPONSE_TRAILER), RESPONSE_CODE, RESPONSE_CODE_DETAILS, RESPONSE_FLAGS, RESPONSE_FLAGS_LONG, BYTES_RECEIVED, BYTES_SENT, DURATION, REQUEST_DURATION, RESPONSE_DURATION, RESPONSE_TX_DURATION, UPSTREAM_HOST, UPSTREAM_CLUSTER, ROUTE_NAME, PROTOCOL, DOWNSTREAM_REMOTE_ADDRESS[_WITHOUT_PORT], DOWNSTREAM_LOCAL_ADDRESS[_WITHOUT_PORT], DOWNSTREAM_DIRECT_REMOTE_ADDRESS[_WITHOUT_PORT], CONNECTION_ID, FILTER_STATE, HOSTNAME"
        )
    );
    assert!(err("%DYNAMIC_METADATA(ns)%").is_unsupported());
    assert_eq!(
        err("50% off").to_string(),
        "log_format.text_format: no valid command operator at position 2 (write a literal % as %%)"
    );
    for bad in [
        "%REQ%",
        "%REQ()%",
        "%REQ(A?B?C)%",
        "%REQ(A?)%",
        "%DURATION(x)%",
        "%REQ(A",
        "%REQ(A):%",
        "%START_TIME(%Q)%",
        "%FILTER_STATE(k:JSON)%",
        "%FILTER_STATE()%",
        "%",
    ] {
        let e = err(bad);
        assert!(e.to_string().starts_with("log_format.text_format: "), "{bad}: {e}");
        assert!(!e.is_unsupported(), "{bad}");
    }
}

#[test]
fn json_format_types_values_like_envoy() {
    let (info, req, resp) = (example_info(), example_request(), example_response());
    let e = entry!(&info, Some(&req), Some(&resp), None, Some("HTTP/1.1"));
    let format = serde_json::json!({
        "code": "%RESPONSE_CODE%",
        "duration": "%DURATION%",
        "method": "%REQ(:METHOD)%",
        "line": "%REQ(:METHOD)% %REQ(:PATH)% %REQ(X-MISSING)%",
        "missing": "%REQ(X-MISSING)%",
        "flags": "%RESPONSE_FLAGS%",
        "literal": "text \"quoted\" 100%%",
        "number": 7,
        "flag": true,
        "nested": {"host": "%UPSTREAM_HOST%", "ua": "%REQ(USER-AGENT):3%", "none": "%ROUTE_NAME%"},
        "list": ["%BYTES_RECEIVED%", "x"],
        "start": "%START_TIME%",
    });
    let map = format.as_object().unwrap();
    let f = Formatter::json(map, false, &FieldPath::root()).unwrap();
    let line = f.format_to_string(&e);
    assert_eq!(
        line,
        "{\"code\":204,\"duration\":226,\"flag\":true,\"flags\":\"-\",\"line\":\"POST /api/v1/locations -\",\"list\":[154,\"x\"],\"literal\":\"text \\\"quoted\\\" 100%\",\"method\":\"POST\",\"missing\":null,\"nested\":{\"host\":\"10.0.2.1:80\",\"none\":\"r1\",\"ua\":\"nsq\"},\"number\":7,\"start\":\"2016-04-15T20:17:00.310Z\"}\n"
    );
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(parsed["code"], 204);

    let omit = Formatter::json(map, true, &FieldPath::root()).unwrap();
    let line = omit.format_to_string(&e);
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(parsed.get("missing").is_none(), "{line}");
    assert_eq!(parsed["line"], "POST /api/v1/locations ");
}

#[test]
fn json_values_are_escaped() {
    let info = example_info();
    let req = headers(&[("user-agent", "a\"b\\c\t\u{e9}")]);
    let e = entry!(&info, Some(&req), None, None, None);
    let map = serde_json::json!({"ua": "%REQ(USER-AGENT)%"});
    let f = Formatter::json(map.as_object().unwrap(), false, &FieldPath::root()).unwrap();
    let line = f.format_to_string(&e);
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(parsed["ua"], "a\"b\\c\t\u{e9}");
}

#[test]
fn json_errors_name_the_key() {
    let map = serde_json::json!({"outer": {"inner": ["ok", "%NOPE%"]}});
    let at = FieldPath::root().field("json_format");
    let err = Formatter::json(map.as_object().unwrap(), false, &at).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("json_format[\"outer\"][\"inner\"][1]: unknown command operator %NOPE%"),
        "{err}"
    );
}

#[test]
fn substitution_format_string_sources() {
    let info = example_info();
    let e = entry!(&info, None, None, None, None);
    let at = FieldPath::root().field("log_format");
    let inline = SubstitutionFormatString {
        text_format_source: Some(DataSource {
            inline_string: Some("%RESPONSE_CODE%\n".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(Formatter::from_config(Some(&inline), &at).unwrap().format_to_string(&e), "204\n");
    let bytes = SubstitutionFormatString {
        text_format_source: Some(DataSource {
            // "%BYTES_RECEIVED%"
            inline_bytes: Some("JUJZVEVTX1JFQ0VJVkVEJQ==".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(Formatter::from_config(Some(&bytes), &at).unwrap().format_to_string(&e), "154");
    let missing = SubstitutionFormatString {
        text_format_source: Some(DataSource {
            filename: Some("/nonexistent/format.txt".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = Formatter::from_config(Some(&missing), &at).unwrap_err();
    assert!(err.to_string().starts_with("log_format.text_format_source: cannot read"), "{err}");
    let extension = SubstitutionFormatString {
        text_format: Some("x".into()),
        formatters: vec![serde_json::json!({})],
        ..Default::default()
    };
    assert!(Formatter::from_config(Some(&extension), &at).unwrap_err().is_unsupported());
    assert_eq!(Formatter::from_config(None, &at).unwrap(), Formatter::envoy_default());
}

fn file_log(path: &std::path::Path, format: &str) -> AccessLog {
    AccessLog {
        name: "envoy.access_loggers.file".into(),
        filter: None,
        typed_config: Some(AccessLogConfig::File(FileAccessLog {
            path: path.to_string_lossy().into_owned(),
            log_format: Some(SubstitutionFormatString {
                text_format: Some(format.into()),
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

#[test]
fn manager_opens_each_path_once_and_places_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let manager = AccessLogManager::new();
    let at = FieldPath::root().field("access_log");
    let logs = manager.compile(&[file_log(&path, "a\n"), file_log(&path, "b\n")], &at).unwrap();
    assert!(Arc::ptr_eq(&logs.logs[0].sink, &logs.logs[1].sink));
    let again = manager.compile(&[file_log(&path, "c\n")], &at).unwrap();
    assert!(Arc::ptr_eq(&logs.logs[0].sink, &again.logs[0].sink));
    assert!(AccessLogs::default().is_empty());
    assert!(!logs.is_empty());

    let bad_format = manager.compile(&[file_log(&path, "ok\n"), file_log(&path, "%X%")], &at);
    assert!(bad_format.unwrap_err().to_string().starts_with(
        "access_log[1].typed_config.log_format.text_format: unknown command operator %X%"
    ));
    let unopenable = dir.path().join("no/such/dir/access.log");
    let err = manager.compile(&[file_log(&unopenable, "x\n")], &at).unwrap_err();
    assert!(
        err.to_string().starts_with("access_log[0].typed_config.path: cannot open access log"),
        "{err}"
    );
    let no_config = AccessLog::default();
    let err = manager.compile(&[no_config], &at).unwrap_err();
    assert!(err.to_string().starts_with("access_log[0].typed_config: must be set"), "{err}");
    let deprecated = AccessLog {
        typed_config: Some(AccessLogConfig::File(FileAccessLog {
            path: path.to_string_lossy().into_owned(),
            format: Some("%NOPE%".into()),
            ..Default::default()
        })),
        ..Default::default()
    };
    let err = manager.compile(&[deprecated], &at).unwrap_err();
    assert!(err.to_string().starts_with("access_log[0].typed_config.format: unknown"), "{err}");
}

#[test]
fn stdout_and_stderr_loggers_compile() {
    let manager = AccessLogManager::new();
    let logs = [
        AccessLog {
            typed_config: Some(AccessLogConfig::Stdout(StreamAccessLog::default())),
            ..Default::default()
        },
        AccessLog {
            typed_config: Some(AccessLogConfig::Stderr(StreamAccessLog {
                log_format: Some(SubstitutionFormatString {
                    text_format: Some("%BAD%".into()),
                    ..Default::default()
                }),
            })),
            ..Default::default()
        },
    ];
    let at = FieldPath::root().field("access_log");
    assert!(manager.compile(&logs[..1], &at).is_ok());
    let err = manager.compile(&logs, &at).unwrap_err();
    assert!(
        err.to_string().starts_with("access_log[1].typed_config.log_format.text_format:"),
        "{err}"
    );
}

#[test]
fn filters_select_what_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errors.log");
    let mut log = file_log(&path, "%RESPONSE_CODE%\n");
    log.filter = Some(AccessLogFilter {
        status_code_filter: Some(StatusCodeFilter {
            comparison: ComparisonFilter {
                op: ComparisonOp::Ge,
                value: RuntimeUInt32 { default_value: 500, ..Default::default() },
            },
        }),
        ..Default::default()
    });
    let manager = AccessLogManager::new();
    let logs = manager.compile(&[log], &FieldPath::root()).unwrap();
    for code in [200, 503, 404, 500] {
        let mut info = example_info();
        info.response_code = Some(code);
        logs.log(&entry!(&info, None, None, None, None));
    }
    flush_thread_buffers();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "503\n500\n");
    assert_eq!(manager.stats().write_buffered, 2);
    assert_eq!(manager.stats().write_completed, 1);
}

#[test]
fn two_threads_write_whole_lines() {
    const LINES: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let manager = AccessLogManager::new();
    // ~300-byte lines: each thread's buffer passes 64 KiB several times.
    let padding = "p".repeat(280);
    let logs = manager
        .compile(
            &[file_log(&path, &format!("%REQ(X-THREAD)% %BYTES_SENT% {padding}\n"))],
            &FieldPath::root(),
        )
        .unwrap();
    let threads: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let req = headers(&[("x-thread", name)]);
                for n in 0..LINES {
                    let mut info = StreamInfo::new(Instant::now(), SystemTime::UNIX_EPOCH);
                    info.bytes_sent = n as u64;
                    logs.log(&entry!(&info, Some(&req), None, None, None));
                }
                // No explicit flush: the rest is written when the thread exits.
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    let mut next = std::collections::HashMap::from([("a", 0usize), ("b", 0usize)]);
    for line in text.lines() {
        let mut parts = line.split(' ');
        let (name, n, pad) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        assert_eq!(pad, padding, "torn line {line:?}");
        assert!(parts.next().is_none(), "torn line {line:?}");
        let expected = next.get_mut(name).unwrap();
        assert_eq!(n.parse::<usize>().unwrap(), *expected, "lines of {name} out of order");
        *expected += 1;
    }
    assert_eq!(next["a"], LINES);
    assert_eq!(next["b"], LINES);
    let stats = manager.stats();
    assert_eq!(stats.write_buffered, 2 * LINES as u64);
    assert_eq!(stats.write_failed, 0);
    // Several threshold writes per thread, plus the exit flushes.
    assert!(stats.write_completed >= 2 * 8, "{stats:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn flusher_writes_on_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let manager = AccessLogManager::new();
    let logs =
        manager.compile(&[file_log(&path, "%RESPONSE_CODE%\n")], &FieldPath::root()).unwrap();
    let flusher = tokio::spawn(run_flusher(DEFAULT_FLUSH_INTERVAL));
    tokio::task::yield_now().await; // the flusher starts its interval

    let info = example_info();
    logs.log(&entry!(&info, None, None, None, None));
    assert_eq!(sink::pending_bytes(&logs.logs[0].sink), 4);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");

    tokio::time::advance(Duration::from_millis(999)).await;
    tokio::task::yield_now().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");

    tokio::time::advance(Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "204\n");
    assert_eq!(sink::pending_bytes(&logs.logs[0].sink), 0);
    assert_eq!(manager.stats().flushed_by_timer, 1);

    // An idle tick writes nothing.
    tokio::time::advance(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    assert_eq!(manager.stats().write_completed, 1);
    flusher.abort();
}

#[test]
fn write_failures_are_counted_not_raised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.log");
    std::fs::write(&path, "").unwrap();
    let counters = Arc::new(SinkCounters::default());
    // A read-only handle: every write fails.
    let file = File::open(&path).unwrap();
    let sink =
        Arc::new(Sink::new(path.to_string_lossy().into_owned(), file, Arc::clone(&counters)));
    sink::append(&sink, |out, _| out.extend_from_slice(b"x\n"));
    flush_thread_buffers();
    assert_eq!(counters.write_failed.load(Ordering::Relaxed), 1);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
}

#[test]
fn socket_addresses_print_like_envoy() {
    let mut info = StreamInfo::new(Instant::now(), UNIX_EPOCH);
    info.connection.remote_address = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    info.upstream_host = Some("[2001:db8::1]:443".parse().unwrap());
    let e = entry!(&info, None, None, None, None);
    assert_eq!(
        render("%DOWNSTREAM_REMOTE_ADDRESS% %UPSTREAM_HOST% %CONNECTION_ID%", &e),
        "127.0.0.1:0 [2001:db8::1]:443 0"
    );
}
