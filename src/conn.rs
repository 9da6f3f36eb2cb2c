//! The two kinds of byte streams the proxy moves data between: plain TCP and TLS (server side
//! towards clients, client side towards TLS upstreams), behind one small interface.

use std::io;

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use rustls::{ClientConnection, ServerConnection};

use crate::http2::exchange::{TunnelRead, TunnelWrite};
use crate::http2::Exchange;
pub use crate::quiet::Arrival;
use crate::tls::halves::{TlsReadHalf, TlsWriteHalf};
use crate::tls::stream::TlsStream;

/// A connection to a client or an upstream.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS terminated by us.
    ServerTls(Box<TlsStream<ServerConnection>>),
    /// TLS we originated, towards an upstream.
    ClientTls(Box<TlsStream<ClientConnection>>),
    /// One HTTP/2 stream of a client connection: its request body and its response.
    H2(Box<Exchange>),
}

impl Stream {
    /// The HTTP/2 stream this is, if it is one (a relay from an HTTP/2 upstream reads its
    /// request and writes its response at once).
    pub fn h2_exchange(&mut self) -> Option<&mut Exchange> {
        match self {
            Stream::H2(x) => Some(x),
            _ => None,
        }
    }

    /// Reads what is available (at most `max` bytes, at least one when `max` is 0) and appends
    /// it to `buf`. Returns 0 at end of stream.
    pub async fn read_buf(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let max = max.max(1);
        match self {
            Stream::Plain(s) => {
                let mut owned = std::mem::take(buf);
                // Grow only when nearly full: reserving on every read would reallocate a
                // buffer that already has room.
                if owned.capacity() - owned.len() < max.min(2048) {
                    owned.reserve(max.clamp(4096, 64 * 1024));
                }
                let start = owned.len();
                let end = owned.capacity().min(start + max);
                let (res, slice) = s.read(owned.slice_mut(start..end)).await;
                *buf = slice.into_inner();
                res
            }
            Stream::ServerTls(t) => t.read_plain(buf, max).await,
            Stream::ClientTls(t) => t.read_plain(buf, max).await,
            Stream::H2(x) => x.read_body(buf, max).await,
        }
    }

    /// Waits at most `limit` for the peer's next bytes, holding no read buffer while it is quiet
    /// ([`crate::quiet`]): for a client between requests. On plain TCP the bytes may already
    /// be in `buf` when it returns. An error is the socket's.
    pub async fn wait_for_bytes(
        &mut self,
        buf: &mut BytesMut,
        limit: std::time::Duration,
        quiet: &mut crate::quiet::Quiet,
    ) -> io::Result<Arrival> {
        if !buf.is_empty() {
            return Ok(Arrival::Bytes);
        }
        match self {
            Stream::Plain(s) => {
                const READ: usize = 4096;
                let mut owned = std::mem::take(buf);
                owned.reserve(READ);
                let end = owned.capacity().min(READ);
                let fresh = || BytesMut::with_capacity(READ).slice_mut(0..READ);
                match quiet.read(s, owned.slice_mut(0..end), limit, fresh).await {
                    None => Ok(Arrival::Nothing),
                    Some((res, slice)) => {
                        *buf = slice.into_inner();
                        res.map(|_| Arrival::Bytes)
                    }
                }
            }
            Stream::ServerTls(t) => t.wait_for_bytes(limit, quiet).await,
            Stream::ClientTls(t) => t.wait_for_bytes(limit, quiet).await,
            Stream::H2(_) => Ok(Arrival::Bytes),
        }
    }

    /// Writes all of `data`; on plain TCP the buffer itself goes to the kernel, no copy.
    pub async fn write_bytes(&mut self, data: Bytes) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        match self {
            Stream::Plain(s) => s.write_all(data).await.0.map(|_| ()),
            Stream::ServerTls(t) => t.write_plain(&data).await,
            Stream::ClientTls(t) => t.write_plain(&data).await,
            Stream::H2(x) => x.write_bytes(data).await,
        }
    }

    /// Writes a buffer we built (a response or request head), handing it back for reuse.
    pub async fn write_owned(&mut self, data: BytesMut) -> (io::Result<()>, BytesMut) {
        if data.is_empty() {
            return (Ok(()), data);
        }
        match self {
            Stream::Plain(s) => {
                let (res, d) = s.write_all(data).await;
                (res.map(|_| ()), d)
            }
            Stream::ServerTls(t) => {
                let res = t.write_plain(&data).await;
                (res, data)
            }
            Stream::ClientTls(t) => {
                let res = t.write_plain(&data).await;
                (res, data)
            }
            Stream::H2(x) => {
                let res = x.write(&data).await;
                (res, data)
            }
        }
    }

    /// Writes a head we built followed by the first part of its body, without copying the
    /// body: over TLS in one send where rustls's buffer allows; on plain TCP in two.
    pub async fn write_head_and_body(&mut self, head: BytesMut, body: Bytes) -> io::Result<()> {
        match self {
            Stream::Plain(s) => {
                s.write_all(head).await.0?;
                if !body.is_empty() {
                    s.write_all(body).await.0?;
                }
                Ok(())
            }
            Stream::ServerTls(t) => t.write_plain_parts(&[&head, &body]).await,
            Stream::ClientTls(t) => t.write_plain_parts(&[&head, &body]).await,
            Stream::H2(x) => {
                x.write(&head).await?;
                x.write_bytes(body).await
            }
        }
    }

    /// Writes several buffers in order as one message: over TLS in one flush; on plain TCP
    /// copied into one send when small, else sent one by one without a copy.
    pub async fn write_parts(&mut self, parts: &[Bytes]) -> io::Result<()> {
        /// Up to this size the parts are gathered into one send.
        const GATHER: usize = 16 * 1024;
        match self {
            Stream::Plain(s) => {
                let total: usize = parts.iter().map(Bytes::len).sum();
                if total <= GATHER {
                    let mut one = BytesMut::with_capacity(total);
                    for p in parts {
                        one.extend_from_slice(p);
                    }
                    if !one.is_empty() {
                        s.write_all(one).await.0?;
                    }
                } else {
                    for p in parts.iter().filter(|p| !p.is_empty()) {
                        s.write_all(p.clone()).await.0?;
                    }
                }
                Ok(())
            }
            Stream::ServerTls(t) => {
                let slices: Vec<&[u8]> = parts.iter().map(|p| p.as_ref()).collect();
                t.write_plain_parts(&slices).await
            }
            Stream::ClientTls(t) => {
                let slices: Vec<&[u8]> = parts.iter().map(|p| p.as_ref()).collect();
                t.write_plain_parts(&slices).await
            }
            Stream::H2(x) => {
                for p in parts {
                    x.write_bytes(p.clone()).await?;
                }
                Ok(())
            }
        }
    }

    /// Closes our side cleanly (close_notify for TLS).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::ServerTls(t) => t.shutdown().await,
            Stream::ClientTls(t) => t.shutdown().await,
            Stream::H2(x) => x.shutdown().await,
        }
    }

    /// The TLS session, when there is one.
    pub fn server_tls(&self) -> Option<&ServerConnection> {
        match self {
            Stream::ServerTls(t) => Some(t.conn()),
            Stream::Plain(_) | Stream::ClientTls(_) | Stream::H2(_) => None,
        }
    }

    /// The TLS session towards an upstream, when there is one.
    pub fn client_tls(&self) -> Option<&ClientConnection> {
        match self {
            Stream::ClientTls(t) => Some(t.conn()),
            Stream::Plain(_) | Stream::ServerTls(_) | Stream::H2(_) => None,
        }
    }

    /// Whether an idle connection's socket has something to read: data, its end or an error.
    /// An idle upstream connection is owed nothing, so any of these means it cannot carry the
    /// next request (bytes left over would be read as that request's response).
    pub fn readable_while_idle(&self) -> bool {
        use std::os::fd::AsRawFd;
        let fd = match self {
            Stream::Plain(s) => s.as_raw_fd(),
            Stream::ServerTls(t) => t.socket().as_raw_fd(),
            Stream::ClientTls(t) => t.socket().as_raw_fd(),
            // A stream of a multiplexed connection is never idle on its own.
            Stream::H2(_) => return true,
        };
        let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
        // A failed poll leaves the connection in doubt: treat it as readable, never reuse it.
        !matches!(nix::poll::poll(&mut fds, 0), Ok(0))
    }

    /// Whether a connection whose exchange just ended can carry another one: for TLS, nothing
    /// received is left unread (no plaintext, no ciphertext, no close_notify), so a pooled
    /// connection never hands one response's leftovers to the next request.
    pub fn reusable(&self) -> bool {
        match self {
            Stream::Plain(_) => true,
            Stream::ServerTls(t) => t.is_drained(),
            Stream::ClientTls(t) => t.is_drained(),
            Stream::H2(_) => false,
        }
    }
}

/// The receiving side of a [`Stream`] split for a tunnel.
pub enum ReadHalf {
    /// Plain TCP.
    Plain(OwnedReadHalf<TcpStream>),
    /// TLS terminated by us.
    ServerTls(TlsReadHalf<ServerConnection>),
    /// TLS towards an upstream.
    ClientTls(TlsReadHalf<ClientConnection>),
    /// An HTTP/2 stream opened as a tunnel by an extended CONNECT.
    H2(Box<TunnelRead>),
}

/// The sending side of a [`Stream`] split for a tunnel.
pub enum WriteHalf {
    /// Plain TCP.
    Plain(OwnedWriteHalf<TcpStream>),
    /// TLS terminated by us.
    ServerTls(TlsWriteHalf<ServerConnection>),
    /// TLS towards an upstream.
    ClientTls(TlsWriteHalf<ClientConnection>),
    /// An HTTP/2 stream opened as a tunnel by an extended CONNECT.
    H2(Box<TunnelWrite>),
}

impl Stream {
    /// Splits the connection into halves that can read and write at the same time, for a
    /// tunnel that relays both ways at once. The connection is never an HTTP one again. An
    /// HTTP/2 stream splits only once an extended CONNECT has opened it as a tunnel (it is
    /// handed back otherwise).
    pub fn into_halves(self) -> Result<(ReadHalf, WriteHalf), Stream> {
        Ok(match self {
            Stream::Plain(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            Stream::ServerTls(t) => {
                let (r, w) = t.into_halves();
                (ReadHalf::ServerTls(r), WriteHalf::ServerTls(w))
            }
            Stream::ClientTls(t) => {
                let (r, w) = t.into_halves();
                (ReadHalf::ClientTls(r), WriteHalf::ClientTls(w))
            }
            Stream::H2(x) => match (*x).into_halves() {
                Ok((r, w)) => (ReadHalf::H2(Box::new(r)), WriteHalf::H2(Box::new(w))),
                Err(x) => return Err(Stream::H2(x)),
            },
        })
    }
}

impl ReadHalf {
    /// Reads what is available into `buf` (cleared first), at most `max` bytes. Returns 0 at
    /// end of stream.
    pub async fn read(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        buf.clear();
        let max = max.max(1);
        match self {
            ReadHalf::Plain(s) => {
                buf.reserve(max);
                let owned = std::mem::take(buf);
                let (res, slice) = s.read(owned.slice_mut(0..max)).await;
                *buf = slice.into_inner();
                res
            }
            ReadHalf::ServerTls(t) => t.read_plain(buf, max).await,
            ReadHalf::ClientTls(t) => t.read_plain(buf, max).await,
            ReadHalf::H2(t) => t.read(buf).await,
        }
    }
}

impl WriteHalf {
    /// Writes all of `data`, handing the buffer back for the next read.
    pub async fn write(&mut self, data: BytesMut) -> (io::Result<()>, BytesMut) {
        match self {
            WriteHalf::Plain(s) => {
                let (res, d) = s.write_all(data).await;
                (res.map(|_| ()), d)
            }
            WriteHalf::ServerTls(t) => (t.write_plain(&data).await, data),
            WriteHalf::ClientTls(t) => (t.write_plain(&data).await, data),
            WriteHalf::H2(t) => {
                // The frame layer keeps the bytes until the window takes them: they go as
                // their own buffer, and the next read gets a fresh one.
                let res = t.write(data.freeze()).await;
                (res, BytesMut::new())
            }
        }
    }

    /// Ends this direction (TCP FIN; close_notify first for TLS); the other goes on.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(s) => s.shutdown().await,
            WriteHalf::ServerTls(t) => t.shutdown().await,
            WriteHalf::ClientTls(t) => t.shutdown().await,
            WriteHalf::H2(t) => t.shutdown(),
        }
    }
}
