//! Reloading the configuration while serving, as nginx's `nginx -s reload` but without new
//! processes: on SIGHUP, or when a file the configuration reads changes (Kubernetes' atomic
//! `..data` symlink swap of a mounted secret included), the whole configuration is read and
//! validated again, certificates, keys, CAs and CRLs with it. Only a set that loads whole is
//! handed to the workers, one message each; anything wrong is logged and the running set is
//! kept. Workers give new connections the new set at once; established connections finish on
//! the set they started with.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering;

use crate::config::Config;
use crate::server::admin::ReloadCounters;

/// Reads the configuration again, the way the running one was read (TOML, or an nginx.conf
/// through the importer); the error text lists every problem.
pub type Loader = Box<dyn Fn() -> Result<Config, String> + Send>;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// A watched file changed.
    FileChange,
    /// The fetcher stored a newer CRL or staple.
    Fetched,
    /// A client presented an intermediate whose CRL distribution point is to be fetched.
    Discovered,
}

/// A file's identity and version: a replaced file (new inode, as an atomic rename or a
/// symlink swap gives) or a rewritten one (size or mtime) counts as changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i64,
}

fn stamp(path: &PathBuf) -> Option<Stamp> {
    // `metadata` follows symlinks: a swapped `..data` link changes the target's inode.
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
    })
}

/// The main thread's side of reloading.
pub struct Reloader {
    current: Arc<Config>,
    loader: Loader,
    workers: Vec<Sender<Arc<Config>>>,
    observers: Vec<Sender<Arc<Config>>>,
    stamps: Vec<(PathBuf, Option<Stamp>)>,
    counters: Arc<ReloadCounters>,
}

impl Reloader {
    /// Starts watching the files `current` was read from; applied configurations go to every
    /// worker and to the observers (the admin endpoint, the fetcher), outcomes into `counters`.
    pub fn new(
        current: Arc<Config>,
        loader: Loader,
        workers: Vec<Sender<Arc<Config>>>,
        observers: Vec<Sender<Arc<Config>>>,
        counters: Arc<ReloadCounters>,
    ) -> Self {
        let stamps = stamps_of(&current);
        Reloader {
            current,
            loader,
            workers,
            observers,
            stamps,
            counters,
        }
    }

    /// How often files are looked at.
    pub fn poll_interval(&self) -> Duration {
        self.current.runtime.watch_interval
    }

    /// Reloads when a watched file changed (after letting a burst of changes settle).
    pub fn poll_files(&mut self) {
        if !self.current.runtime.watch || !self.changed() {
            return;
        }
        // Copying a certificate and then its key is two writes: wait until the files stop
        // changing before reading them.
        let settle = Instant::now() + Duration::from_secs(2);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let before = self.stamps.clone();
            self.stamps = stamps_of(&self.current);
            if self.stamps == before || Instant::now() > settle {
                break;
            }
        }
        self.reload(Trigger::FileChange);
    }

    fn changed(&self) -> bool {
        self.stamps.iter().any(|(p, s)| stamp(p) != *s)
    }

    /// Reads, validates and (when whole) applies the configuration.
    pub fn reload(&mut self, why: Trigger) {
        let reason = match why {
            Trigger::Signal => "SIGHUP",
            Trigger::FileChange => "a configuration or certificate file changed",
            Trigger::Fetched => "a newer CRL or OCSP response was fetched",
            Trigger::Discovered => {
                "a client presented an intermediate whose CRL distribution point is now fetched"
            }
        };
        log::info!("reloading the configuration ({reason})");
        // Stamped before anything is read: a file that changes while (or after) it is read
        // differs from its stamp and triggers another reload, instead of being taken as read.
        let before = stamps_of(&self.current);
        let result = (self.loader)().and_then(|new| self.validate(new));
        match result {
            Ok(new) => {
                let new = Arc::new(new);
                if new.runtime.log_level != self.current.runtime.log_level {
                    log::set_max_level(new.runtime.log_level);
                }
                for w in self.workers.iter().chain(&self.observers) {
                    // A worker that has exited (shutdown) no longer needs it.
                    let _ = w.send(new.clone());
                }
                self.counters.applied.fetch_add(1, Ordering::Relaxed);
                // The doctor's start-up findings (near expiry, CRL policy) for the new set.
                crate::tools::doctor::log_startup(&new);
                log::info!(
                    "configuration reloaded ({} listener(s), {} upstream(s)); new connections use it, open ones finish on the old one",
                    new.servers.len(),
                    new.upstreams.len()
                );
                self.current = new;
            }
            Err(e) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                // One log line per problem (the "N configuration errors:" header says nothing).
                let problems = e
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.ends_with("configuration error:"))
                    .filter(|l| !l.ends_with("configuration errors:"));
                for line in problems {
                    log::error!(
                        "reload refused, keeping the running configuration: {}",
                        line.trim()
                    );
                }
            }
        }
        // Whatever happened, remember what was read: the next change triggers again.
        self.stamps = restamp(&self.current, &before);
    }

    /// What cannot change without a restart, and what the workers will build.
    fn validate(&self, new: Config) -> Result<Config, String> {
        let cur = &self.current;
        let addrs = |c: &Config| -> Vec<(std::net::SocketAddr, bool)> {
            c.sockets.iter().map(|s| (s.addr, s.tls)).collect()
        };
        if new.admin != cur.admin {
            log::warn!("reload: admin.listen changes need a restart");
        }
        if addrs(&new) != addrs(cur) {
            return Err(
                "the listen addresses (or TLS on them) changed; that needs a restart".into(),
            );
        }
        if new.runtime.workers != cur.runtime.workers {
            log::warn!(
                "reload: runtime.workers changes need a restart; still running {} workers",
                cur.runtime.workers
            );
        }
        if new.runtime.error_log != cur.runtime.error_log {
            log::warn!("reload: runtime.error_log changes need a restart");
        }
        for l in &new.servers {
            if let Some(t) = &l.tls {
                t.worker_config()
                    .map_err(|e| format!("listener `{}`: TLS setup failed: {e}", l.name))?;
            }
        }
        crate::edge::log::writer::check_paths(&new.log_files).map_err(|e| e.to_string())?;
        Ok(new)
    }
}

fn stamps_of(c: &Config) -> Vec<(PathBuf, Option<Stamp>)> {
    c.watched.iter().map(|p| (p.clone(), stamp(p))).collect()
}

/// The stamps of `c`'s files as they were before a reload read them (`before`); a file the
/// reload brought in is stamped now.
fn restamp(c: &Config, before: &[(PathBuf, Option<Stamp>)]) -> Vec<(PathBuf, Option<Stamp>)> {
    c.watched
        .iter()
        .map(|p| {
            let s = before
                .iter()
                .find(|(q, _)| q == p)
                .map_or_else(|| stamp(p), |(_, s)| *s);
            (p.clone(), s)
        })
        .collect()
}
