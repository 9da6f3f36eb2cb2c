//! ringgate-grpc-echo: a gRPC unary echo for the `grpc-*` benchmarks (bench/run.sh), the
//! upstream behind `grpc_pass grpc://...` (nginx) and `proxy_pass = "grpc://..."` (ringgate).
//!
//!     ringgate-grpc-echo 127.0.0.1:0              # prints the port it listens on, serves until killed
//!     ringgate-grpc-echo 127.0.0.1:50051 --threads 4
//!
//! HTTP/2 in cleartext with prior knowledge. Every POST whose body is whole gRPC messages is
//! answered with `:status 200`, `content-type: application/grpc`, the body echoed in one DATA
//! frame, and trailers `grpc-status: 0` (see `grpc_server.rs`). One thread per CPU this process
//! may run on (its affinity: `taskset -c 1` gives one), each pinned to its CPU with a listener
//! of its own on the port (SO_REUSEPORT) and a monoio runtime (io_uring, or epoll where the
//! kernel has no io_uring); `--threads N` for another count.

#[allow(dead_code)]
mod grpc;
mod grpc_server;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;

fn main() {
    let mut addr = "127.0.0.1:0".to_string();
    let mut threads: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" | "-t" => {
                threads = args.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0);
                if threads.is_none() {
                    usage("--threads takes a number above 0");
                }
            }
            "-h" | "--help" => {
                println!("usage: ringgate-grpc-echo [ADDR (127.0.0.1:0)] [--threads N]");
                return;
            }
            _ if a.starts_with('-') => usage(&format!("unknown option {a}")),
            _ => addr = a,
        }
    }
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => usage(&format!("{addr}: {e}")),
    };
    // The CPUs this process may run on (taskset), one thread on each unless told otherwise.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let n = threads.unwrap_or(cores.len().max(1));
    let mut bound = addr;
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = mpsc::channel();
        let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
        let at = bound;
        let h = thread::Builder::new()
            .name(format!("grpc-echo-{i}"))
            .spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                grpc_server::run(at, tx);
            });
        let h = match h {
            Ok(h) => h,
            Err(e) => fail(&format!("cannot start a thread: {e}")),
        };
        match rx.recv() {
            Ok(Ok(a)) => bound = a,
            Ok(Err(e)) => fail(&format!("{at}: {e}")),
            Err(_) => fail("a server thread ended at startup"),
        }
        handles.push(h);
    }
    println!("{}", bound.port());
    eprintln!(
        "ringgate-grpc-echo: {bound}, {n} thread{}",
        if n == 1 { "" } else { "s" }
    );
    for h in handles {
        let _ = h.join();
    }
    // Threads end only when their listener fails.
    std::process::exit(1);
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "ringgate-grpc-echo: {msg}\nusage: ringgate-grpc-echo [ADDR (127.0.0.1:0)] [--threads N]"
    );
    std::process::exit(2);
}

fn fail(msg: &str) -> ! {
    eprintln!("ringgate-grpc-echo: {msg}");
    std::process::exit(2);
}
