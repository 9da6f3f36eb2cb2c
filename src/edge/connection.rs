//! A client connection from accept to close: the handshake and the peer are settled once, then
//! the connection is served in the protocol it speaks, by the HTTP/1.x driver
//! ([`super::http1`]) or the HTTP/2 one ([`super::http2`]).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use monoio::net::TcpStream;

use super::core::{ConnSlot, Core};
use super::handshake::{self, Handshaken};
use super::outcome::Refusal;
use super::peer::Peer;
use super::session::Session;
use crate::conn::Stream;

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
    let (stream, server, tls, refusal) = if sock.tls {
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
    let conn = Session {
        core: &core,
        generation: &generation,
        socket: sock,
        server: listener,
        peer: &peer,
    };
    speak(&conn, stream, refusal).await;
}

/// The first bytes of an HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a plain connection's first bytes say it speaks.
enum Opening {
    /// The HTTP/2 connection preface.
    Http2,
    /// Anything else: HTTP/1.x.
    Http1,
    /// Nothing came, or the connection failed.
    Nothing,
}

/// Reads until `unread` holds the HTTP/2 preface or bytes that cannot begin it.
async fn opening(stream: &mut Stream, unread: &mut BytesMut, wait: Duration) -> Opening {
    let sniff = async {
        loop {
            let n = unread.len().min(H2_PREFACE.len());
            if unread[..n] != H2_PREFACE[..n] {
                return Opening::Http1;
            }
            if n == H2_PREFACE.len() {
                return Opening::Http2;
            }
            match stream.read_buf(unread, 16 * 1024).await {
                Ok(0) | Err(_) => return Opening::Nothing,
                Ok(_) => {}
            }
        }
    };
    crate::deadline::timeout(wait, sniff)
        .await
        .unwrap_or(Opening::Nothing)
}

/// Serves the connection in the protocol it speaks: HTTP/2 when ALPN chose h2, or when a
/// plain listener with `h2c` sees the connection preface; HTTP/1.x otherwise (relaying it
/// as a tunnel once it switches protocols).
async fn speak(conn: &Session<'_>, mut stream: Stream, refusal: Option<Refusal>) {
    let alpn_h2 = stream
        .server_tls()
        .and_then(|c| c.alpn_protocol())
        .is_some_and(|p| p == b"h2");
    if alpn_h2 {
        if let Stream::ServerTls(tls) = stream {
            // Boxed, as the h2c branch below: the HTTP/2 driver's state (hyperium's connection
            // and the poll-io TLS adapter, about 8 KiB) would otherwise sit inline in every
            // connection's task, HTTP/1.1 ones included, idle or not.
            Box::pin(serve_h2_tls(conn, tls, refusal)).await;
        }
        return;
    }
    let mut unread = BytesMut::new();
    if conn.server.h2c && matches!(stream, Stream::Plain(_)) {
        match opening(&mut stream, &mut unread, conn.server.http.header_timeout).await {
            Opening::Http2 => {
                if let Stream::Plain(tcp) = stream {
                    Box::pin(serve_h2c(conn, tcp, unread)).await;
                }
                return;
            }
            Opening::Http1 => {}
            Opening::Nothing => return,
        }
    }
    let switched = match refusal {
        Some(refusal) => {
            conn.answer_refused(&mut stream, &refusal).await;
            None
        }
        None => conn.serve_requests(&mut stream, unread).await,
    };
    match switched {
        Some(switched) => conn.relay(stream, *switched).await,
        None => {
            let _ = stream.shutdown().await;
        }
    }
}

/// Serves a TLS connection whose ALPN chose h2.
async fn serve_h2_tls(
    conn: &Session<'_>,
    tls: Box<crate::tls::stream::TlsStream<rustls::ServerConnection>>,
    refusal: Option<Refusal>,
) {
    match tls.into_poll() {
        Ok(io) => super::http2::serve(conn, io, refusal.as_ref()).await,
        Err(e) => log::error!("listener={}: HTTP/2 connection: {e}", conn.server.name),
    }
}

/// Serves a plain connection that opened with the HTTP/2 preface (`opened`: the bytes read
/// to tell, the preface first).
async fn serve_h2c(conn: &Session<'_>, tcp: TcpStream, opened: BytesMut) {
    match monoio::io::IntoPollIo::into_poll_io(tcp) {
        Ok(io) => {
            let io = crate::http2::prefixed::Prefixed::new(opened, io);
            super::http2::serve(conn, io, None).await;
        }
        Err(e) => log::error!("listener={}: h2c connection: {e}", conn.server.name),
    }
}
