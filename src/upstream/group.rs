//! An upstream group as the configuration resolves it: its servers (primary and backup),
//! keep-alive pool settings, failure accounting, timeouts and TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::tls::UpstreamTls;

/// An upstream group.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Name (or the host:port of an implicit group).
    pub name: String,
    /// Servers, used round robin.
    pub servers: Vec<SocketAddr>,
    /// Servers used only while every one of `servers` is down or has failed for the request
    /// (nginx's `server ... backup`). Server indexes continue after `servers`.
    pub backup_servers: Vec<SocketAddr>,
    /// Idle connections kept per worker.
    pub keepalive: usize,
    /// How long an idle pooled connection is kept.
    pub keepalive_timeout: Duration,
    /// How long idle connections beyond `keepalive` are kept before they are closed
    /// (HAProxy's pool-purge-delay): a burst's connections serve the next burst instead of
    /// being closed and reopened. Zero closes them at once, as nginx does.
    pub purge_delay: Duration,
    /// Failed connections to a server within `fail_timeout` that make ringgate skip it for
    /// `fail_timeout` (nginx's `max_fails`; 0: never skipped).
    pub max_fails: u32,
    /// How long a failing server is skipped, and the window its failures are counted in
    /// (nginx's `fail_timeout`).
    pub fail_timeout: Duration,
    /// Time to establish a connection (504 after... as nginx: 504 on connect timeout).
    pub connect_timeout: Duration,
    /// Longest wait between two reads from the upstream (504 after).
    pub read_timeout: Duration,
    /// Longest wait between two writes to the upstream (504 after).
    pub send_timeout: Duration,
    /// TLS to the servers (`proxy_pass https://`, `[upstream.tls]`); None for plain HTTP.
    pub tls: Option<Arc<UpstreamTls>>,
    /// The HTTP version spoken to the servers.
    pub protocol: UpstreamProtocol,
}

/// The HTTP version an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1: a keep-alive pool of connections, one exchange at a time on each.
    #[default]
    Http1,
    /// HTTP/2 (gRPC needs it): streams multiplexed on a connection per server and core,
    /// prior knowledge in plain TCP, ALPN `h2` over TLS.
    H2,
}

impl Upstream {
    /// Primary and backup servers together.
    pub fn server_count(&self) -> usize {
        self.servers.len() + self.backup_servers.len()
    }

    /// Server `i`: a primary below `servers.len()`, a backup after.
    pub fn server(&self, i: usize) -> Option<SocketAddr> {
        match i.checked_sub(self.servers.len()) {
            None => self.servers.get(i).copied(),
            Some(b) => self.backup_servers.get(b).copied(),
        }
    }

    /// A group with nginx's defaults (and ringgate's for what nginx lacks), as an implicit
    /// `proxy_pass http://host:port` gets and an `[[upstream]]` starts from.
    pub fn with_defaults(name: String, servers: Vec<SocketAddr>) -> Self {
        Upstream {
            name,
            servers,
            backup_servers: Vec::new(),
            keepalive: 32,
            keepalive_timeout: Duration::from_secs(60),
            purge_delay: Duration::from_secs(1),
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            tls: None,
            protocol: UpstreamProtocol::Http1,
        }
    }
}
