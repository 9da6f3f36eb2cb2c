//! `--mode h2`: each thread drives its share of the connections with one event loop (mio,
//! edge-triggered), as the HTTP/1.1 modes do, and hyperium's `h2` client speaks HTTP/2 on
//! them. There is no async runtime: each connection's `h2` futures (the connection, each
//! stream's response and body) are polled when its socket has an event, with a waker that only
//! marks the connection to be polled again (`h2` wakes itself when one of its parts unblocks
//! another: a stream's new request for the connection, a frame read for a stream). The socket
//! and TLS sit behind [`crate::h2io::H2Io`].
//!
//! A connection carries `--streams` streams, each one request at a time (closed loop): a
//! stream whose response has ended sends the next request at once. Every connection is opened
//! (TCP, TLS with ALPN `h2` and the client certificate, the HTTP/2 preface) before time zero.
//! A GOAWAY from the server (nginx and ringgate send one after `keepalive_requests` streams)
//! lets the streams in flight finish, then the connection is replaced by a new one; requests the
//! server did not process (streams above the GOAWAY's last stream id, or refused with
//! REFUSED_STREAM) are sent again on it with their original start time, and counted as
//! `retried`, not as errors.
//!
//! `--mode grpc` is the same loop with a gRPC unary call as the request (`H2Plan::grpc`): each
//! response's body is compared with the message sent as it arrives, its trailers read, and
//! it counts as a request only when `crate::grpc::check` passes it; otherwise it is an error
//! (`grpc` for a `grpc-status` other than 0 or none, `bad_response` for the rest).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::{Connection, ResponseFuture, SendRequest};
use h2::{Reason, RecvStream};
use http::{HeaderMap, HeaderValue};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll as Epoll, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind};

use crate::args::{H2Plan, Plan};
use crate::h2io::H2Io;
use crate::tls::Tls;
use crate::worker::{io_kind, Counters, Shared, Stats, OPEN_BURST, RETRY, TICK};

type Io = H2Io<TcpStream>;
type Handshake =
    Pin<Box<dyn Future<Output = Result<(SendRequest<Bytes>, Connection<Io, Bytes>), h2::Error>>>>;
type Fail = (&'static str, String);

/// The client's flow-control windows, per stream and for the connection: large, so that the
/// server is never held back by the client (h2load's defaults are 2^30 - 1 for both). Each
/// DATA frame's bytes are given back as they are read.
pub const STREAM_WINDOW: u32 = 16 << 20;
pub const CONNECTION_WINDOW: u32 = (1 << 30) - 1;

/// Polls of one connection in a row while `h2` keeps waking it; then the other connections
/// get their turn and it is polled again on the next round of the loop.
const MAX_PASSES: usize = 32;

/// The waker of a connection's futures: marks it to be polled again.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A connection, from the TCP connect to HTTP/2.
enum ConnState {
    /// TCP connect under way.
    Connecting(Io),
    /// TLS handshake under way.
    Tls(Io),
    /// The HTTP/2 preface and SETTINGS going out.
    Handshake(Handshake),
    Up(Box<Up>),
}

struct Up {
    send: SendRequest<Bytes>,
    conn: Connection<Io, Bytes>,
    /// No new streams on it: the server sent GOAWAY, or the connection ended.
    going_away: bool,
    /// The server's GOAWAY has been counted.
    goaway_counted: bool,
    /// The connection future has resolved.
    ended: bool,
}

/// One stream of a connection.
enum Stream {
    /// Waits for its next request (or for a connection to send it on).
    Idle,
    /// A request claimed, with its start time, that goes out once a connection takes new
    /// streams (the server did not process it on the last one).
    Queued(Instant),
    /// Request sent, response head awaited.
    Waiting {
        t0: Instant,
        progress: Instant,
        resp: ResponseFuture,
    },
    /// Response head received, body being read (then, in grpc mode, the trailers).
    Body {
        t0: Instant,
        progress: Instant,
        status: u16,
        body: RecvStream,
        len: u64,
        grpc: Option<Box<GrpcBody>>,
    },
    /// No more requests (the run is over).
    Done,
}

impl Stream {
    fn in_flight(&self) -> bool {
        matches!(self, Stream::Waiting { .. } | Stream::Body { .. })
    }

    fn progress(&self) -> Option<Instant> {
        match self {
            Stream::Waiting { progress, .. } | Stream::Body { progress, .. } => Some(*progress),
            _ => None,
        }
    }
}

/// grpc mode: what a response's head said and its body has shown so far.
struct GrpcBody {
    content_type: Option<HeaderValue>,
    /// Every byte so far is the message's byte at its place.
    matches: bool,
    /// The body has ended: the trailers are next.
    data_done: bool,
}

/// A connection slot: the connection it holds now and its streams.
struct Slot {
    /// Client configuration with this slot's own session store.
    tls: Option<Arc<ClientConfig>>,
    conn: Option<ConnState>,
    /// Deadline of the connect and the TLS and HTTP/2 handshakes.
    open_deadline: Option<Instant>,
    streams: Vec<Stream>,
    flag: Arc<Flag>,
    waker: Waker,
    /// A reconnect is scheduled (after an error).
    retry_at: Option<Instant>,
    /// In the opening phase, counted in `H2Worker::opening`.
    opening: bool,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Opening,
    Running,
}

struct H2Worker<'a> {
    plan: &'a Plan,
    h2: &'a H2Plan,
    sh: &'a Shared,
    me: &'a Counters,
    server_name: Option<ServerName<'static>>,
    builder: h2::client::Builder,
    poll: Epoll,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    slots: Vec<Slot>,
    /// Slots still woken after `MAX_PASSES` polls.
    again: Vec<usize>,
    st: Stats,
    phase: Phase,
    open_queue: VecDeque<usize>,
    opening: usize,
    live: usize,
    next_sweep: Instant,
}

/// Drives the connection slots `indexes` in h2 mode until the run ends; thread `tid`.
pub fn run(tid: usize, indexes: &[usize], plan: &Plan, tls: Option<&Tls>, sh: &Shared) -> Stats {
    let me = &sh.counters[tid];
    let setup = match &plan.h2 {
        Some(h2) => Epoll::new().map(|poll| (h2, poll)),
        None => Err(io::Error::other("no HTTP/2 request in the plan")),
    };
    let (h2, poll) = match setup {
        Ok(x) => x,
        Err(e) => {
            let mut st = Stats::new();
            st.error(me, "io", format!("event loop: {e}"));
            sh.connected
                .fetch_add(indexes.len() as u64, Ordering::Relaxed);
            sh.finished.fetch_add(1, Ordering::Relaxed);
            return st;
        }
    };
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .enable_push(false);
    let slots = indexes
        .iter()
        .map(|_| {
            let flag = Arc::new(Flag(AtomicBool::new(false)));
            Slot {
                tls: tls.map(|t| t.with_own_session_store().config),
                conn: None,
                open_deadline: None,
                streams: (0..h2.streams).map(|_| Stream::Idle).collect(),
                waker: Waker::from(flag.clone()),
                flag,
                retry_at: None,
                opening: false,
                done: false,
            }
        })
        .collect::<Vec<_>>();
    let mut st = Stats::new();
    if h2.grpc {
        // Listed in the report even when none occur, as the other causes are.
        st.errors.insert("grpc", 0);
    }
    let mut w = H2Worker {
        plan,
        h2,
        sh,
        me,
        server_name: tls.map(|t| t.server_name.clone()),
        builder,
        poll,
        timers: BinaryHeap::new(),
        live: slots.len(),
        slots,
        again: Vec::new(),
        st,
        phase: Phase::Opening,
        open_queue: VecDeque::new(),
        opening: 0,
        next_sweep: Instant::now() + TICK,
    };
    w.run();
    sh.finished.fetch_add(1, Ordering::Relaxed);
    w.st
}

/// The request every stream sends.
fn request(h2: &H2Plan) -> http::Request<()> {
    let mut req = http::Request::new(());
    *req.method_mut() = h2.method.clone();
    *req.uri_mut() = h2.uri.clone();
    *req.headers_mut() = h2.headers.clone();
    req
}

/// A stream error that means the server did not process the request: safe to send again.
pub fn unprocessed(e: &h2::Error) -> bool {
    (e.is_go_away() && e.is_remote() && e.reason() == Some(Reason::NO_ERROR))
        || (e.is_reset() && e.is_remote() && e.reason() == Some(Reason::REFUSED_STREAM))
}

/// An `h2` error with its reason code's name (`INTERNAL_ERROR`), which its text leaves out.
pub fn describe(e: &h2::Error) -> String {
    match e.reason() {
        Some(r) => format!("{e} ({r:?})"),
        None => e.to_string(),
    }
}

/// Which of the report's error causes an `h2` error is.
pub fn h2_kind(e: &h2::Error) -> &'static str {
    if let Some(io) = e.get_io() {
        return io_kind(io);
    }
    if e.is_remote() {
        // The server reset the stream or went away with an error code.
        "closed"
    } else {
        // Our side found a protocol error in what the server sent.
        "bad_response"
    }
}

impl H2Worker<'_> {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        self.open_queue.extend(0..self.slots.len());
        self.open_more();
        while self.opening > 0 {
            self.turn(&mut events);
        }
        self.sh
            .connected
            .fetch_add(self.slots.len() as u64, Ordering::Relaxed);
        while self.sh.start.get().is_none() {
            // Let events queue up meanwhile (edge-triggered: nothing is lost).
            thread::sleep(Duration::from_micros(200));
        }
        self.phase = Phase::Running;
        for i in 0..self.slots.len() {
            self.drive(i);
        }
        while self.live > 0 {
            self.turn(&mut events);
        }
        for s in &mut self.slots {
            s.conn = None;
        }
    }

    /// One round of the loop: wait for events or the next timer, handle them.
    fn turn(&mut self, events: &mut Events) {
        let now = Instant::now();
        let mut wait = TICK;
        if let Some(Reverse((t, _))) = self.timers.peek() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        if !self.again.is_empty() {
            wait = Duration::ZERO;
        }
        if let Err(e) = self.poll.poll(events, Some(wait)) {
            if e.kind() != io::ErrorKind::Interrupted {
                self.st.error(self.me, "io", format!("epoll: {e}"));
                for i in 0..self.slots.len() {
                    self.finish(i);
                }
                self.opening = 0;
                self.open_queue.clear();
                return;
            }
        }
        for ev in events.iter() {
            if ev.token().0 < self.slots.len() {
                self.drive(ev.token().0);
            }
        }
        for i in std::mem::take(&mut self.again) {
            self.drive(i);
        }
        let now = Instant::now();
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if self.slots[i].retry_at.is_some_and(|r| r <= now) {
                self.slots[i].retry_at = None;
                self.drive(i);
            }
        }
        if now >= self.next_sweep {
            self.next_sweep = now + TICK;
            self.sweep(now);
        }
    }

    /// Timeouts, and the end of the run for slots that wait for nothing.
    fn sweep(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.done {
                continue;
            }
            if s.open_deadline.is_some_and(|d| now >= d) {
                let what = match &s.conn {
                    Some(ConnState::Connecting(_)) => "TCP connect",
                    Some(ConnState::Tls(_)) => "TLS handshake",
                    _ => "HTTP/2 handshake",
                };
                let msg = format!("no {what} within {:?}", self.plan.timeout);
                self.fail(i, "timeout", msg);
            } else if s
                .streams
                .iter()
                .filter_map(Stream::progress)
                .any(|p| now >= p + self.plan.timeout)
            {
                let msg = format!("no response within {:?}", self.plan.timeout);
                self.fail(i, "timeout", msg);
            } else if self.phase == Phase::Running
                && !s
                    .streams
                    .iter()
                    .any(|st| st.in_flight() || matches!(st, Stream::Queued(_)))
                && self.sh.stopping(now)
            {
                self.finish(i);
            }
        }
    }

    /// Opening phase: starts connections up to the burst limit.
    fn open_more(&mut self) {
        while self.opening < OPEN_BURST {
            let Some(i) = self.open_queue.pop_front() else {
                return;
            };
            self.slots[i].opening = true;
            self.opening += 1;
            self.connect(i);
            // The connect completes with a writable edge.
        }
    }

    /// Opening phase: slot `i` is open (or failed to open).
    fn opened(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if !s.opening {
            return;
        }
        s.opening = false;
        self.opening -= 1;
        self.open_more();
    }

    /// Starts a new connection on slot `i` (TCP connect; TLS and HTTP/2 follow in `step`).
    fn connect(&mut self, i: usize) {
        let now = Instant::now();
        let s = &mut self.slots[i];
        s.conn = None;
        s.open_deadline = Some(now + self.plan.timeout);
        let mut sock = match TcpStream::connect(self.plan.addr) {
            Ok(s) => s,
            Err(e) => return self.fail(i, "connect", e.to_string()),
        };
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return self.fail(i, "io", format!("epoll: {e}"));
        }
        let tls = match (&s.tls, &self.server_name) {
            (Some(cfg), Some(name)) => match ClientConnection::new(cfg.clone(), name.clone()) {
                Ok(c) => Some(Box::new(c)),
                Err(e) => return self.fail(i, "tls", e.to_string()),
            },
            _ => None,
        };
        s.conn = Some(ConnState::Connecting(H2Io::new(sock, tls)));
    }

    /// Error on slot `i`: counted once per request it loses (at least once), the connection
    /// dropped; a reconnect follows after a pause (or, when opening, the slot counts as
    /// opened).
    fn fail(&mut self, i: usize, kind: &'static str, msg: String) {
        let s = &mut self.slots[i];
        let lost = s.streams.iter().filter(|st| st.in_flight()).count().max(1);
        for st in &mut s.streams {
            if !matches!(st, Stream::Done) {
                *st = Stream::Idle;
            }
        }
        s.conn = None;
        s.open_deadline = None;
        for _ in 0..lost {
            self.st.error(self.me, kind, msg.clone());
        }
        let s = &mut self.slots[i];
        if s.opening {
            self.opened(i);
            return;
        }
        if self.phase == Phase::Running && !s.done {
            let t = Instant::now() + RETRY;
            s.retry_at = Some(t);
            self.timers.push(Reverse((t, i)));
        }
    }

    /// Ends slot `i` (its connection is dropped: the socket closes).
    fn finish(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if s.done {
            return;
        }
        s.done = true;
        s.conn = None;
        for st in &mut s.streams {
            *st = Stream::Done;
        }
        self.live -= 1;
    }

    /// Polls slot `i` until its futures stop waking it (or `MAX_PASSES`).
    fn drive(&mut self, i: usize) {
        for _ in 0..MAX_PASSES {
            if self.slots[i].done {
                return;
            }
            self.slots[i].flag.0.store(false, Ordering::Relaxed);
            if let Err((kind, msg)) = self.step(i) {
                self.fail(i, kind, msg);
                return;
            }
            if !self.slots[i].flag.0.load(Ordering::Relaxed) {
                return;
            }
        }
        self.again.push(i);
    }

    /// One poll of everything slot `i` holds: the connection's set-up, the connection, its
    /// streams; then what follows (a new connection, the end of the slot).
    fn step(&mut self, i: usize) -> Result<(), Fail> {
        let waker = self.slots[i].waker.clone();
        let mut cx = Context::from_waker(&waker);
        if !self.set_up(i, &mut cx)? {
            return Ok(());
        }
        let now = Instant::now();
        let stopping = self.sh.stopping(now);
        let s = &mut self.slots[i];
        let Some(ConnState::Up(up)) = s.conn.as_mut() else {
            // No connection (the last one went away or failed): a new one, unless a retry is
            // scheduled or nothing is left to send.
            if s.retry_at.is_some() {
                return Ok(());
            }
            if stopping && !s.streams.iter().any(|st| matches!(st, Stream::Queued(_))) {
                self.finish(i);
                return Ok(());
            }
            self.connect(i);
            return Ok(());
        };
        let had_in_flight = s.streams.iter().any(Stream::in_flight);
        if !up.ended {
            match Pin::new(&mut up.conn).poll(&mut cx) {
                Poll::Pending => {}
                Poll::Ready(r) => {
                    up.ended = true;
                    // A connection that ends cleanly after the server's GOAWAY resolves to
                    // Ok: the GOAWAY is the error new streams would get.
                    if let Poll::Ready(Err(e)) = up.send.poll_ready(&mut cx) {
                        note_going_away(up, &e, self.me, &mut self.st);
                    }
                    up.going_away = true;
                    if let Err(e) = r {
                        note_going_away(up, &e, self.me, &mut self.st);
                        let remote_goaway = e.is_go_away() && e.is_remote();
                        let graceful = remote_goaway && e.reason() == Some(Reason::NO_ERROR);
                        // With streams in flight, each stream reports the error.
                        if !graceful && !had_in_flight {
                            let msg = format!("connection: {}", describe(&e));
                            self.st.error(self.me, h2_kind(&e), msg);
                        }
                    }
                }
            }
        }
        for st in &mut s.streams {
            poll_stream(
                st,
                up,
                &mut cx,
                self.h2,
                self.sh,
                self.me,
                &mut self.st,
                stopping,
            )?;
        }
        let in_flight = s.streams.iter().any(Stream::in_flight);
        if up.going_away && !in_flight {
            // This connection is through: a new one for what is left.
            s.conn = None;
            if s.streams.iter().all(|st| matches!(st, Stream::Done)) {
                self.finish(i);
            } else {
                // Poll again at once: `step` connects.
                s.flag.0.store(true, Ordering::Relaxed);
            }
        } else if !in_flight && s.streams.iter().all(|st| matches!(st, Stream::Done)) {
            self.finish(i);
        }
        Ok(())
    }

    /// Moves the connection of slot `i` through its set-up; true once it is up and the run
    /// has started (or when there is no connection), false while it is on its way.
    fn set_up(&mut self, i: usize, cx: &mut Context<'_>) -> Result<bool, Fail> {
        loop {
            let s = &mut self.slots[i];
            match s.conn.take() {
                None => return Ok(self.phase == Phase::Running),
                Some(ConnState::Connecting(io)) => {
                    if let Ok(Some(e)) | Err(e) = io.sock().take_error() {
                        return Err(("connect", e.to_string()));
                    }
                    match io.sock().peer_addr() {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                            s.conn = Some(ConnState::Connecting(io));
                            return Ok(false);
                        }
                        Err(e) => return Err(("connect", e.to_string())),
                    }
                    let _ = io.sock().set_nodelay(true);
                    s.conn = Some(ConnState::Tls(io));
                }
                Some(ConnState::Tls(mut io)) => match io.poll_handshake() {
                    Poll::Pending => {
                        s.conn = Some(ConnState::Tls(io));
                        return Ok(false);
                    }
                    Poll::Ready(Err(e)) => return Err(("tls", e.to_string())),
                    Poll::Ready(Ok(())) => {
                        if let Some(tls) = io.tls() {
                            if tls.alpn_protocol() != Some(b"h2") {
                                let got = tls.alpn_protocol().map_or("none".to_string(), |p| {
                                    String::from_utf8_lossy(p).into_owned()
                                });
                                return Err((
                                    "tls",
                                    format!("the server did not choose h2 in ALPN ({got})"),
                                ));
                            }
                            if tls.handshake_kind() == Some(HandshakeKind::Resumed) {
                                self.st.hs_resumed += 1;
                                self.me.add(&self.me.hs_resumed);
                            } else {
                                self.st.hs_full += 1;
                                self.me.add(&self.me.hs_full);
                            }
                        }
                        let hs = self.builder.handshake::<Io, Bytes>(io);
                        s.conn = Some(ConnState::Handshake(Box::pin(hs)));
                    }
                },
                Some(ConnState::Handshake(mut hs)) => match hs.as_mut().poll(cx) {
                    Poll::Pending => {
                        s.conn = Some(ConnState::Handshake(hs));
                        return Ok(false);
                    }
                    Poll::Ready(Err(e)) => {
                        return Err((h2_kind(&e), format!("HTTP/2 handshake: {}", describe(&e))));
                    }
                    Poll::Ready(Ok((send, conn))) => {
                        s.conn = Some(ConnState::Up(Box::new(Up {
                            send,
                            conn,
                            going_away: false,
                            goaway_counted: false,
                            ended: false,
                        })));
                        s.open_deadline = None;
                        self.st.h2_connections += 1;
                        if self.phase == Phase::Opening {
                            self.opened(i);
                            return Ok(false);
                        }
                        return Ok(true);
                    }
                },
                Some(ConnState::Up(up)) => {
                    s.conn = Some(ConnState::Up(up));
                    return Ok(self.phase == Phase::Running);
                }
            }
        }
    }
}

/// Moves one stream on as far as it goes now: reads its response, records it, sends the
/// next request. An error that ends only this stream is counted here; one that ends the
/// connection comes back as `Err`.
#[allow(clippy::too_many_arguments)]
fn poll_stream(
    st: &mut Stream,
    up: &mut Up,
    cx: &mut Context<'_>,
    h2: &H2Plan,
    sh: &Shared,
    me: &Counters,
    stats: &mut Stats,
    stopping: bool,
) -> Result<(), Fail> {
    loop {
        match st {
            Stream::Done => return Ok(()),
            Stream::Idle | Stream::Queued(_) => {
                if matches!(st, Stream::Idle) && stopping {
                    *st = Stream::Done;
                    return Ok(());
                }
                if up.going_away {
                    return Ok(());
                }
                match up.send.poll_ready(cx) {
                    Poll::Pending => return Ok(()),
                    Poll::Ready(Err(e)) => {
                        note_going_away(up, &e, me, stats);
                        return Ok(());
                    }
                    Poll::Ready(Ok(())) => {}
                }
                let t0 = match st {
                    Stream::Queued(t0) => *t0,
                    _ => {
                        let now = Instant::now();
                        if sh.claim(1, now) == 0 {
                            *st = Stream::Done;
                            return Ok(());
                        }
                        now
                    }
                };
                let end = h2.body.is_empty();
                let (resp, mut send) = match up.send.send_request(request(h2), end) {
                    Ok(x) => x,
                    Err(e) => {
                        note_going_away(up, &e, me, stats);
                        *st = Stream::Queued(t0);
                        return Ok(());
                    }
                };
                if !end {
                    // Buffered by h2, sent as the server's window allows.
                    if let Err(e) = send.send_data(h2.body.clone(), true) {
                        stats.error(me, h2_kind(&e), format!("request body: {}", describe(&e)));
                        *st = Stream::Idle;
                        continue;
                    }
                }
                *st = Stream::Waiting {
                    t0,
                    progress: Instant::now(),
                    resp,
                };
            }
            Stream::Waiting { t0, resp, .. } => match Pin::new(resp).poll(cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Ok(r)) => {
                    let status = r.status().as_u16();
                    let t0 = *t0;
                    let (head, body) = r.into_parts();
                    let grpc = h2.grpc.then(|| {
                        Box::new(GrpcBody {
                            content_type: head.headers.get(http::header::CONTENT_TYPE).cloned(),
                            matches: true,
                            data_done: false,
                        })
                    });
                    if body.is_end_stream() {
                        match grpc {
                            // Trailers-only: grpc-status is in the head.
                            Some(g) => grpc_done(stats, me, t0, status, 0, &g, &head.headers, h2),
                            None => record(stats, me, t0, status, 0),
                        }
                        *st = Stream::Idle;
                    } else {
                        *st = Stream::Body {
                            t0,
                            progress: Instant::now(),
                            status,
                            body,
                            len: 0,
                            grpc,
                        };
                    }
                }
                Poll::Ready(Err(e)) => {
                    let t0 = *t0;
                    stream_error(st, t0, &e, up, me, stats);
                }
            },
            Stream::Body {
                t0,
                status,
                body,
                len,
                grpc: Some(g),
                ..
            } if g.data_done => match body.poll_trailers(cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Ok(trailers)) => {
                    let none = HeaderMap::new();
                    let trailers = trailers.as_ref().unwrap_or(&none);
                    grpc_done(stats, me, *t0, *status, *len, g, trailers, h2);
                    *st = Stream::Idle;
                }
                Poll::Ready(Err(e)) => {
                    let t0 = *t0;
                    stream_error(st, t0, &e, up, me, stats);
                }
            },
            Stream::Body {
                t0,
                progress,
                status,
                body,
                len,
                grpc,
            } => match body.poll_data(cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some(g) = grpc {
                        let at = *len as usize;
                        g.matches &= h2.body.get(at..at + chunk.len()) == Some(&chunk[..]);
                    }
                    *len += chunk.len() as u64;
                    *progress = Instant::now();
                    // Give the window back (errors only when the stream is gone, which the
                    // next poll reports).
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                Poll::Ready(None) => match grpc {
                    Some(g) => g.data_done = true,
                    None => {
                        record(stats, me, *t0, *status, *len);
                        *st = Stream::Idle;
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    let t0 = *t0;
                    stream_error(st, t0, &e, up, me, stats);
                }
            },
        }
    }
}

/// `poll_ready` or `send_request` failed: the connection takes no new streams.
/// A GOAWAY from the server is counted by its code; one with an error code (the server found
/// fault with the client, or failed) is an error as well.
fn note_going_away(up: &mut Up, e: &h2::Error, me: &Counters, stats: &mut Stats) {
    up.going_away = true;
    if e.is_go_away() && e.is_remote() && !up.goaway_counted {
        up.goaway_counted = true;
        stats.h2_goaways += 1;
        let reason = e.reason().unwrap_or(Reason::NO_ERROR);
        *stats
            .h2_goaway_reasons
            .entry(format!("{reason:?}"))
            .or_default() += 1;
        if reason != Reason::NO_ERROR {
            stats.error(me, "closed", format!("GOAWAY: {}", describe(e)));
        }
    }
}

/// A stream ended without its response: sent again when the server did not process it,
/// otherwise counted as an error (the stream then sends its next request).
fn stream_error(
    st: &mut Stream,
    t0: Instant,
    e: &h2::Error,
    up: &mut Up,
    me: &Counters,
    stats: &mut Stats,
) {
    if unprocessed(e) {
        stats.h2_retried += 1;
        *st = Stream::Queued(t0);
        if e.is_go_away() {
            note_going_away(up, e, me, stats);
        }
        return;
    }
    stats.error(me, h2_kind(e), format!("stream: {}", describe(e)));
    *st = Stream::Idle;
}

/// grpc mode: a complete response (its trailers, or the head of a trailers-only one, in
/// `trailers`), a request when it is the echo of the call with `grpc-status: 0`, otherwise
/// an error; its HTTP status and `grpc-status` are counted either way.
#[allow(clippy::too_many_arguments)]
fn grpc_done(
    stats: &mut Stats,
    me: &Counters,
    t0: Instant,
    status: u16,
    len: u64,
    g: &GrpcBody,
    trailers: &HeaderMap,
    h2: &H2Plan,
) {
    let r = crate::grpc::Response {
        status,
        content_type: g.content_type.as_ref().map(HeaderValue::as_bytes),
        trailers: Some(trailers),
        body_len: len,
        body_matches: g.matches,
    };
    *stats
        .grpc_statuses
        .entry(crate::grpc::status_of(&r))
        .or_default() += 1;
    match crate::grpc::check(&r, &h2.body) {
        Ok(()) => record(stats, me, t0, status, len),
        Err(f) => {
            *stats.statuses.entry(status).or_default() += 1;
            stats.error(me, f.kind, f.msg);
        }
    }
}

/// A complete response.
fn record(stats: &mut Stats, me: &Counters, t0: Instant, status: u16, len: u64) {
    let us = Instant::now()
        .saturating_duration_since(t0)
        .as_micros()
        .min(u64::MAX as u128) as u64;
    stats.hist.saturating_record(us.max(1));
    stats.requests += 1;
    stats.body_bytes += len;
    *stats.statuses.entry(status).or_default() += 1;
    me.add(&me.requests);
}
