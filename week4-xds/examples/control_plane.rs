//! A small ADS control plane: serves the resources of YAML/JSON
//! `DiscoveryResponse` files over gRPC (SotW and Delta) and pushes a new
//! version when a file is moved into place.
//!
//! ```sh
//! cargo run -p week4-xds --example control_plane -- 127.0.0.1:18000 cds.yaml lds.yaml
//! mv new-cds.yaml cds.yaml   # clients receive version N+1
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use week4_xds::grpc::server::ControlPlane;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().ok_or("usage: control_plane ADDR FILE...")?.parse()?;
    let files: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if files.is_empty() {
        return Err("usage: control_plane ADDR FILE...".into());
    }
    let cp = ControlPlane::new();
    let version = cp.load_files(&files)?;
    println!("serving version {version} from {} file(s) on {addr}", files.len());
    let _watcher = cp.watch_files(files)?;
    tonic::transport::Server::builder()
        .add_service(cp.service())
        .serve_with_shutdown(addr, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
