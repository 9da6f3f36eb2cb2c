//! What is known about a connection (once, after the handshake) and a request (per request),
//! and evaluating nginx variables against them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{CipherSuite, HandshakeKind, ProtocolVersion, ServerConnection};

use crate::config::IdentityField;
use crate::http::RequestHead;
use crate::policy::BindingCheck;
use crate::vars::map::VarMap;
use crate::vars::{Lookup, Template, Var};
use crate::x509::identity::Identity;

/// How deep map variables may refer to other map variables (nginx reports a cycle; we stop).
const MAX_MAP_DEPTH: u8 = 8;

/// TLS facts of a connection, fixed after the handshake.
#[derive(Debug, Default)]
pub struct TlsInfo {
    /// `$ssl_protocol`.
    pub protocol: &'static str,
    /// `$ssl_cipher`, OpenSSL's name.
    pub cipher: &'static str,
    /// `$ssl_server_name`.
    pub server_name: Option<String>,
    /// `$ssl_session_reused`.
    pub resumed: bool,
    /// `$ssl_client_verify`.
    pub verify: String,
    /// True when the client's chain verified (`$ssl_client_verify` = `SUCCESS`).
    pub verified: bool,
    /// The client certificate's identity, when one was presented (shared with this core's
    /// verdict cache: parsed once per chain, not per connection).
    pub identity: Option<Arc<Identity>>,
}

impl TlsInfo {
    /// Reads the negotiated parameters off a finished handshake.
    pub fn from_connection(conn: &ServerConnection) -> TlsInfo {
        TlsInfo {
            protocol: match conn.protocol_version() {
                Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "",
            },
            cipher: conn
                .negotiated_cipher_suite()
                .map_or("", |s| openssl_cipher_name(s.suite())),
            server_name: conn.server_name().map(str::to_string),
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
            verify: "NONE".into(),
            verified: false,
            identity: None,
        }
    }
}

/// OpenSSL's names for rustls's suites, as nginx's `$ssl_cipher` shows them.
fn openssl_cipher_name(s: CipherSuite) -> &'static str {
    match s {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "UNKNOWN",
    }
}

/// Per-connection facts.
#[derive(Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// `$remote_addr`, formatted once per connection.
    pub peer_ip: String,
    /// Our address the client connected to.
    pub local: SocketAddr,
    /// TLS facts, None on a plain listener.
    pub tls: Option<TlsInfo>,
    /// The server (listener index) the connection was accepted for: the SNI's at the
    /// handshake, the address's default on plain connections.
    pub server: usize,
    /// The role `[identity]` gives the verified client certificate.
    pub role: Option<Arc<str>>,
    /// What the certificate + address bindings say about this connection.
    pub binding: BindingCheck,
    /// `$connection`: this worker's connection serial number.
    pub serial: u64,
}

impl ConnInfo {
    /// The verified identity, if the client's chain verified.
    pub fn verified_identity(&self) -> Option<&Identity> {
        let tls = self.tls.as_ref()?;
        if tls.verified {
            tls.identity.as_deref()
        } else {
            None
        }
    }
}

/// What only the access log knows: the outcome of a request.
#[derive(Debug, Default)]
pub struct LogFacts {
    /// `$status`.
    pub status: u16,
    /// `$body_bytes_sent`.
    pub body_bytes: u64,
    /// `$bytes_sent`.
    pub bytes: u64,
    /// When the request head started arriving.
    pub started: Option<Instant>,
    /// `$upstream_addr`.
    pub upstream_addr: Option<SocketAddr>,
    /// `$upstream_status`.
    pub upstream_status: Option<u16>,
    /// `$upstream_response_time`.
    pub upstream_time: Option<Duration>,
    /// `$access_decision`: `allow`, `allow role=admin`, `deny: ...`.
    pub decision: std::borrow::Cow<'static, str>,
    /// The server (listener index) that handled the request: whose access log gets the line.
    pub server: usize,
}

impl LogFacts {
    /// Records a canned page as the response.
    pub fn canned(&mut self, page: crate::http::Canned) {
        let bytes = page.bytes();
        self.status = page.status();
        self.bytes = bytes.len() as u64;
        let head = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |i| i + 4);
        self.body_bytes = (bytes.len() - head) as u64;
    }
}

/// One request's routing facts, fixed once the server and URI are known.
pub struct RequestCtx<'a> {
    /// The connection.
    pub conn: &'a ConnInfo,
    /// The server (listener) the Host selected.
    pub listener: &'a crate::config::Listener,
    /// `[[map]]` variables.
    pub maps: &'a [VarMap],
    /// `$host`.
    pub host: &'a [u8],
    /// `$uri` (normalized).
    pub uri: &'a [u8],
    /// Requests served on this connection so far, this one included.
    pub served: u64,
}

impl<'a> RequestCtx<'a> {
    /// Variable evaluation for this request, its head in `buf`.
    pub fn vars<'b>(
        &'b self,
        head: &'b RequestHead,
        buf: &'b [u8],
        proxy_host: &'b [u8],
    ) -> RequestVars<'b> {
        RequestVars {
            conn: self.conn,
            head,
            buf,
            host: self.host,
            uri: self.uri,
            proxy_host,
            maps: self.maps,
            server_name: self
                .listener
                .server_names
                .first()
                .map_or("", String::as_str),
            served: self.served,
            log: None,
        }
    }
}

impl ConnInfo {
    /// Appends the value of an identity header; false when it has none for this connection
    /// (then the header is not sent). Fields that vouch for the client (role, SPIFFE ID, XFCC,
    /// RFC 9440) are given for verified certificates only; the certificate's own fields are
    /// given whenever one was presented, as nginx's variables are, with `verify` saying
    /// whether it verified.
    pub fn identity_header(&self, field: IdentityField, out: &mut Vec<u8>) -> bool {
        let Some(tls) = self.tls.as_ref() else {
            return false;
        };
        if field == IdentityField::Verify {
            out.extend_from_slice(tls.verify.as_bytes());
            return true;
        }
        if field == IdentityField::Role {
            return match self.role.as_deref() {
                Some(r) => {
                    out.extend_from_slice(r.as_bytes());
                    true
                }
                None => false,
            };
        }
        let Some(id) = tls.identity.as_deref() else {
            return false;
        };
        let verified = tls.verified;
        let text: String = match field {
            IdentityField::Subject => id.subject_dn.clone(),
            IdentityField::Issuer => id.issuer_dn.clone(),
            IdentityField::Serial => id.serial.clone(),
            IdentityField::Fingerprint => id.fingerprint_sha1.clone(),
            IdentityField::FingerprintSha256 => id.fingerprint_sha256.clone(),
            IdentityField::NotBefore => crate::clock::openssl_time(id.not_before),
            IdentityField::NotAfter => crate::clock::openssl_time(id.not_after),
            IdentityField::Cert => id.escaped_pem.clone(),
            IdentityField::SpiffeId if verified => match &id.spiffe_id {
                Some(s) => s.clone(),
                None => return false,
            },
            IdentityField::Xfcc if verified => id.xfcc(),
            IdentityField::ClientCert if verified => id.rfc9440_cert(),
            IdentityField::ClientCertChain if verified && !id.chain_base64.is_empty() => {
                id.rfc9440_chain()
            }
            _ => return false,
        };
        out.extend_from_slice(text.as_bytes());
        true
    }
}

/// What variable evaluation needs about one request.
pub struct RequestVars<'a> {
    /// The connection.
    pub conn: &'a ConnInfo,
    /// The parsed head.
    pub head: &'a RequestHead,
    /// The buffer the head was parsed from.
    pub buf: &'a [u8],
    /// `$host`.
    pub host: &'a [u8],
    /// `$uri` (normalized).
    pub uri: &'a [u8],
    /// `$proxy_host`, when proxying.
    pub proxy_host: &'a [u8],
    /// `[[map]]` variables.
    pub maps: &'a [VarMap],
    /// `$server_name`.
    pub server_name: &'a str,
    /// `$connection_requests`.
    pub served: u64,
    /// The request's outcome, when logging.
    pub log: Option<&'a LogFacts>,
}

impl RequestVars<'_> {
    /// Appends a variable's value to `out`; unknown or absent values append nothing, as nginx
    /// prints an empty string.
    pub fn eval(&self, var: &Var, out: &mut Vec<u8>) {
        self.eval_at(var, out, 0);
    }

    fn eval_at(&self, var: &Var, out: &mut Vec<u8>, depth: u8) {
        let tls = self.conn.tls.as_ref();
        let id = tls.and_then(|t| t.identity.as_deref());
        let target = self.head.target.get(self.buf);
        let log = self.log;
        match var {
            Var::Host => out.extend_from_slice(self.host),
            Var::ProxyHost => out.extend_from_slice(self.proxy_host),
            Var::RemoteAddr => out.extend_from_slice(self.conn.peer_ip.as_bytes()),
            Var::RemotePort => push_u64(out, u64::from(self.conn.peer.port())),
            Var::ServerPort => push_u64(out, u64::from(self.conn.local.port())),
            Var::Scheme => out.extend_from_slice(if tls.is_some() { b"https" } else { b"http" }),
            Var::RequestUri => out.extend_from_slice(target),
            Var::Uri => out.extend_from_slice(self.uri),
            Var::Args => {
                if let Some(q) = target.iter().position(|&b| b == b'?') {
                    out.extend_from_slice(&target[q + 1..]);
                }
            }
            Var::RequestMethod => out.extend_from_slice(self.head.method_span.get(self.buf)),
            Var::ProxyAddXForwardedFor => {
                let mut first = true;
                for h in &self.head.headers {
                    if h.name
                        .get(self.buf)
                        .eq_ignore_ascii_case(b"x-forwarded-for")
                    {
                        if !first {
                            out.extend_from_slice(b", ");
                        }
                        out.extend_from_slice(h.value.get(self.buf));
                        first = false;
                    }
                }
                if !first {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(self.conn.peer_ip.as_bytes());
            }
            Var::SslClientVerify => {
                if let Some(t) = tls {
                    out.extend_from_slice(t.verify.as_bytes());
                }
            }
            Var::SslClientSDn => push(out, id.map(|i| i.subject_dn.as_str())),
            Var::SslClientIDn => push(out, id.map(|i| i.issuer_dn.as_str())),
            Var::SslClientSerial => push(out, id.map(|i| i.serial.as_str())),
            Var::SslClientFingerprint => push(out, id.map(|i| i.fingerprint_sha1.as_str())),
            Var::SslProtocol => push(out, tls.map(|t| t.protocol)),
            Var::SslCipher => push(out, tls.map(|t| t.cipher)),
            Var::SslServerName => push(out, tls.and_then(|t| t.server_name.as_deref())),
            Var::SslSessionReused => {
                if let Some(t) = tls {
                    out.push(if t.resumed { b'r' } else { b'.' });
                }
            }
            Var::Http(name) => {
                if let Some(v) = self.head.header(self.buf, name.as_bytes()) {
                    out.extend_from_slice(v);
                }
            }
            Var::Request => {
                out.extend_from_slice(self.head.method_span.get(self.buf));
                out.push(b' ');
                out.extend_from_slice(target);
                out.extend_from_slice(if self.head.version_minor == 0 {
                    b" HTTP/1.0"
                } else {
                    b" HTTP/1.1"
                });
            }
            Var::ServerProtocol => out.extend_from_slice(if self.head.version_minor == 0 {
                b"HTTP/1.0"
            } else {
                b"HTTP/1.1"
            }),
            Var::Status => push_num(out, log.map(|l| u64::from(l.status))),
            Var::BodyBytesSent => push_num(out, log.map(|l| l.body_bytes)),
            Var::BytesSent => push_num(out, log.map(|l| l.bytes)),
            Var::RequestTime => {
                if let Some(t) = log.and_then(|l| l.started) {
                    push_secs(out, t.elapsed());
                }
            }
            Var::UpstreamAddr => match log.and_then(|l| l.upstream_addr) {
                Some(a) => {
                    use std::io::Write;
                    let _ = write!(out, "{a}");
                }
                None => out.push(b'-'),
            },
            Var::UpstreamStatus => match log.and_then(|l| l.upstream_status) {
                Some(s) => push_u64(out, u64::from(s)),
                None => out.push(b'-'),
            },
            Var::UpstreamResponseTime => match log.and_then(|l| l.upstream_time) {
                Some(d) => push_secs(out, d),
                None => out.push(b'-'),
            },
            Var::AccessDecision => push(out, log.map(|l| l.decision.as_ref())),
            Var::SentHttp(_) => {}
            Var::TimeLocal => crate::clock::push_time_local(out),
            Var::TimeIso8601 => crate::clock::push_time_iso8601(out),
            Var::Msec => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                push_secs(out, now);
            }
            Var::ServerName => out.extend_from_slice(self.server_name.as_bytes()),
            Var::ServerAddr => {
                use std::io::Write;
                let _ = write!(out, "{}", self.conn.local.ip());
            }
            Var::Connection => push_u64(out, self.conn.serial),
            Var::ConnectionRequests => push_u64(out, self.served),
            Var::ContentLength => {
                if let Some(v) = self.head.header(self.buf, b"content-length") {
                    out.extend_from_slice(v);
                }
            }
            Var::ContentType => {
                if let Some(v) = self.head.header(self.buf, b"content-type") {
                    out.extend_from_slice(v);
                }
            }
            Var::SslClientEscapedCert => push(out, id.map(|i| i.escaped_pem.as_str())),
            Var::SslClientVStart => {
                if let Some(i) = id {
                    crate::clock::push_openssl_time(out, i.not_before);
                }
            }
            Var::SslClientVEnd => {
                if let Some(i) = id {
                    crate::clock::push_openssl_time(out, i.not_after);
                }
            }
            Var::SslClientVRemain => {
                if let Some(i) = id {
                    push_u64(out, i.days_left(crate::clock::unix_now()).max(0) as u64);
                }
            }
            Var::SslClientFingerprintSha256 => push(out, id.map(|i| i.fingerprint_sha256.as_str())),
            Var::SslClientSpiffeId => push(
                out,
                self.conn
                    .verified_identity()
                    .and_then(|i| i.spiffe_id.as_deref()),
            ),
            Var::SslClientRole => push(out, self.conn.role.as_deref()),
            Var::Map(i) => {
                let Some(map) = self.maps.get(*i) else {
                    return;
                };
                if depth >= MAX_MAP_DEPTH {
                    return;
                }
                // The usual source (`$ssl_client_s_dn`) is looked up in place.
                let held = map.source.single_var().and_then(|v| self.held(v));
                let value = match held {
                    Some(input) => map.lookup(input),
                    None => {
                        let mut input = Vec::new();
                        map.source
                            .render(&mut input, |v, o| self.eval_at(v, o, depth + 1));
                        map.lookup(&input)
                    }
                };
                value.render(out, |v, o| self.eval_at(v, o, depth + 1));
            }
        }
    }

    /// Renders a template.
    pub fn render(&self, t: &Template, out: &mut Vec<u8>) {
        t.render(out, |v, o| self.eval(v, o));
    }

    /// The value of `var` where it is already held as bytes (no formatting needed).
    fn held(&self, var: &Var) -> Option<&[u8]> {
        let tls = self.conn.tls.as_ref();
        let id = tls.and_then(|t| t.identity.as_deref());
        Some(match var {
            Var::Host => self.host,
            Var::Uri => self.uri,
            Var::RemoteAddr => self.conn.peer_ip.as_bytes(),
            Var::RequestUri => self.head.target.get(self.buf),
            Var::RequestMethod => self.head.method_span.get(self.buf),
            Var::SslClientVerify => tls?.verify.as_bytes(),
            Var::SslClientSDn => id?.subject_dn.as_bytes(),
            Var::SslClientIDn => id?.issuer_dn.as_bytes(),
            Var::SslClientSerial => id?.serial.as_bytes(),
            Var::SslClientFingerprint => id?.fingerprint_sha1.as_bytes(),
            Var::SslServerName => tls?.server_name.as_deref()?.as_bytes(),
            Var::SslClientRole => self.conn.role.as_deref()?.as_bytes(),
            Var::Http(name) => self.head.header(self.buf, name.as_bytes())?,
            _ => return None,
        })
    }
}

impl Lookup for RequestVars<'_> {
    fn append(&self, var: &Var, out: &mut Vec<u8>) {
        self.eval(var, out);
    }

    fn borrow(&self, var: &Var) -> Option<&[u8]> {
        self.held(var)
    }
}

fn push_num(out: &mut Vec<u8>, v: Option<u64>) {
    if let Some(v) = v {
        push_u64(out, v);
    }
}

/// Appends a number's digits straight into `out` (no temporary string: evaluating a variable
/// allocates at most its output).
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Seconds with milliseconds, as nginx's `$request_time`: `0.012`.
fn push_secs(out: &mut Vec<u8>, d: Duration) {
    use std::io::Write;
    let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
}

fn push(out: &mut Vec<u8>, v: Option<&str>) {
    if let Some(v) = v {
        out.extend_from_slice(v.as_bytes());
    }
}
