//! Session tickets every worker can open: AEAD keys made per process, or read from files (nginx
//! `ssl_session_ticket_key`) so that a fleet shares them; the first key seals, every key opens
//! (rotation: put the new file first and keep the old one after it for a ticket lifetime).
//! Each worker holds its own ticketer, so no handshake takes a lock.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

/// Secret material for tickets; cloned into every worker.
#[derive(Clone)]
pub struct TicketKey {
    id: [u8; 4],
    secret: [u8; 32],
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("TicketKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl TicketKey {
    /// A fresh random key, made once per process at start-up.
    pub fn random() -> Result<Self, rustls::Error> {
        let rng = SystemRandom::new();
        let mut key = TicketKey {
            id: [0; 4],
            secret: [0; 32],
        };
        rng.fill(&mut key.id)
            .and_then(|_| rng.fill(&mut key.secret))
            .map_err(|_| rustls::Error::FailedToGetRandomBytes)?;
        Ok(key)
    }

    /// This process's key for a listener: derived from a random secret made once per process
    /// and the listener's name, so a configuration reload keeps tickets valid while listeners
    /// never share keys.
    pub fn for_listener(name: &str) -> Result<Self, rustls::Error> {
        static SEED: std::sync::OnceLock<Option<[u8; 32]>> = std::sync::OnceLock::new();
        let seed = SEED
            .get_or_init(|| {
                let mut s = [0u8; 32];
                SystemRandom::new().fill(&mut s).ok().map(|_| s)
            })
            .ok_or(rustls::Error::FailedToGetRandomBytes)?;
        let hmac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &seed);
        let tag = aws_lc_rs::hmac::sign(&hmac, name.as_bytes());
        let mut key = TicketKey {
            id: [0; 4],
            secret: [0; 32],
        };
        key.secret.copy_from_slice(tag.as_ref());
        let id = aws_lc_rs::hmac::sign(&hmac, &[b"id:", name.as_bytes()].concat());
        key.id.copy_from_slice(&id.as_ref()[..4]);
        Ok(key)
    }

    /// A key from an nginx `ssl_session_ticket_key` file: 48 bytes (16 name, 32 secret) or 80
    /// bytes (16 name, 64 secret). The name's first bytes become the key id; the secret is
    /// hashed into an AES-256-GCM key. The tickets are ringgate's own format (not nginx's),
    /// shared by every ringgate that reads the same file.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != 48 && bytes.len() != 80 {
            return Err(format!(
                "a session ticket key file holds 48 or 80 bytes (as `openssl rand 80 > ticket.key` makes), not {}",
                bytes.len()
            ));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes[16..]);
        let mut key = TicketKey {
            id: [0; 4],
            secret: [0; 32],
        };
        key.id.copy_from_slice(&bytes[..4]);
        key.secret.copy_from_slice(digest.as_ref());
        Ok(key)
    }

    fn sealer(&self) -> Result<(LessSafeKey, [u8; 4]), rustls::Error> {
        let unbound = UnboundKey::new(&AES_256_GCM, &self.secret)
            .map_err(|_| rustls::Error::General("ticket key rejected by AES-256-GCM".into()))?;
        Ok((LessSafeKey::new(unbound), self.id))
    }
}

/// The keys of one listener: the first seals new tickets, all of them open tickets.
#[derive(Clone, Debug)]
pub struct TicketKeys(pub Vec<TicketKey>);

impl TicketKeys {
    /// The ticketer one worker uses.
    pub fn ticketer(&self, lifetime_secs: u32) -> Result<Ticketer, rustls::Error> {
        let mut keys = Vec::with_capacity(self.0.len());
        for k in &self.0 {
            keys.push(k.sealer()?);
        }
        if keys.is_empty() {
            return Err(rustls::Error::General("no session ticket key".into()));
        }
        Ok(Ticketer {
            keys,
            rng: SystemRandom::new(),
            lifetime_secs,
        })
    }
}

/// Seals and opens session tickets with [`TicketKeys`]; one instance per worker.
pub struct Ticketer {
    /// The first seals; all open (matched by id).
    keys: Vec<(LessSafeKey, [u8; 4])>,
    rng: SystemRandom,
    lifetime_secs: u32,
}

impl fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticketer")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime_secs
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (key, id) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(4 + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(id),
            &mut body,
        )
        .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < 4 + NONCE_LEN + 16 {
            return None;
        }
        for (key, id) in self.keys.iter().filter(|(_, id)| cipher[..4] == *id) {
            let nonce = Nonce::try_assume_unique_for_key(&cipher[4..4 + NONCE_LEN]).ok()?;
            let mut body = cipher[4 + NONCE_LEN..].to_vec();
            if let Ok(plain) = key.open_in_place(nonce, Aad::from(id), &mut body) {
                return Some(plain.to_vec());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_open_on_every_worker_and_resist_tampering() {
        let key = TicketKeys(vec![TicketKey::random().unwrap()]);
        let w0 = key.ticketer(3600).unwrap();
        let w1 = key.ticketer(3600).unwrap();
        let t = w0.encrypt(b"session state").unwrap();
        assert_eq!(w1.decrypt(&t).unwrap(), b"session state");
        let mut bad = t.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(w1.decrypt(&bad).is_none());
        assert!(w1.decrypt(&t[..10]).is_none());
        let other = TicketKeys(vec![TicketKey::random().unwrap()])
            .ticketer(3600)
            .unwrap();
        assert!(other.decrypt(&t).is_none());
    }

    #[test]
    fn listener_keys_are_stable_and_distinct() {
        let a1 = TicketKeys(vec![TicketKey::for_listener("a").unwrap()]);
        let a2 = TicketKeys(vec![TicketKey::for_listener("a").unwrap()]);
        let b = TicketKeys(vec![TicketKey::for_listener("b").unwrap()]);
        let t = a1.ticketer(60).unwrap().encrypt(b"s").unwrap();
        assert_eq!(a2.ticketer(60).unwrap().decrypt(&t).unwrap(), b"s");
        assert!(b.ticketer(60).unwrap().decrypt(&t).is_none());
    }

    #[test]
    fn file_keys_rotate_new_first_old_still_opens() {
        let old = TicketKey::from_file_bytes(&[7u8; 80]).unwrap();
        let mut new_bytes = [9u8; 48];
        new_bytes[0] = 1;
        let new = TicketKey::from_file_bytes(&new_bytes).unwrap();
        let before = TicketKeys(vec![old.clone()]).ticketer(300).unwrap();
        let t_old = before.encrypt(b"old").unwrap();
        let after = TicketKeys(vec![new.clone(), old]).ticketer(300).unwrap();
        assert_eq!(after.decrypt(&t_old).unwrap(), b"old");
        let t_new = after.encrypt(b"new").unwrap();
        assert!(before.decrypt(&t_new).is_none(), "sealed with the new key");
        // Another instance reading the same files opens the same tickets (a fleet).
        let fleet = TicketKeys(vec![TicketKey::from_file_bytes(&new_bytes).unwrap()])
            .ticketer(300)
            .unwrap();
        assert_eq!(fleet.decrypt(&t_new).unwrap(), b"new");
        assert!(TicketKey::from_file_bytes(&[0u8; 32]).is_err());
    }
}
