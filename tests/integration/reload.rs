//! F16: reloading configuration and certificates while serving: on SIGHUP and on file change
//! (Kubernetes' atomic `..data` symlink swap included), validated whole, the old set kept when
//! anything is wrong, open connections undisturbed, zero failed requests under load.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::DnType;

use crate::support::client;
use crate::support::pki::{p, server_spec, Leaf, Pki};
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};
use crate::support::{client_for, Cfg};

fn signal(proxy: &Proxy, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &proxy.pid.to_string()])
        .status();
}

/// A config answering `body` on `/`, from the test PKI (optionally another server cert).
fn config(pki: &Pki, up: &Upstream, body: &str, cert: Option<&Leaf>) -> String {
    let text = Cfg::new(pki, up)
        .locations(&format!(
            "[[listener.location]]\npath = \"/\"\nreturn = {{ status = 200, body = \"{body}\" }}\n"
        ))
        .runtime("watch_interval = \"200ms\"")
        .render();
    match cert {
        None => text,
        Some(c) => text
            .replace(&p(&pki.server.cert), &p(&c.cert))
            .replace(&p(&pki.server.key), &p(&c.key)),
    }
}

fn wait_for(proxy: &Proxy, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn body(proxy: &Proxy, cfg: &Arc<rustls::ClientConfig>) -> String {
    client::get(proxy.addr(), cfg, "/").text()
}

/// The CN of the certificate the server presents.
fn server_cn(proxy: &Proxy, cfg: &Arc<rustls::ClientConfig>) -> String {
    let c = client::connect(proxy.addr(), "localhost", cfg).expect("handshake");
    let der = c.peer_certs()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("x509");
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    cn
}

#[test]
fn sighup_applies_a_new_configuration_and_open_connections_finish_on_the_old() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&config(&pki, &up, "v1", None));
    let cc = client_for(&pki, Some(&pki.client));
    let mut open = client::connect(proxy.addr(), "localhost", &cc).expect("handshake");
    open.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    assert_eq!(open.read_response().expect("response").text(), "v1");

    std::fs::write(&proxy.config_path, config(&pki, &up, "v2", None)).expect("rewrite");
    signal(&proxy, "HUP");
    proxy.assert_log(&["reloading the configuration (SIGHUP)"]);
    proxy.assert_log(&["configuration reloaded"]);
    wait_for(&proxy, "the new configuration", || {
        body(&proxy, &cc) == "v2"
    });
    // The connection opened before the reload still works, on the configuration it began with.
    open.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send again");
    let r = open
        .read_response()
        .expect("the old connection is undisturbed");
    assert_eq!((r.status, r.text().as_str()), (200, "v1"));
}

#[test]
fn a_broken_configuration_or_certificate_is_refused_and_the_old_one_kept() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&config(&pki, &up, "v1", None));
    let cc = client_for(&pki, Some(&pki.client));
    // A TOML mistake.
    std::fs::write(
        &proxy.config_path,
        config(&pki, &up, "v2", None).replace("keepalive = 8", "keepalive = \"many\""),
    )
    .expect("rewrite");
    signal(&proxy, "HUP");
    proxy.assert_log(&[
        "reload refused, keeping the running configuration",
        "ringgate.toml:",
        "upstream[0].keepalive: expected an integer, found the string \"many\"",
    ]);
    assert_eq!(body(&proxy, &cc), "v1");
    // A certificate file that is not a certificate: picked up as a file change, refused.
    std::fs::write(&proxy.config_path, config(&pki, &up, "v1", None)).expect("restore");
    std::thread::sleep(Duration::from_millis(600));
    let original = std::fs::read(&pki.server.cert).expect("cert");
    std::fs::write(&pki.server.cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n").expect("break");
    proxy
        .assert_log(&["reloading the configuration (a configuration or certificate file changed)"]);
    proxy.assert_log(&[
        "reload refused, keeping the running configuration",
        "server.crt",
    ]);
    assert_eq!(server_cn(&proxy, &cc), "localhost");
    assert_eq!(body(&proxy, &cc), "v1");
    std::fs::write(&pki.server.cert, original).expect("restore cert");
}

#[test]
fn a_replaced_certificate_is_served_without_a_signal() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&config(&pki, &up, "v1", None));
    let cc = client_for(&pki, Some(&pki.client));
    assert_eq!(server_cn(&proxy, &cc), "localhost");
    // A new certificate and key written over the old files (as certbot or cp would).
    let mut spec = server_spec("renewed", "renewed");
    spec.subject = vec![(DnType::CommonName, "renewed")];
    let renewed = pki.ca.leaf(pki.path(), spec);
    std::fs::copy(&renewed.key, &pki.server.key).expect("key");
    std::fs::copy(&renewed.cert, &pki.server.cert).expect("cert");
    wait_for(&proxy, "the renewed certificate", || {
        server_cn(&proxy, &cc) == "renewed"
    });
    proxy.assert_log(&["configuration reloaded"]);
}

/// A Kubernetes secret volume: `tls.crt -> ..data/tls.crt`, `..data -> ..<timestamp>/`; the
/// kubelet updates it by writing a new timestamped folder and renaming a `..data_tmp` link
/// over `..data` (one atomic rename).
#[test]
fn kubernetes_secret_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let secret = tempfile::tempdir().expect("secret dir");
    let s = secret.path();
    let put = |version: &str, leaf: &Leaf| {
        let dir = s.join(version);
        std::fs::create_dir(&dir).expect("version dir");
        std::fs::copy(&leaf.cert, dir.join("tls.crt")).expect("crt");
        std::fs::copy(&leaf.key, dir.join("tls.key")).expect("key");
    };
    put("..2026_11_25_10_00_00.1", &pki.server);
    symlink("..2026_11_25_10_00_00.1", s.join("..data")).expect("..data");
    symlink("..data/tls.crt", s.join("tls.crt")).expect("tls.crt");
    symlink("..data/tls.key", s.join("tls.key")).expect("tls.key");
    let mounted = Leaf {
        cert: s.join("tls.crt"),
        key: s.join("tls.key"),
    };
    let proxy = Proxy::start(&config(&pki, &up, "v1", Some(&mounted)));
    let cc = client_for(&pki, Some(&pki.client));
    assert_eq!(server_cn(&proxy, &cc), "localhost");

    let mut spec = server_spec("rotated", "rotated");
    spec.subject = vec![(DnType::CommonName, "rotated")];
    let rotated = pki.ca.leaf(pki.path(), spec);
    put("..2026_11_25_11_00_00.2", &rotated);
    symlink("..2026_11_25_11_00_00.2", s.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(s.join("..data_tmp"), s.join("..data")).expect("atomic swap");
    wait_for(&proxy, "the rotated secret", || {
        server_cn(&proxy, &cc) == "rotated"
    });
}

/// Reloads under load: clients on new connections and on kept-alive ones never see a failed
/// request while the configuration is swapped again and again.
#[test]
fn zero_failed_requests_under_load_during_reloads() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let mut cfg = Cfg::new(&pki, &up);
    cfg.workers = 2;
    let text = cfg.runtime("watch = false").render();
    let proxy = Proxy::start(&text);
    let addr = proxy.addr();
    let cc = client_for(&pki, Some(&pki.client));
    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for t in 0..4 {
        let (cc, done, ok, failed) = (cc.clone(), done.clone(), ok.clone(), failed.clone());
        threads.push(std::thread::spawn(move || {
            let mut keep: Option<client::Conn> = None;
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                let result = if t % 2 == 0 {
                    client::try_get(addr, &cc, &format!("/n/{i}")).map(|r| r.status)
                } else {
                    let c = match keep.take() {
                        Some(c) => Ok(c),
                        None => client::connect(addr, "localhost", &cc),
                    };
                    c.and_then(|mut c| {
                        c.send(
                            format!("GET /k/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
                        )?;
                        let r = c.read_response()?;
                        if r.header("connection") != Some("close") {
                            keep = Some(c);
                        }
                        Ok(r.status)
                    })
                };
                match result {
                    Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("request failed during reloads: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(300));
        let next = text.replace("keepalive = 8", &format!("keepalive = {}", 8 + i));
        std::fs::write(&proxy.config_path, next).expect("rewrite");
        signal(&proxy, "HUP");
    }
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 50, "only {ok} requests went through");
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    let reloaded = proxy.log().matches("configuration reloaded").count();
    assert!(
        reloaded >= 5,
        "{reloaded} reloads applied:\n{}",
        proxy.log()
    );
}

/// Changing a listen address is not something a reload can do: refused, said why.
#[test]
fn a_changed_listen_address_needs_a_restart() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&config(&pki, &up, "v1", None));
    let moved = config(&pki, &up, "v1", None).replace("127.0.0.1:0", "127.0.0.1:1");
    std::fs::write(&proxy.config_path, moved).expect("rewrite");
    signal(&proxy, "HUP");
    proxy.assert_log(&["reload refused", "listen addresses", "restart"]);
    let cc = client_for(&pki, Some(&pki.client));
    assert_eq!(body(&proxy, &cc), "v1");
}
