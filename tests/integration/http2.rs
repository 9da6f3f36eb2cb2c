//! HTTP/2 downstream (README, "HTTP/2"), with real clients: curl and nghttp for what browsers
//! and tools send, `scripts/h2-client.py` (python's `h2`) for what they never send (SNI and
//! `:authority` naming different servers, rapid resets, floods, zero windows, forbidden fields).
//! Each stream runs through the same phases as an HTTP/1.1 request, so these tests assert what
//! the client gets, what the upstream saw (or never saw) and that the proxy stays alive and
//! small through every attack, with a normal client served meanwhile. Without python's `h2`
//! or nghttp a test says SKIPPED and returns (`.ci/run` installs them).

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::access_log::lines;
use crate::support::nginx::{free_port, nginx_binary, write_conf, Nginx};
use crate::support::pki::{p, self_signed_leaf, Leaf, LeafSpec, Pki, Usage, Validity, CLIENT_DN};
use crate::support::proxy::Proxy;
use crate::support::upstream::{fnv, pattern_block, Mode, Upstream, FNV_INIT};
use crate::support::{curl, path_str, Cfg};

const H2_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/h2-client.py");

/// RFC 9113 error codes.
const NO_ERROR: u64 = 0x0;
const PROTOCOL_ERROR: u64 = 0x1;
const REFUSED_STREAM: u64 = 0x7;
const ENHANCE_YOUR_CALM: u64 = 0xb;

/// `scripts/h2-client.py` with its connection options.
struct Py {
    conn: Vec<String>,
}

impl Py {
    /// TLS to `addr` (SNI `localhost`), trusting the test CA, presenting `leaf` if any.
    fn tls(addr: SocketAddr, pki: &Pki, leaf: Option<&Leaf>) -> Py {
        let mut conn = vec![
            "--addr".to_string(),
            addr.to_string(),
            "--ca".to_string(),
            path_str(&pki.ca.pem_path).to_string(),
        ];
        if let Some(l) = leaf {
            conn.extend([
                "--cert".to_string(),
                path_str(&l.cert).to_string(),
                "--key".to_string(),
                path_str(&l.key).to_string(),
            ]);
        }
        Py { conn }
    }

    /// Plain TCP, HTTP/2 with prior knowledge (h2c).
    fn plain(addr: SocketAddr) -> Py {
        Py {
            conn: vec![
                "--addr".to_string(),
                addr.to_string(),
                "--plain".to_string(),
            ],
        }
    }

    /// More connection options (`--sni`, `--authority`, `--path`, `--timeout`, `--window`).
    fn with(mut self, args: &[&str]) -> Py {
        self.conn.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Runs one action; None (after a SKIPPED line) when python3 or its `h2` is missing.
    fn run(&self, action: &[&str]) -> Option<Value> {
        let out = Command::new("python3")
            .arg(H2_CLIENT)
            .args(&self.conn)
            .args(action)
            .output();
        let Ok(out) = out else {
            eprintln!("SKIPPED: python3 is not installed");
            return None;
        };
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(77) {
            eprintln!("SKIPPED: {}", err.trim());
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "h2-client.py {action:?}: {e}\nstdout: {}\nstderr: {err}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        Some(v)
    }

    /// Whether python's `h2` is there (tests that start threads check first).
    fn available() -> bool {
        let ok = Command::new("python3")
            .args(["-c", "import h2, hpack"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!("SKIPPED: python's h2 package is not installed (pip install h2)");
        }
        ok
    }
}

/// The streams of a `request` answer.
fn streams(v: &Value) -> &Vec<Value> {
    v["streams"]
        .as_array()
        .unwrap_or_else(|| panic!("no streams in {v}"))
}

/// The one stream of a `request` answer.
#[track_caller]
fn only(v: &Value) -> &Value {
    let s = streams(v);
    assert_eq!(s.len(), 1, "{v}");
    &s[0]
}

fn status(s: &Value) -> Option<u64> {
    s["status"].as_u64()
}

/// A response field of a stream (names are lowercase in HTTP/2).
fn field<'a>(s: &'a Value, name: &str) -> Option<&'a str> {
    s["headers"].as_array()?.iter().find_map(|h| {
        (h[0].as_str() == Some(name))
            .then(|| h[1].as_str())
            .flatten()
    })
}

/// The GOAWAY error codes received.
fn goaway_codes(v: &Value) -> Vec<u64> {
    v["goaway"]
        .as_array()
        .map(|g| g.iter().filter_map(|x| x["code"].as_u64()).collect())
        .unwrap_or_default()
}

fn fnv_hex(data: &[u8]) -> String {
    let mut h = FNV_INIT;
    fnv(&mut h, data);
    format!("{h:016x}")
}

/// The bytes `h2-client.py --body-size n` sends.
fn py_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// The bytes `Mode::Large(n)` answers with.
fn large_body(n: usize) -> Vec<u8> {
    let block = pattern_block();
    (0..n).map(|i| block[i % block.len()]).collect()
}

/// curl over HTTP/2 (ALPN h2) to `localhost` on `addr`: (HTTP version, status, body).
fn curl_h2(
    addr: SocketAddr,
    pki: &Pki,
    leaf: Option<&Leaf>,
    path: &str,
    extra: &[&str],
) -> (String, u16, String) {
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let url = format!("https://localhost:{}{path}", addr.port());
    let mut args = vec![
        "--http2",
        "--cacert",
        path_str(&pki.ca.pem_path),
        "--resolve",
        &resolve,
        "-o",
        "-",
        "-w",
        "\n%{http_version} %{http_code}",
    ];
    if let Some(l) = leaf {
        args.extend(["--cert", path_str(&l.cert), "--key", path_str(&l.key)]);
    }
    args.extend(extra);
    args.push(&url);
    let (code, out, err) = curl(&args);
    assert_eq!(code, 0, "curl {path}: {err}");
    version_code_body(&out)
}

/// Splits curl's `-o - -w "\n%{http_version} %{http_code}"` output.
fn version_code_body(out: &str) -> (String, u16, String) {
    let (body, tail) = out.rsplit_once('\n').unwrap_or(("", out));
    let (version, code) = tail.split_once(' ').expect("version and code");
    (
        version.to_string(),
        code.parse().expect("status"),
        body.to_string(),
    )
}

/// One `/probe` request by curl over HTTP/2 on a new mTLS connection: (status, seconds).
fn probe_once(addr: SocketAddr, ca: &str, cert: &str, key: &str) -> (u16, f64) {
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let url = format!("https://localhost:{}/probe", addr.port());
    let (_, out, _) = curl(&[
        "--http2",
        "--cacert",
        ca,
        "--cert",
        cert,
        "--key",
        key,
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{time_total}",
        &url,
    ]);
    let mut it = out.split_whitespace();
    let code = it.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let secs = it.next().and_then(|c| c.parse().ok()).unwrap_or(f64::NAN);
    (code, secs)
}

/// p50 and max of latencies in seconds, as milliseconds.
fn p50_max_ms(got: &[(u16, f64)]) -> (f64, f64) {
    let mut times: Vec<f64> = got.iter().map(|g| g.1 * 1000.0).collect();
    times.sort_by(f64::total_cmp);
    (times[(times.len() - 1) / 2], times[times.len() - 1])
}

/// A normal HTTP/2 client requesting `/probe` with curl every 50 ms, each time on a new mTLS
/// connection, while an attack runs: what it got and how long each took, against a baseline
/// of five requests made before the attack.
struct Prober {
    stop: Arc<AtomicBool>,
    baseline: Vec<(u16, f64)>,
    handle: std::thread::JoinHandle<Vec<(u16, f64)>>,
}

impl Prober {
    fn start(addr: SocketAddr, pki: &Pki) -> Prober {
        let ca = path_str(&pki.ca.pem_path).to_string();
        let cert = path_str(&pki.client.cert).to_string();
        let key = path_str(&pki.client.key).to_string();
        let baseline = (0..5).map(|_| probe_once(addr, &ca, &cert, &key)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut got = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                got.push(probe_once(addr, &ca, &cert, &key));
                std::thread::sleep(Duration::from_millis(50));
            }
            got
        });
        Prober {
            stop,
            baseline,
            handle,
        }
    }

    /// Stops; asserts every probe got 200 and prints the latencies.
    #[track_caller]
    fn finish(self, what: &str) {
        // At least one probe after the attack.
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::SeqCst);
        let got = self.handle.join().expect("prober");
        assert!(!got.is_empty(), "{what}: no probe ran");
        let (b50, bmax) = p50_max_ms(&self.baseline);
        let (p50, max) = p50_max_ms(&got);
        eprintln!(
            "{what}: normal client (new mTLS connection + GET each): before the attack p50 {b50:.1} ms, max {bmax:.1} ms; during it {} requests, p50 {p50:.1} ms, max {max:.1} ms",
            got.len()
        );
        assert!(
            got.iter().chain(&self.baseline).all(|g| g.0 == 200),
            "{what}: a normal client was not served during the attack: {got:?}"
        );
    }
}

/// Runs `attack` twice (its argument: the run, 1 or 2), printing the proxy's VmRSS before
/// (after the prober's warm-up requests) and after each run. Asserts the first run grew it by
/// less than `max_kib` and the second by less than 4 MiB: nothing is kept per attack.
#[track_caller]
fn twice_bounded(what: &str, proxy: &Proxy, max_kib: u64, mut attack: impl FnMut(u32)) {
    let before = proxy.rss_kib();
    attack(1);
    let first = proxy.rss_kib();
    attack(2);
    let second = proxy.rss_kib();
    eprintln!(
        "{what}: proxy VmRSS {before} KiB before, {first} KiB after one attack ({:+} KiB), {second} KiB after two ({:+} KiB)",
        first as i64 - before as i64,
        second as i64 - first as i64
    );
    assert!(
        first < before + max_kib,
        "{what}: VmRSS grew from {before} to {first} KiB"
    );
    assert!(
        second < first + 4096,
        "{what}: VmRSS grew again on the second attack, {first} to {second} KiB"
    );
}

/// Whether the proxy process still runs (not a zombie).
fn alive(proxy: &Proxy) -> bool {
    std::fs::read_to_string(format!("/proc/{}/status", proxy.pid))
        .is_ok_and(|s| !s.contains("State:\tZ"))
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("--version").output().is_ok();
    if !ok {
        eprintln!("SKIPPED: {tool} is not installed (apt-get install nghttp2-client)");
    }
    ok
}

/// curl --http2 through an mTLS listener: HTTP/2 negotiated, the identity headers set by
/// ringgate alone (forged copies dropped, in every spelling), `$server_protocol` HTTP/2.0 and
/// the access-log line `"GET /path HTTP/2.0"`; HTTP/1.1 on the same listener for contrast.
#[test]
fn curl_over_h2_through_mtls_sets_identity_and_logs_http2() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let proxy = Cfg::new(&pki, &up)
        .listener(&format!(
            "access_log = {{ path = {} }}\nidentity_headers = {{ subject = \"X-SSL-Client-DN\", verify = \"X-SSL-Client-Verify\" }}",
            p(&log)
        ))
        .locations(
            "[[listener.location]]\npath = \"/\"\nproxy_pass = \"http://app\"\nset_header = { X-Proto = \"$server_protocol\" }\n",
        )
        .start();
    let (version, code, _) = curl_h2(
        proxy.addr(),
        &pki,
        Some(&pki.client),
        "/h2/path?q=1",
        &[
            "-H",
            "X-SSL-Client-DN: CN=forged",
            "-H",
            "x-ssl-client-verify: FORGED",
            "-H",
            "X_SSL_Client_DN: CN=underscored",
        ],
    );
    assert_eq!((version.as_str(), code), ("2", 200));
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, "/h2/path?q=1");
    assert_eq!(seen.header("X-SSL-Client-DN"), Some(CLIENT_DN));
    assert_eq!(seen.header("X-SSL-Client-Verify"), Some("SUCCESS"));
    assert!(seen.header_all("X_SSL_Client_DN").is_empty(), "{seen:?}");
    assert_eq!(seen.header("X-Proto"), Some("HTTP/2.0"));
    assert_eq!(seen.header("X-Forwarded-Proto"), Some("https"));
    // HTTP/1.1 to upstreams, whatever the client spoke.
    assert!(
        up.raw_all().starts_with(b"GET /h2/path?q=1 HTTP/1.1\r\n"),
        "{:?}",
        String::from_utf8_lossy(&up.raw_all())
    );

    let (version, code, _) = curl_h2(proxy.addr(), &pki, Some(&pki.client), "/h1", &["--http1.1"]);
    assert_eq!((version.as_str(), code), ("1.1", 200));
    assert_eq!(up.last().header("X-Proto"), Some("HTTP/1.1"));

    let l = lines(&log, 2);
    let h2_line = l
        .iter()
        .find(|x| x.contains("/h2/path"))
        .unwrap_or_else(|| panic!("{l:?}"));
    assert!(
        h2_line.contains("\"GET /h2/path?q=1 HTTP/2.0\" 200 ")
            && h2_line.contains(&format!("dn=\"{CLIENT_DN}\"")),
        "{h2_line}"
    );
    assert!(
        l.iter().any(|x| x.contains("\"GET /h1 HTTP/1.1\" 200 ")),
        "{l:?}"
    );
}

/// Request bodies with and without content-length reach the upstream whole (the latter
/// chunked), in pieces and beyond the stream window; 1 MiB each way intact; a chunked
/// response de-chunked into DATA; HEAD without a body.
#[test]
fn bodies_cross_h2_whole_both_ways() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .http("client_max_body_size = \"4m\"\n")
        .start();
    let py = Py::tls(proxy.addr(), &pki, Some(&pki.client)).with(&["--timeout", "20"]);

    // With content-length, in five DATA frames.
    let v = py
        .run(&[
            "--path",
            "/up",
            "request",
            "--method",
            "POST",
            "--body-size",
            "5000",
            "--pieces",
            "5",
        ])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(200), "{v}");
    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.header("Content-Length"), Some("5000"));
    assert_eq!(seen.header("Transfer-Encoding"), None);
    assert_eq!(seen.body, py_body(5000));

    // `expect: 100-continue`: ringgate reads the body on the client's behalf and says so
    // with an interim 100 HEADERS frame (RFC 9113 §8.1), as it answers an HTTP/1.1 client.
    let v = py
        .run(&[
            "--path",
            "/expect",
            "request",
            "--method",
            "POST",
            "-H",
            "expect:100-continue",
            "--body-size",
            "300",
        ])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(200), "{v}");
    assert_eq!(only(&v)["interim"], serde_json::json!([100]), "{v}");
    assert_eq!(up.last().body, py_body(300));

    // Without content-length, larger than the 64 KiB stream window: chunked upstream.
    let v = py
        .run(&[
            "--path",
            "/up2",
            "request",
            "--method",
            "POST",
            "--body-size",
            "200000",
            "--no-length",
            "--pieces",
            "7",
        ])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(200), "{v}");
    let seen = up.last();
    assert_eq!(seen.target, "/up2");
    assert_eq!(seen.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(seen.header("Content-Length"), None);
    assert_eq!(seen.body_len, 200_000);
    assert_eq!(seen.body, py_body(200_000));
    // The echo came back whole too.
    assert_eq!(only(&v)["body_len"], 200_000);
    assert_eq!(only(&v)["body_fnv"], fnv_hex(&py_body(200_000)));

    // 1 MiB up and the same 1 MiB back.
    let mut big = vec![0u8; 1 << 20];
    let mut x: u32 = 0x1234_5678;
    for b in &mut big {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *b = (x >> 24) as u8;
    }
    let file = pki.path().join("body.bin");
    std::fs::write(&file, &big).expect("body file");
    let started = Instant::now();
    let v = py
        .run(&[
            "--path",
            "/mib",
            "request",
            "--method",
            "PUT",
            "--body-file",
            path_str(&file),
        ])
        .expect("h2-client");
    eprintln!("1 MiB up and back over h2: {:?}", started.elapsed());
    let s = only(&v);
    assert_eq!(status(s), Some(200), "{v}");
    let seen = up.last();
    assert_eq!(seen.body_len, 1 << 20);
    let mut want = FNV_INIT;
    fnv(&mut want, &big);
    assert_eq!(
        seen.body_hash, want,
        "the upstream got the 1 MiB body altered"
    );
    assert_eq!(s["body_len"], 1 << 20);
    assert_eq!(s["body_fnv"], format!("{want:016x}"));

    // A 1 MiB response (Content-Length), streamed through the client's windows.
    up.set_mode(Mode::Large(1 << 20));
    let v = py.run(&["--path", "/large", "request"]).expect("h2-client");
    let s = only(&v);
    assert_eq!(status(s), Some(200), "{v}");
    assert_eq!(field(s, "content-length"), Some("1048576"));
    assert_eq!(s["body_len"], 1 << 20);
    assert_eq!(s["body_fnv"], fnv_hex(&large_body(1 << 20)));
    assert_eq!(s["ended"], true);

    // A chunked response is de-chunked: the same bytes, no transfer-encoding.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
    up.set_mode(Mode::Chunked(data.clone(), 7000));
    let v = py
        .run(&["--path", "/chunked", "request"])
        .expect("h2-client");
    let s = only(&v);
    assert_eq!(status(s), Some(200), "{v}");
    assert_eq!(field(s, "transfer-encoding"), None, "{s}");
    assert_eq!(s["body_len"], 300_000);
    assert_eq!(s["body_fnv"], fnv_hex(&data));

    // HEAD: the upstream's head only, no DATA.
    up.set_mode(Mode::Replies(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Head: yes\r\n\r\n".to_vec(),
    ));
    let v = py
        .run(&["--path", "/head", "request", "--method", "HEAD"])
        .expect("h2-client");
    let s = only(&v);
    assert_eq!(status(s), Some(200), "{v}");
    assert_eq!(field(s, "x-head"), Some("yes"));
    assert_eq!(field(s, "content-length"), Some("5"));
    assert_eq!(s["body_len"], 0);
    assert_eq!(s["ended"], true);
    assert_eq!(up.last().method, "HEAD");
}

/// Roles over HTTP/2: the wrong role gets 403, no certificate 401, and the upstream sees
/// neither; the right location still answers 200.
#[test]
fn roles_refuse_streams_before_the_upstream() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .runtime("\n[identity]\nroles = [ { role = \"eng\", ou = \"Eng\" } ]\n")
        .tls(&format!(
            "client_certificate = {}\nverify_client = \"optional\"\n",
            p(&pki.ca.pem_path)
        ))
        .locations(
            "[[listener.location]]\npath = \"/admin\"\nallow_roles = [\"admin\"]\nproxy_pass = \"http://app\"\n\n[[listener.location]]\npath = \"/\"\nallow_roles = [\"eng\"]\nproxy_pass = \"http://app\"\n",
        )
        .start();
    let (version, code, _) = curl_h2(proxy.addr(), &pki, Some(&pki.client), "/admin/x", &[]);
    assert_eq!((version.as_str(), code), ("2", 403));
    let (version, code, _) = curl_h2(proxy.addr(), &pki, None, "/admin/x", &[]);
    assert_eq!((version.as_str(), code), ("2", 401));
    let (version, code, _) = curl_h2(proxy.addr(), &pki, None, "/x", &[]);
    assert_eq!((version.as_str(), code), ("2", 401));
    assert_eq!(up.accepts(), 0, "a refused stream reached the upstream");
    proxy.assert_log(&["/admin", "(403)"]);
    let (version, code, _) = curl_h2(proxy.addr(), &pki, Some(&pki.client), "/x", &[]);
    assert_eq!((version.as_str(), code), ("2", 200));
    assert_eq!(up.seen().len(), 1);
}

/// `root`, `return` and rules answer HTTP/2 streams as they answer HTTP/1.1 requests: a
/// static file whole (HEAD without its body, a 304 for its ETag), a `return` with its body, a
/// location rule's 403 on a request field, a 404 page; none of them reach the upstream.
#[test]
fn static_files_returns_and_rules_over_h2() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let www = tempfile::tempdir().expect("tempdir");
    let page: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    let proxy = Cfg::new(&pki, &up)
        .locations(&format!(
            r#"[[listener.location]]
path = "/static/"
root = {root}
[[listener.location.rule]]
if = "$http_x_block"
return = 403

[[listener.location]]
path = "/ret"
return = {{ status = 202, body = "returned over $server_protocol" }}

[[listener.location]]
path = "/gone"
return = 404
"#,
            root = p(www.path())
        ))
        .start();
    // nginx's `root`: /static/ is the folder static/ under it.
    std::fs::create_dir_all(www.path().join("static")).expect("dir");
    std::fs::write(www.path().join("static/index.html"), &page).expect("index");
    let addr = proxy.addr();
    let alice = Some(&pki.client);
    let (version, code, body) = curl_h2(addr, &pki, alice, "/static/", &[]);
    assert_eq!((version.as_str(), code), ("2", 200));
    assert_eq!(body, page);
    let (version, code, body) = curl_h2(addr, &pki, alice, "/static/index.html", &["-I"]);
    assert_eq!((version.as_str(), code), ("2", 200));
    let etag = body
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap_or_else(|| panic!("no etag in {body}"))
        .trim()
        .to_string();
    assert!(
        body.contains(&format!("content-length: {}", page.len())),
        "{body}"
    );
    let inm = format!("If-None-Match: {etag}");
    let (_, code, body) = curl_h2(addr, &pki, alice, "/static/index.html", &["-H", &inm]);
    assert_eq!(code, 304, "{body}");
    assert!(body.is_empty(), "{body}");
    let (_, code, _) = curl_h2(addr, &pki, alice, "/static/", &["-H", "X-Block: 1"]);
    assert_eq!(code, 403);
    let (version, code, body) = curl_h2(addr, &pki, alice, "/ret", &[]);
    assert_eq!((version.as_str(), code), ("2", 202));
    assert_eq!(body, "returned over HTTP/2.0");
    let (_, code, body) = curl_h2(addr, &pki, alice, "/gone", &[]);
    assert_eq!(code, 404);
    assert!(body.contains("404 Not Found"), "{body}");
    assert_eq!(up.accepts(), 0);
}

fn named_server(pki: &Pki, name: &'static str) -> Leaf {
    pki.ca.leaf(
        pki.path(),
        LeafSpec {
            name,
            subject: vec![(rcgen::DnType::CommonName, name)],
            usage: Usage::Server,
            validity: Validity::Valid,
            sans: vec![rcgen::SanType::DnsName(name.try_into().expect("dns"))],
        },
    )
}

/// Connection coalescing (RFC 9113 §9.1.1): two servers on one address, `public.test`
/// without client certificates and `secure.test` requiring them. A stream whose `:authority`
/// (or `host`) names the other server than the handshake's SNI gets 421, both ways, and the
/// upstream never sees it; the same connection still serves its own name.
#[test]
fn coalesced_stream_for_another_policy_gets_421() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let port = free_port();
    let public = named_server(&pki, "public.test");
    let secure = named_server(&pki, "secure.test");
    let config = format!(
        r#"[runtime]
workers = 1

[[listener]]
name = "public"
listen = "127.0.0.1:{port}"
server_names = ["public.test"]
default_server = true
[listener.tls]
certificates = [{{ cert = {pc}, key = {pk} }}]
[[listener.location]]
path = "/"
proxy_pass = "http://app"
set_header = {{ X-Server = "public" }}

[[listener]]
name = "secure"
listen = "127.0.0.1:{port}"
server_names = ["secure.test"]
[listener.tls]
certificates = [{{ cert = {sc}, key = {sk} }}]
client_certificate = {ca}
verify_client = "on"
[[listener.location]]
path = "/"
proxy_pass = "http://app"
set_header = {{ X-Server = "secure" }}

[[upstream]]
name = "app"
servers = [{up}]
"#,
        pc = p(&public.cert),
        pk = p(&public.key),
        sc = p(&secure.cert),
        sk = p(&secure.key),
        ca = p(&pki.ca.pem_path),
        up = up.server()
    );
    let proxy = Proxy::start(&config);
    let addr = proxy.addr_of("public");
    let anon = Py::tls(addr, &pki, None).with(&["--sni", "public.test"]);
    // Its own name: served.
    let v = anon
        .run(&["--authority", "public.test", "request"])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(200), "{v}");
    assert_eq!(up.last().header("X-Server"), Some("public"));
    let before = up.seen().len();
    // SNI public.test, :authority secure.test: 421, never the secure server's upstream.
    let v = anon
        .run(&[
            "--authority",
            "secure.test",
            "--path",
            "/coalesced",
            "request",
        ])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(421), "{v}");
    // The same with `host` instead of `:authority`.
    let v = anon
        .run(&[
            "--path",
            "/coalesced",
            "request",
            "--raw-headers",
            "-H",
            ":method: GET",
            "-H",
            ":scheme: https",
            "-H",
            ":path: /coalesced-host",
            "-H",
            "host: secure.test",
        ])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(421), "{v}");
    // And the other way: the certificate server's connection cannot reach the public one.
    let alice = Py::tls(addr, &pki, Some(&pki.client)).with(&["--sni", "secure.test"]);
    let v = alice
        .run(&[
            "--authority",
            "public.test",
            "--path",
            "/coalesced",
            "request",
        ])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(421), "{v}");
    assert_eq!(
        up.seen().len(),
        before,
        "a misdirected stream was forwarded"
    );
    assert!(!up.received(b"/coalesced"));
    proxy.assert_log(&["client-certificate policy differs", "(421)"]);
    // curl as a browser would coalesce: connection by SNI public.test, Host secure.test.
    let resolve = format!("public.test:{port}:127.0.0.1");
    let url = format!("https://public.test:{port}/curl");
    let (code, out, err) = curl(&[
        "--http2",
        "--cacert",
        path_str(&pki.ca.pem_path),
        "--resolve",
        &resolve,
        "-H",
        "Host: secure.test",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &url,
    ]);
    assert_eq!((code, out.as_str()), (0, "2 421"), "{err}");
    let v = alice
        .run(&["--authority", "secure.test", "request"])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(200), "{v}");
    assert_eq!(up.last().header("X-Server"), Some("secure"));
}

/// 50 streams on one connection (nghttp -m 50, and python's h2) all answered 200.
/// `nghttp` with `streams` concurrent requests for `path` (the client certificate, `timeout`
/// seconds): its statistics text and the status of each stream it completed.
fn nghttp_statuses(
    proxy: &Proxy,
    pki: &Pki,
    path: &str,
    streams: u32,
    timeout: &str,
) -> (String, Vec<String>) {
    let url = format!("https://localhost:{}{path}", proxy.addr().port());
    let out = Command::new("nghttp")
        .args([
            "-n",
            "-s",
            "-m",
            &streams.to_string(),
            "-t",
            timeout,
            "--cert",
        ])
        .arg(&pki.client.cert)
        .arg("--key")
        .arg(&pki.client.key)
        .arg(&url)
        .output()
        .expect("nghttp");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let codes = text
        .lines()
        .skip_while(|l| !l.starts_with("id "))
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(str::to_string)
        .collect();
    (text, codes)
}

#[test]
fn fifty_streams_on_one_connection() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    if have("nghttp") {
        let (text, codes) = nghttp_statuses(&proxy, &pki, "/multi", 50, "10");
        assert_eq!(codes.len(), 50, "{text}");
        assert!(codes.iter().all(|c| *c == "200"), "{text}");
    }
    if Py::available() {
        let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
            .run(&["--path", "/py", "request", "--count", "50"])
            .expect("h2-client");
        let s = streams(&v);
        assert_eq!(s.len(), 50, "{v}");
        assert!(s.iter().all(|s| status(s) == Some(200)), "{v}");
        assert!(v["goaway"].as_array().is_some_and(Vec::is_empty), "{v}");
    }
}

/// `http2_max_concurrent_streams = 4`, announced in SETTINGS: a client that opens 20 streams
/// before reading them gets REFUSED_STREAM for those beyond 4; a client that keeps to the limit
/// gets all 20 served; nghttp gets every stream it completes served. The upstream never has a
/// fifth request in flight.
#[test]
fn stream_limit_holds_at_the_upstream() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Delay(Duration::from_millis(300)));
    let proxy = Cfg::new(&pki, &up)
        .http("http2_max_concurrent_streams = 4\n")
        .start();
    if Py::available() {
        let py = Py::tls(proxy.addr(), &pki, Some(&pki.client)).with(&["--timeout", "15"]);
        let v = py
            .run(&[
                "--path",
                "/eager",
                "request",
                "--count",
                "20",
                "--before-settings",
            ])
            .expect("h2-client");
        assert_eq!(v["server_settings"]["MAX_CONCURRENT_STREAMS"], 4, "{v}");
        let s = streams(&v);
        let served = s.iter().filter(|s| status(s) == Some(200)).count();
        let refused = s
            .iter()
            .filter(|s| status(s).is_none() && s["reset"].as_u64() == Some(REFUSED_STREAM))
            .count();
        eprintln!("20 eager streams, limit 4: {served} served, {refused} refused");
        assert_eq!(served + refused, 20, "{v}");
        assert!(served >= 4, "{v}");
        let v = py
            .run(&["--path", "/polite", "request", "--count", "20"])
            .expect("h2-client");
        let s = streams(&v);
        assert_eq!(s.len(), 20, "{v}");
        assert!(s.iter().all(|s| status(s) == Some(200)), "{v}");
        assert!(
            up.peak_in_flight() <= 4,
            "the upstream had {} requests at once",
            up.peak_in_flight()
        );
    }
    if have("nghttp") {
        // nghttp may send its streams before the SETTINGS arrive (and then see the extra ones
        // refused, which it does not retry) or after: either way none is served beyond 4.
        let (text, codes) = nghttp_statuses(&proxy, &pki, "/nghttp", 20, "20");
        eprintln!("nghttp -m 20, limit 4: {} streams completed", codes.len());
        assert!(codes.len() >= 4, "{text}");
        assert!(codes.iter().all(|c| *c == "200"), "{text}");
        assert!(up.peak_in_flight() <= 4, "peak {}", up.peak_in_flight());
    }
}

/// `listener.http2 = false`: curl --http2 negotiates HTTP/1.1, and a client offering only h2
/// is refused in the handshake (no_application_protocol), as nginx does.
#[test]
fn http2_off_negotiates_http11() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).listener("http2 = false").start();
    let (version, code, _) = curl_h2(proxy.addr(), &pki, Some(&pki.client), "/", &[]);
    assert_eq!((version.as_str(), code), ("1.1", 200));
    if let Some(v) = Py::tls(proxy.addr(), &pki, Some(&pki.client)).run(&["request"]) {
        let err = v["connect_error"].as_str().unwrap_or_default();
        assert!(
            err.to_ascii_lowercase().contains("no application protocol"),
            "{v}"
        );
    }
}

/// h2c with prior knowledge on a plain listener with `h2c = true`; HTTP/1.1 still served
/// there, and an `Upgrade: h2c` never honoured or forwarded. Without `h2c` the preface is an
/// HTTP/1.1 request with version HTTP/2.0: 505 and a close, at once.
#[test]
fn h2c_with_prior_knowledge_only_where_enabled() {
    let up = Upstream::start(Mode::Echo);
    let config = format!(
        r#"[runtime]
workers = 1

[[listener]]
name = "h2c"
listen = "127.0.0.1:0"
h2c = true
[[listener.location]]
path = "/"
proxy_pass = "http://app"

[[listener]]
name = "plain"
listen = "127.0.0.1:0"
[[listener.location]]
path = "/"
proxy_pass = "http://app"

[[upstream]]
name = "app"
servers = [{up}]
"#,
        up = up.server()
    );
    let proxy = Proxy::start(&config);
    let h2c = format!("http://127.0.0.1:{}/prior", proxy.addr_of("h2c").port());
    let plain = format!("http://127.0.0.1:{}/plain", proxy.addr_of("plain").port());
    let get = |args: &[&str], url: &str| {
        let mut a = vec!["-o", "/dev/null", "-w", "%{http_version} %{http_code}"];
        a.extend(args);
        a.push(url);
        curl(&a)
    };
    let (code, out, err) = get(&["--http2-prior-knowledge"], &h2c);
    assert_eq!((code, out.as_str()), (0, "2 200"), "{err}");
    let seen = up.last();
    assert_eq!(seen.target, "/prior");
    assert_eq!(seen.header("X-Forwarded-Proto"), Some("http"));
    let (code, out, err) = get(&[], &h2c);
    assert_eq!((code, out.as_str()), (0, "1.1 200"), "{err}");
    // curl --http2 on http:// asks to upgrade: ringgate never switches to h2c.
    let (code, out, err) = get(&["--http2"], &h2c);
    assert_eq!((code, out.as_str()), (0, "1.1 200"), "{err}");
    let raw = String::from_utf8_lossy(&up.raw_all()).to_ascii_lowercase();
    assert!(
        !raw.contains("http2-settings") && !raw.contains("upgrade"),
        "{raw}"
    );
    // Without h2c: a clean, immediate refusal.
    let started = Instant::now();
    let (code, _, err) = get(&["--http2-prior-knowledge"], &plain);
    assert_ne!(code, 0, "prior knowledge served without h2c: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    proxy.assert_log(&["listener=plain", "(505)"]);
    assert!(!up.received(b"PRI * HTTP/2.0"));
    let (code, out, err) = get(&[], &plain);
    assert_eq!((code, out.as_str()), (0, "1.1 200"), "{err}");
    if let Some(v) = Py::plain(proxy.addr_of("h2c")).run(&[
        "--path",
        "/py-h2c",
        "request",
        "--method",
        "POST",
        "--body-size",
        "100000",
        "--no-length",
    ]) {
        assert_eq!(status(only(&v)), Some(200), "{v}");
        assert_eq!(up.last().body, py_body(100_000));
    }
}

/// Rapid reset (CVE-2023-44487): 1000 streams opened and reset at once. The connection is
/// closed with GOAWAY ENHANCE_YOUR_CALM; a normal client is served throughout.
#[test]
fn rapid_reset_gets_goaway() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Delay(Duration::from_millis(20)));
    let proxy = Cfg::new(&pki, &up).start();
    let prober = Prober::start(proxy.addr(), &pki);
    twice_bounded("rapid reset", &proxy, 16 * 1024, |run| {
        let started = Instant::now();
        let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
            .with(&["--timeout", "10", "--path", "/reset"])
            .run(&["rapid-reset", "--count", "1000"])
            .expect("h2-client");
        eprintln!("rapid reset #{run}: {v} in {:?}", started.elapsed());
        assert!(
            goaway_codes(&v).contains(&ENHANCE_YOUR_CALM),
            "no GOAWAY ENHANCE_YOUR_CALM: {v}"
        );
        assert_eq!(v["closed"], true, "{v}");
        assert!(v["closed_t"].as_f64().is_some_and(|t| t < 5.0), "{v}");
    });
    prober.finish("rapid reset");
    assert!(alive(&proxy));
    eprintln!(
        "rapid reset: the upstream saw {} of the 2 x 1000 reset streams",
        up.seen().iter().filter(|s| s.target == "/reset").count()
    );
}

/// CONTINUATION flood: HEADERS without END_HEADERS, then CONTINUATION frames far beyond
/// `max_header_bytes` (16 MiB offered): a connection error, memory bounded.
#[test]
fn continuation_flood_is_a_connection_error() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let prober = Prober::start(proxy.addr(), &pki);
    twice_bounded("CONTINUATION flood", &proxy, 8 * 1024, |run| {
        let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
            .with(&["--timeout", "10"])
            .run(&["continuation-flood", "--bytes", &(16u32 << 20).to_string()])
            .expect("h2-client");
        eprintln!("CONTINUATION flood #{run}: {v}");
        assert_eq!(v["closed"], true, "{v}");
        assert!(!goaway_codes(&v).is_empty(), "closed without GOAWAY: {v}");
        assert!(
            goaway_codes(&v).iter().all(|c| *c != NO_ERROR),
            "a graceful GOAWAY for a flood: {v}"
        );
        assert!(
            v["sent_bytes"].as_u64().is_some_and(|n| n < 16 << 20),
            "the whole flood was taken: {v}"
        );
        assert!(v["headers"].as_array().is_some_and(Vec::is_empty), "{v}");
    });
    prober.finish("CONTINUATION flood");
    assert_eq!(up.seen().iter().filter(|s| s.target == "/").count(), 0);
}

/// A header list over `max_header_bytes` (32k by default; SETTINGS says so) is refused with
/// 431 (or the stream reset), a field over `max_header_line_bytes` with 400; the upstream sees
/// neither, and the connection goes on serving.
#[test]
fn oversized_header_lists_are_refused() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let py = Py::tls(proxy.addr(), &pki, Some(&pki.client));
    let big = format!("x-big: {}", "a".repeat(40_000));
    let v = py
        .run(&["--path", "/big", "request", "-H", &big])
        .expect("h2-client");
    assert_eq!(v["server_settings"]["MAX_HEADER_LIST_SIZE"], 32768, "{v}");
    let s = only(&v);
    assert!(
        status(s) == Some(431) || s["reset"].as_u64() == Some(REFUSED_STREAM),
        "{v}"
    );
    let many: Vec<String> = (0..400)
        .map(|i| format!("x-h{i}: {}", "b".repeat(80)))
        .collect();
    let mut args = vec!["--path", "/many", "request"];
    for h in &many {
        args.extend(["-H", h.as_str()]);
    }
    let v = py.run(&args).expect("h2-client");
    let s = only(&v);
    assert!(
        status(s) == Some(431) || s["reset"].as_u64() == Some(REFUSED_STREAM),
        "{v}"
    );
    let line = format!("x-line: {}", "c".repeat(10_000));
    let v = py
        .run(&["--path", "/line", "request", "-H", &line])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(400), "{v}");
    assert_eq!(up.accepts(), 0, "an oversized head reached the upstream");
    let v = py.run(&["--path", "/fine", "request"]).expect("h2-client");
    assert_eq!(status(only(&v)), Some(200), "{v}");
}

/// SETTINGS and PING floods, 10,000 frames each (read by the client), then 1,000,000 PINGs
/// from a client that never reads: each answered or pushed back (the proxy stops reading when
/// its answers cannot be written), memory bounded, a normal client served meanwhile.
#[test]
fn settings_and_ping_floods_stay_bounded() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let py = Py::tls(proxy.addr(), &pki, Some(&pki.client)).with(&["--timeout", "5"]);
    let prober = Prober::start(proxy.addr(), &pki);
    twice_bounded("SETTINGS/PING floods", &proxy, 16 * 1024, |run| {
        for kind in ["settings", "ping"] {
            let v = py
                .run(&["flood", "--kind", kind, "--count", "10000"])
                .expect("h2-client");
            eprintln!("{kind} flood #{run}: {v}");
            assert_eq!(v["sent_frames"], 10000, "{v}");
            let acks = if kind == "settings" {
                v["settings_acks"].as_u64().unwrap_or(0).saturating_sub(1)
            } else {
                v["ping_acks"].as_u64().unwrap_or(0)
            };
            // Either every frame was answered, or the flood was cut with an error.
            assert!(
                acks == 10000 || goaway_codes(&v).iter().any(|c| *c != NO_ERROR),
                "{kind} flood: {acks} acks: {v}"
            );
        }
        let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
            .with(&["--timeout", "3"])
            .run(&[
                "flood",
                "--kind",
                "ping",
                "--count",
                "1000000",
                "--no-read",
                "--settle",
                "1",
            ])
            .expect("h2-client");
        eprintln!(
            "unread PING flood #{run}: {} frames sent, {:?}, {} acks read afterwards",
            v["sent_frames"], v["send_error"], v["ping_acks"]
        );
    });
    prober.finish("SETTINGS/PING floods");
    assert!(alive(&proxy));
}

/// 1000 streams opened before the client reads the server's SETTINGS (limit 128): those
/// beyond the limit are refused, the connection is never served more than 128 at once, the
/// proxy stays small.
#[test]
fn streams_beyond_the_limit_are_refused() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Delay(Duration::from_millis(200)));
    let proxy = Cfg::new(&pki, &up).start();
    let prober = Prober::start(proxy.addr(), &pki);
    twice_bounded("1000 eager streams", &proxy, 16 * 1024, |run| {
        let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
            .with(&["--timeout", "20", "--path", "/many"])
            .run(&["request", "--count", "1000", "--before-settings"])
            .expect("h2-client");
        let s = streams(&v);
        let served = s.iter().filter(|s| status(s) == Some(200)).count();
        let refused = s
            .iter()
            .filter(|s| s["reset"].as_u64() == Some(REFUSED_STREAM))
            .count();
        eprintln!(
            "1000 eager streams #{run}, limit 128: {served} served, {refused} refused, GOAWAY {:?}, upstream peak {}",
            goaway_codes(&v),
            up.peak_in_flight()
        );
        assert!(served >= 128, "{}", v["goaway"]);
        assert_eq!(served + refused, 1000, "{}", v["goaway"]);
    });
    // 128 streams, and the prober's one request at a time on its own connection.
    assert!(up.peak_in_flight() <= 129, "peak {}", up.peak_in_flight());
    prober.finish("1000 eager streams");
}

/// A body that never ends (no END_STREAM): 408 after `body_timeout`, the stream then closed.
#[test]
fn body_without_end_stream_gets_408_after_body_timeout() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).http("body_timeout = \"1s\"\n").start();
    let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
        .with(&["--timeout", "8", "--path", "/stalled"])
        .run(&[
            "request",
            "--method",
            "POST",
            "--body-size",
            "100",
            "--hold-body",
        ])
        .expect("h2-client");
    let s = only(&v);
    assert_eq!(status(s), Some(408), "{v}");
    let t = s["end_t"].as_f64().expect("the stream ended") - s["sent_t"].as_f64().unwrap_or(0.0);
    eprintln!("stalled body: 408 after {t:.2} s");
    assert!((0.9..4.0).contains(&t), "{v}");
    assert!(s["ended"] == true || s["reset"].as_u64().is_some(), "{v}");
    // The upstream got the head and part of the body, never a whole request.
    assert!(up.seen().is_empty(), "{:?}", up.seen());
    proxy.assert_log(&["timed out sending the request body", "(408)"]);
}

/// A client that announces a zero stream window and never opens it: the proxied response's
/// DATA cannot go, and the stream is reset after `send_timeout`; other clients are served.
#[test]
fn zero_window_stall_on_a_proxied_response_is_reset_after_send_timeout() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Large(1 << 20));
    let proxy = Cfg::new(&pki, &up).http("send_timeout = \"1s\"\n").start();
    let prober = Prober::start(proxy.addr(), &pki);
    let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
        .with(&["--timeout", "8", "--path", "/stall", "--window", "0"])
        .run(&["request", "--no-window-updates"])
        .expect("h2-client");
    let s = only(&v);
    assert_eq!(status(s), Some(200), "{v}");
    assert_eq!(s["body_len"], 0, "{v}");
    let reset_at = s["end_t"].as_f64().unwrap_or(f64::NAN);
    eprintln!("zero window, proxied: reset {} at {reset_at} s", s["reset"]);
    assert!(s["reset"].as_u64().is_some(), "never reset: {v}");
    assert!((0.9..4.0).contains(&reset_at), "{v}");
    prober.finish("zero window (proxied)");
}

/// The same stall on responses ringgate writes itself (a `return`, a refusal page, a static
/// file): they must end after `send_timeout` as well, or a client pins the stream, and with it
/// the connection (no idle timeout runs while a stream is open), for ever.
#[test]
fn zero_window_stall_on_ringgates_own_responses_is_reset_after_send_timeout() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let www = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(www.path().join("static")).expect("dir");
    std::fs::write(www.path().join("static/page.txt"), "a static page\n").expect("page");
    let proxy = Cfg::new(&pki, &up)
        .http("send_timeout = \"1s\"\nkeepalive_timeout = \"1s\"\n")
        .locations(&format!(
            r#"[[listener.location]]
path = "/ret"
return = {{ status = 200, body = "a body ringgate writes itself" }}

[[listener.location]]
path = "/denied"
allow_roles = ["nobody"]
proxy_pass = "http://app"

[[listener.location]]
path = "/static/"
root = {root}
"#,
            root = p(www.path())
        ))
        .start();
    let cases = [("/ret", 200), ("/denied", 403), ("/static/page.txt", 200)];
    // The three stalls at once, each on its own connection.
    let stuck: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .map(|&(path, want)| {
                let py = Py::tls(proxy.addr(), &pki, Some(&pki.client)).with(&[
                    "--timeout",
                    "5",
                    "--path",
                    path,
                    "--window",
                    "0",
                ]);
                scope.spawn(move || (path, want, py.run(&["request", "--no-window-updates"])))
            })
            .collect();
        runs.into_iter()
            .filter_map(|r| {
                let (path, want, v) = r.join().expect("client");
                let v = v.expect("h2-client");
                let s = only(&v);
                eprintln!("zero window, {path}: {v}");
                assert_eq!(status(s), Some(want), "{v}");
                (s["reset"].as_u64().is_none() && v["closed"] != true).then(|| {
                    format!(
                        "{path} ({want}): still open {} s after the HEADERS, send_timeout 1 s",
                        v["elapsed"]
                    )
                })
            })
            .collect()
    });
    assert!(up.seen().is_empty());
    assert!(
        stuck.is_empty(),
        "streams neither reset nor closed: {stuck:?}"
    );
}

/// A client that resets (CANCEL) a stream while its 1 MiB response is still on the way: the
/// upstream connection holding the rest is closed, never pooled, so the next stream gets its
/// own response whole.
#[test]
fn stream_reset_mid_response_leaves_nothing_in_the_pool() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Large(1 << 20));
    let proxy = Cfg::new(&pki, &up).start();
    let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
        .with(&["--timeout", "5", "--path", "/first", "--window", "0"])
        .run(&["request", "--no-window-updates", "--reset-after", "0.3"])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(200), "{v}");
    assert_eq!(only(&v)["body_len"], 0, "{v}");
    up.set_mode(Mode::Echo);
    std::thread::sleep(Duration::from_millis(200));
    let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
        .run(&[
            "--path",
            "/second",
            "request",
            "--method",
            "POST",
            "--body-size",
            "1000",
        ])
        .expect("h2-client");
    let s = only(&v);
    assert_eq!(status(s), Some(200), "{v}");
    assert_eq!(s["body_len"], 1000, "{v}");
    assert_eq!(s["body_fnv"], fnv_hex(&py_body(1000)), "{v}");
    assert_eq!(up.last().target, "/second");
    assert_eq!(up.last().conn, 2, "the cut connection was reused");
}

/// A stream whose DATA ends (END_STREAM) short of its content-length: a stream error, and the
/// upstream connection that got the head and part of the body is closed, never pooled, so the
/// next request cannot be read by the upstream as the rest of that body.
#[test]
fn body_shorter_than_its_content_length_never_desyncs_the_upstream() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let py = Py::tls(proxy.addr(), &pki, Some(&pki.client)).with(&["--timeout", "5"]);
    let v = py
        .run(&[
            "request",
            "--raw-headers",
            "--read-for",
            "0.3",
            "--body-size",
            "50",
            "-H",
            ":method: POST",
            "-H",
            ":scheme: https",
            "-H",
            ":authority: localhost",
            "-H",
            ":path: /short",
            "-H",
            "content-length: 100",
        ])
        .expect("h2-client");
    let s = only(&v);
    assert_ne!(status(s), Some(200), "{v}");
    assert!(
        s["reset"].as_u64() == Some(PROTOCOL_ERROR) || goaway_codes(&v).contains(&PROTOCOL_ERROR),
        "{v}"
    );
    for i in 0..3 {
        let path = format!("/next{i}");
        let v = py.run(&["--path", &path, "request"]).expect("h2-client");
        assert_eq!(status(only(&v)), Some(200), "{v}");
        let last = up.last();
        assert_eq!(
            (last.method.as_str(), last.target.as_str()),
            ("GET", path.as_str())
        );
    }
    assert!(
        up.seen().iter().all(|s| s.target != "/short"),
        "the upstream took a short body as whole: {:?}",
        up.seen()
    );
}

/// Forbidden request shapes (RFC 9113 §8.2.2, §8.3): connection-specific fields, `te` other
/// than trailers, uppercase names, missing, unknown, repeated or late pseudo-headers, CR/LF
/// in a value, a space in `:path`, a body longer than its content-length. Each ends in a
/// stream or connection error (PROTOCOL_ERROR) and never reaches the upstream.
#[test]
fn forbidden_fields_and_pseudo_headers_are_stream_errors() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let py = Py::tls(proxy.addr(), &pki, Some(&pki.client)).with(&["--timeout", "5"]);
    let base = [":method: GET", ":scheme: https", ":authority: localhost"];
    let with_path = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut h: Vec<&str> = base.to_vec();
        h.push(":path: /forbidden");
        h.extend(extra);
        h
    };
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("connection", with_path(&["connection: keep-alive"])),
        (
            "transfer-encoding",
            with_path(&["transfer-encoding: chunked"]),
        ),
        ("keep-alive", with_path(&["keep-alive: timeout=5"])),
        (
            "proxy-connection",
            with_path(&["proxy-connection: keep-alive"]),
        ),
        ("upgrade", with_path(&["upgrade: h2c"])),
        ("te: gzip", with_path(&["te: gzip"])),
        ("uppercase name", with_path(&["X-Upper: 1"])),
        ("no :path", base.to_vec()),
        ("unknown pseudo-header", with_path(&[":foo: bar"])),
        ("repeated :path", with_path(&[":path: /forbidden-again"])),
        (
            "pseudo-header after a field",
            vec![
                ":method: GET",
                ":scheme: https",
                "x-a: 1",
                ":authority: localhost",
                ":path: /forbidden",
            ],
        ),
        ("CR LF in a value", with_path(&["x-a: 1\r\nx-injected: 2"])),
        (
            "space in :path",
            vec![
                ":method: GET",
                ":scheme: https",
                ":authority: localhost",
                ":path: /forbidden HTTP/1.1\r\nx: y",
            ],
        ),
        (
            "content-length without DATA",
            with_path(&["content-length: 5"]),
        ),
    ];
    for (name, headers) in &cases {
        let mut args = vec!["request", "--raw-headers", "--read-for", "0.3"];
        for h in headers {
            args.extend(["-H", h]);
        }
        let v = py.run(&args).expect("h2-client");
        let s = only(&v);
        let stream_error = s["reset"].as_u64() == Some(PROTOCOL_ERROR);
        let connection_error = goaway_codes(&v).contains(&PROTOCOL_ERROR);
        eprintln!(
            "{name}: {}",
            if stream_error {
                "RST_STREAM PROTOCOL_ERROR"
            } else if connection_error {
                "GOAWAY PROTOCOL_ERROR"
            } else {
                "?"
            }
        );
        assert_eq!(status(s), None, "{name}: answered: {v}");
        assert!(stream_error || connection_error, "{name}: {v}");
        assert_eq!(up.accepts(), 0, "{name}: reached the upstream");
    }
    // A body longer than its content-length, the excess an HTTP/1.1 request.
    let smuggled = pki.path().join("smuggled.bin");
    std::fs::write(
        &smuggled,
        b"hello\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .expect("write");
    let v = py
        .run(&[
            "request",
            "--raw-headers",
            "--read-for",
            "0.3",
            "--body-file",
            path_str(&smuggled),
            "-H",
            ":method: POST",
            "-H",
            ":scheme: https",
            "-H",
            ":authority: localhost",
            "-H",
            ":path: /cl",
            "-H",
            "content-length: 5",
        ])
        .expect("h2-client");
    let s = only(&v);
    assert!(
        s["reset"].as_u64() == Some(PROTOCOL_ERROR) || goaway_codes(&v).contains(&PROTOCOL_ERROR),
        "{v}"
    );
    assert_ne!(status(s), Some(200), "{v}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !up.received(b"/smuggled"),
        "smuggled through content-length"
    );
    assert!(up.seen().iter().all(|s| s.body.len() <= 5));
    // CONNECT is refused by ringgate (405), and the proxy serves on.
    let v = py
        .run(&[
            "request",
            "--raw-headers",
            "-H",
            ":method: CONNECT",
            "-H",
            ":authority: localhost:443",
        ])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(405), "{v}");
    let v = py.run(&["--path", "/ok", "request"]).expect("h2-client");
    assert_eq!(status(only(&v)), Some(200), "{v}");
}

/// More than 1024 stream errors provoked on one connection (streams carrying a
/// `connection` field): the first 1024 are reset (PROTOCOL_ERROR), then the connection is
/// closed with GOAWAY ENHANCE_YOUR_CALM.
#[test]
fn stream_errors_beyond_1024_close_the_connection() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
        .with(&["--timeout", "15"])
        .run(&[
            "request",
            "--raw-headers",
            "--count",
            "1100",
            "-H",
            ":method: GET",
            "-H",
            ":scheme: https",
            "-H",
            ":authority: localhost",
            "-H",
            ":path: /err",
            "-H",
            "connection: close",
        ])
        .expect("h2-client");
    let resets = streams(&v)
        .iter()
        .filter(|s| s["reset"].as_u64() == Some(PROTOCOL_ERROR))
        .count();
    eprintln!(
        "1100 malformed streams: {resets} reset, GOAWAY {:?}",
        goaway_codes(&v)
    );
    assert_eq!(resets, 1024, "{}", v["goaway"]);
    assert!(
        goaway_codes(&v).contains(&ENHANCE_YOUR_CALM),
        "{}",
        v["goaway"]
    );
    assert_eq!(v["closed"], true);
    assert_eq!(up.accepts(), 0);
}

/// An upload answered before its body is read (a 403 for the wrong role, a `return`): the
/// complete response, then RST_STREAM NO_ERROR so the client stops sending (RFC 9113 §8.1);
/// the upstream sees nothing and the connection serves on.
#[test]
fn an_upload_answered_early_is_reset_with_no_error() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .locations(
            "[[listener.location]]\npath = \"/denied\"\nallow_roles = [\"nobody\"]\nproxy_pass = \"http://app\"\n\n[[listener.location]]\npath = \"/ret\"\nreturn = { status = 201, body = \"early\" }\n\n[[listener.location]]\npath = \"/\"\nproxy_pass = \"http://app\"\n",
        )
        .start();
    let py = Py::tls(proxy.addr(), &pki, Some(&pki.client)).with(&["--timeout", "5"]);
    for (path, want) in [("/denied", 403), ("/ret", 201)] {
        let v = py
            .run(&[
                "--path",
                path,
                "request",
                "--method",
                "POST",
                "--body-size",
                "300000",
            ])
            .expect("h2-client");
        let s = only(&v);
        eprintln!(
            "{path}: {:?}, reset {}, {} body bytes left unsent",
            status(s),
            s["reset"],
            s["body_unsent"]
        );
        assert_eq!(status(s), Some(want), "{v}");
        assert_eq!(s["ended"], true, "{v}");
        assert_eq!(s["reset"].as_u64(), Some(NO_ERROR), "{v}");
        assert!(v["elapsed"].as_f64().is_some_and(|t| t < 3.0), "{v}");
    }
    assert_eq!(up.accepts(), 0);
    let v = py
        .run(&[
            "--path",
            "/up",
            "request",
            "--method",
            "POST",
            "--body-size",
            "300000",
        ])
        .expect("h2-client");
    assert_eq!(status(only(&v)), Some(200), "{v}");
    assert_eq!(up.last().body_len, 300_000);
}

/// In nginx-compatible mode (`verify_failure = "http"`) a refused certificate finishes the
/// handshake and every stream gets nginx's 400 page; the upstream sees nothing.
#[test]
fn refused_certificate_in_http_mode_answers_each_stream_400() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let stranger = self_signed_leaf(pki.path(), LeafSpec::client("stranger", "mallory"));
    let proxy = Cfg::new(&pki, &up)
        .tls(&format!(
            "client_certificate = {}\nverify_client = \"on\"\nverify_failure = \"http\"\n",
            p(&pki.ca.pem_path)
        ))
        .start();
    let (version, code, body) = curl_h2(proxy.addr(), &pki, Some(&stranger), "/x", &[]);
    assert_eq!((version.as_str(), code), ("2", 400), "{body}");
    assert!(body.contains("The SSL certificate error"), "{body}");
    let (version, code, body) = curl_h2(proxy.addr(), &pki, None, "/x", &[]);
    assert_eq!((version.as_str(), code), ("2", 400), "{body}");
    assert!(
        body.contains("No required SSL certificate was sent"),
        "{body}"
    );
    if let Some(v) = Py::tls(proxy.addr(), &pki, Some(&stranger)).run(&["request", "--count", "3"])
    {
        let s = streams(&v);
        assert_eq!(s.len(), 3, "{v}");
        assert!(s.iter().all(|s| status(s) == Some(400)), "{v}");
    }
    assert_eq!(up.accepts(), 0);
    let (version, code, _) = curl_h2(proxy.addr(), &pki, Some(&pki.client), "/x", &[]);
    assert_eq!((version.as_str(), code), ("2", 200));
}

/// SIGTERM while a slow stream is in flight: the client gets GOAWAY at once, the stream still
/// completes, and the process exits 0.
#[test]
fn sigterm_sends_goaway_and_in_flight_streams_finish() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Delay(Duration::from_millis(1500)));
    let mut proxy = Cfg::new(&pki, &up).start();
    let py = Py::tls(proxy.addr(), &pki, Some(&pki.client)).with(&[
        "--timeout",
        "10",
        "--path",
        "/slow",
    ]);
    let client = std::thread::spawn(move || py.run(&["request", "--read-for", "2"]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.seen().is_empty() {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    proxy.sigterm();
    let v = client.join().expect("client").expect("h2-client");
    let s = only(&v);
    assert_eq!(status(s), Some(200), "{v}");
    assert_eq!(s["ended"], true, "{v}");
    let goaway = v["goaway"].as_array().expect("goaway");
    assert!(
        goaway
            .first()
            .is_some_and(|g| g["code"].as_u64() == Some(NO_ERROR)),
        "{v}"
    );
    assert!(
        goaway[0]["t"].as_f64() < s["end_t"].as_f64(),
        "the GOAWAY came only after the stream: {v}"
    );
    assert_eq!(v["closed"], true, "{v}");
    let st = proxy.wait_exit(Duration::from_secs(8)).expect("exited");
    assert!(st.success(), "{st:?}");
}

/// `keepalive_requests = 3`: the third stream brings GOAWAY; the three are served and the
/// connection closes.
#[test]
fn keepalive_requests_ends_the_connection_with_goaway() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).http("keepalive_requests = 3\n").start();
    let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
        .with(&["--timeout", "5"])
        .run(&["request", "--count", "3", "--read-for", "2"])
        .expect("h2-client");
    let s = streams(&v);
    assert!(s.iter().all(|s| status(s) == Some(200)), "{v}");
    assert!(goaway_codes(&v).contains(&NO_ERROR), "{v}");
    assert_eq!(v["closed"], true, "{v}");
}

/// An idle connection gets GOAWAY after `keepalive_timeout` and is closed once the client has
/// acknowledged it (a well-behaved client).
#[test]
fn idle_connection_is_closed_after_keepalive_timeout() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .http("keepalive_timeout = \"1s\"\n")
        .start();
    let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
        .with(&["--timeout", "6"])
        .run(&["idle", "--ack"])
        .expect("h2-client");
    eprintln!("idle, acknowledging client: {v}");
    let first = v["goaway"][0]["t"].as_f64().expect("a GOAWAY");
    assert!((0.9..2.5).contains(&first), "{v}");
    assert_eq!(v["closed"], true, "{v}");
    assert!(v["closed_t"].as_f64().is_some_and(|t| t < 3.0), "{v}");
}

/// The same idle connection from a client that went silent (it never acknowledges the
/// graceful GOAWAY's PING): `keepalive_timeout` must still close it, as it closes an idle
/// HTTP/1.1 connection, or every silent client holds a connection slot for ever.
#[test]
fn silent_idle_connection_is_closed_after_keepalive_timeout() {
    if !Py::available() {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .http("keepalive_timeout = \"1s\"\n")
        .start();
    let v = Py::tls(proxy.addr(), &pki, Some(&pki.client))
        .with(&["--timeout", "8"])
        .run(&["idle"])
        .expect("h2-client");
    eprintln!("idle, silent client: {v}");
    assert!(!v["goaway"].as_array().is_some_and(Vec::is_empty), "{v}");
    assert_eq!(
        v["closed"], true,
        "the connection is still open {} s after keepalive_timeout (1 s): {v}",
        v["elapsed"]
    );
}

/// nginx 1.22 beside ringgate on one nginx.conf (`--nginx-config`): with `listen ... ssl
/// http2` both answer curl --http2 over HTTP/2 with the same statuses; without `http2` both
/// answer HTTP/1.1.
#[test]
fn nginx_conf_with_and_without_http2_answers_as_nginx_does() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx)");
        return;
    };
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let port = free_port();
    let conf = |http2: &str| {
        format!(
            r#"events {{}}
http {{
    server {{
        listen 127.0.0.1:{port} ssl{http2};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://{up};
        }}
        location = /ret {{
            return 200 "returned\n";
        }}
        location /gone {{
            return 404;
        }}
    }}
}}
"#,
            cert = path_str(&pki.server.cert),
            key = path_str(&pki.server.key),
            up = up.addr,
        )
    };
    let exchange = |port: u16| -> Vec<String> {
        ["/", "/app?q=1", "/ret", "/gone/x"]
            .iter()
            .map(|path| {
                let resolve = format!("localhost:{port}:127.0.0.1");
                let url = format!("https://localhost:{port}{path}");
                let args = [
                    "--http2",
                    "--cacert",
                    path_str(&pki.ca.pem_path),
                    "--resolve",
                    &resolve,
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_version} %{http_code}",
                    &url,
                ];
                // A server that has just started can refuse the very first connection (curl's
                // exit 7) although its readiness probe connected: asked again, it answers.
                let mut tries = 0;
                let (code, out, err) = loop {
                    let (code, out, err) = curl(&args);
                    tries += 1;
                    if code != 7 || tries == 10 {
                        break (code, out, err);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                };
                assert_eq!(code, 0, "{path}: {err}");
                format!("{path}: {out}")
            })
            .collect()
    };
    for http2 in [" http2", ""] {
        let (dir, path) = write_conf(&conf(http2));
        let from_nginx = {
            let _n = Nginx::start(nginx, &path, port);
            exchange(port)
        };
        let from_ringgate = {
            let proxy = Proxy::start_nginx(dir, path);
            let got = exchange(port);
            drop(proxy);
            got
        };
        eprintln!(
            "listen ... ssl{http2}:\n  nginx:    {from_nginx:?}\n  ringgate: {from_ringgate:?}"
        );
        let version = if http2.is_empty() { "1.1" } else { "2" };
        assert!(
            from_nginx
                .iter()
                .all(|l| l.contains(&format!(": {version} "))),
            "{from_nginx:?}"
        );
        assert_eq!(from_ringgate, from_nginx);
    }
}
