//! `upstream` blocks and `proxy_pass` / `grpc_pass` targets. nginx sets proxy_* and grpc_* per
//! location, ringgate per `[[upstream]]`: each distinct (target, protocol, settings) triple
//! becomes its own upstream, named after the target (`app`, `app#2`, ...), keeping nginx's
//! `$proxy_host` (the gRPC module's `:authority`) and TLS name. An `upstream` block that both
//! proxy_pass and grpc_pass name is thus two `[[upstream]]`s with the same servers, one
//! speaking HTTP/1.1 and one HTTP/2, as nginx's two modules each speak their own protocol to
//! them.

use super::model::{OutUpstream, OutUpstreamTls, L};
use super::scope::Proxy;
use super::Translator;
use crate::tools::nginx::parser::Directive;
use crate::tools::nginx::Origin;

/// An nginx `upstream` block.
#[derive(Debug, Clone)]
pub struct Block {
    /// Its name.
    pub name: String,
    /// The block.
    pub at: Origin,
    /// `server` addresses with a port.
    pub servers: Vec<L<String>>,
    /// `server ... backup` addresses with a port.
    pub backups: Vec<L<String>>,
    /// `max_fails=` of its servers (ringgate has one value per upstream).
    pub max_fails: Option<L<u64>>,
    /// `fail_timeout=` of its servers.
    pub fail_timeout: Option<L<String>>,
    /// `keepalive`.
    pub keepalive: Option<L<u64>>,
    /// `keepalive_timeout`.
    pub keepalive_timeout: Option<L<String>>,
    /// Some proxy_pass names it.
    pub used: bool,
    /// The "keepalive has no effect" warning was given.
    pub warned_keepalive: bool,
}

/// Upstreams made so far, by their settings.
#[derive(Debug, Default)]
pub struct Registry {
    made: Vec<(Vec<String>, usize)>,
}

/// How a location passes its requests: nginx's module and the scheme of its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `proxy_pass http://`.
    Http,
    /// `proxy_pass https://`.
    Https,
    /// `grpc_pass grpc://` (or no scheme): HTTP/2 in cleartext.
    Grpc,
    /// `grpc_pass grpcs://`: HTTP/2 over TLS.
    Grpcs,
}

impl Scheme {
    /// Over TLS.
    pub fn tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Grpcs)
    }

    /// The gRPC module's (HTTP/2 to the upstream).
    pub fn grpc(self) -> bool {
        matches!(self, Scheme::Grpc | Scheme::Grpcs)
    }

    /// The scheme as ringgate's `proxy_pass` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Grpc => "grpc",
            Scheme::Grpcs => "grpcs",
        }
    }

    /// The module's directive prefix: `proxy` or `grpc`.
    pub fn module(self) -> &'static str {
        if self.grpc() {
            "grpc"
        } else {
            "proxy"
        }
    }
}

/// A parsed `proxy_pass` URL or `grpc_pass` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The scheme (and so the module).
    pub scheme: Scheme,
    /// `host[:port]` as written.
    pub authority: String,
    /// The host (brackets kept for IPv6).
    pub host: String,
    /// The port, when written.
    pub port: Option<u16>,
    /// The URI part, when written (even `/`).
    pub uri: Option<String>,
}

/// Splits `http[s]://host[:port][/uri]`.
pub fn parse_target(s: &str) -> Result<Target, String> {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("http://") {
        (Scheme::Http, &s[7..])
    } else if lower.starts_with("https://") {
        (Scheme::Https, &s[8..])
    } else {
        return Err(format!(
            "invalid URL prefix in \"{s}\"; expected http:// or https://"
        ));
    };
    if s.contains('$') {
        return Err(
            "variables in proxy_pass are not supported (ringgate resolves upstreams at load)"
                .into(),
        );
    }
    if rest.starts_with("unix:") {
        return Err("unix socket upstreams are not supported".into());
    }
    let (authority, uri) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], Some(rest[i..].to_string())),
        Some(_) => return Err(format!("invalid URL \"{s}\"")),
        None => (rest, None),
    };
    if authority.is_empty() {
        return Err(format!("no host in \"{s}\""));
    }
    let (host, port) =
        split_host_port(authority).ok_or_else(|| format!("invalid host in \"{s}\""))?;
    Ok(Target {
        scheme,
        authority: authority.to_string(),
        host,
        port,
        uri,
    })
}

/// Splits `grpc_pass [grpc://|grpcs://]host[:port]` (no scheme is grpc://). nginx takes no
/// URI part here: the request's own path is passed.
pub fn parse_grpc_target(s: &str) -> Result<Target, String> {
    if s.contains('$') {
        return Err(
            "variables in grpc_pass are not supported (ringgate resolves upstreams at load)".into(),
        );
    }
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("grpc://") {
        (Scheme::Grpc, &s[7..])
    } else if lower.starts_with("grpcs://") {
        (Scheme::Grpcs, &s[8..])
    } else {
        (Scheme::Grpc, s)
    };
    if rest.starts_with("unix:") {
        return Err("unix socket upstreams are not supported".into());
    }
    if rest.contains("://") {
        return Err(format!(
            "invalid URL prefix in \"{s}\"; expected grpc://, grpcs:// or an address"
        ));
    }
    if rest.is_empty() {
        return Err(format!("no host in \"{s}\""));
    }
    if rest.contains(['/', '?']) {
        return Err(format!(
            "invalid host in upstream \"{rest}\" (grpc_pass takes no URI part; the request's path is passed as it is)"
        ));
    }
    let (host, port) =
        split_host_port(rest).ok_or_else(|| format!("invalid host in upstream \"{rest}\""))?;
    Ok(Target {
        scheme,
        authority: rest.to_string(),
        host,
        port,
        uri: None,
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(a: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = a.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = format!("[{}]", &rest[..end]);
        let after = &rest[end + 1..];
        if after.is_empty() {
            return Some((host, None));
        }
        let port = after.strip_prefix(':')?.parse().ok()?;
        return Some((host, Some(port)));
    }
    match a.rsplit_once(':') {
        Some((h, p)) => {
            if h.is_empty() || h.contains(':') {
                return None;
            }
            Some((h.to_string(), Some(p.parse().ok()?)))
        }
        None => Some((a.to_string(), None)),
    }
}

fn with_port(addr: &str, default: u16) -> Option<String> {
    let (host, port) = split_host_port(addr)?;
    Some(format!("{host}:{}", port.unwrap_or(default)))
}

impl Translator {
    /// `upstream NAME { server ADDR [params]; keepalive N; ... }`.
    pub(super) fn upstream_block(&mut self, d: &Directive) {
        let Some(block) = self.block(d, 1..=1) else {
            return;
        };
        let name = d.args[0].clone();
        if self.upstream_blocks.iter().any(|b| b.name == name) {
            self.diag
                .error(&d.origin, format!("duplicate upstream \"{name}\""));
            return;
        }
        let mut b = Block {
            name,
            at: d.origin.clone(),
            servers: Vec::new(),
            backups: Vec::new(),
            max_fails: None,
            fail_timeout: None,
            keepalive: None,
            keepalive_timeout: None,
            used: false,
            warned_keepalive: false,
        };
        for e in block {
            if e.block.is_some() {
                self.diag.other(e, "upstream");
                continue;
            }
            match e.name.as_str() {
                "server" => self.upstream_server(e, &mut b),
                "keepalive" => {
                    if let Some(n) = self.diag.one(e).and_then(|a| self.diag.number(e, a)) {
                        b.keepalive = Some(L::new(n, &e.origin));
                    }
                }
                "keepalive_timeout" => {
                    if let Some(v) = self.diag.one(e).and_then(|a| self.diag.duration(e, a)) {
                        b.keepalive_timeout = Some(L::new(v, &e.origin));
                    }
                }
                "least_conn" | "ip_hash" | "hash" | "random" => self.diag.warn(
                    &e.origin,
                    "ignored: ringgate balances an upstream's servers round robin",
                ),
                "zone" | "keepalive_requests" | "keepalive_time" | "ntlm" | "queue" => {
                    self.diag.warn(
                        &e.origin,
                        "ignored: an nginx upstream tuning with no ringgate equivalent",
                    )
                }
                _ => self.diag.other(e, "upstream"),
            }
        }
        if b.servers.is_empty() {
            self.diag.error(
                &d.origin,
                format!("no servers are inside upstream \"{}\"", b.name),
            );
            return;
        }
        self.upstream_blocks.push(b);
    }

    fn upstream_server(&mut self, e: &Directive, b: &mut Block) {
        if !self.diag.args(e, 1..=usize::MAX) {
            return;
        }
        let addr = &e.args[0];
        if addr.starts_with("unix:") {
            self.diag
                .error(&e.origin, "unix socket upstreams are not supported");
            return;
        }
        let Some(addr) = with_port(addr, 80) else {
            self.diag
                .error(&e.origin, format!("invalid address \"{addr}\""));
            return;
        };
        let mut ignored = Vec::new();
        let mut backup = false;
        for p in &e.args[1..] {
            let name = p.split('=').next().unwrap_or(p);
            match name {
                "backup" => backup = true,
                "down" => {
                    self.diag.warn(
                        &e.origin,
                        "a `down` server is left out, as nginx never sends it a request",
                    );
                    return;
                }
                "max_fails" | "fail_timeout" => {
                    let value = p.split_once('=').map_or("", |(_, v)| v);
                    self.failure_setting(e, b, name, value);
                }
                "weight" | "max_conns" | "slow_start" | "resolve" | "service" | "route" => {
                    ignored.push(p.as_str())
                }
                _ => {
                    self.diag
                        .error(&e.origin, format!("invalid parameter \"{p}\""));
                    return;
                }
            }
        }
        if !ignored.is_empty() {
            self.diag.warn(
                &e.origin,
                format!(
                    "{} ignored: ringgate uses every server round robin",
                    ignored.join(" ")
                ),
            );
        }
        if backup {
            b.backups.push(L::new(addr, &e.origin));
        } else {
            b.servers.push(L::new(addr, &e.origin));
        }
    }

    /// A server's `max_fails=` or `fail_timeout=`: ringgate has one value per upstream, so the
    /// first one given is used and a different one on another server is warned about.
    fn failure_setting(&mut self, e: &Directive, b: &mut Block, name: &str, value: &str) {
        let at = &e.origin;
        let (prev, now) = if name == "max_fails" {
            let Some(n) = self.diag.number(e, value) else {
                return;
            };
            let prev = b.max_fails.as_ref().map(|v| (v.v.to_string(), v.at.line));
            if prev.is_none() {
                b.max_fails = Some(L::new(n, at));
            }
            (prev, n.to_string())
        } else {
            let Some(d) = self.diag.duration(e, value) else {
                return;
            };
            let prev = b.fail_timeout.as_ref().map(|v| (v.v.clone(), v.at.line));
            if prev.is_none() {
                b.fail_timeout = Some(L::new(d.clone(), at));
            }
            (prev, d)
        };
        if let Some((v, line)) = prev.filter(|(v, _)| *v != now) {
            self.diag.warn(
                at,
                format!("{name}={now} ignored: ringgate has one {name} per upstream, and line {line} set {v}"),
            );
        }
    }

    /// Whether an `upstream` block named `name` exists.
    pub(super) fn has_upstream_block(&self, name: &str) -> bool {
        self.upstream_blocks.iter().any(|b| b.name == name)
    }

    /// The upstream for a location's `proxy_pass` or `grpc_pass` and the effective settings of
    /// its module (`proxy`: proxy_*, or grpc_*). Returns the proxy_pass text to write and, when
    /// the upstream had to be renamed (`app#2`), nginx's `$proxy_host` for it.
    pub(super) fn proxy_target(
        &mut self,
        pass: &L<Target>,
        proxy: &Proxy,
        headers: &[L<(String, String)>],
    ) -> Option<(String, Option<String>)> {
        let t = &pass.v;
        let at = &pass.at;
        let block = self
            .upstream_blocks
            .iter()
            .position(|b| b.name == t.authority);
        // The gRPC module keeps upstream connections alive whenever the block has
        // `keepalive`; the proxy module only with HTTP/1.1 and `Connection` cleared.
        let reuses = t.scheme.grpc() || reuses_connections(proxy, headers);
        let src = match block {
            Some(i) => self.block_source(i, reuses, t.scheme, at),
            None => implicit_source(t, at),
        };
        let tls = if t.scheme.tls() {
            Some(self.upstream_tls(proxy, &src.base, at, t.scheme.module())?)
        } else {
            None
        };
        let key: Vec<String> = vec![
            src.base.clone(),
            t.scheme.as_str().to_string(),
            src.keepalive.v.to_string(),
            format!("{:?}", proxy.connect_timeout.as_ref().map(|v| &v.v)),
            format!("{:?}", proxy.read_timeout.as_ref().map(|v| &v.v)),
            format!("{:?}", proxy.send_timeout.as_ref().map(|v| &v.v)),
            format!("{:?}", tls.as_ref().map(tls_key)),
        ];
        let scheme = t.scheme.as_str();
        let uri = t.uri.clone().unwrap_or_default();
        let base = src.base.clone();
        let name = match self.registry.made.iter().find(|(k, _)| *k == key) {
            Some((_, idx)) => self.out.upstreams[*idx].name.clone(),
            None => {
                let name = self.make_upstream(src, proxy, tls, at, t.scheme);
                self.registry.made.push((key, self.out.upstreams.len() - 1));
                name
            }
        };
        let renamed = (name != base).then_some(base);
        Some((format!("{scheme}://{name}{uri}"), renamed))
    }

    /// Where an `upstream` block sends requests, marking the block used. Its `keepalive`
    /// counts only where nginx reuses connections (`reuses`; `at` is the pass).
    fn block_source(&mut self, i: usize, reuses: bool, scheme: Scheme, at: &Origin) -> Source {
        let b = &mut self.upstream_blocks[i];
        b.used = true;
        let keepalive = match &b.keepalive {
            Some(k) if reuses => k.clone(),
            Some(k) => {
                if !b.warned_keepalive {
                    b.warned_keepalive = true;
                    self.diag.warn(
                        &k.at,
                        format!("has no effect in nginx for the proxy_pass on line {} (it needs proxy_http_version 1.1 and proxy_set_header Connection \"\"): written as keepalive = 0 for it, as nginx behaves", at.line),
                    );
                }
                L::new(0, &k.at)
            }
            None => L::new(0, &b.at),
        };
        let b = &self.upstream_blocks[i];
        Source {
            base: b.name.clone(),
            servers: b.servers.clone(),
            backup_servers: b.backups.clone(),
            max_fails: b.max_fails.clone(),
            fail_timeout: b.fail_timeout.clone(),
            keepalive,
            keepalive_timeout: b.keepalive_timeout.clone(),
            note: format!(
                "upstream block \"{}\"{}",
                b.name,
                if scheme.grpc() { ", for grpc_pass" } else { "" }
            ),
        }
    }

    /// Writes a new `[[upstream]]` for `src` with these settings, named `base`, or `base#n`
    /// when that name is taken; returns its name.
    fn make_upstream(
        &mut self,
        src: Source,
        proxy: &Proxy,
        tls: Option<OutUpstreamTls>,
        at: &Origin,
        scheme: Scheme,
    ) -> String {
        let base = &src.base;
        let mut name = base.clone();
        let mut n = 1;
        while self.out.upstreams.iter().any(|u| u.name == name)
            || self
                .upstream_blocks
                .iter()
                .any(|b| b.name == name && name != *base)
        {
            n += 1;
            name = format!("{base}#{n}");
        }
        let note = if n > 1 {
            format!(
                "{}, with the {}_* settings of this location",
                src.note,
                scheme.module()
            )
        } else {
            src.note
        };
        self.out.upstreams.push(OutUpstream {
            at: at.clone(),
            note,
            name: name.clone(),
            protocol: scheme.grpc().then(|| L::new("h2".to_string(), at)),
            servers: src.servers,
            backup_servers: src.backup_servers,
            max_fails: src.max_fails,
            fail_timeout: src.fail_timeout,
            keepalive: src.keepalive,
            keepalive_timeout: src.keepalive_timeout,
            connect_timeout: proxy.connect_timeout.clone(),
            read_timeout: proxy.read_timeout.clone(),
            send_timeout: proxy.send_timeout.clone(),
            tls,
        });
        name
    }

    /// `[upstream.tls]` from the `{module}_ssl_*` settings (`module`: proxy or grpc).
    fn upstream_tls(
        &mut self,
        p: &Proxy,
        base: &str,
        at: &Origin,
        module: &str,
    ) -> Option<OutUpstreamTls> {
        // nginx's defaults (both modules): *_ssl_verify off, *_ssl_server_name off, the name
        // is the host passed to.
        let verify = p.ssl_verify.clone().unwrap_or_else(|| L::new(false, at));
        if verify.v && p.ssl_trusted_certificate.is_none() {
            self.diag.error(
                &verify.at,
                format!("no \"{module}_ssl_trusted_certificate\" for \"{module}_ssl_verify\""),
            );
            return None;
        }
        match (&p.ssl_certificate, &p.ssl_certificate_key) {
            (Some(c), None) => {
                self.diag.error(
                    &c.at,
                    format!(
                        "no \"{module}_ssl_certificate_key\" is defined for certificate \"{}\"",
                        c.v
                    ),
                );
                return None;
            }
            (None, Some(k)) => self.diag.warn(
                &k.at,
                format!("ignored: {module}_ssl_certificate_key without {module}_ssl_certificate"),
            ),
            _ => {}
        }
        let host = split_host_port(base)
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .unwrap_or_else(|| base.to_string());
        Some(OutUpstreamTls {
            verify,
            trusted_certificate: p.ssl_trusted_certificate.clone(),
            verify_depth: p.ssl_verify_depth.clone(),
            name: p.ssl_name.clone().unwrap_or_else(|| L::new(host, at)),
            server_name: p
                .ssl_server_name
                .clone()
                .unwrap_or_else(|| L::new(false, at)),
            certificate: p.ssl_certificate.clone(),
            key: p
                .ssl_certificate
                .as_ref()
                .and(p.ssl_certificate_key.clone()),
            protocols: p.ssl_protocols.clone(),
            session_reuse: p.ssl_session_reuse.clone(),
        })
    }

    /// `upstream` blocks no proxy_pass or grpc_pass names still become `[[upstream]]`s (nginx
    /// resolves their servers too).
    pub(super) fn unreferenced_upstreams(&mut self) {
        for b in self.upstream_blocks.clone() {
            if b.used {
                continue;
            }
            self.out.upstreams.push(OutUpstream {
                at: b.at.clone(),
                note: format!(
                    "upstream block \"{}\", which no proxy_pass or grpc_pass uses",
                    b.name
                ),
                name: b.name.clone(),
                protocol: None,
                servers: b.servers.clone(),
                backup_servers: b.backups.clone(),
                max_fails: b.max_fails.clone(),
                fail_timeout: b.fail_timeout.clone(),
                keepalive: b.keepalive.clone().unwrap_or_else(|| L::new(0, &b.at)),
                keepalive_timeout: b.keepalive_timeout.clone(),
                connect_timeout: None,
                read_timeout: None,
                send_timeout: None,
                tls: None,
            });
        }
    }
}

fn tls_key(t: &OutUpstreamTls) -> String {
    format!(
        "{:?}",
        (
            t.verify.v,
            t.trusted_certificate.as_ref().map(|v| &v.v),
            t.verify_depth.as_ref().map(|v| v.v),
            &t.name.v,
            t.server_name.v,
            t.certificate.as_ref().map(|v| &v.v),
            t.key.as_ref().map(|v| &v.v),
            t.protocols.as_ref().map(|v| &v.v),
            t.session_reuse.as_ref().map(|v| v.v),
        )
    )
}

/// Where a `proxy_pass` sends requests: an `upstream` block's servers or the one address it
/// names, with the settings that come with them.
struct Source {
    /// nginx's $proxy_host: the upstream name, or host[:port] without the default port.
    base: String,
    servers: Vec<L<String>>,
    backup_servers: Vec<L<String>>,
    max_fails: Option<L<u64>>,
    fail_timeout: Option<L<String>>,
    keepalive: L<u64>,
    keepalive_timeout: Option<L<String>>,
    /// What the upstream was made from, for the output's comment.
    note: String,
}

/// Whether nginx reuses upstream connections here: only with HTTP/1.1 and its default
/// `Connection: close` replaced.
fn reuses_connections(proxy: &Proxy, headers: &[L<(String, String)>]) -> bool {
    proxy.http_version.as_ref().is_some_and(|v| v.v == "1.1")
        && headers.iter().any(|h| {
            h.v.0.eq_ignore_ascii_case("connection")
                && !h.v.1.to_ascii_lowercase().contains("close")
        })
}

/// A `proxy_pass` or `grpc_pass` to an address with no `upstream` block: an implicit upstream
/// of one server. `$proxy_host` leaves out the scheme's default port; grpc_pass has no default
/// port (its target always has one here) and its `:authority` keeps it.
fn implicit_source(t: &Target, at: &Origin) -> Source {
    let default_port = if t.scheme.tls() { 443 } else { 80 };
    let port = t.port.unwrap_or(default_port);
    let base = if port == default_port && !t.scheme.grpc() {
        t.host.clone()
    } else {
        format!("{}:{port}", t.host)
    };
    Source {
        base,
        servers: vec![L::new(format!("{}:{port}", t.host), at)],
        backup_servers: Vec::new(),
        max_fails: None,
        fail_timeout: None,
        // Without an upstream block and `keepalive`, nginx closes every upstream connection
        // after its request.
        keepalive: L::new(0, at),
        keepalive_timeout: None,
        note: format!(
            "{}_pass to {}, an implicit upstream",
            t.scheme.module(),
            t.authority
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_pass_urls() {
        let t = parse_target("http://app.cluster.local:9000/").unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port, t.uri.as_deref()),
            (Scheme::Http, "app.cluster.local", Some(9000), Some("/"))
        );
        let t = parse_target("https://upstreamserver").unwrap();
        assert_eq!(
            (t.scheme, t.authority.as_str(), t.uri),
            (Scheme::Https, "upstreamserver", None)
        );
        let t = parse_target("HTTP://[::1]:81/x/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("[::1]", Some(81)));
        assert!(parse_target("http://$backend").is_err());
        assert!(parse_target("ftp://x").is_err());
        assert!(parse_target("http://").is_err());
        assert!(parse_target("http://a:b").is_err());
        assert!(parse_target("http://unix:/tmp/s").is_err());
        assert!(parse_target("http://é").is_ok());
        assert!(parse_target("httpé").is_err());
        assert!(parse_target("grpc://x:1").is_err());
    }

    #[test]
    fn grpc_pass_addresses() {
        let t = parse_grpc_target("127.0.0.1:9000").unwrap();
        assert_eq!(
            (t.scheme, t.authority.as_str(), t.port, t.uri),
            (Scheme::Grpc, "127.0.0.1:9000", Some(9000), None)
        );
        let t = parse_grpc_target("GRPC://app").unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port),
            (Scheme::Grpc, "app", None)
        );
        let t = parse_grpc_target("grpcs://[::1]:50051").unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port),
            (Scheme::Grpcs, "[::1]", Some(50051))
        );
        assert!(parse_grpc_target("grpc://unix:/run/g.sock")
            .unwrap_err()
            .contains("unix socket"));
        assert!(parse_grpc_target("unix:/run/g.sock")
            .unwrap_err()
            .contains("unix socket"));
        assert!(parse_grpc_target("grpc://$backend")
            .unwrap_err()
            .contains("variables"));
        assert!(parse_grpc_target("grpc://h:1/svc")
            .unwrap_err()
            .contains("no URI part"));
        assert!(parse_grpc_target("http://h:1")
            .unwrap_err()
            .contains("invalid URL prefix"));
        assert!(parse_grpc_target("grpc://").is_err());
        assert!(parse_grpc_target("grpc://h:port").is_err());
    }
}
