//! Route 1 (ringgate today): hyperium `h2` 0.4 over monoio's poll-io socket
//! (`TcpStream::into_poll_io()`, readiness through the io_uring driver), TLS by tokio-rustls on
//! that socket.

include!("../hyper_h2.rs");

use monoio::io::IntoPollIo;
use monoio::net::TcpListener;

fn main() {
    let args = Args::parse();
    run(|| async move {
        let listener = TcpListener::bind(args.addr).expect("bind");
        announce("h2-poll", &args);
        let tls = args
            .tls
            .then(|| tokio_rustls::TlsAcceptor::from(tls_config()));
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let tls = tls.clone();
            monoio::spawn(async move {
                let Ok(io) = tcp.into_poll_io() else { return };
                match tls {
                    None => log_end(serve(io).await),
                    Some(acceptor) => {
                        if let Ok(io) = acceptor.accept(io).await {
                            log_end(serve(io).await)
                        }
                    }
                }
            });
        }
    });
}
