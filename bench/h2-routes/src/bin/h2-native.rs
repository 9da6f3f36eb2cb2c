//! Route 2: monoio-http's h2 (a fork of hyperium h2 0.3.16 rewritten over monoio's
//! completion-based `AsyncReadRent`/`AsyncWriteRent`), TLS by monoio-rustls 0.4 (rustls 0.23).
//!
//! The fork has no `max_pending_accept_reset_streams`, no `max_local_error_reset_streams` and
//! no CONTINUATION frame count: the builder below sets what it has.

use h2_routes::*;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpListener;
use monoio_http::h2;

fn builder() -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buffer_size(SEND_BUFFER);
    b
}

/// Serves one connection: every request gets `200` and [`BODY`], inline; with
/// `H2_ROUTES_STREAMS=1` shaped like ringgate's driver (see src/hyper_h2.rs).
async fn serve<T>(io: T) -> Result<(), h2::Error>
where
    T: AsyncReadRent + AsyncWriteRent + Unpin + 'static,
{
    if std::env::var_os("H2_ROUTES_STREAMS").is_some() {
        return serve_streams(io).await;
    }
    let mut conn = builder().handshake::<_, Bytes>(io).await?;
    while let Some(next) = conn.accept().await {
        let (_request, mut respond) = next?;
        let response = http::Response::builder()
            .status(200)
            .header("content-length", BODY.len())
            .body(())
            .expect("response");
        if let Ok(mut send) = respond.send_response(response, false) {
            let _ = send.send_data(Bytes::from_static(BODY), true);
        }
    }
    Ok(())
}

async fn serve_streams<T>(io: T) -> Result<(), h2::Error>
where
    T: AsyncReadRent + AsyncWriteRent + Unpin + 'static,
{
    use futures_util::stream::{FuturesUnordered, StreamExt};
    use std::pin::Pin;
    type Streams = FuturesUnordered<Pin<Box<dyn std::future::Future<Output = ()>>>>;
    let mut conn = builder().handshake::<_, Bytes>(io).await?;
    let mut streams: Streams = FuturesUnordered::new();
    loop {
        monoio::select! {
            next = conn.accept() => match next {
                Some(Ok((_request, mut respond))) => streams.push(Box::pin(async move {
                    let response = http::Response::builder()
                        .status(200)
                        .header("content-length", BODY.len())
                        .body(())
                        .expect("response");
                    if let Ok(mut send) = respond.send_response(response, false) {
                        let _ = send.send_data(Bytes::from_static(BODY), true);
                    }
                })),
                Some(Err(e)) => return Err(e),
                None => break,
            },
            Some(()) = streams.next(), if !streams.is_empty() => {}
        }
    }
    while streams.next().await.is_some() {}
    Ok(())
}

fn log_end(r: Result<(), h2::Error>) {
    if let Err(e) = r {
        if std::env::var_os("H2_ROUTES_LOG").is_some() {
            eprintln!("connection: {e}");
        }
    }
}

fn main() {
    let args = Args::parse();
    run(|| async move {
        let listener = TcpListener::bind(args.addr).expect("bind");
        announce("h2-native", &args);
        let tls = args
            .tls
            .then(|| monoio_rustls::TlsAcceptor::from(tls_config()));
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let tls = tls.clone();
            monoio::spawn(async move {
                match tls {
                    None => log_end(serve(tcp).await),
                    Some(acceptor) => {
                        if let Ok(io) = acceptor.accept(tcp).await {
                            log_end(serve(io).await)
                        }
                    }
                }
            });
        }
    });
}
