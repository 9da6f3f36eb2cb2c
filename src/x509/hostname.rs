//! Does a server certificate name the host we meant to reach? OpenSSL's `X509_check_host()`
//! as nginx calls it for `proxy_ssl_verify` (flags 0), so that a certificate nginx accepts for
//! an upstream is accepted here and one it refuses is refused:
//!
//! - DNS names in subjectAltName, compared without regard to ASCII case; a pattern may hold
//!   one `*` in its left-most label (`*.example.com`, `api*.example.com`), never in the last
//!   two labels, matching within one label only;
//! - the subject's commonName (wildcards too) only when the certificate has no DNS
//!   subjectAltName at all, which is what lets X.509 v1 certificates (no extensions,
//!   the name in CN, as `openssl x509 -req` makes them) verify;
//! - for a name that is an IP address, an iPAddress subjectAltName with the same address
//!   (OpenSSL's `X509_check_ip()`; nginx 1.22 itself only compares the text against DNS names
//!   and CN, which still matches here as well).

use std::net::IpAddr;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// Why a certificate does not name the host: every name it does carry, for the log line
/// (`DNS:a.example`, `IP:10.0.0.1`, `CN=a.example`; CN listed only when it was considered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The names found in the certificate, in certificate order.
    pub presented: Vec<String>,
}

/// Checks `name` (a DNS name or an IP address, as in nginx's `proxy_ssl_name`) against the
/// certificate's subjectAltName and, failing DNS names there, its commonName.
pub fn check_host(cert: &X509Certificate<'_>, name: &str) -> Result<(), Mismatch> {
    let ip = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    let mut presented = Vec::new();
    let mut dns_present = false;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for gn in &san.value.general_names {
            match gn {
                GeneralName::DNSName(pattern) => {
                    dns_present = true;
                    presented.push(format!("DNS:{pattern}"));
                    if matches_pattern(pattern.as_bytes(), name.as_bytes(), ip.is_none()) {
                        return Ok(());
                    }
                }
                GeneralName::IPAddress(bytes) => {
                    let addr = ip_from_bytes(bytes);
                    presented.push(match addr {
                        Some(a) => format!("IP:{a}"),
                        None => "IP:<malformed>".to_string(),
                    });
                    if ip.is_some() && addr == ip {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }
    if !dns_present {
        for cn in cert.subject().iter_common_name() {
            let Ok(text) = cn.as_str() else { continue };
            presented.push(format!("CN={text}"));
            if matches_pattern(text.as_bytes(), name.as_bytes(), ip.is_none()) {
                return Ok(());
            }
        }
    }
    Err(Mismatch { presented })
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// OpenSSL's `equal_wildcard()` (wildcards only when `wildcards`, i.e. for DNS names).
fn matches_pattern(pattern: &[u8], subject: &[u8], wildcards: bool) -> bool {
    let star = if wildcards && !(subject.len() > 1 && subject[0] == b'.') {
        valid_star(pattern)
    } else {
        None
    };
    match star {
        None => equal_nocase(pattern, subject),
        Some(i) => wildcard_match(&pattern[..i], &pattern[i + 1..], subject),
    }
}

/// ASCII case-insensitive equality; a NUL in the pattern never matches (OpenSSL's
/// `equal_nocase()`).
fn equal_nocase(pattern: &[u8], subject: &[u8]) -> bool {
    pattern.len() == subject.len()
        && pattern
            .iter()
            .zip(subject)
            .all(|(l, r)| *l != 0 && l.eq_ignore_ascii_case(r))
}

/// The position of the one legal `*` of a pattern (OpenSSL's `valid_star()`): in the first
/// label, at its start or end, not in an IDNA (`xn--`) label, with at least two dots after
/// it, in a pattern that is otherwise a well-formed host name.
fn valid_star(p: &[u8]) -> Option<usize> {
    const START: u8 = 1;
    const IDNA: u8 = 2;
    const HYPHEN: u8 = 4;
    let mut star = None;
    let mut state = START;
    let mut dots = 0;
    for (i, &c) in p.iter().enumerate() {
        match c {
            b'*' => {
                let at_start = state & START != 0;
                let at_end = i == p.len() - 1 || p[i + 1] == b'.';
                if star.is_some() || state & IDNA != 0 || dots > 0 {
                    return None;
                }
                if !at_start && !at_end {
                    return None;
                }
                star = Some(i);
                state &= !START;
            }
            c if c.is_ascii_alphanumeric() => {
                if state & START != 0
                    && p.len() - i >= 4
                    && p[i..i + 4].eq_ignore_ascii_case(b"xn--")
                {
                    state |= IDNA;
                }
                state &= !(HYPHEN | START);
            }
            b'.' => {
                if state & (HYPHEN | START) != 0 {
                    return None;
                }
                state = START;
                dots += 1;
            }
            b'-' => {
                if state & START != 0 {
                    return None;
                }
                state |= HYPHEN;
            }
            _ => return None,
        }
    }
    if state & (START | HYPHEN) != 0 || dots < 2 {
        return None;
    }
    star
}

/// OpenSSL's `wildcard_match()` with flags 0: prefix and suffix around the star match
/// literally; what the star covers is one non-empty run of letters, digits and hyphens.
fn wildcard_match(prefix: &[u8], suffix: &[u8], subject: &[u8]) -> bool {
    if subject.len() < prefix.len() + suffix.len() {
        return false;
    }
    if !equal_nocase(prefix, &subject[..prefix.len()]) {
        return false;
    }
    let end = subject.len() - suffix.len();
    if !equal_nocase(&subject[end..], suffix) {
        return false;
    }
    let covered = &subject[prefix.len()..end];
    let mut allow_idna = false;
    if prefix.is_empty() && suffix.first() == Some(&b'.') {
        if covered.is_empty() {
            return false;
        }
        allow_idna = true;
    }
    if !allow_idna && subject.len() >= 4 && subject[..4].eq_ignore_ascii_case(b"xn--") {
        return false;
    }
    if covered == b"*" {
        return true;
    }
    covered
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(cn: Option<&str>, sans: &[SanType]) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        p.subject_alt_names = sans.to_vec();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn check(der: &[u8], name: &str) -> Result<(), Mismatch> {
        let (_, x) = x509_parser::parse_x509_certificate(der).unwrap();
        check_host(&x, name)
    }

    fn dns(s: &str) -> SanType {
        SanType::DnsName(s.try_into().unwrap())
    }

    #[test]
    fn wildcard_patterns_follow_openssl() {
        let m = |p: &str, s: &str| matches_pattern(p.as_bytes(), s.as_bytes(), true);
        assert!(m("*.example.com", "api.example.com"));
        assert!(m("*.Example.COM", "API.example.com"));
        assert!(
            !m("*.example.com", "example.com"),
            "the star covers one label"
        );
        assert!(!m("*.example.com", "a.b.example.com"), "and only one");
        assert!(!m("*.com", "example.com"), "two dots after the star");
        assert!(
            !m("a.*.example.com", "a.b.example.com"),
            "left-most label only"
        );
        assert!(!m("*.*.example.com", "a.b.example.com"));
        assert!(
            m("api*.example.com", "api1.example.com"),
            "partial at the end"
        );
        assert!(
            m("*api.example.com", "myapi.example.com"),
            "partial at the start"
        );
        assert!(
            !m("a*b.example.com", "axb.example.com"),
            "no star mid-label"
        );
        assert!(
            !m("xn--*.example.com", "xn--a.example.com"),
            "no IDNA wildcards"
        );
        assert!(!m("x*.example.com", "xn--abc.example.com"));
        assert!(
            m("*.example.com", "xn--abc.example.com"),
            "whole-label star"
        );
        assert!(!m("*.example.com", "a_b.example.com"));
        assert!(m("app.internal", "APP.internal"));
        assert!(!m("app.internal", "app.internal."));
        // Without wildcards (IP names) a star is literal.
        assert!(!matches_pattern(b"*.0.0.1", b"127.0.0.1", false));
    }

    #[test]
    fn cn_is_used_only_without_dns_sans() {
        let v1_like = cert(Some("upstreamserver"), &[]);
        assert!(check(&v1_like, "upstreamserver").is_ok());
        assert!(check(&v1_like, "UpstreamServer").is_ok());
        let e = check(&v1_like, "other").unwrap_err();
        assert_eq!(e.presented, vec!["CN=upstreamserver".to_string()]);

        let both = cert(Some("cn.example"), &[dns("san.example")]);
        assert!(check(&both, "san.example").is_ok());
        let e = check(&both, "cn.example").unwrap_err();
        assert_eq!(e.presented, vec!["DNS:san.example".to_string()]);

        // An IP SAN alone does not stop the CN fallback (only DNS SANs do, as OpenSSL).
        let ip_only = cert(
            Some("cn.example"),
            &[SanType::IpAddress("10.0.0.1".parse().unwrap())],
        );
        assert!(check(&ip_only, "cn.example").is_ok());
    }

    #[test]
    fn ip_names_match_ip_sans_exactly() {
        let c = cert(
            Some("localhost"),
            &[
                dns("localhost"),
                SanType::IpAddress("127.0.0.1".parse().unwrap()),
                SanType::IpAddress("::1".parse().unwrap()),
            ],
        );
        assert!(check(&c, "127.0.0.1").is_ok());
        assert!(check(&c, "::1").is_ok());
        assert!(check(&c, "[::1]").is_ok());
        let e = check(&c, "127.0.0.2").unwrap_err();
        assert_eq!(
            e.presented,
            vec![
                "DNS:localhost".to_string(),
                "IP:127.0.0.1".to_string(),
                "IP:::1".to_string()
            ]
        );
        // A wildcard DNS name never matches an IP address.
        let w = cert(None, &[dns("*.0.0.1")]);
        assert!(check(&w, "127.0.0.1").is_err());
    }

    #[test]
    fn no_names_at_all() {
        let c = cert(None, &[]);
        assert_eq!(check(&c, "a.example").unwrap_err().presented.len(), 0);
    }
}
