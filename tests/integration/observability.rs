//! `/metrics` after a scripted set of requests (exact counter values), `/healthz`,
//! and `/readyz` flipping when the upstream goes away.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::client;
use crate::support::client_for;
use crate::support::pki::{p, Pki};
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};

/// A plain GET to the admin endpoint: (status, body).
pub(crate) fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("admin connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").as_bytes())
        .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

pub(crate) fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start) && l[line_start.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn config(pki: &Pki, upstream: &str) -> String {
    format!(
        r#"[runtime]
workers = 2

[admin]
listen = "127.0.0.1:0"

[identity]
roles = [ {{ role = "eng", ou = "Eng" }} ]

[[listener]]
name = "main"
listen = "127.0.0.1:0"
[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
client_certificate = {ca}
verify_client = "on"
[[listener.location]]
path = "/"
proxy_pass = "http://app"
[[listener.location]]
path = "/admin"
allow_roles = ["admin"]
proxy_pass = "http://app"

[[upstream]]
name = "app"
servers = ["{upstream}"]
connect_timeout = "1s"
"#,
        cert = p(&pki.server.cert),
        key = p(&pki.server.key),
        ca = p(&pki.ca.pem_path),
    )
}

#[test]
fn metrics_count_exactly_what_happened() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&config(&pki, &up.addr.to_string()));
    let admin = proxy
        .admin
        .expect("the readiness line names the admin address");
    let alice = client_for(&pki, Some(&pki.client));
    // Three requests on one kept-alive connection: one upstream connection, reused twice.
    let mut c = client::connect(proxy.addr(), "localhost", &alice).expect("handshake");
    for i in 0..3 {
        c.send(format!("GET /ok/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .expect("send");
        assert_eq!(c.read_response().expect("response").status, 200);
    }
    drop(c);
    // A role refusal (403) on a new connection.
    assert_eq!(client::get(proxy.addr(), &alice, "/admin/x").status, 403);
    // No certificate: refused in the handshake.
    assert!(client::try_get(proxy.addr(), &client_for(&pki, None), "/").is_err());

    let (status, text) = admin_get(admin, "/metrics");
    assert_eq!(status, 200, "{text}");
    let want = [
        ("ringgate_workers", 2.0),
        ("ringgate_requests_total{status=\"200\"}", 3.0),
        ("ringgate_requests_total{status=\"403\"}", 1.0),
        // (The client keeps its session: its second connection resumes.)
        (
            "ringgate_handshakes_total{kind=\"full\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "ringgate_handshakes_total{kind=\"resumed\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "ringgate_handshakes_total{kind=\"full\",outcome=\"no_certificate\"}",
            1.0,
        ),
        ("ringgate_upstream_connections_total{result=\"new\"}", 1.0),
        (
            "ringgate_upstream_connections_total{result=\"reused\"}",
            2.0,
        ),
        ("ringgate_request_duration_seconds_count", 4.0),
        ("ringgate_upstream_duration_seconds_count", 3.0),
        ("ringgate_config_reloads_total{result=\"applied\"}", 0.0),
    ];
    for (name, value) in want {
        assert_eq!(metric(&text, name), Some(value), "{name} in:\n{text}");
    }
    assert!(
        metric(&text, "ringgate_verify_cache_misses_total").is_some_and(|v| v >= 1.0),
        "{text}"
    );
    let days = metric(
        &text,
        "ringgate_client_certificate_days_left{subject=\"CN=alice,OU=Eng,O=Acme,C=US\"}",
    );
    // (The test PKI's certificates are valid for 30 days.)
    assert!(days.is_some_and(|d| (29.0..=30.0).contains(&d)), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with(
            "ringgate_certificate_days_left{kind=\"server\",listener=\"main\",subject=\"CN=localhost\"}"
        )),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with(
            "ringgate_certificate_days_left{kind=\"client_ca\",listener=\"main\",subject=\"CN=ringgate test CA,O=ringgate tests\"}"
        )),
        "{text}"
    );
    // A reload is counted, and the scrape after it still answers.
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &proxy.pid.to_string()])
        .status();
    proxy.assert_log(&["configuration reloaded"]);
    let (_, text) = admin_get(admin, "/metrics");
    assert_eq!(
        metric(&text, "ringgate_config_reloads_total{result=\"applied\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(admin_get(admin, "/nope").0, 404);
}

#[test]
fn readyz_flips_when_the_upstream_goes_away() {
    let pki = Pki::new();
    let app = std::net::TcpListener::bind("127.0.0.1:0").expect("app");
    let app_addr = app.local_addr().expect("addr");
    let proxy = Proxy::start(&config(&pki, &app_addr.to_string()));
    let admin = proxy.admin.expect("admin");
    assert_eq!(admin_get(admin, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(admin_get(admin, "/readyz").0, 200);
    drop(app);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = admin_get(admin, "/readyz");
        if status == 503 {
            assert!(
                body.contains("upstream `app` has no reachable server"),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "readyz stayed {status}: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(admin_get(admin, "/healthz").0, 200, "alive while not ready");
}
