//! A TLS connection split into a read half and a write half that run at once: what a tunnel
//! needs, where bytes flow both ways independently (a WebSocket after its `101`).
//!
//! The socket is split as monoio splits a TCP stream; the rustls connection is shared by the
//! two halves in a `RefCell`, borrowed only between awaits. Both halves may need to send
//! ciphertext (the writer its data, the reader what the peer's input asked for, such as a
//! KeyUpdate answer), so the socket's write half is a turn that one of them holds at a time;
//! whoever holds it sends everything rustls has queued, the other's records included, before
//! giving it back.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io::{self, Write};
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::BytesMut;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use rustls::{ConnectionCommon, SideData};

use super::stream::{take_plain, Inbox, TlsStream};

/// Size of the ciphertext buffer a flush fills: one full record plus overhead.
const TLS_BUF: usize = 16 * 1024 + 512;

/// What both halves share.
struct Shared<C> {
    conn: RefCell<C>,
    /// The socket's write half, while nobody is sending (None while a half holds the turn).
    out: RefCell<Option<OwnedWriteHalf<TcpStream>>>,
    /// Halves waiting for the turn.
    waiting: RefCell<Vec<Waker>>,
    /// rustls refused what the peer sent: nothing more is sent, not even close_notify.
    failed: Cell<bool>,
}

/// The reading half: decrypted data from the peer.
pub struct TlsReadHalf<C> {
    io: OwnedReadHalf<TcpStream>,
    inbox: Inbox,
    shared: Rc<Shared<C>>,
}

/// The writing half: data to the peer, and the close.
pub struct TlsWriteHalf<C> {
    shared: Rc<Shared<C>>,
}

/// Holds the socket's write half; gives it back (and wakes a waiting half) when dropped, so a
/// send abandoned midway never leaves the other half waiting for ever.
struct Turn<'a, C> {
    shared: &'a Shared<C>,
    out: Option<OwnedWriteHalf<TcpStream>>,
}

impl<C> Drop for Turn<'_, C> {
    fn drop(&mut self) {
        *self.shared.out.borrow_mut() = self.out.take();
        for w in self.shared.waiting.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

impl<C, SD> Shared<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// Waits for the turn to send.
    async fn turn(&self) -> Turn<'_, C> {
        let out = poll_fn(|cx| match self.out.borrow_mut().take() {
            Some(out) => Poll::Ready(out),
            None => {
                self.waiting.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        Turn {
            shared: self,
            out: Some(out),
        }
    }

    /// The turn, when nobody holds it now.
    fn try_turn(&self) -> Option<Turn<'_, C>> {
        let out = self.out.borrow_mut().take()?;
        Some(Turn {
            shared: self,
            out: Some(out),
        })
    }

    /// Sends what rustls has queued, holding `turn` until nothing is left (records queued by
    /// the other half while a send was under way included).
    async fn send_queued(&self, turn: &mut Turn<'_, C>) -> io::Result<()> {
        let Some(out) = turn.out.as_mut() else {
            return Ok(());
        };
        let mut buf = Vec::new();
        loop {
            {
                let mut conn = self.conn.borrow_mut();
                if !conn.wants_write() {
                    return Ok(());
                }
                if buf.capacity() == 0 {
                    buf.reserve(TLS_BUF);
                }
                buf.clear();
                // Writing into a Vec cannot fail.
                let _ = conn.write_tls(&mut buf);
            }
            let (res, b) = out.write_all(buf).await;
            buf = b;
            res?;
        }
    }

    /// Sends what rustls has queued, waiting for the turn.
    async fn flush(&self) -> io::Result<()> {
        if !self.conn.borrow().wants_write() {
            return Ok(());
        }
        let mut turn = self.turn().await;
        self.send_queued(&mut turn).await
    }
}

impl<C, SD> TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// Splits the connection for a tunnel. Plaintext rustls has decrypted but nobody has
    /// read yet stays in rustls and is the read half's first data.
    pub fn into_halves(self) -> (TlsReadHalf<C>, TlsWriteHalf<C>) {
        let (io, conn, inbox, failed) = self.into_parts();
        let (rd, wr) = io.into_split();
        let shared = Rc::new(Shared {
            conn: RefCell::new(conn),
            out: RefCell::new(Some(wr)),
            waiting: RefCell::new(Vec::new()),
            failed: Cell::new(failed),
        });
        (
            TlsReadHalf {
                io: rd,
                inbox,
                shared: shared.clone(),
            },
            TlsWriteHalf { shared },
        )
    }
}

impl<C, SD> TlsReadHalf<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// Reads plaintext, appending to `dst` (at most `max` bytes). Returns 0 at the end of the
    /// stream (close_notify or a TCP close).
    pub async fn read_plain(&mut self, dst: &mut BytesMut, max: usize) -> io::Result<usize> {
        loop {
            if let Some(taken) = take_plain(&mut *self.shared.conn.borrow_mut(), dst, max) {
                return taken;
            }
            if self.inbox.at_eof() || !self.inbox.fill(&mut self.io).await? {
                return Ok(0);
            }
            let absorbed = self.inbox.absorb(&mut *self.shared.conn.borrow_mut());
            if let Err(failure) = absorbed {
                self.shared.failed.set(true);
                // Send the alert rustls queued (it says why), then fail.
                let _ = self.shared.flush().await;
                return Err(failure);
            }
            // What the input asked for (a KeyUpdate answer) goes out now, unless the writer
            // holds the turn: it sends everything queued before giving the turn back.
            if let Some(mut turn) = self.shared.try_turn() {
                self.shared.send_queued(&mut turn).await?;
            }
        }
    }
}

impl<C, SD> TlsWriteHalf<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// Encrypts and sends all of `data`.
    pub async fn write_plain(&mut self, data: &[u8]) -> io::Result<()> {
        if self.shared.failed.get() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the TLS connection failed; nothing more is sent",
            ));
        }
        let mut data = data;
        while !data.is_empty() {
            let n = {
                let mut conn = self.shared.conn.borrow_mut();
                let n = conn.writer().write(data)?;
                if n == 0 && !conn.wants_write() {
                    // Nothing taken and nothing to send that would make room: never spin.
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the TLS connection takes no more data",
                    ));
                }
                n
            };
            data = &data[n..];
            if n == 0 || !data.is_empty() {
                // rustls's outgoing buffer is full: send what it holds, then go on.
                self.shared.flush().await?;
            }
        }
        self.shared.flush().await
    }

    /// Sends close_notify and shuts the socket's write side: the peer reads the end of this
    /// direction while the other goes on. After a fatal error only the socket is shut.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        if !self.shared.failed.get() {
            self.shared.conn.borrow_mut().send_close_notify();
        }
        let mut turn = self.shared.turn().await;
        if !self.shared.failed.get() {
            self.shared.send_queued(&mut turn).await?;
        }
        match turn.out.as_mut() {
            Some(out) => out.shutdown().await,
            None => Ok(()),
        }
    }
}
