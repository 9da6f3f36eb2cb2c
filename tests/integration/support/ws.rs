//! WebSocket pieces for the tunnel tests: the python echo upstream
//! (`scripts/ws-echo-upstream.py`) and client (`scripts/ws-client.py`) run as processes, and
//! RFC 6455 frames written and read by hand over the raw rustls client, so a test controls
//! every byte and every pause of a tunnel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::Conn;
use super::pki::{Leaf, Pki};
use super::proxy::Proxy;

/// RFC 6455's sample key and the `Sec-WebSocket-Accept` it gives (section 1.3): an oracle for
/// the upstream's answer that needs no SHA-1 here.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// True when python3 with `websockets` (13 or later: `websockets.asyncio`) can run the echo
/// upstream and the client; otherwise prints why the calling test is skipped.
pub fn python_websockets(test: &str) -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import websockets.asyncio.server, websockets.asyncio.client",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "SKIPPED {test}: python3 with `websockets` 13+ is missing (python3 -m pip install websockets)"
        );
    }
    ok
}

/// `scripts/ws-echo-upstream.py` on a free port, with its event log; killed when dropped.
pub struct EchoUpstream {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl EchoUpstream {
    pub fn start() -> EchoUpstream {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("upstream.jsonl");
        let mut child = Command::new("python3")
            .arg(script("ws-echo-upstream.py"))
            .arg("0")
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/ws-echo-upstream.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let port: u16 = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) => line.trim().parse().unwrap_or(0),
            Err(_) => 0,
        };
        if port == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scripts/ws-echo-upstream.py printed no port within 15 s");
        }
        EchoUpstream {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            _dir: dir,
        }
    }

    /// `"127.0.0.1:PORT"` as a TOML string.
    pub fn server(&self) -> String {
        format!("\"{}\"", self.addr)
    }

    /// Every event logged so far, in order.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The events of one kind (`tcp`, `request`, `open`, `closed`).
    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    /// Waits up to `wait` for at least `n` events of `kind`, and returns them all.
    #[track_caller]
    pub fn wait_events(&self, kind: &str, n: usize, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let got = self.events_of(kind);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the echo upstream logged {} `{kind}` events within {wait:?}, want {n}: {:?}",
                got.len(),
                self.events()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The values of header `name` (any case) in a `request` event, in order received.
pub fn header_values(event: &Value, name: &str) -> Vec<String> {
    event["headers"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                .filter_map(|h| h[1].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What one run of `scripts/ws-client.py` printed.
#[derive(Debug)]
pub struct ClientRun {
    pub code: i32,
    pub json: Value,
    pub stderr: String,
}

impl ClientRun {
    /// The HTTP status of the handshake (0 when there was none).
    pub fn status(&self) -> u64 {
        self.json["status"].as_u64().unwrap_or(0)
    }
}

/// Runs `scripts/ws-client.py URL ARGS...`, killed after 60 s.
pub fn client(url: &str, args: &[String]) -> ClientRun {
    let mut child = Command::new("python3")
        .arg(script("ws-client.py"))
        .arg(url)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scripts/ws-client.py");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scripts/ws-client.py {url} {args:?} ran over 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("ws-client.py printed no JSON ({e}): {stdout}\nstderr: {stderr}")
    });
    ClientRun {
        code: status.code().unwrap_or(-1),
        json,
        stderr,
    }
}

/// The client's arguments for `proxy`'s first listener as `wss://localhost:PORT{path}`: the
/// test CA, `leaf` as the client certificate (None: none), connecting to 127.0.0.1.
pub fn wss(proxy: &Proxy, path: &str, pki: &Pki, leaf: Option<&Leaf>) -> (String, Vec<String>) {
    wss_port(proxy.addr().port(), path, pki, leaf)
}

/// As [`wss`], for any port (nginx beside ringgate).
pub fn wss_port(port: u16, path: &str, pki: &Pki, leaf: Option<&Leaf>) -> (String, Vec<String>) {
    let mut args = vec![
        "--ca".to_string(),
        pki.ca.pem_path.display().to_string(),
        "--connect".to_string(),
        "127.0.0.1".to_string(),
    ];
    if let Some(l) = leaf {
        args.extend([
            "--cert".to_string(),
            l.cert.display().to_string(),
            "--key".to_string(),
            l.key.display().to_string(),
        ]);
    }
    (format!("wss://localhost:{port}{path}"), args)
}

/// A WebSocket upgrade request for `path` with RFC 6455's sample key and `extra` header lines
/// (each ending in CRLF).
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// One frame as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// A frame: FIN set, masked with `mask` when given (RFC 6455 requires it from clients).
pub fn encode(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x80 | (opcode & 0x0f)];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// The first whole frame in `buf` and its length in bytes; None when more bytes are needed.
pub fn decode(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let key: Option<[u8; 4]> = if masked {
        let k = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(k)
    } else {
        None
    };
    let data = buf.get(at..at + len)?;
    let payload = match key {
        Some(k) => data.iter().enumerate().map(|(i, b)| b ^ k[i % 4]).collect(),
        None => data.to_vec(),
    };
    Some((
        Frame {
            fin: buf[0] & 0x80 != 0,
            opcode: buf[0] & 0x0f,
            payload,
        },
        at + len,
    ))
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// An upgraded connection through the proxy, driven frame by frame.
pub struct Tunnel {
    pub conn: Conn,
    /// The 101's status line and headers, as received.
    pub head: String,
    pub headers: Vec<(String, String)>,
    /// Bytes received after the 101's head, not yet returned as frames.
    buf: Vec<u8>,
    /// Every byte received after the 101's head (frames read and buffered).
    pub received: usize,
}

impl Tunnel {
    /// An mTLS connection to `proxy` as the test PKI's client, the upgrade request for `path`
    /// sent, and its 101 read (panics on anything else).
    #[track_caller]
    pub fn open(proxy: &Proxy, pki: &Pki, path: &str) -> Tunnel {
        let mut conn = super::mtls_conn(proxy, pki);
        conn.send(upgrade_request(path, "").as_bytes())
            .expect("send the upgrade request");
        Tunnel::after_request(conn)
    }

    /// Reads the 101 that answers an upgrade request already sent on `conn`.
    #[track_caller]
    pub fn after_request(mut conn: Conn) -> Tunnel {
        let _ = conn
            .tls
            .sock
            .set_read_timeout(Some(Duration::from_secs(10)));
        let (status, head, headers) = conn.read_head().expect("a response to the upgrade");
        assert_eq!(status, 101, "not switched:\n{head}");
        let buf = conn.take_buffered();
        Tunnel {
            conn,
            head,
            headers,
            received: buf.len(),
            buf,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sends one masked frame.
    pub fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        self.conn.send(&encode(opcode, payload, Some(MASK)))
    }

    /// Reads one frame, waiting at most `wait` for each read; an error on a timeout or a close.
    pub fn read_frame(&mut self, wait: Duration) -> std::io::Result<Frame> {
        let _ = self.conn.tls.sock.set_read_timeout(Some(wait));
        loop {
            if let Some((f, n)) = decode(&self.buf) {
                self.buf.drain(..n);
                return Ok(f);
            }
            let mut tmp = [0u8; 16384];
            match self.conn.tls.read(&mut tmp)? {
                0 => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the tunnel closed",
                    ))
                }
                n => {
                    self.received += n;
                    self.buf.extend_from_slice(&tmp[..n]);
                }
            }
        }
    }

    /// Sends `text` and returns the text frame that comes back within 5 s.
    #[track_caller]
    pub fn echo(&mut self, text: &str) -> String {
        self.send(OP_TEXT, text.as_bytes())
            .unwrap_or_else(|e| panic!("sending {text:?} into the tunnel: {e}"));
        let f = self
            .read_frame(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("no echo of {text:?}: {e}"));
        assert_eq!(f.opcode, OP_TEXT, "{f:?}");
        String::from_utf8(f.payload).expect("utf-8 echo")
    }

    /// True when the tunnel ends (EOF, close_notify, a reset or a TLS error) within `wait`;
    /// false when it is still open then. Frames that arrive meanwhile are dropped.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.read_frame(left) {
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    /// Sends a close frame with `code`, then reads until the tunnel ends (5 s at most);
    /// returns the close frame that came back, if any.
    pub fn close(&mut self, code: u16) -> Option<Frame> {
        let _ = self.send(OP_CLOSE, &code.to_be_bytes());
        let mut back = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.read_frame(Duration::from_millis(500)) {
                Ok(f) if f.opcode == OP_CLOSE => back = Some(f),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        back
    }

    /// Ends our side: TLS close_notify, then TCP FIN; the connection can still be read.
    pub fn shutdown_write(&mut self) {
        self.conn.tls.conn.send_close_notify();
        let _ = self.conn.tls.flush();
        let _ = self.conn.tls.sock.shutdown(std::net::Shutdown::Write);
    }

    /// Everything until the other side ends the connection (or `wait` passes between reads).
    pub fn read_to_end(&mut self, wait: Duration) -> Vec<u8> {
        let _ = self.conn.tls.sock.set_read_timeout(Some(wait));
        let mut got = std::mem::take(&mut self.buf);
        let mut tmp = [0u8; 16384];
        loop {
            match self.conn.tls.read(&mut tmp) {
                Ok(0) | Err(_) => return got,
                Ok(n) => {
                    self.received += n;
                    got.extend_from_slice(&tmp[..n]);
                }
            }
        }
    }

    /// Raw bytes after the 101 (buffered ones first) until there are `n`, the tunnel ends,
    /// or nothing arrives for `wait`.
    pub fn read_bytes(&mut self, n: usize, wait: Duration) -> Vec<u8> {
        let _ = self.conn.tls.sock.set_read_timeout(Some(wait));
        let mut got = std::mem::take(&mut self.buf);
        let mut tmp = [0u8; 16384];
        while got.len() < n {
            match self.conn.tls.read(&mut tmp) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    self.received += k;
                    got.extend_from_slice(&tmp[..k]);
                }
            }
        }
        got
    }
}
