//! The fetched side of `[listener.tls]` revocation: `crl_url`, `crl_from_distribution_points`
//! with `crl_fetch_allow`, `crl_refresh`; certificates with `ocsp = "fetch"` and
//! `ocsp_refresh`; client-certificate OCSP (`ocsp_client`, `ocsp_responder`, `ocsp_failure`,
//! `ocsp_cache`, `ocsp_cache_valid`, `ocsp_timeout`).
//!
//! The loader never fetches: it names the sources (checked here, at load) and builds the
//! listener's TLS from what the fetcher thread last fetched and verified
//! ([`crate::fetch::store`]); a newer fetch makes the fetcher ask for a reload.

use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use toml::Spanned;

use super::raw::RawTls;
use super::{span, Resolver};
use crate::fetch::http::HttpUrl;
use crate::fetch::ocsp_client::{ClientOcsp, OcspFailure};
use crate::fetch::{store, CrlSource, StapleSource};
use crate::tls::client_auth::ClientAuthMode;
use crate::x509::crl::Crl;
use crate::x509::trust::TrustStore;

/// The default `crl_refresh` and `ocsp_refresh`.
const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);

impl Resolver<'_> {
    /// `crl_url`, `crl_from_distribution_points` (with `crl_fetch_allow`): the CRL sources of
    /// a listener, each URL checked; the distribution points are those of the CAs in `store`.
    pub(super) fn crl_sources(
        &mut self,
        key: &str,
        t: &RawTls,
        store: Option<&TrustStore>,
    ) -> Vec<CrlSource> {
        let mut sources: Vec<CrlSource> = Vec::new();
        for (j, u) in t.crl_url.iter().enumerate() {
            match HttpUrl::parse(u.get_ref()) {
                Ok(_) => sources.push(CrlSource {
                    url: u.get_ref().clone(),
                    origin: "crl_url".into(),
                }),
                Err(why) => self.errs.push(
                    span(u),
                    &format!("{key}.tls.crl_url[{j}]"),
                    format!("`{}`: {why}", u.get_ref()),
                ),
            }
        }
        let allow: Vec<String> = t
            .crl_fetch_allow
            .iter()
            .map(|h| h.get_ref().to_ascii_lowercase())
            .collect();
        let from_points = t.crl_from_distribution_points.as_ref();
        if let Some(b) = from_points.filter(|b| *b.get_ref()) {
            if allow.is_empty() {
                self.errs.push(
                    span(b),
                    &format!("{key}.tls.crl_from_distribution_points"),
                    "needs crl_fetch_allow, the hosts CRLs may be fetched from (for example [\"ca.internal\"])",
                );
            } else if let Some(store) = store {
                distribution_points(key, store, &allow, &mut sources);
                for url in store::discovered() {
                    let allowed =
                        HttpUrl::parse(&url).is_ok_and(|u| allow.contains(&u.host_name()));
                    if allowed {
                        sources.push(CrlSource {
                            url,
                            origin: "the distribution point of an intermediate a client presented"
                                .into(),
                        });
                    }
                }
            }
        }
        sources.dedup_by(|a, b| a.url == b.url);
        sources
    }

    /// The hosts whose distribution points, named by the intermediates clients present, are
    /// fetched (`crl_fetch_allow` with `crl_from_distribution_points`); empty when off.
    pub(super) fn discover_from(t: &RawTls) -> Vec<String> {
        let on = t
            .crl_from_distribution_points
            .as_ref()
            .is_some_and(|b| *b.get_ref());
        if !on {
            return Vec::new();
        }
        t.crl_fetch_allow
            .iter()
            .map(|h| h.get_ref().to_ascii_lowercase())
            .collect()
    }

    /// `crl_refresh` and `ocsp_refresh`.
    pub(super) fn refresh_periods(&mut self, key: &str, t: &RawTls) -> (Duration, Duration) {
        (
            self.duration(
                &t.crl_refresh,
                &format!("{key}.tls.crl_refresh"),
                DEFAULT_REFRESH,
            ),
            self.duration(
                &t.ocsp_refresh,
                &format!("{key}.tls.ocsp_refresh"),
                DEFAULT_REFRESH,
            ),
        )
    }

    /// `ocsp = "fetch"`: the certificate's responder from its authorityInfoAccess, recorded
    /// as a staple source; the certificate is stapled with the last good response fetched,
    /// if it still checks.
    pub(super) fn staple_fetched(
        &mut self,
        ck: &str,
        k: Arc<CertifiedKey>,
        o: &Spanned<String>,
        staples: &mut Vec<StapleSource>,
    ) -> Arc<CertifiedKey> {
        let k_ocsp = format!("{ck}.ocsp");
        let parsed = k
            .cert
            .first()
            .and_then(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok());
        let Some((_, leaf)) = parsed else {
            return k;
        };
        let urls = crate::x509::ocsp::responder_urls(&leaf);
        let Some(url) = urls.first() else {
            // As nginx's ssl_stapling: served, without a staple, with a warning.
            log::warn!("{k_ocsp}: \"fetch\": the certificate names no OCSP responder (no OCSP URL in its authorityInfoAccess); served without a staple (give a response file instead)");
            return k;
        };
        if let Err(why) = HttpUrl::parse(url) {
            self.errs.push(
                span(o),
                &k_ocsp,
                format!("\"fetch\": the certificate's OCSP responder `{url}`: {why}"),
            );
            return k;
        }
        let issuer = k.cert.get(1).filter(|i| {
            x509_parser::parse_x509_certificate(i.as_ref())
                .is_ok_and(|(_, i)| i.tbs_certificate.subject == leaf.tbs_certificate.issuer)
        });
        let Some(issuer) = issuer else {
            log::warn!("{k_ocsp}: \"fetch\" needs the issuer's certificate after this one in cert, to ask the responder and check its answer; served without a staple");
            return k;
        };
        let serial = crate::x509::identity::serial_hex(leaf.raw_serial());
        let skey = store::staple_key(url, &serial);
        let chain = vec![k.cert[0].clone().into_owned(), issuer.clone().into_owned()];
        staples.push(StapleSource {
            url: url.clone(),
            key: skey.clone(),
            chain,
            what: k_ocsp.clone(),
        });
        let Some(fetched) = store::get(&skey) else {
            return k;
        };
        let now = crate::clock::unix_now();
        match crate::x509::ocsp::check(fetched.bytes.to_vec(), &k.cert, url, now) {
            Ok(staple) => {
                let mut with = (*k).clone();
                with.ocsp = Some(staple.der);
                Arc::new(with)
            }
            Err(e) => {
                log::warn!("{k_ocsp}: the last response fetched is no longer usable ({e}); served without a staple until a fetch succeeds");
                k
            }
        }
    }

    /// `ocsp_client` and its companions: the listener's client-certificate OCSP policy.
    pub(super) fn client_ocsp(
        &mut self,
        key: &str,
        t: &RawTls,
        mode: ClientAuthMode,
    ) -> Option<Arc<ClientOcsp>> {
        let k = format!("{key}.tls.ocsp_client");
        let word = t.ocsp_client.as_ref()?;
        let check = self.word(word, &k)??;
        if mode == ClientAuthMode::Off {
            self.errs.push(span(word), &k, "checks client certificates, but this listener does not ask for one: set verify_client (and client_certificate)");
        }
        let responder = t
            .ocsp_responder
            .as_ref()
            .and_then(|u| match HttpUrl::parse(u.get_ref()) {
                Ok(_) => Some(u.get_ref().clone()),
                Err(why) => {
                    self.errs.push(
                        span(u),
                        &format!("{key}.tls.ocsp_responder"),
                        format!("`{}`: {why}", u.get_ref()),
                    );
                    None
                }
            });
        let failure = t
            .ocsp_failure
            .as_ref()
            .and_then(|w| self.word(w, &format!("{key}.tls.ocsp_failure")))
            .unwrap_or(OcspFailure::Refuse);
        let cache_size = t.ocsp_cache.as_ref().map_or(10_000, |c| *c.get_ref());
        if let Some(c) = t.ocsp_cache.as_ref().filter(|c| *c.get_ref() == 0) {
            self.errs.push(
                span(c),
                &format!("{key}.tls.ocsp_cache"),
                "must be at least 1: answers are kept per core until their nextUpdate, and the connections waiting for one are told through it",
            );
        }
        let cache_valid = self.duration(
            &t.ocsp_cache_valid,
            &format!("{key}.tls.ocsp_cache_valid"),
            DEFAULT_REFRESH,
        );
        let timeout = self.duration(
            &t.ocsp_timeout,
            &format!("{key}.tls.ocsp_timeout"),
            Duration::from_secs(5),
        );
        Some(Arc::new(ClientOcsp {
            check,
            responder,
            failure,
            cache_size,
            cache_valid,
            timeout,
        }))
    }
}

/// Adds the http:// CRL distribution points of every CA in `store` whose host is allowed;
/// the others are named in a warning.
fn distribution_points(key: &str, store: &TrustStore, allow: &[String], out: &mut Vec<CrlSource>) {
    for anchor in store.anchors() {
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&anchor.der) else {
            continue;
        };
        let subject = crate::x509::identity::rfc2253(ca.subject());
        for url in crate::x509::ocsp::crl_distribution_urls(&ca) {
            match HttpUrl::parse(&url) {
                Ok(u) if allow.contains(&u.host_name()) => out.push(CrlSource {
                    url,
                    origin: format!("the distribution point of {subject}"),
                }),
                Ok(u) => log::warn!(
                    "{key}.tls.crl_from_distribution_points: {subject}: {url} is not fetched: host `{}` is not in crl_fetch_allow",
                    u.host_name()
                ),
                Err(why) => log::warn!(
                    "{key}.tls.crl_from_distribution_points: {subject}: {url} is not fetched: {why}"
                ),
            }
        }
    }
}

/// The CRLs last fetched from `sources` that still verify against `store`.
pub(super) fn fetched_crls(sources: &[CrlSource], store: &TrustStore) -> Vec<Crl> {
    let mut crls = Vec::new();
    for s in sources {
        let Some(f) = store::get(&store::crl_key(&s.url)) else {
            continue;
        };
        match crate::x509::crl::parse_crls(&f.bytes, &s.url, store) {
            Ok(c) => crls.extend(c),
            Err(e) => log::warn!(
                "the CRL last fetched from {} no longer verifies: {e}",
                s.url
            ),
        }
    }
    crls
}
