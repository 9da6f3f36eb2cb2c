//! Identity and access: roles from the certificate, per-path access, identity headers
//! the app can trust, certificate + address binding, per-path authentication, the HTTPS
//! redirect, and TLS policies per server name (421).
//!
//! Most tests run `tests/configs/enterprise-mtls-roles.toml`, the enterprise mTLS guide's role
//! model a user can copy, with its paths pointed at certificates made per test.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{DnType, SanType};

use crate::support::client::{self, ClientOpts, Response};
use crate::support::nginx::free_port;
use crate::support::pki::{p, Leaf, LeafSpec, Pki, Usage, Validity};
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};
use crate::support::{client_for, curl, path_str};

/// A client certificate `CN=<cn>,OU=<ou>,O=Acme,C=US` from the test CA.
fn role_cert(pki: &Pki, name: &str, cn: &str, ou: &str) -> Leaf {
    pki.client_with(LeafSpec {
        name,
        subject: vec![
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "Acme"),
            (DnType::OrganizationalUnitName, ou),
            (DnType::CommonName, cn),
        ],
        usage: Usage::Client,
        validity: Validity::Valid,
        sans: Vec::new(),
    })
}

/// The enterprise mTLS guide's role model file with its paths, ports and upstream replaced for this
/// test; `binding_from` replaces client1's allowed address.
fn roles_config(pki: &Pki, up: &Upstream, binding_from: &str) -> String {
    roles_config_with(
        (&pki.server.cert, &pki.server.key, &pki.ca.pem_path),
        up,
        binding_from,
    )
}

/// [`roles_config`] with a server certificate, key and CA of the caller's.
pub fn roles_config_with(
    (cert, key, ca): (&Path, &Path, &Path),
    up: &Upstream,
    binding_from: &str,
) -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/enterprise-mtls-roles.toml");
    let text = std::fs::read_to_string(&path).expect("read enterprise-mtls-roles.toml");
    let replaced = text
        .replace("\"server/server.crt\"", &p(cert))
        .replace("\"server/server.key\"", &p(key))
        .replace("\"ca/ca.crt\"", &p(ca))
        .replace("listen = \"443\"", "listen = \"127.0.0.1:0\"")
        .replace("listen = \"80\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "workers = 0",
            "workers = 2\n# Every denial line: the tests read one per request.\nrefusal_log_per_second = 0",
        )
        .replace("\"127.0.0.1:8080\"", &up.server())
        .replace("\"10.0.0.5\"", &format!("\"{binding_from}\""));
    assert_ne!(text, replaced);
    replaced
}

fn get_with(proxy: &Proxy, cfg: &Arc<rustls::ClientConfig>, path: &str) -> Response {
    client::get(proxy.addr_of("mtls"), cfg, path)
}

/// The enterprise mTLS guide's section 5 model: every role against every path, a certificate whose
/// OU only starts with "Admin", one with no role, and no certificate at all.
#[test]
fn role_matrix_of_the_enterprise_mtls_guide() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&roles_config(&pki, &up, "127.0.0.1"));
    let roles = [
        ("client", "Client", Some("client")),
        ("admin", "Admin", Some("admin")),
        ("ops", "Ops", Some("ops")),
        ("gateway", "Gateway", Some("gateway")),
        ("admintest", "AdminTest", Some("none")),
        ("eng", "Eng", Some("none")),
    ];
    let allowed = |role: &str, path: &str| match path {
        "/public/x" => true,
        "/api/x" => matches!(role, "client" | "gateway"),
        "/admin/x" => matches!(role, "admin" | "gateway"),
        "/ops/x" => matches!(role, "ops" | "gateway"),
        _ => role == "gateway",
    };
    let paths = ["/public/x", "/api/x", "/admin/x", "/ops/x", "/other"];
    for (name, ou, role) in roles {
        let cn = format!("user-{name}");
        let leaf = role_cert(&pki, name, &cn, ou);
        let cfg = client_for(&pki, Some(&leaf));
        for path in paths {
            let before = up.seen().len();
            let r = get_with(&proxy, &cfg, path);
            let want = if allowed(name, path) { 200 } else { 403 };
            assert_eq!(r.status, want, "{name} {path}: {}", r.head);
            if want == 200 {
                let seen = up.last();
                assert_eq!(seen.target, path);
                assert_eq!(seen.header("X-Client-Role"), role, "{name} {path}");
                assert_eq!(seen.header("X-SSL-Client-Verify"), Some("SUCCESS"));
                assert_eq!(
                    seen.header("X-SSL-Client-DN"),
                    Some(format!("CN={cn},OU={ou},O=Acme,C=US").as_str())
                );
                assert!(seen.header("X-SSL-Client-Serial").is_some());
                assert_eq!(
                    seen.header("X-SSL-Client-Fingerprint").map(str::len),
                    Some(40)
                );
                assert!(seen
                    .header("X-SSL-Client-Not-After")
                    .is_some_and(|v| v.ends_with(" GMT")));
            } else {
                assert_eq!(
                    up.seen().len(),
                    before,
                    "a denied request never reaches the app"
                );
                proxy.assert_log(&[
                    &format!("GET {path} denied (403)"),
                    &format!("role `{}`", role.unwrap_or("(none)")),
                    &format!("CN={cn},OU={ou}"),
                ]);
            }
        }
    }
    // No certificate: the public path only; 401 elsewhere, with the reason logged.
    let anon = client_for(&pki, None);
    for path in paths {
        let r = get_with(&proxy, &anon, path);
        let want = if path == "/public/x" { 200 } else { 401 };
        assert_eq!(r.status, want, "no certificate, {path}: {}", r.head);
    }
    let seen = up.last();
    assert_eq!(seen.target, "/public/x");
    assert_eq!(seen.header("X-SSL-Client-Verify"), Some("NONE"));
    assert_eq!(seen.header("X-SSL-Client-DN"), None);
    assert_eq!(seen.header("X-Client-Role"), None);
    proxy.assert_log(&["GET /api/x denied (401)", "ssl_client_verify=NONE"]);
}

/// A certificate from another CA is refused in the handshake with the alert that says why,
/// even on the public path (a presented certificate must verify, as nginx's `optional`).
#[test]
fn certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    // (A CA with a name of its own: one with the same name would fail on the signature.)
    let other = crate::support::pki::Issuer::root(pki.path(), "otherca", "another CA");
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&roles_config(&pki, &up, "127.0.0.1"));
    let stranger = other.leaf(
        pki.path(),
        LeafSpec {
            name: "stranger",
            subject: vec![
                (DnType::CommonName, "user-x"),
                (DnType::OrganizationalUnitName, "Gateway"),
            ],
            usage: Usage::Client,
            validity: Validity::Valid,
            sans: Vec::new(),
        },
    );
    let cfg = client::config(&ClientOpts {
        ca: Some(&pki.ca.pem_path),
        cert: Some((stranger.cert.as_path(), stranger.key.as_path())),
        ..Default::default()
    });
    let (_, alert) = client::refusal_alert(proxy.addr_of("mtls"), &cfg);
    assert!(
        matches!(alert, Ok(rustls::AlertDescription::UnknownCA)),
        "{alert:?}"
    );
    proxy.assert_log(&["refused client certificate"]);
    assert!(up.seen().is_empty());
}

/// F9: every client-sent copy of every identity header ringgate can set, in any case, with
/// `_` for `-`, duplicated, switched on or not, is removed; the app sees only ringgate's.
#[test]
fn forged_identity_headers_in_every_spelling_never_reach_the_app() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let config = roles_config(&pki, &up, "127.0.0.1").replace(
        "not_after = \"X-SSL-Client-Not-After\"",
        "not_after = \"X-SSL-Client-Not-After\"\nspiffe_id = \"X-Workload-Id\"",
    );
    let proxy = Proxy::start(&config);
    // Every forged value carries FORGED, so no genuine value can be mistaken for one.
    let forged = "X-SSL-Client-DN: CN=FORGED1\r\nx-ssl-client-dn: CN=FORGED2\r\n\
X_SSL_Client_DN: CN=FORGED3\r\nX-SSL-CLIENT-VERIFY: FORGED-SUCCESS\r\nX-Client-Role: FORGED-gw\r\n\
x-client-role: FORGED-gw\r\nX_Client_Role: FORGED-gw\r\nX-SSL-Client-Serial: FORGED-01\r\n\
X-SSL-Client-Fingerprint: FORGED-00\r\nX-SSL-Client-Not-After: FORGED-never\r\n\
X-Forwarded-Client-Cert: By=FORGED;Hash=00\r\nClient-Cert: :FORGED:\r\nclient-cert-chain: :FORGED:\r\n\
X-Workload-Id: spiffe://FORGED/x\r\nx-WORKLOAD-id: spiffe://FORGED/y\r\nX-SSL-Client-Escaped-Cert: FORGED\r\n";
    // A verified client with a role, on its own path.
    let client_leaf = role_cert(&pki, "c", "user-c", "Client");
    for (leaf, path, role, verify) in [
        (Some(&client_leaf), "/api/f", Some("client"), "SUCCESS"),
        (None, "/public/f", None, "NONE"),
    ] {
        let mut c = client::connect(proxy.addr_of("mtls"), "localhost", &client_for(&pki, leaf))
            .expect("handshake");
        c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{forged}\r\n").as_bytes())
            .expect("send");
        let r = c.read_response().expect("response");
        assert_eq!(r.status, 200, "{}", r.head);
        let seen = up.last();
        for (name, value) in &seen.headers {
            assert!(
                !value.contains("FORGED"),
                "forged {name}: {value} reached the app"
            );
            assert!(
                !name.contains('_'),
                "{name} with an underscore reached the app"
            );
        }
        assert_eq!(seen.header("X-Client-Role"), role);
        assert_eq!(seen.header("X-SSL-Client-Verify"), Some(verify));
        assert_eq!(
            seen.header("X-Workload-Id"),
            None,
            "no SPIFFE ID in this certificate"
        );
    }
}

/// F11: a certificate bound to 127.0.0.1 works from there and gets 403 from 127.0.0.2; the
/// log says who was refused and why. Other certificates are not bound.
#[test]
fn certificate_bound_to_an_address_is_refused_elsewhere() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&roles_config(&pki, &up, "127.0.0.1"));
    let bound = role_cert(&pki, "client1", "client1", "Client");
    let free = role_cert(&pki, "client2", "client2", "Client");
    let addr = proxy.addr_of("mtls");
    let get_from = |src: &str, leaf: &Leaf| -> Response {
        let tcp = connect_from(src, addr);
        let mut c =
            client::handshake(tcp, "localhost", &client_for(&pki, Some(leaf))).expect("handshake");
        c.send(b"GET /api/b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .expect("send");
        c.read_response().expect("response")
    };
    assert_eq!(get_from("127.0.0.1", &bound).status, 200);
    assert_eq!(get_from("127.0.0.2", &bound).status, 403);
    proxy.assert_log(&[
        "denied (403)",
        "CN=client1,OU=Client,O=Acme,C=US is bound to 127.0.0.1, not to 127.0.0.2",
    ]);
    assert_eq!(get_from("127.0.0.2", &free).status, 200);
    // The binding applies on the public path too: the certificate was presented.
    let tcp = connect_from("127.0.0.2", addr);
    let mut c =
        client::handshake(tcp, "localhost", &client_for(&pki, Some(&bound))).expect("handshake");
    c.send(b"GET /public/b HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    assert_eq!(c.read_response().expect("response").status, 403);
}

/// A TCP connection to `addr` from the source address `src` (any 127/8 address is local).
fn connect_from(src: &str, addr: SocketAddr) -> std::net::TcpStream {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let from: SocketAddr = format!("{src}:0").parse().expect("source address");
    s.bind(&from.into()).expect("bind source address");
    s.connect(&addr.into()).expect("connect");
    s.into()
}

/// Resumed TLS 1.2 and 1.3 sessions carry the same identity through the same checks: the
/// admin resumes into /admin with its role; a client-role session that resumes is still
/// refused /admin; a resumed session of a bound certificate from elsewhere is still refused.
#[test]
fn resumed_sessions_pass_the_same_access_checks() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&roles_config(&pki, &up, "127.0.0.1"));
    let admin = role_cert(&pki, "admin", "user-admin", "Admin");
    let user = role_cert(&pki, "user", "user-client", "Client");
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        for (leaf, want_admin, role) in [(&admin, 200, "admin"), (&user, 403, "client")] {
            let cfg = client::config(&ClientOpts {
                ca: Some(&pki.ca.pem_path),
                cert: Some((leaf.cert.as_path(), leaf.key.as_path())),
                version: Some(version),
                resumption: Some(Arc::new(rustls::client::ClientSessionMemoryCache::new(32))),
            });
            let mut kinds = Vec::new();
            for i in 0..3 {
                let mut c =
                    client::connect(proxy.addr_of("mtls"), "localhost", &cfg).expect("handshake");
                kinds.push(c.tls.conn.handshake_kind());
                c.send(
                    format!(
                        "GET /admin/{i} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .expect("send");
                let r = c.read_response().expect("response");
                assert_eq!(r.status, want_admin, "{version:?} {role} #{i}: {}", r.head);
                if want_admin == 200 {
                    assert_eq!(up.last().header("X-Client-Role"), Some(role));
                }
            }
            assert_eq!(kinds[0], Some(rustls::HandshakeKind::Full), "{version:?}");
            assert!(
                kinds[1..]
                    .iter()
                    .all(|k| *k == Some(rustls::HandshakeKind::Resumed)),
                "{version:?}: {kinds:?}"
            );
        }
    }
}

/// F13: the plain listener answers 301 to https://$host$request_uri (443 left out), and to
/// the configured port where it is not 443; curl follows nothing, it just reads the answer.
#[test]
fn plain_listener_redirects_to_https() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&roles_config(&pki, &up, "127.0.0.1"));
    let plain = proxy.addr_of("redirect");
    let (code, out, err) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "-H",
        "Host: server.example.com",
        &format!("http://127.0.0.1:{}/admin/x?y=1&z=%20", plain.port()),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "301 https://server.example.com/admin/x?y=1&z=%20");
    assert!(up.seen().is_empty());

    let proxy2 = Proxy::start(
        &roles_config(&pki, &up, "127.0.0.1")
            .replace("https_redirect = 443", "https_redirect = 8443"),
    );
    let (_, out, _) = curl(&[
        "-sS",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        "Host: server.example.com:8080",
        &format!("http://127.0.0.1:{}/p", proxy2.addr_of("redirect").port()),
    ]);
    assert!(
        out.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
        "{out}"
    );
    assert!(
        out.contains("\r\nLocation: https://server.example.com:8443/p\r\n"),
        "{out}"
    );
}

/// curl, as a user would: /public without a certificate, /admin with the admin's.
#[test]
fn curl_per_path_authentication() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&roles_config(&pki, &up, "127.0.0.1"));
    let admin = role_cert(&pki, "admin", "user-admin", "Admin");
    let port = proxy.addr_of("mtls").port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let run = |path: &str, cert: Option<&Leaf>| {
        let url = format!("https://localhost:{port}{path}");
        let mut args = vec![
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--resolve",
            &resolve,
            "--cacert",
            path_str(&pki.ca.pem_path),
        ];
        if let Some(c) = cert {
            args.extend(["--cert", path_str(&c.cert), "--key", path_str(&c.key)]);
        }
        args.push(&url);
        let (code, out, err) = curl(&args);
        assert_eq!(code, 0, "{path}: {err}");
        out
    };
    assert_eq!(run("/public/page", None), "200");
    assert_eq!(run("/admin/page", None), "401");
    assert_eq!(run("/admin/page", Some(&admin)), "200");
    assert_eq!(run("/api/page", Some(&admin)), "403");
}

/// Two servers on one address with different TLS policies, chosen by SNI: the public name
/// never asks for a certificate; the secure name requires one; a request whose Host crosses
/// from one policy to the other gets 421.
#[test]
fn servers_on_one_address_keep_their_own_tls_policy() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let port = free_port();
    let public = pki.ca.leaf(
        pki.path(),
        LeafSpec {
            name: "public",
            subject: vec![(DnType::CommonName, "public.test")],
            usage: Usage::Server,
            validity: Validity::Valid,
            sans: vec![SanType::DnsName("public.test".try_into().expect("dns"))],
        },
    );
    let secure = pki.ca.leaf(
        pki.path(),
        LeafSpec {
            name: "secure",
            subject: vec![(DnType::CommonName, "secure.test")],
            usage: Usage::Server,
            validity: Validity::Valid,
            sans: vec![SanType::DnsName("secure.test".try_into().expect("dns"))],
        },
    );
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
[listener.identity_headers]
subject = "X-SSL-Client-DN"
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
    let addr = proxy.addr_of("secure");
    assert_eq!(addr, proxy.addr_of("public"));
    let anon = client_for(&pki, None);
    let alice = client_for(&pki, Some(&pki.client));
    let request = |sni: &str, host: &str, cfg: &Arc<rustls::ClientConfig>| {
        let mut c = client::connect(addr, sni, cfg)?;
        c.send(format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
        c.read_response()
    };
    // The public name: no certificate is asked for (a client without one just works).
    let r = request("public.test", "public.test", &anon).expect("public");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().header("X-Server"), Some("public"));
    // The secure name: the certificate is required, and the app learns who it is.
    let r = request("secure.test", "secure.test", &alice).expect("secure");
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.header("X-Server"), Some("secure"));
    assert_eq!(
        seen.header("X-SSL-Client-DN"),
        Some(crate::support::pki::CLIENT_DN)
    );
    let refused = request("secure.test", "secure.test", &anon);
    assert!(
        refused.is_err(),
        "no certificate on the secure name: {refused:?}"
    );
    // Crossing policies by Host: 421 both ways, logged.
    let r = request("public.test", "secure.test", &anon).expect("cross");
    assert_eq!(r.status, 421, "{}", r.head);
    proxy.assert_log(&["client-certificate policy differs", "(421)"]);
    let r = request("secure.test", "public.test", &alice).expect("cross back");
    assert_eq!(r.status, 421, "{}", r.head);
    // A name neither server has goes to the default server.
    let r = request("public.test", "other.test", &anon).expect("default");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().header("X-Server"), Some("public"));
}

/// Envoy's XFCC, RFC 9440's Client-Cert / Client-Cert-Chain and the SPIFFE ID, with a role
/// given by a SPIFFE ID prefix; a chain with an intermediate fills Client-Cert-Chain.
#[test]
fn xfcc_rfc9440_and_spiffe_headers() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let inter = pki
        .ca
        .intermediate(pki.path(), "inter", "ringgate test intermediate");
    let leaf = inter.leaf(
        pki.path(),
        LeafSpec {
            name: "workload",
            subject: vec![(DnType::CommonName, "web")],
            usage: Usage::Client,
            validity: Validity::Valid,
            sans: vec![
                SanType::URI("spiffe://corp.test/ns/prod/sa/web".try_into().expect("uri")),
                SanType::DnsName("web.prod.svc".try_into().expect("dns")),
            ],
        },
    );
    let config = format!(
        r#"[runtime]
workers = 1

[identity]
roles = [
  {{ role = "prod", spiffe_id = {{ prefix = "spiffe://corp.test/ns/prod/" }} }},
  {{ role = "svc", cn = {{ regex = "svc-[a-z]+" }} }},
]

[[listener]]
name = "mesh"
listen = "127.0.0.1:0"
[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
client_certificate = {ca}
verify_client = "on"
[listener.identity_headers]
role = "X-Client-Role"
spiffe_id = "X-Client-Spiffe-Id"
xfcc = "X-Forwarded-Client-Cert"
client_cert = "Client-Cert"
client_cert_chain = "Client-Cert-Chain"
fingerprint_sha256 = "X-Client-Sha256"
[[listener.location]]
path = "/"
allow_roles = ["prod"]
proxy_pass = "http://app"

[[upstream]]
name = "app"
servers = [{up}]
"#,
        cert = p(&pki.server.cert),
        key = p(&pki.server.key),
        ca = p(&pki.ca.pem_path),
        up = up.server()
    );
    let proxy = Proxy::start(&config);
    let r = client::get(proxy.addr(), &client_for(&pki, Some(&leaf)), "/mesh");
    assert_eq!(r.status, 200, "{}", r.head);
    let seen = up.last();
    assert_eq!(seen.header("X-Client-Role"), Some("prod"));
    assert_eq!(
        seen.header("X-Client-Spiffe-Id"),
        Some("spiffe://corp.test/ns/prod/sa/web")
    );
    let sha = seen.header("X-Client-Sha256").expect("sha256").to_string();
    let xfcc = seen.header("X-Forwarded-Client-Cert").expect("xfcc");
    assert!(
        xfcc.starts_with(&format!(
            "Hash={sha};Cert=\"-----BEGIN%20CERTIFICATE-----%0A"
        )),
        "{xfcc}"
    );
    assert!(
        xfcc.ends_with(
            ";Subject=\"CN=web\";URI=spiffe://corp.test/ns/prod/sa/web;DNS=web.prod.svc"
        ),
        "{xfcc}"
    );
    let cert = seen.header("Client-Cert").expect("Client-Cert");
    assert_eq!(cert, format!(":{}:", pem_body(&leaf.cert)));
    let chain = seen.header("Client-Cert-Chain").expect("Client-Cert-Chain");
    assert_eq!(chain, format!(":{}:", pem_body(&inter.pem_path)));
    // The default client (no SPIFFE ID, CN alice) has no role here: 403.
    let r = client::get(proxy.addr(), &client_for(&pki, Some(&pki.client)), "/mesh");
    assert_eq!(r.status, 403);
    proxy.assert_log(&["role `(none)`", "admits [prod]"]);
}

/// The base64 of a certificate's DER: its PEM body, lines joined (an oracle independent of
/// ringgate's own encoder).
fn pem_body(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("read PEM")
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect()
}

/// The enterprise mTLS guide's nginx forms, natively: a `map` over `$ssl_client_s_dn`
/// (nginx's regex search, so OU=AdminTest counts as admin there), server-level
/// `if ($remote_addr != $allowed_ip)`, and section 4's
/// `if ($ssl_client_verify != SUCCESS) { return 401; }` in front of `root`.
#[test]
fn nginx_map_and_if_forms_behave_as_in_nginx() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let www = tempfile::tempdir().expect("www");
    std::fs::write(www.path().join("index.html"), "<h1>hello</h1>\n").expect("index");
    let config = format!(
        r#"[runtime]
workers = 1

[[map]]
source = "$ssl_client_s_dn"
variable = "client_role"
default = "none"
entries = [
  {{ regex = "OU=Admin", value = "admin" }},
  {{ regex = "OU=Client", value = "client" }},
]

[[map]]
source = "$ssl_client_s_dn"
variable = "allowed_ip"
default = ""
entries = [
  {{ exact = "CN=bound,OU=Client,O=Acme,C=US", value = "127.0.0.1" }},
  {{ exact = "cn=bound,ou=admintest,o=acme,c=us", value = "$server_addr" }},
]

[[listener]]
name = "nginx-forms"
listen = "127.0.0.1:0"
[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
client_certificate = {ca}
verify_client = "optional"

[[listener.rule]]
if = "$remote_addr != $allowed_ip"
return = 403

[[listener.location]]
path = "/"
root = {www}
[[listener.location.rule]]
if = "($ssl_client_verify != SUCCESS)"
return = 401

[[listener.location]]
path = "/app"
proxy_pass = "http://app"
set_header = {{ X-Client-Role = "$client_role" }}
"#,
        cert = p(&pki.server.cert),
        key = p(&pki.server.key),
        ca = p(&pki.ca.pem_path),
        www = p(www.path()),
    ) + &format!(
        "\n[[upstream]]\nname = \"app\"\nservers = [{}]\n",
        up.server()
    );
    let proxy = Proxy::start(&config);
    let bound = role_cert(&pki, "bound", "bound", "Client");
    let admintest = role_cert(&pki, "admintest", "bound", "AdminTest");
    let r = client::get(proxy.addr(), &client_for(&pki, Some(&bound)), "/");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.text(), "<h1>hello</h1>\n");
    assert_eq!(r.header("content-type"), Some("text/html"));
    let r = client::get(proxy.addr(), &client_for(&pki, Some(&bound)), "/app/x");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().header("X-Client-Role"), Some("client"));
    // nginx's map regex is a search over the DN string: OU=AdminTest is "admin" there (the
    // exact key matched case-insensitively, its value a variable).
    let r = client::get(proxy.addr(), &client_for(&pki, Some(&admintest)), "/app/x");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(up.last().header("X-Client-Role"), Some("admin"));
    // Another DN: the map's default "" differs from 127.0.0.1, so 403 (as nginx).
    let other = role_cert(&pki, "other", "other", "Client");
    let r = client::get(proxy.addr(), &client_for(&pki, Some(&other)), "/app/x");
    assert_eq!(r.status, 403);
    // No certificate: $allowed_ip is "" too.
    let r = client::get(proxy.addr(), &client_for(&pki, None), "/");
    assert_eq!(r.status, 403);
}
