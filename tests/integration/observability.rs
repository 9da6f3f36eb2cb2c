//! `/metrics` after a scripted set of requests (exact counter values, and the exposition read
//! by prometheus_client's text parser), a revoked client counted `revoked` on full and resumed
//! handshakes, `/healthz`, and `/readyz` flipping when the upstream goes away.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::ClientSessionMemoryCache;

use crate::support::ca_dir_config;
use crate::support::client::{self, ClientOpts};
use crate::support::client_for;
use crate::support::ossl::{self, sh};
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

/// Seconds since the Unix epoch, as the expiry gauges give time.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Asserts that `text` passes `scripts/prom-check`: python's prometheus_client text parser,
/// then every family typed, base units, no `quantile` label outside a summary, histograms
/// cumulative up to `+Inf` and equal to `_count`. Skipped, saying so, without python3 or
/// prometheus_client (`pip install prometheus_client`).
pub(crate) fn assert_parses(text: &str) {
    use std::process::{Command, Stdio};
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/prom-check");
    let child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("skipped the Prometheus parser check: no python3");
        return;
    };
    if let Some(mut stdin) = child.stdin.take() {
        // (A checker that exits at once, missing its module, may not read it all.)
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().expect("prom-check ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(77) {
        eprintln!("skipped the Prometheus parser check: {said}");
        return;
    }
    assert!(out.status.success(), "prom-check: {said}\n{text}");
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
        (
            "ringgate_requests_total{protocol=\"HTTP/1.1\",status=\"200\"}",
            3.0,
        ),
        (
            "ringgate_requests_total{protocol=\"HTTP/1.1\",status=\"403\"}",
            1.0,
        ),
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
    let left = metric(
        &text,
        "ringgate_client_certificate_expiry_timestamp_seconds{subject=\"CN=alice,OU=Eng,O=Acme,C=US\"}",
    )
    .map(|at| at - unix_now());
    // (The test PKI's certificates are valid for 30 days.)
    assert!(
        left.is_some_and(|s| (29.0 * 86_400.0..=30.0 * 86_400.0).contains(&s)),
        "{left:?} seconds left:\n{text}"
    );
    for kind in [
        "kind=\"server\",listener=\"main\",subject=\"CN=localhost\"",
        "kind=\"client_ca\",listener=\"main\",subject=\"CN=ringgate test CA,O=ringgate tests\"",
    ] {
        let name = format!("ringgate_certificate_expiry_timestamp_seconds{{{kind}}}");
        let left = metric(&text, &name).map(|at| at - unix_now());
        assert!(
            left.is_some_and(|s| (29.0 * 86_400.0..=30.0 * 86_400.0).contains(&s)),
            "{name}: {left:?} seconds left:\n{text}"
        );
    }
    assert!(!text.contains("quantile"), "{text}");
    assert_parses(&text);
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

/// A client revoked (new CRL picked up by the file watcher) after it got a TLS 1.3 session
/// ticket: refused on its resumed handshake and on a full one, both counted
/// `outcome="revoked"` (not `bad_certificate` for the resumed one).
#[test]
fn revoked_client_counts_revoked_on_full_and_resumed_handshakes() {
    if !ossl::available("revoked_client_counts_revoked_on_full_and_resumed_handshakes") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    sh(
        d,
        r#"$RINGGATE ca init ca --cn "Metrics CA" --org Acme
           $RINGGATE ca -d ca issue server --cn localhost --san DNS:localhost,IP:127.0.0.1
           $RINGGATE ca -d ca issue client --cn alice --ou Client
           $RINGGATE ca -d ca crl --out current.crl"#,
    );
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&ca_dir_config(
        d,
        &up,
        1,
        "watch_interval = \"200ms\"\n\n[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("crl = [{}]", p(&d.join("current.crl"))),
    ));
    let alice = |cache: Option<Arc<ClientSessionMemoryCache>>| {
        client::config(&ClientOpts {
            ca: Some(&d.join("ca/ca.crt")),
            cert: Some((
                &d.join("ca/certs/alice.crt"),
                &d.join("ca/private/alice.key"),
            )),
            version: Some(&rustls::version::TLS13),
            resumption: cache,
        })
    };
    let resuming = alice(Some(Arc::new(ClientSessionMemoryCache::new(32))));
    let get = |cfg: &Arc<rustls::ClientConfig>| {
        let mut c = client::connect(proxy.addr(), "localhost", cfg)?;
        let kind = c.tls.conn.handshake_kind();
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        c.read_response().map(|r| (kind, r.status))
    };
    assert_eq!(
        get(&resuming).expect("alice, before revocation"),
        (Some(rustls::HandshakeKind::Full), 200)
    );
    sh(
        d,
        "$RINGGATE ca -d ca revoke --cert ca/certs/alice.crt --reason keyCompromise
         $RINGGATE ca -d ca crl --out next.crl
         mv next.crl current.crl",
    );
    proxy.assert_log(&["configuration reloaded"]);
    std::thread::sleep(Duration::from_millis(200));
    let mut c = client::connect(proxy.addr(), "localhost", &resuming).expect("resumed handshake");
    assert_eq!(
        c.tls.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    let r = c
        .send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .and_then(|_| c.read_response());
    assert!(
        r.is_err(),
        "a revoked client was served on resumption: {r:?}"
    );
    assert!(get(&alice(None)).is_err(), "a revoked client was served");
    let (status, text) = admin_get(proxy.admin.expect("admin address"), "/metrics");
    assert_eq!(status, 200, "{text}");
    for (name, value) in [
        (
            "ringgate_handshakes_total{kind=\"full\",outcome=\"ok\"}",
            Some(1.0),
        ),
        (
            "ringgate_handshakes_total{kind=\"full\",outcome=\"revoked\"}",
            Some(1.0),
        ),
        (
            "ringgate_handshakes_total{kind=\"resumed\",outcome=\"revoked\"}",
            Some(1.0),
        ),
        (
            "ringgate_handshakes_total{kind=\"resumed\",outcome=\"bad_certificate\"}",
            None,
        ),
    ] {
        assert_eq!(metric(&text, name), value, "{name} in:\n{text}");
    }
    assert_parses(&text);
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
