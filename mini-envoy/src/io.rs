//! # Socket reads without the extra `EAGAIN`
//!
//! tokio clears a socket's read readiness only when a read returns
//! `WouldBlock`, so the usual loop (wait readable, read, wait readable, read
//! → `EAGAIN`) makes one wasted `recv` system call per wake-up. nginx avoids
//! it: a read that returns less than it asked for has drained the socket
//! (`rev->ready = 0`). [`read_once`] does the same inside tokio's
//! [`try_io`](tokio::net::TcpStream::try_io), whose readiness bookkeeping
//! (a tick per event) guarantees that an event arriving meanwhile is not
//! lost: readiness is cleared only if no new event came since the read.
//!
//! A worker also keeps the memory of idle connections for busy ones: read
//! buffers ([`ensure_read_space`], [`recycle`]) and empty [`Buffer`]s with
//! their capacity ([`take_buffer`], [`recycle_buffer`]), so a keep-alive
//! request reuses allocations instead of making and freeing them.

use std::cell::RefCell;
use std::io;
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;
use week3_filters::buffer::Buffer;

/// Reads once into `buf`'s spare capacity. `Ok(0)` is end of input; a short
/// read marks the socket drained so the next wait goes straight to epoll.
pub fn read_once(io: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let room = buf.capacity() - buf.len();
    let mut got = 0;
    let result = io.try_io(Interest::READABLE, || {
        got = io.try_read_buf(buf)?;
        if got > 0 && got < room {
            // Drained: let try_io clear the readiness (no EAGAIN read needed).
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    match result {
        Ok(()) => Ok(got),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        Err(e) => Err(e),
    }
}

/// What [`ready`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The socket has bytes (or end of input) to read.
    Readable,
    /// The socket takes more bytes.
    Writable,
}

/// Waits until `io` is readable (if `read`) or writable (if `write`);
/// readable first when both are. Built on `poll_read_ready` /
/// `poll_write_ready`, which keep one waker per direction in the socket's
/// registration, instead of the `readable()` / `writable()` futures that
/// join and leave its waiter list on every wait. Only the task that owns the
/// socket may wait on it this way. Never ready when neither is asked.
pub async fn ready(io: &TcpStream, read: bool, write: bool) -> io::Result<Ready> {
    std::future::poll_fn(|cx| {
        if read && let Poll::Ready(r) = io.poll_read_ready(cx) {
            return Poll::Ready(r.map(|()| Ready::Readable));
        }
        if write && let Poll::Ready(r) = io.poll_write_ready(cx) {
            return Poll::Ready(r.map(|()| Ready::Writable));
        }
        Poll::Pending
    })
    .await
}

/// Bytes asked of the socket per read.
pub const READ_SIZE: usize = 16 * 1024;

/// Read buffers a worker keeps for reuse (at most this many).
const POOL_LIMIT: usize = 64;

thread_local! {
    /// Read buffers given back by idle connections, reused by busy ones: a
    /// keep-alive request does not allocate (and fault in) a fresh 16 KiB.
    static READ_BUFFERS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Makes sure `buf` has room for a read: a buffer from this thread's pool,
/// or a new one.
pub fn ensure_read_space(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() >= 1024 {
        return;
    }
    let pooled = READ_BUFFERS.with(|p| p.borrow_mut().pop());
    let mut fresh = pooled.unwrap_or_default();
    // A pooled buffer whose earlier bytes are all dropped is reclaimed in place.
    fresh.reserve(READ_SIZE);
    if buf.is_empty() {
        *buf = fresh;
    } else {
        buf.reserve(READ_SIZE);
        recycle(fresh);
    }
}

/// Gives an idle connection's read buffer back to this thread's pool.
pub fn recycle(mut buf: BytesMut) {
    if buf.capacity() == 0 {
        return;
    }
    buf.clear();
    READ_BUFFERS.with(|p| {
        let mut pool = p.borrow_mut();
        if pool.len() < POOL_LIMIT {
            pool.push(buf);
        }
    });
}

thread_local! {
    /// Empty buffers (with their capacity) given back by idle connections.
    static BUFFERS: RefCell<Vec<Buffer>> = const { RefCell::new(Vec::new()) };
}

/// An empty [`Buffer`] from this thread's pool (it keeps the capacity it
/// had), or a new one.
pub fn take_buffer() -> Buffer {
    BUFFERS.with(|p| p.borrow_mut().pop()).unwrap_or_default()
}

/// Gives an empty [`Buffer`] back to this thread's pool (one holding bytes
/// is dropped).
pub fn recycle_buffer(buf: Buffer) {
    if !buf.is_empty() {
        return;
    }
    BUFFERS.with(|p| {
        let mut pool = p.borrow_mut();
        if pool.len() < POOL_LIMIT {
            pool.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(flavor = "current_thread")]
    async fn a_short_read_clears_readiness_and_later_data_wakes_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(b"hello").await.unwrap();
        server.readable().await.unwrap();
        let mut buf = BytesMut::with_capacity(1024);
        assert_eq!(read_once(&server, &mut buf).unwrap(), 5);
        // Readiness was cleared: a read now is WouldBlock without blocking.
        let mut probe = BytesMut::with_capacity(16);
        assert_eq!(server.try_read_buf(&mut probe).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // New data wakes the socket again.
        client.write_all(b" world").await.unwrap();
        server.readable().await.unwrap();
        assert_eq!(read_once(&server, &mut buf).unwrap(), 6);
        assert_eq!(&buf[..], b"hello world");
        drop(client);
        server.readable().await.unwrap();
        assert_eq!(read_once(&server, &mut buf).unwrap(), 0, "end of input");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ready_reports_the_asked_directions() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        assert_eq!(ready(&server, false, true).await.unwrap(), Ready::Writable);
        client.write_all(b"ping").await.unwrap();
        assert_eq!(ready(&server, true, true).await.unwrap(), Ready::Readable, "readable first");
        assert_eq!(ready(&server, true, false).await.unwrap(), Ready::Readable);
        let mut buf = BytesMut::with_capacity(64);
        assert_eq!(read_once(&server, &mut buf).unwrap(), 4);
        // Drained and nothing else asked: not ready.
        let idle = tokio::time::timeout(std::time::Duration::ZERO, ready(&server, true, false));
        assert!(idle.await.is_err(), "no readiness after a draining read");
        let neither = tokio::time::timeout(std::time::Duration::ZERO, ready(&server, false, false));
        assert!(neither.await.is_err());
    }

    #[test]
    fn empty_buffers_are_reused_and_full_ones_are_not() {
        let mut a = take_buffer();
        a.append(b"response head");
        a.advance(a.len());
        recycle_buffer(a);
        let mut b = take_buffer();
        assert!(b.is_empty());
        b.append(b"x");
        assert_eq!(b.to_vec(), b"x");
        recycle_buffer(b);
        let pooled = BUFFERS.with(|p| p.borrow().len());
        assert_eq!(pooled, 0, "a buffer holding bytes is not pooled");
        recycle_buffer(Buffer::new());
        assert_eq!(BUFFERS.with(|p| p.borrow().len()), 1);
    }

    #[test]
    fn read_buffers_are_reused() {
        let mut a = BytesMut::new();
        ensure_read_space(&mut a);
        assert!(a.capacity() >= READ_SIZE);
        let ptr = a.as_ptr();
        recycle(a);
        let mut b = BytesMut::new();
        ensure_read_space(&mut b);
        assert_eq!(b.as_ptr(), ptr, "the pooled buffer came back");
        // A buffer with room is left alone.
        let before = b.as_ptr();
        ensure_read_space(&mut b);
        assert_eq!(b.as_ptr(), before);
    }
}
