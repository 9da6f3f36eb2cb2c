//! Process lifecycle: start the access-log writer and one pinned worker per core, print the
//! readiness line, then watch: SIGHUP and changed files reload the configuration (validated
//! whole, then handed to every worker by message), SIGUSR1 reopens the logs, and SIGTERM/SIGINT
//! stop accepting, let in-flight requests finish (up to the deadline), write out the logs and
//! exit.

pub mod admin;
pub mod fetcher;
pub mod logging;
pub mod reload;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::Config;
use crate::edge::log::writer::{LogThread, Msg};
use crate::metrics::Snapshot;
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
/// way, when a reload is asked for (or when the fetcher brought newer CRLs or staples).
/// Returns after every worker has drained.
pub fn run(config: Config, loader: Loader) -> Result<(), RunError> {
    let config = Arc::new(primed(config, &loader));
    // The doctor's start-up findings, once fetched CRLs and staples are in.
    crate::tools::doctor::log_startup(&config);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(RunError::Signals)?;
    }
    let logs = LogThread::start(&config.log_files).map_err(RunError::AccessLog)?;
    let (trigger_tx, trigger_rx) = mpsc::channel();
    let (fetch_configs, fetch_rx) = mpsc::channel();
    let fetch_thread = fetcher::start(&config, fetch_rx, trigger_tx.clone(), stop.clone())
        .map_err(RunError::Spawn)?;
    let mut threads = Threads {
        stop: stop.clone(),
        signals: signal_thread(logs.sender(), trigger_tx)?,
        workers: Vec::new(),
    };
    let workers = match start_workers(&config, &logs, &mut threads) {
        Ok(w) => w,
        Err(e) => return Err(threads.abandon(e)),
    };
    let counters = Arc::new(ReloadCounters::default());
    let admin_stop = Arc::new(AtomicBool::new(false));
    let admin = match start_admin(&config, workers.scrapes, &counters, &admin_stop) {
        Ok(a) => a,
        Err(e) => return Err(threads.abandon(e)),
    };
    announce(&config, &workers.addrs, admin.as_ref().map(|a| a.bound));
    let (admin_thread, admin_configs) = admin.map(|a| (a.thread, a.configs)).unzip();
    let observers = admin_configs.into_iter().chain([fetch_configs]).collect();
    let reloader = Reloader::new(config, loader, workers.reloads, observers, counters);
    watch(reloader, &trigger_rx, &stop);
    join_all(threads.workers);
    let _ = fetch_thread.join();
    admin_stop.store(true, Ordering::Relaxed);
    if let Some(h) = admin_thread {
        let _ = h.join();
    }
    threads.signals.close();
    logs.finish();
    log::info!("all workers stopped; exiting");
    Ok(())
}

/// `config`, or, when fetching its CRLs and staples stored anything, the configuration
/// loaded again with them, so that the first handshakes already see them.
fn primed(config: Config, loader: &Loader) -> Config {
    if !fetcher::prime(&config) {
        return config;
    }
    match loader() {
        Ok(c) => c,
        Err(e) => {
            log::error!("loading the configuration again with the fetched CRLs and staples failed; starting without them: {e}");
            config
        }
    }
}

/// The threads started so far and the flag that stops them: what a failed start-up winds
/// down before it returns.
struct Threads {
    stop: Arc<AtomicBool>,
    signals: signal_hook::iterator::Handle,
    workers: Vec<JoinHandle<()>>,
}

impl Threads {
    /// Stops and joins the workers started so far and the signal thread; returns `e`.
    fn abandon(self, e: RunError) -> RunError {
        self.stop.store(true, Ordering::Relaxed);
        join_all(self.workers);
        self.signals.close();
        e
    }
}

/// The channels to the running workers, and the addresses they listen on.
struct Workers {
    reloads: Vec<Sender<Arc<Config>>>,
    scrapes: Vec<Sender<Sender<Snapshot>>>,
    addrs: Vec<SocketAddr>,
}

/// Starts one worker per configured core, each once the one before reported ready. Worker 0
/// binds first so that port 0 resolves to one port all workers then share.
fn start_workers(
    config: &Arc<Config>,
    logs: &LogThread,
    threads: &mut Threads,
) -> Result<Workers, RunError> {
    let n = config.runtime.workers.max(1);
    let (report, ready) = mpsc::channel();
    // Client connections open in the whole process, for runtime.max_connections: one atomic
    // counter, touched once at accept and once at close (never a lock).
    let open_connections = Arc::new(AtomicUsize::new(0));
    let mut w = Workers {
        reloads: Vec::with_capacity(n),
        scrapes: Vec::with_capacity(n),
        addrs: config.sockets.iter().map(|s| s.addr).collect(),
    };
    threads.workers.reserve(n);
    for id in 0..n {
        let (reload_tx, reload_rx) = mpsc::channel();
        w.reloads.push(reload_tx);
        let (scrape_tx, scrape_rx) = mpsc::channel();
        w.scrapes.push(scrape_tx);
        let spec = WorkerSpec {
            id,
            cpu: config.runtime.cpus.get(id).copied(),
            config: config.clone(),
            addrs: w.addrs.clone(),
            stop: threads.stop.clone(),
            report: report.clone(),
            access_log: Some(logs.sender()),
            reloads: reload_rx,
            snapshots: scrape_rx,
            open_connections: open_connections.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("ringgate-w{id}"))
            .spawn(move || worker::run(spec))
            .map_err(RunError::Spawn)?;
        threads.workers.push(handle);
        let bound = await_ready(id, &ready)?;
        if id == 0 {
            w.addrs = bound;
        }
    }
    Ok(w)
}

/// Waits for worker `id`'s start-up report: the addresses it listens on, or why it failed.
fn await_ready(id: usize, ready: &Receiver<Startup>) -> Result<Vec<SocketAddr>, RunError> {
    match ready.recv_timeout(Duration::from_secs(30)) {
        Ok(Startup::Ready(bound)) => Ok(bound),
        Ok(Startup::Failed(msg)) => Err(RunError::Startup(msg)),
        Err(_) => Err(RunError::Startup(format!(
            "worker {id} did not start within 30s"
        ))),
    }
}

/// The running admin endpoint.
struct Admin {
    bound: SocketAddr,
    thread: JoinHandle<()>,
    /// Hands it each configuration a reload applies.
    configs: Sender<Arc<Config>>,
}

/// Starts the admin endpoint when the configuration asks for one.
fn start_admin(
    config: &Arc<Config>,
    scrapes: Vec<Sender<Sender<Snapshot>>>,
    counters: &Arc<ReloadCounters>,
    stop: &Arc<AtomicBool>,
) -> Result<Option<Admin>, RunError> {
    let Some(addr) = config.admin else {
        return Ok(None);
    };
    let (configs, cfg_rx) = mpsc::channel();
    let link = AdminLink {
        workers: scrapes,
        configs: cfg_rx,
        reloads: counters.clone(),
        stop: stop.clone(),
    };
    match crate::server::admin::start(addr, config.clone(), link) {
        Ok((bound, thread)) => {
            log::info!("admin endpoint on http://{bound} (/metrics, /healthz, /readyz)");
            Ok(Some(Admin {
                bound,
                thread,
                configs,
            }))
        }
        Err(e) => Err(RunError::Startup(format!(
            "admin: cannot listen on {addr}: {e}"
        ))),
    }
}

/// Prints the readiness line (scripts and tests wait for it) and logs what is served.
fn announce(config: &Config, addrs: &[SocketAddr], admin: Option<SocketAddr>) {
    let n = config.runtime.workers.max(1);
    let listen: Vec<String> = config
        .servers
        .iter()
        .map(|l| {
            let a = addrs.get(l.socket).copied().unwrap_or(l.addr);
            format!("{}@{a}", l.name)
        })
        .collect();
    let admin_note = admin.map(|a| format!(" admin={a}")).unwrap_or_default();
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
}

/// Reloads on each trigger (SIGHUP) and when watched files change, until SIGTERM or SIGINT
/// sets `stop`; then drops the reloader, closing the workers' reload channels.
fn watch(mut reloader: Reloader, triggers: &Receiver<Trigger>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match triggers.recv_timeout(reloader.poll_interval()) {
            Ok(t) => reloader.reload(t),
            Err(mpsc::RecvTimeoutError::Timeout) => reloader.poll_files(),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(reloader.poll_interval());
                reloader.poll_files();
            }
        }
    }
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

fn join_all(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        if h.join().is_err() {
            log::error!("a worker thread panicked");
        }
    }
}
