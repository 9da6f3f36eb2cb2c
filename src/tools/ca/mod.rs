//! `ringgate ca`: a small certificate authority in an `openssl ca` directory, so that the
//! enterprise mTLS guide's CA layout (index.txt, serial, crlnumber, certs/, crl/, newcerts/, private/) can be
//! driven by `ringgate ca` and `openssl ca` in turn.
//!
//! Every certificate is X.509 v3 with basicConstraints, keyUsage, extendedKeyUsage
//! (serverAuth or clientAuth), subject and authority key identifiers, signed by the CA's key;
//! every issuance and revocation is recorded in `index.txt`, `serial` and `newcerts/` exactly
//! as `openssl ca` records them. Private keys are written with mode 0600 and never printed.

pub mod cli;
pub mod index;
pub mod p12;

use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use time::OffsetDateTime;

use index::Entry;

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file that would be overwritten already exists.
    #[error("{path} already exists; refusing to overwrite it")]
    Exists {
        /// The file.
        path: String,
    },
    /// The directory is not a usable CA.
    #[error("{dir} is not a CA directory: {detail}")]
    NotACa {
        /// The directory.
        dir: String,
        /// What is missing or wrong.
        detail: String,
    },
    /// `index.txt` has a line that is not an openssl database entry.
    #[error("{path}:{line}: not an `openssl ca` database line (6 tab-separated fields)")]
    Database {
        /// The index file.
        path: String,
        /// 1-based line.
        line: usize,
    },
    /// `serial` or `crlnumber` does not hold a hex number.
    #[error("{path}: expected a hex number, as `echo 1000 > {path}` writes")]
    Counter {
        /// The file.
        path: String,
    },
    /// A certificate file is unusable.
    #[error("{path}: {detail}")]
    Certificate {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// Certificate generation failed.
    #[error("cannot make the certificate: {0}")]
    Generate(String),
    /// A command-line value is invalid.
    #[error("{0}")]
    Invalid(String),
    /// No certificate with that serial in index.txt.
    #[error("no certificate with serial {0} in index.txt")]
    UnknownSerial(String),
    /// The certificate is already revoked.
    #[error("certificate {serial} is already revoked ({when})")]
    AlreadyRevoked {
        /// Its serial.
        serial: String,
        /// The recorded revocation.
        when: String,
    },
    /// openssl's `unique_subject = yes` forbids a second valid certificate with the subject.
    #[error("a valid certificate for {0} exists (serial {1}) and index.txt.attr says unique_subject = yes; revoke it first or set unique_subject = no")]
    DuplicateSubject(String, String),
    /// The PKCS#12 file could not be built.
    #[error("{0}")]
    P12(#[from] p12::P12Error),
}

impl CaError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        CaError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Key algorithms for the CA and the certificates it issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (the default: small, fast, accepted everywhere).
    P256,
    /// ECDSA on P-384 with SHA-384.
    P384,
    /// Ed25519 (not accepted by every browser for TLS).
    Ed25519,
    /// RSA 2048 bits, SHA-256.
    Rsa2048,
    /// RSA 4096 bits, SHA-256.
    Rsa4096,
}

impl KeyType {
    fn generate(self) -> Result<KeyPair, CaError> {
        let r = match self {
            KeyType::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
            KeyType::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
            KeyType::Rsa4096 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
            }
        };
        r.map_err(|e| CaError::Generate(e.to_string()))
    }

    fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa4096)
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A TLS server (serverAuth).
    Server,
    /// A TLS client (clientAuth).
    Client,
}

/// The subject attributes ringgate writes, in OpenSSL's usual order.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// C.
    pub country: Option<String>,
    /// ST.
    pub state: Option<String>,
    /// L.
    pub locality: Option<String>,
    /// O.
    pub org: Option<String>,
    /// OU (the field roles are read from).
    pub ou: Option<String>,
    /// CN.
    pub cn: String,
}

impl Subject {
    fn to_dn(&self) -> Result<DistinguishedName, CaError> {
        let mut dn = DistinguishedName::new();
        if let Some(c) = &self.country {
            let p = PrintableString::try_from(c.as_str())
                .ok()
                .filter(|_| c.len() == 2)
                .ok_or_else(|| {
                    CaError::Invalid(format!("country `{c}` is not a two-letter code"))
                })?;
            dn.push(DnType::CountryName, DnValue::PrintableString(p));
        }
        let mut push = |t: DnType, v: &Option<String>| {
            if let Some(v) = v {
                dn.push(t, DnValue::Utf8String(v.clone()));
            }
        };
        push(DnType::StateOrProvinceName, &self.state);
        push(DnType::LocalityName, &self.locality);
        push(DnType::OrganizationName, &self.org);
        push(DnType::OrganizationalUnitName, &self.ou);
        if self.cn.is_empty() {
            return Err(CaError::Invalid("a common name (--cn) is required".into()));
        }
        dn.push(DnType::CommonName, DnValue::Utf8String(self.cn.clone()));
        Ok(dn)
    }
}

/// `ringgate ca init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The CA's subject.
    pub subject: Subject,
    /// Validity in days.
    pub days: u32,
    /// Key algorithm.
    pub key_type: KeyType,
}

/// `ringgate ca issue`.
#[derive(Debug, Clone)]
pub struct IssueOptions {
    /// Server or client.
    pub role: Role,
    /// The subject.
    pub subject: Subject,
    /// subjectAltNames (`DNS:x`, `IP:y`, `URI:z`, `email:w`).
    pub sans: Vec<String>,
    /// Validity in days.
    pub days: u32,
    /// Key algorithm.
    pub key_type: KeyType,
    /// File name stem under certs/ and private/ (default: from the CN).
    pub name: Option<String>,
}

/// What `issue` wrote.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Serial, hex.
    pub serial: String,
    /// The certificate (certs/NAME.crt).
    pub cert: PathBuf,
    /// The private key (private/NAME.key, mode 0600).
    pub key: PathBuf,
    /// The copy openssl keeps (newcerts/SERIAL.pem).
    pub newcert: PathBuf,
    /// Subject, one-line form.
    pub subject: String,
    /// Expiry, Unix seconds.
    pub not_after: i64,
}

fn now() -> i64 {
    crate::clock::unix_now()
}

fn datetime(unix: i64) -> Result<OffsetDateTime, CaError> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|e| CaError::Invalid(e.to_string()))
}

/// SHA-1 of a public key's bits: the key identifier OpenSSL's `subjectKeyIdentifier = hash`
/// computes (RFC 5280 4.2.1.2 method 1).
fn key_id(public_key_bits: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        public_key_bits,
    )
    .as_ref()
    .to_vec()
}

/// Creates `path` with mode 0600, refusing to replace an existing file.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CaError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                CaError::Exists {
                    path: path.display().to_string(),
                }
            } else {
                CaError::io(path, e)
            }
        })?;
    f.write_all(bytes).map_err(|e| CaError::io(path, e))
}

/// Creates `path` (mode 0644), refusing to replace an existing file.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), CaError> {
    if path.exists() {
        return Err(CaError::Exists {
            path: path.display().to_string(),
        });
    }
    std::fs::write(path, bytes).map_err(|e| CaError::io(path, e))
}

/// The `openssl.cnf` `init` writes: the enterprise mTLS guide's `[ca]` section made complete, so that
/// `openssl ca -config DIR/openssl.cnf` continues this CA (issuing with `-extensions
/// server_cert` or `client_cert`, `-revoke`, `-gencrl`) and `openssl ocsp -index` answers
/// for it.
pub fn openssl_cnf(dir: &Path) -> String {
    format!(
        r#"# Written by `ringgate ca init`. `openssl ca -config {dir}/openssl.cnf` continues this CA.
[ ca ]
default_ca = CA_default

[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certs = $dir/certs
crl_dir = $dir/crl
certificate = $dir/ca.crt
serial = $dir/serial
crlnumber = $dir/crlnumber
crl = $dir/crl/ca.crl.pem
private_key = $dir/private/ca.key
default_md = sha256
default_days = 365
default_crl_days = 30
unique_subject = no
copy_extensions = none
policy = policy_any
x509_extensions = client_cert
crl_extensions = crl_ext

[ policy_any ]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
emailAddress = optional

[ server_cert ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ client_cert ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ crl_ext ]
authorityKeyIdentifier = keyid
"#,
        dir = dir.display()
    )
}

/// `ringgate ca init DIR`: the enterprise mTLS guide's directory layout with a new CA key and
/// self-signed certificate. Refuses to touch a directory that already holds a CA.
pub fn init(dir: &Path, o: &InitOptions) -> Result<PathBuf, CaError> {
    std::fs::create_dir_all(dir).map_err(|e| CaError::io(dir, e))?;
    let dir = dir.canonicalize().map_err(|e| CaError::io(dir, e))?;
    for existing in ["ca.crt", "index.txt", "private/ca.key"] {
        let p = dir.join(existing);
        if p.exists() {
            return Err(CaError::Exists {
                path: p.display().to_string(),
            });
        }
    }
    for sub in ["certs", "crl", "newcerts", "private"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| CaError::io(&p, e))?;
    }
    let private = dir.join("private");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| CaError::io(&private, e))?;

    let key = o.key_type.generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CaError::Generate(e.to_string()))?;
    p.distinguished_name = o.subject.to_dn()?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.key_identifier_method = KeyIdMethod::PreSpecified(key_id(key.public_key_raw()));
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| CaError::Generate("random".into()))?;
    serial[0] &= 0x7f;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    let start = now();
    p.not_before = datetime(start)?;
    p.not_after = datetime(start + i64::from(o.days) * 86_400)?;
    let cert = p
        .self_signed(&key)
        .map_err(|e| CaError::Generate(e.to_string()))?;

    write_private(&private.join("ca.key"), key.serialize_pem().as_bytes())?;
    let crt = dir.join("ca.crt");
    write_new(&crt, cert.pem().as_bytes())?;
    write_new(&dir.join("index.txt"), b"")?;
    write_new(&dir.join("index.txt.attr"), b"unique_subject = no\n")?;
    write_new(&dir.join("serial"), b"1000\n")?;
    write_new(&dir.join("crlnumber"), b"1000\n")?;
    write_new(&dir.join("openssl.cnf"), openssl_cnf(&dir).as_bytes())?;
    Ok(crt)
}

/// An opened CA: an rcgen issuer (its key, and a subject reproducing the certificate's).
struct Ca {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's subject key identifier, which CRLs name in their authority key identifier
    /// (an rcgen `Issuer` keeps it but does not expose it).
    key_id: KeyIdMethod,
}

impl Ca {
    /// Opens `dir`: `ca.crt`, and `private/ca.key` (or `ca.key`, where the enterprise mTLS
    /// guide's `openssl genrsa -out ca/ca.key` puts it).
    fn open(dir: &Path) -> Result<Ca, CaError> {
        let not_ca = |detail: String| CaError::NotACa {
            dir: dir.display().to_string(),
            detail,
        };
        let crt = dir.join("ca.crt");
        let pem = std::fs::read(&crt).map_err(|e| not_ca(format!("{}: {e}", crt.display())))?;
        let der = crate::x509::pem::parse_certs(&pem, &crt.display().to_string())
            .map_err(|e| not_ca(e.to_string()))?
            .remove(0);
        let key_path = [dir.join("private/ca.key"), dir.join("ca.key")]
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| not_ca("no private/ca.key (nor ca.key)".into()))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(|e| CaError::io(&key_path, e))?;
        // The key's own parser never echoes key bytes in its errors.
        let key = KeyPair::from_pem(&key_pem).map_err(|_| CaError::Certificate {
            path: key_path.display().to_string(),
            detail: "not an unencrypted RSA, ECDSA or Ed25519 private key in PEM".into(),
        })?;
        let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| {
            CaError::Certificate {
                path: crt.display().to_string(),
                detail: e.to_string(),
            }
        })?;
        if x.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(CaError::Certificate {
                path: key_path.display().to_string(),
                detail: format!("does not belong to {}", crt.display()),
            });
        }
        let skid = subject_key_id(&x);
        // rcgen signs with an issuer built from parameters; their subject must encode byte
        // for byte as the real CA's, so issued certificates and CRLs name it exactly. A
        // throwaway self-signed certificate shows how rcgen encodes it.
        let mut p = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| CaError::Generate(e.to_string()))?;
        p.distinguished_name = dn_of(&x.tbs_certificate.subject).ok_or_else(|| {
            not_ca("its subject uses attributes ringgate cannot reproduce; use openssl ca".into())
        })?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_identifier_method = KeyIdMethod::PreSpecified(skid);
        let rebuilt_cert = p
            .self_signed(&key)
            .map_err(|e| CaError::Generate(e.to_string()))?;
        let (_, rebuilt) = x509_parser::parse_x509_certificate(rebuilt_cert.der().as_ref())
            .map_err(|e| CaError::Generate(e.to_string()))?;
        if rebuilt.tbs_certificate.subject.as_raw() != x.tbs_certificate.subject.as_raw() {
            return Err(not_ca(
                "its subject's encoding cannot be reproduced exactly; use openssl ca".into(),
            ));
        }
        Ok(Ca {
            dir: dir.to_path_buf(),
            key_id: p.key_identifier_method.clone(),
            issuer: Issuer::new(p, key),
        })
    }
}

/// An rcgen name that encodes like `name` (one attribute per RDN, known string types).
fn dn_of(name: &x509_parser::x509::X509Name<'_>) -> Option<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    let mut seen = std::collections::HashSet::new();
    for rdn in name.iter_rdn() {
        let mut attrs = rdn.iter();
        let attr = attrs.next()?;
        if attrs.next().is_some() {
            return None;
        }
        let oid: Vec<u64> = attr.attr_type().iter()?.collect();
        let ty = DnType::from_oid(&oid);
        if !seen.insert(oid) {
            return None;
        }
        let v = attr.attr_value();
        let s = std::str::from_utf8(v.data).ok();
        let value = match v.header.tag().0 {
            12 => DnValue::Utf8String(s?.to_string()),
            19 => DnValue::PrintableString(PrintableString::try_from(s?).ok()?),
            22 => DnValue::Ia5String(Ia5String::try_from(s?).ok()?),
            20 => DnValue::TeletexString(TeletexString::try_from(s?).ok()?),
            30 => DnValue::BmpString(BmpString::from_utf16be(v.data.to_vec()).ok()?),
            _ => return None,
        };
        dn.push(ty, value);
    }
    Some(dn)
}

fn parse_san(s: &str) -> Result<SanType, CaError> {
    let bad = || {
        CaError::Invalid(format!(
            "`{s}` is not a subjectAltName; write DNS:name, IP:address, URI:uri or email:address"
        ))
    };
    let (kind, value) = s.split_once(':').ok_or_else(bad)?;
    let ia5 = |v: &str| Ia5String::try_from(v).map_err(|_| bad());
    Ok(match kind.to_ascii_lowercase().as_str() {
        "dns" => SanType::DnsName(ia5(value)?),
        "ip" => SanType::IpAddress(value.parse::<IpAddr>().map_err(|_| bad())?),
        "uri" => SanType::URI(ia5(value)?),
        "email" => SanType::Rfc822Name(ia5(value)?),
        _ => return Err(bad()),
    })
}

/// A file-name stem from a common name: letters, digits, `.`, `-`, `_`; others become `_`.
fn stem(cn: &str) -> String {
    let s: String = cn
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("cert{s}")
    } else {
        s
    }
}

fn unique_subject(dir: &Path) -> bool {
    // openssl's default is yes when index.txt.attr is absent.
    std::fs::read_to_string(dir.join("index.txt.attr"))
        .map(|t| {
            !t.lines().any(|l| {
                let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
                l.eq_ignore_ascii_case("unique_subject=no")
            })
        })
        .unwrap_or(true)
}

/// The CA certificate's subject key identifier: its extension's, else the key's SHA-1, which
/// issued certificates name in their authority key identifier.
fn subject_key_id(x: &x509_parser::certificate::X509Certificate<'_>) -> Vec<u8> {
    match x
        .tbs_certificate
        .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
    {
        Ok(Some(ext)) => match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => k.0.to_vec(),
            _ => key_id(&x.public_key().subject_public_key.data),
        },
        _ => key_id(&x.public_key().subject_public_key.data),
    }
}

/// `ringgate ca issue server|client`: a new key and a v3 certificate signed by the CA in
/// `dir`, recorded in index.txt, serial and newcerts/ as `openssl ca` records it.
pub fn issue(dir: &Path, o: &IssueOptions) -> Result<Issued, CaError> {
    let ca = Ca::open(dir)?;
    let (cert_path, key_path) = issue_paths(dir, o)?;
    let sans = issue_sans(o)?;
    let index_path = dir.join("index.txt");
    let mut entries = index::read_index(&index_path)?;
    let serial_path = dir.join("serial");
    let serial = index::read_counter(&serial_path).map_err(|_| CaError::NotACa {
        dir: dir.display().to_string(),
        detail: "no readable serial file (echo 1000 > serial)".into(),
    })?;
    let serial_hex = index::hex(&serial);

    let key = o.key_type.generate()?;
    let start = now();
    let not_after = start + i64::from(o.days) * 86_400;
    let p = leaf_params(o, sans, &key, &serial, (start, not_after))?;
    let cert = p
        .signed_by(&key, &ca.issuer)
        .map_err(|e| CaError::Generate(e.to_string()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.der().as_ref())
        .map_err(|e| CaError::Generate(e.to_string()))?;
    let subject = index::oneline(&parsed.tbs_certificate.subject);
    if unique_subject(dir) {
        if let Some(e) = entries
            .iter()
            .find(|e| e.status == 'V' && e.subject == subject)
        {
            return Err(CaError::DuplicateSubject(subject, e.serial.clone()));
        }
    }

    // openssl's order: the certificate, then the database, then the serial.
    let newcert = ca.dir.join("newcerts").join(format!("{serial_hex}.pem"));
    write_new(&newcert, cert.pem().as_bytes())?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_new(&cert_path, cert.pem().as_bytes())?;
    entries.push(Entry {
        status: 'V',
        expires: index::format_time(not_after),
        revoked: String::new(),
        serial: serial_hex.clone(),
        file: "unknown".into(),
        subject: subject.clone(),
    });
    index::write_index(&index_path, &entries)?;
    index::write_counter(&serial_path, &index::increment(&serial))?;
    Ok(Issued {
        serial: serial_hex,
        cert: cert_path,
        key: key_path,
        newcert,
        subject,
        not_after,
    })
}

/// Where an issued certificate and its key go (`certs/NAME.crt`, `private/NAME.key`); both
/// must be new.
fn issue_paths(dir: &Path, o: &IssueOptions) -> Result<(PathBuf, PathBuf), CaError> {
    let name = o.name.clone().unwrap_or_else(|| stem(&o.subject.cn));
    if name.contains('/') || name.starts_with('.') {
        return Err(CaError::Invalid(format!(
            "--name `{name}` must be a plain file name"
        )));
    }
    let cert_path = dir.join("certs").join(format!("{name}.crt"));
    let key_path = dir.join("private").join(format!("{name}.key"));
    for p in [&cert_path, &key_path] {
        if p.exists() {
            return Err(CaError::Exists {
                path: format!("{} (choose another --name)", p.display()),
            });
        }
    }
    Ok((cert_path, key_path))
}

/// The subject alternative names: those given (comma-separated lists allowed), or for a
/// server with none the CN as a DNS name or IP address.
fn issue_sans(o: &IssueOptions) -> Result<Vec<SanType>, CaError> {
    let mut sans = Vec::new();
    for s in o.sans.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if !s.is_empty() {
            sans.push(parse_san(s)?);
        }
    }
    if o.role == Role::Server && sans.is_empty() {
        // Browsers and rustls ignore the CN: a server certificate names its host in a SAN.
        let cn = &o.subject.cn;
        sans.push(match cn.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => parse_san(&format!("DNS:{cn}"))?,
        });
    }
    Ok(sans)
}

/// The fields of a leaf certificate for `o.role`, valid over `validity` (Unix seconds).
fn leaf_params(
    o: &IssueOptions,
    sans: Vec<SanType>,
    key: &KeyPair,
    serial: &[u8],
    validity: (i64, i64),
) -> Result<CertificateParams, CaError> {
    let mut p = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CaError::Generate(e.to_string()))?;
    p.distinguished_name = o.subject.to_dn()?;
    p.subject_alt_names = sans;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = match (o.role, o.key_type.is_rsa()) {
        (Role::Server, true) => vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
        _ => vec![KeyUsagePurpose::DigitalSignature],
    };
    p.extended_key_usages = vec![match o.role {
        Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::PreSpecified(key_id(key.public_key_raw()));
    p.serial_number = Some(SerialNumber::from_slice(serial));
    p.not_before = datetime(validity.0)?;
    p.not_after = datetime(validity.1)?;
    Ok(p)
}

/// The CRL reason names `openssl ca -crl_reason` accepts, with their RFC 5280 codes.
const REASONS: [(&str, RevocationReason); 8] = [
    ("unspecified", RevocationReason::Unspecified),
    ("keyCompromise", RevocationReason::KeyCompromise),
    ("CACompromise", RevocationReason::CaCompromise),
    ("affiliationChanged", RevocationReason::AffiliationChanged),
    ("superseded", RevocationReason::Superseded),
    (
        "cessationOfOperation",
        RevocationReason::CessationOfOperation,
    ),
    ("certificateHold", RevocationReason::CertificateHold),
    ("removeFromCRL", RevocationReason::RemoveFromCrl),
];

/// Parses a reason as openssl names it (case-insensitive).
pub fn parse_reason(text: &str) -> Result<&'static str, CaError> {
    REASONS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(text))
        .map(|(n, _)| *n)
        .ok_or_else(|| {
            CaError::Invalid(format!(
                "`{text}` is not a CRL reason; one of {}",
                REASONS.map(|(n, _)| n).join(", ")
            ))
        })
}

/// What to revoke.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// By serial number (hex, as index.txt and `openssl x509 -serial` show it).
    Serial(String),
    /// By certificate file (added to index.txt first when openssl x509 -req made it).
    Cert(PathBuf),
}

/// `ringgate ca revoke`: marks the certificate revoked in index.txt, as `openssl ca -revoke`
/// does (a certificate the database does not know is added, then revoked). Publish with
/// [`crl`].
pub fn revoke(dir: &Path, target: &RevokeTarget, reason: Option<&str>) -> Result<Entry, CaError> {
    let index_path = dir.join("index.txt");
    if !index_path.exists() {
        return Err(CaError::NotACa {
            dir: dir.display().to_string(),
            detail: "no index.txt".into(),
        });
    }
    let mut entries = index::read_index(&index_path)?;
    let reason = reason.map(parse_reason).transpose()?;
    let (serial, from_cert) = revoke_target(target)?;
    let pos = match entries.iter().position(|e| e.is_serial(&serial)) {
        Some(i) => i,
        None => match from_cert {
            Some(e) => {
                entries.push(e);
                entries.len() - 1
            }
            None => return Err(CaError::UnknownSerial(serial)),
        },
    };
    let e = &mut entries[pos];
    if e.status == 'R' {
        return Err(CaError::AlreadyRevoked {
            serial: e.serial.clone(),
            when: e.revoked.clone(),
        });
    }
    e.status = 'R';
    e.revoked = match reason {
        Some(r) => format!("{},{r}", index::format_time(now())),
        None => index::format_time(now()),
    };
    let done = e.clone();
    index::write_index(&index_path, &entries)?;
    Ok(done)
}

/// The serial to revoke, and for a certificate file its index.txt entry (added when the
/// database does not know it).
fn revoke_target(target: &RevokeTarget) -> Result<(String, Option<Entry>), CaError> {
    match target {
        RevokeTarget::Serial(s) => {
            if index::parse_hex(s).is_none() {
                return Err(CaError::Invalid(format!(
                    "`{s}` is not a hex serial number"
                )));
            }
            Ok((s.trim().to_ascii_uppercase(), None))
        }
        RevokeTarget::Cert(path) => {
            let entry = cert_entry(path)?;
            Ok((entry.serial.clone(), Some(entry)))
        }
    }
}

/// The index.txt entry of the certificate in `path`, as `openssl ca` would have written it.
fn cert_entry(path: &Path) -> Result<Entry, CaError> {
    let bad = |detail: String| CaError::Certificate {
        path: path.display().to_string(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|e| CaError::io(path, e))?;
    let der = crate::x509::pem::parse_certs(&pem, &path.display().to_string())
        .map_err(|e| bad(e.to_string()))?
        .remove(0);
    let (_, x) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| bad(e.to_string()))?;
    Ok(Entry {
        status: 'V',
        expires: index::format_time(x.validity().not_after.timestamp()),
        revoked: String::new(),
        serial: index::hex(x.raw_serial()),
        file: "unknown".into(),
        subject: index::oneline(&x.tbs_certificate.subject),
    })
}

/// What `crl` wrote.
#[derive(Debug, Clone)]
pub struct CrlWritten {
    /// The PEM file.
    pub path: PathBuf,
    /// Its cRLNumber, hex.
    pub number: String,
    /// How many certificates it revokes.
    pub revoked: usize,
    /// nextUpdate, Unix seconds.
    pub next_update: i64,
}

/// `ringgate ca crl`: a CRL of every revoked certificate in index.txt, signed by the CA, as
/// `openssl ca -gencrl` makes it (cRLNumber from `crlnumber`, which is then incremented).
pub fn crl(dir: &Path, days: u32, out: Option<&Path>) -> Result<CrlWritten, CaError> {
    let ca = Ca::open(dir)?;
    let entries = index::read_index(&dir.join("index.txt"))?;
    let number_path = dir.join("crlnumber");
    let number = if number_path.exists() {
        index::read_counter(&number_path)?
    } else {
        vec![0x10, 0x00]
    };
    let mut revoked = Vec::new();
    for e in entries.iter().filter(|e| e.status == 'R') {
        let serial = index::parse_hex(&e.serial).ok_or_else(|| CaError::Database {
            path: dir.join("index.txt").display().to_string(),
            line: 0,
        })?;
        let reason = e
            .reason()
            .and_then(|r| REASONS.iter().find(|(n, _)| n.eq_ignore_ascii_case(r)))
            .map(|(_, code)| *code);
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: datetime(e.revoked_at().unwrap_or_else(now))?,
            reason_code: reason,
            invalidity_date: None,
        });
    }
    let start = now();
    let next_update = start + i64::from(days.max(1)) * 86_400;
    let params = CertificateRevocationListParams {
        this_update: datetime(start)?,
        next_update: datetime(next_update)?,
        crl_number: SerialNumber::from_slice(&number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: ca.key_id,
    };
    let count = params.revoked_certs.len();
    let crl = params
        .signed_by(&ca.issuer)
        .map_err(|e| CaError::Generate(e.to_string()))?;
    let pem = crl.pem().map_err(|e| CaError::Generate(e.to_string()))?;
    let path = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("crl").join("ca.crl.pem"));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| CaError::io(parent, e))?;
    }
    index::replace_file(&path, pem.as_bytes(), "old")?;
    index::write_counter(&number_path, &index::increment(&number))?;
    Ok(CrlWritten {
        path,
        number: index::hex(&number),
        revoked: count,
        next_update,
    })
}

/// `ringgate ca export-p12`: the certificate (with the CA certificate after it) and its key in
/// a password-protected PKCS#12 file for browsers, mode 0600.
pub fn export_p12(
    cert: &Path,
    key: &Path,
    ca_cert: Option<&Path>,
    out: &Path,
    password: &str,
    friendly_name: &str,
) -> Result<(), CaError> {
    let read_certs = |p: &Path| -> Result<Vec<Vec<u8>>, CaError> {
        let pem = std::fs::read(p).map_err(|e| CaError::io(p, e))?;
        Ok(
            crate::x509::pem::parse_certs(&pem, &p.display().to_string())
                .map_err(|e| CaError::Certificate {
                    path: p.display().to_string(),
                    detail: e.to_string(),
                })?
                .into_iter()
                .map(|c| c.as_ref().to_vec())
                .collect(),
        )
    };
    let mut chain = read_certs(cert)?;
    let leaf = chain.remove(0);
    if let Some(ca) = ca_cert {
        for c in read_certs(ca)? {
            if !chain.contains(&c) && c != leaf {
                chain.push(c);
            }
        }
    }
    let key_der = match crate::x509::pem::load_key(key).map_err(|e| CaError::Certificate {
        path: key.display().to_string(),
        detail: e.to_string(),
    })? {
        rustls_pki_types::PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        _ => {
            return Err(CaError::Certificate {
                path: key.display().to_string(),
                detail: "is a PKCS#1 or SEC1 key; convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY8`".into(),
            })
        }
    };
    // The key must belong to the certificate.
    let (_, x) = x509_parser::parse_x509_certificate(&leaf).map_err(|e| CaError::Certificate {
        path: cert.display().to_string(),
        detail: e.to_string(),
    })?;
    let kp = KeyPair::try_from(key_der.as_slice()).map_err(|_| CaError::Certificate {
        path: key.display().to_string(),
        detail: "not a key ringgate can read".into(),
    })?;
    if kp.subject_public_key_info().as_slice() != x.public_key().raw {
        return Err(CaError::Certificate {
            path: key.display().to_string(),
            detail: format!("does not belong to {}", cert.display()),
        });
    }
    let bytes = p12::build(&key_der, &leaf, &chain, friendly_name, password)?;
    write_private(out, &bytes)
}

/// One certificate as `list` shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The database entry.
    pub entry: Entry,
    /// `valid`, `expired` or `revoked`.
    pub status: &'static str,
    /// Days until expiry (negative once expired).
    pub days_left: Option<i64>,
}

/// `ringgate ca list`: every certificate of index.txt with its status and days to expiry.
pub fn list(dir: &Path) -> Result<Vec<Listed>, CaError> {
    let index_path = dir.join("index.txt");
    if !index_path.exists() {
        return Err(CaError::NotACa {
            dir: dir.display().to_string(),
            detail: "no index.txt".into(),
        });
    }
    let t = now();
    Ok(index::read_index(&index_path)?
        .into_iter()
        .map(|e| {
            let days_left = e.expires_at().map(|x| (x - t).div_euclid(86_400));
            let status = match e.status {
                'R' => "revoked",
                'E' => "expired",
                _ if days_left.is_some_and(|d| d < 0) => "expired",
                _ => "valid",
            };
            Listed {
                entry: e,
                status,
                days_left,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(cn: &str, ou: Option<&str>) -> Subject {
        Subject {
            country: Some("CN".into()),
            org: Some("MyCompany".into()),
            ou: ou.map(str::to_string),
            cn: cn.into(),
            ..Default::default()
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn client_options(key_type: KeyType) -> IssueOptions {
        IssueOptions {
            role: Role::Client,
            subject: subject("client1", Some("Client")),
            sans: vec![],
            days: 10,
            key_type,
            name: None,
        }
    }

    /// `init` makes a CA with a private key directory only its owner reads, and refuses to
    /// make a second one over it.
    fn init_once(dir: &Path) {
        init(
            dir,
            &InitOptions {
                subject: subject("MyRootCA", Some("CA")),
                days: 30,
                key_type: KeyType::P256,
            },
        )
        .unwrap();
        assert_eq!(mode(&dir.join("private")), 0o700);
        assert_eq!(mode(&dir.join("private/ca.key")), 0o600);
        assert!(init(
            dir,
            &InitOptions {
                subject: subject("x", None),
                days: 1,
                key_type: KeyType::P256
            }
        )
        .is_err());
    }

    /// Issues client1 (serial 1000) and checks it against the CA with ringgate's own
    /// verifier; returns it with the CA's trust store.
    fn issue_client(dir: &Path) -> (Issued, std::sync::Arc<crate::x509::trust::TrustStore>) {
        let issued = issue(dir, &client_options(KeyType::P256)).unwrap();
        assert_eq!(issued.serial, "1000");
        assert_eq!(issued.subject, "/C=CN/O=MyCompany/OU=Client/CN=client1");
        assert_eq!(mode(&issued.key), 0o600);
        assert_eq!(
            std::fs::read_to_string(dir.join("serial")).unwrap(),
            "1001\n"
        );
        let store = std::sync::Arc::new(
            crate::x509::trust::TrustStore::from_pem(&std::fs::read(dir.join("ca.crt")).unwrap())
                .unwrap(),
        );
        let leaf = crate::x509::pem::load_certs(&issued.cert)
            .unwrap()
            .remove(0);
        let v = crate::x509::verify::ChainVerifier::new(store.clone(), 1);
        assert!(v
            .verify(&leaf, &[], rustls_pki_types::UnixTime::now())
            .is_ok());
        (issued, store)
    }

    /// Revokes client1 (once only; an unknown serial is refused) and publishes a CRL that
    /// ringgate's CRL loader reads with client1 in it.
    fn revoke_and_publish(
        dir: &Path,
        client: &Issued,
        store: &std::sync::Arc<crate::x509::trust::TrustStore>,
    ) {
        let revoked = revoke(
            dir,
            &RevokeTarget::Serial("1000".into()),
            Some("keycompromise"),
        )
        .unwrap();
        assert!(revoked.revoked.ends_with(",keyCompromise"));
        assert!(matches!(
            revoke(dir, &RevokeTarget::Serial("1000".into()), None),
            Err(CaError::AlreadyRevoked { .. })
        ));
        assert!(matches!(
            revoke(dir, &RevokeTarget::Serial("beef".into()), None),
            Err(CaError::UnknownSerial(_))
        ));
        let c = crl(dir, 7, None).unwrap();
        assert_eq!((c.number.as_str(), c.revoked), ("1000", 1));
        assert_eq!(
            std::fs::read_to_string(dir.join("crlnumber")).unwrap(),
            "1001\n"
        );
        let crls =
            crate::x509::crl::parse_crls(&std::fs::read(&c.path).unwrap(), "ca.crl.pem", store)
                .unwrap();
        let leaf = crate::x509::pem::load_certs(&client.cert)
            .unwrap()
            .remove(0);
        let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
        assert!(crls[0].lookup(x.raw_serial()).is_some());
    }

    #[test]
    fn init_issue_revoke_crl_list() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("ca");
        init_once(&dir);
        let (client, store) = issue_client(&dir);
        // The same name again is refused as a file, allowed under another --name.
        assert!(matches!(
            issue(&dir, &client_options(KeyType::Ed25519)),
            Err(CaError::Exists { .. })
        ));
        let server = issue(
            &dir,
            &IssueOptions {
                role: Role::Server,
                subject: subject("localhost", None),
                sans: vec!["DNS:localhost,IP:127.0.0.1".into()],
                days: 10,
                key_type: KeyType::Rsa2048,
                name: Some("web".into()),
            },
        )
        .unwrap();
        assert_eq!(server.serial, "1001");
        revoke_and_publish(&dir, &client, &store);
        let l = list(&dir).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].status, "revoked");
        assert_eq!(l[1].status, "valid");
        // PKCS#12 export refuses an empty password and a foreign key.
        let out = d.path().join("c.p12");
        assert!(export_p12(&client.cert, &client.key, None, &out, "", "c").is_err());
        assert!(export_p12(&client.cert, &server.key, None, &out, "pw", "c").is_err());
        export_p12(
            &client.cert,
            &client.key,
            Some(&dir.join("ca.crt")),
            &out,
            "pw",
            "c",
        )
        .unwrap();
        assert_eq!(mode(&out), 0o600);
    }

    #[test]
    fn sans_and_names() {
        assert!(matches!(
            parse_san("DNS:a.example").unwrap(),
            SanType::DnsName(_)
        ));
        assert!(matches!(
            parse_san("ip:::1").unwrap(),
            SanType::IpAddress(_)
        ));
        assert!(parse_san("IP:nope").is_err());
        assert!(parse_san("x").is_err());
        assert_eq!(stem("client 1/x"), "client_1_x");
        assert_eq!(stem(".."), "cert..");
        assert_eq!(parse_reason("CACOMPROMISE").unwrap(), "CACompromise");
        assert!(parse_reason("nope").is_err());
    }
}
