//! Handshake signatures (CertificateVerify, ServerKeyExchange) checked against a
//! certificate's SubjectPublicKeyInfo, for clients and upstreams alike.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, DigitallySignedStruct};
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};

/// Checks a handshake signature against the certificate's SubjectPublicKeyInfo: rustls's own
/// helpers parse the certificate with webpki, which refuses the X.509 v1 certificates the
/// seeds make, for clients and upstreams alike.
pub fn verify_with_spki(
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
