//! What every request of a connection shares, whichever protocol carries it: [`Session`], and
//! running one request through the phases ([`super::phases::run`]) and the log.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::core::{Core, Generation};
use super::log::Logged;
use super::outcome::{LogFacts, Next, Refusal};
use super::peer::Peer;
use super::phases::Origin;
use super::request::{Client, Incoming, Protocol};
use super::tunnel::Tunnel;
use crate::config::{HttpSettings, Server, Socket};
use crate::conn::Stream;
use crate::http::{self, RequestHead};

/// What the connection does after a request.
pub(super) enum After {
    /// Read the next request.
    NextRequest,
    /// Close.
    Close,
    /// Relay: the connection switched protocols.
    Relay(Box<Switched>),
}

/// A request whose connection switched protocols. Its access-log line waits for the tunnel to
/// close, as nginx's does: its status is the `101`, its bytes and time the tunnel's.
pub(super) struct Switched {
    pub(super) tunnel: Box<Tunnel>,
    /// What the client sent after the request's head: the new protocol's first bytes.
    pub(super) from_client: BytesMut,
    pub(super) facts: LogFacts,
    pub(super) protocol: Protocol,
    pub(super) head: RequestHead,
    pub(super) bytes: Bytes,
    pub(super) served: u64,
}

/// One client connection as its requests see it: the worker's core, the configuration
/// generation it was accepted under, the socket, the server the handshake chose and the peer.
/// Both protocol drivers run each request through it.
pub(super) struct Session<'a> {
    pub(super) core: &'a Core,
    pub(super) generation: &'a Generation,
    pub(super) socket: &'a Socket,
    /// The server the connection was accepted for (its HTTP settings apply to reading heads).
    pub(super) server: &'a Server,
    pub(super) peer: &'a Peer,
}

impl Session<'_> {
    /// The access-log line of a request answered with the handshake's refusal page.
    pub(super) fn log_refused(
        &self,
        protocol: Protocol,
        head: &RequestHead,
        bytes: &[u8],
        started: Instant,
        refusal: &Refusal,
    ) {
        let verify = self.peer.tls.as_ref().map_or("", |t| t.verify.as_str());
        let mut facts = LogFacts {
            started: Some(started),
            server: self.peer.server,
            decision: format!("deny: client certificate ({verify})").into(),
            ..LogFacts::default()
        };
        facts.refused(refusal);
        let logged = Logged {
            protocol,
            head,
            bytes,
            served: 1,
        };
        let config = &self.generation.config;
        super::log::request(&self.core.access_log, config, self.peer, &logged, &facts);
    }

    /// Runs one request through the phases and logs it (a switched one when its tunnel
    /// closes).
    pub(super) async fn one_request(
        &self,
        stream: &mut Stream,
        unread: &mut BytesMut,
        incoming: Incoming<'_>,
        started: Instant,
    ) -> After {
        let mut facts = LogFacts {
            started: Some(started),
            server: self.peer.server,
            ..LogFacts::default()
        };
        let origin = Origin {
            generation: self.generation,
            socket: self.socket,
            peer: self.peer,
        };
        let mut client = Client { stream, unread };
        let next = Box::pin(super::phases::run(
            origin,
            &mut client,
            incoming,
            &mut facts,
        ))
        .await;
        let after = match next {
            Next::KeepAlive => After::NextRequest,
            Next::Close => After::Close,
            Next::Tunnel(tunnel) => {
                return After::Relay(Box::new(Switched {
                    tunnel,
                    from_client: BytesMut::new(),
                    facts,
                    protocol: incoming.protocol,
                    head: incoming.head.clone(),
                    bytes: Bytes::copy_from_slice(incoming.bytes),
                    served: incoming.served,
                }))
            }
        };
        if facts.status == 0 {
            // No response went out: the client went away first (nginx's 499).
            facts.status = 499;
        }
        let logged = Logged {
            protocol: incoming.protocol,
            head: incoming.head,
            bytes: incoming.bytes,
            served: incoming.served,
        };
        let config = &self.generation.config;
        super::log::request(&self.core.access_log, config, self.peer, &logged, &facts);
        after
    }

    /// Relays a switched connection until the tunnel closes, then logs its request.
    pub(super) async fn relay(&self, stream: Stream, switched: Switched) {
        let Switched {
            tunnel,
            from_client,
            mut facts,
            protocol,
            head,
            bytes,
            served,
        } = switched;
        // Boxed: a tunnel's pumps are large, and every request's future would carry their size.
        let relayed = Box::pin(super::tunnel::run(
            &self.core.drain,
            stream,
            from_client,
            *tunnel,
        ))
        .await;
        facts.bytes += relayed.to_client;
        facts.body_bytes += relayed.to_client;
        let logged = Logged {
            protocol,
            head: &head,
            bytes: &bytes,
            served,
        };
        let config = &self.generation.config;
        super::log::request(&self.core.access_log, config, self.peer, &logged, &facts);
    }
}

/// The head-parsing limits of a server's HTTP settings.
pub(super) fn limits(h: &HttpSettings) -> http::Limits {
    http::Limits {
        max_head_bytes: h.max_header_bytes,
        max_headers: h.max_headers,
        max_line_bytes: h.max_header_line_bytes,
    }
}
