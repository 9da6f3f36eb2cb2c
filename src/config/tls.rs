//! `[listener.tls]` resolved: certificates and keys, protocols, client verification, CRLs
//! and session resumption.

use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::raw::RawTls;
use super::{span, units, Resolver};
use crate::tls::client_auth::{ClientAuthMode, FailureMode};
use crate::tls::{ServerTls, TlsVersions};

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
    ) -> Option<(Arc<ServerTls>, ClientAuthMode)> {
        let before = self.errs_len();
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
                        Some(o) => {
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
                    }
                }
            }
        }
        let versions = match &t.protocols {
            None => TlsVersions::Both,
            Some(p) => {
                let mut v12 = false;
                let mut v13 = false;
                for name in p.get_ref() {
                    match name.as_str() {
                        "TLSv1.2" => v12 = true,
                        "TLSv1.3" => v13 = true,
                        "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => self.errs.push(
                            span(p),
                            &format!("{key}.tls.protocols"),
                            format!("{name} is obsolete and insecure; ringgate offers TLSv1.2 and TLSv1.3"),
                        ),
                        other => self.errs.push(
                            span(p),
                            &format!("{key}.tls.protocols"),
                            format!("`{other}` is not a protocol; expected \"TLSv1.2\" and/or \"TLSv1.3\""),
                        ),
                    }
                }
                match (v12, v13) {
                    (true, true) => TlsVersions::Both,
                    (true, false) => TlsVersions::Tls12,
                    (false, true) => TlsVersions::Tls13,
                    (false, false) => {
                        self.errs.push(
                            span(p),
                            &format!("{key}.tls.protocols"),
                            "no protocol left to offer",
                        );
                        TlsVersions::Both
                    }
                }
            }
        };
        let mode = match t.verify_client.as_ref() {
            None => {
                if t.client_certificate.is_some() {
                    ClientAuthMode::On
                } else {
                    ClientAuthMode::Off
                }
            }
            Some(v) => match v.get_ref().as_str() {
                "on" => ClientAuthMode::On,
                "off" => ClientAuthMode::Off,
                "optional" => ClientAuthMode::Optional,
                "optional_no_ca" => ClientAuthMode::OptionalNoCa,
                other => {
                    self.errs.push(
                        span(v),
                        &format!("{key}.tls.verify_client"),
                        format!("`{other}` is not a mode; expected \"on\", \"optional\", \"optional_no_ca\" or \"off\""),
                    );
                    ClientAuthMode::Off
                }
            },
        };
        let failure = match t.verify_failure.as_ref() {
            None => FailureMode::Alert,
            Some(v) => match v.get_ref().as_str() {
                "alert" => FailureMode::Alert,
                "http" => FailureMode::Http,
                other => {
                    self.errs.push(
                        span(v),
                        &format!("{key}.tls.verify_failure"),
                        format!("`{other}` is not a failure mode; expected \"alert\" (refuse in the handshake) or \"http\" (nginx-compatible 400 page)"),
                    );
                    FailureMode::Alert
                }
            },
        };
        let depth = t.verify_depth.as_ref().map_or(1, |d| *d.get_ref());
        let relaxed = loc_modes.iter().any(|m| *m != ClientAuthMode::On);
        let required = loc_modes.iter().any(|m| *m != ClientAuthMode::Off);
        let handshake_mode = match mode {
            ClientAuthMode::On if relaxed => ClientAuthMode::Optional,
            ClientAuthMode::Off if required => ClientAuthMode::Optional,
            m => m,
        };
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
                crate::x509::verify::TrustStore::from_der(all)
                    .ok()
                    .map(Arc::new)
            }
        };
        let revocation = self.revocation(key, t, store.as_deref(), handshake_mode);
        let session_timeout = self.duration(
            &t.session_timeout,
            &format!("{key}.tls.session_timeout"),
            Duration::from_secs(300),
        );
        let session_timeout = u32::try_from(session_timeout.as_secs()).unwrap_or(u32::MAX);
        let tickets_on = t.session_tickets.as_ref().is_none_or(|v| *v.get_ref());
        let mut ticket_keys = Vec::new();
        for (j, f) in t.session_ticket_key.iter().enumerate() {
            let k = format!("{key}.tls.session_ticket_key[{j}]");
            let file = self.path(f.get_ref());
            match crate::files::read(&file) {
                Ok(bytes) => match crate::tls::tickets::TicketKey::from_file_bytes(&bytes) {
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
        let session_cache = t.session_cache.as_ref().map_or(10_000, |v| *v.get_ref());
        if self.errs_len() != before || certs.is_empty() {
            return None;
        }
        let tickets = if !tickets_on {
            None
        } else if ticket_keys.is_empty() {
            // Stable for the life of the process, so a reload does not invalidate tickets.
            match crate::tls::tickets::TicketKey::for_listener(name) {
                Ok(k) => Some(crate::tls::tickets::TicketKeys(vec![k])),
                Err(e) => {
                    self.errs
                        .push(span(&t.certificates), &format!("{key}.tls"), e.to_string());
                    return None;
                }
            }
        } else {
            Some(crate::tls::tickets::TicketKeys(ticket_keys))
        };
        let spec = crate::tls::ServerTlsSpec {
            certs,
            versions,
            mode: handshake_mode,
            failure,
            store,
            hints,
            depth,
            revocation,
            tickets,
            session_cache,
            session_timeout,
        };
        match ServerTls::new(spec) {
            Ok(s) => Some((Arc::new(s), mode)),
            Err(e) => {
                self.errs
                    .push(span(&t.certificates), &format!("{key}.tls"), e.to_string());
                None
            }
        }
    }

    /// Loads `crl` (every file verified against the CA that signed it) with the listener's
    /// `crl_require_all` / `crl_expired` policy.
    pub(super) fn revocation(
        &mut self,
        key: &str,
        t: &RawTls,
        store: Option<&crate::x509::verify::TrustStore>,
        mode: ClientAuthMode,
    ) -> Option<Arc<crate::x509::crl::Revocation>> {
        use crate::x509::crl::{CrlPolicy, ExpiredCrl, Revocation};
        let mut policy = CrlPolicy::default();
        if let Some(v) = &t.crl_require_all {
            policy.require_all = *v.get_ref();
        }
        if let Some(v) = &t.crl_expired {
            match v.get_ref().as_str() {
                "refuse" => policy.expired = ExpiredCrl::Refuse,
                text => match units::parse_duration(text) {
                    Ok(d) => {
                        policy.expired =
                            ExpiredCrl::Grace(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    }
                    Err(_) => self.errs.push(
                        span(v),
                        &format!("{key}.tls.crl_expired"),
                        format!("`{text}` is neither \"refuse\" (nginx's behaviour) nor a grace period such as \"12h\" or \"1d\""),
                    ),
                },
            }
        }
        let first = t.crl.first()?;
        if mode == ClientAuthMode::Off {
            self.errs.push(
                span(first),
                &format!("{key}.tls.crl"),
                "CRLs check client certificates, but this listener does not ask for one: set verify_client (and client_certificate)",
            );
            return None;
        }
        let Some(store) = store else {
            self.errs.push(
                span(first),
                &format!("{key}.tls.crl"),
                "CRLs are verified against the CAs that issued them: set client_certificate (or trusted_certificate)",
            );
            return None;
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
        Some(Arc::new(Revocation::new(crls, policy)))
    }

    /// Reads a PEM CA bundle, reporting problems against `key`.
    pub(super) fn ca_bundle(
        &mut self,
        ca: &Spanned<String>,
        key: &str,
    ) -> Option<crate::x509::verify::TrustStore> {
        let ca_path = self.path(ca.get_ref());
        match crate::files::read(&ca_path) {
            Ok(bytes) => match crate::x509::verify::TrustStore::from_pem(&bytes) {
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
