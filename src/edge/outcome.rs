//! How a request ends, decided in one place: whether the connection goes on ([`Next`]), and
//! when ringgate answers itself instead of serving content, why ([`Refusal`]). Each refusal
//! maps here, and only here, to its status page and to the short reason that log lines and
//! metrics carry. The TLS-level refusals (alerts) are [`HandshakeRefusal`]. What the access
//! log needs to know about the outcome is [`LogFacts`], filled in by the phases as they go.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::tunnel::Tunnel;
use crate::http::{Canned, RequestError};
use crate::upstream::UpstreamError;

/// Whether the client connection may carry another request after this one.
pub enum Next {
    /// The response is complete and framed: read the next request.
    KeepAlive,
    /// Close the connection (the response said so, or it could not be completed).
    Close,
    /// The connection switched protocols (a `101` went to the client): relay bytes both ways
    /// until either side closes.
    Tunnel(Box<Tunnel>),
}

impl Next {
    /// `KeepAlive` when `keep` holds.
    pub fn keep_if(keep: bool) -> Next {
        if keep {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }
}

/// Why the authorize phase refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The server's own `ssl_verify_client on` in nginx-compatible mode, and no certificate
    /// was sent: nginx's 400 "No required SSL certificate was sent".
    NoCertificateSent,
    /// As above, with a certificate that did not verify: nginx's 400 "The SSL certificate
    /// error".
    CertificateError,
    /// The location requires a verified certificate (or admits roles) and the client has none.
    CertificateRequired,
    /// The certificate is bound to other addresses.
    Binding,
    /// The verified client's role is not among those the location admits.
    Role,
}

/// The gRPC status codes ringgate answers with itself (the numbers are gRPC's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCode {
    /// 2: an HTTP status gRPC's mapping has no code for.
    Unknown = 2,
    /// 4: a timeout.
    DeadlineExceeded = 4,
    /// 7: the client is known and not admitted.
    PermissionDenied = 7,
    /// 8: the request is over a limit.
    ResourceExhausted = 8,
    /// 12: nothing serves this method or path.
    Unimplemented = 12,
    /// 13: a malformed request, or ringgate's own fault.
    Internal = 13,
    /// 14: the upstream, or the proxy, cannot serve it now; a client may retry.
    Unavailable = 14,
    /// 16: no acceptable client certificate.
    Unauthenticated = 16,
}

impl GrpcCode {
    /// gRPC's mapping of an HTTP status a `return` rule answers with.
    pub fn of_http(status: u16) -> GrpcCode {
        match status {
            400 => GrpcCode::Internal,
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            404 => GrpcCode::Unimplemented,
            429 | 502 | 503 | 504 => GrpcCode::Unavailable,
            _ => GrpcCode::Unknown,
        }
    }

    /// The `grpc-status` value.
    pub fn value(self) -> u8 {
        self as u8
    }
}

/// Why ringgate answers a request itself with an error page.
#[derive(Debug)]
pub enum Refusal {
    /// The head is malformed or over a limit.
    BadHead(RequestError),
    /// The path does not normalize (an escape out of the root, a bad percent-escape).
    BadPath,
    /// The head did not arrive within `header_timeout`.
    HeadTimeout,
    /// The Host names a server the TLS handshake was not made for.
    Misdirected,
    /// No location matches, or no file is there.
    NotFound,
    /// A method the content phase does not serve (static files: GET and HEAD only).
    MethodNotAllowed,
    /// A directory without an index file.
    DirectoryListing,
    /// A file the worker may not read.
    Unreadable,
    /// ringgate's own inconsistency (a server index that does not resolve): never expected,
    /// answered rather than dropped.
    Internal,
    /// The authorize phase refused.
    Denied(Denial),
    /// The client's certificate was refused at the handshake in nginx-compatible mode: its
    /// first request gets nginx's 400 page. `true` when no certificate was sent.
    HandshakeCertificate {
        /// No certificate was sent (else one was sent and did not verify).
        missing: bool,
    },
    /// The body is larger than `client_max_body_size`.
    BodyTooLarge,
    /// The chunked body is malformed.
    BadBody,
    /// The body did not arrive within `client_body_timeout`.
    BodyTimeout,
    /// The upstream could not be reached or answered badly (502), or too late (504).
    Upstream(UpstreamError),
    /// The connection limit was reached (plain HTTP only: a TLS client cannot be answered
    /// without the handshake the limit is there to avoid).
    ConnectionLimit,
}

impl Refusal {
    /// The page the client gets: the one mapping from a refusal to a status.
    pub fn page(&self) -> Canned {
        match self {
            Refusal::BadHead(e) => e.page(),
            Refusal::BadPath | Refusal::BadBody => Canned::BadRequest,
            Refusal::HeadTimeout | Refusal::BodyTimeout => Canned::RequestTimeout,
            Refusal::Misdirected => Canned::MisdirectedRequest,
            Refusal::NotFound => Canned::NotFound,
            Refusal::MethodNotAllowed => Canned::MethodNotAllowed,
            Refusal::DirectoryListing | Refusal::Unreadable => Canned::Forbidden,
            Refusal::Internal => Canned::InternalServerError,
            Refusal::Denied(d) => match d {
                Denial::NoCertificateSent => Canned::NoClientCert,
                Denial::CertificateError => Canned::ClientCertError,
                Denial::CertificateRequired => Canned::Unauthorized,
                Denial::Binding | Denial::Role => Canned::Forbidden,
            },
            Refusal::HandshakeCertificate { missing: true } => Canned::NoClientCert,
            Refusal::HandshakeCertificate { missing: false } => Canned::ClientCertError,
            Refusal::BodyTooLarge => Canned::PayloadTooLarge,
            Refusal::Upstream(e) if e.is_timeout() => Canned::GatewayTimeout,
            Refusal::Upstream(_) => Canned::BadGateway,
            Refusal::ConnectionLimit => Canned::ServiceUnavailable,
        }
    }

    /// The `grpc-status` a gRPC client gets instead of the page: gRPC's own mapping from
    /// HTTP statuses (400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404
    /// UNIMPLEMENTED, 502/503/504 UNAVAILABLE), made exact where the refusal says more than
    /// its status: a timeout is DEADLINE_EXCEEDED, a body over the limit RESOURCE_EXHAUSTED,
    /// a certificate nginx answers with 400 UNAUTHENTICATED.
    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            Refusal::BadHead(_) | Refusal::BadPath | Refusal::BadBody | Refusal::Internal => {
                GrpcCode::Internal
            }
            Refusal::HeadTimeout | Refusal::BodyTimeout => GrpcCode::DeadlineExceeded,
            Refusal::Upstream(e) if e.is_timeout() => GrpcCode::DeadlineExceeded,
            Refusal::Misdirected | Refusal::Upstream(_) | Refusal::ConnectionLimit => {
                GrpcCode::Unavailable
            }
            Refusal::NotFound | Refusal::MethodNotAllowed => GrpcCode::Unimplemented,
            Refusal::DirectoryListing | Refusal::Unreadable => GrpcCode::PermissionDenied,
            Refusal::Denied(Denial::Binding | Denial::Role) => GrpcCode::PermissionDenied,
            Refusal::Denied(
                Denial::NoCertificateSent | Denial::CertificateError | Denial::CertificateRequired,
            )
            | Refusal::HandshakeCertificate { .. } => GrpcCode::Unauthenticated,
            Refusal::BodyTooLarge => GrpcCode::ResourceExhausted,
        }
    }

    /// The HTTP status of [`Refusal::page`].
    pub fn status(&self) -> u16 {
        self.page().status()
    }

    /// A short, stable name for log lines and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::BadHead(e) => e.reason(),
            Refusal::BadPath => "bad request path",
            Refusal::HeadTimeout => "request head timeout",
            Refusal::Misdirected => "misdirected request",
            Refusal::NotFound => "not found",
            Refusal::MethodNotAllowed => "method not allowed",
            Refusal::DirectoryListing => "directory index forbidden",
            Refusal::Unreadable => "file not readable",
            Refusal::Internal => "internal error",
            Refusal::Denied(Denial::NoCertificateSent) => "no required client certificate",
            Refusal::Denied(Denial::CertificateError) => "client certificate error",
            Refusal::Denied(Denial::CertificateRequired) => "verified certificate required",
            Refusal::Denied(Denial::Binding) => "certificate bound elsewhere",
            Refusal::Denied(Denial::Role) => "role not admitted",
            Refusal::HandshakeCertificate { missing: true } => "no required client certificate",
            Refusal::HandshakeCertificate { missing: false } => "client certificate error",
            Refusal::BodyTooLarge => "request body too large",
            Refusal::BadBody => "malformed request body",
            Refusal::BodyTimeout => "request body timeout",
            Refusal::Upstream(e) if e.is_timeout() => "upstream timeout",
            Refusal::Upstream(_) => "upstream error",
            Refusal::ConnectionLimit => "connection limit",
        }
    }
}

/// Why a TLS handshake ended without a connection to serve: the metric label of each, with
/// the alert rustls chose for a refused certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// No handshake within `header_timeout`.
    Timeout,
    /// A certificate was required and none was sent.
    NoCertificate,
    /// The client's certificate was refused; the label names why.
    Certificate(CertificateFault),
    /// The client aborted with an alert of its own.
    ClientAlert,
    /// The client broke the TLS protocol.
    ProtocolError,
    /// The connection failed.
    Io,
}

/// What was wrong with a refused client certificate, as the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateFault {
    /// No trusted issuer.
    UnknownCa,
    /// Expired.
    Expired,
    /// Not yet valid.
    NotYetValid,
    /// Revoked by a CRL.
    Revoked,
    /// A signature in the chain does not verify.
    BadSignature,
    /// Not for client authentication.
    BadPurpose,
    /// Anything else.
    Other,
}

impl CertificateFault {
    /// The fault rustls reports (it chose the alert from the same error).
    pub fn of(e: &rustls::CertificateError) -> CertificateFault {
        use rustls::CertificateError as C;
        match e {
            C::UnknownIssuer => CertificateFault::UnknownCa,
            C::Expired | C::ExpiredContext { .. } => CertificateFault::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => CertificateFault::NotYetValid,
            C::Revoked => CertificateFault::Revoked,
            C::BadSignature => CertificateFault::BadSignature,
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => CertificateFault::BadPurpose,
            _ => CertificateFault::Other,
        }
    }
}

impl HandshakeRefusal {
    /// The `outcome` label of `ringgate_handshakes_total`.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeRefusal::Timeout => "timeout",
            HandshakeRefusal::NoCertificate => "no_certificate",
            HandshakeRefusal::Certificate(f) => match f {
                CertificateFault::UnknownCa => "unknown_ca",
                CertificateFault::Expired => "expired",
                CertificateFault::NotYetValid => "not_yet_valid",
                CertificateFault::Revoked => "revoked",
                CertificateFault::BadSignature => "bad_signature",
                CertificateFault::BadPurpose => "bad_purpose",
                CertificateFault::Other => "bad_certificate",
            },
            HandshakeRefusal::ClientAlert => "client_alert",
            HandshakeRefusal::ProtocolError => "protocol_error",
            HandshakeRefusal::Io => "io_error",
        }
    }
}

/// What only the access log knows: the outcome of a request.
#[derive(Debug, Default)]
pub struct LogFacts {
    /// `$status`.
    pub status: u16,
    /// `$body_bytes_sent`.
    pub body_bytes: u64,
    /// `$bytes_sent`.
    pub bytes: u64,
    /// When the request head started arriving.
    pub started: Option<Instant>,
    /// `$upstream_addr`.
    pub upstream_addr: Option<SocketAddr>,
    /// `$upstream_status`.
    pub upstream_status: Option<u16>,
    /// `$upstream_response_time`.
    pub upstream_time: Option<Duration>,
    /// `$access_decision`: `allow`, `allow role=admin`, `deny: ...`.
    pub decision: std::borrow::Cow<'static, str>,
    /// The server (listener index) that handled the request: whose access log gets the line.
    pub server: usize,
}

impl LogFacts {
    /// Records ringgate's own answer to a refused request.
    pub fn refused(&mut self, refusal: &Refusal) {
        self.canned(refusal.page());
    }

    /// Records a canned page as the response.
    pub fn canned(&mut self, page: Canned) {
        let bytes = page.bytes();
        self.status = page.status();
        self.bytes = bytes.len() as u64;
        let head = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |i| i + 4);
        self.body_bytes = (bytes.len() - head) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_nginx_status() {
        let cases: [(Refusal, u16); 15] = [
            (Refusal::BadHead(RequestError::UriTooLong), 414),
            (Refusal::BadPath, 400),
            (Refusal::HeadTimeout, 408),
            (Refusal::Misdirected, 421),
            (Refusal::NotFound, 404),
            (Refusal::MethodNotAllowed, 405),
            (Refusal::DirectoryListing, 403),
            (Refusal::Denied(Denial::NoCertificateSent), 400),
            (Refusal::Denied(Denial::CertificateRequired), 401),
            (Refusal::Denied(Denial::Role), 403),
            (Refusal::HandshakeCertificate { missing: false }, 400),
            (Refusal::BodyTooLarge, 413),
            (Refusal::Upstream(UpstreamError::ReadTimeout), 504),
            (Refusal::Upstream(UpstreamError::ClosedEarly), 502),
            (Refusal::ConnectionLimit, 503),
        ];
        for (r, status) in cases {
            assert_eq!(r.status(), status, "{r:?}");
            assert_eq!(r.page().status(), status, "{r:?}");
            assert!(!r.reason().is_empty());
        }
    }

    /// Where a refusal's status says all there is, a gRPC client gets gRPC's own mapping of
    /// it; the refinements are the timeouts, the size limit, the certificate 400s, 421, and
    /// ringgate's own fault (INTERNAL, not the mapping's UNKNOWN for a 500).
    #[test]
    fn a_grpc_client_gets_its_mapping_of_the_status_or_something_more_exact() {
        use GrpcCode as G;
        let cases = [
            (Refusal::BadPath, G::Internal, true),
            (Refusal::BadBody, G::Internal, true),
            (Refusal::Internal, G::Internal, false),
            (Refusal::Denied(Denial::Role), G::PermissionDenied, true),
            (Refusal::Denied(Denial::Binding), G::PermissionDenied, true),
            (Refusal::DirectoryListing, G::PermissionDenied, true),
            (
                Refusal::Denied(Denial::CertificateRequired),
                G::Unauthenticated,
                true,
            ),
            (
                Refusal::Denied(Denial::NoCertificateSent),
                G::Unauthenticated,
                false,
            ),
            (
                Refusal::HandshakeCertificate { missing: false },
                G::Unauthenticated,
                false,
            ),
            (Refusal::NotFound, G::Unimplemented, true),
            (
                Refusal::Upstream(UpstreamError::ClosedEarly),
                G::Unavailable,
                true,
            ),
            (
                Refusal::Upstream(UpstreamError::ReadTimeout),
                G::DeadlineExceeded,
                false,
            ),
            (Refusal::ConnectionLimit, G::Unavailable, true),
            (Refusal::Misdirected, G::Unavailable, false),
            (Refusal::BodyTooLarge, G::ResourceExhausted, false),
            (Refusal::HeadTimeout, G::DeadlineExceeded, false),
        ];
        for (r, code, as_mapped) in cases {
            assert_eq!(r.grpc_code(), code, "{r:?}");
            assert_eq!(G::of_http(r.status()) == code, as_mapped, "{r:?}");
        }
        assert_eq!(G::PermissionDenied.value(), 7);
        assert_eq!(G::Unauthenticated.value(), 16);
    }

    #[test]
    fn certificate_faults_keep_their_metric_labels() {
        use rustls::CertificateError as C;
        let label = |e: C| HandshakeRefusal::Certificate(CertificateFault::of(&e)).label();
        assert_eq!(label(C::UnknownIssuer), "unknown_ca");
        assert_eq!(label(C::Expired), "expired");
        assert_eq!(label(C::Revoked), "revoked");
        assert_eq!(label(C::BadEncoding), "bad_certificate");
        assert_eq!(HandshakeRefusal::NoCertificate.label(), "no_certificate");
    }

    #[test]
    fn next_follows_the_flag() {
        assert!(matches!(Next::keep_if(true), Next::KeepAlive));
        assert!(matches!(Next::keep_if(false), Next::Close));
    }
}
