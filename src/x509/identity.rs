//! The identity in a client certificate, extracted once per presented chain (and cached per
//! core with the chain's verdict) so each request only copies ready-made strings: DNs exactly
//! as nginx prints them (RFC 2253), each DN attribute by name, SANs by type, a SPIFFE ID,
//! serial, fingerprints, validity, and the certificate itself encoded for headers.

use std::net::IpAddr;

use x509_parser::der_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::extensions::GeneralName;
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
    /// Subject attributes by name, decoded; each may repeat (several OUs are common).
    pub attributes: Vec<(DnAttr, String)>,
    /// DNS names from the subjectAltName.
    pub dns: Vec<String>,
    /// IP addresses from the subjectAltName.
    pub ips: Vec<IpAddr>,
    /// URIs from the subjectAltName.
    pub uris: Vec<String>,
    /// Email addresses from the subjectAltName (rfc822Name).
    pub emails: Vec<String>,
    /// The first `spiffe://` URI SAN (a SPIFFE X.509-SVID has exactly one).
    pub spiffe_id: Option<String>,
    /// The leaf's DER in base64 (RFC 9440 `Client-Cert`, between colons).
    pub der_base64: String,
    /// The intermediates the client sent, each DER in base64 (RFC 9440 `Client-Cert-Chain`).
    pub chain_base64: Vec<String>,
}

/// The subject attributes roles and bindings match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnAttr {
    /// commonName.
    Cn,
    /// organizationalUnitName.
    Ou,
    /// organizationName.
    O,
    /// Any other attribute (kept for completeness of `attributes`, never matched by roles).
    Other,
}

impl Identity {
    /// Parses a leaf certificate; None when it is not X.509 (a verified chain always is).
    pub fn from_der(der: &[u8]) -> Option<Identity> {
        Self::from_chain(der, &[])
    }

    /// Parses a presented chain: the leaf's identity, plus the intermediates for RFC 9440.
    pub fn from_chain(der: &[u8], intermediates: &[&[u8]]) -> Option<Identity> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut id = Identity {
            subject_dn: rfc2253(cert.subject()),
            issuer_dn: rfc2253(cert.issuer()),
            serial: serial_hex(cert.raw_serial()),
            fingerprint_sha1: hex_digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der),
            fingerprint_sha256: hex_digest(&aws_lc_rs::digest::SHA256, der),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            escaped_pem: escape_component(&pem_of(der)),
            der_base64: base64_encode(der),
            chain_base64: intermediates.iter().map(|c| base64_encode(c)).collect(),
            ..Identity::default()
        };
        for rdn in cert.subject().iter_rdn() {
            for attr in rdn.iter() {
                let which = match attr.attr_type().to_id_string().as_str() {
                    "2.5.4.3" => DnAttr::Cn,
                    "2.5.4.11" => DnAttr::Ou,
                    "2.5.4.10" => DnAttr::O,
                    _ => DnAttr::Other,
                };
                if let Some(text) = attr_text(attr.attr_value()) {
                    id.attributes.push((which, text));
                }
            }
        }
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for gn in &san.value.general_names {
                match gn {
                    GeneralName::DNSName(n) => id.dns.push((*n).to_string()),
                    GeneralName::URI(u) => {
                        if id.spiffe_id.is_none() && u.starts_with("spiffe://") {
                            id.spiffe_id = Some((*u).to_string());
                        }
                        id.uris.push((*u).to_string());
                    }
                    GeneralName::RFC822Name(e) => id.emails.push((*e).to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            id.ips.push(IpAddr::from(a));
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            id.ips.push(IpAddr::from(a));
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(id)
    }

    /// The values of one subject attribute, in certificate order.
    pub fn attr(&self, which: DnAttr) -> impl Iterator<Item = &str> {
        self.attributes
            .iter()
            .filter(move |(a, _)| *a == which)
            .map(|(_, v)| v.as_str())
    }

    /// Envoy's `X-Forwarded-Client-Cert` element for this certificate:
    /// `Hash=..;Cert="..";Subject="..";URI=..;DNS=..`.
    pub fn xfcc(&self) -> String {
        let mut out = String::with_capacity(self.escaped_pem.len() + 256);
        out.push_str("Hash=");
        out.push_str(&self.fingerprint_sha256);
        out.push_str(";Cert=\"");
        out.push_str(&self.escaped_pem);
        out.push_str("\";Subject=\"");
        for c in self.subject_dn.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        for (key, values) in [("URI", &self.uris), ("DNS", &self.dns)] {
            for v in values {
                out.push(';');
                out.push_str(key);
                out.push('=');
                xfcc_value(&mut out, v);
            }
        }
        out
    }

    /// RFC 9440 `Client-Cert`: the DER as a structured-field byte sequence.
    pub fn rfc9440_cert(&self) -> String {
        format!(":{}:", self.der_base64)
    }

    /// RFC 9440 `Client-Cert-Chain`: each intermediate as a byte sequence, comma separated.
    pub fn rfc9440_chain(&self) -> String {
        let mut out = String::new();
        for (i, c) in self.chain_base64.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push(':');
            out.push_str(c);
            out.push(':');
        }
        out
    }

    /// `$ssl_client_v_remain`: whole days until notAfter, 0 once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        ((self.not_after - now) / 86_400).max(0)
    }
}

/// An XFCC value, quoted when it holds a separator (Envoy's rule).
fn xfcc_value(out: &mut String, v: &str) {
    if v.contains([',', ';', '=', '"']) {
        out.push('"');
        for c in v.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// A DN attribute's value as text, for the string types certificates use.
fn attr_text(value: &Any<'_>) -> Option<String> {
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::T61String
        | Tag::VisibleString
        | Tag::NumericString => String::from_utf8(value.data.to_vec()).ok(),
        Tag::BmpString => decode_bmp(value.data),
        Tag::UniversalString => decode_universal(value.data),
        _ => None,
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

/// A serial number (the content bytes of its DER INTEGER) as OpenSSL prints it with
/// `i2a_ASN1_INTEGER`: nginx's `$ssl_client_serial`, `openssl x509 -serial`, the `serial` and
/// `index.txt` files of `openssl ca`. Upper-case hex, two digits per byte, no separators.
/// Leading zero bytes (the sign padding DER adds before a byte >= 0x80, or any other) are left
/// out; a value that is all zero bytes prints as `00`, and so does empty input (a zero-length
/// INTEGER, which OpenSSL also prints as `00`).
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    let magnitude = &raw[start..];
    if magnitude.is_empty() {
        return "00".into();
    }
    let mut s = String::with_capacity(magnitude.len() * 2);
    for b in magnitude {
        s.push_str(&format!("{b:02X}"));
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

/// Standard base64 with padding (RFC 4648 §4).
pub(crate) fn base64_encode(data: &[u8]) -> String {
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
        assert_eq!(id.attr(DnAttr::Cn).collect::<Vec<_>>(), [" client+1"]);
        assert_eq!(id.attr(DnAttr::O).collect::<Vec<_>>(), ["My, Company"]);
    }

    #[test]
    fn attributes_sans_and_spiffe_are_parsed() {
        let mut params = rcgen::CertificateParams::new(vec!["svc.example".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        // (rcgen keeps one value per attribute type; repeated OUs are covered by the
        // openssl-made certificates in the integration tests.)
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Corp");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, "Ops");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "a");
        params.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from("spiffe://corp/ns/prod/sa/web").unwrap(),
        ));
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("10.1.2.3".parse().unwrap()));
        params.subject_alt_names.push(rcgen::SanType::Rfc822Name(
            rcgen::string::Ia5String::try_from("ops@example.com").unwrap(),
        ));
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let id = Identity::from_chain(&der, &[b"\x01\x02"]).unwrap();
        assert_eq!(id.attr(DnAttr::Ou).collect::<Vec<_>>(), ["Ops"]);
        assert_eq!(id.attr(DnAttr::O).collect::<Vec<_>>(), ["Corp"]);
        assert_eq!(id.dns, ["svc.example"]);
        assert_eq!(
            id.spiffe_id.as_deref(),
            Some("spiffe://corp/ns/prod/sa/web")
        );
        assert_eq!(id.ips, ["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(id.emails, ["ops@example.com"]);
        assert_eq!(id.rfc9440_chain(), ":AQI=:");
        assert!(id.rfc9440_cert().starts_with(":MII"));
        let x = id.xfcc();
        assert!(
            x.starts_with(&format!("Hash={};Cert=\"-----BEGIN", id.fingerprint_sha256)),
            "{x}"
        );
        assert!(
            x.ends_with(
                "\";Subject=\"CN=a,OU=Ops,O=Corp\";URI=spiffe://corp/ns/prod/sa/web;DNS=svc.example"
            ),
            "{x}"
        );
    }

    #[test]
    fn serial_is_uppercase_hex_without_sign_byte() {
        assert_eq!(serial_hex(&[0x00, 0x9f, 0x01]), "9F01");
        assert_eq!(serial_hex(&[0x10, 0x00]), "1000");
        assert_eq!(serial_hex(&[0x00]), "00");
    }

    #[test]
    fn serial_hex_of_zero_empty_and_padded_values() {
        assert_eq!(serial_hex(&[]), "00");
        assert_eq!(serial_hex(&[0x00, 0x00]), "00");
        assert_eq!(serial_hex(&[0x00, 0x00, 0x7f]), "7F");
        assert_eq!(serial_hex(&[0x01]), "01");
        assert_eq!(serial_hex(&[0x0a, 0x00, 0xbc]), "0A00BC");
        assert_eq!(serial_hex(&[0xff; 20]), "FF".repeat(20));
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
        assert_eq!(base64_encode(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }
}
