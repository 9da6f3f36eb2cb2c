//! The event loop against a tiny in-test server (plain HTTP, or TLS with a required client
//! certificate, made with rcgen), one blocking thread per server connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use crate::args::Args;
use crate::worker::Stats;

/// What the test server answers.
#[derive(Clone, Copy)]
struct Behavior {
    body: usize,
    chunked: bool,
    /// Never answer (timeouts).
    silent: bool,
}

const OK: Behavior = Behavior {
    body: 3,
    chunked: false,
    silent: false,
};

struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections accepted.
    accepted: Arc<AtomicU64>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock accept().
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(tls: Option<Arc<ServerConfig>>, b: Behavior) -> Server {
    serve_with(tls, Arc::new(move |s: &mut dyn Rw| answer(s, b)))
}

/// A stream the test servers answer on (plain TCP or TLS).
trait Rw: Read + Write {}
impl<T: Read + Write> Rw for T {}

type Handler = Arc<dyn Fn(&mut dyn Rw) + Send + Sync>;

/// A server whose connections are each answered by `handler`, on a thread of their own.
fn serve_with(tls: Option<Arc<ServerConfig>>, handler: Handler) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let (st, acc) = (stop.clone(), accepted.clone());
    thread::spawn(move || {
        for sock in listener.incoming() {
            if st.load(Ordering::Relaxed) {
                return;
            }
            let Ok(sock) = sock else { continue };
            acc.fetch_add(1, Ordering::Relaxed);
            let tls = tls.clone();
            let handler = handler.clone();
            thread::spawn(move || {
                let _ = sock.set_nodelay(true);
                match tls {
                    Some(cfg) => {
                        let Ok(conn) = ServerConnection::new(cfg) else {
                            return;
                        };
                        let mut s = StreamOwned::new(conn, sock);
                        handler(&mut s);
                        s.conn.send_close_notify();
                        let _ = s.flush();
                    }
                    None => {
                        let mut s = sock;
                        handler(&mut s);
                    }
                }
            });
        }
    });
    Server {
        addr,
        stop,
        accepted,
    }
}

/// Answers every request head on the stream until the client closes or asks to close.
fn answer<S: Read + Write + ?Sized>(s: &mut S, b: Behavior) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            buf.drain(..end + 4);
            if b.silent {
                continue;
            }
            let close = head.contains("connection: close");
            let body = vec![b'x'; b.body];
            let mut resp = Vec::new();
            if b.chunked {
                resp.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n");
                if close {
                    resp.extend_from_slice(b"Connection: close\r\n");
                }
                resp.extend_from_slice(b"\r\n");
                for part in body.chunks(10_000) {
                    resp.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
                    resp.extend_from_slice(part);
                    resp.extend_from_slice(b"\r\n");
                }
                resp.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
            } else {
                let c = if close { "Connection: close\r\n" } else { "" };
                resp.extend_from_slice(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{c}\r\n", b.body).as_bytes(),
                );
                resp.extend_from_slice(&body);
            }
            if s.write_all(&resp).and_then(|()| s.flush()).is_err() {
                return;
            }
            if close {
                return;
            }
        }
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

/// A CA, a server certificate for localhost and a client certificate, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    server: Arc<ServerConfig>,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "load test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut sp = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let skey = KeyPair::generate().unwrap();
    let server = sp.signed_by(&skey, &issuer).unwrap();
    let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
    cp.distinguished_name
        .push(DnType::CommonName, "load client");
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let ckey = KeyPair::generate().unwrap();
    let client = cp.signed_by(&ckey, &issuer).unwrap();
    let w = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
    w("ca.crt", ca.pem());
    w("client.crt", client.pem());
    w("client.key", ckey.serialize_pem());

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(skey.serialize_der()).unwrap();
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.der().clone()], key)
        .unwrap();
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Pki {
        dir,
        server: Arc::new(cfg),
    }
}

fn tls_args(p: &Path) -> Vec<String> {
    let f = |n: &str| p.join(n).display().to_string();
    vec![
        "--cacert".into(),
        f("ca.crt"),
        "--cert".into(),
        f("client.crt"),
        "--key".into(),
        f("client.key"),
        "--sni".into(),
        "localhost".into(),
    ]
}

/// Runs ringgate-load with these arguments (quiet) and returns its results and duration.
fn load(url: String, extra: &[&str], tls_extra: &[String]) -> (Stats, Duration) {
    let mut v: Vec<String> = vec!["ringgate-load".into(), url];
    v.extend(extra.iter().map(|s| s.to_string()));
    v.extend(tls_extra.iter().cloned());
    let args = Args::try_parse_from(v).unwrap();
    let plan = args.plan().unwrap();
    let tls = plan
        .target
        .tls
        .then(|| crate::tls::build(&args, &plan.target.host).unwrap());
    crate::drive(&plan, tls.as_ref(), true).unwrap()
}

fn errors(st: &Stats) -> u64 {
    st.errors.values().sum()
}

#[test]
fn keepalive_plain_exact_count_over_threads_and_pipelines() {
    let srv = serve(None, OK);
    let url = format!("http://{}/", srv.addr);
    let (st, _) = load(url.clone(), &["-c", "4", "-n", "500"], &[]);
    assert_eq!(st.requests, 500);
    assert_eq!(st.statuses.get(&200), Some(&500));
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    assert_eq!(st.body_bytes, 1500);
    let before = srv.accepted.load(Ordering::Relaxed);
    let (st, _) = load(
        url,
        &["-t", "2", "-c", "6", "--pipeline", "4", "-n", "400"],
        &[],
    );
    assert_eq!(st.requests, 400);
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    // Keep-alive: one connection per slot.
    assert_eq!(srv.accepted.load(Ordering::Relaxed) - before, 6);
}

#[test]
fn chunked_64k_bodies_are_read_to_the_end() {
    let srv = serve(
        None,
        Behavior {
            body: 65536,
            chunked: true,
            silent: false,
        },
    );
    let (st, _) = load(
        format!("http://{}/", srv.addr),
        &["-c", "3", "-n", "60"],
        &[],
    );
    assert_eq!(st.requests, 60);
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    assert_eq!(st.body_bytes, 60 * 65536);
}

#[test]
fn tls_keepalive_and_full_handshakes() {
    let p = pki();
    let srv = serve(Some(p.server.clone()), OK);
    let url = format!("https://127.0.0.1:{}/", srv.addr.port());
    let a = tls_args(p.dir.path());
    let (st, _) = load(url.clone(), &["-c", "3", "-n", "300", "-t", "2"], &a);
    assert_eq!(st.requests, 300);
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    assert_eq!(st.hs_full, 3);
    let (st, _) = load(url, &["--mode", "handshake", "-c", "2", "-n", "20"], &a);
    assert_eq!(st.requests, 20);
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    assert_eq!((st.hs_full, st.hs_resumed), (20, 0));
}

#[test]
fn tls_resumption_13_and_12_with_a_store_per_connection() {
    let p = pki();
    let srv = serve(
        Some(p.server.clone()),
        Behavior {
            body: 20_000,
            chunked: false,
            silent: false,
        },
    );
    let url = format!("https://127.0.0.1:{}/", srv.addr.port());
    let a = tls_args(p.dir.path());
    for v in ["1.3", "1.2"] {
        let (st, _) = load(
            url.clone(),
            &[
                "--mode",
                "handshake",
                "--resume",
                "--tls",
                v,
                "-c",
                "3",
                "-n",
                "30",
            ],
            &a,
        );
        assert_eq!(st.requests, 30, "TLS {v}");
        assert_eq!(errors(&st), 0, "TLS {v}: {:?}", st.samples);
        // One full handshake per connection slot, every later one resumed.
        assert_eq!((st.hs_full, st.hs_resumed), (3, 27), "TLS {v}");
        assert_eq!(st.body_bytes, 30 * 20_000);
    }
}

#[test]
fn open_loop_keeps_the_rate() {
    let srv = serve(None, OK);
    let t = Instant::now();
    let (st, elapsed) = load(
        format!("http://{}/", srv.addr),
        &["-c", "4", "--rate", "400", "-d", "500ms"],
        &[],
    );
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    // 400/s for 0.5 s: 200 requests due (the last ones may fall just past the end).
    assert!((195..=201).contains(&st.requests), "{}", st.requests);
    assert!(elapsed < Duration::from_millis(700), "{elapsed:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
    // Latency from the scheduled time: small on an idle loopback server.
    assert!(st.hist.value_at_quantile(0.5) < 5_000);
}

#[test]
fn idle_connections_are_held_for_the_duration() {
    let p = pki();
    let srv = serve(Some(p.server.clone()), OK);
    let url = format!("https://127.0.0.1:{}/", srv.addr.port());
    let a = tls_args(p.dir.path());
    let t = Instant::now();
    let (st, _) = load(url, &["--idle", "40", "--idle-request", "-d", "300ms"], &a);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    assert_eq!(st.idle_established, 40);
    assert_eq!(st.idle_open_at_end, 40);
    assert_eq!(st.requests, 40);
    assert_eq!(st.hs_full, 40);
    assert_eq!(srv.accepted.load(Ordering::Relaxed), 40);
}

#[test]
fn errors_are_counted_by_cause() {
    // No answer: timeouts.
    let srv = serve(
        None,
        Behavior {
            body: 0,
            chunked: false,
            silent: true,
        },
    );
    let t = Instant::now();
    let (st, _) = load(
        format!("http://{}/", srv.addr),
        &["-c", "2", "-n", "2", "--timeout", "200ms"],
        &[],
    );
    assert_eq!(st.errors["timeout"], 2);
    assert_eq!(st.requests, 0);
    assert!(t.elapsed() < Duration::from_secs(2));

    // Nobody listens: connect errors, one per claimed request.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (st, _) = load(
        format!("http://127.0.0.1:{port}/"),
        &["--mode", "handshake", "-c", "1", "-n", "5"],
        &[],
    );
    assert_eq!(st.errors["connect"], 5);

    // The server requires a client certificate and none is given: TLS errors.
    let p = pki();
    let srv = serve(Some(p.server.clone()), OK);
    let ca = p.dir.path().join("ca.crt").display().to_string();
    let (st, _) = load(
        format!("https://127.0.0.1:{}/", srv.addr.port()),
        &[
            "--mode",
            "handshake",
            "-c",
            "1",
            "-n",
            "3",
            "--sni",
            "localhost",
            "--cacert",
            &ca,
        ],
        &[],
    );
    assert_eq!(st.requests, 0);
    assert_eq!(st.errors["tls"], 3, "{:?}", st.samples);
}

// ------------------------------------------------------------------ websocket mode

use crate::ws::{self, decode_head, encode_frame, WsEvent, WsReader};

/// A server frame (unmasked), FIN as given.
fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
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
    out
}

#[test]
fn ws_frames_round_trip_at_every_length_class() {
    for (len, head) in [
        (0, 6),
        (125, 6),
        (126, 8),
        (65535, 8),
        (65536, 14),
        (70_000, 14),
    ] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let f = encode_frame(ws::OP_BINARY, &payload, ws::MASK);
        let h = decode_head(&f).unwrap().expect("a whole header");
        assert_eq!(
            (h.fin, h.opcode, h.len, h.size),
            (true, ws::OP_BINARY, len as u64, head)
        );
        assert_eq!(h.mask, Some(ws::MASK));
        assert_eq!(f.len(), head + len);
        // Masked on the wire (where the payload is not empty), the same bytes once unmasked.
        let wire = &f[h.size..];
        if len > 4 {
            assert_ne!(wire, &payload[..]);
        }
        let back: Vec<u8> = wire
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ ws::MASK[i % 4])
            .collect();
        assert_eq!(back, payload);
        // Every strict prefix of the header asks for more bytes.
        for cut in 0..head {
            assert_eq!(decode_head(&f[..cut]), Ok(None), "len {len}, cut {cut}");
        }
    }
}

#[test]
fn ws_decode_head_refuses_what_rfc_6455_forbids() {
    // RSV1 without a negotiated extension.
    assert!(decode_head(&[0xC1, 0x00]).is_err());
    // A ping of 126 bytes; a fragmented close.
    assert!(decode_head(&[0x89, 126, 0, 126]).is_err());
    assert!(decode_head(&[0x08, 0x00]).is_err());
    // A length beyond any message we would hold.
    let mut huge = vec![0x82, 127];
    huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
    assert!(decode_head(&huge).is_err());
    assert!(decode_head(&server_frame(true, ws::OP_TEXT, b"ok"))
        .unwrap()
        .is_some());
}

const SWITCH: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// Feeds `data` to a fresh reader `step` bytes at a time; returns the events in order.
fn ws_events(data: &[u8], step: usize) -> Result<Vec<WsEvent>, String> {
    let mut r = WsReader::new();
    let mut got = Vec::new();
    for piece in data.chunks(step) {
        let mut rest = piece;
        while !rest.is_empty() {
            let space = r.space();
            let n = space.len().min(rest.len());
            space[..n].copy_from_slice(&rest[..n]);
            r.filled(n);
            rest = &rest[n..];
            while let Some(ev) = r.parse().map_err(|e| format!("{e:?}"))? {
                got.push(ev);
            }
        }
    }
    assert!(!r.is_mid_response() || got.is_empty());
    Ok(got)
}

#[test]
fn ws_reader_reads_the_101_then_messages_split_anywhere() {
    let mut data = SWITCH.to_vec();
    data.extend(server_frame(true, ws::OP_TEXT, b"hello"));
    data.extend(server_frame(true, ws::OP_PING, b"p"));
    // A binary message in two frames, a pong between them (control frames may interleave).
    data.extend(server_frame(false, ws::OP_BINARY, b"abc"));
    data.extend(server_frame(true, ws::OP_PONG, b""));
    data.extend(server_frame(true, ws::OP_CONTINUATION, b"defg"));
    data.extend(server_frame(true, ws::OP_BINARY, &vec![7u8; 100_000]));
    data.extend(server_frame(true, ws::OP_CLOSE, &1000u16.to_be_bytes()));
    let want = vec![
        WsEvent::Upgraded,
        WsEvent::Message { len: 5 },
        WsEvent::Ping(b"p".to_vec()),
        WsEvent::Message { len: 7 },
        WsEvent::Message { len: 100_000 },
        WsEvent::Close(Some(1000)),
    ];
    for step in [1, 2, 7, 100, 1 << 20] {
        assert_eq!(ws_events(&data, step), Ok(want.clone()), "step {step}");
    }
}

#[test]
fn ws_reader_refuses_what_is_not_a_proper_101() {
    assert_eq!(
        ws_events(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 5),
        Ok(vec![WsEvent::Refused { status: 403 }])
    );
    let wrong_key = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n";
    assert!(ws_events(wrong_key, 4)
        .unwrap_err()
        .contains("Sec-WebSocket-Accept"));
    let no_upgrade = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert!(ws_events(no_upgrade, 4).unwrap_err().contains("Upgrade"));
    // A continuation with no message begun.
    let mut data = SWITCH.to_vec();
    data.extend(server_frame(true, ws::OP_CONTINUATION, b"x"));
    assert!(ws_events(&data, 3).unwrap_err().contains("out of place"));
}

#[test]
fn ws_upgrade_request_and_plan() {
    let p = args(&[
        "http://127.0.0.1:1/chat?x=1",
        "--mode",
        "websocket",
        "-H",
        "X-A: b",
    ])
    .plan()
    .unwrap();
    let req = String::from_utf8(p.request).unwrap();
    assert!(
        req.starts_with("GET /chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"),
        "{req}"
    );
    for line in [
        "Upgrade: websocket\r\n",
        "Connection: Upgrade\r\n",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        "Sec-WebSocket-Version: 13\r\n",
        "X-A: b\r\n",
    ] {
        assert!(req.contains(line), "{line} in {req}");
    }
    assert!(req.ends_with("\r\n\r\n"));
    let ws = p.ws.expect("a websocket plan");
    assert_eq!(ws.message_size, 32);
    let h = decode_head(&ws.frame).unwrap().unwrap();
    assert_eq!((h.opcode, h.len, h.mask), (ws::OP_TEXT, 32, Some(ws::MASK)));
    let p = args(&[
        "http://127.0.0.1:1/",
        "--mode",
        "websocket",
        "--message-size",
        "4000",
        "--pipeline",
        "8",
    ])
    .plan()
    .unwrap();
    assert_eq!((p.pipeline, p.ws.map(|w| w.frame.len())), (8, Some(4008)));
    assert!(
        args(&["http://127.0.0.1:1/", "--mode", "websocket", "-X", "POST"])
            .plan()
            .is_err()
    );
    assert!(args(&[
        "http://127.0.0.1:1/",
        "--mode",
        "websocket",
        "--body-size",
        "3"
    ])
    .plan()
    .is_err());
    assert!(args(&["http://127.0.0.1:1/", "--message-size", "64"])
        .plan()
        .is_err());
    assert!(
        args(&["http://127.0.0.1:1/", "--mode", "websocket", "--idle", "3"])
            .plan()
            .is_err()
    );
}

fn args(v: &[&str]) -> Args {
    let mut all = vec!["ringgate-load"];
    all.extend_from_slice(v);
    Args::try_parse_from(all).unwrap()
}

/// Answers a WebSocket upgrade with the 101 for [`ws::KEY`] (or `refuse` as the status), then
/// echoes every data frame unmasked and answers a close; counts the messages in `seen`.
fn ws_echo(s: &mut dyn Rw, refuse: Option<u16>, seen: &AtomicU64) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    assert!(
        head.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq=="),
        "{head}"
    );
    if let Some(status) = refuse {
        let _ =
            s.write_all(format!("HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n").as_bytes());
        let _ = s.flush();
        return;
    }
    if s.write_all(SWITCH).and_then(|()| s.flush()).is_err() {
        return;
    }
    buf.drain(..end);
    loop {
        let mut out = Vec::new();
        while let Ok(Some(h)) = decode_head(&buf) {
            let total = h.size + h.len as usize;
            if buf.len() < total {
                break;
            }
            let k = h.mask.expect("client frames are masked");
            let payload: Vec<u8> = buf[h.size..total]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ k[i % 4])
                .collect();
            buf.drain(..total);
            if h.opcode == ws::OP_CLOSE {
                out.extend(server_frame(true, ws::OP_CLOSE, &payload));
            } else {
                seen.fetch_add(1, Ordering::Relaxed);
                out.extend(server_frame(true, h.opcode, &payload));
            }
        }
        if !out.is_empty() && s.write_all(&out).and_then(|()| s.flush()).is_err() {
            return;
        }
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

#[test]
fn websocket_mode_echoes_exact_counts_plain_and_tls_with_pipelining() {
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    let srv = serve_with(None, Arc::new(move |s: &mut dyn Rw| ws_echo(s, None, &s2)));
    let (st, _) = load(
        format!("http://{}/ws", srv.addr),
        &["--mode", "websocket", "-c", "3", "-n", "300"],
        &[],
    );
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    assert_eq!(st.requests, 300);
    assert_eq!(st.ws_upgrades, 3);
    assert_eq!(st.statuses.get(&101), Some(&3));
    assert_eq!(st.body_bytes, 300 * 32);
    assert_eq!(seen.load(Ordering::Relaxed), 300);
    assert_eq!(srv.accepted.load(Ordering::Relaxed), 3);

    let p = pki();
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    let srv = serve_with(
        Some(p.server.clone()),
        Arc::new(move |s: &mut dyn Rw| ws_echo(s, None, &s2)),
    );
    let (st, _) = load(
        format!("https://127.0.0.1:{}/ws", srv.addr.port()),
        &[
            "--mode",
            "websocket",
            "-t",
            "2",
            "-c",
            "4",
            "--pipeline",
            "5",
            "-n",
            "400",
            "--message-size",
            "70000",
        ],
        &tls_args(p.dir.path()),
    );
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    assert_eq!(st.requests, 400);
    assert_eq!((st.ws_upgrades, st.hs_full), (4, 4));
    assert_eq!(st.body_bytes, 400 * 70_000);
    assert_eq!(seen.load(Ordering::Relaxed), 400);
}

#[test]
fn websocket_mode_counts_a_refused_upgrade_by_status() {
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    let srv = serve_with(
        None,
        Arc::new(move |s: &mut dyn Rw| ws_echo(s, Some(403), &s2)),
    );
    let (st, _) = load(
        format!("http://{}/ws", srv.addr),
        &["--mode", "websocket", "-c", "2", "-n", "10", "-d", "300ms"],
        &[],
    );
    assert_eq!(st.requests, 0);
    assert_eq!(st.ws_upgrades, 0);
    assert!(st.errors["bad_response"] >= 2, "{:?}", st.errors);
    assert!(
        st.statuses.get(&403).is_some_and(|n| *n >= 2),
        "{:?}",
        st.statuses
    );
    assert!(
        st.samples
            .iter()
            .any(|s| s.contains("upgrade refused: HTTP 403")),
        "{:?}",
        st.samples
    );
    assert_eq!(seen.load(Ordering::Relaxed), 0);
}

// ---------------------------------------------------------------- --mode h2

/// What the tests' HTTP/2 server does with each stream.
#[derive(Clone, Copy)]
struct H2Behavior {
    /// Response body bytes.
    body: usize,
    /// Holds each response this long (so that the client's streams overlap).
    delay: Duration,
    /// graceful_shutdown (GOAWAY) once this many streams were accepted on a connection.
    goaway_after: Option<u64>,
    /// abrupt_shutdown (GOAWAY with this code) once this many streams were accepted.
    goaway_error: Option<(u64, h2::Reason)>,
    /// Every Nth stream of a connection is reset with this reason instead of answered.
    reset: Option<(u64, h2::Reason)>,
    /// Offer h2 in ALPN.
    alpn_h2: bool,
    /// Answer as a gRPC server: `content-type: application/grpc` and this `grpc-status`, in
    /// trailers after the body, or in the head (trailers-only) without a body.
    grpc_status: Option<&'static str>,
}

const H2_OK: H2Behavior = H2Behavior {
    body: 3,
    delay: Duration::ZERO,
    goaway_after: None,
    goaway_error: None,
    reset: None,
    alpn_h2: true,
    grpc_status: None,
};

/// What the HTTP/2 server saw.
#[derive(Default)]
struct H2Seen {
    streams: AtomicU64,
    /// The most streams open at once on one connection.
    max_concurrent: AtomicU64,
    /// Request body bytes received.
    body_bytes: AtomicU64,
    /// Requests whose :authority, user-agent or content-length were not what the client
    /// was told to send.
    bad: AtomicU64,
}

/// Polls `f` until it is ready, sleeping 100 us between polls: the tests' HTTP/2 server runs
/// on non-blocking sockets without a reactor.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::sleep(Duration::from_micros(100));
    }
}

/// An HTTP/2 server (TLS with `tls`, else h2c with prior knowledge), a thread per connection.
fn serve_h2(
    tls: Option<Arc<ServerConfig>>,
    b: H2Behavior,
    authority: String,
    body_size: usize,
) -> (Server, Arc<H2Seen>) {
    let seen = Arc::new(H2Seen::default());
    let tls = tls.map(|cfg| {
        let mut cfg = (*cfg).clone();
        // Without h2: no ALPN at all (a server with protocols of its own, none of them h2,
        // ends the handshake with an alert instead).
        cfg.alpn_protocols = if b.alpn_h2 {
            vec![b"h2".to_vec()]
        } else {
            Vec::new()
        };
        Arc::new(cfg)
    });
    let seen2 = seen.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let (st, acc) = (stop.clone(), accepted.clone());
    thread::spawn(move || {
        for sock in listener.incoming() {
            if st.load(Ordering::Relaxed) {
                return;
            }
            let Ok(sock) = sock else { continue };
            acc.fetch_add(1, Ordering::Relaxed);
            let (tls, seen, authority) = (tls.clone(), seen2.clone(), authority.clone());
            thread::spawn(move || {
                let _ = sock.set_nodelay(true);
                sock.set_nonblocking(true).unwrap();
                let conn = tls.map(|cfg| Box::new(ServerConnection::new(cfg).unwrap()));
                let mut io = crate::h2io::H2Io::new(sock, conn);
                if block_on(std::future::poll_fn(|_| io.poll_handshake())).is_err() {
                    return;
                }
                h2_connection(io, b, &seen, &authority, body_size);
            });
        }
    });
    (
        Server {
            addr,
            stop,
            accepted,
        },
        seen,
    )
}

fn h2_connection<T>(io: T, b: H2Behavior, seen: &H2Seen, authority: &str, body_size: usize)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use std::future::{poll_fn, Future};
    use std::pin::Pin;
    use std::task::Poll;
    let Ok(mut conn) = block_on(h2::server::handshake(io)) else {
        return;
    };
    let open = std::cell::Cell::new(0u64);
    let mut accepted = 0u64;
    let mut streams: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = Vec::new();
    block_on(poll_fn(|cx| {
        loop {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((req, mut respond)))) => {
                    accepted += 1;
                    seen.streams.fetch_add(1, Ordering::Relaxed);
                    if b.goaway_after == Some(accepted) {
                        conn.graceful_shutdown();
                    }
                    if let Some((n, reason)) = b.goaway_error {
                        if n == accepted {
                            conn.abrupt_shutdown(reason);
                        }
                    }
                    let n = accepted;
                    let open = &open;
                    streams.push(Box::pin(async move {
                        open.set(open.get() + 1);
                        seen.max_concurrent.fetch_max(open.get(), Ordering::Relaxed);
                        let (parts, mut body) = req.into_parts();
                        let cl = parts
                            .headers
                            .get("content-length")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<usize>().ok());
                        let expect_cl = (body_size > 0).then_some(body_size);
                        if parts.uri.authority().map(|a| a.as_str()) != Some(authority)
                            || parts
                                .headers
                                .get("user-agent")
                                .is_none_or(|v| v != "ringgate-load")
                            || parts.headers.contains_key("host")
                            || cl != expect_cl
                        {
                            seen.bad.fetch_add(1, Ordering::Relaxed);
                        }
                        let mut got = 0;
                        while let Some(Ok(chunk)) = poll_fn(|cx| body.poll_data(cx)).await {
                            got += chunk.len();
                            let _ = body.flow_control().release_capacity(chunk.len());
                        }
                        seen.body_bytes.fetch_add(got as u64, Ordering::Relaxed);
                        let until = Instant::now() + b.delay;
                        poll_fn(|_| {
                            if Instant::now() >= until {
                                Poll::Ready(())
                            } else {
                                Poll::Pending
                            }
                        })
                        .await;
                        open.set(open.get() - 1);
                        if let Some((every, reason)) = b.reset {
                            if n.is_multiple_of(every) {
                                respond.send_reset(reason);
                                return;
                            }
                        }
                        let mut resp = http::Response::builder().status(200);
                        if let Some(gs) = b.grpc_status {
                            resp = resp.header("content-type", "application/grpc");
                            if b.body == 0 {
                                resp = resp.header("grpc-status", gs);
                            }
                        }
                        let resp = resp.body(()).unwrap();
                        let Ok(mut send) = respond.send_response(resp, b.body == 0) else {
                            return;
                        };
                        if b.body > 0 {
                            let body = bytes::Bytes::from(vec![b'x'; b.body]);
                            let _ = send.send_data(body, b.grpc_status.is_none());
                            if let Some(gs) = b.grpc_status {
                                let mut t = http::HeaderMap::new();
                                t.insert("grpc-status", http::HeaderValue::from_static(gs));
                                let _ = send.send_trailers(t);
                            }
                        }
                    }));
                }
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => break,
            }
        }
        streams.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        Poll::Pending
    }));
}

#[test]
fn h2_mode_tls_keeps_the_streams_in_flight_and_reads_whole_bodies() {
    let p = pki();
    // A body larger than HTTP/2's default window (65,535): the client's windows must let it
    // through and be given back.
    let b = H2Behavior {
        body: 70_000,
        delay: Duration::from_millis(2),
        ..H2_OK
    };
    let (srv, seen) = serve_h2(Some(p.server.clone()), b, "localhost:8443".into(), 0);
    let url = format!("https://{}/x", srv.addr);
    let (st, _) = load(
        url,
        &[
            "--mode",
            "h2",
            "-c",
            "2",
            "--streams",
            "8",
            "-n",
            "400",
            "-H",
            "Host: localhost:8443",
        ],
        &tls_args(p.dir.path()),
    );
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    assert_eq!(st.requests, 400);
    assert_eq!(st.statuses.get(&200), Some(&400));
    assert_eq!(st.body_bytes, 400 * 70_000);
    assert_eq!((st.hs_full, st.h2_connections, st.h2_goaways), (2, 2, 0));
    assert_eq!(srv.accepted.load(Ordering::Relaxed), 2);
    assert_eq!(seen.streams.load(Ordering::Relaxed), 400);
    assert_eq!(seen.bad.load(Ordering::Relaxed), 0);
    assert_eq!(seen.max_concurrent.load(Ordering::Relaxed), 8);
}

#[test]
fn h2_mode_reconnects_after_goaway_without_losing_a_request() {
    let b = H2Behavior {
        goaway_after: Some(50),
        ..H2_OK
    };
    let (srv, seen) = serve_h2(None, b, "127.0.0.1:1".into(), 0);
    let url = format!("http://{}/", srv.addr);
    let (st, _) = load(
        url,
        &[
            "--mode",
            "h2",
            "-c",
            "2",
            "--streams",
            "4",
            "-n",
            "1000",
            "-H",
            "Host: 127.0.0.1:1",
        ],
        &[],
    );
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    assert_eq!(st.requests, 1000);
    assert_eq!(st.statuses.get(&200), Some(&1000));
    // 50 streams a connection, 1000 requests: 20 connections at least, each GOAWAY but
    // perhaps the last ones followed by a new connection.
    assert!(st.h2_connections >= 20, "{}", st.h2_connections);
    assert!(
        st.h2_goaways + 2 >= st.h2_connections,
        "{} goaways",
        st.h2_goaways
    );
    assert_eq!(srv.accepted.load(Ordering::Relaxed), st.h2_connections);
    assert_eq!(seen.streams.load(Ordering::Relaxed), 1000 + st.h2_retried);
    assert_eq!(seen.bad.load(Ordering::Relaxed), 0);
    let no_error = [("NO_ERROR".to_string(), st.h2_goaways)];
    assert_eq!(st.h2_goaway_reasons, no_error.into_iter().collect());
}

#[test]
fn h2_mode_counts_a_goaway_with_an_error_code_as_an_error() {
    let b = H2Behavior {
        goaway_error: Some((20, h2::Reason::ENHANCE_YOUR_CALM)),
        ..H2_OK
    };
    let (srv, _) = serve_h2(None, b, "127.0.0.1:1".into(), 0);
    let url = format!("http://{}/", srv.addr);
    let (st, _) = load(
        url,
        &[
            "--mode",
            "h2",
            "-c",
            "1",
            "-n",
            "100",
            "-H",
            "Host: 127.0.0.1:1",
        ],
        &[],
    );
    // Every connection ends with the GOAWAY after 20 streams; the client goes on with a new
    // one each time.
    let calm = st.h2_goaway_reasons.get("ENHANCE_YOUR_CALM").copied();
    assert!(calm.is_some_and(|n| n >= 4), "{:?}", st.h2_goaway_reasons);
    assert_eq!(st.h2_goaways, calm.unwrap_or(0));
    assert!(st.errors["closed"] >= calm.unwrap_or(0));
    assert!(
        st.samples
            .iter()
            .any(|m| m.contains("GOAWAY") && m.contains("ENHANCE_YOUR_CALM")),
        "{:?}",
        st.samples
    );
    assert!(
        st.requests >= 80 && st.requests + errors(&st) >= 100,
        "{}",
        st.requests
    );
}

#[test]
fn h2_mode_sends_refused_streams_again_and_counts_resets() {
    // REFUSED_STREAM: not processed, sent again, not an error.
    let b = H2Behavior {
        reset: Some((5, h2::Reason::REFUSED_STREAM)),
        ..H2_OK
    };
    let (srv, seen) = serve_h2(None, b, "127.0.0.1:1".into(), 5000);
    let url = format!("http://{}/", srv.addr);
    let h2_post = [
        "--mode",
        "h2",
        "-c",
        "1",
        "--streams",
        "3",
        "-n",
        "200",
        "-X",
        "POST",
        "--body-size",
        "5000",
        "-H",
        "Host: 127.0.0.1:1",
    ];
    let (st, _) = load(url, &h2_post, &[]);
    assert_eq!(errors(&st), 0, "{:?}", st.samples);
    assert_eq!(st.requests, 200);
    assert_eq!(st.h2_retried, seen.streams.load(Ordering::Relaxed) - 200);
    assert!(st.h2_retried >= 40, "{}", st.h2_retried);
    assert_eq!(
        seen.body_bytes.load(Ordering::Relaxed),
        5000 * seen.streams.load(Ordering::Relaxed)
    );
    assert_eq!(seen.bad.load(Ordering::Relaxed), 0);
    drop(srv);

    // Any other reset: the request is lost and counted as an error (`closed`).
    let b = H2Behavior {
        reset: Some((10, h2::Reason::INTERNAL_ERROR)),
        ..H2_OK
    };
    let (srv, _) = serve_h2(None, b, "127.0.0.1:1".into(), 5000);
    let url = format!("http://{}/", srv.addr);
    let (st, _) = load(url, &h2_post, &[]);
    assert_eq!(st.errors["closed"], 20, "{:?}", st.samples);
    assert_eq!(errors(&st), 20);
    assert_eq!(st.requests, 180);
    assert!(st.samples[0].contains("INTERNAL_ERROR"), "{:?}", st.samples);
}

#[test]
fn h2_mode_fails_a_server_that_does_not_choose_h2() {
    let p = pki();
    let b = H2Behavior {
        alpn_h2: false,
        ..H2_OK
    };
    let (srv, _) = serve_h2(Some(p.server.clone()), b, "localhost".into(), 0);
    let url = format!("https://{}/", srv.addr);
    let (st, _) = load(
        url,
        &["--mode", "h2", "-c", "1", "-d", "200ms"],
        &tls_args(p.dir.path()),
    );
    assert_eq!(st.requests, 0);
    assert!(st.errors["tls"] > 0);
    assert_eq!(errors(&st), st.errors["tls"]);
    assert!(
        st.samples[0].contains("did not choose h2 in ALPN (none)"),
        "{:?}",
        st.samples
    );
}

#[test]
fn h2_plan_from_the_command_line() {
    let p = args(&[
        "https://127.0.0.1:8443/a?b=1",
        "--mode",
        "h2",
        "--streams",
        "10",
        "-X",
        "POST",
        "--body-size",
        "3",
        "-H",
        "Host: localhost:8443",
        "-H",
        "X-Test: 1",
        "-k",
    ])
    .plan()
    .unwrap();
    let h2 = p.h2.unwrap();
    assert_eq!(h2.streams, 10);
    assert_eq!(h2.method, http::Method::POST);
    assert_eq!(h2.uri.to_string(), "https://localhost:8443/a?b=1");
    assert!(!h2.headers.contains_key("host"));
    assert_eq!(h2.headers["x-test"], "1");
    assert_eq!(h2.headers["content-length"], "3");
    assert_eq!(h2.headers["user-agent"], "ringgate-load");
    assert_eq!(&h2.body[..], b"xxx");
    // The URL's authority without a Host header; h2c for http://.
    let p = args(&["http://127.0.0.1:8080/", "--mode", "h2"])
        .plan()
        .unwrap();
    let h2 = p.h2.unwrap();
    assert_eq!(h2.uri.to_string(), "http://127.0.0.1:8080/");
    assert_eq!(h2.streams, 1);
    assert!(!h2.headers.contains_key("content-length"));
    assert!(args(&["http://127.0.0.1:8080/"])
        .plan()
        .unwrap()
        .h2
        .is_none());
    // What h2 mode does not take.
    for bad in [
        &["--streams", "0"][..],
        &["--pipeline", "2"],
        &["--rate", "100"],
        &["--idle", "5"],
        &["-H", "Connection: close"],
        &["-H", "Transfer-Encoding: chunked"],
        &["-H", "TE: gzip"],
    ] {
        let mut v = vec!["http://127.0.0.1:1/", "--mode", "h2"];
        v.extend_from_slice(bad);
        assert!(args(&v).plan().is_err(), "{bad:?}");
    }
    assert!(
        args(&["http://127.0.0.1:1/", "--mode", "h2", "-H", "TE: trailers"])
            .plan()
            .is_ok()
    );
    assert!(args(&["http://127.0.0.1:1/", "--streams", "2"])
        .plan()
        .is_err());
}

// ---------------------------------------------------------------- --mode grpc

#[test]
fn grpc_response_check_passes_only_the_echo_with_grpc_status_0() {
    use crate::grpc::{check, frame, is_grpc_content_type, messages, payload, Response};
    let sent = frame(&payload(32));
    assert_eq!(sent.len(), 37);
    assert_eq!(&sent[..5], &[0, 0, 0, 0, 32]);
    assert_eq!(&sent[5..8], b"abc");
    assert_eq!(messages(&sent), Ok(1));
    assert_eq!(messages(&[&sent[..], &sent[..]].concat()), Ok(2));
    assert!(messages(&sent[..36]).is_err());
    assert!(messages(&sent[..3]).is_err());
    assert!(messages(&[1, 0, 0, 0, 0]).is_err(), "compressed");
    assert_eq!(messages(b""), Ok(0));
    for ok in [
        "application/grpc",
        "application/grpc+proto",
        "Application/GRPC;x=1",
    ] {
        assert!(is_grpc_content_type(ok.as_bytes()), "{ok}");
    }
    for bad in ["application/grpcx", "application/json", "text/plain", ""] {
        assert!(!is_grpc_content_type(bad.as_bytes()), "{bad}");
    }

    let trailers = |status: Option<&'static str>, msg: Option<&'static str>| {
        let mut t = http::HeaderMap::new();
        if let Some(s) = status {
            t.insert("grpc-status", http::HeaderValue::from_static(s));
        }
        if let Some(m) = msg {
            t.insert("grpc-message", http::HeaderValue::from_static(m));
        }
        t
    };
    let ok_t = trailers(Some("0"), None);
    let good = Response {
        status: 200,
        content_type: Some(b"application/grpc"),
        trailers: Some(&ok_t),
        body_len: 37,
        body_matches: true,
    };
    assert_eq!(check(&good, &sent), Ok(()));
    assert_eq!(crate::grpc::status_of(&good), "0");
    let kind = |r: Response<'_>| check(&r, &sent).map_err(|f| (f.kind, f.msg));

    // grpc-status: missing (no trailers, or trailers without it), or not 0.
    let (k, m) = kind(Response {
        trailers: None,
        ..good
    })
    .unwrap_err();
    assert_eq!(k, "grpc");
    assert!(m.contains("no grpc-status"), "{m}");
    let empty = trailers(None, None);
    assert_eq!(
        kind(Response {
            trailers: Some(&empty),
            ..good
        })
        .unwrap_err()
        .0,
        "grpc"
    );
    let unavailable = trailers(Some("14"), Some("upstream unavailable"));
    let r = Response {
        trailers: Some(&unavailable),
        body_len: 0,
        ..good
    };
    let (k, m) = kind(r).unwrap_err();
    assert_eq!(k, "grpc");
    assert!(m.contains("grpc-status 14 (upstream unavailable)"), "{m}");
    assert_eq!(crate::grpc::status_of(&r), "14");
    // The HTTP status comes first: a 502 is a bad response whatever its trailers say.
    let (k, m) = kind(Response {
        status: 502,
        ..good
    })
    .unwrap_err();
    assert_eq!(k, "bad_response");
    assert!(m.contains("HTTP 502, grpc-status 0"), "{m}");
    // The content type, and the echo: its length and its bytes.
    let (k, m) = kind(Response {
        content_type: Some(b"text/plain"),
        ..good
    })
    .unwrap_err();
    assert_eq!(k, "bad_response");
    assert!(m.contains("content-type text/plain"), "{m}");
    assert_eq!(
        kind(Response {
            content_type: None,
            ..good
        })
        .unwrap_err()
        .0,
        "bad_response"
    );
    let (k, m) = kind(Response {
        body_len: 36,
        ..good
    })
    .unwrap_err();
    assert_eq!(k, "bad_response");
    assert!(m.contains("36 bytes back for 37"), "{m}");
    assert_eq!(
        kind(Response {
            body_len: 74,
            ..good
        })
        .unwrap_err()
        .0,
        "bad_response"
    );
    let (_, m) = kind(Response {
        body_matches: false,
        ..good
    })
    .unwrap_err();
    assert!(m.contains("bytes differ"), "{m}");
}

/// ringgate-grpc-echo's server on a thread of its own (it serves until the process ends).
fn grpc_echo() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || crate::grpc_server::run("127.0.0.1:0".parse().unwrap(), tx));
    rx.recv().unwrap().unwrap()
}

#[test]
fn grpc_mode_against_the_echo_counts_every_call() {
    let addr = grpc_echo();
    for (streams, n, size) in [("1", 300, "32"), ("8", 2000, "32"), ("4", 100, "70000")] {
        let (st, _) = load(
            format!("http://{addr}/bench.Echo/Unary"),
            &[
                "--mode",
                "grpc",
                "-c",
                "2",
                "--streams",
                streams,
                "-n",
                &n.to_string(),
                "--message-size",
                size,
            ],
            &[],
        );
        assert_eq!(errors(&st), 0, "{:?}", st.samples);
        assert_eq!(st.requests, n);
        assert_eq!(st.statuses.get(&200), Some(&n));
        let size: u64 = size.parse().unwrap();
        assert_eq!(st.body_bytes, n * (size + 5));
        let zero = [("0".to_string(), n)];
        assert_eq!(st.grpc_statuses, zero.into_iter().collect());
        assert_eq!(st.h2_connections, 2);
    }
}

#[test]
fn grpc_mode_counts_what_is_not_an_echo_with_grpc_status_0_as_errors() {
    let run = |b: H2Behavior| {
        let (srv, seen) = serve_h2(None, b, "127.0.0.1:1".into(), 0);
        let url = format!("http://{}/bench.Echo/Unary", srv.addr);
        let grpc = [
            "--mode",
            "grpc",
            "-c",
            "1",
            "-n",
            "50",
            "-H",
            "Host: 127.0.0.1:1",
        ];
        let (st, _) = load(url, &grpc, &[]);
        // The requests were gRPC calls without content-length.
        assert_eq!(seen.bad.load(Ordering::Relaxed), 0);
        assert_eq!(seen.body_bytes.load(Ordering::Relaxed), 50 * 37);
        assert_eq!(st.requests, 0, "{:?}", st.samples);
        assert_eq!(errors(&st), 50);
        assert_eq!(st.statuses.get(&200), Some(&50));
        st
    };
    // A plain HTTP/2 answer: no trailers, no grpc-status.
    let st = run(H2_OK);
    assert_eq!(st.errors["grpc"], 50);
    assert_eq!(
        st.grpc_statuses,
        [("none".to_string(), 50)].into_iter().collect()
    );
    assert!(st.samples[0].contains("no grpc-status"), "{:?}", st.samples);
    // Trailers-only with grpc-status 14 (what a proxy answers when the upstream is down).
    let st = run(H2Behavior {
        body: 0,
        grpc_status: Some("14"),
        ..H2_OK
    });
    assert_eq!(st.errors["grpc"], 50);
    assert_eq!(
        st.grpc_statuses,
        [("14".to_string(), 50)].into_iter().collect()
    );
    assert!(st.samples[0].contains("grpc-status 14"), "{:?}", st.samples);
    // grpc-status 0 in trailers, but the body is not the message sent.
    let st = run(H2Behavior {
        grpc_status: Some("0"),
        ..H2_OK
    });
    assert_eq!(st.errors["bad_response"], 50);
    assert_eq!(st.errors["grpc"], 0);
    assert_eq!(
        st.grpc_statuses,
        [("0".to_string(), 50)].into_iter().collect()
    );
    assert!(
        st.samples[0].contains("3 bytes back for 37"),
        "{:?}",
        st.samples
    );
}

#[test]
fn grpc_plan_from_the_command_line() {
    let p = args(&[
        "https://127.0.0.1:8443/bench.Echo/Unary",
        "--mode",
        "grpc",
        "--streams",
        "10",
        "-H",
        "Host: localhost:8443",
        "-k",
    ])
    .plan()
    .unwrap();
    let h2 = p.h2.unwrap();
    assert!(h2.grpc);
    assert_eq!(h2.streams, 10);
    assert_eq!(h2.method, http::Method::POST);
    assert_eq!(
        h2.uri.to_string(),
        "https://localhost:8443/bench.Echo/Unary"
    );
    assert_eq!(h2.headers["content-type"], "application/grpc");
    assert_eq!(h2.headers["te"], "trailers");
    assert!(!h2.headers.contains_key("content-length"));
    assert_eq!(h2.body, crate::grpc::frame(&crate::grpc::payload(32)));
    let p = args(&[
        "http://127.0.0.1:1/x",
        "--mode",
        "grpc",
        "-X",
        "POST",
        "--message-size",
        "0",
        "-H",
        "Content-Type: application/grpc+proto",
    ])
    .plan()
    .unwrap();
    let h2 = p.h2.unwrap();
    assert_eq!(&h2.body[..], &[0, 0, 0, 0, 0]);
    assert_eq!(h2.headers["content-type"], "application/grpc+proto");
    for bad in [
        &["-X", "PUT"][..],
        &["--body-size", "10"],
        &["--message-size", "5000000"],
        &["-H", "Content-Type: application/json"],
        &["-H", "Content-Length: 37"],
        &["--rate", "100"],
        &["--pipeline", "2"],
        &["--streams", "0"],
    ] {
        let mut v = vec!["http://127.0.0.1:1/", "--mode", "grpc"];
        v.extend_from_slice(bad);
        assert!(args(&v).plan().is_err(), "{bad:?}");
    }
}
