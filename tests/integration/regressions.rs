//! Behaviours found while building: each test names what once went wrong.

use crate::support::client;
use crate::support::pki::{p, Pki};
use crate::support::upstream::{Mode, Upstream};
use crate::support::{client_for, curl, curl_url, path_str, Cfg};

/// An HTTP/1.0 client cannot read chunked framing: a chunked upstream response reaches it
/// de-chunked, ended by the connection closing (nginx does the same).
#[test]
fn http10_client_gets_a_chunked_upstream_response_dechunked() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Chunked(b"hello chunked world".to_vec(), 4));
    let proxy = Cfg::new(&pki, &up).start();
    let mut c = client::connect(
        proxy.addr(),
        "localhost",
        &client_for(&pki, Some(&pki.client)),
    )
    .expect("handshake");
    c.send(b"GET /x HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("transfer-encoding"), None, "{}", r.head);
    assert_eq!(r.header("connection"), Some("close"), "{}", r.head);
    assert_eq!(r.body, b"hello chunked world");
}

/// curl --http1.0 offers ALPN `http/1.0`; nginx accepts it, and so must we (it was refused
/// with no_application_protocol).
#[test]
fn alpn_http10_is_accepted() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let (resolve, url) = curl_url(proxy.addr(), "/alpn");
    let (code, out, err) = curl(&[
        "--http1.0",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--resolve",
        &resolve,
        "--cacert",
        path_str(&pki.ca.pem_path),
        "--cert",
        path_str(&pki.client.cert),
        "--key",
        path_str(&pki.client.key),
        &url,
    ]);
    assert_eq!((code, out.as_str()), (0, "200"), "{err}");
}

/// The epoll fallback serves the same traffic, and each worker says which driver it runs.
#[test]
fn legacy_driver_serves_and_is_logged() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let mut cfg = Cfg::new(&pki, &up).runtime("driver = \"legacy\"");
    cfg.workers = 2;
    let proxy = cfg.start();
    let cc = client_for(&pki, Some(&pki.client));
    for i in 0..4 {
        let r = client::get(proxy.addr(), &cc, &format!("/legacy/{i}"));
        assert_eq!(r.status, 200, "{}", r.head);
    }
    proxy.assert_log(&["worker 0 started: driver=legacy (epoll)"]);
    proxy.assert_log(&["worker 1 started: driver=legacy (epoll)"]);
}

/// By default workers run io_uring where the kernel offers it, and say so.
#[test]
fn default_driver_is_logged() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    assert!(
        proxy.log_contains("worker 0 started: driver=io_uring")
            || proxy.log_contains("falling back to the legacy epoll driver"),
        "{}",
        proxy.log()
    );
}

/// A 64 MiB Content-Length upload over TLS once failed with "message buffer full" when the
/// TLS adapter fed rustls more ciphertext than it would take before decrypting.
#[test]
fn large_tls_upload_is_not_refused_by_rustls_buffering() {
    use std::io::Write;
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).http("client_max_body_size = 0").start();
    let mut c = client::connect(
        proxy.addr(),
        "localhost",
        &client_for(&pki, Some(&pki.client)),
    )
    .expect("handshake");
    let n: usize = 64 << 20;
    c.send(
        format!("PUT /big HTTP/1.1\r\nHost: localhost\r\nContent-Length: {n}\r\n\r\n").as_bytes(),
    )
    .expect("head");
    let block = vec![b'z'; 1 << 20];
    for _ in 0..64 {
        c.tls.write_all(&block).expect("body");
    }
    let r = c.read_response_with(&mut |_| {}, false).expect("response");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(up.last().body_len, n as u64);
}

/// nginx's 421 rule: when several servers share the address and the SNI named one of them, a
/// request whose Host is another name gets 421 if the server that Host selects (or the default
/// one) verifies client certificates. With one server on the address nothing else could have
/// been chosen: no check, as nginx (its names are not even hashed then).
#[test]
fn host_differing_from_verified_sni_gets_421_only_where_another_server_could_answer() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let cc = client_for(&pki, Some(&pki.client));
    let named = |toml: String| {
        toml.replacen(
            "listen = \"127.0.0.1:0\"",
            "listen = \"127.0.0.1:0\"\nserver_names = [\"localhost\"]",
            1,
        )
    };
    // One server owns the address: any Host is served, as through nginx.
    let single = crate::support::proxy::Proxy::start(&named(Cfg::new(&pki, &up).render()));
    let mut c = client::connect(single.addr(), "localhost", &cc).expect("handshake");
    c.send(b"GET /single HTTP/1.1\r\nHost: admin.example.com\r\n\r\n")
        .expect("send");
    assert_eq!(c.read_response().expect("response").status, 200);

    // Two servers on one address, both verifying clients against the same CA.
    let port = crate::support::nginx::free_port();
    let second = crate::support::admin_server_on(&pki, port);
    let toml = named(Cfg::new(&pki, &up).render())
        .replacen("127.0.0.1:0", &format!("127.0.0.1:{port}"), 1)
        .replacen("[[upstream]]", &format!("{second}\n[[upstream]]"), 1);
    let proxy = crate::support::proxy::Proxy::start(&toml);
    let mut c = client::connect(proxy.addr(), "localhost", &cc).expect("handshake");
    c.send(format!("GET /same HTTP/1.1\r\nHost: LOCALHOST:{port}\r\n\r\n").as_bytes())
        .expect("send");
    assert_eq!(c.read_response().expect("response").status, 200);
    for host in ["admin.example.com", "unnamed.example.com"] {
        let mut c = client::connect(proxy.addr(), "localhost", &cc).expect("handshake");
        c.send(format!("GET /other HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .expect("send");
        let r = c.read_response().expect("response");
        assert_eq!(r.status, 421, "{host}: {}", r.head);
    }
    assert!(up.seen().iter().all(|s| s.target != "/other"));
    proxy.assert_log(&[
        "client attempted to request the server name different from the one that was negotiated",
        "(421)",
    ]);
    drop(proxy);

    // Without client verification on either server there is no check.
    let open_second = second.replacen(
        &format!(
            "client_certificate = {}\nverify_client = \"on\"\n",
            p(&pki.ca.pem_path)
        ),
        "",
        1,
    );
    assert_ne!(open_second, second);
    let open_toml = named(Cfg::new(&pki, &up).tls("verify_client = \"off\"").render())
        .replacen("127.0.0.1:0", &format!("127.0.0.1:{port}"), 1)
        .replacen("[[upstream]]", &format!("{open_second}\n[[upstream]]"), 1);
    let open = crate::support::proxy::Proxy::start(&open_toml);
    let mut c = client::connect(open.addr(), "localhost", &cc).expect("handshake");
    c.send(b"GET /open HTTP/1.1\r\nHost: admin.example.com\r\n\r\n")
        .expect("send");
    assert_eq!(c.read_response().expect("response").status, 200);
}

/// A resumed session (TLS 1.2 and 1.3) carries the client's verified identity: the upstream
/// sees the same DN and verify result as on the full handshake, and `$ssl_session_reused` says
/// `r`. (Envoy marks resumed sessions unvalidated; rpxy turns resumption off for mTLS.)
#[test]
fn resumed_sessions_keep_the_verified_identity() {
    use std::sync::Arc;
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up)
        .locations(
            r#"[[listener.location]]
path = "/"
proxy_pass = "http://app"
set_header = { X-DN = "$ssl_client_s_dn", X-Verify = "$ssl_client_verify", X-Reused = "$ssl_session_reused", X-Proto = "$ssl_protocol" }
"#,
        )
        .start();
    for (version, name) in [
        (&rustls::version::TLS13, "TLSv1.3"),
        (&rustls::version::TLS12, "TLSv1.2"),
    ] {
        let cache = Arc::new(rustls::client::ClientSessionMemoryCache::new(32));
        let cfg = client::config(&client::ClientOpts {
            ca: Some(&pki.ca.pem_path),
            cert: Some((pki.client.cert.as_path(), pki.client.key.as_path())),
            version: Some(version),
            resumption: Some(cache),
        });
        let mut reused = Vec::new();
        for i in 0..3 {
            let r = client::get(proxy.addr(), &cfg, &format!("/r/{i}"));
            assert_eq!(r.status, 200, "{}", r.head);
            let seen = up.last();
            assert_eq!(
                seen.header("X-DN"),
                Some(crate::support::pki::CLIENT_DN),
                "{name} #{i}"
            );
            assert_eq!(seen.header("X-Verify"), Some("SUCCESS"), "{name} #{i}");
            assert_eq!(seen.header("X-Proto"), Some(name));
            reused.push(seen.header("X-Reused").unwrap_or_default().to_string());
        }
        assert_eq!(reused[0], ".", "{name}: first handshake is full");
        assert!(
            reused[1..].iter().all(|r| r == "r"),
            "{name}: later ones resume: {reused:?}"
        );
    }
}

/// Identity headers are set by ringgate only: a client's copies, in any spelling and even
/// where no `set_header` names them, never reach the app.
#[test]
fn forged_identity_headers_never_reach_the_upstream() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let mut c = client::connect(
        proxy.addr(),
        "localhost",
        &client_for(&pki, Some(&pki.client)),
    )
    .expect("handshake");
    c.send(
        b"GET /f HTTP/1.1\r\nHost: localhost\r\nX-SSL-Client-DN: CN=root\r\nx-ssl-client-verify: SUCCESS\r\n\
X_SSL_CLIENT_DN: CN=root\r\nX-Client-Role: admin\r\nX-Forwarded-Client-Cert: Hash=1\r\n\
Client-Cert: :AAAA:\r\nClient-Cert-Chain: :AAAA:\r\nX-SSL-Client-DN: CN=root2\r\nX-Kept: yes\r\n\r\n",
    )
    .expect("send");
    assert_eq!(c.read_response().expect("response").status, 200);
    let seen = up.last();
    for (name, _) in &seen.headers {
        let n = name.to_ascii_lowercase().replace('_', "-");
        assert!(
            !n.starts_with("x-ssl-client")
                && !n.starts_with("x-client-role")
                && !n.contains("client-cert"),
            "forged {name} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("X-Kept"), Some("yes"));
}
