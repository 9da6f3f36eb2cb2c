//! The data path, one module per phase in the order a connection goes through them:
//!
//! 1. [`accept`]: admit the connection against the limits (per core, per process).
//! 2. [`handshake`]: TLS, the server chosen by SNI, the client certificate settled.
//! 3. [`peer`]: what the handshake established (TLS facts, identity, role, binding), once per
//!    connection.
//! 4. [`connection`]: the HTTP/1.1 connection: read a head, hand it to the request phases,
//!    log, keep alive. Another protocol (HTTP/2 streams, tunnels) is another driver here that
//!    produces the same [`request::Incoming`] and calls the same [`phases::run`].
//! 5. [`phases`]: one request through the phases below, whatever protocol carried it
//!    ([`request`] holds the types they take).
//! 6. [`route`]: the path normalized, the server by Host (421 when it escapes the handshake),
//!    then rules (`if`/`return`) and the location.
//! 7. [`authorize`]: the location's certificate requirement, bindings, roles.
//! 8. content: [`forward`] (with [`body`]), [`static_files`], or [`respond`] (`return`).
//! 9. [`log`]: the access-log line and the request's metrics.
//!
//! [`core`] is the per-core state every phase reads; nothing here is shared across cores.
//! [`outcome`] decides, in one place, what a refusal answers and how it is named;
//! [`variables`] evaluates nginx's `$variables` against a request.

pub mod accept;
pub mod authorize;
pub mod body;
pub mod connection;
pub mod core;
pub mod drain;
pub mod forward;
pub mod handshake;
pub mod http1;
pub mod http2;
pub mod log;
pub mod ocsp;
pub mod outcome;
pub mod peer;
pub mod phases;
pub mod refusal_log;
pub mod request;
pub mod respond;
pub mod route;
pub mod session;
pub mod static_files;
pub mod tunnel;
pub mod variables;
