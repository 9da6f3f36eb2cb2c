//! A non-blocking socket, with or without TLS (rustls), as tokio's `AsyncRead`/`AsyncWrite`,
//! for hyperium's `h2` client in `--mode h2` (and, in the tests, its server side).
//!
//! There is no runtime and no reactor behind it: the socket is non-blocking and registered
//! with the thread's epoll (edge-triggered, mio). `Pending` is returned only after the socket
//! said `WouldBlock`, so an edge (readable or writable) follows and the event loop polls the
//! connection again; the `Context`'s waker is never stored here. Reading hands rustls what the
//! socket has and returns the plaintext; writing gives rustls the plaintext and sends the
//! records it makes, keeping what the socket did not take (rustls buffers it) for the next
//! call.

use std::io::{self, Read, Write};
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::{ClientConnection, ConnectionCommon, SideData};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A socket and, over TLS, its rustls connection (a client's, but for the tests' servers).
pub struct H2Io<S, C = ClientConnection> {
    sock: S,
    tls: Option<Box<C>>,
    /// The socket has ended (read returned 0).
    eof: bool,
    /// close_notify has been queued.
    closing: bool,
}

impl<S, C, SD> H2Io<S, C>
where
    S: Read + Write,
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    pub fn new(sock: S, tls: Option<Box<C>>) -> Self {
        H2Io {
            sock,
            tls,
            eof: false,
            closing: false,
        }
    }

    pub fn tls(&self) -> Option<&C> {
        self.tls.as_deref()
    }

    pub fn sock(&self) -> &S {
        &self.sock
    }

    /// Runs the TLS handshake as far as the socket allows: `Ready(Ok)` once rustls is past it
    /// (its last flight may still be queued: the first write sends it), at once without TLS.
    pub fn poll_handshake(&mut self) -> Poll<io::Result<()>> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Poll::Ready(Ok(()));
        };
        loop {
            if !tls.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            send_tls(tls, &mut self.sock)?;
            if !tls.wants_read() {
                // Only writing can move it on, and the socket takes no more now.
                return Poll::Pending;
            }
            match tls.read_tls(&mut self.sock) {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed during the TLS handshake",
                    )))
                }
                Ok(_) => process(tls, &mut self.sock)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Writes what rustls has queued to the socket; `Ok(false)` when the socket would block
/// first (an edge follows).
fn send_tls<S: Write, SD: SideData>(
    tls: &mut ConnectionCommon<SD>,
    sock: &mut S,
) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Lets rustls process the records it was given; on a TLS error, its alert goes out (best
/// effort) and the error comes back as `InvalidData` wrapping the `rustls::Error`.
fn process<S: Write, SD: SideData>(tls: &mut ConnectionCommon<SD>, sock: &mut S) -> io::Result<()> {
    if let Err(e) = tls.process_new_packets() {
        let _ = tls.write_tls(sock);
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    Ok(())
}

impl<S, C, SD> AsyncRead for H2Io<S, C>
where
    S: Read + Write + Unpin,
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(tls) = this.tls.as_deref_mut() else {
            loop {
                match this.sock.read(buf.initialize_unfilled()) {
                    Ok(n) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        };
        loop {
            match tls.reader().read(buf.initialize_unfilled()) {
                // 0: the server closed cleanly (close_notify).
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket ended without close_notify: an end all the same (h2 knows
                // whether a frame was cut short).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Poll::Ready(Ok(()));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // What the input asked for (a KeyUpdate answer, an alert) goes out first, as far
            // as the socket takes it.
            send_tls(tls, &mut this.sock)?;
            match tls.read_tls(&mut this.sock) {
                Ok(0) => this.eof = true,
                Ok(_) => process(tls, &mut this.sock)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<S, C, SD> H2Io<S, C>
where
    S: Read + Write + Unpin,
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// Writes `data` (a slice, or `bufs` when vectored); `Pending` only when neither rustls
    /// nor the socket takes any of it now.
    fn write_some(&mut self, data: &[u8], bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let wanted = data.len() + bufs.iter().map(|b| b.len()).sum::<usize>();
        let Some(tls) = self.tls.as_deref_mut() else {
            loop {
                let r = if bufs.is_empty() {
                    self.sock.write(data)
                } else {
                    self.sock.write_vectored(bufs)
                };
                match r {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        };
        let put = |tls: &mut ConnectionCommon<SD>| {
            if bufs.is_empty() {
                tls.writer().write(data)
            } else {
                tls.writer().write_vectored(bufs)
            }
        };
        let mut taken = put(tls)?;
        let all_sent = send_tls(tls, &mut self.sock)?;
        if taken == 0 && wanted > 0 {
            if !all_sent {
                // rustls's buffer is full and the socket takes no more: wait for the edge.
                return Poll::Pending;
            }
            taken = put(tls)?;
            send_tls(tls, &mut self.sock)?;
        }
        Poll::Ready(Ok(taken))
    }
}

impl<S, C, SD> AsyncWrite for H2Io<S, C>
where
    S: Read + Write + Unpin,
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_some(data, &[])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        self.get_mut().write_some(&[], bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.tls.as_deref_mut() {
            Some(tls) => match send_tls(tls, &mut this.sock)? {
                true => Poll::Ready(Ok(())),
                false => Poll::Pending,
            },
            None => Poll::Ready(this.sock.flush()),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(tls) = this.tls.as_deref_mut() {
            if !this.closing {
                this.closing = true;
                tls.send_close_notify();
            }
        }
        // The socket itself closes when the connection is dropped.
        Pin::new(this).poll_flush(cx)
    }
}
