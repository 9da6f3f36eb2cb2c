//! One client connection from accept to close:
//! handshake -> identify -> (per request) read head -> route -> forward -> relay response.
//!
//! The request path is plain `async fn`s in this module and [`forward`]; every failure becomes
//! an exact status code and one log line.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::net::TcpStream;
use rustls::ServerConnection;

use super::accept::Accepted;
use super::core::{Core, Generation as State};
use super::peer::{ConnInfo, LogFacts, RequestCtx, TlsInfo};
use crate::config::{Action, HttpSettings, Listener, Rule, Socket};
use crate::conn::Stream;
use crate::http::{self, Canned, RequestError, RequestHead};
use crate::policy::BindingCheck;
use crate::tls::client_auth::{ClientAuthMode, ClientVerifyOutcome, FailureMode};
use crate::tls::stream::TlsStream;

/// A verified client certificate with fewer days left is warned about (once per worker while
/// it is seen).
const CLIENT_EXPIRY_WARN_DAYS: i64 = 30;

/// Serves one accepted connection until it closes.
pub async fn serve(w: Rc<Core>, accepted: Accepted) {
    let Accepted {
        tcp,
        peer,
        socket: si,
        slot,
    } = accepted;
    // Counted open (in the worker and in the process) until this function returns.
    let _slot = slot;
    // The configuration generation current at accept serves this connection to its end: a
    // reload changes what new connections get, never what an established one is doing.
    let st = w.generation();
    let st: &State = &st;
    let Some(socket) = st.config.sockets.get(si) else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().unwrap_or(socket.addr);
    let serial = w.next_connection_serial();
    let (mut stream, server, tls, refusal) = if socket.tls {
        // Boxed: a connection's task keeps only what an idle connection needs inline (the
        // handshake's and a request's larger states live on the heap while they run).
        match Box::pin(handshake(st, socket, tcp, peer)).await {
            Some((s, server, info, refusal)) => {
                (Stream::ServerTls(Box::new(s)), server, Some(info), refusal)
            }
            None => return,
        }
    } else {
        (Stream::Plain(tcp), socket.hosts.default, None, None)
    };
    let Some(listener) = st.config.listeners.get(server) else {
        return;
    };
    if let Some(t) = &tls {
        let kind = if t.resumed { "resumed" } else { "full" };
        let outcome = match refusal {
            Some(Canned::NoClientCert) => "no_certificate",
            Some(_) => "bad_certificate",
            None => "ok",
        };
        crate::metrics::with(|m| {
            m.handshake(kind, outcome);
            if let Some(id) = t.identity.as_deref().filter(|_| t.verified) {
                let days = id.days_left(crate::clock::unix_now());
                if m.client_certificate(id) && days < CLIENT_EXPIRY_WARN_DAYS {
                    log::warn!(
                        "listener={} peer={peer}: client certificate {} (serial {}) expires in {days} day(s)",
                        listener.name,
                        id.subject_dn,
                        id.serial
                    );
                }
            }
        });
    }
    // Identity decisions are made once per connection: the role of a verified certificate and
    // what the address bindings say (a resumed session carries the same chain, so the same
    // decisions).
    let verified = tls
        .as_ref()
        .filter(|t| t.verified)
        .and_then(|t| t.identity.clone());
    let (role, binding) = match &verified {
        Some(id) => (
            st.config.identity.role_for(id),
            st.config.identity.check_binding(id, peer.ip()),
        ),
        None => (None, BindingCheck::Unbound),
    };
    let info = ConnInfo {
        peer,
        peer_ip: peer.ip().to_string(),
        local,
        tls,
        server,
        role,
        binding,
        serial,
    };
    if let Some(page) = refusal {
        // nginx-compatible mode: the handshake completed, the first request gets the 400 page
        // (and an access-log line, as nginx writes one).
        let started = Instant::now();
        let mut buf = BytesMut::with_capacity(4096);
        let head = monoio::time::timeout(
            listener.http.header_timeout,
            read_head(
                &mut stream,
                &mut buf,
                &limits(&listener.http),
                listener.http.header_timeout,
            ),
        )
        .await;
        let _ = stream
            .write_bytes(bytes::Bytes::from_static(page.bytes()))
            .await;
        if let Ok(Ok(head)) = head {
            let hb = buf.split_to(head.head_len.min(buf.len()));
            let mut facts = LogFacts {
                started: Some(started),
                server: info.server,
                decision: format!(
                    "deny: client certificate ({})",
                    info.tls.as_ref().map_or("", |t| t.verify.as_str())
                )
                .into(),
                ..LogFacts::default()
            };
            facts.canned(page);
            crate::metrics::with(|m| m.request(facts.status, started.elapsed()));
            log_request(&w, st, &info, &head, &hb, 1, &facts);
        }
        let _ = stream.shutdown().await;
        return;
    }
    serve_requests(&w, st, socket, listener, &mut stream, &info).await;
}

/// Runs the TLS handshake (choosing the server by SNI when several share the address) and
/// settles the client certificate. Returns None when the connection is refused or lost
/// (already logged), else the stream, the server chosen, its TLS facts and, in
/// nginx-compatible mode, the 400 page owed to a refused client.
async fn handshake(
    w: &State,
    socket: &Socket,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<(TlsStream<ServerConnection>, usize, TlsInfo, Option<Canned>)> {
    let default = socket.hosts.default;
    let default_listener = w.config.listeners.get(default)?;
    let Some(fallback) = w.tls.get(default).cloned().flatten() else {
        log::error!(
            "listener={}: no TLS configuration on a TLS address",
            default_listener.name
        );
        return None;
    };
    let timeout = default_listener.http.header_timeout;
    let started = async {
        let mut tcp = tcp;
        let flight = crate::tls::stream::read_client_hello(&mut tcp).await?;
        if socket.hosts.is_shared() {
            crate::tls::stream::accept(tcp, flight, |sni| {
                let id = socket.hosts.select(sni.map(str::as_bytes));
                match w.tls.get(id).cloned().flatten() {
                    Some(cfg) => (cfg, id),
                    None => (fallback.clone(), default),
                }
            })
            .await
        } else {
            ServerConnection::new(fallback.clone())
                .map(|c| (TlsStream::with_received(tcp, c, flight), default))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        }
    };
    let done = async {
        let (mut tls, server) = started.await?;
        tls.handshake().await?;
        Ok::<_, std::io::Error>((tls, server))
    };
    let (mut tls, server) = match monoio::time::timeout(timeout, done).await {
        Err(_) => {
            log::info!(
                "listener={} peer={peer}: TLS handshake timed out after {timeout:?}",
                default_listener.name,
            );
            crate::metrics::with(|m| m.handshake("full", "timeout"));
            return None;
        }
        Ok(Err(e)) => {
            let outcome = log_handshake_failure(&default_listener.name, peer, &e);
            crate::metrics::with(|m| m.handshake("full", outcome));
            return None;
        }
        Ok(Ok(x)) => x,
    };
    let listener = w.config.listeners.get(server)?;
    let mut info = TlsInfo::from_connection(tls.conn());
    let server_tls = listener.tls.as_ref()?;
    let mut refusal = None;
    if server_tls.mode != ClientAuthMode::Off {
        let chain = tls.conn().peer_certificates().unwrap_or(&[]);
        let verdict = server_tls
            .client_auth()
            .verdict(chain, rustls_pki_types::UnixTime::now());
        info.verify = verdict.outcome.nginx_value().into_owned();
        info.verified = matches!(verdict.outcome, ClientVerifyOutcome::Success(_));
        info.identity = verdict.identity;
        match &verdict.outcome {
            ClientVerifyOutcome::Success(_) => {}
            ClientVerifyOutcome::None if server_tls.mode == ClientAuthMode::On => {
                log::warn!(
                    "listener={} peer={peer}: client sent no required SSL certificate",
                    listener.name
                );
                refusal = Some(Canned::NoClientCert);
            }
            ClientVerifyOutcome::None => {}
            ClientVerifyOutcome::Failed(err) => {
                let tolerated = server_tls.mode == ClientAuthMode::OptionalNoCa
                    && err.is_ignorable_for_optional_no_ca();
                if !tolerated {
                    log::warn!(
                        "listener={} peer={peer}: client SSL certificate verify error: {err} (subject: {})",
                        listener.name,
                        info.identity.as_ref().map_or("-", |i| i.subject_dn.as_str())
                    );
                    refusal = Some(Canned::ClientCertError);
                }
            }
        }
        if refusal.is_some() && server_tls.failure == FailureMode::Alert {
            // Reached only when the verifier let the handshake finish (a resumed session whose
            // certificate no longer verifies): refuse now, at the TLS layer.
            let kind = if info.resumed { "resumed" } else { "full" };
            crate::metrics::with(|m| m.handshake(kind, "bad_certificate"));
            let _ = tls.shutdown().await;
            return None;
        }
    }
    Some((tls, server, info, refusal))
}

/// The metrics label of a refused client certificate.
fn certificate_outcome(ce: &rustls::CertificateError) -> &'static str {
    use rustls::CertificateError as C;
    match ce {
        C::UnknownIssuer => "unknown_ca",
        C::Expired | C::ExpiredContext { .. } => "expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "not_yet_valid",
        C::Revoked => "revoked",
        C::BadSignature => "bad_signature",
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => "bad_purpose",
        _ => "bad_certificate",
    }
}

/// Logs why a handshake failed; returns the metrics outcome label.
fn log_handshake_failure(listener: &str, peer: SocketAddr, e: &std::io::Error) -> &'static str {
    if let Some(r) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<crate::tls::client_auth::RefusedCertificate>())
    {
        let alert = match &r.error {
            rustls::Error::InvalidCertificate(ce) => {
                format!("{:?}", rustls::AlertDescription::from(ce.clone()))
            }
            other => other.to_string(),
        };
        log::warn!(
            "listener={listener} peer={peer}: refused client certificate: {} (alert {alert})",
            r.detail
        );
        return match &r.error {
            rustls::Error::InvalidCertificate(ce) => certificate_outcome(ce),
            _ => "bad_certificate",
        };
    }
    let rustls_err = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_err {
        Some(rustls::Error::NoCertificatesPresented) => {
            log::warn!(
                "listener={listener} peer={peer}: refused: client sent no required SSL certificate (alert certificate_required)"
            );
            "no_certificate"
        }
        Some(rustls::Error::InvalidCertificate(ce)) => {
            log::warn!(
                "listener={listener} peer={peer}: refused client certificate: {ce:?} (alert {:?})",
                rustls::AlertDescription::from(ce.clone())
            );
            certificate_outcome(ce)
        }
        Some(rustls::Error::AlertReceived(a)) => {
            log::info!(
                "listener={listener} peer={peer}: client aborted the TLS handshake with alert {a:?}"
            );
            "client_alert"
        }
        Some(other) => {
            log::info!("listener={listener} peer={peer}: TLS handshake failed: {other}");
            "protocol_error"
        }
        None => {
            log::info!("listener={listener} peer={peer}: TLS handshake failed: {e}");
            "io_error"
        }
    }
}

fn limits(h: &HttpSettings) -> http::Limits {
    http::Limits {
        max_head_bytes: h.max_header_bytes,
        max_headers: h.max_headers,
        max_line_bytes: h.max_header_line_bytes,
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
        match monoio::time::timeout(left, stream.read_buf(buf, limits.max_head_bytes + 1)).await {
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
    w: &Core,
    stream: &mut Stream,
    buf: &mut BytesMut,
    idle: Duration,
) -> bool {
    if !buf.is_empty() {
        return true;
    }
    if w.drain.is_draining() {
        return false;
    }
    let drain = w.drain.wait();
    monoio::select! {
        r = monoio::time::timeout(idle, stream.read_buf(buf, 16 * 1024)) => matches!(r, Ok(Ok(n)) if n > 0),
        _ = drain => false,
    }
}

async fn serve_requests(
    w: &Core,
    st: &State,
    socket: &Socket,
    listener: &Listener,
    stream: &mut Stream,
    info: &ConnInfo,
) {
    let limits = limits(&listener.http);
    // Empty until the first bytes arrive: an idle connection holds no request buffer.
    let mut cbuf = BytesMut::new();
    let mut served: u64 = 0;
    loop {
        if served > 0
            && !wait_next_request(w, stream, &mut cbuf, listener.http.keepalive_timeout).await
        {
            break;
        }
        let started = Instant::now();
        let head = match read_head(stream, &mut cbuf, &limits, listener.http.header_timeout).await {
            Ok(h) => h,
            Err(HeadError::Closed | HeadError::Io) => break,
            Err(HeadError::Timeout) => {
                log::info!(
                    "listener={} peer={}: client timed out sending the request head (408)",
                    listener.name,
                    info.peer
                );
                let _ = stream
                    .write_bytes(bytes::Bytes::from_static(Canned::RequestTimeout.bytes()))
                    .await;
                break;
            }
            Err(HeadError::Bad(e)) => {
                log::info!(
                    "listener={} peer={}: bad request: {} ({})",
                    listener.name,
                    info.peer,
                    e.reason(),
                    e.status()
                );
                let page = e.page();
                let _ = stream
                    .write_bytes(bytes::Bytes::from_static(page.bytes()))
                    .await;
                break;
            }
        };
        // The head gets a buffer of its own (a split, not a copy): the body and any pipelined
        // request stay in `cbuf`, and the head stays readable for the access log.
        let hb = cbuf.split_to(head.head_len.min(cbuf.len())).freeze();
        served += 1;
        let last = served >= listener.http.keepalive_requests || w.drain.is_draining();
        let mut facts = LogFacts {
            started: Some(started),
            server: info.server,
            ..LogFacts::default()
        };
        let result = Box::pin(handle_request(
            st, socket, stream, info, &head, &hb, &mut cbuf, last, served, &mut facts,
        ))
        .await;
        if facts.status == 0 {
            // No response went out: the client went away first (nginx's 499).
            facts.status = 499;
        }
        crate::metrics::with(|m| {
            m.request(facts.status, started.elapsed());
            if let Some(t) = facts.upstream_time {
                m.upstream(t);
            }
        });
        log_request(w, st, info, &head, &hb, served, &facts);
        match result {
            Ok(true) if !last => continue,
            _ => break,
        }
    }
    let _ = stream.shutdown().await;
}

/// Writes the request's access-log line, when its server logs.
fn log_request(
    w: &Core,
    st: &State,
    info: &ConnInfo,
    head: &RequestHead,
    hb: &[u8],
    served: u64,
    facts: &LogFacts,
) {
    let Some(listener) = st.config.listeners.get(facts.server) else {
        return;
    };
    let Some(al) = &listener.access_log else {
        return;
    };
    let raw_path = head.path_and_query.get(hb);
    let path_only = raw_path.split(|&b| b == b'?').next().unwrap_or(raw_path);
    let uri =
        super::route::normalize_path(path_only).unwrap_or(std::borrow::Cow::Borrowed(path_only));
    let host = request_host(listener, head, hb);
    let ctx = RequestCtx {
        conn: info,
        listener,
        maps: &st.config.maps,
        host: &host,
        uri: &uri,
        served,
    };
    let mut vars = ctx.vars(head, hb, b"");
    vars.log = Some(facts);
    w.access_log.append(&al.path, |buf| {
        al.format.render(buf, |v, o| vars.eval(v, o))
    });
}

/// nginx's `$host`: from the request, else the server's first name.
fn request_host<'a>(
    listener: &'a Listener,
    head: &RequestHead,
    hb: &'a [u8],
) -> std::borrow::Cow<'a, [u8]> {
    match head.host_for_nginx(hb) {
        Some(h) => h,
        None => std::borrow::Cow::Borrowed(
            listener
                .server_names
                .first()
                .map_or(&[][..], |s| s.as_bytes()),
        ),
    }
}

/// Handles one request (its head in `hb`, its body at the start of `cbuf`) through nginx's
/// phases: choose the server (Host), server rules, find the location, location rules, access
/// (client certificate, bindings, roles), content (proxy, return, static). Records the outcome
/// in `facts`. Returns Ok(true) when the connection may carry another request.
#[allow(clippy::too_many_arguments)]
async fn handle_request(
    st: &State,
    socket: &Socket,
    stream: &mut Stream,
    info: &ConnInfo,
    head: &RequestHead,
    hb: &bytes::Bytes,
    cbuf: &mut BytesMut,
    last: bool,
    served: u64,
    facts: &mut LogFacts,
) -> Result<bool, ()> {
    let config = &st.config;
    let handshake_listener = config.listeners.get(info.server).ok_or(())?;
    let raw_path = head.path_and_query.get(hb);
    let path_only = raw_path.split(|&b| b == b'?').next().unwrap_or(raw_path);
    let uri = match super::route::normalize_path(path_only) {
        Ok(u) => u,
        Err(e) => {
            log::info!(
                "listener={} peer={}: bad request path ({e:?}) (400)",
                handshake_listener.name,
                info.peer
            );
            return respond_canned(stream, Canned::BadRequest, facts).await;
        }
    };
    // The server for this request: by Host among the servers on the address.
    let server = if socket.hosts.is_shared() {
        socket.hosts.select(head.host_for_nginx(hb).as_deref())
    } else {
        info.server
    };
    facts.server = server;
    let listener = config.listeners.get(server).ok_or(())?;
    let host = request_host(listener, head, hb);
    if let Some(why) = misdirected(socket, handshake_listener, listener, info, head, hb) {
        log::info!(
            "listener={} peer={}: {why}; asked for host \"{}\" (421)",
            handshake_listener.name,
            info.peer,
            String::from_utf8_lossy(&host)
        );
        facts.decision = format!("deny: {why}").into();
        return respond_canned(stream, Canned::MisdirectedRequest, facts).await;
    }
    let ctx = RequestCtx {
        conn: info,
        listener,
        maps: &config.maps,
        host: &host,
        uri: &uri,
        served,
    };
    // Server-level rules (nginx's server rewrite phase).
    if let Some(rule) = first_rule(&listener.rules, &ctx, head, hb) {
        facts.decision = format!("rule: return {}", rule.status).into();
        let body = rule.body.as_ref();
        return respond_rule(stream, &ctx, head, hb, rule.status, body, last, facts).await;
    }
    let Some(location) = super::route::find_location(&listener.locations, &uri) else {
        return respond_canned(stream, Canned::NotFound, facts).await;
    };
    // Location rules (the location's rewrite phase), then access.
    if let Some(rule) = first_rule(&location.rules, &ctx, head, hb) {
        facts.decision = format!("rule: return {}", rule.status).into();
        let body = rule.body.as_ref();
        return respond_rule(stream, &ctx, head, hb, rule.status, body, last, facts).await;
    }
    if let Err(denial) = super::authorize::check(listener, location, info) {
        log::warn!(
            "listener={} peer={}: {} {} denied ({}): {}",
            listener.name,
            info.peer,
            String::from_utf8_lossy(head.method_span.get(hb)),
            String::from_utf8_lossy(head.target.get(hb)),
            denial.status,
            denial.reason
        );
        facts.decision = format!("deny: {}", denial.reason).into();
        return respond_canned(stream, denial.page, facts).await;
    }
    facts.decision = match &info.role {
        Some(r) => format!("allow role={r}").into(),
        None => "allow".into(),
    };
    match &location.action {
        Action::Return { status, body } => {
            respond_rule(stream, &ctx, head, hb, *status, body.as_ref(), last, facts).await
        }
        Action::Proxy(pp) => {
            super::forward::proxy(st, &ctx, stream, head, hb, cbuf, location, pp, last, facts).await
        }
        Action::Static(root) => {
            let keep = !last && head.keep_alive;
            let types = &config.static_types;
            super::static_files::serve(stream, head, hb, root, &uri, types, keep, facts).await
        }
        Action::Rules => respond_canned(stream, Canned::NotFound, facts).await,
    }
}

/// The first rule whose condition holds (or that has none).
fn first_rule<'r>(
    rules: &'r [Rule],
    ctx: &RequestCtx<'_>,
    head: &RequestHead,
    buf: &[u8],
) -> Option<&'r Rule> {
    if rules.is_empty() {
        return None;
    }
    let vars = ctx.vars(head, buf, b"");
    rules
        .iter()
        .find(|r| r.condition.as_ref().is_none_or(|c| c.eval(&vars)))
}

/// Answers with nginx's `return`: the body rendered with the request's variables.
#[allow(clippy::too_many_arguments)]
async fn respond_rule(
    stream: &mut Stream,
    ctx: &RequestCtx<'_>,
    head: &RequestHead,
    hb: &[u8],
    status: u16,
    body: Option<&crate::vars::Template>,
    last: bool,
    facts: &mut LogFacts,
) -> Result<bool, ()> {
    let mut text = Vec::new();
    if let Some(b) = body {
        ctx.vars(head, hb, b"").render(b, &mut text);
    }
    let keep = !last && head.keep_alive && head.framing == http::BodyFraming::None;
    let mut out = BytesMut::with_capacity(512 + text.len());
    let body_len = write_return(&mut out, status, &text, keep);
    facts.status = status;
    facts.bytes = out.len() as u64;
    facts.body_bytes = body_len as u64;
    let (res, _) = stream.write_owned(out).await;
    res.map_err(|_| ())?;
    Ok(keep)
}

/// Domain fronting past client verification gets 421 Misdirected Request:
/// - nginx's rule: when several servers share the address and the client's SNI named one of
///   them, a request whose host is another name gets 421 if the server that host selects (or
///   the default one) verifies client certificates. One server on the address, or an SNI that
///   names none, is never checked: there was nothing else the handshake could have chosen;
/// - ringgate's own: when the Host selects a different server than the handshake did, and the
///   two ask for client certificates differently, the request would escape the TLS policy it
///   came through (nginx would apply the other server's verification to a handshake that was
///   not made for it).
///
/// Returns why, on a mismatch.
fn misdirected(
    socket: &Socket,
    handshake: &Listener,
    chosen: &Listener,
    info: &ConnInfo,
    head: &RequestHead,
    buf: &[u8],
) -> Option<String> {
    let hs_tls = handshake.tls.as_ref()?;
    if !std::ptr::eq(handshake, chosen) {
        if let Some(c) = chosen.tls.as_ref() {
            let differs = c.mode != hs_tls.mode
                || (c.mode != ClientAuthMode::Off
                    && !Arc::ptr_eq(c.client_auth(), hs_tls.client_auth()));
            if differs {
                return Some(format!(
                    "the TLS handshake was made for server `{}`, whose client-certificate policy differs from server `{}`",
                    handshake.name, chosen.name
                ));
            }
        }
    }
    if !socket.hosts.is_shared() || chosen.verify_client == ClientAuthMode::Off {
        return None;
    }
    let sni = info.tls.as_ref()?.server_name.as_deref()?;
    socket.hosts.find(Some(sni.as_bytes()))?;
    let host = head.host_for_nginx(buf)?;
    (!host.eq_ignore_ascii_case(sni.as_bytes())).then(|| {
        format!(
            "client attempted to request the server name different from the one that was negotiated (\"{sni}\", server `{}` verifies client certificates)",
            chosen.name
        )
    })
}

/// Sends a canned page; the connection always closes after it (the pages say `Connection: close`).
pub(super) async fn respond_canned(
    stream: &mut Stream,
    page: Canned,
    facts: &mut LogFacts,
) -> Result<bool, ()> {
    facts.canned(page);
    let _ = stream
        .write_bytes(bytes::Bytes::from_static(page.bytes()))
        .await;
    // Canned pages carry `Connection: close`; any request body is left unread.
    Err(())
}

/// The response to nginx's `return`: a redirect with Location for 301/302/303/307/308, the
/// text as body for other codes with text, or the standard page.
fn write_return(out: &mut BytesMut, status: u16, text: &[u8], keep_alive: bool) -> usize {
    use bytes::BufMut;
    let reason = http::reason_phrase(status);
    let is_redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
    if is_redirect || text.is_empty() {
        let body = if status >= 300 {
            http::canned::error_page(status, reason)
        } else {
            Vec::new()
        };
        out.put_slice(format!("HTTP/1.1 {status} {reason}\r\nServer: ringgate\r\n").as_bytes());
        if is_redirect {
            out.put_slice(b"Location: ");
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        out.put_slice(
            format!(
                "Content-Type: text/html\r\nContent-Length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.put_slice(if keep_alive {
            b"\r\n".as_slice()
        } else {
            b"Connection: close\r\n\r\n".as_slice()
        });
        out.put_slice(&body);
        body.len()
    } else {
        http::canned::write_response(out, status, reason, b"text/plain", text, keep_alive);
        text.len()
    }
}
