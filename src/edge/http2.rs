//! The HTTP/2 connection driver: from an established TLS connection whose ALPN chose `h2` (or a
//! plain one that opened with the h2c preface) to close. Each stream is one request: its
//! pseudo-headers and fields become the HTTP/1.1 head they stand for ([`crate::http2::head`]),
//! and the stream runs through the same phases as an HTTP/1.1 request, with the stream as its
//! client ([`crate::http2::Exchange`]), and is logged as `HTTP/2.0`.
//!
//! The frame layer (hyperium `h2`) keeps the limits an HTTP/2 server needs: concurrent
//! streams (`http.http2_max_concurrent_streams`), the header list size (`max_header_bytes`),
//! resets a client may cause or provoke (rapid reset), CONTINUATION and SETTINGS floods.
//! A connection's streams run in its own task, each woken on its own, on the worker that
//! accepted it. A drain, a reload or the idle timeout sends GOAWAY; streams in flight finish.

use std::future::{pending, poll_fn};
use std::pin::{pin, Pin};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use h2::server::SendResponse;
use h2::RecvStream;
use monoio::io::poll_io::{AsyncRead, AsyncWrite};

use super::outcome::{LogFacts, Refusal};
use super::refusal_log::Kind;
use super::request::{Incoming, Protocol};
use super::session::{After, Session};
use crate::conn::Stream;
use crate::http::parse_request;
use crate::http2::exchange::Shape;
use crate::http2::head::{http1_head, Tunnel, Unfit};
use crate::http2::Exchange;

/// Flow-control window per stream: what a client may send ahead of the phases reading it
/// (nginx's `http2_body_preread_size` is 64 KiB).
const STREAM_WINDOW: u32 = 64 * 1024;

/// Flow-control window of the whole connection.
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Bytes a stream may queue for sending beyond what the client's window takes.
const SEND_BUFFER: usize = 64 * 1024;

/// Streams the client may reset before the server accepted them, at once (rapid reset).
const PENDING_ACCEPT_RESETS: usize = 20;

/// Stream errors the client may provoke in a connection before it is closed.
const LOCAL_ERROR_RESETS: usize = 1024;

/// How long a connection with no stream left may take to close after GOAWAY before it is
/// closed regardless (a client that never acknowledges the GOAWAY's PING).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

type Streams<'a> = FuturesUnordered<Pin<Box<dyn std::future::Future<Output = ()> + 'a>>>;

/// Serves HTTP/2 on `io` until the connection ends. With `refusal` (nginx-compatible mode: the
/// client certificate was refused at the handshake), every stream gets the refusal's page.
pub(super) async fn serve<T>(conn: &Session<'_>, io: T, refusal: Option<&Refusal>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let http = &conn.server.http;
    let builder = builder(http);
    let handshake = builder.handshake::<T, Bytes>(io);
    let mut h2c = match crate::deadline::timeout(http.header_timeout, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            crate::refusal_line!(
                Kind::BadRequest,
                info,
                "listener={} peer={}: HTTP/2 connection preface refused: {e}",
                conn.server.name,
                conn.peer.addr
            );
            return;
        }
        Err(_) => {
            crate::refusal_line!(
                Kind::Timeout,
                info,
                "listener={} peer={}: client timed out sending the HTTP/2 connection preface",
                conn.server.name,
                conn.peer.addr
            );
            return;
        }
    };
    let mut streams: Streams<'_> = FuturesUnordered::new();
    let mut served: u64 = 0;
    let mut drain = pin!(conn.core.drain.wait());
    let mut retired = pin!(conn.generation.retired.wait());
    let mut going_away = false;
    loop {
        let idle = idle(streams.is_empty(), going_away, http.keepalive_timeout);
        // Streams first, then the connection: every stream that can run does before the
        // connection is polled again, and each poll of the connection writes what is queued,
        // so the responses of a read's worth of requests leave in one write (one TLS flush)
        // instead of one write each.
        monoio::select! {
            biased;
            Some(()) = streams.next(), if !streams.is_empty() => {}
            next = h2c.accept() => match next {
                Some(Ok(first)) => {
                    // The first request, then the others that arrived in the same read,
                    // taken without waiting (the next turn of the loop polls the connection
                    // with this task's waker again, so nothing is missed): all of them run
                    // before the connection writes.
                    let mut next = Some(first);
                    while let Some((request, respond)) = next.take() {
                        served += 1;
                        if served >= http.keepalive_requests && !going_away {
                            // nginx's keepalive_requests bounds the streams of a connection too.
                            going_away = true;
                            h2c.graceful_shutdown();
                        }
                        streams.push(Box::pin(stream(conn, request, respond, served, refusal)));
                        if let Some(Some(Ok(more))) = h2c.accept().now_or_never() {
                            next = Some(more);
                        }
                    }
                }
                Some(Err(e)) => {
                    log::debug!(
                        "listener={} peer={}: HTTP/2 connection ended: {e}",
                        conn.server.name,
                        conn.peer.addr
                    );
                    break;
                }
                None => break,
            },
            _ = &mut drain, if !going_away => {
                going_away = true;
                h2c.graceful_shutdown();
            }
            _ = &mut retired, if !going_away => {
                // A reload: the client reconnects and meets the new configuration.
                going_away = true;
                h2c.graceful_shutdown();
            }
            _ = idle => {
                if going_away {
                    break;
                }
                going_away = true;
                h2c.graceful_shutdown();
            }
        }
    }
    finish_streams(&mut h2c, &mut streams).await;
}

/// Ends when the connection has been idle long enough: GOAWAY after `keepalive_timeout` with
/// no stream in flight; after a GOAWAY with nothing in flight, the client has CLOSE_GRACE to
/// acknowledge it and go, and a silent one is closed then. Never while streams run.
async fn idle(no_streams: bool, going_away: bool, keepalive_timeout: Duration) {
    let wait = match (no_streams, going_away) {
        (true, false) => keepalive_timeout,
        (true, true) => CLOSE_GRACE,
        (false, _) => return pending::<()>().await,
    };
    crate::deadline::sleep(wait).await
}

/// The connection carries the frames of the streams still in flight: keeps driving it until
/// they finish.
async fn finish_streams<T>(h2c: &mut h2::server::Connection<T, Bytes>, streams: &mut Streams<'_>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut closed = pin!(poll_fn(|cx| h2c.poll_closed(cx)));
    while !streams.is_empty() {
        monoio::select! {
            _ = streams.next() => {}
            _ = &mut closed => break,
        }
    }
    while streams.next().await.is_some() {}
}

/// The frame layer's settings and limits for a server.
fn builder(http: &crate::config::HttpSettings) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(http.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(http.max_header_bytes).unwrap_or(u32::MAX))
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buffer_size(SEND_BUFFER)
        .max_pending_accept_reset_streams(PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(LOCAL_ERROR_RESETS))
        // Extended CONNECT (RFC 8441): WebSocket over HTTP/2.
        .enable_connect_protocol();
    builder
}

/// The stream as the phases' client, and its request as the HTTP/1.1 head it stands for.
fn open(
    conn: &Session<'_>,
    request: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> (Stream, Result<Vec<u8>, Unfit>) {
    let (parts, body) = request.into_parts();
    let protocol = parts
        .extensions
        .get::<h2::ext::Protocol>()
        .map(|p| p.as_str().to_ascii_lowercase());
    let key = protocol.as_ref().map(|_| websocket_key());
    let tunnel = protocol
        .as_deref()
        .zip(key.as_deref())
        .map(|(protocol, key)| Tunnel {
            protocol,
            websocket_key: key,
        });
    let has_body = !body.is_end_stream() && tunnel.is_none();
    let shape = Shape {
        chunked_body: has_body && !parts.headers.contains_key(http::header::CONTENT_LENGTH),
        is_head: parts.method == http::Method::HEAD,
        extended_connect: tunnel.is_some(),
    };
    let exchange = Exchange::new(body, respond, shape, conn.server.http.send_timeout);
    let text = http1_head(&parts, has_body, tunnel);
    (Stream::H2(Box::new(exchange)), text)
}

/// One stream: its request through the phases, its response back, its log line.
async fn stream(
    conn: &Session<'_>,
    request: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    served: u64,
    refusal: Option<&Refusal>,
) {
    let started = Instant::now();
    let (mut client, text) = open(conn, request, respond);
    let text = match text {
        Ok(text) => text,
        Err(Unfit::Connect) => {
            let mut facts = LogFacts::default();
            super::respond::refuse(&mut client, &Refusal::MethodNotAllowed, &mut facts).await;
            finish(&mut client);
            return;
        }
        Err(Unfit::PaddedValue) => {
            crate::refusal_line!(
                Kind::BadRequest,
                info,
                "listener={} peer={}: malformed HTTP/2 request: a field value with leading or trailing whitespace (RST_STREAM PROTOCOL_ERROR)",
                conn.server.name,
                conn.peer.addr
            );
            if let Stream::H2(exchange) = &mut client {
                exchange.refuse_malformed();
            }
            return;
        }
    };
    let limits = super::session::limits(&conn.server.http);
    let head = match parse_request(&text, &limits) {
        Ok(Some(head)) => head,
        parsed => {
            // A head written whole cannot be incomplete: that would be ringgate's fault.
            let refusal = match parsed {
                Err(e) => Refusal::BadHead(e),
                Ok(_) => Refusal::Internal,
            };
            crate::refusal_line!(
                Kind::BadRequest,
                info,
                "listener={} peer={}: bad HTTP/2 request: {} ({})",
                conn.server.name,
                conn.peer.addr,
                refusal.reason(),
                refusal.status()
            );
            let mut facts = LogFacts::default();
            super::respond::refuse(&mut client, &refusal, &mut facts).await;
            finish(&mut client);
            return;
        }
    };
    let bytes = Bytes::from(text);
    if let Some(refusal) = refusal {
        let mut facts = LogFacts::default();
        let dialect = super::request::Dialect::of(&head, &bytes);
        super::respond::refuse_as(&mut client, dialect, refusal, &mut facts).await;
        conn.log_refused(Protocol::Http2, &head, &bytes, started, refusal);
        finish(&mut client);
        return;
    }
    let incoming = Incoming {
        protocol: Protocol::Http2,
        head: &head,
        bytes: &bytes,
        served,
        last: false,
    };
    let mut unread = bytes::BytesMut::new();
    let after = conn
        .one_request(&mut client, &mut unread, incoming, started)
        .await;
    if let After::Relay(switched) = after {
        // An extended CONNECT the upstream switched: the stream is a tunnel until either
        // side ends it.
        conn.relay(client, *switched).await;
        return;
    }
    finish(&mut client);
}

/// A `Sec-WebSocket-Key` for the HTTP/1.1 upgrade an extended CONNECT stands for: 16 random
/// bytes, base64 (RFC 6455 §4.1).
fn websocket_key() -> String {
    let mut nonce = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut nonce).is_err() {
        // Never expected; the key only has to be well-formed, not secret.
        nonce = Instant::now().elapsed().as_nanos().to_le_bytes();
    }
    crate::x509::identity::base64_encode(&nonce)
}

/// Resets the stream if its response did not complete.
fn finish(client: &mut Stream) {
    if let Stream::H2(exchange) = client {
        exchange.finish();
    }
}
