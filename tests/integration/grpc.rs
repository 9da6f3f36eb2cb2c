//! gRPC through HTTP/2 upstreams (`proxy_pass = "grpc://..."`, `grpcs://...`, `protocol =
//! "h2"`): the real proxy with an mTLS listener in front of `scripts/grpc-upstream.py` (python's
//! grpcio, generic handlers over raw bytes), driven by `scripts/grpc-client.py`, which prints
//! each RPC's status, metadata and payload digests as JSON.
//!
//! What a gRPC client must see through the proxy: messages byte for byte in all four call
//! shapes (full duplex for bidi), the upstream's status, message, `grpc-status-details-bin`
//! and custom trailers unchanged, ringgate's identity headers (forged ones stripped), roles per
//! stream, proxy-side failures as trailers-only gRPC statuses (UNAVAILABLE for 502,
//! DEADLINE_EXCEEDED for 504, logged as 502/504), more upstream connections at the upstream's
//! stream limit, GOAWAY honoured, and HTTP/2 over mutual TLS to the upstream. The grpcio server
//! resets any stream without `te: trailers`, so every OK here also proves it was forwarded.
//! One test runs the same calls through nginx's `grpc_pass` for comparison.
//!
//! Without python's `grpc` (`python3 -m pip install grpcio`; `.ci/run` installs it) each test
//! says SKIPPED and returns; the nginx comparison is skipped without nginx too, and the
//! frame-level look at a trailers-only answer (`scripts/h2-client.py`) without python's `h2`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rcgen::DnType;
use serde_json::Value;

use crate::access_log::lines;
use crate::support::nginx::{free_port, nginx_binary, write_conf, Nginx};
use crate::support::pki::{p, Leaf, LeafSpec, Pki, CLIENT_DN};
use crate::support::proxy::Proxy;
use crate::support::{curl, curl_url, path_str};

const UPSTREAM_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/grpc-upstream.py");
const CLIENT_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/grpc-client.py");
/// python's `h2` behind the HTTP/2 tests: a request whose answer a test reads frame by frame.
const H2_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/h2-client.py");
/// python's `h2` as an HTTP/2 upstream that answers with what it received, trailers included.
const H2_UPSTREAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/h2-upstream.py");

/// The exit code both scripts use for "python's grpc module is missing".
const SKIP: i32 = 77;

/// True when python3 can import `grpc`; otherwise prints why `test` is skipped.
fn python_grpc(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import grpc"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED {test}: python3 with `grpc` is missing (python3 -m pip install grpcio grpcio-status)"
        );
    }
    ok
}

// ------------------------------------------------------------------ the upstream

/// `scripts/grpc-upstream.py` on a free port with its JSON-lines log of every RPC; killed when
/// dropped.
struct GrpcUpstream {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl GrpcUpstream {
    /// Starts the upstream with `args` (`--max-concurrent-streams 1`, `--tls CERT KEY`, ...).
    fn start(args: &[&str]) -> GrpcUpstream {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("rpcs.jsonl");
        let mut child = Command::new("python3")
            .arg(UPSTREAM_SCRIPT)
            .args(["--port", "0", "--log"])
            .arg(&log)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/grpc-upstream.py");
        let stdout = child.stdout.take().expect("the upstream's stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port.filter(|p| *p != 0) else {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "scripts/grpc-upstream.py {args:?} printed no `PORT <n>` line within 15 s \
                 (first line {line:?}, exit {status:?})"
            );
        };
        GrpcUpstream {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            _dir: dir,
        }
    }

    /// `"127.0.0.1:PORT"` as a TOML string.
    fn server(&self) -> String {
        format!("\"{}\"", self.addr)
    }

    /// Every RPC the upstream has started, in order (`method`, `peer`, `metadata`).
    fn rpcs(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The RPCs of one method.
    fn rpcs_of(&self, method: &str) -> Vec<Value> {
        self.rpcs()
            .into_iter()
            .filter(|r| r["method"] == method)
            .collect()
    }

    /// The distinct peers (`ipv4:127.0.0.1:PORT`: one per TCP connection) of `method`'s RPCs.
    fn peers_of(&self, method: &str) -> BTreeSet<String> {
        self.rpcs_of(method)
            .iter()
            .filter_map(|r| r["peer"].as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for GrpcUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ the client

/// `scripts/grpc-client.py` with its connection options.
struct Client {
    conn: Vec<String>,
}

impl Client {
    /// TLS to `addr` as `localhost`, trusting the test CA, presenting `leaf`.
    fn mtls(addr: SocketAddr, pki: &Pki, leaf: &Leaf) -> Client {
        let mut c = Client::anonymous(addr, pki);
        c.conn.extend([
            "--cert".to_string(),
            path_str(&leaf.cert).to_string(),
            "--key".to_string(),
            path_str(&leaf.key).to_string(),
        ]);
        c
    }

    /// TLS to `addr` as `localhost`, trusting the test CA, with no certificate.
    fn anonymous(addr: SocketAddr, pki: &Pki) -> Client {
        Client {
            conn: vec![
                "--addr".to_string(),
                addr.to_string(),
                "--server-name".to_string(),
                "localhost".to_string(),
                "--ca".to_string(),
                path_str(&pki.ca.pem_path).to_string(),
            ],
        }
    }

    /// Plain HTTP/2 (h2c) to `addr`: straight to the upstream, for reference answers.
    fn plain(addr: SocketAddr) -> Client {
        Client {
            conn: vec![
                "--addr".to_string(),
                addr.to_string(),
                "--plain".to_string(),
            ],
        }
    }

    /// Request metadata `key=value` on every RPC (base64 values for `-bin` keys).
    fn metadata(mut self, key: &str, value: &str) -> Client {
        self.conn.push("-m".to_string());
        self.conn.push(format!("{key}={value}"));
        self
    }

    /// Runs one scenario (or several separated by `+`, giving a JSON list); panics when the
    /// script itself failed. A failed RPC is not a failed script: its JSON says how it failed.
    fn run(&self, scenario: &[&str]) -> Value {
        let out = Command::new("timeout")
            .args(["60", "python3", CLIENT_SCRIPT])
            .args(&self.conn)
            .args(scenario)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/grpc-client.py under timeout(1)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(124) => panic!("grpc-client.py {scenario:?} ran over 60 s\nstderr: {stderr}"),
            Some(SKIP) => panic!(
                "grpc-client.py {scenario:?}: python's grpc vanished after the check: {stderr}"
            ),
            code => panic!(
                "grpc-client.py {scenario:?} failed (exit {code:?})\nstdout: {stdout}\nstderr: {stderr}"
            ),
        }
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("grpc-client.py {scenario:?} printed no JSON ({e}): {stdout}\nstderr: {stderr}")
        })
    }

    /// Runs several scenarios on one channel; one result each.
    fn run_all(&self, scenarios: &[&[&str]]) -> Vec<Value> {
        let mut words = Vec::new();
        for (i, s) in scenarios.iter().enumerate() {
            if i > 0 {
                words.push("+");
            }
            words.extend_from_slice(s);
        }
        let v = self.run(&words);
        if scenarios.len() == 1 {
            return vec![v];
        }
        let list = v
            .as_array()
            .unwrap_or_else(|| panic!("grpc-client.py printed no list for {scenarios:?}: {v}"))
            .clone();
        assert_eq!(list.len(), scenarios.len(), "one result per scenario: {v}");
        list
    }
}

/// An RPC's status code name (`OK`, `UNAVAILABLE`, ...).
fn code(r: &Value) -> &str {
    r["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no status code in {r}"))
}

/// Asserts the RPC ended OK.
#[track_caller]
fn assert_ok(r: &Value, what: &str) {
    assert_eq!(code(r), "OK", "{what}: {r}");
}

/// The values of metadata `key` in `which` (`initial_metadata`, `trailing_metadata`, or the
/// `metadata` of an upstream's Headers answer), in order.
fn md(r: &Value, which: &str, key: &str) -> Vec<String> {
    r[which]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e[0].as_str() == Some(key))
                .filter_map(|e| e[1].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The metadata entries of `which` whose key starts with one of `prefixes`, as (key, value).
fn md_with(r: &Value, which: &str, prefixes: &[&str]) -> Vec<(String, String)> {
    r[which]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| Some((e[0].as_str()?.to_string(), e[1].as_str()?.to_string())))
                .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)))
                .collect()
        })
        .unwrap_or_default()
}

/// A gRPC-over-HTTP error: the client turned a non-200 HTTP status into a gRPC code
/// ("Received http2 header with status: 502"), so no `grpc-status` came with it.
fn from_http_status(r: &Value) -> bool {
    r["details"]
        .as_str()
        .is_some_and(|d| d.contains("http2 header with status"))
}

// ------------------------------------------------------------------ configurations

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

/// ringgate's configuration for these tests: one worker, one mTLS listener `main` (the test
/// CA's clients required) with `listener` lines (access_log, identity_headers), `top` sections
/// before it (`[identity]`), `/` proxied to `proxy_pass` with `location` lines, then
/// `upstreams` (whole `[[upstream]]` blocks, maybe none).
struct Setup<'a> {
    pki: &'a Pki,
    proxy_pass: String,
    top: String,
    listener: String,
    location: String,
    upstreams: String,
}

impl<'a> Setup<'a> {
    fn new(pki: &'a Pki, proxy_pass: &str) -> Setup<'a> {
        Setup {
            pki,
            proxy_pass: proxy_pass.to_string(),
            top: String::new(),
            listener: String::new(),
            location: String::new(),
            upstreams: String::new(),
        }
    }

    /// `proxy_pass = "grpc://127.0.0.1:PORT"`: the implicit h2c upstream.
    fn implicit(pki: &'a Pki, up: &GrpcUpstream) -> Setup<'a> {
        Setup::new(pki, &format!("grpc://{}", up.addr))
    }

    /// `proxy_pass = "<scheme>://app"` with `[[upstream]] app` speaking HTTP/2 to `up`;
    /// `extra` lines end the upstream block (`read_timeout`, `[upstream.tls]`).
    fn named(pki: &'a Pki, scheme: &str, up: &GrpcUpstream, extra: &str) -> Setup<'a> {
        let mut s = Setup::new(pki, &format!("{scheme}://app"));
        s.upstreams = format!(
            "[[upstream]]\nname = \"app\"\nservers = [{}]\nprotocol = \"h2\"\nconnect_timeout = \"2s\"\n{extra}\n",
            up.server()
        );
        s
    }

    /// Writes the access log to `path`.
    fn access_log(mut self, path: &Path) -> Setup<'a> {
        self.listener
            .push_str(&format!("access_log = {{ path = {} }}\n", p(path)));
        self
    }

    fn top(mut self, s: &str) -> Setup<'a> {
        self.top.push_str(s);
        self
    }

    fn listener(mut self, s: &str) -> Setup<'a> {
        self.listener.push_str(s);
        self
    }

    fn location(mut self, s: &str) -> Setup<'a> {
        self.location.push_str(s);
        self
    }

    fn render(&self) -> String {
        format!(
            r#"[runtime]
workers = 1
shutdown_timeout = "2s"
refusal_log_per_second = 0

{top}

[[listener]]
name = "main"
listen = "127.0.0.1:0"
{listener}

[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
client_certificate = {ca}
verify_client = "on"

[[listener.location]]
path = "/"
proxy_pass = "{proxy_pass}"
{location}

{upstreams}
"#,
            top = self.top,
            listener = self.listener,
            cert = p(&self.pki.server.cert),
            key = p(&self.pki.server.key),
            ca = p(&self.pki.ca.pem_path),
            proxy_pass = self.proxy_pass,
            location = self.location,
            upstreams = self.upstreams,
        )
    }

    fn start(&self) -> Proxy {
        Proxy::start(&self.render())
    }
}

/// The access-log line of `request` (`POST /test.Echo/Unary`), waiting for `n` lines.
fn log_line(path: &Path, n: usize, request: &str) -> String {
    let all = lines(path, n);
    all.iter()
        .find(|l| l.contains(request))
        .unwrap_or_else(|| panic!("no access-log line with {request:?}: {all:?}"))
        .clone()
}

/// One gRPC message frame (uncompressed) holding `payload`.
fn grpc_frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a small message");
    let mut f = vec![0u8];
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// curl over HTTP/2 to `path` through the proxy as the test client, POSTing `body_file` with
/// `headers`: the response head and trailers as curl dumps them (lower-cased), and the body.
fn curl_h2_post(
    proxy: &Proxy,
    pki: &Pki,
    path: &str,
    body_file: &Path,
    headers: &[&str],
) -> (String, Vec<u8>) {
    let data = format!("@{}", path_str(body_file));
    let out_file = body_file.with_extension("response");
    let mut args = vec!["--http2", "--data-binary", &data];
    for h in headers {
        args.extend(["-H", h]);
    }
    let (code, out, err) = curl_as_client(proxy, pki, path, path_str(&out_file), &args);
    assert_eq!(code, 0, "curl {path}: {err}");
    let body = std::fs::read(&out_file).unwrap_or_default();
    (out.to_ascii_lowercase(), body)
}

/// curl to `path` through the proxy as the test client with `args`, the body written to
/// `out`: its exit code, the response head(s) and its error output.
fn curl_as_client(
    proxy: &Proxy,
    pki: &Pki,
    path: &str,
    out: &str,
    args: &[&str],
) -> (i32, String, String) {
    let (resolve, url) = curl_url(proxy.addr(), path);
    let mut all = vec![
        "-D",
        "-",
        "-o",
        out,
        "--resolve",
        &resolve,
        "--cacert",
        path_str(&pki.ca.pem_path),
        "--cert",
        path_str(&pki.client.cert),
        "--key",
        path_str(&pki.client.key),
    ];
    all.extend_from_slice(args);
    all.push(&url);
    curl(&all)
}

/// `scripts/h2-client.py` (under a 30 s timeout) through `proxy` with the test client's
/// certificate, for one request to `path`: its words follow.
fn h2_client(proxy: &Proxy, pki: &Pki, path: &str) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["30", "python3", H2_CLIENT, "--addr"])
        .arg(proxy.addr().to_string())
        .arg("--ca")
        .arg(&pki.ca.pem_path)
        .arg("--cert")
        .arg(&pki.client.cert)
        .arg("--key")
        .arg(&pki.client.key)
        .args(["--path", path, "request"]);
    cmd
}

/// One POST of `body_file` with `headers` to `path` through the proxy as the test client, by
/// `scripts/h2-client.py`: the stream as it reports it (`status`, `headers` including those of
/// a trailers-only answer, `body_len`); None, after a SKIPPED line, without python's `h2`.
/// (Not curl for an answer that may come before the request's body is sent: curl 7.88 reports
/// the RST_STREAM(NO_ERROR) that may follow such a complete answer, RFC 9113 section 8.1, as
/// error 92 now and then.)
fn h2_post(
    proxy: &Proxy,
    pki: &Pki,
    path: &str,
    body_file: &Path,
    headers: &[&str],
) -> Option<Value> {
    let mut cmd = h2_client(proxy, pki, path);
    cmd.args(["--method", "POST", "--body-file"]).arg(body_file);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .output()
        .expect("run scripts/h2-client.py under timeout(1)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(SKIP) {
        eprintln!("SKIPPED the raw HTTP/2 check of {path}: {}", stderr.trim());
        return None;
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "h2-client.py {path}\nstdout: {stdout}\nstderr: {stderr}"
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("h2-client.py {path} printed no JSON ({e}): {stdout}\nstderr: {stderr}")
    });
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        streams.len(),
        1,
        "h2-client.py {path}: one stream expected: {v}"
    );
    Some(streams[0].clone())
}

/// `scripts/h2-upstream.py` (python's `h2`), killed when dropped; None (the test skipped,
/// saying so) when it cannot start.
struct H2Upstream {
    child: Child,
    port: u16,
}

impl H2Upstream {
    fn start(test: &str, args: &[&str]) -> Option<H2Upstream> {
        let mut child = Command::new("python3")
            .args([H2_UPSTREAM, "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/h2-upstream.py");
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse::<u16>().ok());
        let mut up = H2Upstream { child, port: 0 };
        match port {
            Some(port) => {
                up.port = port;
                Some(up)
            }
            None => {
                eprintln!(
                    "SKIPPED {test}: scripts/h2-upstream.py did not start (python's h2 missing?)"
                );
                None
            }
        }
    }
}

impl Drop for H2Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `scripts/h2-client.py` through `proxy` with the test client's certificate: one request
/// (`words` after `request`), its JSON report.
fn h2_request(proxy: &Proxy, pki: &Pki, path: &str, words: &[&str]) -> Value {
    let out = h2_client(proxy, pki, path)
        .args(words)
        .output()
        .expect("run scripts/h2-client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("h2-client.py printed no JSON ({e}): {stdout}"))
}

/// An upstream that refuses a stream (REFUSED_STREAM: it did not process it) gets a request
/// without a body again, on the next stream, and the client its answer; a request whose body
/// was already passed on is not sent twice, and is answered 502 with the reason in the log.
#[test]
fn a_refused_stream_is_sent_again_only_when_the_request_has_no_body() {
    let test = "a_refused_stream_is_sent_again_only_when_the_request_has_no_body";
    let Some(up) = H2Upstream::start(test, &["--refuse", "2"]) else {
        return;
    };
    let pki = Pki::new();
    let proxy = Setup::new(&pki, &format!("grpc://127.0.0.1:{}", up.port)).start();
    // Refused twice (the retries' limit), answered the third time.
    let v = h2_request(&proxy, &pki, "/svc/Get", &["--keep-body"]);
    let stream = &v["streams"][0];
    assert_eq!(stream["status"], 200, "{v}");
    let got: Value = serde_json::from_str(stream["body_text"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the upstream's answer is not its JSON report ({e}): {v}"));
    assert_eq!(
        got["refused"], 2,
        "both refusals came before the answer: {got}"
    );
    proxy.assert_log(&["refused the stream (REFUSED_STREAM)", "sending it again"]);
    drop(proxy);
    drop(up);

    let Some(up) = H2Upstream::start(test, &["--refuse", "1"]) else {
        return;
    };
    let proxy = Setup::new(&pki, &format!("grpc://127.0.0.1:{}", up.port)).start();
    let body = pki.path().join("body.bin");
    std::fs::write(&body, vec![7u8; 1000]).expect("body file");
    let path = body.to_string_lossy().to_string();
    let v = h2_request(
        &proxy,
        &pki,
        "/svc/Post",
        &["--method", "POST", "--body-file", path.as_str()],
    );
    assert_eq!(v["streams"][0]["status"], 502, "{v}");
    proxy.assert_log(&["REFUSED_STREAM"]);
    assert!(
        !proxy.log_contains("sending it again"),
        "a request with a body was sent twice: {}",
        proxy.log()
    );
}

// ------------------------------------------------------------------ the tests

/// Request trailers reach an HTTP/2 upstream, and its response trailers the client, with the
/// request's own fields (`te: trailers` added, no connection-specific field) as the upstream
/// gets them: seen by `scripts/h2-upstream.py`, which reports every field and trailer (grpcio
/// hides request trailers), driven by `scripts/h2-client.py` (python's `h2`).
#[test]
fn request_and_response_trailers_cross_an_http2_upstream() {
    let Some(up) = H2Upstream::start("request_and_response_trailers_cross_an_http2_upstream", &[])
    else {
        return;
    };
    let port = up.port;
    let pki = Pki::new();
    let proxy = Setup::new(&pki, &format!("grpc://127.0.0.1:{port}")).start();
    let body = pki.path().join("body.bin");
    std::fs::write(&body, vec![7u8; 3000]).expect("body file");
    let body = body.to_string_lossy().to_string();
    let v = h2_request(
        &proxy,
        &pki,
        "/svc/Call",
        &[
            "--method",
            "POST",
            "--no-length",
            "--keep-body",
            "--body-file",
            body.as_str(),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "--trailer",
            "x-checksum: 42",
            "--trailer",
            "x-client-trailer: end",
        ],
    );
    let stream = &v["streams"][0];
    assert_eq!(stream["status"], 200, "{v}");
    // The response trailers, as the upstream sent them.
    let trailers: Vec<(String, String)> =
        serde_json::from_value(stream["trailers"].clone()).unwrap_or_default();
    assert!(
        trailers.contains(&("x-upstream-trailer".into(), "sent".into())),
        "{v}"
    );
    assert!(
        trailers.contains(&("x-got-trailers".into(), "2".into())),
        "{v}"
    );
    // What the upstream received: the body, both request trailers, `te: trailers`, and no
    // HTTP/1.1 framing or connection field.
    let got: Value = serde_json::from_str(stream["body_text"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the upstream's answer is not its JSON report ({e}): {v}"));
    assert_eq!(got["body_len"], 3000, "{got}");
    let fields: Vec<(String, String)> =
        serde_json::from_value(got["headers"].clone()).unwrap_or_default();
    let field = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(field("te"), Some("trailers"), "{got}");
    assert_eq!(field(":method"), Some("POST"));
    assert_eq!(field(":path"), Some("/svc/Call"));
    assert_eq!(field("content-type"), Some("application/grpc"));
    for hop in ["transfer-encoding", "connection", "host", "keep-alive"] {
        assert_eq!(field(hop), None, "{hop} reached the HTTP/2 upstream: {got}");
    }
    let sent: Vec<(String, String)> =
        serde_json::from_value(got["trailers"].clone()).unwrap_or_default();
    assert_eq!(
        sent,
        [
            ("x-checksum".to_string(), "42".to_string()),
            ("x-client-trailer".to_string(), "end".to_string())
        ],
        "{got}"
    );
}

/// All four call shapes through `grpc://127.0.0.1:PORT` (the implicit h2c upstream): a 70,000
/// byte unary message (every byte value, several DATA frames) and 8 x 20,000 bytes of client
/// stream arrive byte for byte; 50 server-stream messages in order; 20 bidi ping-pongs, each
/// sent only after the previous echo came back (a relay that waits for the end of the request
/// never answers); custom initial metadata (text and `-bin`) and trailers reach the client;
/// the access log says `"POST /test.Echo/Unary HTTP/2.0" 200`.
#[test]
fn unary_and_streaming_calls_pass_through_unchanged() {
    if !python_grpc("unary_and_streaming_calls_pass_through_unchanged") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let proxy = Setup::implicit(&pki, &up).access_log(&log).start();
    let r = Client::mtls(proxy.addr(), &pki, &pki.client)
        .metadata("x-echo-text", "hello metadata")
        .metadata("x-echo-blob-bin", "AAEC/f7/")
        .run_all(&[
            &["unary", "70000"],
            &["server-stream", "50"],
            &["client-stream", "8", "20000"],
            &["bidi", "20"],
        ]);
    let (unary, server, client, bidi) = (&r[0], &r[1], &r[2], &r[3]);

    assert_ok(unary, "unary");
    assert_eq!(unary["response_len"], 70000, "{unary}");
    assert_eq!(
        unary["response_sha256"], unary["request_sha256"],
        "the unary echo differs from the request: {unary}"
    );
    assert_eq!(
        md(unary, "initial_metadata", "x-echo-text"),
        ["hello metadata"]
    );
    assert_eq!(
        md(unary, "initial_metadata", "x-echo-blob-bin"),
        ["AAEC/f7/"]
    );
    assert_eq!(md(unary, "trailing_metadata", "x-trailer"), ["done"]);

    assert_ok(server, "server stream");
    let want: Vec<String> = (0..50).map(|i| format!("msg-{i}")).collect();
    assert_eq!(server["messages"], serde_json::json!(want), "{server}");
    assert_eq!(md(server, "trailing_metadata", "x-trailer"), ["done"]);

    assert_ok(client, "client stream");
    assert_eq!(client["response_len"], 160000, "{client}");
    assert_eq!(
        client["response_sha256"], client["request_sha256"],
        "{client}"
    );
    assert_eq!(md(client, "trailing_metadata", "x-count"), ["8"]);
    assert_eq!(md(client, "trailing_metadata", "x-total-len"), ["160000"]);

    assert_ok(bidi, "bidi (a relay that is not full duplex stalls it)");
    let want: Vec<String> = (0..20).map(|i| format!("ping-{i}")).collect();
    assert_eq!(bidi["messages"], serde_json::json!(want), "{bidi}");
    assert_eq!(md(bidi, "trailing_metadata", "x-trailer"), ["done"]);

    // The RPCs reached the upstream once each (no retries behind the client's back).
    for method in ["Unary", "ServerStream", "ClientStream", "Bidi"] {
        assert_eq!(up.rpcs_of(method).len(), 1, "{method}: {:?}", up.rpcs());
    }
    let line = log_line(&log, 4, "/test.Echo/Unary");
    assert!(
        line.contains("\"POST /test.Echo/Unary HTTP/2.0\" 200 "),
        "{line}"
    );
}

/// `proxy_pass = "grpc://app"` and `"http://app"` with `[[upstream]] protocol = "h2"` both
/// speak HTTP/2 to the upstream (the grpcio server speaks nothing else): a unary call and its
/// trailers pass.
#[test]
fn named_h2_upstream_through_grpc_and_http_schemes() {
    if !python_grpc("named_h2_upstream_through_grpc_and_http_schemes") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&[]);
    for scheme in ["grpc", "http"] {
        let proxy = Setup::named(&pki, scheme, &up, "").start();
        let r = Client::mtls(proxy.addr(), &pki, &pki.client).run(&["unary", "20000"]);
        assert_ok(&r, &format!("{scheme}://app with protocol = \"h2\""));
        assert_eq!(r["response_sha256"], r["request_sha256"], "{scheme}: {r}");
        assert_eq!(
            md(&r, "trailing_metadata", "x-trailer"),
            ["done"],
            "{scheme}: {r}"
        );
    }
    assert_eq!(up.rpcs_of("Unary").len(), 2, "{:?}", up.rpcs());
}

/// A plain HTTP/2 client (curl) that frames one gRPC message by hand: the echo comes back in
/// the same frame, with the upstream's response metadata and its trailers (`grpc-status: 0`,
/// `x-trailer: done`) after the body.
#[test]
fn curl_over_http2_gets_the_message_and_the_trailers() {
    if !python_grpc("curl_over_http2_gets_the_message_and_the_trailers") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&[]);
    let proxy = Setup::implicit(&pki, &up).start();
    let dir = tempfile::tempdir().expect("tempdir");
    let body = dir.path().join("request.bin");
    let frame = grpc_frame(b"hello \x00\xff grpc");
    std::fs::write(&body, &frame).expect("write the request body");
    let (head, echoed) = curl_h2_post(
        &proxy,
        &pki,
        "/test.Echo/Unary",
        &body,
        &[
            "content-type: application/grpc",
            "te: trailers",
            "x-echo-from: curl",
        ],
    );
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("\ncontent-type: application/grpc"), "{head}");
    assert!(head.contains("\nx-echo-from: curl"), "{head}");
    assert_eq!(
        echoed, frame,
        "the echoed gRPC frame differs; head:\n{head}"
    );
    // curl writes the trailers after the head's blank line.
    let trailers = head
        .split_once("\r\n\r\n")
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("no blank line after the head: {head}"));
    assert!(trailers.contains("grpc-status: 0"), "{head}");
    assert!(trailers.contains("x-trailer: done"), "{head}");
}

/// The upstream's failure reaches the client as the upstream wrote it: the status code, the
/// message (percent-encoded on the wire: spaces, `%`, non-ASCII), `grpc-status-details-bin`
/// (a google.rpc.Status that grpcio-status decodes and checks against grpc-status and
/// grpc-message), a custom text trailer and a binary one; the same as straight from the
/// upstream.
#[test]
fn upstream_status_message_details_and_trailers_pass_unchanged() {
    if !python_grpc("upstream_status_message_details_and_trailers_pass_unchanged") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&[]);
    let proxy = Setup::implicit(&pki, &up).start();
    let calls: [&[&str]; 3] = [
        &["fail", "NOT_FOUND", "no such thing: ünïcödé 100% sure"],
        &["fail", "RESOURCE_EXHAUSTED", "quota"],
        &["fail", "INTERNAL", "boom\twith a tab"],
    ];
    let through = Client::mtls(proxy.addr(), &pki, &pki.client).run_all(&calls);
    let direct = Client::plain(up.addr).run_all(&calls);
    let want_codes = ["NOT_FOUND", "RESOURCE_EXHAUSTED", "INTERNAL"];
    for ((t, d), want) in through.iter().zip(&direct).zip(want_codes) {
        assert_eq!(code(d), want, "straight from the upstream: {d}");
        assert_eq!(code(t), want, "through ringgate: {t}");
        assert_eq!(t["details"], d["details"], "grpc-message changed");
        let keys = ["grpc-status-details-bin", "x-fail-"];
        let t_trailers = md_with(t, "trailing_metadata", &keys);
        assert_eq!(
            t_trailers,
            md_with(d, "trailing_metadata", &keys),
            "the trailers changed on the way:\nthrough {t}\ndirect {d}"
        );
        assert_eq!(
            md(t, "trailing_metadata", "x-fail-trailer"),
            ["kept"],
            "{t}"
        );
        assert_eq!(
            md(t, "trailing_metadata", "x-fail-blob-bin"),
            // b"\x00\x01\xfe\xffbinary trailer\r\n"
            ["AAH+/2JpbmFyeSB0cmFpbGVyDQo="],
            "{t}"
        );
        assert_eq!(
            md(t, "trailing_metadata", "grpc-status-details-bin").len(),
            1,
            "{t}"
        );
        // Decoded by grpcio-status where it is installed (null on both sides otherwise).
        assert_eq!(t["status_details"], d["status_details"], "{t}");
        if !t["status_details"].is_null() {
            assert!(t["status_details"]["error"].is_null(), "{t}");
            assert_eq!(
                t["status_details"]["details"][0]["reason"], "TEST_FAILURE",
                "{t}"
            );
        }
    }
    assert_eq!(
        through[0]["details"], "no such thing: ünïcödé 100% sure",
        "{}",
        through[0]
    );
}

/// ringgate sets its identity headers on every gRPC request as on HTTP/1.1 requests, and
/// drops every client-sent copy (any spelling, `_` for `-`) while other metadata, text and
/// binary, passes unchanged; no connection-specific field reaches the upstream.
#[test]
fn identity_headers_are_set_and_forged_metadata_is_stripped() {
    if !python_grpc("identity_headers_are_set_and_forged_metadata_is_stripped") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&[]);
    let proxy = Setup::implicit(&pki, &up)
        .top("[identity]\nroles = [ { role = \"eng\", ou = \"Eng\" } ]\n")
        .listener(
            "identity_headers = { subject = \"X-SSL-Client-DN\", verify = \"X-SSL-Client-Verify\", role = \"X-Client-Role\", fingerprint = \"X-SSL-Client-Fingerprint\" }\n",
        )
        .start();
    let r = Client::mtls(proxy.addr(), &pki, &pki.client)
        .metadata("x-ssl-client-dn", "CN=FORGED1")
        .metadata("x_ssl_client_dn", "CN=FORGED2")
        .metadata("x-ssl-client-verify", "FORGED-SUCCESS")
        .metadata("x-client-role", "FORGED-admin")
        .metadata("x-ssl-client-fingerprint", "FORGED-00")
        .metadata("x-forwarded-client-cert", "By=FORGED;Hash=00")
        .metadata("client-cert", ":FORGED:")
        .metadata("x-custom", "kept as sent")
        .metadata("x-custom-bin", "3q2+7w==")
        .run(&["headers"]);
    assert_ok(&r, "Headers");
    let seen = &r["response"];
    let entries = seen["metadata"]
        .as_array()
        .unwrap_or_else(|| panic!("no metadata in the upstream's answer: {r}"));
    for e in entries {
        let (k, v) = (e[0].as_str().unwrap_or(""), e[1].as_str().unwrap_or(""));
        assert!(
            !v.contains("FORGED"),
            "forged {k}: {v} reached the upstream"
        );
        assert!(
            !k.contains('_'),
            "{k} with an underscore reached the upstream"
        );
        assert!(
            !matches!(
                k,
                "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
            ),
            "connection-specific {k} sent over HTTP/2"
        );
    }
    assert_eq!(
        md(seen, "metadata", "x-ssl-client-dn"),
        [CLIENT_DN],
        "{seen}"
    );
    assert_eq!(
        md(seen, "metadata", "x-ssl-client-verify"),
        ["SUCCESS"],
        "{seen}"
    );
    assert_eq!(md(seen, "metadata", "x-client-role"), ["eng"], "{seen}");
    let fp = md(seen, "metadata", "x-ssl-client-fingerprint");
    assert!(
        fp.len() == 1 && fp[0].len() == 40 && fp[0].bytes().all(|b| b.is_ascii_hexdigit()),
        "SHA-1 fingerprint: {fp:?}"
    );
    assert!(
        md(seen, "metadata", "x-forwarded-client-cert").is_empty(),
        "{seen}"
    );
    assert!(md(seen, "metadata", "client-cert").is_empty(), "{seen}");
    assert_eq!(md(seen, "metadata", "x-custom"), ["kept as sent"], "{seen}");
    assert_eq!(md(seen, "metadata", "x-custom-bin"), ["3q2+7w=="], "{seen}");
    assert_eq!(
        md(seen, "metadata", "x-forwarded-proto"),
        ["https"],
        "{seen}"
    );
    assert!(
        md(seen, "metadata", "user-agent")
            .first()
            .is_some_and(|ua| ua.starts_with("grpc-python/")),
        "the client's user-agent: {seen}"
    );
}

/// `allow_roles` per stream: a client whose role the location does not admit gets
/// PERMISSION_DENIED as a gRPC status (a trailers-only answer: no HTML page for the client to
/// translate), the access log says 403 as nginx would, and the upstream sees no RPC at all; a
/// client with an admitted role on the same listener is served.
#[test]
fn role_denied_client_gets_permission_denied_and_nothing_reaches_the_upstream() {
    if !python_grpc("role_denied_client_gets_permission_denied_and_nothing_reaches_the_upstream") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let proxy = Setup::implicit(&pki, &up)
        .top("[identity]\nroles = [ { role = \"eng\", ou = \"Eng\" }, { role = \"admin\", ou = \"Admin\" } ]\n")
        .location("allow_roles = [\"admin\"]\n")
        .access_log(&log)
        .start();
    let r = Client::mtls(proxy.addr(), &pki, &pki.client).run_all(&[
        &["unary", "10"],
        &["server-stream", "3"],
        &["bidi", "2"],
    ]);
    for (call, name) in r.iter().zip(["unary", "server-stream", "bidi"]) {
        assert_eq!(code(call), "PERMISSION_DENIED", "{name}: {call}");
        assert_eq!(call["details"], "role not admitted", "{name}: {call}");
        assert!(!from_http_status(call), "{name}: {call}");
    }
    proxy.assert_log(&["/test.Echo/Unary", "denied (403)", "role `eng`"]);
    let line = log_line(&log, 3, "/test.Echo/Unary");
    assert!(
        line.contains("\"POST /test.Echo/Unary HTTP/2.0\" 403 "),
        "{line}"
    );
    assert!(
        up.rpcs().is_empty(),
        "a denied stream reached the upstream: {:?}",
        up.rpcs()
    );

    let admin = cert_with_ou(&pki, "admin", "root-of-all", "Admin");
    let r = Client::mtls(proxy.addr(), &pki, &admin).run(&["unary", "10"]);
    assert_ok(&r, "the admin");
    assert_eq!(up.rpcs().len(), 1, "{:?}", up.rpcs());
}

/// Every answer ringgate makes itself to a gRPC call is a gRPC status, on the wire a single
/// HEADERS frame (`200`, the status, no DATA), whatever the HTTP status the log says: an
/// error `return` is its gRPC mapping with the rule's text as the message; a location that
/// requires a certificate the client did not send is UNAUTHENTICATED; a gRPC-Web call over
/// HTTP/1.1 gets the status in the head and the connection closes (its body is unread). A
/// request that is not gRPC still gets nginx's page.
#[test]
fn ringgate_own_answers_to_grpc_calls_are_grpc_statuses() {
    if !python_grpc("ringgate_own_answers_to_grpc_calls_are_grpc_statuses") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let maintenance = "[[listener.location.rule]]\nif = '$http_x_closed'\nreturn = { status = 503, body = \"closed for 100% maintenance\" }\n";
    let text = Setup::implicit(&pki, &up)
        .location(&format!("verify_client = \"on\"\n{maintenance}"))
        .access_log(&log)
        .render()
        .replace(
            "verify_client = \"on\"\n\n[[listener.location]]",
            "verify_client = \"optional\"\n\n[[listener.location]]",
        );
    let proxy = Proxy::start(&text);

    // An error `return`: 503 is UNAVAILABLE, the rule's text (percent-encoded on the wire)
    // is the message.
    let closed = Client::mtls(proxy.addr(), &pki, &pki.client)
        .metadata("x-closed", "1")
        .run(&["unary", "10"]);
    assert_eq!(code(&closed), "UNAVAILABLE", "{closed}");
    assert_eq!(closed["details"], "closed for 100% maintenance", "{closed}");
    assert!(!from_http_status(&closed), "{closed}");

    // No certificate where the location requires one.
    let r = Client::anonymous(proxy.addr(), &pki).run(&["unary", "10"]);
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    assert_eq!(r["details"], "verified certificate required", "{r}");

    let body = dir.path().join("request.bin");
    std::fs::write(&body, grpc_frame(b"hello")).expect("write the request body");
    if let Some(s) = h2_post(
        &proxy,
        &pki,
        "/test.Echo/Unary",
        &body,
        &[
            "content-type: application/grpc+proto",
            "te: trailers",
            "x-closed: 1",
        ],
    ) {
        assert_eq!(s["status"], 200, "{s}");
        assert_eq!(md(&s, "headers", "grpc-status"), ["14"], "{s}");
        assert_eq!(
            md(&s, "headers", "grpc-message"),
            ["closed for 100%25 maintenance"],
            "{s}"
        );
        assert_eq!(
            md(&s, "headers", "content-type"),
            ["application/grpc+proto"],
            "{s}"
        );
        assert_eq!(s["body_len"], 0, "a trailers-only answer has no DATA: {s}");
        assert_eq!(s["ended"], true, "{s}");
    }

    // gRPC-Web over HTTP/1.1: the status in the head, and the connection closes.
    let data = format!("@{}", path_str(&body));
    let (rc, head, err) = curl_as_client(
        &proxy,
        &pki,
        "/test.Echo/Unary",
        "/dev/null",
        &[
            "--http1.1",
            "-H",
            "content-type: application/grpc-web+proto",
            "-H",
            "x-closed: 1",
            "--data-binary",
            &data,
        ],
    );
    assert_eq!(rc, 0, "{err}");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    for field in [
        "grpc-status: 14\r\n",
        "content-type: application/grpc-web+proto\r\n",
        "content-length: 0\r\n",
        "connection: close\r\n",
    ] {
        assert!(head.contains(field), "{field:?} in {head}");
    }

    // Not gRPC: nginx's page.
    let (rc, head, err) = curl_as_client(
        &proxy,
        &pki,
        "/test.Echo/Unary",
        "/dev/null",
        &["-H", "x-closed: 1"],
    );
    assert_eq!(rc, 0, "{err}");
    assert!(head.starts_with("HTTP/2 503"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("grpc-status"), "{head}");

    // The log says what nginx would: the HTTP status of each answer.
    let lines = lines(&log, 5);
    let statuses: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split('"').nth(2)?.split_whitespace().next())
        .collect();
    assert_eq!(statuses, ["503", "401", "503", "503", "503"], "{lines:?}");
    assert!(up.rpcs().is_empty(), "{:?}", up.rpcs());
}

/// An upstream that refuses connections: a gRPC request is answered HTTP 200 with
/// `grpc-status: 14` in a trailers-only response (so the client reports UNAVAILABLE from the
/// status, not from an HTTP 502 it had to translate), the access log says 502 as nginx would;
/// a request that is not gRPC on the same location gets a plain 502.
#[test]
fn unreachable_upstream_is_unavailable_and_logged_502() {
    if !python_grpc("unreachable_upstream_is_unavailable_and_logged_502") {
        return;
    }
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let dead = free_port();
    let proxy = Setup::new(&pki, &format!("grpc://127.0.0.1:{dead}"))
        .access_log(&log)
        .start();
    let r = Client::mtls(proxy.addr(), &pki, &pki.client)
        .run_all(&[&["unary", "10"], &["server-stream", "3"]]);
    for call in &r {
        assert_eq!(code(call), "UNAVAILABLE", "{call}");
        assert!(
            !from_http_status(call),
            "an HTTP error status instead of grpc-status 14: {call}"
        );
    }
    let line = log_line(&log, 2, "/test.Echo/Unary");
    assert!(
        line.contains("\"POST /test.Echo/Unary HTTP/2.0\" 502 "),
        "{line}"
    );

    // The response on the wire: 200, a gRPC content-type, grpc-status 14 in the one HEADERS
    // that ends the stream (trailers-only: no DATA).
    let body = dir.path().join("request.bin");
    std::fs::write(&body, grpc_frame(b"hello")).expect("write the request body");
    if let Some(s) = h2_post(
        &proxy,
        &pki,
        "/test.Echo/Unary",
        &body,
        &["content-type: application/grpc", "te: trailers"],
    ) {
        assert_eq!(s["status"], 200, "{s}");
        assert_eq!(md(&s, "headers", "grpc-status"), ["14"], "{s}");
        assert!(
            md(&s, "headers", "content-type")
                .first()
                .is_some_and(|t| t.starts_with("application/grpc")),
            "{s}"
        );
        assert_eq!(s["body_len"], 0, "a trailers-only answer has no DATA: {s}");
        assert_eq!(s["ended"], true, "{s}");
    }
    // Not a gRPC request: nginx's 502 page.
    if let Some(s) = h2_post(
        &proxy,
        &pki,
        "/not-grpc",
        &body,
        &["content-type: application/octet-stream"],
    ) {
        assert_eq!(s["status"], 502, "{s}");
        assert!(md(&s, "headers", "grpc-status").is_empty(), "{s}");
    }
}

/// An upstream slower than its `read_timeout`: DEADLINE_EXCEEDED (`grpc-status: 4`, which
/// only a gRPC status gives: HTTP 504 would be UNAVAILABLE) after about the timeout, well
/// before the client's own 10 s deadline; the access log says 504; the next call is served.
#[test]
fn upstream_timeout_is_deadline_exceeded_and_logged_504() {
    if !python_grpc("upstream_timeout_is_deadline_exceeded_and_logged_504") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let proxy = Setup::named(&pki, "grpc", &up, "read_timeout = \"1s\"")
        .access_log(&log)
        .start();
    let r = Client::mtls(proxy.addr(), &pki, &pki.client)
        .run_all(&[&["slow", "4000"], &["slow", "100"]]);
    let (late, quick) = (&r[0], &r[1]);
    assert_eq!(code(late), "DEADLINE_EXCEEDED", "{late}");
    assert!(!from_http_status(late), "{late}");
    let ms = late["elapsed_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(
        (900.0..3500.0).contains(&ms),
        "answered after {ms} ms, the read_timeout is 1 s: {late}"
    );
    assert_ok(quick, "a call after the timed-out one");
    assert_eq!(quick["response"], "slept 100", "{quick}");
    let line = log_line(&log, 2, "\"POST /test.Echo/Slow HTTP/2.0\" 504 ");
    assert!(line.contains("/test.Echo/Slow"), "{line}");
}

/// A client that gives up (its deadline passes, so grpcio resets the stream) while the
/// upstream is still working: ringgate sees the reset at once, resets the upstream's stream
/// (CANCEL) and logs the call (499, nginx's "client closed the request"), instead of waiting
/// for the upstream's answer to find the client gone.
#[test]
fn a_cancelled_call_is_cancelled_at_the_upstream_at_once() {
    if !python_grpc("a_cancelled_call_is_cancelled_at_the_upstream_at_once") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let proxy = Setup::implicit(&pki, &up).access_log(&log).start();
    let mut client = Client::mtls(proxy.addr(), &pki, &pki.client);
    client
        .conn
        .extend(["--timeout".to_string(), "0.5".to_string()]);
    // The upstream would answer after 10 s; the access log is waited for 5 s at most.
    let r = client.run(&["slow", "10000"]);
    assert_eq!(code(&r), "DEADLINE_EXCEEDED", "{r}");
    let line = log_line(&log, 1, "\"POST /test.Echo/Slow HTTP/2.0\"");
    assert!(line.contains("\" 499 "), "{line}");
    proxy.assert_log(&["cancelled \"POST /test.Echo/Slow\"", "cancelling it there"]);
}

/// A bidirectional call whose request body passes `client_max_body_size` after the upstream
/// has begun answering: the refusal (413, logged) can no longer be an answer, so the stream is
/// reset (CANCEL); the echoes already relayed arrived intact, and nothing of ringgate's page
/// ever reaches the client as a message.
#[test]
fn a_body_refused_after_the_answer_began_resets_the_stream() {
    if !python_grpc("a_body_refused_after_the_answer_began_resets_the_stream") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&[]);
    let proxy = Setup::implicit(&pki, &up)
        .listener("[listener.http]\nclient_max_body_size = \"64\"\n")
        .start();
    // Each ping is a 6-byte message in a 5-byte frame: the sixth passes 64 bytes.
    let r = Client::mtls(proxy.addr(), &pki, &pki.client).run(&["bidi", "20"]);
    assert_eq!(code(&r), "CANCELLED", "{r}");
    let msgs = r["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(msgs.len(), 5, "{r}");
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m, &serde_json::json!(format!("ping-{i}")), "{r}");
    }
    proxy.assert_log(&["sent a body larger than client_max_body_size (413)"]);
}

/// One client, one connection, 8 concurrent 500 ms calls; the upstream admits one stream per
/// connection (SETTINGS_MAX_CONCURRENT_STREAMS 1): ringgate opens more upstream connections,
/// so every call succeeds in well under the 4 s they take one after another.
#[test]
fn concurrent_calls_open_more_connections_at_the_upstream_stream_limit() {
    if !python_grpc("concurrent_calls_open_more_connections_at_the_upstream_stream_limit") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&["--max-concurrent-streams", "1"]);
    let proxy = Setup::implicit(&pki, &up).start();
    let (n, ms) = (8usize, 500.0);
    let r = Client::mtls(proxy.addr(), &pki, &pki.client).run(&["concurrent", "8", "500"]);
    let calls = r["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no calls in {r}"));
    assert_eq!(calls.len(), n, "{r}");
    for c in calls {
        assert_ok(c, "a concurrent call");
        assert_eq!(c["response"], "slept 500", "{c}");
    }
    let elapsed = r["elapsed_ms"].as_f64().unwrap_or(f64::MAX);
    let sequential = n as f64 * ms;
    assert!(
        elapsed < sequential / 2.0,
        "{n} concurrent calls of {ms} ms took {elapsed} ms ({sequential} ms one after another)"
    );
    let peers = up.peers_of("Slow");
    assert!(
        peers.len() >= 2,
        "the upstream saw the calls on {} connection(s): {peers:?}",
        peers.len()
    );
    assert_eq!(up.rpcs_of("Slow").len(), n, "{:?}", up.rpcs());
}

/// The upstream sends GOAWAY on every connection after about 300 ms (grpc's max connection
/// age): calls spread over more than 2 s all succeed, on several upstream connections, and a
/// call in flight across a GOAWAY finishes.
#[test]
fn upstream_goaway_moves_new_calls_to_a_fresh_connection() {
    if !python_grpc("upstream_goaway_moves_new_calls_to_a_fresh_connection") {
        return;
    }
    let pki = Pki::new();
    let up = GrpcUpstream::start(&["--max-connection-age-ms", "300"]);
    let proxy = Setup::implicit(&pki, &up).start();
    let r = Client::mtls(proxy.addr(), &pki, &pki.client)
        .run_all(&[&["sequence", "10", "250"], &["slow", "700"]]);
    let (seq, slow) = (&r[0], &r[1]);
    let calls = seq["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no calls in {seq}"));
    assert_eq!(calls.len(), 10, "{seq}");
    for (i, c) in calls.iter().enumerate() {
        assert_ok(c, &format!("call {i} of the sequence"));
        assert_eq!(c["echoed"], true, "call {i}: {c}");
    }
    assert_ok(slow, "a call in flight across a GOAWAY");
    assert_eq!(slow["response"], "slept 700", "{slow}");
    let peers = up.peers_of("Unary");
    assert!(
        peers.len() >= 3,
        "10 calls over {} ms went on {} upstream connection(s), though each lives ~300 ms: {peers:?}",
        seq["elapsed_ms"],
        peers.len()
    );
}

/// `grpcs://app`: HTTP/2 over TLS to an upstream that requires a client certificate;
/// ringgate verifies the upstream as `localhost` against the test CA and presents its own
/// certificate (the upstream reports its CN); calls, bidi and trailers work as over h2c, and
/// the identity headers are the front client's.
#[test]
fn grpcs_upstream_with_mutual_tls() {
    if !python_grpc("grpcs_upstream_with_mutual_tls") {
        return;
    }
    let pki = Pki::new();
    let proxy_cert = pki.client_with(LeafSpec::client("proxy-client", "ringgate-proxy"));
    let up = GrpcUpstream::start(&[
        "--tls",
        path_str(&pki.server.cert),
        path_str(&pki.server.key),
        "--client-ca",
        path_str(&pki.ca.pem_path),
    ]);
    let tls = format!(
        "\n[upstream.tls]\ntrusted_certificate = {}\nname = \"localhost\"\ncertificate = {}\nkey = {}\n",
        p(&pki.ca.pem_path),
        p(&proxy_cert.cert),
        p(&proxy_cert.key),
    );
    let proxy = Setup::named(&pki, "grpcs", &up, &tls)
        .listener("identity_headers = { subject = \"X-SSL-Client-DN\" }\n")
        .start();
    let r = Client::mtls(proxy.addr(), &pki, &pki.client).run_all(&[
        &["headers"],
        &["unary", "70000"],
        &["bidi", "10"],
        &["fail", "ALREADY_EXISTS", "over TLS"],
    ]);
    let (headers, unary, bidi, fail) = (&r[0], &r[1], &r[2], &r[3]);
    assert_ok(headers, "Headers over grpcs");
    let seen = &headers["response"];
    assert_eq!(seen["auth"]["transport_security_type"][0], "ssl", "{seen}");
    assert_eq!(
        seen["auth"]["x509_common_name"][0], "ringgate-proxy",
        "the upstream did not see ringgate's client certificate: {seen}"
    );
    assert_eq!(
        md(seen, "metadata", "x-ssl-client-dn"),
        [CLIENT_DN],
        "{seen}"
    );
    assert_ok(unary, "unary over grpcs");
    assert_eq!(unary["response_sha256"], unary["request_sha256"], "{unary}");
    assert_eq!(md(unary, "trailing_metadata", "x-trailer"), ["done"]);
    assert_ok(bidi, "bidi over grpcs");
    assert_eq!(
        bidi["messages"].as_array().map(Vec::len),
        Some(10),
        "{bidi}"
    );
    assert_eq!(code(fail), "ALREADY_EXISTS", "{fail}");
    assert_eq!(fail["details"], "over TLS", "{fail}");
    assert_eq!(md(fail, "trailing_metadata", "x-fail-trailer"), ["kept"]);
}

/// The same calls through nginx's `grpc_pass` and through ringgate: codes, messages,
/// payloads, custom initial metadata and trailers (`x-*`, `grpc-status-details-bin`) are the
/// same. (Where they differ on purpose: nginx answers an unreachable upstream with HTTP 502,
/// which gRPC clients report as UNAVAILABLE "Received http2 header with status: 502";
/// ringgate answers `grpc-status: 14`. See `unreachable_upstream_is_unavailable_and_logged_502`.)
#[test]
fn nginx_grpc_pass_and_ringgate_give_the_same_answers() {
    if !python_grpc("nginx_grpc_pass_and_ringgate_give_the_same_answers") {
        return;
    }
    let Some(bin) = nginx_binary() else {
        eprintln!(
            "SKIPPED nginx_grpc_pass_and_ringgate_give_the_same_answers: nginx is not installed"
        );
        return;
    };
    let pki = Pki::new();
    let up = GrpcUpstream::start(&[]);
    let port = free_port();
    let (_conf_dir, conf) = write_conf(&format!(
        r#"events {{}}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        location / {{
            grpc_pass grpc://{up};
        }}
    }}
}}
"#,
        cert = path_str(&pki.server.cert),
        key = path_str(&pki.server.key),
        ca = path_str(&pki.ca.pem_path),
        up = up.addr,
    ));
    let _nginx = Nginx::start(bin, &conf, port);
    let proxy = Setup::implicit(&pki, &up).start();
    let calls: [&[&str]; 6] = [
        &["unary", "70000"],
        &["server-stream", "5"],
        &["client-stream", "3", "1000"],
        &["bidi", "5"],
        &["fail", "NOT_FOUND", "not here 100%"],
        &["fail", "UNAUTHENTICATED", "who are you"],
    ];
    let nginx_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let via_nginx = Client::mtls(nginx_addr, &pki, &pki.client)
        .metadata("x-echo-one", "1")
        .run_all(&calls);
    let via_ringgate = Client::mtls(proxy.addr(), &pki, &pki.client)
        .metadata("x-echo-one", "1")
        .run_all(&calls);
    let keys = ["x-", "grpc-status-details-bin"];
    for ((n, r), call) in via_nginx.iter().zip(&via_ringgate).zip(calls) {
        assert_eq!(code(r), code(n), "{call:?}\nnginx {n}\nringgate {r}");
        assert_eq!(r["details"], n["details"], "{call:?}");
        for field in [
            "response_sha256",
            "response_len",
            "messages",
            "status_details",
        ] {
            assert_eq!(
                r[field], n[field],
                "{call:?} {field}\nnginx {n}\nringgate {r}"
            );
        }
        assert_eq!(
            md_with(r, "initial_metadata", &keys),
            md_with(n, "initial_metadata", &keys),
            "{call:?} initial metadata\nnginx {n}\nringgate {r}"
        );
        assert_eq!(
            md_with(r, "trailing_metadata", &keys),
            md_with(n, "trailing_metadata", &keys),
            "{call:?} trailers\nnginx {n}\nringgate {r}"
        );
    }
    assert_ok(&via_nginx[0], "the unary call through nginx");
}
