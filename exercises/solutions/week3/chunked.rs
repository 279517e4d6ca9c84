//! Reference solution of `chunked`: a small state machine. The real decoder
//! (`week3_filters::http1::body`) scans with memchr and hands data out as
//! zero-copy slices.

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

/// Takes one `\r\n`-terminated line off `input` (CRLF stripped), or `None`
/// when it has not fully arrived.
fn take_line(input: &mut Buffer) -> Result<Option<Vec<u8>>, ChunkedError> {
    let Some(lf) = (0..input.len().min(MAX_LINE)).find(|&i| input.byte_at(i) == Some(b'\n')) else {
        return if input.len() >= MAX_LINE { Err(ChunkedError::LineTooLong) } else { Ok(None) };
    };
    let line = input.linearize(lf + 1).to_vec();
    input.drain(lf + 1);
    match line.strip_suffix(b"\r\n") {
        Some(content) => Ok(Some(content.to_vec())),
        None => Err(ChunkedError::MissingCrlf),
    }
}

fn parse_size(line: &[u8]) -> Result<u64, ChunkedError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    if digits.is_empty() || digits.len() > 16 {
        return Err(ChunkedError::InvalidSize);
    }
    digits.iter().try_fold(0u64, |size, &b| {
        let d = (b as char).to_digit(16).ok_or(ChunkedError::InvalidSize)?;
        Ok(size << 4 | u64::from(d))
    })
}

impl ChunkedDecoder {
    /// A decoder refusing chunks over `max_chunk_size` bytes.
    pub fn new(max_chunk_size: u64) -> Self {
        Self { state: State::Size, max_chunk_size }
    }

    /// Decodes what `input` holds; `Ok(true)` when the body is complete.
    pub fn decode(&mut self, input: &mut Buffer, body: &mut Buffer) -> Result<bool, ChunkedError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = take_line(input)? else { return Ok(false) };
                    let size = parse_size(&line)?;
                    if size > self.max_chunk_size {
                        return Err(ChunkedError::TooLarge);
                    }
                    self.state = if size == 0 { State::Trailers } else { State::Data(size) };
                }
                State::Data(remaining) => {
                    if input.is_empty() {
                        return Ok(false);
                    }
                    let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(input.len());
                    body.move_from_n(input, n);
                    let left = remaining - n as u64;
                    self.state = if left == 0 { State::DataCrlf } else { State::Data(left) };
                }
                State::DataCrlf => {
                    if input.len() < 2 {
                        return Ok(false);
                    }
                    if !input.starts_with(b"\r\n") {
                        return Err(ChunkedError::MissingCrlf);
                    }
                    input.drain(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let Some(line) = take_line(input)? else { return Ok(false) };
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                }
                State::Done => return Ok(true),
            }
        }
    }
}
