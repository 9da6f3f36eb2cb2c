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
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use super::tls::UpstreamTls;
use crate::config::Upstream;
use crate::conn::Stream;

struct Idle {
    stream: Stream,
    addr: SocketAddr,
    since: Instant,
}

#[derive(Default)]
struct Group {
    /// Oldest-returned first: taken from the back, purged from the front.
    idle: RefCell<VecDeque<Idle>>,
    next_server: Cell<usize>,
    /// This worker's TLS configuration per server index, made on first use.
    tls: RefCell<Vec<Option<Arc<ClientConfig>>>>,
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

    /// The next server of an upstream, round robin per worker: its index and address.
    pub fn pick(&self, id: usize, upstream: &Upstream) -> Option<(usize, SocketAddr)> {
        let group = self.groups.get(id)?;
        let n = upstream.servers.len();
        if n == 0 {
            return None;
        }
        let i = group.next_server.get();
        group.next_server.set(i.wrapping_add(1));
        let index = i % n;
        upstream.servers.get(index).map(|a| (index, *a))
    }

    /// This worker's rustls configuration for server `server` of upstream `id`: made once,
    /// then shared by every connection this worker opens to that server, so that they resume
    /// each other's sessions.
    pub fn client_config(
        &self,
        id: usize,
        server: usize,
        tls: &UpstreamTls,
    ) -> Result<Arc<ClientConfig>, rustls::Error> {
        let Some(group) = self.groups.get(id) else {
            return tls.worker_config();
        };
        let mut configs = group.tls.borrow_mut();
        if configs.len() <= server {
            configs.resize(server + 1, None);
        }
        if let Some(Some(cfg)) = configs.get(server) {
            return Ok(cfg.clone());
        }
        let cfg = tls.worker_config()?;
        if let Some(slot) = configs.get_mut(server) {
            *slot = Some(cfg.clone());
        }
        Ok(cfg)
    }

    /// Takes the most recently returned idle connection that has not outlived
    /// `keepalive_timeout`; older ones are closed on the way.
    pub fn take(&self, id: usize, upstream: &Upstream) -> Option<(Stream, SocketAddr)> {
        let group = self.groups.get(id)?;
        let mut idle = group.idle.borrow_mut();
        while let Some(conn) = idle.pop_back() {
            if conn.since.elapsed() < upstream.keepalive_timeout {
                self.reuses.set(self.reuses.get() + 1);
                return Some((conn.stream, conn.addr));
            }
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
        }
    }

    /// Closes every idle connection (shutdown).
    pub fn clear(&self) {
        for g in &self.groups {
            g.idle.borrow_mut().clear();
        }
    }
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
