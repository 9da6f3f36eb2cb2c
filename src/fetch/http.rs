//! A small, bounded HTTP/1.1 client for revocation material: CRLs (GET) and OCSP (POST of an
//! `application/ocsp-request`), over plain `http://`, which is what CRL distribution points
//! and OCSP AIA URLs use. Blocking std sockets: it runs on the fetcher's threads, never on a
//! worker. Every fetch is bounded in time (connect, and the whole exchange) and in size: a
//! body over the limit is refused, never truncated.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::http::chunked::ChunkedScanner;
use crate::http::response::parse_response;
use crate::http::{BodyFraming, Limits};

/// Why a fetch gave nothing usable; the message names the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an `http://host[:port]/path` URL.
    #[error("{url}: not an http:// URL ({why})")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The host did not resolve, refused, or did not answer in time.
    #[error("{url}: cannot connect: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// The OS error or "timed out".
        reason: String,
    },
    /// The exchange failed or took longer than the limit.
    #[error("{url}: {reason}")]
    Io {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The response head did not parse, or the body's framing was broken.
    #[error("{url}: invalid HTTP response: {reason}")]
    BadResponse {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The server answered, but not 200.
    #[error("{url}: the server answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body is larger than the limit (refused, not truncated).
    #[error("{url}: the response is larger than {limit} bytes; refused")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
}

impl FetchError {
    /// The metric label of this failure.
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::BadUrl { .. } => "bad_url",
            FetchError::Connect { .. } => "connect",
            FetchError::Io { .. } => "io",
            FetchError::BadResponse { .. } => "bad_response",
            FetchError::Status { .. } => "status",
            FetchError::TooLarge { .. } => "too_large",
        }
    }
}

/// An `http://` URL split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// The host as written (a name, an IPv4 address, or `[v6]`).
    pub host: String,
    /// The port (80 when not written).
    pub port: u16,
    /// The path and query, `/` when empty.
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://host[:port][/path]`; anything else (https, userinfo, no host) is refused
    /// with the reason.
    pub fn parse(url: &str) -> Result<HttpUrl, &'static str> {
        let rest = url.strip_prefix("http://").ok_or(
            "only http:// is fetched (CRL distribution points and OCSP responders use it)",
        )?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err("user information in the URL is not supported");
        }
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                let port = authority[i + 1..].parse().map_err(|_| "bad port")?;
                (&authority[..i], port)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err("no host");
        }
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("spaces or control characters in the path");
        }
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// The host without IPv6 brackets, lowercased, for allow lists.
    pub fn host_name(&self) -> String {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase()
    }
}

/// One request: GET when `body` is None, else POST with this content type.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The URL.
    pub url: &'a str,
    /// A POST body and its content type.
    pub body: Option<(&'a str, &'a [u8])>,
    /// The whole exchange, connect included, ends by then.
    pub timeout: Duration,
    /// The largest body accepted.
    pub max_body: usize,
}

/// Runs `req` and returns the body of its 200 response.
pub fn fetch(req: &Request<'_>) -> Result<Vec<u8>, FetchError> {
    let url = req.url.to_string();
    let parsed = HttpUrl::parse(req.url).map_err(|why| FetchError::BadUrl {
        url: url.clone(),
        why,
    })?;
    let deadline = Instant::now() + req.timeout;
    let mut tcp = connect(&parsed, &url, req.timeout)?;
    let io = |e: std::io::Error| FetchError::Io {
        url: url.clone(),
        reason: if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            format!("no complete answer within {:?}", req.timeout)
        } else {
            e.to_string()
        },
    };
    tcp.set_write_timeout(Some(req.timeout)).map_err(io)?;
    tcp.write_all(&request_bytes(&parsed, req)).map_err(io)?;
    let received = read_response(&mut tcp, req, deadline);
    received.map_err(|e| match e {
        Received::Io(e) => io(e),
        Received::Bad(reason) => FetchError::BadResponse {
            url: url.clone(),
            reason,
        },
        Received::Status(status) => FetchError::Status {
            url: url.clone(),
            status,
        },
        Received::TooLarge => FetchError::TooLarge {
            url: url.clone(),
            limit: req.max_body,
        },
    })
}

fn connect(u: &HttpUrl, url: &str, timeout: Duration) -> Result<TcpStream, FetchError> {
    let fail = |reason: String| FetchError::Connect {
        url: url.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = (u.host_name().as_str(), u.port)
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .collect();
    let mut last = String::from("the name resolved to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
    }
    Err(fail(last))
}

fn request_bytes(u: &HttpUrl, req: &Request<'_>) -> Vec<u8> {
    let host = if u.port == 80 {
        u.host.clone()
    } else {
        format!("{}:{}", u.host, u.port)
    };
    let method = if req.body.is_some() { "POST" } else { "GET" };
    let mut out = format!(
        "{method} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringgate\r\nAccept: */*\r\nConnection: close\r\n",
        u.path
    );
    if let Some((ctype, body)) = req.body {
        out.push_str(&format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if let Some((_, body)) = req.body {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// Why reading the response failed, before the URL is attached.
enum Received {
    Io(std::io::Error),
    Bad(String),
    Status(u16),
    TooLarge,
}

/// Reads one more batch into `buf`, within the deadline; 0 at end of stream.
fn read_more(tcp: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Result<usize, Received> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Received::Io(std::io::ErrorKind::TimedOut.into()));
    }
    tcp.set_read_timeout(Some(left)).map_err(Received::Io)?;
    let mut chunk = [0u8; 16 * 1024];
    let n = tcp.read(&mut chunk).map_err(Received::Io)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn read_response(
    tcp: &mut TcpStream,
    req: &Request<'_>,
    deadline: Instant,
) -> Result<Vec<u8>, Received> {
    let limits = Limits::default();
    let mut buf = Vec::new();
    let head = loop {
        match parse_response(&buf, false, &limits) {
            Ok(Some(h)) if h.status >= 100 && h.status < 200 => {
                buf.drain(..h.head_len);
            }
            Ok(Some(h)) => break h,
            Ok(None) => {
                if read_more(tcp, &mut buf, deadline)? == 0 {
                    return Err(Received::Bad(
                        "the connection closed before the head".into(),
                    ));
                }
            }
            Err(e) => return Err(Received::Bad(e.reason().to_string())),
        }
    };
    if head.status != 200 {
        return Err(Received::Status(head.status));
    }
    buf.drain(..head.head_len);
    match head.framing {
        BodyFraming::None => Ok(Vec::new()),
        BodyFraming::Length(n) => {
            if n > req.max_body as u64 {
                return Err(Received::TooLarge);
            }
            let n = n as usize;
            while buf.len() < n {
                if read_more(tcp, &mut buf, deadline)? == 0 {
                    return Err(Received::Bad("the body ended before Content-Length".into()));
                }
            }
            buf.truncate(n);
            Ok(buf)
        }
        BodyFraming::UntilClose => loop {
            if buf.len() > req.max_body {
                return Err(Received::TooLarge);
            }
            if read_more(tcp, &mut buf, deadline)? == 0 {
                return Ok(buf);
            }
        },
        BodyFraming::Chunked => read_chunked(tcp, buf, req.max_body, deadline),
    }
}

fn read_chunked(
    tcp: &mut TcpStream,
    mut raw: Vec<u8>,
    max_body: usize,
    deadline: Instant,
) -> Result<Vec<u8>, Received> {
    let mut scanner = ChunkedScanner::new();
    let mut body = Vec::new();
    loop {
        let scan = scanner
            .feed_data(&raw, |r| body.extend_from_slice(&raw[r]))
            .map_err(|e| Received::Bad(e.reason().to_string()))?;
        if body.len() > max_body {
            return Err(Received::TooLarge);
        }
        if scan.done {
            return Ok(body);
        }
        raw.drain(..scan.consumed);
        if read_more(tcp, &mut raw, deadline)? == 0 {
            return Err(Received::Bad("the chunked body ended early".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves one connection with `answer` (after reading the request head) and returns the
    /// URL and what the client sent.
    fn serve_once(answer: Vec<u8>) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ca.crl", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut b).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
            }
            let _ = s.write_all(&answer);
            got
        });
        (url, h)
    }

    fn get(url: &str, max_body: usize) -> Result<Vec<u8>, FetchError> {
        fetch(&Request {
            url,
            body: None,
            timeout: Duration::from_secs(5),
            max_body,
        })
    }

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://ca.internal:8080/root.crl?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("ca.internal", 8080, "/root.crl?x=1")
        );
        let u = HttpUrl::parse("http://[::1]/").unwrap();
        assert_eq!((u.host_name().as_str(), u.port), ("::1", 80));
        assert_eq!(HttpUrl::parse("http://ocsp.example").unwrap().path, "/");
        assert!(HttpUrl::parse("https://ca.internal/x").is_err());
        assert!(HttpUrl::parse("http://u@ca.internal/x").is_err());
        assert!(HttpUrl::parse("http:///x").is_err());
        assert!(HttpUrl::parse("http://h:99999/").is_err());
    }

    #[test]
    fn length_chunked_and_close_bodies() {
        let (url, h) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA".to_vec());
        assert_eq!(get(&url, 100).unwrap(), b"abc");
        let sent = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(
            sent.starts_with("GET /ca.crl HTTP/1.1\r\nHost: 127.0.0.1:"),
            "{sent}"
        );
        let (url, _h) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
                .to_vec(),
        );
        assert_eq!(get(&url, 100).unwrap(), b"abc");
        let (url, _h) = serve_once(b"HTTP/1.0 200 OK\r\n\r\nabcd".to_vec());
        assert_eq!(get(&url, 100).unwrap(), b"abcd");
    }

    #[test]
    fn too_large_bad_status_and_garbage_are_refused() {
        let (url, _h) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n".to_vec());
        assert!(matches!(get(&url, 100), Err(FetchError::TooLarge { .. })));
        let mut big = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 5000));
        let (url, _h) = serve_once(big);
        assert!(matches!(get(&url, 1000), Err(FetchError::TooLarge { .. })));
        let (url, _h) = serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
        let e = get(&url, 100).unwrap_err();
        assert!(e.to_string().ends_with("the server answered 404"), "{e}");
        let (url, _h) = serve_once(b"garbage\r\n\r\n".to_vec());
        assert!(matches!(
            get(&url, 100),
            Err(FetchError::BadResponse { .. })
        ));
    }

    #[test]
    fn a_silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let started = Instant::now();
        let e = fetch(&Request {
            url: &url,
            body: Some(("application/ocsp-request", b"x")),
            timeout: Duration::from_millis(300),
            max_body: 100,
        })
        .unwrap_err();
        assert!(matches!(e, FetchError::Io { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(l);
    }
}
