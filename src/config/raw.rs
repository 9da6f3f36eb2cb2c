//! The configuration file's shape, exactly as written: serde structs with unknown keys refused
//! and spans kept, so that every later error can point at a line.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::listener::IdentityField;
use super::location::MatchKind;
use super::runtime::DriverChoice;
use super::units::Quantity;
use crate::tls::client_auth::{ClientAuthMode, FailureMode};
use crate::x509::crl::ExpiredCrl;

/// A word from a closed set, read by serde: the value it names, or the text as written when
/// it names none. An unknown word is no serde error on purpose: that would end the pass at
/// the first one and lose its key, where the resolver reports it with file, line and key
/// beside every other error, naming the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Word<T> {
    /// One of the accepted words.
    Known(T),
    /// Anything else, as written.
    Unknown(String),
}

/// The words a key accepts, and what to say about any other.
pub trait Keyword: Sized {
    /// The value `text` names, if any.
    fn parse(text: &str) -> Option<Self>;
    /// Why `text`, which names none, is refused, with the accepted values.
    fn refused(text: &str) -> String;
}

impl<'de, T: Keyword> Deserialize<'de> for Word<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match T::parse(&text) {
            Some(v) => Word::Known(v),
            None => Word::Unknown(text),
        })
    }
}

/// The value in `table` that `text` names exactly.
pub(super) fn lookup<T: Copy>(table: &[(&str, T)], text: &str) -> Option<T> {
    table.iter().find(|(w, _)| *w == text).map(|(_, v)| *v)
}

/// A location's `verify_client`: nginx's modes less `optional_no_ca`, which only the
/// handshake (the listener) can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationVerify {
    /// A verified certificate is required.
    On,
    /// No certificate is asked for.
    Off,
    /// A certificate is verified when sent.
    Optional,
}

impl LocationVerify {
    /// The client-auth mode it stands for.
    pub fn mode(self) -> ClientAuthMode {
        match self {
            LocationVerify::On => ClientAuthMode::On,
            LocationVerify::Off => ClientAuthMode::Off,
            LocationVerify::Optional => ClientAuthMode::Optional,
        }
    }
}

impl Keyword for LocationVerify {
    fn parse(text: &str) -> Option<Self> {
        lookup(
            &[
                ("on", LocationVerify::On),
                ("off", LocationVerify::Off),
                ("optional", LocationVerify::Optional),
            ],
            text,
        )
    }
    fn refused(text: &str) -> String {
        format!("`{text}` is not a per-location mode; expected \"on\", \"off\" or \"optional\"")
    }
}

impl Keyword for ClientAuthMode {
    fn parse(text: &str) -> Option<Self> {
        lookup(
            &[
                ("on", ClientAuthMode::On),
                ("off", ClientAuthMode::Off),
                ("optional", ClientAuthMode::Optional),
                ("optional_no_ca", ClientAuthMode::OptionalNoCa),
            ],
            text,
        )
    }
    fn refused(text: &str) -> String {
        format!(
            "`{text}` is not a mode; expected \"on\", \"optional\", \"optional_no_ca\" or \"off\""
        )
    }
}

impl Keyword for FailureMode {
    fn parse(text: &str) -> Option<Self> {
        lookup(
            &[("alert", FailureMode::Alert), ("http", FailureMode::Http)],
            text,
        )
    }
    fn refused(text: &str) -> String {
        format!("`{text}` is not a failure mode; expected \"alert\" (refuse in the handshake) or \"http\" (nginx-compatible 400 page)")
    }
}

impl Keyword for ExpiredCrl {
    fn parse(text: &str) -> Option<Self> {
        if text == "refuse" {
            return Some(ExpiredCrl::Refuse);
        }
        let d = super::units::parse_duration(text).ok()?;
        Some(ExpiredCrl::Grace(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        ))
    }
    fn refused(text: &str) -> String {
        format!("`{text}` is neither \"refuse\" (nginx's behaviour) nor a grace period such as \"12h\" or \"1d\"")
    }
}

/// A TLS protocol version as nginx's `ssl_protocols` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProtocol {
    /// `TLSv1.2`.
    Tls12,
    /// `TLSv1.3`.
    Tls13,
    /// `SSLv2`, `SSLv3`, `TLSv1` or `TLSv1.1`: known, and refused as insecure.
    Obsolete(&'static str),
}

impl Keyword for TlsProtocol {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "TLSv1.2" => Some(TlsProtocol::Tls12),
            "TLSv1.3" => Some(TlsProtocol::Tls13),
            _ => ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1"]
                .into_iter()
                .find(|&old| old == text)
                .map(TlsProtocol::Obsolete),
        }
    }
    fn refused(text: &str) -> String {
        format!("`{text}` is not a protocol; expected \"TLSv1.2\" and/or \"TLSv1.3\"")
    }
}

impl Keyword for DriverChoice {
    fn parse(text: &str) -> Option<Self> {
        lookup(
            &[
                ("auto", DriverChoice::Auto),
                ("legacy", DriverChoice::Legacy),
            ],
            text,
        )
    }
    fn refused(text: &str) -> String {
        format!("`{text}` is not a driver; expected \"auto\" or \"legacy\"")
    }
}

impl Keyword for log::LevelFilter {
    fn parse(text: &str) -> Option<Self> {
        // As the log crate reads levels: any case.
        text.parse().ok()
    }
    fn refused(_: &str) -> String {
        "expected one of off, error, warn, info, debug, trace".to_string()
    }
}

impl Keyword for MatchKind {
    fn parse(text: &str) -> Option<Self> {
        lookup(
            &[
                ("prefix", MatchKind::Prefix),
                ("exact", MatchKind::Exact),
                ("=", MatchKind::Exact),
                ("prefix_no_regex", MatchKind::PrefixNoRegex),
                ("^~", MatchKind::PrefixNoRegex),
                ("regex", MatchKind::Regex),
                ("~", MatchKind::Regex),
                ("regex_nocase", MatchKind::RegexNoCase),
                ("~*", MatchKind::RegexNoCase),
            ],
            text,
        )
    }
    fn refused(text: &str) -> String {
        format!("`{text}` is not a match kind; expected \"prefix\", \"exact\" (=), \"prefix_no_regex\" (^~), \"regex\" (~) or \"regex_nocase\" (~*)")
    }
}

impl Keyword for IdentityField {
    fn parse(text: &str) -> Option<Self> {
        lookup(&IdentityField::ALL, text)
    }
    fn refused(_: &str) -> String {
        let known: Vec<&str> = IdentityField::ALL.iter().map(|(n, _)| *n).collect();
        format!(
            "unknown identity field; expected one of {}",
            known.join(", ")
        )
    }
}

/// `access_log = "off"`, the one word the key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOff;

impl Keyword for LogOff {
    fn parse(text: &str) -> Option<Self> {
        (text == "off").then_some(LogOff)
    }
    fn refused(text: &str) -> String {
        format!("`{text}`: expected \"off\" or {{ path = \"...\", format = \"...\" }}")
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub runtime: RawRuntime,
    #[serde(default)]
    pub listener: Vec<RawListener>,
    #[serde(default)]
    pub upstream: Vec<RawUpstream>,
    /// `[identity]`: roles and certificate + address bindings.
    #[serde(default)]
    pub identity: RawIdentity,
    /// `[[map]]`: nginx `map` blocks.
    #[serde(default)]
    pub map: Vec<RawMap>,
    /// `[log_format]`: named access-log formats (nginx `log_format`).
    #[serde(default)]
    pub log_format: BTreeMap<String, Spanned<String>>,
    /// `[static]`: content types for `root` locations.
    #[serde(default, rename = "static")]
    pub static_files: RawStatic,
    /// `[admin]`: metrics and health endpoints.
    pub admin: Option<RawAdmin>,
}

/// `[admin]`: where `/metrics`, `/healthz` and `/readyz` are served (plain HTTP).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Spanned<String>,
}

/// `[runtime]`: workers and process-wide settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    pub workers: Option<Spanned<usize>>,
    pub cpus: Option<Spanned<Vec<usize>>>,
    pub shutdown_timeout: Option<Spanned<Quantity>>,
    pub driver: Option<Spanned<Word<DriverChoice>>>,
    pub log_level: Option<Spanned<Word<log::LevelFilter>>>,
    pub error_log: Option<Spanned<String>>,
    pub watch: Option<Spanned<bool>>,
    pub watch_interval: Option<Spanned<Quantity>>,
    /// Serve with private keys group or others can read (refused otherwise).
    pub allow_insecure_key_permissions: Option<Spanned<bool>>,
    /// Client connections the process keeps open at most.
    pub max_connections: Option<Spanned<usize>>,
    /// Client connections one worker keeps open at most.
    pub max_connections_per_worker: Option<Spanned<usize>>,
}

/// `[[listener]]`: one address, its TLS policy and its locations (an nginx `server` block).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: Option<Spanned<String>>,
    pub listen: Spanned<String>,
    #[serde(default)]
    pub server_names: Vec<Spanned<String>>,
    /// nginx `listen ... default_server`: chosen when SNI and Host match no server on the address.
    pub default_server: Option<Spanned<bool>>,
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub http: RawHttp,
    /// Server-level `if`/`return`, run before a location is chosen.
    #[serde(default)]
    pub rule: Vec<RawRule>,
    /// Answer everything with a 301 to https on this port (nginx's plain `listen 80` server that only sends clients to https).
    pub https_redirect: Option<Spanned<u16>>,
    /// Which identity headers go upstream, by field, and under which name.
    #[serde(default)]
    pub identity_headers: BTreeMap<Word<IdentityField>, Spanned<String>>,
    /// `access_log = "off"` or `{ path = "...", format = "name" }`.
    pub access_log: Option<Spanned<RawAccessLog>>,
    #[serde(default)]
    pub location: Vec<RawLocation>,
}

/// `access_log = "off"` or `access_log = { path = "/var/log/x.log", format = "main" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAccessLog {
    Off(Word<LogOff>),
    To {
        path: String,
        #[serde(default)]
        format: Option<String>,
    },
}

/// A rewrite-phase rule: an optional nginx `if` condition and the `return` it triggers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(rename = "if")]
    pub if_: Option<Spanned<String>>,
    #[serde(rename = "return")]
    pub return_: Spanned<RawReturn>,
}

/// `[listener.tls]`: server certificates and client verification.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub certificates: Spanned<Vec<RawCertificate>>,
    pub protocols: Option<Spanned<Vec<Word<TlsProtocol>>>>,
    pub client_certificate: Option<Spanned<String>>,
    pub verify_client: Option<Spanned<Word<ClientAuthMode>>>,
    pub verify_depth: Option<Spanned<u32>>,
    pub verify_failure: Option<Spanned<Word<FailureMode>>>,
    pub session_tickets: Option<Spanned<bool>>,
    pub session_cache: Option<Spanned<usize>>,
    pub session_timeout: Option<Spanned<Quantity>>,
    #[serde(default)]
    pub session_ticket_key: Vec<Spanned<String>>,
    pub trusted_certificate: Option<Spanned<String>>,
    #[serde(default)]
    pub crl: Vec<Spanned<String>>,
    /// Every CA of a client's chain must have a CRL (nginx's behaviour; default true).
    pub crl_require_all: Option<Spanned<bool>>,
    /// `"refuse"` (nginx) or a grace period such as `"1d"` for CRLs past their nextUpdate.
    pub crl_expired: Option<Spanned<Word<ExpiredCrl>>>,
}

/// One certificate chain and its key (`ssl_certificate` / `ssl_certificate_key`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
    /// Names this certificate answers for by SNI; taken from its SANs (or CN) when absent.
    #[serde(default)]
    pub server_names: Vec<Spanned<String>>,
    /// A DER OCSP response for this certificate, stapled in handshakes (`ssl_stapling_file`).
    pub ocsp: Option<Spanned<String>>,
}

/// `[listener.http]`: limits and timeouts of the client side.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub max_header_bytes: Option<Spanned<Quantity>>,
    pub max_header_line_bytes: Option<Spanned<Quantity>>,
    pub max_headers: Option<Spanned<usize>>,
    pub header_timeout: Option<Spanned<Quantity>>,
    pub body_timeout: Option<Spanned<Quantity>>,
    pub send_timeout: Option<Spanned<Quantity>>,
    pub keepalive_timeout: Option<Spanned<Quantity>>,
    pub keepalive_requests: Option<Spanned<u64>>,
    pub client_max_body_size: Option<Spanned<Quantity>>,
    pub x_forwarded_for: Option<Spanned<bool>>,
    pub x_forwarded_proto: Option<Spanned<bool>>,
}

/// `[[listener.location]]`: a path and what to do with requests under it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub path: Spanned<String>,
    #[serde(rename = "match")]
    pub match_kind: Option<Spanned<Word<MatchKind>>>,
    pub proxy_pass: Option<Spanned<String>>,
    #[serde(rename = "return")]
    pub return_: Option<Spanned<RawReturn>>,
    #[serde(default)]
    pub set_header: BTreeMap<String, Spanned<String>>,
    /// Serve static files from this directory.
    pub root: Option<Spanned<String>>,
    /// Index files for directory requests under `root`.
    pub index: Option<Spanned<Vec<String>>>,
    /// Per-path client certificate requirement (nginx `ssl_verify_client` in a location).
    pub verify_client: Option<Spanned<Word<LocationVerify>>>,
    /// Roles allowed in (see `[identity]`).
    pub allow_roles: Option<Spanned<Vec<String>>>,
    /// Location-level `if`/`return`, run in order after the location is chosen.
    #[serde(default)]
    pub rule: Vec<RawRule>,
}

/// `return = 204` or `return = { status = 301, body = "https://$host$request_uri" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawReturn {
    Status(u16),
    Full {
        status: u16,
        #[serde(default)]
        body: Option<String>,
    },
}

/// `[[upstream]]`: a named group of HTTP/1.1 servers (an nginx `upstream` block), spoken to
/// in plain TCP or, with `proxy_pass = "https://NAME"`, in TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: Spanned<String>,
    pub servers: Spanned<Vec<String>>,
    pub backup_servers: Option<Spanned<Vec<String>>>,
    pub keepalive: Option<Spanned<usize>>,
    pub keepalive_timeout: Option<Spanned<Quantity>>,
    pub purge_delay: Option<Spanned<Quantity>>,
    pub max_fails: Option<Spanned<u32>>,
    pub fail_timeout: Option<Spanned<Quantity>>,
    pub connect_timeout: Option<Spanned<Quantity>>,
    pub read_timeout: Option<Spanned<Quantity>>,
    pub send_timeout: Option<Spanned<Quantity>>,
    pub tls: Option<Spanned<RawUpstreamTls>>,
}

/// `[upstream.tls]`: how ringgate talks TLS to the upstream (nginx's `proxy_ssl_*`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub verify: Option<Spanned<bool>>,
    pub trusted_certificate: Option<Spanned<String>>,
    pub verify_depth: Option<Spanned<u32>>,
    pub name: Option<Spanned<String>>,
    pub server_name: Option<Spanned<bool>>,
    pub certificate: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub protocols: Option<Spanned<Vec<Word<TlsProtocol>>>>,
    pub session_reuse: Option<Spanned<bool>>,
}

/// `[identity]`: how a verified certificate becomes a role, and where it may come from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub default_role: Option<Spanned<String>>,
    #[serde(default)]
    pub roles: Vec<Spanned<RawRoleRule>>,
    #[serde(default)]
    pub bindings: Vec<Spanned<RawBinding>>,
}

/// One role rule: the role and exactly one certificate field to match.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoleRule {
    pub role: String,
    pub cn: Option<RawMatcher>,
    pub ou: Option<RawMatcher>,
    pub o: Option<RawMatcher>,
    pub dns: Option<RawMatcher>,
    pub uri: Option<RawMatcher>,
    pub email: Option<RawMatcher>,
    pub spiffe_id: Option<RawMatcher>,
}

/// `"exact"`, `{ prefix = ".." }` or `{ regex = ".." }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawMatcher {
    Exact(String),
    Prefix { prefix: String },
    Regex { regex: String },
}

/// A certificate + source address binding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBinding {
    pub cn: Option<String>,
    pub fingerprint: Option<String>,
    pub serial: Option<String>,
    pub from: Vec<String>,
}

/// `[[map]]`: nginx `map SOURCE $VARIABLE { ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMap {
    pub source: Spanned<String>,
    pub variable: Spanned<String>,
    #[serde(default)]
    pub default: Option<Spanned<String>>,
    #[serde(default)]
    pub entries: Vec<Spanned<RawMapEntry>>,
}

/// One `map` line: an exact string or a regex, and the value it gives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMapEntry {
    pub exact: Option<String>,
    pub regex: Option<String>,
    pub regex_nocase: Option<String>,
    pub value: String,
}

/// `[static]`: nginx `types {}` and `default_type`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatic {
    pub default_type: Option<Spanned<String>>,
    pub types: Option<Spanned<BTreeMap<String, String>>>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse_str;

    #[test]
    fn unknown_words_are_reported_together_with_line_key_and_accepted_values() {
        let text = r#"[runtime]
driver = "uring"
log_level = "loud"

[[listener]]
listen = "127.0.0.1:0"
access_log = "on"
[listener.tls]
certificates = [{ cert = "/nonexistent.crt", key = "/nonexistent.key" }]
protocols = ["TLSv1.2", "QUIC"]
verify_client = "maybe"
verify_failure = "page"
crl_expired = "later"
[[listener.location]]
path = "/"
match = "glob"
verify_client = "optional_no_ca"
return = 204
"#;
        let err = parse_str(text, Path::new("w.toml")).unwrap_err();
        let all = err.to_string();
        for (line, key, what) in [
            (
                2,
                "runtime.driver",
                "`uring` is not a driver; expected \"auto\" or \"legacy\"",
            ),
            (
                3,
                "runtime.log_level",
                "expected one of off, error, warn, info, debug, trace",
            ),
            (7, "listener[0].access_log", "`on`: expected \"off\" or"),
            (10, "listener[0].tls.protocols", "`QUIC` is not a protocol"),
            (
                11,
                "listener[0].tls.verify_client",
                "\"optional_no_ca\" or \"off\"",
            ),
            (
                12,
                "listener[0].tls.verify_failure",
                "`page` is not a failure mode",
            ),
            (
                13,
                "listener[0].tls.crl_expired",
                "`later` is neither \"refuse\"",
            ),
            (
                16,
                "listener[0].location[0].match",
                "`glob` is not a match kind",
            ),
            (
                17,
                "listener[0].location[0].verify_client",
                "not a per-location mode",
            ),
        ] {
            let want = format!("w.toml:{line}: {key}: ");
            assert!(
                all.lines().any(|l| l.contains(&want) && l.contains(what)),
                "want {want}...{what} in:\n{all}"
            );
        }
        // The certificate files are still loaded and reported: no word stops the pass.
        assert!(
            all.contains("listener[0].tls.certificates[0].cert"),
            "{all}"
        );
    }

    #[test]
    fn identity_header_fields_are_words() {
        let base = "[[listener]]\nlisten = \"127.0.0.1:0\"\n[listener.identity_headers]\nverify = \"X-Verify\"\nsubject = \"X-Subject\"\n";
        let loc = "[[listener.location]]\npath = \"/\"\nreturn = 204\n";
        let c = parse_str(&format!("{base}{loc}"), Path::new("t.toml")).unwrap();
        let fields: Vec<_> = c.listeners[0].identity_headers.fields.clone();
        assert_eq!(
            fields,
            vec![
                (IdentityField::Subject, "X-Subject".to_string()),
                (IdentityField::Verify, "X-Verify".to_string()),
            ]
        );
        let text = format!("{base}subjectt = \"X-S\"\n{loc}");
        let err = parse_str(&text, Path::new("t.toml")).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].key, "listener[0].identity_headers.subjectt");
        assert_eq!(err.0[0].line, Some(6));
        assert!(
            err.0[0].message.contains("expected one of subject, issuer"),
            "{err}"
        );
    }

    #[test]
    fn words_parse_as_nginx_writes_them() {
        assert_eq!(MatchKind::parse("^~"), Some(MatchKind::PrefixNoRegex));
        assert_eq!(MatchKind::parse("~*"), Some(MatchKind::RegexNoCase));
        assert_eq!(
            log::LevelFilter::parse("DEBUG"),
            Some(log::LevelFilter::Debug)
        );
        assert_eq!(ExpiredCrl::parse("refuse"), Some(ExpiredCrl::Refuse));
        assert_eq!(ExpiredCrl::parse("1d"), Some(ExpiredCrl::Grace(86_400)));
        assert_eq!(
            TlsProtocol::parse("TLSv1.1"),
            Some(TlsProtocol::Obsolete("TLSv1.1"))
        );
        assert_eq!(LocationVerify::parse("optional_no_ca"), None);
        assert_eq!(
            ClientAuthMode::parse("optional_no_ca"),
            Some(ClientAuthMode::OptionalNoCa)
        );
    }

    #[test]
    fn a_word_of_the_wrong_type_is_a_structural_error() {
        let text = "[runtime]\ndriver = 5\n[[listener]]\nlisten = \"127.0.0.1:0\"\n";
        let err = parse_str(text, Path::new("t.toml")).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].line, Some(2), "{err}");
    }
}
