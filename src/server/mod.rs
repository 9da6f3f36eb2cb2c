//! Process lifecycle: start the access-log writer and one pinned worker per core, print the
//! readiness line, then watch: SIGHUP and changed files reload the configuration (validated
//! whole, then handed to every worker by message), SIGUSR1 reopens the logs, and SIGTERM/SIGINT
//! stop accepting, let in-flight requests finish (up to the deadline), write out the logs and
//! exit.

pub mod admin;
pub mod logging;
pub mod reload;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::edge::log::writer::{LogThread, Msg};
use crate::server::admin::{AdminLink, ReloadCounters};
use reload::{Loader, Reloader, Trigger};
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

/// Serves `config` until SIGTERM or SIGINT; `loader` reads the configuration again, the same
/// way, when a reload is asked for. Returns after every worker has drained.
pub fn run(config: Config, loader: Loader) -> Result<(), RunError> {
    let config = Arc::new(config);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(RunError::Signals)?;
    }
    let logs = LogThread::start(&config.log_files).map_err(RunError::AccessLog)?;
    let (trigger_tx, trigger_rx) = mpsc::channel();
    let signals = signal_thread(logs.sender(), trigger_tx)?;
    let n = config.runtime.workers.max(1);
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(n);
    let mut to_workers = Vec::with_capacity(n);
    let mut scrapes = Vec::with_capacity(n);
    let mut addrs: Vec<SocketAddr> = config.sockets.iter().map(|s| s.addr).collect();
    // Client connections open in the whole process, for runtime.max_connections: one atomic
    // counter, touched once at accept and once at close (never a lock).
    let open_connections = Arc::new(AtomicUsize::new(0));

    // Worker 0 binds first so that port 0 resolves to one port all workers then share.
    for id in 0..n {
        let (reload_tx, reload_rx) = mpsc::channel();
        to_workers.push(reload_tx);
        let (scrape_tx, scrape_rx) = mpsc::channel();
        scrapes.push(scrape_tx);
        let spec = WorkerSpec {
            id,
            cpu: config.runtime.cpus.get(id).copied(),
            config: config.clone(),
            addrs: addrs.clone(),
            stop: stop.clone(),
            report: tx.clone(),
            access_log: Some(logs.sender()),
            reloads: reload_rx,
            snapshots: scrape_rx,
            open_connections: open_connections.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("ringgate-w{id}"))
            .spawn(move || worker::run(spec))
            .map_err(RunError::Spawn)?;
        handles.push(handle);
        let failure = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Startup::Ready(bound)) => {
                if id == 0 {
                    addrs = bound;
                }
                None
            }
            Ok(Startup::Failed(msg)) => Some(msg),
            Err(_) => Some(format!("worker {id} did not start within 30s")),
        };
        if let Some(msg) = failure {
            stop.store(true, Ordering::Relaxed);
            join_all(handles);
            signals.close();
            return Err(RunError::Startup(msg));
        }
    }
    let counters = Arc::new(ReloadCounters::default());
    let admin_stop = Arc::new(AtomicBool::new(false));
    let mut admin = None;
    let mut admin_configs = None;
    if let Some(addr) = config.admin {
        let (cfg_tx, cfg_rx) = mpsc::channel();
        let link = AdminLink {
            workers: scrapes,
            configs: cfg_rx,
            reloads: counters.clone(),
            stop: admin_stop.clone(),
        };
        match crate::server::admin::start(addr, config.clone(), link) {
            Ok((bound, handle)) => {
                log::info!("admin endpoint on http://{bound} (/metrics, /healthz, /readyz)");
                admin = Some((bound, handle));
                admin_configs = Some(cfg_tx);
            }
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                join_all(handles);
                signals.close();
                return Err(RunError::Startup(format!(
                    "admin: cannot listen on {addr}: {e}"
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
    let admin_note = admin
        .as_ref()
        .map(|(a, _)| format!(" admin={a}"))
        .unwrap_or_default();
    println!(
        "ringgate ready pid={} workers={n} listen={}{admin_note}",
        std::process::id(),
        listen.join(",")
    );
    log::info!("serving with {n} workers: {}", listen.join(", "));
    if crate::tools::tune::memcpy_tunable_missing() {
        log::info!(
            "AMD CPU: large TLS responses run about 20% faster with GLIBC_TUNABLES={} in ringgate's environment (see tuning/README.md; `ringgate tune --check`)",
            crate::tools::tune::GLIBC_TUNABLES
        );
    }

    let mut reloader = Reloader::new(config, loader, to_workers, admin_configs, counters);
    while !stop.load(Ordering::Relaxed) {
        match trigger_rx.recv_timeout(reloader.poll_interval()) {
            Ok(t) => reloader.reload(t),
            Err(mpsc::RecvTimeoutError::Timeout) => reloader.poll_files(),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(reloader.poll_interval());
                reloader.poll_files();
            }
        }
    }
    drop(reloader);
    join_all(handles);
    admin_stop.store(true, Ordering::Relaxed);
    if let Some((_, h)) = admin {
        let _ = h.join();
    }
    signals.close();
    logs.finish();
    log::info!("all workers stopped; exiting");
    Ok(())
}

/// SIGHUP asks for a reload (as nginx); SIGUSR1 reopens the error log and every access log
/// (logrotate's postrotate), as nginx does on USR1. Returns the handle that stops the thread.
fn signal_thread(
    access: mpsc::Sender<Msg>,
    reloads: mpsc::Sender<Trigger>,
) -> Result<signal_hook::iterator::Handle, RunError> {
    use signal_hook::consts::{SIGHUP, SIGUSR1};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGHUP, SIGUSR1]).map_err(RunError::Signals)?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("ringgate-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    let _ = reloads.send(Trigger::Signal);
                } else {
                    crate::server::logging::reopen();
                    let _ = access.send(Msg::Reopen);
                    log::info!("SIGUSR1: reopening log files");
                }
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
