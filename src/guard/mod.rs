//! The [`Guard`]: the trusted issuers, their policies and key sources, shared by every request.
//!
//! A guard is cheap to clone (one `Arc`) and safe to share between tasks. It is built once, at
//! start-up, from one or more [`Issuer`]s; the token's `iss` picks the issuer by exact match before
//! any key is looked at, so a token from an unknown issuer costs no key lookup and no network.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use bearer_guard::testing::SigningKey;
//! use bearer_guard::{Algorithm, Guard, Issuer, TokenError};
//!
//! let key = SigningKey::generate(Algorithm::EdDSA)?;
//! let guard = Guard::builder()
//!     .issuer(
//!         Issuer::new("https://issuer.example")
//!             .audience("https://api.example")
//!             .keys(key.key_set())
//!             .max_token_lifetime(Duration::from_secs(3600)),
//!     )
//!     .realm("payments")
//!     .build()
//!     .await?;
//!
//! let token = key.token("https://issuer.example", "https://api.example").sign()?;
//! assert!(guard.verify(&token).await.is_ok());
//!
//! let wrong_audience = key.token("https://issuer.example", "https://other.example").sign()?;
//! assert_eq!(guard.verify(&wrong_audience).await.unwrap_err(), TokenError::AudienceMismatch);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderMap, Response, Uri};

mod build_error;
mod builder;
mod events;
mod http_client;
mod issuer;
mod policy;
mod realm;
pub(crate) mod verified_cache;

pub use build_error::BuildError;
pub use builder::{DEFAULT_STARTUP_TIMEOUT, GuardBuilder};
pub use issuer::{DEFAULT_LEEWAY, Issuer};

use crate::claims::Claims;
use crate::http::Admitted;
use crate::http::rejection::{Protocol, Rejection};
use crate::http::source::TokenSources;
use crate::jwks::{KeyStatus, KeysUnavailable};
use crate::token::{self, TokenError};
use issuer::IssuerState;
use verified_cache::{CachedToken, VerifiedCache};

/// Verifies bearer tokens against a fixed set of trusted issuers.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<GuardInner>,
}

struct GuardInner {
    issuers: Box<[IssuerState]>,
    sources: TokenSources,
    realm: Option<&'static str>,
    cache: Option<VerifiedCache>,
}

/// How full the verified-token cache is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Cached tokens.
    pub entries: u64,
    /// Their weight in bytes (tokens, payloads and a fixed per-entry overhead), which the
    /// configured size bounds.
    pub weighted_bytes: u64,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field(
                "issuers",
                &self
                    .inner
                    .issuers
                    .iter()
                    .map(|issuer| &issuer.issuer)
                    .collect::<Vec<_>>(),
            )
            .field("realm", &self.inner.realm)
            .finish_non_exhaustive()
    }
}

/// Why [`Guard::verify`] returned no claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token was refused (401 `invalid_token`).
    #[error(transparent)]
    InvalidToken(#[from] TokenError),
    /// The issuer's keys could not be had; nothing is known to be wrong with the token (503).
    #[error(transparent)]
    KeysUnavailable(#[from] KeysUnavailable),
}

/// A refusal equals the [`TokenError`] it carries: `assert_eq!(err, TokenError::Expired)`.
impl PartialEq<TokenError> for VerifyError {
    fn eq(&self, other: &TokenError) -> bool {
        matches!(self, VerifyError::InvalidToken(err) if err == other)
    }
}

impl From<VerifyError> for Rejection {
    fn from(err: VerifyError) -> Self {
        match err {
            VerifyError::InvalidToken(err) => Rejection::InvalidToken(err),
            VerifyError::KeysUnavailable(err) => Rejection::KeysUnavailable(err),
        }
    }
}

/// The first step of deciding a request: done, or a token to verify in full.
pub(crate) enum Started {
    /// Decided without waiting: no token (`Ok(None)`), a malformed request, or a cached token.
    Decided(Result<Option<Claims>, Rejection>),
    /// The token, copied out of the request, needs a full verification.
    Verify(Box<str>),
}

impl Guard {
    /// Start configuring a guard.
    pub fn builder() -> GuardBuilder {
        GuardBuilder::default()
    }

    /// Verify one token (the string after `Bearer `): structure, issuer, key, signature, claims,
    /// and the per-request checks.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        // Requests had the size checked when the token was extracted; a token given directly
        // meets the same limit here.
        let outcome = if token.len() > self.inner.sources.max_token_bytes {
            Err(TokenError::Malformed("token is larger than the size limit").into())
        } else {
            match self.verify_cached(token) {
                Some(decided) => decided,
                None => self.verify_in_full(token).await,
            }
        };
        events::token_decided(&outcome);
        outcome
    }

    /// Authenticate a request: find its token (once) and verify it. `Ok(None)` when the request
    /// carries no token at all; whether that is acceptable is the caller's decision.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Option<Claims>, Rejection> {
        match self.start(headers, uri) {
            Started::Decided(outcome) => outcome,
            Started::Verify(token) => self.finish(&token).await.map(Some),
        }
    }

    /// Authenticate `request` for middleware of your own, as [`BearerLayer`](crate::BearerLayer)
    /// would: on success its extensions hold the verified [`Claims`] (any `Claims` put there
    /// before are removed) and the mark that tells the scope checks and extractors further in
    /// that the guard ran. Only the guard can set that mark, so claims inserted by hand are never
    /// taken for verified ones. On `Err`, answer with [`reject`](Self::reject).
    ///
    /// ```
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use bearer_guard::testing::SigningKey;
    /// use bearer_guard::{Algorithm, Claims, Guard, Issuer};
    ///
    /// let key = SigningKey::generate(Algorithm::ES256)?;
    /// let guard = Guard::builder()
    ///     .issuer(Issuer::new("https://issuer.example").audience("api").keys(key.key_set()))
    ///     .build()
    ///     .await?;
    /// let token = key.token("https://issuer.example", "api").sign()?;
    /// let mut request = http::Request::get("/").header("authorization", format!("Bearer {token}")).body(())?;
    /// let claims = guard.authenticate_request(&mut request).await?;
    /// assert!(claims.is_some());
    /// assert!(request.extensions().get::<Claims>().is_some());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn authenticate_request<B>(
        &self,
        request: &mut http::Request<B>,
    ) -> Result<Option<Claims>, Rejection> {
        let outcome = self.authenticate(request.headers(), request.uri()).await?;
        let extensions = request.extensions_mut();
        extensions.remove::<Claims>();
        if let Some(claims) = &outcome {
            extensions.insert(claims.clone());
        }
        extensions.insert(Admitted {
            realm: self.static_realm(),
        });
        Ok(outcome)
    }

    /// The decision for a request as far as it can go without waiting: the token is extracted
    /// here, once, and either decided (no token, malformed, a cache hit) or handed back for
    /// [`finish`](Self::finish).
    pub(crate) fn start(&self, headers: &HeaderMap, uri: &Uri) -> Started {
        let token = match self.inner.sources.extract(headers, uri) {
            Ok(Some(token)) => token,
            Ok(None) => {
                events::no_credentials();
                return Started::Decided(Ok(None));
            }
            Err(err) => {
                events::malformed_request(&err);
                return Started::Decided(Err(err.into()));
            }
        };
        match self.verify_cached(&token) {
            Some(outcome) => {
                events::token_decided(&outcome);
                Started::Decided(outcome.map(Some).map_err(Rejection::from))
            }
            None => Started::Verify(match token {
                Cow::Borrowed(token) => Box::from(token),
                Cow::Owned(token) => token.into_boxed_str(),
            }),
        }
    }

    /// The rest of a decision [`start`](Self::start) could not make without waiting.
    pub(crate) async fn finish(&self, token: &str) -> Result<Claims, Rejection> {
        let outcome = self.verify_in_full(token).await;
        events::token_decided(&outcome);
        outcome.map_err(Rejection::from)
    }

    /// What can be decided without waiting: a verified-token cache hit that passes the policy
    /// stage. `None`: the token needs a full verification.
    fn verify_cached(&self, token: &str) -> Option<Result<Claims, VerifyError>> {
        let cache = self.inner.cache.as_ref()?;
        let now = token::now();
        let hit = cache.get(token, now)?;
        let issuer = self.inner.issuers.get(hit.issuer)?;
        // A key set change (rotation, removal) sends the token through full verification again.
        if issuer.keys.current_generation() != Some(hit.key_generation) {
            return None;
        }
        Some(
            policy::admit(issuer, hit.expires_at, now)
                .map(|()| hit.claims)
                .map_err(VerifyError::from),
        )
    }

    /// Full verification. Until the signature has verified, only the token's syntax, its issuer,
    /// its algorithm and its key are looked at, and every refusal but the syntax's reads the same
    /// to the client; the claims are parsed and checked after.
    async fn verify_in_full(&self, token: &str) -> Result<Claims, VerifyError> {
        let unverified = token::parse(token)?;
        let issuer = unverified
            .issuer
            .as_deref()
            .ok_or(TokenError::MissingClaim("iss"))?;
        let (issuer_index, issuer) = self
            .inner
            .issuers
            .iter()
            .enumerate()
            .find(|(_, candidate)| *candidate.issuer == *issuer)
            .ok_or(TokenError::UnknownIssuer)?;
        token::check_algorithm(&unverified, &issuer.policy)?;

        let kid = unverified.kid.as_deref();
        let mut keys = issuer.keys.current().await?;
        let mut candidates = match keys.select(kid, unverified.algorithm) {
            Err(TokenError::UnknownKey) => {
                // The issuer may have rotated keys since the set was loaded.
                keys = issuer
                    .keys
                    .refresh_for_unknown_key(&keys)
                    .await?
                    .ok_or(TokenError::UnknownKey)?;
                keys.select(kid, unverified.algorithm)?
            }
            selected => selected?,
        };
        // Keys sharing the token's `kid` are each tried: any one of them may have signed it.
        if !candidates.any(|verifier| token::verify_signature(&unverified, verifier).is_ok()) {
            return Err(TokenError::InvalidSignature.into());
        }

        // Read after waiting for keys, which can take seconds: the token must be valid now.
        let now = token::now();
        let raw_claims = token::parse_claims(&unverified.payload)?;
        token::check_claims(&unverified, &raw_claims, &issuer.policy, now)?;
        let expires_at = raw_claims.exp.map_or(0.0, |exp| exp.0);
        policy::admit(issuer, expires_at, now)?;

        let claims = Claims::from_verified(
            raw_claims,
            unverified.payload,
            &issuer.scope_claims,
            &issuer.client_id_claims,
            unverified.algorithm,
            unverified.kid,
        )?;
        if let Some(cache) = &self.inner.cache
            && expires_at > now
        {
            cache.insert(
                token,
                CachedToken {
                    claims: claims.clone(),
                    issuer: issuer_index,
                    key_generation: keys.generation(),
                    expires_at,
                },
            );
        }
        Ok(claims)
    }

    /// The response for a rejection: a gRPC status when the request is gRPC, an RFC 6750
    /// challenge with this guard's realm otherwise.
    pub fn reject<B: Default>(
        &self,
        rejection: &Rejection,
        request_headers: &HeaderMap,
    ) -> Response<B> {
        rejection.to_response(self.realm(), Protocol::of(request_headers))
    }

    /// Size of the verified-token cache, or `None` when it is off.
    pub fn verified_token_cache_stats(&self) -> Option<CacheStats> {
        self.inner.cache.as_ref().map(|cache| CacheStats {
            entries: cache.entry_count(),
            weighted_bytes: cache.weighted_size(),
        })
    }

    /// The `realm` sent in challenges.
    pub fn realm(&self) -> Option<&str> {
        self.inner.realm
    }

    pub(crate) fn static_realm(&self) -> Option<&'static str> {
        self.inner.realm
    }

    /// The state of each issuer's keys, in configuration order: how fresh they are, when they were
    /// last fetched and what the last failure was. Cheap; no network.
    pub fn key_status(&self) -> Vec<KeyStatus> {
        self.inner
            .issuers
            .iter()
            .map(|issuer| issuer.keys.status(&issuer.issuer))
            .collect()
    }
}
