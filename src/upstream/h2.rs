//! HTTP/2 upstream connections (`protocol = "h2"`, gRPC): each worker keeps, per server, the
//! connections it opened, and a request opens a stream on the first one with room under the
//! server's `SETTINGS_MAX_CONCURRENT_STREAMS`; when every one is full (or has been told to go
//! away) another is opened. Each connection's frame layer runs in a task of its own on the
//! worker that opened it, so its streams never leave that core.
//!
//! A connection is opened as nginx's `grpc_pass` does: prior knowledge in plain TCP, ALPN `h2`
//! over TLS, then one PING answered: the server's SETTINGS come before its PING ACK, so the
//! stream limit is known before the first request is counted against it.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Ping, SendStream};
use monoio::io::poll_io::{AsyncRead, AsyncWrite};
use monoio::io::IntoPollIo;

use super::{Pools, Upstream, UpstreamError};
use crate::conn::Stream;

/// Each stream's receive window: what a server may send before the client reads it.
const STREAM_WINDOW: u32 = 1024 * 1024;

/// The connection's receive window, shared by its streams.
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// Largest response header list accepted from a server.
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// Bytes a stream may queue for sending beyond what the server's window takes.
const SEND_BUFFER: usize = 64 * 1024;

/// What a connection's task and its streams share.
#[derive(Debug)]
struct Shared {
    /// Streams opened and not yet dropped.
    open: Cell<usize>,
    /// The connection has ended, or refused a new stream (after a GOAWAY): it takes none.
    closed: Cell<bool>,
    /// When its last stream ended (for the idle sweep).
    idle_since: Cell<Instant>,
}

/// One HTTP/2 connection to a server.
pub struct H2Conn {
    /// The server's index in its upstream.
    pub server: usize,
    /// Its address.
    pub addr: SocketAddr,
    send: SendRequest<Bytes>,
    shared: Rc<Shared>,
}

/// A stream's place on its connection, given back when the exchange drops it.
#[derive(Debug)]
pub struct Slot {
    shared: Rc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let open = self.shared.open.get().saturating_sub(1);
        self.shared.open.set(open);
        if open == 0 {
            self.shared.idle_since.set(Instant::now());
        }
    }
}

/// A request's stream on an upstream connection.
pub struct Opened {
    /// The response, when its head arrives.
    pub response: ResponseFuture,
    /// Where the request body and trailers go.
    pub body: SendStream<Bytes>,
    /// Held as long as the stream is used.
    pub slot: Slot,
}

impl H2Conn {
    /// Whether a new stream may go on this connection now.
    pub fn has_room(&self) -> bool {
        !self.shared.closed.get() && self.shared.open.get() < self.send.current_max_send_streams()
    }

    /// Whether the connection has ended or refuses new streams.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.get()
    }

    /// Whether it has carried no stream for `idle` (and can be let go).
    pub fn idle_for(&self, idle: Duration, now: Instant) -> bool {
        self.shared.open.get() == 0
            && now.saturating_duration_since(self.shared.idle_since.get()) >= idle
    }

    /// Opens a stream for `request` (`end`: it has no body). A connection that refuses it
    /// (it has gone away) is marked closed, and the caller tries another.
    pub async fn open_stream(
        &self,
        request: http::Request<()>,
        end: bool,
    ) -> Result<Opened, h2::Error> {
        let sent = async {
            let mut send = self.send.clone().ready().await?;
            send.send_request(request, end)
        };
        match sent.await {
            Ok((response, body)) => {
                self.shared.open.set(self.shared.open.get() + 1);
                Ok(Opened {
                    response,
                    body,
                    slot: Slot {
                        shared: self.shared.clone(),
                    },
                })
            }
            Err(e) => {
                self.shared.closed.set(true);
                Err(e)
            }
        }
    }
}

/// Opens an HTTP/2 connection to server `server` (at `addr`) of upstream `id`: TCP, TLS with
/// ALPN `h2` for a TLS upstream, the connection preface and a PING, all within
/// `connect_timeout` each.
pub async fn connect(
    pools: &Pools,
    id: usize,
    up: &Upstream,
    server: usize,
    addr: SocketAddr,
) -> Result<H2Conn, UpstreamError> {
    let stream = super::open(pools, id, up, server, addr).await?;
    let (send, shared) = match stream {
        Stream::Plain(tcp) => {
            let io = tcp.into_poll_io().map_err(UpstreamError::Io)?;
            start(io, up).await?
        }
        Stream::ClientTls(tls) => {
            let io = tls.into_poll().map_err(UpstreamError::Io)?;
            start(io, up).await?
        }
        Stream::ServerTls(_) | Stream::H2(_) => {
            return Err(UpstreamError::BadResponse("not an upstream connection"))
        }
    };
    Ok(H2Conn {
        server,
        addr,
        send,
        shared,
    })
}

/// The connection preface on `io`, the frame layer's task spawned on this worker, and the
/// PING that proves the server's SETTINGS have been read.
async fn start<T>(io: T, up: &Upstream) -> Result<(SendRequest<Bytes>, Rc<Shared>), UpstreamError>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let mut builder = h2::client::Builder::new();
    builder
        .enable_push(false)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buffer_size(SEND_BUFFER);
    let handshake = builder.handshake::<T, Bytes>(io);
    let (send, mut conn) = match crate::deadline::timeout(up.connect_timeout, handshake).await {
        Err(_) => return Err(UpstreamError::ConnectTimeout),
        Ok(Err(e)) => return Err(h2_failure(e)),
        Ok(Ok(pair)) => pair,
    };
    let ping = conn.ping_pong();
    let shared = Rc::new(Shared {
        open: Cell::new(0),
        closed: Cell::new(false),
        idle_since: Cell::new(Instant::now()),
    });
    let task_shared = shared.clone();
    let name = up.name.clone();
    monoio::spawn(async move {
        if let Err(e) = conn.await {
            log::debug!("upstream `{name}`: HTTP/2 connection ended: {e}");
        }
        task_shared.closed.set(true);
    });
    if let Some(mut ping) = ping {
        match crate::deadline::timeout(up.connect_timeout, ping.ping(Ping::opaque())).await {
            Err(_) => return Err(UpstreamError::ConnectTimeout),
            Ok(Err(e)) => return Err(h2_failure(e)),
            Ok(Ok(_)) => {}
        }
    }
    Ok((send, shared))
}

/// An HTTP/2 failure on an upstream connection as the proxy reports it.
pub fn h2_failure(e: h2::Error) -> UpstreamError {
    if e.is_io() {
        return match e.into_io() {
            Some(io) => UpstreamError::Io(io),
            None => UpstreamError::ClosedEarly,
        };
    }
    if e.is_go_away() || e.is_reset() {
        return UpstreamError::Reset(e.reason().unwrap_or(h2::Reason::INTERNAL_ERROR));
    }
    UpstreamError::BadResponse("HTTP/2 protocol error")
}
