//! rustls client configuration: client certificate, server verification, version pinning,
//! session resumption.

use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::args::{Args, Mode, TlsVersion};

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot read certificates from {}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    match PrivateKeyDer::from_pem_file(path) {
        Ok(key) => Ok(key),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            Err(anyhow!("no private key in {}", path.display()))
        }
        Err(e) => Err(anyhow!("cannot read key from {}: {e}", path.display())),
    }
}

/// Accepts any server certificate (still checks the handshake signatures).
#[derive(Debug)]
struct Insecure(Arc<CryptoProvider>);

impl ServerCertVerifier for Insecure {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub struct Tls {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    /// Whether sessions are resumed (each client then keeps its own store).
    pub resume: bool,
}

pub fn build(args: &Args, host: &str) -> Result<Tls> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match args.tls {
        Some(TlsVersion::V12) => &[&rustls::version::TLS12],
        Some(TlsVersion::V13) => &[&rustls::version::TLS13],
        None => rustls::DEFAULT_VERSIONS,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .context("TLS versions")?;
    let builder = if args.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Insecure(provider)))
    } else {
        let path = args
            .cacert
            .as_deref()
            .ok_or_else(|| anyhow!("--cacert or --insecure is required"))?;
        let mut roots = RootCertStore::empty();
        for c in load_certs(path)? {
            roots
                .add(c)
                .with_context(|| format!("bad CA certificate in {}", path.display()))?;
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => builder
            .with_client_auth_cert(load_certs(c)?, load_key(k)?)
            .context("client certificate and key do not fit")?,
        _ => builder.with_no_client_auth(),
    };
    if matches!(args.mode, Mode::H2 | Mode::Grpc) {
        // h2 only: a server that does not choose it fails the connection (no HTTP/1.1
        // fallback, which would measure something else).
        config.alpn_protocols = vec![b"h2".to_vec()];
    }
    let resume = args.mode != Mode::Handshake || args.resume;
    config.resumption = if resume {
        Resumption::in_memory_sessions(64)
    } else {
        Resumption::disabled()
    };
    let name = args.sni.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| anyhow!("invalid server name {name:?}"))?;
    Ok(Tls {
        config: Arc::new(config),
        server_name,
        resume,
    })
}

impl Tls {
    /// The same client with a session store of its own (when resumption is on).
    pub fn with_own_session_store(&self) -> Tls {
        let config = if self.resume {
            let mut config = (*self.config).clone();
            config.resumption = Resumption::in_memory_sessions(64);
            Arc::new(config)
        } else {
            self.config.clone()
        };
        Tls {
            config,
            server_name: self.server_name.clone(),
            resume: self.resume,
        }
    }
}
