//! ringgate-load: HTTP/1.1 and HTTP/2 load generator with TLS client certificates.

mod args;
mod grpc;
// The echo upstream, for the tests of --mode grpc (ringgate-grpc-echo serves it).
#[cfg(test)]
mod grpc_server;
mod h2io;
mod http;
mod http2;
mod rate;
mod recv;
mod tls;
mod worker;
mod ws;

use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

use crate::args::{Args, Mode};
use crate::worker::{Shared, Stats, Totals};

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("ringgate-load: error: {e:#}");
        std::process::exit(2);
    }
}

fn run(args: &Args) -> Result<()> {
    let plan = args.plan()?;
    let tls = if plan.target.tls {
        Some(tls::build(args, &plan.target.host)?)
    } else {
        None
    };
    if !args.quiet {
        let what = match (plan.duration, plan.requests) {
            (Some(d), Some(n)) => format!("{:.1}s or {n} requests", d.as_secs_f64()),
            (Some(d), None) => format!("{:.1}s", d.as_secs_f64()),
            (None, Some(n)) => format!("{n} requests"),
            (None, None) => String::new(),
        };
        let rate = plan
            .rate
            .map(|r| format!(", open loop at {r} req/s"))
            .unwrap_or_default();
        let per_conn = match &plan.h2 {
            Some(h2) => format!("streams={}", h2.streams),
            None => format!("pipeline={}", plan.pipeline),
        };
        eprintln!(
            "ringgate-load: {} mode={} connections={} threads={} {per_conn} for {what}{rate}",
            args.url,
            mode_name(&plan),
            plan.connections,
            plan.threads,
        );
    }

    raise_fd_limit(plan.connections, args.quiet);
    let (total, elapsed) = drive(&plan, tls.as_ref(), args.quiet)?;
    report(args, &plan, &total, elapsed);
    Ok(())
}

/// Raises the soft limit on open files to the hard limit when the connections need more.
fn raise_fd_limit(connections: usize, quiet: bool) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let want = connections as u64 + 64;
    let lim = getrlimit(Resource::Nofile);
    let Some(cur) = lim.current else { return };
    if cur >= want {
        return;
    }
    let new = lim.maximum.map_or(want, |m| m.min(want.max(cur)));
    let _ = setrlimit(
        Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(new),
            maximum: lim.maximum,
        },
    );
    if new < want && !quiet {
        eprintln!(
            "ringgate-load: warning: {connections} connections need about {want} file descriptors; \
             the limit is {new} (raise it with ulimit -n)"
        );
    }
}

/// Runs the plan on `plan.threads` event-loop threads; returns the merged results and the
/// time from time zero to the end of the last thread.
pub(crate) fn drive(
    plan: &args::Plan,
    tls: Option<&tls::Tls>,
    quiet: bool,
) -> Result<(Stats, Duration)> {
    let shared = Shared::new(plan);
    let mut total = Stats::new();
    let threads = plan.threads.max(1);
    let elapsed = thread::scope(|s| -> Result<Duration> {
        let mut handles = Vec::with_capacity(threads);
        let mut spawn_error = None;
        for tid in 0..threads {
            let indexes: Vec<usize> = (tid..plan.connections).step_by(threads).collect();
            let shared = &shared;
            match thread::Builder::new()
                .name(format!("load-{tid}"))
                .spawn_scoped(s, move || {
                    if plan.h2.is_some() {
                        http2::run(tid, &indexes, plan, tls, shared)
                    } else {
                        worker::run(tid, &indexes, plan, tls, shared)
                    }
                }) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    spawn_error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = spawn_error {
            shared.stop.store(true, Ordering::Relaxed);
            let _ = shared.start.set(Instant::now());
            for h in handles {
                let _ = h.join();
            }
            return Err(e).context("cannot spawn a load thread");
        }
        // Time zero once every connection is open (keep-alive and idle modes).
        let t_connect = Instant::now();
        while shared.connected.load(Ordering::Relaxed) < plan.connections as u64 {
            thread::sleep(Duration::from_millis(1));
        }
        let opened = shared.totals();
        if plan.idle {
            // Printed even with -q: scripts wait for this line before measuring.
            eprintln!(
                "ringgate-load: idle: {} of {} connections open ({} errors) in {:.1} ms; holding",
                opened.open,
                plan.connections,
                opened.errors,
                t_connect.elapsed().as_secs_f64() * 1e3
            );
        } else if matches!(
            plan.mode,
            Mode::Keepalive | Mode::Websocket | Mode::H2 | Mode::Grpc
        ) && !quiet
        {
            eprintln!(
                "ringgate-load: {} connections opened in {:.1} ms ({} errors)",
                plan.connections,
                t_connect.elapsed().as_secs_f64() * 1e3,
                opened.errors
            );
        }
        let start = Instant::now();
        let _ = shared.start.set(start);
        let unit = if plan.ws.is_some() { "msg/s" } else { "req/s" };
        progress(&shared, threads as u64, start, quiet, plan.idle, unit);
        let elapsed = start.elapsed();
        for h in handles {
            match h.join() {
                Ok(st) => total.merge(&st),
                Err(_) => anyhow::bail!("a load thread panicked"),
            }
        }
        Ok(elapsed)
    })?;
    Ok((total, elapsed))
}

/// Prints a progress line every second until every thread has finished.
fn progress(sh: &Shared, threads: u64, start: Instant, quiet: bool, idle: bool, unit: &str) {
    let mut last = Totals::default();
    let mut tick = 1u64;
    loop {
        let next = start + Duration::from_secs(tick);
        while Instant::now() < next {
            if sh.finished.load(Ordering::Relaxed) >= threads {
                return;
            }
            thread::sleep(Duration::from_millis(10).min(next - Instant::now()));
        }
        let now = sh.totals();
        if !quiet {
            if idle {
                eprintln!(
                    "[{tick}s] {} connections open, {} errors",
                    now.open, now.errors
                );
            } else {
                eprintln!(
                    "[{tick}s] {} {unit}, {} errors, handshakes/s full {} resumed {}",
                    now.requests - last.requests,
                    now.errors - last.errors,
                    now.hs_full - last.hs_full,
                    now.hs_resumed - last.hs_resumed
                );
            }
        }
        last = now;
        tick += 1;
    }
}

fn mode_name(plan: &args::Plan) -> &'static str {
    match plan.mode {
        _ if plan.idle => "idle",
        Mode::Keepalive => "keepalive",
        Mode::Handshake => "handshake",
        Mode::Websocket => "websocket",
        Mode::H2 => "h2",
        Mode::Grpc => "grpc",
    }
}

fn report(args: &Args, plan: &args::Plan, t: &Stats, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rps = t.requests as f64 / secs;
    let h = &t.hist;
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    let (p50, p90, p99, p999, max) = (q(0.5), q(0.9), q(0.99), q(0.999), h.max());
    let errors_total: u64 = t.errors.values().sum();
    if args.json {
        let statuses: serde_json::Map<String, serde_json::Value> = t
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let errors: serde_json::Map<String, serde_json::Value> = t
            .errors
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let v = json!({
            "url": args.url,
            "mode": mode_name(plan),
            "connections": plan.connections,
            "threads": plan.threads,
            "pipeline": plan.pipeline,
            "rate": plan.rate,
            "requests": t.requests,
            "duration_s": secs,
            "rps": rps,
            "latency_us": {
                "p50": p50, "p90": p90, "p99": p99, "p999": p999, "max": max,
                "mean": if h.is_empty() { 0.0 } else { h.mean() },
            },
            "handshakes": {
                "full": t.hs_full,
                "resumed": t.hs_resumed,
                "full_per_s": t.hs_full as f64 / secs,
                "resumed_per_s": t.hs_resumed as f64 / secs,
            },
            "statuses": statuses,
            "errors": errors,
            "errors_total": errors_total,
            "body_bytes": t.body_bytes,
            // Websocket mode: `requests` and `rps` count echoed messages.
            "websocket": match &plan.ws {
                Some(ws) => json!({
                    "upgrades": t.ws_upgrades,
                    "message_size": ws.message_size,
                    "messages": t.requests,
                    "messages_per_s": rps,
                }),
                None => serde_json::Value::Null,
            },
            // h2 mode: streams per connection, connections opened, GOAWAYs received, and
            // requests sent again because the server did not process them.
            "h2": match &plan.h2 {
                Some(h2) => json!({
                    "streams": h2.streams,
                    "connections": t.h2_connections,
                    "goaways": t.h2_goaways,
                    "goaway_reasons": t.h2_goaway_reasons,
                    "retried": t.h2_retried,
                }),
                None => serde_json::Value::Null,
            },
            // grpc mode: `requests` counts the calls answered 200 with the message echoed and
            // grpc-status 0; every response by its grpc-status ("none": without one).
            "grpc": match &plan.h2 {
                Some(h2) if h2.grpc => json!({
                    "message_size": h2.body.len().saturating_sub(grpc::PREFIX),
                    "ok": t.requests,
                    "grpc_statuses": t.grpc_statuses,
                }),
                _ => serde_json::Value::Null,
            },
            "idle": if plan.idle {
                json!({
                    "target": plan.connections,
                    "established": t.idle_established,
                    "open_at_end": t.idle_open_at_end,
                    "with_request": plan.idle_request,
                })
            } else {
                serde_json::Value::Null
            },
        });
        println!("{v}");
    } else {
        println!("ringgate-load {} ({})", args.url, mode_name(plan));
        println!("  duration      {secs:.2} s");
        if plan.idle {
            println!(
                "  idle          {} of {} connections established, {} open at the end",
                t.idle_established, plan.connections, t.idle_open_at_end
            );
        }
        match &plan.ws {
            Some(ws) => println!(
                "  messages      {} ({rps:.1} msg/s, {} B each, echoed; {} connections upgraded)",
                t.requests, ws.message_size, t.ws_upgrades
            ),
            None => println!("  requests      {} ({rps:.1} req/s)", t.requests),
        }
        if let Some(h2) = &plan.h2 {
            let reasons: Vec<String> = t
                .h2_goaway_reasons
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let reasons = if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            };
            println!(
                "  h2            {} streams per connection; {} connections opened, {} GOAWAYs{reasons}, {} requests retried",
                h2.streams, t.h2_connections, t.h2_goaways, t.h2_retried
            );
            if h2.grpc {
                let by: Vec<String> = t
                    .grpc_statuses
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                println!(
                    "  grpc          {} B messages echoed; {} calls ok; grpc-status {}",
                    h2.body.len().saturating_sub(grpc::PREFIX),
                    t.requests,
                    if by.is_empty() {
                        "-".to_string()
                    } else {
                        by.join("  ")
                    }
                );
            }
        }
        println!(
            "  latency (us)  p50 {p50}  p90 {p90}  p99 {p99}  p99.9 {p999}  max {max}  mean {:.0}",
            if h.is_empty() { 0.0 } else { h.mean() }
        );
        println!(
            "  handshakes    full {} ({:.1}/s)  resumed {} ({:.1}/s)",
            t.hs_full,
            t.hs_full as f64 / secs,
            t.hs_resumed,
            t.hs_resumed as f64 / secs
        );
        let statuses: Vec<String> = t
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!("  statuses      {}", statuses.join("  "));
        if errors_total == 0 {
            println!("  errors        none");
        } else {
            let errs: Vec<String> = t
                .errors
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            println!("  errors        {}", errs.join("  "));
        }
    }
    if errors_total > 0 && !args.quiet {
        for s in &t.samples {
            eprintln!("ringgate-load: sample error: {s}");
        }
    }
}

#[cfg(test)]
mod tests;
