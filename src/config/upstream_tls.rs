//! `[upstream.tls]` resolved: every file loaded and checked, every error named with its
//! line and key, nginx's defaults for `proxy_ssl_*` applied where ringgate's differ by
//! design (verification is on unless turned off, and turning it off is loud).

use std::sync::Arc;

use rustls::sign::CertifiedKey;
use toml::Spanned;

use super::raw::RawUpstreamTls;
use super::{span, Resolver};
use crate::tls::TlsVersions;
use crate::upstream::tls::{UpstreamTls, UpstreamTlsError, UpstreamTlsParams};
use crate::x509::trust::TrustStore;

impl Resolver<'_> {
    /// Resolves `[upstream.tls]` of the upstream `name` (`key` is `upstream[i]`).
    pub(super) fn upstream_tls(
        &mut self,
        key: &str,
        name: &str,
        raw: &Spanned<RawUpstreamTls>,
    ) -> Option<Arc<UpstreamTls>> {
        let t = raw.get_ref();
        let before = self.errs.len();
        let verify = t.verify.as_ref().is_none_or(|v| *v.get_ref());
        let depth = t.verify_depth.as_ref().map_or(1, |d| *d.get_ref());
        let store = self.upstream_trust(key, raw, verify);
        let client_cert = self.upstream_client_cert(key, t);
        let versions = match &t.protocols {
            None => TlsVersions::Both,
            Some(p) => self.protocols(&format!("{key}.tls.protocols"), p),
        };
        let tls_name = self.upstream_tls_name(key, name, raw);
        if self.errs.len() != before {
            return None;
        }
        if !verify {
            log::warn!(
                "upstream `{name}`: [upstream.tls] verify = false: the upstream's certificate is NOT verified; anyone on the path to it can impersonate it (nginx proxy_ssl_verify off)"
            );
        }
        let params = UpstreamTlsParams {
            verify: if verify {
                store.map(|s| (s, depth))
            } else {
                None
            },
            name: tls_name,
            send_sni: t.server_name.as_ref().is_none_or(|v| *v.get_ref()),
            client_cert,
            versions,
            session_reuse: t.session_reuse.as_ref().is_none_or(|v| *v.get_ref()),
        };
        match UpstreamTls::new(params) {
            Ok(tls) => Some(Arc::new(tls)),
            Err(e) => {
                self.errs
                    .push(Some(raw.span()), &format!("{key}.tls"), e.to_string());
                None
            }
        }
    }

    /// `trusted_certificate`: required while `verify` is on, and loaded even when it is off,
    /// so that `ringgate check` reports a bad file.
    fn upstream_trust(
        &mut self,
        key: &str,
        raw: &Spanned<RawUpstreamTls>,
        verify: bool,
    ) -> Option<Arc<TrustStore>> {
        let t = raw.get_ref();
        let k = format!("{key}.tls.trusted_certificate");
        match &t.trusted_certificate {
            Some(ca) => {
                let path = self.path(ca.get_ref());
                match crate::files::read(&path) {
                    Ok(bytes) => match TrustStore::from_pem(&bytes) {
                        Ok(s) => Some(Arc::new(s)),
                        Err(e) => {
                            self.errs
                                .push(span(ca), &k, format!("{}: {e}", path.display()));
                            None
                        }
                    },
                    Err(e) => {
                        self.errs.push(
                            span(ca),
                            &k,
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
            None if verify => {
                let at = t.verify.as_ref().map_or(raw.span(), |v| v.span());
                self.errs.push(
                    Some(at),
                    &k,
                    "the upstream's certificate is verified (verify = true, the default) against trusted_certificate, the CA bundle (PEM) it must chain to (nginx proxy_ssl_trusted_certificate); set it, or verify = false",
                );
                None
            }
            None => None,
        }
    }

    /// `certificate` and `key`: the client certificate presented to the upstream, both or
    /// neither.
    fn upstream_client_cert(&mut self, key: &str, t: &RawUpstreamTls) -> Option<Arc<CertifiedKey>> {
        let k = |s: &str| format!("{key}.tls.{s}");
        match (&t.certificate, &t.key) {
            (Some(c), Some(kf)) => {
                let cert_path = self.path(c.get_ref());
                let key_path = self.path(kf.get_ref());
                match crate::x509::pem::load_certified_key_checked(
                    &cert_path,
                    &key_path,
                    self.allow_insecure_keys,
                ) {
                    Ok(ck) => Some(ck),
                    Err(e) => {
                        let (at, which) = if e.path() == key_path.display().to_string() {
                            (span(kf), "key")
                        } else {
                            (span(c), "certificate")
                        };
                        self.errs.push(at, &k(which), e.to_string());
                        None
                    }
                }
            }
            (Some(c), None) => {
                self.errs.push(
                    span(c),
                    &k("key"),
                    "certificate needs key, the private key of the client certificate (nginx proxy_ssl_certificate_key)",
                );
                None
            }
            (None, Some(kf)) => {
                self.errs.push(
                    span(kf),
                    &k("certificate"),
                    "key needs certificate, the client certificate chain to present (nginx proxy_ssl_certificate)",
                );
                None
            }
            (None, None) => None,
        }
    }

    /// `name` (nginx `proxy_ssl_name`; default: the upstream's host): the name sent by SNI
    /// and verified, which must be a host name or an address.
    fn upstream_tls_name(
        &mut self,
        key: &str,
        name: &str,
        raw: &Spanned<RawUpstreamTls>,
    ) -> String {
        let t = raw.get_ref();
        let tls_name = match &t.name {
            Some(n) => n.get_ref().trim().to_string(),
            None => host_of(name).to_string(),
        };
        let host = tls_name.trim_start_matches('[').trim_end_matches(']');
        if rustls_pki_types::ServerName::try_from(host).is_err() {
            let at = t.name.as_ref().map_or(raw.span(), |n| n.span());
            let e = UpstreamTlsError::BadName(tls_name.clone());
            let hint = if t.name.is_none() {
                format!(" (taken from the upstream's name `{name}`; set name)")
            } else {
                String::new()
            };
            self.errs
                .push(Some(at), &format!("{key}.tls.name"), format!("{e}{hint}"));
        }
        tls_name
    }
}

/// The host part of `host[:port]` or `[v6]:port`: nginx's default `proxy_ssl_name` is
/// `$proxy_host` without its port.
pub(super) fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return &rest[..end];
        }
        return authority;
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;
    use crate::config::parse_str;
    use std::path::Path;

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn every_upstream_tls_error_at_once_with_line_and_key() {
        let text = r#"
[[listener]]
listen = "127.0.0.1:0"
[[listener.location]]
path = "/a"
proxy_pass = "https://plain"
[[listener.location]]
path = "/b"
proxy_pass = "http://secure"
[[listener.location]]
path = "/c"
proxy_pass = "https://10.0.0.1:8443"

[[upstream]]
name = "plain"
servers = ["127.0.0.1:1"]

[[upstream]]
name = "secure"
servers = ["127.0.0.1:2"]
[upstream.tls]
verify_depth = 2
certificate = "/nonexistent/client.pem"
protocols = ["TLSv1.1"]

[[upstream]]
name = "files"
servers = ["127.0.0.1:3"]
[upstream.tls]
trusted_certificate = "/nonexistent/ca.pem"
certificate = "/nonexistent/client.pem"
key = "/nonexistent/client.key"
name = "not a name"
"#;
        let err = parse_str(text, Path::new("u.toml")).unwrap_err();
        let all = err.to_string();
        let has = |line: usize, key: &str, what: &str| {
            assert!(
                err.0
                    .iter()
                    .any(|e| e.line == Some(line) && e.key == key && e.message.contains(what)),
                "no error at line {line} key {key} containing {what:?}:\n{all}"
            );
        };
        has(
            line_of(text, "https://plain"),
            "listener[0].location[0].proxy_pass",
            "add [upstream.tls]",
        );
        has(
            line_of(text, "http://secure"),
            "listener[0].location[1].proxy_pass",
            "write https://secure",
        );
        has(
            line_of(text, "https://10.0.0.1"),
            "listener[0].location[2].proxy_pass",
            "declare [[upstream]]",
        );
        has(
            line_of(text, "[upstream.tls]"),
            "upstream[1].tls.trusted_certificate",
            "verify = false",
        );
        has(
            line_of(text, "certificate = \"/nonexistent/client.pem"),
            "upstream[1].tls.key",
            "needs key",
        );
        has(
            line_of(text, "TLSv1.1"),
            "upstream[1].tls.protocols",
            "obsolete",
        );
        has(
            line_of(text, "ca.pem"),
            "upstream[2].tls.trusted_certificate",
            "/nonexistent/ca.pem",
        );
        has(
            line_of(text, "ca.pem") + 1,
            "upstream[2].tls.certificate",
            "client.pem",
        );
        has(
            line_of(text, "not a name"),
            "upstream[2].tls.name",
            "not a host name",
        );
        assert_eq!(err.0.len(), 9, "{all}");
    }

    #[test]
    fn names_default_to_the_upstream_host_and_must_be_hosts() {
        let text = r#"
[[listener]]
listen = "127.0.0.1:0"
[[listener.location]]
path = "/"
proxy_pass = "https://app.internal:8443"

[[upstream]]
name = "app.internal:8443"
servers = ["127.0.0.1:1"]
[upstream.tls]
verify = false
server_name = false

[[upstream]]
name = "app#2"
servers = ["127.0.0.1:1"]
[upstream.tls]
verify = false
"#;
        let err = parse_str(text, Path::new("n.toml")).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].key, "upstream[1].tls.name");
        assert!(err.0[0].message.contains("set name"), "{err}");
        let ok = text.replace("name = \"app#2\"", "name = \"app2\"");
        let cfg = parse_str(&ok, Path::new("n.toml")).unwrap();
        let tls = cfg.upstreams[0].tls.as_ref().unwrap();
        assert_eq!(tls.name(), "app.internal");
        assert!(!tls.verify());
    }

    #[test]
    fn host_of_strips_ports() {
        assert_eq!(host_of("app"), "app");
        assert_eq!(host_of("app.internal:8443"), "app.internal");
        assert_eq!(host_of("10.0.0.1:443"), "10.0.0.1");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("::1"), "::1");
    }
}
