//! HTTP/2 streams as the request phases see them.
//!
//! The phases read an HTTP/1.1 head and speak HTTP/1.1 on a [`crate::conn::Stream`]. An HTTP/2
//! stream joins them through two conversions, so that every phase (routing, rules, identity,
//! authorization, proxying, static files, logging) runs unchanged and identically for both
//! protocols:
//! - [`head`]: the stream's request (pseudo-headers and fields, already checked by the frame
//!   layer) written as the HTTP/1.1 head it stands for, which the HTTP/1.1 parser then reads
//!   with its own limits;
//! - [`exchange`]: the stream as a [`crate::conn::Stream`]: the request body read from DATA
//!   frames (chunked when it has no length), and the HTTP/1.1 response the phases write turned
//!   into HEADERS and DATA frames with HTTP/2's flow control.

pub mod exchange;
pub mod head;
pub mod prefixed;
pub mod upstream;

pub use exchange::Exchange;

/// Fields that describe an HTTP/1.1 connection or its framing, not the message: HTTP/2 forbids
/// them (RFC 9113 §8.2.2), in a response to a client as in a request to an upstream.
const CONNECTION_SPECIFIC: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// Whether `name` (lowercase, as `http::HeaderName` keeps it) is connection-specific.
fn is_connection_specific(name: &str) -> bool {
    CONNECTION_SPECIFIC.contains(&name)
}

/// Writes one HTTP/1.1 field line.
fn field(out: &mut impl bytes::BufMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}
