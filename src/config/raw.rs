//! The configuration file's shape, exactly as written: serde structs with unknown keys refused
//! and spans kept, so that every later error can point at a line. A key that takes one word
//! of a closed set holds a [`Word`] (see [`super::words`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::units::Quantity;
use super::words::{
    DriverChoice, IdentityField, LocationVerify, LogOff, MatchKind, TlsProtocol, Word,
};
use crate::fetch::ocsp_client::{OcspCheck, OcspFailure};
use crate::tls::client_auth::{ClientAuthMode, FailureMode};
use crate::upstream::UpstreamProtocol;
use crate::x509::crl::ExpiredCrl;

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
    /// `[identity]`: roles and certificate + address bindings.
    #[serde(default)]
    pub identity: RawIdentity,
    /// `[[map]]`: nginx `map` blocks.
    #[serde(default)]
    pub map: Vec<RawMap>,
    /// `[log_format]`: named access-log formats (nginx `log_format`).
    #[serde(default)]
    pub log_format: BTreeMap<String, Spanned<String>>,
    /// `[static]`: content types for `root` locations.
    #[serde(default, rename = "static")]
    pub static_files: RawStatic,
    /// `[admin]`: metrics and health endpoints.
    pub admin: Option<RawAdmin>,
}

/// `[admin]`: where `/metrics`, `/healthz` and `/readyz` are served (plain HTTP).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Spanned<String>,
}

/// `[runtime]`: workers and process-wide settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    pub workers: Option<Spanned<usize>>,
    pub cpus: Option<Spanned<Vec<usize>>>,
    pub shutdown_timeout: Option<Spanned<Quantity>>,
    pub driver: Option<Spanned<Word<DriverChoice>>>,
    pub log_level: Option<Spanned<Word<log::LevelFilter>>>,
    pub error_log: Option<Spanned<String>>,
    pub watch: Option<Spanned<bool>>,
    pub watch_interval: Option<Spanned<Quantity>>,
    /// Serve with private keys group or others can read (refused otherwise).
    pub allow_insecure_key_permissions: Option<Spanned<bool>>,
    /// Client connections the process keeps open at most.
    pub max_connections: Option<Spanned<usize>>,
    /// Client connections one worker keeps open at most.
    pub max_connections_per_worker: Option<Spanned<usize>>,
    /// Refusal log lines of one kind a worker writes per second (0: every line).
    pub refusal_log_per_second: Option<Spanned<u32>>,
}

/// `[[listener]]`: one address, its TLS policy and its locations (an nginx `server` block).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: Option<Spanned<String>>,
    pub listen: Spanned<String>,
    #[serde(default)]
    pub server_names: Vec<Spanned<String>>,
    /// nginx `listen ... default_server`: chosen when SNI and Host match no server on the address.
    pub default_server: Option<Spanned<bool>>,
    pub tls: Option<RawTls>,
    /// Offer HTTP/2 to TLS clients (ALPN h2); on unless set false.
    pub http2: Option<Spanned<bool>>,
    /// Serve HTTP/2 with prior knowledge (h2c) on a plain listener; off unless set.
    pub h2c: Option<Spanned<bool>>,
    #[serde(default)]
    pub http: RawHttp,
    /// Server-level `if`/`return`, run before a location is chosen.
    #[serde(default)]
    pub rule: Vec<RawRule>,
    /// Answer everything with a 301 to https on this port (nginx's plain `listen 80` server that only sends clients to https).
    pub https_redirect: Option<Spanned<u16>>,
    /// Which identity headers go upstream, by field, and under which name.
    #[serde(default)]
    pub identity_headers: BTreeMap<Word<IdentityField>, Spanned<String>>,
    /// `access_log = "off"` or `{ path = "...", format = "name" }`.
    pub access_log: Option<Spanned<RawAccessLog>>,
    #[serde(default)]
    pub location: Vec<RawLocation>,
}

/// `access_log = "off"` or `access_log = { path = "/var/log/x.log", format = "main" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAccessLog {
    Off(Word<LogOff>),
    To {
        path: String,
        #[serde(default)]
        format: Option<String>,
    },
}

/// A rewrite-phase rule: an optional nginx `if` condition and the `return` it triggers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(rename = "if")]
    pub if_: Option<Spanned<String>>,
    #[serde(rename = "return")]
    pub return_: Spanned<RawReturn>,
}

/// `[listener.tls]`: server certificates and client verification.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub certificates: Spanned<Vec<RawCertificate>>,
    pub protocols: Option<Spanned<Vec<Word<TlsProtocol>>>>,
    pub client_certificate: Option<Spanned<String>>,
    pub verify_client: Option<Spanned<Word<ClientAuthMode>>>,
    pub verify_depth: Option<Spanned<u32>>,
    pub verify_failure: Option<Spanned<Word<FailureMode>>>,
    pub session_tickets: Option<Spanned<bool>>,
    pub session_cache: Option<Spanned<usize>>,
    pub session_timeout: Option<Spanned<Quantity>>,
    #[serde(default)]
    pub session_ticket_key: Vec<Spanned<String>>,
    pub trusted_certificate: Option<Spanned<String>>,
    #[serde(default)]
    pub crl: Vec<Spanned<String>>,
    /// Every CA of a client's chain must have a CRL (nginx's behaviour; default true).
    pub crl_require_all: Option<Spanned<bool>>,
    /// `"refuse"` (nginx) or a grace period such as `"1d"` for CRLs past their nextUpdate.
    pub crl_expired: Option<Spanned<Word<ExpiredCrl>>>,
    /// CRLs fetched by URL in the background (http://).
    #[serde(default)]
    pub crl_url: Vec<Spanned<String>>,
    /// Also fetch the CRLs named by the CRL distribution points of the configured CAs.
    pub crl_from_distribution_points: Option<Spanned<bool>>,
    /// The hosts distribution-point CRLs may be fetched from.
    #[serde(default)]
    pub crl_fetch_allow: Vec<Spanned<String>>,
    /// The longest time between two fetches of a CRL (default 1h).
    pub crl_refresh: Option<Spanned<Quantity>>,
    /// The longest time between two fetches of a staple (`ocsp = "fetch"`; default 1h).
    pub ocsp_refresh: Option<Spanned<Quantity>>,
    /// Client-certificate OCSP (nginx `ssl_ocsp`): `"off"`, `"on"` (the chain) or `"leaf"`.
    pub ocsp_client: Option<Spanned<Word<Option<OcspCheck>>>>,
    /// The responder for client certificates (nginx `ssl_ocsp_responder`); else their AIA.
    pub ocsp_responder: Option<Spanned<String>>,
    /// A responder that fails: `"refuse"` (nginx) or `"allow"` with a warning.
    pub ocsp_failure: Option<Spanned<Word<OcspFailure>>>,
    /// Client-certificate OCSP answers kept per core (nginx `ssl_ocsp_cache`).
    pub ocsp_cache: Option<Spanned<usize>>,
    /// The longest an OCSP answer is kept (and how long one without nextUpdate is).
    pub ocsp_cache_valid: Option<Spanned<Quantity>>,
    /// How long a client-certificate OCSP query may take.
    pub ocsp_timeout: Option<Spanned<Quantity>>,
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
    /// A DER OCSP response for this certificate, stapled in handshakes (`ssl_stapling_file`),
    /// or `"fetch"`: fetched from the certificate's responder and refreshed (`ssl_stapling on`).
    pub ocsp: Option<Spanned<String>>,
}

/// `[listener.http]`: limits and timeouts of the client side.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub max_header_bytes: Option<Spanned<Quantity>>,
    pub max_header_line_bytes: Option<Spanned<Quantity>>,
    pub max_headers: Option<Spanned<usize>>,
    pub header_timeout: Option<Spanned<Quantity>>,
    pub body_timeout: Option<Spanned<Quantity>>,
    pub send_timeout: Option<Spanned<Quantity>>,
    pub keepalive_timeout: Option<Spanned<Quantity>>,
    pub keepalive_requests: Option<Spanned<u64>>,
    pub client_max_body_size: Option<Spanned<Quantity>>,
    pub x_forwarded_for: Option<Spanned<bool>>,
    pub x_forwarded_proto: Option<Spanned<bool>>,
    pub http2_max_concurrent_streams: Option<Spanned<u32>>,
}

/// `[[listener.location]]`: a path and what to do with requests under it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub path: Spanned<String>,
    #[serde(rename = "match")]
    pub match_kind: Option<Spanned<Word<MatchKind>>>,
    pub proxy_pass: Option<Spanned<String>>,
    #[serde(rename = "return")]
    pub return_: Option<Spanned<RawReturn>>,
    #[serde(default)]
    pub set_header: BTreeMap<String, Spanned<String>>,
    /// Serve static files from this directory.
    pub root: Option<Spanned<String>>,
    /// Index files for directory requests under `root`.
    pub index: Option<Spanned<Vec<String>>>,
    /// Per-path client certificate requirement (nginx `ssl_verify_client` in a location).
    pub verify_client: Option<Spanned<Word<LocationVerify>>>,
    /// Roles allowed in (see `[identity]`).
    pub allow_roles: Option<Spanned<Vec<String>>>,
    /// Location-level `if`/`return`, run in order after the location is chosen.
    #[serde(default)]
    pub rule: Vec<RawRule>,
    /// Protocols a client may switch to through this location (`Upgrade` tokens).
    pub upgrade: Option<Spanned<Vec<String>>>,
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

/// `[[upstream]]`: a named group of servers (an nginx `upstream` block) speaking HTTP/1.1 or,
/// with `protocol = "h2"`, HTTP/2 (gRPC), in plain TCP or, with `proxy_pass = "https://NAME"`
/// (`grpcs://NAME`), in TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: Spanned<String>,
    pub servers: Spanned<Vec<String>>,
    pub backup_servers: Option<Spanned<Vec<String>>>,
    pub keepalive: Option<Spanned<usize>>,
    pub keepalive_timeout: Option<Spanned<Quantity>>,
    pub purge_delay: Option<Spanned<Quantity>>,
    pub max_fails: Option<Spanned<u32>>,
    pub fail_timeout: Option<Spanned<Quantity>>,
    pub connect_timeout: Option<Spanned<Quantity>>,
    pub read_timeout: Option<Spanned<Quantity>>,
    pub send_timeout: Option<Spanned<Quantity>>,
    pub protocol: Option<Spanned<Word<UpstreamProtocol>>>,
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
    pub protocols: Option<Spanned<Vec<Word<TlsProtocol>>>>,
    pub session_reuse: Option<Spanned<bool>>,
}

/// `[identity]`: how a verified certificate becomes a role, and where it may come from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub default_role: Option<Spanned<String>>,
    #[serde(default)]
    pub roles: Vec<Spanned<RawRoleRule>>,
    #[serde(default)]
    pub bindings: Vec<Spanned<RawBinding>>,
}

/// One role rule: the role and exactly one certificate field to match.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoleRule {
    pub role: String,
    pub cn: Option<RawMatcher>,
    pub ou: Option<RawMatcher>,
    pub o: Option<RawMatcher>,
    pub dns: Option<RawMatcher>,
    pub uri: Option<RawMatcher>,
    pub email: Option<RawMatcher>,
    pub spiffe_id: Option<RawMatcher>,
}

/// `"exact"`, `{ prefix = ".." }` or `{ regex = ".." }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawMatcher {
    Exact(String),
    Prefix { prefix: String },
    Regex { regex: String },
}

/// A certificate + source address binding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBinding {
    pub cn: Option<String>,
    pub fingerprint: Option<String>,
    pub serial: Option<String>,
    pub from: Vec<String>,
}

/// `[[map]]`: nginx `map SOURCE $VARIABLE { ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMap {
    pub source: Spanned<String>,
    pub variable: Spanned<String>,
    #[serde(default)]
    pub default: Option<Spanned<String>>,
    #[serde(default)]
    pub entries: Vec<Spanned<RawMapEntry>>,
}

/// One `map` line: an exact string or a regex, and the value it gives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMapEntry {
    pub exact: Option<String>,
    pub regex: Option<String>,
    pub regex_nocase: Option<String>,
    pub value: String,
}

/// `[static]`: nginx `types {}` and `default_type`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatic {
    pub default_type: Option<Spanned<String>>,
    pub types: Option<Spanned<BTreeMap<String, String>>>,
}
