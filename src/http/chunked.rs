//! Streaming chunked-body scanner (RFC 9112 §7.1): lets the proxy find the
//! chunk data (which it re-frames) and exactly where the body ends, with
//! strict validation so the upstream can never see a different boundary.

use bytes::{BufMut, BytesMut};

use super::{is_field_vchar, is_tchar};

/// The terminating zero-size chunk with an empty trailer section, for when
/// the proxy generates chunked output itself (re-chunking).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Longest accepted chunk-size line (size + extensions), so extensions
/// cannot be used to make us scan unbounded input.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Largest accepted trailer section in bytes.
pub const MAX_TRAILER_BYTES: usize = 16384;

/// Most hex digits accepted in a chunk size (16 fit exactly in a u64).
const MAX_SIZE_DIGITS: u8 = 16;

/// Result of one [`ChunkedScanner::feed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Bytes from the start of the input that belong to the body (its data
    /// is reported by [`ChunkedScanner::feed_data`]).
    pub consumed: usize,
    /// The whole body (including trailers and final CRLF) has been seen;
    /// input after `consumed` belongs to the next message.
    pub done: bool,
}

/// Why a chunked body was refused; the connection must be closed (400 to a
/// client, 502 for an upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Chunk size is not 1*HEXDIG or has more than 16 digits.
    #[error("invalid chunk size")]
    InvalidSize,
    /// Malformed chunk extension.
    #[error("invalid chunk extension")]
    InvalidExtension,
    /// Chunk-size line longer than [`MAX_CHUNK_LINE`].
    #[error("chunk size line too long")]
    LineTooLong,
    /// A CR not followed by LF, a bare LF, or chunk data not followed by CRLF.
    #[error("invalid line ending in chunked body")]
    BadLineEnding,
    /// Malformed trailer field.
    #[error("invalid trailer field")]
    InvalidTrailer,
    /// Trailer section larger than [`MAX_TRAILER_BYTES`].
    #[error("trailer section too large")]
    TrailerTooLarge,
}

impl ChunkError {
    /// Short static reason for the log.
    pub fn reason(&self) -> &'static str {
        match self {
            ChunkError::InvalidSize => "invalid chunk size",
            ChunkError::InvalidExtension => "invalid chunk extension",
            ChunkError::LineTooLong => "chunk size line too long",
            ChunkError::BadLineEnding => "invalid line ending in chunked body",
            ChunkError::InvalidTrailer => "invalid trailer field",
            ChunkError::TrailerTooLarge => "trailer section too large",
        }
    }
}

/// Scanner states; each byte of input advances exactly one state step
/// (except chunk data, which is skipped in bulk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size.
    Size,
    /// Whitespace after the size: only `;` (an extension) may follow.
    SizeWs,
    /// After `;` (and BWS): expecting an extension name.
    ExtNameStart,
    /// Inside an extension name.
    ExtName,
    /// Whitespace after an extension name: `=`, `;` or CR may follow.
    ExtNameWs,
    /// After `=` (and BWS): expecting a token or quoted-string.
    ExtValueStart,
    /// Inside a token value.
    ExtToken,
    /// Inside a quoted-string value.
    ExtQuoted,
    /// After a backslash in a quoted-string.
    ExtQuotedEscape,
    /// After a value: BWS, `;` or CR.
    ExtAfterValue,
    /// Got CR ending the size line; need LF.
    SizeLf,
    /// Inside chunk data; `remaining` bytes left.
    Data,
    /// Data finished; need CR.
    DataCr,
    /// Data CR seen; need LF.
    DataLf,
    /// Start of a trailer line (or the final CRLF).
    TrailerStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value.
    TrailerValue,
    /// CR ending a trailer field; need LF.
    TrailerLf,
    /// CR of the final empty line; need LF.
    FinalLf,
    /// Body complete.
    Done,
}

/// Streaming validator for a chunked body. Feed it whatever slices arrive;
/// it never buffers and handles any split of the input.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    size: u64,
    digits: u8,
    remaining: u64,
    line_len: usize,
    trailer_len: usize,
    decoded: u64,
    error: Option<ChunkError>,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedScanner {
    /// A scanner positioned at the start of a chunked body.
    pub fn new() -> ChunkedScanner {
        ChunkedScanner {
            state: State::Size,
            size: 0,
            digits: 0,
            remaining: 0,
            line_len: 0,
            trailer_len: 0,
            decoded: 0,
            error: None,
        }
    }

    /// Total chunk-data bytes seen so far, for `client_max_body_size`.
    pub fn decoded_len(&self) -> u64 {
        self.decoded
    }

    /// Whether the terminating chunk, trailers and final CRLF were seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `input`; see [`Scan`]. After an error every later call returns
    /// the same error, so a caller cannot accidentally resume.
    pub fn feed(&mut self, input: &[u8]) -> Result<Scan, ChunkError> {
        self.feed_data(input, |_| {})
    }

    /// Like [`ChunkedScanner::feed`], and also reports each run of chunk *data* in `input` as
    /// a `start..end` range, so a caller can de-chunk (for an HTTP/1.0 client) without a
    /// second parser.
    pub fn feed_data(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(std::ops::Range<usize>),
    ) -> Result<Scan, ChunkError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut pos = 0;
        while pos < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let n = self.skip_data(&input[pos..]);
                if n > 0 {
                    on_data(pos..pos + n);
                }
                pos += n;
                continue;
            }
            if let Err(e) = self.step(input[pos]) {
                self.error = Some(e);
                return Err(e);
            }
            pos += 1;
        }
        Ok(Scan {
            consumed: pos,
            done: self.state == State::Done,
        })
    }

    /// Consumes as much chunk data as is available; returns bytes taken.
    fn skip_data(&mut self, input: &[u8]) -> usize {
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        self.remaining -= take as u64;
        self.decoded = self.decoded.saturating_add(take as u64);
        if self.remaining == 0 {
            self.state = State::DataCr;
        }
        take
    }

    /// Advances the state machine by one byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        match self.state {
            State::Size
            | State::SizeWs
            | State::ExtNameStart
            | State::ExtName
            | State::ExtNameWs
            | State::ExtValueStart
            | State::ExtToken
            | State::ExtQuoted
            | State::ExtQuotedEscape
            | State::ExtAfterValue => self.size_line(b),
            State::SizeLf => self.size_lf(b),
            State::DataCr => self.expect(b, b'\r', State::DataLf),
            State::DataLf => self.expect(b, b'\n', State::Size),
            State::TrailerStart
            | State::TrailerName
            | State::TrailerValue
            | State::TrailerLf
            | State::FinalLf => self.trailer(b),
            State::Data | State::Done => Ok(()),
        }
    }

    /// Requires byte `want` and moves to `next`.
    fn expect(&mut self, b: u8, want: u8, next: State) -> Result<(), ChunkError> {
        if b != want {
            return Err(ChunkError::BadLineEnding);
        }
        self.state = next;
        Ok(())
    }

    /// Handles one byte of the chunk-size line (size and extensions).
    fn size_line(&mut self, b: u8) -> Result<(), ChunkError> {
        self.line_len += 1;
        if self.line_len > MAX_CHUNK_LINE {
            return Err(ChunkError::LineTooLong);
        }
        if b == b'\r' {
            return self.end_size_line();
        }
        match self.state {
            State::Size => self.size_digit(b),
            _ => self.extension(b),
        }
    }

    /// CR on the size line: valid only where an extension may end.
    fn end_size_line(&mut self) -> Result<(), ChunkError> {
        match self.state {
            State::Size if self.digits > 0 => {}
            State::ExtName | State::ExtNameWs | State::ExtToken | State::ExtAfterValue => {}
            State::Size => return Err(ChunkError::InvalidSize),
            _ => return Err(ChunkError::InvalidExtension),
        }
        self.state = State::SizeLf;
        Ok(())
    }

    /// A byte while reading the hex size.
    fn size_digit(&mut self, b: u8) -> Result<(), ChunkError> {
        if let Some(d) = hex_value(b) {
            if self.digits >= MAX_SIZE_DIGITS {
                return Err(ChunkError::InvalidSize);
            }
            self.digits += 1;
            self.size = (self.size << 4) | u64::from(d);
            return Ok(());
        }
        if self.digits == 0 {
            return Err(ChunkError::InvalidSize);
        }
        match b {
            b' ' | b'\t' => self.state = State::SizeWs,
            b';' => self.state = State::ExtNameStart,
            b'\n' => return Err(ChunkError::BadLineEnding),
            _ => return Err(ChunkError::InvalidSize),
        }
        Ok(())
    }

    /// A byte of the extension grammar:
    /// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
    fn extension(&mut self, b: u8) -> Result<(), ChunkError> {
        let ws = b == b' ' || b == b'\t';
        let next = match (self.state, b) {
            (State::SizeWs | State::ExtAfterValue | State::ExtNameWs, _) if ws => self.state,
            (State::SizeWs | State::ExtAfterValue | State::ExtNameWs | State::ExtName, b';') => {
                State::ExtNameStart
            }
            (State::ExtToken, b';') => State::ExtNameStart,
            (State::ExtNameStart, _) if ws => State::ExtNameStart,
            (State::ExtNameStart | State::ExtName, _) if is_tchar(b) => State::ExtName,
            (State::ExtName, _) if ws => State::ExtNameWs,
            (State::ExtName | State::ExtNameWs, b'=') => State::ExtValueStart,
            (State::ExtValueStart, _) if ws => State::ExtValueStart,
            (State::ExtValueStart, b'"') => State::ExtQuoted,
            (State::ExtValueStart | State::ExtToken, _) if is_tchar(b) => State::ExtToken,
            (State::ExtToken, _) if ws => State::ExtAfterValue,
            (State::ExtQuoted, b'"') => State::ExtAfterValue,
            (State::ExtQuoted, b'\\') => State::ExtQuotedEscape,
            (State::ExtQuoted, _) if is_qdtext(b) => State::ExtQuoted,
            (State::ExtQuotedEscape, _) if is_field_vchar(b) => State::ExtQuoted,
            (_, b'\n') => return Err(ChunkError::BadLineEnding),
            _ => return Err(ChunkError::InvalidExtension),
        };
        self.state = next;
        Ok(())
    }

    /// LF ending the size line: start data, or trailers for the last chunk.
    fn size_lf(&mut self, b: u8) -> Result<(), ChunkError> {
        if b != b'\n' {
            return Err(ChunkError::BadLineEnding);
        }
        self.line_len = 0;
        self.digits = 0;
        if self.size == 0 {
            self.state = State::TrailerStart;
        } else {
            self.remaining = self.size;
            self.size = 0;
            self.state = State::Data;
        }
        Ok(())
    }

    /// One byte of the trailer section: header-like fields, then CRLF.
    fn trailer(&mut self, b: u8) -> Result<(), ChunkError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER_BYTES {
            return Err(ChunkError::TrailerTooLarge);
        }
        self.state = match (self.state, b) {
            (State::TrailerStart, b'\r') => State::FinalLf,
            (State::FinalLf, b'\n') => State::Done,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::FinalLf | State::TrailerLf, _) => return Err(ChunkError::BadLineEnding),
            (State::TrailerStart | State::TrailerName, _) if is_tchar(b) => State::TrailerName,
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, _) if is_field_vchar(b) => State::TrailerValue,
            (_, b'\n' | b'\r') => return Err(ChunkError::BadLineEnding),
            _ => return Err(ChunkError::InvalidTrailer),
        };
        Ok(())
    }
}

/// qdtext (RFC 9110 §5.6.4): HTAB, SP, VCHAR except `"` and `\`, obs-text.
fn is_qdtext(b: u8) -> bool {
    b != b'"' && b != b'\\' && is_field_vchar(b)
}

/// Value of one hex digit.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Writes a chunk-size line (`<hex len>\r\n`) for generated chunked output;
/// the caller then writes the data and `\r\n`. Never call with 0 (use
/// [`LAST_CHUNK`] to terminate).
pub fn encode_chunk_header(len: usize, out: &mut BytesMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
    out.put_slice(b"\r\n");
}

/// Counts down a Content-Length body so the caller knows how much of each
/// read belongs to the current message (the rest is pipelined data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthCounter {
    remaining: u64,
}

impl LengthCounter {
    /// Starts counting a body of `len` bytes.
    pub fn new(len: u64) -> LengthCounter {
        LengthCounter { remaining: len }
    }

    /// Body bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Accounts for `available` newly read bytes; same meaning as
    /// [`ChunkedScanner::feed`]'s result.
    pub fn feed(&mut self, available: usize) -> Scan {
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(available);
        self.remaining -= take as u64;
        Scan {
            consumed: take,
            done: self.remaining == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_data_yields_exactly_the_decoded_body_at_any_split() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 1..body.len() {
            let mut sc = ChunkedScanner::new();
            let mut out = Vec::new();
            let mut done = false;
            for part in [&body[..split], &body[split..]] {
                if done {
                    break;
                }
                let scan = sc
                    .feed_data(part, |r| out.extend_from_slice(&part[r]))
                    .unwrap();
                done = scan.done;
            }
            assert!(done);
            assert_eq!(out, b"hello world", "split {split}");
        }
    }
    use crate::http::test_util::Rng;

    /// Feeds `input` in the given piece sizes; returns (total consumed, done).
    fn feed_split(
        input: &[u8],
        sizes: &mut dyn FnMut() -> usize,
    ) -> Result<(usize, bool, u64), ChunkError> {
        let mut s = ChunkedScanner::new();
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + sizes().max(1)).min(input.len());
            let scan = s.feed(&input[pos..end])?;
            pos += scan.consumed;
            if scan.done {
                return Ok((pos, true, s.decoded_len()));
            }
            assert_eq!(pos, end, "scanner must consume everything until done");
        }
        Ok((pos, false, s.decoded_len()))
    }

    const VALID: &[u8] =
        b"5;a=b;c=\"q\\\"x\" ; d\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\nY:\r\n\r\nGET /next";

    #[test]
    fn whole_and_every_split() {
        let body_len = VALID.len() - b"GET /next".len();
        assert_eq!(
            feed_split(VALID, &mut || usize::MAX),
            Ok((body_len, true, 15))
        );
        assert_eq!(feed_split(VALID, &mut || 1), Ok((body_len, true, 15)));
        let mut rng = Rng(42);
        for _ in 0..500 {
            assert_eq!(
                feed_split(VALID, &mut || rng.below(9)),
                Ok((body_len, true, 15))
            );
        }
    }

    #[test]
    fn minimal_and_partial() {
        assert_eq!(feed_split(LAST_CHUNK, &mut || 100), Ok((5, true, 0)));
        let mut s = ChunkedScanner::new();
        assert_eq!(
            s.feed(b"3\r\nab"),
            Ok(Scan {
                consumed: 5,
                done: false
            })
        );
        assert_eq!(
            s.feed(b"c\r\n0\r\n"),
            Ok(Scan {
                consumed: 6,
                done: false
            })
        );
        assert_eq!(
            s.feed(b"\r\nrest"),
            Ok(Scan {
                consumed: 2,
                done: true
            })
        );
        assert!(s.is_done());
        assert_eq!(
            s.feed(b"more"),
            Ok(Scan {
                consumed: 0,
                done: true
            })
        );
    }

    #[test]
    fn large_sizes() {
        let mut s = ChunkedScanner::new();
        assert!(s.feed(b"FFFFFFFFFFFFFFFF\r\n").is_ok());
        assert_eq!(s.feed(&[0u8; 100]).map(|x| x.consumed), Ok(100));
        assert_eq!(s.decoded_len(), 100);
        let mut s = ChunkedScanner::new();
        assert_eq!(
            s.feed(b"00000000000000001\r\n"),
            Err(ChunkError::InvalidSize)
        );
    }

    #[test]
    fn rejects_malformed() {
        let cases: &[(&[u8], ChunkError)] = &[
            (b"+5\r\nhello\r\n0\r\n\r\n", ChunkError::InvalidSize),
            (b"-5\r\n", ChunkError::InvalidSize),
            (b" 5\r\n", ChunkError::InvalidSize),
            (b"\r\n", ChunkError::InvalidSize),
            (b"5 \r\nhello\r\n", ChunkError::InvalidExtension),
            (b"0x5\r\n", ChunkError::InvalidSize),
            (b"5\nhello\r\n", ChunkError::BadLineEnding),
            (b"5\rhello\r\n", ChunkError::BadLineEnding),
            (b"5\r\nhelloX\r\n", ChunkError::BadLineEnding),
            (b"5\r\nhello\n0\r\n\r\n", ChunkError::BadLineEnding),
            (b"5;\r\nhello\r\n", ChunkError::InvalidExtension),
            (b"5;a=\r\nhello\r\n", ChunkError::InvalidExtension),
            (b"5;a=\"x\r\nhello\r\n", ChunkError::InvalidExtension),
            (b"5;a=b c\r\n", ChunkError::InvalidExtension),
            (b"5;a\x00\r\n", ChunkError::InvalidExtension),
            (b"0\r\nX-T 1\r\n\r\n", ChunkError::InvalidTrailer),
            (b"0\r\n X-T: 1\r\n\r\n", ChunkError::InvalidTrailer),
            (b"0\r\nX-T: 1\n\r\n", ChunkError::BadLineEnding),
            (b"0\r\nX-T: a\x01\r\n\r\n", ChunkError::InvalidTrailer),
            (b"0\r\n\n", ChunkError::BadLineEnding),
            (b"0\r\n\rX", ChunkError::BadLineEnding),
        ];
        for (input, want) in cases {
            for split in [usize::MAX, 1] {
                assert_eq!(
                    feed_split(input, &mut || split).map(|_| ()),
                    Err(*want),
                    "{:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn caps() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE));
        assert_eq!(
            feed_split(&line, &mut || 7).map(|_| ()),
            Err(ChunkError::LineTooLong)
        );
        let mut t = b"0\r\n".to_vec();
        for _ in 0..2000 {
            t.extend_from_slice(b"X-Trailer: value\r\n");
        }
        assert_eq!(
            feed_split(&t, &mut || 64).map(|_| ()),
            Err(ChunkError::TrailerTooLarge)
        );
    }

    #[test]
    fn error_is_sticky() {
        let mut s = ChunkedScanner::new();
        assert_eq!(s.feed(b"z"), Err(ChunkError::InvalidSize));
        assert_eq!(s.feed(b"0\r\n\r\n"), Err(ChunkError::InvalidSize));
        assert!(!ChunkError::InvalidSize.reason().is_empty());
    }

    #[test]
    fn encode_header() {
        let mut out = BytesMut::new();
        encode_chunk_header(1, &mut out);
        encode_chunk_header(0x1a2b, &mut out);
        encode_chunk_header(usize::MAX, &mut out);
        let want = format!("1\r\n1a2b\r\n{:x}\r\n", usize::MAX);
        assert_eq!(&out[..], want.as_bytes());
        let mut generated = BytesMut::new();
        encode_chunk_header(3, &mut generated);
        generated.extend_from_slice(b"abc\r\n");
        generated.extend_from_slice(LAST_CHUNK);
        assert_eq!(
            feed_split(&generated, &mut || 2),
            Ok((generated.len(), true, 3))
        );
    }

    #[test]
    fn length_counter() {
        let mut c = LengthCounter::new(10);
        assert_eq!(
            c.feed(4),
            Scan {
                consumed: 4,
                done: false
            }
        );
        assert_eq!(c.remaining(), 6);
        assert_eq!(
            c.feed(100),
            Scan {
                consumed: 6,
                done: true
            }
        );
        assert_eq!(
            c.feed(5),
            Scan {
                consumed: 0,
                done: true
            }
        );
        assert_eq!(
            LengthCounter::new(0).feed(0),
            Scan {
                consumed: 0,
                done: true
            }
        );
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut rng = Rng(7);
        for i in 0..6000 {
            let input = if i % 2 == 0 {
                let len = rng.below(120);
                rng.bytes(len)
            } else {
                rng.mutate(VALID)
            };
            let mut s = ChunkedScanner::new();
            let mut pos = 0;
            while pos < input.len() {
                let end = (pos + 1 + rng.below(6)).min(input.len());
                match s.feed(&input[pos..end]) {
                    Ok(scan) => {
                        assert!(scan.consumed <= end - pos);
                        pos += scan.consumed;
                        if scan.done {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }
}
