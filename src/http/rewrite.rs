//! Builds the heads the proxy writes: the request sent upstream (like
//! nginx's `proxy_pass` with `proxy_set_header`) and the response sent back
//! to the client. Bodies are not touched; framing headers are kept as
//! received because the body bytes are passed through verbatim.

use bytes::{BufMut, BytesMut};

use super::canned::reason_phrase;
use super::{comma_list, is_field_vchar, is_tchar, HeaderSpan, RequestHead, ResponseHead};

/// Response headers nginx's proxy module hides by default
/// (`proxy_hide_header` defaults); pass as `hide_headers` to mimic it.
pub const NGINX_HIDDEN_RESPONSE_HEADERS: &[&[u8]] = &[
    b"date",
    b"server",
    b"x-pad",
    b"x-accel-expires",
    b"x-accel-redirect",
    b"x-accel-limit-rate",
    b"x-accel-buffering",
    b"x-accel-charset",
];

/// Hop-by-hop fields (RFC 9110 §7.6.1) never forwarded in either direction.
const HOP_BY_HOP: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"upgrade",
];

/// Fields a `Connection` header may not make us drop: framing and Host are
/// required for the body pass-through and routing to stay correct.
const PROTECTED: &[&[u8]] = &[b"content-length", b"transfer-encoding", b"host"];

/// Inputs for [`write_upstream_request`], already resolved by the caller.
#[derive(Clone, Copy)]
pub struct UpstreamRequestParams<'a> {
    /// Request target to send (the caller has mapped the URI already).
    pub target: &'a [u8],
    /// Host header value to send (e.g. `$host` or `$proxy_host`).
    pub host: &'a [u8],
    /// Client address to append, as `$proxy_add_x_forwarded_for`;
    /// `None` passes any client X-Forwarded-For through unchanged.
    pub x_forwarded_for: Option<&'a [u8]>,
    /// X-Forwarded-Proto value replacing the client's; `None` passes it through.
    pub x_forwarded_proto: Option<&'a [u8]>,
    /// `proxy_set_header` pairs: replace same-named client headers
    /// (case-insensitively); an empty value removes the header. Entries for
    /// Host, Connection, Content-Length and Transfer-Encoding are ignored
    /// because those are controlled by the proxy.
    pub set_headers: &'a [(&'a [u8], &'a [u8])],
    /// Lowercase names of client headers to strip (e.g. identity headers
    /// the proxy sets itself from the client certificate).
    pub remove_headers: &'a [&'a [u8]],
    /// `true`: pooled upstream connection, send no Connection header
    /// (HTTP/1.1 default keep-alive); `false`: send `Connection: close`.
    pub keep_alive_upstream: bool,
    /// The `Upgrade` value to forward (see [`super::upgrade::requested`]), sent with
    /// `Connection: upgrade`; `None` drops the client's `Upgrade` as hop-by-hop.
    pub upgrade: Option<&'a [u8]>,
}

/// Inputs for [`write_client_response`].
#[derive(Clone, Copy)]
pub struct ClientResponseParams<'a> {
    /// Whether the client connection stays open after this response.
    pub keep_alive: bool,
    /// The client's HTTP minor version (0 gets an explicit keep-alive).
    pub client_version_minor: u8,
    /// Replace framing with `Transfer-Encoding: chunked` because the caller
    /// re-chunks an `UntilClose` upstream body for an HTTP/1.1 client.
    pub rechunk: bool,
    /// Drop framing headers because the caller de-chunks a chunked upstream body for an
    /// HTTP/1.0 client and ends it by closing the connection.
    pub dechunk: bool,
    /// Lowercase names of upstream headers to drop
    /// (see [`NGINX_HIDDEN_RESPONSE_HEADERS`]).
    pub hide_headers: &'a [&'a [u8]],
    /// Headers appended by the proxy (e.g. `Server`, `Date`).
    pub add_headers: &'a [(&'a [u8], &'a [u8])],
    /// A `101` that switches the connection: its `Upgrade` value, sent on with
    /// `Connection: upgrade` (both are hop-by-hop, so they are written anew, not passed).
    pub upgrade: Option<&'a [u8]>,
}

/// Writes the head to send upstream: `METHOD target HTTP/1.1`, Host, the
/// client's end-to-end headers in order with their original casing, the
/// configured headers, X-Forwarded-*, and `Connection: close` if not pooling.
pub fn write_upstream_request(
    out: &mut BytesMut,
    req: &RequestHead,
    buf: &[u8],
    params: &UpstreamRequestParams<'_>,
) {
    out.reserve(req.head_len + params.target.len() + 128);
    out.put_slice(req.method_span.get(buf));
    out.put_u8(b' ');
    out.put_slice(params.target);
    out.put_slice(b" HTTP/1.1\r\n");
    put_header(out, b"Host", params.host);
    let set_has = |name: &[u8]| {
        params
            .set_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let xff = params
        .x_forwarded_for
        .filter(|_| !set_has(b"x-forwarded-for"));
    let xfp = params
        .x_forwarded_proto
        .filter(|_| !set_has(b"x-forwarded-proto"));
    for h in &req.headers {
        let name = h.name.get(buf);
        let drop = is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"host")
            || name.eq_ignore_ascii_case(b"expect")
            // A `set_header` never replaces framing: the body is streamed as the client
            // framed it, so its Content-Length or Transfer-Encoding must go with it.
            || (set_has(name) && !in_list(PROTECTED, name))
            || in_list(params.remove_headers, name)
            || is_identity_header(name)
            || name.contains(&b'_')
            || (xff.is_some() && name.eq_ignore_ascii_case(b"x-forwarded-for"))
            || (xfp.is_some() && name.eq_ignore_ascii_case(b"x-forwarded-proto"))
            || listed_in_connection(&req.headers, buf, name);
        if !drop {
            put_header(out, name, h.value.get(buf));
        }
    }
    put_set_headers(out, params.set_headers);
    if let Some(addr) = xff {
        put_x_forwarded_for(out, &req.headers, buf, addr);
    }
    if let Some(proto) = xfp {
        put_header(out, b"X-Forwarded-Proto", proto);
    }
    if let Some(protocols) = params.upgrade {
        put_header(out, b"Upgrade", protocols);
        put_header(out, b"Connection", b"upgrade");
    } else if !params.keep_alive_upstream {
        put_header(out, b"Connection", b"close");
    }
    out.put_slice(b"\r\n");
}

/// Writes the head sent back to the client: `HTTP/1.1 code reason`, the
/// upstream's end-to-end headers, framing as received (or chunked when
/// re-chunking), added headers and the Connection header our side needs.
pub fn write_client_response(
    out: &mut BytesMut,
    resp: &ResponseHead,
    buf: &[u8],
    params: &ClientResponseParams<'_>,
) {
    out.reserve(resp.head_len + 64);
    put_status_line(out, resp.status, resp.reason.get(buf));
    for h in &resp.headers {
        let name = h.name.get(buf);
        let framing = name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding");
        let drop = is_hop_by_hop(name)
            || in_list(params.hide_headers, name)
            || ((params.rechunk || params.dechunk) && framing)
            || listed_in_connection(&resp.headers, buf, name);
        if !drop {
            put_header(out, name, h.value.get(buf));
        }
    }
    for (name, value) in params.add_headers {
        if is_safe_header(name, value) {
            put_header(out, name, value);
        }
    }
    if params.rechunk {
        put_header(out, b"Transfer-Encoding", b"chunked");
    }
    if let Some(protocols) = params.upgrade {
        put_header(out, b"Upgrade", protocols);
        put_header(out, b"Connection", b"upgrade");
    } else if !params.keep_alive {
        put_header(out, b"Connection", b"close");
    } else if params.client_version_minor == 0 {
        put_header(out, b"Connection", b"keep-alive");
    }
    out.put_slice(b"\r\n");
}

/// `HTTP/1.1 <code> <reason>`; falls back to our phrase when the upstream
/// sent none.
fn put_status_line(out: &mut BytesMut, status: u16, reason: &[u8]) {
    out.put_slice(b"HTTP/1.1 ");
    let code = status.min(999);
    out.put_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        b' ',
    ]);
    if reason.is_empty() {
        out.put_slice(reason_phrase(status).as_bytes());
    } else {
        out.put_slice(reason);
    }
    out.put_slice(b"\r\n");
}

/// Writes `name: value\r\n`.
fn put_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Writes the configured headers that have a value and are ours to set. `Upgrade` is never
/// one of them: a protocol switch is forwarded only by a location's `upgrade` list
/// ([`UpstreamRequestParams::upgrade`]), never by a header template that could name `h2c`.
fn put_set_headers(out: &mut BytesMut, set: &[(&[u8], &[u8])]) {
    const RESERVED: &[&[u8]] = &[
        b"host",
        b"connection",
        b"content-length",
        b"transfer-encoding",
        b"upgrade",
    ];
    for (name, value) in set {
        if value.is_empty() || in_list(RESERVED, name) {
            continue;
        }
        if is_safe_header(name, value) {
            put_header(out, name, value);
        }
    }
}

/// `$proxy_add_x_forwarded_for`: client XFF values joined by ", ", then
/// the client address.
fn put_x_forwarded_for(out: &mut BytesMut, headers: &[HeaderSpan], buf: &[u8], addr: &[u8]) {
    out.put_slice(b"X-Forwarded-For: ");
    for h in headers {
        if h.name.get(buf).eq_ignore_ascii_case(b"x-forwarded-for") {
            out.put_slice(h.value.get(buf));
            out.put_slice(b", ");
        }
    }
    out.put_slice(addr);
    out.put_slice(b"\r\n");
}

/// Refuses configured headers that would inject lines (defence in depth:
/// configuration should already be validated).
fn is_safe_header(name: &[u8], value: &[u8]) -> bool {
    let ok = !name.is_empty()
        && name.iter().copied().all(is_tchar)
        && value.iter().copied().all(is_field_vchar);
    if !ok {
        log::warn!(
            "dropping unsafe configured header {:?}",
            String::from_utf8_lossy(name)
        );
    }
    ok
}

/// Whether `name` is a fixed hop-by-hop field.
fn is_hop_by_hop(name: &[u8]) -> bool {
    in_list(HOP_BY_HOP, name)
}

/// Case-insensitive membership test against lowercase names.
/// Name prefixes of the identity headers ringgate sets from the client certificate (the
/// nginx-style `X-SSL-Client-*`, the enterprise mTLS guide's `X-Client-Role`, Envoy's XFCC, RFC 9440's
/// `Client-Cert`/`Client-Cert-Chain`).
const IDENTITY_PREFIXES: &[&[u8]] = &[
    b"x-ssl-client",
    b"ssl-client",
    b"x-client-cert",
    b"x-client-role",
    b"x-client-dn",
    b"x-client-verify",
    b"x-forwarded-client-cert",
    b"client-cert",
];

/// True for a header the client must never be able to send upstream itself: any spelling of
/// an identity header. The app behind ringgate can trust these because only ringgate sets
/// them (a configured `set_header` adds its own value after this filter). Names with `_` are
/// dropped separately (as nginx's default `underscores_in_headers off` ignores them), so
/// `X_SSL_Client_DN` cannot reach an app that maps `_` to `-`.
pub fn is_identity_header(name: &[u8]) -> bool {
    IDENTITY_PREFIXES
        .iter()
        .any(|p| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p))
}

fn in_list(list: &[&[u8]], name: &[u8]) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// RFC 9110 §7.6.1: fields named in `Connection` are hop-by-hop, except the
/// ones we must keep for framing and routing.
fn listed_in_connection(headers: &[HeaderSpan], buf: &[u8], name: &[u8]) -> bool {
    if in_list(PROTECTED, name) {
        return false;
    }
    headers
        .iter()
        .filter(|h| h.name.get(buf).eq_ignore_ascii_case(b"connection"))
        .any(|h| comma_list(h.value.get(buf)).any(|t| t.eq_ignore_ascii_case(name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_request, parse_response, Limits};

    fn req(buf: &[u8]) -> RequestHead {
        parse_request(buf, &Limits::default()).unwrap().unwrap()
    }

    fn params<'a>() -> UpstreamRequestParams<'a> {
        UpstreamRequestParams {
            target: b"/up",
            host: b"backend",
            x_forwarded_for: None,
            x_forwarded_proto: None,
            set_headers: &[],
            remove_headers: &[],
            keep_alive_upstream: true,
            upgrade: None,
        }
    }

    fn upstream(buf: &[u8], p: &UpstreamRequestParams<'_>) -> String {
        let mut out = BytesMut::new();
        write_upstream_request(&mut out, &req(buf), buf, p);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn request_hop_by_hop_dropped() {
        let buf = b"POST /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret, Content-Length\r\n\
Keep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nX-Secret: s\r\n\
Expect: 100-continue\r\nUser-Agent: curl\r\nContent-Length: 3\r\nTrailer: X\r\nProxy-Authorization: b\r\n\r\n";
        let got = upstream(buf, &params());
        assert_eq!(
            got,
            "POST /up HTTP/1.1\r\nHost: backend\r\nUser-Agent: curl\r\nContent-Length: 3\r\n\
Trailer: X\r\nProxy-Authorization: b\r\n\r\n"
        );
    }

    #[test]
    fn set_header_never_removes_the_body_framing() {
        let set: &[(&[u8], &[u8])] = &[(b"Content-Length", b""), (b"Transfer-Encoding", b"x")];
        let p = UpstreamRequestParams {
            set_headers: set,
            ..params()
        };
        let got = upstream(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
            &p,
        );
        assert!(got.contains("\r\nContent-Length: 3\r\n"), "{got}");
        let got = upstream(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            &p,
        );
        assert!(got.contains("\r\nTransfer-Encoding: chunked\r\n"), "{got}");
        assert!(!got.contains(": x\r\n"), "{got}");
    }

    #[test]
    fn upgrade_is_never_forwarded_not_even_when_configured() {
        let set: &[(&[u8], &[u8])] = &[(b"Upgrade", b"websocket"), (b"Connection", b"upgrade")];
        let p = UpstreamRequestParams {
            set_headers: set,
            ..params()
        };
        let got = upstream(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            &p,
        );
        assert_eq!(got, "GET /up HTTP/1.1\r\nHost: backend\r\n\r\n");
    }

    #[test]
    fn a_requested_upgrade_is_sent_with_connection_upgrade_and_no_close() {
        let p = UpstreamRequestParams {
            upgrade: Some(b"websocket"),
            keep_alive_upstream: false,
            ..params()
        };
        let got = upstream(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n\r\n",
            &p,
        );
        assert_eq!(
            got,
            "GET /up HTTP/1.1\r\nHost: backend\r\nSec-WebSocket-Key: k\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        );
    }

    #[test]
    fn a_switching_response_keeps_its_upgrade() {
        let p = ClientResponseParams {
            upgrade: Some(b"websocket"),
            ..cparams()
        };
        let got = client(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            false,
            &p,
        );
        assert_eq!(
            got,
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        );
    }

    #[test]
    fn request_http10_is_upgraded_and_close_sent() {
        let buf = b"GET /x HTTP/1.0\r\nX-A: 1\r\n\r\n";
        let p = UpstreamRequestParams {
            keep_alive_upstream: false,
            ..params()
        };
        assert_eq!(
            upstream(buf, &p),
            "GET /up HTTP/1.1\r\nHost: backend\r\nX-A: 1\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn request_x_forwarded() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\n\
X-Forwarded-Proto: http\r\nChunky: yes\r\n\r\n";
        let p = UpstreamRequestParams {
            x_forwarded_for: Some(b"9.9.9.9"),
            x_forwarded_proto: Some(b"https"),
            ..params()
        };
        assert_eq!(
            upstream(buf, &p),
            "GET /up HTTP/1.1\r\nHost: backend\r\nChunky: yes\r\n\
X-Forwarded-For: 1.1.1.1, 2.2.2.2, 9.9.9.9\r\nX-Forwarded-Proto: https\r\n\r\n"
        );
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let got = upstream(buf, &p);
        assert!(got.contains("\r\nX-Forwarded-For: 9.9.9.9\r\n"), "{got}");
        let got = upstream(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n",
            &params(),
        );
        assert!(got.contains("\r\nX-Forwarded-For: 1.1.1.1\r\n"), "{got}");
    }

    #[test]
    fn request_set_and_remove() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\nX-Client-Cert: forged\r\nX-Real-IP: 6.6.6.6\r\n\
Accept: */*\r\nX-Drop: 1\r\nX-SSL-Subject: forged\r\nTransfer-Encoding: chunked\r\n\r\n";
        let set: &[(&[u8], &[u8])] = &[
            (b"X-Real-IP", b"10.0.0.1"),
            (b"X-Drop", b""),
            (b"Host", b"evil"),
            (b"X-Bad", b"a\r\nInjected: 1"),
            (b"X-Forwarded-For", b"fixed"),
        ];
        let p = UpstreamRequestParams {
            set_headers: set,
            remove_headers: &[b"x-client-cert", b"x-ssl-subject"],
            x_forwarded_for: Some(b"1.2.3.4"),
            ..params()
        };
        assert_eq!(
            upstream(buf, &p),
            "GET /up HTTP/1.1\r\nHost: backend\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\n\
X-Real-IP: 10.0.0.1\r\nX-Forwarded-For: fixed\r\n\r\n"
        );
    }

    fn client(buf: &[u8], head: bool, p: &ClientResponseParams<'_>) -> String {
        let resp = parse_response(buf, head, &Limits::default())
            .unwrap()
            .unwrap();
        let mut out = BytesMut::new();
        write_client_response(&mut out, &resp, buf, p);
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn cparams<'a>() -> ClientResponseParams<'a> {
        ClientResponseParams {
            keep_alive: true,
            client_version_minor: 1,
            rechunk: false,
            dechunk: false,
            hide_headers: &[],
            add_headers: &[],
            upgrade: None,
        }
    }

    #[test]
    fn response_basic() {
        let buf = b"HTTP/1.0 200 Fine\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: t=5\r\n\
Content-Length: 2\r\nServer: up\r\nSet-Cookie: a=b\r\n\r\nok";
        let p = ClientResponseParams {
            hide_headers: NGINX_HIDDEN_RESPONSE_HEADERS,
            add_headers: &[(b"Server", b"ringgate")],
            ..cparams()
        };
        assert_eq!(
            client(buf, false, &p),
            "HTTP/1.1 200 Fine\r\nContent-Length: 2\r\nSet-Cookie: a=b\r\nServer: ringgate\r\n\r\n"
        );
    }

    #[test]
    fn request_identity_headers_from_the_client_never_pass() {
        let buf = b"GET / HTTP/1.1\r\nHost: h\r\nx-ssl-client-dn: forged\r\nX-SSL-CLIENT-VERIFY: SUCCESS\r\n\
X_SSL_Client_DN: forged\r\nX-Client-Role: admin\r\nx-forwarded-client-cert: By=x\r\nClient-Cert: :abc=:\r\n\
Client-Cert-Chain: :abc=:\r\nX-Client-Id: 7\r\nX-SSL-Client-DN: forged-again\r\n\r\n";
        let set: &[(&[u8], &[u8])] = &[(b"X-SSL-Client-DN", b"CN=real")];
        let out = upstream(
            buf,
            &UpstreamRequestParams {
                set_headers: set,
                ..params()
            },
        );
        for forged in ["forged", "SUCCESS", "admin", "By=x", ":abc=:"] {
            assert!(!out.contains(forged), "{forged} passed: {out}");
        }
        assert!(out.contains("X-SSL-Client-DN: CN=real\r\n"), "{out}");
        assert!(out.contains("X-Client-Id: 7\r\n"), "{out}");
    }

    #[test]
    fn response_dechunked_for_http10_loses_its_framing() {
        let buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n";
        let p = ClientResponseParams {
            dechunk: true,
            keep_alive: false,
            client_version_minor: 0,
            ..cparams()
        };
        assert_eq!(
            client(buf, false, &p),
            "HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn response_connection_and_rechunk() {
        let buf = b"HTTP/1.1 404 \r\nContent-Type: text/plain\r\n\r\n";
        let p = ClientResponseParams {
            rechunk: true,
            dechunk: false,
            ..cparams()
        };
        assert_eq!(
            client(buf, false, &p),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let p = ClientResponseParams {
            keep_alive: false,
            ..cparams()
        };
        let got = client(b"HTTP/1.1 204 No Content\r\n\r\n", false, &p);
        assert_eq!(got, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        let p = ClientResponseParams {
            client_version_minor: 0,
            ..cparams()
        };
        let got = client(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, &p);
        assert_eq!(
            got,
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn response_keeps_chunked_framing() {
        let buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n";
        let got = client(buf, false, &cparams());
        assert_eq!(got, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    }
}
