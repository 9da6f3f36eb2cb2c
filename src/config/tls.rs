//! `[listener.tls]` resolved: certificates and keys, protocols, client verification, CRLs
//! and session resumption.

use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use rustls::sign::CertifiedKey;
use rustls::DistinguishedName;

use super::raw::RawTls;
use super::words::{Keyword, TlsProtocol, Word};
use super::{span, Resolver};
use crate::tls::client_auth::{ClientAuthMode, FailureMode};
use crate::tls::tickets::{TicketKey, TicketKeys};
use crate::tls::{ServerTls, TlsVersions};
use crate::x509::trust::TrustStore;

/// A listener's client-certificate modes.
struct ClientModes {
    /// `verify_client` as configured: what locations without their own require.
    configured: ClientAuthMode,
    /// What the handshake asks: optional when a location relaxes or adds the requirement.
    handshake: ClientAuthMode,
    /// `verify_failure`.
    failure: FailureMode,
    /// `verify_depth`.
    depth: u32,
}

impl Resolver<'_> {
    /// Resolves `[listener.tls]`. Returns the material and the configured `verify_client`;
    /// the handshake asks for a certificate leniently (optional) when a location relaxes or
    /// adds the requirement, and the per-location check enforces it per request.
    pub(super) fn tls(
        &mut self,
        key: &str,
        name: &str,
        t: &RawTls,
        loc_modes: &[ClientAuthMode],
        http2: bool,
    ) -> Option<(Arc<ServerTls>, ClientAuthMode)> {
        let before = self.errs_len();
        let mut staples = Vec::new();
        let certs = self.certificates(key, t, &mut staples);
        let versions = match &t.protocols {
            None => TlsVersions::Both,
            Some(p) => self.protocols(&format!("{key}.tls.protocols"), p),
        };
        let modes = self.client_modes(key, t, loc_modes);
        let (store, hints) = self.client_trust(key, t, modes.handshake);
        let (revocation, crl_sources) = self.revocation(key, t, store.as_deref(), modes.handshake);
        let (crl_refresh, ocsp_refresh) = self.refresh_periods(key, t);
        let ocsp = self.client_ocsp(key, t, modes.handshake);
        let fetch = crate::fetch::FetchPlan {
            crls: crl_sources,
            crl_refresh,
            staples,
            ocsp_refresh,
            discover_from: Self::discover_from(t),
        };
        let session_timeout = self.duration(
            &t.session_timeout,
            &format!("{key}.tls.session_timeout"),
            Duration::from_secs(300),
        );
        let session_timeout = u32::try_from(session_timeout.as_secs()).unwrap_or(u32::MAX);
        let ticket_keys = self.ticket_keys(key, t);
        let session_cache = t.session_cache.as_ref().map_or(10_000, |v| *v.get_ref());
        if self.errs_len() != before || certs.is_empty() {
            return None;
        }
        let tickets = self.tickets(key, name, t, ticket_keys)?;
        let spec = crate::tls::ServerTlsSpec {
            certs,
            versions,
            mode: modes.handshake,
            failure: modes.failure,
            store,
            hints,
            depth: modes.depth,
            revocation,
            tickets,
            session_cache,
            session_timeout,
            http2,
            fetch,
            ocsp,
        };
        match ServerTls::new(spec) {
            Ok(s) => Some((Arc::new(s), modes.configured)),
            Err(e) => {
                self.errs
                    .push(span(&t.certificates), &format!("{key}.tls"), e.to_string());
                None
            }
        }
    }

    /// `certificates`: each chain and key loaded and checked, with its OCSP staple and the
    /// names it answers for by SNI.
    fn certificates(
        &mut self,
        key: &str,
        t: &RawTls,
        staples: &mut Vec<crate::fetch::StapleSource>,
    ) -> Vec<(Arc<CertifiedKey>, Vec<String>)> {
        let mut certs = Vec::new();
        if t.certificates.get_ref().is_empty() {
            self.errs.push(
                span(&t.certificates),
                &format!("{key}.tls.certificates"),
                "at least one certificate is needed",
            );
        }
        for (j, c) in t.certificates.get_ref().iter().enumerate() {
            let ck = format!("{key}.tls.certificates[{j}]");
            let cert_path = self.path(c.cert.get_ref());
            let key_path = self.path(c.key.get_ref());
            match crate::x509::pem::load_certified_key_checked(
                &cert_path,
                &key_path,
                self.allow_insecure_keys,
            ) {
                Ok(k) => {
                    let names: Vec<String> =
                        c.server_names.iter().map(|n| n.get_ref().clone()).collect();
                    let k = match &c.ocsp {
                        None => k,
                        Some(o) if o.get_ref() == "fetch" => {
                            self.staple_fetched(&ck, k, o, staples)
                        }
                        Some(o) => self.stapled(&ck, k, o),
                    };
                    certs.push((k, names));
                }
                Err(e) => {
                    if e.path() == key_path.display().to_string() {
                        self.errs
                            .push(span(&c.key), &format!("{ck}.key"), e.to_string());
                    } else {
                        self.errs
                            .push(span(&c.cert), &format!("{ck}.cert"), e.to_string());
                        // The key is read after the chain: report its own problem too, so
                        // that one run names both files.
                        if let Err(e) = crate::x509::pem::load_key(&key_path) {
                            self.errs
                                .push(span(&c.key), &format!("{ck}.key"), e.to_string());
                        }
                    }
                }
            }
        }
        certs
    }

    /// `ocsp`: the certificate with its staple, or as it was when the response is refused.
    fn stapled(
        &mut self,
        ck: &str,
        k: Arc<CertifiedKey>,
        o: &Spanned<String>,
    ) -> Arc<CertifiedKey> {
        let path = self.path(o.get_ref());
        match crate::x509::ocsp::load_staple(&path, &k.cert) {
            Ok(staple) => {
                let mut with = (*k).clone();
                with.ocsp = Some(staple.der);
                Arc::new(with)
            }
            Err(e) => {
                self.errs
                    .push(span(o), &format!("{ck}.ocsp"), e.to_string());
                k
            }
        }
    }

    /// `protocols` (of `[listener.tls]` and `[upstream.tls]`): the versions to offer.
    pub(super) fn protocols(
        &mut self,
        key: &str,
        p: &Spanned<Vec<Word<TlsProtocol>>>,
    ) -> TlsVersions {
        let before = self.errs_len();
        let mut v12 = false;
        let mut v13 = false;
        for word in p.get_ref() {
            match word {
                Word::Known(TlsProtocol::Tls12) => v12 = true,
                Word::Known(TlsProtocol::Tls13) => v13 = true,
                Word::Known(TlsProtocol::Obsolete(name)) => self.errs.push(
                    span(p),
                    key,
                    format!("{name} is obsolete and insecure; ringgate offers TLSv1.2 and TLSv1.3"),
                ),
                Word::Unknown(other) => self.errs.push(span(p), key, TlsProtocol::refused(other)),
            }
        }
        match (v12, v13) {
            (true, true) => TlsVersions::Both,
            (true, false) => TlsVersions::Tls12,
            (false, true) => TlsVersions::Tls13,
            (false, false) => {
                if self.errs_len() == before {
                    self.errs.push(span(p), key, "no protocol left to offer");
                }
                TlsVersions::Both
            }
        }
    }

    /// `verify_client`, `verify_failure` and `verify_depth`, and the mode the handshake asks
    /// with once the locations' own modes are counted in.
    fn client_modes(&mut self, key: &str, t: &RawTls, loc_modes: &[ClientAuthMode]) -> ClientModes {
        let configured = match t.verify_client.as_ref() {
            None if t.client_certificate.is_some() => ClientAuthMode::On,
            None => ClientAuthMode::Off,
            Some(v) => self
                .word(v, &format!("{key}.tls.verify_client"))
                .unwrap_or(ClientAuthMode::Off),
        };
        let failure = t
            .verify_failure
            .as_ref()
            .and_then(|v| self.word(v, &format!("{key}.tls.verify_failure")))
            .unwrap_or(FailureMode::Alert);
        let relaxed = loc_modes.iter().any(|m| *m != ClientAuthMode::On);
        let required = loc_modes.iter().any(|m| *m != ClientAuthMode::Off);
        let handshake = match configured {
            ClientAuthMode::On if relaxed => ClientAuthMode::Optional,
            ClientAuthMode::Off if required => ClientAuthMode::Optional,
            m => m,
        };
        ClientModes {
            configured,
            handshake,
            failure,
            depth: t.verify_depth.as_ref().map_or(1, |d| *d.get_ref()),
        }
    }

    /// `client_certificate` and `trusted_certificate`: the store client chains are verified
    /// against, and the CA names sent as hints (the client CAs only).
    fn client_trust(
        &mut self,
        key: &str,
        t: &RawTls,
        handshake_mode: ClientAuthMode,
    ) -> (Option<Arc<TrustStore>>, Vec<DistinguishedName>) {
        let client_cas = t
            .client_certificate
            .as_ref()
            .and_then(|ca| self.ca_bundle(ca, &format!("{key}.tls.client_certificate")));
        let extra_cas = t
            .trusted_certificate
            .as_ref()
            .and_then(|ca| self.ca_bundle(ca, &format!("{key}.tls.trusted_certificate")));
        if client_cas.is_none()
            && t.client_certificate.is_none()
            && matches!(
                handshake_mode,
                ClientAuthMode::On | ClientAuthMode::Optional
            )
        {
            let at = t.verify_client.as_ref().map(|v| v.span());
            self.errs.push(
                at.or(Some(t.certificates.span())),
                &format!("{key}.tls.client_certificate"),
                "verify_client (here or in a location) needs client_certificate, the CA bundle to verify clients against",
            );
        }
        let hints = client_cas
            .as_ref()
            .map(|s| s.subjects())
            .unwrap_or_default();
        let store = match (client_cas, extra_cas) {
            (None, None) => None,
            (Some(a), None) => Some(Arc::new(a)),
            (None, Some(b)) => Some(Arc::new(b)),
            (Some(a), Some(b)) => {
                let all: Vec<_> = a
                    .anchors()
                    .iter()
                    .chain(b.anchors())
                    .map(|x| x.der.clone())
                    .collect();
                TrustStore::from_der(all).ok().map(Arc::new)
            }
        };
        (store, hints)
    }

    /// `session_ticket_key`: each file read and checked.
    fn ticket_keys(&mut self, key: &str, t: &RawTls) -> Vec<TicketKey> {
        let mut ticket_keys = Vec::new();
        for (j, f) in t.session_ticket_key.iter().enumerate() {
            let k = format!("{key}.tls.session_ticket_key[{j}]");
            let file = self.path(f.get_ref());
            match crate::files::read(&file) {
                Ok(bytes) => match TicketKey::from_file_bytes(&bytes) {
                    Ok(key) => ticket_keys.push(key),
                    Err(m) => self
                        .errs
                        .push(span(f), &k, format!("{}: {m}", file.display())),
                },
                Err(e) => {
                    self.errs
                        .push(span(f), &k, format!("cannot read {}: {e}", file.display()))
                }
            }
        }
        ticket_keys
    }

    /// The ticket keys a listener encrypts with: Some(None) when `session_tickets = false`,
    /// the files' keys when named, else one derived for the listener; None on an error
    /// (reported).
    fn tickets(
        &mut self,
        key: &str,
        name: &str,
        t: &RawTls,
        ticket_keys: Vec<TicketKey>,
    ) -> Option<Option<TicketKeys>> {
        if !t.session_tickets.as_ref().is_none_or(|v| *v.get_ref()) {
            return Some(None);
        }
        if !ticket_keys.is_empty() {
            return Some(Some(TicketKeys(ticket_keys)));
        }
        // Stable for the life of the process, so a reload does not invalidate tickets.
        match TicketKey::for_listener(name) {
            Ok(k) => Some(Some(TicketKeys(vec![k]))),
            Err(e) => {
                self.errs
                    .push(span(&t.certificates), &format!("{key}.tls"), e.to_string());
                None
            }
        }
    }

    /// Loads `crl` (every file verified against the CA that signed it) and the CRLs last
    /// fetched from `crl_url` and the distribution points, with the listener's
    /// `crl_require_all` / `crl_expired` policy; returns them with the sources to fetch.
    pub(super) fn revocation(
        &mut self,
        key: &str,
        t: &RawTls,
        store: Option<&crate::x509::trust::TrustStore>,
        mode: ClientAuthMode,
    ) -> (
        Option<Arc<crate::x509::crl::Revocation>>,
        Vec<crate::fetch::CrlSource>,
    ) {
        use crate::x509::crl::{CrlPolicy, Revocation};
        let mut policy = CrlPolicy::default();
        if let Some(v) = &t.crl_require_all {
            policy.require_all = *v.get_ref();
        }
        if let Some(expired) = t
            .crl_expired
            .as_ref()
            .and_then(|v| self.word(v, &format!("{key}.tls.crl_expired")))
        {
            policy.expired = expired;
        }
        let sources = self.crl_sources(key, t, store);
        let from_points = t
            .crl_from_distribution_points
            .as_ref()
            .filter(|b| *b.get_ref())
            .map(|b| b.span());
        let first = t
            .crl
            .first()
            .or(t.crl_url.first())
            .map(|f| f.span())
            .or(from_points);
        let Some(first) = first else {
            return (None, Vec::new());
        };
        let Some(store) = self.crl_prerequisites(key, t, Some(first), store, mode) else {
            // The files are still read, so a missing one is reported with the rest.
            self.crl_files_readable(key, t);
            return (None, Vec::new());
        };
        let mut crls = Vec::new();
        for (j, f) in t.crl.iter().enumerate() {
            let k = format!("{key}.tls.crl[{j}]");
            let path = self.path(f.get_ref());
            match crate::files::read(&path) {
                Ok(bytes) => {
                    match crate::x509::crl::parse_crls(&bytes, &path.display().to_string(), store) {
                        Ok(c) => crls.extend(c),
                        Err(e) => self.errs.push(span(f), &k, e.to_string()),
                    }
                }
                Err(e) => {
                    self.errs
                        .push(span(f), &k, format!("cannot read {}: {e}", path.display()))
                }
            }
        }
        crls.extend(super::revocation_fetch::fetched_crls(&sources, store));
        (Some(Arc::new(Revocation::new(crls, policy))), sources)
    }

    /// The store CRLs are verified against, or None when the listener cannot check CRLs.
    /// Advice names only what is missing: a key that is set but failed (its own error is
    /// reported) is never called unset.
    fn crl_prerequisites<'s>(
        &mut self,
        key: &str,
        t: &RawTls,
        first: Option<std::ops::Range<usize>>,
        store: Option<&'s TrustStore>,
        mode: ClientAuthMode,
    ) -> Option<&'s TrustStore> {
        let verify_misspelt = matches!(
            t.verify_client.as_ref().map(|v| v.get_ref()),
            Some(Word::Unknown(_))
        );
        if mode == ClientAuthMode::Off {
            if !verify_misspelt {
                let advice = if t.verify_client.is_some() {
                    "CRLs check client certificates, but this listener does not ask for one: verify_client is off"
                } else {
                    "CRLs check client certificates, but this listener does not ask for one: set verify_client (and client_certificate)"
                };
                self.errs
                    .push(first.clone(), &format!("{key}.tls.crl"), advice);
            }
            return None;
        }
        if store.is_none() && t.client_certificate.is_none() && t.trusted_certificate.is_none() {
            self.errs.push(
                first,
                &format!("{key}.tls.crl"),
                "CRLs are verified against the CAs that issued them: set client_certificate (or trusted_certificate)",
            );
        }
        store
    }

    /// Each `crl` file readable, reported when not (when the CRLs cannot be checked for
    /// another reason, that reason is reported too).
    fn crl_files_readable(&mut self, key: &str, t: &RawTls) {
        for (j, f) in t.crl.iter().enumerate() {
            let path = self.path(f.get_ref());
            if let Err(e) = crate::files::read(&path) {
                self.errs.push(
                    span(f),
                    &format!("{key}.tls.crl[{j}]"),
                    format!("cannot read {}: {e}", path.display()),
                );
            }
        }
    }

    /// Reads a PEM CA bundle, reporting problems against `key`.
    pub(super) fn ca_bundle(
        &mut self,
        ca: &Spanned<String>,
        key: &str,
    ) -> Option<crate::x509::trust::TrustStore> {
        let ca_path = self.path(ca.get_ref());
        match crate::files::read(&ca_path) {
            Ok(bytes) => match crate::x509::trust::TrustStore::from_pem(&bytes) {
                Ok(store) => Some(store),
                Err(e) => {
                    self.errs
                        .push(span(ca), key, format!("{}: {e}", ca_path.display()));
                    None
                }
            },
            Err(e) => {
                self.errs.push(
                    span(ca),
                    key,
                    format!("cannot read {}: {e}", ca_path.display()),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse_str;

    const HEAD: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\n[listener.tls]\ncertificates = [{ cert = \"/nonexistent/s.crt\", key = \"/nonexistent/s.key\" }]\n";
    const LOC: &str = "[[listener.location]]\npath = \"/\"\nreturn = 204\n";
    const ENOENT: &str = "No such file or directory (os error 2)";

    fn errors(tls: &str) -> String {
        let text = format!("{HEAD}{tls}{LOC}");
        parse_str(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_missing_key_is_reported_with_a_missing_certificate() {
        assert_eq!(
            errors(""),
            format!(
                "2 configuration errors:\n  t.toml:4: listener[0].tls.certificates[0].cert: cannot read /nonexistent/s.crt: {ENOENT}\n  t.toml:4: listener[0].tls.certificates[0].key: cannot read /nonexistent/s.key: {ENOENT}\n"
            )
        );
    }

    #[test]
    fn a_missing_crl_is_reported_beside_a_missing_ca_without_calling_it_unset() {
        let got = errors(
            "client_certificate = \"/nonexistent/ca.crt\"\ncrl = [\"/nonexistent/ca.crl\"]\n",
        );
        assert_eq!(
            got,
            format!(
                "4 configuration errors:\n  t.toml:4: listener[0].tls.certificates[0].cert: cannot read /nonexistent/s.crt: {ENOENT}\n  t.toml:4: listener[0].tls.certificates[0].key: cannot read /nonexistent/s.key: {ENOENT}\n  t.toml:5: listener[0].tls.client_certificate: cannot read /nonexistent/ca.crt: {ENOENT}\n  t.toml:6: listener[0].tls.crl[0]: cannot read /nonexistent/ca.crl: {ENOENT}\n"
            )
        );
    }

    #[test]
    fn fetched_revocation_keys_are_checked_at_load() {
        let got = errors(
            "client_certificate = \"/nonexistent/ca.crt\"\ncrl_url = [\"https://ca.internal/x.crl\"]\ncrl_from_distribution_points = true\nocsp_client = \"always\"\nocsp_responder = \"ocsp.internal\"\nocsp_cache = 0\n",
        );
        for want in [
            "t.toml:6: listener[0].tls.crl_url[0]: `https://ca.internal/x.crl`: only http:// is fetched",
            "t.toml:7: listener[0].tls.crl_from_distribution_points: needs crl_fetch_allow",
            "t.toml:8: listener[0].tls.ocsp_client: `always` is not an OCSP mode; expected \"off\", \"on\"",
        ] {
            assert!(got.contains(want), "{want} missing:\n{got}");
        }
        let got = errors(
            "client_certificate = \"/nonexistent/ca.crt\"\nocsp_client = \"leaf\"\nocsp_responder = \"ocsp.internal\"\nocsp_cache = 0\n",
        );
        for want in [
            "t.toml:7: listener[0].tls.ocsp_responder: `ocsp.internal`: only http:// is fetched",
            "t.toml:8: listener[0].tls.ocsp_cache: must be at least 1",
        ] {
            assert!(got.contains(want), "{want} missing:\n{got}");
        }
        let got = errors("verify_client = \"off\"\nocsp_client = \"on\"\n");
        assert!(
            got.contains("t.toml:6: listener[0].tls.ocsp_client: checks client certificates, but this listener does not ask for one"),
            "{got}"
        );
    }

    #[test]
    fn a_missing_crl_is_reported_when_verify_client_is_off_or_misspelt() {
        let got = errors("verify_client = \"off\"\ncrl = [\"/nonexistent/ca.crl\"]\n");
        assert!(
            got.ends_with(&format!(
                "  t.toml:6: listener[0].tls.crl: CRLs check client certificates, but this listener does not ask for one: verify_client is off\n  t.toml:6: listener[0].tls.crl[0]: cannot read /nonexistent/ca.crl: {ENOENT}\n"
            )),
            "{got}"
        );
        let got = errors("verify_client = \"sometimes\"\ncrl = [\"/nonexistent/ca.crl\"]\n");
        assert!(
            got.starts_with("4 configuration errors:")
                && got.ends_with(&format!(
                    "  t.toml:6: listener[0].tls.crl[0]: cannot read /nonexistent/ca.crl: {ENOENT}\n"
                ))
                && !got.contains("does not ask"),
            "{got}"
        );
    }
}
