//! Shared pieces of the three HTTP/2 servers compared in this crate: the command line, the
//! one-thread io_uring runtime, the self-signed TLS configuration and the limits.
//!
//! Every server answers every request `200` with a 2-byte body, inline in the connection's
//! accept loop, or with `H2_ROUTES_STREAMS=1` from stream futures beside it as ringgate does; so
//! what differs between them is the frame layer and the way it reaches the socket.

use std::net::SocketAddr;
use std::sync::Arc;

pub use bytes::Bytes;

/// The response body.
pub const BODY: &[u8] = b"ok";

/// Limits shared by the routes, as ringgate sets them (src/edge/http2.rs).
pub const MAX_CONCURRENT_STREAMS: u32 = 128;
pub const STREAM_WINDOW: u32 = 64 * 1024;
pub const CONNECTION_WINDOW: u32 = 1024 * 1024;
pub const SEND_BUFFER: usize = 64 * 1024;
pub const MAX_HEADER_LIST: u32 = 16 * 1024;
pub const PENDING_ACCEPT_RESETS: usize = 20;
pub const LOCAL_ERROR_RESETS: usize = 1024;

/// `SERVER [--tls] PORT`: the port to listen on (127.0.0.1) and whether to speak TLS (ALPN h2)
/// or h2c with prior knowledge.
pub struct Args {
    pub addr: SocketAddr,
    pub tls: bool,
}

impl Args {
    pub fn parse() -> Args {
        let mut tls = false;
        let mut port = None;
        for a in std::env::args().skip(1) {
            match a.as_str() {
                "--tls" => tls = true,
                p => port = Some(p.parse::<u16>().expect("PORT")),
            }
        }
        let port = port.unwrap_or_else(|| {
            eprintln!("usage: SERVER [--tls] PORT");
            std::process::exit(2)
        });
        Args {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            tls,
        }
    }
}

/// Runs `f` on a one-thread monoio runtime with the io_uring driver (no fallback).
pub fn run<F: std::future::Future<Output = ()>>(f: impl FnOnce() -> F) {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .enable_timer()
        .build()
        .expect("io_uring runtime");
    rt.block_on(f());
}

/// A rustls 0.23 server configuration (aws-lc-rs) with a fresh self-signed certificate for
/// 127.0.0.1 and ALPN `h2`.
pub fn tls_config() -> Arc<rustls::ServerConfig> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("params");
    let cert = params.self_signed(&key).expect("cert");
    let der_key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], der_key)
    .expect("certificate");
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(cfg)
}

/// Says where the server listens, for the scripts.
pub fn announce(route: &str, args: &Args) {
    println!(
        "{route} listening on {} ({}) pid {}",
        args.addr,
        if args.tls {
            "TLS, ALPN h2"
        } else {
            "h2c prior knowledge"
        },
        std::process::id()
    );
}
