//! One worker: a thread pinned to a CPU, running its own monoio runtime with its own listening
//! sockets, TLS configurations and upstream pools. Nothing here is shared with other workers.
//!
//! A configuration reload reaches each worker as a message (a new `Arc<Config>`); the worker
//! builds a new [`Generation`] from it (its own rustls configs and pools) and new connections
//! take that one. Connections already open keep the `Rc<Generation>` they started with until
//! they end: nothing established is disturbed and no lock is ever read.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::{ListenerOpts, TcpListener};

use crate::config::{Config, DriverChoice};
use crate::edge::accept::accept_loop;
use crate::edge::core::{Core, Generation};
use crate::edge::log::writer::{WorkerLog, FLUSH_EVERY};
use crate::upstream::pool::SWEEP_INTERVAL;

/// How long tunnels get to close (a close_notify each way, a log line) once the shutdown
/// timeout has passed.
const TUNNEL_CLOSE_GRACE: Duration = Duration::from_millis(500);

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
    pub access_log: Option<Sender<crate::edge::log::writer::Msg>>,
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
    let state = match Generation::new(config.clone()) {
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
            .servers
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
    let core = Rc::new(Core::new(
        spec.id,
        state,
        WorkerLog::new(spec.access_log.clone()),
        spec.open_connections.clone(),
    ));
    for (socket, listener) in listeners.into_iter().enumerate() {
        monoio::spawn(accept_loop(core.clone(), socket, listener));
    }
    monoio::spawn(sweep_loop(core.clone()));
    monoio::spawn(crate::quiet::sweep());
    monoio::spawn(flush_loop(core.clone()));
    let _ = spec.report.send(Startup::Ready(bound));

    // Watch for the stop request and for reloads (a channel poll every 50 ms, off the request
    // path).
    while !spec.stop.load(Ordering::Relaxed) {
        monoio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(reply) = spec.snapshots.try_recv() {
            let cache = crate::tls::client_auth::cache_stats();
            let snap = crate::metrics::with(|m| m.snapshot(core.drain.active(), cache))
                .with_ocsp_cache(crate::fetch::ocsp_client::cache_stats());
            let _ = reply.send(snap);
        }
        while let Ok(new) = spec.reloads.try_recv() {
            match Generation::new(new) {
                Ok(s) => {
                    core.replace_generation(s);
                    log::debug!("worker {}: took the new configuration", core.id);
                }
                // The main thread built the same configs before sending: not expected.
                Err(e) => log::error!("worker {}: keeping the old configuration: {e}", core.id),
            }
        }
    }
    core.drain.start();
    let deadline = Instant::now() + core.generation().config.runtime.shutdown_timeout;
    while core.drain.active() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = core.drain.active();
    if left > 0 {
        let tunnels = crate::metrics::with(|m| m.tunnels_open());
        log::warn!(
            "worker {}: shutdown timeout reached with {left} connections still open ({tunnels} of them tunnels); closing them",
            core.id
        );
        // Tunnels end now: each closes both sides and writes its access-log line.
        core.drain.expire();
        let grace = Instant::now() + TUNNEL_CLOSE_GRACE;
        while crate::metrics::with(|m| m.tunnels_open()) > 0 && Instant::now() < grace {
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        log::info!("worker {}: drained", core.id);
    }
    core.generation().pools.clear();
    core.access_log.close();
}

async fn flush_loop(core: Rc<Core>) {
    while !core.drain.is_draining() {
        monoio::time::sleep(FLUSH_EVERY).await;
        core.access_log.flush();
        // Summaries of rate-limited refusal lines whose window has ended.
        crate::edge::refusal_log::flush();
    }
}

async fn sweep_loop(core: Rc<Core>) {
    while !core.drain.is_draining() {
        monoio::time::sleep(SWEEP_INTERVAL).await;
        let generation = core.generation();
        generation.pools.sweep(&generation.config.upstreams);
    }
}
