//! F4 / C5: upstream mutual TLS. ringgate, with client mTLS at the front, speaks mTLS to a
//! real TLS upstream that requires a client certificate: a small rustls server in this file
//! (recording handshakes and requests), nginx where it is installed, and the nginx
//! TLS-termination guide's scenario 2 with certificates made by the guide's own openssl
//! commands (X.509 v1, self-signed, by `openssl x509 -req -signkey`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::SanType;
use rustls::pki_types::CertificateDer;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{HandshakeKind, ProtocolVersion, RootCertStore, ServerConfig, ServerConnection};

use crate::support::client::{self, load_certs, load_key, Conn};
use crate::support::nginx::{free_port, nginx_binary};
use crate::support::pki::{p, Issuer, Leaf, LeafSpec, Pki, Usage, Validity};
use crate::support::proxy::{self, Proxy};
use crate::support::upstream::{fnv, FNV_INIT};
use crate::support::{client_for, Cfg};

// ---------------------------------------------------------------------------------------
// A TLS upstream that requires a client certificate and records what it saw.

/// One TLS connection as the upstream saw it.
#[derive(Clone, Debug)]
struct TlsConn {
    kind: Option<HandshakeKind>,
    version: Option<ProtocolVersion>,
    sni: Option<String>,
    /// Subject of the client certificate ringgate presented.
    client_subject: Option<String>,
    requests: usize,
}

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
struct TlsSeen {
    target: String,
    conn: usize,
    body_len: u64,
    body_hash: u64,
}

/// How the upstream answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reply {
    /// 200, the request body echoed with Content-Length, keep-alive.
    Echo,
    /// 200, the request body echoed in chunks.
    ChunkedEcho,
    /// As Echo, then `Connection: close` and a clean TLS close.
    EchoThenClose,
    /// As Echo (keep-alive), then a clean TLS close 100 ms later: a pooled connection the
    /// upstream closed while it was idle.
    EchoThenIdleClose,
    /// `/force101` gets a 101 and what follows on that connection is kept as tunnel bytes;
    /// anything else as Echo.
    Force101,
}

#[derive(Default)]
struct Record {
    conns: Mutex<Vec<TlsConn>>,
    seen: Mutex<Vec<TlsSeen>>,
    /// Handshakes that failed on the upstream's side, with rustls's reason.
    failures: Mutex<Vec<String>>,
    accepts: AtomicUsize,
    /// What arrived after a 101 (Reply::Force101).
    tunnel: Mutex<Vec<u8>>,
}

struct TlsUpstream {
    addr: SocketAddr,
    rec: Arc<Record>,
}

/// How the upstream checks client certificates.
enum ClientCheck<'a> {
    /// rustls's own WebPKI verifier (independent of ringgate's), mandatory.
    WebPki(&'a Path),
    /// ringgate's OpenSSL-like verifier (accepts X.509 v1, as nginx), mandatory.
    OpenSslLike(&'a Path, u32),
}

#[derive(Debug)]
struct FixedServerCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedServerCert {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn server_config(
    chain: &Path,
    key: &Path,
    check: ClientCheck<'_>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> = match check {
        ClientCheck::WebPki(ca) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(ca) {
                roots.add(c).expect("client CA");
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .expect("client verifier")
        }
        ClientCheck::OpenSslLike(ca, depth) => {
            use ringgate::tls::client_auth::{ClientAuth, ClientAuthMode, FailureMode};
            let store = ringgate::x509::trust::TrustStore::from_pem(
                &std::fs::read(ca).expect("read client CA"),
            )
            .expect("client CA");
            Arc::new(
                ClientAuth::new(
                    ClientAuthMode::On,
                    FailureMode::Alert,
                    Some(Arc::new(store)),
                    depth,
                    Vec::new(),
                )
                .expect("client auth"),
            )
        }
    };
    let signing = provider
        .key_provider
        .load_private_key(load_key(key))
        .expect("upstream key");
    // Our own resolver: `with_single_cert` checks the key with webpki, which refuses v1.
    let ck = Arc::new(CertifiedKey::new(load_certs(chain), signing));
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(FixedServerCert(ck)));
    Arc::new(cfg)
}

impl TlsUpstream {
    fn start(cfg: Arc<ServerConfig>, reply: Reply) -> TlsUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let rec = Arc::new(Record::default());
        let r2 = rec.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { continue };
                let n = r2.accepts.fetch_add(1, Ordering::SeqCst) + 1;
                let (cfg, rec) = (cfg.clone(), r2.clone());
                std::thread::spawn(move || serve_tls(sock, n, cfg, reply, &rec));
            }
        });
        TlsUpstream { addr, rec }
    }

    fn conns(&self) -> Vec<TlsConn> {
        self.rec.conns.lock().expect("conns").clone()
    }

    fn seen(&self) -> Vec<TlsSeen> {
        self.rec.seen.lock().expect("seen").clone()
    }

    fn failures(&self) -> Vec<String> {
        self.rec.failures.lock().expect("failures").clone()
    }

    fn server(&self) -> String {
        format!("\"{}\"", self.addr)
    }
}

fn subject_of(der: &CertificateDer<'_>) -> String {
    x509_parser::parse_x509_certificate(der.as_ref())
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_default()
}

fn serve_tls(sock: TcpStream, n: usize, cfg: Arc<ServerConfig>, reply: Reply, rec: &Record) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(20)));
    let Ok(conn) = ServerConnection::new(cfg) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            rec.failures.lock().expect("failures").push(e.to_string());
            return;
        }
    }
    let index = {
        let mut conns = rec.conns.lock().expect("conns");
        conns.push(TlsConn {
            kind: tls.conn.handshake_kind(),
            version: tls.conn.protocol_version(),
            sni: tls.conn.server_name().map(str::to_string),
            client_subject: tls
                .conn
                .peer_certificates()
                .and_then(|c| c.first().map(subject_of)),
            requests: 0,
        });
        conns.len() - 1
    };
    let mut r = BufReader::with_capacity(64 * 1024, tls);
    loop {
        let Some((target, headers)) = read_head(&mut r) else {
            return;
        };
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        let ok = if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            read_chunked(&mut r, &mut body)
        } else {
            let len: usize = get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            body.resize(len, 0);
            r.read_exact(&mut body).is_ok()
        };
        if !ok {
            return;
        }
        let mut hash = FNV_INIT;
        fnv(&mut hash, &body);
        let switch_now = reply == Reply::Force101 && target == "/force101";
        rec.seen.lock().expect("seen").push(TlsSeen {
            target,
            conn: n,
            body_len: body.len() as u64,
            body_hash: hash,
        });
        if let Some(c) = rec.conns.lock().expect("conns").get_mut(index) {
            c.requests += 1;
        }
        if switch_now {
            let tls = r.get_mut();
            let switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
            if tls.write_all(switch).and_then(|_| tls.flush()).is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = r.read(&mut buf) {
                rec.tunnel
                    .lock()
                    .expect("tunnel")
                    .extend_from_slice(&buf[..n]);
            }
            return;
        }
        let close = reply == Reply::EchoThenClose;
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\nX-Upstream-Conn: {n}\r\n{}",
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes();
        if reply == Reply::ChunkedEcho {
            resp.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in body.chunks(16_001) {
                resp.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                resp.extend_from_slice(piece);
                resp.extend_from_slice(b"\r\n");
            }
            resp.extend_from_slice(b"0\r\n\r\n");
        } else {
            resp.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            resp.extend_from_slice(&body);
        }
        let tls = r.get_mut();
        if tls.write_all(&resp).and_then(|_| tls.flush()).is_err() {
            return;
        }
        if reply == Reply::EchoThenIdleClose {
            std::thread::sleep(Duration::from_millis(100));
        }
        if close || reply == Reply::EchoThenIdleClose {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            return;
        }
    }
}

type Headers = Vec<(String, String)>;

fn read_head(r: &mut impl BufRead) -> Option<(String, Headers)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let target = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        if h == "\r\n" || h == "\n" {
            return Some((target, headers));
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

fn read_chunked(r: &mut impl BufRead, body: &mut Vec<u8>) -> bool {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok().filter(|&n| n > 0).is_none() {
            return false;
        }
        let Ok(size) = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
        else {
            return false;
        };
        if size == 0 {
            let mut t = String::new();
            while r.read_line(&mut t).ok().filter(|&n| n > 0).is_some() {
                if t == "\r\n" {
                    return true;
                }
                t.clear();
            }
            return false;
        }
        let start = body.len();
        body.resize(start + size, 0);
        let mut crlf = [0u8; 2];
        if r.read_exact(&mut body[start..]).is_err() || r.read_exact(&mut crlf).is_err() {
            return false;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Certificates: the test PKI's CA signs client certificates (the front client's and
// ringgate's own); a separate CA signs the upstream's server certificates.

struct UpPki {
    pki: Pki,
    /// The CA that signs upstream server certificates (`trusted_certificate`).
    up_ca: Issuer,
    /// ringgate's client certificate towards the upstream.
    proxy_client: Leaf,
}

const UP_NAME: &str = "app.internal";

impl UpPki {
    fn new() -> UpPki {
        let pki = Pki::new();
        let up_ca = Issuer::root(pki.path(), "upca", "upstream CA");
        let proxy_client = pki.client_with(LeafSpec::client("proxy-client", "ringgate-proxy"));
        UpPki {
            pki,
            up_ca,
            proxy_client,
        }
    }

    fn dir(&self) -> &Path {
        self.pki.path()
    }

    /// An upstream server certificate from `issuer` for `dns`, valid as `validity`.
    fn server_cert(&self, issuer: &Issuer, file: &str, dns: &str, validity: Validity) -> Leaf {
        issuer.leaf(
            self.dir(),
            LeafSpec {
                name: file,
                subject: vec![(rcgen::DnType::CommonName, dns)],
                usage: Usage::Server,
                validity,
                sans: vec![SanType::DnsName(dns.try_into().expect("dns"))],
            },
        )
    }

    /// The usual upstream: a valid certificate for app.internal from the upstream CA,
    /// requiring client certificates from the test CA.
    fn upstream(&self, reply: Reply) -> TlsUpstream {
        let cert = self.server_cert(&self.up_ca, "up", UP_NAME, Validity::Valid);
        TlsUpstream::start(self.upstream_config(&cert, ALL), reply)
    }

    fn upstream_config(
        &self,
        cert: &Leaf,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
        server_config(
            &cert.cert,
            &cert.key,
            ClientCheck::WebPki(&self.pki.ca.pem_path),
            versions,
        )
    }

    /// `[upstream.tls]` verifying against the upstream CA as app.internal, presenting
    /// ringgate's client certificate; `extra` lines are appended.
    fn tls_section(&self, extra: &str) -> String {
        format!(
            "\n[upstream.tls]\ntrusted_certificate = {}\nname = \"{UP_NAME}\"\ncertificate = {}\nkey = {}\n{extra}\n",
            p(&self.up_ca.pem_path),
            p(&self.proxy_client.cert),
            p(&self.proxy_client.key),
        )
    }

    /// ringgate with mTLS at the front, `/` proxied to `https://app` (the TLS upstream).
    fn proxy(&self, up: &str, tls_section: &str) -> Proxy {
        self.cfg(up, tls_section).start()
    }

    fn cfg(&self, up: &str, tls_section: &str) -> Cfg<'_> {
        Cfg {
            pki: &self.pki,
            upstream: up.to_string(),
            workers: 1,
            tls: format!(
                "client_certificate = {}\nverify_client = \"on\"\n",
                p(&self.pki.ca.pem_path)
            ),
            http: "client_max_body_size = 0\n".to_string(),
            locations: "[[listener.location]]\npath = \"/\"\nproxy_pass = \"https://app\"\nset_header = { X-SSL-Client-DN = \"$ssl_client_s_dn\" }\n".to_string(),
            up: tls_section.to_string(),
            runtime: String::new(),
            listener: String::new(),
        }
    }

    /// A front connection with the test client certificate.
    fn front(&self, proxy: &Proxy) -> Conn {
        client::connect(
            proxy.addr(),
            "localhost",
            &client_for(&self.pki, Some(&self.pki.client)),
        )
        .expect("front handshake")
    }
}

const ALL: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
const V12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

fn get(c: &mut Conn, path: &str) -> client::Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .expect("send");
    c.read_response().expect("response")
}

/// Waits until `f` holds (up to 3 s): the upstream records after it answered.
fn eventually(f: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

// ---------------------------------------------------------------------------------------
// Success, pooling, resumption, streaming.

#[test]
fn mtls_to_the_upstream_pooled_per_core() {
    let u = UpPki::new();
    let up = u.upstream(Reply::Echo);
    let proxy = u.proxy(&up.server(), &u.tls_section(""));
    let mut c = u.front(&proxy);
    for i in 0..5 {
        let r = get(&mut c, &format!("/p{i}"));
        assert_eq!(r.status, 200, "{}\nlog:\n{}", r.head, proxy.log());
    }
    // A second front connection reuses the same pooled upstream connection.
    let mut c2 = u.front(&proxy);
    assert_eq!(get(&mut c2, "/again").status, 200);

    let conns = up.conns();
    assert_eq!(conns.len(), 1, "6 requests, one TLS connection: {conns:?}");
    assert_eq!(conns[0].requests, 6);
    assert_eq!(up.rec.accepts.load(Ordering::SeqCst), 1);
    // The upstream saw ringgate's client certificate and the configured name as SNI.
    assert_eq!(
        conns[0].client_subject.as_deref(),
        Some("C=US, O=Acme, OU=Eng, CN=ringgate-proxy")
    );
    assert_eq!(conns[0].sni.as_deref(), Some(UP_NAME));
    assert_eq!(conns[0].version, Some(ProtocolVersion::TLSv1_3));
    let targets: Vec<String> = up.seen().iter().map(|s| s.target.clone()).collect();
    assert_eq!(targets, ["/p0", "/p1", "/p2", "/p3", "/p4", "/again"]);
    assert!(up.seen().iter().all(|s| s.conn == 1));
}

/// Three requests while the upstream closes after every response: what it saw.
fn three_handshakes(
    versions: &'static [&'static rustls::SupportedProtocolVersion],
    extra: &str,
) -> Vec<TlsConn> {
    let u = UpPki::new();
    let cert = u.server_cert(&u.up_ca, "up", UP_NAME, Validity::Valid);
    let up = TlsUpstream::start(u.upstream_config(&cert, versions), Reply::EchoThenClose);
    let proxy = u.proxy(&up.server(), &u.tls_section(extra));
    let mut c = u.front(&proxy);
    for i in 0..3 {
        let r = get(&mut c, &format!("/r{i}"));
        assert_eq!(r.status, 200, "{}\nlog:\n{}", r.head, proxy.log());
    }
    assert!(eventually(|| up.conns().len() == 3), "{:?}", up.conns());
    up.conns()
}

const FULL_THEN_RESUMED: [Option<HandshakeKind>; 3] = [
    Some(HandshakeKind::Full),
    Some(HandshakeKind::Resumed),
    Some(HandshakeKind::Resumed),
];

#[test]
fn sessions_to_the_upstream_are_resumed_tls13() {
    let conns = three_handshakes(ALL, "");
    let kinds: Vec<_> = conns.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds, FULL_THEN_RESUMED,
        "after the upstream closed the pooled connection, the next handshake resumes"
    );
    assert!(conns
        .iter()
        .all(|c| c.version == Some(ProtocolVersion::TLSv1_3)));
}

#[test]
fn sessions_to_the_upstream_are_resumed_tls12_and_not_when_off() {
    let conns = three_handshakes(V12, "");
    assert!(conns
        .iter()
        .all(|c| c.version == Some(ProtocolVersion::TLSv1_2)));
    let kinds: Vec<_> = conns.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, FULL_THEN_RESUMED);
    // A resumed TLS 1.2 session still carries our client certificate.
    assert!(conns.iter().all(|c| c.client_subject.is_some()));

    // session_reuse = false: every handshake is full.
    let conns = three_handshakes(ALL, "session_reuse = false");
    assert!(conns.iter().all(|c| c.kind == Some(HandshakeKind::Full)));
}

#[test]
fn a_pooled_tls_connection_the_upstream_closed_is_replaced_by_a_resumed_one() {
    let u = UpPki::new();
    let cert = u.server_cert(&u.up_ca, "up", UP_NAME, Validity::Valid);
    let up = TlsUpstream::start(u.upstream_config(&cert, ALL), Reply::EchoThenIdleClose);
    let proxy = u
        .cfg(&up.server(), &u.tls_section(""))
        .runtime("log_level = \"debug\"")
        .start();
    let mut c = u.front(&proxy);
    for i in 0..3 {
        let r = get(&mut c, &format!("/s{i}"));
        assert_eq!(r.status, 200, "{}\nlog:\n{}", r.head, proxy.log());
        // Let the upstream close the idle pooled connection.
        std::thread::sleep(Duration::from_millis(300));
    }
    let kinds: Vec<_> = up.conns().iter().map(|c| c.kind).collect();
    assert_eq!(kinds, FULL_THEN_RESUMED);
    proxy.assert_log(&[
        "upstream `app`",
        "idle pooled connection closed",
        "not reused",
    ]);
    assert!(!proxy.log().contains("ERROR"), "{}", proxy.log());
}

#[test]
fn an_unrequested_101_from_a_tls_upstream_is_a_502_and_never_pooled() {
    let u = UpPki::new();
    let up = u.upstream(Reply::Force101);
    let proxy = u.proxy(&up.server(), &u.tls_section(""));
    let mut c = u.front(&proxy);
    let r = get(&mut c, "/force101");
    assert_eq!(r.status, 502, "{}", r.head);
    proxy.assert_log(&["101 Switching Protocols to a request that asked for no upgrade"]);
    let mut c = u.front(&proxy);
    let r = get(&mut c, "/hello");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("X-Upstream-Conn"), Some("2"));
    std::thread::sleep(Duration::from_millis(100));
    let tunnel = up.rec.tunnel.lock().expect("tunnel").clone();
    assert!(
        tunnel.is_empty(),
        "the next request went into the switched connection: {:?}",
        String::from_utf8_lossy(&tunnel)
    );
}

#[test]
fn chunked_bodies_stream_both_ways_through_two_tls_hops() {
    let u = UpPki::new();
    let up = u.upstream(Reply::ChunkedEcho);
    let proxy = u.proxy(&up.server(), &u.tls_section(""));
    let mut c = u.front(&proxy);
    // 3 MiB in odd-sized chunks: hundreds of TLS records on each hop, each way.
    let body: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: usize| (i * 7 % 253) as u8)
        .collect();
    let mut hash = FNV_INIT;
    fnv(&mut hash, &body);
    let mut req =
        b"POST /stream HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(9_973) {
        req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.send(&req).expect("send");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200, "{}\nlog:\n{}", r.head, proxy.log());
    assert!(
        r.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked")),
        "{}",
        r.head
    );
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body_len, body.len() as u64);
    assert_eq!(
        seen[0].body_hash, hash,
        "the body reached the upstream changed"
    );
    let mut back = FNV_INIT;
    fnv(&mut back, &r.body);
    assert_eq!(r.body.len(), body.len());
    assert_eq!(back, hash, "the body came back changed");
    // The connection stays usable, and pooled, afterwards.
    assert_eq!(get(&mut c, "/after").status, 200);
    assert_eq!(up.conns().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Failures: the status and one log line naming the upstream, the server and the cause.

/// One request through a fresh front connection; the status.
fn status_of(u: &UpPki, proxy: &Proxy) -> u16 {
    let mut c = u.front(proxy);
    get(&mut c, "/fail").status
}

#[track_caller]
fn assert_failure(u: &UpPki, proxy: &Proxy, up: SocketAddr, status: u16, cause: &[&str]) {
    assert_eq!(status_of(u, proxy), status, "log:\n{}", proxy.log());
    let server = format!("upstream: `app` https://{up}");
    let code = format!("({status})");
    let mut needles = vec![server.as_str(), code.as_str()];
    needles.extend_from_slice(cause);
    proxy.assert_log(&needles);
}

#[test]
fn refused_upstream_certificates_give_502_with_the_precise_cause() {
    let u = UpPki::new();
    let start = |cert: &Leaf| TlsUpstream::start(u.upstream_config(cert, ALL), Reply::Echo);

    // Expired.
    let expired = u.server_cert(&u.up_ca, "expired", UP_NAME, Validity::Expired);
    let up = start(&expired);
    let proxy = u.proxy(&up.server(), &u.tls_section(""));
    assert_failure(
        &u,
        &proxy,
        up.addr,
        502,
        &[
            "upstream SSL certificate verify error: certificate has expired at depth 0 (CN=app.internal)",
            "while SSL handshaking to upstream",
        ],
    );
    assert!(up.seen().is_empty());

    // Name mismatch: which name was expected, which names the certificate has.
    let other = u.server_cert(&u.up_ca, "other", "other.internal", Validity::Valid);
    let up = start(&other);
    let proxy = u.proxy(&up.server(), &u.tls_section(""));
    assert_failure(
        &u,
        &proxy,
        up.addr,
        502,
        &["does not match \"app.internal\" (the certificate names DNS:other.internal)"],
    );

    // Unknown CA.
    let rogue_ca = Issuer::root(u.dir(), "rogue", "rogue CA");
    let rogue = u.server_cert(&rogue_ca, "rogue-leaf", UP_NAME, Validity::Valid);
    let up = start(&rogue);
    let proxy = u.proxy(&up.server(), &u.tls_section(""));
    assert_failure(
        &u,
        &proxy,
        up.addr,
        502,
        &[
            "unable to verify the first certificate",
            "unknown CA: the upstream's certificate does not chain to trusted_certificate",
        ],
    );

    // Depth: two intermediates, verify_depth 1 refuses, 2 accepts (nginx's meaning).
    let int1 = u.up_ca.intermediate(u.dir(), "int1", "Int 1");
    let int2 = int1.intermediate(u.dir(), "int2", "Int 2");
    let deep = u.server_cert(&int2, "deep", UP_NAME, Validity::Valid);
    let up = start(&deep);
    let proxy = u.proxy(&up.server(), &u.tls_section(""));
    assert_failure(
        &u,
        &proxy,
        up.addr,
        502,
        &["certificate chain too long", "verify_depth = 1"],
    );
    let proxy = u.proxy(&up.server(), &u.tls_section("verify_depth = 2"));
    assert_eq!(status_of(&u, &proxy), 200, "log:\n{}", proxy.log());
}

#[test]
fn upstream_refusing_our_certificate_gives_502_with_the_alert() {
    let u = UpPki::new();
    let cert = u.server_cert(&u.up_ca, "up", UP_NAME, Validity::Valid);
    let no_cert = format!(
        "\n[upstream.tls]\ntrusted_certificate = {}\nname = \"{UP_NAME}\"\n",
        p(&u.up_ca.pem_path)
    );
    let rogue_ca = Issuer::root(u.dir(), "rogue", "rogue CA");
    let rogue = rogue_ca.leaf(u.dir(), LeafSpec::client("rogue-client", "rogue"));
    let rogue_cert = format!(
        "\n[upstream.tls]\ntrusted_certificate = {}\nname = \"{UP_NAME}\"\ncertificate = {}\nkey = {}\n",
        p(&u.up_ca.pem_path),
        p(&rogue.cert),
        p(&rogue.key)
    );
    for versions in [ALL, V12] {
        // No certificate configured: TLS 1.3 hears certificate_required after its handshake,
        // TLS 1.2 in it (rustls sends certificate_required for both; OpenSSL's
        // handshake_failure in TLS 1.2 is worded the same way).
        let up = TlsUpstream::start(u.upstream_config(&cert, versions), Reply::Echo);
        let proxy = u.proxy(&up.server(), &no_cert);
        assert_failure(
            &u,
            &proxy,
            up.addr,
            502,
            &[
                "upstream requires a client certificate and upstream.tls.certificate is not set (TLS alert certificate_required)",
            ],
        );
        assert!(up.seen().is_empty());

        // A certificate the upstream does not trust.
        let up = TlsUpstream::start(u.upstream_config(&cert, versions), Reply::Echo);
        let proxy = u.proxy(&up.server(), &rogue_cert);
        assert_failure(
            &u,
            &proxy,
            up.addr,
            502,
            &["upstream refused our client certificate (TLS alert unknown_ca)"],
        );
        assert!(up.seen().is_empty());
        assert!(eventually(|| !up.failures().is_empty()));
    }
}

#[test]
fn a_silent_upstream_times_out_in_the_handshake_with_504() {
    let u = UpPki::new();
    // Accepts TCP, never speaks TLS.
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = hole.local_addr().expect("addr");
    let held = Arc::new(Mutex::new(Vec::new()));
    let h2 = held.clone();
    std::thread::spawn(move || {
        for s in hole.incoming().flatten() {
            h2.lock().expect("held").push(s);
        }
    });
    let toml = u
        .cfg(&format!("\"{addr}\""), &u.tls_section(""))
        .render()
        .replace("connect_timeout = \"2s\"", "connect_timeout = \"1s\"");
    let proxy = Proxy::start(&toml);
    let started = Instant::now();
    assert_failure(
        &u,
        &proxy,
        addr,
        504,
        &["upstream timed out (connect_timeout) while SSL handshaking to upstream"],
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn verify_off_warns_loudly_and_accepts_any_certificate() {
    let u = UpPki::new();
    let rogue_ca = Issuer::root(u.dir(), "rogue", "rogue CA");
    let rogue = u.server_cert(&rogue_ca, "rogue-leaf", "anything.example", Validity::Valid);
    let up = TlsUpstream::start(u.upstream_config(&rogue, ALL), Reply::Echo);
    let section = format!(
        "\n[upstream.tls]\nverify = false\ncertificate = {}\nkey = {}\n",
        p(&u.proxy_client.cert),
        p(&u.proxy_client.key)
    );
    let proxy = u.proxy(&up.server(), &section);
    proxy.assert_log(&["WARN", "upstream `app`", "verify = false", "NOT verified"]);
    assert_eq!(status_of(&u, &proxy), 200, "log:\n{}", proxy.log());
    // SNI is the upstream's name by default...
    assert_eq!(up.conns()[0].sni.as_deref(), Some("app"));
    // ... and none with server_name = false (nginx's proxy_ssl_server_name off).
    let up = TlsUpstream::start(u.upstream_config(&rogue, ALL), Reply::Echo);
    let proxy = u.proxy(&up.server(), &format!("{section}server_name = false\n"));
    assert_eq!(status_of(&u, &proxy), 200, "log:\n{}", proxy.log());
    assert_eq!(up.conns()[0].sni, None);
}

#[test]
fn check_reports_upstream_tls_errors_with_file_line_and_key() {
    let u = UpPki::new();
    let missing = u.dir().join("missing-ca.pem");
    let text = u
        .cfg(
            "\"127.0.0.1:9\"",
            &format!(
                "\n[upstream.tls]\ntrusted_certificate = {}\ncertificate = {}\nprotocols = [\"SSLv3\"]\n",
                p(&missing),
                p(&u.proxy_client.cert)
            ),
        )
        .render();
    let path = u.dir().join("bad.toml");
    std::fs::write(&path, &text).expect("write");
    let (code, _, err) = proxy::check(&path);
    assert_eq!(code, 2, "{err}");
    let line = |needle: &str| text.lines().position(|l| l.contains(needle)).expect(needle) + 1;
    let file = path.display().to_string();
    for (needle, key) in [
        ("missing-ca.pem", "upstream[0].tls.trusted_certificate"),
        ("proxy-client.crt", "upstream[0].tls.key"),
        ("SSLv3", "upstream[0].tls.protocols"),
    ] {
        let want = format!("{file}:{}: {key}:", line(needle));
        assert!(err.contains(&want), "want {want} in:\n{err}");
    }
    assert!(err.starts_with("3 configuration errors"), "{err}");
}

// ---------------------------------------------------------------------------------------
// The nginx TLS-termination guide's scenario 2, with the guide's own certificates.

fn have_openssl() -> bool {
    std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The nginx TLS-termination guide's three commands, verbatim, in `dir`; the interactive
/// prompts of `openssl req` answered on stdin (as tests/certs/make-guide-certs.sh does) with
/// `cn` as Common Name.
fn tls_termination_commands(dir: &Path, cn: &str) {
    let script = format!(
        "set -e
openssl genpkey -algorithm RSA -out private.key
printf 'CN\\nBeijing\\nBeijing\\nExample Company\\nApp\\n{cn}\\n\\n\\n\\n' | openssl req -new -key private.key -out csr.pem
openssl x509 -req -days 365 -in csr.pem -signkey private.key -out public.pem"
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "the TLS-termination guide's commands failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tls_termination_scenario2_mtls_to_upstreamserver() {
    if !have_openssl() {
        eprintln!(
            "SKIPPED: `openssl` is not installed; the TLS-termination guide's scenario 2 needs it"
        );
        return;
    }
    let u = UpPki::new();
    // ringgate's client certificate: the guide's public.pem / private.key, made by
    // tests/certs/make-guide-certs.sh (CN=localhost, X.509 v1, self-signed).
    let made = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/certs/make-guide-certs.sh"))
        .arg(made.path())
        .output()
        .expect("make-guide-certs.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: PathBuf = made.path().join("tls-termination");
    // The upstream's certificate: the same commands, answered with the upstream's name;
    // its public.pem is the guide's /certs/trust.crt.
    let theirs = tempfile::tempdir().expect("tempdir");
    tls_termination_commands(theirs.path(), "upstreamserver");
    let trust = theirs.path().join("trust.crt");
    std::fs::copy(theirs.path().join("public.pem"), &trust).expect("trust.crt");

    // The upstream requires a client certificate that is the guide's public.pem itself
    // (nginx `ssl_client_certificate public.pem; ssl_verify_client on;`).
    let cfg = server_config(
        &theirs.path().join("public.pem"),
        &theirs.path().join("private.key"),
        ClientCheck::OpenSslLike(&ours.join("public.pem"), 2),
        ALL,
    );
    let up = TlsUpstream::start(cfg, Reply::Echo);
    let toml = format!(
        r#"[runtime]
workers = 1

[[listener]]
name = "front"
listen = "127.0.0.1:0"

[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
client_certificate = {ca}
verify_client = "on"

[[listener.location]]
path = "/"
proxy_pass = "https://upstreamserver"

[[upstream]]
name = "upstreamserver"
servers = [{server}]

[upstream.tls]
verify = true
verify_depth = 2
certificate = {public}
key = {private}
trusted_certificate = {trust}
"#,
        cert = p(&u.pki.server.cert),
        key = p(&u.pki.server.key),
        ca = p(&u.pki.ca.pem_path),
        server = up.server(),
        public = p(&ours.join("public.pem")),
        private = p(&ours.join("private.key")),
        trust = p(&trust),
    );
    let proxy = Proxy::start(&toml);
    let mut c = u.front(&proxy);
    let r = get(&mut c, "/tls-termination");
    assert_eq!(r.status, 200, "{}\nlog:\n{}", r.head, proxy.log());
    let conns = up.conns();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].sni.as_deref(), Some("upstreamserver"));
    let subject = conns[0].client_subject.clone().unwrap_or_default();
    assert!(
        subject.contains("CN=localhost") && subject.contains("O=Example Company"),
        "the upstream saw the guide's certificate: {subject}"
    );
    assert_eq!(up.seen()[0].target, "/tls-termination");

    // The same upstream with the name left to the guide's certificate made for `localhost`
    // (make-guide-certs.sh) as trust: unknown to this upstream -> refused, said so.
    let wrong = toml.replace(&p(&trust), &p(&ours.join("public.pem")));
    let proxy = Proxy::start(&wrong);
    let mut c = u.front(&proxy);
    assert_eq!(get(&mut c, "/").status, 502);
    proxy.assert_log(&[
        "upstream: `upstreamserver` https://",
        "self-signed certificate",
    ]);
}

// ---------------------------------------------------------------------------------------
// nginx as the TLS upstream, requiring a client certificate.

struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(bin: &str, u: &UpPki, cert: &Leaf) -> Nginx {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for t in ["body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"] {
        std::fs::create_dir_all(d.join(t)).expect("mkdir");
    }
    for _ in 0..5 {
        let port = free_port();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_session_cache shared:SSL:1m;
        location / {{
            return 200 "verify=$ssl_client_verify dn=$ssl_client_s_dn reused=$ssl_session_reused sni=$ssl_server_name conn=$connection n=$connection_requests proto=$ssl_protocol\n";
        }}
        location /close {{
            keepalive_timeout 0;
            return 200 "reused=$ssl_session_reused conn=$connection\n";
        }}
    }}
}}
"#,
            d = d.display(),
            cert = cert.cert.display(),
            key = cert.key.display(),
            ca = u.pki.ca.pem_path.display(),
        );
        std::fs::write(d.join("nginx.conf"), conf).expect("conf");
        let mut child = std::process::Command::new(bin)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-e")
            .arg(d.join("logs/error.log"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break; // port taken meanwhile: try another
            }
            if TcpStream::connect(addr).is_ok() {
                return Nginx {
                    child,
                    _dir: dir,
                    addr,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let log = std::fs::read_to_string(d.join("logs/error.log")).unwrap_or_default();
    panic!("nginx did not start:\n{log}");
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or("")
}

#[test]
fn nginx_as_the_mtls_upstream() {
    let Some(bin) = nginx_binary() else {
        eprintln!("SKIPPED: nginx is not installed; the nginx upstream test needs it");
        return;
    };
    let u = UpPki::new();
    let cert = u.server_cert(&u.up_ca, "nginx-up", UP_NAME, Validity::Valid);
    let nginx = start_nginx(bin, &u, &cert);
    let proxy = u.proxy(&format!("\"{}\"", nginx.addr), &u.tls_section(""));
    let mut c = u.front(&proxy);

    // nginx verified our certificate; three requests ride one pooled connection.
    let mut conns = Vec::new();
    for i in 1..=3 {
        let r = get(&mut c, "/");
        assert_eq!(r.status, 200, "{}\nlog:\n{}", r.head, proxy.log());
        let text = r.text();
        assert_eq!(field(&text, "verify"), "SUCCESS", "{text}");
        assert!(
            text.contains("dn=CN=ringgate-proxy,OU=Eng,O=Acme,C=US"),
            "{text}"
        );
        assert_eq!(field(&text, "sni"), UP_NAME, "{text}");
        assert_eq!(field(&text, "n"), i.to_string(), "{text}");
        conns.push(field(&text, "conn").to_string());
    }
    assert!(conns.windows(2).all(|w| w[0] == w[1]), "{conns:?}");

    // nginx closes after /close; the next connection resumes the TLS session.
    let r = get(&mut c, "/close");
    assert_eq!(r.status, 200, "{}", r.head);
    let r = get(&mut c, "/close");
    assert_eq!(r.status, 200, "{}", r.head);
    let text = r.text();
    assert_eq!(field(&text, "reused"), "r", "resumed with nginx: {text}");
    assert_ne!(field(&text, "conn"), conns[0], "{text}");

    // Without our certificate nginx answers its own 400, which reaches the client as is.
    let no_cert = format!(
        "\n[upstream.tls]\ntrusted_certificate = {}\nname = \"{UP_NAME}\"\n",
        p(&u.up_ca.pem_path)
    );
    let proxy = u.proxy(&format!("\"{}\"", nginx.addr), &no_cert);
    let mut c = u.front(&proxy);
    let r = get(&mut c, "/");
    assert_eq!(r.status, 400, "{}", r.head);
    assert!(
        r.text().contains("No required SSL certificate was sent"),
        "{}",
        r.text()
    );
}
