//! The peer phase: what the handshake established about the client, fixed for the life of the
//! connection (TLS facts, the certificate's identity, the role `[identity]` gives it and what
//! the address bindings say). Built once per connection; every request on it reads the same
//! [`Peer`], whatever protocol carries the request.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::{CipherSuite, HandshakeKind, ProtocolVersion, ServerConnection};

use crate::config::{Config, IdentityField};
use crate::policy::BindingCheck;
use crate::x509::identity::Identity;

/// TLS facts of a connection, fixed after the handshake.
#[derive(Debug, Default)]
pub struct TlsFacts {
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

impl TlsFacts {
    /// Reads the negotiated parameters off a finished handshake.
    pub fn from_connection(conn: &ServerConnection) -> TlsFacts {
        TlsFacts {
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

/// What is known about the client of a connection once its handshake is done: address, TLS
/// facts, certificate identity, and the identity decisions (role, binding), made once.
#[derive(Debug)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// `$remote_addr`, formatted once per connection.
    pub ip: String,
    /// Our address the client connected to.
    pub local: SocketAddr,
    /// TLS facts, None on a plain listener.
    pub tls: Option<TlsFacts>,
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

impl Peer {
    /// The peer of a connection from `addr` to `local`, accepted for `server`, with the TLS
    /// facts of its handshake (None on a plain listener). The role and the binding of a
    /// verified certificate are decided here, once: a resumed session carries the same chain,
    /// so the same decisions.
    pub fn establish(
        config: &Config,
        addr: SocketAddr,
        local: SocketAddr,
        tls: Option<TlsFacts>,
        server: usize,
        serial: u64,
    ) -> Peer {
        let verified = tls
            .as_ref()
            .filter(|t| t.verified)
            .and_then(|t| t.identity.as_deref());
        let (role, binding) = match verified {
            Some(id) => (
                config.identity.role_for(id),
                config.identity.check_binding(id, addr.ip()),
            ),
            None => (None, BindingCheck::Unbound),
        };
        Peer {
            addr,
            ip: addr.ip().to_string(),
            local,
            tls,
            server,
            role,
            binding,
            serial,
        }
    }
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

impl Peer {
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
