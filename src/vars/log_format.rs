//! The access log (nginx's `log_format` / `access_log`): one line per request, in a format of
//! nginx variables or as JSON, rendered on the worker into its own buffer and written to disk
//! by a separate thread, so no worker ever blocks on the file.
//!
//! As nginx does, a variable with no value is logged as `-`, and variable values are escaped
//! (`"`, `\` and bytes outside printable ASCII become `\xHH`) so a client cannot forge lines or
//! fields; JSON output escapes as JSON.

use crate::vars::{Template, Var};

/// How lines are rendered.
#[derive(Debug, Clone)]
pub enum LogFormat {
    /// A template of nginx variables (`log_format name '...'`).
    Template(Template),
    /// One JSON object per line with a fixed set of fields.
    Json,
}

/// nginx's predefined `combined` format.
pub const COMBINED: &str = "$remote_addr - - [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// ringgate's default: the request, the identity, the access decision and the upstream.
pub const DEFAULT: &str = "$remote_addr [$time_local] \"$request\" $status $body_bytes_sent $request_time host=$host tls=$ssl_protocol verify=$ssl_client_verify dn=\"$ssl_client_s_dn\" role=$ssl_client_role decision=\"$access_decision\" upstream=$upstream_addr upstream_status=$upstream_status upstream_time=$upstream_response_time";

/// The JSON format's fields: key and variable.
const JSON_FIELDS: &[(&str, Var)] = &[
    ("time", Var::TimeIso8601),
    ("remote_addr", Var::RemoteAddr),
    ("remote_port", Var::RemotePort),
    ("server_name", Var::ServerName),
    ("host", Var::Host),
    ("request", Var::Request),
    ("status", Var::Status),
    ("body_bytes_sent", Var::BodyBytesSent),
    ("request_time", Var::RequestTime),
    ("ssl_protocol", Var::SslProtocol),
    ("ssl_session_reused", Var::SslSessionReused),
    ("ssl_client_verify", Var::SslClientVerify),
    ("ssl_client_s_dn", Var::SslClientSDn),
    ("ssl_client_i_dn", Var::SslClientIDn),
    ("ssl_client_serial", Var::SslClientSerial),
    ("ssl_client_fingerprint", Var::SslClientFingerprint),
    ("role", Var::SslClientRole),
    ("decision", Var::AccessDecision),
    ("upstream_addr", Var::UpstreamAddr),
    ("upstream_status", Var::UpstreamStatus),
    ("upstream_response_time", Var::UpstreamResponseTime),
];

impl LogFormat {
    /// Renders one line (with its newline) into `out`, asking `eval` for each variable.
    pub fn render(&self, out: &mut Vec<u8>, mut eval: impl FnMut(&Var, &mut Vec<u8>)) {
        let mut value = Vec::with_capacity(64);
        match self {
            LogFormat::Template(t) => {
                for part in t.parts() {
                    match part {
                        crate::vars::Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                        crate::vars::Part::Var(v) => {
                            value.clear();
                            eval(v, &mut value);
                            if value.is_empty() {
                                out.push(b'-');
                            } else {
                                escape_nginx(&value, out);
                            }
                        }
                    }
                }
            }
            LogFormat::Json => {
                out.push(b'{');
                for (i, (key, var)) in JSON_FIELDS.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'"');
                    out.extend_from_slice(key.as_bytes());
                    out.extend_from_slice(b"\":\"");
                    value.clear();
                    eval(var, &mut value);
                    escape_json(&value, out);
                    out.push(b'"');
                }
                out.push(b'}');
            }
        }
        out.push(b'\n');
    }
}

/// nginx's default log escaping: `"`, `\`, control bytes and bytes >= 0x7f as `\xHH`.
pub fn escape_nginx(value: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.push(b);
        }
    }
}

/// JSON string escaping; invalid UTF-8 bytes become `\u00XX`.
pub fn escape_json(value: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let text = String::from_utf8_lossy(value);
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: &LogFormat, lookup: &[(Var, &str)]) -> String {
        let mut out = Vec::new();
        f.render(&mut out, |v, o| {
            if let Some((_, s)) = lookup.iter().find(|(k, _)| k == v) {
                o.extend_from_slice(s.as_bytes());
            }
        });
        String::from_utf8(out).unwrap()
    }

    /// The enterprise mTLS guide's `log_format` (client verification result and DN).
    #[test]
    fn client_verify_format_as_nginx_writes_it() {
        let f = LogFormat::Template(
            Template::compile(
                "$remote_addr [$time_local] ClientVerify:$ssl_client_verify DN:$ssl_client_s_dn",
            )
            .unwrap(),
        );
        let line = render(
            &f,
            &[
                (Var::RemoteAddr, "10.0.0.5"),
                (Var::TimeLocal, "25/Nov/2026:10:00:00 +0000"),
                (Var::SslClientVerify, "SUCCESS"),
                (Var::SslClientSDn, "CN=client1,OU=Client,O=MyCompany,C=CN"),
            ],
        );
        assert_eq!(
            line,
            "10.0.0.5 [25/Nov/2026:10:00:00 +0000] ClientVerify:SUCCESS DN:CN=client1,OU=Client,O=MyCompany,C=CN\n"
        );
        let anon = render(&f, &[(Var::SslClientVerify, "NONE")]);
        assert_eq!(anon, "- [-] ClientVerify:NONE DN:-\n");
    }

    #[test]
    fn values_cannot_forge_lines_or_fields() {
        let f = LogFormat::Template(Template::compile("\"$http_user_agent\"").unwrap());
        let line = render(&f, &[(Var::Http("user-agent".into()), "a\"b\\c\nd\u{7f}é")]);
        assert_eq!(line, "\"a\\x22b\\x5Cc\\x0Ad\\x7F\\xC3\\xA9\"\n");
        let json = render(
            &LogFormat::Json,
            &[(Var::Request, "GET /\"x\n HTTP/1.1"), (Var::Status, "200")],
        );
        assert!(
            json.starts_with("{\"time\":\"\",\"remote_addr\":\"\""),
            "{json}"
        );
        assert!(
            json.contains("\"request\":\"GET /\\\"x\\n HTTP/1.1\""),
            "{json}"
        );
        assert!(json.contains("\"status\":\"200\""), "{json}");
        assert!(json.ends_with("}\n"));
        assert_eq!(json.matches('\n').count(), 1);
    }

    #[test]
    fn builtin_formats_compile() {
        assert!(Template::compile(COMBINED).is_ok());
        assert!(Template::compile(DEFAULT).is_ok());
    }
}
