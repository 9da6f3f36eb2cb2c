//! One client connection from accept to close:
//! handshake -> identify -> (per request) read head -> route -> forward -> relay response.
//!
//! The request path is plain `async fn`s in this module and [`forward`]; every failure becomes
//! an exact status code and one log line.

pub mod body;
pub mod context;
pub mod forward;
pub mod route;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::net::TcpStream;
use rustls::ServerConnection;

use crate::config::{Action, HttpSettings, Listener};
use crate::conn::Stream;
use crate::http::{self, Canned, RequestError, RequestHead};
use crate::identity::Identity;
use crate::runtime::worker::Worker;
use crate::tls::client_auth::{ClientAuthMode, ClientVerifyOutcome, FailureMode};
use crate::tls::stream::TlsStream;
use context::{ConnInfo, RequestVars, TlsInfo};

/// Serves one accepted connection until it closes.
pub async fn serve(w: Rc<Worker>, li: usize, tcp: TcpStream, peer: SocketAddr) {
    let _active = w.drain.track();
    let Some(listener) = w.config.listeners.get(li) else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().unwrap_or(listener.addr);
    let (mut stream, tls, refusal) = match w.tls.get(li).and_then(Option::as_ref) {
        None => (Stream::Plain(tcp), None, None),
        Some(cfg) => match handshake(listener, cfg, tcp, peer).await {
            Some((s, info, refusal)) => (Stream::ServerTls(Box::new(s)), Some(info), refusal),
            None => return,
        },
    };
    let info = ConnInfo {
        peer,
        peer_ip: peer.ip().to_string(),
        local,
        tls,
    };
    if let Some(page) = refusal {
        // nginx-compatible mode: the handshake completed, the first request gets the 400 page.
        let mut buf = BytesMut::with_capacity(4096);
        let _ = monoio::time::timeout(
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
        let _ = stream.shutdown().await;
        return;
    }
    serve_requests(&w, listener, &mut stream, &info).await;
}

/// Runs the TLS handshake and settles the client certificate. Returns None when the
/// connection is refused or lost (already logged), else the stream, its TLS facts and, in
/// nginx-compatible mode, the 400 page owed to a refused client.
async fn handshake(
    listener: &Listener,
    cfg: &std::sync::Arc<rustls::ServerConfig>,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<(TlsStream<ServerConnection>, TlsInfo, Option<Canned>)> {
    let conn = match ServerConnection::new(cfg.clone()) {
        Ok(c) => c,
        Err(e) => {
            log::error!(
                "listener={} peer={peer}: cannot start TLS: {e}",
                listener.name
            );
            return None;
        }
    };
    let mut tls = TlsStream::new(tcp, conn);
    match monoio::time::timeout(listener.http.header_timeout, tls.handshake()).await {
        Err(_) => {
            log::info!(
                "listener={} peer={peer}: TLS handshake timed out after {:?}",
                listener.name,
                listener.http.header_timeout
            );
            return None;
        }
        Ok(Err(e)) => {
            log_handshake_failure(&listener.name, peer, &e);
            return None;
        }
        Ok(Ok(())) => {}
    }
    let mut info = TlsInfo::from_connection(tls.conn());
    let server_tls = listener.tls.as_ref()?;
    let mut refusal = None;
    if server_tls.mode != ClientAuthMode::Off {
        let chain = tls.conn().peer_certificates().unwrap_or(&[]);
        let outcome = server_tls
            .client_auth()
            .outcome(chain, rustls_pki_types::UnixTime::now());
        info.verify = outcome.nginx_value().into_owned();
        info.identity = chain.first().and_then(|c| Identity::from_der(c));
        match &outcome {
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
            let _ = tls.shutdown().await;
            return None;
        }
    }
    Some((tls, info, refusal))
}

fn log_handshake_failure(listener: &str, peer: SocketAddr, e: &std::io::Error) {
    let rustls_err = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_err {
        Some(rustls::Error::NoCertificatesPresented) => log::warn!(
            "listener={listener} peer={peer}: refused: client sent no required SSL certificate (alert certificate_required)"
        ),
        Some(rustls::Error::InvalidCertificate(ce)) => log::warn!(
            "listener={listener} peer={peer}: refused client certificate: {ce:?} (alert {:?})",
            rustls::AlertDescription::from(ce.clone())
        ),
        Some(rustls::Error::AlertReceived(a)) => log::info!(
            "listener={listener} peer={peer}: client aborted the TLS handshake with alert {a:?}"
        ),
        Some(other) => log::info!("listener={listener} peer={peer}: TLS handshake failed: {other}"),
        None => log::info!("listener={listener} peer={peer}: TLS handshake failed: {e}"),
    }
}

fn limits(h: &HttpSettings) -> http::Limits {
    http::Limits {
        max_head_bytes: h.max_header_bytes,
        max_headers: h.max_headers,
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
    w: &Worker,
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

async fn serve_requests(w: &Worker, listener: &Listener, stream: &mut Stream, info: &ConnInfo) {
    let limits = limits(&listener.http);
    let mut cbuf = BytesMut::with_capacity(16 * 1024);
    let mut served: u64 = 0;
    loop {
        if served > 0
            && !wait_next_request(w, stream, &mut cbuf, listener.http.keepalive_timeout).await
        {
            break;
        }
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
                let page = Canned::for_status(e.status()).unwrap_or(Canned::BadRequest);
                let _ = stream
                    .write_bytes(bytes::Bytes::from_static(page.bytes()))
                    .await;
                break;
            }
        };
        served += 1;
        let last = served >= listener.http.keepalive_requests || w.drain.is_draining();
        match handle_request(w, listener, stream, info, head, &mut cbuf, last).await {
            Ok(true) if !last => continue,
            _ => break,
        }
    }
    let _ = stream.shutdown().await;
}

/// Handles one request whose head is at the start of `cbuf`. Returns Ok(true) when the
/// connection may carry another request.
async fn handle_request(
    w: &Worker,
    listener: &Listener,
    stream: &mut Stream,
    info: &ConnInfo,
    head: RequestHead,
    cbuf: &mut BytesMut,
    last: bool,
) -> Result<bool, ()> {
    let raw_path = head.path_and_query.get(cbuf);
    let path_only = raw_path.split(|&b| b == b'?').next().unwrap_or(raw_path);
    let uri = match route::normalize_path(path_only) {
        Ok(u) => u,
        Err(e) => {
            log::info!(
                "listener={} peer={}: bad request path ({e:?}) (400)",
                listener.name,
                info.peer
            );
            let _ = stream
                .write_bytes(bytes::Bytes::from_static(Canned::BadRequest.bytes()))
                .await;
            return Err(());
        }
    };
    let host: Vec<u8> = match head.host_for_nginx(cbuf) {
        Some(h) => h.into_owned(),
        None => listener
            .server_names
            .first()
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default(),
    };
    if let Some(sni) = misdirected(listener, info, &head, cbuf) {
        log::info!(
            "listener={} peer={}: client verified for server name \"{sni}\" asked for host \"{}\" (421)",
            listener.name,
            info.peer,
            String::from_utf8_lossy(&host)
        );
        return respond_canned(stream, &head, cbuf, Canned::MisdirectedRequest).await;
    }
    let Some(location) = route::find_location(&listener.locations, &uri) else {
        return respond_canned(stream, &head, cbuf, Canned::NotFound).await;
    };
    match &location.action {
        Action::Return { status, body } => {
            let vars = RequestVars {
                conn: info,
                head: &head,
                buf: cbuf,
                host: &host,
                uri: &uri,
                proxy_host: b"",
            };
            let mut text = Vec::new();
            if let Some(b) = body {
                vars.render(b, &mut text);
            }
            let keep = !last && head.keep_alive && head.framing == http::BodyFraming::None;
            let mut out = BytesMut::with_capacity(512 + text.len());
            write_return(&mut out, *status, &text, keep);
            cbuf.advance_head(head.head_len);
            let (res, _) = stream.write_owned(out).await;
            res.map_err(|_| ())?;
            Ok(keep)
        }
        Action::Proxy(pp) => {
            forward::proxy(
                w, listener, stream, info, head, cbuf, location, pp, &host, &uri, last,
            )
            .await
        }
    }
}

/// nginx's rule against domain fronting: when client certificates are verified and the
/// client's SNI named one of this listener's `server_names`, the request's host must be that
/// name (else 421). As in nginx, an SNI that names no configured server is not checked.
/// Returns the SNI on a mismatch.
fn misdirected<'a>(
    listener: &Listener,
    info: &'a ConnInfo,
    head: &RequestHead,
    buf: &[u8],
) -> Option<&'a str> {
    let tls = listener.tls.as_ref()?;
    if tls.mode == ClientAuthMode::Off {
        return None;
    }
    let sni = info.tls.as_ref()?.server_name.as_deref()?;
    if !listener
        .server_names
        .iter()
        .any(|n| n.eq_ignore_ascii_case(sni))
    {
        return None;
    }
    let host = head.host_for_nginx(buf)?;
    (!host.eq_ignore_ascii_case(sni.as_bytes())).then_some(sni)
}

/// Sends a canned page; the connection always closes after it (the pages say `Connection: close`).
async fn respond_canned(
    stream: &mut Stream,
    head: &RequestHead,
    cbuf: &mut BytesMut,
    page: Canned,
) -> Result<bool, ()> {
    cbuf.advance_head(head.head_len);
    let _ = stream
        .write_bytes(bytes::Bytes::from_static(page.bytes()))
        .await;
    // Canned pages carry `Connection: close`; any request body is left unread.
    Err(())
}

/// The response to nginx's `return`: a redirect with Location for 301/302/303/307/308, the
/// text as body for other codes with text, or the standard page.
fn write_return(out: &mut BytesMut, status: u16, text: &[u8], keep_alive: bool) {
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
    } else {
        http::canned::write_response(out, status, reason, b"text/plain", text, keep_alive);
    }
}

/// Drops a consumed head from the front of the client buffer.
trait AdvanceHead {
    fn advance_head(&mut self, n: usize);
}

impl AdvanceHead for BytesMut {
    fn advance_head(&mut self, n: usize) {
        let n = n.min(self.len());
        let _ = self.split_to(n);
    }
}
