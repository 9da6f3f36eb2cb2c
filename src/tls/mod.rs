//! TLS: server certificates by SNI, client verification with nginx's semantics, tickets, and
//! the per-worker rustls configuration built from them.
//!
//! [`ServerTls`] is the shared, immutable material of one listener. Each worker calls
//! [`ServerTls::worker_config`] once to get its own `rustls::ServerConfig`, with its own session
//! cache and ticketer, so no handshake touches state another core uses.

pub mod client_auth;
pub mod hostname;
pub mod pem;
pub mod sni;
pub mod stream;
pub mod tickets;
pub mod upstream_verify;
pub mod verify;

use std::sync::Arc;

use rustls::server::ServerSessionMemoryCache;
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedProtocolVersion};

use client_auth::{ClientAuth, ClientAuthMode, FailureMode};
use sni::SniResolver;
use tickets::TicketKey;
use verify::TrustStore;

/// Which TLS versions a listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.2 and 1.3, 1.3 preferred.
    Both,
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl TlsVersions {
    fn list(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static V12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        static V13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersions::Both => &BOTH,
            TlsVersions::Tls12 => &V12,
            TlsVersions::Tls13 => &V13,
        }
    }
}

/// The TLS material and policy of one listener, shared read-only by all workers.
#[derive(Debug)]
pub struct ServerTls {
    resolver: Arc<SniResolver>,
    versions: TlsVersions,
    client_auth: Arc<ClientAuth>,
    /// What a refused client certificate gets: a TLS alert or nginx's HTTP 400 page.
    pub failure: FailureMode,
    /// nginx `ssl_verify_client`.
    pub mode: ClientAuthMode,
    tickets: Option<TicketKey>,
    session_cache: usize,
}

impl ServerTls {
    /// Assembles a listener's TLS from loaded certificates (each with optional explicit names)
    /// and its client-verification policy.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        certs: Vec<(Arc<CertifiedKey>, Vec<String>)>,
        versions: TlsVersions,
        mode: ClientAuthMode,
        failure: FailureMode,
        store: Option<Arc<TrustStore>>,
        depth: u32,
        tickets: bool,
        session_cache: usize,
    ) -> Result<Self, rustls::Error> {
        let Some((default, _)) = certs.first() else {
            return Err(rustls::Error::General("no server certificate".into()));
        };
        let mut resolver = SniResolver::new(default.clone());
        for (key, names) in &certs {
            let names = if names.is_empty() {
                key.cert
                    .first()
                    .map(|c| sni::certificate_names(c))
                    .unwrap_or_default()
            } else {
                names.clone()
            };
            for n in names {
                resolver.add(&n, key.clone());
            }
        }
        let client_auth = Arc::new(ClientAuth::new(mode, failure, store, depth)?);
        let tickets = if tickets {
            Some(TicketKey::random()?)
        } else {
            None
        };
        Ok(ServerTls {
            resolver: Arc::new(resolver),
            versions,
            client_auth,
            failure,
            mode,
            tickets,
            session_cache,
        })
    }

    /// The client verifier, for reading a connection's verification outcome.
    pub fn client_auth(&self) -> &Arc<ClientAuth> {
        &self.client_auth
    }

    /// Builds one worker's own rustls configuration: shared certificates and verifier, but a
    /// private session cache and ticketer, so handshakes on this core take no shared lock.
    pub fn worker_config(&self) -> Result<Arc<ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(self.versions.list())?
            .with_client_cert_verifier(self.client_auth.clone())
            .with_cert_resolver(self.resolver.clone());
        // As nginx: HTTP/1.1 and HTTP/1.0 (a client that offers only h2 gets
        // no_application_protocol, as from nginx without http2).
        cfg.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
        cfg.session_storage = if self.session_cache == 0 {
            Arc::new(rustls::server::NoServerSessionStorage {})
        } else {
            ServerSessionMemoryCache::new(self.session_cache)
        };
        if let Some(key) = &self.tickets {
            // nginx's ssl_session_timeout default: 5 minutes.
            cfg.ticketer = Arc::new(key.ticketer(300)?);
            // TLS 1.3: rustls's default of two tickets per handshake, as OpenSSL sends; clients
            // that open connections in parallel would otherwise run out and fall back to full
            // handshakes.
        }
        Ok(Arc::new(cfg))
    }
}
