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
