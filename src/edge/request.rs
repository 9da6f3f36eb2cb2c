//! One request through nginx's phases, whatever protocol carried it: route (the server by
//! Host, 421 when it escapes the handshake), server rules, the location, location rules,
//! authorize, content (`return`, static files, proxy). A protocol's connection driver reads a
//! head, hands it here as an [`Incoming`] with the [`Client`] to answer on, and gets back
//! whether the connection goes on ([`Next`]); the outcome is recorded in [`LogFacts`] for the
//! log phase.

use bytes::BytesMut;

use super::authorize;
use super::core::Generation;
use super::log::LogFacts;
use super::outcome::{Next, Refusal};
use super::peer::Peer;
use super::respond;
use super::route::{self, Routed};
use super::variables::RequestVars;
use crate::config::{Action, Listener, Rule, Socket};
use crate::conn::Stream;
use crate::http::RequestHead;
use crate::vars::map::VarMap;

/// The client side as the content phase uses it: the stream to answer on and the bytes read
/// past the current head (its body, then any pipelined request).
pub struct Client<'c> {
    /// The client's stream.
    pub stream: &'c mut Stream,
    /// Bytes read and not yet consumed: the request body first.
    pub unread: &'c mut BytesMut,
}

/// A request head as a protocol driver received it, before routing.
#[derive(Clone, Copy)]
pub struct Incoming<'a> {
    /// The parsed head.
    pub head: &'a RequestHead,
    /// The bytes the head was parsed from (its spans point into them).
    pub bytes: &'a [u8],
    /// `$connection_requests`: requests on this connection so far, this one included.
    pub served: u64,
    /// No request may follow this one on the connection (keepalive_requests, draining).
    pub last: bool,
}

/// One routed request: what every phase after routing reads.
pub struct Request<'a> {
    /// The client.
    pub peer: &'a Peer,
    /// The server (virtual host) the Host selected.
    pub server: &'a Listener,
    /// `[[map]]` variables.
    pub maps: &'a [VarMap],
    /// The parsed head.
    pub head: &'a RequestHead,
    /// The bytes the head was parsed from.
    pub bytes: &'a [u8],
    /// `$host`.
    pub host: &'a [u8],
    /// `$uri` (normalized).
    pub uri: &'a [u8],
    /// `$connection_requests`.
    pub served: u64,
    /// No request may follow this one on the connection.
    pub last: bool,
}

impl<'a> Request<'a> {
    /// Variable evaluation for this request (`proxy_host` is `$proxy_host` when proxying).
    pub fn vars<'b>(&'b self, proxy_host: &'b [u8]) -> RequestVars<'b> {
        RequestVars {
            peer: self.peer,
            head: self.head,
            buf: self.bytes,
            host: self.host,
            uri: self.uri,
            proxy_host,
            maps: self.maps,
            server_name: self.server.server_names.first().map_or("", String::as_str),
            served: self.served,
            log: None,
        }
    }

    /// The request line, rendered only when a log line needs it.
    pub fn line(&self) -> RequestLine<'_> {
        RequestLine {
            head: self.head,
            bytes: self.bytes,
        }
    }

    /// The client may send another request after this one's response.
    pub fn client_keeps_alive(&self) -> bool {
        !self.last && self.head.keep_alive
    }
}

/// `METHOD target`, for log lines.
pub struct RequestLine<'a> {
    head: &'a RequestHead,
    bytes: &'a [u8],
}

impl std::fmt::Display for RequestLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            String::from_utf8_lossy(self.head.method_span.get(self.bytes)),
            String::from_utf8_lossy(self.head.target.get(self.bytes))
        )
    }
}

/// Where a request came in: the generation serving the connection, the socket it was
/// accepted on and the client.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    /// The configuration generation the connection was accepted under.
    pub generation: &'a Generation,
    /// The bound address (its servers share it).
    pub socket: &'a Socket,
    /// The client.
    pub peer: &'a Peer,
}

/// Runs one request through the phases and answers it on `client`. Records the outcome in
/// `facts`.
pub async fn handle(
    origin: Origin<'_>,
    client: &mut Client<'_>,
    incoming: Incoming<'_>,
    facts: &mut LogFacts,
) -> Next {
    let Routed { server, host, uri } = match route::route(origin, incoming, facts) {
        Ok(r) => r,
        Err(refusal) => return respond::refuse(client.stream, &refusal, facts).await,
    };
    let req = Request {
        peer: origin.peer,
        server,
        maps: &origin.generation.config.maps,
        head: incoming.head,
        bytes: incoming.bytes,
        host: &host,
        uri: &uri,
        served: incoming.served,
        last: incoming.last,
    };
    // Server-level rules (nginx's server rewrite phase).
    if let Some(rule) = first_rule(&server.rules, &req) {
        return respond::rule(client.stream, &req, rule, facts).await;
    }
    let Some(location) = route::find_location(&server.locations, &uri) else {
        return respond::refuse(client.stream, &Refusal::NotFound, facts).await;
    };
    // Location rules (the location's rewrite phase), then access.
    if let Some(rule) = first_rule(&location.rules, &req) {
        return respond::rule(client.stream, &req, rule, facts).await;
    }
    if let Err(denied) = authorize::check(server, location, origin.peer) {
        let refusal = Refusal::Denied(denied.denial);
        log::warn!(
            "listener={} peer={}: {} denied ({}): {}",
            server.name,
            origin.peer.addr,
            req.line(),
            refusal.status(),
            denied.reason
        );
        facts.decision = format!("deny: {}", denied.reason).into();
        return respond::refuse(client.stream, &refusal, facts).await;
    }
    facts.decision = match &origin.peer.role {
        Some(r) => format!("allow role={r}").into(),
        None => "allow".into(),
    };
    content(origin.generation, client, &req, location, facts).await
}

/// The content phase: what the location does with an admitted request.
async fn content(
    generation: &Generation,
    client: &mut Client<'_>,
    req: &Request<'_>,
    location: &crate::config::Location,
    facts: &mut LogFacts,
) -> Next {
    match &location.action {
        Action::Return { status, body } => {
            respond::text(client.stream, req, *status, body.as_ref(), facts).await
        }
        Action::Proxy(pass) => {
            let target = super::forward::Target { location, pass };
            super::forward::proxy(generation, client, req, target, facts).await
        }
        Action::Static(root) => {
            let types = &generation.config.static_types;
            super::static_files::serve(client.stream, req, root, types, facts).await
        }
        Action::Rules => respond::refuse(client.stream, &Refusal::NotFound, facts).await,
    }
}

/// The first rule whose condition holds (or that has none).
fn first_rule<'r>(rules: &'r [Rule], req: &Request<'_>) -> Option<&'r Rule> {
    if rules.is_empty() {
        return None;
    }
    let vars = req.vars(b"");
    rules
        .iter()
        .find(|r| r.condition.as_ref().is_none_or(|c| c.eval(&vars)))
}
