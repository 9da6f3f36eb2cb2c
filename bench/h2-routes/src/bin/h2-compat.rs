//! Route 3: hyperium `h2` 0.4 over monoio's completion (io_uring recv/send) socket, through
//! `monoio_compat::StreamWrapper`, which owns a read and a write buffer and copies between them
//! and h2's (the adapter monoio-http itself uses for its hyper integration). TLS by tokio-rustls
//! on top of the wrapper.

include!("../hyper_h2.rs");

use monoio::net::TcpListener;
use monoio_compat::StreamWrapper;

/// The wrapper's buffers: one maximal frame each (its default is 8 KiB).
const WRAPPER_BUF: usize = 16 * 1024;

fn main() {
    let args = Args::parse();
    run(|| async move {
        let listener = TcpListener::bind(args.addr).expect("bind");
        announce("h2-compat", &args);
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
                let io = StreamWrapper::new_with_buffer_size(tcp, WRAPPER_BUF, WRAPPER_BUF);
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
