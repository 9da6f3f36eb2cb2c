//! Directives into ringgate's configuration model, following nginx's contexts and inheritance,
//! then written as TOML ([`emit`]). Problems are collected, not stopped at, so that a user sees
//! every error at once.

pub mod emit;
pub mod model;
pub mod policy;
pub mod scope;
mod server;
mod upstream;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use super::parser::Directive;
use super::{NginxError, NginxErrors, Origin, Translation, Warning};
use crate::config::units::{parse_duration, parse_size};
use model::*;
use policy::Disposition;
use scope::{Level, Scope};

/// Errors and warnings found so far, and small argument checks that report through them.
#[derive(Debug, Default)]
pub struct Diag {
    /// Errors.
    pub errors: Vec<NginxError>,
    /// Warnings.
    pub warnings: Vec<Warning>,
}

impl Diag {
    /// Records an error at `at`.
    pub fn error(&mut self, at: &Origin, message: impl Into<String>) {
        self.errors.push(NginxError::at(at, message));
    }

    /// Records a warning at `at`.
    pub fn warn(&mut self, at: &Origin, message: impl Into<String>) {
        self.warnings.push(Warning {
            origin: at.clone(),
            message: message.into(),
        });
    }

    /// Checks the number of arguments, as nginx does.
    pub fn args(&mut self, d: &Directive, n: RangeInclusive<usize>) -> bool {
        if n.contains(&d.args.len()) {
            true
        } else {
            self.error(
                &d.origin,
                format!("invalid number of arguments in \"{}\" directive", d.name),
            );
            false
        }
    }

    /// The single argument of `d`.
    pub fn one<'a>(&mut self, d: &'a Directive) -> Option<&'a str> {
        if self.args(d, 1..=1) {
            d.args.first().map(String::as_str)
        } else {
            None
        }
    }

    /// `on` or `off` (any case, as nginx).
    pub fn flag(&mut self, d: &Directive, a: &str) -> Option<bool> {
        if a.eq_ignore_ascii_case("on") {
            Some(true)
        } else if a.eq_ignore_ascii_case("off") {
            Some(false)
        } else {
            self.error(
                &d.origin,
                format!(
                    "invalid value \"{a}\" in \"{}\" directive, it must be \"on\" or \"off\"",
                    d.name
                ),
            );
            None
        }
    }

    /// A non-negative integer.
    pub fn number(&mut self, d: &Directive, a: &str) -> Option<u64> {
        match a.parse::<u64>() {
            // TOML integers are signed 64-bit.
            Ok(n) if i64::try_from(n).is_ok() => Some(n),
            Ok(_) => {
                self.error(&d.origin, format!("number too large \"{a}\""));
                None
            }
            Err(_) => {
                self.error(&d.origin, format!("invalid number \"{a}\""));
                None
            }
        }
    }

    /// An nginx time, checked and returned as written.
    pub fn duration(&mut self, d: &Directive, a: &str) -> Option<String> {
        match parse_duration(a) {
            Ok(_) => Some(a.to_string()),
            Err(m) => {
                self.error(&d.origin, m);
                None
            }
        }
    }

    /// An nginx size, checked and returned as written.
    pub fn size(&mut self, d: &Directive, a: &str) -> Option<String> {
        match parse_size(a) {
            Ok(_) => Some(a.to_string()),
            Err(m) => {
                self.error(&d.origin, m);
                None
            }
        }
    }

    /// A directive outside the subset at this place: known elsewhere, ignorable, or refused.
    pub fn other(&mut self, d: &Directive, context: &str) {
        if SUPPORTED.contains(&d.name.as_str()) || scope::is_pass_directive(&d.name) {
            self.error(
                &d.origin,
                format!(
                    "\"{}\" directive is not allowed here (in {context})",
                    d.name
                ),
            );
            return;
        }
        match policy::disposition(&d.name, &d.args) {
            Disposition::Ignore(why) => self.warn(&d.origin, format!("ignored: {why}")),
            Disposition::Refuse(why) => self.error(
                &d.origin,
                format!("not supported: {why}"),
            ),
            Disposition::Unknown => self.error(
                &d.origin,
                format!("unknown or unsupported directive \"{}\"; ringgate cannot tell whether it changes what clients get, so it refuses it", d.name),
            ),
        }
    }
}

/// Every directive translated somewhere, for "not allowed here" errors (with the `proxy_X` /
/// `grpc_X` pairs of [`scope::is_pass_directive`]).
const SUPPORTED: &[&str] = &[
    "worker_processes",
    "worker_shutdown_timeout",
    "worker_connections",
    "events",
    "http",
    "server",
    "listen",
    "server_name",
    "location",
    "upstream",
    "keepalive",
    "proxy_pass",
    "proxy_http_version",
    "grpc_pass",
    "ssl",
    "ssl_certificate",
    "ssl_certificate_key",
    "ssl_client_certificate",
    "ssl_trusted_certificate",
    "ssl_verify_client",
    "ssl_verify_depth",
    "ssl_protocols",
    "ssl_crl",
    "ssl_stapling",
    "ssl_stapling_file",
    "ssl_ocsp",
    "ssl_ocsp_responder",
    "ssl_ocsp_cache",
    "ssl_session_cache",
    "ssl_session_tickets",
    "ssl_session_ticket_key",
    "ssl_session_timeout",
    "map",
    "if",
    "return",
    "root",
    "index",
    "log_format",
    "access_log",
    "error_log",
    "keepalive_timeout",
    "keepalive_requests",
    "client_max_body_size",
    "client_header_timeout",
    "large_client_header_buffers",
    "client_body_timeout",
    "send_timeout",
    "types",
    "default_type",
];

/// Directives that only appear in the main context.
const MAIN_ONLY: &[&str] = &[
    "http",
    "events",
    "worker_processes",
    "user",
    "pid",
    "worker_rlimit_nofile",
    "daemon",
    "master_process",
    "load_module",
    "worker_cpu_affinity",
    "env",
    "pcre_jit",
    "stream",
];
/// Directives that only appear in a server or location.
const SERVER_ONLY: &[&str] = &["listen", "server_name", "location", "if", "return"];

/// Translates a parsed configuration; `main` is the main file's absolute path.
pub fn translate(ast: &[Directive], main: &Path) -> Result<Translation, NginxErrors> {
    let conf_dir = main.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut t = Translator {
        diag: Diag::default(),
        conf_dir,
        out: Out::default(),
        upstream_blocks: Vec::new(),
        registry: upstream::Registry::default(),
        log_formats: BTreeMap::new(),
        used_formats: Vec::new(),
        types: None,
        default_type: None,
        serves_files: false,
        main_error_log: false,
    };
    t.top(ast, main);
    if !t.diag.errors.is_empty() {
        return Err(NginxErrors(t.diag.errors));
    }
    let (toml, source_map) = emit::render(&t.out, main);
    Ok(Translation {
        toml,
        source_map,
        warnings: t.diag.warnings,
    })
}

/// A `log_format`: its text and where it was defined.
type LogFormat = L<String>;

struct Translator {
    diag: Diag,
    conf_dir: PathBuf,
    out: Out,
    upstream_blocks: Vec<upstream::Block>,
    registry: upstream::Registry,
    log_formats: BTreeMap<String, LogFormat>,
    used_formats: Vec<String>,
    types: Option<Vec<L<(String, String)>>>,
    default_type: Option<L<String>>,
    serves_files: bool,
    main_error_log: bool,
}

impl Translator {
    /// The main file: a whole nginx.conf, or a fragment (a conf.d file of `server` blocks, or
    /// the inside of one `server`), read in the context it was written for.
    fn top(&mut self, ast: &[Directive], main: &Path) {
        let names = || ast.iter().map(|d| d.name.as_str());
        let file_origin = |directive: &str| Origin {
            file: std::sync::Arc::from(main),
            line: 1,
            directive: directive.into(),
        };
        if names().any(|n| MAIN_ONLY.contains(&n)) || ast.is_empty() {
            self.main_level(ast);
        } else if let Some(first) = ast.iter().find(|d| SERVER_ONLY.contains(&d.name.as_str())) {
            let at = file_origin("server");
            let why = Origin {
                directive: "server".into(),
                ..first.origin.clone()
            };
            self.diag.warn(
                &why,
                format!(
                    "no http or server block: the file is read as the inside of one server block because it holds `{}`, which nginx takes only in a server or a location",
                    first.name
                ),
            );
            let server = Directive {
                name: "server".into(),
                args: Vec::new(),
                block: Some(ast.to_vec()),
                origin: at,
            };
            self.http(std::slice::from_ref(&server));
        } else {
            let at = file_origin("http");
            self.diag.warn(
                &at,
                "no http block: the file is read as the inside of http { } (like a conf.d file)",
            );
            self.http(ast);
        }
        self.finish();
    }

    fn main_level(&mut self, ast: &[Directive]) {
        let mut http_seen: Option<Origin> = None;
        for d in ast {
            match d.name.as_str() {
                "worker_processes" => self.worker_processes(d),
                "worker_shutdown_timeout" => {
                    if let Some(v) = self.diag.one(d).and_then(|a| self.diag.duration(d, a)) {
                        self.out.runtime.shutdown_timeout = Some(L::new(v, &d.origin));
                    }
                }
                "error_log" => {
                    self.error_log(d);
                    self.main_error_log = true;
                }
                "events" => self.events(d),
                "http" => {
                    if let Some(prev) = &http_seen {
                        self.diag.error(
                            &d.origin,
                            format!(
                                "\"http\" directive is duplicate (first on line {})",
                                prev.line
                            ),
                        );
                        continue;
                    }
                    http_seen = Some(d.origin.clone());
                    if let Some(block) = self.block(d, 0..=0) {
                        self.http(block);
                    }
                }
                _ => self.diag.other(d, "the main context"),
            }
        }
    }

    /// `worker_processes N|auto` (auto: one per CPU, ringgate's 0).
    fn worker_processes(&mut self, d: &Directive) {
        let Some(a) = self.diag.one(d) else { return };
        let n = if a == "auto" {
            Some(0)
        } else {
            self.diag.number(d, a)
        };
        if let Some(n) = n {
            self.out.runtime.workers = Some(L::new(n, &d.origin));
        }
    }

    /// `events { worker_connections N; }`.
    fn events(&mut self, d: &Directive) {
        let Some(block) = self.block(d, 0..=0) else {
            return;
        };
        for e in block {
            if e.name != "worker_connections" {
                self.diag.other(e, "events");
                continue;
            }
            // nginx counts upstream connections in it too; ringgate's cap counts clients
            // only, so the same number admits no fewer.
            if let Some(n) = self.diag.one(e).and_then(|a| self.diag.number(e, a)) {
                self.out.runtime.max_connections_per_worker = Some(L::new(n, &e.origin));
            }
        }
    }

    /// The block of `d`, which must have one and `args` arguments.
    fn block<'a>(
        &mut self,
        d: &'a Directive,
        args: RangeInclusive<usize>,
    ) -> Option<&'a [Directive]> {
        if !self.diag.args(d, args) {
            return None;
        }
        match &d.block {
            Some(b) => Some(b),
            None => {
                self.diag.error(
                    &d.origin,
                    format!("directive \"{}\" has no opening \"{{\"", d.name),
                );
                None
            }
        }
    }

    /// A directive that must not have a block.
    fn simple(&mut self, d: &Directive) -> bool {
        if d.block.is_some() {
            self.diag.error(
                &d.origin,
                format!("directive \"{}\" is not terminated by \";\"", d.name),
            );
            false
        } else {
            true
        }
    }

    /// `error_log FILE [LEVEL]`: ringgate has one error log, taken from the main context
    /// (or http when main has none).
    fn error_log(&mut self, d: &Directive) {
        if !self.diag.args(d, 1..=2) {
            return;
        }
        let level = match d.args.get(1).map(String::as_str) {
            None | Some("error") | Some("crit") | Some("alert") | Some("emerg") => "error",
            Some("warn") => "warn",
            Some("notice") | Some("info") => "info",
            Some("debug") => "debug",
            Some(other) => {
                self.diag
                    .error(&d.origin, format!("invalid log level \"{other}\""));
                return;
            }
        };
        if self.out.runtime.error_log.is_some() || self.out.runtime.log_level.is_some() {
            self.diag.warn(
                &d.origin,
                "ignored: ringgate has one error log, set by the first error_log",
            );
            return;
        }
        let target = &d.args[0];
        if target.starts_with("syslog:") || target.starts_with("memory:") {
            self.diag
                .error(&d.origin, "only files and stderr are supported");
            return;
        }
        if target != "stderr" {
            if let Some(p) = scope::file_path(target, &d.origin, &mut self.diag, &self.conf_dir) {
                self.out.runtime.error_log = Some(L::new(p, &d.origin));
            }
        }
        self.out.runtime.log_level = Some(L::new(level.to_string(), &d.origin));
    }

    fn http(&mut self, block: &[Directive]) {
        let mut sc = Scope::default();
        let mut servers = Vec::new();
        for d in block {
            match d.name.as_str() {
                "server" => {
                    if self.block(d, 0..=0).is_some() {
                        servers.push(d);
                    }
                }
                "upstream" => self.upstream_block(d),
                "map" => self.map(d),
                "log_format" => self.log_format(d),
                "types" => self.types(d),
                "default_type" => {
                    if self.simple(d) {
                        if let Some(a) = self.diag.one(d) {
                            if self.default_type.is_some() {
                                self.diag
                                    .error(&d.origin, "\"default_type\" directive is duplicate");
                            }
                            self.default_type = Some(L::new(a.to_string(), &d.origin));
                        }
                    }
                }
                "error_log" => {
                    if self.main_error_log {
                        self.diag.warn(
                            &d.origin,
                            "ignored: ringgate has one error log, set in the main context",
                        );
                    } else {
                        self.error_log(d);
                    }
                }
                _ => {
                    if d.block.is_some() || !sc.set(d, Level::Http, &mut self.diag, &self.conf_dir)
                    {
                        self.diag.other(d, "http");
                    }
                }
            }
        }
        let mut parsed = Vec::new();
        for (i, d) in servers.into_iter().enumerate() {
            if let Some(s) = self.server(d, &sc, i) {
                parsed.push(s);
            }
        }
        self.listeners(parsed);
    }

    /// `log_format NAME [escape=...] STRING...`: the strings are joined, as nginx does.
    fn log_format(&mut self, d: &Directive) {
        if !self.simple(d) || !self.diag.args(d, 2..=usize::MAX) {
            return;
        }
        let name = d.args[0].clone();
        let mut parts = &d.args[1..];
        if let Some(esc) = parts.first().and_then(|p| p.strip_prefix("escape=")) {
            if esc != "default" {
                self.diag.warn(
                    &d.origin,
                    format!(
                        "escape={esc} ignored: ringgate escapes values as nginx's default does"
                    ),
                );
            }
            parts = &parts[1..];
        }
        if parts.is_empty() {
            self.diag
                .error(&d.origin, "log_format has no format string");
            return;
        }
        if name == "combined" || self.log_formats.contains_key(&name) {
            self.diag.error(
                &d.origin,
                format!("duplicate \"log_format\" name \"{name}\""),
            );
            return;
        }
        self.log_formats
            .insert(name, L::new(parts.concat(), &d.origin));
    }

    /// `types { MIME ext...; }`: one table for the whole configuration, as ringgate has one.
    fn types(&mut self, d: &Directive) {
        let Some(block) = self.block(d, 0..=0) else {
            return;
        };
        let list = self.types.get_or_insert_with(Vec::new);
        for e in block {
            if e.block.is_some() || e.args.is_empty() {
                self.diag
                    .error(&e.origin, "a types entry is `MIME-TYPE extension...;`");
                continue;
            }
            for ext in &e.args {
                let ext = ext.to_ascii_lowercase();
                list.retain(|t| t.v.0 != ext);
                list.push(L::new((ext, e.name.clone()), &e.origin));
            }
        }
    }

    /// `map SOURCE $VARIABLE { default V; KEY V; ~REGEX V; ~*REGEX V; }`.
    fn map(&mut self, d: &Directive) {
        let Some(block) = self.block(d, 2..=2) else {
            return;
        };
        let Some(variable) = d.args[1].strip_prefix('$').filter(|v| !v.is_empty()) else {
            self.diag.error(
                &d.origin,
                format!("invalid variable name \"{}\"", d.args[1]),
            );
            return;
        };
        if self.out.maps.iter().any(|m| m.variable == variable) {
            self.diag.error(
                &d.origin,
                format!("the variable ${variable} is defined twice"),
            );
            return;
        }
        let mut default: Option<L<String>> = None;
        let mut entries = Vec::new();
        for e in block {
            if e.block.is_some() {
                self.diag.error(&e.origin, "a map entry is `KEY VALUE;`");
                continue;
            }
            match (e.name.as_str(), e.args.len()) {
                ("hostnames", 0) => self.diag.error(
                    &e.origin,
                    "map hostnames (wildcard host matching) is not supported",
                ),
                ("volatile", 0) => self.diag.warn(
                    &e.origin,
                    "ignored: ringgate computes map values per request anyway",
                ),
                ("default", 1) => {
                    if default.is_some() {
                        self.diag
                            .error(&e.origin, "duplicate default map parameter");
                    }
                    default = Some(L::new(e.args[0].clone(), &e.origin));
                }
                (key, 1) => entries.push(L::new(map_entry(key, &e.args[0]), &e.origin)),
                _ => self
                    .diag
                    .error(&e.origin, "invalid number of the map parameters"),
            }
        }
        let default = default.unwrap_or_else(|| L::new(String::new(), &d.origin));
        self.out.maps.push(OutMap {
            at: d.origin.clone(),
            source: d.args[0].clone(),
            variable: variable.to_string(),
            default,
            entries,
        });
    }

    /// Writes what only the whole configuration decides: used log formats, the static table,
    /// upstreams nobody referred to.
    fn finish(&mut self) {
        for name in std::mem::take(&mut self.used_formats) {
            if self.out.log_formats.iter().any(|f| f.v.0 == name) {
                continue;
            }
            if let Some(f) = self.log_formats.get(&name) {
                self.out
                    .log_formats
                    .push(L::new((name.clone(), f.v.clone()), &f.at));
            }
        }
        if self.serves_files {
            let at = self
                .default_type
                .as_ref()
                .map(|d| d.at.clone())
                .or_else(|| {
                    self.types
                        .as_ref()
                        .and_then(|t| t.first().map(|t| t.at.clone()))
                })
                .or_else(|| self.out.listeners.first().map(|l| l.at.clone()));
            if let Some(at) = at {
                self.out.static_files = Some(OutStatic {
                    // nginx's default_type default.
                    default_type: self
                        .default_type
                        .clone()
                        .unwrap_or_else(|| L::new("text/plain".into(), &at)),
                    types: self.types.clone(),
                });
            }
        }
        self.unreferenced_upstreams();
    }
}

/// A map entry `KEY VALUE`: `~*REGEX` (case-insensitive), `~REGEX`, or an exact key (a
/// leading `\` escapes a key that starts with `~`).
fn map_entry(key: &str, value: &str) -> (MapMatch, String, String) {
    let value = value.to_string();
    if let Some(re) = key.strip_prefix("~*") {
        (MapMatch::RegexNocase, re.to_string(), value)
    } else if let Some(re) = key.strip_prefix('~') {
        (MapMatch::Regex, re.to_string(), value)
    } else {
        let k = key.strip_prefix('\\').unwrap_or(key);
        (MapMatch::Exact, k.to_string(), value)
    }
}

#[cfg(test)]
mod tests;
