//! Client-certificate chain verification with nginx/OpenSSL 3.0 semantics.
//!
//! rustls-webpki cannot be used for client certificates here: it rejects
//! X.509 v1 certificates (which `openssl x509 -req` produces on OpenSSL 3.0,
//! as in the enterprise mTLS guide) and has no equivalent of nginx's
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

use rustls_pki_types::{CertificateDer, UnixTime};

use super::cert::Parsed;
use super::crl::{CrlProblem, Revocation};
use super::identity::serial_hex;
use super::signature::SigCheck;
use super::trust::TrustStore;

/// Maximum number of intermediates accepted from a peer; bounds the work an
/// attacker can cause with a huge Certificate message (nginx's depth limit
/// is far below this in practice).
pub const MAX_PRESENTED_INTERMEDIATES: usize = 16;

/// Hard bound on the length of any chain we build, protecting against loops
/// among trust-store certificates that are not self-signed.
const MAX_BUILT_CHAIN: usize = 40;

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
    pub revocation: Option<Arc<Revocation>>,
}

/// Whether keyUsage (when present) allows the TLS use of `purpose`: OpenSSL's `ku_reject`
/// with KU_DIGITAL_SIGNATURE|KU_KEY_AGREEMENT for sslclient, and KU_TLS (adding
/// keyEncipherment) for sslserver.
fn ku_allows(c: &Parsed<'_>, purpose: Purpose) -> bool {
    match c.x509.key_usage() {
        Ok(Some(ku)) => {
            let ku = ku.value;
            ku.digital_signature()
                || ku.key_agreement()
                || (purpose == Purpose::SslServer && ku.key_encipherment())
        }
        _ => true,
    }
}

/// extendedKeyUsage: None if absent, Some(allows `purpose`). OpenSSL 3.0 does NOT accept
/// anyExtendedKeyUsage for sslclient (measured: `openssl verify -purpose sslclient` and nginx
/// refuse it). For sslserver OpenSSL also accepts the Netscape and Microsoft
/// Server-Gated-Cryptography purposes (`XKU_SGC`).
fn eku_allows(c: &Parsed<'_>, purpose: Purpose) -> Option<bool> {
    let eku = match c.x509.extended_key_usage() {
        Ok(Some(eku)) => eku.value,
        _ => return None,
    };
    Some(match purpose {
        Purpose::SslClient => eku.client_auth,
        Purpose::SslServer => {
            eku.server_auth
                || eku.other.iter().any(|o| {
                    let id = o.to_id_string();
                    id == OID_NS_SGC || id == OID_MS_SGC
                })
        }
    })
}

const OID_NS_SGC: &str = "2.16.840.1.113730.4.1";
const OID_MS_SGC: &str = "1.3.6.1.4.1.311.10.3.3";

/// Where a chain element came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The presented end-entity certificate.
    Leaf,
    /// A presented intermediate, by position.
    Presented(usize),
    /// A trust-store certificate, by position.
    Store(usize),
}

/// Every certificate a chain may be built from, parsed once per verification.
struct Candidates<'a> {
    leaf: Parsed<'a>,
    presented: Vec<Parsed<'a>>,
    /// The trust store's certificates in store order; they parsed at load time, so a `None`
    /// (impossible) only makes that anchor unusable.
    store: Vec<Option<Parsed<'a>>>,
}

impl<'a> Candidates<'a> {
    fn get(&self, s: Source) -> Option<&Parsed<'a>> {
        match s {
            Source::Leaf => Some(&self.leaf),
            Source::Presented(i) => self.presented.get(i),
            Source::Store(i) => self.store.get(i).and_then(|o| o.as_ref()),
        }
    }

    /// Finds an issuer of `cert` among `among` that is not in `chain` yet (name match, then
    /// signature): the first candidate whose signature verifies, else the first name match
    /// (so that the signature failure is reported later, as OpenSSL does).
    fn find_issuer(
        &self,
        cert: &Parsed<'_>,
        among: impl Iterator<Item = Source>,
        chain: &[Source],
    ) -> Option<Source> {
        let mut first_name_match = None;
        for s in among {
            if chain.contains(&s) {
                continue;
            }
            let Some(c) = self.get(s) else { continue };
            if c.subject != cert.issuer {
                continue;
            }
            if cert.check_signature(c).is_ok() {
                return Some(s);
            }
            if first_name_match.is_none() {
                first_name_match = Some(s);
            }
        }
        first_name_match
    }

    /// The certificates of a built chain, leaf first.
    fn chain_of(&self, built: &Built) -> Result<Vec<&Parsed<'a>>, Vec<VerifyError>> {
        let chain: Vec<&Parsed<'a>> = built.srcs.iter().filter_map(|s| self.get(*s)).collect();
        if chain.len() != built.srcs.len() {
            return Err(vec![VerifyError::BadEncoding {
                depth: 0,
                reason: "internal chain inconsistency".into(),
            }]);
        }
        Ok(chain)
    }
}

/// The chain `build_chain` found: where each element came from (leaf first), whether it ends
/// in a trusted self-signed certificate, and whether the depth limit stopped it.
struct Built {
    srcs: Vec<Source>,
    trusted: bool,
    too_long: bool,
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
    pub fn with_revocation(mut self, revocation: Option<Arc<Revocation>>) -> Self {
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
    ///
    /// The phases are those of OpenSSL's `X509_verify_cert` / `verify_chain`, in its order:
    /// the leaf's key level, `build_chain` and its trust verdict, `check_chain_extensions`
    /// (purpose, CA flags, path length), `check_auth_level`, `check_revocation` and
    /// `internal_verify` (signatures and validity times, anchor down to leaf).
    pub fn verify_all(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedChain, Vec<VerifyError>> {
        let candidates = self.parse_candidates(leaf.as_ref(), intermediates)?;
        let built = self.build_chain(&candidates, leaf.as_ref());
        let chain = candidates.chain_of(&built)?;
        let now_s = now.as_secs() as i64;
        let mut errors = Vec::new();
        check_leaf_key(&candidates.leaf, &mut errors);
        check_trust(&built, &chain, &mut errors);
        self.check_chain_extensions(&chain, &mut errors);
        check_auth_level(&chain, &mut errors);
        let crl_until = self.check_revocation(&chain, now_s, &mut errors);
        internal_verify(&chain, now_s, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(self.verified(&built, &chain, leaf, intermediates, crl_until))
    }

    /// Parses the presented certificates and the trust store's; a presented certificate that
    /// does not parse, or too many intermediates, fail at once with that error alone.
    fn parse_candidates<'a>(
        &'a self,
        leaf: &'a [u8],
        intermediates: &'a [CertificateDer<'_>],
    ) -> Result<Candidates<'a>, Vec<VerifyError>> {
        if intermediates.len() > MAX_PRESENTED_INTERMEDIATES {
            return Err(vec![VerifyError::ChainTooLong {
                depth: MAX_PRESENTED_INTERMEDIATES as u32,
            }]);
        }
        let leaf = Parsed::parse(leaf)
            .map_err(|reason| vec![VerifyError::BadEncoding { depth: 0, reason }])?;
        let mut presented = Vec::with_capacity(intermediates.len());
        for (i, d) in intermediates.iter().enumerate() {
            let p = Parsed::parse(d.as_ref()).map_err(|reason| {
                vec![VerifyError::BadEncoding {
                    depth: i as u32 + 1,
                    reason,
                }]
            })?;
            presented.push(p);
        }
        let store = self
            .store
            .anchors()
            .iter()
            .map(|a| Parsed::parse(a.der.as_ref()).ok())
            .collect();
        Ok(Candidates {
            leaf,
            presented,
            store,
        })
    }

    /// OpenSSL's `build_chain`: from the leaf up, a trusted issuer preferred, presented ones
    /// only below the first trusted certificate, until a self-signed certificate, a trusted
    /// self-signed anchor, no issuer, or more than `max_depth + 1` certificates.
    fn build_chain(&self, candidates: &Candidates<'_>, leaf_der: &[u8]) -> Built {
        let anchors = self.store.anchors();
        let mut built = Built {
            srcs: vec![Source::Leaf],
            trusted: false,
            too_long: false,
        };
        // A self-signed leaf that is itself in the trust store is trusted.
        if candidates.leaf.self_issued {
            if let Some(i) = anchors.iter().position(|a| a.der.as_ref() == leaf_der) {
                built.srcs[0] = Source::Store(i);
                built.trusted = anchors[i].self_signed;
            }
        }
        let max_untrusted = self.max_depth as usize + 1;
        while !built.trusted && built.srcs.len() < MAX_BUILT_CHAIN {
            // OpenSSL's build_chain stops extending a chain (trusted issuers included) once it
            // holds more than verify_depth + 1 certificates.
            if built.srcs.len() > max_untrusted {
                built.too_long = true;
                break;
            }
            let Some(next) = next_issuer(candidates, &built.srcs) else {
                break;
            };
            if let Source::Store(i) = next {
                built.trusted = anchors.get(i).is_some_and(|a| a.self_signed);
            }
            built.srcs.push(next);
        }
        built
    }

    /// OpenSSL's `check_chain_extensions`: critical extensions, the leaf's purpose, and for
    /// every CA its CA flag, purpose and path length.
    fn check_chain_extensions(&self, chain: &[&Parsed<'_>], errors: &mut Vec<VerifyError>) {
        let mut plen: u32 = 0;
        for (i, c) in chain.iter().enumerate() {
            let depth = i as u32;
            if c.has_unhandled_critical() {
                errors.push(VerifyError::UnhandledCriticalExtension {
                    depth,
                    subject: c.subject_string(),
                });
            }
            if i == 0 {
                let eku_bad = eku_allows(c, self.purpose) == Some(false);
                if eku_bad || !ku_allows(c, self.purpose) {
                    errors.push(VerifyError::InvalidPurpose {
                        depth,
                        subject: c.subject_string(),
                    });
                }
            } else {
                let is_top = i + 1 == chain.len();
                self.check_ca_extensions(c, depth, is_top, plen, errors);
                if !c.self_issued {
                    plen = plen.saturating_add(1);
                }
            }
        }
    }

    /// One CA of `check_chain_extensions`: `plen` is the number of non-self-issued CAs below
    /// it. OpenSSL checks the path length of every CA above depth 1 (self-issued ones
    /// included); only the count skips self-issued CAs.
    fn check_ca_extensions(
        &self,
        c: &Parsed<'_>,
        depth: u32,
        is_top: bool,
        plen: u32,
        errors: &mut Vec<VerifyError>,
    ) {
        let ca = c.check_ca();
        if ca == 0 || (!is_top && ca != 1) {
            errors.push(VerifyError::InvalidCa {
                depth,
                subject: c.subject_string(),
            });
        }
        if eku_allows(c, self.purpose) == Some(false) || ca == 0 {
            errors.push(VerifyError::InvalidPurpose {
                depth,
                subject: c.subject_string(),
            });
        }
        if depth > 1 {
            if let Some((_, Some(pl))) = c.basic_constraints() {
                if plen > pl {
                    errors.push(VerifyError::PathLengthExceeded {
                        depth,
                        subject: c.subject_string(),
                    });
                }
            }
        }
    }

    /// OpenSSL's `check_revocation` with CRL_CHECK_ALL: every certificate, the anchor
    /// included, against its issuer's CRL. Returns until when the CRLs allow caching.
    fn check_revocation(
        &self,
        chain: &[&Parsed<'_>],
        now: i64,
        errors: &mut Vec<VerifyError>,
    ) -> i64 {
        let mut until = i64::MAX;
        let Some(revocation) = &self.revocation else {
            return until;
        };
        for (i, c) in chain.iter().enumerate() {
            // The issuer found in the chain; a self-issued top is its own.
            let issuer = chain
                .get(i + 1)
                .copied()
                .or_else(|| c.self_issued.then_some(*c));
            let out = revocation.check(c.issuer, issuer.map(|p| p.spki), c.x509.raw_serial(), now);
            until = until.min(out.until);
            errors.extend(out.problems.into_iter().map(|p| crl_error(p, i as u32, c)));
        }
        until
    }

    /// The verified chain's certificates and the times its verdict may be kept.
    fn verified(
        &self,
        built: &Built,
        chain: &[&Parsed<'_>],
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        crl_until: i64,
    ) -> VerifiedChain {
        let ders = built
            .srcs
            .iter()
            .map(|s| match s {
                Source::Leaf => CertificateDer::from(leaf.as_ref().to_vec()),
                Source::Presented(i) => CertificateDer::from(intermediates[*i].as_ref().to_vec()),
                Source::Store(i) => self.store.anchors()[*i].der.clone(),
            })
            .collect();
        let leaf_not_after = chain[0].not_after;
        let earliest = chain
            .iter()
            .map(|c| c.not_after)
            .min()
            .unwrap_or(leaf_not_after);
        VerifiedChain {
            chain: ders,
            leaf_not_after,
            earliest_not_after: earliest,
            cache_until: earliest.min(crl_until),
        }
    }
}

/// One step of `build_chain`: the issuer of the chain's top, a trusted one preferred;
/// presented certificates are searched only while the chain has no trusted certificate.
/// None when the top is self-signed or has no issuer.
fn next_issuer(candidates: &Candidates<'_>, chain: &[Source]) -> Option<Source> {
    let top_src = *chain.last()?;
    let top = candidates.get(top_src)?;
    if top.is_self_signed() {
        return None;
    }
    let store = (0..candidates.store.len()).map(Source::Store);
    if let Some(s) = candidates.find_issuer(top, store, chain) {
        return Some(s);
    }
    if matches!(top_src, Source::Store(_)) {
        return None;
    }
    let presented = (0..candidates.presented.len()).map(Source::Presented);
    candidates.find_issuer(top, presented, chain)
}

/// `X509_verify_cert`'s first check: the leaf's key at security level 2.
fn check_leaf_key(leaf: &Parsed<'_>, errors: &mut Vec<VerifyError>) {
    if !leaf.key_strong_enough() {
        errors.push(VerifyError::EeKeyTooWeak {
            subject: leaf.subject_string(),
        });
    }
}

/// The end of `build_chain` when the chain is not trusted: "certificate chain too long" when
/// the depth limit stopped it, then why it has no trust anchor.
fn check_trust(built: &Built, chain: &[&Parsed<'_>], errors: &mut Vec<VerifyError>) {
    if built.trusted {
        return;
    }
    let n = chain.len();
    let depth = (n - 1) as u32;
    if built.too_long {
        errors.push(VerifyError::ChainTooLong { depth });
    }
    let top = chain[n - 1];
    let subject = top.subject_string();
    let top_from_store = matches!(built.srcs[n - 1], Source::Store(_));
    errors.push(if top.is_self_signed() && !top_from_store {
        if n == 1 {
            VerifyError::DepthZeroSelfSigned { subject }
        } else {
            VerifyError::SelfSignedInChain { depth, subject }
        }
    } else if top_from_store {
        VerifyError::UnableToGetIssuerCert { depth, subject }
    } else {
        VerifyError::UnableToGetIssuerCertLocally { depth, subject }
    });
}

/// OpenSSL's `check_auth_level` at security level 2: every CA's key, and the digest of every
/// signature but the top's.
fn check_auth_level(chain: &[&Parsed<'_>], errors: &mut Vec<VerifyError>) {
    let n = chain.len();
    for (i, c) in chain.iter().enumerate() {
        if i > 0 && !c.key_strong_enough() {
            errors.push(VerifyError::CaKeyTooWeak {
                depth: i as u32,
                subject: c.subject_string(),
            });
        }
        if i + 1 < n && c.weak_digest() {
            errors.push(VerifyError::CaMdTooWeak {
                depth: i as u32,
                subject: c.subject_string(),
            });
        }
    }
}

/// The verification error for one CRL problem of the certificate `c` at `depth`.
fn crl_error(problem: CrlProblem, depth: u32, c: &Parsed<'_>) -> VerifyError {
    let subject = c.subject_string();
    match problem {
        CrlProblem::NoCrl => VerifyError::UnableToGetCrl { depth, subject },
        CrlProblem::SignatureFailure { source } => VerifyError::CrlSignatureFailure {
            depth,
            subject,
            crl: source,
        },
        CrlProblem::NotYetValid { source } => VerifyError::CrlNotYetValid {
            depth,
            subject,
            crl: source,
        },
        CrlProblem::Expired {
            source,
            next_update,
        } => VerifyError::CrlHasExpired {
            depth,
            subject,
            crl: source,
            next_update: crate::clock::iso8601(next_update),
        },
        CrlProblem::Revoked { source, entry } => VerifyError::Revoked {
            depth,
            subject,
            detail: format!(
                "serial {}, revoked {}{}, per {source}",
                serial_hex(c.x509.raw_serial()),
                crate::clock::iso8601(entry.revoked_at),
                entry.reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        },
    }
}

/// OpenSSL's `internal_verify`: signatures and validity times from the top down to the leaf.
/// The top's own signature is not checked: it is self-issued (OpenSSL checks that only with
/// X509_V_FLAG_CHECK_SS_SIGNATURE), or a lone leaf whose issuer is unknown. An untrusted top
/// that is not self-issued is only the issuer of the certificate below it.
fn internal_verify(chain: &[&Parsed<'_>], now: i64, errors: &mut Vec<VerifyError>) {
    let n = chain.len();
    let top = chain[n - 1];
    if top.self_issued || n == 1 {
        if !top.self_issued {
            errors.push(VerifyError::UnableToVerifyLeafSignature {
                subject: top.subject_string(),
            });
        }
        check_validity_time(top, (n - 1) as u32, now, errors);
    }
    for i in (0..n - 1).rev() {
        check_cert_signature(chain[i], chain[i + 1], i as u32, errors);
        check_validity_time(chain[i], i as u32, now, errors);
    }
}

/// `internal_verify`'s signature check of `cert` by `issuer` (a weak digest was already
/// reported by `check_auth_level`).
fn check_cert_signature(
    cert: &Parsed<'_>,
    issuer: &Parsed<'_>,
    depth: u32,
    errors: &mut Vec<VerifyError>,
) {
    if cert.weak_digest() {
        return;
    }
    match cert.check_signature(issuer) {
        Ok(()) => {}
        Err(SigCheck::BadKey) => errors.push(VerifyError::UndecodableIssuerKey {
            depth,
            subject: cert.subject_string(),
        }),
        Err(SigCheck::Bad) => errors.push(VerifyError::SignatureFailure {
            depth,
            subject: cert.subject_string(),
        }),
    }
}

/// OpenSSL's `check_cert_time`: not yet valid, or expired, at `now`.
fn check_validity_time(c: &Parsed<'_>, depth: u32, now: i64, errors: &mut Vec<VerifyError>) {
    if c.not_before > now {
        errors.push(VerifyError::NotYetValid {
            depth,
            subject: c.subject_string(),
        });
    } else if c.not_after < now {
        errors.push(VerifyError::Expired {
            depth,
            subject: c.subject_string(),
        });
    }
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
    use crate::x509::trust::TrustStoreError;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A generated certificate with its key (in an issuer, to sign certificates below it).
    pub(crate) struct Gen {
        pub cert: rcgen::Certificate,
        pub issuer: Issuer<'static, KeyPair>,
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
        let p = params(cn, true, None);
        let cert = p.self_signed(&key).unwrap();
        Gen {
            cert,
            issuer: Issuer::new(p, key),
        }
    }

    pub(crate) fn issue(cn: &str, issuer: &Gen, p: CertificateParams) -> Gen {
        let _ = cn;
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer.issuer).unwrap();
        Gen {
            cert,
            issuer: Issuer::new(p, key),
        }
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
        // ... accepted when it is itself in the CA file (a self-signed server certificate
        // from `openssl x509 -req -signkey` used as its own CA file)
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
            issuer: Issuer::new(p, key),
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
        let (a_params, b_params) = (params("A", true, None), params("B", true, None));
        let a0 = a_params.self_signed(&a_key).unwrap();
        let b = b_params
            .signed_by(&b_key, &Issuer::from_params(&a_params, &a_key))
            .unwrap();
        let a = a_params
            .signed_by(&a_key, &Issuer::from_params(&b_params, &b_key))
            .unwrap();
        let lb = leaf(
            "lb",
            &Gen {
                cert: b,
                issuer: Issuer::new(b_params, b_key),
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
        rustls_pki_types::pem::PemObject::pem_slice_iter(&data)
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
    fn certificates_made_by_the_guides_openssl_commands() {
        let t = TempDir::new("guide-certs");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/certs/make-guide-certs.sh"
        );
        sh(&t.0, &format!("{script} out"));
        let o = t.0.join("out");
        let store = Arc::new(
            TrustStore::from_pem(&std::fs::read(o.join("enterprise-mtls/ca/ca.crt")).unwrap())
                .unwrap(),
        );
        let v = ChainVerifier::new(store, 2);
        let client = pem_certs(&o.join("enterprise-mtls/client/client.crt")).remove(0);
        assert!(v.verify(&client, &[], now()).is_ok());
        let other = pem_certs(&o.join("enterprise-mtls/otherca-client/client.crt")).remove(0);
        assert_eq!(
            v.verify(&other, &[], now()).unwrap_err().openssl_reason(),
            "unable to verify the first certificate"
        );
        // the nginx TLS-termination guide: the self-signed v1 public.pem is both CA file and
        // client certificate
        let pubpem = std::fs::read(o.join("tls-termination/public.pem")).unwrap();
        let v0 = ChainVerifier::new(Arc::new(TrustStore::from_pem(&pubpem).unwrap()), 2);
        let c0 = pem_certs(&o.join("tls-termination/public.pem")).remove(0);
        assert!(v0.verify(&c0, &[], now()).is_ok());
    }
}
