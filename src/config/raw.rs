//! The configuration file's shape, exactly as written: serde structs with unknown keys refused
//! and spans kept, so that every later error can point at a line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::units::Quantity;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub runtime: RawRuntime,
    #[serde(default)]
    pub listener: Vec<RawListener>,
    #[serde(default)]
    pub upstream: Vec<RawUpstream>,
}

/// `[runtime]`: workers and process-wide settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    pub workers: Option<Spanned<usize>>,
    pub cpus: Option<Spanned<Vec<usize>>>,
    pub shutdown_timeout: Option<Spanned<Quantity>>,
    pub driver: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
}

/// `[[listener]]`: one address, its TLS policy and its locations (an nginx `server` block).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: Option<Spanned<String>>,
    pub listen: Spanned<String>,
    #[serde(default)]
    pub server_names: Vec<Spanned<String>>,
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub location: Vec<RawLocation>,
}

/// `[listener.tls]`: server certificates and client verification.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub certificates: Spanned<Vec<RawCertificate>>,
    pub protocols: Option<Spanned<Vec<String>>>,
    pub client_certificate: Option<Spanned<String>>,
    pub verify_client: Option<Spanned<String>>,
    pub verify_depth: Option<Spanned<u32>>,
    pub verify_failure: Option<Spanned<String>>,
    pub session_tickets: Option<Spanned<bool>>,
    pub session_cache: Option<Spanned<usize>>,
}

/// One certificate chain and its key (`ssl_certificate` / `ssl_certificate_key`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
    /// Names this certificate answers for by SNI; taken from its SANs (or CN) when absent.
    #[serde(default)]
    pub server_names: Vec<Spanned<String>>,
}

/// `[listener.http]`: limits and timeouts of the client side.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub max_header_bytes: Option<Spanned<Quantity>>,
    pub max_headers: Option<Spanned<usize>>,
    pub header_timeout: Option<Spanned<Quantity>>,
    pub body_timeout: Option<Spanned<Quantity>>,
    pub send_timeout: Option<Spanned<Quantity>>,
    pub keepalive_timeout: Option<Spanned<Quantity>>,
    pub keepalive_requests: Option<Spanned<u64>>,
    pub client_max_body_size: Option<Spanned<Quantity>>,
    pub x_forwarded_for: Option<Spanned<bool>>,
    pub x_forwarded_proto: Option<Spanned<bool>>,
}

/// `[[listener.location]]`: a path and what to do with requests under it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub path: Spanned<String>,
    #[serde(rename = "match")]
    pub match_kind: Option<Spanned<String>>,
    pub proxy_pass: Option<Spanned<String>>,
    #[serde(rename = "return")]
    pub return_: Option<Spanned<RawReturn>>,
    #[serde(default)]
    pub set_header: BTreeMap<String, Spanned<String>>,
}

/// `return = 204` or `return = { status = 301, body = "https://$host$request_uri" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawReturn {
    Status(u16),
    Full {
        status: u16,
        #[serde(default)]
        body: Option<String>,
    },
}

/// `[[upstream]]`: a named group of HTTP/1.1 servers (an nginx `upstream` block), spoken to
/// in plain TCP or, with `proxy_pass = "https://NAME"`, in TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: Spanned<String>,
    pub servers: Spanned<Vec<String>>,
    pub keepalive: Option<Spanned<usize>>,
    pub keepalive_timeout: Option<Spanned<Quantity>>,
    pub connect_timeout: Option<Spanned<Quantity>>,
    pub read_timeout: Option<Spanned<Quantity>>,
    pub send_timeout: Option<Spanned<Quantity>>,
    pub tls: Option<Spanned<RawUpstreamTls>>,
}

/// `[upstream.tls]`: how ringgate talks TLS to the upstream (nginx's `proxy_ssl_*`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub verify: Option<Spanned<bool>>,
    pub trusted_certificate: Option<Spanned<String>>,
    pub verify_depth: Option<Spanned<u32>>,
    pub name: Option<Spanned<String>>,
    pub server_name: Option<Spanned<bool>>,
    pub certificate: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub protocols: Option<Spanned<Vec<String>>>,
    pub session_reuse: Option<Spanned<bool>>,
}
