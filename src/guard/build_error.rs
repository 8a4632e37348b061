//! What a configuration must not be: every reason [`GuardBuilder::build`](super::GuardBuilder::build)
//! refuses one.

/// The guard's configuration is incomplete or unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// [`GuardBuilder::token_header`](super::GuardBuilder::token_header) named `authorization`,
    /// which is always read (as `Bearer <token>`).
    #[error("token_header names the Authorization header, which is always read")]
    TokenHeaderIsAuthorization,
    /// No issuer was configured.
    #[error("no issuer configured")]
    NoIssuers,
    /// An issuer with an empty identifier.
    #[error("issuer identifier is empty")]
    EmptyIssuer,
    /// The same issuer was configured twice.
    #[error("issuer {issuer} configured twice")]
    DuplicateIssuer {
        /// The issuer.
        issuer: String,
    },
    /// An issuer without an audience: every token must be checked against one.
    #[error("issuer {issuer} has no audience")]
    NoAudience {
        /// The issuer.
        issuer: String,
    },
    /// An issuer with an empty algorithm allow-list.
    #[error("issuer {issuer} allows no algorithm")]
    NoAlgorithms {
        /// The issuer.
        issuer: String,
    },
    /// An issuer without keys.
    #[error("issuer {issuer} has no key source")]
    NoKeySource {
        /// The issuer.
        issuer: String,
    },
    /// A static key set with no key for the allowed algorithms, for example a JWK Set whose keys
    /// are all for encryption, too weak or of an unsupported type, or RSA keys when only ECDSA is
    /// allowed.
    #[error("issuer {issuer} has no static key for its allowed algorithms")]
    NoUsableKeys {
        /// The issuer.
        issuer: String,
    },
    /// HMAC algorithms allowed without an explicitly configured shared secret.
    #[error("issuer {issuer} allows HMAC algorithms but has no shared secret")]
    HmacWithoutSecret {
        /// The issuer.
        issuer: String,
    },
    /// HMAC algorithms allowed for an issuer whose keys are published (JWKS): a shared secret is
    /// never taken from a JWK Set.
    #[error("issuer {issuer} allows HMAC algorithms with published keys")]
    HmacWithPublishedKeys {
        /// The issuer.
        issuer: String,
    },
    /// A JWK Set URL, or an issuer to discover, that is not an `http(s)` URL.
    #[error("issuer {issuer}: {reason}")]
    InvalidUrl {
        /// The issuer.
        issuer: String,
        /// What is wrong with the URL.
        reason: String,
    },
    /// The HTTP client for key fetches could not be created.
    #[error("HTTP client: {0}")]
    HttpClient(String),
    /// An issuer's keys could not be fetched at start-up and
    /// [`GuardBuilder::require_keys_at_startup`](super::GuardBuilder::require_keys_at_startup) was set.
    #[error("issuer {issuer}: keys unavailable at start-up: {reason}")]
    KeysUnavailable {
        /// The issuer.
        issuer: String,
        /// The last fetch error.
        reason: String,
    },
    /// The issuer's discovery metadata names another issuer than the one configured, for example
    /// `https://idp.example/` against `https://idp.example` (a trailing slash counts: `iss` is
    /// compared exactly). Configure exactly the string the metadata declares, which is also what
    /// its tokens carry in `iss`.
    #[error(
        "issuer {issuer:?}: the discovery metadata declares the issuer {metadata_issuer:?}; configure exactly {metadata_issuer:?} (tokens carry it in `iss`)"
    )]
    IssuerMismatch {
        /// The issuer as configured.
        issuer: String,
        /// The issuer the discovery metadata declares.
        metadata_issuer: String,
    },
}
