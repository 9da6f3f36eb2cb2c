//! F18 and the doctor: `ringgate check` reports each finding about the configured material
//! (exit 0 with WARN lines, exit 2 with ERROR lines), `run` refuses loose key permissions
//! unless allowed, and logs its own certificates near expiry at start.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
};

use crate::support::ossl;
use crate::support::pki::{p, server_spec, Leaf, LeafSpec, Pki, Usage, Validity};
use crate::support::proxy::{check, Proxy, BIN};

/// A one-listener configuration serving `cert`/`key`, with `tls` lines and server names.
fn conf(cert: &Path, key: &Path, tls: &str, names: &str, runtime: &str) -> String {
    format!(
        r#"[runtime]
workers = 1
{runtime}

[[listener]]
name = "main"
listen = "127.0.0.1:0"
server_names = [{names}]

[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
{tls}

[[listener.location]]
path = "/"
return = 204
"#,
        cert = p(cert),
        key = p(key),
    )
}

/// Runs `ringgate check` on `text`; returns (exit code, stdout + stderr).
fn doctor(dir: &Path, name: &str, text: &str) -> (i32, String) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    let (code, out, err) = check(&path);
    (code, format!("{out}{err}"))
}

/// The output has a line with all of `needles`.
#[track_caller]
fn has_line(out: &str, needles: &[&str]) {
    assert!(
        out.lines().any(|l| needles.iter().all(|n| l.contains(n))),
        "no line with {needles:?} in:\n{out}"
    );
}

fn ca_pair(pki: &Pki) -> (PathBuf, PathBuf) {
    (pki.server.cert.clone(), pki.server.key.clone())
}

#[test]
fn key_permissions_are_refused_unless_allowed() {
    let pki = Pki::new();
    let (cert, key) = ca_pair(&pki);
    // (0644: others can read. A root-owned 0640 key is allowed, as PostgreSQL allows it.)
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let tls = format!("client_certificate = {}", p(&pki.ca.pem_path));
    let (code, out) = doctor(pki.path(), "loose.toml", &conf(&cert, &key, &tls, "", ""));
    assert_eq!(code, 2, "{out}");
    has_line(
        &out,
        &[
            "listener[0].tls.certificates[0].key",
            "readable by group or others (mode 644)",
            "chmod 600",
            "allow_insecure_key_permissions",
        ],
    );
    // `run` refuses too, with the same message, before listening.
    let path = pki.path().join("loose.toml");
    let mut child = std::process::Command::new(BIN)
        .args(["run", "-c"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "run did not refuse");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2));

    // Allowed: a warning from check and at start.
    let allowed = conf(
        &cert,
        &key,
        &tls,
        "",
        "allow_insecure_key_permissions = true",
    );
    let (code, out) = doctor(pki.path(), "allowed.toml", &allowed);
    assert_eq!(code, 0, "{out}");
    has_line(&out, &["WARN", "readable by group or others", "chmod 600"]);
    let proxy = Proxy::start(&allowed);
    proxy.assert_log(&["WARN", "readable by group or others (mode 644)"]);
}

#[test]
fn certificate_expiry_san_and_usage_findings() {
    let pki = Pki::new();
    let d = pki.path();
    let ca_tls = format!("client_certificate = {}", p(&pki.ca.pem_path));

    // The test PKI's server certificate expires in 30 days: a warning, logged at start too.
    let (cert, key) = ca_pair(&pki);
    let (code, out) = doctor(
        d,
        "soon.toml",
        &conf(&cert, &key, &ca_tls, "\"localhost\"", ""),
    );
    assert_eq!(code, 0, "{out}");
    has_line(
        &out,
        &[
            "WARN",
            "listener[0].tls.certificates[0].cert",
            "expires in",
            "days",
            "renew it",
        ],
    );
    has_line(&out, &["doctor: 0 errors"]);
    let proxy = Proxy::start(&conf(&cert, &key, &ca_tls, "\"localhost\"", ""));
    proxy.assert_log(&["WARN", "certificate CN=localhost expires in"]);
    drop(proxy);

    // Expired: an error.
    let expired = pki.ca.leaf(
        d,
        LeafSpec {
            validity: Validity::Expired,
            ..server_spec("expired", "localhost")
        },
    );
    let (code, out) = doctor(
        d,
        "expired.toml",
        &conf(&expired.cert, &expired.key, &ca_tls, "", ""),
    );
    assert_eq!(code, 2, "{out}");
    has_line(&out, &["ERROR", "expired at", "certificate has expired"]);

    // No SAN at all, and a SAN that does not name a configured server name.
    let nosan = pki.ca.leaf(
        d,
        LeafSpec {
            sans: vec![],
            ..server_spec("nosan", "app.example.com")
        },
    );
    let (code, out) = doctor(
        d,
        "nosan.toml",
        &conf(&nosan.cert, &nosan.key, &ca_tls, "\"app.example.com\"", ""),
    );
    assert_eq!(code, 0, "{out}");
    has_line(&out, &["WARN", "has no subjectAltName", "--san DNS:name"]);
    let (_, out) = doctor(
        d,
        "othername.toml",
        &conf(
            &cert,
            &key,
            &ca_tls,
            "\"localhost\", \"api.example.com\", \"~^re.*$\"",
            "",
        ),
    );
    has_line(
        &out,
        &[
            "WARN",
            "does not name server name `api.example.com`",
            "localhost",
        ],
    );
    assert!(!out.contains("server name `localhost`"), "{out}");

    // A server certificate whose EKU is clientAuth only: an error.
    let wrong = pki.ca.leaf(
        d,
        LeafSpec {
            usage: Usage::Client,
            ..server_spec("wrongeku", "localhost")
        },
    );
    let (code, out) = doctor(
        d,
        "eku.toml",
        &conf(&wrong.cert, &wrong.key, &ca_tls, "", ""),
    );
    assert_eq!(code, 2, "{out}");
    has_line(
        &out,
        &[
            "ERROR",
            "without serverAuth",
            "unsuitable certificate purpose",
        ],
    );

    // A CA without keyCertSign: an error.
    let key_pair = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "No Cert Sign CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let bad_ca = d.join("nocertsign.crt");
    std::fs::write(&bad_ca, params.self_signed(&key_pair).expect("ca").pem()).expect("write");
    let (code, out) = doctor(
        d,
        "ku.toml",
        &conf(
            &cert,
            &key,
            &format!("client_certificate = {}", p(&bad_ca)),
            "",
            "",
        ),
    );
    assert_eq!(code, 2, "{out}");
    has_line(
        &out,
        &[
            "ERROR",
            "listener[0].tls.client_certificate",
            "lacks keyCertSign",
        ],
    );
}

#[test]
fn depth_and_crl_findings() {
    let pki = Pki::new();
    let d = pki.path();
    let (cert, key) = ca_pair(&pki);
    let int = pki.ca.intermediate(d, "int", "Doctor Intermediate");
    let bundle = d.join("bundle.crt");
    std::fs::write(
        &bundle,
        format!(
            "{}{}",
            std::fs::read_to_string(&pki.ca.pem_path).expect("ca"),
            std::fs::read_to_string(&int.pem_path).expect("int")
        ),
    )
    .expect("bundle");
    // Clients under the intermediate need verify_depth >= 1.
    let (code, out) = doctor(
        d,
        "depth.toml",
        &conf(
            &cert,
            &key,
            &format!("client_certificate = {}\nverify_depth = 0", p(&bundle)),
            "",
            "",
        ),
    );
    assert_eq!(code, 0, "{out}");
    has_line(
        &out,
        &[
            "WARN",
            "CN=Doctor Intermediate",
            "need verify_depth >= 1",
            "verify_depth = 0",
        ],
    );

    let now = time::OffsetDateTime::now_utc();
    let crl = |file: &str, next_days: i64| {
        let pem = CertificateRevocationListParams {
            this_update: now - time::Duration::days(10),
            next_update: now + time::Duration::days(next_days),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&pki.ca.signer)
        .expect("crl")
        .pem()
        .expect("pem");
        let path = d.join(file);
        std::fs::write(&path, pem).expect("write");
        path
    };
    let fresh = crl("fresh.crl", 30);
    let soon = crl("soon.crl", 2);
    let old = crl("old.crl", -1);
    let tls = |crl: &Path, extra: &str| {
        format!(
            "client_certificate = {}\ncrl = [{}]\n{extra}",
            p(&bundle),
            p(crl)
        )
    };
    // The intermediate has no CRL under crl_require_all: an error; the policy is reported.
    let (code, out) = doctor(
        d,
        "nocrl.toml",
        &conf(&cert, &key, &tls(&fresh, ""), "", ""),
    );
    assert_eq!(code, 2, "{out}");
    has_line(
        &out,
        &[
            "ERROR",
            "CN=Doctor Intermediate",
            "has no CRL while crl_require_all = true",
            "unable to get certificate CRL",
        ],
    );
    has_line(
        &out,
        &[
            "INFO",
            "revocation checked against 1 CRL",
            "crl_require_all = true",
            "crl_expired = refuse",
        ],
    );
    let (code, out) = doctor(
        d,
        "lax.toml",
        &conf(&cert, &key, &tls(&fresh, "crl_require_all = false"), "", ""),
    );
    assert_eq!(code, 0, "{out}");
    has_line(
        &out,
        &[
            "crl_require_all = false",
            "CAs without a CRL are not checked",
        ],
    );
    // Near expiry: a warning; expired: an error, or a warning within the grace.
    let (_, out) = doctor(
        d,
        "soon.toml",
        &conf(&cert, &key, &tls(&soon, "crl_require_all = false"), "", ""),
    );
    has_line(
        &out,
        &["WARN", "soon.crl", "expires in", "publish a new one"],
    );
    let (code, out) = doctor(
        d,
        "old.toml",
        &conf(&cert, &key, &tls(&old, "crl_require_all = false"), "", ""),
    );
    assert_eq!(code, 2, "{out}");
    has_line(
        &out,
        &["ERROR", "old.crl", "expired at", "(CRL has expired)"],
    );
    let (code, out) = doctor(
        d,
        "grace.toml",
        &conf(
            &cert,
            &key,
            &tls(&old, "crl_require_all = false\ncrl_expired = \"2d\""),
            "",
            "",
        ),
    );
    assert_eq!(code, 0, "{out}");
    has_line(
        &out,
        &["WARN", "old.crl", "accepted within the crl_expired grace"],
    );
    // A malformed policy is a configuration error naming the key.
    let (code, out) = doctor(
        d,
        "badpolicy.toml",
        &conf(
            &cert,
            &key,
            &tls(&fresh, "crl_expired = \"sometimes\""),
            "",
            "",
        ),
    );
    assert_eq!(code, 2, "{out}");
    has_line(&out, &["listener[0].tls.crl_expired", "`sometimes`"]);
}

/// X.509 v1 certificates, as `openssl x509 -req` makes them: accepted, with a
/// warning that says nginx accepts them too but browsers do not.
#[test]
fn v1_certificates_are_reported() {
    if !ossl::available("v1_certificates_are_reported") {
        return;
    }
    let pki = Pki::new();
    let d = pki.path();
    // The nginx TLS-termination guide's self-signed server certificate.
    ossl::sh(
        d,
        "openssl genpkey -algorithm RSA -out v1.key 2>/dev/null
         openssl req -new -key v1.key -out v1.csr -subj /CN=localhost
         openssl x509 -req -days 365 -in v1.csr -signkey v1.key -out v1.crt 2>/dev/null",
    );
    let v1 = Leaf {
        cert: d.join("v1.crt"),
        key: d.join("v1.key"),
    };
    let (code, out) = doctor(
        d,
        "v1.toml",
        &conf(
            &v1.cert,
            &v1.key,
            &format!("client_certificate = {}", p(&v1.cert)),
            "",
            "",
        ),
    );
    assert_eq!(code, 0, "{out}");
    has_line(
        &out,
        &[
            "WARN",
            "listener[0].tls.certificates[0].cert",
            "X.509 v1",
            "nginx/OpenSSL accept it",
            "browsers",
        ],
    );
    // A self-signed v1 CA (the nginx TLS-termination guide uses the certificate as its own CA)
    // is not a finding.
    assert!(
        !out.lines()
            .any(|l| l.contains("client_certificate") && l.contains("X.509 v1")),
        "{out}"
    );
}

/// A self-signed server certificate for localhost and its key (mode `key_mode`), valid
/// 1975-4096 (rcgen's default) or expired since 2000.
fn lasting_pair(dir: &Path, name: &str, key_mode: u32, expired: bool) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    if expired {
        params.not_before = rcgen::date_time_ymd(1999, 1, 1);
        params.not_after = rcgen::date_time_ymd(2000, 1, 1);
    }
    let cert = params.self_signed(&key).expect("self-sign");
    let (cert_path, key_path) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    crate::support::pki::write_key(&key_path, &key.serialize_pem());
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(key_mode)).expect("chmod");
    (cert_path, key_path)
}

/// Runs ringgate with `args`; returns (exit code, stdout, stderr).
fn ringgate(args: &[&str], path: &Path) -> (i32, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg(path)
        .output()
        .expect("run ringgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The note for a root-owned, group-readable key that ringgate (as root) reads as its owner.
fn group_note(key: &Path, gid: u32) -> String {
    format!("INFO  listener[0].tls.certificates[0].key: {k}: private key readable by its group (gid {gid}, mode 440, owned by root): allowed, as for a Kubernetes secret volume with fsGroup; ringgate (uid 0) does not read it through that group, so `chmod g-r {k}` would keep it from the group's other members\n", k = key.display())
}

#[test]
fn root_owned_group_readable_key_is_served_without_a_warning() {
    use std::os::unix::fs::MetadataExt;
    // A Kubernetes secret volume with fsGroup and defaultMode: 0440: owner root, mode 0440.
    // The tests run as root, so the key they write is root-owned, as the kubelet writes it.
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = lasting_pair(dir.path(), "server", 0o440, false);
    let path = dir.path().join("k8s.toml");
    std::fs::write(&path, conf(&cert, &key, "", "", "")).expect("write config");
    let (code, out, err) = ringgate(&["check", "-c"], &path);
    let meta = std::fs::metadata(&key).expect("stat key");
    if meta.uid() != 0 {
        // Not root: the key is the test user's own, and group read is refused on it.
        assert_eq!(code, 2, "{out}{err}");
        let expected = format!("is readable by group or others (mode 440, owned by uid {}; only a key owned by root may be read by its group)", meta.uid());
        assert!(err.contains(&expected), "{err}");
        return;
    }
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            0,
            format!(
                "{}: configuration is valid (1 listener, 0 upstreams)\n{}doctor: 0 errors, 0 warnings\n",
                path.display(),
                group_note(&key, meta.gid())
            )
            .as_str(),
            ""
        )
    );
}

#[test]
fn doctor_command_prints_the_findings_alone() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // The findings and the summary, without the "configuration is valid" line; exit 0.
    let (cert, key) = lasting_pair(d, "shared", 0o440, false);
    let meta = std::fs::metadata(&key).expect("stat key");
    let shared = d.join("shared.toml");
    std::fs::write(&shared, conf(&cert, &key, "", "", "")).expect("write config");
    if meta.uid() == 0 {
        let (code, out, err) = ringgate(&["doctor", "-c"], &shared);
        let expected = format!(
            "{}doctor: 0 errors, 0 warnings\n",
            group_note(&key, meta.gid())
        );
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, expected.as_str(), "")
        );
    }
    // An error finding: exit 2.
    let (cert, key) = lasting_pair(d, "expired", 0o600, true);
    let expired = d.join("expired.toml");
    std::fs::write(&expired, conf(&cert, &key, "", "", "")).expect("write config");
    let (code, out, err) = ringgate(&["doctor", "-c"], &expired);
    assert_eq!(code, 2, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!(
            "ERROR listener[0].tls.certificates[0].cert: {}: certificate CN=rcgen self signed cert expired at 2000-01-01T00:00:00Z: ",
            cert.display()
        )),
        "{out}"
    );
    assert_eq!(lines[1], "doctor: 1 error, 0 warnings");
    assert_eq!(err, "");
    // A configuration that does not load: its errors, exit 2, as `check`.
    let missing = d.join("missing.toml");
    std::fs::write(&missing, conf(&d.join("none.crt"), &key, "", "", "")).expect("write");
    let (code, out, err) = ringgate(&["doctor", "-c"], &missing);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("none.crt"), "{err}");
}

#[test]
fn check_nginx_config_prints_every_warning_in_one_format() {
    // The importer's warning (`user`) and the loader's (a `root` that is not a directory)
    // both go to the log: `TIME WARN  [main] message`, never one bare and one timestamped.
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        "user www-data;\nevents {}\nhttp {\n  server {\n    listen 127.0.0.1:0;\n    location / { root /nonexistent-ringgate-root; }\n  }\n}\n",
    )
    .expect("write nginx.conf");
    let (code, out, err) = ringgate(&["check", "--nginx-config"], &conf);
    assert_eq!(code, 0, "{out}{err}");
    let messages: Vec<&str> = err
        .lines()
        .map(|l| {
            let (time, rest) = l.split_once(' ').unwrap_or_default();
            let bytes = time.as_bytes();
            assert!(
                bytes.len() == 20 && bytes[10] == b'T' && bytes[19] == b'Z',
                "not timestamped: {l}"
            );
            rest.strip_prefix("WARN  [main] ")
                .unwrap_or_else(|| panic!("not a WARN line: {l}"))
        })
        .collect();
    assert_eq!(
        messages,
        [
            format!("{}:1: warning: user: ignored: ringgate runs as the user that starts it; set the user in the service manager", conf.display()).as_str(),
            "listener[0].location[0].root: /nonexistent-ringgate-root is not a directory; requests there will get 404",
        ]
    );
}

#[test]
fn a_tls_upstream_without_a_pool_is_noted() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = ca_pair(&pki);
    let upstream = |name: &str, keepalive: &str| {
        format!(
            "\n[[upstream]]\nname = \"{name}\"\nservers = [\"127.0.0.1:9\"]\n{keepalive}\n[upstream.tls]\ntrusted_certificate = {}\nname = \"localhost\"\n",
            p(&pki.ca.pem_path)
        )
    };
    let text = format!(
        "{}{}{}{}",
        conf(&cert, &key, "", "", ""),
        upstream("unpooled", "keepalive = 0"),
        upstream("pooled", "keepalive = 8"),
        upstream("default", ""),
    );
    let (code, out) = doctor(dir.path(), "pool.toml", &text);
    assert_eq!(code, 0, "{out}");
    has_line(
        &out,
        &[
            "INFO",
            "upstream[0].keepalive",
            "upstream `unpooled`: TLS with keepalive = 0: every request opens a connection and makes a TLS handshake",
        ],
    );
    let noted = out.lines().filter(|l| l.contains(".keepalive:")).count();
    assert_eq!(noted, 1, "only the unpooled upstream is noted:\n{out}");
}
