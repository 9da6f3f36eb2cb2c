//! Loading certificates and keys from PEM files, with errors that name the file and never print
//! key material.

use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::aws_lc_rs::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file holds no PEM block of the expected kind.
    #[error("{path}: no {what} found (expected PEM `-----BEGIN {what}-----`)")]
    Empty {
        /// The file.
        path: String,
        /// What was looked for.
        what: &'static str,
    },
    /// A PEM block could not be decoded.
    #[error("{path}: malformed PEM: {detail}")]
    Malformed {
        /// The file.
        path: String,
        /// What the decoder said.
        detail: String,
    },
    /// The key's type is not one rustls can sign with.
    #[error("{path}: unsupported private key ({detail}); RSA, ECDSA P-256/P-384 and Ed25519 keys in PKCS#1, PKCS#8 or SEC1 form are supported")]
    UnsupportedKey {
        /// The key file.
        path: String,
        /// What rustls said.
        detail: String,
    },
    /// The key does not belong to the certificate.
    #[error("{key_path} does not match the certificate in {cert_path}")]
    KeyMismatch {
        /// The certificate file.
        cert_path: String,
        /// The key file.
        key_path: String,
    },
    /// The key file may be read by other users (the key-permission rule, [`key_access`]).
    #[error("{path} is {}; {}; or set runtime.allow_insecure_key_permissions = true to serve it anyway", exposure(*.mode, *.owner), key_advice(.path))]
    KeyPermissions {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
        /// Its owner's uid.
        owner: u32,
    },
}

impl PemError {
    /// The file the error is about (the key file for a mismatch).
    pub fn path(&self) -> &str {
        match self {
            PemError::Read { path, .. }
            | PemError::Empty { path, .. }
            | PemError::Malformed { path, .. }
            | PemError::UnsupportedKey { path, .. }
            | PemError::KeyPermissions { path, .. } => path,
            PemError::KeyMismatch { key_path, .. } => key_path,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    crate::files::read(path).map_err(|source| PemError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Reads every certificate in a PEM file, in file order (leaf first for a chain file).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = read(path)?;
    parse_certs(&bytes, &path.display().to_string())
}

/// Parses every certificate in PEM text; `label` names the source in errors.
pub fn parse_certs(bytes: &[u8], label: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| PemError::Malformed {
            path: label.to_string(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::Empty {
            path: label.to_string(),
            what: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file: PKCS#1 (`RSA PRIVATE KEY`), PKCS#8
/// (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = read(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(PemError::Empty {
            path: path.display().to_string(),
            what: "PRIVATE KEY",
        }),
        // Never the decoder's own words for bad base64: they may quote a byte of the key.
        Err(rustls_pki_types::pem::Error::Base64Decode(_)) => Err(PemError::Malformed {
            path: path.display().to_string(),
            detail: "invalid base64 in the PEM block".into(),
        }),
        Err(e) => Err(PemError::Malformed {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
    }
}

/// A key file's permission bits and owners: what the key-permission rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFileMode {
    /// Permission bits (`0o777` at most).
    pub mode: u32,
    /// The owner's uid.
    pub owner: u32,
    /// The group's gid.
    pub group: u32,
}

/// Who reads the key: the process's effective uid and its groups (effective and
/// supplementary). A group-readable key is only worth its group bit when this is how the
/// process reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReader {
    /// The effective uid.
    pub uid: u32,
    /// The effective gid and the supplementary groups.
    pub gids: Vec<u32>,
}

impl KeyReader {
    /// This process, from `/proc/self/status` (`None` where it cannot be read).
    pub fn current() -> Option<KeyReader> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|rest| {
                    rest.split_whitespace()
                        .filter_map(|n| n.parse::<u32>().ok())
                        .collect::<Vec<u32>>()
                })
        };
        // `Uid:` and `Gid:` list real, effective, saved and filesystem ids.
        let uid = *field("Uid:")?.get(1)?;
        let mut gids = vec![*field("Gid:")?.get(1)?];
        gids.extend(field("Groups:").unwrap_or_default());
        Some(KeyReader { uid, gids })
    }

    /// Whether this reader can read a root-owned, group-readable file only through its group.
    fn reads_through_group(&self, group: u32) -> bool {
        self.uid != 0 && self.gids.contains(&group)
    }
}

/// What the key-permission rule decides about a private key file. ssh refuses keys that
/// group or others can read; PostgreSQL makes one exception, which ringgate follows: a key
/// owned by root may also be readable by its group (0640 or 0440 at most). That is how a
/// Kubernetes secret volume hands a key to a non-root container (owner root, group
/// `fsGroup`, `defaultMode: 0440`), and how `root:ringgate 0640` keys work under systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    /// Only its owner can read it: served, nothing to say.
    Private,
    /// Owned by root and readable by its group, which is how the process reads it: served,
    /// nothing to say.
    SharedWithReader,
    /// Owned by root and readable by its group, though the process does not read it through
    /// that group (it runs as root, or outside the group): served, with a note.
    SharedNeedlessly,
    /// Readable by others, writable by its group, or readable by the group of a key not
    /// owned by root: refused unless `runtime.allow_insecure_key_permissions`.
    Exposed,
}

/// The key-permission rule, the one place it is decided: from the key file's mode and
/// owners and (for the note only) who reads it. `reader` is `None` where the process's ids
/// are unknown; a group-readable root key is then taken to be read through its group.
pub fn key_access(file: KeyFileMode, reader: Option<&KeyReader>) -> KeyAccess {
    let mode = file.mode & 0o777;
    if mode & 0o077 == 0 {
        return KeyAccess::Private;
    }
    if file.owner != 0 || mode & 0o037 != 0 {
        return KeyAccess::Exposed;
    }
    if reader.is_none_or(|r| r.reads_through_group(file.group)) {
        KeyAccess::SharedWithReader
    } else {
        KeyAccess::SharedNeedlessly
    }
}

/// What the rule says about one key, for the loader and the doctor alike.
#[derive(Debug)]
pub enum KeyVerdict {
    /// Served; nothing to report.
    Accepted,
    /// Served; `check` reports this note (INFO).
    Noted(String),
    /// Served only because `runtime.allow_insecure_key_permissions = true`: `check` and `run`
    /// warn with this text.
    Insecure(String),
    /// Not served: the loader's error.
    Refused(PemError),
}

/// Applies [`key_access`] to `path`'s key file as the process `reader` sees it, with
/// `allow_insecure` (`runtime.allow_insecure_key_permissions`), and words the outcome: one
/// message per outcome, shared by `check`, `run` and reloads.
pub fn judge_key(
    path: &Path,
    file: KeyFileMode,
    reader: Option<&KeyReader>,
    allow_insecure: bool,
) -> KeyVerdict {
    let mode = file.mode & 0o777;
    match key_access(file, reader) {
        KeyAccess::Private | KeyAccess::SharedWithReader => KeyVerdict::Accepted,
        KeyAccess::SharedNeedlessly => KeyVerdict::Noted(format!(
            "private key readable by its group (gid {}, mode {mode:o}, owned by root): allowed, as for a Kubernetes secret volume with fsGroup; ringgate (uid {}) does not read it through that group, so `chmod g-r {}` would keep it from the group's other members",
            file.group,
            reader.map_or(0, |r| r.uid),
            path.display()
        )),
        KeyAccess::Exposed if allow_insecure => KeyVerdict::Insecure(format!(
            "private key {}, served only because runtime.allow_insecure_key_permissions = true; {}",
            exposure(mode, file.owner),
            key_advice(&path.display().to_string())
        )),
        KeyAccess::Exposed => KeyVerdict::Refused(PemError::KeyPermissions {
            path: path.display().to_string(),
            mode,
            owner: file.owner,
        }),
    }
}

/// How an exposed key is exposed: its mode, and its owner where that is what refuses it.
fn exposure(mode: u32, owner: u32) -> String {
    if owner != 0 && mode & 0o007 == 0 && mode & 0o020 == 0 {
        format!("readable by group or others (mode {mode:o}, owned by uid {owner}; only a key owned by root may be read by its group)")
    } else {
        format!("readable by group or others (mode {mode:o})")
    }
}

/// What to do about an exposed key, agreeing with the shipped Kubernetes deployment.
fn key_advice(path: &str) -> String {
    format!("run `chmod 600 {path}`, or, for a key its group must read, make it owned by root with mode 0640 or 0440 (Kubernetes: fsGroup and defaultMode: 0440 on the secret volume)")
}

/// Reads `path`'s mode and owners and judges it for this process ([`judge_key`]).
pub fn inspect_key(path: &Path, allow_insecure: bool) -> Result<KeyVerdict, PemError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|source| PemError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let file = KeyFileMode {
        mode: meta.mode() & 0o777,
        owner: meta.uid(),
        group: meta.gid(),
    };
    Ok(judge_key(
        path,
        file,
        KeyReader::current().as_ref(),
        allow_insecure,
    ))
}

/// Refuses a private key file that the key-permission rule ([`key_access`]) refuses.
pub fn check_key_permissions(path: &Path) -> Result<(), PemError> {
    match inspect_key(path, false)? {
        KeyVerdict::Refused(e) => Err(e),
        _ => Ok(()),
    }
}

/// Whether the key-permission rule ([`key_access`]) serves a key with these permission bits
/// and owner without `runtime.allow_insecure_key_permissions`.
pub fn key_mode_allowed(mode: u32, owner_uid: u32) -> bool {
    let file = KeyFileMode {
        mode,
        owner: owner_uid,
        group: 0,
    };
    key_access(file, None) != KeyAccess::Exposed
}

/// Like [`load_certified_key`], first refusing a key file the key-permission rule refuses
/// unless `allow_insecure` (`runtime.allow_insecure_key_permissions`) says otherwise.
pub fn load_certified_key_checked(
    cert_path: &Path,
    key_path: &Path,
    allow_insecure: bool,
) -> Result<Arc<CertifiedKey>, PemError> {
    let loaded = load_certified_key(cert_path, key_path)?;
    if let KeyVerdict::Refused(e) = inspect_key(key_path, allow_insecure)? {
        return Err(e);
    }
    Ok(loaded)
}

/// Loads a chain and its key and proves they belong together.
pub fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<CertifiedKey>, PemError> {
    let chain = load_certs(cert_path)?;
    let key = load_key(key_path)?;
    let signing = any_supported_type(&key).map_err(|e| PemError::UnsupportedKey {
        path: key_path.display().to_string(),
        detail: e.to_string(),
    })?;
    // Compare SubjectPublicKeyInfo bytes ourselves: rustls's `keys_match` parses the
    // certificate with webpki, which refuses the X.509 v1 certificates that
    // `openssl x509 -req -signkey` makes and nginx serves.
    let mismatch = || PemError::KeyMismatch {
        cert_path: cert_path.display().to_string(),
        key_path: key_path.display().to_string(),
    };
    if let (Some(key_spki), Some(first)) = (signing.public_key(), chain.first()) {
        let (_, leaf) = x509_parser::parse_x509_certificate(first.as_ref()).map_err(|e| {
            PemError::Malformed {
                path: cert_path.display().to_string(),
                detail: format!("not an X.509 certificate: {e}"),
            }
        })?;
        if key_spki.as_ref() != leaf.public_key().raw {
            return Err(mismatch());
        }
    }
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl(dir: &Path, args: &[&str]) -> bool {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Every key form nginx loads, the openssl command making it and its PEM marker: RSA as
    /// PKCS#1 and PKCS#8, ECDSA as SEC1 and PKCS#8, Ed25519.
    const KEY_FORMS: [(&str, &[&str], &str); 5] = [
        (
            "rsa1.key",
            &["genrsa", "-traditional", "-out", "rsa1.key", "2048"],
            "BEGIN RSA PRIVATE KEY",
        ),
        (
            "rsa8.key",
            &["genpkey", "-algorithm", "RSA", "-out", "rsa8.key"],
            "BEGIN PRIVATE KEY",
        ),
        (
            "ec1.key",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ec1.key",
            ],
            "BEGIN EC PRIVATE KEY",
        ),
        (
            "ec8.key",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-out",
                "ec8.key",
            ],
            "BEGIN PRIVATE KEY",
        ),
        (
            "ed.key",
            &["genpkey", "-algorithm", "ed25519", "-out", "ed.key"],
            "BEGIN PRIVATE KEY",
        ),
    ];

    /// A self-signed certificate for `key` (`openssl req -new -x509`), named after it.
    fn self_signed_for(d: &Path, key: &str) -> String {
        let crt = key.replace(".key", ".crt");
        assert!(openssl(
            d,
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                key,
                "-out",
                &crt,
                "-days",
                "30",
                "-subj",
                "/CN=localhost"
            ]
        ));
        crt
    }

    /// Every key form of [`KEY_FORMS`] loads with its certificate; then the X.509 v1 and
    /// mismatched-key cases on the same files.
    #[test]
    fn loads_every_key_form_and_matches_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        if !openssl(d, &["version"]) {
            eprintln!("skipped: openssl is not installed");
            return;
        }
        for (key, gen, marker) in KEY_FORMS {
            assert!(openssl(d, gen), "openssl {gen:?}");
            let pem = std::fs::read_to_string(d.join(key)).unwrap();
            assert!(pem.contains(marker), "{key}: {pem}");
            let crt = self_signed_for(d, key);
            let loaded = load_certified_key(&d.join(&crt), &d.join(key));
            assert!(loaded.is_ok(), "{key}: {:?}", loaded.err());
        }
        loads_a_v1_certificate(d);
        refuses_a_key_of_another_certificate(d);
    }

    /// A self-signed server certificate made by `openssl x509 -req -signkey` is X.509 v1.
    fn loads_a_v1_certificate(d: &Path) {
        assert!(openssl(
            d,
            &["req", "-new", "-key", "rsa8.key", "-out", "v1.csr", "-subj", "/CN=app"]
        ));
        assert!(openssl(
            d,
            &[
                "x509", "-req", "-days", "365", "-in", "v1.csr", "-signkey", "rsa8.key", "-out",
                "v1.pem"
            ]
        ));
        let loaded = load_certified_key(&d.join("v1.pem"), &d.join("rsa8.key"));
        assert!(loaded.is_ok(), "v1: {:?}", loaded.err());
    }

    /// A key that belongs to another certificate is refused, naming both files.
    fn refuses_a_key_of_another_certificate(d: &Path) {
        let err = load_certified_key(&d.join("ec1.crt"), &d.join("rsa8.key")).unwrap_err();
        assert!(
            matches!(
                err,
                PemError::KeyMismatch { .. } | PemError::UnsupportedKey { .. }
            ),
            "{err}"
        );
        let err = load_certified_key(&d.join("ec1.crt"), &d.join("ec8.key")).unwrap_err();
        assert!(err.to_string().contains("ec8.key"), "{err}");
    }

    #[test]
    fn errors_name_the_file_and_never_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(load_certs(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.pem"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "hello\n").unwrap();
        assert!(matches!(load_certs(&empty), Err(PemError::Empty { .. })));
        assert!(matches!(load_key(&empty), Err(PemError::Empty { .. })));
    }

    #[test]
    fn group_readable_keys_are_reported() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            check_key_permissions(&key),
            Err(PemError::KeyPermissions { mode: 0o644, .. })
        ));
        // Group-readable passes only for a root-owned file (the tests may run as root).
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let root_owned = std::fs::metadata(&key).unwrap().uid() == 0;
        assert_eq!(check_key_permissions(&key).is_ok(), root_owned);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_key_permissions(&key).is_ok());
    }

    /// A reader with uid `uid` in group `gid` only.
    fn reader(uid: u32, gid: u32) -> Option<KeyReader> {
        Some(KeyReader {
            uid,
            gids: vec![gid],
        })
    }

    #[test]
    fn key_access_covers_every_mode_and_owner() {
        use KeyAccess::*;
        let k8s = reader(10001, 10001);
        let root = reader(0, 0);
        let outsider = reader(20002, 20002);
        #[rustfmt::skip]
        let cases: [(u32, u32, u32, &Option<KeyReader>, KeyAccess); 22] = [
            // Only the owner can read it, whoever owns it and whoever reads it.
            (0o600, 10001, 10001, &k8s, Private),
            (0o400, 10001, 10001, &k8s, Private),
            (0o700, 10001, 10001, &k8s, Private),
            (0o600, 0, 0, &root, Private),
            (0o400, 0, 10001, &k8s, Private),
            // Owned by root, group read only: the Kubernetes fsGroup secret, root:ringgate 0640.
            (0o440, 0, 10001, &k8s, SharedWithReader),
            (0o640, 0, 10001, &k8s, SharedWithReader),
            (0o440, 0, 10001, &None, SharedWithReader),
            // ... though ringgate does not read it through the group: served, with a note.
            (0o440, 0, 10001, &root, SharedNeedlessly),
            (0o640, 0, 0, &root, SharedNeedlessly),
            (0o440, 0, 10001, &outsider, SharedNeedlessly),
            // Group read on a key not owned by root.
            (0o640, 10001, 10001, &k8s, Exposed),
            (0o440, 10001, 10001, &k8s, Exposed),
            (0o640, 10001, 0, &root, Exposed),
            // Others may read, or the group may write or execute, whoever owns it.
            (0o644, 0, 10001, &k8s, Exposed),
            (0o444, 0, 10001, &k8s, Exposed),
            (0o604, 0, 0, &root, Exposed),
            (0o660, 0, 10001, &k8s, Exposed),
            (0o620, 0, 10001, &k8s, Exposed),
            (0o650, 0, 10001, &k8s, Exposed),
            (0o644, 10001, 10001, &k8s, Exposed),
            (0o604, 10001, 10001, &k8s, Exposed),
        ];
        for (mode, owner, group, who, expected) in cases {
            let file = KeyFileMode { mode, owner, group };
            assert_eq!(
                key_access(file, who.as_ref()),
                expected,
                "mode {mode:o} {owner}:{group} read by {who:?}"
            );
            assert_eq!(
                key_mode_allowed(mode, owner),
                expected != Exposed,
                "{mode:o}"
            );
        }
    }

    #[test]
    fn each_key_outcome_has_one_exact_message() {
        let path = Path::new("/k/tls.key");
        let file = |mode, owner, group| KeyFileMode { mode, owner, group };
        let advice = "run `chmod 600 /k/tls.key`, or, for a key its group must read, make it owned by root with mode 0640 or 0440 (Kubernetes: fsGroup and defaultMode: 0440 on the secret volume)";
        for allow in [false, true] {
            for f in [file(0o600, 10001, 10001), file(0o440, 0, 10001)] {
                let v = judge_key(path, f, reader(10001, 10001).as_ref(), allow);
                assert!(matches!(v, KeyVerdict::Accepted), "{f:?}: {v:?}");
            }
            match judge_key(path, file(0o440, 0, 10001), reader(0, 0).as_ref(), allow) {
                KeyVerdict::Noted(n) => assert_eq!(n, "private key readable by its group (gid 10001, mode 440, owned by root): allowed, as for a Kubernetes secret volume with fsGroup; ringgate (uid 0) does not read it through that group, so `chmod g-r /k/tls.key` would keep it from the group's other members"),
                v => panic!("{v:?}"),
            }
        }
        let k8s = reader(10001, 10001);
        match judge_key(path, file(0o644, 0, 0), k8s.as_ref(), true) {
            KeyVerdict::Insecure(w) => assert_eq!(w, format!("private key readable by group or others (mode 644), served only because runtime.allow_insecure_key_permissions = true; {advice}")),
            v => panic!("{v:?}"),
        }
        match judge_key(path, file(0o640, 10001, 10001), k8s.as_ref(), true) {
            KeyVerdict::Insecure(w) => assert_eq!(w, format!("private key readable by group or others (mode 640, owned by uid 10001; only a key owned by root may be read by its group), served only because runtime.allow_insecure_key_permissions = true; {advice}")),
            v => panic!("{v:?}"),
        }
        match judge_key(path, file(0o644, 0, 0), k8s.as_ref(), false) {
            KeyVerdict::Refused(e) => assert_eq!(e.to_string(), format!("/k/tls.key is readable by group or others (mode 644); {advice}; or set runtime.allow_insecure_key_permissions = true to serve it anyway")),
            v => panic!("{v:?}"),
        }
        match judge_key(path, file(0o440, 10001, 10001), k8s.as_ref(), false) {
            KeyVerdict::Refused(e) => assert_eq!(e.to_string(), format!("/k/tls.key is readable by group or others (mode 440, owned by uid 10001; only a key owned by root may be read by its group); {advice}; or set runtime.allow_insecure_key_permissions = true to serve it anyway")),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn the_process_reader_is_read_from_proc() {
        let me = KeyReader::current().unwrap();
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert_eq!(me.uid, meta.uid());
        assert!(me.gids.contains(&meta.gid()), "{me:?}");
    }
}
