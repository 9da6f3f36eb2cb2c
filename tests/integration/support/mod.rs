//! Shared support: certificates, the proxy process, a recording upstream, a TLS client.

#![allow(dead_code)]

pub mod client;
pub mod nginx;
pub mod ossl;
pub mod pki;
pub mod proxy;
pub mod upstream;
pub mod ws;

use std::path::Path;

use pki::{p, Pki};

/// mTLS over a `ringgate ca` directory `d/ca` (its CA, and the server certificate `localhost`
/// issued there), `/` proxied to `up`: `workers` workers, `runtime` lines under `[runtime]`
/// (other sections may follow them), `tls` lines under `[listener.tls]`.
pub fn ca_dir_config(
    d: &Path,
    up: &upstream::Upstream,
    workers: usize,
    runtime: &str,
    tls: &str,
) -> String {
    format!(
        r#"[runtime]
workers = {workers}
{runtime}

[[listener]]
name = "main"
listen = "127.0.0.1:0"

[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
client_certificate = {ca}
{tls}

[[listener.location]]
path = "/"
proxy_pass = "http://app"

[[upstream]]
name = "app"
servers = [{up}]
"#,
        cert = p(&d.join("ca/certs/localhost.crt")),
        key = p(&d.join("ca/private/localhost.key")),
        ca = p(&d.join("ca/ca.crt")),
        up = up.server()
    )
}

/// A configuration for one TLS listener `main` in front of one upstream `app`.
pub struct Cfg<'a> {
    pub pki: &'a Pki,
    pub upstream: String,
    pub workers: usize,
    /// Extra lines in `[listener.tls]` (client_certificate/verify_client included here).
    pub tls: String,
    /// Lines in `[listener.http]`.
    pub http: String,
    /// Whole `[[listener.location]]` blocks; a default `/` -> `http://app` when empty.
    pub locations: String,
    /// Extra lines in `[[upstream]]`.
    pub up: String,
    pub runtime: String,
    /// Extra lines in `[[listener]]`, before `[listener.tls]` (`http2`, `access_log`,
    /// `identity_headers = { ... }`).
    pub listener: String,
}

impl<'a> Cfg<'a> {
    /// mTLS with `verify_client = "on"` against the test CA, `/` proxied to `app`.
    pub fn new(pki: &'a Pki, upstream: &upstream::Upstream) -> Self {
        Cfg::with_upstream(pki, upstream.server())
    }

    /// As [`Cfg::new`], in front of any upstream server (`"IP:PORT"`, quoted for TOML): the
    /// python WebSocket echo, a test's own listener.
    pub fn with_upstream(pki: &'a Pki, server: String) -> Self {
        Cfg {
            pki,
            upstream: server,
            workers: 1,
            tls: format!(
                "client_certificate = {}\nverify_client = \"on\"\n",
                p(&pki.ca.pem_path)
            ),
            http: String::new(),
            locations: String::new(),
            up: String::new(),
            runtime: String::new(),
            listener: String::new(),
        }
    }

    pub fn tls(mut self, s: &str) -> Self {
        self.tls = s.to_string();
        self
    }
    pub fn http(mut self, s: &str) -> Self {
        self.http = s.to_string();
        self
    }
    pub fn locations(mut self, s: &str) -> Self {
        self.locations = s.to_string();
        self
    }
    pub fn up(mut self, s: &str) -> Self {
        self.up = s.to_string();
        self
    }
    pub fn runtime(mut self, s: &str) -> Self {
        self.runtime = s.to_string();
        self
    }
    pub fn listener(mut self, s: &str) -> Self {
        self.listener = s.to_string();
        self
    }

    pub fn render(&self) -> String {
        let locations = if self.locations.is_empty() {
            "[[listener.location]]\npath = \"/\"\nproxy_pass = \"http://app\"\n".to_string()
        } else {
            self.locations.clone()
        };
        format!(
            r#"[runtime]
workers = {workers}
shutdown_timeout = "5s"
{runtime}

[[listener]]
name = "main"
listen = "127.0.0.1:0"
{listener}

[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
{tls}

[listener.http]
{http}

{locations}

[[upstream]]
name = "app"
servers = [{upstream}]
keepalive = 8
connect_timeout = "2s"
{up}
"#,
            workers = self.workers,
            runtime = self.runtime,
            listener = self.listener,
            cert = p(&self.pki.server.cert),
            key = p(&self.pki.server.key),
            tls = self.tls,
            http = self.http,
            locations = locations,
            upstream = self.upstream,
            up = self.up,
        )
    }

    pub fn start(&self) -> proxy::Proxy {
        proxy::Proxy::start(&self.render())
    }
}

/// An mTLS connection to `proxy` as the test PKI's client, SNI `localhost`.
pub fn mtls_conn(proxy: &proxy::Proxy, pki: &Pki) -> client::Conn {
    client::connect(
        proxy.addr(),
        "localhost",
        &client_for(pki, Some(&pki.client)),
    )
    .expect("handshake")
}

/// A client trusting the test CA and presenting `leaf` (None: no certificate).
pub fn client_for(pki: &Pki, leaf: Option<&pki::Leaf>) -> std::sync::Arc<rustls::ClientConfig> {
    client::config(&client::ClientOpts {
        ca: Some(&pki.ca.pem_path),
        cert: leaf.map(|l| (l.cert.as_path(), l.key.as_path())),
        ..Default::default()
    })
}

/// Runs curl and returns (exit code, stdout, stderr).
pub fn curl(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--resolve localhost:PORT:127.0.0.1` and the URL for `path`.
pub fn curl_url(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    (
        format!("localhost:{}:127.0.0.1", addr.port()),
        format!("https://localhost:{}{path}", addr.port()),
    )
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A second TLS server, `admin.example.com` on `127.0.0.1:port`, verifying clients against the
/// test CA, as TOML to add before `[[upstream]]`. With the main server on the same port and
/// named `localhost`, a request whose Host names one server after an SNI that named the other
/// gets 421.
pub fn admin_server_on(pki: &Pki, port: u16) -> String {
    format!(
        r#"
[[listener]]
name = "admin"
listen = "127.0.0.1:{port}"
server_names = ["admin.example.com"]
[listener.tls]
certificates = [{{ cert = {cert}, key = {key} }}]
client_certificate = {ca}
verify_client = "on"
[[listener.location]]
path = "/"
proxy_pass = "http://app"
"#,
        cert = p(&pki.server.cert),
        key = p(&pki.server.key),
        ca = p(&pki.ca.pem_path),
    )
}
