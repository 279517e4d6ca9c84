//! A small authoritative DNS server for the DNS-cluster tests.
//!
//! It answers UDP queries on `127.0.0.1:<ephemeral>` from a table the test
//! changes while mini-envoy runs: a known name gets its A records (AAAA and
//! other types: NOERROR with no answer), an unknown name NXDOMAIN. Messages
//! are decoded and encoded with hickory-proto's wire codec; the answering
//! logic is this file's.
//!
//! ```text
//!  test ─► DnsServer::set("backend.test", [127.0.0.2]) ─┐
//!  mini-envoy's resolver ─► UDP query ─► table lookup ──┴─► answer (TTL as set)
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::sync::oneshot;

#[derive(Default)]
struct Table {
    /// Lower-case name without the final dot → (addresses, TTL in seconds).
    names: HashMap<String, (Vec<Ipv4Addr>, u32)>,
}

/// A running server. Dropping it stops it.
pub struct DnsServer {
    addr: SocketAddr,
    table: Arc<Mutex<Table>>,
    queries: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Starts an empty server (every name is NXDOMAIN).
    pub fn start() -> DnsServer {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the DNS server");
        socket.set_nonblocking(true).expect("non-blocking DNS socket");
        let addr = socket.local_addr().expect("DNS server address");
        let table = Arc::new(Mutex::new(Table::default()));
        let queries = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = oneshot::channel();
        let (t, q) = (table.clone(), queries.clone());
        let thread = std::thread::Builder::new()
            .name("dns-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("DNS server runtime");
                runtime.block_on(async move {
                    let socket = tokio::net::UdpSocket::from_std(socket).expect("tokio UDP socket");
                    tokio::select! {
                        _ = serve(socket, t, q) => {}
                        _ = stopped => {}
                    }
                });
            })
            .expect("spawn the DNS server thread");
        DnsServer { addr, table, queries, stop: Some(stop), thread: Some(thread) }
    }

    /// Where it listens (UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `name` with `addresses` (none: NOERROR without records) and `ttl` seconds.
    pub fn set(&self, name: &str, addresses: &[Ipv4Addr], ttl: u32) {
        let key = normalize(name);
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.names.insert(key, (addresses.to_vec(), ttl));
    }

    /// Forgets `name`: it answers NXDOMAIN from now on.
    pub fn remove(&self, name: &str) {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).names.remove(&normalize(name));
    }

    /// How many queries arrived so far.
    pub fn query_count(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn serve(socket: tokio::net::UdpSocket, table: Arc<Mutex<Table>>, queries: Arc<AtomicUsize>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else { continue };
        queries.fetch_add(1, Ordering::SeqCst);
        let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
        if request.metadata.message_type != MessageType::Query {
            continue;
        }
        let response = answer(&request, &table.lock().unwrap_or_else(|e| e.into_inner()));
        if let Ok(bytes) = response.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

/// The response to `request` from `table`.
fn answer(request: &Message, table: &Table) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.queries = request.queries.clone();
    response.edns = request.edns.clone();
    let Some(query) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    let name = query.name().clone();
    match table.names.get(&normalize(&name.to_ascii())) {
        None => response.metadata.response_code = ResponseCode::NXDomain,
        Some((addresses, ttl)) if query.query_type() == RecordType::A => {
            for ip in addresses {
                response.add_answer(Record::from_rdata(name.clone(), *ttl, RData::A(A(*ip))));
            }
        }
        // The name exists without records of that type: NOERROR, no answer.
        Some(_) => {}
    }
    response
}
