//! The access phase of a request, after its location is chosen: the path's client-certificate
//! requirement, the certificate + address binding, and the roles the location lets in. Every
//! refusal carries the reason that goes into the log line.

use crate::config::{Location, Server};
use crate::policy::BindingCheck;
use crate::tls::client_auth::{ClientAuthMode, FailureMode};

use super::outcome::Denial;
use super::peer::Peer;

/// A refused request: what kind of refusal (its status is decided in
/// [`super::outcome::Refusal::page`]) and the account of it for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Which refusal.
    pub denial: Denial,
    /// For the log line and `$access_decision`: names the location, the certificate, the role.
    pub reason: String,
}

/// Decides whether the connection's client may use `location` of `listener`.
pub fn check(listener: &Server, location: &Location, conn: &Peer) -> Result<(), Denied> {
    let verify = conn.tls.as_ref().map_or("NONE", |t| t.verify.as_str());
    let verified = conn.verified_identity();
    let subject = || {
        conn.tls
            .as_ref()
            .and_then(|t| t.identity.as_deref())
            .map_or_else(|| "-".to_string(), |i| i.subject_dn.clone())
    };
    let required = location.verify_client.unwrap_or(listener.verify_client);
    if required == ClientAuthMode::On && verified.is_none() {
        // The server's own `ssl_verify_client on`, in nginx-compatible mode, answers as nginx
        // does (its 400 pages); a location's own requirement (ringgate's) answers 401.
        let nginx_page = location.verify_client.is_none()
            && listener
                .tls
                .as_ref()
                .is_some_and(|t| t.failure == FailureMode::Http);
        let denial = match (nginx_page, verify) {
            (true, "NONE") => Denial::NoCertificateSent,
            (true, _) => Denial::CertificateError,
            (false, _) => Denial::CertificateRequired,
        };
        return Err(Denied {
            denial,
            reason: format!(
                "location `{}` requires a verified client certificate (ssl_client_verify={verify}, subject: {})",
                location.path,
                subject()
            ),
        });
    }
    if let BindingCheck::Denied(allowed) = &conn.binding {
        return Err(Denied {
            denial: Denial::Binding,
            reason: format!(
                "certificate {} is bound to {allowed}, not to {}",
                subject(),
                conn.ip
            ),
        });
    }
    if let Some(roles) = &location.allow_roles {
        if verified.is_none() {
            return Err(Denied {
                denial: Denial::CertificateRequired,
                reason: format!(
                    "location `{}` admits roles [{}] and the client has no verified certificate (ssl_client_verify={verify})",
                    location.path,
                    roles.join(", ")
                ),
            });
        }
        match conn.role.as_deref() {
            Some(r) if roles.iter().any(|a| &**a == r) => {}
            role => {
                return Err(Denied {
                    denial: Denial::Role,
                    reason: format!(
                        "role `{}` of {} is not among the roles location `{}` admits [{}]",
                        role.unwrap_or("(none)"),
                        subject(),
                        location.path,
                        roles.join(", ")
                    ),
                })
            }
        }
    }
    Ok(())
}
