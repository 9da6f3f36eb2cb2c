//! What the fetches did, for `/metrics`: outcomes by kind, each source's last good material
//! (fetched when, thisUpdate, nextUpdate) and the OCSP responders' latency. Written by the
//! fetcher and OCSP threads, read by the admin thread at scrape; no worker touches it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The latest state of one source (a CRL URL, or a certificate's staple).
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// `crl` or `staple`.
    pub kind: &'static str,
    /// Where it is fetched from.
    pub url: String,
    /// The last good material's fetch time, thisUpdate and nextUpdate, Unix seconds.
    pub fetched: Option<i64>,
    /// thisUpdate of the material in force.
    pub this_update: Option<i64>,
    /// nextUpdate of the material in force.
    pub next_update: Option<i64>,
}

/// Latency buckets of OCSP responders, seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Stats {
    outcomes: BTreeMap<(&'static str, &'static str), u64>,
    sources: BTreeMap<String, Source>,
    latency_counts: [u64; BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
}

fn stats() -> &'static Mutex<Stats> {
    static STATS: OnceLock<Mutex<Stats>> = OnceLock::new();
    STATS.get_or_init(Default::default)
}

/// Counts one fetch of `kind` (`crl`, `staple`, `ocsp`) by `outcome` (`ok`, `unchanged`,
/// or why it failed).
pub fn outcome(kind: &'static str, outcome: &'static str) {
    if let Ok(mut s) = stats().lock() {
        *s.outcomes.entry((kind, outcome)).or_default() += 1;
    }
}

/// How many fetches of `kind` ended with `outcome` so far.
pub fn count(kind: &'static str, outcome: &'static str) -> u64 {
    stats()
        .lock()
        .map(|s| s.outcomes.get(&(kind, outcome)).copied().unwrap_or(0))
        .unwrap_or(0)
}

/// Records the material now in force for the source `key`.
pub fn source(key: &str, src: Source) {
    if let Ok(mut s) = stats().lock() {
        s.sources.insert(key.to_string(), src);
    }
}

/// Records how long an OCSP responder took to answer.
pub fn responder_latency(took: Duration) {
    if let Ok(mut s) = stats().lock() {
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.latency_counts[i] += 1;
            }
        }
        s.latency_count += 1;
        s.latency_sum += secs;
    }
}

/// How a gauge's value is read off a source at scrape time `now`.
type Gauge = fn(&Source, i64) -> Option<i64>;

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Appends the fetch families in Prometheus text format; `now` is Unix seconds.
pub fn exposition(out: &mut String, now: i64) {
    let Ok(s) = stats().lock() else {
        return;
    };
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        out,
        "ringgate_revocation_fetches_total",
        "counter",
        "Fetches of revocation material by kind (crl, staple, ocsp) and outcome (ok, unchanged, or why it failed).",
    );
    for ((kind, outcome), n) in &s.outcomes {
        let _ = writeln!(
            out,
            "ringgate_revocation_fetches_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
        );
    }
    let gauges: [(&str, &str, Gauge); 3] = [
        (
            "ringgate_revocation_age_seconds",
            "Seconds since the thisUpdate of the CRL or staple in force, by kind and URL.",
            |x, now| x.this_update.map(|t| now - t),
        ),
        (
            "ringgate_revocation_next_update_timestamp_seconds",
            "nextUpdate of the CRL or staple in force, by kind and URL.",
            |x, _| x.next_update,
        ),
        (
            "ringgate_revocation_fetched_timestamp_seconds",
            "When the CRL or staple in force was fetched, by kind and URL.",
            |x, _| x.fetched,
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        for src in s.sources.values() {
            if let Some(v) = value(src, now) {
                let _ = writeln!(
                    out,
                    "{name}{{kind=\"{}\",url=\"{}\"}} {v}",
                    src.kind,
                    label(&src.url)
                );
            }
        }
    }
    let name = "ringgate_ocsp_responder_seconds";
    family(
        out,
        name,
        "histogram",
        "How long OCSP responders took to answer client-certificate queries.",
    );
    for (b, n) in BUCKETS.iter().zip(s.latency_counts) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", s.latency_count);
    let _ = writeln!(out, "{name}_sum {}", s.latency_sum);
    let _ = writeln!(out, "{name}_count {}", s.latency_count);
}
