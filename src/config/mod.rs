//! Configuration: the TOML file read into typed, validated structs.
//!
//! Two stages: [`raw`] is the file's shape (serde, unknown keys refused); [`load`] resolves it
//! into [`Config`], where every address is parsed, every certificate and key is loaded and
//! checked, and every reference resolves. Nothing downstream validates again.

mod access;
pub mod error;
mod listener;
mod location;
pub mod raw;
mod revocation_fetch;
mod rule;
mod runtime;
mod structural;
mod tls;
pub mod units;
mod upstream;
mod upstream_tls;
pub mod vhost;
pub mod words;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use error::Collector;
pub use error::{ConfigError, ConfigErrors};
use listener::parse_listen;
pub use listener::{AccessLog, HttpSettings, IdentityHeaders, Server};
pub use location::{Action, Location, ProxyPass, StaticRoot};
use raw::RawConfig;
pub use rule::Rule;
pub use runtime::{Runtime, DEFAULT_MAX_CONNECTIONS, DEFAULT_REFUSAL_LOG_PER_SECOND};
use units::Quantity;
pub use words::{DriverChoice, IdentityField, MatchKind};
use words::{Keyword, Word};

use crate::config::vhost::VirtualHosts;
use crate::policy::IdentityPolicy;
use crate::upstream::Upstream;
use crate::vars::map::VarMap;

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Workers and process settings.
    pub runtime: Runtime,
    /// Servers (nginx `server` blocks), each on one of [`Config::sockets`].
    pub servers: Vec<Server>,
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
    let raw: RawConfig = match structural::structural(source, &mut errs) {
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
        servers: listeners,
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
        let full = self.written_path(p);
        self.read_paths.borrow_mut().push(full.clone());
        full
    }

    /// A path ringgate writes (the error log), resolved as [`Resolver::path`] resolves but not
    /// watched: a reload on every line written to it would reload for ever.
    fn written_path(&self, p: &str) -> PathBuf {
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
        let d = self.duration_or_zero(q, key, default);
        match q {
            Some(q) if d.is_zero() => {
                self.errs.push(span(q), key, "must be greater than zero");
                default
            }
            _ => d,
        }
    }

    /// The value of a keyword, or None when the file's word names none (reported against
    /// `key` with the accepted values).
    fn word<T: Keyword + Clone>(&mut self, w: &Spanned<Word<T>>, key: &str) -> Option<T> {
        match w.get_ref() {
            Word::Known(v) => Some(v.clone()),
            Word::Unknown(text) => {
                self.errs.push(span(w), key, T::refused(text));
                None
            }
        }
    }

    /// A duration where zero means "none" (closes at once, never waits).
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
        assert_eq!(err.0[0].key, "runtime.workerz", "{err}");
        assert!(
            err.0[0]
                .message
                .starts_with("unknown key, expected one of `workers`"),
            "{err}"
        );
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
    fn upgrade_tokens_are_lowercased_and_h2c_or_a_non_proxy_location_refused() {
        let loc = |extra: &str| {
            format!(
                "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.location]]\npath = \"/\"\n{extra}\n"
            )
        };
        let c = parse_str(
            &loc("proxy_pass = \"http://app\"\nupgrade = [\"WebSocket\", \"websocket\", \"foo\"]"),
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.servers[0].locations[0].upgrade, ["websocket", "foo"]);
        let err = |extra: &str| {
            parse_str(&loc(extra), Path::new("t.toml"))
                .unwrap_err()
                .to_string()
        };
        let e = err("proxy_pass = \"http://app\"\nupgrade = [\"h2c\"]");
        assert!(
            e.contains("t.toml:9: listener[0].location[0].upgrade: h2c is never tunnelled"),
            "{e}"
        );
        let e = err("return = 204\nupgrade = [\"websocket\"]");
        assert!(
            e.contains("listener[0].location[0].upgrade: upgrade needs proxy_pass"),
            "{e}"
        );
        let e = err("proxy_pass = \"http://app\"\nupgrade = [\"web socket\"]");
        assert!(e.contains("`web socket` is not a protocol name"), "{e}");
    }

    #[test]
    fn grpc_pass_urls_make_or_need_http2_upstreams() {
        use crate::upstream::UpstreamProtocol;
        let conf = |upstream: &str, location: &str| {
            format!(
                "{upstream}\n[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.location]]\npath = \"/\"\n{location}\n"
            )
        };
        let parse = |text: String| parse_str(&text, Path::new("t.toml")).map_err(|e| e.to_string());
        // An implicit upstream per address and protocol: grpc:// and http:// to one address
        // are two upstreams.
        let c = parse(conf(
            "",
            "proxy_pass = \"grpc://127.0.0.1:50051\"\n[[listener.location]]\npath = \"/web/\"\nproxy_pass = \"http://127.0.0.1:50051\"",
        ))
        .unwrap();
        let protocols: Vec<_> = c.upstreams.iter().map(|u| u.protocol).collect();
        assert_eq!(protocols, [UpstreamProtocol::H2, UpstreamProtocol::Http1]);
        // A declared upstream speaks what its `protocol` says; grpc:// needs it to say h2.
        let named = "[[upstream]]\nname = \"svc\"\nservers = [\"127.0.0.1:1\"]";
        let c = parse(conf(
            &format!("{named}\nprotocol = \"h2\""),
            "proxy_pass = \"grpc://svc\"",
        ))
        .unwrap();
        assert_eq!(c.upstreams[0].protocol, UpstreamProtocol::H2);
        let e = parse(conf(named, "proxy_pass = \"grpc://svc\"")).unwrap_err();
        assert!(
            e.contains("proxy_pass: gRPC needs HTTP/2: add protocol = \"h2\" to upstream `svc`"),
            "{e}"
        );
        let e = parse(conf(
            &format!("{named}\nprotocol = \"h2\""),
            "proxy_pass = \"grpcs://svc\"",
        ))
        .unwrap_err();
        assert!(
            e.contains("grpcs://svc verifies the upstream's certificate"),
            "{e}"
        );
        let e = parse(conf("", "proxy_pass = \"grpcs://127.0.0.1:1\"")).unwrap_err();
        assert!(e.contains("grpcs://127.0.0.1:1 verifies"), "{e}");
        let e = parse(conf(
            &format!("{named}\nprotocol = \"h3\""),
            "proxy_pass = \"http://svc\"",
        ))
        .unwrap_err();
        assert!(
            e.contains("upstream[0].protocol: `h3` is not an upstream protocol; expected \"http1\" or \"h2\""),
            "{e}"
        );
        let e = parse(conf(
            "",
            "proxy_pass = \"grpc://127.0.0.1:1\"\nupgrade = [\"websocket\"]",
        ))
        .unwrap_err();
        assert!(
            e.contains("an HTTP/2 upstream (protocol = \"h2\", grpc://) carries no Upgrade"),
            "{e}"
        );
        let e = parse(conf("", "proxy_pass = \"ftp://x\"")).unwrap_err();
        assert!(
            e.contains("expected http://, https://, grpc:// or grpcs://"),
            "{e}"
        );
    }

    #[test]
    fn the_error_log_is_never_watched() {
        // An error log that exists at start was watched: each line written to it reloaded
        // the configuration, whose warnings wrote the next line, for ever.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("error.log"), b"old lines\n").unwrap();
        let cfg = dir.path().join("ringgate.toml");
        std::fs::write(
            &cfg,
            "[runtime]\nerror_log = \"error.log\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.location]]\npath = \"/\"\nreturn = 204\n",
        )
        .unwrap();
        let c = load(&cfg).unwrap();
        assert_eq!(c.runtime.error_log, Some(dir.path().join("error.log")));
        assert!(
            !c.watched.iter().any(|p| p.ends_with("error.log")),
            "{:?}",
            c.watched
        );
        assert!(c.watched.contains(&cfg));
    }

    #[test]
    fn refusal_log_budget_defaults_to_ten_and_zero_means_every_line() {
        let base = "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.location]]\npath = \"/\"\nreturn = 204\n";
        let c = parse_str(base, Path::new("t.toml")).unwrap();
        assert_eq!(c.runtime.refusal_log_per_second, 10);
        let text = format!("[runtime]\nrefusal_log_per_second = 0\n{base}");
        let c = parse_str(&text, Path::new("t.toml")).unwrap();
        assert_eq!(c.runtime.refusal_log_per_second, 0);
        let text = format!("[runtime]\nrefusal_log_per_second = -1\n{base}");
        let err = parse_str(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.toml:2: runtime.refusal_log_per_second: expected"),
            "{err}"
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
