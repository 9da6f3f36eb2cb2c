//! Reads that give their buffer back while the peer is quiet.
//!
//! On io_uring a read is posted with its buffer: the kernel owns it until bytes arrive. A
//! connection waiting for its client's next request would therefore hold a read buffer for as
//! long as the client stays quiet, which for thousands of idle keep-alive connections is most
//! of their memory. [`Quiet::read`] posts the read as usual (a client that answers at once
//! costs nothing more), and once the peer has been quiet for a grace period it cancels the
//! read, frees the buffer and waits for readiness with none, as an epoll server does; a buffer
//! is taken again only when bytes are there to fill it.
//!
//! The grace period is measured by the core's [`sweep`] task, not by a timer per read: it
//! ticks every [`TICK`], and a read still waiting two ticks after it was posted has waited
//! between one and two ticks. A read that completes at once registers nothing.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, CancelableAsyncReadRent, Canceller};
use monoio::net::TcpStream;
use monoio::time::Sleep;

/// How often the core's sweeper looks at the posted reads.
pub const TICK: Duration = Duration::from_millis(25);

/// The longest a read stays posted with its buffer before the buffer is given back (at least
/// one [`TICK`]). Clients on a busy keep-alive connection send their next request well within
/// it; one quiet for longer costs a cancel and a readiness wait, once per quiet spell.
pub const GRACE: Duration = Duration::from_millis(2 * 25);

thread_local! {
    static POSTED: RefCell<Posted> = RefCell::new(Posted::default());
}

/// The core's reads waiting within their grace period.
#[derive(Default)]
struct Posted {
    /// A sweeper runs on this thread (without one, each wait has a timer of its own).
    swept: bool,
    /// Ticks so far.
    tick: u64,
    waiting: slab::Slab<Waiting>,
}

/// One read waiting within its grace period.
struct Waiting {
    /// The tick it was posted in.
    since: u64,
    waker: Waker,
    expired: bool,
}

/// The core's sweeper: ends the grace period of reads posted two ticks ago. Runs for the
/// worker's life, spawned beside its other loops.
pub async fn sweep() {
    POSTED.with(|p| p.borrow_mut().swept = true);
    loop {
        monoio::time::sleep(TICK).await;
        POSTED.with(|p| {
            let mut p = p.borrow_mut();
            p.tick += 1;
            let now = p.tick;
            for (_, w) in p.waiting.iter_mut() {
                if !w.expired && now >= w.since + 2 {
                    w.expired = true;
                    w.waker.wake_by_ref();
                }
            }
        });
    }
}

/// Resolves when the read beside it has been posted for its grace period.
struct Grace {
    key: Option<usize>,
    /// Where no sweeper runs (tests, tools): a timer of its own.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Grace {
    fn new() -> Self {
        Grace {
            key: None,
            timer: None,
        }
    }
}

impl Future for Grace {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(timer) = self.timer.as_mut() {
            return timer.as_mut().poll(cx);
        }
        let key = self.key;
        let state = POSTED.with(|p| {
            let mut p = p.borrow_mut();
            if !p.swept {
                return State::Unswept;
            }
            match key.and_then(|k| p.waiting.get_mut(k)) {
                Some(w) if w.expired => State::Expired,
                Some(w) => {
                    if !w.waker.will_wake(cx.waker()) {
                        w.waker = cx.waker().clone();
                    }
                    State::Waiting
                }
                None => {
                    let since = p.tick;
                    State::Registered(p.waiting.insert(Waiting {
                        since,
                        waker: cx.waker().clone(),
                        expired: false,
                    }))
                }
            }
        });
        match state {
            State::Expired => Poll::Ready(()),
            State::Waiting => Poll::Pending,
            State::Registered(k) => {
                self.key = Some(k);
                Poll::Pending
            }
            State::Unswept => {
                let timer = self.timer.insert(crate::deadline::sleep(GRACE));
                timer.as_mut().poll(cx)
            }
        }
    }
}

/// Where a [`Grace`] stands after a look at the core's set.
enum State {
    Expired,
    Waiting,
    Registered(usize),
    Unswept,
}

impl Drop for Grace {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            // At thread exit the set may be gone already: nothing to remove then.
            let _ = POSTED.try_with(|p| p.borrow_mut().waiting.try_remove(k));
        }
    }
}

/// What waiting for a peer's next bytes came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A read will return at once: bytes, the end of the stream, or an error.
    Bytes,
    /// Nothing came within the time allowed.
    Nothing,
}

/// What a connection keeps to read quietly: the canceller its posted reads answer to, made
/// once per connection (making one per read, with the set of operations it tracks, costs
/// more than the rest of the wait).
pub struct Quiet {
    canceller: Canceller,
}

impl Default for Quiet {
    fn default() -> Self {
        Quiet {
            canceller: Canceller::new(),
        }
    }
}

impl Quiet {
    /// Reads from `io` into `buf`, waiting at most `limit` for bytes (or the end of the
    /// stream, or an error). After the grace period without any, `buf` is dropped and a buffer
    /// from `fresh` takes its place once the socket is readable. `None`: nothing came within
    /// `limit`.
    pub async fn read<T: IoBufMut>(
        &mut self,
        io: &mut TcpStream,
        buf: T,
        limit: Duration,
        fresh: impl FnOnce() -> T,
    ) -> Option<(io::Result<usize>, T)> {
        if limit <= GRACE {
            // Too short to be worth a readiness wait: the read stays posted, and is dropped
            // with the connection when the time runs out.
            return crate::deadline::timeout(limit, io.read(buf)).await.ok();
        }
        let (res, buf) = {
            let mut posted = std::pin::pin!(io.cancelable_read(buf, self.canceller.handle()));
            let mut grace = std::pin::pin!(Grace::new());
            let first = std::future::poll_fn(|cx| {
                if let Poll::Ready(done) = posted.as_mut().poll(cx) {
                    return Poll::Ready(Some(done));
                }
                grace.as_mut().poll(cx).map(|()| None)
            })
            .await;
            match first {
                Some(done) => return Some(done),
                None => {
                    // Bytes may have arrived while the cancel was on its way: the read then
                    // completes with them, and nothing is lost. A cancelled canceller stays
                    // cancelled: the next reads answer to a fresh one.
                    let cancelled = std::mem::take(&mut self.canceller);
                    self.canceller = cancelled.cancel();
                    posted.await
                }
            }
        };
        if !is_cancelled(&res) {
            return Some((res, buf));
        }
        drop(buf);
        let left = limit.saturating_sub(GRACE);
        match crate::deadline::timeout(left, io.readable(false)).await {
            Err(_) => None,
            Ok(Err(e)) => Some((Err(e), fresh())),
            Ok(Ok(())) => Some(io.read(fresh()).await),
        }
    }
}

/// Whether a read ended because it was cancelled (and brought nothing).
fn is_cancelled(res: &io::Result<usize>) -> bool {
    matches!(res, Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ECANCELED as i32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::AsyncWriteRentExt;
    use monoio::net::TcpListener;

    /// Runs `test` on the io_uring driver (where the kernel has it) and on the legacy one.
    fn on_both_drivers<F: std::future::Future<Output = ()>>(test: impl Fn() -> F) {
        if let Ok(mut rt) = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
        {
            rt.block_on(test());
        }
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("a legacy runtime builds in tests")
            .block_on(test());
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (client, server)
    }

    /// A read of up to 5 s posted with a 64-byte buffer, an 8-byte one after a quiet spell:
    /// the capacity says which buffer the bytes went into.
    async fn read_64_or_8(
        quiet: &mut Quiet,
        server: &mut TcpStream,
    ) -> Option<(io::Result<usize>, Vec<u8>)> {
        quiet
            .read(
                server,
                Vec::with_capacity(64),
                Duration::from_secs(5),
                || Vec::with_capacity(8),
            )
            .await
    }

    #[test]
    fn bytes_sent_at_once_are_read_into_the_posted_buffer() {
        on_both_drivers(|| async {
            let (mut client, mut server) = pair().await;
            let _ = client.write_all(b"hello".to_vec()).await;
            let got = read_64_or_8(&mut Quiet::default(), &mut server).await;
            let (res, buf) = got.expect("bytes came");
            assert_eq!(res.expect("read"), 5);
            assert_eq!(&buf[..], b"hello");
            assert_eq!(buf.capacity(), 64, "the posted buffer, not a fresh one");
        });
    }

    /// A peer quiet for twice the grace period: the read's first buffer is given back, and
    /// the bytes go into a fresh one. `swept`: with the core's sweeper ending the grace
    /// period (as on a worker), or a timer of the read's own (elsewhere).
    async fn a_quiet_spell_gives_the_buffer_back(swept: bool) {
        if swept {
            drop(monoio::spawn(sweep()));
        }
        let (mut client, mut server) = pair().await;
        let writer = monoio::spawn(async move {
            monoio::time::sleep(GRACE * 4).await;
            let _ = client.write_all(b"late".to_vec()).await;
            client
        });
        let got = read_64_or_8(&mut Quiet::default(), &mut server).await;
        let (res, buf) = got.expect("bytes came");
        assert_eq!(res.expect("read"), 4);
        assert_eq!(&buf[..], b"late");
        assert_eq!(
            buf.capacity(),
            8,
            "the quiet spell gave the first buffer back"
        );
        drop(writer.await);
        assert_eq!(
            POSTED.with(|p| p.borrow().waiting.len()),
            0,
            "nothing left waiting"
        );
    }

    #[test]
    fn bytes_after_a_quiet_spell_go_into_a_fresh_buffer() {
        on_both_drivers(|| a_quiet_spell_gives_the_buffer_back(false));
    }

    #[test]
    fn with_the_core_sweeper_a_quiet_spell_gives_the_buffer_back() {
        on_both_drivers(|| a_quiet_spell_gives_the_buffer_back(true));
    }

    #[test]
    fn nothing_within_the_limit_is_none_and_the_end_of_stream_is_a_zero_read() {
        on_both_drivers(|| async {
            let (client, mut server) = pair().await;
            let mut quiet = Quiet::default();
            let none = quiet
                .read(&mut server, Vec::with_capacity(64), GRACE * 2, Vec::new)
                .await;
            assert!(none.is_none());
            drop(client);
            let (res, _) = read_64_or_8(&mut quiet, &mut server)
                .await
                .expect("the close came");
            assert_eq!(res.expect("read"), 0);
        });
    }
}
