//! A blocking rustls client that speaks raw HTTP/1.1 bytes.

use rustls::pki_types::pem::PemObject;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// How to build a client.
#[derive(Clone, Default)]
pub struct ClientOpts<'a> {
    /// The CA file to trust for the server certificate.
    pub ca: Option<&'a Path>,
    /// Certificate chain + key to present.
    pub cert: Option<(&'a Path, &'a Path)>,
    /// Only this TLS version.
    pub version: Option<&'static rustls::SupportedProtocolVersion>,
    /// A shared resumption store.
    pub resumption: Option<Arc<ClientSessionMemoryCache>>,
}

pub fn load_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    let data = std::fs::read(path).expect("read certs");
    CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .expect("parse certs")
}

pub fn load_key(path: &Path) -> PrivateKeyDer<'static> {
    let data = std::fs::read(path).expect("read key");
    PrivateKeyDer::from_pem_slice(&data).expect("parse key")
}

pub fn config(o: &ClientOpts<'_>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = o.ca {
        for c in load_certs(ca) {
            roots.add(c).expect("add root");
        }
    }
    let builder = match o.version {
        Some(v) => ClientConfig::builder_with_protocol_versions(&[v]),
        None => ClientConfig::builder(),
    }
    .with_root_certificates(roots);
    let mut cfg = match o.cert {
        // A resolver of our own: rustls' `with_client_auth_cert` parses the certificate with
        // webpki, which refuses X.509 v1 certificates (as `openssl x509 -req` makes them).
        Some((c, k)) => {
            let provider = rustls::crypto::CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
            let key = provider
                .key_provider
                .load_private_key(load_key(k))
                .expect("client key");
            let ck = Arc::new(rustls::sign::CertifiedKey::new(load_certs(c), key));
            builder.with_client_cert_resolver(Arc::new(FixedCert(ck)))
        }
        None => builder.with_no_client_auth(),
    };
    if let Some(cache) = &o.resumption {
        cfg.resumption = Resumption::store(cache.clone());
    }
    Arc::new(cfg)
}

#[derive(Debug)]
struct FixedCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Status, raw head text and headers of one response.
pub type Head = (u16, String, Vec<(String, String)>);

/// A response as read from the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// One client connection with a read buffer (so pipelined responses can be read in turn).
pub struct Conn {
    pub tls: Tls,
    buf: Vec<u8>,
}

pub fn connect(addr: SocketAddr, sni: &str, cfg: &Arc<ClientConfig>) -> std::io::Result<Conn> {
    let tcp = TcpStream::connect(addr)?;
    handshake(tcp, sni, cfg)
}

/// Runs the TLS handshake on a connected socket.
pub fn handshake(tcp: TcpStream, sni: &str, cfg: &Arc<ClientConfig>) -> std::io::Result<Conn> {
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(sni.to_string()).expect("server name");
    let conn = ClientConnection::new(cfg.clone(), name).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(Conn {
        tls,
        buf: Vec::new(),
    })
}

/// The rustls error inside an io::Error, if any.
pub fn rustls_error(e: &std::io::Error) -> Option<rustls::Error> {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .cloned()
}

/// Connects, sends a GET and returns what went wrong: a handshake error, a read error or an
/// error response. Ok(response) when the request went through.
pub fn try_get(
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
    path: &str,
) -> Result<Response, std::io::Error> {
    let mut c = connect(addr, "localhost", cfg)?;
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    c.read_response()
}

/// Like [`try_get`], also giving the client's own address (the peer the proxy logs).
pub fn attempt(
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
    path: &str,
) -> (SocketAddr, Result<Response, std::io::Error>) {
    let tcp = TcpStream::connect(addr).expect("tcp connect");
    let local = tcp.local_addr().expect("local addr");
    let r = handshake(tcp, "localhost", cfg).and_then(|mut c| {
        c.send(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        c.read_response()
    });
    (local, r)
}

/// The alert the server sent when refusing (from the handshake or the first read), and the
/// client's address.
pub fn refusal_alert(
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
) -> (SocketAddr, Result<rustls::AlertDescription, String>) {
    let (local, r) = attempt(addr, cfg, "/");
    let alert = match r {
        Ok(r) => Err(format!("request went through with status {}", r.status)),
        Err(e) => match rustls_error(&e) {
            Some(rustls::Error::AlertReceived(a)) => Ok(a),
            other => Err(format!("no alert received: {e} ({other:?})")),
        },
    };
    (local, alert)
}

impl Conn {
    pub fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.tls.write_all(data)?;
        self.tls.flush()
    }

    /// The server's certificate chain.
    pub fn peer_certs(&self) -> Vec<CertificateDer<'static>> {
        self.tls
            .conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default()
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut tmp = vec![0u8; 64 * 1024];
        let n = self.tls.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn eof(&self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")
    }

    fn read_line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(self.eof());
            }
        }
    }

    fn read_n(&mut self, n: usize, sink: &mut dyn FnMut(&[u8])) -> std::io::Result<()> {
        let mut left = n;
        while left > 0 {
            if self.buf.is_empty() && self.fill()? == 0 {
                return Err(self.eof());
            }
            let k = left.min(self.buf.len());
            sink(&self.buf[..k]);
            self.buf.drain(..k);
            left -= k;
        }
        Ok(())
    }

    /// Reads one response head (interim 1xx responses are returned as they are).
    pub fn read_head(&mut self) -> std::io::Result<Head> {
        let status_line = String::from_utf8_lossy(&self.read_line()?).into_owned();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut head = status_line.clone();
        head.push_str("\r\n");
        let mut headers = Vec::new();
        loop {
            let line = String::from_utf8_lossy(&self.read_line()?).into_owned();
            head.push_str(&line);
            head.push_str("\r\n");
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Ok((status, head, headers))
    }

    /// Reads one whole response, keeping the body.
    pub fn read_response(&mut self) -> std::io::Result<Response> {
        let mut body = Vec::new();
        let r = self.read_response_with(&mut |d| body.extend_from_slice(d), false)?;
        Ok(Response { body, ..r })
    }

    /// Reads one response, handing body bytes to `sink`.
    pub fn read_response_with(
        &mut self,
        sink: &mut dyn FnMut(&[u8]),
        head_request: bool,
    ) -> std::io::Result<Response> {
        let (status, head, headers) = self.read_head()?;
        let resp = Response {
            status,
            head,
            headers,
            body: Vec::new(),
        };
        if (100..200).contains(&status) || status == 204 || status == 304 || head_request {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                let line = String::from_utf8_lossy(&self.read_line()?).into_owned();
                let size =
                    usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
                if size == 0 {
                    while !self.read_line()?.is_empty() {}
                    break;
                }
                self.read_n(size, sink)?;
                if !self.read_line()?.is_empty() {
                    return Err(std::io::Error::other("chunk not followed by CRLF"));
                }
            }
        } else if let Some(len) = resp.header("content-length") {
            let n: usize = len.parse().map_err(std::io::Error::other)?;
            self.read_n(n, sink)?;
        } else {
            // Until close.
            loop {
                if !self.buf.is_empty() {
                    sink(&self.buf);
                    self.buf.clear();
                }
                match self.fill() {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(resp)
    }

    /// Bytes already read from the connection but not yet returned (after a head, the start of
    /// the body).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// After a head: the body bytes already buffered and what follows, read until `done` says
    /// the bytes so far are enough, or the server closes, or nothing arrives for `wait`.
    pub fn read_rest(&mut self, wait: Duration, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let _ = self.tls.sock.set_read_timeout(Some(wait));
        let mut got = self.take_buffered();
        let mut buf = [0u8; 4096];
        while !done(&got) {
            match self.tls.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    }

    /// True when the server closed the connection (EOF or close_notify) within `wait`.
    pub fn closed_by_server(&mut self, wait: Duration) -> bool {
        let _ = self.tls.sock.set_read_timeout(Some(wait));
        matches!(self.fill(), Ok(0) | Err(_))
    }
}

/// GET `path` over a new connection and read the response (panics on transport errors).
#[track_caller]
pub fn get(addr: SocketAddr, cfg: &Arc<ClientConfig>, path: &str) -> Response {
    match try_get(addr, cfg, path) {
        Ok(r) => r,
        Err(e) => panic!("GET {path} failed: {e}"),
    }
}
