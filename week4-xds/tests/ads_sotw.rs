//! ADS State-of-the-World sequences written from Envoy's xDS protocol
//! specification ("ACK and NACK semantics", "Eventual consistency
//! considerations", "Resource warming"); every request the client sends is
//! asserted in full.

mod common;

use std::time::Duration;

use common::*;
use week4_xds::{
    AdsMux, DiscoveryRequest, Event, IgnoreReason, Interest, Mode, MuxConfig, Node, Outcome,
    Request, Status, TypeUrl,
};

fn node() -> Node {
    Node { id: "proxy-1".into(), cluster: "demo".into(), ..Default::default() }
}

fn mux() -> AdsMux {
    AdsMux::new(MuxConfig::new(Mode::Sotw, node()))
}

/// The request the spec says the client sends.
fn req(t: TypeUrl, version: &str, nonce: &str, names: &[&str]) -> Request {
    Request::Sotw(DiscoveryRequest {
        version_info: version.into(),
        node: Some(node()),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        type_url: t.as_str().into(),
        response_nonce: nonce.into(),
        error_detail: None,
    })
}

fn nack(t: TypeUrl, version: &str, nonce: &str, names: &[&str], message: &str) -> Request {
    let Request::Sotw(mut r) = req(t, version, nonce, names) else { unreachable!() };
    r.error_detail = Some(Status { code: 3, message: message.into() });
    Request::Sotw(r)
}

const CDS: TypeUrl = TypeUrl::Cluster;
const EDS: TypeUrl = TypeUrl::ClusterLoadAssignment;
const LDS: TypeUrl = TypeUrl::Listener;
const RDS: TypeUrl = TypeUrl::RouteConfiguration;

/// Start-up as in Envoy: CDS, then EDS for the EDS clusters (which warm until
/// their endpoints arrive), then LDS, then RDS (the listener warms until its
/// routes arrive). Each response is ACKed before the requests it causes.
#[test]
fn startup_follows_cds_eds_lds_rds_with_warming() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.subscribe(LDS, Interest::wildcard(), now);
    m.connected();
    assert_eq!(drain(&mut m), vec![req(CDS, "", "", &[])], "LDS waits for CDS");

    let out = m.handle_sotw(
        sotw(CDS, "c1", "n1", vec![eds_cluster("web"), res("static")]),
        now,
        validate_sotw,
    );
    let update = out.update().expect("accepted");
    assert_eq!(update.warming.iter().collect::<Vec<_>>(), vec!["web"]);
    assert_eq!(drain(&mut m), vec![req(CDS, "c1", "n1", &[]), req(EDS, "", "", &["web"])]);
    assert!(m.is_warming(CDS, "web"));
    assert_eq!(events(&mut m), vec![Event::Initialized(CDS)]);

    m.handle_sotw(sotw(EDS, "e1", "n2", vec![res("web")]), now, validate_sotw);
    assert_eq!(
        events(&mut m),
        vec![
            Event::Initialized(EDS),
            Event::Warmed { type_url: CDS, name: "web".into(), timed_out: false }
        ]
    );
    assert_eq!(
        drain(&mut m),
        vec![req(EDS, "e1", "n2", &["web"]), req(LDS, "", "", &[])],
        "LDS starts once the clusters are warm"
    );

    let out = m.handle_sotw(
        sotw(LDS, "l1", "n3", vec![rds_listener("http", "local")]),
        now,
        validate_sotw,
    );
    assert!(out.update().is_some_and(|u| u.warming.contains("http")));
    assert_eq!(drain(&mut m), vec![req(LDS, "l1", "n3", &[]), req(RDS, "", "", &["local"])]);

    m.handle_sotw(sotw(RDS, "r1", "n4", vec![res("local")]), now, validate_sotw);
    assert_eq!(drain(&mut m), vec![req(RDS, "r1", "n4", &["local"])]);
    assert!(events(&mut m).contains(&Event::Warmed {
        type_url: LDS,
        name: "http".into(),
        timed_out: false
    }));
    assert!(!m.is_warming(LDS, "http"));
}

/// A NACK carries the previous good version, the rejected nonce and an
/// INVALID_ARGUMENT error_detail; the previous resources stay in force.
#[test]
fn nack_keeps_the_previous_version() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.connected();
    drain(&mut m);
    m.handle_sotw(sotw(CDS, "1", "a", vec![res("x")]), now, validate_sotw);
    assert_eq!(drain(&mut m), vec![req(CDS, "1", "a", &[])]);

    let out = m.handle_sotw(sotw(CDS, "2", "b", vec![res("x"), invalid("y")]), now, validate_sotw);
    assert_eq!(out, Outcome::Rejected { error: "y: invalid".into() });
    assert_eq!(drain(&mut m), vec![nack(CDS, "1", "b", &[], "y: invalid")]);
    assert_eq!(m.version_info(CDS), Some("1"));

    // The server fixes it: version 3 is ACKed.
    m.handle_sotw(sotw(CDS, "3", "c", vec![res("x"), res("y")]), now, validate_sotw);
    assert_eq!(drain(&mut m), vec![req(CDS, "3", "c", &[])]);
}

/// The same version again for the same names is ACKed (the server waits for an
/// answer to its nonce) but nothing is applied.
#[test]
fn duplicate_version_is_acked_not_applied() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.connected();
    drain(&mut m);
    m.handle_sotw(sotw(CDS, "7", "a", vec![res("x")]), now, validate_sotw);
    drain(&mut m);
    let mut called = false;
    let out = m.handle_sotw(sotw(CDS, "7", "b", vec![res("x")]), now, |r| {
        called = true;
        validate_sotw(r)
    });
    assert_eq!(out, Outcome::Duplicate);
    assert!(!called, "a duplicate is not validated or applied");
    assert_eq!(drain(&mut m), vec![req(CDS, "7", "b", &[])]);
}

/// Responses for types nobody watches are ignored and not answered.
#[test]
fn unwatched_and_unknown_types_are_ignored() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.connected();
    drain(&mut m);
    let out = m.handle_sotw(sotw(RDS, "1", "a", vec![res("r")]), now, validate_sotw);
    assert_eq!(out, Outcome::Ignored(IgnoreReason::NotSubscribed(RDS)));
    let mut unknown = sotw(CDS, "1", "b", vec![]);
    unknown.type_url = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig".into();
    assert!(matches!(
        m.handle_sotw(unknown, now, validate_sotw),
        Outcome::Ignored(IgnoreReason::UnknownType(_))
    ));
    assert_eq!(drain(&mut m), vec![]);
}

/// A removed EDS cluster shrinks the EDS subscription; a new one extends it,
/// and the EDS request follows the CDS ACK with the last EDS version and nonce.
#[test]
fn cluster_changes_update_eds_names_after_the_cds_ack() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.connected();
    drain(&mut m);
    m.handle_sotw(
        sotw(CDS, "1", "a", vec![eds_cluster("a"), eds_cluster("b")]),
        now,
        validate_sotw,
    );
    assert_eq!(drain(&mut m), vec![req(CDS, "1", "a", &[]), req(EDS, "", "", &["a", "b"])]);
    m.handle_sotw(sotw(EDS, "e1", "b", vec![res("a"), res("b")]), now, validate_sotw);
    assert_eq!(drain(&mut m), vec![req(EDS, "e1", "b", &["a", "b"])]);

    let out = m.handle_sotw(
        sotw(CDS, "2", "c", vec![eds_cluster("b"), eds_cluster("c")]),
        now,
        validate_sotw,
    );
    let u = out.update().expect("accepted");
    assert_eq!(u.removed, vec!["a".to_string()]);
    assert_eq!(u.warming.iter().collect::<Vec<_>>(), vec!["c"], "b's endpoints are already held");
    assert_eq!(drain(&mut m), vec![req(CDS, "2", "c", &[]), req(EDS, "e1", "b", &["b", "c"])]);
}

/// On a new stream every type is re-requested in ADS order with the last
/// accepted version and no nonce; the delay before it is jittered backoff.
#[test]
fn reconnect_resubscribes_in_order_with_last_versions() {
    let now = t0();
    let mut m = mux();
    m.subscribe(LDS, Interest::wildcard(), now);
    m.subscribe(CDS, Interest::wildcard(), now);
    m.connected();
    drain(&mut m);
    m.handle_sotw(sotw(CDS, "c9", "a", vec![eds_cluster("web")]), now, validate_sotw);
    m.handle_sotw(sotw(EDS, "e4", "b", vec![res("web")]), now, validate_sotw);
    m.handle_sotw(sotw(LDS, "l2", "c", vec![rds_listener("l", "r")]), now, validate_sotw);
    m.handle_sotw(sotw(RDS, "r5", "d", vec![res("r")]), now, validate_sotw);
    drain(&mut m);

    let mut random = || 300_000_000u64; // 300 ms
    assert_eq!(m.disconnected(&mut random), Duration::from_millis(300));
    assert_eq!(m.poll_request(), None, "nothing is sent while disconnected");
    // A second failure in a row draws from a doubled interval.
    m.connected();
    let mut big = || 900_000_000u64;
    assert_eq!(m.disconnected(&mut big), Duration::from_millis(900));
    m.connected();
    assert_eq!(
        drain(&mut m),
        vec![
            req(CDS, "c9", "", &[]),
            req(EDS, "e4", "", &["web"]),
            req(LDS, "l2", "", &[]),
            req(RDS, "r5", "", &["r"]),
        ]
    );
    // A response resets the backoff to its base (500 ms).
    m.handle_sotw(sotw(CDS, "c9", "e", vec![eds_cluster("web")]), now, validate_sotw);
    assert_eq!(m.disconnected(&mut big), Duration::from_millis(400));
}

/// With no CDS response, the initial fetch timeout releases LDS; a cluster
/// whose endpoints never come stops warming at the timeout.
#[test]
fn initial_fetch_and_warming_timeouts() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.subscribe(LDS, Interest::wildcard(), now);
    m.connected();
    assert_eq!(drain(&mut m), vec![req(CDS, "", "", &[])]);
    let deadline = m.poll_timeout().expect("a deadline");
    assert_eq!(deadline, now + Duration::from_secs(15));
    m.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(drain(&mut m), vec![]);
    m.handle_timeout(deadline);
    assert_eq!(events(&mut m), vec![Event::InitialFetchTimeout(CDS), Event::Initialized(CDS)]);
    assert_eq!(drain(&mut m), vec![req(LDS, "", "", &[])]);

    // A late CDS response still applies; its EDS cluster warms until its own deadline.
    let later = deadline + Duration::from_secs(1);
    m.handle_sotw(sotw(CDS, "1", "a", vec![eds_cluster("slow")]), later, validate_sotw);
    assert_eq!(drain(&mut m), vec![req(CDS, "1", "a", &[]), req(EDS, "", "", &["slow"])]);
    events(&mut m);
    assert!(m.is_warming(CDS, "slow"));
    // LDS's own initial fetch (started at `deadline`) expires first; the
    // cluster's warming deadline is 15 s after the CDS response.
    m.handle_timeout(later + Duration::from_secs(15) - Duration::from_millis(1));
    assert!(m.is_warming(CDS, "slow"));
    m.handle_timeout(later + Duration::from_secs(15));
    let ev = events(&mut m);
    assert!(
        ev.contains(&Event::Warmed { type_url: CDS, name: "slow".into(), timed_out: true }),
        "{ev:?}"
    );
    assert!(!m.is_warming(CDS, "slow"));
}

/// A rejected first CDS response still counts as initialised (Envoy goes on
/// with its static config), so LDS starts.
#[test]
fn rejected_initial_fetch_releases_lds() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.subscribe(LDS, Interest::wildcard(), now);
    m.connected();
    drain(&mut m);
    m.handle_sotw(sotw(CDS, "1", "a", vec![invalid("bad")]), now, validate_sotw);
    assert_eq!(drain(&mut m), vec![nack(CDS, "", "a", &[], "bad: invalid"), req(LDS, "", "", &[])]);
}

/// `set_node_on_first_message_only`: the node goes in the first request of a stream only.
#[test]
fn node_on_first_message_only() {
    let now = t0();
    let mut cfg = MuxConfig::new(Mode::Sotw, node());
    cfg.set_node_on_first_message_only = true;
    let mut m = AdsMux::new(cfg);
    m.subscribe(CDS, Interest::wildcard(), now);
    m.subscribe(EDS, Interest::names(["x"]), now);
    m.connected();
    let sent = drain(&mut m);
    assert_eq!(sent.len(), 2);
    assert!(sent[0].as_sotw().is_some_and(|r| r.node.is_some()));
    assert!(sent[1].as_sotw().is_some_and(|r| r.node.is_none()));
    m.connected();
    assert!(m.poll_request().and_then(|r| r.as_sotw().cloned()).is_some_and(|r| r.node.is_some()));
}

/// An explicit subscription change is sent with the current version and nonce.
#[test]
fn explicit_names_change_resends_version_and_nonce() {
    let now = t0();
    let mut m = mux();
    m.subscribe(RDS, Interest::names(["a"]), now);
    m.connected();
    assert_eq!(drain(&mut m), vec![req(RDS, "", "", &["a"])]);
    m.handle_sotw(sotw(RDS, "1", "x", vec![res("a")]), now, validate_sotw);
    assert_eq!(drain(&mut m), vec![req(RDS, "1", "x", &["a"])]);
    m.subscribe(RDS, Interest::names(["a", "b"]), now);
    assert_eq!(drain(&mut m), vec![req(RDS, "1", "x", &["a", "b"])]);
    // Same version, new names: not a duplicate, the new resource is applied.
    let out = m.handle_sotw(sotw(RDS, "1", "y", vec![res("a"), res("b")]), now, validate_sotw);
    assert!(out.update().is_some());
}
