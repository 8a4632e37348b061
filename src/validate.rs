//! Token validation: JOSE header, claims and signature.
//!
//! This is the only module that knows how a compact JWS is laid out and how a signature is checked.
//! A token goes through four steps. Nothing a client learns from a refusal before the signature has
//! verified depends on the configuration, and an unsigned token costs only the decoding of its
//! segments:
//!
//! 1. [`parse`]: split the three segments, decode the header and the payload (strict base64url,
//!    strict JSON), reject `none`, unknown algorithms and any `crit` header, and read `iss` alone.
//! 2. [`check_algorithm`]: the `alg` allow-list of the issuer the token names (chosen by exact `iss`
//!    match before this step).
//! 3. [`verify_signature`]: the key chosen by `kid` and algorithm checks the signature with aws-lc-rs.
//! 4. [`parse_claims`] and [`check_claims`], only for a token whose signature verified: every member
//!    of the payload unique at every depth, claim arrays bounded, then `exp`, `nbf`, `iat`, `aud`,
//!    `typ`, RFC 9068 and the lifetime policy.
//!
//! Refusals in steps 1–3 other than syntax share one description ("not accepted"), so a probe with
//! unsigned tokens cannot tell a trusted issuer, algorithm, audience or `kid` from an untrusted one.
//!
//! Header parameters that point at keys (`jku`, `x5u`, `jwk`, `x5c`) are never read: keys only ever
//! come from the issuer's configured key source.
//!
//! The signature step calls aws-lc-rs directly on keys parsed once when the key set was loaded
//! ([`Verifier`]). Each JWS `alg` maps to exactly one aws-lc-rs algorithm in [`Algorithm`]'s table
//! below; `jsonwebtoken` stays in charge of the JWK/PEM models and of minting in the test kit.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{hmac, signature};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A JWS signature algorithm this crate can verify.
///
/// The allow-list of an [`Issuer`](crate::Issuer) is a set of these; the token's `alg` header is only
/// ever compared against it, never trusted to pick a verification method on its own. `none` is not
/// an algorithm here and can never be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256. Only with an explicitly configured shared secret.
    HS256,
    /// HMAC with SHA-384. Only with an explicitly configured shared secret.
    HS384,
    /// HMAC with SHA-512. Only with an explicitly configured shared secret.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA with Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every algorithm, in a stable order.
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The default allow-list: every asymmetric algorithm (no HMAC).
    pub const DEFAULT_ALLOWED: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The name used in the JWS `alg` header parameter.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Whether this is a shared-secret (HMAC) algorithm.
    pub const fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }

    /// The kind of key that can verify this algorithm.
    pub(crate) const fn key_family(self) -> KeyFamily {
        match self {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyFamily::Hmac,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyFamily::Rsa,
            Algorithm::ES256 => KeyFamily::EcP256,
            Algorithm::ES384 => KeyFamily::EcP384,
            Algorithm::EdDSA => KeyFamily::Ed25519,
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a string that names no supported algorithm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported JWS algorithm")]
pub struct UnknownAlgorithm;

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Exact, case-sensitive match on the JWS name (RFC 7515 §4.1.1): `none`, `None` and `rs256`
    /// name nothing.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|alg| alg.name() == name)
            .ok_or(UnknownAlgorithm)
    }
}

/// A set of algorithms as a bit mask: the allow-list check on the request path is one AND.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AlgorithmSet(u16);

impl AlgorithmSet {
    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |alg| self.contains(*alg))
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        AlgorithmSet(iter.into_iter().fold(0, |mask, alg| mask | alg.bit()))
    }
}

/// The kind of key an algorithm needs. A key is only ever tried with algorithms of its own family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyFamily {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Hmac,
}

/// Why a token was rejected. The `Display` text names what failed and is meant for logs; what the
/// client is told comes from [`TokenError::description`], which never carries key material or input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not a well-formed compact JWS (segments, base64url, JSON, JSON types).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The `alg` header names no algorithm this crate supports (`none` included).
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The `alg` header names an algorithm the issuer's allow-list does not contain.
    #[error("algorithm {0} is not allowed for this issuer")]
    AlgorithmNotAllowed(Algorithm),
    /// The header carries a `crit` parameter; no JWS extension is understood, so it must be rejected
    /// (RFC 7515 §4.1.11).
    #[error("critical header parameter not understood")]
    CriticalHeader,
    /// `typ` is not `at+jwt` while RFC 9068 mode is on.
    #[error("token type is not at+jwt")]
    WrongType,
    /// `iss` names no configured issuer.
    #[error("issuer not accepted")]
    UnknownIssuer,
    /// A claim that policy requires is absent.
    #[error("missing required claim `{0}`")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type or an unusable value.
    #[error("invalid claim `{0}`")]
    InvalidClaim(&'static str),
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `exp - iat` is longer than the issuer's maximum token lifetime.
    #[error("token lifetime exceeds the allowed maximum")]
    LifetimeTooLong,
    /// `aud` contains none of the configured audiences.
    #[error("audience not accepted")]
    AudienceMismatch,
    /// No published key has the token's `kid` (or, without `kid`, no key fits the algorithm).
    #[error("no matching signing key")]
    UnknownKey,
    /// The key named by `kid` cannot verify the token's `alg` (type, curve, or the JWK's own `alg`).
    #[error("signing key does not match the token algorithm")]
    KeyMismatch,
    /// The token has no `kid` and several keys could verify it.
    #[error("token has no kid and several keys match")]
    AmbiguousKey,
    /// The signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// The issuer's keys could not be obtained; the request can be retried later. Rendered as 503.
    #[error("signing keys unavailable")]
    KeysUnavailable {
        /// When a retry makes sense.
        retry_after: Duration,
    },
}

impl TokenError {
    /// A short description that is safe to send to the client in `error_description`.
    ///
    /// Every refusal decided before the signature verifies, other than bad syntax, has the same
    /// text: an unsigned probe learns nothing about which issuers, algorithms, audiences or keys are
    /// trusted. Precise reasons (expired, wrong audience, ...) are only given for tokens whose
    /// signature verified, since only the issuer can have made those.
    pub fn description(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "The access token is malformed",
            TokenError::UnsupportedAlgorithm
            | TokenError::AlgorithmNotAllowed(_)
            | TokenError::UnknownIssuer
            | TokenError::UnknownKey
            | TokenError::KeyMismatch
            | TokenError::AmbiguousKey
            | TokenError::InvalidSignature => NOT_ACCEPTED,
            TokenError::CriticalHeader => "The access token has an unsupported critical header",
            TokenError::WrongType => "The token is not an access token",
            TokenError::MissingClaim(_) => "The access token is missing a required claim",
            TokenError::InvalidClaim(_) => "The access token has an invalid claim",
            TokenError::Expired => "The access token expired",
            TokenError::NotYetValid => "The access token is not yet valid",
            TokenError::IssuedInFuture => "The access token was issued in the future",
            TokenError::LifetimeTooLong => "The access token lifetime is too long",
            TokenError::AudienceMismatch => "The access token is not intended for this resource",
            TokenError::KeysUnavailable { .. } => "The signing keys are temporarily unavailable",
        }
    }
}

/// The one description of every refusal made before the signature verified (other than syntax).
const NOT_ACCEPTED: &str = "The access token is not accepted by this resource";

/// The claim checks an issuer asks for. Built once by the guard builder.
#[derive(Clone, Debug)]
pub(crate) struct ClaimsPolicy {
    pub(crate) audiences: Box<[Box<str>]>,
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) leeway: f64,
    pub(crate) rfc9068: bool,
    pub(crate) max_lifetime: Option<f64>,
    /// `typ` values accepted besides absent, `JWT` and `at+jwt`, normalised (lower case, no
    /// `application/` prefix).
    pub(crate) extra_token_types: Box<[Box<str>]>,
}

/// The JOSE header fields this crate reads. Everything else is ignored on purpose — in particular
/// `jku`, `x5u`, `jwk` and `x5c`, which would let the token choose its own key.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
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

/// Most values one claim array (`aud`, `scp`, `permissions`, a custom scope claim) or one
/// space-separated `scope` string may hold. Larger ones refuse the token before more is allocated.
pub(crate) const MAX_CLAIM_VALUES: usize = 256;

/// The registered and scope claims, with strict JSON types. Read only from a payload that
/// [`parse`] accepted, so no member appears twice anywhere in it (`{"exp":1,"exp":9999999999}`,
/// or `"roles"` twice inside a nested object): no reader of the payload can resolve it
/// differently from another.
#[derive(Deserialize, Default)]
pub(crate) struct RawClaims {
    #[serde(default)]
    pub(crate) iss: Option<String>,
    #[serde(default)]
    pub(crate) sub: Option<String>,
    #[serde(default)]
    pub(crate) aud: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) exp: Option<NumericDate>,
    #[serde(default)]
    pub(crate) nbf: Option<NumericDate>,
    #[serde(default)]
    pub(crate) iat: Option<NumericDate>,
    #[serde(default)]
    pub(crate) jti: Option<String>,
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    #[serde(default)]
    pub(crate) azp: Option<String>,
    #[serde(default)]
    pub(crate) scope: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) scp: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) permissions: Option<OneOrMany>,
}

/// An object member's name, borrowed from the input when it has no escapes.
struct MemberName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = MemberName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// Refuses a name that appears twice among one object's member names (RFC 7519 §4 lets a parser
/// reject duplicates; reading the last one, as `serde_json::Value` does, would let two readers of
/// the payload disagree). Sorting keeps an object of a thousand members cheap to check.
fn check_unique<E: de::Error>(names: &mut [Cow<'_, str>]) -> Result<(), E> {
    names.sort_unstable();
    match names.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(E::custom(format_args!("duplicate field `{}`", pair[0]))),
        None => Ok(()),
    }
}

/// Walks a JSON value of any shape, refusing an object with a duplicate member at any depth. One
/// stack of names serves every depth: an object's names are dropped when its walk ends.
struct UniqueMembers<'n, 'de>(&'n mut Vec<Cow<'de, str>>);

impl<'de> DeserializeSeed<'de> for UniqueMembers<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueMembers<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(UniqueMembers(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let names = self.0;
        let start = names.len();
        while let Some(name) = map.next_key::<MemberName<'de>>()? {
            map.next_value_seed(UniqueMembers(names))?;
            names.push(name.0);
        }
        check_unique(&mut names[start..])?;
        names.truncate(start);
        Ok(())
    }
}

/// A JSON string or an array of at most [`MAX_CLAIM_VALUES`] strings (`aud`, `scp`, ...).
#[derive(Debug, Clone)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;
        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<String>()? {
                    if values.len() == MAX_CLAIM_VALUES {
                        return Err(de::Error::custom("too many values"));
                    }
                    values.push(value);
                }
                Ok(OneOrMany::Many(values))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

impl OneOrMany {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            OneOrMany::One(value) => (Some(value.as_str()), &[][..]),
            OneOrMany::Many(values) => (None, values.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }

    /// The values of a scope-like claim: a space-separated string, or an array of strings. `None`
    /// when a string holds more than [`MAX_CLAIM_VALUES`] scopes.
    pub(crate) fn into_scopes(self) -> Option<Vec<String>> {
        match self {
            OneOrMany::One(value) => {
                let scopes = value.split(' ').filter(|s| !s.is_empty());
                if scopes.clone().count() > MAX_CLAIM_VALUES {
                    return None;
                }
                Some(scopes.map(str::to_owned).collect())
            }
            OneOrMany::Many(values) => Some(values),
        }
    }
}

/// RFC 7519 NumericDate: seconds since the epoch, integer or fractional; any other JSON type fails.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub(crate) struct NumericDate(pub(crate) f64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumericDateVisitor;
        impl Visitor<'_> for NumericDateVisitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() {
                    Ok(NumericDate(v))
                } else {
                    Err(E::custom("NumericDate is not finite"))
                }
            }
        }
        deserializer.deserialize_any(NumericDateVisitor)
    }
}

/// A token whose structure has been checked but whose signature and claims have not.
pub(crate) struct UnverifiedToken<'a> {
    pub(crate) algorithm: Algorithm,
    pub(crate) kid: Option<String>,
    typ: Option<String>,
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

/// Step 4a, after the signature verified: the claims, strictly typed, every member unique.
pub(crate) fn parse_claims(payload: &[u8]) -> Result<RawClaims, TokenError> {
    serde_json::from_slice::<RawClaims>(payload)
        .map_err(|_| claims_error::<RawClaims>(payload, "payload is not a JSON object of claims"))
}

/// Names the offending claim for logs by parsing `payload` as `T` again with the path tracked.
/// Runs only on the error path, so the tracking costs nothing for good tokens.
#[cold]
fn claims_error<T: serde::de::DeserializeOwned>(
    payload: &[u8],
    otherwise: &'static str,
) -> TokenError {
    const KNOWN: [&str; 12] = [
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "client_id",
        "azp",
        "scope",
        "scp",
        "permissions",
    ];
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let err = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Err(err) if err.inner().is_data() => err,
        _ => return TokenError::Malformed(otherwise),
    };
    let message = err.inner().to_string();
    if let Some(name) = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.split('`').next())
    {
        return match KNOWN.into_iter().find(|known| *known == name) {
            Some(known) => TokenError::InvalidClaim(known),
            None => TokenError::Malformed("payload has a duplicate member"),
        };
    }
    let path = err.path().to_string();
    let field = path.split(['.', '[']).next().unwrap_or_default();
    match KNOWN.into_iter().find(|name| *name == field) {
        Some(name) => TokenError::InvalidClaim(name),
        None => TokenError::Malformed(otherwise),
    }
}

/// The current time as fractional NumericDate seconds.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// Step 2: the issuer's algorithm allow-list.
pub(crate) fn check_algorithm(
    token: &UnverifiedToken<'_>,
    policy: &ClaimsPolicy,
) -> Result<(), TokenError> {
    if policy.algorithms.contains(token.algorithm) {
        Ok(())
    } else {
        Err(TokenError::AlgorithmNotAllowed(token.algorithm))
    }
}

/// Step 4b: the claim checks of the issuer's policy, at time `now`, for a token whose signature
/// verified.
pub(crate) fn check_claims(
    token: &UnverifiedToken<'_>,
    claims: &RawClaims,
    policy: &ClaimsPolicy,
    now: f64,
) -> Result<(), TokenError> {
    let leeway = policy.leeway;
    let exp = claims.exp.ok_or(TokenError::MissingClaim("exp"))?;
    if now >= exp.0 + leeway {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = claims.nbf
        && nbf.0 > now + leeway
    {
        return Err(TokenError::NotYetValid);
    }
    if let Some(iat) = claims.iat
        && iat.0 > now + leeway
    {
        return Err(TokenError::IssuedInFuture);
    }

    let aud = claims.aud.as_ref().ok_or(TokenError::MissingClaim("aud"))?;
    if !aud.iter().any(|candidate| {
        policy
            .audiences
            .iter()
            .any(|allowed| **allowed == *candidate)
    }) {
        return Err(TokenError::AudienceMismatch);
    }

    check_type(token.typ.as_deref(), policy)?;
    if policy.rfc9068 {
        check_rfc9068(claims)?;
    }

    if let Some(max_lifetime) = policy.max_lifetime {
        let iat = claims.iat.ok_or(TokenError::MissingClaim("iat"))?;
        if exp.0 - iat.0 > max_lifetime {
            return Err(TokenError::LifetimeTooLong);
        }
    }
    Ok(())
}

/// RFC 8725 §3.11, RFC 9068 §4: `typ` is an allow-list. Accepted: absent, `JWT` and `at+jwt`, plus
/// the issuer's own additions; in RFC 9068 mode only `at+jwt`. Compared as a media type without
/// its optional `application/` prefix, case-insensitively (RFC 7515 §4.1.9). A value with
/// parameters or whitespace (`logout+jwt; charset=utf-8`, `at+jwt `) is refused: no issuer types
/// access tokens that way, and reading past such decorations is how other JWT kinds slip through.
fn check_type(typ: Option<&str>, policy: &ClaimsPolicy) -> Result<(), TokenError> {
    let Some(typ) = typ else {
        return if policy.rfc9068 {
            Err(TokenError::WrongType)
        } else {
            Ok(())
        };
    };
    let media_type = media_type(typ);
    let accepted = if policy.rfc9068 {
        media_type.eq_ignore_ascii_case("at+jwt")
    } else {
        ["jwt", "at+jwt"]
            .into_iter()
            .chain(policy.extra_token_types.iter().map(|typ| &**typ))
            .any(|accepted| media_type.eq_ignore_ascii_case(accepted))
    };
    if accepted {
        Ok(())
    } else {
        Err(TokenError::WrongType)
    }
}

/// A `typ` value without its optional `application/` prefix (RFC 7515 §4.1.9). Compared on bytes:
/// `typ` is client input and may hold multi-byte characters anywhere.
pub(crate) fn media_type(typ: &str) -> &str {
    match typ.as_bytes().get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case(b"application/") => &typ[12..],
        _ => typ,
    }
}

/// RFC 9068 §2.2: the claims an access token must carry.
fn check_rfc9068(claims: &RawClaims) -> Result<(), TokenError> {
    if claims.sub.is_none() {
        return Err(TokenError::MissingClaim("sub"));
    }
    if claims.client_id.is_none() {
        return Err(TokenError::MissingClaim("client_id"));
    }
    if claims.iat.is_none() {
        return Err(TokenError::MissingClaim("iat"));
    }
    if claims.jti.is_none() {
        return Err(TokenError::MissingClaim("jti"));
    }
    Ok(())
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

impl Algorithm {
    /// The reviewed table: each JWS algorithm maps to exactly one aws-lc-rs algorithm. RSA keys
    /// below 2048 bits are refused by the `2048_8192` parameter sets at verification time and by
    /// the key loader before that; ECDSA signatures are the fixed-width `r || s` of RFC 7518 §3.4.
    fn primitive(self) -> Primitive {
        use signature as sig;
        match self {
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
}

impl Verifier {
    /// Parse `material` for `algorithm`; `None` if the material does not fit it.
    pub(crate) fn new(algorithm: Algorithm, material: &KeyMaterial<'_>) -> Option<Verifier> {
        let parsed = match (algorithm.primitive(), material) {
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

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
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
