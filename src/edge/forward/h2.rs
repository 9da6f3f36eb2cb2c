//! An exchange with an HTTP/2 upstream (`protocol = "h2"`, `grpc://`), as nginx's
//! `grpc_pass`: a stream on this core's connection to the server (multiplexed, see
//! `upstream::h2`), the request body and its trailers sent as they arrive, the response's
//! head, DATA and trailers relayed back.
//!
//! For an HTTP/2 client both directions run at once (a gRPC bidirectional stream answers
//! while the client still sends); an HTTP/1.x client's body is sent first, then its response
//! is relayed, with the trailers in the last chunk. The response head takes the same rewrite
//! as an HTTP/1.1 upstream's (`forward::client_head`).
//!
//! A failure before the response head is answered in the request's dialect
//! (`request::Dialect`): a gRPC call gets `200` with `grpc-status` 14 (UNAVAILABLE), or 4
//! (DEADLINE_EXCEEDED) for a timeout, and no body; the access log says 502 or 504, as nginx
//! would log them.

use std::net::SocketAddr;
use std::pin::pin;
use std::time::{Duration, Instant};

use ::http::HeaderMap;
use bytes::{Bytes, BytesMut};
use futures_util::future::{select, Either};
use h2::{Reason, RecvStream, SendStream};

use super::{client_head, log_failure, log_next_server, mark_failed, shape, Group};
use crate::conn::Stream;
use crate::edge::outcome::{LogFacts, Next, Refusal};
use crate::edge::request::{Client, Request};
use crate::edge::respond;
use crate::http::{self, BodyFraming, ChunkedScanner};
use crate::http2::exchange::{next_data, send_data, RequestBody, Responder};
use crate::http2::upstream::{request_of, write_last_chunk, write_response_head};
use crate::upstream::h2::{self as uph2, Opened};
use crate::upstream::UpstreamError;

/// Where the response goes: an HTTP/1.x connection (the body framed for it) or an HTTP/2
/// stream (DATA and trailers directly).
enum Sink<'a> {
    Http1 {
        stream: &'a mut Stream,
        /// The body goes chunked (trailers in its last chunk); else as it is.
        chunked: bool,
        write_timeout: Duration,
    },
    H2(&'a mut Responder),
}

/// Where the request body comes from.
enum Source<'a> {
    /// An HTTP/1.x connection: the bytes read past the head, then the stream, framed.
    Http1 {
        stream: &'a mut Stream,
        unread: &'a mut BytesMut,
        /// What is left of the body: a length counting down, or chunked until its end.
        framing: BodyFraming,
        /// The chunked body's scanner.
        chunks: ChunkedScanner,
    },
    /// An HTTP/2 stream's DATA frames and trailers.
    H2(RequestBody<'a>),
}

/// The upstream's side of a stream: the response to come, and where the request body goes.
type UpstreamSide<'a> = (h2::client::ResponseFuture, &'a mut SendStream<Bytes>);

/// Why an exchange stopped.
enum Failure {
    /// Nothing was sent to the client yet: answer with the refusal.
    Answer(Refusal),
    /// The client went away, or the response had started: end the stream (reset with the
    /// reason over HTTP/2) or close the connection.
    Abort(Reason),
}

/// Why sending the request body stopped.
enum BodyFailure {
    /// The client's side: its body was refused, or it went away.
    Client(Failure),
    /// The upstream's side (its response says more).
    Upstream(UpstreamError),
}

/// Proxies one request to the HTTP/2 upstream of `group`; `head` is the request head as the
/// upstream gets it (in HTTP/1.1 form). A request without a body whose stream the upstream
/// refuses (REFUSED_STREAM: not processed, RFC 9113 §8.7) is sent again, up to
/// [`REFUSED_RETRIES`] times; one with a body is not, as its bytes have been passed on.
pub(super) async fn proxy(
    group: Group<'_>,
    client: &mut Client<'_>,
    req: &Request<'_>,
    head: Bytes,
    facts: &mut LogFacts,
) -> Next {
    let began = Instant::now();
    let end = req.head.framing == BodyFraming::None;
    let mut refused = 0;
    let (result, addr) = loop {
        match attempt(group, client, req, (&head, end), facts).await {
            Attempt::NotOpened(e, addr) => {
                facts.upstream_time = Some(began.elapsed());
                facts.upstream_addr = addr;
                let refusal = Refusal::Upstream(e);
                if let Some(addr) = addr {
                    log_failure(req, group.up, addr, &refusal);
                }
                let dialect = req.dialect();
                return respond::refuse_as(client.stream, dialect, &refusal, facts).await;
            }
            Attempt::Relayed(
                Err(Failure::Answer(Refusal::Upstream(UpstreamError::Reset(r)))),
                addr,
            ) if r == Reason::REFUSED_STREAM && end && refused < REFUSED_RETRIES => {
                refused += 1;
                log::warn!(
                    "upstream refused the stream (REFUSED_STREAM) before processing it, client: {}, listener: {}, request: \"{}\", upstream: `{}` {addr}; sending it again",
                    req.peer.addr,
                    req.server.name,
                    req.line(),
                    group.up.name,
                );
            }
            Attempt::Relayed(result, addr) => break (result, addr),
        }
    };
    facts.upstream_time = Some(began.elapsed());
    match result {
        Ok(keep) => Next::keep_if(keep),
        Err(Failure::Answer(refusal)) => {
            log_failure(req, group.up, addr, &refusal);
            match client.stream.h2_exchange() {
                // The upstream answered while the body was still coming, and then the body
                // was refused (too large, too slow): the response has begun, so the refusal
                // can only end the stream.
                Some(x) if x.has_responded() => {
                    x.split().1.reset(Reason::CANCEL);
                    Next::Close
                }
                _ => respond::refuse_as(client.stream, req.dialect(), &refusal, facts).await,
            }
        }
        Err(Failure::Abort(reason)) => {
            if let Some(x) = client.stream.h2_exchange() {
                x.split().1.reset(reason);
            }
            Next::Close
        }
    }
}

/// Times a request without a body whose stream the upstream refused is sent again.
pub const REFUSED_RETRIES: u32 = 2;

/// How one try ended.
enum Attempt {
    /// No stream could be had: the last error, and the server it came from.
    NotOpened(UpstreamError, Option<SocketAddr>),
    /// The exchange ran on a stream to this server.
    Relayed(Result<bool, Failure>, SocketAddr),
}

/// One try: a stream opened for `head` (`end`: the request has no body) and the exchange
/// relayed over it, to an HTTP/2 or an HTTP/1.x client.
async fn attempt(
    group: Group<'_>,
    client: &mut Client<'_>,
    req: &Request<'_>,
    (head, end): (&[u8], bool),
    facts: &mut LogFacts,
) -> Attempt {
    let (stream, addr) = match open(group, req, head, end).await {
        Ok(x) => x,
        Err((e, addr)) => return Attempt::NotOpened(e, addr),
    };
    facts.upstream_addr = Some(addr);
    // The slot holds the stream's place on its connection until the exchange is over.
    let Opened {
        response,
        mut body,
        slot: _slot,
    } = stream;
    let result = match client.stream.h2_exchange() {
        Some(x) => relay_h2(x, group, req, (response, &mut body), facts).await,
        None => relay_http1(client, group, req, (response, &mut body), facts).await,
    };
    Attempt::Relayed(result, addr)
}

/// A stream for the request on a connection to one of the upstream's servers: a connection
/// with room, else a new one (a server that cannot be reached is counted against
/// `max_fails` and the next tried, as for HTTP/1.1); a connection that has gone away is
/// passed over. On failure, the last error and the server it came from.
async fn open(
    group: Group<'_>,
    req: &Request<'_>,
    head: &[u8],
    end: bool,
) -> Result<(Opened, SocketAddr), (UpstreamError, Option<SocketAddr>)> {
    let Group { id, up, pools } = group;
    let mut tried = Vec::new();
    let mut gone = 0;
    loop {
        let Some((server, addr)) = pools.pick(id, up, &tried) else {
            return Err((UpstreamError::ClosedEarly, None));
        };
        let conn = match pools.h2_conn(id, server) {
            Some(c) => {
                crate::metrics::with(|m| m.upstream_connection(true));
                c
            }
            None => match uph2::connect(pools, id, up, server, addr).await {
                Ok(c) => {
                    pools.succeeded(id, server);
                    pools.connects.set(pools.connects.get() + 1);
                    crate::metrics::with(|m| m.upstream_connection(false));
                    pools.h2_add(id, c)
                }
                Err(e) => {
                    mark_failed(group, server, addr);
                    tried.push(server);
                    if tried.len() >= up.server_count() {
                        return Err((e, Some(addr)));
                    }
                    log_next_server(req, up, addr, &e);
                    continue;
                }
            },
        };
        let request = request_of(head, up.tls.is_some()).map_err(|e| {
            log::error!("upstream `{}`: {e}", up.name);
            (
                UpstreamError::BadResponse("request not sendable over HTTP/2"),
                Some(addr),
            )
        })?;
        match conn.open_stream(request, end).await {
            Ok(opened) => return Ok((opened, addr)),
            Err(e) if gone < 2 => {
                // The connection went away (GOAWAY) since it was last used: another one.
                gone += 1;
                log::debug!("upstream `{}` ({addr}): HTTP/2 connection refused a stream ({e}); opening another", up.name);
            }
            Err(e) => return Err((uph2::h2_failure(e), Some(addr))),
        }
    }
}

/// Both directions at once for an HTTP/2 client. The response decides the end: once it is
/// complete, what is left of the request body is not sent.
async fn relay_h2(
    x: &mut crate::http2::Exchange,
    group: Group<'_>,
    req: &Request<'_>,
    (response, body): UpstreamSide<'_>,
    facts: &mut LogFacts,
) -> Result<bool, Failure> {
    let (request_body, responder) = x.split();
    let mut source = Source::H2(request_body);
    let sending = pin!(send_body(&mut source, body, req, group));
    let mut sink = Sink::H2(responder);
    let receiving = pin!(relay_response(response, &mut sink, req, group, facts));
    match select(sending, receiving).await {
        Either::Left((Err(BodyFailure::Client(f)), _)) => Err(f),
        Either::Left((Err(BodyFailure::Upstream(e)), receiving)) => {
            log_body_failure(group, &e);
            receiving.await
        }
        Either::Left((Ok(()), receiving)) => receiving.await,
        Either::Right((result, _)) => result,
    }
}

/// The body first, then the response, for an HTTP/1.x client (whose one connection cannot
/// be read and written by two at once here).
async fn relay_http1(
    client: &mut Client<'_>,
    group: Group<'_>,
    req: &Request<'_>,
    (response, body): UpstreamSide<'_>,
    facts: &mut LogFacts,
) -> Result<bool, Failure> {
    let mut source = Source::Http1 {
        stream: &mut *client.stream,
        unread: &mut *client.unread,
        framing: req.head.framing,
        chunks: ChunkedScanner::new(),
    };
    match send_body(&mut source, body, req, group).await {
        Err(BodyFailure::Client(f)) => return Err(f),
        Err(BodyFailure::Upstream(e)) => log_body_failure(group, &e),
        Ok(()) => {}
    }
    let mut sink = Sink::Http1 {
        stream: &mut *client.stream,
        chunked: false,
        write_timeout: req.server.http.send_timeout,
    };
    relay_response(response, &mut sink, req, group, facts).await
}

/// The upstream stopped taking the request body: its response (often an early answer, or
/// the reset that says why) is what the client gets.
fn log_body_failure(group: Group<'_>, e: &UpstreamError) {
    log::info!(
        "upstream `{}` stopped taking the request body ({e}); relaying its response",
        group.up.name
    );
}

/// Sends the request body (bounded by `client_max_body_size`) and its trailers; ends the
/// stream.
async fn send_body(
    source: &mut Source<'_>,
    dst: &mut SendStream<Bytes>,
    req: &Request<'_>,
    group: Group<'_>,
) -> Result<(), BodyFailure> {
    if req.head.framing == BodyFraming::None {
        return Ok(());
    }
    let http = &req.server.http;
    let mut sent: u64 = 0;
    let trailers = loop {
        let data = match source.next(http.body_timeout).await {
            Ok(Some(d)) => d,
            Ok(None) => break source.trailers().await.map_err(BodyFailure::Client)?,
            Err(f) => return Err(BodyFailure::Client(f)),
        };
        sent += data.len() as u64;
        if http.client_max_body_size != 0 && sent > http.client_max_body_size {
            return Err(BodyFailure::Client(Failure::Answer(Refusal::BodyTooLarge)));
        }
        send_data(dst, data, false, group.up.send_timeout)
            .await
            .map_err(|e| BodyFailure::Upstream(io_failure(e)))?;
    };
    let ended = match trailers {
        Some(t) if !t.is_empty() => dst.send_trailers(t),
        _ => dst.send_data(Bytes::new(), true),
    };
    ended.map_err(|e| BodyFailure::Upstream(uph2::h2_failure(e)))
}

/// Reads the response head, sends it to the client rewritten as for any upstream, then its
/// DATA and trailers. Returns whether the client connection may carry another request.
async fn relay_response(
    response: h2::client::ResponseFuture,
    sink: &mut Sink<'_>,
    req: &Request<'_>,
    group: Group<'_>,
    facts: &mut LogFacts,
) -> Result<bool, Failure> {
    let up = group.up;
    let upstream_failed = |e| Failure::Answer(Refusal::Upstream(e));
    let on_cancel = || cancelled(req, up);
    let waited = sink
        .unless_cancelled(crate::deadline::timeout(up.read_timeout, response))
        .await;
    let resp = match waited.ok_or_else(on_cancel)? {
        Err(_) => return Err(upstream_failed(UpstreamError::ReadTimeout)),
        Ok(Err(e)) => return Err(upstream_failed(uph2::h2_failure(e))),
        Ok(Ok(r)) => r,
    };
    let (parts, mut body) = resp.into_parts();
    let has_body = !body.is_end_stream() && !req.head.is_head();
    let keep = send_head(&parts, has_body, sink, req, facts).await?;
    if !has_body {
        return Ok(keep);
    }
    let failed = |e: UpstreamError, what: &str| {
        log::error!("upstream `{}` {what} ({e}); ending the response", up.name);
        Failure::Abort(match e {
            UpstreamError::Reset(r) => r,
            _ => Reason::INTERNAL_ERROR,
        })
    };
    loop {
        let waited = sink
            .unless_cancelled(crate::deadline::timeout(
                up.read_timeout,
                next_data(&mut body),
            ))
            .await;
        match waited.ok_or_else(on_cancel)? {
            Err(_) => {
                return Err(failed(
                    UpstreamError::ReadTimeout,
                    "stopped sending the response body",
                ))
            }
            Ok(Err(e)) => {
                return Err(failed(
                    io_failure(e),
                    "failed while sending the response body",
                ))
            }
            Ok(Ok(Some(data))) => {
                let n = data.len() as u64;
                sink.data(data).await.map_err(|_| client_gone(up))?;
                facts.body_bytes += n;
                facts.bytes += n;
            }
            Ok(Ok(None)) => break,
        }
    }
    let waited = sink
        .unless_cancelled(crate::deadline::timeout(
            up.read_timeout,
            trailers_of(&mut body),
        ))
        .await;
    let trailers = match waited.ok_or_else(on_cancel)? {
        Err(_) => return Err(failed(UpstreamError::ReadTimeout, "sent no trailers")),
        Ok(Err(e)) => {
            return Err(failed(
                uph2::h2_failure(e),
                "failed while sending its trailers",
            ))
        }
        Ok(Ok(t)) => t,
    };
    sink.end(trailers.as_ref())
        .await
        .map_err(|_| client_gone(up))?;
    Ok(keep)
}

/// The response head as the client gets it; sets the sink's body framing. Returns whether
/// the client connection may carry another request.
async fn send_head(
    parts: &::http::response::Parts,
    has_body: bool,
    sink: &mut Sink<'_>,
    req: &Request<'_>,
    facts: &mut LogFacts,
) -> Result<bool, Failure> {
    let mut raw = BytesMut::with_capacity(256);
    write_response_head(parts, has_body, &mut raw);
    let limits = http::Limits {
        max_head_bytes: 64 * 1024,
        max_headers: 200,
        max_line_bytes: 64 * 1024,
    };
    let head = match http::parse_response(&raw, req.head.is_head(), &limits) {
        Ok(Some(h)) => h,
        _ => {
            return Err(Failure::Answer(Refusal::Upstream(
                UpstreamError::BadResponse("a response head HTTP/1.1 cannot carry"),
            )))
        }
    };
    let shape = shape(req, &head);
    let out = client_head(req, &head, &mut raw, &shape, None);
    facts.status = head.status;
    facts.upstream_status = Some(head.status);
    facts.bytes = out.len() as u64;
    if let Sink::Http1 { chunked, .. } = sink {
        *chunked = head.framing == BodyFraming::Chunked && !shape.dechunk;
    }
    sink.head(out)
        .await
        .map_err(|_| Failure::Abort(Reason::CANCEL))?;
    Ok(shape.keep_client)
}

/// The response's trailers (None when it ended with DATA).
async fn trailers_of(body: &mut RecvStream) -> Result<Option<HeaderMap>, h2::Error> {
    std::future::poll_fn(|cx| body.poll_trailers(cx)).await
}

/// The client reset its stream while the upstream was being waited on: the upstream's stream
/// is reset in turn (CANCEL), as the client asked.
fn cancelled(req: &Request<'_>, up: &crate::upstream::Upstream) -> Failure {
    log::info!(
        "client {} cancelled \"{}\" while upstream `{}` was answering; cancelling it there",
        req.peer.addr,
        req.line(),
        up.name
    );
    Failure::Abort(Reason::CANCEL)
}

/// The client stopped taking the response.
fn client_gone(up: &crate::upstream::Upstream) -> Failure {
    log::info!(
        "the client stopped taking the response from upstream `{}`; closing",
        up.name
    );
    Failure::Abort(Reason::CANCEL)
}

/// An I/O error on an upstream stream (from the flow-control helpers) as the proxy reports it.
fn io_failure(e: std::io::Error) -> UpstreamError {
    match e.kind() {
        std::io::ErrorKind::TimedOut => UpstreamError::SendTimeout,
        _ => match e.get_ref().and_then(|i| i.downcast_ref::<h2::Error>()) {
            Some(h) => match h.reason() {
                Some(r) => UpstreamError::Reset(r),
                None => UpstreamError::Io(e),
            },
            None => UpstreamError::Io(e),
        },
    }
}

impl Source<'_> {
    /// The next piece of the body; None at its end.
    async fn next(&mut self, timeout: Duration) -> Result<Option<Bytes>, Failure> {
        let gone = |_| Failure::Abort(Reason::CANCEL);
        match self {
            Source::H2(body) => match crate::deadline::timeout(timeout, body.data()).await {
                Err(_) => Err(Failure::Answer(Refusal::BodyTimeout)),
                Ok(r) => r.map_err(gone),
            },
            Source::Http1 {
                stream,
                unread,
                framing,
                chunks,
            } => http1_next(stream, unread, framing, chunks, timeout).await,
        }
    }

    /// The body's trailers (an HTTP/1.x body's are not passed on).
    async fn trailers(&mut self) -> Result<Option<HeaderMap>, Failure> {
        match self {
            Source::H2(body) => body
                .trailers()
                .await
                .map_err(|_| Failure::Abort(Reason::CANCEL)),
            Source::Http1 { .. } => Ok(None),
        }
    }
}

/// The next piece of an HTTP/1.x body: what was read past the head, then reads, within the
/// body's framing (`framing` counts down; a chunked body is de-chunked here).
async fn http1_next(
    stream: &mut Stream,
    unread: &mut BytesMut,
    framing: &mut BodyFraming,
    chunks: &mut ChunkedScanner,
    timeout: Duration,
) -> Result<Option<Bytes>, Failure> {
    loop {
        if !unread.is_empty() {
            match framing {
                BodyFraming::Length(left) => {
                    let n = usize::try_from(*left).map_or(unread.len(), |l| l.min(unread.len()));
                    *left -= n as u64;
                    if *left == 0 {
                        *framing = BodyFraming::None;
                    }
                    return Ok(Some(unread.split_to(n).freeze()));
                }
                BodyFraming::Chunked => {
                    let mut data = BytesMut::new();
                    let input: &[u8] = unread;
                    let fed = chunks.feed_data(input, |r| {
                        if let Some(run) = input.get(r) {
                            data.extend_from_slice(run);
                        }
                    });
                    let fed = fed.map_err(|_| Failure::Answer(Refusal::BadBody))?;
                    let _ = unread.split_to(fed.consumed);
                    if fed.done {
                        *framing = BodyFraming::None;
                    }
                    if !data.is_empty() {
                        return Ok(Some(data.freeze()));
                    }
                    if fed.done {
                        return Ok(None);
                    }
                }
                BodyFraming::None | BodyFraming::UntilClose => return Ok(None),
            }
        }
        if matches!(framing, BodyFraming::None) {
            return Ok(None);
        }
        match crate::deadline::timeout(timeout, stream.read_buf(unread, 64 * 1024)).await {
            Err(_) => return Err(Failure::Answer(Refusal::BodyTimeout)),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(Failure::Abort(Reason::CANCEL)),
            Ok(Ok(_)) => {}
        }
    }
}

impl Sink<'_> {
    /// `wait`'s output, or None when an HTTP/2 client resets its stream first. (An HTTP/1.x
    /// client's close is seen at the next write.)
    async fn unless_cancelled<F: std::future::Future>(&mut self, wait: F) -> Option<F::Output> {
        match self {
            Sink::H2(r) => {
                let reset = pin!(std::future::poll_fn(|cx| r.poll_reset(cx)));
                match select(pin!(wait), reset).await {
                    Either::Left((out, _)) => Some(out),
                    Either::Right(_) => None,
                }
            }
            Sink::Http1 { .. } => Some(wait.await),
        }
    }

    async fn head(&mut self, out: BytesMut) -> std::io::Result<()> {
        match self {
            Sink::Http1 {
                stream,
                write_timeout,
                ..
            } => within(*write_timeout, async { stream.write_owned(out).await.0 }).await,
            Sink::H2(r) => r.write(&out).await,
        }
    }

    async fn data(&mut self, data: Bytes) -> std::io::Result<()> {
        match self {
            Sink::Http1 {
                stream,
                chunked,
                write_timeout,
            } => {
                let write = async {
                    if *chunked {
                        let mut framed = BytesMut::with_capacity(16);
                        http::encode_chunk_header(data.len(), &mut framed);
                        stream
                            .write_parts(&[framed.freeze(), data, Bytes::from_static(b"\r\n")])
                            .await
                    } else {
                        stream.write_bytes(data).await
                    }
                };
                within(*write_timeout, write).await
            }
            Sink::H2(r) => r.data(data).await,
        }
    }

    async fn end(&mut self, trailers: Option<&HeaderMap>) -> std::io::Result<()> {
        match self {
            Sink::Http1 {
                stream,
                chunked,
                write_timeout,
            } => {
                if !*chunked {
                    return Ok(());
                }
                let mut last = BytesMut::with_capacity(64);
                write_last_chunk(trailers, &mut last);
                within(*write_timeout, async { stream.write_owned(last).await.0 }).await
            }
            Sink::H2(r) => r.end(trailers.cloned()),
        }
    }
}

/// `io` within `wait`, a timeout being an error.
async fn within(
    wait: Duration,
    io: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    match crate::deadline::timeout(wait, io).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}
