//! The identity in a client certificate, extracted once per connection so each request only
//! copies ready-made strings: DNs exactly as nginx prints them (RFC 2253), serial, fingerprint,
//! validity, and the certificate itself escaped for a header.

use x509_parser::der_parser::asn1_rs::{Tag, ToDer};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// What the proxy knows about a verified (or presented) client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `$ssl_client_s_dn`.
    pub subject_dn: String,
    /// `$ssl_client_i_dn`.
    pub issuer_dn: String,
    /// `$ssl_client_serial`: uppercase hex.
    pub serial: String,
    /// `$ssl_client_fingerprint`: SHA-1 of the DER, lowercase hex.
    pub fingerprint_sha1: String,
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint_sha256: String,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// `$ssl_client_escaped_cert`: the PEM, percent-encoded.
    pub escaped_pem: String,
}

impl Identity {
    /// Parses a leaf certificate; None when it is not X.509 (a verified chain always is).
    pub fn from_der(der: &[u8]) -> Option<Identity> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        Some(Identity {
            subject_dn: rfc2253(cert.subject()),
            issuer_dn: rfc2253(cert.issuer()),
            serial: serial_hex(cert.raw_serial()),
            fingerprint_sha1: hex_digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der),
            fingerprint_sha256: hex_digest(&aws_lc_rs::digest::SHA256, der),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            escaped_pem: escape_component(&pem_of(der)),
        })
    }

    /// `$ssl_client_v_remain`: whole days until notAfter, 0 once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        ((self.not_after - now) / 86_400).max(0)
    }
}

fn hex_digest(alg: &'static aws_lc_rs::digest::Algorithm, data: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(alg, data);
    let mut s = String::with_capacity(d.as_ref().len() * 2);
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// OpenSSL's i2a_ASN1_INTEGER: the magnitude's bytes in uppercase hex (no sign byte).
fn serial_hex(raw: &[u8]) -> String {
    let trimmed = match raw.iter().position(|&b| b != 0) {
        Some(i) => &raw[i..],
        None => &raw[raw.len().saturating_sub(1)..],
    };
    let mut s = String::with_capacity(trimmed.len() * 2);
    for b in trimmed {
        s.push_str(&format!("{b:02X}"));
    }
    if s.is_empty() {
        s.push_str("00");
    }
    s
}

/// PEM text of a DER certificate, 64 columns, as OpenSSL writes it.
pub fn pem_of(der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters (nginx's
/// `$ssl_client_escaped_cert`).
pub fn escape_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// OpenSSL's short name for an attribute type, or None to print the dotted OID.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

/// A DN as OpenSSL's `X509_NAME_print_ex(XN_FLAG_RFC2253)` prints it, which is nginx's
/// `$ssl_client_s_dn`: RDNs last-to-first joined by `,`, multi-valued RDNs by `+`, special
/// characters escaped with `\`, bytes outside printable ASCII as `\XX`.
pub fn rfc2253(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            let value = attr.attr_value();
            match short_name(&oid) {
                Some(sn) => out.push_str(sn),
                None => out.push_str(&oid),
            }
            out.push('=');
            let text: Option<Vec<u8>> = match value.tag() {
                Tag::Utf8String
                | Tag::PrintableString
                | Tag::Ia5String
                | Tag::T61String
                | Tag::VisibleString
                | Tag::NumericString => Some(value.data.to_vec()),
                Tag::BmpString => decode_bmp(value.data).map(String::into_bytes),
                Tag::UniversalString => decode_universal(value.data).map(String::into_bytes),
                _ => None,
            };
            match text {
                Some(bytes) if short_name(&oid).is_some() => escape_2253(&mut out, &bytes),
                _ => {
                    // Unknown type or attribute: `#` and the hex of the whole DER value.
                    out.push('#');
                    let der = attr.attr_value().to_der_vec().unwrap_or_default();
                    for b in der {
                        out.push_str(&format!("{b:02X}"));
                    }
                }
            }
        }
    }
    out
}

fn escape_2253(out: &mut String, bytes: &[u8]) {
    let last = bytes.len().saturating_sub(1);
    for (i, &b) in bytes.iter().enumerate() {
        let special = b",+\"\\<>;".contains(&b)
            || (i == 0 && (b == b'#' || b == b' '))
            || (i == last && b == b' ');
        if special {
            out.push('\\');
            out.push(b as char);
        } else if !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
}

fn decode_bmp(data: &[u8]) -> Option<String> {
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

fn decode_universal(data: &[u8]) -> Option<String> {
    data.chunks_exact(4)
        .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(dn: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_is_reversed_and_escaped_like_nginx() {
        let der = cert_with(&[
            (rcgen::DnType::CountryName, "CN"),
            (rcgen::DnType::OrganizationName, "My, Company"),
            (rcgen::DnType::OrganizationalUnitName, "Client"),
            (rcgen::DnType::CommonName, " client+1"),
        ]);
        let id = Identity::from_der(&der).unwrap();
        assert_eq!(
            id.subject_dn,
            "CN=\\ client\\+1,OU=Client,O=My\\, Company,C=CN"
        );
        assert_eq!(id.subject_dn, id.issuer_dn);
        assert_eq!(id.fingerprint_sha1.len(), 40);
        assert!(id
            .escaped_pem
            .starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
    }

    #[test]
    fn serial_is_uppercase_hex_without_sign_byte() {
        assert_eq!(serial_hex(&[0x00, 0x9f, 0x01]), "9F01");
        assert_eq!(serial_hex(&[0x10, 0x00]), "1000");
        assert_eq!(serial_hex(&[0x00]), "00");
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
        assert_eq!(base64_encode(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }
}
