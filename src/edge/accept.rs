//! The accept phase: a new TCP connection is admitted against the connection limits (this
//! core's and the process's) and handed to [`super::connection::serve`], or refused at once.

use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpListener;

use super::connection::Accepted;
use super::core::Core;

/// How often at most a worker logs that it refuses connections.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// Accepts on one listening socket until the worker drains.
pub async fn accept_loop(core: Rc<Core>, socket: usize, listener: TcpListener) {
    loop {
        let drain = core.drain.wait();
        let accepted = monoio::select! {
            r = listener.accept() => Some(r),
            _ = drain => None,
        };
        match accepted {
            None => return,
            Some(Ok((stream, peer))) => match core.admit() {
                Some(slot) => {
                    let accepted = Accepted {
                        tcp: stream,
                        peer,
                        socket,
                        slot,
                    };
                    monoio::spawn(super::connection::serve(core.clone(), accepted));
                }
                None => refuse(&core, socket, stream),
            },
            Some(Err(e)) => {
                // EMFILE and friends: log, back off briefly, keep serving what is open.
                log::error!("worker {}: accept failed: {e}", core.id);
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Refuses a connection over a limit: counted, logged at most once a second per worker, and
/// closed at once; a plain-HTTP client gets a 503 page first (a TLS client cannot be answered
/// without the handshake the limit is there to avoid).
fn refuse(core: &Core, socket: usize, stream: monoio::net::TcpStream) {
    crate::metrics::with(|m| m.connection_refused());
    let (count, last) = core.refusals.get();
    let count = count + 1;
    let now = Instant::now();
    if last.is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY) {
        let generation = core.generation();
        let rt = &generation.config.runtime;
        log::warn!(
            "worker {}: connection limit reached (runtime.max_connections = {}, runtime.max_connections_per_worker = {}; open: {} here, {} in all); refusing new connections ({count} refused since the last such line)",
            core.id,
            rt.max_connections,
            rt.max_connections_per_worker,
            core.drain.active(),
            core.open_in_process(),
        );
        core.refusals.set((0, Some(now)));
    } else {
        core.refusals.set((count, last));
    }
    let plain = core
        .generation()
        .config
        .sockets
        .get(socket)
        .is_some_and(|s| !s.tls);
    if plain {
        monoio::spawn(refuse_plain(stream));
    }
    // A TLS connection is dropped here: closed at once.
}

/// Writes the 503 page to a refused plain-HTTP connection and closes it, reading briefly what
/// the client had already sent so that the close is a FIN, not a reset that could destroy the
/// page before the client reads it.
async fn refuse_plain(mut stream: monoio::net::TcpStream) {
    use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
    let page = crate::http::Canned::ServiceUnavailable.bytes();
    let wrote = crate::deadline::timeout(Duration::from_secs(1), stream.write_all(page)).await;
    if matches!(wrote, Ok((Ok(_), _))) {
        let _ = stream.shutdown().await;
        let mut buf = vec![0u8; 4096];
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match crate::deadline::timeout(left, stream.read(buf)).await {
                Ok((Ok(n), b)) if n > 0 => buf = b,
                _ => break,
            }
        }
    }
}
