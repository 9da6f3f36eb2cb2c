//! Pure certificate logic, no I/O beyond reading files: PEM loading, chain verification with
//! OpenSSL's semantics, CRLs, OCSP responses, host names, signatures and the identity a
//! certificate carries as nginx prints it. `tls/` plugs this into rustls; `tools/` uses it too.
//!
//! Dependencies run one way: `verify` -> `crl` -> {`trust`, `signature`, `identity`}, and
//! `trust` -> `cert` -> `signature`; `ocsp` uses `signature` and `identity`.

mod cert;
pub mod crl;
pub mod hostname;
pub mod identity;
pub mod ocsp;
pub mod pem;
pub mod signature;
pub mod trust;
pub mod verify;
