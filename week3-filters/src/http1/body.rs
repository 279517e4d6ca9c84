//! Body decoding: Content-Length, chunked (RFC 9112 §7.1), close-delimited
//! and tunnel bodies. Data leaves as zero-copy slices of the input buffer.

use bytes::Bytes;
use week1_core::headers::HeaderMap;

use super::head::parse_trailers;
use super::scan::HeadScanner;
use super::{BodyFraming, CodecError, Limits};
use crate::buffer::Buffer;

/// One step of body decoding.
#[derive(Debug)]
pub(crate) enum BodyStep {
    Data(Bytes),
    Trailers(HeaderMap),
    /// The body (and trailers, if any) is complete.
    Done,
    /// Nothing more can be decoded until more input (or end of input) arrives.
    NeedMore,
}

#[derive(Debug)]
pub(crate) enum BodyDecoder {
    Length {
        remaining: u64,
    },
    Chunked(Chunked),
    /// Close-delimited or tunnel: everything until end of input.
    UntilEof,
}

impl BodyDecoder {
    /// The decoder for a framing, `None` for a message without a body.
    pub(crate) fn new(framing: BodyFraming) -> Option<Self> {
        match framing {
            BodyFraming::None | BodyFraming::ContentLength(0) => None,
            BodyFraming::ContentLength(n) => Some(Self::Length { remaining: n }),
            BodyFraming::Chunked => Some(Self::Chunked(Chunked::new())),
            BodyFraming::CloseDelimited | BodyFraming::Tunnel => Some(Self::UntilEof),
        }
    }

    pub(crate) fn decode(
        &mut self,
        input: &mut Buffer,
        eof: bool,
        limits: &Limits,
    ) -> Result<BodyStep, CodecError> {
        match self {
            Self::Length { remaining } => {
                if *remaining == 0 {
                    return Ok(BodyStep::Done);
                }
                let available = input.front_slice().len();
                if available == 0 {
                    return if eof {
                        Err(CodecError::PrematureEof)
                    } else {
                        Ok(BodyStep::NeedMore)
                    };
                }
                let take = usize::try_from(*remaining).unwrap_or(usize::MAX).min(available);
                *remaining -= take as u64;
                Ok(BodyStep::Data(input.split_to_bytes(take)))
            }
            Self::UntilEof => {
                let available = input.front_slice().len();
                if available > 0 {
                    Ok(BodyStep::Data(input.split_to_bytes(available)))
                } else if eof {
                    Ok(BodyStep::Done)
                } else {
                    Ok(BodyStep::NeedMore)
                }
            }
            Self::Chunked(chunked) => chunked.decode(input, eof, limits),
        }
    }
}

// ANCHOR: chunked_states
/// Where the chunked decoder is, between any two bytes of input.
#[derive(Debug)]
enum ChunkState {
    /// Reading the hex digits of a chunk size.
    Size {
        size: u64,
        digits: u32,
    },
    /// Whitespace after the size: only `;` (an extension) may follow (BWS).
    SizeBws {
        size: u64,
    },
    /// Inside chunk extensions, up to CR.
    Ext {
        size: u64,
    },
    /// CR ending the size line seen: LF must follow.
    SizeLf {
        size: u64,
    },
    /// Chunk data, `remaining` bytes to go.
    Data {
        remaining: u64,
    },
    /// Chunk data done: CR must follow.
    DataCr,
    /// CR after the data seen: LF must follow.
    DataLf,
    /// After the last chunk (`0`): the trailer section, up to an empty line.
    Trailers(HeadScanner),
    Done,
}
// ANCHOR_END: chunked_states

#[derive(Debug)]
pub(crate) struct Chunked {
    state: ChunkState,
    /// Bytes of the current size line so far.
    line_len: usize,
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

impl Chunked {
    fn new() -> Self {
        Self { state: ChunkState::Size { size: 0, digits: 0 }, line_len: 0 }
    }

    // ANCHOR: chunked_decoder
    /// Advances over one byte of framing (size lines and data CRLFs).
    fn step(&mut self, b: u8, limits: &Limits) -> Result<(), CodecError> {
        use ChunkState::*;
        if matches!(self.state, Size { .. } | SizeBws { .. } | Ext { .. } | SizeLf { .. }) {
            self.line_len += 1;
            if self.line_len > limits.max_chunk_line_length {
                return Err(CodecError::ChunkLineTooLong);
            }
        }
        self.state = match self.state {
            Size { size, digits } => match (hex_value(b), b) {
                (Some(v), _) => {
                    let size = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(v))
                        .ok_or(CodecError::ChunkSizeOverflow)?;
                    Size { size, digits: digits + 1 }
                }
                (None, _) if digits == 0 => return Err(CodecError::InvalidChunkSize),
                (None, b'\r') => SizeLf { size },
                (None, b';') => Ext { size },
                (None, b' ' | b'\t') => SizeBws { size },
                (None, _) => return Err(CodecError::InvalidChunkSize),
            },
            SizeBws { size } => match b {
                b' ' | b'\t' => SizeBws { size },
                b';' => Ext { size },
                _ => return Err(CodecError::InvalidChunkSize),
            },
            // Extensions are passed over, not interpreted; they may hold any
            // visible character, space, tab or obs-text, never CR/LF/NUL/CTL.
            Ext { size } => match b {
                b'\r' => SizeLf { size },
                b'\t' | 0x20..=0x7e | 0x80..=0xff => Ext { size },
                _ => return Err(CodecError::InvalidChunkSize),
            },
            SizeLf { size } => {
                if b != b'\n' {
                    return Err(CodecError::InvalidChunkSize);
                }
                self.line_len = 0;
                if size == 0 {
                    Trailers(HeadScanner::for_trailers())
                } else {
                    Data { remaining: size }
                }
            }
            DataCr if b == b'\r' => DataLf,
            DataLf if b == b'\n' => Size { size: 0, digits: 0 },
            DataCr | DataLf => return Err(CodecError::InvalidChunkTerminator),
            // Not byte-driven: `decode` handles them before calling `step`.
            Data { .. } | Trailers(_) | Done => return Err(CodecError::Malformed),
        };
        Ok(())
    }

    fn decode(
        &mut self,
        input: &mut Buffer,
        eof: bool,
        limits: &Limits,
    ) -> Result<BodyStep, CodecError> {
        loop {
            match &mut self.state {
                ChunkState::Done => return Ok(BodyStep::Done),
                ChunkState::Data { remaining } => {
                    let available = input.front_slice().len();
                    if available == 0 {
                        return if eof {
                            Err(CodecError::PrematureEof)
                        } else {
                            Ok(BodyStep::NeedMore)
                        };
                    }
                    let take = usize::try_from(*remaining).unwrap_or(usize::MAX).min(available);
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    return Ok(BodyStep::Data(input.split_to_bytes(take)));
                }
                ChunkState::Trailers(scanner) => {
                    return match scanner.scan(input, limits.max_head_bytes())? {
                        Some(n) => {
                            let block = input.split_to_bytes(n);
                            self.state = ChunkState::Done;
                            if n == 2 {
                                Ok(BodyStep::Done)
                            } else {
                                Ok(BodyStep::Trailers(parse_trailers(block, limits)?))
                            }
                        }
                        None if eof => Err(CodecError::PrematureEof),
                        None => Ok(BodyStep::NeedMore),
                    };
                }
                _ => {
                    // Byte-driven framing: walk the front slice, then drop
                    // what was consumed in one go.
                    let slice = input.front_slice();
                    if slice.is_empty() {
                        return if eof {
                            Err(CodecError::PrematureEof)
                        } else {
                            Ok(BodyStep::NeedMore)
                        };
                    }
                    let mut used = 0;
                    for &b in slice {
                        used += 1;
                        self.step(b, limits)?;
                        if matches!(self.state, ChunkState::Data { .. } | ChunkState::Trailers(_)) {
                            break;
                        }
                    }
                    input.drain(used);
                }
            }
        }
    }
    // ANCHOR_END: chunked_decoder
}
