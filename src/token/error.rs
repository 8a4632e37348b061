//! Why a token was refused, and what the client may be told about it.

use super::Algorithm;

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
        }
    }
}

/// The one description of every refusal made before the signature verified (other than syntax).
const NOT_ACCEPTED: &str = "The access token is not accepted by this resource";
