//! Per-test certificates made with rcgen, written into a per-test temporary folder.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// A certificate authority (root or intermediate) that can sign.
pub struct Issuer {
    /// Signs certificates and CRLs as this CA (its subject, key identifier and key).
    pub signer: rcgen::Issuer<'static, KeyPair>,
    /// PEM file holding this CA's certificate alone.
    pub pem_path: PathBuf,
    /// The intermediates between this issuer and its root (this one included when it is an
    /// intermediate), leaf-side first, as PEM.
    chain_pem: String,
}

/// A certificate and its key on disk.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The leaf followed by the intermediates that lead to the root.
    pub cert: PathBuf,
    /// The private key (mode 600).
    pub key: PathBuf,
}

/// When a leaf is valid.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Valid,
    Expired,
    NotYetValid,
}

/// What a leaf is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Client,
    Server,
}

/// Options for one leaf certificate.
pub struct LeafSpec<'a> {
    pub name: &'a str,
    /// Subject attributes in the order written (the RFC 2253 form prints them reversed).
    pub subject: Vec<(DnType, &'a str)>,
    pub usage: Usage,
    pub validity: Validity,
    pub sans: Vec<SanType>,
}

impl<'a> LeafSpec<'a> {
    /// A client certificate `O=Acme,OU=<ou>,CN=<cn>` valid now.
    pub fn client(name: &'a str, cn: &'a str) -> Self {
        LeafSpec {
            name,
            subject: vec![
                (DnType::CountryName, "US"),
                (DnType::OrganizationName, "Acme"),
                (DnType::OrganizationalUnitName, "Eng"),
                (DnType::CommonName, cn),
            ],
            usage: Usage::Client,
            validity: Validity::Valid,
            sans: Vec::new(),
        }
    }
}

pub fn write_key(path: &Path, pem: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("write key");
    f.write_all(pem.as_bytes()).expect("write key");
}

fn validity(p: &mut CertificateParams, v: Validity) {
    let now = OffsetDateTime::now_utc();
    let (from, to) = match v {
        Validity::Valid => (now - Duration::days(1), now + Duration::days(30)),
        Validity::Expired => (now - Duration::days(30), now - Duration::days(1)),
        Validity::NotYetValid => (now + Duration::days(1), now + Duration::days(30)),
    };
    p.not_before = from;
    p.not_after = to;
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "ringgate tests");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut p, Validity::Valid);
    p
}

impl Issuer {
    /// A self-signed root CA written to `dir/<file>.crt`.
    pub fn root(dir: &Path, file: &str, cn: &str) -> Issuer {
        let key = KeyPair::generate().expect("key");
        let params = ca_params(cn);
        let cert = params.self_signed(&key).expect("self-sign");
        let pem_path = dir.join(format!("{file}.crt"));
        std::fs::write(&pem_path, cert.pem()).expect("write ca");
        Issuer {
            signer: rcgen::Issuer::new(params, key),
            pem_path,
            chain_pem: String::new(),
        }
    }

    /// An intermediate CA signed by this issuer.
    pub fn intermediate(&self, dir: &Path, file: &str, cn: &str) -> Issuer {
        let key = KeyPair::generate().expect("key");
        let params = ca_params(cn);
        let cert = params.signed_by(&key, &self.signer).expect("sign");
        let pem_path = dir.join(format!("{file}.crt"));
        std::fs::write(&pem_path, cert.pem()).expect("write int");
        let chain_pem = format!("{}{}", cert.pem(), self.chain_pem);
        Issuer {
            signer: rcgen::Issuer::new(params, key),
            pem_path,
            chain_pem,
        }
    }

    /// A leaf signed by this issuer; its file holds the leaf then the intermediates.
    pub fn leaf(&self, dir: &Path, spec: LeafSpec<'_>) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let p = leaf_params(&spec);
        let cert = p.signed_by(&key, &self.signer).expect("sign");
        write_leaf(
            dir,
            spec.name,
            &format!("{}{}", cert.pem(), self.chain_pem),
            &key,
        )
    }
}

fn leaf_params(spec: &LeafSpec<'_>) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    for (t, v) in &spec.subject {
        dn.push(t.clone(), *v);
    }
    p.distinguished_name = dn;
    p.subject_alt_names = spec.sans.clone();
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![match spec.usage {
        Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
    }];
    validity(&mut p, spec.validity);
    p
}

fn write_leaf(dir: &Path, name: &str, chain_pem: &str, key: &KeyPair) -> Leaf {
    let cert = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert, chain_pem).expect("write leaf");
    write_key(&key_path, &key.serialize_pem());
    Leaf {
        cert,
        key: key_path,
    }
}

/// A self-signed leaf (not a CA) for the "self-signed client" case.
pub fn self_signed_leaf(dir: &Path, spec: LeafSpec<'_>) -> Leaf {
    let key = KeyPair::generate().expect("key");
    let cert = leaf_params(&spec).self_signed(&key).expect("self-sign");
    write_leaf(dir, spec.name, &cert.pem(), &key)
}

/// The usual per-test material: a root CA, a server certificate for localhost/127.0.0.1 and a
/// valid client certificate.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Issuer,
    pub server: Leaf,
    pub client: Leaf,
}

/// The RFC 2253 subject of [`Pki::client`] as nginx prints `$ssl_client_s_dn`.
pub const CLIENT_DN: &str = "CN=alice,OU=Eng,O=Acme,C=US";

pub fn server_spec<'a>(name: &'a str, cn: &'a str) -> LeafSpec<'a> {
    LeafSpec {
        name,
        subject: vec![(DnType::CommonName, cn)],
        usage: Usage::Server,
        validity: Validity::Valid,
        sans: vec![
            SanType::DnsName("localhost".try_into().expect("dns")),
            SanType::IpAddress("127.0.0.1".parse().expect("ip")),
        ],
    }
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Issuer::root(dir.path(), "ca", "ringgate test CA");
        let server = ca.leaf(dir.path(), server_spec("server", "localhost"));
        let client = ca.leaf(dir.path(), LeafSpec::client("client", "alice"));
        Pki {
            dir,
            ca,
            server,
            client,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Another client certificate from this CA.
    pub fn client_with(&self, spec: LeafSpec<'_>) -> Leaf {
        self.ca.leaf(self.dir.path(), spec)
    }
}

/// Quotes a path for TOML.
pub fn p(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}
