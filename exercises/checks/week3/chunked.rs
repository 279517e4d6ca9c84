//! Checks of `chunked`.

use week3_filters::buffer::Buffer;

use super::week3::chunked::{ChunkedDecoder, ChunkedError};

const MESSAGE: &[u8] =
    b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nGET /next HTTP/1.1\r\n";

fn decode_all(wire: &[u8], max: u64) -> (Result<bool, ChunkedError>, Vec<u8>, Vec<u8>) {
    let mut input = Buffer::new();
    input.append(wire);
    let mut body = Buffer::new();
    let r = ChunkedDecoder::new(max).decode(&mut input, &mut body);
    (r, body.to_vec(), input.to_vec())
}

checks! {
    fn decodes_a_whole_body_and_leaves_the_next_request() {
        let (r, body, rest) = decode_all(MESSAGE, 1 << 20);
        assert_eq!(r, Ok(true));
        assert_eq!(body, b"hello, world");
        assert_eq!(rest, b"GET /next HTTP/1.1\r\n", "pipelined bytes stay in the input");
    }

    fn accepts_the_body_cut_at_every_byte() {
        let end = MESSAGE.len() - b"GET /next HTTP/1.1\r\n".len();
        for cut in 0..end {
            let mut d = ChunkedDecoder::new(1 << 20);
            let (mut input, mut body) = (Buffer::new(), Buffer::new());
            input.append(&MESSAGE[..cut]);
            assert_eq!(d.decode(&mut input, &mut body), Ok(false), "cut at {cut}");
            input.append(&MESSAGE[cut..end]);
            assert_eq!(d.decode(&mut input, &mut body), Ok(true), "cut at {cut}");
            assert_eq!(body.to_vec(), b"hello, world", "cut at {cut}");
            assert!(input.is_empty());
        }
        // One byte at a time.
        let mut d = ChunkedDecoder::new(1 << 20);
        let (mut input, mut body) = (Buffer::new(), Buffer::new());
        let mut done = false;
        for &b in &MESSAGE[..end] {
            assert!(!done, "finished early");
            input.append(&[b]);
            done = d.decode(&mut input, &mut body).expect("valid");
        }
        assert!(done);
        assert_eq!(body.to_vec(), b"hello, world");
    }

    fn rejects_malformed_bodies() {
        let cases: [(&[u8], ChunkedError); 7] = [
            (b"zz\r\n", ChunkedError::InvalidSize),
            (b"\r\n", ChunkedError::InvalidSize),
            (b"-1\r\n", ChunkedError::InvalidSize),
            (b"1ffffffffffffffff\r\n", ChunkedError::InvalidSize),
            (b"5\r\nhelloXX", ChunkedError::MissingCrlf),
            (b"5\nhello\r\n", ChunkedError::MissingCrlf),
            (b"0\r\nx: 1\n\r\n", ChunkedError::MissingCrlf),
        ];
        for (wire, expected) in cases {
            assert_eq!(decode_all(wire, 1 << 20).0, Err(expected), "{:?}", String::from_utf8_lossy(wire));
        }
        assert_eq!(decode_all(b"400\r\n", 1023).0, Err(ChunkedError::TooLarge));
        assert_eq!(decode_all(b"400\r\n", 1024).0, Ok(false));
        let long = vec![b'1'; 5000];
        assert_eq!(decode_all(&long, 1 << 20).0, Err(ChunkedError::LineTooLong));
    }
}
