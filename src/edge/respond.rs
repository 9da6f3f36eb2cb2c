//! Answers ringgate makes itself: nginx's `return` (a text or a redirect, rendered with the
//! request's variables) and the page of a refused request, or, to a gRPC call, the same
//! outcome as a gRPC status.

use bytes::{BufMut, BytesMut};

use super::outcome::{GrpcCode, LogFacts, Next, Refusal};
use super::request::{Dialect, Request};
use crate::config::Rule;
use crate::conn::Stream;
use crate::http;
use crate::vars::Template;

/// Sends a refusal's page; the connection always closes after it (the pages say
/// `Connection: close`, and any request body is left unread).
pub async fn refuse(stream: &mut Stream, refusal: &Refusal, facts: &mut LogFacts) -> Next {
    facts.refused(refusal);
    let _ = stream
        .write_bytes(bytes::Bytes::from_static(refusal.page().bytes()))
        .await;
    Next::Close
}

/// Sends a refusal in the request's dialect: the page, or its gRPC status. The connection
/// closes after either (an HTTP/2 stream just ends).
pub async fn refuse_as(
    stream: &mut Stream,
    dialect: Dialect<'_>,
    refusal: &Refusal,
    facts: &mut LogFacts,
) -> Next {
    let Dialect::Grpc(media) = dialect else {
        return refuse(stream, refusal, facts).await;
    };
    facts.refused(refusal);
    let status = GrpcStatus {
        media,
        code: refusal.grpc_code(),
        message: refusal.reason().as_bytes(),
    };
    grpc_status(stream, status, facts).await
}

/// A gRPC call's outcome, answered by ringgate itself.
struct GrpcStatus<'a> {
    media: &'a [u8],
    code: GrpcCode,
    message: &'a [u8],
}

/// Sends a trailers-only gRPC response (`200`, the status in the head, no body; on HTTP/2 one
/// HEADERS frame that ends the stream). The HTTP status logged is the caller's.
async fn grpc_status(stream: &mut Stream, status: GrpcStatus<'_>, facts: &mut LogFacts) -> Next {
    let mut out = BytesMut::with_capacity(192 + status.message.len() * 3);
    write_grpc_status(&mut out, &status);
    facts.bytes = out.len() as u64;
    facts.body_bytes = 0;
    let _ = stream.write_owned(out).await;
    Next::Close
}

fn write_grpc_status(out: &mut BytesMut, status: &GrpcStatus<'_>) {
    out.put_slice(b"HTTP/1.1 200 OK\r\nServer: ringgate\r\nDate: ");
    out.put_slice(&crate::clock::cached_http_date());
    out.put_slice(b"\r\nContent-Type: ");
    out.put_slice(status.media);
    out.put_slice(b"\r\nGrpc-Status: ");
    out.put_slice(status.code.value().to_string().as_bytes());
    out.put_slice(b"\r\nGrpc-Message: ");
    // gRPC's percent-encoding: what is not printable ASCII, and `%` itself.
    for &b in status.message {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.put_u8(b);
        } else {
            out.put_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out.put_slice(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// Answers with a rule's `return` (server or location rewrite phase).
pub async fn rule(
    stream: &mut Stream,
    req: &Request<'_>,
    rule: &Rule,
    facts: &mut LogFacts,
) -> Next {
    facts.decision = format!("rule: return {}", rule.status).into();
    text(stream, req, rule.status, rule.body.as_ref(), facts).await
}

/// Answers with nginx's `return`: the body rendered with the request's variables.
pub async fn text(
    stream: &mut Stream,
    req: &Request<'_>,
    status: u16,
    body: Option<&Template>,
    facts: &mut LogFacts,
) -> Next {
    let mut text = Vec::new();
    if let Some(b) = body {
        req.vars(b"").render(b, &mut text);
    }
    if let (Dialect::Grpc(media), 400..) = (req.dialect(), status) {
        // An error `return` ends a gRPC call with the status gRPC maps it to; its text, or
        // the reason phrase, is the message.
        facts.status = status;
        let reason = http::reason_phrase(status);
        let message = if text.is_empty() {
            reason.as_bytes()
        } else {
            &text
        };
        let grpc = GrpcStatus {
            media,
            code: GrpcCode::of_http(status),
            message,
        };
        return grpc_status(stream, grpc, facts).await;
    }
    let keep = req.client_keeps_alive() && req.head.framing == http::BodyFraming::None;
    let mut out = BytesMut::with_capacity(512 + text.len());
    let body_len = write_return(&mut out, status, &text, keep);
    facts.status = status;
    facts.bytes = out.len() as u64;
    facts.body_bytes = body_len as u64;
    let (res, _) = stream.write_owned(out).await;
    Next::keep_if(res.is_ok() && keep)
}

/// The response to nginx's `return`: a redirect with Location for 301/302/303/307/308, the
/// text as body for other codes with text, or the standard page.
fn write_return(out: &mut BytesMut, status: u16, text: &[u8], keep_alive: bool) -> usize {
    let reason = http::reason_phrase(status);
    let is_redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
    if is_redirect || text.is_empty() {
        let body = if status >= 300 {
            http::canned::error_page(status, reason)
        } else {
            Vec::new()
        };
        out.put_slice(format!("HTTP/1.1 {status} {reason}\r\nServer: ringgate\r\n").as_bytes());
        if is_redirect {
            out.put_slice(b"Location: ");
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        out.put_slice(
            format!(
                "Content-Type: text/html\r\nContent-Length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.put_slice(if keep_alive {
            b"\r\n".as_slice()
        } else {
            b"Connection: close\r\n\r\n".as_slice()
        });
        out.put_slice(&body);
        body.len()
    } else {
        http::canned::write_response(out, status, reason, b"text/plain", text, keep_alive);
        text.len()
    }
}
