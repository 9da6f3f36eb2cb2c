//! Forwarding: headers, keep-alive, pipelining, bodies, limits, upstream failures, pooling,
//! path mapping.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::client::{self, Conn};
use crate::support::pki::{Pki, CLIENT_DN};
use crate::support::upstream::{fnv, pattern_block, Mode, Upstream, FNV_INIT};
use crate::support::{client_for, curl, curl_url, path_str, Cfg};

fn conn(proxy: &crate::support::proxy::Proxy, pki: &Pki) -> Conn {
    client::connect(
        proxy.addr(),
        "localhost",
        &client_for(pki, Some(&pki.client)),
    )
    .expect("handshake")
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

#[test]
fn mtls_happy_path_forwards_identity_and_forwarding_headers() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .locations(
            r#"[[listener.location]]
path = "/"
proxy_pass = "http://app"
set_header = { Host = "$host", X-SSL-Client-DN = "$ssl_client_s_dn", X-SSL-Client-Verify = "$ssl_client_verify" }

[[listener.location]]
path = "/default/"
proxy_pass = "http://app"
"#,
        )
        .start();
    let port = proxy.addr().port();
    let mut c = conn(&proxy, &pki);
    c.send(
        format!(
            "GET /hello?x=1 HTTP/1.1\r\nHost: localhost:{port}\r\nX-SSL-Client-DN: forged\r\nX-SSL-Client-Verify: SUCCESS-forged\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("send");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200, "{}", r.head);
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, "/hello?x=1");
    assert_eq!(
        seen.header("Host"),
        Some("localhost"),
        "$host drops the port"
    );
    assert_eq!(seen.header("X-SSL-Client-DN"), Some(CLIENT_DN));
    assert_eq!(seen.header("X-SSL-Client-Verify"), Some("SUCCESS"));
    // $proxy_add_x_forwarded_for: the client's list, then the client address.
    assert_eq!(seen.header("X-Forwarded-For"), Some("10.9.9.9, 127.0.0.1"));
    assert_eq!(seen.header("X-Forwarded-Proto"), Some("https"));

    // Without set_header Host the upstream gets $proxy_host (the upstream's name).
    c.send(
        format!(
            "GET /default/a HTTP/1.1\r\nHost: localhost:{port}\r\nX-SSL-Client-DN: forged\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("send");
    assert_eq!(c.read_response().expect("response").status, 200);
    let seen = up.last();
    assert_eq!(seen.target, "/default/a");
    assert_eq!(seen.header("Host"), Some("app"));
    assert_eq!(seen.header("X-Forwarded-For"), Some("127.0.0.1"));
    assert_eq!(seen.header("X-Forwarded-Proto"), Some("https"));
}

#[test]
fn curl_with_client_certificate_gets_through_and_without_is_refused() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .locations(
            r#"[[listener.location]]
path = "/"
proxy_pass = "http://app"
set_header = { X-SSL-Client-DN = "$ssl_client_s_dn" }
"#,
        )
        .start();
    let (resolve, url) = curl_url(proxy.addr(), "/via-curl");
    let (code, out, err) = curl(&[
        "--resolve",
        &resolve,
        "--cacert",
        path_str(&pki.ca.pem_path),
        "--cert",
        path_str(&pki.client.cert),
        "--key",
        path_str(&pki.client.key),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!((code, out.as_str()), (0, "200"), "curl: {err}");
    assert_eq!(up.last().target, "/via-curl");
    assert_eq!(up.last().header("X-SSL-Client-DN"), Some(CLIENT_DN));

    let seen = up.seen().len();
    let (code, _, err) = curl(&[
        "--resolve",
        &resolve,
        "--cacert",
        path_str(&pki.ca.pem_path),
        &url,
    ]);
    assert_ne!(code, 0, "curl without a certificate must fail: {err}");
    assert_eq!(up.seen().len(), seen);
    proxy.assert_log(&["refused", "no required SSL certificate"]);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let mut c = conn(&proxy, &pki);
    for i in 0..5 {
        c.send(format!("GET /k{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .expect("send");
        let r = c.read_response().expect("response");
        assert_eq!(r.status, 200);
        assert_ne!(r.header("connection"), Some("close"));
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 5);
    assert_eq!(
        seen.iter().map(|s| s.target.as_str()).collect::<Vec<_>>(),
        ["/k0", "/k1", "/k2", "/k3", "/k4"]
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let mut c = conn(&proxy, &pki);
    c.send(
        b"POST /one HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nfirstPOST /two HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\n\r\nsecondGET /three HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .expect("send");
    let a = c.read_response().expect("first");
    let b = c.read_response().expect("second");
    let d = c.read_response().expect("third");
    assert_eq!((a.status, a.text().as_str()), (200, "first"));
    assert_eq!((b.status, b.text().as_str()), (200, "second"));
    assert_eq!((d.status, d.text().as_str()), (200, ""));
    let targets: Vec<String> = up.seen().iter().map(|s| s.target.clone()).collect();
    assert_eq!(targets, ["/one", "/two", "/three"]);
}

#[test]
fn chunked_and_content_length_bodies_pass_intact_both_ways() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .http("client_max_body_size = \"4m\"")
        .start();
    let mut c = conn(&proxy, &pki);

    // Chunked request body, odd chunk sizes, with a chunk extension and a trailer.
    let body = pattern(300_001);
    let mut req =
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for (i, piece) in body.chunks(7777).enumerate() {
        if i == 1 {
            req.extend_from_slice(format!("{:X};ext=1\r\n", piece.len()).as_bytes());
        } else {
            req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        }
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.send(&req).expect("send");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200, "{}", r.head);
    let seen = up.last();
    assert_eq!(seen.body_len, body.len() as u64);
    assert!(
        seen.body == body,
        "the chunked body reached the upstream changed"
    );
    assert!(r.body == body, "the echoed body came back changed");

    // Content-Length request body.
    let body = pattern(123_457);
    let mut req = format!(
        "PUT /cl HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    c.send(&req).expect("send");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().header("Content-Length"), Some("123457"));
    assert!(up.last().body == body && r.body == body);

    // Chunked response body.
    let data = pattern(200_003);
    up.set_mode(Mode::Chunked(data.clone(), 4099));
    c.send(b"GET /chunked HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    assert!(
        r.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked")),
        "{}",
        r.head
    );
    assert!(
        r.body == data,
        "the chunked response reached the client changed"
    );
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let mut c = conn(&proxy, &pki);
    c.send(b"POST /e HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        .expect("send");
    let (status, head, _) = c.read_head().expect("interim response");
    assert_eq!(status, 100, "{head}");
    c.send(b"hello world").expect("send body");
    let r = c.read_response().expect("final response");
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    assert_eq!(up.last().body, b"hello world");
}

#[test]
fn a_256_mib_upload_streams_with_flat_memory() {
    const TOTAL: u64 = 256 << 20;
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    up.set_mode(Mode::Large(0));
    let proxy = Cfg::new(&pki, &up)
        .http("client_max_body_size = 0\nbody_timeout = \"10s\"")
        .start();
    let mut c = conn(&proxy, &pki);
    // Warm up so buffers and the pool exist before the baseline.
    c.send(b"POST /warm HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc")
        .expect("send");
    assert_eq!(c.read_response().expect("warm").status, 200);
    let base = proxy.rss_kib();

    let pid = proxy.pid;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut max = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                if let Some(v) = s
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    max = max.max(v);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        max
    });

    let block = pattern_block();
    let mut hash = FNV_INIT;
    c.tls
        .write_all(
            format!("POST /big HTTP/1.1\r\nHost: localhost\r\nContent-Length: {TOTAL}\r\n\r\n")
                .as_bytes(),
        )
        .expect("send head");
    let mut sent = 0u64;
    while sent < TOTAL {
        let k = (TOTAL - sent).min(block.len() as u64) as usize;
        if let Err(e) = c.tls.write_all(&block[..k]) {
            let r = c.read_response();
            std::thread::sleep(Duration::from_millis(500));
            let seen: Vec<(String, u64)> = up
                .seen()
                .iter()
                .map(|s| (s.target.clone(), s.body_len))
                .collect();
            panic!("send body failed after {sent} bytes: {e}; response: {r:?}; upstream saw {seen:?}; log:\n{}", proxy.log());
        }
        fnv(&mut hash, &block[..k]);
        sent += k as u64;
    }
    c.tls.flush().expect("flush");
    let r = c.read_response().expect("response");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max = sampler.join().expect("sampler");
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.target, "/big");
    assert_eq!(seen.body_len, TOTAL);
    assert_eq!(
        seen.body_hash, hash,
        "the body reached the upstream changed"
    );
    assert!(
        max.saturating_sub(base) < 64 * 1024,
        "VmRSS grew from {base} KiB to {max} KiB while streaming {TOTAL} bytes"
    );
}

fn raw_status(c: &mut Conn, req: &[u8]) -> u16 {
    c.send(req).expect("send");
    c.read_response().expect("response").status
}

#[test]
fn limits_answer_400_408_and_413() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .http("max_header_bytes = \"2k\"\nmax_headers = 10\nheader_timeout = \"1s\"\nclient_max_body_size = \"1k\"")
        .start();

    let big = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(4000)
    );
    assert_eq!(raw_status(&mut conn(&proxy, &pki), big.as_bytes()), 400);

    let mut many = "GET / HTTP/1.1\r\nHost: localhost\r\n".to_string();
    for i in 0..20 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(raw_status(&mut conn(&proxy, &pki), many.as_bytes()), 400);

    let mut c = conn(&proxy, &pki);
    let t = Instant::now();
    assert_eq!(raw_status(&mut c, b"GET / HTTP/1.1\r\nHost: local"), 408);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "408 after {waited:?}"
    );

    let mut req = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000\r\n\r\n".to_vec();
    req.extend_from_slice(&[b'x'; 2000]);
    assert_eq!(raw_status(&mut conn(&proxy, &pki), &req), 413);

    let mut req =
        b"POST /chunky HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[b'y'; 0x200]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw_status(&mut conn(&proxy, &pki), &req), 413);
    assert!(
        up.seen().iter().all(|s| s.target != "/"),
        "no refused request reached the upstream"
    );
}

#[test]
fn upstream_failures_answer_502_and_504_with_log_lines() {
    let pki = Pki::new();
    let slow = Upstream::start(Mode::Delay(Duration::from_secs(3)));
    let closing = Upstream::start(Mode::Close);
    let garbage = Upstream::start(Mode::Garbage);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let proxy = Cfg::new(&pki, &slow)
        .up(&format!(
            "read_timeout = \"1s\"\n\n[[upstream]]\nname = \"dead\"\nservers = [\"{dead}\"]\nconnect_timeout = \"2s\"\n\n[[upstream]]\nname = \"closing\"\nservers = [{}]\n\n[[upstream]]\nname = \"garbage\"\nservers = [{}]\n",
            closing.server(),
            garbage.server()
        ))
        .locations(
            r#"[[listener.location]]
path = "/slow"
proxy_pass = "http://app"

[[listener.location]]
path = "/dead"
proxy_pass = "http://dead"

[[listener.location]]
path = "/closing"
proxy_pass = "http://closing"

[[listener.location]]
path = "/garbage"
proxy_pass = "http://garbage"
"#,
        )
        .start();
    let cfg = client_for(&pki, Some(&pki.client));
    let addr = proxy.addr();

    let r = client::get(addr, &cfg, "/dead");
    assert_eq!(r.status, 502);
    proxy.assert_log(&["upstream: `dead`", &dead.to_string(), "502"]);

    let t = Instant::now();
    let r = client::get(addr, &cfg, "/slow");
    assert_eq!(r.status, 504);
    assert!(
        t.elapsed() < Duration::from_millis(2900),
        "504 after {:?}",
        t.elapsed()
    );
    proxy.assert_log(&["upstream: `app`", "504"]);
    assert_eq!(slow.seen().len(), 1);

    let r = client::get(addr, &cfg, "/closing");
    assert_eq!(r.status, 502);
    proxy.assert_log(&["upstream: `closing`", "502"]);
    assert_eq!(
        closing.seen().len(),
        1,
        "GET /closing reached the upstream once"
    );

    let r = client::get(addr, &cfg, "/garbage");
    assert_eq!(r.status, 502);
    proxy.assert_log(&["upstream: `garbage`", "502"]);
}

#[test]
fn upstream_connections_are_pooled_and_a_stale_one_is_retried() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    for _ in 0..4 {
        let mut c = conn(&proxy, &pki);
        for _ in 0..5 {
            c.send(b"GET /pooled HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .expect("send");
            assert_eq!(c.read_response().expect("response").status, 200);
        }
    }
    assert_eq!(up.seen().len(), 20);
    assert!(
        up.accepts() < 20,
        "20 requests used {} upstream connections",
        up.accepts()
    );
    assert!(
        up.accepts() <= 2,
        "pool not reused: {} connections",
        up.accepts()
    );

    // An upstream that closes its idle keep-alive connections: the next GET is retried.
    let closer = Upstream::start(Mode::AnswerThenClose);
    let proxy = Cfg::new(&pki, &closer).start();
    let mut c = conn(&proxy, &pki);
    for i in 0..3 {
        c.send(format!("GET /again{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .expect("send");
        let r = c.read_response().expect("response");
        assert_eq!(r.status, 200, "request {i}: {}", r.head);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(closer.seen().len(), 3);
    assert_eq!(closer.accepts(), 3);
}

/// A burst of `n` overlapping requests, each on its own client connection.
fn burst(proxy: &crate::support::proxy::Proxy, pki: &Pki, n: usize, tag: &str) {
    std::thread::scope(|s| {
        for i in 0..n {
            s.spawn(move || {
                let mut c = conn(proxy, pki);
                c.send(format!("GET /{tag}/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
                    .expect("send");
                assert_eq!(c.read_response().expect("response").status, 200);
            });
        }
    });
}

/// Waits until the upstream holds `n` open connections (closes reach it asynchronously).
fn wait_open(up: &Upstream, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if up.open_conns() == n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn idle_connections_beyond_keepalive_serve_the_next_burst_then_are_purged() {
    let pki = Pki::new();
    // Each request takes 300 ms upstream: a burst of 6 needs 6 upstream connections.
    let up = Upstream::start(Mode::Delay(Duration::from_millis(300)));
    let text = Cfg::new(&pki, &up)
        .render()
        .replace("keepalive = 8", "keepalive = 2\npurge_delay = \"2s\"");
    let proxy = crate::support::proxy::Proxy::start(&text);
    burst(&proxy, &pki, 6, "one");
    assert_eq!(up.accepts(), 6);
    // The 4 beyond keepalive are still idle: the next burst reuses all 6.
    assert!(wait_open(&up, 6), "{} open", up.open_conns());
    burst(&proxy, &pki, 6, "two");
    assert_eq!(up.accepts(), 6, "the second burst opened new connections");
    // Past purge_delay, the surplus is closed, the keepalive 2 stay.
    std::thread::sleep(Duration::from_millis(2200));
    burst(&proxy, &pki, 1, "three");
    assert!(
        wait_open(&up, 2),
        "{} open after purge_delay",
        up.open_conns()
    );
    assert_eq!(up.accepts(), 6);

    // purge_delay = "0s": nginx's behaviour, the surplus is closed as it comes back.
    let up = Upstream::start(Mode::Delay(Duration::from_millis(300)));
    let text = Cfg::new(&pki, &up)
        .render()
        .replace("keepalive = 8", "keepalive = 2\npurge_delay = \"0s\"");
    let proxy = crate::support::proxy::Proxy::start(&text);
    burst(&proxy, &pki, 6, "one");
    assert!(wait_open(&up, 2), "{} open", up.open_conns());
    burst(&proxy, &pki, 6, "two");
    assert_eq!(up.accepts(), 10);
}

#[test]
fn proxy_pass_maps_paths_like_nginx() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .locations(
            r#"[[listener.location]]
path = "/"
proxy_pass = "http://app"

[[listener.location]]
path = "/app/"
proxy_pass = "http://app/"

[[listener.location]]
path = "/exact"
match = "exact"
proxy_pass = "http://app/was-exact"

[[listener.location]]
path = "/ex"
proxy_pass = "http://app/was-prefix/"

[[listener.location]]
path = "/admin/"
proxy_pass = "http://app/admin-backend/"

[[listener.location]]
path = "/public/"
return = { status = 200, body = "public" }
"#,
        )
        .start();
    let cfg = client_for(&pki, Some(&pki.client));
    let addr = proxy.addr();
    for (path, want) in [
        ("/app/x?q=1", "/x?q=1"),
        ("/app/", "/"),
        ("/raw/x?q=1", "/raw/x?q=1"),
        ("/exact", "/was-exact"),
        ("/exactly", "/was-prefix/actly"),
        ("/public/../admin/x", "/admin-backend/x"),
    ] {
        let r = client::get(addr, &cfg, path);
        assert_eq!(r.status, 200, "{path}: {}", r.head);
        assert_eq!(up.last().target, want, "{path}");
    }
    let r = client::get(addr, &cfg, "/public/page");
    assert_eq!((r.status, r.text().as_str()), (200, "public"));
}
