//! A tiny HTTP/1.1 upstream on std threads that records what it receives.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the upstream answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 with the request body echoed back (Content-Length), keep-alive.
    Echo,
    /// 200 with this body sent chunked in pieces of the given size.
    Chunked(Vec<u8>, usize),
    /// 200 with a Content-Length body of this many pattern bytes, streamed.
    Large(u64),
    /// Waits, then answers as Echo.
    Delay(Duration),
    /// Reads the request and closes without answering.
    Close,
    /// Answers with bytes that are not HTTP, then closes.
    Garbage,
    /// Answers as Echo (keep-alive), then closes the connection shortly after.
    AnswerThenClose,
    /// Answers with exactly these bytes, then closes the connection.
    Raw(Vec<u8>),
    /// Answers with these bytes, keeps the connection open this long, then closes it.
    RawHold(Vec<u8>, Duration),
    /// Answers with these bytes, then resets the connection (RST, not FIN).
    RawReset(Vec<u8>),
    /// Answers every request with exactly these bytes and keeps the connection open for the
    /// next one: a scripted keep-alive upstream (what follows a 101 lands in the raw log).
    Replies(Vec<u8>),
    /// As Replies, then writes the second bytes 100 ms later, while the connection is idle.
    RepliesThenIdleBytes(Vec<u8>, Vec<u8>),
}

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The body (up to 4 MiB kept).
    pub body: Vec<u8>,
    pub body_len: u64,
    /// FNV-1a 64 of the whole body.
    pub body_hash: u64,
    /// Which accepted connection carried it (1-based).
    pub conn: usize,
}

impl Seen {
    /// The values of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name`; panics when it appears more than once.
    #[track_caller]
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.header_all(name);
        assert!(
            all.len() <= 1,
            "header {name} sent {} times: {all:?}",
            all.len()
        );
        all.first().copied()
    }
}

pub fn fnv(hash: &mut u64, data: &[u8]) {
    for &b in data {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x100_0000_01b3);
    }
}
pub const FNV_INIT: u64 = 0xcbf2_9ce4_8422_2325;

struct Shared {
    mode: Mutex<Mode>,
    seen: Mutex<Vec<Seen>>,
    accepts: AtomicUsize,
    /// Connections currently open (accepted and not yet ended on our side).
    open: AtomicUsize,
    /// Every byte received, per connection, in order.
    raw: Mutex<Vec<Vec<u8>>>,
    /// Requests read whole and not yet answered, now and at most so far.
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

/// Counts a request as in flight while it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads through to the socket and keeps a copy of every byte in the connection's raw log.
struct Tee {
    inner: TcpStream,
    shared: Arc<Shared>,
    conn: usize,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut raw = self.shared.raw.lock().expect("raw");
        if raw.len() < self.conn {
            raw.resize(self.conn, Vec::new());
        }
        raw[self.conn - 1].extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Upstream {
    pub fn start(mode: Mode) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            seen: Mutex::new(Vec::new()),
            accepts: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            raw: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
        });
        let s2 = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let n = s2.accepts.fetch_add(1, Ordering::SeqCst) + 1;
                s2.open.fetch_add(1, Ordering::SeqCst);
                let s3 = s2.clone();
                std::thread::spawn(move || {
                    serve(conn, n, &s3);
                    s3.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Upstream { addr, shared }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().expect("mode") = mode;
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.shared.accepts.load(Ordering::SeqCst)
    }

    /// Connections open now: accepted and not yet closed by either side.
    pub fn open_conns(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The most requests the upstream was answering at once (read whole, response not yet
    /// written), over its life.
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Every byte received on connection `n` (1-based).
    pub fn raw_of(&self, n: usize) -> Vec<u8> {
        let raw = self.shared.raw.lock().expect("raw");
        raw.get(n.wrapping_sub(1)).cloned().unwrap_or_default()
    }

    /// Every byte received on every connection, connections one after the other.
    pub fn raw_all(&self) -> Vec<u8> {
        self.shared.raw.lock().expect("raw").concat()
    }

    /// True when `needle` occurs in what any connection received.
    pub fn received(&self, needle: &[u8]) -> bool {
        self.shared
            .raw
            .lock()
            .expect("raw")
            .iter()
            .any(|c| c.windows(needle.len().max(1)).any(|w| w == needle))
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("seen").clone()
    }

    /// The last request seen (waits up to 2 s for one).
    #[track_caller]
    pub fn last(&self) -> Seen {
        for _ in 0..100 {
            if let Some(s) = self.seen().last() {
                return s.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the upstream saw no request");
    }

    /// `127.0.0.1:PORT` as a TOML string.
    pub fn server(&self) -> String {
        format!("\"{}\"", self.addr)
    }
}

fn serve(conn: TcpStream, n: usize, shared: &Arc<Shared>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let tee = Tee {
        inner: conn,
        shared: shared.clone(),
        conn: n,
    };
    let mut r = BufReader::with_capacity(256 * 1024, tee);
    loop {
        let mut request_line = String::new();
        match r.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = request_line.trim_end().splitn(3, ' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let chunked = get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length: u64 = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = Vec::new();
        let mut hash = FNV_INIT;
        let mut body_len = 0u64;
        let mut take = |data: &[u8]| {
            fnv(&mut hash, data);
            body_len += data.len() as u64;
            if body.len() < 4 << 20 {
                body.extend_from_slice(data);
            }
        };
        let ok = if chunked {
            read_chunked(&mut r, &mut take)
        } else {
            read_exact_stream(&mut r, length, &mut take)
        };
        if !ok {
            return;
        }
        shared.seen.lock().expect("seen").push(Seen {
            method: method.clone(),
            target,
            headers: headers.clone(),
            body: body.clone(),
            body_len,
            body_hash: hash,
            conn: n,
        });
        let _in_flight = InFlight::new(shared);
        let mode = shared.mode.lock().expect("mode").clone();
        let head_only = method == "HEAD";
        let res = match mode {
            Mode::Echo | Mode::AnswerThenClose => echo(&mut out, n, &body, head_only),
            Mode::Delay(d) => {
                std::thread::sleep(d);
                echo(&mut out, n, &body, head_only)
            }
            Mode::Chunked(data, piece) => {
                let mut resp = format!(
                    "HTTP/1.1 200 OK\r\nX-Upstream-Conn: {n}\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                .into_bytes();
                for c in data.chunks(piece.max(1)) {
                    resp.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    resp.extend_from_slice(c);
                    resp.extend_from_slice(b"\r\n");
                }
                resp.extend_from_slice(b"0\r\n\r\n");
                out.write_all(&resp)
            }
            Mode::Large(total) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nX-Upstream-Conn: {n}\r\nContent-Length: {total}\r\n\r\n"
                );
                let mut res = out.write_all(head.as_bytes());
                let mut sent = 0u64;
                let block = pattern_block();
                while res.is_ok() && sent < total {
                    let k = (total - sent).min(block.len() as u64) as usize;
                    res = out.write_all(&block[..k]);
                    sent += k as u64;
                }
                res
            }
            Mode::Close => return,
            Mode::Raw(bytes) => {
                let _ = out.write_all(&bytes);
                return;
            }
            Mode::RawHold(bytes, hold) => {
                let _ = out.write_all(&bytes);
                std::thread::sleep(hold);
                return;
            }
            Mode::RawReset(bytes) => {
                let _ = out.write_all(&bytes);
                std::thread::sleep(Duration::from_millis(50));
                let _ = socket2::SockRef::from(&out).set_linger(Some(Duration::ZERO));
                return;
            }
            Mode::Replies(bytes) => out.write_all(&bytes),
            Mode::RepliesThenIdleBytes(bytes, later) => out.write_all(&bytes).and_then(|()| {
                std::thread::sleep(Duration::from_millis(100));
                out.write_all(&later)
            }),
            Mode::Garbage => {
                let _ = out.write_all(b"this is not HTTP at all\r\n\r\n");
                return;
            }
        };
        if res.is_err() {
            return;
        }
        if matches!(
            shared.mode.lock().expect("mode").clone(),
            Mode::AnswerThenClose
        ) {
            std::thread::sleep(Duration::from_millis(50));
            let _ = out.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// 64 KiB of the byte pattern `i % 251`.
pub fn pattern_block() -> Vec<u8> {
    (0..65536u32).map(|i| (i % 251) as u8).collect()
}

fn echo(out: &mut TcpStream, n: usize, body: &[u8], head_only: bool) -> std::io::Result<()> {
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nX-Upstream-Conn: {n}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        resp.extend_from_slice(body);
    }
    out.write_all(&resp)
}

fn read_exact_stream(r: &mut impl Read, mut left: u64, take: &mut impl FnMut(&[u8])) -> bool {
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        match r.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return false,
            Ok(k) => {
                take(&buf[..k]);
                left -= k as u64;
            }
        }
    }
    true
}

fn read_chunked(r: &mut impl BufRead, take: &mut impl FnMut(&[u8])) -> bool {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok().filter(|&n| n > 0).is_none() {
            return false;
        }
        let size_text = line.trim().split(';').next().unwrap_or("").to_string();
        let Ok(size) = u64::from_str_radix(&size_text, 16) else {
            return false;
        };
        if size == 0 {
            // Trailers until an empty line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t).ok().filter(|&n| n > 0).is_none() {
                    return false;
                }
                if t == "\r\n" || t == "\n" {
                    return true;
                }
            }
        }
        if !read_exact_stream(r, size, take) {
            return false;
        }
        let mut crlf = [0u8; 2];
        if r.read_exact(&mut crlf).is_err() || &crlf != b"\r\n" {
            return false;
        }
    }
}
