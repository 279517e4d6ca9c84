//! Network filters: iteration, built-ins, tcp_proxy session, registry.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use week1_core::config::listener::Filter as NetFilterConfig;
use week3_filters::buffer::Buffer;
use week3_filters::context::{FactoryContext, ManualTime, MemorySink};
use week3_filters::http::{ConnectionInfo, ResponseFlag};
use week3_filters::network::filters::SharedBuckets;
use week3_filters::network::tcp_proxy::{SessionState, TcpAction, TcpProxyConfig, TcpProxySession};
use week3_filters::network::*;
use week3_filters::registry::{Admission, NetworkFilterChainFactory, Terminal};

type Log = Arc<Mutex<Vec<String>>>;

/// Stops reads until its timer fires; logs everything.
struct Probe {
    name: &'static str,
    log: Log,
    stop_reads: bool,
}

impl ReadFilter for Probe {
    fn on_new_connection(&mut self, _cb: &mut ReadFilterCallbacks<'_>) -> FilterStatus {
        self.log.lock().unwrap().push(format!("{}:new", self.name));
        FilterStatus::Continue
    }
    fn on_data(
        &mut self,
        data: &mut Buffer,
        end: bool,
        cb: &mut ReadFilterCallbacks<'_>,
    ) -> FilterStatus {
        self.log.lock().unwrap().push(format!(
            "{}:read {:?} {end}",
            self.name,
            String::from_utf8_lossy(&data.to_vec())
        ));
        if self.stop_reads {
            cb.start_timer(Duration::from_millis(1));
            return FilterStatus::StopIteration;
        }
        FilterStatus::Continue
    }
    fn on_timer(&mut self, cb: &mut ReadFilterCallbacks<'_>) {
        self.stop_reads = false;
        cb.continue_reading();
    }
}

impl WriteFilter for Probe {
    fn on_write(
        &mut self,
        data: &mut Buffer,
        _end: bool,
        _cb: &mut WriteFilterCallbacks<'_>,
    ) -> FilterStatus {
        self.log.lock().unwrap().push(format!(
            "{}:write {:?}",
            self.name,
            String::from_utf8_lossy(&data.to_vec())
        ));
        data.prepend(self.name.as_bytes());
        FilterStatus::Continue
    }
}

fn events(fm: &mut NetworkFilterManager) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(e) = fm.next_event() {
        out.push(match e {
            NetworkEvent::Read { data, end_stream } => {
                format!("read {:?} {end_stream}", String::from_utf8_lossy(&data.to_vec()))
            }
            NetworkEvent::Write { data, end_stream } => {
                format!("write {:?} {end_stream}", String::from_utf8_lossy(&data.to_vec()))
            }
            NetworkEvent::Close(c) => format!("close {c:?}"),
            NetworkEvent::StartTimer { filter, .. } => format!("timer {filter}"),
        });
    }
    out
}

#[test]
fn reads_in_order_writes_in_reverse_and_resume_after_a_stop() {
    let log = Log::default();
    let f = |name, stop| {
        NetworkFilterInstance::Dual(Box::new(Probe { name, log: log.clone(), stop_reads: stop }))
    };
    let mut fm = NetworkFilterManager::new(
        vec![f("a", false), f("b", true), f("c", false)],
        ConnectionInfo::default(),
    );
    fm.initialize();
    fm.on_read(Buffer::from(&b"he"[..]), false);
    fm.on_read(Buffer::from(&b"llo"[..]), true);
    assert_eq!(events(&mut fm), ["timer 1", "timer 1"]);
    fm.on_timer(1);
    assert_eq!(events(&mut fm), ["read \"hello\" true"]);
    assert_eq!(
        std::mem::take(&mut *log.lock().unwrap()),
        [
            "a:new",
            "b:new",
            "c:new",
            "a:read \"he\" false",
            "b:read \"he\" false",
            "a:read \"hello\" true",
            "b:read \"hello\" true",
            "c:read \"hello\" true"
        ]
    );
    fm.write(Buffer::from(&b"!"[..]), false);
    assert_eq!(events(&mut fm), ["write \"abc!\" false"]);
    assert_eq!(*log.lock().unwrap(), ["c:write \"!\"", "b:write \"c!\"", "a:write \"bc!\""]);
    assert_eq!(fm.bytes(), (5, 4));
}

fn load(yaml: &str) -> NetFilterConfig {
    week1_core::config::load_str(yaml).unwrap()
}

const TCP: &str = "name: tcp\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n  stat_prefix: t\n  weighted_clusters: {clusters: [{name: a, weight: 1}, {name: b, weight: 3}]}\n  idle_timeout: 10s\n  max_connect_attempts: 2\n";

#[test]
fn network_local_ratelimit_closes_new_connections_over_the_limit() {
    let t = Arc::new(ManualTime::new());
    let sink = Arc::new(MemorySink::default());
    let ctx = FactoryContext { log: sink.clone(), ..FactoryContext::manual(t.clone(), 0) };
    let rl = load(
        "name: rl\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit\n  stat_prefix: rl\n  token_bucket: {max_tokens: 1, fill_interval: 1s}\n",
    );
    let chain = NetworkFilterChainFactory::from_config(
        &[rl, load(TCP)],
        &ctx,
        &SharedBuckets::default(),
        true,
    )
    .unwrap();
    let Terminal::TcpProxy(tcp) = &chain.terminal else { panic!("tcp_proxy terminal") };
    assert_eq!(tcp.clusters.len(), 2);
    let conn = |id| ConnectionInfo {
        id,
        remote_address: Some("10.0.0.1:5000".parse().unwrap()),
        local_address: None,
    };
    let mut first = NetworkFilterManager::new(chain.create_filters(), conn(1));
    first.initialize();
    first.on_read(Buffer::from(&b"x"[..]), false);
    assert_eq!(events(&mut first), ["read \"x\" false"]);
    let mut second = NetworkFilterManager::new(chain.create_filters(), conn(2));
    second.initialize();
    second.on_read(Buffer::from(&b"y"[..]), false);
    assert_eq!(events(&mut second), ["close NoFlush"]);
    t.advance(Duration::from_secs(1));
    let mut third = NetworkFilterManager::new(chain.create_filters(), conn(3));
    third.initialize();
    assert!(third.is_open());
    first.write(Buffer::from(&b"pong"[..]), false);
    first.on_event(ConnectionEvent::RemoteClose);
    let lines = sink.lines();
    assert_eq!(lines[0], "connection 1 open from 10.0.0.1:5000");
    assert!(
        lines.contains(
            &"connection from 10.0.0.1:5000 closed by peer: rx=1 tx=4 1000ms".to_string()
        ),
        "{lines:?}"
    );
}

#[test]
fn admit_runs_the_new_connection_pass_and_names_the_refusing_filter() {
    let t = Arc::new(ManualTime::new());
    let ctx = FactoryContext::manual(t.clone(), 0);
    let rl = |prefix: &str, tokens: u32| {
        load(&format!(
            "name: rl\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit\n  stat_prefix: {prefix}\n  token_bucket: {{max_tokens: {tokens}, fill_interval: 1s}}\n"
        ))
    };
    let conn = |id| ConnectionInfo { id, remote_address: None, local_address: None };
    let plain = NetworkFilterChainFactory::from_config(
        &[load(TCP)],
        &ctx,
        &SharedBuckets::default(),
        false,
    )
    .unwrap();
    assert!(!plain.has_filters());
    assert_eq!(plain.admit(conn(1)), Admission::Accepted);

    // The outer limit has 2 tokens, the inner 1: the second connection passes
    // the first filter and is refused by the second (index 1).
    let chain = NetworkFilterChainFactory::from_config(
        &[rl("outer", 2), rl("inner", 1), load(TCP)],
        &ctx,
        &SharedBuckets::default(),
        false,
    )
    .unwrap();
    assert!(chain.has_filters());
    assert_eq!(chain.admit(conn(1)), Admission::Accepted);
    assert_eq!(chain.admit(conn(2)), Admission::Refused { filter: 1 });
    assert_eq!(chain.admit(conn(3)), Admission::Refused { filter: 0 });
    t.advance(Duration::from_secs(1));
    assert_eq!(chain.admit(conn(4)), Admission::Accepted);
}

#[test]
fn registry_requires_a_terminal_and_names_bad_hcm_filters() {
    let ctx = FactoryContext::default();
    let rl = load(
        "name: rl\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit\n  stat_prefix: rl\n  token_bucket: {max_tokens: 1, fill_interval: 1s}\n",
    );
    let e = NetworkFilterChainFactory::from_config(&[rl], &ctx, &SharedBuckets::default(), false)
        .unwrap_err();
    assert!(e.to_string().contains("must end with http_connection_manager or tcp_proxy"), "{e}");
    let hcm = load(
        "name: hcm\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n  stat_prefix: h\n  route_config: {virtual_hosts: []}\n  http_filters:\n  - name: envoy.filters.http.buffer\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer\n      max_request_bytes: 10\n  - name: envoy.router\n",
    );
    let mut hcm = hcm;
    // Valid as loaded; put the router first in code, as a broken xDS update could.
    if let Some(week1_core::config::listener::NetworkFilterConfig::HttpConnectionManager(h)) =
        &mut hcm.typed_config
    {
        h.http_filters.reverse();
    }
    let e = NetworkFilterChainFactory::from_config(&[hcm], &ctx, &SharedBuckets::default(), false)
        .unwrap_err();
    assert!(e.to_string().starts_with("filters[0].typed_config.http_filters[0]: the terminal filter \"envoy.router\" must be last"), "{e}");
}

#[test]
fn tcp_proxy_session_holds_data_until_connected_and_retries() {
    let cfg: week1_core::config::tcp_proxy::TcpProxy = week1_core::config::load_str(
        "stat_prefix: t\nweighted_clusters: {clusters: [{name: a, weight: 1}, {name: b, weight: 3}]}\nidle_timeout: 10s\nmax_connect_attempts: 2\n",
    )
    .unwrap();
    let cfg = TcpProxyConfig::new(&cfg).unwrap();
    assert_eq!([0, 1, 3, 4].map(|r| cfg.pick_cluster(r)), ["a", "b", "b", "a"]);
    let now = Instant::now();
    let (mut s, first) = TcpProxySession::start(&cfg, 2, now);
    assert!(matches!(first, TcpAction::Connect(ref c) if c == "b"));
    assert!(matches!(
        s.on_downstream_data(&mut Buffer::from(&b"hi"[..]), false, now),
        TcpAction::None
    ));
    assert!(matches!(s.on_upstream_connect_failed(), TcpAction::Connect(_)));
    assert_eq!(s.state(), SessionState::Connecting(2));
    let TcpAction::WriteUpstream(held, false) = s.on_upstream_connected(now) else { panic!() };
    assert_eq!(held.to_vec(), b"hi");
    let TcpAction::WriteUpstream(d, true) =
        s.on_downstream_data(&mut Buffer::from(&b"!"[..]), true, now)
    else {
        panic!()
    };
    assert_eq!(d.to_vec(), b"!");
    assert!(matches!(s.on_upstream_data(&Buffer::from(&b"pong"[..]), false, now), TcpAction::None));
    assert_eq!((s.bytes_received, s.bytes_sent, s.upstream_bytes_sent), (3, 4, 3));
    assert_eq!(s.next_deadline(), Some(now + Duration::from_secs(10)));
    assert!(matches!(s.on_timer(now + Duration::from_secs(9)), TcpAction::None));
    assert!(matches!(s.on_timer(now + Duration::from_secs(10)), TcpAction::Close("idle timeout")));

    let (mut s, _) = TcpProxySession::start(&cfg, 0, now);
    s.on_upstream_connect_failed();
    assert!(matches!(s.on_upstream_connect_failed(), TcpAction::Close(_)));
    assert!(s.flags.contains(ResponseFlag::UpstreamConnectionFailure));
    assert_eq!(s.flags.to_string(), "UF");
}
