//! TLS sessions to upstreams, kept per core without a lock.
//!
//! rustls's `ClientSessionMemoryCache` guards its map with a lock; the project's rule is no
//! lock on the handshake and forwarding path. rustls calls a session store only from inside
//! `ClientConnection::new` and `process_new_packets`, that is on the worker thread that owns
//! the connection, so the sessions live in a `thread_local!` map and the store itself is only a
//! key into it. Each store (one per worker, upstream and server) has its own id, so sessions
//! never cross from one server to another, as nginx keeps them per upstream peer.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::NamedGroup;
use rustls_pki_types::ServerName;

/// TLS 1.3 tickets kept per server (rustls's in-memory cache keeps as many).
const TICKETS_PER_SERVER: usize = 8;

/// Entries (store, server name) per core; beyond it the least recently used is dropped.
const MAX_ENTRIES: usize = 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Default)]
struct Entry {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
    used: u64,
}

#[derive(Default)]
struct Sessions {
    map: HashMap<(u64, ServerName<'static>), Entry>,
    tick: u64,
}

impl Sessions {
    fn get(&mut self, id: u64, name: &ServerName<'_>) -> Option<&mut Entry> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.map.get_mut(&(id, name.to_owned()))?;
        e.used = tick;
        Some(e)
    }

    fn edit(&mut self, id: u64, name: ServerName<'static>, f: impl FnOnce(&mut Entry)) {
        self.tick += 1;
        let key = (id, name);
        if !self.map.contains_key(&key) && self.map.len() >= MAX_ENTRIES {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.map.remove(&k);
            }
        }
        let e = self.map.entry(key).or_default();
        e.used = self.tick;
        f(e);
    }
}

thread_local! {
    static SESSIONS: RefCell<Sessions> = RefCell::new(Sessions::default());
}

/// A rustls session store whose sessions live in the calling thread's own map.
#[derive(Debug)]
pub struct PerCoreSessions {
    id: u64,
}

impl PerCoreSessions {
    /// A new, empty store.
    pub fn new() -> Self {
        PerCoreSessions {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Default for PerCoreSessions {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientSessionStore for PerCoreSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        SESSIONS.with(|s| {
            s.borrow_mut()
                .edit(self.id, server_name, |e| e.kx_hint = Some(group))
        });
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        SESSIONS.with(|s| {
            s.borrow_mut()
                .get(self.id, server_name)
                .and_then(|e| e.kx_hint)
        })
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        SESSIONS.with(|s| {
            s.borrow_mut()
                .edit(self.id, server_name, |e| e.tls12 = Some(value))
        });
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        SESSIONS.with(|s| {
            s.borrow_mut()
                .get(self.id, server_name)
                .and_then(|e| e.tls12.clone())
        })
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        SESSIONS.with(|s| {
            if let Some(e) = s.borrow_mut().get(self.id, server_name) {
                e.tls12 = None;
            }
        });
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        SESSIONS.with(|s| {
            s.borrow_mut().edit(self.id, server_name, |e| {
                if e.tls13.len() >= TICKETS_PER_SERVER {
                    e.tls13.pop_front();
                }
                e.tls13.push_back(value);
            })
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        SESSIONS.with(|s| {
            s.borrow_mut()
                .get(self.id, server_name)
                .and_then(|e| e.tls13.pop_back())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_per_store_and_bounded() {
        let a = PerCoreSessions::new();
        let b = PerCoreSessions::new();
        let name = ServerName::try_from("app.internal").unwrap();
        a.set_kx_hint(name.clone(), NamedGroup::X25519);
        assert_eq!(a.kx_hint(&name), Some(NamedGroup::X25519));
        assert_eq!(b.kx_hint(&name), None, "stores do not share sessions");
        // Another thread sees nothing: sessions are per core.
        let a2 = PerCoreSessions { id: a.id };
        let seen =
            std::thread::spawn(move || a2.kx_hint(&ServerName::try_from("app.internal").unwrap()))
                .join()
                .unwrap();
        assert_eq!(seen, None);
        for i in 0..(MAX_ENTRIES + 5) {
            let n = ServerName::try_from(format!("h{i}.internal")).unwrap();
            b.set_kx_hint(n, NamedGroup::secp256r1);
        }
        SESSIONS.with(|s| assert!(s.borrow().map.len() <= MAX_ENTRIES));
    }
}
