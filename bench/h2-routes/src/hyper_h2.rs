// Included by the two binaries that drive hyperium `h2` 0.4 (the frame layer ringgate uses):
// `h2-poll` (poll-io socket) and `h2-compat` (completion socket behind a copying adapter).

use h2_routes::*;
use tokio::io::{AsyncRead, AsyncWrite};

/// hyperium h2's server builder with ringgate's limits: the rapid-reset limit
/// (`max_pending_accept_reset_streams`), the limit on stream errors a client may provoke
/// (`max_local_error_reset_streams`), and the header list size that also bounds CONTINUATION
/// frames (h2 >= 0.4.4).
fn builder() -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buffer_size(SEND_BUFFER)
        .max_pending_accept_reset_streams(PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(LOCAL_ERROR_RESETS));
    b
}

/// Serves one connection: every request gets `200` and [`BODY`]. With `H2_ROUTES_STREAMS=1`,
/// shaped like ringgate's driver instead (src/edge/http2.rs: a select between `accept` and a
/// `FuturesUnordered` of stream futures in the connection's task), to check that the shape
/// does not change the write pattern.
async fn serve<T: AsyncRead + AsyncWrite + Unpin>(io: T) -> Result<(), h2::Error> {
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
        // A stream the client has reset meanwhile refuses the response: not the connection's
        // error.
        if let Ok(mut send) = respond.send_response(response, false) {
            let _ = send.send_data(Bytes::from_static(BODY), true);
        }
    }
    Ok(())
}

async fn serve_streams<T: AsyncRead + AsyncWrite + Unpin>(io: T) -> Result<(), h2::Error> {
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
