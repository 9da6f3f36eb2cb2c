//! The gRPC echo service of `ringgate-grpc-echo`: HTTP/2 in cleartext with prior knowledge
//! (what nginx's `grpc_pass grpc://` and ringgate's `proxy_pass = "grpc://..."` speak), on a
//! monoio runtime (io_uring where the kernel has it, epoll otherwise) with hyperium's `h2`
//! server over monoio's poll-io sockets, as ringgate drives its own HTTP/2 connections.
//!
//! Every POST is read to its end, and when its body is whole uncompressed gRPC messages it is
//! answered: HEADERS `:status 200`, `content-type: application/grpc`; one DATA frame with the
//! request's body as it came (prefix and message); trailers `grpc-status: 0`. Any path is
//! served (bench/run.sh calls `/bench.Echo/Unary`). A body that is not whole messages gets a
//! trailers-only `grpc-status: 13` (INTERNAL) with a `grpc-message`, one over 4 MiB
//! `grpc-status: 8` (RESOURCE_EXHAUSTED); another method gets HTTP 405.

use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use monoio::io::IntoPollIo;
use monoio::net::{ListenerOpts, TcpListener, TcpStream};

use crate::grpc;

/// Streams a client may open at once on one connection (nginx opens one connection per call
/// in flight, ringgate multiplexes up to this many on one).
pub const MAX_STREAMS: u32 = 1024;

/// Serves on `addr` on the current thread until the process ends: a listener of its own
/// with SO_REUSEPORT (so that each thread of the server has one on the same port, and the
/// kernel spreads the connections), its address sent on `ready` once it listens (or the
/// error that kept it from listening).
pub fn run(addr: SocketAddr, ready: std::sync::mpsc::Sender<io::Result<SocketAddr>>) {
    let rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build();
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        let opts = ListenerOpts::new().reuse_port(true).backlog(4096);
        let listener = match TcpListener::bind_with_config(addr, &opts) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(listener.local_addr());
        loop {
            let sock = match listener.accept().await {
                Ok((sock, _)) => sock,
                Err(e) if out_of_files(&e) => {
                    // Until connections close: no spinning meanwhile.
                    monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
                Err(e) if is_transient(&e) => continue,
                Err(e) => {
                    eprintln!("ringgate-grpc-echo: accept: {e}");
                    return;
                }
            };
            let _ = sock.set_nodelay(true);
            monoio::spawn(connection(sock));
        }
    });
}

/// A failed accept that concerns only the connection it would have been.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// EMFILE or ENFILE: no descriptor for the connection now.
fn out_of_files(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// One connection: its streams, each answered in a task of its own, until the client goes.
async fn connection(sock: TcpStream) {
    let Ok(io) = sock.into_poll_io() else {
        return;
    };
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_STREAMS)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(8 << 20);
    let Ok(mut conn) = builder.handshake::<_, Bytes>(io).await else {
        return;
    };
    // accept() also drives the connection: the streams' tasks only queue frames.
    while let Some(Ok((req, respond))) = conn.accept().await {
        monoio::spawn(call(req, respond));
    }
}

/// One call: read the request to its end, answer it.
async fn call(req: Request<RecvStream>, mut respond: SendResponse<Bytes>) {
    let (parts, mut body) = req.into_parts();
    if parts.method != Method::POST {
        let resp = Response::builder().status(405).body(()).unwrap_or_default();
        let _ = respond.send_response(resp, true);
        return;
    }
    // The body: one DATA frame's bytes as they are (no copy), more frames gathered.
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    let mut size = 0usize;
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else {
            return;
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        size += chunk.len();
        if size > grpc::MAX_MESSAGE + grpc::PREFIX {
            trailers_only(&mut respond, "8", "request over 4 MiB");
            return;
        }
        match (&first, &mut more) {
            (None, _) => first = Some(chunk),
            (Some(f), None) => {
                let mut b = BytesMut::with_capacity(f.len() + chunk.len());
                b.extend_from_slice(f);
                b.extend_from_slice(&chunk);
                more = Some(b);
            }
            (Some(_), Some(b)) => b.extend_from_slice(&chunk),
        }
    }
    let echo = match more {
        Some(b) => b.freeze(),
        None => first.unwrap_or_default(),
    };
    if let Err(e) = grpc::messages(&echo) {
        trailers_only(&mut respond, "13", &e);
        return;
    }
    let Ok(head) = Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
    else {
        return;
    };
    let Ok(mut send) = respond.send_response(head, false) else {
        return;
    };
    if !echo.is_empty() && send.send_data(echo, false).is_err() {
        return;
    }
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", HeaderValue::from_static(grpc::OK));
    let _ = send.send_trailers(trailers);
}

/// A trailers-only answer: `:status 200`, the content type and `grpc-status` in one HEADERS
/// frame that ends the stream.
fn trailers_only(respond: &mut SendResponse<Bytes>, status: &'static str, msg: &str) {
    let mut b = Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .header("grpc-status", status);
    if let Ok(m) = HeaderValue::from_str(&msg.replace(|c: char| !c.is_ascii_graphic(), " ")) {
        b = b.header("grpc-message", m);
    }
    if let Ok(resp) = b.body(()) {
        let _ = respond.send_response(resp, true);
    }
}
