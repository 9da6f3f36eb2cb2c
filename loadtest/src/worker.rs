//! One OS thread per connection, blocking sockets.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustls::{ClientConnection, HandshakeKind, StreamOwned};

use crate::args::{Mode, Plan};
use crate::http::{ReadError, ResponseReader};
use crate::rate::Schedule;
use crate::tls::Tls;

/// Error causes, in report order.
pub const ERROR_KINDS: [&str; 6] = ["connect", "tls", "timeout", "closed", "bad_response", "io"];

pub fn new_histogram() -> Histogram<u64> {
    // 1 us .. 1 h, 3 significant digits; the bounds are constants, so this can not fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// Counters shared by all workers (progress line, stop conditions).
pub struct Shared {
    pub stop: AtomicBool,
    pub issued: AtomicU64,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub hs_full: AtomicU64,
    pub hs_resumed: AtomicU64,
    pub finished: AtomicU64,
    /// Workers that have opened their first connection (keep-alive) and wait for `start`.
    pub connected: AtomicU64,
    /// Set by the main thread once every worker is connected: time zero of the run.
    pub start: OnceLock<Instant>,
    pub duration: Option<Duration>,
    pub limit: Option<u64>,
}

impl Shared {
    pub fn new(plan: &Plan) -> Self {
        Shared {
            stop: AtomicBool::new(false),
            issued: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            hs_full: AtomicU64::new(0),
            hs_resumed: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            start: OnceLock::new(),
            duration: plan.duration,
            limit: plan.requests,
        }
    }

    fn past_deadline(&self, t: Instant) -> bool {
        match (self.start.get(), self.duration) {
            (Some(s), Some(d)) => t >= *s + d,
            _ => false,
        }
    }

    /// Waits until the main thread has set the start time.
    fn wait_start(&self) -> Instant {
        loop {
            if let Some(s) = self.start.get() {
                return *s;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Claims up to `want` requests; 0 means stop.
    fn claim(&self, want: u64) -> u64 {
        if self.stop.load(Ordering::Relaxed) || self.past_deadline(Instant::now()) {
            return 0;
        }
        match self.limit {
            None => want,
            Some(limit) => {
                let prev = self.issued.fetch_add(want, Ordering::Relaxed);
                limit.saturating_sub(prev).min(want)
            }
        }
    }
}

/// Per-worker results, merged at the end.
pub struct Stats {
    pub hist: Histogram<u64>,
    pub requests: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<&'static str, u64>,
    pub hs_full: u64,
    pub hs_resumed: u64,
    pub body_bytes: u64,
    /// First few error messages, for the report.
    pub samples: Vec<String>,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            hist: new_histogram(),
            requests: 0,
            statuses: BTreeMap::new(),
            errors: ERROR_KINDS.iter().map(|k| (*k, 0)).collect(),
            hs_full: 0,
            hs_resumed: 0,
            body_bytes: 0,
            samples: Vec::new(),
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        // Same bounds everywhere: addition can not fail.
        let _ = self.hist.add(&o.hist);
        self.requests += o.requests;
        for (k, v) in &o.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.hs_full += o.hs_full;
        self.hs_resumed += o.hs_resumed;
        self.body_bytes += o.body_bytes;
        for s in &o.samples {
            if self.samples.len() < 5 && !self.samples.contains(s) {
                self.samples.push(s.clone());
            }
        }
    }

    fn error(&mut self, shared: &Shared, kind: &'static str, msg: String) {
        *self.errors.entry(kind).or_default() += 1;
        shared.errors.fetch_add(1, Ordering::Relaxed);
        if self.samples.len() < 3 {
            let m = format!("{kind}: {msg}");
            if !self.samples.contains(&m) {
                self.samples.push(m);
            }
        }
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Conn {
    /// Polite close: TLS close_notify, then FIN.
    fn close(self) {
        match self {
            Conn::Plain(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
            Conn::Tls(mut s) => {
                s.conn.send_close_notify();
                let _ = s.conn.write_tls(&mut s.sock);
                let _ = s.sock.shutdown(Shutdown::Both);
            }
        }
    }
}

fn io_kind(e: &io::Error) -> &'static str {
    use io::ErrorKind::*;
    match e.kind() {
        WouldBlock | TimedOut => "timeout",
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => "closed",
        InvalidData if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => "tls",
        _ => "io",
    }
}

fn read_error(e: ReadError) -> (&'static str, String) {
    match e {
        ReadError::Closed => (
            "closed",
            "connection closed before the response ended".into(),
        ),
        ReadError::Bad(m) => ("bad_response", m),
        ReadError::Io(e) => (io_kind(&e), e.to_string()),
    }
}

fn connect(plan: &Plan, tls: Option<&Tls>, st: &mut Stats, sh: &Shared) -> Result<Conn, ()> {
    let sock = match TcpStream::connect_timeout(&plan.addr, plan.timeout) {
        Ok(s) => s,
        Err(e) => {
            st.error(sh, "connect", e.to_string());
            return Err(());
        }
    };
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(plan.timeout));
    let _ = sock.set_write_timeout(Some(plan.timeout));
    let Some(tls) = tls else {
        return Ok(Conn::Plain(sock));
    };
    let conn = match ClientConnection::new(tls.config.clone(), tls.server_name.clone()) {
        Ok(c) => c,
        Err(e) => {
            st.error(sh, "tls", e.to_string());
            return Err(());
        }
    };
    let mut s = StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        if let Err(e) = s.conn.complete_io(&mut s.sock) {
            let kind = match io_kind(&e) {
                "timeout" => "timeout",
                _ => "tls",
            };
            st.error(sh, kind, format!("handshake: {e}"));
            return Err(());
        }
    }
    if s.conn.handshake_kind() == Some(HandshakeKind::Resumed) {
        st.hs_resumed += 1;
        sh.hs_resumed.fetch_add(1, Ordering::Relaxed);
    } else {
        st.hs_full += 1;
        sh.hs_full.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Conn::Tls(Box::new(s)))
}

/// Sleeps until `t` unless the run is stopped.
fn sleep_until(t: Instant, sh: &Shared) {
    loop {
        let now = Instant::now();
        if now >= t || sh.stop.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep((t - now).min(Duration::from_millis(100)));
    }
}

/// Drives one connection slot until the run ends.
pub fn run(index: usize, plan: &Plan, tls: Option<&Tls>, sh: &Shared) -> Stats {
    // Each simulated client keeps its own session store, as a real client does: with one store
    // shared by every thread, rustls's cap of 8 TLS 1.3 tickets per server is drained by
    // concurrent handshakes and "resumed" runs fall back to full handshakes.
    let own = tls.map(Tls::with_own_session_store);
    let tls = own.as_ref();
    let mut st = Stats::new();
    let mut reader = ResponseReader::new();
    let mut conn: Option<Conn> = None;
    // Keep-alive: open the connection (TCP + TLS handshake) before time zero, so that neither
    // the first request's latency nor the open-loop schedule includes it.
    if plan.mode == Mode::Keepalive {
        conn = connect(plan, tls, &mut st, sh).ok();
    }
    sh.connected.fetch_add(1, Ordering::Relaxed);
    let start = sh.wait_start();
    let mut sched = plan
        .rate
        .map(|r| Schedule::new(start, r, plan.connections, index));
    let batch_max = plan.pipeline as u64;
    let batch_buf = plan.request.repeat(plan.pipeline);
    loop {
        let due = match sched.as_mut() {
            Some(s) => {
                let t = s.next_due();
                if sh.past_deadline(t) {
                    break;
                }
                sleep_until(t, sh);
                Some(t)
            }
            None => None,
        };
        let n = sh.claim(batch_max);
        if n == 0 {
            break;
        }
        let t_start = due.unwrap_or_else(Instant::now);
        if conn.is_none() || plan.mode == Mode::Handshake {
            match connect(plan, tls, &mut st, sh) {
                Ok(c) => {
                    conn = Some(c);
                    reader.reset();
                }
                Err(()) => {
                    if due.is_none() {
                        // Do not spin on a refusing server.
                        thread::sleep(Duration::from_millis(5));
                    }
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let t_send = Instant::now();
        let t0 = if due.is_some() { t_start } else { t_send };
        let len = plan.request.len() * n as usize;
        if let Err(e) = c.write_all(&batch_buf[..len]).and_then(|()| c.flush()) {
            st.error(sh, io_kind(&e), format!("write: {e}"));
            conn = None;
            continue;
        }
        // In handshake mode the latency includes connect and handshake.
        let t0 = if plan.mode == Mode::Handshake {
            t_start
        } else {
            t0
        };
        let mut keep = plan.mode == Mode::Keepalive;
        for i in 0..n {
            match reader.read_response(c, plan.head_request) {
                Ok(resp) => {
                    let us = t0.elapsed().as_micros().min(u64::MAX as u128) as u64;
                    st.hist.saturating_record(us.max(1));
                    st.requests += 1;
                    st.body_bytes += resp.body_len;
                    *st.statuses.entry(resp.status).or_default() += 1;
                    sh.requests.fetch_add(1, Ordering::Relaxed);
                    if resp.close {
                        keep = false;
                        for _ in i + 1..n {
                            st.error(sh, "closed", "server closed a pipelined connection".into());
                        }
                        break;
                    }
                }
                Err(e) => {
                    let (kind, msg) = read_error(e);
                    st.error(sh, kind, msg);
                    keep = false;
                    break;
                }
            }
        }
        if !keep {
            if let Some(c) = conn.take() {
                c.close();
            }
        }
    }
    if let Some(c) = conn.take() {
        c.close();
    }
    sh.finished.fetch_add(1, Ordering::Relaxed);
    st
}
