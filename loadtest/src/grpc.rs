//! gRPC over HTTP/2, as far as a unary echo needs it: the length-prefixed message
//! (gRPC's "Length-Prefixed-Message": a compressed flag byte, a 4-byte big-endian length, the
//! message), the content type, and the verdict `--mode grpc` gives each response. Shared by
//! `ringgate-load` and `ringgate-grpc-echo` (the upstream of bench/run.sh's `grpc-*`
//! scenarios).

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;

/// The largest message either side takes (gRPC's default receive limit).
pub const MAX_MESSAGE: usize = 4 << 20;

/// The bytes before each message: the compressed flag and the length.
pub const PREFIX: usize = 5;

/// `grpc-status` of a call that succeeded.
pub const OK: &str = "0";

/// One uncompressed message, length-prefixed.
pub fn frame(message: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(PREFIX + message.len());
    b.put_u8(0);
    b.put_u32(message.len() as u32);
    b.put_slice(message);
    b.freeze()
}

/// The payload `--mode grpc` sends: `size` bytes that are not all alike, so that an echo
/// that garbles or reorders them is caught.
pub fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// `application/grpc`, or `application/grpc+FORMAT` / `application/grpc;PARAMS`.
pub fn is_grpc_content_type(v: &[u8]) -> bool {
    let rest = match v.get(..16) {
        Some(p) if p.eq_ignore_ascii_case(b"application/grpc") => &v[16..],
        _ => return false,
    };
    rest.is_empty() || rest[0] == b'+' || rest[0] == b';'
}

/// Checks that `body` is a whole number of uncompressed length-prefixed messages; their count.
/// (ringgate-grpc-echo's check of what it is sent.)
#[cfg_attr(not(test), allow(dead_code))]
pub fn messages(body: &[u8]) -> Result<usize, String> {
    let mut at = 0;
    let mut n = 0;
    while at < body.len() {
        let Some(head) = body.get(at..at + PREFIX) else {
            return Err(format!(
                "{} bytes after message {n}: not a whole message prefix",
                body.len() - at
            ));
        };
        if head[0] != 0 {
            return Err(format!("message {n} is compressed (flag {})", head[0]));
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_MESSAGE {
            return Err(format!("message {n} of {len} bytes is over the limit"));
        }
        if body.len() - at - PREFIX < len {
            return Err(format!(
                "message {n} says {len} bytes, {} follow",
                body.len() - at - PREFIX
            ));
        }
        at += PREFIX + len;
        n += 1;
    }
    Ok(n)
}

/// A response as `--mode grpc` saw it.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The response head's `content-type`.
    pub content_type: Option<&'a [u8]>,
    /// Where `grpc-status` is: the trailers, or the head of a trailers-only response (a HEADERS
    /// frame that ends the stream); None when the stream ended without either.
    pub trailers: Option<&'a HeaderMap>,
    /// Body bytes received.
    pub body_len: u64,
    /// Every body byte was the message's byte at its place (and no more came than it has).
    pub body_matches: bool,
}

/// Why a response is not a successful echo: the error's cause in the report (`grpc` when
/// `grpc-status` is missing or not 0, `bad_response` otherwise) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: &'static str,
    pub msg: String,
}

/// The `grpc-status` of a response (as the report counts it): its value, or `none`.
pub fn status_of(r: &Response<'_>) -> String {
    match r.trailers.and_then(|t| t.get("grpc-status")) {
        Some(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        None => "none".to_string(),
    }
}

/// The verdict on one response to the message `sent` (prefix included): Ok only for status
/// 200, a gRPC content type, `grpc-status: 0` and exactly the message sent, echoed.
pub fn check(r: &Response<'_>, sent: &[u8]) -> Result<(), Failure> {
    let grpc_status = r.trailers.and_then(|t| t.get("grpc-status"));
    let detail = || {
        let mut d = String::new();
        if let Some(s) = grpc_status {
            d.push_str(&format!(
                ", grpc-status {}",
                String::from_utf8_lossy(s.as_bytes())
            ));
        }
        if let Some(m) = r.trailers.and_then(|t| t.get("grpc-message")) {
            d.push_str(&format!(" ({})", String::from_utf8_lossy(m.as_bytes())));
        }
        d
    };
    if r.status != 200 {
        return Err(Failure {
            kind: "bad_response",
            msg: format!("gRPC call answered HTTP {}{}", r.status, detail()),
        });
    }
    match grpc_status {
        None => {
            return Err(Failure {
                kind: "grpc",
                msg: "no grpc-status: the response ended without trailers".to_string(),
            })
        }
        Some(s) if s.as_bytes() != OK.as_bytes() => {
            return Err(Failure {
                kind: "grpc",
                msg: format!("gRPC call failed{}", detail()),
            })
        }
        Some(_) => {}
    }
    if !r.content_type.is_some_and(is_grpc_content_type) {
        let ct = r.content_type.map_or("none".to_string(), |c| {
            String::from_utf8_lossy(c).into_owned()
        });
        return Err(Failure {
            kind: "bad_response",
            msg: format!("content-type {ct}, not application/grpc"),
        });
    }
    if !r.body_matches || r.body_len != sent.len() as u64 {
        return Err(Failure {
            kind: "bad_response",
            msg: format!(
                "the echo is not the message sent ({} bytes back for {}{})",
                r.body_len,
                sent.len(),
                if r.body_matches { "" } else { ", bytes differ" }
            ),
        });
    }
    Ok(())
}
