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
//! Both the grace period and the rest of the wait (`header_timeout`, `keepalive_timeout`) are
//! counted by the core's [`sweep`] task, not by a timer per read: it ticks every [`TICK`] and
//! ends the waits due at that tick, filed by tick on a wheel. An idle connection so holds a
//! wheel entry of a few dozen bytes rather than a timer of its own (monoio's is 640 bytes);
//! a timeout ends up to one tick late, never early. A read that completes at once registers
//! nothing.

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

/// How often the core's sweeper advances its wheel.
pub const TICK: Duration = Duration::from_millis(25);

/// The longest a read stays posted with its buffer before the buffer is given back (at least
/// one [`TICK`]). Clients on a busy keep-alive connection send their next request well within
/// it; one quiet for longer costs a cancel and a readiness wait, once per quiet spell.
pub const GRACE: Duration = Duration::from_millis(2 * 25);

/// Slots in the core's wheel: a wait due further ahead than a turn of the wheel
/// (`SLOTS` ticks) is looked at once per turn until it is due.
const SLOTS: usize = 64;

thread_local! {
    static WHEEL: RefCell<Wheel> = RefCell::new(Wheel::default());
}

/// The core's waits that the sweeper ends: each is due at a tick and filed in that tick's slot,
/// so a tick looks at one slot, not at every wait.
#[derive(Default)]
struct Wheel {
    /// A sweeper runs on this thread (without one, each wait has a timer of its own).
    swept: bool,
    /// Ticks so far.
    tick: u64,
    waits: slab::Slab<Wait>,
    /// The keys of the waits not yet due, by `due % SLOTS` (made at the first wait).
    slots: Vec<Vec<usize>>,
}

/// One wait on the wheel.
struct Wait {
    /// The tick it ends at.
    due: u64,
    waker: Waker,
    /// Its place in its slot; None once it has ended.
    place: Option<usize>,
}

fn slot_of(tick: u64) -> usize {
    // The remainder is below SLOTS, so it fits.
    (tick % SLOTS as u64) as usize
}

impl Wheel {
    /// Files a wait that ends `ticks` ticks from now.
    fn insert(&mut self, ticks: u64, waker: Waker) -> usize {
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, Vec::new);
        }
        let due = self.tick + ticks.max(1);
        let slot = &mut self.slots[slot_of(due)];
        let key = self.waits.insert(Wait {
            due,
            waker,
            place: Some(slot.len()),
        });
        slot.push(key);
        key
    }

    /// Forgets a wait, ended or not.
    fn remove(&mut self, key: usize) {
        if let Some(Wait {
            due,
            place: Some(place),
            ..
        }) = self.waits.try_remove(key)
        {
            self.unfile(slot_of(due), place);
        }
    }

    /// Takes the entry at `place` out of `slot`; the last one takes its place.
    fn unfile(&mut self, slot: usize, place: usize) {
        let keys = &mut self.slots[slot];
        keys.swap_remove(place);
        if let Some(&moved) = keys.get(place) {
            if let Some(w) = self.waits.get_mut(moved) {
                w.place = Some(place);
            }
        }
    }

    /// One tick: the waits due by now end, and their tasks are woken.
    fn advance(&mut self) {
        self.tick += 1;
        if self.slots.is_empty() {
            return;
        }
        let slot = slot_of(self.tick);
        let mut place = 0;
        while let Some(&key) = self.slots[slot].get(place) {
            let due = match self.waits.get_mut(key) {
                Some(w) if w.due <= self.tick => {
                    w.place = None;
                    w.waker.wake_by_ref();
                    true
                }
                _ => false,
            };
            if due {
                self.unfile(slot, place);
            } else {
                place += 1;
            }
        }
    }
}

/// The core's sweeper: advances the wheel every [`TICK`], ending the waits that are due (a
/// read's grace period, an idle connection's timeout). Runs for the worker's life, spawned
/// beside its other loops.
pub async fn sweep() {
    WHEEL.with(|w| w.borrow_mut().swept = true);
    loop {
        monoio::time::sleep(TICK).await;
        WHEEL.with(|w| w.borrow_mut().advance());
    }
}

/// Resolves once the core's sweeper has counted its ticks from the first poll: a timeout of
/// a few dozen bytes on the wheel rather than a timer entry of its own (640 bytes in monoio's
/// wheel, for as long as a connection idles).
struct Alarm {
    ticks: u64,
    key: Option<usize>,
    /// Where no sweeper runs (tests, tools): a timer of its own, for `fallback`.
    timer: Option<Pin<Box<Sleep>>>,
    fallback: Duration,
}

impl Alarm {
    /// Rings after the grace period: two ticks from the first poll, so between one and two
    /// ticks of waiting.
    fn grace() -> Alarm {
        Alarm {
            ticks: 2,
            key: None,
            timer: None,
            fallback: GRACE,
        }
    }

    /// Rings no earlier than `wait` from the first poll, and at most a tick later.
    fn after(wait: Duration) -> Alarm {
        let whole = wait.as_nanos().div_ceil(TICK.as_nanos());
        Alarm {
            ticks: u64::try_from(whole)
                .unwrap_or(u64::MAX / 2)
                .saturating_add(1),
            key: None,
            timer: None,
            fallback: wait,
        }
    }
}

impl Future for Alarm {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(timer) = self.timer.as_mut() {
            return timer.as_mut().poll(cx);
        }
        let (key, ticks) = (self.key, self.ticks);
        let state = WHEEL.with(|w| {
            let mut w = w.borrow_mut();
            if !w.swept {
                return State::Unswept;
            }
            match key.and_then(|k| w.waits.get_mut(k)) {
                Some(wait) if wait.place.is_none() => State::Rung,
                Some(wait) => {
                    if !wait.waker.will_wake(cx.waker()) {
                        wait.waker = cx.waker().clone();
                    }
                    State::Waiting
                }
                None => State::Filed(w.insert(ticks, cx.waker().clone())),
            }
        });
        match state {
            State::Rung => Poll::Ready(()),
            State::Waiting => Poll::Pending,
            State::Filed(k) => {
                self.key = Some(k);
                Poll::Pending
            }
            State::Unswept => {
                let fallback = self.fallback;
                let timer = self.timer.insert(crate::deadline::sleep(fallback));
                timer.as_mut().poll(cx)
            }
        }
    }
}

/// Where an [`Alarm`] stands after a look at the wheel.
enum State {
    Rung,
    Waiting,
    Filed(usize),
    Unswept,
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            // At thread exit the wheel may be gone already: nothing to remove then.
            let _ = WHEEL.try_with(|w| w.borrow_mut().remove(k));
        }
    }
}

/// `fut`, or None once `alarm` rings first.
async fn until<F: Future>(fut: F, alarm: Alarm) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut alarm = std::pin::pin!(alarm);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        alarm.as_mut().poll(cx).map(|()| None)
    })
    .await
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
        let (res, buf) = self.posted(io, buf).await;
        if !is_cancelled(&res) {
            return Some((res, buf));
        }
        drop(buf);
        let left = limit.saturating_sub(GRACE);
        match until(io.readable(false), Alarm::after(left)).await {
            None => None,
            Some(Err(e)) => Some((Err(e), fresh())),
            Some(Ok(())) => Some(io.read(fresh()).await),
        }
    }

    /// The read posted with `buf` for the grace period, then cancelled: what it brought, or
    /// ECANCELED. (A function of its own, so that the posted read's state and the readiness
    /// wait after it share their place in the caller's future; written inline, the pinned
    /// read was kept beside the readiness wait, 256 bytes per idle connection.)
    async fn posted<T: IoBufMut>(&mut self, io: &mut TcpStream, buf: T) -> (io::Result<usize>, T) {
        let mut posted = std::pin::pin!(io.cancelable_read(buf, self.canceller.handle()));
        if let Some(done) = until(posted.as_mut(), Alarm::grace()).await {
            return done;
        }
        // Bytes may have arrived while the cancel was on its way: the read then completes
        // with them, and nothing is lost. A cancelled canceller stays cancelled: the next
        // reads answer to a fresh one.
        let cancelled = std::mem::take(&mut self.canceller);
        self.canceller = cancelled.cancel();
        posted.await
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

    /// A waker that counts its wakes.
    fn counting() -> (Waker, std::sync::Arc<CountWakes>) {
        let count = std::sync::Arc::new(CountWakes::default());
        (Waker::from(count.clone()), count)
    }

    #[derive(Default)]
    struct CountWakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountWakes {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    impl CountWakes {
        fn wakes(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    /// Waits due within a turn, several turns ahead and in the same slot end at their tick
    /// and no other; waits removed from the middle of a slot leave the others in place.
    #[test]
    fn the_wheel_ends_each_wait_at_its_tick() {
        let mut wheel = Wheel::default();
        let ticks = [
            1,
            2,
            5,
            SLOTS as u64,
            SLOTS as u64 + 5,
            3 * SLOTS as u64 + 2,
            5,
        ];
        let waits: Vec<_> = ticks
            .iter()
            .map(|&t| {
                let (waker, count) = counting();
                (wheel.insert(t, waker), t, count)
            })
            .collect();
        // Two more in the slot of tick 5, removed before it comes: the others still end.
        let (gone_a, _) = counting();
        let (gone_b, gone_count) = counting();
        let a = wheel.insert(5, gone_a);
        let b = wheel.insert(5 + SLOTS as u64, gone_b);
        wheel.remove(a);
        for now in 1..=4 * SLOTS as u64 {
            wheel.advance();
            if now == 3 {
                wheel.remove(b);
            }
            for (key, due, count) in &waits {
                let ended = wheel.waits.get(*key).is_some_and(|w| w.place.is_none());
                assert_eq!(ended, now >= *due, "wait due at {due}, tick {now}");
                assert_eq!(count.wakes(), usize::from(now >= *due), "wait due at {due}");
            }
        }
        assert_eq!(gone_count.wakes(), 0, "a removed wait is never woken");
        for (key, _, _) in waits {
            wheel.remove(key);
        }
        assert!(wheel.waits.is_empty());
        assert!(wheel.slots.iter().all(Vec::is_empty), "every slot emptied");
    }

    /// With the sweeper, a wait for a quiet peer ends at its limit (not before, and within a
    /// tick or so after), and leaves nothing on the wheel.
    #[test]
    fn with_the_core_sweeper_nothing_within_the_limit_ends_at_the_limit() {
        on_both_drivers(|| async {
            drop(monoio::spawn(sweep()));
            let (_client, mut server) = pair().await;
            let limit = GRACE * 4;
            let began = std::time::Instant::now();
            let none = Quiet::default()
                .read(&mut server, Vec::with_capacity(64), limit, Vec::new)
                .await;
            let waited = began.elapsed();
            assert!(none.is_none());
            assert!(waited >= limit, "ended after {waited:?}, before {limit:?}");
            assert!(waited < limit + Duration::from_secs(2), "{waited:?}");
            assert_eq!(WHEEL.with(|w| w.borrow().waits.len()), 0);
        });
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
            WHEEL.with(|w| w.borrow().waits.len()),
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
