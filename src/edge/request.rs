//! What the request phases take, whatever protocol carried the request: the head as a
//! protocol driver received it ([`Incoming`]), the client side to answer on ([`Client`]), and
//! the routed request every later phase reads ([`Request`]).

use bytes::BytesMut;

use super::peer::Peer;
use super::variables::RequestVars;
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

/// A request head as a protocol driver received it, before routing.
#[derive(Clone, Copy)]
pub struct Incoming<'a> {
    /// The parsed head.
    pub head: &'a RequestHead,
    /// The bytes the head was parsed from (its spans point into them).
    pub bytes: &'a [u8],
    /// `$connection_requests`: requests on this connection so far, this one included.
    pub served: u64,
    /// No request may follow this one on the connection (keepalive_requests, draining).
    pub last: bool,
}

/// One routed request: what every phase after routing reads.
pub struct Request<'a> {
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

impl<'a> Request<'a> {
    /// Variable evaluation for this request (`proxy_host` is `$proxy_host` when proxying).
    pub fn vars<'b>(&'b self, proxy_host: &'b [u8]) -> RequestVars<'b> {
        RequestVars {
            peer: self.peer,
            head: self.head,
            buf: self.bytes,
            host: self.host,
            uri: self.uri,
            proxy_host,
            maps: self.maps,
            server_name: self.server.server_names.first().map_or("", String::as_str),
            served: self.served,
            log: None,
        }
    }

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
