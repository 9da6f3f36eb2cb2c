//! `ringgate check`: errors name file, line, key and what was expected, all at once.

use crate::support::pki::{p, Pki};
use crate::support::proxy::check;
use crate::support::upstream::{Mode, Upstream};
use crate::support::Cfg;

fn write(pki: &Pki, name: &str, text: &str) -> std::path::PathBuf {
    let path = pki.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in config"))
        + 1
}

#[test]
fn check_accepts_a_valid_configuration() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let path = write(&pki, "good.toml", &Cfg::new(&pki, &up).render());
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration is valid"), "{out}");
}

#[test]
fn check_reports_an_unknown_key_with_file_line_and_key() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let text = Cfg::new(&pki, &up)
        .http("keepalive_timeout = \"5s\"\nheader_timeout_typo = \"1s\"")
        .render();
    let path = write(&pki, "unknown.toml", &text);
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&text, "header_timeout_typo");
    assert!(
        err.contains(&format!("{}:{line}:", path.display())),
        "want {}:{line}: in {err}",
        path.display()
    );
    assert!(err.contains("header_timeout_typo"), "{err}");
}

#[test]
fn check_reports_every_error_at_once() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let missing = pki.path().join("nope.crt");
    let text = Cfg::new(&pki, &up)
        .tls(&format!(
            "client_certificate = {}\nverify_client = \"sometimes\"\n",
            p(&missing)
        ))
        .render();
    let path = write(&pki, "bad.toml", &text);
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    let file = path.display().to_string();
    let vline = line_of(&text, "verify_client");
    let cline = line_of(&text, "client_certificate");
    assert!(
        err.lines().any(|l| l
            .contains(&format!("{file}:{vline}: listener[0].tls.verify_client: "))
            && l.contains("sometimes")),
        "bad verify_client not reported as file:line: key: message:\n{err}"
    );
    assert!(
        err.lines().any(|l| l.contains(&format!(
            "{file}:{cline}: listener[0].tls.client_certificate: "
        )) && l.contains("nope.crt")),
        "missing CA file not reported as file:line: key: message:\n{err}"
    );
    assert!(err.contains("2 configuration errors"), "{err}");
}

#[test]
fn check_reports_a_missing_certificate_file() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let text = Cfg::new(&pki, &up).render().replace(
        &p(&pki.server.cert),
        &p(&pki.path().join("missing-server.crt")),
    );
    let path = write(&pki, "nocert.toml", &text);
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&text, "missing-server.crt");
    assert!(
        err.contains(&format!(
            "{}:{line}: listener[0].tls.certificates[0].cert: ",
            path.display()
        )) && err.contains("missing-server.crt"),
        "{err}"
    );
}

/// A configuration or a file it names that is a device or a FIFO: an error at once, no hang.
#[test]
fn check_refuses_devices_and_fifos_without_hanging() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let text = Cfg::new(&pki, &up)
        .render()
        .replace(&p(&pki.server.cert), "\"/dev/zero\"")
        .replace(&p(&pki.ca.pem_path), "\"/dev/urandom\"");
    let path = write(&pki, "devices.toml", &text);
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    for needle in ["/dev/zero", "/dev/urandom"] {
        assert!(
            err.lines()
                .any(|l| l.contains(needle) && l.contains("not a regular file")),
            "{needle}: {err}"
        );
    }
    let (code, _, err) = check(std::path::Path::new("/dev/zero"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a regular file"), "{err}");
}

/// The access sections' mistakes: each named with its line and key, all in one run.
#[test]
fn check_reports_identity_rule_and_server_mistakes() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let text = format!(
        r#"[identity]
roles = [
  {{ role = "two", ou = "A", cn = "B" }},
  {{ role = "re", cn = {{ regex = "(" }} }},
]
bindings = [ {{ cn = "x", from = ["10.0.0.0/33"] }} ]

[[map]]
source = "$ssl_client_s_dn"
variable = "host"

[[listener]]
name = "a"
listen = "127.0.0.1:18443"
default_server = true
[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
client_certificate = {ca}
[listener.identity_headers]
subjectt = "X-DN"
[[listener.rule]]
if = "$remote_addr == 1"
return = 403
[[listener.location]]
path = "\\.php$"
match = "~"
proxy_pass = "http://{up}/x"

[[listener]]
name = "b"
listen = "127.0.0.1:18443"
default_server = true
[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
[[listener.location]]
path = "/"
return = 301

[[listener]]
name = "plain"
listen = "127.0.0.1:18443"
[[listener.location]]
path = "/admin"
allow_roles = ["admin"]
return = 204
"#,
        cert = p(&pki.server.cert),
        key = p(&pki.server.key),
        ca = p(&pki.ca.pem_path),
        up = up.addr,
    );
    let path = write(&pki, "access.toml", &text);
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    let at = |needle: &str| format!("{}:{}:", path.display(), line_of(&text, needle));
    for (needle, key, what) in [
        ("role = \"two\"", "identity.roles[0]", "exactly one field"),
        ("role = \"re\"", "identity.roles[1]", "not a valid regex"),
        ("bindings =", "identity.bindings[0].from", "prefix length"),
        (
            "variable = \"host\"",
            "map[0].variable",
            "built-in variable",
        ),
        (
            "subjectt",
            "identity_headers.subjectt",
            "unknown identity field",
        ),
        ("$remote_addr == 1", "rule[0].if", "not an operator"),
        (
            "proxy_pass = \"http://",
            "location[0].proxy_pass",
            "URI part in a regex location",
        ),
        ("return = 301", "location[0].return", "needs a body"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("no error for {key} in:\n{err}"));
        assert!(
            line.contains(&at(needle)),
            "{key}: want {} in {line}",
            at(needle)
        );
        assert!(line.contains(what), "{key}: want {what:?} in {line}");
    }
    for what in [
        "already has a default server",
        "servers on one address are all TLS or all plain",
        "need client certificates",
    ] {
        assert!(err.contains(what), "want {what:?} in:\n{err}");
    }
}

/// A value of the wrong TOML type: the key and the TOML types, not serde's Rust words.
#[test]
fn check_names_a_type_error_by_key_and_toml_type() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let text = Cfg::new(&pki, &up)
        .http("keepalive_requests = \"two\"")
        .render();
    let path = write(&pki, "types.toml", &text);
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    let want = format!(
        "  {}:{}: listener[0].http.keepalive_requests: expected an integer, found the string \"two\"",
        path.display(),
        line_of(&text, "keepalive_requests")
    );
    assert!(err.lines().any(|l| l == want), "want {want} in:\n{err}");
}

/// Both files of a certificate missing: both reported, in the order of the file's lines.
#[test]
fn check_reports_a_missing_key_beside_a_missing_certificate_and_crl() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let (cert, key, crl) = (
        pki.path().join("gone.crt"),
        pki.path().join("gone.key"),
        pki.path().join("gone.crl"),
    );
    let text = Cfg::new(&pki, &up)
        .tls(&format!(
            "client_certificate = {}\nverify_client = \"on\"\ncrl = [{}]\n",
            p(&pki.path().join("gone-ca.crt")),
            p(&crl)
        ))
        .render()
        .replace(&p(&pki.server.cert), &p(&cert))
        .replace(&p(&pki.server.key), &p(&key));
    let path = write(&pki, "gone.toml", &text);
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    let file = path.display();
    let enoent = "No such file or directory (os error 2)";
    let certs = line_of(&text, "gone.crt");
    let want = [
        format!(
            "  {file}:{certs}: listener[0].tls.certificates[0].cert: cannot read {}: {enoent}",
            cert.display()
        ),
        format!(
            "  {file}:{certs}: listener[0].tls.certificates[0].key: cannot read {}: {enoent}",
            key.display()
        ),
        format!(
            "  {file}:{}: listener[0].tls.client_certificate: cannot read {}: {enoent}",
            line_of(&text, "gone-ca.crt"),
            pki.path().join("gone-ca.crt").display()
        ),
        format!(
            "  {file}:{}: listener[0].tls.crl[0]: cannot read {}: {enoent}",
            line_of(&text, "gone.crl"),
            crl.display()
        ),
    ];
    let got: Vec<&str> = err.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(got, want, "{err}");
}
