//! OCSP for client certificates (nginx's `ssl_ocsp`), without the handshake ever waiting on
//! the network inside rustls's verifier.
//!
//! The chain is verified in the handshake as always. Before the connection's first request,
//! the connection asks [`lookup`] about each certificate to check: the answer comes from this
//! core's cache (answers kept until nextUpdate, bounded), or the core sends
//! one query to the coordinator thread and the connection polls again shortly. The
//! coordinator keeps one fetch in flight per certificate for the whole process (a hundred
//! connections of one new client, on any cores, make one query), runs each fetch on its own
//! thread (a slow responder delays only the clients it answers for), verifies the answer
//! there, and sends it back to every core that asked. Nothing on a worker blocks or locks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::x509::ocsp::{Answer, CertStatus};

/// Which certificates of a verified chain are checked (nginx `ssl_ocsp on | leaf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspCheck {
    /// Every certificate but the trust anchor (`on`).
    Chain,
    /// The client's own certificate only (`leaf`).
    Leaf,
}

/// What a responder that fails or times out means for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspFailure {
    /// Refused: `$ssl_client_verify` = `FAILED:certificate status request failed`, as nginx
    /// 1.22 writes it.
    Refuse,
    /// Let through, with a warning.
    Allow,
}

/// A listener's client-certificate OCSP policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOcsp {
    /// Which certificates are checked.
    pub check: OcspCheck,
    /// The responder for every certificate (`ocsp_responder`); else each one's AIA.
    pub responder: Option<String>,
    /// What a failed query means.
    pub failure: OcspFailure,
    /// Answers kept per core (`ocsp_cache`).
    pub cache_size: usize,
    /// The longest an answer is kept, and how long one without nextUpdate is (`ocsp_cache_valid`).
    pub cache_valid: Duration,
    /// How long a query may take (`ocsp_timeout`).
    pub timeout: Duration,
}

/// One certificate to ask about: its DER, its issuer's, and where to ask.
#[derive(Debug, Clone)]
pub struct Question {
    /// The cache and in-flight key: the responder and the certificate's identity.
    pub key: [u8; 32],
    /// The responder URL.
    pub url: String,
    /// The certificate.
    pub cert: Vec<u8>,
    /// Its issuer.
    pub issuer: Vec<u8>,
    /// How long the fetch may take.
    pub timeout: Duration,
}

impl Question {
    /// A question about `cert` (issued by `issuer`) to `url`.
    pub fn new(url: &str, cert: &[u8], issuer: &[u8], timeout: Duration) -> Question {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in [url.as_bytes(), cert, issuer] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        Question {
            key,
            url: url.to_string(),
            cert: cert.to_vec(),
            issuer: issuer.to_vec(),
            timeout,
        }
    }
}

/// What [`lookup`] knows now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A verified answer (from the cache, or just arrived).
    Known(CertStatus),
    /// The query failed; the reason (the responder's error, a bad or tampered answer).
    Failed(String),
    /// Asked; poll again.
    Pending,
}

/// A query on its way to the coordinator.
struct Query {
    question: Question,
    reply: Sender<Reply>,
}

/// The coordinator's answer to one core.
struct Reply {
    key: [u8; 32],
    result: Result<Answer, String>,
}

/// What the coordinator thread receives: queries from cores, results from fetch threads.
enum Msg {
    Query(Query),
    Done([u8; 32], Result<Answer, String>),
}

/// Fetches in flight at once, process-wide; a query beyond it fails at once (the policy
/// decides), rather than queueing behind slow responders.
const MAX_IN_FLIGHT: usize = 256;

/// A failure is told to the connections waiting for it, and to those that ask within this
/// long; after that the next connection asks again.
const FAILURE_MEMORY: Duration = Duration::from_secs(1);

fn coordinator() -> Sender<Msg> {
    // A Sender is Sync: cloned from the shared one without a lock.
    static COORD: OnceLock<Sender<Msg>> = OnceLock::new();
    COORD
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            let back = tx.clone();
            let started = std::thread::Builder::new()
                .name("ringgate-ocsp".into())
                .spawn(move || coordinate(rx, back));
            if let Err(e) = started {
                log::error!("cannot start the OCSP thread: {e}; client OCSP queries fail");
            }
            tx
        })
        .clone()
}

/// The coordinator: one fetch per certificate in flight, every waiting core answered.
fn coordinate(rx: Receiver<Msg>, back: Sender<Msg>) {
    let mut waiting: HashMap<[u8; 32], Vec<Sender<Reply>>> = HashMap::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Query(q) => {
                let key = q.question.key;
                if let Some(w) = waiting.get_mut(&key) {
                    w.push(q.reply);
                    continue;
                }
                if waiting.len() >= MAX_IN_FLIGHT {
                    let _ = q.reply.send(Reply {
                        key,
                        result: Err(format!("{MAX_IN_FLIGHT} OCSP queries already in flight")),
                    });
                    continue;
                }
                waiting.insert(key, vec![q.reply]);
                let back = back.clone();
                let spawned = std::thread::Builder::new()
                    .name("ringgate-ocsp-q".into())
                    .spawn(move || {
                        let result = ask(&q.question);
                        let _ = back.send(Msg::Done(key, result));
                    });
                if let Err(e) = spawned {
                    for w in waiting.remove(&key).unwrap_or_default() {
                        let _ = w.send(Reply {
                            key,
                            result: Err(format!("cannot start an OCSP query: {e}")),
                        });
                    }
                }
            }
            Msg::Done(key, result) => {
                for w in waiting.remove(&key).unwrap_or_default() {
                    let _ = w.send(Reply {
                        key,
                        result: result.clone(),
                    });
                }
            }
        }
    }
}

/// One query: the request POSTed, the answer verified. Logged and counted.
fn ask(q: &Question) -> Result<Answer, String> {
    let started = Instant::now();
    let result = fetch_and_check(q);
    let took = started.elapsed();
    super::stats::responder_latency(took);
    let serial = x509_parser::parse_x509_certificate(&q.cert)
        .map(|(_, c)| crate::x509::identity::serial_hex(c.raw_serial()))
        .unwrap_or_default();
    match &result {
        Ok(a) => {
            super::stats::outcome("ocsp", status_name(&a.status));
            log::info!(
                "OCSP {}: serial {serial}: {} (thisUpdate {}, nextUpdate {}) in {} ms",
                q.url,
                status_name(&a.status),
                crate::clock::iso8601(a.this_update),
                a.next_update.map_or("none".into(), crate::clock::iso8601),
                took.as_millis()
            );
        }
        Err((label, why)) => {
            super::stats::outcome("ocsp", label);
            log::warn!(
                "OCSP {}: serial {serial}: no answer after {} ms: {why}",
                q.url,
                took.as_millis()
            );
        }
    }
    result.map_err(|(_, why)| why)
}

fn fetch_and_check(q: &Question) -> Result<Answer, (&'static str, String)> {
    let bad = |why: &str| ("bad_certificate", why.to_string());
    let (_, cert) = x509_parser::parse_x509_certificate(&q.cert).map_err(|_| bad("certificate"))?;
    let (_, issuer) = x509_parser::parse_x509_certificate(&q.issuer).map_err(|_| bad("issuer"))?;
    let body = crate::x509::ocsp::request(&cert, &issuer);
    let der = super::http::fetch(&super::http::Request {
        url: &q.url,
        body: Some(("application/ocsp-request", &body)),
        timeout: q.timeout,
        max_body: super::MAX_BODY,
    })
    .map_err(|e| (e.label(), e.to_string()))?;
    crate::x509::ocsp::check_answer(&der, &q.cert, &q.issuer, &q.url, crate::clock::unix_now())
        .map_err(|e| ("invalid", e.to_string()))
}

/// `good`, `revoked` or `unknown`.
pub fn status_name(s: &CertStatus) -> &'static str {
    match s {
        CertStatus::Good => "good",
        CertStatus::Revoked { .. } => "revoked",
        CertStatus::Unknown => "unknown",
    }
}

/// A cached answer: the status, until when it holds, when it was last used.
struct Cached {
    status: CertStatus,
    until: i64,
    used: u64,
}

/// This core's side: its cache, the failures it was told of, what it waits for, its link.
#[derive(Default)]
struct Core {
    cache: HashMap<[u8; 32], Cached>,
    failed: HashMap<[u8; 32], (String, Instant)>,
    waiting: HashMap<[u8; 32], Instant>,
    tick: u64,
    hits: u64,
    misses: u64,
    link: Option<(Sender<Reply>, Receiver<Reply>)>,
}

thread_local! {
    static CORE: RefCell<Core> = RefCell::new(Core::default());
}

/// This core's OCSP cache hits and misses, for metrics.
pub fn cache_stats() -> (u64, u64) {
    CORE.with(|c| {
        let c = c.borrow();
        (c.hits, c.misses)
    })
}

/// What this core knows about `q` under `policy`: a cached or just-arrived answer, a recent
/// failure, or Pending (after sending the query, unless this core already waits for it).
/// Never blocks.
pub fn lookup(q: &Question, policy: &ClientOcsp, now: i64) -> Lookup {
    CORE.with(|c| {
        let mut c = c.borrow_mut();
        c.take_replies(policy, now);
        c.tick += 1;
        let tick = c.tick;
        if let Some(hit) = c.cache.get_mut(&q.key).filter(|e| e.until > now) {
            hit.used = tick;
            let status = hit.status.clone();
            c.hits += 1;
            return Lookup::Known(status);
        }
        if let Some((why, at)) = c.failed.get(&q.key) {
            if at.elapsed() < FAILURE_MEMORY {
                return Lookup::Failed(why.clone());
            }
        }
        let asked = c
            .waiting
            .get(&q.key)
            .is_some_and(|at| at.elapsed() < q.timeout + Duration::from_secs(1));
        if !asked {
            c.misses += 1;
            if let Err(why) = c.send(q) {
                return Lookup::Failed(why);
            }
            c.waiting.insert(q.key, Instant::now());
        }
        Lookup::Pending
    })
}

impl Core {
    /// Sends `q` to the coordinator, with this core's reply channel.
    fn send(&mut self, q: &Question) -> Result<(), String> {
        if self.link.is_none() {
            self.link = Some(mpsc::channel());
        }
        let Some(reply) = self.link.as_ref().map(|(tx, _)| tx.clone()) else {
            return Err("the OCSP thread is not running".into());
        };
        let coord = coordinator();
        let query = Query {
            question: q.clone(),
            reply,
        };
        coord
            .send(Msg::Query(query))
            .map_err(|_| "the OCSP thread has stopped".to_string())
    }

    /// Moves the answers that arrived into the cache (until nextUpdate, at most
    /// `cache_valid`), failures into the short failure memory.
    fn take_replies(&mut self, policy: &ClientOcsp, now: i64) {
        let replies: Vec<Reply> = match &self.link {
            Some((_, rx)) => rx.try_iter().collect(),
            None => return,
        };
        for r in replies {
            self.waiting.remove(&r.key);
            match r.result {
                Ok(a) => {
                    self.failed.remove(&r.key);
                    let longest = now.saturating_add(policy.cache_valid.as_secs() as i64);
                    let until = a.next_update.map_or(longest, |n| n.min(longest));
                    self.insert(r.key, a.status, until, policy.cache_size);
                }
                Err(why) => {
                    self.failed.insert(r.key, (why, Instant::now()));
                }
            }
        }
        self.failed
            .retain(|_, (_, at)| at.elapsed() < FAILURE_MEMORY);
    }

    fn insert(&mut self, key: [u8; 32], status: CertStatus, until: i64, capacity: usize) {
        let capacity = capacity.max(1);
        if self.cache.len() >= capacity && !self.cache.contains_key(&key) {
            // Drop the least recently used eighth (at least one) in one pass.
            let mut ages: Vec<u64> = self.cache.values().map(|e| e.used).collect();
            ages.sort_unstable();
            let cutoff = ages[(ages.len() / 8).min(ages.len() - 1)];
            self.cache.retain(|_, e| e.used > cutoff);
        }
        self.tick += 1;
        let used = self.tick;
        self.cache.insert(
            key,
            Cached {
                status,
                until,
                used,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(cache_size: usize) -> ClientOcsp {
        ClientOcsp {
            check: OcspCheck::Leaf,
            responder: None,
            failure: OcspFailure::Refuse,
            cache_size,
            cache_valid: Duration::from_secs(3600),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_the_recent() {
        let mut c = Core::default();
        for i in 0..100u8 {
            c.insert([i; 32], CertStatus::Good, i64::MAX, 16);
        }
        assert!(c.cache.len() <= 16, "{}", c.cache.len());
        assert!(c.cache.contains_key(&[99; 32]));
    }

    #[test]
    fn replies_become_answers_failures_and_expiry() {
        let p = policy(10);
        let mut c = Core::default();
        let (tx, rx) = mpsc::channel();
        c.link = Some((tx.clone(), rx));
        let revoked = CertStatus::Revoked {
            at: 5,
            reason: Some("keyCompromise"),
        };
        for (k, result) in [
            (
                1u8,
                Ok(Answer {
                    status: CertStatus::Good,
                    this_update: 0,
                    next_update: Some(100),
                }),
            ),
            (
                2,
                Ok(Answer {
                    status: revoked.clone(),
                    this_update: 0,
                    next_update: None,
                }),
            ),
            (
                3,
                Ok(Answer {
                    status: CertStatus::Unknown,
                    this_update: 0,
                    next_update: None,
                }),
            ),
            (4, Err("connection refused".to_string())),
        ] {
            tx.send(Reply {
                key: [k; 32],
                result,
            })
            .unwrap();
        }
        c.take_replies(&p, 50);
        assert_eq!(c.cache[&[1; 32]].until, 100);
        assert_eq!(c.cache[&[2; 32]].until, 50 + 3600);
        assert_eq!(c.cache[&[2; 32]].status, revoked);
        assert_eq!(c.cache[&[3; 32]].status, CertStatus::Unknown);
        assert_eq!(c.failed[&[4; 32]].0, "connection refused");
    }

    #[test]
    fn an_unreachable_responder_fails_after_one_query() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        let q = Question::new(
            &url,
            b"not a certificate",
            b"issuer",
            Duration::from_secs(1),
        );
        let p = policy(10);
        assert_eq!(lookup(&q, &p, 0), Lookup::Pending);
        let deadline = Instant::now() + Duration::from_secs(5);
        let got = loop {
            match lookup(&q, &p, 0) {
                Lookup::Pending if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                other => break other,
            }
        };
        assert!(matches!(got, Lookup::Failed(_)), "{got:?}");
        assert_eq!(cache_stats().1, 1, "one query for every poll");
    }
}
