//! The commands beside `run`: each reads the configuration, a CA directory or the host, and
//! none serves traffic (so `server/` may use them: the doctor's findings are logged at start
//! and reload, the tuning hint at start). `ringgate demo`, which does serve, is [`crate::demo`].
//! - [`ca`]: `ringgate ca`, a certificate authority in an `openssl ca` directory.
//! - [`doctor`]: findings about certificates, keys and CRLs (`ringgate check`).
//! - [`nginx`]: an nginx.conf translated into this configuration (`--nginx-config`).
//! - [`tune`]: host settings for many connections (`ringgate tune [--check]`).

pub mod ca;
pub mod doctor;
pub mod nginx;
pub mod probe;
pub mod tune;
