//! PKCS#12 (`.p12`/`.pfx`) files for browsers, written the way `openssl pkcs12 -export` of
//! OpenSSL 3 writes them: certificates in a PBES2-encrypted bag, the key in a PBES2-shrouded
//! key bag (PBKDF2-HMAC-SHA256, AES-256-CBC, 2048 iterations), and an HMAC-SHA256 MAC over
//! the whole with the PKCS#12 key derivation. Built from aws-lc-rs primitives and yasna DER,
//! both already in the build, instead of a crate tree of its own.

use aws_lc_rs::{cipher, digest, hmac, pbkdf2, rand};
use yasna::models::ObjectIdentifier;
use yasna::Tag;

/// Iterations for PBKDF2 and the MAC key derivation (OpenSSL 3's default).
const ITERATIONS: u32 = 2048;

/// Why a PKCS#12 file could not be made.
#[derive(Debug, thiserror::Error)]
pub enum P12Error {
    /// The random generator or a cipher failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// The password is empty (browsers and OpenSSL handle empty passwords inconsistently).
    #[error("an export password is required")]
    EmptyPassword,
}

fn oid(parts: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(parts)
}

const DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 1];
const ENCRYPTED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 6];
const CERT_BAG: &[u64] = &[1, 2, 840, 113_549, 1, 12, 10, 1, 3];
const SHROUDED_KEY_BAG: &[u64] = &[1, 2, 840, 113_549, 1, 12, 10, 1, 2];
const X509_CERTIFICATE: &[u64] = &[1, 2, 840, 113_549, 1, 9, 22, 1];
const LOCAL_KEY_ID: &[u64] = &[1, 2, 840, 113_549, 1, 9, 21];
const FRIENDLY_NAME: &[u64] = &[1, 2, 840, 113_549, 1, 9, 20];
const PBES2: &[u64] = &[1, 2, 840, 113_549, 1, 5, 13];
const PBKDF2: &[u64] = &[1, 2, 840, 113_549, 1, 5, 12];
const HMAC_SHA256: &[u64] = &[1, 2, 840, 113_549, 2, 9];
const AES_256_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 42];
const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];

fn random<const N: usize>() -> Result<[u8; N], P12Error> {
    let mut b = [0u8; N];
    rand::fill(&mut b).map_err(|_| P12Error::Crypto("random"))?;
    Ok(b)
}

/// Encrypts `plain` with PBES2 (PBKDF2-HMAC-SHA256 + AES-256-CBC); returns the
/// AlgorithmIdentifier DER and the ciphertext.
fn pbes2(password: &str, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), P12Error> {
    let salt: [u8; 8] = random()?;
    let iv: [u8; 16] = random()?;
    let mut key = [0u8; 32];
    let iterations = std::num::NonZeroU32::new(ITERATIONS).ok_or(P12Error::Crypto("iterations"))?;
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &mut key,
    );
    let unbound = cipher::UnboundCipherKey::new(&cipher::AES_256, &key)
        .map_err(|_| P12Error::Crypto("AES key"))?;
    let enc = cipher::PaddedBlockEncryptingKey::cbc_pkcs7(unbound)
        .map_err(|_| P12Error::Crypto("AES-CBC"))?;
    let mut data = plain.to_vec();
    enc.less_safe_encrypt(
        &mut data,
        cipher::EncryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from(iv)),
    )
    .map_err(|_| P12Error::Crypto("AES-CBC encryption"))?;
    let alg = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&oid(PBES2));
            w.next().write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(PBKDF2));
                    w.next().write_sequence(|w| {
                        w.next().write_bytes(&salt);
                        w.next().write_u32(ITERATIONS);
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(HMAC_SHA256));
                            w.next().write_null();
                        });
                    });
                });
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(AES_256_CBC));
                    w.next().write_bytes(&iv);
                });
            });
        })
    });
    Ok((alg, data))
}

/// RFC 7292 appendix B.2 key derivation with SHA-256 (v = 64, u = 32), one output block.
fn pkcs12_kdf(password: &str, salt: &[u8], id: u8, iterations: u32) -> [u8; 32] {
    const V: usize = 64;
    let mut bmp: Vec<u8> = password
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect();
    bmp.extend_from_slice(&[0, 0]);
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = V * src.len().div_ceil(V);
        src.iter().copied().cycle().take(len).collect()
    };
    let mut input = vec![id; V];
    input.extend(fill(salt));
    input.extend(fill(&bmp));
    let mut a = digest::digest(&digest::SHA256, &input);
    for _ in 1..iterations {
        a = digest::digest(&digest::SHA256, a.as_ref());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(a.as_ref());
    out
}

fn attributes(w: yasna::DERWriter<'_>, key_id: &[u8], name: &str) {
    w.write_set(|w| {
        w.next().write_sequence(|w| {
            w.next().write_oid(&oid(LOCAL_KEY_ID));
            w.next().write_set(|w| w.next().write_bytes(key_id));
        });
        if !name.is_empty() {
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(FRIENDLY_NAME));
                w.next().write_set(|w| w.next().write_bmp_string(name));
            });
        }
    });
}

/// Builds a PKCS#12 file holding `pkcs8_key` (PKCS#8 DER), its certificate `cert` (DER) and
/// the `chain` certificates above it, protected by `password`; `name` becomes the friendly
/// name browsers show.
pub fn build(
    pkcs8_key: &[u8],
    cert: &[u8],
    chain: &[Vec<u8>],
    name: &str,
    password: &str,
) -> Result<Vec<u8>, P12Error> {
    if password.is_empty() {
        return Err(P12Error::EmptyPassword);
    }
    // localKeyID ties the key to its certificate: the certificate's SHA-1, as OpenSSL does.
    let key_id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, cert)
        .as_ref()
        .to_vec();
    let cert_bags = cert_bags(cert, chain, &key_id, name);
    let (cert_alg, cert_enc) = pbes2(password, &cert_bags)?;
    let (key_alg, key_enc) = pbes2(password, pkcs8_key)?;
    let key_bags = key_bags(&key_alg, &key_enc, &key_id, name);
    let auth_safe = auth_safe(&cert_alg, &cert_enc, &key_bags);
    let mac_salt: [u8; 8] = random()?;
    let mac_key = pkcs12_kdf(password, &mac_salt, 3, ITERATIONS);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key), &auth_safe);
    Ok(pfx(&auth_safe, tag.as_ref(), &mac_salt))
}

/// The certificate bags: `cert` (with the key's attributes) then `chain`.
fn cert_bags(cert: &[u8], chain: &[Vec<u8>], key_id: &[u8], name: &str) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (i, c) in std::iter::once(cert)
                .chain(chain.iter().map(Vec::as_slice))
                .enumerate()
            {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(CERT_BAG));
                    w.next().write_tagged(Tag::context(0), |w| {
                        w.write_sequence(|w| {
                            w.next().write_oid(&oid(X509_CERTIFICATE));
                            w.next().write_tagged(Tag::context(0), |w| w.write_bytes(c));
                        })
                    });
                    if i == 0 {
                        attributes(w.next(), key_id, name);
                    }
                });
            }
        })
    })
}

/// The key bag: the encrypted key (`key_alg`, `key_enc`) with its attributes.
fn key_bags(key_alg: &[u8], key_enc: &[u8], key_id: &[u8], name: &str) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(SHROUDED_KEY_BAG));
                w.next().write_tagged(Tag::context(0), |w| {
                    w.write_sequence(|w| {
                        w.next().write_der(key_alg);
                        w.next().write_bytes(key_enc);
                    })
                });
                attributes(w.next(), key_id, name);
            });
        })
    })
}

/// The authenticated safe: the encrypted certificate bags, then the key bags as data.
fn auth_safe(cert_alg: &[u8], cert_enc: &[u8], key_bags: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(ENCRYPTED_DATA));
                w.next().write_tagged(Tag::context(0), |w| {
                    w.write_sequence(|w| {
                        w.next().write_u32(0);
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(DATA));
                            w.next().write_der(cert_alg);
                            w.next().write_tagged_implicit(Tag::context(0), |w| {
                                w.write_bytes(cert_enc)
                            });
                        });
                    })
                });
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(DATA));
                w.next()
                    .write_tagged(Tag::context(0), |w| w.write_bytes(key_bags));
            });
        })
    })
}

/// The PFX: version 3, the authenticated safe, and its HMAC-SHA256 `tag` with `mac_salt`.
fn pfx(auth_safe: &[u8], tag: &[u8], mac_salt: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u32(3);
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(DATA));
                w.next()
                    .write_tagged(Tag::context(0), |w| w.write_bytes(auth_safe));
            });
            w.next().write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(SHA256));
                        w.next().write_null();
                    });
                    w.next().write_bytes(tag);
                });
                w.next().write_bytes(mac_salt);
                w.next().write_u32(ITERATIONS);
            });
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7292 B.2 with SHA-256 for one output block, recomputed by hand (the files
    /// themselves are checked with `openssl pkcs12` in the integration tests).
    #[test]
    fn kdf_matches_a_hand_computation() {
        let salt = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let k = pkcs12_kdf("ChangeMe123", &salt, 3, 1);
        // D (64 x 0x03) || S (salt repeated to 64) || P (BMP password + 00 00 repeated to 64).
        let mut input = vec![3u8; 64];
        input.extend(salt.iter().copied().cycle().take(64));
        let bmp: Vec<u8> = "ChangeMe123\0"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        input.extend(bmp.iter().copied().cycle().take(64));
        assert_eq!(&k[..], digest::digest(&digest::SHA256, &input).as_ref());
        let k2 = pkcs12_kdf("ChangeMe123", &salt, 3, 2);
        assert_eq!(&k2[..], digest::digest(&digest::SHA256, &k).as_ref());
    }

    #[test]
    fn empty_password_is_refused() {
        assert!(matches!(
            build(b"k", b"c", &[], "n", ""),
            Err(P12Error::EmptyPassword)
        ));
    }
}
