//! Socket readiness on the mio dispatcher, with real sockets (socket pairs and
//! loopback TCP). No sleeps: every wait is the loop itself, under a watchdog.

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use mio::Interest;
use mio::net::{TcpListener, TcpStream, UnixStream};
use week2_threads::clock::SimulatedClock;
use week2_threads::dispatcher::{Dispatcher, IoHandle, MioDispatcher, Readiness};

mod common;
use common::{DEADLOCK_GUARD, run_guarded};

fn dispatcher() -> MioDispatcher {
    MioDispatcher::with_time_source("io", SimulatedClock::new()).unwrap()
}

/// Reads one byte; `None` on WouldBlock.
fn read_one(stream: &mut UnixStream) -> Option<u8> {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(1) => Some(byte[0]),
        Ok(_) => None,
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(e) => panic!("read: {e}"),
    }
}

#[test]
fn readable_callback_drains_until_would_block() {
    let d = dispatcher();
    let (mut a, b) = UnixStream::pair().unwrap();
    let b = Rc::new(RefCell::new(b));
    let received = Rc::new(RefCell::new(Vec::new()));
    let (rb, rx, dd) = (b.clone(), received.clone(), d.clone());
    let _io = d
        .register_io(&mut *b.borrow_mut(), Interest::READABLE, move |ready| {
            assert!(ready.readable);
            let mut buf = [0u8; 64];
            loop {
                match rb.borrow_mut().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => rx.borrow_mut().extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            if rx.borrow().len() == 5 {
                dd.exit();
            }
        })
        .unwrap();
    a.write_all(b"hello").unwrap();
    run_guarded(&d);
    assert_eq!(&*received.borrow(), b"hello");
}

#[test]
fn edge_triggered_until_rearmed() {
    let d = dispatcher();
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"0123456789").unwrap();
    let b = Rc::new(RefCell::new(b));
    let events = Rc::new(Cell::new(0));
    let io: Rc<RefCell<Option<IoHandle>>> = Rc::new(RefCell::new(None));

    // After the first event, a zero-delay timer looks one loop iteration later.
    let (ev, io2, b2) = (events.clone(), io.clone(), b.clone());
    let check = Rc::new(d.create_timer(move |_| {
        // Nine unread bytes, yet no second event: the edge was consumed.
        assert_eq!(ev.get(), 1);
        let guard = io2.borrow();
        let handle = guard.as_ref().unwrap();
        handle.reregister(&mut *b2.borrow_mut(), Interest::READABLE).unwrap();
    }));

    let (ev, rb, ck, dd) = (events.clone(), b.clone(), check.clone(), d.clone());
    let handle = d
        .register_io(&mut *b.borrow_mut(), Interest::READABLE, move |_| {
            ev.set(ev.get() + 1);
            if ev.get() == 1 {
                // Read one byte only, leave the rest buffered.
                assert_eq!(read_one(&mut rb.borrow_mut()), Some(b'0'));
                ck.enable(Duration::ZERO);
            } else {
                // Re-armed: reported again while still readable.
                let mut rest = Vec::new();
                while let Some(byte) = read_one(&mut rb.borrow_mut()) {
                    rest.push(byte);
                }
                assert_eq!(rest, b"123456789");
                dd.exit();
            }
        })
        .unwrap();
    *io.borrow_mut() = Some(handle);
    run_guarded(&d);
    assert_eq!(events.get(), 2);
}

#[test]
fn activate_emulates_level_triggering() {
    let d = dispatcher();
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"abcdef").unwrap();
    let b = Rc::new(RefCell::new(b));
    let io: Rc<RefCell<Option<IoHandle>>> = Rc::new(RefCell::new(None));
    let got = Rc::new(RefCell::new(Vec::new()));
    let (rb, io2, g, dd) = (b.clone(), io.clone(), got.clone(), d.clone());
    let handle = d
        .register_io(&mut *b.borrow_mut(), Interest::READABLE, move |ready| {
            assert!(ready.readable);
            // One byte per callback, then ask to be called again.
            match read_one(&mut rb.borrow_mut()) {
                Some(byte) => {
                    g.borrow_mut().push(byte);
                    io2.borrow().as_ref().unwrap().activate(Readiness::READABLE);
                }
                None => dd.exit(),
            }
        })
        .unwrap();
    *io.borrow_mut() = Some(handle);
    run_guarded(&d);
    assert_eq!(&*got.borrow(), b"abcdef");
}

#[test]
fn deregistered_and_dropped_sources_get_no_callbacks() {
    let d = dispatcher();
    let (mut a1, mut b1) = UnixStream::pair().unwrap();
    let (mut a2, mut b2) = UnixStream::pair().unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let h1 = d.register_io(&mut b1, Interest::READABLE, move |_| c.set(c.get() + 1)).unwrap();
    let c = calls.clone();
    let h2 = d.register_io(&mut b2, Interest::READABLE, move |_| c.set(c.get() + 1)).unwrap();
    h1.deregister(&mut b1).unwrap();
    drop(h2);
    a1.write_all(b"x").unwrap();
    a2.write_all(b"y").unwrap();
    let dd = d.clone();
    let exit = d.create_timer(move |_| dd.exit());
    exit.enable(Duration::from_millis(10));
    run_guarded(&d);
    assert_eq!(calls.get(), 0);
    let _ = (&mut b2, &mut b1);
}

/// Loopback TCP echo: accept, read, write back, all driven by readiness callbacks.
#[test]
fn tcp_echo_over_loopback() {
    struct Conn {
        stream: TcpStream,
        _io: Option<IoHandle>,
    }

    let d = MioDispatcher::new("echo").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = Rc::new(RefCell::new(listener));
    let conns: Rc<RefCell<Vec<Rc<RefCell<Conn>>>>> = Rc::new(RefCell::new(Vec::new()));

    let (l, cs, dd) = (listener.clone(), conns.clone(), d.clone());
    let _accept = d
        .register_io(&mut *listener.borrow_mut(), Interest::READABLE, move |_| {
            loop {
                let (stream, _) = match l.borrow().accept() {
                    Ok(accepted) => accepted,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("accept: {e}"),
                };
                let conn = Rc::new(RefCell::new(Conn { stream, _io: None }));
                let weak = Rc::downgrade(&conn);
                let dd = dd.clone();
                let io = dd
                    .clone()
                    .register_io(&mut conn.borrow_mut().stream, Interest::READABLE, move |_| {
                        let Some(conn) = weak.upgrade() else { return };
                        let mut conn = conn.borrow_mut();
                        let mut buf = [0u8; 1024];
                        loop {
                            match conn.stream.read(&mut buf) {
                                Ok(0) => {
                                    dd.exit();
                                    break;
                                }
                                Ok(n) => conn.stream.write_all(&buf[..n]).unwrap(),
                                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                                Err(e) => panic!("read: {e}"),
                            }
                        }
                    })
                    .unwrap();
                conn.borrow_mut()._io = Some(io);
                cs.borrow_mut().push(conn);
            }
        })
        .unwrap();

    thread::scope(|s| {
        let client = s.spawn(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(DEADLOCK_GUARD)).unwrap();
            stream.write_all(b"ping").unwrap();
            let mut reply = [0u8; 4];
            stream.read_exact(&mut reply).unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            reply
        });
        run_guarded(&d);
        assert_eq!(&client.join().unwrap(), b"ping");
    });
    assert_eq!(conns.borrow().len(), 1);
}
