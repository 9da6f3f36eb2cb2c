//! F15: the access log, as nginx writes it: the enterprise mTLS guide's `log_format` as
//! written, nginx's `combined`, ringgate's default line with the identity and the access
//! decision, JSON, and a reopen on SIGUSR1 for logrotate.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::client;
use crate::support::pki::{p, Pki};
use crate::support::upstream::{Mode, Upstream};
use crate::support::{client_for, Cfg};

/// Waits until `path` holds `n` lines (the writer flushes every half second).
pub(crate) fn lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {} lines, want {n}:\n{text}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn client_verify_log_format_works_as_written() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("ssl_access.log");
    let text = Cfg::new(&pki, &up)
        .tls(&format!(
            "client_certificate = {}\nverify_client = \"optional\"\n",
            p(&pki.ca.pem_path)
        ))
        .render()
        .replace(
            "[listener.tls]",
            &format!(
                "access_log = {{ path = {}, format = \"ssl_log\" }}\n\n[listener.tls]",
                p(&log)
            ),
        )
        + "\n[log_format]\nssl_log = '$remote_addr [$time_local] ClientVerify:$ssl_client_verify DN:$ssl_client_s_dn'\n";
    let proxy = crate::support::proxy::Proxy::start(&text);
    assert_eq!(
        client::get(proxy.addr(), &client_for(&pki, Some(&pki.client)), "/a").status,
        200
    );
    assert_eq!(
        client::get(proxy.addr(), &client_for(&pki, None), "/b").status,
        200
    );
    let got = lines(&log, 2);
    let re = |line: &str, dn: &str, verify: &str| {
        let (addr, rest) = line.split_once(" [").expect("addr [");
        assert_eq!(addr, "127.0.0.1", "{line}");
        let (time, rest) = rest.split_once("] ").expect("time ]");
        assert_eq!(time.len(), "25/Nov/2026:10:00:00 +0000".len(), "{line}");
        assert!(time.ends_with(" +0000"), "{line}");
        assert_eq!(rest, format!("ClientVerify:{verify} DN:{dn}"), "{line}");
    };
    re(&got[0], crate::support::pki::CLIENT_DN, "SUCCESS");
    re(&got[1], "-", "NONE");
}

#[test]
fn default_json_and_combined_formats() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let dir = tempfile::tempdir().expect("tempdir");
    let (default, json, combined) = (
        dir.path().join("default.log"),
        dir.path().join("json.log"),
        dir.path().join("combined.log"),
    );
    let text = format!(
        r#"[runtime]
workers = 2

[identity]
roles = [ {{ role = "eng", ou = "Eng" }} ]

[[listener]]
name = "main"
listen = "127.0.0.1:0"
access_log = {{ path = {default} }}
[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
client_certificate = {ca}
verify_client = "on"
[[listener.location]]
path = "/"
proxy_pass = "http://app"
[[listener.location]]
path = "/admin"
allow_roles = ["admin"]
proxy_pass = "http://app"

[[listener]]
name = "json"
listen = "127.0.0.1:0"
access_log = {{ path = {json}, format = "json" }}
[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
client_certificate = {ca}
verify_client = "on"
[[listener.location]]
path = "/"
proxy_pass = "http://app"

[[listener]]
name = "plain"
listen = "127.0.0.1:0"
access_log = {{ path = {combined}, format = "combined" }}
[[listener.location]]
path = "/"
return = {{ status = 200, body = "hi" }}

[[upstream]]
name = "app"
servers = [{up}]
"#,
        default = p(&default),
        json = p(&json),
        combined = p(&combined),
        cert = p(&pki.server.cert),
        key = p(&pki.server.key),
        ca = p(&pki.ca.pem_path),
        up = up.server(),
    );
    let proxy = crate::support::proxy::Proxy::start(&text);
    let alice = client_for(&pki, Some(&pki.client));
    assert_eq!(
        client::get(proxy.addr_of("main"), &alice, "/x?y=1").status,
        200
    );
    assert_eq!(
        client::get(proxy.addr_of("main"), &alice, "/admin/x").status,
        403
    );
    // Two workers flush their own buffers: lines may come in either order.
    let l = lines(&default, 2);
    let find = |needle: &str| {
        l.iter()
            .find(|x| x.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}: {l:?}"))
            .clone()
    };
    let l = [find("GET /x?y=1"), find("GET /admin/x")];
    assert!(
        l[0].starts_with("127.0.0.1 [")
            && l[0].contains("] \"GET /x?y=1 HTTP/1.1\" 200 ")
            && l[0].contains(" host=localhost tls=TLSv1.3 verify=SUCCESS dn=\"CN=alice,OU=Eng,O=Acme,C=US\" role=eng decision=\"allow role=eng\" upstream=127.0.0.1:")
            && l[0].contains(" upstream_status=200 upstream_time=0."),
        "{}",
        l[0]
    );
    assert!(
        l[1].contains("\"GET /admin/x HTTP/1.1\" 403 ")
            && l[1].contains("decision=\"deny: role `eng` of CN=alice,OU=Eng,O=Acme,C=US is not among the roles location `/admin` admits [admin]\"")
            && l[1].contains("upstream=- upstream_status=- upstream_time=-"),
        "{}",
        l[1]
    );

    assert_eq!(client::get(proxy.addr_of("json"), &alice, "/j").status, 200);
    let j = lines(&json, 1);
    let v: serde_json::Value = serde_json::from_str(&j[0]).expect("one JSON object per line");
    assert_eq!(v["request"], "GET /j HTTP/1.1");
    assert_eq!(v["status"], "200");
    assert_eq!(v["ssl_client_verify"], "SUCCESS");
    assert_eq!(v["ssl_client_s_dn"], crate::support::pki::CLIENT_DN);
    assert_eq!(v["role"], "eng");
    assert_eq!(v["decision"], "allow role=eng");

    let (code, out, err) = crate::support::curl(&[
        "-A",
        "agent \"quoted\"",
        &format!("http://127.0.0.1:{}/c", proxy.addr_of("plain").port()),
    ]);
    assert_eq!((code, out.as_str()), (0, "hi"), "{err}");
    let c = lines(&combined, 1);
    assert!(
        c[0].starts_with("127.0.0.1 - - [")
            && c[0].ends_with("] \"GET /c HTTP/1.1\" 200 2 \"-\" \"agent \\x22quoted\\x22\""),
        "{}",
        c[0]
    );
}

/// logrotate moves the file and sends SIGUSR1: new lines go to a new file at the old path.
#[test]
fn sigusr1_reopens_the_access_log() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let text = Cfg::new(&pki, &up).render().replace(
        "[listener.tls]",
        &format!("access_log = {{ path = {} }}\n\n[listener.tls]", p(&log)),
    );
    let proxy = crate::support::proxy::Proxy::start(&text);
    let alice = client_for(&pki, Some(&pki.client));
    assert_eq!(client::get(proxy.addr(), &alice, "/before").status, 200);
    lines(&log, 1);
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    let _ = std::process::Command::new("kill")
        .args(["-USR1", &proxy.pid.to_string()])
        .status();
    proxy.assert_log(&["SIGUSR1: reopening log files"]);
    proxy.assert_log(&["reopened 1 access log file(s)"]);
    assert_eq!(client::get(proxy.addr(), &alice, "/after").status, 200);
    let after = lines(&log, 1);
    assert!(after[0].contains("GET /after"), "{after:?}");
    let before = std::fs::read_to_string(&rotated).expect("rotated file");
    assert!(
        before.contains("GET /before") && !before.contains("/after"),
        "{before}"
    );
}
