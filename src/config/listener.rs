//! `[[listener]]` resolved: the address, client-side HTTP limits, server-level rules, TLS
//! and identity headers of one nginx `server` block, with its locations.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::location::Location;
use super::raw::{RawHttp, RawListener};
use super::rule::Rule;
use super::words::{IdentityField, LocationVerify, Word};
use super::{span, Resolver};
use crate::tls::client_auth::ClientAuthMode;
use crate::tls::ServerTls;
use crate::vars::Template;

/// A virtual server: one `[[listener]]` table, an nginx `server` block. Several may share a
/// bound address ([`super::Socket`]); the SNI and the Host choose among them.
#[derive(Debug)]
pub struct Server {
    /// Name used in logs and the readiness line.
    pub name: String,
    /// Address to bind (port 0 picks a free port).
    pub addr: SocketAddr,
    /// Index into [`Config::sockets`](super::Config::sockets).
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
    /// HTTP/2 over TLS is offered (ALPN h2).
    pub http2: bool,
    /// HTTP/2 with prior knowledge is served on this plain listener.
    pub h2c: bool,
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
    /// The file (one of [`Config::log_files`](super::Config::log_files)).
    pub path: Arc<Path>,
    /// How lines are rendered.
    pub format: Arc<crate::vars::log_format::LogFormat>,
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
    /// Streams one HTTP/2 connection may have open at once (nginx's
    /// `http2_max_concurrent_streams`).
    pub http2_max_concurrent_streams: u32,
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
            http2_max_concurrent_streams: 128,
        }
    }
}

impl Resolver<'_> {
    /// Resolves one `[[listener]]` with its locations; None when its address or TLS is
    /// unusable (reported).
    pub(super) fn listener(
        &mut self,
        i: usize,
        l: &RawListener,
        explicit_upstreams: usize,
    ) -> Option<Server> {
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
            rules.push(self.https_redirect(&key, port));
        }
        let locations = self.locations(&key, l, &rules, explicit_upstreams);
        let http2 = l.http2.as_ref().is_none_or(|v| *v.get_ref());
        let h2c = l.h2c.as_ref().is_some_and(|v| *v.get_ref());
        if let (Some(v), Some(_)) = (&l.h2c, &l.tls) {
            if *v.get_ref() {
                self.errs.push(
                    span(v),
                    &format!("{key}.h2c"),
                    "h2c is HTTP/2 without TLS: a TLS listener offers HTTP/2 with `http2`",
                );
            }
        }
        let (tls, verify_client) = self.listener_tls(&key, &name, l, &locations, http2);
        let identity_headers = self.identity_headers(&key, &l.identity_headers);
        let access_log = l
            .access_log
            .as_ref()
            .and_then(|a| self.access_log(&format!("{key}.access_log"), a));
        self.identity_header_clashes(&key, l, &locations, &identity_headers);
        Some(Server {
            name,
            addr: addr?,
            socket: 0,
            server_names,
            default_server: l.default_server.as_ref().is_some_and(|d| *d.get_ref()),
            tls,
            verify_client,
            http,
            http2,
            h2c,
            rules,
            identity_headers,
            access_log,
            locations,
        })
    }

    /// `https_redirect`: a rule that answers everything with a 301 to https on that port.
    fn https_redirect(&mut self, key: &str, port: &Spanned<u16>) -> Rule {
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
        Rule {
            condition: None,
            status: 301,
            body: Template::compile(&target).ok(),
        }
    }

    /// The listener's locations (those that resolve); at least one unless a server-level
    /// rule always answers.
    fn locations(
        &mut self,
        key: &str,
        l: &RawListener,
        rules: &[Rule],
        explicit_upstreams: usize,
    ) -> Vec<Location> {
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
        locations
    }

    /// `[listener.tls]` and the configured `verify_client`, checked against what the
    /// locations ask of client certificates.
    fn listener_tls(
        &mut self,
        key: &str,
        name: &str,
        l: &RawListener,
        locations: &[Location],
        http2: bool,
    ) -> (Option<Arc<ServerTls>>, ClientAuthMode) {
        let loc_modes: Vec<ClientAuthMode> =
            locations.iter().filter_map(|l| l.verify_client).collect();
        let (tls, verify_client) = match l.tls.as_ref() {
            Some(t) => match self.tls(key, name, t, &loc_modes, http2) {
                Some((tls, mode)) => (Some(tls), mode),
                None => (None, ClientAuthMode::Off),
            },
            None => {
                let wants_certs = l.location.iter().any(|loc| {
                    loc.allow_roles.is_some()
                        || loc
                            .verify_client
                            .as_ref()
                            .is_some_and(|v| *v.get_ref() != Word::Known(LocationVerify::Off))
                });
                if wants_certs {
                    self.errs.push(
                        span(&l.listen),
                        key,
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
        (tls, verify_client)
    }

    /// A location's `set_header` may not name one of the listener's identity headers.
    fn identity_header_clashes(
        &mut self,
        key: &str,
        l: &RawListener,
        locations: &[Location],
        identity_headers: &IdentityHeaders,
    ) {
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
    }

    /// `[listener.http]`: client-side limits and timeouts, nginx's defaults where unset.
    pub(super) fn http(&mut self, key: &str, h: &RawHttp) -> HttpSettings {
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
            http2_max_concurrent_streams: match &h.http2_max_concurrent_streams {
                Some(n) if *n.get_ref() == 0 => {
                    self.errs.push(
                        span(n),
                        &k("http2_max_concurrent_streams"),
                        "at least 1 (0 would refuse every request)",
                    );
                    d.http2_max_concurrent_streams
                }
                Some(n) => *n.get_ref(),
                None => d.http2_max_concurrent_streams,
            },
        }
    }
}

/// Parses a `listen` value: `host:port`, `[v6]:port`, or a bare port (all IPv4 addresses).
pub(super) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!("`{text}` is not an address; expected IP:PORT such as 127.0.0.1:8443 or [::1]:8443, or a port")
    })
}
