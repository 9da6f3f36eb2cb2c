//! Each worker's idle upstream connections, plain or TLS: LIFO reuse (the most recently used
//! connection is the least likely to have been closed by the upstream), bounded, with an idle
//! timeout. Connections beyond the bound (`keepalive`) are closed once they have stayed idle
//! for `purge_delay` (HAProxy's pool-purge-delay), not the moment they come back: a burst's
//! connections then serve the next burst instead of being closed and opened again (nginx
//! closes them at once, which under bursty load means a connect per request beyond the bound
//! and TIME_WAIT sockets piling up). The surplus is purged as connections come back and by the
//! periodic sweep. Also each worker's rustls configurations for its TLS upstreams, one per
//! server, made on first use, each with its own per-core session store.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use super::h2::H2Conn;
use super::tls::UpstreamTls;
use super::{Upstream, UpstreamProtocol};
use crate::conn::Stream;

struct Idle {
    stream: Stream,
    addr: SocketAddr,
    since: Instant,
}

/// A server's recent connection failures (nginx's max_fails / fail_timeout, per worker).
#[derive(Debug, Clone, Copy, Default)]
struct Health {
    /// Failures counted since `since`.
    fails: u32,
    since: Option<Instant>,
    /// Skipped by `pick` until then.
    down_until: Option<Instant>,
}

#[derive(Default)]
struct Group {
    /// Oldest-returned first: taken from the back, purged from the front.
    idle: RefCell<VecDeque<Idle>>,
    next_server: Cell<usize>,
    /// Per server index, made on first failure.
    health: RefCell<Vec<Health>>,
    /// This worker's TLS configuration per server index, made on first use.
    tls: RefCell<Vec<Option<Arc<ClientConfig>>>>,
    /// HTTP/2 connections (`protocol = "h2"`), any server, oldest first.
    h2: RefCell<Vec<Rc<H2Conn>>>,
}

/// One worker's pools, one group per configured upstream (same indexes as the config).
pub struct Pools {
    groups: Vec<Group>,
    /// Counters for metrics and tests: new connections made, pooled connections reused.
    pub connects: Cell<u64>,
    /// Pooled connections handed out again.
    pub reuses: Cell<u64>,
}

impl Pools {
    /// Empty pools for `n` upstreams.
    pub fn new(n: usize) -> Self {
        Pools {
            groups: (0..n).map(|_| Group::default()).collect(),
            connects: Cell::new(0),
            reuses: Cell::new(0),
        }
    }

    /// The next server of an upstream, round robin per worker, skipping servers marked down
    /// and those in `tried`: its index and address. Backup servers come in only when no
    /// primary is left. When every server left is down, they are tried anyway, primaries
    /// first (Envoy's panic mode; nginx would answer 502 "no live upstreams").
    pub fn pick(
        &self,
        id: usize,
        upstream: &Upstream,
        tried: &[usize],
    ) -> Option<(usize, SocketAddr)> {
        let group = self.groups.get(id)?;
        let start = group.next_server.get();
        group.next_server.set(start.wrapping_add(1));
        let now = Instant::now();
        let health = group.health.borrow();
        let (n, m) = (upstream.servers.len(), upstream.backup_servers.len());
        let primaries = (0..n).map(|k| start.wrapping_add(k) % n);
        let backups = (0..m).map(|k| n + start.wrapping_add(k) % m);
        let candidates = primaries.chain(backups).filter(|i| !tried.contains(i));
        let up_now = |i: &usize| {
            health
                .get(*i)
                .and_then(|h| h.down_until)
                .is_none_or(|t| t <= now)
        };
        let index = candidates
            .clone()
            .find(up_now)
            .or_else(|| candidates.clone().next())?;
        upstream.server(index).map(|a| (index, a))
    }

    /// Counts a failed connection to a server; at `max_fails` failures within
    /// `fail_timeout` it is skipped for `fail_timeout`. Returns true when this marked it down.
    pub fn failed(&self, id: usize, upstream: &Upstream, server: usize) -> bool {
        let Some(group) = self.groups.get(id) else {
            return false;
        };
        if upstream.max_fails == 0 || upstream.server_count() < 2 {
            // One server has nowhere else to go (nginx never marks a lone server down).
            return false;
        }
        let now = Instant::now();
        let mut health = group.health.borrow_mut();
        if health.len() <= server {
            health.resize(server + 1, Health::default());
        }
        let Some(h) = health.get_mut(server) else {
            return false;
        };
        let fresh = h
            .since
            .is_some_and(|s| now.saturating_duration_since(s) < upstream.fail_timeout);
        if !fresh {
            h.fails = 0;
            h.since = Some(now);
        }
        h.fails += 1;
        if h.fails >= upstream.max_fails {
            h.fails = 0;
            h.since = None;
            h.down_until = Some(now + upstream.fail_timeout);
            return true;
        }
        false
    }

    /// A connection to a server succeeded: its failure count starts again.
    pub fn succeeded(&self, id: usize, server: usize) {
        if let Some(group) = self.groups.get(id) {
            if let Some(h) = group.health.borrow_mut().get_mut(server) {
                *h = Health::default();
            }
        }
    }

    /// This worker's rustls configuration for server `server` of upstream `id`: made once,
    /// then shared by every connection this worker opens to that server, so that they resume
    /// each other's sessions.
    pub fn client_config(
        &self,
        id: usize,
        server: usize,
        up: &Upstream,
        tls: &UpstreamTls,
    ) -> Result<Arc<ClientConfig>, rustls::Error> {
        let Some(group) = self.groups.get(id) else {
            return worker_config(up, tls);
        };
        let mut configs = group.tls.borrow_mut();
        if configs.len() <= server {
            configs.resize(server + 1, None);
        }
        if let Some(Some(cfg)) = configs.get(server) {
            return Ok(cfg.clone());
        }
        let cfg = worker_config(up, tls)?;
        if let Some(slot) = configs.get_mut(server) {
            *slot = Some(cfg.clone());
        }
        Ok(cfg)
    }

    /// Takes the most recently returned idle connection that has not outlived
    /// `keepalive_timeout`; older ones, and ones the upstream closed or wrote to while they
    /// were idle, are closed on the way.
    pub fn take(&self, id: usize, upstream: &Upstream) -> Option<(Stream, SocketAddr)> {
        let group = self.groups.get(id)?;
        let mut idle = group.idle.borrow_mut();
        while let Some(conn) = idle.pop_back() {
            if conn.since.elapsed() >= upstream.keepalive_timeout {
                continue;
            }
            if conn.stream.readable_while_idle() {
                // Closed by the upstream, or bytes nobody asked for: either way the next
                // request must not be written into it (nginx closes such a connection too).
                log::debug!(
                    "upstream `{}` ({}): idle pooled connection closed or sent unrequested bytes; not reused",
                    upstream.name,
                    conn.addr
                );
                continue;
            }
            self.reuses.set(self.reuses.get() + 1);
            return Some((conn.stream, conn.addr));
        }
        None
    }

    /// Returns a connection whose last exchange ended cleanly. Idle connections beyond
    /// `keepalive` that have waited `purge_delay` are closed, oldest first. A TLS connection
    /// with anything left unread is closed instead.
    pub fn put(&self, id: usize, upstream: &Upstream, stream: Stream, addr: SocketAddr) {
        if upstream.keepalive == 0 || !stream.reusable() {
            return;
        }
        let Some(group) = self.groups.get(id) else {
            return;
        };
        let now = Instant::now();
        let mut idle = group.idle.borrow_mut();
        idle.push_back(Idle {
            stream,
            addr,
            since: now,
        });
        purge_surplus(&mut idle, upstream, now);
    }

    /// Closes idle connections older than their upstream's timeout, and the surplus beyond
    /// `keepalive` that has waited `purge_delay` (run periodically).
    pub fn sweep(&self, upstreams: &[Upstream]) {
        let now = Instant::now();
        for (group, up) in self.groups.iter().zip(upstreams) {
            let mut idle = group.idle.borrow_mut();
            idle.retain(|c| now.saturating_duration_since(c.since) < up.keepalive_timeout);
            purge_surplus(&mut idle, up, now);
            // Dropping an idle HTTP/2 connection's last handle makes its task send GOAWAY.
            group
                .h2
                .borrow_mut()
                .retain(|c| !c.is_closed() && !c.idle_for(up.keepalive_timeout, now));
        }
    }

    /// Closes every idle connection (shutdown); HTTP/2 connections close once their streams
    /// have ended.
    pub fn clear(&self) {
        for g in &self.groups {
            g.idle.borrow_mut().clear();
            g.h2.borrow_mut().clear();
        }
    }

    /// An HTTP/2 connection to server `server` of upstream `id` with room for one more
    /// stream, the oldest first (so that surplus ones fall idle and are closed); connections
    /// that have ended are let go on the way.
    pub fn h2_conn(&self, id: usize, server: usize) -> Option<Rc<H2Conn>> {
        let group = self.groups.get(id)?;
        let mut conns = group.h2.borrow_mut();
        conns.retain(|c| !c.is_closed());
        let found = conns.iter().find(|c| c.server == server && c.has_room());
        if found.is_some() {
            self.reuses.set(self.reuses.get() + 1);
        }
        found.cloned()
    }

    /// Keeps a new HTTP/2 connection of upstream `id` for the requests that follow.
    pub fn h2_add(&self, id: usize, conn: H2Conn) -> Rc<H2Conn> {
        let conn = Rc::new(conn);
        if let Some(group) = self.groups.get(id) {
            group.h2.borrow_mut().push(conn.clone());
        }
        conn
    }
}

/// A worker's rustls configuration for `up`: ALPN `h2` offered to an HTTP/2 upstream.
fn worker_config(up: &Upstream, tls: &UpstreamTls) -> Result<Arc<ClientConfig>, rustls::Error> {
    let cfg = tls.worker_config()?;
    if up.protocol != UpstreamProtocol::H2 {
        return Ok(cfg);
    }
    let mut cfg = Arc::unwrap_or_clone(cfg);
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// Closes the oldest idle connections while more than `keepalive` are held and the oldest has
/// waited `purge_delay`.
fn purge_surplus(idle: &mut VecDeque<Idle>, upstream: &Upstream, now: Instant) {
    while idle.len() > upstream.keepalive {
        match idle.front() {
            Some(oldest) if now.saturating_duration_since(oldest.since) >= upstream.purge_delay => {
                idle.pop_front();
            }
            _ => break,
        }
    }
}

/// How long the periodic sweep waits between passes.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
