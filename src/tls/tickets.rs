//! Session tickets every worker can open: one AEAD key per process (later: per fleet, rotated),
//! held by each worker's own ticketer so no handshake takes a lock.

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

    /// The ticketer one worker uses.
    pub fn ticketer(&self, lifetime_secs: u32) -> Result<Ticketer, rustls::Error> {
        let unbound = UnboundKey::new(&AES_256_GCM, &self.secret)
            .map_err(|_| rustls::Error::General("ticket key rejected by AES-256-GCM".into()))?;
        Ok(Ticketer {
            id: self.id,
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
            lifetime_secs,
        })
    }
}

/// Seals and opens session tickets with a [`TicketKey`]; one instance per worker.
pub struct Ticketer {
    id: [u8; 4],
    key: LessSafeKey,
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
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(4 + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&self.id),
                &mut body,
            )
            .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < 4 + NONCE_LEN + 16 || cipher[..4] != self.id {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&cipher[4..4 + NONCE_LEN]).ok()?;
        let mut body = cipher[4 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(&self.id), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_open_on_every_worker_and_resist_tampering() {
        let key = TicketKey::random().unwrap();
        let w0 = key.ticketer(3600).unwrap();
        let w1 = key.ticketer(3600).unwrap();
        let t = w0.encrypt(b"session state").unwrap();
        assert_eq!(w1.decrypt(&t).unwrap(), b"session state");
        let mut bad = t.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(w1.decrypt(&bad).is_none());
        assert!(w1.decrypt(&t[..10]).is_none());
        let other = TicketKey::random().unwrap().ticketer(3600).unwrap();
        assert!(other.decrypt(&t).is_none());
    }
}
