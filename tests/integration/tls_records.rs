//! What ringgate's TLS layer sends on its own, with a real client: output rustls queues in
//! answer to input goes out at once (a refused renegotiation is answered, not left waiting for
//! the header timeout). `scripts/tls-conformance` runs tlsfuzzer for the rest (KeyUpdate,
//! zero-length inner plaintext, record sizes).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::pki::Pki;
use crate::support::upstream::{Mode, Upstream};
use crate::support::{ossl, path_str, Cfg};

/// `openssl s_client -tls1_2` asks to renegotiate (`R`); rustls refuses with a
/// `no_renegotiation` alert, which must reach the client now (RFC 5746 §4), not after
/// `header_timeout`.
#[test]
fn a_tls12_renegotiation_is_refused_at_once() {
    if !ossl::available("a_tls12_renegotiation_is_refused_at_once") {
        return;
    }
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).http("header_timeout = \"60s\"").start();
    let started = Instant::now();
    let mut child = Command::new("openssl")
        .args(["s_client", "-tls1_2", "-servername", "localhost"])
        .args(["-connect", &proxy.addr().to_string()])
        .args(["-CAfile", path_str(&pki.ca.pem_path)])
        .args(["-cert", path_str(&pki.client.cert)])
        .args(["-key", path_str(&pki.client.key)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    let mut stdin = child.stdin.take().expect("stdin");
    // Let the handshake finish, then ask for a renegotiation and keep stdin open.
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"R\n").expect("write R");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    drop(stdin);
    let mut out = String::new();
    let _ = child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out);
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut out);
    assert!(
        status.is_some(),
        "s_client still waiting {:?} after asking to renegotiate:\n{out}",
        started.elapsed()
    );
    assert!(out.contains("RENEGOTIATING"), "{out}");
    assert!(out.contains("no renegotiation"), "{out}");
}
