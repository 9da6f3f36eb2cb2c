//! ringgate-load: HTTP/1.1 load generator with TLS client certificates.

mod args;
mod http;
mod rate;
mod tls;
mod worker;

use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

use crate::args::{Args, Mode};
use crate::worker::{Shared, Stats};

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
        eprintln!(
            "ringgate-load: {} mode={:?} connections={} pipeline={} for {what}{rate}",
            args.url, plan.mode, plan.connections, plan.pipeline
        );
    }

    if let Some(t) = args.threads {
        if t != plan.connections && !args.quiet {
            eprintln!(
                "ringgate-load: note: --threads {t} ignored; one thread per connection ({})",
                plan.connections
            );
        }
    }

    let shared = Shared::new(&plan);
    let mut total = Stats::new();
    let elapsed = thread::scope(|s| -> Result<Duration> {
        let mut handles = Vec::with_capacity(plan.connections);
        let mut spawn_error = None;
        for i in 0..plan.connections {
            let (plan, tls, shared) = (&plan, tls.as_ref(), &shared);
            match thread::Builder::new()
                .name(format!("conn-{i}"))
                .stack_size(512 * 1024)
                .spawn_scoped(s, move || worker::run(i, plan, tls, shared))
            {
                Ok(h) => handles.push(h),
                Err(e) => {
                    spawn_error = Some(e);
                    break;
                }
            }
        }
        // Time zero once every worker has its first connection (keep-alive mode).
        let t_connect = Instant::now();
        while shared.connected.load(Ordering::Relaxed) < handles.len() as u64 {
            thread::sleep(Duration::from_millis(1));
        }
        if plan.mode == Mode::Keepalive && !args.quiet {
            eprintln!(
                "ringgate-load: {} connections opened in {:.1} ms",
                handles.len(),
                t_connect.elapsed().as_secs_f64() * 1e3
            );
        }
        let start = Instant::now();
        let _ = shared.start.set(start);
        if let Some(e) = spawn_error {
            shared.stop.store(true, Ordering::Relaxed);
            for h in handles {
                let _ = h.join();
            }
            return Err(e).context("cannot spawn a connection thread");
        }
        progress(&shared, plan.connections as u64, start, args.quiet);
        let elapsed = start.elapsed();
        for h in handles {
            match h.join() {
                Ok(st) => total.merge(&st),
                Err(_) => anyhow::bail!("a connection thread panicked"),
            }
        }
        Ok(elapsed)
    })?;
    report(args, &plan, &total, elapsed);
    Ok(())
}

/// Prints a progress line every second until every worker has finished.
fn progress(sh: &Shared, workers: u64, start: Instant, quiet: bool) {
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut tick = 1u64;
    loop {
        let next = start + Duration::from_secs(tick);
        while Instant::now() < next {
            if sh.finished.load(Ordering::Relaxed) >= workers {
                return;
            }
            thread::sleep(Duration::from_millis(20).min(next - Instant::now()));
        }
        let now = (
            sh.requests.load(Ordering::Relaxed),
            sh.errors.load(Ordering::Relaxed),
            sh.hs_full.load(Ordering::Relaxed),
            sh.hs_resumed.load(Ordering::Relaxed),
        );
        if !quiet {
            eprintln!(
                "[{tick}s] {} req/s, {} errors, handshakes/s full {} resumed {}",
                now.0 - last.0,
                now.1 - last.1,
                now.2 - last.2,
                now.3 - last.3
            );
        }
        last = now;
        tick += 1;
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
            "mode": match plan.mode { Mode::Keepalive => "keepalive", Mode::Handshake => "handshake" },
            "connections": plan.connections,
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
        });
        println!("{v}");
    } else {
        println!("ringgate-load {} ({:?})", args.url, plan.mode);
        println!("  duration      {secs:.2} s");
        println!("  requests      {} ({rps:.1} req/s)", t.requests);
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
