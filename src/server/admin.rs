//! The admin endpoint (`[admin] listen`): `/metrics` (Prometheus text), `/healthz` (alive) and
//! `/readyz` (workers answering, certificates loaded, every upstream reachable), on plain HTTP.
//!
//! It runs on its own thread with blocking I/O, away from the workers: a scrape asks each
//! worker for a snapshot by message and merges the answers, so the request path never takes a
//! lock or touches a shared counter.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::metrics::{Reloads, Snapshot};

/// What the admin thread needs from the rest of the process.
pub struct AdminLink {
    /// One request channel per worker; a worker answers on the enclosed sender.
    pub workers: Vec<Sender<Sender<Snapshot>>>,
    /// Configurations, as reloads apply them.
    pub configs: Receiver<Arc<Config>>,
    /// Reload outcomes, counted by the main thread.
    pub reloads: Arc<ReloadCounters>,
    /// Set at shutdown.
    pub stop: Arc<AtomicBool>,
}

/// Reload outcomes, shared between the main thread (writer) and the admin thread (reader).
#[derive(Debug, Default)]
pub struct ReloadCounters {
    /// Reloads applied.
    pub applied: AtomicU64,
    /// Reloads refused.
    pub refused: AtomicU64,
}

/// Binds the admin address and serves it on a thread of its own.
pub fn start(
    addr: SocketAddr,
    config: Arc<Config>,
    link: AdminLink,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    // Accept polls so the thread notices shutdown.
    listener.set_nonblocking(true)?;
    let handle = std::thread::Builder::new()
        .name("ringgate-admin".into())
        .spawn(move || serve(listener, config, link))?;
    Ok((bound, handle))
}

fn serve(listener: TcpListener, mut config: Arc<Config>, link: AdminLink) {
    let mut ready_cache: Option<(Instant, Result<(), String>)> = None;
    while !link.stop.load(Ordering::Relaxed) {
        while let Ok(c) = link.configs.try_recv() {
            config = c;
            ready_cache = None;
        }
        match listener.accept() {
            Ok((sock, _)) => {
                let _ = sock.set_nonblocking(false);
                handle(sock, &config, &link, &mut ready_cache);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                log::error!("admin: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn handle(
    mut sock: TcpStream,
    config: &Config,
    link: &AdminLink,
    ready_cache: &mut Option<(Instant, Result<(), String>)>,
) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = sock.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match sock.read(&mut buf[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                len += n;
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut parts = head.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let snap = gather(&link.workers);
            let reloads = Reloads {
                applied: link.reloads.applied.load(Ordering::Relaxed),
                refused: link.reloads.refused.load(Ordering::Relaxed),
            };
            let text = crate::metrics::render(&snap, config, reloads);
            (200, "text/plain; version=0.0.4; charset=utf-8", text)
        }
        ("GET" | "HEAD", "/healthz") => (200, "text/plain", "ok\n".to_string()),
        ("GET" | "HEAD", "/readyz") => {
            let fresh = ready_cache
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < Duration::from_secs(1));
            if !fresh {
                *ready_cache = Some((Instant::now(), readiness(config, &link.workers)));
            }
            match ready_cache.as_ref().map(|(_, r)| r) {
                Some(Ok(())) => (200, "text/plain", "ready\n".to_string()),
                Some(Err(why)) => (503, "text/plain", format!("not ready: {why}\n")),
                None => (503, "text/plain", "not ready\n".to_string()),
            }
        }
        ("GET" | "HEAD", _) => (404, "text/plain", "not found\n".to_string()),
        _ => (405, "text/plain", "method not allowed\n".to_string()),
    };
    let reason = crate::http::reason_phrase(status);
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    let _ = sock.write_all(&out);
}

/// Asks every worker for its snapshot and merges the answers (a worker answers within its
/// 50 ms housekeeping tick; one that does not within a second is left out).
fn gather(workers: &[Sender<Sender<Snapshot>>]) -> Snapshot {
    let mut total = Snapshot::default();
    let replies: Vec<Receiver<Snapshot>> = workers
        .iter()
        .filter_map(|w| {
            let (tx, rx) = channel();
            w.send(tx).ok().map(|_| rx)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(1);
    for rx in replies {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(s) = rx.recv_timeout(left) {
            total.merge(&s);
        }
    }
    total
}

/// Ready when every worker answers, and every upstream has a server that accepts a TCP
/// connection (certificates are loaded, or the configuration would not be running).
fn readiness(config: &Config, workers: &[Sender<Sender<Snapshot>>]) -> Result<(), String> {
    let answered = gather(workers).workers as usize;
    if answered < workers.len() {
        return Err(format!("{answered} of {} workers answered", workers.len()));
    }
    let mut down = Vec::new();
    for up in &config.upstreams {
        let reachable = up
            .servers
            .iter()
            .chain(&up.backup_servers)
            .any(|a| TcpStream::connect_timeout(a, Duration::from_millis(500)).is_ok());
        if !reachable {
            down.push(format!("upstream `{}` has no reachable server", up.name));
        }
    }
    if down.is_empty() {
        Ok(())
    } else {
        Err(down.join("; "))
    }
}
