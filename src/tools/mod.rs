//! The commands beside `run`: each reads the configuration or the host and never serves
//! traffic itself.
//! - [`ca`]: `ringgate ca`, a certificate authority in an `openssl ca` directory.
//! - [`demo`]: `ringgate demo`, the self-contained demo.
//! - [`doctor`]: findings about certificates, keys and CRLs (`ringgate check`).
//! - [`nginx`]: an nginx.conf translated into this configuration (`--nginx-config`).
//! - [`tune`]: host settings for many connections (`ringgate tune [--check]`).

pub mod ca;
pub mod demo;
pub mod doctor;
pub mod nginx;
pub mod tune;
