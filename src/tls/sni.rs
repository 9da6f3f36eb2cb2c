//! Choosing the server certificate by SNI, as nginx chooses a `server` block's certificate.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The certificates of one listener: exact names, wildcard suffixes and a default.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `.example.com`.
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// Builds a resolver; the first certificate is the default for clients that send no SNI or
    /// an unknown name (nginx uses the default server's certificate the same way).
    pub fn new(default: Arc<CertifiedKey>) -> Self {
        SniResolver {
            exact: HashMap::new(),
            wildcard: Vec::new(),
            default,
        }
    }

    /// Adds a name (`host.example.com` or `*.example.com`) served by `key`; the first
    /// certificate to claim a name keeps it.
    pub fn add(&mut self, name: &str, key: Arc<CertifiedKey>) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(suffix) = name.strip_prefix('*') {
            if !self.wildcard.iter().any(|(s, _)| s == suffix) {
                self.wildcard.push((suffix.to_string(), key));
            }
        } else {
            self.exact.entry(name).or_insert(key);
        }
    }

    /// The certificate for a server name.
    pub fn lookup(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name else {
            return self.default.clone();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        // A wildcard covers exactly one label, as in RFC 6125.
        if let Some(dot) = name.find('.') {
            let suffix = &name[dot..];
            if let Some((_, k)) = self.wildcard.iter().find(|(s, _)| s == suffix) {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.lookup(client_hello.server_name()))
    }
}

/// The DNS names a certificate claims: its DNS SANs, else its subject CN.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for gn in &san.value.general_names {
            if let GeneralName::DNSName(n) = gn {
                names.push((*n).to_string());
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Arc<CertifiedKey> {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let der = rustls_pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der).unwrap();
        Arc::new(CertifiedKey::new(vec![ck.cert.der().clone()], signer))
    }

    #[test]
    fn picks_exact_then_wildcard_then_default() {
        let a = key("a.example.com");
        let w = key("*.example.net");
        let mut r = SniResolver::new(a.clone());
        r.add("a.example.com", a.clone());
        r.add("*.example.net", w.clone());
        assert!(Arc::ptr_eq(&r.lookup(Some("A.Example.com")), &a));
        assert!(Arc::ptr_eq(&r.lookup(Some("x.example.net")), &w));
        assert!(Arc::ptr_eq(&r.lookup(Some("x.y.example.net")), &a));
        assert!(Arc::ptr_eq(&r.lookup(None), &a));
    }

    #[test]
    fn names_come_from_sans() {
        let ck = rcgen::generate_simple_self_signed(vec!["h.example".into(), "*.w.example".into()])
            .unwrap();
        assert_eq!(
            certificate_names(ck.cert.der()),
            vec!["h.example".to_string(), "*.w.example".to_string()]
        );
        assert!(certificate_names(b"junk").is_empty());
    }
}
