//! One verification key: its material checked and parsed once into an aws-lc-rs verifier per
//! algorithm it may serve.
//!
//! Key material is checked before aws-lc-rs sees it, the same way whether it comes from a JWK, a
//! JWK Set or PEM, since aws-lc takes some keys under which signatures mean nothing:
//!
//! - **Ed25519**: the 32 bytes must be the canonical encoding (y < p, no sign bit on x = 0) of a
//!   point of the prime-order subgroup. Under a small-order key such as the identity (`01 00…00`),
//!   aws-lc verifies the signature R = identity, S = 0 for every message; a point with a torsion
//!   component is no key any signer holds. Keys made by a real signer always pass.
//! - **RSA**: an odd modulus of 2048 to 8192 bits (the verification parameter sets accept no
//!   other size) and an odd exponent e with 65537 ≤ e < 2^33. The lower bound and the oddness are
//!   FIPS 186-5's (§5.4); FIPS allows e up to 2^256, but aws-lc refuses exponents over 33 bits at
//!   verification time (a DoS limit), so such a key could never verify a token.
//! - **EC**: aws-lc-rs refuses points that are not on the curve (or not of the curve's size).

use std::fmt;

use aws_lc_rs::digest;
use curve25519_dalek::edwards::CompressedEdwardsY;

use crate::token::{Algorithm, KeyFamily, KeyMaterial, Verifier};

/// Smallest RSA modulus accepted (RFC 7518 §3.3, RFC 8725 §3.5).
const MIN_RSA_BITS: usize = 2048;

/// Largest RSA modulus accepted: the `2048_8192` parameter sets refuse anything longer at
/// verification time, so a longer key could never verify a token.
const MAX_RSA_BITS: usize = 8192;

/// Smallest RSA public exponent accepted, 2^16 + 1 (FIPS 186-5 §5.4).
const MIN_RSA_EXPONENT: [u8; 3] = [0x01, 0x00, 0x01];

/// Longest RSA public exponent accepted, in bits: aws-lc refuses longer ones when verifying.
const MAX_RSA_EXPONENT_BITS: usize = 33;

/// Why keys could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The document is not a JWK Set (`{"keys": [...]}`).
    #[error("not a JWK Set: {0}")]
    NotAJwkSet(String),
    /// A single key could not be used.
    #[error("unusable key: {0}")]
    Unusable(&'static str),
    /// A PEM document could not be parsed as the named key type.
    #[error("invalid PEM public key")]
    InvalidPem,
    /// An HMAC secret shorter than 32 bytes (RFC 7518 §3.2).
    #[error("HMAC secret must be at least 32 bytes")]
    WeakSecret,
}

/// A key's `kid`, family, algorithms and fingerprint.
pub(super) type KeyIdentity<'a> = (Option<&'a str>, KeyFamily, Vec<Algorithm>, [u8; 32]);

/// One key and the verifiers it may be used with.
pub(super) struct VerifyingKey {
    pub(super) kid: Option<Box<str>>,
    pub(super) family: KeyFamily,
    verifiers: Vec<(Algorithm, Verifier)>,
    /// SHA-256 of the key's material in one canonical form, so that a refetched set can be told
    /// identical to the current one without keeping a second copy of every key.
    fingerprint: [u8; 32],
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field(
                "algorithms",
                &self
                    .verifiers
                    .iter()
                    .map(|(alg, _)| *alg)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl VerifyingKey {
    /// Parse `material` once per algorithm the key may serve: every algorithm of its family, or
    /// only the JWK's own `alg` when it names one.
    pub(super) fn new(
        kid: Option<String>,
        family: KeyFamily,
        only: Option<Algorithm>,
        material: &KeyMaterial<'_>,
    ) -> Result<Self, KeyError> {
        let fingerprint = check_material(material)?;
        let verifiers: Vec<_> = Algorithm::ALL
            .into_iter()
            .filter(|alg| alg.key_family() == family && only.is_none_or(|only| only == *alg))
            .filter_map(|alg| Verifier::new(alg, material).map(|verifier| (alg, verifier)))
            .collect();
        if verifiers.is_empty() {
            return Err(KeyError::Unusable("key material is invalid for its type"));
        }
        Ok(VerifyingKey {
            kid: kid.map(String::into_boxed_str),
            family,
            verifiers,
            fingerprint,
        })
    }

    /// What the key is and may do, without its verifiers: equal for the same key published
    /// again with the same `kid` and restrictions.
    pub(super) fn identity(&self) -> KeyIdentity<'_> {
        (
            self.kid.as_deref(),
            self.family,
            self.verifiers.iter().map(|(alg, _)| *alg).collect(),
            self.fingerprint,
        )
    }

    pub(super) fn verifier(&self, alg: Algorithm) -> Option<&Verifier> {
        self.verifiers
            .iter()
            .find_map(|(candidate, verifier)| (*candidate == alg).then_some(verifier))
    }
}

/// Refuse material that aws-lc-rs would take but that is weak, forgeable or can never verify,
/// whichever way it was loaded; the fingerprint of what passes.
fn check_material(material: &KeyMaterial<'_>) -> Result<[u8; 32], KeyError> {
    let mut fingerprint = digest::Context::new(&digest::SHA256);
    match material {
        KeyMaterial::RsaComponents { n, e } => {
            check_rsa(n, e)?;
            rsa_fingerprint(&mut fingerprint, n, e);
        }
        KeyMaterial::RsaDer(der) => {
            // PKCS#1 `RSAPublicKey` or SubjectPublicKeyInfo, from a PEM: read n and e to check
            // them as a JWK's would be.
            let public =
                aws_lc_rs::rsa::PublicKey::from_der(der).map_err(|_| KeyError::InvalidPem)?;
            let (n, e) = (public.modulus(), public.exponent());
            let (n, e) = (
                n.big_endian_without_leading_zero(),
                e.big_endian_without_leading_zero(),
            );
            check_rsa(n, e)?;
            rsa_fingerprint(&mut fingerprint, n, e);
        }
        KeyMaterial::Ed25519(x) => {
            check_ed25519(x)?;
            fingerprint.update(b"Ed25519");
            fingerprint.update(x);
        }
        KeyMaterial::Ec(point) => {
            // On the curve and of the right size: aws-lc-rs checks both when it parses the point.
            fingerprint.update(b"EC");
            fingerprint.update(point);
        }
        KeyMaterial::Secret(secret) => {
            fingerprint.update(b"HMAC");
            fingerprint.update(secret);
        }
    }
    let mut out = [0; 32];
    out.copy_from_slice(fingerprint.finish().as_ref());
    Ok(out)
}

fn rsa_fingerprint(fingerprint: &mut digest::Context, n: &[u8], e: &[u8]) {
    fingerprint.update(b"RSA");
    // Length-prefixed, so that no (n, e) pair reads as another.
    fingerprint.update(&(n.len() as u64).to_be_bytes());
    fingerprint.update(n);
    fingerprint.update(e);
}

/// `n` and `e` big-endian without leading zeros: an odd modulus of 2048 to 8192 bits, an odd
/// exponent with 65537 ≤ e < 2^33 (see the module docs for why these bounds).
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), KeyError> {
    let bits = bit_length(n);
    if bits < MIN_RSA_BITS {
        return Err(KeyError::Unusable("RSA key is shorter than 2048 bits"));
    }
    if bits > MAX_RSA_BITS {
        return Err(KeyError::Unusable("RSA key is longer than 8192 bits"));
    }
    if n.last().is_none_or(|low| low & 1 == 0) {
        // A product of two odd primes is odd; an even modulus is no RSA key.
        return Err(KeyError::Unusable("RSA modulus is even"));
    }
    let odd = e.last().is_some_and(|low| low & 1 == 1);
    let large_enough = e.len() > MIN_RSA_EXPONENT.len()
        || (e.len() == MIN_RSA_EXPONENT.len() && e >= &MIN_RSA_EXPONENT[..]);
    if !odd || !large_enough || bit_length(e) > MAX_RSA_EXPONENT_BITS {
        return Err(KeyError::Unusable(
            "RSA exponent must be odd, at least 65537 and below 2^33",
        ));
    }
    Ok(())
}

/// A public key of the prime-order subgroup, in its one canonical encoding. aws-lc takes any of
/// the 8 small-order points (in any encoding) and points with a torsion component; under the
/// identity, R = identity with S = 0 verifies for every message.
fn check_ed25519(x: &[u8]) -> Result<(), KeyError> {
    let bytes: [u8; 32] = x
        .try_into()
        .map_err(|_| KeyError::Unusable("Ed25519 key is not 32 bytes"))?;
    let point = CompressedEdwardsY(bytes)
        .decompress()
        .ok_or(KeyError::Unusable("Ed25519 key is not a curve point"))?;
    // y ≥ p, or the sign bit set on x = 0, decode to a point whose own encoding differs.
    if point.compress().to_bytes() != bytes {
        return Err(KeyError::Unusable("Ed25519 key is not canonically encoded"));
    }
    if point.is_small_order() {
        return Err(KeyError::Unusable("Ed25519 key has small order"));
    }
    if !point.is_torsion_free() {
        return Err(KeyError::Unusable("Ed25519 key has a torsion component"));
    }
    Ok(())
}

/// Bits of a big-endian number without leading zero bytes.
fn bit_length(number: &[u8]) -> usize {
    match number.first() {
        Some(top) => (number.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _};

    use super::*;

    /// Why `check_ed25519` exists: aws-lc alone takes the identity point as a key, and under it the
    /// signature R = identity, S = 0 verifies every message. Should a later aws-lc refuse it,
    /// this test fails: keep the check all the same and turn this assertion around.
    #[test]
    fn aws_lc_alone_accepts_the_identity_key_forgery() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let key = signature::UnparsedPublicKey::new(&signature::ED25519, identity);
        for message in [&b"eyJhbGciOiJFZERTQSJ9.e30"[..], b"any message at all", b""] {
            assert!(key.verify(message, &forged).is_ok());
        }
        assert_eq!(
            check_ed25519(&identity),
            Err(KeyError::Unusable("Ed25519 key has small order"))
        );
    }

    #[test]
    fn real_ed25519_keys_pass_the_point_checks() {
        for _ in 0..64 {
            let pair = Ed25519KeyPair::generate().expect("key");
            assert_eq!(check_ed25519(pair.public_key().as_ref()), Ok(()));
        }
    }
}
