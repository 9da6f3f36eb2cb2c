//! Keys that take one word of a closed set (`verify_client = "optional"`, `match = "^~"`,
//! `protocols = ["TLSv1.3"]`, ...): read by serde into enums, with the message that names
//! the accepted values kept beside each set.

use serde::{Deserialize, Deserializer};

use crate::fetch::ocsp_client::{OcspCheck, OcspFailure};
use crate::tls::client_auth::{ClientAuthMode, FailureMode};
use crate::upstream::UpstreamProtocol;
use crate::x509::crl::ExpiredCrl;

/// A field of the client's identity that can be sent upstream as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdentityField {
    /// `$ssl_client_s_dn`.
    Subject,
    /// `$ssl_client_i_dn`.
    Issuer,
    /// `$ssl_client_verify`.
    Verify,
    /// The role from `[identity]` (verified certificates only).
    Role,
    /// `$ssl_client_serial`.
    Serial,
    /// `$ssl_client_fingerprint` (SHA-1).
    Fingerprint,
    /// SHA-256 fingerprint.
    FingerprintSha256,
    /// `$ssl_client_v_start`.
    NotBefore,
    /// `$ssl_client_v_end`.
    NotAfter,
    /// `$ssl_client_escaped_cert`.
    Cert,
    /// The SPIFFE ID (verified certificates only).
    SpiffeId,
    /// Envoy's `X-Forwarded-Client-Cert` (verified certificates only).
    Xfcc,
    /// RFC 9440 `Client-Cert` (verified certificates only).
    ClientCert,
    /// RFC 9440 `Client-Cert-Chain` (verified certificates only).
    ClientCertChain,
}

impl IdentityField {
    /// Every field with its config key.
    pub const ALL: [(&'static str, IdentityField); 14] = [
        ("subject", IdentityField::Subject),
        ("issuer", IdentityField::Issuer),
        ("verify", IdentityField::Verify),
        ("role", IdentityField::Role),
        ("serial", IdentityField::Serial),
        ("fingerprint", IdentityField::Fingerprint),
        ("fingerprint_sha256", IdentityField::FingerprintSha256),
        ("not_before", IdentityField::NotBefore),
        ("not_after", IdentityField::NotAfter),
        ("cert", IdentityField::Cert),
        ("spiffe_id", IdentityField::SpiffeId),
        ("xfcc", IdentityField::Xfcc),
        ("client_cert", IdentityField::ClientCert),
        ("client_cert_chain", IdentityField::ClientCertChain),
    ];

    /// Its config key.
    pub fn name(self) -> &'static str {
        IdentityField::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(n, _)| n)
    }
}

/// How a location's path matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// nginx `location /path`.
    Prefix,
    /// nginx `location = /path`.
    Exact,
    /// nginx `location ^~ /path`: a prefix that, when longest, stops the regex search.
    PrefixNoRegex,
    /// nginx `location ~ regex`.
    Regex,
    /// nginx `location ~* regex`.
    RegexNoCase,
}

/// Which io driver workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring where the kernel offers it, else the epoll-based legacy driver.
    Auto,
    /// Always the legacy driver.
    Legacy,
}

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

impl Keyword for Option<OcspCheck> {
    fn parse(text: &str) -> Option<Self> {
        lookup(
            &[
                ("off", None),
                ("on", Some(OcspCheck::Chain)),
                ("leaf", Some(OcspCheck::Leaf)),
            ],
            text,
        )
    }
    fn refused(text: &str) -> String {
        format!("`{text}` is not an OCSP mode; expected \"off\", \"on\" (every certificate of the chain but the root) or \"leaf\" (the client's own certificate), as nginx's ssl_ocsp")
    }
}

impl Keyword for OcspFailure {
    fn parse(text: &str) -> Option<Self> {
        lookup(
            &[
                ("refuse", OcspFailure::Refuse),
                ("allow", OcspFailure::Allow),
            ],
            text,
        )
    }
    fn refused(text: &str) -> String {
        format!("`{text}` is not an OCSP failure policy; expected \"refuse\" (nginx's behaviour) or \"allow\" (let the client through, with a warning)")
    }
}

impl Keyword for UpstreamProtocol {
    fn parse(text: &str) -> Option<Self> {
        lookup(
            &[
                ("http1", UpstreamProtocol::Http1),
                ("h2", UpstreamProtocol::H2),
            ],
            text,
        )
    }
    fn refused(text: &str) -> String {
        format!("`{text}` is not an upstream protocol; expected \"http1\" or \"h2\"")
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
        let fields: Vec<_> = c.servers[0].identity_headers.fields.clone();
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
    fn access_log_off_is_a_word_beside_the_table_form() {
        let text = "[[listener]]\nlisten = \"127.0.0.1:0\"\naccess_log = \"off\"\n[[listener.location]]\npath = \"/\"\nreturn = 204\n";
        let c = parse_str(text, Path::new("t.toml")).unwrap();
        assert!(c.servers[0].access_log.is_none());
        let text = text.replace("\"off\"", "{ path = \"/tmp/a.log\" }");
        let c = parse_str(&text, Path::new("t.toml")).unwrap();
        assert!(c.servers[0].access_log.is_some());
    }

    #[test]
    fn a_word_of_the_wrong_type_is_a_structural_error() {
        let text = "[runtime]\ndriver = 5\n[[listener]]\nlisten = \"127.0.0.1:0\"\n";
        let err = parse_str(text, Path::new("t.toml")).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].line, Some(2), "{err}");
    }
}
