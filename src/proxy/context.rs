//! What is known about a connection (once, after the handshake) and a request (per request),
//! and evaluating nginx variables against them.

use std::net::SocketAddr;

use rustls::{CipherSuite, HandshakeKind, ProtocolVersion, ServerConnection};

use crate::http::RequestHead;
use crate::identity::Identity;
use crate::vars::{Template, Var};

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
    /// The client certificate's identity, when one was presented.
    pub identity: Option<Identity>,
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
}

impl RequestVars<'_> {
    /// Appends a variable's value to `out`; unknown or absent values append nothing, as nginx
    /// prints an empty string.
    pub fn eval(&self, var: &Var, out: &mut Vec<u8>) {
        let tls = self.conn.tls.as_ref();
        let id = tls.and_then(|t| t.identity.as_ref());
        let target = self.head.target.get(self.buf);
        match var {
            Var::Host => out.extend_from_slice(self.host),
            Var::ProxyHost => out.extend_from_slice(self.proxy_host),
            Var::RemoteAddr => out.extend_from_slice(self.conn.peer_ip.as_bytes()),
            Var::RemotePort => out.extend_from_slice(self.conn.peer.port().to_string().as_bytes()),
            Var::ServerPort => out.extend_from_slice(self.conn.local.port().to_string().as_bytes()),
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
        }
    }

    /// Renders a template.
    pub fn render(&self, t: &Template, out: &mut Vec<u8>) {
        t.render(out, |v, o| self.eval(v, o));
    }
}

fn push(out: &mut Vec<u8>, v: Option<&str>) {
    if let Some(v) = v {
        out.extend_from_slice(v.as_bytes());
    }
}
