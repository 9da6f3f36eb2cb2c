//! The CA certificates a chain must end in (nginx's `ssl_client_certificate`,
//! `proxy_ssl_trusted_certificate`), parsed once at load and shared read-only by the workers.

use rustls::DistinguishedName;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::cert::Parsed;

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
        let mut ders = Vec::new();
        for item in CertificateDer::pem_slice_iter(pem) {
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
            let self_signed = parsed.is_self_signed();
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    fn cert(cn: &str, issuer: Option<&Issuer<'_, KeyPair>>) -> rcgen::Certificate {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        match issuer {
            None => p.self_signed(&key).unwrap(),
            Some(i) => p.signed_by(&key, i).unwrap(),
        }
    }

    #[test]
    fn anchors_keep_bundle_order_and_know_self_signed_roots() {
        let root_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "Root");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root = p.self_signed(&root_key).unwrap();
        let int = cert("Int", Some(&Issuer::new(p, root_key)));
        let pem = format!("{}{}", int.pem(), root.pem());
        let store = TrustStore::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(store.len(), 2);
        assert!(!store.is_empty());
        let anchors = store.anchors();
        assert!(
            !anchors[0].self_signed,
            "an intermediate is not self-signed"
        );
        assert!(anchors[1].self_signed);
        assert_eq!(store.subjects()[0].as_ref(), anchors[0].subject.as_slice());
        assert!(anchors[0].not_before < anchors[0].not_after);
    }

    #[test]
    fn bad_bundles_say_why() {
        assert!(matches!(
            TrustStore::from_pem(b"no PEM here"),
            Err(TrustStoreError::Empty)
        ));
        assert!(matches!(
            TrustStore::from_der(Vec::new()),
            Err(TrustStoreError::Empty)
        ));
        let good = cert("A", None);
        let bad = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let err = TrustStore::from_der(vec![good.der().clone(), bad]).unwrap_err();
        assert!(
            matches!(err, TrustStoreError::Unparsable { index: 1, .. }),
            "{err}"
        );
        assert!(err
            .to_string()
            .starts_with("CA bundle certificate #1 cannot be parsed"));
    }
}
