//! Signatures: over a certificate's, a CRL's or an OCSP response's signed part (checked with
//! the algorithms OpenSSL accepts at security level 2), and the handshake signatures
//! (CertificateVerify, ServerKeyExchange) rustls asks the verifiers of clients and upstreams
//! to check.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use x509_parser::signature_algorithm::SignatureAlgorithm;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// The named curve P-256.
pub(crate) const OID_P256: &str = "1.2.840.10045.3.1.7";
/// The named curve P-384.
pub(crate) const OID_P384: &str = "1.3.132.0.34";
/// The named curve P-521.
pub(crate) const OID_P521: &str = "1.3.132.0.35";
/// Ed25519 keys and signatures.
pub(crate) const OID_ED25519: &str = "1.3.101.112";
/// Ed448 keys.
pub(crate) const OID_ED448: &str = "1.3.101.113";
const OID_RSA_KEY: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS_KEY: &str = "1.2.840.113549.1.1.10";
const OID_EC_KEY: &str = "1.2.840.10045.2.1";

/// Why a signature did not verify: OpenSSL tells an unusable issuer key ("unable to decode
/// issuer public key") from a signature that does not match ("signature failure").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigCheck {
    /// Issuer key unusable/unsupported.
    BadKey,
    /// Signature did not verify.
    Bad,
}

/// The named curve of an EC key (its parameters' OID), when it has one.
pub(crate) fn spki_curve(spki: &SubjectPublicKeyInfo<'_>) -> Option<String> {
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|a| a.as_oid().ok())
        .map(|o| o.to_id_string())
}

/// Verifies a signature over `tbs` (a certificate's, a CRL's or an OCSP response's signed
/// part) made with the algorithm `sig_alg_id` by the key in `issuer_spki`, with the
/// algorithms OpenSSL accepts at security level 2. Shared by chain verification, CRL loading
/// and OCSP stapling.
pub(crate) fn verify_signed(
    sig_alg_id: &AlgorithmIdentifier<'_>,
    tbs: &[u8],
    signature: &[u8],
    issuer_spki: &SubjectPublicKeyInfo<'_>,
) -> Result<(), SigCheck> {
    let alg = verification_algorithm(sig_alg_id, issuer_spki)?;
    let key = &issuer_spki.subject_public_key.data;
    UnparsedPublicKey::new(alg, key.as_ref())
        .verify(tbs, signature)
        .map_err(|_| SigCheck::Bad)
}

/// The aws-lc-rs algorithm for a signature algorithm and the issuer's key type: `BadKey` when
/// the key cannot make such signatures, `Bad` when the algorithm is not accepted.
fn verification_algorithm(
    sig_alg_id: &AlgorithmIdentifier<'_>,
    issuer_spki: &SubjectPublicKeyInfo<'_>,
) -> Result<&'static dyn VerificationAlgorithm, SigCheck> {
    let sig_alg = SignatureAlgorithm::try_from(sig_alg_id).map_err(|_| SigCheck::Bad)?;
    let sig_oid = sig_alg_id.algorithm.to_id_string();
    let key_alg = issuer_spki.algorithm.algorithm.to_id_string();
    Ok(match sig_alg {
        SignatureAlgorithm::RSA => {
            if key_alg != OID_RSA_KEY {
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
            if key_alg != OID_RSA_KEY && key_alg != OID_RSA_PSS_KEY {
                return Err(SigCheck::BadKey);
            }
            match params.hash_algorithm_oid().to_id_string().as_str() {
                "2.16.840.1.101.3.4.2.1" => &signature::RSA_PSS_2048_8192_SHA256,
                "2.16.840.1.101.3.4.2.2" => &signature::RSA_PSS_2048_8192_SHA384,
                "2.16.840.1.101.3.4.2.3" => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return Err(SigCheck::Bad),
            }
        }
        SignatureAlgorithm::ECDSA => ecdsa_algorithm(&key_alg, &sig_oid, issuer_spki)?,
        SignatureAlgorithm::ED25519 => {
            if key_alg != OID_ED25519 {
                return Err(SigCheck::BadKey);
            }
            &signature::ED25519
        }
        _ => return Err(SigCheck::Bad),
    })
}

/// ECDSA on P-256 and P-384 with SHA-256 or SHA-384 (what OpenSSL's default providers verify).
fn ecdsa_algorithm(
    key_alg: &str,
    sig_oid: &str,
    issuer_spki: &SubjectPublicKeyInfo<'_>,
) -> Result<&'static dyn VerificationAlgorithm, SigCheck> {
    if key_alg != OID_EC_KEY {
        return Err(SigCheck::BadKey);
    }
    let curve = spki_curve(issuer_spki).ok_or(SigCheck::BadKey)?;
    Ok(match (curve.as_str(), sig_oid) {
        (OID_P256, "1.2.840.10045.4.3.2") => &signature::ECDSA_P256_SHA256_ASN1,
        (OID_P256, "1.2.840.10045.4.3.3") => &signature::ECDSA_P256_SHA384_ASN1,
        (OID_P384, "1.2.840.10045.4.3.2") => &signature::ECDSA_P384_SHA256_ASN1,
        (OID_P384, "1.2.840.10045.4.3.3") => &signature::ECDSA_P384_SHA384_ASN1,
        (OID_P256 | OID_P384, _) => return Err(SigCheck::Bad),
        _ => return Err(SigCheck::BadKey),
    })
}

/// The handshake-signature half of a rustls certificate verifier, shared by the client
/// verifier (`tls::client_auth`) and the upstream verifier (`tls::upstream_verify`): both
/// check CertificateVerify/ServerKeyExchange against the certificate's raw
/// SubjectPublicKeyInfo, because rustls's own helpers parse the certificate with webpki,
/// which refuses X.509 v1 certificates (what `openssl x509 -req` makes).
#[derive(Debug)]
pub struct HandshakeSignatures {
    algorithms: WebPkiSupportedAlgorithms,
}

impl Default for HandshakeSignatures {
    fn default() -> Self {
        HandshakeSignatures {
            algorithms: rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms,
        }
    }
}

impl HandshakeSignatures {
    /// The body of a verifier's `verify_tls12_signature`.
    pub fn verify_tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_with_spki(&self.algorithms, message, cert, dss, false)
    }

    /// The body of a verifier's `verify_tls13_signature`.
    pub fn verify_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_with_spki(&self.algorithms, message, cert, dss, true)
    }

    /// The body of a verifier's `supported_verify_schemes`.
    pub fn schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Checks a handshake signature against the certificate's SubjectPublicKeyInfo: rustls's own
/// helpers parse the certificate with webpki, which refuses X.509 v1 certificates (the
/// enterprise mTLS guide's client certificate, made by `openssl x509 -req`), for clients and
/// upstreams alike.
fn verify_with_spki(
    algorithms: &WebPkiSupportedAlgorithms,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadSignature);
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let spki = SubjectPublicKeyInfoDer::from(x509.public_key().raw);
    if tls13 {
        return rustls::crypto::verify_tls13_signature_with_raw_key(
            message, &spki, dss, algorithms,
        );
    }
    let entity = webpki::RawPublicKeyEntity::try_from(&spki).map_err(|_| bad())?;
    let algs = algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, algs)| *algs)
        .ok_or(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ))?;
    for alg in algs {
        if entity
            .verify_signature(*alg, message, dss.signature())
            .is_ok()
        {
            return Ok(HandshakeSignatureValid::assertion());
        }
    }
    Err(bad())
}
