//! The last good bytes of every fetched CRL and staple, by source. The fetcher thread writes
//! an entry only after the bytes verified; the configuration loader reads them when it builds
//! a listener's TLS (at start and on every reload, on the main thread). Workers never touch
//! it: they get what was built from it inside a new configuration, by message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// What a source last gave that verified.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The body as fetched.
    pub bytes: Arc<Vec<u8>>,
    /// When it was fetched, Unix seconds.
    pub at: i64,
}

fn store() -> &'static Mutex<HashMap<String, Fetched>> {
    static STORE: OnceLock<Mutex<HashMap<String, Fetched>>> = OnceLock::new();
    STORE.get_or_init(Default::default)
}

/// The store key of a CRL fetched from `url`.
pub fn crl_key(url: &str) -> String {
    format!("crl {url}")
}

/// The store key of the staple of the certificate with `serial` (hex) fetched from `url`.
pub fn staple_key(url: &str, serial: &str) -> String {
    format!("staple {url} {serial}")
}

/// The last good bytes of `key`, if any.
pub fn get(key: &str) -> Option<Fetched> {
    store().lock().ok()?.get(key).cloned()
}

/// Records verified bytes for `key`; false when they are the ones already held.
pub fn put(key: &str, bytes: Vec<u8>, now: i64) -> bool {
    let Ok(mut s) = store().lock() else {
        return false;
    };
    if s.get(key).is_some_and(|f| *f.bytes == bytes) {
        return false;
    }
    s.insert(
        key.to_string(),
        Fetched {
            bytes: Arc::new(bytes),
            at: now,
        },
    );
    true
}

/// The most distribution points taken from chains clients presented (the rest are ignored).
const MAX_DISCOVERED: usize = 64;

fn discovered_set() -> &'static Mutex<Vec<String>> {
    static SET: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SET.get_or_init(Default::default)
}

/// The CRL distribution points found in intermediates clients presented, in discovery order.
pub fn discovered() -> Vec<String> {
    discovered_set()
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default()
}

/// Records a distribution point a client's intermediate named (by the fetcher thread); true
/// when it is new and there was room for it.
pub fn add_discovered(url: &str) -> bool {
    let Ok(mut s) = discovered_set().lock() else {
        return false;
    };
    if s.len() >= MAX_DISCOVERED || s.iter().any(|u| u == url) {
        return false;
    }
    s.push(url.to_string());
    true
}

/// Where the workers send the distribution points they find: the fetcher's channel, set once
/// when it starts (a `Sender` is `Sync`: workers clone it without a lock).
static DISCOVERY: OnceLock<std::sync::mpsc::Sender<String>> = OnceLock::new();

/// Sets where the workers send the distribution points they find (the fetcher's channel).
pub fn set_discovery(tx: std::sync::mpsc::Sender<String>) {
    if DISCOVERY.set(tx).is_err() {
        log::warn!("the CRL distribution points' channel was already set; the first one stays");
    }
}

thread_local! {
    /// What this worker has already reported.
    static REPORTED: std::cell::RefCell<std::collections::HashSet<String>> =
        std::cell::RefCell::new(std::collections::HashSet::new());
}

/// Sends a distribution point found in a client's chain to the fetcher, once per worker
/// (and at most [`MAX_DISCOVERED`] of them); never blocks, never locks.
pub fn report_distribution_point(url: &str) {
    let Some(tx) = DISCOVERY.get() else {
        return;
    };
    REPORTED.with(|r| {
        let mut sent = r.borrow_mut();
        if sent.len() >= MAX_DISCOVERED || !sent.insert(url.to_string()) {
            return;
        }
        let _ = tx.send(url.to_string());
    })
}
