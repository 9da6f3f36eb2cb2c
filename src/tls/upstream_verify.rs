//! ringgate as a TLS client of its upstreams: the upstream's certificate is checked the way
//! nginx's `proxy_ssl_verify on` checks it, not the way rustls-webpki would.
//!
//! nginx verifies the chain with OpenSSL (purpose sslserver, `proxy_ssl_verify_depth`,
//! `proxy_ssl_trusted_certificate`) and then the name with `X509_check_host()`. A certificate
//! made by `openssl x509 -req` without an extensions file is X.509 v1, without
//! subjectAltName, and often self-signed (the nginx TLS-termination guide's upstream
//! certificate is): nginx accepts such an upstream when that very certificate is trusted and
//! the name is its CN; webpki refuses v1 outright and never looks at CN. So
//! [`UpstreamVerifier`] runs the project's own [`ChainVerifier`] for servers and
//! [`check_host`], and checks handshake signatures against the raw SubjectPublicKeyInfo,
//! which every certificate version has.
//!
//! A refusal travels inside the rustls error as [`UpstreamCertError`] (in
//! `CertificateError::Other`), so the proxy's single log line can say exactly what was wrong:
//! which check, at which depth, which names were expected and presented.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, OtherError};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::x509::hostname::check_host;
use crate::x509::signature::HandshakeSignatures;
use crate::x509::trust::TrustStore;
use crate::x509::verify::{ChainVerifier, VerifyError};

/// Why an upstream's certificate was refused; carried to the log line unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamCertError {
    /// The chain did not verify against `trusted_certificate`.
    #[error("{}", chain_message(.error, *.too_long, *.max_depth))]
    Chain {
        /// OpenSSL's verdict (the last error it reports).
        error: VerifyError,
        /// Whether OpenSSL reported "certificate chain too long" on the way: the chain needs
        /// more intermediates than `verify_depth` allows.
        too_long: bool,
        /// The configured `verify_depth`.
        max_depth: u32,
    },
    /// The chain verified but does not name the host.
    #[error(
        "upstream SSL certificate does not match \"{expected}\" (the certificate names {})",
        names(.presented)
    )]
    Name {
        /// The name verified (`upstream.tls.name`).
        expected: String,
        /// The names the certificate carries.
        presented: Vec<String>,
    },
}

fn chain_message(error: &VerifyError, too_long: bool, max_depth: u32) -> String {
    if too_long {
        return format!(
            "upstream SSL certificate chain too long: it needs more than verify_depth = {max_depth} intermediate{} between the certificate and trusted_certificate ({})",
            if max_depth == 1 { "" } else { "s" },
            error.openssl_reason()
        );
    }
    let hint = match error {
        VerifyError::UnableToGetIssuerCert { .. }
        | VerifyError::UnableToGetIssuerCertLocally { .. }
        | VerifyError::UnableToVerifyLeafSignature { .. }
        | VerifyError::DepthZeroSelfSigned { .. }
        | VerifyError::SelfSignedInChain { .. } => {
            " (unknown CA: the upstream's certificate does not chain to trusted_certificate)"
        }
        _ => "",
    };
    format!("upstream SSL certificate verify error: {error}{hint}")
}

fn names(presented: &[String]) -> String {
    if presented.is_empty() {
        "no DNS name, IP address or CN".to_string()
    } else {
        presented.join(", ")
    }
}

impl UpstreamCertError {
    /// Finds our refusal inside a rustls error (as returned by a failed handshake).
    pub fn from_rustls(e: &rustls::Error) -> Option<&UpstreamCertError> {
        match e {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref::<UpstreamCertError>()
            }
            _ => None,
        }
    }
}

/// The upstream side of `proxy_ssl_verify`: chain (or nothing, when verification is off) and
/// name. Stateless and shared by every worker's rustls configuration for one upstream.
pub struct UpstreamVerifier {
    chain: Option<ChainVerifier>,
    signatures: HandshakeSignatures,
}

impl fmt::Debug for UpstreamVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamVerifier")
            .field("verify", &self.chain.is_some())
            .finish()
    }
}

impl UpstreamVerifier {
    /// Verifies against `store` with nginx's `proxy_ssl_verify_depth` = `depth`.
    pub fn new(store: Arc<TrustStore>, depth: u32) -> Self {
        UpstreamVerifier {
            chain: Some(ChainVerifier::for_servers(store, depth)),
            signatures: HandshakeSignatures::default(),
        }
    }

    /// Accepts any certificate (`verify = false`, nginx's `proxy_ssl_verify off`); handshake
    /// signatures are still checked, as the TLS handshake requires.
    pub fn unverified() -> Self {
        UpstreamVerifier {
            chain: None,
            signatures: HandshakeSignatures::default(),
        }
    }

    /// The whole check for a presented chain and the name we asked for; nginx's order: the
    /// chain first, then the name.
    pub fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &str,
        now: UnixTime,
    ) -> Result<(), UpstreamCertError> {
        let Some(chain) = &self.chain else {
            return Ok(());
        };
        if let Err(errors) = chain.verify_all(end_entity, intermediates, now) {
            let too_long = errors
                .iter()
                .any(|e| matches!(e, VerifyError::ChainTooLong { .. }));
            let error = errors.last().cloned().unwrap_or(VerifyError::BadEncoding {
                depth: 0,
                reason: "verification failed without a reason".into(),
            });
            return Err(UpstreamCertError::Chain {
                error,
                too_long,
                max_depth: chain.max_depth,
            });
        }
        // The chain parsed above, so the leaf parses here.
        let Ok((_, x509)) = x509_parser::parse_x509_certificate(end_entity.as_ref()) else {
            return Err(UpstreamCertError::Chain {
                error: VerifyError::BadEncoding {
                    depth: 0,
                    reason: "unparsable certificate".into(),
                },
                too_long: false,
                max_depth: chain.max_depth,
            });
        };
        check_host(&x509, name).map_err(|m| UpstreamCertError::Name {
            expected: name.to_string(),
            presented: m.presented,
        })
    }
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = server_name.to_str();
        self.check(end_entity, intermediates, &name, now)
            .map_err(|e| {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
            })?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signature_methods!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::verify::measured_tests::{pem_certs, sh, TempDir};
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };

    struct Gen {
        cert: rcgen::Certificate,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(cn: &str, issuer: Option<&Gen>) -> Gen {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = match issuer {
            None => p.self_signed(&key).unwrap(),
            Some(i) => p.signed_by(&key, &i.issuer).unwrap(),
        };
        Gen {
            cert,
            issuer: Issuer::new(p, key),
        }
    }

    fn server(issuer: &Gen, f: impl FnOnce(&mut CertificateParams)) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["app.internal".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "app");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(30);
        f(&mut p);
        p.signed_by(&key, &issuer.issuer).unwrap().der().clone()
    }

    fn verifier(roots: &[&Gen], depth: u32) -> UpstreamVerifier {
        let store =
            TrustStore::from_der(roots.iter().map(|g| g.cert.der().clone()).collect()).unwrap();
        UpstreamVerifier::new(Arc::new(store), depth)
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    #[test]
    fn server_purpose_and_name() {
        let root = ca("Root", None);
        let v = verifier(&[&root], 1);
        let good = server(&root, |_| {});
        assert_eq!(v.check(&good, &[], "app.internal", now()), Ok(()));
        // No EKU at all is fine for sslserver too.
        let no_eku = server(&root, |p| p.extended_key_usages.clear());
        assert_eq!(v.check(&no_eku, &[], "app.internal", now()), Ok(()));
        // A client-only certificate is not a server certificate.
        let client_only = server(&root, |p| {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth]
        });
        let e = v
            .check(&client_only, &[], "app.internal", now())
            .unwrap_err();
        assert!(
            e.to_string().contains("unsuitable certificate purpose"),
            "{e}"
        );
        // keyUsage keyEncipherment alone is a TLS server usage (RSA key exchange).
        let ke = server(&root, |p| {
            p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]
        });
        assert_eq!(v.check(&ke, &[], "app.internal", now()), Ok(()));
        let sign_only = server(&root, |p| {
            p.key_usages = vec![KeyUsagePurpose::ContentCommitment]
        });
        assert!(v.check(&sign_only, &[], "app.internal", now()).is_err());
        // The name: what was expected and what the certificate has.
        let e = v.check(&good, &[], "other.internal", now()).unwrap_err();
        assert_eq!(
            e,
            UpstreamCertError::Name {
                expected: "other.internal".into(),
                presented: vec!["DNS:app.internal".into()],
            }
        );
        assert!(
            e.to_string().contains(
                "does not match \"other.internal\" (the certificate names DNS:app.internal)"
            ),
            "{e}"
        );
    }

    #[test]
    fn failures_say_why() {
        let root = ca("Root", None);
        let other = ca("Other", None);
        let v = verifier(&[&root], 1);
        let expired = server(&root, |p| {
            let now = time::OffsetDateTime::now_utc();
            p.not_before = now - time::Duration::days(30);
            p.not_after = now - time::Duration::days(1);
        });
        let e = v.check(&expired, &[], "app.internal", now()).unwrap_err();
        assert!(e.to_string().contains("certificate has expired"), "{e}");
        let unknown = server(&other, |_| {});
        let e = v.check(&unknown, &[], "app.internal", now()).unwrap_err();
        assert!(e.to_string().contains("unknown CA"), "{e}");
        // Two intermediates with verify_depth 1: too long, said so.
        let i1 = ca("Int1", Some(&root));
        let i2 = ca("Int2", Some(&i1));
        let deep = server(&i2, |_| {});
        let chain = [i2.cert.der().clone(), i1.cert.der().clone()];
        let e = v.check(&deep, &chain, "app.internal", now()).unwrap_err();
        assert!(
            matches!(e, UpstreamCertError::Chain { too_long: true, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("verify_depth = 1"), "{e}");
        assert_eq!(
            verifier(&[&root], 2).check(&deep, &chain, "app.internal", now()),
            Ok(())
        );
        // Verification off accepts anything.
        assert_eq!(
            UpstreamVerifier::unverified().check(&unknown, &[], "x", now()),
            Ok(())
        );
        // The error survives the trip through rustls.
        let r = rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
            e.clone(),
        ))));
        assert_eq!(UpstreamCertError::from_rustls(&r), Some(&e));
    }

    /// The nginx TLS-termination guide's upstream: `openssl x509 -req -signkey` makes a v1 self-signed certificate without SAN;
    /// trusted as itself, it verifies at any depth (0 included) for its CN, as with nginx.
    #[test]
    fn v1_self_signed_upstream() {
        let t = TempDir::new("up-v1-self-signed");
        sh(
            &t.0,
            "openssl genpkey -algorithm RSA -out private.key 2>/dev/null
             openssl req -new -key private.key -out csr.pem -subj /CN=upstreamserver
             openssl x509 -req -days 365 -in csr.pem -signkey private.key -out public.pem 2>/dev/null",
        );
        let pem = std::fs::read(t.0.join("public.pem")).unwrap();
        let store = Arc::new(TrustStore::from_pem(&pem).unwrap());
        let leaf = pem_certs(&t.0.join("public.pem")).remove(0);
        for depth in [0, 1, 2] {
            let v = UpstreamVerifier::new(store.clone(), depth);
            assert_eq!(v.check(&leaf, &[], "upstreamserver", now()), Ok(()));
        }
        let v = UpstreamVerifier::new(store, 2);
        let e = v.check(&leaf, &[], "localhost", now()).unwrap_err();
        assert!(
            e.to_string()
                .contains("(the certificate names CN=upstreamserver)"),
            "{e}"
        );
        // Not trusted: a self-signed certificate.
        let other = ca("Other", None);
        let e = verifier(&[&other], 2)
            .check(&leaf, &[], "upstreamserver", now())
            .unwrap_err();
        assert!(e.to_string().contains("self-signed certificate"), "{e}");
    }

    #[test]
    fn ip_names() {
        let root = ca("Root", None);
        let v = verifier(&[&root], 1);
        let c = server(&root, |p| {
            p.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())]
        });
        assert_eq!(v.check(&c, &[], "127.0.0.1", now()), Ok(()));
        assert!(v.check(&c, &[], "127.0.0.2", now()).is_err());
    }
}
