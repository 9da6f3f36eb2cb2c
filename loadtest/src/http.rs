//! HTTP/1.1 response parser: incremental (bytes are pushed in as they arrive, complete
//! responses come out), so one event loop can drive many connections. Parses heads with
//! httparse and consumes Content-Length, chunked and read-until-close bodies completely,
//! without keeping body bytes around. `read_response` wraps it for blocking readers.

use crate::recv::RecvBuf;
use std::io;

const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// Initial buffer; bodies are consumed as they arrive, so only heads and chunk lines need room.
const INITIAL_BUF: usize = 16 * 1024;

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed before the response was complete.
    Closed,
    /// Malformed or oversized response.
    Bad(String),
    /// I/O error from the transport (timeouts, TLS errors, resets).
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => ReadError::Closed,
            _ => ReadError::Io(e),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Body bytes received (decoded for chunked).
    pub body_len: u64,
    /// The connection can not be reused (Connection: close, HTTP/1.0, or body until EOF).
    pub close: bool,
}

enum BodyKind {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Where the parser is inside the current response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    UntilClose,
}

/// Incremental response parser with its own buffer; keeps bytes beyond the current response
/// (pipelining).
pub struct ResponseReader {
    recv: RecvBuf,
    state: State,
    /// The response being read: status, body bytes so far, close.
    cur: Response,
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseReader {
    pub fn new() -> Self {
        ResponseReader {
            recv: RecvBuf::new(INITIAL_BUF),
            state: State::Head,
            cur: Response {
                status: 0,
                body_len: 0,
                close: false,
            },
        }
    }

    /// Drops buffered bytes and any partial response (before reusing it on a new connection).
    pub fn reset(&mut self) {
        self.recv.clear();
        self.state = State::Head;
    }

    /// Whether a response is partly read (or unparsed bytes are buffered).
    pub fn is_mid_response(&self) -> bool {
        self.state != State::Head || self.recv.start != self.recv.end
    }

    /// Room to read into; call `filled` with the number of bytes written there.
    pub fn space(&mut self) -> &mut [u8] {
        self.recv.space()
    }

    /// Marks `n` bytes of `space()` as received.
    pub fn filled(&mut self, n: usize) {
        self.recv.filled(n);
    }

    fn available(&self) -> &[u8] {
        self.recv.available()
    }

    /// Consumes up to `n` buffered body bytes; returns how many.
    fn take(&mut self, n: u64) -> u64 {
        let k = ((self.recv.end - self.recv.start) as u64).min(n);
        self.recv.start += k as usize;
        k
    }

    /// Position of the next CRLF in the buffered bytes.
    fn crlf(&self) -> Option<usize> {
        self.available().windows(2).position(|w| w == b"\r\n")
    }

    fn finish(&mut self) -> Response {
        self.state = State::Head;
        self.cur.clone()
    }

    /// Parses what is buffered: `Ok(Some)` for each complete response, `Ok(None)` when more
    /// bytes are needed.
    pub fn parse(&mut self, head_request: bool) -> Result<Option<Response>, ReadError> {
        loop {
            match self.state {
                State::Head => {
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut resp = httparse::Response::new(&mut headers);
                    let (status, kind, close, n) = match resp.parse(self.available()) {
                        Ok(httparse::Status::Complete(n)) => {
                            let status = resp.code.unwrap_or(0);
                            let (kind, close) = body_kind(&resp, status, head_request)?;
                            (status, kind, close, n)
                        }
                        Ok(httparse::Status::Partial) => {
                            if self.recv.end - self.recv.start >= MAX_HEAD {
                                return Err(ReadError::Bad("response head too large".into()));
                            }
                            return Ok(None);
                        }
                        Err(e) => return Err(ReadError::Bad(format!("bad response head: {e}"))),
                    };
                    self.recv.start += n;
                    if (100..200).contains(&status) {
                        // Interim response (100 Continue, ...): the real one follows.
                        continue;
                    }
                    self.cur = Response {
                        status,
                        body_len: 0,
                        close,
                    };
                    self.state = match kind {
                        BodyKind::None => return Ok(Some(self.finish())),
                        BodyKind::Length(0) => return Ok(Some(self.finish())),
                        BodyKind::Length(n) => State::Length(n),
                        BodyKind::Chunked => State::ChunkSize,
                        BodyKind::UntilClose => State::UntilClose,
                    };
                }
                State::Length(left) => {
                    let k = self.take(left);
                    self.cur.body_len += k;
                    if k == left {
                        return Ok(Some(self.finish()));
                    }
                    self.state = State::Length(left - k);
                    return Ok(None);
                }
                State::ChunkSize => {
                    let Some(i) = self.crlf() else {
                        if self.recv.end - self.recv.start > MAX_HEAD {
                            return Err(ReadError::Bad("chunk line too long".into()));
                        }
                        return Ok(None);
                    };
                    let line = &self.recv.buf[self.recv.start..self.recv.start + i + 2];
                    let size = match httparse::parse_chunk_size(line) {
                        Ok(httparse::Status::Complete((_, n))) => n,
                        _ => return Err(ReadError::Bad("bad chunk size".into())),
                    };
                    self.recv.start += i + 2;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(left) => {
                    let k = self.take(left);
                    self.cur.body_len = self.cur.body_len.saturating_add(k);
                    if k < left {
                        self.state = State::ChunkData(left - k);
                        return Ok(None);
                    }
                    self.state = State::ChunkEnd;
                }
                State::ChunkEnd => {
                    if self.recv.end - self.recv.start < 2 {
                        return Ok(None);
                    }
                    if &self.recv.buf[self.recv.start..self.recv.start + 2] != b"\r\n" {
                        return Err(ReadError::Bad("chunk not followed by CRLF".into()));
                    }
                    self.recv.start += 2;
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some(i) = self.crlf() else {
                        if self.recv.end - self.recv.start > MAX_HEAD {
                            return Err(ReadError::Bad("trailer line too long".into()));
                        }
                        return Ok(None);
                    };
                    self.recv.start += i + 2;
                    if i == 0 {
                        return Ok(Some(self.finish()));
                    }
                }
                State::UntilClose => {
                    let k = self.take(u64::MAX);
                    self.cur.body_len += k;
                    return Ok(None);
                }
            }
        }
    }

    /// The peer closed (EOF): completes a read-until-close body, else the response was cut.
    pub fn eof(&mut self) -> Result<Response, ReadError> {
        if self.state == State::UntilClose {
            self.cur.body_len += self.take(u64::MAX);
            self.cur.close = true;
            return Ok(self.finish());
        }
        Err(ReadError::Closed)
    }

    /// Reads one complete response from a blocking reader (the tests' way in). `head_request`: the request was
    /// HEAD (no body follows).
    #[cfg(test)]
    pub fn read_response<R: std::io::Read>(
        &mut self,
        r: &mut R,
        head_request: bool,
    ) -> Result<Response, ReadError> {
        loop {
            if let Some(resp) = self.parse(head_request)? {
                return Ok(resp);
            }
            let n = loop {
                match r.read(self.space()) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // TLS peers that close without close_notify.
                    Err(e)
                        if e.kind() == io::ErrorKind::UnexpectedEof
                            && self.state == State::UntilClose =>
                    {
                        break 0
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            if n == 0 {
                return self.eof();
            }
            self.filled(n);
        }
    }
}

fn body_kind(
    resp: &httparse::Response,
    status: u16,
    head_request: bool,
) -> Result<(BodyKind, bool), ReadError> {
    let mut close = resp.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ReadError::Bad("bad Content-Length".into()))?;
            if length.is_some_and(|l| l != v) {
                return Err(ReadError::Bad("conflicting Content-Length".into()));
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            chunked = v
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim() == "chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                close = true;
            } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                close = false;
            }
        }
    }
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok((BodyKind::None, close));
    }
    if chunked {
        return Ok((BodyKind::Chunked, close));
    }
    match length {
        Some(n) => Ok((BodyKind::Length(n), close)),
        None => Ok((BodyKind::UntilClose, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A reader that returns at most `step` bytes per read, to exercise partial reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_all(data: &[u8], step: usize, count: usize) -> Vec<Result<Response, String>> {
        let mut src = Trickle { data, step };
        let mut rr = ResponseReader::new();
        (0..count)
            .map(|_| {
                rr.read_response(&mut src, false)
                    .map_err(|e| format!("{e:?}"))
            })
            .collect()
    }

    #[test]
    fn content_length_pipelined() {
        let data = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\nHTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\nnope!";
        for step in [1, 2, 7, 1000] {
            let r = read_all(data, step, 2);
            assert_eq!(
                r[0],
                Ok(Response {
                    status: 200,
                    body_len: 3,
                    close: false
                })
            );
            assert_eq!(
                r[1],
                Ok(Response {
                    status: 404,
                    body_len: 5,
                    close: false
                })
            );
        }
    }

    #[test]
    fn chunked_with_trailers_and_extensions() {
        let data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
        for step in [1, 3, 4096] {
            let r = read_all(data, step, 2);
            assert_eq!(
                r[0],
                Ok(Response {
                    status: 200,
                    body_len: 15,
                    close: false
                })
            );
            assert_eq!(
                r[1],
                Ok(Response {
                    status: 204,
                    body_len: 0,
                    close: true
                })
            );
        }
    }

    #[test]
    fn body_until_close_and_interim() {
        let data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nabcdef";
        let r = read_all(data, 2, 1);
        assert_eq!(
            r[0],
            Ok(Response {
                status: 200,
                body_len: 6,
                close: true
            })
        );
    }

    #[test]
    fn truncated_and_bad() {
        let r = read_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 3, 1);
        assert!(r[0].as_ref().unwrap_err().contains("Closed"));
        let r = read_all(b"HTTP/1.1 200 OK\r\nContent-Len", 3, 1);
        assert!(r[0].as_ref().unwrap_err().contains("Closed"));
        let r = read_all(b"garbage\r\n\r\n", 3, 1);
        assert!(r[0].as_ref().unwrap_err().contains("Bad"));
        let r = read_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            3,
            1,
        );
        assert!(r[0].as_ref().unwrap_err().contains("Bad"));
        let r = read_all(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 3, 1);
        assert!(r[0].as_ref().unwrap_err().contains("Bad"));
    }

    #[test]
    fn head_response_has_no_body() {
        let data = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
        let mut src = Trickle { data, step: 5 };
        let mut rr = ResponseReader::new();
        let a = rr.read_response(&mut src, true).unwrap();
        assert_eq!(a.body_len, 0);
        let b = rr.read_response(&mut src, false).unwrap();
        assert_eq!(b.body_len, 1);
    }

    #[test]
    fn incremental_feed_consumes_bodies_without_buffering_them() {
        let mut data = b"HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n".to_vec();
        data.resize(data.len() + 65536, b'x');
        data.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        data.extend_from_slice(b"4\r\nabcd\r\n0\r\n\r\n");
        let mut rr = ResponseReader::new();
        let mut got = Vec::new();
        for piece in data.chunks(1000) {
            let mut rest = piece;
            while !rest.is_empty() {
                let space = rr.space();
                let n = space.len().min(rest.len());
                space[..n].copy_from_slice(&rest[..n]);
                rr.filled(n);
                rest = &rest[n..];
                while let Some(r) = rr.parse(false).unwrap() {
                    got.push(r.body_len);
                }
            }
        }
        assert_eq!(got, vec![65536, 4]);
        assert!(!rr.is_mid_response());
        // Bodies were consumed as they came: the buffer never grew.
        assert_eq!(rr.recv.buf.len(), INITIAL_BUF);
        // EOF in the middle of a response is an error; it ends a body without a length.
        rr.filled(0);
        assert!(matches!(rr.eof(), Err(ReadError::Closed)));
    }
}
