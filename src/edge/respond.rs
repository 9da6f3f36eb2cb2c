//! Answers ringgate makes itself: nginx's `return` (a text or a redirect, rendered with the
//! request's variables) and the page of a refused request.

use bytes::BytesMut;

use super::outcome::{LogFacts, Next, Refusal};
use super::request::Request;
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
    use bytes::BufMut;
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
