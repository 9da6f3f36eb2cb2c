//! Mutual TLS to upstreams (nginx's `proxy_ssl_*`): one upstream's shared, immutable material
//! ([`UpstreamTls`]), each worker's own rustls `ClientConfig` built from it, and the failures a
//! TLS upstream adds, each worded for the one log line that reports it.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::{ResolvesClientCert, Resumption, Tls12Resumption};
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, ClientConfig, SignatureScheme, SupportedProtocolVersion};
use rustls_pki_types::ServerName;

use super::sessions::PerCoreSessions;
use crate::tls::upstream_verify::{UpstreamCertError, UpstreamVerifier};
use crate::tls::TlsVersions;
use crate::x509::trust::TrustStore;

/// What `[upstream.tls]` resolved to, before it is assembled.
pub struct UpstreamTlsParams {
    /// The trust store and `verify_depth`, or None for `verify = false`.
    pub verify: Option<(Arc<TrustStore>, u32)>,
    /// The name verified and sent as SNI (`proxy_ssl_name`).
    pub name: String,
    /// Whether SNI is sent (`proxy_ssl_server_name`).
    pub send_sni: bool,
    /// The client chain and key to present (`proxy_ssl_certificate(_key)`).
    pub client_cert: Option<Arc<CertifiedKey>>,
    /// Protocol versions offered (`proxy_ssl_protocols`).
    pub versions: TlsVersions,
    /// Whether sessions are resumed (`proxy_ssl_session_reuse`).
    pub session_reuse: bool,
}

/// Why `[upstream.tls]` cannot be assembled.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    /// The name is neither a DNS name nor an IP address.
    #[error("`{0}` is not a host name or IP address to verify and send as SNI")]
    BadName(String),
    /// rustls refused the configuration.
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// One upstream's TLS policy and material, shared read-only by every worker; each worker
/// makes its own `ClientConfig`s from it with [`UpstreamTls::worker_config`].
pub struct UpstreamTls {
    verifier: Arc<UpstreamVerifier>,
    verify: bool,
    name: String,
    server_name: ServerName<'static>,
    send_sni: bool,
    client_cert: Option<Arc<CertifiedKey>>,
    versions: TlsVersions,
    session_reuse: bool,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("verify", &self.verify)
            .field("name", &self.name)
            .field("send_sni", &self.send_sni)
            .field("client_cert", &self.client_cert.is_some())
            .field("versions", &self.versions)
            .field("session_reuse", &self.session_reuse)
            .finish()
    }
}

impl UpstreamTls {
    /// Assembles the policy and proves a rustls configuration can be made from it, so that
    /// workers never fail to build theirs.
    pub fn new(p: UpstreamTlsParams) -> Result<Self, UpstreamTlsError> {
        let host = p.name.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|_| UpstreamTlsError::BadName(p.name.clone()))?;
        let verify = p.verify.is_some();
        let verifier = Arc::new(match p.verify {
            Some((store, depth)) => UpstreamVerifier::new(store, depth),
            None => UpstreamVerifier::unverified(),
        });
        let tls = UpstreamTls {
            verifier,
            verify,
            name: p.name,
            server_name,
            send_sni: p.send_sni,
            client_cert: p.client_cert,
            versions: p.versions,
            session_reuse: p.session_reuse,
        };
        tls.worker_config()?;
        Ok(tls)
    }

    /// Whether the upstream's certificate is verified (`proxy_ssl_verify`).
    pub fn verify(&self) -> bool {
        self.verify
    }

    /// The name verified and sent as SNI.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as rustls takes it.
    pub fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }

    /// Whether a client certificate is presented.
    pub fn has_client_cert(&self) -> bool {
        self.client_cert.is_some()
    }

    /// A new rustls configuration for one worker and one server, with its own lock-free,
    /// per-core session store: sessions are resumed per server, as nginx does per peer.
    pub fn worker_config(&self) -> Result<Arc<ClientConfig>, rustls::Error> {
        let provider = Arc::new(crate::tls::hkdf::provider());
        let verifier: Arc<dyn ServerCertVerifier> = self.verifier.clone();
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions(self.versions))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut cfg = match &self.client_cert {
            Some(ck) => builder.with_client_cert_resolver(Arc::new(ClientCert(ck.clone()))),
            None => builder.with_no_client_auth(),
        };
        cfg.enable_sni = self.send_sni;
        cfg.resumption = if self.session_reuse {
            Resumption::store(Arc::new(PerCoreSessions::new()))
                .tls12_resumption(Tls12Resumption::SessionIdOrTickets)
        } else {
            Resumption::disabled()
        };
        Ok(Arc::new(cfg))
    }
}

fn versions(v: TlsVersions) -> &'static [&'static SupportedProtocolVersion] {
    static BOTH: [&SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static V12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static V13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match v {
        TlsVersions::Both => &BOTH,
        TlsVersions::Tls12 => &V12,
        TlsVersions::Tls13 => &V13,
    }
}

/// Presents our chain whatever CA names the upstream hints, as nginx does. Our own resolver
/// because rustls's `with_client_auth_cert` parses the certificate with webpki, which refuses
/// X.509 v1 client certificates (such as the enterprise mTLS guide's, made by
/// `openssl x509 -req`).
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// What went wrong in TLS with an upstream, for the log line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsFailure {
    /// We refused the upstream's certificate.
    #[error("{0}")]
    Certificate(UpstreamCertError),
    /// The upstream refused our client certificate (an alert about certificates).
    #[error("upstream refused our client certificate (TLS alert {0})")]
    CertificateRefused(&'static str),
    /// The upstream wants a client certificate and none is configured.
    #[error("upstream requires a client certificate and upstream.tls.certificate is not set (TLS alert {0})")]
    CertificateMissing(&'static str),
    /// Another fatal alert from the upstream.
    #[error("upstream ended the TLS session with alert {0}")]
    Alert(&'static str),
    /// The upstream closed the connection before the handshake finished.
    #[error("upstream closed the connection during the TLS handshake")]
    ClosedInHandshake,
    /// Anything else rustls or the socket said.
    #[error("upstream TLS failure: {0}")]
    Other(String),
}

impl TlsFailure {
    /// Classifies a rustls error; `have_cert` tells whether we presented a certificate.
    pub fn from_rustls(e: &rustls::Error, have_cert: bool) -> TlsFailure {
        if let Some(c) = UpstreamCertError::from_rustls(e) {
            return TlsFailure::Certificate(c.clone());
        }
        match e {
            rustls::Error::AlertReceived(a) => {
                let name = alert_name(*a);
                match a {
                    AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure
                        if !have_cert =>
                    {
                        TlsFailure::CertificateMissing(name)
                    }
                    AlertDescription::CertificateRequired
                    | AlertDescription::BadCertificate
                    | AlertDescription::UnsupportedCertificate
                    | AlertDescription::CertificateRevoked
                    | AlertDescription::CertificateExpired
                    | AlertDescription::CertificateUnknown
                    | AlertDescription::UnknownCA
                    | AlertDescription::AccessDenied => TlsFailure::CertificateRefused(name),
                    _ => TlsFailure::Alert(name),
                }
            }
            other => TlsFailure::Other(other.to_string()),
        }
    }

    /// Finds a TLS failure inside an I/O error from a TLS stream (our stream adapter wraps the
    /// rustls error it got), or None for a plain I/O error.
    pub fn from_io(e: &std::io::Error, have_cert: bool) -> Option<TlsFailure> {
        let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
        Some(Self::from_rustls(inner, have_cert))
    }
}

/// The RFC name of an alert, as OpenSSL and nginx print it.
pub fn alert_name(a: AlertDescription) -> &'static str {
    use AlertDescription as A;
    match a {
        A::CloseNotify => "close_notify",
        A::UnexpectedMessage => "unexpected_message",
        A::BadRecordMac => "bad_record_mac",
        A::RecordOverflow => "record_overflow",
        A::HandshakeFailure => "handshake_failure",
        A::BadCertificate => "bad_certificate",
        A::UnsupportedCertificate => "unsupported_certificate",
        A::CertificateRevoked => "certificate_revoked",
        A::CertificateExpired => "certificate_expired",
        A::CertificateUnknown => "certificate_unknown",
        A::IllegalParameter => "illegal_parameter",
        A::UnknownCA => "unknown_ca",
        A::AccessDenied => "access_denied",
        A::DecodeError => "decode_error",
        A::DecryptError => "decrypt_error",
        A::ProtocolVersion => "protocol_version",
        A::InsufficientSecurity => "insufficient_security",
        A::InternalError => "internal_error",
        A::InappropriateFallback => "inappropriate_fallback",
        A::UserCanceled => "user_canceled",
        A::MissingExtension => "missing_extension",
        A::UnsupportedExtension => "unsupported_extension",
        A::UnrecognisedName => "unrecognized_name",
        A::BadCertificateStatusResponse => "bad_certificate_status_response",
        A::UnknownPSKIdentity => "unknown_psk_identity",
        A::CertificateRequired => "certificate_required",
        A::NoApplicationProtocol => "no_application_protocol",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_classified() {
        let r = |a| rustls::Error::AlertReceived(a);
        assert!(matches!(
            TlsFailure::from_rustls(&r(AlertDescription::CertificateRequired), false),
            TlsFailure::CertificateMissing("certificate_required")
        ));
        assert!(matches!(
            TlsFailure::from_rustls(&r(AlertDescription::UnknownCA), true),
            TlsFailure::CertificateRefused("unknown_ca")
        ));
        assert!(matches!(
            TlsFailure::from_rustls(&r(AlertDescription::HandshakeFailure), true),
            TlsFailure::Alert("handshake_failure")
        ));
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            r(AlertDescription::BadCertificate),
        );
        assert_eq!(
            TlsFailure::from_io(&io, true).map(|f| f.to_string()),
            Some("upstream refused our client certificate (TLS alert bad_certificate)".into())
        );
        assert!(TlsFailure::from_io(&std::io::Error::other("x"), true).is_none());
    }

    #[test]
    fn names_must_be_hosts() {
        let p = |name: &str| UpstreamTlsParams {
            verify: None,
            name: name.into(),
            send_sni: true,
            client_cert: None,
            versions: TlsVersions::Both,
            session_reuse: true,
        };
        assert!(UpstreamTls::new(p("app.internal")).is_ok());
        assert!(UpstreamTls::new(p("10.0.0.1")).is_ok());
        assert!(UpstreamTls::new(p("[::1]")).is_ok());
        assert!(matches!(
            UpstreamTls::new(p("app#2")),
            Err(UpstreamTlsError::BadName(_))
        ));
    }
}
