//! Hostile clients: slowloris and slow bodies cut off by their timeouts while other
//! clients are served, connection limits refusing cleanly, oversized heads and bodies, and many
//! idle connections held cheaply. Figures are printed (run with `--nocapture` to see them);
//! the assertions are generous bounds: speed and memory are measured in benchmarks, not
//! asserted tightly in timed tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::client::{self, Conn};
use crate::support::pki::Pki;
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};
use crate::support::{client_for, Cfg};

use crate::support::mtls_conn as conn;

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One slowloris connection: a TLS handshake, then a request head dribbled one byte a second.
/// Returns how long it survived from its first byte of HTTP to the 408 (None when no 408
/// came).
fn slowloris(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>) -> Option<(Duration, u16)> {
    let mut c = client::connect(addr, "localhost", cfg).ok()?;
    let head = b"GET /slow HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    for &b in head.iter() {
        if c.send(&[b]).is_err() {
            return None;
        }
        // Between bytes, wait a second for the proxy's answer.
        let _ = c.tls.sock.set_read_timeout(Some(Duration::from_secs(1)));
        match c.read_head() {
            Ok((status, _, _)) => return Some((started.elapsed(), status)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn slowloris_is_cut_at_header_timeout_while_other_clients_are_served() {
    const TIMEOUT_S: u64 = 3;
    const ATTACKERS: usize = 40;
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .http(&format!("header_timeout = \"{TIMEOUT_S}s\""))
        .start();
    let addr = proxy.addr();
    let cfg = client_for(&pki, Some(&pki.client));

    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|_| {
            let cfg = cfg.clone();
            std::thread::spawn(move || slowloris(addr, &cfg))
        })
        .collect();

    // Normal clients in the same seconds: a new connection (full mTLS handshake) and a request
    // every 20 ms, and a keep-alive connection with a request every 10 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let normal = {
        let cfg = cfg.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            let mut statuses = Vec::new();
            let mut ka = client::connect(addr, "localhost", &cfg).expect("keep-alive conn");
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if i % 3 == 0 {
                    let r = client::get(addr, &cfg, "/normal-new");
                    statuses.push(r.status);
                } else {
                    ka.send(b"GET /normal-ka HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        .expect("send");
                    statuses.push(ka.read_response().expect("keep-alive response").status);
                }
                lat.push(t.elapsed());
                i += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            (lat, statuses)
        })
    };

    let mut survived = Vec::new();
    for a in attackers {
        match a.join().expect("attacker thread") {
            Some((d, status)) => {
                assert_eq!(status, 408, "slowloris answered {status}");
                survived.push(d);
            }
            None => panic!("a slowloris connection got no 408"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut lat, statuses) = normal.join().expect("normal client");
    lat.sort();
    survived.sort();
    let longest = survived.last().copied().unwrap_or_default();
    let p99 = percentile(&lat, 0.99);
    println!(
        "slowloris: {ATTACKERS} connections dribbling 1 byte/s, header_timeout {TIMEOUT_S}s: \
         longest survived {:.2}s, shortest {:.2}s; normal requests during the attack: n={}, \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        longest.as_secs_f64(),
        survived[0].as_secs_f64(),
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    let timeout = Duration::from_secs(TIMEOUT_S);
    assert!(
        survived[0] >= timeout - Duration::from_millis(300),
        "cut before header_timeout: {:?}",
        survived[0]
    );
    assert!(
        longest <= timeout + Duration::from_millis(1500),
        "a slowloris survived {longest:?}, past header_timeout {timeout:?}"
    );
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert!(lat.len() >= 50, "only {} normal requests", lat.len());
    assert!(
        p99 < Duration::from_secs(1),
        "normal p99 {p99:?} under attack"
    );
    proxy.assert_log(&["client timed out sending the request head (408)"]);
    assert!(
        up.seen().iter().all(|s| s.target != "/slow"),
        "a slowloris request reached the upstream"
    );
}

#[test]
fn slow_body_is_cut_at_body_timeout_with_408() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).http("body_timeout = \"1s\"").start();
    let mut c = conn(&proxy, &pki);
    c.send(b"POST /slow-body HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789")
        .expect("send");
    let t = Instant::now();
    let r = c.read_response().expect("response");
    let waited = t.elapsed();
    assert_eq!(r.status, 408, "{}", r.head);
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "408 after {waited:?}"
    );
    assert!(c.closed_by_server(Duration::from_secs(3)));
    proxy.assert_log(&["timed out sending the request body (408)", "/slow-body"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(up.seen().is_empty(), "the upstream got a complete request");

    // A body that keeps coming, a byte every 300 ms, is not cut (body_timeout is the longest
    // pause, as nginx's client_body_timeout).
    let mut c = conn(&proxy, &pki);
    c.send(b"POST /dribble HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\n\r\n")
        .expect("send");
    for b in b"abcdef" {
        std::thread::sleep(Duration::from_millis(300));
        c.send(&[*b]).expect("send a byte");
    }
    let r = c.read_response().expect("response");
    assert_eq!((r.status, r.text().as_str()), (200, "abcdef"));
}

/// Sends `req`; returns the status and whether the proxy closed the connection after it.
fn status_and_close(proxy: &Proxy, pki: &Pki, req: &[u8]) -> (u16, bool) {
    let mut c = conn(proxy, pki);
    c.send(req).expect("send");
    let r = c.read_response().expect("response");
    (r.status, c.closed_by_server(Duration::from_secs(3)))
}

/// nginx's `large_client_header_buffers 4 8k` with the defaults: three 6 KB fields and 101
/// fields are served; a 9 KB field is 400 with nginx's "Request Header Or Cookie Too Large"
/// page, a 9 KB request line 414.
#[test]
fn default_header_limits_are_nginxs_buffers() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let field = |name: &str, n: usize| format!("{name}: {}\r\n", "a".repeat(n));
    let three = format!(
        "GET /three HTTP/1.1\r\nHost: localhost\r\n{}{}{}\r\n",
        field("X-A", 6000),
        field("X-B", 6000),
        field("X-C", 6000)
    );
    let mut c = conn(&proxy, &pki);
    c.send(three.as_bytes()).expect("send");
    assert_eq!(c.read_response().expect("response").status, 200);
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let mut c = conn(&proxy, &pki);
    c.send(format!("GET /many HTTP/1.1\r\nHost: localhost\r\n{many}\r\n").as_bytes())
        .expect("send");
    assert_eq!(c.read_response().expect("response").status, 200);
    assert_eq!(up.last().header_all("X-H100"), vec!["v"]);

    let long_field = format!(
        "GET /long HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        field("X-Big", 9000)
    );
    let mut c = conn(&proxy, &pki);
    c.send(long_field.as_bytes()).expect("send");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("Request Header Or Cookie Too Large"),
        "{}",
        r.text()
    );
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(
        status_and_close(&proxy, &pki, long_target.as_bytes()),
        (414, true)
    );
    assert!(up.seen().iter().all(|s| s.target != "/long"));
    proxy.assert_log(&["request header line too long", "(400)"]);
}

/// The same heads through nginx (where it is installed) and ringgate, both from one nginx.conf
/// with nginx's default `large_client_header_buffers`: the same status for each.
#[test]
fn header_limits_answer_as_nginx_does() {
    use crate::support::nginx::{free_port, nginx_binary, write_conf, Nginx};
    let up = Upstream::start(Mode::Echo);
    let port = free_port();
    let (dir, conf) = write_conf(&format!(
            "events {{}}\nhttp {{\n    access_log off;\n    server {{\n        listen 127.0.0.1:{port};\n        location / {{ proxy_pass http://{}; }}\n    }}\n}}\n",
            up.addr
        ),
    );
    let field = |name: &str, n: usize| format!("{name}: {}\r\n", "a".repeat(n));
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let heads = [
        format!(
            "GET /three HTTP/1.1\r\nHost: a\r\n{}{}{}\r\n",
            field("X-A", 6000),
            field("X-B", 6000),
            field("X-C", 6000)
        ),
        format!("GET /many HTTP/1.1\r\nHost: a\r\n{many}\r\n"),
        format!(
            "GET /long HTTP/1.1\r\nHost: a\r\n{}\r\n",
            field("X-Big", 9000)
        ),
        format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000)),
        format!(
            "GET /huge HTTP/1.1\r\nHost: a\r\n{}\r\n",
            field("X-H", 7000).repeat(5)
        ),
    ];
    let statuses = || -> Vec<u16> {
        heads
            .iter()
            .map(|h| {
                let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                sock.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let _ = sock.write_all(h.as_bytes());
                let mut first = [0u8; 12];
                sock.read_exact(&mut first).expect("a status line");
                String::from_utf8_lossy(&first[9..12])
                    .parse()
                    .expect("status")
            })
            .collect()
    };
    let from_nginx = nginx_binary().map(|bin| {
        let _n = Nginx::start(bin, &conf, port);
        statuses()
    });
    let proxy = Proxy::start_nginx(dir, conf);
    let from_ringgate = statuses();
    drop(proxy);
    eprintln!("nginx: {from_nginx:?}\nringgate: {from_ringgate:?}");
    assert_eq!(from_ringgate, vec![200, 200, 400, 414, 400]);
    if let Some(n) = from_nginx {
        assert_eq!(from_ringgate, n);
    }
}

#[test]
fn oversized_heads_get_nginx_answers_and_bodies_413() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .http("max_header_bytes = \"4k\"\nmax_headers = 20\nclient_max_body_size = \"1k\"")
        .start();
    let big_field = format!(
        "GET /big HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(8000)
    );
    assert_eq!(
        status_and_close(&proxy, &pki, big_field.as_bytes()),
        (400, true)
    );
    let long_line = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(8000)
    );
    assert_eq!(
        status_and_close(&proxy, &pki, long_line.as_bytes()),
        (414, true)
    );
    let mut many = "GET /many HTTP/1.1\r\nHost: localhost\r\n".to_string();
    for i in 0..40 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(status_and_close(&proxy, &pki, many.as_bytes()), (400, true));
    proxy.assert_log(&["request header too large", "(400)"]);
    proxy.assert_log(&["request line too long", "(414)"]);
    proxy.assert_log(&["too many request headers", "(400)"]);

    // A head that never ends is refused once it passes the limit, not buffered further.
    let mut c = conn(&proxy, &pki);
    c.send(b"GET /endless HTTP/1.1\r\nHost: localhost\r\n")
        .expect("send");
    let mut refused = false;
    for _ in 0..64 {
        if c.send(&[b'X'; 1024]).is_err() {
            refused = true;
            break;
        }
    }
    let r = c.read_response();
    assert!(
        refused || matches!(&r, Ok(r) if r.status == 400),
        "endless head: {r:?}"
    );

    let mut body = b"POST /cl HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n\r\n".to_vec();
    body.extend_from_slice(&[b'x'; 5000]);
    assert_eq!(status_and_close(&proxy, &pki, &body), (413, true));
    proxy.assert_log(&["too large body: 5000 bytes (413)"]);
    let mut chunked =
        b"POST /chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..6 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'y'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(status_and_close(&proxy, &pki, &chunked), (413, true));
    proxy.assert_log(&["larger than client_max_body_size (413)", "/chunked"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        up.seen().is_empty(),
        "a refused request reached the upstream whole: {:?}",
        up.seen().iter().map(|s| &s.target).collect::<Vec<_>>()
    );
}

/// A plain GET to the admin endpoint: the body.
fn admin_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("admin connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").as_bytes())
        .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn refused_total(proxy: &Proxy) -> u64 {
    let text = admin_get(proxy.admin.expect("admin address"), "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("ringgate_connections_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no refused counter in:\n{text}"))
}

/// True when the server closes a fresh TCP connection at once, before any handshake.
fn closed_at_once(addr: SocketAddr, pki: &Pki) -> bool {
    let tcp = TcpStream::connect(addr).expect("TCP connect is accepted");
    let t = Instant::now();
    let r = client::handshake(tcp, "localhost", &client_for(pki, Some(&pki.client)));
    r.is_err() && t.elapsed() < Duration::from_secs(2)
}

#[test]
fn per_worker_connection_limit_refuses_cleanly_and_frees_slots() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .runtime("max_connections_per_worker = 3\n\n[admin]\nlisten = \"127.0.0.1:0\"")
        .start();
    let mut held: Vec<Conn> = (0..3).map(|_| conn(&proxy, &pki)).collect();
    for c in &mut held {
        c.send(b"GET /held HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("send");
        assert_eq!(c.read_response().expect("response").status, 200);
    }
    for _ in 0..10 {
        assert!(
            closed_at_once(proxy.addr(), &pki),
            "a 4th connection was served"
        );
    }
    proxy.assert_log(&[
        "WARN",
        "connection limit reached",
        "runtime.max_connections_per_worker = 3",
    ]);
    let warnings = proxy
        .log()
        .lines()
        .filter(|l| l.contains("connection limit reached"))
        .count();
    assert!(
        warnings <= 3,
        "{warnings} warnings for 10 refusals: not rate limited"
    );
    assert_eq!(refused_total(&proxy), 10);
    // The held connections still work, and closing one frees its place.
    held[0]
        .send(b"GET /still HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    assert_eq!(held[0].read_response().expect("response").status, 200);
    drop(held.remove(0));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match client::try_get(proxy.addr(), &client_for(&pki, Some(&pki.client)), "/after") {
            Ok(r) => {
                assert_eq!(r.status, 200);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("no slot freed after a close: {e}"),
        }
    }
}

#[test]
fn process_connection_limit_counts_every_worker() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let mut cfg = Cfg::new(&pki, &up).runtime("max_connections = 4");
    cfg.workers = 2;
    let proxy = cfg.start();
    let mut held: Vec<Conn> = (0..4).map(|_| conn(&proxy, &pki)).collect();
    for c in &mut held {
        c.send(b"GET /held HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("send");
        assert_eq!(c.read_response().expect("response").status, 200);
    }
    for _ in 0..6 {
        assert!(
            closed_at_once(proxy.addr(), &pki),
            "a 5th connection was served"
        );
    }
    proxy.assert_log(&["connection limit reached", "runtime.max_connections = 4"]);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let r = client::get(proxy.addr(), &client_for(&pki, Some(&pki.client)), "/after");
    assert_eq!(r.status, 200);
}

#[test]
fn plain_listener_over_its_limit_answers_503_and_closes() {
    let proxy = Proxy::start(
        r#"[runtime]
workers = 1
max_connections = 1

[[listener]]
name = "plain"
listen = "127.0.0.1:0"

[[listener.location]]
path = "/"
return = { status = 200, body = "hello" }
"#,
    );
    let mut first = TcpStream::connect(proxy.addr()).expect("connect");
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send");
    let mut buf = [0u8; 512];
    let n = first.read(&mut buf).expect("first answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let mut second = TcpStream::connect(proxy.addr()).expect("TCP connect is accepted");
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = second.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut out = Vec::new();
    let _ = second.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("Connection: close"), "{text}");
    proxy.assert_log(&["connection limit reached"]);
}

/// This process's soft limit of open files.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1024)
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn two_thousand_idle_tls_connections_are_held_cheaply() {
    // This process and the proxy each need a descriptor per connection: fewer connections where
    // the soft limit is low (the proxy inherits it), said so.
    let limit = open_files_limit();
    let n = 2000.min(limit.saturating_sub(200));
    if n < 2000 {
        println!("idle connections: RLIMIT_NOFILE is {limit}: holding {n} instead of 2,000");
    }
    if n < 500 {
        println!("skipped: RLIMIT_NOFILE {limit} is too low to measure idle connections");
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let cfg = client_for(&pki, Some(&pki.client));
    // Warm up: allocator arenas, TLS caches, the upstream pool.
    for _ in 0..20 {
        assert_eq!(client::get(proxy.addr(), &cfg, "/warm").status, 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    let base = proxy.rss_kib();
    let fds_before = fd_count(proxy.pid);
    let started = Instant::now();
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(conn(&proxy, &pki));
    }
    let opened_in = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let held = proxy.rss_kib();
    let fds = fd_count(proxy.pid);
    let per_conn = held.saturating_sub(base) as f64 / n as f64;
    // Still serving while holding them.
    let t = Instant::now();
    let r = client::get(proxy.addr(), &cfg, "/while-idle");
    let served_in = t.elapsed();
    println!(
        "idle connections: {n} mTLS connections opened in {:.1}s; proxy RSS {base} KiB -> {held} KiB: \
         {per_conn:.1} KiB per idle connection; fds {fds_before} -> {fds}; a request meanwhile took {:.1} ms",
        opened_in.as_secs_f64(),
        served_in.as_secs_f64() * 1e3
    );
    assert_eq!(r.status, 200);
    assert!(fds >= fds_before + n, "{fds} fds for {n} connections");
    assert!(
        per_conn < 64.0,
        "{per_conn:.1} KiB per idle connection (bound 64 KiB)"
    );
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fd_count(proxy.pid) > fds_before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        fd_count(proxy.pid) <= fds_before + 2,
        "fds did not come back: {} (before {fds_before})",
        fd_count(proxy.pid)
    );
}

/// A client that stops reading a large static file is cut off after `send_timeout`, as nginx
/// cuts it: the connection does not stay open for as long as the client likes.
#[test]
fn a_client_that_stops_reading_a_static_file_is_cut_after_send_timeout() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let www = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(www.path().join("static")).expect("mkdir");
    let size = 32 * 1024 * 1024;
    std::fs::write(www.path().join("static/big.bin"), vec![b'x'; size]).expect("write");
    let proxy = Cfg::new(&pki, &up)
        .http("send_timeout = \"1s\"")
        .locations(&format!(
            "[[listener.location]]\npath = \"/static/\"\nroot = {}\n",
            crate::support::pki::p(www.path())
        ))
        .start();
    let mut c = conn(&proxy, &pki);
    c.send(b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    // Read nothing while the kernel buffers fill and send_timeout (1 s) runs out.
    std::thread::sleep(Duration::from_secs(4));
    let started = Instant::now();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match c.tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still reading after 15 s"
        );
    }
    eprintln!("received {got} of {size} bytes before the close");
    assert!(
        got < size,
        "the whole file arrived: the connection was never cut"
    );
}

/// Sends `request` as one TLS record and stops halfway through it: the proxy has ciphertext
/// it cannot decrypt until the rest comes, which it never does.
fn stall_mid_record(c: &mut Conn, request: &[u8]) {
    c.tls
        .conn
        .writer()
        .write_all(request)
        .expect("plaintext in");
    let mut record = Vec::new();
    while c.tls.conn.wants_write() {
        c.tls.conn.write_tls(&mut record).expect("record out");
    }
    assert!(record.len() > 20, "one record of {} bytes", record.len());
    c.tls
        .sock
        .write_all(&record[..record.len() / 2])
        .expect("half a record");
}

/// Connections that stop in the middle of a TLS record, before their first request and between
/// two requests, hold what they sent until their timeout, and no more than that: other clients
/// are served meanwhile, every stalled connection is closed when its time is up, and the
/// proxy's descriptors come back to where they were, after which it serves as before.
#[test]
fn connections_stalled_mid_record_are_cut_and_the_proxy_recovers() {
    const STALLED: usize = 150;
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .http("header_timeout = \"2s\"\nkeepalive_timeout = \"2s\"")
        .start();
    let addr = proxy.addr();
    let cfg = client_for(&pki, Some(&pki.client));
    for _ in 0..20 {
        assert_eq!(client::get(addr, &cfg, "/warm").status, 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    let base = proxy.rss_kib();
    let fds_before = fd_count(proxy.pid);
    let request = b"GET /stalled HTTP/1.1\r\nHost: localhost\r\nX-Pad: aaaaaaaaaaaaaaaa\r\n\r\n";

    // Half stall before their first request, half after one served request.
    let started = Instant::now();
    let mut stalled = Vec::with_capacity(STALLED);
    for i in 0..STALLED {
        let mut c = conn(&proxy, &pki);
        if i % 2 == 1 {
            c.send(b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .expect("send");
            assert_eq!(c.read_response().expect("first response").status, 200);
        }
        stall_mid_record(&mut c, request);
        stalled.push(c);
    }
    let held = proxy.rss_kib();

    // Other clients meanwhile: new connections and a keep-alive one, all answered.
    let mut ka = conn(&proxy, &pki);
    let mut served = 0;
    for i in 0..30 {
        let status = if i % 2 == 0 {
            client::get(addr, &cfg, "/meanwhile").status
        } else {
            ka.send(b"GET /meanwhile-ka HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .expect("send");
            ka.read_response().expect("keep-alive response").status
        };
        assert_eq!(status, 200, "a normal request during the stall");
        served += 1;
    }
    drop(ka);

    // Every stalled connection is closed by the proxy once its 2 s are up.
    for (i, c) in stalled.iter_mut().enumerate() {
        let left = Duration::from_secs(8).saturating_sub(started.elapsed());
        assert!(
            c.closed_by_server(left.max(Duration::from_millis(100))),
            "stalled connection {i} still open after {:?}",
            started.elapsed()
        );
    }
    let closed_in = started.elapsed();
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fd_count(proxy.pid) > fds_before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let fds_after = fd_count(proxy.pid);
    let after = proxy.rss_kib();
    println!(
        "stalled mid-record: {STALLED} connections, RSS {base} KiB -> {held} KiB while stalled \
         ({:.1} KiB each) -> {after} KiB after; all closed {:.1} s after the first stalled; \
         {served} other requests answered meanwhile; fds {fds_before} -> {fds_after}",
        held.saturating_sub(base) as f64 / STALLED as f64,
        closed_in.as_secs_f64()
    );
    assert!(
        fds_after <= fds_before + 2,
        "fds did not come back: {fds_after} (before {fds_before})"
    );
    assert!(
        up.seen().iter().all(|s| s.target != "/stalled"),
        "a stalled request reached the upstream"
    );
    // And the proxy serves as before.
    for _ in 0..20 {
        assert_eq!(client::get(addr, &cfg, "/after").status, 200);
    }
}
