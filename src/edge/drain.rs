//! A per-worker shutdown signal that tasks can await: when the process is asked to stop, idle
//! keep-alive connections wake up and close, busy ones finish their request first. When
//! `shutdown_timeout` has passed the drain expires: what is still open and can end cleanly
//! (a tunnel, whose peers are owed a close and whose request a log line) ends then.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// One worker's drain state (cheap to clone; `!Send` by design).
#[derive(Clone, Default)]
pub struct Drain {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    draining: Cell<bool>,
    expired: Cell<bool>,
    /// Wakers of pending waits, by wait id; a wait removes its entry when dropped.
    waiters: RefCell<HashMap<u64, Waker, BuildHasherDefault<IdHasher>>>,
    next_id: Cell<u64>,
    active: Cell<usize>,
}

impl Drain {
    /// Starts draining and wakes every waiter.
    pub fn start(&self) {
        self.inner.draining.set(true);
        self.wake_all();
    }

    /// The grace period is over: wakes every waiter again, for [`Drain::wait_expired`].
    pub fn expire(&self) {
        self.inner.draining.set(true);
        self.inner.expired.set(true);
        self.wake_all();
    }

    fn wake_all(&self) {
        let waiters: Vec<Waker> = self
            .inner
            .waiters
            .borrow_mut()
            .drain()
            .map(|(_, w)| w)
            .collect();
        for w in waiters {
            w.wake();
        }
    }

    /// True once draining has started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.get()
    }

    /// Completes when draining starts.
    pub fn wait(&self) -> DrainWait {
        self.waiter(false)
    }

    /// Completes when the drain expires (`shutdown_timeout` after it started).
    pub fn wait_expired(&self) -> DrainWait {
        self.waiter(true)
    }

    fn waiter(&self, until_expired: bool) -> DrainWait {
        let id = self.inner.next_id.get();
        self.inner.next_id.set(id + 1);
        DrainWait {
            drain: self.clone(),
            id,
            until_expired,
        }
    }

    /// Counts a connection as active until the guard drops.
    pub fn track(&self) -> ActiveGuard {
        self.inner.active.set(self.inner.active.get() + 1);
        ActiveGuard {
            drain: self.clone(),
        }
    }

    /// Connections still open.
    pub fn active(&self) -> usize {
        self.inner.active.get()
    }
}

/// Future returned by [`Drain::wait`].
pub struct DrainWait {
    drain: Drain,
    id: u64,
    /// Waits for the expiry rather than the start.
    until_expired: bool,
}

impl Drop for DrainWait {
    fn drop(&mut self) {
        self.drain.inner.waiters.borrow_mut().remove(&self.id);
    }
}

impl Future for DrainWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let reached = if self.until_expired {
            self.drain.inner.expired.get()
        } else {
            self.drain.is_draining()
        };
        if reached {
            return Poll::Ready(());
        }
        // Polled on every turn of a connection's loop: the waker is cloned only when it
        // changed.
        let mut waiters = self.drain.inner.waiters.borrow_mut();
        match waiters.get_mut(&self.id) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => w.clone_from(cx.waker()),
            None => {
                waiters.insert(self.id, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

/// The hash of a wait id (ids are a counter, never chosen by a peer): one multiplication,
/// where the default SipHash was a visible part of every HTTP/2 request's cost.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Keeps a connection counted as active.
pub struct ActiveGuard {
    drain: Drain,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let n = self.drain.inner.active.get();
        self.drain.inner.active.set(n.saturating_sub(1));
    }
}
