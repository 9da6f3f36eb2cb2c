//! HTTP/1.1 response reader: parses heads with httparse and consumes Content-Length,
//! chunked and read-until-close bodies completely.

use std::io::{self, Read};

const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

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

/// Buffered reader that keeps bytes beyond the current response (pipelining).
pub struct ResponseReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseReader {
    pub fn new() -> Self {
        ResponseReader {
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// Drops buffered bytes (before reusing the reader on a new connection).
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes; returns 0 at EOF.
    fn fill<R: Read>(&mut self, r: &mut R) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
        }
        loop {
            match r.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn fill_or_closed<R: Read>(&mut self, r: &mut R) -> Result<(), ReadError> {
        match self.fill(r)? {
            0 => Err(ReadError::Closed),
            _ => Ok(()),
        }
    }

    /// Reads one complete response. `head_request`: the request was HEAD (no body follows).
    pub fn read_response<R: Read>(
        &mut self,
        r: &mut R,
        head_request: bool,
    ) -> Result<Response, ReadError> {
        loop {
            let (status, kind, close, consumed) = loop {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(self.available()) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        let (kind, close) = body_kind(&resp, status, head_request)?;
                        break (status, kind, close, n);
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.end - self.start >= MAX_HEAD {
                            return Err(ReadError::Bad("response head too large".into()));
                        }
                        self.fill_or_closed(r)?;
                    }
                    Err(e) => return Err(ReadError::Bad(format!("bad response head: {e}"))),
                }
            };
            self.start += consumed;
            if (100..200).contains(&status) {
                // Interim response (100 Continue, ...): the real one follows.
                continue;
            }
            let body_len = match kind {
                BodyKind::None => 0,
                BodyKind::Length(n) => {
                    self.skip(r, n)?;
                    n
                }
                BodyKind::Chunked => self.read_chunked(r)?,
                BodyKind::UntilClose => self.read_until_close(r)?,
            };
            return Ok(Response {
                status,
                body_len,
                close,
            });
        }
    }

    fn skip<R: Read>(&mut self, r: &mut R, mut n: u64) -> Result<(), ReadError> {
        loop {
            let have = (self.end - self.start) as u64;
            if have >= n {
                self.start += n as usize;
                return Ok(());
            }
            n -= have;
            self.start = self.end;
            self.fill_or_closed(r)?;
        }
    }

    /// Reads a CRLF-terminated line, returning it without the CRLF.
    fn line<R: Read>(&mut self, r: &mut R) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(i) = self.available().windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[self.start..self.start + i].to_vec();
                self.start += i + 2;
                return Ok(line);
            }
            if self.end - self.start > MAX_HEAD {
                return Err(ReadError::Bad("chunk line too long".into()));
            }
            self.fill_or_closed(r)?;
        }
    }

    fn read_chunked<R: Read>(&mut self, r: &mut R) -> Result<u64, ReadError> {
        let mut total = 0u64;
        loop {
            let mut line = self.line(r)?;
            line.extend_from_slice(b"\r\n");
            let size = match httparse::parse_chunk_size(&line) {
                Ok(httparse::Status::Complete((_, n))) => n,
                _ => return Err(ReadError::Bad("bad chunk size".into())),
            };
            if size == 0 {
                // Trailers, then an empty line.
                while !self.line(r)?.is_empty() {}
                return Ok(total);
            }
            self.skip(r, size)?;
            total = total.saturating_add(size);
            if !self.line(r)?.is_empty() {
                return Err(ReadError::Bad("chunk not followed by CRLF".into()));
            }
        }
    }

    fn read_until_close<R: Read>(&mut self, r: &mut R) -> Result<u64, ReadError> {
        let mut total = (self.end - self.start) as u64;
        self.start = self.end;
        loop {
            match self.fill(r) {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    total += n as u64;
                    self.start = self.end;
                }
                // TLS peers that close without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(total),
                Err(e) => return Err(ReadError::Io(e)),
            }
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
}
