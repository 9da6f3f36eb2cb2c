//! A TLS stream over a monoio TCP socket, driving rustls directly.
//!
//! We own this small adapter (rather than a wrapper crate) because the proxy needs the rustls
//! connection itself after the handshake (peer certificates, protocol, cipher, resumption) and
//! full control of buffers: ciphertext moves through one reused buffer per direction.

use std::io::{self, Write};
use std::ops::{Deref, DerefMut};

use std::sync::Arc;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::server::{AcceptedAlert, Acceptor};
use rustls::{ConnectionCommon, ServerConfig, ServerConnection, SideData};

use crate::quiet::Arrival;

/// Size of the ciphertext buffers: one full TLS record plus overhead.
const TLS_BUF: usize = 16 * 1024 + 512;

/// Size of the read buffer while the peer sends little (an idle connection waiting for its
/// next request keeps a read of this size posted, not a whole record's worth).
const SMALL_READ: usize = 4096;

/// A TLS connection over TCP; `C` is `rustls::ServerConnection` or `ClientConnection`.
pub struct TlsStream<C> {
    io: TcpStream,
    conn: C,
    /// Ciphertext read from the socket but not yet handed to rustls.
    inbox: Inbox,
    /// rustls refused what the peer sent: the connection is dead. Whatever alert rustls queued
    /// has gone out; no close_notify may follow it (a fatal error is not a graceful close) and
    /// no more data is sent.
    failed: bool,
}

/// Ciphertext read from the socket and not yet handed to rustls (`buf[pos..]`), and whether
/// the socket has ended. Shared by [`TlsStream`] and the tunnel's read half
/// ([`super::halves`]), which read the same way from different socket handles.
pub(super) struct Inbox {
    /// None only while a read owns it.
    buf: Option<Vec<u8>>,
    pos: usize,
    eof: bool,
}

impl Inbox {
    fn new(received: Vec<u8>) -> Inbox {
        Inbox {
            buf: Some(received),
            pos: 0,
            eof: false,
        }
    }

    /// Whether everything read has been handed to rustls.
    fn is_empty(&self) -> bool {
        self.buf.as_ref().is_none_or(|b| self.pos >= b.len())
    }

    /// Whether the socket has ended.
    pub(super) fn at_eof(&self) -> bool {
        self.eof
    }

    /// The pending ciphertext (`buf[pos..]`: the buffer, the position) and whether the socket
    /// has ended, for a reader that takes over.
    pub(super) fn into_pending(self) -> (Vec<u8>, usize, bool) {
        (self.buf.unwrap_or_default(), self.pos, self.eof)
    }

    /// Reads more ciphertext once everything read so far has been handed over. Returns false
    /// at the end of the stream.
    pub(super) async fn fill<R: AsyncReadRent>(&mut self, io: &mut R) -> io::Result<bool> {
        if !self.is_empty() {
            return Ok(true);
        }
        let buf = self.next_buffer();
        let (res, buf) = io.read(buf).await;
        self.filled(res, buf)
    }

    /// As [`Inbox::fill`], waiting at most `limit`, and holding no buffer once the peer has
    /// been quiet for a moment ([`crate::quiet`]). `None`: nothing came within `limit`.
    pub(super) async fn fill_quietly(
        &mut self,
        io: &mut TcpStream,
        limit: std::time::Duration,
        quiet: &mut crate::quiet::Quiet,
    ) -> Option<io::Result<bool>> {
        if !self.is_empty() {
            return Some(Ok(true));
        }
        let buf = self.next_buffer();
        let fresh = || Vec::with_capacity(SMALL_READ);
        let (res, buf) = quiet.read(io, buf, limit, fresh).await?;
        Some(self.filled(res, buf))
    }

    /// The buffer for the next read, sized by what the last one brought: a read that filled a
    /// small buffer means the peer is streaming (whole records from now on); one that brought
    /// less than a small buffer means it is not, and the big buffer goes back.
    fn next_buffer(&mut self) -> Vec<u8> {
        let mut buf = self
            .buf
            .take()
            .unwrap_or_else(|| Vec::with_capacity(SMALL_READ));
        let last = buf.len();
        if buf.capacity() < TLS_BUF && last >= buf.capacity() {
            buf = Vec::with_capacity(TLS_BUF);
        } else if buf.capacity() > SMALL_READ && last < SMALL_READ {
            buf = Vec::with_capacity(SMALL_READ);
        }
        buf.clear();
        self.pos = 0;
        buf
    }

    /// Takes back the buffer of a read that ended: true when it brought bytes, false at the
    /// end of the stream.
    fn filled(&mut self, res: io::Result<usize>, buf: Vec<u8>) -> io::Result<bool> {
        self.buf = Some(buf);
        if res? == 0 {
            self.eof = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Hands rustls what it takes of the pending ciphertext and processes it. Returns the
    /// bytes that were pending. On an error the connection is dead: rustls may have queued an
    /// alert that says why, which the caller sends before giving up.
    pub(super) fn absorb<C, SD>(&mut self, conn: &mut C) -> io::Result<usize>
    where
        C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
        SD: SideData,
    {
        let Some(buf) = &self.buf else {
            return Ok(0);
        };
        let pending = &buf[self.pos.min(buf.len())..];
        let n = pending.len();
        let mut slice = pending;
        // One read_tls per call, then process: rustls refuses more ciphertext ("message buffer
        // full") until the records it holds are decrypted. What it did not take stays here for
        // the next call.
        let fed = conn.read_tls(&mut slice)?;
        self.pos += fed;
        crate::tls::client_auth::run_verifying(|| conn.process_new_packets())?;
        // What the input asked for goes out now, not with the next write: a refused
        // renegotiation's alert, a KeyUpdate answer, session tickets. The peer may be waiting
        // for it before it sends anything more. rustls holds a KeyUpdate answer back until
        // data is written: an empty write releases it (and sends nothing).
        if !conn.is_handshaking() {
            let _ = conn.writer().write(&[]);
        }
        Ok(n.max(1))
    }
}

/// Moves up to `max` bytes of decrypted data from rustls into `dst`: `Some(n)`, 0 meaning the
/// peer closed cleanly; `None` when rustls has none yet and more ciphertext is needed.
pub(super) fn take_plain<C, SD>(
    conn: &mut C,
    dst: &mut bytes::BytesMut,
    max: usize,
) -> Option<io::Result<usize>>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    use std::io::BufRead;
    let mut reader = conn.reader();
    match reader.fill_buf() {
        Ok([]) => Some(Ok(0)),
        Ok(chunk) => {
            let n = chunk.len().min(max.max(1));
            dst.extend_from_slice(&chunk[..n]);
            reader.consume(n);
            Some(Ok(n))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some(Ok(0)),
        Err(e) => Some(Err(e)),
    }
}

/// Reads the client's first flight until its ClientHello is complete and refuses, with the
/// alert RFC 8446 names, what rustls would let through or close on silently (see
/// [`super::hello`]). Returns the bytes read, for rustls.
pub async fn read_client_hello(io: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut flight: Vec<u8> = Vec::new();
    loop {
        let buf = Vec::with_capacity(TLS_BUF);
        let (res, buf) = io.read(buf).await;
        if res? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed the connection before its ClientHello",
            ));
        }
        if flight.is_empty() {
            flight = buf;
        } else {
            flight.extend_from_slice(&buf);
        }
        match super::hello::scan(&flight) {
            super::hello::Scan::NeedMore => {}
            super::hello::Scan::Pass => return Ok(flight),
            super::hello::Scan::Refuse(r) => {
                let _ = io.write_all(r.record().to_vec()).await;
                linger(io).await;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "refused the ClientHello: {} ({:?} alert)",
                        r.reason, r.alert
                    ),
                ));
            }
        }
    }
}

/// Shuts the write side after a refusal and reads what the peer still sends, for a moment (at
/// most 500 ms, or until it closes), so that closing with unread data does not reset the
/// connection and lose the alert on its way (a reset can overtake it).
async fn linger(io: &mut TcpStream) {
    let _ = monoio::io::AsyncWriteRent::shutdown(io).await;
    let drain = async {
        let mut buf = Vec::with_capacity(SMALL_READ);
        for _ in 0..64 {
            buf.clear();
            let (res, b) = io.read(buf).await;
            buf = b;
            if !matches!(res, Ok(n) if n > 0) {
                break;
            }
        }
    };
    let _ = crate::deadline::timeout(std::time::Duration::from_millis(500), drain).await;
}

/// Lets `choose` pick the server configuration from the ClientHello's SNI (virtual servers with
/// their own TLS policies on one address), given the client's first flight as read by
/// [`read_client_hello`], and returns the stream ready for [`TlsStream::handshake`] together
/// with what `choose` returned alongside the configuration.
pub async fn accept<T>(
    mut io: TcpStream,
    flight: Vec<u8>,
    choose: impl FnOnce(Option<&str>) -> (Arc<ServerConfig>, T),
) -> io::Result<(TlsStream<ServerConnection>, T)> {
    let mut acceptor = Acceptor::default();
    let mut buf = flight;
    loop {
        let mut slice = &buf[..];
        while !slice.is_empty() {
            if acceptor.read_tls(&mut slice)? == 0 {
                break;
            }
        }
        match acceptor.accept() {
            Ok(None) => {}
            Ok(Some(accepted)) => {
                let (cfg, chosen) = choose(accepted.client_hello().server_name());
                return match accepted.into_connection(cfg) {
                    Ok(conn) => Ok((TlsStream::new(io, conn), chosen)),
                    Err((e, alert)) => Err(send_alert(&mut io, alert, e).await),
                };
            }
            Err((e, alert)) => return Err(send_alert(&mut io, alert, e).await),
        }
        buf.clear();
        let (res, b) = io.read(buf).await;
        buf = b;
        if res? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed the connection before its ClientHello",
            ));
        }
    }
}

/// Sends the alert rustls prepared for a failed ClientHello; returns the error to report.
async fn send_alert(io: &mut TcpStream, mut alert: AcceptedAlert, e: rustls::Error) -> io::Error {
    let mut out = Vec::new();
    if alert.write_all(&mut out).is_ok() && !out.is_empty() {
        let _ = io.write_all(out).await;
    }
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<C, SD> TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// Wraps a socket and a fresh rustls connection; call [`TlsStream::handshake`] next.
    pub fn new(io: TcpStream, conn: C) -> Self {
        Self::with_received(io, conn, Vec::with_capacity(SMALL_READ))
    }

    /// As [`TlsStream::new`], for a socket from which `received` was already read (the
    /// client's first flight): rustls gets those bytes first.
    pub fn with_received(io: TcpStream, conn: C, received: Vec<u8>) -> Self {
        TlsStream {
            io,
            conn,
            inbox: Inbox::new(received),
            failed: false,
        }
    }

    /// The rustls connection (peer certificates, negotiated parameters).
    pub fn conn(&self) -> &C {
        &self.conn
    }

    /// The TCP socket.
    pub fn socket(&self) -> &TcpStream {
        &self.io
    }

    /// The socket, the rustls connection, the unread ciphertext and whether the connection
    /// failed: what [`super::halves`] splits.
    pub(super) fn into_parts(self) -> (TcpStream, C, Inbox, bool) {
        (self.io, self.conn, self.inbox, self.failed)
    }

    /// True when everything received has been read: no plaintext or ciphertext waiting, no
    /// close_notify or end of stream seen. Only such a connection may be reused.
    pub fn is_drained(&self) -> bool {
        !self.inbox.eof && self.conn.wants_read() && self.inbox.is_empty()
    }

    /// Runs the handshake to completion. On failure rustls has already queued the alert that
    /// says why; we send it, and let the peer read it, before returning the error.
    pub async fn handshake(&mut self) -> io::Result<()> {
        let res = self.drive_handshake().await;
        if res.is_err() && self.failed {
            linger(&mut self.io).await;
        }
        res
    }

    async fn drive_handshake(&mut self) -> io::Result<()> {
        while self.conn.is_handshaking() {
            if self.conn.wants_write() {
                self.flush_tls().await?;
                continue;
            }
            if self.read_tls().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the connection during the TLS handshake",
                ));
            }
        }
        self.flush_tls().await
    }

    /// Reads ciphertext from the socket into rustls and processes it. Returns the bytes read
    /// (0 at end of stream).
    async fn read_tls(&mut self) -> io::Result<usize> {
        if !self.inbox.fill(&mut self.io).await? {
            return Ok(0);
        }
        match self.inbox.absorb(&mut self.conn) {
            Ok(n) => {
                if self.conn.wants_write() {
                    self.flush_tls().await?;
                }
                Ok(n)
            }
            Err(failure) => {
                self.failed = true;
                // Send the alert rustls queued (it says why), then fail.
                let _ = self.flush_tls().await;
                Err(failure)
            }
        }
    }

    /// Writes everything rustls has queued to the socket. The ciphertext buffer is taken for
    /// the flush and given back to the allocator after it, so that an idle connection holds
    /// none (a 16 KiB buffer per idle connection adds up; the allocator's thread cache makes
    /// taking one again cheap).
    pub async fn flush_tls(&mut self) -> io::Result<()> {
        if !self.conn.wants_write() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(TLS_BUF);
        while self.conn.wants_write() {
            buf.clear();
            // Writing into a Vec cannot fail.
            let _ = self.conn.write_tls(&mut buf);
            let (res, b) = self.io.write_all(buf).await;
            buf = b;
            res?;
        }
        Ok(())
    }

    /// Reads plaintext, appending to `dst` (at most `max` bytes). Returns 0 at the end of the
    /// stream: a clean close_notify or a TCP close (the HTTP layer decides whether a message
    /// was cut short).
    pub async fn read_plain(&mut self, dst: &mut bytes::BytesMut, max: usize) -> io::Result<usize> {
        loop {
            if let Some(taken) = take_plain(&mut self.conn, dst, max) {
                return taken;
            }
            if self.inbox.eof || self.read_tls().await? == 0 {
                return Ok(0);
            }
        }
    }

    /// Waits at most `limit` for the peer's next bytes, holding no read buffer while it is quiet
    /// (see [`crate::quiet`]): [`Arrival::Bytes`] once there is something to read (plaintext,
    /// ciphertext, the end of the stream). An error is the socket's.
    pub async fn wait_for_bytes(
        &mut self,
        limit: std::time::Duration,
        quiet: &mut crate::quiet::Quiet,
    ) -> io::Result<Arrival> {
        if self.inbox.eof || !self.inbox.is_empty() || self.has_plaintext() {
            return Ok(Arrival::Bytes);
        }
        match self.inbox.fill_quietly(&mut self.io, limit, quiet).await {
            None => Ok(Arrival::Nothing),
            Some(res) => res.map(|_| Arrival::Bytes),
        }
    }

    /// Whether rustls holds decrypted data (or a close) that a read would return at once.
    fn has_plaintext(&mut self) -> bool {
        use std::io::BufRead;
        !matches!(self.conn.reader().fill_buf(), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Encrypts and sends all of `data`.
    pub async fn write_plain(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_plain_parts(&[data]).await
    }

    /// Encrypts and sends all of every part, in order, with as few socket writes as rustls's
    /// buffer allows (a response head and the first part of its body go out in one send).
    pub async fn write_plain_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the TLS connection failed; nothing more is sent",
            ));
        }
        for part in parts {
            let mut data = *part;
            while !data.is_empty() {
                let n = self.conn.writer().write(data)?;
                if n == 0 && !self.conn.wants_write() {
                    // Nothing taken and nothing to send that would make room: never spin.
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the TLS connection takes no more data",
                    ));
                }
                data = &data[n..];
                if n == 0 || !data.is_empty() {
                    // rustls's outgoing buffer is full: send what it holds, then go on.
                    self.flush_tls().await?;
                }
            }
        }
        self.flush_tls().await
    }

    /// Sends close_notify and shuts the socket's write side. After a fatal error only the
    /// socket is shut: the alert rustls queued (if any) has been sent, and a close_notify after
    /// it would tell the peer the connection ended cleanly.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        if self.failed {
            linger(&mut self.io).await;
            return Ok(());
        }
        self.conn.send_close_notify();
        self.flush_tls().await?;
        monoio::io::AsyncWriteRent::shutdown(&mut self.io).await
    }
}
