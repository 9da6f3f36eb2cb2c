//! An exchange with an HTTP/2 upstream in the HTTP/1.1 terms the forward phase speaks: the
//! request head it built (target mapped, identity headers set, hop-by-hop fields dropped)
//! made an HTTP/2 request, and the upstream's response head made the HTTP/1.1 head the
//! client path rewrites and sends (or, to an HTTP/2 client, makes HEADERS again).
//!
//! The request always carries `te: trailers`, as nginx's gRPC module sends it: gRPC servers
//! require it, and trailers are what the relay passes back.

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri};

use super::field;
use crate::http::{parse_request, Limits};

/// Largest request head the forward phase builds.
const MAX_HEAD: usize = 256 * 1024;

/// Why a request head cannot be sent as an HTTP/2 request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Untranslatable {
    /// The head did not parse (it is ringgate's own output: a bug, not the client's).
    #[error("the upstream request head does not parse")]
    Head,
    /// The method, target, authority or a field is not valid in HTTP/2.
    #[error("the request has a method, target, host or field HTTP/2 cannot carry")]
    Field,
}

/// The HTTP/2 request for the HTTP/1.1 request head `head`: `:scheme` `https` over TLS,
/// `:authority` from `Host`, the fields less the connection-specific ones, and
/// `te: trailers`.
pub fn request_of(head: &[u8], tls: bool) -> Result<Request<()>, Untranslatable> {
    let limits = Limits {
        max_head_bytes: MAX_HEAD,
        max_headers: 1000,
        max_line_bytes: MAX_HEAD,
    };
    let parsed = match parse_request(head, &limits) {
        Ok(Some(h)) => h,
        _ => return Err(Untranslatable::Head),
    };
    let method =
        Method::from_bytes(parsed.method_span.get(head)).map_err(|_| Untranslatable::Field)?;
    let authority = parsed.host.map(|h| h.get(head)).unwrap_or_default();
    let uri = Uri::builder()
        .scheme(if tls { "https" } else { "http" })
        .authority(authority)
        .path_and_query(parsed.target.get(head))
        .build()
        .map_err(|_| Untranslatable::Field)?;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = http::Version::HTTP_2;
    let fields = request.headers_mut();
    for h in &parsed.headers {
        let name = HeaderName::from_bytes(h.name.get(head)).map_err(|_| Untranslatable::Field)?;
        // `host` becomes `:authority`.
        if super::is_connection_specific(name.as_str()) || name == http::header::HOST {
            continue;
        }
        let value =
            HeaderValue::from_bytes(h.value.get(head)).map_err(|_| Untranslatable::Field)?;
        fields.append(name, value);
    }
    fields.insert(http::header::TE, HeaderValue::from_static("trailers"));
    Ok(request)
}

/// Writes the HTTP/1.1 head for an HTTP/2 response head: its status and fields, then its
/// framing: `content-length` as the upstream sent it, else `transfer-encoding: chunked` when
/// a body (or trailers) follows, else `content-length: 0`.
pub fn write_response_head(parts: &http::response::Parts, has_body: bool, out: &mut BytesMut) {
    let status = parts.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if super::is_connection_specific(name.as_str()) {
            continue;
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        if has_body {
            field(out, b"transfer-encoding", b"chunked");
        } else if !status.is_informational() && status != 204 && status != 304 {
            field(out, b"content-length", b"0");
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked body with `trailers` in its trailer section (RFC 9112 §7.1.2).
pub fn write_last_chunk(trailers: Option<&HeaderMap>, out: &mut BytesMut) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_becomes_an_http2_request_with_te_trailers() {
        let head = b"POST /pkg.Svc/Call?x=1 HTTP/1.1\r\nHost: backend:50051\r\nConnection: keep-alive\r\nTE: trailers, deflate\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\nX-Client-Cn: alice\r\nGrpc-Timeout: 1S\r\n\r\n";
        let req = request_of(head, true).ok();
        let req = req.as_ref().map(|r| {
            (
                r.method().as_str().to_string(),
                r.uri().to_string(),
                r.headers()
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
                    .collect::<Vec<_>>(),
            )
        });
        assert_eq!(
            req,
            Some((
                "POST".to_string(),
                "https://backend:50051/pkg.Svc/Call?x=1".to_string(),
                vec![
                    "content-type: application/grpc".to_string(),
                    "x-client-cn: alice".to_string(),
                    "grpc-timeout: 1S".to_string(),
                    "te: trailers".to_string(),
                ]
            ))
        );
    }

    #[test]
    fn a_head_http2_cannot_carry_is_refused() {
        assert!(request_of(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", false).is_err());
        assert_eq!(
            request_of(b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", false).err(),
            Some(Untranslatable::Field)
        );
        assert_eq!(
            request_of(b"nonsense", false).err(),
            Some(Untranslatable::Head)
        );
    }

    fn response(status: u16, fields: &[(&'static str, &'static str)]) -> http::response::Parts {
        let mut r = http::Response::new(());
        *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
        for (n, v) in fields {
            r.headers_mut().append(*n, HeaderValue::from_static(v));
        }
        r.into_parts().0
    }

    #[test]
    fn a_response_head_is_framed_for_http1() {
        let mut out = BytesMut::new();
        write_response_head(
            &response(200, &[("content-type", "application/grpc")]),
            true,
            &mut out,
        );
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        out.clear();
        // A trailers-only gRPC answer: no body at all.
        write_response_head(&response(200, &[("grpc-status", "14")]), false, &mut out);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\ngrpc-status: 14\r\ncontent-length: 0\r\n\r\n"
        );
        out.clear();
        write_response_head(&response(204, &[]), false, &mut out);
        assert_eq!(&out[..], b"HTTP/1.1 204 No Content\r\n\r\n");
        out.clear();
        write_response_head(&response(200, &[("content-length", "5")]), true, &mut out);
        assert_eq!(&out[..], b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
    }

    #[test]
    fn trailers_go_in_the_last_chunk() {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        t.insert("grpc-message", HeaderValue::from_static("ok"));
        let mut out = BytesMut::new();
        write_last_chunk(Some(&t), &mut out);
        assert_eq!(&out[..], b"0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n");
        out.clear();
        write_last_chunk(None, &mut out);
        assert_eq!(&out[..], b"0\r\n\r\n");
    }
}
