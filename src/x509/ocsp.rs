//! OCSP stapling of a listener's own certificate from a DER response file (nginx's
//! `ssl_stapling_file`), as `openssl ocsp -respout` writes it.
//!
//! The response is checked once at load: it must be a successful basic OCSP response with a
//! `good` status for this very certificate (serial and issuer name hash; issuer key hash and
//! signature too when the certificate file holds the issuer), current in time. x509-parser has
//! no OCSP support, so a minimal DER walk reads the few fields needed; rustls staples the
//! bytes as they are. A reload reads the file again.

use std::path::Path;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::signature::verify_signed;

/// Why an OCSP response file cannot be stapled; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a DER OCSPResponse.
    #[error("{path}: not a DER OCSP response ({reason}); make one with `openssl ocsp ... -respout FILE`")]
    Malformed {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The responder did not answer `successful`.
    #[error("{path}: the OCSP responder answered `{status}`, not `successful`: there is nothing to staple")]
    NotSuccessful {
        /// The file.
        path: String,
        /// The responseStatus name.
        status: &'static str,
    },
    /// No single response in the file is about this certificate.
    #[error("{path}: the OCSP response is not for this certificate (serial {serial}, issuer {issuer}); fetch the response for it")]
    WrongCertificate {
        /// The file.
        path: String,
        /// The certificate's serial, hex.
        serial: String,
        /// The certificate's issuer, RFC 2253.
        issuer: String,
    },
    /// The response says the certificate is revoked or unknown.
    #[error("{path}: the OCSP response says this certificate is {status}; stapling it would make clients refuse the server")]
    BadStatus {
        /// The file.
        path: String,
        /// `revoked` or `unknown`.
        status: &'static str,
    },
    /// The response is past its nextUpdate (or not yet valid).
    #[error("{path}: the OCSP response {what}; fetch a fresh one")]
    Stale {
        /// The file.
        path: String,
        /// What is wrong with its times.
        what: String,
    },
    /// The issuer is in the certificate file and did not sign the response.
    #[error("{path}: the OCSP response's signature does not verify with the issuer's key or a responder certificate the issuer signed for OCSP signing")]
    BadSignature {
        /// The file.
        path: String,
    },
}

/// A checked OCSP response, ready to staple.
#[derive(Debug, Clone)]
pub struct Staple {
    /// The response as read (rustls sends these bytes).
    pub der: Vec<u8>,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds, when given.
    pub next_update: Option<i64>,
    /// Whether the signature was checked (the certificate file holds the issuer).
    pub signature_checked: bool,
}

/// Reads `path` and checks it is a current, good OCSP response for `chain[0]` (issued by
/// `chain[1]` when the file holds the issuer).
pub fn load_staple(
    path: &Path,
    chain: &[rustls_pki_types::CertificateDer<'_>],
) -> Result<Staple, OcspError> {
    let label = path.display().to_string();
    let der = crate::files::read(path).map_err(|source| OcspError::Read {
        path: label.clone(),
        source,
    })?;
    check(der, chain, &label, crate::clock::unix_now())
}

/// [`load_staple`] on bytes already read, at time `now`. The checks run in this order: a
/// successful response, one about this certificate, status `good`, current in time, and
/// signed by the issuer (or a responder it certified) when the chain holds the issuer.
pub fn check(
    der: Vec<u8>,
    chain: &[rustls_pki_types::CertificateDer<'_>],
    label: &str,
    now: i64,
) -> Result<Staple, OcspError> {
    let bad = |reason: &str| OcspError::Malformed {
        path: label.to_string(),
        reason: reason.to_string(),
    };
    let parsed = parse(&der).map_err(bad)?;
    check_response_status(parsed.status, label)?;
    let Some(leaf_der) = chain.first() else {
        return Err(bad("no certificate to match it with"));
    };
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf_der.as_ref())
        .map_err(|_| bad("the certificate does not parse"))?;
    let issuer = chain
        .get(1)
        .and_then(|d| x509_parser::parse_x509_certificate(d.as_ref()).ok())
        .map(|(_, c)| c)
        .filter(|c| c.tbs_certificate.subject.as_raw() == leaf.tbs_certificate.issuer.as_raw());
    let single = find_single(&parsed, &leaf, issuer.as_ref(), label)?;
    check_cert_status(single, label)?;
    check_times(single, now, label)?;
    let signature_checked = match &issuer {
        Some(issuer) => {
            check_response_signature(&parsed, issuer, label)?;
            true
        }
        None => false,
    };
    let (this_update, next_update) = (single.this_update, single.next_update);
    Ok(Staple {
        der,
        this_update,
        next_update,
        signature_checked,
    })
}

/// The responder must have answered `successful` (0).
fn check_response_status(status: u8, label: &str) -> Result<(), OcspError> {
    if status == 0 {
        return Ok(());
    }
    Err(OcspError::NotSuccessful {
        path: label.to_string(),
        status: match status {
            1 => "malformedRequest",
            2 => "internalError",
            3 => "tryLater",
            5 => "sigRequired",
            6 => "unauthorized",
            _ => "an unknown status",
        },
    })
}

/// The single response about `leaf`: same serial and issuer name hash, and issuer key hash
/// when the issuer is known.
fn find_single<'p>(
    parsed: &'p Parsed<'_>,
    leaf: &X509Certificate<'_>,
    issuer: Option<&X509Certificate<'_>>,
    label: &str,
) -> Result<&'p Single<'p>, OcspError> {
    let serial = leaf.raw_serial();
    let single = parsed.responses.iter().find(|r| {
        strip_zeros(r.serial) == strip_zeros(serial)
            && hash(r.hash_oid, leaf.tbs_certificate.issuer.as_raw())
                .is_some_and(|h| h == r.name_hash)
            && issuer.is_none_or(|i| {
                hash(
                    r.hash_oid,
                    &i.tbs_certificate.subject_pki.subject_public_key.data,
                )
                .is_some_and(|h| h == r.key_hash)
            })
    });
    single.ok_or_else(|| OcspError::WrongCertificate {
        path: label.to_string(),
        serial: super::identity::serial_hex(serial),
        issuer: crate::x509::identity::rfc2253(&leaf.tbs_certificate.issuer),
    })
}

/// The certificate's status must be `good`.
fn check_cert_status(single: &Single<'_>, label: &str) -> Result<(), OcspError> {
    let status = match single.cert_status {
        0 => return Ok(()),
        1 => "revoked",
        _ => "unknown",
    };
    Err(OcspError::BadStatus {
        path: label.to_string(),
        status,
    })
}

/// thisUpdate not in the future and nextUpdate not past, with a few minutes of clock skew,
/// as OpenSSL's OCSP_check_validity allows.
fn check_times(single: &Single<'_>, now: i64, label: &str) -> Result<(), OcspError> {
    const SKEW: i64 = 300;
    if single.this_update > now + SKEW {
        return Err(OcspError::Stale {
            path: label.to_string(),
            what: format!(
                "is not valid before {}",
                crate::clock::iso8601(single.this_update)
            ),
        });
    }
    if let Some(next) = single.next_update {
        if next + SKEW < now {
            return Err(OcspError::Stale {
                path: label.to_string(),
                what: format!("expired at {} (nextUpdate)", crate::clock::iso8601(next)),
            });
        }
    }
    Ok(())
}

/// The response must be signed by the issuer's key, or by a delegated responder: a
/// certificate in the response that the issuer signed for id-kp-OCSPSigning (RFC 6960 4.2.2.2).
fn check_response_signature(
    parsed: &Parsed<'_>,
    issuer: &X509Certificate<'_>,
    label: &str,
) -> Result<(), OcspError> {
    let verify_with = |spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>| {
        let Ok((_, alg)) = x509_parser::x509::AlgorithmIdentifier::from_der(parsed.sig_alg) else {
            return false;
        };
        verify_signed(&alg, parsed.tbs, parsed.signature, spki).is_ok()
    };
    let by_issuer = verify_with(&issuer.tbs_certificate.subject_pki);
    let by_delegate = || {
        parsed.certs.iter().any(|d| {
            let Ok((_, c)) = x509_parser::parse_x509_certificate(d) else {
                return false;
            };
            let issued = c.tbs_certificate.issuer.as_raw()
                == issuer.tbs_certificate.subject.as_raw()
                && verify_signed(
                    &c.signature_algorithm,
                    c.tbs_certificate.as_ref(),
                    &c.signature_value.data,
                    &issuer.tbs_certificate.subject_pki,
                )
                .is_ok();
            let ocsp_signing = matches!(
                c.extended_key_usage(),
                Ok(Some(eku)) if eku.value.ocsp_signing
            );
            issued && ocsp_signing && verify_with(&c.tbs_certificate.subject_pki)
        })
    };
    if by_issuer || by_delegate() {
        return Ok(());
    }
    Err(OcspError::BadSignature {
        path: label.to_string(),
    })
}

/// What a verified OCSP response says about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertStatus {
    /// Not revoked.
    Good,
    /// Revoked at this time (Unix seconds), with the CRL reason's name when given.
    Revoked {
        /// revocationTime.
        at: i64,
        /// The reason's name (`keyCompromise`, ...).
        reason: Option<&'static str>,
    },
    /// The responder does not know the certificate.
    Unknown,
}

/// A verified answer about a client certificate, and until when it may be relied on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The certificate's status.
    pub status: CertStatus,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds, when given.
    pub next_update: Option<i64>,
}

/// Checks a responder's answer about `leaf` (issued by `issuer`, both DER) at `now`: a
/// successful basic response about this very certificate (serial, issuer name and key
/// hashes), current in time, signed by the issuer or a responder it certified for OCSP
/// signing. Unlike a staple, a `revoked` or `unknown` status is an answer, not an error.
pub fn check_answer(
    der: &[u8],
    leaf: &[u8],
    issuer: &[u8],
    label: &str,
    now: i64,
) -> Result<Answer, OcspError> {
    let bad = |reason: &str| OcspError::Malformed {
        path: label.to_string(),
        reason: reason.to_string(),
    };
    let parsed = parse(der).map_err(bad)?;
    check_response_status(parsed.status, label)?;
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|_| bad("the certificate does not parse"))?;
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer)
        .map_err(|_| bad("the issuer does not parse"))?;
    let single = find_single(&parsed, &leaf, Some(&issuer), label)?;
    check_times(single, now, label)?;
    check_response_signature(&parsed, &issuer, label)?;
    let status = match single.cert_status {
        0 => CertStatus::Good,
        1 => CertStatus::Revoked {
            at: single.revoked_at,
            reason: single.revoked_reason.and_then(super::crl::reason_name),
        },
        _ => CertStatus::Unknown,
    };
    Ok(Answer {
        status,
        this_update: single.this_update,
        next_update: single.next_update,
    })
}

/// The DER OCSPRequest for `leaf` issued by `issuer` (one CertID with SHA-1 hashes, as
/// OpenSSL and nginx send; no nonce, which RFC 6960 leaves optional and most responders
/// that pre-sign ignore).
pub fn request(leaf: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> Vec<u8> {
    use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY as SHA1};
    let name_hash = digest(&SHA1, issuer.tbs_certificate.subject.as_raw());
    let key_hash = digest(
        &SHA1,
        &issuer.tbs_certificate.subject_pki.subject_public_key.data,
    );
    let serial = leaf.raw_serial();
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            // tbsRequest
            w.next().write_sequence(|w| {
                // requestList
                w.next().write_sequence(|w| {
                    // Request
                    w.next().write_sequence(|w| {
                        // CertID
                        w.next().write_sequence(|w| {
                            w.next().write_sequence(|w| {
                                w.next()
                                    .write_oid(&yasna::models::ObjectIdentifier::from_slice(&[
                                        1, 3, 14, 3, 2, 26,
                                    ]));
                                w.next().write_null();
                            });
                            w.next().write_bytes(name_hash.as_ref());
                            w.next().write_bytes(key_hash.as_ref());
                            w.next().write_bigint_bytes(serial, true);
                        });
                    });
                });
            });
        });
    })
}

/// The OCSP responder URLs in a certificate's authorityInfoAccess (id-ad-ocsp), in order.
pub fn responder_urls(cert: &X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    const ID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() {
            for d in aia.iter() {
                if let (true, GeneralName::URI(u)) = (
                    d.access_method.to_id_string() == ID_AD_OCSP,
                    &d.access_location,
                ) {
                    out.push(u.to_string());
                }
            }
        }
    }
    out
}

/// The URLs of a certificate's CRL distribution points (fullName URIs), in order.
pub fn crl_distribution_urls(cert: &X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for p in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                    for n in names {
                        if let GeneralName::URI(u) = n {
                            out.push(u.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

struct Single<'a> {
    hash_oid: &'a [u8],
    name_hash: &'a [u8],
    key_hash: &'a [u8],
    serial: &'a [u8],
    /// 0 good, 1 revoked, 2 unknown.
    cert_status: u8,
    /// revocationTime when revoked.
    revoked_at: i64,
    /// The CRL reason code when revoked with one.
    revoked_reason: Option<u8>,
    this_update: i64,
    next_update: Option<i64>,
}

struct Parsed<'a> {
    status: u8,
    tbs: &'a [u8],
    sig_alg: &'a [u8],
    signature: &'a [u8],
    certs: Vec<&'a [u8]>,
    responses: Vec<Single<'a>>,
}

/// One DER element: tag, contents, the whole encoding, and what follows it.
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
    whole: &'a [u8],
}

fn tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), &'static str> {
    let short = "truncated DER";
    let (&tag, rest) = input.split_first().ok_or(short)?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte DER tags are not expected here");
    }
    let (&first, rest) = rest.split_first().ok_or(short)?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err("bad DER length");
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(short);
    }
    let header = input.len() - rest.len();
    Ok((
        Tlv {
            tag,
            body: &rest[..len],
            whole: &input[..header + len],
        },
        &rest[len..],
    ))
}

fn take_tag<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(Tlv<'a>, &'a [u8]), &'static str> {
    let (t, rest) = tlv(input)?;
    if t.tag != tag {
        return Err(what);
    }
    Ok((t, rest))
}

/// id-pkix-ocsp-basic, 1.3.6.1.5.5.7.48.1.1.
const OID_OCSP_BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];

fn parse(der: &[u8]) -> Result<Parsed<'_>, &'static str> {
    let (resp, trailing) = take_tag(der, 0x30, "not a SEQUENCE")?;
    if !trailing.is_empty() {
        return Err("trailing data after the response");
    }
    let (status, rest) = take_tag(resp.body, 0x0a, "no responseStatus")?;
    let status = *status.body.first().ok_or("empty responseStatus")?;
    let mut out = Parsed {
        status,
        tbs: &[],
        sig_alg: &[],
        signature: &[],
        certs: Vec::new(),
        responses: Vec::new(),
    };
    if status != 0 {
        return Ok(out);
    }
    let (bytes, _) = take_tag(rest, 0xa0, "no responseBytes")?;
    let (bytes, _) = take_tag(bytes.body, 0x30, "bad responseBytes")?;
    let (oid, rest) = take_tag(bytes.body, 0x06, "bad responseType")?;
    if oid.body != OID_OCSP_BASIC {
        return Err("not a basic OCSP response");
    }
    let (basic, _) = take_tag(rest, 0x04, "bad response")?;
    let (basic, _) = take_tag(basic.body, 0x30, "bad BasicOCSPResponse")?;
    let (tbs, rest) = take_tag(basic.body, 0x30, "bad tbsResponseData")?;
    let (sig_alg, rest) = take_tag(rest, 0x30, "bad signatureAlgorithm")?;
    let (sig, rest) = take_tag(rest, 0x03, "bad signature")?;
    out.tbs = tbs.whole;
    out.sig_alg = sig_alg.whole;
    out.signature = sig.body.get(1..).ok_or("empty signature")?;
    if let Ok((certs, _)) = take_tag(rest, 0xa0, "") {
        let (seq, _) = take_tag(certs.body, 0x30, "bad certs")?;
        let mut r = seq.body;
        while !r.is_empty() {
            let (c, next) = take_tag(r, 0x30, "bad certificate")?;
            out.certs.push(c.whole);
            r = next;
        }
    }
    // ResponseData: [0] version?, responderID ([1] or [2]), producedAt, responses, [1] ext?
    let mut r = tbs.body;
    let (mut t, mut next) = tlv(r)?;
    if t.tag == 0xa0 {
        r = next;
        (t, next) = tlv(r)?;
    }
    if t.tag != 0xa1 && t.tag != 0xa2 {
        return Err("bad responderID");
    }
    let (_, rest) = take_tag(next, 0x18, "bad producedAt")?;
    let (responses, _) = take_tag(rest, 0x30, "bad responses")?;
    let mut r = responses.body;
    while !r.is_empty() {
        let (single, next) = take_tag(r, 0x30, "bad SingleResponse")?;
        out.responses.push(parse_single(single.body)?);
        r = next;
    }
    Ok(out)
}

fn parse_single(body: &[u8]) -> Result<Single<'_>, &'static str> {
    let (cert_id, rest) = take_tag(body, 0x30, "bad CertID")?;
    let (alg, id_rest) = take_tag(cert_id.body, 0x30, "bad hashAlgorithm")?;
    let (oid, _) = take_tag(alg.body, 0x06, "bad hashAlgorithm")?;
    let (name_hash, id_rest) = take_tag(id_rest, 0x04, "bad issuerNameHash")?;
    let (key_hash, id_rest) = take_tag(id_rest, 0x04, "bad issuerKeyHash")?;
    let (serial, _) = take_tag(id_rest, 0x02, "bad serialNumber")?;
    let (status, rest) = tlv(rest)?;
    let (mut revoked_at, mut revoked_reason) = (0, None);
    let cert_status = match status.tag {
        0x80 => 0,
        0xa1 => {
            // RevokedInfo: revocationTime, [0] EXPLICIT CRLReason OPTIONAL
            let (time, more) = take_tag(status.body, 0x18, "bad revocationTime")?;
            revoked_at = generalized_time(time.body)?;
            if let Ok((reason, _)) = take_tag(more, 0xa0, "") {
                let (code, _) = take_tag(reason.body, 0x0a, "bad revocationReason")?;
                revoked_reason = code.body.first().copied();
            }
            1
        }
        0x82 => 2,
        _ => return Err("bad certStatus"),
    };
    let (this_update, rest) = take_tag(rest, 0x18, "bad thisUpdate")?;
    let this_update = generalized_time(this_update.body)?;
    let next_update = match take_tag(rest, 0xa0, "") {
        Ok((n, _)) => {
            let (t, _) = take_tag(n.body, 0x18, "bad nextUpdate")?;
            Some(generalized_time(t.body)?)
        }
        Err(_) => None,
    };
    Ok(Single {
        hash_oid: oid.body,
        name_hash: name_hash.body,
        key_hash: key_hash.body,
        serial: serial.body,
        cert_status,
        revoked_at,
        revoked_reason,
        this_update,
        next_update,
    })
}

/// `YYYYMMDDHHMMSS[.fff]Z` to Unix seconds.
fn generalized_time(b: &[u8]) -> Result<i64, &'static str> {
    let bad = "bad GeneralizedTime";
    if b.len() < 15 || b.last() != Some(&b'Z') {
        return Err(bad);
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, &'static str> {
        std::str::from_utf8(&b[r])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(bad)
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(8..10)?, num(10..12)?, num(12..14)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad);
    }
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn hash(oid: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::digest;
    let alg = match oid {
        [0x2b, 0x0e, 0x03, 0x02, 0x1a] => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01] => &digest::SHA256,
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02] => &digest::SHA384,
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03] => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(alg, data).as_ref().to_vec())
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|x| *x != 0)
        .unwrap_or(b.len().saturating_sub(1));
    &b[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(generalized_time(b"20000301000000Z").unwrap(), 951_868_800);
        let t = 1_767_225_600; // 2026-01-01T00:00:00Z
        assert_eq!(crate::clock::iso8601(t), "2026-01-01T00:00:00Z");
        assert_eq!(generalized_time(b"20260101000000Z").unwrap(), t);
        assert_eq!(generalized_time(b"20260101000000.5Z").unwrap(), t);
        assert!(generalized_time(b"2026010100000Z").is_err());
        assert!(generalized_time(b"20261301000000Z").is_err());
    }

    #[test]
    fn garbage_is_refused_with_the_file_name() {
        let e = check(b"not der".to_vec(), &[], "x.der", 0).unwrap_err();
        assert!(
            e.to_string().starts_with("x.der: not a DER OCSP response"),
            "{e}"
        );
        // tryLater: SEQUENCE { ENUMERATED 3 }
        let e = check(vec![0x30, 0x03, 0x0a, 0x01, 0x03], &[], "t.der", 0).unwrap_err();
        assert!(
            matches!(
                e,
                OcspError::NotSuccessful {
                    status: "tryLater",
                    ..
                }
            ),
            "{e}"
        );
        assert!(tlv(&[0x30, 0x85, 0, 0, 0, 0, 1]).is_err());
        assert!(tlv(&[0x30, 0x05, 0]).is_err());
    }
}
