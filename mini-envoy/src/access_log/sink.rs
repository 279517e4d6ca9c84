//! Where formatted entries go: per-thread buffers, flushed in whole-entry writes.
//!
//! Envoy's `AccessLogFileImpl` buffers entries and a flush thread writes them.
//! mini-envoy keeps one buffer per (thread, sink) in a thread-local, so the log
//! path takes no lock: an entry is formatted straight into the calling thread's
//! buffer. The buffer is written with one `write` of whole entries when it
//! passes [`FLUSH_THRESHOLD_BYTES`] (Envoy's `file_flush_min_size_kb`, 64 KiB),
//! when the thread's flusher timer fires ([`flush_thread_buffers`], every
//! `file_flush_interval_msec`, 1000 ms by default) and when the thread exits.
//! Files are opened once with `O_APPEND`, so the writes of all threads land
//! whole and in order of writing.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A thread's buffer for one sink is written once it holds this many bytes.
pub const FLUSH_THRESHOLD_BYTES: usize = 64 * 1024;

/// Filesystem counters shared by a manager's sinks (Envoy's `filesystem.*` stats).
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// `filesystem.write_buffered`: entries added to a buffer.
    pub write_buffered: AtomicU64,
    /// `filesystem.write_completed`: buffer writes that succeeded.
    pub write_completed: AtomicU64,
    /// `filesystem.write_failed`: buffer writes that failed (their entries are lost).
    pub write_failed: AtomicU64,
    /// `filesystem.flushed_by_timer`: buffers written by the flusher timer.
    pub flushed_by_timer: AtomicU64,
}

/// An open log destination (a file, stdout or stderr), shared by every thread.
#[derive(Debug)]
pub struct Sink {
    id: u64,
    path: String,
    file: File,
    counters: Arc<SinkCounters>,
}

impl Sink {
    /// A sink writing to `file`, labelled `path` in messages.
    pub fn new(path: String, file: File, counters: Arc<SinkCounters>) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Self { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), path, file, counters }
    }

    /// The path this sink writes to.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Writes whole entries; a failure is counted and logged, never raised.
    fn write_chunk(&self, bytes: &[u8]) {
        match (&self.file).write_all(bytes) {
            Ok(()) => {
                self.counters.write_completed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let failures = self.counters.write_failed.fetch_add(1, Ordering::Relaxed) + 1;
                // Log the 1st, 2nd, 4th, 8th, ... failure: a full disk must not flood the log.
                if failures.is_power_of_two() {
                    tracing::warn!(path = %self.path, error = %e, failures, "access log write failed");
                }
            }
        }
    }
}

/// One sink's pending bytes on this thread.
struct Pending {
    sink: Arc<Sink>,
    bytes: Vec<u8>,
}

/// This thread's buffers; written out when the thread exits.
#[derive(Default)]
struct ThreadBuffers {
    pending: Vec<Pending>,
    scratch: Vec<u8>,
}

impl ThreadBuffers {
    fn flush(&mut self, by_timer: bool) {
        for p in &mut self.pending {
            if p.bytes.is_empty() {
                continue;
            }
            p.sink.write_chunk(&p.bytes);
            if by_timer {
                p.sink.counters.flushed_by_timer.fetch_add(1, Ordering::Relaxed);
            }
            p.bytes.clear();
            if p.bytes.capacity() > 4 * FLUSH_THRESHOLD_BYTES {
                p.bytes.shrink_to(FLUSH_THRESHOLD_BYTES);
            }
        }
        // Forget sinks no compiled logger holds any more (replaced by a config update).
        self.pending.retain(|p| Arc::strong_count(&p.sink) > 1);
    }
}

impl Drop for ThreadBuffers {
    fn drop(&mut self) {
        self.flush(false);
    }
}

thread_local! {
    static BUFFERS: RefCell<ThreadBuffers> = RefCell::new(ThreadBuffers::default());
}

/// Appends one entry, produced by `format(out, scratch)`, to this thread's
/// buffer for `sink`, writing the buffer when it passes the threshold.
pub fn append(sink: &Arc<Sink>, format: impl Fn(&mut Vec<u8>, &mut Vec<u8>)) {
    sink.counters.write_buffered.fetch_add(1, Ordering::Relaxed);
    let buffered = BUFFERS.try_with(|cell| {
        let Ok(mut buffers) = cell.try_borrow_mut() else { return false };
        let ThreadBuffers { pending, scratch } = &mut *buffers;
        let index = match pending.iter().position(|p| p.sink.id == sink.id) {
            Some(i) => i,
            None => {
                pending.push(Pending { sink: Arc::clone(sink), bytes: Vec::new() });
                pending.len() - 1
            }
        };
        let p = &mut pending[index];
        format(&mut p.bytes, scratch);
        if p.bytes.len() >= FLUSH_THRESHOLD_BYTES {
            p.sink.write_chunk(&p.bytes);
            p.bytes.clear();
        }
        true
    });
    // The thread is exiting (its buffers are gone) or this is a re-entrant call:
    // write the entry directly.
    if buffered != Ok(true) {
        let (mut line, mut scratch) = (Vec::new(), Vec::new());
        format(&mut line, &mut scratch);
        sink.write_chunk(&line);
    }
}

/// Writes this thread's pending entries now (e.g. at worker shutdown).
pub fn flush_thread_buffers() {
    flush(false);
}

pub(super) fn flush(by_timer: bool) {
    let _ = BUFFERS.try_with(|cell| {
        if let Ok(mut buffers) = cell.try_borrow_mut() {
            buffers.flush(by_timer);
        }
    });
}

/// How many bytes this thread holds for `sink` (tests).
#[cfg(test)]
pub(super) fn pending_bytes(sink: &Sink) -> usize {
    BUFFERS.with(|cell| {
        cell.borrow().pending.iter().find(|p| p.sink.id == sink.id).map_or(0, |p| p.bytes.len())
    })
}
