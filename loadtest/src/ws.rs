//! WebSocket (RFC 6455) for `--mode websocket`: the upgrade request, client frames, and an
//! incremental reader of the server's side: first the 101 that switches the connection, then
//! frames, with data payloads consumed as they arrive (as `http.rs` consumes bodies), so one
//! event loop drives many tunnels without keeping messages around.

use crate::http::ReadError;
use crate::recv::RecvBuf;

/// RFC 6455's sample key (section 1.3) and the `Sec-WebSocket-Accept` it gives. Every
/// connection sends this key: the key only proves to the client that the server speaks
/// WebSocket (no server checks that keys differ), and a constant lets the 101 be checked
/// without SHA-1.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The mask of every frame we send. RFC 6455 wants a fresh random key per frame, against
/// cache poisoning through proxies that do not understand WebSocket; a load generator talks
/// to the proxy under test only, and a constant key lets a message's frame be built once and
/// sent as it is (the masking is still done, so the server's unmasking work is real).
pub const MASK: [u8; 4] = [0x5b, 0x21, 0xc7, 0x3e];

/// The largest frame payload accepted from a server (a bound on a length field that could
/// say 2^63).
const MAX_PAYLOAD: u64 = 1 << 30;
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
const INITIAL_BUF: usize = 16 * 1024;

/// One client frame (FIN set, masked with `mask`).
pub fn encode_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | (opcode & 0x0f));
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A frame's header as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    pub fin: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
    /// Bytes the header takes (2 to 14).
    pub size: usize,
}

/// The header at the start of `buf`: `Ok(None)` when more bytes are needed.
pub fn decode_head(buf: &[u8]) -> Result<Option<FrameHead>, String> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err("frame with RSV bits set (no extension was negotiated)".into());
    }
    let (len, mut size) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (u64::from_be_bytes(a), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        match buf.get(size..size + 4) {
            Some(k) => {
                size += 4;
                Some([k[0], k[1], k[2], k[3]])
            }
            None => return Ok(None),
        }
    } else {
        None
    };
    if len > MAX_PAYLOAD {
        return Err(format!("frame of {len} bytes"));
    }
    let opcode = b0 & 0x0f;
    if opcode >= 0x8 && (len > 125 || b0 & 0x80 == 0) {
        return Err("control frame longer than 125 bytes or fragmented".into());
    }
    Ok(Some(FrameHead {
        fin: b0 & 0x80 != 0,
        opcode,
        mask,
        len,
        size,
    }))
}

/// What the reader found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// The 101 arrived and checked out: frames follow.
    Upgraded,
    /// The server answered the upgrade with another status (no tunnel).
    Refused { status: u16 },
    /// A whole data message (its frames' payloads added up).
    Message { len: u64 },
    /// A ping: the pong must carry this payload.
    Ping(Vec<u8>),
    /// A close frame, with its status code when it has one.
    Close(Option<u16>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the 101.
    Handshake,
    /// At a frame boundary.
    Head,
    /// Inside a data frame's payload: bytes left, whether it ends the message.
    Payload { left: u64, fin: bool },
    /// The upgrade was refused: nothing more is read on this connection.
    Refused,
}

/// Incremental reader of the server's side of one WebSocket connection, with its own buffer.
pub struct WsReader {
    recv: RecvBuf,
    state: State,
    /// Payload bytes of the message being read (across continuation frames).
    message: u64,
    /// Inside a fragmented message (a data frame without FIN was read).
    fragmented: bool,
}

impl Default for WsReader {
    fn default() -> Self {
        Self::new()
    }
}

impl WsReader {
    pub fn new() -> Self {
        WsReader {
            recv: RecvBuf::new(INITIAL_BUF),
            state: State::Handshake,
            message: 0,
            fragmented: false,
        }
    }

    /// Back to waiting for a 101 (a new connection).
    pub fn reset(&mut self) {
        self.recv.clear();
        self.state = State::Handshake;
        self.message = 0;
        self.fragmented = false;
    }

    /// The 101 has been read: the connection carries frames.
    pub fn upgraded(&self) -> bool {
        !matches!(self.state, State::Handshake | State::Refused)
    }

    /// Whether bytes of something not yet complete are buffered (a frame or the 101).
    pub fn is_mid_response(&self) -> bool {
        self.recv.start != self.recv.end
            || matches!(self.state, State::Payload { .. })
            || self.fragmented
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

    /// Parses what is buffered: `Ok(Some)` for each event, `Ok(None)` when more bytes are
    /// needed. Pongs are consumed silently.
    pub fn parse(&mut self) -> Result<Option<WsEvent>, ReadError> {
        loop {
            match self.state {
                State::Handshake => return self.parse_101(),
                State::Refused => return Ok(None),
                State::Head => {
                    let head = match decode_head(self.available()) {
                        Ok(Some(h)) => h,
                        Ok(None) => return Ok(None),
                        Err(e) => return Err(ReadError::Bad(e)),
                    };
                    if head.opcode >= 0x8 {
                        let total = head.size + head.len as usize;
                        if self.recv.end - self.recv.start < total {
                            return Ok(None);
                        }
                        let from = self.recv.start + head.size;
                        let mut payload = self.recv.buf[from..self.recv.start + total].to_vec();
                        if let Some(k) = head.mask {
                            for (i, b) in payload.iter_mut().enumerate() {
                                *b ^= k[i % 4];
                            }
                        }
                        self.recv.start += total;
                        match head.opcode {
                            OP_PING => return Ok(Some(WsEvent::Ping(payload))),
                            OP_PONG => continue,
                            OP_CLOSE => {
                                let code =
                                    payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                                return Ok(Some(WsEvent::Close(code)));
                            }
                            op => {
                                return Err(ReadError::Bad(format!("unknown control opcode {op}")))
                            }
                        }
                    }
                    match (head.opcode, self.fragmented) {
                        (OP_TEXT | OP_BINARY, false) | (OP_CONTINUATION, true) => {}
                        (op, _) => {
                            return Err(ReadError::Bad(format!(
                                "data frame with opcode {op} out of place"
                            )))
                        }
                    }
                    self.recv.start += head.size;
                    self.fragmented = !head.fin;
                    self.state = State::Payload {
                        left: head.len,
                        fin: head.fin,
                    };
                }
                State::Payload { left, fin } => {
                    let k = ((self.recv.end - self.recv.start) as u64).min(left);
                    self.recv.start += k as usize;
                    self.message += k;
                    if k < left {
                        self.state = State::Payload {
                            left: left - k,
                            fin,
                        };
                        return Ok(None);
                    }
                    self.state = State::Head;
                    if fin {
                        let len = std::mem::take(&mut self.message);
                        return Ok(Some(WsEvent::Message { len }));
                    }
                }
            }
        }
    }

    /// The 101: status, `Upgrade: websocket` and the accept key for [`KEY`].
    fn parse_101(&mut self) -> Result<Option<WsEvent>, ReadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(self.available()) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if self.recv.end - self.recv.start >= MAX_HEAD {
                    return Err(ReadError::Bad("response head too large".into()));
                }
                return Ok(None);
            }
            Err(e) => return Err(ReadError::Bad(format!("bad response head: {e}"))),
        };
        let status = resp.code.unwrap_or(0);
        if status != 101 {
            self.recv.start += n;
            self.state = State::Refused;
            return Ok(Some(WsEvent::Refused { status }));
        }
        let value = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        if !value("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
            return Err(ReadError::Bad("101 without Upgrade: websocket".into()));
        }
        if value("sec-websocket-accept").as_deref() != Some(ACCEPT) {
            return Err(ReadError::Bad(format!(
                "101 with Sec-WebSocket-Accept {:?}, want {ACCEPT}",
                value("sec-websocket-accept")
            )));
        }
        self.recv.start += n;
        self.state = State::Head;
        Ok(Some(WsEvent::Upgraded))
    }
}

/// The upgrade request: GET `path` with the WebSocket fields, then `headers` (a `Host` among
/// them replaces the URL's).
pub fn upgrade_request(path: &str, authority: &str, headers: &[(String, String)]) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !has("host") {
        req.push_str(&format!("Host: {authority}\r\n"));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: ringgate-load\r\n");
    }
    req.push_str(&format!(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    ));
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// The text message of `size` bytes every connection sends (ASCII, so valid UTF-8).
pub fn message(size: usize) -> Vec<u8> {
    b"ringgate-load websocket message "
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect()
}
