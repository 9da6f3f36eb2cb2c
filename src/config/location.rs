//! `[[listener.location]]` resolved: how the path matches and what answers it (`proxy_pass`,
//! `return`, `root` or rules).

use std::path::PathBuf;
use std::sync::Arc;

use toml::Spanned;

use super::raw::RawLocation;
use super::rule::Rule;
use super::upstream::resolve_addr;
use super::words::{LocationVerify, MatchKind};
use super::{span, Resolver};
use crate::tls::client_auth::ClientAuthMode;
use crate::upstream::{Upstream, UpstreamProtocol};
use crate::vars::Template;

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
    /// `Upgrade` tokens (lowercase protocol names, such as `websocket`) a client may switch
    /// to through this location's `proxy_pass`; empty: `Upgrade` is dropped as hop-by-hop.
    pub upgrade: Vec<String>,
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
    /// Index into [`Config::upstreams`](super::Config::upstreams).
    pub upstream: usize,
    /// The URI part, if `proxy_pass` had one: it replaces the matched location prefix.
    pub uri: Option<String>,
    /// `$proxy_host`: `host[:port]` as written, the default `Host` sent upstream.
    pub proxy_host: String,
}

impl Resolver<'_> {
    /// Resolves one `[[listener.location]]` (`key` is `listener[i].location[j]`).
    pub(super) fn location(
        &mut self,
        key: &str,
        l: &RawLocation,
        explicit_upstreams: usize,
    ) -> Option<Location> {
        let path = l.path.get_ref().clone();
        let kind = l
            .match_kind
            .as_ref()
            .and_then(|m| self.word(m, &format!("{key}.match")))
            .unwrap_or(MatchKind::Prefix);
        let regex = self.location_regex(key, l, kind);
        let set_headers = self.set_headers(key, l);
        let verify_client = l
            .verify_client
            .as_ref()
            .and_then(|v| self.word(v, &format!("{key}.verify_client")))
            .map(LocationVerify::mode);
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
        let always_answers = rules.iter().any(|r| r.condition.is_none());
        let action = self.action(key, l, regex.is_some(), always_answers, explicit_upstreams)?;
        let upgrade = self.upgrade_tokens(key, l, &action);
        Some(Location {
            path,
            kind,
            regex,
            action,
            set_headers,
            verify_client,
            allow_roles,
            rules,
            upgrade,
        })
    }

    /// `upgrade`: protocol names a client may switch to, on a `proxy_pass` location only.
    /// `h2c` is refused: an h2c upgrade hands the client an HTTP/2 connection to the upstream
    /// that no request of it passes the access rules on (h2c smuggling).
    fn upgrade_tokens(&mut self, key: &str, l: &RawLocation, action: &Action) -> Vec<String> {
        let Some(list) = &l.upgrade else {
            return Vec::new();
        };
        let k = format!("{key}.upgrade");
        let Action::Proxy(pass) = action else {
            self.errs.push(
                span(list),
                &k,
                "upgrade needs proxy_pass in the same location",
            );
            return Vec::new();
        };
        let h2 = self
            .upstreams
            .get(pass.upstream)
            .is_some_and(|u| u.protocol == UpstreamProtocol::H2);
        if h2 && !list.get_ref().is_empty() {
            self.errs.push(
                span(list),
                &k,
                "an HTTP/2 upstream (protocol = \"h2\", grpc://) carries no Upgrade: tunnel through an HTTP/1.1 upstream",
            );
            return Vec::new();
        }
        let mut tokens = Vec::new();
        for t in list.get_ref() {
            let token = t.to_ascii_lowercase();
            if token.is_empty() || !token.bytes().all(is_token_byte) {
                self.errs.push(
                    span(list),
                    &k,
                    format!(
                        "`{t}` is not a protocol name (expected a token such as \"websocket\")"
                    ),
                );
            } else if token == "h2c" {
                self.errs.push(
                    span(list),
                    &k,
                    "h2c is never tunnelled: an h2c upgrade would give the client an HTTP/2 connection to the upstream behind the access rules (h2c smuggling)",
                );
            } else if !tokens.contains(&token) {
                tokens.push(token);
            }
        }
        tokens
    }

    /// The compiled regex of a regex location; for the others, the check that the path
    /// starts with `/`.
    fn location_regex(
        &mut self,
        key: &str,
        l: &RawLocation,
        kind: MatchKind,
    ) -> Option<regex::bytes::Regex> {
        let path = l.path.get_ref();
        match kind {
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
        }
    }

    /// `set_header`: each name checked and each value compiled.
    fn set_headers(&mut self, key: &str, l: &RawLocation) -> Vec<(String, Template)> {
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
                    "{key}.set_header.{name}: ignored (Upgrade is hop-by-hop); to tunnel WebSocket write {key}.upgrade = [\"websocket\"]"
                );
            }
            if let Some(t) = self.template(value, &format!("{key}.set_header.{name}")) {
                set_headers.push((name.clone(), t));
            }
        }
        set_headers
    }

    /// What answers the location: at most one of `proxy_pass`, `return` and `root`, or its
    /// rules when one of them always answers. None when there is none or more than one.
    fn action(
        &mut self,
        key: &str,
        l: &RawLocation,
        is_regex: bool,
        rules_always_answer: bool,
        explicit_upstreams: usize,
    ) -> Option<Action> {
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
        if let Some(p) = &l.proxy_pass {
            let pp = self.proxy_pass(key, p, explicit_upstreams)?;
            if is_regex && pp.uri.is_some() {
                self.errs.push(
                    span(p),
                    &format!("{key}.proxy_pass"),
                    "proxy_pass cannot have a URI part in a regex location (as in nginx)",
                );
            }
            Some(Action::Proxy(pp))
        } else if let Some(r) = &l.return_ {
            let (status, body) = self.return_value(r, &format!("{key}.return"));
            Some(Action::Return { status, body })
        } else if let Some(r) = &l.root {
            Some(Action::Static(self.static_root(key, r, l)))
        } else if rules_always_answer {
            Some(Action::Rules)
        } else {
            self.errs.push(
                span(&l.path),
                key,
                "a location needs proxy_pass, return, root, or a rule without `if` that always answers",
            );
            None
        }
    }

    /// `root` and `index`.
    fn static_root(&mut self, key: &str, r: &Spanned<String>, l: &RawLocation) -> StaticRoot {
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
        StaticRoot { root, index }
    }

    /// Resolves `proxy_pass`: a declared upstream by name, or an implicit one for
    /// `http://host:port`, made on first use.
    pub(super) fn proxy_pass(
        &mut self,
        key: &str,
        p: &Spanned<String>,
        explicit_upstreams: usize,
    ) -> Option<ProxyPass> {
        let text = p.get_ref();
        let k = format!("{key}.proxy_pass");
        let Some((scheme, rest)) = [
            ("http://", Scheme::Http),
            ("https://", Scheme::Https),
            ("grpc://", Scheme::Grpc),
            ("grpcs://", Scheme::Grpcs),
        ]
        .into_iter()
        .find_map(|(prefix, scheme)| text.strip_prefix(prefix).map(|r| (scheme, r))) else {
            self.errs.push(span(p), &k, format!("`{text}` is not a proxy_pass URL; expected http://, https://, grpc:// or grpcs://upstream-or-host[:port][/uri]"));
            return None;
        };
        let (https, h2) = (scheme.is_tls(), scheme.is_grpc());
        let (authority, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        };
        if authority.is_empty() {
            self.errs
                .push(span(p), &k, "proxy_pass names no upstream or host");
            return None;
        }
        let tls_scheme = scheme.tls_name();
        if let Some(idx) = self.upstreams[..explicit_upstreams]
            .iter()
            .position(|u| u.name == authority)
        {
            return self
                .named_upstream_fits(p, &k, idx, scheme)
                .then(|| ProxyPass {
                    upstream: idx,
                    uri,
                    proxy_host: authority.to_string(),
                });
        }
        if https {
            self.errs.push(span(p), &k, format!(
                "{tls_scheme}://{authority} verifies the upstream's certificate by default: declare [[upstream]] name = \"{authority}\" with its servers and [upstream.tls] trusted_certificate (or verify = false)"
            ));
            return None;
        }
        let protocol = if h2 {
            UpstreamProtocol::H2
        } else {
            UpstreamProtocol::Http1
        };
        // An implicit upstream, as nginx makes for `proxy_pass http://host:port` (and
        // `grpc_pass grpc://host:port`): one per address and protocol.
        if let Some(idx) = self.upstreams[explicit_upstreams..]
            .iter()
            .position(|u| u.name == authority && u.protocol == protocol)
        {
            return Some(ProxyPass {
                upstream: explicit_upstreams + idx,
                uri,
                proxy_host: proxy_host_of(authority),
            });
        }
        match resolve_addr(authority, 80) {
            Ok(servers) => {
                let mut up = Upstream::with_defaults(authority.to_string(), servers);
                up.protocol = protocol;
                self.upstreams.push(up);
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

    /// Whether the declared upstream `idx` can take a `proxy_pass` of `scheme`: TLS exactly
    /// when it has `[upstream.tls]`, and HTTP/2 for gRPC.
    fn named_upstream_fits(
        &mut self,
        p: &Spanned<String>,
        k: &str,
        idx: usize,
        scheme: Scheme,
    ) -> bool {
        let authority = self
            .upstreams
            .get(idx)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        let has_section = self.tls_sections.get(idx).copied().unwrap_or(false);
        let tls_scheme = scheme.tls_name();
        if scheme.is_tls() && !has_section {
            self.errs.push(span(p), k, format!(
                "{tls_scheme}://{authority} verifies the upstream's certificate by default: add [upstream.tls] to upstream `{authority}` with trusted_certificate (the CA bundle to verify it with), or verify = false"
            ));
            return false;
        }
        if !scheme.is_tls() && has_section {
            self.errs.push(
                span(p),
                k,
                format!(
                    "upstream `{authority}` has [upstream.tls]: write {tls_scheme}://{authority}"
                ),
            );
            return false;
        }
        let speaks_h2 = self
            .upstreams
            .get(idx)
            .is_some_and(|u| u.protocol == UpstreamProtocol::H2);
        if scheme.is_grpc() && !speaks_h2 {
            self.errs.push(
                span(p),
                k,
                format!("gRPC needs HTTP/2: add protocol = \"h2\" to upstream `{authority}`"),
            );
            return false;
        }
        true
    }
}

/// The scheme of a `proxy_pass` URL.
#[derive(Debug, Clone, Copy)]
enum Scheme {
    Http,
    Https,
    Grpc,
    Grpcs,
}

impl Scheme {
    fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Grpcs)
    }

    fn is_grpc(self) -> bool {
        matches!(self, Scheme::Grpc | Scheme::Grpcs)
    }

    /// The TLS scheme of the same family, for messages.
    fn tls_name(self) -> &'static str {
        if self.is_grpc() {
            "grpcs"
        } else {
            "https"
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

pub(super) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
