//! Process lifecycle: start the access-log writer and one pinned worker per core, print the
//! readiness line, reopen logs on SIGUSR1, and on SIGTERM/SIGINT stop accepting, let in-flight
//! requests finish (up to the deadline), write out the logs and exit.

pub mod drain;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::access_log::writer::{LogThread, Msg};
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
    /// An access-log file could not be opened.
    #[error("{0}")]
    AccessLog(std::io::Error),
}

/// Serves `config` until SIGTERM or SIGINT; returns after every worker has drained.
pub fn run(config: Config) -> Result<(), RunError> {
    let config = Arc::new(config);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(RunError::Signals)?;
    }
    let logs = if config.log_files.is_empty() {
        None
    } else {
        Some(LogThread::start(config.log_files.clone()).map_err(RunError::AccessLog)?)
    };
    let signals = reopen_on_sigusr1(logs.as_ref().map(LogThread::sender))?;
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
            access_log: logs.as_ref().map(LogThread::sender),
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
                signals.close();
                return Err(RunError::Startup(msg));
            }
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                join_all(handles);
                signals.close();
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
    signals.close();
    if let Some(l) = logs {
        l.finish();
    }
    log::info!("all workers stopped; exiting");
    Ok(())
}

/// On SIGUSR1 (logrotate's postrotate), reopen the error log and every access log, as nginx
/// does on USR1. Returns the handle that stops the signal thread.
fn reopen_on_sigusr1(
    access: Option<std::sync::mpsc::Sender<Msg>>,
) -> Result<signal_hook::iterator::Handle, RunError> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])
        .map_err(RunError::Signals)?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("ringgate-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                crate::logging::reopen();
                if let Some(tx) = &access {
                    let _ = tx.send(Msg::Reopen);
                }
                log::info!("SIGUSR1: reopening log files");
            }
        })
        .map_err(RunError::Spawn)?;
    Ok(handle)
}

fn join_all(handles: Vec<std::thread::JoinHandle<()>>) {
    for h in handles {
        if h.join().is_err() {
            log::error!("a worker thread panicked");
        }
    }
}
