//! Pure HTTP/1.1 codec for the proxy: no I/O, no allocation per header.
//!
//! The proxy loop reads bytes into a reused buffer, asks [`parse_request`] or
//! [`parse_response`] whether a complete head is present, writes a rewritten
//! head with the [`rewrite`] functions and then streams the body through,
//! using [`BodyFraming`] plus [`ChunkedScanner`] / [`LengthCounter`] to know
//! exactly where the body ends. Parsed heads hold [`Span`]s (offsets into the
//! caller's buffer) instead of copies, so a head is only valid together with
//! the buffer it was parsed from.

pub mod canned;
pub mod chunked;
pub mod fuzz;
pub mod request;
pub mod response;
pub mod rewrite;
pub mod upgrade;

pub use canned::{reason_phrase, write_simple, Canned, CONTINUE_100};
pub use chunked::{
    encode_chunk_header, ChunkError, ChunkedScanner, LengthCounter, Scan, LAST_CHUNK,
};
pub use request::{parse_request, Method, RequestError, RequestHead};
pub use response::{parse_response, Interim, ResponseError, ResponseHead};
pub use rewrite::{
    write_client_response, write_upstream_request, ClientResponseParams, UpstreamRequestParams,
};

/// Size limits shared by the request and response head parsers, so that a
/// peer cannot make the proxy buffer an unbounded head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted head (request/status line + headers + final CRLF): nginx's
    /// `large_client_header_buffers` number x size.
    pub max_head_bytes: usize,
    /// Largest accepted number of header fields.
    pub max_headers: usize,
    /// Longest line (request line or one header field, with its line end): one of nginx's
    /// large header buffers. A longer request line is 414, a longer field 400.
    pub max_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // nginx's `large_client_header_buffers 4 8k`.
        Limits {
            max_head_bytes: 4 * 8192,
            max_headers: 1000,
            max_line_bytes: 8192,
        }
    }
}

/// A byte range into the buffer a head was parsed from; used instead of
/// owned strings so parsing never allocates per header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// Builds a span; kept public so callers and tests can construct ranges.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// Returns the bytes of this span in `buf`, or an empty slice when `buf`
    /// is not the buffer the span came from (never panics).
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// Length in bytes, useful for size accounting.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span is empty (e.g. an empty header value).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Computes the span of `sub`, a slice borrowed from `buf`, by pointer
    /// arithmetic (httparse hands out sub-slices, we keep offsets).
    pub(crate) fn of(buf: &[u8], sub: &[u8]) -> Span {
        let start = (sub.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
        Span::new(start, start + sub.len())
    }
}

/// One header field as name/value spans; the value has surrounding
/// whitespace already trimmed by httparse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderSpan {
    /// Field name as sent (original casing kept for pass-through).
    pub name: Span,
    /// Field value.
    pub value: Span,
}

/// How the message body is delimited (RFC 9112 §6.3), which tells the proxy
/// how many bytes to stream after the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body follows the head.
    None,
    /// Exactly this many body bytes follow (count them down, see [`LengthCounter`]).
    Length(u64),
    /// A chunked body follows; feed it through a [`ChunkedScanner`].
    Chunked,
    /// Responses only: the body runs until the upstream closes the connection.
    UntilClose,
}

/// Framing/smuggling violations shared by requests and responses; the
/// request and response error types map them to their own status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// RFC 9112 §6.1: Content-Length together with Transfer-Encoding is a
    /// classic smuggling vector; we reject instead of preferring TE.
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndChunked,
    /// RFC 9110 §8.6 allows merging identical duplicates, nginx rejects
    /// them; so do we (RFC 9112 §6.3 item 5).
    #[error("duplicate Content-Length")]
    DuplicateLength,
    /// RFC 9112 §6.3 item 5: a Content-Length that is not 1*DIGIT (or
    /// overflows) makes the framing unrecoverable.
    #[error("invalid Content-Length")]
    InvalidLength,
    /// More than one Transfer-Encoding field line (nginx: duplicate header).
    #[error("duplicate Transfer-Encoding")]
    DuplicateTransferEncoding,
    /// Any Transfer-Encoding other than exactly `chunked` (nginx answers 501).
    #[error("unsupported Transfer-Encoding")]
    UnsupportedTransferEncoding,
    /// RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means the
    /// framing is faulty.
    #[error("Transfer-Encoding in HTTP/1.0 message")]
    TransferEncodingOnHttp10,
}

/// Facts gathered in one pass over the header list, shared by the request
/// and response parsers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HeadFacts {
    pub content_length: Option<u64>,
    pub chunked: bool,
    pub conn_close: bool,
    pub conn_keep_alive: bool,
    pub host: Option<Span>,
    pub host_count: usize,
    pub expect_continue: bool,
}

/// Walks the headers once and interprets framing, connection and host
/// fields, rejecting ambiguous framing (RFC 9112 §6.1 and §6.3).
pub(crate) fn analyze_headers(
    buf: &[u8],
    headers: &[HeaderSpan],
    version_minor: u8,
) -> Result<HeadFacts, FramingError> {
    let mut facts = HeadFacts::default();
    let mut te_seen = false;
    for h in headers {
        let name = h.name.get(buf);
        let value = h.value.get(buf);
        if name.eq_ignore_ascii_case(b"content-length") {
            if facts.content_length.is_some() {
                return Err(FramingError::DuplicateLength);
            }
            facts.content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if te_seen {
                return Err(FramingError::DuplicateTransferEncoding);
            }
            te_seen = true;
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(FramingError::UnsupportedTransferEncoding);
            }
            facts.chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in comma_list(value) {
                facts.conn_close |= token.eq_ignore_ascii_case(b"close");
                facts.conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            facts.host_count += 1;
            facts.host = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"expect") {
            facts.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    if te_seen && version_minor == 0 {
        return Err(FramingError::TransferEncodingOnHttp10);
    }
    if te_seen && facts.content_length.is_some() {
        return Err(FramingError::LengthAndChunked);
    }
    Ok(facts)
}

/// Parses `1*DIGIT` strictly: no sign, no whitespace, no list, no overflow.
pub(crate) fn parse_content_length(value: &[u8]) -> Result<u64, FramingError> {
    if value.is_empty() || value.len() > 19 {
        return Err(FramingError::InvalidLength);
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return Err(FramingError::InvalidLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(FramingError::InvalidLength)?;
    }
    Ok(n)
}

/// Splits a comma-separated header list into trimmed, non-empty elements.
pub(crate) fn comma_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

/// Trims optional whitespace (SP / HTAB) on both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Converts httparse's header slice into spans relative to `buf`.
pub(crate) fn header_spans(buf: &[u8], headers: &[httparse::Header<'_>]) -> Vec<HeaderSpan> {
    headers
        .iter()
        .map(|h| HeaderSpan {
            name: Span::of(buf, h.name.as_bytes()),
            value: Span::of(buf, h.value),
        })
        .collect()
}

/// RFC 9112 §2.2: a bare CR is invalid and we also refuse bare LF line
/// endings (which httparse tolerates) so our view of the head can never
/// differ from a stricter or laxer peer's. Also refuses NUL anywhere.
pub(crate) fn has_bad_line_endings(head: &[u8]) -> bool {
    // Only CR, LF and NUL matter: jump between them (SIMD) instead of looking at every byte,
    // which was a twentieth of the instructions of a request proxied over HTTP/2.
    for at in memchr::memchr3_iter(b'\r', b'\n', 0, head) {
        let ok = match head[at] {
            // A CR that ends the slice is judged with what follows, as a byte loop would.
            b'\r' => head.get(at + 1).is_none_or(|&next| next == b'\n'),
            b'\n' => at > 0 && head[at - 1] == b'\r',
            _ => false,
        };
        if !ok {
            return true;
        }
    }
    false
}

/// Token characters (RFC 9110 §5.6.2), used for methods, header names and
/// chunk extension names.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Field-value bytes (RFC 9110 §5.5): VCHAR, obs-text, SP and HTAB.
pub(crate) fn is_field_vchar(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// Header fields parsed into a stack array; heads allowed more are parsed into a vector.
pub(crate) const HEADERS_ON_STACK: usize = 256;

/// Runs `f` with an uninitialized header array of exactly `max_headers` entries (httparse
/// fills what it finds): on the stack for the usual sizes, on the heap only beyond
/// [`HEADERS_ON_STACK`]. Uninitialized, because initializing the array cost more than
/// parsing a small head.
pub(crate) fn with_header_array<'b, R>(
    max_headers: usize,
    f: impl FnOnce(&mut [std::mem::MaybeUninit<httparse::Header<'b>>]) -> R,
) -> R {
    if max_headers <= HEADERS_ON_STACK {
        let mut arr = [const { std::mem::MaybeUninit::uninit() }; HEADERS_ON_STACK];
        f(&mut arr[..max_headers])
    } else {
        let mut v = Vec::with_capacity(max_headers);
        f(&mut v.spare_capacity_mut()[..max_headers])
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Tiny deterministic PRNG (xorshift64*) so fuzz-style tests need no crate.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }

        /// Random bytes biased towards HTTP-significant characters.
        pub fn bytes(&mut self, len: usize) -> Vec<u8> {
            const ALPHABET: &[u8] =
                b"\r\n:; =,\t\"\\0123456789abcdefABCDEF/ HTTP/1.1GETchunked\x00\x7f\xff";
            (0..len)
                .map(|_| {
                    if self.below(4) == 0 {
                        self.next() as u8
                    } else {
                        ALPHABET[self.below(ALPHABET.len())]
                    }
                })
                .collect()
        }

        /// Mutates `input` by flipping, inserting, deleting or duplicating bytes.
        pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
            let mut v = input.to_vec();
            for _ in 0..=self.below(4) {
                let pos = self.below(v.len() + 1);
                match self.below(4) {
                    0 if pos < v.len() => v[pos] = self.next() as u8,
                    1 => {
                        let b = self.bytes(1)[0];
                        v.insert(pos, b)
                    }
                    2 if pos < v.len() => {
                        v.remove(pos);
                    }
                    _ => {
                        let end = (pos + self.below(8)).min(v.len());
                        let dup = v[pos..end].to_vec();
                        v.splice(pos..pos, dup);
                    }
                }
            }
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_strict() {
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b"0012"), Ok(12));
        assert_eq!(
            parse_content_length(b"18446744073709551615"),
            Err(FramingError::InvalidLength)
        );
        assert_eq!(
            parse_content_length(b"9999999999999999999"),
            Ok(9_999_999_999_999_999_999)
        );
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b"1 ",
            b" 1",
            b"1,1",
            b"0x10",
            b"1e3",
        ] {
            assert_eq!(parse_content_length(bad), Err(FramingError::InvalidLength));
        }
    }

    #[test]
    fn trim_and_list() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        let v: Vec<&[u8]> = comma_list(b" close ,, Keep-Alive,").collect();
        assert_eq!(v, vec![&b"close"[..], b"Keep-Alive"]);
    }

    #[test]
    fn line_endings_agree_with_a_byte_by_byte_check() {
        fn byte_loop(head: &[u8]) -> bool {
            let mut prev = 0u8;
            for &b in head {
                if b == 0 || (b == b'\n' && prev != b'\r') || (prev == b'\r' && b != b'\n') {
                    return true;
                }
                prev = b;
            }
            false
        }
        let mut rng = test_util::Rng(0x5eed_1e55);
        for _ in 0..20_000 {
            let len = rng.below(64);
            let head = rng.bytes(len);
            assert_eq!(has_bad_line_endings(&head), byte_loop(&head), "{head:?}");
        }
    }

    #[test]
    fn line_endings() {
        assert!(!has_bad_line_endings(b"GET / HTTP/1.1\r\nA: b\r\n\r\n"));
        assert!(has_bad_line_endings(b"GET / HTTP/1.1\nA: b\r\n\r\n"));
        assert!(has_bad_line_endings(b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"));
        assert!(has_bad_line_endings(b"GET / HTTP/1.1\r\nA: \0\r\n\r\n"));
    }

    #[test]
    fn span_get_never_panics() {
        let s = Span::new(5, 10);
        assert_eq!(s.get(b"abc"), b"");
        assert_eq!(Span::new(1, 3).get(b"abcd"), b"bc");
        assert_eq!(Span::new(3, 1).len(), 0);
    }
}
