//! `[runtime]` resolved: workers, CPUs, driver, logging, reload watching and connection
//! limits.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawConfig, RawRuntime};
use super::words::DriverChoice;
use super::{span, Resolver};

/// `[runtime]`.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Number of worker threads.
    pub workers: usize,
    /// CPU for each worker (pinned), or empty for no pinning.
    pub cpus: Vec<usize>,
    /// How long in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// io driver.
    pub driver: DriverChoice,
    /// Log verbosity.
    pub log_level: log::LevelFilter,
    /// The error-log file (None: stderr).
    pub error_log: Option<PathBuf>,
    /// Reload when a watched file changes.
    pub watch: bool,
    /// How often watched files are looked at.
    pub watch_interval: Duration,
    /// Private keys that group or others can read are served anyway (with a warning).
    pub allow_insecure_key_permissions: bool,
    /// Client connections the whole process keeps open at most; more are accepted and closed
    /// at once.
    pub max_connections: usize,
    /// Client connections one worker keeps open at most.
    pub max_connections_per_worker: usize,
    /// Log lines of one kind of client-caused refusal (421, 400, 403, refused handshake,
    /// timeout) a worker writes per second before it only counts them; 0 writes every line.
    pub refusal_log_per_second: u32,
}

/// Default of `runtime.refusal_log_per_second`: enough lines to see what is happening, too
/// few for a client to flood the log.
pub const DEFAULT_REFUSAL_LOG_PER_SECOND: u32 = 10;

/// Default of `runtime.max_connections`: generous (file descriptors usually run out first;
/// see `tuning/`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 65536;

impl Resolver<'_> {
    /// Resolves `[runtime]` (first: `allow_insecure_key_permissions` governs the key files
    /// every later section loads).
    pub(super) fn runtime(&mut self, raw: &RawConfig) -> Runtime {
        let r = &raw.runtime;
        let (workers, cpus) = self.workers(r);
        let shutdown_timeout = self.duration(
            &r.shutdown_timeout,
            "runtime.shutdown_timeout",
            Duration::from_secs(10),
        );
        let driver = r
            .driver
            .as_ref()
            .and_then(|d| self.word(d, "runtime.driver"))
            .unwrap_or(DriverChoice::Auto);
        let log_level = r
            .log_level
            .as_ref()
            .and_then(|l| self.word(l, "runtime.log_level"))
            .unwrap_or(log::LevelFilter::Info);
        let error_log = r.error_log.as_ref().and_then(|p| self.error_log(p));
        let watch = r.watch.as_ref().is_none_or(|w| *w.get_ref());
        let watch_interval = self.duration(
            &r.watch_interval,
            "runtime.watch_interval",
            Duration::from_secs(1),
        );
        let allow_insecure_key_permissions = r
            .allow_insecure_key_permissions
            .as_ref()
            .is_some_and(|v| *v.get_ref());
        self.allow_insecure_keys = allow_insecure_key_permissions;
        let max_connections = self.limit(
            &r.max_connections,
            "runtime.max_connections",
            DEFAULT_MAX_CONNECTIONS,
        );
        let max_connections_per_worker = self.limit(
            &r.max_connections_per_worker,
            "runtime.max_connections_per_worker",
            max_connections,
        );
        let refusal_log_per_second = r
            .refusal_log_per_second
            .as_ref()
            .map_or(DEFAULT_REFUSAL_LOG_PER_SECOND, |n| *n.get_ref());
        Runtime {
            workers,
            cpus,
            shutdown_timeout,
            driver,
            log_level,
            error_log,
            watch,
            watch_interval,
            allow_insecure_key_permissions,
            max_connections,
            max_connections_per_worker,
            refusal_log_per_second,
        }
    }

    /// `workers` (0 or absent: one per core) and `cpus` (absent: worker i on core i, modulo the core count).
    fn workers(&mut self, r: &RawRuntime) -> (usize, Vec<usize>) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = match &r.workers {
            None => cores,
            Some(w) if *w.get_ref() == 0 => cores,
            Some(w) => {
                if *w.get_ref() > 1024 {
                    self.errs
                        .push(span(w), "runtime.workers", "at most 1024 workers");
                }
                *w.get_ref()
            }
        };
        let cpus = match &r.cpus {
            Some(c) => {
                if c.get_ref().len() < workers.min(1)
                    || (!c.get_ref().is_empty() && c.get_ref().len() < workers)
                {
                    self.errs.push(
                        span(c),
                        "runtime.cpus",
                        format!(
                            "lists {} CPUs for {workers} workers; give one CPU per worker",
                            c.get_ref().len()
                        ),
                    );
                }
                c.get_ref().clone()
            }
            None => (0..workers).map(|i| i % cores).collect(),
        };
        (workers, cpus)
    }

    /// `error_log`: the file, in a directory that exists.
    fn error_log(&mut self, p: &Spanned<String>) -> Option<PathBuf> {
        let path = self.written_path(p.get_ref());
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                self.errs.push(
                    span(p),
                    "runtime.error_log",
                    format!("{} is not a directory", dir.display()),
                );
                None
            }
            _ => Some(path),
        }
    }

    /// A connection limit: at least 1.
    fn limit(&mut self, v: &Option<Spanned<usize>>, key: &str, default: usize) -> usize {
        match v {
            None => default,
            Some(n) if *n.get_ref() == 0 => {
                self.errs.push(
                    span(n),
                    key,
                    "at least 1 (a limit of 0 would refuse every client)",
                );
                default
            }
            Some(n) => *n.get_ref(),
        }
    }
}
