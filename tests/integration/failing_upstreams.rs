//! Failing upstreams, one test each: the client gets 502/504 while nothing was sent
//! yet, or a closed connection once the response had started; every failure writes a log line;
//! and nothing leaks: a broken connection never goes back to the pool and the proxy's open file
//! descriptors return to their baseline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use crate::hostile_clients::fd_count;
use crate::support::client::Conn;
use crate::support::pki::Pki;
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};
use crate::support::Cfg;

fn start(up: &Upstream, extra: &str) -> (Pki, Proxy) {
    let pki = Pki::new();
    let proxy = Cfg::new(&pki, up)
        .up(&format!("read_timeout = \"1s\"\n{extra}"))
        .start();
    (pki, proxy)
}

use crate::support::mtls_conn as conn;

/// One GET on a fresh connection: the status, after which the connection must be closed.
#[track_caller]
fn status_then_closed(proxy: &Proxy, pki: &Pki) -> u16 {
    let mut c = conn(proxy, pki);
    c.send(b"GET /fail HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let r = c.read_response().expect("a response");
    assert!(
        c.closed_by_server(Duration::from_secs(3)),
        "left open after {}",
        r.status
    );
    r.status
}

/// One GET whose response starts and then breaks: the client gets the head and then a closed
/// connection before the declared end. Returns how many body bytes arrived.
#[track_caller]
fn started_then_closed(proxy: &Proxy, pki: &Pki) -> usize {
    let mut c = conn(proxy, pki);
    c.send(b"GET /fail HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let (status, head, headers) = c.read_head().expect("the response head");
    assert_eq!(status, 200, "{head}");
    let declared: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .expect("a Content-Length");
    let got = c.read_rest(Duration::from_secs(5), |_| false);
    assert!(
        got.len() < declared,
        "the whole body arrived ({} of {declared})",
        got.len()
    );
    got.len()
}

#[test]
fn connection_refused_is_502() {
    let dead: SocketAddr = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .locations("[[listener.location]]\npath = \"/\"\nproxy_pass = \"http://dead\"\n")
        .up(&format!(
            "\n[[upstream]]\nname = \"dead\"\nservers = [\"{dead}\"]\n"
        ))
        .start();
    assert_eq!(status_then_closed(&proxy, &pki), 502);
    proxy.assert_log(&[
        "connect() failed",
        "refused",
        &format!("upstream: `dead` http://{dead}"),
        "(502)",
    ]);
}

#[test]
fn reset_in_the_middle_of_the_head_is_502() {
    let up = Upstream::start(Mode::RawReset(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Le".to_vec(),
    ));
    let (pki, proxy) = start(&up, "");
    assert_eq!(status_then_closed(&proxy, &pki), 502);
    proxy.assert_log(&["upstream: `app`", "(502)"]);
}

#[test]
fn reset_in_the_middle_of_the_body_closes_the_client_connection() {
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    resp.extend_from_slice(&[b'x'; 3000]);
    let up = Upstream::start(Mode::RawReset(resp));
    let (pki, proxy) = start(&up, "");
    let got = started_then_closed(&proxy, &pki);
    assert!(got <= 3000, "{got} body bytes for 3000 sent");
    proxy.assert_log(&["upstream `app`", "while sending the response body"]);
}

#[test]
fn truncated_content_length_body_closes_the_client_connection() {
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    resp.extend_from_slice(&[b'x'; 100]);
    let up = Upstream::start(Mode::Raw(resp));
    let (pki, proxy) = start(&up, "");
    assert_eq!(started_then_closed(&proxy, &pki), 100);
    proxy.assert_log(&[
        "upstream `app`",
        "prematurely closed the connection while sending the response body",
    ]);
}

#[test]
fn slow_response_past_read_timeout_is_504() {
    let up = Upstream::start(Mode::Delay(Duration::from_secs(3)));
    let (pki, proxy) = start(&up, "");
    let t = Instant::now();
    assert_eq!(status_then_closed(&proxy, &pki), 504);
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "504 after {:?} (read_timeout 1s)",
        t.elapsed()
    );
    proxy.assert_log(&[
        "upstream timed out while reading the response",
        "upstream: `app`",
        "(504)",
    ]);
}

#[test]
fn slow_body_past_read_timeout_closes_the_client_connection() {
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    resp.extend_from_slice(&[b'x'; 10]);
    let up = Upstream::start(Mode::RawHold(resp, Duration::from_secs(4)));
    let (pki, proxy) = start(&up, "");
    let t = Instant::now();
    assert_eq!(started_then_closed(&proxy, &pki), 10);
    assert!(
        t.elapsed() < Duration::from_millis(3500),
        "{:?}",
        t.elapsed()
    );
    proxy.assert_log(&["upstream `app` timed out while sending the response body"]);
}

#[test]
fn garbage_response_is_502() {
    let up = Upstream::start(Mode::Garbage);
    let (pki, proxy) = start(&up, "");
    assert_eq!(status_then_closed(&proxy, &pki), 502);
    proxy.assert_log(&[
        "upstream sent an invalid response",
        "upstream: `app`",
        "(502)",
    ]);
}

/// A TCP server that answers whatever it gets with `reply` and closes (a plain-HTTP server, or
/// a dead one, where the proxy expects TLS).
fn not_tls(reply: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(reply);
            });
        }
    });
    addr
}

#[test]
fn tls_upstream_failing_its_handshake_is_502() {
    let plain_http = not_tls(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let silent_close = not_tls(b"");
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .locations(
            "[[listener.location]]\npath = \"/\"\nproxy_pass = \"https://plain\"\n\n\
             [[listener.location]]\npath = \"/closing/\"\nproxy_pass = \"https://closing\"\n",
        )
        .up(&format!(
            "\n[[upstream]]\nname = \"plain\"\nservers = [\"{plain_http}\"]\n[upstream.tls]\nverify = false\n\n\
             [[upstream]]\nname = \"closing\"\nservers = [\"{silent_close}\"]\n[upstream.tls]\nverify = false\n"
        ))
        .start();
    assert_eq!(status_then_closed(&proxy, &pki), 502);
    proxy.assert_log(&[
        "while SSL handshaking to upstream",
        &format!("upstream: `plain` https://{plain_http}"),
        "(502)",
    ]);
    let mut c = conn(&proxy, &pki);
    c.send(b"GET /closing/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    assert_eq!(c.read_response().expect("response").status, 502);
    proxy.assert_log(&[
        "upstream closed the connection during the TLS handshake",
        &format!("upstream: `closing` https://{silent_close}"),
        "(502)",
    ]);
}

/// Waits until the proxy's open descriptors are back at `baseline` (up to 5 s); the count.
fn fds_settle(proxy: &Proxy, baseline: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = fd_count(proxy.pid);
        if n <= baseline || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn failures_leave_no_broken_pooled_connection_and_no_leaked_descriptor() {
    let up = Upstream::start(Mode::Echo);
    let (pki, proxy) = start(&up, "");
    let ok = |c: &mut Conn, path: &str| {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .expect("send");
        let r = c.read_response().expect("response");
        assert_eq!(r.status, 200, "{path}: {}", r.head);
        r
    };
    // Baseline: one pooled upstream connection, no client connection.
    ok(&mut conn(&proxy, &pki), "/warm");
    assert_eq!(up.accepts(), 1);
    std::thread::sleep(Duration::from_millis(300));
    let baseline = fd_count(proxy.pid);

    let mut truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    truncated.extend_from_slice(&[b'x'; 100]);
    let mut reset = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    reset.extend_from_slice(&[b'y'; 3000]);
    let mut stalled = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    stalled.extend_from_slice(&[b'z'; 10]);
    let failures: Vec<(&str, Mode, bool)> = vec![
        ("truncated body", Mode::Raw(truncated), true),
        ("reset mid-body", Mode::RawReset(reset), true),
        (
            "stalled body",
            Mode::RawHold(stalled, Duration::from_secs(3)),
            true,
        ),
        ("garbage", Mode::Garbage, false),
        (
            "reset mid-head",
            Mode::RawReset(b"HTTP/1.1 200 OK\r\nCont".to_vec()),
            false,
        ),
        ("slow head", Mode::Delay(Duration::from_secs(3)), false),
    ];
    for (what, mode, started) in failures {
        let accepts = up.accepts();
        up.set_mode(mode);
        if started {
            started_then_closed(&proxy, &pki);
        } else {
            let s = status_then_closed(&proxy, &pki);
            assert!(s == 502 || s == 504, "{what}: {s}");
        }
        // The next request is served, on a connection opened after the failure: the broken
        // one was not pooled, and nothing it had left unread reaches this client.
        up.set_mode(Mode::Echo);
        let before = up.accepts();
        let r = ok(
            &mut conn(&proxy, &pki),
            &format!("/after-{}", what.replace(' ', "-")),
        );
        assert!(r.body.is_empty(), "{what}: stale bytes {:?}", r.text());
        let conn_no: usize = r
            .header("x-upstream-conn")
            .and_then(|v| v.parse().ok())
            .expect("X-Upstream-Conn");
        assert!(
            conn_no > accepts,
            "{what}: answered on upstream connection {conn_no}, opened before the failure \
             (accepts before {accepts}, before the retry {before})"
        );
    }
    let after = fds_settle(&proxy, baseline);
    println!("proxy fds: baseline {baseline}, after the failures {after}");
    assert!(
        after <= baseline,
        "descriptors leaked: {after} open, baseline {baseline}"
    );
}

/// A port nothing listens on (bound, then let go).
fn dead_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("\"{}\"", l.local_addr().expect("addr"))
}

/// The default configuration with these `servers` lines (TOML) in the upstream, no pooled
/// connections (each request connects, so each picks a server), and `extra` upstream lines.
fn group_config(pki: &Pki, up: &Upstream, servers: &str, extra: &str) -> String {
    Cfg::new(pki, up)
        .render()
        .replace(&format!("servers = [{}]", up.server()), servers)
        .replace("keepalive = 8", &format!("keepalive = 0\n{extra}"))
}

/// One GET on its own connection: the status.
fn get_once(proxy: &Proxy, pki: &Pki) -> u16 {
    let mut c = conn(proxy, pki);
    c.send(b"GET /next HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("send");
    c.read_response().expect("response").status
}

/// A group with a dead server and a live one: each request that picks the dead server goes on
/// to the live one (nginx's `proxy_next_upstream error`), so every client gets 200; with
/// max_fails the dead server is then skipped for fail_timeout instead of being tried again.
/// With every server dead: 502.
#[test]
fn a_dead_server_in_a_group_is_passed_over_and_skipped() {
    let live = Upstream::start(Mode::Echo);
    let pki = Pki::new();
    let both = format!("servers = [{}, {}]", dead_addr(), live.server());

    // Defaults (max_fails 1, fail_timeout 10s): tried once, then skipped.
    let proxy = Proxy::start(&group_config(&pki, &live, &both, ""));
    for i in 0..8 {
        assert_eq!(get_once(&proxy, &pki), 200, "request {i}");
    }
    assert_eq!(live.accepts(), 8);
    proxy.assert_log(&["trying the next server"]);
    let log = proxy.log();
    assert_eq!(log.matches("trying the next server").count(), 1, "{log}");
    assert_eq!(
        log.matches("skipped for 10s after 1 failed attempt")
            .count(),
        1,
        "{log}"
    );
    drop(proxy);

    // max_fails = 0: never skipped, so every other request passes over it; still all 200.
    let proxy = Proxy::start(&group_config(&pki, &live, &both, "max_fails = 0"));
    for i in 0..8 {
        assert_eq!(get_once(&proxy, &pki), 200, "request {i}");
    }
    let log = proxy.log();
    assert!(log.matches("trying the next server").count() >= 3, "{log}");
    assert!(!log.contains("skipped for"), "{log}");
    drop(proxy);

    // Every server dead: 502, with the last failure's log line.
    let dead = format!("servers = [{}, {}]", dead_addr(), dead_addr());
    let proxy = Proxy::start(&group_config(&pki, &live, &dead, ""));
    assert_eq!(get_once(&proxy, &pki), 502);
    proxy.assert_log(&["trying the next server"]);
    proxy.assert_log(&["(502)"]);
}

/// `backup_servers` (nginx's `server ... backup`) take requests only while no primary can:
/// a live primary gets everything; a dead one hands its requests to the backup.
#[test]
fn backup_servers_serve_only_when_the_primaries_cannot() {
    let primary = Upstream::start(Mode::Echo);
    let backup = Upstream::start(Mode::Echo);
    let pki = Pki::new();
    let with_backup = |first: &str| {
        format!(
            "servers = [{first}]\nbackup_servers = [{}]",
            backup.server()
        )
    };
    let proxy = Proxy::start(&group_config(
        &pki,
        &primary,
        &with_backup(&primary.server()),
        "",
    ));
    for _ in 0..4 {
        assert_eq!(get_once(&proxy, &pki), 200);
    }
    assert_eq!((primary.accepts(), backup.accepts()), (4, 0));
    drop(proxy);

    let proxy = Proxy::start(&group_config(
        &pki,
        &primary,
        &with_backup(&dead_addr()),
        "",
    ));
    for _ in 0..4 {
        assert_eq!(get_once(&proxy, &pki), 200);
    }
    assert_eq!(backup.accepts(), 4);
    proxy.assert_log(&["trying the next server"]);
}

/// A server that takes the request and closes without answering: a GET goes on to the next
/// server (nginx's `proxy_next_upstream error`), a POST whose body was already streamed to it
/// cannot be sent again and gets 502.
#[test]
fn a_server_that_drops_the_request_passes_a_get_on_but_not_a_post() {
    let dropper = Upstream::start(Mode::Close);
    let live = Upstream::start(Mode::Echo);
    let pki = Pki::new();
    let both = format!("servers = [{}, {}]", dropper.server(), live.server());
    let proxy = Proxy::start(&group_config(&pki, &live, &both, ""));
    for i in 0..4 {
        assert_eq!(get_once(&proxy, &pki), 200, "GET {i}");
    }
    assert_eq!(dropper.accepts(), 1, "tried once, then skipped");
    assert_eq!(live.seen().len(), 4);
    proxy.assert_log(&["upstream: `app`", "trying the next server"]);
    drop(proxy);

    // POSTs: the one that reaches the dropper gets 502, the other 200.
    let proxy = Proxy::start(&group_config(&pki, &live, &both, ""));
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let mut c = conn(&proxy, &pki);
        c.send(b"POST /p HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            .expect("send");
        statuses.push(c.read_response().expect("response").status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 502]);
}
