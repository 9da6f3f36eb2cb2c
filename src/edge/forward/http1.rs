//! An exchange with an HTTP/1.1 upstream: reuse a pooled connection or connect, send the
//! rewritten head and stream the body, read the response head, stream the response back, and
//! pool the connection when the exchange ended cleanly; a `101` to an allowed upgrade becomes
//! a tunnel.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{
    client_head, log_failure, log_next_server, mark_failed, shape, Group, Outgoing, Shape,
};
use crate::conn::Stream;
use crate::edge::body::{relay, RelayError, RelayParams};
use crate::edge::outcome::{LogFacts, Next, Refusal};
use crate::edge::request::{Client, Protocol, Request};
use crate::edge::respond;
use crate::edge::tunnel::Tunnel;
use crate::http::{self, BodyFraming, Interim, ResponseHead};
use crate::upstream::{self, Upstream, UpstreamError};

/// How a failed exchange ends for the client.
enum Failure {
    /// Nothing was sent to the client yet: answer with the refusal's page.
    Answer(Refusal),
    /// The client side failed or the response had started: just close.
    Close,
}

/// An upstream connection for one attempt.
enum Obtained {
    /// Connected (or taken from the pool: `server` None).
    Conn {
        stream: Stream,
        addr: SocketAddr,
        server: Option<usize>,
    },
    /// Every server failed; the last failure.
    Failed(UpstreamError, SocketAddr),
    /// The upstream has no server.
    NoServer,
}

/// Sends the request to the upstream, retrying a stale pooled connection once and passing
/// the request to the next server when one fails before answering and the request can be
/// sent again (nginx's `proxy_next_upstream error timeout`).
pub(super) async fn attempts(
    group: Group<'_>,
    client: &mut Client<'_>,
    req: &Request<'_>,
    outgoing: Outgoing,
    facts: &mut LogFacts,
) -> Next {
    let up = group.up;
    let mut retried = false;
    // Servers this request has been sent to or failed to reach (by index), each at most once.
    let mut tried: Vec<usize> = Vec::new();
    // A request without a body whose method is idempotent can be sent again elsewhere.
    let resendable = req.head.framing == BodyFraming::None && req.head.is_idempotent(b"");
    loop {
        let began = Instant::now();
        let (mut ustream, addr, server) = match obtain(group, req, &mut tried).await {
            Obtained::Conn {
                stream,
                addr,
                server,
            } => (stream, addr, server),
            Obtained::Failed(e, addr) => {
                facts.upstream_addr = Some(addr);
                facts.upstream_time = Some(began.elapsed());
                let failure = Failure::Answer(Refusal::Upstream(e));
                return fail(client, req, up, addr, failure, facts).await;
            }
            Obtained::NoServer => return Next::Close,
        };
        facts.upstream_addr = Some(addr);
        let result = exchange(client, &mut ustream, up, req, &outgoing, facts).await;
        facts.upstream_time = Some(began.elapsed());
        match result {
            Ok(Exchanged::Done(kept)) => {
                if kept.upstream {
                    group.pools.put(group.id, up, ustream, addr);
                }
                return Next::keep_if(kept.client);
            }
            Ok(Exchanged::Switched { to_client }) => {
                return Next::Tunnel(Box::new(Tunnel {
                    upstream: ustream,
                    to_client,
                    idle_timeout: up.read_timeout,
                    client_send_timeout: req.server.http.send_timeout,
                    upstream_send_timeout: up.send_timeout,
                    upstream_name: up.name.clone(),
                }));
            }
            Err(Failure::Answer(Refusal::Upstream(e)))
                if server.is_none() && !retried && e.is_stale_connection() && resendable =>
            {
                // The pooled connection had been closed by the upstream: retry once, fresh.
                log::debug!(
                    "upstream `{}` ({addr}): stale pooled connection ({e}); retrying",
                    up.name
                );
                retried = true;
            }
            Err(Failure::Answer(Refusal::Upstream(e)))
                if resendable && e.passes_to_next_server() && tried.len() < up.server_count() =>
            {
                // A fresh connection failed before the response began (nginx's
                // proxy_next_upstream error timeout): count it, go on to the next server.
                if let Some(s) = server {
                    mark_failed(group, s, addr);
                }
                log_next_server(req, up, addr, &e);
            }
            Err(f) => return fail(client, req, up, addr, f, facts).await,
        }
    }
}

/// A pooled connection on the first attempt, else a fresh one to a server not tried yet.
async fn obtain(group: Group<'_>, req: &Request<'_>, tried: &mut Vec<usize>) -> Obtained {
    if tried.is_empty() {
        if let Some((stream, addr)) = group.pools.take(group.id, group.up) {
            crate::metrics::with(|m| m.upstream_connection(true));
            return Obtained::Conn {
                stream,
                addr,
                server: None,
            };
        }
    }
    connect(group, req, tried).await
}

/// Opens a connection to one of the upstream's servers. A server that cannot be reached (TCP or
/// TLS) is counted against `max_fails` and the next one is tried, each server at most once,
/// as nginx's default `proxy_next_upstream error timeout` does: nothing was sent yet, so any
/// method may go elsewhere.
async fn connect(group: Group<'_>, req: &Request<'_>, tried: &mut Vec<usize>) -> Obtained {
    let Group { id, up, pools } = group;
    loop {
        let Some((server, addr)) = pools.pick(id, up, tried) else {
            return Obtained::NoServer;
        };
        tried.push(server);
        match upstream::open(pools, id, up, server, addr).await {
            Ok(stream) => {
                pools.succeeded(id, server);
                pools.connects.set(pools.connects.get() + 1);
                crate::metrics::with(|m| m.upstream_connection(false));
                return Obtained::Conn {
                    stream,
                    addr,
                    server: Some(server),
                };
            }
            Err(e) => {
                mark_failed(group, server, addr);
                if tried.len() >= up.server_count() {
                    return Obtained::Failed(e, addr);
                }
                log_next_server(req, up, addr, &e);
            }
        }
    }
}

/// Logs a failed exchange and answers the client when it still can.
async fn fail(
    client: &mut Client<'_>,
    req: &Request<'_>,
    up: &Upstream,
    addr: SocketAddr,
    f: Failure,
    facts: &mut LogFacts,
) -> Next {
    let Failure::Answer(refusal) = f else {
        return Next::Close;
    };
    log_failure(req, up, addr, &refusal);
    respond::refuse_as(client.stream, req.dialect(), &refusal, facts).await
}

/// Whether each side of an exchange may be kept alive.
struct Kept {
    client: bool,
    upstream: bool,
}

/// How an exchange on an upstream connection ended.
enum Exchanged {
    /// A response was relayed; whether each side may be kept alive.
    Done(Kept),
    /// The upstream switched protocols and the `101` went to the client: the connection is
    /// a tunnel now. `to_client` is what the upstream sent after the `101` head.
    Switched { to_client: BytesMut },
}

/// One request/response exchange on an upstream connection.
async fn exchange(
    client: &mut Client<'_>,
    ustream: &mut Stream,
    up: &Upstream,
    req: &Request<'_>,
    outgoing: &Outgoing,
    facts: &mut LogFacts,
) -> Result<Exchanged, Failure> {
    send_request(client, ustream, up, req, outgoing.head.clone()).await?;
    let mut ubuf = BytesMut::with_capacity(16 * 1024);
    let upgrade = outgoing.upgrade.as_deref();
    let (resp, unexpected_interim) =
        read_response_head(ustream, up, req, upgrade, &mut ubuf).await?;
    if resp.status == 101 {
        send_switch(client.stream, req, &resp, &mut ubuf, facts).await?;
        return Ok(Exchanged::Switched { to_client: ubuf });
    }
    let shape = shape(req, &resp);
    let framing = send_response_head(client.stream, req, &resp, &shape, &mut ubuf, facts).await?;
    let params = RelayParams {
        read_timeout: up.read_timeout,
        write_timeout: req.server.http.send_timeout,
        max_body: 0,
        rechunk: shape.rechunk,
        dechunk: shape.dechunk,
    };
    match relay(ustream, client.stream, &mut ubuf, framing, &params).await {
        Ok(n) => {
            facts.body_bytes += n;
            facts.bytes += n;
        }
        Err(e) => {
            log_response_body_failure(up, &e);
            return Err(Failure::Close);
        }
    }
    // Extra bytes after a complete response mean the upstream broke framing: do not reuse.
    let upstream = resp.keep_alive
        && !shape.until_close
        && !unexpected_interim
        && ubuf.is_empty()
        && up.keepalive > 0;
    Ok(Exchanged::Done(Kept {
        client: shape.keep_client,
        upstream,
    }))
}

/// Sends the upstream's `101` on to the client: its end-to-end fields (such as
/// `Sec-WebSocket-Accept`) with `Upgrade` and `Connection: upgrade` written anew.
async fn send_switch(
    client: &mut Stream,
    req: &Request<'_>,
    resp: &ResponseHead,
    ubuf: &mut BytesMut,
    facts: &mut LogFacts,
) -> Result<(), Failure> {
    let protocols = resp.header(ubuf, b"upgrade").unwrap_or_default().to_vec();
    let out = client_head(
        req,
        resp,
        ubuf,
        &Shape {
            until_close: false,
            rechunk: false,
            dechunk: false,
            keep_client: true,
        },
        Some(&protocols),
    );
    // An HTTP/2 client's extended CONNECT is answered 200 (RFC 8441), the upstream's 101
    // being the HTTP/1.1 form of the same switch.
    facts.status = if req.protocol == Protocol::Http2 {
        200
    } else {
        resp.status
    };
    facts.upstream_status = Some(resp.status);
    facts.bytes = out.len() as u64;
    let send = client.write_owned(out);
    match crate::deadline::timeout(req.server.http.send_timeout, send).await {
        Ok((Ok(()), _)) => Ok(()),
        _ => Err(Failure::Close),
    }
}

/// The head, then the body as it arrives.
async fn send_request(
    client: &mut Client<'_>,
    ustream: &mut Stream,
    up: &Upstream,
    req: &Request<'_>,
    upstream_head: Bytes,
) -> Result<(), Failure> {
    let upstream_failed = |e| Failure::Answer(Refusal::Upstream(e));
    match crate::deadline::timeout(up.send_timeout, ustream.write_bytes(upstream_head)).await {
        Err(_) => return Err(upstream_failed(UpstreamError::SendTimeout)),
        Ok(Err(e)) => return Err(upstream_failed(UpstreamError::io(e, up))),
        Ok(Ok(())) => {}
    }
    let http = &req.server.http;
    let params = RelayParams {
        read_timeout: http.body_timeout,
        write_timeout: up.send_timeout,
        max_body: http.client_max_body_size,
        rechunk: false,
        dechunk: false,
    };
    let sent = relay(
        client.stream,
        ustream,
        client.unread,
        req.head.framing,
        &params,
    )
    .await;
    sent.map(|_| ()).map_err(|e| match e {
        RelayError::TooLarge => Failure::Answer(Refusal::BodyTooLarge),
        RelayError::BadChunk(_) => Failure::Answer(Refusal::BadBody),
        RelayError::SourceTimeout => Failure::Answer(Refusal::BodyTimeout),
        RelayError::SourceRead(_) | RelayError::SourceTruncated => Failure::Close,
        RelayError::SinkWrite(e) => upstream_failed(UpstreamError::io(e, up)),
        RelayError::SinkTimeout => upstream_failed(UpstreamError::SendTimeout),
    })
}

/// Reads the response head, skipping interim 1xx responses (we answered 100 ourselves). One
/// that nobody asked for leaves the connection's framing in doubt: it serves this exchange
/// and is then closed (the flag returned). A 101 is final when it switches to a protocol
/// the request asked for (`upgrade`, the `Upgrade` value sent); any other 101 is a 502: the
/// connection now speaks something nobody asked for.
async fn read_response_head(
    ustream: &mut Stream,
    up: &Upstream,
    req: &Request<'_>,
    upgrade: Option<&[u8]>,
    ubuf: &mut BytesMut,
) -> Result<(ResponseHead, bool), Failure> {
    let upstream_failed = |e| Failure::Answer(Refusal::Upstream(e));
    let limits = http::Limits {
        max_head_bytes: 64 * 1024,
        max_headers: 200,
        max_line_bytes: 64 * 1024,
    };
    let mut unexpected_interim = false;
    loop {
        if !ubuf.is_empty() {
            match http::parse_response(ubuf, req.head.is_head(), &limits) {
                Ok(Some(r)) => {
                    match r.interim() {
                        Interim::Final => return Ok((r, unexpected_interim)),
                        Interim::SwitchingProtocols => return match upgrade {
                            Some(asked) if http::upgrade::accepted(&r, ubuf, asked) => {
                                Ok((r, unexpected_interim))
                            }
                            Some(_) => Err(upstream_failed(UpstreamError::BadResponse(
                                "101 Switching Protocols to a protocol the request did not ask for",
                            ))),
                            None => Err(upstream_failed(UpstreamError::BadResponse(
                                "101 Switching Protocols to a request that asked for no upgrade",
                            ))),
                        },
                        Interim::Unexpected => {
                            log::warn!(
                            "upstream `{}` sent an unexpected {} interim response; the connection will not be reused",
                            up.name,
                            r.status
                        );
                            unexpected_interim = true;
                            let _ = ubuf.split_to(r.head_len);
                            continue;
                        }
                        Interim::Expected => {
                            let _ = ubuf.split_to(r.head_len);
                            continue;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => return Err(upstream_failed(UpstreamError::BadResponse(e.reason()))),
            }
        }
        match crate::deadline::timeout(up.read_timeout, ustream.read_buf(ubuf, 64 * 1024)).await {
            Err(_) => return Err(upstream_failed(UpstreamError::ReadTimeout)),
            Ok(Err(e)) => return Err(upstream_failed(UpstreamError::io(e, up))),
            Ok(Ok(0)) => return Err(upstream_failed(UpstreamError::ClosedEarly)),
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends the rewritten response head, with the part of a Content-Length body that arrived
/// with it: one send (and, when it is small, one TLS record) instead of two. Returns the
/// framing of what is left of the body.
async fn send_response_head(
    client: &mut Stream,
    req: &Request<'_>,
    resp: &ResponseHead,
    shape: &Shape,
    ubuf: &mut BytesMut,
    facts: &mut LogFacts,
) -> Result<BodyFraming, Failure> {
    let mut out = client_head(req, resp, ubuf, shape, None);
    facts.status = resp.status;
    facts.upstream_status = Some(resp.status);
    facts.bytes = out.len() as u64;
    let mut framing = resp.framing;
    let mut first = Bytes::new();
    if let BodyFraming::Length(n) = framing {
        let k = usize::try_from(n).map_or(ubuf.len(), |n| n.min(ubuf.len()));
        if k > 0 {
            first = ubuf.split_to(k).freeze();
            framing = BodyFraming::Length(n - k as u64);
            facts.body_bytes = k as u64;
            facts.bytes += k as u64;
        }
    }
    let send = async {
        if first.len() <= 16 * 1024 {
            // Small (or none): one buffer, one TLS record.
            out.extend_from_slice(&first);
            client.write_owned(out).await.0
        } else {
            client.write_head_and_body(out, first).await
        }
    };
    match crate::deadline::timeout(req.server.http.send_timeout, send).await {
        Ok(Ok(())) => Ok(framing),
        _ => Err(Failure::Close),
    }
}

/// Says why relaying a response body stopped (the client connection then closes).
fn log_response_body_failure(up: &Upstream, e: &RelayError) {
    match e {
        RelayError::SourceTimeout => log::error!(
            "upstream `{}` timed out while sending the response body; closing the client connection",
            up.name
        ),
        RelayError::SourceTruncated => log::error!(
            "upstream `{}` prematurely closed the connection while sending the response body",
            up.name
        ),
        RelayError::BadChunk(e) => log::error!(
            "upstream `{}` sent an invalid chunked response body ({})",
            up.name,
            e.reason()
        ),
        RelayError::SourceRead(e) => log::error!(
            "upstream `{}` connection failed while sending the response body ({e}); closing the client connection",
            up.name
        ),
        // The client went away or stopped reading (nginx logs this at info level too).
        RelayError::SinkWrite(_) | RelayError::SinkTimeout => log::info!(
            "the client stopped taking the response from upstream `{}`; closing",
            up.name
        ),
        RelayError::TooLarge => {}
    }
}
