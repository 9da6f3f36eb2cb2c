//! Configuration: the TOML file read into typed, validated structs.
//!
//! Two stages: [`raw`] is the file's shape (serde, unknown keys refused); [`load`] resolves it
//! into [`Config`], where every address is parsed, every certificate and key is loaded and
//! checked, and every reference resolves. Nothing downstream validates again.

pub mod error;
pub mod raw;
pub mod units;
mod upstream_tls;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use error::Collector;
pub use error::{ConfigError, ConfigErrors};
use raw::{RawConfig, RawHttp, RawListener, RawLocation, RawReturn, RawTls, RawUpstream};
use units::Quantity;

use crate::tls::client_auth::{ClientAuthMode, FailureMode};
use crate::tls::{ServerTls, TlsVersions};
use crate::upstream::tls::UpstreamTls;
use crate::vars::Template;

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Workers and process settings.
    pub runtime: Runtime,
    /// Addresses served.
    pub listeners: Vec<Listener>,
    /// Upstream groups, indexed by [`ProxyPass::upstream`].
    pub upstreams: Vec<Upstream>,
}

/// Which io driver workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring where the kernel offers it, else the epoll-based legacy driver.
    Auto,
    /// Always the legacy driver.
    Legacy,
}

/// `[runtime]`.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Number of worker threads.
    pub workers: usize,
    /// CPU for each worker (pinned), or empty for no pinning.
    pub cpus: Vec<usize>,
    /// How long in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// io driver.
    pub driver: DriverChoice,
    /// Log verbosity.
    pub log_level: log::LevelFilter,
}

/// One listening address (an nginx `server` block).
#[derive(Debug)]
pub struct Listener {
    /// Name used in logs and the readiness line.
    pub name: String,
    /// Address to bind (port 0 picks a free port).
    pub addr: SocketAddr,
    /// `server_name`s; the first is `$host` when a request names none.
    pub server_names: Vec<String>,
    /// TLS, or None for plain HTTP.
    pub tls: Option<Arc<ServerTls>>,
    /// Client-side limits and timeouts.
    pub http: HttpSettings,
    /// Locations, matched as nginx does (exact first, then longest prefix).
    pub locations: Vec<Location>,
}

/// Client-side HTTP limits.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request head (431 beyond).
    pub max_header_bytes: usize,
    /// Most header fields (431 beyond).
    pub max_headers: usize,
    /// Time to receive a whole request head (408 after).
    pub header_timeout: Duration,
    /// Longest pause between two reads of a request body (408 after).
    pub body_timeout: Duration,
    /// Longest pause between two writes to the client.
    pub send_timeout: Duration,
    /// Idle time allowed between requests on a kept-alive connection.
    pub keepalive_timeout: Duration,
    /// Requests served on one connection before it is closed.
    pub keepalive_requests: u64,
    /// Largest request body, 0 for unlimited (413 beyond).
    pub client_max_body_size: u64,
    /// Append the client address to `X-Forwarded-For`.
    pub x_forwarded_for: bool,
    /// Set `X-Forwarded-Proto`.
    pub x_forwarded_proto: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        // nginx's defaults where nginx has one.
        HttpSettings {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            keepalive_requests: 1000,
            client_max_body_size: 1024 * 1024,
            x_forwarded_for: true,
            x_forwarded_proto: true,
        }
    }
}

/// How a location's path matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// nginx `location /path`.
    Prefix,
    /// nginx `location = /path`.
    Exact,
}

/// A path and its handling.
#[derive(Debug)]
pub struct Location {
    /// The path as written.
    pub path: String,
    /// Prefix or exact.
    pub kind: MatchKind,
    /// What to do.
    pub action: Action,
    /// `proxy_set_header`s: name and compiled value; an empty value removes the header.
    pub set_headers: Vec<(String, Template)>,
}

/// What a location does with a request.
#[derive(Debug)]
pub enum Action {
    /// `proxy_pass`.
    Proxy(ProxyPass),
    /// `return CODE [text|URL]`.
    Return {
        /// Status code.
        status: u16,
        /// Body text, or the Location for 301/302/303/307/308.
        body: Option<Template>,
    },
}

/// A resolved `proxy_pass`.
#[derive(Debug)]
pub struct ProxyPass {
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// The URI part, if `proxy_pass` had one: it replaces the matched location prefix.
    pub uri: Option<String>,
    /// `$proxy_host`: host[:port] as written, the default `Host` sent upstream.
    pub proxy_host: String,
}

/// An upstream group.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Name (or the host:port of an implicit group).
    pub name: String,
    /// Servers, used round robin.
    pub servers: Vec<SocketAddr>,
    /// Idle connections kept per worker.
    pub keepalive: usize,
    /// How long an idle pooled connection is kept.
    pub keepalive_timeout: Duration,
    /// Time to establish a connection (504 after... as nginx: 504 on connect timeout).
    pub connect_timeout: Duration,
    /// Longest wait between two reads from the upstream (504 after).
    pub read_timeout: Duration,
    /// Longest wait between two writes to the upstream (504 after).
    pub send_timeout: Duration,
    /// TLS to the servers (`proxy_pass https://`, `[upstream.tls]`); None for plain HTTP.
    pub tls: Option<Arc<UpstreamTls>>,
}

impl Upstream {
    fn with_defaults(name: String, servers: Vec<SocketAddr>) -> Self {
        Upstream {
            name,
            servers,
            keepalive: 32,
            keepalive_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    parse_str(&source, path)
}

/// Validates configuration text; `path` names it in errors and anchors relative file paths.
pub fn parse_str(source: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut errs = Collector::new(path, source);
    let raw: RawConfig = match structural(source, &mut errs) {
        Some(raw) => raw,
        None => return Err(errs.finish()),
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut resolver = Resolver {
        errs,
        base,
        upstreams: Vec::new(),
        tls_sections: Vec::new(),
    };
    let runtime = resolver.runtime(&raw);
    for (i, u) in raw.upstream.iter().enumerate() {
        resolver.upstream(i, u);
    }
    let explicit = resolver.upstreams.len();
    let mut listeners = Vec::new();
    for (i, l) in raw.listener.iter().enumerate() {
        if let Some(l) = resolver.listener(i, l, explicit) {
            listeners.push(l);
        }
    }
    if raw.listener.is_empty() {
        resolver.errs.push(
            None,
            "listener",
            "no [[listener]] is configured: nothing to serve",
        );
    }
    let mut seen = std::collections::HashSet::new();
    for l in &listeners {
        if l.addr.port() != 0 && !seen.insert(l.addr) {
            resolver.errs.push(
                None,
                &format!("listener `{}`.listen", l.name),
                format!("{} is used by two listeners", l.addr),
            );
        }
    }
    if !resolver.errs.is_empty() {
        return Err(resolver.errs.finish());
    }
    Ok(Config {
        path: path.to_path_buf(),
        runtime,
        listeners,
        upstreams: resolver.upstreams,
    })
}

/// Deserializes the file's shape. serde stops at the first error, so to report every
/// structural error at once we blank the top-level section holding each error (keeping line
/// numbers) and try again, a bounded number of times.
fn structural(source: &str, errs: &mut Collector<'_>) -> Option<RawConfig> {
    let mut text = source.to_string();
    let mut failed = false;
    for _ in 0..32 {
        match toml::from_str::<RawConfig>(&text) {
            Ok(raw) => return (!failed).then_some(raw),
            Err(e) => {
                failed = true;
                // toml's message names the key and what was expected.
                errs.push(e.span(), "", e.message().trim().to_string());
                let region = e.span().and_then(|sp| section_around(&text, sp.start))?;
                let blanked: String = text[region.clone()]
                    .chars()
                    .map(|c| if c == '\n' { '\n' } else { ' ' })
                    .collect();
                if blanked == text[region.clone()] {
                    return None;
                }
                text.replace_range(region, &blanked);
            }
        }
    }
    None
}

/// The byte range of the top-level section (`[runtime]`, one `[[listener]]` with its
/// sub-tables, ...) that contains `offset`.
fn section_around(text: &str, offset: usize) -> Option<std::ops::Range<usize>> {
    let mut starts = vec![0];
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let top_level = t.starts_with('[') && {
            let name = t.trim_start_matches('[').trim_start();
            !name.starts_with("listener.")
                && !name.starts_with("upstream.")
                && !name.starts_with("runtime.")
        };
        if top_level && pos > 0 {
            starts.push(pos);
        }
        pos += line.len();
    }
    let start = *starts.iter().rev().find(|&&s| s <= offset)?;
    let end = starts
        .iter()
        .copied()
        .find(|&s| s > offset)
        .unwrap_or(text.len());
    Some(start..end)
}

struct Resolver<'a> {
    errs: Collector<'a>,
    base: PathBuf,
    upstreams: Vec<Upstream>,
    /// For each explicit upstream: whether it has an `[upstream.tls]` section (loaded or not).
    tls_sections: Vec<bool>,
}

fn span<T>(s: &Spanned<T>) -> Option<std::ops::Range<usize>> {
    Some(s.span())
}

impl Resolver<'_> {
    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn duration(
        &mut self,
        q: &Option<Spanned<Quantity>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        match q {
            None => default,
            Some(q) => match q.get_ref().duration() {
                Ok(d) if d.is_zero() => {
                    self.errs.push(span(q), key, "must be greater than zero");
                    default
                }
                Ok(d) => d,
                Err(m) => {
                    self.errs.push(span(q), key, m);
                    default
                }
            },
        }
    }

    fn size(&mut self, q: &Option<Spanned<Quantity>>, key: &str, default: u64) -> u64 {
        match q {
            None => default,
            Some(q) => match q.get_ref().size() {
                Ok(v) => v,
                Err(m) => {
                    self.errs.push(span(q), key, m);
                    default
                }
            },
        }
    }

    fn runtime(&mut self, raw: &RawConfig) -> Runtime {
        let r = &raw.runtime;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = match &r.workers {
            None => cores,
            Some(w) if *w.get_ref() == 0 => cores,
            Some(w) => {
                if *w.get_ref() > 1024 {
                    self.errs
                        .push(span(w), "runtime.workers", "at most 1024 workers");
                }
                *w.get_ref()
            }
        };
        let cpus = match &r.cpus {
            Some(c) => {
                if c.get_ref().len() < workers.min(1)
                    || (!c.get_ref().is_empty() && c.get_ref().len() < workers)
                {
                    self.errs.push(
                        span(c),
                        "runtime.cpus",
                        format!(
                            "lists {} CPUs for {workers} workers; give one CPU per worker",
                            c.get_ref().len()
                        ),
                    );
                }
                c.get_ref().clone()
            }
            None => (0..workers).map(|i| i % cores).collect(),
        };
        let shutdown_timeout = self.duration(
            &r.shutdown_timeout,
            "runtime.shutdown_timeout",
            Duration::from_secs(10),
        );
        let driver = match r.driver.as_ref().map(|d| (d, d.get_ref().as_str())) {
            None | Some((_, "auto")) => DriverChoice::Auto,
            Some((_, "legacy")) => DriverChoice::Legacy,
            Some((d, other)) => {
                self.errs.push(
                    span(d),
                    "runtime.driver",
                    format!("`{other}` is not a driver; expected \"auto\" or \"legacy\""),
                );
                DriverChoice::Auto
            }
        };
        let log_level = match r.log_level.as_ref() {
            None => log::LevelFilter::Info,
            Some(l) => match l.get_ref().parse() {
                Ok(level) => level,
                Err(_) => {
                    self.errs.push(
                        span(l),
                        "runtime.log_level",
                        "expected one of off, error, warn, info, debug, trace",
                    );
                    log::LevelFilter::Info
                }
            },
        };
        Runtime {
            workers,
            cpus,
            shutdown_timeout,
            driver,
            log_level,
        }
    }

    fn upstream(&mut self, i: usize, u: &RawUpstream) {
        let key = format!("upstream[{i}]");
        let name = u.name.get_ref().clone();
        if self.upstreams.iter().any(|x| x.name == name) {
            self.errs.push(
                span(&u.name),
                &format!("{key}.name"),
                format!("upstream `{name}` is defined twice"),
            );
        }
        let mut servers = Vec::new();
        for s in u.servers.get_ref() {
            match resolve_addr(s, 80) {
                Ok(addrs) => servers.extend(addrs),
                Err(m) => self
                    .errs
                    .push(span(&u.servers), &format!("{key}.servers"), m),
            }
        }
        if u.servers.get_ref().is_empty() {
            self.errs.push(
                span(&u.servers),
                &format!("{key}.servers"),
                "an upstream needs at least one server",
            );
        }
        let mut up = Upstream::with_defaults(name, servers);
        if let Some(k) = &u.keepalive {
            up.keepalive = *k.get_ref();
        }
        up.keepalive_timeout = self.duration(
            &u.keepalive_timeout,
            &format!("{key}.keepalive_timeout"),
            up.keepalive_timeout,
        );
        up.connect_timeout = self.duration(
            &u.connect_timeout,
            &format!("{key}.connect_timeout"),
            up.connect_timeout,
        );
        up.read_timeout = self.duration(
            &u.read_timeout,
            &format!("{key}.read_timeout"),
            up.read_timeout,
        );
        up.send_timeout = self.duration(
            &u.send_timeout,
            &format!("{key}.send_timeout"),
            up.send_timeout,
        );
        if let Some(t) = &u.tls {
            up.tls = self.upstream_tls(&key, &up.name, t);
        }
        self.tls_sections.push(u.tls.is_some());
        self.upstreams.push(up);
    }

    fn listener(
        &mut self,
        i: usize,
        l: &RawListener,
        explicit_upstreams: usize,
    ) -> Option<Listener> {
        let key = format!("listener[{i}]");
        let name = l
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_else(|| format!("listener{i}"));
        let addr = match parse_listen(l.listen.get_ref()) {
            Ok(a) => Some(a),
            Err(m) => {
                self.errs.push(span(&l.listen), &format!("{key}.listen"), m);
                None
            }
        };
        let server_names: Vec<String> = l
            .server_names
            .iter()
            .map(|s| s.get_ref().to_ascii_lowercase())
            .collect();
        let tls = l.tls.as_ref().and_then(|t| self.tls(&key, t));
        let http = self.http(&key, &l.http);
        let mut locations = Vec::new();
        for (j, loc) in l.location.iter().enumerate() {
            if let Some(loc) =
                self.location(&format!("{key}.location[{j}]"), loc, explicit_upstreams)
            {
                locations.push(loc);
            }
        }
        if l.location.is_empty() {
            self.errs.push(
                span(&l.listen),
                &format!("{key}.location"),
                "a listener needs at least one [[listener.location]]",
            );
        }
        Some(Listener {
            name,
            addr: addr?,
            server_names,
            tls,
            http,
            locations,
        })
    }

    fn http(&mut self, key: &str, h: &RawHttp) -> HttpSettings {
        let d = HttpSettings::default();
        let k = |s: &str| format!("{key}.http.{s}");
        let max_header_bytes = self.size(
            &h.max_header_bytes,
            &k("max_header_bytes"),
            d.max_header_bytes as u64,
        );
        HttpSettings {
            max_header_bytes: usize::try_from(max_header_bytes)
                .unwrap_or(usize::MAX)
                .max(256),
            max_headers: h
                .max_headers
                .as_ref()
                .map_or(d.max_headers, |v| *v.get_ref()),
            header_timeout: self.duration(
                &h.header_timeout,
                &k("header_timeout"),
                d.header_timeout,
            ),
            body_timeout: self.duration(&h.body_timeout, &k("body_timeout"), d.body_timeout),
            send_timeout: self.duration(&h.send_timeout, &k("send_timeout"), d.send_timeout),
            keepalive_timeout: self.duration(
                &h.keepalive_timeout,
                &k("keepalive_timeout"),
                d.keepalive_timeout,
            ),
            keepalive_requests: h
                .keepalive_requests
                .as_ref()
                .map_or(d.keepalive_requests, |v| *v.get_ref()),
            client_max_body_size: self.size(
                &h.client_max_body_size,
                &k("client_max_body_size"),
                d.client_max_body_size,
            ),
            x_forwarded_for: h
                .x_forwarded_for
                .as_ref()
                .map_or(d.x_forwarded_for, |v| *v.get_ref()),
            x_forwarded_proto: h
                .x_forwarded_proto
                .as_ref()
                .map_or(d.x_forwarded_proto, |v| *v.get_ref()),
        }
    }

    fn tls(&mut self, key: &str, t: &RawTls) -> Option<Arc<ServerTls>> {
        let before = self.errs_len();
        let mut certs = Vec::new();
        if t.certificates.get_ref().is_empty() {
            self.errs.push(
                span(&t.certificates),
                &format!("{key}.tls.certificates"),
                "at least one certificate is needed",
            );
        }
        for (j, c) in t.certificates.get_ref().iter().enumerate() {
            let ck = format!("{key}.tls.certificates[{j}]");
            let cert_path = self.path(c.cert.get_ref());
            let key_path = self.path(c.key.get_ref());
            match crate::tls::pem::load_certified_key(&cert_path, &key_path) {
                Ok(k) => {
                    let names: Vec<String> =
                        c.server_names.iter().map(|n| n.get_ref().clone()).collect();
                    certs.push((k, names));
                }
                Err(e) => {
                    if e.path() == key_path.display().to_string() {
                        self.errs
                            .push(span(&c.key), &format!("{ck}.key"), e.to_string());
                    } else {
                        self.errs
                            .push(span(&c.cert), &format!("{ck}.cert"), e.to_string());
                    }
                }
            }
        }
        let versions = match &t.protocols {
            None => TlsVersions::Both,
            Some(p) => {
                let mut v12 = false;
                let mut v13 = false;
                for name in p.get_ref() {
                    match name.as_str() {
                        "TLSv1.2" => v12 = true,
                        "TLSv1.3" => v13 = true,
                        "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => self.errs.push(
                            span(p),
                            &format!("{key}.tls.protocols"),
                            format!("{name} is obsolete and insecure; ringgate offers TLSv1.2 and TLSv1.3"),
                        ),
                        other => self.errs.push(
                            span(p),
                            &format!("{key}.tls.protocols"),
                            format!("`{other}` is not a protocol; expected \"TLSv1.2\" and/or \"TLSv1.3\""),
                        ),
                    }
                }
                match (v12, v13) {
                    (true, true) => TlsVersions::Both,
                    (true, false) => TlsVersions::Tls12,
                    (false, true) => TlsVersions::Tls13,
                    (false, false) => {
                        self.errs.push(
                            span(p),
                            &format!("{key}.tls.protocols"),
                            "no protocol left to offer",
                        );
                        TlsVersions::Both
                    }
                }
            }
        };
        let mode = match t.verify_client.as_ref() {
            None => {
                if t.client_certificate.is_some() {
                    ClientAuthMode::On
                } else {
                    ClientAuthMode::Off
                }
            }
            Some(v) => match v.get_ref().as_str() {
                "on" => ClientAuthMode::On,
                "off" => ClientAuthMode::Off,
                "optional" => ClientAuthMode::Optional,
                "optional_no_ca" => ClientAuthMode::OptionalNoCa,
                other => {
                    self.errs.push(
                        span(v),
                        &format!("{key}.tls.verify_client"),
                        format!("`{other}` is not a mode; expected \"on\", \"optional\", \"optional_no_ca\" or \"off\""),
                    );
                    ClientAuthMode::Off
                }
            },
        };
        let failure = match t.verify_failure.as_ref() {
            None => FailureMode::Alert,
            Some(v) => match v.get_ref().as_str() {
                "alert" => FailureMode::Alert,
                "http" => FailureMode::Http,
                other => {
                    self.errs.push(
                        span(v),
                        &format!("{key}.tls.verify_failure"),
                        format!("`{other}` is not a failure mode; expected \"alert\" (refuse in the handshake) or \"http\" (nginx-compatible 400 page)"),
                    );
                    FailureMode::Alert
                }
            },
        };
        let depth = t.verify_depth.as_ref().map_or(1, |d| *d.get_ref());
        let store = match (&t.client_certificate, mode) {
            (Some(ca), _) => {
                let ca_path = self.path(ca.get_ref());
                match std::fs::read(&ca_path) {
                    Ok(bytes) => match crate::tls::verify::TrustStore::from_pem(&bytes) {
                        Ok(store) => Some(Arc::new(store)),
                        Err(e) => {
                            self.errs.push(
                                span(ca),
                                &format!("{key}.tls.client_certificate"),
                                format!("{}: {e}", ca_path.display()),
                            );
                            None
                        }
                    },
                    Err(e) => {
                        self.errs.push(
                            span(ca),
                            &format!("{key}.tls.client_certificate"),
                            format!("cannot read {}: {e}", ca_path.display()),
                        );
                        None
                    }
                }
            }
            (None, ClientAuthMode::On | ClientAuthMode::Optional) => {
                let at = t.verify_client.as_ref().map(|v| v.span());
                self.errs.push(
                    at,
                    &format!("{key}.tls.client_certificate"),
                    "verify_client needs client_certificate, the CA bundle to verify clients against",
                );
                None
            }
            (None, _) => None,
        };
        let tickets = t.session_tickets.as_ref().is_none_or(|v| *v.get_ref());
        let session_cache = t.session_cache.as_ref().map_or(10_000, |v| *v.get_ref());
        if self.errs_len() != before || certs.is_empty() {
            return None;
        }
        match ServerTls::new(
            certs,
            versions,
            mode,
            failure,
            store,
            depth,
            tickets,
            session_cache,
        ) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                self.errs
                    .push(span(&t.certificates), &format!("{key}.tls"), e.to_string());
                None
            }
        }
    }

    /// The collector only grows: comparing lengths tells whether a section added errors.
    fn errs_len(&self) -> usize {
        self.errs.len()
    }

    fn location(
        &mut self,
        key: &str,
        l: &RawLocation,
        explicit_upstreams: usize,
    ) -> Option<Location> {
        let path = l.path.get_ref().clone();
        if !path.starts_with('/') {
            self.errs.push(
                span(&l.path),
                &format!("{key}.path"),
                "a location path starts with `/`",
            );
        }
        let kind = match l.match_kind.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None | Some((_, "prefix")) => MatchKind::Prefix,
            Some((_, "exact")) => MatchKind::Exact,
            Some((m, other)) => {
                self.errs.push(
                    span(m),
                    &format!("{key}.match"),
                    format!("`{other}` is not a match kind; expected \"prefix\" or \"exact\""),
                );
                MatchKind::Prefix
            }
        };
        let mut set_headers = Vec::new();
        for (name, value) in &l.set_header {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                self.errs.push(
                    span(value),
                    &format!("{key}.set_header"),
                    format!("`{name}` is not a valid header name"),
                );
                continue;
            }
            match Template::compile(value.get_ref()) {
                Ok(t) => set_headers.push((name.clone(), t)),
                Err(e) => self.errs.push(
                    span(value),
                    &format!("{key}.set_header.{name}"),
                    e.to_string(),
                ),
            }
        }
        let action = match (&l.proxy_pass, &l.return_) {
            (Some(p), None) => Action::Proxy(self.proxy_pass(key, p, explicit_upstreams)?),
            (None, Some(r)) => {
                let (status, body) = match r.get_ref() {
                    RawReturn::Status(s) => (*s, None),
                    RawReturn::Full { status, body } => (*status, body.clone()),
                };
                if !(100..=599).contains(&status) {
                    self.errs.push(
                        span(r),
                        &format!("{key}.return"),
                        format!("{status} is not an HTTP status"),
                    );
                }
                let body = match body.map(|b| Template::compile(&b)) {
                    None => None,
                    Some(Ok(t)) => Some(t),
                    Some(Err(e)) => {
                        self.errs
                            .push(span(r), &format!("{key}.return"), e.to_string());
                        None
                    }
                };
                Action::Return { status, body }
            }
            (Some(p), Some(_)) => {
                self.errs.push(
                    span(p),
                    key,
                    "a location has either proxy_pass or return, not both",
                );
                return None;
            }
            (None, None) => {
                self.errs
                    .push(span(&l.path), key, "a location needs proxy_pass or return");
                return None;
            }
        };
        Some(Location {
            path,
            kind,
            action,
            set_headers,
        })
    }

    fn proxy_pass(
        &mut self,
        key: &str,
        p: &Spanned<String>,
        explicit_upstreams: usize,
    ) -> Option<ProxyPass> {
        let text = p.get_ref();
        let k = format!("{key}.proxy_pass");
        let (https, rest) = if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else {
            self.errs.push(span(p), &k, format!("`{text}` is not a proxy_pass URL; expected http:// or https://upstream-or-host[:port][/uri]"));
            return None;
        };
        let (authority, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        };
        if authority.is_empty() {
            self.errs
                .push(span(p), &k, "proxy_pass names no upstream or host");
            return None;
        }
        if let Some(idx) = self.upstreams[..explicit_upstreams]
            .iter()
            .position(|u| u.name == authority)
        {
            let has_section = self.tls_sections.get(idx).copied().unwrap_or(false);
            if https && !has_section {
                self.errs.push(span(p), &k, format!(
                    "https://{authority} verifies the upstream's certificate by default: add [upstream.tls] to upstream `{authority}` with trusted_certificate (the CA bundle to verify it with), or verify = false"
                ));
                return None;
            }
            if !https && has_section {
                self.errs.push(
                    span(p),
                    &k,
                    format!("upstream `{authority}` has [upstream.tls]: write https://{authority}"),
                );
                return None;
            }
            return Some(ProxyPass {
                upstream: idx,
                uri,
                proxy_host: authority.to_string(),
            });
        }
        if https {
            self.errs.push(span(p), &k, format!(
                "https://{authority} verifies the upstream's certificate by default: declare [[upstream]] name = \"{authority}\" with its servers and [upstream.tls] trusted_certificate (or verify = false)"
            ));
            return None;
        }
        // An implicit upstream, as nginx makes for `proxy_pass http://host:port`.
        if let Some(idx) = self.upstreams.iter().position(|u| u.name == authority) {
            return Some(ProxyPass {
                upstream: idx,
                uri,
                proxy_host: proxy_host_of(authority),
            });
        }
        match resolve_addr(authority, 80) {
            Ok(servers) => {
                self.upstreams
                    .push(Upstream::with_defaults(authority.to_string(), servers));
                Some(ProxyPass {
                    upstream: self.upstreams.len() - 1,
                    uri,
                    proxy_host: proxy_host_of(authority),
                })
            }
            Err(m) => {
                self.errs.push(
                    span(p),
                    &k,
                    format!("{m} (and no [[upstream]] is named `{authority}`)"),
                );
                None
            }
        }
    }
}

/// nginx's `$proxy_host`: host and port, the port left out when it is 80.
fn proxy_host_of(authority: &str) -> String {
    authority
        .strip_suffix(":80")
        .unwrap_or(authority)
        .to_string()
}

/// Parses a `listen` value: `host:port`, `[v6]:port`, or a bare port (all IPv4 addresses).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!("`{text}` is not an address; expected IP:PORT such as 127.0.0.1:8443 or [::1]:8443, or a port")
    })
}

/// Resolves `host[:port]` once, at load time (workers never resolve names).
fn resolve_addr(text: &str, default_port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let with_port = if text
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        text.to_string()
    } else {
        format!("{text}:{default_port}")
    };
    match with_port.to_socket_addrs() {
        Ok(addrs) => {
            let v: Vec<SocketAddr> = addrs.collect();
            if v.is_empty() {
                Err(format!("`{text}` resolves to no address"))
            } else {
                Ok(v)
            }
        }
        Err(e) => Err(format!("cannot resolve `{text}`: {e}")),
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_errors_in_several_sections_are_all_reported() {
        let text = "[runtime]\nworkerz = 2\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n\n[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:1\"]\nkeepalive = \"x\"\n";
        let err = parse_str(text, Path::new("t.toml")).unwrap_err();
        let lines: Vec<Option<usize>> = err.0.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![Some(2), Some(6), Some(11)], "{err}");
        assert!(err.0[0].message.contains("workerz"), "{err}");
        assert!(err.to_string().starts_with("3 configuration errors"));
    }

    #[test]
    fn semantic_errors_name_line_and_key() {
        let text = "[[listener]]\nlisten = \"nowhere\"\n[listener.tls]\ncertificates = [{ cert = \"/nonexistent.crt\", key = \"/nonexistent.key\" }]\nverify_client = \"maybe\"\n[[listener.location]]\npath = \"/\"\nproxy_pass = \"ftp://x\"\n";
        let err = parse_str(text, Path::new("t.toml")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("t.toml:2: listener[0].listen"), "{text}");
        assert!(
            text.contains("listener[0].tls.certificates[0].cert"),
            "{text}"
        );
        assert!(
            text.contains("t.toml:5: listener[0].tls.verify_client"),
            "{text}"
        );
        assert!(
            text.contains("t.toml:8: listener[0].location[0].proxy_pass"),
            "{text}"
        );
    }

    #[test]
    fn no_listener_is_an_error() {
        let err = parse_str("", Path::new("e.toml")).unwrap_err();
        assert!(err.to_string().contains("no [[listener]]"));
    }
}
