//! Revocation material fetched over the network: CRLs by URL and from distribution points,
//! OCSP responses to staple, and OCSP answers about client certificates.
//!
//! Nothing here runs on a worker. The fetcher thread (`server/fetcher.rs`) fetches CRLs and
//! staples, verifies them, keeps the last good bytes in [`store`], and asks for a reload;
//! the configuration loader builds the listeners' TLS from those bytes, and the reload hands
//! the result to the workers as any reload does. Client-certificate OCSP queries go from a
//! worker to [`ocsp_client`]'s coordinator thread by channel and come back the same way.

pub mod http;
pub mod ocsp_client;
pub mod stats;
pub mod store;

use std::time::Duration;

/// The largest CRL or OCSP response accepted (a larger one is refused, not truncated).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// How long one fetch may take, connect included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

use rustls_pki_types::CertificateDer;

/// A CRL a listener fetches by URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlSource {
    /// Where it is fetched from.
    pub url: String,
    /// Why: `crl_url`, or the distribution point of which CA.
    pub origin: String,
}

/// The OCSP response a listener fetches to staple with one of its certificates.
#[derive(Debug, Clone)]
pub struct StapleSource {
    /// The responder, from the certificate's authorityInfoAccess.
    pub url: String,
    /// The key its last good response is kept under in [`store`].
    pub key: String,
    /// The certificate and its issuer (what the request names, what the answer is checked
    /// against).
    pub chain: Vec<CertificateDer<'static>>,
    /// The configuration key, for messages.
    pub what: String,
}

/// What a listener fetches in the background, and how often at least.
#[derive(Debug, Clone, Default)]
pub struct FetchPlan {
    /// CRLs by URL (`crl_url`, and distribution points with `crl_from_distribution_points`).
    pub crls: Vec<CrlSource>,
    /// `crl_refresh`: the longest time between two fetches of a CRL.
    pub crl_refresh: Duration,
    /// Staples of certificates with `ocsp = "fetch"`.
    pub staples: Vec<StapleSource>,
    /// `ocsp_refresh`: the longest time between two fetches of a staple.
    pub ocsp_refresh: Duration,
    /// With `crl_from_distribution_points`: the hosts (`crl_fetch_allow`) whose distribution
    /// points, named by intermediates clients present, are fetched too; empty when off.
    pub discover_from: Vec<String>,
}

/// The OCSP response for `chain`'s leaf (its issuer next), POSTed to `url` within `timeout`
/// and checked as an `ocsp` file is (successful, good, for this certificate, current, signed
/// by the issuer or its delegated responder). On failure, the metric label and the reason.
pub fn staple(
    url: &str,
    chain: &[CertificateDer<'static>],
    timeout: Duration,
) -> Result<crate::x509::ocsp::Staple, (&'static str, String)> {
    let unparsable = || {
        (
            "bad_certificate",
            "the certificate or its issuer does not parse".to_string(),
        )
    };
    let (Some(leaf), Some(issuer)) = (chain.first(), chain.get(1)) else {
        return Err(unparsable());
    };
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|_| unparsable())?;
    let (_, issuer) =
        x509_parser::parse_x509_certificate(issuer.as_ref()).map_err(|_| unparsable())?;
    let body = crate::x509::ocsp::request(&leaf, &issuer);
    let der = http::fetch(&http::Request {
        url,
        body: Some(("application/ocsp-request", &body)),
        timeout,
        max_body: MAX_BODY,
    })
    .map_err(|e| (e.label(), e.to_string()))?;
    crate::x509::ocsp::check(der, chain, url, crate::clock::unix_now())
        .map_err(|e| ("invalid", e.to_string()))
}
