//! The HTTP/1.x driver: each request head is read and run through the request phases, logged,
//! and the connection is kept alive or closed, or, after an upstream's `101`, becomes a tunnel
//! ([`super::tunnel`]) whose request is logged when it closes.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::core::Core;
use super::outcome::Refusal;
use super::refusal_log::Kind;
use super::request::{Incoming, Protocol};
use super::session::{limits, After, Session, Switched};
use crate::conn::{Arrival, Stream};
use crate::http::{self, RequestError, RequestHead};
use crate::quiet::Quiet;

impl Session<'_> {
    /// nginx-compatible mode: the handshake completed with a refused certificate, so the
    /// first request gets the 400 page (and an access-log line, as nginx writes one).
    pub(super) async fn answer_refused(&self, stream: &mut Stream, refusal: &Refusal) {
        let started = Instant::now();
        let http = &self.server.http;
        let mut buf = BytesMut::with_capacity(4096);
        let head = crate::deadline::timeout(
            http.header_timeout,
            read_head(stream, &mut buf, &limits(http), http.header_timeout),
        )
        .await;
        let _ = stream
            .write_bytes(Bytes::from_static(refusal.page().bytes()))
            .await;
        if let Ok(Ok(head)) = head {
            let bytes = buf.split_to(head.head_len.min(buf.len()));
            let protocol = Protocol::of_http1(&head);
            self.log_refused(protocol, &head, &bytes, started, refusal);
        }
    }

    /// Reads and serves requests until the connection closes (None) or switches protocols.
    pub(super) async fn serve_requests(
        &self,
        stream: &mut Stream,
        mut unread: BytesMut,
    ) -> Option<Box<Switched>> {
        let http = &self.server.http;
        let limits = limits(http);
        // `unread`: empty until the first bytes arrive (an idle connection holds no request
        // buffer), unless the opening was read to tell HTTP/2 from HTTP/1.1.
        let mut served: u64 = 0;
        let mut quiet = Quiet::default();
        loop {
            // The time the head has: header_timeout from the connection's start for the first
            // request (its first bytes may be a while coming), from its first bytes for the
            // next ones (the wait before them is keepalive_timeout's).
            let mut head_time = http.header_timeout;
            if served > 0 {
                let idle = http.keepalive_timeout;
                if !wait_next_request(self.core, stream, &mut unread, idle, &mut quiet).await {
                    break;
                }
            } else if unread.is_empty() {
                let waiting = Instant::now();
                if !first_bytes(stream, &mut unread, head_time, &mut quiet).await {
                    break;
                }
                head_time = head_time.saturating_sub(waiting.elapsed());
            }
            served += 1;
            match self
                .serve_one(stream, &mut unread, served, &limits, head_time)
                .await
            {
                After::NextRequest => {}
                After::Close => break,
                After::Relay(mut switched) => {
                    switched.from_client = std::mem::take(&mut unread);
                    return Some(switched);
                }
            }
        }
        None
    }

    /// Reads the connection's `served`th request head within `head_time` and serves the
    /// request: whether the connection goes on to another. (A function of its own, so that a
    /// request's state and the wait for the next one share their place in the connection's
    /// future.)
    async fn serve_one(
        &self,
        stream: &mut Stream,
        unread: &mut BytesMut,
        served: u64,
        limits: &http::Limits,
        head_time: Duration,
    ) -> After {
        let started = Instant::now();
        let head = match read_head(stream, unread, limits, head_time).await {
            Ok(h) => h,
            Err(e) => {
                // Boxed: the refusal's write is rare and would otherwise size the
                // connection's task for every request.
                Box::pin(self.head_failed(stream, e)).await;
                return After::Close;
            }
        };
        // The head gets a buffer of its own (a split, not a copy): the body and any
        // pipelined request stay in `unread`, and the head stays readable for the log.
        let bytes = unread.split_to(head.head_len.min(unread.len())).freeze();
        let http = &self.server.http;
        let incoming = Incoming {
            protocol: Protocol::of_http1(&head),
            head: &head,
            bytes: &bytes,
            served,
            last: served >= http.keepalive_requests || self.core.drain.is_draining(),
        };
        match self.one_request(stream, unread, incoming, started).await {
            After::NextRequest if !incoming.last => After::NextRequest,
            After::NextRequest | After::Close => After::Close,
            relay @ After::Relay(_) => relay,
        }
    }

    /// Answers a head that could not be read, when there is anything to answer.
    async fn head_failed(&self, stream: &mut Stream, e: HeadError) {
        let refusal = match e {
            HeadError::Closed | HeadError::Io => return,
            HeadError::Timeout => {
                crate::refusal_line!(
                    Kind::Timeout,
                    info,
                    "listener={} peer={}: client timed out sending the request head (408)",
                    self.server.name,
                    self.peer.addr
                );
                Refusal::HeadTimeout
            }
            HeadError::Bad(e) => {
                let refusal = Refusal::BadHead(e);
                crate::refusal_line!(
                    Kind::BadRequest,
                    info,
                    "listener={} peer={}: bad request: {} ({})",
                    self.server.name,
                    self.peer.addr,
                    refusal.reason(),
                    refusal.status()
                );
                refusal
            }
        };
        let _ = stream
            .write_bytes(Bytes::from_static(refusal.page().bytes()))
            .await;
    }
}

/// Why no request head could be read.
enum HeadError {
    /// The peer closed, went idle past keepalive_timeout, or we are draining: close quietly.
    Closed,
    /// The head did not arrive in time (408).
    Timeout,
    /// The head is malformed or too large.
    Bad(RequestError),
    /// The connection failed.
    Io,
}

/// Reads until a complete request head is in `buf` (bytes after it stay in `buf`).
async fn read_head(
    stream: &mut Stream,
    buf: &mut BytesMut,
    limits: &http::Limits,
    header_timeout: Duration,
) -> Result<RequestHead, HeadError> {
    let deadline = Instant::now() + header_timeout;
    loop {
        if !buf.is_empty() {
            match http::parse_request(buf, limits) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(e) => return Err(HeadError::Bad(e)),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let had = buf.len();
        match crate::deadline::timeout(left, stream.read_buf(buf, limits.max_head_bytes + 1)).await
        {
            Err(_) => {
                return Err(if had == 0 {
                    HeadError::Closed
                } else {
                    HeadError::Timeout
                })
            }
            Ok(Err(_)) => return Err(HeadError::Io),
            Ok(Ok(0)) => return Err(HeadError::Closed),
            Ok(Ok(_)) => {}
        }
    }
}

/// Waits for the first byte of the next request on a kept-alive connection; false when the
/// connection should close (idle timeout, peer gone, draining).
async fn wait_next_request(
    core: &Core,
    stream: &mut Stream,
    buf: &mut BytesMut,
    idle: Duration,
    quiet: &mut Quiet,
) -> bool {
    if !buf.is_empty() {
        return true;
    }
    if core.drain.is_draining() {
        return false;
    }
    let drain = core.drain.wait();
    monoio::select! {
        more = first_bytes(stream, buf, idle, quiet) => more,
        _ = drain => false,
    }
}

/// Waits at most `limit` for the first bytes of a request, without holding a read buffer while
/// the client is quiet; false when none came (or the connection ended or failed).
async fn first_bytes(
    stream: &mut Stream,
    buf: &mut BytesMut,
    limit: Duration,
    quiet: &mut Quiet,
) -> bool {
    let waiting = Instant::now();
    if !matches!(
        stream.wait_for_bytes(buf, limit, quiet).await,
        Ok(Arrival::Bytes)
    ) {
        return false;
    }
    if !buf.is_empty() {
        return true;
    }
    // Something is there to read: usually a whole record; a record cut short by the network
    // gets the rest of the time.
    let left = limit.saturating_sub(waiting.elapsed());
    let read = stream.read_buf(buf, 16 * 1024);
    matches!(crate::deadline::timeout(left, read).await, Ok(Ok(n)) if n > 0)
}
