//! Upstream servers: choosing one (round robin), connecting with a deadline, and each worker's
//! pool of idle keep-alive connections.
//!
//! Everything here is per worker (`!Send`, `Rc`/`RefCell`): pools are never shared between
//! cores, so taking or returning a connection is a plain vector operation.

pub mod pool;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

pub use pool::Pools;

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
}

impl UpstreamError {
    /// The status the client gets: 504 for timeouts, 502 for everything else (as nginx).
    pub fn status(&self) -> u16 {
        match self {
            UpstreamError::ConnectTimeout
            | UpstreamError::ReadTimeout
            | UpstreamError::SendTimeout => 504,
            _ => 502,
        }
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
        }
    }
}

/// Opens a TCP connection to `addr` within `timeout`, with Nagle off (we write whole heads).
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, UpstreamError> {
    match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Err(_) => Err(UpstreamError::ConnectTimeout),
        Ok(Err(e)) => Err(UpstreamError::Connect(e)),
        Ok(Ok(s)) => {
            // Failing to set TCP_NODELAY only costs latency; the connection still works.
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}
