//! F14 revocation: CRLs as `openssl ca -gencrl` (the enterprise mTLS guide's CA layout) and
//! `ringgate ca crl` write them; revoked clients refused with certificate_revoked on full and
//! resumed handshakes; foreign CRLs refused at load; expired-CRL and missing-CRL policies; OCSP
//! stapling seen by `openssl s_client -status`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::ClientSessionMemoryCache;
use rustls::AlertDescription;

use crate::support::client::{self, ClientOpts, Response};
use crate::support::ossl::{self, sh};
use crate::support::pki::{p, LeafSpec, Pki};
use crate::support::proxy::{check, Proxy};
use crate::support::upstream::{Mode, Upstream};
use crate::support::{ca_dir_config, Cfg};

/// GET / over a new connection with `sni`.
fn get(addr: SocketAddr, sni: &str, cfg: &Arc<rustls::ClientConfig>) -> std::io::Result<Response> {
    let mut c = client::connect(addr, sni, cfg)?;
    c.send(format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes())?;
    c.read_response()
}

fn alert(r: &std::io::Result<Response>) -> Option<AlertDescription> {
    match r.as_ref().err().and_then(client::rustls_error) {
        Some(rustls::Error::AlertReceived(a)) => Some(a),
        _ => None,
    }
}

fn enterprise_mtls_config(d: &Path, up: &Upstream, tls_extra: &str, log: &Path) -> String {
    format!(
        r#"[runtime]
workers = 1

[log_format]
verify = "$ssl_client_verify $ssl_client_s_dn"

[[listener]]
name = "enterprise-mtls"
listen = "127.0.0.1:0"
server_names = ["server.example.com"]
access_log = {{ path = {log}, format = "verify" }}

[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
protocols = ["TLSv1.2", "TLSv1.3"]
client_certificate = {ca}
verify_client = "on"
verify_depth = 2
{tls_extra}

[[listener.location]]
path = "/"
proxy_pass = "http://app"

[[upstream]]
name = "app"
servers = [{up}]
"#,
        cert = p(&d.join("server/server.crt")),
        key = p(&d.join("server/server.key")),
        ca = p(&d.join("ca/ca.crt")),
        log = p(log),
        up = up.server()
    )
}

fn client_of(
    d: &Path,
    who: &str,
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> Arc<rustls::ClientConfig> {
    client::config(&ClientOpts {
        ca: Some(&d.join("ca/ca.crt")),
        cert: Some((
            &d.join(format!("{who}/client.crt")),
            &d.join(format!("{who}/client.key")),
        )),
        version,
        ..Default::default()
    })
}

/// The enterprise mTLS guide's CA, revocation with the guide's own openssl.cnf (`openssl ca
/// -revoke`, then `-gencrl`), served by ringgate: client1 is refused with certificate_revoked over
/// TLS 1.2 and 1.3 with a log line naming it and its serial, client2 is served, and nginx's
/// `$ssl_client_verify` reads `FAILED:certificate revoked` where the handshake completes.
#[test]
fn enterprise_mtls_revocation_with_openssl_ca() {
    if !ossl::available("enterprise_mtls_revocation_with_openssl_ca") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ossl::enterprise_mtls_pki(d);
    // The guide's cnf names private/ca.key, but section 3.1 wrote ca/ca.key: say so with -keyfile.
    // It has no default_crl_days: -crldays. openssl ca adds client1 to index.txt, then revokes it.
    sh(
        d,
        "openssl ca -config ca/openssl.cnf -keyfile ca/ca.key -revoke client/client.crt -crl_reason keyCompromise
         openssl ca -config ca/openssl.cnf -keyfile ca/ca.key -gencrl -crldays 30 -out ca/crl/ca.crl
         openssl crl -in ca/crl/ca.crl -outform DER -out ca/crl/ca.crl.der",
    );
    let serial = sh(d, "openssl x509 -in client/client.crt -noout -serial");
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    let up = Upstream::start(Mode::Echo);
    for crl in ["ca/crl/ca.crl", "ca/crl/ca.crl.der"] {
        let log = d.join(format!("access-{}.log", crl.len()));
        let proxy = Proxy::start(&enterprise_mtls_config(
            d,
            &up,
            &format!("crl = [{}]", p(&d.join(crl))),
            &log,
        ));
        let addr = proxy.addr();
        let ok = get(addr, "server.example.com", &client_of(d, "client2", None))
            .expect("client2 is served");
        assert_eq!(ok.status, 200, "{}", proxy.log());
        for v in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let r = get(addr, "server.example.com", &client_of(d, "client", Some(v)));
            assert_eq!(
                alert(&r),
                Some(AlertDescription::CertificateRevoked),
                "{v:?}: {r:?}\n{}",
                proxy.log()
            );
        }
        proxy.assert_log(&[
            "refused client certificate: certificate revoked",
            "CN=client1",
            &format!("serial {serial}"),
            "keyCompromise",
            "(alert CertificateRevoked)",
        ]);
    }

    // verify_failure = "http" (nginx's behaviour): the handshake completes, 400, and the
    // access log records $ssl_client_verify.
    let log = d.join("access-http.log");
    let proxy = Proxy::start(&enterprise_mtls_config(
        d,
        &up,
        &format!(
            "crl = [{}]\nverify_failure = \"http\"",
            p(&d.join("ca/crl/ca.crl"))
        ),
        &log,
    ));
    let r = get(
        proxy.addr(),
        "server.example.com",
        &client_of(d, "client", None),
    )
    .expect("the handshake completes in http mode");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("The SSL certificate error"),
        "{}",
        r.text()
    );
    drop(proxy);
    let text = std::fs::read_to_string(&log).expect("access log");
    assert!(
        text.contains("FAILED:certificate revoked CN=client1,OU=Client,O=MyCompany,C=CN"),
        "{text}"
    );
}

/// A client revoked after it got a TLS 1.3 session ticket is refused on its next resumed
/// connection once the CRL is loaded: ringgate restarts with the same ticket key file (standing
/// in for a reload), the client resumes, and the verdict is checked again.
#[test]
fn resumed_session_of_a_revoked_client_is_refused() {
    if !ossl::available("resumed_session_of_a_revoked_client_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    sh(
        d,
        r#"$RINGGATE ca init ca --cn "Resumption CA" --org Acme
           $RINGGATE ca -d ca issue server --cn localhost --san DNS:localhost,IP:127.0.0.1
           $RINGGATE ca -d ca issue client --cn alice --ou Client
           $RINGGATE ca -d ca crl --out empty.crl"#,
    );
    ossl::ticket_key(&d.join("ticket.key"));
    let up = Upstream::start(Mode::Echo);
    let config = |crl: &str| {
        ca_dir_config(
            d,
            &up,
            2,
            "",
            &format!(
                "crl = [{}]\nsession_ticket_key = [{}]",
                p(&d.join(crl)),
                p(&d.join("ticket.key"))
            ),
        )
    };
    let cache = ClientSessionMemoryCache::new(32);
    let cfg = client::config(&ClientOpts {
        ca: Some(&d.join("ca/ca.crt")),
        cert: Some((
            &d.join("ca/certs/alice.crt"),
            &d.join("ca/private/alice.key"),
        )),
        version: Some(&rustls::version::TLS13),
        resumption: Some(Arc::new(cache)),
    });
    let resumed = |addr| {
        let mut c = client::connect(addr, "localhost", &cfg).expect("handshake");
        let kind = c.tls.conn.handshake_kind();
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("send");
        (kind, c.read_response())
    };
    {
        let proxy = Proxy::start(&config("empty.crl"));
        let (kind, r) = resumed(proxy.addr());
        assert_eq!(kind, Some(rustls::HandshakeKind::Full));
        assert_eq!(r.expect("served").status, 200);
        // The ticket resumes on this instance.
        let (kind, r) = resumed(proxy.addr());
        assert_eq!(kind, Some(rustls::HandshakeKind::Resumed));
        assert_eq!(r.expect("served").status, 200);
    }
    sh(
        d,
        "$RINGGATE ca -d ca revoke --cert ca/certs/alice.crt --reason keyCompromise
         $RINGGATE ca -d ca crl --out revoked.crl",
    );
    let proxy = Proxy::start(&config("revoked.crl"));
    let (kind, r) = resumed(proxy.addr());
    assert_eq!(
        kind,
        Some(rustls::HandshakeKind::Resumed),
        "the restarted proxy accepts the old ticket (same key file)"
    );
    assert!(
        r.is_err(),
        "a revoked client was served on resumption: {r:?}"
    );
    proxy.assert_log(&[
        "client SSL certificate verify error: certificate revoked",
        "CN=alice",
    ]);
    assert_eq!(
        up.seen().len(),
        2,
        "the revoked client's resumed request must not reach the upstream"
    );
    // A full handshake is refused with the alert.
    let fresh = client::config(&ClientOpts {
        ca: Some(&d.join("ca/ca.crt")),
        cert: Some((
            &d.join("ca/certs/alice.crt"),
            &d.join("ca/private/alice.key"),
        )),
        ..Default::default()
    });
    let r = get(proxy.addr(), "localhost", &fresh);
    assert_eq!(
        alert(&r),
        Some(AlertDescription::CertificateRevoked),
        "{r:?}"
    );
}

/// A CRL no configured CA signed, and a tampered one, are refused at load naming the file.
#[test]
fn foreign_and_tampered_crls_are_refused_at_load() {
    if !ossl::available("foreign_and_tampered_crls_are_refused_at_load") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    sh(
        d,
        r#"$RINGGATE ca init ca --cn "Our CA"
           $RINGGATE ca init other --cn "Other CA"
           $RINGGATE ca -d other crl --out foreign.crl
           $RINGGATE ca -d ca crl --out ours.crl
           openssl crl -in ours.crl -outform DER -out tampered.crl
           # flip one byte of the signature (the last byte of the file)
           size=$(stat -c %s tampered.crl)
           printf '\x01' | dd of=tampered.crl bs=1 seek=$((size - 1)) conv=notrunc status=none"#,
    );
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    for (file, want) in [
        (
            "foreign.crl",
            "is not signed by any CA in client_certificate",
        ),
        ("tampered.crl", "CRL signature failure"),
    ] {
        let cfg = Cfg::new(&pki, &up).tls(&format!(
            "client_certificate = {}\ncrl = [{}]\n",
            p(&d.join("ca/ca.crt")),
            p(&d.join(file))
        ));
        let path = pki.path().join(format!("{file}.toml"));
        std::fs::write(&path, cfg.render()).expect("config");
        let (code, out, err) = check(&path);
        assert_eq!(code, 2, "{file}: {out}{err}");
        assert!(err.contains(file) && err.contains(want), "{file}: {err}");
        assert!(err.contains("listener[0].tls.crl[0]"), "{err}");
    }
}

/// An expired CRL: refused as nginx does ("CRL has expired"), or accepted within a grace
/// period with a warning.
#[test]
fn expired_crl_refuse_or_grace() {
    if !ossl::available("expired_crl_refuse_or_grace") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    sh(
        d,
        r#"$RINGGATE ca init ca --cn "Expiring CA"
           $RINGGATE ca -d ca issue server --cn localhost --san DNS:localhost,IP:127.0.0.1
           $RINGGATE ca -d ca issue client --cn alice
           # openssl ca with explicit dates: last update 10 days ago, next update 2 days ago
           last=$(date -u -d '10 days ago' +%y%m%d%H%M%SZ)
           next=$(date -u -d '2 days ago' +%y%m%d%H%M%SZ)
           openssl ca -config ca/openssl.cnf -gencrl -crl_lastupdate "$last" -crl_nextupdate "$next" -out expired.crl"#,
    );
    let up = Upstream::start(Mode::Echo);
    let config = |policy: &str| {
        let crl = p(&d.join("expired.crl"));
        ca_dir_config(
            d,
            &up,
            1,
            "",
            &format!("crl = [{crl}]\ncrl_expired = \"{policy}\""),
        )
    };
    let alice = client::config(&ClientOpts {
        ca: Some(&d.join("ca/ca.crt")),
        cert: Some((
            &d.join("ca/certs/alice.crt"),
            &d.join("ca/private/alice.key"),
        )),
        ..Default::default()
    });
    let proxy = Proxy::start(&config("refuse"));
    proxy.assert_log(&["crl_expired = refuse", "crl_require_all = true"]);
    proxy.assert_log(&["expired at", "every client whose chain needs it is refused"]);
    let r = get(proxy.addr(), "localhost", &alice);
    assert_eq!(alert(&r), Some(AlertDescription::UnknownCA), "{r:?}");
    proxy.assert_log(&["refused client certificate: CRL has expired", "CN=alice"]);
    drop(proxy);

    let proxy = Proxy::start(&config("3d"));
    proxy.assert_log(&["crl_expired = grace 72h"]);
    let r = get(proxy.addr(), "localhost", &alice).expect("served within the grace");
    assert_eq!(r.status, 200);
    proxy.assert_log(&["accepted within crl_expired grace until"]);
    drop(proxy);

    let proxy = Proxy::start(&config("1d"));
    let r = get(proxy.addr(), "localhost", &alice);
    assert_eq!(
        alert(&r),
        Some(AlertDescription::UnknownCA),
        "past the grace: {r:?}"
    );
}

/// crl_require_all with a root CRL but none for the intermediate: refused with "unable to get
/// certificate CRL" (nginx's behaviour); crl_require_all = false lets it through; the
/// intermediate's CRL revoking the leaf refuses it again.
#[test]
fn crl_require_all_with_an_intermediate_lacking_a_crl() {
    use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
    let pki = Pki::new();
    let int = pki
        .ca
        .intermediate(pki.path(), "int", "ringgate test intermediate");
    let leaf = int.leaf(pki.path(), LeafSpec::client("underint", "bob"));
    let bundle = pki.path().join("bundle.crt");
    std::fs::write(
        &bundle,
        format!(
            "{}{}",
            std::fs::read_to_string(&pki.ca.pem_path).expect("ca"),
            std::fs::read_to_string(&int.pem_path).expect("int")
        ),
    )
    .expect("bundle");
    let now = time::OffsetDateTime::now_utc();
    let crl = |issuer: &crate::support::pki::Issuer, file: &str, revoke: Option<&Path>| {
        let revoked_certs = revoke
            .map(|c| {
                let der = client::load_certs(c).remove(0);
                let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).expect("x509");
                vec![RevokedCertParams {
                    serial_number: SerialNumber::from_slice(x.raw_serial()),
                    revocation_time: now - time::Duration::hours(1),
                    reason_code: None,
                    invalidity_date: None,
                }]
            })
            .unwrap_or_default();
        let pem = CertificateRevocationListParams {
            this_update: now - time::Duration::days(1),
            next_update: now + time::Duration::days(30),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&issuer.signer)
        .expect("crl")
        .pem()
        .expect("pem");
        let path = pki.path().join(file);
        std::fs::write(&path, pem).expect("write crl");
        path
    };
    let root_crl = crl(&pki.ca, "root.crl", None);
    let int_crl = crl(&int, "int.crl", Some(&leaf.cert));
    let up = Upstream::start(Mode::Echo);
    let bob = client::config(&ClientOpts {
        ca: Some(&pki.ca.pem_path),
        cert: Some((&leaf.cert, &leaf.key)),
        ..Default::default()
    });
    let tls = |crls: &[&Path], all: bool| {
        format!(
            "client_certificate = {}\ncrl = [{}]\ncrl_require_all = {all}\n",
            p(&bundle),
            crls.iter().map(|c| p(c)).collect::<Vec<_>>().join(", ")
        )
    };
    let proxy = Cfg::new(&pki, &up).tls(&tls(&[&root_crl], true)).start();
    let r = get(proxy.addr(), "localhost", &bob);
    assert_eq!(alert(&r), Some(AlertDescription::UnknownCA), "{r:?}");
    proxy.assert_log(&["unable to get certificate CRL", "CN=bob"]);
    proxy.assert_log(&["has no CRL while crl_require_all = true", "intermediate"]);
    drop(proxy);

    let proxy = Cfg::new(&pki, &up).tls(&tls(&[&root_crl], false)).start();
    assert_eq!(
        get(proxy.addr(), "localhost", &bob).expect("served").status,
        200
    );
    drop(proxy);

    let proxy = Cfg::new(&pki, &up)
        .tls(&tls(&[&root_crl, &int_crl], true))
        .start();
    let r = get(proxy.addr(), "localhost", &bob);
    assert_eq!(
        alert(&r),
        Some(AlertDescription::CertificateRevoked),
        "{r:?}"
    );
    // Alice (directly under the root) is fine with both CRLs.
    let alice = crate::support::client_for(&pki, Some(&pki.client));
    assert_eq!(
        get(proxy.addr(), "localhost", &alice)
            .expect("served")
            .status,
        200
    );
}

/// OCSP stapling: a response made by `openssl ocsp` from the CA's index.txt is stapled and
/// shown by `openssl s_client -status`; a response for another certificate is refused at load.
#[test]
fn ocsp_staple_seen_by_openssl_s_client() {
    if !ossl::available("ocsp_staple_seen_by_openssl_s_client") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    sh(
        d,
        r#"$RINGGATE ca init ca --cn "OCSP CA"
           $RINGGATE ca -d ca issue server --cn localhost --san DNS:localhost,IP:127.0.0.1
           $RINGGATE ca -d ca issue server --cn other.example --name other
           cat ca/certs/localhost.crt ca/ca.crt > chain.crt
           openssl ocsp -index ca/index.txt -CA ca/ca.crt -rsigner ca/ca.crt -rkey ca/private/ca.key \
             -issuer ca/ca.crt -cert ca/certs/localhost.crt -respout server.ocsp.der -ndays 7
           openssl ocsp -index ca/index.txt -CA ca/ca.crt -rsigner ca/ca.crt -rkey ca/private/ca.key \
             -issuer ca/ca.crt -cert ca/certs/other.crt -respout other.ocsp.der -ndays 7"#,
    );
    let up = Upstream::start(Mode::Echo);
    let config = |ocsp: &str| {
        format!(
            r#"[runtime]
workers = 1

[[listener]]
name = "main"
listen = "127.0.0.1:0"

[listener.tls]
certificates = [{{ cert = {cert}, key = {key}, ocsp = {ocsp} }}]

[[listener.location]]
path = "/"
proxy_pass = "http://app"

[[upstream]]
name = "app"
servers = [{up}]
"#,
            cert = p(&d.join("chain.crt")),
            key = p(&d.join("ca/private/localhost.key")),
            ocsp = p(&d.join(ocsp)),
            up = up.server()
        )
    };
    let proxy = Proxy::start(&config("server.ocsp.der"));
    for v in ["-tls1_3", "-tls1_2"] {
        let out = sh(
            d,
            &format!(
                "openssl s_client -connect {} -servername localhost -status {v} -CAfile ca/ca.crt </dev/null 2>&1",
                proxy.addr()
            ),
        );
        assert!(
            out.contains("OCSP Response Status: successful"),
            "{v}: {out}"
        );
        assert!(out.contains("Cert Status: good"), "{v}: {out}");
    }
    drop(proxy);
    let path = d.join("other.toml");
    std::fs::write(&path, config("other.ocsp.der")).expect("config");
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("other.ocsp.der") && err.contains("not for this certificate"),
        "{err}"
    );
    assert!(
        err.contains("listener[0].tls.certificates[0].ocsp"),
        "{err}"
    );
}

/// Revoke + reload while a load runs, on one live process: a new CRL written over the
/// configured file is picked up by the file watcher; the revoked client is refused on its next
/// full handshake (certificate_revoked) and on its next resumed one, while another client
/// keeps being served without a single failed request.
#[test]
fn revoke_and_reload_under_load() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    if !ossl::available("revoke_and_reload_under_load") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    sh(
        d,
        r#"$RINGGATE ca init ca --cn "Reload CA" --org Acme
           $RINGGATE ca -d ca issue server --cn localhost --san DNS:localhost,IP:127.0.0.1
           $RINGGATE ca -d ca issue client --cn alice --ou Client
           $RINGGATE ca -d ca issue client --cn bob --ou Client --days 10
           $RINGGATE ca -d ca crl --out current.crl"#,
    );
    let up = Upstream::start(Mode::Echo);
    let text = ca_dir_config(
        d,
        &up,
        2,
        "watch_interval = \"200ms\"\n\n[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("crl = [{}]", p(&d.join("current.crl"))),
    );
    let proxy = Proxy::start(&text);
    let addr = proxy.addr();
    let who = |name: &str, cache: Option<Arc<ClientSessionMemoryCache>>| {
        client::config(&ClientOpts {
            ca: Some(&d.join("ca/ca.crt")),
            cert: Some((
                &d.join(format!("ca/certs/{name}.crt")),
                &d.join(format!("ca/private/{name}.key")),
            )),
            version: Some(&rustls::version::TLS13),
            resumption: cache,
        })
    };
    let alice = who("alice", Some(Arc::new(ClientSessionMemoryCache::new(32))));
    assert_eq!(get(addr, "localhost", &alice).expect("alice").status, 200);

    // Bob's load: new connections and a kept-alive one, all the while.
    let done = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for t in 0..2 {
        let bob = who("bob", None);
        let (done, ok, failed) = (done.clone(), ok.clone(), failed.clone());
        load.push(std::thread::spawn(move || {
            let mut keep: Option<client::Conn> = None;
            while !done.load(Ordering::Relaxed) {
                let r = if t == 0 {
                    get(addr, "localhost", &bob).map(|r| r.status)
                } else {
                    let c = match keep.take() {
                        Some(c) => Ok(c),
                        None => client::connect(addr, "localhost", &bob),
                    };
                    c.and_then(|mut c| {
                        c.send(b"GET /k HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
                        let r = c.read_response()?;
                        // keepalive_requests (1000) ends a connection with Connection: close.
                        if r.header("connection") != Some("close") {
                            keep = Some(c);
                        }
                        Ok(r.status)
                    })
                };
                match r {
                    Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("bob (thread {t}) failed: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Revoke alice and publish the CRL over the configured file in one rename.
    sh(
        d,
        "$RINGGATE ca -d ca revoke --cert ca/certs/alice.crt --reason keyCompromise
         $RINGGATE ca -d ca crl --out next.crl
         mv next.crl current.crl",
    );
    proxy
        .assert_log(&["reloading the configuration (a configuration or certificate file changed)"]);
    proxy.assert_log(&["configuration reloaded"]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    // Alice, resuming her session: refused, and nothing reaches the app for her.
    let mut c = client::connect(addr, "localhost", &alice).expect("resumed handshake");
    assert_eq!(
        c.tls.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    let r = c
        .send(b"GET /alice HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .and_then(|_| c.read_response());
    assert!(
        r.is_err(),
        "a revoked client was served on resumption: {r:?}"
    );
    // Alice, in full: the certificate_revoked alert.
    let r = get(addr, "localhost", &who("alice", None));
    assert_eq!(
        alert(&r),
        Some(AlertDescription::CertificateRevoked),
        "{r:?}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    for t in load {
        t.join().expect("load thread");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 20, "only {ok} of bob's requests went through");
    assert_eq!(
        failed,
        0,
        "{failed} of bob's requests failed during the reload; log:\n{}",
        proxy.log()
    );
    assert!(up.seen().iter().all(|s| s.target != "/alice"));
    // Bob's certificate has 10 days left: warned about once per worker that saw him, not once
    // per connection.
    let warned = proxy
        .log()
        .matches("client certificate CN=bob,OU=Client (serial")
        .count();
    assert!(
        (1..=2).contains(&warned),
        "warned {warned} times:\n{}",
        proxy.log()
    );
    // (Issued a moment ago: 10 whole days left, or 9 where a second has passed.)
    assert!(
        proxy.log_contains("expires in 10 day(s)") || proxy.log_contains("expires in 9 day(s)"),
        "{}",
        proxy.log()
    );
    // The reloaded CRL's nextUpdate is a gauge (`ringgate ca crl`: 30 days).
    let admin = proxy.admin.expect("admin address");
    let (status, text) = super::observability::admin_get(admin, "/metrics");
    assert_eq!(status, 200, "{text}");
    let left = super::observability::metric(
        &text,
        "ringgate_certificate_expiry_timestamp_seconds{kind=\"crl\",listener=\"main\",subject=\"CN=Reload CA,O=Acme\"}",
    )
    .map(|at| at - super::observability::unix_now());
    assert!(
        left.is_some_and(|s| (29.0 * 86_400.0..=30.0 * 86_400.0).contains(&s)),
        "{left:?} seconds left:\n{text}"
    );
}
