//! Resolving the access-related sections: `[identity]` (roles, bindings), `[[map]]`, rules
//! (`if`/`return`), identity headers, `[static]` types, and grouping listeners that share an
//! address into virtual servers; `[log_format]` and access logs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use toml::Spanned;

use super::raw::{
    RawAccessLog, RawIdentity, RawListener, RawMap, RawMatcher, RawReturn, RawRoleRule, RawRule,
    RawStatic,
};
use super::words::{Keyword, LogOff, Word};
use super::{
    span, AccessLog, IdentityField, IdentityHeaders, Resolver, Rule, Server, Socket, StaticTypes,
};
use crate::config::vhost::VirtualHosts;
use crate::policy::{Binding, BindingKey, Cidr, Field, IdentityPolicy, Matcher, RoleRule};
use crate::vars::condition::Condition;
use crate::vars::log_format::LogFormat;
use crate::vars::map::VarMap;
use crate::vars::{Names, Template, Var};

impl Resolver<'_> {
    fn names(&self) -> Names<'_> {
        Names {
            maps: &self.map_names,
        }
    }

    /// Compiles a template with every variable (maps included) known.
    pub(super) fn template(&mut self, value: &Spanned<String>, key: &str) -> Option<Template> {
        match Template::compile_with(value.get_ref(), self.names()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.errs.push(span(value), key, e.to_string());
                None
            }
        }
    }

    fn template_at(
        &mut self,
        text: &str,
        at: Option<std::ops::Range<usize>>,
        key: &str,
    ) -> Option<Template> {
        match Template::compile_with(text, self.names()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.errs.push(at, key, e.to_string());
                None
            }
        }
    }

    /// `return = 403` or `return = { status = 301, body = "..." }`.
    pub(super) fn return_value(
        &mut self,
        r: &Spanned<RawReturn>,
        key: &str,
    ) -> (u16, Option<Template>) {
        let (status, body) = match r.get_ref() {
            RawReturn::Status(s) => (*s, None),
            RawReturn::Full { status, body } => (*status, body.clone()),
        };
        if !(100..=599).contains(&status) {
            self.errs
                .push(span(r), key, format!("{status} is not an HTTP status"));
        }
        let body = body.and_then(|b| self.template_at(&b, span(r), key));
        if matches!(status, 301 | 302 | 303 | 307 | 308) && body.is_none() {
            self.errs.push(
                span(r),
                key,
                format!("a {status} redirect needs a body: the URL to redirect to"),
            );
        }
        (status, body)
    }

    /// `[[...rule]]`: conditions compiled, returns checked.
    pub(super) fn rules(&mut self, key: &str, raw: &[RawRule]) -> Vec<Rule> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let condition = match &r.if_ {
                None => None,
                Some(c) => match Condition::parse(c.get_ref(), self.names()) {
                    Ok(c) => Some(c),
                    Err(m) => {
                        self.errs.push(span(c), &format!("{k}.if"), m);
                        continue;
                    }
                },
            };
            let (status, body) = self.return_value(&r.return_, &format!("{k}.return"));
            out.push(Rule {
                condition,
                status,
                body,
            });
        }
        out
    }

    /// `[[map]]`: each map's source, default and entries.
    pub(super) fn maps(&mut self, raw: &[RawMap]) -> Vec<VarMap> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, m) in raw.iter().enumerate() {
            let key = format!("map[{i}]");
            let name = m.variable.get_ref().trim_start_matches('$').to_string();
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                self.errs.push(
                    span(&m.variable),
                    &format!("{key}.variable"),
                    format!("`{name}` is not a variable name (letters, digits, _)"),
                );
            } else if Var::from_name(&name).is_some() {
                self.errs.push(
                    span(&m.variable),
                    &format!("{key}.variable"),
                    format!("`${name}` is a built-in variable; a map cannot redefine it"),
                );
            } else if self.map_names[..i]
                .iter()
                .any(|n| n == m.variable.get_ref())
            {
                self.errs.push(
                    span(&m.variable),
                    &format!("{key}.variable"),
                    format!("`${name}` is defined by two maps"),
                );
            }
            let source = self.template(&m.source, &format!("{key}.source"));
            let default = match &m.default {
                Some(d) => self.template(d, &format!("{key}.default")),
                None => Some(Template::default()),
            };
            let (Some(source), Some(default)) = (source, default) else {
                continue;
            };
            let mut map = VarMap::new(name, source, default);
            for (j, e) in m.entries.iter().enumerate() {
                let ek = format!("{key}.entries[{j}]");
                let raw = e.get_ref();
                let Some(value) = self.template_at(&raw.value, span(e), &ek) else {
                    continue;
                };
                match (&raw.exact, &raw.regex, &raw.regex_nocase) {
                    (Some(x), None, None) => {
                        if !map.add_exact(x, value) {
                            self.errs.push(
                                span(e),
                                &ek,
                                format!("`{x}` is listed twice (nginx refuses duplicate map keys)"),
                            );
                        }
                    }
                    (None, Some(re), None) | (None, None, Some(re)) => {
                        let nocase = raw.regex_nocase.is_some();
                        if let Err(err) = map.add_regex(re, nocase, value) {
                            self.errs
                                .push(span(e), &ek, format!("not a valid regex: {err}"));
                        }
                    }
                    _ => self.errs.push(
                        span(e),
                        &ek,
                        "an entry has exactly one of exact, regex or regex_nocase",
                    ),
                }
            }
            out.push(map);
        }
        out
    }

    /// `[identity]`: role rules and bindings.
    pub(super) fn identity(&mut self, raw: &RawIdentity) -> IdentityPolicy {
        let mut policy = IdentityPolicy {
            default_role: raw
                .default_role
                .as_ref()
                .map(|r| Arc::from(r.get_ref().as_str())),
            ..IdentityPolicy::default()
        };
        for (i, r) in raw.roles.iter().enumerate() {
            let key = format!("identity.roles[{i}]");
            match role_rule(r.get_ref()) {
                Ok(rule) => policy.roles.push(rule),
                Err(m) => self.errs.push(span(r), &key, m),
            }
        }
        for (i, b) in raw.bindings.iter().enumerate() {
            let key = format!("identity.bindings[{i}]");
            let raw_b = b.get_ref();
            let who = match (&raw_b.cn, &raw_b.fingerprint, &raw_b.serial) {
                (Some(cn), None, None) => Ok(BindingKey::Cn(cn.clone())),
                (None, Some(f), None) => BindingKey::fingerprint(f),
                (None, None, Some(s)) => BindingKey::serial(s),
                _ => Err(
                    "a binding names its certificate by exactly one of cn, fingerprint or serial"
                        .to_string(),
                ),
            };
            let mut from = Vec::new();
            for a in &raw_b.from {
                match Cidr::parse(a) {
                    Ok(c) => from.push(c),
                    Err(m) => self.errs.push(span(b), &format!("{key}.from"), m),
                }
            }
            if raw_b.from.is_empty() {
                self.errs.push(
                    span(b),
                    &format!("{key}.from"),
                    "list the addresses or CIDR blocks the certificate may come from",
                );
            }
            match who {
                Ok(key) => policy.bindings.push(Binding { key, from }),
                Err(m) => self.errs.push(span(b), &key, m),
            }
        }
        policy
    }

    /// `[listener.identity_headers]`.
    pub(super) fn identity_headers(
        &mut self,
        key: &str,
        raw: &std::collections::BTreeMap<Word<IdentityField>, Spanned<String>>,
    ) -> IdentityHeaders {
        let mut out = IdentityHeaders::default();
        for (field, name) in raw {
            let f = match field {
                Word::Known(f) => f,
                Word::Unknown(text) => {
                    self.errs.push(
                        span(name),
                        &format!("{key}.identity_headers.{text}"),
                        IdentityField::refused(text),
                    );
                    continue;
                }
            };
            let k = format!("{key}.identity_headers.{}", f.name());
            let n = name.get_ref();
            if n.is_empty() || !n.bytes().all(super::location::is_token_byte) {
                self.errs
                    .push(span(name), &k, format!("`{n}` is not a valid header name"));
                continue;
            }
            out.fields.push((*f, n.clone()));
            out.strip.push(n.as_bytes().to_ascii_lowercase());
        }
        // Stable order: the order of IdentityField::ALL.
        out.fields.sort_by_key(|(f, _)| {
            IdentityField::ALL
                .iter()
                .position(|(_, x)| x == f)
                .unwrap_or(usize::MAX)
        });
        out
    }

    /// `[log_format]` plus the built-in `combined`, `default` and `json`.
    pub(super) fn log_formats(
        &mut self,
        raw: &std::collections::BTreeMap<String, Spanned<String>>,
    ) {
        for (name, text) in [
            ("combined", crate::vars::log_format::COMBINED),
            ("default", crate::vars::log_format::DEFAULT),
        ] {
            if let Ok(t) = Template::compile(text) {
                self.log_formats
                    .insert(name.to_string(), Arc::new(LogFormat::Template(t)));
            }
        }
        self.log_formats
            .insert("json".to_string(), Arc::new(LogFormat::Json));
        for (name, text) in raw {
            let key = format!("log_format.{name}");
            if matches!(name.as_str(), "combined" | "default" | "json") {
                self.errs.push(
                    span(text),
                    &key,
                    format!("`{name}` is built in; give the format another name"),
                );
                continue;
            }
            if let Some(t) = self.template(text, &key) {
                self.log_formats
                    .insert(name.clone(), Arc::new(LogFormat::Template(t)));
            }
        }
    }

    /// `access_log = "off"` or `{ path, format }`.
    pub(super) fn access_log(
        &mut self,
        key: &str,
        raw: &Spanned<RawAccessLog>,
    ) -> Option<AccessLog> {
        match raw.get_ref() {
            RawAccessLog::Off(Word::Known(LogOff)) => None,
            RawAccessLog::Off(Word::Unknown(other)) => {
                self.errs.push(span(raw), key, LogOff::refused(other));
                None
            }
            RawAccessLog::To { path, format } => {
                let name = format.as_deref().unwrap_or("default");
                let Some(format) = self.log_formats.get(name).cloned() else {
                    let mut known: Vec<&str> =
                        self.log_formats.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    self.errs.push(
                        span(raw),
                        &format!("{key}.format"),
                        format!("no log format `{name}`; known: {}", known.join(", ")),
                    );
                    return None;
                };
                let path = self.path(path);
                if let Some(dir) = path.parent() {
                    if !dir.as_os_str().is_empty() && !dir.is_dir() {
                        self.errs.push(
                            span(raw),
                            &format!("{key}.path"),
                            format!("{} is not a directory", dir.display()),
                        );
                        return None;
                    }
                }
                if !self.log_files.contains(&path) {
                    self.log_files.push(path.clone());
                }
                Some(AccessLog {
                    path: Arc::from(path.as_path()),
                    format,
                })
            }
        }
    }

    /// `[static]`: nginx's `types` and `default_type`, or a built-in table.
    pub(super) fn static_types(&mut self, raw: &RawStatic) -> StaticTypes {
        let mut types: HashMap<String, String> = match &raw.types {
            Some(t) => t
                .get_ref()
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            None => BUILTIN_TYPES
                .iter()
                .map(|(e, t)| ((*e).to_string(), (*t).to_string()))
                .collect(),
        };
        types.retain(|k, _| !k.is_empty());
        StaticTypes {
            types,
            default_type: raw.default_type.as_ref().map_or_else(
                || "application/octet-stream".to_string(),
                |d| d.get_ref().clone(),
            ),
        }
    }

    /// Groups listeners by address into sockets (port 0 is never shared: each asks for its
    /// own free port), checks they agree on TLS, and builds each socket's name table.
    pub(super) fn sockets(&mut self, raw: &[RawListener], listeners: &mut [Server]) -> Vec<Socket> {
        let mut sockets: Vec<Socket> = Vec::new();
        let mut by_addr: HashMap<SocketAddr, usize> = HashMap::new();
        let mut explicit_default = std::collections::HashSet::new();
        // Listeners that failed to resolve are missing (and loading fails anyway); spans are
        // only looked up when the two lists line up.
        let aligned = raw.len() == listeners.len();
        for (id, l) in listeners.iter_mut().enumerate() {
            let at = if aligned {
                raw.get(id).map(|r| r.listen.span())
            } else {
                None
            };
            let shared = if l.addr.port() == 0 {
                None
            } else {
                by_addr.get(&l.addr).copied()
            };
            let si = match shared {
                Some(si) => {
                    let sock = &mut sockets[si];
                    if sock.tls != l.tls.is_some() {
                        self.errs.push(
                            at.clone(),
                            &format!("listener `{}`.listen", l.name),
                            format!(
                                "{} is shared with a {} listener; servers on one address are all TLS or all plain",
                                l.addr,
                                if sock.tls { "TLS" } else { "plain" }
                            ),
                        );
                    }
                    si
                }
                None => {
                    sockets.push(Socket {
                        addr: l.addr,
                        tls: l.tls.is_some(),
                        hosts: VirtualHosts::new(id),
                    });
                    by_addr.insert(l.addr, sockets.len() - 1);
                    sockets.len() - 1
                }
            };
            l.socket = si;
            let sock = &mut sockets[si];
            if let Err(e) = sock.hosts.add(id, &l.server_names) {
                self.errs.push(
                    at.clone(),
                    &format!("listener `{}`.server_names", l.name),
                    e.to_string(),
                );
            }
            if l.default_server {
                if !explicit_default.insert(si) {
                    self.errs.push(
                        at,
                        &format!("listener `{}`.default_server", l.name),
                        format!("{} already has a default server", l.addr),
                    );
                } else {
                    sock.hosts.default = id;
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for l in listeners.iter() {
            if !names.insert(l.name.clone()) {
                self.errs.push(
                    None,
                    &format!("listener `{}`.name", l.name),
                    "two listeners have this name; names tell them apart in logs and the readiness line",
                );
            }
        }
        sockets
    }
}

fn role_rule(r: &RawRoleRule) -> Result<RoleRule, String> {
    let fields: Vec<(Field, &RawMatcher)> = [
        (Field::Cn, &r.cn),
        (Field::Ou, &r.ou),
        (Field::O, &r.o),
        (Field::Dns, &r.dns),
        (Field::Uri, &r.uri),
        (Field::Email, &r.email),
        (Field::SpiffeId, &r.spiffe_id),
    ]
    .into_iter()
    .filter_map(|(f, m)| m.as_ref().map(|m| (f, m)))
    .collect();
    let [(field, m)] = fields.as_slice() else {
        return Err(format!(
            "role `{}` needs exactly one field to match (cn, ou, o, dns, uri, email or spiffe_id), not {}",
            r.role,
            fields.len()
        ));
    };
    if r.role.is_empty() {
        return Err("a role name cannot be empty".into());
    }
    let matcher = match m {
        RawMatcher::Exact(v) => Matcher::Exact(v.clone()),
        RawMatcher::Prefix { prefix } => Matcher::Prefix(prefix.clone()),
        RawMatcher::Regex { regex } => {
            Matcher::regex(regex).map_err(|e| format!("{}: not a valid regex: {e}", field.key()))?
        }
    };
    Ok(RoleRule {
        role: Arc::from(r.role.as_str()),
        field: *field,
        matcher,
    })
}

/// Content types when `[static]` gives none (the common part of nginx's mime.types).
const BUILTIN_TYPES: &[(&str, &str)] = &[
    ("html", "text/html"),
    ("htm", "text/html"),
    ("shtml", "text/html"),
    ("css", "text/css"),
    ("xml", "text/xml"),
    ("txt", "text/plain"),
    ("js", "application/javascript"),
    ("mjs", "application/javascript"),
    ("json", "application/json"),
    ("gif", "image/gif"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("png", "image/png"),
    ("svg", "image/svg+xml"),
    ("svgz", "image/svg+xml"),
    ("ico", "image/x-icon"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("wasm", "application/wasm"),
    ("pem", "application/x-x509-ca-cert"),
    ("crt", "application/x-x509-ca-cert"),
    ("der", "application/x-x509-ca-cert"),
    ("mp4", "video/mp4"),
    ("mp3", "audio/mpeg"),
];
