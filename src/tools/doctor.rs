//! The doctor: what `ringgate check` reports about the configured certificates, keys, CRLs and
//! OCSP responses beyond "it loads", and what `ringgate run` logs about them at start.
//!
//! It reads the configuration file's shape again (file paths, names, depths) and the
//! loaded [`Config`] (CRLs and their policy), so it needs no bookkeeping in the loader; a
//! reload can call [`log_startup`] on the new configuration the same way.

use std::fmt;
use std::path::{Path, PathBuf};

use x509_parser::certificate::X509Certificate;

use crate::config::raw::{RawConfig, RawListener, RawTls, RawUpstream, RawUpstreamTls};
use crate::config::words::Word;
use crate::config::Config;
use crate::upstream::UpstreamProtocol;
use crate::x509::crl::{Crl, ExpiredCrl, Revocation};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Clients will be refused or the key is exposed: `check` exits 2.
    Error,
    /// Works today, needs attention.
    Warn,
    /// For the record (policies in force).
    Info,
}

/// One thing the doctor found.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Severity.
    pub level: Level,
    /// The configuration key (`listener[0].tls.certificates[0].cert`).
    pub key: String,
    /// The file concerned.
    pub file: Option<PathBuf>,
    /// What is wrong and what to do.
    pub message: String,
    /// Also logged when `run` starts.
    pub at_start: bool,
}

/// One certificate of a PEM file under examination, and how findings name it.
struct Examined<'a> {
    /// The configuration key that names the file.
    key: &'a str,
    /// The file.
    path: &'a Path,
    /// The certificate.
    cert: &'a X509Certificate<'a>,
    /// "certificate CN=..." or "certificate #2 (CN=...)".
    which: &'a str,
    /// Its place in the file (0: the leaf).
    index: usize,
}
impl Finding {
    /// The finding without its level: `key: file: message`, for log lines (which carry a
    /// level of their own).
    pub fn text(&self) -> String {
        match &self.file {
            Some(p) => format!("{}: {}: {}", self.key, p.display(), self.message),
            None => format!("{}: {}", self.key, self.message),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
        };
        write!(f, "{level} {}", self.text())
    }
}

/// Own certificates expiring sooner than this are reported.
const CERT_WARN_DAYS: i64 = 30;
/// CRLs and OCSP responses expiring sooner than this are reported.
const CRL_WARN_DAYS: i64 = 7;
const DAY: i64 = 86_400;

struct Doctor {
    base: PathBuf,
    now: i64,
    /// `runtime.allow_insecure_key_permissions`.
    allow_insecure_keys: bool,
    out: Vec<Finding>,
    /// CAs a CRL fetched by URL answered for (issuer name, signing key).
    covered: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a certificate file is for, which decides the checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A listener's own certificate chain (leaf first).
    Server,
    /// ringgate's client certificate towards an upstream.
    UpstreamClient,
    /// CAs that verify peers.
    Ca,
}

impl Doctor {
    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn push(
        &mut self,
        level: Level,
        key: &str,
        file: Option<&Path>,
        message: String,
        at_start: bool,
    ) {
        self.out.push(Finding {
            level,
            key: key.to_string(),
            file: file.map(Path::to_path_buf),
            message,
            at_start,
        });
    }

    /// The key-permission rule ([`crate::x509::pem::key_access`]), worded as the loader
    /// words it: a note, a warning when served only because of
    /// `runtime.allow_insecure_key_permissions`, or the loader's refusal.
    fn key_permissions(&mut self, key: &str, path: &Path) {
        use crate::x509::pem::KeyVerdict;
        let Ok(verdict) = crate::x509::pem::inspect_key(path, self.allow_insecure_keys) else {
            return;
        };
        match verdict {
            KeyVerdict::Accepted => {}
            KeyVerdict::Noted(note) => self.push(Level::Info, key, Some(path), note, false),
            KeyVerdict::Insecure(warning) => {
                self.push(Level::Warn, key, Some(path), warning, true);
            }
            KeyVerdict::Refused(e) => self.push(Level::Error, key, None, e.to_string(), true),
        }
    }

    /// Whether a certificate is within its validity, and not close to its end.
    fn validity(
        &mut self,
        key: &str,
        path: &Path,
        c: &X509Certificate<'_>,
        which: &str,
        role: Role,
    ) {
        let not_after = c.validity().not_after.timestamp();
        let not_before = c.validity().not_before.timestamp();
        let renew = match role {
            Role::Ca => "replace the CA certificate (ringgate ca init, or openssl req -x509)",
            _ => "renew it (ringgate ca issue, or openssl x509 -req)",
        };
        if not_after < self.now {
            self.push(
                Level::Error,
                key,
                Some(path),
                format!(
                    "{which} expired at {}: peers refuse it (certificate has expired); {renew}",
                    crate::clock::iso8601(not_after)
                ),
                true,
            );
        } else if not_before > self.now {
            self.push(
            Level::Error,
            key,
            Some(path),
            format!("{which} is not valid before {}: peers refuse it (certificate is not yet valid); check the clock", crate::clock::iso8601(not_before)),
            true,
        );
        } else if not_after - self.now <= CERT_WARN_DAYS * DAY {
            self.push(
                Level::Warn,
                key,
                Some(path),
                format!(
                    "{which} expires in {} days ({}); {renew}",
                    (not_after - self.now) / DAY,
                    crate::clock::iso8601(not_after)
                ),
                role != Role::Ca,
            );
        }
    }

    /// Expiry, version, and usage checks for every certificate in a PEM file.
    fn certificates(&mut self, key: &str, path: &Path, role: Role, names: &[String]) {
        let Ok(ders) = crate::x509::pem::load_certs(path) else {
            return;
        };
        for (i, der) in ders.iter().enumerate() {
            let Ok((_, c)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
                continue;
            };
            let subject = crate::x509::identity::rfc2253(c.subject());
            let which = if ders.len() > 1 {
                format!("certificate #{i} ({subject})")
            } else {
                format!("certificate {subject}")
            };
            self.validity(key, path, &c, &which, role);
            let self_signed = c.subject().as_raw() == c.issuer().as_raw();
            if c.version().0 == 0 && !(role == Role::Ca && self_signed) {
                self.push(
                    Level::Warn,
                    key,
                    Some(path),
                    format!("{which} is X.509 v1 (no extensions, as `openssl x509 -req` without -extfile makes it): nginx/OpenSSL accept it and so does ringgate, but browsers, rustls and Go clients refuse v1 certificates; reissue it as v3 (ringgate ca issue)"),
                    false,
                );
            }
            if i == 0 || role == Role::Ca {
                let at = Examined {
                    key,
                    path,
                    cert: &c,
                    which: &which,
                    index: i,
                };
                self.usage(&at, role, names);
            }
        }
    }

    /// Whether the certificate's key usages suit the role it is configured for.
    fn usage(&mut self, at: &Examined<'_>, role: Role, names: &[String]) {
        let (key, path, c, which, index) = (at.key, at.path, at.cert, at.which, at.index);
        let eku = c
            .extended_key_usage()
            .ok()
            .flatten()
            .map(|e| e.value.clone());
        let ku = c.key_usage().ok().flatten().map(|k| k.value);
        match role {
            Role::Server if index == 0 => {
                if eku.as_ref().is_some_and(|e| !e.server_auth && !e.any) {
                    self.push(Level::Error, key, Some(path), format!("{which} has an extendedKeyUsage without serverAuth: clients refuse it as a server certificate (unsuitable certificate purpose); reissue it with `ringgate ca issue server`"), true);
                }
                if ku.is_some_and(|k| !k.digital_signature() && !k.key_encipherment()) {
                    self.push(Level::Error, key, Some(path), format!("{which} has a keyUsage without digitalSignature: it cannot sign TLS handshakes; reissue it"), true);
                }
                self.server_names(at, names);
            }
            Role::UpstreamClient
                if index == 0 && eku.as_ref().is_some_and(|e| !e.client_auth && !e.any) =>
            {
                self.push(Level::Error, key, Some(path), format!("{which} has an extendedKeyUsage without clientAuth: upstreams refuse it as a client certificate; reissue it with `ringgate ca issue client`"), true);
            }
            Role::Ca => {
                let bc = c.basic_constraints().ok().flatten().map(|b| b.value.ca);
                if bc == Some(false) {
                    self.push(Level::Error, key, Some(path), format!("{which} is not a CA (basicConstraints CA:FALSE): nothing it signs verifies (invalid CA certificate)"), false);
                } else if ku.is_some_and(|k| !k.key_cert_sign()) {
                    self.push(Level::Error, key, Some(path), format!("{which} is a CA whose keyUsage lacks keyCertSign: OpenSSL and ringgate refuse the certificates it signed (invalid CA certificate); reissue the CA with keyUsage keyCertSign, cRLSign"), false);
                }
            }
            _ => {}
        }
    }

    /// Whether a server certificate's SANs name every configured server name.
    fn server_names(&mut self, at: &Examined<'_>, names: &[String]) {
        use x509_parser::extensions::GeneralName;
        let (key, path, c, which) = (at.key, at.path, at.cert, at.which);
        let san = c.subject_alternative_name().ok().flatten();
        let Some(san) = san else {
            self.push(Level::Warn, key, Some(path), format!("{which} has no subjectAltName: browsers, curl and rustls match the host name only against SANs (OpenSSL clients fall back to the CN); reissue it with the names in SANs (ringgate ca issue server --san DNS:name)"), false);
            return;
        };
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for gn in &san.value.general_names {
            match gn {
                GeneralName::DNSName(d) => dns.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                _ => {}
            }
        }
        for n in names {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            // Regex and suffix-wildcard server names have no single host to check.
            if n.starts_with('~') || n.ends_with(".*") || n.is_empty() || n == "_" {
                continue;
            }
            let host = n.strip_prefix('.').unwrap_or(&n).to_string();
            let covered = if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                let b = match ip {
                    std::net::IpAddr::V4(v) => v.octets().to_vec(),
                    std::net::IpAddr::V6(v) => v.octets().to_vec(),
                };
                ips.contains(&b)
            } else {
                dns.iter().any(|d| d == &host || wildcard_covers(d, &host))
            };
            if !covered {
                self.push(Level::Warn, key, Some(path), format!("{which} does not name server name `{host}` in its subjectAltName (it names {}): clients asking for `{host}` refuse it; reissue it with --san DNS:{host}", if dns.is_empty() { "no DNS name".to_string() } else { dns.join(", ") }), false);
            }
        }
    }

    /// CA bundle checks, and the chain lengths of its CAs against verify_depth.
    fn ca_bundle(&mut self, key: &str, path: &Path, depth: Option<u32>) {
        self.certificates(key, path, Role::Ca, &[]);
        let Some(depth) = depth else { return };
        let Ok(ders) = crate::x509::pem::load_certs(path) else {
            return;
        };
        let parsed: Vec<X509Certificate<'_>> = ders
            .iter()
            .filter_map(|d| {
                x509_parser::parse_x509_certificate(d.as_ref())
                    .ok()
                    .map(|(_, c)| c)
            })
            .collect();
        for c in &parsed {
            // Walk up by issuer name within the bundle to a self-signed root.
            let mut n = 0usize;
            let mut cur = c;
            while cur.subject().as_raw() != cur.issuer().as_raw() && n < 16 {
                match parsed
                    .iter()
                    .find(|p| p.subject().as_raw() == cur.issuer().as_raw())
                {
                    Some(up) => {
                        n += 1;
                        cur = up;
                    }
                    None => break,
                }
            }
            // A leaf under `c` has n intermediates (c and those above it, the root excluded).
            if n as u32 > depth {
                self.push(
                    Level::Warn,
                    key,
                    Some(path),
                    format!(
                        "clients issued by {} need verify_depth >= {n} ({n} intermediate CA{} up to the root), but verify_depth = {depth}: they are refused (certificate chain too long)",
                        crate::x509::identity::rfc2253(c.subject()),
                        if n == 1 { "" } else { "s" }
                    ),
                    false,
                );
            }
        }
    }

    fn revocation(
        &mut self,
        key: &str,
        listener: &str,
        rev: &Revocation,
        cas: &[(String, PathBuf)],
    ) {
        self.revocation_summary(key, listener, rev);
        for c in rev.crls() {
            self.crl_expiry(key, c, rev.policy.expired);
        }
        if rev.policy.require_all {
            self.uncovered_cas(rev, cas);
        }
    }

    /// What the listener checks revocation against, and how strictly.
    fn revocation_summary(&mut self, key: &str, listener: &str, rev: &Revocation) {
        let p = rev.policy;
        let expired = match p.expired {
            ExpiredCrl::Refuse => {
                "refuse (as nginx: \"CRL has expired\" refuses every client whose chain needs it)"
                    .to_string()
            }
            ExpiredCrl::Grace(g) => format!("grace {}h past nextUpdate, with a warning", g / 3600),
        };
        let list: Vec<String> = rev
            .crls()
            .iter()
            .map(|c| {
                format!(
                    "{} ({} revoked, next update {})",
                    c.issuer,
                    c.revoked_count(),
                    c.next_update.map_or("never".into(), crate::clock::iso8601)
                )
            })
            .collect();
        self.push(
            Level::Info,
            &format!("{key}.tls.crl"),
            None,
            format!(
                "listener `{listener}`: revocation checked against {} CRL{}: {}; crl_require_all = {} ({}); crl_expired = {expired}",
                list.len(),
                if list.len() == 1 { "" } else { "s" },
                list.join("; "),
                p.require_all,
                if p.require_all { "every CA in a client's chain, the root included, must have a CRL, as nginx" } else { "CAs without a CRL are not checked" },
            ),
            true,
        );
    }

    /// A CRL past its next update (an error, or a warning within the grace), or close to it.
    fn crl_expiry(&mut self, key: &str, c: &Crl, expired: ExpiredCrl) {
        let file = PathBuf::from(&c.source);
        let Some(next) = c.next_update else { return };
        if next < self.now {
            let (level, what) = match expired {
                ExpiredCrl::Grace(g) if self.now <= next + g => (
                    Level::Warn,
                    format!(
                        "accepted within the crl_expired grace until {}",
                        crate::clock::iso8601(next + g)
                    ),
                ),
                _ => (
                    Level::Error,
                    "every client whose chain needs it is refused (CRL has expired)".to_string(),
                ),
            };
            self.push(level, &format!("{key}.tls.crl"), Some(&file), format!("the CRL of {} expired at {}: {what}; publish a new one (openssl ca -gencrl, ringgate ca crl)", c.issuer, crate::clock::iso8601(next)), true);
        } else if next - self.now < CRL_WARN_DAYS * DAY {
            self.push(
                Level::Warn,
                &format!("{key}.tls.crl"),
                Some(&file),
                format!(
                    "the CRL of {} expires in {} hours ({}); publish a new one before then",
                    c.issuer,
                    (next - self.now) / 3600,
                    crate::clock::iso8601(next)
                ),
                true,
            );
        }
    }

    /// With crl_require_all, every CA in the bundles `cas` needs a CRL.
    fn uncovered_cas(&mut self, rev: &Revocation, cas: &[(String, PathBuf)]) {
        for (bundle_key, path) in cas {
            let Ok(ders) = crate::x509::pem::load_certs(path) else {
                continue;
            };
            for d in ders {
                let Ok((_, c)) = x509_parser::parse_x509_certificate(d.as_ref()) else {
                    continue;
                };
                let (name, key) = (c.subject().as_raw(), c.public_key().raw);
                let fetched = self.covered.iter().any(|(n, k)| n == name && k == key);
                if !rev.covers(name, key) && !fetched {
                    self.push(Level::Error, bundle_key, Some(path), format!("CA {} has no CRL while crl_require_all = true: every client whose chain includes it is refused (unable to get certificate CRL); add its CRL to crl or set crl_require_all = false", crate::x509::identity::rfc2253(c.subject())), true);
                }
            }
        }
    }

    fn ocsp(&mut self, key: &str, path: &Path, chain_path: &Path) {
        let Ok(chain) = crate::x509::pem::load_certs(chain_path) else {
            return;
        };
        let Ok(staple) = crate::x509::ocsp::load_staple(path, &chain) else {
            return;
        };
        if let Some(next) = staple.next_update {
            if next - self.now < CRL_WARN_DAYS * DAY {
                self.push(Level::Warn, key, Some(path), format!("the stapled OCSP response expires at {}; fetch a fresh one (openssl ocsp ... -respout) and reload", crate::clock::iso8601(next)), true);
            }
        }
        if !staple.signature_checked {
            self.push(Level::Info, key, Some(path), "the OCSP response's signature was not checked: the certificate file does not hold the issuer after the leaf".into(), false);
        }
    }
}

/// Whether a SAN `*.example.com` covers `host` (one label, as RFC 6125).
fn wildcard_covers(pattern: &str, host: &str) -> bool {
    match (pattern.strip_prefix("*."), host.split_once('.')) {
        (Some(suffix), Some((_, rest))) => rest == suffix,
        _ => false,
    }
}

/// Everything the doctor finds in a loaded configuration, most serious first.
pub fn examine(cfg: &Config) -> Vec<Finding> {
    examine_covered(cfg, &[])
}

/// [`examine`], counting the CAs in `covered` (issuer name, signing key) as having a CRL: the
/// ones a CRL fetched by URL answered for.
fn examine_covered(cfg: &Config, covered: &[(Vec<u8>, Vec<u8>)]) -> Vec<Finding> {
    let mut d = Doctor {
        base: cfg.path.parent().map(Path::to_path_buf).unwrap_or_default(),
        now: crate::clock::unix_now(),
        allow_insecure_keys: cfg.runtime.allow_insecure_key_permissions,
        out: Vec::new(),
        covered: covered.to_vec(),
    };
    let Ok(text) = crate::files::read_to_string(&cfg.path) else {
        return d.out;
    };
    let Ok(raw) = toml::from_str::<RawConfig>(&text) else {
        return d.out;
    };
    for (i, l) in raw.listener.iter().enumerate() {
        let Some(t) = &l.tls else { continue };
        let rev = cfg
            .servers
            .get(i)
            .and_then(|l| l.tls.as_ref())
            .and_then(|t| t.client_auth().revocation().cloned());
        d.listener_tls(i, l, t, rev.as_deref());
    }
    for (i, u) in raw.upstream.iter().enumerate() {
        let Some(t) = &u.tls else { continue };
        d.upstream_tls(i, u.name.get_ref(), t.get_ref());
        d.upstream_tls_pool(i, u);
    }
    d.out.sort_by_key(|f| f.level);
    d.out
}

impl Doctor {
    /// Listener `i`'s certificates, keys, stapled OCSP responses, CA bundles and CRLs.
    fn listener_tls(&mut self, i: usize, l: &RawListener, t: &RawTls, rev: Option<&Revocation>) {
        let key = format!("listener[{i}]");
        let name = l
            .name
            .as_ref()
            .map_or_else(|| format!("listener{i}"), |n| n.get_ref().clone());
        let listener_names: Vec<String> =
            l.server_names.iter().map(|n| n.get_ref().clone()).collect();
        for (j, c) in t.certificates.get_ref().iter().enumerate() {
            let ck = format!("{key}.tls.certificates[{j}]");
            let cert = self.path(c.cert.get_ref());
            let names: Vec<String> = if c.server_names.is_empty() {
                listener_names.clone()
            } else {
                c.server_names.iter().map(|n| n.get_ref().clone()).collect()
            };
            self.certificates(&format!("{ck}.cert"), &cert, Role::Server, &names);
            let k = self.path(c.key.get_ref());
            self.key_permissions(&format!("{ck}.key"), &k);
            if let Some(o) = &c.ocsp {
                let o = self.path(o.get_ref());
                self.ocsp(&format!("{ck}.ocsp"), &o, &cert);
            }
        }
        let depth = Some(t.verify_depth.as_ref().map_or(1, |v| *v.get_ref()));
        let mut cas = Vec::new();
        if let Some(ca) = &t.client_certificate {
            let p = self.path(ca.get_ref());
            self.ca_bundle(&format!("{key}.tls.client_certificate"), &p, depth);
            cas.push((format!("{key}.tls.client_certificate"), p));
        }
        if let Some(ca) = &t.trusted_certificate {
            let p = self.path(ca.get_ref());
            self.ca_bundle(&format!("{key}.tls.trusted_certificate"), &p, depth);
            cas.push((format!("{key}.tls.trusted_certificate"), p));
        }
        if let Some(rev) = rev {
            self.revocation(&key, &name, rev, &cas);
        }
    }

    /// A TLS upstream without a pool (`keepalive = 0`, what an nginx `upstream` block without
    /// `keepalive` imports as): said, because it costs a TLS handshake to the upstream per
    /// request, roughly ten times a pooled request's CPU (bench/README.md, `up-mtls-close`).
    fn upstream_tls_pool(&mut self, i: usize, u: &RawUpstream) {
        let unpooled = u.keepalive.as_ref().is_some_and(|k| *k.get_ref() == 0);
        let http1 = u
            .protocol
            .as_ref()
            .is_none_or(|p| matches!(p.get_ref(), Word::Known(UpstreamProtocol::Http1)));
        if unpooled && http1 {
            let name = u.name.get_ref();
            self.push(Level::Info, &format!("upstream[{i}].keepalive"), None, format!("upstream `{name}`: TLS with keepalive = 0: every request opens a connection and makes a TLS handshake to the upstream (resumed where it can), as nginx does without `keepalive`; `keepalive = 32` keeps a pool of open connections"), false);
        }
    }

    /// Upstream `i`'s client certificate, key and trusted CAs, and whether it is verified.
    fn upstream_tls(&mut self, i: usize, name: &str, t: &RawUpstreamTls) {
        let key = format!("upstream[{i}].tls");
        if let Some(c) = &t.certificate {
            let p = self.path(c.get_ref());
            self.certificates(&format!("{key}.certificate"), &p, Role::UpstreamClient, &[]);
        }
        if let Some(k) = &t.key {
            let p = self.path(k.get_ref());
            self.key_permissions(&format!("{key}.key"), &p);
        }
        if let Some(ca) = &t.trusted_certificate {
            let p = self.path(ca.get_ref());
            self.ca_bundle(&format!("{key}.trusted_certificate"), &p, None);
        }
        if t.verify.as_ref().is_some_and(|v| !*v.get_ref()) {
            self.push(Level::Warn, &format!("{key}.verify"), None, format!("upstream `{name}`: verify = false: the upstream's certificate is NOT verified; anyone on the path to it can impersonate it"), false);
        }
    }
}

/// `ringgate check`'s report: every CRL and OCSP URL asked once (whether it answered), then
/// every finding on stdout and a summary line. Returns whether any finding is an error (exit
/// 2).
pub fn print_report(cfg: &Config) -> bool {
    let probed = super::probe::probe(cfg);
    let mut findings = examine_covered(cfg, &probed.covered);
    findings.extend(probed.findings.into_iter().map(|r| Finding {
        level: match r.level {
            super::probe::Level::Error => Level::Error,
            super::probe::Level::Warn => Level::Warn,
            super::probe::Level::Info => Level::Info,
        },
        key: r.key,
        file: None,
        message: r.message,
        at_start: false,
    }));
    findings.sort_by_key(|f| f.level);
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    let warnings = findings.iter().filter(|f| f.level == Level::Warn).count();
    for f in &findings {
        println!("{f}");
    }
    println!(
        "doctor: {errors} error{}, {warnings} warning{}",
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    );
    errors > 0
}

/// Logs, when `run` starts (or a reload takes effect), the findings that concern the running
/// proxy: its own certificates near or past expiry, revocation policies, CRLs near or past
/// expiry, CAs without CRLs, keys served with loose permissions, stale OCSP responses.
pub fn log_startup(cfg: &Config) {
    for f in examine(cfg).into_iter().filter(|f| f.at_start) {
        match f.level {
            Level::Error | Level::Warn => log::warn!("{}", f.text()),
            Level::Info => log::info!("{}", f.text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(wildcard_covers("*.example.com", "a.example.com"));
        assert!(!wildcard_covers("*.example.com", "a.b.example.com"));
        assert!(!wildcard_covers("*.example.com", "example.com"));
        assert!(!wildcard_covers("a.example.com", "a.example.com"));
    }

    #[test]
    fn findings_print_level_key_file_and_advice() {
        let f = Finding {
            level: Level::Error,
            key: "listener[0].tls.crl".into(),
            file: Some(PathBuf::from("/x/ca.crl")),
            message: "m".into(),
            at_start: true,
        };
        assert_eq!(f.to_string(), "ERROR listener[0].tls.crl: /x/ca.crl: m");
    }

    #[test]
    fn key_findings_follow_the_loaders_rule_and_words() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let key = |name: &str, mode: u32| {
            let p = dir.path().join(name);
            std::fs::write(&p, "x").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let (private, shared, open) = (
            key("a.key", 0o600),
            key("b.key", 0o440),
            key("c.key", 0o644),
        );
        let root = std::fs::metadata(&shared).unwrap().uid() == 0;
        for allow in [false, true] {
            let mut d = Doctor {
                base: dir.path().to_path_buf(),
                now: 0,
                allow_insecure_keys: allow,
                out: Vec::new(),
                covered: Vec::new(),
            };
            d.key_permissions("k", &private);
            assert!(d.out.is_empty(), "{:?}", d.out);
            d.key_permissions("k", &shared);
            let f = d.out.pop().unwrap();
            if root {
                // Root reads a root-owned 0440 key as its owner: served, with a note only.
                assert_eq!((f.level, f.at_start), (Level::Info, false));
                assert_eq!(f.message, format!("private key readable by its group (gid 0, mode 440, owned by root): allowed, as for a Kubernetes secret volume with fsGroup; ringgate (uid 0) does not read it through that group, so `chmod g-r {}` would keep it from the group's other members", shared.display()));
            } else {
                assert_eq!(f.level, if allow { Level::Warn } else { Level::Error });
            }
            d.key_permissions("k", &open);
            let f = d.out.pop().unwrap();
            let advice = format!("run `chmod 600 {p}`, or, for a key its group must read, make it owned by root with mode 0640 or 0440 (Kubernetes: fsGroup and defaultMode: 0440 on the secret volume)", p = open.display());
            if allow {
                assert_eq!((f.level, f.at_start), (Level::Warn, true));
                assert_eq!(f.message, format!("private key readable by group or others (mode 644), served only because runtime.allow_insecure_key_permissions = true; {advice}"));
            } else {
                assert_eq!(f.level, Level::Error);
                assert_eq!(f.message, format!("{p} is readable by group or others (mode 644); {advice}; or set runtime.allow_insecure_key_permissions = true to serve it anyway", p = open.display()));
            }
            assert!(d.out.is_empty(), "{:?}", d.out);
        }
    }
}
