//! Client-certificate chain verification with nginx/OpenSSL 3.0 semantics.
//!
//! rustls-webpki cannot be used for client certificates here: it rejects
//! X.509 v1 certificates (which `openssl x509 -req` produces on OpenSSL 3.0,
//! as in the seed blog posts) and has no equivalent of nginx's
//! `ssl_verify_depth`. This module re-implements the parts of OpenSSL's
//! `x509_vfy.c` that nginx exercises (purpose "sslclient", default flags, no
//! `X509_V_FLAG_PARTIAL_CHAIN`, security level 2) as a pure function: no I/O,
//! no global state, no rustls trait implementations.
//!
//! nginx installs a verify callback that always continues, so OpenSSL reports
//! every problem and the *last* reported error becomes the connection's
//! verify result (`$ssl_client_verify` = `FAILED:<reason>`). [`ChainVerifier`]
//! reproduces that by running OpenSSL's checks in OpenSSL's order (leaf key
//! level, chain building, extensions, authentication level, then signatures
//! and validity from the anchor down to the leaf) and returning the last
//! error.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls::DistinguishedName;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::signature_algorithm::SignatureAlgorithm;

/// Maximum number of intermediates accepted from a peer; bounds the work an
/// attacker can cause with a huge Certificate message (nginx's depth limit
/// is far below this in practice).
pub const MAX_PRESENTED_INTERMEDIATES: usize = 16;

/// Hard bound on the length of any chain we build, protecting against loops
/// among trust-store certificates that are not self-signed.
const MAX_BUILT_CHAIN: usize = 40;

/// Why a CA bundle (nginx `ssl_client_certificate`) could not be loaded; the
/// message is meant for configuration error output.
#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    /// The PEM input contained no `CERTIFICATE` block at all.
    #[error("CA bundle contains no certificates")]
    Empty,
    /// The PEM framing itself is broken.
    #[error("CA bundle is not valid PEM: {0}")]
    Pem(String),
    /// Certificate number `index` (0-based, in file order) is not valid DER X.509.
    #[error("CA bundle certificate #{index} cannot be parsed: {reason}")]
    Unparsable {
        /// 0-based position in the bundle.
        index: usize,
        /// Parser diagnostic.
        reason: String,
    },
}

/// One trusted certificate from the CA bundle, pre-parsed so that path
/// building does not re-parse the bundle per handshake.
#[derive(Debug, Clone)]
pub struct TrustAnchor {
    /// The certificate as it appears in the bundle.
    pub der: CertificateDer<'static>,
    /// Raw DER of the subject Name (used for issuer matching and as the CA
    /// name sent in CertificateRequest).
    pub subject: Vec<u8>,
    /// Raw DER of the SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Whether subject == issuer and the certificate verifies with its own key.
    pub self_signed: bool,
}

/// The set of CA certificates client certificates must chain to (nginx's
/// `ssl_client_certificate`). Shared read-only between worker threads.
#[derive(Debug, Clone)]
pub struct TrustStore {
    anchors: Vec<TrustAnchor>,
}

impl TrustStore {
    /// Loads a PEM bundle (several CAs allowed; v1 CA certificates allowed
    /// as OpenSSL allows them). Non-certificate PEM blocks are ignored.
    pub fn from_pem(pem: &[u8]) -> Result<Self, TrustStoreError> {
        let mut reader = pem;
        let mut ders = Vec::new();
        for item in rustls_pemfile::certs(&mut reader) {
            match item {
                Ok(c) => ders.push(c),
                Err(e) => return Err(TrustStoreError::Pem(e.to_string())),
            }
        }
        Self::from_der(ders)
    }

    /// Builds the store from DER certificates, e.g. when they come from a
    /// source other than a PEM file.
    pub fn from_der(certs: Vec<CertificateDer<'static>>) -> Result<Self, TrustStoreError> {
        if certs.is_empty() {
            return Err(TrustStoreError::Empty);
        }
        let mut anchors = Vec::with_capacity(certs.len());
        for (index, der) in certs.into_iter().enumerate() {
            let parsed =
                Parsed::parse(der.as_ref()).map_err(|reason| TrustStoreError::Unparsable {
                    index,
                    reason: reason.to_string(),
                })?;
            let self_signed = parsed.self_issued && check_signature(&parsed, &parsed).is_ok();
            anchors.push(TrustAnchor {
                subject: parsed.subject.to_vec(),
                spki: parsed.spki.to_vec(),
                not_before: parsed.not_before,
                not_after: parsed.not_after,
                self_signed,
                der: der.clone(),
            });
        }
        Ok(Self { anchors })
    }

    /// The subject DNs of all CAs, in bundle order, for the CertificateRequest
    /// `certificate_authorities` list (nginx sends the names from
    /// `ssl_client_certificate`).
    pub fn subjects(&self) -> Vec<DistinguishedName> {
        self.anchors
            .iter()
            .map(|a| DistinguishedName::from(a.subject.clone()))
            .collect()
    }

    /// The trusted certificates, for diagnostics and tests.
    pub fn anchors(&self) -> &[TrustAnchor] {
        &self.anchors
    }

    /// Number of CA certificates loaded.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether the store is empty (never true for a store built by the
    /// constructors; provided for API completeness).
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// A successfully verified chain, kept so later layers can expose the client
/// identity and expire cached verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// The chain as verified: leaf first, trust anchor last (a single entry
    /// when the leaf itself is a trusted self-signed certificate).
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's notAfter, Unix seconds.
    pub leaf_not_after: i64,
    /// The earliest notAfter over the whole chain, Unix seconds.
    pub earliest_not_after: i64,
    /// Until when this verdict may be cached, Unix seconds: the earliest notAfter, or sooner
    /// when a CRL it was checked against reaches its nextUpdate.
    pub cache_until: i64,
}

/// One verification failure, named after the OpenSSL `X509_V_ERR_*` code
/// nginx would report. `depth` is OpenSSL's error depth (0 = leaf) and
/// `subject` the certificate's subject at that depth, for log lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT (2): chain ends at a trusted but
    /// not self-signed CA whose issuer is unknown.
    #[error("unable to get issuer certificate at depth {depth} ({subject})")]
    UnableToGetIssuerCert {
        /// Error depth.
        depth: u32,
        /// Subject of the certificate at that depth.
        subject: String,
    },
    /// X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY (20): issuer not found.
    #[error("unable to get local issuer certificate at depth {depth} ({subject})")]
    UnableToGetIssuerCertLocally {
        /// Error depth.
        depth: u32,
        /// Subject of the certificate at that depth.
        subject: String,
    },
    /// X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE (21): lone leaf, unknown issuer.
    #[error("unable to verify the first certificate ({subject})")]
    UnableToVerifyLeafSignature {
        /// Subject of the leaf.
        subject: String,
    },
    /// X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT (18): untrusted self-signed leaf.
    #[error("self-signed certificate ({subject})")]
    DepthZeroSelfSigned {
        /// Subject of the leaf.
        subject: String,
    },
    /// X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN (19): chain ends in an untrusted root.
    #[error("self-signed certificate in certificate chain at depth {depth} ({subject})")]
    SelfSignedInChain {
        /// Error depth.
        depth: u32,
        /// Subject of the untrusted root.
        subject: String,
    },
    /// X509_V_ERR_CERT_CHAIN_TOO_LONG (22): `ssl_verify_depth` exceeded, or
    /// more intermediates presented than [`MAX_PRESENTED_INTERMEDIATES`].
    #[error("certificate chain too long at depth {depth}")]
    ChainTooLong {
        /// Error depth.
        depth: u32,
    },
    /// X509_V_ERR_CERT_SIGNATURE_FAILURE (7).
    #[error("certificate signature failure at depth {depth} ({subject})")]
    SignatureFailure {
        /// Error depth.
        depth: u32,
        /// Subject of the certificate whose signature failed.
        subject: String,
    },
    /// X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY (6).
    #[error("unable to decode issuer public key at depth {depth} ({subject})")]
    UndecodableIssuerKey {
        /// Error depth.
        depth: u32,
        /// Subject of the certificate being checked.
        subject: String,
    },
    /// X509_V_ERR_CERT_NOT_YET_VALID (9).
    #[error("certificate is not yet valid at depth {depth} ({subject})")]
    NotYetValid {
        /// Error depth.
        depth: u32,
        /// Subject.
        subject: String,
    },
    /// X509_V_ERR_CERT_HAS_EXPIRED (10).
    #[error("certificate has expired at depth {depth} ({subject})")]
    Expired {
        /// Error depth.
        depth: u32,
        /// Subject.
        subject: String,
    },
    /// X509_V_ERR_INVALID_CA (79 in OpenSSL 3.0): an issuing certificate is
    /// not a CA (no basicConstraints CA:TRUE; v1 only tolerated for the root).
    #[error("invalid CA certificate at depth {depth} ({subject})")]
    InvalidCa {
        /// Error depth.
        depth: u32,
        /// Subject.
        subject: String,
    },
    /// X509_V_ERR_PATH_LENGTH_EXCEEDED (25).
    #[error("path length constraint exceeded at depth {depth} ({subject})")]
    PathLengthExceeded {
        /// Error depth.
        depth: u32,
        /// Subject.
        subject: String,
    },
    /// X509_V_ERR_INVALID_PURPOSE (26): EKU/keyUsage do not allow TLS client use.
    #[error("unsuitable certificate purpose at depth {depth} ({subject})")]
    InvalidPurpose {
        /// Error depth.
        depth: u32,
        /// Subject.
        subject: String,
    },
    /// X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION (34).
    #[error("unhandled critical extension at depth {depth} ({subject})")]
    UnhandledCriticalExtension {
        /// Error depth.
        depth: u32,
        /// Subject.
        subject: String,
    },
    /// X509_V_ERR_EE_KEY_TOO_WEAK (66): leaf key below security level 2
    /// (e.g. RSA < 2048 bits).
    #[error("EE certificate key too weak ({subject})")]
    EeKeyTooWeak {
        /// Subject of the leaf.
        subject: String,
    },
    /// X509_V_ERR_CA_KEY_TOO_WEAK (67).
    #[error("CA certificate key too weak at depth {depth} ({subject})")]
    CaKeyTooWeak {
        /// Error depth.
        depth: u32,
        /// Subject.
        subject: String,
    },
    /// X509_V_ERR_CA_MD_TOO_WEAK (68): SHA-1/MD5 signature on a non-anchor
    /// certificate (OpenSSL uses this code for the leaf's signature too).
    #[error("CA signature digest algorithm too weak at depth {depth} ({subject})")]
    CaMdTooWeak {
        /// Error depth.
        depth: u32,
        /// Subject.
        subject: String,
    },
    /// X509_V_ERR_UNABLE_TO_GET_CRL (3): no CRL of this certificate's issuer is configured
    /// (with `crl_require_all`, every CA of the chain needs one, as in nginx).
    #[error("unable to get certificate CRL at depth {depth} ({subject}): no CRL of its issuer is configured")]
    UnableToGetCrl {
        /// Error depth.
        depth: u32,
        /// Subject of the certificate whose issuer has no CRL.
        subject: String,
    },
    /// X509_V_ERR_CRL_SIGNATURE_FAILURE (8): the issuer's CRL was signed by another key.
    #[error("CRL signature failure at depth {depth} ({subject}): {crl} was signed by another key than the issuer in the chain")]
    CrlSignatureFailure {
        /// Error depth.
        depth: u32,
        /// Subject of the certificate being checked.
        subject: String,
        /// The CRL file.
        crl: String,
    },
    /// X509_V_ERR_CRL_NOT_YET_VALID (11).
    #[error("CRL is not yet valid at depth {depth} ({subject}): {crl}")]
    CrlNotYetValid {
        /// Error depth.
        depth: u32,
        /// Subject of the certificate being checked.
        subject: String,
        /// The CRL file.
        crl: String,
    },
    /// X509_V_ERR_CRL_HAS_EXPIRED (12): the issuer's CRL is past its nextUpdate.
    #[error("CRL has expired at depth {depth} ({subject}): {crl} expired at {next_update}")]
    CrlHasExpired {
        /// Error depth.
        depth: u32,
        /// Subject of the certificate being checked.
        subject: String,
        /// The CRL file.
        crl: String,
        /// Its nextUpdate, ISO 8601.
        next_update: String,
    },
    /// X509_V_ERR_CERT_REVOKED (23): the certificate is on its issuer's CRL.
    #[error("certificate revoked at depth {depth} ({subject}, {detail})")]
    Revoked {
        /// Error depth.
        depth: u32,
        /// Subject of the revoked certificate.
        subject: String,
        /// Serial (hex, as `$ssl_client_serial`), when it was revoked and why, and the CRL.
        detail: String,
    },
    /// A presented certificate is not parsable X.509 DER. OpenSSL would fail
    /// the handshake while decoding; reported as X509_V_ERR_UNSPECIFIED.
    #[error("malformed certificate at depth {depth}: {reason}")]
    BadEncoding {
        /// Position in the presented chain (0 = leaf).
        depth: u32,
        /// Parser diagnostic.
        reason: String,
    },
}

impl VerifyError {
    /// OpenSSL 3.0's `X509_verify_cert_error_string()` text for this error,
    /// exactly what nginx puts after `FAILED:` in `$ssl_client_verify`.
    pub fn openssl_reason(&self) -> &'static str {
        match self {
            Self::UnableToGetIssuerCert { .. } => "unable to get issuer certificate",
            Self::UnableToGetIssuerCertLocally { .. } => "unable to get local issuer certificate",
            Self::UnableToVerifyLeafSignature { .. } => "unable to verify the first certificate",
            Self::DepthZeroSelfSigned { .. } => "self-signed certificate",
            Self::SelfSignedInChain { .. } => "self-signed certificate in certificate chain",
            Self::ChainTooLong { .. } => "certificate chain too long",
            Self::SignatureFailure { .. } => "certificate signature failure",
            Self::UndecodableIssuerKey { .. } => "unable to decode issuer public key",
            Self::NotYetValid { .. } => "certificate is not yet valid",
            Self::Expired { .. } => "certificate has expired",
            Self::InvalidCa { .. } => "invalid CA certificate",
            Self::PathLengthExceeded { .. } => "path length constraint exceeded",
            Self::InvalidPurpose { .. } => "unsuitable certificate purpose",
            Self::UnhandledCriticalExtension { .. } => "unhandled critical extension",
            Self::EeKeyTooWeak { .. } => "EE certificate key too weak",
            Self::CaKeyTooWeak { .. } => "CA certificate key too weak",
            Self::CaMdTooWeak { .. } => "CA signature digest algorithm too weak",
            Self::BadEncoding { .. } => "unspecified certificate verification error",
            Self::UnableToGetCrl { .. } => "unable to get certificate CRL",
            Self::CrlSignatureFailure { .. } => "CRL signature failure",
            Self::CrlNotYetValid { .. } => "CRL is not yet valid",
            Self::CrlHasExpired { .. } => "CRL has expired",
            Self::Revoked { .. } => "certificate revoked",
        }
    }

    /// OpenSSL's error depth (0 = the client's own certificate), when the error has one.
    pub fn depth(&self) -> Option<u32> {
        match self {
            Self::UnableToVerifyLeafSignature { .. }
            | Self::DepthZeroSelfSigned { .. }
            | Self::EeKeyTooWeak { .. } => Some(0),
            Self::UnableToGetIssuerCert { depth, .. }
            | Self::UnableToGetIssuerCertLocally { depth, .. }
            | Self::SelfSignedInChain { depth, .. }
            | Self::ChainTooLong { depth }
            | Self::SignatureFailure { depth, .. }
            | Self::UndecodableIssuerKey { depth, .. }
            | Self::NotYetValid { depth, .. }
            | Self::Expired { depth, .. }
            | Self::InvalidCa { depth, .. }
            | Self::PathLengthExceeded { depth, .. }
            | Self::InvalidPurpose { depth, .. }
            | Self::UnhandledCriticalExtension { depth, .. }
            | Self::CaKeyTooWeak { depth, .. }
            | Self::CaMdTooWeak { depth, .. }
            | Self::BadEncoding { depth, .. }
            | Self::UnableToGetCrl { depth, .. }
            | Self::CrlSignatureFailure { depth, .. }
            | Self::CrlNotYetValid { depth, .. }
            | Self::CrlHasExpired { depth, .. }
            | Self::Revoked { depth, .. } => Some(*depth),
        }
    }

    /// Whether nginx's `ngx_ssl_verify_error_optional()` tolerates this error
    /// under `ssl_verify_client optional_no_ca` (the request proceeds with
    /// `$ssl_client_verify` = `FAILED:<reason>`).
    pub fn is_ignorable_for_optional_no_ca(&self) -> bool {
        matches!(
            self,
            Self::DepthZeroSelfSigned { .. }
                | Self::SelfSignedInChain { .. }
                | Self::UnableToGetIssuerCert { .. }
                | Self::UnableToGetIssuerCertLocally { .. }
                | Self::UnableToVerifyLeafSignature { .. }
        )
    }

    /// The rustls error whose TLS alert tells the client why its certificate
    /// was refused (used when failures abort the handshake).
    pub fn to_rustls(&self) -> rustls::Error {
        use rustls::CertificateError as C;
        let ce = match self {
            Self::UnableToGetIssuerCert { .. }
            | Self::UnableToGetIssuerCertLocally { .. }
            | Self::UnableToVerifyLeafSignature { .. }
            | Self::DepthZeroSelfSigned { .. }
            | Self::SelfSignedInChain { .. } => C::UnknownIssuer,
            Self::Expired { .. } => C::Expired,
            Self::NotYetValid { .. } => C::NotValidYet,
            Self::SignatureFailure { .. } | Self::UndecodableIssuerKey { .. } => C::BadSignature,
            Self::InvalidPurpose { .. } => C::InvalidPurpose,
            Self::BadEncoding { .. } => C::BadEncoding,
            // certificate_revoked
            Self::Revoked { .. } => C::Revoked,
            // unknown_ca, as OpenSSL, BoringSSL and rustls send when revocation status is unknown
            Self::UnableToGetCrl { .. } => C::UnknownRevocationStatus,
            Self::CrlHasExpired { .. } | Self::CrlNotYetValid { .. } => C::ExpiredRevocationList,
            Self::CrlSignatureFailure { .. } => C::BadSignature,
            Self::ChainTooLong { .. }
            | Self::InvalidCa { .. }
            | Self::PathLengthExceeded { .. }
            | Self::UnhandledCriticalExtension { .. }
            | Self::EeKeyTooWeak { .. }
            | Self::CaKeyTooWeak { .. }
            | Self::CaMdTooWeak { .. } => C::Other(rustls::OtherError(Arc::new(self.clone()))),
        };
        rustls::Error::InvalidCertificate(ce)
    }
}

/// The OpenSSL purpose a chain is verified for: what the leaf (and every CA
/// above it) must allow by extendedKeyUsage and keyUsage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `sslclient`: a TLS client certificate (nginx `ssl_verify_client`).
    SslClient,
    /// `sslserver`: a TLS server certificate, what OpenSSL checks on the
    /// client side of a connection (nginx `proxy_ssl_verify`): EKU serverAuth
    /// (or Netscape/Microsoft SGC) or no EKU at all; keyUsage, when present,
    /// digitalSignature, keyEncipherment or keyAgreement.
    SslServer,
}

/// Verifies certificate chains against a [`TrustStore`] the way nginx
/// (OpenSSL 3.0, purpose sslclient or sslserver, security level 2) does.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    /// The CAs chains must end in.
    pub store: Arc<TrustStore>,
    /// nginx `ssl_verify_depth` (default 1). Semantics measured against
    /// nginx 1.22.1 / OpenSSL 3.0.19 (Debian 12), CA file holding only the
    /// root, client sending leaf + intermediates:
    ///
    /// | ssl_verify_depth | root→leaf | root→int→leaf | root→int1→int2→leaf |
    /// |------------------|-----------|---------------|---------------------|
    /// | 0                | 200       | 400           | 400                 |
    /// | 1                | 200       | 200           | 400                 |
    /// | 2                | 200       | 200           | 200                 |
    /// | 3                | 200       | 200           | 200                 |
    ///
    /// i.e. at most `max_depth` intermediates between leaf and trust anchor
    /// (at most `max_depth + 1` untrusted certificates). A chain that is too
    /// deep reports "unable to get local issuer certificate" (OpenSSL first
    /// reports "certificate chain too long", then that error, which wins).
    /// nginx's `proxy_ssl_verify_depth` goes through the same OpenSSL call.
    pub max_depth: u32,
    /// What the chain must be good for (client certificates unless built
    /// with [`ChainVerifier::for_servers`]).
    pub purpose: Purpose,
    /// CRLs every certificate of the chain is checked against (nginx `ssl_crl`), if any.
    pub revocation: Option<Arc<super::crl::Revocation>>,
}

/// Internal parsed view of one certificate; borrows the DER.
struct Parsed<'a> {
    x509: X509Certificate<'a>,
    subject: &'a [u8],
    issuer: &'a [u8],
    spki: &'a [u8],
    not_before: i64,
    not_after: i64,
    self_issued: bool,
}

impl<'a> Parsed<'a> {
    fn parse(der: &'a [u8]) -> Result<Self, String> {
        let (rest, x509) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err("trailing data after certificate".into());
        }
        // Reject duplicate / malformed extensions up front (as OpenSSL does
        // in x509v3_cache_extensions) so later lookups cannot fail.
        x509.tbs_certificate
            .extensions_map()
            .map_err(|e| e.to_string())?;
        let subject = x509.tbs_certificate.subject.as_raw();
        let issuer = x509.tbs_certificate.issuer.as_raw();
        let spki = x509.tbs_certificate.subject_pki.raw;
        let not_before = x509.validity().not_before.timestamp();
        let not_after = x509.validity().not_after.timestamp();
        Ok(Self {
            self_issued: subject == issuer,
            subject,
            issuer,
            spki,
            not_before,
            not_after,
            x509,
        })
    }

    fn subject_string(&self) -> String {
        self.x509.tbs_certificate.subject.to_string()
    }

    fn is_v1(&self) -> bool {
        self.x509.version().0 == 0
    }

    /// basicConstraints: None if absent, Some((ca, pathlen)).
    fn basic_constraints(&self) -> Option<(bool, Option<u32>)> {
        match self.x509.basic_constraints() {
            Ok(Some(bc)) => Some((bc.value.ca, bc.value.path_len_constraint)),
            _ => None,
        }
    }

    /// Whether keyUsage (when present) allows the TLS use of `purpose`:
    /// OpenSSL's `ku_reject` with KU_DIGITAL_SIGNATURE|KU_KEY_AGREEMENT for
    /// sslclient, and KU_TLS (adding keyEncipherment) for sslserver.
    fn ku_allows(&self, purpose: Purpose) -> bool {
        match self.x509.key_usage() {
            Ok(Some(ku)) => {
                let ku = ku.value;
                ku.digital_signature()
                    || ku.key_agreement()
                    || (purpose == Purpose::SslServer && ku.key_encipherment())
            }
            _ => true,
        }
    }

    /// extendedKeyUsage: None if absent, Some(allows `purpose`). For
    /// sslserver OpenSSL also accepts the Netscape and Microsoft
    /// Server-Gated-Cryptography purposes (`XKU_SGC`).
    fn eku_allows(&self, purpose: Purpose) -> Option<bool> {
        match purpose {
            Purpose::SslClient => self.eku_client(),
            Purpose::SslServer => match self.x509.extended_key_usage() {
                Ok(Some(eku)) => Some(
                    eku.value.server_auth
                        || eku.value.other.iter().any(|o| {
                            let id = o.to_id_string();
                            id == OID_NS_SGC || id == OID_MS_SGC
                        }),
                ),
                _ => None,
            },
        }
    }

    /// keyUsage: None if absent, Some((digitalSignature|keyAgreement, keyCertSign)).
    fn key_usage(&self) -> Option<(bool, bool)> {
        match self.x509.key_usage() {
            Ok(Some(ku)) => Some((
                ku.value.digital_signature() || ku.value.key_agreement(),
                ku.value.key_cert_sign(),
            )),
            _ => None,
        }
    }

    /// extendedKeyUsage: None if absent, Some(includes clientAuth).
    /// OpenSSL 3.0 does NOT accept anyExtendedKeyUsage for sslclient
    /// (measured: `openssl verify -purpose sslclient` and nginx refuse it).
    fn eku_client(&self) -> Option<bool> {
        match self.x509.extended_key_usage() {
            Ok(Some(eku)) => Some(eku.value.client_auth),
            _ => None,
        }
    }

    fn has_unhandled_critical(&self) -> bool {
        const HANDLED: &[&str] = &[
            "2.5.29.14", // subjectKeyIdentifier
            "2.5.29.15", // keyUsage
            "2.5.29.17", // subjectAltName
            "2.5.29.18", // issuerAltName
            "2.5.29.19", // basicConstraints
            "2.5.29.32", // certificatePolicies
            "2.5.29.35", // authorityKeyIdentifier
            "2.5.29.37", // extendedKeyUsage
            "2.5.29.31", // cRLDistributionPoints
            "1.3.6.1.5.5.7.1.1",
        ];
        self.x509.extensions().iter().any(|e| {
            e.critical && {
                let oid = e.oid.to_id_string();
                !HANDLED.contains(&oid.as_str())
            }
        })
    }

    /// OpenSSL `check_ca()`: 0 = not a CA, 1 = basicConstraints CA:TRUE,
    /// 3 = v1 self-issued root, 4 = keyUsage keyCertSign without bc.
    fn check_ca(&self) -> u8 {
        if let Some((_, cert_sign)) = self.key_usage() {
            if !cert_sign {
                return 0;
            }
        }
        match self.basic_constraints() {
            Some((true, _)) => 1,
            Some((false, _)) => 0,
            None => {
                if self.is_v1() && self.self_issued {
                    3
                } else if self.key_usage().is_some() {
                    4
                } else {
                    0
                }
            }
        }
    }

    /// Security level 2 (112-bit) key check.
    fn key_strong_enough(&self) -> bool {
        match self.x509.tbs_certificate.subject_pki.parsed() {
            Ok(PublicKey::RSA(rsa)) => rsa_bits(rsa.modulus) >= 2048,
            Ok(PublicKey::EC(_)) => matches!(
                ec_curve(self).as_deref(),
                Some(OID_P256 | OID_P384 | OID_P521)
            ),
            Ok(_) => {
                let alg = self
                    .x509
                    .tbs_certificate
                    .subject_pki
                    .algorithm
                    .algorithm
                    .to_id_string();
                alg == OID_ED25519 || alg == OID_ED448
            }
            Err(_) => false,
        }
    }

    /// Whether the signature uses a digest below security level 2 (SHA-1, MD5).
    fn weak_digest(&self) -> bool {
        matches!(
            self.x509
                .signature_algorithm
                .algorithm
                .to_id_string()
                .as_str(),
            "1.2.840.113549.1.1.5"
                | "1.2.840.113549.1.1.4"
                | "1.2.840.10045.4.1"
                | "1.3.14.3.2.29"
                | "1.2.840.10040.4.3"
        )
    }
}

const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_NS_SGC: &str = "2.16.840.1.113730.4.1";
const OID_MS_SGC: &str = "1.3.6.1.4.1.311.10.3.3";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";

fn rsa_bits(modulus: &[u8]) -> usize {
    let m: &[u8] = {
        let start = modulus
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(modulus.len());
        &modulus[start..]
    };
    match m.first() {
        Some(b) => m.len() * 8 - b.leading_zeros() as usize,
        None => 0,
    }
}

fn ec_curve(p: &Parsed<'_>) -> Option<String> {
    spki_curve(&p.x509.tbs_certificate.subject_pki)
}

fn spki_curve(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Option<String> {
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|a| a.as_oid().ok())
        .map(|o| o.to_id_string())
}

/// Why a signature did not verify.
pub(crate) enum SigCheck {
    /// Issuer key unusable/unsupported.
    BadKey,
    /// Signature did not verify.
    Bad,
}

/// Verifies `cert`'s signature with `issuer`'s public key using aws-lc-rs.
fn check_signature(cert: &Parsed<'_>, issuer: &Parsed<'_>) -> Result<(), SigCheck> {
    verify_signed(
        &cert.x509.signature_algorithm,
        cert.x509.tbs_certificate.as_ref(),
        &cert.x509.signature_value.data,
        &issuer.x509.tbs_certificate.subject_pki,
    )
}

/// Verifies a signature over `tbs` (a certificate's or a CRL's signed part) made with the
/// algorithm `sig_alg` by the key in `issuer_spki`, with the algorithms OpenSSL accepts at
/// security level 2. Shared by chain verification and CRL loading.
pub(crate) fn verify_signed(
    sig_alg_id: &x509_parser::x509::AlgorithmIdentifier<'_>,
    tbs: &[u8],
    signature: &[u8],
    issuer_spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<(), SigCheck> {
    let sig_alg = SignatureAlgorithm::try_from(sig_alg_id).map_err(|_| SigCheck::Bad)?;
    let sig_oid = sig_alg_id.algorithm.to_id_string();
    let key_alg = issuer_spki.algorithm.algorithm.to_id_string();
    let alg: &'static dyn VerificationAlgorithm = match sig_alg {
        SignatureAlgorithm::RSA => {
            if key_alg != "1.2.840.113549.1.1.1" {
                return Err(SigCheck::BadKey);
            }
            match sig_oid.as_str() {
                "1.2.840.113549.1.1.11" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "1.2.840.113549.1.1.12" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "1.2.840.113549.1.1.13" => &signature::RSA_PKCS1_2048_8192_SHA512,
                _ => return Err(SigCheck::Bad),
            }
        }
        SignatureAlgorithm::RSASSA_PSS(params) => {
            if key_alg != "1.2.840.113549.1.1.1" && key_alg != "1.2.840.113549.1.1.10" {
                return Err(SigCheck::BadKey);
            }
            match params.hash_algorithm_oid().to_id_string().as_str() {
                "2.16.840.1.101.3.4.2.1" => &signature::RSA_PSS_2048_8192_SHA256,
                "2.16.840.1.101.3.4.2.2" => &signature::RSA_PSS_2048_8192_SHA384,
                "2.16.840.1.101.3.4.2.3" => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return Err(SigCheck::Bad),
            }
        }
        SignatureAlgorithm::ECDSA => {
            if key_alg != "1.2.840.10045.2.1" {
                return Err(SigCheck::BadKey);
            }
            let curve = spki_curve(issuer_spki).ok_or(SigCheck::BadKey)?;
            match (curve.as_str(), sig_oid.as_str()) {
                (OID_P256, "1.2.840.10045.4.3.2") => &signature::ECDSA_P256_SHA256_ASN1,
                (OID_P256, "1.2.840.10045.4.3.3") => &signature::ECDSA_P256_SHA384_ASN1,
                (OID_P384, "1.2.840.10045.4.3.2") => &signature::ECDSA_P384_SHA256_ASN1,
                (OID_P384, "1.2.840.10045.4.3.3") => &signature::ECDSA_P384_SHA384_ASN1,
                (OID_P256 | OID_P384, _) => return Err(SigCheck::Bad),
                _ => return Err(SigCheck::BadKey),
            }
        }
        SignatureAlgorithm::ED25519 => {
            if key_alg != OID_ED25519 {
                return Err(SigCheck::BadKey);
            }
            &signature::ED25519
        }
        _ => return Err(SigCheck::Bad),
    };
    let key = &issuer_spki.subject_public_key.data;
    UnparsedPublicKey::new(alg, key.as_ref())
        .verify(tbs, signature)
        .map_err(|_| SigCheck::Bad)
}

/// Where a chain element came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Src {
    Presented(usize),
    Store(usize),
}

impl ChainVerifier {
    /// Creates a verifier of client certificates; `max_depth` is nginx's
    /// `ssl_verify_depth`.
    pub fn new(store: Arc<TrustStore>, max_depth: u32) -> Self {
        Self {
            store,
            max_depth,
            purpose: Purpose::SslClient,
            revocation: None,
        }
    }

    /// Adds revocation checking (nginx `ssl_crl`: OpenSSL's CRL_CHECK | CRL_CHECK_ALL).
    pub fn with_revocation(mut self, revocation: Option<Arc<super::crl::Revocation>>) -> Self {
        self.revocation = revocation;
        self
    }

    /// Creates a verifier of server certificates (ringgate as a TLS client
    /// of its upstreams); `max_depth` is nginx's `proxy_ssl_verify_depth`.
    pub fn for_servers(store: Arc<TrustStore>, max_depth: u32) -> Self {
        Self {
            store,
            max_depth,
            purpose: Purpose::SslServer,
            revocation: None,
        }
    }

    /// Verifies `leaf` + `intermediates` (any order; unrelated extras are
    /// ignored) at time `now`. On failure returns the error nginx would
    /// report as `$ssl_client_verify` (the last one OpenSSL reports).
    pub fn verify(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedChain, VerifyError> {
        self.verify_all(leaf, intermediates, now)
            .map_err(|mut errors| {
                errors.pop().unwrap_or(VerifyError::BadEncoding {
                    depth: 0,
                    reason: "verification failed without a reason".into(),
                })
            })
    }

    /// Like [`ChainVerifier::verify`], but on failure returns every error
    /// OpenSSL would report, in order (never empty; the last is the verdict),
    /// so that a log line can say more than the verdict: a chain longer than
    /// `max_depth` allows ends in "unable to get local issuer certificate"
    /// with "certificate chain too long" reported before it.
    pub fn verify_all(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedChain, Vec<VerifyError>> {
        if intermediates.len() > MAX_PRESENTED_INTERMEDIATES {
            return Err(vec![VerifyError::ChainTooLong {
                depth: MAX_PRESENTED_INTERMEDIATES as u32,
            }]);
        }
        let leaf_p = Parsed::parse(leaf.as_ref())
            .map_err(|reason| vec![VerifyError::BadEncoding { depth: 0, reason }])?;
        let mut inters = Vec::with_capacity(intermediates.len());
        for (i, d) in intermediates.iter().enumerate() {
            let p = Parsed::parse(d.as_ref()).map_err(|reason| {
                vec![VerifyError::BadEncoding {
                    depth: i as u32 + 1,
                    reason,
                }]
            })?;
            inters.push(p);
        }
        let mut store_p = Vec::with_capacity(self.store.anchors.len());
        for a in &self.store.anchors {
            // Parsed once successfully at load time; a failure here is impossible
            // but is handled by skipping the anchor.
            store_p.push(Parsed::parse(a.der.as_ref()).ok());
        }

        let mut errors: Vec<VerifyError> = Vec::new();
        let mut report = |e: VerifyError| errors.push(e);
        let now_s = now.as_secs() as i64;

        // X509_verify_cert: leaf key level first.
        if !leaf_p.key_strong_enough() {
            report(VerifyError::EeKeyTooWeak {
                subject: leaf_p.subject_string(),
            });
        }

        // ---- build_chain ----
        let get = |s: Src| -> Option<&Parsed<'_>> {
            match s {
                Src::Presented(i) => inters.get(i),
                Src::Store(i) => store_p.get(i).and_then(|o| o.as_ref()),
            }
        };
        let mut chain: Vec<Option<Src>> = vec![None]; // None = the leaf
        let elem = |s: Option<Src>| -> Option<&Parsed<'_>> {
            match s {
                None => Some(&leaf_p),
                Some(s) => get(s),
            }
        };
        let mut trusted = false;
        let mut too_long = false;
        let max_untrusted = self.max_depth as usize + 1;

        // A self-signed leaf that is itself in the trust store is trusted.
        if leaf_p.self_issued {
            if let Some(i) = self
                .store
                .anchors
                .iter()
                .position(|a| a.der.as_ref() == leaf.as_ref())
            {
                chain[0] = Some(Src::Store(i));
                trusted = self.store.anchors[i].self_signed;
            }
        }

        while !trusted && chain.len() < MAX_BUILT_CHAIN {
            // OpenSSL's build_chain stops extending a chain (trusted issuers included) once it
            // holds more than verify_depth + 1 certificates.
            if chain.len() > max_untrusted {
                too_long = true;
                break;
            }
            let top_src = chain[chain.len() - 1];
            let Some(top) = elem(top_src) else { break };
            let top_self_signed = top.self_issued && check_signature(top, top).is_ok();
            if top_self_signed {
                break;
            }
            // Prefer a trusted issuer.
            let store_cand = find_issuer(top, (0..store_p.len()).map(Src::Store), &get, |s| {
                !chain.contains(&Some(s))
            });
            if let Some(s) = store_cand {
                chain.push(Some(s));
                if let Src::Store(i) = s {
                    if self.store.anchors[i].self_signed {
                        trusted = true;
                    }
                }
                continue;
            }
            // Only search untrusted certs while the trusted part is not started.
            if matches!(top_src, Some(Src::Store(_))) {
                break;
            }
            let cand = find_issuer(top, (0..inters.len()).map(Src::Presented), &get, |s| {
                !chain.contains(&Some(s))
            });
            match cand {
                Some(s) => chain.push(Some(s)),
                None => break,
            }
        }

        let n = chain.len();
        let parsed_chain: Vec<&Parsed<'_>> = chain.iter().filter_map(|s| elem(*s)).collect();
        if parsed_chain.len() != n {
            return Err(vec![VerifyError::BadEncoding {
                depth: 0,
                reason: "internal chain inconsistency".into(),
            }]);
        }
        let top = parsed_chain[n - 1];
        let top_self_signed = top.self_issued && check_signature(top, top).is_ok();
        if !trusted {
            if too_long {
                report(VerifyError::ChainTooLong {
                    depth: (n - 1) as u32,
                });
            }
            let depth = (n - 1) as u32;
            let subject = top.subject_string();
            if top_self_signed && !matches!(chain[n - 1], Some(Src::Store(_))) {
                report(if n == 1 {
                    VerifyError::DepthZeroSelfSigned { subject }
                } else {
                    VerifyError::SelfSignedInChain { depth, subject }
                });
            } else if matches!(chain[n - 1], Some(Src::Store(_))) {
                report(VerifyError::UnableToGetIssuerCert { depth, subject });
            } else {
                report(VerifyError::UnableToGetIssuerCertLocally { depth, subject });
            }
        }

        // ---- check_chain_extensions ----
        let mut plen: u32 = 0;
        for (i, c) in parsed_chain.iter().enumerate() {
            let depth = i as u32;
            if c.has_unhandled_critical() {
                report(VerifyError::UnhandledCriticalExtension {
                    depth,
                    subject: c.subject_string(),
                });
            }
            if i == 0 {
                let eku_bad = c.eku_allows(self.purpose) == Some(false);
                let ku_bad = !c.ku_allows(self.purpose);
                if eku_bad || ku_bad {
                    report(VerifyError::InvalidPurpose {
                        depth,
                        subject: c.subject_string(),
                    });
                }
            } else {
                let ca = c.check_ca();
                if ca == 0 || (i + 1 < n && ca != 1) {
                    report(VerifyError::InvalidCa {
                        depth,
                        subject: c.subject_string(),
                    });
                }
                if c.eku_allows(self.purpose) == Some(false) || ca == 0 {
                    report(VerifyError::InvalidPurpose {
                        depth,
                        subject: c.subject_string(),
                    });
                }
                // OpenSSL checks every CA above depth 1 (self-issued ones
                // included); only the plen increment skips self-issued CAs.
                if i > 1 {
                    if let Some((_, Some(pl))) = c.basic_constraints() {
                        if plen > pl {
                            report(VerifyError::PathLengthExceeded {
                                depth,
                                subject: c.subject_string(),
                            });
                        }
                    }
                }
                if !c.self_issued {
                    plen = plen.saturating_add(1);
                }
            }
        }

        // ---- check_auth_level ----
        for (i, c) in parsed_chain.iter().enumerate() {
            if i > 0 && !c.key_strong_enough() {
                report(VerifyError::CaKeyTooWeak {
                    depth: i as u32,
                    subject: c.subject_string(),
                });
            }
            if i + 1 < n && c.weak_digest() {
                report(VerifyError::CaMdTooWeak {
                    depth: i as u32,
                    subject: c.subject_string(),
                });
            }
        }

        // ---- check_revocation (CRL_CHECK_ALL): every certificate, the anchor included ----
        let mut cache_until = i64::MAX;
        if let Some(rev) = &self.revocation {
            for (i, c) in parsed_chain.iter().enumerate() {
                let issuer = if i + 1 < n {
                    Some(parsed_chain[i + 1])
                } else if c.self_issued {
                    Some(*c)
                } else {
                    None
                };
                let out = rev.check(c.issuer, issuer.map(|p| p.spki), c.x509.raw_serial(), now_s);
                cache_until = cache_until.min(out.until);
                let depth = i as u32;
                for p in out.problems {
                    use super::crl::CrlProblem as P;
                    let subject = c.subject_string();
                    report(match p {
                        P::NoCrl => VerifyError::UnableToGetCrl { depth, subject },
                        P::SignatureFailure { source } => VerifyError::CrlSignatureFailure {
                            depth,
                            subject,
                            crl: source,
                        },
                        P::NotYetValid { source } => VerifyError::CrlNotYetValid {
                            depth,
                            subject,
                            crl: source,
                        },
                        P::Expired {
                            source,
                            next_update,
                        } => VerifyError::CrlHasExpired {
                            depth,
                            subject,
                            crl: source,
                            next_update: crate::clock::iso8601(next_update),
                        },
                        P::Revoked { source, entry } => VerifyError::Revoked {
                            depth,
                            subject,
                            detail: format!(
                                "serial {}, revoked {}{}, per {source}",
                                serial_hex(c.x509.raw_serial()),
                                crate::clock::iso8601(entry.revoked_at),
                                entry.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                            ),
                        },
                    });
                }
            }
        }

        // ---- internal_verify: signatures and times, anchor down to leaf ----
        let mut idx = n - 1;
        let mut xi = top;
        let mut xs_idx = idx;
        let mut skip_sig_for_top = true;
        if !top.self_issued {
            if idx == 0 {
                report(VerifyError::UnableToVerifyLeafSignature {
                    subject: top.subject_string(),
                });
            } else {
                idx -= 1;
                xs_idx = idx;
                skip_sig_for_top = false;
            }
        }
        loop {
            let xs = parsed_chain[xs_idx];
            let depth = xs_idx as u32;
            let is_top_self = skip_sig_for_top && xs_idx == n - 1;
            if !is_top_self && !xs.weak_digest() {
                match check_signature(xs, xi) {
                    Ok(()) => {}
                    Err(SigCheck::BadKey) => report(VerifyError::UndecodableIssuerKey {
                        depth,
                        subject: xs.subject_string(),
                    }),
                    Err(SigCheck::Bad) => report(VerifyError::SignatureFailure {
                        depth,
                        subject: xs.subject_string(),
                    }),
                }
            }
            if xs.not_before > now_s {
                report(VerifyError::NotYetValid {
                    depth,
                    subject: xs.subject_string(),
                });
            } else if xs.not_after < now_s {
                report(VerifyError::Expired {
                    depth,
                    subject: xs.subject_string(),
                });
            }
            if xs_idx == 0 {
                break;
            }
            xi = xs;
            xs_idx -= 1;
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        let ders: Vec<CertificateDer<'static>> = chain
            .iter()
            .map(|s| match s {
                None => CertificateDer::from(leaf.as_ref().to_vec()),
                Some(Src::Presented(i)) => {
                    CertificateDer::from(intermediates[*i].as_ref().to_vec())
                }
                Some(Src::Store(i)) => self.store.anchors[*i].der.clone(),
            })
            .collect();
        let earliest = parsed_chain
            .iter()
            .map(|c| c.not_after)
            .min()
            .unwrap_or(leaf_p.not_after);
        Ok(VerifiedChain {
            chain: ders,
            leaf_not_after: leaf_p.not_after,
            earliest_not_after: earliest,
            cache_until: earliest.min(cache_until),
        })
    }
}

/// A serial number as nginx's `$ssl_client_serial` prints it: upper-case hex, no separators,
/// the sign-padding zero byte left out.
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    raw[start..].iter().map(|b| format!("{b:02X}")).collect()
}

/// Finds an issuer of `cert` among `cands` (name match, then signature):
/// the first candidate whose signature verifies, else the first name match
/// (so the signature failure is reported later, as OpenSSL does).
fn find_issuer<'p, 'a: 'p>(
    cert: &Parsed<'_>,
    cands: impl Iterator<Item = Src>,
    get: &impl Fn(Src) -> Option<&'p Parsed<'a>>,
    allowed: impl Fn(Src) -> bool,
) -> Option<Src> {
    let mut first_name_match = None;
    for s in cands {
        if !allowed(s) {
            continue;
        }
        let Some(c) = get(s) else { continue };
        if c.subject != cert.issuer {
            continue;
        }
        if check_signature(cert, c).is_ok() {
            return Some(s);
        }
        if first_name_match.is_none() {
            first_name_match = Some(s);
        }
    }
    first_name_match
}

impl fmt::Display for VerifiedChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain of {} (leaf expires {}, chain expires {})",
            self.chain.len(),
            self.leaf_not_after,
            self.earliest_not_after
        )
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;

/// Tests reproducing the measured nginx 1.22 / OpenSSL 3.0 behaviour
/// (depth table, reason strings, v1 certificates, security level 2).
#[cfg(test)]
pub(crate) mod measured_tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A generated certificate with its key.
    pub(crate) struct Gen {
        pub cert: rcgen::Certificate,
        pub key: KeyPair,
    }

    impl Gen {
        pub(crate) fn der(&self) -> CertificateDer<'static> {
            self.cert.der().clone()
        }
    }

    fn params(cn: &str, ca: bool, eku: Option<ExtendedKeyUsagePurpose>) -> CertificateParams {
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        if let Some(e) = eku {
            p.extended_key_usages = vec![e];
        }
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2090, 1, 1);
        p
    }

    pub(crate) fn root(cn: &str) -> Gen {
        let key = KeyPair::generate().unwrap();
        let cert = params(cn, true, None).self_signed(&key).unwrap();
        Gen { cert, key }
    }

    pub(crate) fn issue(cn: &str, issuer: &Gen, p: CertificateParams) -> Gen {
        let _ = cn;
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer.cert, &issuer.key).unwrap();
        Gen { cert, key }
    }

    pub(crate) fn leaf(cn: &str, issuer: &Gen) -> Gen {
        issue(
            cn,
            issuer,
            params(cn, false, Some(ExtendedKeyUsagePurpose::ClientAuth)),
        )
    }

    fn inter(cn: &str, issuer: &Gen) -> Gen {
        issue(cn, issuer, params(cn, true, None))
    }

    pub(crate) fn store_of(certs: &[&Gen]) -> Arc<TrustStore> {
        Arc::new(TrustStore::from_der(certs.iter().map(|g| g.der()).collect()).unwrap())
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    #[test]
    fn leaf_directly_under_root() {
        let r = root("Root");
        let l = leaf("leaf", &r);
        let v = ChainVerifier::new(store_of(&[&r]), 0);
        let vc = v.verify(&l.der(), &[], now()).unwrap();
        assert_eq!(vc.chain.len(), 2);
        assert_eq!(vc.chain[1], r.der());
        assert!(vc.earliest_not_after <= vc.leaf_not_after);
    }

    #[test]
    fn intermediates_and_depth() {
        let r = root("Root");
        let i1 = inter("Int1", &r);
        let i2 = inter("Int2", &i1);
        let l1 = leaf("leaf1", &i1);
        let l2 = leaf("leaf2", &i2);
        let s = store_of(&[&r]);
        let at = |d| ChainVerifier::new(s.clone(), d);
        // Measured nginx table: N intermediates accepted iff N <= depth.
        assert!(at(1).verify(&l1.der(), &[i1.der()], now()).is_ok());
        let e = at(0).verify(&l1.der(), &[i1.der()], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "unable to get local issuer certificate");
        // any order, unrelated extras ignored
        let other = root("Other");
        let chain = [i1.der(), other.der(), i2.der()];
        assert!(at(2).verify(&l2.der(), &chain, now()).is_ok());
        assert!(at(3).verify(&l2.der(), &chain, now()).is_ok());
        let e = at(1).verify(&l2.der(), &chain, now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "unable to get local issuer certificate");
        // missing intermediate
        let e = at(2).verify(&l2.der(), &[i2.der()], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "unable to get local issuer certificate");
    }

    #[test]
    fn validity_periods() {
        let r = root("Root");
        let mut p = params("old", false, None);
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let expired = issue("old", &r, p);
        let mut p = params("future", false, None);
        p.not_before = rcgen::date_time_ymd(2080, 1, 1);
        let future = issue("future", &r, p);
        let v = ChainVerifier::new(store_of(&[&r]), 1);
        let e = v.verify(&expired.der(), &[], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "certificate has expired");
        assert!(!e.is_ignorable_for_optional_no_ca());
        assert!(matches!(
            e.to_rustls(),
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
        ));
        let e = v.verify(&future.der(), &[], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "certificate is not yet valid");

        let mut p = params("OldInt", true, None);
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let old_int = issue("OldInt", &r, p);
        let l = leaf("l", &old_int);
        let e = v.verify(&l.der(), &[old_int.der()], now()).unwrap_err();
        assert_eq!(
            e,
            VerifyError::Expired {
                depth: 1,
                subject: "CN=OldInt".into()
            }
        );
    }

    #[test]
    fn unknown_ca_and_self_signed() {
        let r = root("Root");
        let other = root("Other");
        let l = leaf("l", &other);
        let v = ChainVerifier::new(store_of(&[&r]), 1);
        let e = v.verify(&l.der(), &[], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "unable to verify the first certificate");
        assert!(e.is_ignorable_for_optional_no_ca());
        assert!(matches!(
            e.to_rustls(),
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ));
        let i = inter("I", &other);
        let l2 = leaf("l2", &i);
        let e = v.verify(&l2.der(), &[i.der()], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "unable to get local issuer certificate");
        let e = v
            .verify(&l2.der(), &[i.der(), other.der()], now())
            .unwrap_err();
        assert_eq!(
            e.openssl_reason(),
            "self-signed certificate in certificate chain"
        );
        assert!(e.is_ignorable_for_optional_no_ca());
        // self-signed leaf
        let e = v.verify(&other.der(), &[], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "self-signed certificate");
        assert!(e.is_ignorable_for_optional_no_ca());
        // ... accepted when it is itself in the CA file (seed 000 setup)
        let v2 = ChainVerifier::new(store_of(&[&other]), 1);
        assert_eq!(v2.verify(&other.der(), &[], now()).unwrap().chain.len(), 1);
    }

    #[test]
    fn purposes() {
        let r = root("Root");
        let sa = issue(
            "sa",
            &r,
            params("sa", false, Some(ExtendedKeyUsagePurpose::ServerAuth)),
        );
        let none = issue("none", &r, params("none", false, None));
        let v = ChainVerifier::new(store_of(&[&r]), 1);
        let e = v.verify(&sa.der(), &[], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "unsuitable certificate purpose");
        assert!(v.verify(&none.der(), &[], now()).is_ok());
        // non-CA intermediate
        let notca = issue("NotCA", &r, params("NotCA", false, None));
        let l = leaf("l", &notca);
        let e = v.verify(&l.der(), &[notca.der()], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "unsuitable certificate purpose");
        // pathlen 0 on the root with an intermediate below
        let key = KeyPair::generate().unwrap();
        let mut p = params("PL0", true, None);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let pl0 = Gen {
            cert: p.self_signed(&key).unwrap(),
            key,
        };
        let i = inter("I", &pl0);
        let l = leaf("l", &i);
        let v = ChainVerifier::new(store_of(&[&pl0]), 3);
        let e = v.verify(&l.der(), &[i.der()], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "path length constraint exceeded");
    }

    #[test]
    fn bad_signature() {
        let r = root("Root");
        let fake = root("Root"); // same name, different key
        let l = leaf("l", &fake);
        let v = ChainVerifier::new(store_of(&[&r]), 1);
        let e = v.verify(&l.der(), &[], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "certificate signature failure");
    }

    #[test]
    fn garbage_and_limits() {
        let r = root("Root");
        let v = ChainVerifier::new(store_of(&[&r]), 100);
        for bad in [&b""[..], &b"\x30\x03\x02\x01"[..], &[0xffu8; 64][..]] {
            let e = v
                .verify(&CertificateDer::from(bad), &[], now())
                .unwrap_err();
            assert!(matches!(e, VerifyError::BadEncoding { .. }));
        }
        let l = leaf("l", &r);
        let e = v
            .verify(&l.der(), &[CertificateDer::from(&b"junk"[..])], now())
            .unwrap_err();
        assert!(matches!(e, VerifyError::BadEncoding { depth: 1, .. }));
        let many: Vec<_> = (0..17).map(|_| r.der()).collect();
        let e = v.verify(&l.der(), &many, now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "certificate chain too long");
        // issuer/subject loop: A signs B, B signs A, neither trusted
        let a_key = KeyPair::generate().unwrap();
        let b_key = KeyPair::generate().unwrap();
        let a0 = params("A", true, None).self_signed(&a_key).unwrap();
        let b = params("B", true, None)
            .signed_by(&b_key, &a0, &a_key)
            .unwrap();
        let a = params("A", true, None)
            .signed_by(&a_key, &b, &b_key)
            .unwrap();
        let lb = leaf(
            "lb",
            &Gen {
                cert: b,
                key: b_key,
            },
        );
        let chain = [a.der().clone(), lb.der(), a0.der().clone()];
        assert!(v.verify(&lb.der(), &chain, now()).is_err());
        assert!(matches!(
            TrustStore::from_pem(b"nothing here"),
            Err(TrustStoreError::Empty)
        ));
        let pem = format!(
            "{}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            r.cert.pem()
        );
        assert!(matches!(
            TrustStore::from_pem(pem.as_bytes()),
            Err(TrustStoreError::Unparsable { index: 1, .. })
        ));
    }

    /// A fresh directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);
    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "ringgate-verify-{tag}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Runs a bash snippet in `dir` (openssl CLI certificate generation).
    pub(crate) fn sh(dir: &Path, script: &str) {
        let out = Command::new("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
        let data = std::fs::read(path).unwrap();
        rustls_pemfile::certs(&mut &data[..])
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    pub(crate) const OPENSSL_CHAINS: &str = r#"
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > ca.ext
openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.crt -days 30 -subj /CN=Root 2>/dev/null
mk() { # name subj issuer [x509 args...]
  n=$1; s=$2; i=$3; shift 3
  openssl req -new -newkey rsa:${BITS:-2048} -nodes -keyout $n.key -out $n.csr -subj "$s" 2>/dev/null
  openssl x509 -req -in $n.csr -CA $i.crt -CAkey $i.key -CAcreateserial -out $n.crt -days 30 "$@" 2>/dev/null
}
mk int1 /CN=Int1 root -extfile ca.ext
mk int2 /CN=Int2 int1 -extfile ca.ext
mk leaf2 /CN=leaf2 int2
mk v1leaf /CN=v1leaf root
mk v1int /CN=V1Int root
mk undervi /CN=undervi v1int
mk sha1leaf /CN=sha1leaf root -sha1
BITS=1024 mk weak /CN=weak root
"#;

    #[test]
    fn openssl_made_chains() {
        let t = TempDir::new("ossl");
        sh(&t.0, OPENSSL_CHAINS);
        let c = |n: &str| pem_certs(&t.0.join(format!("{n}.crt"))).remove(0);
        let store =
            Arc::new(TrustStore::from_pem(&std::fs::read(t.0.join("root.crt")).unwrap()).unwrap());
        let v = |d| ChainVerifier::new(store.clone(), d);
        // v1 leaf from `openssl x509 -req` without extensions
        assert!(Parsed::parse(c("v1leaf").as_ref()).unwrap().is_v1());
        assert!(v(1).verify(&c("v1leaf"), &[], now()).is_ok());
        assert!(v(2)
            .verify(&c("leaf2"), &[c("int2"), c("int1")], now())
            .is_ok());
        let e = v(1)
            .verify(&c("leaf2"), &[c("int2"), c("int1")], now())
            .unwrap_err();
        assert_eq!(e.openssl_reason(), "unable to get local issuer certificate");
        // measured: nginx refuses a v1 intermediate (invalid CA, then purpose)
        let e = v(2)
            .verify(&c("undervi"), &[c("v1int")], now())
            .unwrap_err();
        assert_eq!(e.openssl_reason(), "unsuitable certificate purpose");
        let e = v(1).verify(&c("sha1leaf"), &[], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "CA signature digest algorithm too weak");
        let e = v(1).verify(&c("weak"), &[], now()).unwrap_err();
        assert_eq!(e.openssl_reason(), "EE certificate key too weak");
    }

    #[test]
    fn seed_script_certs() {
        let t = TempDir::new("seed");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../main/tests/certs/make-seed-certs.sh"
        );
        let script = if Path::new(script).exists() {
            script.to_string()
        } else {
            "/work/main/tests/certs/make-seed-certs.sh".to_string()
        };
        sh(&t.0, &format!("{script} out"));
        let o = t.0.join("out");
        let store = Arc::new(
            TrustStore::from_pem(&std::fs::read(o.join("seed004/ca/ca.crt")).unwrap()).unwrap(),
        );
        let v = ChainVerifier::new(store, 2);
        let client = pem_certs(&o.join("seed004/client/client.crt")).remove(0);
        assert!(v.verify(&client, &[], now()).is_ok());
        let other = pem_certs(&o.join("seed004/otherca-client/client.crt")).remove(0);
        assert_eq!(
            v.verify(&other, &[], now()).unwrap_err().openssl_reason(),
            "unable to verify the first certificate"
        );
        // seed 000: the self-signed v1 public.pem is both CA file and client cert
        let pubpem = std::fs::read(o.join("seed000/public.pem")).unwrap();
        let v0 = ChainVerifier::new(Arc::new(TrustStore::from_pem(&pubpem).unwrap()), 2);
        let c0 = pem_certs(&o.join("seed000/public.pem")).remove(0);
        assert!(v0.verify(&c0, &[], now()).is_ok());
    }
}
