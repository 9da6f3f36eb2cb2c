//! What ringgate's TLS layer sends on its own, with a real client: output rustls queues in
//! answer to input goes out at once (a refused renegotiation is answered, not left waiting for
//! the header timeout). `scripts/tls-conformance` runs tlsfuzzer for the rest (KeyUpdate,
//! zero-length inner plaintext, record sizes).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::pki::Pki;
use crate::support::proxy::Proxy;
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

/// A TLS 1.3 client asks for a key update (`update_requested`) on an idle keep-alive
/// connection: ringgate's KeyUpdate answer (RFC 8446 §4.6.3) arrives at once, without waiting
/// for a response to carry it (rustls holds it back until data is written).
#[test]
fn a_requested_key_update_is_answered_at_once() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let mut c = crate::support::mtls_conn(&proxy, &pki);
    c.send(b"GET /before HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    assert_eq!(c.read_response().expect("response").status, 200);
    assert_eq!(
        c.tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    c.tls.conn.refresh_traffic_keys().expect("key update");
    while c.tls.conn.wants_write() {
        c.tls
            .conn
            .write_tls(&mut c.tls.sock)
            .expect("send the KeyUpdate");
    }
    // Nothing else is owed on an idle connection: what arrives is the answer.
    c.tls
        .sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut record = [0u8; 64];
    let n = c
        .tls
        .sock
        .read(&mut record)
        .expect("ringgate answered the KeyUpdate");
    assert!(
        n > 5 && record[0] == 23,
        "an encrypted record: {:?}",
        &record[..n]
    );
    c.tls
        .conn
        .read_tls(&mut &record[..n])
        .expect("read the record");
    c.tls
        .conn
        .process_new_packets()
        .expect("a valid KeyUpdate under the new keys");
    // Both sides now use new keys: the connection still carries requests.
    c.send(b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    assert_eq!(c.read_response().expect("response").status, 200);
    assert_eq!(up.last().target, "/after");
}

/// A ClientHello record: `legacy_version`, TLS 1.3 offered, with or without key_share.
fn client_hello(legacy_version: u16, key_share: bool) -> Vec<u8> {
    let mut ext: Vec<u8> = Vec::new();
    // supported_versions: TLS 1.3, TLS 1.2.
    ext.extend_from_slice(&[0, 43, 0, 5, 4, 3, 4, 3, 3]);
    // supported_groups: secp256r1.
    ext.extend_from_slice(&[0, 10, 0, 4, 0, 2, 0, 23]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256.
    ext.extend_from_slice(&[0, 13, 0, 6, 0, 4, 4, 3, 8, 4]);
    if key_share {
        // An empty client_shares list (asks for a HelloRetryRequest).
        ext.extend_from_slice(&[0, 51, 0, 2, 0, 0]);
    }
    let mut body = legacy_version.to_be_bytes().to_vec();
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut record = vec![22, 3, 1];
    record.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    record.push(1);
    record.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    record.extend_from_slice(&body);
    record
}

/// Sends raw bytes as a client's first flight; returns what ringgate answers before closing.
fn answer_to(proxy: &Proxy, bytes: &[u8]) -> Vec<u8> {
    let mut sock = TcpStream::connect(proxy.addr()).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    sock.write_all(bytes).expect("send");
    let mut got = Vec::new();
    let _ = sock.read_to_end(&mut got);
    got
}

/// What rustls lets through or closes on silently, refused by ringgate's own ClientHello checks
/// with the alert RFC 8446 names: a plaintext record alert record is `21 3 3 0 2 2 DESC`.
#[test]
fn client_hellos_rustls_would_accept_get_the_alert_the_rfc_names() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let alert = |desc: u8| vec![21, 3, 3, 0, 2, 2, desc];
    // protocol_version (70): legacy_version SSL 3.0, and TLS 1.0 in a TLS 1.3 hello.
    assert_eq!(answer_to(&proxy, &client_hello(0x0300, true)), alert(70));
    assert_eq!(answer_to(&proxy, &client_hello(0x0301, true)), alert(70));
    // missing_extension (109): supported_groups without key_share.
    assert_eq!(answer_to(&proxy, &client_hello(0x0303, false)), alert(109));
    // record_overflow (22): a plaintext record claiming 16385 bytes.
    let mut big = client_hello(0x0303, true);
    big[3] = 0x40;
    big[4] = 0x01;
    big.resize(5 + 16385, 0);
    assert_eq!(answer_to(&proxy, &big), alert(22));
    // unexpected_message (10): a first handshake message that is not a ClientHello.
    assert_eq!(answer_to(&proxy, &[22, 3, 3, 0, 4, 11, 0, 0, 0]), alert(10));
    // decode_error (50): a ClientHello longer than rustls's 65535 bytes.
    let mut huge = vec![22, 3, 3, 0x40, 0, 1, 1, 0, 0];
    huge.resize(5 + 0x4000, 0);
    assert_eq!(answer_to(&proxy, &huge), alert(50));
    // A well-formed hello still gets a ServerHello (here a HelloRetryRequest: 22, handshake).
    let mut sock = TcpStream::connect(proxy.addr()).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    sock.write_all(&client_hello(0x0303, true)).expect("send");
    let mut first = [0u8; 1];
    sock.read_exact(&mut first).expect("a record");
    assert_eq!(first, [22]);
    proxy.assert_log(&["refused the ClientHello", "ProtocolVersion alert"]);
    proxy.assert_log(&["refused the ClientHello", "MissingExtension alert"]);
}
