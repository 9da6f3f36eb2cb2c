//! The directives that nginx inherits from `http` into `server` into `location`: one [`Scope`]
//! per level, filled from that level's directives, then completed from its parent's. As in
//! nginx, a level that has any `proxy_set_header` (or `ssl_certificate`, ...) of its own
//! inherits none of its parent's.

use std::path::Path;

use super::model::{AccessLog, L};
use super::Diag;
use crate::config::units::{parse_duration, parse_size};
use crate::tools::nginx::parser::Directive;
use crate::tools::nginx::Origin;

/// Where a directive is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `http { }`.
    Http,
    /// `server { }`.
    Server,
    /// `location { }`.
    Location,
}

/// Inheritable settings of one level.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// `ssl on|off` (old form of `listen ... ssl`).
    pub ssl: Option<L<bool>>,
    /// `ssl_certificate`s.
    pub certs: Vec<L<String>>,
    /// `ssl_certificate_key`s.
    pub keys: Vec<L<String>>,
    /// `ssl_client_certificate`.
    pub client_ca: Option<L<String>>,
    /// `ssl_trusted_certificate`.
    pub trusted: Option<L<String>>,
    /// `ssl_verify_client`.
    pub verify_client: Option<L<String>>,
    /// `ssl_verify_depth`.
    pub verify_depth: Option<L<u32>>,
    /// `ssl_protocols`, legacy versions removed.
    pub protocols: Option<L<Vec<String>>>,
    /// `ssl_crl`.
    pub crl: Option<L<String>>,
    /// `ssl_session_cache`, as a number of sessions.
    pub session_cache: Option<L<u64>>,
    /// `ssl_session_tickets`.
    pub session_tickets: Option<L<bool>>,
    /// `ssl_session_ticket_key`s.
    pub ticket_keys: Vec<L<String>>,
    /// `ssl_session_timeout`.
    pub session_timeout: Option<L<String>>,
    /// `keepalive_timeout` (None inside when `0`: keep-alive off).
    pub keepalive_timeout: Option<L<Option<String>>>,
    /// `keepalive_requests`.
    pub keepalive_requests: Option<L<u64>>,
    /// `client_max_body_size`.
    pub client_max_body_size: Option<L<String>>,
    /// `client_header_timeout`.
    pub header_timeout: Option<L<String>>,
    /// `large_client_header_buffers NUMBER SIZE`: the head limit (number x size, in bytes) and
    /// the line limit (size).
    pub header_buffers: Option<L<(u64, String)>>,
    /// `client_body_timeout`.
    pub body_timeout: Option<L<String>>,
    /// `send_timeout`.
    pub send_timeout: Option<L<String>>,
    /// `access_log` (the first of the level).
    pub access_log: Option<L<AccessLog>>,
    /// `root`.
    pub root: Option<L<String>>,
    /// `index`.
    pub index: Option<L<Vec<String>>>,
    /// `proxy_set_header`s of the level; None when it has none.
    pub headers: Option<Vec<L<(String, String)>>>,
    /// proxy_* settings.
    pub proxy: Proxy,
}

/// The proxy_* settings that become an `[[upstream]]`'s in ringgate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxy {
    /// `proxy_http_version`.
    pub http_version: Option<L<String>>,
    /// `proxy_ssl_verify`.
    pub ssl_verify: Option<L<bool>>,
    /// `proxy_ssl_verify_depth`.
    pub ssl_verify_depth: Option<L<u32>>,
    /// `proxy_ssl_certificate`.
    pub ssl_certificate: Option<L<String>>,
    /// `proxy_ssl_certificate_key`.
    pub ssl_certificate_key: Option<L<String>>,
    /// `proxy_ssl_trusted_certificate`.
    pub ssl_trusted_certificate: Option<L<String>>,
    /// `proxy_ssl_name`.
    pub ssl_name: Option<L<String>>,
    /// `proxy_ssl_server_name`.
    pub ssl_server_name: Option<L<bool>>,
    /// `proxy_ssl_protocols`.
    pub ssl_protocols: Option<L<Vec<String>>>,
    /// `proxy_ssl_session_reuse`.
    pub ssl_session_reuse: Option<L<bool>>,
    /// `proxy_connect_timeout`.
    pub connect_timeout: Option<L<String>>,
    /// `proxy_read_timeout`.
    pub read_timeout: Option<L<String>>,
    /// `proxy_send_timeout`.
    pub send_timeout: Option<L<String>>,
}

fn inherit<T: Clone>(child: &mut Option<T>, parent: &Option<T>) {
    if child.is_none() {
        child.clone_from(parent);
    }
}

fn inherit_vec<T: Clone>(child: &mut Vec<T>, parent: &[T]) {
    if child.is_empty() {
        child.extend_from_slice(parent);
    }
}

impl Scope {
    /// Completes this level from its parent, as nginx merges configurations.
    pub fn inherit(&mut self, p: &Scope) {
        inherit(&mut self.ssl, &p.ssl);
        if self.certs.is_empty() && self.keys.is_empty() {
            self.certs = p.certs.clone();
            self.keys = p.keys.clone();
        }
        inherit(&mut self.client_ca, &p.client_ca);
        inherit(&mut self.trusted, &p.trusted);
        inherit(&mut self.verify_client, &p.verify_client);
        inherit(&mut self.verify_depth, &p.verify_depth);
        inherit(&mut self.protocols, &p.protocols);
        inherit(&mut self.crl, &p.crl);
        inherit(&mut self.session_cache, &p.session_cache);
        inherit(&mut self.session_tickets, &p.session_tickets);
        inherit_vec(&mut self.ticket_keys, &p.ticket_keys);
        inherit(&mut self.session_timeout, &p.session_timeout);
        inherit(&mut self.keepalive_timeout, &p.keepalive_timeout);
        inherit(&mut self.keepalive_requests, &p.keepalive_requests);
        inherit(&mut self.client_max_body_size, &p.client_max_body_size);
        inherit(&mut self.header_timeout, &p.header_timeout);
        inherit(&mut self.header_buffers, &p.header_buffers);
        inherit(&mut self.body_timeout, &p.body_timeout);
        inherit(&mut self.send_timeout, &p.send_timeout);
        inherit(&mut self.access_log, &p.access_log);
        inherit(&mut self.root, &p.root);
        inherit(&mut self.index, &p.index);
        inherit(&mut self.headers, &p.headers);
        let (c, q) = (&mut self.proxy, &p.proxy);
        inherit(&mut c.http_version, &q.http_version);
        inherit(&mut c.ssl_verify, &q.ssl_verify);
        inherit(&mut c.ssl_verify_depth, &q.ssl_verify_depth);
        inherit(&mut c.ssl_certificate, &q.ssl_certificate);
        inherit(&mut c.ssl_certificate_key, &q.ssl_certificate_key);
        inherit(&mut c.ssl_trusted_certificate, &q.ssl_trusted_certificate);
        inherit(&mut c.ssl_name, &q.ssl_name);
        inherit(&mut c.ssl_server_name, &q.ssl_server_name);
        inherit(&mut c.ssl_protocols, &q.ssl_protocols);
        inherit(&mut c.ssl_session_reuse, &q.ssl_session_reuse);
        inherit(&mut c.connect_timeout, &q.connect_timeout);
        inherit(&mut c.read_timeout, &q.read_timeout);
        inherit(&mut c.send_timeout, &q.send_timeout);
    }

    /// Takes `d` into this level if it is one of the inheritable directives allowed at
    /// `level`; returns false (and records nothing) for any other directive.
    pub fn set(&mut self, d: &Directive, level: Level, diag: &mut Diag, conf_dir: &Path) -> bool {
        let server_only = matches!(level, Level::Http | Level::Server);
        let at = &d.origin;
        let path =
            |diag: &mut Diag, s: &str| -> Option<String> { file_path(s, at, diag, conf_dir) };
        match d.name.as_str() {
            "ssl" if server_only => {
                if let Some(v) = diag.one(d).and_then(|a| diag.flag(d, a)) {
                    diag.warn(at, "deprecated in nginx; write `listen ... ssl` instead");
                    once(&mut self.ssl, v, d, diag);
                }
            }
            "ssl_certificate" if server_only => {
                if let Some(p) = diag.one(d).and_then(|a| path(diag, a)) {
                    self.certs.push(L::new(p, at));
                }
            }
            "ssl_certificate_key" if server_only => {
                if let Some(p) = diag.one(d).and_then(|a| path(diag, a)) {
                    self.keys.push(L::new(p, at));
                }
            }
            "ssl_client_certificate" if server_only => {
                if let Some(p) = diag.one(d).and_then(|a| path(diag, a)) {
                    once(&mut self.client_ca, p, d, diag);
                }
            }
            "ssl_trusted_certificate" if server_only => {
                if let Some(p) = diag.one(d).and_then(|a| path(diag, a)) {
                    once(&mut self.trusted, p, d, diag);
                }
            }
            "ssl_crl" if server_only => {
                if let Some(p) = diag.one(d).and_then(|a| path(diag, a)) {
                    once(&mut self.crl, p, d, diag);
                }
            }
            "ssl_session_ticket_key" if server_only => {
                if let Some(p) = diag.one(d).and_then(|a| path(diag, a)) {
                    self.ticket_keys.push(L::new(p, at));
                }
            }
            "ssl_verify_client" if server_only => {
                if let Some(a) = diag.one(d) {
                    match a {
                        "on" | "off" | "optional" | "optional_no_ca" => {
                            once(&mut self.verify_client, a.to_string(), d, diag)
                        }
                        _ => diag.error(
                            at,
                            format!("invalid value \"{a}\"; expected on, off, optional or optional_no_ca"),
                        ),
                    }
                }
            }
            "ssl_verify_depth" if server_only => {
                if let Some(n) = diag.one(d).and_then(|a| diag.number(d, a)) {
                    match u32::try_from(n) {
                        Ok(n) => once(&mut self.verify_depth, n, d, diag),
                        Err(_) => diag.error(at, "depth too large"),
                    }
                }
            }
            "ssl_protocols" if server_only => {
                if let Some(p) = protocols(d, diag) {
                    once(&mut self.protocols, p, d, diag);
                }
            }
            "ssl_session_cache" if server_only => {
                if let Some(n) = session_cache(d, diag) {
                    once(&mut self.session_cache, n, d, diag);
                }
            }
            "ssl_session_tickets" if server_only => {
                if let Some(v) = diag.one(d).and_then(|a| diag.flag(d, a)) {
                    once(&mut self.session_tickets, v, d, diag);
                }
            }
            "ssl_session_timeout" if server_only => {
                if let Some(v) = diag.one(d).and_then(|a| diag.duration(d, a)) {
                    once(&mut self.session_timeout, v, d, diag);
                }
            }
            "keepalive_timeout" => {
                if diag.args(d, 1..=2) {
                    if d.args.len() == 2 {
                        diag.warn(
                            at,
                            "the second value (the Keep-Alive: timeout= header) is ignored; ringgate sends no Keep-Alive header",
                        );
                    }
                    if let Some(v) = diag.duration(d, &d.args[0]) {
                        let zero = parse_duration(&v).is_ok_and(|t| t.is_zero());
                        once(
                            &mut self.keepalive_timeout,
                            if zero { None } else { Some(v) },
                            d,
                            diag,
                        );
                    }
                }
            }
            "keepalive_requests" => {
                if let Some(n) = diag.one(d).and_then(|a| diag.number(d, a)) {
                    once(&mut self.keepalive_requests, n, d, diag);
                }
            }
            "client_max_body_size" => {
                if let Some(v) = diag.one(d).and_then(|a| diag.size(d, a)) {
                    once(&mut self.client_max_body_size, v, d, diag);
                }
            }
            "large_client_header_buffers" if server_only => {
                if diag.args(d, 2..=2) {
                    let number = diag.number(d, &d.args[0]);
                    let size = diag.size(d, &d.args[1]);
                    if let (Some(n), Some(size)) = (number, size) {
                        let bytes = crate::config::units::parse_size(&size).unwrap_or(0);
                        if n == 0 || bytes == 0 {
                            diag.error(&d.origin, "invalid value: number and size must not be 0");
                        } else {
                            let total = n.saturating_mul(bytes);
                            once(&mut self.header_buffers, (total, size), d, diag);
                        }
                    }
                }
            }
            "client_header_timeout" if server_only => {
                if let Some(v) = diag.one(d).and_then(|a| diag.duration(d, a)) {
                    once(&mut self.header_timeout, v, d, diag);
                }
            }
            "client_body_timeout" => {
                if let Some(v) = diag.one(d).and_then(|a| diag.duration(d, a)) {
                    once(&mut self.body_timeout, v, d, diag);
                }
            }
            "send_timeout" => {
                if let Some(v) = diag.one(d).and_then(|a| diag.duration(d, a)) {
                    once(&mut self.send_timeout, v, d, diag);
                }
            }
            "access_log" => {
                if let Some(v) = access_log(d, diag, conf_dir) {
                    if self.access_log.is_some() {
                        diag.warn(
                            at,
                            "a second access_log on one level is ignored; ringgate writes one log per server",
                        );
                    } else {
                        self.access_log = Some(L::new(v, at));
                    }
                }
            }
            "root" => {
                if let Some(p) = diag.one(d).and_then(|a| path(diag, a)) {
                    once(&mut self.root, p, d, diag);
                }
            }
            "index" => {
                if diag.args(d, 1..=usize::MAX) {
                    if d.args.iter().any(|a| a.contains('$')) {
                        diag.error(at, "variables in index are not supported");
                    } else {
                        once(&mut self.index, d.args.clone(), d, diag);
                    }
                }
            }
            "proxy_set_header" => {
                if diag.args(d, 2..=2) {
                    let list = self.headers.get_or_insert_with(Vec::new);
                    if let Some(prev) = list
                        .iter()
                        .position(|h| h.v.0.eq_ignore_ascii_case(&d.args[0]))
                    {
                        diag.warn(
                            at,
                            format!(
                                "replaces the proxy_set_header {} on line {}; ringgate sends one value per header",
                                d.args[0], list[prev].at.line
                            ),
                        );
                        list.remove(prev);
                    }
                    if d.args[0].eq_ignore_ascii_case("upgrade") {
                        diag.warn(
                            at,
                            "WebSocket is not tunnelled; the Upgrade header is dropped",
                        );
                    }
                    list.push(L::new((d.args[0].clone(), d.args[1].clone()), at));
                }
            }
            "proxy_http_version" => {
                if let Some(a) = diag.one(d) {
                    match a {
                        "1.1" => once(&mut self.proxy.http_version, a.to_string(), d, diag),
                        "1.0" => {
                            diag.warn(
                                at,
                                "ringgate always speaks HTTP/1.1 (with keep-alive) to upstreams",
                            );
                            once(&mut self.proxy.http_version, a.to_string(), d, diag)
                        }
                        _ => diag.error(at, format!("invalid value \"{a}\"; expected 1.0 or 1.1")),
                    }
                }
            }
            "proxy_ssl_verify" => {
                if let Some(v) = diag.one(d).and_then(|a| diag.flag(d, a)) {
                    once(&mut self.proxy.ssl_verify, v, d, diag);
                }
            }
            "proxy_ssl_verify_depth" => {
                if let Some(n) = diag.one(d).and_then(|a| diag.number(d, a)) {
                    match u32::try_from(n) {
                        Ok(n) => once(&mut self.proxy.ssl_verify_depth, n, d, diag),
                        Err(_) => diag.error(at, "depth too large"),
                    }
                }
            }
            "proxy_ssl_certificate" => {
                if let Some(p) = diag.one(d).and_then(|a| path(diag, a)) {
                    once(&mut self.proxy.ssl_certificate, p, d, diag);
                }
            }
            "proxy_ssl_certificate_key" => {
                if let Some(p) = diag.one(d).and_then(|a| path(diag, a)) {
                    once(&mut self.proxy.ssl_certificate_key, p, d, diag);
                }
            }
            "proxy_ssl_trusted_certificate" => {
                if let Some(p) = diag.one(d).and_then(|a| path(diag, a)) {
                    once(&mut self.proxy.ssl_trusted_certificate, p, d, diag);
                }
            }
            "proxy_ssl_name" => {
                if let Some(a) = diag.one(d) {
                    once(&mut self.proxy.ssl_name, a.to_string(), d, diag);
                }
            }
            "proxy_ssl_server_name" => {
                if let Some(v) = diag.one(d).and_then(|a| diag.flag(d, a)) {
                    once(&mut self.proxy.ssl_server_name, v, d, diag);
                }
            }
            "proxy_ssl_protocols" => {
                if let Some(p) = protocols(d, diag) {
                    once(&mut self.proxy.ssl_protocols, p, d, diag);
                }
            }
            "proxy_ssl_session_reuse" => {
                if let Some(v) = diag.one(d).and_then(|a| diag.flag(d, a)) {
                    once(&mut self.proxy.ssl_session_reuse, v, d, diag);
                }
            }
            "proxy_connect_timeout" => {
                if let Some(v) = diag.one(d).and_then(|a| diag.duration(d, a)) {
                    once(&mut self.proxy.connect_timeout, v, d, diag);
                }
            }
            "proxy_read_timeout" => {
                if let Some(v) = diag.one(d).and_then(|a| diag.duration(d, a)) {
                    once(&mut self.proxy.read_timeout, v, d, diag);
                }
            }
            "proxy_send_timeout" => {
                if let Some(v) = diag.one(d).and_then(|a| diag.duration(d, a)) {
                    once(&mut self.proxy.send_timeout, v, d, diag);
                }
            }
            _ => return false,
        }
        true
    }
}

/// Sets a single-valued setting, refusing a second one on the same level as nginx does.
fn once<T>(slot: &mut Option<L<T>>, v: T, d: &Directive, diag: &mut Diag) {
    if let Some(prev) = slot {
        diag.error(
            &d.origin,
            format!(
                "\"{}\" directive is duplicate (first on line {})",
                d.name, prev.at.line
            ),
        );
    } else {
        *slot = Some(L::new(v, &d.origin));
    }
}

/// A file path as nginx resolves it: absolute, or relative to the main file's directory.
pub fn file_path(s: &str, at: &Origin, diag: &mut Diag, conf_dir: &Path) -> Option<String> {
    if s.contains('$') {
        diag.error(
            at,
            format!("variables in file paths are not supported: \"{s}\""),
        );
        return None;
    }
    if s.starts_with("data:") {
        diag.error(
            at,
            "inline `data:` certificates are not supported; use a file",
        );
        return None;
    }
    if s.is_empty() {
        diag.error(at, "an empty path");
        return None;
    }
    if s.starts_with('/') {
        Some(s.to_string())
    } else {
        Some(conf_dir.join(s).to_string_lossy().into_owned())
    }
}

/// `ssl_protocols`: TLSv1.2 and TLSv1.3 kept; older versions dropped with a warning.
fn protocols(d: &Directive, diag: &mut Diag) -> Option<Vec<String>> {
    if !diag.args(d, 1..=usize::MAX) {
        return None;
    }
    let mut out = Vec::new();
    for a in &d.args {
        match a.as_str() {
            "TLSv1.2" | "TLSv1.3" => {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
            "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => diag.warn(
                &d.origin,
                format!("{a} is obsolete and insecure; ringgate offers TLSv1.2 and TLSv1.3 only, so clients limited to {a} cannot connect"),
            ),
            other => {
                diag.error(&d.origin, format!("invalid value \"{other}\""));
                return None;
            }
        }
    }
    if out.is_empty() {
        diag.error(
            &d.origin,
            "no protocol left: ringgate offers TLSv1.2 and TLSv1.3",
        );
        return None;
    }
    Some(out)
}

/// `ssl_session_cache` as a number of sessions: `shared:NAME:SIZE` is 4000 per megabyte
/// (nginx's own estimate), `builtin[:N]` N (default 20480), `off`/`none` 0.
fn session_cache(d: &Directive, diag: &mut Diag) -> Option<u64> {
    if !diag.args(d, 1..=usize::MAX) {
        return None;
    }
    let mut total = 0u64;
    for a in &d.args {
        if a == "off" || a == "none" {
            if d.args.len() > 1 {
                diag.error(
                    &d.origin,
                    format!("\"{a}\" cannot be combined with other values"),
                );
                return None;
            }
            return Some(0);
        }
        let n = if a == "builtin" {
            20_480
        } else if let Some(n) = a.strip_prefix("builtin:") {
            match n.parse::<u64>() {
                Ok(n) => n,
                Err(_) => {
                    diag.error(&d.origin, format!("invalid value \"{a}\""));
                    return None;
                }
            }
        } else if let Some(rest) = a.strip_prefix("shared:") {
            let size = rest.rsplit_once(':').map(|(_, s)| s).unwrap_or("");
            match parse_size(size) {
                Ok(bytes) if bytes >= 8192 => (bytes / (1024 * 1024)).max(1) * 4000,
                _ => {
                    diag.error(
                        &d.origin,
                        format!("invalid value \"{a}\"; expected shared:NAME:SIZE such as shared:SSL:10m"),
                    );
                    return None;
                }
            }
        } else {
            diag.error(&d.origin, format!("invalid value \"{a}\""));
            return None;
        };
        total = total.saturating_add(n);
    }
    // TOML integers are signed 64-bit.
    Some(total.min(i64::MAX as u64))
}

/// `access_log off` or `access_log PATH [FORMAT [buffer=... flush=... gzip if=...]]`.
fn access_log(d: &Directive, diag: &mut Diag, conf_dir: &Path) -> Option<AccessLog> {
    if !diag.args(d, 1..=usize::MAX) {
        return None;
    }
    let target = &d.args[0];
    if target == "off" {
        return Some(AccessLog::Off);
    }
    if target.starts_with("syslog:") {
        diag.error(&d.origin, "syslog logging is not supported; give a file");
        return None;
    }
    let path = file_path(target, &d.origin, diag, conf_dir)?;
    let format = d.args.get(1).cloned().unwrap_or_else(|| "combined".into());
    if d.args.len() > 2 {
        diag.warn(
            &d.origin,
            format!(
                "{} ignored: ringgate writes its log off the request path without these options",
                d.args[2..].join(" ")
            ),
        );
    }
    Some(AccessLog::File { path, format })
}
