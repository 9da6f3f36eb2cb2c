//! `[[upstream]]` resolved: servers looked up once, pool and failure settings, and TLS.

use std::net::{SocketAddr, ToSocketAddrs};

use toml::Spanned;

use super::raw::RawUpstream;
use super::{span, Resolver};
use crate::upstream::Upstream;

impl Resolver<'_> {
    pub(super) fn upstream(&mut self, i: usize, u: &RawUpstream) {
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
        if let Some(p) = &u.protocol {
            up.protocol = self.word(p, &format!("{key}.protocol")).unwrap_or_default();
        }
        if let Some(t) = &u.tls {
            up.tls = self.upstream_tls(&key, &up.name, t);
        }
        self.tls_sections.push(u.tls.is_some());
        self.upstreams.push(up);
    }

    /// Resolves a list of `host:port` servers (port 80 by default), reporting each that fails.
    pub(super) fn server_addrs(
        &mut self,
        list: &Spanned<Vec<String>>,
        key: &str,
    ) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for s in list.get_ref() {
            match resolve_addr(s, 80) {
                Ok(addrs) => out.extend(addrs),
                Err(m) => self.errs.push(span(list), key, m),
            }
        }
        out
    }
}

/// Resolves `host[:port]` once, at load time (workers never resolve names).
pub(super) fn resolve_addr(text: &str, default_port: u16) -> Result<Vec<SocketAddr>, String> {
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
