//! Process lifecycle: start one pinned worker per core, print the readiness line, and on
//! SIGTERM/SIGINT stop accepting, let in-flight requests finish (up to the deadline) and exit.

pub mod drain;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use worker::{Startup, WorkerSpec};

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A worker failed to start (bind, TLS, runtime).
    #[error("{0}")]
    Startup(String),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// A worker thread could not be spawned.
    #[error("cannot spawn worker thread: {0}")]
    Spawn(std::io::Error),
}

/// Serves `config` until SIGTERM or SIGINT; returns after every worker has drained.
pub fn run(config: Config) -> Result<(), RunError> {
    let config = Arc::new(config);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(RunError::Signals)?;
    }
    let n = config.runtime.workers.max(1);
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(n);
    let mut addrs: Vec<SocketAddr> = config.sockets.iter().map(|s| s.addr).collect();

    // Worker 0 binds first so that port 0 resolves to one port all workers then share.
    for id in 0..n {
        let spec = WorkerSpec {
            id,
            cpu: config.runtime.cpus.get(id).copied(),
            config: config.clone(),
            addrs: addrs.clone(),
            stop: stop.clone(),
            report: tx.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("ringgate-w{id}"))
            .spawn(move || worker::run(spec))
            .map_err(RunError::Spawn)?;
        handles.push(handle);
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Startup::Ready(bound)) => {
                if id == 0 {
                    addrs = bound;
                }
            }
            Ok(Startup::Failed(msg)) => {
                stop.store(true, Ordering::Relaxed);
                join_all(handles);
                return Err(RunError::Startup(msg));
            }
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                join_all(handles);
                return Err(RunError::Startup(format!(
                    "worker {id} did not start within 30s"
                )));
            }
        }
    }
    let listen: Vec<String> = config
        .listeners
        .iter()
        .map(|l| {
            let a = addrs.get(l.socket).copied().unwrap_or(l.addr);
            format!("{}@{a}", l.name)
        })
        .collect();
    // The readiness line: scripts and tests wait for it.
    println!(
        "ringgate ready pid={} workers={n} listen={}",
        std::process::id(),
        listen.join(",")
    );
    log::info!("serving with {n} workers: {}", listen.join(", "));
    join_all(handles);
    log::info!("all workers stopped; exiting");
    Ok(())
}

fn join_all(handles: Vec<std::thread::JoinHandle<()>>) {
    for h in handles {
        if h.join().is_err() {
            log::error!("a worker thread panicked");
        }
    }
}
