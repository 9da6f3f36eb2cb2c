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
