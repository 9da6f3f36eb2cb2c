//! The fetcher thread: CRLs by URL and from distribution points, and OCSP responses to
//! staple, fetched in the background and kept current.
//!
//! Each source is fetched at start (before the workers start, so that the first handshakes
//! already see it), then again at half the time left to its nextUpdate and at least every
//! `crl_refresh` / `ocsp_refresh`. What is fetched is verified as a file would be (a CRL
//! against the CA that issued it, a staple as `ocsp = FILE` is checked); only then does it
//! replace the last good bytes in [`crate::fetch::store`], and the thread asks the main
//! thread for a reload, which builds the listeners' TLS from the store and hands it to the
//! workers by message. A failed fetch keeps the last good material (until it expires; then
//! `crl_expired` decides for a CRL, and a staple past its nextUpdate is no longer stapled).
//! One log line per fetch; outcomes counted in [`crate::fetch::stats`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;

use super::reload::Trigger;
use crate::config::Config;
use crate::fetch::{http, stats, store, MAX_BODY, TIMEOUT};
use crate::x509::trust::TrustStore;

/// One source to keep current.
struct Job {
    /// Its key in the store.
    key: String,
    url: String,
    kind: Kind,
    due: Instant,
}

enum Kind {
    Crl {
        trust: Arc<TrustStore>,
        refresh: Duration,
    },
    Staple {
        chain: Vec<CertificateDer<'static>>,
        refresh: Duration,
    },
}

/// The jobs `config` asks for, due now; one per source even when listeners share it.
fn jobs_of(config: &Config) -> Vec<Job> {
    let now = Instant::now();
    let mut jobs: Vec<Job> = Vec::new();
    for tls in config.servers.iter().filter_map(|s| s.tls.as_ref()) {
        let plan = &tls.fetch;
        if let Some(trust) = tls.client_auth().store() {
            for src in &plan.crls {
                jobs.push(Job {
                    key: store::crl_key(&src.url),
                    url: src.url.clone(),
                    kind: Kind::Crl {
                        trust: trust.clone(),
                        refresh: plan.crl_refresh,
                    },
                    due: now,
                });
            }
        }
        for src in &plan.staples {
            jobs.push(Job {
                key: src.key.clone(),
                url: src.url.clone(),
                kind: Kind::Staple {
                    chain: src.chain.clone(),
                    refresh: plan.ocsp_refresh,
                },
                due: now,
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    jobs.retain(|j| seen.insert(j.key.clone()));
    jobs
}

/// Fetches every source of `config` once, in parallel; true when anything new was stored
/// (the configuration should then be loaded again to use it).
pub fn prime(config: &Config) -> bool {
    let mut jobs = jobs_of(config);
    run_due(&mut jobs)
}

/// Runs the jobs that are due, each on its own thread (a slow server delays only its own
/// source), and schedules their next fetch; true when the store changed.
fn run_due(jobs: &mut [Job]) -> bool {
    let now = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter_mut()
            .filter(|j| j.due <= now)
            .map(|j| {
                s.spawn(move || {
                    let (changed, next) = run(j);
                    j.due = Instant::now() + next;
                    changed
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .fold(false, |a, b| a | b)
    })
}

/// The fetcher thread's side of the process: its new configurations come by `configs`, its
/// reload requests go to `triggers`.
pub fn start(
    config: &Config,
    configs: Receiver<Arc<Config>>,
    triggers: Sender<Trigger>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let mut jobs = jobs_of(config);
    let (discovered_tx, discovered) = std::sync::mpsc::channel();
    store::set_discovery(discovered_tx);
    // Primed before the workers started: next fetches as scheduled from now.
    for j in &mut jobs {
        j.due = Instant::now() + first_refresh(j);
    }
    std::thread::Builder::new()
        .name("ringgate-fetch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let next = jobs.iter().map(|j| j.due).min();
                let wait = next
                    .map_or(Duration::from_secs(1), |d| {
                        d.saturating_duration_since(Instant::now())
                    })
                    .min(Duration::from_secs(1));
                match configs.recv_timeout(wait) {
                    Ok(new) => jobs = merge(jobs, jobs_of(&new)),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if run_due(&mut jobs) {
                    let _ = triggers.send(Trigger::Fetched);
                }
                // A new distribution point becomes a source of the next configuration.
                let new = discovered.try_iter().filter(|u| store::add_discovered(u)).count();
                if new > 0 {
                    log::info!("{new} CRL distribution point(s) named by intermediates clients presented: fetching them");
                    let _ = triggers.send(Trigger::Discovered);
                }
            }
        })
}

/// The first refresh after priming, from what is in the store.
fn first_refresh(j: &Job) -> Duration {
    let now = crate::clock::unix_now();
    match &j.kind {
        Kind::Crl { trust, refresh } => {
            let next = store::get(&j.key)
                .and_then(|f| crate::x509::crl::parse_crls(&f.bytes, &j.url, trust).ok())
                .and_then(|c| c.iter().filter_map(|c| c.next_update).min());
            schedule(next, *refresh, now)
        }
        Kind::Staple { refresh, .. } => retry(*refresh),
    }
}

/// The jobs of a new configuration, keeping the schedule of the sources it shares with the
/// old one (a reload, including the one a fetch asked for, does not fetch again).
fn merge(old: Vec<Job>, mut new: Vec<Job>) -> Vec<Job> {
    for j in &mut new {
        if let Some(o) = old.iter().find(|o| o.key == j.key) {
            j.due = o.due;
        }
    }
    new
}

/// Half the time left to nextUpdate, at most `refresh`, at least the retry interval.
fn schedule(next_update: Option<i64>, refresh: Duration, now: i64) -> Duration {
    let half = next_update.map(|n| Duration::from_secs(u64::try_from((n - now) / 2).unwrap_or(0)));
    half.map_or(refresh, |h| h.min(refresh)).max(retry(refresh))
}

/// How soon a failed fetch is tried again.
fn retry(refresh: Duration) -> Duration {
    refresh.min(Duration::from_secs(30))
}

/// One fetch of one job; returns whether the store changed and when to fetch next.
fn run(j: &Job) -> (bool, Duration) {
    match &j.kind {
        Kind::Crl { trust, refresh } => run_crl(j, trust, *refresh),
        Kind::Staple { chain, refresh } => run_staple(j, chain, *refresh),
    }
}

fn get(url: &str) -> Result<Vec<u8>, (&'static str, String)> {
    http::fetch(&http::Request {
        url,
        body: None,
        timeout: TIMEOUT,
        max_body: MAX_BODY,
    })
    .map_err(|e| (e.label(), e.to_string()))
}

/// A CRL: fetched, verified against its CA, not older than the one in force, stored.
fn run_crl(j: &Job, trust: &TrustStore, refresh: Duration) -> (bool, Duration) {
    let now = crate::clock::unix_now();
    let newest = |crls: &[crate::x509::crl::Crl]| crls.iter().map(|c| c.this_update).max();
    let in_force =
        store::get(&j.key).and_then(|f| crate::x509::crl::parse_crls(&f.bytes, &j.url, trust).ok());
    let fetched = get(&j.url).and_then(|bytes| {
        let crls = crate::x509::crl::parse_crls(&bytes, &j.url, trust)
            .map_err(|e| ("invalid", e.to_string()))?;
        match (newest(&crls), in_force.as_deref().and_then(newest)) {
            (Some(new), Some(old)) if new < old => Err((
                "older",
                format!(
                    "{}: its thisUpdate {} is older than the one in force ({})",
                    j.url,
                    crate::clock::iso8601(new),
                    crate::clock::iso8601(old)
                ),
            )),
            _ => Ok((bytes, crls)),
        }
    });
    match fetched {
        Ok((bytes, crls)) => {
            let changed = store::put(&j.key, bytes, now);
            let next_update = crls.iter().filter_map(|c| c.next_update).min();
            let next = schedule(next_update, refresh, now);
            stats::outcome("crl", if changed { "ok" } else { "unchanged" });
            let first = crls.first();
            record(
                "crl",
                j,
                now,
                first.map(|c| c.this_update),
                next_update,
                changed,
            );
            log::info!(
                "CRL {}: {} ({} revoked, issuer {}, thisUpdate {}, nextUpdate {}); next fetch in {}s",
                j.url,
                if changed { "fetched, in force" } else { "unchanged" },
                crls.iter().map(|c| c.revoked_count()).sum::<usize>(),
                first.map_or("-", |c| c.issuer.as_str()),
                first.map_or("-".into(), |c| crate::clock::iso8601(c.this_update)),
                next_update.map_or("none".into(), crate::clock::iso8601),
                next.as_secs()
            );
            (changed, next)
        }
        Err((label, why)) => {
            stats::outcome("crl", label);
            let kept = match in_force
                .as_deref()
                .and_then(|c| c.iter().filter_map(|c| c.next_update).min())
            {
                Some(n) if n >= now => format!(
                    "keeping the last good CRL (nextUpdate {})",
                    crate::clock::iso8601(n)
                ),
                Some(n) => format!(
                    "the last good CRL expired at {} (crl_expired decides)",
                    crate::clock::iso8601(n)
                ),
                None if in_force.is_some() => "keeping the last good CRL".into(),
                None => "no CRL from it is in force yet".into(),
            };
            let next = retry(refresh);
            log::warn!(
                "CRL {}: fetch failed: {why}; {kept}; retrying in {}s",
                j.url,
                next.as_secs()
            );
            (false, next)
        }
    }
}

/// Keeps the source's gauges: when fetched, thisUpdate, nextUpdate.
fn record(
    kind: &'static str,
    j: &Job,
    now: i64,
    this: Option<i64>,
    next: Option<i64>,
    changed: bool,
) {
    let fetched = if changed {
        Some(now)
    } else {
        store::get(&j.key).map(|f| f.at)
    };
    stats::source(
        &j.key,
        stats::Source {
            kind,
            url: j.url.clone(),
            fetched,
            this_update: this,
            next_update: next,
        },
    );
}

/// A staple: the request POSTed to the certificate's responder, the answer checked as an
/// `ocsp` file is (successful, good, for this certificate, current, signed by the issuer or
/// its delegated responder), stored.
fn run_staple(j: &Job, chain: &[CertificateDer<'static>], refresh: Duration) -> (bool, Duration) {
    let now = crate::clock::unix_now();
    let fetched = crate::fetch::staple(&j.url, chain, TIMEOUT);
    match fetched {
        Ok(staple) => {
            let changed = store::put(&j.key, staple.der, now);
            let next = schedule(staple.next_update, refresh, now);
            stats::outcome("staple", if changed { "ok" } else { "unchanged" });
            record(
                "staple",
                j,
                now,
                Some(staple.this_update),
                staple.next_update,
                changed,
            );
            log::info!(
                "OCSP staple {}: {} (good, thisUpdate {}, nextUpdate {}); next fetch in {}s",
                j.url,
                if changed {
                    "fetched, stapled"
                } else {
                    "unchanged"
                },
                crate::clock::iso8601(staple.this_update),
                staple
                    .next_update
                    .map_or("none".into(), crate::clock::iso8601),
                next.as_secs()
            );
            (changed, next)
        }
        Err((label, why)) => {
            stats::outcome("staple", label);
            let next = retry(refresh);
            let kept = if store::get(&j.key).is_some() {
                "keeping the last good response while it is current"
            } else {
                "no response is stapled yet"
            };
            log::warn!(
                "OCSP staple {}: fetch failed: {why}; {kept}; retrying in {}s",
                j.url,
                next.as_secs()
            );
            (false, next)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_at_half_the_time_left_bounded() {
        let h = Duration::from_secs(3600);
        assert_eq!(
            schedule(Some(1000 + 600), h, 1000),
            Duration::from_secs(300)
        );
        assert_eq!(schedule(Some(1000 + 86_400), h, 1000), h);
        assert_eq!(schedule(None, h, 1000), h);
        // Past nextUpdate: tried again at the retry interval, not in a loop.
        assert_eq!(schedule(Some(500), h, 1000), Duration::from_secs(30));
        assert_eq!(
            schedule(Some(500), Duration::from_secs(2), 1000),
            Duration::from_secs(2)
        );
    }
}
