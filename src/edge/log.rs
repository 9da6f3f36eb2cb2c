//! The log phase: what the access log needs to know about a request's outcome
//! ([`LogFacts`], filled in by the phases as they go), the access-log line rendered with the
//! request's variables, and the request's metrics. The line goes to this core's buffer
//! ([`writer`]), never to a lock.

pub mod writer;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::core::{Core, Generation};
use super::outcome::Refusal;
use super::peer::Peer;
use super::request::Request;
use super::route;
use crate::http::{Canned, RequestHead};

/// What only the access log knows: the outcome of a request.
#[derive(Debug, Default)]
pub struct LogFacts {
    /// `$status`.
    pub status: u16,
    /// `$body_bytes_sent`.
    pub body_bytes: u64,
    /// `$bytes_sent`.
    pub bytes: u64,
    /// When the request head started arriving.
    pub started: Option<Instant>,
    /// `$upstream_addr`.
    pub upstream_addr: Option<SocketAddr>,
    /// `$upstream_status`.
    pub upstream_status: Option<u16>,
    /// `$upstream_response_time`.
    pub upstream_time: Option<Duration>,
    /// `$access_decision`: `allow`, `allow role=admin`, `deny: ...`.
    pub decision: std::borrow::Cow<'static, str>,
    /// The server (listener index) that handled the request: whose access log gets the line.
    pub server: usize,
}

impl LogFacts {
    /// Records a canned page as the response.
    pub fn canned(&mut self, page: Canned) {
        let bytes = page.bytes();
        self.status = page.status();
        self.bytes = bytes.len() as u64;
        let head = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |i| i + 4);
        self.body_bytes = (bytes.len() - head) as u64;
    }
}

impl LogFacts {
    /// Records ringgate's own answer to a refused request.
    pub fn refused(&mut self, refusal: &Refusal) {
        self.canned(refusal.page());
    }
}

/// A request as it reached the log phase: its head as received, and its place on the
/// connection.
pub struct Logged<'a> {
    /// The parsed head.
    pub head: &'a RequestHead,
    /// The bytes it was parsed from.
    pub bytes: &'a [u8],
    /// `$connection_requests`.
    pub served: u64,
}

/// Counts the request in this core's metrics and writes its access-log line, when its server
/// logs.
pub fn request(
    core: &Core,
    generation: &Generation,
    peer: &Peer,
    req: &Logged<'_>,
    facts: &LogFacts,
) {
    let elapsed = facts.started.map_or(Duration::ZERO, |t| t.elapsed());
    crate::metrics::with(|m| {
        m.request(facts.status, elapsed);
        if let Some(t) = facts.upstream_time {
            m.upstream(t);
        }
    });
    let Some(server) = generation.config.listeners.get(facts.server) else {
        return;
    };
    let Some(al) = &server.access_log else {
        return;
    };
    let uri = route::log_uri(req.head, req.bytes);
    let host = route::request_host(server, req.head, req.bytes);
    let request = Request {
        peer,
        server,
        maps: &generation.config.maps,
        head: req.head,
        bytes: req.bytes,
        host: &host,
        uri: &uri,
        served: req.served,
        last: true,
    };
    let mut vars = request.vars(b"");
    vars.log = Some(facts);
    core.access_log.append(&al.path, |buf| {
        al.format.render(buf, |v, o| vars.eval(v, o))
    });
}
