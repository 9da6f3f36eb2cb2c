//! The per-core state every connection of a worker reads: the configuration generation it
//! serves, the shutdown signal, the access-log buffers and the connection counts. One
//! [`Core`] per worker thread, shared by its tasks through `Rc`; nothing here crosses threads
//! except the process-wide connection counter.
//!
//! A reload reaches the worker as a new [`Generation`]; new connections take it, established
//! ones keep the `Rc<Generation>` they were accepted under until they end.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::drain::{ActiveGuard, Drain};
use super::log::writer::WorkerLog;
use crate::config::Config;
use crate::upstream::Pools;

/// One configuration generation as this core runs it: the configuration plus what the core
/// builds from it (its own rustls configurations and upstream pools).
pub struct Generation {
    /// The configuration (read-only).
    pub config: Arc<Config>,
    /// This core's rustls configuration per server (None for plain servers).
    pub tls: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// This core's upstream pools for this generation.
    pub pools: Pools,
    /// Started when a reload replaces this generation: connections that can end cleanly and
    /// be opened again (HTTP/2, with GOAWAY) go, so that their next requests meet the new
    /// configuration.
    pub retired: Drain,
}

impl Generation {
    /// Builds this core's TLS configurations and empty pools for `config`.
    pub fn new(config: Arc<Config>) -> Result<Generation, String> {
        let mut tls = Vec::with_capacity(config.servers.len());
        for l in &config.servers {
            match l.tls.as_ref().map(|t| t.worker_config()) {
                None => tls.push(None),
                Some(Ok(c)) => tls.push(Some(c)),
                Some(Err(e)) => {
                    return Err(format!("listener `{}`: TLS setup failed: {e}", l.name))
                }
            }
        }
        Ok(Generation {
            pools: Pools::new(config.upstreams.len()),
            config,
            tls,
            retired: Drain::default(),
        })
    }
}

/// Per-core state every connection task of this worker borrows.
pub struct Core {
    /// Worker index.
    pub id: usize,
    /// The current configuration generation (new connections take this one).
    generation: RefCell<Rc<Generation>>,
    /// Shutdown signal and active-connection count.
    pub drain: Drain,
    /// This core's access-log buffers.
    pub access_log: WorkerLog,
    /// The last `$connection` serial given out.
    connections: Cell<u64>,
    /// Client connections open in the whole process (shared by every worker).
    open_total: Arc<AtomicUsize>,
    /// Connections refused since the last refusal log line, and when that line was written.
    pub(super) refusals: Cell<(u64, Option<Instant>)>,
}

impl Core {
    /// A core serving `generation`, counting its connections in `open_total` (one counter
    /// for the process).
    pub fn new(
        id: usize,
        generation: Generation,
        access_log: WorkerLog,
        open_total: Arc<AtomicUsize>,
    ) -> Core {
        super::refusal_log::set_burst(generation.config.runtime.refusal_log_per_second);
        Core {
            id,
            generation: RefCell::new(Rc::new(generation)),
            drain: Drain::default(),
            access_log,
            connections: Cell::new(0),
            open_total,
            refusals: Cell::new((0, None)),
        }
    }

    /// The current generation, for a new connection to keep until it ends.
    pub fn generation(&self) -> Rc<Generation> {
        self.generation.borrow().clone()
    }

    /// Makes `next` the generation new connections get; open ones keep theirs.
    pub fn replace_generation(&self, next: Generation) {
        super::refusal_log::set_burst(next.config.runtime.refusal_log_per_second);
        let old = std::mem::replace(&mut *self.generation.borrow_mut(), Rc::new(next));
        old.retired.start();
    }

    /// A new `$connection` number: unique per worker (the worker id is in the low bits, so
    /// numbers from different workers never collide).
    pub fn next_connection_serial(&self) -> u64 {
        let n = self.connections.get() + 1;
        self.connections.set(n);
        n * 1024 + (self.id as u64 % 1024)
    }

    /// Client connections open in the whole process.
    pub fn open_in_process(&self) -> usize {
        self.open_total.load(Ordering::Relaxed)
    }

    /// Takes a place for a new client connection, or None when `runtime.max_connections` (the
    /// process) or `runtime.max_connections_per_worker` (this worker) is reached.
    pub fn admit(&self) -> Option<ConnSlot> {
        let (max_total, max_worker) = {
            let g = self.generation.borrow();
            let rt = &g.config.runtime;
            (rt.max_connections, rt.max_connections_per_worker)
        };
        if self.drain.active() >= max_worker {
            return None;
        }
        // Count first, then check: two workers accepting at once can never both take the last
        // place.
        if self.open_total.fetch_add(1, Ordering::Relaxed) >= max_total {
            self.open_total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(ConnSlot {
            _active: self.drain.track(),
            total: self.open_total.clone(),
        })
    }
}

/// A client connection's place in its worker's and the process's counts, given back when the
/// connection ends.
pub struct ConnSlot {
    _active: ActiveGuard,
    total: Arc<AtomicUsize>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::Relaxed);
    }
}
