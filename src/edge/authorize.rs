//! The access phase of a request, after its location is chosen: the path's client-certificate
//! requirement, the certificate + address binding, and the roles the location lets in. Every
//! refusal carries the reason that goes into the log line.

use crate::config::{Listener, Location};
use crate::http::Canned;
use crate::policy::BindingCheck;
use crate::tls::client_auth::{ClientAuthMode, FailureMode};

use super::peer::ConnInfo;

/// Why a request is refused, and with which status (401: no acceptable certificate; 403: a
/// verified client that may not enter; 400 with nginx's own page where nginx would answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// 400, 401 or 403.
    pub status: u16,
    /// For the log line.
    pub reason: String,
    /// The page to answer with.
    pub page: Canned,
}

/// Decides whether the connection's client may use `location` of `listener`.
pub fn check(listener: &Listener, location: &Location, conn: &ConnInfo) -> Result<(), Denial> {
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
        let (status, page) = match (nginx_page, verify) {
            (true, "NONE") => (400, Canned::NoClientCert),
            (true, _) => (400, Canned::ClientCertError),
            (false, _) => (401, Canned::Unauthorized),
        };
        return Err(Denial {
            status,
            reason: format!(
                "location `{}` requires a verified client certificate (ssl_client_verify={verify}, subject: {})",
                location.path,
                subject()
            ),
            page,
        });
    }
    if let BindingCheck::Denied(allowed) = &conn.binding {
        return Err(Denial {
            status: 403,
            reason: format!(
                "certificate {} is bound to {allowed}, not to {}",
                subject(),
                conn.peer_ip
            ),
            page: Canned::Forbidden,
        });
    }
    if let Some(roles) = &location.allow_roles {
        if verified.is_none() {
            return Err(Denial {
                status: 401,
                reason: format!(
                    "location `{}` admits roles [{}] and the client has no verified certificate (ssl_client_verify={verify})",
                    location.path,
                    roles.join(", ")
                ),
                page: Canned::Unauthorized,
            });
        }
        match conn.role.as_deref() {
            Some(r) if roles.iter().any(|a| &**a == r) => {}
            role => {
                return Err(Denial {
                    status: 403,
                    reason: format!(
                        "role `{}` of {} is not among the roles location `{}` admits [{}]",
                        role.unwrap_or("(none)"),
                        subject(),
                        location.path,
                        roles.join(", ")
                    ),
                    page: Canned::Forbidden,
                })
            }
        }
    }
    Ok(())
}
