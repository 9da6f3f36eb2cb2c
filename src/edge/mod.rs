//! The data path, one module per phase in the order a connection goes through them:
//!
//! 1. [`accept`]: admit the connection against the limits (per core, per process).
//! 2. [`handshake`]: TLS, the server chosen by SNI, the client certificate settled.
//! 3. [`peer`]: what the handshake established (TLS facts, identity, role, binding), once per
//!    connection.
//! 4. [`connection`]: the HTTP/1.1 connection: read a head, run the request phases, keep alive.
//! 5. [`route`]: the server by Host (421 when it escapes the handshake), rules, the location.
//! 6. [`authorize`]: the location's certificate requirement, bindings, roles.
//! 7. [`forward`] / [`respond`] / [`static_files`]: the content phase.
//! 8. [`log`]: the access-log line and metrics.
//!
//! [`core`] is the per-core state every phase reads; nothing here is shared across cores.

pub mod accept;
pub mod authorize;
pub mod body;
pub mod connection;
pub mod core;
pub mod drain;
pub mod forward;
pub mod log;
pub mod peer;
pub mod route;
pub mod static_files;
