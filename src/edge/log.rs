//! The log phase: the access-log line rendered with the request's variables, and the
//! request's metrics. The line goes to this core's buffer ([`writer`]), never to a lock.

pub mod writer;

use std::time::Duration;

use writer::WorkerLog;

use super::outcome::LogFacts;
use super::peer::Peer;
use super::request::{Protocol, Request};
use super::route;
use crate::config::Config;
use crate::http::RequestHead;

/// A request as it reached the log phase: its head as received, and its place on the
/// connection.
pub struct Logged<'a> {
    /// The protocol it came over.
    pub protocol: Protocol,
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
    access_log: &WorkerLog,
    config: &Config,
    peer: &Peer,
    req: &Logged<'_>,
    facts: &LogFacts,
) {
    let elapsed = facts.started.map_or(Duration::ZERO, |t| t.elapsed());
    crate::metrics::with(|m| {
        m.request(req.protocol.name(), facts.status, elapsed);
        if let Some(t) = facts.upstream_time {
            m.upstream(t);
        }
    });
    let Some(server) = config.servers.get(facts.server) else {
        return;
    };
    let Some(al) = &server.access_log else {
        return;
    };
    let uri = route::log_uri(req.head, req.bytes);
    let host = route::request_host(server, req.head, req.bytes);
    let request = Request {
        protocol: req.protocol,
        peer,
        server,
        maps: &config.maps,
        head: req.head,
        bytes: req.bytes,
        host: &host,
        uri: &uri,
        served: req.served,
        last: true,
    };
    let mut vars = request.vars(b"");
    vars.log = Some(facts);
    access_log.append(&al.path, |buf| {
        al.format.render(buf, |v, o| vars.eval(v, o))
    });
}
