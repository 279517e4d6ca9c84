//! Finding the end of a head (or trailer section) in partial input.
//!
//! The scanner remembers how far it looked and in which state, so a head that
//! arrives one byte at a time is examined once overall, not once per byte.
//! It also enforces the line-ending rules httparse is lenient about: every CR
//! must be followed by LF and every LF preceded by CR (RFC 9112 §2.2 lets a
//! recipient accept a bare LF; a proxy must not, since the next hop may not).

use crate::buffer::Buffer;

use super::CodecError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside a line.
    Text,
    /// Just after a CR.
    Cr,
    /// Just after a CRLF (a line ended).
    CrLf,
    /// After CRLF then CR: one LF more ends the section.
    CrLfCr,
}

// ANCHOR: head_scanner
/// Incremental search for the empty line that ends a head.
#[derive(Debug, Clone)]
pub(crate) struct HeadScanner {
    /// Bytes of the input already examined; all of them belong to this head.
    scanned: usize,
    state: State,
}

impl HeadScanner {
    /// A scanner for a head (start line first).
    pub(crate) fn for_head() -> Self {
        Self { scanned: 0, state: State::Text }
    }

    /// A scanner for a trailer section, which may be empty: it follows the
    /// CRLF of the last-chunk line, so a lone CRLF ends it.
    pub(crate) fn for_trailers() -> Self {
        Self { scanned: 0, state: State::CrLf }
    }

    /// How many bytes have been examined so far.
    pub(crate) fn scanned(&self) -> usize {
        self.scanned
    }

    /// Looks at the bytes after those already scanned. `Ok(Some(n))`: the
    /// section is `input[..n]`, final CRLF included. `Ok(None)`: more input needed.
    pub(crate) fn scan(
        &mut self,
        input: &Buffer,
        limit: usize,
    ) -> Result<Option<usize>, CodecError> {
        let mut base = 0; // offset of the current slice in the input
        for slice in input.slices() {
            let slice_end = base + slice.len();
            if slice_end <= self.scanned {
                base = slice_end;
                continue;
            }
            let mut i = self.scanned - base;
            // Never look further than one byte past the limit.
            let stop = slice.len().min((limit + 1).saturating_sub(base));
            while i < stop {
                match self.state {
                    State::Text => match memchr::memchr2(b'\r', b'\n', &slice[i..stop]) {
                        None => i = stop,
                        Some(j) => {
                            if slice[i + j] == b'\n' {
                                return Err(CodecError::InvalidCharacters);
                            }
                            self.state = State::Cr;
                            i += j + 1;
                        }
                    },
                    State::Cr | State::CrLfCr => {
                        if slice[i] != b'\n' {
                            return Err(CodecError::InvalidCharacters);
                        }
                        i += 1;
                        if self.state == State::CrLfCr {
                            let end = base + i;
                            self.scanned = end;
                            return if end > limit {
                                Err(CodecError::HeadersTooLarge)
                            } else {
                                Ok(Some(end))
                            };
                        }
                        self.state = State::CrLf;
                    }
                    State::CrLf => {
                        self.state = match slice[i] {
                            b'\r' => State::CrLfCr,
                            b'\n' => return Err(CodecError::InvalidCharacters),
                            _ => State::Text,
                        };
                        i += 1;
                    }
                }
            }
            self.scanned = base + i;
            if self.scanned > limit {
                return Err(CodecError::HeadersTooLarge);
            }
            base = slice_end;
        }
        Ok(None)
    }
}
// ANCHOR_END: head_scanner

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(data: &[u8], limit: usize) -> Result<Option<usize>, CodecError> {
        HeadScanner::for_head().scan(&Buffer::from(data), limit)
    }

    #[test]
    fn finds_the_end_of_a_head() {
        assert_eq!(scan_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", 1000), Ok(Some(27)));
        assert_eq!(scan_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r", 1000), Ok(None));
    }

    #[test]
    fn byte_at_a_time_resumes() {
        let data = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
        let mut s = HeadScanner::for_head();
        let mut input = Buffer::new();
        let mut found = None;
        for &b in data {
            input.append(&[b]);
            if let Some(n) = s.scan(&input, 1000).unwrap() {
                found = Some(n);
                break;
            }
        }
        assert_eq!(found, Some(27));
    }

    #[test]
    fn bare_cr_and_lf_are_refused() {
        assert_eq!(
            scan_all(b"GET / HTTP/1.1\nHost: a\r\n\r\n", 1000),
            Err(CodecError::InvalidCharacters)
        );
        assert_eq!(
            scan_all(b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 1000),
            Err(CodecError::InvalidCharacters)
        );
        assert_eq!(scan_all(b"GET / HTTP/1.1\r\n\n", 1000), Err(CodecError::InvalidCharacters));
        assert_eq!(scan_all(b"GET / HTTP/1.1\r\n\rX", 1000), Err(CodecError::InvalidCharacters));
    }

    #[test]
    fn the_limit_applies_before_the_end_is_seen() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(scan_all(head, 27), Ok(Some(27)));
        assert_eq!(scan_all(head, 26), Err(CodecError::HeadersTooLarge));
        assert_eq!(scan_all(&[b'a'; 100], 50), Err(CodecError::HeadersTooLarge));
    }

    #[test]
    fn empty_trailers_end_at_the_first_crlf() {
        let mut s = HeadScanner::for_trailers();
        assert_eq!(s.scan(&Buffer::from(&b"\r\nnext"[..]), 100), Ok(Some(2)));
    }
}
