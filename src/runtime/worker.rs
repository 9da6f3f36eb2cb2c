//! One worker: a thread pinned to a CPU, running its own monoio runtime with its own listening
//! sockets, TLS configurations and upstream pools. Nothing here is shared with other workers.
//!
//! A configuration reload reaches each worker as a message (a new `Arc<Config>`); the worker
//! builds a new [`State`] from it (its own rustls configs and pools) and new connections take
//! that one. Connections already open keep the `Rc<State>` they started with until they end:
//! nothing established is disturbed and no lock is ever read.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::{ListenerOpts, TcpListener};

use super::drain::{ActiveGuard, Drain};
use crate::access_log::writer::{WorkerLog, FLUSH_EVERY};
use crate::config::{Config, DriverChoice};
use crate::upstream::pool::SWEEP_INTERVAL;
use crate::upstream::Pools;

/// One configuration generation as this worker runs it.
pub struct State {
    /// The configuration (read-only).
    pub config: Arc<Config>,
    /// This worker's rustls configuration per listener (None for plain listeners).
    pub tls: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// This worker's upstream pools for this generation.
    pub pools: Pools,
}

impl State {
    /// Builds this worker's TLS configurations and empty pools for `config`.
    pub fn new(config: Arc<Config>) -> Result<State, String> {
        let mut tls = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            match l.tls.as_ref().map(|t| t.worker_config()) {
                None => tls.push(None),
                Some(Ok(c)) => tls.push(Some(c)),
                Some(Err(e)) => {
                    return Err(format!("listener `{}`: TLS setup failed: {e}", l.name))
                }
            }
        }
        Ok(State {
            pools: Pools::new(config.upstreams.len()),
            config,
            tls,
        })
    }
}

/// Per-core state every connection task of this worker borrows.
pub struct Worker {
    /// Worker index.
    pub id: usize,
    /// The current configuration generation (new connections take this one).
    state: RefCell<Rc<State>>,
    /// Shutdown signal and active-connection count.
    pub drain: Drain,
    /// This worker's access-log buffers.
    pub access_log: WorkerLog,
    /// The last `$connection` serial given out.
    connections: Cell<u64>,
    /// Client connections open in the whole process (shared by every worker).
    open_total: Arc<AtomicUsize>,
    /// Connections refused since the last refusal log line, and when that line was written.
    refusals: Cell<(u64, Option<Instant>)>,
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

/// How often at most a worker logs that it refuses connections.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

impl Worker {
    /// The current generation, for a new connection to keep until it ends.
    pub fn state(&self) -> Rc<State> {
        self.state.borrow().clone()
    }

    /// A new `$connection` number: unique per worker (the worker id is in the low bits, so
    /// numbers from different workers never collide).
    pub fn next_connection_serial(&self) -> u64 {
        let n = self.connections.get() + 1;
        self.connections.set(n);
        n * 1024 + (self.id as u64 % 1024)
    }
}

/// What a worker reports to the main thread at start-up.
pub enum Startup {
    /// Listening on these addresses (one per socket, in config order).
    Ready(Vec<SocketAddr>),
    /// Could not start.
    Failed(String),
}

/// Everything a worker thread needs to start.
pub struct WorkerSpec {
    /// Worker index.
    pub id: usize,
    /// CPU to pin to, if any.
    pub cpu: Option<usize>,
    /// The configuration.
    pub config: Arc<Config>,
    /// The address of each socket (ports resolved by worker 0 when 0 was asked for).
    pub addrs: Vec<SocketAddr>,
    /// Set by the main thread on SIGTERM/SIGINT.
    pub stop: Arc<AtomicBool>,
    /// Where to report start-up.
    pub report: Sender<Startup>,
    /// The access-log writer.
    pub access_log: Option<Sender<crate::access_log::writer::Msg>>,
    /// New configurations, after a reload validated them.
    pub reloads: Receiver<Arc<Config>>,
    /// Scrapes: answer each with this worker's metrics snapshot.
    pub snapshots: Receiver<Sender<crate::metrics::Snapshot>>,
    /// Client connections open in the whole process (one counter shared by every worker).
    pub open_connections: Arc<AtomicUsize>,
}

/// Runs a worker on the current thread until it has drained after a stop request.
pub fn run(spec: WorkerSpec) {
    if let Some(cpu) = spec.cpu {
        let pinned = core_affinity::get_core_ids()
            .and_then(|ids| ids.into_iter().find(|c| c.id == cpu))
            .is_some_and(core_affinity::set_for_current);
        if !pinned {
            log::warn!(
                "worker {}: could not pin to CPU {cpu}; running unpinned",
                spec.id
            );
        }
    }
    let uring = spec.config.runtime.driver == DriverChoice::Auto && monoio::utils::detect_uring();
    let runtime = if uring {
        // COOP_TASKRUN: completions are run when this thread next enters the kernel instead of
        // by interrupting it, which suits a thread that never blocks elsewhere; SINGLE_ISSUER:
        // only this thread submits. Fall back to default flags on kernels that refuse them.
        let mut urb = io_uring::IoUring::builder();
        urb.setup_coop_taskrun().setup_single_issuer();
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(1024)
            .uring_builder(urb)
            .enable_timer()
            .build()
            .or_else(|_| {
                monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                    .with_entries(1024)
                    .enable_timer()
                    .build()
            })
            .map(monoio::FusionRuntime::from)
    } else {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(monoio::FusionRuntime::from)
    };
    let mut runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            let _ = spec.report.send(Startup::Failed(format!(
                "worker {}: cannot start its runtime: {e}",
                spec.id
            )));
            return;
        }
    };
    let driver = if uring { "io_uring" } else { "legacy (epoll)" };
    if !uring && spec.config.runtime.driver == DriverChoice::Auto {
        log::warn!(
            "worker {}: io_uring is unavailable (kernel too old, or disabled by sysctl kernel.io_uring_disabled, seccomp or a container policy); falling back to the legacy epoll driver",
            spec.id
        );
    }
    log::info!(
        "worker {} started: driver={driver} cpu={}",
        spec.id,
        spec.cpu.map_or("unpinned".to_string(), |c| c.to_string())
    );
    runtime.block_on(worker_main(spec));
}

async fn worker_main(spec: WorkerSpec) {
    let config = spec.config.clone();
    let state = match State::new(config.clone()) {
        Ok(s) => s,
        Err(e) => {
            let _ = spec.report.send(Startup::Failed(e));
            return;
        }
    };
    let mut listeners = Vec::with_capacity(spec.addrs.len());
    let mut bound = Vec::with_capacity(spec.addrs.len());
    for (sock, addr) in config.sockets.iter().zip(&spec.addrs) {
        let l = config
            .listeners
            .get(sock.hosts.default)
            .map_or("?", |l| l.name.as_str());
        let opts = ListenerOpts::new()
            .reuse_port(true)
            .reuse_addr(true)
            .backlog(4096);
        match TcpListener::bind_with_config(addr, &opts) {
            Ok(sock) => {
                bound.push(sock.local_addr().unwrap_or(*addr));
                listeners.push(sock);
            }
            Err(e) => {
                let _ = spec.report.send(Startup::Failed(format!(
                    "listener `{l}`: cannot listen on {addr}: {e}"
                )));
                return;
            }
        }
    }
    let worker = Rc::new(Worker {
        id: spec.id,
        state: RefCell::new(Rc::new(state)),
        drain: Drain::default(),
        access_log: WorkerLog::new(spec.access_log.clone()),
        connections: Cell::new(0),
        open_total: spec.open_connections.clone(),
        refusals: Cell::new((0, None)),
    });
    for (si, sock) in listeners.into_iter().enumerate() {
        monoio::spawn(accept_loop(worker.clone(), si, sock));
    }
    monoio::spawn(sweep_loop(worker.clone()));
    monoio::spawn(flush_loop(worker.clone()));
    let _ = spec.report.send(Startup::Ready(bound));

    // Watch for the stop request and for reloads (a channel poll every 50 ms, off the request
    // path).
    while !spec.stop.load(Ordering::Relaxed) {
        monoio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(reply) = spec.snapshots.try_recv() {
            let cache = crate::tls::client_auth::cache_stats();
            let snap = crate::metrics::with(|m| m.snapshot(worker.drain.active(), cache));
            let _ = reply.send(snap);
        }
        while let Ok(new) = spec.reloads.try_recv() {
            match State::new(new) {
                Ok(s) => {
                    *worker.state.borrow_mut() = Rc::new(s);
                    log::debug!("worker {}: took the new configuration", worker.id);
                }
                // The main thread built the same configs before sending: not expected.
                Err(e) => log::error!("worker {}: keeping the old configuration: {e}", worker.id),
            }
        }
    }
    worker.drain.start();
    let deadline = Instant::now() + worker.state().config.runtime.shutdown_timeout;
    while worker.drain.active() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = worker.drain.active();
    if left > 0 {
        log::warn!(
            "worker {}: shutdown timeout reached with {left} connections still open; closing them",
            worker.id
        );
    } else {
        log::info!("worker {}: drained", worker.id);
    }
    worker.state().pools.clear();
    worker.access_log.close();
}

async fn flush_loop(w: Rc<Worker>) {
    while !w.drain.is_draining() {
        monoio::time::sleep(FLUSH_EVERY).await;
        w.access_log.flush();
    }
}

async fn accept_loop(w: Rc<Worker>, si: usize, sock: TcpListener) {
    loop {
        let drain = w.drain.wait();
        let accepted = monoio::select! {
            r = sock.accept() => Some(r),
            _ = drain => None,
        };
        match accepted {
            None => return,
            Some(Ok((stream, peer))) => match admit(&w) {
                Some(slot) => {
                    monoio::spawn(crate::proxy::serve(w.clone(), si, stream, peer, slot));
                }
                None => refuse(&w, si, stream),
            },
            Some(Err(e)) => {
                // EMFILE and friends: log, back off briefly, keep serving what is open.
                log::error!("worker {}: accept failed: {e}", w.id);
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Takes a place for a new client connection, or None when `runtime.max_connections` (the
/// process) or `runtime.max_connections_per_worker` (this worker) is reached.
fn admit(w: &Worker) -> Option<ConnSlot> {
    let (max_total, max_worker) = {
        let st = w.state.borrow();
        let rt = &st.config.runtime;
        (rt.max_connections, rt.max_connections_per_worker)
    };
    if w.drain.active() >= max_worker {
        return None;
    }
    // Count first, then check: two workers accepting at once can never both take the last
    // place.
    if w.open_total.fetch_add(1, Ordering::Relaxed) >= max_total {
        w.open_total.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    Some(ConnSlot {
        _active: w.drain.track(),
        total: w.open_total.clone(),
    })
}

/// Refuses a connection over a limit: counted, logged at most once a second per worker, and
/// closed at once; a plain-HTTP client gets a 503 page first (a TLS client cannot be answered
/// without the handshake the limit is there to avoid).
fn refuse(w: &Rc<Worker>, si: usize, stream: monoio::net::TcpStream) {
    crate::metrics::with(|m| m.connection_refused());
    let (count, last) = w.refusals.get();
    let count = count + 1;
    let now = Instant::now();
    if last.is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY) {
        let st = w.state();
        let rt = &st.config.runtime;
        log::warn!(
            "worker {}: connection limit reached (runtime.max_connections = {}, runtime.max_connections_per_worker = {}; open: {} here, {} in all); refusing new connections ({count} refused since the last such line)",
            w.id,
            rt.max_connections,
            rt.max_connections_per_worker,
            w.drain.active(),
            w.open_total.load(Ordering::Relaxed),
        );
        w.refusals.set((0, Some(now)));
    } else {
        w.refusals.set((count, last));
    }
    let plain = w.state().config.sockets.get(si).is_some_and(|s| !s.tls);
    if plain {
        monoio::spawn(refuse_plain(stream));
    }
    // A TLS connection is dropped here: closed at once.
}

/// Writes the 503 page to a refused plain-HTTP connection and closes it, reading briefly what
/// the client had already sent so that the close is a FIN, not a reset that could destroy the
/// page before the client reads it.
async fn refuse_plain(mut stream: monoio::net::TcpStream) {
    use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
    let page = crate::http::Canned::ServiceUnavailable.bytes();
    let wrote = monoio::time::timeout(Duration::from_secs(1), stream.write_all(page)).await;
    if matches!(wrote, Ok((Ok(_), _))) {
        let _ = stream.shutdown().await;
        let mut buf = vec![0u8; 4096];
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match monoio::time::timeout(left, stream.read(buf)).await {
                Ok((Ok(n), b)) if n > 0 => buf = b,
                _ => break,
            }
        }
    }
}

async fn sweep_loop(w: Rc<Worker>) {
    while !w.drain.is_draining() {
        monoio::time::sleep(SWEEP_INTERVAL).await;
        let st = w.state();
        st.pools.sweep(&st.config.upstreams);
    }
}
