//! Client-certificate policy as rustls sees it: nginx's `ssl_verify_client` modes on top of
//! [`ChainVerifier`], plus a per-core cache of verdicts.
//!
//! The verdict of every presented chain is cached in a thread-local, bounded map keyed by a
//! SHA-256 of the chain. The handshake fills it (rustls calls [`ClientAuth::verify_client_cert`]
//! on the worker's own thread); the proxy reads it back after the handshake through
//! [`ClientAuth::outcome`]. A resumed session, where rustls does not call the verifier, misses
//! the cache only if the entry was evicted, and is then verified again: resumption never skips
//! verification. No lock is taken anywhere: each worker thread owns its cache.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::DistinguishedName;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::x509::crl::Revocation;
use crate::x509::identity::Identity;
use crate::x509::signature::HandshakeSignatures;
use crate::x509::trust::TrustStore;
use crate::x509::verify::{ChainVerifier, VerifiedChain, VerifyError};

/// nginx's `ssl_verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// No certificate is requested.
    Off,
    /// A verified certificate is required.
    On,
    /// A certificate is requested; if one is sent it must verify.
    Optional,
    /// A certificate is requested; it need not chain to a trusted CA.
    OptionalNoCa,
}

/// What a refused client certificate gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// The handshake ends with the TLS alert that says why (our default).
    Alert,
    /// The handshake completes and the request gets nginx's 400 page (nginx-compatible).
    Http,
}

/// The verdict on a connection's client certificate.
#[derive(Debug, Clone)]
pub enum ClientVerifyOutcome {
    /// No certificate was presented (or none requested).
    None,
    /// The chain verified.
    Success(Arc<VerifiedChain>),
    /// The chain did not verify.
    Failed(VerifyError),
}

impl ClientVerifyOutcome {
    /// nginx's `$ssl_client_verify`: `NONE`, `SUCCESS` or `FAILED:<reason>`.
    pub fn nginx_value(&self) -> Cow<'static, str> {
        match self {
            ClientVerifyOutcome::None => Cow::Borrowed("NONE"),
            ClientVerifyOutcome::Success(_) => Cow::Borrowed("SUCCESS"),
            ClientVerifyOutcome::Failed(e) => Cow::Owned(format!("FAILED:{}", e.openssl_reason())),
        }
    }
}

/// A chain's verdict and the identity parsed from its leaf, cached together per core so that a
/// returning client costs neither a chain verification nor a certificate parse.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The verification outcome.
    pub outcome: ClientVerifyOutcome,
    /// The leaf's identity (None when no certificate was presented or it does not parse).
    pub identity: Option<Arc<Identity>>,
}

/// Gives every `ClientAuth` a distinct generation, so verdicts cached under an old trust store
/// never answer for a new one (reloads build a new `ClientAuth`).
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// One listener's client-certificate policy (shared read-only by the workers' rustls configs).
#[derive(Debug)]
pub struct ClientAuth {
    mode: ClientAuthMode,
    failure: FailureMode,
    verifier: Option<ChainVerifier>,
    hints: Vec<DistinguishedName>,
    generation: u64,
    signatures: HandshakeSignatures,
    /// Hosts whose CRL distribution points, named by intermediates clients present, are
    /// reported to the fetcher (`crl_from_distribution_points`); empty when off.
    discover_from: Vec<String>,
}

impl ClientAuth {
    /// Builds the policy. Modes other than `Off` need a trust store. `hints` are the CA names
    /// sent in CertificateRequest (empty: every CA of the store).
    pub fn new(
        mode: ClientAuthMode,
        failure: FailureMode,
        store: Option<Arc<TrustStore>>,
        depth: u32,
        hints: Vec<DistinguishedName>,
    ) -> Result<Self, rustls::Error> {
        let verifier = match (mode, store) {
            (ClientAuthMode::Off, _) => None,
            (_, Some(store)) => Some(ChainVerifier::new(store, depth)),
            (ClientAuthMode::OptionalNoCa, None) => None,
            (_, None) => {
                return Err(rustls::Error::General(
                    "client verification needs a CA bundle (client_certificate)".into(),
                ))
            }
        };
        let hints = if hints.is_empty() {
            verifier
                .as_ref()
                .map(|v| v.store.subjects())
                .unwrap_or_default()
        } else {
            hints
        };
        Ok(ClientAuth {
            mode,
            failure,
            verifier,
            hints,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            signatures: HandshakeSignatures::default(),
            discover_from: Vec::new(),
        })
    }

    /// Checks every chain against these CRLs too (nginx `ssl_crl`). A reload builds a new
    /// `ClientAuth`, whose new generation keeps verdicts cached under the old CRLs out.
    pub fn with_revocation(mut self, revocation: Option<Arc<Revocation>>) -> Self {
        self.verifier = self.verifier.map(|v| v.with_revocation(revocation));
        self
    }

    /// Reports the CRL distribution points of the intermediates clients present, on these
    /// hosts, to the fetcher (once per worker and URL, on a full verification only).
    pub fn with_discovery(mut self, hosts: Vec<String>) -> Self {
        self.discover_from = hosts;
        self
    }

    /// The CRLs chains are checked against, if any.
    pub fn revocation(&self) -> Option<&Arc<Revocation>> {
        self.verifier.as_ref().and_then(|v| v.revocation.as_ref())
    }

    /// The CAs client chains are verified against (and fetched CRLs verified with).
    pub fn store(&self) -> Option<&Arc<TrustStore>> {
        self.verifier.as_ref().map(|v| &v.store)
    }

    /// The mode.
    pub fn mode(&self) -> ClientAuthMode {
        self.mode
    }

    /// The verdict for a peer's chain (leaf first), from this core's cache or freshly verified.
    pub fn outcome(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> ClientVerifyOutcome {
        self.verdict(chain, now).outcome
    }

    /// The verdict and identity for a peer's chain, from this core's cache or computed once.
    pub fn verdict(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Verdict {
        let none = Verdict {
            outcome: ClientVerifyOutcome::None,
            identity: None,
        };
        let Some((leaf, rest)) = chain.split_first() else {
            return none;
        };
        if self.mode == ClientAuthMode::Off {
            return none;
        }
        let key = chain_key(self.generation, chain);
        let now_secs = now.as_secs() as i64;
        if let Some(hit) = CACHE.with(|c| c.borrow_mut().get(&key, now_secs)) {
            return hit;
        }
        let (outcome, expires) = match &self.verifier {
            Some(v) => match v.verify(leaf, rest, now) {
                Ok(chain) => {
                    let exp = chain.cache_until;
                    (ClientVerifyOutcome::Success(Arc::new(chain)), exp)
                }
                // Failures are cached briefly: a clock-dependent failure may clear.
                Err(e) => (ClientVerifyOutcome::Failed(e), now_secs + 60),
            },
            // optional_no_ca without a CA bundle: nothing can verify.
            None => (
                ClientVerifyOutcome::Failed(VerifyError::UnableToGetIssuerCertLocally {
                    depth: 0,
                    subject: String::new(),
                }),
                now_secs + 60,
            ),
        };
        if !self.discover_from.is_empty() {
            self.report_distribution_points(rest);
        }
        let intermediates: Vec<&[u8]> = rest.iter().map(|c| c.as_ref()).collect();
        let verdict = Verdict {
            outcome,
            identity: Identity::from_chain(leaf.as_ref(), &intermediates).map(Arc::new),
        };
        CACHE.with(|c| c.borrow_mut().insert(key, verdict.clone(), expires));
        verdict
    }
}

impl ClientAuth {
    /// The allowed http:// distribution points of the intermediates a client sent.
    fn report_distribution_points(&self, intermediates: &[CertificateDer<'_>]) {
        for c in intermediates {
            let Ok((_, cert)) = x509_parser::parse_x509_certificate(c.as_ref()) else {
                continue;
            };
            for url in crate::x509::ocsp::crl_distribution_urls(&cert) {
                let allowed = crate::fetch::http::HttpUrl::parse(&url)
                    .is_ok_and(|u| self.discover_from.contains(&u.host_name()));
                if allowed {
                    crate::fetch::store::report_distribution_point(&url);
                }
            }
        }
    }
}

impl ClientCertVerifier for ClientAuth {
    fn offer_client_auth(&self) -> bool {
        self.mode != ClientAuthMode::Off
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mode == ClientAuthMode::On && self.failure == FailureMode::Alert
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        match self.outcome(&chain, now) {
            ClientVerifyOutcome::Failed(e) if self.failure == FailureMode::Alert => {
                if self.mode == ClientAuthMode::OptionalNoCa && e.is_ignorable_for_optional_no_ca()
                {
                    Ok(ClientCertVerified::assertion())
                } else {
                    let mut detail = e.to_string();
                    if e.depth() != Some(0) {
                        // The error is about a CA of the chain: name the client too.
                        if let Ok((_, x)) = x509_parser::parse_x509_certificate(end_entity) {
                            detail.push_str(&format!(
                                "; client certificate {}",
                                crate::x509::identity::rfc2253(x.subject())
                            ));
                        }
                    }
                    record_refusal(detail);
                    Err(e.to_rustls())
                }
            }
            _ => Ok(ClientCertVerified::assertion()),
        }
    }

    handshake_signature_methods!();
}

thread_local! {
    /// Why this thread's verifier refused a chain during the rustls call that
    /// [`run_verifying`] is running (rustls carries only the alert's reason). Private: only
    /// `run_verifying` reads it, and only around a synchronous call.
    static REFUSAL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records the verifier's account of a refusal for the [`run_verifying`] call in progress.
fn record_refusal(detail: String) {
    REFUSAL.with(|r| *r.borrow_mut() = Some(detail));
}

/// Runs one synchronous call into rustls that may run this thread's client-certificate
/// verifier (`process_new_packets`), and when it fails with a refused certificate, attaches
/// the verifier's account of why. rustls's verifier API can only return a `rustls::Error`, so
/// the account travels beside it on this thread; `step` is a plain closure, so nothing can
/// await between the verifier writing the account and this function taking it, and no other
/// connection's handshake can see it.
pub fn run_verifying<T>(
    step: impl FnOnce() -> Result<T, rustls::Error>,
) -> Result<T, HandshakeFailure> {
    REFUSAL.with(|r| r.borrow_mut().take());
    let result = step();
    let detail = REFUSAL.with(|r| r.borrow_mut().take());
    result.map_err(|error| match detail {
        Some(detail) => HandshakeFailure::Refused(RefusedCertificate { error, detail }),
        None => HandshakeFailure::Tls(error),
    })
}

/// Why a rustls call failed, as [`run_verifying`] reports it.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeFailure {
    /// The client's certificate was refused by our verifier (the account says why).
    #[error(transparent)]
    Refused(RefusedCertificate),
    /// Any other TLS failure.
    #[error(transparent)]
    Tls(rustls::Error),
}

impl From<HandshakeFailure> for std::io::Error {
    /// An `InvalidData` error whose inner error is the [`RefusedCertificate`] or the
    /// `rustls::Error`, for the handshake's log line to downcast.
    fn from(f: HandshakeFailure) -> std::io::Error {
        match f {
            HandshakeFailure::Refused(r) => std::io::Error::new(std::io::ErrorKind::InvalidData, r),
            HandshakeFailure::Tls(e) => std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }
    }
}

/// A client certificate refused in the handshake: the rustls error (whose alert was sent) and
/// the verifier's account of why, naming the certificate.
#[derive(Debug, thiserror::Error)]
#[error("{detail} ({error})")]
pub struct RefusedCertificate {
    /// What rustls reported (it chose the alert from it).
    pub error: rustls::Error,
    /// Why, with subject, depth and, for revocation, serial and CRL.
    pub detail: String,
}

/// SHA-256 over the generation and the length-prefixed DER of every certificate of a chain.
pub fn chain_key(generation: u64, chain: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&generation.to_be_bytes());
    for c in chain {
        ctx.update(&(c.as_ref().len() as u64).to_be_bytes());
        ctx.update(c.as_ref());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// Entries per core; beyond it the least recently used verdict is dropped.
const CACHE_CAPACITY: usize = 4096;

thread_local! {
    static CACHE: RefCell<VerdictCache> = RefCell::new(VerdictCache::default());
}

/// A bounded LRU of verdicts with expiry (this core's verified-chain cache).
#[derive(Default)]
struct VerdictCache {
    map: HashMap<[u8; 32], (Verdict, i64, u64)>,
    tick: u64,
    hits: u64,
    misses: u64,
}

impl VerdictCache {
    fn get(&mut self, key: &[u8; 32], now: i64) -> Option<Verdict> {
        self.tick += 1;
        let tick = self.tick;
        match self.map.get_mut(key) {
            Some((outcome, expires, used)) if *expires > now => {
                *used = tick;
                self.hits += 1;
                Some(outcome.clone())
            }
            Some(_) => {
                self.map.remove(key);
                self.misses += 1;
                None
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    fn insert(&mut self, key: [u8; 32], outcome: Verdict, expires: i64) {
        if self.map.len() >= CACHE_CAPACITY {
            // Evict the least recently used eighth in one pass, so eviction is amortized.
            let mut ages: Vec<u64> = self.map.values().map(|(_, _, used)| *used).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 8];
            self.map.retain(|_, (_, _, used)| *used > cutoff);
        }
        self.tick += 1;
        self.map.insert(key, (outcome, expires, self.tick));
    }
}

/// This core's cache hits and misses, for metrics.
pub fn cache_stats() -> (u64, u64) {
    CACHE.with(|c| {
        let c = c.borrow();
        (c.hits, c.misses)
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn run_verifying_attaches_the_account_of_its_own_call_only() {
        let refused = run_verifying::<()>(|| {
            record_refusal("certificate has expired".into());
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            ))
        });
        match refused {
            Err(HandshakeFailure::Refused(r)) => assert_eq!(r.detail, "certificate has expired"),
            other => panic!("expected a refusal with its account, got {other:?}"),
        }
        // An account left by a call that succeeded is not carried into the next one.
        assert!(run_verifying(|| {
            record_refusal("stale".into());
            Ok(())
        })
        .is_ok());
        let plain = run_verifying::<()>(|| Err(rustls::Error::DecryptError));
        assert!(matches!(
            plain,
            Err(HandshakeFailure::Tls(rustls::Error::DecryptError))
        ));
        let io: std::io::Error = run_verifying::<()>(|| {
            record_refusal("revoked".into());
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ))
        })
        .unwrap_err()
        .into();
        let inner = io
            .get_ref()
            .and_then(|e| e.downcast_ref::<RefusedCertificate>());
        assert_eq!(inner.map(|r| r.detail.as_str()), Some("revoked"));
    }

    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

    struct Pki {
        store: Arc<TrustStore>,
        ca: Issuer<'static, KeyPair>,
    }

    fn pki() -> Pki {
        static N: AtomicU64 = AtomicU64::new(0);
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(
            DnType::CommonName,
            format!("test CA {}", N.fetch_add(1, Ordering::Relaxed)),
        );
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = p.self_signed(&ca_key).unwrap();
        let store = Arc::new(TrustStore::from_der(vec![ca_cert.der().clone()]).unwrap());
        Pki {
            store,
            ca: Issuer::new(p, ca_key),
        }
    }

    fn client(pki: &Pki, days_offset: i64) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "client1");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(days_offset - 30);
        p.not_after = now + time::Duration::days(days_offset);
        p.signed_by(&key, &pki.ca).unwrap().der().clone()
    }

    #[test]
    fn nginx_values_per_outcome() {
        let p = pki();
        let auth = ClientAuth::new(
            ClientAuthMode::On,
            FailureMode::Http,
            Some(p.store.clone()),
            1,
            Vec::new(),
        )
        .unwrap();
        let now = UnixTime::now();
        assert_eq!(auth.outcome(&[], now).nginx_value(), "NONE");
        assert_eq!(
            auth.outcome(&[client(&p, 30)], now).nginx_value(),
            "SUCCESS"
        );
        assert_eq!(
            auth.outcome(&[client(&p, -1)], now).nginx_value(),
            "FAILED:certificate has expired"
        );
        let other = pki();
        assert_eq!(
            auth.outcome(&[client(&other, 30)], now).nginx_value(),
            // What nginx reports for a lone leaf from an unknown CA (measured against nginx).
            "FAILED:unable to verify the first certificate"
        );
    }

    #[test]
    fn alert_mode_refuses_with_the_reason_and_http_mode_lets_through() {
        let p = pki();
        let expired = client(&p, -1);
        let now = UnixTime::now();
        let alert = ClientAuth::new(
            ClientAuthMode::On,
            FailureMode::Alert,
            Some(p.store.clone()),
            1,
            Vec::new(),
        )
        .unwrap();
        assert!(alert.client_auth_mandatory());
        assert!(matches!(
            alert.verify_client_cert(&expired, &[], now),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired
            ))
        ));
        let http = ClientAuth::new(
            ClientAuthMode::On,
            FailureMode::Http,
            Some(p.store.clone()),
            1,
            Vec::new(),
        )
        .unwrap();
        assert!(!http.client_auth_mandatory());
        assert!(http.verify_client_cert(&expired, &[], now).is_ok());
    }

    #[test]
    fn optional_no_ca_tolerates_unknown_issuers_only() {
        let p = pki();
        let other = pki();
        let now = UnixTime::now();
        let auth = ClientAuth::new(
            ClientAuthMode::OptionalNoCa,
            FailureMode::Alert,
            Some(p.store.clone()),
            1,
            Vec::new(),
        )
        .unwrap();
        assert!(!auth.client_auth_mandatory());
        assert!(auth
            .verify_client_cert(&client(&other, 30), &[], now)
            .is_ok());
        assert!(auth.verify_client_cert(&client(&p, -1), &[], now).is_err());
    }

    #[test]
    fn cache_hits_and_generations_are_separate() {
        let p = pki();
        let leaf = client(&p, 30);
        let now = UnixTime::now();
        let a = ClientAuth::new(
            ClientAuthMode::On,
            FailureMode::Alert,
            Some(p.store.clone()),
            1,
            Vec::new(),
        )
        .unwrap();
        let (h0, _) = cache_stats();
        a.outcome(std::slice::from_ref(&leaf), now);
        a.outcome(std::slice::from_ref(&leaf), now);
        let (h1, _) = cache_stats();
        assert_eq!(h1, h0 + 1);
        // A new trust store (a reload) never reuses the old verdict.
        let other = pki();
        let b = ClientAuth::new(
            ClientAuthMode::On,
            FailureMode::Alert,
            Some(other.store.clone()),
            1,
            Vec::new(),
        )
        .unwrap();
        assert!(matches!(
            b.outcome(std::slice::from_ref(&leaf), now),
            ClientVerifyOutcome::Failed(_)
        ));
    }

    #[test]
    fn lru_stays_bounded() {
        let mut c = VerdictCache::default();
        for i in 0..(CACHE_CAPACITY + 10) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_be_bytes());
            c.insert(
                k,
                Verdict {
                    outcome: ClientVerifyOutcome::None,
                    identity: None,
                },
                i64::MAX,
            );
        }
        assert!(c.map.len() <= CACHE_CAPACITY);
    }
}
