//! HTTP/1.1 Upgrade (WebSocket) tunnels: `upgrade = ["websocket"]` on a `proxy_pass`
//! location. The real proxy with an mTLS listener sits in front of the python echo upstream
//! (`scripts/ws-echo-upstream.py`, driven by `scripts/ws-client.py` or by frames written here)
//! or in front of the raw recording upstream when a test needs the exact bytes the upstream
//! received. Tests that need python's `websockets` say so and are skipped without it; the
//! nginx comparison is skipped without nginx.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::DnType;

use crate::observability::{admin_get, assert_parses};
use crate::support::client;
use crate::support::nginx::{free_port, nginx_binary, write_conf, Nginx};
use crate::support::pki::{p, Leaf, LeafSpec, Pki, CLIENT_DN};
use crate::support::proxy::{self, Proxy, BIN};
use crate::support::upstream::{Mode, Upstream};
use crate::support::ws::{
    self, header_values, python_websockets, upgrade_request, EchoUpstream, Tunnel, ACCEPT, KEY,
    OP_CLOSE, OP_PING, OP_PONG,
};
use crate::support::{client_for, curl, curl_url, mtls_conn, path_str, Cfg};

/// `/` proxied to `app` with WebSocket tunnels allowed.
const WS_LOCATION: &str =
    "[[listener.location]]\npath = \"/\"\nproxy_pass = \"http://app\"\nupgrade = [\"websocket\"]\n";

/// A 101 for a WebSocket upgrade with RFC 6455's sample key, as an upstream writes it.
const SWITCH_WS: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// The proxy in front of the python echo upstream, `/` allowing WebSocket tunnels.
fn ws_proxy(pki: &Pki, echo: &EchoUpstream) -> Proxy {
    Cfg::with_upstream(pki, echo.server())
        .locations(WS_LOCATION)
        .start()
}

fn lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

/// True when the comma-separated header value holds `token` (any case).
fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Waits up to `wait` for `f`, failing with `what`.
#[track_caller]
fn wait_until(what: &str, wait: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client certificate `CN=<cn>,OU=<ou>,O=Acme,C=US` from the test CA.
fn cert_with_ou(pki: &Pki, name: &str, cn: &str, ou: &str) -> Leaf {
    let mut spec = LeafSpec::client(name, cn);
    for (t, v) in &mut spec.subject {
        if *t == DnType::OrganizationalUnitName {
            *v = ou;
        }
    }
    pki.client_with(spec)
}

/// The sum of every sample of metric family `name` (any labels); None when it is absent.
fn family_sum(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn tunnel_metrics(proxy: &Proxy) -> (Option<f64>, Option<f64>) {
    let (status, text) = admin_get(proxy.admin.expect("admin address"), "/metrics");
    assert_eq!(status, 200, "{text}");
    assert_parses(&text);
    (
        family_sum(&text, "ringgate_tunnels_open"),
        family_sum(&text, "ringgate_tunnels_total"),
    )
}

// ------------------------------------------------------------------ the echo, end to end

#[test]
fn text_binary_1mib_ping_and_close_codes_pass_through_the_tunnel() {
    if !python_websockets("text_binary_1mib_ping_and_close_codes_pass_through_the_tunnel") {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    // The same scenarios straight to the upstream: what a client must see through the proxy.
    let direct = ws::client(&format!("ws://127.0.0.1:{}/ws", echo.addr.port()), &[]);
    assert_eq!(direct.code, 0, "{:?}", direct);
    let before = echo.events().len();

    let proxy = ws_proxy(&pki, &echo);
    let (url, args) = ws::wss(&proxy, "/ws", &pki, Some(&pki.client));
    let run = ws::client(&url, &args);
    assert_eq!(run.code, 0, "{run:?}\nlog:\n{}", proxy.log());
    assert_eq!(run.status(), 101);
    assert_eq!(
        run.json["results"], direct.json["results"],
        "frames through ringgate differ from frames straight from the upstream"
    );
    let results = &run.json["results"];
    assert_eq!(results["big"]["len"], 1 << 20);
    assert_eq!(results["ping"]["pong"], true);
    assert_eq!(
        results["close-client"]["received"],
        serde_json::json!([4000, "bye from client"])
    );
    assert_eq!(
        results["close-server"]["received"],
        serde_json::json!([4001, "bye from server"])
    );
    // The 101 carries the upstream's end-to-end headers: the accept key, and the extension
    // both ends negotiated (so Sec-WebSocket-Extensions passed both ways).
    let headers = &run.json["headers"];
    assert!(
        headers["upgrade"]
            .as_str()
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{headers}"
    );
    assert!(
        has_token(headers["connection"].as_str(), "upgrade"),
        "{headers}"
    );
    assert!(headers["sec-websocket-accept"].is_string(), "{headers}");
    assert!(
        headers["sec-websocket-extensions"]
            .as_str()
            .is_some_and(|v| v.contains("permessage-deflate")),
        "{headers}"
    );
    // The upstream got the client's close code, and its own close was answered with its code.
    let closed: Vec<_> = echo.wait_events("closed", 4, Duration::from_secs(5));
    let ours: Vec<_> = closed
        .iter()
        .filter(|e| echo.events()[before..].contains(e))
        .map(|e| (e["close_code"].clone(), e["close_reason"].clone()))
        .collect();
    assert_eq!(
        ours,
        vec![
            (
                serde_json::json!(4000),
                serde_json::json!("bye from client")
            ),
            (
                serde_json::json!(4001),
                serde_json::json!("bye from server")
            ),
        ]
    );
}

#[test]
fn the_101_carries_the_upgrade_headers_and_frames_written_by_hand_echo() {
    if !python_websockets("the_101_carries_the_upgrade_headers_and_frames_written_by_hand_echo") {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let proxy = ws_proxy(&pki, &echo);
    let mut t = Tunnel::open(&proxy, &pki, "/raw");
    assert!(t.head.starts_with("HTTP/1.1 101 "), "{}", t.head);
    assert!(
        t.header("Upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{}",
        t.head
    );
    assert!(has_token(t.header("Connection"), "upgrade"), "{}", t.head);
    assert_eq!(t.header("Sec-WebSocket-Accept"), Some(ACCEPT), "{}", t.head);
    assert_eq!(t.echo("hello"), "hello");
    // A ping answered by the upstream's pong, through the tunnel.
    t.send(OP_PING, b"are you there").expect("ping");
    let pong = t.read_frame(Duration::from_secs(5)).expect("pong");
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OP_PONG, &b"are you there"[..])
    );
    // A 200 KiB text message, in one frame with a 64-bit length.
    let big = "x".repeat(200 * 1024);
    assert_eq!(t.echo(&big).len(), big.len());
    let back = t.close(1000).expect("the upstream's close frame");
    assert_eq!(back.payload[..2], 1000u16.to_be_bytes());
    assert!(t.closed_within(Duration::from_secs(5)));
    let opened = echo.wait_events("open", 1, Duration::from_secs(2));
    assert_eq!(opened[0]["path"], "/raw");
}

// ------------------------------------------------------------------ access, identity

#[test]
fn identity_headers_reach_the_upstream_and_forged_ones_never_do() {
    if !python_websockets("identity_headers_reach_the_upstream_and_forged_ones_never_do") {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let proxy = Cfg::with_upstream(&pki, echo.server())
        .http("\n[listener.identity_headers]\nsubject = \"X-SSL-Client-DN\"\nverify = \"X-SSL-Client-Verify\"\n")
        .locations(WS_LOCATION)
        .start();
    let (url, mut args) = ws::wss(&proxy, "/id", &pki, Some(&pki.client));
    args.extend(
        [
            "-H",
            "X-SSL-Client-DN: CN=mallory,O=Forged",
            "-H",
            "x-ssl-client-verify: FORGED",
            "-H",
            "X-SSL-Client_DN: CN=underscore-forged",
            "--scenario",
            "text",
        ]
        .map(String::from),
    );
    let run = ws::client(&url, &args);
    assert_eq!(run.code, 0, "{run:?}\nlog:\n{}", proxy.log());
    assert_eq!(run.status(), 101);
    let req = echo.wait_events("request", 1, Duration::from_secs(2))[0].clone();
    assert_eq!(header_values(&req, "X-SSL-Client-DN"), vec![CLIENT_DN]);
    assert_eq!(header_values(&req, "X-SSL-Client-Verify"), vec!["SUCCESS"]);
    assert!(header_values(&req, "X-SSL-Client_DN").is_empty(), "{req}");
    let all = req["headers"].to_string();
    assert!(
        !all.contains("mallory") && !all.contains("FORGED") && !all.contains("forged"),
        "{all}"
    );
    // The upgrade itself was forwarded: the upstream answered 101 to it.
    assert!(has_token(
        header_values(&req, "Upgrade").first().map(String::as_str),
        "websocket"
    ));
    assert!(has_token(
        header_values(&req, "Connection")
            .first()
            .map(String::as_str),
        "upgrade"
    ));
}

#[test]
fn a_client_without_the_role_gets_403_no_101_and_the_upstream_sees_no_connection() {
    if !python_websockets(
        "a_client_without_the_role_gets_403_no_101_and_the_upstream_sees_no_connection",
    ) {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let proxy = Cfg::with_upstream(&pki, echo.server())
        .runtime("\n[identity]\nroles = [ { role = \"eng\", ou = \"Eng\" }, { role = \"ops\", ou = \"Ops\" } ]\n")
        .tls(&format!(
            "client_certificate = {}\nverify_client = \"optional\"\n",
            p(&pki.ca.pem_path)
        ))
        .locations(
            "[[listener.location]]\npath = \"/ws\"\nallow_roles = [\"ops\"]\nproxy_pass = \"http://app\"\nupgrade = [\"websocket\"]\n",
        )
        .start();
    // Another role: 403. No certificate: 401. Neither is switched.
    let (url, args) = ws::wss(&proxy, "/ws/x", &pki, Some(&pki.client));
    let run = ws::client(&url, &args);
    assert_eq!((run.code, run.status()), (2, 403), "{run:?}");
    let (url, args) = ws::wss(&proxy, "/ws/x", &pki, None);
    let run = ws::client(&url, &args);
    assert_eq!((run.code, run.status()), (2, 401), "{run:?}");
    // By hand: the 403 is an ordinary refusal page (which closes the connection, as every
    // refusal does); the bytes sent after the upgrade request are never tunnelled anywhere.
    let mut c = mtls_conn(&proxy, &pki);
    let pipelined = "GET /ws/y HTTP/1.1\r\nHost: localhost\r\n\r\n";
    c.send(format!("{}{pipelined}", upgrade_request("/ws/x", "")).as_bytes())
        .expect("send");
    let r = c.read_response().expect("the refusal");
    assert_eq!(r.status, 403, "{}", r.head);
    assert!(r.header("Upgrade").is_none(), "{}", r.head);
    assert!(
        c.closed_by_server(Duration::from_secs(3)),
        "the refused connection stayed open"
    );
    proxy.assert_log(&["denied (403)"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        echo.events_of("tcp").is_empty(),
        "refused clients reached the upstream: {:?}",
        echo.events()
    );
    // The role the location admits is switched.
    let ops = cert_with_ou(&pki, "ops", "bob", "Ops");
    let (url, mut args) = ws::wss(&proxy, "/ws/x", &pki, Some(&ops));
    args.extend(["--scenario".to_string(), "text".to_string()]);
    let run = ws::client(&url, &args);
    assert_eq!(
        (run.code, run.status()),
        (0, 101),
        "{run:?}\nlog:\n{}",
        proxy.log()
    );
    assert_eq!(echo.events_of("tcp").len(), 1, "{:?}", echo.events());
}

#[test]
fn curl_sees_101_switching_protocols() {
    if !python_websockets("curl_sees_101_switching_protocols") {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let proxy = ws_proxy(&pki, &echo);
    let (resolve, url) = curl_url(proxy.addr(), "/curl");
    let key = format!("Sec-WebSocket-Key: {KEY}");
    let t = Instant::now();
    let (code, out, err) = curl(&[
        "-i",
        "-N",
        "--http1.1",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        &key,
        "--cacert",
        path_str(&pki.ca.pem_path),
        "--cert",
        path_str(&pki.client.cert),
        "--key",
        path_str(&pki.client.key),
        "--resolve",
        &resolve,
        "--max-time",
        "3",
        &url,
    ]);
    assert!(t.elapsed() < Duration::from_secs(8));
    assert!(
        out.starts_with("HTTP/1.1 101"),
        "curl exit {code}: {out}\n{err}\nlog:\n{}",
        proxy.log()
    );
    let accept = format!("sec-websocket-accept: {}", ACCEPT.to_ascii_lowercase());
    assert!(out.to_ascii_lowercase().contains(&accept), "{out}");
    // curl keeps the tunnel open until --max-time: 28 is "operation timed out".
    assert_eq!(code, 28, "{out}\n{err}");
    assert_eq!(
        echo.wait_events("open", 1, Duration::from_secs(2))[0]["path"],
        "/curl"
    );
}

// ------------------------------------------------------------------ smuggling

#[test]
fn h2c_is_never_forwarded_even_where_websocket_is_allowed() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).locations(WS_LOCATION).start();
    let mut c = mtls_conn(&proxy, &pki);
    let h2c = "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n";
    c.send(format!("GET /first HTTP/1.1\r\nHost: localhost\r\n{h2c}\r\n").as_bytes())
        .expect("send");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200, "{}", r.head);
    let seen = up.last();
    assert_eq!(seen.header("Upgrade"), None, "{:?}", seen.headers);
    assert_eq!(seen.header("HTTP2-Settings"), None, "{:?}", seen.headers);
    assert!(
        !has_token(seen.header("Connection"), "upgrade"),
        "{:?}",
        seen.headers
    );
    // Both asked for: only the allowed one is forwarded.
    c.send(
        format!(
            "GET /both HTTP/1.1\r\nHost: localhost\r\nUpgrade: h2c, websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("send");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200, "{}", r.head);
    let seen = up.last();
    assert_eq!(seen.target, "/both");
    let upgrade = seen
        .header("Upgrade")
        .expect("Upgrade: websocket forwarded");
    assert!(upgrade.eq_ignore_ascii_case("websocket"), "{upgrade}");
    assert!(
        has_token(seen.header("Connection"), "upgrade"),
        "{:?}",
        seen.headers
    );
    let raw = lower(&up.raw_all());
    assert!(
        !raw.contains("h2c") && !raw.contains("http2-settings"),
        "{raw}"
    );
    // An upstream that switches to h2c anyway: 502, and its connection is closed.
    up.set_mode(Mode::Replies(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n".to_vec(),
    ));
    let mut c = mtls_conn(&proxy, &pki);
    c.send(format!("GET /again HTTP/1.1\r\nHost: localhost\r\n{h2c}\r\n").as_bytes())
        .expect("send");
    assert_eq!(c.read_response().expect("response").status, 502);
    wait_until(
        "the switched upstream connection to close",
        Duration::from_secs(5),
        || up.open_conns() == 0,
    );
    assert!(!lower(&up.raw_all()).contains("h2c"));
}

/// The `h2csmuggler` of `scripts/smuggling-tools` (BishopFox's, from `H2CSMUGGLER_DIR` or
/// `../shared/tools/h2csmuggler`) with python `h2`, against a location that allows WebSocket:
/// no h2c tunnel, behind an ordinary upstream and one that answers 101 to anything.
#[test]
fn h2csmuggler_finds_no_h2c_tunnel_through_a_websocket_location() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tool = std::env::var_os("H2CSMUGGLER_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/tools/h2csmuggler"));
    let venv = root.join("target/smuggling-tools/venv/bin/python");
    let python = [venv.display().to_string(), "python3".to_string()]
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import h2"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let (Some(python), true) = (python, tool.join("h2csmuggler.py").exists()) else {
        eprintln!(
            "SKIPPED h2csmuggler_finds_no_h2c_tunnel_through_a_websocket_location: h2csmuggler or python h2 missing (scripts/smuggling-tools installs h2)"
        );
        return;
    };
    let pki = Pki::new();
    for reply in [
        None,
        Some(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
                .to_vec(),
        ),
    ] {
        let up = Upstream::start(reply.clone().map_or(Mode::Echo, Mode::Replies));
        // h2csmuggler presents no client certificate.
        let proxy = Cfg::new(&pki, &up).tls("").locations(WS_LOCATION).start();
        let url = format!("https://127.0.0.1:{}/", proxy.addr().port());
        let out = Command::new(&python)
            .arg(tool.join("h2csmuggler.py"))
            .args(["-x", &url, "-t"])
            .output()
            .expect("run h2csmuggler");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success() && text.contains("Failed to upgrade"),
            "h2csmuggler upgraded (upstream answering 101: {}):\n{text}",
            reply.is_some()
        );
        let raw = lower(&up.raw_all());
        for needle in ["h2c", "http2-settings", "pri * http/2.0"] {
            assert!(!raw.contains(needle), "the upstream saw {needle}:\n{raw}");
        }
    }
}

#[test]
fn a_101_that_answers_no_requested_upgrade_is_a_502_and_closes_the_upstream_connection() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .locations(WS_LOCATION)
        .up("read_timeout = \"2s\"")
        .start();
    let cases: [(&str, String, &[u8]); 3] = [
        (
            "a 101 to a request that asked for no upgrade",
            "GET /plain HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(),
            SWITCH_WS,
        ),
        (
            "a 101 naming another token",
            upgrade_request("/other", ""),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        ),
        (
            "a 101 naming no token",
            upgrade_request("/none", ""),
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
        ),
    ];
    for (what, request, reply) in cases {
        up.set_mode(Mode::Replies(reply.to_vec()));
        let before = up.accepts();
        let mut c = mtls_conn(&proxy, &pki);
        c.send(request.as_bytes()).expect("send");
        let r = c.read_response().expect("response");
        assert_eq!(r.status, 502, "{what}: {}\nlog:\n{}", r.head, proxy.log());
        assert!(r.header("Upgrade").is_none(), "{what}: {}", r.head);
        assert_eq!(up.accepts(), before + 1, "{what}");
        wait_until(
            &format!("{what}: the upstream connection to close"),
            Duration::from_secs(5),
            || up.open_conns() == 0,
        );
    }
    // The next request gets a fresh upstream connection, never one of the switched ones.
    up.set_mode(Mode::Echo);
    let r = client::get(proxy.addr(), &client_for(&pki, Some(&pki.client)), "/next");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().conn, 4);
}

#[test]
fn a_200_to_an_upgrade_request_is_an_ordinary_response_and_the_next_request_is_http() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Replies(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
    ));
    let proxy = Cfg::new(&pki, &up).locations(WS_LOCATION).start();
    let mut c = mtls_conn(&proxy, &pki);
    let second = "GET /second HTTP/1.1\r\nHost: localhost\r\n\r\n";
    c.send(format!("{}{second}", upgrade_request("/ws", "")).as_bytes())
        .expect("send both");
    for n in 1..=2 {
        let r = c.read_response().expect("response");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "hello"),
            "response {n}: {}",
            r.head
        );
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].target, "/ws");
    assert!(
        has_token(seen[0].header("Upgrade"), "websocket"),
        "{:?}",
        seen[0].headers
    );
    // The pipelined request was parsed and rewritten by ringgate (X-Forwarded-For added), not
    // passed on as bytes.
    assert_eq!(seen[1].target, "/second");
    assert!(
        seen[1].header("X-Forwarded-For").is_some(),
        "{:?}",
        seen[1].headers
    );
    assert_eq!(seen[1].header("Upgrade"), None);
    // The connection still serves requests.
    c.send(b"GET /third HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    assert_eq!(c.read_response().expect("third").status, 200);
}

#[test]
fn bytes_pipelined_after_a_switched_upgrade_reach_the_upstream_as_tunnel_data_only() {
    let pki = Pki::new();
    let mut reply = SWITCH_WS.to_vec();
    reply.extend_from_slice(b"server-first\n");
    // The upstream answers every head it reads with the 101 and a line: the tunnelled bytes
    // below read as a request to it, so its answer comes back through the tunnel too.
    let up = Upstream::start(Mode::Replies(reply.clone()));
    let proxy = Cfg::new(&pki, &up)
        .locations(WS_LOCATION)
        .http("\n[listener.identity_headers]\nsubject = \"X-SSL-Client-DN\"\n")
        .start();
    let smuggled =
        "GET /smuggled HTTP/1.1\r\nHost: localhost\r\nX-SSL-Client-DN: CN=forged\r\n\r\n";
    let mut c = mtls_conn(&proxy, &pki);
    let request = upgrade_request("/ws", "");
    c.send(format!("{request}{smuggled}").as_bytes())
        .expect("send");
    let mut t = Tunnel::after_request(c);
    assert_eq!(t.header("Sec-WebSocket-Accept"), Some(ACCEPT), "{}", t.head);
    let mut want = b"server-first\n".to_vec();
    want.extend_from_slice(&reply);
    let got = t.read_bytes(want.len(), Duration::from_secs(5));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "the client did not get the upstream's bytes verbatim"
    );
    assert_eq!(up.accepts(), 1);
    let raw = up.raw_of(1);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the upgrade request's head")
        + 4;
    let head = lower(&raw[..end]);
    assert!(head.starts_with("get /ws http/1.1\r\n"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert_eq!(
        String::from_utf8_lossy(&raw[end..]),
        smuggled,
        "the bytes after the upgrade request were not passed through verbatim"
    );
    let seen = up.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].header("X-SSL-Client-DN"), Some("CN=forged"));
    assert_eq!(seen[1].header("X-Forwarded-For"), None);
}

#[test]
fn upgrade_is_forwarded_only_for_a_bodiless_http11_request_that_asks_for_it() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .locations(&format!(
            "{WS_LOCATION}[[listener.location]]\npath = \"/plain\"\nproxy_pass = \"http://app\"\n"
        ))
        .start();
    let ws_fields = format!("Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n");
    let stripped: [(&str, String, &str); 6] = [
        (
            "a Content-Length body",
            format!("POST /cl HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{ws_fields}Content-Length: 5\r\n\r\nhello"),
            "hello",
        ),
        (
            "a chunked body",
            format!("POST /chunked HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{ws_fields}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            "hello",
        ),
        (
            "HTTP/1.0",
            format!("GET /ten HTTP/1.0\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{ws_fields}\r\n"),
            "",
        ),
        (
            "no upgrade token in Connection",
            format!("GET /noconn HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n{ws_fields}\r\n"),
            "",
        ),
        (
            "a token the location does not allow",
            "GET /foo HTTP/1.1\r\nHost: localhost\r\nUpgrade: foo/1\r\nConnection: Upgrade\r\n\r\n".to_string(),
            "",
        ),
        (
            "a location without `upgrade`",
            format!("GET /plain/x HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{ws_fields}\r\n"),
            "",
        ),
    ];
    for (what, request, body) in stripped {
        let mut c = mtls_conn(&proxy, &pki);
        c.send(request.as_bytes()).expect("send");
        let r = c.read_response().expect("response");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, body),
            "{what}: {}",
            r.head
        );
        let seen = up.last();
        assert_eq!(seen.header("Upgrade"), None, "{what}: {:?}", seen.headers);
        assert!(
            !has_token(seen.header("Connection"), "upgrade"),
            "{what}: {:?}",
            seen.headers
        );
        assert_eq!(seen.body, body.as_bytes(), "{what}");
    }
    // Forwarded: `Connection` holding the token among others, any letter case, and an empty
    // body declared as such. The upstream answers 200, so the exchange stays HTTP.
    let forwarded = [
        format!("GET /yes HTTP/1.1\r\nHost: localhost\r\nUpgrade: WebSocket\r\nConnection: keep-alive, UPGRADE\r\n{ws_fields}\r\n"),
        format!("GET /empty HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{ws_fields}Content-Length: 0\r\n\r\n"),
    ];
    for request in forwarded {
        let mut c = mtls_conn(&proxy, &pki);
        c.send(request.as_bytes()).expect("send");
        assert_eq!(c.read_response().expect("response").status, 200);
        let seen = up.last();
        assert!(
            has_token(seen.header("Upgrade"), "websocket"),
            "{request}: {:?}",
            seen.headers
        );
        assert!(
            has_token(seen.header("Connection"), "upgrade"),
            "{request}: {:?}",
            seen.headers
        );
    }
}

#[test]
fn a_client_half_close_reaches_the_upstream_and_the_other_direction_goes_on() {
    // An upstream that switches, reads the tunnel to its end, and only then answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let upstream = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut tmp = [0u8; 4096];
        let end = loop {
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return None,
                Ok(n) => got.extend_from_slice(&tmp[..n]),
            }
        };
        s.write_all(SWITCH_WS).ok()?;
        let mut tunnel = got.split_off(end);
        loop {
            match s.read(&mut tmp) {
                Ok(0) => break,
                Ok(n) => tunnel.extend_from_slice(&tmp[..n]),
                Err(_) => return None,
            }
        }
        s.write_all(format!("after-fin:{}", String::from_utf8_lossy(&tunnel)).as_bytes())
            .ok()?;
        let _ = s.shutdown(std::net::Shutdown::Write);
        Some(tunnel)
    });
    let pki = Pki::new();
    let proxy = Cfg::with_upstream(&pki, format!("\"{addr}\""))
        .locations(WS_LOCATION)
        .up("read_timeout = \"10s\"")
        .start();
    let mut t = Tunnel::open(&proxy, &pki, "/half");
    t.conn.send(b"client-bytes").expect("send");
    t.shutdown_write();
    let back = t.read_to_end(Duration::from_secs(8));
    assert_eq!(
        String::from_utf8_lossy(&back),
        "after-fin:client-bytes",
        "log:\n{}",
        proxy.log()
    );
    let tunnel = upstream.join().expect("upstream thread");
    assert_eq!(
        tunnel.as_deref(),
        Some(&b"client-bytes"[..]),
        "the upstream never got a FIN"
    );
}

// ------------------------------------------------------------------ time, reload, shutdown

#[test]
fn an_idle_tunnel_is_closed_after_read_timeout_and_a_busy_one_is_not() {
    if !python_websockets("an_idle_tunnel_is_closed_after_read_timeout_and_a_busy_one_is_not") {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let proxy = Cfg::with_upstream(&pki, echo.server())
        .locations(WS_LOCATION)
        .up("read_timeout = \"2s\"")
        .start();
    let mut t = Tunnel::open(&proxy, &pki, "/idle");
    // Bytes both ways every 500 ms for 3 s, past read_timeout: open.
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        let m = format!("tick {i}");
        assert_eq!(t.echo(&m), m);
    }
    // Bytes from the client alone (the upstream stays silent) for 3 s: still open.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        t.send(ws::OP_TEXT, b"!silence").expect("send");
    }
    assert_eq!(t.echo("still here"), "still here");
    // Nothing either way: closed after read_timeout.
    let quiet = Instant::now();
    assert!(
        t.closed_within(Duration::from_secs(6)),
        "the idle tunnel was still open after 6 s; log:\n{}",
        proxy.log()
    );
    let after = quiet.elapsed();
    assert!(
        after >= Duration::from_millis(1500) && after <= Duration::from_millis(4500),
        "closed {after:?} after the last byte, want about read_timeout = 2s"
    );
    let closed = echo.wait_events("closed", 1, Duration::from_secs(3));
    assert_eq!(closed[0]["messages"], 13, "{closed:?}");
}

#[test]
fn open_tunnels_survive_a_reload() {
    if !python_websockets("open_tunnels_survive_a_reload") {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let cfg = Cfg::with_upstream(&pki, echo.server()).locations(WS_LOCATION);
    let proxy = cfg.start();
    let mut t = Tunnel::open(&proxy, &pki, "/before");
    assert_eq!(t.echo("one"), "one");
    // A new configuration (another location) through the file and SIGHUP.
    let text = cfg.render().replace(
        WS_LOCATION,
        &format!("{WS_LOCATION}[[listener.location]]\npath = \"/new\"\nreturn = 204\n"),
    );
    std::fs::write(&proxy.config_path, text).expect("rewrite");
    let _ = Command::new("kill")
        .args(["-HUP", &proxy.pid.to_string()])
        .status();
    proxy.assert_log(&["configuration reloaded"]);
    wait_until("the new configuration", Duration::from_secs(5), || {
        client::get(proxy.addr(), &client_for(&pki, Some(&pki.client)), "/new").status == 204
    });
    assert_eq!(t.echo("two"), "two");
    let mut fresh = Tunnel::open(&proxy, &pki, "/after");
    assert_eq!(fresh.echo("three"), "three");
    assert_eq!(t.echo("four"), "four");
    assert!(!t.closed_within(Duration::from_millis(300)));
}

#[test]
fn sigterm_keeps_tunnels_until_shutdown_timeout_then_closes_them_with_a_warning() {
    if !python_websockets(
        "sigterm_keeps_tunnels_until_shutdown_timeout_then_closes_them_with_a_warning",
    ) {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let text = Cfg::with_upstream(&pki, echo.server())
        .locations(WS_LOCATION)
        .render()
        .replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"3s\"");
    let mut proxy = Proxy::start(&text);
    let mut t = Tunnel::open(&proxy, &pki, "/draining");
    assert_eq!(t.echo("before"), "before");
    let stopped = Instant::now();
    proxy.sigterm();
    for i in 0..4 {
        std::thread::sleep(Duration::from_millis(500));
        let m = format!("draining {i}");
        assert_eq!(
            t.echo(&m),
            m,
            "the tunnel stopped {:?} after SIGTERM",
            stopped.elapsed()
        );
    }
    assert!(
        t.closed_within(Duration::from_secs(5)),
        "the tunnel outlived shutdown_timeout; log:\n{}",
        proxy.log()
    );
    let at = stopped.elapsed();
    assert!(
        at >= Duration::from_millis(2500) && at <= Duration::from_millis(5500),
        "closed {at:?} after SIGTERM, want about shutdown_timeout = 3s"
    );
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("ringgate exits after closing its tunnels");
    assert!(status.success(), "exit {status:?}; log:\n{}", proxy.log());
    let log = proxy.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.to_ascii_lowercase().contains("tunnel")
            && l.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == "1")),
        "no WARN line naming the 1 tunnel closed at shutdown:\n{log}"
    );
}

#[test]
fn metrics_count_tunnels_and_the_access_log_line_is_written_when_the_tunnel_closes() {
    if !python_websockets(
        "metrics_count_tunnels_and_the_access_log_line_is_written_when_the_tunnel_closes",
    ) {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let text = Cfg::with_upstream(&pki, echo.server())
        .locations(WS_LOCATION)
        .runtime("\n[admin]\nlisten = \"127.0.0.1:0\"\n")
        .render()
        .replace(
            "[listener.tls]",
            &format!(
                "access_log = {{ path = {}, format = \"ws\" }}\n\n[listener.tls]",
                p(&log)
            ),
        )
        + "\n[log_format]\nws = '$status $body_bytes_sent $bytes_sent \"$request\"'\n";
    let proxy = Proxy::start(&text);
    let (open, total) = tunnel_metrics(&proxy);
    assert_eq!(open.unwrap_or(0.0), 0.0);
    assert_eq!(total.unwrap_or(0.0), 0.0);

    let mut t = Tunnel::open(&proxy, &pki, "/metered");
    let head_len = t.head.len();
    for m in ["a", "bb", "ccc"] {
        assert_eq!(t.echo(m), m);
    }
    assert_eq!(tunnel_metrics(&proxy), (Some(1.0), Some(1.0)));
    // The writer flushes every half second: nothing for the open tunnel yet.
    std::thread::sleep(Duration::from_millis(1200));
    let early = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !early.contains("/metered"),
        "logged before the tunnel closed: {early}"
    );

    // The close handshake: the upstream answers and ends its side (FIN), which reaches us; the
    // tunnel stays half open (half-close is honoured) until our side ends too.
    assert!(t.close(1000).is_some(), "no close frame came back");
    assert!(t.closed_within(Duration::from_secs(5)));
    assert_eq!(
        tunnel_metrics(&proxy).0,
        Some(1.0),
        "a half-open tunnel is still open"
    );
    t.shutdown_write();
    let tunnel_bytes = t.received;
    let deadline = Instant::now() + Duration::from_secs(5);
    while tunnel_metrics(&proxy).0 != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "ringgate_tunnels_open stayed at {:?} after the tunnel closed:\n{}",
            tunnel_metrics(&proxy),
            admin_get(proxy.admin.expect("admin"), "/metrics").1
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(tunnel_metrics(&proxy).1, Some(1.0));
    let mut line = String::new();
    wait_until("the access log line", Duration::from_secs(5), || {
        line = std::fs::read_to_string(&log).unwrap_or_default();
        line.contains("/metered")
    });
    let line = line
        .lines()
        .find(|l| l.contains("/metered"))
        .expect("line")
        .to_string();
    // $body_bytes_sent: the tunnel's bytes to the client; $bytes_sent: with the 101's head.
    assert_eq!(
        line,
        format!(
            "101 {tunnel_bytes} {} \"GET /metered HTTP/1.1\"",
            tunnel_bytes + head_len
        )
    );
}

#[test]
fn an_open_tunnel_counts_against_max_connections() {
    if !python_websockets("an_open_tunnel_counts_against_max_connections") {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let proxy = Cfg::with_upstream(&pki, echo.server())
        .locations(WS_LOCATION)
        .runtime("max_connections = 1")
        .start();
    let mut t = Tunnel::open(&proxy, &pki, "/held");
    assert_eq!(t.echo("held"), "held");
    let cc = client_for(&pki, Some(&pki.client));
    for _ in 0..3 {
        assert!(
            client::try_get(proxy.addr(), &cc, "/").is_err(),
            "a second connection was served while the tunnel held the only slot"
        );
    }
    proxy.assert_log(&["connection limit reached", "runtime.max_connections = 1"]);
    assert_eq!(t.echo("still held"), "still held");
    t.close(1000);
    drop(t);
    wait_until("the slot to come back", Duration::from_secs(5), || {
        client::try_get(proxy.addr(), &cc, "/").is_ok_and(|r| r.status == 200)
    });
}

// ------------------------------------------------------------------ configuration, nginx.conf

#[test]
fn upgrade_h2c_is_a_configuration_error_and_tokens_are_case_insensitive() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, upgrade: &str| {
        let path = dir.path().join(name);
        let text = Cfg::new(&pki, &up)
            .locations(&format!(
                "[[listener.location]]\npath = \"/\"\nproxy_pass = \"http://app\"\n[[listener.location]]\npath = \"/ws\"\nproxy_pass = \"http://app\"\nupgrade = {upgrade}\n"
            ))
            .render();
        std::fs::write(&path, text).expect("write config");
        path
    };
    let (code, _, err) = proxy::check(&write("h2c.toml", "[\"h2c\"]"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("listener[0].location[1].upgrade"), "{err}");
    let (code, _, err) = proxy::check(&write("mixed.toml", "[\"websocket\", \"H2C\"]"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("listener[0].location[1].upgrade"), "{err}");
    let (code, out, err) = proxy::check(&write("ws.toml", "[\"WebSocket\"]"));
    assert_eq!(code, 0, "{out}{err}");
}

/// The nginx WebSocket idiom (the `$connection_upgrade` map, `proxy_set_header Upgrade` and
/// `Connection`, `proxy_http_version 1.1`) with `ssl_verify_client on`, run by nginx where it
/// is installed and by `ringgate run --nginx-config`: the same statuses, the same frames, the
/// same identity at the upstream, and the same idle close after `proxy_read_timeout`.
#[test]
fn the_nginx_websocket_idiom_runs_unchanged_and_answers_as_nginx_does() {
    if !python_websockets("the_nginx_websocket_idiom_runs_unchanged_and_answers_as_nginx_does") {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let port = free_port();
    let (dir, conf) = write_conf(&format!(
        r#"events {{}}
http {{
    access_log off;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        location / {{
            proxy_pass http://{up};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-SSL-Client-DN $ssl_client_s_dn;
            proxy_read_timeout 3s;
        }}
    }}
}}
"#,
        cert = path_str(&pki.server.cert),
        key = path_str(&pki.server.key),
        ca = path_str(&pki.ca.pem_path),
        up = echo.addr,
    ));
    // What one proxy on `port` answers: the echo scenarios, an idle tunnel, a plain GET, and
    // the identity the upstream saw for the handshake.
    let exchange = |what: &str| {
        let (url, args) = ws::wss_port(port, "/chat", &pki, Some(&pki.client));
        let run = ws::client(&url, &args);
        assert_eq!(run.code, 0, "{what}: {run:?}");
        let mut idle_args = args.clone();
        idle_args.extend(["--scenario", "idle", "--idle-max", "8"].map(String::from));
        let idle = ws::client(&url, &idle_args);
        assert_eq!(idle.code, 0, "{what}: {idle:?}");
        let idle_s = idle.json["timing"]["idle"].as_f64().unwrap_or(0.0);
        assert!(
            (2.0..=5.0).contains(&idle_s),
            "{what}: idle tunnel closed after {idle_s} s"
        );
        let (resolve, plain) = curl_url(SocketAddr::from(([127, 0, 0, 1], port)), "/plain");
        let (_, body, err) = curl(&[
            "--cacert",
            path_str(&pki.ca.pem_path),
            "--cert",
            path_str(&pki.client.cert),
            "--key",
            path_str(&pki.client.key),
            "--resolve",
            &resolve,
            "-w",
            " %{http_code}",
            &plain,
        ]);
        let req = echo
            .events_of("request")
            .into_iter()
            .rev()
            .find(|e| e["path"] == "/chat")
            .expect("the handshake reached the upstream");
        assert!(!err.contains("error"), "{what}: {err}");
        (
            run.status(),
            run.json["results"].clone(),
            idle.json["results"].clone(),
            body,
            header_values(&req, "X-SSL-Client-DN"),
        )
    };
    let from_nginx = nginx_binary().map(|bin| {
        let _n = Nginx::start(bin, &conf, port);
        exchange("nginx")
    });
    // The importer reads the idiom as a WebSocket location.
    let out = Command::new(BIN)
        .args(["import-nginx", path_str(&conf)])
        .output()
        .expect("import-nginx");
    let imported = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml: toml::Table = toml::from_str(&imported).expect("TOML");
    let upgrade = toml
        .get("listener")
        .and_then(|l| l.get(0))
        .and_then(|l| l.get("location"))
        .and_then(|l| l.get(0))
        .and_then(|l| l.get("upgrade"));
    assert_eq!(
        upgrade,
        Some(&toml::Value::Array(vec![toml::Value::String(
            "websocket".into()
        )])),
        "{imported}"
    );
    let proxy = Proxy::start_nginx(dir, conf);
    let from_ringgate = exchange("ringgate");
    assert!(
        !proxy.log().contains("WebSocket is not tunnelled"),
        "{}",
        proxy.log()
    );
    assert_eq!(from_ringgate.0, 101);
    assert_eq!(from_ringgate.3, "ok\n 200");
    assert_eq!(from_ringgate.4, vec![CLIENT_DN]);
    assert_eq!(from_ringgate.2["idle"]["closed"], true);
    match from_nginx {
        Some(n) => assert_eq!(from_ringgate, n, "ringgate and nginx answered differently"),
        None => eprintln!("SKIPPED the nginx half: nginx is not installed"),
    }
}

/// A raw upgrade exchange must never let one client's tunnel bytes reach another client:
/// two tunnels side by side on one worker each get only their own echoes.
#[test]
fn two_tunnels_on_one_worker_stay_apart() {
    if !python_websockets("two_tunnels_on_one_worker_stay_apart") {
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let proxy = ws_proxy(&pki, &echo);
    let mut a = Tunnel::open(&proxy, &pki, "/a");
    let mut b = Tunnel::open(&proxy, &pki, "/b");
    for i in 0..20 {
        let (ma, mb) = (format!("a{i}"), format!("b{i}"));
        a.send(ws::OP_TEXT, ma.as_bytes()).expect("a");
        b.send(ws::OP_TEXT, mb.as_bytes()).expect("b");
        let fa = a.read_frame(Duration::from_secs(5)).expect("a's echo");
        let fb = b.read_frame(Duration::from_secs(5)).expect("b's echo");
        assert_eq!((fa.payload, fb.payload), (ma.into_bytes(), mb.into_bytes()));
    }
    // A close on one leaves the other open.
    assert_eq!(a.close(1000).map(|f| f.opcode), Some(OP_CLOSE));
    assert_eq!(b.echo("b alone"), "b alone");
    assert_eq!(echo.wait_events("open", 2, Duration::from_secs(2)).len(), 2);
}

/// `scripts/ws-h2-client.py` against `proxy` for `path` with `leaf`'s certificate; its JSON.
fn ws_over_h2(proxy: &Proxy, pki: &Pki, path: &str, leaf: &Leaf) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .arg(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/ws-h2-client.py"))
        .arg(proxy.addr().port().to_string())
        .arg(path)
        .args(["--ca", path_str(&pki.ca.pem_path)])
        .args(["--cert", path_str(&leaf.cert), "--key", path_str(&leaf.key)])
        .output()
        .expect("run scripts/ws-h2-client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "ws-h2-client.py printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// RFC 8441: an extended CONNECT over HTTP/2 is the same upgrade request to the phases. It
/// reaches the HTTP/1.1 upstream as a WebSocket handshake with the client's identity, the
/// tunnel echoes and closes; a location that does not list the protocol answers 405 and the
/// upstream never hears of it.
#[test]
fn websocket_over_http2_is_an_extended_connect_through_the_same_rules() {
    let test = "websocket_over_http2_is_an_extended_connect_through_the_same_rules";
    if !python_websockets(test) {
        return;
    }
    let has_h2 = std::process::Command::new("python3")
        .args(["-c", "import h2.connection"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_h2 {
        eprintln!("SKIPPED {test}: python3 `h2` is missing (python3 -m pip install h2)");
        return;
    }
    let pki = Pki::new();
    let echo = EchoUpstream::start();
    let proxy = Cfg::with_upstream(&pki, echo.server())
        .http("\n[listener.identity_headers]\nsubject = \"X-SSL-Client-DN\"\n")
        .locations(&format!(
            "[[listener.location]]\npath = \"/plain\"\nproxy_pass = \"http://app\"\n{WS_LOCATION}"
        ))
        .start();
    let run = ws_over_h2(&proxy, &pki, "/chat", &pki.client);
    assert_eq!(run["enabled"], true, "{run}");
    assert_eq!(run["status"], 200, "{run}\nlog:\n{}", proxy.log());
    assert_eq!(run["echo"], "hello over h2", "{run}");
    assert_eq!(run["close_code"], 1000, "{run}");
    assert_eq!(run["ended"], true, "{run}");
    let req = echo.wait_events("request", 1, Duration::from_secs(2))[0].clone();
    assert_eq!(header_values(&req, "X-SSL-Client-DN"), vec![CLIENT_DN]);
    assert!(has_token(
        header_values(&req, "Upgrade").first().map(String::as_str),
        "websocket"
    ));
    assert_eq!(header_values(&req, "Sec-WebSocket-Key").len(), 1, "{req}");

    let run = ws_over_h2(&proxy, &pki, "/plain/x", &pki.client);
    assert_eq!(run["status"], 405, "{run}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        echo.events_of("request").len(),
        1,
        "the upstream heard of a refused tunnel"
    );
    proxy.assert_log(&["does not tunnel this protocol", "(405)"]);
}
