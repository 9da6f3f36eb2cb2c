//! When an upstream connection may carry the next request. It goes back to the pool only after
//! a complete, correctly framed final response to a complete request; a protocol switch, an
//! interim response nobody asked for, a body framed by close or any byte left over ends it.
//! Each test shows where the next request arrives: on the same connection when it may be
//! reused, on a fresh one (and never inside the old one) when it may not.

use std::time::Duration;

use crate::support::client::{Conn, Response};
use crate::support::nginx::{free_port, nginx_binary, write_conf, Nginx};
use crate::support::pki::Pki;
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};
use crate::support::{curl, Cfg};

const SWITCH: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

use crate::support::mtls_conn as conn;

#[track_caller]
fn get(c: &mut Conn, path: &str, extra: &str) -> Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n").as_bytes())
        .expect("send");
    c.read_response().expect("a response")
}

/// Sends `/first` while the upstream answers with `first`, then `/next` while it echoes; returns
/// the first status and the upstream connection (1-based) that carried `/next`.
fn first_then_next(
    proxy: &Proxy,
    pki: &Pki,
    up: &Upstream,
    first: Mode,
    extra: &str,
) -> (u16, usize) {
    up.set_mode(first);
    let mut c = conn(proxy, pki);
    let status = get(&mut c, "/first", extra).status;
    // Whatever the upstream sends after its answer has time to arrive.
    std::thread::sleep(Duration::from_millis(250));
    up.set_mode(Mode::Echo);
    let mut c = conn(proxy, pki);
    let r = get(&mut c, "/next", "");
    assert_eq!(r.status, 200, "{}\nlog:\n{}", r.head, proxy.log());
    let next = up
        .seen()
        .into_iter()
        .find(|s| s.target == "/next")
        .expect("/next reached the upstream");
    (status, next.conn)
}

#[track_caller]
fn assert_fresh(up: &Upstream, conn: usize) {
    assert_eq!(
        conn, 2,
        "the next request went into the first upstream connection"
    );
    let first = String::from_utf8_lossy(&up.raw_of(1)).into_owned();
    assert!(
        !first.contains("/next"),
        "the next request was written into the first connection:\n{first}"
    );
}

fn start(up: &Upstream, pki: &Pki, locations: &str) -> Proxy {
    Cfg::new(pki, up)
        .locations(locations)
        .up("read_timeout = \"2s\"")
        .start()
}

#[test]
fn an_unrequested_101_is_a_502_and_its_connection_is_closed() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = start(&up, &pki, "");
    let (status, next) = first_then_next(&proxy, &pki, &up, Mode::Replies(SWITCH.to_vec()), "");
    assert_eq!(status, 502);
    assert_fresh(&up, next);
    proxy.assert_log(&[
        "upstream sent an invalid response (101 Switching Protocols to a request that asked for no upgrade)",
        "upstream: `app`",
        "(502)",
    ]);
}

#[test]
fn a_client_upgrade_is_not_forwarded_even_by_set_header_and_a_101_is_a_502() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    // A header template never forwards an upgrade: only a location's `upgrade` list does.
    let proxy = start(
        &up,
        &pki,
        r#"[[listener.location]]
path = "/"
proxy_pass = "http://app"
set_header = { Upgrade = "$http_upgrade", Connection = "upgrade" }
"#,
    );
    proxy.assert_log(&[
        "set_header.Upgrade: ignored (Upgrade is hop-by-hop)",
        "upgrade = [\"websocket\"]",
    ]);
    let (status, next) = first_then_next(
        &proxy,
        &pki,
        &up,
        Mode::Replies(SWITCH.to_vec()),
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    assert_eq!(status, 502);
    assert_fresh(&up, next);
    let first = up
        .seen()
        .into_iter()
        .find(|s| s.target == "/first")
        .expect("/first");
    assert_eq!(first.header("Upgrade"), None, "{:?}", first.headers);
    assert_eq!(first.header("Connection"), None, "{:?}", first.headers);
    // The client's other WebSocket fields are end-to-end and pass, as through nginx.
    assert_eq!(first.header("Sec-WebSocket-Version"), Some("13"));

    // An h2c upgrade is dropped the same way.
    up.set_mode(Mode::Echo);
    let mut c = conn(&proxy, &pki);
    let r = get(&mut c, "/h2c", "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n");
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.header("Upgrade"), None, "{:?}", seen.headers);
    assert_eq!(seen.header("HTTP2-Settings"), None, "{:?}", seen.headers);
}

#[test]
fn an_unexpected_interim_response_serves_the_request_then_closes_the_connection() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = start(&up, &pki, "");
    let reply =
        b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    let (status, next) = first_then_next(&proxy, &pki, &up, Mode::Replies(reply), "");
    assert_eq!(status, 200);
    assert_fresh(&up, next);
    proxy.assert_log(&["upstream `app` sent an unexpected 102 interim response"]);
}

#[test]
fn continue_and_early_hints_leave_the_connection_reusable() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = start(&up, &pki, "");
    let reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    up.set_mode(Mode::Replies(reply));
    let mut c = conn(&proxy, &pki);
    let r = get(&mut c, "/first", "");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", r.head);
    std::thread::sleep(Duration::from_millis(100));
    up.set_mode(Mode::Echo);
    let r = get(&mut c, "/next", "");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("X-Upstream-Conn"),
        Some("1"),
        "pooled connection not reused"
    );
    assert_eq!(up.accepts(), 1);
}

#[test]
fn a_response_framed_by_close_is_never_pooled() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = start(&up, &pki, "");
    // No length, no chunking: the body ends when the upstream closes. Here it does not close,
    // so the proxy may only end the body at the read timeout, and must not reuse it.
    let reply = b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec();
    up.set_mode(Mode::Replies(reply));
    let mut c = conn(&proxy, &pki);
    c.send(b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let (status, _, _) = c.read_head().expect("head");
    assert_eq!(status, 200);
    // The read timeout (2 s) ends the body; the client connection is then closed.
    let body = c.read_rest(Duration::from_secs(5), |_| false);
    assert!(
        String::from_utf8_lossy(&body).contains("until close"),
        "{body:?}"
    );
    up.set_mode(Mode::Echo);
    let mut c = conn(&proxy, &pki);
    let r = get(&mut c, "/next", "");
    assert_eq!(r.status, 200);
    let next = up
        .seen()
        .into_iter()
        .find(|s| s.target == "/next")
        .expect("/next");
    assert_fresh(&up, next.conn);
}

#[test]
fn bytes_after_the_response_end_the_connection() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = start(&up, &pki, "");
    // In the same write as the response.
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged".to_vec();
    let (status, next) = first_then_next(&proxy, &pki, &up, Mode::Replies(reply), "");
    assert_eq!(status, 200);
    assert_fresh(&up, next);
}

#[test]
fn bytes_sent_to_an_idle_pooled_connection_end_it() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = start(&up, &pki, "");
    // After the response, while the connection waits in the pool: a response nobody asked for,
    // which the next request would otherwise read as its own.
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    let late = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged".to_vec();
    let (status, next) = first_then_next(
        &proxy,
        &pki,
        &up,
        Mode::RepliesThenIdleBytes(reply, late),
        "",
    );
    assert_eq!(status, 200);
    assert_fresh(&up, next);
}

/// The report's case through nginx.conf and curl, with nginx beside it where it is installed:
/// `keepalive 8`, `proxy_http_version 1.1`, `proxy_set_header Connection ""` and the WebSocket
/// idiom's Upgrade line (imported as `upgrade = ["websocket"]`); `curl /force101`, which asks
/// for no upgrade, then `curl /hello`.
#[test]
fn the_next_curl_after_a_forced_101_gets_a_fresh_connection_as_through_nginx() {
    let up = Upstream::start(Mode::Echo);
    let port = free_port();
    let (dir, conf) = write_conf(&format!(
        r#"events {{}}
http {{
    access_log off;
    upstream app {{ server {up}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Upgrade $http_upgrade;
        }}
    }}
}}
"#,
        up = up.addr
    ));
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    // Returns the status of /hello and the upstream connection that carried it.
    let exchange = |first_max_time: &str| {
        up.set_mode(Mode::Replies(SWITCH.to_vec()));
        let before = up.accepts();
        let (_, first, _) = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            first_max_time,
            &url("/force101"),
        ]);
        std::thread::sleep(Duration::from_millis(200));
        up.set_mode(Mode::Echo);
        let (_, hello, _) = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url("/hello")]);
        let conn = up.last().conn;
        let raw = String::from_utf8_lossy(&up.raw_of(conn)).into_owned();
        (first, hello, conn > before && !raw.contains("/force101"))
    };
    if let Some(bin) = nginx_binary() {
        let _n = Nginx::start(bin, &conf, port);
        let (_, hello, fresh) = exchange("2");
        assert_eq!(hello, "200", "nginx");
        assert!(fresh, "nginx reused the switched connection");
    } else {
        eprintln!("nginx is not installed: ringgate's side only");
    }
    let proxy = Proxy::start_nginx(dir, conf);
    let (first, hello, fresh) = exchange("5");
    assert_eq!(first, "502", "{}", proxy.log());
    assert_eq!(hello, "200", "{}", proxy.log());
    assert!(fresh, "ringgate reused the switched connection");
}
