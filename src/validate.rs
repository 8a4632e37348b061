//! Token validation: JOSE header, claims and signature.
//!
//! This is the only module that knows how a compact JWS is laid out and how a signature is checked.
//! A token goes through three steps, cheapest first, so that junk costs as little as possible:
//!
//! 1. [`parse`]: split the three segments, decode the header and the payload (strict base64url,
//!    strict JSON types), reject `none`, unknown algorithms and any `crit` header.
//! 2. [`check_claims`]: `exp`, `nbf`, `iat`, `aud`, RFC 9068 and the lifetime policy of the issuer the
//!    token names in `iss` (the issuer itself was chosen by exact match before this step).
//! 3. [`verify_signature`]: the key chosen by `kid` and algorithm checks the signature with aws-lc-rs.
//!
//! Header parameters that point at keys (`jku`, `x5u`, `jwk`, `x5c`) are never read: keys only ever
//! come from the issuer's configured key source.
//!
//! The signature step calls aws-lc-rs directly on keys parsed once when the key set was loaded
//! ([`Verifier`]). Each JWS `alg` maps to exactly one aws-lc-rs algorithm in [`Algorithm`]'s table
//! below; `jsonwebtoken` stays in charge of the JWK/PEM models and of minting in the test kit.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{hmac, signature};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};

use crate::claims::ClientIdClaims;
use crate::scope::ScopeClaims;

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
    pub fn description(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "The access token is malformed",
            // Issuer, audience and algorithm failures share one text: a client probing with
            // unsigned tokens learns nothing about the configuration.
            TokenError::UnsupportedAlgorithm
            | TokenError::AlgorithmNotAllowed(_)
            | TokenError::UnknownIssuer
            | TokenError::AudienceMismatch => "The access token is not accepted by this resource",
            TokenError::CriticalHeader => "The access token has an unsupported critical header",
            TokenError::WrongType => "The token is not an access token",
            TokenError::MissingClaim(_) => "The access token is missing a required claim",
            TokenError::InvalidClaim(_) => "The access token has an invalid claim",
            TokenError::Expired => "The access token expired",
            TokenError::NotYetValid => "The access token is not yet valid",
            TokenError::IssuedInFuture => "The access token was issued in the future",
            TokenError::LifetimeTooLong => "The access token lifetime is too long",
            TokenError::UnknownKey | TokenError::KeyMismatch | TokenError::AmbiguousKey => {
                "The access token signing key is not recognized"
            }
            TokenError::InvalidSignature => "The access token signature is invalid",
            TokenError::KeysUnavailable { .. } => "The signing keys are temporarily unavailable",
        }
    }
}

/// The claim checks an issuer asks for. Built once by the guard builder.
#[derive(Clone, Debug)]
pub(crate) struct ClaimsPolicy {
    pub(crate) audiences: Box<[Box<str>]>,
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) leeway: f64,
    pub(crate) rfc9068: bool,
    pub(crate) max_lifetime: Option<f64>,
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

/// The registered and scope claims, with strict JSON types. A duplicated member among these is a
/// parse error, so `{"exp":1,"exp":9999999999}` is rejected rather than resolved either way.
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

/// A JSON string or an array of strings (`aud`, `scp`, ...).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            OneOrMany::One(value) => (Some(value.as_str()), &[][..]),
            OneOrMany::Many(values) => (None, values.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }

    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(value) => vec![value],
            OneOrMany::Many(values) => values,
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
    /// The decoded payload, kept so users can read their own claims from it.
    pub(crate) payload: Vec<u8>,
    pub(crate) claims: RawClaims,
}

/// Largest signature any supported algorithm produces (RSA-8192).
const MAX_SIGNATURE_BYTES: usize = 1024;

/// Step 1: structure, header and claim types. Nothing here depends on configuration.
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
    let claims = parse_claims(&payload)?;

    Ok(UnverifiedToken {
        algorithm,
        kid: header.kid,
        typ: header.typ,
        signing_input,
        signature,
        payload,
        claims,
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

fn parse_claims(payload: &[u8]) -> Result<RawClaims, TokenError> {
    serde_json::from_slice::<RawClaims>(payload).map_err(|_| claims_error(payload))
}

/// Names the offending claim for logs. Runs only on the error path, so the path tracking costs
/// nothing for good tokens.
#[cold]
fn claims_error(payload: &[u8]) -> TokenError {
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
    let err = match serde_path_to_error::deserialize::<_, RawClaims>(&mut deserializer) {
        Err(err) if err.inner().is_data() => err,
        _ => return TokenError::Malformed("payload is not a JSON object of claims"),
    };
    let path = err.path().to_string();
    let field = path.split(['.', '[']).next().unwrap_or_default();
    if let Some(name) = KNOWN.into_iter().find(|name| *name == field) {
        return TokenError::InvalidClaim(name);
    }
    let message = err.inner().to_string();
    if let Some(name) = KNOWN
        .into_iter()
        .find(|name| message.starts_with(&format!("duplicate field `{name}`")))
    {
        return TokenError::InvalidClaim(name);
    }
    TokenError::Malformed("payload is not a JSON object of claims")
}

/// The current time as fractional NumericDate seconds.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// Step 2: the claim checks of the issuer's policy, at time `now`.
pub(crate) fn check_claims(
    token: &UnverifiedToken<'_>,
    policy: &ClaimsPolicy,
    now: f64,
) -> Result<(), TokenError> {
    if !policy.algorithms.contains(token.algorithm) {
        return Err(TokenError::AlgorithmNotAllowed(token.algorithm));
    }
    let claims = &token.claims;
    let leeway = policy.leeway;

    let exp = check_expiry(token, policy, now)?;
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

    if policy.rfc9068 {
        check_rfc9068(token)?;
    } else if let Some(typ) = token.typ.as_deref() {
        // RFC 8725 §3.11: an explicitly typed JWT of another kind (`logout+jwt`, `secevent+jwt`,
        // `dpop+jwt`, ...) is never an access token, whatever its audience.
        // Bytes, not `str` slicing: `typ` is client input and may end in multi-byte characters.
        let media_type = media_type(typ).as_bytes();
        if media_type.len() > 4
            && media_type[media_type.len() - 4..].eq_ignore_ascii_case(b"+jwt")
            && !media_type.eq_ignore_ascii_case(b"at+jwt")
        {
            return Err(TokenError::WrongType);
        }
    }

    if let Some(max_lifetime) = policy.max_lifetime {
        let iat = claims.iat.ok_or(TokenError::MissingClaim("iat"))?;
        if exp.0 - iat.0 > max_lifetime {
            return Err(TokenError::LifetimeTooLong);
        }
    }
    Ok(())
}

/// `exp` is present and, with the leeway, not yet past at `now`; returns it.
pub(crate) fn check_expiry(
    token: &UnverifiedToken<'_>,
    policy: &ClaimsPolicy,
    now: f64,
) -> Result<NumericDate, TokenError> {
    let exp = token.claims.exp.ok_or(TokenError::MissingClaim("exp"))?;
    if now >= exp.0 + policy.leeway {
        return Err(TokenError::Expired);
    }
    Ok(exp)
}

/// A `typ` value without its optional `application/` prefix (RFC 7515 §4.1.9).
fn media_type(typ: &str) -> &str {
    typ.get(..12)
        .filter(|prefix| prefix.eq_ignore_ascii_case("application/"))
        .map_or(typ, |_| &typ[12..])
}

/// RFC 9068 §2.1 / §4: explicit `at+jwt` typing and the required claims.
fn check_rfc9068(token: &UnverifiedToken<'_>) -> Result<(), TokenError> {
    let typ = token.typ.as_deref().ok_or(TokenError::WrongType)?;
    if !media_type(typ).eq_ignore_ascii_case("at+jwt") {
        return Err(TokenError::WrongType);
    }
    let claims = &token.claims;
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

/// What a verified token turns into, minus the parts the guard adds.
pub(crate) struct VerifiedParts {
    pub(crate) claims: RawClaims,
    pub(crate) payload: Vec<u8>,
    pub(crate) scopes: Vec<String>,
    pub(crate) client_id: Option<String>,
}

/// Collect the scopes and the client id from the claims an issuer names (after the signature
/// has verified).
pub(crate) fn into_verified(
    token: UnverifiedToken<'_>,
    scope_claims: &ScopeClaims,
    client_id_claims: &ClientIdClaims,
) -> Result<VerifiedParts, TokenError> {
    let UnverifiedToken {
        mut claims,
        payload,
        ..
    } = token;
    let client_id = client_id_claims.resolve(&claims, &payload);
    let scopes = scope_claims.collect(&mut claims, &payload)?;
    Ok(VerifiedParts {
        claims,
        payload,
        scopes,
        client_id,
    })
}

impl OneOrMany {
    /// The values of a scope-like claim: a space-separated string, or an array of strings.
    pub(crate) fn into_scopes(self) -> Vec<String> {
        match self {
            OneOrMany::One(value) => value
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            many => many.into_vec(),
        }
    }
}
