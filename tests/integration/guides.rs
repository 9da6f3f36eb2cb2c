//! F5: certificates made by the nginx guides' own openssl commands (the TLS-termination
//! guide's and the enterprise mTLS guide's, in tests/certs/make-guide-certs.sh) work as they
//! do with nginx.

use std::path::{Path, PathBuf};

use crate::support::client::{self, ClientOpts};
use crate::support::pki::p;
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};
use crate::support::{curl, path_str};

/// Runs the script into a temporary folder; None (with a message) when openssl is missing.
pub fn make_guide_certs() -> Option<tempfile::TempDir> {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("SKIPPED: `openssl` is not installed; the guide certificate test needs it");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/certs/make-guide-certs.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("run make-guide-certs.sh");
    assert!(
        out.status.success(),
        "make-guide-certs.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}

fn enterprise_mtls_config(d: &Path, up: &Upstream) -> String {
    format!(
        r#"[runtime]
workers = 1

[[listener]]
name = "enterprise-mtls"
listen = "127.0.0.1:0"
server_names = ["server.example.com"]

[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
protocols = ["TLSv1.2", "TLSv1.3"]
client_certificate = {ca}
verify_client = "on"
verify_depth = 2

[[listener.location]]
path = "/"
proxy_pass = "http://app"
set_header = {{ Host = "$host", X-SSL-Client-DN = "$ssl_client_s_dn", X-SSL-Client-Verify = "$ssl_client_verify" }}

[[upstream]]
name = "app"
servers = [{up}]
"#,
        cert = p(&d.join("server/server.crt")),
        key = p(&d.join("server/server.key")),
        ca = p(&d.join("ca/ca.crt")),
        up = up.server()
    )
}

#[test]
fn enterprise_mtls_openssl_certificates_work_as_with_nginx() {
    let Some(dir) = make_guide_certs() else {
        return;
    };
    let d: PathBuf = dir.path().join("enterprise-mtls");
    let up = Upstream::start(Mode::Echo);
    let proxy = Proxy::start(&enterprise_mtls_config(&d, &up));
    let addr = proxy.addr();

    // The enterprise mTLS guide's client certificate is X.509 v1 (`openssl x509 -req -CA`
    // without -extfile): accepted, as nginx does.
    let ca = d.join("ca/ca.crt");
    let good = client::config(&ClientOpts {
        ca: Some(&ca),
        cert: Some((&d.join("client/client.crt"), &d.join("client/client.key"))),
        ..Default::default()
    });
    let mut c = client::connect(addr, "server.example.com", &good)
        .expect("the guide's client completes the handshake");
    c.send(b"GET /api/data HTTP/1.1\r\nHost: server.example.com\r\n\r\n")
        .expect("send");
    let r = c.read_response().expect("the guide's client is served");
    assert_eq!(r.status, 200, "{}\nlog:\n{}", r.head, proxy.log());
    let seen = up.last();
    assert_eq!(
        seen.header("X-SSL-Client-DN"),
        Some("CN=client1,OU=Client,O=MyCompany,C=CN")
    );
    assert_eq!(seen.header("X-SSL-Client-Verify"), Some("SUCCESS"));
    assert_eq!(seen.header("Host"), Some("server.example.com"));

    // A client from another CA is refused.
    let other = client::config(&ClientOpts {
        ca: Some(&ca),
        cert: Some((
            &d.join("otherca-client/client.crt"),
            &d.join("otherca-client/client.key"),
        )),
        ..Default::default()
    });
    let before = up.seen().len();
    let e = client::connect(addr, "server.example.com", &other).and_then(|mut c| {
        c.send(b"GET / HTTP/1.1\r\nHost: server.example.com\r\n\r\n")?;
        c.read_response()
    });
    let refused = matches!(
        e.as_ref().err().and_then(client::rustls_error),
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::UnknownCA
        ))
    );
    assert!(
        refused,
        "the other CA's client must be refused with unknown_ca: {e:?}"
    );
    assert_eq!(up.seen().len(), before);
    proxy.assert_log(&["refused", "peer=127.0.0.1:"]);

    // curl, as the guide's readers would use it.
    let port = addr.port();
    let resolve = format!("server.example.com:{port}:127.0.0.1");
    let url = format!("https://server.example.com:{port}/curl");
    let (code, out, err) = curl(&[
        "--resolve",
        &resolve,
        "--cacert",
        path_str(&ca),
        "--cert",
        path_str(&d.join("client/client.crt")),
        "--key",
        path_str(&d.join("client/client.key")),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!((code, out.as_str()), (0, "200"), "curl: {err}");
    assert_eq!(up.last().target, "/curl");
    assert_eq!(
        up.last().header("X-SSL-Client-DN"),
        Some("CN=client1,OU=Client,O=MyCompany,C=CN")
    );
    let (code, _, err) = curl(&["--resolve", &resolve, "--cacert", path_str(&ca), &url]);
    assert_ne!(
        code, 0,
        "curl without a client certificate must fail: {err}"
    );
}

#[test]
fn tls_termination_self_signed_certificate_serves_as_server_certificate() {
    let Some(dir) = make_guide_certs() else {
        return;
    };
    let d = dir.path().join("tls-termination");
    let up = Upstream::start(Mode::Echo);
    let toml = format!(
        r#"[runtime]
workers = 1

[[listener]]
name = "tls-termination"
listen = "127.0.0.1:0"

[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]

[[listener.location]]
path = "/"
proxy_pass = "http://app/"
set_header = {{ Host = "$host" }}

[[upstream]]
name = "app"
servers = [{up}]
"#,
        cert = p(&d.join("public.pem")),
        key = p(&d.join("private.key")),
        up = up.server()
    );
    let proxy = Proxy::start(&toml);
    let port = proxy.addr().port();
    let (code, out, err) = curl(&[
        "-k",
        "-v",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("https://127.0.0.1:{port}/tls-termination"),
    ]);
    assert_eq!((code, out.as_str()), (0, "200"), "curl: {err}");
    assert!(
        err.contains("Example Company"),
        "the served certificate is the guide's public.pem:\n{err}"
    );
    assert_eq!(up.last().target, "/tls-termination");
}

/// The enterprise mTLS guide's own openssl-made client
/// (`/C=CN/O=MyCompany/OU=Client/CN=client1`, X.509 v1) through the guide's role model
/// (tests/configs/enterprise-mtls-roles.toml): role `client` from its OU, /api allowed,
/// /admin refused; and section 6's binding of client1 to one address.
#[test]
fn enterprise_mtls_client_gets_its_role_from_its_ou() {
    let Some(dir) = make_guide_certs() else {
        return;
    };
    let d: PathBuf = dir.path().join("enterprise-mtls");
    let up = Upstream::start(Mode::Echo);
    let files = (
        d.join("server/server.crt"),
        d.join("server/server.key"),
        d.join("ca/ca.crt"),
    );
    let files = (files.0.as_path(), files.1.as_path(), files.2.as_path());
    let cfg = client::config(&ClientOpts {
        ca: Some(files.2),
        cert: Some((&d.join("client/client.crt"), &d.join("client/client.key"))),
        ..Default::default()
    });
    let get = |proxy: &Proxy, path: &str| {
        let mut c = client::connect(proxy.addr_of("mtls"), "server.example.com", &cfg)
            .expect("the guide's client completes the handshake");
        c.send(format!("GET {path} HTTP/1.1\r\nHost: server.example.com\r\n\r\n").as_bytes())
            .expect("send");
        c.read_response().expect("response")
    };
    let proxy = Proxy::start(&crate::identity::roles_config_with(files, &up, "127.0.0.1"));
    let r = get(&proxy, "/api/orders");
    assert_eq!(r.status, 200, "{}\nlog:\n{}", r.head, proxy.log());
    let seen = up.last();
    assert_eq!(seen.header("X-Client-Role"), Some("client"));
    assert_eq!(
        seen.header("X-SSL-Client-DN"),
        Some("CN=client1,OU=Client,O=MyCompany,C=CN")
    );
    assert!(seen
        .header("X-SSL-Client-Serial")
        .is_some_and(|s| s.len() >= 30 && s.bytes().all(|b| b.is_ascii_hexdigit())));
    assert_eq!(get(&proxy, "/admin/users").status, 403);
    // As the file ships: client1 may only come from 10.0.0.5.
    let proxy = Proxy::start(&crate::identity::roles_config_with(files, &up, "10.0.0.5"));
    assert_eq!(get(&proxy, "/api/orders").status, 403);
    proxy.assert_log(&[
        "CN=client1,OU=Client,O=MyCompany,C=CN is bound to 10.0.0.5, not to 127.0.0.1",
    ]);
}
