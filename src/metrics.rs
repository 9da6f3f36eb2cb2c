//! Metrics: each worker counts into its own plain cells (no atomics, no lock on the request
//! path); a scrape asks every worker for a [`Snapshot`] by message, merges them and renders
//! Prometheus text.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::config::Config;
use crate::x509::identity::Identity;

/// Latencies are kept in microseconds, from 1 µs to 1 hour, 3 significant digits. (These
/// constant bounds are valid, so this is always `Some`; a `None` would only mean no latency
/// figures.)
fn new_histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).ok()
}

thread_local! {
    /// This worker's counters (each worker thread has its own; no lock, no atomics).
    static STATS: WorkerStats = WorkerStats::default();
}

/// Counts into this thread's (worker's) statistics.
pub fn with<R>(f: impl FnOnce(&WorkerStats) -> R) -> R {
    STATS.with(f)
}

/// Client certificates remembered per worker for their expiry gauge.
const CLIENT_CERTS: usize = 256;

/// One worker's counters.
pub struct WorkerStats {
    requests: RefCell<BTreeMap<(&'static str, u16), u64>>,
    handshakes: RefCell<BTreeMap<(&'static str, &'static str), u64>>,
    upstream_new: Cell<u64>,
    upstream_reused: Cell<u64>,
    connections_refused: Cell<u64>,
    refusals: RefCell<BTreeMap<&'static str, u64>>,
    request_time: RefCell<Option<Histogram<u64>>>,
    upstream_time: RefCell<Option<Histogram<u64>>>,
    client_certs: RefCell<HashMap<String, (i64, u64)>>,
    tick: Cell<u64>,
    tunnels_open: Cell<u64>,
    tunnels_total: Cell<u64>,
    tunnel_bytes_to_client: Cell<u64>,
    tunnel_bytes_to_upstream: Cell<u64>,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            requests: RefCell::default(),
            handshakes: RefCell::default(),
            upstream_new: Cell::new(0),
            upstream_reused: Cell::new(0),
            connections_refused: Cell::new(0),
            refusals: RefCell::default(),
            request_time: RefCell::new(new_histogram()),
            upstream_time: RefCell::new(new_histogram()),
            client_certs: RefCell::default(),
            tick: Cell::new(0),
            tunnels_open: Cell::new(0),
            tunnels_total: Cell::new(0),
            tunnel_bytes_to_client: Cell::new(0),
            tunnel_bytes_to_upstream: Cell::new(0),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl WorkerStats {
    /// A request that came over `protocol` (`$server_protocol`), answered with `status` after
    /// `took`.
    pub fn request(&self, protocol: &'static str, status: u16, took: Duration) {
        *self
            .requests
            .borrow_mut()
            .entry((protocol, status))
            .or_default() += 1;
        if let Some(h) = self.request_time.borrow_mut().as_mut() {
            let _ = h.record(micros(took));
        }
    }

    /// Time spent on an upstream exchange.
    pub fn upstream(&self, took: Duration) {
        if let Some(h) = self.upstream_time.borrow_mut().as_mut() {
            let _ = h.record(micros(took));
        }
    }

    /// A new upstream connection (`reused = false`) or a pooled one handed out again.
    pub fn upstream_connection(&self, reused: bool) {
        let c = if reused {
            &self.upstream_reused
        } else {
            &self.upstream_new
        };
        c.set(c.get() + 1);
    }

    /// A client connection refused at accept because a connection limit was reached.
    pub fn connection_refused(&self) {
        self.connections_refused
            .set(self.connections_refused.get() + 1);
    }

    /// Counts a refusal a client caused, by kind (`edge::refusal_log::Kind::label`).
    pub fn refusal(&self, kind: &'static str) {
        *self.refusals.borrow_mut().entry(kind).or_insert(0) += 1;
    }

    /// A TLS handshake: `kind` is `full` or `resumed`, `outcome` `ok` or why it was refused.
    pub fn handshake(&self, kind: &'static str, outcome: &'static str) {
        *self
            .handshakes
            .borrow_mut()
            .entry((kind, outcome))
            .or_default() += 1;
    }

    /// A verified client certificate, for its expiry gauge (the most recent are kept).
    /// Returns true the first time this worker sees it (recently), so the caller can warn once
    /// about a certificate near expiry.
    pub fn client_certificate(&self, id: &Identity) -> bool {
        let tick = self.tick.get() + 1;
        self.tick.set(tick);
        let mut certs = self.client_certs.borrow_mut();
        if let Some(e) = certs.get_mut(&id.subject_dn) {
            *e = (id.not_after, tick);
            return false;
        }
        if certs.len() >= CLIENT_CERTS {
            if let Some(oldest) = certs
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            {
                certs.remove(&oldest);
            }
        }
        certs.insert(id.subject_dn.clone(), (id.not_after, tick));
        true
    }

    /// A connection switched protocols and its tunnel opened.
    pub fn tunnel_opened(&self) {
        self.tunnels_open.set(self.tunnels_open.get() + 1);
        self.tunnels_total.set(self.tunnels_total.get() + 1);
    }

    /// A tunnel closed after relaying these bytes.
    pub fn tunnel_closed(&self, to_client: u64, to_upstream: u64) {
        self.tunnels_open
            .set(self.tunnels_open.get().saturating_sub(1));
        let add = |c: &Cell<u64>, n: u64| c.set(c.get().saturating_add(n));
        add(&self.tunnel_bytes_to_client, to_client);
        add(&self.tunnel_bytes_to_upstream, to_upstream);
    }

    /// Tunnels open on this worker now.
    pub fn tunnels_open(&self) -> u64 {
        self.tunnels_open.get()
    }

    /// A copy of everything, for a scrape.
    pub fn snapshot(&self, open_connections: usize, verify_cache: (u64, u64)) -> Snapshot {
        Snapshot {
            workers: 1,
            requests: self.requests.borrow().clone(),
            handshakes: self.handshakes.borrow().clone(),
            upstream_new: self.upstream_new.get(),
            upstream_reused: self.upstream_reused.get(),
            connections_refused: self.connections_refused.get(),
            refusals: self.refusals.borrow().clone(),
            request_time: self.request_time.borrow().clone(),
            upstream_time: self.upstream_time.borrow().clone(),
            client_certs: self
                .client_certs
                .borrow()
                .iter()
                .map(|(k, (na, _))| (k.clone(), *na))
                .collect(),
            open_connections: open_connections as u64,
            verify_cache_hits: verify_cache.0,
            verify_cache_misses: verify_cache.1,
            ocsp_cache_hits: 0,
            ocsp_cache_misses: 0,
            tunnels_open: self.tunnels_open.get(),
            tunnels_total: self.tunnels_total.get(),
            tunnel_bytes: (
                self.tunnel_bytes_to_client.get(),
                self.tunnel_bytes_to_upstream.get(),
            ),
        }
    }
}

/// Everything one or more workers counted (sent from a worker to the admin thread).
#[derive(Clone)]
pub struct Snapshot {
    /// Workers merged into this one.
    pub workers: u64,
    requests: BTreeMap<(&'static str, u16), u64>,
    handshakes: BTreeMap<(&'static str, &'static str), u64>,
    upstream_new: u64,
    upstream_reused: u64,
    connections_refused: u64,
    refusals: BTreeMap<&'static str, u64>,
    request_time: Option<Histogram<u64>>,
    upstream_time: Option<Histogram<u64>>,
    client_certs: BTreeMap<String, i64>,
    open_connections: u64,
    verify_cache_hits: u64,
    verify_cache_misses: u64,
    ocsp_cache_hits: u64,
    ocsp_cache_misses: u64,
    tunnels_open: u64,
    tunnels_total: u64,
    /// Bytes relayed through tunnels: to clients, to upstreams.
    tunnel_bytes: (u64, u64),
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            workers: 0,
            requests: BTreeMap::new(),
            handshakes: BTreeMap::new(),
            upstream_new: 0,
            upstream_reused: 0,
            connections_refused: 0,
            refusals: BTreeMap::new(),
            request_time: new_histogram(),
            upstream_time: new_histogram(),
            client_certs: BTreeMap::new(),
            open_connections: 0,
            verify_cache_hits: 0,
            verify_cache_misses: 0,
            ocsp_cache_hits: 0,
            ocsp_cache_misses: 0,
            tunnels_open: 0,
            tunnels_total: 0,
            tunnel_bytes: (0, 0),
        }
    }
}

impl Snapshot {
    /// This worker's client-certificate OCSP cache hits and misses (queries sent).
    pub fn with_ocsp_cache(mut self, (hits, misses): (u64, u64)) -> Snapshot {
        self.ocsp_cache_hits = hits;
        self.ocsp_cache_misses = misses;
        self
    }

    /// Adds another worker's numbers.
    pub fn merge(&mut self, o: &Snapshot) {
        self.workers += o.workers;
        for (k, v) in &o.requests {
            *self.requests.entry(*k).or_default() += v;
        }
        for (k, v) in &o.handshakes {
            *self.handshakes.entry(*k).or_default() += v;
        }
        self.upstream_new += o.upstream_new;
        self.upstream_reused += o.upstream_reused;
        self.connections_refused += o.connections_refused;
        for (k, n) in &o.refusals {
            *self.refusals.entry(k).or_insert(0) += *n;
        }
        for (mine, theirs) in [
            (&mut self.request_time, &o.request_time),
            (&mut self.upstream_time, &o.upstream_time),
        ] {
            if let (Some(m), Some(t)) = (mine.as_mut(), theirs.as_ref()) {
                let _ = m.add(t);
            }
        }
        for (k, v) in &o.client_certs {
            self.client_certs.insert(k.clone(), *v);
        }
        self.open_connections += o.open_connections;
        self.verify_cache_hits += o.verify_cache_hits;
        self.verify_cache_misses += o.verify_cache_misses;
        self.ocsp_cache_hits += o.ocsp_cache_hits;
        self.ocsp_cache_misses += o.ocsp_cache_misses;
        self.tunnels_open += o.tunnels_open;
        self.tunnels_total += o.tunnels_total;
        self.tunnel_bytes.0 += o.tunnel_bytes.0;
        self.tunnel_bytes.1 += o.tunnel_bytes.1;
    }
}

/// Reload outcomes, counted by the main thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reloads {
    /// Reloads applied.
    pub applied: u64,
    /// Reloads refused (the running configuration was kept).
    pub refused: u64,
}

/// Histogram buckets, in seconds (Prometheus' usual latency buckets, finer at the low end).
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// A metric family's name, type and `# HELP` text.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

/// A family's samples read off a snapshot: each its label set (`k="v",…`, empty for none)
/// and value.
type Samples = fn(&Snapshot) -> Vec<(String, u64)>;

/// The plain counters and gauges, in exposition order.
const COUNTED: &[(Family, Samples)] = &[
    (
        Family {
            name: "ringgate_workers",
            kind: "gauge",
            help: "Workers that answered this scrape.",
        },
        |s| vec![(String::new(), s.workers)],
    ),
    (
        Family {
            name: "ringgate_open_connections",
            kind: "gauge",
            help: "Client connections open now.",
        },
        |s| vec![(String::new(), s.open_connections)],
    ),
    (
        Family {
            name: "ringgate_tunnels_open",
            kind: "gauge",
            help: "Connections that switched protocols (WebSocket) and are relaying now.",
        },
        |s| vec![(String::new(), s.tunnels_open)],
    ),
    (
        Family {
            name: "ringgate_tunnels_total",
            kind: "counter",
            help: "Connections that switched protocols (an upstream's 101 to an allowed upgrade).",
        },
        |s| vec![(String::new(), s.tunnels_total)],
    ),
    (
        Family {
            name: "ringgate_tunnel_bytes_total",
            kind: "counter",
            help: "Bytes relayed through closed tunnels, by direction (to_client, to_upstream).",
        },
        |s| {
            vec![
                ("direction=\"to_client\"".to_string(), s.tunnel_bytes.0),
                ("direction=\"to_upstream\"".to_string(), s.tunnel_bytes.1),
            ]
        },
    ),
    (
        Family {
            name: "ringgate_connections_refused_total",
            kind: "counter",
            help: "Client connections closed at accept because runtime.max_connections or runtime.max_connections_per_worker was reached.",
        },
        |s| vec![(String::new(), s.connections_refused)],
    ),
    (
        Family {
            name: "ringgate_refusals_total",
            kind: "counter",
            help: "Refusals a client caused (421, malformed requests, timeouts, refused handshakes, denied requests, missing files), by kind; their log lines are rate-limited per worker, these counts are not.",
        },
        |s| {
            s.refusals
                .iter()
                .map(|(kind, n)| (format!("kind=\"{kind}\""), *n))
                .collect()
        },
    ),
    (
        Family {
            name: "ringgate_requests_total",
            kind: "counter",
            help: "Requests answered, by protocol ($server_protocol) and status.",
        },
        |s| {
            s.requests
                .iter()
                .map(|((protocol, status), n)| {
                    (format!("protocol=\"{protocol}\",status=\"{status}\""), *n)
                })
                .collect()
        },
    ),
    (
        Family {
            name: "ringgate_handshakes_total",
            kind: "counter",
            help: "TLS handshakes by kind (full, resumed) and outcome (ok, or why the client was refused).",
        },
        |s| {
            s.handshakes
                .iter()
                .map(|((kind, outcome), n)| (format!("kind=\"{kind}\",outcome=\"{outcome}\""), *n))
                .collect()
        },
    ),
    (
        Family {
            name: "ringgate_verify_cache_hits_total",
            kind: "counter",
            help: "Client chains whose verdict came from the per-core cache.",
        },
        |s| vec![(String::new(), s.verify_cache_hits)],
    ),
    (
        Family {
            name: "ringgate_verify_cache_misses_total",
            kind: "counter",
            help: "Client chains verified in full.",
        },
        |s| vec![(String::new(), s.verify_cache_misses)],
    ),
    (
        Family {
            name: "ringgate_ocsp_cache_hits_total",
            kind: "counter",
            help: "Client-certificate OCSP answers taken from the per-core cache.",
        },
        |s| vec![(String::new(), s.ocsp_cache_hits)],
    ),
    (
        Family {
            name: "ringgate_ocsp_cache_misses_total",
            kind: "counter",
            help: "Client-certificate OCSP answers not in the per-core cache (a query was sent, or joined one in flight).",
        },
        |s| vec![(String::new(), s.ocsp_cache_misses)],
    ),
    (
        Family {
            name: "ringgate_upstream_connections_total",
            kind: "counter",
            help: "Upstream connections by how they were had: opened, or reused from the pool.",
        },
        |s| {
            vec![
                ("result=\"new\"".to_string(), s.upstream_new),
                ("result=\"reused\"".to_string(), s.upstream_reused),
            ]
        },
    ),
];

/// Where a snapshot keeps one latency histogram (`None`: no latency figures).
type Latency = fn(&Snapshot) -> Option<&Histogram<u64>>;

/// The latency histograms (`_bucket`, `_sum`, `_count`: quantiles are the server's to compute
/// with `histogram_quantile`, so no gauge carries a `quantile` label).
const LATENCIES: &[(Family, Latency)] = &[
    (
        Family {
            name: "ringgate_request_duration_seconds",
            kind: "histogram",
            help: "Time from the request head's first byte to the end of the response.",
        },
        |s| s.request_time.as_ref(),
    ),
    (
        Family {
            name: "ringgate_upstream_duration_seconds",
            kind: "histogram",
            help: "Time from taking an upstream connection to the end of the upstream's response.",
        },
        |s| s.upstream_time.as_ref(),
    ),
];

/// Reload outcomes, counted by the main thread (not in a snapshot).
const RELOADS: Family = Family {
    name: "ringgate_config_reloads_total",
    kind: "counter",
    help: "Configuration reloads by result.",
};

/// When the configuration's certificates and CRLs run out, as absolute Unix time (as
/// node_exporter's x509 exporters give it: alert on `… - time() < 30 * 86400`).
const CERTIFICATE_EXPIRY: Family = Family {
    name: "ringgate_certificate_expiry_timestamp_seconds",
    kind: "gauge",
    help: "Unix time of notAfter of the certificates ringgate serves and trusts (kind server, client_ca), or of nextUpdate of its CRLs (kind crl).",
};

/// When the client certificates the workers saw run out, as absolute Unix time.
const CLIENT_CERTIFICATE_EXPIRY: Family = Family {
    name: "ringgate_client_certificate_expiry_timestamp_seconds",
    kind: "gauge",
    help: "Unix time of notAfter of verified client certificates seen recently (at most 256 per worker).",
};

/// Prometheus text being written: family headers and sample lines.
struct Exposition(String);

impl Exposition {
    /// The `# HELP` and `# TYPE` lines that open a family.
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// The header of a family from the tables above.
    fn family(&mut self, f: &Family) {
        self.header(f.name, f.kind, f.help);
    }

    /// One sample line: `name value`, or `name{labels} value`.
    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    /// A latency histogram (microseconds inside, seconds out): cumulative `le` buckets,
    /// `+Inf`, `_sum` and `_count`.
    fn latency(&mut self, f: &Family, h: &Histogram<u64>) {
        let name = f.name;
        self.family(f);
        for le in BUCKETS {
            let upto = (le * 1_000_000.0) as u64;
            let n = h.count_between(0, upto);
            self.sample(&format!("{name}_bucket"), &format!("le=\"{le}\""), n);
        }
        self.sample(&format!("{name}_bucket"), "le=\"+Inf\"", h.len());
        let sum = h.mean() * h.len() as f64 / 1_000_000.0;
        self.sample(&format!("{name}_sum"), "", format!("{sum:.6}"));
        self.sample(&format!("{name}_count"), "", h.len());
    }

    /// When what each TLS listener serves (server certificates), checks against (CRLs, until
    /// their nextUpdate) and trusts (client CAs) runs out.
    fn certificate_expiry(&mut self, config: &Config) {
        self.family(&CERTIFICATE_EXPIRY);
        let name = CERTIFICATE_EXPIRY.name;
        for l in &config.servers {
            let Some(tls) = &l.tls else { continue };
            let listener = label(&l.name);
            let labels = |kind: &str, subject: &str| {
                format!(
                    "kind=\"{kind}\",listener=\"{listener}\",subject=\"{}\"",
                    label(subject)
                )
            };
            for (subject, not_after) in tls.server_certificates() {
                self.sample(name, &labels("server", subject), *not_after);
            }
            for (issuer, next_update) in tls.crls() {
                // A CRL without nextUpdate never expires (as in OpenSSL): no gauge for it.
                if let Some(next) = next_update {
                    self.sample(name, &labels("crl", issuer), *next);
                }
            }
            for (subject, not_after) in tls.client_cas() {
                self.sample(name, &labels("client_ca", subject), *not_after);
            }
        }
    }
}

/// Renders the Prometheus text exposition (format 0.0.4).
pub fn render(s: &Snapshot, config: &Config, reloads: Reloads) -> String {
    let mut o = Exposition(String::with_capacity(8192));
    for (f, samples) in COUNTED {
        o.family(f);
        for (labels, n) in samples(s) {
            o.sample(f.name, &labels, n);
        }
    }
    for (f, histogram) in LATENCIES {
        if let Some(h) = histogram(s) {
            o.latency(f, h);
        }
    }
    o.family(&RELOADS);
    o.sample(RELOADS.name, "result=\"applied\"", reloads.applied);
    o.sample(RELOADS.name, "result=\"refused\"", reloads.refused);
    o.certificate_expiry(config);
    o.family(&CLIENT_CERTIFICATE_EXPIRY);
    for (subject, not_after) in &s.client_certs {
        let labels = format!("subject=\"{}\"", label(subject));
        o.sample(CLIENT_CERTIFICATE_EXPIRY.name, &labels, *not_after);
    }
    crate::fetch::stats::exposition(&mut o.0, crate::clock::unix_now());
    o.0
}

/// A Prometheus label value: `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_merge_and_render() {
        let a = WorkerStats::default();
        a.request("HTTP/1.1", 200, Duration::from_millis(2));
        a.request("HTTP/1.1", 200, Duration::from_millis(4));
        a.request("HTTP/1.1", 403, Duration::from_micros(300));
        a.handshake("full", "ok");
        a.upstream_connection(false);
        a.upstream_connection(true);
        a.upstream(Duration::from_millis(1));
        let b = WorkerStats::default();
        b.request("HTTP/1.1", 200, Duration::from_millis(1));
        b.handshake("resumed", "ok");
        b.handshake("full", "unknown_ca");
        a.connection_refused();
        b.connection_refused();
        b.connection_refused();
        let id = Identity {
            subject_dn: "CN=a\"b".into(),
            not_after: 10 * 86_400 + 5,
            ..Identity::default()
        };
        b.client_certificate(&id);
        let mut s = Snapshot::default();
        s.merge(&a.snapshot(3, (5, 1)));
        s.merge(&b.snapshot(2, (1, 1)));
        let cfg = crate::config::parse_str(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.location]]\npath = \"/\"\nreturn = 204\n",
            std::path::Path::new("m.toml"),
        )
        .unwrap();
        let text = render(
            &s,
            &cfg,
            Reloads {
                applied: 2,
                refused: 1,
            },
        );
        for line in [
            "ringgate_workers 2",
            "ringgate_open_connections 5",
            "ringgate_requests_total{protocol=\"HTTP/1.1\",status=\"200\"} 3",
            "ringgate_requests_total{protocol=\"HTTP/1.1\",status=\"403\"} 1",
            "ringgate_handshakes_total{kind=\"full\",outcome=\"ok\"} 1",
            "ringgate_handshakes_total{kind=\"full\",outcome=\"unknown_ca\"} 1",
            "ringgate_handshakes_total{kind=\"resumed\",outcome=\"ok\"} 1",
            "ringgate_verify_cache_hits_total 6",
            "ringgate_connections_refused_total 3",
            "ringgate_upstream_connections_total{result=\"reused\"} 1",
            "ringgate_request_duration_seconds_bucket{le=\"0.0005\"} 1",
            "ringgate_request_duration_seconds_bucket{le=\"0.0025\"} 3",
            "ringgate_request_duration_seconds_bucket{le=\"+Inf\"} 4",
            "ringgate_request_duration_seconds_count 4",
            "ringgate_config_reloads_total{result=\"refused\"} 1",
            "ringgate_client_certificate_expiry_timestamp_seconds{subject=\"CN=a\\\"b\"} 864005",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }

    #[test]
    fn client_certificates_stay_bounded() {
        let w = WorkerStats::default();
        for i in 0..(CLIENT_CERTS + 10) {
            w.client_certificate(&Identity {
                subject_dn: format!("CN={i}"),
                ..Identity::default()
            });
        }
        assert_eq!(w.client_certs.borrow().len(), CLIENT_CERTS);
        assert!(w
            .client_certs
            .borrow()
            .contains_key(&format!("CN={}", CLIENT_CERTS + 9)));
    }

    /// The demo PKI's server certificate and CA on a TLS listener named `x"y`, upstream
    /// latencies of 1 and 7 ms, and a client certificate whose subject needs escaping: the
    /// exposition rendered from them.
    fn tls_exposition() -> String {
        let d = tempfile::tempdir().expect("tempdir");
        crate::demo::make_pki(d.path()).expect("pki");
        let w = WorkerStats::default();
        w.upstream(Duration::from_millis(1));
        w.upstream(Duration::from_millis(7));
        w.request("HTTP/1.1", 200, Duration::from_micros(250));
        w.handshake("resumed", "revoked");
        w.refusal("misdirected");
        w.client_certificate(&Identity {
            subject_dn: "CN=a\\b\nc".into(),
            not_after: -5,
            ..Identity::default()
        });
        let mut s = Snapshot::default();
        s.merge(&w.snapshot(0, (0, 0)));
        let toml = format!(
            "[[listener]]\nname = \"x\\\"y\"\nlisten = \"127.0.0.1:0\"\n[listener.tls]\n\
             certificates = [{{ cert = \"{0}/server.crt\", key = \"{0}/server.key\" }}]\n\
             client_certificate = \"{0}/ca.crt\"\nverify_client = \"on\"\n\
             [[listener.location]]\npath = \"/\"\nreturn = 204\n",
            d.path().display()
        );
        let cfg = crate::config::parse_str(&toml, std::path::Path::new("m.toml")).expect("config");
        render(&s, &cfg, Reloads::default())
    }

    /// Families in their fixed order, with TLS certificate gauges (absolute Unix time), label
    /// escaping and the histogram's sum and buckets written exactly; no `quantile` label.
    #[test]
    fn exposition_order_and_certificate_gauges_are_exact() {
        let text = tls_exposition();
        assert!(!text.contains("quantile"), "{text}");
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        assert_eq!(
            types,
            [
                "# TYPE ringgate_workers gauge",
                "# TYPE ringgate_open_connections gauge",
                "# TYPE ringgate_tunnels_open gauge",
                "# TYPE ringgate_tunnels_total counter",
                "# TYPE ringgate_tunnel_bytes_total counter",
                "# TYPE ringgate_connections_refused_total counter",
                "# TYPE ringgate_refusals_total counter",
                "# TYPE ringgate_requests_total counter",
                "# TYPE ringgate_handshakes_total counter",
                "# TYPE ringgate_verify_cache_hits_total counter",
                "# TYPE ringgate_verify_cache_misses_total counter",
                "# TYPE ringgate_ocsp_cache_hits_total counter",
                "# TYPE ringgate_ocsp_cache_misses_total counter",
                "# TYPE ringgate_upstream_connections_total counter",
                "# TYPE ringgate_request_duration_seconds histogram",
                "# TYPE ringgate_upstream_duration_seconds histogram",
                "# TYPE ringgate_config_reloads_total counter",
                "# TYPE ringgate_certificate_expiry_timestamp_seconds gauge",
                "# TYPE ringgate_client_certificate_expiry_timestamp_seconds gauge",
                "# TYPE ringgate_revocation_fetches_total counter",
                "# TYPE ringgate_revocation_age_seconds gauge",
                "# TYPE ringgate_revocation_next_update_timestamp_seconds gauge",
                "# TYPE ringgate_revocation_fetched_timestamp_seconds gauge",
                "# TYPE ringgate_ocsp_responder_seconds histogram",
            ]
        );
        // rcgen's default notAfter is 4096-01-01T00:00:00Z.
        for line in [
            "ringgate_workers 1",
            "ringgate_refusals_total{kind=\"misdirected\"} 1",
            "ringgate_upstream_connections_total{result=\"new\"} 0",
            "ringgate_upstream_duration_seconds_bucket{le=\"0.001\"} 1",
            "ringgate_upstream_duration_seconds_bucket{le=\"60\"} 2",
            "ringgate_upstream_duration_seconds_sum 0.008002",
            "ringgate_upstream_duration_seconds_bucket{le=\"+Inf\"} 2",
            "ringgate_upstream_duration_seconds_count 2",
            "ringgate_config_reloads_total{result=\"applied\"} 0",
            "ringgate_certificate_expiry_timestamp_seconds{kind=\"server\",listener=\"x\\\"y\",subject=\"CN=localhost\"} 67090118400",
            "ringgate_certificate_expiry_timestamp_seconds{kind=\"client_ca\",listener=\"x\\\"y\",subject=\"CN=ringgate demo CA,O=ringgate demo\"} 67090118400",
            "ringgate_client_certificate_expiry_timestamp_seconds{subject=\"CN=a\\\\b\\nc\"} -5",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }

    /// `scripts/prom-check` on `text`: prometheus_client's text parser, then histogram and
    /// unit conventions. None when python3 or prometheus_client is missing.
    fn prom_check(text: &str) -> Option<Result<String, String>> {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/prom-check");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take()?;
        // (A checker that exits at once, missing its module, may not read it all.)
        let _ = stdin.write_all(text.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().expect("prom-check ran");
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(77) => None,
            Some(0) => Some(Ok(said)),
            _ => Some(Err(said)),
        }
    }

    /// Both expositions above read by a real Prometheus text parser (python's
    /// prometheus_client): valid, every family typed, histograms cumulative up to +Inf.
    #[test]
    fn exposition_passes_prometheus_client_parser() {
        let mut s = Snapshot::default();
        let w = WorkerStats::default();
        w.request("HTTP/1.1", 200, Duration::from_millis(2));
        w.request("HTTP/1.1", 503, Duration::from_secs(90));
        w.handshake("full", "unknown_ca");
        s.merge(&w.snapshot(1, (1, 1)));
        let cfg = crate::config::parse_str(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.location]]\npath = \"/\"\nreturn = 204\n",
            std::path::Path::new("m.toml"),
        )
        .expect("config");
        for text in [render(&s, &cfg, Reloads::default()), tls_exposition()] {
            match prom_check(&text) {
                None => {
                    eprintln!(
                        "skipped: python3 with prometheus_client is needed (pip install prometheus_client)"
                    );
                    return;
                }
                Some(verdict) => assert!(verdict.is_ok(), "{verdict:?}\n{text}"),
            }
        }
    }

    /// The README's metrics table names every family and every fixed label value the
    /// exposition has.
    #[test]
    fn readme_lists_every_family_and_label_value() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let start = readme
            .find("- `GET /metrics`")
            .expect("the README's metrics section");
        let section = &readme[start..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        let text = tls_exposition();
        for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = family.split(' ').next().unwrap_or(family);
            assert!(section.contains(&format!("`{name}`")), "{name} missing");
        }
        for value in [
            "`to_client`",
            "`to_upstream`",
            "`new`",
            "`reused`",
            "`applied`",
            "`refused`",
            "`server`",
            "`client_ca`",
            "`crl`",
            "`+Inf`",
        ] {
            assert!(section.contains(value), "{value} missing");
        }
    }
}
