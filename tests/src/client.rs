//! A downstream client on hyper-util's pooled HTTP/1.1 client.
//!
//! Connections are kept alive and reused between requests, as a real client
//! does. Every call is bounded by [`crate::WAIT`]; a response's body is read
//! whole.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A response, body read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// Header `name` as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive client. Needs a tokio runtime (use `#[tokio::test]`).
#[derive(Clone, Debug)]
pub struct Client {
    inner: LegacyClient<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A pooled client.
    pub fn new() -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let inner = LegacyClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Client { inner, timeout: crate::WAIT }
    }

    /// A client that opens a new connection per request.
    pub fn without_pool() -> Client {
        let inner = LegacyClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(HttpConnector::new());
        Client { inner, timeout: crate::WAIT }
    }

    /// `GET http://{addr}{path}`, panicking on a transport error.
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Response {
        self.send(request(Method::GET, addr, path).body(Full::default()).expect("valid request"))
            .await
    }

    /// `GET` with a `Host` header (virtual host tests).
    pub async fn get_host(&self, addr: SocketAddr, host: &str, path: &str) -> Response {
        let req = request(Method::GET, addr, path)
            .header("host", host)
            .body(Full::default())
            .expect("valid request");
        self.send(req).await
    }

    /// Sends `req`, panicking on a transport error or timeout.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Response {
        let what = format!("{} {}", req.method(), req.uri());
        self.try_send(req).await.unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Sends `req`; a transport error or timeout is an `Err` with its text.
    pub async fn try_send(&self, req: Request<Full<Bytes>>) -> Result<Response, String> {
        let exchange = async {
            let response = self.inner.request(req).await.map_err(|e| format!("{e:?}"))?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
            Ok(Response { status: parts.status.as_u16(), headers: parts.headers, body })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("no response within {:?}", self.timeout)),
        }
    }

    /// Polls `GET {addr}/` until it answers 200, for at most [`WAIT`](crate::WAIT)
    /// (a listener that is coming up, or routes that are arriving).
    pub async fn wait_for_ok(&self, addr: SocketAddr) -> bool {
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        while tokio::time::Instant::now() < deadline {
            let req = request(Method::GET, addr, "/").body(Full::default()).expect("valid request");
            if let Ok(r) = self.try_send(req).await
                && r.status == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// A request builder for `http://{addr}{path}`.
pub fn request(method: Method, addr: SocketAddr, path: &str) -> hyper::http::request::Builder {
    Request::builder().method(method).uri(format!("http://{addr}{path}"))
}

/// A header pair for builders that take `(HeaderName, HeaderValue)`.
pub fn header(name: &'static str, value: &str) -> (HeaderName, HeaderValue) {
    (HeaderName::from_static(name), HeaderValue::from_str(value).expect("valid header value"))
}
