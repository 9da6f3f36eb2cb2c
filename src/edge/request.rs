//! What the request phases take, whatever protocol carried the request: the head as a
//! protocol driver received it ([`Incoming`]), the client side to answer on ([`Client`]), and
//! the routed request every later phase reads ([`Request`]).

use bytes::BytesMut;

use super::peer::Peer;
use crate::config::Server;
use crate::conn::Stream;
use crate::http::RequestHead;
use crate::vars::map::VarMap;

/// The client side as the content phase uses it: the stream to answer on and the bytes read
/// past the current head (its body, then any pipelined request).
pub struct Client<'c> {
    /// The client's stream.
    pub stream: &'c mut Stream,
    /// Bytes read and not yet consumed: the request body first.
    pub unread: &'c mut BytesMut,
}

/// The protocol a request arrived over: what `$server_protocol` and `$request` say, and what
/// the client can read back. The HTTP/1.x driver reads it off the request line; an HTTP/2
/// stream is `Http2` whatever its head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2.
    Http2,
}

impl Protocol {
    /// The HTTP/1.x version of a parsed request line.
    pub fn of_http1(head: &RequestHead) -> Protocol {
        if head.version_minor == 0 {
            Protocol::Http10
        } else {
            Protocol::Http11
        }
    }

    /// nginx's `$server_protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http10 => "HTTP/1.0",
            Protocol::Http11 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2.0",
        }
    }
}

/// A request head as a protocol driver received it, before routing.
#[derive(Clone, Copy)]
pub struct Incoming<'a> {
    /// The protocol it came over.
    pub protocol: Protocol,
    /// The parsed head.
    pub head: &'a RequestHead,
    /// The bytes the head was parsed from (its spans point into them).
    pub bytes: &'a [u8],
    /// `$connection_requests`: requests on this connection so far, this one included.
    pub served: u64,
    /// No request may follow this one on the connection (keepalive_requests, draining).
    pub last: bool,
}

/// How ringgate's own answers reach a client: nginx's pages, or a gRPC status.
///
/// A gRPC client reads a call's outcome from `grpc-status`. Given an HTTP error page it has
/// to translate the status itself, and the RST_STREAM(NO_ERROR) that follows a complete
/// answer to an unfinished request can reach it first and turn the translation into
/// INTERNAL. So a gRPC call gets `200` with the status in a trailers-only response (as Envoy
/// answers one); the access log keeps the HTTP status nginx would log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect<'a> {
    /// An HTTP status and its page.
    Page,
    /// A gRPC call: the media type it was sent as (`application/grpc`, `+proto`,
    /// `application/grpc-web...`), said back without its parameters.
    Grpc(&'a [u8]),
}

impl<'a> Dialect<'a> {
    /// The dialect of a request, by its `content-type`.
    pub fn of(head: &RequestHead, bytes: &'a [u8]) -> Dialect<'a> {
        const GRPC: &[u8] = b"application/grpc";
        let Some(value) = head.header(bytes, b"content-type") else {
            return Dialect::Page;
        };
        let media = value
            .split(|&b| b == b';')
            .next()
            .unwrap_or(value)
            .trim_ascii();
        let is_grpc = media
            .get(..GRPC.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(GRPC))
            && matches!(media.get(GRPC.len()), None | Some(b'+' | b'-'));
        if is_grpc {
            Dialect::Grpc(media)
        } else {
            Dialect::Page
        }
    }
}

/// One routed request: what every phase after routing reads.
pub struct Request<'a> {
    /// The protocol it came over.
    pub protocol: Protocol,
    /// The client.
    pub peer: &'a Peer,
    /// The server (virtual host) the Host selected.
    pub server: &'a Server,
    /// `[[map]]` variables.
    pub maps: &'a [VarMap],
    /// The parsed head.
    pub head: &'a RequestHead,
    /// The bytes the head was parsed from.
    pub bytes: &'a [u8],
    /// `$host`.
    pub host: &'a [u8],
    /// `$uri` (normalized).
    pub uri: &'a [u8],
    /// `$connection_requests`.
    pub served: u64,
    /// No request may follow this one on the connection.
    pub last: bool,
}

impl Request<'_> {
    /// The request line, rendered only when a log line needs it.
    pub fn line(&self) -> RequestLine<'_> {
        RequestLine {
            head: self.head,
            bytes: self.bytes,
        }
    }

    /// The client may send another request after this one's response.
    pub fn client_keeps_alive(&self) -> bool {
        !self.last && self.head.keep_alive
    }

    /// How ringgate's own answers to this request are put: pages, or gRPC statuses.
    pub fn dialect(&self) -> Dialect<'_> {
        Dialect::of(self.head, self.bytes)
    }
}

/// `METHOD target`, for log lines.
pub struct RequestLine<'a> {
    head: &'a RequestHead,
    bytes: &'a [u8],
}

impl std::fmt::Display for RequestLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            String::from_utf8_lossy(self.head.method_span.get(self.bytes)),
            String::from_utf8_lossy(self.head.target.get(self.bytes))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_protocol_names_as_nginx_prints_them() {
        assert_eq!(Protocol::Http10.name(), "HTTP/1.0");
        assert_eq!(Protocol::Http11.name(), "HTTP/1.1");
        assert_eq!(Protocol::Http2.name(), "HTTP/2.0");
        let limits = crate::http::Limits {
            max_head_bytes: 4096,
            max_headers: 10,
            max_line_bytes: 4096,
        };
        for (raw, want) in [
            (&b"GET / HTTP/1.0\r\n\r\n"[..], Protocol::Http10),
            (&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..], Protocol::Http11),
        ] {
            let head = crate::http::parse_request(raw, &limits)
                .ok()
                .flatten()
                .map(|h| Protocol::of_http1(&h));
            assert_eq!(head, Some(want));
        }
    }
}
