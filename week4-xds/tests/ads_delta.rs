//! ADS Delta (incremental) sequences from the xDS specification's
//! "Incremental xDS" section; every request the client sends is asserted.

mod common;

use std::collections::BTreeMap;

use common::*;
use week4_xds::{
    AdsMux, DeltaDiscoveryRequest, Event, Interest, Mode, MuxConfig, Node, Outcome, Request,
    Status, TypeUrl,
};

const CDS: TypeUrl = TypeUrl::Cluster;
const EDS: TypeUrl = TypeUrl::ClusterLoadAssignment;
const LDS: TypeUrl = TypeUrl::Listener;
const RDS: TypeUrl = TypeUrl::RouteConfiguration;

fn node() -> Node {
    Node { id: "proxy-1".into(), ..Default::default() }
}

fn mux() -> AdsMux {
    AdsMux::new(MuxConfig::new(Mode::Delta, node()))
}

fn dreq(
    t: TypeUrl,
    subscribe: &[&str],
    unsubscribe: &[&str],
    nonce: &str,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(node()),
        type_url: t.as_str().into(),
        resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        resource_names_unsubscribe: unsubscribe.iter().map(|s| s.to_string()).collect(),
        initial_resource_versions: BTreeMap::new(),
        response_nonce: nonce.into(),
        error_detail: None,
    }
}

fn r(d: DeltaDiscoveryRequest) -> Request {
    Request::Delta(d)
}

#[test]
fn startup_ordering_and_warming_in_delta() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.subscribe(LDS, Interest::wildcard(), now);
    m.connected();
    assert_eq!(drain(&mut m), vec![r(dreq(CDS, &[], &[], ""))]);

    m.handle_delta(delta(CDS, "n1", vec![(eds_cluster("web"), "v1")], &[]), now, validate_delta);
    assert_eq!(drain(&mut m), vec![r(dreq(CDS, &[], &[], "n1")), r(dreq(EDS, &["web"], &[], ""))]);

    m.handle_delta(delta(EDS, "n2", vec![(res("web"), "v1")], &[]), now, validate_delta);
    assert_eq!(drain(&mut m), vec![r(dreq(EDS, &[], &[], "n2")), r(dreq(LDS, &[], &[], ""))]);

    m.handle_delta(
        delta(LDS, "n3", vec![(rds_listener("l", "rc"), "v1")], &[]),
        now,
        validate_delta,
    );
    assert_eq!(drain(&mut m), vec![r(dreq(LDS, &[], &[], "n3")), r(dreq(RDS, &["rc"], &[], ""))]);
    m.handle_delta(delta(RDS, "n4", vec![(res("rc"), "v1")], &[]), now, validate_delta);
    assert_eq!(drain(&mut m), vec![r(dreq(RDS, &[], &[], "n4"))]);
    let ev = events(&mut m);
    assert!(ev.contains(&Event::Warmed { type_url: LDS, name: "l".into(), timed_out: false }));
}

/// Delta removal removes: the resource is reported removed, its version is
/// forgotten, and an EDS cluster's removal unsubscribes its endpoints.
#[test]
fn removal_removes_and_unsubscribes_dependencies() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.connected();
    drain(&mut m);
    m.handle_delta(
        delta(CDS, "n1", vec![(eds_cluster("a"), "1"), (eds_cluster("b"), "1")], &[]),
        now,
        validate_delta,
    );
    assert_eq!(
        drain(&mut m),
        vec![r(dreq(CDS, &[], &[], "n1")), r(dreq(EDS, &["a", "b"], &[], ""))]
    );
    m.handle_delta(
        delta(EDS, "n2", vec![(res("a"), "1"), (res("b"), "1")], &[]),
        now,
        validate_delta,
    );
    drain(&mut m);

    let out = m.handle_delta(delta(CDS, "n3", vec![], &["a"]), now, validate_delta);
    assert_eq!(out.update().map(|u| u.removed.clone()), Some(vec!["a".to_string()]));
    assert_eq!(drain(&mut m), vec![r(dreq(CDS, &[], &[], "n3")), r(dreq(EDS, &[], &["a"], ""))]);
    assert!(!m.resource_versions(CDS).is_some_and(|v| v.contains_key("a")));
    assert!(!m.resource_versions(EDS).is_some_and(|v| v.contains_key("a")));
    // Removing what the client does not hold changes nothing.
    let out = m.handle_delta(delta(CDS, "n4", vec![], &["zzz"]), now, validate_delta);
    assert_eq!(out, Outcome::Duplicate);
    assert_eq!(drain(&mut m), vec![r(dreq(CDS, &[], &[], "n4"))]);
}

/// A NACK names the rejected nonce with INVALID_ARGUMENT; versions stay.
#[test]
fn nack_keeps_per_resource_versions() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.connected();
    drain(&mut m);
    m.handle_delta(delta(CDS, "n1", vec![(res("a"), "1")], &[]), now, validate_delta);
    drain(&mut m);
    let out = m.handle_delta(delta(CDS, "n2", vec![(invalid("a"), "2")], &[]), now, validate_delta);
    assert!(out.is_rejected());
    let mut expected = dreq(CDS, &[], &[], "n2");
    expected.error_detail = Some(Status { code: 3, message: "a: invalid".into() });
    assert_eq!(drain(&mut m), vec![r(expected)]);
    assert_eq!(m.resource_versions(CDS).and_then(|v| v.get("a")).map(String::as_str), Some("1"));
}

/// On a new stream: subscribe everything again, with initial_resource_versions
/// listing what the client holds, in ADS order.
#[test]
fn reconnect_sends_initial_resource_versions() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.connected();
    drain(&mut m);
    m.handle_delta(
        delta(CDS, "n1", vec![(eds_cluster("a"), "3"), (res("s"), "8")], &[]),
        now,
        validate_delta,
    );
    m.handle_delta(delta(EDS, "n2", vec![(res("a"), "5")], &[]), now, validate_delta);
    drain(&mut m);
    let mut zero = || 0u64;
    m.disconnected(&mut zero);
    m.connected();
    let mut cds = dreq(CDS, &[], &[], "");
    cds.initial_resource_versions =
        [("a".to_string(), "3".to_string()), ("s".to_string(), "8".to_string())].into();
    let mut eds = dreq(EDS, &["a"], &[], "");
    eds.initial_resource_versions = [("a".to_string(), "5".to_string())].into();
    assert_eq!(drain(&mut m), vec![r(cds), r(eds)]);
}

/// Several responses before the client writes: each gets its own ACK, in order.
#[test]
fn every_response_gets_its_own_ack() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.connected();
    drain(&mut m);
    m.handle_delta(delta(CDS, "n1", vec![(res("a"), "1")], &[]), now, validate_delta);
    m.handle_delta(delta(CDS, "n2", vec![(invalid("b"), "1")], &[]), now, validate_delta);
    m.handle_delta(delta(CDS, "n3", vec![(res("c"), "1")], &[]), now, validate_delta);
    let sent = drain(&mut m);
    let nonces: Vec<(&str, bool)> = sent
        .iter()
        .filter_map(Request::as_delta)
        .map(|d| (d.response_nonce.as_str(), d.is_nack()))
        .collect();
    assert_eq!(nonces, vec![("n1", false), ("n2", true), ("n3", false)]);
}

/// An unchanged per-resource version is not re-applied.
#[test]
fn unchanged_resource_version_is_not_reapplied() {
    let now = t0();
    let mut m = mux();
    m.subscribe(CDS, Interest::wildcard(), now);
    m.connected();
    drain(&mut m);
    m.handle_delta(delta(CDS, "n1", vec![(res("a"), "1")], &[]), now, validate_delta);
    let out = m.handle_delta(
        delta(CDS, "n2", vec![(res("a"), "1"), (res("b"), "1")], &[]),
        now,
        validate_delta,
    );
    let names: Vec<String> = out
        .update()
        .map(|u| u.resources.iter().map(|f| f.name.clone()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["b".to_string()]);
}
