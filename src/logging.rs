//! The error log: one line per event on stderr, `TIME LEVEL [thread] message`.
//!
//! Each line is formatted into its own buffer and written with one `write` call, so lines from
//! different workers never interleave mid-line.

use std::io::Write;

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
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Installs the logger once; later calls only change the level.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
