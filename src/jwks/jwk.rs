//! A JWK (RFC 7517) as a verification key: public asymmetric signature keys only, with `use`,
//! `key_ops` and `alg` honoured.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};

use super::key::{KeyError, VerifyingKey};
use crate::token::{Algorithm, KeyFamily, KeyMaterial};

/// One JWK from a set or on its own: public asymmetric signature keys only.
pub(super) fn parse_jwk(value: serde_json::Value) -> Result<VerifyingKey, KeyError> {
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
