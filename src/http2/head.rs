//! The HTTP/1.1 head an HTTP/2 request stands for (RFC 9113 §8.3): `:method` and `:path` make
//! the request line, `:authority` the `Host` field (it takes precedence over a `host` field,
//! which is then dropped), `cookie` fields are joined with "; " (§8.2.3), and a body without
//! `content-length` is announced as chunked, which is how the request phases then read it.
//!
//! An extended CONNECT (RFC 8441: `:method CONNECT` with `:protocol`, WebSocket over HTTP/2)
//! stands for the HTTP/1.1 upgrade request of that protocol: `GET` with `Upgrade: <protocol>`
//! and `Connection: upgrade`, and for WebSocket the `Sec-WebSocket-Key` an HTTP/1.1 server
//! needs (RFC 8441 §5: the HTTP/2 client sends none; the caller makes one).
//!
//! The frame layer has already refused what HTTP/2 forbids (connection-specific fields, `te`
//! other than `trailers`, uppercase names, invalid values, missing pseudo-headers); what is
//! left is written verbatim and read by the HTTP/1.1 parser, whose limits apply as to any
//! request.

use http::request::Parts;

use super::field;
use http::Method;

/// Why a stream's request cannot be made into a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// A plain `CONNECT` (to a host and port): not served (405).
    Connect,
    /// A field value with leading or trailing whitespace: a malformed request (RFC 9113
    /// §8.2.1) that a proxy must not forward (§8.1.1); HTTP/1.1 would strip what HTTP/2
    /// keeps.
    PaddedValue,
}

/// An extended CONNECT's protocol, and the `Sec-WebSocket-Key` to send for it.
#[derive(Debug, Clone, Copy)]
pub struct Tunnel<'a> {
    /// `:protocol`, such as `websocket`.
    pub protocol: &'a str,
    /// The key (base64 of 16 random bytes) when the protocol is WebSocket.
    pub websocket_key: &'a str,
}

/// Writes the HTTP/1.1 head of `parts`; `has_body` says whether DATA frames follow, `tunnel`
/// is the extended CONNECT's protocol, if it is one.
pub fn http1_head(
    parts: &Parts,
    has_body: bool,
    tunnel: Option<Tunnel<'_>>,
) -> Result<Vec<u8>, Unfit> {
    let method = match (&parts.method, tunnel) {
        (&Method::CONNECT, Some(_)) => "GET",
        (&Method::CONNECT, None) => return Err(Unfit::Connect),
        (m, _) => m.as_str(),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = Vec::with_capacity(256 + path.len());
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = parts.uri.authority().map(|a| a.as_str());
    if let Some(a) = authority {
        field(&mut out, b"host", a.as_bytes());
    }
    let mut cookies: Vec<&[u8]> = Vec::new();
    let mut has_length = false;
    for (name, value) in &parts.headers {
        let v = value.as_bytes();
        let padded = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
        if padded(v.first()) || padded(v.last()) {
            return Err(Unfit::PaddedValue);
        }
        let n = name.as_str();
        if n == "host" && authority.is_some() {
            continue;
        }
        if n == "cookie" {
            cookies.push(value.as_bytes());
            continue;
        }
        has_length |= n == "content-length";
        field(&mut out, n.as_bytes(), value.as_bytes());
    }
    if !cookies.is_empty() {
        field(&mut out, b"cookie", &cookies.join(&b"; "[..]));
    }
    match tunnel {
        Some(t) => {
            field(&mut out, b"upgrade", t.protocol.as_bytes());
            field(&mut out, b"connection", b"upgrade");
            if t.protocol.eq_ignore_ascii_case("websocket") {
                field(&mut out, b"sec-websocket-key", t.websocket_key.as_bytes());
            }
        }
        None if has_body && !has_length => {
            field(&mut out, b"transfer-encoding", b"chunked");
        }
        None => {}
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(req: http::Request<()>, has_body: bool) -> String {
        let (parts, ()) = req.into_parts();
        String::from_utf8(http1_head(&parts, has_body, None).unwrap()).unwrap()
    }

    #[test]
    fn pseudo_headers_make_the_request_line_and_host() {
        let req = http::Request::get("https://app.example:8443/a/b?q=1")
            .header("host", "other.example")
            .header("accept", "*/*")
            .body(())
            .unwrap();
        assert_eq!(
            head(req, false),
            "GET /a/b?q=1 HTTP/1.1\r\nhost: app.example:8443\r\naccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn cookies_are_joined_and_a_body_without_length_is_chunked() {
        let req = http::Request::post("https://a/up")
            .header("cookie", "a=1")
            .header("x-b", "2")
            .header("cookie", "c=3")
            .body(())
            .unwrap();
        assert_eq!(
            head(req, true),
            "POST /up HTTP/1.1\r\nhost: a\r\nx-b: 2\r\ncookie: a=1; c=3\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let req = http::Request::post("https://a/up")
            .header("content-length", "5")
            .body(())
            .unwrap();
        assert_eq!(
            head(req, true),
            "POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\n"
        );
    }

    #[test]
    fn a_value_with_surrounding_whitespace_is_malformed() {
        for v in [" ok", "ok\t", " "] {
            let (parts, ()) = http::Request::get("https://a/")
                .header("x-test", v)
                .body(())
                .unwrap()
                .into_parts();
            assert_eq!(
                http1_head(&parts, false, None),
                Err(Unfit::PaddedValue),
                "{v:?}"
            );
        }
    }

    #[test]
    fn connect_is_unfit() {
        let (parts, ()) = http::Request::connect("https://a:443")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(http1_head(&parts, true, None), Err(Unfit::Connect));
    }

    #[test]
    fn an_extended_connect_is_the_upgrade_request_it_stands_for() {
        let (parts, ()) = http::Request::connect("https://chat.example/ws?room=1")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-protocol", "chat")
            .body(())
            .unwrap()
            .into_parts();
        let tunnel = Tunnel {
            protocol: "websocket",
            websocket_key: "dGhlIHNhbXBsZSBub25jZQ==",
        };
        let head = http1_head(&parts, true, Some(tunnel)).unwrap();
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /ws?room=1 HTTP/1.1\r\nhost: chat.example\r\nsec-websocket-version: 13\r\n\
sec-websocket-protocol: chat\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
    }
}
