//! JWK and PEM → verification keys, and choosing the key for a token.
//!
//! Every key is parsed once, when its set is loaded, into one aws-lc-rs verifier per algorithm it may
//! be used with. A JWK that cannot be used (unknown `kty`, `use` = `enc`, `key_ops` without
//! `verify`, bad base64, a curve we do not support, or weak material: see below) is skipped with a
//! log line; the rest of the set still loads. Symmetric (`oct`) JWKs are never taken from a JWKS:
//! shared secrets only come from [`KeySet::hmac_secret`].
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

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use curve25519_dalek::edwards::CompressedEdwardsY;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use serde::Deserialize;

use crate::token::{Algorithm, AlgorithmSet, KeyFamily, KeyMaterial, TokenError, Verifier};

/// Most keys read from one JWK Set: issuers publish a handful, and each RSA key costs several
/// parses, so a huge document must not turn into a CPU sink.
const MAX_KEYS: usize = 100;

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

/// A key's `kid`, family, algorithms and fingerprint.
type KeyIdentity<'a> = (Option<&'a str>, KeyFamily, Vec<Algorithm>, [u8; 32]);

/// One key and the verifiers it may be used with.
struct VerifyingKey {
    kid: Option<Box<str>>,
    family: KeyFamily,
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
    fn new(
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
    fn identity(&self) -> KeyIdentity<'_> {
        (
            self.kid.as_deref(),
            self.family,
            self.verifiers.iter().map(|(alg, _)| *alg).collect(),
            self.fingerprint,
        )
    }

    fn verifier(&self, alg: Algorithm) -> Option<&Verifier> {
        self.verifiers
            .iter()
            .find_map(|(candidate, verifier)| (*candidate == alg).then_some(verifier))
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
        let decoded = DecodingKey::from_rsa_pem(pem.as_ref()).map_err(|_| KeyError::InvalidPem)?;
        let der = decoded
            .try_get_as_bytes()
            .map_err(|_| KeyError::InvalidPem)?;
        // Size, modulus and exponent are checked with the material, as for a JWK.
        Self::single(kid, KeyFamily::Rsa, None, &KeyMaterial::RsaDer(der))
    }

    /// A P-256 or P-384 public key in PEM (`BEGIN PUBLIC KEY`).
    pub fn from_ec_pem(pem: impl AsRef<[u8]>, kid: Option<&str>) -> Result<KeySet, KeyError> {
        let decoded = DecodingKey::from_ec_pem(pem.as_ref()).map_err(|_| KeyError::InvalidPem)?;
        let point = decoded
            .try_get_as_bytes()
            .map_err(|_| KeyError::InvalidPem)?;
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
    }

    /// An Ed25519 public key in PEM (`BEGIN PUBLIC KEY`).
    pub fn from_ed_pem(pem: impl AsRef<[u8]>, kid: Option<&str>) -> Result<KeySet, KeyError> {
        let decoded = DecodingKey::from_ed_pem(pem.as_ref()).map_err(|_| KeyError::InvalidPem)?;
        let raw = decoded
            .try_get_as_bytes()
            .map_err(|_| KeyError::InvalidPem)?;
        Self::single(kid, KeyFamily::Ed25519, None, &KeyMaterial::Ed25519(raw))
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

/// One JWK from a set or on its own: public asymmetric signature keys only.
fn parse_jwk(value: serde_json::Value) -> Result<VerifyingKey, KeyError> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| KeyError::Unusable("not a JWK"))?;
    let common = &jwk.common;
    if common
        .public_key_use
        .as_ref()
        .is_some_and(|usage| *usage != PublicKeyUse::Signature)
    {
        return Err(KeyError::Unusable("`use` is not `sig`"));
    }
    if common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(KeyError::Unusable("`key_ops` does not include `verify`"));
    }
    let only = common.key_algorithm.map(signature_algorithm).transpose()?;
    let kid = common.key_id.clone();

    let (family, material_bytes) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = decode(&rsa.n)?;
            let e = decode(&rsa.e)?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            let material = KeyMaterial::RsaComponents { n, e };
            return check_alg(only, KeyFamily::Rsa)
                .and_then(|()| VerifyingKey::new(kid, KeyFamily::Rsa, only, &material));
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (family, size) = match ec.curve {
                EllipticCurve::P256 => (KeyFamily::EcP256, 32),
                EllipticCurve::P384 => (KeyFamily::EcP384, 48),
                _ => return Err(KeyError::Unusable("unsupported curve")),
            };
            let (x, y) = (decode(&ec.x)?, decode(&ec.y)?);
            if x.len() != size || y.len() != size {
                return Err(KeyError::Unusable("EC coordinates have the wrong length"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (family, point)
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Err(KeyError::Unusable("unsupported curve"));
            }
            (KeyFamily::Ed25519, decode(&okp.x)?)
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err(KeyError::Unusable(
                "symmetric keys are never taken from a JWK Set",
            ));
        }
        _ => return Err(KeyError::Unusable("unsupported key type")),
    };
    check_alg(only, family)?;
    let material = match family {
        KeyFamily::Ed25519 => KeyMaterial::Ed25519(&material_bytes),
        _ => KeyMaterial::Ec(&material_bytes),
    };
    VerifyingKey::new(kid, family, only, &material)
}

/// A JWK's own `alg` must be a signature algorithm of the key's type.
fn check_alg(only: Option<Algorithm>, family: KeyFamily) -> Result<(), KeyError> {
    match only {
        Some(alg) if alg.key_family() != family => {
            Err(KeyError::Unusable("`alg` does not match the key type"))
        }
        _ => Ok(()),
    }
}

fn signature_algorithm(alg: KeyAlgorithm) -> Result<Algorithm, KeyError> {
    Ok(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => {
            return Err(KeyError::Unusable(
                "`alg` is not a supported signature algorithm",
            ));
        }
    })
}

/// JWK members are base64url without padding (RFC 7517); a padded value is tolerated because
/// some issuers publish one, anything else fails.
fn decode(member: &str) -> Result<Vec<u8>, KeyError> {
    URL_SAFE_NO_PAD
        .decode(member.trim_end_matches('='))
        .map_err(|_| KeyError::Unusable("bad base64url in key"))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(bytes.len());
    &bytes[start..]
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
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _};
    use serde_json::json;

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
