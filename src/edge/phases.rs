//! One request through nginx's phases, whatever protocol carried it: route (the server by
//! Host, 421 when it escapes the handshake), server rules, the location, location rules,
//! authorize, content (`return`, static files, proxy). A protocol's connection driver reads a
//! head, hands it to [`run`] as an [`Incoming`] with the [`Client`] to answer on, and gets back
//! whether the connection goes on ([`Next`]); the outcome is recorded in [`LogFacts`] for the
//! log phase.

use super::authorize;
use super::core::Generation;
use super::outcome::{LogFacts, Next, Refusal};
use super::peer::Peer;
use super::refusal_log::Kind;
use super::request::{Client, Dialect, Incoming, Request};
use super::respond;
use super::route::{self, Routed};
use crate::config::{Action, Location, Rule, Socket};

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
pub async fn run(
    origin: Origin<'_>,
    client: &mut Client<'_>,
    incoming: Incoming<'_>,
    facts: &mut LogFacts,
) -> Next {
    let Routed { server, host, uri } = match route::route(
        &origin.generation.config,
        origin.socket,
        origin.peer,
        incoming,
        facts,
    ) {
        Ok(r) => r,
        Err(refusal) => {
            let dialect = Dialect::of(incoming.head, incoming.bytes);
            return respond::refuse_as(client.stream, dialect, &refusal, facts).await;
        }
    };
    let req = Request {
        protocol: incoming.protocol,
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
        return respond::refuse_as(client.stream, req.dialect(), &Refusal::NotFound, facts).await;
    };
    // Location rules (the location's rewrite phase), then access.
    if let Some(rule) = first_rule(&location.rules, &req) {
        return respond::rule(client.stream, &req, rule, facts).await;
    }
    if let Err(denied) = authorize::check(server, location, origin.peer) {
        let refusal = Refusal::Denied(denied.denial);
        crate::refusal_line!(
            Kind::Denied,
            warn,
            "listener={} peer={}: {} denied ({}): {}",
            server.name,
            origin.peer.addr,
            req.line(),
            refusal.status(),
            denied.reason
        );
        facts.decision = format!("deny: {}", denied.reason).into();
        return respond::refuse_as(client.stream, req.dialect(), &refusal, facts).await;
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
    location: &Location,
    facts: &mut LogFacts,
) -> Next {
    match &location.action {
        Action::Return { status, body } => {
            respond::text(client.stream, req, *status, body.as_ref(), facts).await
        }
        Action::Proxy(pass) => {
            // The content futures are boxed, each on its own: a request's future (moved into
            // its box whole, whatever state it is in) then weighs what `return` needs, not
            // what the largest of them does.
            let target = super::forward::Target { location, pass };
            Box::pin(super::forward::proxy(
                generation, client, req, target, facts,
            ))
            .await
        }
        Action::Static(root) => {
            let types = &generation.config.static_types;
            Box::pin(super::static_files::serve(
                client.stream,
                req,
                root,
                types,
                facts,
            ))
            .await
        }
        Action::Rules => {
            respond::refuse_as(client.stream, req.dialect(), &Refusal::NotFound, facts).await
        }
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
