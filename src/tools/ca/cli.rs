//! The `ringgate ca` command line: clap definitions and what each subcommand prints. Kept
//! here so that `main.rs` only adds one subcommand.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{KeyType, Role, Subject};

/// `ringgate ca`: a certificate authority in an `openssl ca` directory.
#[derive(Debug, Args)]
pub struct CaArgs {
    /// The CA directory (as `dir` in its openssl.cnf).
    #[arg(short, long, global = true, default_value = ".")]
    pub dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: CaCommand,
}

/// Subject attributes shared by `init` and `issue`.
#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// Common name (CN).
    #[arg(long)]
    pub cn: String,
    /// Organizational unit (OU): the field roles are read from.
    #[arg(long)]
    pub ou: Option<String>,
    /// Organization (O).
    #[arg(long = "org", short = 'o')]
    pub org: Option<String>,
    /// Two-letter country (C).
    #[arg(long)]
    pub country: Option<String>,
    /// State or province (ST).
    #[arg(long)]
    pub state: Option<String>,
    /// Locality (L).
    #[arg(long)]
    pub locality: Option<String>,
}

impl SubjectArgs {
    fn subject(&self) -> Subject {
        Subject {
            country: self.country.clone(),
            state: self.state.clone(),
            locality: self.locality.clone(),
            org: self.org.clone(),
            ou: self.ou.clone(),
            cn: self.cn.clone(),
        }
    }
}

/// `ringgate ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a CA: DIR/{certs,crl,newcerts,private(0700)}, ca.crt, private/ca.key (0600),
    /// index.txt, serial, crlnumber and an openssl.cnf for `openssl ca`.
    Init {
        /// The directory to create (default: --dir).
        dir: Option<PathBuf>,
        /// The CA's subject.
        #[command(flatten)]
        subject: InitSubject,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Key algorithm.
        #[arg(long, value_enum, default_value_t = KeyType::P256)]
        key_type: KeyType,
    },
    /// Issue a certificate and key: certs/NAME.crt, private/NAME.key (0600), recorded in
    /// index.txt, serial and newcerts/.
    Issue {
        /// server (serverAuth) or client (clientAuth).
        #[arg(value_enum)]
        role: IssueRole,
        /// The subject.
        #[command(flatten)]
        subject: SubjectArgs,
        /// subjectAltName: DNS:name, IP:address, URI:uri, email:address (comma-separated or
        /// repeated); a server certificate without one gets DNS:<cn>.
        #[arg(long)]
        san: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Key algorithm.
        #[arg(long, value_enum, default_value_t = KeyType::P256)]
        key_type: KeyType,
        /// File name stem under certs/ and private/ (default: from the CN).
        #[arg(long)]
        name: Option<String>,
    },
    /// Mark a certificate revoked in index.txt (then publish with `crl`).
    Revoke {
        /// Serial number in hex, as `ringgate ca list` and `openssl x509 -serial` show it.
        #[arg(long, conflicts_with = "cert", required_unless_present = "cert")]
        serial: Option<String>,
        /// The certificate file (added to index.txt first if openssl x509 -req made it).
        #[arg(long)]
        cert: Option<PathBuf>,
        /// CRL reason: unspecified, keyCompromise, CACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Publish a CRL of every revoked certificate (default crl/ca.crl.pem); crlnumber + 1.
    Crl {
        /// Days until nextUpdate.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Where to write it (PEM).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export a certificate and its key as a PKCS#12 file for browsers (mode 0600).
    ExportP12 {
        /// The NAME of certs/NAME.crt and private/NAME.key.
        name: Option<String>,
        /// The certificate file instead of certs/NAME.crt.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// The key file instead of private/NAME.key.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The output file (default: private/NAME.p12).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The export password.
        #[arg(long, conflicts_with = "password_env")]
        password: Option<String>,
        /// The environment variable holding the export password.
        #[arg(long)]
        password_env: Option<String>,
        /// The name browsers show (default: NAME).
        #[arg(long)]
        friendly_name: Option<String>,
    },
    /// List the certificates of index.txt with status and expiry.
    List,
}

/// The CA's subject, with defaults.
#[derive(Debug, Args)]
pub struct InitSubject {
    /// Common name (CN).
    #[arg(long, default_value = "ringgate CA")]
    pub cn: String,
    /// Organizational unit (OU).
    #[arg(long)]
    pub ou: Option<String>,
    /// Organization (O).
    #[arg(long = "org", short = 'o')]
    pub org: Option<String>,
    /// Two-letter country (C).
    #[arg(long)]
    pub country: Option<String>,
}

/// `issue server` or `issue client`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IssueRole {
    /// A TLS server certificate (serverAuth, SAN).
    Server,
    /// A TLS client certificate (clientAuth).
    Client,
}

/// Runs a `ringgate ca` command; errors are printed, exit 1.
pub fn run(args: CaArgs) -> ExitCode {
    match dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(args: CaArgs) -> Result<(), super::CaError> {
    let dir = args.dir;
    match args.command {
        CaCommand::Init {
            dir: d,
            subject,
            days,
            key_type,
        } => init(&d.unwrap_or(dir), subject, days, key_type),
        CaCommand::Issue {
            role,
            subject,
            san,
            days,
            key_type,
            name,
        } => issue(
            &dir,
            &super::IssueOptions {
                role: match role {
                    IssueRole::Server => Role::Server,
                    IssueRole::Client => Role::Client,
                },
                subject: subject.subject(),
                sans: san,
                days,
                key_type,
                name,
            },
        ),
        CaCommand::Revoke {
            serial,
            cert,
            reason,
        } => revoke(&dir, serial, cert, reason.as_deref()),
        CaCommand::Crl { days, out } => crl(&dir, days, out.as_deref()),
        CaCommand::ExportP12 {
            name,
            cert,
            key,
            out,
            password,
            password_env,
            friendly_name,
        } => {
            let password = export_password(password, password_env)?;
            let files = p12_files(&dir, name, cert, key, out)?;
            export_p12(&dir, &files, &password, friendly_name.as_deref())
        }
        CaCommand::List => list(&dir),
    }
}

/// `ca init`: makes the CA and says where its files are.
fn init(
    dir: &Path,
    subject: InitSubject,
    days: u32,
    key_type: KeyType,
) -> Result<(), super::CaError> {
    let crt = super::init(
        dir,
        &super::InitOptions {
            subject: Subject {
                country: subject.country,
                org: subject.org,
                ou: subject.ou,
                cn: subject.cn,
                ..Default::default()
            },
            days,
            key_type,
        },
    )?;
    println!("CA certificate: {}", crt.display());
    println!(
        "CA key:         {} (mode 0600)",
        crt.with_file_name("private").join("ca.key").display()
    );
    println!(
        "openssl:        openssl ca -config {} ...",
        crt.with_file_name("openssl.cnf").display()
    );
    Ok(())
}

/// `ca issue`: issues a certificate and says what and where it is.
fn issue(dir: &Path, options: &super::IssueOptions) -> Result<(), super::CaError> {
    let issued = super::issue(dir, options)?;
    println!("serial:      {}", issued.serial);
    println!("subject:     {}", issued.subject);
    println!("expires:     {}", crate::clock::iso8601(issued.not_after));
    println!("certificate: {}", issued.cert.display());
    println!("key:         {} (mode 0600)", issued.key.display());
    Ok(())
}

/// `ca revoke --serial S | --cert FILE [--reason R]`.
fn revoke(
    dir: &Path,
    serial: Option<String>,
    cert: Option<PathBuf>,
    reason: Option<&str>,
) -> Result<(), super::CaError> {
    let target = match (serial, cert) {
        (Some(s), _) => super::RevokeTarget::Serial(s),
        (None, Some(c)) => super::RevokeTarget::Cert(c),
        (None, None) => return Err(super::CaError::Invalid("give --serial or --cert".into())),
    };
    let e = super::revoke(dir, &target, reason)?;
    println!(
        "revoked {} {} ({}); publish it with `ringgate ca crl`",
        e.serial, e.subject, e.revoked
    );
    Ok(())
}

/// `ca crl`: writes the CRL and says what is in it.
fn crl(dir: &Path, days: u32, out: Option<&Path>) -> Result<(), super::CaError> {
    let c = super::crl(dir, days, out)?;
    println!(
        "CRL {} written: number {}, {} revoked, next update {}",
        c.path.display(),
        c.number,
        c.revoked,
        crate::clock::iso8601(c.next_update)
    );
    Ok(())
}

/// The export password: given, or read from the named environment variable.
fn export_password(
    password: Option<String>,
    password_env: Option<String>,
) -> Result<String, super::CaError> {
    match (password, password_env) {
        (Some(p), _) => Ok(p),
        (None, Some(var)) => std::env::var(&var)
            .map_err(|_| super::CaError::Invalid(format!("environment variable {var} is not set"))),
        (None, None) => Err(super::CaError::Invalid(
            "give the export password with --password or --password-env VAR".into(),
        )),
    }
}

/// The files of a PKCS#12 export.
struct P12Files {
    cert: PathBuf,
    key: PathBuf,
    out: PathBuf,
    /// The name the bundle is known by: NAME, or the certificate file's stem.
    stem: String,
}

/// The certificate and key to export (given, or NAME's in the CA directory) and the bundle's
/// path (given, or `private/STEM.p12`).
fn p12_files(
    dir: &Path,
    name: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    out: Option<PathBuf>,
) -> Result<P12Files, super::CaError> {
    let need = |what: &str| super::CaError::Invalid(format!("give NAME, or --{what}"));
    let cert = match (cert, &name) {
        (Some(c), _) => c,
        (None, Some(n)) => dir.join("certs").join(format!("{n}.crt")),
        (None, None) => return Err(need("cert")),
    };
    let key = match (key, &name) {
        (Some(k), _) => k,
        (None, Some(n)) => dir.join("private").join(format!("{n}.key")),
        (None, None) => return Err(need("key")),
    };
    let stem = name.unwrap_or_else(|| {
        cert.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cert".into())
    });
    let out = out.unwrap_or_else(|| dir.join("private").join(format!("{stem}.p12")));
    Ok(P12Files {
        cert,
        key,
        out,
        stem,
    })
}

/// `ca export-p12`: bundles the certificate, its key and the CA certificate (if present).
fn export_p12(
    dir: &Path,
    files: &P12Files,
    password: &str,
    friendly_name: Option<&str>,
) -> Result<(), super::CaError> {
    let ca = dir.join("ca.crt");
    super::export_p12(
        &files.cert,
        &files.key,
        ca.exists().then_some(ca.as_path()),
        &files.out,
        password,
        friendly_name.unwrap_or(&files.stem),
    )?;
    println!("PKCS#12: {} (mode 0600)", files.out.display());
    Ok(())
}

/// `ca list`: one line per issued certificate, with its status and days left.
fn list(dir: &Path) -> Result<(), super::CaError> {
    let rows = super::list(dir)?;
    println!(
        "{:<8} {:<10} {:<21} {:>6}  SUBJECT",
        "STATUS", "SERIAL", "EXPIRES", "DAYS"
    );
    for r in rows {
        let expires = r
            .entry
            .expires_at()
            .map(crate::clock::iso8601)
            .unwrap_or_else(|| r.entry.expires.clone());
        let days = r.days_left.map(|d| d.to_string()).unwrap_or_default();
        let extra = if r.entry.status == 'R' {
            format!(
                "  (revoked {}{})",
                r.entry
                    .revoked_at()
                    .map(crate::clock::iso8601)
                    .unwrap_or_default(),
                r.entry
                    .reason()
                    .map(|x| format!(", {x}"))
                    .unwrap_or_default()
            )
        } else {
            String::new()
        };
        println!(
            "{:<8} {:<10} {:<21} {:>6}  {}{extra}",
            r.status, r.entry.serial, expires, days, r.entry.subject
        );
    }
    Ok(())
}
