//! Upstream servers: choosing one (round robin), connecting with a deadline (and a TLS
//! handshake for `https://` upstreams), and each worker's pool of idle keep-alive connections.
//!
//! Everything here is per worker (`!Send`, `Rc`/`RefCell`): pools are never shared between
//! cores, so taking or returning a connection is a plain vector operation.

pub mod group;
pub mod h2;
pub mod pool;
pub mod sessions;
pub mod tls;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;
use rustls::ClientConnection;

use crate::conn::Stream;
use crate::tls::stream::TlsStream;
pub use group::{Upstream, UpstreamProtocol};
pub use pool::Pools;
use tls::TlsFailure;

/// Why talking to an upstream failed; decides 502 versus 504 and what the log says.
#[derive(Debug)]
pub enum UpstreamError {
    /// The connection could not be made (refused, unreachable).
    Connect(io::Error),
    /// The connection was not made within `connect_timeout`.
    ConnectTimeout,
    /// Nothing was received within `read_timeout`.
    ReadTimeout,
    /// Sending stalled beyond `send_timeout`.
    SendTimeout,
    /// The upstream closed or reset the connection before a complete response head.
    ClosedEarly,
    /// Reading or writing failed.
    Io(io::Error),
    /// The response head was malformed or ambiguous.
    BadResponse(&'static str),
    /// The response body ended before its declared length.
    Truncated,
    /// The TLS handshake did not finish within `connect_timeout`.
    TlsHandshakeTimeout,
    /// TLS with the upstream failed: its certificate, ours, or the protocol.
    Tls(TlsFailure),
    /// An HTTP/2 upstream reset the stream, or went away before answering it.
    Reset(::h2::Reason),
}

impl UpstreamError {
    /// A timeout (the client gets 504, as from nginx; any other failure is a 502).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            UpstreamError::ConnectTimeout
                | UpstreamError::ReadTimeout
                | UpstreamError::SendTimeout
                | UpstreamError::TlsHandshakeTimeout
        )
    }

    /// True when the failure may come from a pooled connection the upstream had already
    /// closed, so that an idempotent request may be retried once on a fresh connection.
    pub fn is_stale_connection(&self) -> bool {
        match self {
            UpstreamError::ClosedEarly => true,
            UpstreamError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }

    /// True when a fresh connection failed before any of the response arrived, in a way nginx's
    /// default `proxy_next_upstream error timeout` passes to the next server (a malformed
    /// response, nginx's `invalid_header`, is not).
    pub fn passes_to_next_server(&self) -> bool {
        matches!(
            self,
            UpstreamError::ClosedEarly
                | UpstreamError::Io(_)
                | UpstreamError::ReadTimeout
                | UpstreamError::SendTimeout
                | UpstreamError::Tls(_)
        )
    }

    /// An I/O error on an upstream stream: a TLS failure when the stream's TLS layer says so
    /// (with TLS 1.3 an upstream refusing our certificate is only heard after the handshake,
    /// on the first read), else plain I/O.
    pub fn io(e: io::Error, up: &Upstream) -> UpstreamError {
        match up.tls.as_ref() {
            Some(t) => match TlsFailure::from_io(&e, t.has_client_cert()) {
                Some(f) => UpstreamError::Tls(f),
                None => UpstreamError::Io(e),
            },
            None => UpstreamError::Io(e),
        }
    }

    /// Where the failure happened, for the log line ("... while SSL handshaking to upstream").
    pub fn context(&self) -> &'static str {
        match self {
            UpstreamError::TlsHandshakeTimeout | UpstreamError::Tls(_) => {
                "while SSL handshaking to upstream"
            }
            _ => "while proxying",
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "connect() failed ({e})"),
            UpstreamError::ConnectTimeout => f.write_str("upstream timed out while connecting"),
            UpstreamError::ReadTimeout => {
                f.write_str("upstream timed out while reading the response")
            }
            UpstreamError::SendTimeout => {
                f.write_str("upstream timed out while sending the request")
            }
            UpstreamError::ClosedEarly => f.write_str(
                "upstream closed the connection before sending a complete response head",
            ),
            UpstreamError::Io(e) => write!(f, "upstream i/o error ({e})"),
            UpstreamError::BadResponse(why) => {
                write!(f, "upstream sent an invalid response ({why})")
            }
            UpstreamError::Truncated => {
                f.write_str("upstream closed the connection before the end of the response body")
            }
            UpstreamError::TlsHandshakeTimeout => {
                f.write_str("upstream timed out (connect_timeout)")
            }
            UpstreamError::Tls(t) => t.fmt(f),
            UpstreamError::Reset(r) => write!(f, "upstream reset the HTTP/2 stream ({r:?})"),
        }
    }
}

/// Opens a TCP connection to `addr` within `timeout`, with Nagle off (we write whole heads).
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, UpstreamError> {
    match crate::deadline::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Err(_) => Err(UpstreamError::ConnectTimeout),
        Ok(Err(e)) => Err(UpstreamError::Connect(e)),
        Ok(Ok(s)) => {
            // Failing to set TCP_NODELAY only costs latency; the connection still works.
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

/// Opens a new connection to server `server` (at `addr`) of upstream `id`: TCP within
/// `connect_timeout`, then, for a TLS upstream, the handshake within `connect_timeout` again
/// (as nginx times its SSL handshake with `proxy_connect_timeout`), with this worker's own
/// rustls configuration for that server.
pub async fn open(
    pools: &Pools,
    id: usize,
    up: &Upstream,
    server: usize,
    addr: SocketAddr,
) -> Result<Stream, UpstreamError> {
    let tcp = connect(addr, up.connect_timeout).await?;
    let Some(tls) = up.tls.as_ref() else {
        return Ok(Stream::Plain(tcp));
    };
    let have_cert = tls.has_client_cert();
    let setup = |e: rustls::Error| UpstreamError::Tls(TlsFailure::Other(e.to_string()));
    let cfg = pools.client_config(id, server, up, tls).map_err(setup)?;
    let conn = ClientConnection::new(cfg, tls.server_name()).map_err(setup)?;
    let mut stream = TlsStream::new(tcp, conn);
    match crate::deadline::timeout(up.connect_timeout, stream.handshake()).await {
        Err(_) => Err(UpstreamError::TlsHandshakeTimeout),
        Ok(Ok(())) => Ok(Stream::ClientTls(Box::new(stream))),
        Ok(Err(e)) => Err(match TlsFailure::from_io(&e, have_cert) {
            Some(f) => UpstreamError::Tls(f),
            None if e.kind() == io::ErrorKind::UnexpectedEof => {
                UpstreamError::Tls(TlsFailure::ClosedInHandshake)
            }
            None => UpstreamError::Tls(TlsFailure::Other(e.to_string())),
        }),
    }
}
