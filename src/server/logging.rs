//! The error log: one line per event, `TIME LEVEL [thread] message`, on stderr or in the file
//! `runtime.error_log` names (nginx's `error_log`).
//!
//! Each line is formatted into its own buffer and written with one `write` call (the file is
//! opened with O_APPEND), so lines from different workers never interleave mid-line and no
//! lock is taken.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use log::{LevelFilter, Log, Metadata, Record};

use crate::files::open_log;

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        if !record.target().starts_with("ringgate") {
            // Dependencies (rustls, monoio) log at their own verbosity only in trace mode.
            if log::max_level() < LevelFilter::Trace {
                return;
            }
        }
        let thread = std::thread::current();
        let line = format!(
            "{} {:<5} [{}] {}\n",
            crate::clock::iso8601(crate::clock::unix_now()),
            record.level(),
            thread.name().unwrap_or("main"),
            record.args()
        );
        let written = PATH.get().is_some_and(|path| {
            // Each thread keeps its own O_APPEND handle and reopens it when the generation
            // moves (SIGUSR1): no lock, and lines stay whole.
            LOCAL.with(|local| {
                let mut local = local.borrow_mut();
                let generation = GENERATION.load(Ordering::Acquire);
                if local.as_ref().is_none_or(|(g, _)| *g != generation) {
                    *local = open_log(path).ok().map(|f| (generation, f));
                }
                local
                    .as_mut()
                    .is_some_and(|(_, f)| f.write_all(line.as_bytes()).is_ok())
            })
        });
        if !written {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// The error-log file, once configured (stderr until then).
static PATH: OnceLock<PathBuf> = OnceLock::new();

/// Bumped to make every thread reopen the file.
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static LOCAL: RefCell<Option<(u64, File)>> = const { RefCell::new(None) };
}

/// Sends the error log to `path` (appending, created 0640 if missing) from now on; fails when
/// the file cannot be opened.
pub fn log_to_file(path: &Path) -> std::io::Result<()> {
    open_log(path)?;
    let _ = PATH.set(path.to_path_buf());
    Ok(())
}

/// Makes every thread reopen the error-log file before its next line (logrotate, SIGUSR1).
pub fn reopen() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Installs the logger once; later calls only change the level.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
