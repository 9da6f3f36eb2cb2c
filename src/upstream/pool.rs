//! Each worker's idle upstream connections: LIFO reuse (the most recently used connection is
//! the least likely to have been closed by the upstream), bounded, with an idle timeout.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::config::Upstream;

struct Idle {
    stream: TcpStream,
    addr: SocketAddr,
    since: Instant,
}

#[derive(Default)]
struct Group {
    idle: RefCell<Vec<Idle>>,
    next_server: Cell<usize>,
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

    /// The next server of an upstream, round robin per worker.
    pub fn pick(&self, id: usize, upstream: &Upstream) -> Option<SocketAddr> {
        let group = self.groups.get(id)?;
        let n = upstream.servers.len();
        if n == 0 {
            return None;
        }
        let i = group.next_server.get();
        group.next_server.set(i.wrapping_add(1));
        upstream.servers.get(i % n).copied()
    }

    /// Takes the most recently returned idle connection that has not outlived
    /// `keepalive_timeout`; older ones are closed on the way.
    pub fn take(&self, id: usize, upstream: &Upstream) -> Option<(TcpStream, SocketAddr)> {
        let group = self.groups.get(id)?;
        let mut idle = group.idle.borrow_mut();
        while let Some(conn) = idle.pop() {
            if conn.since.elapsed() < upstream.keepalive_timeout {
                self.reuses.set(self.reuses.get() + 1);
                return Some((conn.stream, conn.addr));
            }
        }
        None
    }

    /// Returns a connection whose last exchange ended cleanly; beyond `keepalive` idle
    /// connections the oldest is closed.
    pub fn put(&self, id: usize, upstream: &Upstream, stream: TcpStream, addr: SocketAddr) {
        if upstream.keepalive == 0 {
            return;
        }
        let Some(group) = self.groups.get(id) else {
            return;
        };
        let mut idle = group.idle.borrow_mut();
        if idle.len() >= upstream.keepalive {
            idle.remove(0);
        }
        idle.push(Idle {
            stream,
            addr,
            since: Instant::now(),
        });
    }

    /// Closes idle connections older than their upstream's timeout (run periodically).
    pub fn sweep(&self, upstreams: &[Upstream]) {
        for (group, up) in self.groups.iter().zip(upstreams) {
            group
                .idle
                .borrow_mut()
                .retain(|c| c.since.elapsed() < up.keepalive_timeout);
        }
    }

    /// Closes every idle connection (shutdown).
    pub fn clear(&self) {
        for g in &self.groups {
            g.idle.borrow_mut().clear();
        }
    }
}

/// How long the periodic sweep waits between passes.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
