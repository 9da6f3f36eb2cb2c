//! Certificate revocation lists, checked as nginx's `ssl_crl` checks them (OpenSSL's
//! `X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL`): every certificate of a client's chain,
//! the trust anchor included, is looked up in the CRL of its issuer.
//!
//! CRLs are loaded once (PEM or DER, several per file, several files, several CAs) and each
//! one's signature is verified at load time against the CA in the trust store that issued
//! it, so a CRL nobody configured as trusted signed is refused before it can refuse anyone.
//! What is kept is immutable and shared by the workers; a reload builds a new [`Revocation`].

use rustls_pki_types::pem::PemObject;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::signature::verify_signed;
use super::trust::TrustStore;

/// Why a CRL file cannot be used; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    /// The file holds neither a PEM `X509 CRL` block nor a DER CRL.
    #[error("{path}: no CRL found (expected PEM `-----BEGIN X509 CRL-----` or DER, as `openssl ca -gencrl` writes them)")]
    Empty {
        /// The file.
        path: String,
    },
    /// A CRL in the file is not valid DER.
    #[error("{path}: CRL #{index} cannot be parsed: {reason}")]
    Unparsable {
        /// The file.
        path: String,
        /// 0-based position in the file.
        index: usize,
        /// Parser diagnostic.
        reason: String,
    },
    /// No configured CA has the CRL's issuer name and a key its signature verifies with.
    #[error("{path}: the CRL issued by `{issuer}` is not signed by any CA in client_certificate or trusted_certificate; add that CA there or remove the CRL")]
    UnknownIssuer {
        /// The file.
        path: String,
        /// The CRL's issuer, RFC 2253.
        issuer: String,
    },
    /// A configured CA has the issuer's name but the signature does not verify with its key.
    #[error("{path}: the signature of the CRL issued by `{issuer}` does not verify with that CA's key (CRL signature failure): the CRL was tampered with or made by another CA of the same name")]
    BadSignature {
        /// The file.
        path: String,
        /// The CRL's issuer, RFC 2253.
        issuer: String,
    },
    /// The issuing CA's keyUsage does not allow signing CRLs (OpenSSL refuses such CRLs).
    #[error("{path}: CA `{issuer}` may not sign CRLs: its keyUsage lacks cRLSign (OpenSSL: key usage does not include CRL signing)")]
    NotCrlSigner {
        /// The file.
        path: String,
        /// The CA, RFC 2253.
        issuer: String,
    },
    /// A CRL feature ringgate does not implement (and refuses rather than misread).
    #[error("{path}: the CRL issued by `{issuer}` has {what}, which ringgate does not support; publish a complete CRL (openssl ca -gencrl, ringgate ca crl)")]
    Unsupported {
        /// The file.
        path: String,
        /// The CRL's issuer, RFC 2253.
        issuer: String,
        /// What was found.
        what: String,
    },
}

/// What an expired CRL (past its nextUpdate) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiredCrl {
    /// Refuse every client whose chain needs it: "CRL has expired" (nginx's behaviour).
    Refuse,
    /// Keep using it for this many seconds past nextUpdate, with a warning.
    Grace(i64),
}

/// A listener's revocation policy (`crl_require_all`, `crl_expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlPolicy {
    /// Every CA in a chain must have a CRL ("unable to get certificate CRL" otherwise), as
    /// nginx; false checks only where a CRL is configured.
    pub require_all: bool,
    /// What an expired CRL does.
    pub expired: ExpiredCrl,
}

impl Default for CrlPolicy {
    fn default() -> Self {
        CrlPolicy {
            require_all: true,
            expired: ExpiredCrl::Refuse,
        }
    }
}

/// One revoked serial number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// When it was revoked, Unix seconds.
    pub revoked_at: i64,
    /// The CRL reason code's name (`keyCompromise`, ...), when the entry has one.
    pub reason: Option<&'static str>,
}

/// One verified CRL.
#[derive(Debug)]
pub struct Crl {
    /// The file it came from, for messages.
    pub source: String,
    /// Raw DER of the issuer Name.
    pub issuer_name: Vec<u8>,
    /// The issuer, RFC 2253, for messages.
    pub issuer: String,
    /// Raw DER SubjectPublicKeyInfo of the CA whose key verified the signature.
    pub signer_spki: Vec<u8>,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds (absent: the CRL never expires, as in OpenSSL).
    pub next_update: Option<i64>,
    /// The cRLNumber extension in hex, when present.
    pub number: Option<String>,
    revoked: HashMap<Vec<u8>, RevokedEntry>,
    grace_warned: AtomicBool,
}

impl Crl {
    /// How many serial numbers it revokes.
    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }

    /// The entry for a serial number (DER INTEGER content bytes), if revoked.
    pub fn lookup(&self, serial: &[u8]) -> Option<&RevokedEntry> {
        self.revoked.get(normalize_serial(serial))
    }
}

/// A problem found while checking one certificate against the CRLs, in OpenSSL's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlProblem {
    /// X509_V_ERR_UNABLE_TO_GET_CRL: no CRL of the certificate's issuer.
    NoCrl,
    /// X509_V_ERR_CRL_SIGNATURE_FAILURE: a CRL of that name, signed by another key.
    SignatureFailure {
        /// The CRL's file.
        source: String,
    },
    /// X509_V_ERR_CRL_NOT_YET_VALID.
    NotYetValid {
        /// The CRL's file.
        source: String,
    },
    /// X509_V_ERR_CRL_HAS_EXPIRED.
    Expired {
        /// The CRL's file.
        source: String,
        /// Its nextUpdate, Unix seconds.
        next_update: i64,
    },
    /// X509_V_ERR_CERT_REVOKED.
    Revoked {
        /// The CRL's file.
        source: String,
        /// The entry.
        entry: RevokedEntry,
    },
}

/// The result of checking one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlOutcome {
    /// Problems, in the order OpenSSL reports them (the last one is the verdict).
    pub problems: Vec<CrlProblem>,
    /// Until when a clean result may be cached (the CRL's nextUpdate, plus grace when in it).
    pub until: i64,
}

/// The CRLs of one listener with its policy, shared read-only by the workers.
#[derive(Debug)]
pub struct Revocation {
    crls: Vec<Crl>,
    /// The policy.
    pub policy: CrlPolicy,
}

impl Revocation {
    /// Builds the set from CRLs already parsed and verified by [`parse_crls`].
    pub fn new(crls: Vec<Crl>, policy: CrlPolicy) -> Self {
        Revocation { crls, policy }
    }

    /// The CRLs, in configuration order.
    pub fn crls(&self) -> &[Crl] {
        &self.crls
    }

    /// Whether some CRL was issued by the CA with this subject and key.
    pub fn covers(&self, ca_subject: &[u8], ca_spki: &[u8]) -> bool {
        self.crls
            .iter()
            .any(|c| c.issuer_name == ca_subject && c.signer_spki == ca_spki)
    }

    /// Checks one certificate, identified by its issuer's name, the key of the issuer found in
    /// the chain (None when the chain has none) and its serial number (DER INTEGER content).
    pub fn check(
        &self,
        issuer_name: &[u8],
        issuer_spki: Option<&[u8]>,
        serial: &[u8],
        now: i64,
    ) -> CrlOutcome {
        let mut out = CrlOutcome {
            problems: Vec::new(),
            until: i64::MAX,
        };
        let by_name: Vec<&Crl> = self
            .crls
            .iter()
            .filter(|c| c.issuer_name == issuer_name)
            .collect();
        let signed: Vec<&Crl> = by_name
            .iter()
            .copied()
            .filter(|c| Some(c.signer_spki.as_slice()) == issuer_spki)
            .collect();
        let in_time = |c: &Crl| c.this_update <= now && c.next_update.is_none_or(|n| now <= n);
        // OpenSSL's get_crl_sk: prefer a CRL valid now, then the newest.
        let best = signed
            .iter()
            .copied()
            .max_by_key(|c| (in_time(c), c.this_update));
        let Some(crl) = best else {
            if let (Some(c), Some(_)) = (by_name.first(), issuer_spki) {
                out.problems.push(CrlProblem::SignatureFailure {
                    source: c.source.clone(),
                });
            } else if self.policy.require_all {
                out.problems.push(CrlProblem::NoCrl);
            }
            return out;
        };
        self.check_crl_times(crl, now, &mut out);
        if let Some(entry) = crl.lookup(serial) {
            out.problems.push(CrlProblem::Revoked {
                source: crl.source.clone(),
                entry: entry.clone(),
            });
        }
        out
    }

    /// OpenSSL's `check_crl_time` for the CRL chosen: not yet valid, or past its nextUpdate
    /// (tolerated within the `crl_expired` grace, with one warning per CRL). Sets until when
    /// a clean result may be cached.
    fn check_crl_times(&self, crl: &Crl, now: i64, out: &mut CrlOutcome) {
        if crl.this_update > now {
            out.problems.push(CrlProblem::NotYetValid {
                source: crl.source.clone(),
            });
            return;
        }
        let Some(next) = crl.next_update else {
            return;
        };
        out.until = next;
        if now <= next {
            return;
        }
        match self.policy.expired {
            ExpiredCrl::Grace(g) if now <= next.saturating_add(g) => {
                out.until = next.saturating_add(g);
                if !crl.grace_warned.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "CRL {} of `{}` expired at {} (nextUpdate); accepted within crl_expired grace until {}: publish a new CRL",
                        crl.source,
                        crl.issuer,
                        crate::clock::iso8601(next),
                        crate::clock::iso8601(next.saturating_add(g))
                    );
                }
            }
            _ => out.problems.push(CrlProblem::Expired {
                source: crl.source.clone(),
                next_update: next,
            }),
        }
    }
}

/// Strips the sign-padding zero bytes of a DER INTEGER's content, so serials compare by value.
fn normalize_serial(serial: &[u8]) -> &[u8] {
    let start = serial
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(serial.len().saturating_sub(1));
    &serial[start..]
}

/// OpenSSL's names of the CRL reason codes (RFC 5280 5.3.1), as `openssl ca -crl_reason` takes.
pub fn reason_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "CACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "AACompromise",
        _ => return None,
    })
}

const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_AKID: &str = "2.5.29.35";
const OID_IDP: &str = "2.5.29.28";
const OID_DELTA: &str = "2.5.29.27";

/// Parses every CRL in `bytes` (PEM with one or more `X509 CRL` blocks, or one DER CRL) and
/// verifies each one's signature against the CA in `store` that issued it. `path` names the
/// file in errors.
pub fn parse_crls(bytes: &[u8], path: &str, store: &TrustStore) -> Result<Vec<Crl>, CrlError> {
    let ders: Vec<Vec<u8>> = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(bytes)
            .map(|r| r.map(|d| d.as_ref().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| CrlError::Unparsable {
                path: path.to_string(),
                index: 0,
                reason: e.to_string(),
            })?
    } else if bytes.first() == Some(&0x30) {
        vec![bytes.to_vec()]
    } else {
        Vec::new()
    };
    if ders.is_empty() {
        return Err(CrlError::Empty {
            path: path.to_string(),
        });
    }
    ders.iter()
        .enumerate()
        .map(|(index, der)| parse_one(der, index, path, store))
        .collect()
}

/// One CRL: parsed, its extensions and digest accepted, its signer found among the trusted
/// CAs, its entries read.
fn parse_one(der: &[u8], index: usize, path: &str, store: &TrustStore) -> Result<Crl, CrlError> {
    let unparsable = |reason: String| CrlError::Unparsable {
        path: path.to_string(),
        index,
        reason,
    };
    let (rest, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| unparsable(e.to_string()))?;
    if !rest.is_empty() {
        return Err(unparsable("trailing data after the CRL".into()));
    }
    let tbs = &crl.tbs_cert_list;
    let issuer = crate::x509::identity::rfc2253(&tbs.issuer);
    let unsupported = |what: &str| CrlError::Unsupported {
        path: path.to_string(),
        issuer: issuer.clone(),
        what: what.to_string(),
    };
    let number = crl_number(&crl).map_err(|what| unsupported(&what))?;
    let sig_oid = crl.signature_algorithm.algorithm.to_id_string();
    if matches!(
        sig_oid.as_str(),
        "1.2.840.113549.1.1.5" | "1.2.840.113549.1.1.4" | "1.2.840.10045.4.1"
    ) {
        return Err(unsupported("a SHA-1 or MD5 signature"));
    }
    let signer_spki = find_signer(&crl, path, &issuer, store)?;
    let revoked = revoked_entries(&crl).map_err(|what| unsupported(&what))?;
    Ok(Crl {
        source: path.to_string(),
        issuer_name: tbs.issuer.as_raw().to_vec(),
        issuer,
        signer_spki,
        this_update: tbs.this_update.timestamp(),
        next_update: tbs.next_update.map(|t| t.timestamp()),
        number,
        revoked,
        grace_warned: AtomicBool::new(false),
    })
}

/// The CRL's cRLNumber in hex, after refusing the extensions ringgate does not implement
/// (partitioned and delta CRLs, unknown critical ones); the error says what was found.
fn crl_number(crl: &CertificateRevocationList<'_>) -> Result<Option<String>, String> {
    let mut number = None;
    for ext in crl.tbs_cert_list.extensions() {
        match ext.oid.to_id_string().as_str() {
            OID_CRL_NUMBER => {
                number = crl.crl_number().map(|n| format!("{n:X}"));
            }
            OID_AKID => {}
            OID_IDP => return Err("an issuingDistributionPoint (a partitioned CRL)".into()),
            OID_DELTA => return Err("a deltaCRLIndicator (a delta CRL)".into()),
            other if ext.critical => {
                return Err(format!("an unknown critical extension {other}"));
            }
            _ => {}
        }
    }
    Ok(number)
}

/// The signing CA: a trusted certificate of the CRL's issuer name whose key verifies the
/// signature and whose keyUsage (when present) allows cRLSign. Returns its SubjectPublicKeyInfo.
fn find_signer(
    crl: &CertificateRevocationList<'_>,
    path: &str,
    issuer: &str,
    store: &TrustStore,
) -> Result<Vec<u8>, CrlError> {
    let tbs = &crl.tbs_cert_list;
    let mut name_match = false;
    for anchor in store.anchors() {
        if anchor.subject != tbs.issuer.as_raw() {
            continue;
        }
        name_match = true;
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(anchor.der.as_ref()) else {
            continue;
        };
        let signed = verify_signed(
            &crl.signature_algorithm,
            tbs.as_ref(),
            &crl.signature_value.data,
            &ca.tbs_certificate.subject_pki,
        )
        .is_ok();
        if !signed {
            continue;
        }
        if let Ok(Some(ku)) = ca.key_usage() {
            if !ku.value.crl_sign() {
                return Err(CrlError::NotCrlSigner {
                    path: path.to_string(),
                    issuer: issuer.to_string(),
                });
            }
        }
        return Ok(anchor.spki.clone());
    }
    let (path, issuer) = (path.to_string(), issuer.to_string());
    Err(if name_match {
        CrlError::BadSignature { path, issuer }
    } else {
        CrlError::UnknownIssuer { path, issuer }
    })
}

/// The revoked serials (normalized) with their entries; `removeFromCRL` entries are left out,
/// and an indirect CRL (critical certificateIssuer entries) is refused with what was found.
fn revoked_entries(
    crl: &CertificateRevocationList<'_>,
) -> Result<HashMap<Vec<u8>, RevokedEntry>, String> {
    let mut revoked = HashMap::new();
    for r in crl.iter_revoked_certificates() {
        for ext in r.extensions() {
            if ext.critical && ext.oid.to_id_string() == "2.5.29.29" {
                return Err("certificateIssuer entries (an indirect CRL)".into());
            }
        }
        let reason = r.reason_code().and_then(|(_, code)| reason_name(code.0));
        if reason == Some("removeFromCRL") {
            continue;
        }
        revoked.insert(
            normalize_serial(r.raw_serial()).to_vec(),
            RevokedEntry {
                revoked_at: r.revocation_date.timestamp(),
                reason,
            },
        );
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
        KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
    };
    use std::sync::Arc;
    use time::{Duration, OffsetDateTime};

    struct Ca {
        cert: rcgen::Certificate,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(cn: &str, usages: Vec<KeyUsagePurpose>) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = usages;
        let cert = p.self_signed(&key).unwrap();
        Ca {
            cert,
            issuer: Issuer::new(p, key),
        }
    }

    fn crl_of(ca: &Ca, serials: &[(u64, Option<RevocationReason>)], next_days: i64) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        let p = CertificateRevocationListParams {
            this_update: now - Duration::days(10),
            next_update: now + Duration::days(next_days),
            crl_number: SerialNumber::from(7u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|(s, r)| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now - Duration::days(1),
                    reason_code: *r,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        p.signed_by(&ca.issuer).unwrap().der().to_vec()
    }

    fn store(cas: &[&Ca]) -> Arc<TrustStore> {
        Arc::new(TrustStore::from_der(cas.iter().map(|c| c.cert.der().clone()).collect()).unwrap())
    }

    fn spki(ca: &Ca) -> Vec<u8> {
        let (_, c) = x509_parser::parse_x509_certificate(ca.cert.der()).unwrap();
        c.tbs_certificate.subject_pki.raw.to_vec()
    }

    fn name(ca: &Ca) -> Vec<u8> {
        let (_, c) = x509_parser::parse_x509_certificate(ca.cert.der()).unwrap();
        c.tbs_certificate.subject.as_raw().to_vec()
    }

    #[test]
    fn parses_der_and_pem_and_finds_revoked_serials() {
        let a = ca("A", vec![]);
        let der = crl_of(
            &a,
            &[
                (0x1001, Some(RevocationReason::KeyCompromise)),
                (0x80, None),
            ],
            30,
        );
        let s = store(&[&a]);
        let crls = parse_crls(&der, "a.crl", &s).unwrap();
        assert_eq!(crls.len(), 1);
        assert_eq!(crls[0].number.as_deref(), Some("7"));
        assert_eq!(crls[0].revoked_count(), 2);
        let pem = pem_of(&der);
        let two = format!("{pem}{pem}");
        assert_eq!(parse_crls(two.as_bytes(), "a.pem", &s).unwrap().len(), 2);
        let rev = Revocation::new(crls, CrlPolicy::default());
        let now = crate::clock::unix_now();
        let out = rev.check(&name(&a), Some(&spki(&a)), &[0x10, 0x01], now);
        assert!(matches!(
            &out.problems[..],
            [CrlProblem::Revoked {
                entry: RevokedEntry {
                    reason: Some("keyCompromise"),
                    ..
                },
                ..
            }]
        ));
        // DER INTEGER 0x80 is encoded with a leading zero in certificates.
        let out = rev.check(&name(&a), Some(&spki(&a)), &[0x00, 0x80], now);
        assert_eq!(out.problems.len(), 1);
        let out = rev.check(&name(&a), Some(&spki(&a)), &[0x10, 0x02], now);
        assert!(out.problems.is_empty());
        assert!(out.until > now && out.until < now + 31 * 86_400);
    }

    fn pem_of(der: &[u8]) -> String {
        crate::x509::identity::pem_of(der).replace("CERTIFICATE", "X509 CRL")
    }

    #[test]
    fn refuses_foreign_tampered_and_non_crl_signing_issuers() {
        let a = ca("A", vec![]);
        let b = ca("B", vec![]);
        let a2 = ca("A", vec![]); // same name, other key
        let s = store(&[&a]);
        let e = parse_crls(&crl_of(&b, &[], 30), "b.crl", &s).unwrap_err();
        assert!(matches!(e, CrlError::UnknownIssuer { .. }), "{e}");
        assert!(e.to_string().contains("b.crl"));
        let e = parse_crls(&crl_of(&a2, &[], 30), "a2.crl", &s).unwrap_err();
        assert!(matches!(e, CrlError::BadSignature { .. }), "{e}");
        let mut der = crl_of(&a, &[(5, None)], 30);
        let n = der.len();
        der[n - 3] ^= 0x55; // inside the signature
        assert!(parse_crls(&der, "x.crl", &s).is_err());
        let ku = ca("KU", vec![KeyUsagePurpose::KeyCertSign]);
        let ku_with = ca(
            "KU2",
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        );
        let s2 = store(&[&ku, &ku_with]);
        // rcgen itself refuses to sign with an issuer lacking cRLSign; sign with a twin that has it.
        let twin = {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, "KU");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let key = KeyPair::from_pem(&ku.issuer.key().serialize_pem()).unwrap();
            Ca {
                cert: p.self_signed(&key).unwrap(),
                issuer: Issuer::new(p, key),
            }
        };
        let e = parse_crls(&crl_of(&twin, &[], 30), "ku.crl", &s2).unwrap_err();
        assert!(matches!(e, CrlError::NotCrlSigner { .. }), "{e}");
        assert!(parse_crls(&crl_of(&ku_with, &[], 30), "ok.crl", &s2).is_ok());
        assert!(matches!(
            parse_crls(b"hello", "h.crl", &s2),
            Err(CrlError::Empty { .. })
        ));
        assert!(matches!(
            parse_crls(&[0x30, 0x03, 0x01], "g.crl", &s2),
            Err(CrlError::Unparsable { .. })
        ));
    }

    #[test]
    fn policies_for_missing_and_expired_crls() {
        let a = ca("A", vec![]);
        let b = ca("B", vec![]);
        let s = store(&[&a, &b]);
        let now = crate::clock::unix_now();
        let fresh = parse_crls(&crl_of(&a, &[], 30), "a.crl", &s).unwrap();
        let strict = Revocation::new(fresh, CrlPolicy::default());
        // B has no CRL: refused under require_all, unchecked otherwise.
        let out = strict.check(&name(&b), Some(&spki(&b)), &[1], now);
        assert_eq!(out.problems, vec![CrlProblem::NoCrl]);
        let lax = Revocation::new(
            parse_crls(&crl_of(&a, &[], 30), "a.crl", &s).unwrap(),
            CrlPolicy {
                require_all: false,
                expired: ExpiredCrl::Refuse,
            },
        );
        assert!(lax
            .check(&name(&b), Some(&spki(&b)), &[1], now)
            .problems
            .is_empty());
        assert!(strict.covers(&name(&a), &spki(&a)));
        assert!(!strict.covers(&name(&b), &spki(&b)));
        // Unknown issuer key (a chain ending without a trusted issuer).
        assert_eq!(
            strict.check(&name(&b), None, &[1], now).problems,
            vec![CrlProblem::NoCrl]
        );

        // Expired two days ago: refused, or accepted within a 3-day grace, not a 1-day one.
        let expired = || parse_crls(&crl_of(&a, &[(9, None)], -2), "old.crl", &s).unwrap();
        let refuse = Revocation::new(expired(), CrlPolicy::default());
        let out = refuse.check(&name(&a), Some(&spki(&a)), &[1], now);
        assert!(matches!(out.problems[..], [CrlProblem::Expired { .. }]));
        // Expired and revoked: "certificate revoked" is reported last, as OpenSSL does.
        let out = refuse.check(&name(&a), Some(&spki(&a)), &[9], now);
        assert!(matches!(
            out.problems[..],
            [CrlProblem::Expired { .. }, CrlProblem::Revoked { .. }]
        ));
        let grace = |days: i64| {
            Revocation::new(
                expired(),
                CrlPolicy {
                    require_all: true,
                    expired: ExpiredCrl::Grace(days * 86_400),
                },
            )
        };
        let out = grace(3).check(&name(&a), Some(&spki(&a)), &[1], now);
        assert!(out.problems.is_empty());
        assert!(out.until > now);
        let out = grace(1).check(&name(&a), Some(&spki(&a)), &[1], now);
        assert!(matches!(out.problems[..], [CrlProblem::Expired { .. }]));

        // A fresh CRL wins over an expired one of the same CA.
        let mut both = expired();
        both.extend(parse_crls(&crl_of(&a, &[], 30), "new.crl", &s).unwrap());
        let r = Revocation::new(both, CrlPolicy::default());
        assert!(r
            .check(&name(&a), Some(&spki(&a)), &[9], now)
            .problems
            .is_empty());

        // A CRL of the right name but checked against another key: signature failure.
        let a2 = ca("A", vec![]);
        let out = strict.check(&name(&a), Some(&spki(&a2)), &[1], now);
        assert!(matches!(
            out.problems[..],
            [CrlProblem::SignatureFailure { .. }]
        ));
    }

    #[test]
    fn reason_names_are_openssls() {
        assert_eq!(reason_name(1), Some("keyCompromise"));
        assert_eq!(reason_name(2), Some("CACompromise"));
        assert_eq!(reason_name(7), None);
        assert_eq!(normalize_serial(&[0, 0, 5]), &[5]);
        assert_eq!(normalize_serial(&[0]), &[0]);
    }
}
