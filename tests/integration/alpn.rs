//! ALPN, as nginx answers it: a client that offers h2 gets HTTP/2 whatever its order (python
//! httpx lists http/1.1 first and expects h2), one that does not gets HTTP/1.1; a listener with
//! `http2 = false` offers HTTP/1.x only, as nginx without http2.

use std::sync::Arc;

use crate::support::client::{self, ClientOpts};
use crate::support::pki::Pki;
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};
use crate::support::Cfg;

/// The protocol the listener at `addr` picks for a client offering `offer`, in that order.
fn negotiated(addr: std::net::SocketAddr, pki: &Pki, offer: &[&str]) -> Option<String> {
    let base = client::config(&ClientOpts {
        ca: Some(&pki.ca.pem_path),
        cert: Some((&pki.client.cert, &pki.client.key)),
        version: None,
        resumption: None,
    });
    let mut cfg = (*base).clone();
    cfg.alpn_protocols = offer.iter().map(|p| p.as_bytes().to_vec()).collect();
    let conn = client::connect(addr, "localhost", &Arc::new(cfg)).expect("handshake");
    conn.tls
        .conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

#[test]
fn a_client_offering_h2_gets_it_in_any_order() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let proxy = Cfg::new(&pki, &up).start();
    let addr = proxy.addr();
    assert_eq!(
        negotiated(addr, &pki, &["h2", "http/1.1"]).as_deref(),
        Some("h2")
    );
    assert_eq!(
        negotiated(addr, &pki, &["http/1.1", "h2"]).as_deref(),
        Some("h2")
    );
    assert_eq!(negotiated(addr, &pki, &["h2"]).as_deref(), Some("h2"));
    assert_eq!(
        negotiated(addr, &pki, &["http/1.1"]).as_deref(),
        Some("http/1.1")
    );
    assert_eq!(negotiated(addr, &pki, &[]), None);
}

#[test]
fn without_http2_a_listener_offers_http1_only() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let toml = Cfg::new(&pki, &up).render().replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\nhttp2 = false",
    );
    let proxy = Proxy::start(&toml);
    let addr = proxy.addr();
    assert_eq!(
        negotiated(addr, &pki, &["h2", "http/1.1"]).as_deref(),
        Some("http/1.1")
    );
}
