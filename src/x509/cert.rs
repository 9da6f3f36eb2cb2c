//! One certificate parsed once for path building and the OpenSSL-style checks on it
//! (`check_ca`, key strength and digest at security level 2, critical extensions), shared by
//! the trust store and chain verification.

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::signature::{
    spki_curve, verify_signed, SigCheck, OID_ED25519, OID_ED448, OID_P256, OID_P384, OID_P521,
};

/// A parsed certificate borrowing its DER, with the fields path building compares.
pub(crate) struct Parsed<'a> {
    /// The whole certificate.
    pub(crate) x509: X509Certificate<'a>,
    /// Raw DER of the subject Name.
    pub(crate) subject: &'a [u8],
    /// Raw DER of the issuer Name.
    pub(crate) issuer: &'a [u8],
    /// Raw DER of the SubjectPublicKeyInfo.
    pub(crate) spki: &'a [u8],
    /// notBefore, Unix seconds.
    pub(crate) not_before: i64,
    /// notAfter, Unix seconds.
    pub(crate) not_after: i64,
    /// subject == issuer.
    pub(crate) self_issued: bool,
}

impl<'a> Parsed<'a> {
    /// Parses one DER certificate, refusing trailing data and duplicate or malformed
    /// extensions up front (as OpenSSL does in x509v3_cache_extensions) so that later lookups
    /// cannot fail.
    pub(crate) fn parse(der: &'a [u8]) -> Result<Self, String> {
        let (rest, x509) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err("trailing data after certificate".into());
        }
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

    /// The subject as x509-parser prints it, for error messages.
    pub(crate) fn subject_string(&self) -> String {
        self.x509.tbs_certificate.subject.to_string()
    }

    /// Whether this is an X.509 v1 certificate (no extensions at all).
    pub(crate) fn is_v1(&self) -> bool {
        self.x509.version().0 == 0
    }

    /// Whether `issuer`'s key verifies this certificate's signature.
    pub(crate) fn check_signature(&self, issuer: &Parsed<'_>) -> Result<(), SigCheck> {
        verify_signed(
            &self.x509.signature_algorithm,
            self.x509.tbs_certificate.as_ref(),
            &self.x509.signature_value.data,
            &issuer.x509.tbs_certificate.subject_pki,
        )
    }

    /// Self-issued and signed by its own key: what OpenSSL calls self-signed.
    pub(crate) fn is_self_signed(&self) -> bool {
        self.self_issued && self.check_signature(self).is_ok()
    }

    /// basicConstraints: None if absent, Some((ca, pathlen)).
    pub(crate) fn basic_constraints(&self) -> Option<(bool, Option<u32>)> {
        match self.x509.basic_constraints() {
            Ok(Some(bc)) => Some((bc.value.ca, bc.value.path_len_constraint)),
            _ => None,
        }
    }

    /// keyUsage: None if absent, Some((digitalSignature|keyAgreement, keyCertSign)).
    pub(crate) fn key_usage(&self) -> Option<(bool, bool)> {
        match self.x509.key_usage() {
            Ok(Some(ku)) => Some((
                ku.value.digital_signature() || ku.value.key_agreement(),
                ku.value.key_cert_sign(),
            )),
            _ => None,
        }
    }

    /// Whether a critical extension OpenSSL does not handle is present.
    pub(crate) fn has_unhandled_critical(&self) -> bool {
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
    pub(crate) fn check_ca(&self) -> u8 {
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
    pub(crate) fn key_strong_enough(&self) -> bool {
        let spki = &self.x509.tbs_certificate.subject_pki;
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => rsa_bits(rsa.modulus) >= 2048,
            Ok(PublicKey::EC(_)) => matches!(
                spki_curve(spki).as_deref(),
                Some(OID_P256 | OID_P384 | OID_P521)
            ),
            Ok(_) => {
                let alg = spki.algorithm.algorithm.to_id_string();
                alg == OID_ED25519 || alg == OID_ED448
            }
            Err(_) => false,
        }
    }

    /// Whether the signature uses a digest below security level 2 (SHA-1, MD5).
    pub(crate) fn weak_digest(&self) -> bool {
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

/// The size in bits of an RSA modulus given as big-endian bytes (sign padding ignored).
fn rsa_bits(modulus: &[u8]) -> usize {
    let start = modulus
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(modulus.len());
    let m = &modulus[start..];
    match m.first() {
        Some(b) => m.len() * 8 - b.leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    #[test]
    fn rsa_bits_ignores_sign_padding() {
        assert_eq!(rsa_bits(&[]), 0);
        assert_eq!(rsa_bits(&[0x00, 0x00]), 0);
        assert_eq!(rsa_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(rsa_bits(&[0x01, 0xff]), 9);
    }

    #[test]
    fn self_signed_ca_and_leaf_properties() {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "Root");
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        let root = p.self_signed(&key).unwrap();
        let parsed = Parsed::parse(root.der().as_ref()).unwrap();
        assert!(parsed.is_self_signed());
        assert!(!parsed.is_v1());
        assert_eq!(parsed.basic_constraints(), Some((true, Some(1))));
        assert_eq!(parsed.check_ca(), 1);
        assert!(parsed.key_strong_enough(), "P-256 meets security level 2");
        assert!(!parsed.weak_digest());
        assert!(!parsed.has_unhandled_critical());

        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &Issuer::from_params(&p, &key))
            .unwrap();
        let leaf = Parsed::parse(leaf.der().as_ref()).unwrap();
        assert!(!leaf.self_issued);
        assert!(leaf.check_signature(&parsed).is_ok());
        assert_eq!(leaf.check_signature(&leaf), Err(SigCheck::Bad));
        assert_eq!(leaf.check_ca(), 0);
    }

    #[test]
    fn trailing_data_is_refused() {
        let key = KeyPair::generate().unwrap();
        let c = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let mut der = c.der().to_vec();
        der.push(0);
        assert_eq!(
            Parsed::parse(&der).err().as_deref(),
            Some("trailing data after certificate")
        );
    }
}
