//! ConfigManager: atomic, validated, versioned snapshots.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use week4_xds::TypeUrl;
use week4_xds::config_manager::{
    ApplyOutcome, ChangeSet, ConfigManager, Snapshot, TypeChange, Upsert, hash_debug,
};

#[derive(Debug, Clone, PartialEq)]
struct Res {
    body: String,
}

fn up(name: &str, body: &str) -> Upsert<Res> {
    let r = Res { body: body.into() };
    let h = hash_debug(&r);
    Upsert::new(name, r, h)
}

fn change(
    t: TypeUrl,
    version: &str,
    upserts: Vec<Upsert<Res>>,
    removed: &[&str],
) -> TypeChange<Res> {
    TypeChange {
        type_url: t,
        version_info: version.into(),
        replace_all: false,
        upserts,
        removed: removed.iter().map(|s| s.to_string()).collect(),
    }
}

/// Rejects any resource whose body is "bad".
fn manager(keep: usize) -> ConfigManager<Res> {
    ConfigManager::new(keep, SystemTime::UNIX_EPOCH, |snap: &Snapshot<Res>| {
        for t in TypeUrl::ADS_ORDER {
            for (name, e) in snap.of_type(t) {
                if e.resource.body == "bad" {
                    return Err(format!("{} {name}: bad body", t.short_name()));
                }
            }
        }
        Ok(())
    })
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn subscribers_are_notified_in_dependency_order() {
    let mut m = manager(5);
    let log = Arc::new(Mutex::new(Vec::new()));
    for t in [
        TypeUrl::RouteConfiguration,
        TypeUrl::Listener,
        TypeUrl::ClusterLoadAssignment,
        TypeUrl::Cluster,
    ] {
        let log = log.clone();
        m.subscribe(t, move |snap, diff| {
            log.lock().unwrap().push((
                diff.type_url.short_name(),
                snap.version,
                diff.updated.len(),
            ));
        });
    }
    let cs = ChangeSet::new(vec![
        change(TypeUrl::RouteConfiguration, "r1", vec![up("routes", "r")], &[]),
        change(TypeUrl::Listener, "l1", vec![up("http", "l")], &[]),
        change(TypeUrl::Cluster, "c1", vec![up("web", "c"), up("api", "c")], &[]),
        change(TypeUrl::ClusterLoadAssignment, "e1", vec![up("web", "e")], &[]),
    ]);
    assert_eq!(m.apply(cs, at(1)), Ok(ApplyOutcome::Applied { version: 1 }));
    assert_eq!(
        *log.lock().unwrap(),
        vec![("CDS", 1, 2), ("EDS", 1, 1), ("LDS", 1, 1), ("RDS", 1, 1)]
    );
}

#[test]
fn identical_update_is_a_no_op() {
    let mut m = manager(5);
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    m.subscribe(TypeUrl::Cluster, move |_, _| *c.lock().unwrap() += 1);
    m.apply(ChangeSet::new(vec![change(TypeUrl::Cluster, "1", vec![up("a", "x")], &[])]), at(1))
        .unwrap();
    let out = m
        .apply(ChangeSet::new(vec![change(TypeUrl::Cluster, "2", vec![up("a", "x")], &[])]), at(2));
    assert_eq!(out, Ok(ApplyOutcome::NoOp));
    assert_eq!(m.current().version, 1);
    assert_eq!(*calls.lock().unwrap(), 1);
    assert_eq!(m.stats().update_no_op, 1);
}

#[test]
fn bad_update_is_rejected_whole_and_last_good_stays() {
    let mut m = manager(5);
    m.apply(ChangeSet::new(vec![change(TypeUrl::Cluster, "1", vec![up("a", "x")], &[])]), at(1))
        .unwrap();
    let before = m.current();
    let bad = ChangeSet::new(vec![
        change(TypeUrl::Cluster, "2", vec![up("a", "y"), up("b", "z")], &[]),
        change(TypeUrl::Listener, "2", vec![up("l", "bad")], &[]),
    ]);
    let err = m.apply(bad, at(2)).expect_err("rejected");
    assert_eq!(err.reason, "LDS l: bad body");
    let now = m.current();
    assert!(Arc::ptr_eq(&before, &now), "nothing partially applied");
    assert_eq!(now.get(TypeUrl::Cluster, "a").map(|r| r.body.as_str()), Some("x"));
    assert!(now.get(TypeUrl::Cluster, "b").is_none());
    assert_eq!(m.stats().update_rejected, 1);
    // check() gives the same verdict without applying.
    let bad_again = ChangeSet::new(vec![change(TypeUrl::Listener, "3", vec![up("l", "bad")], &[])]);
    assert!(m.check(&bad_again, at(3)).is_err());
}

#[test]
fn stale_source_version_is_ignored() {
    let mut m = manager(5);
    let mut cs = ChangeSet::new(vec![change(TypeUrl::Cluster, "5", vec![up("a", "x")], &[])]);
    cs.source_version = Some(5);
    m.apply(cs, at(1)).unwrap();
    let mut old = ChangeSet::new(vec![change(TypeUrl::Cluster, "4", vec![up("a", "old")], &[])]);
    old.source_version = Some(4);
    assert_eq!(m.apply(old, at(2)), Ok(ApplyOutcome::Stale { current: 5 }));
    let mut dup = ChangeSet::new(vec![change(TypeUrl::Cluster, "5", vec![up("a", "other")], &[])]);
    dup.source_version = Some(5);
    assert_eq!(m.apply(dup, at(3)), Ok(ApplyOutcome::Stale { current: 5 }));
    assert_eq!(m.current().get(TypeUrl::Cluster, "a").map(|r| r.body.clone()), Some("x".into()));
}

#[test]
fn history_keeps_the_last_n_with_update_times() {
    let mut m = manager(3);
    m.apply(
        ChangeSet::new(vec![change(TypeUrl::Cluster, "v1", vec![up("stable", "s")], &[])]),
        at(1),
    )
    .unwrap();
    for i in 2..=5u64 {
        let body = format!("b{i}");
        let cs = ChangeSet::new(vec![change(
            TypeUrl::Cluster,
            &format!("v{i}"),
            vec![up("moving", &body)],
            &[],
        )]);
        m.apply(cs, at(i)).unwrap();
    }
    let versions: Vec<u64> = m.history().map(|s| s.version).collect();
    assert_eq!(versions, vec![3, 4, 5]);
    let cur = m.current();
    let entries: Vec<(&str, SystemTime, &str)> = cur
        .of_type(TypeUrl::Cluster)
        .map(|(n, e)| (n, e.last_updated, e.version_info.as_str()))
        .collect();
    assert_eq!(entries, vec![("moving", at(5), "v5"), ("stable", at(1), "v1")]);
    assert_eq!(cur.version_info.get(&TypeUrl::Cluster).map(String::as_str), Some("v5"));
}

#[test]
fn replace_all_and_removals_remove() {
    let mut m = manager(2);
    let rx = m.watch();
    m.apply(
        ChangeSet::new(vec![change(TypeUrl::Listener, "1", vec![up("a", "x"), up("b", "y")], &[])]),
        at(1),
    )
    .unwrap();
    let mut full = change(TypeUrl::Listener, "2", vec![up("b", "y")], &[]);
    full.replace_all = true;
    let removed = Arc::new(Mutex::new(Vec::new()));
    let r = removed.clone();
    m.subscribe(TypeUrl::Listener, move |_, d| r.lock().unwrap().extend(d.removed.clone()));
    assert_eq!(
        m.apply(ChangeSet::new(vec![full]), at(2)),
        Ok(ApplyOutcome::Applied { version: 2 })
    );
    assert_eq!(*removed.lock().unwrap(), vec!["a".to_string()]);
    m.apply(ChangeSet::new(vec![change(TypeUrl::Listener, "3", vec![], &["b"])]), at(3)).unwrap();
    assert!(m.current().of_type(TypeUrl::Listener).next().is_none());
    assert_eq!(rx.borrow().version, 3, "watchers see the latest snapshot");
}
