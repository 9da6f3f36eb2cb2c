//! TLS: server certificates by SNI, client verification with nginx's semantics, tickets, and
//! the per-worker rustls configuration built from them.
//!
//! [`ServerTls`] is the shared, immutable material of one listener. Each worker calls
//! [`ServerTls::worker_config`] once to get its own `rustls::ServerConfig`, with its own session
//! cache and ticketer, so no handshake touches state another core uses.

/// The three handshake-signature methods that rustls's client- and server-certificate
/// verifier traits both require, delegated to the implementing type's `signatures`
/// ([`crate::x509::signature::HandshakeSignatures`]): written once for both verifiers.
macro_rules! handshake_signature_methods {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.signatures.verify_tls12(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.signatures.verify_tls13(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.signatures.schemes()
        }
    };
}

pub mod client_auth;
pub mod halves;
pub mod hello;
pub mod hkdf;
pub mod poll;
pub mod sni;
pub mod stream;
pub mod tickets;
pub mod upstream_verify;

use std::sync::Arc;

use rustls::server::ServerSessionMemoryCache;
use rustls::sign::CertifiedKey;
use rustls::{DistinguishedName, ServerConfig, SupportedProtocolVersion};

use crate::x509::trust::TrustStore;
use client_auth::{ClientAuth, ClientAuthMode, FailureMode};
use sni::SniResolver;
use tickets::TicketKeys;

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

/// Everything a listener's TLS is made from, resolved and loaded by the configuration.
pub struct ServerTlsSpec {
    /// Certificate chains with keys, each with optional explicit names; the first is the default.
    pub certs: Vec<(Arc<CertifiedKey>, Vec<String>)>,
    /// Protocol versions offered.
    pub versions: TlsVersions,
    /// How the handshake asks for a client certificate.
    pub mode: ClientAuthMode,
    /// What a refused client certificate gets.
    pub failure: FailureMode,
    /// CAs client chains are verified against (`client_certificate` + `trusted_certificate`).
    pub store: Option<Arc<TrustStore>>,
    /// CA names sent in CertificateRequest (`client_certificate` only, as nginx).
    pub hints: Vec<DistinguishedName>,
    /// nginx `ssl_verify_depth`.
    pub depth: u32,
    /// CRLs and their policy (nginx `ssl_crl`), if any.
    pub revocation: Option<Arc<crate::x509::crl::Revocation>>,
    /// Session tickets: None for off; the keys otherwise (first encrypts, all decrypt).
    pub tickets: Option<TicketKeys>,
    /// Stateful TLS 1.2 sessions per worker (0 = off).
    pub session_cache: usize,
    /// Ticket lifetime, seconds (nginx `ssl_session_timeout`).
    pub session_timeout: u32,
    /// Offer HTTP/2 in ALPN (`listener.http2`).
    pub http2: bool,
    /// CRLs and staples fetched in the background.
    pub fetch: crate::fetch::FetchPlan,
    /// Client-certificate OCSP, if on.
    pub ocsp: Option<Arc<crate::fetch::ocsp_client::ClientOcsp>>,
}

/// The TLS material and policy of one listener, shared read-only by all workers.
#[derive(Debug)]
pub struct ServerTls {
    resolver: Arc<SniResolver>,
    versions: TlsVersions,
    client_auth: Arc<ClientAuth>,
    /// What a refused client certificate gets: a TLS alert or nginx's HTTP 400 page.
    pub failure: FailureMode,
    /// How the handshake asks for a client certificate (nginx `ssl_verify_client`, made
    /// lenient when a location relaxes it).
    pub mode: ClientAuthMode,
    tickets: Option<TicketKeys>,
    session_cache: usize,
    session_timeout: u32,
    /// Subject and notAfter of each served certificate, for expiry metrics.
    served: Vec<(String, i64)>,
    /// Subject and notAfter of each CA clients are verified against.
    cas: Vec<(String, i64)>,
    /// Issuer and nextUpdate of each CRL, for expiry metrics.
    crls: Vec<(String, Option<i64>)>,
    /// HTTP/2 is offered in ALPN.
    http2: bool,
    /// What the fetcher thread fetches for this listener.
    pub fetch: crate::fetch::FetchPlan,
    /// Client-certificate OCSP, checked before a connection's first request.
    pub ocsp: Option<Arc<crate::fetch::ocsp_client::ClientOcsp>>,
}

impl ServerTls {
    /// Subject (RFC 2253) and notAfter (Unix seconds) of every certificate this listener serves.
    pub fn server_certificates(&self) -> &[(String, i64)] {
        &self.served
    }

    /// Subject and notAfter of every CA client certificates are verified against.
    pub fn client_cas(&self) -> &[(String, i64)] {
        &self.cas
    }

    /// Issuer (RFC 2253) and nextUpdate (Unix seconds; None: never expires) of every CRL.
    pub fn crls(&self) -> &[(String, Option<i64>)] {
        &self.crls
    }

    /// Assembles a listener's TLS from loaded material.
    pub fn new(spec: ServerTlsSpec) -> Result<Self, rustls::Error> {
        let Some((default, _)) = spec.certs.first() else {
            return Err(rustls::Error::General("no server certificate".into()));
        };
        let mut resolver = SniResolver::new(default.clone());
        for (key, names) in &spec.certs {
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
        let served = spec
            .certs
            .iter()
            .filter_map(|(k, _)| k.cert.first())
            .filter_map(|c| crate::x509::identity::Identity::from_der(c))
            .map(|id| (id.subject_dn, id.not_after))
            .collect();
        let cas = spec
            .store
            .as_ref()
            .map(|st| {
                st.anchors()
                    .iter()
                    .filter_map(|a| crate::x509::identity::Identity::from_der(&a.der))
                    .map(|id| (id.subject_dn, id.not_after))
                    .collect()
            })
            .unwrap_or_default();
        let crls = spec
            .revocation
            .as_ref()
            .map(|r| {
                r.crls()
                    .iter()
                    .map(|c| (c.issuer.clone(), c.next_update))
                    .collect()
            })
            .unwrap_or_default();
        let client_auth = Arc::new(
            ClientAuth::new(spec.mode, spec.failure, spec.store, spec.depth, spec.hints)?
                .with_revocation(spec.revocation)
                .with_discovery(spec.fetch.discover_from.clone()),
        );
        Ok(ServerTls {
            resolver: Arc::new(resolver),
            versions: spec.versions,
            client_auth,
            failure: spec.failure,
            mode: spec.mode,
            tickets: spec.tickets,
            session_cache: spec.session_cache,
            session_timeout: spec.session_timeout,
            served,
            cas,
            crls,
            http2: spec.http2,
            fetch: spec.fetch,
            ocsp: spec.ocsp,
        })
    }

    /// The client verifier, for reading a connection's verification outcome.
    pub fn client_auth(&self) -> &Arc<ClientAuth> {
        &self.client_auth
    }

    /// Builds one worker's own rustls configuration: shared certificates and verifier, but a
    /// private session cache and ticketer, so handshakes on this core take no shared lock.
    pub fn worker_config(&self) -> Result<Arc<ServerConfig>, rustls::Error> {
        let provider = Arc::new(crate::tls::hkdf::provider());
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(self.versions.list())?
            .with_client_cert_verifier(self.client_auth.clone())
            .with_cert_resolver(self.resolver.clone());
        // As nginx: h2 when HTTP/2 is on, then HTTP/1.1 and HTTP/1.0 (a client that offers
        // only h2 to a server without it gets no_application_protocol, as from nginx).
        cfg.alpn_protocols = if self.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()]
        } else {
            vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()]
        };
        cfg.session_storage = if self.session_cache == 0 {
            Arc::new(rustls::server::NoServerSessionStorage {})
        } else {
            ServerSessionMemoryCache::new(self.session_cache)
        };
        if let Some(keys) = &self.tickets {
            cfg.ticketer = Arc::new(keys.ticketer(self.session_timeout)?);
            // TLS 1.3: rustls's default of two tickets per handshake, as OpenSSL sends; clients
            // that open connections in parallel would otherwise run out and fall back to full
            // handshakes.
        }
        Ok(Arc::new(cfg))
    }
}
