//! Writes the translated model as TOML text, one key per line, each line that carries a value
//! ending with `# file:line` of its nginx directive and recorded in the source map.

use std::path::{Path, PathBuf};

use super::model::*;
use crate::tools::nginx::{Origin, SourceMap};

/// A TOML basic string with everything escaped that TOML requires.
pub fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, quoted otherwise.
pub fn key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        s.to_string()
    } else {
        q(s)
    }
}

fn arr(items: &[String]) -> String {
    let v: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", v.join(", "))
}

/// Text safe inside a TOML comment: control characters (a file name may hold a newline)
/// become `?`.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

struct Writer {
    text: String,
    map: SourceMap,
    base: PathBuf,
}

impl Writer {
    fn where_(&self, o: &Origin) -> String {
        let f = o.file.strip_prefix(&self.base).unwrap_or(&o.file);
        clean(&format!("{}:{}", f.display(), o.line))
    }

    fn raw(&mut self, line: &str, at: Option<&Origin>) {
        self.text.push_str(line);
        self.text.push('\n');
        self.map.push(at.cloned());
    }

    fn blank(&mut self) {
        self.raw("", None);
    }

    /// `# from nginx.conf:LINE (directive)` then the table header.
    fn header(&mut self, header: &str, at: &Origin, note: Option<&str>) {
        let mut c = format!("# from {} ({}", self.where_(at), clean(&at.directive));
        if let Some(n) = note {
            c.push_str(": ");
            c.push_str(&clean(n));
        }
        c.push(')');
        self.raw(&c, Some(at));
        self.raw(header, Some(at));
    }

    fn kv(&mut self, k: &str, value: String, at: &Origin) {
        let line = format!("{} = {value}  # {}", key(k), self.where_(at));
        self.raw(&line, Some(at));
    }

    fn s(&mut self, k: &str, v: &Option<L<String>>) {
        if let Some(v) = v {
            self.kv(k, q(&v.v), &v.at);
        }
    }
}

/// Renders `out`; file names in comments are relative to `main`'s directory.
pub fn render(out: &Out, main: &Path) -> (String, SourceMap) {
    let mut w = Writer {
        text: String::new(),
        map: SourceMap::default(),
        base: main.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    w.raw(
        &format!(
            "# ringgate configuration translated from {} by `ringgate import-nginx`.",
            clean(&main.display().to_string())
        ),
        None,
    );
    w.raw(
        "# Each value ends with the nginx file:line it came from.",
        None,
    );
    runtime(&mut w, &out.runtime);
    log_formats(&mut w, out);
    static_files(&mut w, out);
    for m in &out.maps {
        map(&mut w, m);
    }
    for u in &out.upstreams {
        upstream(&mut w, u);
    }
    for l in &out.listeners {
        listener(&mut w, l);
    }
    (w.text, w.map)
}

/// `[log_format]`: the formats some access_log uses.
fn log_formats(w: &mut Writer, out: &Out) {
    if !out.log_formats.is_empty() {
        w.blank();
        w.raw("[log_format]", None);
        for f in &out.log_formats {
            w.kv(&f.v.0, q(&f.v.1), &f.at);
        }
    }
}

/// `[static]`: the MIME types of file-serving locations.
fn static_files(w: &mut Writer, out: &Out) {
    if let Some(st) = &out.static_files {
        w.blank();
        w.raw("[static]", Some(&st.default_type.at));
        w.kv("default_type", q(&st.default_type.v), &st.default_type.at);
        if let Some(types) = &st.types {
            w.raw("[static.types]", types.first().map(|t| &t.at));
            for t in types {
                w.kv(&t.v.0, q(&t.v.1), &t.at);
            }
        }
    }
}

/// One `[[map]]`, an entry per line.
fn map(w: &mut Writer, m: &OutMap) {
    w.blank();
    w.header("[[map]]", &m.at, None);
    w.kv("source", q(&m.source), &m.at);
    w.kv("variable", q(&m.variable), &m.at);
    w.kv("default", q(&m.default.v), &m.default.at);
    w.raw("entries = [", Some(&m.at));
    for e in &m.entries {
        let (kind, k, v) = &e.v;
        let kind = match kind {
            MapMatch::Exact => "exact",
            MapMatch::Regex => "regex",
            MapMatch::RegexNocase => "regex_nocase",
        };
        let line = format!(
            "  {{ {kind} = {}, value = {} }},  # {}",
            q(k),
            q(v),
            w.where_(&e.at)
        );
        w.raw(&line, Some(&e.at));
    }
    w.raw("]", Some(&m.at));
}

fn runtime(w: &mut Writer, r: &OutRuntime) {
    if r.workers.is_none()
        && r.shutdown_timeout.is_none()
        && r.error_log.is_none()
        && r.log_level.is_none()
        && r.max_connections_per_worker.is_none()
    {
        return;
    }
    w.blank();
    w.raw("[runtime]", None);
    if let Some(n) = &r.workers {
        w.kv("workers", n.v.to_string(), &n.at);
    }
    w.s("shutdown_timeout", &r.shutdown_timeout);
    w.s("error_log", &r.error_log);
    w.s("log_level", &r.log_level);
    if let Some(n) = &r.max_connections_per_worker {
        w.kv("max_connections_per_worker", n.v.to_string(), &n.at);
    }
}

fn upstream(w: &mut Writer, u: &OutUpstream) {
    w.blank();
    w.header("[[upstream]]", &u.at, Some(&u.note));
    w.kv("name", q(&u.name), &u.at);
    w.s("protocol", &u.protocol);
    w.raw("servers = [", Some(&u.at));
    for s in &u.servers {
        let line = format!("  {},  # {}", q(&s.v), w.where_(&s.at));
        w.raw(&line, Some(&s.at));
    }
    w.raw("]", Some(&u.at));
    if !u.backup_servers.is_empty() {
        w.raw("backup_servers = [", Some(&u.at));
        for s in &u.backup_servers {
            let line = format!("  {},  # {}", q(&s.v), w.where_(&s.at));
            w.raw(&line, Some(&s.at));
        }
        w.raw("]", Some(&u.at));
    }
    if let Some(m) = &u.max_fails {
        w.kv("max_fails", m.v.to_string(), &m.at);
    }
    w.s("fail_timeout", &u.fail_timeout);
    w.kv("keepalive", u.keepalive.v.to_string(), &u.keepalive.at);
    w.s("keepalive_timeout", &u.keepalive_timeout);
    w.s("connect_timeout", &u.connect_timeout);
    w.s("read_timeout", &u.read_timeout);
    w.s("send_timeout", &u.send_timeout);
    if let Some(t) = &u.tls {
        w.raw("[upstream.tls]", Some(&t.verify.at));
        w.kv("verify", t.verify.v.to_string(), &t.verify.at);
        w.s("trusted_certificate", &t.trusted_certificate);
        if let Some(d) = &t.verify_depth {
            w.kv("verify_depth", d.v.to_string(), &d.at);
        }
        w.kv("name", q(&t.name.v), &t.name.at);
        w.kv(
            "server_name",
            t.server_name.v.to_string(),
            &t.server_name.at,
        );
        w.s("certificate", &t.certificate);
        w.s("key", &t.key);
        if let Some(p) = &t.protocols {
            w.kv("protocols", arr(&p.v), &p.at);
        }
        if let Some(r) = &t.session_reuse {
            w.kv("session_reuse", r.v.to_string(), &r.at);
        }
    }
}

fn ret_value(r: &OutReturn) -> String {
    match &r.body {
        None => r.status.to_string(),
        Some(b) => format!("{{ status = {}, body = {} }}", r.status, q(b)),
    }
}

fn rules(w: &mut Writer, header: &str, rules: &[OutRule]) {
    for r in rules {
        w.header(header, &r.at, None);
        if let Some(c) = &r.cond {
            w.kv("if", q(c), &r.at);
        }
        w.kv("return", ret_value(&r.ret), &r.at);
    }
}

fn listener(w: &mut Writer, l: &OutListener) {
    w.blank();
    w.header("[[listener]]", &l.at, None);
    w.kv("name", q(&l.name), &l.at);
    w.kv("listen", q(&l.listen.v), &l.listen.at);
    if let Some(d) = &l.default_server {
        w.kv("default_server", d.v.to_string(), &d.at);
    }
    if let Some(n) = &l.server_names {
        w.kv("server_names", arr(&n.v), &n.at);
    }
    if let Some(a) = &l.access_log {
        let v = match &a.v {
            AccessLog::Off => q("off"),
            AccessLog::File { path, format } => {
                format!("{{ path = {}, format = {} }}", q(path), q(format))
            }
        };
        w.kv("access_log", v, &a.at);
    }
    let h2 = &l.http2;
    if l.tls.is_some() {
        w.kv("http2", h2.v.to_string(), &h2.at);
    } else if h2.v {
        w.kv("h2c", "true".into(), &h2.at);
    }
    if let Some(t) = &l.tls {
        tls(w, t, &l.at);
    }
    let h = &l.http;
    w.raw("[listener.http]", Some(&h.server_at));
    w.s("keepalive_timeout", &h.keepalive_timeout);
    w.kv(
        "keepalive_requests",
        h.keepalive_requests.v.to_string(),
        &h.keepalive_requests.at,
    );
    w.kv(
        "client_max_body_size",
        q(&h.client_max_body_size.v),
        &h.client_max_body_size.at,
    );
    w.s("header_timeout", &h.header_timeout);
    if let Some(b) = &h.header_buffers {
        w.kv("max_header_bytes", b.v.0.to_string(), &b.at);
        w.kv("max_header_line_bytes", q(&b.v.1), &b.at);
    }
    w.s("body_timeout", &h.body_timeout);
    w.s("send_timeout", &h.send_timeout);
    if let Some(n) = &h.http2_streams {
        w.kv("http2_max_concurrent_streams", n.v.to_string(), &n.at);
    }
    // nginx adds no X-Forwarded-* headers unless proxy_set_header says so.
    w.kv("x_forwarded_for", "false".into(), &h.server_at);
    w.kv("x_forwarded_proto", "false".into(), &h.server_at);
    rules(w, "[[listener.rule]]", &l.rules);
    for loc in &l.locations {
        location(w, loc);
    }
}

fn tls(w: &mut Writer, t: &OutTls, server: &Origin) {
    w.raw("[listener.tls]", Some(server));
    w.raw("certificates = [", t.certificates.first().map(|c| &c.0.at));
    for (c, k) in &t.certificates {
        let staple = t
            .staple
            .as_ref()
            .map(|s| format!(", ocsp = {}", q(&s.v)))
            .unwrap_or_default();
        let line = format!(
            "  {{ cert = {}, key = {}{staple} }},  # {}, {}",
            q(&c.v),
            q(&k.v),
            w.where_(&c.at),
            w.where_(&k.at)
        );
        w.raw(&line, Some(&c.at));
        w.map.field("key", k.at.clone());
    }
    w.raw("]", t.certificates.first().map(|c| &c.0.at));
    if let Some(p) = &t.protocols {
        w.kv("protocols", arr(&p.v), &p.at);
    }
    w.s("client_certificate", &t.client_certificate);
    w.s("trusted_certificate", &t.trusted_certificate);
    w.kv("verify_client", q(&t.verify_client.v), &t.verify_client.at);
    w.kv(
        "verify_depth",
        t.verify_depth.v.to_string(),
        &t.verify_depth.at,
    );
    w.s("verify_failure", &t.verify_failure);
    if let Some(s) = &t.session_tickets {
        w.kv("session_tickets", s.v.to_string(), &s.at);
    }
    w.kv(
        "session_cache",
        t.session_cache.v.to_string(),
        &t.session_cache.at,
    );
    w.s("session_timeout", &t.session_timeout);
    if let Some(first) = t.session_ticket_key.first() {
        let v: Vec<String> = t.session_ticket_key.iter().map(|k| k.v.clone()).collect();
        w.kv("session_ticket_key", arr(&v), &first.at);
    }
    if let Some(c) = &t.crl {
        w.kv("crl", arr(std::slice::from_ref(&c.v)), &c.at);
    }
    w.s("ocsp_client", &t.ocsp_client);
    w.s("ocsp_responder", &t.ocsp_responder);
    if let Some(c) = &t.ocsp_cache {
        w.kv("ocsp_cache", c.v.to_string(), &c.at);
    }
}

fn location(w: &mut Writer, l: &OutLocation) {
    w.header("[[listener.location]]", &l.at, l.note.as_deref());
    w.kv("path", q(&l.path), &l.at);
    if let Some(m) = l.match_kind {
        w.kv("match", q(m), &l.at);
    }
    if let Some(v) = &l.verify_client {
        w.kv("verify_client", q(&v.v), &v.at);
    }
    w.s("proxy_pass", &l.proxy_pass);
    if let Some(u) = &l.upgrade {
        w.kv("upgrade", arr(&u.v), &u.at);
    }
    if let Some(r) = &l.ret {
        w.kv("return", ret_value(&r.v), &r.at);
    }
    w.s("root", &l.root);
    if let Some(i) = &l.index {
        w.kv("index", arr(&i.v), &i.at);
    }
    if !l.set_header.is_empty() {
        w.raw("[listener.location.set_header]", Some(&l.set_header[0].at));
        for h in &l.set_header {
            w.kv(&h.v.0, q(&h.v.1), &h.at);
        }
    }
    rules(w, "[[listener.location.rule]]", &l.rules);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_keys_are_valid_toml() {
        let s = "a\"b\\c\n\u{1}é";
        let doc = format!("{} = {}", key("x.y"), q(s));
        let v: toml::Table = toml::from_str(&doc).unwrap();
        assert_eq!(v["x.y"].as_str(), Some(s));
        assert_eq!(key("X-SSL-Client-DN"), "X-SSL-Client-DN");
        assert_eq!(key(""), "\"\"");
    }
}
