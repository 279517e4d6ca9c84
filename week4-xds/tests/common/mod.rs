//! Fixtures shared by the protocol tests: a resource type and response builders.
#![allow(dead_code)]

use std::time::Instant;

use week4_xds::{
    AdsMux, DeltaDiscoveryResponse, DeltaResource, DiscoveryResponse, Request, ResourceRef,
    TypeUrl, XdsResource,
};

/// A resource as the tests write it: a name, what it needs, and whether the
/// caller's validation accepts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fake {
    pub name: String,
    pub needs: Vec<ResourceRef>,
    pub valid: bool,
}

impl XdsResource for Fake {
    fn name(&self) -> &str {
        &self.name
    }
    fn dependencies(&self) -> Vec<ResourceRef> {
        self.needs.clone()
    }
}

pub fn res(name: &str) -> Fake {
    Fake { name: name.into(), needs: vec![], valid: true }
}

pub fn eds_cluster(name: &str) -> Fake {
    Fake {
        name: name.into(),
        needs: vec![ResourceRef::new(TypeUrl::ClusterLoadAssignment, name)],
        valid: true,
    }
}

pub fn rds_listener(name: &str, route: &str) -> Fake {
    Fake {
        name: name.into(),
        needs: vec![ResourceRef::new(TypeUrl::RouteConfiguration, route)],
        valid: true,
    }
}

pub fn invalid(name: &str) -> Fake {
    Fake { name: name.into(), needs: vec![], valid: false }
}

pub fn sotw(
    t: TypeUrl,
    version: &str,
    nonce: &str,
    resources: Vec<Fake>,
) -> DiscoveryResponse<Fake> {
    DiscoveryResponse {
        version_info: version.into(),
        resources,
        type_url: t.as_str().into(),
        nonce: nonce.into(),
        ..Default::default()
    }
}

pub fn delta(
    t: TypeUrl,
    nonce: &str,
    added: Vec<(Fake, &str)>,
    removed: &[&str],
) -> DeltaDiscoveryResponse<Fake> {
    DeltaDiscoveryResponse {
        system_version_info: format!("system-{nonce}"),
        resources: added
            .into_iter()
            .map(|(f, v)| DeltaResource {
                name: f.name.clone(),
                version: v.into(),
                aliases: vec![],
                resource: Some(f),
            })
            .collect(),
        type_url: t.as_str().into(),
        removed_resources: removed.iter().map(|s| s.to_string()).collect(),
        nonce: nonce.into(),
    }
}

/// The caller's validation: every resource must be `valid`.
pub fn validate(resources: &[Fake]) -> Result<Vec<Fake>, String> {
    match resources.iter().find(|r| !r.valid) {
        Some(bad) => Err(format!("{}: invalid", bad.name)),
        None => Ok(resources.to_vec()),
    }
}

pub fn validate_sotw(r: &DiscoveryResponse<Fake>) -> Result<Vec<Fake>, String> {
    validate(&r.resources)
}

pub fn validate_delta(r: &DeltaDiscoveryResponse<Fake>) -> Result<Vec<Fake>, String> {
    let v: Vec<Fake> = r.resources.iter().filter_map(|r| r.resource.clone()).collect();
    validate(&v)
}

/// Every request the mux wants sent now.
pub fn drain(mux: &mut AdsMux) -> Vec<Request> {
    std::iter::from_fn(|| mux.poll_request()).take(100).collect()
}

pub fn events(mux: &mut AdsMux) -> Vec<week4_xds::Event> {
    std::iter::from_fn(|| mux.poll_event()).take(100).collect()
}

pub fn t0() -> Instant {
    Instant::now()
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "week4-xds-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Envoy's atomic update: write a temp file, rename it over the watched one.
pub fn move_in(dir: &std::path::Path, name: &str, text: &str) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, text).expect("write temp");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

/// Serves `cp` on an ephemeral loopback port (its own `serve`); returns the
/// endpoint URL and a switch that stops the server.
pub async fn start_server(
    cp: &week4_xds::grpc::server::ControlPlane,
) -> (String, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let cp = cp.clone();
    tokio::spawn(async move {
        let _ = cp
            .serve(listener, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
    });
    (format!("http://{addr}"), stop)
}
