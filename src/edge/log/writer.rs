//! Getting access-log lines to disk without blocking a worker: each worker appends rendered
//! lines to its own buffer per file (no lock) and hands full buffers, or whatever it has every
//! [`FLUSH_EVERY`], to one writer thread over a channel; the writer thread does the blocking
//! `write` calls, and reopens every file on SIGUSR1 (logrotate's `postrotate`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::files::open_log;

/// A worker hands its buffer over once it holds this much.
pub const FLUSH_AT: usize = 64 * 1024;

/// And at least this often when it holds anything.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// What workers and the signal handler tell the writer thread.
#[derive(Debug)]
pub enum Msg {
    /// Append these complete lines to this file.
    Write(Arc<Path>, Vec<u8>),
    /// Reopen every file (after logrotate moved them).
    Reopen,
}

/// The writer thread.
pub struct LogThread {
    tx: Sender<Msg>,
    handle: JoinHandle<()>,
}

/// Opens every file once to prove it can be written (at start-up and before a reload is
/// accepted), so a bad path fails there and not on the first request.
pub fn check_paths(paths: &[PathBuf]) -> std::io::Result<()> {
    for p in paths {
        open_log(p).map_err(|e| {
            std::io::Error::new(e.kind(), format!("access log {}: {e}", p.display()))
        })?;
    }
    Ok(())
}

impl LogThread {
    /// Checks the initial files and starts the thread; files are opened when first written
    /// (a reload may name new ones) and kept open.
    pub fn start(paths: &[PathBuf]) -> std::io::Result<LogThread> {
        check_paths(paths)?;
        let (tx, rx) = channel();
        let handle = std::thread::Builder::new()
            .name("ringgate-log".into())
            .spawn(move || run(rx))?;
        Ok(LogThread { tx, handle })
    }

    /// A sender for one worker (or the signal handler).
    pub fn sender(&self) -> Sender<Msg> {
        self.tx.clone()
    }

    /// Waits until every sender is gone and everything sent is written.
    pub fn finish(self) {
        drop(self.tx);
        if self.handle.join().is_err() {
            log::error!("the access-log writer thread panicked");
        }
    }
}

/// An open file and whether writing it is failing (said once per failure streak).
struct Open {
    file: Option<File>,
    failing: bool,
}

fn run(rx: Receiver<Msg>) {
    let mut files: HashMap<Arc<Path>, Open> = HashMap::new();
    for msg in rx {
        match msg {
            Msg::Write(path, data) => {
                let entry = files.entry(path.clone()).or_insert_with(|| Open {
                    file: None,
                    failing: false,
                });
                if entry.file.is_none() {
                    entry.file = open_log(&path).ok();
                }
                let res = match entry.file.as_mut() {
                    Some(f) => f.write_all(&data),
                    None => Err(std::io::Error::other("cannot open the file")),
                };
                match res {
                    Ok(()) => entry.failing = false,
                    Err(e) => {
                        if !entry.failing {
                            log::error!(
                                "cannot write the access log {}: {e}; lines are being lost",
                                path.display()
                            );
                            entry.failing = true;
                        }
                        entry.file = None;
                    }
                }
            }
            Msg::Reopen => {
                for (path, entry) in files.iter_mut() {
                    match open_log(path) {
                        Ok(f) => entry.file = Some(f),
                        Err(e) => log::error!(
                            "cannot reopen the access log {}: {e}; still writing to the old file",
                            path.display()
                        ),
                    }
                }
                log::info!("reopened {} access log file(s)", files.len());
            }
        }
    }
}

/// One worker's buffers, one per log file.
pub struct WorkerLog {
    tx: RefCell<Option<Sender<Msg>>>,
    bufs: RefCell<HashMap<Arc<Path>, Vec<u8>>>,
}

impl WorkerLog {
    /// Empty buffers, sending to the writer thread (None: logging is off).
    pub fn new(tx: Option<Sender<Msg>>) -> Self {
        WorkerLog {
            tx: RefCell::new(tx),
            bufs: RefCell::new(HashMap::new()),
        }
    }

    /// Appends one line to `file`'s buffer with `render`; hands the buffer over once it is
    /// large.
    pub fn append(&self, file: &Arc<Path>, render: impl FnOnce(&mut Vec<u8>)) {
        let full = {
            let mut bufs = self.bufs.borrow_mut();
            let buf = match bufs.get_mut(file) {
                Some(b) => b,
                None => bufs.entry(file.clone()).or_default(),
            };
            render(buf);
            (buf.len() >= FLUSH_AT).then(|| std::mem::take(buf))
        };
        if let Some(data) = full {
            self.send(file.clone(), data);
        }
    }

    /// Hands every non-empty buffer to the writer thread.
    pub fn flush(&self) {
        let pending: Vec<(Arc<Path>, Vec<u8>)> = self
            .bufs
            .borrow_mut()
            .iter_mut()
            .filter(|(_, b)| !b.is_empty())
            .map(|(p, b)| (p.clone(), std::mem::take(b)))
            .collect();
        for (p, data) in pending {
            self.send(p, data);
        }
    }

    /// Flushes and lets go of the writer thread (at worker exit: the writer thread ends once
    /// every worker has closed).
    pub fn close(&self) {
        self.flush();
        self.tx.borrow_mut().take();
    }

    fn send(&self, file: Arc<Path>, data: Vec<u8>) {
        if let Some(tx) = self.tx.borrow().as_ref() {
            // The writer thread only goes away at exit; a line lost then is not worth a panic.
            let _ = tx.send(Msg::Write(file, data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let t = LogThread::start(std::slice::from_ref(&path)).unwrap();
        let w = WorkerLog::new(Some(t.sender()));
        let key: Arc<Path> = Arc::from(path.as_path());
        w.append(&key, |b| b.extend_from_slice(b"one\n"));
        w.append(&key, |b| b.extend_from_slice(b"two\n"));
        w.flush();
        // logrotate: move the file away, then ask for a reopen.
        let rotated = dir.path().join("access.log.1");
        let tx = t.sender();
        // Make sure the first lines are written before the rename.
        for _ in 0..100 {
            if std::fs::read_to_string(&path).unwrap_or_default() == "one\ntwo\n" {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::rename(&path, &rotated).unwrap();
        tx.send(Msg::Reopen).unwrap();
        w.append(&key, |b| b.extend_from_slice(b"three\n"));
        w.flush();
        drop(tx);
        drop(w);
        t.finish();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }

    #[test]
    fn a_full_buffer_is_handed_over_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let t = LogThread::start(std::slice::from_ref(&path)).unwrap();
        let w = WorkerLog::new(Some(t.sender()));
        let key: Arc<Path> = Arc::from(path.as_path());
        let line = vec![b'x'; 1000];
        for _ in 0..(FLUSH_AT / 1000 + 1) {
            w.append(&key, |b| {
                b.extend_from_slice(&line);
                b.push(b'\n');
            });
        }
        assert!(w.bufs.borrow()[&key].is_empty(), "handed over at FLUSH_AT");
        drop(w);
        t.finish();
        assert!(std::fs::metadata(&path).unwrap().len() >= FLUSH_AT as u64);
    }

    #[test]
    fn an_unwritable_path_fails_at_start() {
        assert!(LogThread::start(&[PathBuf::from("/nonexistent/dir/a.log")]).is_err());
    }
}
