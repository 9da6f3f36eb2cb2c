//! The HTTP/1.1 connection: from an accepted socket to close. The handshake and the peer are
//! settled once; then each request head is read and run through the request phases
//! ([`super::phases::run`]), logged, and the connection is kept alive or closed, or, after an
//! upstream's `101`, becomes a tunnel ([`super::tunnel`]) whose request is logged when it
//! closes.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;

use super::core::{ConnSlot, Core, Generation};
use super::handshake::{self, Handshaken};
use super::log::Logged;
use super::outcome::{LogFacts, Next, Refusal};
use super::peer::Peer;
use super::phases::Origin;
use super::refusal_log::Kind;
use super::request::{Client, Incoming, Protocol};
use super::tunnel::{self, Tunnel};
use crate::config::{HttpSettings, Server, Socket};
use crate::conn::Stream;
use crate::http::{self, RequestError, RequestHead};

/// An admitted connection, before its handshake.
pub struct Accepted {
    /// The client's socket.
    pub tcp: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Which of the configuration's sockets accepted it (`Config::sockets` index).
    pub socket: usize,
    /// Its place in the connection counts, given back when it is dropped.
    pub slot: ConnSlot,
}

/// Serves one accepted connection until it closes.
pub async fn serve(core: Rc<Core>, accepted: Accepted) {
    let Accepted {
        tcp,
        peer: addr,
        socket,
        slot,
    } = accepted;
    // Counted open (in the worker and in the process) until this function returns.
    let _slot = slot;
    // The configuration generation current at accept serves this connection to its end: a
    // reload changes what new connections get, never what an established one is doing.
    let generation = core.generation();
    let Some(sock) = generation.config.sockets.get(socket) else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().unwrap_or(sock.addr);
    let serial = core.next_connection_serial();
    let (mut stream, server, tls, refusal) = if sock.tls {
        // Boxed: a connection's task keeps only what an idle connection needs inline (the
        // handshake's and a request's larger states live on the heap while they run).
        match Box::pin(handshake::handshake(&generation, sock, tcp, addr)).await {
            Some(Handshaken {
                stream,
                server,
                facts,
                refusal,
            }) => (
                Stream::ServerTls(Box::new(stream)),
                server,
                Some(facts),
                refusal,
            ),
            None => return,
        }
    } else {
        (Stream::Plain(tcp), sock.hosts.default, None, None)
    };
    let Some(listener) = generation.config.servers.get(server) else {
        return;
    };
    let peer = Peer::establish(&generation.config, addr, local, tls, server, serial);
    let conn = Connection {
        core: &core,
        generation: &generation,
        socket: sock,
        server: listener,
        peer: &peer,
    };
    let switched = match refusal {
        Some(refusal) => {
            conn.answer_refused(&mut stream, &refusal).await;
            None
        }
        None => conn.serve_requests(&mut stream).await,
    };
    match switched {
        Some(switched) => conn.relay(stream, *switched).await,
        None => {
            let _ = stream.shutdown().await;
        }
    }
}

/// What the connection does after a request.
enum After {
    /// Read the next request.
    NextRequest,
    /// Close.
    Close,
    /// Relay: the connection switched protocols.
    Relay(Box<Switched>),
}

/// A request whose connection switched protocols. Its access-log line waits for the tunnel to
/// close, as nginx's does: its status is the `101`, its bytes and time the tunnel's.
struct Switched {
    tunnel: Box<Tunnel>,
    /// What the client sent after the request's head: the new protocol's first bytes.
    from_client: BytesMut,
    facts: LogFacts,
    protocol: Protocol,
    head: RequestHead,
    bytes: Bytes,
    served: u64,
}

/// What every request of one connection shares.
struct Connection<'a> {
    core: &'a Core,
    generation: &'a Generation,
    socket: &'a Socket,
    /// The server the connection was accepted for (its HTTP settings apply to reading heads).
    server: &'a Server,
    peer: &'a Peer,
}

impl Connection<'_> {
    /// nginx-compatible mode: the handshake completed with a refused certificate, so the
    /// first request gets the 400 page (and an access-log line, as nginx writes one).
    async fn answer_refused(&self, stream: &mut Stream, refusal: &Refusal) {
        let started = Instant::now();
        let http = &self.server.http;
        let mut buf = BytesMut::with_capacity(4096);
        let head = monoio::time::timeout(
            http.header_timeout,
            read_head(stream, &mut buf, &limits(http), http.header_timeout),
        )
        .await;
        let _ = stream
            .write_bytes(Bytes::from_static(refusal.page().bytes()))
            .await;
        if let Ok(Ok(head)) = head {
            let bytes = buf.split_to(head.head_len.min(buf.len()));
            let verify = self.peer.tls.as_ref().map_or("", |t| t.verify.as_str());
            let mut facts = LogFacts {
                started: Some(started),
                server: self.peer.server,
                decision: format!("deny: client certificate ({verify})").into(),
                ..LogFacts::default()
            };
            facts.refused(refusal);
            let logged = Logged {
                protocol: Protocol::of_http1(&head),
                head: &head,
                bytes: &bytes,
                served: 1,
            };
            let config = &self.generation.config;
            super::log::request(&self.core.access_log, config, self.peer, &logged, &facts);
        }
    }

    /// Reads and serves requests until the connection closes (None) or switches protocols.
    async fn serve_requests(&self, stream: &mut Stream) -> Option<Box<Switched>> {
        let http = &self.server.http;
        let limits = limits(http);
        // Empty until the first bytes arrive: an idle connection holds no request buffer.
        let mut unread = BytesMut::new();
        let mut served: u64 = 0;
        loop {
            if served > 0
                && !wait_next_request(self.core, stream, &mut unread, http.keepalive_timeout).await
            {
                break;
            }
            let started = Instant::now();
            let head = match read_head(stream, &mut unread, &limits, http.header_timeout).await {
                Ok(h) => h,
                Err(e) => {
                    self.head_failed(stream, e).await;
                    break;
                }
            };
            // The head gets a buffer of its own (a split, not a copy): the body and any
            // pipelined request stay in `unread`, and the head stays readable for the log.
            let bytes = unread.split_to(head.head_len.min(unread.len())).freeze();
            served += 1;
            let incoming = Incoming {
                protocol: Protocol::of_http1(&head),
                head: &head,
                bytes: &bytes,
                served,
                last: served >= http.keepalive_requests || self.core.drain.is_draining(),
            };
            match self
                .one_request(stream, &mut unread, incoming, started)
                .await
            {
                After::NextRequest if !incoming.last => {}
                After::NextRequest | After::Close => break,
                After::Relay(mut switched) => {
                    switched.from_client = std::mem::take(&mut unread);
                    return Some(switched);
                }
            }
        }
        None
    }

    /// Relays a switched connection until the tunnel closes, then logs its request.
    async fn relay(&self, stream: Stream, switched: Switched) {
        let Switched {
            tunnel,
            from_client,
            mut facts,
            protocol,
            head,
            bytes,
            served,
        } = switched;
        let relayed = tunnel::run(&self.core.drain, stream, from_client, *tunnel).await;
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

    /// Runs one request through the phases and logs it (a switched one when its tunnel
    /// closes).
    async fn one_request(
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

    /// Answers a head that could not be read, when there is anything to answer.
    async fn head_failed(&self, stream: &mut Stream, e: HeadError) {
        let refusal = match e {
            HeadError::Closed | HeadError::Io => return,
            HeadError::Timeout => {
                crate::refusal_line!(
                    Kind::Timeout,
                    info,
                    "listener={} peer={}: client timed out sending the request head (408)",
                    self.server.name,
                    self.peer.addr
                );
                Refusal::HeadTimeout
            }
            HeadError::Bad(e) => {
                let refusal = Refusal::BadHead(e);
                crate::refusal_line!(
                    Kind::BadRequest,
                    info,
                    "listener={} peer={}: bad request: {} ({})",
                    self.server.name,
                    self.peer.addr,
                    refusal.reason(),
                    refusal.status()
                );
                refusal
            }
        };
        let _ = stream
            .write_bytes(Bytes::from_static(refusal.page().bytes()))
            .await;
    }
}

fn limits(h: &HttpSettings) -> http::Limits {
    http::Limits {
        max_head_bytes: h.max_header_bytes,
        max_headers: h.max_headers,
        max_line_bytes: h.max_header_line_bytes,
    }
}

/// Why no request head could be read.
enum HeadError {
    /// The peer closed, went idle past keepalive_timeout, or we are draining: close quietly.
    Closed,
    /// The head did not arrive in time (408).
    Timeout,
    /// The head is malformed or too large.
    Bad(RequestError),
    /// The connection failed.
    Io,
}

/// Reads until a complete request head is in `buf` (bytes after it stay in `buf`).
async fn read_head(
    stream: &mut Stream,
    buf: &mut BytesMut,
    limits: &http::Limits,
    header_timeout: Duration,
) -> Result<RequestHead, HeadError> {
    let deadline = Instant::now() + header_timeout;
    loop {
        if !buf.is_empty() {
            match http::parse_request(buf, limits) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(e) => return Err(HeadError::Bad(e)),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let had = buf.len();
        match monoio::time::timeout(left, stream.read_buf(buf, limits.max_head_bytes + 1)).await {
            Err(_) => {
                return Err(if had == 0 {
                    HeadError::Closed
                } else {
                    HeadError::Timeout
                })
            }
            Ok(Err(_)) => return Err(HeadError::Io),
            Ok(Ok(0)) => return Err(HeadError::Closed),
            Ok(Ok(_)) => {}
        }
    }
}

/// Waits for the first byte of the next request on a kept-alive connection; false when the
/// connection should close (idle timeout, peer gone, draining).
async fn wait_next_request(
    core: &Core,
    stream: &mut Stream,
    buf: &mut BytesMut,
    idle: Duration,
) -> bool {
    if !buf.is_empty() {
        return true;
    }
    if core.drain.is_draining() {
        return false;
    }
    let drain = core.drain.wait();
    monoio::select! {
        r = monoio::time::timeout(idle, stream.read_buf(buf, 16 * 1024)) => matches!(r, Ok(Ok(n)) if n > 0),
        _ = drain => false,
    }
}
