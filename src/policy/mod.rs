//! Who may do what: roles from certificate fields and certificate + source-address bindings
//! (`[identity]`), decided once per connection from the parsed [`Identity`].
//!
//! Roles match *parsed attributes*, never a regex over the DN string, so `OU=Admin` cannot be
//! claimed by a certificate with `OU=AdminTest` or with `CN=OU=Admin`.

pub mod cidr;

use std::net::IpAddr;
use std::sync::Arc;

use regex::Regex;

use crate::x509::identity::{DnAttr, Identity};
pub use cidr::Cidr;

/// A certificate field a role rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Subject commonName (any of them).
    Cn,
    /// Subject organizationalUnitName (any of them).
    Ou,
    /// Subject organizationName (any of them).
    O,
    /// A DNS subjectAltName.
    Dns,
    /// A URI subjectAltName.
    Uri,
    /// An email subjectAltName.
    Email,
    /// The SPIFFE ID (the `spiffe://` URI SAN).
    SpiffeId,
}

impl Field {
    /// The config key naming the field.
    pub fn key(self) -> &'static str {
        match self {
            Field::Cn => "cn",
            Field::Ou => "ou",
            Field::O => "o",
            Field::Dns => "dns",
            Field::Uri => "uri",
            Field::Email => "email",
            Field::SpiffeId => "spiffe_id",
        }
    }

    fn values<'a>(self, id: &'a Identity) -> Box<dyn Iterator<Item = &'a str> + 'a> {
        match self {
            Field::Cn => Box::new(id.attr(DnAttr::Cn)),
            Field::Ou => Box::new(id.attr(DnAttr::Ou)),
            Field::O => Box::new(id.attr(DnAttr::O)),
            Field::Dns => Box::new(id.dns.iter().map(String::as_str)),
            Field::Uri => Box::new(id.uris.iter().map(String::as_str)),
            Field::Email => Box::new(id.emails.iter().map(String::as_str)),
            Field::SpiffeId => Box::new(id.spiffe_id.as_deref().into_iter()),
        }
    }
}

/// How a field's value is compared.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// The whole value, byte for byte.
    Exact(String),
    /// The value starts with this.
    Prefix(String),
    /// The whole value matches (the regex is anchored at load time).
    Regex(Regex),
}

impl Matcher {
    /// A whole-value regex: `^(?:pattern)$`.
    pub fn regex(pattern: &str) -> Result<Matcher, regex::Error> {
        Regex::new(&format!("^(?:{pattern})$")).map(Matcher::Regex)
    }

    fn matches(&self, v: &str) -> bool {
        match self {
            Matcher::Exact(e) => v == e,
            Matcher::Prefix(p) => v.starts_with(p.as_str()),
            Matcher::Regex(r) => r.is_match(v),
        }
    }
}

/// `{ role = "admin", ou = "Admin" }`.
#[derive(Debug, Clone)]
pub struct RoleRule {
    /// The role given.
    pub role: Arc<str>,
    /// The field looked at.
    pub field: Field,
    /// How it is compared.
    pub matcher: Matcher,
}

/// Which certificate a binding is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingKey {
    /// Any subject CN equal to this.
    Cn(String),
    /// SHA-1 or SHA-256 fingerprint, lowercase hex without colons.
    Fingerprint(String),
    /// Serial number, uppercase hex without colons or leading zeros.
    Serial(String),
}

impl BindingKey {
    /// A fingerprint as users paste it (`AB:CD:...` or `abcd...`), SHA-1 or SHA-256.
    pub fn fingerprint(text: &str) -> Result<BindingKey, String> {
        let hex: String = text
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        if !(hex.len() == 40 || hex.len() == 64) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`{text}` is not a SHA-1 (40 hex digits) or SHA-256 (64 hex digits) fingerprint"
            ));
        }
        Ok(BindingKey::Fingerprint(hex))
    }

    /// A serial as `openssl x509 -serial` prints it (`1000`, `0A:1B`, ...).
    pub fn serial(text: &str) -> Result<BindingKey, String> {
        let hex = normalize_serial(text);
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{text}` is not a hexadecimal serial number"));
        }
        Ok(BindingKey::Serial(hex))
    }

    fn matches(&self, id: &Identity) -> bool {
        match self {
            BindingKey::Cn(cn) => id.attr(DnAttr::Cn).any(|v| v == cn),
            BindingKey::Fingerprint(f) => *f == id.fingerprint_sha1 || *f == id.fingerprint_sha256,
            BindingKey::Serial(s) => *s == normalize_serial(&id.serial),
        }
    }
}

fn normalize_serial(text: &str) -> String {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_uppercase();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() && !hex.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// A certificate bound to source addresses.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Which certificate.
    pub key: BindingKey,
    /// Where it may connect from.
    pub from: Vec<Cidr>,
}

/// What the bindings say about a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingCheck {
    /// No binding names this certificate.
    Unbound,
    /// A binding names it and the address is allowed.
    Allowed,
    /// Bound elsewhere: the allowed blocks, for the log line.
    Denied(String),
}

/// `[identity]`, resolved.
#[derive(Debug, Clone, Default)]
pub struct IdentityPolicy {
    /// The role of a verified certificate no rule matched (None: no role).
    pub default_role: Option<Arc<str>>,
    /// Rules in order; the first that matches gives the role.
    pub roles: Vec<RoleRule>,
    /// Certificate + address bindings.
    pub bindings: Vec<Binding>,
}

impl IdentityPolicy {
    /// The role of a *verified* certificate (callers never ask for an unverified one).
    pub fn role_for(&self, id: &Identity) -> Option<Arc<str>> {
        self.roles
            .iter()
            .find(|r| r.field.values(id).any(|v| r.matcher.matches(v)))
            .map(|r| r.role.clone())
            .or_else(|| self.default_role.clone())
    }

    /// Whether `peer` may present `id`: every binding naming the certificate adds its
    /// addresses; naming it and none containing `peer` is a denial.
    pub fn check_binding(&self, id: &Identity, peer: IpAddr) -> BindingCheck {
        let mut bound = false;
        for b in self.bindings.iter().filter(|b| b.key.matches(id)) {
            bound = true;
            if b.from.iter().any(|c| c.contains(peer)) {
                return BindingCheck::Allowed;
            }
        }
        if !bound {
            return BindingCheck::Unbound;
        }
        let allowed: Vec<String> = self
            .bindings
            .iter()
            .filter(|b| b.key.matches(id))
            .flat_map(|b| b.from.iter().map(Cidr::to_string))
            .collect();
        BindingCheck::Denied(allowed.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(cn: &str, ous: &[&str]) -> Identity {
        Identity {
            attributes: std::iter::once((DnAttr::Cn, cn.to_string()))
                .chain(ous.iter().map(|o| (DnAttr::Ou, o.to_string())))
                .collect(),
            serial: "1000".into(),
            fingerprint_sha1: "aa".repeat(20),
            fingerprint_sha256: "bb".repeat(32),
            ..Identity::default()
        }
    }

    fn rule(role: &str, field: Field, m: Matcher) -> RoleRule {
        RoleRule {
            role: role.into(),
            field,
            matcher: m,
        }
    }

    #[test]
    fn roles_match_parsed_attributes_first_rule_wins() {
        let p = IdentityPolicy {
            default_role: Some("none".into()),
            roles: vec![
                rule("admin", Field::Ou, Matcher::Exact("Admin".into())),
                rule("client", Field::Ou, Matcher::Exact("Client".into())),
                rule("svc", Field::Cn, Matcher::regex("svc-[a-z]+").unwrap()),
                rule("any-ops", Field::Ou, Matcher::Prefix("Ops".into())),
            ],
            bindings: vec![],
        };
        let role = |cn, ous: &[&str]| p.role_for(&id(cn, ous)).map(|r| r.to_string());
        assert_eq!(role("a", &["Admin"]).as_deref(), Some("admin"));
        assert_eq!(role("a", &["AdminTest"]).as_deref(), Some("none"));
        assert_eq!(role("OU=Admin", &[]).as_deref(), Some("none"));
        assert_eq!(role("a", &["Client", "Admin"]).as_deref(), Some("admin"));
        assert_eq!(role("svc-web", &[]).as_deref(), Some("svc"));
        assert_eq!(role("svc-web2", &[]).as_deref(), Some("none"), "anchored");
        assert_eq!(role("x", &["Ops-EU"]).as_deref(), Some("any-ops"));
        let none = IdentityPolicy::default();
        assert_eq!(none.role_for(&id("a", &["Admin"])), None);
    }

    #[test]
    fn bindings_by_cn_fingerprint_serial() {
        let p = IdentityPolicy {
            bindings: vec![
                Binding {
                    key: BindingKey::Cn("client1".into()),
                    from: vec![Cidr::parse("127.0.0.1").unwrap()],
                },
                Binding {
                    key: BindingKey::fingerprint(&format!("{}aa", "AA:".repeat(19))).unwrap(),
                    from: vec![Cidr::parse("10.0.0.0/8").unwrap()],
                },
                Binding {
                    key: BindingKey::serial("00:10:00").unwrap(),
                    from: vec![Cidr::parse("192.168.0.0/16").unwrap()],
                },
            ],
            ..IdentityPolicy::default()
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let c1 = id("client1", &[]);
        assert_eq!(p.check_binding(&c1, ip("127.0.0.1")), BindingCheck::Allowed);
        assert_eq!(p.check_binding(&c1, ip("10.1.1.1")), BindingCheck::Allowed);
        assert_eq!(
            p.check_binding(&c1, ip("192.168.1.1")),
            BindingCheck::Allowed
        );
        assert_eq!(
            p.check_binding(&c1, ip("127.0.0.2")),
            BindingCheck::Denied("127.0.0.1, 10.0.0.0/8, 192.168.0.0/16".into())
        );
        let mut other = id("client2", &[]);
        other.serial = "2000".into();
        other.fingerprint_sha1 = "cc".repeat(20);
        assert_eq!(
            p.check_binding(&other, ip("8.8.8.8")),
            BindingCheck::Unbound
        );
        assert!(BindingKey::fingerprint("xyz").is_err());
        assert!(BindingKey::serial("zz").is_err());
    }
}
