//! Refusals a client can repeat at will (malformed requests, slowloris heads, refused
//! handshakes, 421s), 10,000 of each, are
//! counted exactly in `ringgate_refusals_total`, while their log lines are rate-limited per
//! worker with summary lines that account for every line not written; normal clients are
//! served throughout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::observability::{admin_get, metric};
use crate::support::client;
use crate::support::pki::{p, Pki};
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};
use crate::support::{client_for, Cfg};

/// Lines of one kind a worker writes per second before it only counts them.
const BURST: usize = 10;

/// Runs `n` short connections to `addr` over four threads, each sending `bytes` and reading
/// what comes back (up to `read` bytes); returns how many answers started with `expect`.
fn hammer(addr: SocketAddr, n: usize, bytes: &'static [u8], expect: &'static [u8]) -> usize {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut matched = 0;
                for _ in (t..n).step_by(4) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    if s.write_all(bytes).is_err() {
                        continue;
                    }
                    if expect.is_empty() {
                        // A refused handshake: the proxy lingers before closing; do not wait.
                        continue;
                    }
                    let mut got = vec![0u8; expect.len()];
                    if s.read_exact(&mut got).is_ok() && got == expect {
                        matched += 1;
                    }
                }
                matched
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap_or(0)).sum()
}

/// Slowloris: `n` connections over four threads, fifty open at a time per thread, each sending
/// half a head and waiting for the 408; returns how many got it.
fn dribble(addr: SocketAddr, n: usize) -> usize {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut got = 0;
                let mine = (t..n).step_by(4).count();
                let mut left = mine;
                while left > 0 {
                    let batch = left.min(50);
                    left -= batch;
                    let conns: Vec<TcpStream> = (0..batch)
                        .filter_map(|_| TcpStream::connect(addr).ok())
                        .filter_map(|mut s| {
                            s.write_all(b"GET / HTTP/1.1\r\nHost: a").ok().map(|_| s)
                        })
                        .collect();
                    for mut s in conns {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut head = [0u8; 12];
                        if s.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 408" {
                            got += 1;
                        }
                    }
                }
                got
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap_or(0)).sum()
}

/// Lines of `log` containing `needle`, and the lines it stands for in summary lines that
/// start "N more <what> like this".
fn accounted(log: &str, needle: &str, what: &str) -> (usize, u64) {
    let written = log
        .lines()
        .filter(|l| l.contains(needle) && !l.contains(" like this in the last "))
        .count();
    let summed = log
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find(" more ")?..];
            if !rest.starts_with(&format!(" more {what} like this")) {
                return None;
            }
            let before = &l[..l.find(" more ")?];
            let number = before.rsplit(' ').next()?.replace(',', "");
            number.parse::<u64>().ok()
        })
        .sum();
    (written, summed)
}

#[test]
fn repeated_refusals_are_counted_exactly_and_logged_at_a_bounded_rate() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let port = crate::support::nginx::free_port();
    // Two servers on one address, both verifying clients (a Host naming the other one gets
    // 421), and a plain listener.
    let plain = r#"
[[listener]]
name = "plain"
listen = "127.0.0.1:0"
[listener.http]
header_timeout = "100ms"
[[listener.location]]
path = "/"
proxy_pass = "http://app"
"#;
    let others = format!("{}{plain}", crate::support::admin_server_on(&pki, port));
    let toml = Cfg::new(&pki, &up)
        .tls(&format!(
            "client_certificate = {}\nverify_client = \"on\"",
            p(&pki.ca.pem_path)
        ))
        .render()
        .replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\"\nserver_names = [\"localhost\"]"),
            1,
        )
        .replacen(
            "[[listener]]",
            "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]",
            1,
        )
        .replacen("[[upstream]]", &format!("{others}\n[[upstream]]"), 1);
    let proxy = Proxy::start(&toml);
    let admin = proxy.admin.expect("admin address");
    let started = Instant::now();

    // 10,000 malformed requests on the plain listener: 400 each.
    let answered = hammer(
        proxy.addr_of("plain"),
        10_000,
        b"NOT A REQUEST\r\n\r\n",
        b"HTTP/1.1 400",
    );
    assert_eq!(answered, 10_000);
    // 10,000 connections that send plain HTTP to the TLS address: refused handshakes.
    hammer(
        proxy.addr(),
        10_000,
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"",
    );
    // 10,000 slowloris connections: 408 each after header_timeout.
    assert_eq!(dribble(proxy.addr_of("plain"), 10_000), 10_000);
    // 10,000 requests whose Host names the other server: 421 each (resumed handshakes).
    let cc = client_for(&pki, Some(&pki.client));
    for _ in 0..10_000 {
        let mut c = client::connect(proxy.addr(), "localhost", &cc).expect("handshake");
        c.send(b"GET /x HTTP/1.1\r\nHost: admin.example.com\r\n\r\n")
            .expect("send");
        assert_eq!(c.read_response().expect("response").status, 421);
    }
    // Normal clients are still served.
    assert_eq!(client::get(proxy.addr(), &cc, "/fine").status, 200);
    let elapsed = started.elapsed();

    // Every refusal counted, whatever was logged.
    let (_, text) = admin_get(admin, "/metrics");
    let count = |kind: &str| {
        metric(
            &text,
            &format!("ringgate_refusals_total{{kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(count("bad_request"), Some(10_000.0), "{text}");
    assert!(count("handshake").is_some_and(|n| n >= 10_000.0), "{text}");
    assert_eq!(count("misdirected"), Some(10_000.0), "{text}");
    assert_eq!(count("timeout"), Some(10_000.0), "{text}");

    // The summaries of the last windows come with the worker's next periodic flush.
    std::thread::sleep(Duration::from_millis(2_500));
    let log = proxy.log();
    let windows = elapsed.as_secs() as usize + 4;
    for (needle, what, total) in [
        ("bad request:", "bad requests", 10_000u64),
        ("(421)", "misdirected requests (421)", 10_000),
        (
            "timed out sending the request head",
            "client timeouts",
            10_000,
        ),
    ] {
        let (written, summed) = accounted(&log, needle, what);
        assert!(
            written <= BURST * windows,
            "{written} `{needle}` lines written in {elapsed:?}"
        );
        assert_eq!(
            written as u64 + summed,
            total,
            "every `{needle}` line is either written or accounted for in a summary"
        );
    }
    let (written, summed) = accounted(&log, "TLS handshake failed", "refused TLS handshakes");
    assert!(written <= BURST * windows, "{written} handshake lines");
    assert!(written as u64 + summed >= 10_000);
    assert!(
        log.lines().count() < 2_000,
        "the log stays small: {} lines",
        log.lines().count()
    );
}
