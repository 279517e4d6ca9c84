//! Byte-exact HTTP/1.1 over a plain `std::net::TcpStream`.
//!
//! For what a well-behaved client cannot send: malformed and smuggling
//! requests, pipelining, HTTP/1.0. Responses are parsed just enough to
//! assert on (status line, headers, a body framed by `content-length`,
//! chunked encoding or the connection's end). Reads are bounded by
//! [`crate::WAIT`].

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Header names (as sent) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
    /// The body came chunk-encoded.
    pub chunked: bool,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection.
#[derive(Debug)]
pub struct RawConnection {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
    deadline_after: Duration,
}

impl RawConnection {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> RawConnection {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        RawConnection { stream, buf: Vec::new(), eof: false, deadline_after: crate::WAIT }
    }

    /// Writes `bytes` in one write.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write the request bytes");
    }

    /// Half-closes the write side (end of request input).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads more bytes; false at EOF (or a reset). Panics after the deadline.
    fn fill(&mut self, deadline: Instant) -> bool {
        if self.eof {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no response within {:?}; have {:?}",
            self.deadline_after,
            self.buffered()
        );
        self.stream.set_read_timeout(Some(left)).expect("set a read timeout");
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no response within {:?}; have {:?}", self.deadline_after, self.buffered())
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(_) => {
                self.eof = true;
                false
            }
        }
    }

    fn buffered(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Reads one response; `None` when the connection ends before one
    /// starts. A response to `HEAD` needs [`read_head_response`](Self::read_head_response).
    pub fn read_response(&mut self) -> Option<RawResponse> {
        self.read_response_inner(false)
    }

    /// Reads one response that has no body whatever its headers say.
    pub fn read_head_response(&mut self) -> Option<RawResponse> {
        self.read_response_inner(true)
    }

    fn read_response_inner(&mut self, no_body: bool) -> Option<RawResponse> {
        let deadline = Instant::now() + self.deadline_after;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if !self.fill(deadline) {
                assert!(self.buf.is_empty(), "connection closed mid-head: {:?}", self.buffered());
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_string(), v.trim().to_string()))
            .collect();
        let mut response =
            RawResponse { version, status, headers, body: Vec::new(), chunked: false };
        if no_body || (100..200).contains(&status) || status == 204 || status == 304 {
            return Some(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if chunked {
            response.chunked = true;
            response.body = self.read_chunked(deadline);
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().unwrap_or_else(|_| panic!("bad content-length {len:?}"));
            while self.buf.len() < len {
                assert!(self.fill(deadline), "connection closed mid-body");
            }
            response.body = self.buf.drain(..len).collect();
        } else {
            while self.fill(deadline) {}
            response.body = std::mem::take(&mut self.buf);
        }
        Some(response)
    }

    fn read_line(&mut self, deadline: Instant) -> String {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(self.fill(deadline), "connection closed mid-chunk");
        }
    }

    fn read_chunked(&mut self, deadline: Instant) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(deadline);
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                // Trailers until the empty line.
                while !self.read_line(deadline).is_empty() {}
                return body;
            }
            while self.buf.len() < size + 2 {
                assert!(self.fill(deadline), "connection closed mid-chunk");
            }
            body.extend(self.buf.drain(..size));
            assert_eq!(&self.buf[..2], b"\r\n", "chunk not followed by CRLF");
            self.buf.drain(..2);
        }
    }

    /// Waits (bounded) for the server to close the connection; true when it
    /// did with no further bytes.
    pub fn closed(&mut self) -> bool {
        let deadline = Instant::now() + self.deadline_after;
        while self.fill(deadline) {}
        self.buf.is_empty()
    }
}

/// Sends `bytes` on a new connection and reads every response until the
/// server closes it (end the last request with `Connection: close`).
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<RawResponse> {
    let mut conn = RawConnection::connect(addr);
    conn.send(bytes);
    let mut responses = Vec::new();
    while let Some(r) = conn.read_response() {
        responses.push(r);
    }
    responses
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
