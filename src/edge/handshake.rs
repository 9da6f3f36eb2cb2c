//! The handshake phase: the ClientHello checks, the TLS handshake (the server chosen by SNI
//! when several share the address), and the client certificate settled by the listener's
//! mode. A refusal ends here with its alert and one log line, or, in nginx-compatible mode,
//! is carried to the first request as nginx's 400 page.

use std::net::SocketAddr;
use std::sync::Arc;

use monoio::net::TcpStream;
use rustls::ServerConnection;

use super::core::Generation;
use super::outcome::{CertificateFault, HandshakeRefusal, Refusal};
use super::peer::TlsFacts;
use super::refusal_log::Kind;
use crate::config::{Server, Socket};
use crate::tls::client_auth::{ClientAuthMode, ClientVerifyOutcome, FailureMode};
use crate::tls::stream::TlsStream;
use crate::x509::verify::VerifiedChain;

/// A verified client certificate with fewer days left is warned about (once per worker while
/// it is seen).
const CLIENT_EXPIRY_WARN_DAYS: i64 = 30;

/// A finished handshake.
pub struct Handshaken {
    /// The TLS stream, ready for application data.
    pub stream: TlsStream<ServerConnection>,
    /// The server (listener index) the handshake was made for.
    pub server: usize,
    /// What it established.
    pub facts: TlsFacts,
    /// In nginx-compatible mode, the refusal owed to the client's first request.
    pub refusal: Option<Refusal>,
}

/// Runs the handshake and settles the client certificate. None when the connection is
/// refused or lost (already logged and counted).
pub async fn handshake(
    generation: &Generation,
    socket: &Socket,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<Handshaken> {
    let default = generation.config.servers.get(socket.hosts.default)?;
    let Some(fallback) = generation.tls.get(socket.hosts.default).cloned().flatten() else {
        log::error!(
            "listener={}: no TLS configuration on a TLS address",
            default.name
        );
        return None;
    };
    let timeout = default.http.header_timeout;
    let negotiated = negotiate(generation, socket, tcp, fallback);
    let (mut stream, server) = match crate::deadline::timeout(timeout, negotiated).await {
        Err(_) => {
            crate::refusal_line!(
                Kind::Timeout,
                info,
                "listener={} peer={peer}: TLS handshake timed out after {timeout:?}",
                default.name,
            );
            count("full", HandshakeRefusal::Timeout.label());
            return None;
        }
        Ok(Err(e)) => {
            let refusal = log_failure(&default.name, peer, &e);
            count("full", refusal.label());
            return None;
        }
        Ok(Ok(x)) => x,
    };
    let listener = generation.config.servers.get(server)?;
    let server_tls = listener.tls.as_ref()?;
    let mut facts = TlsFacts::from_connection(stream.conn());
    let (refused, verified) = settle_certificate(listener, &mut stream, &mut facts, peer);
    if let Some(r) = refused
        .as_ref()
        .filter(|_| server_tls.failure == FailureMode::Alert)
    {
        // Reached only when the verifier let the handshake finish (a resumed session whose
        // certificate no longer verifies): refuse now, at the TLS layer, counted as the
        // verifier's refusal of a full handshake is (`revoked` for a revoked certificate).
        count(kind(&facts), r.outcome);
        let _ = stream.shutdown().await;
        return None;
    }
    let mut refusal = refused.map(|r| r.refusal);
    if let (None, Some(policy), Some(chain)) = (&refusal, &server_tls.ocsp, verified) {
        refusal = super::ocsp::check(listener, policy, &chain.chain, &mut facts, peer).await;
    }
    record(listener, peer, &facts, refusal.as_ref());
    Some(Handshaken {
        stream,
        server,
        facts,
        refusal,
    })
}

/// Reads the ClientHello, picks the server by SNI when several share the address, and runs
/// the handshake to its end.
async fn negotiate(
    generation: &Generation,
    socket: &Socket,
    mut tcp: TcpStream,
    fallback: Arc<rustls::ServerConfig>,
) -> std::io::Result<(TlsStream<ServerConnection>, usize)> {
    let default = socket.hosts.default;
    let flight = crate::tls::stream::read_client_hello(&mut tcp).await?;
    let (mut tls, server) = if socket.hosts.is_shared() {
        crate::tls::stream::accept(tcp, flight, |sni| {
            let id = socket.hosts.select(sni.map(str::as_bytes));
            match generation.tls.get(id).cloned().flatten() {
                Some(cfg) => (cfg, id),
                None => (fallback.clone(), default),
            }
        })
        .await?
    } else {
        let conn = ServerConnection::new(fallback.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        (TlsStream::with_received(tcp, conn, flight), default)
    };
    tls.handshake().await?;
    Ok((tls, server))
}

/// A client certificate refused once the handshake finished.
struct Refused {
    /// What the listener's mode owes the client (nginx-compatible mode: its first request's
    /// 400 page).
    refusal: Refusal,
    /// The `outcome` label when the refusal ends the connection at the TLS layer: the one a
    /// full handshake's verifier refusal counts for the same certificate.
    outcome: &'static str,
}

/// Settles the client certificate after a handshake the verifier let finish: the verdict into
/// `facts`, and the refusal owed by the listener's mode, logged; or the verified chain.
fn settle_certificate(
    listener: &Server,
    stream: &mut TlsStream<ServerConnection>,
    facts: &mut TlsFacts,
    peer: SocketAddr,
) -> (Option<Refused>, Option<Arc<VerifiedChain>>) {
    let Some(server_tls) = listener.tls.as_ref() else {
        return (None, None);
    };
    if server_tls.mode == ClientAuthMode::Off {
        return (None, None);
    }
    let chain = stream.conn().peer_certificates().unwrap_or(&[]);
    let verdict = server_tls
        .client_auth()
        .verdict(chain, rustls_pki_types::UnixTime::now());
    facts.verify = verdict.outcome.nginx_value().into_owned();
    facts.verified = matches!(verdict.outcome, ClientVerifyOutcome::Success(_));
    facts.identity = verdict.identity;
    let refused = match &verdict.outcome {
        ClientVerifyOutcome::Success(chain) => return (None, Some(chain.clone())),
        ClientVerifyOutcome::None if server_tls.mode == ClientAuthMode::On => {
            crate::refusal_line!(
                Kind::Handshake,
                warn,
                "listener={} peer={peer}: client sent no required SSL certificate",
                listener.name
            );
            Some(Refused {
                refusal: Refusal::HandshakeCertificate { missing: true },
                outcome: HandshakeRefusal::NoCertificate.label(),
            })
        }
        ClientVerifyOutcome::None => None,
        ClientVerifyOutcome::Failed(err) => {
            let tolerated = server_tls.mode == ClientAuthMode::OptionalNoCa
                && err.is_ignorable_for_optional_no_ca();
            if tolerated {
                return (None, None);
            }
            crate::refusal_line!(
                Kind::Handshake,
                warn,
                "listener={} peer={peer}: client SSL certificate verify error: {err} (subject: {})",
                listener.name,
                facts
                    .identity
                    .as_ref()
                    .map_or("-", |i| i.subject_dn.as_str())
            );
            Some(Refused {
                refusal: Refusal::HandshakeCertificate { missing: false },
                outcome: refused_label(&err.to_rustls()),
            })
        }
    };
    (refused, None)
}

/// The `outcome` label of a certificate refused with `error` (the rustls error whose alert the
/// verifier sends on a full handshake).
fn refused_label(error: &rustls::Error) -> &'static str {
    let fault = match error {
        rustls::Error::InvalidCertificate(ce) => CertificateFault::of(ce),
        _ => CertificateFault::Other,
    };
    HandshakeRefusal::Certificate(fault).label()
}

/// "full" or "resumed", the `kind` label of the handshake metrics.
fn kind(facts: &TlsFacts) -> &'static str {
    if facts.resumed {
        "resumed"
    } else {
        "full"
    }
}

fn count(kind: &'static str, outcome: &'static str) {
    crate::metrics::with(|m| m.handshake(kind, outcome));
}

/// Counts a completed handshake, and warns (once per worker while it is seen) about a
/// verified client certificate close to its end.
fn record(listener: &Server, peer: SocketAddr, facts: &TlsFacts, refusal: Option<&Refusal>) {
    let outcome = match refusal {
        Some(Refusal::HandshakeCertificate { missing: true }) => "no_certificate",
        Some(_) => "bad_certificate",
        None => "ok",
    };
    crate::metrics::with(|m| {
        m.handshake(kind(facts), outcome);
        let Some(id) = facts.identity.as_deref().filter(|_| facts.verified) else {
            return;
        };
        let days = id.days_left(crate::clock::unix_now());
        if m.client_certificate(id) && days < CLIENT_EXPIRY_WARN_DAYS {
            log::warn!(
                "listener={} peer={peer}: client certificate {} (serial {}) expires in {days} day(s)",
                listener.name,
                id.subject_dn,
                id.serial
            );
        }
    });
}

/// Logs why a handshake failed; returns the refusal it counts as.
fn log_failure(listener: &str, peer: SocketAddr, e: &std::io::Error) -> HandshakeRefusal {
    if let Some(r) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<crate::tls::client_auth::RefusedCertificate>())
    {
        let alert = match &r.error {
            rustls::Error::InvalidCertificate(ce) => {
                format!("{:?}", rustls::AlertDescription::from(ce.clone()))
            }
            other => other.to_string(),
        };
        crate::refusal_line!(
            Kind::Handshake,
            warn,
            "listener={listener} peer={peer}: refused client certificate: {} (alert {alert})",
            r.detail
        );
        return match &r.error {
            rustls::Error::InvalidCertificate(ce) => {
                HandshakeRefusal::Certificate(CertificateFault::of(ce))
            }
            _ => HandshakeRefusal::Certificate(CertificateFault::Other),
        };
    }
    let rustls_err = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_err {
        Some(rustls::Error::NoCertificatesPresented) => {
            crate::refusal_line!(Kind::Handshake, warn,
                "listener={listener} peer={peer}: refused: client sent no required SSL certificate (alert certificate_required)"
            );
            HandshakeRefusal::NoCertificate
        }
        Some(rustls::Error::InvalidCertificate(ce)) => {
            crate::refusal_line!(
                Kind::Handshake,
                warn,
                "listener={listener} peer={peer}: refused client certificate: {ce:?} (alert {:?})",
                rustls::AlertDescription::from(ce.clone())
            );
            HandshakeRefusal::Certificate(CertificateFault::of(ce))
        }
        Some(rustls::Error::AlertReceived(a)) => {
            crate::refusal_line!(Kind::Handshake, info,
                "listener={listener} peer={peer}: client aborted the TLS handshake with alert {a:?}"
            );
            HandshakeRefusal::ClientAlert
        }
        Some(other) => {
            crate::refusal_line!(
                Kind::Handshake,
                info,
                "listener={listener} peer={peer}: TLS handshake failed: {other}"
            );
            HandshakeRefusal::ProtocolError
        }
        None => {
            crate::refusal_line!(
                Kind::Handshake,
                info,
                "listener={listener} peer={peer}: TLS handshake failed: {e}"
            );
            HandshakeRefusal::Io
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::verify::VerifyError;

    /// A resumed session refused at the TLS layer counts the label the verifier's refusal of a
    /// full handshake counts: `revoked` for a revoked certificate, not `bad_certificate`.
    #[test]
    fn resumed_refusals_count_the_full_handshakes_label() {
        let revoked = VerifyError::Revoked {
            depth: 0,
            subject: "CN=alice,OU=Client".into(),
            detail: "serial 01".into(),
        };
        assert_eq!(refused_label(&revoked.to_rustls()), "revoked");
        let expired = VerifyError::Expired {
            depth: 0,
            subject: "CN=alice".into(),
        };
        assert_eq!(refused_label(&expired.to_rustls()), "expired");
        let unknown = VerifyError::UnableToVerifyLeafSignature {
            subject: "CN=mallory".into(),
        };
        assert_eq!(refused_label(&unknown.to_rustls()), "unknown_ca");
        assert_eq!(
            refused_label(&rustls::Error::General("x".into())),
            "bad_certificate"
        );
    }

    /// The README's metrics table names every `outcome` label a handshake can count.
    #[test]
    fn readme_lists_every_handshake_outcome() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let row = readme
            .lines()
            .find(|l| l.contains("| `ringgate_handshakes_total` |"))
            .expect("the README's ringgate_handshakes_total row");
        use CertificateFault as F;
        let faults = [
            F::UnknownCa,
            F::Expired,
            F::NotYetValid,
            F::Revoked,
            F::BadSignature,
            F::BadPurpose,
            F::Other,
        ];
        let labels = [
            HandshakeRefusal::Timeout,
            HandshakeRefusal::NoCertificate,
            HandshakeRefusal::ClientAlert,
            HandshakeRefusal::ProtocolError,
            HandshakeRefusal::Io,
        ]
        .into_iter()
        .chain(faults.map(HandshakeRefusal::Certificate))
        .map(HandshakeRefusal::label)
        .chain(["ok", "full", "resumed"]);
        for label in labels {
            assert!(
                row.contains(&format!("`{label}`")),
                "{label} missing from: {row}"
            );
        }
    }
}
