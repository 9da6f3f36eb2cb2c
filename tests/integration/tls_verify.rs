//! Client verification (modes, refusal alerts, HTTP refusal pages, depth), SNI, TLS versions.

use rustls::AlertDescription;

use crate::support::client::{self, attempt, refusal_alert, ClientOpts};
use crate::support::pki::{self, p, Issuer, LeafSpec, Pki, Validity};
use crate::support::upstream::{Mode, Upstream};
use crate::support::{client_for, Cfg};

/// The client certificates every verify-mode case is tried with.
struct Clients {
    valid: pki::Leaf,
    other_ca: pki::Leaf,
    expired: pki::Leaf,
    self_signed: pki::Leaf,
}

fn clients(pki: &Pki) -> Clients {
    let dir = pki.path();
    let other = Issuer::root(dir, "other-ca", "some other CA");
    Clients {
        valid: pki.client.clone(),
        other_ca: other.leaf(dir, LeafSpec::client("other-client", "mallory")),
        expired: pki.client_with(LeafSpec {
            validity: Validity::Expired,
            ..LeafSpec::client("expired", "old")
        }),
        self_signed: pki::self_signed_leaf(dir, LeafSpec::client("selfsigned", "selfie")),
    }
}

fn verify_cfg(pki: &Pki, up: &Upstream, mode: &str, failure: &str) -> String {
    Cfg::new(pki, up)
        .tls(&format!(
            "client_certificate = {}\nverify_client = \"{mode}\"\nverify_failure = \"{failure}\"\n",
            p(&pki.ca.pem_path)
        ))
        .locations(
            r#"[[listener.location]]
path = "/"
proxy_pass = "http://app"
set_header = { X-SSL-Client-Verify = "$ssl_client_verify", X-SSL-Client-DN = "$ssl_client_s_dn" }
"#,
        )
        .render()
}

/// Expects the request to go through and returns what the upstream saw as verify result.
#[track_caller]
fn accepted(
    addr: std::net::SocketAddr,
    up: &Upstream,
    pki: &Pki,
    leaf: Option<&pki::Leaf>,
    what: &str,
) -> String {
    let before = up.seen().len();
    let (_, r) = attempt(addr, &client_for(pki, leaf), "/");
    let r = r.unwrap_or_else(|e| panic!("{what}: expected the request to go through: {e}"));
    assert_eq!(r.status, 200, "{what}: {}", r.head);
    let seen = up.seen();
    assert_eq!(
        seen.len(),
        before + 1,
        "{what}: the upstream saw no request"
    );
    seen[before]
        .header("X-SSL-Client-Verify")
        .unwrap_or_default()
        .to_string()
}

/// Expects the handshake to be refused with one of `alerts`, and a log line for the peer.
#[track_caller]
fn refused(
    proxy: &crate::support::proxy::Proxy,
    up: &Upstream,
    pki: &Pki,
    leaf: Option<&pki::Leaf>,
    alerts: &[AlertDescription],
    what: &str,
) {
    let before = up.seen().len();
    let (local, alert) = refusal_alert(proxy.addr(), &client_for(pki, leaf));
    let alert = alert.unwrap_or_else(|e| panic!("{what}: expected a refusal alert: {e}"));
    assert!(
        alerts.contains(&alert),
        "{what}: got alert {alert:?}, expected one of {alerts:?}"
    );
    assert_eq!(
        up.seen().len(),
        before,
        "{what}: a refused client reached the upstream"
    );
    proxy.assert_log(&[&format!("peer={local}"), "refused"]);
}

#[test]
fn verify_client_on_accepts_valid_and_refuses_others_with_the_right_alert() {
    let pki = Pki::new();
    let c = clients(&pki);
    let up = Upstream::start(Mode::Echo);
    let proxy = crate::support::proxy::Proxy::start(&verify_cfg(&pki, &up, "on", "alert"));
    let addr = proxy.addr();
    assert_eq!(
        accepted(addr, &up, &pki, Some(&c.valid), "valid"),
        "SUCCESS"
    );
    refused(
        &proxy,
        &up,
        &pki,
        None,
        &[AlertDescription::CertificateRequired],
        "no cert",
    );
    refused(
        &proxy,
        &up,
        &pki,
        Some(&c.other_ca),
        &[AlertDescription::UnknownCA],
        "other CA",
    );
    refused(
        &proxy,
        &up,
        &pki,
        Some(&c.expired),
        &[AlertDescription::CertificateExpired],
        "expired",
    );
    refused(
        &proxy,
        &up,
        &pki,
        Some(&c.self_signed),
        &[
            AlertDescription::BadCertificate,
            AlertDescription::UnknownCA,
        ],
        "self-signed",
    );
}

#[test]
fn verify_client_optional_lets_no_certificate_through_but_refuses_bad_ones() {
    let pki = Pki::new();
    let c = clients(&pki);
    let up = Upstream::start(Mode::Echo);
    let proxy = crate::support::proxy::Proxy::start(&verify_cfg(&pki, &up, "optional", "alert"));
    let addr = proxy.addr();
    assert_eq!(accepted(addr, &up, &pki, None, "no cert"), "NONE");
    assert_eq!(
        accepted(addr, &up, &pki, Some(&c.valid), "valid"),
        "SUCCESS"
    );
    refused(
        &proxy,
        &up,
        &pki,
        Some(&c.other_ca),
        &[AlertDescription::UnknownCA],
        "other CA",
    );
    refused(
        &proxy,
        &up,
        &pki,
        Some(&c.expired),
        &[AlertDescription::CertificateExpired],
        "expired",
    );
    refused(
        &proxy,
        &up,
        &pki,
        Some(&c.self_signed),
        &[
            AlertDescription::BadCertificate,
            AlertDescription::UnknownCA,
        ],
        "self-signed",
    );
}

#[test]
fn verify_client_optional_no_ca_passes_unknown_issuers_with_failed_verify_result() {
    let pki = Pki::new();
    let c = clients(&pki);
    let up = Upstream::start(Mode::Echo);
    let proxy =
        crate::support::proxy::Proxy::start(&verify_cfg(&pki, &up, "optional_no_ca", "alert"));
    let addr = proxy.addr();
    assert_eq!(accepted(addr, &up, &pki, None, "no cert"), "NONE");
    assert_eq!(
        accepted(addr, &up, &pki, Some(&c.valid), "valid"),
        "SUCCESS"
    );
    let other = accepted(addr, &up, &pki, Some(&c.other_ca), "other CA");
    assert!(other.starts_with("FAILED:"), "other CA: {other}");
    assert_eq!(
        up.last().header("X-SSL-Client-DN"),
        Some("CN=mallory,OU=Eng,O=Acme,C=US")
    );
    let selfie = accepted(addr, &up, &pki, Some(&c.self_signed), "self-signed");
    assert!(selfie.starts_with("FAILED:"), "self-signed: {selfie}");
    // An expired certificate is not an unknown-issuer problem: still refused.
    refused(
        &proxy,
        &up,
        &pki,
        Some(&c.expired),
        &[AlertDescription::CertificateExpired],
        "expired",
    );
}

#[test]
fn verify_client_off_never_asks_for_a_certificate() {
    let pki = Pki::new();
    let c = clients(&pki);
    let up = Upstream::start(Mode::Echo);
    let proxy = crate::support::proxy::Proxy::start(&verify_cfg(&pki, &up, "off", "alert"));
    let addr = proxy.addr();
    for (leaf, what) in [
        (None, "no cert"),
        (Some(&c.valid), "valid"),
        (Some(&c.other_ca), "other CA"),
        (Some(&c.expired), "expired"),
        (Some(&c.self_signed), "self-signed"),
    ] {
        let v = accepted(addr, &up, &pki, leaf, what);
        assert_eq!(v, "NONE", "{what}");
        // An empty `proxy_set_header` value is not sent at all, as in nginx.
        assert_eq!(up.last().header("X-SSL-Client-DN"), None, "{what}");
    }
}

#[test]
fn verify_failure_http_completes_the_handshake_and_answers_nginx_400_pages() {
    let pki = Pki::new();
    let c = clients(&pki);
    let up = Upstream::start(Mode::Echo);
    let proxy = crate::support::proxy::Proxy::start(&verify_cfg(&pki, &up, "on", "http"));
    let addr = proxy.addr();
    assert_eq!(
        accepted(addr, &up, &pki, Some(&c.valid), "valid"),
        "SUCCESS"
    );
    let seen = up.seen().len();

    let (local, r) = attempt(addr, &client_for(&pki, None), "/");
    let r = r.expect("handshake completes in http mode");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("No required SSL certificate was sent"),
        "{}",
        r.text()
    );
    proxy.assert_log(&[&format!("peer={local}"), "no required SSL certificate"]);

    for (leaf, what) in [
        (&c.other_ca, "other CA"),
        (&c.expired, "expired"),
        (&c.self_signed, "self-signed"),
    ] {
        let (local, r) = attempt(addr, &client_for(&pki, Some(leaf)), "/");
        let r = r.unwrap_or_else(|e| panic!("{what}: handshake completes in http mode: {e}"));
        assert_eq!(r.status, 400, "{what}");
        assert!(
            r.text().contains("The SSL certificate error"),
            "{what}: {}",
            r.text()
        );
        proxy.assert_log(&[&format!("peer={local}"), "verify error"]);
    }
    assert!(
        proxy.log_contains("certificate has expired"),
        "the log names the reason: {}",
        proxy.log()
    );
    assert_eq!(
        up.seen().len(),
        seen,
        "refused clients never reach the upstream"
    );
}

#[test]
fn verify_depth_counts_intermediates_like_nginx() {
    let pki = Pki::new();
    let dir = pki.path();
    let int1 = pki.ca.intermediate(dir, "int1", "int one");
    let int2 = int1.intermediate(dir, "int2", "int two");
    let direct = pki.client.clone();
    let one = int1.leaf(dir, LeafSpec::client("under-int1", "one"));
    let two = int2.leaf(dir, LeafSpec::client("under-int2", "two"));
    let up = Upstream::start(Mode::Echo);
    for (depth, expect) in [
        (0u32, [true, false, false]),
        (1, [true, true, false]),
        (2, [true, true, true]),
    ] {
        let proxy = Cfg::new(&pki, &up)
            .tls(&format!(
                "client_certificate = {}\nverify_client = \"on\"\nverify_depth = {depth}\n",
                p(&pki.ca.pem_path)
            ))
            .start();
        for (leaf, ok, what) in [
            (&direct, expect[0], "root->leaf"),
            (&one, expect[1], "root->int->leaf"),
            (&two, expect[2], "root->int1->int2->leaf"),
        ] {
            let (local, r) = attempt(proxy.addr(), &client_for(&pki, Some(leaf)), "/");
            if ok {
                let r = r.unwrap_or_else(|e| panic!("depth {depth}, {what}: refused: {e}"));
                assert_eq!(r.status, 200, "depth {depth}, {what}");
            } else {
                assert!(
                    r.is_err(),
                    "depth {depth}, {what}: accepted but should be refused"
                );
                proxy.assert_log(&[&format!("peer={local}"), "refused"]);
            }
        }
    }
}

#[test]
fn sni_chooses_the_certificate_for_the_requested_name() {
    let pki = Pki::new();
    let dir = pki.path();
    let named = |file: &'static str, host: &'static str| {
        pki.ca.leaf(
            dir,
            LeafSpec {
                name: file,
                subject: vec![(rcgen::DnType::CommonName, host)],
                usage: pki::Usage::Server,
                validity: Validity::Valid,
                sans: vec![rcgen::SanType::DnsName(host.try_into().expect("dns"))],
            },
        )
    };
    let alpha = named("alpha", "alpha.test");
    let beta = named("beta", "beta.test");
    let up = Upstream::start(Mode::Echo);
    let toml = format!(
        r#"[runtime]
workers = 1

[[listener]]
name = "sni"
listen = "127.0.0.1:0"

[listener.tls]
certificates = [
  {{ cert = {}, key = {}, server_names = ["alpha.test"] }},
  {{ cert = {}, key = {}, server_names = ["beta.test"] }},
]

[[listener.location]]
path = "/"
proxy_pass = "http://app"
set_header = {{ Host = "$host" }}

[[upstream]]
name = "app"
servers = [{}]
"#,
        p(&alpha.cert),
        p(&alpha.key),
        p(&beta.cert),
        p(&beta.key),
        up.server()
    );
    let proxy = crate::support::proxy::Proxy::start(&toml);
    let cfg = client::config(&ClientOpts {
        ca: Some(&pki.ca.pem_path),
        ..Default::default()
    });
    for host in ["alpha.test", "beta.test"] {
        let mut c = client::connect(proxy.addr(), host, &cfg)
            .unwrap_or_else(|e| panic!("{host}: handshake failed: {e}"));
        let certs = c.peer_certs();
        let (_, x) = x509_parser::parse_x509_certificate(&certs[0]).expect("parse server cert");
        assert_eq!(x.subject().to_string(), format!("CN={host}"));
        c.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
            .expect("send");
        let r = c.read_response().expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(up.last().header("Host"), Some(host));
    }
}

#[test]
fn tls13_only_listener_refuses_a_tls12_only_client_and_default_offers_both() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let only13 = Cfg::new(&pki, &up)
        .tls(&format!(
            "client_certificate = {}\nverify_client = \"on\"\nprotocols = [\"TLSv1.3\"]\n",
            p(&pki.ca.pem_path)
        ))
        .start();
    let both = Cfg::new(&pki, &up).start();
    let opts = |v: &'static rustls::SupportedProtocolVersion| {
        client::config(&ClientOpts {
            ca: Some(&pki.ca.pem_path),
            cert: Some((&pki.client.cert, &pki.client.key)),
            version: Some(v),
            resumption: None,
        })
    };
    let tls12 = opts(&rustls::version::TLS12);
    let tls13 = opts(&rustls::version::TLS13);

    let err = client::connect(only13.addr(), "localhost", &tls12)
        .err()
        .expect("a TLS 1.2-only client is refused by a TLS 1.3-only listener");
    let alert = client::rustls_error(&err);
    assert!(
        matches!(
            alert,
            Some(rustls::Error::AlertReceived(
                AlertDescription::ProtocolVersion
            ))
        ),
        "got {err} ({alert:?})"
    );
    assert_eq!(client::get(only13.addr(), &tls13, "/").status, 200);

    for (cfg, want) in [
        (&tls12, rustls::ProtocolVersion::TLSv1_2),
        (&tls13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut c = client::connect(both.addr(), "localhost", cfg).expect("handshake");
        assert_eq!(c.tls.conn.protocol_version(), Some(want));
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("send");
        assert_eq!(c.read_response().expect("response").status, 200);
    }
    // With no pinning the client gets TLS 1.3.
    let c = client::connect(
        both.addr(),
        "localhost",
        &client_for(&pki, Some(&pki.client)),
    )
    .expect("handshake");
    assert_eq!(
        c.tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[test]
fn tls12_client_refused_without_certificate_gets_an_alert_too() {
    // In TLS 1.2 the refusal happens inside the handshake itself.
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let cfg = client::config(&ClientOpts {
        ca: Some(&pki.ca.pem_path),
        version: Some(&rustls::version::TLS12),
        ..Default::default()
    });
    let (local, r) = attempt(proxy.addr(), &cfg, "/");
    let e = r.expect_err("refused");
    assert!(
        matches!(
            client::rustls_error(&e),
            Some(rustls::Error::AlertReceived(_))
        ),
        "got {e}"
    );
    proxy.assert_log(&[&format!("peer={local}"), "refused"]);
}
