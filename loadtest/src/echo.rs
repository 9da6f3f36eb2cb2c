//! ringgate-ws-echo: a small WebSocket echo server for the `ws-echo` benchmark.
//!
//!     ringgate-ws-echo 127.0.0.1:0     # prints the port it listens on, then serves until killed
//!
//! The python echo (`scripts/ws-echo-upstream.py`) answers 10,000 to 13,000 small messages a
//! second on one core, less than one proxy core forwards (nginx: 42,000 in the bench), so a
//! benchmark behind it would measure python. This one is one thread with one event loop (edge-triggered epoll through mio, as
//! ringgate-load): the benchmark runs it on the load generator's core, where a thread per
//! connection would have the scheduler switch between tens of threads for every round of
//! messages (and give the load generator one share in fifty). Every complete frame of a read is
//! answered in one write. Data frames come back as they came (opcode, FIN, payload, unmasked),
//! pings get pongs, a close is answered with the same close and ends the connection; a request
//! without `Upgrade: websocket` gets `200 ok` and a close.

#[allow(dead_code)]
mod http;
#[allow(dead_code)]
mod recv;
#[allow(dead_code)]
mod ws;

use std::io::{self, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// The largest request head or frame accepted (a bound on memory per connection).
const MAX_FRAME: usize = 16 << 20;
const LISTENER: Token = Token(usize::MAX);

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string());
    if let Err(e) = run(&addr) {
        eprintln!("ringgate-ws-echo: {addr}: {e}");
        std::process::exit(2);
    }
}

/// One connection's buffers.
struct Client {
    sock: TcpStream,
    input: Vec<u8>,
    out: Vec<u8>,
    upgraded: bool,
    /// A close was answered (or the request was not an upgrade): end once `out` is written.
    closing: bool,
}

fn run(addr: &str) -> io::Result<()> {
    let addr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
    let mut listener = TcpListener::bind(addr)?;
    println!("{}", listener.local_addr()?.port());
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    let mut sock = match listener.accept() {
                        Ok((s, _)) => s,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    };
                    let _ = sock.set_nodelay(true);
                    let i = free.pop().unwrap_or_else(|| {
                        clients.push(None);
                        clients.len() - 1
                    });
                    if poll
                        .registry()
                        .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        free.push(i);
                        continue;
                    }
                    clients[i] = Some(Client {
                        sock,
                        input: Vec::with_capacity(16 * 1024),
                        out: Vec::with_capacity(16 * 1024),
                        upgraded: false,
                        closing: false,
                    });
                }
                continue;
            }
            let i = ev.token().0;
            let Some(Some(c)) = clients.get_mut(i) else {
                continue;
            };
            if !drive(c, &mut tmp) {
                if let Some(mut c) = clients[i].take() {
                    let _ = poll.registry().deregister(&mut c.sock);
                }
                free.push(i);
            }
        }
    }
}

/// Reads what there is, answers it, writes what it can; false when the connection is done.
fn drive(c: &mut Client, tmp: &mut [u8]) -> bool {
    let mut eof = false;
    loop {
        match c.sock.read(tmp) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => c.input.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    if !c.closing && !answer(c) {
        return false;
    }
    while !c.out.is_empty() {
        match c.sock.write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    if c.closing && c.out.is_empty() {
        let _ = c.sock.shutdown(std::net::Shutdown::Both);
        return false;
    }
    !eof
}

/// The upgrade, then every complete frame in `input`, answered into `out`; false on a
/// protocol error or an oversized head or frame.
fn answer(c: &mut Client) -> bool {
    if !c.upgraded {
        let Some(end) = c.input.windows(4).position(|w| w == b"\r\n\r\n") else {
            return c.input.len() <= 64 * 1024;
        };
        match handshake(&c.input[..end + 4]) {
            Some(a) => c.out.extend_from_slice(a.as_bytes()),
            None => {
                c.out.extend_from_slice(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
                );
                c.closing = true;
                return true;
            }
        }
        c.input.drain(..end + 4);
        c.upgraded = true;
    }
    let mut at = 0;
    loop {
        let h = match ws::decode_head(&c.input[at..]) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(_) => return false,
        };
        let total = h.size + h.len as usize;
        if c.input.len() - at < total {
            break;
        }
        let mut payload = c.input[at + h.size..at + total].to_vec();
        if let Some(k) = h.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= k[i % 4];
            }
        }
        at += total;
        match h.opcode {
            ws::OP_PING => frame(&mut c.out, true, ws::OP_PONG, &payload),
            ws::OP_PONG => {}
            ws::OP_CLOSE => {
                frame(&mut c.out, true, ws::OP_CLOSE, &payload);
                c.closing = true;
                break;
            }
            op => frame(&mut c.out, h.fin, op, &payload),
        }
    }
    c.input.drain(..at);
    c.input.len() <= MAX_FRAME + 14
}

/// The 101 for a WebSocket upgrade request head, or None when it is not one.
fn handshake(head: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(head).ok()?;
    let value = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    if !value("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return None;
    }
    let key = value("sec-websocket-key")?;
    Some(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept(&key)
    ))
}

/// A server frame (never masked).
fn frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8]) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + the RFC 6455 GUID)).
pub fn accept(key: &str) -> String {
    let digest = sha1(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes());
    base64(&digest)
}

/// SHA-1 (FIPS 180-4), for the handshake only: the crate has no SHA-1 of its own, and one
/// digest per connection needs no fast implementation.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(c.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(c.get(2).copied().unwrap_or(0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(T[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_rfc_6455() {
        assert_eq!(accept(ws::KEY), ws::ACCEPT);
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        // 56 bytes: the length no longer fits the first block's padding.
        assert_eq!(
            hex(&sha1(&[b'a'; 56])),
            "c2db330f6083854c99d4b5bfb6e8f29f201be699"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn handshake_answers_only_an_upgrade() {
        let a = handshake(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .expect("a 101");
        assert!(a.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(handshake(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_none());
    }
}
