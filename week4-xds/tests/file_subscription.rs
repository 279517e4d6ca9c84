//! Filesystem xDS: atomic move-in reloads, bad files rejected with the
//! previous config kept. No sleeps: each step waits on the watcher's event,
//! with a timeout only as a deadlock guard.

use std::time::Duration;

use week4_xds::TypeUrl;
use week4_xds::file::{FileSubscription, FileUpdate};

mod common;
use common::{TempDir, move_in};

fn cds(version: &str, clusters: &[(&str, u16)]) -> String {
    let mut s = format!("version_info: \"{version}\"\nresources:\n");
    for (name, port) in clusters {
        s.push_str(&format!(
            "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: {name}\n  type: STATIC\n  load_assignment:\n    cluster_name: {name}\n    endpoints:\n    - lb_endpoints:\n      - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n"
        ));
    }
    s
}

async fn next(sub: &mut FileSubscription) -> FileUpdate {
    tokio::time::timeout(Duration::from_secs(10), sub.next_update())
        .await
        .expect("a watcher event within the deadlock guard")
        .expect("watcher alive")
}

fn names(u: &FileUpdate) -> Vec<String> {
    match u {
        FileUpdate::Accepted(u) => u.resources.iter().map(|r| r.name().to_string()).collect(),
        FileUpdate::Rejected { error } => panic!("rejected: {error}"),
    }
}

#[tokio::test]
async fn move_in_reloads_and_bad_files_keep_the_previous_config() {
    let dir = TempDir::new();
    let path = dir.0.join("cds.yaml");
    std::fs::write(&path, cds("1", &[("a", 9001)])).expect("initial file");
    let mut sub = FileSubscription::new(&path, None, TypeUrl::Cluster).expect("watch");

    let first = sub.load();
    assert_eq!(names(&first), vec!["a"]);
    assert_eq!(sub.version_info(), "1");

    // An unrelated file in the same directory does not trigger a reload;
    // the next event that does is our move-in.
    move_in(&dir.0, "other.yaml", "garbage: [");
    move_in(&dir.0, "cds.yaml", &cds("2", &[("a", 9001), ("b", 9002)]));
    let second = next(&mut sub).await;
    assert_eq!(names(&second), vec!["a", "b"]);
    assert_eq!(sub.version_info(), "2");

    // A bad file: rejected with the loader's message, version 2 stays.
    move_in(&dir.0, "cds.yaml", &cds("3", &[("a", 9001)]).replace("STATIC", "STATIK"));
    match next(&mut sub).await {
        FileUpdate::Rejected { error } => {
            assert!(error.contains("resources[0].type") && error.contains("STATIK"), "{error}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(sub.version_info(), "2");

    // A good file again; the cluster it dropped is reported removed.
    move_in(&dir.0, "cds.yaml", &cds("4", &[("b", 9002)]));
    match next(&mut sub).await {
        FileUpdate::Accepted(u) => {
            assert_eq!(u.version_info, "4");
            assert_eq!(u.removed, vec!["a".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    let s = sub.stats();
    assert_eq!((s.update_attempt, s.update_success, s.update_rejected), (4, 3, 1));
}

#[tokio::test]
async fn wrong_resource_type_and_json_files() {
    let dir = TempDir::new();
    let path = dir.0.join("lds.json");
    std::fs::write(&path, "{}").expect("file");
    let mut sub = FileSubscription::new(&path, None, TypeUrl::Listener).expect("watch");
    match sub.load() {
        FileUpdate::Accepted(u) => assert!(u.resources.is_empty()),
        other => panic!("{other:?}"),
    }
    // A cluster in a listener file is rejected.
    move_in(&dir.0, "lds.json", &cds("1", &[("a", 1)]));
    match next(&mut sub).await {
        FileUpdate::Rejected { error } => {
            assert!(error.contains("Cluster in a LDS file"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    // JSON works as YAML does.
    let json = r#"{"version_info": "j1", "resources": [{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
      "name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
      "filter_chains": [{"filters": [{"name": "tcp", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": "t", "cluster": "c"}}]}]}]}"#;
    move_in(&dir.0, "lds.json", json);
    let u = next(&mut sub).await;
    assert_eq!(names(&u), vec!["l"]);
    assert_eq!(sub.version_info(), "j1");
}
