//! ringgate: a thread-per-core io_uring edge proxy that terminates mutual TLS, decides access
//! from the client certificate, and forwards HTTP/1.1 to upstreams.
//!
//! # Layout
//! - [`server`]: the process: one pinned worker thread per core with its own monoio runtime,
//!   reloads, signals, graceful shutdown, the admin endpoint, the error log.
//! - [`edge`]: the data path, one module per phase: accept -> handshake -> peer -> route ->
//!   authorize -> forward / respond -> log.
//! - [`config`]: the TOML file into typed, validated structs (all errors at once, with lines).
//! - [`tls`]: rustls glue: certificates by SNI, client-certificate modes and the verdict cache,
//!   tickets, the ClientHello checks, the TLS stream.
//! - [`x509`]: pure certificate logic: chain verification with OpenSSL's semantics, CRLs,
//!   OCSP, host names, the identity as nginx prints it.
//! - [`fetch`]: revocation material from the network, off the workers: the bounded HTTP/1.1
//!   client, the last good CRLs and staples, client-certificate OCSP (per-core cache, one
//!   query in flight per certificate).
//! - [`http`]: the pure HTTP/1.1 codec (parsing, framing, rewriting, canned responses).
//! - [`upstream`]: connecting to upstreams and per-core keep-alive pools.
//! - [`policy`]: roles and certificate + address bindings, compiled from `[identity]`.
//! - [`vars`]: nginx `$variables`, maps, conditions and log formats, compiled at load time.
//! - [`tools`]: `ca`, `check` (doctor), `tune`, the nginx.conf importer.
//! - [`demo`]: `ringgate demo`: its own CA, certificates and upstream, then the server.

pub mod clock;
pub mod config;
pub mod conn;
pub mod deadline;
pub mod demo;
pub mod edge;
pub mod fetch;
pub mod files;
pub mod http;
pub mod http2;
pub mod metrics;
pub mod policy;
pub mod quiet;
pub mod server;
pub mod tls;
pub mod tools;
pub mod upstream;
pub mod vars;
pub mod x509;
