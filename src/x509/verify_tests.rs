//! Unit tests for `verify.rs`: chains made with rcgen in the test, and with the openssl CLI
//! where the case needs what only openssl makes (X.509 v1 certificates).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::{ChainVerifier, TrustStore, VerifyError};

struct Ca {
    cert: Certificate,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str, issuer: Option<&Ca>) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = match issuer {
        None => p.self_signed(&key).unwrap(),
        Some(i) => p.signed_by(&key, &i.issuer).unwrap(),
    };
    Ca {
        cert,
        issuer: Issuer::new(p, key),
    }
}

fn leaf(
    issuer: &Ca,
    eku: Option<ExtendedKeyUsagePurpose>,
    days: (i64, i64),
) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "client1");
    if let Some(e) = eku {
        p.extended_key_usages = vec![e];
    }
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(days.0);
    p.not_after = now + time::Duration::days(days.1);
    p.signed_by(&key, &issuer.issuer).unwrap().der().clone()
}

fn verifier(root: &Ca, depth: u32) -> ChainVerifier {
    let store = TrustStore::from_der(vec![root.cert.der().clone()]).unwrap();
    ChainVerifier::new(Arc::new(store), depth)
}

const VALID: (i64, i64) = (-1, 30);

#[test]
fn leaf_under_root_verifies_and_reports_expiry() {
    let root = ca("root", None);
    let l = leaf(&root, Some(ExtendedKeyUsagePurpose::ClientAuth), VALID);
    let v = verifier(&root, 1).verify(&l, &[], UnixTime::now()).unwrap();
    assert_eq!(v.chain.len(), 2);
    assert!(v.earliest_not_after <= v.leaf_not_after);
}

#[test]
fn depth_counts_intermediates_like_nginx() {
    let root = ca("root", None);
    let int1 = ca("int1", Some(&root));
    let int2 = ca("int2", Some(&int1));
    let direct = leaf(&root, None, VALID);
    let one = leaf(&int1, None, VALID);
    let two = leaf(&int2, None, VALID);
    let now = UnixTime::now();
    let i1 = int1.cert.der().clone();
    let i2 = int2.cert.der().clone();
    assert!(verifier(&root, 0).verify(&direct, &[], now).is_ok());
    assert!(verifier(&root, 0)
        .verify(&one, std::slice::from_ref(&i1), now)
        .is_err());
    assert!(verifier(&root, 1)
        .verify(&one, std::slice::from_ref(&i1), now)
        .is_ok());
    assert!(verifier(&root, 1)
        .verify(&two, &[i2.clone(), i1.clone()], now)
        .is_err());
    assert!(verifier(&root, 2)
        .verify(&two, &[i2.clone(), i1.clone()], now)
        .is_ok());
    // Intermediates in any order.
    assert!(verifier(&root, 2).verify(&two, &[i1, i2], now).is_ok());
}

#[test]
fn time_and_purpose_failures_have_openssl_reasons() {
    let root = ca("root", None);
    let v = verifier(&root, 1);
    let now = UnixTime::now();
    let expired = leaf(&root, None, (-30, -1));
    let future = leaf(&root, None, (2, 30));
    let server_only = leaf(&root, Some(ExtendedKeyUsagePurpose::ServerAuth), VALID);
    let e = v.verify(&expired, &[], now).unwrap_err();
    assert!(matches!(e, VerifyError::Expired { .. }), "{e:?}");
    assert_eq!(e.openssl_reason(), "certificate has expired");
    let e = v.verify(&future, &[], now).unwrap_err();
    assert_eq!(e.openssl_reason(), "certificate is not yet valid");
    let e = v.verify(&server_only, &[], now).unwrap_err();
    assert_eq!(e.openssl_reason(), "unsuitable certificate purpose");
    assert!(!e.is_ignorable_for_optional_no_ca());
}

#[test]
fn unknown_and_self_signed_are_tolerated_only_by_optional_no_ca() {
    let root = ca("root", None);
    let other = ca("other", None);
    let v = verifier(&root, 1);
    let now = UnixTime::now();
    let e = v.verify(&leaf(&other, None, VALID), &[], now).unwrap_err();
    assert!(e.is_ignorable_for_optional_no_ca(), "{e:?}");
    let e = v.verify(other.cert.der(), &[], now).unwrap_err();
    assert_eq!(e.openssl_reason(), "self-signed certificate");
    assert!(e.is_ignorable_for_optional_no_ca());
    assert!(matches!(
        e.to_rustls(),
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    ));
}

#[test]
fn garbage_never_panics() {
    let root = ca("root", None);
    let v = verifier(&root, 1);
    let now = UnixTime::now();
    let good = leaf(&root, None, VALID);
    for cut in [0, 1, 10, good.len() / 2, good.len() - 1] {
        let der = CertificateDer::from(good.as_ref()[..cut].to_vec());
        assert!(v.verify(&der, &[], now).is_err());
        assert!(v.verify(&good, std::slice::from_ref(&der), now).is_err());
    }
    let many: Vec<CertificateDer<'static>> = (0..40).map(|_| root.cert.der().clone()).collect();
    assert!(v.verify(&good, &many, now).is_err());
    assert!(TrustStore::from_pem(b"not pem").is_err());
    assert!(TrustStore::from_pem(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    .is_err());
}

/// The enterprise mTLS guide's commands make an X.509 v1 client certificate (`openssl x509
/// -req` without extensions); OpenSSL, and so nginx, accept it, and so must we.
#[test]
fn v1_client_certificate_from_openssl_is_accepted() {
    let Ok(dir) = tempfile::tempdir() else { return };
    let d = dir.path();
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !run(&["version"]) {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    assert!(run(&["genrsa", "-out", "ca.key", "2048"]));
    assert!(run(&[
        "req",
        "-new",
        "-x509",
        "-days",
        "3650",
        "-key",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/C=CN/O=MyCompany/OU=CA/CN=MyRootCA"
    ]));
    assert!(run(&["genrsa", "-out", "client.key", "2048"]));
    assert!(run(&[
        "req",
        "-new",
        "-key",
        "client.key",
        "-out",
        "client.csr",
        "-subj",
        "/C=CN/O=MyCompany/OU=Client/CN=client1"
    ]));
    assert!(run(&[
        "x509",
        "-req",
        "-days",
        "365",
        "-in",
        "client.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.crt"
    ]));
    let ca_pem = std::fs::read(d.join("ca.crt")).unwrap();
    let client_pem = std::fs::read(d.join("client.crt")).unwrap();
    let client =
        <CertificateDer<'_> as rustls_pki_types::pem::PemObject>::pem_slice_iter(&client_pem)
            .next()
            .unwrap()
            .unwrap();
    let store = Arc::new(TrustStore::from_pem(&ca_pem).unwrap());
    let v = ChainVerifier::new(store, 2);
    assert!(v.verify(&client, &[], UnixTime::now()).is_ok());
}

/// The sslserver purpose (ringgate verifying an upstream): serverAuth or no EKU at the leaf;
/// a client-only leaf is refused, and the client verifier is unchanged.
#[test]
fn server_purpose_is_openssl_sslserver() {
    let root = ca("root", None);
    let store = Arc::new(TrustStore::from_der(vec![root.cert.der().clone()]).unwrap());
    let servers = ChainVerifier::for_servers(store.clone(), 1);
    let clients = ChainVerifier::new(store, 1);
    let now = UnixTime::now();
    let server_leaf = leaf(&root, Some(ExtendedKeyUsagePurpose::ServerAuth), VALID);
    let client_leaf = leaf(&root, Some(ExtendedKeyUsagePurpose::ClientAuth), VALID);
    let no_eku = leaf(&root, None, VALID);
    assert!(servers.verify(&server_leaf, &[], now).is_ok());
    assert!(servers.verify(&no_eku, &[], now).is_ok());
    assert_eq!(
        servers
            .verify(&client_leaf, &[], now)
            .unwrap_err()
            .openssl_reason(),
        "unsuitable certificate purpose"
    );
    assert!(clients.verify(&client_leaf, &[], now).is_ok());
    assert!(clients.verify(&server_leaf, &[], now).is_err());
}

/// `verify_all` keeps every error OpenSSL reports: a chain too deep for the depth reports
/// "certificate chain too long" before the verdict "unable to get local issuer certificate".
#[test]
fn verify_all_keeps_the_errors_before_the_verdict() {
    let root = ca("root", None);
    let i1 = ca("int1", Some(&root));
    let i2 = ca("int2", Some(&i1));
    let l = leaf(&i2, Some(ExtendedKeyUsagePurpose::ServerAuth), VALID);
    let store = Arc::new(TrustStore::from_der(vec![root.cert.der().clone()]).unwrap());
    let chain = [i2.cert.der().clone(), i1.cert.der().clone()];
    let now = UnixTime::now();
    let errors = ChainVerifier::for_servers(store.clone(), 1)
        .verify_all(&l, &chain, now)
        .unwrap_err();
    assert!(matches!(
        errors.first(),
        Some(VerifyError::ChainTooLong { .. })
    ));
    assert_eq!(
        errors.last().map(VerifyError::openssl_reason),
        Some("unable to get local issuer certificate")
    );
    assert!(ChainVerifier::for_servers(store, 2)
        .verify_all(&l, &chain, now)
        .is_ok());
}

/// OpenSSL's build_chain limits the whole chain, trusted certificates included: an
/// intermediate in the CA file counts towards verify_depth as one the client sends does.
#[test]
fn trusted_intermediates_count_towards_depth() {
    let root = ca("root", None);
    let int1 = ca("int1", Some(&root));
    let l = leaf(&int1, None, VALID);
    let store = Arc::new(
        TrustStore::from_der(vec![root.cert.der().clone(), int1.cert.der().clone()]).unwrap(),
    );
    let now = UnixTime::now();
    assert!(ChainVerifier::new(store.clone(), 1)
        .verify(&l, &[], now)
        .is_ok());
    let e = ChainVerifier::new(store, 0)
        .verify(&l, &[], now)
        .unwrap_err();
    assert_eq!(e.openssl_reason(), "unable to get issuer certificate");
}

/// Revocation through the verifier: "certificate revoked" for the leaf and for an
/// intermediate, "unable to get certificate CRL" for a CA without a CRL, and the CRL's
/// nextUpdate bounding how long a verdict may be cached.
#[test]
fn revocation_in_chain_verification() {
    use crate::x509::crl::{parse_crls, CrlPolicy, ExpiredCrl, Revocation};
    use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
    let root = ca("root", None);
    let int1 = ca("int1", Some(&root));
    let serial_of = |d: &CertificateDer<'_>| {
        let (_, c) = x509_parser::parse_x509_certificate(d.as_ref()).unwrap();
        c.raw_serial().to_vec()
    };
    let l = leaf(&int1, None, VALID);
    let i1 = int1.cert.der().clone();
    let now_t = time::OffsetDateTime::now_utc();
    let crl = |issuer: &Ca, serials: Vec<Vec<u8>>| {
        CertificateRevocationListParams {
            this_update: now_t - time::Duration::days(1),
            next_update: now_t + time::Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .into_iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&s),
                    revocation_time: now_t - time::Duration::hours(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&issuer.issuer)
        .unwrap()
        .der()
        .to_vec()
    };
    let store = Arc::new(TrustStore::from_der(vec![root.cert.der().clone(), i1.clone()]).unwrap());
    let set = |files: &[Vec<u8>], require_all| {
        let mut crls = Vec::new();
        for f in files {
            crls.extend(parse_crls(f, "t.crl", &store).unwrap());
        }
        Some(Arc::new(Revocation::new(
            crls,
            CrlPolicy {
                require_all,
                expired: ExpiredCrl::Refuse,
            },
        )))
    };
    let now = UnixTime::now();
    let v = |r| ChainVerifier::new(store.clone(), 2).with_revocation(r);
    let root_crl = crl(&root, vec![]);
    // Both CRLs, nothing revoked: accepted, cacheable until the CRLs' nextUpdate.
    let ok = v(set(&[root_crl.clone(), crl(&int1, vec![])], true))
        .verify(&l, &[], now)
        .unwrap();
    assert!(ok.cache_until <= (now_t + time::Duration::days(7)).unix_timestamp());
    assert!(ok.cache_until < ok.earliest_not_after);
    // The leaf revoked by int1's CRL.
    let e = v(set(
        &[root_crl.clone(), crl(&int1, vec![serial_of(&l)])],
        true,
    ))
    .verify(&l, &[], now)
    .unwrap_err();
    assert_eq!(e.openssl_reason(), "certificate revoked");
    assert!(matches!(
        e.to_rustls(),
        rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
    ));
    assert!(e.to_string().contains("serial"), "{e}");
    // The intermediate revoked by the root's CRL.
    let e = v(set(
        &[crl(&root, vec![serial_of(&i1)]), crl(&int1, vec![])],
        true,
    ))
    .verify(&l, &[], now)
    .unwrap_err();
    assert!(matches!(e, VerifyError::Revoked { depth: 1, .. }), "{e}");
    // int1 has no CRL: refused under crl_require_all, accepted without it.
    let e = v(set(std::slice::from_ref(&root_crl), true))
        .verify(&l, &[], now)
        .unwrap_err();
    assert_eq!(e.openssl_reason(), "unable to get certificate CRL");
    assert!(matches!(e, VerifyError::UnableToGetCrl { depth: 0, .. }));
    assert!(v(set(std::slice::from_ref(&root_crl), false))
        .verify(&l, &[], now)
        .is_ok());
}
