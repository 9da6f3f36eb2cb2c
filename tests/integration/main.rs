//! Integration tests: the real `ringgate` binary on loopback, driven by a rustls client and
//! curl, in front of a recording upstream, with certificates made per test.

mod support;

mod config_check;
mod http_proxy;
mod lifecycle;
mod nginx_import;
mod regressions;
mod seeds;
mod tls_verify;
