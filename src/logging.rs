//! The error log: one line per event, `TIME LEVEL [thread] message`, on stderr or in the file
//! `runtime.error_log` names (nginx's `error_log`).
//!
//! Each line is formatted into its own buffer and written with one `write` call (the file is
//! opened with O_APPEND), so lines from different workers never interleave mid-line and no
//! lock is taken.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use log::{LevelFilter, Log, Metadata, Record};

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
        match FILE.get() {
            Some(mut f) => {
                let _ = f.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// The error-log file, once configured (stderr until then).
static FILE: OnceLock<std::fs::File> = OnceLock::new();

/// Sends the error log to `path` (appending, created 0640 if missing) from now on.
pub fn log_to_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)?;
    let _ = FILE.set(f);
    Ok(())
}

/// Installs the logger once; later calls only change the level.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
