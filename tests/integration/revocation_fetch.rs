//! Revocation that keeps itself current: CRLs fetched by URL and from distribution points
//! (served by a python HTTP server the tests rewrite), OCSP staples fetched and refreshed,
//! and client certificates checked by OCSP, against `openssl ocsp -index` over an `openssl
//! ca` directory (through a small python proxy in front of it that counts, delays, tampers
//! with or drops the queries). Loopback only.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::client::{self, ClientOpts};
use crate::support::nginx::free_port;
use crate::support::ossl::{self, sh};
use crate::support::pki::p;
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on `port`.
fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until a socket listens on `port` (read from /proc/net/tcp and tcp6, without
/// connecting).
fn wait_listening(port: u16) {
    let needle = format!(":{port:04X} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let table = ["/proc/net/tcp", "/proc/net/tcp6"]
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .concat();
        let listening = table.lines().any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with(needle.trim()))
                && l.split_whitespace().nth(3) == Some("0A")
        });
        if listening {
            return;
        }
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `python3 -m http.server` serving `dir` on `port`.
fn http_server(dir: &Path, port: u16) -> Running {
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    wait_port(port);
    Running(child)
}

/// Replaces `path` at once (write aside, rename), as a CA publishing a CRL does.
fn publish(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn client_cfg(d: &Path, who: &str) -> Arc<rustls::ClientConfig> {
    client::config(&ClientOpts {
        ca: Some(&d.join("ca/ca.crt")),
        cert: Some((
            &d.join(format!("ca/certs/{who}.crt")),
            &d.join(format!("ca/private/{who}.key")),
        )),
        ..Default::default()
    })
}

/// GET / on a new connection: the status, or the alert that refused it.
fn status(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>) -> Result<u16, String> {
    match client::try_get(addr, cfg, "/") {
        Ok(r) => Ok(r.status),
        Err(e) => match client::rustls_error(&e) {
            Some(rustls::Error::AlertReceived(a)) => Err(format!("{a:?}")),
            _ => Err(e.to_string()),
        },
    }
}

/// Polls `f` every 100 ms until it is true or `limit` has passed; the time it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// mTLS over the `ringgate ca` directory `d/ca`, `tls` lines under `[listener.tls]`.
fn config(d: &Path, up: &Upstream, tls: &str) -> String {
    crate::support::ca_dir_config(d, up, 2, "", tls)
}

/// A CRL named by `crl_url` is fetched at start, refreshed (a client revoked in the CA is
/// refused within one refresh, on new and resumed connections alike), and kept when a later
/// fetch brings garbage or 10 MB.
#[test]
fn crl_by_url_is_fetched_refreshed_and_kept_when_a_fetch_fails() {
    if !ossl::available("crl_by_url_is_fetched_refreshed_and_kept_when_a_fetch_fails") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    sh(
        d,
        r#"mkdir www
           $RINGGATE ca init ca --cn "Fetched CRL CA"
           $RINGGATE ca -d ca issue server --cn localhost --san DNS:localhost,IP:127.0.0.1
           $RINGGATE ca -d ca issue client --cn alice
           $RINGGATE ca -d ca issue client --cn bob
           $RINGGATE ca -d ca crl --out www/ca.crl"#,
    );
    let port = free_port();
    let _www = http_server(&d.join("www"), port);
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&config(
        d,
        &up,
        &format!("crl_url = [\"http://127.0.0.1:{port}/ca.crl\"]\ncrl_refresh = \"1s\""),
    ));
    let addr = proxy.addr();
    // A new client configuration per call: a full handshake each time. `kept` resumes.
    let fresh = |who: &str| status(addr, &client_cfg(d, who));
    let kept = client_cfg(d, "alice");
    // Fetched before the workers started: the very first client is checked against it.
    assert_eq!(status(addr, &kept), Ok(200), "{}", proxy.log());
    assert_eq!(fresh("bob"), Ok(200));
    proxy.assert_log(&["CRL http://127.0.0.1:", "fetched, in force (0 revoked"]);

    sh(
        d,
        "$RINGGATE ca -d ca revoke --cert ca/certs/alice.crt --reason keyCompromise
         $RINGGATE ca -d ca crl --out www/next.crl
         mv www/next.crl www/ca.crl",
    );
    let revoked = || fresh("alice") == Err("CertificateRevoked".into());
    let took = within(Duration::from_secs(10), revoked);
    let took = took.unwrap_or_else(|| panic!("alice still served:\n{}", proxy.log()));
    eprintln!("revoked client refused {took:?} after the CRL was published (crl_refresh = 1s)");
    assert_eq!(fresh("bob"), Ok(200));
    // Her resumed session is checked against the new CRL too: closed without a response.
    let resumed = status(addr, &kept);
    assert!(resumed.is_err(), "{resumed:?}");
    proxy.assert_log(&["fetched, in force (1 revoked"]);
    proxy.assert_log(&["a newer CRL or OCSP response was fetched"]);
    proxy.assert_log(&["client SSL certificate verify error: certificate revoked"]);

    // Garbage, then 10 MB: each fetch fails with its reason, the last good CRL stays.
    let good = std::fs::read(d.join("www/ca.crl")).expect("crl");
    publish(&d.join("www/ca.crl"), b"<html>not a CRL</html>");
    assert!(
        within(Duration::from_secs(10), || proxy
            .log_contains("no CRL found"))
        .is_some(),
        "{}",
        proxy.log()
    );
    assert!(revoked());
    assert_eq!(fresh("bob"), Ok(200));
    publish(&d.join("www/ca.crl"), &vec![b'x'; 10 * 1024 * 1024]);
    assert!(
        within(Duration::from_secs(10), || proxy
            .log_contains("larger than"))
        .is_some(),
        "{}",
        proxy.log()
    );
    proxy.assert_log(&["keeping the last good CRL"]);
    assert!(revoked());
    assert_eq!(fresh("bob"), Ok(200));
    publish(&d.join("www/ca.crl"), &good);
}

/// A python proxy in front of `openssl ocsp`: counts every query (a line in `ctl/count`) and
/// does what `ctl/mode` says: `pass`, `slow SECONDS`, `tamper` (one bit of the answer's
/// signature flipped) or `down` (the connection closed without an answer).
const OCSP_PROXY: &str = r#"
import http.server, os, sys, threading, time, urllib.request
port, upstream, ctl = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, *a):
        pass
    def answer(self, body):
        with lock:
            with open(os.path.join(ctl, "count"), "a") as f:
                f.write("q\n")
        try:
            mode = open(os.path.join(ctl, "mode")).read().split()
        except OSError:
            mode = ["pass"]
        if mode and mode[0] == "down":
            return
        if mode and mode[0] == "slow":
            time.sleep(float(mode[1]))
        headers = {"Content-Type": "application/ocsp-request"} if body is not None else {}
        req = urllib.request.Request(upstream + self.path, data=body, headers=headers)
        resp = urllib.request.urlopen(req, timeout=10).read()
        if mode and mode[0] == "tamper":
            resp = resp[:-1] + bytes([resp[-1] ^ 1])
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(resp)))
        self.end_headers()
        self.wfile.write(resp)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.answer(self.rfile.read(n))
    def do_GET(self):
        self.answer(None)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// An `openssl ca` directory in `d/ca` whose certificates point at loopback: the CA's CRL
/// distribution point at `www`, every leaf's OCSP responder (authorityInfoAccess) at
/// `ocsp`, except those issued with `slow_client_cert`, whose responder is `slow`. Issues
/// `localhost` (server, also as `localhost-chain.crt` with the CA after it) and the clients
/// `names`.
fn ocsp_pki(d: &Path, www: u16, ocsp: u16, slow: u16, names: &[&str]) {
    let cnf = format!(
        r#"[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.crt
serial = $dir/serial
crlnumber = $dir/crlnumber
private_key = $dir/private/ca.key
default_md = sha256
default_days = 30
default_crl_days = 2
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = dn
[ dn ]
[ v3_ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
crlDistributionPoints = URI:http://127.0.0.1:{www}/ca.crl
[ v3_intermediate ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
crlDistributionPoints = URI:http://127.0.0.1:{www}/from-intermediate.crl
[ server_cert ]
basicConstraints = CA:false
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
authorityInfoAccess = OCSP;URI:http://127.0.0.1:{ocsp}/
[ client_cert ]
basicConstraints = CA:false
keyUsage = digitalSignature
extendedKeyUsage = clientAuth
authorityInfoAccess = OCSP;URI:http://127.0.0.1:{ocsp}/
[ slow_client_cert ]
basicConstraints = CA:false
keyUsage = digitalSignature
extendedKeyUsage = clientAuth
authorityInfoAccess = OCSP;URI:http://127.0.0.1:{slow}/
"#,
        dir = d.join("ca").display()
    );
    sh(
        d,
        "mkdir -p ca/certs ca/newcerts ca/private www ctl slowctl && chmod 700 ca/private
         touch ca/index.txt && echo 1000 > ca/serial && echo 1000 > ca/crlnumber",
    );
    std::fs::write(d.join("ca/openssl.cnf"), cnf).expect("cnf");
    let mut script = String::from(
        r#"issue() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca/private/$1.key -out ca/$1.csr -subj "/CN=$1" 2>/dev/null
  chmod 600 ca/private/$1.key
  openssl ca -batch -config ca/openssl.cnf -extensions $2 -in ca/$1.csr -out ca/certs/$1.crt -notext 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca/private/ca.key -out ca/ca.crt -subj "/CN=OCSP Test CA" -days 30 -config ca/openssl.cnf -extensions v3_ca 2>/dev/null
chmod 600 ca/private/ca.key
issue localhost server_cert
cat ca/certs/localhost.crt ca/ca.crt > ca/certs/localhost-chain.crt
"#,
    );
    for n in names {
        let ext = if n.starts_with("slow") {
            "slow_client_cert"
        } else {
            "client_cert"
        };
        script.push_str(&format!("issue {n} {ext}\n"));
    }
    script
        .push_str("openssl ca -batch -config ca/openssl.cnf -gencrl -out www/ca.crl 2>/dev/null\n");
    sh(d, &script);
}

/// `openssl ocsp -index` answering for `d/ca` on a free port (answers valid `nmin` minutes),
/// behind the counting proxy on `port` with its control folder `d/ctl`.
fn ocsp_responder(d: &Path, port: u16, nmin: u32, ctl: &str) -> (Running, Running) {
    let inner = free_port();
    let openssl = Command::new("openssl")
        .args([
            "ocsp",
            "-index",
            "ca/index.txt",
            "-port",
            &inner.to_string(),
        ])
        .args([
            "-rsigner",
            "ca/ca.crt",
            "-rkey",
            "ca/private/ca.key",
            "-CA",
            "ca/ca.crt",
        ])
        // No certificates in the answers: their last bytes are the signature's.
        .args(["-nmin", &nmin.to_string(), "-ignore_err", "-resp_no_certs"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl ocsp");
    let openssl = Running(openssl);
    // Not by connecting: `openssl ocsp` stops answering after a connection that sent nothing.
    wait_listening(inner);
    std::fs::write(d.join("ocsp_proxy.py"), OCSP_PROXY).expect("proxy script");
    let proxy = Command::new("python3")
        .arg(d.join("ocsp_proxy.py"))
        .arg(port.to_string())
        .arg(format!("http://127.0.0.1:{inner}"))
        .arg(d.join(ctl))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 ocsp proxy");
    let proxy = Running(proxy);
    wait_port(port);
    (openssl, proxy)
}

/// Queries the responder proxy controlled from `d/ctl` has seen.
fn queries(d: &Path) -> usize {
    std::fs::read_to_string(d.join("ctl/count"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn set_mode(d: &Path, ctl: &str, mode: &str) {
    std::fs::write(d.join(ctl).join("mode"), mode).expect("mode");
}

/// `openssl s_client -status` against `addr`: what it printed.
fn s_client_status(d: &Path, addr: SocketAddr) -> String {
    sh(
        d,
        &format!(
            "echo | openssl s_client -connect {addr} -servername localhost -status -CAfile ca/ca.crt 2>&1 | sed -n '/OCSP response:/,/^---/p'"
        ),
    )
}

/// `ocsp = "fetch"`: the staple is fetched from the certificate's responder before the
/// workers start, shown by `openssl s_client -status`, refreshed before its nextUpdate, and
/// kept when a later fetch fails or brings a tampered answer.
#[test]
fn staple_is_fetched_refreshed_and_shown_by_s_client() {
    if !ossl::available("staple_is_fetched_refreshed_and_shown_by_s_client") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (www, ocsp) = (free_port(), free_port());
    ocsp_pki(d, www, ocsp, ocsp, &[]);
    // Answers valid one minute, refreshed every 3 s (ocsp_refresh) rather than at half of it.
    let _responder = ocsp_responder(d, ocsp, 1, "ctl");
    let up = Upstream::start(Mode::Echo);
    let toml = format!(
        r#"[runtime]
workers = 2

[[listener]]
name = "main"
listen = "127.0.0.1:0"

[listener.tls]
certificates = [{{ cert = {cert}, key = {key}, ocsp = "fetch" }}]
ocsp_refresh = "3s"

[[listener.location]]
path = "/"
proxy_pass = "http://app"

[[upstream]]
name = "app"
servers = [{up}]
"#,
        cert = p(&d.join("ca/certs/localhost-chain.crt")),
        key = p(&d.join("ca/private/localhost.key")),
        up = up.server()
    );
    let proxy = Proxy::start(&toml);
    let first = s_client_status(d, proxy.addr());
    assert!(
        first.contains("OCSP Response Status: successful") && first.contains("Cert Status: good"),
        "{first}\n{}",
        proxy.log()
    );
    proxy.assert_log(&[
        "OCSP staple http://127.0.0.1:",
        "fetched, stapled",
        "next fetch in 3s",
    ]);
    let this_update = |text: &str| {
        text.lines()
            .find(|l| l.contains("This Update"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    // Tampered answers are refused; the good staple stays.
    set_mode(d, "ctl", "tamper");
    let refreshed = within(Duration::from_secs(45), || {
        proxy.log_contains("signature does not verify with the issuer's key")
    });
    assert!(refreshed.is_some(), "{}", proxy.log());
    let kept = s_client_status(d, proxy.addr());
    assert_eq!(this_update(&kept), this_update(&first), "{kept}");
    assert!(kept.contains("Cert Status: good"), "{kept}");
    // Answers come through again: the next refresh staples a newer response.
    set_mode(d, "ctl", "pass");
    let newer = within(Duration::from_secs(45), || {
        this_update(&s_client_status(d, proxy.addr())) != this_update(&first)
    });
    assert!(
        newer.is_some(),
        "the staple was not refreshed:\n{}",
        proxy.log()
    );
    let now = s_client_status(d, proxy.addr());
    assert!(now.contains("Cert Status: good"), "{now}");
    eprintln!(
        "staple refreshed: {} -> {}",
        this_update(&first).trim(),
        this_update(&now).trim()
    );
}

/// mTLS over the `openssl ca` directory `d/ca` with HTTP/2 on, `tls` lines under
/// `[listener.tls]`, the access log writing `$ssl_client_verify $ssl_client_s_dn`.
fn ocsp_config(d: &Path, up: &Upstream, tls: &str, log: &Path) -> String {
    format!(
        r#"[runtime]
workers = 2

[log_format]
verify = "$ssl_client_verify $ssl_client_s_dn"

[[listener]]
name = "main"
listen = "127.0.0.1:0"
http2 = true
access_log = {{ path = {log}, format = "verify" }}

[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
client_certificate = {ca}
{tls}

[[listener.location]]
path = "/"
proxy_pass = "http://app"

[[upstream]]
name = "app"
servers = [{up}]
"#,
        cert = p(&d.join("ca/certs/localhost.crt")),
        key = p(&d.join("ca/private/localhost.key")),
        ca = p(&d.join("ca/ca.crt")),
        log = p(log),
        up = up.server()
    )
}

/// GET / on a new connection as `who`: the status and the body.
fn fetch_as(addr: SocketAddr, d: &Path, who: &str) -> Result<(u16, String), String> {
    client::try_get(addr, &client_cfg(d, who), "/")
        .map(|r| (r.status, r.text()))
        .map_err(|e| e.to_string())
}

/// `ocsp_client = "leaf"` against `openssl ocsp -index`: a good client is served after one
/// query; a hundred connections of a new client at once make one query; a client revoked in
/// the CA database is refused within one cache period (400 `The SSL certificate error`,
/// `FAILED:certificate revoked`, over HTTP/1.1 and HTTP/2, on a resumed session too); a tampered answer is refused; a
/// slow responder does not slow other clients; a responder that stops refuses new clients
/// (`ocsp_failure = "refuse"`) or lets them through (`"allow"`).
#[test]
fn client_certificates_checked_by_ocsp() {
    if !ossl::available("client_certificates_checked_by_ocsp") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (www, ocsp, slow) = (free_port(), free_port(), free_port());
    let names = ["alice", "bob", "carol", "dave", "erin", "frank", "slowpoke"];
    ocsp_pki(d, www, ocsp, slow, &names);
    let responder = ocsp_responder(d, ocsp, 5, "ctl");
    let _slow_responder = ocsp_responder(d, slow, 5, "slowctl");
    let up = Upstream::start(Mode::Echo);
    let log = d.join("access.log");
    let proxy = Proxy::start(&ocsp_config(
        d,
        &up,
        "ocsp_client = \"leaf\"\nocsp_cache_valid = \"1s\"\nocsp_timeout = \"8s\"",
        &log,
    ));
    let addr = proxy.addr();
    // alice keeps her TLS session: after her revocation she resumes it, and is checked too.
    let kept = client_cfg(d, "alice");
    let on_kept = || {
        let mut c = client::connect(addr, "localhost", &kept).map_err(|e| e.to_string())?;
        let kind = c.tls.conn.handshake_kind();
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let r = c.read_response().map_err(|e| e.to_string())?;
        Ok::<_, String>((kind, r.status))
    };
    assert_eq!(
        on_kept(),
        Ok((Some(rustls::HandshakeKind::Full), 200)),
        "{}",
        proxy.log()
    );
    assert_eq!(queries(d), 1);

    // A hundred connections of a new client at once, answered slowly: one query. They go to
    // a proxy of their own that keeps answers the default hour: with the 1 s above, an answer
    // whose second has passed is asked again, which a burst of a hundred handshakes on a busy
    // machine can outlast.
    let burst = Proxy::start(&ocsp_config(
        d,
        &up,
        "ocsp_client = \"leaf\"\nocsp_timeout = \"8s\"",
        &d.join("burst-access.log"),
    ));
    let burst_addr = burst.addr();
    set_mode(d, "ctl", "slow 1");
    let before = queries(d);
    let started = Instant::now();
    let all: Vec<_> = (0..100)
        .map(|_| {
            let d = d.to_path_buf();
            std::thread::spawn(move || fetch_as(burst_addr, &d, "dave").map(|r| r.0))
        })
        .collect();
    let statuses: Vec<_> = all.into_iter().map(|h| h.join().expect("thread")).collect();
    eprintln!("100 connections of dave served in {:?}", started.elapsed());
    assert!(statuses.iter().all(|s| *s == Ok(200)), "{statuses:?}");
    assert_eq!(queries(d) - before, 1, "one OCSP query for 100 connections");
    set_mode(d, "ctl", "pass");
    drop(burst);
    let text = std::fs::read_to_string(d.join("burst-access.log")).expect("burst access log");
    assert!(
        text.contains("SUCCESS CN=dave"),
        "SUCCESS CN=dave missing:\n{text}"
    );

    // A slow responder delays only the clients it answers for.
    set_mode(d, "slowctl", "slow 5");
    let slowpoke = {
        let d = d.to_path_buf();
        std::thread::spawn(move || {
            let t = Instant::now();
            (fetch_as(addr, &d, "slowpoke").map(|r| r.0), t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(fetch_as(addr, d, "erin").map(|r| r.0), Ok(200));
    let erin = t.elapsed();
    let (slow_status, slow_took) = slowpoke.join().expect("thread");
    eprintln!("while the slow responder took {slow_took:?} for slowpoke, erin (another responder, not cached) was served in {erin:?}");
    assert_eq!(slow_status, Ok(200));
    assert!(slow_took >= Duration::from_secs(5), "{slow_took:?}");
    // Not behind the 5 s responder (the margin is for a loaded test machine).
    assert!(erin < Duration::from_millis(2500), "{erin:?}");

    // alice is revoked in the CA database: refused once her cached answer (1 s) is past.
    sh(d, "openssl ca -config ca/openssl.cnf -revoke ca/certs/alice.crt -crl_reason keyCompromise 2>&1");
    let refused = |who: &str| matches!(fetch_as(addr, d, who), Ok((400, body)) if body.contains("The SSL certificate error"));
    let took = within(Duration::from_secs(10), || refused("alice"));
    let ocsp_lines = |log: String| {
        log.lines()
            .filter(|l| l.contains("OCSP"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let took = took.unwrap_or_else(|| panic!("alice still served:\n{}", ocsp_lines(proxy.log())));
    eprintln!("revoked client refused {took:?} after `openssl ca -revoke` (ocsp_cache_valid = 1s)");
    // The other core may still hold its good answer for the rest of its second.
    std::thread::sleep(Duration::from_millis(2100));
    assert!(refused("alice") && refused("alice"));
    assert_eq!(on_kept(), Ok((Some(rustls::HandshakeKind::Resumed), 400)));
    proxy.assert_log(&[
        "client SSL certificate verify error: certificate revoked at depth 0",
        "CN=alice",
        "keyCompromise",
    ]);
    let (resolve, url) = crate::support::curl_url(addr, "/");
    let (_, out, err) = crate::support::curl(&[
        "--http2",
        "--cacert",
        &p(&d.join("ca/ca.crt")).replace('"', ""),
        "--cert",
        &p(&d.join("ca/certs/alice.crt")).replace('"', ""),
        "--key",
        &p(&d.join("ca/private/alice.key")).replace('"', ""),
        "--resolve",
        &resolve,
        "-w",
        "%{http_version} %{http_code}",
        "-o",
        "/dev/null",
        &url,
    ]);
    assert_eq!(out, "2 400", "{err}");

    // A tampered answer is refused (ocsp_failure = "refuse").
    set_mode(d, "ctl", "tamper");
    assert!(refused("carol"), "{}", proxy.log());
    proxy.assert_log(&[
        "OCSP responder error at depth 0",
        "CN=carol",
        "signature does not verify",
    ]);
    set_mode(d, "ctl", "pass");

    // The responder stops: a client not in the cache is refused.
    drop(responder);
    assert!(refused("frank"), "{}", proxy.log());
    proxy.assert_log(&[
        "OCSP responder error at depth 0",
        "CN=frank",
        "cannot connect",
    ]);
    drop(proxy);
    let text = std::fs::read_to_string(&log).expect("access log");
    for line in [
        "FAILED:certificate revoked CN=alice",
        "FAILED:certificate status request failed CN=carol",
        "FAILED:certificate status request failed CN=frank",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }

    // ocsp_failure = "allow": let through, with a warning.
    let proxy = Proxy::start(&ocsp_config(
        d,
        &up,
        "ocsp_client = \"leaf\"\nocsp_failure = \"allow\"\nocsp_timeout = \"2s\"",
        &log,
    ));
    assert_eq!(fetch_as(proxy.addr(), d, "frank").map(|r| r.0), Ok(200));
    proxy.assert_log(&[
        "OCSP responder",
        "failed for CN=frank",
        "let through (ocsp_failure = allow)",
    ]);
}

/// `crl_from_distribution_points`: the CRL named by the CA's distribution point is fetched
/// from an allowed host and refreshed; a client revoked with `openssl ca -revoke` and a new
/// `-gencrl` is refused within one refresh. Without `crl_fetch_allow` the configuration is
/// refused, naming the key.
#[test]
fn crl_from_the_cas_distribution_point_is_fetched_and_refreshed() {
    if !ossl::available("crl_from_the_cas_distribution_point_is_fetched_and_refreshed") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let www = free_port();
    ocsp_pki(d, www, www, www, &["alice", "bob"]);
    let _www = http_server(&d.join("www"), www);
    let up = Upstream::start(Mode::Echo);
    let log = d.join("access.log");
    let tls = "crl_from_distribution_points = true\ncrl_fetch_allow = [\"127.0.0.1\"]\ncrl_refresh = \"1s\"";
    let proxy = Proxy::start(&ocsp_config(d, &up, tls, &log));
    let addr = proxy.addr();
    assert_eq!(
        fetch_as(addr, d, "alice").map(|r| r.0),
        Ok(200),
        "{}",
        proxy.log()
    );
    proxy.assert_log(&[&format!(
        "CRL http://127.0.0.1:{www}/ca.crl: fetched, in force (0 revoked"
    )]);
    sh(
        d,
        "openssl ca -config ca/openssl.cnf -revoke ca/certs/alice.crt -crl_reason keyCompromise 2>&1
         openssl ca -batch -config ca/openssl.cnf -gencrl -out www/next.crl 2>&1
         mv www/next.crl www/ca.crl",
    );
    let refused = || status(addr, &client_cfg(d, "alice")) == Err("CertificateRevoked".into());
    let took = within(Duration::from_secs(10), refused);
    assert!(took.is_some(), "alice still served:\n{}", proxy.log());
    eprintln!(
        "revoked client refused {took:?} after the CA published its CRL at its distribution point"
    );
    assert_eq!(fetch_as(addr, d, "bob").map(|r| r.0), Ok(200));

    let path = d.join("no-allow.toml");
    std::fs::write(
        &path,
        ocsp_config(d, &up, "crl_from_distribution_points = true", &log),
    )
    .expect("config");
    let (code, out, err) = crate::support::proxy::check(&path);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("listener[0].tls.crl_from_distribution_points: needs crl_fetch_allow"),
        "{err}"
    );
}

/// nginx 1.22 with `ssl_ocsp on` and ringgate on the same nginx.conf (through the importer),
/// against the same `openssl ocsp` responder: the same status and `$ssl_client_verify` for a
/// good client, a client revoked in the CA database, and a client whose check fails because
/// the responder stopped.
#[test]
fn ssl_ocsp_answers_as_nginx_does() {
    if !ossl::available("ssl_ocsp_answers_as_nginx_does") {
        return;
    }
    let Some(nginx) = crate::support::nginx::nginx_binary() else {
        eprintln!("SKIPPED ssl_ocsp_answers_as_nginx_does: nginx is not installed");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (www, ocsp) = (free_port(), free_port());
    ocsp_pki(d, www, ocsp, ocsp, &["alice", "bob", "carol", "dave"]);
    sh(
        d,
        "openssl ca -config ca/openssl.cnf -revoke ca/certs/bob.crt -crl_reason keyCompromise 2>&1",
    );
    let responder = ocsp_responder(d, ocsp, 5, "ctl");
    let conf = |port: u16, log: &str| {
        format!(
            r#"events {{}}
http {{
    log_format v '$ssl_client_verify $ssl_client_s_dn';
    server {{
        listen 127.0.0.1:{port} ssl;
        access_log {log} v;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_ocsp on;
        location / {{ return 200 "$ssl_client_verify\n"; }}
    }}
}}
"#,
            log = d.join(log).display(),
            cert = d.join("ca/certs/localhost.crt").display(),
            key = d.join("ca/private/localhost.key").display(),
            ca = d.join("ca/ca.crt").display(),
        )
    };
    let nginx_port = free_port();
    let (_ndir, npath) = crate::support::nginx::write_conf(&conf(nginx_port, "nginx.log"));
    let _nginx = crate::support::nginx::Nginx::start(nginx, &npath, nginx_port);
    let rdir = tempfile::tempdir().expect("tempdir");
    let rpath = rdir.path().join("nginx.conf");
    std::fs::write(&rpath, conf(free_port(), "ringgate.log")).expect("conf");
    let ringgate = Proxy::start_nginx(rdir, rpath);
    let nginx_addr: SocketAddr = format!("127.0.0.1:{nginx_port}").parse().expect("addr");
    let both = |who: &str| {
        let n = fetch_as(nginx_addr, d, who).map(|r| r.0);
        let r = fetch_as(ringgate.addr(), d, who).map(|r| r.0);
        (n, r)
    };
    for (who, want) in [("alice", 200), ("bob", 400), ("dave", 200)] {
        let (n, r) = both(who);
        assert_eq!(n, Ok(want), "nginx, {who}");
        assert_eq!(
            r,
            n,
            "ringgate and nginx differ for {who}:\n{}",
            ringgate.log()
        );
    }
    drop(responder);
    let (n, r) = both("carol");
    assert_eq!(n, Ok(400), "nginx, carol with the responder stopped");
    assert_eq!(r, n, "{}", ringgate.log());
    drop(ringgate);
    std::thread::sleep(Duration::from_millis(300));
    let verify = |log: &str| {
        let text = std::fs::read_to_string(d.join(log)).unwrap_or_default();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    let (n, r) = (verify("nginx.log"), verify("ringgate.log"));
    eprintln!("nginx: {n:?}\nringgate: {r:?}");
    assert_eq!(r, n);
}

/// `ringgate check` asks every CRL URL and staple responder once and says whether it answered:
/// exit 0 with what each gave; with the CRL server down, exit 2 (crl_require_all refuses the
/// CA's clients while its CRL cannot be had), the staple's responder still answering.
#[test]
fn check_reports_each_url_and_whether_it_answered() {
    if !ossl::available("check_reports_each_url_and_whether_it_answered") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (www, ocsp) = (free_port(), free_port());
    ocsp_pki(d, www, ocsp, ocsp, &["alice"]);
    let _responder = ocsp_responder(d, ocsp, 5, "ctl");
    let up = Upstream::start(Mode::Echo);
    let toml = ocsp_config(
        d,
        &up,
        &format!("crl_url = [\"http://127.0.0.1:{www}/ca.crl\"]\nocsp_client = \"on\"\nocsp_responder = \"http://127.0.0.1:{ocsp}/\""),
        &d.join("access.log"),
    )
    .replace(
        &format!("cert = {}", p(&d.join("ca/certs/localhost.crt"))),
        &format!("cert = {}, ocsp = \"fetch\"", p(&d.join("ca/certs/localhost-chain.crt"))),
    );
    let path = d.join("ringgate.toml");
    std::fs::write(&path, toml).expect("config");
    let served = http_server(&d.join("www"), www);
    let (code, out, err) = crate::support::proxy::check(&path);
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        &format!("INFO  listener[0].tls.crl_url: http://127.0.0.1:{www}/ca.crl answered: the CRL of CN=OCSP Test CA (0 revoked"),
        &format!("INFO  listener[0].tls.certificates[0].ocsp: http://127.0.0.1:{ocsp}/ answered: good"),
        &format!("INFO  listener[0].tls.ocsp_responder: http://127.0.0.1:{ocsp}/ accepts connections"),
    ] {
        assert!(out.contains(want.as_str()), "{want} missing:\n{out}");
    }
    drop(served);
    let (code, out, err) = crate::support::proxy::check(&path);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains(&format!("ERROR listener[0].tls.crl_url: did not answer usably: http://127.0.0.1:{www}/ca.crl: cannot connect")),
        "{out}"
    );
}

/// `crl_from_distribution_points` also fetches the distribution points named by the
/// intermediates clients present: the first client's chain makes the worker report its
/// intermediate's CDP to the fetcher (only for hosts in `crl_fetch_allow`), the CRL there is
/// fetched and verified against the root, and when the root revokes the intermediate the
/// client is refused within one refresh.
#[test]
fn crl_from_a_presented_intermediates_distribution_point() {
    if !ossl::available("crl_from_a_presented_intermediates_distribution_point") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let www = free_port();
    ocsp_pki(d, www, www, www, &[]);
    sh(
        d,
        r#"openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca/private/inter.key -out ca/inter.csr -subj "/CN=Issuing CA" 2>/dev/null
           openssl ca -batch -config ca/openssl.cnf -extensions v3_intermediate -in ca/inter.csr -out ca/certs/inter.crt -notext 2>/dev/null
           openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca/private/zoe.key -out ca/zoe.csr -subj "/CN=zoe" 2>/dev/null
           chmod 600 ca/private/*.key
           openssl x509 -req -in ca/zoe.csr -CA ca/certs/inter.crt -CAkey ca/private/inter.key -CAcreateserial -days 30 -out ca/zoe-leaf.crt \
             -extfile <(printf "basicConstraints=CA:false\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth") 2>/dev/null
           cat ca/zoe-leaf.crt ca/certs/inter.crt > ca/certs/zoe.crt
           openssl ca -batch -config ca/openssl.cnf -gencrl -out www/from-intermediate.crl 2>/dev/null
           rm www/ca.crl"#,
    );
    let _www = http_server(&d.join("www"), www);
    let up = Upstream::start(Mode::Echo);
    let tls = "crl_from_distribution_points = true\ncrl_fetch_allow = [\"127.0.0.1\"]\ncrl_refresh = \"1s\"\ncrl_require_all = false\nverify_depth = 2";
    let proxy = Proxy::start(&ocsp_config(d, &up, tls, &d.join("access.log")));
    let addr = proxy.addr();
    assert_eq!(
        fetch_as(addr, d, "zoe").map(|r| r.0),
        Ok(200),
        "{}",
        proxy.log()
    );
    let url =
        format!("CRL http://127.0.0.1:{www}/from-intermediate.crl: fetched, in force (0 revoked");
    let fetched = within(Duration::from_secs(10), || proxy.log_contains(&url));
    assert!(fetched.is_some(), "{}", proxy.log());
    proxy.assert_log(&["CRL distribution point(s) named by intermediates clients presented"]);
    sh(
        d,
        "openssl ca -config ca/openssl.cnf -revoke ca/certs/inter.crt -crl_reason cACompromise 2>&1
         openssl ca -batch -config ca/openssl.cnf -gencrl -out www/next.crl 2>&1
         mv www/next.crl www/from-intermediate.crl",
    );
    let refused = || status(addr, &client_cfg(d, "zoe")) == Err("CertificateRevoked".into());
    let took = within(Duration::from_secs(10), refused);
    assert!(took.is_some(), "zoe still served:\n{}", proxy.log());
    eprintln!("client of a revoked intermediate refused {took:?} after the root published its CRL");
    proxy.assert_log(&["certificate revoked at depth 1", "CN=Issuing CA"]);
}
