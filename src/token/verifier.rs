//! The signature step: keys parsed once into aws-lc-rs verifiers, one JWS algorithm to exactly one
//! aws-lc-rs algorithm.

use std::fmt;

use aws_lc_rs::{hmac, signature};

use super::{Algorithm, KeyFamily};

/// Key material as loaded from a JWK or PEM, before it is bound to an algorithm.
pub(crate) enum KeyMaterial<'a> {
    /// RSA public key as modulus and exponent, big-endian.
    RsaComponents { n: &'a [u8], e: &'a [u8] },
    /// RSA public key as DER (PKCS#1 `RSAPublicKey` or SubjectPublicKeyInfo).
    RsaDer(&'a [u8]),
    /// An uncompressed EC point or a SubjectPublicKeyInfo.
    Ec(&'a [u8]),
    /// A raw Ed25519 public key.
    Ed25519(&'a [u8]),
    /// An HMAC shared secret.
    Secret(&'a [u8]),
}

/// A key parsed once and bound to one algorithm: verifying costs only the signature check.
pub(crate) enum Verifier {
    Public(signature::ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verifier::Public(_) => f.write_str("Verifier::Public"),
            Verifier::Hmac(_) => f.write_str("Verifier::Hmac([redacted])"),
        }
    }
}

/// How one JWS algorithm is verified in aws-lc-rs.
enum Primitive {
    Hmac(hmac::Algorithm),
    Rsa(&'static signature::RsaParameters),
    Public(&'static dyn signature::VerificationAlgorithm),
}

/// The reviewed table: each JWS algorithm maps to exactly one aws-lc-rs algorithm. RSA keys
/// below 2048 bits are refused by the `2048_8192` parameter sets at verification time and by
/// the key loader before that; ECDSA signatures are the fixed-width `r || s` of RFC 7518 §3.4.
fn primitive(algorithm: Algorithm) -> Primitive {
    use signature as sig;
    match algorithm {
        Algorithm::HS256 => Primitive::Hmac(hmac::HMAC_SHA256),
        Algorithm::HS384 => Primitive::Hmac(hmac::HMAC_SHA384),
        Algorithm::HS512 => Primitive::Hmac(hmac::HMAC_SHA512),
        Algorithm::RS256 => Primitive::Rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Primitive::Rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Primitive::Rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Primitive::Rsa(&sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Primitive::Rsa(&sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Primitive::Rsa(&sig::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => Primitive::Public(&sig::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => Primitive::Public(&sig::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => Primitive::Public(&sig::ED25519),
    }
}

impl Verifier {
    /// Parse `material` for `algorithm`; `None` if the material does not fit it.
    pub(crate) fn new(algorithm: Algorithm, material: &KeyMaterial<'_>) -> Option<Verifier> {
        let parsed = match (primitive(algorithm), material) {
            (Primitive::Hmac(hash), material) => return hmac_verifier(hash, material),
            (Primitive::Rsa(params), KeyMaterial::RsaComponents { n, e }) => {
                signature::RsaPublicKeyComponents { n: *n, e: *e }
                    .to_parsed_public_key(params)
                    .ok()?
            }
            (Primitive::Rsa(params), KeyMaterial::RsaDer(der)) => {
                signature::ParsedPublicKey::new(params, der).ok()?
            }
            (Primitive::Public(public), KeyMaterial::Ec(bytes) | KeyMaterial::Ed25519(bytes))
                if matches!(
                    (algorithm.key_family(), material),
                    (KeyFamily::EcP256 | KeyFamily::EcP384, KeyMaterial::Ec(_))
                        | (KeyFamily::Ed25519, KeyMaterial::Ed25519(_))
                ) =>
            {
                signature::ParsedPublicKey::new(public, bytes).ok()?
            }
            _ => return None,
        };
        Some(Verifier::Public(parsed))
    }

    pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Verifier::Public(key) => key.verify_sig(message, signature).is_ok(),
            Verifier::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }
}

/// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
fn hmac_verifier(algorithm: hmac::Algorithm, material: &KeyMaterial<'_>) -> Option<Verifier> {
    let KeyMaterial::Secret(secret) = material else {
        return None;
    };
    (secret.len() >= algorithm.digest_algorithm().output_len)
        .then(|| Verifier::Hmac(Box::new(hmac::Key::new(algorithm, secret))))
}
