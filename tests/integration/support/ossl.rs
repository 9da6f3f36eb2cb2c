//! The openssl CLI and `ringgate ca` as the tests drive them: the enterprise mTLS guide's CA
//! layout (section 2) and commands (section 3), verbatim, in a temporary folder.

use std::path::Path;
use std::process::Command;

use super::proxy::BIN;

/// True when openssl can be run; otherwise prints why the calling test is skipped.
pub fn available(test: &str) -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED {test}: `openssl` is not installed");
    }
    ok
}

/// Runs a bash script in `dir` (errexit, pipefail); returns (success, stdout + stderr).
pub fn try_sh(dir: &Path, script: &str) -> (bool, String) {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("RINGGATE", BIN)
        .output()
        .expect("run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Like [`try_sh`], failing the test when the script fails.
#[track_caller]
pub fn sh(dir: &Path, script: &str) -> String {
    let (ok, text) = try_sh(dir, script);
    assert!(ok, "script failed:\n{script}\n---\n{text}");
    text
}

/// Runs `ringgate ARGS` in `dir`; returns (exit code, stdout, stderr).
pub fn ringgate(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ringgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The enterprise mTLS guide's section 2 openssl.cnf snippet, verbatim but for `dir`.
pub fn guide_cnf(ca_dir: &Path) -> String {
    format!(
        "[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.crt
serial = $dir/serial
private_key = $dir/private/ca.key
default_md = sha256
policy = policy_any
[ policy_any ]
commonName = supplied
",
        ca_dir.display()
    )
}

/// The enterprise mTLS guide's sections 2 and 3 in `root` (standing for /etc/nginx/ssl): the
/// CA directory layout, the root CA, the server certificate and client1 (X.509 v1, made by
/// `openssl x509 -req -CA`), with the guide's commands; plus `client2` made the same way
/// (section 3.3 with another name), and `openssl.cnf` in ca/.
pub fn enterprise_mtls_pki(root: &Path) {
    sh(
        root,
        r#"
mkdir -p ca server client client2
# 2. Certificate Authority Design
mkdir -p ca/{certs,crl,newcerts,private}
chmod 700 ca/private
touch ca/index.txt
echo 1000 > ca/serial
# 3.1 Create the Root CA
openssl genrsa -out ca/ca.key 4096
openssl req -new -x509 -days 3650 \
  -key ca/ca.key \
  -out ca/ca.crt \
  -subj "/C=CN/ST=Beijing/L=Beijing/O=MyCompany/OU=CA/CN=MyRootCA"
# 3.2 Server Certificate
openssl genrsa -out server/server.key 2048
openssl req -new -key server/server.key \
  -out server/server.csr \
  -subj "/C=CN/O=MyCompany/OU=Web/CN=server.example.com"
openssl x509 -req -days 365 \
  -in server/server.csr \
  -CA ca/ca.crt \
  -CAkey ca/ca.key \
  -CAcreateserial \
  -out server/server.crt \
  -extfile <(printf "subjectAltName=DNS:server.example.com,IP:127.0.0.1")
# 3.3 Client Certificate
openssl genrsa -out client/client.key 2048
openssl req -new -key client/client.key \
  -out client/client.csr \
  -subj "/C=CN/O=MyCompany/OU=Client/CN=client1"
openssl x509 -req -days 365 \
  -in client/client.csr \
  -CA ca/ca.crt -CAkey ca/ca.key \
  -CAcreateserial -out client/client.crt
# 3.3 again for a second client
openssl genrsa -out client2/client.key 2048
openssl req -new -key client2/client.key \
  -out client2/client.csr \
  -subj "/C=CN/O=MyCompany/OU=Client/CN=client2"
openssl x509 -req -days 365 \
  -in client2/client.csr \
  -CA ca/ca.crt -CAkey ca/ca.key \
  -CAcreateserial -out client2/client.crt
"#,
    );
    std::fs::write(root.join("ca/openssl.cnf"), guide_cnf(&root.join("ca"))).expect("cnf");
}

/// An 80-byte session ticket key file (as `openssl rand 80 > FILE`).
pub fn ticket_key(path: &Path) {
    use std::io::Read;
    let mut key = [0u8; 80];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .expect("urandom");
    std::fs::write(path, key).expect("write ticket key");
}
