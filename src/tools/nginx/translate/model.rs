//! The translated configuration before it is written out: ringgate's TOML sections, each value
//! carrying the nginx directive it came from, so the writer can build the source map.

use crate::tools::nginx::Origin;

/// A value and the directive that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L<T> {
    /// The value.
    pub v: T,
    /// Its directive.
    pub at: Origin,
}

impl<T> L<T> {
    /// Pairs a value with its origin.
    pub fn new(v: T, at: &Origin) -> Self {
        L { v, at: at.clone() }
    }
}

/// The whole translated file.
#[derive(Debug, Default)]
pub struct Out {
    /// `[runtime]`.
    pub runtime: OutRuntime,
    /// `[log_format]`, only formats some access_log uses.
    pub log_formats: Vec<L<(String, String)>>,
    /// `[static]`, only when some location serves files.
    pub static_files: Option<OutStatic>,
    /// `[[map]]`.
    pub maps: Vec<OutMap>,
    /// `[[upstream]]`.
    pub upstreams: Vec<OutUpstream>,
    /// `[[listener]]`.
    pub listeners: Vec<OutListener>,
}

/// `[runtime]`.
#[derive(Debug, Default)]
pub struct OutRuntime {
    /// `workers` (0 = one per CPU).
    pub workers: Option<L<u64>>,
    /// `shutdown_timeout`.
    pub shutdown_timeout: Option<L<String>>,
    /// `error_log` path.
    pub error_log: Option<L<String>>,
    /// `log_level`.
    pub log_level: Option<L<String>>,
    /// `max_connections_per_worker` (`worker_connections`).
    pub max_connections_per_worker: Option<L<u64>>,
}

/// `[static]`.
#[derive(Debug)]
pub struct OutStatic {
    /// `default_type`.
    pub default_type: L<String>,
    /// `[static.types]`: extension -> MIME type; None keeps ringgate's built-in table.
    pub types: Option<Vec<L<(String, String)>>>,
}

/// How a map entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapMatch {
    /// A literal value (case-insensitive, as nginx).
    Exact,
    /// `~regex`.
    Regex,
    /// `~*regex`.
    RegexNocase,
}

/// `[[map]]`.
#[derive(Debug)]
pub struct OutMap {
    /// The `map` directive.
    pub at: Origin,
    /// The source expression.
    pub source: String,
    /// The variable defined, without `$`.
    pub variable: String,
    /// `default` ("" when not given, as nginx).
    pub default: L<String>,
    /// Entries in file order.
    pub entries: Vec<L<(MapMatch, String, String)>>,
}

/// `[[upstream]]`.
#[derive(Debug, Clone)]
pub struct OutUpstream {
    /// The directive that made it (an `upstream` block or the first proxy_pass / grpc_pass to
    /// a host).
    pub at: Origin,
    /// Why it exists, for the comment above it.
    pub note: String,
    /// Its name, referred to by proxy_pass.
    pub name: String,
    /// `protocol`: `h2` for grpc_pass; None is ringgate's default, HTTP/1.1.
    pub protocol: Option<L<String>>,
    /// `servers`.
    pub servers: Vec<L<String>>,
    /// `backup_servers`.
    pub backup_servers: Vec<L<String>>,
    /// `max_fails`.
    pub max_fails: Option<L<u64>>,
    /// `fail_timeout`.
    pub fail_timeout: Option<L<String>>,
    /// `keepalive` idle connections per worker.
    pub keepalive: L<u64>,
    /// `keepalive_timeout`.
    pub keepalive_timeout: Option<L<String>>,
    /// `connect_timeout`.
    pub connect_timeout: Option<L<String>>,
    /// `read_timeout`.
    pub read_timeout: Option<L<String>>,
    /// `send_timeout`.
    pub send_timeout: Option<L<String>>,
    /// `[upstream.tls]` for https and grpcs.
    pub tls: Option<OutUpstreamTls>,
}

/// `[upstream.tls]`.
#[derive(Debug, Clone)]
pub struct OutUpstreamTls {
    /// `verify`.
    pub verify: L<bool>,
    /// `trusted_certificate`.
    pub trusted_certificate: Option<L<String>>,
    /// `verify_depth`.
    pub verify_depth: Option<L<u32>>,
    /// `name`.
    pub name: L<String>,
    /// `server_name` (send SNI).
    pub server_name: L<bool>,
    /// `certificate`.
    pub certificate: Option<L<String>>,
    /// `key`.
    pub key: Option<L<String>>,
    /// `protocols`.
    pub protocols: Option<L<Vec<String>>>,
    /// `session_reuse`.
    pub session_reuse: Option<L<bool>>,
}

/// `access_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// `access_log off`.
    Off,
    /// A file and a format name.
    File {
        /// Absolute path.
        path: String,
        /// Format name.
        format: String,
    },
}

/// `[[listener]]`.
#[derive(Debug)]
pub struct OutListener {
    /// The `server` block.
    pub at: Origin,
    /// `name`.
    pub name: String,
    /// `listen`.
    pub listen: L<String>,
    /// `default_server`.
    pub default_server: Option<L<bool>>,
    /// `server_names`.
    pub server_names: Option<L<Vec<String>>>,
    /// `access_log`.
    pub access_log: Option<L<AccessLog>>,
    /// `[listener.tls]`.
    pub tls: Option<OutTls>,
    /// `http2` (TLS) or `h2c` (plain): HTTP/2 on, as `http2 on` or `listen ... http2`.
    pub http2: L<bool>,
    /// `[listener.http]`.
    pub http: OutHttp,
    /// `[[listener.rule]]`.
    pub rules: Vec<OutRule>,
    /// `[[listener.location]]`.
    pub locations: Vec<OutLocation>,
}

/// `[listener.tls]`.
#[derive(Debug, Clone)]
pub struct OutTls {
    /// `certificates`: (cert, key).
    pub certificates: Vec<(L<String>, L<String>)>,
    /// `protocols`.
    pub protocols: Option<L<Vec<String>>>,
    /// `client_certificate`.
    pub client_certificate: Option<L<String>>,
    /// `trusted_certificate`.
    pub trusted_certificate: Option<L<String>>,
    /// `verify_client`.
    pub verify_client: L<String>,
    /// `verify_depth`.
    pub verify_depth: L<u32>,
    /// `verify_failure` (nginx answers 400 pages).
    pub verify_failure: Option<L<String>>,
    /// `session_tickets`.
    pub session_tickets: Option<L<bool>>,
    /// `session_cache`.
    pub session_cache: L<u64>,
    /// `session_timeout`.
    pub session_timeout: Option<L<String>>,
    /// `session_ticket_key`.
    pub session_ticket_key: Vec<L<String>>,
    /// `crl`.
    pub crl: Option<L<String>>,
    /// Each certificate's `ocsp`: the `ssl_stapling_file`, or `fetch` for `ssl_stapling on`.
    pub staple: Option<L<String>>,
    /// `ocsp_client` (`ssl_ocsp`).
    pub ocsp_client: Option<L<String>>,
    /// `ocsp_responder`.
    pub ocsp_responder: Option<L<String>>,
    /// `ocsp_cache`.
    pub ocsp_cache: Option<L<u64>>,
}

/// `[listener.http]`.
#[derive(Debug, Clone)]
pub struct OutHttp {
    /// `keepalive_timeout`.
    pub keepalive_timeout: Option<L<String>>,
    /// `keepalive_requests`.
    pub keepalive_requests: L<u64>,
    /// `client_max_body_size`.
    pub client_max_body_size: L<String>,
    /// `header_timeout`.
    pub header_timeout: Option<L<String>>,
    /// `max_header_bytes` and `max_header_line_bytes` (`large_client_header_buffers`).
    pub header_buffers: Option<L<(u64, String)>>,
    /// `body_timeout`.
    pub body_timeout: Option<L<String>>,
    /// `send_timeout`.
    pub send_timeout: Option<L<String>>,
    /// `http2_max_concurrent_streams`.
    pub http2_streams: Option<L<u64>>,
    /// Where `x_forwarded_*` = false are attributed (the server block).
    pub server_at: Origin,
}

/// `return`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutReturn {
    /// Status code.
    pub status: u16,
    /// Text or URL.
    pub body: Option<String>,
}

/// `[[listener.rule]]` / `[[listener.location.rule]]`.
#[derive(Debug, Clone)]
pub struct OutRule {
    /// The `if` or `return` directive.
    pub at: Origin,
    /// The condition, nginx syntax; None for an unconditional return.
    pub cond: Option<String>,
    /// What to answer.
    pub ret: OutReturn,
}

/// `[[listener.location]]`.
#[derive(Debug, Clone)]
pub struct OutLocation {
    /// The `location` block (or the server, for the fallback location).
    pub at: Origin,
    /// A comment for the location's header.
    pub note: Option<String>,
    /// `path`.
    pub path: String,
    /// `match`, None for a prefix.
    pub match_kind: Option<&'static str>,
    /// `proxy_pass` (from proxy_pass or grpc_pass).
    pub proxy_pass: Option<L<String>>,
    /// `return`.
    pub ret: Option<L<OutReturn>>,
    /// `root`.
    pub root: Option<L<String>>,
    /// `index`.
    pub index: Option<L<Vec<String>>>,
    /// `verify_client`.
    pub verify_client: Option<L<String>>,
    /// `[listener.location.set_header]`.
    pub set_header: Vec<L<(String, String)>>,
    /// `upgrade`, from `proxy_set_header Upgrade`.
    pub upgrade: Option<L<Vec<String>>>,
    /// `[[listener.location.rule]]`.
    pub rules: Vec<OutRule>,
}
