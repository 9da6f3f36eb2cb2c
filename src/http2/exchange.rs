//! One HTTP/2 stream as the byte stream the request phases read from and write to.
//!
//! Reading yields the request body: DATA frames as they arrive (their flow-control window
//! given back as they are taken, so a client sends no more than the phases can pass on), in
//! chunked framing when the head announced it. Writing takes the HTTP/1.1 response the phases
//! produce: its head becomes a HEADERS frame (an interim 100 or 103 head an interim HEADERS
//! frame, other 1xx heads are dropped; the fields HTTP/2 forbids, `connection`, `keep-alive`,
//! `transfer-encoding`, `upgrade` and their kin, are left out), its body DATA frames sent as
//! the client's window allows, de-chunked when it came chunked; the last one ends the stream.

use std::future::poll_fn;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::http::{parse_response, BodyFraming, ChunkedScanner, Limits};

/// Largest response head the phases write (ringgate's own pages and proxied heads).
const MAX_HEAD: usize = 64 * 1024;

/// Where the response stands.
enum Out {
    /// Collecting the head (it may arrive in pieces).
    Head(BytesMut),
    /// Sending a body of known length: bytes left.
    Length(u64),
    /// Sending a chunked body, de-chunked.
    Chunked(ChunkedScanner),
    /// Sending a body that ends when the phases close.
    UntilClose,
    /// An extended CONNECT whose upstream switched protocols: the stream is a tunnel now
    /// (see [`Exchange::into_halves`]).
    Tunnel,
    /// The stream has ended (or was reset).
    Done,
}

/// What the request says about the exchange.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The request body is given to the phases in chunked framing (it has no length).
    pub chunked_body: bool,
    /// The request is HEAD.
    pub is_head: bool,
    /// The request is an extended CONNECT (RFC 8441).
    pub extended_connect: bool,
}

/// An HTTP/2 stream carrying one request and its response.
pub struct Exchange {
    recv: RecvStream,
    /// The request body is given to the phases in chunked framing.
    chunked_body: bool,
    /// The request body has been read to its end (and the chunked end written).
    body_done: bool,
    out: Responder,
}

/// The sending side of a stream: the response, as HTTP/1.1 bytes the phases write (made
/// HEADERS and DATA) or, for a relay from an HTTP/2 upstream, as DATA and trailers given
/// directly.
pub struct Responder {
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
    state: Out,
    /// The request is HEAD: the response has no body whatever its head says.
    is_head: bool,
    /// The request is an extended CONNECT (RFC 8441): a `101` from the upstream opens the
    /// tunnel and is answered `200`.
    extended_connect: bool,
    /// Longest wait for the client's window (the server's `send_timeout`): a client that
    /// opens no window cannot hold the stream for ever.
    send_timeout: Duration,
}

fn h2_error(e: h2::Error) -> io::Error {
    if e.is_io() {
        return e
            .into_io()
            .unwrap_or_else(|| io::Error::other("HTTP/2 I/O error"));
    }
    io::Error::new(io::ErrorKind::ConnectionReset, e)
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the HTTP/2 stream has ended")
}

impl Exchange {
    /// A stream whose request body comes from `recv` (in chunked framing when `chunked_body`)
    /// and whose response goes to `respond`.
    pub fn new(
        recv: RecvStream,
        respond: SendResponse<Bytes>,
        shape: Shape,
        send_timeout: Duration,
    ) -> Exchange {
        let Shape {
            chunked_body,
            is_head,
            extended_connect,
        } = shape;
        let body_done = recv.is_end_stream() && !chunked_body;
        Exchange {
            recv,
            chunked_body,
            body_done,
            out: Responder {
                respond,
                send: None,
                state: Out::Head(BytesMut::new()),
                is_head,
                extended_connect,
                send_timeout,
            },
        }
    }

    /// Whether the response has been sent to its end.
    pub fn is_complete(&self) -> bool {
        matches!(self.out.state, Out::Done)
    }

    /// Whether the response's head has gone out.
    pub fn has_responded(&self) -> bool {
        !matches!(self.out.state, Out::Head(_))
    }

    /// The request's DATA frames as they came (no chunked framing) and the response side,
    /// apart: a relay from an HTTP/2 upstream reads the one while it writes the other.
    pub fn split(&mut self) -> (RequestBody<'_>, &mut Responder) {
        self.body_done = true;
        (
            RequestBody {
                recv: &mut self.recv,
            },
            &mut self.out,
        )
    }

    /// Reads the next DATA frame of the request body into `dst` (a whole frame, whatever
    /// `_max`: its window has been given back, so it cannot wait). Returns 0 at the end of the
    /// body.
    pub async fn read_body(&mut self, dst: &mut BytesMut, _max: usize) -> io::Result<usize> {
        if self.body_done {
            return Ok(0);
        }
        let Some(data) = next_data(&mut self.recv).await? else {
            self.body_done = true;
            if self.chunked_body {
                dst.extend_from_slice(crate::http::LAST_CHUNK);
                return Ok(crate::http::LAST_CHUNK.len());
            }
            return Ok(0);
        };
        let before = dst.len();
        if self.chunked_body {
            crate::http::encode_chunk_header(data.len(), dst);
            dst.extend_from_slice(&data);
            dst.extend_from_slice(b"\r\n");
        } else {
            dst.extend_from_slice(&data);
        }
        Ok(dst.len() - before)
    }

    /// Takes HTTP/1.1 response bytes from the phases.
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write(data).await
    }

    /// As [`Exchange::write`], for a buffer the phases hand over: body bytes go out as DATA
    /// without a copy.
    pub async fn write_bytes(&mut self, data: Bytes) -> io::Result<()> {
        self.out.write_bytes(data).await
    }

    /// The stream as a tunnel's two halves, once an extended CONNECT has been switched; the
    /// exchange itself otherwise.
    pub fn into_halves(self) -> Result<(TunnelRead, TunnelWrite), Box<Exchange>> {
        let Exchange {
            recv,
            chunked_body,
            body_done,
            out,
        } = self;
        match (out.state, out.send) {
            (Out::Tunnel, Some(send)) => Ok((
                TunnelRead { recv },
                TunnelWrite {
                    send,
                    send_timeout: out.send_timeout,
                },
            )),
            (state, send) => Err(Box::new(Exchange {
                recv,
                chunked_body,
                body_done,
                out: Responder { state, send, ..out },
            })),
        }
    }

    /// Ends a body framed by the close of the connection; resets a stream whose response
    /// did not complete (the client must not take a cut response for a whole one).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.out.shutdown()
    }

    /// Resets the stream unless its response is complete: the request's processing is over.
    pub fn finish(&mut self) {
        if !self.is_complete() {
            self.out.reset(Reason::INTERNAL_ERROR);
        }
    }

    /// Refuses a malformed request with RST_STREAM PROTOCOL_ERROR (RFC 9113 §8.1.1).
    pub fn refuse_malformed(&mut self) {
        self.out.respond.send_reset(Reason::PROTOCOL_ERROR);
        self.out.state = Out::Done;
    }
}

/// A request body's DATA frames and trailers, for a relay to an HTTP/2 upstream.
pub struct RequestBody<'a> {
    recv: &'a mut RecvStream,
}

impl RequestBody<'_> {
    /// The next DATA frame with bytes in it, its window given back; None at the end.
    pub async fn data(&mut self) -> io::Result<Option<Bytes>> {
        next_data(self.recv).await
    }

    /// The trailers, once the DATA frames have ended (None when the client sent none).
    pub async fn trailers(&mut self) -> io::Result<Option<HeaderMap>> {
        poll_fn(|cx| self.recv.poll_trailers(cx))
            .await
            .map_err(h2_error)
    }
}

impl Responder {
    /// Takes HTTP/1.1 response bytes from the phases.
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Out::Head(pending) = &mut self.state {
            pending.extend_from_slice(data);
            let pending = std::mem::take(pending);
            return match self.take_head(pending)? {
                Some(rest) => self.write_body(rest.freeze()).await,
                None => Ok(()),
            };
        }
        self.write_body(Bytes::copy_from_slice(data)).await
    }

    /// As [`Responder::write`], for a buffer the phases hand over: body bytes go out as DATA
    /// without a copy.
    pub async fn write_bytes(&mut self, data: Bytes) -> io::Result<()> {
        if matches!(self.state, Out::Head(_)) {
            return self.write(&data).await;
        }
        self.write_body(data).await
    }

    /// Sends body bytes as DATA as they are, whatever framing the head announced (the relay
    /// from an HTTP/2 upstream has them unframed). Nothing goes out when no body is owed.
    pub async fn data(&mut self, data: Bytes) -> io::Result<()> {
        if matches!(self.state, Out::Head(_) | Out::Done) {
            return Ok(());
        }
        match self.send.as_mut() {
            Some(stream) => send_data(stream, data, false, self.send_timeout).await,
            None => Ok(()),
        }
    }

    /// Ends the response: with a trailing HEADERS frame when there are trailers, else with an
    /// empty END_STREAM DATA frame.
    pub fn end(&mut self, trailers: Option<HeaderMap>) -> io::Result<()> {
        if matches!(self.state, Out::Head(_) | Out::Done) {
            return Ok(());
        }
        self.state = Out::Done;
        let Some(stream) = self.send.as_mut() else {
            return Ok(());
        };
        match trailers {
            Some(t) if !t.is_empty() => stream.send_trailers(t).map_err(h2_error),
            _ => stream.send_data(Bytes::new(), true).map_err(h2_error),
        }
    }

    /// Whether the response's head has gone out.
    pub fn has_responded(&self) -> bool {
        !matches!(self.state, Out::Head(_))
    }

    /// Ready with its reason when the client resets the stream (it cancelled the request):
    /// a relay waiting on the upstream stops at once instead of at its next write.
    pub fn poll_reset(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Reason> {
        let polled = match (self.send.as_mut(), &self.state) {
            (Some(send), _) => send.poll_reset(cx),
            (None, Out::Head(_)) => self.respond.poll_reset(cx),
            (None, _) => return std::task::Poll::Pending,
        };
        polled.map(|r| r.unwrap_or(Reason::CANCEL))
    }

    /// Resets the stream with `reason` (a relayed upstream reset, or a failure after the head).
    pub fn reset(&mut self, reason: Reason) {
        match self.send.as_mut() {
            Some(send) => send.send_reset(reason),
            None => self.respond.send_reset(reason),
        }
        self.state = Out::Done;
    }

    /// Parses the response head out of `pending` and sends it as HEADERS. Returns the body
    /// bytes that came with it, or None while the head is incomplete (kept for the next
    /// write). Interim 1xx heads are dropped.
    fn take_head(&mut self, mut pending: BytesMut) -> io::Result<Option<BytesMut>> {
        let limits = Limits {
            max_head_bytes: MAX_HEAD,
            max_headers: 200,
            max_line_bytes: MAX_HEAD,
        };
        loop {
            let head = match parse_response(&pending, self.is_head, &limits) {
                Ok(Some(head)) => head,
                Ok(None) if pending.len() <= MAX_HEAD => {
                    self.state = Out::Head(pending);
                    return Ok(None);
                }
                Ok(None) => return Err(io::Error::other("response head too large")),
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.reason())),
            };
            if head.status == 101 && self.extended_connect {
                return self.open_tunnel(&head, pending).map(Some);
            }
            if (100..200).contains(&head.status) {
                if head.status == 100 || head.status == 103 {
                    // `100 Continue` (ringgate's own, for `expect: 100-continue`) and
                    // `103 Early Hints` go out as interim HEADERS (RFC 9113 §8.1); others
                    // mean nothing over HTTP/2 and are dropped.
                    let interim = response_of(&head, &pending)?;
                    self.respond.send_informational(interim).map_err(h2_error)?;
                }
                let _ = pending.split_to(head.head_len);
                if pending.is_empty() {
                    self.state = Out::Head(pending);
                    return Ok(None);
                }
                continue;
            }
            let mut response = response_of(&head, &pending)?;
            let end =
                self.is_head || matches!(head.framing, BodyFraming::None | BodyFraming::Length(0));
            if end && !self.is_head {
                // A response that ends with its HEADERS says so by END_STREAM: its
                // `content-length: 0` is HTTP/1.1's framing, and to a gRPC client, whose
                // trailers-only answer this is, it would read as trailing metadata.
                response.headers_mut().remove(http::header::CONTENT_LENGTH);
            }
            let send = self
                .respond
                .send_response(response, end)
                .map_err(h2_error)?;
            self.state = match head.framing {
                _ if end => Out::Done,
                BodyFraming::Length(n) => Out::Length(n),
                BodyFraming::Chunked => Out::Chunked(ChunkedScanner::new()),
                BodyFraming::UntilClose => Out::UntilClose,
                BodyFraming::None => Out::Done,
            };
            if !end {
                self.send = Some(send);
            }
            let _ = pending.split_to(head.head_len);
            return Ok(Some(pending));
        }
    }

    /// Answers an extended CONNECT whose upstream switched protocols: `200` with the `101`'s
    /// end-to-end fields (`sec-websocket-protocol`, `sec-websocket-extensions`; not the
    /// HTTP/1.1 handshake's `sec-websocket-accept`). Returns the bytes that came after the
    /// `101`: the tunnel's first.
    fn open_tunnel(
        &mut self,
        head: &crate::http::ResponseHead,
        mut pending: BytesMut,
    ) -> io::Result<BytesMut> {
        let mut response = response_of(head, &pending)?;
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().remove("sec-websocket-accept");
        let send = self
            .respond
            .send_response(response, false)
            .map_err(h2_error)?;
        self.send = Some(send);
        self.state = Out::Tunnel;
        let _ = pending.split_to(head.head_len);
        Ok(pending)
    }

    /// Sends body bytes as DATA, de-chunked, ending the stream with the body's last byte.
    async fn write_body(&mut self, data: Bytes) -> io::Result<()> {
        let wait = self.send_timeout;
        let Responder {
            state: out, send, ..
        } = self;
        let Some(stream) = send.as_mut() else {
            // No body is owed (HEAD, 204, ...): what follows the head is not sent.
            return Ok(());
        };
        match out {
            Out::Length(left) => {
                let n = usize::try_from(*left).map_or(data.len(), |l| l.min(data.len()));
                *left -= n as u64;
                let end = *left == 0;
                if end {
                    *out = Out::Done;
                }
                send_data(stream, data.slice(..n), end, wait).await
            }
            Out::Chunked(scanner) => {
                let mut runs = Vec::new();
                let scan = scanner
                    .feed_data(&data, |r| runs.push(r))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.reason()))?;
                let done = scan.done;
                if done {
                    *out = Out::Done;
                }
                let last = runs.len();
                for (i, r) in runs.into_iter().enumerate() {
                    let end = done && i + 1 == last;
                    send_data(stream, data.slice(r), end, wait).await?;
                }
                if done && last == 0 {
                    send_data(stream, Bytes::new(), true, wait).await?;
                }
                Ok(())
            }
            Out::UntilClose | Out::Tunnel => send_data(stream, data, false, wait).await,
            Out::Head(_) | Out::Done => Ok(()),
        }
    }

    /// Ends a body framed by the close of the connection; resets a stream whose response
    /// did not complete (the client must not take a cut response for a whole one).
    pub fn shutdown(&mut self) -> io::Result<()> {
        match &self.state {
            Out::UntilClose => {
                if let Some(send) = self.send.as_mut() {
                    send.send_data(Bytes::new(), true).map_err(h2_error)?;
                }
                self.state = Out::Done;
            }
            Out::Done => {}
            _ => self.reset(Reason::INTERNAL_ERROR),
        }
        Ok(())
    }
}

/// The HTTP/2 response for an HTTP/1.1 head: its status and its fields, less those HTTP/2
/// forbids.
fn response_of(head: &crate::http::ResponseHead, buf: &[u8]) -> io::Result<Response<()>> {
    let status = StatusCode::from_u16(head.status)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "invalid status"))?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    let fields = response.headers_mut();
    for h in &head.headers {
        let Ok(name) = HeaderName::from_bytes(h.name.get(buf)) else {
            continue;
        };
        if super::is_connection_specific(name.as_str()) {
            continue;
        }
        if let Ok(value) = HeaderValue::from_bytes(h.value.get(buf)) {
            fields.append(name, value);
        }
    }
    Ok(response)
}

/// The next DATA frame with bytes in it, its window given back at once (empty frames, END_STREAM
/// alone or padding, are skipped); None at the end of the stream.
pub async fn next_data(recv: &mut RecvStream) -> io::Result<Option<Bytes>> {
    loop {
        match poll_fn(|cx| recv.poll_data(cx)).await {
            Some(Ok(data)) => {
                let _ = recv.flow_control().release_capacity(data.len());
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
            Some(Err(e)) => return Err(h2_error(e)),
            None => return Ok(None),
        }
    }
}

/// Sends `data` as the client's window allows, waiting at most `wait` each time the window is
/// closed; then the stream is reset (CANCEL) and the write fails, so a client that never
/// opens its window cannot keep the stream, and its connection, for ever.
pub async fn send_data(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    wait: Duration,
) -> io::Result<()> {
    if data.is_empty() {
        if end {
            send.send_data(data, true).map_err(h2_error)?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted =
            match crate::deadline::timeout(wait, poll_fn(|cx| send.poll_capacity(cx))).await {
                Ok(Some(Ok(n))) => n,
                Ok(Some(Err(e))) => return Err(h2_error(e)),
                Ok(None) => return Err(closed()),
                Err(_) => {
                    send.send_reset(Reason::CANCEL);
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client opened no window within send_timeout",
                    ));
                }
            };
        if granted == 0 {
            continue;
        }
        let chunk = data.split_to(granted.min(data.len()));
        send.send_data(chunk, end && data.is_empty())
            .map_err(h2_error)?;
    }
    Ok(())
}

/// A tunnelled stream's receiving side: DATA frames from the client.
pub struct TunnelRead {
    recv: RecvStream,
}

/// A tunnelled stream's sending side: DATA frames to the client.
pub struct TunnelWrite {
    send: SendStream<Bytes>,
    send_timeout: Duration,
}

impl TunnelRead {
    /// Reads the next DATA frame's bytes into `dst` (cleared first). Returns 0 when the
    /// client ended the stream.
    pub async fn read(&mut self, dst: &mut BytesMut) -> io::Result<usize> {
        dst.clear();
        let data = next_data(&mut self.recv).await?.unwrap_or_default();
        dst.extend_from_slice(&data);
        Ok(data.len())
    }
}

impl TunnelWrite {
    /// Sends `data` as the client's window allows.
    pub async fn write(&mut self, data: Bytes) -> io::Result<()> {
        send_data(&mut self.send, data, false, self.send_timeout).await
    }

    /// Ends the stream towards the client (END_STREAM): the tunnel's half-close.
    pub fn shutdown(&mut self) -> io::Result<()> {
        self.send.send_data(Bytes::new(), true).map_err(h2_error)
    }
}
