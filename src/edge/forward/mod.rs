//! Forwarding one request to an upstream, as nginx's `proxy_pass` (and `grpc_pass`): the
//! checks every upstream shares (body size, upgrades, `Expect: 100-continue`), the request head
//! as the upstream gets it, then the exchange by the upstream's protocol: [`http1`] (a pooled
//! connection per exchange) or [`h2`] (a stream on a multiplexed connection). The response
//! head's rewrite is shared by both.

pub mod h2;
pub mod http1;

use std::borrow::Cow;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use super::core::Generation;
use super::outcome::{LogFacts, Next, Refusal};
use super::refusal_log::Kind;
use super::request::{Client, Protocol, Request};
use super::respond;
use super::route;
use crate::config::{Location, ProxyPass};
use crate::http::{self, BodyFraming, ResponseHead};
use crate::upstream::{Pools, Upstream, UpstreamError, UpstreamProtocol};

/// Where a location proxies to.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// The location (its `proxy_set_header`s and prefix for the URI mapping).
    pub location: &'a Location,
    /// Its `proxy_pass`.
    pub pass: &'a ProxyPass,
}

/// The upstream group a request goes to, with this core's pools for it.
#[derive(Clone, Copy)]
pub(super) struct Group<'a> {
    /// Index in `Config::upstreams` (and in the pools).
    pub(super) id: usize,
    pub(super) up: &'a Upstream,
    pub(super) pools: &'a Pools,
}

/// Proxies one request (its body at the start of `client.unread`). Returns whether the client
/// connection may carry another request.
pub async fn proxy(
    generation: &Generation,
    client: &mut Client<'_>,
    req: &Request<'_>,
    target: Target<'_>,
    facts: &mut LogFacts,
) -> Next {
    let id = target.pass.upstream;
    let Some(up) = generation.config.upstreams.get(id) else {
        return Next::Close;
    };
    let http = &req.server.http;
    if let BodyFraming::Length(n) = req.head.framing {
        if http.client_max_body_size != 0 && n > http.client_max_body_size {
            crate::refusal_line!(
                Kind::BadRequest,
                warn,
                "listener={} peer={}: client intended to send too large body: {n} bytes (413)",
                req.server.name,
                req.peer.addr
            );
            let refusal = Refusal::BodyTooLarge;
            return respond::refuse_as(client.stream, req.dialect(), &refusal, facts).await;
        }
    }
    let outgoing = outgoing(req, target, up);
    if req.protocol == Protocol::Http2
        && outgoing.upgrade.is_none()
        && req.head.header(req.bytes, b"upgrade").is_some()
    {
        // An extended CONNECT (HTTP/2 has no Upgrade field of its own) for a protocol this
        // location does not tunnel.
        crate::refusal_line!(
            Kind::BadRequest,
            info,
            "listener={} peer={}: {} refused (405): location `{}` does not tunnel this protocol (its upgrade list)",
            req.server.name,
            req.peer.addr,
            req.line(),
            target.location.path
        );
        let refusal = Refusal::MethodNotAllowed;
        return respond::refuse_as(client.stream, req.dialect(), &refusal, facts).await;
    }
    if req.head.expect_continue && req.head.framing != BodyFraming::None {
        // We read the body on the client's behalf, so we say "go ahead" ourselves.
        let go_ahead = client
            .stream
            .write_bytes(Bytes::from_static(http::CONTINUE_100));
        if go_ahead.await.is_err() {
            return Next::Close;
        }
    }
    let group = Group {
        id,
        up,
        pools: &generation.pools,
    };
    if up.protocol == UpstreamProtocol::H2 {
        return Box::pin(h2::proxy(group, client, req, outgoing.head, facts)).await;
    }
    http1::attempts(group, client, req, outgoing, facts).await
}

/// The request as the upstream gets it.
#[derive(Clone)]
struct Outgoing {
    /// The head: the target mapped, `proxy_set_header`s rendered, identity headers stripped
    /// and set, hop-by-hop headers dropped.
    head: Bytes,
    /// The protocols the request asks to switch to, when the location allows them (the
    /// `Upgrade` value sent): a `101` must name one of them.
    upgrade: Option<Vec<u8>>,
}

/// Builds what is sent upstream for `req`.
fn outgoing(req: &Request<'_>, target: Target<'_>, up: &Upstream) -> Outgoing {
    let upgrade = http::upgrade::requested(req.head, req.bytes, &target.location.upgrade);
    Outgoing {
        head: upstream_head(req, target, up, upgrade.as_deref()),
        upgrade,
    }
}

/// The request head as the upstream gets it.
fn upstream_head(
    req: &Request<'_>,
    target: Target<'_>,
    up: &Upstream,
    upgrade: Option<&[u8]>,
) -> Bytes {
    let (head, bytes, location, pass) = (req.head, req.bytes, target.location, target.pass);
    let server = req.server;
    let vars = req.vars(pass.proxy_host.as_bytes());
    let mut mapped = Vec::with_capacity(head.target.len() + 16);
    let path = head.path_and_query.get(bytes);
    route::map_target(&mut mapped, location, pass.uri.as_deref(), path, req.uri);
    let mut host_value = Cow::Borrowed(pass.proxy_host.as_bytes());
    let mut values: Vec<(&[u8], Vec<u8>)> = Vec::with_capacity(location.set_headers.len());
    for (name, tpl) in &location.set_headers {
        let mut v = Vec::new();
        vars.render(tpl, &mut v);
        if name.eq_ignore_ascii_case("host") {
            host_value = Cow::Owned(v);
        } else {
            values.push((name.as_bytes(), v));
        }
    }
    for (field, name) in &server.identity_headers.fields {
        let mut v = Vec::new();
        if req.peer.identity_header(*field, &mut v) {
            values.push((name.as_bytes(), v));
        }
    }
    let set: Vec<(&[u8], &[u8])> = values.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    let strip: Vec<&[u8]> = server
        .identity_headers
        .strip
        .iter()
        .map(Vec::as_slice)
        .collect();
    let scheme: &[u8] = if req.peer.tls.is_some() {
        b"https"
    } else {
        b"http"
    };
    let params = http::UpstreamRequestParams {
        target: &mapped,
        host: &host_value,
        x_forwarded_for: server
            .http
            .x_forwarded_for
            .then_some(req.peer.ip.as_bytes()),
        x_forwarded_proto: server.http.x_forwarded_proto.then_some(scheme),
        set_headers: &set,
        remove_headers: &strip,
        keep_alive_upstream: up.keepalive > 0,
        upgrade,
    };
    let mut out = BytesMut::with_capacity(head.head_len + 256);
    http::write_upstream_request(&mut out, head, bytes, &params);
    out.freeze()
}

/// Counts a failure against a server (max_fails), saying so when it is now skipped.
pub(super) fn mark_failed(group: Group<'_>, server: usize, addr: SocketAddr) {
    let up = group.up;
    if group.pools.failed(group.id, up, server) {
        log::warn!(
            "upstream `{}` server {addr} skipped for {:?} after {} failed attempt(s) (max_fails, fail_timeout)",
            up.name,
            up.fail_timeout,
            up.max_fails
        );
    }
}

/// The log line of a server that failed before the request's response began, when the next
/// one is tried.
pub(super) fn log_next_server(
    req: &Request<'_>,
    up: &Upstream,
    addr: SocketAddr,
    e: &UpstreamError,
) {
    log::error!(
        "{e} {}, client: {}, listener: {}, request: \"{}\", upstream: `{}` {}://{addr}; trying the next server",
        e.context(),
        req.peer.addr,
        req.server.name,
        req.line(),
        up.name,
        if up.tls.is_some() { "https" } else { "http" },
    );
}

/// The log line of an exchange that failed with `refusal`.
pub(super) fn log_failure(req: &Request<'_>, up: &Upstream, addr: SocketAddr, refusal: &Refusal) {
    let (peer, line) = (req.peer.addr, req.line());
    match refusal {
        Refusal::Upstream(e) => log::error!(
            "{e} {}, client: {peer}, listener: {}, request: \"{line}\", upstream: `{}` {}://{addr} ({})",
            e.context(),
            req.server.name,
            up.name,
            if up.tls.is_some() { "https" } else { "http" },
            refusal.status()
        ),
        Refusal::BodyTooLarge => crate::refusal_line!(Kind::BadRequest, warn,
            "client {peer} sent a body larger than client_max_body_size (413), request: \"{line}\""
        ),
        Refusal::BadBody => {
            crate::refusal_line!(Kind::BadRequest, info, "client {peer} sent a malformed chunked body (400), request: \"{line}\"")
        }
        Refusal::BodyTimeout => crate::refusal_line!(Kind::Timeout, info,
            "client {peer} timed out sending the request body (408), request: \"{line}\""
        ),
        _ => {}
    }
}

/// How the response is framed towards the client.
pub(super) struct Shape {
    /// The upstream's body runs until it closes.
    until_close: bool,
    /// A read-until-close body is sent chunked to an HTTP/1.1 client.
    rechunk: bool,
    /// A chunked body is sent bare to an HTTP/1.0 client (which then sees the close).
    pub(super) dechunk: bool,
    /// The client connection may carry another request.
    pub(super) keep_client: bool,
}

/// The response head as the client gets it: the upstream's end-to-end fields (nginx's hidden
/// ones left out), `Server` and `Date`, framing and `Connection` by `shape`, and for a switch
/// its `Upgrade`. The head's bytes are taken off `ubuf`.
pub(super) fn client_head(
    req: &Request<'_>,
    resp: &ResponseHead,
    ubuf: &mut BytesMut,
    shape: &Shape,
    upgrade: Option<&[u8]>,
) -> BytesMut {
    let mut out = BytesMut::with_capacity(resp.head_len + 128);
    let date = crate::clock::cached_http_date();
    let add: [(&[u8], &[u8]); 2] = [(b"Server", b"ringgate"), (b"Date", &date)];
    http::write_client_response(
        &mut out,
        resp,
        ubuf,
        &http::ClientResponseParams {
            keep_alive: shape.keep_client,
            client_version_minor: req.head.version_minor,
            rechunk: shape.rechunk,
            dechunk: shape.dechunk,
            hide_headers: http::rewrite::NGINX_HIDDEN_RESPONSE_HEADERS,
            add_headers: &add,
            upgrade,
        },
    );
    let _ = ubuf.split_to(resp.head_len);
    out
}

/// How the response is framed towards this client.
pub(super) fn shape(req: &Request<'_>, resp: &ResponseHead) -> Shape {
    let until_close = resp.framing == BodyFraming::UntilClose;
    let rechunk = until_close && req.head.version_minor == 1;
    // An HTTP/1.0 client cannot read chunked framing: send the data alone and close after it.
    let dechunk = resp.framing == BodyFraming::Chunked && req.head.version_minor == 0;
    let keep_client = req.client_keeps_alive() && (!until_close || rechunk) && !dechunk;
    Shape {
        until_close,
        rechunk,
        dechunk,
        keep_client,
    }
}
