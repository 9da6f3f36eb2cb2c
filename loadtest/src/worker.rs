//! The engine: each thread drives its share of the connections with one event loop
//! (edge-triggered epoll through mio, non-blocking sockets, rustls with its own buffers) and a
//! timerfd for the open-loop schedule, so that one core holds thousands of connections.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind};

use crate::args::{Mode, Plan};
use crate::http::{ReadError, ResponseReader};
use crate::rate::Schedule;
use crate::tls::Tls;
use crate::ws::{WsEvent, WsReader};

/// Error causes, in report order.
pub const ERROR_KINDS: [&str; 6] = ["connect", "tls", "timeout", "closed", "bad_response", "io"];

/// Connections a thread opens at once before time zero (keep-alive and idle modes), so that
/// thousands of connections do not overflow the server's accept queue.
pub(crate) const OPEN_BURST: usize = 256;
/// Pause before a closed-loop connection retries after an error (no spinning on a refusing
/// server).
pub(crate) const RETRY: Duration = Duration::from_millis(5);
/// How often timeouts and the end of the run are checked.
pub(crate) const TICK: Duration = Duration::from_millis(20);
const TIMER: Token = Token(usize::MAX - 1);

pub fn new_histogram() -> Histogram<u64> {
    // 1 us .. 1 h, 3 significant digits; the bounds are constants, so this can not fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// One thread's live counters for the progress line, on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub hs_full: AtomicU64,
    pub hs_resumed: AtomicU64,
    /// Idle mode: connections open now.
    pub open: AtomicU64,
}

impl Counters {
    pub(crate) fn add(&self, c: &AtomicU64) {
        // Only this thread writes its counters: a load and a store, no locked instruction.
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn sub(&self, c: &AtomicU64) {
        c.store(
            c.load(Ordering::Relaxed).saturating_sub(1),
            Ordering::Relaxed,
        );
    }
}

/// Totals over every thread: requests, errors, full and resumed handshakes, open (idle).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub hs_full: u64,
    pub hs_resumed: u64,
    pub open: u64,
}

/// State shared by all threads (progress line, stop conditions).
pub struct Shared {
    pub stop: AtomicBool,
    pub issued: AtomicU64,
    /// One per thread.
    pub counters: Vec<Counters>,
    /// Threads that have finished.
    pub finished: AtomicU64,
    /// Connection slots past their opening phase (keep-alive and idle modes open before time
    /// zero; handshake mode counts at once).
    pub connected: AtomicU64,
    /// Set by the main thread once every slot is connected: time zero of the run.
    pub start: OnceLock<Instant>,
    pub duration: Option<Duration>,
    pub limit: Option<u64>,
}

impl Shared {
    pub fn new(plan: &Plan) -> Self {
        Shared {
            stop: AtomicBool::new(false),
            issued: AtomicU64::new(0),
            counters: (0..plan.threads).map(|_| Counters::default()).collect(),
            finished: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            start: OnceLock::new(),
            duration: plan.duration,
            limit: plan.requests,
        }
    }

    /// Sums the threads' counters.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for c in &self.counters {
            t.requests += c.requests.load(Ordering::Relaxed);
            t.errors += c.errors.load(Ordering::Relaxed);
            t.hs_full += c.hs_full.load(Ordering::Relaxed);
            t.hs_resumed += c.hs_resumed.load(Ordering::Relaxed);
            t.open += c.open.load(Ordering::Relaxed);
        }
        t
    }

    pub(crate) fn past_deadline(&self, t: Instant) -> bool {
        match (self.start.get(), self.duration) {
            (Some(s), Some(d)) => t >= *s + d,
            _ => false,
        }
    }

    pub(crate) fn stopping(&self, now: Instant) -> bool {
        self.stop.load(Ordering::Relaxed) || self.past_deadline(now)
    }

    /// Claims up to `want` requests; 0 means stop.
    pub(crate) fn claim(&self, want: u64, now: Instant) -> u64 {
        if self.stopping(now) {
            return 0;
        }
        match self.limit {
            None => want,
            Some(limit) => {
                let prev = self.issued.fetch_add(want, Ordering::Relaxed);
                let n = limit.saturating_sub(prev).min(want);
                if n < want {
                    self.stop.store(true, Ordering::Relaxed);
                }
                n
            }
        }
    }
}

/// Per-thread results, merged at the end.
pub struct Stats {
    pub hist: Histogram<u64>,
    pub requests: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<&'static str, u64>,
    pub hs_full: u64,
    pub hs_resumed: u64,
    pub body_bytes: u64,
    /// Idle mode: connections that completed their opening (handshake, optional request).
    pub idle_established: u64,
    /// Idle mode: connections still open at the end of the hold.
    pub idle_open_at_end: u64,
    /// Websocket mode: connections upgraded (101 received and checked).
    pub ws_upgrades: u64,
    /// h2 mode: connections opened (TLS with h2 chosen, HTTP/2 preface and SETTINGS sent).
    pub h2_connections: u64,
    /// h2 mode: connections the server sent GOAWAY on (each replaced by a new one).
    pub h2_goaways: u64,
    /// h2 mode: streams the server did not process (above a GOAWAY's last stream, or
    /// REFUSED_STREAM), sent again; not errors.
    pub h2_retried: u64,
    /// h2 mode: the GOAWAYs by error code (`NO_ERROR`, `ENHANCE_YOUR_CALM`, ...).
    pub h2_goaway_reasons: BTreeMap<String, u64>,
    /// grpc mode: the responses by `grpc-status` (`0`, `14`, ..., `none` without one).
    pub grpc_statuses: BTreeMap<String, u64>,
    /// First few error messages, for the report.
    pub samples: Vec<String>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
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
            idle_established: 0,
            idle_open_at_end: 0,
            ws_upgrades: 0,
            h2_connections: 0,
            h2_goaways: 0,
            h2_retried: 0,
            h2_goaway_reasons: BTreeMap::new(),
            grpc_statuses: BTreeMap::new(),
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
        self.idle_established += o.idle_established;
        self.idle_open_at_end += o.idle_open_at_end;
        self.ws_upgrades += o.ws_upgrades;
        self.h2_connections += o.h2_connections;
        self.h2_goaways += o.h2_goaways;
        self.h2_retried += o.h2_retried;
        for (k, v) in &o.h2_goaway_reasons {
            *self.h2_goaway_reasons.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.grpc_statuses {
            *self.grpc_statuses.entry(k.clone()).or_default() += v;
        }
        for s in &o.samples {
            if self.samples.len() < 5 && !self.samples.contains(s) {
                self.samples.push(s.clone());
            }
        }
    }

    pub(crate) fn error(&mut self, me: &Counters, kind: &'static str, msg: String) {
        *self.errors.entry(kind).or_default() += 1;
        me.add(&me.errors);
        if self.samples.len() < 3 {
            let m = format!("{kind}: {msg}");
            if !self.samples.contains(&m) {
                self.samples.push(m);
            }
        }
    }
}

pub(crate) fn io_kind(e: &io::Error) -> &'static str {
    use io::ErrorKind::*;
    match e.kind() {
        WouldBlock | TimedOut => "timeout",
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => "closed",
        InvalidData if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => "tls",
        _ => "io",
    }
}

/// One TCP connection (and its TLS session).
struct Conn {
    sock: TcpStream,
    tls: Option<Box<ClientConnection>>,
    /// The TCP connect completed.
    tcp_up: bool,
    /// TCP up and the TLS handshake (if any) done: requests may be written.
    ready: bool,
}

impl Conn {
    /// Polite close: TLS close_notify, then FIN.
    fn close(mut self) {
        if let Some(tls) = self.tls.as_mut() {
            if self.ready {
                tls.send_close_notify();
                let _ = tls.write_tls(&mut self.sock);
            }
        }
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// A connection slot: the connection it holds now and the state that outlives it (session
/// store, schedule, buffers).
struct Slot {
    /// Global index among all connections (staggers the open-loop schedule).
    index: usize,
    /// Client configuration with this slot's own session store (resumption is per client).
    tls: Option<Arc<ClientConfig>>,
    conn: Option<Conn>,
    io: SlotIo,
    sched: Option<Schedule>,
    /// Open loop: the next due time, drawn from `sched` and not yet used.
    due: Option<Instant>,
    /// Closed loop after an error: no new request before this.
    hold_until: Option<Instant>,
    /// In the opening phase, counted in `Worker::opening`.
    opening: bool,
    /// Idle mode: counted as open.
    idle_open: bool,
    done: bool,
}

/// What a slot reads: HTTP responses, or (websocket mode) the 101 and then frames.
enum Reader {
    Http(ResponseReader),
    Ws(WsReader),
}

impl Reader {
    fn space(&mut self) -> &mut [u8] {
        match self {
            Reader::Http(r) => r.space(),
            Reader::Ws(r) => r.space(),
        }
    }

    fn filled(&mut self, n: usize) {
        match self {
            Reader::Http(r) => r.filled(n),
            Reader::Ws(r) => r.filled(n),
        }
    }

    fn reset(&mut self) {
        match self {
            Reader::Http(r) => r.reset(),
            Reader::Ws(r) => r.reset(),
        }
    }

    fn is_mid_response(&self) -> bool {
        match self {
            Reader::Http(r) => r.is_mid_response(),
            Reader::Ws(r) => r.is_mid_response(),
        }
    }

    /// The peer closed: ends a body read until close; anything else was cut short.
    fn eof(&mut self) -> Result<crate::http::Response, ReadError> {
        match self {
            Reader::Http(r) => r.eof(),
            Reader::Ws(_) => Err(ReadError::Closed),
        }
    }

    /// Websocket mode: the connection is upgraded.
    fn upgraded(&self) -> bool {
        matches!(self, Reader::Ws(r) if r.upgraded())
    }
}

/// A slot's request state and buffers (apart from the connection, so both can be borrowed).
struct SlotIo {
    reader: Reader,
    /// Websocket mode: the upgrade request is out and its 101 not yet read; the messages
    /// claimed meanwhile wait in `pending`.
    handshaking: bool,
    /// Plaintext to send and how much of it went out.
    out: Vec<u8>,
    out_pos: usize,
    /// Requests claimed that wait for the connection to be ready.
    pending: u64,
    in_flight: u64,
    /// Latency origin of the requests pending or in flight.
    t0: Instant,
    /// I/O deadline of what the slot waits for (connect, handshake, response).
    deadline: Option<Instant>,
}

/// What one pump of a connection's I/O found.
#[derive(Default)]
struct Pumped {
    /// The TLS handshake (or the TCP connect, for plain HTTP) completed in this pump.
    became_ready: bool,
    /// Responses completed in this pump.
    responses: u64,
    /// A response said the connection closes (or the peer closed after one).
    server_close: bool,
    /// Websocket mode: the 101 arrived in this pump.
    upgraded: bool,
    /// The peer closed the connection (EOF or close_notify).
    eof: bool,
}

/// What `pump` needs besides the slot.
struct Ctx<'a> {
    plan: &'a Plan,
    me: &'a Counters,
    st: &'a mut Stats,
}

type Fail = (&'static str, String);

/// Moves `slot.pending` requests into the output buffer. Websocket mode on a connection not
/// yet upgraded: the upgrade request instead, the requests (messages) staying pending until its
/// 101 arrives, so no message is sent before the server has switched protocols.
fn start_requests(slot: &mut SlotIo, plan: &Plan, now: Instant) {
    // Keep what is queued and not yet written (a pong).
    slot.out.drain(..slot.out_pos);
    slot.out_pos = 0;
    match &plan.ws {
        Some(_) if !slot.reader.upgraded() => {
            slot.out.extend_from_slice(&plan.request);
            slot.handshaking = true;
            slot.deadline = Some(now + plan.timeout);
            return;
        }
        Some(ws) => {
            for _ in 0..slot.pending {
                slot.out.extend_from_slice(&ws.frame);
            }
        }
        None => {
            for _ in 0..slot.pending {
                slot.out.extend_from_slice(&plan.request);
            }
        }
    }
    slot.in_flight = slot.pending;
    slot.pending = 0;
    slot.deadline = Some(now + plan.timeout);
}

/// Records a completed response (websocket mode: an echoed message, `status` None).
fn on_response(slot: &mut SlotIo, cx: &mut Ctx, status: Option<u16>, body_len: u64, now: Instant) {
    let us = now
        .saturating_duration_since(slot.t0)
        .as_micros()
        .min(u64::MAX as u128) as u64;
    cx.st.hist.saturating_record(us.max(1));
    cx.st.requests += 1;
    cx.st.body_bytes += body_len;
    if let Some(status) = status {
        *cx.st.statuses.entry(status).or_default() += 1;
    }
    cx.me.add(&cx.me.requests);
    slot.in_flight = slot.in_flight.saturating_sub(1);
    slot.deadline = if slot.in_flight > 0 {
        Some(now + cx.plan.timeout)
    } else {
        None
    };
}

/// Parses what the reader holds; stops at a response that closes the connection.
fn parse_responses(slot: &mut SlotIo, cx: &mut Ctx, p: &mut Pumped) -> Result<(), Fail> {
    if matches!(slot.reader, Reader::Ws(_)) {
        return parse_frames(slot, cx, p);
    }
    while slot.in_flight > 0 && !p.server_close {
        let Reader::Http(reader) = &mut slot.reader else {
            break;
        };
        match reader.parse(cx.plan.head_request) {
            Ok(Some(resp)) => {
                on_response(slot, cx, Some(resp.status), resp.body_len, Instant::now());
                p.responses += 1;
                p.server_close |= resp.close;
            }
            Ok(None) => break,
            Err(e) => return Err(read_error(e)),
        }
    }
    if slot.in_flight == 0 && slot.reader.is_mid_response() && !p.server_close {
        return Err((
            "bad_response",
            "bytes after the last response (none was asked for)".into(),
        ));
    }
    Ok(())
}

/// Websocket mode: the 101, then echoed messages (each one answers one in flight), pings
/// (answered with a pong) and a close (an error: the server ended the tunnel mid-run).
fn parse_frames(slot: &mut SlotIo, cx: &mut Ctx, p: &mut Pumped) -> Result<(), Fail> {
    loop {
        let Reader::Ws(reader) = &mut slot.reader else {
            return Ok(());
        };
        let event = match reader.parse() {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => return Err(read_error(e)),
        };
        match event {
            WsEvent::Upgraded => {
                *cx.st.statuses.entry(101).or_default() += 1;
                cx.st.ws_upgrades += 1;
                slot.handshaking = false;
                slot.deadline = None;
                p.upgraded = true;
                if slot.pending > 0 {
                    start_requests(slot, cx.plan, Instant::now());
                }
            }
            WsEvent::Refused { status } => {
                *cx.st.statuses.entry(status).or_default() += 1;
                return Err(("bad_response", format!("upgrade refused: HTTP {status}")));
            }
            WsEvent::Message { len } => {
                if slot.in_flight == 0 {
                    return Err(("bad_response", "a message nobody asked for".into()));
                }
                on_response(slot, cx, None, len, Instant::now());
                p.responses += 1;
            }
            WsEvent::Ping(payload) => {
                let pong = crate::ws::encode_frame(crate::ws::OP_PONG, &payload, crate::ws::MASK);
                slot.out.extend_from_slice(&pong);
            }
            WsEvent::Close(code) => {
                let code = code.map_or("no code".to_string(), |c| format!("code {c}"));
                return Err((
                    "closed",
                    format!("the server closed the WebSocket ({code})"),
                ));
            }
        }
    }
    if slot.in_flight == 0 && !slot.handshaking && slot.reader.is_mid_response() {
        return Err((
            "bad_response",
            "bytes after the last echo (none was asked for)".into(),
        ));
    }
    Ok(())
}

fn read_error(e: ReadError) -> Fail {
    match e {
        ReadError::Closed => (
            "closed",
            "connection closed before the response ended".into(),
        ),
        ReadError::Bad(m) => ("bad_response", m),
        ReadError::Io(e) => (io_kind(&e), e.to_string()),
    }
}

/// Does all the I/O a connection can do now (edge-triggered: until the socket would block).
fn pump(conn_slot: &mut Option<Conn>, slot: &mut SlotIo, cx: &mut Ctx) -> Result<Pumped, Fail> {
    let mut p = Pumped::default();
    loop {
        let Some(conn) = conn_slot.as_mut() else {
            return Ok(p);
        };
        if !conn.tcp_up {
            if let Ok(Some(e)) | Err(e) = conn.sock.take_error() {
                return Err(("connect", e.to_string()));
            }
            match conn.sock.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(p),
                Err(e) => return Err(("connect", e.to_string())),
            }
            conn.tcp_up = true;
            let _ = conn.sock.set_nodelay(true);
            if conn.tls.is_none() {
                conn.ready = true;
                p.became_ready = true;
                if slot.pending > 0 {
                    start_requests(slot, cx.plan, Instant::now());
                }
                continue;
            }
        }
        let ready = conn.ready;
        let fail_kind = |e: &io::Error| if ready { io_kind(e) } else { "tls" };
        let mut progress = false;

        // Write: plaintext into rustls, records (or plain bytes) to the socket.
        match conn.tls.as_deref_mut() {
            Some(tls) => {
                if ready && slot.out_pos < slot.out.len() {
                    match tls.writer().write(&slot.out[slot.out_pos..]) {
                        Ok(n) => slot.out_pos += n,
                        Err(e) => return Err(("io", format!("write: {e}"))),
                    }
                }
                while tls.wants_write() {
                    match tls.write_tls(&mut conn.sock) {
                        Ok(_) => progress = true,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err((fail_kind(&e), format!("write: {e}"))),
                    }
                }
            }
            None => {
                while slot.out_pos < slot.out.len() {
                    match conn.sock.write(&slot.out[slot.out_pos..]) {
                        Ok(n) => {
                            slot.out_pos += n;
                            progress = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err((io_kind(&e), format!("write: {e}"))),
                    }
                }
            }
        }
        if slot.out_pos == slot.out.len() && !slot.out.is_empty() {
            slot.out.clear();
            slot.out_pos = 0;
        }

        // Read.
        let mut eof = false;
        match conn.tls.as_deref_mut() {
            Some(tls) => {
                match tls.read_tls(&mut conn.sock) {
                    Ok(0) => eof = true,
                    Ok(_) => {
                        progress = true;
                        if let Err(e) = tls.process_new_packets() {
                            // Tell the server why (an alert), best effort.
                            let _ = tls.write_tls(&mut conn.sock);
                            return Err(("tls", e.to_string()));
                        }
                        if !conn.ready && !tls.is_handshaking() {
                            conn.ready = true;
                            p.became_ready = true;
                            if tls.handshake_kind() == Some(HandshakeKind::Resumed) {
                                cx.st.hs_resumed += 1;
                                cx.me.add(&cx.me.hs_resumed);
                            } else {
                                cx.st.hs_full += 1;
                                cx.me.add(&cx.me.hs_full);
                            }
                            if slot.pending > 0 {
                                start_requests(slot, cx.plan, Instant::now());
                            }
                        }
                        loop {
                            match tls.reader().read(slot.reader.space()) {
                                Ok(0) => {
                                    eof = true;
                                    break;
                                }
                                Ok(n) => {
                                    slot.reader.filled(n);
                                    parse_responses(slot, cx, &mut p)?;
                                }
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                                    eof = true;
                                    break;
                                }
                                Err(e) => return Err((fail_kind(&e), format!("read: {e}"))),
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => progress = true,
                    Err(e) => return Err((fail_kind(&e), format!("read: {e}"))),
                }
            }
            None => loop {
                match conn.sock.read(slot.reader.space()) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        progress = true;
                        slot.reader.filled(n);
                        parse_responses(slot, cx, &mut p)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err((io_kind(&e), format!("read: {e}"))),
                }
            },
        }
        if eof {
            p.eof = true;
            if slot.handshaking {
                return Err(("closed", "connection closed before the 101".into()));
            }
            if slot.in_flight > 0 && !p.server_close {
                // A body delimited by the end of the connection ends here.
                match slot.reader.eof() {
                    Ok(resp) => {
                        on_response(slot, cx, Some(resp.status), resp.body_len, Instant::now());
                        p.responses += 1;
                        p.server_close = true;
                    }
                    Err(e) => return Err(read_error(e)),
                }
            }
            if !ready && !p.became_ready {
                return Err(("tls", "connection closed during the handshake".into()));
            }
            return Ok(p);
        }
        if p.server_close || !progress {
            return Ok(p);
        }
    }
}

/// Which part of the run a thread is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Keep-alive and idle modes: opening the connections before time zero.
    Opening,
    Running,
}

/// One thread's event loop and its connection slots.
struct Worker<'a> {
    plan: &'a Plan,
    sh: &'a Shared,
    me: &'a Counters,
    server_name: Option<ServerName<'static>>,
    poll: Poll,
    timerfd: Option<OwnedFd>,
    armed: Option<Instant>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    slots: Vec<Slot>,
    st: Stats,
    phase: Phase,
    open_queue: VecDeque<usize>,
    opening: usize,
    live: usize,
    next_sweep: Instant,
}

/// Drives the connection slots `indexes` (global numbers) until the run ends; thread `tid`.
pub fn run(tid: usize, indexes: &[usize], plan: &Plan, tls: Option<&Tls>, sh: &Shared) -> Stats {
    let me = &sh.counters[tid];
    let mut w = match Worker::new(indexes, plan, tls, sh, me) {
        Ok(w) => w,
        Err(e) => {
            let mut st = Stats::new();
            st.error(me, "io", format!("event loop: {e}"));
            sh.connected
                .fetch_add(indexes.len() as u64, Ordering::Relaxed);
            sh.finished.fetch_add(1, Ordering::Relaxed);
            return st;
        }
    };
    w.run();
    sh.finished.fetch_add(1, Ordering::Relaxed);
    w.st
}

impl<'a> Worker<'a> {
    fn new(
        indexes: &[usize],
        plan: &'a Plan,
        tls: Option<&Tls>,
        sh: &'a Shared,
        me: &'a Counters,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let timerfd = if plan.rate.is_some() {
            use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?;
            poll.registry()
                .register(&mut SourceFd(&fd.as_raw_fd()), TIMER, Interest::READABLE)?;
            Some(fd)
        } else {
            None
        };
        let now = Instant::now();
        let slots = indexes
            .iter()
            .map(|&index| Slot {
                index,
                // Each simulated client keeps its own session store, as a real client does:
                // with one store shared by every connection, rustls's cap of 8 TLS 1.3
                // tickets per server is drained by concurrent handshakes and "resumed" runs
                // fall back to full handshakes.
                tls: tls.map(|t| t.with_own_session_store().config),
                conn: None,
                io: SlotIo {
                    reader: if plan.ws.is_some() {
                        Reader::Ws(WsReader::new())
                    } else {
                        Reader::Http(ResponseReader::new())
                    },
                    handshaking: false,
                    out: Vec::new(),
                    out_pos: 0,
                    pending: 0,
                    in_flight: 0,
                    t0: now,
                    deadline: None,
                },
                sched: None,
                due: None,
                hold_until: None,
                opening: false,
                idle_open: false,
                done: false,
            })
            .collect::<Vec<_>>();
        Ok(Worker {
            plan,
            sh,
            me,
            server_name: tls.map(|t| t.server_name.clone()),
            poll,
            timerfd,
            armed: None,
            timers: BinaryHeap::new(),
            live: slots.len(),
            slots,
            st: Stats::new(),
            phase: Phase::Opening,
            open_queue: VecDeque::new(),
            opening: 0,
            next_sweep: now + TICK,
        })
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        // Keep-alive, websocket and idle modes: open every connection (TCP + TLS handshake,
        // and the upgrade) before time zero, so that neither the first request's latency nor
        // the schedule includes it.
        if matches!(self.plan.mode, Mode::Keepalive | Mode::Websocket) {
            self.open_queue.extend(0..self.slots.len());
            self.open_more();
            while self.opening > 0 {
                self.turn(&mut events);
            }
        }
        self.sh
            .connected
            .fetch_add(self.slots.len() as u64, Ordering::Relaxed);
        let start = loop {
            if let Some(s) = self.sh.start.get() {
                break *s;
            }
            // Let events queue up meanwhile (edge-triggered: nothing is lost).
            thread::sleep(Duration::from_micros(200));
        };
        self.phase = Phase::Running;
        if let Some(rate) = self.plan.rate {
            for s in &mut self.slots {
                s.sched = Some(Schedule::new(start, rate, self.plan.connections, s.index));
            }
        }
        let now = Instant::now();
        for i in 0..self.slots.len() {
            self.wake(i, now);
        }
        while self.live > 0 {
            self.turn(&mut events);
        }
        for s in &mut self.slots {
            if let Some(c) = s.conn.take() {
                c.close();
            }
        }
    }

    /// One round of the loop: wait for events or the next timer, handle them.
    fn turn(&mut self, events: &mut Events) {
        let now = Instant::now();
        let mut wait = TICK;
        if let Some(Reverse((t, _))) = self.timers.peek() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        self.arm_timer(now);
        // With a timerfd armed, the poll timeout (milliseconds) is only a fallback.
        let timeout = if self.timerfd.is_some() && self.armed.is_some() {
            TICK
        } else {
            wait
        };
        if let Err(e) = self.poll.poll(events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                self.st.error(self.me, "io", format!("epoll: {e}"));
                self.abort_all();
                return;
            }
        }
        for ev in events.iter() {
            let t = ev.token();
            if t == TIMER {
                if let Some(fd) = &self.timerfd {
                    let mut b = [0u8; 8];
                    let _ = rustix::io::read(fd, &mut b);
                }
                self.armed = None;
                continue;
            }
            if t.0 < self.slots.len() {
                self.drive(t.0);
            }
        }
        let now = Instant::now();
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            self.wake(i, now);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + TICK;
            self.sweep(now);
        }
    }

    /// Sets the timerfd to the earliest timer (open loop: microsecond precision).
    fn arm_timer(&mut self, now: Instant) {
        use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
        let Some(fd) = &self.timerfd else { return };
        let Some(&Reverse((t, _))) = self.timers.peek() else {
            return;
        };
        if self.armed.is_some_and(|a| a <= t && a > now) {
            return;
        }
        let d = t
            .saturating_duration_since(now)
            .max(Duration::from_micros(1));
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: d.as_secs() as _,
                tv_nsec: d.subsec_nanos() as _,
            },
        };
        if timerfd_settime(fd, TimerfdTimerFlags::empty(), &spec).is_ok() {
            self.armed = Some(t);
        }
    }

    /// Timeouts, and the end of the run for slots that wait for nothing.
    fn sweep(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.done {
                continue;
            }
            if s.io.deadline.is_some_and(|d| now >= d) {
                let what = match &s.conn {
                    Some(c) if !c.tcp_up => "connect",
                    Some(c) if !c.ready => "TLS handshake",
                    _ => "response",
                };
                let msg = format!("no {what} within {:?}", self.plan.timeout);
                self.fail(i, "timeout", msg, now);
            } else if self.phase == Phase::Running
                && s.io.in_flight == 0
                && s.io.pending == 0
                && self.sh.stopping(now)
            {
                self.finish(i);
            }
        }
    }

    fn abort_all(&mut self) {
        for i in 0..self.slots.len() {
            if !self.slots[i].done {
                self.finish(i);
            }
        }
        self.opening = 0;
        self.open_queue.clear();
    }

    /// Opening phase: starts connections up to the burst limit.
    fn open_more(&mut self) {
        while self.opening < OPEN_BURST {
            let Some(i) = self.open_queue.pop_front() else {
                return;
            };
            self.slots[i].opening = true;
            self.opening += 1;
            self.connect(i, Instant::now());
        }
    }

    /// Opening phase: slot `i` is open (or failed to open).
    fn opened(&mut self, i: usize, ok: bool) {
        let s = &mut self.slots[i];
        if !s.opening {
            return;
        }
        s.opening = false;
        self.opening -= 1;
        if ok && self.plan.idle {
            s.idle_open = true;
            self.st.idle_established += 1;
            self.me.add(&self.me.open);
        }
        self.open_more();
    }

    /// Starts a new connection on slot `i` (TCP connect; TLS follows in `pump`).
    fn connect(&mut self, i: usize, now: Instant) {
        let s = &mut self.slots[i];
        if let Some(old) = s.conn.take() {
            old.close();
        }
        s.io.reader.reset();
        s.io.handshaking = false;
        s.io.out.clear();
        s.io.out_pos = 0;
        s.io.deadline = Some(now + self.plan.timeout);
        let mut sock = match TcpStream::connect(self.plan.addr) {
            Ok(s) => s,
            Err(e) => return self.fail(i, "connect", e.to_string(), now),
        };
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return self.fail(i, "io", format!("epoll: {e}"), now);
        }
        let tls = match (&s.tls, &self.server_name) {
            (Some(cfg), Some(name)) => match ClientConnection::new(cfg.clone(), name.clone()) {
                Ok(c) => Some(Box::new(c)),
                Err(e) => return self.fail(i, "tls", e.to_string(), now),
            },
            _ => None,
        };
        // The connect completes with a writable edge, which drives the slot.
        s.conn = Some(Conn {
            sock,
            tls,
            tcp_up: false,
            ready: false,
        });
    }

    /// Runs a slot's I/O and what follows from it (next request, close, reconnect).
    fn drive(&mut self, i: usize) {
        loop {
            let s = &mut self.slots[i];
            if s.done {
                return;
            }
            let mut cx = Ctx {
                plan: self.plan,
                me: self.me,
                st: &mut self.st,
            };
            let p = match pump(&mut s.conn, &mut s.io, &mut cx) {
                Ok(p) => p,
                Err((kind, msg)) => return self.fail(i, kind, msg, Instant::now()),
            };
            let now = Instant::now();
            let s = &mut self.slots[i];
            if p.server_close && s.io.in_flight > 0 {
                // Pipelined requests the server will not answer.
                let lost = s.io.in_flight;
                s.io.in_flight = 0;
                for _ in 0..lost {
                    self.st.error(
                        self.me,
                        "closed",
                        "server closed a pipelined connection".into(),
                    );
                }
            }
            let s = &mut self.slots[i];
            let idle_now = s.io.in_flight == 0 && s.io.pending == 0;
            if p.server_close || p.eof {
                if let Some(c) = s.conn.take() {
                    c.close();
                }
                s.io.reader.reset();
                s.io.handshaking = false;
                s.io.deadline = None;
                if s.idle_open && p.eof && !p.server_close {
                    s.idle_open = false;
                    self.me.sub(&self.me.open);
                    self.st
                        .error(self.me, "closed", "server closed an idle connection".into());
                }
                if self.phase == Phase::Opening && s.opening {
                    let ok = p.responses > 0 && !self.plan.idle;
                    if !ok {
                        self.st.error(
                            self.me,
                            "closed",
                            "server closed the connection while it was opened".into(),
                        );
                    }
                    self.opened(i, ok);
                    return;
                }
            }
            let s = &mut self.slots[i];
            if self.phase == Phase::Opening {
                if p.became_ready {
                    // Websocket mode: the upgrade is part of opening (pending is 0, so
                    // start_requests sends the upgrade request alone).
                    if self.plan.idle_request || self.plan.ws.is_some() {
                        s.io.pending = u64::from(self.plan.idle_request);
                        s.io.t0 = now;
                        start_requests(&mut s.io, self.plan, now);
                        continue;
                    }
                    s.io.deadline = None;
                    self.opened(i, true);
                } else if p.upgraded || (p.responses > 0 && idle_now) {
                    s.io.deadline = None;
                    self.opened(i, true);
                }
                return;
            }
            if !(idle_now && (p.responses > 0 || p.became_ready || s.conn.is_none())) {
                return;
            }
            if self.plan.mode == Mode::Handshake && p.responses > 0 {
                if let Some(c) = s.conn.take() {
                    c.close();
                }
            }
            if !self.kick(i, now) {
                return;
            }
        }
    }

    /// Error on slot `i`: counted, the connection dropped; the slot goes on (or, when
    /// opening, counts as opened).
    fn fail(&mut self, i: usize, kind: &'static str, msg: String, now: Instant) {
        self.st.error(self.me, kind, msg);
        let s = &mut self.slots[i];
        if let Some(c) = s.conn.take() {
            drop(c);
        }
        s.io.reader.reset();
        s.io.handshaking = false;
        s.io.out.clear();
        s.io.out_pos = 0;
        s.io.in_flight = 0;
        s.io.pending = 0;
        s.io.deadline = None;
        if s.idle_open {
            s.idle_open = false;
            self.me.sub(&self.me.open);
        }
        if s.opening {
            self.opened(i, false);
            return;
        }
        if self.phase == Phase::Running {
            if self.plan.idle {
                return;
            }
            // Through the timer heap, not a direct call: a refusing server must not make
            // fail -> kick -> connect -> fail recurse.
            let t = if s.sched.is_none() {
                s.hold_until = Some(now + RETRY);
                now + RETRY
            } else {
                now
            };
            self.timers.push(Reverse((t, i)));
        }
    }

    /// Ends slot `i`.
    fn finish(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if s.done {
            return;
        }
        s.done = true;
        if s.idle_open {
            self.st.idle_open_at_end += 1;
        }
        if let Some(c) = s.conn.take() {
            c.close();
        }
        self.live -= 1;
    }

    /// `kick`, then the I/O for what it queued.
    fn wake(&mut self, i: usize, now: Instant) {
        if self.kick(i, now) {
            self.drive(i);
        }
    }

    /// Slot `i` waits for nothing: sends its next request when it is due. Returns true when
    /// requests were queued on an open connection (the caller pumps it).
    fn kick(&mut self, i: usize, now: Instant) -> bool {
        let s = &mut self.slots[i];
        if s.done || s.io.in_flight > 0 || s.io.pending > 0 || self.phase != Phase::Running {
            return false;
        }
        if self.plan.idle {
            if self.sh.stopping(now) {
                self.finish(i);
            }
            return false;
        }
        if s.conn.as_ref().is_some_and(|c| !c.ready) {
            return false;
        }
        let (n, t0) = match s.sched.as_mut() {
            Some(sched) => {
                let due = *s.due.get_or_insert_with(|| sched.next_due());
                if self.sh.past_deadline(due) || self.sh.stop.load(Ordering::Relaxed) {
                    self.finish(i);
                    return false;
                }
                if due > now {
                    self.timers.push(Reverse((due, i)));
                    return false;
                }
                if self.sh.claim(1, now) == 0 {
                    self.finish(i);
                    return false;
                }
                s.due = None;
                (1, due)
            }
            None => {
                if let Some(h) = s.hold_until {
                    if h > now {
                        return false;
                    }
                    s.hold_until = None;
                }
                match self.sh.claim(self.plan.pipeline as u64, now) {
                    0 => {
                        self.finish(i);
                        return false;
                    }
                    n => (n, now),
                }
            }
        };
        let s = &mut self.slots[i];
        s.io.pending = n;
        s.io.t0 = t0;
        if self.plan.mode == Mode::Handshake || s.conn.is_none() {
            self.connect(i, now);
            false
        } else {
            start_requests(&mut s.io, self.plan, now);
            true
        }
    }
}
