//! tcp_proxy I/O shell (being written).

use std::rc::Rc;
use std::sync::Arc;

use tokio::net::TcpStream;
use week3_filters::http::ConnectionInfo;

use crate::snapshot::TcpChain;
use crate::upstream::WorkerUpstreams;

/// Serves one downstream connection with tcp_proxy.
pub async fn serve_connection(
    io: TcpStream,
    connection: ConnectionInfo,
    chain: Arc<TcpChain>,
    upstreams: Rc<WorkerUpstreams>,
) {
    let _ = (io, connection, chain, upstreams);
}
