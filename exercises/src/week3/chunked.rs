//! # Exercise `chunked`: an incremental chunked-body decoder (week 3, day 4)
//!
//! An HTTP/1.1 body with `Transfer-Encoding: chunked` arrives as
//! `<hex size>[;extensions]\r\n<size bytes>\r\n` chunks, ended by a `0\r\n`
//! chunk, optional trailer lines, and an empty line. A proxy reads from the
//! socket whatever has arrived, so the decoder must accept the message cut
//! at *any* byte and pick up where it stopped. Sloppy parsing here is how
//! request smuggling happens, so reject everything malformed.
//!
//! ## Task
//!
//! Implement [`ChunkedDecoder::decode`] on week 3's real [`Buffer`]:
//!
//! - consume from `input` everything that can be decoded now, append the body
//!   bytes to `body`, and leave an incomplete size line, CRLF or trailer line
//!   in `input` for the next call;
//! - return `Ok(true)` once the last chunk and the empty line after the
//!   trailers are consumed (leave any bytes after it in `input`: that is the
//!   next pipelined request), `Ok(false)` while more input is needed;
//! - the size is 1-16 hex digits, optionally followed by `;extension` (ignored);
//!   a chunk's data must be followed by exactly `\r\n`; every line ends in
//!   `\r\n`;
//! - errors: [`ChunkedError::InvalidSize`] (no digits, a non-hex character,
//!   more than 16 digits), [`ChunkedError::TooLarge`] (over `max_chunk_size`),
//!   [`ChunkedError::MissingCrlf`], [`ChunkedError::LineTooLong`] (no `\n`
//!   within [`MAX_LINE`] bytes). After an error the decoder need not recover.
//!
//! Useful `Buffer` methods: `len`, `byte_at`, `linearize`, `drain`,
//! `move_from_n`, `starts_with`.
//!
//! Run `cargo run -p exercises -- verify chunked`.

use week3_filters::buffer::Buffer;

/// Longest size or trailer line accepted, with its CRLF.
pub const MAX_LINE: usize = 4096;

/// Why a chunked body is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// A size that is not 1-16 hex digits.
    InvalidSize,
    /// A chunk larger than the limit.
    TooLarge,
    /// Something other than `\r\n` where one must be.
    MissingCrlf,
    /// A line longer than [`MAX_LINE`].
    LineTooLong,
}

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a size line.
    Size,
    /// Reading chunk data: this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataCrlf,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

/// Decodes one chunked body, incrementally.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    max_chunk_size: u64,
}

impl ChunkedDecoder {
    /// A decoder refusing chunks over `max_chunk_size` bytes.
    pub fn new(max_chunk_size: u64) -> Self {
        todo!()
    }

    /// Decodes what `input` holds; `Ok(true)` when the body is complete.
    pub fn decode(&mut self, input: &mut Buffer, body: &mut Buffer) -> Result<bool, ChunkedError> {
        todo!()
    }
}
