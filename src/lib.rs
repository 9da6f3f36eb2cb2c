//! ringgate: a thread-per-core io_uring edge proxy that terminates mutual TLS, decides access
//! from the client certificate, and forwards HTTP/1.1 to upstreams.
//!
//! # Layout
//! - [`config`]: the TOML file into typed, validated structs (all errors at once, with lines).
//! - [`runtime`]: one pinned worker thread per core, each with its own monoio runtime,
//!   SO_REUSEPORT listeners, TLS configs and pools; signals and graceful shutdown.
//! - [`tls`]: certificates by SNI, nginx-compatible client verification (depth, v1
//!   certificates, optional modes), tickets, and the rustls stream adapter.
//! - [`identity`]: the client certificate's identity as nginx prints it.
//! - [`http`]: the pure HTTP/1.1 codec (parsing, framing, rewriting, canned responses).
//! - [`proxy`]: the connection and request path: handshake, route, forward, relay.
//! - [`upstream`]: connecting to upstreams and per-core keep-alive pools.
//! - [`vars`]: nginx `$variables`, compiled at load time.
//! - [`nginx`]: an nginx.conf translated into this configuration (`--nginx-config`).
//! - [`ca`]: `ringgate ca`, a certificate authority in an `openssl ca` directory.
//! - [`demo`]: the self-contained demo (`ringgate demo`).
//! - [`doctor`]: findings about the configured certificates, keys and CRLs (`ringgate check`).
//! - [`tune`]: host settings for many connections and their checker (`ringgate tune --check`).
//!
//! Data flows one way: accept -> handshake -> identify -> route -> forward -> log.

pub mod access;
pub mod access_log;
pub mod admin;
pub mod ca;
pub mod clock;
pub mod config;
pub mod conn;
pub mod demo;
pub mod doctor;
pub mod files;
pub mod http;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod nginx;
pub mod proxy;
pub mod runtime;
pub mod tls;
pub mod tune;
pub mod upstream;
pub mod vars;
pub mod vhost;
