//! # Network (L4) filters and their FilterManager
//!
//! Envoy's `Network::ReadFilter` / `Network::WriteFilter` and
//! `Network::FilterManagerImpl`, sans-IO. A connection's bytes go through the
//! read filters in configured order; what every read filter let through
//! reaches the *terminal* (the HTTP connection manager or tcp_proxy, which
//! mini-envoy runs) as [`NetworkEvent::Read`]. Bytes the terminal writes go
//! through the write filters in *reverse* order and come out as
//! [`NetworkEvent::Write`] for the socket:
//!
//! ```text
//!  socket ─► on_read ─► [R1 → R2 → … → Rn] ─► Read event (terminal: HCM / tcp_proxy)
//!  socket ◄─ Write event ◄─ [Wn ← … ← W1] ◄─ write(data) (terminal)
//! ```
//!
//! A read filter returning [`FilterStatus::StopIteration`] keeps the bytes
//! in the connection's read buffer (more reads accumulate there); it resumes
//! with [`ReadFilterCallbacks::continue_reading`] and iteration picks up at
//! the next filter with everything buffered. `on_new_connection` runs once
//! per filter, in order, before its first `on_data` (a filter may refuse the
//! connection there, e.g. the rate limit). Filters can inject data further
//! down the chain, write to the peer, and close the connection with or
//! without flushing pending writes.

pub mod filters;
pub mod tcp_proxy;

use std::collections::VecDeque;
use std::time::Duration;

use crate::buffer::Buffer;
use crate::http::ConnectionInfo;

/// What a network filter answers (Envoy's `Network::FilterStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterStatus {
    /// Go on to the next filter.
    Continue,
    /// Stop here until `continue_reading` (read) / an inject (write).
    StopIteration,
}

/// How to close (Envoy's `ConnectionCloseType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseType {
    /// Close now; pending writes are dropped.
    NoFlush,
    /// Write what is pending, then close.
    FlushWrite,
}

/// Connection events filters hear about (Envoy's `ConnectionEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// The peer closed.
    RemoteClose,
    /// We closed.
    LocalClose,
}

/// What the network FilterManager asks its owner to do.
#[derive(Debug)]
pub enum NetworkEvent {
    /// Bytes for the terminal (HCM / tcp_proxy).
    Read {
        /// The bytes.
        data: Buffer,
        /// The peer half-closed.
        end_stream: bool,
    },
    /// Bytes for the socket.
    Write {
        /// The bytes.
        data: Buffer,
        /// Half-close after them.
        end_stream: bool,
    },
    /// Close the connection.
    Close(CloseType),
    /// Arm a timer and call [`NetworkFilterManager::on_timer`] when it fires.
    StartTimer {
        /// Which filter (read filter index).
        filter: usize,
        /// After how long.
        after: Duration,
    },
}

/// A read filter (Envoy's `Network::ReadFilter`).
pub trait ReadFilter: Send {
    /// The connection was accepted; once, before the first `on_data`.
    fn on_new_connection(&mut self, _cb: &mut ReadFilterCallbacks<'_>) -> FilterStatus {
        FilterStatus::Continue
    }
    /// Bytes read (everything buffered since the last pass-through).
    fn on_data(
        &mut self,
        data: &mut Buffer,
        end_stream: bool,
        cb: &mut ReadFilterCallbacks<'_>,
    ) -> FilterStatus;
    /// A timer this filter started fired.
    fn on_timer(&mut self, _cb: &mut ReadFilterCallbacks<'_>) {}
    /// The connection closed.
    fn on_event(&mut self, _event: ConnectionEvent) {}
}

/// A write filter (Envoy's `Network::WriteFilter`).
pub trait WriteFilter: Send {
    /// Bytes about to be written.
    fn on_write(
        &mut self,
        data: &mut Buffer,
        end_stream: bool,
        cb: &mut WriteFilterCallbacks<'_>,
    ) -> FilterStatus;
    /// The connection closed.
    fn on_event(&mut self, _event: ConnectionEvent) {}
}

/// A filter on both paths.
pub trait Filter: ReadFilter + WriteFilter {}
impl<T: ReadFilter + WriteFilter> Filter for T {}

/// One network filter instance, by role.
pub enum NetworkFilterInstance {
    /// Read path only.
    Read(Box<dyn ReadFilter>),
    /// Write path only.
    Write(Box<dyn WriteFilter>),
    /// Both.
    Dual(Box<dyn Filter>),
}

impl std::fmt::Debug for NetworkFilterInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Read(_) => "Read",
            Self::Write(_) => "Write",
            Self::Dual(_) => "Dual",
        })
    }
}

impl NetworkFilterInstance {
    fn reader(&mut self) -> Option<&mut dyn ReadFilter> {
        match self {
            Self::Read(f) => Some(f.as_mut()),
            Self::Dual(f) => Some(f.as_mut() as &mut dyn ReadFilter),
            Self::Write(_) => None,
        }
    }
    fn writer(&mut self) -> Option<&mut dyn WriteFilter> {
        match self {
            Self::Write(f) => Some(f.as_mut()),
            Self::Dual(f) => Some(f.as_mut() as &mut dyn WriteFilter),
            Self::Read(_) => None,
        }
    }
}

enum Deferred {
    ContinueReading(usize),
    InjectRead(usize, Buffer, bool),
    InjectWrite(usize, Buffer, bool),
    Write(Buffer, bool),
}

struct NetCore {
    read_buffer: Buffer,
    read_end: bool,
    open: bool,
    conn: ConnectionInfo,
    bytes_read: u64,
    bytes_written: u64,
    events: VecDeque<NetworkEvent>,
    deferred: VecDeque<Deferred>,
    /// The read filter that closed the connection, if one did.
    closed_by: Option<usize>,
}

impl NetCore {
    fn close(&mut self, how: CloseType) {
        if self.open {
            self.open = false;
            self.events.push_back(NetworkEvent::Close(how));
        }
    }
}

/// A read filter's view of the connection.
pub struct ReadFilterCallbacks<'a> {
    core: &'a mut NetCore,
    index: usize,
}

impl ReadFilterCallbacks<'_> {
    /// Resumes reading where this filter stopped (after the current call).
    pub fn continue_reading(&mut self) {
        self.core.deferred.push_back(Deferred::ContinueReading(self.index));
    }
    /// Sends `data` to the filters after this one (Envoy's `injectReadDataToFilterChain`).
    pub fn inject_read_data(&mut self, data: Buffer, end_stream: bool) {
        self.core.deferred.push_back(Deferred::InjectRead(self.index, data, end_stream));
    }
    /// Writes to the peer through every write filter.
    pub fn write(&mut self, data: Buffer, end_stream: bool) {
        self.core.deferred.push_back(Deferred::Write(data, end_stream));
    }
    /// Closes the connection.
    pub fn close(&mut self, how: CloseType) {
        if self.core.open {
            self.core.closed_by = Some(self.index);
        }
        self.core.close(how);
    }
    /// Asks for a timer ([`ReadFilter::on_timer`] runs when it fires).
    pub fn start_timer(&mut self, after: Duration) {
        self.core.events.push_back(NetworkEvent::StartTimer { filter: self.index, after });
    }
    /// The connection.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.core.conn
    }
    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        self.core.open
    }
}

/// A write filter's view of the connection.
pub struct WriteFilterCallbacks<'a> {
    core: &'a mut NetCore,
    index: usize,
}

impl WriteFilterCallbacks<'_> {
    /// Sends `data` to the write filters after this one, then the socket
    /// (Envoy's `injectWriteDataToFilterChain`).
    pub fn inject_write_data(&mut self, data: Buffer, end_stream: bool) {
        self.core.deferred.push_back(Deferred::InjectWrite(self.index, data, end_stream));
    }
    /// Closes the connection.
    pub fn close(&mut self, how: CloseType) {
        self.core.close(how);
    }
    /// The connection.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.core.conn
    }
}

/// One connection's network filters (Envoy's `Network::FilterManagerImpl`).
pub struct NetworkFilterManager {
    filters: Vec<(NetworkFilterInstance, bool)>,
    core: NetCore,
}

impl std::fmt::Debug for NetworkFilterManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkFilterManager")
            .field("filters", &self.filters.len())
            .field("open", &self.core.open)
            .finish()
    }
}

impl NetworkFilterManager {
    /// A connection with these filters (configured order).
    pub fn new(filters: Vec<NetworkFilterInstance>, conn: ConnectionInfo) -> Self {
        Self {
            filters: filters.into_iter().map(|f| (f, false)).collect(),
            core: NetCore {
                read_buffer: Buffer::new(),
                read_end: false,
                open: true,
                conn,
                bytes_read: 0,
                bytes_written: 0,
                events: VecDeque::new(),
                deferred: VecDeque::new(),
                closed_by: None,
            },
        }
    }

    /// The next thing to do.
    pub fn next_event(&mut self) -> Option<NetworkEvent> {
        self.core.events.pop_front()
    }

    /// The read filter (its index in configured order) that closed the
    /// connection, if a read filter did (e.g. the rate limit, for its stat).
    pub fn closed_by(&self) -> Option<usize> {
        self.core.closed_by
    }

    /// Runs `on_new_connection` of the read filters (Envoy's `initializeReadFilters`).
    pub fn initialize(&mut self) {
        self.read_from(0, None);
        self.run_deferred();
    }

    /// Bytes from the socket (`end_stream`: the peer half-closed).
    pub fn on_read(&mut self, mut data: Buffer, end_stream: bool) {
        if !self.core.open {
            return;
        }
        self.core.bytes_read += data.len() as u64;
        self.core.read_buffer.move_from(&mut data);
        self.core.read_end |= end_stream;
        self.read_from(0, None);
        self.run_deferred();
    }

    /// Bytes from the terminal to the peer: through the write filters.
    pub fn write(&mut self, mut data: Buffer, end_stream: bool) {
        self.write_from(0, &mut data, end_stream);
        self.run_deferred();
    }

    /// A timer of read filter `filter` fired.
    pub fn on_timer(&mut self, filter: usize) {
        if let Some((f, _)) = self.filters.get_mut(filter)
            && let Some(r) = f.reader()
        {
            let mut cb = ReadFilterCallbacks { core: &mut self.core, index: filter };
            r.on_timer(&mut cb);
        }
        self.run_deferred();
    }

    /// The connection closed (by the peer or by us).
    pub fn on_event(&mut self, event: ConnectionEvent) {
        self.core.open = false;
        for (f, _) in &mut self.filters {
            match f {
                NetworkFilterInstance::Read(r) => r.on_event(event),
                NetworkFilterInstance::Write(w) => w.on_event(event),
                NetworkFilterInstance::Dual(d) => ReadFilter::on_event(d.as_mut(), event),
            }
        }
    }

    /// Bytes read and written so far.
    pub fn bytes(&self) -> (u64, u64) {
        (self.core.bytes_read, self.core.bytes_written)
    }

    /// Whether the connection is open.
    pub fn is_open(&self) -> bool {
        self.core.open
    }

    // ANCHOR: network_read_iteration
    /// Envoy's `onContinueReading`: from read filter `start` on, each filter
    /// first gets `on_new_connection` (once), then the buffered bytes. The
    /// connection's read buffer is used unless `injected` data is given.
    fn read_from(&mut self, start: usize, mut injected: Option<(Buffer, bool)>) {
        for i in start..self.filters.len() {
            if !self.core.open {
                return;
            }
            let (filter, initialized) = &mut self.filters[i];
            let Some(reader) = filter.reader() else { continue };
            let mut cb = ReadFilterCallbacks { core: &mut self.core, index: i };
            if !*initialized {
                *initialized = true;
                if reader.on_new_connection(&mut cb) == FilterStatus::StopIteration || !cb.core.open
                {
                    return;
                }
            }
            let status = match &mut injected {
                Some((data, end)) => {
                    if data.is_empty() && !*end {
                        continue;
                    }
                    reader.on_data(data, *end, &mut cb)
                }
                None => {
                    let end = cb.core.read_end;
                    if cb.core.read_buffer.is_empty() && !end {
                        continue;
                    }
                    let mut data = std::mem::take(&mut cb.core.read_buffer);
                    let status = reader.on_data(&mut data, end, &mut cb);
                    // What the filter left stays buffered on the connection.
                    data.move_from(&mut cb.core.read_buffer);
                    cb.core.read_buffer = data;
                    status
                }
            };
            if status == FilterStatus::StopIteration || !self.core.open {
                return;
            }
        }
        // Past the last read filter: the terminal's.
        let (data, end_stream) = match injected {
            Some(d) => d,
            None => (
                std::mem::take(&mut self.core.read_buffer),
                std::mem::take(&mut self.core.read_end),
            ),
        };
        if !data.is_empty() || end_stream {
            self.core.events.push_back(NetworkEvent::Read { data, end_stream });
        }
    }
    // ANCHOR_END: network_read_iteration

    // ANCHOR: network_write_iteration
    /// Envoy's `onWrite`: write filters in reverse order, from position
    /// `start` (0 = the last configured filter).
    fn write_from(&mut self, start: usize, data: &mut Buffer, end_stream: bool) {
        let n = self.filters.len();
        for k in start..n {
            let i = n - 1 - k;
            let Some(writer) = self.filters[i].0.writer() else { continue };
            let mut cb = WriteFilterCallbacks { core: &mut self.core, index: i };
            if writer.on_write(data, end_stream, &mut cb) == FilterStatus::StopIteration {
                return;
            }
        }
        if !self.core.open
            && self.core.events.iter().any(|e| matches!(e, NetworkEvent::Close(CloseType::NoFlush)))
        {
            return;
        }
        self.core.bytes_written += data.len() as u64;
        let data = std::mem::take(data);
        self.core.events.push_back(NetworkEvent::Write { data, end_stream });
    }
    // ANCHOR_END: network_write_iteration

    fn run_deferred(&mut self) {
        while let Some(d) = self.core.deferred.pop_front() {
            match d {
                Deferred::ContinueReading(i) => self.read_from(i + 1, None),
                Deferred::InjectRead(i, data, end) => self.read_from(i + 1, Some((data, end))),
                Deferred::InjectWrite(i, mut data, end) => {
                    let k = self.filters.len() - 1 - i;
                    self.write_from(k + 1, &mut data, end)
                }
                Deferred::Write(mut data, end) => self.write_from(0, &mut data, end),
            }
        }
    }
}
