//! Timeouts for the request path that cost nothing until they are needed.
//!
//! monoio's `Timeout` embeds its timer entry, a 640-byte `Sleep` aligned to 128 bytes (its
//! cache-padded parts), in every future that awaits one, and registers it in the timer wheel,
//! reading the clock, when it is created. Most operations on the request path finish on their
//! first poll or soon after, and every future that held such a timeout grew by kilobytes of
//! padding, which were copied whenever a future was boxed. [`timeout`] keeps only the
//! duration until the operation first has to wait; only then is the timer made, on the heap.
//! The deadline therefore counts from the first wait, which is the same turn of the worker's
//! loop as the first poll.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use monoio::time::Sleep;

/// The operation did not finish within its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `fut` for at most `wait` (counted from its first wait): `Err(Elapsed)` when the time
/// runs out first, and `fut` is dropped with the returned future.
pub fn timeout<F: Future>(wait: Duration, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        wait,
        timer: None,
    }
}

/// A boxed timer for `wait`: a future that holds it weighs a pointer.
pub fn sleep(wait: Duration) -> Pin<Box<Sleep>> {
    Box::pin(monoio::time::sleep(wait))
}

pin_project_lite::pin_project! {
    /// Future returned by [`timeout`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        wait: Duration,
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        let wait = *this.wait;
        let timer = this.timer.get_or_insert_with(|| sleep(wait));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::{pending, ready};
    use std::time::Instant;

    fn run<T>(f: impl Future<Output = T>) -> T {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("a test runtime");
        rt.block_on(f)
    }

    #[test]
    fn a_ready_operation_makes_no_timer() {
        run(async {
            let mut t = std::pin::pin!(timeout(Duration::from_millis(1), ready(7)));
            assert_eq!((&mut t).await, Ok(7));
            assert!(t.timer.is_none());
        });
    }

    #[test]
    fn a_waiting_operation_ends_at_its_deadline() {
        run(async {
            let started = Instant::now();
            let got = timeout(Duration::from_millis(30), pending::<()>()).await;
            assert_eq!(got, Err(Elapsed));
            assert!(started.elapsed() >= Duration::from_millis(30));
        });
    }

    #[test]
    fn an_operation_that_finishes_in_time_wins() {
        run(async {
            let slow = async {
                monoio::time::sleep(Duration::from_millis(5)).await;
                "done"
            };
            assert_eq!(timeout(Duration::from_secs(5), slow).await, Ok("done"));
        });
    }

    #[test]
    fn a_timeout_future_weighs_its_operation_and_a_few_words() {
        let t = timeout(Duration::from_secs(1), ready(0u8));
        assert!(
            std::mem::size_of_val(&t) <= 40,
            "{}",
            std::mem::size_of_val(&t)
        );
        assert!(std::mem::align_of_val(&t) <= 8);
    }
}
