//! nginx's `$variables` evaluated against one request: the values the phases render into
//! `return` bodies, `proxy_set_header` values, rule conditions, maps and access-log lines.

use std::time::Duration;

use super::outcome::LogFacts;
use super::peer::Peer;
use super::request::{Protocol, Request};
use crate::http::RequestHead;
use crate::vars::map::VarMap;
use crate::vars::{Lookup, Template, Var};

/// How deep map variables may refer to other map variables (nginx reports a cycle; we stop).
const MAX_MAP_DEPTH: u8 = 8;

/// What variable evaluation needs about one request.
pub struct RequestVars<'a> {
    /// `$server_protocol`.
    pub protocol: Protocol,
    /// The client.
    pub peer: &'a Peer,
    /// The parsed head.
    pub head: &'a RequestHead,
    /// The buffer the head was parsed from.
    pub buf: &'a [u8],
    /// `$host`.
    pub host: &'a [u8],
    /// `$uri` (normalized).
    pub uri: &'a [u8],
    /// `$proxy_host`, when proxying.
    pub proxy_host: &'a [u8],
    /// `[[map]]` variables.
    pub maps: &'a [VarMap],
    /// `$server_name`.
    pub server_name: &'a str,
    /// `$connection_requests`.
    pub served: u64,
    /// The request's outcome, when logging.
    pub log: Option<&'a LogFacts>,
}

impl<'a> Request<'a> {
    /// Variable evaluation for this request (`proxy_host` is `$proxy_host` when proxying).
    pub fn vars<'b>(&'b self, proxy_host: &'b [u8]) -> RequestVars<'b> {
        RequestVars {
            protocol: self.protocol,
            peer: self.peer,
            head: self.head,
            buf: self.bytes,
            host: self.host,
            uri: self.uri,
            proxy_host,
            maps: self.maps,
            server_name: self.server.server_names.first().map_or("", String::as_str),
            served: self.served,
            log: None,
        }
    }
}

impl RequestVars<'_> {
    /// Appends a variable's value to `out`; unknown or absent values append nothing, as nginx
    /// prints an empty string.
    pub fn eval(&self, var: &Var, out: &mut Vec<u8>) {
        self.eval_at(var, out, 0);
    }

    fn eval_at(&self, var: &Var, out: &mut Vec<u8>, depth: u8) {
        if let Var::Map(i) = var {
            self.eval_map(*i, out, depth);
        } else if !self.eval_request(var, out) && !self.eval_tls(var, out) {
            self.eval_outcome(var, out);
        }
    }

    /// The request's and the connection's own variables; false when `var` is not one of them.
    fn eval_request(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        let target = self.head.target.get(self.buf);
        match var {
            Var::Host => out.extend_from_slice(self.host),
            Var::ProxyHost => out.extend_from_slice(self.proxy_host),
            Var::RemoteAddr => out.extend_from_slice(self.peer.ip.as_bytes()),
            Var::RemotePort => push_u64(out, u64::from(self.peer.addr.port())),
            Var::ServerPort => push_u64(out, u64::from(self.peer.local.port())),
            Var::Scheme => out.extend_from_slice(if self.peer.tls.is_some() {
                b"https"
            } else {
                b"http"
            }),
            Var::RequestUri => out.extend_from_slice(target),
            Var::Uri => out.extend_from_slice(self.uri),
            Var::Args => {
                if let Some(q) = target.iter().position(|&b| b == b'?') {
                    out.extend_from_slice(&target[q + 1..]);
                }
            }
            Var::RequestMethod => out.extend_from_slice(self.head.method_span.get(self.buf)),
            Var::ProxyAddXForwardedFor => {
                let mut first = true;
                for h in &self.head.headers {
                    if h.name
                        .get(self.buf)
                        .eq_ignore_ascii_case(b"x-forwarded-for")
                    {
                        if !first {
                            out.extend_from_slice(b", ");
                        }
                        out.extend_from_slice(h.value.get(self.buf));
                        first = false;
                    }
                }
                if !first {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(self.peer.ip.as_bytes());
            }
            Var::Http(name) => {
                if let Some(v) = self.head.header(self.buf, name.as_bytes()) {
                    out.extend_from_slice(v);
                }
            }
            Var::Request => {
                out.extend_from_slice(self.head.method_span.get(self.buf));
                out.push(b' ');
                out.extend_from_slice(target);
                out.push(b' ');
                out.extend_from_slice(self.protocol.name().as_bytes());
            }
            Var::ServerProtocol => out.extend_from_slice(self.protocol.name().as_bytes()),
            Var::ServerName => out.extend_from_slice(self.server_name.as_bytes()),
            Var::ServerAddr => {
                use std::io::Write;
                let _ = write!(out, "{}", self.peer.local.ip());
            }
            Var::Connection => push_u64(out, self.peer.serial),
            Var::ConnectionRequests => push_u64(out, self.served),
            Var::ContentLength => {
                if let Some(v) = self.head.header(self.buf, b"content-length") {
                    out.extend_from_slice(v);
                }
            }
            Var::ContentType => {
                if let Some(v) = self.head.header(self.buf, b"content-type") {
                    out.extend_from_slice(v);
                }
            }
            _ => return false,
        }
        true
    }

    /// The TLS and client-certificate variables; false when `var` is not one of them.
    fn eval_tls(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        let tls = self.peer.tls.as_ref();
        let id = tls.and_then(|t| t.identity.as_deref());
        match var {
            Var::SslClientVerify => {
                if let Some(t) = tls {
                    out.extend_from_slice(t.verify.as_bytes());
                }
            }
            Var::SslClientSDn => push(out, id.map(|i| i.subject_dn.as_str())),
            Var::SslClientIDn => push(out, id.map(|i| i.issuer_dn.as_str())),
            Var::SslClientSerial => push(out, id.map(|i| i.serial.as_str())),
            Var::SslClientFingerprint => push(out, id.map(|i| i.fingerprint_sha1.as_str())),
            Var::SslProtocol => push(out, tls.map(|t| t.protocol)),
            Var::SslCipher => push(out, tls.map(|t| t.cipher)),
            Var::SslServerName => push(out, tls.and_then(|t| t.server_name.as_deref())),
            Var::SslSessionReused => {
                if let Some(t) = tls {
                    out.push(if t.resumed { b'r' } else { b'.' });
                }
            }
            Var::SslClientEscapedCert => push(out, id.map(|i| i.escaped_pem.as_str())),
            Var::SslClientVStart => {
                if let Some(i) = id {
                    crate::clock::push_openssl_time(out, i.not_before);
                }
            }
            Var::SslClientVEnd => {
                if let Some(i) = id {
                    crate::clock::push_openssl_time(out, i.not_after);
                }
            }
            Var::SslClientVRemain => {
                if let Some(i) = id {
                    push_u64(out, i.days_left(crate::clock::unix_now()).max(0) as u64);
                }
            }
            Var::SslClientFingerprintSha256 => push(out, id.map(|i| i.fingerprint_sha256.as_str())),
            Var::SslClientSpiffeId => push(
                out,
                self.peer
                    .verified_identity()
                    .and_then(|i| i.spiffe_id.as_deref()),
            ),
            Var::SslClientRole => push(out, self.peer.role.as_deref()),
            _ => return false,
        }
        true
    }

    /// The outcome (log) and clock variables; false when `var` is not one of them.
    fn eval_outcome(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        let log = self.log;
        match var {
            Var::Status => push_num(out, log.map(|l| u64::from(l.status))),
            Var::BodyBytesSent => push_num(out, log.map(|l| l.body_bytes)),
            Var::BytesSent => push_num(out, log.map(|l| l.bytes)),
            Var::RequestTime => {
                if let Some(t) = log.and_then(|l| l.started) {
                    push_secs(out, t.elapsed());
                }
            }
            Var::UpstreamAddr => match log.and_then(|l| l.upstream_addr) {
                Some(a) => {
                    use std::io::Write;
                    let _ = write!(out, "{a}");
                }
                None => out.push(b'-'),
            },
            Var::UpstreamStatus => match log.and_then(|l| l.upstream_status) {
                Some(s) => push_u64(out, u64::from(s)),
                None => out.push(b'-'),
            },
            Var::UpstreamResponseTime => match log.and_then(|l| l.upstream_time) {
                Some(d) => push_secs(out, d),
                None => out.push(b'-'),
            },
            Var::AccessDecision => push(out, log.map(|l| l.decision.as_ref())),
            Var::SentHttp(_) => {}
            Var::TimeLocal => crate::clock::push_time_local(out),
            Var::TimeIso8601 => crate::clock::push_time_iso8601(out),
            Var::Msec => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                push_secs(out, now);
            }
            _ => return false,
        }
        true
    }

    /// A `map` variable: its source rendered (or borrowed), looked up, the value rendered.
    fn eval_map(&self, i: usize, out: &mut Vec<u8>, depth: u8) {
        let Some(map) = self.maps.get(i) else {
            return;
        };
        if depth >= MAX_MAP_DEPTH {
            return;
        }
        // The usual source (`$ssl_client_s_dn`) is looked up in place.
        let held = map.source.single_var().and_then(|v| self.held(v));
        let value = match held {
            Some(input) => map.lookup(input),
            None => {
                let mut input = Vec::new();
                map.source
                    .render(&mut input, |v, o| self.eval_at(v, o, depth + 1));
                map.lookup(&input)
            }
        };
        value.render(out, |v, o| self.eval_at(v, o, depth + 1));
    }

    /// Renders a template.
    pub fn render(&self, t: &Template, out: &mut Vec<u8>) {
        t.render(out, |v, o| self.eval(v, o));
    }

    /// The value of `var` where it is already held as bytes (no formatting needed).
    fn held(&self, var: &Var) -> Option<&[u8]> {
        let tls = self.peer.tls.as_ref();
        let id = tls.and_then(|t| t.identity.as_deref());
        Some(match var {
            Var::Host => self.host,
            Var::Uri => self.uri,
            Var::RemoteAddr => self.peer.ip.as_bytes(),
            Var::RequestUri => self.head.target.get(self.buf),
            Var::RequestMethod => self.head.method_span.get(self.buf),
            Var::SslClientVerify => tls?.verify.as_bytes(),
            Var::SslClientSDn => id?.subject_dn.as_bytes(),
            Var::SslClientIDn => id?.issuer_dn.as_bytes(),
            Var::SslClientSerial => id?.serial.as_bytes(),
            Var::SslClientFingerprint => id?.fingerprint_sha1.as_bytes(),
            Var::SslServerName => tls?.server_name.as_deref()?.as_bytes(),
            Var::SslClientRole => self.peer.role.as_deref()?.as_bytes(),
            Var::Http(name) => self.head.header(self.buf, name.as_bytes())?,
            _ => return None,
        })
    }
}

impl Lookup for RequestVars<'_> {
    fn append(&self, var: &Var, out: &mut Vec<u8>) {
        self.eval(var, out);
    }

    fn borrow(&self, var: &Var) -> Option<&[u8]> {
        self.held(var)
    }
}

fn push_num(out: &mut Vec<u8>, v: Option<u64>) {
    if let Some(v) = v {
        push_u64(out, v);
    }
}

/// Appends a number's digits straight into `out` (no temporary string: evaluating a variable
/// allocates at most its output).
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Seconds with milliseconds, as nginx's `$request_time`: `0.012`.
fn push_secs(out: &mut Vec<u8>, d: Duration) {
    use std::io::Write;
    let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
}

fn push(out: &mut Vec<u8>, v: Option<&str>) {
    if let Some(v) = v {
        out.extend_from_slice(v.as_bytes());
    }
}
