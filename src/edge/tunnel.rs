//! A connection that switched protocols (an upstream's `101` to an upgrade the location
//! allows, such as WebSocket): from then on ringgate relays bytes both ways without reading
//! them, until either side closes.
//!
//! Each direction is a loop of one read and one write, so nothing is buffered beyond one read
//! per direction, and a slow reader slows its writer (TCP's own flow control, end to end). An
//! end of stream on one side ends that direction only (half-close: the other side gets a FIN,
//! or a close_notify over TLS) and the other goes on. The tunnel closes when both directions
//! have ended, when either fails, when no byte has moved either way for the upstream's
//! `read_timeout` (nginx's `proxy_read_timeout` closes an idle WebSocket the same way), or when
//! a graceful shutdown's `shutdown_timeout` has passed.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::drain::Drain;
use crate::conn::{ReadHalf, Stream, WriteHalf};

/// A read's size while a direction carries little; it grows while reads fill it.
const SMALL_READ: usize = 4096;

/// The largest read.
const LARGE_READ: usize = 64 * 1024;

/// How long closing a tunnel that ringgate ends may take.
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// What the forward phase hands the connection driver after a `101`: the upstream connection
/// and what came with the switch.
pub struct Tunnel {
    /// The upstream connection, now speaking the new protocol.
    pub upstream: Stream,
    /// What the upstream sent after its `101` head: the new protocol's first bytes.
    pub to_client: BytesMut,
    /// The tunnel closes when no byte has moved either way for this long.
    pub idle_timeout: Duration,
    /// A write to the client that takes longer fails the tunnel (the server's `send_timeout`).
    pub client_send_timeout: Duration,
    /// A write to the upstream that takes longer fails the tunnel (the upstream's).
    pub upstream_send_timeout: Duration,
    /// The upstream group's name, for log lines.
    pub upstream_name: String,
}

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed their direction.
    Closed,
    /// A read or write failed, or a write timed out.
    Failed,
    /// No byte moved either way for the idle timeout.
    Idle,
    /// The graceful shutdown's time was up.
    Shutdown,
}

/// What a tunnel relayed, for the access log and the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Relayed {
    /// Bytes sent to the client.
    pub to_client: u64,
    /// Bytes sent to the upstream.
    pub to_upstream: u64,
    /// Why it ended.
    pub end: End,
}

/// One direction's byte count and the tunnel's last activity, shared with the idle watch.
struct Flow<'a> {
    moved: Cell<u64>,
    last_activity: &'a Cell<Instant>,
    send_timeout: Duration,
}

/// Relays between `client` and the tunnel's upstream until the tunnel ends (at the latest
/// when `drain` expires). `from_client` is what the client sent after the upgrade request's
/// head: it belongs to the new protocol and goes to the upstream first.
pub async fn run(drain: &Drain, client: Stream, from_client: BytesMut, tunnel: Tunnel) -> Relayed {
    crate::metrics::with(|m| m.tunnel_opened());
    let last_activity = Cell::new(Instant::now());
    let up = Flow {
        moved: Cell::new(0),
        last_activity: &last_activity,
        send_timeout: tunnel.upstream_send_timeout,
    };
    let down = Flow {
        moved: Cell::new(0),
        last_activity: &last_activity,
        send_timeout: tunnel.client_send_timeout,
    };
    let halves = (client.into_halves(), tunnel.upstream.into_halves());
    let (Ok((mut client_rd, mut client_wr)), Ok((mut upstream_rd, mut upstream_wr))) = halves
    else {
        // Every connection that switched splits (an HTTP/2 stream once its extended CONNECT
        // was answered); one that cannot is closed rather than relayed half-way.
        crate::metrics::with(|m| m.tunnel_closed(0, 0));
        return Relayed {
            to_client: 0,
            to_upstream: 0,
            end: End::Failed,
        };
    };
    let both = both_ways(
        pump(&mut client_rd, &mut upstream_wr, from_client, &up),
        pump(&mut upstream_rd, &mut client_wr, tunnel.to_client, &down),
    );
    let idle = idle_watch(&last_activity, tunnel.idle_timeout);
    let expired = drain.wait_expired();
    let end = monoio::select! {
        ok = both => if ok { End::Closed } else { End::Failed },
        _ = idle => End::Idle,
        _ = expired => End::Shutdown,
    };
    if matches!(end, End::Idle | End::Shutdown) {
        // Ours to end: each side gets a clean close (close_notify over TLS), briefly.
        let close = async {
            let _ = client_wr.shutdown().await;
            let _ = upstream_wr.shutdown().await;
        };
        let _ = crate::deadline::timeout(CLOSE_GRACE, close).await;
    }
    let relayed = Relayed {
        to_client: down.moved.get(),
        to_upstream: up.moved.get(),
        end,
    };
    crate::metrics::with(|m| m.tunnel_closed(relayed.to_client, relayed.to_upstream));
    if end == End::Idle {
        log::info!(
            "tunnel to upstream `{}` idle for {:?} (read_timeout); closed",
            tunnel.upstream_name,
            tunnel.idle_timeout
        );
    }
    relayed
}

/// One direction: read, write, until the source ends (then the end is passed on) or either
/// side fails (false).
async fn pump(from: &mut ReadHalf, to: &mut WriteHalf, first: BytesMut, flow: &Flow<'_>) -> bool {
    if !first.is_empty() {
        let n = first.len() as u64;
        if send(to, first, flow).await.is_none() {
            return false;
        }
        flow.moved.set(flow.moved.get() + n);
    }
    let mut want = SMALL_READ;
    let mut buf = BytesMut::with_capacity(want);
    loop {
        let n = match from.read(&mut buf, want).await {
            Ok(0) => return to.shutdown().await.is_ok(),
            Ok(n) => n,
            Err(_) => return false,
        };
        flow.last_activity.set(Instant::now());
        // A read that filled its buffer means more is coming: read more at a time.
        want = if n >= want {
            (want * 2).min(LARGE_READ)
        } else {
            SMALL_READ.max(want / 2)
        };
        match send(to, buf, flow).await {
            Some(b) => buf = b,
            None => return false,
        }
        flow.moved.set(flow.moved.get() + n as u64);
    }
}

/// Writes all of `data` within the send timeout; hands the buffer back.
async fn send(to: &mut WriteHalf, data: BytesMut, flow: &Flow<'_>) -> Option<BytesMut> {
    match crate::deadline::timeout(flow.send_timeout, to.write(data)).await {
        Ok((Ok(()), buf)) => {
            flow.last_activity.set(Instant::now());
            Some(buf)
        }
        _ => None,
    }
}

/// Runs both directions at once: true when both ended cleanly, false as soon as either fails.
async fn both_ways(a: impl Future<Output = bool>, b: impl Future<Output = bool>) -> bool {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let (mut a_done, mut b_done) = (false, false);
    poll_fn(|cx| {
        if !a_done {
            if let Poll::Ready(ok) = a.as_mut().poll(cx) {
                if !ok {
                    return Poll::Ready(false);
                }
                a_done = true;
            }
        }
        if !b_done {
            if let Poll::Ready(ok) = b.as_mut().poll(cx) {
                if !ok {
                    return Poll::Ready(false);
                }
                b_done = true;
            }
        }
        if a_done && b_done {
            Poll::Ready(true)
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Completes once no byte has moved either way for `idle`.
async fn idle_watch(last_activity: &Cell<Instant>, idle: Duration) {
    loop {
        let due = last_activity.get() + idle;
        let now = Instant::now();
        if now >= due {
            return;
        }
        crate::deadline::sleep(due - now).await;
    }
}
