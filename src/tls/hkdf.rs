//! The TLS 1.3 key schedule's HKDF, over aws-lc-rs's HMAC with every extracted key kept keyed.
//!
//! rustls's aws-lc-rs provider hands HKDF to aws-lc-rs, whose extracted key (`Prk`) keeps the
//! salt and the input and runs HKDF-Extract again on every expansion, and keys a fresh HMAC
//! for each: a full mTLS handshake spent about a tenth of its instructions there (60 HMACs,
//! 1,880 of 4,700 expansions extracting again; `bench/instructions.sh`, `MODES=hs`). HKDF is
//! two lines over HMAC (RFC 5869), which rustls provides as [`HkdfUsingHmac`]: extract once,
//! keep the HMAC keyed with the result, expand from it. The TLS 1.3 suites of the provider
//! ringgate builds ([`provider`]) use it; everything else is aws-lc-rs's as before.

use std::sync::LazyLock;

use rustls::crypto::hash::HashAlgorithm;
use rustls::crypto::hmac::{Hmac, Key, Tag};
use rustls::crypto::tls13::{Hkdf, HkdfUsingHmac};
use rustls::crypto::{CipherSuiteCommon, CryptoProvider};
use rustls::{SupportedCipherSuite, Tls13CipherSuite};

/// aws-lc-rs's HMAC with one hash, as rustls's [`Hmac`].
struct AwsLcHmac(aws_lc_rs::hmac::Algorithm);

/// An HMAC keyed once (aws-lc-rs keeps the inner and outer pads computed).
struct KeyedHmac(aws_lc_rs::hmac::Key);

impl Hmac for AwsLcHmac {
    fn with_key(&self, key: &[u8]) -> Box<dyn Key> {
        Box::new(KeyedHmac(aws_lc_rs::hmac::Key::new(self.0, key)))
    }

    fn hash_output_len(&self) -> usize {
        self.0.digest_algorithm().output_len()
    }
}

impl Key for KeyedHmac {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.0);
        ctx.update(first);
        for part in middle {
            ctx.update(part);
        }
        ctx.update(last);
        Tag::new(ctx.sign().as_ref())
    }

    fn tag_len(&self) -> usize {
        self.0.algorithm().digest_algorithm().output_len()
    }
}

static HMAC_SHA256: AwsLcHmac = AwsLcHmac(aws_lc_rs::hmac::HMAC_SHA256);
static HMAC_SHA384: AwsLcHmac = AwsLcHmac(aws_lc_rs::hmac::HMAC_SHA384);
static HKDF_SHA256: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA256);
static HKDF_SHA384: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA384);

/// The provider's cipher suites, its TLS 1.3 ones on this HKDF: made once per process (a
/// cipher suite is a `'static` description).
static SUITES: LazyLock<Vec<SupportedCipherSuite>> = LazyLock::new(|| {
    rustls::crypto::aws_lc_rs::default_provider()
        .cipher_suites
        .into_iter()
        .map(|suite| match suite {
            SupportedCipherSuite::Tls13(t) => match hkdf_for(t.common.hash_provider.algorithm()) {
                Some(hkdf) => SupportedCipherSuite::Tls13(Box::leak(Box::new(with_hkdf(t, hkdf)))),
                None => suite,
            },
            other => other,
        })
        .collect()
});

fn hkdf_for(hash: HashAlgorithm) -> Option<&'static dyn Hkdf> {
    match hash {
        HashAlgorithm::SHA256 => Some(&HKDF_SHA256),
        HashAlgorithm::SHA384 => Some(&HKDF_SHA384),
        _ => None,
    }
}

/// `suite` with `hkdf` for its key schedule.
fn with_hkdf(suite: &Tls13CipherSuite, hkdf: &'static dyn Hkdf) -> Tls13CipherSuite {
    Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: suite.common.suite,
            hash_provider: suite.common.hash_provider,
            confidentiality_limit: suite.common.confidentiality_limit,
        },
        hkdf_provider: hkdf,
        aead_alg: suite.aead_alg,
        quic: suite.quic,
    }
}

/// aws-lc-rs's default provider, its TLS 1.3 suites keying their HKDF once per secret: what
/// every server and upstream configuration is built on.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: SUITES.clone(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::tls13::OkmBlock;

    fn aws_lc_hkdf(hash: HashAlgorithm) -> &'static dyn Hkdf {
        rustls::crypto::aws_lc_rs::default_provider()
            .cipher_suites
            .into_iter()
            .find_map(|s| match s {
                SupportedCipherSuite::Tls13(t) if t.common.hash_provider.algorithm() == hash => {
                    Some(t.hkdf_provider)
                }
                _ => None,
            })
            .expect("a TLS 1.3 suite with the hash")
    }

    #[test]
    fn rfc5869_test_case_1() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let mut okm = [0u8; 42];
        HKDF_SHA256
            .extract_from_secret(Some(&salt), &ikm)
            .expand_slice(&[&info], &mut okm)
            .expect("42 bytes");
        let want =
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
        let got: String = okm.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn every_operation_matches_aws_lc_rs_for_both_hashes() {
        for (hash, ours) in [
            (HashAlgorithm::SHA256, &HKDF_SHA256 as &dyn Hkdf),
            (HashAlgorithm::SHA384, &HKDF_SHA384 as &dyn Hkdf),
        ] {
            let theirs = aws_lc_hkdf(hash);
            let secret = [7u8; 48];
            let info: [&[u8]; 3] = [b"tls13 ", b"c hs traffic", &[1, 2, 3]];
            for salt in [None, Some(&b"a salt"[..])] {
                let a = ours.extract_from_secret(salt, &secret).expand_block(&info);
                let b = theirs
                    .extract_from_secret(salt, &secret)
                    .expand_block(&info);
                assert_eq!(a.as_ref(), b.as_ref(), "{hash:?} extract+expand");
                let a = ours.extract_from_zero_ikm(salt).expand_block(&info);
                let b = theirs.extract_from_zero_ikm(salt).expand_block(&info);
                assert_eq!(a.as_ref(), b.as_ref(), "{hash:?} zero ikm");
            }
            let okm = OkmBlock::new(&secret[..ours.extract_from_zero_ikm(None).hash_len()]);
            let (mut a, mut b) = ([0u8; 100], [0u8; 100]);
            ours.expander_for_okm(&okm)
                .expand_slice(&info, &mut a)
                .expect("100 bytes");
            theirs
                .expander_for_okm(&okm)
                .expand_slice(&info, &mut b)
                .expect("100 bytes");
            assert_eq!(a, b, "{hash:?} expand_slice");
            assert_eq!(
                ours.hmac_sign(&okm, b"finished").as_ref(),
                theirs.hmac_sign(&okm, b"finished").as_ref(),
                "{hash:?} hmac"
            );
        }
    }

    #[test]
    fn the_provider_keeps_aws_lc_rs_suites_in_order() {
        let ours: Vec<_> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        let theirs: Vec<_> = rustls::crypto::aws_lc_rs::default_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(ours, theirs);
        let keyed = provider()
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
            .count();
        assert!(keyed >= 2, "TLS 1.3 suites: {keyed}");
    }
}
