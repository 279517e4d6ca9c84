//! The week 4 control plane (`week4_xds::grpc::server::ControlPlane`) served
//! over gRPC ADS on `127.0.0.1:0` for a test, until the handle is dropped.

use std::net::SocketAddr;

use tokio::sync::watch;
use week4_xds::grpc::server::ControlPlane;

/// A control plane serving on loopback; dropping it stops the server.
pub struct ServedControlPlane {
    /// Where it listens (put it in the bootstrap's `xds` cluster).
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl ServedControlPlane {
    /// Serves `cp` (a clone shares its resources) on an ephemeral loopback port.
    pub async fn start(cp: &ControlPlane) -> ServedControlPlane {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let (stop, mut stopped) = watch::channel(false);
        let server = cp.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let _ = server.serve(listener, shutdown).await;
        });
        ServedControlPlane { addr, stop }
    }
}

impl Drop for ServedControlPlane {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
