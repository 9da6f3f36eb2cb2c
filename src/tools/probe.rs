//! What `ringgate check` asks the network: each CRL URL (`crl_url`, distribution points),
//! each staple's responder (`ocsp = "fetch"`) and each configured client-certificate
//! responder (`ocsp_responder`), and whether it answered with something usable. `run` never
//! probes this way: its fetcher thread fetches, and logs each fetch.

use std::time::Duration;

use crate::config::Config;
use crate::fetch::{http, MAX_BODY};

/// How long `check` waits for each URL.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How a URL answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Clients are refused while it does not answer.
    Error,
    /// It did not answer; clients are served regardless (or without a staple).
    Warn,
    /// It answered usably.
    Info,
}

/// What one URL did.
pub struct Report {
    /// How it answered.
    pub level: Level,
    /// The configuration key that names it.
    pub key: String,
    /// The URL and what it answered, or why not.
    pub message: String,
}

/// The reports about every fetched source of `cfg`, and the (issuer name, signing key) of
/// each CA a CRL was fetched for (so the doctor does not call those CAs uncovered).
pub struct Probed {
    /// One report per URL (per CRL for a URL serving several).
    pub findings: Vec<Report>,
    /// CAs covered by a CRL that answered.
    pub covered: Vec<(Vec<u8>, Vec<u8>)>,
}

fn finding(level: Level, key: String, message: String) -> Report {
    Report {
        level,
        key,
        message,
    }
}

/// Fetches every CRL and staple source once and checks the responders' reachability.
pub fn probe(cfg: &Config) -> Probed {
    let mut out = Probed {
        findings: Vec::new(),
        covered: Vec::new(),
    };
    for (i, server) in cfg.servers.iter().enumerate() {
        let Some(tls) = &server.tls else { continue };
        let key = format!("listener[{i}].tls");
        let require_all = tls
            .client_auth()
            .revocation()
            .is_some_and(|r| r.policy.require_all);
        if let Some(store) = tls.client_auth().store() {
            for src in &tls.fetch.crls {
                crl(&mut out, &key, &src.url, store, require_all);
            }
        }
        for src in &tls.fetch.staples {
            staple(&mut out, &src.what, &src.url, &src.chain);
        }
        if let Some(url) = tls.ocsp.as_ref().and_then(|o| o.responder.as_ref()) {
            responder(&mut out, &key, url);
        }
    }
    out
}

fn crl(
    out: &mut Probed,
    key: &str,
    url: &str,
    store: &crate::x509::trust::TrustStore,
    required: bool,
) {
    let got = http::fetch(&http::Request {
        url,
        body: None,
        timeout: TIMEOUT,
        max_body: MAX_BODY,
    })
    .map_err(|e| e.to_string())
    .and_then(|b| crate::x509::crl::parse_crls(&b, url, store).map_err(|e| e.to_string()));
    let k = format!("{key}.crl_url");
    match got {
        Ok(crls) => {
            for c in &crls {
                out.covered
                    .push((c.issuer_name.clone(), c.signer_spki.clone()));
                out.findings.push(finding(
                    Level::Info,
                    k.clone(),
                    format!(
                        "{url} answered: the CRL of {} ({} revoked, next update {}), verified",
                        c.issuer,
                        c.revoked_count(),
                        c.next_update.map_or("never".into(), crate::clock::iso8601)
                    ),
                ));
            }
        }
        Err(e) => {
            let (level, what) = if required {
                (Level::Error, "while it cannot be fetched, clients whose chain needs its CA are refused (crl_require_all)")
            } else {
                (
                    Level::Warn,
                    "while it cannot be fetched, its CA's clients are not checked against it",
                )
            };
            out.findings.push(finding(
                level,
                k,
                format!("did not answer usably: {e}; {what}"),
            ));
        }
    }
}

fn staple(
    out: &mut Probed,
    key: &str,
    url: &str,
    chain: &[rustls_pki_types::CertificateDer<'static>],
) {
    let got = crate::fetch::staple(url, chain, TIMEOUT).map_err(|(_, why)| why);
    match got {
        Ok(s) => out.findings.push(finding(
            Level::Info,
            key.to_string(),
            format!(
                "{url} answered: good (next update {}), verified; it will be stapled",
                s.next_update.map_or("none".into(), crate::clock::iso8601)
            ),
        )),
        Err(e) => out.findings.push(finding(
            Level::Warn,
            key.to_string(),
            format!("{url} did not answer usably: {e}; the certificate is served without a staple until it does"),
        )),
    }
}

fn responder(out: &mut Probed, key: &str, url: &str) {
    let reachable = http::HttpUrl::parse(url)
        .map_err(str::to_string)
        .and_then(|u| {
            use std::net::ToSocketAddrs;
            let addr = (u.host_name().as_str(), u.port)
                .to_socket_addrs()
                .map_err(|e| e.to_string())?
                .next()
                .ok_or_else(|| "no address".to_string())?;
            std::net::TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())
        });
    let k = format!("{key}.ocsp_responder");
    match reachable {
        Ok(_) => out.findings.push(finding(
            Level::Info,
            k,
            format!("{url} accepts connections (client certificates are asked about there)"),
        )),
        Err(e) => out.findings.push(finding(
            Level::Warn,
            k,
            format!("{url} cannot be reached: {e}; until it can, ocsp_failure decides for every new client"),
        )),
    }
}
