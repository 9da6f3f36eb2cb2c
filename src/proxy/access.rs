//! The access phase of a request, after its location is chosen: the path's client-certificate
//! requirement, the certificate + address binding, and the roles the location lets in. Every
//! refusal carries the reason that goes into the log line.

use crate::access::BindingCheck;
use crate::config::{Listener, Location};
use crate::tls::client_auth::ClientAuthMode;

use super::context::ConnInfo;

/// Why a request is refused, and with which status (401: no acceptable certificate; 403: a
/// verified client that may not enter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// 401 or 403.
    pub status: u16,
    /// For the log line.
    pub reason: String,
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
        return Err(Denial {
            status: 401,
            reason: format!(
                "location `{}` requires a verified client certificate (ssl_client_verify={verify}, subject: {})",
                location.path,
                subject()
            ),
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
                })
            }
        }
    }
    Ok(())
}
