//! nginx-style `$variables` in header values, `return` bodies, rule conditions, maps and log
//! formats, compiled once at load time so that evaluating one on the request path only appends
//! bytes to the output.

pub mod condition;
pub mod log_format;
pub mod map;

use std::fmt;

/// A variable ringgate can evaluate, named as nginx names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `$host`: request-line authority, else Host without port, else the server name.
    Host,
    /// `$proxy_host`: the host[:port] written in `proxy_pass`.
    ProxyHost,
    /// `$remote_addr`.
    RemoteAddr,
    /// `$remote_port`.
    RemotePort,
    /// `$server_port`.
    ServerPort,
    /// `$scheme`: `https` or `http`.
    Scheme,
    /// `$request_uri`: the original target, with arguments.
    RequestUri,
    /// `$uri`: the path, without arguments.
    Uri,
    /// `$args`.
    Args,
    /// `$request_method`.
    RequestMethod,
    /// `$proxy_add_x_forwarded_for`.
    ProxyAddXForwardedFor,
    /// `$ssl_client_verify`: `SUCCESS`, `FAILED:reason` or `NONE`.
    SslClientVerify,
    /// `$ssl_client_s_dn` (RFC 2253).
    SslClientSDn,
    /// `$ssl_client_i_dn` (RFC 2253).
    SslClientIDn,
    /// `$ssl_client_serial`.
    SslClientSerial,
    /// `$ssl_client_fingerprint` (SHA-1, lowercase hex).
    SslClientFingerprint,
    /// `$ssl_protocol`.
    SslProtocol,
    /// `$ssl_cipher`.
    SslCipher,
    /// `$ssl_server_name`.
    SslServerName,
    /// `$ssl_session_reused`: `r` or `.`.
    SslSessionReused,
    /// `$request`: the request line.
    Request,
    /// `$status`: the response status (access log).
    Status,
    /// `$body_bytes_sent`: response body bytes sent (access log).
    BodyBytesSent,
    /// `$bytes_sent`: all bytes sent for the response (access log).
    BytesSent,
    /// `$request_time`: seconds with milliseconds since the request head started (access log).
    RequestTime,
    /// `$upstream_addr` (access log).
    UpstreamAddr,
    /// `$upstream_status` (access log).
    UpstreamStatus,
    /// `$upstream_response_time` (access log).
    UpstreamResponseTime,
    /// `$time_local`: `25/Nov/2026:10:00:00 +0000`.
    TimeLocal,
    /// `$time_iso8601`: `2026-11-25T10:00:00+00:00`.
    TimeIso8601,
    /// `$msec`: Unix time with milliseconds.
    Msec,
    /// `$server_name`: the first name of the server that handled the request.
    ServerName,
    /// `$server_addr`.
    ServerAddr,
    /// `$server_protocol`: `HTTP/1.1`.
    ServerProtocol,
    /// `$connection`: a per-worker connection serial number.
    Connection,
    /// `$connection_requests`: requests served on this connection so far.
    ConnectionRequests,
    /// `$content_length`: the request's Content-Length header.
    ContentLength,
    /// `$content_type`: the request's Content-Type header.
    ContentType,
    /// `$ssl_client_escaped_cert`: the client's PEM, percent-encoded.
    SslClientEscapedCert,
    /// `$ssl_client_v_start`: notBefore as `Nov 25 10:00:00 2026 GMT`.
    SslClientVStart,
    /// `$ssl_client_v_end`: notAfter, same form.
    SslClientVEnd,
    /// `$ssl_client_v_remain`: whole days until notAfter.
    SslClientVRemain,
    /// `$ssl_client_fingerprint_sha256` (ringgate).
    SslClientFingerprintSha256,
    /// `$ssl_client_spiffe_id` (ringgate): the SPIFFE ID from the URI SAN.
    SslClientSpiffeId,
    /// `$ssl_client_role` (ringgate): the role `[identity]` gave a verified certificate.
    SslClientRole,
    /// `$access_decision` (ringgate): why the request was allowed or refused (access log).
    AccessDecision,
    /// `$http_NAME`: a request header, `_` standing for `-`; the name is kept lowercase with `-`.
    Http(String),
    /// `$sent_http_NAME`: a response header (access log).
    SentHttp(String),
    /// A `[[map]]` variable, by index.
    Map(usize),
}

impl Var {
    /// Looks a variable up by its nginx name (without `$`).
    pub fn from_name(name: &str) -> Option<Var> {
        Some(match name {
            "host" => Var::Host,
            "proxy_host" => Var::ProxyHost,
            "remote_addr" => Var::RemoteAddr,
            "remote_port" => Var::RemotePort,
            "server_port" => Var::ServerPort,
            "scheme" => Var::Scheme,
            "request_uri" => Var::RequestUri,
            "uri" | "document_uri" => Var::Uri,
            "args" | "query_string" => Var::Args,
            "request_method" => Var::RequestMethod,
            "proxy_add_x_forwarded_for" => Var::ProxyAddXForwardedFor,
            "ssl_client_verify" => Var::SslClientVerify,
            "ssl_client_s_dn" => Var::SslClientSDn,
            "ssl_client_i_dn" => Var::SslClientIDn,
            "ssl_client_serial" => Var::SslClientSerial,
            "ssl_client_fingerprint" => Var::SslClientFingerprint,
            "ssl_protocol" => Var::SslProtocol,
            "ssl_cipher" => Var::SslCipher,
            "ssl_server_name" => Var::SslServerName,
            "ssl_session_reused" => Var::SslSessionReused,
            "request" => Var::Request,
            "status" => Var::Status,
            "body_bytes_sent" => Var::BodyBytesSent,
            "bytes_sent" => Var::BytesSent,
            "request_time" => Var::RequestTime,
            "upstream_addr" => Var::UpstreamAddr,
            "upstream_status" => Var::UpstreamStatus,
            "upstream_response_time" => Var::UpstreamResponseTime,
            "time_local" => Var::TimeLocal,
            "time_iso8601" => Var::TimeIso8601,
            "msec" => Var::Msec,
            "server_name" => Var::ServerName,
            "server_addr" => Var::ServerAddr,
            "server_protocol" => Var::ServerProtocol,
            "connection" => Var::Connection,
            "connection_requests" => Var::ConnectionRequests,
            "content_length" => Var::ContentLength,
            "content_type" => Var::ContentType,
            "ssl_client_escaped_cert" => Var::SslClientEscapedCert,
            "ssl_client_v_start" => Var::SslClientVStart,
            "ssl_client_v_end" => Var::SslClientVEnd,
            "ssl_client_v_remain" => Var::SslClientVRemain,
            "ssl_client_fingerprint_sha256" => Var::SslClientFingerprintSha256,
            "ssl_client_spiffe_id" => Var::SslClientSpiffeId,
            "ssl_client_role" => Var::SslClientRole,
            "access_decision" => Var::AccessDecision,
            _ => {
                if let Some(header) = name.strip_prefix("sent_http_") {
                    if header.is_empty() {
                        return None;
                    }
                    return Some(Var::SentHttp(header.replace('_', "-").to_ascii_lowercase()));
                }
                let header = name.strip_prefix("http_")?;
                if header.is_empty() {
                    return None;
                }
                Var::Http(header.replace('_', "-").to_ascii_lowercase())
            }
        })
    }
}

/// Where variable values come from at evaluation time.
pub trait Lookup {
    /// Appends the value of `var` to `out` (nothing when it has none).
    fn append(&self, var: &Var, out: &mut Vec<u8>);

    /// The value of `var` as it is already held (a header, a DN, the host), when no work is
    /// needed to produce it: lets conditions and maps compare without a temporary buffer.
    fn borrow(&self, _var: &Var) -> Option<&[u8]> {
        None
    }
}

/// The names `[[map]]` blocks define, so templates can refer to them as `$name`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Names<'a> {
    /// Map variable names, by index.
    pub maps: &'a [String],
}

impl Names<'_> {
    /// A variable by name: a map's first (a map may shadow nothing built in: the loader
    /// refuses such names), then the built-ins.
    pub fn lookup(&self, name: &str) -> Option<Var> {
        if let Some(i) = self.maps.iter().position(|m| m == name) {
            return Some(Var::Map(i));
        }
        Var::from_name(name)
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes copied as they are.
    Literal(String),
    /// A variable's value.
    Var(Var),
}

/// A compiled string with variables, such as `https://$host$request_uri`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// A template referred to a variable ringgate does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariable(pub String);

impl fmt::Display for UnknownVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown variable `${}`", self.0)
    }
}

impl Template {
    /// Compiles `$name` and `${name}` references to built-in variables; a `$` not followed by
    /// a name is literal.
    pub fn compile(text: &str) -> Result<Template, UnknownVariable> {
        Self::compile_with(text, Names::default())
    }

    /// Compiles with `[[map]]` variables known too.
    pub fn compile_with(text: &str, names: Names<'_>) -> Result<Template, UnknownVariable> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            literal.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) => (&braced[..end], end + 2),
                    None => ("", 0),
                }
            } else {
                let len = after
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                (&after[..len], len)
            };
            if name.is_empty() {
                literal.push('$');
                rest = after;
                continue;
            }
            let var = names
                .lookup(name)
                .ok_or_else(|| UnknownVariable(name.to_string()))?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Var(var));
            rest = &after[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// The parts, for evaluation.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The variable, when the template is exactly one variable (`$ssl_client_s_dn`).
    pub fn single_var(&self) -> Option<&Var> {
        match self.parts.as_slice() {
            [Part::Var(v)] => Some(v),
            _ => None,
        }
    }

    /// True when any part refers to `var`.
    pub fn uses(&self, var: &Var) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v == var))
    }

    /// True when the template is one literal (nothing to evaluate per request).
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// Appends the template's value to `out`, asking `lookup` for each variable.
    pub fn render(&self, out: &mut Vec<u8>, mut lookup: impl FnMut(&Var, &mut Vec<u8>)) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Var(v) => lookup(v, out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_nginx_forms() {
        let t = Template::compile("https://$host$request_uri").unwrap();
        assert_eq!(
            t.parts(),
            &[
                Part::Literal("https://".into()),
                Part::Var(Var::Host),
                Part::Var(Var::RequestUri)
            ]
        );
        let t = Template::compile("${scheme}x $ 5$").unwrap();
        assert_eq!(t.parts()[0], Part::Var(Var::Scheme));
        assert_eq!(t.parts()[1], Part::Literal("x $ 5$".into()));
        assert_eq!(
            Template::compile("$http_x_real_ip").unwrap().parts(),
            &[Part::Var(Var::Http("x-real-ip".into()))]
        );
        assert!(Template::compile("$nope").is_err());
        assert_eq!(
            Template::compile("plain").unwrap().as_literal(),
            Some("plain")
        );
    }

    #[test]
    fn renders_with_lookup() {
        let t = Template::compile("a=$remote_addr;").unwrap();
        let mut out = Vec::new();
        t.render(&mut out, |v, o| {
            assert_eq!(v, &Var::RemoteAddr);
            o.extend_from_slice(b"127.0.0.1")
        });
        assert_eq!(out, b"a=127.0.0.1;");
    }
}
