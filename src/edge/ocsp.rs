//! The OCSP phase (nginx's `ssl_ocsp`): after the handshake verified the client's chain and
//! before the connection's first request, whatever protocol it speaks, the status of the
//! chain's certificates (the leaf only with `leaf`) is awaited from this core's cache or from
//! the one query in flight for each ([`crate::fetch::ocsp_client`]). The handshake itself
//! never waits on the network; resumed sessions are checked the same way.
//!
//! A revoked certificate is answered as nginx answers it: 400 `The SSL certificate error`,
//! `$ssl_client_verify` = `FAILED:certificate revoked`. A responder that fails follows
//! `ocsp_failure`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;

use super::outcome::Refusal;
use super::peer::TlsFacts;
use super::refusal_log::Kind;
use crate::config::Server;
use crate::fetch::ocsp_client::{lookup, ClientOcsp, Lookup, OcspCheck, OcspFailure, Question};
use crate::x509::ocsp::CertStatus;

/// `$ssl_client_verify` of a certificate the responder says is revoked.
pub const VERIFY_REVOKED: &str = "FAILED:certificate revoked";
/// `$ssl_client_verify` of a certificate the responder does not know.
pub const VERIFY_UNKNOWN: &str = "FAILED:certificate status unknown";
/// `$ssl_client_verify` when no answer could be had (nginx's words).
pub const VERIFY_FAILED: &str = "FAILED:certificate status request failed";

/// Checks the verified `chain` (leaf first, anchor last) under `policy`; the refusal owed to
/// the first request when a certificate is revoked or unknown, or when the responder failed
/// and `ocsp_failure = "refuse"`. `facts` gets the new `$ssl_client_verify`.
pub async fn check(
    listener: &Server,
    policy: &ClientOcsp,
    chain: &[CertificateDer<'static>],
    facts: &mut TlsFacts,
    peer: SocketAddr,
) -> Option<Refusal> {
    let checked = match policy.check {
        OcspCheck::Leaf => chain.len().min(2).saturating_sub(1),
        OcspCheck::Chain => chain.len().saturating_sub(1),
    };
    for depth in 0..checked {
        let (Some(cert), Some(issuer)) = (chain.get(depth), chain.get(depth + 1)) else {
            break;
        };
        let verdict = status(policy, cert, issuer).await;
        let refusal = settle(listener, policy, depth, cert, verdict, facts, peer);
        if refusal.is_some() {
            return refusal;
        }
    }
    None
}

/// What was learnt about one certificate.
enum Verdict {
    Known(CertStatus, String),
    Failed(String, String),
}

/// The status of `cert`: from the cache, or awaited from the query in flight (polled off
/// the handshake, backing off to 20 ms, for at most the query's timeout and a margin).
async fn status(
    policy: &ClientOcsp,
    cert: &CertificateDer<'_>,
    issuer: &CertificateDer<'_>,
) -> Verdict {
    // The certificate is parsed only when no `ocsp_responder` names the responder.
    let url = policy.responder.clone().or_else(|| {
        x509_parser::parse_x509_certificate(cert.as_ref())
            .ok()
            .and_then(|(_, c)| crate::x509::ocsp::responder_urls(&c).into_iter().next())
    });
    let Some(url) = url else {
        return Verdict::Failed(
            "-".into(),
            "the certificate names no OCSP responder and ocsp_responder is not set".into(),
        );
    };
    let q = Question::new(&url, cert.as_ref(), issuer.as_ref(), policy.timeout);
    let deadline = Instant::now() + policy.timeout + Duration::from_millis(500);
    let mut pause = Duration::from_millis(1);
    loop {
        match lookup(&q, policy, crate::clock::unix_now()) {
            Lookup::Known(s) => return Verdict::Known(s, url),
            Lookup::Failed(why) => return Verdict::Failed(url, why),
            Lookup::Pending if Instant::now() >= deadline => {
                return Verdict::Failed(url, format!("no answer within {:?}", policy.timeout))
            }
            Lookup::Pending => {
                crate::deadline::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}

/// Applies one certificate's verdict: logs a refusal or a tolerated failure, sets
/// `$ssl_client_verify`, and returns the refusal owed.
fn settle(
    listener: &Server,
    policy: &ClientOcsp,
    depth: usize,
    cert: &CertificateDer<'_>,
    verdict: Verdict,
    facts: &mut TlsFacts,
    peer: SocketAddr,
) -> Option<Refusal> {
    if matches!(verdict, Verdict::Known(CertStatus::Good, _)) {
        return None;
    }
    // Parsed only for the log line of a certificate that is not good.
    let (subject, serial) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map(|(_, c)| {
            (
                crate::x509::identity::rfc2253(c.subject()),
                crate::x509::identity::serial_hex(c.raw_serial()),
            )
        })
        .unwrap_or_default();
    let (verify, why) = match verdict {
        Verdict::Known(CertStatus::Good, _) => return None,
        Verdict::Known(CertStatus::Revoked { at, reason }, url) => (
            VERIFY_REVOKED,
            format!(
                "certificate revoked at depth {depth} ({subject}, serial {serial}, revoked {}{}, per OCSP {url})",
                crate::clock::iso8601(at),
                reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        ),
        Verdict::Known(CertStatus::Unknown, url) => (
            VERIFY_UNKNOWN,
            format!("certificate status unknown at depth {depth} ({subject}, serial {serial}, per OCSP {url})"),
        ),
        Verdict::Failed(url, why) if policy.failure == OcspFailure::Allow => {
            log::warn!(
                "listener={} peer={peer}: OCSP responder {url} failed for {subject} (serial {serial}): {why}; let through (ocsp_failure = allow)",
                listener.name
            );
            return None;
        }
        Verdict::Failed(url, why) => (
            VERIFY_FAILED,
            format!("OCSP responder error at depth {depth} ({subject}, serial {serial}): {url}: {why} (ocsp_failure = refuse)"),
        ),
    };
    crate::refusal_line!(
        Kind::Handshake,
        warn,
        "listener={} peer={peer}: client SSL certificate verify error: {why}",
        listener.name
    );
    facts.verify = verify.to_string();
    facts.verified = false;
    Some(Refusal::HandshakeCertificate { missing: false })
}
