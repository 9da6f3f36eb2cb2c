//! Configuration: the TOML file read into typed, validated structs.
//!
//! Two stages: [`raw`] is the file's shape (serde, unknown keys refused); [`load`] resolves it
//! into [`Config`], where every address is parsed, every certificate and key is loaded and
//! checked, and every reference resolves. Nothing downstream validates again.

mod access;
pub mod error;
pub mod raw;
pub mod units;
mod upstream_tls;
pub mod vhost;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use error::Collector;
pub use error::{ConfigError, ConfigErrors};
use raw::{RawConfig, RawHttp, RawListener, RawLocation, RawTls, RawUpstream};
use units::Quantity;

use crate::config::vhost::VirtualHosts;
use crate::policy::IdentityPolicy;
use crate::tls::client_auth::{ClientAuthMode, FailureMode};
use crate::tls::{ServerTls, TlsVersions};
use crate::upstream::Upstream;
use crate::vars::condition::Condition;
use crate::vars::map::VarMap;
use crate::vars::Template;

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Workers and process settings.
    pub runtime: Runtime,
    /// Servers (nginx `server` blocks), each on one of [`Config::sockets`].
    pub listeners: Vec<Listener>,
    /// Addresses bound, each serving one or more listeners chosen by SNI and Host.
    pub sockets: Vec<Socket>,
    /// Upstream groups, indexed by [`ProxyPass::upstream`].
    pub upstreams: Vec<Upstream>,
    /// Roles and certificate + address bindings (`[identity]`).
    pub identity: IdentityPolicy,
    /// `[[map]]` variables, indexed by [`crate::vars::Var::Map`].
    pub maps: Vec<VarMap>,
    /// Content types for `root` locations.
    pub static_types: StaticTypes,
    /// Access-log files, each opened once and shared by the listeners that name it.
    pub log_files: Vec<PathBuf>,
    /// Where the admin endpoint (`/metrics`, `/healthz`, `/readyz`) listens, if anywhere.
    pub admin: Option<SocketAddr>,
    /// The files a change of which reloads the configuration: the file itself and every
    /// certificate, key, CA, CRL and ticket key it reads (not logs, not static roots).
    pub watched: Vec<PathBuf>,
}

/// One bound address and the servers on it.
#[derive(Debug)]
pub struct Socket {
    /// Address to bind (port 0 picks a free port).
    pub addr: SocketAddr,
    /// Whether connections start with TLS (all servers on an address agree).
    pub tls: bool,
    /// The servers, by name, and the default one.
    pub hosts: VirtualHosts,
}

/// `[static]`: content types by file extension for `root` locations.
#[derive(Debug, Clone)]
pub struct StaticTypes {
    /// Lowercase extension -> content type.
    pub types: std::collections::HashMap<String, String>,
    /// For extensions not in `types` (nginx `default_type`).
    pub default_type: String,
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
    /// The error-log file (None: stderr).
    pub error_log: Option<PathBuf>,
    /// Reload when a watched file changes.
    pub watch: bool,
    /// How often watched files are looked at.
    pub watch_interval: Duration,
    /// Private keys that group or others can read are served anyway (with a warning).
    pub allow_insecure_key_permissions: bool,
    /// Client connections the whole process keeps open at most; more are accepted and closed
    /// at once.
    pub max_connections: usize,
    /// Client connections one worker keeps open at most.
    pub max_connections_per_worker: usize,
}

/// Default of `runtime.max_connections`: generous (file descriptors usually run out first;
/// see `tuning/`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 65536;

/// One listening address (an nginx `server` block).
#[derive(Debug)]
pub struct Listener {
    /// Name used in logs and the readiness line.
    pub name: String,
    /// Address to bind (port 0 picks a free port).
    pub addr: SocketAddr,
    /// Index into [`Config::sockets`].
    pub socket: usize,
    /// `server_name`s; the first is `$host` when a request names none.
    pub server_names: Vec<String>,
    /// nginx `default_server`.
    pub default_server: bool,
    /// TLS, or None for plain HTTP.
    pub tls: Option<Arc<ServerTls>>,
    /// `tls.verify_client` as configured: what locations without their own setting require.
    /// (The handshake may ask more leniently when a location relaxes it: see
    /// [`Location::verify_client`].)
    pub verify_client: ClientAuthMode,
    /// Client-side limits and timeouts.
    pub http: HttpSettings,
    /// Server-level rules, run before a location is chosen.
    pub rules: Vec<Rule>,
    /// Identity headers sent upstream.
    pub identity_headers: IdentityHeaders,
    /// Where and how requests are logged (None: not logged).
    pub access_log: Option<AccessLog>,
    /// Locations, matched as nginx does.
    pub locations: Vec<Location>,
}

/// A listener's access log: which file, in which format.
#[derive(Debug, Clone)]
pub struct AccessLog {
    /// The file (one of [`Config::log_files`]).
    pub path: Arc<Path>,
    /// How lines are rendered.
    pub format: Arc<crate::vars::log_format::LogFormat>,
}

/// A rewrite-phase rule: nginx's `if (cond) { return ...; }`, or a bare `return`.
#[derive(Debug)]
pub struct Rule {
    /// None: always.
    pub condition: Option<Condition>,
    /// The status returned.
    pub status: u16,
    /// Body text, or the Location of a redirect.
    pub body: Option<Template>,
}

/// A field of the client's identity that can be sent upstream as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityField {
    /// `$ssl_client_s_dn`.
    Subject,
    /// `$ssl_client_i_dn`.
    Issuer,
    /// `$ssl_client_verify`.
    Verify,
    /// The role from `[identity]` (verified certificates only).
    Role,
    /// `$ssl_client_serial`.
    Serial,
    /// `$ssl_client_fingerprint` (SHA-1).
    Fingerprint,
    /// SHA-256 fingerprint.
    FingerprintSha256,
    /// `$ssl_client_v_start`.
    NotBefore,
    /// `$ssl_client_v_end`.
    NotAfter,
    /// `$ssl_client_escaped_cert`.
    Cert,
    /// The SPIFFE ID (verified certificates only).
    SpiffeId,
    /// Envoy's `X-Forwarded-Client-Cert` (verified certificates only).
    Xfcc,
    /// RFC 9440 `Client-Cert` (verified certificates only).
    ClientCert,
    /// RFC 9440 `Client-Cert-Chain` (verified certificates only).
    ClientCertChain,
}

impl IdentityField {
    /// Every field with its config key.
    pub const ALL: [(&'static str, IdentityField); 14] = [
        ("subject", IdentityField::Subject),
        ("issuer", IdentityField::Issuer),
        ("verify", IdentityField::Verify),
        ("role", IdentityField::Role),
        ("serial", IdentityField::Serial),
        ("fingerprint", IdentityField::Fingerprint),
        ("fingerprint_sha256", IdentityField::FingerprintSha256),
        ("not_before", IdentityField::NotBefore),
        ("not_after", IdentityField::NotAfter),
        ("cert", IdentityField::Cert),
        ("spiffe_id", IdentityField::SpiffeId),
        ("xfcc", IdentityField::Xfcc),
        ("client_cert", IdentityField::ClientCert),
        ("client_cert_chain", IdentityField::ClientCertChain),
    ];
}

/// `[listener.identity_headers]`, resolved.
#[derive(Debug, Clone, Default)]
pub struct IdentityHeaders {
    /// Field and header name, in a stable order.
    pub fields: Vec<(IdentityField, String)>,
    /// The configured names, lowercased: client-sent copies are always removed.
    pub strip: Vec<Vec<u8>>,
}

/// Client-side HTTP limits.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request head: nginx's `large_client_header_buffers` number x size (400 beyond).
    pub max_header_bytes: usize,
    /// Longest request line or header field: one of nginx's large header buffers (414 for the
    /// request line, 400 for a field).
    pub max_header_line_bytes: usize,
    /// Most header fields (400 beyond); far above any real client, nginx has no such cap.
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
            max_header_bytes: 4 * 8 * 1024,
            max_header_line_bytes: 8 * 1024,
            max_headers: 1000,
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
    /// nginx `location ^~ /path`: a prefix that, when longest, stops the regex search.
    PrefixNoRegex,
    /// nginx `location ~ regex`.
    Regex,
    /// nginx `location ~* regex`.
    RegexNoCase,
}

/// A path and its handling.
#[derive(Debug)]
pub struct Location {
    /// The path (or regex) as written.
    pub path: String,
    /// How it matches.
    pub kind: MatchKind,
    /// The compiled regex of a regex location.
    pub regex: Option<regex::bytes::Regex>,
    /// What to do.
    pub action: Action,
    /// `proxy_set_header`s: name and compiled value; an empty value removes the header.
    pub set_headers: Vec<(String, Template)>,
    /// Client certificate requirement for this path (None: the listener's).
    pub verify_client: Option<ClientAuthMode>,
    /// Roles allowed in (None: anyone the other checks let in).
    pub allow_roles: Option<Vec<Arc<str>>>,
    /// Location-level rules, run after the location is chosen.
    pub rules: Vec<Rule>,
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
    /// `root`: static files.
    Static(StaticRoot),
    /// Nothing but rules (the last of which returns): 404 if they all pass.
    Rules,
}

/// `root` and `index` of a static location.
#[derive(Debug, Clone)]
pub struct StaticRoot {
    /// The directory files are served from.
    pub root: PathBuf,
    /// Files tried for a request ending in `/`.
    pub index: Vec<String>,
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

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let source = crate::files::read_to_string(path).map_err(|e| {
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
        map_names: raw
            .map
            .iter()
            .map(|m| m.variable.get_ref().trim_start_matches('$').to_string())
            .collect(),
        log_formats: std::collections::HashMap::new(),
        log_files: Vec::new(),
        tls_sections: Vec::new(),
        read_paths: std::cell::RefCell::new(Vec::new()),
        allow_insecure_keys: false,
    };
    let runtime = resolver.runtime(&raw);
    let maps = resolver.maps(&raw.map);
    let identity = resolver.identity(&raw.identity);
    let static_types = resolver.static_types(&raw.static_files);
    resolver.log_formats(&raw.log_format);
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
    let sockets = resolver.sockets(&raw.listener, &mut listeners);
    let admin = raw
        .admin
        .as_ref()
        .and_then(|a| match parse_listen(a.listen.get_ref()) {
            Ok(addr) => {
                if sockets.iter().any(|s| s.addr == addr && addr.port() != 0) {
                    resolver.errs.push(
                        span(&a.listen),
                        "admin.listen",
                        format!("{addr} is also a listener's address"),
                    );
                }
                Some(addr)
            }
            Err(m) => {
                resolver.errs.push(span(&a.listen), "admin.listen", m);
                None
            }
        });
    if !resolver.errs.is_empty() {
        return Err(resolver.errs.finish());
    }
    let watched = resolver.watched(path);
    Ok(Config {
        path: path.to_path_buf(),
        runtime,
        listeners,
        sockets,
        upstreams: resolver.upstreams,
        identity,
        maps,
        static_types,
        watched,
        admin,
        log_files: resolver.log_files,
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
    /// `[[map]]` variable names, so templates can use them.
    map_names: Vec<String>,
    /// Named access-log formats, built-in and `[log_format]`.
    log_formats: std::collections::HashMap<String, Arc<crate::vars::log_format::LogFormat>>,
    /// Access-log files named so far.
    log_files: Vec<PathBuf>,
    /// For each explicit upstream: whether it has an `[upstream.tls]` section (loaded or not).
    tls_sections: Vec<bool>,
    /// Every path the file named, for the reload watcher.
    read_paths: std::cell::RefCell<Vec<PathBuf>>,
    /// `runtime.allow_insecure_key_permissions`.
    allow_insecure_keys: bool,
}

fn span<T>(s: &Spanned<T>) -> Option<std::ops::Range<usize>> {
    Some(s.span())
}

impl Resolver<'_> {
    /// A path from the file, relative to the file's directory; remembered so a reload can
    /// watch what the configuration reads.
    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        };
        self.read_paths.borrow_mut().push(full.clone());
        full
    }

    fn duration(
        &mut self,
        q: &Option<Spanned<Quantity>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let d = self.duration_or_zero(q, key, default);
        match q {
            Some(q) if d.is_zero() => {
                self.errs.push(span(q), key, "must be greater than zero");
                default
            }
            _ => d,
        }
    }

    /// A duration where zero means "none" (closes at once, never waits).
    /// Resolves a list of `host:port` servers (port 80 by default), reporting each that fails.
    fn server_addrs(&mut self, list: &Spanned<Vec<String>>, key: &str) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for s in list.get_ref() {
            match resolve_addr(s, 80) {
                Ok(addrs) => out.extend(addrs),
                Err(m) => self.errs.push(span(list), key, m),
            }
        }
        out
    }

    fn duration_or_zero(
        &mut self,
        q: &Option<Spanned<Quantity>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        match q.as_ref().map(|q| (q, q.get_ref().duration())) {
            None => default,
            Some((_, Ok(d))) => d,
            Some((q, Err(m))) => {
                self.errs.push(span(q), key, m);
                default
            }
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
        let error_log = r.error_log.as_ref().and_then(|p| {
            let path = self.path(p.get_ref());
            match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                    self.errs.push(
                        span(p),
                        "runtime.error_log",
                        format!("{} is not a directory", dir.display()),
                    );
                    None
                }
                _ => Some(path),
            }
        });
        let watch = r.watch.as_ref().is_none_or(|w| *w.get_ref());
        let watch_interval = self.duration(
            &r.watch_interval,
            "runtime.watch_interval",
            Duration::from_secs(1),
        );
        let allow_insecure_key_permissions = r
            .allow_insecure_key_permissions
            .as_ref()
            .is_some_and(|v| *v.get_ref());
        self.allow_insecure_keys = allow_insecure_key_permissions;
        let mut limit = |v: &Option<Spanned<usize>>, key: &str, default: usize| match v {
            None => default,
            Some(n) if *n.get_ref() == 0 => {
                self.errs.push(
                    span(n),
                    key,
                    "at least 1 (a limit of 0 would refuse every client)",
                );
                default
            }
            Some(n) => *n.get_ref(),
        };
        let max_connections = limit(
            &r.max_connections,
            "runtime.max_connections",
            DEFAULT_MAX_CONNECTIONS,
        );
        let max_connections_per_worker = limit(
            &r.max_connections_per_worker,
            "runtime.max_connections_per_worker",
            max_connections,
        );
        Runtime {
            workers,
            cpus,
            shutdown_timeout,
            driver,
            log_level,
            error_log,
            watch,
            watch_interval,
            allow_insecure_key_permissions,
            max_connections,
            max_connections_per_worker,
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
        let servers = self.server_addrs(&u.servers, &format!("{key}.servers"));
        if u.servers.get_ref().is_empty() {
            self.errs.push(
                span(&u.servers),
                &format!("{key}.servers"),
                "an upstream needs at least one server",
            );
        }
        let mut up = Upstream::with_defaults(name, servers);
        if let Some(b) = &u.backup_servers {
            up.backup_servers = self.server_addrs(b, &format!("{key}.backup_servers"));
        }
        if let Some(k) = &u.keepalive {
            up.keepalive = *k.get_ref();
        }
        up.keepalive_timeout = self.duration(
            &u.keepalive_timeout,
            &format!("{key}.keepalive_timeout"),
            up.keepalive_timeout,
        );
        up.purge_delay = self.duration_or_zero(
            &u.purge_delay,
            &format!("{key}.purge_delay"),
            up.purge_delay,
        );
        if let Some(m) = &u.max_fails {
            up.max_fails = *m.get_ref();
        }
        up.fail_timeout = self.duration(
            &u.fail_timeout,
            &format!("{key}.fail_timeout"),
            up.fail_timeout,
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
        let http = self.http(&key, &l.http);
        let mut rules = self.rules(&format!("{key}.rule"), &l.rule);
        if let Some(port) = &l.https_redirect {
            let target = match *port.get_ref() {
                443 => "https://$host$request_uri".to_string(),
                0 => {
                    self.errs.push(
                        span(port),
                        &format!("{key}.https_redirect"),
                        "expected the https port to redirect to, such as 443",
                    );
                    "https://$host$request_uri".to_string()
                }
                p => format!("https://$host:{p}$request_uri"),
            };
            rules.push(Rule {
                condition: None,
                status: 301,
                body: Template::compile(&target).ok(),
            });
        }
        let mut locations = Vec::new();
        for (j, loc) in l.location.iter().enumerate() {
            if let Some(loc) =
                self.location(&format!("{key}.location[{j}]"), loc, explicit_upstreams)
            {
                locations.push(loc);
            }
        }
        let always_returns = rules.iter().any(|r| r.condition.is_none());
        if l.location.is_empty() && !always_returns {
            self.errs.push(
                span(&l.listen),
                &format!("{key}.location"),
                "a listener needs at least one [[listener.location]] (or a rule or https_redirect that always answers)",
            );
        }
        let loc_modes: Vec<ClientAuthMode> =
            locations.iter().filter_map(|l| l.verify_client).collect();
        let (tls, verify_client) = match l.tls.as_ref() {
            Some(t) => match self.tls(&key, &name, t, &loc_modes) {
                Some((tls, mode)) => (Some(tls), mode),
                None => (None, ClientAuthMode::Off),
            },
            None => {
                let wants_certs = l.location.iter().any(|loc| {
                    loc.allow_roles.is_some()
                        || loc
                            .verify_client
                            .as_ref()
                            .is_some_and(|v| v.get_ref() != "off")
                });
                if wants_certs {
                    self.errs.push(
                        span(&l.listen),
                        &key,
                        "locations with verify_client or allow_roles need client certificates: add [listener.tls] with client_certificate",
                    );
                }
                (None, ClientAuthMode::Off)
            }
        };
        if tls.is_some() && verify_client == ClientAuthMode::Off && loc_modes.is_empty() {
            for (j, loc) in l.location.iter().enumerate() {
                if let Some(r) = &loc.allow_roles {
                    self.errs.push(
                        span(r),
                        &format!("{key}.location[{j}].allow_roles"),
                        "roles come from verified client certificates, but this listener does not ask for one: set tls.verify_client (and client_certificate)",
                    );
                }
            }
        }
        let identity_headers = self.identity_headers(&key, &l.identity_headers);
        let access_log = l
            .access_log
            .as_ref()
            .and_then(|a| self.access_log(&format!("{key}.access_log"), a));
        for (j, loc) in locations.iter().enumerate() {
            for (name, _) in &loc.set_headers {
                if identity_headers
                    .strip
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
                {
                    self.errs.push(
                        span(&l.listen),
                        &format!("{key}.location[{j}].set_header.{name}"),
                        "this header is also an identity header of the listener; set it in one place",
                    );
                }
            }
        }
        Some(Listener {
            name,
            addr: addr?,
            socket: 0,
            server_names,
            default_server: l.default_server.as_ref().is_some_and(|d| *d.get_ref()),
            tls,
            verify_client,
            http,
            rules,
            identity_headers,
            access_log,
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
        let max_header_line_bytes = self.size(
            &h.max_header_line_bytes,
            &k("max_header_line_bytes"),
            d.max_header_line_bytes as u64,
        );
        HttpSettings {
            max_header_bytes: usize::try_from(max_header_bytes)
                .unwrap_or(usize::MAX)
                .max(256),
            max_header_line_bytes: usize::try_from(max_header_line_bytes)
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

    /// Resolves `[listener.tls]`. Returns the material and the configured `verify_client`;
    /// the handshake asks for a certificate leniently (optional) when a location relaxes or
    /// adds the requirement, and the per-location check enforces it per request.
    fn tls(
        &mut self,
        key: &str,
        name: &str,
        t: &RawTls,
        loc_modes: &[ClientAuthMode],
    ) -> Option<(Arc<ServerTls>, ClientAuthMode)> {
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
            match crate::x509::pem::load_certified_key_checked(
                &cert_path,
                &key_path,
                self.allow_insecure_keys,
            ) {
                Ok(k) => {
                    let names: Vec<String> =
                        c.server_names.iter().map(|n| n.get_ref().clone()).collect();
                    let k = match &c.ocsp {
                        None => k,
                        Some(o) => {
                            let path = self.path(o.get_ref());
                            match crate::x509::ocsp::load_staple(&path, &k.cert) {
                                Ok(staple) => {
                                    let mut with = (*k).clone();
                                    with.ocsp = Some(staple.der);
                                    Arc::new(with)
                                }
                                Err(e) => {
                                    self.errs
                                        .push(span(o), &format!("{ck}.ocsp"), e.to_string());
                                    k
                                }
                            }
                        }
                    };
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
        let relaxed = loc_modes.iter().any(|m| *m != ClientAuthMode::On);
        let required = loc_modes.iter().any(|m| *m != ClientAuthMode::Off);
        let handshake_mode = match mode {
            ClientAuthMode::On if relaxed => ClientAuthMode::Optional,
            ClientAuthMode::Off if required => ClientAuthMode::Optional,
            m => m,
        };
        let client_cas = t
            .client_certificate
            .as_ref()
            .and_then(|ca| self.ca_bundle(ca, &format!("{key}.tls.client_certificate")));
        let extra_cas = t
            .trusted_certificate
            .as_ref()
            .and_then(|ca| self.ca_bundle(ca, &format!("{key}.tls.trusted_certificate")));
        if client_cas.is_none()
            && t.client_certificate.is_none()
            && matches!(
                handshake_mode,
                ClientAuthMode::On | ClientAuthMode::Optional
            )
        {
            let at = t.verify_client.as_ref().map(|v| v.span());
            self.errs.push(
                at.or(Some(t.certificates.span())),
                &format!("{key}.tls.client_certificate"),
                "verify_client (here or in a location) needs client_certificate, the CA bundle to verify clients against",
            );
        }
        let hints = client_cas
            .as_ref()
            .map(|s| s.subjects())
            .unwrap_or_default();
        let store = match (client_cas, extra_cas) {
            (None, None) => None,
            (Some(a), None) => Some(Arc::new(a)),
            (None, Some(b)) => Some(Arc::new(b)),
            (Some(a), Some(b)) => {
                let all: Vec<_> = a
                    .anchors()
                    .iter()
                    .chain(b.anchors())
                    .map(|x| x.der.clone())
                    .collect();
                crate::x509::verify::TrustStore::from_der(all)
                    .ok()
                    .map(Arc::new)
            }
        };
        let revocation = self.revocation(key, t, store.as_deref(), handshake_mode);
        let session_timeout = self.duration(
            &t.session_timeout,
            &format!("{key}.tls.session_timeout"),
            Duration::from_secs(300),
        );
        let session_timeout = u32::try_from(session_timeout.as_secs()).unwrap_or(u32::MAX);
        let tickets_on = t.session_tickets.as_ref().is_none_or(|v| *v.get_ref());
        let mut ticket_keys = Vec::new();
        for (j, f) in t.session_ticket_key.iter().enumerate() {
            let k = format!("{key}.tls.session_ticket_key[{j}]");
            let file = self.path(f.get_ref());
            match crate::files::read(&file) {
                Ok(bytes) => match crate::tls::tickets::TicketKey::from_file_bytes(&bytes) {
                    Ok(key) => ticket_keys.push(key),
                    Err(m) => self
                        .errs
                        .push(span(f), &k, format!("{}: {m}", file.display())),
                },
                Err(e) => {
                    self.errs
                        .push(span(f), &k, format!("cannot read {}: {e}", file.display()))
                }
            }
        }
        let session_cache = t.session_cache.as_ref().map_or(10_000, |v| *v.get_ref());
        if self.errs_len() != before || certs.is_empty() {
            return None;
        }
        let tickets = if !tickets_on {
            None
        } else if ticket_keys.is_empty() {
            // Stable for the life of the process, so a reload does not invalidate tickets.
            match crate::tls::tickets::TicketKey::for_listener(name) {
                Ok(k) => Some(crate::tls::tickets::TicketKeys(vec![k])),
                Err(e) => {
                    self.errs
                        .push(span(&t.certificates), &format!("{key}.tls"), e.to_string());
                    return None;
                }
            }
        } else {
            Some(crate::tls::tickets::TicketKeys(ticket_keys))
        };
        let spec = crate::tls::ServerTlsSpec {
            certs,
            versions,
            mode: handshake_mode,
            failure,
            store,
            hints,
            depth,
            revocation,
            tickets,
            session_cache,
            session_timeout,
        };
        match ServerTls::new(spec) {
            Ok(s) => Some((Arc::new(s), mode)),
            Err(e) => {
                self.errs
                    .push(span(&t.certificates), &format!("{key}.tls"), e.to_string());
                None
            }
        }
    }

    /// Loads `crl` (every file verified against the CA that signed it) with the listener's
    /// `crl_require_all` / `crl_expired` policy.
    fn revocation(
        &mut self,
        key: &str,
        t: &RawTls,
        store: Option<&crate::x509::verify::TrustStore>,
        mode: ClientAuthMode,
    ) -> Option<Arc<crate::x509::crl::Revocation>> {
        use crate::x509::crl::{CrlPolicy, ExpiredCrl, Revocation};
        let mut policy = CrlPolicy::default();
        if let Some(v) = &t.crl_require_all {
            policy.require_all = *v.get_ref();
        }
        if let Some(v) = &t.crl_expired {
            match v.get_ref().as_str() {
                "refuse" => policy.expired = ExpiredCrl::Refuse,
                text => match units::parse_duration(text) {
                    Ok(d) => {
                        policy.expired =
                            ExpiredCrl::Grace(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    }
                    Err(_) => self.errs.push(
                        span(v),
                        &format!("{key}.tls.crl_expired"),
                        format!("`{text}` is neither \"refuse\" (nginx's behaviour) nor a grace period such as \"12h\" or \"1d\""),
                    ),
                },
            }
        }
        let first = t.crl.first()?;
        if mode == ClientAuthMode::Off {
            self.errs.push(
                span(first),
                &format!("{key}.tls.crl"),
                "CRLs check client certificates, but this listener does not ask for one: set verify_client (and client_certificate)",
            );
            return None;
        }
        let Some(store) = store else {
            self.errs.push(
                span(first),
                &format!("{key}.tls.crl"),
                "CRLs are verified against the CAs that issued them: set client_certificate (or trusted_certificate)",
            );
            return None;
        };
        let mut crls = Vec::new();
        for (j, f) in t.crl.iter().enumerate() {
            let k = format!("{key}.tls.crl[{j}]");
            let path = self.path(f.get_ref());
            match crate::files::read(&path) {
                Ok(bytes) => {
                    match crate::x509::crl::parse_crls(&bytes, &path.display().to_string(), store) {
                        Ok(c) => crls.extend(c),
                        Err(e) => self.errs.push(span(f), &k, e.to_string()),
                    }
                }
                Err(e) => {
                    self.errs
                        .push(span(f), &k, format!("cannot read {}: {e}", path.display()))
                }
            }
        }
        Some(Arc::new(Revocation::new(crls, policy)))
    }

    /// Reads a PEM CA bundle, reporting problems against `key`.
    fn ca_bundle(
        &mut self,
        ca: &Spanned<String>,
        key: &str,
    ) -> Option<crate::x509::verify::TrustStore> {
        let ca_path = self.path(ca.get_ref());
        match crate::files::read(&ca_path) {
            Ok(bytes) => match crate::x509::verify::TrustStore::from_pem(&bytes) {
                Ok(store) => Some(store),
                Err(e) => {
                    self.errs
                        .push(span(ca), key, format!("{}: {e}", ca_path.display()));
                    None
                }
            },
            Err(e) => {
                self.errs.push(
                    span(ca),
                    key,
                    format!("cannot read {}: {e}", ca_path.display()),
                );
                None
            }
        }
    }

    /// The configuration file and the regular files it reads, without the logs it writes.
    fn watched(&self, config: &Path) -> Vec<PathBuf> {
        let mut out = vec![config.to_path_buf()];
        for p in self.read_paths.borrow().iter() {
            let is_log = self.log_files.contains(p);
            if !is_log && p.is_file() && !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
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
        let kind = match l.match_kind.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None | Some((_, "prefix")) => MatchKind::Prefix,
            Some((_, "exact" | "=")) => MatchKind::Exact,
            Some((_, "prefix_no_regex" | "^~")) => MatchKind::PrefixNoRegex,
            Some((_, "regex" | "~")) => MatchKind::Regex,
            Some((_, "regex_nocase" | "~*")) => MatchKind::RegexNoCase,
            Some((m, other)) => {
                self.errs.push(
                    span(m),
                    &format!("{key}.match"),
                    format!("`{other}` is not a match kind; expected \"prefix\", \"exact\" (=), \"prefix_no_regex\" (^~), \"regex\" (~) or \"regex_nocase\" (~*)"),
                );
                MatchKind::Prefix
            }
        };
        let regex = match kind {
            MatchKind::Regex | MatchKind::RegexNoCase => {
                let pattern = if kind == MatchKind::RegexNoCase {
                    format!("(?i){path}")
                } else {
                    path.clone()
                };
                match regex::bytes::Regex::new(&pattern) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        self.errs.push(
                            span(&l.path),
                            &format!("{key}.path"),
                            format!("not a valid regex: {e}"),
                        );
                        None
                    }
                }
            }
            _ => {
                if !path.starts_with('/') {
                    self.errs.push(
                        span(&l.path),
                        &format!("{key}.path"),
                        "a location path starts with `/`",
                    );
                }
                None
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
            if name.eq_ignore_ascii_case("upgrade") {
                log::warn!(
                    "{key}.set_header.{name}: WebSocket is not tunnelled; the Upgrade header is dropped"
                );
            }
            if let Some(t) = self.template(value, &format!("{key}.set_header.{name}")) {
                set_headers.push((name.clone(), t));
            }
        }
        let verify_client = l.verify_client.as_ref().and_then(|v| match v.get_ref().as_str() {
            "on" => Some(ClientAuthMode::On),
            "off" => Some(ClientAuthMode::Off),
            "optional" => Some(ClientAuthMode::Optional),
            other => {
                self.errs.push(
                    span(v),
                    &format!("{key}.verify_client"),
                    format!("`{other}` is not a per-location mode; expected \"on\", \"off\" or \"optional\""),
                );
                None
            }
        });
        let allow_roles = l.allow_roles.as_ref().map(|r| {
            if r.get_ref().is_empty() {
                self.errs.push(
                    span(r),
                    &format!("{key}.allow_roles"),
                    "an empty list lets nobody in; remove the key or name the roles",
                );
            }
            r.get_ref().iter().map(|s| Arc::from(s.as_str())).collect()
        });
        let rules = self.rules(&format!("{key}.rule"), &l.rule);
        let mut contents = Vec::new();
        if let Some(p) = &l.proxy_pass {
            contents.push(("proxy_pass", span(p)));
        }
        if let Some(r) = &l.return_ {
            contents.push(("return", span(r)));
        }
        if let Some(r) = &l.root {
            contents.push(("root", span(r)));
        }
        if contents.len() > 1 {
            let names: Vec<&str> = contents.iter().map(|(n, _)| *n).collect();
            self.errs.push(
                contents[1].1.clone(),
                key,
                format!(
                    "a location has one of proxy_pass, return or root, not {}",
                    names.join(" and ")
                ),
            );
            return None;
        }
        if l.index.is_some() && l.root.is_none() {
            let at = l.index.as_ref().map(|i| i.span());
            self.errs
                .push(at, &format!("{key}.index"), "index needs root");
        }
        let action = if let Some(p) = &l.proxy_pass {
            let pp = self.proxy_pass(key, p, explicit_upstreams)?;
            if regex.is_some() && pp.uri.is_some() {
                self.errs.push(
                    span(p),
                    &format!("{key}.proxy_pass"),
                    "proxy_pass cannot have a URI part in a regex location (as in nginx)",
                );
            }
            Action::Proxy(pp)
        } else if let Some(r) = &l.return_ {
            let (status, body) = self.return_value(r, &format!("{key}.return"));
            Action::Return { status, body }
        } else if let Some(r) = &l.root {
            let root = self.path(r.get_ref());
            if !root.is_dir() {
                // nginx loads such a configuration and answers 404; so do we, but say so.
                log::warn!(
                    "{key}.root: {} is not a directory; requests there will get 404",
                    root.display()
                );
            }
            let index = l
                .index
                .as_ref()
                .map(|i| i.get_ref().clone())
                .unwrap_or_else(|| vec!["index.html".to_string()]);
            Action::Static(StaticRoot { root, index })
        } else if rules.iter().any(|r| r.condition.is_none()) {
            Action::Rules
        } else {
            self.errs.push(
                span(&l.path),
                key,
                "a location needs proxy_pass, return, root, or a rule without `if` that always answers",
            );
            return None;
        };
        Some(Location {
            path,
            kind,
            regex,
            action,
            set_headers,
            verify_client,
            allow_roles,
            rules,
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
    fn connection_limits_default_generous_and_refuse_zero() {
        let base = "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.location]]\npath = \"/\"\nreturn = 204\n";
        let c = parse_str(base, Path::new("t.toml")).unwrap();
        assert_eq!(c.runtime.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(
            c.runtime.max_connections_per_worker,
            DEFAULT_MAX_CONNECTIONS
        );
        let text = format!("[runtime]\nmax_connections = 100\n{base}");
        let c = parse_str(&text, Path::new("t.toml")).unwrap();
        assert_eq!(
            (
                c.runtime.max_connections,
                c.runtime.max_connections_per_worker
            ),
            (100, 100)
        );
        let text =
            format!("[runtime]\nmax_connections = 100\nmax_connections_per_worker = 7\n{base}");
        let c = parse_str(&text, Path::new("t.toml")).unwrap();
        assert_eq!(c.runtime.max_connections_per_worker, 7);
        let text = format!("[runtime]\nmax_connections_per_worker = 0\n{base}");
        let err = parse_str(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.toml:2: runtime.max_connections_per_worker: at least 1"),
            "{err}"
        );
    }

    #[test]
    fn no_listener_is_an_error() {
        let err = parse_str("", Path::new("e.toml")).unwrap_err();
        assert!(err.to_string().contains("no [[listener]]"));
    }
}
