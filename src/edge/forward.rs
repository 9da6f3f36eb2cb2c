//! Forwarding one request to an upstream and relaying the response, as nginx's `proxy_pass`:
//! pick a server, reuse a pooled connection or connect, send the rewritten head and stream the
//! body, read the response head, stream the response back, and pool the connection when the
//! exchange ended cleanly.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::body::{relay, RelayError, RelayParams};
use super::core::Generation as State;
use super::peer::{ConnInfo, LogFacts, RequestCtx};
use super::route;
use crate::config::{Listener, Location, ProxyPass};
use crate::conn::Stream;
use crate::http::{self, BodyFraming, Canned, Interim, RequestHead, ResponseHead};
use crate::upstream::{self, Upstream, UpstreamError};

/// How a failed exchange ends for the client.
enum Failure {
    /// Nothing was sent to the client yet: answer with this status.
    Respond(UpstreamError),
    /// The client side failed or the response had started: just close.
    Close,
    /// The client's body was too large (413).
    TooLarge,
    /// The client's body was malformed (400).
    BadBody,
    /// The client stopped sending its body in time (408).
    ClientTimeout,
}

/// Proxies one request whose head is `hb` (already split off the client buffer; `cbuf` starts
/// with its body). Returns Ok(true) when the client connection may carry another request.
#[allow(clippy::too_many_arguments)]
pub async fn proxy(
    w: &State,
    ctx: &RequestCtx<'_>,
    client: &mut Stream,
    head: &RequestHead,
    hb: &Bytes,
    cbuf: &mut BytesMut,
    location: &Location,
    pp: &ProxyPass,
    last: bool,
    facts: &mut LogFacts,
) -> Result<bool, ()> {
    let Some(up) = w.config.upstreams.get(pp.upstream) else {
        return Err(());
    };
    let listener = ctx.listener;
    let info = ctx.conn;
    let http = &listener.http;
    if let BodyFraming::Length(n) = head.framing {
        if http.client_max_body_size != 0 && n > http.client_max_body_size {
            log::warn!(
                "listener={} peer={}: client intended to send too large body: {n} bytes (413)",
                listener.name,
                info.peer
            );
            facts.canned(Canned::PayloadTooLarge);
            let _ = client
                .write_bytes(Bytes::from_static(Canned::PayloadTooLarge.bytes()))
                .await;
            return Err(());
        }
    }

    let mut obuf = BytesMut::with_capacity(head.head_len + 256);
    {
        let vars = ctx.vars(head, hb, pp.proxy_host.as_bytes());
        let mut target = Vec::with_capacity(head.target.len() + 16);
        route::map_target(
            &mut target,
            location,
            pp.uri.as_deref(),
            head.path_and_query.get(hb),
            ctx.uri,
        );
        let mut host_value = std::borrow::Cow::Borrowed(pp.proxy_host.as_bytes());
        let mut values: Vec<(&[u8], Vec<u8>)> = Vec::with_capacity(location.set_headers.len());
        for (name, tpl) in &location.set_headers {
            let mut v = Vec::new();
            vars.render(tpl, &mut v);
            if name.eq_ignore_ascii_case("host") {
                host_value = std::borrow::Cow::Owned(v);
            } else {
                values.push((name.as_bytes(), v));
            }
        }
        for (field, name) in &listener.identity_headers.fields {
            let mut v = Vec::new();
            if info.identity_header(*field, &mut v) {
                values.push((name.as_bytes(), v));
            }
        }
        let set: Vec<(&[u8], &[u8])> = values.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let strip: Vec<&[u8]> = listener
            .identity_headers
            .strip
            .iter()
            .map(Vec::as_slice)
            .collect();
        let params = http::UpstreamRequestParams {
            target: &target,
            host: &host_value,
            x_forwarded_for: http.x_forwarded_for.then_some(info.peer_ip.as_bytes()),
            x_forwarded_proto: http.x_forwarded_proto.then_some(if info.tls.is_some() {
                b"https".as_slice()
            } else {
                b"http".as_slice()
            }),
            set_headers: &set,
            remove_headers: &strip,
            keep_alive_upstream: up.keepalive > 0,
        };
        http::write_upstream_request(&mut obuf, head, hb, &params);
    }
    let request_line = RequestLine { head, bytes: hb };
    let upstream_head = obuf.freeze();

    if head.expect_continue && head.framing != BodyFraming::None {
        // We read the body on the client's behalf, so we say "go ahead" ourselves.
        if client
            .write_bytes(Bytes::from_static(http::CONTINUE_100))
            .await
            .is_err()
        {
            return Err(());
        }
    }

    let mut retried = false;
    // Servers this request has been sent to or failed to reach (by index), each at most once.
    let mut tried: Vec<usize> = Vec::new();
    // A request without a body whose method is idempotent can be sent again elsewhere.
    let resendable = head.framing == BodyFraming::None && head.is_idempotent(b"");
    loop {
        let began = Instant::now();
        let pooled = if tried.is_empty() {
            w.pools.take(pp.upstream, up)
        } else {
            // Passing the request on: a fresh connection to a server not tried yet.
            None
        };
        let (mut ustream, addr, server) = match pooled {
            Some((s, a)) => {
                crate::metrics::with(|m| m.upstream_connection(true));
                (s, a, None)
            }
            None => match connect(
                w,
                pp.upstream,
                up,
                listener,
                info,
                &request_line,
                &mut tried,
            )
            .await
            {
                Some(Ok((s, addr, server))) => (s, addr, Some(server)),
                Some(Err((e, addr))) => {
                    facts.upstream_addr = Some(addr);
                    facts.upstream_time = Some(began.elapsed());
                    let failure = Failure::Respond(e);
                    return fail(
                        client,
                        listener,
                        info,
                        up,
                        addr,
                        &request_line,
                        failure,
                        facts,
                    )
                    .await;
                }
                None => return Err(()),
            },
        };
        facts.upstream_addr = Some(addr);
        let result = exchange(
            client,
            &mut ustream,
            listener,
            up,
            head,
            upstream_head.clone(),
            cbuf,
            last,
            facts,
        )
        .await;
        facts.upstream_time = Some(began.elapsed());
        match result {
            Ok((keep_client, keep_upstream)) => {
                if keep_upstream {
                    w.pools.put(pp.upstream, up, ustream, addr);
                }
                return if keep_client { Ok(true) } else { Err(()) };
            }
            Err(Failure::Respond(e))
                if server.is_none() && !retried && e.is_stale_connection() && resendable =>
            {
                // The pooled connection had been closed by the upstream: retry once, fresh.
                log::debug!(
                    "upstream `{}` ({addr}): stale pooled connection ({e}); retrying",
                    up.name
                );
                retried = true;
                continue;
            }
            Err(Failure::Respond(e))
                if resendable && e.passes_to_next_server() && tried.len() < up.server_count() =>
            {
                // A fresh connection failed before the response began (nginx's
                // proxy_next_upstream error timeout): count it, go on to the next server.
                if let Some(s) = server {
                    mark_failed(w, pp.upstream, up, s, addr);
                }
                log::error!(
                    "{e} {}, client: {}, listener: {}, request: \"{request_line}\", upstream: `{}` {addr}; trying the next server",
                    e.context(),
                    info.peer,
                    listener.name,
                    up.name,
                );
                continue;
            }
            Err(f) => return fail(client, listener, info, up, addr, &request_line, f, facts).await,
        }
    }
}

/// Opens a connection to one of the upstream's servers. A server that cannot be reached (TCP or
/// TLS) is counted against `max_fails` and the next one is tried, each server at most once,
/// as nginx's default `proxy_next_upstream error timeout` does: nothing was sent yet, so any
/// method may go elsewhere. Returns the last failure when every server failed; None when the
/// upstream has no server.
#[allow(clippy::type_complexity)]
async fn connect(
    w: &State,
    id: usize,
    up: &Upstream,
    listener: &Listener,
    info: &ConnInfo,
    request: &RequestLine<'_>,
    tried: &mut Vec<usize>,
) -> Option<Result<(crate::conn::Stream, SocketAddr, usize), (UpstreamError, SocketAddr)>> {
    loop {
        let (server, addr) = w.pools.pick(id, up, tried)?;
        tried.push(server);
        match upstream::open(&w.pools, id, up, server, addr).await {
            Ok(s) => {
                w.pools.succeeded(id, server);
                w.pools.connects.set(w.pools.connects.get() + 1);
                crate::metrics::with(|m| m.upstream_connection(false));
                return Some(Ok((s, addr, server)));
            }
            Err(e) => {
                mark_failed(w, id, up, server, addr);
                if tried.len() >= up.server_count() {
                    return Some(Err((e, addr)));
                }
                log::error!(
                    "{e} {}, client: {}, listener: {}, request: \"{request}\", upstream: `{}` {}://{addr}; trying the next server",
                    e.context(),
                    info.peer,
                    listener.name,
                    up.name,
                    if up.tls.is_some() { "https" } else { "http" },
                );
            }
        }
    }
}

/// Counts a failure against a server (max_fails), saying so when it is now skipped.
fn mark_failed(w: &State, id: usize, up: &Upstream, server: usize, addr: SocketAddr) {
    if w.pools.failed(id, up, server) {
        log::warn!(
            "upstream `{}` server {addr} skipped for {:?} after {} failed attempt(s) (max_fails, fail_timeout)",
            up.name,
            up.fail_timeout,
            up.max_fails
        );
    }
}

/// The request line, rendered only when a log line needs it.
struct RequestLine<'a> {
    head: &'a RequestHead,
    bytes: &'a [u8],
}

impl std::fmt::Display for RequestLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            String::from_utf8_lossy(self.head.method_span.get(self.bytes)),
            String::from_utf8_lossy(self.head.target.get(self.bytes))
        )
    }
}

/// Logs a failed exchange and answers the client when it still can.
#[allow(clippy::too_many_arguments)]
async fn fail(
    client: &mut Stream,
    listener: &Listener,
    info: &ConnInfo,
    up: &Upstream,
    addr: SocketAddr,
    request: &RequestLine<'_>,
    f: Failure,
    facts: &mut LogFacts,
) -> Result<bool, ()> {
    let page = match &f {
        Failure::Respond(e) => {
            log::error!(
                "{e} {}, client: {}, listener: {}, request: \"{request}\", upstream: `{}` {}://{addr} ({})",
                e.context(),
                info.peer,
                listener.name,
                up.name,
                if up.tls.is_some() { "https" } else { "http" },
                e.status()
            );
            Some(if e.status() == 504 {
                Canned::GatewayTimeout
            } else {
                Canned::BadGateway
            })
        }
        Failure::TooLarge => {
            log::warn!("client {} sent a body larger than client_max_body_size (413), request: \"{request}\"", info.peer);
            Some(Canned::PayloadTooLarge)
        }
        Failure::BadBody => {
            log::info!(
                "client {} sent a malformed chunked body (400), request: \"{request}\"",
                info.peer
            );
            Some(Canned::BadRequest)
        }
        Failure::ClientTimeout => {
            log::info!(
                "client {} timed out sending the request body (408), request: \"{request}\"",
                info.peer
            );
            Some(Canned::RequestTimeout)
        }
        Failure::Close => None,
    };
    if let Some(page) = page {
        facts.canned(page);
        let _ = client.write_bytes(Bytes::from_static(page.bytes())).await;
    }
    Err(())
}

/// One request/response exchange on an upstream connection. Returns whether the client and
/// the upstream connection may each be kept alive.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    client: &mut Stream,
    ustream: &mut Stream,
    listener: &Listener,
    up: &Upstream,
    head: &RequestHead,
    upstream_head: Bytes,
    cbuf: &mut BytesMut,
    last: bool,
    facts: &mut LogFacts,
) -> Result<(bool, bool), Failure> {
    let http = &listener.http;
    // 1. The head, then the body as it arrives.
    match monoio::time::timeout(up.send_timeout, ustream.write_bytes(upstream_head)).await {
        Err(_) => return Err(Failure::Respond(UpstreamError::SendTimeout)),
        Ok(Err(e)) => return Err(Failure::Respond(UpstreamError::io(e, up))),
        Ok(Ok(())) => {}
    }
    let params = RelayParams {
        read_timeout: http.body_timeout,
        write_timeout: up.send_timeout,
        max_body: http.client_max_body_size,
        rechunk: false,
        dechunk: false,
    };
    if let Err(e) = relay(client, ustream, cbuf, head.framing, &params).await {
        return Err(match e {
            RelayError::TooLarge => Failure::TooLarge,
            RelayError::BadChunk(_) => Failure::BadBody,
            RelayError::SourceTimeout => Failure::ClientTimeout,
            RelayError::SourceRead(_) | RelayError::SourceTruncated => Failure::Close,
            RelayError::SinkWrite(e) => Failure::Respond(UpstreamError::io(e, up)),
            RelayError::SinkTimeout => Failure::Respond(UpstreamError::SendTimeout),
        });
    }

    // 2. The response head, skipping interim 1xx responses (we answered 100 ourselves). One
    //    that nobody asked for leaves the connection's framing in doubt: it serves this
    //    exchange and is then closed. A 101 is never followed: no upgrade is forwarded, so a
    //    switch is one the client did not ask for, and the connection now speaks something else.
    let limits = http::Limits {
        max_head_bytes: 64 * 1024,
        max_headers: 200,
        max_line_bytes: 64 * 1024,
    };
    let mut ubuf = BytesMut::with_capacity(16 * 1024);
    let mut unexpected_interim = false;
    let resp: ResponseHead = loop {
        if !ubuf.is_empty() {
            match http::parse_response(&ubuf, head.is_head(), &limits) {
                Ok(Some(r)) => match r.interim() {
                    Interim::Final => break r,
                    Interim::SwitchingProtocols => {
                        return Err(Failure::Respond(UpstreamError::BadResponse(
                            "101 Switching Protocols to a request that asked for no upgrade",
                        )))
                    }
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
                },
                Ok(None) => {}
                Err(e) => return Err(Failure::Respond(UpstreamError::BadResponse(e.reason()))),
            }
        }
        match monoio::time::timeout(up.read_timeout, ustream.read_buf(&mut ubuf, 64 * 1024)).await {
            Err(_) => return Err(Failure::Respond(UpstreamError::ReadTimeout)),
            Ok(Err(e)) => return Err(Failure::Respond(UpstreamError::io(e, up))),
            Ok(Ok(0)) => return Err(Failure::Respond(UpstreamError::ClosedEarly)),
            Ok(Ok(_)) => {}
        }
    };

    // 3. The response head to the client, then the body as it arrives.
    let until_close = resp.framing == BodyFraming::UntilClose;
    let rechunk = until_close && head.version_minor == 1;
    // An HTTP/1.0 client cannot read chunked framing: send the data alone and close after it.
    let dechunk = resp.framing == BodyFraming::Chunked && head.version_minor == 0;
    let keep_client = head.keep_alive && !last && (!until_close || rechunk) && !dechunk;
    let mut out = BytesMut::with_capacity(resp.head_len + 128);
    let date = crate::clock::cached_http_date();
    let add: [(&[u8], &[u8]); 2] = [(b"Server", b"ringgate"), (b"Date", &date)];
    http::write_client_response(
        &mut out,
        &resp,
        &ubuf,
        &http::ClientResponseParams {
            keep_alive: keep_client,
            client_version_minor: head.version_minor,
            rechunk,
            dechunk,
            hide_headers: http::rewrite::NGINX_HIDDEN_RESPONSE_HEADERS,
            add_headers: &add,
        },
    );
    let _ = ubuf.split_to(resp.head_len);
    facts.status = resp.status;
    facts.upstream_status = Some(resp.status);
    facts.bytes = out.len() as u64;
    // The part of a Content-Length body that arrived with the head goes out with it: one send
    // (and, when it is small, one TLS record) instead of two.
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
    match monoio::time::timeout(http.send_timeout, send).await {
        Ok(Ok(())) => {}
        _ => return Err(Failure::Close),
    }
    let params = RelayParams {
        read_timeout: up.read_timeout,
        write_timeout: http.send_timeout,
        max_body: 0,
        rechunk,
        dechunk,
    };
    match relay(ustream, client, &mut ubuf, framing, &params).await {
        Ok(n) => {
            facts.body_bytes += n;
            facts.bytes += n;
        }
        Err(RelayError::SourceTimeout) => {
            log::error!("upstream `{}` timed out while sending the response body; closing the client connection", up.name);
            return Err(Failure::Close);
        }
        Err(RelayError::SourceTruncated) => {
            log::error!(
                "upstream `{}` prematurely closed the connection while sending the response body",
                up.name
            );
            return Err(Failure::Close);
        }
        Err(RelayError::BadChunk(e)) => {
            log::error!(
                "upstream `{}` sent an invalid chunked response body ({})",
                up.name,
                e.reason()
            );
            return Err(Failure::Close);
        }
        Err(RelayError::SourceRead(e)) => {
            log::error!(
                "upstream `{}` connection failed while sending the response body ({e}); closing the client connection",
                up.name
            );
            return Err(Failure::Close);
        }
        Err(RelayError::SinkWrite(_) | RelayError::SinkTimeout) => {
            // The client went away or stopped reading (nginx logs this at info level too).
            log::info!(
                "the client stopped taking the response from upstream `{}`; closing",
                up.name
            );
            return Err(Failure::Close);
        }
        Err(RelayError::TooLarge) => return Err(Failure::Close),
    }
    // Extra bytes after a complete response mean the upstream broke framing: do not reuse.
    let keep_upstream = resp.keep_alive
        && !until_close
        && !unexpected_interim
        && ubuf.is_empty()
        && up.keepalive > 0;
    Ok((keep_client, keep_upstream))
}
