//! A TLS connection as a readiness-based (poll) stream, for protocol libraries written against
//! the `AsyncRead`/`AsyncWrite` traits (the HTTP/2 frame layer).
//!
//! The handshake has already run on the completion-based [`TlsStream`], with ringgate's
//! ClientHello checks and verifier; [`TlsStream::into_poll`] then turns the socket into monoio's
//! poll-io form (readiness on the same ring) and keeps the rustls connection and any
//! ciphertext already read. Reading hands rustls one socket read at a time and returns the
//! plaintext; writing gives rustls the plaintext and sends what it queued, keeping a partly
//! sent record for the next call.

use std::io::{self, Read, Write};
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use monoio::io::IntoPollIo;
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use rustls::{ConnectionCommon, SideData};

use super::stream::TlsStream;

/// Size of a ciphertext read: one full record plus overhead.
const TLS_BUF: usize = 16 * 1024 + 512;

/// Reads a connection may make in a row before it lets the worker's other tasks run: a peer
/// that floods frames (PINGs, SETTINGS) keeps the socket readable, and the frame layer keeps
/// reading while it is, so without a budget one connection could hold the core.
const READ_BUDGET: u32 = 16;

/// A TLS connection over a poll-io socket.
pub struct PollTls<C> {
    io: TcpStreamPoll,
    conn: C,
    /// Ciphertext read and not yet handed to rustls: `rbuf[rpos..rend]` (the buffer keeps its
    /// full length once grown, so no read pays for zeroing it again).
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    /// Ciphertext rustls produced and the socket has not taken yet: `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// The socket has ended.
    eof: bool,
    /// close_notify has been queued.
    closing: bool,
    /// Reads left before the next yield (see [`READ_BUDGET`]).
    budget: u32,
    /// Plaintext rustls holds for the reader, as its last `process_new_packets` said, less
    /// what was read since (`usize::MAX` until the first: unknown). A read initializes only
    /// this much of the caller's buffer: zeroing all of it (the frame layer offers several KiB
    /// per read) cost more than the read itself.
    plain: usize,
}

impl<C, SD> TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// Turns an established connection into its poll form (see the module docs).
    pub fn into_poll(self) -> io::Result<PollTls<C>> {
        let (io, conn, inbox, _failed) = self.into_parts();
        let (rbuf, rpos, eof) = inbox.into_pending();
        Ok(PollTls {
            io: io.into_poll_io()?,
            conn,
            rend: rbuf.len(),
            rbuf,
            rpos,
            wbuf: Vec::new(),
            wpos: 0,
            eof,
            closing: false,
            budget: READ_BUDGET,
            plain: usize::MAX,
        })
    }
}

impl<C, SD> PollTls<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// The rustls connection.
    pub fn conn(&self) -> &C {
        &self.conn
    }

    /// Sends what rustls has queued; Ready once all of it is with the socket.
    fn poll_send_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.wpos < self.wbuf.len() {
                let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.wpos += n;
                continue;
            }
            if !self.conn.wants_write() {
                return Poll::Ready(Ok(()));
            }
            self.wbuf.clear();
            self.wpos = 0;
            // Writing into a Vec cannot fail.
            let _ = self.conn.write_tls(&mut self.wbuf);
        }
    }

    /// Reads ciphertext from the socket (unless some is pending) and hands it to rustls.
    fn poll_absorb(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.rpos >= self.rend {
            if self.rbuf.len() < TLS_BUF {
                self.rbuf.resize(TLS_BUF, 0);
            }
            self.rpos = 0;
            self.rend = 0;
            let mut rb = ReadBuf::new(&mut self.rbuf);
            let read = Pin::new(&mut self.io).poll_read(cx, &mut rb);
            let n = rb.filled().len();
            ready!(read)?;
            self.rend = n;
            if n == 0 {
                self.eof = true;
                // Tell rustls the transport ended: a later read reports whether the peer
                // closed cleanly.
                let _ = self.conn.read_tls(&mut io::empty());
                return Poll::Ready(Ok(()));
            }
        }
        let mut pending = &self.rbuf[self.rpos..self.rend];
        let fed = self.conn.read_tls(&mut pending)?;
        self.rpos += fed;
        match self.conn.process_new_packets() {
            Ok(state) => self.plain = state.plaintext_bytes_to_read(),
            Err(e) => {
                // Send the alert rustls queued (it says why), as far as the socket takes it now.
                let _ = self.poll_send_tls(cx);
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        }
        // rustls holds a KeyUpdate answer back until data is written: an empty write
        // releases it (and sends nothing).
        let _ = self.conn.writer().write(&[]);
        Poll::Ready(Ok(()))
    }
}

impl<C, SD> AsyncRead for PollTls<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>> + Unpin,
    SD: SideData,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.budget == 0 {
            // Yield: run again after the worker's other ready tasks.
            this.budget = READ_BUDGET;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        loop {
            // With no plaintext held, one byte still tells "nothing yet" from "closed".
            let want = buf.remaining().min(this.plain.max(1));
            match this.conn.reader().read(buf.initialize_unfilled_to(want)) {
                Ok(n) => {
                    // 0: the peer closed cleanly (close_notify).
                    buf.advance(n);
                    this.plain = this.plain.saturating_sub(n);
                    this.budget -= 1;
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket ended without close_notify: an end of stream all the same (the
                // protocol above knows whether a message was cut short).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Poll::Ready(Ok(()));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // What the input asked for (a KeyUpdate answer, tickets) goes out before more is
            // read; a socket that will not take it now is tried again on the next call.
            if let Poll::Ready(Err(e)) = this.poll_send_tls(cx) {
                return Poll::Ready(Err(e));
            }
            match this.poll_absorb(cx) {
                Poll::Pending => {
                    // Nothing more to read now: the budget starts over.
                    this.budget = READ_BUDGET;
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
    }
}

impl<C, SD> AsyncWrite for PollTls<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>> + Unpin,
    SD: SideData,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut taken = this.conn.writer().write(data)?;
        if taken == 0 && !data.is_empty() {
            // rustls's buffer is full: make room, then try again.
            ready!(this.poll_send_tls(cx))?;
            taken = this.conn.writer().write(data)?;
        } else if let Poll::Ready(Err(e)) = this.poll_send_tls(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let wanted: usize = bufs.iter().map(|b| b.len()).sum();
        let mut taken = this.conn.writer().write_vectored(bufs)?;
        if taken == 0 && wanted > 0 {
            ready!(this.poll_send_tls(cx))?;
            taken = this.conn.writer().write_vectored(bufs)?;
        } else if let Poll::Ready(Err(e)) = this.poll_send_tls(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_tls(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            this.conn.send_close_notify();
        }
        ready!(this.poll_send_tls(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
