//! `ringgate demo`: a working mTLS proxy in one command, for a first look on a fresh machine.
//!
//! It makes a CA, a server certificate for localhost and one client certificate per role of the
//! enterprise mTLS guide's role model (OU Client, Admin, Ops, Gateway) with rcgen, starts a small echo upstream
//! inside the process, writes a configuration next to the certificates, prints the curl
//! commands to try, and serves until Ctrl-C.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The roles the demo issues client certificates for (the enterprise mTLS guide's roles, read from the OU).
pub const ROLES: [&str; 4] = ["Client", "Admin", "Ops", "Gateway"];

/// Runs the demo on `port` (0 = any free port), writing material into `dir` or a temp folder.
pub fn run(port: u16, dir: Option<PathBuf>) -> Result<()> {
    // A folder of our own (not one given with --dir) holds private keys: it goes when the demo
    // stops, however it stops.
    let (dir, _cleanup) = match dir {
        Some(d) => (d, None),
        None => {
            let d = std::env::temp_dir().join(format!("ringgate-demo-{}", std::process::id()));
            (d.clone(), Some(RemoveOnDrop(d)))
        }
    };
    let fate = if _cleanup.is_some() {
        "removed when the demo stops"
    } else {
        "kept: --dir"
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    make_pki(&dir)?;
    let upstream = start_echo_upstream()?;
    let config_path = dir.join("ringgate.toml");
    std::fs::write(&config_path, demo_config(&dir, port, upstream))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = crate::config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let d = dir.display();
    let p = if port == 0 {
        "PORT".to_string()
    } else {
        port.to_string()
    };
    println!("ringgate demo: certificates, keys and config in {d} ({fate})");
    println!("echo upstream on 127.0.0.1:{upstream}; try (Ctrl-C stops the demo):\n");
    println!(
        "  curl --cacert {d}/ca.crt https://localhost:{p}/public/    # no certificate needed here"
    );
    println!("  curl --cacert {d}/ca.crt https://localhost:{p}/api/       # 401: a certificate is required");
    println!("  curl --cacert {d}/ca.crt --cert {d}/client.crt --key {d}/client.key https://localhost:{p}/api/");
    println!("  curl --cacert {d}/ca.crt --cert {d}/client.crt --key {d}/client.key https://localhost:{p}/admin/   # 403: role client");
    println!("  curl --cacert {d}/ca.crt --cert {d}/admin.crt --key {d}/admin.key https://localhost:{p}/admin/");
    println!("  curl --cacert {d}/ca.crt --cert {d}/gateway.crt --key {d}/gateway.key https://localhost:{p}/ops/");
    println!("  openssl s_client -connect 127.0.0.1:{p} -cert {d}/ops.crt -key {d}/ops.key -CAfile {d}/ca.crt\n");
    crate::server::logging::init(config.runtime.log_level);
    let path = config_path.clone();
    let loader: crate::server::reload::Loader =
        Box::new(move || crate::config::load(&path).map_err(|e| e.to_string()));
    crate::server::run(config, loader)?;
    Ok(())
}

/// Removes the demo's own folder (certificates, private keys, config) when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.0) {
            Ok(()) => eprintln!("ringgate demo: removed {}", self.0.display()),
            Err(e) => eprintln!(
                "ringgate demo: could not remove {} ({e}); it holds private keys",
                self.0.display()
            ),
        }
    }
}

fn write_key(path: &Path, pem: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(pem.as_bytes())?;
    Ok(())
}

/// A subject with exactly these attributes in this order, as `openssl req -subj "/O=../CN=.."`
/// writes it (rcgen's default holds a CommonName that a later push would keep in first place,
/// printing `OU=Client,O=MyCompany,CN=client1` instead of nginx's `CN=client1,OU=Client,...`).
fn subject(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (kind, value) in parts {
        dn.push(kind.clone(), *value);
    }
    dn
}

/// Writes ca.crt, server.crt/key and <role>.crt/key (lowercase role) into `dir`.
pub fn make_pki(dir: &Path) -> Result<()> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = subject(&[
        (DnType::OrganizationName, "ringgate demo"),
        (DnType::CommonName, "ringgate demo CA"),
    ]);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    std::fs::write(dir.join("ca.crt"), ca_cert.pem())?;
    let ca = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".to_string()])?;
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    server.distinguished_name = subject(&[(DnType::CommonName, "localhost")]);
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &ca)?;
    std::fs::write(dir.join("server.crt"), server_cert.pem())?;
    write_key(&dir.join("server.key"), &server_key.serialize_pem())?;

    for role in ROLES {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        let cn = format!("{}1", role.to_lowercase());
        p.distinguished_name = subject(&[
            (DnType::OrganizationName, "MyCompany"),
            (DnType::OrganizationalUnitName, role),
            (DnType::CommonName, &cn),
        ]);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &ca)?;
        let name = role.to_lowercase();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem())?;
        write_key(&dir.join(format!("{name}.key")), &key.serialize_pem())?;
    }
    Ok(())
}

fn demo_config(dir: &Path, port: u16, upstream: u16) -> String {
    let d = dir.display();
    format!(
        r#"# Written by `ringgate demo`.
[runtime]
workers = 1

# The enterprise mTLS guide's role model: the role comes from the certificate's OU.
[identity]
default_role = "none"
roles = [
  {{ role = "client", ou = "Client" }},
  {{ role = "admin", ou = "Admin" }},
  {{ role = "ops", ou = "Ops" }},
  {{ role = "gateway", ou = "Gateway" }},
]

[[listener]]
name = "demo"
listen = "127.0.0.1:{port}"
server_names = ["localhost"]

[listener.tls]
certificates = [{{ cert = "{d}/server.crt", key = "{d}/server.key" }}]
client_certificate = "{d}/ca.crt"
verify_client = "on"
verify_depth = 1

# Set by ringgate only: client-sent copies are always removed.
[listener.identity_headers]
subject = "X-SSL-Client-DN"
verify = "X-SSL-Client-Verify"
role = "X-Client-Role"

[[listener.location]]
path = "/public/"
verify_client = "off"
proxy_pass = "http://echo"

[[listener.location]]
path = "/api/"
allow_roles = ["client", "gateway"]
proxy_pass = "http://echo"

[[listener.location]]
path = "/admin/"
allow_roles = ["admin", "gateway"]
proxy_pass = "http://echo"

[[listener.location]]
path = "/ops/"
allow_roles = ["ops", "gateway"]
proxy_pass = "http://echo"

[[listener.location]]
path = "/"
proxy_pass = "http://echo"
set_header = {{ Host = "$host" }}

[[upstream]]
name = "echo"
servers = ["127.0.0.1:{upstream}"]
keepalive = 16
"#
    )
}

/// Starts a tiny HTTP/1.1 upstream that answers every request with what it received.
fn start_echo_upstream() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot start the echo upstream")?;
    let port = listener.local_addr()?.port();
    std::thread::Builder::new()
        .name("demo-upstream".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = std::thread::Builder::new().spawn(move || echo_connection(conn));
            }
        })?;
    Ok(port)
}

fn echo_connection(conn: TcpStream) {
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut out = write_half;
    loop {
        let mut head = String::new();
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
            let end = line == "\r\n";
            head.push_str(&line);
            if end {
                break;
            }
        }
        let mut body = vec![0u8; content_length.min(1 << 20)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let text = format!("upstream received:\n{head}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject_of(path: &Path) -> String {
        let der = crate::x509::pem::load_certs(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        crate::x509::identity::rfc2253(cert.subject())
    }

    #[test]
    fn demo_subjects_print_as_the_enterprise_guides_openssl_commands_make_them() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        make_pki(d.path()).unwrap_or_else(|e| panic!("pki: {e}"));
        assert_eq!(
            subject_of(&d.path().join("client.crt")),
            "CN=client1,OU=Client,O=MyCompany"
        );
        assert_eq!(
            subject_of(&d.path().join("admin.crt")),
            "CN=admin1,OU=Admin,O=MyCompany"
        );
        assert_eq!(
            subject_of(&d.path().join("ca.crt")),
            "CN=ringgate demo CA,O=ringgate demo"
        );
        assert_eq!(subject_of(&d.path().join("server.crt")), "CN=localhost");
    }
}
