//! The compact JWS: three base64url segments, the JOSE header, and the one claim read before the
//! signature is checked (`iss`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{DeserializeSeed as _, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::claims::claims_error;
use super::json::{MemberName, UniqueMembers, check_unique};
use super::{Algorithm, TokenError, Verifier};

/// The JOSE header fields this crate reads. Everything else is ignored on purpose — in particular
/// `jku`, `x5u`, `jwk` and `x5c`, which would let the token choose its own key.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    pub(super) typ: Option<String>,
    /// Present at all (even `null` or `[]`) → rejected.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// What is read from the payload before the signature verifies: `iss` alone, to pick the issuer.
/// The rest is walked for syntax only (valid JSON and UTF-8, no member twice in any object),
/// keeping nothing but the member names of the objects being walked.
struct Envelope {
    iss: Option<String>,
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor;
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = Envelope;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
                let mut names = Vec::new();
                let mut iss = None;
                while let Some(name) = map.next_key::<MemberName<'de>>()? {
                    if name.0 == "iss" {
                        iss = map.next_value()?;
                    } else {
                        map.next_value_seed(UniqueMembers(&mut names))?;
                    }
                    names.push(name.0);
                }
                check_unique(&mut names)?;
                Ok(Envelope { iss })
            }
        }
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

/// A token whose structure has been checked but whose signature and claims have not.
pub(crate) struct UnverifiedToken<'a> {
    pub(crate) algorithm: Algorithm,
    pub(crate) kid: Option<String>,
    pub(super) typ: Option<String>,
    /// `header "." payload`, exactly as received: the bytes the signature covers.
    signing_input: &'a str,
    signature: Vec<u8>,
    /// The decoded payload: claims are read from it only once the signature has verified.
    pub(crate) payload: Vec<u8>,
    /// `iss`, the one claim read before the signature is checked.
    pub(crate) issuer: Option<String>,
}

/// Largest signature any supported algorithm produces (RSA-8192).
const MAX_SIGNATURE_BYTES: usize = 1024;

/// Step 1: structure, header and `iss`. Nothing here depends on configuration.
pub(crate) fn parse(token: &str) -> Result<UnverifiedToken<'_>, TokenError> {
    let mut segments = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(TokenError::Malformed("a JWS has exactly three segments"));
    };
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];

    let header_bytes = decode_segment(header_b64, "header is not base64url")?;
    if !is_json_object(&header_bytes) {
        return Err(TokenError::Malformed("header is not a JSON object"));
    }
    // Every member unique at any depth, unknown and nested parameters included.
    UniqueMembers(&mut Vec::new())
        .deserialize(&mut serde_json::Deserializer::from_slice(&header_bytes))
        .map_err(|_| TokenError::Malformed("header is not a valid JOSE header"))?;
    let header: RawHeader = serde_json::from_slice(&header_bytes)
        .map_err(|_| TokenError::Malformed("header is not a valid JOSE header"))?;
    if header.crit {
        return Err(TokenError::CriticalHeader);
    }
    let algorithm = header
        .alg
        .parse::<Algorithm>()
        .map_err(|_| TokenError::UnsupportedAlgorithm)?;

    if signature_b64.len() > MAX_SIGNATURE_BYTES.div_ceil(3) * 4 {
        return Err(TokenError::Malformed("signature is too long"));
    }
    let signature = decode_segment(signature_b64, "signature is not base64url")?;
    if signature.is_empty() {
        return Err(TokenError::Malformed("signature is empty"));
    }

    let payload = decode_segment(payload_b64, "payload is not base64url")?;
    if !is_json_object(&payload) {
        return Err(TokenError::Malformed("payload is not a JSON object"));
    }
    let envelope = serde_json::from_slice::<Envelope>(&payload).map_err(|_| {
        claims_error::<Envelope>(&payload, "payload is not a JSON object of claims")
    })?;

    Ok(UnverifiedToken {
        algorithm,
        kid: header.kid,
        typ: header.typ,
        signing_input,
        signature,
        payload,
        issuer: envelope.iss,
    })
}

/// RFC 7515 / 7519: the header and the claims set are JSON objects. serde would also read a
/// struct from a positional array (`["RS256"]`), which must not count.
fn is_json_object(json: &[u8]) -> bool {
    json.iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|first| *first == b'{')
}

/// Strict base64url: no padding, no whitespace, no non-canonical trailing bits.
fn decode_segment(segment: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed(what))
}

/// Step 3: the signature, with a key the key set chose for this token's `kid` and `alg`.
pub(crate) fn verify_signature(
    token: &UnverifiedToken<'_>,
    verifier: &Verifier,
) -> Result<(), TokenError> {
    verifier
        .verify(token.signing_input.as_bytes(), &token.signature)
        .then_some(())
        .ok_or(TokenError::InvalidSignature)
}
