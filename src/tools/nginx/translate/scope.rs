//! The directives that nginx inherits from `http` into `server` into `location`: one [`Scope`]
//! per level, filled from that level's directives, then completed from its parent's. As in
//! nginx, a level that has any `proxy_set_header` (or `ssl_certificate`, ...) of its own
//! inherits none of its parent's. The proxy and gRPC modules keep their settings apart
//! (`proxy_read_timeout` and `grpc_read_timeout` are two settings, each inherited on its own,
//! and a location uses those of the module that passes its requests): one [`Proxy`] each,
//! filled from one table of the directives they share.

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
    /// `ssl_stapling`.
    pub stapling: Option<L<bool>>,
    /// `ssl_stapling_file`.
    pub stapling_file: Option<L<String>>,
    /// `ssl_ocsp` (`on`, `leaf`, `off`).
    pub ocsp: Option<L<String>>,
    /// `ssl_ocsp_responder`.
    pub ocsp_responder: Option<L<String>>,
    /// `ssl_ocsp_cache`, as a number of answers (None inside for `off`).
    pub ocsp_cache: Option<L<Option<u64>>>,
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
    /// `http2 on|off` (nginx 1.25.1+; `listen ... http2` before).
    pub http2: Option<L<bool>>,
    /// `http2_max_concurrent_streams`.
    pub http2_streams: Option<L<u64>>,
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
    /// proxy_* settings.
    pub proxy: Proxy,
    /// grpc_* settings.
    pub grpc: Proxy,
}

/// The settings of one passing module (`proxy_X` or `grpc_X`), which become an
/// `[[upstream]]`'s in ringgate, and the request headers it sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxy {
    /// `proxy_set_header`s / `grpc_set_header`s of the level; None when it has none.
    pub headers: Option<Vec<L<(String, String)>>>,
    /// `proxy_http_version` (the gRPC module always speaks HTTP/2).
    pub http_version: Option<L<String>>,
    /// `proxy_ssl_verify` / `grpc_ssl_verify`.
    pub ssl_verify: Option<L<bool>>,
    /// `proxy_ssl_verify_depth` / `grpc_ssl_verify_depth`.
    pub ssl_verify_depth: Option<L<u32>>,
    /// `proxy_ssl_certificate` / `grpc_ssl_certificate`.
    pub ssl_certificate: Option<L<String>>,
    /// `proxy_ssl_certificate_key` / `grpc_ssl_certificate_key`.
    pub ssl_certificate_key: Option<L<String>>,
    /// `proxy_ssl_trusted_certificate` / `grpc_ssl_trusted_certificate`.
    pub ssl_trusted_certificate: Option<L<String>>,
    /// `proxy_ssl_name` / `grpc_ssl_name`.
    pub ssl_name: Option<L<String>>,
    /// `proxy_ssl_server_name` / `grpc_ssl_server_name`.
    pub ssl_server_name: Option<L<bool>>,
    /// `proxy_ssl_protocols` / `grpc_ssl_protocols`.
    pub ssl_protocols: Option<L<Vec<String>>>,
    /// `proxy_ssl_session_reuse` / `grpc_ssl_session_reuse`.
    pub ssl_session_reuse: Option<L<bool>>,
    /// `proxy_connect_timeout` / `grpc_connect_timeout`.
    pub connect_timeout: Option<L<String>>,
    /// `proxy_read_timeout` / `grpc_read_timeout`.
    pub read_timeout: Option<L<String>>,
    /// `proxy_send_timeout` / `grpc_send_timeout`.
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
        inherit(&mut self.stapling, &p.stapling);
        inherit(&mut self.stapling_file, &p.stapling_file);
        inherit(&mut self.ocsp, &p.ocsp);
        inherit(&mut self.ocsp_responder, &p.ocsp_responder);
        inherit(&mut self.ocsp_cache, &p.ocsp_cache);
        inherit(&mut self.session_cache, &p.session_cache);
        inherit(&mut self.session_tickets, &p.session_tickets);
        inherit_vec(&mut self.ticket_keys, &p.ticket_keys);
        inherit(&mut self.session_timeout, &p.session_timeout);
        inherit(&mut self.keepalive_timeout, &p.keepalive_timeout);
        inherit(&mut self.keepalive_requests, &p.keepalive_requests);
        inherit(&mut self.http2, &p.http2);
        inherit(&mut self.http2_streams, &p.http2_streams);
        inherit(&mut self.client_max_body_size, &p.client_max_body_size);
        inherit(&mut self.header_timeout, &p.header_timeout);
        inherit(&mut self.header_buffers, &p.header_buffers);
        inherit(&mut self.body_timeout, &p.body_timeout);
        inherit(&mut self.send_timeout, &p.send_timeout);
        inherit(&mut self.access_log, &p.access_log);
        inherit(&mut self.root, &p.root);
        inherit(&mut self.index, &p.index);
        self.proxy.inherit(&p.proxy);
        self.grpc.inherit(&p.grpc);
    }

    /// Takes `d` into this level if it is one of the inheritable directives allowed at
    /// `level`; returns false (and records nothing) for any other directive.
    pub fn set(&mut self, d: &Directive, level: Level, diag: &mut Diag, conf_dir: &Path) -> bool {
        let Some((_, allowed, setter)) = DIRECTIVES.iter().find(|(name, ..)| *name == d.name)
        else {
            return self.set_pass(d, diag, conf_dir);
        };
        if *allowed == Allowed::HttpServer && level == Level::Location {
            return false;
        }
        setter(self, &mut Ctx { d, diag, conf_dir });
        true
    }

    /// Takes a `proxy_X` or `grpc_X` directive of [`PASS_DIRECTIVES`] into that module's
    /// settings (they are allowed everywhere); false for any other directive.
    fn set_pass(&mut self, d: &Directive, diag: &mut Diag, conf_dir: &Path) -> bool {
        let (module, rest) = if let Some(rest) = d.name.strip_prefix("proxy_") {
            (&mut self.proxy, rest)
        } else if let Some(rest) = d.name.strip_prefix("grpc_") {
            (&mut self.grpc, rest)
        } else {
            return false;
        };
        let Some((_, setter)) = PASS_DIRECTIVES.iter().find(|(name, _)| *name == rest) else {
            return false;
        };
        setter(module, &mut Ctx { d, diag, conf_dir });
        true
    }
}

impl Proxy {
    /// Completes this level's settings from its parent's.
    fn inherit(&mut self, q: &Proxy) {
        inherit(&mut self.headers, &q.headers);
        inherit(&mut self.http_version, &q.http_version);
        inherit(&mut self.ssl_verify, &q.ssl_verify);
        inherit(&mut self.ssl_verify_depth, &q.ssl_verify_depth);
        inherit(&mut self.ssl_certificate, &q.ssl_certificate);
        inherit(&mut self.ssl_certificate_key, &q.ssl_certificate_key);
        inherit(
            &mut self.ssl_trusted_certificate,
            &q.ssl_trusted_certificate,
        );
        inherit(&mut self.ssl_name, &q.ssl_name);
        inherit(&mut self.ssl_server_name, &q.ssl_server_name);
        inherit(&mut self.ssl_protocols, &q.ssl_protocols);
        inherit(&mut self.ssl_session_reuse, &q.ssl_session_reuse);
        inherit(&mut self.connect_timeout, &q.connect_timeout);
        inherit(&mut self.read_timeout, &q.read_timeout);
        inherit(&mut self.send_timeout, &q.send_timeout);
    }

    /// Where each setting of this level was written, in directive order.
    pub fn origins(&self) -> Vec<&Origin> {
        let mut at: Vec<&Origin> = [
            self.http_version.as_ref().map(|v| &v.at),
            self.ssl_verify.as_ref().map(|v| &v.at),
            self.ssl_verify_depth.as_ref().map(|v| &v.at),
            self.ssl_certificate.as_ref().map(|v| &v.at),
            self.ssl_certificate_key.as_ref().map(|v| &v.at),
            self.ssl_trusted_certificate.as_ref().map(|v| &v.at),
            self.ssl_name.as_ref().map(|v| &v.at),
            self.ssl_server_name.as_ref().map(|v| &v.at),
            self.ssl_protocols.as_ref().map(|v| &v.at),
            self.ssl_session_reuse.as_ref().map(|v| &v.at),
            self.connect_timeout.as_ref().map(|v| &v.at),
            self.read_timeout.as_ref().map(|v| &v.at),
            self.send_timeout.as_ref().map(|v| &v.at),
        ]
        .into_iter()
        .flatten()
        .chain(self.headers.iter().flatten().map(|h| &h.at))
        .collect();
        at.sort_by_key(|o| (o.file.clone(), o.line));
        at
    }
}

/// Where an inheritable directive may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// `http` and `server` only (the TLS settings, which nginx fixes per server).
    HttpServer,
    /// `http`, `server` and `location`.
    Anywhere,
}

/// Takes one directive (already known by name) into a level.
type Setter = fn(&mut Scope, &mut Ctx<'_>);

/// Every inheritable directive: its name, where it may be written, and how it is taken in.
#[rustfmt::skip]
const DIRECTIVES: &[(&str, Allowed, Setter)] = &[
    ("ssl", Allowed::HttpServer, |s, c| c.once(&mut s.ssl, Ctx::deprecated_ssl)),
    ("ssl_certificate", Allowed::HttpServer, |s, c| c.push(&mut s.certs, Ctx::path)),
    ("ssl_certificate_key", Allowed::HttpServer, |s, c| c.push(&mut s.keys, Ctx::path)),
    ("ssl_client_certificate", Allowed::HttpServer, |s, c| c.once(&mut s.client_ca, Ctx::path)),
    ("ssl_trusted_certificate", Allowed::HttpServer, |s, c| c.once(&mut s.trusted, Ctx::path)),
    ("ssl_crl", Allowed::HttpServer, |s, c| c.once(&mut s.crl, Ctx::path)),
    ("ssl_stapling", Allowed::HttpServer, |s, c| c.once(&mut s.stapling, Ctx::flag)),
    ("ssl_stapling_file", Allowed::HttpServer, |s, c| c.once(&mut s.stapling_file, Ctx::path)),
    ("ssl_ocsp", Allowed::HttpServer, |s, c| c.once(&mut s.ocsp, Ctx::ocsp)),
    ("ssl_ocsp_responder", Allowed::HttpServer, |s, c| c.once(&mut s.ocsp_responder, Ctx::text)),
    ("ssl_ocsp_cache", Allowed::HttpServer, |s, c| c.once(&mut s.ocsp_cache, Ctx::ocsp_cache)),
    ("ssl_session_ticket_key", Allowed::HttpServer, |s, c| c.push(&mut s.ticket_keys, Ctx::path)),
    ("ssl_verify_client", Allowed::HttpServer, |s, c| c.once(&mut s.verify_client, Ctx::verify_client)),
    ("ssl_verify_depth", Allowed::HttpServer, |s, c| c.once(&mut s.verify_depth, Ctx::depth)),
    ("ssl_protocols", Allowed::HttpServer, |s, c| c.once(&mut s.protocols, Ctx::protocols)),
    ("ssl_session_cache", Allowed::HttpServer, |s, c| c.once(&mut s.session_cache, Ctx::session_cache)),
    ("ssl_session_tickets", Allowed::HttpServer, |s, c| c.once(&mut s.session_tickets, Ctx::flag)),
    ("ssl_session_timeout", Allowed::HttpServer, |s, c| c.once(&mut s.session_timeout, Ctx::duration)),
    ("keepalive_timeout", Allowed::Anywhere, |s, c| c.once(&mut s.keepalive_timeout, Ctx::keepalive_timeout)),
    ("keepalive_requests", Allowed::Anywhere, |s, c| c.once(&mut s.keepalive_requests, Ctx::number)),
    ("http2", Allowed::HttpServer, |s, c| c.once(&mut s.http2, Ctx::flag)),
    ("http2_max_concurrent_streams", Allowed::HttpServer, |s, c| c.once(&mut s.http2_streams, Ctx::number)),
    ("client_max_body_size", Allowed::Anywhere, |s, c| c.once(&mut s.client_max_body_size, Ctx::size)),
    ("large_client_header_buffers", Allowed::HttpServer, |s, c| c.once(&mut s.header_buffers, Ctx::header_buffers)),
    ("client_header_timeout", Allowed::HttpServer, |s, c| c.once(&mut s.header_timeout, Ctx::duration)),
    ("client_body_timeout", Allowed::Anywhere, |s, c| c.once(&mut s.body_timeout, Ctx::duration)),
    ("send_timeout", Allowed::Anywhere, |s, c| c.once(&mut s.send_timeout, Ctx::duration)),
    ("access_log", Allowed::Anywhere, |s, c| c.access_log(&mut s.access_log)),
    ("root", Allowed::Anywhere, |s, c| c.once(&mut s.root, Ctx::path)),
    ("index", Allowed::Anywhere, |s, c| c.once(&mut s.index, Ctx::index)),
    ("proxy_http_version", Allowed::Anywhere, |s, c| c.once(&mut s.proxy.http_version, Ctx::http_version)),
];

/// Takes one `proxy_X` / `grpc_X` directive into its module's settings.
type PassSetter = fn(&mut Proxy, &mut Ctx<'_>);

/// The directives the proxy and gRPC modules both have, without their `proxy_` / `grpc_`
/// prefix: each module's are its own, allowed in http, server and location.
#[rustfmt::skip]
const PASS_DIRECTIVES: &[(&str, PassSetter)] = &[
    ("set_header", |p, c| c.set_header(&mut p.headers)),
    ("ssl_verify", |p, c| c.once(&mut p.ssl_verify, Ctx::flag)),
    ("ssl_verify_depth", |p, c| c.once(&mut p.ssl_verify_depth, Ctx::depth)),
    ("ssl_certificate", |p, c| c.once(&mut p.ssl_certificate, Ctx::path)),
    ("ssl_certificate_key", |p, c| c.once(&mut p.ssl_certificate_key, Ctx::path)),
    ("ssl_trusted_certificate", |p, c| c.once(&mut p.ssl_trusted_certificate, Ctx::path)),
    ("ssl_name", |p, c| c.once(&mut p.ssl_name, Ctx::text)),
    ("ssl_server_name", |p, c| c.once(&mut p.ssl_server_name, Ctx::flag)),
    ("ssl_protocols", |p, c| c.once(&mut p.ssl_protocols, Ctx::protocols)),
    ("ssl_session_reuse", |p, c| c.once(&mut p.ssl_session_reuse, Ctx::flag)),
    ("connect_timeout", |p, c| c.once(&mut p.connect_timeout, Ctx::duration)),
    ("read_timeout", |p, c| c.once(&mut p.read_timeout, Ctx::duration)),
    ("send_timeout", |p, c| c.once(&mut p.send_timeout, Ctx::duration)),
];

/// Whether `name` is a `proxy_X` / `grpc_X` directive [`Scope::set`] takes (for "not
/// allowed here" errors).
pub fn is_pass_directive(name: &str) -> bool {
    let rest = name
        .strip_prefix("proxy_")
        .or_else(|| name.strip_prefix("grpc_"));
    rest.is_some_and(|r| PASS_DIRECTIVES.iter().any(|(n, _)| *n == r))
}

/// One directive being taken in: its arguments are read (and their errors reported) here.
struct Ctx<'a> {
    d: &'a Directive,
    diag: &'a mut Diag,
    conf_dir: &'a Path,
}

impl<'a> Ctx<'a> {
    /// Reads the value with `read`; sets it unless the level already has one.
    fn once<T>(&mut self, slot: &mut Option<L<T>>, read: fn(&mut Self) -> Option<T>) {
        if let Some(v) = read(self) {
            once(slot, v, self.d, self.diag);
        }
    }

    /// Reads the value with `read`; adds it to the level's list.
    fn push<T>(&mut self, list: &mut Vec<L<T>>, read: fn(&mut Self) -> Option<T>) {
        if let Some(v) = read(self) {
            list.push(L::new(v, &self.d.origin));
        }
    }

    /// The single argument.
    fn text(&mut self) -> Option<String> {
        self.diag.one(self.d).map(str::to_string)
    }

    /// The single argument, a file path.
    fn path(&mut self) -> Option<String> {
        let a = self.diag.one(self.d)?;
        file_path(a, &self.d.origin, self.diag, self.conf_dir)
    }

    /// The single argument, `on` or `off`.
    fn flag(&mut self) -> Option<bool> {
        let a = self.diag.one(self.d)?;
        self.diag.flag(self.d, a)
    }

    /// The single argument, a count.
    fn number(&mut self) -> Option<u64> {
        let a = self.diag.one(self.d)?;
        self.diag.number(self.d, a)
    }

    /// The single argument, a time.
    fn duration(&mut self) -> Option<String> {
        let a = self.diag.one(self.d)?;
        self.diag.duration(self.d, a)
    }

    /// The single argument, a size.
    fn size(&mut self) -> Option<String> {
        let a = self.diag.one(self.d)?;
        self.diag.size(self.d, a)
    }

    /// A certificate chain depth.
    fn depth(&mut self) -> Option<u32> {
        let n = self.number()?;
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.diag.error(&self.d.origin, "depth too large");
                None
            }
        }
    }

    /// `ssl on|off`, warned about as nginx's deprecated form.
    fn deprecated_ssl(&mut self) -> Option<bool> {
        let v = self.flag()?;
        self.diag.warn(
            &self.d.origin,
            "deprecated in nginx; write `listen ... ssl` instead",
        );
        Some(v)
    }

    /// `ssl_verify_client`.
    fn verify_client(&mut self) -> Option<String> {
        let a = self.diag.one(self.d)?;
        match a {
            "on" | "off" | "optional" | "optional_no_ca" => Some(a.to_string()),
            _ => {
                self.diag.error(
                    &self.d.origin,
                    format!("invalid value \"{a}\"; expected on, off, optional or optional_no_ca"),
                );
                None
            }
        }
    }

    /// `ssl_protocols`, `proxy_ssl_protocols` and `grpc_ssl_protocols`.
    fn protocols(&mut self) -> Option<Vec<String>> {
        protocols(self.d, self.diag)
    }

    /// `ssl_session_cache`.
    fn session_cache(&mut self) -> Option<u64> {
        session_cache(self.d, self.diag)
    }

    /// `ssl_ocsp on | leaf | off`.
    fn ocsp(&mut self) -> Option<String> {
        let a = self.diag.one(self.d)?;
        match a {
            "on" | "leaf" | "off" => Some(a.to_string()),
            _ => {
                self.diag.error(
                    &self.d.origin,
                    format!("invalid value \"{a}\"; expected on, off or leaf"),
                );
                None
            }
        }
    }

    /// `ssl_ocsp_cache off | [shared:NAME:SIZE]`: answers kept, as `ssl_session_cache`
    /// counts sessions (None inside for `off`).
    fn ocsp_cache(&mut self) -> Option<Option<u64>> {
        if self.d.args.len() == 1 && self.d.args[0] == "off" {
            return Some(None);
        }
        session_cache(self.d, self.diag).map(Some)
    }

    /// `keepalive_timeout TIME [HEADER_TIME]`; a zero time (keep-alive off) is None inside.
    fn keepalive_timeout(&mut self) -> Option<Option<String>> {
        let d = self.d;
        if !self.diag.args(d, 1..=2) {
            return None;
        }
        if d.args.len() == 2 {
            self.diag.warn(
                &d.origin,
                "the second value (the Keep-Alive: timeout= header) is ignored; ringgate sends no Keep-Alive header",
            );
        }
        let v = self.diag.duration(d, &d.args[0])?;
        let zero = parse_duration(&v).is_ok_and(|t| t.is_zero());
        Some(if zero { None } else { Some(v) })
    }

    /// `large_client_header_buffers NUMBER SIZE`: the head limit in bytes, and SIZE.
    fn header_buffers(&mut self) -> Option<(u64, String)> {
        let d = self.d;
        if !self.diag.args(d, 2..=2) {
            return None;
        }
        let number = self.diag.number(d, &d.args[0]);
        let size = self.diag.size(d, &d.args[1]);
        let (n, size) = (number?, size?);
        let bytes = parse_size(&size).unwrap_or(0);
        if n == 0 || bytes == 0 {
            self.diag
                .error(&d.origin, "invalid value: number and size must not be 0");
            return None;
        }
        Some((n.saturating_mul(bytes), size))
    }

    /// `index FILE...`.
    fn index(&mut self) -> Option<Vec<String>> {
        let d = self.d;
        if !self.diag.args(d, 1..=usize::MAX) {
            return None;
        }
        if d.args.iter().any(|a| a.contains('$')) {
            self.diag
                .error(&d.origin, "variables in index are not supported");
            return None;
        }
        Some(d.args.clone())
    }

    /// `proxy_http_version 1.0|1.1`; 1.0 is taken with a warning.
    fn http_version(&mut self) -> Option<String> {
        let a = self.diag.one(self.d)?;
        match a {
            "1.1" => {}
            "1.0" => self.diag.warn(
                &self.d.origin,
                "ringgate always speaks HTTP/1.1 (with keep-alive) to upstreams",
            ),
            _ => {
                self.diag.error(
                    &self.d.origin,
                    format!("invalid value \"{a}\"; expected 1.0 or 1.1"),
                );
                return None;
            }
        }
        Some(a.to_string())
    }

    /// `access_log`: the first of a level counts; a second is warned about and ignored.
    fn access_log(&mut self, slot: &mut Option<L<AccessLog>>) {
        let Some(v) = access_log(self.d, self.diag, self.conf_dir) else {
            return;
        };
        if slot.is_some() {
            self.diag.warn(
                &self.d.origin,
                "a second access_log on one level is ignored; ringgate writes one log per server",
            );
        } else {
            *slot = Some(L::new(v, &self.d.origin));
        }
    }

    /// `proxy_set_header` / `grpc_set_header NAME VALUE`: a later one for the same name
    /// replaces the earlier.
    fn set_header(&mut self, headers: &mut Option<Vec<L<(String, String)>>>) {
        let d = self.d;
        if !self.diag.args(d, 2..=2) {
            return;
        }
        let (name, value) = (&d.args[0], &d.args[1]);
        let list = headers.get_or_insert_with(Vec::new);
        if let Some(prev) = list.iter().position(|h| h.v.0.eq_ignore_ascii_case(name)) {
            self.diag.warn(
                &d.origin,
                format!(
                    "replaces the {} {} on line {}; ringgate sends one value per header",
                    d.name, name, list[prev].at.line
                ),
            );
            list.remove(prev);
        }
        list.push(L::new((name.clone(), value.clone()), &d.origin));
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
