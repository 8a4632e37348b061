//! A set of verification keys ([`KeySet`]) from a JWK Set, one JWK, PEM or an HMAC secret, and
//! choosing the keys for a token.
//!
//! Every key is parsed once, when its set is loaded, into one aws-lc-rs verifier per algorithm it may
//! be used with (see [`key`](super::key) for the checks its material must pass). A JWK that cannot be used (unknown `kty`, `use` = `enc`, `key_ops` without
//! `verify`, bad base64, a curve we do not support, or weak material: see below) is skipped with a
//! log line; the rest of the set still loads. Symmetric (`oct`) JWKs are never taken from a JWKS:
//! shared secrets only come from [`KeySet::hmac_secret`].
//!
//! Several keys may share a `kid` (an issuer rotating without renaming): a token naming it is
//! checked against each of them, and the duplicate is logged when the set is loaded.
//!
//! ```
//! use bearer_guard::KeySet;
//!
//! let jwks = r#"{"keys":[
//!   {"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
//!   {"kty":"RSA","use":"enc","kid":"enc-1","n":"AQAB","e":"AQAB"}
//! ]}"#;
//! let keys = KeySet::from_jwks_json(jwks)?;
//! assert_eq!(keys.len(), 1); // the encryption key was skipped
//! assert_eq!(keys.key_ids().collect::<Vec<_>>(), ["k1"]);
//! # Ok::<_, bearer_guard::KeyError>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use super::jwk::parse_jwk;
use super::key::{KeyError, KeyIdentity, VerifyingKey};
use crate::token::{Algorithm, AlgorithmSet, KeyFamily, KeyMaterial, TokenError, Verifier};

/// Most keys read from one JWK Set: issuers publish a handful, and each RSA key costs several
/// parses, so a huge document must not turn into a CPU sink.
const MAX_KEYS: usize = 100;

/// A set of verification keys, parsed and ready: what a static key source holds and what each
/// JWKS fetch produces.
///
/// Whatever the source (JWK, JWK Set, PEM), key material must be usable and sound: RSA keys of
/// 2048 to 8192 bits with an odd modulus and an odd exponent 65537 ≤ e < 2^33 (FIPS 186-5's
/// lower bound; aws-lc verifies nothing with a longer exponent), Ed25519 keys that are the
/// canonical encoding of a point of the prime-order subgroup (small-order keys, under which a
/// signature can be forged, are refused in every encoding), EC points on their curve. A set skips
/// (and logs) a key that fails; a single-key constructor returns [`KeyError::Unusable`].
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    /// Unique per constructed set: tokens verified against one set are re-verified when the
    /// issuer's current set is another one.
    generation: u64,
}

impl Default for KeySet {
    fn default() -> Self {
        KeySet::new(Vec::new())
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.iter()).finish()
    }
}

#[derive(Deserialize)]
struct JwkSetDocument {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Load a JWK Set document. Unusable keys are skipped (and logged); the set may end up empty.
    pub fn from_jwks_json(json: impl AsRef<[u8]>) -> Result<KeySet, KeyError> {
        let document: JwkSetDocument = serde_json::from_slice(json.as_ref())
            .map_err(|err| KeyError::NotAJwkSet(err.to_string()))?;
        if document.keys.len() > MAX_KEYS {
            tracing::warn!(
                keys = document.keys.len(),
                kept = MAX_KEYS,
                "JWK Set holds more keys than any issuer needs: only the first are used"
            );
        }
        let keys = document
            .keys
            .into_iter()
            .take(MAX_KEYS)
            .filter_map(|value| {
                let kid = value
                    .get("kid")
                    .and_then(|kid| kid.as_str())
                    .map(str::to_owned);
                parse_jwk(value)
                    .inspect_err(|reason| {
                        tracing::warn!(kid = kid.as_deref(), %reason, "skipping unusable JWK");
                    })
                    .ok()
            })
            .collect();
        Ok(KeySet::new(keys))
    }

    fn new(keys: Vec<VerifyingKey>) -> KeySet {
        warn_duplicate_kids(&keys);
        static GENERATIONS: AtomicU64 = AtomicU64::new(1);
        KeySet {
            keys,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Load one JWK (public, asymmetric). Unlike a set, an unusable key is an error here.
    pub fn from_jwk_json(json: impl AsRef<[u8]>) -> Result<KeySet, KeyError> {
        let value: serde_json::Value = serde_json::from_slice(json.as_ref())
            .map_err(|_| KeyError::Unusable("not a JSON object"))?;
        Ok(KeySet::new(vec![parse_jwk(value)?]))
    }

    /// An RSA public key in PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    pub fn from_rsa_pem(pem: impl AsRef<[u8]>, kid: Option<&str>) -> Result<KeySet, KeyError> {
        // Size, modulus and exponent are checked with the material, as for a JWK.
        with_pem(DecodingKey::from_rsa_pem(pem.as_ref()), |der| {
            Self::single(kid, KeyFamily::Rsa, None, &KeyMaterial::RsaDer(der))
        })
    }

    /// A P-256 or P-384 public key in PEM (`BEGIN PUBLIC KEY`).
    pub fn from_ec_pem(pem: impl AsRef<[u8]>, kid: Option<&str>) -> Result<KeySet, KeyError> {
        with_pem(DecodingKey::from_ec_pem(pem.as_ref()), |point| {
            let family = match point.len() {
                65 => KeyFamily::EcP256,
                97 => KeyFamily::EcP384,
                _ => {
                    return Err(KeyError::Unusable(
                        "only P-256 and P-384 keys are supported",
                    ));
                }
            };
            Self::single(kid, family, None, &KeyMaterial::Ec(point))
        })
    }

    /// An Ed25519 public key in PEM (`BEGIN PUBLIC KEY`).
    pub fn from_ed_pem(pem: impl AsRef<[u8]>, kid: Option<&str>) -> Result<KeySet, KeyError> {
        with_pem(DecodingKey::from_ed_pem(pem.as_ref()), |raw| {
            Self::single(kid, KeyFamily::Ed25519, None, &KeyMaterial::Ed25519(raw))
        })
    }

    /// A shared HMAC secret (at least 32 bytes) for HS256/HS384/HS512. The issuer must also allow
    /// the HS algorithm explicitly; HS384 and HS512 need secrets of 48 and 64 bytes.
    pub fn hmac_secret(secret: impl AsRef<[u8]>, kid: Option<&str>) -> Result<KeySet, KeyError> {
        let secret = secret.as_ref();
        if secret.len() < 32 {
            return Err(KeyError::WeakSecret);
        }
        Self::single(kid, KeyFamily::Hmac, None, &KeyMaterial::Secret(secret))
    }

    fn single(
        kid: Option<&str>,
        family: KeyFamily,
        only: Option<Algorithm>,
        material: &KeyMaterial<'_>,
    ) -> Result<KeySet, KeyError> {
        let key = VerifyingKey::new(kid.map(str::to_owned), family, only, material)?;
        Ok(KeySet::new(vec![key]))
    }

    /// This set with the keys of `other` added.
    pub fn with(mut self, other: KeySet) -> KeySet {
        self.keys.extend(other.keys);
        KeySet::new(self.keys)
    }

    /// Identifies this set among all sets built in the process.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid` of each key that has one.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|key| key.kid.as_deref())
    }

    /// Whether some key can verify some of `algorithms`.
    pub(crate) fn verifies_any(&self, algorithms: AlgorithmSet) -> bool {
        self.keys
            .iter()
            .any(|key| algorithms.iter().any(|alg| key.verifier(alg).is_some()))
    }

    /// Whether any key is a shared secret.
    pub(crate) fn has_secret(&self) -> bool {
        self.keys.iter().any(|key| key.family == KeyFamily::Hmac)
    }

    /// Whether `other` holds the same keys: the same material under the same `kid`s, for the
    /// same algorithms, in any order. A refetch that brings nothing new keeps the current set
    /// (and its generation), so tokens verified against it need no second check.
    pub(crate) fn same_keys(&self, other: &KeySet) -> bool {
        if self.keys.len() != other.keys.len() {
            return false;
        }
        fn sorted(set: &KeySet) -> Vec<KeyIdentity<'_>> {
            let mut identities: Vec<_> = set.keys.iter().map(VerifyingKey::identity).collect();
            identities.sort_unstable_by(|a, b| (a.0, a.3, &a.2).cmp(&(b.0, b.3, &b.2)));
            identities
        }
        sorted(self) == sorted(other)
    }

    /// The verifiers that may check a token with this `kid` and `alg`.
    ///
    /// With a `kid`: every key with that id whose type (and own `alg`, if any) fits the
    /// algorithm, in set order; [`TokenError::UnknownKey`] if no key has the id,
    /// [`TokenError::KeyMismatch`] if the keys with that id cannot verify this algorithm. Without
    /// a `kid`: the single key that fits, or [`TokenError::AmbiguousKey`] when several do. On
    /// `Ok` there is at least one candidate.
    pub(crate) fn select<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> Result<Candidates<'a>, TokenError> {
        let candidates = Candidates {
            keys: self.keys.iter(),
            kid,
            alg,
        };
        let mut probe = candidates.clone();
        match (kid, probe.next(), probe.next()) {
            (Some(_), Some(_), _) | (None, Some(_), None) => Ok(candidates),
            (None, Some(_), Some(_)) => Err(TokenError::AmbiguousKey),
            (Some(kid), None, _) if self.key_ids().any(|id| id == kid) => {
                Err(TokenError::KeyMismatch)
            }
            (_, None, _) => Err(TokenError::UnknownKey),
        }
    }
}

/// The verifiers [`KeySet::select`] found for a token: try each until one verifies.
#[derive(Clone)]
pub(crate) struct Candidates<'a> {
    keys: std::slice::Iter<'a, VerifyingKey>,
    /// `None`: any key (`select` made sure exactly one fits).
    kid: Option<&'a str>,
    alg: Algorithm,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = &'a Verifier;

    fn next(&mut self) -> Option<&'a Verifier> {
        let (kid, alg) = (self.kid, self.alg);
        self.keys.find_map(|key| {
            if kid.is_some_and(|kid| key.kid.as_deref() != Some(kid)) {
                return None;
            }
            key.verifier(alg)
        })
    }
}

/// The key bytes of a PEM document `jsonwebtoken` decoded, handed to `load`.
fn with_pem<T>(
    decoded: Result<DecodingKey, jsonwebtoken::errors::Error>,
    load: impl FnOnce(&[u8]) -> Result<T, KeyError>,
) -> Result<T, KeyError> {
    let decoded = decoded.map_err(|_| KeyError::InvalidPem)?;
    load(
        decoded
            .try_get_as_bytes()
            .map_err(|_| KeyError::InvalidPem)?,
    )
}

/// Several keys under one `kid` all stay in use (each is tried); say so once, at load, since it
/// usually means a rotation that forgot to rename the new key.
fn warn_duplicate_kids(keys: &[VerifyingKey]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for kid in keys.iter().filter_map(|key| key.kid.as_deref()) {
        *counts.entry(kid).or_default() += 1;
    }
    for (kid, count) in counts.into_iter().filter(|(_, count)| *count > 1) {
        tracing::warn!(
            kid,
            keys = count,
            "several keys share one kid: tokens naming it are checked against each"
        );
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    use serde_json::json;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn ed25519_jwk(kid: &str) -> serde_json::Value {
        let pair = Ed25519KeyPair::generate().expect("key");
        json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pair.public_key().as_ref())})
    }

    fn set(keys: &[&serde_json::Value]) -> KeySet {
        KeySet::from_jwks_json(json!({ "keys": keys }).to_string()).expect("a JWK Set")
    }

    #[test]
    fn key_sets_are_the_same_when_kids_material_and_algorithms_are() {
        let (a, b) = (ed25519_jwk("a"), ed25519_jwk("b"));
        let rsa = {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("key");
            let public = pair.public_key();
            json!({
                "kty": "RSA", "kid": "r",
                "n": b64(public.modulus().big_endian_without_leading_zero()),
                "e": b64(public.exponent().big_endian_without_leading_zero()),
            })
        };
        let current = set(&[&a, &b, &rsa]);
        // Same keys, in another order, with members that change nothing (`use`, a family's only
        // algorithm): the same set.
        let mut b_annotated = b.clone();
        b_annotated["use"] = "sig".into();
        b_annotated["alg"] = "EdDSA".into();
        assert!(current.same_keys(&set(&[&rsa, &b_annotated, &a])));

        let renamed = {
            let mut renamed = b.clone();
            renamed["kid"] = "c".into();
            renamed
        };
        let restricted = {
            let mut restricted = rsa.clone();
            restricted["alg"] = "PS256".into();
            restricted
        };
        let replaced = ed25519_jwk("b");
        for (change, other) in [
            ("a key fewer", set(&[&a, &rsa])),
            ("a kid renamed", set(&[&a, &renamed, &rsa])),
            (
                "an RSA key restricted to PS256",
                set(&[&a, &b, &restricted]),
            ),
            (
                "other material under the same kid",
                set(&[&a, &replaced, &rsa]),
            ),
            ("a key twice", set(&[&a, &b, &rsa, &a])),
        ] {
            assert!(!current.same_keys(&other), "{change}");
        }
    }

    #[test]
    fn candidates_are_every_key_with_the_kid_that_fits_the_algorithm() {
        let (first, second, other) = (ed25519_jwk("k"), ed25519_jwk("k"), ed25519_jwk("o"));
        let keys = set(&[&first, &other, &second]);
        assert_eq!(
            keys.select(Some("k"), Algorithm::EdDSA)
                .map(Iterator::count),
            Ok(2)
        );
        assert_eq!(
            keys.select(Some("o"), Algorithm::EdDSA)
                .map(Iterator::count),
            Ok(1)
        );
        assert_eq!(
            keys.select(Some("k"), Algorithm::ES256).err(),
            Some(TokenError::KeyMismatch)
        );
        assert_eq!(
            keys.select(Some("x"), Algorithm::EdDSA).err(),
            Some(TokenError::UnknownKey)
        );
        assert_eq!(
            keys.select(None, Algorithm::EdDSA).err(),
            Some(TokenError::AmbiguousKey)
        );
        let single = set(&[&other]);
        assert_eq!(
            single.select(None, Algorithm::EdDSA).map(Iterator::count),
            Ok(1)
        );
        assert_eq!(
            single.select(None, Algorithm::ES256).err(),
            Some(TokenError::UnknownKey)
        );
    }
}
