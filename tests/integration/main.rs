//! Integration tests: the real `ringgate` binary on loopback, driven by a rustls client and
//! curl, in front of a recording upstream, with certificates made per test.

mod support;

mod access_log;
mod alpn;
mod ca_tool;
mod config_check;
mod deploy;
mod doctor;
mod failing_upstreams;
mod grpc;
mod guides;
mod hostile_clients;
mod http2;
mod http_proxy;
mod identity;
mod lifecycle;
mod log_flood;
mod nginx_import;
mod observability;
mod regressions;
mod reload;
mod revocation;
mod revocation_fetch;
mod smuggling;
mod tls_audit;
mod tls_records;
mod tls_verify;
mod tune;
mod upstream_reuse;
mod upstream_tls;
mod websocket;
