//! Graceful shutdown.

use std::time::{Duration, Instant};

use crate::support::client;
use crate::support::pki::Pki;
use crate::support::upstream::{Mode, Upstream};
use crate::support::{client_for, Cfg};

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Delay(Duration::from_millis(1500)));
    let mut proxy = Cfg::new(&pki, &up).start();
    let addr = proxy.addr();
    let cfg = client_for(&pki, Some(&pki.client));
    let cfg2 = cfg.clone();
    let slow = std::thread::spawn(move || client::try_get(addr, &cfg2, "/slow"));
    // Wait until the request is at the upstream.
    let t = Instant::now();
    while up.seen().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "request never reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let stopped_at = Instant::now();
    proxy.sigterm();
    std::thread::sleep(Duration::from_millis(300));
    // New connections are refused (or closed without service) once draining.
    if let Ok(r) = client::try_get(addr, &cfg, "/new") {
        panic!("a new connection was served during shutdown: {}", r.head);
    }
    let r = slow
        .join()
        .expect("thread")
        .expect("in-flight request completes");
    assert_eq!(r.status, 200);
    let status = proxy
        .wait_exit(Duration::from_secs(6))
        .expect("ringgate exits within the shutdown timeout");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        proxy.log()
    );
    assert!(stopped_at.elapsed() < Duration::from_secs(6));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the port still accepts after exit"
    );
    assert_eq!(
        up.seen().len(),
        1,
        "only the in-flight request reached the upstream"
    );
}

/// `runtime.error_log` (nginx `error_log`): log lines go to the file, stdout keeps the
/// readiness line.
#[test]
fn error_log_goes_to_the_configured_file() {
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let file = pki.path().join("error.log");
    let proxy = Cfg::new(&pki, &up)
        .runtime(&format!("error_log = {}", crate::support::pki::p(&file)))
        .start();
    let r = client::get(proxy.addr(), &client_for(&pki, Some(&pki.client)), "/x");
    assert_eq!(r.status, 200);
    let _ = client::try_get(proxy.addr(), &client_for(&pki, None), "/x");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("worker 0 started") && text.contains("refused") {
            break;
        }
        assert!(Instant::now() < deadline, "error log holds:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!proxy.log().contains("worker 0 started"), "{}", proxy.log());
}
