//! # Buffers: chains of byte slices, with watermarks for backpressure
//!
//! Mirrors Envoy's `Buffer::OwnedImpl` and `Buffer::WatermarkBuffer`
//! (`source/common/buffer/`). A [`Buffer`] is a queue of reference-counted
//! [`Bytes`] slices followed by one growable [`BytesMut`] tail:
//!
//! ```text
//!   front                                                     back
//!   ┌────────┐ ┌──────────────┐ ┌─────┐ ┌──────────────────────────┐
//!   │ Bytes  │ │ Bytes        │ │Bytes│ │ BytesMut tail (appends)  │
//!   └────────┘ └──────────────┘ └─────┘ └──────────────────────────┘
//!    drain / split_to_bytes / move_from_n take from here ─┘   append lands here
//! ```
//!
//! Data flows through a proxy as buffers moving between owners: a socket read
//! appends into the tail ([`Buffer::with_tail`]), the HTTP codec takes bodies
//! out as zero-copy `Bytes` ([`Buffer::split_to_bytes`]), filters move whole
//! buffers from one place to another without copying ([`Buffer::move_from`]),
//! and the write side hands every slice at once to a vectored write
//! ([`bytes::Buf::chunks_vectored`]). Copies only happen for small appends and
//! when a parser asks for a contiguous prefix ([`Buffer::linearize`]).
//!
//! Backpressure uses watermarks, as Envoy's `WatermarkBuffer`: when the
//! length rises above the high watermark the `above_high` callback fires
//! once (the connection stops reading); when it later falls to the low
//! watermark or below, the `below_low` callback fires once (reading resumes).

use std::collections::VecDeque;
use std::fmt;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// Appended [`Bytes`] shorter than this are copied into the tail instead of
/// being linked, so that many tiny writes do not make a long chain of slices.
const COPY_THRESHOLD: usize = 128;

/// Why watermarks were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatermarkError {
    /// The low watermark must be below the high one (or both zero, to disable).
    #[error("low watermark {low} must be below high watermark {high}")]
    LowNotBelowHigh {
        /// Requested low watermark.
        low: usize,
        /// Requested high watermark.
        high: usize,
    },
}

type Callback = Box<dyn FnMut() + Send>;

struct Watermarks {
    low: usize,
    /// Zero disables the watermarks.
    high: usize,
    /// Whether `above_high` fired and `below_low` has not fired since.
    above_high: bool,
    on_below_low: Option<Callback>,
    on_above_high: Option<Callback>,
}

/// A chain of byte slices with optional high/low watermarks.
///
/// Invariants: no slice in the chain is empty, and `len` is the sum of the
/// slices' lengths plus the tail's length.
#[derive(Default)]
pub struct Buffer {
    slices: VecDeque<Bytes>,
    tail: BytesMut,
    len: usize,
    watermarks: Option<Box<Watermarks>>,
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.len)
            .field("slices", &(self.slices.len() + usize::from(!self.tail.is_empty())))
            .field("above_high_watermark", &self.above_high_watermark())
            .finish()
    }
}

impl Buffer {
    /// An empty buffer without watermarks.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer whose watermark crossings call `on_below_low` and
    /// `on_above_high` (Envoy's `WatermarkBuffer` constructor). Watermarks
    /// are disabled until [`set_watermarks`](Self::set_watermarks).
    pub fn with_watermark_callbacks(
        on_below_low: impl FnMut() + Send + 'static,
        on_above_high: impl FnMut() + Send + 'static,
    ) -> Self {
        Self {
            watermarks: Some(Box::new(Watermarks {
                low: 0,
                high: 0,
                above_high: false,
                on_below_low: Some(Box::new(on_below_low)),
                on_above_high: Some(Box::new(on_above_high)),
            })),
            ..Self::default()
        }
    }

    /// Sets the high watermark, with the low one at half of it, as Envoy's
    /// `setWatermarks(high)`. Zero disables watermarks (and, if the buffer was
    /// above its high watermark, fires `below_low`).
    pub fn set_watermarks(&mut self, high: usize) {
        // `high / 2 < high` for every `high > 0`, and both are zero otherwise.
        let _ = self.set_watermarks_low_high(high / 2, high);
    }

    /// Sets both watermarks. `low` must be below `high`, or both zero.
    pub fn set_watermarks_low_high(
        &mut self,
        low: usize,
        high: usize,
    ) -> Result<(), WatermarkError> {
        if low >= high && !(low == 0 && high == 0) {
            return Err(WatermarkError::LowNotBelowHigh { low, high });
        }
        let w = self.watermarks.get_or_insert_with(|| {
            Box::new(Watermarks {
                low: 0,
                high: 0,
                above_high: false,
                on_below_low: None,
                on_above_high: None,
            })
        });
        w.low = low;
        w.high = high;
        self.check_high_watermark();
        self.check_low_watermark();
        Ok(())
    }

    /// The high watermark (0 when disabled).
    pub fn high_watermark(&self) -> usize {
        self.watermarks.as_ref().map_or(0, |w| w.high)
    }

    /// The low watermark.
    pub fn low_watermark(&self) -> usize {
        self.watermarks.as_ref().map_or(0, |w| w.low)
    }

    /// Whether the buffer went above its high watermark and has not yet come
    /// back down to its low watermark.
    pub fn above_high_watermark(&self) -> bool {
        self.watermarks.as_ref().is_some_and(|w| w.above_high)
    }

    // ANCHOR: watermark_logic
    /// After growing: fire `above_high` once when the length exceeds `high`.
    fn check_high_watermark(&mut self) {
        let len = self.len;
        if let Some(w) = self.watermarks.as_deref_mut()
            && !w.above_high
            && w.high != 0
            && len > w.high
        {
            w.above_high = true;
            if let Some(cb) = w.on_above_high.as_mut() {
                cb();
            }
        }
    }

    /// After shrinking: once above `high`, fire `below_low` once when the
    /// length is back to `low` or below (or the watermarks were disabled).
    fn check_low_watermark(&mut self) {
        let len = self.len;
        if let Some(w) = self.watermarks.as_deref_mut()
            && w.above_high
            && (w.high == 0 || len <= w.low)
        {
            w.above_high = false;
            if let Some(cb) = w.on_below_low.as_mut() {
                cb();
            }
        }
    }
    // ANCHOR_END: watermark_logic

    /// Number of bytes in the buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of slices in the chain (the tail counts when not empty).
    pub fn slice_count(&self) -> usize {
        self.slices.len() + usize::from(!self.tail.is_empty())
    }

    /// Moves the tail's bytes into the chain so something can follow them.
    fn freeze_tail(&mut self) {
        if !self.tail.is_empty() {
            let frozen = self.tail.split().freeze();
            self.slices.push_back(frozen);
        }
    }

    /// Appends a copy of `data`.
    pub fn append(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.tail.extend_from_slice(data);
        self.len += data.len();
        self.check_high_watermark();
    }

    /// Appends `data` without copying it (small slices are copied, see
    /// `COPY_THRESHOLD`, to keep the chain short).
    pub fn append_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        if data.len() < COPY_THRESHOLD {
            self.tail.extend_from_slice(&data);
        } else {
            self.freeze_tail();
            self.slices.push_back(data);
        }
        self.check_high_watermark();
    }

    /// Puts a copy of `data` before the current contents.
    pub fn prepend(&mut self, data: &[u8]) {
        self.prepend_bytes(Bytes::copy_from_slice(data));
    }

    /// Puts `data` before the current contents, without copying.
    pub fn prepend_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        self.slices.push_front(data);
        self.check_high_watermark();
    }

    /// Runs `f` on the tail, where appends land, so a socket read can fill it
    /// directly (`socket.try_read_buf(tail)`). Anything `f` appends is
    /// accounted for and checked against the watermarks.
    pub fn with_tail<R>(&mut self, f: impl FnOnce(&mut BytesMut) -> R) -> R {
        let before = self.tail.len();
        let result = f(&mut self.tail);
        let after = self.tail.len();
        self.len = self.len - before + after;
        if after > before {
            self.check_high_watermark();
        } else if after < before {
            self.check_low_watermark();
        }
        result
    }

    /// Moves every byte of `src` to the end of `self`, without copying
    /// (Envoy's `move(Instance&)`).
    pub fn move_from(&mut self, src: &mut Buffer) {
        if src.is_empty() {
            return;
        }
        self.freeze_tail();
        self.slices.extend(src.slices.drain(..));
        if !src.tail.is_empty() {
            self.slices.push_back(src.tail.split().freeze());
        }
        self.len += src.len;
        src.len = 0;
        src.check_low_watermark();
        self.check_high_watermark();
    }

    /// Moves the first `n` bytes of `src` (or all of them, if fewer) to the end
    /// of `self`, without copying (Envoy's `move(Instance&, length)`).
    pub fn move_from_n(&mut self, src: &mut Buffer, n: usize) {
        let n = n.min(src.len);
        if n == 0 {
            return;
        }
        if n == src.len {
            self.move_from(src);
            return;
        }
        self.freeze_tail();
        let mut left = n;
        while left > 0 {
            if let Some(front) = src.slices.front_mut() {
                if front.len() <= left {
                    left -= front.len();
                    if let Some(whole) = src.slices.pop_front() {
                        self.slices.push_back(whole);
                    }
                } else {
                    self.slices.push_back(front.split_to(left));
                    left = 0;
                }
            } else {
                self.slices.push_back(src.tail.split_to(left).freeze());
                left = 0;
            }
        }
        src.len -= n;
        self.len += n;
        src.check_low_watermark();
        self.check_high_watermark();
    }

    /// Removes the first `n` bytes (or all, if fewer).
    pub fn drain(&mut self, n: usize) {
        let mut left = n.min(self.len);
        self.len -= left;
        while left > 0 {
            if let Some(front) = self.slices.front_mut() {
                if front.len() <= left {
                    left -= front.len();
                    self.slices.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            } else {
                self.tail.advance(left);
                left = 0;
            }
        }
        self.check_low_watermark();
    }

    /// Removes every byte.
    pub fn clear(&mut self) {
        self.drain(self.len);
    }

    /// Takes the first `n` bytes (or all, if fewer) out of the buffer as one
    /// `Bytes`, without watermark checks. Zero-copy when they sit in one slice.
    fn take_front(&mut self, n: usize) -> Bytes {
        let n = n.min(self.len);
        if n == 0 {
            return Bytes::new();
        }
        self.len -= n;
        match self.slices.front_mut() {
            Some(front) if front.len() > n => front.split_to(n),
            Some(front) if front.len() == n => self.slices.pop_front().unwrap_or_default(),
            Some(_) => {
                let mut joined = BytesMut::with_capacity(n);
                let mut left = n;
                while left > 0 {
                    if let Some(front) = self.slices.front_mut() {
                        let k = front.len().min(left);
                        joined.extend_from_slice(&front[..k]);
                        if k == front.len() {
                            self.slices.pop_front();
                        } else {
                            front.advance(k);
                        }
                        left -= k;
                    } else {
                        joined.extend_from_slice(&self.tail[..left]);
                        self.tail.advance(left);
                        left = 0;
                    }
                }
                joined.freeze()
            }
            None => self.tail.split_to(n).freeze(),
        }
    }

    /// Takes the first `n` bytes (or all, if fewer) out of the buffer as one
    /// [`Bytes`]. Zero-copy when they sit in one slice, a copy otherwise.
    pub fn split_to_bytes(&mut self, n: usize) -> Bytes {
        let taken = self.take_front(n);
        self.check_low_watermark();
        taken
    }

    /// The first slice (empty when the buffer is empty).
    pub fn front_slice(&self) -> &[u8] {
        match self.slices.front() {
            Some(front) => front,
            None => &self.tail,
        }
    }

    /// Makes the first `n` bytes (or all, if fewer) contiguous and returns
    /// them, copying only when they span several slices (Envoy's `linearize`).
    pub fn linearize(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.len);
        if self.front_slice().len() < n {
            let joined = self.take_front(n);
            self.len += n;
            self.slices.push_front(joined);
        }
        &self.front_slice()[..n]
    }

    /// Copies bytes starting at `offset` into `dst`; returns how many were
    /// copied (fewer than `dst.len()` when the buffer ends first).
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> usize {
        let mut skip = offset;
        let mut copied = 0;
        for slice in self.slices() {
            if copied == dst.len() {
                break;
            }
            if skip >= slice.len() {
                skip -= slice.len();
                continue;
            }
            let part = &slice[skip..];
            skip = 0;
            let k = part.len().min(dst.len() - copied);
            dst[copied..copied + k].copy_from_slice(&part[..k]);
            copied += k;
        }
        copied
    }

    /// The byte at `index`, if any.
    pub fn byte_at(&self, index: usize) -> Option<u8> {
        let mut index = index;
        for slice in self.slices() {
            if index < slice.len() {
                return Some(slice[index]);
            }
            index -= slice.len();
        }
        None
    }

    /// Whether the buffer starts with `prefix`.
    pub fn starts_with(&self, prefix: &[u8]) -> bool {
        if prefix.len() > self.len {
            return false;
        }
        let mut rest = prefix;
        for slice in self.slices() {
            if rest.is_empty() {
                break;
            }
            let k = slice.len().min(rest.len());
            if slice[..k] != rest[..k] {
                return false;
            }
            rest = &rest[k..];
        }
        rest.is_empty()
    }

    /// The slices in order, for inspection or vectored writes.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.slices
            .iter()
            .map(|b| &b[..])
            .chain(std::iter::once(&self.tail[..]).filter(|t| !t.is_empty()))
    }

    /// A second buffer with the same content, sharing its slices (reference
    /// counts, no copy of the sliced part; the unsliced tail is copied). For
    /// keeping a request body a retry can replay while the original streams
    /// on. Watermarks are not shared.
    pub fn share(&self) -> Buffer {
        let mut out = Buffer::new();
        for slice in &self.slices {
            out.append_bytes(slice.clone());
        }
        if !self.tail.is_empty() {
            out.append(&self.tail);
        }
        out
    }

    /// A copy of the whole content.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for slice in self.slices() {
            out.extend_from_slice(slice);
        }
        out
    }
}

impl From<&[u8]> for Buffer {
    fn from(data: &[u8]) -> Self {
        let mut buffer = Buffer::new();
        buffer.append(data);
        buffer
    }
}

impl From<Bytes> for Buffer {
    fn from(data: Bytes) -> Self {
        let mut buffer = Buffer::new();
        buffer.append_bytes(data);
        buffer
    }
}

/// Reading side of the buffer, so it can be handed to `AsyncWrite::write_buf`
/// or anything else that takes a [`Buf`]: `advance` drains (and so may fire
/// `below_low`), `chunks_vectored` fills `IoSlice`s for `writev`.
impl Buf for Buffer {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        self.front_slice()
    }

    fn advance(&mut self, cnt: usize) {
        self.drain(cnt);
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, slice) in dst.iter_mut().zip(self.slices()) {
            *slot = IoSlice::new(slice);
            n += 1;
        }
        n
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        self.split_to_bytes(len)
    }
}

#[cfg(test)]
mod share_tests {
    use super::*;

    #[test]
    fn share_keeps_content_and_shares_slices() {
        let mut b = Buffer::new();
        let big = Bytes::from(vec![7u8; 8192]);
        b.append_bytes(big.clone());
        b.append(b"world");
        let shared = b.share();
        assert_eq!(shared.to_vec(), b.to_vec());
        // The large slice is shared, not copied.
        assert_eq!(shared.front_slice().as_ptr(), big.as_ptr());
        b.drain(6);
        assert_eq!(shared.len(), 8192 + 5, "independent of the original");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn append_prepend_drain() {
        let mut b = Buffer::new();
        b.append(b"world");
        b.prepend(b"hello ");
        b.append_bytes(Bytes::from(vec![b'!'; 200]));
        assert_eq!(b.len(), 211);
        assert!(b.starts_with(b"hello world!"));
        b.drain(6);
        assert!(b.starts_with(b"world!"));
        assert_eq!(b.byte_at(5), Some(b'!'));
        b.drain(1000);
        assert!(b.is_empty());
        assert_eq!(b.slices().count(), 0);
    }

    #[test]
    fn large_appends_and_moves_do_not_copy() {
        let payload = Bytes::from(vec![7u8; 4096]);
        let mut a = Buffer::new();
        a.append_bytes(payload.clone());
        assert_eq!(a.front_slice().as_ptr(), payload.as_ptr());
        let mut b = Buffer::new();
        b.append(b"head");
        b.move_from(&mut a);
        assert!(a.is_empty());
        assert_eq!(b.len(), 4100);
        let slices: Vec<&[u8]> = b.slices().collect();
        assert_eq!(slices[1].as_ptr(), payload.as_ptr());
        b.drain(4);
        let body = b.split_to_bytes(4096);
        assert_eq!(body.as_ptr(), payload.as_ptr());
    }

    #[test]
    fn linearize_joins_a_prefix_once() {
        let mut b = Buffer::new();
        b.append_bytes(Bytes::from(vec![1u8; 200]));
        b.append_bytes(Bytes::from(vec![2u8; 200]));
        assert_eq!(b.slice_count(), 2);
        let joined = b.linearize(300);
        assert_eq!(joined.len(), 300);
        assert_eq!(joined[199], 1);
        assert_eq!(joined[200], 2);
        assert_eq!(b.len(), 400);
        let ptr = b.front_slice().as_ptr();
        assert_eq!(b.linearize(250).as_ptr(), ptr, "already contiguous: no copy");
    }

    #[test]
    fn vectored_writes_see_every_slice() {
        let mut b = Buffer::new();
        b.append_bytes(Bytes::from(vec![1u8; 150]));
        b.append(b"xyz");
        let mut slots = [IoSlice::new(&[]); 4];
        assert_eq!(b.chunks_vectored(&mut slots), 2);
        assert_eq!(slots[0].len() + slots[1].len(), 153);
    }

    #[test]
    fn with_tail_accounts_for_reads() {
        let mut b = Buffer::new();
        let n = b.with_tail(|t| {
            t.extend_from_slice(b"read from socket");
            16
        });
        assert_eq!(n, 16);
        assert_eq!(b.len(), 16);
        assert_eq!(b.to_vec(), b"read from socket");
    }

    fn counting_buffer() -> (Buffer, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let lows = Arc::new(AtomicUsize::new(0));
        let highs = Arc::new(AtomicUsize::new(0));
        let (l, h) = (lows.clone(), highs.clone());
        let b = Buffer::with_watermark_callbacks(
            move || {
                l.fetch_add(1, Ordering::SeqCst);
            },
            move || {
                h.fetch_add(1, Ordering::SeqCst);
            },
        );
        (b, lows, highs)
    }

    #[test]
    fn watermarks_fire_once_each_way() {
        let (mut b, lows, highs) = counting_buffer();
        b.set_watermarks(10); // low = 5
        b.append(b"0123456789");
        assert_eq!(highs.load(Ordering::SeqCst), 0, "at high is not above high");
        b.append(b"a");
        assert_eq!(highs.load(Ordering::SeqCst), 1);
        b.append(b"more bytes");
        assert_eq!(highs.load(Ordering::SeqCst), 1, "fires once");
        b.drain(b.len() - 6);
        assert_eq!(lows.load(Ordering::SeqCst), 0, "6 > low");
        b.drain(1);
        assert_eq!(lows.load(Ordering::SeqCst), 1);
        b.drain(5);
        assert_eq!(lows.load(Ordering::SeqCst), 1, "fires once");
        assert!(!b.above_high_watermark());
    }

    #[test]
    fn moving_out_of_a_watermarked_buffer_fires_low_and_into_one_fires_high() {
        let (mut b, lows, highs) = counting_buffer();
        b.set_watermarks(4);
        let mut src = Buffer::from(&b"abcdef"[..]);
        b.move_from(&mut src);
        assert_eq!(highs.load(Ordering::SeqCst), 1);
        let mut dst = Buffer::new();
        dst.move_from_n(&mut b, 4);
        assert_eq!(lows.load(Ordering::SeqCst), 1);
        assert_eq!(dst.to_vec(), b"abcd");
    }

    #[test]
    fn disabling_watermarks_while_above_fires_low() {
        let (mut b, lows, _) = counting_buffer();
        b.set_watermarks(2);
        b.append(b"abc");
        assert!(b.above_high_watermark());
        b.set_watermarks(0);
        assert_eq!(lows.load(Ordering::SeqCst), 1);
        assert!(!b.above_high_watermark());
        assert_eq!(
            b.set_watermarks_low_high(5, 5),
            Err(WatermarkError::LowNotBelowHigh { low: 5, high: 5 })
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<u8>),
        AppendBytes(Vec<u8>),
        Prepend(Vec<u8>),
        Drain(usize),
        Split(usize),
        Linearize(usize),
        MoveOut(usize),
        MoveIn(Vec<u8>),
        Tail(Vec<u8>),
        CopyOut(usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let data = || prop::collection::vec(any::<u8>(), 0..300);
        prop_oneof![
            data().prop_map(Op::Append),
            data().prop_map(Op::AppendBytes),
            data().prop_map(Op::Prepend),
            (0usize..400).prop_map(Op::Drain),
            (0usize..400).prop_map(Op::Split),
            (0usize..400).prop_map(Op::Linearize),
            (0usize..400).prop_map(Op::MoveOut),
            data().prop_map(Op::MoveIn),
            data().prop_map(Op::Tail),
            (0usize..400, 0usize..100).prop_map(|(o, n)| Op::CopyOut(o, n)),
        ]
    }

    proptest! {
        /// Every operation behaves as on a `Vec<u8>`, and the watermark
        /// callbacks alternate high, low, high... exactly at the crossings.
        #[test]
        fn matches_a_vec_model(ops in prop::collection::vec(op(), 0..60), high in 1usize..600) {
            let (mut b, lows, highs) = counting_buffer();
            b.set_watermarks(high);
            let low = high / 2;
            let mut model: Vec<u8> = Vec::new();
            let (mut model_above, mut model_highs, mut model_lows) = (false, 0usize, 0usize);
            for op in ops {
                match op {
                    Op::Append(d) => { b.append(&d); model.extend_from_slice(&d); }
                    Op::AppendBytes(d) => { b.append_bytes(Bytes::from(d.clone())); model.extend_from_slice(&d); }
                    Op::Prepend(d) => { b.prepend(&d); model.splice(0..0, d); }
                    Op::Drain(n) => { b.drain(n); model.drain(..n.min(model.len())); }
                    Op::Split(n) => {
                        let got = b.split_to_bytes(n);
                        let want: Vec<u8> = model.drain(..n.min(model.len())).collect();
                        prop_assert_eq!(&got[..], &want[..]);
                    }
                    Op::Linearize(n) => {
                        let got = b.linearize(n).to_vec();
                        prop_assert_eq!(&got[..], &model[..n.min(model.len())]);
                    }
                    Op::MoveOut(n) => {
                        let mut other = Buffer::new();
                        other.append(b"x");
                        other.move_from_n(&mut b, n);
                        let mut want = vec![b'x'];
                        want.extend(model.drain(..n.min(model.len())));
                        prop_assert_eq!(other.to_vec(), want);
                    }
                    Op::MoveIn(d) => {
                        let mut other = Buffer::from(&d[..]);
                        other.prepend(b"p");
                        b.move_from(&mut other);
                        prop_assert!(other.is_empty());
                        model.push(b'p');
                        model.extend_from_slice(&d);
                    }
                    Op::Tail(d) => { b.with_tail(|t| t.extend_from_slice(&d)); model.extend_from_slice(&d); }
                    Op::CopyOut(offset, n) => {
                        let mut dst = vec![0u8; n];
                        let copied = b.copy_out(offset, &mut dst);
                        let start = offset.min(model.len());
                        let want = &model[start..(start + n).min(model.len())];
                        prop_assert_eq!(&dst[..copied], want);
                    }
                }
                // The model's watermark rules, applied after every operation.
                if !model_above && model.len() > high { model_above = true; model_highs += 1; }
                if model_above && model.len() <= low { model_above = false; model_lows += 1; }
                prop_assert_eq!(b.len(), model.len());
                prop_assert_eq!(b.to_vec(), model.clone());
                prop_assert!(b.slices().all(|s| !s.is_empty()));
                prop_assert_eq!(b.above_high_watermark(), model_above);
                prop_assert_eq!(highs.load(Ordering::SeqCst), model_highs);
                prop_assert_eq!(lows.load(Ordering::SeqCst), model_lows);
            }
        }
    }
}
