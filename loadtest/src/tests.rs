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
            thread::spawn(move || {
                let _ = sock.set_nodelay(true);
                match tls {
                    Some(cfg) => {
                        let Ok(conn) = ServerConnection::new(cfg) else {
                            return;
                        };
                        let mut s = StreamOwned::new(conn, sock);
                        answer(&mut s, b);
                        s.conn.send_close_notify();
                        let _ = s.flush();
                    }
                    None => {
                        let mut s = sock;
                        answer(&mut s, b);
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
fn answer<S: Read + Write>(s: &mut S, b: Behavior) {
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
