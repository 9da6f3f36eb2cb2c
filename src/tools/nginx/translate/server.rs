//! `server` blocks into `[[listener]]`s (one per `listen` address), `location`s, and the
//! rewrite-phase directives `if (...) { return ...; }` and `return`.

use std::collections::{BTreeMap, BTreeSet};

use super::model::*;
use super::scope::{Level, Scope};
use super::upstream::{parse_grpc_target, parse_target, Target};
use super::Translator;
use crate::config::units::{parse_duration, parse_size};
use crate::tools::nginx::parser::Directive;
use crate::tools::nginx::Origin;

/// One `listen`.
#[derive(Debug, Clone)]
pub(super) struct Listen {
    /// The address in ringgate's form (`443`, `127.0.0.1:443`, `[::]:443`).
    addr: String,
    ssl: bool,
    /// `http2` (before nginx 1.25.1: HTTP/2 for every server on the address).
    http2: bool,
    default_server: bool,
    at: Origin,
}

/// A server block, read; its listeners are made once every server is known (the `ssl` flag
/// and `default_server` belong to an address, across servers).
#[derive(Debug)]
pub(super) struct Server {
    at: Origin,
    index: usize,
    listens: Vec<Listen>,
    names: Option<L<Vec<String>>>,
    scope: Scope,
    rules: Vec<OutRule>,
    locations: Vec<OutLocation>,
    verify_in_locations: bool,
}

/// A rewrite-phase directive, before the rules are settled.
struct Rule {
    at: Origin,
    cond: Option<String>,
    ret: OutReturn,
}

impl Translator {
    pub(super) fn server(&mut self, d: &Directive, http: &Scope, index: usize) -> Option<Server> {
        let block = d.block.as_deref()?;
        let mut body = self.server_directives(block);
        body.sc.inherit(http);
        let (mut locations, verify_in_locations) = self.server_locations_read(&body);
        let (mut rules, terminal) = settle(&mut self.diag, std::mem::take(&mut body.rules));
        if terminal.is_some() {
            for l in &locations {
                self.diag.warn(
                    &l.at,
                    "never used: the server's unconditional return answers every request first",
                );
            }
            locations.clear();
        }
        only_return_as_location(&mut rules, &mut locations);
        Some(Server {
            at: d.origin.clone(),
            index,
            listens: body.listens,
            names: body.names,
            scope: body.sc,
            rules,
            locations,
            verify_in_locations,
        })
    }

    /// A server block's own directives, sorted out; its locations are read later, once the
    /// server's settings are complete.
    fn server_directives<'d>(&mut self, block: &'d [Directive]) -> ServerBody<'d> {
        let mut body = ServerBody {
            sc: Scope::default(),
            listens: Vec::new(),
            names: None,
            rules: Vec::new(),
            locations: Vec::new(),
        };
        for e in block {
            match e.name.as_str() {
                "listen" if self.simple(e) => self.server_listen(e, &mut body.listens),
                "server_name" if self.simple(e) => self.server_name(e, &mut body.names),
                "location" => body.locations.push(e),
                "if" | "return" => body.rules.extend(self.rule(e)),
                _ => {
                    if !self.misplaced(e)
                        && (e.block.is_some()
                            || !body
                                .sc
                                .set(e, Level::Server, &mut self.diag, &self.conf_dir))
                    {
                        self.diag.other(e, "server");
                    }
                }
            }
        }
        body
    }

    /// `error_log` and `types`/`default_type` in a server or location: ringgate has one of
    /// each. Returns whether `e` was one of them.
    fn misplaced(&mut self, e: &Directive) -> bool {
        match e.name.as_str() {
            "error_log" => self.diag.warn(
                &e.origin,
                "ignored: ringgate has one error log, set in the main context",
            ),
            "types" | "default_type" => self.diag.error(
                &e.origin,
                "ringgate has one MIME type table: set types and default_type in http",
            ),
            _ => return false,
        }
        true
    }

    /// A server's `listen`, refused when the server already listens on its address.
    fn server_listen(&mut self, e: &Directive, listens: &mut Vec<Listen>) {
        let Some(l) = self.listen(e) else { return };
        if let Some(prev) = listens.iter().find(|p| p.addr == l.addr) {
            self.diag.error(
                &e.origin,
                format!(
                    "duplicate listen {} (first on line {})",
                    l.addr, prev.at.line
                ),
            );
        } else {
            listens.push(l);
        }
    }

    /// `server_name NAME...`, added to the server's names (regular expressions refused).
    fn server_name(&mut self, e: &Directive, names: &mut Option<L<Vec<String>>>) {
        if !self.diag.args(e, 1..=usize::MAX) {
            return;
        }
        let list = names.get_or_insert_with(|| L::new(Vec::new(), &e.origin));
        for n in &e.args {
            if n.starts_with('~') {
                self.diag.error(
                    &e.origin,
                    format!("regular expression server names are not supported: \"{n}\""),
                );
            } else if !n.is_empty() && !list.v.contains(n) {
                list.v.push(n.clone());
            }
        }
    }

    /// The server's locations, duplicates refused; and whether any of them requires a client
    /// certificate.
    fn server_locations_read(&mut self, body: &ServerBody<'_>) -> (Vec<OutLocation>, bool) {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut verify_in_locations = false;
        for l in &body.locations {
            if let Some(loc) = self.location(l, &body.sc) {
                if !seen.insert((loc.path.clone(), loc.match_kind)) {
                    self.diag
                        .error(&loc.at, format!("duplicate location \"{}\"", loc.path));
                    continue;
                }
                verify_in_locations |= loc.verify_client.as_ref().is_some_and(|v| v.v != "off");
                out.push(loc);
            }
        }
        (out, verify_in_locations)
    }

    /// `listen ADDRESS[:PORT] | PORT [ssl] [default_server] ...`.
    fn listen(&mut self, d: &Directive) -> Option<Listen> {
        if !self.diag.args(d, 1..=usize::MAX) {
            return None;
        }
        let addr = match listen_addr(&d.args[0]) {
            Ok((a, warn)) => {
                if let Some(w) = warn {
                    self.diag.warn(&d.origin, w);
                }
                a
            }
            Err(m) => {
                self.diag.error(&d.origin, m);
                return None;
            }
        };
        let mut l = Listen {
            addr,
            ssl: false,
            http2: false,
            default_server: false,
            at: d.origin.clone(),
        };
        for p in &d.args[1..] {
            let name = p.split('=').next().unwrap_or(p);
            match name {
                "ssl" => l.ssl = true,
                "default_server" | "default" => l.default_server = true,
                "http2" => l.http2 = true,
                "reuseport" => self
                    .diag
                    .warn(&d.origin, "reuseport ignored: ringgate always listens with SO_REUSEPORT, one socket per worker"),
                "backlog" | "rcvbuf" | "sndbuf" | "deferred" | "bind" | "ipv6only" | "so_keepalive"
                | "fastopen" | "setfib" | "accept_filter" => self.diag.warn(
                    &d.origin,
                    format!("{p} ignored: a socket tuning that does not change responses"),
                ),
                "proxy_protocol" | "quic" | "http3" => self
                    .diag
                    .error(&d.origin, format!("\"{p}\" is not supported")),
                _ => self
                    .diag
                    .error(&d.origin, format!("invalid parameter \"{p}\"")),
            }
        }
        Some(l)
    }

    /// `if (COND) { return ...; }` or `return ...;`.
    fn rule(&mut self, d: &Directive) -> Option<Rule> {
        if d.name == "return" {
            if !self.simple(d) {
                return None;
            }
            let ret = self.ret(d)?;
            return Some(Rule {
                at: d.origin.clone(),
                cond: None,
                ret,
            });
        }
        let Some(block) = &d.block else {
            self.diag
                .error(&d.origin, "directive \"if\" has no opening \"{\"");
            return None;
        };
        let cond = match condition(&d.args) {
            Ok(c) => c,
            Err(m) => {
                self.diag.error(&d.origin, m);
                return None;
            }
        };
        let mut ret = None;
        for e in block {
            if e.name != "return" {
                self.diag.error(
                    &e.origin,
                    format!(
                        "\"{}\" inside if is not supported: only `return` is",
                        e.name
                    ),
                );
                continue;
            }
            if ret.is_some() {
                self.diag
                    .warn(&e.origin, "never used: the first return in this if answers");
                continue;
            }
            if self.simple(e) {
                ret = self.ret(e);
            }
        }
        match ret {
            Some(ret) => Some(Rule {
                at: d.origin.clone(),
                cond: Some(cond),
                ret,
            }),
            None => {
                if block.is_empty() {
                    self.diag
                        .warn(&d.origin, "an empty if does nothing; left out");
                }
                None
            }
        }
    }

    /// `return CODE [TEXT|URL]` or `return URL` (302).
    fn ret(&mut self, d: &Directive) -> Option<OutReturn> {
        if !self.diag.args(d, 1..=2) {
            return None;
        }
        let first = &d.args[0];
        if d.args.len() == 1 && !first.bytes().all(|b| b.is_ascii_digit()) {
            if first.starts_with("http://")
                || first.starts_with("https://")
                || first.starts_with("$scheme")
            {
                return Some(OutReturn {
                    status: 302,
                    body: Some(first.clone()),
                });
            }
            self.diag
                .error(&d.origin, format!("invalid return code \"{first}\""));
            return None;
        }
        match first.parse::<u16>() {
            Ok(status) if status <= 999 && !first.is_empty() => Some(OutReturn {
                status,
                body: d.args.get(1).cloned(),
            }),
            _ => {
                self.diag
                    .error(&d.origin, format!("invalid return code \"{first}\""));
                None
            }
        }
    }

    fn location(&mut self, d: &Directive, server: &Scope) -> Option<OutLocation> {
        let block = self.block(d, 1..=2)?;
        let (match_kind, path) = match location_args(&d.args) {
            Ok(v) => v,
            Err(m) => {
                self.diag.error(&d.origin, m);
                return None;
            }
        };
        let regex = matches!(match_kind, Some("regex") | Some("regex_nocase"));
        let mut body = self.location_directives(block, regex);
        self.per_server_settings(&body.sc, server);
        let pass = self.location_pass_chosen(&mut body);
        body.sc.inherit(server);
        let (rules, terminal) = settle(&mut self.diag, std::mem::take(&mut body.rules));
        let mut loc = OutLocation {
            at: d.origin.clone(),
            note: None,
            path,
            match_kind,
            proxy_pass: None,
            ret: None,
            root: None,
            index: None,
            verify_client: body.verify.take(),
            set_header: Vec::new(),
            upgrade: None,
            rules: Vec::new(),
        };
        if terminal.is_some() {
            // The location's return answers every request: its proxy_pass or files never do.
            if let Some(p) = &pass {
                self.diag
                    .warn(&p.at, "never used: the location's return answers first");
            }
            match rules.as_slice() {
                [only] if only.cond.is_none() => {
                    loc.ret = Some(L::new(only.ret.clone(), &only.at));
                }
                _ => loc.rules = rules,
            }
            return Some(loc);
        }
        loc.rules = rules;
        match pass {
            Some(p) => self.location_proxy(&mut loc, &p, &body.sc)?,
            None => {
                loc.root = Some(self.static_root(&body.sc, &loc.at, Some(&loc.path)));
                loc.index = body.sc.index.clone();
            }
        }
        Some(loc)
    }

    /// A location block's directives, sorted out.
    fn location_directives(&mut self, block: &[Directive], regex: bool) -> LocationBody {
        let mut body = LocationBody {
            sc: Scope::default(),
            rules: Vec::new(),
            passes: Vec::new(),
            verify: None,
        };
        for e in block {
            match e.name.as_str() {
                "location" => self.diag.error(
                    &e.origin,
                    "nested locations are not supported; write each location at the server level",
                ),
                "proxy_pass" | "grpc_pass" if self.simple(e) => {
                    self.location_pass(e, regex, &mut body.passes)
                }
                "if" | "return" => body.rules.extend(self.rule(e)),
                "ssl_verify_client" if self.simple(e) => {
                    self.location_verify_client(e, &mut body.verify)
                }
                _ => {
                    if !self.misplaced(e)
                        && (e.block.is_some()
                            || !body
                                .sc
                                .set(e, Level::Location, &mut self.diag, &self.conf_dir))
                    {
                        self.diag.other(e, "location");
                    }
                }
            }
        }
        body
    }

    /// `proxy_pass URL` or `grpc_pass ADDRESS` in a location: one of each per location, and no
    /// URI part in a regex location. grpc_pass to a host with no port needs an `upstream`
    /// block of that name (nginx: "no port in upstream").
    fn location_pass(&mut self, e: &Directive, regex: bool, passes: &mut Vec<L<Target>>) {
        let Some(a) = self.diag.one(e) else { return };
        let parsed = if e.name == "grpc_pass" {
            parse_grpc_target(a)
        } else {
            parse_target(a)
        };
        let t = match parsed {
            Ok(t) => t,
            Err(m) => return self.diag.error(&e.origin, m),
        };
        if regex && t.uri.is_some() {
            self.diag.error(
                &e.origin,
                "\"proxy_pass\" cannot have URI part in location given by regular expression",
            );
        } else if let Some(prev) = passes
            .iter()
            .find(|p| p.v.scheme.module() == t.scheme.module())
        {
            self.diag.error(
                &e.origin,
                format!(
                    "\"{}\" directive is duplicate (first on line {})",
                    e.name, prev.at.line
                ),
            );
        } else if t.scheme.grpc() && t.port.is_none() && !self.has_upstream_block(&t.authority) {
            self.diag.error(
                &e.origin,
                format!(
                    "no port in upstream \"{}\" (grpc_pass has no default port; give one, or name an upstream block)",
                    t.authority
                ),
            );
        } else {
            passes.push(L::new(t, &e.origin));
        }
    }

    /// The pass that handles the location's requests: as in nginx, the last of its proxy_pass
    /// and grpc_pass (each module sets the location's handler; the later one replaces the
    /// earlier). Settings of the other module written in the location are warned about: nginx
    /// keeps proxy_* and grpc_* apart, so they do nothing here.
    fn location_pass_chosen(&mut self, body: &mut LocationBody) -> Option<L<Target>> {
        let chosen = body.passes.pop()?;
        let name = |t: &Target| format!("{}_pass", t.scheme.module());
        for p in body.passes.drain(..) {
            self.diag.warn(
                &p.at,
                format!(
                    "never used: the {} on line {} passes this location's requests (nginx uses the last of proxy_pass and grpc_pass)",
                    name(&chosen.v),
                    chosen.at.line
                ),
            );
        }
        let (other, other_settings) = if chosen.v.scheme.grpc() {
            ("proxy", &body.sc.proxy)
        } else {
            ("grpc", &body.sc.grpc)
        };
        for at in other_settings.origins() {
            self.diag.warn(
                at,
                format!(
                    "ignored: this location passes with {}, which uses {}_* settings only; {other}_* ones apply to {other}_pass (as in nginx)",
                    name(&chosen.v),
                    chosen.v.scheme.module()
                ),
            );
        }
        Some(chosen)
    }

    /// `ssl_verify_client` in a location: nginx refuses it there; ringgate makes it a
    /// per-path client-certificate requirement (the enterprise mTLS guide's per-path access).
    fn location_verify_client(&mut self, e: &Directive, verify: &mut Option<L<String>>) {
        let Some(a) = self.diag.one(e) else { return };
        match a {
            "on" | "off" | "optional" => {
                if verify.is_some() {
                    self.diag
                        .error(&e.origin, "\"ssl_verify_client\" directive is duplicate");
                }
                *verify = Some(L::new(a.to_string(), &e.origin));
            }
            _ => self.diag.error(
                &e.origin,
                format!("invalid value \"{a}\" in a location; expected on, off or optional"),
            ),
        }
    }

    /// A proxying location: its upstream, and the headers sent with it (`Host` and
    /// `$proxy_host` named after the upstream nginx would have connected to). A grpc_pass
    /// location takes the grpc_* settings, a proxy_pass one the proxy_* settings.
    fn location_proxy(&mut self, loc: &mut OutLocation, p: &L<Target>, sc: &Scope) -> Option<()> {
        let module = if p.v.scheme.grpc() {
            &sc.grpc
        } else {
            &sc.proxy
        };
        let mut headers = module.headers.clone().unwrap_or_default();
        let (text, renamed) = self.proxy_target(p, module, &headers)?;
        if let Some(host) = renamed {
            // The upstream is `NAME#n` in ringgate; nginx's $proxy_host is NAME.
            for h in &mut headers {
                h.v.1 = replace_var(&h.v.1, "proxy_host", &host);
            }
            if !headers.iter().any(|h| h.v.0.eq_ignore_ascii_case("host")) {
                headers.insert(0, L::new(("Host".to_string(), host), &p.at));
            }
        }
        if !p.v.scheme.grpc() {
            // HTTP/2 has no Upgrade: the WebSocket idiom is proxy_pass's only.
            loc.upgrade = self.upgrade(&mut headers);
        }
        loc.set_header = headers;
        loc.proxy_pass = Some(L::new(text, &p.at));
        Some(())
    }

    /// nginx's WebSocket idiom, `proxy_set_header Upgrade $http_upgrade;` with `Connection`
    /// set to `upgrade` or to a map of it, becomes `upgrade = ["websocket"]`: ringgate
    /// forwards `Upgrade` only for the tokens listed, and writes `Connection` itself. nginx
    /// would forward any token the client sends, h2c included; ringgate never forwards h2c.
    fn upgrade(&mut self, headers: &mut Vec<L<(String, String)>>) -> Option<L<Vec<String>>> {
        let i = headers
            .iter()
            .position(|h| h.v.0.eq_ignore_ascii_case("upgrade"))?;
        let h = headers.remove(i);
        let value = h.v.1.trim();
        if value.is_empty() {
            return None;
        }
        let token = if value.starts_with('$') {
            "websocket".to_string()
        } else {
            value.to_ascii_lowercase()
        };
        if token == "h2c" {
            self.diag.warn(
                &h.at,
                "h2c is never tunnelled (it would bypass the access rules of every request after it); the Upgrade header is dropped",
            );
            return None;
        }
        headers.retain(|c| !c.v.0.eq_ignore_ascii_case("connection"));
        Some(L::new(vec![token], &h.at))
    }

    /// The root a location serves files from; nginx's default is `html` under its prefix.
    pub(super) fn static_root(&mut self, sc: &Scope, at: &Origin, path: Option<&str>) -> L<String> {
        self.serves_files = true;
        match &sc.root {
            Some(r) => r.clone(),
            None => {
                let root = self.conf_dir.join("html").to_string_lossy().into_owned();
                let what = match path {
                    Some(p) => format!("location {p} has no proxy_pass, return or root"),
                    None => "requests no location matches".to_string(),
                };
                self.diag.warn(
                    at,
                    format!("{what}: files are served from nginx's default root, {root}"),
                );
                L::new(root, at)
            }
        }
    }

    /// Settings ringgate has per listener that nginx also allows per location: a location may
    /// only repeat the server's value.
    fn per_server_settings(&mut self, loc: &Scope, server: &Scope) {
        let dur = |v: &Option<L<String>>| v.as_ref().map(|v| parse_duration(&v.v).ok());
        let size = |v: &Option<L<String>>| v.as_ref().map(|v| parse_size(&v.v).ok());
        let mut differs: Vec<&Origin> = Vec::new();
        if loc.client_max_body_size.is_some()
            && size(&loc.client_max_body_size)
                != size(&server.client_max_body_size).or(Some(Some(1024 * 1024)))
        {
            differs.extend(loc.client_max_body_size.as_ref().map(|v| &v.at));
        }
        if let Some(k) = &loc.keepalive_timeout {
            let mine = k.v.as_ref().map(|v| parse_duration(v).ok());
            let theirs = match &server.keepalive_timeout {
                Some(s) => s.v.as_ref().map(|v| parse_duration(v).ok()),
                None => Some(Some(std::time::Duration::from_secs(75))),
            };
            if mine != theirs {
                differs.push(&k.at);
            }
        }
        if let Some(k) = &loc.keepalive_requests {
            if Some(k.v)
                != server
                    .keepalive_requests
                    .as_ref()
                    .map(|s| s.v)
                    .or(Some(1000))
            {
                differs.push(&k.at);
            }
        }
        if loc.body_timeout.is_some()
            && dur(&loc.body_timeout)
                != dur(&server.body_timeout).or(Some(Some(std::time::Duration::from_secs(60))))
        {
            differs.extend(loc.body_timeout.as_ref().map(|v| &v.at));
        }
        if loc.send_timeout.is_some()
            && dur(&loc.send_timeout)
                != dur(&server.send_timeout).or(Some(Some(std::time::Duration::from_secs(60))))
        {
            differs.extend(loc.send_timeout.as_ref().map(|v| &v.at));
        }
        for at in differs {
            self.diag.error(
                at,
                "ringgate applies this per server (listener), not per location; set it in the server block",
            );
        }
        if let Some(a) = &loc.access_log {
            if server.access_log.as_ref().map(|s| &s.v) != Some(&a.v) {
                self.diag.warn(
                    &a.at,
                    "ignored: ringgate writes one access log per server; set it in the server block",
                );
            }
        }
    }

    /// Makes the `[[listener]]`s: one per server and listen address.
    pub(super) fn listeners(&mut self, servers: Vec<Server>) {
        let (ssl_addrs, h2_addrs) = self.shared_listen_flags(&servers);
        let mut names_used = BTreeSet::new();
        for mut s in servers {
            if s.listens.is_empty() {
                // nginx's default: listen *:80.
                s.listens.push(Listen {
                    addr: "80".into(),
                    ssl: false,
                    http2: false,
                    default_server: false,
                    at: s.at.clone(),
                });
            }
            let base = base_name(&s);
            let several = s.listens.len() > 1;
            let locations = self.server_locations(&s);
            for l in &s.listens {
                let name = listener_name(&base, several, l, &mut names_used);
                // Port 0 ("any free port", used by tests) names no shared address: only the
                // listen's own `ssl` counts, as ringgate's loader never shares port 0 either.
                let own_ssl = l.ssl || s.scope.ssl.as_ref().is_some_and(|v| v.v);
                let port_zero = l.addr == "0" || l.addr.ends_with(":0");
                let tls = if own_ssl || (!port_zero && ssl_addrs.contains(&l.addr)) {
                    self.listener_tls(&s, l)
                } else {
                    None
                };
                let access_log = self.listener_access_log(&s.scope);
                // nginx's default is off; ringgate's is on, so the choice is always written.
                let http2 = match &s.scope.http2 {
                    Some(h) => h.clone(),
                    None if l.http2 || (!port_zero && h2_addrs.contains(&l.addr)) => {
                        L::new(true, &l.at)
                    }
                    None => L::new(false, &s.at),
                };
                self.out.listeners.push(OutListener {
                    at: s.at.clone(),
                    name,
                    listen: L::new(l.addr.clone(), &l.at),
                    default_server: l.default_server.then(|| L::new(true, &l.at)),
                    server_names: s.names.clone(),
                    access_log,
                    tls,
                    http2,
                    http: out_http(&s),
                    rules: s.rules.clone(),
                    locations: locations.clone(),
                });
            }
        }
    }

    /// What belongs to a listen address across servers: the addresses made TLS (nginx: `ssl`
    /// on any listen of an address makes it TLS for every server) and those with HTTP/2 (the
    /// same for `http2`), and one default server per address.
    fn shared_listen_flags(&mut self, servers: &[Server]) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut ssl_addrs = BTreeSet::new();
        let mut h2_addrs = BTreeSet::new();
        let mut defaults: BTreeMap<String, Origin> = BTreeMap::new();
        for s in servers {
            for l in &s.listens {
                if l.ssl || s.scope.ssl.as_ref().is_some_and(|v| v.v) {
                    ssl_addrs.insert(l.addr.clone());
                }
                if l.http2 {
                    h2_addrs.insert(l.addr.clone());
                }
                if !l.default_server {
                    continue;
                }
                if let Some(prev) = defaults.get(&l.addr) {
                    self.diag.error(
                        &l.at,
                        format!(
                            "a duplicate default server for {} (first on line {})",
                            l.addr, prev.line
                        ),
                    );
                } else {
                    defaults.insert(l.addr.clone(), l.at.clone());
                }
            }
        }
        (ssl_addrs, h2_addrs)
    }

    /// The server's access log, if it writes one in a known format (which is then emitted).
    fn listener_access_log(&mut self, sc: &Scope) -> Option<L<AccessLog>> {
        sc.access_log.clone().filter(|a| {
            if let AccessLog::File { format, .. } = &a.v {
                if format != "combined" && !self.log_formats.contains_key(format) {
                    self.diag
                        .error(&a.at, format!("unknown log format \"{format}\""));
                    return false;
                }
                if format != "combined" && !self.used_formats.contains(format) {
                    self.used_formats.push(format.clone());
                }
                true
            } else {
                // Off is ringgate's default too.
                false
            }
        })
    }

    /// The server's locations, plus where nginx would serve files for requests no location
    /// matches (a `/` prefix location with the server's root).
    fn server_locations(&mut self, s: &Server) -> Vec<OutLocation> {
        let mut locations = s.locations.clone();
        let terminal = s.rules.last().is_some_and(|r| r.cond.is_none());
        if terminal {
            return locations;
        }
        let covered = locations
            .iter()
            .any(|l| l.path == "/" && matches!(l.match_kind, None | Some("prefix_no_regex")));
        if !covered && s.scope.root.is_none() && !self.conf_dir.join("html").is_dir() {
            // nginx would look for files under its default root, which does not exist here:
            // every request no location matches gets 404.
            locations.push(OutLocation {
                at: s.at.clone(),
                note: Some(format!(
                    "requests no location matches: nginx looks under {}, which does not exist",
                    self.conf_dir.join("html").display()
                )),
                path: "/".into(),
                match_kind: None,
                proxy_pass: None,
                ret: Some(L::new(
                    OutReturn {
                        status: 404,
                        body: None,
                    },
                    &s.at,
                )),
                root: None,
                index: None,
                verify_client: None,
                set_header: Vec::new(),
                upgrade: None,
                rules: Vec::new(),
            });
        } else if !covered {
            let root = self.static_root(&s.scope, &s.at, None);
            locations.push(OutLocation {
                at: s.at.clone(),
                note: Some("requests no location matches: files under root, as nginx".into()),
                path: "/".into(),
                match_kind: None,
                proxy_pass: None,
                ret: None,
                root: Some(root),
                index: s.scope.index.clone(),
                verify_client: None,
                set_header: Vec::new(),
                upgrade: None,
                rules: Vec::new(),
            });
        }
        locations
    }

    fn listener_tls(&mut self, s: &Server, l: &Listen) -> Option<OutTls> {
        let sc = &s.scope;
        if sc.certs.is_empty() {
            self.diag.error(
                &l.at,
                format!(
                    "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive ({})",
                    l.addr
                ),
            );
            return None;
        }
        let mut certificates = Vec::new();
        for (i, c) in sc.certs.iter().enumerate() {
            match sc.keys.get(i) {
                Some(k) => certificates.push((c.clone(), k.clone())),
                None => {
                    self.diag.error(
                        &c.at,
                        format!(
                            "no \"ssl_certificate_key\" is defined for certificate \"{}\"",
                            c.v
                        ),
                    );
                    return None;
                }
            }
        }
        let verify = sc
            .verify_client
            .clone()
            .unwrap_or_else(|| L::new("off".into(), &s.at));
        let verifies = verify.v != "off" || s.verify_in_locations;
        Some(OutTls {
            certificates,
            protocols: sc.protocols.clone(),
            client_certificate: sc.client_ca.clone(),
            trusted_certificate: sc.trusted.clone(),
            verify_failure: verifies.then(|| L::new("http".into(), &verify.at)),
            verify_client: verify,
            verify_depth: sc.verify_depth.clone().unwrap_or_else(|| L::new(1, &s.at)),
            session_tickets: sc.session_tickets.clone(),
            // nginx's default is `ssl_session_cache none`: no stateful sessions.
            session_cache: sc.session_cache.clone().unwrap_or_else(|| L::new(0, &s.at)),
            session_timeout: sc.session_timeout.clone(),
            session_ticket_key: sc.ticket_keys.clone(),
            crl: sc.crl.clone(),
            // An explicit file wins over fetching, as in nginx.
            staple: match (&sc.stapling, &sc.stapling_file) {
                (Some(on), Some(file)) if on.v => Some(file.clone()),
                (Some(on), None) if on.v => Some(L::new("fetch".into(), &on.at)),
                _ => None,
            },
            ocsp_client: sc.ocsp.clone().filter(|o| o.v != "off"),
            ocsp_responder: sc.ocsp_responder.clone(),
            ocsp_cache: sc
                .ocsp_cache
                .as_ref()
                .and_then(|c| c.v.map(|n| L::new(n, &c.at))),
        })
    }
}

/// Rules run in order; an unconditional return ends them (later ones are never reached).
fn settle(diag: &mut super::Diag, rules: Vec<Rule>) -> (Vec<OutRule>, Option<Origin>) {
    let mut out = Vec::new();
    let mut terminal: Option<Origin> = None;
    for r in rules {
        if let Some(t) = &terminal {
            diag.warn(
                &r.at,
                format!("never used: the return on line {} answers first", t.line),
            );
            continue;
        }
        if r.cond.is_none() {
            terminal = Some(r.at.clone());
        }
        out.push(OutRule {
            at: r.at,
            cond: r.cond,
            ret: r.ret,
        });
    }
    (out, terminal)
}

/// `location [=|~|~*|^~] PATH` (modifier apart or glued, as nginx reads it).
fn location_args(args: &[String]) -> Result<(Option<&'static str>, String), String> {
    let kind = |m: &str| match m {
        "=" => Ok(Some("exact")),
        "~" => Ok(Some("regex")),
        "~*" => Ok(Some("regex_nocase")),
        "^~" => Ok(Some("prefix_no_regex")),
        _ => Err(format!("invalid location modifier \"{m}\"")),
    };
    let (k, path) = match args {
        [m, p] => (kind(m)?, p.clone()),
        [p] => {
            if let Some(rest) = p.strip_prefix('=') {
                (Some("exact"), rest.to_string())
            } else if let Some(rest) = p.strip_prefix("^~") {
                (Some("prefix_no_regex"), rest.to_string())
            } else if let Some(rest) = p.strip_prefix("~*") {
                (Some("regex_nocase"), rest.to_string())
            } else if let Some(rest) = p.strip_prefix('~') {
                (Some("regex"), rest.to_string())
            } else if p.starts_with('@') {
                return Err("named locations (@name) are not supported".into());
            } else {
                (None, p.clone())
            }
        }
        _ => return Err("invalid number of arguments in \"location\" directive".into()),
    };
    if path.is_empty() {
        return Err("a location needs a path".into());
    }
    Ok((k, path))
}

/// A listen address in ringgate's form, and a warning when it is approximated.
fn listen_addr(a: &str) -> Result<(String, Option<String>), String> {
    if a.starts_with("unix:") {
        return Err("unix socket listeners are not supported".into());
    }
    if let Ok(p) = a.parse::<u16>() {
        return Ok((p.to_string(), None));
    }
    if let Some(rest) = a.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("invalid address \"{a}\""))?;
        let ip = &rest[..end];
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("invalid IPv6 address \"{a}\""))?;
        let port = match &rest[end + 1..] {
            "" => 80,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| format!("invalid port in \"{a}\""))?,
        };
        return Ok((format!("[{ip}]:{port}"), None));
    }
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("invalid port in \"{a}\""))?,
        ),
        None => (a, 80),
    };
    if host == "*" || host == "0.0.0.0" {
        return Ok((port.to_string(), None));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok((format!("{host}:{port}"), None));
    }
    if host == "localhost" {
        return Ok((
            format!("127.0.0.1:{port}"),
            Some(
                "localhost is taken as 127.0.0.1 (nginx binds every address the name resolves to)"
                    .into(),
            ),
        ));
    }
    Err(format!(
        "host names in listen are not supported: \"{a}\"; give an IP address"
    ))
}

/// The condition of `if (...)` in nginx syntax, parentheses removed: `$var`, `$var = value`,
/// `$var != value`, `$var ~ re`, `$var ~* re`, `$var !~ re`, `$var !~* re`. A value that would
/// not survive as one word is written in double quotes with `\` escapes.
fn condition(args: &[String]) -> Result<String, String> {
    let mut words: Vec<String> = args.to_vec();
    let invalid = || format!("invalid condition \"{}\"", args.join(" "));
    let first = words.first_mut().ok_or_else(invalid)?;
    let Some(rest) = first.strip_prefix('(') else {
        return Err(invalid());
    };
    *first = rest.to_string();
    if first.is_empty() {
        words.remove(0);
    }
    let last = words.last_mut().ok_or_else(invalid)?;
    let Some(rest) = last.strip_suffix(')') else {
        return Err(invalid());
    };
    *last = rest.to_string();
    if last.is_empty() {
        words.pop();
    }
    match words.as_slice() {
        [v] if is_var(v) => Ok(v.clone()),
        [v, op, value] if is_var(v) => match op.as_str() {
            "=" | "!=" | "~" | "~*" | "!~" | "!~*" => Ok(format!("{v} {op} {}", quote(value))),
            _ => Err(invalid()),
        },
        [flag, ..]
            if matches!(
                flag.as_str(),
                "-f" | "!-f" | "-d" | "!-d" | "-e" | "!-e" | "-x" | "!-x"
            ) =>
        {
            Err("file tests in if are not supported".into())
        }
        _ => Err(invalid()),
    }
}

fn is_var(v: &str) -> bool {
    v.len() > 1 && v.starts_with('$')
}

fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && !v.chars().any(|c| {
            c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '(' | ')' | '{' | '}' | ';')
        });
    if plain {
        return v.to_string();
    }
    let mut out = String::from("\"");
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Replaces `$name` / `${name}` (not `$name_more`) by `value`.
fn replace_var(text: &str, name: &str, value: &str) -> String {
    let braced = format!("${{{name}}}");
    let plain = format!("${name}");
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix(braced.as_str()) {
            out.push_str(value);
            rest = after;
        } else if let Some(after) = tail.strip_prefix(plain.as_str()) {
            if after
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                out.push('$');
                rest = &tail[1..];
            } else {
                out.push_str(value);
                rest = after;
            }
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A server block's directives, sorted out.
struct ServerBody<'d> {
    sc: Scope,
    listens: Vec<Listen>,
    names: Option<L<Vec<String>>>,
    rules: Vec<Rule>,
    locations: Vec<&'d Directive>,
}

/// A server that only returns (an HTTP->HTTPS redirect server, say): a `/` location answering
/// every request is the same and is what every ringgate loader knows.
fn only_return_as_location(rules: &mut Vec<OutRule>, locations: &mut Vec<OutLocation>) {
    let [only] = rules.as_slice() else { return };
    if only.cond.is_some() {
        return;
    }
    locations.push(OutLocation {
        at: only.at.clone(),
        note: Some("the server's return, for every request".into()),
        path: "/".into(),
        match_kind: None,
        proxy_pass: None,
        ret: Some(L::new(only.ret.clone(), &only.at)),
        root: None,
        index: None,
        verify_client: None,
        set_header: Vec::new(),
        upgrade: None,
        rules: Vec::new(),
    });
    rules.clear();
}

/// A location block's directives, sorted out.
struct LocationBody {
    sc: Scope,
    rules: Vec<Rule>,
    /// Its proxy_pass and grpc_pass, at most one of each, in file order.
    passes: Vec<L<Target>>,
    verify: Option<L<String>>,
}

/// A server's name for its listeners: its first plain `server_name`, else `serverN`.
fn base_name(s: &Server) -> String {
    s.names
        .as_ref()
        .and_then(|n| {
            n.v.iter()
                .find(|n| *n != "_" && !n.starts_with('*'))
                .cloned()
        })
        .unwrap_or_else(|| format!("server{}", s.index + 1))
}

/// A listener's name: the server's, with the port when the server listens on several
/// addresses, and a counter when the name is taken.
fn listener_name(base: &str, several: bool, l: &Listen, used: &mut BTreeSet<String>) -> String {
    let name = if several {
        format!("{base}-{}", l.addr.rsplit(':').next().unwrap_or(&l.addr))
    } else {
        base.to_string()
    };
    if used.insert(name.clone()) {
        return name;
    }
    let mut n = 2;
    while !used.insert(format!("{name}-{n}")) {
        n += 1;
    }
    format!("{name}-{n}")
}

/// The server's `[listener.http]` settings, nginx's defaults filled in.
fn out_http(s: &Server) -> OutHttp {
    let sc = &s.scope;
    OutHttp {
        keepalive_timeout: match &sc.keepalive_timeout {
            Some(k) => k.v.as_ref().map(|v| L::new(v.clone(), &k.at)),
            None => Some(L::new("75s".into(), &s.at)),
        },
        keepalive_requests: match (&sc.keepalive_timeout, &sc.keepalive_requests) {
            // keepalive_timeout 0: one request per connection.
            (Some(k), _) if k.v.is_none() => L::new(1, &k.at),
            (_, Some(r)) => r.clone(),
            _ => L::new(1000, &s.at),
        },
        client_max_body_size: sc
            .client_max_body_size
            .clone()
            .unwrap_or_else(|| L::new("1m".into(), &s.at)),
        header_timeout: sc.header_timeout.clone(),
        header_buffers: sc.header_buffers.clone(),
        body_timeout: sc.body_timeout.clone(),
        send_timeout: sc.send_timeout.clone(),
        http2_streams: sc.http2_streams.clone(),
        server_at: s.at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn conditions() {
        assert_eq!(
            condition(&w(&["($ssl_client_verify", "!=", "SUCCESS)"])).unwrap(),
            "$ssl_client_verify != SUCCESS"
        );
        assert_eq!(
            condition(&w(&["(", "$remote_addr", "!=", "$allowed_ip", ")"])).unwrap(),
            "$remote_addr != $allowed_ip"
        );
        assert_eq!(condition(&w(&["($a)"])).unwrap(), "$a");
        assert_eq!(condition(&w(&["($a", "=", "", ")"])).unwrap(), "$a = \"\"");
        assert_eq!(
            condition(&w(&["($a", "~*", "x y\\d", ")"])).unwrap(),
            "$a ~* \"x y\\\\d\""
        );
        assert!(condition(&w(&["$a", "=", "b"])).is_err());
        assert!(condition(&w(&["(a", "=", "b)"])).is_err());
        assert!(condition(&w(&["($a", "<", "b)"])).is_err());
        assert!(condition(&w(&["(-f", "$x)"])).is_err());
        assert!(condition(&w(&["()"])).is_err());
        assert!(condition(&[]).is_err());
    }

    #[test]
    fn listen_forms() {
        assert_eq!(listen_addr("443").unwrap().0, "443");
        assert_eq!(listen_addr("*:80").unwrap().0, "80");
        assert_eq!(listen_addr("127.0.0.1").unwrap().0, "127.0.0.1:80");
        assert_eq!(listen_addr("127.0.0.1:8443").unwrap().0, "127.0.0.1:8443");
        assert_eq!(listen_addr("[::]:443").unwrap().0, "[::]:443");
        assert_eq!(listen_addr("[::1]").unwrap().0, "[::1]:80");
        assert!(listen_addr("localhost:80").unwrap().1.is_some());
        assert!(listen_addr("example.com:80").is_err());
        assert!(listen_addr("unix:/run/x.sock").is_err());
        assert!(listen_addr("1.2.3.4:99999").is_err());
        assert!(listen_addr("[zz]:1").is_err());
    }

    #[test]
    fn location_modifiers() {
        assert_eq!(location_args(&w(&["/"])).unwrap(), (None, "/".into()));
        assert_eq!(
            location_args(&w(&["=", "/x"])).unwrap(),
            (Some("exact"), "/x".into())
        );
        assert_eq!(
            location_args(&w(&["=/x"])).unwrap(),
            (Some("exact"), "/x".into())
        );
        assert_eq!(
            location_args(&w(&["~*", "\\.php$"])).unwrap().0,
            Some("regex_nocase")
        );
        assert_eq!(location_args(&w(&["~\\.php$"])).unwrap().0, Some("regex"));
        assert_eq!(
            location_args(&w(&["^~", "/s"])).unwrap().0,
            Some("prefix_no_regex")
        );
        assert!(location_args(&w(&["@x"])).is_err());
        assert!(location_args(&w(&["!", "/x"])).is_err());
        assert!(location_args(&w(&["="])).is_err());
    }

    #[test]
    fn proxy_host_replacement() {
        assert_eq!(replace_var("$proxy_host:1", "proxy_host", "app"), "app:1");
        assert_eq!(replace_var("${proxy_host}x", "proxy_host", "app"), "appx");
        assert_eq!(
            replace_var("$proxy_hostx $", "proxy_host", "app"),
            "$proxy_hostx $"
        );
    }
}
