//! Complete responses the proxy sends itself (errors, `100 Continue`),
//! shaped like nginx's built-in error pages so clients and monitoring that
//! know nginx see familiar bytes, with `ringgate` in place of `nginx`.

use std::sync::OnceLock;

use bytes::{BufMut, BytesMut};

/// Interim response sent when a client asked `Expect: 100-continue`.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Value of the `Server` header on responses we generate.
pub const SERVER_NAME: &[u8] = b"ringgate";

/// Canned error responses; every one closes the connection, because an
/// error we generate usually means the stream state is no longer trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Canned {
    /// 400 Bad Request.
    BadRequest,
    /// 400 for a missing client certificate (nginx's 496 page).
    NoClientCert,
    /// 400 for a failed client certificate verification (nginx's 495 page).
    ClientCertError,
    /// 401 Unauthorized.
    Unauthorized,
    /// 403 Forbidden.
    Forbidden,
    /// 404 Not Found.
    NotFound,
    /// 405 Not Allowed.
    MethodNotAllowed,
    /// 408 Request Time-out.
    RequestTimeout,
    /// 413 Request Entity Too Large.
    PayloadTooLarge,
    /// 421 Misdirected Request (SNI/Host mismatch).
    MisdirectedRequest,
    /// 414 Request-URI Too Large: a request line longer than one header buffer.
    UriTooLong,
    /// nginx's "400 Request Header Or Cookie Too Large" (its 494 page sent as 400): a header
    /// line longer than one buffer, or a head larger than all of them.
    HeaderTooLarge,
    /// 500 Internal Server Error.
    InternalServerError,
    /// 501 Not Implemented.
    NotImplemented,
    /// 502 Bad Gateway.
    BadGateway,
    /// 503 Service Temporarily Unavailable.
    ServiceUnavailable,
    /// 504 Gateway Time-out.
    GatewayTimeout,
    /// 505 HTTP Version Not Supported.
    VersionNotSupported,
}

/// All variants, in table order (used to build the byte table once).
const ALL: [Canned; 18] = [
    Canned::BadRequest,
    Canned::NoClientCert,
    Canned::ClientCertError,
    Canned::Unauthorized,
    Canned::Forbidden,
    Canned::NotFound,
    Canned::MethodNotAllowed,
    Canned::RequestTimeout,
    Canned::PayloadTooLarge,
    Canned::MisdirectedRequest,
    Canned::UriTooLong,
    Canned::HeaderTooLarge,
    Canned::InternalServerError,
    Canned::NotImplemented,
    Canned::BadGateway,
    Canned::ServiceUnavailable,
    Canned::GatewayTimeout,
    Canned::VersionNotSupported,
];

impl Canned {
    /// Status code on the wire.
    pub fn status(self) -> u16 {
        match self {
            Canned::BadRequest
            | Canned::NoClientCert
            | Canned::ClientCertError
            | Canned::HeaderTooLarge => 400,
            Canned::Unauthorized => 401,
            Canned::Forbidden => 403,
            Canned::NotFound => 404,
            Canned::MethodNotAllowed => 405,
            Canned::RequestTimeout => 408,
            Canned::PayloadTooLarge => 413,
            Canned::MisdirectedRequest => 421,
            Canned::UriTooLong => 414,
            Canned::InternalServerError => 500,
            Canned::NotImplemented => 501,
            Canned::BadGateway => 502,
            Canned::ServiceUnavailable => 503,
            Canned::GatewayTimeout => 504,
            Canned::VersionNotSupported => 505,
        }
    }

    /// Complete response bytes (status line, headers, HTML body), built once.
    pub fn bytes(self) -> &'static [u8] {
        static TABLE: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        let table = TABLE.get_or_init(|| ALL.iter().map(|c| c.build()).collect());
        let idx = ALL.iter().position(|c| *c == self).unwrap_or(0);
        table.get(idx).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The HTML body alone (for tests and custom framing).
    pub fn body(self) -> Vec<u8> {
        let status = self.status();
        let reason = reason_phrase(status);
        match self {
            Canned::NoClientCert => detail_page("No required SSL certificate was sent"),
            Canned::ClientCertError => detail_page("The SSL certificate error"),
            Canned::HeaderTooLarge => detail_page("Request Header Or Cookie Too Large"),
            _ => error_page(status, reason),
        }
    }

    /// Builds the full response bytes.
    fn build(self) -> Vec<u8> {
        let status = self.status();
        let mut out = BytesMut::new();
        write_response(
            &mut out,
            status,
            reason_phrase(status),
            b"text/html",
            &self.body(),
            false,
        );
        out.to_vec()
    }
}

/// nginx's generic error page shape with `ringgate` in the footer.
pub fn error_page(status: u16, reason: &str) -> Vec<u8> {
    format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n\
<center><h1>{status} {reason}</h1></center>\r\n{FOOTER}"
    )
    .into_bytes()
}

/// nginx's shared footer (`ngx_http_error_tail`), with our name.
const FOOTER: &str = "<hr><center>ringgate</center>\r\n</body>\r\n</html>\r\n";

/// nginx's 494/495/496 page shape: a 400 with a detail line.
fn detail_page(detail: &str) -> Vec<u8> {
    format!(
        "<html>\r\n<head><title>400 {detail}</title></head>\r\n<body>\r\n\
<center><h1>400 Bad Request</h1></center>\r\n<center>{detail}</center>\r\n{FOOTER}"
    )
    .into_bytes()
}

/// Writes a complete `text/html` response for dynamic cases (`body` may be
/// empty); `keep_alive = false` adds `Connection: close`.
pub fn write_simple(out: &mut BytesMut, status: u16, reason: &str, body: &[u8], keep_alive: bool) {
    write_response(out, status, reason, b"text/html", body, keep_alive);
}

/// Writes a complete response with an explicit content type; the general
/// form behind [`write_simple`] and the canned table.
pub fn write_response(
    out: &mut BytesMut,
    status: u16,
    reason: &str,
    content_type: &[u8],
    body: &[u8],
    keep_alive: bool,
) {
    let status_str = status.min(999).to_string();
    let len = body.len().to_string();
    out.reserve(128 + body.len());
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status_str.as_bytes());
    out.put_u8(b' ');
    out.put_slice(reason.as_bytes());
    out.put_slice(b"\r\nServer: ");
    out.put_slice(SERVER_NAME);
    out.put_slice(b"\r\nContent-Type: ");
    out.put_slice(content_type);
    out.put_slice(b"\r\nContent-Length: ");
    out.put_slice(len.as_bytes());
    if !keep_alive {
        out.put_slice(b"\r\nConnection: close");
    }
    out.put_slice(b"\r\n\r\n");
    out.put_slice(body);
}

/// Reason phrase for a status code; nginx's wording where it differs from
/// RFC 9110 (e.g. "Not Allowed", "Gateway Time-out") so pages match nginx.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        _ => reason_phrase_4xx_5xx(code),
    }
}

/// Second half of [`reason_phrase`], split to keep functions small.
fn reason_phrase_4xx_5xx(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_response, BodyFraming, Limits};

    #[test]
    fn nginx_502_shape() {
        let want = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>ringgate</center>\r\n</body>\r\n</html>\r\n";
        assert_eq!(Canned::BadGateway.body(), want.as_bytes());
    }

    #[test]
    fn nginx_ssl_pages_exact() {
        let no_cert = "HTTP/1.1 400 Bad Request\r\nServer: ringgate\r\nContent-Type: text/html\r\n\
Content-Length: 233\r\nConnection: close\r\n\r\n\
<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>\r\n\
<center><h1>400 Bad Request</h1></center>\r\n<center>No required SSL certificate was sent</center>\r\n\
<hr><center>ringgate</center>\r\n</body>\r\n</html>\r\n";
        assert_eq!(
            String::from_utf8_lossy(Canned::NoClientCert.bytes()),
            no_cert
        );
        let bad_cert =
            "<html>\r\n<head><title>400 The SSL certificate error</title></head>\r\n<body>\r\n\
<center><h1>400 Bad Request</h1></center>\r\n<center>The SSL certificate error</center>\r\n\
<hr><center>ringgate</center>\r\n</body>\r\n</html>\r\n";
        assert_eq!(Canned::ClientCertError.body(), bad_cert.as_bytes());
    }

    #[test]
    fn every_canned_response_parses_and_length_matches() {
        for c in ALL {
            let bytes = c.bytes();
            let head = parse_response(bytes, false, &Limits::default())
                .unwrap()
                .unwrap();
            assert_eq!(head.status, c.status());
            assert!(!head.keep_alive);
            let body_len = (bytes.len() - head.head_len) as u64;
            assert_eq!(head.framing, BodyFraming::Length(body_len), "{c:?}");
            assert_eq!(head.header(bytes, b"server"), Some(SERVER_NAME));
        }
    }

    #[test]
    fn simple_builder() {
        let mut out = BytesMut::new();
        write_simple(&mut out, 200, "OK", b"hi", true);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\nServer: ringgate\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi"
        );
        assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(reason_phrase(418), "Unknown");
        assert_eq!(reason_phrase(504), "Gateway Time-out");
    }
}
